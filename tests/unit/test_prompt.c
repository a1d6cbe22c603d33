/*
 * test_prompt.c - prompt templates.
 *
 * Part 1 (no network): every case of tests/unit/data/prompt_render_cases.json
 * is one test: a template (a JSON object, or a string holding the stored
 * text), variables, and either the expected messages/params or an expected
 * error substring. Then the limits that are impractical as data files
 * (sizes, nesting, counts).
 *
 * Part 2 (needs the redis-server binary; skipped with a message when it is
 * missing): starts its own redis-server on a free loopback port and covers
 * push, versions, identical pushes, labels, show, list, render_request by
 * label and version, the label cache, and Redis going away.
 *
 * Run from the repository root (ctest does).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>

#include "prompt.h"
#include "redis_fixture.h"

#define CASES_FILE "tests/unit/data/prompt_render_cases.json"

/* ====================================================================== */
/* Part 1: the pure renderer                                              */
/* ====================================================================== */

static void assert_json_equal(const json_t *got, const json_t *want, const char *what)
{
    if (json_equal((json_t *)got, (json_t *)want))
        return;
    char *g = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
    char *w = json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY);
    print_error("%s differ\n  got:  %s\n  want: %s\n", what, g ? g : "(null)", w ? w : "(null)");
    free(g);
    free(w);
    fail();
}

/* One data case: parse the template text, render, compare. */
static void render_case(void **state)
{
    const json_t *c = *state;
    const json_t *tj = json_object_get(c, "template");
    char *text;
    if (json_is_string(tj))
        text = strdup(json_string_value(tj));
    else
        text = json_dumps(tj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_non_null(text);
    const char *want_err = json_string_value(json_object_get(c, "error"));
    char err[512] = "";
    json_t *tmpl = ifq_prompt_parse(text, strlen(text), err, sizeof(err));
    free(text);
    json_t *msgs = NULL, *params = NULL;
    int rc = IFQ_ERR_INVALID;
    if (tmpl) {
        rc = ifq_prompt_render(tmpl, json_object_get(c, "variables"), &msgs, &params, err,
                               sizeof(err));
        json_decref(tmpl);
    }
    if (want_err) {
        if (rc == IFQ_OK || !strstr(err, want_err)) {
            print_error("want error containing \"%s\", got rc %d \"%s\"\n", want_err, rc, err);
            fail();
        }
        assert_null(msgs);
        assert_null(params);
        return;
    }
    if (rc != IFQ_OK) {
        print_error("unexpected error %d: %s\n", rc, err);
        fail();
    }
    assert_json_equal(msgs, json_object_get(c, "messages"), "messages");
    const json_t *want_params = json_object_get(c, "params");
    if (want_params)
        assert_json_equal(params, want_params, "params");
    json_decref(msgs);
    json_decref(params);
}

static json_t *tmpl_user(const char *content)
{
    return json_pack("{s:[{s:s,s:s}]}", "messages", "role", "user", "content", content);
}

static void rendered_output_is_capped_at_one_mebibyte(void **state)
{
    (void)state;
    /* 10 uses of a 200 KB value: 2 MB from a small template and request. */
    json_t *t = tmpl_user("{{v}}{{v}}{{v}}{{v}}{{v}}{{v}}{{v}}{{v}}{{v}}{{v}}");
    size_t n = 200 * 1000;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    big[n] = '\0';
    json_t *vars = json_pack("{s:s}", "v", big);
    json_t *msgs = NULL, *params = NULL;
    char err[256];
    assert_int_equal(ifq_prompt_render(t, vars, &msgs, &params, err, sizeof(err)), IFQ_ERR_TOOBIG);
    assert_non_null(strstr(err, "rendered prompt exceeds 1048576 bytes"));
    assert_null(msgs);
    assert_null(params);

    /* Five uses (1,000,000 bytes) still fit. */
    json_decref(t);
    t = tmpl_user("{{v}}{{v}}{{v}}{{v}}{{v}}");
    assert_int_equal(ifq_prompt_render(t, vars, &msgs, &params, err, sizeof(err)), IFQ_OK);
    const char *s = json_string_value(json_object_get(json_array_get(msgs, 0), "content"));
    assert_int_equal(strlen(s), 5 * n);
    json_decref(msgs);
    json_decref(params);
    json_decref(vars);
    json_decref(t);
    free(big);
}

static void stored_template_size_is_capped(void **state)
{
    (void)state;
    size_t n = IFQ_PROMPT_MAX_TEMPLATE + 1;
    char *text = malloc(n);
    memset(text, 'a', n);
    char err[256];
    assert_null(ifq_prompt_parse(text, n, err, sizeof(err)));
    assert_non_null(strstr(err, "exceeds the limit of 262144 bytes"));
    /* Exactly at the limit is fine. */
    json_t *t = ifq_prompt_parse(text, n - 1, err, sizeof(err));
    assert_non_null(t);
    json_decref(t);
    free(text);
}

static void deep_nesting_is_refused(void **state)
{
    (void)state;
    json_t *inner = json_string("{{x}}");
    for (int i = 0; i < IFQ_PROMPT_MAX_DEPTH + 2; i++)
        inner = json_pack("[o]", inner);
    json_t *t = json_pack("{s:[{s:s,s:o}]}", "messages", "role", "user", "content", inner);
    char err[256];
    assert_int_equal(ifq_prompt_validate(t, err, sizeof(err)), IFQ_ERR_INVALID);
    assert_non_null(strstr(err, "nested deeper than 16 levels"));
    json_decref(t);
}

static void too_many_messages_are_refused(void **state)
{
    (void)state;
    json_t *msgs = json_array();
    for (int i = 0; i <= IFQ_PROMPT_MAX_MESSAGES; i++)
        json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "user", "content", "x"));
    json_t *t = json_pack("{s:o}", "messages", msgs);
    char err[256];
    assert_int_equal(ifq_prompt_validate(t, err, sizeof(err)), IFQ_ERR_INVALID);
    assert_non_null(strstr(err, "at most 256 messages"));
    json_decref(t);
}

