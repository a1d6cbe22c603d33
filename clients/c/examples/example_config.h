/*
 * example_config.h - the options every example shares, turned into an
 * inferq_config_t:
 *
 *   -b HOST:PORT   bootstrap.servers (default $INFERQ_BOOTSTRAP or localhost:9092)
 *   -p PREFIX      topic.prefix (default inferq)
 *   -a             encoding avro (default json)
 *   -r TOPIC       read results from this shared reply topic instead of a private one
 *   -X KEY=VALUE   any other config key, e.g. -X kafka.security.protocol=SASL_SSL
 *
 * example_option() returns 1 when it took the option, 0 when it is not one of
 * these, -1 (after printing why) when its value is bad.
 */
#ifndef INFERQ_EXAMPLE_CONFIG_H
#define INFERQ_EXAMPLE_CONFIG_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <inferq/client.h>

#define EXAMPLE_OPTS "b:p:ar:X:"

static int example_set(inferq_config_t *cfg, const char *key, const char *value)
{
    char err[256];
    if (inferq_config_set(cfg, key, value, err, sizeof(err)) != INFERQ_OK) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 1;
}

static int example_option(inferq_config_t *cfg, int opt, char *arg)
{
    char *eq;
    switch (opt) {
    case 'b':
        return example_set(cfg, "bootstrap.servers", arg);
    case 'p':
        return example_set(cfg, "topic.prefix", arg);
    case 'a':
        return example_set(cfg, "encoding", "avro");
    case 'r':
        return example_set(cfg, "reply.topic", arg);
    case 'X':
        if (!(eq = strchr(arg, '='))) {
            fprintf(stderr, "-X wants KEY=VALUE\n");
            return -1;
        }
        *eq = '\0';
        return example_set(cfg, arg, eq + 1);
    default:
        return 0;
    }
}

/* A config with the default bootstrap servers set (caller owns). */
static inferq_config_t *example_config_new(void)
{
    inferq_config_t *cfg = inferq_config_new();
    const char *bs = getenv("INFERQ_BOOTSTRAP");
    if (cfg)
        inferq_config_set(cfg, "bootstrap.servers", bs && *bs ? bs : "localhost:9092", NULL, 0);
    return cfg;
}

#endif
