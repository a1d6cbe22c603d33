/*
 * fuzz_client_result.c - the C client library's result decoder
 * (clients/c) on arbitrary bytes, as read from a reply topic: JSON or Avro
 * detection, decoding and every accessor. It must never crash; a decoded
 * result always has a custom_id and a status.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <inferq/client.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    inferq_result_t *r = inferq_result_from_bytes(data, size, err, sizeof(err));
    if (!r) {
        if (!err[0])
            abort(); /* a refusal always says why */
        return 0;
    }
    if (!inferq_result_custom_id(r) || !inferq_result_status(r))
        abort();
    int64_t in = 0, out = 0;
    inferq_result_usage(r, &in, &out, NULL);
    (void)inferq_result_ok(r);
    (void)inferq_result_error_code(r);
    (void)inferq_result_error_message(r);
    (void)inferq_result_http_status(r);
    (void)inferq_result_body_json(r);
    (void)inferq_result_content(r);
    (void)inferq_result_deployment(r);
    (void)inferq_result_cost_usd(r);
    if (!inferq_result_json(r))
        abort();
    inferq_result_free(r);
    return 0;
}
