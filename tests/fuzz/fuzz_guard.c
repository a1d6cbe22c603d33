/*
 * fuzz_guard.c - the guardrail engine on arbitrary bytes: as plain text
 * (any bytes, invalid UTF-8 included) through every transform, and, when
 * the bytes parse as JSON, as a request body and a response body. It must
 * never crash or leak, transformed output must be terminated at its length,
 * and findings may only hold names, numbers and spans (never matched text).
 *
 *   cmake -G Ninja -B build-fuzz -DINFERQ_FUZZ=ON -DCMAKE_C_COMPILER=clang
 *   ninja -C build-fuzz fuzz_guard
 *   build-fuzz/bin/fuzz_guard -max_total_time=300 -max_len=65536 /tmp/guard-corpus
 * tests/fuzz/corpus/guard
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"

static ifq_guard_t *g;

static void check_verdict(const ifq_guard_verdict_t *v)
{
    if (!json_is_array(v->findings))
        abort();
    size_t i;
    json_t *f;
    json_array_foreach(v->findings, i, f)
    {
        /* findings carry names, numbers and spans only */
        const char *key;
        json_t *val;
        json_object_foreach(f, key, val)
        {
            if (strcmp(key, "detector") && strcmp(key, "entity") && strcmp(key, "action") &&
                strcmp(key, "count") && strcmp(key, "score") && strcmp(key, "spans") &&
                strcmp(key, "signals") && strcmp(key, "message") && strcmp(key, "part") &&
                strcmp(key, "choice") && strcmp(key, "tool_call"))
                abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g) {
        static const char y[] =
            "{\"guardrails\":{\"hmac_key_env\":\"IFQ_FUZZ_KEY\",\"policies\":{"
            "\"redact\":{\"scope\":\"all\",\"detectors\":{\"pii\":\"redact\",\"secrets\":"
            "\"redact\","
            "\"injection\":\"redact\"},\"deny\":[\"(?i)forbidden\"],\"limits\":{\"time_budget_ms\":"
            "500}},"
            "\"mask\":{\"scope\":[\"latest_user\",\"system\"],\"detectors\":{\"pii\":\"mask\","
            "\"secrets\":\"hash\",\"injection\":\"block\"},\"exempt\":[\"@example\\\\.com$\"]}}}}";
        setenv("IFQ_FUZZ_KEY", "fuzz", 1);
        char err[512];
        ifq_config_t *cfg = ifq_config_parse(y, sizeof(y) - 1, err, sizeof(err));
        if (!cfg)
            abort();
        g = ifq_guard_from_config(cfg, err, sizeof(err));
        ifq_config_destroy(cfg);
        if (!g)
            abort();
    }
    const char *names[] = {"redact", "mask", "default"};
    ifq_guard_verdict_t v;
    ifq_guard_verdict_init(&v);
    for (size_t k = 0; k < 3; k++) {
        const ifq_guard_policy_t *p = ifq_guard_policy(g, names[k]);
        char *out = NULL;
        size_t ol = 0;
        if (ifq_guard_scan_text(p, k == 2 ? IFQ_GUARD_OUTPUT : IFQ_GUARD_INPUT, (const char *)data,
                                size, &out, &ol, &v) == IFQ_OK)
            check_verdict(&v);
        if (out && out[ol] != 0)
            abort(); /* transformed text is NUL-terminated at its length */
        free(out);
    }
    json_error_t je;
    json_t *body = json_loadb((const char *)data, size, 0, &je);
    if (body) {
        for (size_t k = 0; k < 3; k++) {
            const ifq_guard_policy_t *p = ifq_guard_policy(g, names[k]);
            if (ifq_guard_scan_request(p, body, (ifq_url_kind_t)(k % 3), &v) == IFQ_OK)
                check_verdict(&v);
            if (ifq_guard_scan_response(p, body, IFQ_URL_CHAT, &v) == IFQ_OK)
                check_verdict(&v);
        }
        char *s = json_dumps(body, 0); /* transformed strings are still valid UTF-8 */
        if (json_is_object(body) && !s)
            abort();
        free(s);
        json_decref(body);
    }
    ifq_guard_verdict_clear(&v);
    return 0;
}
