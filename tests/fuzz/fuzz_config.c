/*
 * fuzz_config.c - the YAML configuration loader on arbitrary text: it must
 * either load or fail with a message, never crash or leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512] = "";
    ifq_config_t *cfg = ifq_config_parse((const char *)data, size, err, sizeof(err));
    if (!cfg && !err[0])
        abort();
    ifq_config_destroy(cfg);
    return 0;
}
