/*
 * client.c - the client: config, the Kafka producer and reply consumer, the
 * two background threads, submit and await.
 *
 * Threads: the "reply" thread is the only consumer of the reply topic; it
 * decodes each result and hands it to the correlation table (corr.c), which
 * wakes the one thread awaiting it or calls the result callback. The
 * "delivery" thread serves the producer's delivery reports (rd_kafka_poll),
 * so delivery callbacks never wait behind a slow reply poll. User threads
 * only produce and wait on condition variables.
 *
 * The reply consumer has a throwaway group id but never joins the group: it
 * assigns every partition of the reply topic at the high watermark it
 * queried before inferq_client_new() returns, so a result of any later
 * submit is after that offset and cannot be missed, and nothing older is
 * read.
 */
#include "corr.h"
#include "internal.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_KAFKA_PROPS 128

/* ---- errors, version ---------------------------------------------------- */

const char *inferq_strerror(int err)
{
    switch (err) {
    case INFERQ_OK:
        return "success";
    case INFERQ_ERR_INVALID:
        return "invalid argument or request";
    case INFERQ_ERR_NOMEM:
        return "out of memory";
    case INFERQ_ERR_KAFKA:
        return "Kafka error";
    case INFERQ_ERR_TIMEOUT:
        return "timed out";
    case INFERQ_ERR_DUPLICATE:
        return "a request with this custom_id is already pending";
    case INFERQ_ERR_NOTFOUND:
        return "no pending request with this custom_id";
    case INFERQ_ERR_FULL:
        return "too many pending requests (max.pending)";
    case INFERQ_ERR_CLOSED:
        return "the client is closing";
    case INFERQ_ERR_TOOBIG:
        return "the request is larger than the producer's message.max.bytes";
    default:
        return "unknown error";
    }
}

const char *inferq_version(void)
{
    return "0.1.0";
}

/* ---- config ------------------------------------------------------------- */

struct inferq_config {
    char *bootstrap;
    char *prefix;
    char *requests_topic;
    char *reply_topic;
    inferq_encoding_t encoding;
    int reply_delete;
    int reply_partitions;
    long max_pending;
    int submit_timeout_ms;
    int setup_timeout_ms;
    size_t nprops;
    char *prop_keys[MAX_KAFKA_PROPS]; /* "producer.", "consumer." or "" + the property */
    char *prop_vals[MAX_KAFKA_PROPS];
};

/* The librdkafka property a stored key means for a handle of this kind
 * ("producer" / "consumer"), or NULL when the key is scoped to the other. */
static const char *prop_for(const char *stored, const char *kind)
{
    size_t n = strlen(kind);
    if (strncmp(stored, "producer.", 9) == 0 || strncmp(stored, "consumer.", 9) == 0)
        return strncmp(stored, kind, n) == 0 ? stored + n + 1 : NULL;
    return stored;
}

inferq_config_t *inferq_config_new(void)
{
    inferq_config_t *cfg = calloc(1, sizeof(*cfg));
    if (!cfg)
        return NULL;
    cfg->reply_delete = 1;
    cfg->reply_partitions = 1;
    cfg->max_pending = 100000;
    cfg->submit_timeout_ms = 30000;
    cfg->setup_timeout_ms = 30000;
    return cfg;
}

void inferq_config_destroy(inferq_config_t *cfg)
{
    if (!cfg)
        return;
    free(cfg->bootstrap);
    free(cfg->prefix);
    free(cfg->requests_topic);
    free(cfg->reply_topic);
    for (size_t i = 0; i < cfg->nprops; i++) {
        free(cfg->prop_keys[i]);
        free(cfg->prop_vals[i]);
    }
    free(cfg);
}

