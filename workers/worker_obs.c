/*
 * worker_obs.c - metrics, spans and request logging of inferq-worker (see
 * worker_obs.h and docs/observability.md). Provider-call spans follow the
 * OpenTelemetry GenAI semantic conventions.
 */
#include "worker_obs.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "trace.h"

char ifq_wobs_tag;

struct ifq_wobs {
    const ifq_config_t *cfg;
    char instance[160];
    ifq_metrics_t *reg;
    struct {
        ifq_metric_t *requests, *attempts, *retries, *failovers, *circuit, *circuit_opened,
            *inflight, *queue_wait, *model_latency, *duration, *overhead, *tokens, *cost, *findings,
            *lag, *duplicates, *spans, *logs, *backlogged, *backlog_pauses;
    } m;
    /* The span exporter: a thread that encodes the hops' span batches and
     * hands them to their loop's producer, off the event loops (OTLP/JSON
     * encoding was a few percent of a loop's CPU). */
    struct {
        pthread_mutex_t mu;
        pthread_cond_t work, idle;
        ifq_wreq_t *head, *tail;
        size_t n;
        int stop;
        int started;
        pthread_t th;
    } ex;
};

/* Span batches waiting for the exporter beyond this are encoded by the loop
 * itself: the queue stays bounded when the exporter falls behind. */
#define EXPORT_QUEUE_MAX 8192

/* A request's spans are recorded from the end of its first provider call
 * on (ensure_spans): while it waits for the model, which is most of its
 * life in the worker, it holds only the few figures below instead of a
 * span batch (about 1 KB per request in flight). */
struct ifq_wreq {
    ifq_wobs_t *o;
    const ifq_deployment_t *dep;     /* of the current attempt */
    const ifq_deployment_t *hop_dep; /* the deployment this hop was routed to */
    ifq_spans_t *sp;                 /* NULL: not sampled, or not recorded yet */
    ifq_span_t *req;
    ifq_tracectx_t ctx;
    int traced; /* sampled, spans not recorded yet */
    int64_t enq_ns, picked_ns;
    json_int_t hop;
    const ifq_wreq_info_t *info; /* the job's */
    /* the routed body's max_tokens (or max_completion_tokens) and
     * temperature, for the attempt spans; has_*: present */
    int64_t max_tokens;
    double temperature;
    unsigned char has_max_tokens, has_temperature;
    /* the attempt under way, recorded as a span when it ends */
    int64_t att_start_ns;
    ifq_url_kind_t att_kind;
    int att_no;
    /* queued for the exporter (ifq_wreq_send) */
    ifq_wreq_t *next;
    rd_kafka_t *rk;
    int *pending;
};

static void produce_spans(ifq_wreq_t *r, rd_kafka_t *rk);

static void *exporter_main(void *arg)
{
    ifq_wobs_t *o = arg;
    pthread_mutex_lock(&o->ex.mu);
    for (;;) {
        while (!o->ex.head && !o->ex.stop)
            pthread_cond_wait(&o->ex.work, &o->ex.mu);
        ifq_wreq_t *batch = o->ex.head;
        if (!batch)
            break; /* stopping, nothing left */
        o->ex.head = o->ex.tail = NULL;
        o->ex.n = 0;
        pthread_mutex_unlock(&o->ex.mu);
        for (ifq_wreq_t *r = batch, *next; r; r = next) {
            next = r->next;
            int *pending = r->pending;
            produce_spans(r, r->rk);
            ifq_wreq_destroy(r);
            pthread_mutex_lock(&o->ex.mu);
            (*pending)--;
            pthread_cond_broadcast(&o->ex.idle);
            pthread_mutex_unlock(&o->ex.mu);
        }
        pthread_mutex_lock(&o->ex.mu);
    }
    pthread_mutex_unlock(&o->ex.mu);
    return NULL;
}

