/*
 * test_trace.c - W3C traceparent parsing, parent-based and id-based
 * sampling, and the OTLP/JSON encoding of span batches (the shape the
 * OpenTelemetry Collector's otlp_json decoder reads).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "config.h"
#include "pipeline.h"
#include "trace.h"

#define TRACE "4bf92f3577b34da6a3ce929d0e0e4736"
#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static void parses_and_formats_traceparent(void **state)
{
    ifq_tracectx_t c;
    assert_int_equal(ifq_tracectx_parse(TP, &c), 0);
    assert_string_equal(c.trace_id, TRACE);
    assert_string_equal(c.span_id, "00f067aa0ba902b7");
    assert_int_equal(c.sampled, 1);
    char out[56];
    ifq_tracectx_format(&c, out);
    assert_string_equal(out, TP);
    c.sampled = 0;
    ifq_tracectx_format(&c, out);
    assert_string_equal(out + 52, "-00");
    assert_int_equal(
        ifq_tracectx_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &c), 0);
    assert_int_equal(c.sampled, 0);
}

static void rejects_bad_traceparents(void **state)
{
    static const char *const bad[] = {
        NULL,
        "",
        "garbage",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  /* uppercase */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  /* zero trace */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  /* zero span */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* invalid version */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",  /* flags */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", /* length */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    };
    ifq_tracectx_t c;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ifq_tracectx_parse(bad[i], &c), -1);
}

static void sampling_is_a_function_of_the_trace_id(void **state)
{
    assert_int_equal(ifq_trace_sample(TRACE, 1.0), 1);
    assert_int_equal(ifq_trace_sample(TRACE, 0.0), 0);
    /* The same id always gets the same answer, and the rate is honoured
     * over many ids. */
    int yes = 0;
    char id[33];
    for (unsigned i = 0; i < 20000; i++) {
        char a[17], b[17];
        ifq_span_id_new(a);
        ifq_span_id_new(b);
        snprintf(id, sizeof(id), "%s%s", a, b);
        int s = ifq_trace_sample(id, 0.25);
        assert_int_equal(ifq_trace_sample(id, 0.25), s);
        yes += s;
    }
    assert_in_range(yes, 4400, 5600);
    /* Monotone in the rate: sampled at 0.25 implies sampled at 0.5. */
    for (unsigned i = 0; i < 1000; i++) {
        char a[17], b[17];
        ifq_span_id_new(a);
        ifq_span_id_new(b);
        snprintf(id, sizeof(id), "%s%s", a, b);
        if (ifq_trace_sample(id, 0.25))
            assert_int_equal(ifq_trace_sample(id, 0.5), 1);
    }
}

static void broker_traceparent_keeps_the_parents_sampled_flag(void **state)
{
    char tp[56];
    ifq_traceparent(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", 7);
    assert_int_equal(strncmp(tp, "00-" TRACE "-", 36), 0);
    assert_string_equal(tp + 52, "-00");
    ifq_traceparent(tp, TP, 7);
    assert_string_equal(tp + 52, "-01");
    ifq_traceparent(tp, NULL, 7);
    ifq_tracectx_t c;
    assert_int_equal(ifq_tracectx_parse(tp, &c), 0);
    assert_int_equal(c.sampled, 1);
}

static json_t *attr(json_t *span, const char *key)
{
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(span, "attributes"), i, a)
    {
        if (strcmp(json_string_value(json_object_get(a, "key")), key) == 0)
            return json_object_get(a, "value");
    }
    return NULL;
}

/* The spans array of an encoded batch (its one resource and scope). */
static json_t *spans_of(json_t *doc)
{
    json_t *rs = json_array_get(json_object_get(doc, "resourceSpans"), 0);
    return json_object_get(json_array_get(json_object_get(rs, "scopeSpans"), 0), "spans");
}

