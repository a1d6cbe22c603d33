/*
 * corr.c - the correlation table (see corr.h).
 *
 * A chained hash table under one mutex. Each entry has its own condition
 * variable, so a result wakes only the thread awaiting it and thousands of
 * waiting threads cost nothing per result. An entry is unlinked from the
 * table as soon as its result is taken or it is forgotten; its memory is
 * freed by the last thread that still waits on its condition variable (or at
 * once when none does), so no waiter ever touches freed memory.
 */
#include "corr.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct entry {
    struct entry *next;
    char *custom_id;
    inferq_result_t *res; /* await entries: the result once it is here */
    inferq_result_cb cb;  /* NULL: an await entry */
    void *opaque;
    pthread_cond_t cond;
    int waiters;
    int unlinked; /* no longer in the table: the last waiter frees it */
} entry_t;

struct ifqc_corr {
    pthread_mutex_t lock;
    pthread_cond_t idle; /* signalled when waiters drops to 0 while closing */
    entry_t **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
    size_t max;
    int waiters;
    int closed;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static entry_t **slot_of(ifqc_corr_t *t, const char *id)
{
    entry_t **p = &t->buckets[hash_str(id) & (t->nbuckets - 1)];
    while (*p && strcmp((*p)->custom_id, id) != 0)
        p = &(*p)->next;
    return p;
}

static void entry_free(entry_t *e)
{
    pthread_cond_destroy(&e->cond);
    inferq_result_free(e->res);
    free(e->custom_id);
    free(e);
}

/* Takes e out of the table; frees it unless a waiter still sleeps on it. */
static void unlink_entry(ifqc_corr_t *t, entry_t **slot)
{
    entry_t *e = *slot;
    *slot = e->next;
    t->count--;
    e->unlinked = 1;
    if (e->waiters == 0)
        entry_free(e);
    else
        pthread_cond_broadcast(&e->cond);
}

/* Doubles the bucket array; on no memory the table just stays denser. */
static void grow(ifqc_corr_t *t)
{
    size_t n = t->nbuckets * 2;
    entry_t **b = calloc(n, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        entry_t *e = t->buckets[i];
        while (e) {
            entry_t *next = e->next;
            size_t k = hash_str(e->custom_id) & (n - 1);
            e->next = b[k];
            b[k] = e;
            e = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

ifqc_corr_t *ifqc_corr_new(size_t max_pending)
{
    ifqc_corr_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->nbuckets = 64;
    t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
    if (!t->buckets) {
        free(t);
        return NULL;
    }
    t->max = max_pending ? max_pending : 1;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->idle, NULL);
    return t;
}

void ifqc_corr_destroy(ifqc_corr_t *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        entry_t *e = t->buckets[i];
        while (e) {
            entry_t *next = e->next;
            entry_free(e);
            e = next;
        }
    }
    free(t->buckets);
    pthread_cond_destroy(&t->idle);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static entry_t *entry_new(const char *custom_id, inferq_result_cb cb, void *opaque)
{
    entry_t *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->custom_id = strdup(custom_id);
    if (!e->custom_id) {
        free(e);
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->cond, &ca);
    pthread_condattr_destroy(&ca);
    e->cb = cb;
    e->opaque = opaque;
    return e;
}

int ifqc_corr_add(ifqc_corr_t *t, const char *custom_id, inferq_result_cb cb, void *opaque)
{
    pthread_mutex_lock(&t->lock);
    int rc = INFERQ_OK;
    entry_t **slot = slot_of(t, custom_id);
    if (t->closed)
        rc = INFERQ_ERR_CLOSED;
    else if (*slot)
        rc = INFERQ_ERR_DUPLICATE;
    else if (t->count >= t->max)
        rc = INFERQ_ERR_FULL;
    else if (!(*slot = entry_new(custom_id, cb, opaque)))
        rc = INFERQ_ERR_NOMEM;
    else if (++t->count > t->nbuckets)
        grow(t);
    pthread_mutex_unlock(&t->lock);
    return rc;
}

int ifqc_corr_resolve(ifqc_corr_t *t, inferq_result_t *res)
{
    const char *id = inferq_result_custom_id(res);
    if (!id)
        return 0;
    pthread_mutex_lock(&t->lock);
    entry_t **slot = slot_of(t, id);
    entry_t *e = *slot;
    if (!e || e->res) {
        /* not ours, or a duplicate delivery of a result already here */
        pthread_mutex_unlock(&t->lock);
        return 0;
    }
    if (e->cb) {
        inferq_result_cb cb = e->cb;
        void *opaque = e->opaque;
        unlink_entry(t, slot);
        pthread_mutex_unlock(&t->lock);
        cb(res, opaque);
        return 1;
    }
    e->res = res;
    pthread_cond_signal(&e->cond);
    pthread_mutex_unlock(&t->lock);
    return 1;
}

static void deadline_after(struct timespec *ts, int timeout_ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Leaves the wait: the last waiter of an unlinked entry frees it, the last
 * waiter of a closing table lets ifqc_corr_close() return. */
static void waiter_leave(ifqc_corr_t *t, entry_t *e)
{
    e->waiters--;
    if (e->unlinked && e->waiters == 0)
        entry_free(e);
    if (--t->waiters == 0 && t->closed)
        pthread_cond_broadcast(&t->idle);
}

int ifqc_corr_await(ifqc_corr_t *t, const char *custom_id, int timeout_ms, inferq_result_t **res)
{
    *res = NULL;
    struct timespec deadline;
    if (timeout_ms >= 0)
        deadline_after(&deadline, timeout_ms);
    pthread_mutex_lock(&t->lock);
    if (t->closed) {
        pthread_mutex_unlock(&t->lock);
        return INFERQ_ERR_CLOSED;
    }
    entry_t **slot = slot_of(t, custom_id);
    entry_t *e = *slot;
    if (!e || e->cb) {
        pthread_mutex_unlock(&t->lock);
        return INFERQ_ERR_NOTFOUND;
    }
    e->waiters++;
    t->waiters++;
    int timed_out = 0;
    while (!e->res && !e->unlinked && !t->closed && !timed_out) {
        if (timeout_ms < 0)
            pthread_cond_wait(&e->cond, &t->lock);
        else
            timed_out = pthread_cond_timedwait(&e->cond, &t->lock, &deadline) == ETIMEDOUT;
    }
    int rc;
    if (e->res && !e->unlinked) {
        *res = e->res;
        e->res = NULL;
        unlink_entry(t, slot_of(t, custom_id));
        rc = INFERQ_OK;
    } else if (e->unlinked) {
        rc = INFERQ_ERR_NOTFOUND;
    } else if (t->closed) {
        rc = INFERQ_ERR_CLOSED;
    } else {
        rc = INFERQ_ERR_TIMEOUT;
    }
    waiter_leave(t, e);
    pthread_mutex_unlock(&t->lock);
    return rc;
}

int ifqc_corr_forget(ifqc_corr_t *t, const char *custom_id)
{
    pthread_mutex_lock(&t->lock);
    entry_t **slot = slot_of(t, custom_id);
    int rc = INFERQ_ERR_NOTFOUND;
    if (*slot) {
        inferq_result_free((*slot)->res);
        (*slot)->res = NULL;
        unlink_entry(t, slot);
        rc = INFERQ_OK;
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

void ifqc_corr_close(ifqc_corr_t *t)
{
    pthread_mutex_lock(&t->lock);
    t->closed = 1;
    for (size_t i = 0; i < t->nbuckets; i++)
        for (entry_t *e = t->buckets[i]; e; e = e->next)
            pthread_cond_broadcast(&e->cond);
    while (t->waiters > 0)
        pthread_cond_wait(&t->idle, &t->lock);
    pthread_mutex_unlock(&t->lock);
}

size_t ifqc_corr_pending(ifqc_corr_t *t)
{
    pthread_mutex_lock(&t->lock);
    size_t n = t->count;
    pthread_mutex_unlock(&t->lock);
    return n;
}
