/*
 * inferq-worker - consumes per-model topics (one consumer group per
 * deployment), calls the model over HTTP and produces results.
 *
 * One event loop: libcurl's multi interface carries every HTTP exchange at
 * once, driven from epoll with curl_multi_socket_action (curl_loop.c), and
 * the Kafka queues wake the same epoll through a pipe
 * (rd_kafka_queue_io_event_enable), so there is no thread per request and no
 * sleep anywhere. Requests finish out of order; offsets are committed only
 * up to the highest contiguous finished one per partition (lib/offsets.c),
 * and "finished" means its result (or its failover hand-off) is durably in
 * Kafka. When a deployment has max_inflight requests running, its lane
 * queues are not read until a slot frees, and librdkafka's bounded prefetch
 * (queued.max.messages.kbytes) keeps memory flat meanwhile.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "circuit.h"
#include "config.h"
#include "curl_loop.h"
#include "envelope.h"
#include "guard.h"
#include "jsonbuf.h"
#include "kafka.h"
#include "limits.h"
#include "log.h"
#include "offsets.h"
#include "provider.h"
#include "state.h"
#include "timers.h"
#include "trace.h"
#include "worker_obs.h"

#define MAX_RESPONSE_BYTES (32u * 1024 * 1024)
/* libcurl's receive buffer per easy handle (its default is 16 KiB; 1 KiB
 * is its minimum). Every pooled handle keeps one, so at 2,000 in flight
 * each KiB here is 2 MB; a larger answer takes more reads in the same
 * socket event, not more memory per request in flight. */
#define CURL_RECV_BUFFER 1024L
/* The producer's linger.ms unless kafka.properties sets it. A result waits
 * that long at most for the ones that go with it; fewer, larger produce
 * requests cut Kafka's CPU per request beside a worker at thousands of
 * results a second (tests/bench/bench_worker.py --threads 2, one run each:
 * 2 ms 37.7 µs, 10 ms 27.6 µs, 20 ms 24.2 µs), but every millisecond holds
 * results and spans in memory. 10 ms with a 100 ms decay (below): 19.1-19.7
 * KB per request in flight where 20 ms with 300 ms held 21.0-22.6, at the
 * same throughput and 1-2 µs more worker CPU per request (alternating runs,
 * tests/bench/README.md). When the loop was the bottleneck, the same change
 * cost 3 points of throughput; results are encoded from bytes since. */
#define WORKER_LINGER_MS 10
/* librdkafka copies each message of up to message.copy.max.bytes (64 KB by
 * default) into its produce request, lz4 then compresses that copy, and
 * the copy lives until Kafka acknowledges the request, beside the message
 * itself, which is kept for its delivery report. Results and spans are
 * most of the worker's bytes to Kafka (a span message is about 4 KB), so
 * the requests refer to the payloads instead: 19.07 / 19.58 KB per request
 * in flight against 19.46 / 20.18, and a little less CPU (alternating runs,
 * tests/bench/README.md). */
#define WORKER_COPY_MAX_BYTES 0
/* In-flight calls per libcurl multi handle, so per connection cache: libcurl
 * walks a host's connections, busy ones included, to find a free one
 * (curl_loop.h). With 2,000 on one multi that walk was a tenth of the
 * worker's CPU (tests/bench/README.md). */
#define HTTP_SHARD_CONNS 128
#define MAX_PARTS 1024

typedef enum { JOB_QUEUED, JOB_HTTP, JOB_WAIT_RETRY, JOB_PRODUCING } job_phase_t;

/* The routed message's values a result carries over as they are, in the
 * result's order (after metadata and attempts). */
enum {
    CARRY_METADATA,
    CARRY_ATTEMPTS,
    CARRY_TEAM,
    CARRY_PROMPT,
    CARRY_GUARDRAILS,
    CARRY_ROUTING,
    NCARRY
};
/* The members of routed.inferq a result takes: the earlier hops' attempts,
 * then the values carried over as they are (carried_keys), in CARRY_ order. */
static const char *const ext_keys[] = {"attempts", "team", "prompt", "guardrails", "routing"};
static const char *const *const carried_keys = ext_keys + 1;
#define NCARRIED (IFQ_ARRAY_LEN(ext_keys) - 1)

struct consumer;
struct worker;

typedef struct part {
    char topic[IFQ_MAX_TOPIC + 1];
    int32_t partition;
    unsigned gen;
    ifq_offsets_t *offs;
} part_t;

/* A request in this worker. Its memory is what a slot costs (thousands are
 * in flight at once), so it holds the routed message as its bytes and
 * parses them into a jansson tree only while it works on them: the tree is
 * dropped while the model answers (when nothing changed it since it was
 * parsed; see job_tree and job_park) and once the outcome is encoded. */
/* The header lines of a request as one curl_slist in one allocation (the
 * nodes, then the strings): one malloc instead of two per line, and one
 * explicit_bzero wipes the API key it holds before it is freed. */
struct hdr_block {
    size_t size;
    struct curl_slist nodes[];
};

typedef struct job {
    struct job *prev, *next;
    struct worker *w;
    struct consumer *cons;
    const char *topic; /* the consumer's lane topic it came from (or topic_own) */
    char *topic_own;   /* owned copy when it is none of them */
    int64_t offset;

    char *raw; /* the routed message's bytes (owned) until the outcome is encoded */
    size_t raw_len;
    json_t *routed;       /* parsed raw (owned), or NULL while parked */
    json_t *ext;          /* routed.inferq (borrowed from routed) */
    char *ids;            /* owned: the strings below, each NUL-terminated */
    ifq_wreq_info_t info; /* id, custom_id, team, alias (in ids), received_ms */
    const char *reply_to, *guard_policy, *cache_key; /* in ids; NULL when absent */
    int64_t limit_minute, est_tokens;
    /* Where the values a result carries over lie in raw (CARRY_*), so that
     * a success is encoded from bytes, without parsing raw again
     * (result_bytes); fast: they were found. */
    ifq_jrange_t carry[NCARRY];
    unsigned short n_prior; /* attempt records of earlier hops */
    unsigned char fast, has_alias;
    ifq_url_kind_t kind;
    ifq_deployment_t *dep;
    int64_t deadline_ms;
    int64_t picked_ms; /* wall clock when the worker took it */
    ifq_timer_t timer; /* armed in JOB_WAIT_RETRY */
    char traceparent[56];

    CURL *easy;
    struct hdr_block *hdrs;
    char *req_body;
    char *resp;
    uint32_t resp_len, resp_cap; /* at most 2 * MAX_RESPONSE_BYTES */
    /* the last answer's Retry-After in ms (an HTTP date as the time left to
     * it when the header came), or -1; waited from the end of the answer */
    int64_t retry_after_ms;
    char *request_id; /* x-request-id of the last answer (owned), or NULL */
    int64_t attempt_start_us;
    int sends;           /* times libcurl was about to send this attempt's request */
    int deadline_capped; /* this attempt's timeout is the time left to the deadline */
    int64_t model_ms;    /* summed over attempts */

    int is_probe; /* the half-open circuit's trial request */
    int lane;     /* ifq_priority_t of the request */
    char *out;    /* the produced value (result or failover routed message) */
    size_t out_len;
    const char *out_topic;   /* the reply topic (in ids or the config) or out_topic_own */
    char *out_topic_own;     /* a failover's lane topic */
    const char *final_state; /* for Redis after delivery */
    int to_default;          /* result re-sent to the default reply topic */
    ifq_wreq_t *obs;         /* metrics and spans of this hop (worker_obs.h) */

    /* the small fields together: no padding holes in thousands of jobs */
    job_phase_t phase;
    int32_t partition;
    unsigned gen;
    int dirty;   /* routed was changed since it was parsed: it cannot be parked */
    int attempt; /* attempts made on this deployment */
    int shard;   /* 1 + the index in w->multis of the multi easy is in; 0: none */
    int resp_too_big;
} job_t;

/* The request's lines (hr's, then traceparent, then "Expect:" so that
 * libcurl does not wait for a 100 Continue); NULL when out of memory. */
static struct hdr_block *hdrs_build(const ifq_http_req_t *hr, const char *traceparent)
{
    const char *lines[IFQ_HTTP_MAX_HEADERS + 2];
    int n = 0;
    for (int i = 0; i < hr->n_headers && i < IFQ_HTTP_MAX_HEADERS; i++)
        lines[n++] = hr->headers[i];
    lines[n++] = traceparent;
    lines[n++] = "Expect:";
    size_t size = sizeof(struct hdr_block) + (size_t)n * sizeof(struct curl_slist);
    for (int i = 0; i < n; i++)
        size += strlen(lines[i]) + 1;
    struct hdr_block *h = malloc(size);
    if (!h)
        return NULL;
    h->size = size;
    char *text = (char *)&h->nodes[n];
    for (int i = 0; i < n; i++) {
        size_t len = strlen(lines[i]) + 1;
        memcpy(text, lines[i], len);
        h->nodes[i].data = text;
        h->nodes[i].next = i + 1 < n ? &h->nodes[i + 1] : NULL;
        text += len;
    }
    return h;
}

static void hdrs_free(job_t *j)
{
    if (j->hdrs) {
        explicit_bzero(j->hdrs, j->hdrs->size);
        free(j->hdrs);
        j->hdrs = NULL;
    }
}

/* A circuit breaker per deployment: closed -> open after `threshold`
 * consecutive failures of the kind a healthy deployment does not produce
 * (connection errors, timeouts, 5xx); open -> half-open after open_ms, when
 * one probe request may pass; the probe's outcome closes or re-opens it.
 * A closed circuit also opens when another worker publishes it open
 * (circuit_refresh, circuit.h). */
static const char *const circuit_names[] = {"closed", "open", "half_open"};

/* How often the circuits other workers published are read from Redis. */
#define CIRCUIT_REFRESH_MS 1000

typedef struct consumer {
    struct worker *w;
    ifq_deployment_t *dep;
    circuit_t *circuit; /* the deployment's breaker, shared by the loops (proc_t) */
    int cap;            /* this loop's share of the deployment's max_inflight */
    /* Priority lanes: each assigned partition's queue is forwarded to the
     * queue of its lane, and intake drains high, then normal, then low. */
    rd_kafka_queue_t *lane_q[3];
    char lane_topic[3][IFQ_MAX_TOPIC + 1];
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    char group[IFQ_MAX_NAME * 2];
    part_t parts[MAX_PARTS];
    int nparts;
    unsigned gen;
    int inflight;
    int assigned_once;
    /* Idle easy handles of this deployment, kept with their options and
     * buffers so a request does not create and destroy one. */
    CURL **easy_pool;
    int n_easy_pool, cap_easy_pool;
    /* Usage of this deployment not yet added to its Redis counters
     * (usage_flush; day: UTC days since the epoch it belongs to). */
    struct {
        int64_t day, requests, in_tok, out_tok;
        double cost;
    } usage;
} consumer_t;

struct proc;

/* One event loop (worker.threads of them per process, each on its own
 * thread): its consumers, producer, Redis connection, curl multi, timers
 * and jobs are its own, so the loops share no lock on the request path. */
typedef struct worker {
    struct proc *proc;
    int index; /* in proc->loops */
    int cap;   /* this loop's share of worker.max_inflight */
    /* This loop's share of worker.max_undelivered: while its producer holds
     * that many messages Kafka has not acknowledged, it takes no request. */
    int max_undelivered;
    int backlogged; /* it is holding back for that reason */
    int rc;         /* exit code of the loop's thread */
    ifq_config_t *cfg;
    consumer_t *cons;
    size_t ncons;
    rd_kafka_t *producer;
    rd_kafka_queue_t *mainq; /* the producer's, wakes the loop */
    ifq_state_t *state;
    ifq_guard_t *guard;
    CURLM **multis; /* HTTP_SHARD_CONNS connections each (curl_loop.h) */
    int nmultis;
    int *multi_load;        /* transfers in each multi */
    ifq_wbatch_t spans_out; /* delivered hops' spans, for the exporter */
    int spans_pending;      /* span batches the exporter has not produced (its lock) */
    ifq_curl_loop_t *loop;
    int wake[2];
    job_t *jobs; /* all live jobs */
    ifq_timers_t timers;
    int njobs;
    int draining;
    int fatal;
    int64_t last_commit_ms;
    int64_t last_publish_ms;
    int64_t last_health_ms;
    ifq_health_t health; /* what all workers published, read every CIRCUIT_REFRESH_MS */
    char worker_id[160];
    uint64_t rng;
    atomic_int ready;
    atomic_llong n_succeeded, n_failed, n_expired, n_failover, n_retries, n_skipped, n_http;
    atomic_int inflight_gauge;
    ifq_wobs_t *obs;
} worker_t;

