/*
 * test_provider_roundtrip.c - every adapter, the same way: build the
 * provider request from one OpenAI body, compare it with the recorded body
 * that tests/fake/smoke.sh sends to inferq-fake-model, parse the answer the
 * fake gave to it (recorded under tests/unit/data/providers/<name>/fake_*),
 * and get the same OpenAI chat.completion back from every dialect. The fake's
 * error shapes classify as the gateway's retry policy says. And no adapter
 * ever puts a key into the URL or the body: keys travel in headers only.
 * Last, every parser is fed truncated and mutated answers and every builder
 * bodies of every wrong shape: refusals, never crashes (run under ASan).
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "provider.h"
#include "provider_fixtures.h"

#define KEY "sk-roundtrip-SECRET-0123456789"
#define AWS_SECRET "aws-secret-SECRET-9876543210"

typedef struct {
    const char *dir;
    ifq_deployment_t dep;
    const char *key_header; /* the one header that carries the key */
    long retry_status;      /* the fake's retryable error recorded for this dialect */
} rt_case_t;

static const rt_case_t cases[] = {
    {"openai",
     {.name = "llama",
      .provider = "openai",
      .base_url = "http://127.0.0.1:9/v1",
      .model = "meta/llama-3"},
     "Authorization",
     529},
    {"azure",
     {.name = "gpt4o",
      .provider = "azure",
      .base_url = "http://127.0.0.1:9",
      .model = "gpt-4o-prod",
      .api_version = "2024-10-21"},
     "api-key",
     529},
    {"anthropic",
     {.name = "claude",
      .provider = "anthropic",
      .base_url = "http://127.0.0.1:9/v1",
      .model = "claude-sonnet-4-5"},
     "x-api-key",
     529},
    {"gemini",
     {.name = "gemini",
      .provider = "gemini",
      .base_url = "http://127.0.0.1:9/v1beta",
      .model = "gemini-2.5-flash"},
     "x-goog-api-key",
     429},
    {"bedrock",
     {.name = "nova",
      .provider = "bedrock",
      .base_url = "http://127.0.0.1:9",
      .model = "anthropic.claude-3-5-sonnet-20240620-v1:0",
      .region = "us-east-1"},
     "Authorization",
     429},
};

static void aws_env(int on)
{
    if (on) {
        setenv("AWS_ACCESS_KEY_ID", "AKIAROUNDTRIP", 1);
        setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET, 1);
    } else {
        unsetenv("AWS_ACCESS_KEY_ID");
        unsetenv("AWS_SECRET_ACCESS_KEY");
    }
    unsetenv("AWS_SESSION_TOKEN");
}

static void every_adapter_builds_what_the_fake_accepts(void **state)
{
    aws_env(1);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const rt_case_t *c = &cases[i];
        const ifq_provider_t *p = ifq_provider_find(c->dep.provider);
        assert_non_null(p);
        ifq_http_req_t req;
        ifq_upstream_err_t err;
        /* Bedrock signs with the AWS keys; the others send the api key. */
        int bedrock = strcmp(c->dir, "bedrock") == 0;
        int rc = fx_build(p, &c->dep, IFQ_URL_CHAT, "common/chat_hi.openai.json",
                          bedrock ? NULL : KEY, &req, &err);
        if (rc != IFQ_OK)
            fail_msg("%s: %s", c->dir, err.message);
        char rel[128];
        snprintf(rel, sizeof(rel), "%s/chat_hi.request.json", c->dir);
        fx_assert_body(&req, rel);
        assert_true(strncmp(req.url, "http://127.0.0.1:9/", 19) == 0);
        assert_non_null(fx_header(&req, c->key_header));
        free(req.body);
    }
    aws_env(0);
}

static void every_dialect_answers_the_same_chat_completion(void **state)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const rt_case_t *c = &cases[i];
        const ifq_provider_t *p = ifq_provider_find(c->dep.provider);
        char rel[128];
        snprintf(rel, sizeof(rel), "%s/fake_chat_hi.response.json", c->dir);
        ifq_upstream_err_t err;
        json_t *out = fx_parse(p, &c->dep, IFQ_URL_CHAT, 200, rel, &err);
        if (!out)
            fail_msg("%s: %s", c->dir, err.message);
        assert_string_equal(fx_str(out, "object"), "chat.completion");
        assert_true(json_is_string(json_object_get(out, "id")));
        assert_true(json_is_integer(json_object_get(out, "created")));
        assert_true(json_is_string(json_object_get(out, "model")));
        json_t *choice = json_array_get(json_object_get(out, "choices"), 0);
        assert_int_equal(json_integer_value(json_object_get(choice, "index")), 0);
        assert_string_equal(fx_str(choice, "finish_reason"), "stop");
        assert_string_equal(fx_str(fx_message(out), "role"), "assistant");
        assert_string_equal(fx_str(fx_message(out), "content"), "echo: Hi");
        /* The fake counts "be nice" + "Hi" as 2 + 1 tokens in every dialect. */
        assert_int_equal(fx_usage(out, "prompt_tokens"), 3);
        assert_int_equal(fx_usage(out, "completion_tokens"), 2);
        assert_int_equal(fx_usage(out, "total_tokens"), 5);
        json_decref(out);
    }
}

