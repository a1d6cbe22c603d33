/*
 * inferq - the command-line client.
 *
 *   inferq [--config F] submit [--model M] [--message TEXT] [...]   one request, waits, prints
 *   inferq [--config F] batch run IN.jsonl -o OUT.jsonl             an OpenAI batch file through
 *   inferq [--config F] status CUSTOM_ID                            the request's state in Redis
 *
 * Results are read from the reply topic starting at its end as it was just
 * before the requests were produced (the watermarks are queried first), so
 * no result can slip between subscribing and producing.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "avro_codec.h"
#include "catalog.h"
#include "route.h"
#include "config.h"
#include "envelope.h"
#include "kafka.h"
#include "log.h"
#include "prompt_cmd.h"
#include "state.h"

#define MAX_LINE (64u * 1024 * 1024)

/* clients/cli/guard_cmd.c */
int ifq_cli_guard(ifq_config_t *cfg, int argc, char **argv);

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("inferq: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* ---- a tiny string set for pending custom_ids ------------------------- */

typedef struct {
    char **keys;
    size_t cap, n;
} strset_t;

static size_t set_slot(const strset_t *s, const char *k)
{
    size_t i = (size_t)ifq_fnv1a64(k, strlen(k), 0) & (s->cap - 1);
    while (s->keys[i] && strcmp(s->keys[i], k) != 0)
        i = (i + 1) & (s->cap - 1);
    return i;
}

static void set_init(strset_t *s, size_t expect)
{
    s->cap = 16;
    while (s->cap < expect * 2 + 2)
        s->cap *= 2;
    s->keys = calloc(s->cap, sizeof(*s->keys));
    s->n = 0;
}

static int set_add(strset_t *s, const char *k)
{
    size_t i = set_slot(s, k);
    if (s->keys[i])
        return 0;
    s->keys[i] = strdup(k);
    s->n++;
    return 1;
}

/* Removes k (tombstone-free: re-inserts the rest of the cluster). */
static int set_del(strset_t *s, const char *k)
{
    size_t i = set_slot(s, k);
    if (!s->keys[i])
        return 0;
    free(s->keys[i]);
    s->keys[i] = NULL;
    s->n--;
    for (size_t j = (i + 1) & (s->cap - 1); s->keys[j]; j = (j + 1) & (s->cap - 1)) {
        char *mv = s->keys[j];
        s->keys[j] = NULL;
        s->keys[set_slot(s, mv)] = mv;
    }
    return 1;
}

static void set_free(strset_t *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->keys[i]);
    free(s->keys);
}

/* ---- Kafka round trip ------------------------------------------------- */

typedef struct {
    ifq_config_t *cfg;
    rd_kafka_t *producer;
    rd_kafka_t *listener;
    ifq_avro_t *avro;
    int use_avro;
    int delivery_failures;
    int outstanding;
} client_t;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    client_t *c = opaque;
    c->outstanding--;
    if (m->err) {
        c->delivery_failures++;
        fprintf(stderr, "inferq: delivery failed: %s\n", rd_kafka_err2str(m->err));
    }
}

static void client_open(client_t *c, const char *reply_topic)
{
    char errstr[512];
    c->producer = ifq_kafka_producer_new(c->cfg, dr_cb, c, NULL, errstr, sizeof(errstr));
    if (!c->producer)
        die("%s", errstr);
    const char *topics[] = {c->cfg->topic_requests, reply_topic};
    if (c->cfg->create_topics &&
        ifq_kafka_ensure_topics(c->producer, c->cfg, topics, 2, 10000, errstr, sizeof(errstr)))
        die("%s", errstr);

    /* The listener has no group: it assigns every partition of the reply
     * topic at the current high watermark. */
    ifq_config_t *cfg = c->cfg;
    char group[64];
    snprintf(group, sizeof(group), "inferq-cli-%d", (int)getpid());
    c->listener = ifq_kafka_consumer_new(cfg, group, NULL, NULL, errstr, sizeof(errstr));
    if (!c->listener)
        die("%s", errstr);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(c->listener, reply_topic, NULL);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
    for (int tries = 0; tries < 20; tries++) {
        err = rd_kafka_metadata(c->listener, 0, rkt, &md, 5000);
        if (!err && md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt > 0)
            break;
        if (md)
            rd_kafka_metadata_destroy(md);
        md = NULL;
        usleep(250 * 1000); /* the topic may have just been created */
    }
    rd_kafka_topic_destroy(rkt);
    if (!md)
        die("reply topic %s: no metadata (%s)", reply_topic, rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int i = 0; i < md->topics[0].partition_cnt; i++) {
        int32_t p = md->topics[0].partitions[i].id;
        int64_t lo = 0, hi = 0;
        err = rd_kafka_query_watermark_offsets(c->listener, reply_topic, p, &lo, &hi, 10000);
        if (err)
            die("reply topic %s[%d]: %s", reply_topic, (int)p, rd_kafka_err2str(err));
        rd_kafka_topic_partition_list_add(l, reply_topic, p)->offset = hi;
    }
    rd_kafka_metadata_destroy(md);
    err = rd_kafka_assign(c->listener, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err)
        die("assign %s: %s", reply_topic, rd_kafka_err2str(err));
}

