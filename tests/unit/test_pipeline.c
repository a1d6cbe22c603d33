/*
 * test_pipeline.c - the broker's decision for every kind of input: routed,
 * error result with the right code, or dead letter with a readable reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pipeline.h"

static const char cfg_yaml[] = "deployments:\n"
                               "  small:\n"
                               "    base_url: http://127.0.0.1:1/v1\n"
                               "  large:\n"
                               "    base_url: http://127.0.0.1:2/v1\n"
                               "aliases:\n"
                               "  chat-default: [small, large]\n"
                               "broker:\n"
                               "  max_message_bytes: 4096\n";

typedef struct {
    ifq_config_t *cfg;
    ifq_avro_t *avro;
    ifq_pipeline_t p;
} fx_t;

static int setup(void **state)
{
    static fx_t fx;
    char err[512];
    fx.cfg = ifq_config_parse(cfg_yaml, strlen(cfg_yaml), err, sizeof(err));
    fx.avro = ifq_avro_new(err, sizeof(err));
    if (!fx.cfg || !fx.avro)
        return -1;
    fx.p.cfg = fx.cfg;
    fx.p.avro = fx.avro;
    fx.p.rng = 1;
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    ifq_config_destroy(fx->cfg);
    ifq_avro_destroy(fx->avro);
    return 0;
}

static const ifq_msgmeta_t meta = {
    .topic = "inferq.requests", .partition = 3, .offset = 1234, .timestamp = 1700000000000LL};

static void decide(fx_t *fx, const char *in, size_t len, ifq_decision_t *d)
{
    ifq_pipeline_decide(&fx->p, in, len, &meta, 1800000000000LL, d);
    ifq_decision_finish(d);
}

static void routes_an_alias_to_the_first_deployment(void **state)
{
    fx_t *fx = *state;
    const char *in = "{\"custom_id\":\"r1\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\","
                     "\"body\":{\"model\":\"chat-default\",\"messages\":[{\"role\":\"user\","
                     "\"content\":\"hi\"}]},\"metadata\":{\"job\":\"7\"},"
                     "\"inferq\":{\"chain\":[\"forged\"]}}";
    ifq_decision_t d;
    decide(fx, in, strlen(in), &d);
    assert_int_equal(d.kind, IFQ_OUT_ROUTE);
    assert_string_equal(d.topic, "inferq.model.small");
    assert_string_equal(d.state, "routed");
    assert_string_equal(d.custom_id, "r1");
    assert_null(d.error_code);
    json_error_t je;
    json_t *routed = json_loadb(d.value, d.len, 0, &je);
    assert_non_null(routed);
    json_t *ext = json_object_get(routed, "inferq");
    /* The client's own "inferq" field is replaced, never trusted. */
    assert_int_equal(json_array_size(json_object_get(ext, "chain")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(ext, "chain"), 1)),
                        "large");
    assert_string_equal(json_string_value(json_object_get(ext, "id")), d.id);
    assert_string_equal(json_string_value(json_object_get(ext, "model_requested")), "chat-default");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(routed, "metadata"), "job")), "7");
    json_decref(routed);
    ifq_decision_clear(&d);
}

static void unchanged_json_is_forwarded_byte_for_byte(void **state)
{
    fx_t *fx = *state;
    const char *in = "{\"custom_id\":\"r2\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":"
                     "\"chat-default\",\"temperature\":0.7,\"messages\":[{\"role\":\"user\","
                     "\"content\":\"hi\"}]}}  \n";
    ifq_decision_t d;
    decide(fx, in, strlen(in), &d);
    assert_int_equal(d.kind, IFQ_OUT_ROUTE);
    size_t keep = strlen(in) - 4; /* without "}  \n" */
    assert_memory_equal(d.value, in, keep);
    assert_non_null(strstr(d.value, "\"temperature\":0.7,")); /* not 0.69999999999999996 */
    json_error_t je;
    json_t *routed = json_loadb(d.value, d.len, 0, &je);
    assert_non_null(routed);
    assert_string_equal(json_string_value(json_object_get(json_object_get(routed, "inferq"), "id")),
                        d.id);
    json_decref(routed);
    ifq_decision_clear(&d);
}

static void ids_are_stable_per_message(void **state)
{
    char a[32], b[32], c[32];
    ifq_request_id(a, "t", 1, 99, 5);
    ifq_request_id(b, "t", 1, 99, 5);
    ifq_request_id(c, "t", 1, 100, 5);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_int_equal(strncmp(a, "ifq_", 4), 0);
    assert_int_equal(strlen(a), 28);
}

