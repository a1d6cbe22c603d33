/*
 * test_jsonbuf.c - the byte-level JSON helpers of lib/jsonbuf.c: reals,
 * strings and integers are written as jansson writes them (reals byte for
 * byte, strings read back to the same value), the buffer hands over and
 * frees what it owns and moves a borrowed stack buffer to the heap when it
 * grows, ifq_json_members finds exactly the bytes of top-level member
 * values (and says -1 on what it cannot read), and ifq_sb_json_compact
 * turns an indented dump into jansson's compact one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <float.h>
#include <math.h>
#include <cmocka.h>
#include <jansson.h>

#include "jsonbuf.h"

/* ---- writing ------------------------------------------------------------ */

static void real_matches_jansson(double v)
{
    ifq_sb_t b = {0};
    ifq_sb_real(&b, v);
    json_t *j = json_real(v);
    assert_non_null(j);
    char *want = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
    assert_non_null(want);
    assert_non_null(b.p);
    if (strcmp(b.p, want) != 0)
        fail_msg("%.17g: ifq_sb_real wrote \"%s\", jansson \"%s\"", v, b.p, want);
    assert_int_equal(b.len, strlen(want));
    free(want);
    json_decref(j);
    ifq_sb_free(&b);
}

static void reals_print_as_jansson_prints_them(void **state)
{
    static const double fixed[] = {
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.1,
        0.5,
        1e-5,
        1e-4,
        1e-300,
        1e21,
        1e22,
        1e100,
        -1e-100,
        1e16,
        1e17,
        123456789012345678.0,
        9007199254740993.0,
        2.5e-300,
        DBL_MAX,
        -DBL_MAX,
        DBL_MIN,
        DBL_TRUE_MIN,
        DBL_EPSILON,
        1 / 3.0,
        2 / 3.0,
        0.00015,
        0.0000025,
        0.002,
        0.03,
        15.0,
        1.5e-7,
        3.14159,
        100.0,
        12345678901234567890.0,
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        real_matches_jansson(fixed[i]);

    /* Random bit patterns (every exponent) and random values of ordinary
     * size, from a fixed-seed LCG. */
    uint64_t seed = 0x9E3779B97F4A7C15u;
    for (int i = 0; i < 20000; i++) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        uint64_t bits = seed;
        double v;
        memcpy(&v, &bits, sizeof(v));
        if (isfinite(v))
            real_matches_jansson(v);
        double u = (double)(seed >> 11) / 9007199254740992.0; /* [0, 1) */
        real_matches_jansson(u);
        real_matches_jansson(u * 1000.0);
        real_matches_jansson(-u / 1e6);
        real_matches_jansson(round(u * 1e6) / 1e6); /* prices */
    }
}

static void non_finite_reals_are_null(void **state)
{
    const double bad[] = {NAN, -NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ifq_sb_t b = {0};
        ifq_sb_real(&b, bad[i]);
        assert_string_equal(b.p, "null");
        assert_int_equal(b.len, 4);
        ifq_sb_free(&b);
    }
}

/* ifq_sb_str(s) and jansson's encoding of s read back to the same string. */
static void str_matches_jansson(const char *s)
{
    ifq_sb_t b = {0};
    ifq_sb_str(&b, s);
    assert_non_null(b.p);
    assert_null(memchr(b.p, '\n', b.len));
    json_t *js = json_string(s);
    assert_non_null(js);
    char *want = json_dumps(js, JSON_ENCODE_ANY);
    assert_non_null(want);

    json_error_t err;
    json_t *ours = json_loads(b.p, JSON_DECODE_ANY, &err);
    if (!ours)
        fail_msg("ifq_sb_str wrote %s, which does not parse: %s", b.p, err.text);
    json_t *theirs = json_loads(want, JSON_DECODE_ANY, &err);
    assert_non_null(theirs);
    assert_true(json_is_string(ours));
    assert_true(json_equal(ours, theirs));
    assert_string_equal(json_string_value(ours), s);

    json_decref(ours);
    json_decref(theirs);
    json_decref(js);
    free(want);
    ifq_sb_free(&b);
}

