/*
 * fuzz_trace_otlp.c - the span reader's OTLP/JSON parser (lib/trace_read.c)
 * on arbitrary bytes: anyone who can write to the traces topic controls
 * them. Parsing, ordering into a tree and rendering as JSON must never
 * crash, and every span kept must belong to the requested trace.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trace_read.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char tid[] = "0af7651916cd43dd8448eb211c80319c";
    ifq_trace_t t;
    ifq_trace_init(&t);
    ifq_trace_add_otlp(&t, tid, data, size);
    /* twice: duplicates and a second message of the same trace */
    ifq_trace_add_otlp(&t, tid, data, size);
    ifq_trace_order(&t);
    json_t *j = ifq_trace_to_json(&t, tid);
    if (!j)
        abort();
    char *s = json_dumps(j, 0);
    if (!s)
        abort();
    free(s);
    json_decref(j);
    ifq_trace_clear(&t);
    return 0;
}
