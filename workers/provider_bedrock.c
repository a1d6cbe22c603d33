/*
 * provider_bedrock.c - Amazon Bedrock's Converse API
 * (POST {base_url}/model/{modelId}/converse), signed with AWS Signature
 * Version 4 (service "bedrock", the deployment's region).
 *
 * Credentials come from the environment variables the deployment names
 * (aws_access_key_env, aws_secret_key_env, aws_session_token_env), by
 * default AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN
 * (the session token is optional and sent as X-Amz-Security-Token). When the
 * deployment has an api_key_env (a Bedrock API key), it is sent as
 * "Authorization: Bearer" instead of a signature. The request is signed here
 * (sigv4.c explains why not by libcurl), so aws_sigv4/userpwd stay empty
 * and the secret key never leaves this function.
 *
 * Request: system/developer messages → "system" blocks; user/assistant/tool
 * messages → user/assistant turns of content blocks (text, image,
 * toolUse, toolResult), adjacent turns merged (Converse requires
 * alternating roles); inferenceConfig {maxTokens, temperature, topP,
 * stopSequences}; tools → toolConfig. Answer: output.message.content text
 * and toolUse blocks, stopReason mapped, usage inputTokens/outputTokens.
 * Errors {"message"} classified by status (the exception name travels in
 * the x-amzn-ErrorType header, which parse does not see, or in "__type"):
 * ThrottlingException, ServiceUnavailable, InternalServer, ModelTimeout and
 * ModelNotReady are retryable; ValidationException, AccessDenied,
 * ResourceNotFound and ModelError are not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "provider.h"
#include "provider_xlate.h"
#include "sigv4.h"

#define P "bedrock"

static const char *image_format(const char *mime)
{
    static const char *const fmts[][2] = {
        {"image/png", "png"}, {"image/jpeg", "jpeg"}, {"image/jpg", "jpeg"},
        {"image/gif", "gif"}, {"image/webp", "webp"},
    };
    for (size_t i = 0; i < IFQ_ARRAY_LEN(fmts); i++)
        if (strcmp(mime, fmts[i][0]) == 0)
            return fmts[i][1];
    return NULL;
}

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
            /* Converse rejects blank text blocks. */
            if (part.text_len > 0)
                json_array_append_new(blocks,
                                      json_pack("{s:s%}", "text", part.text, part.text_len));
            continue;
        }
        char mime[64];
        const char *data, *fmt = NULL;
        if (allow_images && ifq_xlate_data_url(part.url, mime, sizeof(mime), &data) == 0)
            fmt = image_format(mime);
        if (!fmt)
            return ifq_xlate_unsupported(err, P ": images must be base64 data: URLs of png, jpeg, "
                                                "gif or webp in user messages");
        json_array_append_new(blocks, json_pack("{s:{s:s, s:{s:s}}}", "image", "format", fmt,
                                                "source", "bytes", data));
    }
    return IFQ_OK;
}

static json_t *tool_use_block(const char *id, const char *name, json_t *input)
{
    return json_pack("{s:{s:s, s:s, s:o}}", "toolUse", "toolUseId", id, "name", name, "input",
                     input);
}

static json_t *tool_result_block(const char *id, json_t *text)
{
    return json_pack("{s:{s:s, s:[{s:O}]}}", "toolResult", "toolUseId", id, "content", "text",
                     text);
}

static const ifq_xlate_dialect_t dialect = {P, content_blocks, tool_use_block, tool_result_block};

/* Translates the conversation; system texts go to *system as Converse's
 * [{"text": ...}] (NULL when there are none). */
