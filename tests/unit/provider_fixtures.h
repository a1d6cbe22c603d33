/*
 * provider_fixtures.h - helpers for the provider adapter tests: reading the
 * recorded bodies under tests/unit/data/providers/ (tests run from the repo
 * root), comparing JSON and looking at built requests. Header-only so that
 * every test_provider_*.c stays one self-contained ctest.
 */
#ifndef IFQ_PROVIDER_FIXTURES_H
#define IFQ_PROVIDER_FIXTURES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "provider.h"

#define FX_DIR "tests/unit/data/providers/"

/* The whole file (NUL-terminated, caller frees); fails the test when absent. */
static inline char *fx_read(const char *rel, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), FX_DIR "%s", rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s (run the tests from the repository root)", path);
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static inline json_t *fx_json(const char *rel)
{
    char *s = fx_read(rel, NULL);
    json_error_t je;
    json_t *j = json_loads(s, 0, &je);
    if (!j)
        fail_msg("%s: line %d: %s", rel, je.line, je.text);
    free(s);
    return j;
}

/* Fails with both documents printed when they differ. */
static inline void fx_assert_json_equal(const json_t *got, const json_t *want, const char *what)
{
    if (json_equal((json_t *)got, (json_t *)want))
        return;
    char *g = json_dumps(got, JSON_INDENT(1) | JSON_SORT_KEYS);
    char *w = json_dumps(want, JSON_INDENT(1) | JSON_SORT_KEYS);
    print_error("%s differs\n--- got\n%s\n--- want\n%s\n", what, g ? g : "(null)",
                w ? w : "(null)");
    free(g);
    free(w);
    fail();
}

/* The built body compared with a recorded file. */
static inline void fx_assert_body(const ifq_http_req_t *req, const char *rel)
{
    json_error_t je;
    json_t *got = json_loadb(req->body, req->body_len, 0, &je);
    assert_non_null(got);
    json_t *want = fx_json(rel);
    fx_assert_json_equal(got, want, rel);
    json_decref(got);
    json_decref(want);
}

/* The value of header name (case-insensitive), or NULL. */
static inline const char *fx_header(const ifq_http_req_t *req, const char *name)
{
    size_t nl = strlen(name);
    for (int i = 0; i < req->n_headers; i++) {
        const char *h = req->headers[i];
        if (strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
            h += nl + 1;
            while (*h == ' ')
                h++;
            return h;
        }
    }
    return NULL;
}

/* How many places of the request (URL, body, each header) contain s. */
static inline int fx_places(const ifq_http_req_t *req, const char *s, int *in_url, int *in_body)
{
    *in_url = strstr(req->url, s) != NULL;
    *in_body = req->body && strstr(req->body, s) != NULL;
    int n = *in_url + *in_body;
    for (int i = 0; i < req->n_headers; i++)
        n += strstr(req->headers[i], s) != NULL;
    return n;
}

/* Parses a recorded response file with an adapter. */
static inline json_t *fx_parse(const ifq_provider_t *p, const ifq_deployment_t *dep,
                               ifq_url_kind_t kind, long status, const char *rel,
                               ifq_upstream_err_t *err)
{
    size_t len;
    char *body = fx_read(rel, &len);
    memset(err, 0, sizeof(*err));
    json_t *out = p->parse(dep, kind, status, body, len, err);
    free(body);
    return out;
}

/* Builds from a recorded OpenAI body; asserts the outcome. */
static inline int fx_build(const ifq_provider_t *p, const ifq_deployment_t *dep,
                           ifq_url_kind_t kind, const char *rel, const char *key,
                           ifq_http_req_t *req, ifq_upstream_err_t *err)
{
    json_t *body = fx_json(rel);
    memset(err, 0, sizeof(*err));
    int rc = p->build(dep, kind, body, key, req, err);
    json_decref(body);
    return rc;
}

/* Builds from an inline OpenAI body; returns the rc. */
static inline int fx_build_str(const ifq_provider_t *p, const ifq_deployment_t *dep,
                               ifq_url_kind_t kind, const char *json, ifq_http_req_t *req,
                               ifq_upstream_err_t *err)
{
    json_error_t je;
    json_t *body = json_loads(json, 0, &je);
    if (!body)
        fail_msg("bad test JSON: %s", je.text);
    memset(err, 0, sizeof(*err));
    int rc = p->build(dep, kind, body, "sk-test", req, err);
    json_decref(body);
    if (rc == IFQ_OK) {
        free(req->body);
        req->body = NULL;
    }
    return rc;
}

/* Asserts that build refuses the body with a readable, non-retryable error
 * of the given type whose message contains needle. */
static inline void fx_assert_refused(const ifq_provider_t *p, const ifq_deployment_t *dep,
                                     ifq_url_kind_t kind, const char *json, const char *type,
                                     const char *needle)
{
    ifq_http_req_t req;
    ifq_upstream_err_t err;
    int rc = fx_build_str(p, dep, kind, json, &req, &err);
    if (rc != IFQ_ERR_INVALID)
        fail_msg("%s accepted %s", p->name, json);
    assert_false(err.retryable);
    if (strcmp(err.type, type) != 0 || !strstr(err.message, needle))
        fail_msg("%s: got type %s message \"%s\", want %s containing \"%s\"", json, err.type,
                 err.message, type, needle);
}

/* choices[0].message of a chat.completion (borrowed). */
static inline json_t *fx_message(json_t *resp)
{
    return json_object_get(json_array_get(json_object_get(resp, "choices"), 0), "message");
}

static inline const char *fx_str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static inline json_int_t fx_usage(json_t *resp, const char *key)
{
    return json_integer_value(json_object_get(json_object_get(resp, "usage"), key));
}

#endif
