/*
 * dashboard.c - the dashboard's page and JSON API (see dashboard.h).
 *
 *   GET /, /dashboard          the page (broker/dashboard/dashboard.html)
 *   GET /api/overview          everything below in one object
 *   GET /api/throughput        per-second stats buckets from Redis, summed
 *                              into steps: counts per final state, latency
 *   GET /api/backlog           worker-group lag per deployment (Kafka)
 *   GET /api/health            circuit state and in-flight per deployment
 *   GET /api/guardrails        inferq_guardrail_findings_total from /metrics
 *   GET /api/spend             today's usage per team and per deployment
 *   GET /api/request?custom_id=ID   the request's state and its spans
 *
 * Every read is bounded: Redis commands have a 2 s timeout (and a failed
 * connection is retried at most every 2 s), the backlog is cached for 2 s,
 * a trace read stops after 4 s.
 */
#include "dashboard.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backlog.h"
#include "limits.h"
#include "route.h"
#include "state.h"
#include "trace_read.h"

/* broker/dashboard/dashboard.html, embedded at build time. */
extern const unsigned char ifq_dashboard_html[];
extern const size_t ifq_dashboard_html_len;

#define DASH_RETRY_MS 2000
#define DASH_BACKLOG_CACHE_MS 2000
#define DASH_KAFKA_TIMEOUT_MS 1500
#define DASH_TRACE_TIMEOUT_MS 4000
#define DASH_MAX_WINDOW_S 900
#define DASH_METRICS_MAX (256 * 1024)

typedef struct {
    const ifq_config_t *cfg;
    size_t (*metrics)(void *opaque, char *buf, size_t size);
    void *metrics_opaque;
    pthread_mutex_t mu; /* guards everything below */
    ifq_state_t *st;    /* own Redis connection, opened on first use */
    int64_t st_retry_at;
    ifq_backlog_t *backlog;
    int64_t backlog_retry_at;
    ifq_health_t health;
} dash_t;

/* ---- helpers -------------------------------------------------------------- */

static int json_resp(ifq_admin_resp_t *resp, int status, json_t *body)
{
    resp->status = status;
    resp->content_type = "application/json";
    resp->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    resp->len = resp->body ? strlen(resp->body) : 0;
    json_decref(body);
    return 1;
}

static json_t *error_obj(const char *msg)
{
    return json_pack("{ss}", "error", msg);
}

/* The Redis connection, (re)opened at most every DASH_RETRY_MS. Called with
 * mu held. */
static ifq_state_t *dash_state(dash_t *d)
{
    if (d->st)
        return d->st;
    int64_t now = ifq_mono_ms();
    if (now < d->st_retry_at)
        return NULL;
    char errstr[256];
    d->st = ifq_state_connect(d->cfg->redis_url, d->cfg->prefix, d->cfg->state_ttl_s, errstr,
                              sizeof(errstr));
    if (!d->st)
        d->st_retry_at = now + DASH_RETRY_MS;
    return d->st;
}

/* Drops the Redis connection after a failure; the next use reconnects,
 * at most every DASH_RETRY_MS. Called with mu held. */
static void dash_drop(dash_t *d)
{
    ifq_state_destroy(d->st); /* tells queued callbacks "not sent" */
    d->st = NULL;
    d->st_retry_at = ifq_mono_ms() + DASH_RETRY_MS;
}

/* Sends what was queued on d->st. Called with mu held. */
static int dash_flush(dash_t *d)
{
    char errstr[256];
    if (ifq_state_flush(d->st, errstr, sizeof(errstr)) == IFQ_OK)
        return 0;
    dash_drop(d);
    return -1;
}

/* A reply callback that turns an HGETALL answer into {field: integer or
 * number or string}; the slot stays NULL for no reply. */
static void on_hash(void *opaque, const struct redisReply *r)
{
    json_t **slot = opaque;
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return;
    json_t *o = json_object();
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *k = r->element[i]->str, *v = r->element[i + 1]->str;
        if (!k || !v)
            continue;
        int64_t n;
        char *end;
        double x;
        if (ifq_parse_i64(v, &n) == IFQ_OK)
            json_object_set_new(o, k, json_integer(n));
        else if ((x = strtod(v, &end)), end != v && *end == '\0')
            json_object_set_new(o, k, json_real(x));
        else
            json_object_set_new(o, k, json_string(v));
    }
    *slot = o;
}

