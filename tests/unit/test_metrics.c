/*
 * test_metrics.c - the Prometheus exposition of counters, gauges and
 * histograms (HELP, TYPE, label escaping, cumulative buckets, _sum and
 * _count), exact counts under concurrent increments, and the bounds: the
 * series limit per family and a full output buffer.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "metrics.h"

static char *render(ifq_metrics_t *r)
{
    size_t size = 1 << 20;
    char *buf = malloc(size);
    size_t n = ifq_metrics_render(r, buf, size);
    assert_int_equal(strlen(buf), n);
    return buf;
}

static void assert_line(const char *text, const char *line)
{
    const char *p = text;
    size_t n = strlen(line);
    while ((p = strstr(p, line))) {
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return;
        p++;
    }
    fail_msg("line not found: %s\n--- in ---\n%s", line, text);
}

static void counter_with_labels_renders_help_type_and_values(void **state)
{
    ifq_metrics_t *r = ifq_metrics_new();
    ifq_metric_t *c =
        ifq_metrics_counter(r, "inferq_requests_total", "Requests by status.", "status,team");
    ifq_counter_add(c, (const char *[]){"routed", "a"}, 1);
    ifq_counter_add(c, (const char *[]){"routed", "a"}, 2);
    ifq_counter_add(c, (const char *[]){"rejected", NULL}, 1);
    ifq_counter_add(c, (const char *[]){"routed", "a"}, -5); /* counters never go down */
    ifq_metric_t *plain = ifq_metrics_counter(r, "inferq_plain_total", "No labels.", NULL);
    ifq_counter_add(plain, NULL, 0.5);
    assert_ptr_equal(ifq_metrics_counter(r, "inferq_plain_total", "again", NULL), plain);
    char *t = render(r);
    assert_line(t, "# HELP inferq_requests_total Requests by status.");
    assert_line(t, "# TYPE inferq_requests_total counter");
    assert_line(t, "inferq_requests_total{status=\"routed\",team=\"a\"} 3");
    assert_line(t, "inferq_requests_total{status=\"rejected\",team=\"\"} 1");
    assert_line(t, "inferq_plain_total 0.5");
    assert_true(ifq_metric_value(c, (const char *[]){"routed", "a"}) == 3);
    assert_true(ifq_metric_value(c, (const char *[]){"none", "a"}) == 0);
    free(t);
    ifq_metrics_destroy(r);
}

static void label_values_and_help_are_escaped(void **state)
{
    ifq_metrics_t *r = ifq_metrics_new();
    ifq_metric_t *g = ifq_metrics_gauge(r, "g", "line\\one\nline two", "v");
    ifq_gauge_set(g, (const char *[]){"a\"b\\c\nd"}, 7);
    char *t = render(r);
    assert_line(t, "# HELP g line\\\\one\\nline two");
    assert_line(t, "g{v=\"a\\\"b\\\\c\\nd\"} 7");
    free(t);
    ifq_metrics_destroy(r);
}

static void histogram_buckets_are_cumulative(void **state)
{
    ifq_metrics_t *r = ifq_metrics_new();
    const double bounds[] = {0.1, 1, 10};
    ifq_metric_t *h = ifq_metrics_histogram(r, "lat_seconds", "Latency.", "dep", bounds, 3);
    assert_non_null(h);
    const double obs[] = {0.05, 0.1, 0.5, 1, 2, 50};
    for (size_t i = 0; i < 6; i++)
        ifq_histogram_observe(h, (const char *[]){"m"}, obs[i]);
    char *t = render(r);
    assert_line(t, "# TYPE lat_seconds histogram");
    assert_line(t, "lat_seconds_bucket{dep=\"m\",le=\"0.1\"} 2"); /* le is inclusive */
    assert_line(t, "lat_seconds_bucket{dep=\"m\",le=\"1\"} 4");
    assert_line(t, "lat_seconds_bucket{dep=\"m\",le=\"10\"} 5");
    assert_line(t, "lat_seconds_bucket{dep=\"m\",le=\"+Inf\"} 6");
    assert_line(t, "lat_seconds_sum{dep=\"m\"} 53.65");
    assert_line(t, "lat_seconds_count{dep=\"m\"} 6");
    free(t);
    /* Without labels, le is the only label. */
    ifq_metric_t *h2 = ifq_metrics_histogram(r, "h2", "x", NULL, bounds, 1);
    ifq_histogram_observe(h2, NULL, 3);
    t = render(r);
    assert_line(t, "h2_bucket{le=\"0.1\"} 0");
    assert_line(t, "h2_bucket{le=\"+Inf\"} 1");
    assert_line(t, "h2_count 1");
    free(t);
    const double bad[] = {1, 1};
    assert_null(ifq_metrics_histogram(r, "bad", "x", NULL, bad, 2));
    ifq_metrics_destroy(r);
}

