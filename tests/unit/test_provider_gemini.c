/*
 * test_provider_gemini.c - the Gemini adapter on bodies shaped like the
 * Gemini API reference (tests/unit/data/providers/gemini/): generateContent
 * requests (contents/parts, systemInstruction, generationConfig, tools),
 * embedContent / batchEmbedContents, the answer translation (candidates,
 * finishReason, usageMetadata, function calls, blocked prompts) and the
 * error classification; the key only ever in x-goog-api-key.
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

static ifq_deployment_t dep = {.name = "gemini-flash",
                               .provider = "gemini",
                               .base_url = "https://generativelanguage.googleapis.com/v1beta",
                               .model = "gemini-2.5-flash"};

static const ifq_provider_t *adapter(void)
{
    const ifq_provider_t *p = ifq_provider_find("gemini");
    assert_non_null(p);
    return p;
}

static json_t *built_body(const char *json, ifq_url_kind_t kind, char *url, size_t url_size)
{
    json_error_t je;
    json_t *body = json_loads(json, 0, &je);
    if (!body)
        fail_msg("bad test JSON: %s", je.text);
    ifq_http_req_t req;
    ifq_upstream_err_t err = {0};
    if (adapter()->build(&dep, kind, body, "k", &req, &err) != IFQ_OK)
        fail_msg("build failed: %s", err.message);
    json_t *sent = json_loads(req.body, 0, &je);
    if (url)
        snprintf(url, url_size, "%s", req.url);
    free(req.body);
    json_decref(body);
    return sent;
}

static void translates_a_chat_with_tools_images_and_history(void **state)
{
    ifq_http_req_t req;
    ifq_upstream_err_t err;
    assert_int_equal(fx_build(adapter(), &dep, IFQ_URL_CHAT, "common/chat_tools.openai.json",
                              "AIzaSyTEST-0123456789", &req, &err),
                     IFQ_OK);
    assert_string_equal(req.url, "https://generativelanguage.googleapis.com/v1beta/models/"
                                 "gemini-2.5-flash:generateContent");
    fx_assert_body(&req, "gemini/chat_tools.request.json");
    assert_string_equal(fx_header(&req, "x-goog-api-key"), "AIzaSyTEST-0123456789");
    /* Never the ?key= form: URLs end up in access logs. */
    assert_null(strstr(req.url, "key="));
    assert_null(strstr(req.url, "AIzaSy"));
    free(req.body);
}

static void maps_generation_options(void **state)
{
    char url[1024];
    json_t *sent = built_body(
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":3,\"seed\":7,"
        "\"presence_penalty\":0.5,\"frequency_penalty\":0.25,\"max_completion_tokens\":9,"
        "\"stop\":\"END\",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":"
        "\"r\",\"schema\":{\"type\":\"object\"}}}}",
        IFQ_URL_CHAT, url, sizeof(url));
    json_error_t je;
    json_t *want = json_loads("{\"candidateCount\":3,\"seed\":7,\"presencePenalty\":0.5,"
                              "\"frequencyPenalty\":0.25,\"maxOutputTokens\":9,\"stopSequences\":"
                              "[\"END\"],\"responseMimeType\":\"application/json\","
                              "\"responseJsonSchema\":{\"type\":\"object\"}}",
                              0, &je);
    fx_assert_json_equal(json_object_get(sent, "generationConfig"), want, "generationConfig");
    assert_null(json_object_get(sent, "systemInstruction"));
    json_decref(want);
    json_decref(sent);

    /* "models/" prefixes in the configured model are not doubled. */
    ifq_deployment_t saved = dep;
    dep.model = "models/gemini-2.0-flash";
    sent = built_body("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                      "\"response_format\":{\"type\":\"json_object\"}}",
                      IFQ_URL_CHAT, url, sizeof(url));
    assert_string_equal(url, "https://generativelanguage.googleapis.com/v1beta/models/"
                             "gemini-2.0-flash:generateContent");
    assert_string_equal(fx_str(json_object_get(sent, "generationConfig"), "responseMimeType"),
                        "application/json");
    dep = saved;
    json_decref(sent);
}

