/*
 * fuzz_request_decode.c - the broker's whole per-message decision on
 * arbitrary bytes: detection, JSON or Avro decode, validation, routing and
 * result building. It must never crash, and every input must end in exactly
 * one well-formed decision.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"

static ifq_config_t *cfg;
static ifq_avro_t *avro;
static ifq_pipeline_t pipeline;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!cfg) {
        static const char y[] = "deployments:\n  d1:\n    base_url: http://127.0.0.1:1/v1\n"
                                "aliases:\n  chat-default: [d1]\n"
                                "broker:\n  max_message_bytes: 65536\n";
        char err[256];
        cfg = ifq_config_parse(y, sizeof(y) - 1, err, sizeof(err));
        avro = ifq_avro_new(err, sizeof(err));
        if (!cfg || !avro)
            abort();
        pipeline.cfg = cfg;
        pipeline.avro = avro;
    }
    ifq_msgmeta_t meta = {.topic = "inferq.requests", .offset = 42, .timestamp = 1700000000000LL};
    ifq_decision_t d;
    ifq_pipeline_decide(&pipeline, data, size, &meta, 1800000000000LL, &d);
    ifq_decision_finish(&d);
    if (d.kind == IFQ_OUT_DLQ) {
        if (d.value || !d.reason[0])
            abort();
    } else {
        json_error_t je;
        json_t *j = json_loadb(d.value, d.len, 0, &je);
        if (!json_is_object(j))
            abort(); /* we produced something that is not JSON */
        json_decref(j);
    }
    ifq_decision_clear(&d);
    return 0;
}
