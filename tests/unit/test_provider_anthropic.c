/*
 * test_provider_anthropic.c - the Anthropic Messages adapter on bodies shaped
 * like Anthropic's API reference (tests/unit/data/providers/anthropic/):
 * the OpenAI → Messages request translation, the answer → chat.completion
 * translation (text, tool_use, stop_reason, usage), the requests it refuses
 * and the classification of Anthropic's error bodies.
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

static ifq_deployment_t dep = {.name = "claude",
                               .provider = "anthropic",
                               .base_url = "https://api.anthropic.com/v1",
                               .model = "claude-sonnet-4-5",
                               .api_key_env = "IFQ_TEST_ANTHROPIC_KEY"};

static const ifq_provider_t *adapter(void)
{
    const ifq_provider_t *p = ifq_provider_find("anthropic");
    assert_non_null(p);
    return p;
}

static void translates_a_chat_with_tools_images_and_history(void **state)
{
    ifq_http_req_t req;
    ifq_upstream_err_t err;
    assert_int_equal(fx_build(adapter(), &dep, IFQ_URL_CHAT, "common/chat_tools.openai.json",
                              "sk-ant-test-123", &req, &err),
                     IFQ_OK);
    assert_string_equal(req.url, "https://api.anthropic.com/v1/messages");
    fx_assert_body(&req, "anthropic/chat_tools.request.json");
    assert_string_equal(fx_header(&req, "x-api-key"), "sk-ant-test-123");
    assert_string_equal(fx_header(&req, "anthropic-version"), "2023-06-01");
    assert_string_equal(fx_header(&req, "Content-Type"), "application/json");
    assert_null(fx_header(&req, "Authorization"));
    assert_string_equal(req.aws_sigv4, "");
    free(req.body);
}

static void defaults_max_tokens_and_honours_api_version(void **state)
{
    ifq_deployment_t d = dep;
    d.api_version = "2024-01-01";
    json_error_t je;
    json_t *body = json_loads(
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", 0, &je);
    ifq_http_req_t req;
    ifq_upstream_err_t err = {0};
    assert_int_equal(adapter()->build(&d, IFQ_URL_CHAT, body, NULL, &req, &err), IFQ_OK);
    json_t *sent = json_loads(req.body, 0, &je);
    /* Anthropic requires max_tokens; the request had none. */
    assert_int_equal(json_integer_value(json_object_get(sent, "max_tokens")), 4096);
    assert_null(json_object_get(sent, "system"));
    assert_string_equal(fx_header(&req, "anthropic-version"), "2024-01-01");
    assert_null(fx_header(&req, "x-api-key")); /* no key, no header */
    json_decref(sent);
    free(req.body);
    json_decref(body);

    /* max_completion_tokens wins over max_tokens, as in OpenAI's API. */
    body = json_loads("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
                      "\"max_tokens\":10,\"max_completion_tokens\":20}",
                      0, &je);
    assert_int_equal(adapter()->build(&dep, IFQ_URL_CHAT, body, "k", &req, &err), IFQ_OK);
    sent = json_loads(req.body, 0, &je);
    assert_int_equal(json_integer_value(json_object_get(sent, "max_tokens")), 20);
    json_decref(sent);
    free(req.body);
    json_decref(body);
}

