/*
 * state.c - request state in Redis via hiredis, pipelined.
 *
 * Updates are encoded (RESP) as they are queued and sent in one pipelined
 * round trip per flush: on the caller's connection (synchronous), or, after
 * ifq_state_async_start, by a writer thread with its own connection, so the
 * caller only hands the queue over (see state.h for the guarantees).
 */
#include "state.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"
#include "redis_url.h"

#define STATE_MAX_QUEUE 100000
#define STATE_MAX_ARGS 32
/* Most request updates in one EVALSHA of the state script: Redis runs a
 * script without serving anyone else (~10 us per update). */
#define STATE_GROUP_MAX 128

/* Latency buckets (ms, upper bounds) and lifetime of the per-second stats
 * hashes; readers take the bucket bounds from the field names. */
#define IFQ_STATS_BUCKETS_LUA "100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000"
#define IFQ_STATS_TTL_S_LUA "900"

/* The state script: applies several requests' updates in one EVALSHA
 * (one Lua call per request cost Redis more than the updates themselves).
 * KEYS: the request hashes; ARGV[1]: the TTL; then for each key in order:
 * id, state, rank, npairs, then npairs field/value pairs, the first being
 * "<state>_ms"/now. Per request, a state never moves backwards: a lower
 * rank of the same id only fills fields it lacks. A request's first arrival
 * in a final state (rank 4) also counts it in the per-second stats hash
 * "<prefix>:stats:<epoch s>" (the prefix is the key up to ":req:"; prefixes
 * never contain ':'): count per final state, `n`, and when received_ms is
 * known the latency (final - received) as lat_count, lat_sum_ms and
 * cumulative buckets lat_le_<ms>. A repeated final transition of the same
 * id is not counted again. The counts of the whole call are summed first
 * and written with one HINCRBY per field. The hash lives 15 minutes: it
 * feeds the dashboard's charts. One request's failure (e.g. its key is not
 * a hash) does not stop the others: the reply is then an error naming how
 * many failed. */
static const char state_script[] =
    "local ttl = ARGV[1]\n"
    "local sums, sks = {}, {}\n"
    "local function add(sk, f, n)\n"
    "  local t = sums[sk]\n"
    "  if not t then t = {}; sums[sk] = t; sks[#sks + 1] = sk end\n"
    "  t[f] = (t[f] or 0) + n\n"
    "end\n"
    "local function stats(key, state, fin)\n"
    "  local pfx = string.match(key, '^(.-):req:')\n"
    "  if not pfx or not fin then return end\n"
    "  local sk = pfx .. ':stats:' .. string.format('%d', math.floor(fin / 1000))\n"
    "  add(sk, state, 1)\n"
    "  add(sk, 'n', 1)\n"
    "  local rcv = tonumber(redis.call('HGET', key, 'received_ms'))\n"
    "  if rcv then\n"
    "    local lat = fin - rcv\n"
    "    if lat < 0 then lat = 0 end\n"
    "    add(sk, 'lat_count', 1)\n"
    "    add(sk, 'lat_sum_ms', lat)\n"
    "    for _, b in ipairs({" IFQ_STATS_BUCKETS_LUA "}) do\n"
    "      if lat <= b then add(sk, 'lat_le_' .. b, 1) end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local function apply(key, a, last)\n"
    "  local id, rank = ARGV[a], tonumber(ARGV[a + 2])\n"
    "  local cur = redis.call('HMGET', key, 'id', 'rank')\n"
    "  if cur[1] == id and cur[2] and tonumber(cur[2]) > rank then\n"
    "    for i = a + 4, last, 2 do redis.call('HSETNX', key, ARGV[i], ARGV[i + 1]) end\n"
    "  else\n"
    "    if cur[1] and cur[1] ~= id then redis.call('DEL', key) end\n"
    "    local was_final = cur[1] == id and cur[2] and tonumber(cur[2]) >= 4\n"
    "    redis.call('HSET', key, 'id', id, 'state', ARGV[a + 1], 'rank', rank,\n"
    "               unpack(ARGV, a + 4, last))\n"
    "    if rank == 4 and not was_final then stats(key, ARGV[a + 1], tonumber(ARGV[a + 5])) end\n"
    "  end\n"
    "  redis.call('EXPIRE', key, ttl)\n"
    "end\n"
    "local a, errs, first = 2, 0, nil\n"
    "for k = 1, #KEYS do\n"
    "  local last = a + 3 + 2 * tonumber(ARGV[a + 3])\n"
    "  local ok, err = pcall(apply, KEYS[k], a, last)\n"
    "  if not ok then errs = errs + 1; first = first or err end\n"
    "  a = last + 1\n"
    "end\n"
    "for _, sk in ipairs(sks) do\n"
    "  for f, n in pairs(sums[sk]) do redis.call('HINCRBY', sk, f, string.format('%d', n)) end\n"
    "  redis.call('EXPIRE', sk, " IFQ_STATS_TTL_S_LUA ")\n"
    "end\n"
    "if errs > 0 then\n"
    "  if type(first) == 'table' then first = first.err end\n"
    "  return redis.error_reply(errs .. ' of ' .. #KEYS .. ' state updates failed: ' ..\n"
    "                           tostring(first))\n"
    "end\n"
    "return #KEYS\n";

