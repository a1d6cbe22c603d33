/*
 * fuzz_jsonbuf.c - the byte-level JSON readers of lib/jsonbuf.c
 * (ifq_json_members, ifq_sb_json_compact) on arbitrary bytes: the worker
 * runs them on routed messages, which anyone who can write to the request
 * topic controls. They must never read outside the bytes or loop, every
 * range found must lie inside the input, and compacting never lengthens
 * it. On an object jansson accepts, the members found must be jansson's
 * values for those keys (unless a key repeats or is written with an
 * escape), and on any JSON jansson accepts, the compacted text must read
 * back to the same value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jsonbuf.h"

#define MAX_KEYS 64

static void check_ranges(const ifq_jrange_t *r, size_t nkeys, size_t size)
{
    for (size_t k = 0; k < nkeys; k++)
        if (r[k].len && (r[k].off > size || r[k].len > size - r[k].off))
            abort();
}

/* Counts the keys of the top-level object of s (JSON that jansson
 * accepted as an object) and says whether one is written with an escape.
 * Walked here independently of lib/jsonbuf.c. */
static void scan_keys(const char *s, size_t n, size_t *count, int *escaped)
{
    size_t depth = 0;
    int want_key = 0;
    *count = 0;
    *escaped = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '"') {
            size_t start = i++;
            while (i < n && s[i] != '"')
                i += s[i] == '\\' ? 2 : 1;
            if (i > n)
                i = n;
            if (depth == 1 && want_key) {
                (*count)++;
                if (memchr(s + start, '\\', i - start))
                    *escaped = 1;
                want_key = 0;
            }
        } else if (c == '{' || c == '[') {
            if (++depth == 1)
                want_key = 1;
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == ',' && depth == 1) {
            want_key = 1;
        }
    }
}

/* The range r of s is JSON equal to want. */
static void check_value(const char *s, ifq_jrange_t r, json_t *want)
{
    if (!want) {
        if (r.len)
            abort();
        return;
    }
    if (!r.len)
        abort();
    json_t *got = json_loadb(s + r.off, r.len, JSON_DECODE_ANY, NULL);
    if (!got || !json_equal(got, want))
        abort();
    json_decref(got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    static const char *const fixed[] = {"a", "b", "model", "messages", "", "id"};
    enum { NFIXED = sizeof(fixed) / sizeof(fixed[0]) };
    ifq_jrange_t r[MAX_KEYS];
    int rc = ifq_json_members(s, size, fixed, NFIXED, r);
    if (rc != 0 && rc != -1)
        abort();
    check_ranges(r, NFIXED, size);

    ifq_sb_t b = {0};
    ifq_sb_json_compact(&b, s, size);
    if (b.oom) {
        ifq_sb_free(&b);
        return 0;
    }
    if (b.len > size)
        abort();
    /* Once compact, nothing more to take out. */
    ifq_sb_t b2 = {0};
    ifq_sb_json_compact(&b2, b.p, b.len);
    if (!b2.oom && (b2.len != b.len || (b.len && memcmp(b.p, b2.p, b.len) != 0)))
        abort();
    ifq_sb_free(&b2);

    json_t *root = json_loadb(s, size, 0, NULL);
    if (root && json_is_object(root)) {
        size_t count;
        int escaped;
        scan_keys(s, size, &count, &escaped);
        int dup = count != json_object_size(root);
        if (!escaped) {
            if (rc != 0)
                abort();
            for (size_t k = 0; k < NFIXED; k++) {
                json_t *want = json_object_get(root, fixed[k]);
                if (!want || !dup)
                    check_value(s, r[k], want);
            }
            /* Every key of the object, asked for at once. */
            const char *keys[MAX_KEYS];
            size_t nkeys = 0;
            for (void *it = json_object_iter(root); it && nkeys < MAX_KEYS;
                 it = json_object_iter_next(root, it))
                keys[nkeys++] = json_object_iter_key(it);
            if (ifq_json_members(s, size, keys, nkeys, r) != 0)
                abort();
            check_ranges(r, nkeys, size);
            if (!dup)
                for (size_t k = 0; k < nkeys; k++)
                    check_value(s, r[k], json_object_get(root, keys[k]));
        }
    }
    json_decref(root);

    json_t *any = json_loadb(s, size, JSON_DECODE_ANY, NULL);
    if (any) {
        json_t *c = json_loadb(b.p ? b.p : "", b.len, JSON_DECODE_ANY, NULL);
        if (!c || !json_equal(c, any))
            abort();
        json_decref(c);
        json_decref(any);
    }
    ifq_sb_free(&b);
    return 0;
}
