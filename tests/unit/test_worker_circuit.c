/*
 * test_worker_circuit.c - a worker's closed circuit honours an open circuit
 * another worker published (for the rest of its open period), an adopted
 * circuit closes when a newer closed state is published, and the local
 * breaker's own states are never overridden (workers/circuit.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "circuit.h"

enum { OPEN_MS = 30000, WALL = 1700000000000, MONO = 5000 };

static void closed_adopts_fresh_open_for_the_rest_of_the_period(void **state)
{
    (void)state;
    circuit_t cb = {0};
    /* published open 10 s ago: open here for the remaining 20 s */
    assert_int_equal(ifq_circuit_adopt(&cb, 1, WALL - 10000, WALL, MONO, OPEN_MS),
                     CIRCUIT_ADOPT_OPEN);
    assert_int_equal(cb.state, CIRCUIT_OPEN);
    assert_int_equal(cb.adopted, 1);
    assert_int_equal(cb.open_until, MONO + 20000);
    assert_int_equal(cb.opened_total, 0); /* not this worker's opening */
    /* read again a second later: nothing more to do */
    assert_int_equal(ifq_circuit_adopt(&cb, 1, WALL - 10000, WALL + 1000, MONO + 1000, OPEN_MS),
                     CIRCUIT_ADOPT_NONE);
    assert_int_equal(cb.open_until, MONO + 20000);
}

static void closed_with_some_failures_adopts_too(void **state)
{
    (void)state;
    circuit_t cb = {.failures = 2};
    assert_int_equal(ifq_circuit_adopt(&cb, 1, WALL, WALL, MONO, OPEN_MS), CIRCUIT_ADOPT_OPEN);
    assert_int_equal(cb.open_until, MONO + OPEN_MS);
}

static void stale_half_open_closed_or_unknown_are_ignored(void **state)
{
    (void)state;
    circuit_t cb = {0};
    /* open longer ago than the open period: half-open by now */
    assert_int_equal(ifq_circuit_adopt(&cb, 1, WALL - OPEN_MS, WALL, MONO, OPEN_MS),
                     CIRCUIT_ADOPT_NONE);
    assert_int_equal(ifq_circuit_adopt(&cb, 1, 0, WALL, MONO, OPEN_MS), CIRCUIT_ADOPT_NONE);
    assert_int_equal(ifq_circuit_adopt(&cb, 2, WALL, WALL, MONO, OPEN_MS), CIRCUIT_ADOPT_NONE);
    assert_int_equal(ifq_circuit_adopt(&cb, 0, WALL, WALL, MONO, OPEN_MS), CIRCUIT_ADOPT_NONE);
    assert_int_equal(cb.state, CIRCUIT_CLOSED);
}

static void clock_ahead_never_extends_the_period(void **state)
{
    (void)state;
    circuit_t cb = {0};
    /* the publisher's clock is 5 s ahead of ours */
    assert_int_equal(ifq_circuit_adopt(&cb, 1, WALL + 5000, WALL, MONO, OPEN_MS),
                     CIRCUIT_ADOPT_OPEN);
    assert_int_equal(cb.open_until, MONO + OPEN_MS);
}

static void own_states_are_not_overridden(void **state)
{
    (void)state;
    circuit_t own = {.state = CIRCUIT_OPEN, .open_until = MONO + 100, .opened_total = 1};
    assert_int_equal(ifq_circuit_adopt(&own, 0, WALL, WALL, MONO, OPEN_MS), CIRCUIT_ADOPT_NONE);
    assert_int_equal(ifq_circuit_adopt(&own, 1, WALL, WALL, MONO, OPEN_MS), CIRCUIT_ADOPT_NONE);
    assert_int_equal(own.state, CIRCUIT_OPEN);
    assert_int_equal(own.open_until, MONO + 100); /* not extended by a remote open */
    circuit_t probing = {.state = CIRCUIT_HALF_OPEN, .probe_inflight = 1};
    assert_int_equal(ifq_circuit_adopt(&probing, 1, WALL, WALL, MONO, OPEN_MS), CIRCUIT_ADOPT_NONE);
    assert_int_equal(ifq_circuit_adopt(&probing, 0, WALL, WALL, MONO, OPEN_MS), CIRCUIT_ADOPT_NONE);
    assert_int_equal(probing.state, CIRCUIT_HALF_OPEN);
    assert_int_equal(probing.probe_inflight, 1);
}

static void adopted_closes_on_a_newer_closed_state_only(void **state)
{
    (void)state;
    circuit_t cb = {0};
    assert_int_equal(ifq_circuit_adopt(&cb, 1, WALL - 1000, WALL, MONO, OPEN_MS),
                     CIRCUIT_ADOPT_OPEN);
    /* a closed state older than the adopted open changes nothing */
    assert_int_equal(ifq_circuit_adopt(&cb, 0, WALL - 2000, WALL, MONO, OPEN_MS),
                     CIRCUIT_ADOPT_NONE);
    assert_int_equal(cb.state, CIRCUIT_OPEN);
    /* half-open published (another worker probing): still open here */
    assert_int_equal(ifq_circuit_adopt(&cb, 2, WALL + 500, WALL + 500, MONO, OPEN_MS),
                     CIRCUIT_ADOPT_NONE);
    assert_int_equal(cb.state, CIRCUIT_OPEN);
    /* the other worker's probe succeeded */
    assert_int_equal(ifq_circuit_adopt(&cb, 0, WALL + 800, WALL + 1000, MONO, OPEN_MS),
                     CIRCUIT_ADOPT_CLOSE);
    assert_int_equal(cb.state, CIRCUIT_CLOSED);
    assert_int_equal(cb.adopted, 0);
    assert_int_equal(cb.failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(closed_adopts_fresh_open_for_the_rest_of_the_period),
        cmocka_unit_test(closed_with_some_failures_adopts_too),
        cmocka_unit_test(stale_half_open_closed_or_unknown_are_ignored),
        cmocka_unit_test(clock_ahead_never_extends_the_period),
        cmocka_unit_test(own_states_are_not_overridden),
        cmocka_unit_test(adopted_closes_on_a_newer_closed_state_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
