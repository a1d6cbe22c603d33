/*
 * inferq-broker - consumes request topics, runs the pipeline on each
 * message and republishes: routed requests to per-model topics, error
 * results to reply topics, undecodable input to the dead-letter topic.
 *
 * One pass per batch: poll a batch, decide every message (lib/pipeline.c),
 * one Redis round trip for the batch's admissions (rate limits, budgets) and
 * cache lookups, one for its state updates, produce everything, then commit
 * the batch's offsets. With broker.transactions on (the default) the
 * produce and the offset commit are one Kafka transaction: a crash at any
 * point either publishes the whole batch with its offsets or nothing, so
 * each request appears exactly once on the per-model topics for
 * read_committed consumers. Without transactions, offsets are committed only
 * after every outcome of the batch is acknowledged (at least once).
 */
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "catalog.h"
#include "config.h"
#include "dashboard.h"
#include "guard.h"
#include "kafka.h"
#include "limits.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "prompt.h"
#include "state.h"
#include "trace.h"

#define TXN_ATTEMPTS 5
/* linger.ms of the broker's producers unless kafka.properties sets it
 * (the worker's is longer: workers/worker.c WORKER_LINGER_MS); the broker's
 * own benchmarks were measured with it (tests/bench/README.md). */
#define BROKER_LINGER_MS 2

typedef struct {
    char tp[64];
    char team[IFQ_MAX_NAME + 1];
    char sig[80];
    char origin[IFQ_MAX_TOPIC + 1]; /* held requests: where the client sent it */
    int64_t held_since;             /* held requests: when it was first held; 0 */
} hdrbuf_t;

typedef struct {
    ifq_decision_t d;
    const rd_kafka_message_t *src; /* the consumed message (for DLQ bytes) */
    int outside_txn;               /* already published by the side producer */
    int64_t held_since;            /* from the deferred topic; 0 for new requests */
    int64_t not_before;            /* HOLD: when to try again */
    int delivered;                 /* 1 ok, -1 failed, 0 pending */
    rd_kafka_resp_err_t err;
    ifq_admit_t admit;
    json_t *cached;
} out_t;

typedef struct {
    ifq_config_t *cfg;
    rd_kafka_t *producer;
    rd_kafka_t *side; /* transactions on: non-transactional, for client reply topics */
    int side_outstanding;
    rd_kafka_t *consumer;
    rd_kafka_t *deferred; /* held low-priority requests, <prefix>.deferred */
    char topic_deferred[IFQ_MAX_TOPIC + 1];
    struct {
        int32_t partition;
        int64_t resume_at;
    } paused[64];
    int npaused;
    ifq_state_t *state;
    ifq_limits_t *limits;
    ifq_prompts_t *prompts;
    ifq_guard_t *guard;
    ifq_avro_t *avro;
    ifq_pipeline_t pipeline;
    ifq_health_t health;
    int64_t health_read_ms;
    int transactions;
    atomic_int ready;
    atomic_int redis_ok;
    atomic_llong n_routed, n_rejected, n_expired, n_dlq, n_batches, n_produce_errors;
    atomic_llong n_rate_limited, n_budget, n_cache_hits, n_txn_aborts, n_held;
    int outstanding;
    char instance[160]; /* service.instance.id of the spans */
    ifq_metrics_t *metrics;
    struct {
        ifq_metric_t *requests, *findings, *routing, *stage, *lag, *spans, *spans_dropped;
    } m;
    int64_t lag_read_ms;
} broker_t;

/* Batch-level stage times (Unix ns) that every request of the batch shares. */
typedef struct {
    int64_t admit_start, admit_end, publish_start, publish_end;
} batch_times_t;

/* The msg_opaque of span messages: their delivery reports are not outcomes. */
static char span_tag;

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    broker_t *b = opaque;
    out_t *o = m->_private;
    if (o == (void *)&span_tag) {
        if (m->err)
            ifq_counter_add(b->m.spans_dropped, NULL, 1);
        return;
    }
    b->outstanding--;
    if (!o)
        return;
    o->err = m->err;
    o->delivered = m->err ? -1 : 1;
}

/* ---- admin ---------------------------------------------------------------- */

static int broker_ready(void *opaque, char *why, size_t why_size)
{
    broker_t *b = opaque;
    if (!atomic_load(&b->ready)) {
        snprintf(why, why_size, "waiting for the Kafka group assignment");
        return 0;
    }
    if (!atomic_load(&b->redis_ok)) {
        snprintf(why, why_size, "redis unreachable");
        return 0;
    }
    return 1;
}

static size_t broker_metrics(void *opaque, char *buf, size_t size)
{
    broker_t *b = opaque;
    int n =
        snprintf(buf, size,
                 "# HELP inferq_broker_requests_total Requests by outcome.\n"
                 "# TYPE inferq_broker_requests_total counter\n"
                 "inferq_broker_requests_total{outcome=\"routed\"} %lld\n"
                 "inferq_broker_requests_total{outcome=\"rejected\"} %lld\n"
                 "inferq_broker_requests_total{outcome=\"expired\"} %lld\n"
                 "inferq_broker_requests_total{outcome=\"dlq\"} %lld\n"
                 "inferq_broker_requests_total{outcome=\"rate_limited\"} %lld\n"
                 "inferq_broker_requests_total{outcome=\"budget_exceeded\"} %lld\n"
                 "inferq_broker_requests_total{outcome=\"cache_hit\"} %lld\n"
                 "inferq_broker_requests_total{outcome=\"held\"} %lld\n"
                 "# TYPE inferq_broker_batches_total counter\n"
                 "inferq_broker_batches_total %lld\n"
                 "# TYPE inferq_broker_transaction_aborts_total counter\n"
                 "inferq_broker_transaction_aborts_total %lld\n"
                 "# TYPE inferq_broker_produce_errors_total counter\n"
                 "inferq_broker_produce_errors_total %lld\n",
                 (long long)atomic_load(&b->n_routed), (long long)atomic_load(&b->n_rejected),
                 (long long)atomic_load(&b->n_expired), (long long)atomic_load(&b->n_dlq),
                 (long long)atomic_load(&b->n_rate_limited), (long long)atomic_load(&b->n_budget),
                 (long long)atomic_load(&b->n_cache_hits), (long long)atomic_load(&b->n_held),
                 (long long)atomic_load(&b->n_batches), (long long)atomic_load(&b->n_txn_aborts),
                 (long long)atomic_load(&b->n_produce_errors));
    size_t len = n < 0 ? 0 : (size_t)n >= size ? size - 1 : (size_t)n;
    return len + ifq_metrics_render(b->metrics, buf + len, size - len);
}

static char *broker_models(void *opaque, const char *team, int *status)
{
    broker_t *b = opaque;
    if (team && !ifq_config_team(b->cfg, team)) {
        *status = 404;
        return strdup(
            "{\"error\":{\"message\":\"no such team\",\"type\":\"invalid_request_error\"}}");
    }
    /* The health view is written by the main thread; a torn read of an int
     * only shows a health flag a second late. */
    json_t *list = ifq_catalog_models(b->cfg, team, &b->health);
    char *s = json_dumps(list, JSON_COMPACT);
    json_decref(list);
    *status = 200;
    return s;
}