static int set_str(char **dst, const char *value)
{
    char *s = strdup(value);
    if (!s)
        return INFERQ_ERR_NOMEM;
    free(*dst);
    *dst = s;
    return INFERQ_OK;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int topic_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > IFQC_MAX_TOPIC)
        return 0;
    return strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static int set_kafka_prop(inferq_config_t *cfg, const char *key, const char *value)
{
    for (size_t i = 0; i < cfg->nprops; i++)
        if (strcmp(cfg->prop_keys[i], key) == 0)
            return set_str(&cfg->prop_vals[i], value);
    if (cfg->nprops == MAX_KAFKA_PROPS)
        return INFERQ_ERR_FULL;
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return INFERQ_ERR_NOMEM;
    }
    cfg->prop_keys[cfg->nprops] = k;
    cfg->prop_vals[cfg->nprops++] = v;
    return INFERQ_OK;
}

/* Numeric keys: name, field, bounds. */
static int set_number(inferq_config_t *cfg, const char *key, const char *value, int *handled)
{
    static const struct {
        const char *key;
        size_t off;
        long lo, hi;
        int is_long;
    } nums[] = {
        {"reply.partitions", offsetof(inferq_config_t, reply_partitions), 1, 1000, 0},
        {"max.pending", offsetof(inferq_config_t, max_pending), 1, 100000000, 1},
        {"submit.timeout.ms", offsetof(inferq_config_t, submit_timeout_ms), 0, 86400000, 0},
        {"setup.timeout.ms", offsetof(inferq_config_t, setup_timeout_ms), 100, 86400000, 0},
    };
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        if (strcmp(key, nums[i].key) != 0)
            continue;
        *handled = 1;
        long v;
        if (parse_long(value, nums[i].lo, nums[i].hi, &v))
            return -1;
        if (nums[i].is_long)
            *(long *)((char *)cfg + nums[i].off) = v;
        else
            *(int *)((char *)cfg + nums[i].off) = (int)v;
        return 0;
    }
    *handled = 0;
    return 0;
}

int inferq_config_set(inferq_config_t *cfg, const char *key, const char *value, char *errstr,
                      size_t errstr_size)
{
    if (!cfg || !key || !value) {
        ifqc_errf(errstr, errstr_size, "config: NULL argument");
        return INFERQ_ERR_INVALID;
    }
    int handled = 0;
    if (set_number(cfg, key, value, &handled)) {
        ifqc_errf(errstr, errstr_size, "config: %s: not a number in range: \"%s\"", key, value);
        return INFERQ_ERR_INVALID;
    }
    if (handled)
        return INFERQ_OK;
    if (strncmp(key, "kafka.", 6) == 0 && key[6]) {
        int rc = set_kafka_prop(cfg, key + 6, value);
        if (rc == INFERQ_ERR_FULL) {
            ifqc_errf(errstr, errstr_size, "config: more than %d kafka.* properties",
                      MAX_KAFKA_PROPS);
            return INFERQ_ERR_INVALID;
        }
        return rc;
    }
    if (strcmp(key, "bootstrap.servers") == 0)
        return set_str(&cfg->bootstrap, value);
    if (strcmp(key, "encoding") == 0) {
        if (strcmp(value, "json") == 0)
            cfg->encoding = INFERQ_ENCODING_JSON;
        else if (strcmp(value, "avro") == 0)
            cfg->encoding = INFERQ_ENCODING_AVRO;
        else {
            ifqc_errf(errstr, errstr_size, "config: encoding must be json or avro, not \"%s\"",
                      value);
            return INFERQ_ERR_INVALID;
        }
        return INFERQ_OK;
    }
    if (strcmp(key, "reply.delete") == 0) {
        if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0) {
            ifqc_errf(errstr, errstr_size, "config: reply.delete must be true or false");
            return INFERQ_ERR_INVALID;
        }
        cfg->reply_delete = strcmp(value, "true") == 0;
        return INFERQ_OK;
    }
    char **topic = strcmp(key, "topic.prefix") == 0     ? &cfg->prefix
                   : strcmp(key, "requests.topic") == 0 ? &cfg->requests_topic
                   : strcmp(key, "reply.topic") == 0    ? &cfg->reply_topic
                                                        : NULL;
    if (!topic) {
        ifqc_errf(errstr, errstr_size,
                  "config: unknown key \"%s\" (Kafka properties go in "
                  "kafka.<property>)",
                  key);
        return INFERQ_ERR_INVALID;
    }
    if (!topic_ok(value) || strlen(value) > 200) {
        ifqc_errf(errstr, errstr_size, "config: %s: \"%s\" is not a topic name ([A-Za-z0-9._-])",
                  key, value);
        return INFERQ_ERR_INVALID;
    }
    return set_str(topic, value);
}

