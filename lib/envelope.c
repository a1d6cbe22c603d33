/*
 * envelope.c - request decoding/validation and result construction.
 *
 * Validation order matters for what the client gets back: anything that
 * stops us from correlating an answer (not JSON/Avro, not an object, no
 * usable custom_id) dead-letters the message; everything after that is an
 * error result addressed to the request's custom_id.
 */
#include "envelope.h"
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Hard cap on what we even try to parse to find a custom_id for an error
 * result; beyond this the message is dead-lettered unread. */
#define IFQ_MAX_PARSE_BYTES (64u * 1024 * 1024)

static const char *const url_paths[] = {"/v1/chat/completions", "/v1/completions",
                                        "/v1/embeddings"};

const char *ifq_url_path(ifq_url_kind_t kind)
{
    return url_paths[kind];
}

ifq_encoding_t ifq_envelope_detect(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    size_t i = 0;
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    if (i < len && p[i] == '{')
        return IFQ_ENC_JSON;
    if (ifq_avro_is_framed(buf, len))
        return IFQ_ENC_AVRO;
    return IFQ_ENC_UNKNOWN;
}

const char *ifq_encoding_name(ifq_encoding_t enc)
{
    switch (enc) {
    case IFQ_ENC_JSON:
        return "json";
    case IFQ_ENC_AVRO:
        return "avro";
    default:
        return "unknown";
    }
}

void ifq_request_clear(ifq_request_t *req)
{
    json_decref(req->root);
    memset(req, 0, sizeof(*req));
}