static void client_close(client_t *c)
{
    if (c->producer) {
        rd_kafka_flush(c->producer, 10000);
        rd_kafka_destroy(c->producer);
    }
    if (c->listener) {
        rd_kafka_consumer_close(c->listener);
        rd_kafka_destroy(c->listener);
    }
}

static void produce_request(client_t *c, json_t *req, const char *custom_id)
{
    void *val = NULL;
    size_t len = 0;
    const char *ctype = "application/json";
    if (c->use_avro) {
        char errstr[256];
        if (ifq_avro_encode(c->avro, IFQ_AVRO_REQUEST, req, &val, &len, errstr, sizeof(errstr)))
            die("%s: cannot encode as Avro: %s", custom_id, errstr);
        ctype = "application/vnd.inferq.request.v1+avro";
    } else {
        val = ifq_json_dump(req, &len);
    }
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, "content-type", -1, ctype, -1);
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            c->producer, RD_KAFKA_V_TOPIC(c->cfg->topic_requests), RD_KAFKA_V_VALUE(val, len),
            RD_KAFKA_V_KEY((void *)custom_id, strlen(custom_id)),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(c->producer, 50);
            continue;
        }
        if (err)
            die("produce: %s", rd_kafka_err2str(err));
        c->outstanding++;
        break;
    }
    rd_kafka_poll(c->producer, 0);
}

/* Waits for the next result whose custom_id is pending; returns it (caller
 * owns) after removing it from pending, or NULL on timeout. */
static json_t *next_result(client_t *c, strset_t *pending, int64_t deadline_mono)
{
    while (!interrupted && ifq_mono_ms() < deadline_mono) {
        rd_kafka_poll(c->producer, 0);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->listener, 100);
        if (!m)
            continue;
        json_t *res = NULL;
        if (!m->err && m->len) {
            json_error_t jerr;
            res = json_loadb(m->payload, m->len, 0, &jerr);
            const char *cid = json_string_value(json_object_get(res, "custom_id"));
            if (!cid || !set_del(pending, cid)) {
                json_decref(res);
                res = NULL;
            }
        }
        rd_kafka_message_destroy(m);
        if (res)
            return res;
    }
    return NULL;
}

/* ---- commands ----------------------------------------------------------- */

static ifq_config_t *load_config(const char *path)
{
    if (!path)
        path = getenv("INFERQ_CONFIG");
    if (!path && access("deploy/local/inferq.yaml", R_OK) == 0)
        path = "deploy/local/inferq.yaml";
    char errstr[512];
    ifq_config_t *cfg = NULL;
    if (path)
        cfg = ifq_config_load(path, errstr, sizeof(errstr));
    else
        cfg = ifq_config_parse("{}", 2, errstr, sizeof(errstr));
    if (!cfg)
        die("%s", errstr);
    return cfg;
}

static int result_failed(json_t *res)
{
    return !json_is_null(json_object_get(res, "error"));
}