#define STATE_MAX_SCRIPTS 8
/* Most commands the writer thread holds (handed off, not yet answered).
 * Beyond it the caller's queue keeps them (up to STATE_MAX_QUEUE more). */
#define STATE_WRITER_MAX 100000
/* The writer's connect and reply timeout: a reply that takes longer means
 * the connection is broken (it is then reopened and the rest resent). */
#define STATE_WRITER_TIMEOUT_MS 5000

/* A queued command: its RESP encoding is bytes [off, off + len) of its
 * queue's buffer. Commands are encoded when queued, so a flush (or the
 * writer thread) only copies bytes to a socket. */
typedef struct {
    size_t off, len;
    size_t updates; /* what it counts for in the caps: 1, or a group's size */
    ifq_state_reply_cb on_reply;
    void *opaque;
} state_cmd_t;

/* Commands in FIFO order. */
typedef struct {
    char *out; /* the commands' RESP text, back to back */
    size_t out_len, out_cap;
    state_cmd_t *cmds;
    size_t n, cap;
    size_t updates; /* sum of cmds[].updates */
    int has_cb;     /* some command has a reply callback */
} state_queue_t;

/* Request state updates that become one EVALSHA of the state script at the
 * next flush (or at STATE_GROUP_MAX): RESP bulk strings of the keys and of
 * the arguments after ARGV[1]. */
typedef struct {
    char *keys, *args;
    size_t keys_len, keys_cap, args_len, args_cap;
    int n;     /* requests */
    int nargs; /* bulk strings in args */
} state_group_t;

typedef struct {
    const char *lua; /* static text, borrowed */
    char sha[41];
} state_script_t;

/* One hand-off to the writer thread: a queue without callbacks. */
typedef struct state_batch {
    struct state_batch *next;
    state_queue_t q;
} state_batch_t;

/* The writer thread and what it shares with the caller's thread. Fields
 * marked (mu) are read and written under mu only; the rest belong to the
 * writer thread. */
typedef struct {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;        /* to the writer: a batch, stop or abort (mu) */
    pthread_cond_t done;        /* to waiters: done_seq moved (mu) */
    state_batch_t *head, *tail; /* handed off, not yet taken (mu) */
    size_t backlog;             /* commands handed off and not finished (mu) */
    uint64_t sent_seq;          /* batches handed off (mu) */
    uint64_t done_seq;          /* batches finished: answered or given up (mu) */
    int stop;                   /* exit once nothing is left (mu) */
    int abort;                  /* give up what is left and exit (mu) */
    int fd;                     /* rc's socket or -1, for shutdown() by abort (mu) */
    unsigned long long lost;    /* commands given up (mu) */
    redisContext *rc;
    int64_t warn_ms; /* last rate-limited warning */
} state_writer_t;

