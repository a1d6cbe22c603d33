/*
 * provider_xlate.c - translation helpers shared by the non-OpenAI adapters
 * (see provider_xlate.h). The adapters keep only what differs between
 * dialects; what every translation needs (bounded buffers, the OpenAI
 * request's shape, the OpenAI response's shape, error wording) lives here
 * once.
 */
#include "provider_xlate.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- errors ---------------------------------------------------------- */

static int set_err(ifq_upstream_err_t *err, const char *type, const char *fmt, va_list ap)
{
    err->retryable = 0;
    snprintf(err->type, sizeof(err->type), "%s", type);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    return IFQ_ERR_INVALID;
}

int ifq_xlate_unsupported(ifq_upstream_err_t *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_err(err, "unsupported", fmt, ap);
    va_end(ap);
    return IFQ_ERR_INVALID;
}

int ifq_xlate_invalid(ifq_upstream_err_t *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_err(err, "invalid_request", fmt, ap);
    va_end(ap);
    return IFQ_ERR_INVALID;
}

void ifq_xlate_malformed(const ifq_deployment_t *dep, long status, size_t len, const char *what,
                         ifq_upstream_err_t *err)
{
    err->retryable = 1;
    snprintf(err->type, sizeof(err->type), "malformed_response");
    snprintf(err->message, sizeof(err->message), "HTTP %ld from %s: %s (%zu bytes)", status,
             dep->name, what, len);
}

void ifq_xlate_redact(char *msg, size_t size, const char *secret)
{
    static const char mark[] = "[redacted]";
    size_t sl = secret ? strlen(secret) : 0;
    if (sl < 4 || size == 0)
        return;
    char *p = msg;
    while ((p = strstr(p, secret)) != NULL) {
        size_t tail = strlen(p + sl);
        size_t at = (size_t)(p - msg);
        size_t ml = sizeof(mark) - 1;
        /* Keep the tail that still fits after the mark. */
        if (at + ml >= size) {
            *p = '\0';
            return;
        }
        if (at + ml + tail >= size)
            tail = size - 1 - at - ml;
        memmove(p + ml, p + sl, tail);
        memcpy(p, mark, ml);
        p[ml + tail] = '\0';
        p += ml;
    }
}

void ifq_xlate_http_error(const ifq_deployment_t *dep, long status, const char *type_override,
                          const char *ptype, const char *pmsg, int retryable, const char *secret,
                          ifq_upstream_err_t *err)
{
    err->retryable = retryable;
    if (type_override)
        snprintf(err->type, sizeof(err->type), "%s", type_override);
    else
        snprintf(err->type, sizeof(err->type), "http_%ld", status);
    /* The provider's own words explain the failure, so they are kept, but
     * bounded; they never hold our key because keys travel in headers (and
     * are redacted here should a provider ever echo one). */
    if (ptype && *ptype)
        snprintf(err->message, sizeof(err->message), "HTTP %ld from %s (%.60s): %.300s", status,
                 dep->name, ptype, pmsg ? pmsg : "no error message");
    else
        snprintf(err->message, sizeof(err->message), "HTTP %ld from %s: %.300s", status, dep->name,
                 pmsg ? pmsg : "no error message");
    ifq_xlate_redact(err->message, sizeof(err->message), secret);
}

json_t *ifq_xlate_load(const char *body, size_t len)
{
    if (!body || len == 0)
        return NULL;
    json_error_t jerr;
    json_t *j = json_loadb(body, len, 0, &jerr);
    if (!json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* ---- request assembly ------------------------------------------------- */

int ifq_xlate_url(ifq_http_req_t *out, ifq_upstream_err_t *err, const char *base, const char *fmt,
                  ...)
{
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/')
        bl--;
    char tail[sizeof(out->url)];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tail, sizeof(tail), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tail) ||
        ifq_fmt(out->url, sizeof(out->url), "%.*s%s", (int)bl, base, tail) != IFQ_OK)
        return ifq_xlate_invalid(err, "the provider URL is longer than %zu bytes",
                                 sizeof(out->url) - 1);
    return IFQ_OK;
}

