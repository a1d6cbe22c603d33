/*
 * jsonbuf.h - JSON written and read as bytes, without a tree.
 *
 * A growable string buffer with JSON encoders (strings, integers, reals
 * printed as jansson prints them), and two readers for JSON that jansson
 * has already accepted: where the members of an object lie in its bytes,
 * and a copy without the whitespace between tokens. The worker builds its
 * results from these so that a request's routed message is parsed once
 * (docs/internals.md), and the span encoder writes OTLP/JSON with them.
 *
 * The readers never read outside the bytes they are given and never loop
 * forever, whatever those bytes are (tests/fuzz/fuzz_jsonbuf.c); on JSON
 * they do not understand they return -1 and the caller falls back to
 * jansson.
 */
#ifndef IFQ_JSONBUF_H
#define IFQ_JSONBUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct ifq_sb {
    char *p; /* NUL-terminated once anything was written */
    size_t len, cap;
    int oom;      /* an allocation failed: later writes are dropped */
    int borrowed; /* p is the caller's (stack) buffer: copied on growth */
} ifq_sb_t;

/* Makes room for need more bytes and a NUL (grows by half). */
void ifq_sb_grow(ifq_sb_t *b, size_t need);

static inline void ifq_sb_putn(ifq_sb_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap)
        ifq_sb_grow(b, n);
    if (b->oom)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

#define IFQ_SB_LIT(b, lit) ifq_sb_putn((b), (lit), sizeof(lit) - 1)

/* Hands over the text (malloc'd, NUL-terminated: a borrowed buffer is
 * copied; NULL when nothing was written or an allocation failed) and its
 * length; b is empty afterwards. */
char *ifq_sb_take(ifq_sb_t *b, size_t *len);
/* Frees what b owns. */
void ifq_sb_free(ifq_sb_t *b);

/* A decimal integer. */
void ifq_sb_i64(ifq_sb_t *b, int64_t v);
/* printf into b, at most 63 bytes. */
void ifq_sb_printf(ifq_sb_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON number for a real, as jansson writes it ("%.17g", always with a
 * '.' or an exponent); null when v is not finite. */
void ifq_sb_real(ifq_sb_t *b, double v);
/* A JSON string literal, quotes included; bytes that are not valid UTF-8
 * become '?'. */
void ifq_sb_str(ifq_sb_t *b, const char *s);
/* Length of a valid UTF-8 sequence at s (1..4), or 0. s must hold a NUL
 * or 4 readable bytes. */
size_t ifq_utf8_len(const unsigned char *s);

/* Appends the JSON text s[0..n) without whitespace outside strings: one
 * line, whatever the indentation it came with. s should be JSON that a
 * parser accepted (a raw newline cannot be inside a string then). */
void ifq_sb_json_compact(ifq_sb_t *b, const char *s, size_t n);

/* Where a member's value lies: s + off, len bytes; len 0 when absent. */
typedef struct ifq_jrange {
    uint32_t off, len;
} ifq_jrange_t;

/* Finds the members named keys[0..nkeys) of the JSON object s[0..n) (at
 * its top level) and sets out[k] to where their values are, relative to
 * s; the last one wins when a key repeats, as in jansson. Returns 0, or -1
 * when s is not an object, is malformed, longer than 4 GiB, or has a key
 * written with an escape (it could be one of keys). */
int ifq_json_members(const char *s, size_t n, const char *const keys[], size_t nkeys,
                     ifq_jrange_t out[]);

#endif
