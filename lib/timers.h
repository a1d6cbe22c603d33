/*
 * timers.h - a binary min-heap of deadlines, for event loops that must wake
 * at the nearest of many timers (retry backoffs, deadlines) without scanning
 * every request on every wake-up.
 *
 * Each timer lives inside the caller's object (ifq_timer_t), so arming and
 * cancelling never allocate per timer; the heap holds pointers to them.
 */
#ifndef IFQ_TIMERS_H
#define IFQ_TIMERS_H

#include <stddef.h>
#include <stdint.h>

typedef struct ifq_timer {
    int64_t at;   /* monotonic ms when due */
    size_t index; /* position in the heap + 1; 0 when not armed */
    void *data;   /* the caller's object */
} ifq_timer_t;

typedef struct ifq_timers {
    ifq_timer_t **heap;
    size_t n, cap;
} ifq_timers_t;

void ifq_timers_init(ifq_timers_t *t);
void ifq_timers_free(ifq_timers_t *t); /* does not touch the timers themselves */

/* Arms (or re-arms) timer at `at`. Returns 0, -1 on out of memory. */
int ifq_timers_arm(ifq_timers_t *t, ifq_timer_t *timer, int64_t at);
/* Disarms the timer if armed; safe to call on an unarmed timer. */
void ifq_timers_cancel(ifq_timers_t *t, ifq_timer_t *timer);
/* Pops the earliest timer due at or before now, or returns NULL. */
ifq_timer_t *ifq_timers_pop_due(ifq_timers_t *t, int64_t now);
/* Milliseconds until the earliest timer (0 when overdue), or -1 when none. */
int64_t ifq_timers_next_in(const ifq_timers_t *t, int64_t now);

#endif
