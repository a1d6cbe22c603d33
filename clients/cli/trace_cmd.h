/*
 * trace_cmd.h - `inferq trace CUSTOM_ID`: a request's spans from the traces
 * topic, drawn as a waterfall in the terminal (docs/dashboard.md).
 */
#ifndef IFQ_CLI_TRACE_CMD_H
#define IFQ_CLI_TRACE_CMD_H

#include "config.h"

/* Runs `inferq trace CUSTOM_ID [--json] [--redis URL] [--bootstrap B]
 * [--wait SECONDS] [--width N]`; argv[0] is "trace". cfg is borrowed (Redis
 * URL, key prefix, Kafka settings and traces topic; the options override
 * the two addresses). Returns the process exit code: 0 spans found, 1 no
 * such request, 2 usage error or Redis/Kafka unreachable, 3 the request is
 * known but no span of it was found. */
int ifq_cli_trace(ifq_config_t *cfg, int argc, char **argv);

#endif