static json_int_t geti(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static double getnum(const json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

/* ---- throughput and latency ----------------------------------------------- */

#define DASH_MAX_BUCKETS 16

typedef struct {
    json_int_t n, by_state[4], lat_count, lat_sum;
    json_int_t le[DASH_MAX_BUCKETS]; /* cumulative, per bound in bounds[] */
} agg_t;

static const char *const finals[] = {"succeeded", "failed", "rejected", "expired"};

/* Adds one stats hash into a; bounds[] collects the bucket bounds seen. */
static void agg_add(agg_t *a, const json_t *h, long *bounds, int *nbounds)
{
    a->n += geti(h, "n");
    for (int i = 0; i < 4; i++)
        a->by_state[i] += geti(h, finals[i]);
    a->lat_count += geti(h, "lat_count");
    a->lat_sum += geti(h, "lat_sum_ms");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)h, k, v)
    {
        long b;
        char tail;
        if (sscanf(k, "lat_le_%ld%c", &b, &tail) != 1 || b <= 0)
            continue;
        int i = 0;
        while (i < *nbounds && bounds[i] != b)
            i++;
        if (i == *nbounds) {
            if (*nbounds == DASH_MAX_BUCKETS)
                continue;
            bounds[(*nbounds)++] = b;
        }
        a->le[i] += json_integer_value(v);
    }
}

/* The smallest bound whose cumulative count reaches q of the latencies;
 * null when there are none, the largest bound + when above every bound. */
static json_t *agg_quantile(const agg_t *a, const long *bounds, int nbounds, double q)
{
    if (a->lat_count <= 0)
        return json_null();
    long best = -1, top = 0;
    for (int i = 0; i < nbounds; i++) {
        if (bounds[i] > top)
            top = bounds[i];
        if ((double)a->le[i] >= q * (double)a->lat_count && (best < 0 || bounds[i] < best))
            best = bounds[i];
    }
    return json_integer(best > 0 ? best : top);
}

static json_t *agg_json(const agg_t *a, const long *bounds, int nbounds, int seconds)
{
    json_t *o = json_pack("{sI sf}", "n", (json_int_t)a->n, "rps",
                          seconds > 0 ? (double)a->n / seconds : 0.0);
    for (int i = 0; i < 4; i++)
        json_object_set_new(o, finals[i], json_integer(a->by_state[i]));
    json_object_set_new(o, "lat_count", json_integer(a->lat_count));
    json_object_set_new(o, "lat_avg_ms",
                        a->lat_count ? json_real((double)a->lat_sum / (double)a->lat_count)
                                     : json_null());
    json_object_set_new(o, "lat_p50_ms", agg_quantile(a, bounds, nbounds, 0.50));
    json_object_set_new(o, "lat_p95_ms", agg_quantile(a, bounds, nbounds, 0.95));
    return o;
}

/* Called with mu held. */
static json_t *api_throughput(dash_t *d, int window_s, int step_s)
{
    ifq_state_t *st = dash_state(d);
    if (!st)
        return error_obj("redis unreachable");
    int64_t now_s = ifq_now_ms() / 1000;
    int64_t first = now_s - window_s + 1;
    json_t **slots = calloc((size_t)window_s, sizeof(*slots));
    if (!slots)
        return error_obj("out of memory");
    for (int i = 0; i < window_s; i++) {
        char key[IFQ_MAX_TOPIC + 48];
        snprintf(key, sizeof(key), "%s:stats:%lld", d->cfg->prefix, (long long)(first + i));
        const char *argv[] = {"HGETALL", key};
        ifq_state_queue_cmd_cb(st, 2, argv, on_hash, &slots[i]);
    }
    json_t *out;
    if (dash_flush(d) < 0) {
        out = error_obj("redis unreachable");
    } else {
        long bounds[DASH_MAX_BUCKETS];
        int nbounds = 0;
        agg_t total = {0}, minute = {0};
        json_t *points = json_array();
        for (int p = 0; p < window_s; p += step_s) {
            agg_t a = {0};
            for (int i = p; i < p + step_s && i < window_s; i++)
                if (slots[i]) {
                    agg_add(&a, slots[i], bounds, &nbounds);
                    agg_add(&total, slots[i], bounds, &nbounds);
                    if (i >= window_s - 60)
                        agg_add(&minute, slots[i], bounds, &nbounds);
                }
            json_t *pt = agg_json(&a, bounds, nbounds, step_s);
            json_object_set_new(pt, "t", json_integer(first + p));
            json_array_append_new(points, pt);
        }
        out = json_pack("{sI si si so so so}", "now_s", (json_int_t)now_s, "window_s", window_s,
                        "step_s", step_s, "points", points, "total",
                        agg_json(&total, bounds, nbounds, window_s), "last_minute",
                        agg_json(&minute, bounds, nbounds, 60 < window_s ? 60 : window_s));
    }
    for (int i = 0; i < window_s; i++)
        json_decref(slots[i]);
    free(slots);
    return out;
}