/* What the loops of one process share: the catalog, the guardrails and
 * the metrics (each safe to use from any thread), and one circuit breaker
 * per deployment under circ_mu, so a deployment's failures count the same
 * whichever loop saw them and a half-open circuit lets one probe through
 * for the whole process. */
typedef struct proc {
    char instance[128]; /* "<host>-<pid>": metrics instance, in-flight report id */
    ifq_config_t *cfg;
    ifq_guard_t *guard;
    ifq_wobs_t *obs;
    worker_t *loops;
    int nloops;
    atomic_int fatal; /* a loop failed: all of them drain and the process exits 1 */
    pthread_mutex_t circ_mu;
    circuit_t *circuits;      /* one per cfg->deployments entry */
    atomic_int *dep_inflight; /* calls in flight per deployment, all loops */
} proc_t;

/* jemalloc (the worker is linked with it unless INFERQ_JEMALLOC=OFF) reads
 * its options from this symbol before main; MALLOC_CONF in the environment
 * still overrides them and glibc's malloc ignores them. Read-only, not
 * state. Figures from tests/bench/bench_worker.py (README there):
 * - one arena for every thread: with the default (four per core), what
 *   librdkafka's threads allocate (fetched and produced message buffers)
 *   and the event loop frees stays in those threads' arenas, each keeping
 *   its own free pages: about 3 KB of peak RSS per request in flight, with
 *   no CPU cost measured for the single arena;
 * - free pages go back to the kernel after 100 ms instead of 10 s, by a
 *   background thread, so not on the event loop: 300 ms saved about 1 KB of
 *   peak RSS per request in flight at the same CPU, 100 ms with the 10 ms
 *   linger above about 2 KB for 1-2% more (dirty_decay_ms:0 on the loop
 *   itself saved 3 KB but cost 15%). */
const char *malloc_conf = "narenas:1,background_thread:true,dirty_decay_ms:100";

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static double rand01(worker_t *w)
{
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    return (double)(w->rng >> 11) / (double)(1ULL << 53);
}

/* ---- partitions and offsets ------------------------------------------ */

static part_t *part_find(consumer_t *c, const char *topic, int32_t partition)
{
    for (int i = 0; i < c->nparts; i++)
        if (c->parts[i].partition == partition && strcmp(c->parts[i].topic, topic) == 0)
            return &c->parts[i];
    return NULL;
}

static void commit_parts(consumer_t *c, int sync)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    for (int i = 0; i < c->nparts; i++) {
        int64_t pos = ifq_offsets_committable(c->parts[i].offs);
        if (pos < 0)
            continue;
        if (!l)
            l = rd_kafka_topic_partition_list_new(c->nparts);
        rd_kafka_topic_partition_list_add(l, c->parts[i].topic, c->parts[i].partition)->offset =
            pos;
        ifq_offsets_committed(c->parts[i].offs, pos);
    }
    if (!l)
        return;
    rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, l, !sync);
    if (err)
        ifq_warn("commit_failed", "%s: %s", c->group, rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(l);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    consumer_t *c = opaque;
    int coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        c->gen++;
        for (int i = 0; i < parts->cnt; i++) {
            if (part_find(c, parts->elems[i].topic, parts->elems[i].partition) ||
                c->nparts >= MAX_PARTS)
                continue;
            part_t *p = &c->parts[c->nparts++];
            snprintf(p->topic, sizeof(p->topic), "%s", parts->elems[i].topic);
            p->partition = parts->elems[i].partition;
            p->gen = c->gen;
            p->offs = ifq_offsets_new();
        }
        if (coop)
            rd_kafka_incremental_assign(rk, parts);
        else
            rd_kafka_assign(rk, parts);
        for (int i = 0; i < parts->cnt; i++) {
            rd_kafka_queue_t *pq =
                rd_kafka_queue_get_partition(rk, parts->elems[i].topic, parts->elems[i].partition);
            if (!pq)
                continue;
            int lane = 0;
            for (int l = 0; l < 3; l++)
                if (strcmp(parts->elems[i].topic, c->lane_topic[l]) == 0)
                    lane = l;
            rd_kafka_queue_forward(pq, c->lane_q[lane]);
            rd_kafka_queue_destroy(pq);
        }
        c->assigned_once = 1;
        ifq_info("partitions_assigned", "%s: %d partition(s)", c->group, parts->cnt);
    } else {
        /* Commit what is finished; in-flight requests of these partitions
         * still complete and answer, but their offsets are no longer ours
         * (the new owner redelivers them, and the idempotency check in Redis
         * keeps the model from being called twice when we were first: the
         * final states of finished requests are in Redis first). */
        ifq_state_sync(c->w->state, 2000);
        commit_parts(c, 1);
        for (int i = 0; i < parts->cnt; i++) {
            part_t *p = part_find(c, parts->elems[i].topic, parts->elems[i].partition);
            if (!p)
                continue;
            ifq_offsets_destroy(p->offs);
            *p = c->parts[--c->nparts];
        }
        if (coop)
            rd_kafka_incremental_unassign(rk, parts);
        else
            rd_kafka_assign(rk, NULL);
        ifq_info("partitions_revoked", "%s: %d partition(s)", c->group, parts->cnt);
    }
}

/* ---- easy handle pool ------------------------------------------------- */

/* An easy handle for one of c's requests: an idle one of the same
 * deployment (options of the last use still set; start_attempt sets every
 * option it relies on), else a new one. NULL on out of memory. */
static CURL *easy_get(consumer_t *c)
{
    if (c->n_easy_pool > 0)
        return c->easy_pool[--c->n_easy_pool];
    return curl_easy_init();
}

/* Takes back an easy handle that is not in the multi. At most the
 * loop's share of the deployment's max_inflight are kept. */
static void easy_put(consumer_t *c, CURL *e)
{
    if (c->n_easy_pool == c->cap_easy_pool && c->cap_easy_pool < c->cap) {
        int cap = c->cap_easy_pool ? c->cap_easy_pool * 2 : 64;
        if (cap > c->cap)
            cap = c->cap;
        CURL **p = realloc(c->easy_pool, (size_t)cap * sizeof(*p));
        if (p) {
            c->easy_pool = p;
            c->cap_easy_pool = cap;
        }
    }
    if (c->n_easy_pool < c->cap_easy_pool)
        c->easy_pool[c->n_easy_pool++] = e;
    else
        curl_easy_cleanup(e);
}

static void easy_pool_free(consumer_t *c)
{
    while (c->n_easy_pool > 0)
        curl_easy_cleanup(c->easy_pool[--c->n_easy_pool]);
    free(c->easy_pool);
    c->easy_pool = NULL;
    c->cap_easy_pool = 0;
}

/* ---- jobs --------------------------------------------------------------- */

static void job_link(worker_t *w, job_t *j)
{
    j->next = w->jobs;
    if (w->jobs)
        w->jobs->prev = j;
    w->jobs = j;
    w->njobs++;
}

/* Adds the job's easy handle to the multi with the fewest transfers, so
 * none holds more than its share of the loop's cap (its connection cache
 * is sized for that share). */
static void http_attach(worker_t *w, job_t *j)
{
    int best = 0;
    for (int k = 1; k < w->nmultis; k++)
        if (w->multi_load[k] < w->multi_load[best])
            best = k;
    w->multi_load[best]++;
    j->shard = best + 1;
    curl_multi_add_handle(w->multis[best], j->easy);
}

static void http_detach(worker_t *w, job_t *j)
{
    if (!j->shard)
        return;
    curl_multi_remove_handle(w->multis[j->shard - 1], j->easy);
    w->multi_load[j->shard - 1]--;
    j->shard = 0;
}

static void job_free(worker_t *w, job_t *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else if (w->jobs == j)
        w->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    w->njobs--;
    ifq_timers_cancel(&w->timers, &j->timer);
    ifq_wreq_destroy(j->obs);
    if (j->easy) {
        http_detach(w, j);
        easy_put(j->cons, j->easy);
    }
    hdrs_free(j);
    free(j->req_body);
    free(j->resp);
    free(j->out);
    free(j->out_topic_own);
    free(j->request_id);
    free(j->topic_own);
    free(j->ids);
    free(j->raw);
    json_decref(j->routed);
    free(j);
}

/* The job's routed message as a tree (parsed again from its bytes when it
 * was parked). NULL only when out of memory; jansson's getters take NULL. */
static json_t *job_tree(job_t *j)
{
    if (!j->routed && j->raw) {
        json_error_t jerr;
        j->routed = json_loadb(j->raw, j->raw_len, 0, &jerr);
        j->ext = json_object_get(j->routed, "inferq");
        if (!j->routed)
            ifq_error("reparse_failed", "%s: %s", j->info.id, jerr.text);
    }
    return j->routed;
}

/* Drops the tree while the request waits for the model, unless it holds
 * changes its bytes do not (an earlier attempt's record). */
static void job_park(job_t *j)
{
    if (j->dirty || !j->raw)
        return;
    json_decref(j->routed);
    j->routed = NULL;
    j->ext = NULL;
}

/* The outcome is encoded (j->out): neither the tree nor the bytes are
 * needed any more. */
static void job_release_routed(job_t *j)
{
    json_decref(j->routed);
    j->routed = NULL;
    j->ext = NULL;
    free(j->raw);
    j->raw = NULL;
}

/* Sets where j->out goes: topic is kept as it is (it must outlive the
 * job), or copied when own. */
static void set_out_topic(job_t *j, const char *topic, int own)
{
    free(j->out_topic_own);
    j->out_topic_own = own ? strdup(topic) : NULL;
    j->out_topic = own ? j->out_topic_own : topic;
}

/* Appends an attempt record (owned) to the routed message's attempts. */
static void add_attempt(job_t *j, json_t *rec)
{
    job_tree(j);
    json_array_append_new(json_object_get(j->ext, "attempts"), rec);
    j->dirty = 1;
}

/* Marks the job's offset finished (its outcome is durable) and frees it. */
static void job_done(worker_t *w, job_t *j)
{
    part_t *p = part_find(j->cons, j->topic, j->partition);
    if (p && p->gen == j->gen)
        ifq_offsets_done(p->offs, j->offset);
    job_free(w, j);
}

static void slot_release(job_t *j)
{
    if (j->cons->inflight > 0) {
        j->cons->inflight--;
        atomic_fetch_sub(&j->w->proc->dep_inflight[j->cons->dep - j->w->cfg->deployments], 1);
    }
    atomic_fetch_sub(&j->w->inflight_gauge, 1);
}

static json_t *attempt_record(job_t *j, long status, const char *err_type, const char *message,
                              int64_t latency_ms)
{
    json_t *a = json_pack("{ss si sI}", "deployment", j->dep->name, "attempt", j->attempt,
                          "latency_ms", (json_int_t)latency_ms);
    json_object_set_new(a, "status_code", status ? json_integer(status) : json_null());
    if (err_type)
        json_object_set_new(a, "error", json_pack("{ss ss}", "type", err_type, "message", message));
    return a;
}

static void produce_out(worker_t *w, job_t *j);
static void circuit_record(worker_t *w, job_t *j, int success, int unhealthy);
static void wait_retry(worker_t *w, job_t *j, int64_t delay_ms);