/* ---- Kafka ------------------------------------------------------------------ */

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    broker_t *b = opaque;
    int coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (coop)
            rd_kafka_incremental_assign(rk, parts);
        else
            rd_kafka_assign(rk, parts);
        atomic_store(&b->ready, 1);
        ifq_info("partitions_assigned", "%d partition(s)", parts->cnt);
    } else {
        /* Batches are finished synchronously, so nothing of these partitions
         * is in flight here: their committed offsets are already final. */
        if (coop)
            rd_kafka_incremental_unassign(rk, parts);
        else
            rd_kafka_assign(rk, NULL);
        ifq_info("partitions_revoked", "%d partition(s)", parts->cnt);
    }
}

static rd_kafka_headers_t *headers_for(const out_t *o, const ifq_msgmeta_t *meta)
{
    rd_kafka_headers_t *h;
    if (o->d.kind == IFQ_OUT_HOLD) {
        /* The client's headers (a signature stays valid: the value is the
         * same bytes) plus where it came from and when to retry. Only
         * brokers write the deferred topic, so these are trusted there. */
        rd_kafka_headers_t *orig = NULL;
        if (rd_kafka_message_headers(o->src, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR && orig)
            h = rd_kafka_headers_copy(orig);
        else
            h = rd_kafka_headers_new(8);
        static const char *const mine[] = {"inferq-origin-topic",  "inferq-origin-partition",
                                           "inferq-origin-offset", "inferq-origin-ts",
                                           "inferq-held-since",    "inferq-not-before",
                                           "traceparent"};
        for (size_t i = 0; i < IFQ_ARRAY_LEN(mine); i++)
            rd_kafka_header_remove(h, mine[i]);
        /* The next round continues this trace under this broker.request. */
        rd_kafka_header_add(h, "traceparent", -1, o->d.traceparent, -1);
        char num[32];
        rd_kafka_header_add(h, "inferq-origin-topic", -1, meta->topic, -1);
        snprintf(num, sizeof(num), "%d", (int)meta->partition);
        rd_kafka_header_add(h, "inferq-origin-partition", -1, num, -1);
        snprintf(num, sizeof(num), "%lld", (long long)meta->offset);
        rd_kafka_header_add(h, "inferq-origin-offset", -1, num, -1);
        snprintf(num, sizeof(num), "%lld", (long long)meta->timestamp);
        rd_kafka_header_add(h, "inferq-origin-ts", -1, num, -1);
        snprintf(num, sizeof(num), "%lld", (long long)o->held_since);
        rd_kafka_header_add(h, "inferq-held-since", -1, num, -1);
        snprintf(num, sizeof(num), "%lld", (long long)o->not_before);
        rd_kafka_header_add(h, "inferq-not-before", -1, num, -1);
        return h;
    }
    if (o->d.kind == IFQ_OUT_DLQ) {
        /* Keep the client's headers and add why, where from and when. */
        rd_kafka_headers_t *orig = NULL;
        if (rd_kafka_message_headers(o->src, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR && orig)
            h = rd_kafka_headers_copy(orig);
        else
            h = rd_kafka_headers_new(8);
        ifq_kafka_dlq_headers(h, o->d.reason, o->d.error_code, meta->topic, meta->partition,
                              meta->offset);
        rd_kafka_header_add(h, "inferq-id", -1, o->d.id, -1);
        return h;
    }
    h = rd_kafka_headers_new(4);
    rd_kafka_header_add(h, "inferq-id", -1, o->d.id, -1);
    rd_kafka_header_add(h, "traceparent", -1, o->d.traceparent, -1);
    rd_kafka_header_add(h, "content-type", -1, "application/json", -1);
    if (o->d.kind == IFQ_OUT_ROUTE)
        rd_kafka_header_add(h, "inferq-attempt", -1, "0", -1);
    return h;
}

static int produce_on(broker_t *b, rd_kafka_t *rk, int *outstanding, out_t *o,
                      const ifq_msgmeta_t *meta)
{
    int raw = o->d.kind == IFQ_OUT_DLQ || o->d.kind == IFQ_OUT_HOLD; /* the original bytes */
    const void *val = raw ? o->src->payload : o->d.value;
    size_t len = raw ? o->src->len : o->d.len;
    const void *key = raw ? o->src->key : o->d.custom_id;
    size_t klen = raw ? o->src->key_len : strlen(o->d.custom_id);
    rd_kafka_headers_t *h = headers_for(o, meta);
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(o->d.topic), RD_KAFKA_V_VALUE((void *)val, len),
            RD_KAFKA_V_KEY((void *)key, klen), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(o), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(rk, 50);
            continue;
        }
        if (err) {
            rd_kafka_headers_destroy(h);
            o->delivered = -1;
            o->err = err;
            return -1;
        }
        (*outstanding)++;
        o->delivered = 0;
        return 0;
    }
}

static int retarget_failed_replies(broker_t *b, out_t *outs, size_t n);

static int produce_one(broker_t *b, out_t *o, const ifq_msgmeta_t *meta)
{
    return produce_on(b, b->producer, &b->outstanding, o, meta);
}

static void side_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    broker_t *b = opaque;
    out_t *o = m->_private;
    if (o == (void *)&span_tag) {
        if (m->err)
            ifq_counter_add(b->m.spans_dropped, NULL, 1);
        return;
    }
    b->side_outstanding--;
    if (!o)
        return;
    o->err = m->err;
    o->delivered = m->err ? -1 : 1;
}

/* Results addressed to a topic the client named go out before the
 * transaction, on a plain producer: a topic that does not exist or that the
 * broker may not write must not poison the transaction (an authorization
 * error there is fatal to the producer). Failures are retargeted to the
 * default reply topic, inside the transaction. A crash between the two
 * repeats such a result on redelivery, never loses it: results are
 * at-least-once, routed requests exactly-once. */
static void publish_client_replies(broker_t *b, out_t *outs, const ifq_msgmeta_t *metas, size_t n)
{
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        out_t *o = &outs[i];
        if (o->d.kind != IFQ_OUT_RESULT || strcmp(o->d.topic, b->cfg->topic_replies) == 0)
            continue;
        produce_on(b, b->side, &b->side_outstanding, o, &metas[i]);
        any = 1;
    }
    if (!any)
        return;
    while (b->side_outstanding > 0)
        rd_kafka_poll(b->side, 100);
    for (size_t i = 0; i < n; i++) {
        out_t *o = &outs[i];
        if (o->d.kind != IFQ_OUT_RESULT || strcmp(o->d.topic, b->cfg->topic_replies) == 0)
            continue;
        if (o->delivered == 1)
            o->outside_txn = 1;
    }
    retarget_failed_replies(b, outs, n);
}