static void gauges_set_add_and_reset(void **state)
{
    ifq_metrics_t *r = ifq_metrics_new();
    ifq_metric_t *g = ifq_metrics_gauge(r, "lag", "Lag.", "topic,partition");
    ifq_gauge_set(g, (const char *[]){"t", "0"}, 5);
    ifq_gauge_add(g, (const char *[]){"t", "0"}, -2);
    ifq_gauge_set(g, (const char *[]){"t", "1"}, 1);
    char *t = render(r);
    assert_line(t, "lag{topic=\"t\",partition=\"0\"} 3");
    assert_line(t, "lag{topic=\"t\",partition=\"1\"} 1");
    free(t);
    ifq_metric_reset(g);
    t = render(r);
    assert_null(strstr(t, "lag{"));
    assert_line(t, "# TYPE lag gauge");
    free(t);
    ifq_metrics_destroy(r);
}

static ifq_metric_t *shared;

static void *hammer(void *arg)
{
    const char *who = arg;
    for (int i = 0; i < 100000; i++) {
        ifq_counter_add(shared, (const char *[]){"all"}, 1);
        ifq_counter_add(shared, (const char *[]){who}, 1);
    }
    return NULL;
}

static void concurrent_increments_are_exact(void **state)
{
    ifq_metrics_t *r = ifq_metrics_new();
    shared = ifq_metrics_counter(r, "c_total", "c", "who");
    pthread_t th[4];
    static const char *const names[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, hammer, (void *)names[i]);
    /* Rendering meanwhile must be safe too. */
    char *t = render(r);
    free(t);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_true(ifq_metric_value(shared, (const char *[]){"all"}) == 400000);
    assert_true(ifq_metric_value(shared, (const char *[]){"c"}) == 100000);
    ifq_metrics_destroy(r);
}

static void series_are_bounded_per_family(void **state)
{
    ifq_metrics_t *r = ifq_metrics_new();
    ifq_metric_t *c = ifq_metrics_counter(r, "many_total", "m", "id");
    char id[32];
    for (int i = 0; i < IFQ_METRICS_MAX_SERIES + 10; i++) {
        snprintf(id, sizeof(id), "id-%d", i);
        ifq_counter_add(c, (const char *[]){id}, 1);
    }
    snprintf(id, sizeof(id), "id-%d", IFQ_METRICS_MAX_SERIES + 5);
    assert_true(ifq_metric_value(c, (const char *[]){id}) == 0);
    assert_true(ifq_metric_value(c, (const char *[]){"id-0"}) == 1);
    char *t = render(r);
    assert_line(t, "inferq_metrics_dropped_series_total{metric=\"many_total\"} 10");
    free(t);
    ifq_metrics_destroy(r);
}

static void a_small_buffer_ends_at_a_line(void **state)
{
    ifq_metrics_t *r = ifq_metrics_new();
    ifq_metric_t *c = ifq_metrics_counter(r, "x_total", "x", "k");
    for (int i = 0; i < 50; i++) {
        char k[16];
        snprintf(k, sizeof(k), "%d", i);
        ifq_counter_add(c, (const char *[]){k}, i);
    }
    char buf[300];
    size_t n = ifq_metrics_render(r, buf, sizeof(buf));
    assert_true(n > 0 && n < sizeof(buf));
    assert_int_equal(strlen(buf), n);
    assert_int_equal(buf[n - 1], '\n');
    ifq_metrics_destroy(r);
}

static void bad_arguments_and_null_are_harmless(void **state)
{
    ifq_metrics_t *r = ifq_metrics_new();
    assert_null(ifq_metrics_counter(r, "too_many", "x", "a,b,c,d,e,f,g"));
    assert_null(ifq_metrics_counter(r, "empty_label", "x", "a,,b"));
    assert_null(ifq_metrics_counter(NULL, "x", "x", NULL));
    ifq_counter_add(NULL, NULL, 1);
    ifq_gauge_set(NULL, NULL, 1);
    ifq_histogram_observe(NULL, NULL, 1);
    ifq_metric_reset(NULL);
    assert_true(ifq_metric_value(NULL, NULL) == 0);
    assert_int_equal(ifq_metrics_render(NULL, NULL, 0), 0);
    ifq_metrics_destroy(r);
    ifq_metrics_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counter_with_labels_renders_help_type_and_values),
        cmocka_unit_test(label_values_and_help_are_escaped),
        cmocka_unit_test(histogram_buckets_are_cumulative),
        cmocka_unit_test(gauges_set_add_and_reset),
        cmocka_unit_test(concurrent_increments_are_exact),
        cmocka_unit_test(series_are_bounded_per_family),
        cmocka_unit_test(a_small_buffer_ends_at_a_line),
        cmocka_unit_test(bad_arguments_and_null_are_harmless),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