struct ifq_state {
    redisContext *rc; /* the caller's connection: reads and synchronous flushes */
    ifq_redis_url_t url;
    char prefix[IFQ_MAX_NAME];
    int ttl_s;
    state_script_t scripts[STATE_MAX_SCRIPTS]; /* [0] is the state script */
    int nscripts;
    state_queue_t q;
    state_group_t g;
    unsigned long long dropped; /* updates dropped at the queue's cap */
    int64_t drop_warn_ms;
    state_writer_t *writer; /* NULL: flushes are synchronous */
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

/* SCRIPT LOADs the n scripts on rc; with store, records their SHA1s. */
static int scripts_load(redisContext *rc, state_script_t *scripts, int n, int store, char *errstr,
                        size_t errstr_size)
{
    for (int i = 0; i < n; i++) {
        redisReply *r = redisCommand(rc, "SCRIPT LOAD %s", scripts[i].lua);
        if (!r || r->type != REDIS_REPLY_STRING || r->len != 40) {
            snprintf(errstr, errstr_size, "redis SCRIPT LOAD failed: %s",
                     r && r->type == REDIS_REPLY_ERROR ? r->str : rc->errstr);
            if (r)
                freeReplyObject(r);
            return -1;
        }
        if (store) {
            memcpy(scripts[i].sha, r->str, 40);
            scripts[i].sha[40] = '\0';
        }
        freeReplyObject(r);
    }
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
    return scripts_load(st->rc, st->scripts, st->nscripts, 1, errstr, errstr_size);
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

/* ---- the queue ------------------------------------------------------------ */

/* Empties q; commands with a callback are told they were never sent. */
static void queue_reset(state_queue_t *q)
{
    for (size_t i = 0; i < q->n; i++)
        if (q->cmds[i].on_reply)
            q->cmds[i].on_reply(q->cmds[i].opaque, NULL);
    q->n = 0;
    q->out_len = 0;
    q->updates = 0;
    q->has_cb = 0;
}

static void queue_free(state_queue_t *q)
{
    queue_reset(q);
    free(q->out);
    free(q->cmds);
    memset(q, 0, sizeof(*q));
}

static int queue_reserve(state_queue_t *q, size_t bytes)
{
    if (q->out_len + bytes > q->out_cap) {
        size_t cap = q->out_cap ? q->out_cap : 8192;
        while (cap < q->out_len + bytes)
            cap *= 2;
        char *p = realloc(q->out, cap);
        if (!p)
            return -1;
        q->out = p;
        q->out_cap = cap;
    }
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        state_cmd_t *c = realloc(q->cmds, cap * sizeof(*c));
        if (!c)
            return -1;
        q->cmds = c;
        q->cap = cap;
    }
    return 0;
}

static void queue_put_bytes(state_queue_t *q, const void *p, size_t n)
{
    memcpy(q->out + q->out_len, p, n);
    q->out_len += n;
}

/* Counts n dropped updates; warns at most once a second. */
static void queue_dropped(ifq_state_t *st, size_t n)
{
    st->dropped += n;
    int64_t now = ifq_mono_ms();
    if (now - st->drop_warn_ms >= 1000) {
        st->drop_warn_ms = now;
        ifq_warn("state_queue_full",
                 "dropping state updates; Redis is unreachable or too slow (%llu dropped so far)",
                 st->dropped);
    }
}

/* Starts a command of at most bytes bytes that counts for updates; NULL
 * when it is dropped (queue full, out of memory). End it with queue_end. */
static state_cmd_t *queue_begin(ifq_state_t *st, size_t bytes, size_t updates)
{
    state_queue_t *q = &st->q;
    if (q->updates + updates > STATE_MAX_QUEUE || queue_reserve(q, bytes) < 0) {
        queue_dropped(st, updates);
        return NULL;
    }
    state_cmd_t *c = &q->cmds[q->n++];
    memset(c, 0, sizeof(*c));
    c->off = q->out_len;
    c->updates = updates;
    q->updates += updates;
    return c;
}

static void queue_end(state_queue_t *q, state_cmd_t *c)
{
    c->len = q->out_len - c->off;
}

static void queue_bulk(state_queue_t *q, const char *s, size_t n)
{
    char hdr[32];
    int h = snprintf(hdr, sizeof(hdr), "$%zu\r\n", n);
    queue_put_bytes(q, hdr, (size_t)h);
    queue_put_bytes(q, s, n);
    queue_put_bytes(q, "\r\n", 2);
}

static void queue_header(state_queue_t *q, int argc)
{
    char hdr[32];
    int h = snprintf(hdr, sizeof(hdr), "*%d\r\n", argc);
    queue_put_bytes(q, hdr, (size_t)h);
}

static void group_emit(ifq_state_t *st);

/* Appends one command (argv[i] of lens[i] bytes) in RESP. Returns 0, or -1
 * when it was dropped (queue full, out of memory; cb is then not called). */
static int queue_put(ifq_state_t *st, int argc, const char *const *argv, const size_t *lens,
                     ifq_state_reply_cb cb, void *opaque)
{
    /* A caller that reads a reply may read what it wrote: grouped state
     * updates go first. */
    if (cb)
        group_emit(st);
    size_t need = 16;
    for (int i = 0; i < argc; i++)
        need += lens[i] + 24;
    state_cmd_t *c = queue_begin(st, need, 1);
    if (!c)
        return -1;
    c->on_reply = cb;
    c->opaque = opaque;
    st->q.has_cb |= cb != NULL;
    queue_header(&st->q, argc);
    for (int i = 0; i < argc; i++)
        queue_bulk(&st->q, argv[i], lens[i]);
    queue_end(&st->q, c);
    return 0;
}

static int queue_put_argv(ifq_state_t *st, int argc, const char *const *argv, ifq_state_reply_cb cb,
                          void *opaque)
{
    size_t lens[STATE_MAX_ARGS];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return queue_put(st, argc, argv, lens, cb, opaque);
}

static char *key_for(const ifq_state_t *st, const char *custom_id)
{
    size_t n = strlen(st->prefix) + strlen(custom_id) + 8;
    char *k = malloc(n);
    if (k)
        snprintf(k, n, "%s:req:%s", st->prefix, custom_id);
    return k;
}

/* Appends a RESP bulk string to a growable buffer; -1 when out of memory. */
static int bulk_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 24 > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < *len + n + 24)
            c *= 2;
        char *p = realloc(*buf, c);
        if (!p)
            return -1;
        *buf = p;
        *cap = c;
    }
    *len += (size_t)snprintf(*buf + *len, 24, "$%zu\r\n", n);
    memcpy(*buf + *len, s, n);
    memcpy(*buf + *len + n, "\r\n", 2);
    *len += n + 2;
    return 0;
}

