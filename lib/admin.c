/*
 * admin.c - a tiny libmicrohttpd server for health, readiness and metrics,
 * and a hook (route) through which a program serves more GET paths.
 */
#include "admin.h"

#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADMIN_METRICS_MAX (256 * 1024)
#define ADMIN_MAX_CONNECTIONS 32

struct ifq_admin {
    struct MHD_Daemon *d;
    ifq_admin_handlers_t h;
};

struct ifq_admin_req {
    struct MHD_Connection *c;
};

const char *ifq_admin_arg(const ifq_admin_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->c, MHD_GET_ARGUMENT_KIND, name);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    ifq_admin_t *a = cls;
    if (strcmp(method, "GET") != 0)
        return reply(c, 405, "text/plain", strdup("method not allowed\n"), 19);
    if (strcmp(url, "/healthz") == 0)
        return reply(c, 200, "text/plain", strdup("ok\n"), 3);
    if (strcmp(url, "/readyz") == 0) {
        char why[256] = "";
        int ok = a->h.ready ? a->h.ready(a->h.opaque, why, sizeof(why)) : 1;
        char *body = malloc(300);
        int n =
            snprintf(body, 300, "%s%s%s\n", ok ? "ready" : "not ready", why[0] ? ": " : "", why);
        return reply(c, ok ? 200 : 503, "text/plain", body, (size_t)n);
    }
    if (strcmp(url, "/metrics") == 0) {
        char *buf = malloc(ADMIN_METRICS_MAX);
        size_t n = a->h.metrics ? a->h.metrics(a->h.opaque, buf, ADMIN_METRICS_MAX) : 0;
        return reply(c, 200, "text/plain; version=0.0.4", buf, n);
    }
    if (strcmp(url, "/v1/models") == 0 && a->h.models) {
        int status = 200;
        const char *team = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "team");
        char *body = a->h.models(a->h.opaque, team, &status);
        if (!body)
            return reply(c, 500, "text/plain", strdup("error\n"), 6);
        return reply(c, (unsigned)status, "application/json", body, strlen(body));
    }
    if (a->h.route) {
        ifq_admin_req_t req = {c};
        ifq_admin_resp_t resp = {200, "text/plain", NULL, 0};
        if (a->h.route(a->h.route_opaque, url, &req, &resp)) {
            if (!resp.body)
                return reply(c, 500, "text/plain", strdup("error\n"), 6);
            return reply(c, (unsigned)resp.status, resp.content_type, resp.body, resp.len);
        }
    }
    return reply(c, 404, "text/plain", strdup("not found\n"), 10);
}

ifq_admin_t *ifq_admin_start(int port, const ifq_admin_handlers_t *h, char *errstr,
                             size_t errstr_size)
{
    if (port <= 0) {
        if (h->route_free)
            h->route_free(h->route_opaque);
        return NULL;
    }
    ifq_admin_t *a = calloc(1, sizeof(*a));
    a->h = *h;
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* A thread per connection (at most ADMIN_MAX_CONNECTIONS): a slow
     * route (the dashboard reading a trace from Kafka) must not hold up
     * /readyz or /metrics. poll(), not select(): a worker with a thousand
     * HTTP calls in flight hands out descriptors above FD_SETSIZE (1024),
     * and select-based libmicrohttpd closes such a connection at once, so
     * the probes of a busy worker failed. */
    a->d = MHD_start_daemon(MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION,
                            (uint16_t)port, NULL, NULL, handle, a, MHD_OPTION_SOCK_ADDR, &sa,
                            MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)ADMIN_MAX_CONNECTIONS, MHD_OPTION_END);
    if (!a->d) {
        snprintf(errstr, errstr_size, "admin endpoint: cannot listen on 127.0.0.1:%d", port);
        if (h->route_free)
            h->route_free(h->route_opaque);
        free(a);
        return NULL;
    }
    return a;
}

void ifq_admin_stop(ifq_admin_t *a)
{
    if (!a)
        return;
    MHD_stop_daemon(a->d);
    if (a->h.route_free)
        a->h.route_free(a->h.route_opaque);
    free(a);
}
