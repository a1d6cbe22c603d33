/*
 * test_state_async.c - the state writer thread (lib/state.c,
 * ifq_state_async_start): updates handed off by ifq_state_flush reach Redis
 * in FIFO order, ifq_state_sync is a barrier for reads on the caller's
 * connection, a broken connection or a flushed script cache loses nothing,
 * reply callbacks still run on the caller's thread after earlier writes, and
 * stopping is bounded when Redis does not answer.
 *
 * Needs the redis-server binary (skipped with a message when it is
 * missing): starts its own on a free loopback port.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "redis_fixture.h"
#include "state.h"

static redisContext *direct(void)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    redisReply *r = redisCommand(c, "SELECT 4");
    assert_non_null(r);
    freeReplyObject(r);
    return c;
}

static long long direct_int(const char *cmd, const char *arg)
{
    redisContext *c = direct();
    redisReply *r = redisCommand(c, cmd, arg);
    assert_non_null(r);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    redisFree(c);
    return v;
}

static void direct_do(const char *cmd)
{
    redisContext *c = direct();
    redisReply *r = redisCommand(c, cmd);
    assert_non_null(r);
    freeReplyObject(r);
    redisFree(c);
}

static int redis_start(void **state)
{
    (void)state;
    return redis_fixture_start(4);
}

static int redis_teardown(void **state)
{
    (void)state;
    redis_stop();
    return 0;
}

static ifq_state_t *open_async(const char *prefix)
{
    char err[256];
    ifq_state_t *st = ifq_state_connect(redis_url, prefix, 3600, err, sizeof(err));
    assert_non_null(st);
    assert_int_equal(ifq_state_async_start(st, err, sizeof(err)), IFQ_OK);
    return st;
}

static void flush(ifq_state_t *st)
{
    char err[256];
    assert_int_equal(ifq_state_flush(st, err, sizeof(err)), IFQ_OK);
}

static void rpush(ifq_state_t *st, const char *key, int i)
{
    char v[16];
    snprintf(v, sizeof(v), "%d", i);
    const char *argv[] = {"RPUSH", key, v};
    ifq_state_queue_cmd(st, 3, argv);
}

/* The list holds 0..n-1 in that order. */
static void assert_list_in_order(const char *key, int n)
{
    redisContext *c = direct();
    redisReply *r = redisCommand(c, "LRANGE %s 0 -1", key);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, (size_t)n);
    for (int i = 0; i < n; i++)
        assert_int_equal(atoi(r->element[i]->str), i);
    freeReplyObject(r);
    redisFree(c);
}

static void handed_off_updates_arrive_in_order_and_sync_is_a_barrier(void **state)
{
    (void)state;
    NEED_REDIS();
    ifq_state_t *st = open_async("asA");
    /* Many small flushes, as the worker's loop makes: one hand-off each. */
    for (int i = 0; i < 5000; i++) {
        rpush(st, "asA:list", i);
        if (i % 37 == 0)
            flush(st);
    }
    const char *kv[] = {"deployment", "fake-chat"};
    ifq_state_queue(st, "r1", "id1", "running", kv, 2);
    flush(st);
    ifq_state_queue(st, "r1", "id1", "succeeded", kv, 2);
    flush(st);
    assert_int_equal(ifq_state_pending(st), 0);
    assert_int_equal(ifq_state_sync(st, 10000), IFQ_OK);
    assert_int_equal(ifq_state_backlog(st), 0);
    assert_list_in_order("asA:list", 5000);
    /* After the barrier the caller's own connection sees the final state. */
    const char *cids[] = {"r1"}, *ids[] = {"id1"};
    int done[1] = {0};
    assert_int_equal(ifq_state_final_many(st, 1, cids, ids, done), IFQ_OK);
    assert_int_equal(done[0], 1);
    int err = 0;
    json_t *s = ifq_state_get(st, "r1", &err);
    assert_non_null(s);
    assert_string_equal(json_string_value(json_object_get(s, "state")), "succeeded");
    assert_true(json_integer_value(json_object_get(s, "running_ms")) > 0);
    json_decref(s);
    ifq_state_destroy(st);
}