/* Turns the group into one EVALSHA of the state script in the queue. */
static void group_emit(ifq_state_t *st)
{
    state_group_t *g = &st->g;
    if (g->n == 0)
        return;
    char nkeys[16], ttl[16];
    snprintf(nkeys, sizeof(nkeys), "%d", g->n);
    snprintf(ttl, sizeof(ttl), "%d", st->ttl_s);
    state_cmd_t *c = queue_begin(st, 256 + g->keys_len + g->args_len, (size_t)g->n);
    if (c) {
        state_queue_t *q = &st->q;
        queue_header(q, 3 + g->n + 1 + g->nargs);
        queue_bulk(q, "EVALSHA", 7);
        queue_bulk(q, st->scripts[0].sha, 40);
        queue_bulk(q, nkeys, strlen(nkeys));
        queue_put_bytes(q, g->keys, g->keys_len);
        queue_bulk(q, ttl, strlen(ttl));
        queue_put_bytes(q, g->args, g->args_len);
        queue_end(q, c);
    }
    g->n = g->nargs = 0;
    g->keys_len = g->args_len = 0;
}

static void group_free(state_group_t *g)
{
    free(g->keys);
    free(g->args);
    memset(g, 0, sizeof(*g));
}

void ifq_state_queue(ifq_state_t *st, const char *custom_id, const char *id, const char *state,
                     const char *const *kv, size_t nkv)
{
    state_group_t *g = &st->g;
    if (st->q.updates + (size_t)g->n >= STATE_MAX_QUEUE) {
        queue_dropped(st, 1);
        return;
    }
    char rank[16], ts_field[32], now[24], npairs[16], key_buf[256];
    snprintf(rank, sizeof(rank), "%d", ifq_state_rank(state));
    snprintf(ts_field, sizeof(ts_field), "%s_ms", state);
    snprintf(now, sizeof(now), "%lld", (long long)ifq_now_ms());
    char *key_heap = NULL;
    const char *key = key_buf;
    if (snprintf(key_buf, sizeof(key_buf), "%s:req:%s", st->prefix, custom_id) >=
        (int)sizeof(key_buf)) {
        key = key_heap = key_for(st, custom_id);
        if (!key)
            return;
    }
    /* At most as many fields as one command of STATE_MAX_ARGS had. */
    size_t pairs = nkv / 2 < (STATE_MAX_ARGS - 10) / 2 ? nkv / 2 : (STATE_MAX_ARGS - 10) / 2;
    snprintf(npairs, sizeof(npairs), "%zu", pairs + 1);
    const char *argv[STATE_MAX_ARGS] = {id, state, rank, npairs, ts_field, now};
    int argc = 6;
    for (size_t i = 0; i < pairs; i++) {
        argv[argc++] = kv[2 * i];
        argv[argc++] = kv[2 * i + 1] ? kv[2 * i + 1] : "";
    }
    size_t keys_len = g->keys_len, args_len = g->args_len;
    int ok = bulk_append(&g->keys, &g->keys_len, &g->keys_cap, key, strlen(key)) == 0;
    for (int i = 0; i < argc && ok; i++)
        ok = bulk_append(&g->args, &g->args_len, &g->args_cap, argv[i], strlen(argv[i])) == 0;
    free(key_heap);
    if (!ok) {
        g->keys_len = keys_len; /* out of memory: this update is not half there */
        g->args_len = args_len;
        queue_dropped(st, 1);
        return;
    }
    g->n++;
    g->nargs += argc;
    if (g->n >= STATE_GROUP_MAX)
        group_emit(st);
}

