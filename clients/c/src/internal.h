/*
 * internal.h - what the C client's own files share and users do not see:
 * the Avro codec singleton, JSON access to requests, local results.
 */
#ifndef IFQC_INTERNAL_H
#define IFQC_INTERNAL_H

#include <jansson.h>

#include "avro_codec.h"
#include "inferq/client.h"

#define IFQC_MAX_CUSTOM_ID 512
#define IFQC_MAX_TOPIC 249

/* The process-wide Avro codec, made on first use and never freed (it is
 * immutable and shared by every thread). NULL when the built-in schemas do
 * not parse, with the reason in *why (static). */
ifq_avro_t *ifqc_avro(const char **why);

/* Copies what fits into dst (NULL or size 0: nothing), always terminated. */
void ifqc_errf(char *dst, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The request's JSON object (borrowed from req). */
const json_t *ifqc_request_json(const inferq_request_t *req);

/* Encodes a request object (see inferq_request_encode); *out is malloc'd. */
int ifqc_encode(const json_t *root, inferq_encoding_t encoding, void **out, size_t *out_len,
                char *errstr, size_t errstr_size);

/* A result made by the client itself (delivery failure): status "failed",
 * error {code, message}. NULL on no memory. */
inferq_result_t *ifqc_result_local(const char *custom_id, const char *code, const char *message);

#endif
