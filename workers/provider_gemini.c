/*
 * provider_gemini.c - the Google Gemini API (generativelanguage.googleapis.com):
 * POST {base_url}/models/{model}:generateContent for chat and completions,
 * :embedContent / :batchEmbedContents for embeddings, the key in the
 * "x-goog-api-key" header (never in the URL, where it would end up in
 * proxy and access logs).
 *
 * Request: system/developer messages → systemInstruction; user → "user"
 * and assistant → "model" turns of parts (text, inlineData images,
 * functionCall); tool messages → functionResponse parts (the function name
 * is looked up from the assistant's tool call with that id); adjacent turns
 * of one role merged. generationConfig gets maxOutputTokens, stopSequences,
 * temperature, topP, candidateCount (n), presence/frequency penalties,
 * seed and response_format (responseMimeType/responseJsonSchema); tools →
 * functionDeclarations, tool_choice → toolConfig.functionCallingConfig.
 * Answer: one choice per candidate (text parts joined, "thought" parts left
 * out, functionCall parts → tool_calls), finishReason mapped, usageMetadata
 * → usage. A prompt blocked before any candidate is a "content_filter"
 * error. Errors {"error":{"code","message","status"}}: RESOURCE_EXHAUSTED,
 * UNAVAILABLE, INTERNAL and DEADLINE_EXCEEDED are retryable.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider.h"
#include "provider_xlate.h"

#define P "gemini"
#define GEMINI_MAX_N 8

/* The model id without a "models/" prefix, percent-encoded. */
static int model_segment(const ifq_deployment_t *dep, char *buf, size_t size,
                         ifq_upstream_err_t *err)
{
    const char *m = dep->model;
    if (strncmp(m, "models/", 7) == 0)
        m += 7;
    if (ifq_xlate_escape(buf, size, m) != IFQ_OK)
        return ifq_xlate_invalid(err, "gemini model name too long");
    return IFQ_OK;
}

static int add_headers(ifq_http_req_t *out, const char *api_key, ifq_upstream_err_t *err)
{
    int rc = ifq_xlate_header(out, err, "Content-Type: application/json");
    if (rc == IFQ_OK && api_key && *api_key)
        rc = ifq_xlate_header(out, err, "x-goog-api-key: %s", api_key);
    return rc;
}

/* A copy of a JSON Schema without the keywords Gemini's OpenAPI-subset
 * Schema rejects ("additionalProperties", "$schema", "strict"). */
static json_t *schema_copy(const json_t *s)
{
    if (json_is_array(s)) {
        json_t *a = json_array();
        size_t i;
        json_t *v;
        json_array_foreach(s, i, v)
        {
            json_array_append_new(a, schema_copy(v));
        }
        return a;
    }
    if (!json_is_object(s))
        return json_copy((json_t *)s);
    json_t *o = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)s, k, v)
    {
        if (strcmp(k, "additionalProperties") == 0 || strcmp(k, "$schema") == 0 ||
            strcmp(k, "strict") == 0)
            continue;
        json_object_set_new(o, k, schema_copy(v));
    }
    return o;
}

static int parts_of(const json_t *content, json_t *parts, int allow_images, ifq_upstream_err_t *err)
{
    int n = ifq_xlate_nparts(content, err);
    if (n < 0)
        return IFQ_ERR_INVALID;
    for (int i = 0; i < n; i++) {
        ifq_xlate_part_t part;
        if (ifq_xlate_part(content, (size_t)i, P, &part, err) != IFQ_OK)
            return IFQ_ERR_INVALID;
        if (!part.is_image) {
            if (part.text_len > 0)
                json_array_append_new(parts, json_pack("{s:s%}", "text", part.text, part.text_len));
            continue;
        }
        char mime[64];
        const char *data;
        if (!allow_images || ifq_xlate_data_url(part.url, mime, sizeof(mime), &data) != 0)
            return ifq_xlate_unsupported(err, P ": images must be base64 data: URLs in user "
                                                "messages (http URLs are not fetched)");
        json_array_append_new(
            parts, json_pack("{s:{s:s, s:s}}", "inlineData", "mimeType", mime, "data", data));
    }
    return IFQ_OK;
}

