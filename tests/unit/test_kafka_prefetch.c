/*
 * test_kafka_prefetch.c - the consumer's pre-fetch bounds: sized from the
 * in-flight cap by ifq_kafka_consumer_new_bounded, the 16 MiB default
 * otherwise, and kafka.properties from the config always win. Also the
 * producer's message.copy.max.bytes (the worker's produce requests refer
 * to payloads instead of copying them), under the same rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"
#include "kafka.h"

static const char base_cfg[] = "kafka:\n"
                               "  bootstrap_servers: \"127.0.0.1:9\"\n"
                               "deployments:\n"
                               "  d:\n"
                               "    base_url: http://127.0.0.1:9/v1\n";

static const char override_cfg[] = "kafka:\n"
                                   "  bootstrap_servers: \"127.0.0.1:9\"\n"
                                   "  properties:\n"
                                   "    queued.max.messages.kbytes: 4096\n"
                                   "    fetch.message.max.bytes: 2097152\n"
                                   "deployments:\n"
                                   "  d:\n"
                                   "    base_url: http://127.0.0.1:9/v1\n";

static ifq_config_t *parse(const char *text)
{
    char err[512] = "";
    unsetenv("INFERQ_KAFKA_BOOTSTRAP");
    ifq_config_t *cfg = ifq_config_parse(text, strlen(text), err, sizeof(err));
    assert_non_null(cfg);
    return cfg;
}

/* The consumer's value of key, as librdkafka reports it. */
static void conf_value(rd_kafka_t *rk, const char *key, char *buf, size_t size)
{
    assert_int_equal(rd_kafka_conf_get(rd_kafka_conf(rk), key, buf, &size), RD_KAFKA_CONF_OK);
}

static rd_kafka_t *consumer(const ifq_config_t *cfg, int max_buffered)
{
    char err[512] = "";
    rd_kafka_t *rk =
        ifq_kafka_consumer_new_bounded(cfg, "g", NULL, NULL, max_buffered, err, sizeof(err));
    assert_non_null(rk);
    return rk;
}

static void bounded_by_the_inflight_cap(void **state)
{
    (void)state;
    ifq_config_t *cfg = parse(base_cfg);
    rd_kafka_t *rk = consumer(cfg, 2000);
    char v[64];
    conf_value(rk, "queued.min.messages", v, sizeof(v));
    assert_string_equal(v, "500"); /* a quarter of the cap */
    conf_value(rk, "queued.max.messages.kbytes", v, sizeof(v));
    assert_string_equal(v, "2000");
    conf_value(rk, "fetch.message.max.bytes", v, sizeof(v));
    assert_string_equal(v, "32768");
    rd_kafka_destroy(rk);

    /* small and large caps are clamped to 100 messages and 1-16 MiB */
    rk = consumer(cfg, 10);
    conf_value(rk, "queued.min.messages", v, sizeof(v));
    assert_string_equal(v, "100");
    conf_value(rk, "queued.max.messages.kbytes", v, sizeof(v));
    assert_string_equal(v, "1024");
    rd_kafka_destroy(rk);
    rk = consumer(cfg, 100000);
    conf_value(rk, "queued.max.messages.kbytes", v, sizeof(v));
    assert_string_equal(v, "16384");
    rd_kafka_destroy(rk);
    ifq_config_destroy(cfg);
}

static void unbounded_keeps_the_16_mib_default(void **state)
{
    (void)state;
    ifq_config_t *cfg = parse(base_cfg);
    char err[512] = "";
    rd_kafka_t *rk = ifq_kafka_consumer_new(cfg, "g", NULL, NULL, err, sizeof(err));
    assert_non_null(rk);
    char v[64];
    conf_value(rk, "queued.max.messages.kbytes", v, sizeof(v));
    assert_string_equal(v, "16384");
    conf_value(rk, "queued.min.messages", v, sizeof(v));
    assert_string_equal(v, "100000"); /* librdkafka's own default */
    rd_kafka_destroy(rk);
    ifq_config_destroy(cfg);
}

static void config_properties_win(void **state)
{
    (void)state;
    ifq_config_t *cfg = parse(override_cfg);
    rd_kafka_t *rk = consumer(cfg, 2000);
    char v[64];
    conf_value(rk, "queued.max.messages.kbytes", v, sizeof(v));
    assert_string_equal(v, "4096");
    conf_value(rk, "fetch.message.max.bytes", v, sizeof(v));
    assert_string_equal(v, "2097152");
    conf_value(rk, "queued.min.messages", v, sizeof(v));
    assert_string_equal(v, "500"); /* not set in the config: still bounded */
    rd_kafka_destroy(rk);
    ifq_config_destroy(cfg);
}

static rd_kafka_t *producer(const ifq_config_t *cfg, int copy_max_bytes)
{
    char err[512] = "";
    rd_kafka_t *rk =
        ifq_kafka_producer_new(cfg, NULL, NULL, NULL, 10, copy_max_bytes, err, sizeof(err));
    assert_non_null(rk);
    return rk;
}

static void producer_copy_max_bytes(void **state)
{
    (void)state;
    ifq_config_t *cfg = parse(base_cfg);
    char v[64];
    rd_kafka_t *rk = producer(cfg, 0);
    conf_value(rk, "message.copy.max.bytes", v, sizeof(v));
    assert_string_equal(v, "0");
    conf_value(rk, "linger.ms", v, sizeof(v));
    assert_string_equal(v, "10");
    rd_kafka_destroy(rk);
    rk = producer(cfg, -1); /* librdkafka's own default */
    conf_value(rk, "message.copy.max.bytes", v, sizeof(v));
    assert_string_equal(v, "65535");
    rd_kafka_destroy(rk);
    ifq_config_destroy(cfg);

    static const char props[] = "kafka:\n"
                                "  bootstrap_servers: \"127.0.0.1:9\"\n"
                                "  properties:\n"
                                "    message.copy.max.bytes: 4096\n"
                                "deployments:\n"
                                "  d:\n"
                                "    base_url: http://127.0.0.1:9/v1\n";
    cfg = parse(props);
    rk = producer(cfg, 0);
    conf_value(rk, "message.copy.max.bytes", v, sizeof(v));
    assert_string_equal(v, "4096");
    rd_kafka_destroy(rk);
    ifq_config_destroy(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bounded_by_the_inflight_cap),
        cmocka_unit_test(unbounded_keeps_the_16_mib_default),
        cmocka_unit_test(config_properties_win),
        cmocka_unit_test(producer_copy_max_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
