/*
 * test_avro_codec.c - the Avro codec against the shared wire-contract vectors
 * (schemas/vectors/) and against hostile bytes.
 *
 * Runs with the project root as working directory. Every vector is checked
 * both ways: decode(NAME.avro) equals NAME.json, encode(NAME.json) equals
 * NAME.avro byte for byte. Hand-built datums then prove that every way a
 * message can be wrong is rejected with a readable reason.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "avro_codec.h"

#include <dirent.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VECTOR_DIR "schemas/vectors"
#define EXAMPLE_DIR "schemas/examples"

/* Fingerprints computed independently with Python fastavro 1.13.1 and avro
 * 1.12.2 from schemas/request.avsc and schemas/result.avsc, as written on the
 * wire (little-endian). */
static const uint8_t REQUEST_FP_LE[8] = {0x5a, 0xac, 0x6f, 0x88, 0x42, 0xa0, 0x32, 0x94};
static const uint8_t RESULT_FP_LE[8] = {0xd3, 0x43, 0xbc, 0xfe, 0x24, 0xcf, 0x48, 0x4f};

typedef struct {
    char name[128];
    ifq_avro_kind_t kind;
    json_t *json;
    uint8_t *avro;
    size_t avro_len;
} vector_t;

typedef struct {
    ifq_avro_t *codec;
    vector_t *vectors;
    size_t nvectors;
} fixture_t;

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *nb = realloc(buf, cap);
            if (!nb)
                break;
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    *len = n;
    return buf;
}

static int setup(void **state)
{
    char errstr[256] = "";
    fixture_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    fx->codec = ifq_avro_new(errstr, sizeof(errstr));
    if (!fx->codec)
        fail_msg("ifq_avro_new: %s", errstr);

    json_error_t jerr;
    json_t *manifest = json_load_file(VECTOR_DIR "/manifest.json", 0, &jerr);
    if (!manifest)
        fail_msg("cannot read %s/manifest.json (run from the project root): %s", VECTOR_DIR,
                 jerr.text);
    json_t *cases = json_object_get(manifest, "cases");
    assert_true(json_array_size(cases) >= 6);
    fx->nvectors = json_array_size(cases);
    fx->vectors = calloc(fx->nvectors, sizeof(vector_t));
    assert_non_null(fx->vectors);

    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c)
    {
        vector_t *v = &fx->vectors[i];
        char path[512];
        const char *kind = json_string_value(json_object_get(c, "kind"));
        snprintf(v->name, sizeof(v->name), "%s", json_string_value(json_object_get(c, "name")));
        assert_non_null(kind);
        v->kind = strcmp(kind, "request") == 0 ? IFQ_AVRO_REQUEST : IFQ_AVRO_RESULT;
        snprintf(path, sizeof(path), VECTOR_DIR "/%s",
                 json_string_value(json_object_get(c, "json")));
        v->json = json_load_file(path, 0, &jerr);
        if (!v->json)
            fail_msg("%s: %s", path, jerr.text);
        snprintf(path, sizeof(path), VECTOR_DIR "/%s",
                 json_string_value(json_object_get(c, "avro")));
        v->avro = read_file(path, &v->avro_len);
        if (!v->avro)
            fail_msg("cannot read %s", path);
    }
    json_decref(manifest);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    for (size_t i = 0; i < fx->nvectors; i++) {
        json_decref(fx->vectors[i].json);
        free(fx->vectors[i].avro);
    }
    free(fx->vectors);
    ifq_avro_destroy(fx->codec);
    free(fx);
    return 0;
}

static const vector_t *find_vector(const fixture_t *fx, const char *name)
{
    for (size_t i = 0; i < fx->nvectors; i++)
        if (strcmp(fx->vectors[i].name, name) == 0)
            return &fx->vectors[i];
    fail_msg("vector %s missing from the manifest", name);
    return NULL;
}

/* Decodes and expects failure with `want` somewhere in the reason. */
static void expect_decode_error(ifq_avro_t *codec, ifq_avro_kind_t kind, const void *buf,
                                size_t len, const char *want)
{
    char errstr[512] = "";
    json_t *j = ifq_avro_decode(codec, kind, buf, len, errstr, sizeof(errstr));
    if (j) {
        char *s = json_dumps(j, JSON_COMPACT);
        fail_msg("decode of %zu bytes succeeded (%s), expected error containing \"%s\"", len,
                 s ? s : "?", want);
    }
    if (!strstr(errstr, want))
        fail_msg("error \"%s\" does not contain \"%s\"", errstr, want);
}