/* A tool result as the object functionResponse.response wants: the content
 * itself when it is a JSON object, else {"content": text}. */
static json_t *tool_response(const json_t *text)
{
    json_error_t jerr;
    json_t *o = json_loadb(json_string_value(text), json_string_length(text), 0, &jerr);
    if (json_is_object(o))
        return o;
    json_decref(o);
    return json_pack("{s:O}", "content", text);
}

static json_t *translate_messages(const json_t *msgs, json_t **system, ifq_upstream_err_t *err)
{
    json_t *out = json_array(), *sys = json_array();
    json_t *names = json_object(); /* tool_call_id -> function name */
    size_t i;
    json_t *m;
    *system = NULL;
    json_array_foreach(msgs, i, m)
    {
        const char *role = json_string_value(json_object_get(m, "role"));
        json_t *content = json_object_get(m, "content");
        json_t *parts = json_array();
        const char *grole = "user";
        int rc = IFQ_OK;
        if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
            json_t *t = ifq_xlate_text(content, P, "system messages", err);
            if (!t)
                rc = IFQ_ERR_INVALID;
            else if (json_string_length(t) > 0)
                json_array_append_new(sys, json_pack("{s:o}", "text", t));
            else
                json_decref(t);
            json_decref(parts);
            if (rc != IFQ_OK)
                goto fail;
            continue;
        }
        if (strcmp(role, "user") == 0) {
            rc = parts_of(content, parts, 1, err);
        } else if (strcmp(role, "assistant") == 0) {
            grole = "model";
            rc = parts_of(content, parts, 0, err);
            size_t k;
            json_t *call;
            json_array_foreach(json_object_get(m, "tool_calls"), k, call)
            {
                if (rc != IFQ_OK)
                    break;
                const char *id, *name;
                json_t *args = ifq_xlate_tool_call_args(call, &id, &name, err);
                if (!args) {
                    rc = IFQ_ERR_INVALID;
                    break;
                }
                json_object_set_new(names, id, json_string(name));
                json_array_append_new(
                    parts, json_pack("{s:{s:s, s:o}}", "functionCall", "name", name, "args", args));
            }
        } else if (strcmp(role, "tool") == 0) {
            const char *id = json_string_value(json_object_get(m, "tool_call_id"));
            const char *name = id ? json_string_value(json_object_get(names, id)) : NULL;
            json_t *t = NULL;
            if (!name)
                rc = ifq_xlate_invalid(err,
                                       "messages[%zu]: a tool message must answer a tool "
                                       "call of an earlier assistant message "
                                       "(tool_call_id)",
                                       i);
            else if (!(t = ifq_xlate_text(content, P, "tool results", err)))
                rc = IFQ_ERR_INVALID;
            else
                json_array_append_new(parts, json_pack("{s:{s:s, s:o}}", "functionResponse", "name",
                                                       name, "response", tool_response(t)));
            json_decref(t);
        } else {
            rc = ifq_xlate_unsupported(err, P ": messages with role \"%.32s\" are not supported",
                                       role);
        }
        if (rc != IFQ_OK) {
            json_decref(parts);
            goto fail;
        }
        if (json_array_size(parts) == 0) {
            json_decref(parts);
            continue;
        }
        json_array_append_new(out, json_pack("{s:s, s:o}", "role", grole, "parts", parts));
    }
    ifq_xlate_merge_turns(out, "role", "parts");
    if (json_array_size(out) == 0) {
        ifq_xlate_invalid(err, P ": the request has no user or assistant message with content");
        goto fail;
    }
    if (json_array_size(sys) > 0)
        *system = json_pack("{s:O}", "parts", sys);
    json_decref(sys);
    json_decref(names);
    return out;
fail:
    json_decref(sys);
    json_decref(names);
    json_decref(out);
    return NULL;
}

