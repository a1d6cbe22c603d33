/*
 * test_route.c - routing strategies: failover order, weighted choice,
 * least busy, circuit-aware reordering, context windows, teams and access.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pipeline.h"
#include "route.h"

static const char yaml[] =
    "deployments:\n"
    "  a: {base_url: 'http://a/v1', context_window: 1000, tags: {tier: small}}\n"
    "  b: {base_url: 'http://b/v1', context_window: 100000, price_input_per_mtok: 3,"
    " price_output_per_mtok: 15, tags: {tier: large}}\n"
    "  c: {base_url: 'http://c/v1'}\n"
    "aliases:\n"
    "  chain: [a, b, c]\n"
    "  w: {strategy: weighted, deployments: [a, b], weights: [1, 3]}\n"
    "  lb: {strategy: least_busy, deployments: [a, b, c]}\n"
    "  tiers: {strategy: cost, small: [a], large: [b]}\n"
    "teams:\n"
    "  search: {models: [chain, 'w*'], reply_topics: ['search.*']}\n"
    "  ops: {models: ['*'], hmac_key_env: IFQ_TEST_OPS_KEY}\n"
    "broker: {default_team: search}\n";

static ifq_config_t *cfg;

static int setup(void **state)
{
    char err[512];
    cfg = ifq_config_parse(yaml, strlen(yaml), err, sizeof(err));
    if (!cfg)
        fprintf(stderr, "%s\n", err);
    return cfg ? 0 : -1;
}

static int teardown(void **state)
{
    ifq_config_destroy(cfg);
    return 0;
}

static json_t *chat(const char *model, int max_tokens, size_t text_bytes)
{
    char *text = malloc(text_bytes + 1);
    memset(text, 'x', text_bytes);
    text[text_bytes] = '\0';
    json_t *r = json_pack("{ss ss s{ss s[{ss ss}] si}}", "custom_id", "r", "url",
                          "/v1/chat/completions", "body", "model", model, "messages", "role",
                          "user", "content", text, "max_tokens", max_tokens);
    free(text);
    return r;
}

static const char *pick(const char *model, const ifq_health_t *h, double rnd, size_t *n,
                        ifq_route_status_t *st, size_t bytes, int max_tokens)
{
    static char first[64];
    json_t *req = chat(model, max_tokens, bytes);
    ifq_route_t r;
    json_t *dec = NULL;
    char why[256];
    *st = ifq_route_select(cfg, h, req, model, IFQ_URL_CHAT, rnd, &r, &dec, why, sizeof(why));
    json_decref(req);
    json_decref(dec);
    *n = r.n;
    snprintf(first, sizeof(first), "%s", r.n ? r.chain[0]->name : "");
    return first;
}

static void failover_keeps_the_configured_order(void **state)
{
    size_t n;
    ifq_route_status_t st;
    assert_string_equal(pick("chain", NULL, 0.5, &n, &st, 10, 10), "a");
    assert_int_equal(n, 3);
    assert_string_equal(pick("c", NULL, 0.5, &n, &st, 10, 10), "c"); /* a deployment by name */
    assert_int_equal(n, 1);
    pick("nope", NULL, 0.5, &n, &st, 10, 10);
    assert_int_equal(st, IFQ_ROUTE_NOT_FOUND);
}

static void weighted_follows_the_weights(void **state)
{
    size_t n;
    ifq_route_status_t st;
    int b = 0;
    for (int i = 0; i < 1000; i++)
        b += strcmp(pick("w", NULL, (i + 0.5) / 1000.0, &n, &st, 10, 10), "b") == 0;
    assert_in_range(b, 740, 760); /* 3 of 4 */
    assert_int_equal(n, 2);       /* the other stays as fallback */
}

static void least_busy_and_circuits(void **state)
{
    ifq_dep_health_t deps[3] = {{0, 0, 50}, {0, 0, 5}, {0, 0, -1}};
    ifq_health_t h = {3, deps};
    size_t n;
    ifq_route_status_t st;
    assert_string_equal(pick("lb", &h, 0.5, &n, &st, 10, 10), "b");
    /* b's circuit opens: it moves to the back. */
    deps[1].circuit_open = 1;
    deps[1].circuit_changed_ms = 100;
    assert_string_equal(pick("lb", &h, 0.5, &n, &st, 10, 10), "a");
    assert_string_equal(pick("chain", &h, 0.5, &n, &st, 10, 10), "a");
    /* All open: the least recently failed first rather than failing. */
    deps[0].circuit_open = 1;
    deps[0].circuit_changed_ms = 300;
    deps[2].circuit_open = 1;
    deps[2].circuit_changed_ms = 200;
    assert_string_equal(pick("chain", &h, 0.5, &n, &st, 10, 10), "b");
    assert_int_equal(n, 3);
}

static void context_window_skips_small_models(void **state)
{
    size_t n;
    ifq_route_status_t st;
    /* ~2000 prompt tokens: a (1000) cannot hold it. */
    assert_string_equal(pick("chain", NULL, 0.5, &n, &st, 8000, 100), "b");
    assert_int_equal(n, 2);
    /* max_tokens counts too. */
    assert_string_equal(pick("chain", NULL, 0.5, &n, &st, 40, 990), "b");
    pick("a", NULL, 0.5, &n, &st, 8000, 100);
    assert_int_equal(st, IFQ_ROUTE_TOO_LONG);
}

