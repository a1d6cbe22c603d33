/*
 * worker_obs.h - the worker's observability: its metrics, the spans of
 * each request it handles (queue wait, worker.request, one GenAI client
 * span per provider call, output guardrails, reply or failover hand-off),
 * and opt-in request/response logging to the logs topic.
 *
 * worker.c calls these from a few hook sites; everything here runs on the
 * worker's event-loop thread except ifq_wobs_render (admin thread), which
 * only reads the thread-safe metrics registry.
 */
#ifndef IFQ_WORKER_OBS_H
#define IFQ_WORKER_OBS_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdint.h>

#include "config.h"
#include "envelope.h"

typedef struct ifq_wobs ifq_wobs_t; /* one per worker process */
typedef struct ifq_wreq ifq_wreq_t; /* one per request being handled */

/* cfg is borrowed for the worker's life; instance is copied. NULL when out
 * of memory (the worker then runs without metrics and spans). */
ifq_wobs_t *ifq_wobs_new(const ifq_config_t *cfg, const char *instance);
void ifq_wobs_destroy(ifq_wobs_t *o); /* NULL is a no-op */
/* Appends the Prometheus text of the worker's registry (see metrics.h). */
size_t ifq_wobs_render(ifq_wobs_t *o, char *buf, size_t size);

/* Periodic gauges (every second): in-flight calls of a deployment and its
 * circuit state (0 closed, 1 open, 2 half-open); ifq_wobs_circuit on each
 * change of the circuit (opened: it just opened); the consumer's lag. */
void ifq_wobs_deployment(ifq_wobs_t *o, const char *deployment, int inflight, int circuit);
void ifq_wobs_circuit(ifq_wobs_t *o, const char *deployment, int state, int opened);
void ifq_wobs_lag(ifq_wobs_t *o, rd_kafka_t *consumer, const char *group, int reset);
/* An event loop stopped (paused 1) or started again (0) taking requests
 * because Kafka had not acknowledged worker.max_undelivered messages. */
void ifq_wobs_backlog(ifq_wobs_t *o, int paused);
/* A duplicate skipped by the idempotency check. */
void ifq_wobs_duplicate(ifq_wobs_t *o, const char *deployment);

/* What the metrics and spans need of a routed message besides its body,
 * taken from it once when the worker receives it (the worker keeps these
 * while it does not keep the message's tree). Strings are "" when absent;
 * the struct and its strings must outlive the ifq_wreq_t. */
typedef struct ifq_wreq_info {
    const char *id, *custom_id, *team, *alias; /* alias: inferq.model_requested */
    int64_t received_ms;                       /* inferq.received_ms, 0 when absent */
} ifq_wreq_info_t;

/* A request taken from a per-model topic. routed is borrowed for the call
 * only (its body's max_tokens and temperature and its inferq.hop are
 * copied); info is kept (see above). traceparent is the routed message's
 * context (its span id is the parent of this hop's spans); enqueued_ms the
 * routed message's Kafka timestamp. Returns NULL when out of memory; every
 * ifq_wreq_* accepts NULL. */
ifq_wreq_t *ifq_wreq_begin(ifq_wobs_t *o, const json_t *routed, const ifq_wreq_info_t *info,
                           const char *traceparent, const ifq_deployment_t *dep,
                           int64_t enqueued_ms);
/* Releases a request that ends without a result (handed back while
 * draining). NULL is a no-op. */
void ifq_wreq_destroy(ifq_wreq_t *r);

/* One provider call: started and ended (resp = the parsed answer or NULL;
 * status 0 when there was no HTTP response; err_type NULL on success). The spans of a sampled
 * request are recorded from the end of its first call on (see worker_obs.c). */
void ifq_wreq_attempt_start(ifq_wreq_t *r, const ifq_deployment_t *dep, ifq_url_kind_t kind,
                            int attempt);
void ifq_wreq_attempt_end(ifq_wreq_t *r, long status, const json_t *resp, const char *err_type,
                          const char *err_msg);
/* Output guardrails ran from start_ns to now with these findings (array of
 * finding objects, borrowed). */
void ifq_wreq_guard(ifq_wreq_t *r, int64_t start_ns, const json_t *findings, int blocked,
                    const char *blocked_by);

/* How a request ended, for ifq_wreq_finish. */
typedef struct ifq_wreq_outcome {
    const char *state;              /* succeeded, failed, expired */
    const char *err_code, *err_msg; /* the result's error; NULL on success */
    int64_t in_tok, out_tok;        /* usage; 0 when unknown */
    double cost;                    /* cost_usd */
    int attempts;                   /* the result's attempt records */
    int64_t model_ms;               /* time in model calls, every hop */
    const char *reply_topic;
} ifq_wreq_outcome_t;

/* The request leaves this worker with the outcome oc, its result going to
 * oc->reply_topic. Records the metrics, ends the spans, and, when the
 * team logs requests (ifq_wobs_logs_team), writes the request as routed
 * (routed: redacted by the input guardrails) and the result res (after
 * the output guardrails) to the logs topic; both are borrowed for the
 * call and may be NULL when the team does not log. The spans are produced
 * by ifq_wreq_send once the result is delivered: the hop's trace message
 * then does not sit in the producer beside its result (at thousands of
 * results at once, that was 2-3 KB of memory per request in flight). */
void ifq_wreq_finish(ifq_wreq_t *r, rd_kafka_t *rk, const json_t *routed, const json_t *res,
                     const ifq_wreq_outcome_t *oc);
/* 1 when the team's requests go to the logs topic (ifq_wreq_finish then
 * needs the routed message and the result as trees). */
int ifq_wobs_logs_team(const ifq_wobs_t *o, const char *team);
/* The request moves to the next deployment of its chain (next_topic).
 * Writes a new traceparent (this hop's hand-off span as the parent of the
 * next hop) into traceparent (size bytes) and into routed.inferq, ends
 * this hop's spans (ifq_wreq_send produces them), counts the failover. */
void ifq_wreq_failover(ifq_wreq_t *r, rd_kafka_t *rk, json_t *routed, const char *next_deployment,
                       const char *next_topic, char *traceparent, size_t size);
/* Span batches a loop hands to the exporter thread at once. */
typedef struct {
    ifq_wreq_t *head, *tail;
    size_t n;
} ifq_wbatch_t;

/* After ifq_wreq_finish or ifq_wreq_failover, once the result or hand-off
 * is delivered: adds the hop's spans to b, for ifq_wobs_submit, and r is
 * the exporter's. Without the exporter the spans are produced on rk here
 * and r is freed. NULL is a no-op; ifq_wreq_destroy instead drops the
 * spans. */
void ifq_wreq_send(ifq_wreq_t *r, rd_kafka_t *rk, ifq_wbatch_t *b);
/* Hands b to the exporter thread, which encodes each hop's spans, produces
 * them on its loop's producer (rk above) and frees it; *pending (the
 * loop's, guarded by the exporter) counts those not produced yet. With the
 * exporter's queue full they are produced here. Empties b. */
void ifq_wobs_submit(ifq_wobs_t *o, ifq_wbatch_t *b, int *pending);
/* Waits until the exporter has produced every span batch a loop handed it
 * (*pending is 0): before the loop flushes and destroys its producer. */
void ifq_wobs_drain(ifq_wobs_t *o, int *pending);

/* The msg_opaque of the span and log messages; the worker's delivery
 * callback ignores reports that carry it. */
extern char ifq_wobs_tag;

#endif