static int translate_tools(const json_t *body, json_t *req, ifq_upstream_err_t *err)
{
    const json_t *tools;
    ifq_tool_choice_t tc;
    const char *tc_name;
    if (ifq_xlate_tools(body, P, &tools, err) != IFQ_OK ||
        ifq_xlate_tool_choice(body, &tc, &tc_name, err) != IFQ_OK)
        return IFQ_ERR_INVALID;
    if (!tools)
        return IFQ_OK;
    json_t *decls = json_array();
    size_t i;
    json_t *tool;
    json_array_foreach(tools, i, tool)
    {
        const char *name, *desc;
        const json_t *params;
        ifq_xlate_tool_fn(tool, &name, &desc, &params);
        json_t *d = json_pack("{s:s}", "name", name);
        if (desc)
            json_object_set_new(d, "description", json_string(desc));
        if (params)
            json_object_set_new(d, "parameters", schema_copy(params));
        json_array_append_new(decls, d);
    }
    json_object_set_new(req, "tools", json_pack("[{s:o}]", "functionDeclarations", decls));
    json_t *fcc = NULL;
    switch (tc) {
    case IFQ_TC_DEFAULT:
        break;
    case IFQ_TC_AUTO:
        fcc = json_pack("{s:s}", "mode", "AUTO");
        break;
    case IFQ_TC_NONE:
        fcc = json_pack("{s:s}", "mode", "NONE");
        break;
    case IFQ_TC_REQUIRED:
        fcc = json_pack("{s:s}", "mode", "ANY");
        break;
    case IFQ_TC_NAMED:
        fcc = json_pack("{s:s, s:[s]}", "mode", "ANY", "allowedFunctionNames", tc_name);
        break;
    }
    if (fcc)
        json_object_set_new(req, "toolConfig", json_pack("{s:o}", "functionCallingConfig", fcc));
    return IFQ_OK;
}

static int generation_config(const json_t *body, json_t *req, ifq_upstream_err_t *err)
{
    json_t *gc = json_object();
    json_int_t max_tokens = ifq_xlate_max_tokens(body, err);
    json_t *stop = NULL;
    int rc = IFQ_OK;
    if (max_tokens < 0 || ifq_xlate_stop(body, &stop, err) != IFQ_OK ||
        ifq_xlate_number(gc, "temperature", body, "temperature", err) != IFQ_OK ||
        ifq_xlate_number(gc, "topP", body, "top_p", err) != IFQ_OK ||
        ifq_xlate_number(gc, "presencePenalty", body, "presence_penalty", err) != IFQ_OK ||
        ifq_xlate_number(gc, "frequencyPenalty", body, "frequency_penalty", err) != IFQ_OK ||
        ifq_xlate_number(gc, "seed", body, "seed", err) != IFQ_OK) {
        rc = IFQ_ERR_INVALID;
        goto out;
    }
    if (max_tokens > 0)
        json_object_set_new(gc, "maxOutputTokens", json_integer(max_tokens));
    if (stop) {
        json_object_set_new(gc, "stopSequences", stop);
        stop = NULL;
    }
    json_t *n = json_object_get(body, "n");
    if (json_is_integer(n) && json_integer_value(n) > 1)
        json_object_set(gc, "candidateCount", n);
    json_t *rf = json_object_get(body, "response_format");
    const char *rft = json_string_value(json_object_get(rf, "type"));
    if (rft && strcmp(rft, "json_object") == 0) {
        json_object_set_new(gc, "responseMimeType", json_string("application/json"));
    } else if (rft && strcmp(rft, "json_schema") == 0) {
        json_t *schema = json_object_get(json_object_get(rf, "json_schema"), "schema");
        json_object_set_new(gc, "responseMimeType", json_string("application/json"));
        if (json_is_object(schema))
            json_object_set(gc, "responseJsonSchema", schema);
    } else if (rft && strcmp(rft, "text") != 0) {
        rc = ifq_xlate_unsupported(err, P ": \"response_format\" %.32s is not supported", rft);
        goto out;
    }
    if (json_object_size(gc) > 0)
        json_object_set(req, "generationConfig", gc);
out:
    json_decref(stop);
    json_decref(gc);
    return rc;
}

/* ---- embeddings ---------------------------------------------------------- */

