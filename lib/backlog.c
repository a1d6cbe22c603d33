/*
 * backlog.c - consumer lag of the worker groups on the per-model topics
 * (see backlog.h).
 */
#include "backlog.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "envelope.h"
#include "kafka.h"

#define BACKLOG_MEMO 512
#define BACKLOG_PROBE_MS 1000

/* What a probe found at (topic, partition, offset): a transaction marker. */
typedef struct {
    uint64_t topic_hash;
    int32_t partition;
    int64_t offset;
} marker_t;

struct ifq_backlog {
    const ifq_config_t *cfg;
    rd_kafka_t *rk;
    rd_kafka_t *probe; /* read_committed, partition EOF on; created on first use */
    marker_t memo[BACKLOG_MEMO];
    size_t nmemo;
    pthread_mutex_t mu;
    json_t *cached;
    int64_t cached_at; /* monotonic ms */
};

ifq_backlog_t *ifq_backlog_new(const ifq_config_t *cfg, char *errstr, size_t errstr_size)
{
    ifq_backlog_t *b = calloc(1, sizeof(*b));
    if (!b) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    b->cfg = cfg;
    /* A consumer that never subscribes: it only asks the cluster. */
    char group[64];
    snprintf(group, sizeof(group), "inferq-backlog-%d", (int)getpid());
    b->rk = ifq_kafka_consumer_new(cfg, group, NULL, NULL, errstr, errstr_size);
    if (!b->rk) {
        free(b);
        return NULL;
    }
    pthread_mutex_init(&b->mu, NULL);
    return b;
}