static void meta_of(const rd_kafka_message_t *m, ifq_msgmeta_t *meta, hdrbuf_t *hb)
{
    meta->topic = rd_kafka_topic_name(m->rkt);
    meta->partition = m->partition;
    meta->offset = m->offset;
    rd_kafka_timestamp_type_t tstype;
    meta->timestamp = rd_kafka_message_timestamp(m, &tstype);
    meta->traceparent =
        ifq_kafka_header(m, "traceparent", hb->tp, sizeof(hb->tp)) > 0 ? hb->tp : NULL;
    meta->sig_team =
        ifq_kafka_header(m, "inferq-team", hb->team, sizeof(hb->team)) > 0 ? hb->team : NULL;
    meta->signature =
        ifq_kafka_header(m, "inferq-signature", hb->sig, sizeof(hb->sig)) > 0 ? hb->sig : NULL;
    hb->held_since = 0;
}

/* A held request is decided as if it arrived where the client sent it: its
 * team (from the topic) and its id (from the coordinates) stay the same. */
static void meta_of_held(const rd_kafka_message_t *m, ifq_msgmeta_t *meta, hdrbuf_t *hb)
{
    meta_of(m, meta, hb);
    char num[32];
    int64_t v;
    if (ifq_kafka_header(m, "inferq-origin-topic", hb->origin, sizeof(hb->origin)) > 0)
        meta->topic = hb->origin;
    if (ifq_kafka_header(m, "inferq-origin-partition", num, sizeof(num)) > 0 &&
        ifq_parse_i64(num, &v) == IFQ_OK)
        meta->partition = (int32_t)v;
    if (ifq_kafka_header(m, "inferq-origin-offset", num, sizeof(num)) > 0 &&
        ifq_parse_i64(num, &v) == IFQ_OK)
        meta->offset = v;
    if (ifq_kafka_header(m, "inferq-origin-ts", num, sizeof(num)) > 0 &&
        ifq_parse_i64(num, &v) == IFQ_OK)
        meta->timestamp = v;
    if (ifq_kafka_header(m, "inferq-held-since", num, sizeof(num)) > 0 &&
        ifq_parse_i64(num, &v) == IFQ_OK)
        hb->held_since = v;
}

/* Results for a client-named reply topic that failed (it does not exist)
 * go to the default reply topic instead, so they never stall a partition.
 * Returns the number retargeted. */
static int retarget_failed_replies(broker_t *b, out_t *outs, size_t n)
{
    int moved = 0;
    for (size_t i = 0; i < n; i++) {
        out_t *o = &outs[i];
        if (o->delivered < 0 && o->d.kind == IFQ_OUT_RESULT &&
            strcmp(o->d.topic, b->cfg->topic_replies) != 0) {
            ifq_warn("reply_topic_failed", "reply_to %s: %s; using %s", o->d.topic,
                     rd_kafka_err2str(o->err), b->cfg->topic_replies);
            snprintf(o->d.topic, sizeof(o->d.topic), "%s", b->cfg->topic_replies);
            moved++;
        }
    }
    return moved;
}

/* The next offsets to commit, from the consumed messages themselves (a held
 * request's meta names its origin, not where it was read). */
static rd_kafka_topic_partition_list_t *batch_offsets(const out_t *outs, size_t n)
{
    rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_message_t *m = outs[i].src;
        const char *topic = rd_kafka_topic_name(m->rkt);
        rd_kafka_topic_partition_t *p =
            rd_kafka_topic_partition_list_find(offs, topic, m->partition);
        if (!p)
            p = rd_kafka_topic_partition_list_add(offs, topic, m->partition);
        if (m->offset + 1 > p->offset)
            p->offset = m->offset + 1;
    }
    return offs;
}

/* At least once: produce, wait for every acknowledgement, then commit. */
static int publish_plain(broker_t *b, rd_kafka_t *consumer, out_t *outs, const ifq_msgmeta_t *metas,
                         size_t n)
{
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < n; i++)
            if (outs[i].delivered != 1)
                produce_one(b, &outs[i], &metas[i]);
        while (b->outstanding > 0)
            rd_kafka_poll(b->producer, 100);
        if (!retarget_failed_replies(b, outs, n))
            break;
    }
    for (size_t i = 0; i < n; i++)
        if (outs[i].delivered != 1) {
            ifq_error("produce_failed", "%s[%d]@%lld -> %s: %s", metas[i].topic,
                      (int)metas[i].partition, (long long)metas[i].offset, outs[i].d.topic,
                      rd_kafka_err2str(outs[i].err));
            return -1;
        }
    rd_kafka_topic_partition_list_t *offs = batch_offsets(outs, n);
    rd_kafka_resp_err_t err = rd_kafka_commit(consumer, offs, 1);
    if (err)
        ifq_warn("commit_failed", "%s", rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(offs);
    return 0;
}

/* Exactly once: the batch's outputs and its consumer offsets in one
 * transaction. An abortable error aborts and publishes the batch again in a
 * new transaction (the batch is still in memory); a fatal one (fenced by a
 * newer instance) returns -1. */
static int publish_txn(broker_t *b, rd_kafka_t *consumer, out_t *outs, const ifq_msgmeta_t *metas,
                       size_t n)
{
    publish_client_replies(b, outs, metas, n);
    for (int attempt = 0; attempt < TXN_ATTEMPTS && !stop_requested; attempt++) {
        rd_kafka_error_t *e = rd_kafka_begin_transaction(b->producer);
        if (e) {
            ifq_error("transaction_failed", "begin: %s", rd_kafka_error_string(e));
            int fatal = rd_kafka_error_is_fatal(e);
            rd_kafka_error_destroy(e);
            if (fatal)
                return -1;
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            if (outs[i].outside_txn)
                continue;
            outs[i].delivered = 0;
            produce_one(b, &outs[i], &metas[i]);
        }
        rd_kafka_flush(b->producer, 60000);
        int failed = 0;
        for (size_t i = 0; i < n; i++)
            failed += !outs[i].outside_txn && outs[i].delivered != 1;
        if (!failed) {
            rd_kafka_topic_partition_list_t *offs = batch_offsets(outs, n);
            rd_kafka_consumer_group_metadata_t *gm = rd_kafka_consumer_group_metadata(consumer);
            e = rd_kafka_send_offsets_to_transaction(b->producer, offs, gm, -1);
            rd_kafka_consumer_group_metadata_destroy(gm);
            rd_kafka_topic_partition_list_destroy(offs);
            if (!e)
                e = rd_kafka_commit_transaction(b->producer, -1);
            if (!e)
                return 0;
            ifq_warn("transaction_failed", "commit: %s", rd_kafka_error_string(e));
            if (rd_kafka_error_is_fatal(e)) {
                rd_kafka_error_destroy(e);
                return -1;
            }
            rd_kafka_error_destroy(e);
        } else {
            retarget_failed_replies(b, outs, n);
        }
        atomic_fetch_add(&b->n_txn_aborts, 1);
        e = rd_kafka_abort_transaction(b->producer, -1);
        if (e) {
            ifq_error("transaction_failed", "abort: %s", rd_kafka_error_string(e));
            int fatal = rd_kafka_error_is_fatal(e);
            rd_kafka_error_destroy(e);
            if (fatal)
                return -1;
        }
    }
    return -1;
}