static void expect_encode_error(ifq_avro_t *codec, ifq_avro_kind_t kind, const char *json_text,
                                const char *want)
{
    char errstr[512] = "";
    json_t *j = json_loads(json_text, 0, NULL);
    assert_non_null(j);
    void *out = (void *)1;
    size_t out_len = 1;
    int rc = ifq_avro_encode(codec, kind, j, &out, &out_len, errstr, sizeof(errstr));
    json_decref(j);
    if (rc == 0) {
        free(out);
        fail_msg("encode of %s succeeded, expected error containing \"%s\"", json_text, want);
    }
    assert_null(out);
    if (!strstr(errstr, want))
        fail_msg("error \"%s\" does not contain \"%s\"", errstr, want);
}

/* ---- a tiny Avro writer for hand-built datums ---- */

typedef struct {
    uint8_t b[4096];
    size_t n;
} dbuf_t;

static void put_bytes(dbuf_t *d, const void *p, size_t n)
{
    assert_true(d->n + n <= sizeof(d->b));
    memcpy(d->b + d->n, p, n);
    d->n += n;
}

static void put_long(dbuf_t *d, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (z & ~UINT64_C(0x7f)) {
        uint8_t c = (uint8_t)((z & 0x7f) | 0x80);
        put_bytes(d, &c, 1);
        z >>= 7;
    }
    uint8_t c = (uint8_t)z;
    put_bytes(d, &c, 1);
}

static void put_str(dbuf_t *d, const char *s)
{
    put_long(d, (int64_t)strlen(s));
    put_bytes(d, s, strlen(s));
}

static void put_soe_header(dbuf_t *d, ifq_avro_kind_t kind)
{
    const uint8_t magic[2] = {0xC3, 0x01};
    put_bytes(d, magic, 2);
    put_bytes(d, kind == IFQ_AVRO_REQUEST ? REQUEST_FP_LE : RESULT_FP_LE, 8);
}

/* A request header plus custom_id, method and url; the caller adds body on. */
static void put_request_start(dbuf_t *d)
{
    put_soe_header(d, IFQ_AVRO_REQUEST);
    put_str(d, "req-1");
    put_str(d, "POST");
    put_str(d, "/v1/chat/completions");
}

/* All five optional request fields null. */
static void put_request_nulls(dbuf_t *d)
{
    for (int i = 0; i < 5; i++)
        put_long(d, 0);
}

/* ---- tests ---- */

static void test_vectors_decode_to_their_json(void **state)
{
    fixture_t *fx = *state;
    for (size_t i = 0; i < fx->nvectors; i++) {
        const vector_t *v = &fx->vectors[i];
        char errstr[512] = "";
        json_t *got =
            ifq_avro_decode(fx->codec, v->kind, v->avro, v->avro_len, errstr, sizeof(errstr));
        if (!got)
            fail_msg("%s: decode failed: %s", v->name, errstr);
        if (!json_equal(got, v->json)) {
            char *a = json_dumps(got, JSON_COMPACT), *b = json_dumps(v->json, JSON_COMPACT);
            fail_msg("%s: decoded %s\n  expected %s", v->name, a, b);
        }
        json_decref(got);
    }
}

static void test_vectors_encode_to_their_bytes(void **state)
{
    fixture_t *fx = *state;
    for (size_t i = 0; i < fx->nvectors; i++) {
        const vector_t *v = &fx->vectors[i];
        char errstr[512] = "";
        void *out = NULL;
        size_t out_len = 0;
        if (ifq_avro_encode(fx->codec, v->kind, v->json, &out, &out_len, errstr, sizeof(errstr)))
            fail_msg("%s: encode failed: %s", v->name, errstr);
        if (out_len != v->avro_len || memcmp(out, v->avro, out_len) != 0)
            fail_msg("%s: encoded %zu bytes differ from the %zu-byte vector", v->name, out_len,
                     v->avro_len);
        free(out);
    }
}

static void test_vectors_cover_the_contract(void **state)
{
    fixture_t *fx = *state;
    static const char *const required[] = {"request_minimal_chat", "request_all_fields",
                                           "request_embeddings",   "request_unicode",
                                           "result_success",       "result_error"};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
        assert_non_null(find_vector(fx, required[i]));
    const vector_t *all = find_vector(fx, "request_all_fields");
    static const char *const optional[] = {"reply_to", "priority", "deadline_ms", "metadata",
                                           "prompt"};
    for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]); i++)
        assert_non_null(json_object_get(all->json, optional[i]));
}