static void a_killed_connection_and_a_flushed_script_cache_lose_nothing(void **state)
{
    (void)state;
    NEED_REDIS();
    ifq_state_t *st = open_async("asB");
    for (int i = 0; i < 100; i++)
        rpush(st, "asB:list", i);
    assert_int_equal(ifq_state_sync(st, 10000), IFQ_OK);
    /* The scripts are forgotten on a live connection (NOSCRIPT replies:
     * resent after a reload), then every other client's connection dies
     * (what a Redis restart does): updates queued after each still land. */
    for (int round = 0; round < 2; round++) {
        direct_do(round == 0 ? "SCRIPT FLUSH" : "CLIENT KILL TYPE normal SKIPME yes");
        for (int i = 100 + 100 * round; i < 200 + 100 * round; i++)
            rpush(st, "asB:list", i);
        for (int i = 50 * round; i < 50 + 50 * round; i++) {
            char cid[16];
            snprintf(cid, sizeof(cid), "b%d", i);
            ifq_state_queue(st, cid, "x", "succeeded", NULL, 0);
        }
        flush(st);
        assert_int_equal(ifq_state_sync(st, 10000), IFQ_OK);
    }
    assert_list_in_order("asB:list", 300);
    for (int i = 0; i < 100; i++) {
        char key[32];
        snprintf(key, sizeof(key), "asB:req:b%d", i);
        assert_int_equal(direct_int("EXISTS %s", key), 1);
    }
    ifq_state_destroy(st);
}

typedef struct {
    pthread_t thread;
    char value[16];
    int calls;
} cb_seen_t;

static void on_get(void *opaque, const struct redisReply *r)
{
    cb_seen_t *seen = opaque;
    seen->thread = pthread_self();
    seen->calls++;
    if (r && r->type == REDIS_REPLY_STRING)
        snprintf(seen->value, sizeof(seen->value), "%s", r->str);
}

static void a_reply_callback_runs_on_the_callers_thread_after_earlier_writes(void **state)
{
    (void)state;
    NEED_REDIS();
    ifq_state_t *st = open_async("asC");
    const char *set[] = {"SET", "asC:k", "before"};
    ifq_state_queue_cmd(st, 3, set);
    flush(st); /* handed to the writer */
    cb_seen_t seen = {0};
    const char *get[] = {"GET", "asC:k"};
    ifq_state_queue_cmd_cb(st, 2, get, on_get, &seen);
    flush(st);
    assert_int_equal(seen.calls, 1);
    assert_true(pthread_equal(seen.thread, pthread_self()));
    assert_string_equal(seen.value, "before");
    ifq_state_destroy(st);
}

static void stopping_is_bounded_when_redis_does_not_answer(void **state)
{
    (void)state;
    NEED_REDIS();
    ifq_state_t *st = open_async("asD");
    rpush(st, "asD:list", 0);
    assert_int_equal(ifq_state_sync(st, 10000), IFQ_OK);
    /* Redis stops answering every client for 4 s. */
    direct_do("CLIENT PAUSE 4000 ALL");
    for (int i = 1; i < 10; i++)
        rpush(st, "asD:list", i);
    int64_t t0 = ifq_mono_ms();
    assert_int_equal(ifq_state_async_stop(st, 300), IFQ_ERR_TIMEOUT);
    int64_t took = ifq_mono_ms() - t0;
    assert_true(took >= 300);
    assert_true(took < 2000);
    direct_do("CLIENT UNPAUSE");
    /* Without the writer, flushes are synchronous again. */
    rpush(st, "asD:list2", 0);
    flush(st);
    assert_int_equal(direct_int("LLEN %s", "asD:list2"), 1);
    ifq_state_destroy(st);
}

static void scripts_cannot_be_registered_once_the_writer_runs(void **state)
{
    (void)state;
    NEED_REDIS();
    ifq_state_t *st = open_async("asE");
    char err[256] = "";
    assert_int_equal(ifq_state_script(st, "return 1", err, sizeof(err)), -1);
    assert_true(strlen(err) > 0);
    assert_int_equal(ifq_state_async_stop(st, 1000), IFQ_OK);
    assert_true(ifq_state_script(st, "return 1", err, sizeof(err)) > 0);
    ifq_state_destroy(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(handed_off_updates_arrive_in_order_and_sync_is_a_barrier),
        cmocka_unit_test(a_killed_connection_and_a_flushed_script_cache_lose_nothing),
        cmocka_unit_test(a_reply_callback_runs_on_the_callers_thread_after_earlier_writes),
        cmocka_unit_test(stopping_is_bounded_when_redis_does_not_answer),
        cmocka_unit_test(scripts_cannot_be_registered_once_the_writer_runs),
    };
    return cmocka_run_group_tests(tests, redis_start, redis_teardown);
}
