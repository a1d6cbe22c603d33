/*
 * test_complexity.c - the cost router's complexity score: obvious small and
 * large requests, metadata.tier overrides, the threshold, the features object
 * a person reads to see why, scan bounds, odd input, and config errors that
 * name their key.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common.h"
#include "complexity.h"

/* A request line with one user message (and optional extra top-level JSON). */
static json_t *req_user(const char *text, const char *extra_json)
{
    json_t *r = json_pack("{s:s, s:s, s:s, s:{s:s, s:[{s:s, s:s}]}}", "custom_id", "t", "method",
                          "POST", "url", "/v1/chat/completions", "body", "model", "auto",
                          "messages", "role", "user", "content", text);
    assert_non_null(r);
    if (extra_json) {
        json_t *extra = json_loads(extra_json, 0, NULL);
        assert_non_null(extra);
        assert_int_equal(json_object_update(r, extra), 0);
        json_decref(extra);
    }
    return r;
}

static json_t *req_json(const char *text)
{
    json_error_t e;
    json_t *r = json_loads(text, 0, &e);
    if (!r)
        fail_msg("bad test JSON: %s", e.text);
    return r;
}

static ifq_complexity_cfg_t defaults(void)
{
    ifq_complexity_cfg_t cfg;
    char err[256] = "";
    assert_int_equal(ifq_complexity_cfg_parse(NULL, &cfg, err, sizeof(err)), IFQ_OK);
    return cfg;
}

/* Scores one user message with the defaults; returns the decision. */
static int decide(const char *text, double *score)
{
    ifq_complexity_cfg_t cfg = defaults();
    json_t *r = req_user(text, NULL);
    ifq_complexity_t out;
    assert_int_equal(ifq_complexity_score(&cfg, r, &out), IFQ_OK);
    if (score)
        *score = out.score;
    json_decref(out.features);
    json_decref(r);
    return out.large;
}

static void simple_requests_go_small(void **state)
{
    static const char *const easy[] = {
        "Hi!",
        "What is the capital of France?",
        "Translate 'good morning' into Spanish.",
        "Summarize this in one sentence: The library will be closed on Monday for the public "
        "holiday. Books due that day can be returned on Tuesday without a late fee.",
        "Classify the sentiment of this review as positive, negative or neutral: Great value, "
        "my kids love it.",
        "Extract all email addresses from: write to anna@example.com or bob@example.org",
    };
    for (size_t i = 0; i < IFQ_ARRAY_LEN(easy); i++) {
        double s;
        if (decide(easy[i], &s))
            fail_msg("routed large (score %.3f): %s", s, easy[i]);
    }
}

static void hard_requests_go_large(void **state)
{
    static const char *const hard[] = {
        "Prove that there are infinitely many primes.",
        "Prove that sqrt(2) is irrational.", /* short but hard */
        "Design a distributed rate limiter shared by 40 API gateway instances. Discuss the data "
        "model, consistency and failure handling, and compare the trade-offs.",
        "Implement a thread-safe LRU cache in C with O(1) get and put, and explain why it is "
        "correct under concurrency.",
        "Compute the integral of x^2 e^x dx and explain each step.",
        "Plan a 10-day trip for two with a budget of 4,000 EUR: we must be in Osaka on day 7, "
        "no more than 3 hotel changes, and at least one rural stay.",
    };
    for (size_t i = 0; i < IFQ_ARRAY_LEN(hard); i++) {
        double s;
        if (!decide(hard[i], &s))
            fail_msg("routed small (score %.3f): %s", s, hard[i]);
    }
}

