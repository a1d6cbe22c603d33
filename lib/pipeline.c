/*
 * pipeline.c - decode, validate, check the deadline, resolve the model and
 * produce exactly one decision for each request message.
 */
#include "pipeline.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"

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
    snprintf(out, 56, "00-%s-%016llx-01", trace, (unsigned long long)(splitmix64(&s) | 1));
}

static void copy_str(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

static void decide_result(ifq_decision_t *out, const ifq_config_t *cfg, const ifq_request_t *req,
                          const char *status, const char *state, const char *code,
                          const char *message, int64_t now_ms)
{
    out->kind = IFQ_OUT_RESULT;
    out->state = state;
    out->error_code = code;
    copy_str(out->reason, sizeof(out->reason), message);
    copy_str(out->topic, sizeof(out->topic), req->reply_to ? req->reply_to : cfg->topic_replies);
    json_t *res = ifq_result_new(out->id, req->custom_id, req->model, req->metadata);
    ifq_result_set_error(res, status, code, message);
    json_t *ext = ifq_result_ext(res);
    json_object_set_new(ext, "trace_id", json_stringn(out->traceparent + 3, 32));
    json_object_set_new(ext, "attempts", json_array());
    json_object_set_new(ext, "finished_ms", json_integer(now_ms));
    out->value = ifq_json_dump(res, &out->len);
    json_decref(res);
}

void ifq_pipeline_decide(const ifq_config_t *cfg, ifq_avro_t *avro, const void *buf, size_t len,
                         const ifq_msgmeta_t *meta, int64_t now_ms, ifq_decision_t *out)
{
    memset(out, 0, sizeof(*out));
    ifq_request_id(out->id, meta->topic, meta->partition, meta->offset, meta->timestamp);
    ifq_traceparent(out->traceparent, meta->traceparent,
                    ifq_fnv1a64(out->id, strlen(out->id), 0));

    ifq_request_t req;
    ifq_reqerr_t err;
    ifq_decode_status_t st = ifq_request_decode(avro, buf, len, cfg->max_message_bytes, &req, &err);
    if (st == IFQ_DECODE_DLQ) {
        out->kind = IFQ_OUT_DLQ;
        out->error_code = "undecodable";
        copy_str(out->topic, sizeof(out->topic), cfg->topic_dlq);
        copy_str(out->reason, sizeof(out->reason), err.message);
        return;
    }
    copy_str(out->custom_id, sizeof(out->custom_id), req.custom_id);
    copy_str(out->model_requested, sizeof(out->model_requested), req.model);
    if (st == IFQ_DECODE_REJECT) {
        decide_result(out, cfg, &req, "rejected", "rejected", err.code, err.message, now_ms);
        ifq_request_clear(&req);
        return;
    }
    if (req.deadline_ms && req.deadline_ms <= now_ms) {
        char why[160];
        snprintf(why, sizeof(why), "deadline_ms %lld passed before the request was routed",
                 (long long)req.deadline_ms);
        decide_result(out, cfg, &req, "expired", "expired", "batch_expired", why, now_ms);
        ifq_request_clear(&req);
        return;
    }
    ifq_route_t route;
    if (ifq_catalog_resolve(cfg, req.model, &route) != IFQ_OK) {
        char why[300];
        snprintf(why, sizeof(why), "model '%.200s' is not in the catalog", req.model);
        decide_result(out, cfg, &req, "rejected", "rejected", "model_not_found", why, now_ms);
        ifq_request_clear(&req);
        return;
    }

    /* The routed message is the request itself plus the routing facts a
     * worker needs; a client-written "inferq" field is replaced, never
     * trusted. */
    ifq_deployment_t *dep = route.chain[0];
    json_t *chain = json_array();
    for (size_t i = 0; i < route.n; i++)
        json_array_append_new(chain, json_string(route.chain[i]->name));
    json_t *src = json_pack("{ss si sI}", "topic", meta->topic, "partition", (int)meta->partition,
                            "offset", (json_int_t)meta->offset);
    json_t *ext = json_pack("{ss ss so si so so sI ss s[]}", "id", out->id, "model_requested",
                            req.model, "chain", chain, "hop", 0, "source", src, "encoding",
                            json_string(ifq_encoding_name(req.encoding)), "received_ms",
                            (json_int_t)now_ms, "traceparent", out->traceparent, "attempts");
    json_object_set_new(req.root, "inferq", ext);
    out->kind = IFQ_OUT_ROUTE;
    out->state = "routed";
    copy_str(out->topic, sizeof(out->topic), dep->topic);
    copy_str(out->deployment, sizeof(out->deployment), dep->name);
    out->value = ifq_json_dump(req.root, &out->len);
    ifq_request_clear(&req);
    if (!out->value) {
        out->kind = IFQ_OUT_DLQ;
        out->error_code = "internal_error";
        copy_str(out->topic, sizeof(out->topic), cfg->topic_dlq);
        copy_str(out->reason, sizeof(out->reason), "out of memory while routing");
    }
}

void ifq_decision_clear(ifq_decision_t *d)
{
    free(d->value);
    d->value = NULL;
}