static json_t *result_base(job_t *j)
{
    job_tree(j);
    json_t *md = json_object_get(j->routed, "metadata");
    json_t *res = ifq_result_new(j->info.id, j->info.custom_id,
                                 json_string_value(json_object_get(j->ext, "model_requested")),
                                 json_is_object(md) ? md : NULL);
    json_t *ext = ifq_result_ext(res);
    json_object_set(ext, "attempts", json_object_get(j->ext, "attempts"));
    json_object_set_new(ext, "trace_id", json_stringn(j->traceparent + 3, 32));
    int64_t now = ifq_now_ms();
    json_int_t received = j->info.received_ms;
    json_object_set_new(ext, "timings_ms",
                        json_pack("{sI sI sI}", "queue", (json_int_t)(j->picked_ms - received),
                                  "model", (json_int_t)j->model_ms, "total",
                                  (json_int_t)(now - received)));
    json_object_set_new(ext, "finished_ms", json_integer(now));
    for (size_t i = 0; i < NCARRIED; i++) {
        json_t *v = json_object_get(j->ext, carried_keys[i]);
        if (v)
            json_object_set(ext, carried_keys[i], v);
    }
    return res;
}

/* Hands the encoded result (j->out) to Kafka; oc says how the request
 * ended, routed and res are for the request log (may be NULL when the
 * team does not log). */
static void finish_out(worker_t *w, job_t *j, const json_t *routed, const json_t *res,
                       ifq_wreq_outcome_t *oc)
{
    const char *reply = j->reply_to ? j->reply_to : w->cfg->topic_replies;
    set_out_topic(j, reply, 0);
    oc->reply_topic = reply;
    oc->model_ms = j->model_ms;
    ifq_wreq_finish(j->obs, w->producer, routed, res, oc);
    j->final_state = oc->state;
    produce_out(w, j);
}

static void finish_result(worker_t *w, job_t *j, json_t *res, const char *state)
{
    const json_t *ext = ifq_result_ext(res);
    const json_t *err = json_object_get(res, "error");
    const json_t *usage = json_object_get(ext, "usage");
    ifq_wreq_outcome_t oc = {
        .state = state,
        .err_code = json_string_value(json_object_get(err, "code")),
        .err_msg = json_string_value(json_object_get(err, "message")),
        .in_tok = json_integer_value(json_object_get(usage, "prompt_tokens")),
        .out_tok = json_integer_value(json_object_get(usage, "completion_tokens")),
        .cost = json_number_value(json_object_get(ext, "cost_usd")),
        .attempts = (int)json_array_size(json_object_get(ext, "attempts")),
    };
    j->out = ifq_json_dump(res, &j->out_len);
    /* oc's strings are in res, which the request log needs too */
    finish_out(w, j, j->routed, res, &oc);
    json_decref(res);
    job_release_routed(j);
}

static void finish_error(worker_t *w, job_t *j, const char *status, const char *code,
                         const char *message)
{
    json_t *res = result_base(j);
    if (j->dep)
        json_object_set_new(ifq_result_ext(res), "deployment", json_string(j->dep->name));
    ifq_result_set_error(res, status, code, message);
    if (strcmp(status, "expired") == 0)
        atomic_fetch_add(&w->n_expired, 1);
    else
        atomic_fetch_add(&w->n_failed, 1);
    finish_result(w, j, res, strcmp(status, "expired") == 0 ? "expired" : "failed");
}

/* Adds what c's answered requests used to the per-day, per-deployment
 * counters in Redis ("<prefix>:usage:<YYYY-MM-DD>:deployment:<name>", the
 * fields of ifq_usage_add), which `inferq usage` reads. One set of commands
 * for all of them, queued for the loop's next Redis round trip. */
static void usage_flush(worker_t *w, consumer_t *c)
{
    if (c->usage.requests == 0)
        return;
    char key[IFQ_MAX_TOPIC + 96], day[16];
    time_t t = (time_t)(c->usage.day * 86400);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(day, sizeof(day), "%Y-%m-%d", &tm);
    ifq_usage_key(key, sizeof(key), w->cfg->prefix, day, "deployment", c->dep->name, NULL);
    ifq_usage_add_n(w->state, key, c->usage.requests, c->usage.in_tok, c->usage.out_tok,
                    c->usage.cost);
    memset(&c->usage, 0, sizeof(c->usage));
}

/* Counts one answered request of c's deployment. The counters reach Redis
 * once a second (and at exit): five commands per request were a tenth of
 * the worker's CPU at thousands of requests a second. */
static void usage_count(worker_t *w, consumer_t *c, json_int_t in_tok, json_int_t out_tok,
                        double cost)
{
    int64_t day = (int64_t)time(NULL) / 86400;
    if (c->usage.requests && c->usage.day != day)
        usage_flush(w, c); /* a new UTC day: yesterday's key gets yesterday's */
    c->usage.day = day;
    c->usage.requests++;
    c->usage.in_tok += in_tok;
    c->usage.out_tok += out_tok;
    c->usage.cost += cost;
}

/* Output guardrails on the model's answer, with the policy the broker
 * chose. Redactions change body in place. Returns 1 when the policy ran;
 * v then holds its verdict (ifq_guard_verdict_clear it). */
static int guard_output(worker_t *w, job_t *j, json_t *body, ifq_guard_verdict_t *v)
{
    const ifq_guard_policy_t *pol = w->guard ? ifq_guard_policy(w->guard, j->guard_policy) : NULL;
    if (!pol)
        return 0;
    ifq_guard_verdict_init(v);
    int64_t scan_start = ifq_now_ns();
    ifq_guard_scan_response(pol, body, j->kind, v);
    ifq_wreq_guard(j->obs, scan_start, v->findings, v->blocked, v->blocked_by);
    return 1;
}

/* Appends the JSON value of raw at r, or dflt when absent, on one line. */
static void put_carried(ifq_sb_t *b, const job_t *j, ifq_jrange_t r, const char *dflt)
{
    if (r.len)
        ifq_sb_json_compact(b, j->raw + r.off, r.len);
    else
        ifq_sb_putn(b, dflt, strlen(dflt));
}

/* A success's result, encoded from bytes: the values carried over from
 * the routed message are copied from raw (found at intake, carry_find) and
 * a passed-through answer from the response bytes resp, so that neither is
 * parsed or encoded again. The result is the one result_base and
 * ifq_result_set_response build as a tree, member for member. Returns the
 * text (malloc'd) or NULL when out of memory. */
static char *result_bytes(job_t *j, long status, const char *rid, const json_t *body,
                          const char *resp, size_t resp_len, const json_t *usage, double cost,
                          int64_t latency_ms, size_t *len)
{
    ifq_sb_t b = {0};
    IFQ_SB_LIT(&b, "{\"id\":");
    ifq_sb_str(&b, j->info.id);
    IFQ_SB_LIT(&b, ",\"custom_id\":");
    ifq_sb_str(&b, j->info.custom_id);
    IFQ_SB_LIT(&b, ",\"response\":{\"status_code\":");
    ifq_sb_i64(&b, status);
    IFQ_SB_LIT(&b, ",\"request_id\":");
    ifq_sb_str(&b, rid ? rid : "");
    IFQ_SB_LIT(&b, ",\"body\":");
    if (resp) {
        ifq_sb_json_compact(&b, resp, resp_len);
    } else {
        char *t = ifq_json_dump(body, NULL);
        if (t)
            ifq_sb_putn(&b, t, strlen(t));
        else
            b.oom = 1;
        free(t);
    }
    IFQ_SB_LIT(&b, "},\"error\":null,\"inferq\":{\"status\":\"succeeded\"");
    if (j->has_alias) {
        IFQ_SB_LIT(&b, ",\"model_requested\":");
        ifq_sb_str(&b, j->info.alias);
    }
    IFQ_SB_LIT(&b, ",\"metadata\":");
    put_carried(&b, j, j->carry[CARRY_METADATA], "{}");
    IFQ_SB_LIT(&b, ",\"deployment\":");
    ifq_sb_str(&b, j->dep->name);
    /* the earlier hops' records, then this call's */
    IFQ_SB_LIT(&b, ",\"attempts\":");
    put_carried(&b, j, j->carry[CARRY_ATTEMPTS], "[]");
    if (!b.oom && b.p[b.len - 1] == ']') {
        b.len--;
        if (b.p[b.len - 1] != '[')
            IFQ_SB_LIT(&b, ",");
    }
    IFQ_SB_LIT(&b, "{\"deployment\":");
    ifq_sb_str(&b, j->dep->name);
    IFQ_SB_LIT(&b, ",\"attempt\":");
    ifq_sb_i64(&b, j->attempt);
    IFQ_SB_LIT(&b, ",\"latency_ms\":");
    ifq_sb_i64(&b, latency_ms);
    IFQ_SB_LIT(&b, ",\"status_code\":");
    ifq_sb_i64(&b, status);
    IFQ_SB_LIT(&b, "}],\"usage\":");
    char *u = json_is_object(usage) ? ifq_json_dump(usage, NULL) : NULL;
    if (u)
        ifq_sb_putn(&b, u, strlen(u));
    else
        IFQ_SB_LIT(&b, "{}");
    free(u);
    IFQ_SB_LIT(&b, ",\"cost_usd\":");
    ifq_sb_real(&b, cost);
    int64_t now = ifq_now_ms();
    int64_t received = j->info.received_ms;
    IFQ_SB_LIT(&b, ",\"timings_ms\":{\"queue\":");
    ifq_sb_i64(&b, j->picked_ms - received);
    IFQ_SB_LIT(&b, ",\"model\":");
    ifq_sb_i64(&b, j->model_ms);
    IFQ_SB_LIT(&b, ",\"total\":");
    ifq_sb_i64(&b, now - received);
    IFQ_SB_LIT(&b, "},\"trace_id\":\"");
    ifq_sb_putn(&b, j->traceparent + 3, 32);
    IFQ_SB_LIT(&b, "\",\"finished_ms\":");
    ifq_sb_i64(&b, now);
    for (size_t i = 0; i < NCARRIED; i++) {
        ifq_jrange_t r = j->carry[CARRY_TEAM + i];
        if (!r.len)
            continue;
        ifq_sb_printf(&b, ",\"%s\":", carried_keys[i]);
        put_carried(&b, j, r, "null");
    }
    IFQ_SB_LIT(&b, ",\"cache_hit\":false}}");
    return ifq_sb_take(&b, len);
}

/* The model answered (body: its OpenAI-shaped answer, owned; resp: the
 * response bytes when body is them as received, not translated, else
 * NULL). */
static void finish_success(worker_t *w, job_t *j, long status, json_t *body, const char *resp,
                           size_t resp_len, int64_t latency_ms)
{
    ifq_guard_verdict_t v;
    int guarded = guard_output(w, j, body, &v);
    int changed = guarded && (v.blocked || json_array_size(v.findings));
    /* From bytes unless the routed message's tree holds what its bytes do
     * not (an earlier attempt of this hop, output findings), or the team
     * logs requests (the log takes both as trees). */
    int bytes = j->fast && !j->dirty && !changed && !ifq_wobs_logs_team(w->obs, j->info.team);
    if (!bytes) {
        job_tree(j);
        add_attempt(j, attempt_record(j, status, NULL, NULL, latency_ms));
    }
    if (guarded) {
        if (json_array_size(v.findings)) {
            json_t *g = json_object_get(j->ext, "guardrails");
            if (!json_is_object(g)) {
                g = json_object();
                json_object_set_new(j->ext, "guardrails", g);
            }
            json_object_set(g, "output", v.findings);
        }
        if (v.blocked) {
            char msg[400];
            snprintf(msg, sizeof(msg), "the model's answer was blocked by guardrails: %s",
                     v.blocked_by);
            json_decref(body);
            ifq_guard_verdict_clear(&v);
            finish_error(w, j, "failed", "guardrail_blocked", msg);
            return;
        }
        ifq_guard_verdict_clear(&v);
    }
    json_t *usage = json_object_get(body, "usage");
    json_int_t in_tok = json_integer_value(json_object_get(usage, "prompt_tokens"));
    json_int_t out_tok = json_integer_value(json_object_get(usage, "completion_tokens"));
    double cost = ((double)in_tok * j->dep->price_input_per_mtok +
                   (double)out_tok * j->dep->price_output_per_mtok) /
                  1e6;
    usage_count(w, j->cons, in_tok, out_tok, cost);
    const char *rid =
        j->request_id ? j->request_id : json_string_value(json_object_get(body, "id"));
    if (*j->info.team)
        ifq_limits_account(w->state, w->cfg->prefix, j->info.team,
                           j->has_alias ? j->info.alias : NULL, j->limit_minute, j->est_tokens,
                           in_tok + out_tok, in_tok, out_tok, cost, ifq_now_ms());
    if (j->cache_key && status >= 200 && status < 300) {
        json_t *entry =
            json_pack("{s{si ss sO} ss so}", "response", "status_code", (int)status, "request_id",
                      rid ? rid : "", "body", body, "deployment", j->dep->name, "usage",
                      json_is_object(usage) ? json_deep_copy(usage) : json_object());
        ifq_cache_store(w->state, w->cfg, j->cache_key, entry);
        json_decref(entry);
    }
    atomic_fetch_add(&w->n_succeeded, 1);
    if (bytes) {
        /* no finding changed body here (else this is the tree path) */
        j->out = result_bytes(j, status, rid, body, resp, resp_len, usage, cost, latency_ms,
                              &j->out_len);
        ifq_wreq_outcome_t oc = {.state = "succeeded",
                                 .in_tok = in_tok,
                                 .out_tok = out_tok,
                                 .cost = cost,
                                 .attempts = j->n_prior + 1};
        json_decref(body);
        finish_out(w, j, NULL, NULL, &oc);
        job_release_routed(j);
        return;
    }
    json_t *res = result_base(j);
    json_t *ext = ifq_result_ext(res);
    json_object_set_new(ext, "deployment", json_string(j->dep->name));
    json_object_set_new(ext, "usage",
                        json_is_object(usage) ? json_deep_copy(usage) : json_object());
    json_object_set_new(ext, "cost_usd", json_real(cost));
    json_object_set_new(ext, "cache_hit", json_false());
    ifq_result_set_response(res, (int)status, rid, body);
    finish_result(w, j, res, "succeeded");
}

