/*
 * limits.c - admission (rate limits, budgets) and the response cache.
 */
#include "limits.h"

#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

/* KEYS: team window, team x model window, daily spend, monthly spend.
 * ARGV: rpm, tpm, model rpm, model tpm, est tokens, daily budget, monthly
 * budget, est cost, ms to the next minute, ms to the next day, ms to the
 * next month. Returns {status, which, retry_after_ms}. */
static const char admit_script[] =
    "local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local mrpm, mtpm = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "local est = tonumber(ARGV[5])\n"
    "local function hget(k, f) return tonumber(redis.call('HGET', k, f) or '0') end\n"
    "if rpm > 0 and hget(KEYS[1], 'req') + 1 > rpm then return {1, 'rpm', ARGV[9]} end\n"
    "if tpm > 0 and hget(KEYS[1], 'tok') + est > tpm then return {1, 'tpm', ARGV[9]} end\n"
    "if mrpm > 0 and hget(KEYS[2], 'req') + 1 > mrpm then return {1, 'model_rpm', ARGV[9]} end\n"
    "if mtpm > 0 and hget(KEYS[2], 'tok') + est > mtpm then return {1, 'model_tpm', ARGV[9]} end\n"
    "local cost = tonumber(ARGV[8])\n"
    "local daily, monthly = tonumber(ARGV[6]), tonumber(ARGV[7])\n"
    "if daily > 0 and tonumber(redis.call('GET', KEYS[3]) or '0') + cost > daily then\n"
    "  return {2, 'daily', ARGV[10]} end\n"
    "if monthly > 0 and tonumber(redis.call('GET', KEYS[4]) or '0') + cost > monthly then\n"
    "  return {2, 'monthly', ARGV[11]} end\n"
    "for i = 1, 2 do\n"
    "  redis.call('HINCRBY', KEYS[i], 'req', 1)\n"
    "  redis.call('HINCRBY', KEYS[i], 'tok', est)\n"
    "  redis.call('PEXPIRE', KEYS[i], 120000)\n"
    "end\n"
    "return {0, '', '0'}\n";

struct ifq_limits {
    ifq_state_t *st;
    const ifq_config_t *cfg;
    int script;
};

ifq_limits_t *ifq_limits_new(ifq_state_t *st, const ifq_config_t *cfg, char *errstr,
                             size_t errstr_size)
{
    ifq_limits_t *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->st = st;
    l->cfg = cfg;
    l->script = ifq_state_script(st, admit_script, errstr, errstr_size);
    if (l->script < 0) {
        free(l);
        return NULL;
    }
    return l;
}

void ifq_limits_destroy(ifq_limits_t *l)
{
    free(l);
}

int ifq_limits_apply(const ifq_team_t *team, const char *model)
{
    if (!team)
        return 0;
    int mrpm, mtpm;
    ifq_team_model_limits(team, model, &mrpm, &mtpm);
    return team->rpm || team->tpm || mrpm || mtpm || team->budget_daily_usd > 0 ||
           team->budget_monthly_usd > 0;
}

static void admit_reply(void *opaque, const redisReply *r)
{
    ifq_admit_t *out = opaque;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
        out->status = IFQ_ADMIT_UNKNOWN;
        if (r && r->type == REDIS_REPLY_ERROR)
            ifq_warn("admission_failed", "%s", r->str);
        return;
    }
    out->status = (ifq_admit_status_t)r->element[0]->integer;
    snprintf(out->which, sizeof(out->which), "%s", r->element[1]->str ? r->element[1]->str : "");
    int64_t ms = 0;
    if (r->element[2]->str)
        ifq_parse_i64(r->element[2]->str, &ms);
    out->retry_after_ms = ms;
}