/* ---- observability ---------------------------------------------------------- */

static void metrics_init(broker_t *b)
{
    ifq_metrics_t *r = b->metrics;
    b->m.requests = ifq_metrics_counter(
        r, "inferq_requests_total",
        "Requests decided by the broker, by outcome (routed, rejected, expired, succeeded for "
        "cache hits, held, dlq), error code, team, alias (model requested) and deployment.",
        "status,code,team,alias,deployment");
    b->m.findings = ifq_metrics_counter(
        r, "inferq_guardrail_findings_total",
        "Guardrail findings by stage (input here), detector and action.", "stage,detector,action");
    b->m.routing = ifq_metrics_counter(r, "inferq_routing_decisions_total",
                                       "Routing decisions by alias, strategy and first deployment.",
                                       "alias,strategy,deployment");
    b->m.stage = ifq_metrics_histogram(
        r, "inferq_broker_stage_seconds",
        "Time per broker stage and request (admission and publish are per batch).", "stage",
        ifq_metrics_latency_buckets, ifq_metrics_latency_nbuckets);
    b->m.lag = ifq_metrics_gauge(
        r, "inferq_consumer_lag",
        "Messages not yet consumed per partition (high watermark minus position).",
        "group,topic,partition");
    b->m.spans = ifq_metrics_counter(r, "inferq_trace_messages_total",
                                     "OTLP span messages produced to the traces topic.", NULL);
    b->m.spans_dropped = ifq_metrics_counter(
        r, "inferq_trace_messages_dropped_total",
        "Span messages dropped (producer queue full, encoding or delivery failure).", NULL);
}

static void observe_stage(broker_t *b, const char *stage, int64_t start, int64_t end)
{
    if (start && end >= start)
        ifq_histogram_observe(b->m.stage, (const char *[]){stage}, (double)(end - start) / 1e9);
}

static void finding_names(const json_t *f, const char **detector, const char **action)
{
    *detector = json_string_value(json_object_get(f, "detector"));
    *action = json_string_value(json_object_get(f, "action"));
    if (!*detector)
        *detector = "unknown";
    if (!*action)
        *action = "unknown";
}

static void request_metrics(broker_t *b, const out_t *o)
{
    const ifq_decision_t *d = &o->d;
    const char *status = d->kind == IFQ_OUT_DLQ ? "dlq" : d->state ? d->state : "unknown";
    const char *labels[] = {status, d->error_code ? d->error_code : "", d->team, d->model_requested,
                            d->deployment};
    ifq_counter_add(b->m.requests, labels, 1);
    size_t i;
    json_t *f;
    json_array_foreach(d->findings, i, f)
    {
        const char *det, *act;
        finding_names(f, &det, &act);
        ifq_counter_add(b->m.findings, (const char *[]){"input", det, act}, 1);
    }
    if (d->route_strategy[0]) {
        const char *first = d->kind == IFQ_OUT_ROUTE ? d->deployment : "";
        ifq_counter_add(b->m.routing,
                        (const char *[]){d->model_requested, d->route_strategy, first}, 1);
    }
    observe_stage(b, "decode", d->t.start, d->t.decoded);
    observe_stage(b, "prompt", d->t.prompt_start, d->t.prompt_end);
    observe_stage(b, "guardrails", d->t.guard_start, d->t.guard_end);
    observe_stage(b, "route", d->t.route_start, d->t.route_end);
}

static ifq_span_t *stage_span(ifq_spans_t *sp, const char *name, const char *parent, int64_t start,
                              int64_t end)
{
    if (!start)
        return NULL;
    ifq_span_t *s = ifq_span_start(sp, name, IFQ_SPAN_INTERNAL, parent, NULL, start);
    ifq_span_end(s, end ? end : start);
    return s;
}

static void guard_span(ifq_spans_t *sp, const ifq_decision_t *d, const char *parent)
{
    ifq_span_t *s = stage_span(sp, "broker.guardrails", parent, d->t.guard_start, d->t.guard_end);
    if (!s)
        return;
    const char *dets[16], *acts[16];
    size_t n = 0, i;
    json_t *f;
    json_array_foreach(d->findings, i, f)
    {
        if (n < 16) {
            finding_names(f, &dets[n], &acts[n]);
            n++;
        }
    }
    ifq_span_str(s, "inferq.guardrail.stage", "input");
    ifq_span_int(s, "inferq.guardrail.findings", (int64_t)json_array_size(d->findings));
    if (n) {
        ifq_span_strs(s, "inferq.guardrail.detectors", dets, n);
        ifq_span_strs(s, "inferq.guardrail.actions", acts, n);
    }
    ifq_span_bool(s, "inferq.guardrail.blocked", d->blocked_by[0] != 0);
    if (d->blocked_by[0]) {
        char msg[300];
        snprintf(msg, sizeof(msg), "blocked by guardrails: %s", d->blocked_by);
        ifq_span_status(s, IFQ_STATUS_ERROR, msg);
    }
}

/* The spans of one request's pass through the broker: broker.request (a
 * child of the client's span when its traceparent came along; its span id
 * is the parent id the routed message carries), a child per stage that
 * ran, and the publish. One message on the traces topic. */
