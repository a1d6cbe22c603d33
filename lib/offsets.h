/*
 * offsets.h - out-of-order completion, in-order commit.
 *
 * A worker finishes requests in any order, but Kafka commits are a single
 * position per partition. The tracker records the offsets handed out (in
 * increasing order, gaps allowed) and which of them are done; the committable
 * position is the first offset not yet done, so a slow request never lets a
 * crash skip it and never holds back the memory of those after it for long.
 */
#ifndef IFQ_OFFSETS_H
#define IFQ_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

typedef struct ifq_offsets ifq_offsets_t;

ifq_offsets_t *ifq_offsets_new(void);
void ifq_offsets_destroy(ifq_offsets_t *t); /* NULL is a no-op */

/* Records an offset handed to processing. Offsets must increase; an offset
 * not above the last tracked one is ignored and returns -1 (a redelivery
 * after a rebalance starts a new tracker). Returns 0 or -1 (also on ENOMEM). */
int ifq_offsets_track(ifq_offsets_t *t, int64_t offset);

/* Marks a tracked offset done. Returns 0, or -1 when it is not tracked. */
int ifq_offsets_done(ifq_offsets_t *t, int64_t offset);

/* The position to commit (one past the highest contiguous done offset), or
 * -1 when nothing new became committable since the last call to
 * ifq_offsets_committed(). */
int64_t ifq_offsets_committable(const ifq_offsets_t *t);
/* Notes that `position` has been committed. */
void ifq_offsets_committed(ifq_offsets_t *t, int64_t position);

/* Offsets tracked and not yet done. */
size_t ifq_offsets_inflight(const ifq_offsets_t *t);

#endif
