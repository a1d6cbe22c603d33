/*
 * request.c - requests: the builder, parsing batch lines and Kafka messages,
 * and encoding to the wire (compact JSON, or Avro single-object encoding by
 * libinferq's codec, lib/avro_codec.c, compiled into this library so the
 * bytes are the ones schemas/vectors expect).
 *
 * A request is a jansson object in contract key order (custom_id, method,
 * url, body, then the optional fields as they are set); the builder only
 * checks what the client itself relies on (custom_id) and what JSON cannot
 * hold (invalid UTF-8). Everything else is the broker's to judge, so a bad
 * request comes back as an error result instead of vanishing here.
 */
#include "internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct inferq_request {
    json_t *root;
};

/* ---- shared helpers ------------------------------------------------------ */

static pthread_once_t avro_once = PTHREAD_ONCE_INIT;
static ifq_avro_t *avro_codec;
static char avro_why[256];

static void avro_init(void)
{
    avro_codec = ifq_avro_new(avro_why, sizeof(avro_why));
}

ifq_avro_t *ifqc_avro(const char **why)
{
    pthread_once(&avro_once, avro_init);
    if (why)
        *why = avro_why;
    return avro_codec;
}

void ifqc_errf(char *dst, size_t size, const char *fmt, ...)
{
    if (!dst || size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, size, fmt, ap);
    va_end(ap);
}

const json_t *ifqc_request_json(const inferq_request_t *req)
{
    return req->root;
}

static int custom_id_ok(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    return n >= 1 && n <= IFQC_MAX_CUSTOM_ID;
}

/* ---- construction ------------------------------------------------------- */

inferq_request_t *inferq_request_new(const char *custom_id)
{
    if (!custom_id_ok(custom_id))
        return NULL;
    json_t *root = json_pack("{s:s, s:s, s:s, s:{}}", "custom_id", custom_id, "method", "POST",
                             "url", "/v1/chat/completions", "body");
    if (!root)
        return NULL; /* invalid UTF-8 or no memory */
    inferq_request_t *req = malloc(sizeof(*req));
    if (!req) {
        json_decref(root);
        return NULL;
    }
    req->root = root;
    return req;
}

static inferq_request_t *request_from_object(json_t *root, char *errstr, size_t errstr_size)
{
    const char *cid = json_string_value(json_object_get(root, "custom_id"));
    if (!json_is_object(root) || !custom_id_ok(cid)) {
        ifqc_errf(errstr, errstr_size, "not a batch request line: %s",
                  !json_is_object(root) ? "not a JSON object"
                  : !json_is_string(json_object_get(root, "custom_id"))
                      ? "custom_id is missing"
                      : "custom_id must be 1..512 bytes");
        json_decref(root);
        return NULL;
    }
    inferq_request_t *req = malloc(sizeof(*req));
    if (!req) {
        ifqc_errf(errstr, errstr_size, "out of memory");
        json_decref(root);
        return NULL;
    }
    req->root = root;
    return req;
}