static void test_fingerprints_match_the_python_reference(void **state)
{
    fixture_t *fx = *state;
    for (size_t i = 0; i < fx->nvectors; i++) {
        const vector_t *v = &fx->vectors[i];
        assert_true(v->avro_len > 10);
        assert_int_equal(v->avro[0], 0xC3);
        assert_int_equal(v->avro[1], 0x01);
        assert_memory_equal(v->avro + 2, v->kind == IFQ_AVRO_REQUEST ? REQUEST_FP_LE : RESULT_FP_LE,
                            8);
    }
}

static void test_truncated_input_is_rejected_at_every_length(void **state)
{
    fixture_t *fx = *state;
    for (size_t i = 0; i < fx->nvectors; i++) {
        const vector_t *v = &fx->vectors[i];
        /* A copy of exactly `len` bytes, so ASan sees any read past the end. */
        for (size_t len = 0; len < v->avro_len; len++) {
            uint8_t *cut = malloc(len ? len : 1);
            assert_non_null(cut);
            memcpy(cut, v->avro, len);
            const char *want = len == 0   ? "empty message"
                               : len < 10 ? "truncated header"
                                          : "truncated datum";
            expect_decode_error(fx->codec, v->kind, cut, len, want);
            free(cut);
        }
    }
}

static void test_trailing_garbage_is_rejected(void **state)
{
    fixture_t *fx = *state;
    const vector_t *v = find_vector(fx, "request_minimal_chat");
    uint8_t buf[1024];
    assert_true(v->avro_len + 3 <= sizeof(buf));
    memcpy(buf, v->avro, v->avro_len);
    memcpy(buf + v->avro_len, "\x00\x01\x02", 3);
    expect_decode_error(fx->codec, IFQ_AVRO_REQUEST, buf, v->avro_len + 3,
                        "trailing garbage: 3 bytes after the datum");
}

static void test_unknown_fingerprint_is_rejected(void **state)
{
    fixture_t *fx = *state;
    const vector_t *req = find_vector(fx, "request_minimal_chat");
    uint8_t buf[1024];
    memcpy(buf, req->avro, req->avro_len);
    buf[9] ^= 0x01;
    expect_decode_error(fx->codec, IFQ_AVRO_REQUEST, buf, req->avro_len,
                        "unknown schema fingerprint 0x9532a042886fac5a "
                        "(io.inferq.v1.Request is 0x9432a042886fac5a)");
    /* A result is not a request, and the fingerprint says so. */
    const vector_t *res = find_vector(fx, "result_success");
    expect_decode_error(fx->codec, IFQ_AVRO_REQUEST, res->avro, res->avro_len,
                        "unknown schema fingerprint 0x4f48cf24febc43d3");
    expect_decode_error(fx->codec, IFQ_AVRO_RESULT, req->avro, req->avro_len,
                        "unknown schema fingerprint 0x9432a042886fac5a");
    /* Version byte other than 0x01. */
    memcpy(buf, req->avro, req->avro_len);
    buf[1] = 0x02;
    expect_decode_error(fx->codec, IFQ_AVRO_REQUEST, buf, req->avro_len,
                        "unsupported single-object encoding version 0x02");
}

static void test_confluent_framing_needs_the_registered_id(void **state)
{
    fixture_t *fx = *state;
    const vector_t *v = find_vector(fx, "request_all_fields");
    uint8_t buf[2048];
    size_t datum_len = v->avro_len - 10;
    const uint8_t hdr42[5] = {0x00, 0x00, 0x00, 0x00, 42};
    memcpy(buf, hdr42, 5);
    memcpy(buf + 5, v->avro + 10, datum_len);

    expect_decode_error(fx->codec, IFQ_AVRO_REQUEST, buf, 5 + datum_len,
                        "unknown Confluent schema id 42 (no id registered for "
                        "io.inferq.v1.Request)");

    ifq_avro_set_confluent_id(fx->codec, IFQ_AVRO_REQUEST, 42);
    char errstr[256] = "";
    json_t *got =
        ifq_avro_decode(fx->codec, IFQ_AVRO_REQUEST, buf, 5 + datum_len, errstr, sizeof(errstr));
    if (!got)
        fail_msg("confluent decode: %s", errstr);
    assert_true(json_equal(got, v->json));
    json_decref(got);

    /* The id is big-endian: 0x0000012A is 298, not 42. */
    buf[3] = 0x01;
    expect_decode_error(fx->codec, IFQ_AVRO_REQUEST, buf, 5 + datum_len,
                        "unknown Confluent schema id 298 (io.inferq.v1.Request is registered as "
                        "42)");
    buf[3] = 0x00;
    /* Registered for requests only. */
    expect_decode_error(fx->codec, IFQ_AVRO_RESULT, buf, 5 + datum_len,
                        "unknown Confluent schema id 42 (no id registered for "
                        "io.inferq.v1.Result)");
    for (size_t len = 1; len < 5; len++)
        expect_decode_error(fx->codec, IFQ_AVRO_REQUEST, buf, len,
                            "truncated header: Confluent framing needs 5 bytes");
    ifq_avro_set_confluent_id(fx->codec, IFQ_AVRO_REQUEST, -1);
}

