/*
 * state.c - request state in Redis via hiredis, pipelined.
 */
#include "state.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "redis_url.h"

#define STATE_MAX_QUEUE 100000
#define STATE_MAX_ARGS 32

/* Latency buckets (ms, upper bounds) and lifetime of the per-second stats
 * hashes; readers take the bucket bounds from the field names. */
#define IFQ_STATS_BUCKETS_LUA "100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000"
#define IFQ_STATS_TTL_S_LUA "900"

/* The state script. ARGV: id, state, rank, ttl, "<state>_ms", now, then
 * field/value pairs. A request's first arrival in a final state (rank 4)
 * also counts it in the per-second stats hash "<prefix>:stats:<epoch s>"
 * (the prefix is KEYS[1] up to ":req:"; prefixes never contain ':'): count
 * per final state, `n`, and when received_ms is known the latency
 * (final - received) as lat_count, lat_sum_ms and cumulative buckets
 * lat_le_<ms>. A repeated final transition of the same id is not counted
 * again. The hash lives 15 minutes: it feeds the dashboard's charts. */
static const char state_script[] =
    "local function stats(state, fin)\n"
    "  local pfx = string.match(KEYS[1], '^(.-):req:')\n"
    "  if not pfx or not fin then return end\n"
    "  local sk = pfx .. ':stats:' .. string.format('%d', math.floor(fin / 1000))\n"
    "  redis.call('HINCRBY', sk, state, 1)\n"
    "  redis.call('HINCRBY', sk, 'n', 1)\n"
    "  local rcv = tonumber(redis.call('HGET', KEYS[1], 'received_ms'))\n"
    "  if rcv then\n"
    "    local lat = fin - rcv\n"
    "    if lat < 0 then lat = 0 end\n"
    "    redis.call('HINCRBY', sk, 'lat_count', 1)\n"
    "    redis.call('HINCRBY', sk, 'lat_sum_ms', string.format('%d', lat))\n"
    "    for _, b in ipairs({" IFQ_STATS_BUCKETS_LUA "}) do\n"
    "      if lat <= b then redis.call('HINCRBY', sk, 'lat_le_' .. b, 1) end\n"
    "    end\n"
    "  end\n"
    "  redis.call('EXPIRE', sk, " IFQ_STATS_TTL_S_LUA ")\n"
    "end\n"
    "local cur = redis.call('HMGET', KEYS[1], 'id', 'rank')\n"
    "local rank = tonumber(ARGV[3])\n"
    "if cur[1] == ARGV[1] and cur[2] and tonumber(cur[2]) > rank then\n"
    "  for i = 5, #ARGV, 2 do redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i+1]) end\n"
    "else\n"
    "  if cur[1] and cur[1] ~= ARGV[1] then redis.call('DEL', KEYS[1]) end\n"
    "  local was_final = cur[1] == ARGV[1] and cur[2] and tonumber(cur[2]) >= 4\n"
    "  redis.call('HSET', KEYS[1], 'id', ARGV[1], 'state', ARGV[2], 'rank', rank,\n"
    "             unpack(ARGV, 5))\n"
    "  if rank == 4 and not was_final then stats(ARGV[2], tonumber(ARGV[6])) end\n"
    "end\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[4])\n"
    "return 1\n";

#define STATE_MAX_SCRIPTS 8

typedef struct {
    int argc;
    int is_script; /* 1 + index of the script whose sha is argv[1]; 0 for none */
    char *argv[STATE_MAX_ARGS];
    ifq_state_reply_cb on_reply;
    void *opaque;
} state_cmd_t;

typedef struct {
    const char *lua; /* static text, borrowed */
    char sha[41];
} state_script_t;

struct ifq_state {
    redisContext *rc;
    ifq_redis_url_t url;
    char prefix[IFQ_MAX_NAME];
    int ttl_s;
    state_script_t scripts[STATE_MAX_SCRIPTS]; /* [0] is the state script */
    int nscripts;
    state_cmd_t *queue;
    size_t nqueue, capqueue;
};

static const char *const state_names[] = {"received",  "held",   "routed",   "running",
                                          "succeeded", "failed", "rejected", "expired"};
static const int state_ranks[] = {1, 1, 2, 3, 4, 4, 4, 4};

int ifq_state_rank(const char *state)
{
    for (size_t i = 0; i < IFQ_ARRAY_LEN(state_names); i++)
        if (strcmp(state, state_names[i]) == 0)
            return state_ranks[i];
    return 0;
}