ifq_wobs_t *ifq_wobs_new(const ifq_config_t *cfg, const char *instance)
{
    ifq_wobs_t *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->cfg = cfg;
    snprintf(o->instance, sizeof(o->instance), "%s", instance ? instance : "");
    o->reg = ifq_metrics_new();
    if (!o->reg) {
        free(o);
        return NULL;
    }
    pthread_mutex_init(&o->ex.mu, NULL);
    pthread_cond_init(&o->ex.work, NULL);
    pthread_cond_init(&o->ex.idle, NULL);
    ifq_metrics_t *r = o->reg;
    const double *lb = ifq_metrics_latency_buckets;
    size_t nb = ifq_metrics_latency_nbuckets;
    o->m.requests = ifq_metrics_counter(
        r, "inferq_requests_total",
        "Results written by the worker, by status (succeeded, failed, expired), error code, team, "
        "alias (model requested) and the deployment that answered last.",
        "status,code,team,alias,deployment");
    o->m.attempts = ifq_metrics_counter(
        r, "inferq_attempts_total",
        "Provider calls by deployment and outcome (ok, or the error type).", "deployment,outcome");
    o->m.retries = ifq_metrics_counter(r, "inferq_retries_total",
                                       "Provider calls that were retries of an earlier attempt.",
                                       "deployment");
    o->m.failovers =
        ifq_metrics_counter(r, "inferq_failovers_total",
                            "Requests handed to the next deployment of their chain.", "from,to");
    o->m.circuit = ifq_metrics_gauge(
        r, "inferq_circuit_state", "Circuit breaker per deployment: 0 closed, 1 open, 2 half-open.",
        "deployment");
    o->m.circuit_opened = ifq_metrics_counter(r, "inferq_circuit_opened_total",
                                              "Times a deployment's circuit opened.", "deployment");
    o->m.inflight =
        ifq_metrics_gauge(r, "inferq_inflight_requests",
                          "Requests in flight per deployment on this worker.", "deployment");
    o->m.queue_wait = ifq_metrics_histogram(
        r, "inferq_queue_wait_seconds",
        "Time on the per-model topic: routed message timestamp to worker receipt.", "deployment",
        lb, nb);
    o->m.model_latency =
        ifq_metrics_histogram(r, "inferq_model_latency_seconds", "Duration of each provider call.",
                              "deployment,outcome", lb, nb);
    o->m.duration =
        ifq_metrics_histogram(r, "inferq_request_duration_seconds",
                              "End to end: the request's arrival at the broker to its result.",
                              "deployment,status", lb, nb);
    o->m.overhead = ifq_metrics_histogram(
        r, "inferq_gateway_overhead_seconds",
        "End-to-end time not spent in provider calls (queues, retries' waits, gateway work).",
        "deployment", lb, nb);
    o->m.tokens = ifq_metrics_counter(r, "inferq_tokens_total",
                                      "Tokens used, by team, deployment and direction.",
                                      "team,deployment,direction");
    o->m.cost = ifq_metrics_counter(r, "inferq_cost_usd_total",
                                    "Cost in USD from the catalog's prices.", "team,deployment");
    o->m.findings = ifq_metrics_counter(
        r, "inferq_guardrail_findings_total",
        "Guardrail findings by stage (output here), detector and action.", "stage,detector,action");
    o->m.lag = ifq_metrics_gauge(
        r, "inferq_consumer_lag",
        "Messages not yet consumed per partition (high watermark minus position).",
        "group,topic,partition");
    o->m.duplicates = ifq_metrics_counter(
        r, "inferq_duplicates_skipped_by_deployment_total",
        "Redelivered requests already answered (not sent to the model again).", "deployment");
    o->m.backlogged =
        ifq_metrics_gauge(r, "inferq_worker_backlogged_loops",
                          "Event loops taking no new request because Kafka has not acknowledged "
                          "worker.max_undelivered of their messages.",
                          NULL);
    o->m.backlog_pauses = ifq_metrics_counter(
        r, "inferq_worker_backlog_pauses_total",
        "Times an event loop stopped taking requests because Kafka was behind.", NULL);
    o->m.spans = ifq_metrics_counter(r, "inferq_trace_messages_total",
                                     "OTLP span messages by result (produced, dropped).", "result");
    o->m.logs = ifq_metrics_counter(r, "inferq_request_logs_total",
                                    "Request log records by result (produced, dropped).", "result");
    /* Without the thread (it could not start) loops encode their spans. */
    if (cfg->trace_enabled)
        o->ex.started = pthread_create(&o->ex.th, NULL, exporter_main, o) == 0;
    return o;
}

