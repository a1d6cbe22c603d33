/*
 * circuit.h - the worker's per-deployment circuit breaker state, and how a
 * worker takes over what other workers published about it in Redis.
 *
 * Each worker runs its own breaker per deployment (closed -> open after
 * `threshold` consecutive unhealthy failures; open -> half-open after
 * open_ms, when one probe may pass; the probe's outcome closes or re-opens
 * it) and publishes every change under "<prefix>:circuit:<deployment>"
 * (state, failures, updated_ms, opened_total). The state machine itself is
 * driven in worker.c; this header holds the data and the pure decision of
 * ifq_circuit_adopt(), which is unit-tested.
 */
#ifndef IFQ_CIRCUIT_H
#define IFQ_CIRCUIT_H

#include <stdint.h>

typedef enum { CIRCUIT_CLOSED = 0, CIRCUIT_OPEN, CIRCUIT_HALF_OPEN } circuit_state_t;

typedef struct {
    circuit_state_t state;
    int failures;       /* consecutive */
    int64_t open_until; /* monotonic ms */
    int probe_inflight;
    int64_t opened_total;
    /* 1 while the circuit is open because another worker published it open
     * (it was not opened by this worker's own failures, and is not
     * republished by this worker: re-publishing would refresh updated_ms and
     * let workers keep each other's circuit open for ever). */
    int adopted;
    int64_t adopted_changed_ms; /* the published updated_ms that was adopted */
} circuit_t;

/* Published circuit state of another worker, as ifq_state_read_health
 * returns it: remote_state 1 open, 2 half-open (or open for longer than the
 * open period), 0 closed or unknown; changed_ms its updated_ms (wall clock). */
typedef enum {
    CIRCUIT_ADOPT_NONE = 0, /* nothing changes */
    CIRCUIT_ADOPT_OPEN,     /* the local circuit is now open (adopted) */
    CIRCUIT_ADOPT_CLOSE,    /* an adopted open circuit closed: another worker's probe succeeded */
} circuit_adopt_t;

/* Merges the published state into the local circuit cb:
 *  - a CLOSED local circuit and a published open circuit updated less than
 *    open_ms ago: the local circuit opens until the published open period
 *    ends (changed_ms + open_ms, as monotonic time now_mono_ms + the rest);
 *  - a local circuit open only by adoption and a published closed state
 *    newer than the adopted one: it closes again;
 *  - anything else (the local breaker's own open, half-open or probe
 *    states, or a stale or unknown published state) is left alone.
 * Returns what changed. now_wall_ms and now_mono_ms are the current wall
 * clock and monotonic times in ms. */
circuit_adopt_t ifq_circuit_adopt(circuit_t *cb, int remote_state, int64_t changed_ms,
                                  int64_t now_wall_ms, int64_t now_mono_ms, int open_ms);

#endif