static json_t *encode(ifq_spans_t *b)
{
    size_t len = 0;
    char *text = ifq_spans_encode(b, "inferq-worker", "host-1", &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    json_error_t err;
    json_t *doc = json_loads(text, 0, &err);
    if (!doc)
        fail_msg("not JSON (%s): %s", err.text, text);
    free(text);
    return doc;
}

static void encodes_an_otlp_json_export_request(void **state)
{
    ifq_spans_t *b = ifq_spans_new(TRACE, "req-1", NULL);
    assert_non_null(b);
    ifq_span_t *root = ifq_span_start(b, "worker.request", IFQ_SPAN_CONSUMER, "00f067aa0ba902b7",
                                      "1111111111111111", 1000);
    ifq_span_t *call =
        ifq_span_start(b, "chat gpt-4o", IFQ_SPAN_CLIENT, ifq_span_id(root), NULL, 2000);
    ifq_span_t *orphan = ifq_span_start(b, "root", IFQ_SPAN_INTERNAL, NULL, NULL, 1500);
    ifq_spans_set_request_id(b, "ifq_abc");
    ifq_span_str(call, "gen_ai.operation.name", "chat");
    ifq_span_int(call, "gen_ai.usage.input_tokens", 12);
    ifq_span_double(call, "gen_ai.request.temperature", 0.2);
    ifq_span_bool(call, "inferq.cache.hit", 0);
    const char *reasons[] = {"stop", "length"};
    ifq_span_strs(call, "gen_ai.response.finish_reasons", reasons, 2);
    ifq_span_str(call, "skipped", NULL);
    ifq_span_status(call, IFQ_STATUS_ERROR, "upstream 503");
    ifq_span_end(call, 3000);
    ifq_span_end(root, 4000);
    ifq_span_end(orphan, 1000); /* before its start: clamped */
    assert_int_equal(ifq_spans_count(b), 3);

    json_t *doc = encode(b);
    json_t *rs = json_array_get(json_object_get(doc, "resourceSpans"), 0);
    json_t *res_attrs = json_object_get(json_object_get(rs, "resource"), "attributes");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(res_attrs, 0), "value"), "stringValue")),
                        "inferq-worker");
    assert_string_equal(json_string_value(json_object_get(json_array_get(res_attrs, 1), "key")),
                        "service.instance.id");
    json_t *ss = json_array_get(json_object_get(rs, "scopeSpans"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(ss, "scope"), "name")),
                        "inferq");
    json_t *spans = json_object_get(ss, "spans");
    assert_int_equal(json_array_size(spans), 3);

    json_t *r = json_array_get(spans, 0), *c = json_array_get(spans, 1),
           *o = json_array_get(spans, 2);
    assert_string_equal(json_string_value(json_object_get(r, "traceId")), TRACE);
    assert_string_equal(json_string_value(json_object_get(r, "spanId")), "1111111111111111");
    assert_string_equal(json_string_value(json_object_get(r, "parentSpanId")), "00f067aa0ba902b7");
    assert_int_equal(json_integer_value(json_object_get(r, "kind")), IFQ_SPAN_CONSUMER);
    assert_string_equal(json_string_value(json_object_get(r, "startTimeUnixNano")), "1000");
    assert_string_equal(json_string_value(json_object_get(r, "endTimeUnixNano")), "4000");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "status"), "code")), 0);
    assert_null(json_object_get(o, "parentSpanId")); /* a root has none */
    assert_string_equal(json_string_value(json_object_get(o, "endTimeUnixNano")), "1500");

    assert_string_equal(json_string_value(json_object_get(c, "parentSpanId")), "1111111111111111");
    assert_int_equal(strlen(json_string_value(json_object_get(c, "spanId"))), 16);
    assert_string_equal(json_string_value(json_object_get(c, "name")), "chat gpt-4o");
    assert_int_equal(json_integer_value(json_object_get(c, "kind")), IFQ_SPAN_CLIENT);
    /* The request's ids are on the batch's top spans (r's parent and o are
     * not in the batch), not on their children (c). */
    for (json_t *top = r; top; top = top == r ? o : NULL) {
        assert_string_equal(
            json_string_value(json_object_get(attr(top, "inferq.custom_id"), "stringValue")),
            "req-1");
        assert_string_equal(
            json_string_value(json_object_get(attr(top, "inferq.request_id"), "stringValue")),
            "ifq_abc");
    }
    assert_null(attr(c, "inferq.custom_id"));
    assert_null(attr(c, "inferq.request_id"));
    assert_string_equal(
        json_string_value(json_object_get(attr(c, "gen_ai.usage.input_tokens"), "intValue")), "12");
    assert_true(json_real_value(
                    json_object_get(attr(c, "gen_ai.request.temperature"), "doubleValue")) == 0.2);
    assert_true(json_is_false(json_object_get(attr(c, "inferq.cache.hit"), "boolValue")));
    json_t *vals = json_object_get(
        json_object_get(attr(c, "gen_ai.response.finish_reasons"), "arrayValue"), "values");
    assert_int_equal(json_array_size(vals), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(vals, 1), "stringValue")),
                        "length");
    assert_null(attr(c, "skipped"));
    json_t *st = json_object_get(c, "status");
    assert_int_equal(json_integer_value(json_object_get(st, "code")), IFQ_STATUS_ERROR);
    assert_string_equal(json_string_value(json_object_get(st, "message")), "upstream 503");
    json_decref(doc);
    ifq_spans_destroy(b);
}

