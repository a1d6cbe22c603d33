/*
 * route.h - routing: from the model a request names to the ordered chain of
 * deployments that will serve it, by the alias's strategy (failover,
 * weighted, least busy, cost tier), skipping deployments whose circuit is
 * open or whose context window is too small. Pure: the health view is
 * refreshed by the caller (the broker reads it from Redis once a second).
 */
#ifndef IFQ_ROUTE_H
#define IFQ_ROUTE_H

#include <jansson.h>
#include <stdint.h>

#include "catalog.h"
#include "config.h"
#include "envelope.h"

/* What the workers publish about one deployment. */
typedef struct {
    int circuit_open; /* 1 open, 2 half-open, 0 closed/unknown */
    int64_t circuit_changed_ms;
    int inflight; /* summed over fresh worker reports; -1 unknown */
} ifq_dep_health_t;

/* One entry per cfg->deployments[i], same index. */
typedef struct {
    size_t n;
    ifq_dep_health_t *deps;
} ifq_health_t;

/* Estimated prompt tokens of an OpenAI body (about 4 bytes a token over the
 * text the model reads). */
int64_t ifq_estimate_tokens(const json_t *body, ifq_url_kind_t kind);

typedef enum {
    IFQ_ROUTE_OK = 0,
    IFQ_ROUTE_NOT_FOUND, /* no such alias or deployment */
    IFQ_ROUTE_TOO_LONG,  /* no deployment's context window fits the request */
} ifq_route_status_t;

/* Chooses the chain for `request` (the whole request line). rnd is a
 * uniform random number in [0,1) for weighted choice. health may be NULL.
 * On success fills out and returns a decision object (caller owns) that
 * says why: {"strategy", "chain", "skipped": [{deployment, reason}], and for
 * cost routing "score", "features", "tier"}. */
ifq_route_status_t ifq_route_select(const ifq_config_t *cfg, const ifq_health_t *health,
                                    const json_t *request, const char *model, ifq_url_kind_t kind,
                                    double rnd, ifq_route_t *out, json_t **decision, char *why,
                                    size_t why_size);

#endif