void ifq_wobs_destroy(ifq_wobs_t *o)
{
    if (!o)
        return;
    if (o->ex.started) {
        pthread_mutex_lock(&o->ex.mu);
        o->ex.stop = 1;
        pthread_cond_signal(&o->ex.work);
        pthread_mutex_unlock(&o->ex.mu);
        pthread_join(o->ex.th, NULL);
    }
    pthread_mutex_destroy(&o->ex.mu);
    pthread_cond_destroy(&o->ex.work);
    pthread_cond_destroy(&o->ex.idle);
    ifq_metrics_destroy(o->reg);
    free(o);
}

void ifq_wobs_drain(ifq_wobs_t *o, int *pending)
{
    if (!o || !o->ex.started)
        return;
    pthread_mutex_lock(&o->ex.mu);
    while (*pending > 0)
        pthread_cond_wait(&o->ex.idle, &o->ex.mu);
    pthread_mutex_unlock(&o->ex.mu);
}

size_t ifq_wobs_render(ifq_wobs_t *o, char *buf, size_t size)
{
    return o ? ifq_metrics_render(o->reg, buf, size) : 0;
}

void ifq_wobs_deployment(ifq_wobs_t *o, const char *deployment, int inflight, int circuit)
{
    if (!o)
        return;
    ifq_gauge_set(o->m.inflight, (const char *[]){deployment}, inflight);
    ifq_gauge_set(o->m.circuit, (const char *[]){deployment}, circuit);
}

void ifq_wobs_backlog(ifq_wobs_t *o, int paused)
{
    if (!o)
        return;
    ifq_gauge_add(o->m.backlogged, NULL, paused ? 1 : -1);
    if (paused)
        ifq_counter_add(o->m.backlog_pauses, NULL, 1);
}

void ifq_wobs_circuit(ifq_wobs_t *o, const char *deployment, int state, int opened)
{
    if (!o)
        return;
    ifq_gauge_set(o->m.circuit, (const char *[]){deployment}, state);
    if (opened)
        ifq_counter_add(o->m.circuit_opened, (const char *[]){deployment}, 1);
}

void ifq_wobs_lag(ifq_wobs_t *o, rd_kafka_t *consumer, const char *group, int reset)
{
    if (!o)
        return;
    if (reset)
        ifq_metric_reset(o->m.lag);
    ifq_metrics_kafka_lag(o->m.lag, consumer, group);
}

void ifq_wobs_duplicate(ifq_wobs_t *o, const char *deployment)
{
    if (o)
        ifq_counter_add(o->m.duplicates, (const char *[]){deployment}, 1);
}

ifq_wreq_t *ifq_wreq_begin(ifq_wobs_t *o, const json_t *routed, const ifq_wreq_info_t *info,
                           const char *traceparent, const ifq_deployment_t *dep,
                           int64_t enqueued_ms)
{
    if (!o)
        return NULL;
    ifq_wreq_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->o = o;
    r->dep = dep;
    r->info = info;
    r->picked_ns = ifq_now_ns();
    int64_t enq_ns = enqueued_ms > 0 ? enqueued_ms * 1000000 : r->picked_ns;
    if (enq_ns > r->picked_ns)
        enq_ns = r->picked_ns;
    ifq_histogram_observe(o->m.queue_wait, (const char *[]){dep->name},
                          (double)(r->picked_ns - enq_ns) / 1e9);
    /* The trace id is wanted in request logs even when no spans are kept. */
    if (ifq_tracectx_parse(traceparent, &r->ctx) < 0 || !o->cfg->trace_enabled || !r->ctx.sampled)
        return r;
    r->traced = 1;
    r->enq_ns = enq_ns;
    r->hop_dep = dep;
    r->hop = json_integer_value(json_object_get(json_object_get(routed, "inferq"), "hop"));
    const json_t *body = json_object_get(routed, "body");
    json_t *mt = json_object_get(body, "max_tokens");
    if (!json_is_integer(mt))
        mt = json_object_get(body, "max_completion_tokens");
    if (json_is_integer(mt)) {
        r->has_max_tokens = 1;
        r->max_tokens = json_integer_value(mt);
    }
    json_t *temp = json_object_get(body, "temperature");
    if (json_is_number(temp)) {
        r->has_temperature = 1;
        r->temperature = json_number_value(temp);
    }
    return r;
}

/* Records the hop's queue wait and its worker.request span (still open)
 * the first time it is needed. */