/* ---- backlog, health, spend ------------------------------------------------- */

/* Called with mu held. */
static json_t *api_backlog(dash_t *d)
{
    if (!d->backlog && ifq_mono_ms() >= d->backlog_retry_at) {
        char errstr[256];
        d->backlog = ifq_backlog_new(d->cfg, errstr, sizeof(errstr));
        if (!d->backlog)
            d->backlog_retry_at = ifq_mono_ms() + DASH_RETRY_MS;
    }
    if (!d->backlog)
        return error_obj("kafka client unavailable");
    return ifq_backlog_get(d->backlog, DASH_BACKLOG_CACHE_MS, DASH_KAFKA_TIMEOUT_MS);
}

/* Called with mu held. */
static json_t *api_health(dash_t *d)
{
    ifq_state_t *st = dash_state(d);
    if (!st)
        return error_obj("redis unreachable");
    if (ifq_state_read_health(st, d->cfg, &d->health) != IFQ_OK) {
        dash_drop(d);
        return error_obj("redis unreachable");
    }
    static const char *const circuits[] = {"closed", "open", "half_open"};
    json_t *arr = json_array();
    for (size_t i = 0; i < d->cfg->n_deployments; i++) {
        const ifq_deployment_t *dep = &d->cfg->deployments[i];
        const ifq_dep_health_t *h = &d->health.deps[i];
        json_t *aliases = json_array();
        for (size_t a = 0; a < d->cfg->n_aliases; a++)
            for (size_t k = 0; k < d->cfg->aliases[a].n; k++)
                if (d->cfg->aliases[a].chain[k] == dep) {
                    json_array_append_new(aliases, json_string(d->cfg->aliases[a].name));
                    break;
                }
        int c = h->circuit_open >= 0 && h->circuit_open < 3 ? h->circuit_open : 0;
        json_array_append_new(
            arr, json_pack("{ss ss ss ss sI sI so}", "deployment", dep->name, "provider",
                           dep->provider, "model", dep->model, "circuit", circuits[c], "inflight",
                           (json_int_t)h->inflight, "changed_ms", (json_int_t)h->circuit_changed_ms,
                           "aliases", aliases));
    }
    return arr;
}

/* Called with mu held. */
static json_t *api_spend(dash_t *d)
{
    ifq_state_t *st = dash_state(d);
    if (!st)
        return error_obj("redis unreachable");
    char day[16];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(day, sizeof(day), "%Y-%m-%d", &tm);
    size_t nt = d->cfg->n_teams, nd = d->cfg->n_deployments;
    json_t **slots = calloc(nt + nd + 1, sizeof(*slots));
    if (!slots)
        return error_obj("out of memory");
    for (size_t i = 0; i < nt + nd; i++) {
        char key[IFQ_MAX_TOPIC + IFQ_MAX_NAME + 64];
        if (i < nt)
            ifq_usage_key(key, sizeof(key), d->cfg->prefix, day, "team", d->cfg->teams[i].name,
                          NULL);
        else
            ifq_usage_key(key, sizeof(key), d->cfg->prefix, day, "deployment",
                          d->cfg->deployments[i - nt].name, NULL);
        const char *argv[] = {"HGETALL", key};
        ifq_state_queue_cmd_cb(st, 2, argv, on_hash, &slots[i]);
    }
    json_t *out;
    if (dash_flush(d) < 0) {
        out = error_obj("redis unreachable");
    } else {
        json_t *teams = json_array(), *deps = json_array();
        for (size_t i = 0; i < nt + nd; i++) {
            const json_t *h = slots[i];
            json_t *row =
                json_pack("{sI sI sI sf}", "requests", (json_int_t)geti(h, "requests"),
                          "input_tokens", (json_int_t)geti(h, "input_tokens"), "output_tokens",
                          (json_int_t)geti(h, "output_tokens"), "cost_usd", getnum(h, "cost_usd"));
            if (i < nt) {
                json_object_set_new(row, "team", json_string(d->cfg->teams[i].name));
                if (d->cfg->teams[i].budget_daily_usd > 0)
                    json_object_set_new(row, "budget_daily_usd",
                                        json_real(d->cfg->teams[i].budget_daily_usd));
                json_array_append_new(teams, row);
            } else {
                json_object_set_new(row, "deployment",
                                    json_string(d->cfg->deployments[i - nt].name));
                json_array_append_new(deps, row);
            }
        }
        out = json_pack("{ss so so}", "day", day, "teams", teams, "deployments", deps);
    }
    for (size_t i = 0; i < nt + nd; i++)
        json_decref(slots[i]);
    free(slots);
    return out;
}