static int state_reconnect(ifq_state_t *st, char *errstr, size_t errstr_size)
{
    if (st->rc)
        redisFree(st->rc);
    st->rc = ifq_redis_url_connect(&st->url, 2000, errstr, errstr_size);
    if (!st->rc)
        return -1;
    if (st->nscripts == 0) {
        st->scripts[0].lua = state_script;
        st->nscripts = 1;
    }
    for (int i = 0; i < st->nscripts; i++) {
        redisReply *r = redisCommand(st->rc, "SCRIPT LOAD %s", st->scripts[i].lua);
        if (!r || r->type != REDIS_REPLY_STRING || r->len != 40) {
            snprintf(errstr, errstr_size, "redis SCRIPT LOAD failed: %s",
                     r && r->type == REDIS_REPLY_ERROR ? r->str : st->rc->errstr);
            if (r)
                freeReplyObject(r);
            return -1;
        }
        memcpy(st->scripts[i].sha, r->str, 40);
        st->scripts[i].sha[40] = '\0';
        freeReplyObject(r);
    }
    return 0;
}

ifq_state_t *ifq_state_connect(const char *url, const char *prefix, int ttl_s, char *errstr,
                               size_t errstr_size)
{
    ifq_state_t *st = calloc(1, sizeof(*st));
    if (!st) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    snprintf(st->prefix, sizeof(st->prefix), "%s", prefix);
    st->ttl_s = ttl_s;
    if (ifq_redis_url_parse(url, &st->url, errstr, errstr_size) != IFQ_OK ||
        state_reconnect(st, errstr, errstr_size) < 0) {
        ifq_state_destroy(st);
        return NULL;
    }
    return st;
}

static void cmd_free(state_cmd_t *c)
{
    if (c->on_reply) {
        c->on_reply(c->opaque, NULL); /* never sent: tell the caller */
        c->on_reply = NULL;
    }
    for (int i = 0; i < c->argc; i++)
        free(c->argv[i]);
    c->argc = 0;
}

void ifq_state_destroy(ifq_state_t *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->nqueue; i++)
        cmd_free(&st->queue[i]);
    free(st->queue);
    if (st->rc)
        redisFree(st->rc);
    free(st);
}

static char *key_for(const ifq_state_t *st, const char *custom_id)
{
    size_t n = strlen(st->prefix) + strlen(custom_id) + 8;
    char *k = malloc(n);
    if (k)
        snprintf(k, n, "%s:req:%s", st->prefix, custom_id);
    return k;
}

static state_cmd_t *queue_slot(ifq_state_t *st)
{
    if (st->nqueue >= STATE_MAX_QUEUE) {
        ifq_warn("state_queue_full", "dropping a state update; Redis is unreachable for long");
        return NULL;
    }
    if (st->nqueue == st->capqueue) {
        size_t cap = st->capqueue ? st->capqueue * 2 : 64;
        state_cmd_t *q = realloc(st->queue, cap * sizeof(*q));
        if (!q)
            return NULL;
        st->queue = q;
        st->capqueue = cap;
    }
    state_cmd_t *c = &st->queue[st->nqueue++];
    memset(c, 0, sizeof(*c));
    return c;
}

void ifq_state_queue(ifq_state_t *st, const char *custom_id, const char *id, const char *state,
                     const char *const *kv, size_t nkv)
{
    state_cmd_t *c = queue_slot(st);
    if (!c)
        return;
    c->is_script = 1;
    char rank[16], ttl[16], ts_field[32], now[24];
    snprintf(rank, sizeof(rank), "%d", ifq_state_rank(state));
    snprintf(ttl, sizeof(ttl), "%d", st->ttl_s);
    snprintf(ts_field, sizeof(ts_field), "%s_ms", state);
    snprintf(now, sizeof(now), "%lld", (long long)ifq_now_ms());
    const char *fixed[] = {"EVALSHA", st->scripts[0].sha, "1", custom_id, id, state, rank,
                           ttl,       ts_field,           now};
    for (size_t i = 0; i < IFQ_ARRAY_LEN(fixed); i++)
        c->argv[c->argc++] = i == 3 ? key_for(st, custom_id) : strdup(fixed[i]);
    for (size_t i = 0; i + 1 < nkv && c->argc + 2 <= STATE_MAX_ARGS; i += 2) {
        c->argv[c->argc++] = strdup(kv[i]);
        c->argv[c->argc++] = strdup(kv[i + 1] ? kv[i + 1] : "");
    }
}

