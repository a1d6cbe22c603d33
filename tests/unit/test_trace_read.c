/*
 * test_trace_read.c - lib/trace_read: OTLP/JSON spans parsed into a flat,
 * ordered list; malformed messages and spans skipped and counted; and the
 * Kafka reader against librdkafka's mock cluster (loopback only): only
 * messages keyed by the trace id are kept, and the reader stops at the end
 * of every partition.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "trace_read.h"

#define TID "0af7651916cd43dd8448eb211c80319c"
#define OTHER "11111111111111111111111111111111"

/* One OTLP message with the given spans (JSON text of the spans array). */
static char *otlp(const char *service, const char *spans)
{
    size_t n = strlen(spans) + 512;
    char *s = malloc(n);
    snprintf(s, n,
             "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
             "\"value\":{\"stringValue\":\"%s\"}}]},\"scopeSpans\":[{\"scope\":{\"name\":"
             "\"inferq\"},\"spans\":%s}]}]}",
             service, spans);
    return s;
}

static const char broker_spans[] =
    "[{\"traceId\":\"" TID "\",\"spanId\":\"00f067aa0ba902b7\",\"name\":\"broker.receive\","
    "\"kind\":5,\"startTimeUnixNano\":\"1700000000000000000\",\"endTimeUnixNano\":"
    "\"1700000000004000000\",\"attributes\":[{\"key\":\"inferq.custom_id\",\"value\":"
    "{\"stringValue\":\"r1\"}},{\"key\":\"inferq.attempt\",\"value\":{\"intValue\":\"2\"}},"
    "{\"key\":\"inferq.cost\",\"value\":{\"doubleValue\":0.5}},{\"key\":\"inferq.cached\","
    "\"value\":{\"boolValue\":false}},{\"key\":\"gen_ai.response.finish_reasons\",\"value\":"
    "{\"arrayValue\":{\"values\":[{\"stringValue\":\"stop\"}]}}}],\"status\":{\"code\":1}},"
    " {\"traceId\":\"" TID "\",\"spanId\":\"00f067aa0ba902b8\",\"parentSpanId\":"
    "\"00f067aa0ba902b7\",\"name\":\"route\",\"kind\":1,\"startTimeUnixNano\":"
    "\"1700000000001000000\",\"endTimeUnixNano\":\"1700000000002000000\"},"
    " {\"traceId\":\"" OTHER "\",\"spanId\":\"00f067aa0ba902b9\",\"name\":\"other\","
    "\"startTimeUnixNano\":\"1\",\"endTimeUnixNano\":\"2\"}]";

static const char worker_spans[] =
    "[{\"traceId\":\"" TID "\",\"spanId\":\"aaaaaaaaaaaaaaa1\",\"parentSpanId\":"
    "\"00f067aa0ba902b7\",\"name\":\"worker.attempt\",\"kind\":\"SPAN_KIND_CONSUMER\","
    "\"startTimeUnixNano\":1700000000005000000,\"endTimeUnixNano\":\"1700000000105000000\","
    "\"status\":{\"code\":\"STATUS_CODE_ERROR\",\"message\":\"upstream 503\"}},"
    " {\"traceId\":\"" TID "\",\"spanId\":\"aaaaaaaaaaaaaaa2\",\"parentSpanId\":"
    "\"aaaaaaaaaaaaaaa1\",\"name\":\"chat fake-chat\",\"kind\":3,\"startTimeUnixNano\":"
    "\"1700000000006000000\",\"endTimeUnixNano\":\"1700000000100000000\","
    "\"attributes\":[{\"key\":\"gen_ai.usage.output_tokens\",\"value\":{\"intValue\":17}}]}]";

