/*
 * common.c - error strings, clocks and string helpers.
 */
#include "common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

const char *ifq_err2str(ifq_err_t err)
{
    switch (err) {
    case IFQ_OK:
        return "ok";
    case IFQ_ERR_NOMEM:
        return "out of memory";
    case IFQ_ERR_INVALID:
        return "invalid input";
    case IFQ_ERR_CONFIG:
        return "invalid configuration";
    case IFQ_ERR_IO:
        return "i/o error";
    case IFQ_ERR_NOTFOUND:
        return "not found";
    case IFQ_ERR_TOOBIG:
        return "too big";
    case IFQ_ERR_TIMEOUT:
        return "timed out";
    }
    return "unknown error";
}

int64_t ifq_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ifq_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ifq_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int ifq_fmt(char *dst, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, size, fmt, ap);
    va_end(ap);
    if (n < 0)
        return IFQ_ERR_INVALID;
    return (size_t)n >= size ? IFQ_ERR_TOOBIG : IFQ_OK;
}

int ifq_parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s)
        return IFQ_ERR_INVALID;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return IFQ_ERR_INVALID;
    *out = v;
    return IFQ_OK;
}

uint64_t ifq_fnv1a64(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
