/*
 * backlog.h - how far the workers are behind: consumer lag of each
 * deployment's worker group (<worker.group_id_prefix>.<deployment>) on its
 * per-model topics (the three priority lanes), from the Kafka admin API
 * (ListConsumerGroupOffsets) and the partitions' high watermarks.
 *
 * One object owns one Kafka client and caches its answer for a few
 * seconds; calls are serialised by a mutex, so any thread may use it.
 */
#ifndef IFQ_BACKLOG_H
#define IFQ_BACKLOG_H

#include <jansson.h>

#include "config.h"

typedef struct ifq_backlog ifq_backlog_t;

/* cfg is borrowed and must outlive the object. Returns NULL with errstr. */
ifq_backlog_t *ifq_backlog_new(const ifq_config_t *cfg, char *errstr, size_t errstr_size);
void ifq_backlog_destroy(ifq_backlog_t *b); /* NULL is a no-op */

/* One entry per deployment: {"deployment", "group", "lag", "lanes":
 * {"normal","high","low"}, "partitions", "committed" (the group has
 * committed offsets), "error" (only when Kafka did not answer)}. Answers
 * from the cache when it is younger than cache_ms; a refresh takes at
 * most about timeout_ms. Caller owns the result (an array). */
json_t *ifq_backlog_get(ifq_backlog_t *b, int cache_ms, int timeout_ms);

#endif