static int embed_build(const ifq_deployment_t *dep, const json_t *body, const char *api_key,
                       ifq_http_req_t *out, ifq_upstream_err_t *err)
{
    json_t *input = json_object_get(body, "input");
    int single = json_is_string(input);
    if (!single && (!json_is_array(input) || json_array_size(input) == 0))
        return ifq_xlate_invalid(err, "\"input\" must be a string or a non-empty array of "
                                      "strings");
    size_t i;
    json_t *s;
    json_array_foreach(input, i, s)
    {
        if (!json_is_string(s))
            return ifq_xlate_unsupported(err, P ": embeddings \"input\" must be text (token "
                                                "arrays are not supported)");
    }
    const char *fmt = json_string_value(json_object_get(body, "encoding_format"));
    /* parse() does not see the request, so it could not know to encode the
     * answer; saying so beats answering floats to a client that asked for
     * base64. */
    if (fmt && strcmp(fmt, "base64") == 0)
        return ifq_xlate_unsupported(err, P ": \"encoding_format\": \"base64\" is not "
                                            "supported (use \"float\")");
    if (fmt && strcmp(fmt, "float") != 0)
        return ifq_xlate_invalid(err, "\"encoding_format\" must be \"float\" or \"base64\"");
    json_t *dims = json_object_get(body, "dimensions");
    if (dims && !json_is_null(dims) && (!json_is_integer(dims) || json_integer_value(dims) < 1))
        return ifq_xlate_invalid(err, "\"dimensions\" must be a positive integer");
    char model[256];
    if (model_segment(dep, model, sizeof(model), err) != IFQ_OK)
        return IFQ_ERR_INVALID;
    json_t *req;
    if (single) {
        req = json_pack("{s:{s:[{s:O}]}}", "content", "parts", "text", input);
        if (json_is_integer(dims))
            json_object_set(req, "outputDimensionality", dims);
    } else {
        char name[300];
        snprintf(name, sizeof(name), "models/%s", model);
        json_t *reqs = json_array();
        json_array_foreach(input, i, s)
        {
            json_t *r =
                json_pack("{s:s, s:{s:[{s:O}]}}", "model", name, "content", "parts", "text", s);
            if (json_is_integer(dims))
                json_object_set(r, "outputDimensionality", dims);
            json_array_append_new(reqs, r);
        }
        req = json_pack("{s:o}", "requests", reqs);
    }
    int rc = ifq_xlate_url(out, err, dep->base_url, "/models/%s:%s", model,
                           single ? "embedContent" : "batchEmbedContents");
    if (rc != IFQ_OK) {
        json_decref(req);
        return rc;
    }
    if ((rc = ifq_xlate_body(out, err, req)) != IFQ_OK)
        return rc;
    if ((rc = add_headers(out, api_key, err)) != IFQ_OK) {
        free(out->body);
        out->body = NULL;
    }
    return rc;
}

static json_t *embed_parse(const ifq_deployment_t *dep, long status, const json_t *j, size_t len,
                           ifq_upstream_err_t *err)
{
    json_t *list = json_object_get(j, "embeddings");
    json_t *one = json_object_get(j, "embedding");
    json_t *data = json_array();
    size_t n = one ? 1 : json_array_size(list);
    for (size_t i = 0; i < n; i++) {
        json_t *e = one ? one : json_array_get(list, i);
        json_t *values = json_object_get(e, "values");
        size_t k;
        json_t *v;
        int ok = json_is_array(values);
        json_array_foreach(values, k, v)
        {
            ok = ok && json_is_number(v);
        }
        json_t *emb = ok ? json_copy(values) : NULL;
        if (!emb) {
            json_decref(data);
            ifq_xlate_malformed(dep, status, len, "an embedding has no numeric \"values\"", err);
            return NULL;
        }
        json_array_append_new(data, json_pack("{s:s, s:I, s:o}", "object", "embedding", "index",
                                              (json_int_t)i, "embedding", emb));
    }
    if (n == 0) {
        json_decref(data);
        ifq_xlate_malformed(dep, status, len, "no \"embedding\" or \"embeddings\" in the answer",
                            err);
        return NULL;
    }
    /* The embedding endpoints report no usage (some versions report
     * usageMetadata.promptTokenCount); 0 then, so cost stays honest. */
    json_int_t tokens = ifq_xlate_int(json_object_get(j, "usageMetadata"), "promptTokenCount");
    return json_pack("{s:s, s:o, s:s, s:{s:I, s:I}}", "object", "list", "data", data, "model",
                     dep->model, "usage", "prompt_tokens", tokens, "total_tokens", tokens);
}