/* Length alone must not decide: fixing typos in a long text stays small. */
static void long_but_easy_stays_small(void **state)
{
    static const char para[] =
        "The city councel met on Tuesday to discus the proposed expansion of the northern bus "
        "line. Residents from three neighbourhoods spoke in favour, citing long commutes and "
        "the lack of evening servise. A smaller group raised concerns about noise and parking "
        "near the new stops. The transport director said a final route would be published in "
        "the spring, after a second round of public coment, and that construction would not "
        "begin before next year. ";
    char text[8192];
    size_t n = (size_t)snprintf(text, sizeof(text), "Fix the typos in this paragraph:\n\n");
    for (int i = 0; i < 6 && n + sizeof(para) < sizeof(text); i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%s", para);
    double s;
    assert_true(strlen(text) > 2000);
    if (decide(text, &s))
        fail_msg("long typo fix routed large (score %.3f)", s);
}

static void metadata_tier_forces_the_decision(void **state)
{
    ifq_complexity_cfg_t cfg = defaults();
    ifq_complexity_t out;

    json_t *hard = req_user("Prove that there are infinitely many primes.",
                            "{\"metadata\": {\"tier\": \"small\"}}");
    assert_int_equal(ifq_complexity_score(&cfg, hard, &out), IFQ_OK);
    assert_int_equal(out.large, 0);
    assert_string_equal(out.reason, "metadata.tier=small");
    assert_true(out.score >= cfg.threshold); /* the score is still recorded */
    assert_string_equal(json_string_value(json_object_get(out.features, "tier_hint")), "small");
    json_decref(out.features);

    json_t *easy = req_user("Hi!", "{\"metadata\": {\"tier\": \"large\"}}");
    assert_int_equal(ifq_complexity_score(&cfg, easy, &out), IFQ_OK);
    assert_int_equal(out.large, 1);
    assert_string_equal(out.reason, "metadata.tier=large");
    json_decref(out.features);

    /* An operator may refuse client hints. */
    cfg.honor_tier_hint = 0;
    assert_int_equal(ifq_complexity_score(&cfg, easy, &out), IFQ_OK);
    assert_int_equal(out.large, 0);
    assert_string_equal(out.reason, "score<threshold");
    json_decref(out.features);
    json_decref(easy);
    json_decref(hard);

    /* Anything but small|large is no hint. */
    cfg.honor_tier_hint = 1;
    json_t *odd = req_user("Hi!", "{\"metadata\": {\"tier\": \"medium\"}}");
    assert_int_equal(ifq_complexity_score(&cfg, odd, &out), IFQ_OK);
    assert_int_equal(out.large, 0);
    assert_true(json_is_null(json_object_get(out.features, "tier_hint")));
    json_decref(out.features);
    json_decref(odd);
}

static void threshold_decides_at_score_greater_or_equal(void **state)
{
    ifq_complexity_cfg_t cfg = defaults();
    json_t *r = req_user("Explain how public-key cryptography works.", NULL);
    ifq_complexity_raw_t raw;
    ifq_complexity_measure(r, &raw);
    double z;
    int large;
    const char *why;
    double s = ifq_complexity_eval(&cfg, &raw, &z, &large, &why);
    assert_true(s > 0.0 && s < 1.0);

    cfg.threshold = s; /* equal: large */
    ifq_complexity_eval(&cfg, &raw, NULL, &large, &why);
    assert_int_equal(large, 1);
    assert_string_equal(why, "score>=threshold");
    cfg.threshold = s + 1e-9;
    ifq_complexity_eval(&cfg, &raw, NULL, &large, &why);
    assert_int_equal(large, 0);
    assert_string_equal(why, "score<threshold");
    cfg.threshold = 0.0; /* everything large */
    ifq_complexity_eval(&cfg, &raw, NULL, &large, NULL);
    assert_int_equal(large, 1);
    cfg.threshold = 1.0; /* everything small */
    ifq_complexity_eval(&cfg, &raw, NULL, &large, NULL);
    assert_int_equal(large, 0);

    /* The score is the logistic of bias + sum(weights * inputs). */
    cfg = defaults();
    double expect = cfg.bias;
    for (int i = 0; i < IFQ_CX_NFEAT; i++)
        expect += cfg.weights[i] * raw.x[i];
    assert_float_equal(z, expect, 1e-12);
    json_decref(r);
}

static void priority_biases_the_logit(void **state)
{
    ifq_complexity_cfg_t cfg = defaults();
    json_t *n = req_user("Explain how public-key cryptography works.", NULL);
    json_t *h = req_user("Explain how public-key cryptography works.", "{\"priority\": \"high\"}");
    ifq_complexity_t a, b;
    assert_int_equal(ifq_complexity_score(&cfg, n, &a), IFQ_OK);
    assert_int_equal(ifq_complexity_score(&cfg, h, &b), IFQ_OK);
    assert_float_equal(b.logit - a.logit, cfg.priority_bias[1], 1e-9);
    assert_string_equal(json_string_value(json_object_get(b.features, "priority")), "high");
    assert_string_equal(json_string_value(json_object_get(a.features, "priority")), "normal");
    json_decref(a.features);
    json_decref(b.features);
    json_decref(n);
    json_decref(h);
}

static void features_explain_the_decision(void **state)
{
    ifq_complexity_cfg_t cfg = defaults();
    json_t *r =
        req_json("{\"custom_id\": \"f\", \"body\": {\"model\": \"auto\", \"max_tokens\": 512, "
                 "\"messages\": ["
                 "{\"role\": \"system\", \"content\": \"You are terse.\"},"
                 "{\"role\": \"user\", \"content\": \"Why does this crash?\\n```c\\nint main(void) "
                 "{ char *p "
                 "= NULL; return *p; }\\n```\"},"
                 "{\"role\": \"assistant\", \"content\": \"It dereferences NULL.\"},"
                 "{\"role\": \"user\", \"content\": \"Prove that the fix is correct.\"}]}}");
    ifq_complexity_t out;
    assert_int_equal(ifq_complexity_score(&cfg, r, &out), IFQ_OK);
    json_t *f = out.features;
    assert_non_null(f);
    static const char *const keys[] = {
        "est_tokens",  "system_tokens", "max_tokens",    "turns",     "code",
        "code_cues",   "math",          "question_type", "hard_cues", "easy_cues",
        "constraints", "tier_hint",     "priority",      "logit",     "contrib"};
    for (size_t i = 0; i < IFQ_ARRAY_LEN(keys); i++)
        if (!json_object_get(f, keys[i]))
            fail_msg("features.%s missing", keys[i]);
    assert_int_equal(json_integer_value(json_object_get(f, "max_tokens")), 512);
    assert_int_equal(json_integer_value(json_object_get(f, "turns")), 3);
    assert_int_equal(json_integer_value(json_object_get(f, "system_tokens")), 4); /* 14 bytes */
    assert_true(json_real_value(json_object_get(f, "code")) > 0.5);
    assert_true(json_real_value(json_object_get(f, "math")) > 0.0);
    assert_string_equal(json_string_value(json_object_get(f, "question_type")), "reasoning");
    json_t *contrib = json_object_get(f, "contrib");
    double sum = cfg.bias;
    for (int i = 0; i < IFQ_CX_NFEAT; i++) {
        json_t *c = json_object_get(contrib, ifq_complexity_feature_names[i]);
        if (!json_is_number(c))
            fail_msg("contrib.%s missing", ifq_complexity_feature_names[i]);
        sum += json_number_value(c);
    }
    /* contributions are rounded to 4 decimals */
    assert_float_equal(sum, json_real_value(json_object_get(f, "logit")), 1e-3);
    assert_float_equal(out.score, 1.0 / (1.0 + exp(-out.logit)), 1e-12);
    json_decref(out.features);
    json_decref(r);
}

static void est_tokens_are_bytes_over_four(void **state)
{
    ifq_complexity_raw_t raw;
    json_t *r = req_user("12345678", NULL); /* 8 bytes */
    ifq_complexity_measure(r, &raw);
    assert_int_equal(raw.est_tokens, 2);
    assert_int_equal(raw.max_tokens, -1);
    json_decref(r);
    r = req_user("123456789", NULL); /* 9 bytes: rounded up */
    ifq_complexity_measure(r, &raw);
    assert_int_equal(raw.est_tokens, 3);
    json_decref(r);

    /* Content parts: text parts count, images do not. */
    r = req_json("{\"body\": {\"messages\": [{\"role\": \"user\", \"content\": ["
                 "{\"type\": \"text\", \"text\": \"abcd\"},"
                 "{\"type\": \"image_url\", \"image_url\": {\"url\": \"https://x/y.png\"}},"
                 "{\"type\": \"text\", \"text\": \"efgh\"}]}]}}");
    ifq_complexity_measure(r, &raw);
    assert_int_equal(raw.est_tokens, 2);
    json_decref(r);

    /* /v1/completions carries a prompt instead of messages. */
    r = req_json("{\"url\": \"/v1/completions\", \"body\": {\"prompt\": \"abcdefgh\", "
                 "\"max_tokens\": 7}}");
    ifq_complexity_measure(r, &raw);
    assert_int_equal(raw.est_tokens, 2);
    assert_int_equal(raw.turns, 1);
    assert_int_equal(raw.max_tokens, 7);
    json_decref(r);
}

/* Words inside a code block are code, not the user's question: "hi" and
 * "list" as identifiers are no greeting and no list request. */
static void cues_inside_code_fences_do_not_count(void **state)
{
    ifq_complexity_raw_t raw;
    json_t *r = req_user("```python\nlo, hi = 0, len(a)\nlist = sorted(a)\nwhy = 1\n```", NULL);
    ifq_complexity_measure(r, &raw);
    assert_int_equal(raw.easy_cues, 0);
    assert_int_equal(raw.hard_cues, 0);
    assert_int_equal(raw.fences, 2);
    assert_true(raw.x[IFQ_CX_CODE] > 0.5);
    json_decref(r);

    /* Leading verbs count only leading their sentence. */
    r = req_user("List the planets.", NULL);
    ifq_complexity_measure(r, &raw);
    assert_int_equal(raw.easy_cues, 1);
    json_decref(r);
    r = req_user("Walk an adjacency list.", NULL);
    ifq_complexity_measure(r, &raw);
    assert_int_equal(raw.easy_cues, 0);
    json_decref(r);
}

/* A huge message is counted in full but scanned only within the bounds. */
static void scanning_is_bounded(void **state)
{
    size_t n = 200000;
    char *big = malloc(n + 1);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = "why prove "[i % 10];
    big[n] = '\0';
    json_t *r = req_user(big, NULL);
    ifq_complexity_raw_t raw;
    ifq_complexity_measure(r, &raw);
    assert_int_equal(raw.est_tokens, 50000);
    assert_true(raw.scanned_bytes <= 32768);
    json_decref(r);
    free(big);
}

static void odd_input_never_crashes(void **state)
{
    ifq_complexity_cfg_t cfg = defaults();
    ifq_complexity_t out;
    json_t *arr = json_array();
    assert_int_equal(ifq_complexity_score(&cfg, arr, &out), IFQ_ERR_INVALID);
    assert_null(out.features);
    assert_int_equal(ifq_complexity_score(&cfg, NULL, &out), IFQ_ERR_INVALID);
    json_decref(arr);

    static const char *const odd[] = {
        "{}",
        "{\"body\": 5}",
        "{\"body\": {\"messages\": \"hi\"}}",
        "{\"body\": {\"messages\": [5, null, {\"role\": 3, \"content\": 4}, {\"content\": [1, "
        "{\"text\": 2}]}]}}",
        "{\"body\": {\"messages\": [{\"role\": \"user\", \"content\": \"```\"}], \"max_tokens\": "
        "-5}, \"metadata\": \"x\", \"priority\": 7}",
        "{\"body\": {\"messages\": [{\"role\": \"user\", \"content\": \"\\\\\"}], "
        "\"max_tokens\": 99999999999}}",
    };
    for (size_t i = 0; i < IFQ_ARRAY_LEN(odd); i++) {
        json_t *r = req_json(odd[i]);
        assert_int_equal(ifq_complexity_score(&cfg, r, &out), IFQ_OK);
        assert_non_null(out.features);
        assert_true(out.score >= 0.0 && out.score <= 1.0);
        json_decref(out.features);
        json_decref(r);
    }
}

static void config_defaults_and_overrides(void **state)
{
    char err[256] = "";
    ifq_complexity_cfg_t cfg;
    assert_int_equal(ifq_complexity_cfg_parse(NULL, &cfg, err, sizeof(err)), IFQ_OK);
    assert_float_equal(cfg.threshold, 0.30, 1e-12);
    assert_int_equal(cfg.honor_tier_hint, 1);
    double code_default = cfg.weights[IFQ_CX_CODE];

    /* An alias with strategy: cost carries the router's keys beside ours. */
    json_t *sec = req_json(
        "{\"strategy\": \"cost\", \"health_aware\": true, \"small\": [\"llama-8b\"], \"large\": "
        "[\"gpt-4o\"], \"threshold\": 0.55, \"bias\": -1.5, "
        "\"weights\": {\"math\": 3, \"len\": 0.25}, "
        "\"priority_bias\": {\"high\": 1.0, \"low\": -0.5}, "
        "\"honor_tier_hint\": false}");
    assert_int_equal(ifq_complexity_cfg_parse(sec, &cfg, err, sizeof(err)), IFQ_OK);
    assert_float_equal(cfg.threshold, 0.55, 1e-12);
    assert_float_equal(cfg.bias, -1.5, 1e-12);
    assert_float_equal(cfg.weights[IFQ_CX_MATH], 3.0, 1e-12);
    assert_float_equal(cfg.weights[IFQ_CX_LEN], 0.25, 1e-12);
    assert_float_equal(cfg.weights[IFQ_CX_CODE], code_default, 1e-12); /* untouched */
    assert_float_equal(cfg.priority_bias[1], 1.0, 1e-12);
    assert_float_equal(cfg.priority_bias[2], -0.5, 1e-12);
    assert_int_equal(cfg.honor_tier_hint, 0);
    json_decref(sec);

    json_t *null = json_null();
    assert_int_equal(ifq_complexity_cfg_parse(null, &cfg, err, sizeof(err)), IFQ_OK);
    json_decref(null);
}

static void config_errors_name_the_key(void **state)
{
    static const struct {
        const char *json;
        const char *prefix;
    } cases[] = {
        {"{\"threshold\": 1.5}", "threshold:"},
        {"{\"threshold\": \"high\"}", "threshold:"},
        {"{\"bias\": 1000}", "bias:"},
        {"{\"weights\": [1, 2]}", "weights:"},
        {"{\"weights\": {\"lenght\": 1}}", "weights.lenght: unknown feature"},
        {"{\"weights\": {\"code\": \"x\"}}", "weights.code: must be a number"},
        {"{\"priority_bias\": {\"urgent\": 1}}", "priority_bias.urgent:"},
        {"{\"priority_bias\": {\"high\": true}}", "priority_bias.high:"},
        {"{\"priority_bias\": 1}", "priority_bias:"},
        {"{\"honor_tier_hint\": \"yes\"}", "honor_tier_hint:"},
        {"{\"thresold\": 0.5}", "thresold: unknown key"},
        {"[1]", "must be a mapping"},
    };
    for (size_t i = 0; i < IFQ_ARRAY_LEN(cases); i++) {
        char err[256] = "";
        ifq_complexity_cfg_t cfg;
        json_t *sec = req_json(cases[i].json);
        assert_int_equal(ifq_complexity_cfg_parse(sec, &cfg, err, sizeof(err)), IFQ_ERR_CONFIG);
        if (strncmp(err, cases[i].prefix, strlen(cases[i].prefix)) != 0)
            fail_msg("%s: error \"%s\" does not start with \"%s\"", cases[i].json, err,
                     cases[i].prefix);
        /* out keeps the defaults on error */
        assert_float_equal(cfg.threshold, 0.30, 1e-12);
        json_decref(sec);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(simple_requests_go_small),
        cmocka_unit_test(hard_requests_go_large),
        cmocka_unit_test(long_but_easy_stays_small),
        cmocka_unit_test(metadata_tier_forces_the_decision),
        cmocka_unit_test(threshold_decides_at_score_greater_or_equal),
        cmocka_unit_test(priority_biases_the_logit),
        cmocka_unit_test(features_explain_the_decision),
        cmocka_unit_test(est_tokens_are_bytes_over_four),
        cmocka_unit_test(cues_inside_code_fences_do_not_count),
        cmocka_unit_test(scanning_is_bounded),
        cmocka_unit_test(odd_input_never_crashes),
        cmocka_unit_test(config_defaults_and_overrides),
        cmocka_unit_test(config_errors_name_the_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