static void day_month(int64_t now_ms, char *day, size_t dsz, char *month, size_t msz,
                      int64_t *to_day, int64_t *to_month)
{
    time_t t = (time_t)(now_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(day, dsz, "%Y-%m-%d", &tm);
    strftime(month, msz, "%Y-%m", &tm);
    int64_t day_start = (now_ms / 86400000) * 86400000;
    *to_day = day_start + 86400000 - now_ms;
    struct tm next = tm;
    next.tm_mday = 1;
    next.tm_hour = next.tm_min = next.tm_sec = 0;
    next.tm_mon += 1;
    *to_month = (int64_t)timegm(&next) * 1000 - now_ms;
}

void ifq_limits_admit(ifq_limits_t *l, const ifq_team_t *team, const char *model,
                      int64_t est_tokens, double est_cost, int64_t now_ms, ifq_admit_t *out)
{
    const char *p = l->cfg->prefix;
    int64_t minute = now_ms / 60000;
    char k1[512], k2[768], k3[512], k4[512], day[16], month[16];
    int64_t to_day, to_month;
    day_month(now_ms, day, sizeof(day), month, sizeof(month), &to_day, &to_month);
    snprintf(k1, sizeof(k1), "%s:rl:%s:%lld", p, team->name, (long long)minute);
    snprintf(k2, sizeof(k2), "%s:rl:%s:%s:%lld", p, team->name, model, (long long)minute);
    snprintf(k3, sizeof(k3), "%s:spend:%s:%s", p, team->name, day);
    snprintf(k4, sizeof(k4), "%s:spend:%s:%s", p, team->name, month);
    int mrpm, mtpm;
    ifq_team_model_limits(team, model, &mrpm, &mtpm);
    char a[11][48];
    snprintf(a[0], sizeof(a[0]), "%d", team->rpm);
    snprintf(a[1], sizeof(a[1]), "%d", team->tpm);
    snprintf(a[2], sizeof(a[2]), "%d", mrpm);
    snprintf(a[3], sizeof(a[3]), "%d", mtpm);
    snprintf(a[4], sizeof(a[4]), "%lld", (long long)est_tokens);
    snprintf(a[5], sizeof(a[5]), "%.6f", team->budget_daily_usd);
    snprintf(a[6], sizeof(a[6]), "%.6f", team->budget_monthly_usd);
    snprintf(a[7], sizeof(a[7]), "%.9f", est_cost);
    snprintf(a[8], sizeof(a[8]), "%lld", (long long)(60000 - now_ms % 60000));
    snprintf(a[9], sizeof(a[9]), "%lld", (long long)to_day);
    snprintf(a[10], sizeof(a[10]), "%lld", (long long)to_month);
    const char *argv[] = {"4",  k1,   k2,   k3,   k4,   a[0], a[1], a[2],
                          a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10]};
    out->status = IFQ_ADMIT_PENDING;
    out->which[0] = '\0';
    out->retry_after_ms = 0;
    out->minute = minute;
    ifq_state_queue_eval(l->st, l->script, (int)IFQ_ARRAY_LEN(argv), argv, admit_reply, out);
}

void ifq_limits_account(ifq_state_t *st, const char *prefix, const char *team, const char *model,
                        int64_t minute, int64_t est_tokens, int64_t real_tokens, int64_t in_tok,
                        int64_t out_tok, double cost, int64_t now_ms)
{
    char k[768], v[48], day[16], month[16];
    int64_t to_day, to_month;
    day_month(now_ms, day, sizeof(day), month, sizeof(month), &to_day, &to_month);
    if (minute > 0 && real_tokens != est_tokens) {
        snprintf(v, sizeof(v), "%lld", (long long)(real_tokens - est_tokens));
        snprintf(k, sizeof(k), "%s:rl:%s:%lld", prefix, team, (long long)minute);
        const char *c1[] = {"HINCRBY", k, "tok", v};
        ifq_state_queue_cmd(st, 4, c1);
        snprintf(k, sizeof(k), "%s:rl:%s:%s:%lld", prefix, team, model, (long long)minute);
        const char *c2[] = {"HINCRBY", k, "tok", v};
        ifq_state_queue_cmd(st, 4, c2);
    }
    snprintf(v, sizeof(v), "%.9f", cost);
    if (cost > 0) {
        snprintf(k, sizeof(k), "%s:spend:%s:%s", prefix, team, day);
        const char *c3[] = {"INCRBYFLOAT", k, v};
        const char *e3[] = {"EXPIRE", k, "3456000"};
        ifq_state_queue_cmd(st, 3, c3);
        ifq_state_queue_cmd(st, 3, e3);
        snprintf(k, sizeof(k), "%s:spend:%s:%s", prefix, team, month);
        const char *c4[] = {"INCRBYFLOAT", k, v};
        const char *e4[] = {"EXPIRE", k, "34560000"};
        ifq_state_queue_cmd(st, 3, c4);
        ifq_state_queue_cmd(st, 3, e4);
    }
    ifq_usage_key(k, sizeof(k), prefix, day, "team", team, NULL);
    ifq_usage_add(st, k, in_tok, out_tok, cost);
    /* The per-team x model usage, for `inferq usage`. */
    ifq_usage_key(k, sizeof(k), prefix, day, "team", team, model);
    ifq_usage_add(st, k, in_tok, out_tok, cost);
}

