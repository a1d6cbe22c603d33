/*
 * route.c - routing strategies over the catalog.
 */
#include "route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t text_bytes(const json_t *v)
{
    if (json_is_string(v))
        return (int64_t)json_string_length(v);
    int64_t n = 0;
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            if (json_is_string(x))
                n += (int64_t)json_string_length(x);
            else if (json_is_object(x))
                n += text_bytes(json_object_get(x, "text"));
        }
    }
    return n;
}

int64_t ifq_estimate_tokens(const json_t *body, ifq_url_kind_t kind)
{
    int64_t bytes = 0;
    if (kind == IFQ_URL_CHAT) {
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(body, "messages"), i, m)
        {
            bytes += 16; /* role and framing */
            bytes += text_bytes(json_object_get(m, "content"));
        }
    } else if (kind == IFQ_URL_COMPLETIONS) {
        bytes = text_bytes(json_object_get(body, "prompt"));
    } else {
        bytes = text_bytes(json_object_get(body, "input"));
    }
    return (bytes + 3) / 4;
}

static int dep_index(const ifq_config_t *cfg, const ifq_deployment_t *d)
{
    return (int)(d - cfg->deployments);
}

static void skip(json_t *skipped, const ifq_deployment_t *d, const char *reason)
{
    json_array_append_new(skipped, json_pack("{ss ss}", "deployment", d->name, "reason", reason));
}

/* The complexity router: cheap features of the request give a score; at or
 * above the alias's threshold the large tier goes first. The score, the
 * features and the reason are recorded in the decision. */
static int cost_pick_large(const ifq_alias_t *al, const json_t *request, json_t *decision)
{
    ifq_complexity_t cx;
    memset(&cx, 0, sizeof(cx));
    ifq_complexity_score(&al->cx, request, &cx);
    json_object_set_new(decision, "score", json_real(cx.score));
    json_object_set_new(decision, "threshold", json_real(al->cx.threshold));
    if (cx.features)
        json_object_set_new(decision, "features", cx.features);
    if (cx.reason)
        json_object_set_new(decision, "reason", json_string(cx.reason));
    return cx.large;
}

