/*
 * redis_url.c - redis:// URL parsing and connecting, shared by state.c and
 * prompt.c.
 */
#include "redis_url.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ifq_redis_url_parse(const char *url, ifq_redis_url_t *out, char *errstr, size_t errstr_size)
{
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    const char *p = url ? url : "";
    if (strncmp(p, "redis://", 8) != 0) {
        /* The URL is only echoed when it holds no credentials. */
        snprintf(errstr, errstr_size, "redis url must start with redis:// (got '%.64s')",
                 strchr(p, '@') ? "..." : p);
        return IFQ_ERR_CONFIG;
    }
    p += 8;
    const char *at = strchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        size_t n = (size_t)(at - pw);
        if (n >= sizeof(out->password)) {
            snprintf(errstr, errstr_size, "redis password too long");
            return IFQ_ERR_CONFIG;
        }
        memcpy(out->password, pw, n);
        out->password[n] = '\0';
        p = at + 1;
    }
    size_t hl = strcspn(p, ":/");
    if (hl == 0 || hl >= sizeof(out->host)) {
        snprintf(errstr, errstr_size, "redis url has no host");
        return IFQ_ERR_CONFIG;
    }
    memcpy(out->host, p, hl);
    out->host[hl] = '\0';
    p += hl;
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port <= 0 || port > 65535 || (*end && *end != '/')) {
            snprintf(errstr, errstr_size, "redis url has a bad port");
            return IFQ_ERR_CONFIG;
        }
        out->port = (int)port;
        p = end;
    }
    if (*p == '/' && p[1]) {
        char *end;
        long db = strtol(p + 1, &end, 10);
        if (end == p + 1 || db < 0 || db > 1024 || *end) {
            snprintf(errstr, errstr_size, "redis url has a bad database number");
            return IFQ_ERR_CONFIG;
        }
        out->db = (int)db;
    }
    return IFQ_OK;
}

redisContext *ifq_redis_url_connect(const ifq_redis_url_t *u, int timeout_ms, char *errstr,
                                    size_t errstr_size)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *rc = redisConnectWithTimeout(u->host, u->port, tv);
    if (!rc || rc->err) {
        snprintf(errstr, errstr_size, "redis %s:%d: %s", u->host, u->port,
                 rc ? rc->errstr : "cannot allocate context");
        if (rc)
            redisFree(rc);
        return NULL;
    }
    redisSetTimeout(rc, tv);
    redisReply *r;
    if (u->password[0]) {
        r = redisCommand(rc, "AUTH %s", u->password);
        int bad = !r || r->type == REDIS_REPLY_ERROR;
        /* Never echo the password or the server's reply about it. */
        if (r)
            freeReplyObject(r);
        if (bad) {
            snprintf(errstr, errstr_size, "redis authentication failed");
            redisFree(rc);
            return NULL;
        }
    }
    if (u->db) {
        r = redisCommand(rc, "SELECT %d", u->db);
        int bad = !r || r->type == REDIS_REPLY_ERROR;
        if (r)
            freeReplyObject(r);
        if (bad) {
            snprintf(errstr, errstr_size, "redis SELECT %d failed", u->db);
            redisFree(rc);
            return NULL;
        }
    }
    return rc;
}
