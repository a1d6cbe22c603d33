/*
 * kafka.h - librdkafka helpers: client construction from the config, topic
 * creation, and header access. Errors are translated here, once.
 */
#ifndef IFQ_KAFKA_H
#define IFQ_KAFKA_H

#include <librdkafka/rdkafka.h>

#include "config.h"

/* A producer tuned for the gateway: idempotent, lz4, lingering linger_ms
 * before sending a batch (unless kafka.properties sets linger.ms), and
 * with message.copy.max.bytes = copy_max_bytes unless that is < 0 (0:
 * produce requests refer to the messages' payloads instead of copying
 * them, which are kept until their delivery report anyway).
 * Delivery reports go to dr_cb (may be NULL). opaque is the rd_kafka opaque.
 * transactional_id (may be NULL) makes it a transactional producer; the
 * caller then runs rd_kafka_init_transactions. */
rd_kafka_t *ifq_kafka_producer_new(const ifq_config_t *cfg,
                                   void (*dr_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                                   void *opaque, const char *transactional_id, int linger_ms,
                                   int copy_max_bytes, char *errstr, size_t errstr_size);

/* A consumer in group_id with manual offset commits and offsets stored only
 * by the caller. Reads from the earliest offset when the group has none.
 * rebalance_cb (may be NULL) must (incrementally) assign/unassign itself. */
typedef void(ifq_rebalance_cb_t)(rd_kafka_t *, rd_kafka_resp_err_t,
                                 rd_kafka_topic_partition_list_t *, void *);
rd_kafka_t *ifq_kafka_consumer_new(const ifq_config_t *cfg, const char *group_id,
                                   ifq_rebalance_cb_t *rebalance_cb, void *opaque, char *errstr,
                                   size_t errstr_size);

/* Bytes of pre-fetch allowed per message the consumer may start at once. */
#define IFQ_KAFKA_PREFETCH_BYTES_PER_MSG 1024
/* The same, for a consumer that never has more than max_buffered messages
 * in progress (a worker's in-flight cap), so reading further ahead only
 * costs memory: each queue its partitions are forwarded to (or the consumer
 * queue) stops pre-fetching at a quarter of max_buffered messages (at
 * least 100) or max_buffered KiB (1-16 MiB), and one fetch brings at most 32 KiB per
 * partition (a larger message still arrives whole). max_buffered <= 0 is
 * ifq_kafka_consumer_new (16 MiB per queue). kafka.properties in the config
 * override each of these. */
rd_kafka_t *ifq_kafka_consumer_new_bounded(const ifq_config_t *cfg, const char *group_id,
                                           ifq_rebalance_cb_t *rebalance_cb, void *opaque,
                                           int max_buffered, char *errstr, size_t errstr_size);

/* Creates the topics that do not exist yet (cfg->partitions each). Topics
 * named `requests` get a larger max.message.bytes so that an oversized request
 * reaches the broker and gets a clear error instead of failing in the
 * producer. Returns IFQ_OK or IFQ_ERR_IO with errstr. */
int ifq_kafka_ensure_topics(rd_kafka_t *rk, const ifq_config_t *cfg, const char *const *topics,
                            size_t n, int timeout_ms, char *errstr, size_t errstr_size);

/* Copies header `name` of msg into buf as a NUL-terminated string. Returns
 * the value length, or -1 when absent or too long. */
int ifq_kafka_header(const rd_kafka_message_t *msg, const char *name, char *buf, size_t size);

/* Adds the dead-letter headers (docs/wire-contract.md): why, its code,
 * where the message was read, and when. */
void ifq_kafka_dlq_headers(rd_kafka_headers_t *h, const char *reason, const char *code,
                           const char *topic, int32_t partition, int64_t offset);

/* Returns 1 when the broker(s) answer a metadata request within timeout_ms. */
int ifq_kafka_reachable(rd_kafka_t *rk, int timeout_ms);

#endif
