/*
 * cli.h - what the `inferq` commands share: exit codes, error helpers, the
 * Kafka round trip (one producer for requests, one group-less listener on a
 * reply topic) and a small set of strings for in-flight custom_ids.
 *
 * Exit codes (documented in docs/cli.md, the same for every command):
 *   0   done, every request succeeded
 *   1   done, but some request failed / nothing matched / not found
 *   2   usage or input error (bad flag, unreadable or invalid input file,
 *       duplicate custom_id): nothing was sent
 *   3   infrastructure: Kafka or Redis unreachable, or results did not arrive
 *       in time
 *   130 interrupted (SIGINT or SIGTERM); a batch can be resumed
 */
#ifndef IFQ_CLI_H
#define IFQ_CLI_H

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "avro_codec.h"
#include "config.h"

enum {
    CLI_OK = 0,
    CLI_FAILED = 1,
    CLI_USAGE = 2,
    CLI_INFRA = 3,
    CLI_INTERRUPTED = 130,
};

/* Number of SIGINT/SIGTERM received since cli_signals_install (the only
 * mutable global of the CLI, written by the signal handler). */
extern volatile sig_atomic_t cli_interrupted;
/* Installs the SIGINT/SIGTERM handler (no SA_RESTART: blocking calls return
 * early) and ignores SIGPIPE. */
void cli_signals_install(void);

/* Prints "inferq: <message>" to stderr and exits with code. */
void cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* Parses a decimal integer in [lo, hi]; 0 or -1. */
int cli_parse_int(const char *s, long lo, long hi, long *out);

/* ---- strings set (open addressing, owned copies) ---------------------- */
typedef struct {
    char **keys;
    size_t cap, n;
} cli_strset_t;

void cli_strset_init(cli_strset_t *s, size_t expect);
/* 1 added, 0 already present. Grows as needed. */
int cli_strset_add(cli_strset_t *s, const char *k);
/* 1 removed, 0 absent. */
int cli_strset_del(cli_strset_t *s, const char *k);
int cli_strset_has(const cli_strset_t *s, const char *k);
void cli_strset_free(cli_strset_t *s);

/* ---- 64-bit hash set (8 bytes a slot, at most half full: 16 bytes per
 * member on average, 32 at worst right after growing) --------------------- */
typedef struct {
    uint64_t *slots; /* 0 = empty; the value 0 is stored as a flag */
    size_t cap, n;
    int has_zero;
} cli_u64set_t;

void cli_u64set_init(cli_u64set_t *s);
int cli_u64set_add(cli_u64set_t *s, uint64_t h); /* 1 added, 0 present */
int cli_u64set_has(const cli_u64set_t *s, uint64_t h);
void cli_u64set_free(cli_u64set_t *s);
uint64_t cli_id_hash(const char *id);

/* ---- Kafka ------------------------------------------------------------ */
/* Called for a request whose delivery failed (key = its custom_id). */
typedef void (*cli_dr_fail_cb)(void *opaque, const char *custom_id, size_t len, const char *why);

typedef struct {
    ifq_config_t *cfg; /* borrowed */
    rd_kafka_t *producer;
    rd_kafka_t *listener;
    ifq_avro_t *avro; /* owned, when use_avro */
    int use_avro;
    long delivery_failures;
    long outstanding; /* produced, delivery report not yet seen */
    cli_dr_fail_cb on_dr_fail;
    void *dr_opaque;
} cli_client_t;

/* Opens the producer (when with_producer) and assigns the listener to every
 * partition of reply_topic at its end (or beginning), as queried now, so
 * that nothing produced afterwards can be missed. hi (optional, caller
 * frees) receives the high watermark of each partition, indexed by
 * partition id, and *n_parts their number. Returns 0, or CLI_INFRA with a
 * message printed. */
int cli_client_open(cli_client_t *c, const char *reply_topic, int with_producer, int from_beginning,
                    int64_t **hi, int *n_parts);
void cli_client_close(cli_client_t *c);
/* Produces one request (JSON or Avro) keyed by custom_id to topic; waits
 * while the local queue is full. Returns 0 or an exit code. */
int cli_produce(cli_client_t *c, const char *topic, json_t *req, const char *custom_id);

/* ---- formatting ------------------------------------------------------- */
void cli_fmt_duration(char *buf, size_t n, double seconds); /* "1:02:03", "4:05" */

#endif
