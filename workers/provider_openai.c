/*
 * provider_openai.c - OpenAI-compatible HTTP APIs (OpenAI, vLLM, llama.cpp
 * server, Ollama, TGI, Mistral, Groq, Together ...): the body passes through
 * with the deployment's upstream model name; the response is OpenAI's own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider.h"

static int openai_build(const ifq_deployment_t *dep, ifq_url_kind_t kind, const json_t *body,
                        const char *api_key, ifq_http_req_t *out, ifq_upstream_err_t *err)
{
    memset(out, 0, sizeof(*out));
    /* base_url ends at the API version (".../v1"); the request's url starts
     * with "/v1", which is dropped. */
    const char *path = ifq_url_path(kind) + 3;
    size_t bl = strlen(dep->base_url);
    while (bl && dep->base_url[bl - 1] == '/')
        bl--;
    if (ifq_fmt(out->url, sizeof(out->url), "%.*s%s", (int)bl, dep->base_url, path) != IFQ_OK) {
        snprintf(err->message, sizeof(err->message), "base_url too long");
        return IFQ_ERR_INVALID;
    }
    json_t *copy = json_copy((json_t *)body);
    json_object_set_new(copy, "model", json_string(dep->model));
    out->body = json_dumps(copy, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(copy);
    if (!out->body) {
        snprintf(err->message, sizeof(err->message), "cannot serialise the request body");
        return IFQ_ERR_INVALID;
    }
    out->body_len = strlen(out->body);
    snprintf(out->headers[out->n_headers++], sizeof(out->headers[0]),
             "Content-Type: application/json");
    if (api_key && *api_key)
        snprintf(out->headers[out->n_headers++], sizeof(out->headers[0]),
                 "Authorization: Bearer %s", api_key);
    return IFQ_OK;
}

static json_t *openai_parse(const ifq_deployment_t *dep, ifq_url_kind_t kind, long status,
                            const char *body, size_t len, ifq_upstream_err_t *err)
{
    json_error_t jerr;
    json_t *j = len ? json_loadb(body, len, 0, &jerr) : NULL;
    if (status >= 200 && status < 300) {
        if (json_is_object(j))
            return j;
        json_decref(j);
        err->retryable = 1;
        snprintf(err->type, sizeof(err->type), "malformed_response");
        snprintf(err->message, sizeof(err->message),
                 "HTTP %ld with a body that is not a JSON object (%zu bytes)", status, len);
        return NULL;
    }
    err->retryable = ifq_http_status_retryable(status);
    snprintf(err->type, sizeof(err->type), "http_%ld", status);
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    /* The provider's error message is kept (it explains the failure) but
     * bounded; it never contains our key because we never send it in a body. */
    snprintf(err->message, sizeof(err->message), "HTTP %ld from %s: %.300s", status, dep->name,
             msg ? msg : "no error message");
    json_decref(j);
    return NULL;
}

const ifq_provider_t ifq_provider_openai = {
    .name = "openai",
    .build = openai_build,
    .parse = openai_parse,
    .passthrough = 1,
};