void ifq_state_queue_cmd(ifq_state_t *st, int argc, const char *const *argv)
{
    ifq_state_queue_cmd_cb(st, argc, argv, NULL, NULL);
}

void ifq_state_queue_cmd_cb(ifq_state_t *st, int argc, const char *const *argv,
                            ifq_state_reply_cb cb, void *opaque)
{
    state_cmd_t *c = argc > 0 && argc <= STATE_MAX_ARGS ? queue_slot(st) : NULL;
    if (!c) {
        if (cb)
            cb(opaque, NULL);
        return;
    }
    for (int i = 0; i < argc; i++)
        c->argv[c->argc++] = strdup(argv[i]);
    c->on_reply = cb;
    c->opaque = opaque;
}

int ifq_state_script(ifq_state_t *st, const char *lua, char *errstr, size_t errstr_size)
{
    if (st->nscripts >= STATE_MAX_SCRIPTS) {
        snprintf(errstr, errstr_size, "too many Redis scripts");
        return -1;
    }
    st->scripts[st->nscripts++].lua = lua;
    if (state_reconnect(st, errstr, errstr_size) < 0)
        return -1;
    return st->nscripts - 1;
}

void ifq_state_queue_eval(ifq_state_t *st, int script, int argc, const char *const *argv,
                          ifq_state_reply_cb cb, void *opaque)
{
    state_cmd_t *c = argc + 2 <= STATE_MAX_ARGS ? queue_slot(st) : NULL;
    if (!c) {
        if (cb)
            cb(opaque, NULL);
        return;
    }
    c->is_script = script + 1;
    c->argv[c->argc++] = strdup("EVALSHA");
    c->argv[c->argc++] = strdup(st->scripts[script].sha);
    for (int i = 0; i < argc; i++)
        c->argv[c->argc++] = strdup(argv[i]);
    c->on_reply = cb;
    c->opaque = opaque;
}

const char *ifq_state_prefix(const ifq_state_t *st)
{
    return st->prefix;
}

size_t ifq_state_pending(const ifq_state_t *st)
{
    return st->nqueue;
}

static int flush_once(ifq_state_t *st, int *noscript)
{
    *noscript = 0;
    for (size_t i = 0; i < st->nqueue; i++) {
        state_cmd_t *c = &st->queue[i];
        if (c->is_script) {
            free(c->argv[1]);
            c->argv[1] = strdup(st->scripts[c->is_script - 1].sha);
        }
        redisAppendCommandArgv(st->rc, c->argc, (const char **)c->argv, NULL);
    }
    int ok = 1;
    for (size_t i = 0; i < st->nqueue; i++) {
        redisReply *r = NULL;
        if (redisGetReply(st->rc, (void **)&r) != REDIS_OK) {
            return -1;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            if (strncmp(r->str, "NOSCRIPT", 8) == 0)
                *noscript = 1;
            else
                ifq_warn("state_update_failed", "%s", r->str);
            ok = 0;
        }
        state_cmd_t *c = &st->queue[i];
        if (c->on_reply && !(*noscript)) {
            c->on_reply(c->opaque, r);
            c->on_reply = NULL; /* once, even if the batch is resent */
        }
        freeReplyObject(r);
    }
    return ok ? 0 : (*noscript ? -1 : 0);
}

int ifq_state_flush(ifq_state_t *st, char *errstr, size_t errstr_size)
{
    if (st->nqueue == 0)
        return IFQ_OK;
    for (int attempt = 0; attempt < 2; attempt++) {
        int noscript = 0;
        if (st->rc && !st->rc->err && flush_once(st, &noscript) == 0) {
            for (size_t i = 0; i < st->nqueue; i++)
                cmd_free(&st->queue[i]);
            st->nqueue = 0;
            return IFQ_OK;
        }
        /* The connection broke or the server lost our script (restart):
         * reconnect, which reloads it, and resend; updates are idempotent. */
        if (state_reconnect(st, errstr, errstr_size) < 0)
            return IFQ_ERR_IO;
    }
    snprintf(errstr, errstr_size, "redis: state updates failed twice");
    return IFQ_ERR_IO;
}

