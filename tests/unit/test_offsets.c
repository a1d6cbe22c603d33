/*
 * test_offsets.c - out-of-order completion never commits past an unfinished
 * offset, and gaps in offsets (compaction, transaction markers) are fine.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "offsets.h"

static void commit_waits_for_the_lowest_unfinished(void **state)
{
    ifq_offsets_t *t = ifq_offsets_new();
    for (int64_t o = 10; o < 15; o++)
        assert_int_equal(ifq_offsets_track(t, o), 0);
    assert_int_equal(ifq_offsets_committable(t), -1);
    assert_int_equal(ifq_offsets_done(t, 12), 0);
    assert_int_equal(ifq_offsets_done(t, 14), 0);
    assert_int_equal(ifq_offsets_committable(t), -1); /* 10 still running */
    assert_int_equal(ifq_offsets_done(t, 10), 0);
    assert_int_equal(ifq_offsets_committable(t), 11); /* 11 still running */
    ifq_offsets_committed(t, 11);
    assert_int_equal(ifq_offsets_committable(t), -1);
    assert_int_equal(ifq_offsets_done(t, 11), 0);
    assert_int_equal(ifq_offsets_committable(t), 13);
    assert_int_equal(ifq_offsets_done(t, 13), 0);
    assert_int_equal(ifq_offsets_committable(t), 15);
    assert_int_equal(ifq_offsets_inflight(t), 0);
    ifq_offsets_destroy(t);
}

static void gaps_between_offsets(void **state)
{
    ifq_offsets_t *t = ifq_offsets_new();
    ifq_offsets_track(t, 5);
    ifq_offsets_track(t, 9);
    ifq_offsets_track(t, 20);
    assert_int_equal(ifq_offsets_done(t, 9), 0);
    assert_int_equal(ifq_offsets_done(t, 5), 0);
    assert_int_equal(ifq_offsets_committable(t), 10);
    assert_int_equal(ifq_offsets_done(t, 20), 0);
    assert_int_equal(ifq_offsets_committable(t), 21);
    ifq_offsets_destroy(t);
}

static void rejects_unknown_duplicate_and_old(void **state)
{
    ifq_offsets_t *t = ifq_offsets_new();
    ifq_offsets_track(t, 1);
    assert_int_equal(ifq_offsets_track(t, 1), -1); /* not increasing */
    assert_int_equal(ifq_offsets_track(t, 0), -1);
    assert_int_equal(ifq_offsets_done(t, 7), -1); /* never tracked */
    assert_int_equal(ifq_offsets_done(t, 1), 0);
    assert_int_equal(ifq_offsets_done(t, 1), -1); /* already done */
    assert_int_equal(ifq_offsets_inflight(t), 0);
    ifq_offsets_destroy(t);
    ifq_offsets_destroy(NULL);
}

/* Many offsets finished in a shuffled order, through ring growth and
 * wrap-around: the commit position is always one past the longest finished
 * prefix. */
static void random_completion_order_matches_model(void **state)
{
    enum { N = 5000 };
    static int done[N];
    static int64_t order[N];
    ifq_offsets_t *t = ifq_offsets_new();
    unsigned seed = 12345;
    int64_t next_track = 0;
    int64_t tracked = 0;
    size_t pending = 0;
    for (int64_t i = 0; i < N; i++)
        done[i] = 0;
    while (tracked < N || pending) {
        /* Track a few, finish a few at random among the tracked. */
        for (int k = 0; k < 3 && tracked < N; k++) {
            assert_int_equal(ifq_offsets_track(t, next_track), 0);
            order[pending++] = next_track++;
            tracked++;
        }
        if (pending) {
            seed = seed * 1103515245u + 12345u;
            size_t pick = (seed >> 8) % pending;
            int64_t o = order[pick];
            order[pick] = order[--pending];
            assert_int_equal(ifq_offsets_done(t, o), 0);
            done[o] = 1;
            int64_t prefix = 0;
            while (prefix < N && done[prefix])
                prefix++;
            int64_t c = ifq_offsets_committable(t);
            if (c >= 0) {
                assert_int_equal(c, prefix);
                ifq_offsets_committed(t, c);
            }
        }
    }
    assert_int_equal(ifq_offsets_inflight(t), 0);
    ifq_offsets_destroy(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(commit_waits_for_the_lowest_unfinished),
        cmocka_unit_test(gaps_between_offsets),
        cmocka_unit_test(rejects_unknown_duplicate_and_old),
        cmocka_unit_test(random_completion_order_matches_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