/* ---- guardrail findings from the program's own metrics ------------------- */

/* Reads label `name` of a Prometheus label set "{a=\"x\",b=\"y\"}" into out
 * (escapes undone). Returns 0, or -1 when absent. */
static int prom_label(const char *labels, const char *end, const char *name, char *out, size_t size)
{
    size_t nl = strlen(name);
    const char *p = labels;
    while (p < end) {
        while (p < end && (*p == '{' || *p == ',' || *p == ' '))
            p++;
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (!eq || eq + 1 >= end || eq[1] != '"')
            return -1;
        int match = (size_t)(eq - p) == nl && strncmp(p, name, nl) == 0;
        size_t o = 0;
        for (p = eq + 2; p < end && *p != '"'; p++) {
            char c = *p;
            if (c == '\\' && p + 1 < end) {
                c = *++p;
                if (c == 'n')
                    c = '\n';
            }
            if (match && o + 1 < size)
                out[o++] = c;
        }
        if (match) {
            out[o] = '\0';
            return 0;
        }
        p++; /* the closing quote */
    }
    return -1;
}

static json_t *guardrails_from_metrics(const char *text)
{
    static const char series[] = "inferq_guardrail_findings_total{";
    json_t *arr = json_array();
    for (const char *line = text; line && *line;) {
        const char *eol = strchr(line, '\n');
        const char *stop = eol ? eol : line + strlen(line);
        if (strncmp(line, series, sizeof(series) - 1) == 0) {
            const char *close = memchr(line, '}', (size_t)(stop - line));
            char stage[64] = "", detector[128] = "", action[64] = "";
            if (close) {
                prom_label(line + sizeof(series) - 2, close, "stage", stage, sizeof(stage));
                prom_label(line + sizeof(series) - 2, close, "detector", detector,
                           sizeof(detector));
                prom_label(line + sizeof(series) - 2, close, "action", action, sizeof(action));
                char *end;
                double v = strtod(close + 1, &end);
                if (end != close + 1 && v > 0)
                    json_array_append_new(arr, json_pack("{ss ss ss sI}", "stage", stage,
                                                         "detector", detector, "action", action,
                                                         "count", (json_int_t)(v + 0.5)));
            }
        }
        line = eol ? eol + 1 : NULL;
    }
    return arr;
}

static json_t *api_guardrails(dash_t *d)
{
    if (!d->metrics)
        return json_array();
    char *buf = malloc(DASH_METRICS_MAX);
    if (!buf)
        return error_obj("out of memory");
    size_t n = d->metrics(d->metrics_opaque, buf, DASH_METRICS_MAX);
    buf[n < DASH_METRICS_MAX ? n : DASH_METRICS_MAX - 1] = '\0';
    json_t *arr = guardrails_from_metrics(buf);
    free(buf);
    return arr;
}

/* ---- one request ---------------------------------------------------------- */

static int api_request(dash_t *d, const char *custom_id, ifq_admin_resp_t *resp)
{
    if (!custom_id || !custom_id[0] || strlen(custom_id) > IFQ_MAX_CUSTOM_ID)
        return json_resp(resp, 400, error_obj("custom_id: 1 to 512 characters"));
    pthread_mutex_lock(&d->mu);
    ifq_state_t *st = dash_state(d);
    int err = IFQ_ERR_IO;
    json_t *state = st ? ifq_state_get(st, custom_id, &err) : NULL;
    if (!state && err == IFQ_ERR_IO && d->st)
        dash_drop(d);
    pthread_mutex_unlock(&d->mu);
    if (!state)
        return json_resp(resp, err == IFQ_ERR_NOTFOUND ? 404 : 503,
                         error_obj(err == IFQ_ERR_NOTFOUND
                                       ? "no such request (or its state expired)"
                                       : "redis unreachable"));
    json_t *out = json_pack("{ss sO}", "custom_id", custom_id, "state", state);
    const char *trace_id = json_string_value(json_object_get(state, "trace_id"));
    if (trace_id && ifq_trace_id_valid(trace_id)) {
        char errstr[256];
        int64_t since = json_integer_value(json_object_get(state, "received_ms"));
        /* Outside the lock: the reader has its own Kafka client. */
        ifq_trace_reader_t *r =
            ifq_trace_reader_new(d->cfg, d->cfg->topic_traces, trace_id, since,
                                 DASH_TRACE_TIMEOUT_MS, NULL, errstr, sizeof(errstr));
        if (r) {
            int rc = ifq_trace_reader_read(r, DASH_TRACE_TIMEOUT_MS);
            ifq_trace_t *t = ifq_trace_reader_trace(r);
            ifq_trace_order(t);
            json_t *tj = ifq_trace_to_json(t, trace_id);
            json_object_set_new(tj, "complete", json_boolean(rc == IFQ_OK));
            json_object_set_new(out, "trace", tj);
            ifq_trace_reader_destroy(r);
        } else {
            json_object_set_new(out, "trace_error", json_string(errstr));
        }
    }
    json_decref(state);
    return json_resp(resp, 200, out);
}

