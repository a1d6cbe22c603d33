/*
 * provider_anthropic.c - the Anthropic Messages API (POST {base_url}/messages,
 * "x-api-key" and "anthropic-version" headers).
 *
 * Request: system/developer messages become "system"; user, assistant and
 * tool messages become user/assistant turns of content blocks (text, image,
 * tool_use, tool_result), adjacent turns of one role merged; max_tokens
 * (required by Anthropic; IFQ_XLATE_DEFAULT_MAX_TOKENS when absent), stop →
 * stop_sequences, temperature, top_p, tools/tool_choice/parallel_tool_calls
 * and user → metadata.user_id. Answer: text blocks joined into
 * message.content, tool_use blocks into tool_calls, stop_reason mapped to an
 * OpenAI finish_reason, usage input/output tokens (cache reads and writes
 * counted as prompt tokens). Errors {"type":"error","error":{"type",
 * "message"}}: 429, 5xx and 529 overloaded_error are retryable.
 * Chat and completions only; embeddings do not exist on this API.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider.h"
#include "provider_xlate.h"

#define ANTHROPIC_VERSION "2023-06-01"
#define P "anthropic"

/* Appends the blocks of one OpenAI content to blocks (skipping empty text). */
static int content_blocks(const json_t *content, json_t *blocks, int allow_images,
                          ifq_upstream_err_t *err)
{
    int n = ifq_xlate_nparts(content, err);
    if (n < 0)
        return IFQ_ERR_INVALID;
    for (int i = 0; i < n; i++) {
        ifq_xlate_part_t part;
        if (ifq_xlate_part(content, (size_t)i, P, &part, err) != IFQ_OK)
            return IFQ_ERR_INVALID;
        if (!part.is_image) {
            /* Anthropic rejects empty text blocks. */
            if (part.text_len > 0)
                json_array_append_new(blocks, json_pack("{s:s, s:s%}", "type", "text", "text",
                                                        part.text, part.text_len));
            continue;
        }
        if (!allow_images)
            return ifq_xlate_unsupported(err, P ": images are only supported in user messages");
        char mime[64];
        const char *data;
        json_t *src;
        if (ifq_xlate_data_url(part.url, mime, sizeof(mime), &data) == 0)
            src = json_pack("{s:s, s:s, s:s}", "type", "base64", "media_type", mime, "data", data);
        else if (strncmp(part.url, "https://", 8) == 0 || strncmp(part.url, "http://", 7) == 0)
            src = json_pack("{s:s, s:s}", "type", "url", "url", part.url);
        else
            return ifq_xlate_unsupported(err, P ": an image must be a base64 data: URL or an "
                                                "http(s) URL");
        json_array_append_new(blocks, json_pack("{s:s, s:o}", "type", "image", "source", src));
    }
    return IFQ_OK;
}

static json_t *tool_use_block(const char *id, const char *name, json_t *input)
{
    return json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use", "id", id, "name", name, "input",
                     input);
}

static json_t *tool_result_block(const char *id, json_t *text)
{
    return json_pack("{s:s, s:s, s:O}", "type", "tool_result", "tool_use_id", id, "content", text);
}

static const ifq_xlate_dialect_t dialect = {P, content_blocks, tool_use_block, tool_result_block};

/* Translates the conversation; system text goes to *system (a new string or
 * NULL): several system messages become one prompt. */