void ifq_backlog_destroy(ifq_backlog_t *b)
{
    if (!b)
        return;
    rd_kafka_destroy(b->rk);
    if (b->probe) {
        rd_kafka_consumer_close(b->probe);
        rd_kafka_destroy(b->probe);
    }
    json_decref(b->cached);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

/* The committed offsets of group (caller destroys), or NULL with *err. */
static rd_kafka_topic_partition_list_t *committed(ifq_backlog_t *b, const char *group,
                                                  int timeout_ms, rd_kafka_resp_err_t *err)
{
    char errstr[256];
    rd_kafka_queue_t *q = rd_kafka_queue_new(b->rk);
    rd_kafka_AdminOptions_t *opt =
        rd_kafka_AdminOptions_new(b->rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
    rd_kafka_AdminOptions_set_request_timeout(opt, timeout_ms, errstr, sizeof(errstr));
    rd_kafka_ListConsumerGroupOffsets_t *req = rd_kafka_ListConsumerGroupOffsets_new(group, NULL);
    rd_kafka_ListConsumerGroupOffsets(b->rk, &req, 1, opt, q);
    rd_kafka_ListConsumerGroupOffsets_destroy(req);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 1000);
    rd_kafka_topic_partition_list_t *out = NULL;
    *err = RD_KAFKA_RESP_ERR__TIMED_OUT;
    const rd_kafka_ListConsumerGroupOffsets_result_t *res =
        ev ? rd_kafka_event_ListConsumerGroupOffsets_result(ev) : NULL;
    if (ev && rd_kafka_event_error(ev)) {
        *err = rd_kafka_event_error(ev);
    } else if (res) {
        size_t n = 0;
        const rd_kafka_group_result_t **g =
            rd_kafka_ListConsumerGroupOffsets_result_groups(res, &n);
        const rd_kafka_error_t *ge = n ? rd_kafka_group_result_error(g[0]) : NULL;
        if (n && !ge) {
            const rd_kafka_topic_partition_list_t *p = rd_kafka_group_result_partitions(g[0]);
            out = p ? rd_kafka_topic_partition_list_copy(p) : rd_kafka_topic_partition_list_new(0);
            *err = RD_KAFKA_RESP_ERR_NO_ERROR;
        } else {
            *err = ge ? rd_kafka_error_code(ge) : RD_KAFKA_RESP_ERR__FAIL;
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    return out;
}

static const struct rd_kafka_metadata_topic *md_topic(const struct rd_kafka_metadata *md,
                                                      const char *name)
{
    for (int i = 0; md && i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, name) == 0 && !md->topics[i].err)
            return &md->topics[i];
    return NULL;
}

/* 1 when the one offset between a group's commit and the high watermark
 * is a transaction marker, not a message. Producers with transactions (the
 * broker's default) end each transaction with a control record, and a
 * consumer commits the offset after its last message, so an idle
 * partition looks one behind. A read_committed fetch at that offset tells:
 * a message, or the end of the partition. Verdicts are remembered. */
static int is_marker(ifq_backlog_t *b, const char *topic, int32_t partition, int64_t offset)
{
    uint64_t th = ifq_fnv1a64(topic, strlen(topic), 0);
    for (size_t i = 0; i < b->nmemo; i++)
        if (b->memo[i].topic_hash == th && b->memo[i].partition == partition &&
            b->memo[i].offset == offset)
            return 1;
    if (!b->probe) {
        ifq_config_t c = *b->cfg;
        c.kafka_props = b->cfg->kafka_props ? json_deep_copy(b->cfg->kafka_props) : json_object();
        json_object_set_new(c.kafka_props, "enable.partition.eof", json_true());
        json_object_set_new(c.kafka_props, "isolation.level", json_string("read_committed"));
        char group[64], errstr[256];
        snprintf(group, sizeof(group), "inferq-backlog-probe-%d", (int)getpid());
        b->probe = ifq_kafka_consumer_new(&c, group, NULL, NULL, errstr, sizeof(errstr));
        json_decref(c.kafka_props);
        if (!b->probe)
            return 0;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
    int verdict = -1;
    if (rd_kafka_assign(b->probe, l) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        int64_t deadline = ifq_mono_ms() + BACKLOG_PROBE_MS;
        while (verdict < 0 && ifq_mono_ms() < deadline) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(b->probe, 100);
            if (!m)
                continue;
            if (m->partition == partition && rd_kafka_topic_name(m->rkt) &&
                strcmp(rd_kafka_topic_name(m->rkt), topic) == 0) {
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    verdict = 1;
                else if (!m->err)
                    verdict = 0;
            }
            rd_kafka_message_destroy(m);
        }
        rd_kafka_assign(b->probe, NULL);
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (verdict == 1) {
        marker_t *mk =
            &b->memo[b->nmemo < BACKLOG_MEMO ? b->nmemo++ : (size_t)offset % BACKLOG_MEMO];
        mk->topic_hash = th;
        mk->partition = partition;
        mk->offset = offset;
    }
    return verdict == 1;
}

/* The lag of one deployment's group over its lane topics. */
static json_t *deployment_lag(ifq_backlog_t *b, const struct rd_kafka_metadata *md,
                              const ifq_deployment_t *dep, int timeout_ms)
{
    static const char *const lanes[] = {"normal", "high", "low"};
    static const int lane_ids[] = {IFQ_PRIO_NORMAL, IFQ_PRIO_HIGH, IFQ_PRIO_LOW};
    char group[IFQ_MAX_NAME * 2 + 2];
    snprintf(group, sizeof(group), "%s.%s", b->cfg->worker_group_prefix, dep->name);
    json_t *o = json_pack("{ss ss}", "deployment", dep->name, "group", group);
    rd_kafka_resp_err_t err;
    rd_kafka_topic_partition_list_t *c = committed(b, group, timeout_ms, &err);
    if (!c)
        json_object_set_new(o, "error", json_string(rd_kafka_err2str(err)));
    json_int_t total = 0;
    int nparts = 0, have_commit = 0;
    json_t *by_lane = json_object();
    for (size_t l = 0; l < IFQ_ARRAY_LEN(lanes); l++) {
        char topic[IFQ_MAX_TOPIC + 1];
        ifq_lane_topic(b->cfg, dep, lane_ids[l], topic, sizeof(topic));
        const struct rd_kafka_metadata_topic *t = md_topic(md, topic);
        json_int_t lag = 0;
        for (int p = 0; t && p < t->partition_cnt; p++) {
            int64_t lo = 0, hi = 0;
            if (rd_kafka_query_watermark_offsets(b->rk, topic, t->partitions[p].id, &lo, &hi,
                                                 timeout_ms))
                continue;
            nparts++;
            rd_kafka_topic_partition_t *tp =
                c ? rd_kafka_topic_partition_list_find(c, topic, t->partitions[p].id) : NULL;
            int64_t from = lo; /* no commit yet: the group starts at the earliest */
            if (tp && !tp->err && tp->offset >= 0) {
                from = tp->offset > lo ? tp->offset : lo;
                have_commit = 1;
            }
            if (hi == from + 1 && tp && tp->offset == from &&
                is_marker(b, topic, t->partitions[p].id, from))
                continue;
            if (hi > from)
                lag += hi - from;
        }
        json_object_set_new(by_lane, lanes[l], json_integer(lag));
        total += lag;
    }
    if (c)
        rd_kafka_topic_partition_list_destroy(c);
    json_object_set_new(o, "lag", json_integer(total));
    json_object_set_new(o, "lanes", by_lane);
    json_object_set_new(o, "partitions", json_integer(nparts));
    json_object_set_new(o, "committed", json_boolean(have_commit));
    return o;
}

static json_t *refresh(ifq_backlog_t *b, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(b->rk, 1, NULL, &md, timeout_ms);
    json_t *arr = json_array();
    for (size_t i = 0; i < b->cfg->n_deployments; i++) {
        if (e) {
            json_array_append_new(arr,
                                  json_pack("{ss ss}", "deployment", b->cfg->deployments[i].name,
                                            "error", rd_kafka_err2str(e)));
            continue;
        }
        json_array_append_new(arr, deployment_lag(b, md, &b->cfg->deployments[i], timeout_ms));
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    return arr;
}

json_t *ifq_backlog_get(ifq_backlog_t *b, int cache_ms, int timeout_ms)
{
    pthread_mutex_lock(&b->mu);
    int64_t now = ifq_mono_ms();
    if (!b->cached || now - b->cached_at >= cache_ms) {
        json_decref(b->cached);
        b->cached = refresh(b, timeout_ms);
        b->cached_at = ifq_mono_ms();
    }
    json_t *copy = json_deep_copy(b->cached);
    pthread_mutex_unlock(&b->mu);
    return copy;
}