int ifq_xlate_header(ifq_http_req_t *out, ifq_upstream_err_t *err, const char *fmt, ...)
{
    if (out->n_headers >= IFQ_HTTP_MAX_HEADERS)
        return ifq_xlate_invalid(err, "too many HTTP headers for one request (limit %d)",
                                 IFQ_HTTP_MAX_HEADERS);
    char *line = out->headers[out->n_headers];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(out->headers[0]), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(out->headers[0])) {
        /* Never leave half a secret behind, and never print the value. */
        explicit_bzero(line, sizeof(out->headers[0]));
        return ifq_xlate_invalid(err, "an HTTP header is longer than %zu bytes",
                                 sizeof(out->headers[0]) - 1);
    }
    out->n_headers++;
    return IFQ_OK;
}

int ifq_xlate_body(ifq_http_req_t *out, ifq_upstream_err_t *err, json_t *j)
{
    out->body = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (!out->body)
        return ifq_xlate_invalid(err, "cannot serialise the request body");
    out->body_len = strlen(out->body);
    return IFQ_OK;
}

int ifq_xlate_escape(char *dst, size_t size, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    if (size == 0)
        return IFQ_ERR_TOOBIG;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int keep = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                   (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        size_t need = keep ? 1 : 3;
        if (o + need >= size) {
            dst[0] = '\0';
            return IFQ_ERR_TOOBIG;
        }
        if (keep) {
            dst[o++] = (char)*p;
        } else {
            dst[o++] = '%';
            dst[o++] = hex[*p >> 4];
            dst[o++] = hex[*p & 15];
        }
    }
    dst[o] = '\0';
    return IFQ_OK;
}

/* ---- request checks and parameters ------------------------------------ */

static int is_set(const json_t *v)
{
    return v && !json_is_null(v) && !json_is_false(v);
}

int ifq_xlate_check_common(const json_t *body, ifq_url_kind_t kind, const char *provider, int max_n,
                           ifq_upstream_err_t *err)
{
    if (!json_is_object(body))
        return ifq_xlate_invalid(err, "the request body must be a JSON object");
    if (is_set(json_object_get(body, "stream")))
        return ifq_xlate_unsupported(err,
                                     "%s: \"stream\": true is not supported (results are "
                                     "delivered whole)",
                                     provider);
    json_t *n = json_object_get(body, "n");
    if (n && !json_is_null(n)) {
        if (!json_is_integer(n) || json_integer_value(n) < 1)
            return ifq_xlate_invalid(err, "\"n\" must be a positive integer");
        if (json_integer_value(n) > max_n)
            return ifq_xlate_unsupported(err, "%s: \"n\" > %d is not supported", provider, max_n);
    }
    if (is_set(json_object_get(body, "logprobs")) || is_set(json_object_get(body, "top_logprobs")))
        return ifq_xlate_unsupported(err, "%s: \"logprobs\" is not supported", provider);
    if (is_set(json_object_get(body, "audio")))
        return ifq_xlate_unsupported(err, "%s: audio output is not supported", provider);
    json_t *mod = json_object_get(body, "modalities");
    size_t i;
    json_t *m;
    json_array_foreach(mod, i, m)
    {
        if (json_is_string(m) && strcmp(json_string_value(m), "text") != 0)
            return ifq_xlate_unsupported(err, "%s: output modality \"%.32s\" is not supported",
                                         provider, json_string_value(m));
    }
    if (kind == IFQ_URL_COMPLETIONS) {
        if (is_set(json_object_get(body, "echo")))
            return ifq_xlate_unsupported(err, "%s: \"echo\" is not supported", provider);
        json_t *bo = json_object_get(body, "best_of");
        if (json_is_integer(bo) && json_integer_value(bo) > 1)
            return ifq_xlate_unsupported(err, "%s: \"best_of\" is not supported", provider);
        json_t *suffix = json_object_get(body, "suffix");
        if (json_is_string(suffix) && json_string_length(suffix) > 0)
            return ifq_xlate_unsupported(err, "%s: \"suffix\" is not supported", provider);
    }
    return IFQ_OK;
}