/* ---- the client --------------------------------------------------------- */

struct inferq_client {
    rd_kafka_t *producer;
    rd_kafka_t *consumer;
    ifqc_corr_t *corr;
    inferq_encoding_t encoding;
    char requests_topic[IFQC_MAX_TOPIC + 1];
    char reply_topic[IFQC_MAX_TOPIC + 1];
    int private_reply;
    int reply_created; /* this client created the private reply topic */
    int reply_delete;
    int submit_timeout_ms;
    pthread_t reply_thread, delivery_thread;
    int threads_started;
    atomic_int stop;
    pthread_mutex_t cb_lock; /* guards result_cb / result_opaque */
    inferq_result_cb result_cb;
    void *result_opaque;
};

/* Set on a client's delivery thread to that client: the one thread on which
 * a full producer queue cannot be waited out. */
static _Thread_local inferq_client_t *on_delivery_thread;

/* What rides along with each produced message to its delivery report. */
typedef struct {
    inferq_delivery_cb cb;
    void *opaque;
    char custom_id[];
} dr_ctx_t;

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    inferq_client_t *c = opaque;
    dr_ctx_t *ctx = m->_private;
    if (!ctx)
        return;
    const char *why = m->err ? rd_kafka_err2str(m->err) : NULL;
    if (ctx->cb)
        ctx->cb(ctx->custom_id, m->err ? INFERQ_ERR_KAFKA : INFERQ_OK, why, ctx->opaque);
    if (m->err) {
        /* Nothing will ever answer it: the request ends here, as a result. */
        char msg[300];
        snprintf(msg, sizeof(msg), "the request was not delivered to Kafka: %s", why);
        inferq_result_t *res = ifqc_result_local(ctx->custom_id, "delivery_failed", msg);
        if (res && !ifqc_corr_resolve(c->corr, res))
            inferq_result_free(res);
    }
    free(ctx);
}