static void strings_read_back_as_written(void **state)
{
    static const char *const strs[] = {
        "",
        "plain ascii",
        "say \"hi\"",
        "back\\slash\\",
        "\\\"",
        "\"",
        "line\nbreak\r\ttab\b\f",
        "\x01\x02\x1f\x7f end",
        "/slash/",
        "caf\xc3\xa9",                  /* 2 bytes */
        "\xe2\x82\xac 100",             /* 3 bytes: euro */
        "\xef\xbf\xbf",                 /* U+FFFF */
        "\xf0\x9f\x98\x80 smile",       /* 4 bytes */
        "\xf4\x8f\xbf\xbf",             /* U+10FFFF */
        "\xc2\x80\xdf\xbf\xe0\xa0\x80", /* boundaries */
        "mixed \"\xc3\xa9\" \\ \x1b[0m \xf0\x9f\x8e\x89",
    };
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        str_matches_jansson(strs[i]);

    /* Every ASCII byte on its own. */
    for (int c = 1; c < 0x80; c++) {
        char s[2] = {(char)c, 0};
        str_matches_jansson(s);
    }
}

static void invalid_utf8_becomes_question_marks(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"a\xff"
         "b",
         "\"a?b\""},
        {"\x80", "\"?\""},                     /* lone continuation */
        {"\xc3", "\"?\""},                     /* truncated at the end */
        {"\xc3(", "\"?(\""},                   /* missing continuation */
        {"\xc0\xaf", "\"??\""},                /* overlong '/' */
        {"\xc1\xbf", "\"??\""},                /* overlong */
        {"\xe0\x80\xaf", "\"???\""},           /* overlong 3 bytes */
        {"\xed\xa0\x80", "\"???\""},           /* UTF-16 surrogate */
        {"\xf0\x80\x80\xaf", "\"????\""},      /* overlong 4 bytes */
        {"\xf4\x90\x80\x80", "\"????\""},      /* past U+10FFFF */
        {"\xf5\x80\x80\x80", "\"????\""},      /* past U+10FFFF */
        {"\xf8\x88\x80\x80\x80", "\"?????\""}, /* 5-byte form */
        {"\xe2\x82", "\"??\""},                /* truncated 3 bytes */
        {"ok \xc3\xa9 \xff", "\"ok \xc3\xa9 ?\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ifq_sb_t b = {0};
        ifq_sb_str(&b, cases[i].in);
        assert_string_equal(b.p, cases[i].out);
        assert_int_equal(b.len, strlen(cases[i].out));
        json_t *j = json_loads(b.p, JSON_DECODE_ANY, NULL);
        assert_non_null(j);
        json_decref(j);
        ifq_sb_free(&b);
    }
}

static void utf8_len_of_sequences(void **state)
{
    assert_int_equal(ifq_utf8_len((const unsigned char *)"a"), 1);
    assert_int_equal(ifq_utf8_len((const unsigned char *)""), 1);
    assert_int_equal(ifq_utf8_len((const unsigned char *)"\xc3\xa9"), 2);
    assert_int_equal(ifq_utf8_len((const unsigned char *)"\xe2\x82\xac"), 3);
    assert_int_equal(ifq_utf8_len((const unsigned char *)"\xf0\x9f\x98\x80"), 4);
    assert_int_equal(ifq_utf8_len((const unsigned char *)"\xc3"), 0);
    assert_int_equal(ifq_utf8_len((const unsigned char *)"\xe2\x82"), 0);
    assert_int_equal(ifq_utf8_len((const unsigned char *)"\xed\x9f\xbf"), 3); /* U+D7FF */
    assert_int_equal(ifq_utf8_len((const unsigned char *)"\xed\xa0\x80"), 0); /* U+D800 */
    assert_int_equal(ifq_utf8_len((const unsigned char *)"\xee\x80\x80"), 3); /* U+E000 */
}

