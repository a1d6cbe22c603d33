/*
 * pipeline.h - the broker's per-message decision, without any I/O.
 *
 * Given one consumed request message, decide its single outcome: a routed
 * message for a per-model topic, an error result for the reply topic, or a
 * dead-letter record. The broker program does the Kafka and Redis I/O; this
 * module is what unit tests and the fuzzer reach directly.
 */
#ifndef IFQ_PIPELINE_H
#define IFQ_PIPELINE_H

#include <stdint.h>

#include "avro_codec.h"
#include "config.h"
#include "envelope.h"

typedef enum { IFQ_OUT_ROUTE = 0, IFQ_OUT_RESULT, IFQ_OUT_DLQ } ifq_out_kind_t;

/* Where a message came from. */
typedef struct {
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp; /* ms, from Kafka */
    const char *traceparent; /* from the headers, or NULL */
} ifq_msgmeta_t;

typedef struct {
    ifq_out_kind_t kind;
    char topic[IFQ_MAX_TOPIC + 1];
    char *value; /* malloc'd JSON for ROUTE/RESULT; NULL for DLQ (send the original bytes) */
    size_t len;
    char id[32];
    char custom_id[IFQ_MAX_CUSTOM_ID + 1]; /* empty for DLQ */
    char traceparent[56];
    const char *state;      /* the request state to record: routed | rejected | expired */
    const char *error_code; /* static, NULL on success */
    char reason[512];       /* readable reason for errors and DLQ */
    char model_requested[IFQ_MAX_NAME + 1];
    char deployment[IFQ_MAX_NAME + 1];
} ifq_decision_t;

/* Decides one message's outcome. now_ms is the wall clock (for deadlines).
 * Always fills out (never fails apart from out of memory, which becomes a
 * DLQ decision). Release with ifq_decision_clear. */
void ifq_pipeline_decide(const ifq_config_t *cfg, ifq_avro_t *avro, const void *buf, size_t len,
                         const ifq_msgmeta_t *meta, int64_t now_ms, ifq_decision_t *out);
void ifq_decision_clear(ifq_decision_t *d);

/* Generates a W3C traceparent "00-<32 hex>-<16 hex>-01" into out (56 bytes).
 * When parent is a valid traceparent, keeps its trace id with a new span id. */
void ifq_traceparent(char out[56], const char *parent, uint64_t seed);

#endif