static void spans_of_the_trace_are_parsed_with_their_attributes(void **state)
{
    (void)state;
    ifq_trace_t t;
    ifq_trace_init(&t);
    char *m = otlp("inferq-broker", broker_spans);
    assert_int_equal(ifq_trace_add_otlp(&t, TID, m, strlen(m)), 2); /* not the other trace */
    free(m);
    assert_int_equal(t.n, 2);
    assert_int_equal(t.malformed, 0);
    const ifq_span_t *s = &t.spans[0];
    assert_string_equal(s->service, "inferq-broker");
    assert_string_equal(s->name, "broker.receive");
    assert_string_equal(s->span_id, "00f067aa0ba902b7");
    assert_string_equal(s->parent_id, "");
    assert_int_equal(s->kind, 5);
    assert_true(s->start_ns == 1700000000000000000LL);
    assert_true(s->end_ns == 1700000000004000000LL);
    assert_int_equal(s->status_code, 1);
    assert_string_equal(json_string_value(json_object_get(s->attributes, "inferq.custom_id")),
                        "r1");
    assert_int_equal(json_integer_value(json_object_get(s->attributes, "inferq.attempt")), 2);
    assert_true(json_real_value(json_object_get(s->attributes, "inferq.cost")) == 0.5);
    assert_true(json_is_false(json_object_get(s->attributes, "inferq.cached")));
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(s->attributes, "gen_ai.response.finish_reasons"), 0)),
                        "stop");
    assert_string_equal(t.spans[1].parent_id, "00f067aa0ba902b7");
    ifq_trace_clear(&t);
}

static void malformed_messages_and_spans_are_skipped_and_counted(void **state)
{
    (void)state;
    ifq_trace_t t;
    ifq_trace_init(&t);
    static const char *const bad_msgs[] = {"", "not json", "[]", "{\"resourceSpans\":7}",
                                           "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":["};
    for (size_t i = 0; i < IFQ_ARRAY_LEN(bad_msgs); i++)
        assert_int_equal(ifq_trace_add_otlp(&t, TID, bad_msgs[i], strlen(bad_msgs[i])), -1);
    assert_int_equal(t.malformed, IFQ_ARRAY_LEN(bad_msgs));
    /* Bad spans: short span id, bad parent, no name, end before start, no
     * times, a bad trace id; then one good span. */
    char *m = otlp(
        "svc", "[{\"traceId\":\"" TID "\",\"spanId\":\"abc\",\"name\":\"x\",\"startTimeUnixNano\":"
               "\"1\",\"endTimeUnixNano\":\"2\"},"
               "{\"traceId\":\"" TID "\",\"spanId\":\"00f067aa0ba902b7\",\"parentSpanId\":\"zz\","
               "\"name\":\"x\",\"startTimeUnixNano\":\"1\",\"endTimeUnixNano\":\"2\"},"
               "{\"traceId\":\"" TID "\",\"spanId\":\"00f067aa0ba902b7\",\"startTimeUnixNano\":"
               "\"1\",\"endTimeUnixNano\":\"2\"},"
               "{\"traceId\":\"" TID "\",\"spanId\":\"00f067aa0ba902b7\",\"name\":\"x\","
               "\"startTimeUnixNano\":\"5\",\"endTimeUnixNano\":\"2\"},"
               "{\"traceId\":\"" TID "\",\"spanId\":\"00f067aa0ba902b7\",\"name\":\"x\"},"
               "{\"traceId\":\"nothex\",\"spanId\":\"00f067aa0ba902b7\",\"name\":\"x\","
               "\"startTimeUnixNano\":\"1\",\"endTimeUnixNano\":\"2\"},"
               "7,"
               "{\"traceId\":\"" TID "\",\"spanId\":\"00F067AA0BA902B7\",\"name\":\"ok\","
               "\"startTimeUnixNano\":\"1\",\"endTimeUnixNano\":\"2\",\"attributes\":"
               "[{\"key\":\"k\"},{\"value\":{}},7,{\"key\":\"deep\",\"value\":{\"intValue\":"
               "\"x\"}}]}]");
    assert_int_equal(ifq_trace_add_otlp(&t, TID, m, strlen(m)), 1);
    free(m);
    assert_int_equal(t.malformed, IFQ_ARRAY_LEN(bad_msgs) + 7);
    assert_int_equal(t.n, 1);
    assert_string_equal(t.spans[0].span_id, "00f067aa0ba902b7"); /* lowercased */
    assert_string_equal(t.spans[0].service, "svc");
    assert_int_equal(json_object_size(t.spans[0].attributes), 0);
    ifq_trace_clear(&t);
}

static void spans_are_ordered_as_a_tree_by_start_time(void **state)
{
    (void)state;
    ifq_trace_t t;
    ifq_trace_init(&t);
    /* The worker's message arrives first. */
    char *w = otlp("inferq-worker", worker_spans), *b = otlp("inferq-broker", broker_spans);
    ifq_trace_add_otlp(&t, TID, w, strlen(w));
    ifq_trace_add_otlp(&t, TID, b, strlen(b));
    free(w);
    free(b);
    assert_int_equal(t.n, 4);
    ifq_trace_order(&t);
    static const char *const names[] = {"broker.receive", "route", "worker.attempt",
                                        "chat fake-chat"};
    static const int depths[] = {0, 1, 1, 2};
    for (int i = 0; i < 4; i++) {
        assert_string_equal(t.spans[i].name, names[i]);
        assert_int_equal(t.spans[i].depth, depths[i]);
    }
    assert_int_equal(t.spans[2].kind, 5); /* SPAN_KIND_CONSUMER by name */
    assert_int_equal(t.spans[2].status_code, 2);
    assert_string_equal(t.spans[2].status_message, "upstream 503");

    json_t *j = ifq_trace_to_json(&t, TID);
    json_t *spans = json_object_get(j, "spans");
    assert_int_equal(json_array_size(spans), 4);
    json_t *s3 = json_array_get(spans, 3);
    assert_true(json_real_value(json_object_get(s3, "offset_ms")) == 6.0);
    assert_true(json_real_value(json_object_get(s3, "duration_ms")) == 94.0);
    assert_string_equal(json_string_value(json_object_get(s3, "start_unix_nano")),
                        "1700000000006000000");
    assert_true(json_is_null(json_object_get(json_array_get(spans, 0), "parent_span_id")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s3, "attributes"),
                                                        "gen_ai.usage.output_tokens")),
                     17);
    json_decref(j);
    ifq_trace_clear(&t);
}

