/*
 * offsets.c - a ring buffer of tracked offsets in increasing order with a
 * done flag each. Done entries at the head are retired and advance the
 * commit position; lookups are binary searches over the ring.
 */
#include "offsets.h"

#include <stdlib.h>

typedef struct {
    int64_t offset;
    int done;
} slot_t;

struct ifq_offsets {
    slot_t *ring;
    size_t cap, head, len;
    int64_t last_tracked; /* -1 before the first */
    int64_t position;     /* one past the highest contiguous done offset; -1 unknown */
    int64_t committed;    /* last committed position; -1 none */
    size_t inflight;
};

ifq_offsets_t *ifq_offsets_new(void)
{
    ifq_offsets_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->last_tracked = -1;
    t->position = -1;
    t->committed = -1;
    return t;
}

void ifq_offsets_destroy(ifq_offsets_t *t)
{
    if (!t)
        return;
    free(t->ring);
    free(t);
}

static slot_t *at(const ifq_offsets_t *t, size_t i)
{
    return &t->ring[(t->head + i) % t->cap];
}

int ifq_offsets_track(ifq_offsets_t *t, int64_t offset)
{
    if (offset <= t->last_tracked)
        return -1;
    if (t->len == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        slot_t *ring = malloc(cap * sizeof(*ring));
        if (!ring)
            return -1;
        for (size_t i = 0; i < t->len; i++)
            ring[i] = *at(t, i);
        free(t->ring);
        t->ring = ring;
        t->cap = cap;
        t->head = 0;
    }
    slot_t *s = &t->ring[(t->head + t->len) % t->cap];
    s->offset = offset;
    s->done = 0;
    t->len++;
    t->inflight++;
    t->last_tracked = offset;
    return 0;
}

int ifq_offsets_done(ifq_offsets_t *t, int64_t offset)
{
    size_t lo = 0, hi = t->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (at(t, mid)->offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == t->len || at(t, lo)->offset != offset || at(t, lo)->done)
        return -1;
    at(t, lo)->done = 1;
    t->inflight--;
    while (t->len && at(t, 0)->done) {
        t->position = at(t, 0)->offset + 1;
        t->head = (t->head + 1) % t->cap;
        t->len--;
    }
    return 0;
}

int64_t ifq_offsets_committable(const ifq_offsets_t *t)
{
    if (t->position < 0 || t->position == t->committed)
        return -1;
    return t->position;
}

void ifq_offsets_committed(ifq_offsets_t *t, int64_t position)
{
    t->committed = position;
}

size_t ifq_offsets_inflight(const ifq_offsets_t *t)
{
    return t->inflight;
}
