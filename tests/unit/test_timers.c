/*
 * test_timers.c - the deadline heap pops in time order, cancels anywhere in
 * the heap, and re-arming moves a timer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "timers.h"

static void pops_in_deadline_order(void **state)
{
    enum { N = 1000 };
    static ifq_timer_t tm[N];
    ifq_timers_t t;
    ifq_timers_init(&t);
    unsigned seed = 7;
    for (int i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        tm[i].data = &tm[i];
        assert_int_equal(ifq_timers_arm(&t, &tm[i], (seed >> 8) % 5000), 0);
    }
    /* Cancel every third, re-arm every fifth to a later time. */
    int live = N;
    for (int i = 0; i < N; i += 3) {
        ifq_timers_cancel(&t, &tm[i]);
        live--;
    }
    ifq_timers_cancel(&t, &tm[0]); /* twice is harmless */
    for (int i = 1; i < N; i += 5) {
        if (tm[i].index == 0)
            live++; /* cancelled above, armed again */
        ifq_timers_arm(&t, &tm[i], 6000 + i);
    }
    assert_int_equal(ifq_timers_next_in(&t, 100000), 0);
    int64_t last = -1;
    int popped = 0;
    ifq_timer_t *x;
    while ((x = ifq_timers_pop_due(&t, 100000))) {
        assert_true(x->at >= last);
        assert_int_equal(x->index, 0);
        last = x->at;
        popped++;
    }
    assert_int_equal(popped, live);
    assert_int_equal(ifq_timers_next_in(&t, 0), -1);
    ifq_timers_free(&t);
}

static void nothing_due_before_its_time(void **state)
{
    ifq_timer_t a = {0}, b = {0};
    ifq_timers_t t;
    ifq_timers_init(&t);
    ifq_timers_arm(&t, &a, 100);
    ifq_timers_arm(&t, &b, 50);
    assert_null(ifq_timers_pop_due(&t, 49));
    assert_int_equal(ifq_timers_next_in(&t, 40), 10);
    assert_ptr_equal(ifq_timers_pop_due(&t, 50), &b);
    assert_null(ifq_timers_pop_due(&t, 99));
    assert_ptr_equal(ifq_timers_pop_due(&t, 1000), &a);
    ifq_timers_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pops_in_deadline_order),
        cmocka_unit_test(nothing_due_before_its_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