static void too_many_variables_are_refused(void **state)
{
    (void)state;
    /* In the template... */
    char *s = malloc(20 * 300);
    size_t n = 0;
    for (int i = 0; i <= IFQ_PROMPT_MAX_VARIABLES; i++)
        n += (size_t)snprintf(s + n, 20 * 300 - n, "{{v%d}}", i);
    json_t *t = tmpl_user(s);
    char err[256];
    assert_int_equal(ifq_prompt_validate(t, err, sizeof(err)), IFQ_ERR_INVALID);
    assert_non_null(strstr(err, "more than 256 variables"));
    json_decref(t);
    free(s);
    /* ...and from a client, even when extra variables are allowed. */
    t = json_pack("{s:[{s:s,s:s}],s:b}", "messages", "role", "user", "content", "x",
                  "allow_extra_variables", 1);
    json_t *vars = json_object();
    for (int i = 0; i <= IFQ_PROMPT_MAX_VARIABLES; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        json_object_set_new(vars, k, json_string("v"));
    }
    json_t *msgs, *params;
    assert_int_equal(ifq_prompt_render(t, vars, &msgs, &params, err, sizeof(err)), IFQ_ERR_INVALID);
    assert_non_null(strstr(err, "more than 256 variables"));
    json_decref(vars);
    json_decref(t);
}

static void a_long_variable_name_is_refused(void **state)
{
    (void)state;
    char s[128] = "{{";
    memset(s + 2, 'a', 65);
    memcpy(s + 67, "}}", 3);
    json_t *t = tmpl_user(s);
    char err[256];
    assert_int_equal(ifq_prompt_validate(t, err, sizeof(err)), IFQ_ERR_INVALID);
    assert_non_null(strstr(err, "longer than 64 characters"));
    json_decref(t);
}

static void rendering_copies_and_leaves_the_template_alone(void **state)
{
    (void)state;
    json_t *t = json_pack("{s:[{s:s,s:s}],s:{s:i}}", "messages", "role", "user", "content", "{{a}}",
                          "params", "max_tokens", 5);
    json_t *before = json_deep_copy(t);
    json_t *vars = json_pack("{s:s}", "a", "b");
    json_t *msgs, *params;
    char err[256];
    assert_int_equal(ifq_prompt_render(t, vars, &msgs, &params, err, sizeof(err)), IFQ_OK);
    json_object_set_new(params, "max_tokens", json_integer(9));
    json_object_set_new(json_array_get(msgs, 0), "content", json_string("changed"));
    assert_true(json_equal(t, before));
    assert_int_equal(json_object_size(vars), 1);
    json_decref(msgs);
    json_decref(params);
    json_decref(vars);
    json_decref(before);
    json_decref(t);
}

