/*
 * admin.h - the admin HTTP endpoint every program exposes (libmicrohttpd):
 * GET /healthz (process alive), GET /readyz (dependencies reachable and
 * work assigned), GET /metrics (Prometheus text), GET /v1/models (the
 * catalog a team may use, OpenAI's list shape). Handlers run on the
 * server's thread, so the callbacks must only read thread-safe state.
 */
#ifndef IFQ_ADMIN_H
#define IFQ_ADMIN_H

#include <stddef.h>

typedef struct ifq_admin ifq_admin_t;

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
} ifq_admin_handlers_t;

/* Starts listening on 127.0.0.1:port (0 = no admin endpoint, returns NULL
 * without error). Returns NULL with errstr on failure. */
ifq_admin_t *ifq_admin_start(int port, const ifq_admin_handlers_t *h, char *errstr,
                             size_t errstr_size);
void ifq_admin_stop(ifq_admin_t *a); /* NULL is a no-op */

#endif
