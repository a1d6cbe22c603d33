/*
 * prompt_cmd.h - `inferq prompt ...`: push, list, show, label and render
 * prompt templates stored in Redis (see docs/prompts.md).
 */
#ifndef IFQ_CLI_PROMPT_CMD_H
#define IFQ_CLI_PROMPT_CMD_H

#include "config.h"

/* Runs `inferq prompt SUBCOMMAND ...`; argv[0] is "prompt". cfg is borrowed
 * (its redis url and key prefix are used). Returns the process exit code:
 * 0 done, 1 refused (invalid template or variables, no such prompt, version
 * or label), 2 usage error, 3 Redis unreachable. */
int ifq_cli_prompt(ifq_config_t *cfg, int argc, char **argv);

#endif