/* ---- build / parse ------------------------------------------------------- */

static int gemini_build(const ifq_deployment_t *dep, ifq_url_kind_t kind, const json_t *body,
                        const char *api_key, ifq_http_req_t *out, ifq_upstream_err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(body))
        return ifq_xlate_invalid(err, "the request body must be a JSON object");
    if (kind == IFQ_URL_EMBEDDINGS)
        return embed_build(dep, body, api_key, out, err);
    if (ifq_xlate_check_common(body, kind, P, GEMINI_MAX_N, err) != IFQ_OK)
        return IFQ_ERR_INVALID;
    json_t *msgs = ifq_xlate_messages(body, kind, P, err);
    json_t *system = NULL;
    json_t *contents = msgs ? translate_messages(msgs, &system, err) : NULL;
    json_decref(msgs);
    if (!contents)
        return IFQ_ERR_INVALID;
    json_t *req = json_pack("{s:o}", "contents", contents);
    if (system)
        json_object_set_new(req, "systemInstruction", system);
    char model[256];
    int rc = IFQ_OK;
    if (generation_config(body, req, err) != IFQ_OK || translate_tools(body, req, err) != IFQ_OK ||
        model_segment(dep, model, sizeof(model), err) != IFQ_OK)
        rc = IFQ_ERR_INVALID;
    if (rc == IFQ_OK)
        rc = ifq_xlate_url(out, err, dep->base_url, "/models/%s:generateContent", model);
    if (rc != IFQ_OK) {
        json_decref(req);
        return rc;
    }
    if ((rc = ifq_xlate_body(out, err, req)) != IFQ_OK)
        return rc;
    if ((rc = add_headers(out, api_key, err)) != IFQ_OK) {
        free(out->body);
        out->body = NULL;
    }
    return rc;
}

static const char *finish_reason(const char *r, int has_calls)
{
    if (!r || strcmp(r, "STOP") == 0)
        return has_calls ? "tool_calls" : "stop";
    if (strcmp(r, "MAX_TOKENS") == 0)
        return "length";
    if (strcmp(r, "SAFETY") == 0 || strcmp(r, "RECITATION") == 0 || strcmp(r, "BLOCKLIST") == 0 ||
        strcmp(r, "PROHIBITED_CONTENT") == 0 || strcmp(r, "SPII") == 0 ||
        strcmp(r, "IMAGE_SAFETY") == 0)
        return "content_filter";
    return has_calls ? "tool_calls" : "stop"; /* LANGUAGE, OTHER, MALFORMED_FUNCTION_CALL ... */
}

static int retryable_status(const char *s)
{
    static const char *const retry[] = {"RESOURCE_EXHAUSTED", "UNAVAILABLE", "INTERNAL",
                                        "DEADLINE_EXCEEDED", "ABORTED"};
    for (size_t i = 0; s && i < IFQ_ARRAY_LEN(retry); i++)
        if (strcmp(s, retry[i]) == 0)
            return 1;
    return 0;
}

