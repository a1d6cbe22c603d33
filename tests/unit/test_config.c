/*
 * test_config.c - the YAML loader and the config validation: defaults,
 * environment overrides, and an error that names the key for each defect.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "catalog.h"
#include "config.h"

static const char good[] = "kafka:\n"
                           "  bootstrap_servers: \"k1:9092,k2:9092\"\n"
                           "  topic_prefix: acme\n"
                           "  properties:\n"
                           "    security.protocol: plaintext\n"
                           "    socket.keepalive.enable: true\n"
                           "redis:\n"
                           "  url: redis://r:6380/2\n"
                           "deployments:\n"
                           "  llama-8b:\n"
                           "    provider: openai\n"
                           "    base_url: http://127.0.0.1:8000/v1\n"
                           "    model: meta-llama/Llama-3.1-8B\n"
                           "    api_key_env: LLAMA_KEY\n"
                           "    max_inflight: 64\n"
                           "  gpt:\n"
                           "    base_url: https://api.openai.com/v1\n"
                           "aliases:\n"
                           "  chat: [llama-8b, gpt]\n"
                           "  one: gpt\n";

static void parses_a_full_config(void **state)
{
    char err[512] = "";
    unsetenv("INFERQ_KAFKA_BOOTSTRAP");
    unsetenv("INFERQ_REDIS_URL");
    ifq_config_t *cfg = ifq_config_parse(good, strlen(good), err, sizeof(err));
    assert_non_null(cfg);
    assert_string_equal(cfg->bootstrap, "k1:9092,k2:9092");
    assert_string_equal(cfg->topic_requests, "acme.requests");
    assert_string_equal(cfg->topic_replies, "acme.replies");
    assert_string_equal(cfg->topic_dlq, "acme.dlq");
    assert_string_equal(cfg->topic_traces, "acme.traces");
    assert_string_equal(cfg->redis_url, "redis://r:6380/2");
    assert_int_equal(cfg->worker_max_undelivered, 0); /* the worker uses max_inflight */
    assert_int_equal(cfg->n_deployments, 2);
    ifq_deployment_t *d = ifq_config_deployment(cfg, "llama-8b");
    assert_non_null(d);
    assert_string_equal(d->model, "meta-llama/Llama-3.1-8B");
    assert_string_equal(d->topic, "acme.model.llama-8b");
    assert_int_equal(d->max_inflight, 64);
    ifq_deployment_t *g = ifq_config_deployment(cfg, "gpt");
    assert_string_equal(g->provider, "openai"); /* default */
    assert_string_equal(g->model, "gpt");       /* defaults to the name */

    ifq_route_t r;
    assert_int_equal(ifq_catalog_resolve(cfg, "chat", &r), IFQ_OK);
    assert_int_equal(r.n, 2);
    assert_ptr_equal(r.chain[0], d);
    assert_ptr_equal(r.chain[1], g);
    assert_int_equal(ifq_catalog_resolve(cfg, "one", &r), IFQ_OK);
    assert_int_equal(r.n, 1);
    assert_int_equal(ifq_catalog_resolve(cfg, "gpt", &r), IFQ_OK); /* a deployment by name */
    assert_int_equal(r.n, 1);
    assert_int_equal(ifq_catalog_resolve(cfg, "nope", &r), IFQ_ERR_NOTFOUND);
    ifq_config_destroy(cfg);
}

static void environment_overrides_the_file(void **state)
{
    char err[512];
    setenv("INFERQ_KAFKA_BOOTSTRAP", "10.0.0.1:9092", 1);
    setenv("INFERQ_REDIS_URL", "redis://10.0.0.2:6379/0", 1);
    ifq_config_t *cfg = ifq_config_parse(good, strlen(good), err, sizeof(err));
    assert_non_null(cfg);
    assert_string_equal(cfg->bootstrap, "10.0.0.1:9092");
    assert_string_equal(cfg->redis_url, "redis://10.0.0.2:6379/0");
    ifq_config_destroy(cfg);
    unsetenv("INFERQ_KAFKA_BOOTSTRAP");
    unsetenv("INFERQ_REDIS_URL");
}

static void empty_config_gets_defaults(void **state)
{
    char err[512];
    ifq_config_t *cfg = ifq_config_parse("", 0, err, sizeof(err));
    assert_non_null(cfg);
    assert_string_equal(cfg->prefix, "inferq");
    assert_string_equal(cfg->topic_requests, "inferq.requests");
    assert_int_equal(cfg->n_deployments, 0);
    assert_int_equal(cfg->max_attempts, 3);
    ifq_config_destroy(cfg);
}