static ifq_decode_status_t reject(ifq_reqerr_t *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static ifq_decode_status_t reject(ifq_reqerr_t *err, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    err->code = code;
    return IFQ_DECODE_REJECT;
}

static const char *type_name(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

ifq_decode_status_t ifq_request_validate(json_t *obj, ifq_request_t *req, ifq_reqerr_t *err)
{
    memset(req, 0, sizeof(*req));
    err->code = "invalid_request";
    err->message[0] = '\0';
    if (!json_is_object(obj)) {
        snprintf(err->message, sizeof(err->message), "the request must be a JSON object, got %s",
                 type_name(obj));
        return IFQ_DECODE_DLQ;
    }
    json_t *cid = json_object_get(obj, "custom_id");
    if (!cid) {
        snprintf(err->message, sizeof(err->message), "custom_id is missing");
        return IFQ_DECODE_DLQ;
    }
    if (!json_is_string(cid)) {
        snprintf(err->message, sizeof(err->message), "custom_id must be a string, got %s",
                 type_name(cid));
        return IFQ_DECODE_DLQ;
    }
    size_t cid_len = json_string_length(cid);
    if (cid_len == 0 || cid_len > IFQ_MAX_CUSTOM_ID || strlen(json_string_value(cid)) != cid_len) {
        snprintf(err->message, sizeof(err->message),
                 "custom_id must be 1..%d bytes without NUL characters", IFQ_MAX_CUSTOM_ID);
        return IFQ_DECODE_DLQ;
    }
    req->custom_id = json_string_value(cid);

    /* From here on the client can be answered. reply_to first, so that every
     * later error goes where the client listens. */
    json_t *rt = json_object_get(obj, "reply_to");
    if (rt && !json_is_null(rt)) {
        if (!json_is_string(rt))
            return reject(err, "invalid_request", "reply_to must be a string, got %s",
                          type_name(rt));
        if (!ifq_topic_name_valid(json_string_value(rt)))
            return reject(err, "invalid_request",
                          "reply_to is not a valid Kafka topic name (1..249 of [A-Za-z0-9._-])");
        req->reply_to = json_string_value(rt);
    }

    json_t *method = json_object_get(obj, "method");
    if (method && !json_is_null(method) &&
        (!json_is_string(method) || strcmp(json_string_value(method), "POST") != 0))
        return reject(err, "invalid_request", "method must be \"POST\"");

    json_t *url = json_object_get(obj, "url");
    if (!url || json_is_null(url))
        return reject(
            err, "unsupported_url",
            "url is missing; use /v1/chat/completions, /v1/completions or /v1/embeddings");
    if (!json_is_string(url))
        return reject(err, "invalid_request", "url must be a string, got %s", type_name(url));
    req->url = json_string_value(url);
    int found = 0;
    for (size_t i = 0; i < IFQ_ARRAY_LEN(url_paths); i++)
        if (strcmp(req->url, url_paths[i]) == 0) {
            req->kind = (ifq_url_kind_t)i;
            found = 1;
        }
    if (!found)
        return reject(err, "unsupported_url",
                      "url '%.100s' is not supported; use /v1/chat/completions, /v1/completions "
                      "or /v1/embeddings",
                      req->url);

    json_t *body = json_object_get(obj, "body");
    if (!body)
        return reject(err, "invalid_request", "body is missing");
    if (!json_is_object(body))
        return reject(err, "invalid_request", "body must be an object, got %s", type_name(body));
    req->body = body;
    /* With a prompt template the model may come from the template, and the
     * messages always do. */
    json_t *tmpl = json_object_get(obj, "prompt");
    if (tmpl && json_is_null(tmpl))
        tmpl = NULL;
    if (tmpl && req->kind != IFQ_URL_CHAT)
        return reject(err, "invalid_request", "prompt templates are for /v1/chat/completions");
    json_t *model = json_object_get(body, "model");
    if (!model && !tmpl)
        return reject(err, "invalid_request", "body.model is missing");
    if (model && (!json_is_string(model) || json_string_length(model) == 0))
        return reject(err, "invalid_request", "body.model must be a non-empty string");
    req->model = model ? json_string_value(model) : NULL;

    if (req->kind == IFQ_URL_CHAT) {
        json_t *msgs = json_object_get(body, "messages");
        if (tmpl && msgs)
            return reject(err, "invalid_request",
                          "body.messages must be absent when a prompt template is used");
        if (!tmpl && (!json_is_array(msgs) || json_array_size(msgs) == 0))
            return reject(err, "invalid_request", "body.messages must be a non-empty array");
    } else if (req->kind == IFQ_URL_EMBEDDINGS) {
        json_t *input = json_object_get(body, "input");
        if (!json_is_string(input) && !json_is_array(input))
            return reject(err, "invalid_request", "body.input must be a string or an array");
    } else {
        json_t *prompt = json_object_get(body, "prompt");
        if (!json_is_string(prompt) && !json_is_array(prompt))
            return reject(err, "invalid_request", "body.prompt must be a string or an array");
    }

    json_t *prio = json_object_get(obj, "priority");
    if (prio && !json_is_null(prio)) {
        const char *p = json_string_value(prio);
        if (p && strcmp(p, "high") == 0)
            req->priority = IFQ_PRIO_HIGH;
        else if (p && strcmp(p, "low") == 0)
            req->priority = IFQ_PRIO_LOW;
        else if (p && strcmp(p, "normal") == 0)
            req->priority = IFQ_PRIO_NORMAL;
        else
            return reject(err, "invalid_request",
                          "priority must be \"high\", \"normal\" or \"low\"");
    }

    json_t *dl = json_object_get(obj, "deadline_ms");
    if (dl && !json_is_null(dl)) {
        if (!json_is_integer(dl) || json_integer_value(dl) <= 0)
            return reject(err, "invalid_request",
                          "deadline_ms must be a positive integer (epoch milliseconds)");
        req->deadline_ms = json_integer_value(dl);
    }

    json_t *md = json_object_get(obj, "metadata");
    if (md && !json_is_null(md)) {
        if (!json_is_object(md))
            return reject(err, "invalid_request", "metadata must be an object of strings");
        if (json_object_size(md) > 64)
            return reject(err, "invalid_request", "metadata has more than 64 keys");
        const char *k;
        json_t *v;
        json_object_foreach(md, k, v)
        {
            if (!json_is_string(v) || strlen(k) > 64 || json_string_length(v) > 512)
                return reject(err, "invalid_request",
                              "metadata values must be strings (keys up to 64, values up to 512 "
                              "bytes); '%.64s' is not",
                              k);
        }
        req->metadata = md;
    }

    json_t *pr = json_object_get(obj, "prompt");
    if (pr && !json_is_null(pr) && !json_is_object(pr))
        return reject(err, "invalid_request",
                      "prompt must be an object {id, version|label, variables}");
    return IFQ_DECODE_OK;
}

ifq_decode_status_t ifq_request_decode(ifq_avro_t *avro, const void *buf, size_t len,
                                       size_t max_bytes, ifq_request_t *req, ifq_reqerr_t *err)
{
    memset(req, 0, sizeof(*req));
    err->code = "invalid_request";
    err->message[0] = '\0';
    if (len == 0) {
        snprintf(err->message, sizeof(err->message), "empty message");
        return IFQ_DECODE_DLQ;
    }
    ifq_encoding_t enc = ifq_envelope_detect(buf, len);
    if (len > IFQ_MAX_PARSE_BYTES) {
        snprintf(err->message, sizeof(err->message),
                 "message of %zu bytes exceeds the hard limit of %u bytes", len,
                 IFQ_MAX_PARSE_BYTES);
        return IFQ_DECODE_DLQ;
    }
    json_t *obj = NULL;
    if (enc == IFQ_ENC_JSON) {
        json_error_t jerr;
        obj = json_loadb(buf, len, 0, &jerr);
        if (!obj) {
            snprintf(err->message, sizeof(err->message), "not valid JSON: %s at line %d column %d",
                     jerr.text, jerr.line, jerr.column);
            return IFQ_DECODE_DLQ;
        }
    } else if (enc == IFQ_ENC_AVRO) {
        char why[256];
        if (!avro) {
            snprintf(err->message, sizeof(err->message), "Avro input is not enabled");
            return IFQ_DECODE_DLQ;
        }
        obj = ifq_avro_decode(avro, IFQ_AVRO_REQUEST, buf, len, why, sizeof(why));
        if (!obj) {
            snprintf(err->message, sizeof(err->message), "undecodable Avro: %s", why);
            return IFQ_DECODE_DLQ;
        }
    } else {
        snprintf(err->message, sizeof(err->message),
                 "neither JSON (first byte '{') nor Avro (0xC3 0x01 single-object or 0x00 "
                 "Confluent framing); first byte 0x%02x",
                 ((const unsigned char *)buf)[0]);
        return IFQ_DECODE_DLQ;
    }

    ifq_decode_status_t st = ifq_request_validate(obj, req, err);
    if (st == IFQ_DECODE_DLQ) {
        json_decref(obj);
        memset(req, 0, sizeof(*req));
        return st;
    }
    req->root = obj;
    req->encoding = enc;
    if (st == IFQ_DECODE_OK && len > max_bytes)
        return reject(err, "request_too_large",
                      "request of %zu bytes exceeds the limit of %zu bytes", len, max_bytes);
    return st;
}

void ifq_request_id(char out[32], const char *topic, int32_t partition, int64_t offset,
                    int64_t timestamp)
{
    uint64_t h = ifq_fnv1a64(topic, strlen(topic), 0);
    h = ifq_fnv1a64(&partition, sizeof(partition), h);
    h = ifq_fnv1a64(&offset, sizeof(offset), h);
    uint64_t h2 = ifq_fnv1a64(&timestamp, sizeof(timestamp), h);
    snprintf(out, 32, "ifq_%016llx%08x", (unsigned long long)h, (unsigned)(h2 & 0xffffffffu));
}

json_t *ifq_result_new(const char *id, const char *custom_id, const char *model_requested,
                       json_t *metadata)
{
    json_t *ext = json_object();
    json_object_set_new(ext, "status", json_string("pending"));
    if (model_requested)
        json_object_set_new(ext, "model_requested", json_string(model_requested));
    json_object_set_new(ext, "metadata", metadata ? json_deep_copy(metadata) : json_object());
    /* Every result carries the whole inferq object (docs/wire-contract.md);
     * the worker fills these in for requests that reached a model. */
    json_object_set_new(ext, "deployment", json_null());
    json_object_set_new(ext, "attempts", json_array());
    json_object_set_new(
        ext, "usage",
        json_pack("{si si si}", "prompt_tokens", 0, "completion_tokens", 0, "total_tokens", 0));
    json_object_set_new(ext, "cost_usd", json_real(0.0));
    json_object_set_new(ext, "timings_ms", json_object());
    json_t *res = json_object();
    json_object_set_new(res, "id", json_string(id));
    json_object_set_new(res, "custom_id", json_string(custom_id));
    json_object_set_new(res, "response", json_null());
    json_object_set_new(res, "error", json_null());
    json_object_set_new(res, "inferq", ext);
    return res;
}

json_t *ifq_result_ext(json_t *result)
{
    return json_object_get(result, "inferq");
}

void ifq_result_set_error(json_t *result, const char *status, const char *code, const char *message)
{
    json_t *e = json_object();
    json_object_set_new(e, "code", json_string(code));
    json_object_set_new(e, "message", json_string(message ? message : code));
    json_object_set_new(result, "error", e);
    json_object_set_new(result, "response", json_null());
    json_object_set_new(ifq_result_ext(result), "status", json_string(status));
}

void ifq_result_set_response(json_t *result, int status_code, const char *request_id, json_t *body)
{
    json_t *r = json_object();
    json_object_set_new(r, "status_code", json_integer(status_code));
    json_object_set_new(r, "request_id", json_string(request_id ? request_id : ""));
    json_object_set_new(r, "body", body ? body : json_object());
    json_object_set_new(result, "response", r);
    json_object_set_new(result, "error", json_null());
    json_object_set_new(ifq_result_ext(result), "status", json_string("succeeded"));
}

char *ifq_json_dump(const json_t *obj, size_t *len)
{
    char *s = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s && len)
        *len = strlen(s);
    return s;
}