static void test_non_avro_input_is_rejected(void **state)
{
    fixture_t *fx = *state;
    const char *json = "{\"custom_id\":\"x\"}";
    expect_decode_error(fx->codec, IFQ_AVRO_REQUEST, json, strlen(json),
                        "not an Avro message (first byte 0x7b)");
    expect_decode_error(fx->codec, IFQ_AVRO_REQUEST, "", 0, "empty message");
    expect_decode_error(fx->codec, IFQ_AVRO_REQUEST, NULL, 0, "empty message");
    expect_decode_error(fx->codec, IFQ_AVRO_REQUEST, "\xC3", 1, "truncated header");

    assert_true(ifq_avro_is_framed("\xC3\x01", 2));
    assert_true(ifq_avro_is_framed("\x00", 1));
    assert_false(ifq_avro_is_framed("\xC3", 1));
    assert_false(ifq_avro_is_framed("\xC3\x02", 2));
    assert_false(ifq_avro_is_framed("{", 1));
    assert_false(ifq_avro_is_framed(" {", 2));
    assert_false(ifq_avro_is_framed("", 0));
}

static void test_body_that_is_not_json_is_rejected(void **state)
{
    fixture_t *fx = *state;
    dbuf_t d = {.n = 0};
    put_request_start(&d);
    put_str(&d, "hello, not json");
    put_request_nulls(&d);
    expect_decode_error(fx->codec, IFQ_AVRO_REQUEST, d.b, d.n, "body is not valid JSON: ");

    d.n = 0;
    put_request_start(&d);
    put_str(&d, "[{\"model\":\"chat-default\"}]");
    put_request_nulls(&d);
    expect_decode_error(fx->codec, IFQ_AVRO_REQUEST, d.b, d.n, "body is not a JSON object");

    d.n = 0;
    put_request_start(&d);
    put_str(&d, "{\"model\":\"chat-default\"} trailing");
    put_request_nulls(&d);
    expect_decode_error(fx->codec, IFQ_AVRO_REQUEST, d.b, d.n, "body is not valid JSON: ");

    /* prompt: branch 1 holding a string that is JSON but not an object. */
    d.n = 0;
    put_request_start(&d);
    put_str(&d, "{\"model\":\"chat-default\"}");
    for (int i = 0; i < 4; i++)
        put_long(&d, 0);
    put_long(&d, 1);
    put_str(&d, "[1,2]");
    expect_decode_error(fx->codec, IFQ_AVRO_REQUEST, d.b, d.n, "prompt is not a JSON object");

    /* A result whose response body is not JSON names the nested field. */
    d.n = 0;
    put_soe_header(&d, IFQ_AVRO_RESULT);
    put_str(&d, "ifq_1");
    put_str(&d, "req-1");
    put_long(&d, 1);
    put_long(&d, 200);
    put_str(&d, "rid");
    put_str(&d, "{oops");
    put_long(&d, 0);
    put_str(&d, "{}");
    expect_decode_error(fx->codec, IFQ_AVRO_RESULT, d.b, d.n, "response.body is not valid JSON");
}