static json_t *gemini_parse(const ifq_deployment_t *dep, ifq_url_kind_t kind, long status,
                            const char *body, size_t len, ifq_upstream_err_t *err)
{
    json_t *j = ifq_xlate_load(body, len);
    const char *key = dep->api_key_env ? getenv(dep->api_key_env) : NULL;
    if (status < 200 || status >= 300) {
        json_t *e = json_object_get(j, "error");
        const char *gs = json_string_value(json_object_get(e, "status"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        /* Gemini says when to come back in a RetryInfo detail, not in a
         * Retry-After header; keep it where a person reads it. */
        const char *delay = NULL;
        size_t i;
        json_t *det;
        json_array_foreach(json_object_get(e, "details"), i, det)
        {
            if (!delay)
                delay = json_string_value(json_object_get(det, "retryDelay"));
        }
        char with_delay[400];
        if (delay) {
            snprintf(with_delay, sizeof(with_delay), "%.300s (retry in %.16s)",
                     msg ? msg : "no error message", delay);
            msg = with_delay;
        }
        ifq_xlate_http_error(dep, status, NULL, gs, msg,
                             ifq_http_status_retryable(status) || retryable_status(gs), key, err);
        json_decref(j);
        return NULL;
    }
    if (!j) {
        ifq_xlate_malformed(dep, status, len, "the body is not a JSON object", err);
        return NULL;
    }
    if (kind == IFQ_URL_EMBEDDINGS) {
        json_t *out = embed_parse(dep, status, j, len, err);
        json_decref(j);
        return out;
    }
    json_t *cands = json_object_get(j, "candidates");
    if (json_array_size(cands) == 0) {
        const char *block =
            json_string_value(json_object_get(json_object_get(j, "promptFeedback"), "blockReason"));
        if (block) {
            err->retryable = 0;
            snprintf(err->type, sizeof(err->type), "content_filter");
            snprintf(err->message, sizeof(err->message),
                     "HTTP %ld from %s: the prompt was blocked (%.64s)", status, dep->name, block);
        } else {
            ifq_xlate_malformed(dep, status, len, "no candidates in the answer", err);
        }
        json_decref(j);
        return NULL;
    }
    json_t *choices = json_array();
    size_t ci;
    json_t *c;
    json_array_foreach(cands, ci, c)
    {
        ifq_xlate_buf_t text = {0};
        json_t *calls = json_array();
        size_t pi;
        json_t *part;
        json_array_foreach(json_object_get(json_object_get(c, "content"), "parts"), pi, part)
        {
            json_t *t = json_object_get(part, "text");
            json_t *fc = json_object_get(part, "functionCall");
            if (json_is_string(t) && !json_is_true(json_object_get(part, "thought"))) {
                if (ifq_xlate_buf_add(&text, json_string_value(t), json_string_length(t)) != IFQ_OK)
                    break;
            } else if (json_is_object(fc) && json_is_string(json_object_get(fc, "name"))) {
                /* Gemini's calls may carry no id; OpenAI clients need one to
                 * answer, so one is made from the candidate and position. */
                const char *id = json_string_value(json_object_get(fc, "id"));
                char gen[48];
                if (!id) {
                    snprintf(gen, sizeof(gen), "call_%zu_%zu", ci, json_array_size(calls));
                    id = gen;
                }
                json_array_append_new(
                    calls, ifq_xlate_tool_call(id, json_string_value(json_object_get(fc, "name")),
                                               json_object_get(fc, "args")));
            }
        }
        json_t *idx = json_object_get(c, "index");
        size_t index = json_is_integer(idx) && json_integer_value(idx) >= 0
                           ? (size_t)json_integer_value(idx)
                           : ci;
        const char *fr = finish_reason(json_string_value(json_object_get(c, "finishReason")),
                                       json_array_size(calls) > 0);
        json_array_append_new(choices, ifq_xlate_choice(kind, index, text.p, text.len, calls, fr));
        ifq_xlate_buf_free(&text);
    }
    json_t *um = json_object_get(j, "usageMetadata");
    json_int_t thoughts = ifq_xlate_int(um, "thoughtsTokenCount");
    json_int_t prompt =
        ifq_xlate_int(um, "promptTokenCount") + ifq_xlate_int(um, "toolUsePromptTokenCount");
    json_t *usage = ifq_xlate_usage(prompt, ifq_xlate_int(um, "candidatesTokenCount") + thoughts,
                                    ifq_xlate_int(um, "cachedContentTokenCount"), thoughts);
    const char *rid = json_string_value(json_object_get(j, "responseId"));
    char id[96];
    if (rid)
        snprintf(id, sizeof(id), "chatcmpl-%.80s", rid);
    else
        ifq_xlate_id(id, sizeof(id), "chatcmpl-");
    const char *mv = json_string_value(json_object_get(j, "modelVersion"));
    json_t *out = ifq_xlate_response(kind, id, mv ? mv : dep->model, choices, usage);
    json_decref(j);
    if (!out)
        ifq_xlate_malformed(dep, status, len, "the answer could not be translated", err);
    return out;
}

const ifq_provider_t ifq_provider_gemini = {
    .name = "gemini",
    .build = gemini_build,
    .parse = gemini_parse,
};