/* Hands the request to the next deployment of its chain. Returns 0, or -1
 * when the chain is exhausted. */
static int failover(worker_t *w, job_t *j)
{
    job_tree(j);
    json_t *chain = json_object_get(j->ext, "chain");
    json_int_t hop = json_integer_value(json_object_get(j->ext, "hop"));
    if (!json_is_array(chain) || (size_t)hop + 1 >= json_array_size(chain))
        return -1;
    ifq_deployment_t *next =
        ifq_config_deployment(w->cfg, json_string_value(json_array_get(chain, (size_t)hop + 1)));
    if (!next)
        return -1;
    j->dirty = 1;
    json_object_set_new(j->ext, "hop", json_integer(hop + 1));
    /* The model time of earlier hops travels with the request, so the
     * result's timings_ms.model sums every attempt of the chain. */
    json_object_set_new(j->ext, "model_ms", json_integer(j->model_ms));
    char topic[IFQ_MAX_TOPIC + 1];
    ifq_lane_topic(w->cfg, next, j->lane, topic, sizeof(topic));
    set_out_topic(j, topic, 1);
    ifq_wreq_failover(j->obs, w->producer, j->routed, next->name, topic, j->traceparent,
                      sizeof(j->traceparent));
    j->out = ifq_json_dump(j->routed, &j->out_len);
    j->final_state = NULL;
    atomic_fetch_add(&w->n_failover, 1);
    ifq_log_req(IFQ_LOG_INFO, "failover", j->traceparent, j->info.custom_id,
                json_pack("{ss ss ss}", "id", j->info.id, "from", j->dep->name, "to", next->name),
                "chain step %d", (int)hop + 1);
    job_release_routed(j);
    produce_out(w, j);
    return 0;
}

/* ---- HTTP --------------------------------------------------------------- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    job_t *j = ud;
    size_t n = size * nmemb;
    if (j->resp_len + n > MAX_RESPONSE_BYTES) {
        j->resp_too_big = 1;
        return 0; /* aborts the transfer */
    }
    if (j->resp_len + n + 1 > j->resp_cap) {
        size_t cap = j->resp_cap ? j->resp_cap : 1024;
        while (cap < j->resp_len + n + 1)
            cap *= 2;
        char *r = realloc(j->resp, cap);
        if (!r)
            return 0;
        j->resp = r;
        j->resp_cap = (uint32_t)cap;
    }
    memcpy(j->resp + j->resp_len, ptr, n);
    j->resp_len += (uint32_t)n;
    j->resp[j->resp_len] = '\0';
    return n;
}

static void header_value(const char *line, size_t n, const char *name, char *dst, size_t size)
{
    size_t nl = strlen(name);
    if (n <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return;
    const char *v = line + nl + 1;
    size_t vl = n - nl - 1;
    while (vl && (*v == ' ' || *v == '\t'))
        v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
    if (vl >= size)
        vl = size - 1;
    memcpy(dst, v, vl);
    dst[vl] = '\0';
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    job_t *j = ud;
    size_t n = size * nmemb;
    char ra[64] = "";
    header_value(ptr, n, "retry-after", ra, sizeof(ra));
    if (ra[0])
        j->retry_after_ms = ifq_retry_after_ms(ra, ifq_now_ms());
    char rid[128] = "";
    header_value(ptr, n, "x-request-id", rid, sizeof(rid));
    if (rid[0]) {
        free(j->request_id);
        j->request_id = strdup(rid);
    }
    return n;
}

/* Called by libcurl right before it sends the request on a connection.
 * A second call within one attempt means libcurl is re-sending it by itself
 * because a reused keep-alive connection was closed without a reply: the
 * model may have received (and worked on) the first copy, so the resend is
 * refused here and the attempt ends as a failure the worker counts, retries
 * with backoff and bounds by max_attempts like any other. */
static int on_prereq(void *ud, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port,
                     int conn_local_port)
{
    (void)conn_primary_ip;
    (void)conn_local_ip;
    (void)conn_primary_port;
    (void)conn_local_port;
    job_t *j = ud;
    return ++j->sends > 1 ? CURL_PREREQFUNC_ABORT : CURL_PREREQFUNC_OK;
}

static void start_attempt(worker_t *w, job_t *j)
{
    const ifq_provider_t *prov = ifq_provider_find(j->dep->provider);
    const char *key = j->dep->api_key_env ? getenv(j->dep->api_key_env) : NULL;
    ifq_http_req_t hr;
    ifq_upstream_err_t uerr = {0};
    j->attempt++;
    json_t *routed = job_tree(j);
    ifq_wreq_attempt_start(j->obs, j->dep, j->kind, j->attempt);
    if (!prov ||
        prov->build(j->dep, j->kind, json_object_get(routed, "body"), key, &hr, &uerr) != IFQ_OK) {
        ifq_wreq_attempt_end(j->obs, 0, NULL, "invalid_request", uerr.message);
        add_attempt(j, attempt_record(j, 0, "invalid_request", uerr.message, 0));
        slot_release(j);
        if (failover(w, j) < 0)
            finish_error(w, j, "failed", "invalid_request",
                         prov ? uerr.message : "no adapter for the deployment's provider");
        return;
    }
    j->resp_len = 0;
    j->resp_too_big = 0;
    j->sends = 0;
    j->retry_after_ms = -1;
    free(j->request_id);
    j->request_id = NULL;
    free(j->req_body);
    j->req_body = hr.body;
    hdrs_free(j);
    char tp[80];
    snprintf(tp, sizeof(tp), "traceparent: %s", j->traceparent);
    j->hdrs = hdrs_build(&hr, tp);
    explicit_bzero(&hr.headers, sizeof(hr.headers));

    if (!j->easy)
        j->easy = easy_get(j->cons);
    CURL *e = j->easy;
    if (!e || !j->hdrs) {
        add_attempt(j, attempt_record(j, 0, "transport", "out of memory", 0));
        slot_release(j);
        finish_error(w, j, "failed", "upstream_error", "out of memory for the HTTP call");
        return;
    }
    long timeout = j->dep->timeout_ms;
    j->deadline_capped = 0;
    if (j->deadline_ms) {
        int64_t left = j->deadline_ms - ifq_now_ms();
        if (left < timeout) {
            timeout = left > 1 ? (long)left : 1;
            j->deadline_capped = 1;
        }
    }
    curl_easy_setopt(e, CURLOPT_URL, hr.url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->req_body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)hr.body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, &j->hdrs->nodes[0]);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, j);
    curl_easy_setopt(e, CURLOPT_PRIVATE, j);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, j);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, CURL_RECV_BUFFER);
    if (strncmp(hr.url, "https:", 6) == 0) {
        /* Over TLS, HTTP/2 multiplexes many requests on one connection;
         * PIPEWAIT makes new transfers wait for that connection instead of
         * opening more. Plain http stays HTTP/1.1 with keep-alive, where
         * waiting would serialise the first requests behind each other. */
        curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
    }
    curl_easy_setopt(e, CURLOPT_USERAGENT, "inferq-worker/0.1");
    if (hr.aws_sigv4[0]) {
        /* libcurl copies both strings; ours are wiped below. */
        curl_easy_setopt(e, CURLOPT_AWS_SIGV4, hr.aws_sigv4);
        curl_easy_setopt(e, CURLOPT_USERPWD, hr.userpwd);
    }
    explicit_bzero(hr.userpwd, sizeof(hr.userpwd));
    j->phase = JOB_HTTP;
    j->attempt_start_us = ifq_mono_us();
    atomic_fetch_add(&w->n_http, 1);
    http_attach(w, j);
    job_park(j);
}

/* Gives back what only the HTTP exchange needed (the easy handle goes back
 * to the pool, the request and response bytes are freed), so a request
 * waiting for a retry or for its result's delivery holds none of it. */
static void http_release(job_t *j)
{
    easy_put(j->cons, j->easy);
    j->easy = NULL;
    hdrs_free(j);
    free(j->req_body);
    j->req_body = NULL;
    free(j->resp);
    j->resp = NULL;
    j->resp_len = j->resp_cap = 0;
}

