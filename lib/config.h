/*
 * config.h - the inferq configuration file (YAML, or JSON which is YAML).
 *
 * One file configures every program: Kafka and Redis connections, topic
 * names, the model catalog (deployments and aliases) and per-program
 * settings. See docs/configuration.md. The parsed document stays available
 * as `root` for modules that read their own sections.
 */
#ifndef IFQ_CONFIG_H
#define IFQ_CONFIG_H

#include <jansson.h>
#include <stddef.h>

#include "common.h"
#include "complexity.h"

typedef struct ifq_deployment {
    const char *name;                  /* catalog name, also the topic suffix */
    const char *provider;              /* "openai" (more in later providers) */
    const char *base_url;              /* e.g. http://127.0.0.1:8080/v1 */
    const char *model;                 /* upstream model name sent to the provider */
    const char *api_key_env;           /* environment variable holding the key, or NULL */
    int max_inflight;                  /* per-process cap on concurrent calls */
    int timeout_ms;                    /* per-attempt HTTP timeout */
    const char *api_version;           /* azure: api-version query parameter */
    const char *region;                /* bedrock: AWS region */
    const char *aws_access_key_env;    /* bedrock: env var of the access key id */
    const char *aws_secret_key_env;    /* bedrock: env var of the secret key */
    const char *aws_session_token_env; /* bedrock: env var of a session token, or NULL */
    double price_input_per_mtok;       /* USD per million input tokens */
    double price_output_per_mtok;      /* USD per million output tokens */
    int context_window;                /* tokens; 0 = unknown */
    json_t *tags;                      /* object of string tags (e.g. tier: small), borrowed */
    char default_url[256];             /* storage for a base_url derived from the provider */
    char topic[IFQ_MAX_TOPIC + 1];
} ifq_deployment_t;

typedef enum {
    IFQ_STRATEGY_FAILOVER = 0, /* the chain in order */
    IFQ_STRATEGY_WEIGHTED,     /* first pick by weight, the rest in order as fallback */
    IFQ_STRATEGY_LEAST_BUSY,   /* fewest in-flight requests (published by workers) first */
    IFQ_STRATEGY_COST,         /* complexity score picks the small or the large tier */
} ifq_strategy_t;

typedef struct ifq_alias {
    const char *name;
    ifq_strategy_t strategy;
    size_t n;                 /* chain length, >= 1 (cost: small tier then large tier) */
    ifq_deployment_t **chain; /* borrowed from the config's deployments */
    double *weights;          /* weighted: one per chain entry */
    size_t n_small;           /* cost: chain[0..n_small) is the small tier, the rest large */
    json_t *router;           /* the alias's section when written as a mapping, borrowed */
    ifq_complexity_cfg_t cx;  /* cost: the parsed complexity router */
    int health_aware;         /* skip deployments whose circuit is open (default on) */
} ifq_alias_t;

typedef struct ifq_team {
    const char *name;
    json_t *models;       /* array of alias/deployment names, "*" = all; borrowed */
    json_t *reply_topics; /* array of topic names or "prefix*" patterns; borrowed */
    const char *guardrail_policy;
    const char *hmac_key_env;                    /* key for signed requests on the shared topic */
    int rpm, tpm;                                /* 0 = unlimited */
    json_t *model_limits;                        /* object model -> {rpm, tpm}; borrowed */
    double budget_daily_usd, budget_monthly_usd; /* 0 = none */
    int hold_low_priority; /* over a limit, low priority waits instead of failing */
    int log_requests;      /* write requests and results to the logs topic */
} ifq_team_t;

