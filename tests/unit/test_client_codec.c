/*
 * test_client_codec.c - the C client library's request builder, encoders,
 * decoders and config against the shared wire-contract vectors
 * (schemas/vectors/), through the public API only (inferq/client.h).
 *
 * Runs with the project root as working directory. For every vector:
 * encode(NAME.json) equals NAME.avro byte for byte, decode(NAME.avro) equals
 * NAME.json (parsed values compared), and every proper prefix of NAME.avro
 * is refused. The builder must produce the same bytes as the vector JSON.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inferq/client.h>

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VECTOR_DIR "schemas/vectors"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s (run from the project root)", path);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    *len = n;
    return buf;
}

static char *vector_file(const char *name, const char *ext, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s.%s", VECTOR_DIR, name, ext);
    return slurp(path, len);
}

/* Names of the vectors of one kind ("request" / "result"), from the
 * manifest; NULL-terminated, caller frees the array and the names. */
static char **vector_names(const char *kind)
{
    json_error_t jerr;
    json_t *m = json_load_file(VECTOR_DIR "/manifest.json", 0, &jerr);
    assert_non_null(m);
    json_t *cases = json_object_get(m, "cases");
    char **names = calloc(json_array_size(cases) + 1, sizeof(*names));
    size_t n = 0, i;
    json_t *c;
    json_array_foreach(cases, i, c)
    {
        if (strcmp(json_string_value(json_object_get(c, "kind")), kind) == 0)
            names[n++] = strdup(json_string_value(json_object_get(c, "name")));
    }
    json_decref(m);
    assert_true(n >= 3);
    return names;
}

static void free_names(char **names)
{
    for (char **p = names; *p; p++)
        free(*p);
    free(names);
}

static void assert_json_text_equal(const char *name, const char *got, const json_t *want)
{
    json_error_t jerr;
    json_t *g = json_loads(got, 0, &jerr);
    assert_non_null(g);
    if (!json_equal(g, want)) {
        char *w = json_dumps(want, JSON_COMPACT);
        fail_msg("%s: decoded %s, expected %s", name, got, w);
    }
    json_decref(g);
}

/* ---- requests ------------------------------------------------------------- */

static void test_request_vectors_encode_to_exact_avro_bytes(void **state)
{
    char **names = vector_names("request");
    for (char **p = names; *p; p++) {
        size_t jlen, alen;
        char *json = vector_file(*p, "json", &jlen);
        char *avro = vector_file(*p, "avro", &alen);
        char err[256] = "";
        inferq_request_t *req = inferq_request_from_json(json, jlen, err, sizeof(err));
        if (!req)
            fail_msg("%s: %s", *p, err);
        void *out = NULL;
        size_t olen = 0;
        assert_int_equal(
            inferq_request_encode(req, INFERQ_ENCODING_AVRO, &out, &olen, err, sizeof(err)),
            INFERQ_OK);
        if (olen != alen || memcmp(out, avro, alen) != 0)
            fail_msg("%s: encoded %zu bytes differ from the vector's %zu", *p, olen, alen);
        free(out);

        /* JSON: the same value, compact, custom_id first */
        assert_int_equal(
            inferq_request_encode(req, INFERQ_ENCODING_JSON, &out, &olen, err, sizeof(err)),
            INFERQ_OK);
        assert_true(olen > 0 && memcmp(out, "{\"custom_id\":", 13) == 0);
        assert_null(memchr(out, '\n', olen));
        json_t *want = json_loadb(json, jlen, 0, NULL);
        char *text = strndup(out, olen);
        assert_json_text_equal(*p, text, want);
        free(text);
        json_decref(want);
        free(out);
        inferq_request_destroy(req);
        free(json);
        free(avro);
    }
    free_names(names);
}

