/*
 * catalog.c - alias and deployment lookup over the configured catalog.
 */
#include "catalog.h"

#include <string.h>

int ifq_catalog_resolve(const ifq_config_t *cfg, const char *model, ifq_route_t *out)
{
    memset(out, 0, sizeof(*out));
    out->requested = model;
    if (!model)
        return IFQ_ERR_NOTFOUND;
    for (size_t i = 0; i < cfg->n_aliases; i++) {
        const ifq_alias_t *a = &cfg->aliases[i];
        if (strcmp(a->name, model) == 0) {
            out->n = a->n < IFQ_MAX_CHAIN ? a->n : IFQ_MAX_CHAIN;
            for (size_t k = 0; k < out->n; k++)
                out->chain[k] = a->chain[k];
            return IFQ_OK;
        }
    }
    ifq_deployment_t *d = ifq_config_deployment(cfg, model);
    if (!d)
        return IFQ_ERR_NOTFOUND;
    out->n = 1;
    out->chain[0] = d;
    return IFQ_OK;
}
