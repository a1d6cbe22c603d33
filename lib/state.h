/*
 * state.h - request state in Redis.
 *
 * Each request has a hash at "<prefix>:req:<custom_id>" with its id, state
 * (received -> routed -> running -> succeeded | failed | rejected | expired),
 * a timestamp per state (`<state>_ms`) and a few facts (model, deployment,
 * error code), expiring after the configured TTL. Updates are applied by a
 * Lua script that never moves a request backwards, so a redelivered message
 * cannot undo a later state. Updates are queued and sent in one pipelined
 * round trip per batch; the state updates queued between two flushes go as
 * one EVALSHA per 128 requests (in order among themselves; other commands
 * queued meanwhile may be sent before them, except that queueing a command
 * with a reply callback sends them first).
 *
 * Two ways to send: synchronously on the caller's connection (the broker,
 * the dashboard, the CLI: they need the replies, e.g. admissions), or, after
 * ifq_state_async_start, through a writer thread with its own connection
 * (the worker: its event loop must not wait for Redis to run hundreds of
 * Lua calls). The writer keeps FIFO order, resends after a broken
 * connection from the first unanswered command, and logs failures as the
 * synchronous path does. Reads (ifq_state_get, _final_many, _read_health,
 * _ping) always use the caller's connection: they see an update handed to
 * the writer only once it is written; ifq_state_sync waits for that.
 *
 * Memory is bounded: the caller's queue holds at most 100,000 updates (then
 * updates are dropped and counted, state_queue_full, at most one warning a
 * second) and the writer's backlog 100,000 more (a full backlog keeps the
 * queue with the caller). Not thread-safe: one ifq_state_t per thread,
 * except that the writer thread is internal.
 */
#ifndef IFQ_STATE_H
#define IFQ_STATE_H

#include <jansson.h>

#include "common.h"
#include "config.h"
#include "route.h"

typedef struct ifq_state ifq_state_t;

/* Connects to redis://[:password@]host[:port][/db]. Returns NULL with errstr.
 * prefix is copied. */
ifq_state_t *ifq_state_connect(const char *url, const char *prefix, int ttl_s, char *errstr,
                               size_t errstr_size);
void ifq_state_destroy(ifq_state_t *st); /* NULL is a no-op */

/* Queues one update; nothing is sent until ifq_state_flush. kv is an array of
 * nkv strings: field, value, field, value ... (copied; at most 11 pairs, a
 * NULL value is sent as ""). */
void ifq_state_queue(ifq_state_t *st, const char *custom_id, const char *id, const char *state,
                     const char *const *kv, size_t nkv);
struct redisReply;
/* Called once per queued command with its reply (borrowed for the call), or
 * with NULL when the command could not be sent (Redis down, queue full). */
typedef void (*ifq_state_reply_cb)(void *opaque, const struct redisReply *reply);

/* Registers a Lua script (static text, borrowed) loaded now and after every
 * reconnect. Returns its index for ifq_state_queue_eval, or -1 with errstr. */
int ifq_state_script(ifq_state_t *st, const char *lua, char *errstr, size_t errstr_size);
/* Queues EVALSHA of a registered script; argv is "numkeys key... arg...". */
void ifq_state_queue_eval(ifq_state_t *st, int script, int argc, const char *const *argv,
                          ifq_state_reply_cb cb, void *opaque);
/* Like ifq_state_queue_cmd with a reply callback. */
void ifq_state_queue_cmd_cb(ifq_state_t *st, int argc, const char *const *argv,
                            ifq_state_reply_cb cb, void *opaque);

/* Queues any Redis command (copied), sent with the next flush; its reply is
 * only checked for errors, which are logged. For counters and published
 * state that ride along with the batch's round trip. */
void ifq_state_queue_cmd(ifq_state_t *st, int argc, const char *const *argv);
/* The key prefix (topic prefix) given at connect. */
const char *ifq_state_prefix(const ifq_state_t *st);

/* Number of queued updates not yet flushed (handed to the writer). */
size_t ifq_state_pending(const ifq_state_t *st);
/* Queued plus handed to the writer and not yet answered. */
size_t ifq_state_backlog(ifq_state_t *st);
/* Sends the queued updates in one round trip. On a connection failure it
 * reconnects once and retries; returns IFQ_OK or IFQ_ERR_IO (the queue is
 * then kept for the next flush).
 * With the writer running: hands the queue to it and returns IFQ_OK at once
 * (the writer retries failures itself, with backoff); a queue holding a
 * command with a reply callback instead waits (up to 2 s, else
 * IFQ_ERR_TIMEOUT) until the writer is idle and goes synchronously, so
 * callbacks always run on the caller's thread, in order. */
int ifq_state_flush(ifq_state_t *st, char *errstr, size_t errstr_size);

/* Starts the writer thread (idempotent). Register scripts (ifq_state_script)
 * before: it refuses afterwards. IFQ_OK, or an error with errstr (the state
 * then stays synchronous). */
int ifq_state_async_start(ifq_state_t *st, char *errstr, size_t errstr_size);
/* Flushes, then waits until every update queued so far is answered by Redis
 * (or given up), for at most timeout_ms. IFQ_OK, IFQ_ERR_TIMEOUT, or without
 * the writer the result of a synchronous flush. A barrier for readers: after
 * IFQ_OK, any connection sees the updates (e.g. before offsets are handed to
 * another consumer). */
int ifq_state_sync(ifq_state_t *st, int timeout_ms);
/* ifq_state_sync(timeout_ms), then stops the writer; what is still unwritten
 * when the time is up is given up (counted in one state_updates_lost
 * warning). Later flushes are synchronous. ifq_state_destroy does this with
 * 1 s. Returns ifq_state_sync's result. */
int ifq_state_async_stop(ifq_state_t *st, int timeout_ms);

/* Reads one request's state hash as a JSON object (caller owns), or NULL with
 * IFQ_ERR_NOTFOUND / IFQ_ERR_IO in *err. */
json_t *ifq_state_get(ifq_state_t *st, const char *custom_id, int *err);

/* For n requests, sets done[i] = 1 when a final state is recorded for that
 * custom_id with that id (the request was already answered). One round trip.
 * Returns IFQ_OK or IFQ_ERR_IO (done[] then all 0). */
int ifq_state_final_many(ifq_state_t *st, size_t n, const char *const *custom_ids,
                         const char *const *ids, int *done);

/* Reads what workers publish about each deployment (circuit state and
 * in-flight counts) into out (out->deps has cfg->n_deployments entries).
 * One pipelined round trip; IFQ_OK or IFQ_ERR_IO. */
int ifq_state_read_health(ifq_state_t *st, const ifq_config_t *cfg, ifq_health_t *out);

/* 1 when Redis answers PING. */
int ifq_state_ping(ifq_state_t *st);

/* Rank of a state name (0 when unknown); final states have the highest. */
int ifq_state_rank(const char *state);

#endif
