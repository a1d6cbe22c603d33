/*
 * redis_url.h - parsing redis://[user:password@]host[:port][/db] and opening
 * a hiredis connection from it (AUTH and SELECT included).
 *
 * Shared by every module that keeps its own Redis connection (state,
 * prompts), so the URL rules and the "never echo the password" rule live in
 * one place.
 */
#ifndef IFQ_REDIS_URL_H
#define IFQ_REDIS_URL_H

#include <stddef.h>

#include "common.h"

struct redisContext; /* hiredis */

typedef struct {
    char host[256];
    int port;           /* default 6379 */
    int db;             /* default 0 */
    char password[256]; /* empty: no AUTH */
} ifq_redis_url_t;

/* Parses url into *out (filled completely, zeroed first). The user name
 * part, if any, is ignored (AUTH is sent with the password only). Returns
 * IFQ_OK, or IFQ_ERR_CONFIG with a reason in errstr that never contains the
 * password. */
int ifq_redis_url_parse(const char *url, ifq_redis_url_t *out, char *errstr, size_t errstr_size);

/* Connects with a connect and command timeout of timeout_ms, then sends AUTH
 * and SELECT as the URL asks. Returns a context the caller owns (free it
 * with redisFree), or NULL with a reason in errstr. */
struct redisContext *ifq_redis_url_connect(const ifq_redis_url_t *u, int timeout_ms, char *errstr,
                                           size_t errstr_size);

#endif
