/*
 * test_client_corr.c - the C client's correlation table (clients/c/src/corr.c)
 * without Kafka: results reach the thread awaiting their custom_id and no
 * other, however many threads wait at once; timeouts keep the request
 * pending; callbacks own their results; close wakes every waiter.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../../clients/c/src/corr.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inferq_result_t *result_for(const char *custom_id)
{
    char buf[700];
    int n = snprintf(buf, sizeof(buf),
                     "{\"id\":\"ifq_0\",\"custom_id\":\"%s\",\"response\":null,"
                     "\"error\":{\"code\":\"upstream_error\",\"message\":\"m\"},"
                     "\"inferq\":{\"status\":\"failed\"}}",
                     custom_id);
    inferq_result_t *res = inferq_result_from_bytes(buf, (size_t)n, NULL, 0);
    assert_non_null(res);
    return res;
}

static void test_a_result_reaches_its_awaiter_and_frees_the_custom_id(void **state)
{
    ifqc_corr_t *t = ifqc_corr_new(10);
    assert_int_equal(ifqc_corr_add(t, "a", NULL, NULL), INFERQ_OK);
    assert_int_equal(ifqc_corr_add(t, "a", NULL, NULL), INFERQ_ERR_DUPLICATE);
    assert_int_equal(ifqc_corr_pending(t), 1);
    assert_int_equal(ifqc_corr_resolve(t, result_for("a")), 1);
    inferq_result_t *res = NULL;
    assert_int_equal(ifqc_corr_await(t, "a", 0, &res), INFERQ_OK);
    assert_string_equal(inferq_result_custom_id(res), "a");
    inferq_result_free(res);
    assert_int_equal(ifqc_corr_pending(t), 0);
    assert_int_equal(ifqc_corr_await(t, "a", 0, &res), INFERQ_ERR_NOTFOUND);
    assert_null(res);
    assert_int_equal(ifqc_corr_add(t, "a", NULL, NULL), INFERQ_OK); /* reusable */
    ifqc_corr_close(t);
    ifqc_corr_destroy(t); /* frees the pending entry */
}

static void test_results_nobody_waits_for_stay_with_the_caller(void **state)
{
    ifqc_corr_t *t = ifqc_corr_new(10);
    inferq_result_t *stray = result_for("stranger");
    assert_int_equal(ifqc_corr_resolve(t, stray), 0);
    inferq_result_free(stray);

    /* a second copy of a result already here (a redelivery) is not taken */
    assert_int_equal(ifqc_corr_add(t, "b", NULL, NULL), INFERQ_OK);
    assert_int_equal(ifqc_corr_resolve(t, result_for("b")), 1);
    inferq_result_t *dup = result_for("b");
    assert_int_equal(ifqc_corr_resolve(t, dup), 0);
    inferq_result_free(dup);
    ifqc_corr_close(t);
    ifqc_corr_destroy(t); /* frees the uncollected result */
}

static void test_await_timeout_keeps_the_request_pending(void **state)
{
    ifqc_corr_t *t = ifqc_corr_new(10);
    assert_int_equal(ifqc_corr_add(t, "slow", NULL, NULL), INFERQ_OK);
    inferq_result_t *res = NULL;
    assert_int_equal(ifqc_corr_await(t, "slow", 30, &res), INFERQ_ERR_TIMEOUT);
    assert_null(res);
    assert_int_equal(ifqc_corr_pending(t), 1);
    assert_int_equal(ifqc_corr_resolve(t, result_for("slow")), 1);
    assert_int_equal(ifqc_corr_await(t, "slow", 30, &res), INFERQ_OK);
    inferq_result_free(res);
    ifqc_corr_close(t);
    ifqc_corr_destroy(t);
}

static void test_max_pending_is_enforced(void **state)
{
    ifqc_corr_t *t = ifqc_corr_new(3);
    assert_int_equal(ifqc_corr_add(t, "1", NULL, NULL), INFERQ_OK);
    assert_int_equal(ifqc_corr_add(t, "2", NULL, NULL), INFERQ_OK);
    assert_int_equal(ifqc_corr_add(t, "3", NULL, NULL), INFERQ_OK);
    assert_int_equal(ifqc_corr_add(t, "4", NULL, NULL), INFERQ_ERR_FULL);
    assert_int_equal(ifqc_corr_forget(t, "2"), INFERQ_OK);
    assert_int_equal(ifqc_corr_forget(t, "2"), INFERQ_ERR_NOTFOUND);
    assert_int_equal(ifqc_corr_add(t, "4", NULL, NULL), INFERQ_OK);
    ifqc_corr_close(t);
    assert_int_equal(ifqc_corr_add(t, "5", NULL, NULL), INFERQ_ERR_CLOSED);
    ifqc_corr_destroy(t);
}

static atomic_int cb_calls;

static void on_result(inferq_result_t *res, void *opaque)
{
    assert_string_equal(inferq_result_custom_id(res), (const char *)opaque);
    atomic_fetch_add(&cb_calls, 1);
    inferq_result_free(res);
}