static void test_hostile_lengths_and_branches_are_rejected(void **state)
{
    fixture_t *fx = *state;
    dbuf_t d;

    /* custom_id claims 2^62 bytes: rejected before anything is allocated. */
    d.n = 0;
    put_soe_header(&d, IFQ_AVRO_REQUEST);
    put_long(&d, INT64_C(1) << 62);
    put_bytes(&d, "abc", 3);
    expect_decode_error(fx->codec, IFQ_AVRO_REQUEST, d.b, d.n,
                        "truncated datum: string of 4611686018427387904 bytes, 3 left "
                        "(field 'custom_id', byte 20)");

    /* Negative length: avro-c would write before its buffer here. */
    d.n = 0;
    put_soe_header(&d, IFQ_AVRO_REQUEST);
    put_long(&d, -1);
    expect_decode_error(fx->codec, IFQ_AVRO_REQUEST, d.b, d.n,
                        "negative string length -1 (field 'custom_id'");

    /* A varint that never ends / does not fit 64 bits. */
    d.n = 0;
    put_soe_header(&d, IFQ_AVRO_REQUEST);
    for (int i = 0; i < 12; i++)
        put_bytes(&d, "\xff", 1);
    expect_decode_error(fx->codec, IFQ_AVRO_REQUEST, d.b, d.n, "varint does not fit 64 bits");

    /* Union branch 2 of a two-branch union. */
    d.n = 0;
    put_request_start(&d);
    put_str(&d, "{\"model\":\"m\"}");
    put_long(&d, 2);
    expect_decode_error(fx->codec, IFQ_AVRO_REQUEST, d.b, d.n,
                        "invalid union branch 2 (expected 0 or 1) (field 'reply_to'");
    d.n = 0;
    put_request_start(&d);
    put_str(&d, "{\"model\":\"m\"}");
    put_long(&d, -1);
    expect_decode_error(fx->codec, IFQ_AVRO_REQUEST, d.b, d.n, "invalid union branch -1");

    /* Map block count that would loop 2^62 times. */
    d.n = 0;
    put_request_start(&d);
    put_str(&d, "{\"model\":\"m\"}");
    for (int i = 0; i < 3; i++)
        put_long(&d, 0);
    put_long(&d, 1);
    put_long(&d, INT64_C(1) << 62);
    put_str(&d, "k");
    put_str(&d, "v");
    expect_decode_error(fx->codec, IFQ_AVRO_REQUEST, d.b, d.n, "map has more than 65536 entries");

    /* Map block count INT64_MIN cannot be negated. */
    d.n = 0;
    put_request_start(&d);
    put_str(&d, "{\"model\":\"m\"}");
    for (int i = 0; i < 3; i++)
        put_long(&d, 0);
    put_long(&d, 1);
    put_long(&d, INT64_MIN);
    expect_decode_error(fx->codec, IFQ_AVRO_REQUEST, d.b, d.n, "invalid map block count");

    /* Negative block count with a byte size that lies. */
    d.n = 0;
    put_request_start(&d);
    put_str(&d, "{\"model\":\"m\"}");
    for (int i = 0; i < 3; i++)
        put_long(&d, 0);
    put_long(&d, 1);
    put_long(&d, -1);
    put_long(&d, 3); /* "k" + "v" take 4 bytes */
    put_str(&d, "k");
    put_str(&d, "v");
    put_long(&d, 0);
    put_long(&d, 0);
    expect_decode_error(fx->codec, IFQ_AVRO_REQUEST, d.b, d.n,
                        "map block size does not match its contents");

    /* Negative block count with an honest size is valid Avro. */
    d.n = 0;
    put_request_start(&d);
    put_str(&d, "{\"model\":\"m\"}");
    for (int i = 0; i < 3; i++)
        put_long(&d, 0);
    put_long(&d, 1);
    put_long(&d, -1);
    put_long(&d, 4);
    put_str(&d, "k");
    put_str(&d, "v");
    put_long(&d, 0);
    put_long(&d, 0);
    char errstr[256] = "";
    json_t *got = ifq_avro_decode(fx->codec, IFQ_AVRO_REQUEST, d.b, d.n, errstr, sizeof(errstr));
    if (!got)
        fail_msg("sized map block: %s", errstr);
    assert_string_equal(json_string_value(json_object_get(json_object_get(got, "metadata"), "k")),
                        "v");
    json_decref(got);

    /* status_code beyond a 32-bit int. */
    d.n = 0;
    put_soe_header(&d, IFQ_AVRO_RESULT);
    put_str(&d, "ifq_1");
    put_str(&d, "req-1");
    put_long(&d, 1);
    put_long(&d, INT64_C(1) << 40);
    expect_decode_error(fx->codec, IFQ_AVRO_RESULT, d.b, d.n,
                        "value 1099511627776 out of range for an Avro int (field "
                        "'response.status_code'");
}