static void test_request_vectors_decode_to_their_json(void **state)
{
    char **names = vector_names("request");
    for (char **p = names; *p; p++) {
        size_t jlen, alen;
        char *json = vector_file(*p, "json", &jlen);
        char *avro = vector_file(*p, "avro", &alen);
        char err[256] = "";
        inferq_request_t *req = inferq_request_from_bytes(avro, alen, err, sizeof(err));
        if (!req)
            fail_msg("%s: %s", *p, err);
        json_t *want = json_loadb(json, jlen, 0, NULL);
        char *got = inferq_request_to_json(req);
        assert_json_text_equal(*p, got, want);
        assert_string_equal(inferq_request_custom_id(req),
                            json_string_value(json_object_get(want, "custom_id")));
        free(got);
        json_decref(want);
        inferq_request_destroy(req);

        /* the JSON form decodes through the same entry point */
        req = inferq_request_from_bytes(json, jlen, err, sizeof(err));
        assert_non_null(req);
        inferq_request_destroy(req);
        free(json);
        free(avro);
    }
    free_names(names);
}

static void test_every_proper_prefix_of_a_vector_is_refused(void **state)
{
    const char *kinds[] = {"request", "result"};
    for (int k = 0; k < 2; k++) {
        char **names = vector_names(kinds[k]);
        for (char **p = names; *p; p++) {
            size_t alen;
            char *avro = vector_file(*p, "avro", &alen);
            for (size_t n = 0; n < alen; n++) {
                char err[256] = "";
                if (k == 0) {
                    inferq_request_t *r = inferq_request_from_bytes(avro, n, err, sizeof(err));
                    if (r)
                        fail_msg("%s: a %zu-byte prefix was accepted", *p, n);
                } else {
                    inferq_result_t *r = inferq_result_from_bytes(avro, n, err, sizeof(err));
                    if (r)
                        fail_msg("%s: a %zu-byte prefix was accepted", *p, n);
                }
                assert_true(err[0] != '\0');
            }
            free(avro);
        }
        free_names(names);
    }
}

static void assert_encodes_to_vector(inferq_request_t *req, const char *name)
{
    size_t alen;
    char *avro = vector_file(name, "avro", &alen);
    void *out = NULL;
    size_t olen = 0;
    char err[256] = "";
    if (inferq_request_encode(req, INFERQ_ENCODING_AVRO, &out, &olen, err, sizeof(err)))
        fail_msg("%s: %s", name, err);
    if (olen != alen || memcmp(out, avro, alen) != 0) {
        char *j = inferq_request_to_json(req);
        fail_msg("%s: the builder's %s encodes to %zu bytes unlike the vector's %zu", name, j, olen,
                 alen);
    }
    free(out);
    free(avro);
}

static void test_builder_reproduces_the_minimal_chat_vector(void **state)
{
    inferq_request_t *req = inferq_request_new("req-1");
    assert_non_null(req);
    assert_int_equal(inferq_request_set_model(req, "chat-default"), INFERQ_OK);
    assert_int_equal(inferq_request_add_message(req, "user", "Hi"), INFERQ_OK);
    assert_int_equal(inferq_request_set_param(req, "max_tokens", "64"), INFERQ_OK);
    assert_encodes_to_vector(req, "request_minimal_chat");
    inferq_request_destroy(req);
}

static void test_builder_reproduces_the_all_fields_vector(void **state)
{
    size_t jlen;
    char *json = vector_file("request_all_fields", "json", &jlen);
    json_t *v = json_loadb(json, jlen, 0, NULL);
    free(json);
    char *prompt = json_dumps(json_object_get(v, "prompt"), JSON_COMPACT);
    json_t *body = json_object_get(v, "body");
    char *temp = json_dumps(json_object_get(body, "temperature"), JSON_ENCODE_ANY);

    inferq_request_t *req = inferq_request_new(json_string_value(json_object_get(v, "custom_id")));
    assert_int_equal(inferq_request_set_model(req, "chat-default"), INFERQ_OK);
    assert_int_equal(inferq_request_set_param(req, "max_tokens", "256"), INFERQ_OK);
    assert_int_equal(inferq_request_set_param(req, "temperature", temp), INFERQ_OK);
    assert_int_equal(inferq_request_set_reply_to(req, "inferq.replies.support"), INFERQ_OK);
    assert_int_equal(inferq_request_set_priority(req, INFERQ_PRIORITY_HIGH), INFERQ_OK);
    assert_int_equal(inferq_request_set_deadline_ms(
                         req, (int64_t)json_integer_value(json_object_get(v, "deadline_ms"))),
                     INFERQ_OK);
    assert_int_equal(inferq_request_set_metadata(req, "ticket", "T-1001"), INFERQ_OK);
    assert_int_equal(inferq_request_set_metadata(req, "user", "u-42"), INFERQ_OK);
    assert_int_equal(inferq_request_set_prompt_json(req, prompt), INFERQ_OK);
    assert_encodes_to_vector(req, "request_all_fields");
    inferq_request_destroy(req);
    free(prompt);
    free(temp);
    json_decref(v);
}

