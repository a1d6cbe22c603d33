/*
 * catalog.h - resolves the model a request names to the chain of deployments
 * that may serve it. An alias gives its configured chain; a deployment name
 * gives a chain of one. Later routing strategies build on this.
 */
#ifndef IFQ_CATALOG_H
#define IFQ_CATALOG_H

#include "config.h"

#define IFQ_MAX_CHAIN 16

typedef struct {
    const char *requested;                  /* borrowed: what the request named */
    size_t n;                               /* deployments in the chain */
    ifq_deployment_t *chain[IFQ_MAX_CHAIN]; /* borrowed from the config */
} ifq_route_t;

/* Returns IFQ_OK and fills out, or IFQ_ERR_NOTFOUND. */
int ifq_catalog_resolve(const ifq_config_t *cfg, const char *model, ifq_route_t *out);

/* The models a team may use (all when team is NULL), in OpenAI's list shape
 * {"object":"list","data":[{"id","object":"model","owned_by":"inferq",
 * "inferq":{kind, strategy, deployments, tier, context_window, price, health}}]}.
 * health (const ifq_health_t *, may be NULL) adds circuit state and
 * in-flight counts. Caller owns the result. */
json_t *ifq_catalog_models(const ifq_config_t *cfg, const char *team, const void *health);

#endif