static void integers(void **state)
{
    static const struct {
        int64_t v;
        const char *s;
    } cases[] = {
        {0, "0"},
        {-1, "-1"},
        {1, "1"},
        {10, "10"},
        {-10, "-10"},
        {INT64_MIN, "-9223372036854775808"},
        {INT64_MAX, "9223372036854775807"},
    };
    ifq_sb_t all = {0};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ifq_sb_t b = {0};
        ifq_sb_i64(&b, cases[i].v);
        assert_string_equal(b.p, cases[i].s);
        assert_int_equal(b.len, strlen(cases[i].s));
        ifq_sb_free(&b);
        if (i)
            IFQ_SB_LIT(&all, ",");
        ifq_sb_i64(&all, cases[i].v);
    }
    assert_string_equal(all.p, "0,-1,1,10,-10,-9223372036854775808,9223372036854775807");
    ifq_sb_free(&all);
}

static void printf_is_capped_at_63_bytes(void **state)
{
    ifq_sb_t b = {0};
    ifq_sb_printf(&b, "%s-%d", "x", 42);
    assert_string_equal(b.p, "x-42");
    char big[100];
    memset(big, 'y', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    ifq_sb_printf(&b, "%s", big);
    assert_int_equal(b.len, 4 + 63);
    assert_int_equal(strlen(b.p), 4 + 63);
    ifq_sb_free(&b);
}

/* ---- the buffer ----------------------------------------------------------- */

static void take_hands_over_and_empties(void **state)
{
    ifq_sb_t b = {0};
    for (int i = 0; i < 1000; i++)
        IFQ_SB_LIT(&b, "0123456789");
    assert_int_equal(b.len, 10000);
    assert_true(b.cap > b.len);
    size_t len = 1;
    char *p = ifq_sb_take(&b, &len);
    assert_non_null(p);
    assert_int_equal(len, 10000);
    assert_int_equal(strlen(p), 10000);
    assert_memory_equal(p + 9990, "0123456789", 10);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    free(p);

    /* Empty: nothing to hand over. */
    p = ifq_sb_take(&b, &len);
    assert_null(p);
    assert_int_equal(len, 0);

    /* Freed and reused. */
    IFQ_SB_LIT(&b, "abc");
    ifq_sb_free(&b);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    IFQ_SB_LIT(&b, "def");
    assert_string_equal(b.p, "def");
    ifq_sb_free(&b);
    ifq_sb_free(&b); /* twice is harmless */
}

static void borrowed_buffer_moves_to_the_heap(void **state)
{
    char stack[16];
    ifq_sb_t b = {.p = stack, .cap = sizeof(stack), .borrowed = 1};
    IFQ_SB_LIT(&b, "0123456789");
    assert_ptr_equal(b.p, stack);
    assert_int_equal(b.borrowed, 1);
    assert_string_equal(stack, "0123456789");
    IFQ_SB_LIT(&b, "abcd"); /* 14 + NUL: still fits */
    assert_ptr_equal(b.p, stack);
    IFQ_SB_LIT(&b, "XY"); /* 16 + NUL: does not */
    assert_ptr_not_equal(b.p, stack);
    assert_int_equal(b.borrowed, 0);
    assert_int_equal(b.len, 16);
    assert_true(b.cap >= 17);
    assert_string_equal(b.p, "0123456789abcdXY");
    for (int i = 0; i < 100; i++)
        IFQ_SB_LIT(&b, "more");
    assert_int_equal(b.len, 416);
    assert_memory_equal(b.p, "0123456789abcdXYmore", 20);
    size_t len;
    char *p = ifq_sb_take(&b, &len);
    assert_non_null(p);
    assert_ptr_not_equal(p, stack);
    assert_int_equal(len, 416);
    free(p);

    /* Grows on the first write, and ifq_sb_free leaves the stack alone. */
    char small[4];
    ifq_sb_t c = {.p = small, .cap = sizeof(small), .borrowed = 1};
    IFQ_SB_LIT(&c, "longer than four");
    assert_ptr_not_equal(c.p, small);
    assert_int_equal(c.borrowed, 0);
    assert_string_equal(c.p, "longer than four");
    ifq_sb_free(&c);

    char st[8];
    ifq_sb_t d = {.p = st, .cap = sizeof(st), .borrowed = 1};
    IFQ_SB_LIT(&d, "ab");
    ifq_sb_free(&d);
    assert_null(d.p);

    /* A one-byte buffer still grows (growing by half of 1 added nothing:
     * the loop never ended). */
    char one[1];
    ifq_sb_t e = {.p = one, .cap = sizeof(one), .borrowed = 1};
    IFQ_SB_LIT(&e, "x");
    assert_int_equal(e.borrowed, 0);
    assert_string_equal(e.p, "x");
    ifq_sb_free(&e);

    /* Taking what never left the stack hands over a heap copy. */
    char st2[16];
    ifq_sb_t f = {.p = st2, .cap = sizeof(st2), .borrowed = 1};
    IFQ_SB_LIT(&f, "kept");
    size_t n = 0;
    char *t = ifq_sb_take(&f, &n);
    assert_non_null(t);
    assert_ptr_not_equal(t, st2);
    assert_int_equal(n, 4);
    assert_string_equal(t, "kept");
    assert_null(f.p);
    free(t);
}

/* ---- ifq_json_members ------------------------------------------------------ */

#define ASSERT_RANGE(s, r, want)                                                                   \
    do {                                                                                           \
        assert_int_equal((r).len, strlen(want));                                                   \
        assert_true((size_t)(r).off + (r).len <= strlen(s));                                       \
        assert_memory_equal((s) + (r).off, (want), strlen(want));                                  \
    } while (0)

static void members_of_every_kind(void **state)
{
    const char *s = "{\"obj\":{\"x\":[1,{\"y\":\"}]\"}],\"z\":{}},"
                    "\"arr\":[[],[1,2],{\"a\":\"[\"}],"
                    "\"str\":\"he said \\\"}\\\" and ]\","
                    "\"num\":-12.5e+3,"
                    "\"int\":42,"
                    "\"t\":true,\"f\":false,\"n\":null,"
                    "\"bs\":\"ends with \\\\\","
                    "\"empty\":\"\","
                    "\"\":7}";
    const char *const keys[] = {"obj", "arr", "str", "num",   "int", "t",
                                "f",   "n",   "bs",  "empty", "",    "missing"};
    ifq_jrange_t r[12];
    assert_int_equal(ifq_json_members(s, strlen(s), keys, 12, r), 0);
    ASSERT_RANGE(s, r[0], "{\"x\":[1,{\"y\":\"}]\"}],\"z\":{}}");
    ASSERT_RANGE(s, r[1], "[[],[1,2],{\"a\":\"[\"}]");
    ASSERT_RANGE(s, r[2], "\"he said \\\"}\\\" and ]\"");
    ASSERT_RANGE(s, r[3], "-12.5e+3");
    ASSERT_RANGE(s, r[4], "42");
    ASSERT_RANGE(s, r[5], "true");
    ASSERT_RANGE(s, r[6], "false");
    ASSERT_RANGE(s, r[7], "null");
    ASSERT_RANGE(s, r[8], "\"ends with \\\\\"");
    ASSERT_RANGE(s, r[9], "\"\"");
    ASSERT_RANGE(s, r[10], "7");
    assert_int_equal(r[11].len, 0);
    assert_int_equal(r[11].off, 0);

    /* Each range is JSON that jansson reads as the member's value. */
    json_t *root = json_loads(s, 0, NULL);
    assert_non_null(root);
    for (int k = 0; k < 11; k++) {
        json_t *v = json_loadb(s + r[k].off, r[k].len, JSON_DECODE_ANY, NULL);
        assert_non_null(v);
        assert_true(json_equal(v, json_object_get(root, keys[k])));
        json_decref(v);
    }
    json_decref(root);
}

static void members_with_whitespace_between_tokens(void **state)
{
    const char *s = " \r\n\t{ \n  \"model\" \t:\n  \"gpt\" ,\n"
                    "  \"messages\"  :  [ { \"role\" : \"user\" } ]\r\n ,"
                    "\"n\"\n:\n3\n}\n ";
    const char *const keys[] = {"messages", "model", "n", "role"};
    ifq_jrange_t r[4];
    assert_int_equal(ifq_json_members(s, strlen(s), keys, 4, r), 0);
    ASSERT_RANGE(s, r[0], "[ { \"role\" : \"user\" } ]");
    ASSERT_RANGE(s, r[1], "\"gpt\"");
    ASSERT_RANGE(s, r[2], "3");
    assert_int_equal(r[3].len, 0); /* nested, not top level */

    /* The length given is honoured: a prefix is not the whole object. */
    const char *t = "{\"a\":1}{\"b\":2}";
    const char *const ka[] = {"a"};
    ifq_jrange_t ra[1];
    assert_int_equal(ifq_json_members(t, 7, ka, 1, ra), 0);
    ASSERT_RANGE(t, ra[0], "1");
    assert_int_equal(ifq_json_members(t, 6, ka, 1, ra), -1);
}

static void members_duplicate_escaped_and_empty(void **state)
{
    const char *const keys[] = {"a", "b"};
    ifq_jrange_t r[2];

    const char *dup = "{\"a\":1,\"b\":[2],\"a\":\"last\"}";
    assert_int_equal(ifq_json_members(dup, strlen(dup), keys, 2, r), 0);
    ASSERT_RANGE(dup, r[0], "\"last\"");
    ASSERT_RANGE(dup, r[1], "[2]");

    /* A key written with an escape could be any of keys. */
    const char *esc[] = {
        "{\"\\u0061\":1}",
        "{\"b\":1,\"x\\\"y\":2}",
        "{\"a\\\\\":1}",
        "{\"\\n\":1,\"a\":2}",
    };
    for (size_t i = 0; i < sizeof(esc) / sizeof(esc[0]); i++) {
        r[0].len = 99;
        assert_int_equal(ifq_json_members(esc[i], strlen(esc[i]), keys, 2, r), -1);
    }
    /* An escape in a value is fine. */
    const char *vesc = "{\"a\":\"\\u0061\\\\\"}";
    assert_int_equal(ifq_json_members(vesc, strlen(vesc), keys, 2, r), 0);
    ASSERT_RANGE(vesc, r[0], "\"\\u0061\\\\\"");

    const char *empty[] = {"{}", " { } ", "{\n}"};
    for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
        r[0] = (ifq_jrange_t){5, 5};
        r[1] = (ifq_jrange_t){5, 5};
        assert_int_equal(ifq_json_members(empty[i], strlen(empty[i]), keys, 2, r), 0);
        assert_int_equal(r[0].len, 0);
        assert_int_equal(r[1].len, 0);
    }
    /* No keys asked for. */
    assert_int_equal(ifq_json_members(dup, strlen(dup), keys, 0, r), 0);
}