static void ensure_spans(ifq_wreq_t *r)
{
    if (!r->traced)
        return;
    r->traced = 0;
    const ifq_deployment_t *dep = r->hop_dep;
    r->sp = ifq_spans_new(r->ctx.trace_id, r->info->custom_id, r->info->id);
    ifq_span_t *q =
        ifq_span_start(r->sp, "queue.wait", IFQ_SPAN_INTERNAL, r->ctx.span_id, NULL, r->enq_ns);
    ifq_span_str(q, "inferq.deployment", dep->name);
    ifq_span_int(q, "inferq.hop", r->hop);
    ifq_span_end(q, r->picked_ns);
    r->req = ifq_span_start(r->sp, "worker.request", IFQ_SPAN_CONSUMER, r->ctx.span_id, NULL,
                            r->picked_ns);
    ifq_span_str(r->req, "messaging.system", "kafka");
    ifq_span_str(r->req, "messaging.operation.type", "process");
    ifq_span_str(r->req, "messaging.destination.name", dep->topic);
    ifq_span_str(r->req, "inferq.deployment", dep->name);
    ifq_span_int(r->req, "inferq.hop", r->hop);
    if (*r->info->team)
        ifq_span_str(r->req, "inferq.team", r->info->team);
    ifq_span_str(r->req, "inferq.alias", r->info->alias);
    ifq_span_int(r->req, "inferq.queue_wait_ms", (r->picked_ns - r->enq_ns) / 1000000);
}

void ifq_wreq_destroy(ifq_wreq_t *r)
{
    if (!r)
        return;
    ifq_spans_destroy(r->sp);
    free(r);
}

static const char *operation_name(ifq_url_kind_t kind)
{
    return kind == IFQ_URL_EMBEDDINGS    ? "embeddings"
           : kind == IFQ_URL_COMPLETIONS ? "text_completion"
                                         : "chat";
}

/* gen_ai.provider.name of the semantic conventions. */
static const char *provider_name(const char *p)
{
    static const char *const map[][2] = {{"openai", "openai"},
                                         {"azure", "azure.ai.openai"},
                                         {"anthropic", "anthropic"},
                                         {"bedrock", "aws.bedrock"},
                                         {"gemini", "gcp.gemini"}};
    for (size_t i = 0; p && i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(p, map[i][0]) == 0)
            return map[i][1];
    return p ? p : "unknown";
}

/* server.address and server.port from the deployment's base URL. */
static void server_attrs(ifq_span_t *s, const char *url)
{
    if (!url)
        return;
    const char *h = strstr(url, "://");
    h = h ? h + 3 : url;
    size_t n = strcspn(h, ":/?");
    char host[256];
    snprintf(host, sizeof(host), "%.*s", (int)(n < sizeof(host) ? n : sizeof(host) - 1), h);
    ifq_span_str(s, "server.address", host);
    long port = h[n] == ':'                     ? strtol(h + n + 1, NULL, 10)
                : strncmp(url, "https", 5) == 0 ? 443
                                                : 80;
    if (port > 0)
        ifq_span_int(s, "server.port", port);
}

void ifq_wreq_attempt_start(ifq_wreq_t *r, const ifq_deployment_t *dep, ifq_url_kind_t kind,
                            int attempt)
{
    if (!r)
        return;
    r->att_start_ns = ifq_now_ns();
    r->dep = dep;
    r->att_kind = kind;
    r->att_no = attempt;
    if (attempt > 1)
        ifq_counter_add(r->o->m.retries, (const char *[]){dep->name}, 1);
}

/* The attempt's span, from what its start recorded. */
static ifq_span_t *attempt_span(ifq_wreq_t *r, int64_t start_ns)
{
    const ifq_deployment_t *dep = r->dep;
    char name[160];
    const char *op = operation_name(r->att_kind);
    snprintf(name, sizeof(name), "%s %s", op, dep->model ? dep->model : dep->name);
    ifq_span_t *s = ifq_span_start(r->sp, name, IFQ_SPAN_CLIENT, ifq_span_id(r->req), NULL,
                                   start_ns ? start_ns : ifq_now_ns());
    ifq_span_str(s, "gen_ai.operation.name", op);
    ifq_span_str(s, "gen_ai.provider.name", provider_name(dep->provider));
    ifq_span_str(s, "gen_ai.request.model", dep->model ? dep->model : dep->name);
    if (r->has_max_tokens)
        ifq_span_int(s, "gen_ai.request.max_tokens", r->max_tokens);
    if (r->has_temperature)
        ifq_span_double(s, "gen_ai.request.temperature", r->temperature);
    server_attrs(s, dep->base_url);
    ifq_span_str(s, "inferq.deployment", dep->name);
    ifq_span_int(s, "inferq.attempt", r->att_no);
    if (*r->info->team)
        ifq_span_str(s, "inferq.team", r->info->team);
    ifq_span_str(s, "inferq.alias", r->info->alias);
    return s;
}