json_t *ifq_xlate_messages(const json_t *body, ifq_url_kind_t kind, const char *provider,
                           ifq_upstream_err_t *err)
{
    if (kind == IFQ_URL_COMPLETIONS) {
        json_t *prompt = json_object_get(body, "prompt");
        if (json_is_array(prompt) && json_array_size(prompt) == 1)
            prompt = json_array_get(prompt, 0);
        if (json_is_array(prompt)) {
            ifq_xlate_unsupported(err,
                                  "%s: \"prompt\" must be one string (a batch of prompts "
                                  "is not supported)",
                                  provider);
            return NULL;
        }
        if (!json_is_string(prompt)) {
            ifq_xlate_invalid(err, "\"prompt\" must be a string");
            return NULL;
        }
        return json_pack("[{s:s, s:O}]", "role", "user", "content", prompt);
    }
    json_t *msgs = json_object_get(body, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        ifq_xlate_invalid(err, "\"messages\" must be a non-empty array");
        return NULL;
    }
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        if (!json_is_object(m) || !json_is_string(json_object_get(m, "role"))) {
            ifq_xlate_invalid(err, "messages[%zu] must be an object with a string \"role\"", i);
            return NULL;
        }
    }
    return json_incref(msgs);
}

json_int_t ifq_xlate_max_tokens(const json_t *body, ifq_upstream_err_t *err)
{
    static const char *const names[] = {"max_completion_tokens", "max_tokens"};
    for (size_t i = 0; i < IFQ_ARRAY_LEN(names); i++) {
        json_t *v = json_object_get(body, names[i]);
        if (!v || json_is_null(v))
            continue;
        if (!json_is_integer(v) || json_integer_value(v) < 1) {
            ifq_xlate_invalid(err, "\"%s\" must be a positive integer", names[i]);
            return -1;
        }
        return json_integer_value(v);
    }
    return 0;
}

int ifq_xlate_stop(const json_t *body, json_t **out, ifq_upstream_err_t *err)
{
    *out = NULL;
    json_t *stop = json_object_get(body, "stop");
    if (!stop || json_is_null(stop))
        return IFQ_OK;
    if (json_is_string(stop)) {
        if (json_string_length(stop) > 0)
            *out = json_pack("[O]", stop);
        return IFQ_OK;
    }
    if (!json_is_array(stop))
        return ifq_xlate_invalid(err, "\"stop\" must be a string or an array of strings");
    size_t i;
    json_t *s;
    json_array_foreach(stop, i, s)
    {
        if (!json_is_string(s))
            return ifq_xlate_invalid(err, "\"stop\" must be a string or an array of strings");
    }
    if (json_array_size(stop) > 0)
        *out = json_copy(stop);
    return IFQ_OK;
}

int ifq_xlate_number(json_t *dst, const char *dst_key, const json_t *body, const char *key,
                     ifq_upstream_err_t *err)
{
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v))
        return IFQ_OK;
    if (!json_is_number(v))
        return ifq_xlate_invalid(err, "\"%s\" must be a number", key);
    json_object_set(dst, dst_key, v);
    return IFQ_OK;
}

/* ---- content ----------------------------------------------------------- */

int ifq_xlate_nparts(const json_t *content, ifq_upstream_err_t *err)
{
    if (!content || json_is_null(content))
        return 0;
    if (json_is_string(content))
        return 1;
    if (json_is_array(content))
        return (int)json_array_size(content);
    ifq_xlate_invalid(err, "a message \"content\" must be a string, an array of parts or null");
    return -1;
}

int ifq_xlate_part(const json_t *content, size_t i, const char *provider, ifq_xlate_part_t *part,
                   ifq_upstream_err_t *err)
{
    memset(part, 0, sizeof(*part));
    if (json_is_string(content)) {
        part->text = json_string_value(content);
        part->text_len = json_string_length(content);
        return IFQ_OK;
    }
    json_t *p = json_array_get(content, i);
    const char *type = json_string_value(json_object_get(p, "type"));
    if (!type)
        return ifq_xlate_invalid(err, "a content part has no \"type\"");
    if (strcmp(type, "text") == 0 || strcmp(type, "refusal") == 0) {
        json_t *t = json_object_get(p, type[0] == 't' ? "text" : "refusal");
        if (!json_is_string(t))
            return ifq_xlate_invalid(err, "a \"%s\" content part has no string \"%s\"", type, type);
        part->text = json_string_value(t);
        part->text_len = json_string_length(t);
        return IFQ_OK;
    }
    if (strcmp(type, "image_url") == 0) {
        json_t *iu = json_object_get(p, "image_url");
        /* Both {"url": "..."} and a bare string are seen in the wild. */
        const char *url = json_is_string(iu) ? json_string_value(iu)
                                             : json_string_value(json_object_get(iu, "url"));
        if (!url)
            return ifq_xlate_invalid(err, "an \"image_url\" content part has no url");
        part->is_image = 1;
        part->url = url;
        part->text = "";
        return IFQ_OK;
    }
    return ifq_xlate_unsupported(err, "%s: content parts of type \"%.32s\" are not supported",
                                 provider, type);
}