static void test_builder_refuses_bad_values(void **state)
{
    char big[600];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_null(inferq_request_new(""));
    assert_null(inferq_request_new(big));
    assert_null(inferq_request_new(NULL));
    big[512] = '\0';
    inferq_request_t *req = inferq_request_new(big); /* exactly 512 bytes */
    assert_non_null(req);
    assert_int_equal(inferq_request_add_message(req, "user", "bad \xff utf-8"), INFERQ_ERR_INVALID);
    assert_int_equal(inferq_request_set_param(req, "max_tokens", "{oops"), INFERQ_ERR_INVALID);
    assert_int_equal(inferq_request_set_body_json(req, "[1,2]"), INFERQ_ERR_INVALID);
    assert_int_equal(inferq_request_set_prompt_json(req, "\"x\""), INFERQ_ERR_INVALID);
    assert_int_equal(inferq_request_set_priority(req, (inferq_priority_t)7), INFERQ_ERR_INVALID);
    assert_int_equal(inferq_request_set_deadline_ms(req, -5), INFERQ_ERR_INVALID);
    /* a raw body replaces the built one */
    assert_int_equal(inferq_request_set_body_json(req, "{\"model\":\"m\",\"input\":\"x\"}"),
                     INFERQ_OK);
    assert_int_equal(inferq_request_set_url(req, "/v1/embeddings"), INFERQ_OK);
    char *j = inferq_request_to_json(req);
    assert_non_null(strstr(j, "\"body\":{\"model\":\"m\",\"input\":\"x\"}"));
    free(j);
    inferq_request_destroy(req);
}

static void test_lines_that_are_not_requests_are_refused_with_a_reason(void **state)
{
    const char *bad[] = {"",
                         "not json",
                         "[1]",
                         "{\"url\":\"/v1/chat/completions\"}",
                         "{\"custom_id\":7}",
                         "{\"custom_id\":\"\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        assert_null(inferq_request_from_json(bad[i], strlen(bad[i]), err, sizeof(err)));
        assert_true(err[0] != '\0');
    }
    /* bytes that are neither JSON nor Avro */
    char err[256] = "";
    assert_null(inferq_request_from_bytes("\xc3\x01\x00", 3, err, sizeof(err)));
    assert_true(err[0] != '\0');
}

static void test_avro_refuses_a_field_outside_the_contract(void **state)
{
    const char *line = "{\"custom_id\":\"x\",\"url\":\"/v1/chat/completions\","
                       "\"body\":{\"model\":\"m\"},\"colour\":\"blue\"}";
    char err[256] = "";
    inferq_request_t *req = inferq_request_from_json(line, strlen(line), err, sizeof(err));
    assert_non_null(req);
    void *out = NULL;
    size_t olen = 0;
    assert_int_equal(
        inferq_request_encode(req, INFERQ_ENCODING_AVRO, &out, &olen, err, sizeof(err)),
        INFERQ_ERR_INVALID);
    assert_null(out);
    assert_non_null(strstr(err, "colour"));
    /* JSON carries it unchanged */
    assert_int_equal(
        inferq_request_encode(req, INFERQ_ENCODING_JSON, &out, &olen, err, sizeof(err)), INFERQ_OK);
    free(out);
    inferq_request_destroy(req);
}