static json_t *translate_messages(const json_t *msgs, json_t **system, ifq_upstream_err_t *err)
{
    json_t *texts = NULL;
    json_t *out = ifq_xlate_turns(&dialect, msgs, &texts, err);
    *system = NULL;
    if (!out)
        return NULL;
    ifq_xlate_buf_t sys = {0};
    size_t i;
    json_t *t;
    json_array_foreach(texts, i, t)
    {
        if ((sys.len && ifq_xlate_buf_add(&sys, "\n\n", 2) != IFQ_OK) ||
            ifq_xlate_buf_add(&sys, json_string_value(t), json_string_length(t)) != IFQ_OK) {
            ifq_xlate_invalid(err, "system prompt too long");
            ifq_xlate_buf_free(&sys);
            json_decref(texts);
            json_decref(out);
            return NULL;
        }
    }
    if (sys.len)
        *system = json_stringn(sys.p, sys.len);
    ifq_xlate_buf_free(&sys);
    json_decref(texts);
    return out;
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
    json_t *out = json_array();
    size_t i;
    json_t *tool;
    json_array_foreach(tools, i, tool)
    {
        const char *name, *desc;
        const json_t *params;
        ifq_xlate_tool_fn(tool, &name, &desc, &params);
        json_t *t = json_pack("{s:s}", "name", name);
        if (desc)
            json_object_set_new(t, "description", json_string(desc));
        json_object_set_new(t, "input_schema",
                            params ? json_deep_copy(params)
                                   : json_pack("{s:s, s:{}}", "type", "object", "properties"));
        json_array_append_new(out, t);
    }
    json_object_set_new(req, "tools", out);
    json_t *choice = NULL;
    switch (tc) {
    case IFQ_TC_DEFAULT:
        break;
    case IFQ_TC_AUTO:
        choice = json_pack("{s:s}", "type", "auto");
        break;
    case IFQ_TC_NONE:
        choice = json_pack("{s:s}", "type", "none");
        break;
    case IFQ_TC_REQUIRED:
        choice = json_pack("{s:s}", "type", "any");
        break;
    case IFQ_TC_NAMED:
        choice = json_pack("{s:s, s:s}", "type", "tool", "name", tc_name);
        break;
    }
    if (json_is_false(json_object_get(body, "parallel_tool_calls")) && tc != IFQ_TC_NONE) {
        if (!choice)
            choice = json_pack("{s:s}", "type", "auto");
        json_object_set_new(choice, "disable_parallel_tool_use", json_true());
    }
    if (choice)
        json_object_set_new(req, "tool_choice", choice);
    return IFQ_OK;
}

static int anthropic_build(const ifq_deployment_t *dep, ifq_url_kind_t kind, const json_t *body,
                           const char *api_key, ifq_http_req_t *out, ifq_upstream_err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (kind == IFQ_URL_EMBEDDINGS)
        return ifq_xlate_unsupported(err, P ": embeddings are not supported (the Messages API "
                                            "has no embeddings endpoint)");
    if (ifq_xlate_check_common(body, kind, P, 1, err) != IFQ_OK)
        return IFQ_ERR_INVALID;
    json_t *rf = json_object_get(body, "response_format");
    const char *rft = json_string_value(json_object_get(rf, "type"));
    if (rft && strcmp(rft, "text") != 0)
        return ifq_xlate_unsupported(err, P ": \"response_format\" %.32s is not supported", rft);
    json_int_t max_tokens = ifq_xlate_max_tokens(body, err);
    if (max_tokens < 0)
        return IFQ_ERR_INVALID;
    json_t *stop;
    if (ifq_xlate_stop(body, &stop, err) != IFQ_OK)
        return IFQ_ERR_INVALID;
    json_t *msgs = ifq_xlate_messages(body, kind, P, err);
    json_t *system = NULL;
    json_t *amsgs = msgs ? translate_messages(msgs, &system, err) : NULL;
    json_decref(msgs);
    if (!amsgs) {
        json_decref(stop);
        return IFQ_ERR_INVALID;
    }
    json_t *req = json_pack("{s:s, s:I}", "model", dep->model, "max_tokens",
                            max_tokens ? max_tokens : (json_int_t)IFQ_XLATE_DEFAULT_MAX_TOKENS);
    if (system)
        json_object_set_new(req, "system", system);
    json_object_set_new(req, "messages", amsgs);
    if (stop)
        json_object_set_new(req, "stop_sequences", stop);
    const char *user = json_string_value(json_object_get(body, "user"));
    if (user)
        json_object_set_new(req, "metadata", json_pack("{s:s}", "user_id", user));
    int rc = IFQ_OK;
    if (ifq_xlate_number(req, "temperature", body, "temperature", err) != IFQ_OK ||
        ifq_xlate_number(req, "top_p", body, "top_p", err) != IFQ_OK ||
        translate_tools(body, req, err) != IFQ_OK)
        rc = IFQ_ERR_INVALID;
    if (rc == IFQ_OK)
        rc = ifq_xlate_url(out, err, dep->base_url, "/messages");
    if (rc != IFQ_OK) {
        json_decref(req);
        return rc;
    }
    if ((rc = ifq_xlate_body(out, err, req)) != IFQ_OK)
        return rc;
    rc = ifq_xlate_header(out, err, "Content-Type: application/json");
    if (rc == IFQ_OK)
        rc = ifq_xlate_header(out, err, "anthropic-version: %s",
                              dep->api_version ? dep->api_version : ANTHROPIC_VERSION);
    if (rc == IFQ_OK && api_key && *api_key)
        rc = ifq_xlate_header(out, err, "x-api-key: %s", api_key);
    if (rc != IFQ_OK) {
        free(out->body);
        out->body = NULL;
    }
    return rc;
}