static void request_spans(broker_t *b, const out_t *o, const ifq_msgmeta_t *meta,
                          const batch_times_t *bt)
{
    const ifq_decision_t *d = &o->d;
    ifq_tracectx_t ctx, parent;
    if (!b->cfg->trace_enabled || ifq_tracectx_parse(d->traceparent, &ctx) < 0 || !ctx.sampled)
        return;
    int has_parent = ifq_tracectx_parse(meta->traceparent, &parent) == 0;
    ifq_spans_t *sp = ifq_spans_new(ctx.trace_id, d->custom_id, d->id);
    ifq_span_t *root = ifq_span_start(sp, "broker.request", IFQ_SPAN_CONSUMER,
                                      has_parent ? parent.span_id : NULL, ctx.span_id, d->t.start);
    const char *outcome = d->kind == IFQ_OUT_DLQ ? "dlq" : d->state;
    ifq_span_str(root, "messaging.system", "kafka");
    ifq_span_str(root, "messaging.operation.type", "process");
    ifq_span_str(root, "messaging.destination.name", meta->topic);
    ifq_span_int(root, "messaging.destination.partition.id", meta->partition);
    ifq_span_int(root, "messaging.kafka.offset", meta->offset);
    ifq_span_int(root, "inferq.request_topic_wait_ms", d->t.start / 1000000 - meta->timestamp);
    ifq_span_str(root, "inferq.outcome", outcome);
    if (d->team[0])
        ifq_span_str(root, "inferq.team", d->team);
    if (d->model_requested[0])
        ifq_span_str(root, "inferq.alias", d->model_requested);
    if (d->deployment[0])
        ifq_span_str(root, "inferq.deployment", d->deployment);
    if (d->route_strategy[0]) {
        ifq_span_str(root, "inferq.route.strategy", d->route_strategy);
        ifq_span_str(root, "inferq.route.decision", d->route_chain);
    }
    ifq_span_int(root, "inferq.guardrail.findings", (int64_t)json_array_size(d->findings));
    if (d->error_code) {
        char msg[600];
        snprintf(msg, sizeof(msg), "%s: %s", d->error_code, d->reason);
        ifq_span_str(root, "error.type", d->error_code);
        ifq_span_status(root, IFQ_STATUS_ERROR, msg);
    } else if (d->kind == IFQ_OUT_DLQ) {
        ifq_span_str(root, "error.type", "undecodable");
        ifq_span_status(root, IFQ_STATUS_ERROR, d->reason);
    } else if (d->kind != IFQ_OUT_HOLD) {
        ifq_span_status(root, IFQ_STATUS_OK, NULL);
    }
    const char *pid = ctx.span_id;
    ifq_span_t *dec = stage_span(sp, "broker.decode", pid, d->t.start, d->t.decoded);
    if (d->kind == IFQ_OUT_DLQ)
        ifq_span_status(dec, IFQ_STATUS_ERROR, d->reason);
    stage_span(sp, "broker.prompt", pid, d->t.prompt_start, d->t.prompt_end);
    guard_span(sp, d, pid);
    /* The routing decision's attributes are on broker.request only. */
    stage_span(sp, "broker.route", pid, d->t.route_start, d->t.route_end);
    if (d->route_strategy[0] && d->cache_key[0]) {
        ifq_span_t *c = stage_span(sp, "broker.cache", pid, bt->admit_start, bt->admit_end);
        ifq_span_bool(c, "inferq.cache.hit", d->state && strcmp(d->state, "succeeded") == 0);
    }
    if (d->route_strategy[0] &&
        ifq_limits_apply(ifq_config_team(b->cfg, d->team), d->model_requested)) {
        ifq_span_t *l = stage_span(sp, "broker.limits", pid, bt->admit_start, bt->admit_end);
        const char *st = o->admit.status == IFQ_ADMIT_RATE     ? "rate_limited"
                         : o->admit.status == IFQ_ADMIT_BUDGET ? "budget_exceeded"
                                                               : "admitted";
        ifq_span_str(l, "inferq.limits.result", st);
        if (o->admit.status == IFQ_ADMIT_RATE || o->admit.status == IFQ_ADMIT_BUDGET)
            ifq_span_status(l, IFQ_STATUS_ERROR, st);
    }
    ifq_span_t *pub =
        ifq_span_start(sp, "broker.publish", IFQ_SPAN_PRODUCER, pid, NULL, bt->publish_start);
    ifq_span_str(pub, "messaging.system", "kafka");
    ifq_span_str(pub, "messaging.operation.type", "send");
    ifq_span_str(pub, "messaging.destination.name", d->topic);
    ifq_span_end(pub, bt->publish_end);
    ifq_span_end(root, bt->publish_end);
    rd_kafka_t *rk = b->side ? b->side : b->producer;
    if (ifq_spans_produce(sp, rk, b->cfg->topic_traces, "inferq-broker", b->instance, &span_tag) ==
        0)
        ifq_counter_add(b->m.spans, NULL, 1);
    else
        ifq_counter_add(b->m.spans_dropped, NULL, 1);
    ifq_spans_destroy(sp);
}

/* A blocked request is worth a log line (without the matched text). */
static void request_log(const out_t *o)
{
    const ifq_decision_t *d = &o->d;
    if (!d->error_code || strcmp(d->error_code, "guardrail_blocked") != 0)
        return;
    ifq_log_req(IFQ_LOG_INFO, "request_blocked", d->traceparent, d->custom_id,
                json_pack("{ss ss ss}", "id", d->id, "team", d->team, "detectors", d->blocked_by),
                "blocked by input guardrails");
}

/* Lag of the assigned partitions, every 5 s: librdkafka's cached high
 * watermarks (from fetch responses) minus the consumer's position. */
static void refresh_lag(broker_t *b)
{
    int64_t now = ifq_mono_ms();
    if (now - b->lag_read_ms < 5000)
        return;
    b->lag_read_ms = now;
    ifq_metric_reset(b->m.lag);
    ifq_metrics_kafka_lag(b->m.lag, b->consumer, b->cfg->broker_group);
}

/* ---- the batch -------------------------------------------------------------- */

static void queue_state(broker_t *b, const ifq_decision_t *d, const ifq_msgmeta_t *meta)
{
    const char *kv[12];
    size_t nkv = 0;
    char trace_id[33], received[24];
    kv[nkv++] = "model";
    kv[nkv++] = d->model_requested;
    if (d->kind == IFQ_OUT_ROUTE) {
        kv[nkv++] = "deployment";
        kv[nkv++] = d->deployment;
    } else if (d->error_code) {
        kv[nkv++] = "error_code";
        kv[nkv++] = d->error_code;
    }
    if (d->team[0]) {
        kv[nkv++] = "team";
        kv[nkv++] = d->team;
    }
    snprintf(trace_id, sizeof(trace_id), "%.32s", d->traceparent + 3);
    kv[nkv++] = "trace_id";
    kv[nkv++] = trace_id;
    /* received_ms is when the client's message reached Kafka. */
    snprintf(received, sizeof(received), "%lld", (long long)meta->timestamp);
    kv[nkv++] = "received_ms";
    kv[nkv++] = received;
    ifq_state_queue(b->state, d->custom_id, d->id, d->state, kv, nkv);
}

/* Rate limits, budgets and the cache, for the routed requests of the batch:
 * one Redis round trip. Redis being down admits (and logs): the gateway
 * degrades to unlimited rather than stopping. */