ifq_route_status_t ifq_route_select(const ifq_config_t *cfg, const ifq_health_t *health,
                                    const json_t *request, const char *model, ifq_url_kind_t kind,
                                    double rnd, ifq_route_t *out, json_t **decision, char *why,
                                    size_t why_size)
{
    memset(out, 0, sizeof(*out));
    *decision = NULL;
    out->requested = model;
    const ifq_alias_t *al = NULL;
    for (size_t i = 0; model && i < cfg->n_aliases; i++)
        if (strcmp(cfg->aliases[i].name, model) == 0)
            al = &cfg->aliases[i];
    ifq_deployment_t *direct = al ? NULL : ifq_config_deployment(cfg, model);
    if (!al && !direct) {
        snprintf(why, why_size, "model '%.200s' is not in the catalog", model ? model : "");
        return IFQ_ROUTE_NOT_FOUND;
    }
    const json_t *body = json_object_get(request, "body");
    int64_t est = ifq_estimate_tokens(body, kind);
    json_int_t max_tokens = json_integer_value(json_object_get(body, "max_tokens"));
    if (!max_tokens)
        max_tokens = json_integer_value(json_object_get(body, "max_completion_tokens"));
    int64_t need = est + (max_tokens > 0 ? max_tokens : 0);

    json_t *dec = json_object();
    json_t *skipped = json_array();
    static const char *const names[] = {"failover", "weighted", "least_busy", "cost"};
    json_object_set_new(dec, "strategy", json_string(al ? names[al->strategy] : "direct"));
    json_object_set_new(dec, "est_prompt_tokens", json_integer(est));

    /* Candidates in preference order. */
    ifq_deployment_t *cand[IFQ_MAX_CHAIN];
    size_t nc = 0;
    if (!al) {
        cand[nc++] = direct;
    } else if (al->strategy == IFQ_STRATEGY_COST) {
        int large = cost_pick_large(al, request, dec);
        json_object_set_new(dec, "tier", json_string(large ? "large" : "small"));
        /* The chosen tier first; the other tier follows as fallback. */
        size_t first = large ? al->n_small : 0, firstn = large ? al->n - al->n_small : al->n_small;
        for (size_t k = 0; k < firstn && nc < IFQ_MAX_CHAIN; k++)
            cand[nc++] = al->chain[first + k];
        for (size_t k = 0; k < al->n && nc < IFQ_MAX_CHAIN; k++)
            if (k < first || k >= first + firstn)
                cand[nc++] = al->chain[k];
    } else {
        for (size_t k = 0; k < al->n && nc < IFQ_MAX_CHAIN; k++)
            cand[nc++] = al->chain[k];
        if (al->strategy == IFQ_STRATEGY_WEIGHTED && nc > 1) {
            double total = 0, acc = 0;
            for (size_t k = 0; k < nc; k++)
                total += al->weights[k];
            size_t pick = nc - 1;
            for (size_t k = 0; k < nc; k++) {
                acc += al->weights[k];
                if (rnd * total < acc) {
                    pick = k;
                    break;
                }
            }
            ifq_deployment_t *p = cand[pick];
            memmove(cand + 1, cand, pick * sizeof(*cand));
            cand[0] = p;
        } else if (al->strategy == IFQ_STRATEGY_LEAST_BUSY && health) {
            /* Stable insertion sort by in-flight count; unknown counts last. */
            for (size_t k = 1; k < nc; k++) {
                ifq_deployment_t *x = cand[k];
                int xi = health->deps[dep_index(cfg, x)].inflight;
                size_t j = k;
                while (j > 0) {
                    int yi = health->deps[dep_index(cfg, cand[j - 1])].inflight;
                    if ((xi < 0) || (yi >= 0 && yi <= xi))
                        break;
                    cand[j] = cand[j - 1];
                    j--;
                }
                cand[j] = x;
            }
        }
    }

    /* Context window: drop what cannot hold the request. */
    size_t kept = 0;
    for (size_t k = 0; k < nc; k++) {
        if (cand[k]->context_window > 0 && need > cand[k]->context_window)
            skip(skipped, cand[k], "context_window");
        else
            cand[kept++] = cand[k];
    }
    if (kept == 0) {
        snprintf(why, why_size,
                 "the request needs about %lld tokens (prompt + max_tokens), more than the "
                 "context window of every deployment of '%.100s'",
                 (long long)need, model);
        json_decref(skipped);
        json_decref(dec);
        return IFQ_ROUTE_TOO_LONG;
    }
    nc = kept;

    /* Health: deployments with an open circuit go to the back; if all are
     * open, the least recently failed goes first rather than failing. */
    if (health && (!al || al->health_aware)) {
        ifq_deployment_t *healthy[IFQ_MAX_CHAIN], *sick[IFQ_MAX_CHAIN];
        size_t nh = 0, ns = 0;
        for (size_t k = 0; k < nc; k++) {
            if (health->deps[dep_index(cfg, cand[k])].circuit_open == 1) {
                sick[ns++] = cand[k];
                skip(skipped, cand[k], "circuit_open");
            } else {
                healthy[nh++] = cand[k];
            }
        }
        for (size_t k = 1; k < ns; k++) {
            ifq_deployment_t *x = sick[k];
            int64_t xt = health->deps[dep_index(cfg, x)].circuit_changed_ms;
            size_t j = k;
            while (j > 0 && health->deps[dep_index(cfg, sick[j - 1])].circuit_changed_ms > xt) {
                sick[j] = sick[j - 1];
                j--;
            }
            sick[j] = x;
        }
        nc = 0;
        for (size_t k = 0; k < nh; k++)
            cand[nc++] = healthy[k];
        for (size_t k = 0; k < ns; k++)
            cand[nc++] = sick[k];
    }

    out->n = nc;
    json_t *chain = json_array();
    for (size_t k = 0; k < nc; k++) {
        out->chain[k] = cand[k];
        json_array_append_new(chain, json_string(cand[k]->name));
    }
    json_object_set_new(dec, "chain", chain);
    if (json_array_size(skipped))
        json_object_set_new(dec, "skipped", skipped);
    else
        json_decref(skipped);
    *decision = dec;
    return IFQ_ROUTE_OK;
}