static void render_accepts_null_variables_and_any_document(void **state)
{
    (void)state;
    json_t *msgs = (json_t *)1, *params = (json_t *)1;
    char err[256];
    json_t *t = tmpl_user("plain");
    assert_int_equal(ifq_prompt_render(t, NULL, &msgs, &params, err, sizeof(err)), IFQ_OK);
    json_decref(msgs);
    json_decref(params);
    json_decref(t);
    json_t *odd[] = {json_null(), json_integer(1), json_string("x"), json_array()};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(ifq_prompt_render(odd[i], NULL, &msgs, &params, err, sizeof(err)),
                         IFQ_ERR_INVALID);
        assert_null(msgs);
        assert_null(params);
        json_decref(odd[i]);
    }
    assert_int_equal(ifq_prompt_render(NULL, NULL, &msgs, &params, err, sizeof(err)),
                     IFQ_ERR_INVALID);
}

static void ids_and_labels_have_a_charset(void **state)
{
    (void)state;
    assert_true(ifq_prompt_id_valid("summarise"));
    assert_true(ifq_prompt_id_valid("Team.A_support-v2"));
    assert_false(ifq_prompt_id_valid(""));
    assert_false(ifq_prompt_id_valid("a:b"));
    assert_false(ifq_prompt_id_valid("a b"));
    assert_false(ifq_prompt_id_valid("a*"));
    char long_id[IFQ_PROMPT_MAX_ID + 2];
    memset(long_id, 'a', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    assert_false(ifq_prompt_id_valid(long_id));
    long_id[IFQ_PROMPT_MAX_ID] = '\0';
    assert_true(ifq_prompt_id_valid(long_id));

    assert_true(ifq_prompt_label_valid("production"));
    assert_true(ifq_prompt_label_valid("canary_2-b"));
    assert_false(ifq_prompt_label_valid("latest"));
    assert_false(ifq_prompt_label_valid("Production"));
    assert_false(ifq_prompt_label_valid(""));
    assert_false(ifq_prompt_label_valid("a.b"));
    assert_false(ifq_prompt_label_valid(NULL));
}

static void invalid_utf8_text_is_refused(void **state)
{
    (void)state;
    const char bad[] = "Hello \xff\xfe {{x}}";
    char err[256];
    assert_null(ifq_prompt_parse(bad, sizeof(bad) - 1, err, sizeof(err)));
    assert_non_null(strstr(err, "not valid UTF-8"));
    /* A byte order mark is skipped. */
    const char bom[] = "\xEF\xBB\xBF{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}";
    json_t *t = ifq_prompt_parse(bom, sizeof(bom) - 1, err, sizeof(err));
    assert_non_null(t);
    json_decref(t);
}

/* ====================================================================== */
/* Part 2: storage, against a private redis-server                        */
/* ====================================================================== */

static int redis_start(void **state)
{
    (void)state;
    return redis_fixture_start(2);
}

static int redis_teardown(void **state)
{
    (void)state;
    redis_stop();
    return 0;
}

static const char summarise_v1[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"You are {{persona}}.\"},\n"
    "              {\"role\": \"user\", \"content\": \"Summarise: {{text}}\"}],\n"
    " \"variables\": {\"persona\": {\"default\": \"a helpful assistant\"},\n"
    "               \"text\": {\"required\": true}},\n"
    " \"model\": \"chat-small\", \"params\": {\"temperature\": 0, \"max_tokens\": 100}}\n";
static const char summarise_v2[] = "Summarise in one line: {{text}}\n";

static ifq_prompts_t *open_store(void)
{
    char err[256];
    ifq_prompts_t *p = ifq_prompts_connect(redis_url, "ifqtest", err, sizeof(err));
    if (!p)
        print_error("connect: %s\n", err);
    assert_non_null(p);
    return p;
}

static void push_numbers_versions_and_reuses_identical_content(void **state)
{
    (void)state;
    NEED_REDIS();
    ifq_prompts_t *p = open_store();
    char err[256];
    int v = -1, created = -1;
    assert_int_equal(ifq_prompts_push(p, "summarise", summarise_v1, strlen(summarise_v1), &v,
                                      &created, err, sizeof(err)),
                     IFQ_OK);
    assert_int_equal(v, 1);
    assert_int_equal(created, 1);
    assert_int_equal(ifq_prompts_push(p, "summarise", summarise_v1, strlen(summarise_v1), &v,
                                      &created, err, sizeof(err)),
                     IFQ_OK);
    assert_int_equal(v, 1);
    assert_int_equal(created, 0);
    assert_int_equal(ifq_prompts_push(p, "summarise", summarise_v2, strlen(summarise_v2), &v,
                                      &created, err, sizeof(err)),
                     IFQ_OK);
    assert_int_equal(v, 2);
    assert_int_equal(created, 1);
    /* Identical to an older version but not the latest: a new version. */
    assert_int_equal(ifq_prompts_push(p, "summarise", summarise_v1, strlen(summarise_v1), &v, NULL,
                                      err, sizeof(err)),
                     IFQ_OK);
    assert_int_equal(v, 3);
    assert_int_equal(ifq_prompts_push(p, "greet", "Hello {{name}}", 14, &v, NULL, err, sizeof(err)),
                     IFQ_OK);
    assert_int_equal(v, 1);

    /* Refused before anything is written. */
    assert_int_equal(ifq_prompts_push(p, "bad", "Hi {{ x", 7, &v, NULL, err, sizeof(err)),
                     IFQ_ERR_INVALID);
    assert_non_null(strstr(err, "not a valid template: messages[0].content: malformed"));
    assert_int_equal(ifq_prompts_push(p, "a:b", "x", 1, &v, NULL, err, sizeof(err)),
                     IFQ_ERR_INVALID);
    assert_int_equal(
        ifq_prompts_push(p, "big", "x", IFQ_PROMPT_MAX_TEMPLATE + 1, &v, NULL, err, sizeof(err)),
        IFQ_ERR_TOOBIG);
    ifq_prompts_destroy(p);
}

static void labels_point_at_existing_versions(void **state)
{
    (void)state;
    NEED_REDIS();
    ifq_prompts_t *p = open_store();
    char err[256];
    assert_int_equal(ifq_prompts_label(p, "summarise", "production", 1, err, sizeof(err)), IFQ_OK);
    assert_int_equal(ifq_prompts_label(p, "summarise", "staging", 2, err, sizeof(err)), IFQ_OK);
    assert_int_equal(ifq_prompts_label(p, "summarise", "staging", 9, err, sizeof(err)),
                     IFQ_ERR_INVALID);
    assert_string_equal(err, "prompt 'summarise' has no version 9 (latest is 3)");
    assert_int_equal(ifq_prompts_label(p, "nope", "production", 1, err, sizeof(err)),
                     IFQ_ERR_NOTFOUND);
    assert_string_equal(err, "prompt 'nope' does not exist");
    assert_int_equal(ifq_prompts_label(p, "summarise", "latest", 1, err, sizeof(err)),
                     IFQ_ERR_INVALID);
    assert_int_equal(ifq_prompts_label(p, "summarise", "Prod", 1, err, sizeof(err)),
                     IFQ_ERR_INVALID);
    assert_int_equal(ifq_prompts_label(p, "summarise", "x", 0, err, sizeof(err)), IFQ_ERR_INVALID);
    ifq_prompts_destroy(p);
}

static void show_reads_a_version_by_number_label_or_latest(void **state)
{
    (void)state;
    NEED_REDIS();
    ifq_prompts_t *p = open_store();
    char err[256];
    json_t *s = ifq_prompts_show(p, "summarise", 0, NULL, err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(json_integer_value(json_object_get(s, "version")), 3);
    assert_int_equal(json_integer_value(json_object_get(s, "latest")), 3);
    assert_string_equal(json_string_value(json_object_get(s, "content")), summarise_v1);
    json_decref(s);

    s = ifq_prompts_show(p, "summarise", 0, "staging", err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(json_integer_value(json_object_get(s, "version")), 2);
    assert_string_equal(json_string_value(json_object_get(s, "content")), summarise_v2);
    json_t *want_labels = json_pack("[s]", "staging");
    assert_true(json_equal(json_object_get(s, "labels"), want_labels));
    json_decref(want_labels);
    char hash[40];
    snprintf(hash, sizeof(hash), "fnv1a64:%016llx",
             (unsigned long long)ifq_fnv1a64(summarise_v2, strlen(summarise_v2), 0));
    assert_string_equal(json_string_value(json_object_get(s, "hash")), hash);
    assert_int_equal(json_integer_value(json_object_get(s, "bytes")), strlen(summarise_v2));
    assert_true(json_integer_value(json_object_get(s, "created_ms")) > 1600000000000LL);
    json_decref(s);

    s = ifq_prompts_show(p, "summarise", 1, NULL, err, sizeof(err));
    assert_non_null(s);
    want_labels = json_pack("[s]", "production");
    assert_true(json_equal(json_object_get(s, "labels"), want_labels));
    json_decref(want_labels);
    json_decref(s);

    assert_null(ifq_prompts_show(p, "summarise", 7, NULL, err, sizeof(err)));
    assert_string_equal(err, "prompt 'summarise' has no version 7 (latest is 3)");
    assert_null(ifq_prompts_show(p, "summarise", 0, "canary", err, sizeof(err)));
    assert_string_equal(err, "prompt 'summarise' has no label 'canary'");
    assert_null(ifq_prompts_show(p, "missing", 0, NULL, err, sizeof(err)));
    assert_string_equal(err, "prompt 'missing' does not exist");
    ifq_prompts_destroy(p);
}

static void list_has_every_id_with_latest_and_labels(void **state)
{
    (void)state;
    NEED_REDIS();
    ifq_prompts_t *p = open_store();
    char err[256];
    json_t *l = ifq_prompts_list(p, err, sizeof(err));
    assert_non_null(l);
    assert_int_equal(json_array_size(l), 2);
    json_t *g = json_array_get(l, 0), *s = json_array_get(l, 1);
    assert_string_equal(json_string_value(json_object_get(g, "id")), "greet");
    assert_int_equal(json_integer_value(json_object_get(g, "latest")), 1);
    assert_int_equal(json_object_size(json_object_get(g, "labels")), 0);
    assert_string_equal(json_string_value(json_object_get(s, "id")), "summarise");
    assert_int_equal(json_integer_value(json_object_get(s, "latest")), 3);
    json_t *want = json_pack("{s:i,s:i}", "production", 1, "staging", 2);
    assert_true(json_equal(json_object_get(s, "labels"), want));
    json_decref(want);
    json_decref(l);
    ifq_prompts_destroy(p);
}

static void a_prompt_has_at_most_64_labels(void **state)
{
    (void)state;
    NEED_REDIS();
    ifq_prompts_t *p = open_store();
    char err[256];
    int v;
    assert_int_equal(ifq_prompts_push(p, "many", "x", 1, &v, NULL, err, sizeof(err)), IFQ_OK);
    for (int i = 0; i < IFQ_PROMPT_MAX_LABELS; i++) {
        char label[16];
        snprintf(label, sizeof(label), "l%d", i);
        assert_int_equal(ifq_prompts_label(p, "many", label, 1, err, sizeof(err)), IFQ_OK);
    }
    assert_int_equal(ifq_prompts_label(p, "many", "one-more", 1, err, sizeof(err)), IFQ_ERR_TOOBIG);
    assert_non_null(strstr(err, "already has 64 labels"));
    /* Moving an existing label is still fine. */
    assert_int_equal(ifq_prompts_label(p, "many", "l0", 1, err, sizeof(err)), IFQ_OK);
    ifq_prompts_destroy(p);
}

static int render(ifq_prompts_t *p, const char *prompt_json, json_t **body, char *ref, char *err)
{
    json_error_t je;
    json_t *pf = json_loads(prompt_json, 0, &je);
    assert_non_null(pf);
    int rc = ifq_prompts_render_request(p, pf, *body, ref, IFQ_PROMPT_REF_SIZE, err, 256);
    json_decref(pf);
    return rc;
}

static void render_request_resolves_labels_and_fills_the_body(void **state)
{
    (void)state;
    NEED_REDIS();
    ifq_prompts_t *p = open_store();
    char err[256], ref[IFQ_PROMPT_REF_SIZE];
    json_t *body = json_pack("{s:s,s:i}", "model", "chat-default", "max_tokens", 20);
    assert_int_equal(render(p,
                            "{\"id\": \"summarise\", \"label\": \"production\","
                            " \"variables\": {\"text\": \"Kafka is a log.\"}}",
                            &body, ref, err),
                     IFQ_OK);
    assert_string_equal(ref, "summarise@1");
    json_t *want =
        json_pack("{s:s,s:i,s:[{s:s,s:s},{s:s,s:s}],s:i}", "model", "chat-default", "max_tokens",
                  20, "messages", "role", "system", "content", "You are a helpful assistant.",
                  "role", "user", "content", "Summarise: Kafka is a log.", "temperature", 0);
    assert_json_equal(body, want, "body");
    json_decref(want);
    json_decref(body);

    /* The template's model applies when the body has none. */
    body = json_object();
    assert_int_equal(
        render(p, "{\"id\": \"summarise\", \"version\": 1, \"variables\": {\"text\": \"t\"}}",
               &body, ref, err),
        IFQ_OK);
    assert_string_equal(json_string_value(json_object_get(body, "model")), "chat-small");
    assert_int_equal(json_integer_value(json_object_get(body, "max_tokens")), 100);
    json_decref(body);

    /* No version and no label: the latest. "latest" as a label: the same. */
    body = json_object();
    assert_int_equal(
        render(p, "{\"id\": \"greet\", \"variables\": {\"name\": \"Ann\"}}", &body, ref, err),
        IFQ_OK);
    assert_string_equal(ref, "greet@1");
    json_decref(body);
    body = json_object();
    assert_int_equal(
        render(p,
               "{\"id\": \"summarise\", \"label\": \"latest\", \"variables\": {\"text\": \"t\"}}",
               &body, ref, err),
        IFQ_OK);
    assert_string_equal(ref, "summarise@3");
    json_decref(body);
    ifq_prompts_destroy(p);
}

static void render_request_errors_are_readable(void **state)
{
    (void)state;
    NEED_REDIS();
    ifq_prompts_t *p = open_store();
    char err[256], ref[IFQ_PROMPT_REF_SIZE];
    static const struct {
        const char *prompt;
        const char *body;
        const char *err;
    } cases[] = {
        {"{\"id\": \"summarise\", \"version\": 7}", "{}",
         "prompt 'summarise' has no version 7 (latest is 3)"},
        {"{\"id\": \"summarise\", \"label\": \"canary\"}", "{}",
         "prompt 'summarise' has no label 'canary'"},
        {"{\"id\": \"nope\"}", "{}", "prompt 'nope' does not exist"},
        {"{\"id\": \"nope\", \"version\": 2}", "{}", "prompt 'nope' does not exist"},
        {"{\"id\": \"summarise\", \"label\": \"production\"}", "{}",
         "prompt 'summarise@1': variable 'text' is required"},
        {"{\"id\": \"summarise\", \"version\": 2, \"variables\": {\"text\": \"a\", \"persona\": "
         "\"b\"}}",
         "{}",
         "prompt 'summarise@2': unknown variable 'persona' (the template's variables are: text)"},
        {"{\"id\": \"summarise\", \"version\": 1, \"variables\": {\"text\": [1]}}", "{}",
         "prompt 'summarise@1': variable 'text' must be a string, number or boolean, got array"},
        {"{\"id\": \"greet\", \"variables\": {\"name\": \"x\"}}",
         "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}",
         "body.messages must be absent when prompt is given"},
        {"{\"id\": \"greet\", \"version\": 1, \"label\": \"production\"}", "{}",
         "prompt: give a version or a label, not both"},
        {"{\"id\": \"greet\", \"version\": 0}", "{}", "prompt.version must be an integer"},
        {"{\"id\": \"greet\", \"version\": \"1\"}", "{}", "prompt.version must be an integer"},
        {"{\"id\": \"greet\", \"label\": \"Prod\"}", "{}", "prompt.label must be a string"},
        {"{\"id\": \"a:b\"}", "{}", "prompt.id must be a string"},
        {"{\"id\": 5}", "{}", "prompt.id must be a string"},
        {"{\"id\": \"greet\", \"variables\": [1]}", "{}", "prompt.variables must be an object"},
        {"{\"id\": \"greet\", \"vars\": {}}", "{}", "prompt has an unknown field 'vars'"},
        {"[1]", "{}", "prompt must be an object"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_error_t je;
        json_t *pf = json_loads(cases[i].prompt, JSON_DECODE_ANY, &je);
        json_t *body = json_loads(cases[i].body, 0, &je);
        json_t *before = json_deep_copy(body);
        int rc = ifq_prompts_render_request(p, pf, body, ref, sizeof(ref), err, sizeof(err));
        if (rc != IFQ_ERR_INVALID || !strstr(err, cases[i].err)) {
            print_error("case %zu %s: rc %d \"%s\", want \"%s\"\n", i, cases[i].prompt, rc, err,
                        cases[i].err);
            fail();
        }
        assert_string_equal(ref, "");
        assert_true(json_equal(body, before)); /* untouched on error */
        json_decref(pf);
        json_decref(body);
        json_decref(before);
    }
    ifq_prompts_destroy(p);
}

static void labels_are_reread_after_the_ttl(void **state)
{
    (void)state;
    NEED_REDIS();
    ifq_prompts_t *broker = open_store();
    ifq_prompts_t *admin = open_store();
    ifq_prompts_set_cache(broker, 300, 0, 0);
    char err[256], ref[IFQ_PROMPT_REF_SIZE];
    const char *pf =
        "{\"id\": \"greet\", \"label\": \"production\", \"variables\": {\"name\": \"x\"}}";
    int v;
    assert_int_equal(ifq_prompts_label(admin, "greet", "production", 1, err, sizeof(err)), IFQ_OK);
    json_t *body = json_object();
    assert_int_equal(render(broker, pf, &body, ref, err), IFQ_OK);
    assert_string_equal(ref, "greet@1");
    json_decref(body);

    /* Another process moves the label: this one sees it within the TTL. */
    assert_int_equal(
        ifq_prompts_push(admin, "greet", "Hi {{name}}!", 12, &v, NULL, err, sizeof(err)), IFQ_OK);
    assert_int_equal(ifq_prompts_label(admin, "greet", "production", v, err, sizeof(err)), IFQ_OK);
    body = json_object();
    assert_int_equal(render(broker, pf, &body, ref, err), IFQ_OK);
    assert_string_equal(ref, "greet@1"); /* still cached */
    json_decref(body);
    struct timespec ts = {0, 350 * 1000 * 1000};
    nanosleep(&ts, NULL);
    body = json_object();
    assert_int_equal(render(broker, pf, &body, ref, err), IFQ_OK);
    assert_string_equal(ref, "greet@2");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(body, "messages"), 0), "content")),
                        "Hi x!");
    json_decref(body);
    ifq_prompts_destroy(admin);
    ifq_prompts_destroy(broker);
}

static void a_tiny_version_cache_still_renders_correctly(void **state)
{
    (void)state;
    NEED_REDIS();
    ifq_prompts_t *p = open_store();
    /* One set of 8 ways, and room for only one template's bytes. */
    ifq_prompts_set_cache(p, 0, 1, strlen(summarise_v1));
    char err[256], ref[IFQ_PROMPT_REF_SIZE];
    for (int round = 0; round < 3; round++) {
        for (int v = 1; v <= 3; v++) {
            char pf[128];
            snprintf(pf, sizeof(pf),
                     "{\"id\": \"summarise\", \"version\": %d, \"variables\": {\"text\": \"t\"}}",
                     v);
            json_t *body = json_object();
            assert_int_equal(render(p, pf, &body, ref, err), IFQ_OK);
            char want[32];
            snprintf(want, sizeof(want), "summarise@%d", v);
            assert_string_equal(ref, want);
            json_decref(body);
        }
    }
    ifq_prompts_destroy(p);
}

/* Last: stops the server. Cached versions still render; anything that needs
 * Redis is IFQ_ERR_IO, quickly. */
static void redis_down_is_an_io_error_but_cached_versions_render(void **state)
{
    (void)state;
    NEED_REDIS();
    ifq_prompts_t *p = open_store();
    char err[256], ref[IFQ_PROMPT_REF_SIZE];
    const char *by_version =
        "{\"id\": \"greet\", \"version\": 1, \"variables\": {\"name\": \"x\"}}";
    json_t *body = json_object();
    assert_int_equal(render(p, by_version, &body, ref, err), IFQ_OK);
    json_decref(body);
    redis_stop();

    body = json_object();
    assert_int_equal(render(p, by_version, &body, ref, err), IFQ_OK);
    assert_string_equal(ref, "greet@1");
    json_decref(body);

    body = json_object();
    int64_t t0 = ifq_mono_ms();
    assert_int_equal(render(p, "{\"id\": \"greet\", \"label\": \"production\"}", &body, ref, err),
                     IFQ_ERR_IO);
    assert_non_null(strstr(err, "redis"));
    /* The next call does not wait for another connect attempt. */
    assert_int_equal(render(p, "{\"id\": \"summarise\"}", &body, ref, err), IFQ_ERR_IO);
    assert_true(ifq_mono_ms() - t0 < 2500);
    assert_int_equal(json_object_size(body), 0);
    json_decref(body);
    int v;
    assert_int_equal(ifq_prompts_push(p, "x", "y", 1, &v, NULL, err, sizeof(err)), IFQ_ERR_IO);
    assert_null(ifq_prompts_list(p, err, sizeof(err)));
    ifq_prompts_destroy(p);

    assert_null(ifq_prompts_connect(redis_url, "ifqtest", err, sizeof(err)));
    assert_null(ifq_prompts_connect("http://x", "ifqtest", err, sizeof(err)));
    assert_non_null(strstr(err, "redis://"));
}

/* ====================================================================== */

int main(void)
{
    /* Part 1a: one test per data case. */
    json_error_t je;
    json_t *cases = json_load_file(CASES_FILE, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_array(cases)) {
        fprintf(stderr, "%s: %s (line %d); run from the repository root\n", CASES_FILE, je.text,
                je.line);
        return 1;
    }
    size_t n = json_array_size(cases);
    struct CMUnitTest *data_tests = calloc(n, sizeof(*data_tests));
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(cases, i);
        data_tests[i].name = json_string_value(json_object_get(c, "name"));
        data_tests[i].test_func = render_case;
        data_tests[i].initial_state = c;
    }
    int failed = _cmocka_run_group_tests("prompt_render_cases", data_tests, n, NULL, NULL);
    free(data_tests);

    const struct CMUnitTest limits[] = {
        cmocka_unit_test(rendered_output_is_capped_at_one_mebibyte),
        cmocka_unit_test(stored_template_size_is_capped),
        cmocka_unit_test(deep_nesting_is_refused),
        cmocka_unit_test(too_many_messages_are_refused),
        cmocka_unit_test(too_many_variables_are_refused),
        cmocka_unit_test(a_long_variable_name_is_refused),
        cmocka_unit_test(rendering_copies_and_leaves_the_template_alone),
        cmocka_unit_test(render_accepts_null_variables_and_any_document),
        cmocka_unit_test(ids_and_labels_have_a_charset),
        cmocka_unit_test(invalid_utf8_text_is_refused),
    };
    failed += cmocka_run_group_tests_name("prompt_render_limits", limits, NULL, NULL);

    const struct CMUnitTest storage[] = {
        cmocka_unit_test(push_numbers_versions_and_reuses_identical_content),
        cmocka_unit_test(labels_point_at_existing_versions),
        cmocka_unit_test(show_reads_a_version_by_number_label_or_latest),
        cmocka_unit_test(list_has_every_id_with_latest_and_labels),
        cmocka_unit_test(a_prompt_has_at_most_64_labels),
        cmocka_unit_test(render_request_resolves_labels_and_fills_the_body),
        cmocka_unit_test(render_request_errors_are_readable),
        cmocka_unit_test(labels_are_reread_after_the_ttl),
        cmocka_unit_test(a_tiny_version_cache_still_renders_correctly),
        cmocka_unit_test(redis_down_is_an_io_error_but_cached_versions_render),
    };
    failed += cmocka_run_group_tests_name("prompt_storage", storage, redis_start, redis_teardown);
    json_decref(cases);
    return failed;
}