void ifq_state_queue_cmd(ifq_state_t *st, int argc, const char *const *argv)
{
    ifq_state_queue_cmd_cb(st, argc, argv, NULL, NULL);
}

void ifq_state_queue_cmd_cb(ifq_state_t *st, int argc, const char *const *argv,
                            ifq_state_reply_cb cb, void *opaque)
{
    if (argc <= 0 || argc > STATE_MAX_ARGS || queue_put_argv(st, argc, argv, cb, opaque) < 0) {
        if (cb)
            cb(opaque, NULL);
    }
}

int ifq_state_script(ifq_state_t *st, const char *lua, char *errstr, size_t errstr_size)
{
    if (st->writer) {
        snprintf(errstr, errstr_size, "scripts are registered before ifq_state_async_start");
        return -1;
    }
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
    const char *all[STATE_MAX_ARGS];
    if (argc < 0 || argc + 2 > STATE_MAX_ARGS || script < 0 || script >= st->nscripts) {
        if (cb)
            cb(opaque, NULL);
        return;
    }
    all[0] = "EVALSHA";
    all[1] = st->scripts[script].sha;
    for (int i = 0; i < argc; i++)
        all[2 + i] = argv[i];
    if (queue_put_argv(st, argc + 2, all, cb, opaque) < 0 && cb)
        cb(opaque, NULL);
}

const char *ifq_state_prefix(const ifq_state_t *st)
{
    return st->prefix;
}

size_t ifq_state_pending(const ifq_state_t *st)
{
    return st->q.n + (size_t)st->g.n;
}

/* ---- synchronous flush ---------------------------------------------------- */

static int flush_once(ifq_state_t *st, int *noscript)
{
    *noscript = 0;
    state_queue_t *q = &st->q;
    /* A script's SHA1 is that of its text, so a reload after a Redis
     * restart gives the same one: the encoded commands stay valid. */
    if (redisAppendFormattedCommand(st->rc, q->out, q->out_len) != REDIS_OK)
        return -1;
    int ok = 1;
    for (size_t i = 0; i < q->n; i++) {
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
        state_cmd_t *c = &q->cmds[i];
        if (c->on_reply && !(*noscript)) {
            c->on_reply(c->opaque, r);
            c->on_reply = NULL; /* once, even if the batch is resent */
        }
        freeReplyObject(r);
    }
    return ok ? 0 : (*noscript ? -1 : 0);
}

