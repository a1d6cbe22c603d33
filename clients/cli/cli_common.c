/*
 * cli_common.c - helpers shared by the `inferq` commands (see cli.h).
 */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "envelope.h"
#include "kafka.h"

volatile sig_atomic_t cli_interrupted;

static void on_signal(int sig)
{
    (void)sig;
    cli_interrupted++;
}

void cli_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

void cli_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("inferq: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

int cli_parse_int(const char *s, long lo, long hi, long *out)
{
    int64_t v;
    if (!s || ifq_parse_i64(s, &v) || v < lo || v > hi)
        return -1;
    *out = (long)v;
    return 0;
}

/* ---- string set ------------------------------------------------------- */

static size_t strset_slot(char **keys, size_t cap, const char *k)
{
    size_t i = (size_t)ifq_fnv1a64(k, strlen(k), 0) & (cap - 1);
    while (keys[i] && strcmp(keys[i], k) != 0)
        i = (i + 1) & (cap - 1);
    return i;
}

void cli_strset_init(cli_strset_t *s, size_t expect)
{
    s->cap = 16;
    while (s->cap < expect * 2 + 2)
        s->cap *= 2;
    s->keys = calloc(s->cap, sizeof(*s->keys));
    if (!s->keys)
        cli_fail(CLI_INFRA, "out of memory");
    s->n = 0;
}

static void strset_grow(cli_strset_t *s)
{
    size_t cap = s->cap * 2;
    char **keys = calloc(cap, sizeof(*keys));
    if (!keys)
        cli_fail(CLI_INFRA, "out of memory");
    for (size_t i = 0; i < s->cap; i++)
        if (s->keys[i])
            keys[strset_slot(keys, cap, s->keys[i])] = s->keys[i];
    free(s->keys);
    s->keys = keys;
    s->cap = cap;
}

int cli_strset_add(cli_strset_t *s, const char *k)
{
    if ((s->n + 1) * 2 > s->cap)
        strset_grow(s);
    size_t i = strset_slot(s->keys, s->cap, k);
    if (s->keys[i])
        return 0;
    s->keys[i] = strdup(k);
    if (!s->keys[i])
        cli_fail(CLI_INFRA, "out of memory");
    s->n++;
    return 1;
}

int cli_strset_has(const cli_strset_t *s, const char *k)
{
    return s->keys[strset_slot(s->keys, s->cap, k)] != NULL;
}

/* Tombstone-free: re-inserts the rest of the cluster. */
int cli_strset_del(cli_strset_t *s, const char *k)
{
    size_t i = strset_slot(s->keys, s->cap, k);
    if (!s->keys[i])
        return 0;
    free(s->keys[i]);
    s->keys[i] = NULL;
    s->n--;
    for (size_t j = (i + 1) & (s->cap - 1); s->keys[j]; j = (j + 1) & (s->cap - 1)) {
        char *mv = s->keys[j];
        s->keys[j] = NULL;
        s->keys[strset_slot(s->keys, s->cap, mv)] = mv;
    }
    return 1;
}

void cli_strset_free(cli_strset_t *s)
{
    for (size_t i = 0; s->keys && i < s->cap; i++)
        free(s->keys[i]);
    free(s->keys);
    s->keys = NULL;
    s->n = s->cap = 0;
}

/* ---- 64-bit hash set -------------------------------------------------- */

uint64_t cli_id_hash(const char *id)
{
    return ifq_fnv1a64(id, strlen(id), 0x9e3779b97f4a7c15ull);
}

static size_t u64_slot(const uint64_t *slots, size_t cap, uint64_t h)
{
    /* fnv1a's low bits are well mixed enough after a final multiply */
    size_t i = (size_t)((h * 0xff51afd7ed558ccdull) >> 17) & (cap - 1);
    while (slots[i] && slots[i] != h)
        i = (i + 1) & (cap - 1);
    return i;
}

void cli_u64set_init(cli_u64set_t *s)
{
    memset(s, 0, sizeof(*s));
}

int cli_u64set_add(cli_u64set_t *s, uint64_t h)
{
    if (h == 0) {
        int had = s->has_zero;
        s->has_zero = 1;
        return !had;
    }
    if ((s->n + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        uint64_t *slots = calloc(cap, sizeof(*slots));
        if (!slots)
            cli_fail(CLI_INFRA, "out of memory");
        for (size_t i = 0; i < s->cap; i++)
            if (s->slots[i])
                slots[u64_slot(slots, cap, s->slots[i])] = s->slots[i];
        free(s->slots);
        s->slots = slots;
        s->cap = cap;
    }
    size_t i = u64_slot(s->slots, s->cap, h);
    if (s->slots[i])
        return 0;
    s->slots[i] = h;
    s->n++;
    return 1;
}

int cli_u64set_has(const cli_u64set_t *s, uint64_t h)
{
    if (h == 0)
        return s->has_zero;
    return s->cap && s->slots[u64_slot(s->slots, s->cap, h)] != 0;
}

void cli_u64set_free(cli_u64set_t *s)
{
    free(s->slots);
    memset(s, 0, sizeof(*s));
}

/* ---- Kafka ------------------------------------------------------------ */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    cli_client_t *c = opaque;
    c->outstanding--;
    if (m->err) {
        c->delivery_failures++;
        if (c->on_dr_fail)
            c->on_dr_fail(c->dr_opaque, m->key, m->key_len, rd_kafka_err2str(m->err));
        else
            fprintf(stderr, "inferq: delivery failed: %s\n", rd_kafka_err2str(m->err));
    }
}

int cli_client_open(cli_client_t *c, const char *reply_topic, int with_producer, int from_beginning,
                    int64_t **hi_out, int *n_parts)
{
    char errstr[512];
    ifq_config_t *cfg = c->cfg;
    if (with_producer) {
        c->producer = ifq_kafka_producer_new(cfg, dr_cb, c, NULL, 2, -1, errstr, sizeof(errstr));
        if (!c->producer) {
            fprintf(stderr, "inferq: %s\n", errstr);
            return CLI_INFRA;
        }
        const char *topics[] = {cfg->topic_requests, reply_topic};
        if (cfg->create_topics &&
            ifq_kafka_ensure_topics(c->producer, cfg, topics, 2, 10000, errstr, sizeof(errstr))) {
            fprintf(stderr, "inferq: %s\n", errstr);
            return CLI_INFRA;
        }
    }
    /* The listener has no group: it assigns every partition itself. */
    char group[64];
    snprintf(group, sizeof(group), "inferq-cli-%d", (int)getpid());
    c->listener = ifq_kafka_consumer_new(cfg, group, NULL, NULL, errstr, sizeof(errstr));
    if (!c->listener) {
        fprintf(stderr, "inferq: %s\n", errstr);
        return CLI_INFRA;
    }
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(c->listener, reply_topic, NULL);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
    int64_t until = ifq_mono_ms() + 15000; /* then Kafka counts as unreachable */
    for (int tries = 0; ifq_mono_ms() < until && !cli_interrupted; tries++) {
        err = rd_kafka_metadata(c->listener, 0, rkt, &md, 5000);
        if (!err && md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt > 0)
            break;
        if (!err && md->topic_cnt == 1 && md->topics[0].err)
            err = md->topics[0].err;
        if (md)
            rd_kafka_metadata_destroy(md);
        md = NULL;
        if (!with_producer && tries >= 3)
            break;          /* tail: the topic does not exist */
        usleep(250 * 1000); /* the topic may have just been created */
    }
    rd_kafka_topic_destroy(rkt);
    if (!md) {
        fprintf(stderr, "inferq: topic %s: no metadata (%s)\n", reply_topic, rd_kafka_err2str(err));
        return CLI_INFRA;
    }
    int np = md->topics[0].partition_cnt;
    int64_t *his = calloc((size_t)np, sizeof(*his));
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(np);
    int rc = 0;
    for (int i = 0; i < np && !rc; i++) {
        int32_t p = md->topics[0].partitions[i].id;
        int64_t lo = 0, hi = 0;
        /* a topic created a moment ago may not have its leaders yet */
        until = ifq_mono_ms() + 15000;
        while ((err = rd_kafka_query_watermark_offsets(c->listener, reply_topic, p, &lo, &hi,
                                                       10000)) != 0 &&
               (err == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
                err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
                err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) &&
               ifq_mono_ms() < until && !cli_interrupted)
            usleep(100 * 1000);
        if (err) {
            fprintf(stderr, "inferq: topic %s[%d]: %s\n", reply_topic, (int)p,
                    rd_kafka_err2str(err));
            rc = CLI_INFRA;
            break;
        }
        if (p >= 0 && p < np)
            his[p] = hi;
        rd_kafka_topic_partition_list_add(l, reply_topic, p)->offset = from_beginning ? lo : hi;
    }
    rd_kafka_metadata_destroy(md);
    if (!rc && (err = rd_kafka_assign(c->listener, l)) != 0) {
        fprintf(stderr, "inferq: assign %s: %s\n", reply_topic, rd_kafka_err2str(err));
        rc = CLI_INFRA;
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (hi_out && !rc)
        *hi_out = his;
    else
        free(his);
    if (n_parts)
        *n_parts = np;
    return rc;
}

void cli_client_close(cli_client_t *c)
{
    if (c->producer) {
        rd_kafka_flush(c->producer, 10000);
        rd_kafka_destroy(c->producer);
        c->producer = NULL;
    }
    if (c->listener) {
        rd_kafka_consumer_close(c->listener);
        rd_kafka_destroy(c->listener);
        c->listener = NULL;
    }
    ifq_avro_destroy(c->avro);
    c->avro = NULL;
}

int cli_produce(cli_client_t *c, const char *topic, json_t *req, const char *custom_id)
{
    void *val = NULL;
    size_t len = 0;
    const char *ctype = "application/json";
    if (c->use_avro) {
        char errstr[256];
        if (ifq_avro_encode(c->avro, IFQ_AVRO_REQUEST, req, &val, &len, errstr, sizeof(errstr))) {
            fprintf(stderr, "inferq: %s: cannot encode as Avro: %s\n", custom_id, errstr);
            return CLI_USAGE;
        }
        ctype = "application/vnd.inferq.request.v1+avro";
    } else {
        val = ifq_json_dump(req, &len);
    }
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, "content-type", -1, ctype, -1);
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            c->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE(val, len),
            RD_KAFKA_V_KEY((void *)custom_id, strlen(custom_id)),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(c->producer, 50);
            continue;
        }
        if (err) {
            fprintf(stderr, "inferq: produce: %s\n", rd_kafka_err2str(err));
            free(val);
            rd_kafka_headers_destroy(h);
            return CLI_INFRA;
        }
        c->outstanding++;
        break;
    }
    rd_kafka_poll(c->producer, 0);
    return 0;
}

void cli_fmt_duration(char *buf, size_t n, double seconds)
{
    if (seconds < 0 || seconds > 99 * 3600.0) {
        snprintf(buf, n, "--:--");
        return;
    }
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, n, "%ld:%02ld", s / 60, s % 60);
}