json_t *ifq_xlate_text(const json_t *content, const char *provider, const char *what,
                       ifq_upstream_err_t *err)
{
    if (json_is_string(content))
        return json_copy((json_t *)content);
    int n = ifq_xlate_nparts(content, err);
    if (n < 0)
        return NULL;
    ifq_xlate_buf_t b = {0};
    for (int i = 0; i < n; i++) {
        ifq_xlate_part_t part;
        if (ifq_xlate_part(content, (size_t)i, provider, &part, err) != IFQ_OK) {
            ifq_xlate_buf_free(&b);
            return NULL;
        }
        if (part.is_image) {
            ifq_xlate_buf_free(&b);
            ifq_xlate_unsupported(err, "%s: images are not supported in %s", provider, what);
            return NULL;
        }
        if (ifq_xlate_buf_add(&b, part.text, part.text_len) != IFQ_OK) {
            ifq_xlate_buf_free(&b);
            ifq_xlate_invalid(err, "%s text too long", what);
            return NULL;
        }
    }
    json_t *s = json_stringn(b.p ? b.p : "", b.len);
    ifq_xlate_buf_free(&b);
    if (!s)
        ifq_xlate_invalid(err, "%s text is not valid UTF-8", what);
    return s;
}

int ifq_xlate_data_url(const char *url, char *mime, size_t mime_size, const char **data)
{
    static const char pre[] = "data:";
    static const char b64[] = ";base64,";
    if (strncmp(url, pre, sizeof(pre) - 1) != 0)
        return -1;
    const char *m = url + sizeof(pre) - 1;
    const char *sep = strstr(m, b64);
    if (!sep || sep == m || (size_t)(sep - m) >= mime_size)
        return -1;
    memcpy(mime, m, (size_t)(sep - m));
    mime[sep - m] = '\0';
    *data = sep + sizeof(b64) - 1;
    return **data ? 0 : -1;
}

void ifq_xlate_merge_turns(json_t *turns, const char *role_key, const char *items_key)
{
    size_t i = 1;
    while (i < json_array_size(turns)) {
        json_t *prev = json_array_get(turns, i - 1), *cur = json_array_get(turns, i);
        const char *pr = json_string_value(json_object_get(prev, role_key));
        const char *cr = json_string_value(json_object_get(cur, role_key));
        if (pr && cr && strcmp(pr, cr) == 0) {
            json_array_extend(json_object_get(prev, items_key), json_object_get(cur, items_key));
            json_array_remove(turns, i);
        } else {
            i++;
        }
    }
}

/* ---- tools --------------------------------------------------------------- */

int ifq_xlate_tools(const json_t *body, const char *provider, const json_t **tools,
                    ifq_upstream_err_t *err)
{
    *tools = NULL;
    json_t *t = json_object_get(body, "tools");
    if (!t || json_is_null(t))
        return IFQ_OK;
    if (!json_is_array(t))
        return ifq_xlate_invalid(err, "\"tools\" must be an array");
    size_t i;
    json_t *tool;
    json_array_foreach(t, i, tool)
    {
        const char *type = json_string_value(json_object_get(tool, "type"));
        if (!type || strcmp(type, "function") != 0)
            return ifq_xlate_unsupported(err, "%s: only tools of type \"function\" are supported",
                                         provider);
        json_t *fn = json_object_get(tool, "function");
        if (!json_is_string(json_object_get(fn, "name")))
            return ifq_xlate_invalid(err, "tools[%zu].function.name must be a string", i);
        json_t *params = json_object_get(fn, "parameters");
        if (params && !json_is_null(params) && !json_is_object(params))
            return ifq_xlate_invalid(err, "tools[%zu].function.parameters must be an object", i);
    }
    if (json_array_size(t) > 0)
        *tools = t;
    return IFQ_OK;
}

void ifq_xlate_tool_fn(const json_t *tool, const char **name, const char **description,
                       const json_t **parameters)
{
    json_t *fn = json_object_get(tool, "function");
    *name = json_string_value(json_object_get(fn, "name"));
    *description = json_string_value(json_object_get(fn, "description"));
    json_t *p = json_object_get(fn, "parameters");
    *parameters = json_is_object(p) ? p : NULL;
}