inferq_request_t *inferq_request_from_json(const char *json, size_t len, char *errstr,
                                           size_t errstr_size)
{
    if (!json) {
        ifqc_errf(errstr, errstr_size, "no input");
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (!root) {
        ifqc_errf(errstr, errstr_size, "not JSON: %s (byte %d)", jerr.text, jerr.position);
        return NULL;
    }
    return request_from_object(root, errstr, errstr_size);
}

inferq_request_t *inferq_request_from_bytes(const void *buf, size_t len, char *errstr,
                                            size_t errstr_size)
{
    if (!buf || len == 0) {
        ifqc_errf(errstr, errstr_size, "empty message");
        return NULL;
    }
    if (!ifq_avro_is_framed(buf, len))
        return inferq_request_from_json(buf, len, errstr, errstr_size);
    const char *why = NULL;
    ifq_avro_t *codec = ifqc_avro(&why);
    if (!codec) {
        ifqc_errf(errstr, errstr_size, "avro: %s", why);
        return NULL;
    }
    json_t *root = ifq_avro_decode(codec, IFQ_AVRO_REQUEST, buf, len, errstr, errstr_size);
    return root ? request_from_object(root, errstr, errstr_size) : NULL;
}

void inferq_request_destroy(inferq_request_t *req)
{
    if (!req)
        return;
    json_decref(req->root);
    free(req);
}

const char *inferq_request_custom_id(const inferq_request_t *req)
{
    return req ? json_string_value(json_object_get(req->root, "custom_id")) : NULL;
}

/* ---- the builder -------------------------------------------------------- */

/* Sets obj[key] = v (stolen); INFERQ_ERR_INVALID when v is NULL. */
static int set_new(json_t *obj, const char *key, json_t *v)
{
    if (!obj || !key || !v) {
        json_decref(v);
        return INFERQ_ERR_INVALID;
    }
    return json_object_set_new(obj, key, v) ? INFERQ_ERR_NOMEM : INFERQ_OK;
}

/* The body object, made an object again if a raw line had something else. */
static json_t *body_of(inferq_request_t *req)
{
    json_t *body = json_object_get(req->root, "body");
    if (!json_is_object(body)) {
        json_object_set_new(req->root, "body", json_object());
        body = json_object_get(req->root, "body");
    }
    return body;
}

static json_t *parse_json(const char *text, int want_object)
{
    if (!text)
        return NULL;
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (v && want_object && !json_is_object(v)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

int inferq_request_set_url(inferq_request_t *req, const char *url)
{
    return req ? set_new(req->root, "url", json_string(url)) : INFERQ_ERR_INVALID;
}

int inferq_request_set_model(inferq_request_t *req, const char *model)
{
    return req ? set_new(body_of(req), "model", json_string(model)) : INFERQ_ERR_INVALID;
}

int inferq_request_add_message(inferq_request_t *req, const char *role, const char *content)
{
    if (!req || !role || !content)
        return INFERQ_ERR_INVALID;
    json_t *msg = json_pack("{s:s, s:s}", "role", role, "content", content);
    if (!msg)
        return INFERQ_ERR_INVALID;
    json_t *body = body_of(req);
    json_t *msgs = json_object_get(body, "messages");
    if (!json_is_array(msgs)) {
        json_object_set_new(body, "messages", json_array());
        msgs = json_object_get(body, "messages");
    }
    return json_array_append_new(msgs, msg) ? INFERQ_ERR_NOMEM : INFERQ_OK;
}

int inferq_request_set_param(inferq_request_t *req, const char *key, const char *json_value)
{
    return req ? set_new(body_of(req), key, parse_json(json_value, 0)) : INFERQ_ERR_INVALID;
}

int inferq_request_set_body_json(inferq_request_t *req, const char *json_object)
{
    return req ? set_new(req->root, "body", parse_json(json_object, 1)) : INFERQ_ERR_INVALID;
}

int inferq_request_set_metadata(inferq_request_t *req, const char *key, const char *value)
{
    if (!req || !key || !value)
        return INFERQ_ERR_INVALID;
    json_t *md = json_object_get(req->root, "metadata");
    if (!json_is_object(md)) {
        json_object_set_new(req->root, "metadata", json_object());
        md = json_object_get(req->root, "metadata");
    }
    return set_new(md, key, json_string(value));
}

int inferq_request_set_priority(inferq_request_t *req, inferq_priority_t priority)
{
    static const char *const names[] = {"normal", "high", "low"};
    if (!req || (unsigned)priority > 2)
        return INFERQ_ERR_INVALID;
    return set_new(req->root, "priority", json_string(names[priority]));
}

int inferq_request_set_deadline_ms(inferq_request_t *req, int64_t deadline_ms)
{
    if (!req || deadline_ms < 0)
        return INFERQ_ERR_INVALID;
    if (deadline_ms == 0) {
        json_object_del(req->root, "deadline_ms");
        return INFERQ_OK;
    }
    return set_new(req->root, "deadline_ms", json_integer((json_int_t)deadline_ms));
}

int inferq_request_set_prompt_json(inferq_request_t *req, const char *json_object)
{
    return req ? set_new(req->root, "prompt", parse_json(json_object, 1)) : INFERQ_ERR_INVALID;
}

int inferq_request_set_reply_to(inferq_request_t *req, const char *topic)
{
    return req ? set_new(req->root, "reply_to", json_string(topic)) : INFERQ_ERR_INVALID;
}

/* ---- encoding ----------------------------------------------------------- */

int inferq_request_encode(const inferq_request_t *req, inferq_encoding_t encoding, void **out,
                          size_t *out_len, char *errstr, size_t errstr_size)
{
    if (!out || !out_len)
        return INFERQ_ERR_INVALID;
    *out = NULL;
    *out_len = 0;
    if (!req) {
        ifqc_errf(errstr, errstr_size, "no request");
        return INFERQ_ERR_INVALID;
    }
    return ifqc_encode(req->root, encoding, out, out_len, errstr, errstr_size);
}

int ifqc_encode(const json_t *root, inferq_encoding_t encoding, void **out, size_t *out_len,
                char *errstr, size_t errstr_size)
{
    if (encoding == INFERQ_ENCODING_JSON) {
        char *s = json_dumps(root, JSON_COMPACT);
        if (!s) {
            ifqc_errf(errstr, errstr_size, "out of memory");
            return INFERQ_ERR_NOMEM;
        }
        *out = s;
        *out_len = strlen(s);
        return INFERQ_OK;
    }
    if (encoding != INFERQ_ENCODING_AVRO) {
        ifqc_errf(errstr, errstr_size, "unknown encoding %d", (int)encoding);
        return INFERQ_ERR_INVALID;
    }
    const char *why = NULL;
    ifq_avro_t *codec = ifqc_avro(&why);
    if (!codec) {
        ifqc_errf(errstr, errstr_size, "avro: %s", why);
        return INFERQ_ERR_INVALID;
    }
    if (ifq_avro_encode(codec, IFQ_AVRO_REQUEST, root, out, out_len, errstr, errstr_size))
        return INFERQ_ERR_INVALID;
    return INFERQ_OK;
}

char *inferq_request_to_json(const inferq_request_t *req)
{
    return req ? json_dumps(req->root, JSON_COMPACT) : NULL;
}
