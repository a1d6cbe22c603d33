/*
 * ifq-raw-pipe - the baseline for bench_broker.py: a librdkafka
 * consume -> produce pipe with the shape of inferq-broker and none of its
 * work (no decode, no guardrails, no routing, no Redis).
 *
 *   ifq-raw-pipe --bootstrap HOST:PORT --group G --from TOPIC --to TOPIC
 *                [--batch N] [--transactions] [--transactional-id ID]
 *                [--count N] [-X key=value ...]
 *
 * One loop, as in broker/broker.c: wait for the first message
 * (rd_kafka_consumer_poll, 200 ms), take whatever else is already fetched up
 * to --batch (rd_kafka_consume_batch_queue, no wait), then
 *
 *   without --transactions: produce every message to --to (key, value and
 *     headers copied), wait for every delivery report, commit the batch's
 *     offsets (asynchronously, as the broker does; at least once);
 *   with --transactions: begin a transaction, produce the batch, flush,
 *     send_offsets_to_transaction, commit_transaction (exactly once); an
 *     abortable error aborts and sends the batch again.
 *
 * The client settings are the broker's defaults (lib/kafka.c): producer
 * enable.idempotence=true, linger.ms=2, compression.codec=lz4; consumer
 * manual commits, auto.offset.reset=earliest, fetch.wait.max.ms=50,
 * cooperative-sticky assignment. -X overrides or adds properties (for both
 * clients). Default batch: 500 (the broker's broker.batch_size).
 *
 * Stops on SIGINT/SIGTERM, or once --count messages were handled. Prints
 * one JSON line on stdout at exit: messages, batches, aborts, seconds from
 * the first consumed message to the last commit.
 */
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROPS 64
#define TXN_ATTEMPTS 5

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

typedef struct {
    int outstanding;
    int failed;
    rd_kafka_resp_err_t last_err;
} pipe_t;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    pipe_t *p = opaque;
    p->outstanding--;
    if (m->err) {
        p->failed++;
        p->last_err = m->err;
    }
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    (void)opaque;
    int coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (coop) {
            rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
            if (e)
                rd_kafka_error_destroy(e);
        } else
            rd_kafka_assign(rk, parts);
    } else {
        /* Batches finish synchronously: nothing of these partitions is in
         * flight, their committed offsets are final. */
        if (coop) {
            rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
            if (e)
                rd_kafka_error_destroy(e);
        } else
            rd_kafka_assign(rk, NULL);
    }
}

static int set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char errstr[512];
    if (rd_kafka_conf_set(conf, k, v, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "ifq-raw-pipe: %s=%s: %s\n", k, v, errstr);
        return -1;
    }
    return 0;
}

/* Defaults, then the -X properties that apply to this kind of client (a
 * consumer-only property is skipped for the producer and vice versa). */
static rd_kafka_conf_t *make_conf(const char *bootstrap, const char *const (*defaults)[2],
                                  size_t n_defaults, char **props, size_t n_props)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (set(conf, "bootstrap.servers", bootstrap) < 0)
        goto fail;
    for (size_t i = 0; i < n_defaults; i++)
        if (set(conf, defaults[i][0], defaults[i][1]) < 0)
            goto fail;
    for (size_t i = 0; i < n_props; i++) {
        char *eq = strchr(props[i], '=');
        *eq = '\0';
        char errstr[512];
        rd_kafka_conf_res_t r = rd_kafka_conf_set(conf, props[i], eq + 1, errstr, sizeof(errstr));
        *eq = '=';
        if (r == RD_KAFKA_CONF_INVALID) {
            fprintf(stderr, "ifq-raw-pipe: -X %s: %s\n", props[i], errstr);
            goto fail;
        }
    }
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static rd_kafka_topic_partition_list_t *batch_offsets(rd_kafka_message_t **msgs, size_t n)
{
    rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) {
        const char *t = rd_kafka_topic_name(msgs[i]->rkt);
        rd_kafka_topic_partition_t *p =
            rd_kafka_topic_partition_list_find(offs, t, msgs[i]->partition);
        if (!p)
            p = rd_kafka_topic_partition_list_add(offs, t, msgs[i]->partition);
        if (msgs[i]->offset + 1 > p->offset)
            p->offset = msgs[i]->offset + 1;
    }
    return offs;
}