/* ---- results -------------------------------------------------------------- */

static void test_result_vectors_decode_with_their_accessors(void **state)
{
    char **names = vector_names("result");
    for (char **p = names; *p; p++) {
        size_t jlen, alen;
        char *json = vector_file(*p, "json", &jlen);
        char *avro = vector_file(*p, "avro", &alen);
        json_t *want = json_loadb(json, jlen, 0, NULL);
        const char *enc[2] = {avro, json};
        size_t lens[2] = {alen, jlen};
        for (int e = 0; e < 2; e++) {
            char err[256] = "";
            inferq_result_t *res = inferq_result_from_bytes(enc[e], lens[e], err, sizeof(err));
            if (!res)
                fail_msg("%s: %s", *p, err);
            assert_json_text_equal(*p, inferq_result_json(res), want);
            json_t *ext = json_object_get(want, "inferq");
            json_t *error = json_object_get(want, "error");
            json_t *resp = json_object_get(want, "response");
            json_t *usage = json_object_get(ext, "usage");
            assert_string_equal(inferq_result_custom_id(res),
                                json_string_value(json_object_get(want, "custom_id")));
            assert_string_equal(inferq_result_id(res),
                                json_string_value(json_object_get(want, "id")));
            assert_string_equal(inferq_result_status(res),
                                json_string_value(json_object_get(ext, "status")));
            assert_int_equal(inferq_result_ok(res), json_is_null(error));
            if (json_is_null(error)) {
                assert_null(inferq_result_error_code(res));
                assert_int_equal(inferq_result_http_status(res),
                                 json_integer_value(json_object_get(resp, "status_code")));
                assert_json_text_equal(*p, inferq_result_body_json(res),
                                       json_object_get(resp, "body"));
            } else {
                assert_string_equal(inferq_result_error_code(res),
                                    json_string_value(json_object_get(error, "code")));
                assert_string_equal(inferq_result_error_message(res),
                                    json_string_value(json_object_get(error, "message")));
                assert_null(inferq_result_body_json(res));
                assert_null(inferq_result_content(res));
            }
            int64_t pt, ct, tt;
            inferq_result_usage(res, &pt, &ct, &tt);
            assert_int_equal(pt, json_integer_value(json_object_get(usage, "prompt_tokens")));
            assert_int_equal(ct, json_integer_value(json_object_get(usage, "completion_tokens")));
            assert_int_equal(tt, json_integer_value(json_object_get(usage, "total_tokens")));
            assert_true(inferq_result_cost_usd(res) ==
                        json_number_value(json_object_get(ext, "cost_usd")));
            inferq_result_free(res);
        }
        json_decref(want);
        free(json);
        free(avro);
    }
    free_names(names);
}

static void test_success_result_gives_its_answer_text(void **state)
{
    size_t len;
    char *json = vector_file("result_success", "json", &len);
    inferq_result_t *res = inferq_result_from_bytes(json, len, NULL, 0);
    assert_non_null(res);
    json_t *want = json_loadb(json, len, 0, NULL);
    json_t *choice = json_array_get(
        json_object_get(json_object_get(json_object_get(want, "response"), "body"), "choices"), 0);
    assert_string_equal(
        inferq_result_content(res),
        json_string_value(json_object_get(json_object_get(choice, "message"), "content")));
    assert_string_equal(
        inferq_result_deployment(res),
        json_string_value(json_object_get(json_object_get(want, "inferq"), "deployment")));
    json_decref(want);
    inferq_result_free(res);
    free(json);
}

static void test_things_that_are_not_results_are_refused(void **state)
{
    const char *bad[] = {"{}", "[]", "{\"custom_id\":\"\"}", "nope", "{\"custom_id\":1}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        assert_null(inferq_result_from_bytes(bad[i], strlen(bad[i]), err, sizeof(err)));
        assert_true(err[0] != '\0');
    }
    assert_null(inferq_result_from_bytes(NULL, 0, NULL, 0));
    inferq_result_free(NULL);
}

