/*
 * circuit.c - adopting circuit states published by other workers (see
 * circuit.h).
 */
#include "circuit.h"

circuit_adopt_t ifq_circuit_adopt(circuit_t *cb, int remote_state, int64_t changed_ms,
                                  int64_t now_wall_ms, int64_t now_mono_ms, int open_ms)
{
    if (cb->state == CIRCUIT_CLOSED && remote_state == 1) {
        int64_t age = now_wall_ms - changed_ms;
        if (changed_ms <= 0 || age >= open_ms)
            return CIRCUIT_ADOPT_NONE; /* stale: that circuit has half-opened by now */
        if (age < 0)
            age = 0; /* another host's clock ahead of ours */
        cb->state = CIRCUIT_OPEN;
        cb->open_until = now_mono_ms + (open_ms - age);
        cb->probe_inflight = 0;
        cb->adopted = 1;
        cb->adopted_changed_ms = changed_ms;
        return CIRCUIT_ADOPT_OPEN;
    }
    if (cb->adopted && cb->state == CIRCUIT_OPEN && remote_state == 0 &&
        changed_ms > cb->adopted_changed_ms) {
        cb->state = CIRCUIT_CLOSED;
        cb->failures = 0;
        cb->adopted = 0;
        return CIRCUIT_ADOPT_CLOSE;
    }
    return CIRCUIT_ADOPT_NONE;
}
