/*
 * provider_azure.c - Azure OpenAI: the OpenAI body and answer, addressed to
 * a deployment (".../openai/deployments/{deployment}/chat/completions
 * ?api-version=...") and authenticated with an "api-key" header.
 *
 * The deployment's `model` is the Azure deployment name; `base_url` is the
 * resource endpoint (https://NAME.openai.azure.com, with or without a
 * trailing "/openai"); `api_version` is required by the config. The body is
 * passed through without "model" (the deployment in the URL decides).
 * Errors are OpenAI-shaped; Azure's content filter ("code":
 * "content_filter") and context-length refusals get their own error types
 * so that failover can tell them apart from other 400s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider.h"
#include "provider_xlate.h"

static int azure_build(const ifq_deployment_t *dep, ifq_url_kind_t kind, const json_t *body,
                       const char *api_key, ifq_http_req_t *out, ifq_upstream_err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(body))
        return ifq_xlate_invalid(err, "the request body must be a JSON object");
    if (!dep->api_version)
        return ifq_xlate_invalid(err, "azure deployment %s has no api_version", dep->name);
    char depname[256], version[128];
    if (ifq_xlate_escape(depname, sizeof(depname), dep->model) != IFQ_OK ||
        ifq_xlate_escape(version, sizeof(version), dep->api_version) != IFQ_OK)
        return ifq_xlate_invalid(err, "azure deployment name or api_version too long");
    /* base_url may already end in "/openai" (the form Azure's portal shows). */
    size_t bl = strlen(dep->base_url);
    while (bl && dep->base_url[bl - 1] == '/')
        bl--;
    const char *openai =
        bl >= 7 && strncmp(dep->base_url + bl - 7, "/openai", 7) == 0 ? "" : "/openai";
    int rc = ifq_xlate_url(out, err, dep->base_url, "%s/deployments/%s%s?api-version=%s", openai,
                           depname, ifq_url_path(kind) + 3, version);
    if (rc != IFQ_OK)
        return rc;
    json_t *copy = json_copy((json_t *)body);
    json_object_del(copy, "model");
    if ((rc = ifq_xlate_body(out, err, copy)) != IFQ_OK)
        return rc;
    rc = ifq_xlate_header(out, err, "Content-Type: application/json");
    if (rc == IFQ_OK && api_key && *api_key)
        rc = ifq_xlate_header(out, err, "api-key: %s", api_key);
    if (rc != IFQ_OK) {
        free(out->body);
        out->body = NULL;
    }
    return rc;
}

static json_t *azure_parse(const ifq_deployment_t *dep, ifq_url_kind_t kind, long status,
                           const char *body, size_t len, ifq_upstream_err_t *err)
{
    json_t *j = ifq_xlate_load(body, len);
    if (status >= 200 && status < 300) {
        if (j)
            return j;
        ifq_xlate_malformed(dep, status, len, "the body is not a JSON object", err);
        return NULL;
    }
    json_t *e = json_object_get(j, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    /* Azure's "code" is a string ("content_filter", "429", "DeploymentNotFound"). */
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *type = NULL;
    if (code && strcmp(code, "content_filter") == 0)
        type = "content_filter";
    else if (code && strcmp(code, "context_length_exceeded") == 0)
        type = "context_length";
    const char *key = dep->api_key_env ? getenv(dep->api_key_env) : NULL;
    ifq_xlate_http_error(dep, status, type, code, msg, ifq_http_status_retryable(status), key, err);
    json_decref(j);
    return NULL;
}

const ifq_provider_t ifq_provider_azure = {
    .name = "azure",
    .build = azure_build,
    .parse = azure_parse,
    .passthrough = 1,
};
