/*
 * catalog.c - alias and deployment lookup over the configured catalog.
 */
#include "catalog.h"
#include "route.h"

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

static json_t *deployment_info(const ifq_config_t *cfg, const ifq_deployment_t *d,
                               const ifq_health_t *health)
{
    json_t *o =
        json_pack("{ss ss ss}", "name", d->name, "provider", d->provider, "model", d->model);
    if (d->context_window)
        json_object_set_new(o, "context_window", json_integer(d->context_window));
    json_object_set_new(
        o, "price_per_mtok",
        json_pack("{sf sf}", "input", d->price_input_per_mtok, "output", d->price_output_per_mtok));
    const char *tier = json_string_value(json_object_get(d->tags, "tier"));
    if (tier)
        json_object_set_new(o, "tier", json_string(tier));
    if (d->tags)
        json_object_set(o, "tags", d->tags);
    if (health) {
        const ifq_dep_health_t *h = &health->deps[d - cfg->deployments];
        static const char *const states[] = {"closed", "open", "half_open"};
        json_object_set_new(
            o, "health",
            json_pack("{ss si}", "circuit",
                      states[h->circuit_open >= 0 && h->circuit_open < 3 ? h->circuit_open : 0],
                      "inflight", h->inflight));
    }
    return o;
}

json_t *ifq_catalog_models(const ifq_config_t *cfg, const char *team_name, const void *health_v)
{
    const ifq_health_t *health = health_v;
    const ifq_team_t *team = team_name ? ifq_config_team(cfg, team_name) : NULL;
    static const char *const strategies[] = {"failover", "weighted", "least_busy", "cost"};
    json_t *data = json_array();
    for (size_t i = 0; i < cfg->n_aliases; i++) {
        const ifq_alias_t *a = &cfg->aliases[i];
        if (team && !ifq_team_allows_model(team, a->name))
            continue;
        json_t *deps = json_array();
        int64_t window = 0;
        for (size_t k = 0; k < a->n; k++) {
            json_array_append_new(deps, deployment_info(cfg, a->chain[k], health));
            if (a->chain[k]->context_window > window)
                window = a->chain[k]->context_window;
        }
        json_t *ext = json_pack("{ss ss so}", "kind", "alias", "strategy", strategies[a->strategy],
                                "deployments", deps);
        if (window)
            json_object_set_new(ext, "context_window", json_integer(window));
        json_array_append_new(data, json_pack("{ss ss si ss so}", "id", a->name, "object", "model",
                                              "created", 0, "owned_by", "inferq", "inferq", ext));
    }
    for (size_t i = 0; i < cfg->n_deployments; i++) {
        const ifq_deployment_t *d = &cfg->deployments[i];
        if (team && !ifq_team_allows_model(team, d->name))
            continue;
        json_t *ext = deployment_info(cfg, d, health);
        json_object_set_new(ext, "kind", json_string("deployment"));
        json_array_append_new(data,
                              json_pack("{ss ss si ss so}", "id", d->name, "object", "model",
                                        "created", 0, "owned_by", d->provider, "inferq", ext));
    }
    return json_pack("{ss so}", "object", "list", "data", data);
}