json_t *ifq_state_get(ifq_state_t *st, const char *custom_id, int *err)
{
    char *key = key_for(st, custom_id);
    redisReply *r = st->rc ? redisCommand(st->rc, "HGETALL %s", key) : NULL;
    free(key);
    if (!r) {
        char why[256];
        *err = IFQ_ERR_IO;
        state_reconnect(st, why, sizeof(why));
        return NULL;
    }
    json_t *obj = NULL;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        obj = json_object();
        json_object_set_new(obj, "custom_id", json_string(custom_id));
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
            const char *k = r->element[i]->str;
            const char *v = r->element[i + 1]->str;
            if (!k || !v || strcmp(k, "rank") == 0)
                continue;
            int64_t n;
            if (strlen(k) > 3 && strcmp(k + strlen(k) - 3, "_ms") == 0 &&
                ifq_parse_i64(v, &n) == IFQ_OK)
                json_object_set_new(obj, k, json_integer(n));
            else
                json_object_set_new(obj, k, json_string(v));
        }
        *err = IFQ_OK;
    } else {
        *err = r->type == REDIS_REPLY_ERROR ? IFQ_ERR_IO : IFQ_ERR_NOTFOUND;
    }
    freeReplyObject(r);
    return obj;
}

int ifq_state_final_many(ifq_state_t *st, size_t n, const char *const *custom_ids,
                         const char *const *ids, int *done)
{
    memset(done, 0, n * sizeof(*done));
    if (!st->rc)
        return IFQ_ERR_IO;
    for (size_t i = 0; i < n; i++) {
        char *key = key_for(st, custom_ids[i]);
        redisAppendCommand(st->rc, "HMGET %s id rank", key);
        free(key);
    }
    int rc = IFQ_OK;
    for (size_t i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(st->rc, (void **)&r) != REDIS_OK) {
            char why[256];
            memset(done, 0, n * sizeof(*done));
            state_reconnect(st, why, sizeof(why));
            return IFQ_ERR_IO;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->str &&
            r->element[1]->str && strcmp(r->element[0]->str, ids[i]) == 0 &&
            strcmp(r->element[1]->str, "4") == 0)
            done[i] = 1;
        freeReplyObject(r);
    }
    return rc;
}

int ifq_state_ping(ifq_state_t *st)
{
    if (!st->rc)
        return 0;
    redisReply *r = redisCommand(st->rc, "PING");
    int ok = r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    return ok;
}

int ifq_state_read_health(ifq_state_t *st, const ifq_config_t *cfg, ifq_health_t *out)
{
    if (!st->rc)
        return IFQ_ERR_IO;
    for (size_t i = 0; i < cfg->n_deployments; i++) {
        char k[IFQ_MAX_NAME * 3];
        snprintf(k, sizeof(k), "%s:circuit:%s", st->prefix, cfg->deployments[i].name);
        redisAppendCommand(st->rc, "HMGET %s state updated_ms", k);
        snprintf(k, sizeof(k), "%s:inflight:%s", st->prefix, cfg->deployments[i].name);
        redisAppendCommand(st->rc, "HVALS %s", k);
    }
    int64_t now = ifq_now_ms();
    for (size_t i = 0; i < cfg->n_deployments; i++) {
        ifq_dep_health_t *h = i < out->n ? &out->deps[i] : NULL;
        for (int part = 0; part < 2; part++) {
            redisReply *r = NULL;
            if (redisGetReply(st->rc, (void **)&r) != REDIS_OK) {
                char why[256];
                state_reconnect(st, why, sizeof(why));
                return IFQ_ERR_IO;
            }
            if (h && part == 0 && r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
                const char *state = r->element[0]->str;
                h->circuit_open = !state                            ? 0
                                  : strcmp(state, "open") == 0      ? 1
                                  : strcmp(state, "half_open") == 0 ? 2
                                                                    : 0;
                int64_t t = 0;
                if (r->element[1]->str)
                    ifq_parse_i64(r->element[1]->str, &t);
                h->circuit_changed_ms = t;
                /* An open circuit nobody refreshed for longer than the open
                 * period has half-opened by now. */
                if (h->circuit_open == 1 && now - t > cfg->circuit_open_ms)
                    h->circuit_open = 2;
            } else if (h && part == 1 && r->type == REDIS_REPLY_ARRAY) {
                /* Each worker writes "<count> <epoch ms>"; reports older
                 * than 10 s are from workers that are gone. */
                int sum = 0, fresh = 0;
                for (size_t k = 0; k < r->elements; k++) {
                    long long cnt = 0, ts = 0;
                    if (r->element[k]->str &&
                        sscanf(r->element[k]->str, "%lld %lld", &cnt, &ts) == 2 &&
                        now - ts < 10000) {
                        sum += (int)cnt;
                        fresh++;
                    }
                }
                h->inflight = fresh ? sum : -1;
            }
            freeReplyObject(r);
        }
    }
    return IFQ_OK;
}