static char *read_stdin(size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            if (cap >= MAX_LINE)
                die("stdin larger than %u bytes", MAX_LINE);
            cap *= 2;
            buf = realloc(buf, cap);
        }
        size_t r = fread(buf + n, 1, cap - n - 1, stdin);
        if (r == 0)
            break;
        n += r;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int cmd_submit(ifq_config_t *cfg, int argc, char **argv, int use_avro)
{
    const char *model = "chat-default", *message = NULL, *url = "/v1/chat/completions";
    const char *custom_id = NULL, *reply_to = NULL, *priority = NULL;
    int timeout_s = 120, max_tokens = 0;
    long long deadline = 0;
    json_t *metadata = json_object();
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},    {"message", required_argument, NULL, 'M'},
        {"url", required_argument, NULL, 'u'},      {"custom-id", required_argument, NULL, 'i'},
        {"reply-to", required_argument, NULL, 'r'}, {"timeout", required_argument, NULL, 't'},
        {"priority", required_argument, NULL, 'p'}, {"deadline-ms", required_argument, NULL, 'd'},
        {"metadata", required_argument, NULL, 'k'}, {"max-tokens", required_argument, NULL, 'x'},
        {"avro", no_argument, NULL, 'a'},           {NULL, 0, NULL, 0}};
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "m:M:u:i:r:t:p:d:k:x:a", opts, NULL)) != -1) {
        switch (o) {
        case 'm':
            model = optarg;
            break;
        case 'M':
            message = optarg;
            break;
        case 'u':
            url = optarg;
            break;
        case 'i':
            custom_id = optarg;
            break;
        case 'r':
            reply_to = optarg;
            break;
        case 't':
            timeout_s = (int)strtol(optarg, NULL, 10);
            break;
        case 'p':
            priority = optarg;
            break;
        case 'd':
            deadline = strtoll(optarg, NULL, 10);
            break;
        case 'x':
            max_tokens = (int)strtol(optarg, NULL, 10);
            break;
        case 'a':
            use_avro = 1;
            break;
        case 'k': {
            char *eq = strchr(optarg, '=');
            if (!eq)
                die("--metadata wants KEY=VALUE");
            *eq = '\0';
            json_object_set_new(metadata, optarg, json_string(eq + 1));
            break;
        }
        default:
            die("submit: unknown option (see inferq --help)");
        }
    }
    json_t *req = NULL;
    if (!message) {
        size_t len;
        char *text = read_stdin(&len);
        size_t i = 0;
        while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t'))
            i++;
        if (i < len && text[i] == '{') {
            json_error_t jerr;
            req = json_loadb(text, len, 0, &jerr);
            if (!json_is_object(req))
                die("stdin: not a JSON request line: %s", jerr.text);
        } else {
            while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
                text[--len] = '\0';
            req = json_object();
            json_object_set_new(req, "_text", json_string(text));
        }
        free(text);
    }
    if (!req || json_object_get(req, "_text")) {
        const char *text = req ? json_string_value(json_object_get(req, "_text")) : message;
        json_t *body = json_pack("{ss}", "model", model);
        if (strcmp(url, "/v1/embeddings") == 0)
            json_object_set_new(body, "input", json_string(text));
        else if (strcmp(url, "/v1/completions") == 0)
            json_object_set_new(body, "prompt", json_string(text));
        else
            json_object_set_new(body, "messages",
                                json_pack("[{ss ss}]", "role", "user", "content", text));
        if (max_tokens > 0)
            json_object_set_new(body, "max_tokens", json_integer(max_tokens));
        json_t *r = json_pack("{ss ss so}", "method", "POST", "url", url, "body", body);
        json_decref(req);
        req = r;
    }
    char gen_id[64];
    if (custom_id)
        json_object_set_new(req, "custom_id", json_string(custom_id));
    if (!json_is_string(json_object_get(req, "custom_id"))) {
        snprintf(gen_id, sizeof(gen_id), "cli-%d-%lld", (int)getpid(), (long long)ifq_now_ms());
        json_object_set_new(req, "custom_id", json_string(gen_id));
    }
    if (reply_to)
        json_object_set_new(req, "reply_to", json_string(reply_to));
    if (priority)
        json_object_set_new(req, "priority", json_string(priority));
    if (deadline)
        json_object_set_new(req, "deadline_ms", json_integer(deadline));
    if (json_object_size(metadata))
        json_object_set(req, "metadata", metadata);
    json_decref(metadata);
    const char *cid = json_string_value(json_object_get(req, "custom_id"));
    const char *rt = json_string_value(json_object_get(req, "reply_to"));

    client_t c = {.cfg = cfg, .use_avro = use_avro};
    char errstr[256];
    if (use_avro && !(c.avro = ifq_avro_new(errstr, sizeof(errstr))))
        die("avro: %s", errstr);
    client_open(&c, rt ? rt : cfg->topic_replies);
    strset_t pending;
    set_init(&pending, 1);
    set_add(&pending, cid);
    produce_request(&c, req, cid);
    json_t *res = next_result(&c, &pending, ifq_mono_ms() + (int64_t)timeout_s * 1000);
    int rc;
    if (!res) {
        fprintf(stderr, "inferq: no result for %s within %d s\n", cid, timeout_s);
        rc = 3;
    } else {
        char *s = json_dumps(res, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        puts(s);
        free(s);
        rc = result_failed(res) ? 1 : 0;
        json_decref(res);
    }
    set_free(&pending);
    json_decref(req);
    client_close(&c);
    ifq_avro_destroy(c.avro);
    return rc;
}