static const char *finish_reason(const char *stop_reason)
{
    if (!stop_reason)
        return "stop";
    if (strcmp(stop_reason, "max_tokens") == 0 ||
        strcmp(stop_reason, "model_context_window_exceeded") == 0)
        return "length";
    if (strcmp(stop_reason, "tool_use") == 0)
        return "tool_calls";
    if (strcmp(stop_reason, "refusal") == 0)
        return "content_filter";
    return "stop"; /* end_turn, stop_sequence, pause_turn */
}

static json_t *anthropic_parse(const ifq_deployment_t *dep, ifq_url_kind_t kind, long status,
                               const char *body, size_t len, ifq_upstream_err_t *err)
{
    json_t *j = ifq_xlate_load(body, len);
    if (status < 200 || status >= 300) {
        json_t *e = json_object_get(j, "error");
        const char *type = json_string_value(json_object_get(e, "type"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        int retry = ifq_http_status_retryable(status);
        if (type && (strcmp(type, "overloaded_error") == 0 || strcmp(type, "api_error") == 0 ||
                     strcmp(type, "rate_limit_error") == 0 || strcmp(type, "timeout_error") == 0))
            retry = 1;
        const char *key = dep->api_key_env ? getenv(dep->api_key_env) : NULL;
        ifq_xlate_http_error(dep, status, NULL, type, msg, retry, key, err);
        json_decref(j);
        return NULL;
    }
    json_t *content = json_object_get(j, "content");
    if (!json_is_array(content)) {
        json_decref(j);
        ifq_xlate_malformed(dep, status, len, "not an Anthropic message (no content array)", err);
        return NULL;
    }
    ifq_xlate_buf_t text = {0};
    json_t *calls = json_array();
    size_t i;
    json_t *b;
    json_array_foreach(content, i, b)
    {
        const char *type = json_string_value(json_object_get(b, "type"));
        if (!type)
            continue;
        if (strcmp(type, "text") == 0) {
            json_t *t = json_object_get(b, "text");
            if (json_is_string(t) &&
                ifq_xlate_buf_add(&text, json_string_value(t), json_string_length(t)) != IFQ_OK)
                break;
        } else if (strcmp(type, "tool_use") == 0) {
            const char *id = json_string_value(json_object_get(b, "id"));
            const char *name = json_string_value(json_object_get(b, "name"));
            if (id && name)
                json_array_append_new(calls,
                                      ifq_xlate_tool_call(id, name, json_object_get(b, "input")));
        }
        /* thinking, redacted_thinking and server tool blocks have no OpenAI
         * counterpart in a chat.completion and are left out. */
    }
    json_t *usage = json_object_get(j, "usage");
    json_int_t cache_read = ifq_xlate_int(usage, "cache_read_input_tokens");
    json_int_t prompt = ifq_xlate_int(usage, "input_tokens") + cache_read +
                        ifq_xlate_int(usage, "cache_creation_input_tokens");
    const char *fr = finish_reason(json_string_value(json_object_get(j, "stop_reason")));
    json_t *choices = json_array();
    json_array_append_new(choices, ifq_xlate_choice(kind, 0, text.p, text.len, calls, fr));
    const char *id = json_string_value(json_object_get(j, "id"));
    char gen[48];
    if (!id) {
        ifq_xlate_id(gen, sizeof(gen), "chatcmpl-");
        id = gen;
    }
    const char *model = json_string_value(json_object_get(j, "model"));
    json_t *out = ifq_xlate_response(
        kind, id, model ? model : dep->model, choices,
        ifq_xlate_usage(prompt, ifq_xlate_int(usage, "output_tokens"), cache_read, 0));
    ifq_xlate_buf_free(&text);
    json_decref(j);
    if (!out)
        ifq_xlate_malformed(dep, status, len, "the answer could not be translated", err);
    return out;
}

const ifq_provider_t ifq_provider_anthropic = {
    .name = "anthropic",
    .build = anthropic_build,
    .parse = anthropic_parse,
};
