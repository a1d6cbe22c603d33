/*
 * corr.h - the correlation table of the C client: requests that were
 * submitted and whose result has not been handed back yet, keyed by
 * custom_id. The reply consumer thread resolves entries; any number of
 * threads await them. Knows nothing about Kafka, so unit tests drive it
 * directly (tests/unit/test_client_corr.c).
 */
#ifndef IFQC_CORR_H
#define IFQC_CORR_H

#include <stddef.h>

#include "inferq/client.h"

typedef struct ifqc_corr ifqc_corr_t;

/* A table holding at most max_pending entries (caller owns). NULL on no
 * memory. */
ifqc_corr_t *ifqc_corr_new(size_t max_pending);
/* Frees the table and every result still stored in it. Call after
 * ifqc_corr_close() (no thread may still be inside the table). NULL is a
 * no-op. */
void ifqc_corr_destroy(ifqc_corr_t *t);

/* Adds a pending custom_id. cb NULL: the result waits for ifqc_corr_await();
 * otherwise it is handed to cb(res, opaque) on resolve. Returns INFERQ_OK,
 * INFERQ_ERR_DUPLICATE, INFERQ_ERR_FULL, INFERQ_ERR_CLOSED or
 * INFERQ_ERR_NOMEM. */
int ifqc_corr_add(ifqc_corr_t *t, const char *custom_id, inferq_result_cb cb, void *opaque);

/* Hands res to its pending entry (by inferq_result_custom_id(res)). Returns 1
 * when the table took ownership of res (a callback entry's callback has then
 * run, outside the table's lock), 0 when nobody is pending under that
 * custom_id or the entry already has a result: the caller still owns res. */
int ifqc_corr_resolve(ifqc_corr_t *t, inferq_result_t *res);

/* Waits up to timeout_ms (-1: forever) for the result of an await entry.
 * INFERQ_OK: *res is set (caller owns) and the entry is gone.
 * INFERQ_ERR_TIMEOUT: the entry stays. INFERQ_ERR_NOTFOUND: no await entry
 * under custom_id. INFERQ_ERR_CLOSED: the table was closed. */
int ifqc_corr_await(ifqc_corr_t *t, const char *custom_id, int timeout_ms, inferq_result_t **res);

/* Drops an entry and its result, waking its waiters with NOTFOUND. Returns
 * INFERQ_OK or INFERQ_ERR_NOTFOUND. */
int ifqc_corr_forget(ifqc_corr_t *t, const char *custom_id);

/* Refuses new entries, wakes every waiter with INFERQ_ERR_CLOSED and returns
 * once no thread is waiting any more. */
void ifqc_corr_close(ifqc_corr_t *t);

/* Entries not yet handed back. */
size_t ifqc_corr_pending(ifqc_corr_t *t);

#endif