static void admission_stage(broker_t *b, out_t *outs, size_t n, int64_t now)
{
    int queued = 0;
    for (size_t i = 0; i < n; i++) {
        ifq_decision_t *d = &outs[i].d;
        outs[i].admit.status = IFQ_ADMIT_OK;
        if (d->kind != IFQ_OUT_ROUTE)
            continue;
        if (d->cache_key[0]) {
            ifq_cache_lookup(b->state, b->cfg->prefix, d->cache_key, &outs[i].cached);
            queued++;
        }
        const ifq_team_t *team = ifq_config_team(b->cfg, d->team);
        if (ifq_limits_apply(team, d->model_requested)) {
            ifq_limits_admit(b->limits, team, d->model_requested, d->est_tokens, d->est_cost, now,
                             &outs[i].admit);
            queued++;
        }
    }
    if (!queued)
        return;
    char errstr[256];
    if (ifq_state_flush(b->state, errstr, sizeof(errstr)) != IFQ_OK)
        ifq_warn("admission_unavailable", "%s; admitting without limits", errstr);
    for (size_t i = 0; i < n; i++) {
        out_t *o = &outs[i];
        if (o->d.kind != IFQ_OUT_ROUTE)
            continue;
        if (o->cached) {
            /* A cached answer costs nothing, so it is served even over a
             * limit; its admission (if any) already counted it. */
            ifq_decision_cached(&o->d, o->cached, now);
            json_decref(o->cached);
            o->cached = NULL;
            atomic_fetch_add(&b->n_cache_hits, 1);
            continue;
        }
        if (o->admit.status == IFQ_ADMIT_RATE || o->admit.status == IFQ_ADMIT_BUDGET) {
            int rate = o->admit.status == IFQ_ADMIT_RATE;
            const ifq_team_t *team = ifq_config_team(b->cfg, o->d.team);
            int64_t since = o->held_since ? o->held_since : now;
            if (team && team->hold_low_priority && o->d.priority == IFQ_PRIO_LOW &&
                now + o->admit.retry_after_ms - since <= b->cfg->hold_max_ms) {
                /* Low priority waits for the window to roll over instead
                 * of failing: parked on the deferred topic until then. */
                json_decref(o->d.request);
                o->d.request = NULL;
                o->d.kind = IFQ_OUT_HOLD;
                o->d.state = "held";
                o->held_since = since;
                o->not_before = now + o->admit.retry_after_ms;
                snprintf(o->d.topic, sizeof(o->d.topic), "%s", b->topic_deferred);
                atomic_fetch_add(&b->n_held, 1);
                continue;
            }
            char msg[256];
            snprintf(msg, sizeof(msg), "team %s is over its %s %s; retry in %lld ms", o->d.team,
                     o->admit.which, rate ? "rate limit" : "budget",
                     (long long)o->admit.retry_after_ms);
            json_t *extra = json_pack("{sI ss}", "retry_after_ms",
                                      (json_int_t)o->admit.retry_after_ms, "limit", o->admit.which);
            ifq_decision_reject(&o->d, "rejected", rate ? "rate_limited" : "budget_exceeded", msg,
                                extra, now);
            json_decref(extra);
            atomic_fetch_add(rate ? &b->n_rate_limited : &b->n_budget, 1);
        } else if (o->admit.status == IFQ_ADMIT_OK && o->d.request) {
            /* The window the tokens were counted in, for the worker's
             * reconciliation with the real usage. */
            json_t *ext = json_object_get(o->d.request, "inferq");
            if (ifq_limits_apply(ifq_config_team(b->cfg, o->d.team), o->d.model_requested))
                json_object_set_new(ext, "limit_minute", json_integer(o->admit.minute));
        }
    }
}

static void refresh_health(broker_t *b)
{
    int64_t now = ifq_mono_ms();
    if (now - b->health_read_ms < 1000)
        return;
    b->health_read_ms = now;
    if (ifq_state_read_health(b->state, b->cfg, &b->health) != IFQ_OK)
        ifq_warn("health_unavailable", "cannot read deployment health from redis");
}

/* Runs one batch to completion. Returns 0, or -1 when its outcomes could
 * not be made durable (the caller then exits without committing). */
static int process_batch(broker_t *b, rd_kafka_t *consumer, rd_kafka_message_t **msgs, size_t n,
                         int held)
{
    out_t *outs = calloc(n, sizeof(*outs));
    ifq_msgmeta_t *metas = calloc(n, sizeof(*metas));
    hdrbuf_t *hbs = calloc(n, sizeof(*hbs));
    if (!outs || !metas || !hbs) {
        free(outs);
        free(metas);
        free(hbs);
        return -1;
    }
    refresh_health(b);
    int64_t now = ifq_now_ms();
    for (size_t i = 0; i < n; i++) {
        if (held)
            meta_of_held(msgs[i], &metas[i], &hbs[i]);
        else
            meta_of(msgs[i], &metas[i], &hbs[i]);
        outs[i].src = msgs[i];
        outs[i].held_since = hbs[i].held_since;
        ifq_pipeline_decide(&b->pipeline, msgs[i]->payload, msgs[i]->len, &metas[i], now,
                            &outs[i].d);
    }
    batch_times_t bt = {0};
    bt.admit_start = ifq_now_ns();
    admission_stage(b, outs, n, now);
    bt.admit_end = ifq_now_ns();
    for (size_t i = 0; i < n; i++) {
        ifq_decision_t *d = &outs[i].d;
        ifq_decision_finish(d);
        if (d->kind != IFQ_OUT_DLQ) {
            queue_state(b, d, &metas[i]);
        } else {
            ifq_log_fields(IFQ_LOG_WARN, "dead_lettered",
                           json_pack("{ss si sI ss}", "topic", metas[i].topic, "partition",
                                     (int)metas[i].partition, "offset", (json_int_t)metas[i].offset,
                                     "id", d->id),
                           "%s", d->reason);
        }
    }
    char errstr[256];
    int redis_ok = ifq_state_flush(b->state, errstr, sizeof(errstr)) == IFQ_OK;
    if (!redis_ok)
        ifq_warn("state_flush_failed", "%s (requests still flow; state catches up)", errstr);
    atomic_store(&b->redis_ok, redis_ok);

    bt.publish_start = ifq_now_ns();
    int rc = b->transactions ? publish_txn(b, consumer, outs, metas, n)
                             : publish_plain(b, consumer, outs, metas, n);
    bt.publish_end = ifq_now_ns();
    observe_stage(b, "admission", bt.admit_start, bt.admit_end);
    observe_stage(b, "publish", bt.publish_start, bt.publish_end);
    for (size_t i = 0; i < n; i++) {
        out_t *o = &outs[i];
        if (rc == 0) {
            request_metrics(b, o);
            request_spans(b, o, &metas[i], &bt);
            request_log(o);
            if (o->d.kind == IFQ_OUT_ROUTE)
                atomic_fetch_add(&b->n_routed, 1);
            else if (o->d.kind == IFQ_OUT_DLQ)
                atomic_fetch_add(&b->n_dlq, 1);
            else if (strcmp(o->d.state, "expired") == 0)
                atomic_fetch_add(&b->n_expired, 1);
            else if (strcmp(o->d.state, "rejected") == 0)
                atomic_fetch_add(&b->n_rejected, 1);
        } else {
            atomic_fetch_add(&b->n_produce_errors, 1);
        }
        json_decref(o->cached);
        ifq_decision_clear(&o->d);
    }
    if (rc == 0)
        atomic_fetch_add(&b->n_batches, 1);
    free(outs);
    free(metas);
    free(hbs);
    return rc;
}

/* Held requests come back when due. A partition whose head is not due yet
 * is paused and rewound to it, and resumed at its time: nothing is skipped,
 * nothing spins. Returns what process_batch returns. */