static json_t *translate_messages(const json_t *msgs, json_t **system, ifq_upstream_err_t *err)
{
    json_t *texts = NULL;
    json_t *out = ifq_xlate_turns(&dialect, msgs, &texts, err);
    *system = NULL;
    if (!out)
        return NULL;
    json_t *sys = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(texts, i, t)
    {
        if (json_string_length(t) > 0)
            json_array_append_new(sys, json_pack("{s:O}", "text", t));
    }
    json_decref(texts);
    if (json_array_size(sys) > 0)
        *system = sys;
    else
        json_decref(sys);
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
    /* Converse has no "none": the tools are then not offered at all. */
    if (!tools || tc == IFQ_TC_NONE)
        return IFQ_OK;
    json_t *specs = json_array();
    size_t i;
    json_t *tool;
    json_array_foreach(tools, i, tool)
    {
        const char *name, *desc;
        const json_t *params;
        ifq_xlate_tool_fn(tool, &name, &desc, &params);
        json_t *spec = json_pack("{s:s}", "name", name);
        if (desc)
            json_object_set_new(spec, "description", json_string(desc));
        json_object_set_new(
            spec, "inputSchema",
            json_pack("{s:o}", "json",
                      params ? json_deep_copy(params)
                             : json_pack("{s:s, s:{}}", "type", "object", "properties")));
        json_array_append_new(specs, json_pack("{s:o}", "toolSpec", spec));
    }
    json_t *cfg = json_pack("{s:o}", "tools", specs);
    if (tc == IFQ_TC_AUTO)
        json_object_set_new(cfg, "toolChoice", json_pack("{s:{}}", "auto"));
    else if (tc == IFQ_TC_REQUIRED)
        json_object_set_new(cfg, "toolChoice", json_pack("{s:{}}", "any"));
    else if (tc == IFQ_TC_NAMED)
        json_object_set_new(cfg, "toolChoice", json_pack("{s:{s:s}}", "tool", "name", tc_name));
    json_object_set_new(req, "toolConfig", cfg);
    return IFQ_OK;
}

/* Adds Host, X-Amz-Date, X-Amz-Security-Token and Authorization headers
 * that sign the request already in out (url, body). */
static int sign(const ifq_deployment_t *dep, ifq_http_req_t *out, ifq_upstream_err_t *err)
{
    const char *ak_env = dep->aws_access_key_env ? dep->aws_access_key_env : "AWS_ACCESS_KEY_ID";
    const char *sk_env =
        dep->aws_secret_key_env ? dep->aws_secret_key_env : "AWS_SECRET_ACCESS_KEY";
    const char *tk_env =
        dep->aws_session_token_env ? dep->aws_session_token_env : "AWS_SESSION_TOKEN";
    const char *ak = getenv(ak_env), *sk = getenv(sk_env), *tok = getenv(tk_env);
    if (!ak || !*ak || !sk || !*sk)
        return ifq_xlate_invalid(err,
                                 P ": no AWS credentials: set %.64s and %.64s (or an "
                                   "api_key_env with a Bedrock API key)",
                                 ak_env, sk_env);
    if (!dep->region)
        return ifq_xlate_invalid(err, P ": deployment %s has no region", dep->name);
    const char *hs = strstr(out->url, "://");
    hs = hs ? hs + 3 : out->url;
    const char *path = strchr(hs, '/');
    size_t hl = path ? (size_t)(path - hs) : strlen(hs);
    char host[256];
    if (hl == 0 || hl >= sizeof(host) || strchr(path ? path : "", '?'))
        return ifq_xlate_invalid(err, P ": cannot sign the URL of deployment %s", dep->name);
    memcpy(host, hs, hl);
    host[hl] = '\0';
    char date[17];
    ifq_sigv4_date((int64_t)time(NULL), date);
    ifq_sigv4_header_t h[4] = {
        {"Content-Type", "application/json"},
        {"Host", host},
        {"X-Amz-Date", date},
        {"X-Amz-Security-Token", tok},
    };
    size_t nh = tok && *tok ? 4 : 3;
    char auth[400];
    if (ifq_sigv4_authorization("POST", path ? path : "/", "", h, nh, out->body, out->body_len,
                                dep->region, "bedrock", ak, sk, date, auth, sizeof(auth)) != 0)
        return ifq_xlate_invalid(err, P ": cannot sign the request (a credential, region or URL "
                                        "is too long)");
    /* curl would send the same Host; sending it ourselves guarantees that
     * the header signed is the header sent. */
    int rc = ifq_xlate_header(out, err, "Host: %s", host);
    if (rc == IFQ_OK)
        rc = ifq_xlate_header(out, err, "X-Amz-Date: %s", date);
    if (rc == IFQ_OK && nh == 4) {
        rc = ifq_xlate_header(out, err, "X-Amz-Security-Token: %s", tok);
        if (rc != IFQ_OK)
            ifq_xlate_invalid(err,
                              P ": the session token in %.64s is longer than an HTTP "
                                "header may be here (%zu bytes)",
                              tk_env, sizeof(out->headers[0]) - 24);
    }
    if (rc == IFQ_OK)
        rc = ifq_xlate_header(out, err, "Authorization: %s", auth);
    explicit_bzero(auth, sizeof(auth));
    return rc;
}