void ifq_usage_key(char *out, size_t size, const char *prefix, const char *day, const char *kind,
                   const char *name, const char *model)
{
    if (model)
        snprintf(out, size, "%s:usage:%s:%s:%s:model:%s", prefix, day, kind, name, model);
    else
        snprintf(out, size, "%s:usage:%s:%s:%s", prefix, day, kind, name);
}

void ifq_usage_add(ifq_state_t *st, const char *key, int64_t in_tok, int64_t out_tok, double cost)
{
    ifq_usage_add_n(st, key, 1, in_tok, out_tok, cost);
}

void ifq_usage_add_n(ifq_state_t *st, const char *key, int64_t requests, int64_t in_tok,
                     int64_t out_tok, double cost)
{
    char n_s[24], in_s[24], out_s[24], cost_s[32];
    snprintf(n_s, sizeof(n_s), "%lld", (long long)requests);
    snprintf(in_s, sizeof(in_s), "%lld", (long long)in_tok);
    snprintf(out_s, sizeof(out_s), "%lld", (long long)out_tok);
    snprintf(cost_s, sizeof(cost_s), "%.9f", cost);
    const char *c1[] = {"HINCRBY", key, "requests", n_s};
    const char *c2[] = {"HINCRBY", key, "input_tokens", in_s};
    const char *c3[] = {"HINCRBY", key, "output_tokens", out_s};
    const char *c4[] = {"HINCRBYFLOAT", key, "cost_usd", cost_s};
    const char *c5[] = {"EXPIRE", key, "3456000"}; /* 40 days */
    ifq_state_queue_cmd(st, 4, c1);
    ifq_state_queue_cmd(st, 4, c2);
    ifq_state_queue_cmd(st, 4, c3);
    ifq_state_queue_cmd(st, 4, c4);
    ifq_state_queue_cmd(st, 3, c5);
}

int ifq_cache_key(const ifq_config_t *cfg, const char *team, const json_t *request, char out[65])
{
    if (!cfg->cache_enabled)
        return -1;
    const json_t *body = json_object_get(request, "body");
    const char *opt =
        json_string_value(json_object_get(json_object_get(request, "metadata"), "cache"));
    if (opt && strcmp(opt, "false") == 0)
        return -1;
    json_t *temp = json_object_get(body, "temperature");
    int deterministic = json_is_number(temp) && json_number_value(temp) == 0.0;
    if (!deterministic && !(opt && strcmp(opt, "true") == 0))
        return -1;
    json_t *n = json_object_get(body, "n");
    if ((n && json_integer_value(n) != 1) || json_is_true(json_object_get(body, "stream")))
        return -1;
    char *canon = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    if (!canon)
        return -1;
    const char *url = json_string_value(json_object_get(request, "url"));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char md[32];
    unsigned int mdlen = 0;
    const char *scope = cfg->cache_per_team && team ? team : "*";
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, scope, strlen(scope) + 1);
    EVP_DigestUpdate(ctx, url ? url : "", url ? strlen(url) + 1 : 1);
    EVP_DigestUpdate(ctx, canon, strlen(canon));
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    free(canon);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

static void cache_reply(void *opaque, const redisReply *r)
{
    json_t **out = opaque;
    *out = NULL;
    if (r && r->type == REDIS_REPLY_STRING) {
        json_error_t je;
        json_t *j = json_loadb(r->str, r->len, 0, &je);
        if (json_is_object(j))
            *out = j;
        else
            json_decref(j);
    }
}

void ifq_cache_lookup(ifq_state_t *st, const char *prefix, const char *key, json_t **out)
{
    char k[256];
    snprintf(k, sizeof(k), "%s:cache:%s", prefix, key);
    const char *argv[] = {"GET", k};
    *out = NULL;
    ifq_state_queue_cmd_cb(st, 2, argv, cache_reply, out);
}

void ifq_cache_store(ifq_state_t *st, const ifq_config_t *cfg, const char *key, const json_t *entry)
{
    char *v = json_dumps(entry, JSON_COMPACT);
    if (!v)
        return;
    if (strlen(v) <= cfg->cache_max_bytes) {
        char k[256], ttl[24];
        snprintf(k, sizeof(k), "%s:cache:%s", cfg->prefix, key);
        snprintf(ttl, sizeof(ttl), "%d", cfg->cache_ttl_s);
        const char *argv[] = {"SET", k, v, "EX", ttl};
        ifq_state_queue_cmd(st, 5, argv);
    }
    free(v);
}