static void members_of_malformed_input(void **state)
{
    static const char *const bad[] = {
        "",
        "   ",
        "null",
        "\"a\"",
        "1",
        "[1]",
        "[{\"a\":1}]",
        "{",
        "{ ",
        "{\"a\"",
        "{\"a\":",
        "{\"a\":}",
        "{\"a\" 1}",
        "{\"a\":1",
        "{\"a\":1,",
        "{\"a\":1,}",
        "{\"a\":[1,2",
        "{\"a\":[1,2]",
        "{\"a\":{\"b\":1}",
        "{\"a\":\"unterminated}",
        "{\"a\":\"ends in escape\\",
        "{\"a",
        "{\"a\":1 2}",
        "{\"a\":1 \"b\":2}",
        "{\"a\":\"x\" \"y\"}",
        "{\"a\":[1] [2]}",
        "{a:1}",
        "{1:1}",
        "{,}",
        "{\"a\":1,,\"b\":2}",
        "{\"a\"::1}",
        "{\"a\":1;\"b\":2}",
    };
    const char *const keys[] = {"a", "b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ifq_jrange_t r[2];
        int rc = ifq_json_members(bad[i], strlen(bad[i]), keys, 2, r);
        if (rc != -1)
            fail_msg("ifq_json_members(%s) returned %d, not -1", bad[i], rc);
    }
}