static int bedrock_build(const ifq_deployment_t *dep, ifq_url_kind_t kind, const json_t *body,
                         const char *api_key, ifq_http_req_t *out, ifq_upstream_err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (kind == IFQ_URL_EMBEDDINGS)
        return ifq_xlate_unsupported(err, P ": embeddings are not supported (Converse has no "
                                            "embeddings; Titan/Cohere embeddings use "
                                            "InvokeModel)");
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
    json_t *bmsgs = msgs ? translate_messages(msgs, &system, err) : NULL;
    json_decref(msgs);
    if (!bmsgs) {
        json_decref(stop);
        return IFQ_ERR_INVALID;
    }
    json_t *req = json_pack("{s:o}", "messages", bmsgs);
    if (system)
        json_object_set_new(req, "system", system);
    json_t *ic = json_object();
    if (max_tokens > 0)
        json_object_set_new(ic, "maxTokens", json_integer(max_tokens));
    if (stop)
        json_object_set_new(ic, "stopSequences", stop);
    int rc = IFQ_OK;
    if (ifq_xlate_number(ic, "temperature", body, "temperature", err) != IFQ_OK ||
        ifq_xlate_number(ic, "topP", body, "top_p", err) != IFQ_OK ||
        translate_tools(body, req, err) != IFQ_OK)
        rc = IFQ_ERR_INVALID;
    if (json_object_size(ic) > 0)
        json_object_set(req, "inferenceConfig", ic);
    json_decref(ic);
    char model[512];
    if (rc == IFQ_OK && ifq_xlate_escape(model, sizeof(model), dep->model) != IFQ_OK)
        rc = ifq_xlate_invalid(err, P ": model id too long");
    if (rc == IFQ_OK)
        rc = ifq_xlate_url(out, err, dep->base_url, "/model/%s/converse", model);
    if (rc != IFQ_OK) {
        json_decref(req);
        return rc;
    }
    if ((rc = ifq_xlate_body(out, err, req)) != IFQ_OK)
        return rc;
    rc = ifq_xlate_header(out, err, "Content-Type: application/json");
    if (rc == IFQ_OK) {
        if (api_key && *api_key)
            rc = ifq_xlate_header(out, err, "Authorization: Bearer %s", api_key);
        else
            rc = sign(dep, out, err);
    }
    if (rc != IFQ_OK) {
        explicit_bzero(out->headers, sizeof(out->headers));
        out->n_headers = 0;
        free(out->body);
        out->body = NULL;
    }
    return rc;
}

static const char *finish_reason(const char *r)
{
    if (!r)
        return "stop";
    if (strcmp(r, "max_tokens") == 0 || strcmp(r, "model_context_window_exceeded") == 0)
        return "length";
    if (strcmp(r, "tool_use") == 0)
        return "tool_calls";
    if (strcmp(r, "guardrail_intervened") == 0 || strcmp(r, "content_filtered") == 0)
        return "content_filter";
    return "stop"; /* end_turn, stop_sequence */
}

/* The exception an error status stands for in the Converse reference. */
static const char *exception_of(long status)
{
    switch (status) {
    case 400:
        return "ValidationException";
    case 403:
        return "AccessDeniedException";
    case 404:
        return "ResourceNotFoundException";
    case 408:
        return "ModelTimeoutException";
    case 424:
        return "ModelErrorException";
    case 429:
        return "ThrottlingException";
    case 500:
        return "InternalServerException";
    case 503:
        return "ServiceUnavailableException";
    default:
        return NULL;
    }
}

