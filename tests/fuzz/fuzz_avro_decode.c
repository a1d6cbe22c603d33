/*
 * fuzz_avro_decode.c - libFuzzer target for ifq_avro_decode(), the parser
 * that sits on the Kafka trust boundary for Avro requests and results.
 *
 * Every input is decoded as a request and as a result, with Confluent ids
 * registered so both framings are reachable. Beyond "no crash, no leak, no
 * UB", it checks two properties and aborts when they fail:
 *   - a failed decode always says why (errstr is not empty);
 *   - whatever decodes re-encodes (our reader never accepts what avro-c's
 *     writer cannot express), and the re-encoded bytes decode to an equal
 *     JSON value (our reader and avro-c's writer agree on the layout).
 *
 * Seed corpus: the .avro files in schemas/vectors/. Build with -DINFERQ_FUZZ=ON
 * -DCMAKE_C_COMPILER=clang, then:
 *   ./bin/fuzz_avro_decode -max_total_time=120 corpus/ schemas/vectors/
 */
#include "avro_codec.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CONFLUENT_REQUEST_ID 1
#define FUZZ_CONFLUENT_RESULT_ID 2

static ifq_avro_t *codec;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char errstr[256];
    codec = ifq_avro_new(errstr, sizeof(errstr));
    if (!codec) {
        fprintf(stderr, "ifq_avro_new: %s\n", errstr);
        abort();
    }
    ifq_avro_set_confluent_id(codec, IFQ_AVRO_REQUEST, FUZZ_CONFLUENT_REQUEST_ID);
    ifq_avro_set_confluent_id(codec, IFQ_AVRO_RESULT, FUZZ_CONFLUENT_RESULT_ID);
    return 0;
}

static void check_kind(ifq_avro_kind_t kind, const uint8_t *data, size_t size)
{
    char errstr[512] = "";
    json_t *obj = ifq_avro_decode(codec, kind, data, size, errstr, sizeof(errstr));
    if (!obj) {
        if (!errstr[0]) {
            fprintf(stderr, "decode failed without a reason\n");
            abort();
        }
        return;
    }
    void *out = NULL;
    size_t out_len = 0;
    if (ifq_avro_encode(codec, kind, obj, &out, &out_len, errstr, sizeof(errstr))) {
        fprintf(stderr, "decoded but cannot re-encode: %s\n", errstr);
        abort();
    }
    json_t *again = ifq_avro_decode(codec, kind, out, out_len, errstr, sizeof(errstr));
    if (!again || !json_equal(obj, again)) {
        fprintf(stderr, "re-encoded datum decodes differently: %s\n", again ? "" : errstr);
        abort();
    }
    json_decref(again);
    free(out);
    json_decref(obj);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)ifq_avro_is_framed(data, size);
    check_kind(IFQ_AVRO_REQUEST, data, size);
    check_kind(IFQ_AVRO_RESULT, data, size);
    return 0;
}
