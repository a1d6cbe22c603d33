/*
 * test_provider_bedrock.c - the Bedrock Converse adapter and its SigV4
 * signer. The signer is checked against AWS's published SigV4 test-suite
 * vectors (get-vanilla, post-vanilla), FIPS/RFC hash vectors, libcurl's
 * CURLOPT_AWS_SIGV4 (a path both sign alike) and botocore's SigV4Auth (a
 * model id with ':' that libcurl 7.88 signs wrongly). The adapter is checked
 * on bodies shaped like the Converse API reference
 * (tests/unit/data/providers/bedrock/).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "provider.h"
#include "provider_fixtures.h"
#include "sigv4.h"

#define AK "AKIDEXAMPLE"
#define SK "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

static ifq_deployment_t dep = {.name = "claude-bedrock",
                               .provider = "bedrock",
                               .base_url = "https://bedrock-runtime.us-east-1.amazonaws.com",
                               .model = "anthropic.claude-3-5-sonnet-20240620-v1:0",
                               .region = "us-east-1"};

static const ifq_provider_t *adapter(void)
{
    const ifq_provider_t *p = ifq_provider_find("bedrock");
    assert_non_null(p);
    return p;
}

static void hex32(const uint8_t *d, char *out)
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void sha256_and_hmac_match_published_vectors(void **state)
{
    uint8_t d[32];
    char h[65];
    ifq_sha256("", 0, d);
    hex32(d, h);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    ifq_sha256("abc", 3, d);
    hex32(d, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    /* Two blocks (FIPS 180-2 example). */
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    ifq_sha256(m, strlen(m), d);
    hex32(d, h);
    assert_string_equal(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* RFC 4231 test case 2. */
    const char *data = "what do ya want for nothing?";
    ifq_hmac_sha256("Jefe", 4, data, strlen(data), d);
    hex32(d, h);
    assert_string_equal(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* RFC 4231 test case 6: a key longer than the block. */
    uint8_t key[131];
    memset(key, 0xaa, sizeof(key));
    const char *big = "Test Using Larger Than Block-Size Key - Hash Key First";
    ifq_hmac_sha256(key, sizeof(key), big, strlen(big), d);
    hex32(d, h);
    assert_string_equal(h, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void sigv4_matches_the_aws_test_suite(void **state)
{
    ifq_sigv4_header_t h[] = {{"Host", "example.amazonaws.com"},
                              {"X-Amz-Date", "20150830T123600Z"}};
    char auth[400];
    assert_int_equal(ifq_sigv4_authorization("GET", "/", "", h, 2, NULL, 0, "us-east-1", "service",
                                             AK, SK, "20150830T123600Z", auth, sizeof(auth)),
                     0);
    assert_string_equal(
        auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
              "aws4_request, SignedHeaders=host;x-amz-date, "
              "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    assert_int_equal(ifq_sigv4_authorization("POST", "/", "", h, 2, NULL, 0, "us-east-1", "service",
                                             AK, SK, "20150830T123600Z", auth, sizeof(auth)),
                     0);
    assert_non_null(
        strstr(auth, "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"));
    /* Out of bounds is refused, not truncated. */
    assert_int_equal(ifq_sigv4_authorization("GET", "/", "a=b", h, 2, NULL, 0, "us-east-1", "s", AK,
                                             SK, "20150830T123600Z", auth, sizeof(auth)),
                     -1);
    assert_int_equal(ifq_sigv4_authorization("GET", "/", "", h, 2, NULL, 0, "us-east-1", "s", AK,
                                             SK, "20150830T123600Z", auth, 20),
                     -1);
    char date[17];
    ifq_sigv4_date(1440938160, date);
    assert_string_equal(date, "20150830T123600Z");
}

static void sigv4_matches_libcurl_and_botocore_on_converse_requests(void **state)
{
    const char *body = "{\"a\":1}";
    char auth[400];
    ifq_sigv4_header_t h[] = {{"Content-Type", "application/json"},
                              {"Host", "example.amazonaws.com"},
                              {"X-Amz-Date", "20150830T123600Z"},
                              {"X-Amz-Security-Token", "TOKEN123"}};
    /* The signature libcurl 7.88's CURLOPT_AWS_SIGV4 computes for this
     * request (a path without characters that need encoding). */
    assert_int_equal(ifq_sigv4_authorization("POST", "/model/abc.def-v1/converse", "", h, 4, body,
                                             strlen(body), "us-east-1", "bedrock", AK, SK,
                                             "20150830T123600Z", auth, sizeof(auth)),
                     0);
    assert_string_equal(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/"
                              "aws4_request, SignedHeaders=content-type;host;x-amz-date;"
                              "x-amz-security-token, Signature=593a3b460f3613104d537dbdf40c001d6ec7"
                              "e2d9b965b3f2660949d284289a3e");
    /* The signature botocore 1.43 (SigV4Auth) computes for a model id with
     * ':' sent as %3A: the canonical path encodes it again (%253A). */
    h[1].value = "bedrock-runtime.us-east-1.amazonaws.com";
    assert_int_equal(ifq_sigv4_authorization(
                         "POST", "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse", "",
                         h, 4, body, strlen(body), "us-east-1", "bedrock", AK, SK,
                         "20150830T123600Z", auth, sizeof(auth)),
                     0);
    assert_non_null(
        strstr(auth, "Signature=00aaa42c5a03e50682295855509544c6afe8d57bfc683a653ae5e7b3b40e0a5f"));
}

static void set_credentials(void)
{
    setenv("AWS_ACCESS_KEY_ID", AK, 1);
    setenv("AWS_SECRET_ACCESS_KEY", SK, 1);
    setenv("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEXAMPLETOKEN", 1);
}

static void clear_credentials(void)
{
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
}

static void translates_and_signs_a_converse_request(void **state)
{
    set_credentials();
    ifq_http_req_t req;
    ifq_upstream_err_t err;
    assert_int_equal(
        fx_build(adapter(), &dep, IFQ_URL_CHAT, "common/chat_tools.openai.json", NULL, &req, &err),
        IFQ_OK);
    assert_string_equal(req.url, "https://bedrock-runtime.us-east-1.amazonaws.com/model/"
                                 "anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse");
    fx_assert_body(&req, "bedrock/chat_tools.request.json");
    /* Signed here, so libcurl must not sign again. */
    assert_string_equal(req.aws_sigv4, "");
    assert_string_equal(req.userpwd, "");
    assert_string_equal(fx_header(&req, "Host"), "bedrock-runtime.us-east-1.amazonaws.com");
    assert_string_equal(fx_header(&req, "X-Amz-Security-Token"), "FwoGZXIvYXdzEXAMPLETOKEN");
    const char *date = fx_header(&req, "X-Amz-Date");
    assert_non_null(date);
    assert_int_equal(strlen(date), 16);
    /* The signature is over exactly what is sent: recompute it. */
    ifq_sigv4_header_t h[] = {{"Content-Type", "application/json"},
                              {"Host", "bedrock-runtime.us-east-1.amazonaws.com"},
                              {"X-Amz-Date", date},
                              {"X-Amz-Security-Token", "FwoGZXIvYXdzEXAMPLETOKEN"}};
    char want[400];
    assert_int_equal(ifq_sigv4_authorization(
                         "POST", "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse", "",
                         h, 4, req.body, req.body_len, "us-east-1", "bedrock", AK, SK, date, want,
                         sizeof(want)),
                     0);
    assert_string_equal(fx_header(&req, "Authorization"), want);
    /* The secret key appears nowhere in the request. */
    int in_url, in_body;
    assert_int_equal(fx_places(&req, SK, &in_url, &in_body), 0);
    free(req.body);
    clear_credentials();
}

static void uses_configured_env_vars_or_a_bedrock_api_key(void **state)
{
    clear_credentials();
    ifq_deployment_t d = dep;
    d.aws_access_key_env = "IFQ_TEST_AK";
    d.aws_secret_key_env = "IFQ_TEST_SK";
    d.aws_session_token_env = "IFQ_TEST_TOKEN";
    ifq_http_req_t req;
    ifq_upstream_err_t err;
    assert_int_equal(
        fx_build(adapter(), &d, IFQ_URL_CHAT, "common/chat_hi.openai.json", NULL, &req, &err),
        IFQ_ERR_INVALID);
    assert_string_equal(err.type, "invalid_request");
    assert_non_null(strstr(err.message, "IFQ_TEST_AK and IFQ_TEST_SK"));
    setenv("IFQ_TEST_AK", "AKIAOTHER", 1);
    setenv("IFQ_TEST_SK", "other-secret-key", 1);
    assert_int_equal(
        fx_build(adapter(), &d, IFQ_URL_CHAT, "common/chat_hi.openai.json", NULL, &req, &err),
        IFQ_OK);
    assert_non_null(strstr(fx_header(&req, "Authorization"), "Credential=AKIAOTHER/"));
    assert_non_null(
        strstr(fx_header(&req, "Authorization"), "SignedHeaders=content-type;host;x-amz-date,"));
    assert_null(fx_header(&req, "X-Amz-Security-Token"));
    fx_assert_body(&req, "bedrock/chat_hi.request.json");
    free(req.body);
    /* A session token too long for a header is refused with a clear reason. */
    char tok[2100];
    memset(tok, 'T', sizeof(tok) - 1);
    tok[sizeof(tok) - 1] = '\0';
    setenv("IFQ_TEST_TOKEN", tok, 1);
    assert_int_equal(
        fx_build(adapter(), &d, IFQ_URL_CHAT, "common/chat_hi.openai.json", NULL, &req, &err),
        IFQ_ERR_INVALID);
    assert_non_null(strstr(err.message, "IFQ_TEST_TOKEN"));
    unsetenv("IFQ_TEST_TOKEN");
    unsetenv("IFQ_TEST_AK");
    unsetenv("IFQ_TEST_SK");

    /* With an api_key (a Bedrock API key) no signature is needed. */
    assert_int_equal(fx_build(adapter(), &dep, IFQ_URL_CHAT, "common/chat_hi.openai.json",
                              "ABSKQmVkcm9ja0FQSUtleS1example", &req, &err),
                     IFQ_OK);
    assert_string_equal(fx_header(&req, "Authorization"), "Bearer ABSKQmVkcm9ja0FQSUtleS1example");
    assert_null(fx_header(&req, "X-Amz-Date"));
    free(req.body);
}

static void maps_tool_choice(void **state)
{
    set_credentials();
    static const struct {
        const char *choice;
        const char *want; /* toolChoice, or NULL for no toolConfig at all */
    } cases[] = {
        {"\"required\"", "{\"any\":{}}"},
        {"{\"type\":\"function\",\"function\":{\"name\":\"f\"}}", "{\"tool\":{\"name\":\"f\"}}"},
        {"\"none\"", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char json[512];
        snprintf(json, sizeof(json),
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":"
                 "\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":%s}",
                 cases[i].choice);
        json_error_t je;
        json_t *body = json_loads(json, 0, &je);
        ifq_http_req_t req;
        ifq_upstream_err_t err = {0};
        assert_int_equal(adapter()->build(&dep, IFQ_URL_CHAT, body, NULL, &req, &err), IFQ_OK);
        json_t *sent = json_loads(req.body, 0, &je);
        json_t *tc = json_object_get(sent, "toolConfig");
        if (!cases[i].want) {
            assert_null(tc);
        } else {
            json_t *want = json_loads(cases[i].want, 0, &je);
            fx_assert_json_equal(json_object_get(tc, "toolChoice"), want, cases[i].choice);
            json_decref(want);
            assert_string_equal(
                fx_str(json_object_get(
                           json_object_get(
                               json_object_get(json_array_get(json_object_get(tc, "tools"), 0),
                                               "toolSpec"),
                               "inputSchema"),
                           "json"),
                       "type"),
                "object");
        }
        json_decref(sent);
        json_decref(body);
        free(req.body);
    }
    clear_credentials();
}

static void refuses_what_it_cannot_express(void **state)
{
    set_credentials();
    const ifq_provider_t *p = adapter();
    fx_assert_refused(p, &dep, IFQ_URL_EMBEDDINGS, "{\"input\":\"x\"}", "unsupported",
                      "embeddings");
    fx_assert_refused(p, &dep, IFQ_URL_CHAT,
                      "{\"n\":2,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                      "unsupported", "\"n\"");
    fx_assert_refused(p, &dep, IFQ_URL_CHAT,
                      "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
                      "\"image_url\":{\"url\":\"data:image/tiff;base64,AAAA\"}}]}]}",
                      "unsupported", "png, jpeg");
    fx_assert_refused(p, &dep, IFQ_URL_CHAT,
                      "{\"response_format\":{\"type\":\"json_schema\"},\"messages\":[{\"role\":"
                      "\"user\",\"content\":\"x\"}]}",
                      "unsupported", "response_format");
    clear_credentials();
}

static void parses_converse_answers(void **state)
{
    ifq_upstream_err_t err;
    json_t *out = fx_parse(adapter(), &dep, IFQ_URL_CHAT, 200, "bedrock/response_text.json", &err);
    assert_non_null(out);
    assert_string_equal(fx_str(out, "object"), "chat.completion");
    assert_string_equal(fx_str(out, "model"), "anthropic.claude-3-5-sonnet-20240620-v1:0");
    assert_true(strncmp(fx_str(out, "id"), "chatcmpl-", 9) == 0);
    assert_string_equal(fx_str(fx_message(out), "content"),
                        "Here is a list of 3 pop songs by artists from the United Kingdom.");
    assert_string_equal(fx_str(json_array_get(json_object_get(out, "choices"), 0), "finish_reason"),
                        "stop");
    assert_int_equal(fx_usage(out, "prompt_tokens"), 125);
    assert_int_equal(fx_usage(out, "completion_tokens"), 60);
    assert_int_equal(fx_usage(out, "total_tokens"), 185);
    json_decref(out);

    out = fx_parse(adapter(), &dep, IFQ_URL_CHAT, 200, "bedrock/response_tool_use.json", &err);
    assert_non_null(out);
    json_t *tc = json_array_get(json_object_get(fx_message(out), "tool_calls"), 0);
    assert_string_equal(fx_str(tc, "id"), "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
    assert_string_equal(fx_str(json_object_get(tc, "function"), "name"), "top_song");
    assert_string_equal(fx_str(json_object_get(tc, "function"), "arguments"),
                        "{\"sign\":\"WZPZ\"}");
    assert_string_equal(fx_str(json_array_get(json_object_get(out, "choices"), 0), "finish_reason"),
                        "tool_calls");
    assert_int_equal(fx_usage(out, "prompt_tokens"), 400); /* 375 + 25 cache reads */
    json_decref(out);

    out = fx_parse(adapter(), &dep, IFQ_URL_CHAT, 200, "bedrock/response_guardrail.json", &err);
    assert_non_null(out);
    assert_string_equal(fx_str(json_array_get(json_object_get(out, "choices"), 0), "finish_reason"),
                        "content_filter");
    json_decref(out);

    out = fx_parse(adapter(), &dep, IFQ_URL_COMPLETIONS, 200, "bedrock/response_text.json", &err);
    assert_non_null(out);
    assert_string_equal(fx_str(out, "object"), "text_completion");
    json_decref(out);

    assert_null(adapter()->parse(&dep, IFQ_URL_CHAT, 200, "{\"output\":{}}", 13, &err));
    assert_string_equal(err.type, "malformed_response");
}

static void classifies_bedrock_errors(void **state)
{
    static const struct {
        long status;
        const char *file;
        int retryable;
        const char *needle;
    } cases[] = {
        {429, "bedrock/error_throttling_429.json", 1, "(ThrottlingException): Too many requests"},
        {400, "bedrock/error_validation_400.json", 0, "(ValidationException): The provided model"},
        {429, "bedrock/error_model_not_ready_429.json", 1, "(ModelNotReadyException)"},
        {503, "bedrock/error_service_unavailable_503.json", 1, "(ServiceUnavailableException)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ifq_upstream_err_t err;
        assert_null(fx_parse(adapter(), &dep, IFQ_URL_CHAT, cases[i].status, cases[i].file, &err));
        assert_int_equal(err.retryable, cases[i].retryable);
        if (!strstr(err.message, cases[i].needle))
            fail_msg("%s: \"%s\" lacks \"%s\"", cases[i].file, err.message, cases[i].needle);
    }
    /* ModelErrorException (424) is not retried; a ValidationException is
     * never retried, even if it came with a retryable status. */
    ifq_upstream_err_t err = {0};
    const char *me = "{\"message\":\"The model failed.\"}";
    assert_null(adapter()->parse(&dep, IFQ_URL_CHAT, 424, me, strlen(me), &err));
    assert_false(err.retryable);
    assert_non_null(strstr(err.message, "ModelErrorException"));
    const char *ve = "{\"__type\":\"ValidationException:http://internal.amazon.com/coral/\","
                     "\"message\":\"bad\"}";
    assert_null(adapter()->parse(&dep, IFQ_URL_CHAT, 500, ve, strlen(ve), &err));
    assert_false(err.retryable);
    assert_non_null(strstr(err.message, "(ValidationException): bad"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sha256_and_hmac_match_published_vectors),
        cmocka_unit_test(sigv4_matches_the_aws_test_suite),
        cmocka_unit_test(sigv4_matches_libcurl_and_botocore_on_converse_requests),
        cmocka_unit_test(translates_and_signs_a_converse_request),
        cmocka_unit_test(uses_configured_env_vars_or_a_bedrock_api_key),
        cmocka_unit_test(maps_tool_choice),
        cmocka_unit_test(refuses_what_it_cannot_express),
        cmocka_unit_test(parses_converse_answers),
        cmocka_unit_test(classifies_bedrock_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