/* ---- ifq_sb_json_compact --------------------------------------------------- */

static void compact_of_indented_is_jansson_compact(void **state)
{
    const char *src = "{\"model\": \"gpt-4o\", \"n\": 2, \"t\": 0.25, \"ok\": true, \"no\": null,"
                      " \"messages\": [{\"role\": \"user\", \"content\": \"a  b\\n\\tc \\\" }\"},"
                      " {\"role\": \"assistant\", \"content\": \"\xc3\xa9 \\\\\"}],"
                      " \"empty\": {}, \"none\": [], \"deep\": {\"x\": [[1, [2, {\"y\": [3]}]]]},"
                      " \"spaces in key\": \"  \"}";
    json_error_t err;
    json_t *root = json_loads(src, 0, &err);
    if (!root)
        fail_msg("fixture: %s", err.text);
    char *indented = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    char *compact = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_non_null(indented);
    assert_non_null(compact);
    assert_non_null(strchr(indented, '\n'));

    ifq_sb_t b = {0};
    ifq_sb_json_compact(&b, indented, strlen(indented));
    assert_string_equal(b.p, compact);
    assert_int_equal(b.len, strlen(compact));
    assert_null(strchr(b.p, '\n'));
    assert_non_null(strstr(b.p, "\"a  b\\n\\tc \\\" }\""));
    assert_non_null(strstr(b.p, "\"spaces in key\":\"  \""));
    ifq_sb_free(&b);

    /* Appends to what is there; whitespace-only input adds nothing. */
    IFQ_SB_LIT(&b, "x=");
    ifq_sb_json_compact(&b, " [ 1 , \"  \" ]\r\n", 15);
    assert_string_equal(b.p, "x=[1,\"  \"]");
    ifq_sb_json_compact(&b, " \n\t\r ", 5);
    assert_string_equal(b.p, "x=[1,\"  \"]");
    ifq_sb_free(&b);

    free(indented);
    free(compact);
    json_decref(root);
}

