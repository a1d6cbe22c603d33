/*
 * kafka.c - librdkafka client construction and admin helpers.
 */
#include "kafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v, char *errstr,
                    size_t errstr_size)
{
    if (rd_kafka_conf_set(conf, k, v, errstr, errstr_size) != RD_KAFKA_CONF_OK)
        return -1;
    return 0;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    ifq_log_level_t l = level <= 3   ? IFQ_LOG_ERROR
                        : level <= 4 ? IFQ_LOG_WARN
                        : level <= 6 ? IFQ_LOG_INFO
                                     : IFQ_LOG_DEBUG;
    ifq_log_fields(l, "kafka_log",
                   json_pack("{ss ss}", "client", rd_kafka_name(rk), "facility", fac), "%s", buf);
}

static rd_kafka_conf_t *base_conf(const ifq_config_t *cfg, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf_set(conf, "bootstrap.servers", cfg->bootstrap, errstr, errstr_size) < 0)
        goto fail;
    rd_kafka_conf_set_log_cb(conf, log_cb);
    if (cfg->kafka_props) {
        const char *k;
        json_t *v;
        json_object_foreach(cfg->kafka_props, k, v)
        {
            char val[1024], why[512];
            if (ifq_config_scalar(v, val, sizeof(val)) < 0 ||
                conf_set(conf, k, val, why, sizeof(why)) < 0) {
                snprintf(errstr, errstr_size, "kafka.properties.%s: %s", k, why);
                goto fail;
            }
        }
    }
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