static void keeps_the_callers_trace(void **state)
{
    char tp[56];
    const char *parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    ifq_traceparent(tp, parent, 1);
    assert_int_equal(strncmp(tp, parent, 35), 0);
    assert_string_not_equal(tp + 36, parent + 36); /* a new span id */
    ifq_traceparent(tp, "garbage", 1);
    assert_int_equal(strlen(tp), 55);
    assert_int_equal(strncmp(tp, "00-", 3), 0);
}

/* Inputs that cannot be answered: dead letter with a reason. */
static const struct {
    const char *in;
    size_t len; /* 0: strlen */
    const char *reason;
} dlq_cases[] = {
    {"hello", 0, "neither JSON"},
    {"\xff\xfe", 2, "first byte 0xff"},
    {"", 0, "empty message"},
    {"\xc3\x01\x01\x02\x03", 5, "undecodable Avro"},
    {"[1,2]", 0, "neither JSON"},
    {"{\"custom_id\":", 0, "not valid JSON"},
    {"{\"url\":\"/v1/embeddings\",\"body\":{}}", 0, "custom_id is missing"},
    {"{\"custom_id\":7}", 0, "custom_id must be a string"},
    {"{\"custom_id\":\"\"}", 0, "custom_id must be 1.."},
};

static void undecodable_input_is_dead_lettered(void **state)
{
    fx_t *fx = *state;
    for (size_t i = 0; i < sizeof(dlq_cases) / sizeof(dlq_cases[0]); i++) {
        ifq_decision_t d;
        size_t len = dlq_cases[i].len ? dlq_cases[i].len : strlen(dlq_cases[i].in);
        decide(fx, dlq_cases[i].in, len, &d);
        if (d.kind != IFQ_OUT_DLQ || !strstr(d.reason, dlq_cases[i].reason))
            fail_msg("case %zu: kind %d reason '%s', want DLQ '%s'", i, d.kind, d.reason,
                     dlq_cases[i].reason);
        assert_string_equal(d.topic, "inferq.dlq");
        assert_string_equal(d.error_code, "undecodable");
        ifq_decision_clear(&d);
    }
}

/* Inputs with a custom_id but a defect: an error result with a stable code
 * and a message naming the field. */
static const struct {
    const char *in;
    const char *code;
    const char *words;
} reject_cases[] = {
    {"{\"custom_id\":\"a\",\"body\":{\"model\":\"chat-default\"}}", "unsupported_url",
     "url is missing"},
    {"{\"custom_id\":\"a\",\"url\":\"/v1/images/generations\",\"body\":{\"model\":\"x\"}}",
     "unsupported_url", "/v1/images/generations"},
    {"{\"custom_id\":\"a\",\"url\":\"/v1/"
     "embeddings\",\"body\":{\"model\":\"nope\",\"input\":\"x\"}}",
     "model_not_found", "'nope'"},
    {"{\"custom_id\":\"a\",\"url\":\"/v1/embeddings\",\"body\":\"x\"}", "invalid_request",
     "body must be an object"},
    {"{\"custom_id\":\"a\",\"url\":\"/v1/embeddings\",\"body\":{\"input\":\"x\"}}",
     "invalid_request", "body.model is missing"},
    {"{\"custom_id\":\"a\",\"url\":\"/v1/embeddings\",\"body\":{\"model\":5,\"input\":\"x\"}}",
     "invalid_request", "body.model must be"},
    {"{\"custom_id\":\"a\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"small\"}}",
     "invalid_request", "body.messages"},
    {"{\"custom_id\":\"a\",\"method\":\"GET\",\"url\":\"/v1/"
     "embeddings\",\"body\":{\"model\":\"small\","
     "\"input\":\"x\"}}",
     "invalid_request", "method"},
    {"{\"custom_id\":\"a\",\"url\":\"/v1/"
     "embeddings\",\"body\":{\"model\":\"small\",\"input\":\"x\"},"
     "\"priority\":\"urgent\"}",
     "invalid_request", "priority"},
    {"{\"custom_id\":\"a\",\"url\":\"/v1/"
     "embeddings\",\"body\":{\"model\":\"small\",\"input\":\"x\"},"
     "\"deadline_ms\":\"soon\"}",
     "invalid_request", "deadline_ms"},
    {"{\"custom_id\":\"a\",\"url\":\"/v1/"
     "embeddings\",\"body\":{\"model\":\"small\",\"input\":\"x\"},"
     "\"metadata\":{\"n\":1}}",
     "invalid_request", "metadata"},
    {"{\"custom_id\":\"a\",\"url\":\"/v1/"
     "embeddings\",\"body\":{\"model\":\"small\",\"input\":\"x\"},"
     "\"reply_to\":\"bad topic!\"}",
     "invalid_request", "reply_to"},
    {"{\"custom_id\":\"a\",\"url\":\"/v1/"
     "embeddings\",\"body\":{\"model\":\"small\",\"input\":\"x\"},"
     "\"deadline_ms\":1000}",
     "batch_expired", "deadline_ms"},
};

