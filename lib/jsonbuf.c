/*
 * jsonbuf.c - JSON written and read as bytes (see jsonbuf.h).
 */
#include "jsonbuf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* Grows by half: a span batch's attribute arena lives as long as its
 * request, so it should not be twice what it holds. */
void ifq_sb_grow(ifq_sb_t *b, size_t need)
{
    if (b->len + need + 1 <= b->cap || b->oom)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + need + 1)
        cap += cap / 2 + 1;
    char *p = b->borrowed ? malloc(cap) : realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return;
    }
    if (b->borrowed && b->len)
        memcpy(p, b->p, b->len);
    b->borrowed = 0;
    b->p = p;
    b->cap = cap;
}

char *ifq_sb_take(ifq_sb_t *b, size_t *len)
{
    char *p = NULL;
    if (!b->oom && b->borrowed && b->p) {
        p = malloc(b->len + 1);
        if (p) {
            memcpy(p, b->p, b->len);
            p[b->len] = '\0';
        }
        *len = p ? b->len : 0;
    } else if (!b->oom && b->p) {
        p = b->p;
        *len = b->len;
    } else {
        ifq_sb_free(b);
        *len = 0;
    }
    memset(b, 0, sizeof(*b));
    return p;
}

void ifq_sb_free(ifq_sb_t *b)
{
    if (!b->borrowed)
        free(b->p);
    memset(b, 0, sizeof(*b));
}

void ifq_sb_i64(ifq_sb_t *b, int64_t v)
{
    char tmp[24], *e = tmp + sizeof(tmp), *p = e;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        *--p = '-';
    ifq_sb_putn(b, p, (size_t)(e - p));
}

void ifq_sb_printf(ifq_sb_t *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        ifq_sb_putn(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

void ifq_sb_real(ifq_sb_t *b, double v)
{
    if (!isfinite(v)) {
        IFQ_SB_LIT(b, "null");
        return;
    }
    char tmp[40];
    int n = snprintf(tmp, sizeof(tmp), "%.17g", v);
    if (n <= 0 || (size_t)n >= sizeof(tmp) - 2)
        return;
    char *e = strchr(tmp, 'e');
    if (!e && !strchr(tmp, '.')) {
        memcpy(tmp + n, ".0", 3); /* or it reads back as an integer */
        n += 2;
    } else if (e) {
        /* "1e+05" -> "1e5", "1e-05" -> "1e-5", as jansson writes them */
        char *d = e + 1, *s = e + 1;
        if (*s == '+')
            s++;
        else if (*s == '-')
            *d++ = *s++;
        while (*s == '0' && s[1])
            s++;
        memmove(d, s, strlen(s) + 1);
        n = (int)strlen(tmp);
    }
    ifq_sb_putn(b, tmp, (size_t)n);
}

size_t ifq_utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    size_t n = (s[0] & 0xE0) == 0xC0   ? 2
               : (s[0] & 0xF0) == 0xE0 ? 3
               : (s[0] & 0xF8) == 0xF0 ? 4
                                       : 0;
    if (n == 0 || (n == 2 && s[0] < 0xC2) || (n == 4 && s[0] > 0xF4))
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    /* Overlong forms, UTF-16 surrogates and code points past U+10FFFF. */
    if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0) ||
        (s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] >= 0x90))
        return 0;
    return n;
}