rd_kafka_t *ifq_kafka_producer_new(const ifq_config_t *cfg,
                                   void (*dr_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                                   void *opaque, const char *transactional_id, int linger_ms,
                                   int copy_max_bytes, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = base_conf(cfg, errstr, errstr_size);
    if (!conf)
        return NULL;
    if (transactional_id &&
        conf_set(conf, "transactional.id", transactional_id, errstr, errstr_size) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    /* Defaults first; an operator's kafka.properties were applied already
     * and must win, so only set what they did not. */
    char linger[16], copy_max[16];
    snprintf(linger, sizeof(linger), "%d", linger_ms);
    snprintf(copy_max, sizeof(copy_max), "%d", copy_max_bytes);
    const char *const defaults[][2] = {
        {"enable.idempotence", "true"},
        {"linger.ms", linger},
        {"compression.codec", "lz4"},
        {"message.max.bytes", "67108864"},
        {"message.copy.max.bytes", copy_max_bytes >= 0 ? copy_max : NULL},
    };
    for (size_t i = 0; i < IFQ_ARRAY_LEN(defaults); i++) {
        if (!defaults[i][1] ||
            (cfg->kafka_props && json_object_get(cfg->kafka_props, defaults[i][0])))
            continue;
        if (conf_set(conf, defaults[i][0], defaults[i][1], errstr, errstr_size) < 0) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    if (dr_cb)
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, opaque);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
    if (!rk)
        rd_kafka_conf_destroy(conf);
    return rk;
}

/* Sets key to value unless the config's kafka properties set key. */
static int conf_default(rd_kafka_conf_t *conf, const ifq_config_t *cfg, const char *key,
                        const char *value, char *errstr, size_t errstr_size)
{
    if (cfg->kafka_props && json_object_get(cfg->kafka_props, key))
        return 0;
    return conf_set(conf, key, value, errstr, errstr_size);
}

/* Pre-fetch bounds for a consumer that never starts more than max_buffered
 * messages at once (see kafka.h). */
static int conf_bounded_prefetch(rd_kafka_conf_t *conf, const ifq_config_t *cfg, int max_buffered,
                                 char *errstr, size_t errstr_size)
{
    /* librdkafka stops fetching a partition when the queue it is forwarded
     * to holds queued.min.messages messages or queued.max.messages.kbytes.
     * A quarter of the cap is enough to refill the slots that free up while
     * the next fetch is under way (at 10,000 requests/s, 500 messages last
     * 50 ms, the longest a fetch waits); the whole cap held about 0.6 KB
     * more per request in flight (tests/bench/README.md). */
    long msgs = max_buffered / 4 < 100 ? 100 : max_buffered / 4;
    long kbytes =
        (long)(max_buffered < 100 ? 100 : max_buffered) * IFQ_KAFKA_PREFETCH_BYTES_PER_MSG / 1024;
    if (kbytes < 1024)
        kbytes = 1024;
    if (kbytes > 16384)
        kbytes = 16384;
    char nmsgs[24], nkb[24];
    snprintf(nmsgs, sizeof(nmsgs), "%ld", msgs);
    snprintf(nkb, sizeof(nkb), "%ld", kbytes);
    if (conf_default(conf, cfg, "queued.min.messages", nmsgs, errstr, errstr_size) < 0 ||
        conf_default(conf, cfg, "queued.max.messages.kbytes", nkb, errstr, errstr_size) < 0)
        return -1;
    /* One fetch response may bring this much per partition on top of the
     * queue (1 MiB by default); a larger message is still fetched whole.
     * Fetched message sets stay in memory until their last message is
     * done, so this is memory per partition, divided by the in-flight
     * count: 32 KiB held 19 KB per request in flight where 128 KiB held
     * 22 KB, with no loss of throughput (tests/bench/README.md). */
    return conf_default(conf, cfg, "fetch.message.max.bytes", "32768", errstr, errstr_size);
}

rd_kafka_t *ifq_kafka_consumer_new_bounded(const ifq_config_t *cfg, const char *group_id,
                                           ifq_rebalance_cb_t *rebalance_cb, void *opaque,
                                           int max_buffered, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = base_conf(cfg, errstr, errstr_size);
    if (!conf)
        return NULL;
    static const char *const defaults[][2] = {
        {"enable.auto.commit", "false"},   {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"}, {"enable.partition.eof", "false"},
        {"fetch.wait.max.ms", "50"},       {"partition.assignment.strategy", "cooperative-sticky"},
    };
    if (conf_set(conf, "group.id", group_id, errstr, errstr_size) < 0)
        goto fail;
    for (size_t i = 0; i < IFQ_ARRAY_LEN(defaults); i++)
        if (conf_default(conf, cfg, defaults[i][0], defaults[i][1], errstr, errstr_size) < 0)
            goto fail;
    if (max_buffered > 0) {
        if (conf_bounded_prefetch(conf, cfg, max_buffered, errstr, errstr_size) < 0)
            goto fail;
    } else if (conf_default(conf, cfg, "queued.max.messages.kbytes", "16384", errstr, errstr_size) <
               0) {
        /* librdkafka prefetches up to 64 MiB per consumer by default. */
        goto fail;
    }
    if (rebalance_cb)
        rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_opaque(conf, opaque);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
    if (!rk)
        goto fail;
    rd_kafka_poll_set_consumer(rk);
    return rk;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

rd_kafka_t *ifq_kafka_consumer_new(const ifq_config_t *cfg, const char *group_id,
                                   ifq_rebalance_cb_t *rebalance_cb, void *opaque, char *errstr,
                                   size_t errstr_size)
{
    return ifq_kafka_consumer_new_bounded(cfg, group_id, rebalance_cb, opaque, 0, errstr,
                                          errstr_size);
}

int ifq_kafka_ensure_topics(rd_kafka_t *rk, const ifq_config_t *cfg, const char *const *topics,
                            size_t n, int timeout_ms, char *errstr, size_t errstr_size)
{
    if (n == 0)
        return IFQ_OK;
    /* Only ask for what is missing: creating topics needs a controller and
     * rights that a client may not have, while existing topics need neither. */
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t merr = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
    if (merr) {
        snprintf(errstr, errstr_size, "kafka metadata from %s: %s", cfg->bootstrap,
                 rd_kafka_err2str(merr));
        return IFQ_ERR_IO;
    }
    rd_kafka_NewTopic_t **nt = calloc(n, sizeof(*nt));
    if (!nt) {
        rd_kafka_metadata_destroy(md);
        return IFQ_ERR_NOMEM;
    }
    const char **names = calloc(n, sizeof(*names));
    char why[256];
    size_t missing = 0;
    for (size_t i = 0; i < n; i++) {
        int exists = 0;
        for (int t = 0; t < md->topic_cnt && !exists; t++)
            exists = strcmp(md->topics[t].topic, topics[i]) == 0 && !md->topics[t].err;
        for (size_t k = 0; k < missing && !exists; k++)
            exists = strcmp(names[k], topics[i]) == 0;
        if (exists)
            continue;
        nt[missing] = rd_kafka_NewTopic_new(topics[i], cfg->partitions, cfg->replication_factor,
                                            why, sizeof(why));
        if (!nt[missing])
            continue;
        if (strstr(topics[i], ".requests"))
            rd_kafka_NewTopic_set_config(nt[missing], "max.message.bytes", "67108864");
        names[missing++] = topics[i];
    }
    rd_kafka_metadata_destroy(md);
    free(names);
    if (missing == 0) {
        free(nt);
        return IFQ_OK;
    }
    n = missing;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, why, sizeof(why));
    rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, why, sizeof(why));
    rd_kafka_CreateTopics(rk, nt, n, opts, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 2000);
    int rc = IFQ_OK;
    if (!ev) {
        snprintf(errstr, errstr_size, "creating topics timed out after %d ms", timeout_ms);
        rc = IFQ_ERR_TIMEOUT;
    } else if (rd_kafka_event_error(ev)) {
        snprintf(errstr, errstr_size, "creating topics: %s", rd_kafka_event_error_string(ev));
        rc = IFQ_ERR_IO;
    } else {
        const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
        size_t cnt = 0;
        const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &cnt);
        for (size_t i = 0; i < cnt; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
                ifq_info("topic_created", "%s", rd_kafka_topic_result_name(tr[i]));
            else if (e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                snprintf(errstr, errstr_size, "creating topic %s: %s",
                         rd_kafka_topic_result_name(tr[i]),
                         rd_kafka_topic_result_error_string(tr[i]));
                rc = IFQ_ERR_IO;
            }
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_queue_destroy(q);
    for (size_t i = 0; i < n; i++)
        rd_kafka_NewTopic_destroy(nt[i]);
    free(nt);
    return rc;
}

int ifq_kafka_header(const rd_kafka_message_t *msg, const char *name, char *buf, size_t size)
{
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(msg, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return -1;
    const void *val = NULL;
    size_t len = 0;
    if (rd_kafka_header_get_last(hdrs, name, &val, &len) != RD_KAFKA_RESP_ERR_NO_ERROR || !val ||
        len >= size)
        return -1;
    memcpy(buf, val, len);
    buf[len] = '\0';
    return (int)len;
}

int ifq_kafka_reachable(rd_kafka_t *rk, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(rk, 0, NULL, &md, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    rd_kafka_metadata_destroy(md);
    return 1;
}

void ifq_kafka_dlq_headers(rd_kafka_headers_t *h, const char *reason, const char *code,
                           const char *topic, int32_t partition, int64_t offset)
{
    char num[32];
    rd_kafka_header_add(h, "inferq-error", -1, reason, -1);
    rd_kafka_header_add(h, "inferq-error-code", -1, code, -1);
    rd_kafka_header_add(h, "inferq-source-topic", -1, topic, -1);
    snprintf(num, sizeof(num), "%d", (int)partition);
    rd_kafka_header_add(h, "inferq-source-partition", -1, num, -1);
    snprintf(num, sizeof(num), "%lld", (long long)offset);
    rd_kafka_header_add(h, "inferq-source-offset", -1, num, -1);
    snprintf(num, sizeof(num), "%lld", (long long)ifq_now_ms());
    rd_kafka_header_add(h, "inferq-dlq-ts", -1, num, -1);
}