void ifq_wreq_attempt_end(ifq_wreq_t *r, long status, const json_t *resp, const char *err_type,
                          const char *err_msg)
{
    if (!r || !r->dep)
        return;
    int64_t now = ifq_now_ns();
    int64_t start = r->att_start_ns;
    const char *outcome = err_type ? err_type : "ok";
    ifq_counter_add(r->o->m.attempts, (const char *[]){r->dep->name, outcome}, 1);
    if (start)
        ifq_histogram_observe(r->o->m.model_latency, (const char *[]){r->dep->name, outcome},
                              (double)(now - start) / 1e9);
    r->att_start_ns = 0;
    ensure_spans(r);
    if (!r->sp)
        return;
    ifq_span_t *s = attempt_span(r, start);
    if (status)
        ifq_span_int(s, "http.response.status_code", status);
    const char *rm = json_string_value(json_object_get(resp, "model"));
    if (rm)
        ifq_span_str(s, "gen_ai.response.model", rm);
    const char *rid = json_string_value(json_object_get(resp, "id"));
    if (rid)
        ifq_span_str(s, "gen_ai.response.id", rid);
    json_t *usage = json_object_get(resp, "usage");
    if (json_is_object(usage)) {
        json_t *in = json_object_get(usage, "prompt_tokens");
        json_t *out = json_object_get(usage, "completion_tokens");
        if (json_is_integer(in))
            ifq_span_int(s, "gen_ai.usage.input_tokens", json_integer_value(in));
        if (json_is_integer(out))
            ifq_span_int(s, "gen_ai.usage.output_tokens", json_integer_value(out));
    }
    json_t *choices = json_object_get(resp, "choices");
    if (json_is_array(choices) && json_array_size(choices)) {
        const char *reasons[16];
        size_t n = 0, i;
        json_t *c;
        json_array_foreach(choices, i, c)
        {
            const char *fr = json_string_value(json_object_get(c, "finish_reason"));
            if (fr && n < 16)
                reasons[n++] = fr;
        }
        if (n)
            ifq_span_strs(s, "gen_ai.response.finish_reasons", reasons, n);
    }
    if (err_type) {
        ifq_span_str(s, "error.type", err_type);
        ifq_span_status(s, IFQ_STATUS_ERROR, err_msg);
    }
    ifq_span_end(s, now);
}

void ifq_wreq_guard(ifq_wreq_t *r, int64_t start_ns, const json_t *findings, int blocked,
                    const char *blocked_by)
{
    if (!r)
        return;
    const char *dets[16], *acts[16];
    size_t n = 0, i;
    json_t *f;
    json_array_foreach(findings, i, f)
    {
        const char *d = json_string_value(json_object_get(f, "detector"));
        const char *a = json_string_value(json_object_get(f, "action"));
        d = d ? d : "unknown";
        a = a ? a : "unknown";
        ifq_counter_add(r->o->m.findings, (const char *[]){"output", d, a}, 1);
        if (n < 16) {
            dets[n] = d;
            acts[n++] = a;
        }
    }
    if (!r->sp)
        return;
    ifq_span_t *s = ifq_span_start(r->sp, "worker.guardrails", IFQ_SPAN_INTERNAL,
                                   ifq_span_id(r->req), NULL, start_ns);
    ifq_span_str(s, "inferq.guardrail.stage", "output");
    ifq_span_int(s, "inferq.guardrail.findings", (int64_t)json_array_size(findings));
    if (n) {
        ifq_span_strs(s, "inferq.guardrail.detectors", dets, n);
        ifq_span_strs(s, "inferq.guardrail.actions", acts, n);
    }
    ifq_span_bool(s, "inferq.guardrail.blocked", blocked);
    if (blocked) {
        char msg[300];
        snprintf(msg, sizeof(msg), "blocked by guardrails: %s", blocked_by ? blocked_by : "");
        ifq_span_status(s, IFQ_STATUS_ERROR, msg);
    }
    ifq_span_end(s, 0);
}