/* ---- routing -------------------------------------------------------------- */

static int arg_int(const ifq_admin_req_t *req, const char *name, int dflt, int lo, int hi)
{
    const char *s = ifq_admin_arg(req, name);
    int64_t v;
    if (!s || ifq_parse_i64(s, &v) != IFQ_OK)
        return dflt;
    return v < lo ? lo : v > hi ? hi : (int)v;
}

static int dash_route(void *opaque, const char *path, const ifq_admin_req_t *req,
                      ifq_admin_resp_t *resp)
{
    dash_t *d = opaque;
    if (strcmp(path, "/") == 0 || strcmp(path, "/dashboard") == 0) {
        resp->status = 200;
        resp->content_type = "text/html; charset=utf-8";
        resp->body = malloc(ifq_dashboard_html_len + 1);
        if (resp->body) {
            memcpy(resp->body, ifq_dashboard_html, ifq_dashboard_html_len);
            resp->len = ifq_dashboard_html_len;
        }
        return 1;
    }
    if (strncmp(path, "/api/", 5) != 0)
        return 0;
    const char *api = path + 5;
    if (strcmp(api, "request") == 0)
        return api_request(d, ifq_admin_arg(req, "custom_id"), resp);
    int window = arg_int(req, "window", 300, 10, DASH_MAX_WINDOW_S);
    int step = arg_int(req, "step", 10, 1, 60);
    json_t *out = NULL;
    pthread_mutex_lock(&d->mu);
    if (strcmp(api, "overview") == 0) {
        out = json_pack("{sI ss ss so so so so so}", "now_ms", (json_int_t)ifq_now_ms(), "prefix",
                        d->cfg->prefix, "traces_topic", d->cfg->topic_traces, "throughput",
                        api_throughput(d, window, step), "backlog", api_backlog(d), "health",
                        api_health(d), "guardrails", api_guardrails(d), "spend", api_spend(d));
    } else if (strcmp(api, "throughput") == 0) {
        out = api_throughput(d, window, step);
    } else if (strcmp(api, "backlog") == 0) {
        out = api_backlog(d);
    } else if (strcmp(api, "health") == 0) {
        out = api_health(d);
    } else if (strcmp(api, "guardrails") == 0) {
        out = api_guardrails(d);
    } else if (strcmp(api, "spend") == 0) {
        out = api_spend(d);
    }
    pthread_mutex_unlock(&d->mu);
    if (!out)
        return json_resp(resp, 404, error_obj("no such API"));
    return json_resp(resp, 200, out);
}

static void dash_free(void *opaque)
{
    dash_t *d = opaque;
    if (!d)
        return;
    ifq_state_destroy(d->st);
    ifq_backlog_destroy(d->backlog);
    free(d->health.deps);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

int ifq_dashboard_attach(ifq_admin_handlers_t *h, const ifq_config_t *cfg)
{
    dash_t *d = calloc(1, sizeof(*d));
    if (!d)
        return -1;
    d->health.n = cfg->n_deployments;
    d->health.deps = calloc(cfg->n_deployments + 1, sizeof(*d->health.deps));
    if (!d->health.deps) {
        free(d);
        return -1;
    }
    d->cfg = cfg;
    d->metrics = h->metrics;
    d->metrics_opaque = h->opaque;
    pthread_mutex_init(&d->mu, NULL);
    h->route = dash_route;
    h->route_opaque = d;
    h->route_free = dash_free;
    return 0;
}