static void test_bad_strings_are_rejected(void **state)
{
    fixture_t *fx = *state;
    dbuf_t d;

    d.n = 0;
    put_soe_header(&d, IFQ_AVRO_REQUEST);
    put_long(&d, 3);
    put_bytes(&d, "a\0b", 3);
    expect_decode_error(fx->codec, IFQ_AVRO_REQUEST, d.b, d.n,
                        "string contains a NUL byte (field 'custom_id'");

    static const char *const bad_utf8[] = {
        "\xc3",             /* cut short */
        "\xc0\xaf",         /* overlong '/' */
        "\xed\xa0\x80",     /* surrogate U+D800 */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\xff",
    };
    for (size_t i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++) {
        d.n = 0;
        put_request_start(&d);
        put_str(&d, "{\"model\":\"m\"}");
        put_long(&d, 1);
        put_str(&d, bad_utf8[i]);
        put_long(&d, 0);
        put_long(&d, 0);
        put_long(&d, 0);
        put_long(&d, 0);
        expect_decode_error(fx->codec, IFQ_AVRO_REQUEST, d.b, d.n,
                            "string is not valid UTF-8 (field 'reply_to'");
    }
}

static void test_absent_and_null_optional_fields(void **state)
{
    fixture_t *fx = *state;
    char errstr[256] = "";
    /* method absent is written as its default; null optionals come back absent. */
    json_t *in = json_loads("{\"custom_id\":\"a\",\"url\":\"/v1/embeddings\",\"body\":{\"model\":"
                            "\"e\",\"input\":\"x\"},\"reply_to\":null,\"metadata\":null}",
                            0, NULL);
    json_t *want = json_loads("{\"custom_id\":\"a\",\"method\":\"POST\",\"url\":\"/v1/embeddings\","
                              "\"body\":{\"model\":\"e\",\"input\":\"x\"}}",
                              0, NULL);
    void *out = NULL;
    size_t out_len = 0;
    if (ifq_avro_encode(fx->codec, IFQ_AVRO_REQUEST, in, &out, &out_len, errstr, sizeof(errstr)))
        fail_msg("encode: %s", errstr);
    json_t *got =
        ifq_avro_decode(fx->codec, IFQ_AVRO_REQUEST, out, out_len, errstr, sizeof(errstr));
    assert_non_null(got);
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(want);
    json_decref(in);
    free(out);

    /* Results keep response and error as JSON null even when absent on input. */
    in = json_loads("{\"id\":\"ifq_1\",\"custom_id\":\"c\",\"error\":{\"code\":\"rate_limited\","
                    "\"message\":\"slow down\"},\"inferq\":{\"status\":\"rejected\"}}",
                    0, NULL);
    if (ifq_avro_encode(fx->codec, IFQ_AVRO_RESULT, in, &out, &out_len, errstr, sizeof(errstr)))
        fail_msg("encode: %s", errstr);
    got = ifq_avro_decode(fx->codec, IFQ_AVRO_RESULT, out, out_len, errstr, sizeof(errstr));
    assert_non_null(got);
    assert_true(json_is_null(json_object_get(got, "response")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(got, "error"), "code")),
                        "rate_limited");
    json_decref(got);
    json_decref(in);
    free(out);
}

