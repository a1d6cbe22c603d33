/*
 * common.h - error codes, limits and small helpers shared by every module of
 * libinferq. Nothing here allocates; nothing here talks to the network.
 */
#ifndef IFQ_COMMON_H
#define IFQ_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* One error type for the whole library. Library errors from curl, hiredis,
 * jansson, avro, rdkafka are translated into these at the wrapper, once. */
typedef enum {
    IFQ_OK = 0,
    IFQ_ERR_NOMEM = -1,
    IFQ_ERR_INVALID = -2, /* malformed input (a client's fault) */
    IFQ_ERR_CONFIG = -3,  /* bad configuration (an operator's fault) */
    IFQ_ERR_IO = -4,      /* network / service failure */
    IFQ_ERR_NOTFOUND = -5,
    IFQ_ERR_TOOBIG = -6,
    IFQ_ERR_TIMEOUT = -7,
} ifq_err_t;

const char *ifq_err2str(ifq_err_t err);

/* Hard limits; everything that grows has a maximum. */
#define IFQ_MAX_CUSTOM_ID 512
#define IFQ_MAX_TOPIC 249
#define IFQ_MAX_NAME 128

#define IFQ_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Wall clock in milliseconds since the epoch. */
int64_t ifq_now_ms(void);
/* Monotonic clock in milliseconds, for timeouts and durations. */
int64_t ifq_mono_ms(void);
/* Monotonic clock in microseconds. */
int64_t ifq_mono_us(void);

/* snprintf into dst that always terminates; returns IFQ_ERR_TOOBIG when the
 * result was truncated. */
int ifq_fmt(char *dst, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Parses a base-10 integer that must fill the whole string; no atoi. */
int ifq_parse_i64(const char *s, int64_t *out);

/* 64-bit FNV-1a, used for stable ids and hashing. */
uint64_t ifq_fnv1a64(const void *data, size_t len, uint64_t seed);

#endif