void ifq_sb_str(ifq_sb_t *b, const char *s)
{
    IFQ_SB_LIT(b, "\"");
    const unsigned char *p = (const unsigned char *)s;
    while (*p && !b->oom) {
        const unsigned char *run = p;
        while (*p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        if (p > run)
            ifq_sb_putn(b, (const char *)run, (size_t)(p - run));
        if (!*p)
            break;
        if (*p == '"' || *p == '\\') {
            char esc[3] = {'\\', (char)*p, 0};
            ifq_sb_putn(b, esc, 2);
            p++;
        } else if (*p < 0x20) {
            ifq_sb_printf(b, "\\u%04x", *p);
            p++;
        } else {
            size_t n = ifq_utf8_len(p);
            if (n) {
                ifq_sb_putn(b, (const char *)p, n);
                p += n;
            } else {
                IFQ_SB_LIT(b, "?");
                p++;
            }
        }
    }
    IFQ_SB_LIT(b, "\"");
}

/* ---- reading ------------------------------------------------------------ */

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t skip_ws(const char *s, size_t n, size_t i)
{
    while (i < n && is_ws(s[i]))
        i++;
    return i;
}

/* Past the closing quote of the string whose opening quote is at s[i];
 * 0 when it is not closed. */
static size_t skip_string(const char *s, size_t n, size_t i)
{
    for (i++; i < n; i++) {
        if (s[i] == '"')
            return i + 1;
        if (s[i] == '\\')
            i++; /* the escaped byte; \uXXXX's digits need no care */
    }
    return 0;
}

/* Past the value that starts at s[i]; 0 when there is none. Brackets are
 * counted, not matched by kind: the caller's bytes were parsed already. */
static size_t skip_value(const char *s, size_t n, size_t i)
{
    if (i >= n)
        return 0;
    if (s[i] == '"')
        return skip_string(s, n, i);
    if (s[i] == '{' || s[i] == '[') {
        size_t depth = 0;
        while (i < n) {
            char c = s[i];
            if (c == '"') {
                i = skip_string(s, n, i);
                if (!i)
                    return 0;
                continue;
            }
            if (c == '{' || c == '[')
                depth++;
            else if ((c == '}' || c == ']') && --depth == 0)
                return i + 1;
            i++;
        }
        return 0;
    }
    size_t start = i;
    while (i < n && !is_ws(s[i]) && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != '{' &&
           s[i] != '[' && s[i] != '"' && s[i] != ':')
        i++;
    return i > start ? i : 0;
}

int ifq_json_members(const char *s, size_t n, const char *const keys[], size_t nkeys,
                     ifq_jrange_t out[])
{
    memset(out, 0, nkeys * sizeof(*out));
    if (n >= UINT32_MAX)
        return -1;
    size_t i = skip_ws(s, n, 0);
    if (i >= n || s[i] != '{')
        return -1;
    i = skip_ws(s, n, i + 1);
    if (i < n && s[i] == '}')
        return 0;
    for (;;) {
        if (i >= n || s[i] != '"')
            return -1;
        size_t kstart = i + 1, kend = skip_string(s, n, i);
        if (!kend)
            return -1;
        size_t klen = kend - 1 - kstart;
        if (memchr(s + kstart, '\\', klen))
            return -1;
        i = skip_ws(s, n, kend);
        if (i >= n || s[i] != ':')
            return -1;
        i = skip_ws(s, n, i + 1);
        size_t vend = skip_value(s, n, i);
        if (!vend)
            return -1;
        for (size_t k = 0; k < nkeys; k++)
            if (strlen(keys[k]) == klen && memcmp(keys[k], s + kstart, klen) == 0)
                out[k] = (ifq_jrange_t){(uint32_t)i, (uint32_t)(vend - i)};
        i = skip_ws(s, n, vend);
        if (i < n && s[i] == ',') {
            i = skip_ws(s, n, i + 1);
            continue;
        }
        return i < n && s[i] == '}' ? 0 : -1;
    }
}

void ifq_sb_json_compact(ifq_sb_t *b, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && !b->oom) {
        size_t run = i;
        while (i < n && !is_ws(s[i]) && s[i] != '"')
            i++;
        if (i > run)
            ifq_sb_putn(b, s + run, i - run);
        if (i >= n)
            break;
        if (s[i] == '"') {
            size_t end = skip_string(s, n, i);
            if (!end)
                end = n;
            ifq_sb_putn(b, s + i, end - i);
            i = end;
        } else {
            i++; /* whitespace between tokens */
        }
    }
}