/* ---- config --------------------------------------------------------------- */

static void test_config_checks_keys_and_values(void **state)
{
    inferq_config_t *cfg = inferq_config_new();
    char err[256];
    assert_int_equal(inferq_config_set(cfg, "bootstrap.servers", "h:1", err, sizeof(err)),
                     INFERQ_OK);
    assert_int_equal(inferq_config_set(cfg, "encoding", "avro", err, sizeof(err)), INFERQ_OK);
    assert_int_equal(inferq_config_set(cfg, "encoding", "xml", err, sizeof(err)),
                     INFERQ_ERR_INVALID);
    assert_non_null(strstr(err, "xml"));
    assert_int_equal(inferq_config_set(cfg, "kafka.sasl.mechanism", "PLAIN", err, sizeof(err)),
                     INFERQ_OK);
    assert_int_equal(inferq_config_set(cfg, "kafka.sasl.password", "s3cret", err, sizeof(err)),
                     INFERQ_OK);
    assert_int_equal(inferq_config_set(cfg, "no.such.key", "1", err, sizeof(err)),
                     INFERQ_ERR_INVALID);
    assert_non_null(strstr(err, "no.such.key"));
    assert_int_equal(inferq_config_set(cfg, "max.pending", "0", err, sizeof(err)),
                     INFERQ_ERR_INVALID);
    assert_int_equal(inferq_config_set(cfg, "max.pending", "12x", err, sizeof(err)),
                     INFERQ_ERR_INVALID);
    assert_int_equal(inferq_config_set(cfg, "max.pending", "500", err, sizeof(err)), INFERQ_OK);
    assert_int_equal(inferq_config_set(cfg, "reply.topic", "bad topic!", err, sizeof(err)),
                     INFERQ_ERR_INVALID);
    assert_int_equal(inferq_config_set(cfg, "reply.topic", "inferq.replies", err, sizeof(err)),
                     INFERQ_OK);
    inferq_config_destroy(cfg);
    inferq_config_destroy(NULL);
}

static void test_a_bad_kafka_property_fails_client_creation_without_echoing_it(void **state)
{
    inferq_config_t *cfg = inferq_config_new();
    assert_int_equal(inferq_config_set(cfg, "bootstrap.servers", "127.0.0.1:1", NULL, 0),
                     INFERQ_OK);
    assert_int_equal(inferq_config_set(cfg, "kafka.security.protocol", "bogus-s3cret", NULL, 0),
                     INFERQ_OK);
    char err[512] = "";
    assert_null(inferq_client_new(cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "security.protocol"));
    assert_null(strstr(err, "s3cret"));
    inferq_config_destroy(cfg);

    cfg = inferq_config_new();
    err[0] = '\0';
    assert_null(inferq_client_new(cfg, err, sizeof(err))); /* no bootstrap.servers */
    assert_non_null(strstr(err, "bootstrap.servers"));
    inferq_config_destroy(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_vectors_encode_to_exact_avro_bytes),
        cmocka_unit_test(test_request_vectors_decode_to_their_json),
        cmocka_unit_test(test_every_proper_prefix_of_a_vector_is_refused),
        cmocka_unit_test(test_builder_reproduces_the_minimal_chat_vector),
        cmocka_unit_test(test_builder_reproduces_the_all_fields_vector),
        cmocka_unit_test(test_builder_refuses_bad_values),
        cmocka_unit_test(test_lines_that_are_not_requests_are_refused_with_a_reason),
        cmocka_unit_test(test_avro_refuses_a_field_outside_the_contract),
        cmocka_unit_test(test_result_vectors_decode_with_their_accessors),
        cmocka_unit_test(test_success_result_gives_its_answer_text),
        cmocka_unit_test(test_things_that_are_not_results_are_refused),
        cmocka_unit_test(test_config_checks_keys_and_values),
        cmocka_unit_test(test_a_bad_kafka_property_fails_client_creation_without_echoing_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
