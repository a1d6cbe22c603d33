/*
 * test_provider_azure.c - the Azure OpenAI adapter on bodies shaped like
 * Azure's REST reference (tests/unit/data/providers/azure/): the deployment
 * URL with api-version, the api-key header, the body without "model", and
 * Azure's error bodies (content filter, rate limit, unknown deployment).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "provider.h"
#include "provider_fixtures.h"

static ifq_deployment_t dep = {.name = "gpt4o-eu",
                               .provider = "azure",
                               .base_url = "https://contoso-eu.openai.azure.com",
                               .model = "gpt-4o-prod",
                               .api_version = "2024-10-21"};

static const ifq_provider_t *adapter(void)
{
    const ifq_provider_t *p = ifq_provider_find("azure");
    assert_non_null(p);
    return p;
}

static void addresses_the_deployment_with_api_version_and_api_key(void **state)
{
    ifq_http_req_t req;
    ifq_upstream_err_t err;
    assert_int_equal(fx_build(adapter(), &dep, IFQ_URL_CHAT, "common/chat_tools.openai.json",
                              "azure-key-0123456789", &req, &err),
                     IFQ_OK);
    assert_string_equal(req.url, "https://contoso-eu.openai.azure.com/openai/deployments/"
                                 "gpt-4o-prod/chat/completions?api-version=2024-10-21");
    assert_string_equal(fx_header(&req, "api-key"), "azure-key-0123456789");
    assert_null(fx_header(&req, "Authorization"));
    /* The body is OpenAI's, minus "model": the URL names the deployment. */
    json_t *want = fx_json("common/chat_tools.openai.json");
    json_object_del(want, "model");
    json_error_t je;
    json_t *got = json_loads(req.body, 0, &je);
    fx_assert_json_equal(got, want, "azure body");
    json_decref(got);
    json_decref(want);
    free(req.body);
}

static void accepts_base_urls_with_openai_suffix_and_other_kinds(void **state)
{
    ifq_deployment_t d = dep;
    d.base_url = "https://contoso-eu.openai.azure.com/openai/";
    ifq_http_req_t req;
    ifq_upstream_err_t err;
    assert_int_equal(
        fx_build(adapter(), &d, IFQ_URL_EMBEDDINGS, "common/chat_hi.openai.json", NULL, &req, &err),
        IFQ_OK);
    assert_string_equal(req.url, "https://contoso-eu.openai.azure.com/openai/deployments/"
                                 "gpt-4o-prod/embeddings?api-version=2024-10-21");
    assert_null(fx_header(&req, "api-key"));
    free(req.body);
    d.model = "my dep/1"; /* escaped, never a path injection */
    assert_int_equal(fx_build(adapter(), &d, IFQ_URL_COMPLETIONS, "common/chat_hi.openai.json",
                              NULL, &req, &err),
                     IFQ_OK);
    assert_string_equal(req.url, "https://contoso-eu.openai.azure.com/openai/deployments/"
                                 "my%20dep%2F1/completions?api-version=2024-10-21");
    free(req.body);
    d.api_version = NULL;
    assert_int_equal(
        fx_build(adapter(), &d, IFQ_URL_CHAT, "common/chat_hi.openai.json", NULL, &req, &err),
        IFQ_ERR_INVALID);
    assert_non_null(strstr(err.message, "api_version"));
}

static void passes_azure_answers_through(void **state)
{
    ifq_upstream_err_t err;
    json_t *out = fx_parse(adapter(), &dep, IFQ_URL_CHAT, 200, "azure/response_chat.json", &err);
    assert_non_null(out);
    assert_string_equal(fx_str(fx_message(out), "content"),
                        "Yes, Azure OpenAI supports customer managed keys.");
    assert_int_equal(fx_usage(out, "total_tokens"), 87);
    /* Azure's filter annotations stay for whoever reads the result. */
    assert_non_null(json_object_get(out, "prompt_filter_results"));
    json_decref(out);
    assert_null(adapter()->parse(&dep, IFQ_URL_CHAT, 200, "not json", 8, &err));
    assert_string_equal(err.type, "malformed_response");
    assert_true(err.retryable);
}

static void classifies_azure_errors(void **state)
{
    ifq_upstream_err_t err;
    assert_null(
        fx_parse(adapter(), &dep, IFQ_URL_CHAT, 400, "azure/error_content_filter_400.json", &err));
    assert_string_equal(err.type, "content_filter");
    assert_false(err.retryable);
    assert_non_null(strstr(err.message, "content management policy"));

    assert_null(
        fx_parse(adapter(), &dep, IFQ_URL_CHAT, 429, "azure/error_rate_limit_429.json", &err));
    assert_string_equal(err.type, "http_429");
    assert_true(err.retryable);
    assert_non_null(strstr(err.message, "retry after 6 seconds"));

    assert_null(fx_parse(adapter(), &dep, IFQ_URL_CHAT, 404,
                         "azure/error_deployment_not_found_404.json", &err));
    assert_string_equal(err.type, "http_404");
    assert_false(err.retryable);
    assert_non_null(strstr(err.message, "(DeploymentNotFound)"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(addresses_the_deployment_with_api_version_and_api_key),
        cmocka_unit_test(accepts_base_urls_with_openai_suffix_and_other_kinds),
        cmocka_unit_test(passes_azure_answers_through),
        cmocka_unit_test(classifies_azure_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