static int serve_deferred(broker_t *b, rd_kafka_message_t **msgs, size_t cap)
{
    if (!b->deferred)
        return 0;
    int64_t now = ifq_now_ms();
    for (int i = 0; i < b->npaused;) {
        if (b->paused[i].resume_at > now) {
            i++;
            continue;
        }
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, b->topic_deferred, b->paused[i].partition);
        rd_kafka_resume_partitions(b->deferred, l);
        rd_kafka_topic_partition_list_destroy(l);
        b->paused[i] = b->paused[--b->npaused];
    }
    size_t n = 0;
    int32_t stopped[64];
    int nstopped = 0;
    while (n < cap) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(b->deferred, 0);
        if (!m)
            break;
        int skip = m->err != 0;
        for (int k = 0; k < nstopped && !skip; k++)
            skip = stopped[k] == m->partition;
        char num[32];
        int64_t nb = 0;
        if (!skip && ifq_kafka_header(m, "inferq-not-before", num, sizeof(num)) > 0)
            ifq_parse_i64(num, &nb);
        if (!skip && nb > now && nstopped < 64 && b->npaused < 64) {
            rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(l, b->topic_deferred, m->partition)->offset =
                m->offset;
            rd_kafka_pause_partitions(b->deferred, l);
            rd_kafka_error_t *e = rd_kafka_seek_partitions(b->deferred, l, 5000);
            if (e)
                rd_kafka_error_destroy(e);
            rd_kafka_topic_partition_list_destroy(l);
            b->paused[b->npaused].partition = m->partition;
            b->paused[b->npaused++].resume_at = nb;
            stopped[nstopped++] = m->partition;
            skip = 1;
        }
        if (skip) {
            rd_kafka_message_destroy(m);
            continue;
        }
        msgs[n++] = m;
    }
    int rc = n ? process_batch(b, b->deferred, msgs, n, 1) : 0;
    for (size_t i = 0; i < n; i++)
        rd_kafka_message_destroy(msgs[i]);
    return rc;
}