static void strings_are_escaped_into_valid_json(void **state)
{
    ifq_spans_t *b = ifq_spans_new(TRACE, "quote\"back\\slash\nnew\x01", NULL);
    ifq_span_t *s = ifq_span_start(b, "name \"x\"", IFQ_SPAN_INTERNAL, NULL, NULL, 0);
    ifq_span_str(s, "utf8", "caf\xc3\xa9 \xe2\x82\xac");
    ifq_span_str(s, "broken", "a\xff\xc3(b\xed\xa0\x80");
    ifq_span_status(s, IFQ_STATUS_ERROR, "tab\there");
    json_t *doc = encode(b);
    json_t *span = json_array_get(spans_of(doc), 0);
    assert_string_equal(json_string_value(json_object_get(span, "name")), "name \"x\"");
    assert_string_equal(
        json_string_value(json_object_get(attr(span, "inferq.custom_id"), "stringValue")),
        "quote\"back\\slash\nnew\x01");
    assert_string_equal(json_string_value(json_object_get(attr(span, "utf8"), "stringValue")),
                        "caf\xc3\xa9 \xe2\x82\xac");
    const char *broken = json_string_value(json_object_get(attr(span, "broken"), "stringValue"));
    assert_non_null(broken);
    assert_int_equal(broken[0], 'a');
    assert_null(strchr(broken, '\xff'));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(span, "status"), "message")),
        "tab\there");
    json_decref(doc);
    ifq_spans_destroy(b);
}

static void a_full_batch_drops_and_counts(void **state)
{
    ifq_spans_t *b = ifq_spans_new(TRACE, "c", "r");
    for (int i = 0; i < IFQ_SPANS_MAX; i++)
        assert_non_null(ifq_span_start(b, "s", IFQ_SPAN_INTERNAL, NULL, NULL, 0));
    ifq_span_t *extra = ifq_span_start(b, "s", IFQ_SPAN_INTERNAL, NULL, NULL, 0);
    assert_null(extra);
    assert_int_equal(ifq_spans_dropped(b), 1);
    /* Every span call accepts NULL. */
    ifq_span_str(extra, "k", "v");
    ifq_span_int(extra, "k", 1);
    ifq_span_status(extra, IFQ_STATUS_OK, NULL);
    ifq_span_end(extra, 0);
    assert_string_equal(ifq_span_id(extra), "");
    json_t *doc = encode(b);
    json_decref(doc);
    ifq_spans_destroy(b);
    assert_null(ifq_spans_new("short", NULL, NULL));
    assert_null(ifq_spans_new("4BF92F3577B34DA6A3CE929D0E0E4736", NULL, NULL));
    ifq_spans_destroy(NULL);
}

/* Attributes set on several open spans in turn stay with their own span, in
 * the order they were set; a span's status can be replaced. */