int ifq_xlate_tool_choice(const json_t *body, ifq_tool_choice_t *tc, const char **name,
                          ifq_upstream_err_t *err)
{
    *tc = IFQ_TC_DEFAULT;
    *name = NULL;
    json_t *c = json_object_get(body, "tool_choice");
    if (!c || json_is_null(c))
        return IFQ_OK;
    if (json_is_string(c)) {
        const char *s = json_string_value(c);
        if (strcmp(s, "auto") == 0)
            *tc = IFQ_TC_AUTO;
        else if (strcmp(s, "none") == 0)
            *tc = IFQ_TC_NONE;
        else if (strcmp(s, "required") == 0)
            *tc = IFQ_TC_REQUIRED;
        else
            return ifq_xlate_invalid(err, "\"tool_choice\" must be auto, none, required or "
                                          "{\"type\":\"function\",...}");
        return IFQ_OK;
    }
    const char *n = json_string_value(json_object_get(json_object_get(c, "function"), "name"));
    if (!n)
        return ifq_xlate_invalid(err, "\"tool_choice\".function.name must be a string");
    *tc = IFQ_TC_NAMED;
    *name = n;
    return IFQ_OK;
}

json_t *ifq_xlate_tool_call_args(const json_t *call, const char **id, const char **name,
                                 ifq_upstream_err_t *err)
{
    json_t *fn = json_object_get(call, "function");
    *id = json_string_value(json_object_get(call, "id"));
    *name = json_string_value(json_object_get(fn, "name"));
    if (!*id || !*name) {
        ifq_xlate_invalid(err, "a tool call needs a string \"id\" and \"function.name\"");
        return NULL;
    }
    json_t *a = json_object_get(fn, "arguments");
    if (!a || json_is_null(a) || (json_is_string(a) && json_string_length(a) == 0))
        return json_object();
    if (json_is_object(a)) /* lenient: some clients send the object itself */
        return json_copy(a);
    json_error_t jerr;
    json_t *o = json_is_string(a)
                    ? json_loadb(json_string_value(a), json_string_length(a), 0, &jerr)
                    : NULL;
    if (!json_is_object(o)) {
        json_decref(o);
        ifq_xlate_invalid(err, "the arguments of tool call %.64s are not a JSON object", *id);
        return NULL;
    }
    return o;
}

/* ---- responses ---------------------------------------------------------- */

int ifq_xlate_buf_add(ifq_xlate_buf_t *b, const char *s, size_t n)
{
    if (n > IFQ_XLATE_MAX_TEXT - b->len)
        return IFQ_ERR_TOOBIG;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n + 1)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np)
            return IFQ_ERR_NOMEM;
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return IFQ_OK;
}

void ifq_xlate_buf_free(ifq_xlate_buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void ifq_xlate_id(char *out, size_t size, const char *prefix)
{
    static atomic_uint_fast64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t n = atomic_fetch_add(&counter, 1);
    uint64_t t = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
    uint64_t h = ifq_fnv1a64(&t, sizeof(t), (uint64_t)getpid());
    snprintf(out, size, "%s%016llx%08llx", prefix, (unsigned long long)h,
             (unsigned long long)(n & 0xffffffffULL));
}

json_t *ifq_xlate_tool_call(const char *id, const char *name, const json_t *input)
{
    char *args = input ? json_dumps(input, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_t *tc = json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", id, "type", "function", "function",
                           "name", name, "arguments", args ? args : "{}");
    free(args);
    return tc;
}

json_t *ifq_xlate_choice(ifq_url_kind_t kind, size_t index, const char *text, size_t text_len,
                         json_t *tool_calls, const char *finish_reason)
{
    if (!text)
        text = "";
    int has_tools = json_array_size(tool_calls) > 0;
    if (kind == IFQ_URL_COMPLETIONS) {
        json_decref(tool_calls);
        return json_pack("{s:s%, s:I, s:n, s:s}", "text", text, text_len, "index",
                         (json_int_t)index, "logprobs", "finish_reason", finish_reason);
    }
    json_t *msg = json_pack("{s:s}", "role", "assistant");
    if (text_len == 0 && has_tools)
        json_object_set_new(msg, "content", json_null());
    else
        json_object_set_new(msg, "content", json_stringn(text, text_len));
    if (has_tools)
        json_object_set_new(msg, "tool_calls", tool_calls);
    else
        json_decref(tool_calls);
    return json_pack("{s:I, s:o, s:n, s:s}", "index", (json_int_t)index, "message", msg, "logprobs",
                     "finish_reason", finish_reason);
}

json_t *ifq_xlate_usage(json_int_t prompt, json_int_t completion, json_int_t cached,
                        json_int_t reasoning)
{
    json_t *u = json_pack("{s:I, s:I, s:I}", "prompt_tokens", prompt, "completion_tokens",
                          completion, "total_tokens", prompt + completion);
    if (cached > 0)
        json_object_set_new(u, "prompt_tokens_details",
                            json_pack("{s:I}", "cached_tokens", cached));
    if (reasoning > 0)
        json_object_set_new(u, "completion_tokens_details",
                            json_pack("{s:I}", "reasoning_tokens", reasoning));
    return u;
}

json_t *ifq_xlate_response(ifq_url_kind_t kind, const char *id, const char *model, json_t *choices,
                           json_t *usage)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:o, s:o}", "id", id, "object",
                     kind == IFQ_URL_COMPLETIONS ? "text_completion" : "chat.completion", "created",
                     (json_int_t)time(NULL), "model", model, "choices", choices, "usage", usage);
}

