/*
 * test_state_stats.c - the per-second stats buckets that the state script
 * keeps for the dashboard (lib/state.c): a request's first final state is
 * counted once, with its latency; repeats, late lower states and
 * non-final states are not.
 *
 * Needs the redis-server binary (skipped with a message when it is
 * missing): starts its own on a free loopback port.
 */
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "redis_fixture.h"
#include "state.h"

static redisContext *direct(void)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
    if (c && c->err) {
        redisFree(c);
        return NULL;
    }
    if (c) {
        redisReply *r = redisCommand(c, "SELECT 3");
        if (r)
            freeReplyObject(r);
    }
    return c;
}

static int redis_start(void **state)
{
    (void)state;
    return redis_fixture_start(3);
}

static int redis_teardown(void **state)
{
    (void)state;
    redis_stop();
    return 0;
}

/* Sums field over every "<prefix>:stats:*" hash; also returns the smallest
 * TTL seen (or -3 when there is no stats hash). */
static long long stats_sum(const char *prefix, const char *field, long long *min_ttl)
{
    redisContext *c = direct();
    assert_non_null(c);
    redisReply *keys = redisCommand(c, "KEYS %s:stats:*", prefix);
    assert_non_null(keys);
    long long sum = 0, ttl = -3;
    for (size_t i = 0; i < keys->elements; i++) {
        redisReply *v = redisCommand(c, "HGET %s %s", keys->element[i]->str, field);
        if (v && v->type == REDIS_REPLY_STRING)
            sum += strtoll(v->str, NULL, 10);
        if (v)
            freeReplyObject(v);
        redisReply *t = redisCommand(c, "TTL %s", keys->element[i]->str);
        if (t && t->type == REDIS_REPLY_INTEGER && (ttl == -3 || t->integer < ttl))
            ttl = t->integer;
        if (t)
            freeReplyObject(t);
    }
    freeReplyObject(keys);
    redisFree(c);
    if (min_ttl)
        *min_ttl = ttl;
    return sum;
}

static ifq_state_t *open_state(const char *prefix)
{
    char err[256];
    ifq_state_t *st = ifq_state_connect(redis_url, prefix, 3600, err, sizeof(err));
    assert_non_null(st);
    return st;
}

static void flush(ifq_state_t *st)
{
    char err[256];
    assert_int_equal(ifq_state_flush(st, err, sizeof(err)), IFQ_OK);
}

static void received(ifq_state_t *st, const char *cid, const char *id, int64_t ago_ms)
{
    char rcv[24];
    snprintf(rcv, sizeof(rcv), "%lld", (long long)(ifq_now_ms() - ago_ms));
    const char *kv[] = {"received_ms", rcv, "trace_id", "0af7651916cd43dd8448eb211c80319c"};
    ifq_state_queue(st, cid, id, "routed", kv, 4);
}

static void a_final_state_is_counted_once_with_its_latency(void **state)
{
    (void)state;
    NEED_REDIS();
    ifq_state_t *st = open_state("stA");
    received(st, "r1", "id1", 300);
    flush(st);
    assert_int_equal(stats_sum("stA", "n", NULL), 0); /* routed is not final */
    const char *kv[] = {"deployment", "fake-chat"};
    ifq_state_queue(st, "r1", "id1", "running", kv, 2);
    ifq_state_queue(st, "r1", "id1", "succeeded", kv, 2);
    flush(st);
    /* A redelivered final transition, and a late lower state. */
    ifq_state_queue(st, "r1", "id1", "succeeded", kv, 2);
    ifq_state_queue(st, "r1", "id1", "failed", kv, 2);
    ifq_state_queue(st, "r1", "id1", "running", kv, 2);
    flush(st);
    long long ttl;
    assert_int_equal(stats_sum("stA", "n", &ttl), 1);
    assert_int_equal(stats_sum("stA", "succeeded", NULL), 1);
    assert_int_equal(stats_sum("stA", "failed", NULL), 0);
    assert_int_equal(stats_sum("stA", "lat_count", NULL), 1);
    long long lat = stats_sum("stA", "lat_sum_ms", NULL);
    assert_true(lat >= 300 && lat < 300 + 5000);
    assert_int_equal(stats_sum("stA", "lat_le_100", NULL), 0);
    assert_int_equal(stats_sum("stA", "lat_le_60000", NULL), 1);
    if (lat <= 500)
        assert_int_equal(stats_sum("stA", "lat_le_500", NULL), 1);
    assert_true(ttl > 0 && ttl <= 900);
    int err = 0;
    json_t *s = ifq_state_get(st, "r1", &err);
    assert_non_null(s);
    assert_true(ifq_state_rank(json_string_value(json_object_get(s, "state"))) == 4);
    json_decref(s);
    ifq_state_destroy(st);
}

static void each_final_state_has_its_own_counter(void **state)
{
    (void)state;
    NEED_REDIS();
    ifq_state_t *st = open_state("stB");
    static const char *const finals[] = {"succeeded", "failed", "rejected", "expired"};
    for (int i = 0; i < 4; i++) {
        char cid[16];
        snprintf(cid, sizeof(cid), "b%d", i);
        received(st, cid, "x", 50);
        ifq_state_queue(st, cid, "x", finals[i], NULL, 0);
    }
    /* The broker's rejection arrives in one update with received_ms. */
    char rcv[24];
    snprintf(rcv, sizeof(rcv), "%lld", (long long)ifq_now_ms() - 20);
    const char *kv[] = {"received_ms", rcv, "error_code", "guardrail_blocked"};
    ifq_state_queue(st, "b-direct", "y", "rejected", kv, 4);
    flush(st);
    assert_int_equal(stats_sum("stB", "n", NULL), 5);
    for (int i = 0; i < 4; i++)
        assert_int_equal(stats_sum("stB", finals[i], NULL), i == 2 ? 2 : 1);
    assert_int_equal(stats_sum("stB", "lat_count", NULL), 5);
    assert_int_equal(stats_sum("stB", "lat_le_100", NULL), 5);
    ifq_state_destroy(st);
}