static void interleaved_attributes_stay_with_their_span(void **state)
{
    ifq_spans_t *b = ifq_spans_new(TRACE, "c", NULL);
    ifq_span_t *a = ifq_span_start(b, "a", IFQ_SPAN_INTERNAL, NULL, NULL, 1);
    ifq_span_t *c = ifq_span_start(b, "c", IFQ_SPAN_INTERNAL, NULL, NULL, 1);
    ifq_span_str(a, "k1", "a1");
    ifq_span_int(c, "k1", -7);
    ifq_span_bool(a, "k2", 1);
    const char *none[] = {NULL};
    ifq_span_strs(c, "k2", none, 1);
    ifq_span_double(a, "k3", 1.5);
    ifq_span_status(c, IFQ_STATUS_ERROR, "first");
    ifq_span_status(c, IFQ_STATUS_OK, NULL);
    json_t *doc = encode(b);
    json_t *spans = spans_of(doc);
    json_t *sa = json_array_get(spans, 0), *sc = json_array_get(spans, 1);
    json_t *attrs = json_object_get(sa, "attributes");
    assert_int_equal(json_array_size(attrs), 4); /* custom_id, k1, k2, k3 */
    assert_string_equal(json_string_value(json_object_get(json_array_get(attrs, 1), "key")), "k1");
    assert_string_equal(json_string_value(json_object_get(attr(sa, "k1"), "stringValue")), "a1");
    assert_true(json_is_true(json_object_get(attr(sa, "k2"), "boolValue")));
    assert_true(json_real_value(json_object_get(attr(sa, "k3"), "doubleValue")) == 1.5);
    assert_int_equal(json_array_size(json_object_get(sc, "attributes")), 3);
    assert_string_equal(json_string_value(json_object_get(attr(sc, "k1"), "intValue")), "-7");
    json_t *vals = json_object_get(json_object_get(attr(sc, "k2"), "arrayValue"), "values");
    assert_string_equal(json_string_value(json_object_get(json_array_get(vals, 0), "stringValue")),
                        "");
    json_t *st = json_object_get(sc, "status");
    assert_int_equal(json_integer_value(json_object_get(st, "code")), IFQ_STATUS_OK);
    assert_null(json_object_get(st, "message"));
    json_decref(doc);
    ifq_spans_destroy(b);
}

/* Keys the gateway uses are stored as a one-byte code, any other key as
 * text: both read back as their text, in order, including keys that start
 * with a byte at or above 0x80 (UTF-8) or that are a known key's prefix. */
static void known_and_other_keys_read_back_the_same(void **state)
{
    (void)state;
    ifq_spans_t *b = ifq_spans_new(TRACE, "c", NULL);
    ifq_span_t *s = ifq_span_start(b, "s", IFQ_SPAN_INTERNAL, NULL, NULL, 1);
    const char *keys[] = {"gen_ai.request.model", "\xc3\xa9t\xc3\xa9", "\xff\xfe",
                          "gen_ai.request",       "inferq.deployment", "gen_ai.request.model.x",
                          "server.port"};
    size_t n = sizeof(keys) / sizeof(keys[0]);
    for (size_t i = 0; i < n; i++)
        ifq_span_int(s, keys[i], (int64_t)i);
    json_t *doc = encode(b);
    json_t *span = json_array_get(spans_of(doc), 0);
    json_t *attrs = json_object_get(span, "attributes");
    assert_int_equal(json_array_size(attrs), n + 1); /* custom_id first */
    for (size_t i = 0; i < n; i++) {
        json_t *a = json_array_get(attrs, i + 1);
        const char *want = keys[i][0] == '\xff' ? "??" : keys[i]; /* invalid UTF-8 becomes '?' */
        assert_string_equal(json_string_value(json_object_get(a, "key")), want);
        char num[8];
        snprintf(num, sizeof(num), "%zu", i);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(a, "value"), "intValue")), num);
    }
    json_decref(doc);
    ifq_spans_destroy(b);
}

/* A batch bigger than the encoder's stack buffer still encodes whole, and
 * long names and status messages are cut as documented. */