static int produce_batch(rd_kafka_t *producer, pipe_t *p, const char *to, rd_kafka_message_t **msgs,
                         size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rd_kafka_message_t *m = msgs[i];
        rd_kafka_headers_t *in = NULL, *h = NULL;
        if (rd_kafka_message_headers(m, &in) == RD_KAFKA_RESP_ERR_NO_ERROR && in)
            h = rd_kafka_headers_copy(in);
        for (;;) {
            rd_kafka_resp_err_t err = rd_kafka_producev(
                producer, RD_KAFKA_V_TOPIC(to), RD_KAFKA_V_VALUE(m->payload, m->len),
                RD_KAFKA_V_KEY(m->key, m->key_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                rd_kafka_poll(producer, 50);
                continue;
            }
            if (err) {
                if (h)
                    rd_kafka_headers_destroy(h);
                fprintf(stderr, "ifq-raw-pipe: produce: %s\n", rd_kafka_err2str(err));
                return -1;
            }
            p->outstanding++;
            break;
        }
    }
    return 0;
}

/* At least once: produce, wait for every acknowledgement, commit. */
static int publish_plain(rd_kafka_t *producer, rd_kafka_t *consumer, pipe_t *p, const char *to,
                         rd_kafka_message_t **msgs, size_t n)
{
    p->failed = 0;
    if (produce_batch(producer, p, to, msgs, n) < 0)
        return -1;
    while (p->outstanding > 0)
        rd_kafka_poll(producer, 100);
    if (p->failed) {
        fprintf(stderr, "ifq-raw-pipe: %d delivery failure(s): %s\n", p->failed,
                rd_kafka_err2str(p->last_err));
        return -1;
    }
    rd_kafka_topic_partition_list_t *offs = batch_offsets(msgs, n);
    rd_kafka_resp_err_t err = rd_kafka_commit(consumer, offs, 1); /* async, as the broker */
    rd_kafka_topic_partition_list_destroy(offs);
    if (err)
        fprintf(stderr, "ifq-raw-pipe: commit: %s\n", rd_kafka_err2str(err));
    return 0;
}

/* Exactly once: outputs and offsets in one transaction. Returns the number
 * of aborts (>= 0), or -1 on a fatal error. */
static int publish_txn(rd_kafka_t *producer, rd_kafka_t *consumer, pipe_t *p, const char *to,
                       rd_kafka_message_t **msgs, size_t n)
{
    int aborts = 0;
    for (int attempt = 0; attempt < TXN_ATTEMPTS && !stop_requested; attempt++) {
        rd_kafka_error_t *e = rd_kafka_begin_transaction(producer);
        if (e) {
            fprintf(stderr, "ifq-raw-pipe: begin_transaction: %s\n", rd_kafka_error_string(e));
            int fatal = rd_kafka_error_is_fatal(e);
            rd_kafka_error_destroy(e);
            if (fatal)
                return -1;
            continue;
        }
        p->failed = 0;
        if (produce_batch(producer, p, to, msgs, n) < 0)
            p->failed++;
        rd_kafka_flush(producer, 60000);
        if (!p->failed) {
            rd_kafka_topic_partition_list_t *offs = batch_offsets(msgs, n);
            rd_kafka_consumer_group_metadata_t *gm = rd_kafka_consumer_group_metadata(consumer);
            e = rd_kafka_send_offsets_to_transaction(producer, offs, gm, -1);
            rd_kafka_consumer_group_metadata_destroy(gm);
            rd_kafka_topic_partition_list_destroy(offs);
            if (!e)
                e = rd_kafka_commit_transaction(producer, -1);
            if (!e)
                return aborts;
            fprintf(stderr, "ifq-raw-pipe: commit_transaction: %s\n", rd_kafka_error_string(e));
            int fatal = rd_kafka_error_is_fatal(e);
            rd_kafka_error_destroy(e);
            if (fatal)
                return -1;
        }
        aborts++;
        e = rd_kafka_abort_transaction(producer, -1);
        if (e) {
            fprintf(stderr, "ifq-raw-pipe: abort_transaction: %s\n", rd_kafka_error_string(e));
            int fatal = rd_kafka_error_is_fatal(e);
            rd_kafka_error_destroy(e);
            if (fatal)
                return -1;
        }
    }
    return -1;
}