static rd_kafka_conf_t *kafka_conf(const inferq_config_t *cfg, const char *kind, char *errstr,
                                   size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char why[512];
    if (rd_kafka_conf_set(conf, "bootstrap.servers", cfg->bootstrap, why, sizeof(why)) !=
        RD_KAFKA_CONF_OK) {
        ifqc_errf(errstr, errstr_size, "bootstrap.servers: %s", why);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    for (size_t i = 0; i < cfg->nprops; i++) {
        const char *prop = prop_for(cfg->prop_keys[i], kind);
        if (prop && rd_kafka_conf_set(conf, prop, cfg->prop_vals[i], why, sizeof(why)) !=
                        RD_KAFKA_CONF_OK) {
            /* never echo the value: it may be a password */
            ifqc_errf(errstr, errstr_size, "kafka.%s: %s", cfg->prop_keys[i],
                      *cfg->prop_vals[i] && strstr(why, cfg->prop_vals[i])
                          ? "librdkafka refused the value"
                          : why);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    return conf;
}

static int random_hex(char *out, size_t nbytes)
{
    unsigned char b[16];
    if (nbytes > sizeof(b))
        return -1;
    FILE *f = fopen("/dev/urandom", "rb");
    size_t got = f ? fread(b, 1, nbytes, f) : 0;
    if (f)
        fclose(f);
    if (got != nbytes)
        return -1;
    for (size_t i = 0; i < nbytes; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    return 0;
}

static rd_kafka_t *make_producer(inferq_client_t *c, const inferq_config_t *cfg, char *errstr,
                                 size_t errstr_size)
{
    rd_kafka_conf_t *conf = kafka_conf(cfg, "producer", errstr, errstr_size);
    if (!conf)
        return NULL;
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    rd_kafka_conf_set_opaque(conf, c);
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!rk) {
        ifqc_errf(errstr, errstr_size, "kafka producer: %s", why);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

static rd_kafka_t *make_consumer(const inferq_config_t *cfg, const char *group, char *errstr,
                                 size_t errstr_size)
{
    rd_kafka_conf_t *conf = kafka_conf(cfg, "consumer", errstr, errstr_size);
    if (!conf)
        return NULL;
    char why[512];
    if (rd_kafka_conf_set(conf, "group.id", group, why, sizeof(why)) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", why, sizeof(why)) ||
        rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", why, sizeof(why))) {
        ifqc_errf(errstr, errstr_size, "kafka consumer: %s", why);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (!rk) {
        ifqc_errf(errstr, errstr_size, "kafka consumer: %s", why);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

/* Creates (create != 0) or deletes the private reply topic. */
static int admin_topic(rd_kafka_t *rk, const char *topic, int create, int partitions,
                       int timeout_ms, char *errstr, size_t errstr_size)
{
    char why[512];
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(
        rk, create ? RD_KAFKA_ADMIN_OP_CREATETOPICS : RD_KAFKA_ADMIN_OP_DELETETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, why, sizeof(why));
    rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, why, sizeof(why));
    if (create) {
        rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, -1, why, sizeof(why));
        if (!nt) {
            ifqc_errf(errstr, errstr_size, "reply topic %s: %s", topic, why);
            rd_kafka_AdminOptions_destroy(opts);
            rd_kafka_queue_destroy(q);
            return INFERQ_ERR_INVALID;
        }
        rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
        rd_kafka_NewTopic_destroy(nt);
    } else {
        rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(topic);
        rd_kafka_DeleteTopics(rk, &dt, 1, opts, q);
        rd_kafka_DeleteTopic_destroy(dt);
    }
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 2000);
    int rc = INFERQ_OK;
    const rd_kafka_topic_result_t **res = NULL;
    size_t n = 0;
    if (!ev) {
        rc = INFERQ_ERR_TIMEOUT;
        ifqc_errf(errstr, errstr_size, "reply topic %s: no answer from Kafka in %d ms", topic,
                  timeout_ms);
    } else if (rd_kafka_event_error(ev)) {
        rc = INFERQ_ERR_KAFKA;
        ifqc_errf(errstr, errstr_size, "reply topic %s: %s", topic,
                  rd_kafka_event_error_string(ev));
    } else {
        res = create
                  ? rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n)
                  : rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
        if (n == 1 && rd_kafka_topic_result_error(res[0]) &&
            rd_kafka_topic_result_error(res[0]) != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            rc = INFERQ_ERR_KAFKA;
            ifqc_errf(errstr, errstr_size, "reply topic %s: %s", topic,
                      rd_kafka_topic_result_error_string(res[0]));
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_queue_destroy(q);
    return rc;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int transient_leader_error(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
           err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
           err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
}

/* Assigns every partition of the reply topic at its high watermark. A topic
 * just created may take a moment to show its partitions and to have their
 * leaders: metadata and watermarks are asked again until the deadline. */
static int assign_reply_topic(inferq_client_t *c, int timeout_ms, char *errstr, size_t errstr_size)
{
    int64_t deadline = mono_ms() + timeout_ms;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(c->consumer, c->reply_topic, NULL);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
    for (;;) {
        int left = (int)(deadline - mono_ms());
        err = rd_kafka_metadata(c->consumer, 0, rkt, &md, left > 5000 ? 5000 : left > 0 ? left : 1);
        if (!err && md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt > 0)
            break;
        if (!err && md->topic_cnt == 1)
            err = md->topics[0].err ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
        if (md)
            rd_kafka_metadata_destroy(md);
        md = NULL;
        if (mono_ms() >= deadline)
            break;
        sleep_ms(100); /* waiting for Kafka to propagate the topic; nothing to block on */
    }
    rd_kafka_topic_destroy(rkt);
    if (!md) {
        ifqc_errf(errstr, errstr_size, "reply topic %s: %s", c->reply_topic, rd_kafka_err2str(err));
        return INFERQ_ERR_KAFKA;
    }
    int n = md->topics[0].partition_cnt;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n && !err; i++) {
        int32_t p = md->topics[0].partitions[i].id;
        int64_t lo = 0, hi = 0;
        for (;;) {
            int left = (int)(deadline - mono_ms());
            err = rd_kafka_query_watermark_offsets(c->consumer, c->reply_topic, p, &lo, &hi,
                                                   left > 1000 ? left : 1000);
            /* A partition just created can be in the metadata before its
             * leader knows it leads it ("Not leader for partition"). */
            if (!transient_leader_error(err) || mono_ms() >= deadline)
                break;
            sleep_ms(100);
        }
        rd_kafka_topic_partition_list_add(l, c->reply_topic, p)->offset = hi;
    }
    rd_kafka_metadata_destroy(md);
    if (!err)
        err = rd_kafka_assign(c->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        ifqc_errf(errstr, errstr_size, "reply topic %s: %s", c->reply_topic, rd_kafka_err2str(err));
        return INFERQ_ERR_KAFKA;
    }
    return INFERQ_OK;
}

static void *reply_main(void *arg)
{
    inferq_client_t *c = arg;
    while (!atomic_load(&c->stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->consumer, 100);
        if (!m)
            continue;
        if (!m->err) {
            /* Not a result (or garbage on a shared topic): skipped, as is a
             * result for a custom_id this client is not waiting for. */
            inferq_result_t *res = inferq_result_from_bytes(m->payload, m->len, NULL, 0);
            if (res && !ifqc_corr_resolve(c->corr, res))
                inferq_result_free(res);
        }
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

static void *delivery_main(void *arg)
{
    inferq_client_t *c = arg;
    on_delivery_thread = c;
    while (!atomic_load(&c->stop))
        rd_kafka_poll(c->producer, 100);
    return NULL;
}

static int client_setup(inferq_client_t *c, const inferq_config_t *cfg, char *errstr,
                        size_t errstr_size)
{
    const char *prefix = cfg->prefix ? cfg->prefix : "inferq";
    char rnd[17] = "";
    if (random_hex(rnd, 8)) {
        ifqc_errf(errstr, errstr_size, "cannot read /dev/urandom");
        return INFERQ_ERR_INVALID;
    }
    if (cfg->requests_topic)
        snprintf(c->requests_topic, sizeof(c->requests_topic), "%s", cfg->requests_topic);
    else
        snprintf(c->requests_topic, sizeof(c->requests_topic), "%s.requests", prefix);
    c->private_reply = cfg->reply_topic == NULL;
    if (cfg->reply_topic)
        snprintf(c->reply_topic, sizeof(c->reply_topic), "%s", cfg->reply_topic);
    else
        snprintf(c->reply_topic, sizeof(c->reply_topic), "%s.replies.c%s", prefix, rnd);
    char group[64];
    snprintf(group, sizeof(group), "inferq-client-%s", rnd);
    if (!(c->producer = make_producer(c, cfg, errstr, errstr_size)) ||
        !(c->consumer = make_consumer(cfg, group, errstr, errstr_size)))
        return INFERQ_ERR_KAFKA;
    int rc;
    if (c->private_reply) {
        rc = admin_topic(c->producer, c->reply_topic, 1, cfg->reply_partitions,
                         cfg->setup_timeout_ms, errstr, errstr_size);
        if (rc)
            return rc;
        c->reply_created = 1;
    }
    if ((rc = assign_reply_topic(c, cfg->setup_timeout_ms, errstr, errstr_size)))
        return rc;
    if (pthread_create(&c->reply_thread, NULL, reply_main, c))
        return INFERQ_ERR_NOMEM;
    if (pthread_create(&c->delivery_thread, NULL, delivery_main, c)) {
        atomic_store(&c->stop, 1);
        pthread_join(c->reply_thread, NULL);
        return INFERQ_ERR_NOMEM;
    }
    c->threads_started = 1;
    return INFERQ_OK;
}

static void client_free(inferq_client_t *c, int flush_timeout_ms)
{
    if (c->producer) {
        if (rd_kafka_flush(c->producer, flush_timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            /* give up on what is still queued: each gets its delivery report */
            rd_kafka_purge(c->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            rd_kafka_flush(c->producer, 5000);
        }
    }
    if (c->threads_started) {
        atomic_store(&c->stop, 1);
        pthread_join(c->reply_thread, NULL);
        pthread_join(c->delivery_thread, NULL);
    }
    if (c->corr)
        ifqc_corr_close(c->corr);
    if (c->consumer) {
        rd_kafka_consumer_close(c->consumer);
        rd_kafka_destroy(c->consumer);
    }
    if (c->producer) {
        /* a client that failed to start always removes what it created */
        if (c->reply_created && (c->reply_delete || !c->threads_started))
            admin_topic(c->producer, c->reply_topic, 0, 0, 10000, NULL, 0);
        rd_kafka_destroy(c->producer);
    }
    ifqc_corr_destroy(c->corr);
    pthread_mutex_destroy(&c->cb_lock);
    free(c);
}

inferq_client_t *inferq_client_new(const inferq_config_t *cfg, char *errstr, size_t errstr_size)
{
    if (!cfg || !cfg->bootstrap) {
        ifqc_errf(errstr, errstr_size, "config: bootstrap.servers is required");
        return NULL;
    }
    const char *why = NULL;
    if (cfg->encoding == INFERQ_ENCODING_AVRO && !ifqc_avro(&why)) {
        ifqc_errf(errstr, errstr_size, "avro: %s", why);
        return NULL;
    }
    inferq_client_t *c = calloc(1, sizeof(*c));
    if (!c) {
        ifqc_errf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->cb_lock, NULL);
    atomic_init(&c->stop, 0);
    c->encoding = cfg->encoding;
    c->reply_delete = cfg->reply_delete;
    c->submit_timeout_ms = cfg->submit_timeout_ms;
    c->corr = ifqc_corr_new((size_t)cfg->max_pending);
    int rc = c->corr ? client_setup(c, cfg, errstr, errstr_size) : INFERQ_ERR_NOMEM;
    if (rc) {
        if (rc == INFERQ_ERR_NOMEM)
            ifqc_errf(errstr, errstr_size, "out of memory");
        client_free(c, 0);
        return NULL;
    }
    return c;
}

void inferq_client_destroy(inferq_client_t *c, int flush_timeout_ms)
{
    if (c)
        client_free(c, flush_timeout_ms < 0 ? 0 : flush_timeout_ms);
}

const char *inferq_client_reply_topic(const inferq_client_t *c)
{
    return c ? c->reply_topic : NULL;
}

size_t inferq_client_pending(inferq_client_t *c)
{
    return c ? ifqc_corr_pending(c->corr) : 0;
}

void inferq_on_result(inferq_client_t *c, inferq_result_cb cb, void *opaque)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->cb_lock);
    c->result_cb = cb;
    c->result_opaque = opaque;
    pthread_mutex_unlock(&c->cb_lock);
}

/* The message bytes of req with reply_to pointing at this client. */
static int encode_for_client(inferq_client_t *c, const inferq_request_t *req, void **out,
                             size_t *len, char *errstr, size_t errstr_size)
{
    json_t *copy = json_copy((json_t *)ifqc_request_json(req)); /* shallow: values shared */
    if (!copy || json_object_set_new(copy, "reply_to", json_string(c->reply_topic))) {
        json_decref(copy);
        return INFERQ_ERR_NOMEM;
    }
    int rc = ifqc_encode(copy, c->encoding, out, len, errstr, errstr_size);
    json_decref(copy);
    return rc;
}

static int produce(inferq_client_t *c, const char *cid, void *val, size_t len, dr_ctx_t *ctx)
{
    const char *ctype = c->encoding == INFERQ_ENCODING_AVRO
                            ? "application/vnd.inferq.request.v1+avro"
                            : "application/json";
    int64_t deadline = mono_ms() + c->submit_timeout_ms;
    for (;;) {
        rd_kafka_headers_t *h = rd_kafka_headers_new(1);
        rd_kafka_header_add(h, "content-type", -1, ctype, -1);
        rd_kafka_resp_err_t err = rd_kafka_producev(
            c->producer, RD_KAFKA_V_TOPIC(c->requests_topic), RD_KAFKA_V_VALUE(val, len),
            RD_KAFKA_V_KEY((void *)cid, strlen(cid)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(ctx), RD_KAFKA_V_END);
        if (!err)
            return INFERQ_OK; /* val and h now belong to librdkafka */
        rd_kafka_headers_destroy(h);
        if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
            return INFERQ_ERR_TOOBIG;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return INFERQ_ERR_KAFKA;
        /* Only the delivery thread frees queue space: it cannot wait for itself. */
        if (on_delivery_thread == c)
            return INFERQ_ERR_FULL;
        if (mono_ms() >= deadline)
            return INFERQ_ERR_TIMEOUT;
        /* The delivery thread drains the queue; retry shortly. */
        sleep_ms(5);
    }
}

int inferq_submit(inferq_client_t *c, const inferq_request_t *req, inferq_delivery_cb on_delivery,
                  void *opaque)
{
    const char *cid = inferq_request_custom_id(req);
    if (!c || !cid)
        return INFERQ_ERR_INVALID;
    if (atomic_load(&c->stop))
        return INFERQ_ERR_CLOSED;
    void *val = NULL;
    size_t len = 0;
    int rc = encode_for_client(c, req, &val, &len, NULL, 0);
    if (rc)
        return rc;
    size_t idlen = strlen(cid);
    dr_ctx_t *ctx = malloc(sizeof(*ctx) + idlen + 1);
    if (!ctx) {
        free(val);
        return INFERQ_ERR_NOMEM;
    }
    ctx->cb = on_delivery;
    ctx->opaque = opaque;
    memcpy(ctx->custom_id, cid, idlen + 1);
    pthread_mutex_lock(&c->cb_lock);
    inferq_result_cb rcb = c->result_cb;
    void *ropaque = c->result_opaque;
    pthread_mutex_unlock(&c->cb_lock);
    rc = ifqc_corr_add(c->corr, cid, rcb, ropaque);
    if (rc == INFERQ_OK) {
        rc = produce(c, cid, val, len, ctx);
        if (rc == INFERQ_OK)
            return INFERQ_OK;
        ifqc_corr_forget(c->corr, cid); /* added, then not produced */
    }
    free(val);
    free(ctx);
    return rc;
}

int inferq_submit_json(inferq_client_t *c, const char *line, size_t len,
                       inferq_delivery_cb on_delivery, void *opaque, char *errstr,
                       size_t errstr_size)
{
    inferq_request_t *req = inferq_request_from_json(line, len, errstr, errstr_size);
    if (!req)
        return INFERQ_ERR_INVALID;
    int rc = inferq_submit(c, req, on_delivery, opaque);
    if (rc)
        ifqc_errf(errstr, errstr_size, "%s: %s", inferq_request_custom_id(req),
                  inferq_strerror(rc));
    inferq_request_destroy(req);
    return rc;
}

int inferq_await(inferq_client_t *c, const char *custom_id, int timeout_ms,
                 inferq_result_t **result)
{
    if (!result)
        return INFERQ_ERR_INVALID;
    *result = NULL;
    if (!c || !custom_id)
        return INFERQ_ERR_INVALID;
    return ifqc_corr_await(c->corr, custom_id, timeout_ms, result);
}

int inferq_forget(inferq_client_t *c, const char *custom_id)
{
    if (!c || !custom_id)
        return INFERQ_ERR_INVALID;
    return ifqc_corr_forget(c->corr, custom_id);
}