static int cmd_batch(ifq_config_t *cfg, int argc, char **argv, int use_avro)
{
    if (argc < 2 || strcmp(argv[1], "run") != 0)
        die("usage: inferq batch run IN.jsonl -o OUT.jsonl [--timeout S] [--avro]");
    const char *out_path = NULL;
    int timeout_s = 600;
    static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"avro", no_argument, NULL, 'a'},
                                         {NULL, 0, NULL, 0}};
    int o;
    optind = 2;
    while ((o = getopt_long(argc, argv, "o:t:a", opts, NULL)) != -1) {
        if (o == 'o')
            out_path = optarg;
        else if (o == 't')
            timeout_s = (int)strtol(optarg, NULL, 10);
        else if (o == 'a')
            use_avro = 1;
        else
            die("batch run: unknown option");
    }
    if (optind >= argc || !out_path)
        die("usage: inferq batch run IN.jsonl -o OUT.jsonl");
    const char *in_path = argv[optind];
    FILE *in = strcmp(in_path, "-") == 0 ? stdin : fopen(in_path, "r");
    if (!in)
        die("%s: %s", in_path, strerror(errno));

    /* Read and check the whole file first: a batch with a broken line or a
     * duplicate custom_id is refused before anything is sent. */
    size_t cap = 1024, n = 0;
    json_t **reqs = malloc(cap * sizeof(*reqs));
    char *line = NULL;
    size_t linecap = 0;
    ssize_t len;
    long lineno = 0;
    strset_t pending;
    set_init(&pending, 1024);
    while ((len = getline(&line, &linecap, in)) > 0) {
        lineno++;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        json_error_t jerr;
        json_t *r = json_loadb(line, (size_t)len, 0, &jerr);
        const char *cid = json_string_value(json_object_get(r, "custom_id"));
        if (!json_is_object(r) || !cid)
            die("%s:%ld: not a batch request line (JSON object with custom_id)", in_path, lineno);
        if (n == cap) {
            strset_t bigger;
            set_init(&bigger, cap * 2);
            for (size_t i = 0; i < pending.cap; i++)
                if (pending.keys[i])
                    set_add(&bigger, pending.keys[i]);
            set_free(&pending);
            pending = bigger;
            cap *= 2;
            reqs = realloc(reqs, cap * sizeof(*reqs));
        }
        if (!set_add(&pending, cid))
            die("%s:%ld: duplicate custom_id '%s'", in_path, lineno, cid);
        reqs[n++] = r;
    }
    free(line);
    if (in != stdin)
        fclose(in);
    FILE *out = fopen(out_path, "w");
    if (!out)
        die("%s: %s", out_path, strerror(errno));

    client_t c = {.cfg = cfg, .use_avro = use_avro};
    char errstr[256];
    if (use_avro && !(c.avro = ifq_avro_new(errstr, sizeof(errstr))))
        die("avro: %s", errstr);
    client_open(&c, cfg->topic_replies);
    for (size_t i = 0; i < n; i++) {
        json_object_del(reqs[i], "reply_to"); /* results must come to where we listen */
        produce_request(&c, reqs[i], json_string_value(json_object_get(reqs[i], "custom_id")));
    }
    int tty = isatty(2);
    int64_t deadline = ifq_mono_ms() + (int64_t)timeout_s * 1000;
    size_t got = 0, failed = 0;
    int64_t last_draw = 0;
    while (got < n) {
        json_t *res = next_result(&c, &pending, deadline);
        if (!res)
            break;
        got++;
        failed += result_failed(res);
        char *s = json_dumps(res, JSON_COMPACT | JSON_PRESERVE_ORDER);
        fputs(s, out);
        fputc('\n', out);
        free(s);
        json_decref(res);
        if (tty && (ifq_mono_ms() - last_draw > 100 || got == n)) {
            fprintf(stderr, "\r%zu/%zu results (%zu failed)", got, n, failed);
            last_draw = ifq_mono_ms();
        }
    }
    if (tty)
        fputc('\n', stderr);
    fclose(out);
    fprintf(stderr, "inferq: %zu request(s), %zu result(s), %zu failed, %zu missing -> %s\n", n,
            got, failed, n - got, out_path);
    for (size_t i = 0; i < n; i++)
        json_decref(reqs[i]);
    free(reqs);
    set_free(&pending);
    int rc = c.delivery_failures ? 1 : got == n ? 0 : 3;
    client_close(&c);
    ifq_avro_destroy(c.avro);
    return rc;
}