static void test_callback_entries_hand_their_result_to_the_callback(void **state)
{
    ifqc_corr_t *t = ifqc_corr_new(10);
    atomic_store(&cb_calls, 0);
    assert_int_equal(ifqc_corr_add(t, "cb", on_result, "cb"), INFERQ_OK);
    inferq_result_t *res = NULL;
    assert_int_equal(ifqc_corr_await(t, "cb", 0, &res), INFERQ_ERR_NOTFOUND);
    assert_int_equal(ifqc_corr_resolve(t, result_for("cb")), 1);
    assert_int_equal(atomic_load(&cb_calls), 1);
    assert_int_equal(ifqc_corr_pending(t), 0);
    ifqc_corr_close(t);
    ifqc_corr_destroy(t);
}

/* ---- many threads ----------------------------------------------------------- */

#define THREADS 32
#define PER_THREAD 200

typedef struct {
    ifqc_corr_t *t;
    int index;
    int matched;
    int rc_other;
} waiter_t;

static void id_of(char *buf, size_t size, int thread, int k)
{
    snprintf(buf, size, "t%d-r%d", thread, k);
}

static void *waiter_main(void *arg)
{
    waiter_t *w = arg;
    char id[64];
    /* newest first, so most awaits find the result not there yet */
    for (int k = PER_THREAD - 1; k >= 0; k--) {
        id_of(id, sizeof(id), w->index, k);
        inferq_result_t *res = NULL;
        int rc = ifqc_corr_await(w->t, id, 60000, &res);
        if (rc == INFERQ_OK && strcmp(inferq_result_custom_id(res), id) == 0)
            w->matched++;
        else
            w->rc_other++;
        inferq_result_free(res);
    }
    return NULL;
}

static void test_many_threads_each_get_exactly_their_own_results(void **state)
{
    ifqc_corr_t *t = ifqc_corr_new(THREADS * PER_THREAD);
    char id[64];
    for (int j = 0; j < THREADS; j++)
        for (int k = 0; k < PER_THREAD; k++) {
            id_of(id, sizeof(id), j, k);
            assert_int_equal(ifqc_corr_add(t, id, NULL, NULL), INFERQ_OK);
        }
    waiter_t w[THREADS];
    pthread_t tid[THREADS];
    for (int j = 0; j < THREADS; j++) {
        w[j] = (waiter_t){.t = t, .index = j};
        assert_int_equal(pthread_create(&tid[j], NULL, waiter_main, &w[j]), 0);
    }
    /* One resolver, as the reply consumer thread: results in an order that
     * matches nobody's (a fixed permutation of all ids), plus strays. */
    int total = THREADS * PER_THREAD;
    for (int i = 0; i < total; i++) {
        int n = (int)(((long)i * 7919) % total); /* 7919 is prime, coprime to total */
        id_of(id, sizeof(id), n % THREADS, n / THREADS);
        assert_int_equal(ifqc_corr_resolve(t, result_for(id)), 1);
        if (i % 100 == 0) {
            inferq_result_t *stray = result_for("nobody");
            assert_int_equal(ifqc_corr_resolve(t, stray), 0);
            inferq_result_free(stray);
        }
    }
    int matched = 0;
    for (int j = 0; j < THREADS; j++) {
        pthread_join(tid[j], NULL);
        assert_int_equal(w[j].rc_other, 0);
        matched += w[j].matched;
    }
    assert_int_equal(matched, total);
    assert_int_equal(ifqc_corr_pending(t), 0);
    ifqc_corr_close(t);
    ifqc_corr_destroy(t);
}

typedef struct {
    ifqc_corr_t *t;
    const char *id;
    int rc;
} blocked_t;

static void *blocked_main(void *arg)
{
    blocked_t *b = arg;
    inferq_result_t *res = NULL;
    b->rc = ifqc_corr_await(b->t, b->id, -1, &res);
    inferq_result_free(res);
    return NULL;
}

static void test_close_wakes_every_waiter_and_forget_wakes_its_own(void **state)
{
    ifqc_corr_t *t = ifqc_corr_new(100);
    blocked_t b[8];
    pthread_t tid[8];
    char ids[8][16];
    for (int i = 0; i < 8; i++) {
        snprintf(ids[i], sizeof(ids[i]), "w%d", i);
        assert_int_equal(ifqc_corr_add(t, ids[i], NULL, NULL), INFERQ_OK);
        b[i] = (blocked_t){.t = t, .id = ids[i], .rc = 99};
        assert_int_equal(pthread_create(&tid[i], NULL, blocked_main, &b[i]), 0);
    }
    /* forget w0: its waiter (waiting or about to) ends with NOTFOUND */
    assert_int_equal(ifqc_corr_forget(t, "w0"), INFERQ_OK);
    pthread_join(tid[0], NULL);
    assert_int_equal(b[0].rc, INFERQ_ERR_NOTFOUND);
    /* close returns only after every other waiter has left */
    ifqc_corr_close(t);
    for (int i = 1; i < 8; i++) {
        pthread_join(tid[i], NULL);
        assert_int_equal(b[i].rc, INFERQ_ERR_CLOSED);
    }
    ifqc_corr_destroy(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_result_reaches_its_awaiter_and_frees_the_custom_id),
        cmocka_unit_test(test_results_nobody_waits_for_stay_with_the_caller),
        cmocka_unit_test(test_await_timeout_keeps_the_request_pending),
        cmocka_unit_test(test_max_pending_is_enforced),
        cmocka_unit_test(test_callback_entries_hand_their_result_to_the_callback),
        cmocka_unit_test(test_many_threads_each_get_exactly_their_own_results),
        cmocka_unit_test(test_close_wakes_every_waiter_and_forget_wakes_its_own),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