static void a_parent_cycle_or_a_missing_parent_still_shows_every_span(void **state)
{
    (void)state;
    ifq_trace_t t;
    ifq_trace_init(&t);
    char *m =
        otlp("svc", "[{\"traceId\":\"" TID "\",\"spanId\":\"0000000000000001\",\"parentSpanId\":"
                    "\"0000000000000002\",\"name\":\"a\",\"startTimeUnixNano\":\"1\","
                    "\"endTimeUnixNano\":\"2\"},"
                    "{\"traceId\":\"" TID "\",\"spanId\":\"0000000000000002\",\"parentSpanId\":"
                    "\"0000000000000001\",\"name\":\"b\",\"startTimeUnixNano\":\"3\","
                    "\"endTimeUnixNano\":\"4\"},"
                    "{\"traceId\":\"" TID "\",\"spanId\":\"0000000000000003\",\"parentSpanId\":"
                    "\"00000000000000ff\",\"name\":\"orphan\",\"startTimeUnixNano\":\"5\","
                    "\"endTimeUnixNano\":\"6\"}]");
    ifq_trace_add_otlp(&t, TID, m, strlen(m));
    free(m);
    ifq_trace_order(&t);
    assert_int_equal(t.n, 3);
    assert_string_equal(t.spans[0].name, "orphan"); /* a root: its parent is unknown */
    assert_int_equal(t.spans[0].depth, 0);
    assert_string_equal(t.spans[1].name, "a");
    assert_string_equal(t.spans[2].name, "b");
    assert_int_equal(t.spans[2].depth, 1);
    ifq_trace_clear(&t);
}

static void the_span_count_is_bounded(void **state)
{
    (void)state;
    ifq_trace_t t;
    ifq_trace_init(&t);
    size_t cap = 200 * 200 + 64;
    char *spans = malloc(cap);
    size_t n = 0;
    spans[n++] = '[';
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(spans + n, cap - n,
                              "%s{\"traceId\":\"" TID "\",\"spanId\":\"%016x\",\"name\":\"s\","
                              "\"startTimeUnixNano\":\"%d\",\"endTimeUnixNano\":\"%d\"}",
                              i ? "," : "", i + 1, i, i + 1);
    snprintf(spans + n, cap - n, "]");
    char *m = otlp("svc", spans);
    for (int k = 0; k < IFQ_TRACE_MAX_SPANS / 100 + 2; k++)
        ifq_trace_add_otlp(&t, TID, m, strlen(m));
    assert_int_equal(t.n, IFQ_TRACE_MAX_SPANS);
    assert_true(t.truncated);
    free(m);
    free(spans);
    ifq_trace_clear(&t);
    assert_false(ifq_trace_id_valid("00000000000000000000000000000000"));
    assert_false(ifq_trace_id_valid(TID "0"));
    assert_true(ifq_trace_id_valid(TID));
}