static int cmd_status(ifq_config_t *cfg, int argc, char **argv)
{
    if (argc < 2)
        die("usage: inferq status CUSTOM_ID");
    char errstr[512];
    ifq_state_t *st =
        ifq_state_connect(cfg->redis_url, cfg->prefix, cfg->state_ttl_s, errstr, sizeof(errstr));
    if (!st)
        die("%s", errstr);
    int err = 0;
    json_t *s = ifq_state_get(st, argv[1], &err);
    ifq_state_destroy(st);
    if (!s) {
        fprintf(stderr, "inferq: %s: %s\n", argv[1],
                err == IFQ_ERR_NOTFOUND ? "no such request (or its state expired)" : "redis error");
        return err == IFQ_ERR_NOTFOUND ? 4 : 2;
    }
    char *txt = json_dumps(s, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    puts(txt);
    free(txt);
    json_decref(s);
    return 0;
}

static int cmd_models(ifq_config_t *cfg, int argc, char **argv)
{
    const char *team = NULL;
    int as_json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--team") == 0 && i + 1 < argc)
            team = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            as_json = 1;
        else
            die("usage: inferq models [--team T] [--json]");
    }
    if (team && !ifq_config_team(cfg, team))
        die("no team '%s' in the configuration", team);
    /* Health comes from what workers publish in Redis; without Redis the
     * list is still printed, without health. */
    ifq_health_t health = {cfg->n_deployments,
                           calloc(cfg->n_deployments + 1, sizeof(ifq_dep_health_t))};
    char errstr[256];
    ifq_state_t *st =
        ifq_state_connect(cfg->redis_url, cfg->prefix, cfg->state_ttl_s, errstr, sizeof(errstr));
    int have_health = st && ifq_state_read_health(st, cfg, &health) == IFQ_OK;
    ifq_state_destroy(st);
    json_t *list = ifq_catalog_models(cfg, team, have_health ? &health : NULL);
    if (as_json) {
        char *s = json_dumps(list, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        puts(s);
        free(s);
    } else {
        printf("%-24s %-10s %-11s %-34s %s\n", "MODEL", "KIND", "STRATEGY", "DEPLOYMENTS",
               "HEALTH");
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(list, "data"), i, m)
        {
            json_t *ext = json_object_get(m, "inferq");
            const char *kind = json_string_value(json_object_get(ext, "kind"));
            char deps[256] = "", health_s[128] = "";
            size_t dl = 0, hl = 0;
            json_t *arr = json_object_get(ext, "deployments");
            size_t k;
            json_t *d;
            if (!arr) {
                arr = json_array();
                json_array_append(arr, ext);
            } else {
                json_incref(arr);
            }
            json_array_foreach(arr, k, d)
            {
                const char *nm = json_string_value(json_object_get(d, "name"));
                dl += (size_t)snprintf(deps + dl, dl < sizeof(deps) ? sizeof(deps) - dl : 0, "%s%s",
                                       k ? "," : "", nm ? nm : "?");
                json_t *h = json_object_get(d, "health");
                if (h)
                    hl += (size_t)snprintf(
                        health_s + hl, hl < sizeof(health_s) ? sizeof(health_s) - hl : 0, "%s%s",
                        k ? "," : "", json_string_value(json_object_get(h, "circuit")));
            }
            json_decref(arr);
            printf("%-24s %-10s %-11s %-34s %s\n", json_string_value(json_object_get(m, "id")),
                   kind,
                   json_is_string(json_object_get(ext, "strategy"))
                       ? json_string_value(json_object_get(ext, "strategy"))
                       : "-",
                   deps, health_s[0] ? health_s : "-");
        }
    }
    json_decref(list);
    free(health.deps);
    return 0;
}