static int flush_sync(ifq_state_t *st, char *errstr, size_t errstr_size)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int noscript = 0;
        if (st->rc && !st->rc->err && flush_once(st, &noscript) == 0) {
            queue_reset(&st->q);
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

/* ---- the writer thread ---------------------------------------------------- */

/* Why a thread and not hiredis's async API on the caller's event loop: the
 * worker's loop would still parse every reply and run the callbacks, and
 * hiredis 0.14's async context has no adapter for our epoll set; a thread
 * with its own blocking connection keeps the code the same as the
 * synchronous path and moves the whole round trip (write, Redis's
 * execution of hundreds of Lua calls, reply parsing) off the loop. */

static void writer_warn(state_writer_t *w, const char *why)
{
    int64_t now = ifq_mono_ms();
    if (now - w->warn_ms >= 1000) {
        w->warn_ms = now;
        ifq_warn("state_flush_failed", "%s (state updates are kept and resent)", why);
    }
}

static void writer_disconnect(state_writer_t *w)
{
    pthread_mutex_lock(&w->mu);
    w->fd = -1;
    pthread_mutex_unlock(&w->mu);
    if (w->rc)
        redisFree(w->rc);
    w->rc = NULL;
}

static int writer_connect(ifq_state_t *st, state_writer_t *w)
{
    char why[256];
    redisContext *rc = ifq_redis_url_connect(&st->url, STATE_WRITER_TIMEOUT_MS, why, sizeof(why));
    /* Only the texts are read (the caller no longer registers scripts). */
    if (rc && scripts_load(rc, st->scripts, st->nscripts, 0, why, sizeof(why)) < 0) {
        redisFree(rc);
        rc = NULL;
    }
    if (!rc) {
        writer_warn(w, why);
        return -1;
    }
    pthread_mutex_lock(&w->mu);
    int aborted = w->abort;
    if (!aborted)
        w->fd = rc->fd;
    pthread_mutex_unlock(&w->mu);
    if (aborted) {
        redisFree(rc);
        return -1;
    }
    w->rc = rc;
    return 0;
}

/* CLOCK_MONOTONIC ms from now, for pthread_cond_timedwait on the writer's
 * condition (created with that clock). */
static struct timespec deadline_in(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Sleeps up to ms unless aborted; returns 1 when aborted. */
static int writer_backoff(state_writer_t *w, int ms)
{
    struct timespec ts = deadline_in(ms);
    pthread_mutex_lock(&w->mu);
    while (!w->abort && pthread_cond_timedwait(&w->wake, &w->mu, &ts) == 0)
        ;
    int aborted = w->abort;
    pthread_mutex_unlock(&w->mu);
    return aborted;
}

/* Resends commands that found their script missing (Redis restarted
 * between our SCRIPT LOAD and them) once, after loading the scripts. */
/* The updates that commands [from, n) of q count for. */
static size_t queue_updates_from(const state_queue_t *q, size_t from)
{
    size_t n = 0;
    for (size_t i = from; i < q->n; i++)
        n += q->cmds[i].updates;
    return n;
}

static size_t writer_resend(ifq_state_t *st, state_writer_t *w, const state_queue_t *rq)
{
    char why[256];
    if (scripts_load(w->rc, st->scripts, st->nscripts, 0, why, sizeof(why)) < 0 ||
        redisAppendFormattedCommand(w->rc, rq->out, rq->out_len) != REDIS_OK) {
        writer_warn(w, why);
        writer_disconnect(w);
        return queue_updates_from(rq, 0);
    }
    for (size_t i = 0; i < rq->n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(w->rc, (void **)&r) != REDIS_OK) {
            writer_warn(w, w->rc->errstr);
            writer_disconnect(w);
            return queue_updates_from(rq, i);
        }
        if (r->type == REDIS_REPLY_ERROR)
            ifq_warn("state_update_failed", "%s", r->str);
        freeReplyObject(r);
    }
    return 0;
}

/* Pipelines the batches from command i of b on; returns 0 when every one
 * was answered, else -1 with (*b, *i) at the first unanswered command. */
static int writer_pipeline(ifq_state_t *st, state_writer_t *w, state_batch_t **b, size_t *i,
                           size_t *lost)
{
    size_t from = (*b)->q.cmds[*i].off;
    int ok =
        redisAppendFormattedCommand(w->rc, (*b)->q.out + from, (*b)->q.out_len - from) == REDIS_OK;
    for (state_batch_t *o = (*b)->next; o && ok; o = o->next)
        ok = redisAppendFormattedCommand(w->rc, o->q.out, o->q.out_len) == REDIS_OK;
    if (!ok) {
        writer_warn(w, "out of memory");
        writer_disconnect(w);
        return -1;
    }
    state_queue_t retry = {0};
    while (*b) {
        redisReply *r = NULL;
        if (redisGetReply(w->rc, (void **)&r) != REDIS_OK) {
            writer_warn(w, w->rc->errstr);
            writer_disconnect(w);
            queue_free(&retry);
            return -1;
        }
        const state_cmd_t *c = &(*b)->q.cmds[*i];
        if (r->type == REDIS_REPLY_ERROR) {
            if (strncmp(r->str, "NOSCRIPT", 8) == 0 && queue_reserve(&retry, c->len) == 0) {
                retry.cmds[retry.n++] =
                    (state_cmd_t){.off = retry.out_len, .len = c->len, .updates = c->updates};
                queue_put_bytes(&retry, (*b)->q.out + c->off, c->len);
            } else {
                ifq_warn("state_update_failed", "%s", r->str);
            }
        }
        freeReplyObject(r);
        if (++*i == (*b)->q.n) {
            *b = (*b)->next;
            *i = 0;
        }
    }
    if (retry.n)
        *lost += writer_resend(st, w, &retry);
    queue_free(&retry);
    return 0;
}

/* Writes the batches in order; returns the number of commands given up
 * (only on abort: otherwise a broken connection is reopened with backoff
 * and the commands from the first unanswered one on are resent). */
static size_t writer_send(ifq_state_t *st, state_writer_t *w, state_batch_t *list)
{
    state_batch_t *b = list;
    size_t i = 0, lost = 0;
    int backoff = 50;
    while (b) {
        if (!w->rc && writer_connect(st, w) < 0) {
            if (writer_backoff(w, backoff))
                break;
            backoff = backoff < 1000 ? backoff * 2 : 2000;
            continue;
        }
        backoff = 50;
        if (writer_pipeline(st, w, &b, &i, &lost) == 0)
            break;
        pthread_mutex_lock(&w->mu);
        int aborted = w->abort;
        pthread_mutex_unlock(&w->mu);
        if (aborted)
            break;
    }
    for (; b; b = b->next, i = 0)
        for (; i < b->q.n; i++)
            lost += b->q.cmds[i].updates;
    return lost;
}

static void *writer_main(void *arg)
{
    ifq_state_t *st = arg;
    state_writer_t *w = st->writer;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->stop && !w->abort)
            pthread_cond_wait(&w->wake, &w->mu);
        if (!w->head)
            break;
        /* Everything handed off so far goes in one pipeline. */
        state_batch_t *list = w->head;
        w->head = w->tail = NULL;
        uint64_t seq = w->sent_seq;
        size_t n = 0;
        for (state_batch_t *b = list; b; b = b->next)
            n += b->q.updates;
        int aborted = w->abort;
        pthread_mutex_unlock(&w->mu);
        size_t lost = aborted ? n : writer_send(st, w, list);
        while (list) {
            state_batch_t *next = list->next;
            queue_free(&list->q);
            free(list);
            list = next;
        }
        pthread_mutex_lock(&w->mu);
        w->backlog -= n;
        w->lost += lost;
        w->done_seq = seq;
        pthread_cond_broadcast(&w->done);
    }
    pthread_mutex_unlock(&w->mu);
    writer_disconnect(w);
    return NULL;
}