static void maps_tool_choice(void **state)
{
    static const struct {
        const char *choice;
        const char *want;
    } cases[] = {
        {"\"required\"", "{\"functionCallingConfig\":{\"mode\":\"ANY\"}}"},
        {"\"none\"", "{\"functionCallingConfig\":{\"mode\":\"NONE\"}}"},
        {"{\"type\":\"function\",\"function\":{\"name\":\"f\"}}",
         "{\"functionCallingConfig\":{\"mode\":\"ANY\",\"allowedFunctionNames\":[\"f\"]}}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char json[512];
        snprintf(json, sizeof(json),
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":"
                 "\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\","
                 "\"$schema\":\"x\",\"properties\":{\"a\":{\"type\":\"object\","
                 "\"additionalProperties\":false}}}}}],\"tool_choice\":%s}",
                 cases[i].choice);
        json_t *sent = built_body(json, IFQ_URL_CHAT, NULL, 0);
        json_error_t je;
        json_t *want = json_loads(cases[i].want, 0, &je);
        fx_assert_json_equal(json_object_get(sent, "toolConfig"), want, cases[i].choice);
        /* JSON Schema keywords Gemini's Schema rejects are dropped, at any depth. */
        json_t *params = json_object_get(
            json_array_get(json_object_get(json_array_get(json_object_get(sent, "tools"), 0),
                                           "functionDeclarations"),
                           0),
            "parameters");
        json_t *want_params = json_loads(
            "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"object\"}}}", 0, &je);
        fx_assert_json_equal(params, want_params, "parameters");
        json_decref(want_params);
        json_decref(want);
        json_decref(sent);
    }
}

static void builds_embedding_requests(void **state)
{
    char url[1024];
    ifq_deployment_t saved = dep;
    dep.model = "text-embedding-004";
    json_t *sent = built_body("{\"model\":\"e\",\"input\":\"alpha\",\"dimensions\":256}",
                              IFQ_URL_EMBEDDINGS, url, sizeof(url));
    assert_string_equal(url, "https://generativelanguage.googleapis.com/v1beta/models/"
                             "text-embedding-004:embedContent");
    json_error_t je;
    json_t *want = json_loads(
        "{\"content\":{\"parts\":[{\"text\":\"alpha\"}]},\"outputDimensionality\":256}", 0, &je);
    fx_assert_json_equal(sent, want, "embedContent");
    json_decref(want);
    json_decref(sent);

    sent = built_body("{\"input\":[\"a\",\"b\"]}", IFQ_URL_EMBEDDINGS, url, sizeof(url));
    assert_string_equal(url, "https://generativelanguage.googleapis.com/v1beta/models/"
                             "text-embedding-004:batchEmbedContents");
    want = json_loads("{\"requests\":[{\"model\":\"models/text-embedding-004\",\"content\":"
                      "{\"parts\":[{\"text\":\"a\"}]}},{\"model\":\"models/text-embedding-004\","
                      "\"content\":{\"parts\":[{\"text\":\"b\"}]}}]}",
                      0, &je);
    fx_assert_json_equal(sent, want, "batchEmbedContents");
    json_decref(want);
    json_decref(sent);

    fx_assert_refused(adapter(), &dep, IFQ_URL_EMBEDDINGS,
                      "{\"input\":\"a\",\"encoding_format\":\"base64\"}", "unsupported", "base64");
    fx_assert_refused(adapter(), &dep, IFQ_URL_EMBEDDINGS, "{\"input\":[[1,2,3]]}", "unsupported",
                      "token arrays");
    fx_assert_refused(adapter(), &dep, IFQ_URL_EMBEDDINGS, "{\"input\":[]}", "invalid_request",
                      "input");
    dep = saved;
}

static void refuses_what_it_cannot_express(void **state)
{
    const ifq_provider_t *p = adapter();
    fx_assert_refused(p, &dep, IFQ_URL_CHAT,
                      "{\"n\":9,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                      "unsupported", "\"n\" > 8");
    fx_assert_refused(p, &dep, IFQ_URL_CHAT,
                      "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
                      "\"image_url\":{\"url\":\"https://example.com/cat.png\"}}]}]}",
                      "unsupported", "data: URLs");
    /* A tool result needs the tool call it answers, for the function name. */
    fx_assert_refused(p, &dep, IFQ_URL_CHAT,
                      "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"tool\","
                      "\"tool_call_id\":\"nope\",\"content\":\"1\"}]}",
                      "invalid_request", "tool_call_id");
    fx_assert_refused(p, &dep, IFQ_URL_CHAT,
                      "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":"
                      "\"code_interpreter\"}]}",
                      "unsupported", "function");
}

static void parses_text_answer_with_thoughts_in_usage(void **state)
{
    ifq_upstream_err_t err;
    json_t *out = fx_parse(adapter(), &dep, IFQ_URL_CHAT, 200, "gemini/response_text.json", &err);
    assert_non_null(out);
    assert_string_equal(fx_str(out, "object"), "chat.completion");
    assert_string_equal(fx_str(out, "id"), "chatcmpl-kNMBaOvQJO2Kz7IP5a3GuQ4");
    assert_string_equal(fx_str(out, "model"), "gemini-2.5-flash");
    assert_string_equal(fx_str(fx_message(out), "content"),
                        "AI learns patterns from data to make predictions.");
    assert_string_equal(fx_str(json_array_get(json_object_get(out, "choices"), 0), "finish_reason"),
                        "stop");
    /* Thinking tokens are billed as output, as OpenAI's reasoning tokens. */
    assert_int_equal(fx_usage(out, "prompt_tokens"), 8);
    assert_int_equal(fx_usage(out, "completion_tokens"), 29);
    assert_int_equal(fx_usage(out, "total_tokens"), 37);
    assert_int_equal(
        json_integer_value(json_object_get(
            json_object_get(json_object_get(out, "usage"), "completion_tokens_details"),
            "reasoning_tokens")),
        20);
    json_decref(out);
}

static void parses_function_calls_and_safety_stops(void **state)
{
    ifq_upstream_err_t err;
    json_t *out =
        fx_parse(adapter(), &dep, IFQ_URL_CHAT, 200, "gemini/response_function_call.json", &err);
    assert_non_null(out);
    json_t *msg = fx_message(out);
    assert_true(json_is_null(json_object_get(msg, "content")));
    json_t *tc = json_array_get(json_object_get(msg, "tool_calls"), 0);
    assert_string_equal(fx_str(tc, "id"), "call_0_0");
    json_t *fn = json_object_get(tc, "function");
    assert_string_equal(fx_str(fn, "name"), "schedule_meeting");
    json_error_t je;
    json_t *args = json_loads(fx_str(fn, "arguments"), 0, &je);
    assert_string_equal(fx_str(args, "topic"), "Q3 planning");
    json_decref(args);
    assert_string_equal(fx_str(json_array_get(json_object_get(out, "choices"), 0), "finish_reason"),
                        "tool_calls");
    json_decref(out);

    out = fx_parse(adapter(), &dep, IFQ_URL_CHAT, 200, "gemini/response_safety.json", &err);
    assert_non_null(out);
    assert_string_equal(fx_str(json_array_get(json_object_get(out, "choices"), 0), "finish_reason"),
                        "content_filter");
    json_decref(out);

    /* No candidate at all: the prompt itself was blocked. */
    assert_null(
        fx_parse(adapter(), &dep, IFQ_URL_CHAT, 200, "gemini/response_prompt_blocked.json", &err));
    assert_string_equal(err.type, "content_filter");
    assert_false(err.retryable);
    assert_non_null(strstr(err.message, "SAFETY"));
}

static void parses_embeddings(void **state)
{
    ifq_upstream_err_t err;
    json_t *out =
        fx_parse(adapter(), &dep, IFQ_URL_EMBEDDINGS, 200, "gemini/response_embed.json", &err);
    assert_non_null(out);
    assert_string_equal(fx_str(out, "object"), "list");
    json_t *d0 = json_array_get(json_object_get(out, "data"), 0);
    assert_string_equal(fx_str(d0, "object"), "embedding");
    assert_int_equal(json_array_size(json_object_get(d0, "embedding")), 4);
    assert_int_equal(fx_usage(out, "total_tokens"), 0);
    json_decref(out);
    out = fx_parse(adapter(), &dep, IFQ_URL_EMBEDDINGS, 200, "gemini/response_batch_embed.json",
                   &err);
    assert_non_null(out);
    assert_int_equal(json_array_size(json_object_get(out, "data")), 2);
    assert_int_equal(json_integer_value(
                         json_object_get(json_array_get(json_object_get(out, "data"), 1), "index")),
                     1);
    json_decref(out);
    assert_null(
        fx_parse(adapter(), &dep, IFQ_URL_EMBEDDINGS, 200, "gemini/response_text.json", &err));
    assert_string_equal(err.type, "malformed_response");
}

static void classifies_gemini_errors(void **state)
{
    ifq_upstream_err_t err;
    assert_null(fx_parse(adapter(), &dep, IFQ_URL_CHAT, 429,
                         "gemini/error_resource_exhausted_429.json", &err));
    assert_true(err.retryable);
    assert_string_equal(err.type, "http_429");
    assert_non_null(strstr(err.message, "(RESOURCE_EXHAUSTED): You exceeded your current quota"));
    assert_non_null(strstr(err.message, "(retry in 37s)"));
    assert_null(fx_parse(adapter(), &dep, IFQ_URL_CHAT, 400,
                         "gemini/error_api_key_invalid_400.json", &err));
    assert_false(err.retryable);
    assert_non_null(strstr(err.message, "API key not valid"));
    assert_null(
        fx_parse(adapter(), &dep, IFQ_URL_CHAT, 503, "gemini/error_unavailable_503.json", &err));
    assert_true(err.retryable);
    /* A gRPC status that means "try again" wins over an odd HTTP status. */
    const char *odd = "{\"error\":{\"code\":400,\"message\":\"x\",\"status\":\"UNAVAILABLE\"}}";
    assert_null(adapter()->parse(&dep, IFQ_URL_CHAT, 400, odd, strlen(odd), &err));
    assert_true(err.retryable);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(translates_a_chat_with_tools_images_and_history),
        cmocka_unit_test(maps_generation_options),
        cmocka_unit_test(maps_tool_choice),
        cmocka_unit_test(builds_embedding_requests),
        cmocka_unit_test(refuses_what_it_cannot_express),
        cmocka_unit_test(parses_text_answer_with_thoughts_in_usage),
        cmocka_unit_test(parses_function_calls_and_safety_stops),
        cmocka_unit_test(parses_embeddings),
        cmocka_unit_test(classifies_gemini_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