static void compact_stays_inside_its_bytes(void **state)
{
    /* Unterminated string and a trailing backslash: copied as they are. */
    ifq_sb_t b = {0};
    const char s[] = "[ \"ab c\\";
    ifq_sb_json_compact(&b, s, sizeof(s) - 1);
    assert_string_equal(b.p, "[\"ab c\\");
    ifq_sb_free(&b);
    /* Only the first n bytes are read. */
    ifq_sb_json_compact(&b, "{ \"k\" : 1 }   tail", 11);
    assert_string_equal(b.p, "{\"k\":1}");
    ifq_sb_free(&b);
    /* Nothing written: the buffer stays empty. */
    ifq_sb_json_compact(&b, "", 0);
    assert_int_equal(b.len, 0);
    ifq_sb_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reals_print_as_jansson_prints_them),
        cmocka_unit_test(non_finite_reals_are_null),
        cmocka_unit_test(strings_read_back_as_written),
        cmocka_unit_test(invalid_utf8_becomes_question_marks),
        cmocka_unit_test(utf8_len_of_sequences),
        cmocka_unit_test(integers),
        cmocka_unit_test(printf_is_capped_at_63_bytes),
        cmocka_unit_test(take_hands_over_and_empties),
        cmocka_unit_test(borrowed_buffer_moves_to_the_heap),
        cmocka_unit_test(members_of_every_kind),
        cmocka_unit_test(members_with_whitespace_between_tokens),
        cmocka_unit_test(members_duplicate_escaped_and_empty),
        cmocka_unit_test(members_of_malformed_input),
        cmocka_unit_test(compact_of_indented_is_jansson_compact),
        cmocka_unit_test(compact_stays_inside_its_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