/* ---- the reader against the mock cluster -------------------------------- */

static void produce(rd_kafka_t *p, const char *topic, int32_t part, const char *key,
                    const char *val)
{
    assert_int_equal(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part),
                                       RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
                                       RD_KAFKA_V_VALUE((void *)val, strlen(val)),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                     0);
}

static void the_reader_keeps_the_messages_keyed_by_the_trace_id(void **state)
{
    (void)state;
    char errstr[512];
    rd_kafka_conf_t *pc = rd_kafka_conf_new();
    rd_kafka_conf_set(pc, "test.mock.num.brokers", "1", errstr, sizeof(errstr));
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, pc, errstr, sizeof(errstr));
    assert_non_null(p);
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(p);
    assert_non_null(mc);
    assert_int_equal(rd_kafka_mock_topic_create(mc, "t.traces", 3, 1), 0);
    char *b = otlp("inferq-broker", broker_spans), *w = otlp("inferq-worker", worker_spans);
    produce(p, "t.traces", 0, TID, b);
    produce(p, "t.traces", 1, OTHER, w); /* another trace's key: never parsed */
    produce(p, "t.traces", 1, TID, "garbage");
    produce(p, "t.traces", 2, TID, w);
    produce(p, "t.traces", 2, NULL, w);
    assert_int_equal(rd_kafka_flush(p, 10000), 0);
    free(b);
    free(w);

    char yaml[512];
    snprintf(yaml, sizeof(yaml), "{kafka: {bootstrap_servers: \"%s\"}}",
             rd_kafka_mock_cluster_bootstraps(mc));
    ifq_config_t *cfg = ifq_config_parse(yaml, strlen(yaml), errstr, sizeof(errstr));
    assert_non_null(cfg);
    int err = 0;
    ifq_trace_reader_t *r =
        ifq_trace_reader_new(cfg, "t.traces", TID, 0, 10000, &err, errstr, sizeof(errstr));
    if (!r)
        fail_msg("reader: %s", errstr);
    assert_int_equal(ifq_trace_reader_read(r, 15000), IFQ_OK);
    ifq_trace_t *t = ifq_trace_reader_trace(r);
    assert_int_equal(t->messages, 5);
    assert_int_equal(t->matched, 3);
    assert_int_equal(t->malformed, 1);
    assert_int_equal(t->n, 4);
    ifq_trace_order(t);
    assert_string_equal(t->spans[0].name, "broker.receive");
    assert_string_equal(t->spans[3].service, "inferq-worker");
    ifq_trace_reader_destroy(r);

    r = ifq_trace_reader_new(cfg, "t.traces", "nope", 0, 5000, &err, errstr, sizeof(errstr));
    assert_null(r);
    assert_int_equal(err, IFQ_ERR_INVALID);
    ifq_config_destroy(cfg);
    rd_kafka_destroy(p);
}

int main(void)
{
    /* The config's environment overrides would point the reader at a real
     * cluster (tests/run.sh exports the stack's addresses). */
    unsetenv("INFERQ_KAFKA_BOOTSTRAP");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spans_of_the_trace_are_parsed_with_their_attributes),
        cmocka_unit_test(malformed_messages_and_spans_are_skipped_and_counted),
        cmocka_unit_test(spans_are_ordered_as_a_tree_by_start_time),
        cmocka_unit_test(a_parent_cycle_or_a_missing_parent_still_shows_every_span),
        cmocka_unit_test(the_span_count_is_bounded),
        cmocka_unit_test(the_reader_keeps_the_messages_keyed_by_the_trace_id),
    };
    return cmocka_run_group_tests_name("trace_read", tests, NULL, NULL);
}
