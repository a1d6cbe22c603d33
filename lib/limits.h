/*
 * limits.h - team rate limits, spend budgets and the exact-match response
 * cache, all enforced in Redis so that several broker replicas share them.
 *
 * Rate limits are per team and per team x model, requests and tokens per
 * minute, in fixed one-minute windows. Admission checks and counts in one
 * Lua script, atomically: two replicas can never both admit the request that
 * crosses a limit. Tokens are estimated on admission and reconciled by the
 * worker with the provider's real usage (same window key). Budgets compare
 * the team's real spend (added by workers from catalog prices) plus the
 * request's estimated cost with the daily and monthly budget.
 */
#ifndef IFQ_LIMITS_H
#define IFQ_LIMITS_H

#include <jansson.h>
#include <stdint.h>

#include "config.h"
#include "state.h"

typedef enum {
    IFQ_ADMIT_PENDING = -2, /* reply not received yet */
    IFQ_ADMIT_UNKNOWN = -1, /* Redis unreachable: admitted, and logged */
    IFQ_ADMIT_OK = 0,
    IFQ_ADMIT_RATE = 1,   /* rate_limited */
    IFQ_ADMIT_BUDGET = 2, /* budget_exceeded */
} ifq_admit_status_t;

typedef struct {
    ifq_admit_status_t status;
    char which[32];         /* "rpm", "tpm", "model_rpm", "model_tpm", "daily", "monthly" */
    int64_t retry_after_ms; /* when the window or budget period rolls over */
    int64_t minute;         /* the window the request was counted in */
} ifq_admit_t;

typedef struct ifq_limits ifq_limits_t;

/* Registers the scripts on st. Returns NULL with errstr. */
ifq_limits_t *ifq_limits_new(ifq_state_t *st, const ifq_config_t *cfg, char *errstr,
                             size_t errstr_size);
void ifq_limits_destroy(ifq_limits_t *l);

/* 1 when the team has any limit or budget (otherwise no admission needed). */
int ifq_limits_apply(const ifq_team_t *team, const char *model);

/* Queues the admission of one request; *out is filled when the state's
 * next flush returns. out must stay valid until then. */
void ifq_limits_admit(ifq_limits_t *l, const ifq_team_t *team, const char *model,
                      int64_t est_tokens, double est_cost, int64_t now_ms, ifq_admit_t *out);

/* Queues the worker's reconciliation after a request finished: the token
 * delta in the admission window, spend, and per-team usage counters. */
void ifq_limits_account(ifq_state_t *st, const char *prefix, const char *team, const char *model,
                        int64_t minute, int64_t est_tokens, int64_t real_tokens, int64_t in_tok,
                        int64_t out_tok, double cost, int64_t now_ms);

/* Writes the usage hash key "<prefix>:usage:<day>:<kind>:<name>[:model:<model>]"
 * into out; kind is "team" or "deployment", day "YYYY-MM-DD", model may be
 * NULL. The one place the key's layout is spelled out (written by brokers
 * and workers, read by `inferq usage` and the dashboard). */
void ifq_usage_key(char *out, size_t size, const char *prefix, const char *day, const char *kind,
                   const char *name, const char *model);
/* Queues one answered request into a usage hash (requests, input_tokens,
 * output_tokens, cost_usd; kept 40 days). */
void ifq_usage_add(ifq_state_t *st, const char *key, int64_t in_tok, int64_t out_tok, double cost);
/* The same for `requests` answered requests at once (a worker's batched
 * per-deployment counters). */
void ifq_usage_add_n(ifq_state_t *st, const char *key, int64_t requests, int64_t in_tok,
                     int64_t out_tok, double cost);

/* The cache key for a request: hex SHA-256 over scope, url, model and the
 * body with its keys sorted. Returns 0, or -1 when the request is not
 * cacheable (non-zero temperature without metadata.cache = "true", n > 1,
 * stream). */
int ifq_cache_key(const ifq_config_t *cfg, const char *team, const json_t *request, char out[65]);
/* Queues a lookup; on a hit *out becomes the cached entry (caller owns). */
void ifq_cache_lookup(ifq_state_t *st, const char *prefix, const char *key, json_t **out);
/* Queues a store of entry (serialised; skipped when above max_bytes). */
void ifq_cache_store(ifq_state_t *st, const ifq_config_t *cfg, const char *key,
                     const json_t *entry);

#endif