static void a_new_id_under_the_same_custom_id_counts_again(void **state)
{
    (void)state;
    NEED_REDIS();
    ifq_state_t *st = open_state("stC");
    received(st, "c1", "first", 10);
    ifq_state_queue(st, "c1", "first", "succeeded", NULL, 0);
    flush(st);
    received(st, "c1", "second", 10);
    ifq_state_queue(st, "c1", "second", "failed", NULL, 0);
    flush(st);
    assert_int_equal(stats_sum("stC", "n", NULL), 2);
    assert_int_equal(stats_sum("stC", "failed", NULL), 1);
    ifq_state_destroy(st);
}

static void without_received_ms_only_the_count_is_kept(void **state)
{
    (void)state;
    NEED_REDIS();
    ifq_state_t *st = open_state("stD");
    ifq_state_queue(st, "d1", "z", "expired", NULL, 0);
    flush(st);
    assert_int_equal(stats_sum("stD", "expired", NULL), 1);
    assert_int_equal(stats_sum("stD", "lat_count", NULL), 0);
    ifq_state_destroy(st);
}

/* Updates travel several requests to one EVALSHA (up to 128): hundreds in
 * one flush are each applied and counted, the stats summed per field. */
static void hundreds_of_updates_in_one_flush_are_each_applied_and_counted(void **state)
{
    (void)state;
    NEED_REDIS();
    ifq_state_t *st = open_state("stE");
    for (int i = 0; i < 300; i++) {
        char cid[16];
        snprintf(cid, sizeof(cid), "e%d", i);
        received(st, cid, "q", 50);
        ifq_state_queue(st, cid, "q", "running", NULL, 0);
        ifq_state_queue(st, cid, "q", i % 3 ? "succeeded" : "failed", NULL, 0);
    }
    flush(st);
    assert_int_equal(stats_sum("stE", "n", NULL), 300);
    assert_int_equal(stats_sum("stE", "failed", NULL), 100);
    assert_int_equal(stats_sum("stE", "succeeded", NULL), 200);
    assert_int_equal(stats_sum("stE", "lat_le_60000", NULL), 300);
    long long sum = stats_sum("stE", "lat_sum_ms", NULL);
    assert_true(sum >= 300 * 50 && sum < 300 * 5000);
    int err = 0;
    json_t *s = ifq_state_get(st, "e299", &err);
    assert_non_null(s);
    assert_string_equal(json_string_value(json_object_get(s, "state")), "succeeded");
    assert_true(json_integer_value(json_object_get(s, "running_ms")) > 0);
    assert_true(json_integer_value(json_object_get(s, "received_ms")) > 0);
    json_decref(s);
    ifq_state_destroy(st);
}

/* One request whose key is not a hash fails alone: the others of the same
 * EVALSHA are applied, and a long custom_id and a NULL value are fine. */
static void a_broken_key_does_not_stop_the_other_updates_of_its_call(void **state)
{
    (void)state;
    NEED_REDIS();
    redisContext *c = direct();
    assert_non_null(c);
    redisReply *r = redisCommand(c, "SET stF:req:f1 not-a-hash");
    assert_non_null(r);
    freeReplyObject(r);
    redisFree(c);
    ifq_state_t *st = open_state("stF");
    char long_cid[400];
    memset(long_cid, 'x', sizeof(long_cid) - 1);
    long_cid[sizeof(long_cid) - 1] = '\0';
    const char *kv[] = {"deployment", NULL};
    ifq_state_queue(st, "f0", "a", "succeeded", kv, 2);
    ifq_state_queue(st, "f1", "a", "succeeded", kv, 2);
    ifq_state_queue(st, long_cid, "a", "succeeded", kv, 2);
    flush(st); /* the error reply is logged (state_update_failed), not fatal */
    int err = 0;
    json_t *s = ifq_state_get(st, "f0", &err);
    assert_non_null(s);
    assert_string_equal(json_string_value(json_object_get(s, "deployment")), "");
    json_decref(s);
    s = ifq_state_get(st, long_cid, &err);
    assert_non_null(s);
    assert_string_equal(json_string_value(json_object_get(s, "state")), "succeeded");
    json_decref(s);
    assert_int_equal(stats_sum("stF", "n", NULL), 2);
    ifq_state_destroy(st);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_final_state_is_counted_once_with_its_latency),
        cmocka_unit_test(each_final_state_has_its_own_counter),
        cmocka_unit_test(a_new_id_under_the_same_custom_id_counts_again),
        cmocka_unit_test(without_received_ms_only_the_count_is_kept),
        cmocka_unit_test(hundreds_of_updates_in_one_flush_are_each_applied_and_counted),
        cmocka_unit_test(a_broken_key_does_not_stop_the_other_updates_of_its_call),
    };
    return cmocka_run_group_tests_name("state_stats", tests, redis_start, redis_teardown);
}