static void produce_spans(ifq_wreq_t *r, rd_kafka_t *rk)
{
    if (!r->sp)
        return;
    int ok = ifq_spans_produce(r->sp, rk, r->o->cfg->topic_traces, "inferq-worker", r->o->instance,
                               &ifq_wobs_tag) == 0;
    ifq_counter_add(r->o->m.spans, (const char *[]){ok ? "produced" : "dropped"}, 1);
}

int ifq_wobs_logs_team(const ifq_wobs_t *o, const char *team)
{
    const ifq_team_t *t = o && team && *team ? ifq_config_team(o->cfg, team) : NULL;
    return t && t->log_requests;
}

/* The opt-in request log: the request as routed (the broker's input
 * guardrails already redacted it) and the result (after the output
 * guardrails). Provider keys never reach either. */
static void log_request(ifq_wreq_t *r, rd_kafka_t *rk, const json_t *routed, const json_t *res,
                        const char *state)
{
    const ifq_wreq_info_t *in = r->info;
    if (!routed || !res || !ifq_wobs_logs_team(r->o, in->team))
        return;
    json_t *rec = json_pack(
        "{sI ss ss ss ss ss ss s{sO* sO*} sO}", "time_ms", (json_int_t)(ifq_now_ns() / 1000000),
        "id", in->id, "custom_id", in->custom_id, "trace_id", r->ctx.trace_id, "team", in->team,
        "status", state, "model_requested", in->alias, "request", "url",
        json_object_get(routed, "url"), "body", json_object_get(routed, "body"), "result", res);
    size_t len = 0;
    char *text = rec ? ifq_json_dump(rec, &len) : NULL;
    json_decref(rec);
    const char *key = in->custom_id;
    int ok = text && rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(r->o->cfg->topic_logs),
                                       RD_KAFKA_V_VALUE(text, len),
                                       RD_KAFKA_V_KEY((void *)key, strlen(key)),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                                       RD_KAFKA_V_OPAQUE(&ifq_wobs_tag), RD_KAFKA_V_END) == 0;
    if (!ok)
        free(text);
    ifq_counter_add(r->o->m.logs, (const char *[]){ok ? "produced" : "dropped"}, 1);
}

void ifq_wreq_finish(ifq_wreq_t *r, rd_kafka_t *rk, const json_t *routed, const json_t *res,
                     const ifq_wreq_outcome_t *oc)
{
    if (!r)
        return;
    const char *team = r->info->team;
    const char *alias = r->info->alias;
    const char *dep = r->dep ? r->dep->name : "";
    const char *code = oc->err_code;
    ifq_counter_add(r->o->m.requests,
                    (const char *[]){oc->state, code ? code : "", team, alias, dep}, 1);
    int64_t now = ifq_now_ns();
    int64_t received = r->info->received_ms;
    if (received > 0) {
        double total = (double)(now / 1000000 - received) / 1e3;
        if (total < 0)
            total = 0;
        double overhead = total - (double)oc->model_ms / 1e3;
        ifq_histogram_observe(r->o->m.duration, (const char *[]){dep, oc->state}, total);
        ifq_histogram_observe(r->o->m.overhead, (const char *[]){dep}, overhead > 0 ? overhead : 0);
    }
    int64_t in = oc->in_tok, out = oc->out_tok;
    if (in > 0)
        ifq_counter_add(r->o->m.tokens, (const char *[]){team, dep, "input"}, (double)in);
    if (out > 0)
        ifq_counter_add(r->o->m.tokens, (const char *[]){team, dep, "output"}, (double)out);
    if (oc->cost > 0)
        ifq_counter_add(r->o->m.cost, (const char *[]){team, dep}, oc->cost);
    log_request(r, rk, routed, res, oc->state);
    ensure_spans(r);
    if (r->sp) {
        ifq_span_t *s = ifq_span_start(r->sp, "worker.reply", IFQ_SPAN_PRODUCER,
                                       ifq_span_id(r->req), NULL, now);
        ifq_span_str(s, "messaging.system", "kafka");
        ifq_span_str(s, "messaging.operation.type", "send");
        ifq_span_str(s, "messaging.destination.name", oc->reply_topic);
        ifq_span_end(s, now);
        ifq_span_str(r->req, "inferq.status", oc->state);
        ifq_span_int(r->req, "inferq.attempts", oc->attempts);
        ifq_span_int(r->req, "inferq.model_ms", oc->model_ms);
        if (in > 0 || out > 0) {
            ifq_span_int(r->req, "gen_ai.usage.input_tokens", in);
            ifq_span_int(r->req, "gen_ai.usage.output_tokens", out);
        }
        ifq_span_double(r->req, "inferq.cost_usd", oc->cost);
        if (code) {
            char msg[600];
            snprintf(msg, sizeof(msg), "%s: %s", code, oc->err_msg ? oc->err_msg : "");
            ifq_span_str(r->req, "error.type", code);
            ifq_span_status(r->req, IFQ_STATUS_ERROR, msg);
        } else {
            ifq_span_status(r->req, IFQ_STATUS_OK, NULL);
        }
        ifq_span_end(r->req, now);
    }
}