static void maps_tool_choice_and_parallel_calls(void **state)
{
    static const struct {
        const char *choice;
        const char *want;
    } cases[] = {
        {"\"required\"", "{\"type\":\"any\",\"disable_parallel_tool_use\":true}"},
        {"\"none\"", "{\"type\":\"none\"}"},
        {"{\"type\":\"function\",\"function\":{\"name\":\"f\"}}",
         "{\"type\":\"tool\",\"name\":\"f\",\"disable_parallel_tool_use\":true}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char json[512];
        snprintf(
            json, sizeof(json),
            "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"parallel_tool_calls\":false,"
            "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
            "\"tool_choice\":%s}",
            cases[i].choice);
        json_error_t je;
        json_t *body = json_loads(json, 0, &je);
        ifq_http_req_t req;
        ifq_upstream_err_t err = {0};
        assert_int_equal(adapter()->build(&dep, IFQ_URL_CHAT, body, "k", &req, &err), IFQ_OK);
        json_t *sent = json_loads(req.body, 0, &je);
        json_t *want = json_loads(cases[i].want, 0, &je);
        fx_assert_json_equal(json_object_get(sent, "tool_choice"), want, cases[i].choice);
        /* A tool without parameters still gets the schema Anthropic requires. */
        assert_string_equal(
            fx_str(
                json_object_get(json_array_get(json_object_get(sent, "tools"), 0), "input_schema"),
                "type"),
            "object");
        json_decref(want);
        json_decref(sent);
        json_decref(body);
        free(req.body);
    }
}

static void completions_prompt_becomes_a_user_turn(void **state)
{
    json_error_t je;
    json_t *body = json_loads("{\"model\":\"m\",\"prompt\":\"Say hi\",\"max_tokens\":5,"
                              "\"stop\":\"\\n\"}",
                              0, &je);
    ifq_http_req_t req;
    ifq_upstream_err_t err = {0};
    assert_int_equal(adapter()->build(&dep, IFQ_URL_COMPLETIONS, body, "k", &req, &err), IFQ_OK);
    json_t *sent = json_loads(req.body, 0, &je);
    json_t *want = json_loads("{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":5,\"messages\":"
                              "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Say "
                              "hi\"}]}],\"stop_sequences\":[\"\\n\"]}",
                              0, &je);
    fx_assert_json_equal(sent, want, "completions request");
    json_decref(want);
    json_decref(sent);
    json_decref(body);
    free(req.body);

    /* The answer comes back as a text_completion. */
    json_t *out =
        fx_parse(adapter(), &dep, IFQ_URL_COMPLETIONS, 200, "anthropic/response_text.json", &err);
    assert_non_null(out);
    assert_string_equal(fx_str(out, "object"), "text_completion");
    json_t *c0 = json_array_get(json_object_get(out, "choices"), 0);
    assert_string_equal(fx_str(c0, "text"), "Hi! My name is Claude.");
    assert_string_equal(fx_str(c0, "finish_reason"), "stop");
    json_decref(out);
}

static void refuses_what_it_cannot_express(void **state)
{
    const ifq_provider_t *p = adapter();
    const char *hi = "{\"input\":\"x\"}";
    fx_assert_refused(p, &dep, IFQ_URL_EMBEDDINGS, hi, "unsupported", "embeddings");
    fx_assert_refused(p, &dep, IFQ_URL_CHAT,
                      "{\"n\":2,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                      "unsupported", "\"n\"");
    fx_assert_refused(p, &dep, IFQ_URL_CHAT,
                      "{\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                      "unsupported", "stream");
    fx_assert_refused(p, &dep, IFQ_URL_CHAT,
                      "{\"logprobs\":true,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                      "unsupported", "logprobs");
    fx_assert_refused(p, &dep, IFQ_URL_CHAT,
                      "{\"response_format\":{\"type\":\"json_object\"},\"messages\":[{\"role\":"
                      "\"user\",\"content\":\"x\"}]}",
                      "unsupported", "response_format");
    fx_assert_refused(p, &dep, IFQ_URL_CHAT,
                      "{\"messages\":[{\"role\":\"function\",\"name\":\"f\",\"content\":\"x\"}]}",
                      "unsupported", "function");
    fx_assert_refused(p, &dep, IFQ_URL_CHAT,
                      "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\","
                      "\"input_audio\":{}}]}]}",
                      "unsupported", "input_audio");
    fx_assert_refused(p, &dep, IFQ_URL_COMPLETIONS, "{\"prompt\":[\"a\",\"b\"]}", "unsupported",
                      "prompt");
    fx_assert_refused(p, &dep, IFQ_URL_CHAT, "{\"messages\":[]}", "invalid_request", "messages");
    fx_assert_refused(p, &dep, IFQ_URL_CHAT,
                      "{\"messages\":[{\"role\":\"system\",\"content\":\"only a system prompt\"}]}",
                      "invalid_request", "no user or assistant message");
    fx_assert_refused(
        p, &dep, IFQ_URL_CHAT,
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\","
        "\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":"
        "\"f\",\"arguments\":\"{not json\"}}]}]}",
        "invalid_request", "not a JSON object");
    fx_assert_refused(p, &dep, IFQ_URL_CHAT,
                      "{\"messages\":[{\"role\":\"tool\",\"content\":\"42\"}]}", "invalid_request",
                      "tool_call_id");
    fx_assert_refused(p, &dep, IFQ_URL_CHAT,
                      "{\"max_tokens\":0,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                      "invalid_request", "max_tokens");
}

static void parses_text_answer_with_usage(void **state)
{
    ifq_upstream_err_t err;
    json_t *out =
        fx_parse(adapter(), &dep, IFQ_URL_CHAT, 200, "anthropic/response_text.json", &err);
    assert_non_null(out);
    assert_string_equal(fx_str(out, "object"), "chat.completion");
    assert_string_equal(fx_str(out, "id"), "msg_013Zva2CMHLNnXjNJJKqJ2EF");
    assert_string_equal(fx_str(out, "model"), "claude-sonnet-4-5-20250929");
    assert_true(json_is_integer(json_object_get(out, "created")));
    json_t *msg = fx_message(out);
    assert_string_equal(fx_str(msg, "role"), "assistant");
    assert_string_equal(fx_str(msg, "content"), "Hi! My name is Claude.");
    assert_null(json_object_get(msg, "tool_calls"));
    assert_string_equal(fx_str(json_array_get(json_object_get(out, "choices"), 0), "finish_reason"),
                        "stop");
    assert_int_equal(fx_usage(out, "prompt_tokens"), 2095);
    assert_int_equal(fx_usage(out, "completion_tokens"), 503);
    assert_int_equal(fx_usage(out, "total_tokens"), 2598);
    json_decref(out);
}

static void parses_tool_use_and_cache_usage(void **state)
{
    ifq_upstream_err_t err;
    json_t *out =
        fx_parse(adapter(), &dep, IFQ_URL_CHAT, 200, "anthropic/response_tool_use.json", &err);
    assert_non_null(out);
    json_t *msg = fx_message(out);
    assert_string_equal(fx_str(msg, "content"),
                        "I'll check the current weather in San Francisco for you.");
    json_t *tc = json_array_get(json_object_get(msg, "tool_calls"), 0);
    assert_string_equal(fx_str(tc, "id"), "toolu_01A09q90qw90lq917835lq9");
    assert_string_equal(fx_str(tc, "type"), "function");
    json_t *fn = json_object_get(tc, "function");
    assert_string_equal(fx_str(fn, "name"), "get_weather");
    json_error_t je;
    json_t *args = json_loads(fx_str(fn, "arguments"), 0, &je);
    json_t *want = json_loads("{\"location\":\"San Francisco, CA\",\"unit\":\"celsius\"}", 0, &je);
    fx_assert_json_equal(args, want, "tool arguments");
    json_decref(args);
    json_decref(want);
    assert_string_equal(fx_str(json_array_get(json_object_get(out, "choices"), 0), "finish_reason"),
                        "tool_calls");
    /* Cache reads are prompt tokens too, and reported as cached. */
    assert_int_equal(fx_usage(out, "prompt_tokens"), 572);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_object_get(out, "usage"), "prompt_tokens_details"),
                         "cached_tokens")),
                     100);
    json_decref(out);

    out = fx_parse(adapter(), &dep, IFQ_URL_CHAT, 200, "anthropic/response_max_tokens.json", &err);
    assert_non_null(out);
    /* Thinking blocks are not part of the answer. */
    assert_string_equal(fx_str(fx_message(out), "content"), "1, 2, 3");
    assert_string_equal(fx_str(json_array_get(json_object_get(out, "choices"), 0), "finish_reason"),
                        "length");
    json_decref(out);
}