/* Each defect, and the words the error must contain. */
static const struct {
    const char *yaml;
    const char *expect;
} bad[] = {
    {"kafka: [1, 2]\n", "kafka: must be a mapping"},
    {"kafak:\n  x: 1\n", "unknown key 'kafak'"},
    {"kafka:\n  partitions: 0\n", "kafka.partitions"},
    {"kafka:\n  topic_prefix: \"bad prefix\"\n", "kafka.topic_prefix"},
    {"kafka:\n  properties:\n    no.such.property: 1\n", "kafka.properties.no.such.property"},
    {"deployments:\n  x:\n    provider: azure\n    api_version: v\n", "deployments.x.base_url"},
    {"deployments:\n  x:\n    provider: bedrock\n", "deployments.x.region"},
    {"deployments:\n  x:\n    base_url: http://a\n    price_input_per_mtok: -1\n",
     "price_input_per_mtok"},
    {"deployments:\n  x:\n    base_url: http://a\n    tags: {tier: [1]}\n", "tags.tier"},
    {"deployments:\n  x:\n    base_url: http://a\n    provider: carrier-pigeon\n",
     "unknown provider 'carrier-pigeon'"},
    {"deployments:\n  \"a b\":\n    base_url: http://a\n", "deployment names"},
    {"deployments:\n  x:\n    base_url: http://a\n    colour: red\n", "unknown key 'colour'"},
    {"deployments:\n  x:\n    base_url: http://a\naliases:\n  chat: [x, y]\n",
     "aliases.chat[1]: unknown deployment 'y'"},
    {"deployments:\n  x:\n    base_url: http://a\naliases:\n  x: [x]\n", "already a deployment"},
    {"aliases:\n  chat: []\n", "aliases.chat"},
    {"worker:\n  deployments: [ghost]\n", "worker.deployments[0]: unknown deployment 'ghost'"},
    {"redis:\n  url: 5\n", "redis.url: must be a string"},
    {"a: 1\na: 2\n", "duplicate key 'a'"},
    {"x: &anchor 1\ny: *anchor\n", "anchors"},
    {"kafka: {\n", "line"},
    {"log:\n  level: loud\n", "log.level"},
};

static void every_defect_names_its_key(void **state)
{
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[512] = "";
        ifq_config_t *cfg = ifq_config_parse(bad[i].yaml, strlen(bad[i].yaml), err, sizeof(err));
        if (cfg || !strstr(err, bad[i].expect))
            fail_msg("case %zu (%s): got %s, error '%s', want '%s'", i, bad[i].yaml,
                     cfg ? "a config" : "NULL", err, bad[i].expect);
    }
}

static void yaml_scalars_become_json_types(void **state)
{
    char err[256];
    const char *y = "i: 42\nn: -7\nf: 1.5\nt: true\nno: false\nz: ~\ns: '42'\np: plain text\n";
    json_t *j = ifq_yaml_parse(y, strlen(y), err, sizeof(err));
    assert_non_null(j);
    assert_true(json_is_integer(json_object_get(j, "i")));
    assert_int_equal(json_integer_value(json_object_get(j, "n")), -7);
    assert_true(json_is_real(json_object_get(j, "f")));
    assert_true(json_is_true(json_object_get(j, "t")));
    assert_true(json_is_false(json_object_get(j, "no")));
    assert_true(json_is_null(json_object_get(j, "z")));
    assert_string_equal(json_string_value(json_object_get(j, "s")), "42"); /* quoted stays text */
    assert_string_equal(json_string_value(json_object_get(j, "p")), "plain text");
    json_decref(j);
}

static void loads_the_shipped_local_config(void **state)
{
    char err[512] = "";
    ifq_config_t *cfg = ifq_config_load("deploy/local/inferq.yaml", err, sizeof(err));
    if (!cfg)
        fail_msg("%s", err);
    ifq_route_t r;
    assert_int_equal(ifq_catalog_resolve(cfg, "chat-default", &r), IFQ_OK);
    assert_int_equal(ifq_catalog_resolve(cfg, "embed-default", &r), IFQ_OK);
    ifq_config_destroy(cfg);
    assert_null(ifq_config_load("/nonexistent/inferq.yaml", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/inferq.yaml"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_a_full_config),
        cmocka_unit_test(environment_overrides_the_file),
        cmocka_unit_test(empty_config_gets_defaults),
        cmocka_unit_test(every_defect_names_its_key),
        cmocka_unit_test(yaml_scalars_become_json_types),
        cmocka_unit_test(loads_the_shipped_local_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