/* ---- main -------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: inferq-broker --config FILE [--instance-id ID] "
                    "[--log-level debug|info|warn|error]\n");
}

int main(int argc, char **argv)
{
    const char *config_path = getenv("INFERQ_CONFIG");
    const char *level = NULL;
    const char *instance = getenv("INFERQ_INSTANCE_ID");
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"log-level", required_argument, NULL, 'l'},
                                         {"instance-id", required_argument, NULL, 'i'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "c:l:i:h", opts, NULL)) != -1) {
        if (c == 'c')
            config_path = optarg;
        else if (c == 'l')
            level = optarg;
        else if (c == 'i')
            instance = optarg;
        else {
            usage();
            return c == 'h' ? 0 : 2;
        }
    }
    if (!config_path) {
        usage();
        return 2;
    }
    char errstr[512];
    broker_t b = {0};
    b.cfg = ifq_config_load(config_path, errstr, sizeof(errstr));
    if (!b.cfg) {
        fprintf(stderr, "inferq-broker: %s\n", errstr);
        return 2;
    }
    int lv = ifq_log_level_parse(level ? level : b.cfg->log_level);
    ifq_log_init("inferq-broker", lv < 0 ? IFQ_LOG_INFO : (ifq_log_level_t)lv);
    b.metrics = ifq_metrics_new();
    metrics_init(&b);
    {
        char host[128] = "host";
        gethostname(host, sizeof(host) - 1);
        snprintf(b.instance, sizeof(b.instance), "%s-%d", host, (int)getpid());
    }

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    ifq_admin_t *admin = NULL;
    rd_kafka_queue_t *q = NULL;
    rd_kafka_message_t **msgs = NULL;
    b.health.n = b.cfg->n_deployments;
    b.health.deps = calloc(b.cfg->n_deployments ? b.cfg->n_deployments : 1, sizeof(*b.health.deps));
    for (size_t i = 0; i < b.health.n; i++)
        b.health.deps[i].inflight = -1;
    b.avro = ifq_avro_new(errstr, sizeof(errstr));
    if (!b.avro) {
        ifq_error("startup_failed", "avro: %s", errstr);
        goto out;
    }
    b.state = ifq_state_connect(b.cfg->redis_url, b.cfg->prefix, b.cfg->state_ttl_s, errstr,
                                sizeof(errstr));
    if (!b.state) {
        ifq_error("startup_failed", "%s", errstr);
        goto out;
    }
    b.limits = ifq_limits_new(b.state, b.cfg, errstr, sizeof(errstr));
    if (!b.limits) {
        ifq_error("startup_failed", "limits: %s", errstr);
        goto out;
    }
    atomic_store(&b.redis_ok, 1);
    b.guard = ifq_guard_from_config(b.cfg, errstr, sizeof(errstr));
    if (!b.guard) {
        ifq_error("startup_failed", "%s", errstr);
        goto out;
    }
    for (size_t i = 0; i < b.cfg->n_teams; i++) {
        const char *pn = b.cfg->teams[i].guardrail_policy;
        if (pn && !ifq_guard_policy(b.guard, pn)) {
            ifq_error("startup_failed", "teams.%s.guardrail_policy: no policy named '%s'",
                      b.cfg->teams[i].name, pn);
            goto out;
        }
    }
    b.prompts = ifq_prompts_connect(b.cfg->redis_url, b.cfg->prefix, errstr, sizeof(errstr));
    if (!b.prompts) {
        ifq_error("startup_failed", "prompts: %s", errstr);
        goto out;
    }
    b.pipeline.prompts = b.prompts;
    b.pipeline.guard = b.guard;
    b.pipeline.cfg = b.cfg;
    b.pipeline.avro = b.avro;
    b.pipeline.health = &b.health;
    b.pipeline.rng = (uint64_t)ifq_mono_us() ^ ((uint64_t)getpid() << 20);

    /* A stable transactional.id per broker instance lets a restarted
     * instance fence its predecessor and abort its open transaction at
     * once, instead of leaving read_committed consumers waiting for it to
     * time out. */
    b.transactions = b.cfg->transactions;
    char txn_id[256] = "";
    if (b.transactions) {
        char host[128] = "host";
        gethostname(host, sizeof(host) - 1);
        if (b.cfg->transactional_id)
            snprintf(txn_id, sizeof(txn_id), "%s%s%s", b.cfg->transactional_id, instance ? "-" : "",
                     instance ? instance : "");
        else
            snprintf(txn_id, sizeof(txn_id), "%s-%s-%s", b.cfg->broker_group, host,
                     instance ? instance : "0");
    }
    b.producer = ifq_kafka_producer_new(b.cfg, dr_cb, &b, txn_id[0] ? txn_id : NULL,
                                        BROKER_LINGER_MS, -1, errstr, sizeof(errstr));
    if (!b.producer) {
        ifq_error("startup_failed", "producer: %s", errstr);
        goto out;
    }
    snprintf(b.topic_deferred, sizeof(b.topic_deferred), "%s.deferred", b.cfg->prefix);
    if (b.cfg->create_topics) {
        size_t nt = 5 + 3 * b.cfg->n_deployments;
        const char **topics = calloc(nt, sizeof(*topics));
        char(*lanes)[IFQ_MAX_TOPIC + 1] = calloc(3 * b.cfg->n_deployments + 1, sizeof(*lanes));
        topics[0] = b.cfg->topic_requests;
        topics[1] = b.cfg->topic_replies;
        topics[2] = b.cfg->topic_traces;
        topics[3] = b.cfg->topic_dlq;
        topics[4] = b.topic_deferred;
        for (size_t i = 0; i < b.cfg->n_deployments; i++)
            for (int lane = 0; lane < 3; lane++) {
                ifq_lane_topic(b.cfg, &b.cfg->deployments[i], lane, lanes[3 * i + lane],
                               sizeof(lanes[0]));
                topics[5 + 3 * i + lane] = lanes[3 * i + lane];
            }
        int trc =
            ifq_kafka_ensure_topics(b.producer, b.cfg, topics, nt, 15000, errstr, sizeof(errstr));
        free(topics);
        free(lanes);
        if (trc != IFQ_OK) {
            ifq_error("startup_failed", "%s", errstr);
            goto out;
        }
    }
    if (b.transactions) {
        b.side = ifq_kafka_producer_new(b.cfg, side_dr_cb, &b, NULL, BROKER_LINGER_MS, -1, errstr,
                                        sizeof(errstr));
        if (!b.side) {
            ifq_error("startup_failed", "producer: %s", errstr);
            goto out;
        }
        rd_kafka_error_t *e = rd_kafka_init_transactions(b.producer, 30000);
        if (e) {
            ifq_error("startup_failed",
                      "transactions: %s (set broker.transactions: false for a Kafka without "
                      "transaction support)",
                      rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            goto out;
        }
    }
    b.consumer = ifq_kafka_consumer_new(b.cfg, b.cfg->broker_group, rebalance_cb, &b, errstr,
                                        sizeof(errstr));
    if (!b.consumer) {
        ifq_error("startup_failed", "consumer: %s", errstr);
        goto out;
    }
    /* Team topics (<prefix>.requests.<team>) are picked up by a regex
     * subscription, including ones created while the broker runs. */
    char team_re[IFQ_MAX_TOPIC + 32];
    snprintf(team_re, sizeof(team_re), "^%s\\.requests\\..+", b.cfg->prefix);
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(subs, b.cfg->topic_requests, RD_KAFKA_PARTITION_UA);
    rd_kafka_topic_partition_list_add(subs, team_re, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t serr = rd_kafka_subscribe(b.consumer, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (serr) {
        ifq_error("startup_failed", "subscribe: %s", rd_kafka_err2str(serr));
        goto out;
    }

    /* Held low-priority requests: only if some team holds instead of
     * rejecting. */
    for (size_t i = 0; i < b.cfg->n_teams && !b.deferred; i++) {
        if (!b.cfg->teams[i].hold_low_priority)
            continue;
        char group[IFQ_MAX_NAME * 2];
        snprintf(group, sizeof(group), "%s.deferred", b.cfg->broker_group);
        b.deferred = ifq_kafka_consumer_new(b.cfg, group, NULL, &b, errstr, sizeof(errstr));
        if (!b.deferred) {
            ifq_error("startup_failed", "consumer: %s", errstr);
            goto out;
        }
        rd_kafka_topic_partition_list_t *dl = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(dl, b.topic_deferred, RD_KAFKA_PARTITION_UA);
        rd_kafka_subscribe(b.deferred, dl);
        rd_kafka_topic_partition_list_destroy(dl);
    }

    ifq_admin_handlers_t ah = {
        .ready = broker_ready, .metrics = broker_metrics, .models = broker_models, .opaque = &b};
    if (ifq_dashboard_attach(&ah, b.cfg) < 0)
        ifq_warn("dashboard_unavailable", "out of memory; serving the admin endpoint without it");
    admin = ifq_admin_start(b.cfg->broker_admin_port, &ah, errstr, sizeof(errstr));
    if (!admin && b.cfg->broker_admin_port > 0) {
        ifq_error("startup_failed", "%s", errstr);
        goto out;
    }
    ifq_info("started", "consuming %s and %s, %zu deployment(s), %zu alias(es), %zu team(s)%s%s",
             b.cfg->topic_requests, team_re, b.cfg->n_deployments, b.cfg->n_aliases, b.cfg->n_teams,
             b.transactions ? ", transactional id " : ", no transactions", txn_id);

    q = rd_kafka_queue_get_consumer(b.consumer);
    size_t cap = (size_t)b.cfg->broker_batch_size;
    msgs = calloc(cap, sizeof(*msgs));
    rc = 0;
    while (!stop_requested) {
        /* Wait for the first message, then take whatever else is already
         * fetched without waiting: low latency when idle, big batches under
         * load (consume_batch alone would wait out its timeout to fill up). */
        rd_kafka_message_t *first = rd_kafka_consumer_poll(b.consumer, 200);
        if (b.side)
            rd_kafka_poll(b.side, 0);
        refresh_lag(&b);
        if (!first) {
            refresh_health(&b);
            if (serve_deferred(&b, msgs, cap) < 0) {
                ifq_error("batch_failed", "outcomes not durable; exiting for redelivery");
                rc = 1;
                break;
            }
            continue;
        }
        msgs[0] = first;
        ssize_t n = cap > 1 ? rd_kafka_consume_batch_queue(q, 0, msgs + 1, cap - 1) : 0;
        n = n < 0 ? 1 : n + 1;
        size_t good = 0;
        for (ssize_t i = 0; i < n; i++) {
            if (msgs[i]->err) {
                /* A regex subscription with no matching topic yet is normal. */
                if (msgs[i]->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
                    ifq_debug("consume_error", "%s", rd_kafka_message_errstr(msgs[i]));
                else if (msgs[i]->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    ifq_warn("consume_error", "%s", rd_kafka_message_errstr(msgs[i]));
                rd_kafka_message_destroy(msgs[i]);
                continue;
            }
            msgs[good++] = msgs[i];
        }
        int brc = good ? process_batch(&b, b.consumer, msgs, good, 0) : 0;
        if (brc == 0)
            brc = serve_deferred(&b, msgs, cap);
        for (size_t i = 0; i < good; i++)
            rd_kafka_message_destroy(msgs[i]);
        rd_kafka_poll(b.producer, 0);
        if (brc < 0) {
            /* Without the outcomes durable we must not move on: exit
             * without committing so that a restart redelivers the batch. */
            ifq_error("batch_failed", "outcomes not durable; exiting for redelivery");
            rc = 1;
            break;
        }
    }
    ifq_info("stopping", "closing the consumer");
    rd_kafka_consumer_close(b.consumer);
    if (b.deferred)
        rd_kafka_consumer_close(b.deferred);
out:
    free(msgs);
    if (q)
        rd_kafka_queue_destroy(q);
    ifq_admin_stop(admin);
    if (b.consumer)
        rd_kafka_destroy(b.consumer);
    if (b.deferred)
        rd_kafka_destroy(b.deferred);
    if (b.producer) {
        rd_kafka_flush(b.producer, 5000);
        rd_kafka_destroy(b.producer);
    }
    if (b.side) {
        rd_kafka_flush(b.side, 5000);
        rd_kafka_destroy(b.side);
    }
    ifq_limits_destroy(b.limits);
    ifq_prompts_destroy(b.prompts);
    ifq_guard_destroy(b.guard);
    ifq_state_destroy(b.state);
    ifq_avro_destroy(b.avro);
    free(b.health.deps);
    ifq_metrics_destroy(b.metrics);
    ifq_config_destroy(b.cfg);
    return rc;
}