static void invalid_requests_get_an_error_result(void **state)
{
    fx_t *fx = *state;
    for (size_t i = 0; i < sizeof(reject_cases) / sizeof(reject_cases[0]); i++) {
        ifq_decision_t d;
        decide(fx, reject_cases[i].in, strlen(reject_cases[i].in), &d);
        if (d.kind != IFQ_OUT_RESULT || strcmp(d.error_code, reject_cases[i].code) != 0 ||
            !strstr(d.reason, reject_cases[i].words))
            fail_msg("case %zu: kind %d code %s reason '%s'; want %s '%s'", i, d.kind,
                     d.error_code ? d.error_code : "-", d.reason, reject_cases[i].code,
                     reject_cases[i].words);
        assert_string_equal(d.topic, "inferq.replies");
        json_error_t je;
        json_t *res = json_loadb(d.value, d.len, 0, &je);
        assert_non_null(res);
        assert_string_equal(json_string_value(json_object_get(res, "custom_id")), "a");
        assert_true(json_is_null(json_object_get(res, "response")));
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(res, "error"), "code")),
            reject_cases[i].code);
        json_decref(res);
        ifq_decision_clear(&d);
    }
}

static void errors_go_to_the_requested_reply_topic(void **state)
{
    fx_t *fx = *state;
    const char *in =
        "{\"custom_id\":\"a\",\"reply_to\":\"team.answers\",\"url\":\"/v1/embeddings\","
        "\"body\":{\"model\":\"nope\",\"input\":\"x\"}}";
    ifq_decision_t d;
    decide(fx, in, strlen(in), &d);
    assert_int_equal(d.kind, IFQ_OUT_RESULT);
    assert_string_equal(d.topic, "team.answers");
    ifq_decision_clear(&d);
}

static void oversized_request_is_rejected_by_name(void **state)
{
    fx_t *fx = *state;
    size_t n = 10000;
    char *in = malloc(n + 200);
    int k = snprintf(in, 200,
                     "{\"custom_id\":\"big\",\"url\":\"/v1/embeddings\",\"body\":{\"model\":"
                     "\"small\",\"input\":\"");
    memset(in + k, 'x', n);
    strcpy(in + k + n, "\"}}");
    ifq_decision_t d;
    decide(fx, in, strlen(in), &d);
    assert_int_equal(d.kind, IFQ_OUT_RESULT);
    assert_string_equal(d.error_code, "request_too_large");
    assert_string_equal(d.custom_id, "big");
    /* The error result does not echo the oversized body back. */
    assert_true(d.len < 1024);
    ifq_decision_clear(&d);
    free(in);
}

static void avro_request_is_routed_like_json(void **state)
{
    fx_t *fx = *state;
    json_error_t je;
    json_t *req = json_loads("{\"custom_id\":\"av\",\"method\":\"POST\",\"url\":\"/v1/embeddings\","
                             "\"body\":{\"model\":\"chat-default\",\"input\":\"x\"}}",
                             0, &je);
    void *buf = NULL;
    size_t len = 0;
    char err[256];
    assert_int_equal(ifq_avro_encode(fx->avro, IFQ_AVRO_REQUEST, req, &buf, &len, err, sizeof(err)),
                     0);
    ifq_decision_t d;
    decide(fx, buf, len, &d);
    assert_int_equal(d.kind, IFQ_OUT_ROUTE);
    assert_string_equal(d.custom_id, "av");
    json_t *routed = json_loadb(d.value, d.len, 0, &je);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(routed, "inferq"), "encoding")), "avro");
    json_decref(routed);
    ifq_decision_clear(&d);
    free(buf);
    json_decref(req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(routes_an_alias_to_the_first_deployment),
        cmocka_unit_test(unchanged_json_is_forwarded_byte_for_byte),
        cmocka_unit_test(ids_are_stable_per_message),
        cmocka_unit_test(keeps_the_callers_trace),
        cmocka_unit_test(undecodable_input_is_dead_lettered),
        cmocka_unit_test(invalid_requests_get_an_error_result),
        cmocka_unit_test(errors_go_to_the_requested_reply_topic),
        cmocka_unit_test(oversized_request_is_rejected_by_name),
        cmocka_unit_test(avro_request_is_routed_like_json),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