static void classifies_anthropic_errors(void **state)
{
    static const struct {
        long status;
        const char *file;
        int retryable;
        const char *needle;
    } cases[] = {
        {529, "anthropic/error_overloaded_529.json", 1, "(overloaded_error): Overloaded"},
        {429, "anthropic/error_rate_limit_429.json", 1, "rate_limit_error"},
        {400, "anthropic/error_invalid_request_400.json", 0, "max_tokens: Field required"},
        {401, "anthropic/error_authentication_401.json", 0, "authentication_error"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ifq_upstream_err_t err;
        assert_null(fx_parse(adapter(), &dep, IFQ_URL_CHAT, cases[i].status, cases[i].file, &err));
        assert_int_equal(err.retryable, cases[i].retryable);
        char type[16];
        snprintf(type, sizeof(type), "http_%ld", cases[i].status);
        assert_string_equal(err.type, type);
        if (!strstr(err.message, cases[i].needle))
            fail_msg("%s: \"%s\" lacks \"%s\"", cases[i].file, err.message, cases[i].needle);
        assert_non_null(strstr(err.message, "claude"));
    }
    /* An overloaded_error is retryable whatever the status says. */
    const char *ov =
        "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"x\"}}";
    ifq_upstream_err_t err = {0};
    assert_null(adapter()->parse(&dep, IFQ_URL_CHAT, 400, ov, strlen(ov), &err));
    assert_true(err.retryable);
    /* Not JSON at all (a proxy's HTML page). */
    memset(&err, 0, sizeof(err));
    assert_null(adapter()->parse(&dep, IFQ_URL_CHAT, 502, "<html>bad gateway</html>", 24, &err));
    assert_true(err.retryable);
    assert_string_equal(err.type, "http_502");
    /* A 200 that is not a Messages answer. */
    memset(&err, 0, sizeof(err));
    assert_null(adapter()->parse(&dep, IFQ_URL_CHAT, 200, "{\"id\":\"x\"}", 10, &err));
    assert_true(err.retryable);
    assert_string_equal(err.type, "malformed_response");
    memset(&err, 0, sizeof(err));
    assert_null(adapter()->parse(&dep, IFQ_URL_CHAT, 200, "{\"content\":[", 12, &err));
    assert_string_equal(err.type, "malformed_response");
}

static void never_repeats_the_key_in_an_error(void **state)
{
    setenv("IFQ_TEST_ANTHROPIC_KEY", "sk-ant-api03-SECRETSECRET", 1);
    const char *echo = "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\","
                       "\"message\":\"invalid x-api-key sk-ant-api03-SECRETSECRET given\"}}";
    ifq_upstream_err_t err = {0};
    assert_null(adapter()->parse(&dep, IFQ_URL_CHAT, 401, echo, strlen(echo), &err));
    assert_null(strstr(err.message, "SECRETSECRET"));
    assert_non_null(strstr(err.message, "[redacted] given"));
    unsetenv("IFQ_TEST_ANTHROPIC_KEY");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(translates_a_chat_with_tools_images_and_history),
        cmocka_unit_test(defaults_max_tokens_and_honours_api_version),
        cmocka_unit_test(maps_tool_choice_and_parallel_calls),
        cmocka_unit_test(completions_prompt_becomes_a_user_turn),
        cmocka_unit_test(refuses_what_it_cannot_express),
        cmocka_unit_test(parses_text_answer_with_usage),
        cmocka_unit_test(parses_tool_use_and_cache_usage),
        cmocka_unit_test(classifies_anthropic_errors),
        cmocka_unit_test(never_repeats_the_key_in_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