static void cost_tiers_route_by_complexity(void **state)
{
    size_t n;
    ifq_route_status_t st;
    json_t *req = chat("tiers", 10, 10);
    json_object_set_new(req, "metadata", json_pack("{ss}", "tier", "large"));
    ifq_route_t r;
    json_t *dec = NULL;
    char why[256];
    assert_int_equal(
        ifq_route_select(cfg, NULL, req, "tiers", IFQ_URL_CHAT, 0.5, &r, &dec, why, sizeof(why)),
        IFQ_ROUTE_OK);
    assert_string_equal(r.chain[0]->name, "b");
    assert_string_equal(json_string_value(json_object_get(dec, "tier")), "large");
    assert_non_null(json_object_get(dec, "score"));
    json_decref(dec);
    json_decref(req);
    assert_string_equal(pick("tiers", NULL, 0.5, &n, &st, 10, 10), "a");
}

static ifq_decision_t decide(const char *topic, const char *line, const char *team, const char *sig)
{
    static ifq_pipeline_t p;
    p.cfg = cfg;
    ifq_msgmeta_t meta = {.topic = topic, .offset = 1, .sig_team = team, .signature = sig};
    ifq_decision_t d;
    ifq_pipeline_decide(&p, line, strlen(line), &meta, 1000, &d);
    ifq_decision_finish(&d);
    return d;
}

static void teams_come_from_topics_or_signatures(void **state)
{
    const char *line = "{\"custom_id\":\"t\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":"
                       "\"lb\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}}";
    /* default team search may not use lb, whatever the payload says */
    ifq_decision_t d = decide("inferq.requests", line, NULL, NULL);
    assert_int_equal(d.kind, IFQ_OUT_RESULT);
    assert_string_equal(d.error_code, "model_not_allowed");
    assert_string_equal(d.team, "search");
    ifq_decision_clear(&d);
    /* the ops team topic may */
    d = decide("inferq.requests.ops", line, NULL, NULL);
    assert_int_equal(d.kind, IFQ_OUT_ROUTE);
    assert_string_equal(d.team, "ops");
    assert_non_null(strstr(d.value, "\"team\":\"ops\""));
    ifq_decision_clear(&d);
    /* an unknown team topic is refused */
    d = decide("inferq.requests.ghost", line, NULL, NULL);
    assert_string_equal(d.error_code, "unauthorized");
    ifq_decision_clear(&d);
    /* a header naming a team without a valid signature is refused */
    setenv("IFQ_TEST_OPS_KEY", "s3cret", 1);
    d = decide("inferq.requests", line, "ops", "00");
    assert_string_equal(d.error_code, "unauthorized");
    ifq_decision_clear(&d);
    char sig[65];
    ifq_hmac_hex("s3cret", line, strlen(line), sig);
    d = decide("inferq.requests", line, "ops", sig);
    assert_int_equal(d.kind, IFQ_OUT_ROUTE);
    assert_string_equal(d.team, "ops");
    ifq_decision_clear(&d);
    sig[0] = sig[0] == 'a' ? 'b' : 'a';
    d = decide("inferq.requests", line, "ops", sig);
    assert_string_equal(d.error_code, "unauthorized");
    ifq_decision_clear(&d);
}

static void reply_topics_are_checked_per_team(void **state)
{
    const char *ok = "{\"custom_id\":\"t\",\"reply_to\":\"search.answers\",\"url\":\"/v1/chat/"
                     "completions\",\"body\":{\"model\":\"chain\",\"messages\":[{\"role\":"
                     "\"user\",\"content\":\"hi\"}]}}";
    const char *bad = "{\"custom_id\":\"t\",\"reply_to\":\"payroll.answers\",\"url\":\"/v1/chat/"
                      "completions\",\"body\":{\"model\":\"chain\",\"messages\":[{\"role\":"
                      "\"user\",\"content\":\"hi\"}]}}";
    ifq_decision_t d = decide("inferq.requests", ok, NULL, NULL);
    assert_int_equal(d.kind, IFQ_OUT_ROUTE);
    assert_string_equal(d.reply_topic, "search.answers");
    ifq_decision_clear(&d);
    d = decide("inferq.requests", bad, NULL, NULL);
    assert_string_equal(d.error_code, "reply_topic_not_allowed");
    assert_string_equal(d.topic, "inferq.replies"); /* never the forbidden topic */
    ifq_decision_clear(&d);
}

static void priority_picks_the_lane_topic(void **state)
{
    const char *hi = "{\"custom_id\":\"t\",\"priority\":\"high\",\"url\":\"/v1/chat/completions\","
                     "\"body\":{\"model\":\"chain\",\"messages\":[{\"role\":\"user\",\"content\":"
                     "\"hi\"}],\"max_tokens\":100}}";
    ifq_decision_t d = decide("inferq.requests", hi, NULL, NULL);
    assert_string_equal(d.topic, "inferq.model-high.a");
    assert_int_equal(d.est_tokens, 100 + (16 + 2 + 3) / 4);
    ifq_decision_clear(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(failover_keeps_the_configured_order),
        cmocka_unit_test(weighted_follows_the_weights),
        cmocka_unit_test(least_busy_and_circuits),
        cmocka_unit_test(context_window_skips_small_models),
        cmocka_unit_test(cost_tiers_route_by_complexity),
        cmocka_unit_test(teams_come_from_topics_or_signatures),
        cmocka_unit_test(reply_topics_are_checked_per_team),
        cmocka_unit_test(priority_picks_the_lane_topic),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