/* Hands the caller's queue (no callbacks) to the writer; with mu held.
 * Returns 0, or -1 when the writer's backlog is full (the queue is kept). */
static int writer_push_locked(ifq_state_t *st)
{
    state_writer_t *w = st->writer;
    if (st->q.n == 0)
        return 0;
    if (w->backlog > 0 && w->backlog + st->q.updates > STATE_WRITER_MAX)
        return -1;
    state_batch_t *b = malloc(sizeof(*b));
    if (!b)
        return -1;
    b->next = NULL;
    b->q = st->q;
    memset(&st->q, 0, sizeof(st->q));
    if (w->tail)
        w->tail->next = b;
    else
        w->head = b;
    w->tail = b;
    w->backlog += b->q.updates;
    w->sent_seq++;
    pthread_cond_signal(&w->wake);
    return 0;
}

int ifq_state_async_start(ifq_state_t *st, char *errstr, size_t errstr_size)
{
    if (st->writer)
        return IFQ_OK;
    state_writer_t *w = calloc(1, sizeof(*w));
    if (!w) {
        snprintf(errstr, errstr_size, "out of memory");
        return IFQ_ERR_NOMEM;
    }
    w->fd = -1;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->wake, &ca);
    pthread_cond_init(&w->done, &ca);
    pthread_condattr_destroy(&ca);
    st->writer = w;
    int err = pthread_create(&w->thread, NULL, writer_main, st);
    if (err) {
        st->writer = NULL;
        pthread_cond_destroy(&w->wake);
        pthread_cond_destroy(&w->done);
        pthread_mutex_destroy(&w->mu);
        free(w);
        snprintf(errstr, errstr_size, "redis writer thread: %s", strerror(err));
        return IFQ_ERR_IO;
    }
    return IFQ_OK;
}