void ifq_wreq_failover(ifq_wreq_t *r, rd_kafka_t *rk, json_t *routed, const char *next_deployment,
                       const char *next_topic, char *traceparent, size_t size)
{
    if (!r)
        return;
    const char *from = r->dep ? r->dep->name : "";
    ifq_counter_add(r->o->m.failovers, (const char *[]){from, next_deployment}, 1);
    ensure_spans(r);
    if (r->sp) {
        int64_t now = ifq_now_ns();
        ifq_span_t *s = ifq_span_start(r->sp, "worker.failover", IFQ_SPAN_PRODUCER,
                                       ifq_span_id(r->req), NULL, now);
        ifq_span_str(s, "messaging.system", "kafka");
        ifq_span_str(s, "messaging.operation.type", "send");
        ifq_span_str(s, "messaging.destination.name", next_topic);
        ifq_span_str(s, "inferq.failover.to", next_deployment);
        ifq_span_end(s, now);
        ifq_span_str(r->req, "inferq.status", "failover");
        ifq_span_str(r->req, "inferq.failover.to", next_deployment);
        ifq_span_status(r->req, IFQ_STATUS_ERROR, "failed over to the next deployment");
        ifq_span_end(r->req, now);
        /* The next hop's spans hang under this hand-off. */
        ifq_tracectx_t next = r->ctx;
        memcpy(next.span_id, ifq_span_id(s), 17);
        char tp[56];
        ifq_tracectx_format(&next, tp);
        snprintf(traceparent, size, "%s", tp);
        json_object_set_new(json_object_get(routed, "inferq"), "traceparent", json_string(tp));
    }
}

void ifq_wreq_send(ifq_wreq_t *r, rd_kafka_t *rk, ifq_wbatch_t *b)
{
    if (!r)
        return;
    if (r->sp && r->o->ex.started) {
        r->rk = rk;
        r->next = NULL;
        if (b->tail)
            b->tail->next = r;
        else
            b->head = r;
        b->tail = r;
        b->n++;
        return;
    }
    produce_spans(r, rk);
    ifq_wreq_destroy(r);
}

void ifq_wobs_submit(ifq_wobs_t *o, ifq_wbatch_t *b, int *pending)
{
    if (!o || !b->head)
        return;
    for (ifq_wreq_t *r = b->head; r; r = r->next)
        r->pending = pending;
    pthread_mutex_lock(&o->ex.mu);
    int full = o->ex.n >= EXPORT_QUEUE_MAX;
    if (!full) {
        if (o->ex.tail)
            o->ex.tail->next = b->head;
        else
            o->ex.head = b->head;
        o->ex.tail = b->tail;
        o->ex.n += b->n;
        *pending += (int)b->n;
        pthread_cond_signal(&o->ex.work);
    }
    pthread_mutex_unlock(&o->ex.mu);
    if (full) {
        for (ifq_wreq_t *r = b->head, *next; r; r = next) {
            next = r->next;
            produce_spans(r, r->rk);
            ifq_wreq_destroy(r);
        }
    }
    b->head = b->tail = NULL;
    b->n = 0;
}