static void on_http_done(worker_t *w, job_t *j, CURLcode cc)
{
    long status = 0;
    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
    http_detach(w, j);
    int64_t latency = (ifq_mono_us() - j->attempt_start_us) / 1000;
    j->model_ms += latency;

    ifq_upstream_err_t uerr = {0};
    json_t *body = NULL;
    int passthrough = 0;
    /* on_prereq refused libcurl's own resend: a reused keep-alive
     * connection was closed without a reply. That is ambiguous (a stale
     * connection, or a server that dropped the request), so it does not
     * count against the circuit; a server that is really down fails the
     * retry's fresh connection, which does. */
    int dropped = (cc != CURLE_OK || status == 0) && j->sends > 1;
    if (cc != CURLE_OK || status == 0) {
        uerr.retryable = 1;
        snprintf(uerr.type, sizeof(uerr.type), "%s",
                 cc == CURLE_OPERATION_TIMEDOUT ? "timeout"
                 : j->resp_too_big              ? "response_too_large"
                 : cc == CURLE_COULDNT_CONNECT  ? "connect"
                 : dropped                      ? "connection_closed"
                                                : "transport");
        snprintf(uerr.message, sizeof(uerr.message), "%s (%s)",
                 dropped ? "connection closed without a reply" : curl_easy_strerror(cc),
                 j->dep->name);
        if (j->resp_too_big)
            uerr.retryable = 0;
    } else {
        const ifq_provider_t *prov = ifq_provider_find(j->dep->provider);
        body = prov->parse(j->dep, j->kind, status, j->resp, j->resp_len, &uerr);
        passthrough = prov->passthrough;
    }
    if (body) {
        /* the response bytes stay until the result is encoded */
        char *resp = j->resp;
        size_t resp_len = j->resp_len;
        j->resp = NULL;
        http_release(j);
        ifq_wreq_attempt_end(j->obs, status, body, NULL, NULL);
        circuit_record(w, j, 1, 0);
        slot_release(j);
        finish_success(w, j, status, body, passthrough ? resp : NULL, resp_len, latency);
        free(resp);
        return;
    }
    http_release(j);
    job_tree(j);
    json_t *rec = attempt_record(j, status, uerr.type, uerr.message, latency);
    /* libcurl never got to send the request (the connection was not made
     * in time, or refused): the provider cannot have seen or billed it. */
    if (status == 0 && j->sends == 0)
        json_object_set_new(rec, "request_sent", json_false());
    add_attempt(j, rec);
    ifq_wreq_attempt_end(j->obs, status, NULL, uerr.type, uerr.message);
    circuit_record(w, j, 0,
                   (status == 0 && !dropped) || status >= 500 ||
                       strcmp(uerr.type, "malformed_response") == 0);
    ifq_log_req(IFQ_LOG_INFO, "attempt_failed", j->traceparent, j->info.custom_id,
                json_pack("{ss ss si sI ss}", "id", j->info.id, "deployment", j->dep->name,
                          "attempt", j->attempt, "status", (json_int_t)status, "type", uerr.type),
                "%s", uerr.message);

    /* A timeout cut short by the deadline is the deadline passing, even
     * when libcurl's timer fired a few milliseconds before the wall clock
     * reached it. */
    int64_t now = ifq_now_ms();
    if (j->deadline_ms &&
        (now >= j->deadline_ms || (cc == CURLE_OPERATION_TIMEDOUT && j->deadline_capped))) {
        slot_release(j);
        finish_error(w, j, "expired", "batch_expired",
                     "the request's deadline passed while calling the model");
        return;
    }
    if (uerr.retryable && j->attempt < w->cfg->max_attempts && w->draining) {
        /* Shutting down: a transient failure is handed back (its offset
         * stays uncommitted, so the next worker retries it) rather than
         * turned into a final error. */
        slot_release(j);
        ifq_info("handed_back", "%s: retryable failure while draining", j->info.id);
        job_free(w, j);
        return;
    }
    if (uerr.retryable && j->attempt < w->cfg->max_attempts) {
        int64_t delay =
            ifq_backoff_ms(j->attempt, w->cfg->backoff_base_ms, w->cfg->backoff_max_ms, rand01(w));
        int64_t ra = j->retry_after_ms;
        if (ra > delay)
            delay = ra;
        if (!j->deadline_ms || now + delay < j->deadline_ms) {
            /* The slot stays taken while waiting: the deployment is busy
             * with this request. */
            wait_retry(w, j, delay);
            atomic_fetch_add(&w->n_retries, 1);
            return;
        }
    }
    slot_release(j);
    if (failover(w, j) == 0)
        return;
    char msg[700];
    snprintf(msg, sizeof(msg), "all %d attempt(s) failed; last: %s",
             (int)json_array_size(json_object_get(j->ext, "attempts")), uerr.message);
    finish_error(w, j, "failed", "upstream_error", msg);
}

/* ---- circuit breaker ------------------------------------------------------ */

static void circuit_update(worker_t *w, job_t *j, int success, int unhealthy);

/* Publishes c's circuit (circ_mu held). */
static void circuit_publish(worker_t *w, consumer_t *c)
{
    char key[IFQ_MAX_TOPIC + 64], failures[16], now[24], total[24];
    snprintf(key, sizeof(key), "%s:circuit:%s", w->cfg->prefix, c->dep->name);
    snprintf(failures, sizeof(failures), "%d", c->circuit->failures);
    snprintf(now, sizeof(now), "%lld", (long long)ifq_now_ms());
    snprintf(total, sizeof(total), "%lld", (long long)c->circuit->opened_total);
    const char *hset[] = {"HSET",         key,      "state",      circuit_names[c->circuit->state],
                          "failures",     failures, "updated_ms", now,
                          "opened_total", total};
    ifq_state_queue_cmd(w->state, (int)IFQ_ARRAY_LEN(hset), hset);
    const char *exp[] = {"EXPIRE", key, "86400"};
    ifq_state_queue_cmd(w->state, 3, exp);
    ifq_wobs_circuit(w->obs, c->dep->name, (int)c->circuit->state,
                     c->circuit->state == CIRCUIT_OPEN);
    ifq_log_fields(IFQ_LOG_WARN, "circuit_changed",
                   json_pack("{ss ss si}", "deployment", c->dep->name, "state",
                             circuit_names[c->circuit->state], "failures", c->circuit->failures),
                   "circuit of %s is %s", c->dep->name, circuit_names[c->circuit->state]);
}

/* Returns 1 when a call to the job's deployment may start now; else 0 and
 * *wait_ms says when to ask again. */
static int circuit_allow(worker_t *w, job_t *j, int64_t *wait_ms)
{
    circuit_t *cb = j->cons->circuit;
    int64_t now = ifq_mono_ms();
    int allow = 1;
    pthread_mutex_lock(&w->proc->circ_mu);
    if (cb->state == CIRCUIT_OPEN) {
        if (now < cb->open_until) {
            *wait_ms = cb->open_until - now;
            allow = 0;
        } else {
            cb->state = CIRCUIT_HALF_OPEN;
            cb->probe_inflight = 0;
            cb->adopted = 0; /* this worker's own probe decides from here */
            circuit_publish(w, j->cons);
        }
    }
    if (allow && cb->state == CIRCUIT_HALF_OPEN) {
        if (cb->probe_inflight) {
            *wait_ms = 100;
            allow = 0;
        } else {
            cb->probe_inflight = 1;
            j->is_probe = 1;
        }
    }
    pthread_mutex_unlock(&w->proc->circ_mu);
    return allow;
}

/* Records an attempt's outcome. unhealthy: a failure that a working
 * deployment does not produce (connection, timeout, 5xx). */
static void circuit_record(worker_t *w, job_t *j, int success, int unhealthy)
{
    pthread_mutex_lock(&w->proc->circ_mu);
    circuit_update(w, j, success, unhealthy);
    pthread_mutex_unlock(&w->proc->circ_mu);
}

/* circuit_record with circ_mu held. */
static void circuit_update(worker_t *w, job_t *j, int success, int unhealthy)
{
    circuit_t *cb = j->cons->circuit;
    int probe = j->is_probe;
    if (probe) {
        cb->probe_inflight = 0;
        j->is_probe = 0;
    }
    /* Only the half-open probe's outcome moves an open circuit: a call
     * that started before the circuit opened proves nothing about now. */
    if (cb->state == CIRCUIT_HALF_OPEN && probe) {
        if (success || !unhealthy) {
            cb->state = CIRCUIT_CLOSED;
            cb->failures = 0;
        } else {
            cb->failures++;
            cb->state = CIRCUIT_OPEN;
            cb->adopted = 0;
            cb->open_until = ifq_mono_ms() + w->cfg->circuit_open_ms;
            cb->opened_total++;
        }
        circuit_publish(w, j->cons);
        return;
    }
    if (cb->state != CIRCUIT_CLOSED)
        return;
    if (success || !unhealthy) {
        cb->failures = 0;
        return;
    }
    if (++cb->failures >= w->cfg->circuit_failure_threshold) {
        cb->state = CIRCUIT_OPEN;
        cb->adopted = 0;
        cb->open_until = ifq_mono_ms() + w->cfg->circuit_open_ms;
        cb->opened_total++;
        circuit_publish(w, j->cons);
    }
}

/* Reads the circuits every worker published (one Redis round trip) and
 * lets a closed local circuit honour one another worker opened, so a
 * worker that has not itself failed against a dead deployment does not
 * keep sending it requests (circuit.h). Adopted states are not
 * republished. */
static void circuit_refresh(worker_t *w)
{
    if (ifq_state_read_health(w->state, w->cfg, &w->health) != IFQ_OK)
        return; /* Redis unreachable: keep the local view */
    int64_t now = ifq_now_ms(), mono = ifq_mono_ms();
    for (size_t i = 0; i < w->ncons; i++) {
        consumer_t *c = &w->cons[i];
        size_t k = (size_t)(c->dep - w->cfg->deployments);
        if (k >= w->health.n)
            continue;
        const ifq_dep_health_t *h = &w->health.deps[k];
        pthread_mutex_lock(&w->proc->circ_mu);
        circuit_adopt_t a = ifq_circuit_adopt(c->circuit, h->circuit_open, h->circuit_changed_ms,
                                              now, mono, w->cfg->circuit_open_ms);
        int state = (int)c->circuit->state;
        pthread_mutex_unlock(&w->proc->circ_mu);
        if (a != CIRCUIT_ADOPT_NONE)
            ifq_log_fields(
                IFQ_LOG_WARN, "circuit_adopted",
                json_pack("{ss ss}", "deployment", c->dep->name, "state", circuit_names[state]),
                "circuit of %s is %s, as published by another worker", c->dep->name,
                circuit_names[state]);
    }
}

static void wait_retry(worker_t *w, job_t *j, int64_t delay_ms)
{
    j->phase = JOB_WAIT_RETRY;
    j->timer.data = j;
    if (ifq_timers_arm(&w->timers, &j->timer, ifq_mono_ms() + delay_ms) < 0)
        w->fatal = 1;
}

/* Starts the job's next attempt unless its deadline passed or its
 * deployment's circuit is open. With the circuit open the request moves on
 * to the next deployment of its chain, or, at the end of the chain, waits
 * for the circuit to half-open (bounded by its deadline): an asynchronous
 * client is better served late than failed fast. */
static void dispatch(worker_t *w, job_t *j)
{
    job_tree(j);
    int64_t now = ifq_now_ms();
    if (j->deadline_ms && now >= j->deadline_ms) {
        slot_release(j);
        finish_error(w, j, "expired", "batch_expired",
                     "the request's deadline passed before its next attempt");
        return;
    }
    int64_t wait = 0;
    if (!circuit_allow(w, j, &wait)) {
        json_t *chain = json_object_get(j->ext, "chain");
        json_int_t hop = json_integer_value(json_object_get(j->ext, "hop"));
        if ((size_t)hop + 1 < json_array_size(chain)) {
            add_attempt(
                j, attempt_record(j, 0, "circuit_open", "circuit breaker open; not called", 0));
            slot_release(j);
            if (failover(w, j) == 0)
                return;
        }
        /* Never past the deadline: the timer then finds it expired. */
        if (j->deadline_ms && j->deadline_ms - now < wait)
            wait = j->deadline_ms > now ? j->deadline_ms - now : 0;
        wait_retry(w, j, wait);
        return;
    }
    start_attempt(w, j);
}

/* ---- Kafka output --------------------------------------------------------- */

static void produce_out(worker_t *w, job_t *j)
{
    j->phase = JOB_PRODUCING;
    if (!j->out || !j->out_topic) {
        ifq_error("produce_failed", "%s: out of memory", j->info.id);
        w->fatal = 1; /* nothing committed: the request is redelivered */
        return;
    }
    rd_kafka_headers_t *h = rd_kafka_headers_new(4);
    rd_kafka_header_add(h, "inferq-id", -1, j->info.id, -1);
    rd_kafka_header_add(h, "traceparent", -1, j->traceparent, -1);
    rd_kafka_header_add(h, "content-type", -1, "application/json", -1);
    char att[16];
    snprintf(att, sizeof(att), "%d", j->attempt);
    rd_kafka_header_add(h, "inferq-attempt", -1, att, -1);
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            w->producer, RD_KAFKA_V_TOPIC(j->out_topic), RD_KAFKA_V_VALUE(j->out, j->out_len),
            RD_KAFKA_V_KEY((void *)j->info.custom_id, strlen(j->info.custom_id)),
            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(j), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(w->producer, 10);
            continue;
        }
        if (err) {
            rd_kafka_headers_destroy(h);
            ifq_error("produce_failed", "%s: %s", j->out_topic, rd_kafka_err2str(err));
            w->fatal = 1;
        }
        return;
    }
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    worker_t *w = opaque;
    job_t *j = m->_private;
    if (!j || m->_private == (void *)&ifq_wobs_tag)
        return;
    if (m->err) {
        if (j->final_state && !j->to_default && strcmp(j->out_topic, w->cfg->topic_replies) != 0) {
            ifq_warn("reply_topic_failed", "%s: %s; using %s", j->out_topic,
                     rd_kafka_err2str(m->err), w->cfg->topic_replies);
            j->to_default = 1;
            set_out_topic(j, w->cfg->topic_replies, 0);
            produce_out(w, j);
            return;
        }
        /* librdkafka already retried for message.timeout.ms: stop taking
         * work and exit without committing, so the request is redelivered. */
        ifq_error("delivery_failed", "%s: %s", j->out_topic, rd_kafka_err2str(m->err));
        w->fatal = 1;
        job_free(w, j);
        return;
    }
    if (j->final_state) {
        const char *kv[] = {"deployment", j->dep ? j->dep->name : ""};
        ifq_state_queue(w->state, j->info.custom_id, j->info.id, j->final_state, kv, 2);
    }
    /* The hop's spans go now, not beside the result (worker_obs.h). */
    ifq_wreq_send(j->obs, w->producer, &w->spans_out);
    j->obs = NULL;
    job_done(w, j);
}

