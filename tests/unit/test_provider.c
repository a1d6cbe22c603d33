/*
 * test_provider.c - the retry policy (classification, Retry-After, backoff)
 * and the OpenAI-compatible adapter on bodies shaped like OpenAI's docs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "provider.h"

static void classifies_statuses(void **state)
{
    static const long retry[] = {408, 409, 429, 500, 502, 503, 504, 529};
    static const long final[] = {400, 401, 403, 404, 413, 422};
    for (size_t i = 0; i < sizeof(retry) / sizeof(retry[0]); i++)
        if (!ifq_http_status_retryable(retry[i]))
            fail_msg("%ld should be retryable", retry[i]);
    for (size_t i = 0; i < sizeof(final) / sizeof(final[0]); i++)
        if (ifq_http_status_retryable(final[i]))
            fail_msg("%ld should not be retryable", final[i]);
}

static void parses_retry_after(void **state)
{
    int64_t now = 1445412480000LL; /* Wed, 21 Oct 2015 07:28:00 GMT */
    assert_int_equal(ifq_retry_after_ms("3", now), 3000);
    assert_int_equal(ifq_retry_after_ms(" 0\r\n", now), 0);
    assert_int_equal(ifq_retry_after_ms("Wed, 21 Oct 2015 07:28:10 GMT", now), 10000);
    assert_int_equal(ifq_retry_after_ms("Wed, 21 Oct 2015 07:27:00 GMT", now), 0); /* past */
    assert_int_equal(ifq_retry_after_ms("soon", now), -1);
    assert_int_equal(ifq_retry_after_ms("-5", now), -1);
    assert_int_equal(ifq_retry_after_ms(NULL, now), -1);
    assert_int_equal(ifq_retry_after_ms("999999999", now), 86400000); /* capped at a day */
}

static void backoff_is_capped_full_jitter(void **state)
{
    assert_int_equal(ifq_backoff_ms(1, 100, 10000, 0.0), 0);
    assert_int_equal(ifq_backoff_ms(1, 100, 10000, 0.5), 50);
    assert_int_equal(ifq_backoff_ms(3, 100, 10000, 0.5), 200);   /* 100*2^2 = 400, half */
    assert_int_equal(ifq_backoff_ms(30, 100, 10000, 0.5), 5000); /* capped at max */
    assert_true(ifq_backoff_ms(4, 100, 10000, 0.999) < 800);
}

static ifq_deployment_t dep = {.name = "llama",
                               .provider = "openai",
                               .base_url = "http://127.0.0.1:8000/v1/",
                               .model = "meta/llama-3"};

static void openai_builds_the_upstream_request(void **state)
{
    const ifq_provider_t *p = ifq_provider_find("openai");
    assert_non_null(p);
    assert_null(ifq_provider_find("nonesuch"));
    json_error_t je;
    json_t *body = json_loads("{\"model\":\"chat-default\",\"messages\":[{\"role\":\"user\","
                              "\"content\":\"Hi\"}],\"max_tokens\":64}",
                              0, &je);
    ifq_http_req_t req;
    ifq_upstream_err_t err = {0};
    assert_int_equal(p->build(&dep, IFQ_URL_CHAT, body, "sk-test-123", &req, &err), IFQ_OK);
    assert_string_equal(req.url, "http://127.0.0.1:8000/v1/chat/completions");
    json_t *sent = json_loads(req.body, 0, &je);
    assert_string_equal(json_string_value(json_object_get(sent, "model")), "meta/llama-3");
    assert_int_equal(json_integer_value(json_object_get(sent, "max_tokens")), 64);
    /* The key travels in a header only, never in the body. */
    assert_null(strstr(req.body, "sk-test-123"));
    int auth = 0;
    for (int i = 0; i < req.n_headers; i++)
        auth |= strcmp(req.headers[i], "Authorization: Bearer sk-test-123") == 0;
    assert_true(auth);
    /* The caller's body is not modified. */
    assert_string_equal(json_string_value(json_object_get(body, "model")), "chat-default");
    json_decref(sent);
    free(req.body);

    assert_int_equal(p->build(&dep, IFQ_URL_EMBEDDINGS, body, NULL, &req, &err), IFQ_OK);
    assert_string_equal(req.url, "http://127.0.0.1:8000/v1/embeddings");
    for (int i = 0; i < req.n_headers; i++)
        assert_null(strstr(req.headers[i], "Authorization"));
    free(req.body);
    json_decref(body);
}

static void openai_parses_success_and_errors(void **state)
{
    const ifq_provider_t *p = ifq_provider_find("openai");
    /* Shaped like the chat.completion object in OpenAI's API reference. */
    const char *ok =
        "{\"id\":\"chatcmpl-123\",\"object\":\"chat.completion\",\"created\":1677652288,"
        "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
        "\"assistant\",\"content\":\"Hello there\"},\"finish_reason\":\"stop\"}],"
        "\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":12,\"total_tokens\":21}}";
    ifq_upstream_err_t err = {0};
    json_t *b = p->parse(&dep, IFQ_URL_CHAT, 200, ok, strlen(ok), &err);
    assert_non_null(b);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(b, "usage"), "total_tokens")), 21);
    json_decref(b);

    const char *rl = "{\"error\":{\"message\":\"Rate limit reached for requests\",\"type\":"
                     "\"requests\",\"param\":null,\"code\":\"rate_limit_exceeded\"}}";
    memset(&err, 0, sizeof(err));
    assert_null(p->parse(&dep, IFQ_URL_CHAT, 429, rl, strlen(rl), &err));
    assert_true(err.retryable);
    assert_string_equal(err.type, "http_429");
    assert_non_null(strstr(err.message, "Rate limit reached"));

    const char *bad =
        "{\"error\":{\"message\":\"This model's maximum context length is 8192 "
        "tokens\",\"type\":\"invalid_request_error\",\"code\":\"context_length_exceeded\"}}";
    memset(&err, 0, sizeof(err));
    assert_null(p->parse(&dep, IFQ_URL_CHAT, 400, bad, strlen(bad), &err));
    assert_false(err.retryable);

    memset(&err, 0, sizeof(err));
    assert_null(p->parse(&dep, IFQ_URL_CHAT, 200, "{\"id\":", 6, &err));
    assert_true(err.retryable);
    assert_string_equal(err.type, "malformed_response");

    memset(&err, 0, sizeof(err));
    assert_null(p->parse(&dep, IFQ_URL_CHAT, 502, "<html>bad gateway</html>", 24, &err));
    assert_true(err.retryable);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(classifies_statuses),
        cmocka_unit_test(parses_retry_after),
        cmocka_unit_test(backoff_is_capped_full_jitter),
        cmocka_unit_test(openai_builds_the_upstream_request),
        cmocka_unit_test(openai_parses_success_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