static void a_large_batch_encodes_whole(void **state)
{
    ifq_spans_t *b = ifq_spans_new(TRACE, "c", "r");
    char big[2000], name[300];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    for (int i = 0; i < 20; i++) {
        ifq_span_t *s = ifq_span_start(b, name, IFQ_SPAN_INTERNAL, NULL, NULL, 0);
        ifq_span_str(s, "big", big);
        ifq_span_int(s, "i", i);
        ifq_span_status(s, IFQ_STATUS_ERROR, big);
    }
    size_t len = 0;
    char *text = ifq_spans_encode(b, "svc", NULL, &len);
    assert_non_null(text);
    assert_true(len > 40000);
    json_t *doc = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(doc);
    json_t *spans = spans_of(doc);
    assert_int_equal(json_array_size(spans), 20);
    json_t *last = json_array_get(spans, 19);
    assert_string_equal(json_string_value(json_object_get(attr(last, "i"), "intValue")), "19");
    assert_int_equal(strlen(json_string_value(json_object_get(attr(last, "big"), "stringValue"))),
                     sizeof(big) - 1);
    assert_int_equal(strlen(json_string_value(json_object_get(last, "name"))), 127);
    assert_int_equal(
        strlen(json_string_value(json_object_get(json_object_get(last, "status"), "message"))),
        256);
    json_decref(doc);
    ifq_spans_destroy(b);
}

static void span_ids_are_distinct_hex(void **state)
{
    char a[17], b[17];
    ifq_span_id_new(a);
    ifq_span_id_new(b);
    assert_int_equal(strlen(a), 16);
    assert_string_not_equal(a, b);
    assert_int_equal(strspn(a, "0123456789abcdef"), 16);
}

static void observability_config_keys(void **state)
{
    char err[512];
    ifq_config_t *cfg = ifq_config_parse("", 0, err, sizeof(err));
    assert_non_null(cfg);
    assert_int_equal(cfg->trace_enabled, 1);
    assert_true(cfg->trace_sample_rate == 1.0);
    assert_string_equal(cfg->topic_traces, "inferq.traces");
    assert_string_equal(cfg->topic_logs, "inferq.logs");
    ifq_config_destroy(cfg);

    static const char ok[] = "kafka: {topic_prefix: acme}\n"
                             "trace: {enabled: false, sample_rate: 0.25}\n"
                             "teams: {audit: {log_requests: true}, quiet: {}}\n";
    cfg = ifq_config_parse(ok, strlen(ok), err, sizeof(err));
    if (!cfg)
        fail_msg("%s", err);
    assert_int_equal(cfg->trace_enabled, 0);
    assert_true(cfg->trace_sample_rate == 0.25);
    assert_string_equal(cfg->topic_logs, "acme.logs");
    assert_int_equal(ifq_config_team(cfg, "audit")->log_requests, 1);
    assert_int_equal(ifq_config_team(cfg, "quiet")->log_requests, 0);
    ifq_config_destroy(cfg);

    static const struct {
        const char *yaml, *words;
    } bad[] = {
        {"trace: {sample_rate: 1.5}\n", "trace.sample_rate"},
        {"trace: {sample_rate: often}\n", "trace.sample_rate"},
        {"trace: {enabled: 3}\n", "trace.enabled"},
        {"trace: {rate: 1}\n", "rate"},
        {"teams: {a: {log_requests: yes please}}\n", "log_requests"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cfg = ifq_config_parse(bad[i].yaml, strlen(bad[i].yaml), err, sizeof(err));
        if (cfg)
            fail_msg("accepted: %s", bad[i].yaml);
        if (!strstr(err, bad[i].words))
            fail_msg("error for %s does not name %s: %s", bad[i].yaml, bad[i].words, err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_and_formats_traceparent),
        cmocka_unit_test(rejects_bad_traceparents),
        cmocka_unit_test(sampling_is_a_function_of_the_trace_id),
        cmocka_unit_test(broker_traceparent_keeps_the_parents_sampled_flag),
        cmocka_unit_test(encodes_an_otlp_json_export_request),
        cmocka_unit_test(strings_are_escaped_into_valid_json),
        cmocka_unit_test(a_full_batch_drops_and_counts),
        cmocka_unit_test(interleaved_attributes_stay_with_their_span),
        cmocka_unit_test(known_and_other_keys_read_back_the_same),
        cmocka_unit_test(a_large_batch_encodes_whole),
        cmocka_unit_test(span_ids_are_distinct_hex),
        cmocka_unit_test(observability_config_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