static void usage(void)
{
    fprintf(stderr, "usage: ifq-raw-pipe --bootstrap HOST:PORT --group G --from TOPIC --to TOPIC\n"
                    "                    [--batch N] [--transactions] [--transactional-id ID]\n"
                    "                    [--count N] [-X key=value ...]\n");
}

int main(int argc, char **argv)
{
    const char *bootstrap = NULL, *group = NULL, *from = NULL, *to = NULL, *txn_id = NULL;
    long batch = 500;
    long long count = 0;
    int transactions = 0;
    char *props[MAX_PROPS];
    size_t n_props = 0;
    static const struct option opts[] = {{"bootstrap", required_argument, NULL, 'b'},
                                         {"group", required_argument, NULL, 'g'},
                                         {"from", required_argument, NULL, 'f'},
                                         {"to", required_argument, NULL, 't'},
                                         {"batch", required_argument, NULL, 'n'},
                                         {"transactions", no_argument, NULL, 'T'},
                                         {"transactional-id", required_argument, NULL, 'i'},
                                         {"count", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "b:g:f:t:n:Ti:c:X:h", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            bootstrap = optarg;
            break;
        case 'g':
            group = optarg;
            break;
        case 'f':
            from = optarg;
            break;
        case 't':
            to = optarg;
            break;
        case 'n':
            batch = strtol(optarg, NULL, 10);
            break;
        case 'T':
            transactions = 1;
            break;
        case 'i':
            txn_id = optarg;
            break;
        case 'c':
            count = strtoll(optarg, NULL, 10);
            break;
        case 'X':
            if (n_props == MAX_PROPS || !strchr(optarg, '=')) {
                usage();
                return 2;
            }
            props[n_props++] = optarg;
            break;
        default:
            usage();
            return c == 'h' ? 0 : 2;
        }
    }
    if (!bootstrap || !group || !from || !to || batch < 1 || batch > 100000) {
        usage();
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    pipe_t p = {0};
    char errstr[512], txn_buf[256];
    if (transactions && !txn_id) {
        snprintf(txn_buf, sizeof(txn_buf), "%s-rawpipe-%d", group, (int)getpid());
        txn_id = txn_buf;
    }
    static const char *const producer_defaults[][2] = {
        {"enable.idempotence", "true"},
        {"linger.ms", "2"},
        {"compression.codec", "lz4"},
        {"message.max.bytes", "67108864"},
    };
    static const char *const consumer_defaults[][2] = {
        {"enable.auto.commit", "false"},   {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"}, {"enable.partition.eof", "false"},
        {"fetch.wait.max.ms", "50"},       {"partition.assignment.strategy", "cooperative-sticky"},
    };
    rd_kafka_conf_t *pc = make_conf(bootstrap, producer_defaults, 4, props, n_props);
    if (!pc || (txn_id && transactions && set(pc, "transactional.id", txn_id) < 0))
        return 2;
    rd_kafka_conf_set_dr_msg_cb(pc, dr_cb);
    rd_kafka_conf_set_opaque(pc, &p);
    rd_kafka_t *producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, errstr, sizeof(errstr));
    if (!producer) {
        fprintf(stderr, "ifq-raw-pipe: producer: %s\n", errstr);
        return 1;
    }
    if (transactions) {
        rd_kafka_error_t *e = rd_kafka_init_transactions(producer, 30000);
        if (e) {
            fprintf(stderr, "ifq-raw-pipe: init_transactions: %s\n", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            rd_kafka_destroy(producer);
            return 1;
        }
    }
    /* The output topic's metadata before the first batch, as the broker has
     * it from its start-up topic check: otherwise the first produce waits
     * for a metadata round trip. */
    rd_kafka_topic_t *out_rkt = rd_kafka_topic_new(producer, to, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t merr = rd_kafka_metadata(producer, 0, out_rkt, &md, 10000);
    if (merr) {
        fprintf(stderr, "ifq-raw-pipe: metadata of %s: %s\n", to, rd_kafka_err2str(merr));
        return 1;
    }
    rd_kafka_metadata_destroy(md);
    rd_kafka_conf_t *cc = make_conf(bootstrap, consumer_defaults, 6, props, n_props);
    if (!cc || set(cc, "group.id", group) < 0)
        return 2;
    rd_kafka_conf_set_rebalance_cb(cc, rebalance_cb);
    rd_kafka_t *consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, errstr, sizeof(errstr));
    if (!consumer) {
        fprintf(stderr, "ifq-raw-pipe: consumer: %s\n", errstr);
        return 1;
    }
    rd_kafka_poll_set_consumer(consumer);
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(subs, from, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t serr = rd_kafka_subscribe(consumer, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (serr) {
        fprintf(stderr, "ifq-raw-pipe: subscribe: %s\n", rd_kafka_err2str(serr));
        return 1;
    }

    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(consumer);
    rd_kafka_message_t **msgs = calloc((size_t)batch, sizeof(*msgs));
    long long done = 0, batches = 0, aborts = 0;
    double t_first = 0, t_last = 0;
    int rc = 0;
    while (!stop_requested && (count <= 0 || done < count)) {
        rd_kafka_message_t *first = rd_kafka_consumer_poll(consumer, 200);
        if (!first)
            continue;
        msgs[0] = first;
        ssize_t n = batch > 1 ? rd_kafka_consume_batch_queue(q, 0, msgs + 1, (size_t)batch - 1) : 0;
        n = n < 0 ? 1 : n + 1;
        size_t good = 0;
        for (ssize_t i = 0; i < n; i++) {
            if (msgs[i]->err) {
                if (msgs[i]->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    fprintf(stderr, "ifq-raw-pipe: consume: %s\n",
                            rd_kafka_message_errstr(msgs[i]));
                rd_kafka_message_destroy(msgs[i]);
                continue;
            }
            msgs[good++] = msgs[i];
        }
        if (good) {
            if (!t_first)
                t_first = mono_s();
            int r = transactions ? publish_txn(producer, consumer, &p, to, msgs, good)
                                 : publish_plain(producer, consumer, &p, to, msgs, good);
            if (r < 0) {
                fprintf(stderr, "ifq-raw-pipe: batch not durable; exiting without commit\n");
                rc = 1;
            } else {
                aborts += r;
                done += (long long)good;
                batches++;
                t_last = mono_s();
            }
        }
        for (size_t i = 0; i < good; i++)
            rd_kafka_message_destroy(msgs[i]);
        rd_kafka_poll(producer, 0);
        if (rc)
            break;
    }
    printf("{\"messages\": %lld, \"batches\": %lld, \"aborts\": %lld, \"transactions\": %s, "
           "\"seconds\": %.6f}\n",
           done, batches, aborts, transactions ? "true" : "false",
           t_last > t_first ? t_last - t_first : 0.0);
    fflush(stdout);
    rd_kafka_consumer_close(consumer);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(consumer);
    rd_kafka_flush(producer, 5000);
    rd_kafka_topic_destroy(out_rkt);
    rd_kafka_destroy(producer);
    free(msgs);
    return rc;
}