typedef struct ifq_config {
    json_t *root; /* the whole document; strings below are borrowed from it */

    /* kafka */
    const char *bootstrap;
    const char *prefix;
    int partitions;
    int replication_factor;
    int create_topics;
    json_t *kafka_props; /* object of librdkafka properties, borrowed */
    char topic_requests[IFQ_MAX_TOPIC + 1];
    char topic_replies[IFQ_MAX_TOPIC + 1];
    char topic_traces[IFQ_MAX_TOPIC + 1];
    char topic_dlq[IFQ_MAX_TOPIC + 1];
    char topic_logs[IFQ_MAX_TOPIC + 1]; /* <prefix>.logs: opt-in request logging */

    /* redis */
    const char *redis_url;
    int state_ttl_s;

    /* logging */
    const char *log_level;

    /* tracing */
    int trace_enabled;        /* write spans to topic_traces */
    double trace_sample_rate; /* for traces without a sampled parent; 0..1 */

    /* broker */
    int broker_admin_port;
    const char *broker_group;
    size_t max_message_bytes;
    int broker_batch_size;

    /* worker */
    int worker_admin_port;
    const char *worker_group_prefix;
    json_t *worker_deployments; /* array of names or "*" */
    int worker_max_inflight;
    int worker_threads;         /* event loops, each on its own thread */
    int worker_max_undelivered; /* 0: worker_max_inflight */
    int max_attempts;
    int backoff_base_ms;
    int backoff_max_ms;
    int shutdown_grace_ms;
    int circuit_failure_threshold;
    int circuit_open_ms;

    ifq_deployment_t *deployments;
    size_t n_deployments;
    ifq_alias_t *aliases;
    size_t n_aliases;
    ifq_team_t *teams;
    size_t n_teams;

    /* broker, continued */
    const char *default_team; /* team of unsigned requests on <prefix>.requests */
    int transactions;         /* exactly-once consume-route-produce-commit */
    const char *transactional_id;
    int hold_max_ms; /* longest a held low-priority request waits per round */

    /* cache */
    int cache_enabled;
    int cache_ttl_s;
    size_t cache_max_bytes;
    int cache_per_team;

    /* routing */
    json_t *routing_auto; /* `routing.auto`: the cost router behind model "auto", borrowed */
} ifq_config_t;

/* Loads and validates a config file. Environment overrides
 * INFERQ_KAFKA_BOOTSTRAP and INFERQ_REDIS_URL win over the file. Returns NULL
 * with a readable reason (file, line, key) in errstr. Caller owns the result. */
ifq_config_t *ifq_config_load(const char *path, char *errstr, size_t errstr_size);
/* Same from an in-memory YAML/JSON document (used by tests). */
ifq_config_t *ifq_config_parse(const char *text, size_t len, char *errstr, size_t errstr_size);
void ifq_config_destroy(ifq_config_t *cfg); /* NULL is a no-op */

/* Parses YAML (1.1 core subset: mappings, sequences, scalars; no anchors or
 * tags) into JSON. Plain scalars become numbers, booleans and null where they
 * look like one. Returns NULL with errstr "line L, column C: reason". */
json_t *ifq_yaml_parse(const char *text, size_t len, char *errstr, size_t errstr_size);

/* Looks up a deployment by name; NULL when absent. */
ifq_deployment_t *ifq_config_deployment(const ifq_config_t *cfg, const char *name);

/* Writes a scalar (string, number, boolean) as text, as librdkafka and
 * environment-style settings want it. Returns 0, or -1 for other types. */
int ifq_config_scalar(const json_t *v, char *buf, size_t size);

/* Looks up a team by name; NULL when absent. */
ifq_team_t *ifq_config_team(const ifq_config_t *cfg, const char *name);
/* 1 when the team may use the alias or deployment `model`. */
int ifq_team_allows_model(const ifq_team_t *team, const char *model);
/* 1 when the team may name `topic` as its reply topic (the default reply
 * topic is always allowed). */
int ifq_team_allows_reply(const ifq_team_t *team, const ifq_config_t *cfg, const char *topic);
/* Per-model limits of a team (0 = none). */
void ifq_team_model_limits(const ifq_team_t *team, const char *model, int *rpm, int *tpm);

/* The per-model topic of a deployment for a priority lane:
 * <prefix>.model.<d> (normal), <prefix>.model-high.<d>, <prefix>.model-low.<d>. */
void ifq_lane_topic(const ifq_config_t *cfg, const ifq_deployment_t *dep, int lane, char *out,
                    size_t size);

/* Returns 1 when s is a legal Kafka topic name ([A-Za-z0-9._-], 1..249). */
int ifq_topic_name_valid(const char *s);

#endif