static void the_fakes_error_shapes_classify_per_the_retry_policy(void **state)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const rt_case_t *c = &cases[i];
        const ifq_provider_t *p = ifq_provider_find(c->dep.provider);
        char rel[128];
        ifq_upstream_err_t err;
        snprintf(rel, sizeof(rel), "%s/fake_error_%ld.json", c->dir, c->retry_status);
        assert_null(fx_parse(p, &c->dep, IFQ_URL_CHAT, c->retry_status, rel, &err));
        if (!err.retryable || !strstr(err.message, "injected by inferq-fake-model"))
            fail_msg("%s %ld: retryable %d, \"%s\"", c->dir, c->retry_status, err.retryable,
                     err.message);
        snprintf(rel, sizeof(rel), "%s/fake_error_400.json", c->dir);
        assert_null(fx_parse(p, &c->dep, IFQ_URL_CHAT, 400, rel, &err));
        assert_false(err.retryable);
        assert_string_equal(err.type, "http_400");
        assert_non_null(strstr(err.message, "Injected error status 400"));
    }
}

/* For every adapter and every kind it accepts, the key is in exactly one
 * header and nowhere else. */
static void no_adapter_puts_a_key_into_the_url_or_body(void **state)
{
    static const struct {
        ifq_url_kind_t kind;
        const char *body;
    } bodies[] = {
        {IFQ_URL_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}"},
        {IFQ_URL_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"Hi\"}"},
        {IFQ_URL_EMBEDDINGS, "{\"model\":\"m\",\"input\":\"Hi\"}"},
        {IFQ_URL_EMBEDDINGS, "{\"model\":\"m\",\"input\":[\"a\",\"b\"]}"},
    };
    aws_env(1);
    int built = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const rt_case_t *c = &cases[i];
        const ifq_provider_t *p = ifq_provider_find(c->dep.provider);
        for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++) {
            for (int with_key = 0; with_key < 2; with_key++) {
                json_error_t je;
                json_t *body = json_loads(bodies[b].body, 0, &je);
                ifq_http_req_t req;
                ifq_upstream_err_t err = {0};
                int rc = p->build(&c->dep, bodies[b].kind, body, with_key ? KEY : NULL, &req, &err);
                json_decref(body);
                if (rc != IFQ_OK) {
                    /* Refusing is fine (embeddings on Anthropic); leaking is not. */
                    assert_null(strstr(err.message, KEY));
                    continue;
                }
                built++;
                int in_url, in_body;
                int n = fx_places(&req, KEY, &in_url, &in_body);
                if (in_url || in_body || n != with_key)
                    fail_msg("%s kind %d: key in url %d, body %d, %d places", c->dir,
                             (int)bodies[b].kind, in_url, in_body, n);
                if (with_key) {
                    const char *v = fx_header(&req, c->key_header);
                    assert_non_null(v);
                    assert_non_null(strstr(v, KEY));
                }
                /* The AWS secret never travels at all, not even to libcurl. */
                assert_int_equal(fx_places(&req, AWS_SECRET, &in_url, &in_body), 0);
                assert_null(strstr(req.userpwd, AWS_SECRET));
                /* Gemini's documented ?key= form is never used. */
                assert_null(strstr(req.url, "key="));
                free(req.body);
            }
        }
    }
    assert_true(built >= 20);
    aws_env(0);
}

/* Parses every recorded answer cut at every length and with bytes flipped,
 * under every status class: no adapter may crash, and a NULL answer always
 * comes with an error type and message (run under ASan to mean it). */