/* ---- intake ------------------------------------------------------------- */

/* The next message by priority: high, normal, low; then the consumer's own
 * queue, which also serves rebalance events. */
static rd_kafka_message_t *next_message(consumer_t *c)
{
    static const int order[] = {IFQ_PRIO_HIGH, IFQ_PRIO_NORMAL, IFQ_PRIO_LOW};
    for (int k = 0; k < 3; k++) {
        rd_kafka_message_t *m = rd_kafka_consume_queue(c->lane_q[order[k]], 0);
        if (m)
            return m;
    }
    return rd_kafka_consume_queue(c->q, 0);
}

/* Copies the routed message's strings the job needs after its tree is
 * dropped into one block (j->ids). Returns 0, or -1 when the id or
 * custom_id is missing (the message is dead-lettered) or out of memory. */
static int job_strings(job_t *j)
{
    const json_t *ext = j->ext;
    const char *src[] = {
        json_string_value(json_object_get(ext, "id")),
        json_string_value(json_object_get(j->routed, "custom_id")),
        json_string_value(json_object_get(ext, "team")),
        json_string_value(json_object_get(ext, "model_requested")),
        json_string_value(json_object_get(j->routed, "reply_to")),
        json_string_value(json_object_get(ext, "guardrail_policy")),
        json_string_value(json_object_get(ext, "cache_key")),
    };
    const char *dst[IFQ_ARRAY_LEN(src)];
    if (!src[0] || !src[1])
        return -1;
    size_t total = 0;
    for (size_t i = 0; i < IFQ_ARRAY_LEN(src); i++)
        total += src[i] ? strlen(src[i]) + 1 : 0;
    char *p = j->ids = malloc(total);
    if (!p)
        return -1;
    for (size_t i = 0; i < IFQ_ARRAY_LEN(src); i++) {
        dst[i] = NULL;
        if (src[i]) {
            size_t n = strlen(src[i]) + 1;
            memcpy(p, src[i], n);
            dst[i] = p;
            p += n;
        }
    }
    j->info.id = dst[0];
    j->info.custom_id = dst[1];
    j->info.team = dst[2] ? dst[2] : "";
    j->info.alias = dst[3] ? dst[3] : "";
    j->has_alias = dst[3] != NULL;
    j->reply_to = dst[4];
    j->guard_policy = dst[5];
    j->cache_key = dst[6];
    j->info.received_ms = json_integer_value(json_object_get(ext, "received_ms"));
    j->limit_minute = json_integer_value(json_object_get(ext, "limit_minute"));
    j->est_tokens = json_integer_value(json_object_get(ext, "est_tokens"));
    return 0;
}

/* Finds where the values a result carries over lie in j->raw (j->carry).
 * Returns 1, or 0 when they cannot be taken as bytes: the result is then
 * built from the tree. */
static int carry_find(job_t *j)
{
    static const char *const top[] = {"metadata", "inferq"};
    ifq_jrange_t t[2], e[IFQ_ARRAY_LEN(ext_keys)];
    const json_t *attempts = json_object_get(j->ext, "attempts");
    if (!json_is_array(attempts) || json_array_size(attempts) > 1000 ||
        ifq_json_members(j->raw, j->raw_len, top, 2, t) < 0 || !t[1].len ||
        ifq_json_members(j->raw + t[1].off, t[1].len, ext_keys, IFQ_ARRAY_LEN(ext_keys), e) < 0)
        return 0;
    /* metadata other than an object is written as {}, as by ifq_result_new */
    j->carry[CARRY_METADATA] =
        json_is_object(json_object_get(j->routed, "metadata")) ? t[0] : (ifq_jrange_t){0, 0};
    for (size_t k = 0; k < IFQ_ARRAY_LEN(ext_keys); k++) {
        j->carry[CARRY_ATTEMPTS + k] = e[k];
        if (e[k].len)
            j->carry[CARRY_ATTEMPTS + k].off += t[1].off;
    }
    j->n_prior = (unsigned short)json_array_size(attempts);
    return 1;
}

static job_t *job_from_message(worker_t *w, consumer_t *c, const rd_kafka_message_t *m)
{
    job_t *j = calloc(1, sizeof(*j));
    j->w = w;
    j->cons = c;
    j->phase = JOB_QUEUED;
    const char *topic = rd_kafka_topic_name(m->rkt);
    for (int k = 0; k < 3 && !j->topic; k++)
        if (strcmp(topic, c->lane_topic[k]) == 0)
            j->topic = c->lane_topic[k];
    if (!j->topic)
        j->topic = j->topic_own = strdup(topic);
    j->partition = m->partition;
    j->offset = m->offset;
    part_t *p = part_find(c, j->topic, j->partition);
    j->gen = p ? p->gen : 0;
    if (p)
        ifq_offsets_track(p->offs, m->offset);
    j->picked_ms = ifq_now_ms();
    j->dep = c->dep;
    json_error_t jerr;
    j->routed = json_loadb(m->payload, m->len, 0, &jerr);
    j->ext = json_object_get(j->routed, "inferq");
    if (job_strings(j) == 0) {
        j->raw = malloc(m->len ? m->len : 1); /* without it the tree is kept */
        if (j->raw) {
            memcpy(j->raw, m->payload, m->len);
            j->raw_len = m->len;
            j->fast = carry_find(j);
        }
    }
    j->model_ms = json_integer_value(json_object_get(j->ext, "model_ms"));
    if (!json_is_array(json_object_get(j->ext, "attempts"))) {
        json_object_set_new(j->ext, "attempts", json_array());
        j->dirty = 1;
    }
    const char *tp = json_string_value(json_object_get(j->ext, "traceparent"));
    snprintf(j->traceparent, sizeof(j->traceparent), "%s",
             tp ? tp : "00-00000000000000000000000000000000-0000000000000000-00");
    const char *prio = json_string_value(json_object_get(j->routed, "priority"));
    j->lane = prio && strcmp(prio, "high") == 0  ? IFQ_PRIO_HIGH
              : prio && strcmp(prio, "low") == 0 ? IFQ_PRIO_LOW
                                                 : IFQ_PRIO_NORMAL;
    json_int_t dl = json_integer_value(json_object_get(j->routed, "deadline_ms"));
    j->deadline_ms = dl > 0 ? dl : 0;
    const char *url = json_string_value(json_object_get(j->routed, "url"));
    j->kind = IFQ_URL_CHAT;
    for (int k = IFQ_URL_CHAT; url && k <= IFQ_URL_EMBEDDINGS; k++)
        if (strcmp(url, ifq_url_path((ifq_url_kind_t)k)) == 0)
            j->kind = (ifq_url_kind_t)k;
    job_link(w, j);
    return j;
}

/* A routed message that is not ours to understand (written by something
 * other than the broker) is dead-lettered rather than dropped. */
static void dead_letter(worker_t *w, job_t *j, const rd_kafka_message_t *m, const char *why)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(6);
    ifq_kafka_dlq_headers(h, why, "undecodable", j->topic, j->partition, j->offset);
    j->phase = JOB_PRODUCING;
    j->final_state = NULL;
    j->info.custom_id = "";
    rd_kafka_resp_err_t err = rd_kafka_producev(
        w->producer, RD_KAFKA_V_TOPIC(w->cfg->topic_dlq), RD_KAFKA_V_VALUE(m->payload, m->len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(j),
        RD_KAFKA_V_END);
    if (err) {
        rd_kafka_headers_destroy(h);
        w->fatal = 1;
    }
    ifq_warn("dead_lettered", "%s[%d]@%lld: %s", j->topic, (int)j->partition, (long long)j->offset,
             why);
}

/* Whether Kafka is behind this loop's producer: results, spans and logs
 * it has not acknowledged yet. The requests they belong to are finished as
 * far as the model is concerned, so they no longer count against the
 * in-flight caps, but each still holds memory here; without this bound a
 * slow or stalled Kafka (a leader election, a full disk) would let the
 * loop take ever more requests and hold ever more results. */
static int producer_backlogged(worker_t *w)
{
    int queued = rd_kafka_outq_len(w->producer);
    /* It resumes at three quarters, so a queue that hovers around the
     * bound does not flip the loop (and the log) on every iteration. */
    int backlogged =
        w->backlogged ? queued > w->max_undelivered * 3 / 4 : queued >= w->max_undelivered;
    if (backlogged != w->backlogged) {
        w->backlogged = backlogged;
        if (backlogged)
            ifq_warn("intake_paused",
                     "%d message(s) wait for Kafka's acknowledgement (worker.max_undelivered "
                     "share: %d); taking no new request until they are delivered",
                     queued, w->max_undelivered);
        else
            ifq_info("intake_resumed", "%d message(s) wait for Kafka's acknowledgement", queued);
        ifq_wobs_backlog(w->obs, backlogged);
    }
    return backlogged;
}

