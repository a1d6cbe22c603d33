/*
 * envelope.h - the wire contract: decoding and validating request messages
 * (JSON or Avro, detected per message), building result lines, and the
 * routed message the broker hands to workers. See docs/wire-contract.md.
 */
#ifndef IFQ_ENVELOPE_H
#define IFQ_ENVELOPE_H

#include <jansson.h>
#include <stdint.h>

#include "avro_codec.h"
#include "common.h"

typedef enum { IFQ_ENC_JSON, IFQ_ENC_AVRO, IFQ_ENC_UNKNOWN } ifq_encoding_t;

typedef enum {
    IFQ_URL_CHAT = 0,    /* /v1/chat/completions */
    IFQ_URL_COMPLETIONS, /* /v1/completions */
    IFQ_URL_EMBEDDINGS,  /* /v1/embeddings */
} ifq_url_kind_t;

typedef enum { IFQ_PRIO_NORMAL = 0, IFQ_PRIO_HIGH, IFQ_PRIO_LOW } ifq_priority_t;

/* A decoded request. All pointers are borrowed from root, which the request
 * owns; release with ifq_request_clear(). */
typedef struct {
    json_t *root;
    ifq_encoding_t encoding;
    const char *custom_id;
    const char *url;
    ifq_url_kind_t kind;
    json_t *body;
    const char *model;
    const char *reply_to; /* NULL: the default reply topic */
    ifq_priority_t priority;
    int64_t deadline_ms; /* 0: none */
    json_t *metadata;    /* NULL or an object of strings */
} ifq_request_t;

typedef enum {
    IFQ_DECODE_OK = 0, /* a valid request */
    IFQ_DECODE_REJECT, /* decodable, with a custom_id, but invalid: answer with an error result */
    IFQ_DECODE_DLQ,    /* undecodable or uncorrelatable: dead-letter it */
} ifq_decode_status_t;

typedef struct {
    const char *code; /* stable error code, e.g. "invalid_request" (static string) */
    char message[512];
} ifq_reqerr_t;

ifq_encoding_t ifq_envelope_detect(const void *buf, size_t len);
const char *ifq_encoding_name(ifq_encoding_t enc);

/* Decodes and validates one request message. On IFQ_DECODE_OK req is filled.
 * On IFQ_DECODE_REJECT req->root and req->custom_id are set (and reply_to when
 * it was valid) so that an error result can be addressed, and err says why.
 * On IFQ_DECODE_DLQ err->message says why and req->root is NULL. Messages
 * longer than max_bytes are rejected with "request_too_large". avro may be
 * NULL (Avro input then goes to the DLQ). Never crashes on any bytes. */
ifq_decode_status_t ifq_request_decode(ifq_avro_t *avro, const void *buf, size_t len,
                                       size_t max_bytes, ifq_request_t *req, ifq_reqerr_t *err);
void ifq_request_clear(ifq_request_t *req);

/* Validates an already parsed request object (steals nothing; req borrows
 * obj, which must outlive it). Same outcomes as ifq_request_decode. */
ifq_decode_status_t ifq_request_validate(json_t *obj, ifq_request_t *req, ifq_reqerr_t *err);

/* A stable request id for the message at topic/partition/offset/timestamp, so
 * that a redelivered message keeps its id: "ifq_" + 24 hex digits. */
void ifq_request_id(char out[32], const char *topic, int32_t partition, int64_t offset,
                    int64_t timestamp);

/* A new result object {"id","custom_id","response":null,"error":null,"inferq":{...}}
 * (caller owns). metadata (may be NULL) is copied into inferq.metadata. */
json_t *ifq_result_new(const char *id, const char *custom_id, const char *model_requested,
                       json_t *metadata);
/* Marks a result as failed with a stable code: error = {code, message},
 * inferq.status = status ("failed", "rejected", "expired"). */
void ifq_result_set_error(json_t *result, const char *status, const char *code,
                          const char *message);
/* Marks a result as succeeded with the provider's HTTP status and body
 * (body reference is taken). */
void ifq_result_set_response(json_t *result, int status_code, const char *request_id, json_t *body);
/* Returns inferq object of a result (borrowed). */
json_t *ifq_result_ext(json_t *result);

/* Serialises compactly; caller frees. */
char *ifq_json_dump(const json_t *obj, size_t *len);

const char *ifq_url_path(ifq_url_kind_t kind);

#endif
