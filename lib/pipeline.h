/*
 * pipeline.h - the broker's per-message decision, without any I/O.
 *
 * Given one consumed request message, decide its single outcome: a routed
 * message for a per-model topic, an error result for the reply topic, or a
 * dead-letter record. On the way: decode and validate, identify the team
 * (from the topic, or a verified HMAC signature; never from the payload),
 * access control, the deadline, routing, and the estimates that limits and
 * budgets need. The Redis stages (limits, budgets, cache) and the Kafka I/O
 * are the broker's; this module is what unit tests and the fuzzer reach.
 */
#ifndef IFQ_PIPELINE_H
#define IFQ_PIPELINE_H

#include <stdint.h>

#include "avro_codec.h"
#include "config.h"
#include "envelope.h"
#include "route.h"

/* HOLD: a low-priority request over its team's limit, parked on the
 * deferred topic (the broker decides that after admission). */
typedef enum { IFQ_OUT_ROUTE = 0, IFQ_OUT_RESULT, IFQ_OUT_DLQ, IFQ_OUT_HOLD } ifq_out_kind_t;

/* Where a message came from. */
typedef struct {
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp;       /* ms, from Kafka */
    const char *traceparent; /* from the headers, or NULL */
    const char *sig_team;    /* header inferq-team, or NULL */
    const char *signature;   /* header inferq-signature (hex HMAC-SHA256 of the value), or NULL */
} ifq_msgmeta_t;

typedef struct ifq_pipeline {
    const ifq_config_t *cfg;
    ifq_avro_t *avro;
    const ifq_health_t *health;    /* may be NULL */
    struct ifq_prompts *prompts;   /* may be NULL: prompt templates refused */
    const struct ifq_guard *guard; /* may be NULL: no guardrails */
    uint64_t rng;
} ifq_pipeline_t;

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
    char team[IFQ_MAX_NAME + 1];         /* empty: no team (no teams configured) */
    char reply_topic[IFQ_MAX_TOPIC + 1]; /* where results of this request go */
    ifq_priority_t priority;
    int64_t est_tokens; /* prompt + max_tokens estimate */
    double est_cost;    /* USD, from the first deployment's prices */
    char cache_key[65]; /* empty: not cacheable */
    json_t *request;    /* ROUTE only: the routed message, owned until serialised */
    const char *raw;    /* ROUTE: the client's JSON up to its closing brace, borrowed from
                         * the consumed message until finish; NULL: re-serialise */
    size_t raw_len;
    /* For spans and metrics (lib/trace.h, lib/metrics.h): when each stage
     * ran, in Unix ns (0: the stage did not run), what the input
     * guardrails found and how the request was routed. */
    struct {
        int64_t start, decoded, prompt_start, prompt_end, guard_start, guard_end, route_start,
            route_end;
    } t;
    json_t *findings;        /* input guardrail findings (owned), NULL when none */
    char blocked_by[256];    /* the detector(s) that blocked the request */
    char route_strategy[32]; /* the alias's strategy, "direct" for a deployment */
    char route_chain[256];   /* the chain, "a>b>c" */
} ifq_decision_t;

/* Decides one message's outcome. now_ms is the wall clock (for deadlines).
 * Always fills out (out of memory becomes a DLQ decision). For ROUTE, the
 * routed message is kept in out->request so that later stages can amend it;
 * ifq_decision_finish() serialises it. Release with ifq_decision_clear. */
void ifq_pipeline_decide(ifq_pipeline_t *p, const void *buf, size_t len, const ifq_msgmeta_t *meta,
                         int64_t now_ms, ifq_decision_t *out);
/* Serialises out->request into out->value (ROUTE only). */
void ifq_decision_finish(ifq_decision_t *d);
/* Turns any decision into an error result for its reply topic (used by later
 * stages: rate limits, budgets). extra (may be NULL) is merged into the
 * result's inferq object. */
void ifq_decision_reject(ifq_decision_t *d, const char *status, const char *code,
                         const char *message, json_t *extra, int64_t now_ms);
/* Turns a ROUTE decision into a succeeded result from a cache entry
 * {"response": {...}, "deployment", "usage"} (borrowed). */
void ifq_decision_cached(ifq_decision_t *d, const json_t *entry, int64_t now_ms);
void ifq_decision_clear(ifq_decision_t *d);

/* Generates a W3C traceparent "00-<32 hex>-<16 hex>-<flags>" into out (56
 * bytes). When parent is a valid traceparent, keeps its trace id and flags
 * with a new span id; otherwise a new trace, flags 01 (sampled). The
 * pipeline then applies the configured sample rate to new traces. */
void ifq_traceparent(char out[56], const char *parent, uint64_t seed);

/* Hex HMAC-SHA256 of data under key into out (65 bytes). */
void ifq_hmac_hex(const char *key, const void *data, size_t len, char out[65]);

#endif