json_int_t ifq_xlate_int(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
    return n > 0 ? n : 0;
}

json_t *ifq_xlate_turns(const ifq_xlate_dialect_t *d, const json_t *msgs, json_t **system,
                        ifq_upstream_err_t *err)
{
    json_t *out = json_array(), *sys = json_array();
    size_t i;
    json_t *m;
    *system = NULL;
    json_array_foreach(msgs, i, m)
    {
        const char *role = json_string_value(json_object_get(m, "role"));
        json_t *content = json_object_get(m, "content");
        if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
            json_t *t = ifq_xlate_text(content, d->provider, "system messages", err);
            if (!t)
                goto fail;
            json_array_append_new(sys, t);
            continue;
        }
        json_t *blocks = json_array();
        const char *trole = "user";
        int rc = IFQ_OK;
        if (strcmp(role, "user") == 0) {
            rc = d->content(content, blocks, 1, err);
        } else if (strcmp(role, "assistant") == 0) {
            trole = "assistant";
            rc = d->content(content, blocks, 0, err);
            size_t k;
            json_t *call;
            json_array_foreach(json_object_get(m, "tool_calls"), k, call)
            {
                if (rc != IFQ_OK)
                    break;
                const char *id, *name;
                json_t *input = ifq_xlate_tool_call_args(call, &id, &name, err);
                if (!input) {
                    rc = IFQ_ERR_INVALID;
                    break;
                }
                json_array_append_new(blocks, d->tool_use(id, name, input));
            }
        } else if (strcmp(role, "tool") == 0) {
            const char *id = json_string_value(json_object_get(m, "tool_call_id"));
            json_t *t = NULL;
            if (!id)
                rc = ifq_xlate_invalid(err,
                                       "messages[%zu]: a tool message needs "
                                       "\"tool_call_id\"",
                                       i);
            else if (!(t = ifq_xlate_text(content, d->provider, "tool results", err)))
                rc = IFQ_ERR_INVALID;
            else
                json_array_append_new(blocks, d->tool_result(id, t));
            json_decref(t);
        } else {
            rc = ifq_xlate_unsupported(err, "%s: messages with role \"%.32s\" are not supported",
                                       d->provider, role);
        }
        if (rc != IFQ_OK) {
            json_decref(blocks);
            goto fail;
        }
        /* A turn left without blocks (empty text) would be rejected. */
        if (json_array_size(blocks) == 0) {
            json_decref(blocks);
            continue;
        }
        json_array_append_new(out, json_pack("{s:s, s:o}", "role", trole, "content", blocks));
    }
    ifq_xlate_merge_turns(out, "role", "content");
    if (json_array_size(out) == 0) {
        ifq_xlate_invalid(err, "%s: the request has no user or assistant message with content",
                          d->provider);
        goto fail;
    }
    *system = sys;
    return out;
fail:
    json_decref(sys);
    json_decref(out);
    return NULL;
}