static void test_encode_rejects_what_avro_cannot_carry(void **state)
{
    fixture_t *fx = *state;
    ifq_avro_t *c = fx->codec;
    const ifq_avro_kind_t rq = IFQ_AVRO_REQUEST, rs = IFQ_AVRO_RESULT;
    expect_encode_error(c, rq, "{\"url\":\"/v1/embeddings\",\"body\":{}}", "custom_id is required");
    expect_encode_error(c, rq, "{\"custom_id\":\"a\",\"url\":\"/v1/embeddings\"}",
                        "body is required");
    expect_encode_error(c, rq, "{\"custom_id\":7,\"url\":\"u\",\"body\":{}}",
                        "custom_id must be a string");
    expect_encode_error(c, rq, "{\"custom_id\":\"a\",\"url\":\"u\",\"body\":[1]}",
                        "body must be a JSON object");
    expect_encode_error(c, rq, "{\"custom_id\":\"a\",\"url\":\"u\",\"body\":{},\"team\":\"x\"}",
                        "unknown field 'team'");
    expect_encode_error(c, rq,
                        "{\"custom_id\":\"a\",\"url\":\"u\",\"body\":{},\"deadline_ms\":\"1\"}",
                        "deadline_ms must be an integer");
    expect_encode_error(c, rq,
                        "{\"custom_id\":\"a\",\"url\":\"u\",\"body\":{},\"deadline_ms\":1.5e12}",
                        "deadline_ms must be an integer");
    expect_encode_error(c, rq,
                        "{\"custom_id\":\"a\",\"url\":\"u\",\"body\":{},\"metadata\":{\"k\":1}}",
                        "metadata value for key 'k' must be a string");
    expect_encode_error(c, rq, "{\"custom_id\":\"a\",\"url\":\"u\",\"body\":{},\"prompt\":\"p\"}",
                        "prompt must be a JSON object");
    expect_encode_error(c, rq, "[1]", "message must be a JSON object");
    expect_encode_error(c, rs,
                        "{\"id\":\"i\",\"custom_id\":\"c\",\"response\":{\"status_code\":"
                        "4294967296,\"request_id\":\"r\",\"body\":{}},\"inferq\":{}}",
                        "response.status_code must be an integer that fits 32 bits");
    expect_encode_error(
        c, rs, "{\"id\":\"i\",\"custom_id\":\"c\",\"error\":{\"code\":\"x\"},\"inferq\":{}}",
        "error.message is required");
    expect_encode_error(c, rs,
                        "{\"id\":\"i\",\"custom_id\":\"c\",\"error\":{\"code\":\"x\",\"message\":"
                        "\"m\",\"type\":\"t\"},\"inferq\":{}}",
                        "unknown field 'error.type'");
    expect_encode_error(c, rs, "{\"id\":\"i\",\"custom_id\":\"c\"}", "inferq is required");

    /* A NUL inside a string cannot round-trip through C consumers. */
    json_t *j = json_pack("{s:s#, s:s, s:{}}", "custom_id", "a\0b", (int)3, "url", "u", "body");
    assert_non_null(j);
    char errstr[256] = "";
    void *out = NULL;
    size_t out_len = 0;
    assert_int_equal(ifq_avro_encode(c, rq, j, &out, &out_len, errstr, sizeof(errstr)), -1);
    assert_non_null(strstr(errstr, "custom_id contains a NUL byte"));
    json_decref(j);
}

static void test_embedded_json_is_compact_and_keeps_key_order(void **state)
{
    fixture_t *fx = *state;
    char errstr[256] = "";
    json_t *in = json_loads("{\"custom_id\":\"k\",\"method\":\"POST\",\"url\":\"u\",\"body\": "
                            "{ \"z\" : 1 , \"a\" : [ 1 , 2 ] , \"m\" : { \"y\" : null } }}",
                            0, NULL);
    void *out = NULL;
    size_t out_len = 0;
    assert_int_equal(
        ifq_avro_encode(fx->codec, IFQ_AVRO_REQUEST, in, &out, &out_len, errstr, sizeof(errstr)),
        0);
    const char *want = "{\"z\":1,\"a\":[1,2],\"m\":{\"y\":null}}";
    int found = 0;
    for (size_t i = 0; i + strlen(want) <= out_len && !found; i++)
        found = memcmp((const char *)out + i, want, strlen(want)) == 0;
    assert_true(found);
    json_decref(in);
    free(out);
}

/* Encodes then decodes `msg`, expecting the same JSON back. */
static void expect_round_trip(ifq_avro_t *codec, ifq_avro_kind_t kind, const json_t *msg,
                              const char *what)
{
    char errstr[512] = "";
    void *out = NULL;
    size_t out_len = 0;
    if (ifq_avro_encode(codec, kind, msg, &out, &out_len, errstr, sizeof(errstr)))
        fail_msg("%s: encode: %s", what, errstr);
    json_t *back = ifq_avro_decode(codec, kind, out, out_len, errstr, sizeof(errstr));
    if (!back)
        fail_msg("%s: decode: %s", what, errstr);
    if (!json_equal(back, msg))
        fail_msg("%s: round trip changed the message", what);
    json_decref(back);
    free(out);
}