static void intake(worker_t *w, consumer_t *c)
{
    enum { BATCH = 256 };
    job_t *batch[BATCH];
    int n = 0;
    int backlogged = producer_backlogged(w);
    while (n < BATCH && !w->draining) {
        int room =
            !backlogged && c->inflight + n < c->cap && atomic_load(&w->inflight_gauge) + n < w->cap;
        /* Full: only the consumer's own queue (events; a message there was
         * consumed already and is taken even over the cap). */
        rd_kafka_message_t *m = room ? next_message(c) : rd_kafka_consume_queue(c->q, 0);
        if (!m)
            break;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                ifq_warn("consume_error", "%s: %s", c->group, rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        job_t *j = job_from_message(w, c, m);
        if (!j->info.id || !json_is_object(json_object_get(j->routed, "body"))) {
            dead_letter(w, j, m,
                        "not a routed inferq request (missing inferq.id, custom_id or body)");
        } else {
            j->obs = ifq_wreq_begin(w->obs, j->routed, &j->info, j->traceparent, c->dep,
                                    rd_kafka_message_timestamp(m, NULL));
            batch[n++] = j;
        }
        rd_kafka_message_destroy(m);
    }
    if (n == 0)
        return;
    /* Idempotency: a redelivered request that was already answered is not
     * sent to the model again. */
    const char *cids[BATCH], *ids[BATCH];
    int done[BATCH];
    for (int i = 0; i < n; i++) {
        cids[i] = batch[i]->info.custom_id;
        ids[i] = batch[i]->info.id;
    }
    if (ifq_state_final_many(w->state, (size_t)n, cids, ids, done) != IFQ_OK)
        ifq_warn("idempotency_check_failed", "redis unreachable; calling the model anyway");
    for (int i = 0; i < n; i++) {
        job_t *j = batch[i];
        if (done[i]) {
            atomic_fetch_add(&w->n_skipped, 1);
            ifq_wobs_duplicate(w->obs, c->dep->name);
            ifq_debug("duplicate_skipped", "%s already answered", j->info.id);
            job_done(w, j);
            continue;
        }
        const char *kv[] = {"deployment", c->dep->name};
        ifq_state_queue(w->state, j->info.custom_id, j->info.id, "running", kv, 2);
        c->inflight++;
        atomic_fetch_add(&w->proc->dep_inflight[c->dep - w->cfg->deployments], 1);
        atomic_fetch_add(&w->inflight_gauge, 1);
        dispatch(w, j);
    }
}

/* ---- admin ---------------------------------------------------------------- */

static int worker_ready(void *opaque, char *why, size_t why_size)
{
    proc_t *p = opaque;
    for (int k = 0; k < p->nloops; k++)
        if (!atomic_load(&p->loops[k].ready)) {
            snprintf(why, why_size, "waiting for the Kafka group assignment");
            return 0;
        }
    return 1;
}

static size_t worker_metrics(void *opaque, char *buf, size_t size)
{
    proc_t *p = opaque;
    long long sum[7] = {0};
    int inflight = 0;
    for (int k = 0; k < p->nloops; k++) {
        worker_t *w = &p->loops[k];
        atomic_llong *c[] = {&w->n_succeeded, &w->n_failed,  &w->n_expired, &w->n_failover,
                             &w->n_retries,   &w->n_skipped, &w->n_http};
        for (size_t i = 0; i < IFQ_ARRAY_LEN(c); i++)
            sum[i] += (long long)atomic_load(c[i]);
        inflight += atomic_load(&w->inflight_gauge);
    }
    int n = snprintf(
        buf, size,
        "# TYPE inferq_worker_results_total counter\n"
        "inferq_worker_results_total{status=\"succeeded\"} %lld\n"
        "inferq_worker_results_total{status=\"failed\"} %lld\n"
        "inferq_worker_results_total{status=\"expired\"} %lld\n"
        "# TYPE inferq_worker_failovers_total counter\ninferq_worker_failovers_total %lld\n"
        "# TYPE inferq_worker_retries_total counter\ninferq_worker_retries_total %lld\n"
        "# TYPE inferq_worker_duplicates_skipped_total counter\n"
        "inferq_worker_duplicates_skipped_total %lld\n"
        "# TYPE inferq_worker_http_requests_total counter\ninferq_worker_http_requests_total %lld\n"
        "# TYPE inferq_worker_inflight gauge\ninferq_worker_inflight %d\n",
        sum[0], sum[1], sum[2], sum[3], sum[4], sum[5], sum[6], inflight);
    size_t len = n < 0 ? 0 : (size_t)n >= size ? size - 1 : (size_t)n;
    return len + ifq_wobs_render(p->obs, buf + len, size - len);
}

/* ---- main loop -------------------------------------------------------------- */

static void run_timers(worker_t *w, int64_t *next_ms)
{
    int64_t now = ifq_mono_ms();
    ifq_timer_t *t;
    while ((t = ifq_timers_pop_due(&w->timers, now)))
        dispatch(w, t->data);
    int64_t in = ifq_timers_next_in(&w->timers, now);
    if (in >= 0 && in < *next_ms)
        *next_ms = in;
}

static void reap_http(worker_t *w)
{
    CURLMsg *msg;
    int left;
    for (int k = 0; k < w->nmultis; k++) {
        while ((msg = curl_multi_info_read(w->multis[k], &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            job_t *j = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
            CURLcode cc = msg->data.result;
            if (j)
                on_http_done(w, j, cc);
        }
    }
}

/* Tells brokers how busy each deployment is here (least-busy routing):
 * "<in flight> <epoch ms>" under this worker's id; stale entries of dead
 * workers are ignored by readers after 10 s and expire after a minute. */
static void publish_inflight(worker_t *w)
{
    char now[24];
    snprintf(now, sizeof(now), "%lld", (long long)ifq_now_ms());
    for (size_t i = 0; i < w->ncons; i++) {
        char key[IFQ_MAX_TOPIC + 64], val[64];
        snprintf(key, sizeof(key), "%s:inflight:%s", w->cfg->prefix, w->cons[i].dep->name);
        snprintf(val, sizeof(val), "%d %s", w->cons[i].inflight, now);
        const char *hset[] = {"HSET", key, w->worker_id, val};
        const char *exp[] = {"EXPIRE", key, "60"};
        ifq_state_queue_cmd(w->state, 4, hset);
        ifq_state_queue_cmd(w->state, 3, exp);
        /* The gauges are the process's: the first loop sets them from every
         * loop's count. With several loops each sets its own partitions'
         * lag, so none resets the others' (a revoked partition's lag stays
         * until the process restarts). */
        size_t k = (size_t)(w->cons[i].dep - w->cfg->deployments);
        pthread_mutex_lock(&w->proc->circ_mu);
        int state = (int)w->cons[i].circuit->state;
        pthread_mutex_unlock(&w->proc->circ_mu);
        if (w->index == 0)
            ifq_wobs_deployment(w->obs, w->cons[i].dep->name,
                                atomic_load(&w->proc->dep_inflight[k]), state);
        ifq_wobs_lag(w->obs, w->cons[i].rk, w->cons[i].group, i == 0 && w->proc->nloops == 1);
    }
}

static int64_t now_ms_since(int64_t t)
{
    return ifq_mono_ms() - t;
}

static void drain_wake(worker_t *w)
{
    char buf[256];
    while (read(w->wake[0], buf, sizeof(buf)) > 0)
        ;
}

static void usage(void)
{
    fprintf(stderr, "usage: inferq-worker --config FILE [--deployment NAME]... "
                    "[--log-level debug|info|warn|error]\n");
}

/* Which deployments this process serves: --deployment flags, else
 * worker.deployments, else all. Fills served (cfg->n_deployments entries);
 * returns how many, or -1 after printing why the command line is wrong. */
static int select_deployments(ifq_config_t *cfg, const char *const *only, int nonly,
                              ifq_deployment_t **served)
{
    int n = 0;
    for (size_t i = 0; i < cfg->n_deployments; i++) {
        ifq_deployment_t *d = &cfg->deployments[i];
        int serve = 0;
        if (nonly) {
            for (int k = 0; k < nonly; k++)
                serve |= strcmp(only[k], d->name) == 0;
        } else if (cfg->worker_deployments && json_array_size(cfg->worker_deployments)) {
            size_t k;
            json_t *v;
            json_array_foreach(cfg->worker_deployments, k, v)
            {
                const char *s = json_string_value(v);
                serve |= s && (strcmp(s, "*") == 0 || strcmp(s, d->name) == 0);
            }
        } else {
            serve = 1;
        }
        if (!serve)
            continue;
        if (!ifq_provider_find(d->provider)) {
            fprintf(stderr, "inferq-worker: deployment %s: no adapter for provider %s\n", d->name,
                    d->provider);
            return -1;
        }
        served[n++] = d;
    }
    for (int k = 0; k < nonly; k++)
        if (!ifq_config_deployment(cfg, only[k])) {
            fprintf(stderr, "inferq-worker: --deployment %s is not in the catalog\n", only[k]);
            return -1;
        }
    if (n == 0) {
        fprintf(stderr, "inferq-worker: no deployments to serve\n");
        return -1;
    }
    return n;
}

/* A loop's share of a process-wide cap: the loops together never exceed it. */
static int loop_share(int cap, int nloops)
{
    return cap / nloops > 0 ? cap / nloops : 1;
}

/* Sets up event loop w (its index in p->loops): its wake pipe, Redis
 * connection, producer, one consumer per served deployment, curl multi.
 * The first loop also creates the topics. Returns 0, or -1 after logging
 * why (loop_free releases what was made). */
static int loop_init(proc_t *p, worker_t *w, ifq_deployment_t **served, int nserved)
{
    char errstr[512];
    /* Each loop reports its own in-flight counts under its own id (readers
     * sum them); the first keeps the process's plain id. */
    if (w->index == 0)
        snprintf(w->worker_id, sizeof(w->worker_id), "%s", p->instance);
    else
        snprintf(w->worker_id, sizeof(w->worker_id), "%s.%d", p->instance, w->index);
    w->proc = p;
    w->cfg = p->cfg;
    w->guard = p->guard;
    w->obs = p->obs;
    w->cap = loop_share(w->cfg->worker_max_inflight, p->nloops);
    w->max_undelivered = loop_share(w->cfg->worker_max_undelivered ? w->cfg->worker_max_undelivered
                                                                   : w->cfg->worker_max_inflight,
                                    p->nloops);
    w->rng = (uint64_t)ifq_mono_us() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL ^
             ((uint64_t)w->index << 16);
    w->wake[0] = w->wake[1] = -1;
    w->cons = calloc((size_t)nserved, sizeof(*w->cons));
    if (!w->cons || pipe(w->wake) < 0) {
        ifq_error("startup_failed", "loop %d: %s", w->index, strerror(errno));
        return -1;
    }
    for (int i = 0; i < nserved; i++) {
        consumer_t *c = &w->cons[w->ncons++];
        c->dep = served[i];
        c->w = w;
        c->circuit = &p->circuits[served[i] - w->cfg->deployments];
        int cap = c->dep->max_inflight < w->cfg->worker_max_inflight ? c->dep->max_inflight
                                                                     : w->cfg->worker_max_inflight;
        c->cap = loop_share(cap, p->nloops);
    }
    fcntl(w->wake[0], F_SETFL, O_NONBLOCK);
    fcntl(w->wake[1], F_SETFL, O_NONBLOCK);

    w->state = ifq_state_connect(w->cfg->redis_url, w->cfg->prefix, w->cfg->state_ttl_s, errstr,
                                 sizeof(errstr));
    if (!w->state) {
        ifq_error("startup_failed", "%s", errstr);
        return -1;
    }
    if (ifq_state_async_start(w->state, errstr, sizeof(errstr)) != IFQ_OK)
        ifq_warn("state_writer_failed", "%s; writing Redis from the event loop", errstr);
    w->producer = ifq_kafka_producer_new(w->cfg, dr_cb, w, NULL, WORKER_LINGER_MS,
                                         WORKER_COPY_MAX_BYTES, errstr, sizeof(errstr));
    if (!w->producer) {
        ifq_error("startup_failed", "producer: %s", errstr);
        return -1;
    }
    w->mainq = rd_kafka_queue_get_main(w->producer);
    rd_kafka_queue_io_event_enable(w->mainq, w->wake[1], "1", 1);
    if (w->index == 0 && w->cfg->create_topics) {
        const char **topics = calloc(3 * w->ncons + 4, sizeof(*topics));
        char(*lanes)[IFQ_MAX_TOPIC + 1] = calloc(3 * w->ncons, sizeof(*lanes));
        size_t nt = 0;
        int trc = IFQ_ERR_IO;
        snprintf(errstr, sizeof(errstr), "out of memory");
        if (topics && lanes) {
            topics[nt++] = w->cfg->topic_replies;
            topics[nt++] = w->cfg->topic_dlq;
            topics[nt++] = w->cfg->topic_traces;
            topics[nt++] = w->cfg->topic_logs;
            for (size_t i = 0; i < w->ncons; i++)
                for (int lane = 0; lane < 3; lane++) {
                    ifq_lane_topic(w->cfg, w->cons[i].dep, lane, lanes[3 * i + lane],
                                   sizeof(lanes[0]));
                    topics[nt++] = lanes[3 * i + lane];
                }
            trc = ifq_kafka_ensure_topics(w->producer, w->cfg, topics, nt, 15000, errstr,
                                          sizeof(errstr));
        }
        free(topics);
        free(lanes);
        if (trc != IFQ_OK) {
            ifq_error("startup_failed", "%s", errstr);
            return -1;
        }
    }
    for (size_t i = 0; i < w->ncons; i++) {
        consumer_t *c = &w->cons[i];
        snprintf(c->group, sizeof(c->group), "%s.%s", w->cfg->worker_group_prefix, c->dep->name);
        /* It never starts more than this many of its messages at once:
         * pre-fetching further ahead would only cost memory. */
        c->rk = ifq_kafka_consumer_new_bounded(w->cfg, c->group, rebalance_cb, c, c->cap, errstr,
                                               sizeof(errstr));
        if (!c->rk) {
            ifq_error("startup_failed", "consumer: %s", errstr);
            return -1;
        }
        rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(3);
        for (int lane = 0; lane < 3; lane++) {
            ifq_lane_topic(w->cfg, c->dep, lane, c->lane_topic[lane], sizeof(c->lane_topic[0]));
            rd_kafka_topic_partition_list_add(subs, c->lane_topic[lane], RD_KAFKA_PARTITION_UA);
            c->lane_q[lane] = rd_kafka_queue_new(c->rk);
            rd_kafka_queue_io_event_enable(c->lane_q[lane], w->wake[1], "1", 1);
        }
        rd_kafka_resp_err_t serr = rd_kafka_subscribe(c->rk, subs);
        rd_kafka_topic_partition_list_destroy(subs);
        if (serr) {
            ifq_error("startup_failed", "subscribe %s: %s", c->dep->topic, rd_kafka_err2str(serr));
            return -1;
        }
        c->q = rd_kafka_queue_get_consumer(c->rk);
        rd_kafka_queue_io_event_enable(c->q, w->wake[1], "1", 1);
    }
    w->health.n = w->cfg->n_deployments;
    w->health.deps = calloc(w->health.n ? w->health.n : 1, sizeof(*w->health.deps));
    if (!w->health.deps)
        w->health.n = 0; /* no refresh; local circuits only */
    ifq_timers_init(&w->timers);
    /* Connections are spread over several multi handles (curl_loop.h):
     * HTTP_SHARD_CONNS of this loop's in-flight cap each. */
    w->nmultis = (w->cap + HTTP_SHARD_CONNS - 1) / HTTP_SHARD_CONNS;
    w->multis = calloc((size_t)w->nmultis, sizeof(*w->multis));
    w->multi_load = calloc((size_t)w->nmultis, sizeof(*w->multi_load));
    if (!w->multis || !w->multi_load) {
        ifq_error("startup_failed", "out of memory");
        return -1;
    }
    long per = (w->cap + w->nmultis - 1) / w->nmultis;
    for (int k = 0; k < w->nmultis; k++) {
        w->multis[k] = curl_multi_init();
        if (!w->multis[k]) {
            ifq_error("startup_failed", "curl_multi_init failed");
            return -1;
        }
        curl_multi_setopt(w->multis[k], CURLMOPT_MAXCONNECTS, per);
        curl_multi_setopt(w->multis[k], CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    }
    w->loop = ifq_curl_loop_new(w->multis, w->nmultis, w->wake[0]);
    if (!w->loop) {
        ifq_error("startup_failed", "epoll: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Runs event loop w until the process stops (SIGTERM/SIGINT: drain within
 * the grace period) or a fatal error; then hands back what did not finish
 * and commits what did. Returns the exit code. */
static int loop_run(worker_t *w)
{
    int64_t drain_started = 0;
    int rc = 0;
    for (;;) {
        if ((stop_requested || atomic_load(&w->proc->fatal)) && !w->draining) {
            w->draining = 1;
            drain_started = ifq_mono_ms();
            ifq_info("draining", "%d request(s) in flight; grace %d ms", w->njobs,
                     w->cfg->shutdown_grace_ms);
        }
        if (w->draining &&
            (w->njobs == 0 || now_ms_since(drain_started) > w->cfg->shutdown_grace_ms || w->fatal))
            break;
        if (w->fatal) {
            rc = 1;
            break;
        }

        drain_wake(w);
        /* The calls that ended in the last wait free their slots before
         * intake, which refills them now rather than one iteration later
         * (an iteration takes milliseconds at thousands in flight). */
        reap_http(w);
        int all_assigned = 1;
        for (size_t i = 0; i < w->ncons; i++) {
            consumer_t *c = &w->cons[i];
            /* At the in-flight cap the lane queues are simply not read:
             * librdkafka stops fetching at queued.max.messages.kbytes, so
             * nothing grows without bound, and there is no pause/resume
             * (a resumed partition waits for the next fetch tick, which
             * throttled a full worker to ~max_inflight requests a second).
             * The consumer's own queue is still served, for rebalances and
             * to keep the group membership alive. */
            if (w->draining) {
                rd_kafka_message_t *m = rd_kafka_consume_queue(c->q, 0);
                if (m)
                    rd_kafka_message_destroy(m); /* left to the next owner */
            } else {
                intake(w, c);
            }
            all_assigned &= c->assigned_once;
        }
        if (all_assigned)
            atomic_store(&w->ready, 1);

        ifq_curl_loop_kick(w->loop);
        reap_http(w);
        int64_t next_ms = 100;
        run_timers(w, &next_ms);
        rd_kafka_poll(w->producer, 0);
        ifq_wobs_submit(w->obs, &w->spans_out, &w->spans_pending);

        char why[256];
        if (ifq_state_pending(w->state) && ifq_state_flush(w->state, why, sizeof(why)) != IFQ_OK)
            ifq_warn("state_flush_failed", "%s", why);
        if (now_ms_since(w->last_publish_ms) >= 1000) {
            publish_inflight(w);
            for (size_t i = 0; i < w->ncons; i++)
                usage_flush(w, &w->cons[i]);
            w->last_publish_ms = ifq_mono_ms();
        }
        if (now_ms_since(w->last_health_ms) >= CIRCUIT_REFRESH_MS) {
            circuit_refresh(w);
            w->last_health_ms = ifq_mono_ms();
        }
        if (now_ms_since(w->last_commit_ms) >= 200) {
            for (size_t i = 0; i < w->ncons; i++)
                commit_parts(&w->cons[i], 0);
            w->last_commit_ms = ifq_mono_ms();
        }

        if (ifq_curl_loop_wait(w->loop, (int)next_ms) < 0) {
            ifq_error("event_loop_failed", "epoll: %s", strerror(errno));
            rc = 1;
            break;
        }
    }
    /* A loop that fails takes the process down: the others drain too. */
    if (rc != 0 || w->fatal)
        atomic_store(&w->proc->fatal, 1);

    /* Hand back what did not finish: its offsets stay uncommitted, so the
     * group redelivers it. Commit everything that did. */
    if (w->njobs)
        ifq_warn("handing_back", "%d unfinished request(s) will be redelivered", w->njobs);
    rd_kafka_flush(w->producer, 5000);
    /* The spans of the results just delivered, then theirs. */
    rd_kafka_poll(w->producer, 0);
    ifq_wobs_submit(w->obs, &w->spans_out, &w->spans_pending);
    ifq_wobs_drain(w->obs, &w->spans_pending);
    rd_kafka_flush(w->producer, 5000);
    rd_kafka_poll(w->producer, 0);
    for (size_t i = 0; i < w->ncons; i++)
        usage_flush(w, &w->cons[i]);
    ifq_state_async_stop(w->state, 5000); /* what Redis has not taken in 5 s is lost */
    for (size_t i = 0; i < w->ncons; i++) {
        commit_parts(&w->cons[i], 1);
        rd_kafka_consumer_close(w->cons[i].rk);
    }
    while (w->jobs)
        job_free(w, w->jobs);
    return rc != 0 || w->fatal ? 1 : 0;
}

/* Releases what loop_init made (also after a partial loop_init). */
static void loop_free(worker_t *w)
{
    if (w->mainq)
        rd_kafka_queue_destroy(w->mainq);
    for (size_t i = 0; i < w->ncons; i++) {
        if (w->cons[i].q)
            rd_kafka_queue_destroy(w->cons[i].q);
        for (int lane = 0; lane < 3; lane++)
            if (w->cons[i].lane_q[lane])
                rd_kafka_queue_destroy(w->cons[i].lane_q[lane]);
        if (w->cons[i].rk)
            rd_kafka_destroy(w->cons[i].rk);
        for (int k = 0; k < w->cons[i].nparts; k++)
            ifq_offsets_destroy(w->cons[i].parts[k].offs);
        easy_pool_free(&w->cons[i]);
    }
    ifq_curl_loop_free(w->loop);
    for (int k = 0; w->multis && k < w->nmultis; k++)
        if (w->multis[k])
            curl_multi_cleanup(w->multis[k]);
    free(w->multis);
    free(w->multi_load);
    ifq_timers_free(&w->timers);
    free(w->health.deps);
    if (w->producer)
        rd_kafka_destroy(w->producer);
    ifq_state_destroy(w->state);
    free(w->cons);
    for (int k = 0; k < 2; k++)
        if (w->wake[k] >= 0)
            close(w->wake[k]);
}

static void *loop_thread(void *arg)
{
    worker_t *w = arg;
    w->rc = loop_run(w);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *config_path = getenv("INFERQ_CONFIG");
    const char *level = NULL;
    const char *only[64];
    int nonly = 0;
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"deployment", required_argument, NULL, 'd'},
                                         {"log-level", required_argument, NULL, 'l'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "c:d:l:h", opts, NULL)) != -1) {
        if (opt == 'c')
            config_path = optarg;
        else if (opt == 'd' && nonly < 64)
            only[nonly++] = optarg;
        else if (opt == 'l')
            level = optarg;
        else {
            usage();
            return opt == 'h' ? 0 : 2;
        }
    }
    if (!config_path) {
        usage();
        return 2;
    }
    char errstr[512];
    proc_t p = {0};
    p.cfg = ifq_config_load(config_path, errstr, sizeof(errstr));
    if (!p.cfg) {
        fprintf(stderr, "inferq-worker: %s\n", errstr);
        return 2;
    }
    int lv = ifq_log_level_parse(level ? level : p.cfg->log_level);
    ifq_log_init("inferq-worker", lv < 0 ? IFQ_LOG_INFO : (ifq_log_level_t)lv);
    ifq_deployment_t **served = calloc(p.cfg->n_deployments + 1, sizeof(*served));
    int nserved = served ? select_deployments(p.cfg, only, nonly, served) : -1;
    if (nserved < 0) {
        free(served);
        ifq_config_destroy(p.cfg);
        return 2;
    }
    char host[100] = "host";
    gethostname(host, sizeof(host) - 1);
    snprintf(p.instance, sizeof(p.instance), "%s-%d", host, (int)getpid());
    p.obs = ifq_wobs_new(p.cfg, p.instance);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_mutex_init(&p.circ_mu, NULL);

    int rc = 1, started = 0;
    ifq_admin_t *admin = NULL;
    p.nloops = p.cfg->worker_threads;
    p.loops = calloc((size_t)p.nloops, sizeof(*p.loops));
    p.circuits = calloc(p.cfg->n_deployments + 1, sizeof(*p.circuits));
    p.dep_inflight = calloc(p.cfg->n_deployments + 1, sizeof(*p.dep_inflight));
    if (!p.loops || !p.circuits || !p.dep_inflight) {
        ifq_error("startup_failed", "out of memory");
        goto out;
    }
    p.guard = ifq_guard_from_config(p.cfg, errstr, sizeof(errstr));
    if (!p.guard) {
        ifq_error("startup_failed", "%s", errstr);
        goto out;
    }
    for (int k = 0; k < p.nloops; k++) {
        p.loops[k].index = k;
        started = k + 1;
        if (loop_init(&p, &p.loops[k], served, nserved) < 0)
            goto out;
    }

    ifq_admin_handlers_t ah = {.ready = worker_ready, .metrics = worker_metrics, .opaque = &p};
    admin = ifq_admin_start(p.cfg->worker_admin_port, &ah, errstr, sizeof(errstr));
    if (!admin && p.cfg->worker_admin_port > 0) {
        ifq_error("startup_failed", "%s", errstr);
        goto out;
    }
    ifq_info("started", "serving %d deployment(s), max_inflight %d, %d event loop(s)", nserved,
             p.cfg->worker_max_inflight, p.nloops);

    /* Loop 0 runs on this thread, the others on their own. */
    pthread_t *th = calloc((size_t)p.nloops, sizeof(*th));
    int nth = 1; /* loops [1, nth) run on threads */
    for (int k = 1; th && k < p.nloops; k++) {
        if (pthread_create(&th[k], NULL, loop_thread, &p.loops[k]) != 0) {
            ifq_error("startup_failed", "thread: %s", strerror(errno));
            atomic_store(&p.fatal, 1);
            break;
        }
        nth = k + 1;
    }
    if (!th)
        atomic_store(&p.fatal, 1);
    rc = loop_run(&p.loops[0]);
    for (int k = 1; k < nth; k++) {
        pthread_join(th[k], NULL);
        if (p.loops[k].rc != 0)
            rc = 1;
    }
    free(th);
    if (atomic_load(&p.fatal))
        rc = 1;
out:
    ifq_admin_stop(admin);
    for (int k = 0; k < started; k++)
        loop_free(&p.loops[k]);
    free(p.loops);
    free(p.circuits);
    free((void *)p.dep_inflight);
    free(served);
    pthread_mutex_destroy(&p.circ_mu);
    ifq_guard_destroy(p.guard);
    ifq_wobs_destroy(p.obs);
    ifq_config_destroy(p.cfg);
    curl_global_cleanup();
    ifq_info("stopped", "exit %d", rc);
    return rc;
}
