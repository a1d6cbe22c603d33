/*
 * result.c - results as the client hands them out: decoded once (JSON or
 * Avro), with every accessor's answer worked out at decode time so that the
 * accessors are plain field reads, safe to call from any thread.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

struct inferq_result {
    json_t *root;
    char *line;      /* the whole result, compact JSON */
    char *body_json; /* response.body, compact JSON, or NULL */
    const char *custom_id, *id, *status, *code, *message, *content, *deployment;
    int http_status;
    int64_t usage[3];
    double cost;
};

static const char *str_at(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static int64_t int_at(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

/* The first answer's text of a chat or completions body. */
static const char *first_content(const json_t *body)
{
    const json_t *choice = json_array_get(json_object_get(body, "choices"), 0);
    const char *s =
        json_string_value(json_object_get(json_object_get(choice, "message"), "content"));
    return s ? s : str_at(choice, "text");
}

/* Takes root (a result object with a custom_id). */
static inferq_result_t *result_from_json(json_t *root, char *errstr, size_t errstr_size)
{
    const char *cid = str_at(root, "custom_id");
    if (!json_is_object(root) || !cid || !*cid) {
        ifqc_errf(errstr, errstr_size, "not a result: %s",
                  json_is_object(root) ? "custom_id is missing" : "not a JSON object");
        json_decref(root);
        return NULL;
    }
    inferq_result_t *r = calloc(1, sizeof(*r));
    if (!r || !(r->line = json_dumps(root, JSON_COMPACT))) {
        free(r);
        json_decref(root);
        ifqc_errf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    r->root = root;
    r->custom_id = cid;
    r->id = str_at(root, "id") ? str_at(root, "id") : "";
    const json_t *resp = json_object_get(root, "response");
    const json_t *err = json_object_get(root, "error");
    const json_t *ext = json_object_get(root, "inferq");
    r->code = json_is_object(err) ? str_at(err, "code") : NULL;
    if (json_is_object(err) && !r->code)
        r->code = "unknown";
    r->message = r->code ? str_at(err, "message") : NULL;
    if (r->code && !r->message)
        r->message = "";
    r->status = str_at(ext, "status");
    if (!r->status)
        r->status = r->code ? "failed" : "succeeded";
    if (json_is_object(resp)) {
        r->http_status = (int)int_at(resp, "status_code");
        const json_t *body = json_object_get(resp, "body");
        if (body)
            r->body_json = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        r->content = first_content(body);
    }
    r->deployment = str_at(ext, "deployment");
    const json_t *usage = json_object_get(ext, "usage");
    r->usage[0] = int_at(usage, "prompt_tokens");
    r->usage[1] = int_at(usage, "completion_tokens");
    r->usage[2] = int_at(usage, "total_tokens");
    r->cost = json_number_value(json_object_get(ext, "cost_usd"));
    return r;
}

inferq_result_t *inferq_result_from_bytes(const void *buf, size_t len, char *errstr,
                                          size_t errstr_size)
{
    if (!buf || len == 0) {
        ifqc_errf(errstr, errstr_size, "empty message");
        return NULL;
    }
    json_t *root;
    if (ifq_avro_is_framed(buf, len)) {
        const char *why = NULL;
        ifq_avro_t *codec = ifqc_avro(&why);
        if (!codec) {
            ifqc_errf(errstr, errstr_size, "avro: %s", why);
            return NULL;
        }
        root = ifq_avro_decode(codec, IFQ_AVRO_RESULT, buf, len, errstr, errstr_size);
    } else {
        json_error_t jerr;
        root = json_loadb(buf, len, 0, &jerr);
        if (!root)
            ifqc_errf(errstr, errstr_size, "not JSON: %s (byte %d)", jerr.text, jerr.position);
    }
    return root ? result_from_json(root, errstr, errstr_size) : NULL;
}

inferq_result_t *ifqc_result_local(const char *custom_id, const char *code, const char *message)
{
    json_t *root = json_pack("{s:s, s:s, s:n, s:{s:s, s:s}, s:{s:s}}", "id", "", "custom_id",
                             custom_id, "response", "error", "code", code, "message", message,
                             "inferq", "status", "failed");
    return root ? result_from_json(root, NULL, 0) : NULL;
}

void inferq_result_free(inferq_result_t *r)
{
    if (!r)
        return;
    json_decref(r->root);
    free(r->line);
    free(r->body_json);
    free(r);
}

const char *inferq_result_custom_id(const inferq_result_t *r)
{
    return r ? r->custom_id : NULL;
}

const char *inferq_result_id(const inferq_result_t *r)
{
    return r ? r->id : NULL;
}

const char *inferq_result_status(const inferq_result_t *r)
{
    return r ? r->status : NULL;
}

int inferq_result_ok(const inferq_result_t *r)
{
    return r && strcmp(r->status, "succeeded") == 0;
}

const char *inferq_result_error_code(const inferq_result_t *r)
{
    return r ? r->code : NULL;
}

const char *inferq_result_error_message(const inferq_result_t *r)
{
    return r ? r->message : NULL;
}

int inferq_result_http_status(const inferq_result_t *r)
{
    return r ? r->http_status : 0;
}

const char *inferq_result_body_json(const inferq_result_t *r)
{
    return r ? r->body_json : NULL;
}

const char *inferq_result_content(const inferq_result_t *r)
{
    return r ? r->content : NULL;
}

const char *inferq_result_deployment(const inferq_result_t *r)
{
    return r ? r->deployment : NULL;
}

void inferq_result_usage(const inferq_result_t *r, int64_t *prompt_tokens,
                         int64_t *completion_tokens, int64_t *total_tokens)
{
    if (prompt_tokens)
        *prompt_tokens = r ? r->usage[0] : 0;
    if (completion_tokens)
        *completion_tokens = r ? r->usage[1] : 0;
    if (total_tokens)
        *total_tokens = r ? r->usage[2] : 0;
}

double inferq_result_cost_usd(const inferq_result_t *r)
{
    return r ? r->cost : 0.0;
}

const char *inferq_result_json(const inferq_result_t *r)
{
    return r ? r->line : NULL;
}
