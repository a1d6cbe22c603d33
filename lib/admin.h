/*
 * admin.h - the admin HTTP endpoint every program exposes (libmicrohttpd):
 * GET /healthz (process alive), GET /readyz (dependencies reachable and
 * work assigned), GET /metrics (Prometheus text), GET /v1/models (the
 * catalog a team may use, OpenAI's list shape), and any other GET path a
 * program serves through the generic `route` callback (the broker's
 * dashboard). Handlers run on the server's threads (one per connection, at
 * most 32 at once), so the callbacks may run concurrently with each other
 * and with the program: they must only read thread-safe state.
 */
#ifndef IFQ_ADMIN_H
#define IFQ_ADMIN_H

#include <stddef.h>

typedef struct ifq_admin ifq_admin_t;

/* One HTTP request as the route callback sees it. */
typedef struct ifq_admin_req ifq_admin_req_t;
/* A query-string argument of req (URL-decoded), or NULL when absent.
 * Borrowed until the route callback returns. */
const char *ifq_admin_arg(const ifq_admin_req_t *req, const char *name);

/* What the route callback answers. */
typedef struct {
    int status;               /* HTTP status */
    const char *content_type; /* static string */
    char *body;               /* malloc'd; the admin server frees it */
    size_t len;
} ifq_admin_resp_t;

typedef struct {
    /* 1 when ready; may fill why (a short reason) when not. */
    int (*ready)(void *opaque, char *why, size_t why_size);
    /* Appends Prometheus text to buf (at most size bytes, NUL-terminated);
     * returns the length written. */
    size_t (*metrics)(void *opaque, char *buf, size_t size);
    /* GET /v1/models[?team=T]: returns a malloc'd JSON body and sets *status;
     * NULL callback = 404. */
    char *(*models)(void *opaque, const char *team, int *status);
    void *opaque;
    /* Any other GET path (without the query string): returns 1 and fills
     * *resp when it serves path, 0 for a 404. May be NULL. Called on a
     * server thread with route_opaque (possibly on several at once). */
    int (*route)(void *route_opaque, const char *path, const ifq_admin_req_t *req,
                 ifq_admin_resp_t *resp);
    void *route_opaque;
    /* Frees route_opaque (may be NULL): the admin server owns route_opaque
     * from ifq_admin_start on, and calls this in ifq_admin_stop, or at once
     * when ifq_admin_start returns NULL. */
    void (*route_free)(void *route_opaque);
} ifq_admin_handlers_t;

/* Starts listening on 127.0.0.1:port (0 = no admin endpoint, returns NULL
 * without error). Returns NULL with errstr on failure. */
ifq_admin_t *ifq_admin_start(int port, const ifq_admin_handlers_t *h, char *errstr,
                             size_t errstr_size);
void ifq_admin_stop(ifq_admin_t *a); /* NULL is a no-op */

#endif
