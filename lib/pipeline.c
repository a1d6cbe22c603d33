/*
 * pipeline.c - decode, validate, identify the team, check access and the
 * deadline, route, and produce exactly one decision for each request message.
 */
#include "pipeline.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "guard.h"
#include "limits.h"
#include "prompt.h"
#include "trace.h"

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int traceparent_valid(const char *tp)
{
    if (!tp || strlen(tp) != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-')
        return 0;
    for (int i = 0; i < 55; i++) {
        if (i == 2 || i == 35 || i == 52)
            continue;
        if (!isxdigit((unsigned char)tp[i]) || isupper((unsigned char)tp[i]))
            return 0;
    }
    return strncmp(tp + 3, "00000000000000000000000000000000", 32) != 0;
}

void ifq_traceparent(char out[56], const char *parent, uint64_t seed)
{
    uint64_t s = seed ^ (uint64_t)ifq_mono_us();
    char trace[33];
    if (traceparent_valid(parent)) {
        memcpy(trace, parent + 3, 32);
        trace[32] = '\0';
    } else {
        snprintf(trace, sizeof(trace), "%016llx%016llx", (unsigned long long)splitmix64(&s),
                 (unsigned long long)splitmix64(&s));
    }
    char flags[3] = "01";
    if (traceparent_valid(parent))
        memcpy(flags, parent + 53, 2);
    snprintf(out, 56, "00-%s-%016llx-%s", trace, (unsigned long long)(splitmix64(&s) | 1), flags);
}

void ifq_hmac_hex(const char *key, const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    HMAC(EVP_sha256(), key, (int)strlen(key), data, len, md, &mdlen);
    for (unsigned i = 0; i < mdlen && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    out[64] = '\0';
}

static void copy_str(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

/* Builds the error result of a decision from the request object (borrowed). */
static void make_result(ifq_decision_t *out, const json_t *req, const char *status,
                        const char *code, const char *message, json_t *extra, int64_t now_ms)
{
    out->kind = IFQ_OUT_RESULT;
    out->state = strcmp(status, "expired") == 0 ? "expired" : "rejected";
    out->error_code = code;
    copy_str(out->reason, sizeof(out->reason), message);
    copy_str(out->topic, sizeof(out->topic), out->reply_topic);
    json_t *md = json_object_get(req, "metadata");
    json_t *res = ifq_result_new(out->id, out->custom_id,
                                 out->model_requested[0] ? out->model_requested : NULL,
                                 json_is_object(md) ? md : NULL);
    ifq_result_set_error(res, status, code, message);
    json_t *ext = ifq_result_ext(res);
    if (out->team[0])
        json_object_set_new(ext, "team", json_string(out->team));
    json_object_set_new(ext, "trace_id", json_stringn(out->traceparent + 3, 32));
    json_object_set_new(ext, "attempts", json_array());
    json_object_set_new(ext, "finished_ms", json_integer(now_ms));
    if (extra)
        json_object_update(ext, extra);
    free(out->value);
    out->value = ifq_json_dump(res, &out->len);
    json_decref(res);
}

static void reject(ifq_decision_t *out, const json_t *req, const char *code, int64_t now_ms,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void reject(ifq_decision_t *out, const json_t *req, const char *code, int64_t now_ms,
                   const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    make_result(out, req, "rejected", code, msg, NULL, now_ms);
}

void ifq_decision_reject(ifq_decision_t *d, const char *status, const char *code,
                         const char *message, json_t *extra, int64_t now_ms)
{
    json_t *req = d->request;
    d->request = NULL;
    d->deployment[0] = '\0';
    make_result(d, req, status, code, message, extra, now_ms);
    json_decref(req);
}

void ifq_decision_cached(ifq_decision_t *d, const json_t *entry, int64_t now_ms)
{
    json_t *req = d->request;
    d->request = NULL;
    json_t *md = json_object_get(req, "metadata");
    json_t *res =
        ifq_result_new(d->id, d->custom_id, d->model_requested, json_is_object(md) ? md : NULL);
    json_t *resp = json_object_get(entry, "response");
    ifq_result_set_response(res, (int)json_integer_value(json_object_get(resp, "status_code")),
                            json_string_value(json_object_get(resp, "request_id")),
                            json_incref(json_object_get(resp, "body")));
    json_t *ext = ifq_result_ext(res);
    if (d->team[0])
        json_object_set_new(ext, "team", json_string(d->team));
    json_object_set(ext, "deployment", json_object_get(entry, "deployment"));
    json_object_set(ext, "usage", json_object_get(entry, "usage"));
    json_object_set_new(ext, "cost_usd", json_real(0.0));
    json_object_set_new(ext, "cache_hit", json_true());
    json_object_set_new(ext, "attempts", json_array());
    json_object_set_new(ext, "trace_id", json_stringn(d->traceparent + 3, 32));
    json_object_set_new(ext, "finished_ms", json_integer(now_ms));
    d->kind = IFQ_OUT_RESULT;
    d->state = "succeeded";
    d->error_code = NULL;
    copy_str(d->topic, sizeof(d->topic), d->reply_topic);
    free(d->value);
    d->value = ifq_json_dump(res, &d->len);
    json_decref(res);
    json_decref(req);
}

/* Identifies the team. Returns 0, or -1 with a rejection already made. */
static int identify_team(ifq_pipeline_t *p, const ifq_msgmeta_t *meta, const void *buf, size_t len,
                         const json_t *req, ifq_decision_t *out, int64_t now_ms,
                         const ifq_team_t **team)
{
    const ifq_config_t *cfg = p->cfg;
    *team = NULL;
    size_t rl = strlen(cfg->topic_requests);
    if (strncmp(meta->topic, cfg->topic_requests, rl) == 0 && meta->topic[rl] == '.') {
        /* <prefix>.requests.<team>: Kafka ACLs decide who may write here. */
        const char *name = meta->topic + rl + 1;
        *team = ifq_config_team(cfg, name);
        if (!*team) {
            reject(out, req, "unauthorized", now_ms, "no team '%.100s' is configured for topic %s",
                   name, meta->topic);
            return -1;
        }
    } else if (meta->signature || meta->sig_team) {
        const ifq_team_t *t = ifq_config_team(cfg, meta->sig_team);
        const char *key = t && t->hmac_key_env ? getenv(t->hmac_key_env) : NULL;
        char want[65];
        if (!t || !key || !*key || !meta->signature || strlen(meta->signature) != 64) {
            reject(out, req, "unauthorized", now_ms,
                   "signed request: unknown team or team without a signing key");
            return -1;
        }
        ifq_hmac_hex(key, buf, len, want);
        if (CRYPTO_memcmp(want, meta->signature, 64) != 0) {
            reject(out, req, "unauthorized", now_ms,
                   "the inferq-signature header does not match the message for team %s", t->name);
            return -1;
        }
        *team = t;
    } else if (cfg->default_team) {
        *team = ifq_config_team(cfg, cfg->default_team);
    } else if (cfg->n_teams) {
        reject(out, req, "unauthorized", now_ms,
               "requests on %s must be signed (inferq-team, inferq-signature headers) or sent to "
               "%s.<team>",
               cfg->topic_requests, cfg->topic_requests);
        return -1;
    }
    if (*team)
        copy_str(out->team, sizeof(out->team), (*team)->name);
    return 0;
}

void ifq_pipeline_decide(ifq_pipeline_t *p, const void *buf, size_t len, const ifq_msgmeta_t *meta,
                         int64_t now_ms, ifq_decision_t *out)
{
    const ifq_config_t *cfg = p->cfg;
    memset(out, 0, sizeof(*out));
    out->t.start = ifq_now_ns();
    ifq_request_id(out->id, meta->topic, meta->partition, meta->offset, meta->timestamp);
    ifq_traceparent(out->traceparent, meta->traceparent, ifq_fnv1a64(out->id, strlen(out->id), 0));
    /* Parent-based sampling: a client's traceparent decides; a new trace is
     * sampled by its id, so every service agrees. */
    if (!traceparent_valid(meta->traceparent) &&
        !ifq_trace_sample(out->traceparent + 3, cfg->trace_sample_rate))
        memcpy(out->traceparent + 53, "00", 2);
    copy_str(out->reply_topic, sizeof(out->reply_topic), cfg->topic_replies);

    ifq_request_t req;
    ifq_reqerr_t err;
    ifq_decode_status_t st =
        ifq_request_decode(p->avro, buf, len, cfg->max_message_bytes, &req, &err);
    out->t.decoded = ifq_now_ns();
    if (st == IFQ_DECODE_DLQ) {
        out->kind = IFQ_OUT_DLQ;
        out->error_code = "undecodable";
        copy_str(out->topic, sizeof(out->topic), cfg->topic_dlq);
        copy_str(out->reason, sizeof(out->reason), err.message);
        return;
    }
    copy_str(out->custom_id, sizeof(out->custom_id), req.custom_id);
    copy_str(out->model_requested, sizeof(out->model_requested), req.model);
    out->priority = req.priority;

    const ifq_team_t *team = NULL;
    if (identify_team(p, meta, buf, len, req.root, out, now_ms, &team) < 0)
        goto done;
    /* The reply topic is honoured only when the team may use it; errors
     * about it go to the default reply topic. */
    if (req.reply_to) {
        if (team && !ifq_team_allows_reply(team, cfg, req.reply_to)) {
            reject(out, req.root, "reply_topic_not_allowed", now_ms,
                   "team %s may not name reply topic '%.200s'", team->name, req.reply_to);
            goto done;
        }
        copy_str(out->reply_topic, sizeof(out->reply_topic), req.reply_to);
    }
    if (st == IFQ_DECODE_REJECT) {
        reject(out, req.root, err.code, now_ms, "%s", err.message);
        goto done;
    }
    if (req.deadline_ms && req.deadline_ms <= now_ms) {
        char why[160];
        snprintf(why, sizeof(why), "deadline_ms %lld passed before the request was routed",
                 (long long)req.deadline_ms);
        make_result(out, req.root, "expired", "batch_expired", why, NULL, now_ms);
        goto done;
    }
    /* A prompt template renders into body.messages (and the template's
     * model and parameters where the body has none). */
    json_t *tmpl = json_object_get(req.root, "prompt");
    char prompt_ref[IFQ_PROMPT_REF_SIZE] = "";
    if (tmpl && !json_is_null(tmpl)) {
        out->t.prompt_start = ifq_now_ns();
        char why[512];
        int prc = p->prompts ? ifq_prompts_render_request(p->prompts, tmpl, req.body, prompt_ref,
                                                          sizeof(prompt_ref), why, sizeof(why))
                             : IFQ_ERR_INVALID;
        if (!p->prompts)
            snprintf(why, sizeof(why), "prompt templates are not available on this broker");
        out->t.prompt_end = ifq_now_ns();
        if (prc != IFQ_OK) {
            reject(out, req.root, prc == IFQ_ERR_IO ? "internal_error" : "invalid_request", now_ms,
                   "prompt: %s", why);
            goto done;
        }
        req.model = json_string_value(json_object_get(req.body, "model"));
        if (!req.model) {
            reject(out, req.root, "invalid_request", now_ms,
                   "body.model is missing and prompt %s names no model", prompt_ref);
            goto done;
        }
        copy_str(out->model_requested, sizeof(out->model_requested), req.model);
    }
    if (team && !ifq_team_allows_model(team, req.model)) {
        reject(out, req.root, "model_not_allowed", now_ms, "team %s may not use model '%.200s'",
               team->name, req.model);
        goto done;
    }

    /* Input guardrails: the team's policy, else the default. Actions are
     * applied to the body in place; a block answers at once. */
    json_t *findings = NULL;
    int body_changed = tmpl && !json_is_null(tmpl);
    const char *policy_name = team && team->guardrail_policy ? team->guardrail_policy : NULL;
    if (p->guard) {
        const ifq_guard_policy_t *pol = ifq_guard_policy(p->guard, policy_name);
        if (pol) {
            ifq_guard_verdict_t v;
            ifq_guard_verdict_init(&v);
            out->t.guard_start = ifq_now_ns();
            ifq_guard_scan_request(pol, req.body, req.kind, &v);
            out->t.guard_end = ifq_now_ns();
            if (json_array_size(v.findings)) {
                findings = json_incref(v.findings);
                out->findings = json_incref(v.findings);
            }
            body_changed |= v.modified;
            if (v.blocked) {
                copy_str(out->blocked_by, sizeof(out->blocked_by), v.blocked_by);
                json_t *extra = json_pack("{s{sO}}", "guardrails", "input", v.findings);
                char msg[400];
                snprintf(msg, sizeof(msg), "blocked by guardrails: %s", v.blocked_by);
                make_result(out, req.root, "rejected", "guardrail_blocked", msg, extra, now_ms);
                json_decref(extra);
                json_decref(findings);
                ifq_guard_verdict_clear(&v);
                goto done;
            }
            ifq_guard_verdict_clear(&v);
        }
    }

    ifq_route_t route;
    json_t *decision = NULL;
    char why[300];
    double rnd = (double)(splitmix64(&p->rng) >> 11) / (double)(1ULL << 53);
    out->t.route_start = ifq_now_ns();
    ifq_route_status_t rs = ifq_route_select(cfg, p->health, req.root, req.model, req.kind, rnd,
                                             &route, &decision, why, sizeof(why));
    out->t.route_end = ifq_now_ns();
    if (rs != IFQ_ROUTE_OK) {
        json_decref(findings);
        reject(out, req.root, rs == IFQ_ROUTE_NOT_FOUND ? "model_not_found" : "context_too_long",
               now_ms, "%s", why);
        goto done;
    }

    /* Estimates for limits and budgets: prompt tokens plus the completion
     * budget (max_tokens, or a typical 256 when absent). */
    ifq_deployment_t *dep = route.chain[0];
    int64_t prompt_tokens = ifq_estimate_tokens(req.body, req.kind);
    json_int_t max_tokens = json_integer_value(json_object_get(req.body, "max_tokens"));
    int64_t completion = req.kind == IFQ_URL_EMBEDDINGS ? 0 : max_tokens > 0 ? max_tokens : 256;
    out->est_tokens = prompt_tokens + completion;
    out->est_cost = ((double)prompt_tokens * dep->price_input_per_mtok +
                     (double)completion * dep->price_output_per_mtok) /
                    1e6;
    if (ifq_cache_key(cfg, out->team[0] ? out->team : NULL, req.root, out->cache_key) < 0)
        out->cache_key[0] = '\0';

    /* The routed message is the request itself plus the routing facts a
     * worker needs; a client-written "inferq" field is replaced, never
     * trusted. */
    json_t *chain = json_array();
    size_t cl = 0;
    for (size_t i = 0; i < route.n; i++) {
        json_array_append_new(chain, json_string(route.chain[i]->name));
        int w = snprintf(out->route_chain + cl, sizeof(out->route_chain) - cl, "%s%s", i ? ">" : "",
                         route.chain[i]->name);
        if (w > 0 && cl + (size_t)w < sizeof(out->route_chain))
            cl += (size_t)w;
    }
    copy_str(out->route_strategy, sizeof(out->route_strategy),
             json_string_value(json_object_get(decision, "strategy")));
    json_t *src = json_pack("{ss si sI}", "topic", meta->topic, "partition", (int)meta->partition,
                            "offset", (json_int_t)meta->offset);
    json_t *ext = json_pack("{ss ss so si so so sI ss s[] so sI}", "id", out->id, "model_requested",
                            req.model, "chain", chain, "hop", 0, "source", src, "encoding",
                            json_string(ifq_encoding_name(req.encoding)), "received_ms",
                            (json_int_t)now_ms, "traceparent", out->traceparent, "attempts",
                            "routing", decision, "est_tokens", (json_int_t)out->est_tokens);
    if (out->team[0])
        json_object_set_new(ext, "team", json_string(out->team));
    if (out->cache_key[0])
        json_object_set_new(ext, "cache_key", json_string(out->cache_key));
    if (prompt_ref[0])
        json_object_set_new(ext, "prompt", json_string(prompt_ref));
    if (findings)
        json_object_set_new(ext, "guardrails", json_pack("{so}", "input", findings));
    if (policy_name)
        json_object_set_new(ext, "guardrail_policy", json_string(policy_name));
    /* When the client's JSON goes on unchanged, the routed message is its
     * own bytes with the inferq object spliced in (ifq_decision_finish):
     * no re-serialisation, and numbers keep their exact spelling. */
    if (req.encoding == IFQ_ENC_JSON && !body_changed && !json_object_get(req.root, "inferq")) {
        const char *b = buf;
        size_t n = len;
        while (n && (b[n - 1] == ' ' || b[n - 1] == '\n' || b[n - 1] == '\r' || b[n - 1] == '\t'))
            n--;
        if (n && b[n - 1] == '}') {
            out->raw = b;
            out->raw_len = n - 1;
        }
    }
    json_object_set_new(req.root, "inferq", ext);
    out->kind = IFQ_OUT_ROUTE;
    out->state = "routed";
    ifq_lane_topic(cfg, dep, (int)req.priority, out->topic, sizeof(out->topic));
    copy_str(out->deployment, sizeof(out->deployment), dep->name);
    out->request = json_incref(req.root);
done:
    ifq_request_clear(&req);
}

void ifq_decision_finish(ifq_decision_t *d)
{
    if (d->kind != IFQ_OUT_ROUTE || !d->request)
        return;
    free(d->value);
    if (d->raw) {
        size_t elen = 0;
        char *ext = ifq_json_dump(json_object_get(d->request, "inferq"), &elen);
        if (ext) {
            static const char key[] = ",\"inferq\":";
            d->len = d->raw_len + sizeof(key) - 1 + elen + 1;
            d->value = malloc(d->len + 1);
            if (d->value) {
                char *w = d->value;
                memcpy(w, d->raw, d->raw_len);
                w += d->raw_len;
                memcpy(w, key, sizeof(key) - 1);
                w += sizeof(key) - 1;
                memcpy(w, ext, elen);
                w += elen;
                *w++ = '}';
                *w = '\0';
                free(ext);
                json_decref(d->request);
                d->request = NULL;
                d->raw = NULL;
                return;
            }
            free(ext);
        }
    }
    d->value = ifq_json_dump(d->request, &d->len);
    json_decref(d->request);
    d->request = NULL;
    if (!d->value) {
        d->kind = IFQ_OUT_DLQ;
        d->error_code = "internal_error";
        copy_str(d->reason, sizeof(d->reason), "out of memory while routing");
    }
}

void ifq_decision_clear(ifq_decision_t *d)
{
    free(d->value);
    d->value = NULL;
    json_decref(d->findings);
    d->findings = NULL;
    json_decref(d->request);
    d->request = NULL;
}