static void usage(FILE *f)
{
    fputs("usage: inferq [--config FILE] [--avro] COMMAND ...\n"
          "\n"
          "commands:\n"
          "  submit [--model M] [--message TEXT] [--url /v1/...] [--custom-id ID]\n"
          "         [--reply-to TOPIC] [--priority high|normal|low] [--deadline-ms MS]\n"
          "         [--metadata K=V]... [--max-tokens N] [--timeout S] [--avro]\n"
          "      Sends one request (from the flags, or a JSON request line or plain text on\n"
          "      stdin), waits for its result and prints it. Exit 0 succeeded, 1 failed,\n"
          "      3 timed out.\n"
          "  batch run IN.jsonl -o OUT.jsonl [--timeout S] [--avro]\n"
          "      Sends an OpenAI batch input file and writes the output file.\n"
          "  status CUSTOM_ID\n"
          "      Prints the request's state from Redis.\n"
          "  models [--team T] [--json]\n"
          "      Lists the models (aliases and deployments) a team may use, with health.\n"
          "  prompt push ID FILE | list [--json] | show ID [--version N|--label L] [--raw]\n"
          "         | label ID LABEL VERSION | render ID [--version N|--label L] [--var K=V]...\n"
          "      Versioned prompt templates in Redis (docs/prompts.md).\n"
          "  guard scan [--policy NAME] [--output] [--jsonl] | guard policies\n"
          "      Runs a guardrail policy on text from stdin and prints the findings and the\n"
          "      transformed text (docs/guardrails.md). Exit 3 when blocked.\n"
          "\n"
          "The config defaults to $INFERQ_CONFIG, then deploy/local/inferq.yaml;\n"
          "INFERQ_KAFKA_BOOTSTRAP and INFERQ_REDIS_URL override it.\n",
          f);
}

int main(int argc, char **argv)
{
    const char *config = NULL;
    int use_avro = 0;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if ((strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) && i + 1 < argc)
            config = argv[++i];
        else if (strcmp(argv[i], "--avro") == 0)
            use_avro = 1;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    ifq_log_init("inferq", IFQ_LOG_WARN);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    ifq_config_t *cfg = load_config(config);
    const char *cmd = argv[i];
    int sub_argc = argc - i;
    char **sub_argv = argv + i;
    int rc;
    if (strcmp(cmd, "submit") == 0)
        rc = cmd_submit(cfg, sub_argc, sub_argv, use_avro);
    else if (strcmp(cmd, "batch") == 0)
        rc = cmd_batch(cfg, sub_argc, sub_argv, use_avro);
    else if (strcmp(cmd, "status") == 0)
        rc = cmd_status(cfg, sub_argc, sub_argv);
    else if (strcmp(cmd, "models") == 0)
        rc = cmd_models(cfg, sub_argc, sub_argv);
    else if (strcmp(cmd, "prompt") == 0)
        rc = ifq_cli_prompt(cfg, sub_argc, sub_argv);
    else if (strcmp(cmd, "guard") == 0)
        rc = ifq_cli_guard(cfg, sub_argc, sub_argv);
    else {
        usage(stderr);
        rc = 2;
    }
    ifq_config_destroy(cfg);
    return rc;
}