static json_t *bedrock_parse(const ifq_deployment_t *dep, ifq_url_kind_t kind, long status,
                             const char *body, size_t len, ifq_upstream_err_t *err)
{
    json_t *j = ifq_xlate_load(body, len);
    if (status < 200 || status >= 300) {
        const char *msg = json_string_value(json_object_get(j, "message"));
        if (!msg)
            msg = json_string_value(json_object_get(j, "Message"));
        /* "__type" may be "ThrottlingException", "ns#ThrottlingException" or
         * "ThrottlingException:http://..."; keep the bare name. */
        const char *t = json_string_value(json_object_get(j, "__type"));
        char name[64] = "";
        if (t) {
            const char *hash = strrchr(t, '#');
            t = hash ? hash + 1 : t;
            size_t n = strcspn(t, ":");
            snprintf(name, sizeof(name), "%.*s", (int)(n < 63 ? n : 63), t);
        } else if (exception_of(status)) {
            snprintf(name, sizeof(name), "%s", exception_of(status));
        }
        static const char *const retry[] = {
            "ThrottlingException",     "ServiceUnavailableException",
            "InternalServerException", "ModelTimeoutException",
            "ModelNotReadyException",  "ServiceQuotaExceededException"};
        int retryable = ifq_http_status_retryable(status);
        for (size_t i = 0; t && i < IFQ_ARRAY_LEN(retry); i++)
            if (strcmp(name, retry[i]) == 0)
                retryable = 1;
        if (t && (strcmp(name, "ValidationException") == 0 ||
                  strcmp(name, "AccessDeniedException") == 0 ||
                  strcmp(name, "ResourceNotFoundException") == 0))
            retryable = 0;
        ifq_xlate_http_error(
            dep, status, NULL, name, msg, retryable,
            getenv(dep->aws_secret_key_env ? dep->aws_secret_key_env : "AWS_SECRET_ACCESS_KEY"),
            err);
        json_decref(j);
        return NULL;
    }
    json_t *content =
        json_object_get(json_object_get(json_object_get(j, "output"), "message"), "content");
    if (!json_is_array(content)) {
        json_decref(j);
        ifq_xlate_malformed(dep, status, len, "not a Converse answer (no output.message.content)",
                            err);
        return NULL;
    }
    ifq_xlate_buf_t text = {0};
    json_t *calls = json_array();
    size_t i;
    json_t *b;
    json_array_foreach(content, i, b)
    {
        json_t *t = json_object_get(b, "text");
        json_t *tu = json_object_get(b, "toolUse");
        if (json_is_string(t)) {
            if (ifq_xlate_buf_add(&text, json_string_value(t), json_string_length(t)) != IFQ_OK)
                break;
        } else if (json_is_object(tu)) {
            const char *id = json_string_value(json_object_get(tu, "toolUseId"));
            const char *name = json_string_value(json_object_get(tu, "name"));
            if (id && name)
                json_array_append_new(calls,
                                      ifq_xlate_tool_call(id, name, json_object_get(tu, "input")));
        }
        /* reasoningContent and other blocks are left out. */
    }
    json_t *usage = json_object_get(j, "usage");
    json_int_t cache_read = ifq_xlate_int(usage, "cacheReadInputTokens");
    json_int_t prompt = ifq_xlate_int(usage, "inputTokens") + cache_read +
                        ifq_xlate_int(usage, "cacheWriteInputTokens");
    const char *fr = finish_reason(json_string_value(json_object_get(j, "stopReason")));
    json_t *choices = json_array();
    json_array_append_new(choices, ifq_xlate_choice(kind, 0, text.p, text.len, calls, fr));
    char id[48];
    ifq_xlate_id(id, sizeof(id), kind == IFQ_URL_COMPLETIONS ? "cmpl-" : "chatcmpl-");
    json_t *out = ifq_xlate_response(
        kind, id, dep->model, choices,
        ifq_xlate_usage(prompt, ifq_xlate_int(usage, "outputTokens"), cache_read, 0));
    ifq_xlate_buf_free(&text);
    json_decref(j);
    if (!out)
        ifq_xlate_malformed(dep, status, len, "the answer could not be translated", err);
    return out;
}

const ifq_provider_t ifq_provider_bedrock = {
    .name = "bedrock",
    .build = bedrock_build,
    .parse = bedrock_parse,
};