static void test_examples_fit_the_schemas(void **state)
{
    fixture_t *fx = *state;
    DIR *dir = opendir(EXAMPLE_DIR);
    assert_non_null(dir);
    struct dirent *de;
    int files = 0;
    while ((de = readdir(dir)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 6 || strcmp(de->d_name + n - 5, ".json") != 0)
            continue;
        char path[512];
        json_error_t jerr;
        snprintf(path, sizeof(path), EXAMPLE_DIR "/%s", de->d_name);
        json_t *msg = json_load_file(path, 0, &jerr);
        if (!msg)
            fail_msg("%s: %s", path, jerr.text);
        ifq_avro_kind_t kind =
            strncmp(de->d_name, "result-", 7) == 0 ? IFQ_AVRO_RESULT : IFQ_AVRO_REQUEST;
        expect_round_trip(fx->codec, kind, msg, path);
        json_decref(msg);
        files++;
    }
    closedir(dir);
    assert_true(files >= 6);

    /* The quickstart batch: 10 chat requests, then 2 embeddings, sample-1.. */
    FILE *f = fopen(EXAMPLE_DIR "/batch.jsonl", "r");
    assert_non_null(f);
    char line[8192];
    int lines = 0;
    while (fgets(line, sizeof(line), f)) {
        json_error_t jerr;
        json_t *msg = json_loads(line, 0, &jerr);
        if (!msg)
            fail_msg("batch.jsonl line %d: %s", lines + 1, jerr.text);
        lines++;
        char want_id[32];
        snprintf(want_id, sizeof(want_id), "sample-%d", lines);
        assert_string_equal(json_string_value(json_object_get(msg, "custom_id")), want_id);
        const char *model =
            json_string_value(json_object_get(json_object_get(msg, "body"), "model"));
        const char *url = json_string_value(json_object_get(msg, "url"));
        assert_string_equal(model, lines <= 10 ? "chat-default" : "embed-default");
        assert_string_equal(url, lines <= 10 ? "/v1/chat/completions" : "/v1/embeddings");
        expect_round_trip(fx->codec, IFQ_AVRO_REQUEST, msg, want_id);
        json_decref(msg);
    }
    fclose(f);
    assert_int_equal(lines, 12);
}

/* Many threads decoding and encoding on one codec give the same answers. */
typedef struct {
    fixture_t *fx;
    int failures;
} thread_arg_t;

static void *hammer(void *p)
{
    thread_arg_t *a = p;
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < a->fx->nvectors; i++) {
            const vector_t *v = &a->fx->vectors[i];
            char errstr[256];
            json_t *got = ifq_avro_decode(a->fx->codec, v->kind, v->avro, v->avro_len, errstr,
                                          sizeof(errstr));
            if (!got || !json_equal(got, v->json))
                a->failures++;
            json_decref(got);
            void *out = NULL;
            size_t out_len = 0;
            if (ifq_avro_encode(a->fx->codec, v->kind, v->json, &out, &out_len, errstr,
                                sizeof(errstr)) ||
                out_len != v->avro_len || memcmp(out, v->avro, out_len) != 0)
                a->failures++;
            free(out);
            /* Error paths too: they must not share buffers between threads. */
            if (ifq_avro_decode(a->fx->codec, v->kind, v->avro, v->avro_len / 2, errstr,
                                sizeof(errstr)) ||
                !strstr(errstr, "truncated"))
                a->failures++;
        }
    }
    return NULL;
}

static void test_concurrent_decode_and_encode_on_one_codec(void **state)
{
    fixture_t *fx = *state;
    pthread_t threads[4];
    thread_arg_t args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg_t){.fx = fx, .failures = 0};
        assert_int_equal(pthread_create(&threads[i], NULL, hammer, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
}

static void test_destroy_accepts_null(void **state)
{
    (void)state;
    ifq_avro_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_decode_to_their_json),
        cmocka_unit_test(test_vectors_encode_to_their_bytes),
        cmocka_unit_test(test_vectors_cover_the_contract),
        cmocka_unit_test(test_fingerprints_match_the_python_reference),
        cmocka_unit_test(test_truncated_input_is_rejected_at_every_length),
        cmocka_unit_test(test_trailing_garbage_is_rejected),
        cmocka_unit_test(test_unknown_fingerprint_is_rejected),
        cmocka_unit_test(test_confluent_framing_needs_the_registered_id),
        cmocka_unit_test(test_non_avro_input_is_rejected),
        cmocka_unit_test(test_body_that_is_not_json_is_rejected),
        cmocka_unit_test(test_hostile_lengths_and_branches_are_rejected),
        cmocka_unit_test(test_bad_strings_are_rejected),
        cmocka_unit_test(test_absent_and_null_optional_fields),
        cmocka_unit_test(test_encode_rejects_what_avro_cannot_carry),
        cmocka_unit_test(test_embedded_json_is_compact_and_keeps_key_order),
        cmocka_unit_test(test_examples_fit_the_schemas),
        cmocka_unit_test(test_concurrent_decode_and_encode_on_one_codec),
        cmocka_unit_test(test_destroy_accepts_null),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