int ifq_state_sync(ifq_state_t *st, int timeout_ms)
{
    char why[256];
    state_writer_t *w = st->writer;
    group_emit(st);
    if (!w)
        return st->q.n ? flush_sync(st, why, sizeof(why)) : IFQ_OK;
    struct timespec end = deadline_in(timeout_ms);
    int rc = IFQ_OK;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        if (st->q.n && !st->q.has_cb)
            writer_push_locked(st);
        if (w->done_seq == w->sent_seq && (st->q.n == 0 || st->q.has_cb))
            break;
        if (pthread_cond_timedwait(&w->done, &w->mu, &end) == ETIMEDOUT) {
            rc = IFQ_ERR_TIMEOUT;
            break;
        }
    }
    pthread_mutex_unlock(&w->mu);
    /* Callbacks run on the caller's thread: such a queue goes out on the
     * caller's connection once everything before it has been written. */
    if (rc == IFQ_OK && st->q.n)
        rc = flush_sync(st, why, sizeof(why));
    return rc;
}

int ifq_state_async_stop(ifq_state_t *st, int timeout_ms)
{
    state_writer_t *w = st->writer;
    if (!w)
        return IFQ_OK;
    int rc = ifq_state_sync(st, timeout_ms);
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    if (rc != IFQ_OK) {
        /* Out of time: a blocked read or write returns at once. */
        w->abort = 1;
        if (w->fd >= 0)
            shutdown(w->fd, SHUT_RDWR);
    }
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    if (w->lost)
        ifq_warn("state_updates_lost", "%llu state update(s) were not written to Redis", w->lost);
    pthread_cond_destroy(&w->wake);
    pthread_cond_destroy(&w->done);
    pthread_mutex_destroy(&w->mu);
    st->writer = NULL;
    free(w);
    return rc;
}

size_t ifq_state_backlog(ifq_state_t *st)
{
    state_writer_t *w = st->writer;
    size_t n = st->q.updates + (size_t)st->g.n;
    if (w) {
        pthread_mutex_lock(&w->mu);
        n += w->backlog;
        pthread_mutex_unlock(&w->mu);
    }
    return n;
}

int ifq_state_flush(ifq_state_t *st, char *errstr, size_t errstr_size)
{
    group_emit(st);
    if (st->q.n == 0)
        return IFQ_OK;
    if (st->writer && !st->q.has_cb) {
        /* The hand-off: a pointer swap under the mutex. With the writer's
         * backlog full the queue stays here, where STATE_MAX_QUEUE bounds
         * it (queue_dropped), and goes with a later flush. */
        pthread_mutex_lock(&st->writer->mu);
        writer_push_locked(st);
        pthread_mutex_unlock(&st->writer->mu);
        return IFQ_OK;
    }
    if (st->writer) {
        int rc = ifq_state_sync(st, 2000);
        if (rc != IFQ_OK)
            snprintf(errstr, errstr_size, "redis writer backlog did not drain in time");
        return rc;
    }
    return flush_sync(st, errstr, errstr_size);
}

void ifq_state_destroy(ifq_state_t *st)
{
    if (!st)
        return;
    ifq_state_async_stop(st, 1000);
    queue_free(&st->q);
    group_free(&st->g);
    if (st->rc)
        redisFree(st->rc);
    free(st);
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
