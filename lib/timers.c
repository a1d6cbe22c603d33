/*
 * timers.c - the min-heap behind ifq_timers_t. Each timer records its heap
 * index so that cancellation is O(log n).
 */
#include "timers.h"

#include <stdlib.h>

void ifq_timers_init(ifq_timers_t *t)
{
    t->heap = NULL;
    t->n = t->cap = 0;
}

void ifq_timers_free(ifq_timers_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        t->heap[i]->index = 0;
    free(t->heap);
    ifq_timers_init(t);
}

static void place(ifq_timers_t *t, size_t i, ifq_timer_t *x)
{
    t->heap[i] = x;
    x->index = i + 1;
}

static void sift_up(ifq_timers_t *t, size_t i)
{
    ifq_timer_t *x = t->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (t->heap[parent]->at <= x->at)
            break;
        place(t, i, t->heap[parent]);
        i = parent;
    }
    place(t, i, x);
}

static void sift_down(ifq_timers_t *t, size_t i)
{
    ifq_timer_t *x = t->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        int64_t best = x->at;
        if (l < t->n && t->heap[l]->at < best) {
            m = l;
            best = t->heap[l]->at;
        }
        if (r < t->n && t->heap[r]->at < best)
            m = r;
        if (m == i)
            break;
        place(t, i, t->heap[m]);
        i = m;
    }
    place(t, i, x);
}

void ifq_timers_cancel(ifq_timers_t *t, ifq_timer_t *timer)
{
    if (!timer->index)
        return;
    size_t i = timer->index - 1;
    timer->index = 0;
    ifq_timer_t *last = t->heap[--t->n];
    if (i == t->n)
        return;
    place(t, i, last);
    sift_up(t, i);
    sift_down(t, last->index - 1);
}

int ifq_timers_arm(ifq_timers_t *t, ifq_timer_t *timer, int64_t at)
{
    ifq_timers_cancel(t, timer);
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        ifq_timer_t **h = realloc(t->heap, cap * sizeof(*h));
        if (!h)
            return -1;
        t->heap = h;
        t->cap = cap;
    }
    timer->at = at;
    place(t, t->n++, timer);
    sift_up(t, t->n - 1);
    return 0;
}

ifq_timer_t *ifq_timers_pop_due(ifq_timers_t *t, int64_t now)
{
    if (t->n == 0 || t->heap[0]->at > now)
        return NULL;
    ifq_timer_t *top = t->heap[0];
    ifq_timers_cancel(t, top);
    return top;
}

int64_t ifq_timers_next_in(const ifq_timers_t *t, int64_t now)
{
    if (t->n == 0)
        return -1;
    int64_t d = t->heap[0]->at - now;
    return d < 0 ? 0 : d;
}