static void parse_survives_truncated_and_mutated_answers(void **state)
{
    static const long statuses[] = {200, 429, 500};
    unsigned seed = 12345;
    size_t parsed = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const rt_case_t *c = &cases[i];
        const ifq_provider_t *p = ifq_provider_find(c->dep.provider);
        char dirpath[256];
        snprintf(dirpath, sizeof(dirpath), FX_DIR "%s", c->dir);
        DIR *d = opendir(dirpath);
        assert_non_null(d);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            size_t nl = strlen(e->d_name);
            if (nl < 6 || strcmp(e->d_name + nl - 5, ".json") != 0 || strstr(e->d_name, "request"))
                continue;
            char rel[300], *body;
            size_t len;
            snprintf(rel, sizeof(rel), "%s/%s", c->dir, e->d_name);
            body = fx_read(rel, &len);
            char *copy = malloc(len + 1);
            assert_non_null(copy);
            for (int k = 0; k < 3; k++) {
                for (ifq_url_kind_t kind = IFQ_URL_CHAT; kind <= IFQ_URL_EMBEDDINGS; kind++) {
                    for (size_t cut = 0; cut <= len; cut += (k == 0 ? 1 : 7)) {
                        /* Exactly cut bytes, no terminator: parsers get a length. */
                        memcpy(copy, body, cut);
                        ifq_upstream_err_t err = {0};
                        json_t *out = p->parse(&c->dep, kind, statuses[k], copy, cut, &err);
                        if (!out && (!err.type[0] || !err.message[0]))
                            fail_msg("%s cut at %zu: NULL without an error", rel, cut);
                        json_decref(out);
                        parsed++;
                    }
                    for (int m = 0; m < 50; m++) {
                        memcpy(copy, body, len);
                        for (int f = 0; f < 3 && len > 0; f++) {
                            seed = seed * 1103515245u + 12345u;
                            copy[(seed >> 8) % len] = (char)(seed >> 20);
                        }
                        ifq_upstream_err_t err = {0};
                        json_t *out = p->parse(&c->dep, kind, statuses[k], copy, len, &err);
                        if (!out && (!err.type[0] || !err.message[0]))
                            fail_msg("%s mutated: NULL without an error", rel);
                        json_decref(out);
                        parsed++;
                    }
                }
            }
            free(copy);
            free(body);
        }
        closedir(d);
    }
    assert_true(parsed > 10000);
}

/* Replaces every node of an OpenAI body, one at a time, with a value of
 * every other JSON type, and builds it with every adapter: a body of the
 * wrong shape is refused with a reason, never a crash. */
static void build_survives_bodies_of_every_wrong_shape(void **state)
{
    json_t *orig = fx_json("common/chat_tools.openai.json");
    /* Collect the paths to every node by walking a worklist of (parent, key/index). */
    json_t *subst[] = {json_null(),  json_integer(-1), json_string(""),
                       json_array(), json_object(),    json_true()};
    size_t tried = 0;
    json_t *stack[256];
    size_t sp = 0;
    stack[sp++] = orig;
    aws_env(1);
    while (sp > 0) {
        json_t *node = stack[--sp];
        size_t n = json_is_array(node) ? json_array_size(node) : json_object_size(node);
        void *iter = json_is_object(node) ? json_object_iter(node) : NULL;
        for (size_t idx = 0; idx < n; idx++) {
            json_t *child =
                json_is_array(node) ? json_array_get(node, idx) : json_object_iter_value(iter);
            const char *key = json_is_object(node) ? json_object_iter_key(iter) : NULL;
            json_incref(child);
            for (size_t s = 0; s < sizeof(subst) / sizeof(subst[0]); s++) {
                if (key)
                    json_object_set(node, key, subst[s]);
                else
                    json_array_set(node, idx, subst[s]);
                for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                    const ifq_provider_t *p = ifq_provider_find(cases[i].dep.provider);
                    for (ifq_url_kind_t kind = IFQ_URL_CHAT; kind <= IFQ_URL_EMBEDDINGS; kind++) {
                        ifq_http_req_t req;
                        ifq_upstream_err_t err = {0};
                        int rc = p->build(&cases[i].dep, kind, orig, KEY, &req, &err);
                        if (rc == IFQ_OK)
                            free(req.body);
                        else if (!err.message[0])
                            fail_msg("%s refused without a reason", cases[i].dir);
                        tried++;
                    }
                }
            }
            if (key)
                json_object_set(node, key, child);
            else
                json_array_set(node, idx, child);
            if ((json_is_object(child) || json_is_array(child)) && sp < 256)
                stack[sp++] = child;
            json_decref(child);
            if (iter)
                iter = json_object_iter_next(node, iter);
        }
    }
    aws_env(0);
    for (size_t s = 0; s < sizeof(subst) / sizeof(subst[0]); s++)
        json_decref(subst[s]);
    json_decref(orig);
    assert_true(tried > 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_adapter_builds_what_the_fake_accepts),
        cmocka_unit_test(every_dialect_answers_the_same_chat_completion),
        cmocka_unit_test(the_fakes_error_shapes_classify_per_the_retry_policy),
        cmocka_unit_test(no_adapter_puts_a_key_into_the_url_or_body),
        cmocka_unit_test(parse_survives_truncated_and_mutated_answers),
        cmocka_unit_test(build_survives_bodies_of_every_wrong_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
