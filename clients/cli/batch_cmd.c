/*
 * batch_cmd.c - `inferq batch run IN.jsonl -o OUT.jsonl ...`: an OpenAI batch
 * input file of any size through inferq, with bounded memory.
 *
 * Two streaming passes over IN (it must be a regular file):
 *  1. check: every line is a JSON object with a custom_id, and no custom_id
 *     appears twice. Only a 64-bit hash of each id is kept (a hash set at
 *     most half full: 16 bytes per line on average, 32 right after growing);
 *     when two hashes collide, a second pass compares the colliding ids
 *     exactly, so a duplicate is reported with both line numbers and a mere
 *     hash collision is not. Nothing is sent before this pass succeeded.
 *  2. send: lines are produced as long as fewer than --max-in-flight results
 *     are outstanding; only the in-flight custom_ids are held (as strings).
 *     Results are read from the reply topic (assigned at its end before the
 *     first request is produced), matched by custom_id, and written to OUT
 *     (failures to ERR when given) as they arrive.
 *
 * --resume first reads OUT and ERR (a torn last line from a crash is cut
 * off), keeps the hashes of their custom_ids, skips those lines of IN and
 * appends. Ctrl-C / SIGTERM stops sending, waits up to --grace seconds for
 * the in-flight results, flushes and fsyncs the files and exits 130; a
 * second signal skips the wait.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"

#define MAX_LINE_BYTES (16L * 1024 * 1024)

typedef struct {
    const char *in_path, *out_path, *err_path, *reply_to, *topic;
    long max_in_flight, timeout_s, grace_s;
    double progress_s;
    int resume, as_json, quiet, use_avro;
} batch_opts_t;

typedef struct {
    batch_opts_t o;
    FILE *out, *err;
    cli_client_t c;
    cli_strset_t inflight;
    const char *listen_topic;
    /* counts */
    long total;   /* request lines in IN */
    long skipped; /* already in OUT/ERR (--resume) */
    long sent, succeeded, failed, undelivered;
    int64_t start_ms, last_result_ms, last_progress_ms, last_flush_ms;
    int tty;
    int write_error;
} batch_t;

static void batch_usage(FILE *f)
{
    fputs("usage: inferq batch run IN.jsonl -o OUT.jsonl [--errors ERR.jsonl]\n"
          "                        [--max-in-flight N] [--resume] [--timeout S] [--grace S]\n"
          "                        [--reply-to TOPIC] [--topic TOPIC] [--avro]\n"
          "                        [--progress-interval S] [--quiet] [--json]\n"
          "\n"
          "Streams an OpenAI batch input file through inferq and writes each result line to\n"
          "OUT as it arrives (failed ones to ERR when --errors is given).\n"
          "  -o, --output FILE          output file (truncated unless --resume)\n"
          "  -e, --errors FILE          failed results go here instead of OUT\n"
          "  -n, --max-in-flight N      at most N requests awaiting a result (default 10000)\n"
          "  -r, --resume               skip custom_ids already in OUT/ERR, append\n"
          "  -t, --timeout S            give up after S s without any result (default 600)\n"
          "  -g, --grace S              after Ctrl-C, wait S s for in-flight results (default 5)\n"
          "      --reply-to TOPIC       results topic (default <prefix>.replies, filtered)\n"
          "      --topic TOPIC          request topic (default <prefix>.requests)\n"
          "      --avro                 send requests Avro-encoded\n"
          "      --progress-interval S  progress line period when stderr is not a TTY (10)\n"
          "  -q, --quiet                no progress output\n"
          "      --json                 print a JSON summary on stdout\n"
          "Exit: 0 all succeeded, 1 some failed, 2 usage/input error (nothing sent),\n"
          "3 Kafka unreachable or results missing after --timeout, 130 interrupted.\n",
          f);
}

/* ---- reading lines ------------------------------------------------------ */

typedef struct {
    FILE *f;
    char *buf;
    size_t cap;
    long lineno;
} line_reader_t;

/* Next non-blank line (trailing CR/LF removed) or NULL at EOF; *len gets its
 * length. A line over MAX_LINE_BYTES is an input error. */
static char *next_line(line_reader_t *r, const char *path, size_t *len)
{
    ssize_t n;
    while ((n = getline(&r->buf, &r->cap, r->f)) > 0) {
        r->lineno++;
        if (n > MAX_LINE_BYTES)
            cli_fail(CLI_USAGE, "%s:%ld: line longer than %ld bytes", path, r->lineno,
                     MAX_LINE_BYTES);
        while (n && (r->buf[n - 1] == '\n' || r->buf[n - 1] == '\r'))
            r->buf[--n] = '\0';
        size_t i = 0;
        while (i < (size_t)n && (r->buf[i] == ' ' || r->buf[i] == '\t'))
            i++;
        if (i == (size_t)n)
            continue;
        *len = (size_t)n;
        return r->buf;
    }
    if (ferror(r->f))
        cli_fail(CLI_USAGE, "%s: %s", path, strerror(errno));
    return NULL;
}

/* Parses a request line; exits with a file:line message when it is not an
 * object with a usable custom_id. */
static json_t *parse_request(const char *path, long lineno, const char *line, size_t len,
                             const char **cid)
{
    json_error_t jerr;
    json_t *r = json_loadb(line, len, 0, &jerr);
    if (!r)
        cli_fail(CLI_USAGE, "%s:%ld: not JSON: %s (column %d)", path, lineno, jerr.text,
                 jerr.column);
    const char *id = json_string_value(json_object_get(r, "custom_id"));
    if (!json_is_object(r) || !id)
        cli_fail(CLI_USAGE, "%s:%ld: not a batch request line (a JSON object with a custom_id)",
                 path, lineno);
    size_t idlen = strlen(id);
    if (idlen == 0 || idlen > 512 || idlen != json_string_length(json_object_get(r, "custom_id")))
        cli_fail(CLI_USAGE, "%s:%ld: custom_id must be 1..512 bytes without NUL", path, lineno);
    *cid = id;
    return r;
}

/* Pass 1: validates IN and refuses duplicate custom_ids. Counts the lines to
 * send (those not in done). */
static void check_input(batch_t *b, FILE *in, const cli_u64set_t *done)
{
    cli_u64set_t seen, collided;
    cli_u64set_init(&seen);
    cli_u64set_init(&collided);
    line_reader_t r = {.f = in};
    size_t len;
    char *line;
    while ((line = next_line(&r, b->o.in_path, &len))) {
        const char *cid;
        json_t *req = parse_request(b->o.in_path, r.lineno, line, len, &cid);
        uint64_t h = cli_id_hash(cid);
        if (!cli_u64set_add(&seen, h))
            cli_u64set_add(&collided, h);
        b->total++;
        if (done && cli_u64set_has(done, h))
            b->skipped++;
        json_decref(req);
    }
    cli_u64set_free(&seen);
    if (collided.n || collided.has_zero) {
        /* Exact check of the ids whose hashes collided: only those are kept. */
        rewind(in);
        r.lineno = 0;
        cli_strset_t ids;
        cli_strset_init(&ids, 16);
        while ((line = next_line(&r, b->o.in_path, &len))) {
            const char *cid;
            json_t *req = parse_request(b->o.in_path, r.lineno, line, len, &cid);
            if (cli_u64set_has(&collided, cli_id_hash(cid)) && !cli_strset_add(&ids, cid)) {
                long dup_line = r.lineno;
                char *dup = strdup(cid);
                json_decref(req);
                /* find where it first appeared */
                rewind(in);
                line_reader_t r2 = {.f = in};
                long first_line = 0;
                while (!first_line && (line = next_line(&r2, b->o.in_path, &len))) {
                    const char *c2;
                    json_t *q = parse_request(b->o.in_path, r2.lineno, line, len, &c2);
                    if (strcmp(c2, dup) == 0)
                        first_line = r2.lineno;
                    json_decref(q);
                }
                free(r2.buf);
                fprintf(stderr,
                        "inferq: %s:%ld: duplicate custom_id '%.200s' (first at line %ld); "
                        "nothing was sent\n",
                        b->o.in_path, dup_line, dup, first_line);
                exit(CLI_USAGE);
            }
            json_decref(req);
        }
        cli_strset_free(&ids);
    }
    cli_u64set_free(&collided);
    free(r.buf);
    rewind(in);
}

/* --resume: collects the custom_ids of an existing results file, cutting off
 * a torn last line. A missing file is fine. */
static void load_done(const char *path, cli_u64set_t *done)
{
    FILE *f = fopen(path, "r+");
    if (!f) {
        if (errno == ENOENT)
            return;
        cli_fail(CLI_USAGE, "%s: %s", path, strerror(errno));
    }
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    off_t good_end = 0, pos = 0;
    while ((n = getline(&buf, &cap, f)) > 0) {
        lineno++;
        pos += n;
        int complete = buf[n - 1] == '\n';
        if (complete && strspn(buf, " \t\r\n") == (size_t)n) {
            good_end = pos; /* a blank line */
            continue;
        }
        json_t *res = complete ? json_loadb(buf, (size_t)n, 0, NULL) : NULL;
        const char *cid = json_string_value(json_object_get(res, "custom_id"));
        if (cid) {
            cli_u64set_add(done, cli_id_hash(cid));
            good_end = pos;
        } else if (!complete) {
            fprintf(stderr, "inferq: %s:%ld: torn last line (%zd bytes) removed\n", path, lineno,
                    n);
        } else {
            cli_fail(CLI_USAGE, "%s:%ld: not a result line; refusing to resume into this file",
                     path, lineno);
        }
        json_decref(res);
    }
    free(buf);
    if (pos != good_end && ftruncate(fileno(f), good_end) != 0)
        cli_fail(CLI_USAGE, "%s: %s", path, strerror(errno));
    fclose(f);
}

/* ---- progress --------------------------------------------------------- */

static void progress(batch_t *b, int final)
{
    if (b->o.quiet)
        return;
    int64_t now = ifq_mono_ms();
    int64_t period = b->tty ? 200 : (int64_t)(b->o.progress_s * 1000);
    if (!final && now - b->last_progress_ms < period)
        return;
    b->last_progress_ms = now;
    long todo = b->total - b->skipped;
    long done = b->succeeded + b->failed;
    double el = (double)(now - b->start_ms) / 1000.0;
    double rate = el > 0 ? (double)done / el : 0;
    char eta[32];
    cli_fmt_duration(eta, sizeof(eta), rate > 0 ? (double)(todo - done) / rate : -1);
    int pct = todo > 0 ? (int)(done * 100 / todo) : 100;
    if (b->tty) {
        char bar[31];
        int fill = pct * 30 / 100;
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r[%s] %3d%% %ld/%ld  %.0f/s  ETA %s  in flight %zu  failed %ld\033[K",
                bar, pct, done, todo, rate, eta, b->inflight.n, b->failed);
        if (final)
            fputc('\n', stderr);
    } else {
        fprintf(stderr,
                "inferq batch: %ld/%ld done (%d%%), %ld failed, %zu in flight, %.0f/s, ETA %s\n",
                done, todo, pct, b->failed, b->inflight.n, rate, eta);
    }
}

/* ---- results ----------------------------------------------------------- */

static void write_line(batch_t *b, FILE *f, const void *data, size_t len)
{
    if (fwrite(data, 1, len, f) != len || fputc('\n', f) == EOF)
        b->write_error = errno ? errno : EIO;
}

static void on_result(batch_t *b, const rd_kafka_message_t *m)
{
    if (m->err || !m->len)
        return;
    json_t *res = json_loadb(m->payload, m->len, 0, NULL);
    const char *cid = json_string_value(json_object_get(res, "custom_id"));
    if (cid && cli_strset_del(&b->inflight, cid)) {
        int failed = !json_is_null(json_object_get(res, "error"));
        FILE *f = failed && b->err ? b->err : b->out;
        if (memchr(m->payload, '\n', m->len)) {
            char *s = json_dumps(res, JSON_COMPACT | JSON_PRESERVE_ORDER);
            write_line(b, f, s, strlen(s));
            free(s);
        } else {
            write_line(b, f, m->payload, m->len);
        }
        if (failed)
            b->failed++;
        else
            b->succeeded++;
        b->last_result_ms = ifq_mono_ms();
    }
    json_decref(res);
}

static void flush_files(batch_t *b)
{
    if (fflush(b->out) == EOF)
        b->write_error = errno;
    if (b->err && fflush(b->err) == EOF)
        b->write_error = errno;
    b->last_flush_ms = ifq_mono_ms();
}

/* Serves delivery reports and reads results for up to timeout_ms (the first
 * wait only; then whatever is already there, up to 1000 messages). */
static void pump(batch_t *b, int timeout_ms)
{
    rd_kafka_poll(b->c.producer, 0);
    rd_kafka_message_t *m = rd_kafka_consumer_poll(b->c.listener, timeout_ms);
    for (int i = 0; m; i++) {
        on_result(b, m);
        rd_kafka_message_destroy(m);
        /* at most 1000 in one go, so that sending goes on */
        m = i < 1000 ? rd_kafka_consumer_poll(b->c.listener, 0) : NULL;
    }
    if (ifq_mono_ms() - b->last_flush_ms >= 200)
        flush_files(b);
    progress(b, 0);
}

static void on_dr_fail(void *opaque, const char *key, size_t len, const char *why)
{
    batch_t *b = opaque;
    char cid[520];
    snprintf(cid, sizeof(cid), "%.*s", (int)(len < 512 ? len : 512), key ? key : "");
    if (cli_strset_del(&b->inflight, cid)) {
        b->undelivered++;
        if (b->undelivered <= 10)
            fprintf(stderr, "inferq: %s: not delivered to Kafka (%s); resume to retry\n", cid, why);
    }
}

/* Pass 2. Returns when every line was sent (or a signal came). */
static int send_all(batch_t *b, FILE *in, const cli_u64set_t *done)
{
    line_reader_t r = {.f = in};
    size_t len;
    char *line;
    int rc = 0;
    const char *topic = b->o.topic ? b->o.topic : b->c.cfg->topic_requests;
    while (!rc && !cli_interrupted && (line = next_line(&r, b->o.in_path, &len))) {
        const char *cid;
        json_t *req = parse_request(b->o.in_path, r.lineno, line, len, &cid);
        if (done && cli_u64set_has(done, cli_id_hash(cid))) {
            json_decref(req);
            continue;
        }
        while ((long)b->inflight.n >= b->o.max_in_flight && !cli_interrupted) {
            pump(b, 100);
            if (ifq_mono_ms() - b->last_result_ms > b->o.timeout_s * 1000) {
                fprintf(stderr, "inferq: no result for %ld s; %zu request(s) still in flight\n",
                        b->o.timeout_s, b->inflight.n);
                rc = CLI_INFRA;
                break;
            }
        }
        if (!rc && !cli_interrupted) {
            /* results must come to where we listen */
            if (b->o.reply_to)
                json_object_set_new(req, "reply_to", json_string(b->o.reply_to));
            else
                json_object_del(req, "reply_to");
            cli_strset_add(&b->inflight, cid);
            rc = cli_produce(&b->c, topic, req, cid);
            b->sent++;
            if (b->sent % 64 == 0)
                pump(b, 0);
        }
        json_decref(req);
    }
    free(r.buf);
    return rc;
}

static int parse_opts(batch_opts_t *o, int argc, char **argv)
{
    enum { O_REPLY = 256, O_TOPIC, O_AVRO, O_PROG, O_JSON };
    static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
                                         {"errors", required_argument, NULL, 'e'},
                                         {"max-in-flight", required_argument, NULL, 'n'},
                                         {"resume", no_argument, NULL, 'r'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"grace", required_argument, NULL, 'g'},
                                         {"reply-to", required_argument, NULL, O_REPLY},
                                         {"topic", required_argument, NULL, O_TOPIC},
                                         {"avro", no_argument, NULL, O_AVRO},
                                         {"progress-interval", required_argument, NULL, O_PROG},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"json", no_argument, NULL, O_JSON},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "o:e:n:rt:g:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            o->out_path = optarg;
            break;
        case 'e':
            o->err_path = optarg;
            break;
        case 'n':
            if (cli_parse_int(optarg, 1, 1000000, &o->max_in_flight))
                cli_fail(CLI_USAGE, "--max-in-flight: expected 1..1000000");
            break;
        case 'r':
            o->resume = 1;
            break;
        case 't':
            if (cli_parse_int(optarg, 1, 86400 * 7, &o->timeout_s))
                cli_fail(CLI_USAGE, "--timeout: expected seconds, 1..604800");
            break;
        case 'g':
            if (cli_parse_int(optarg, 0, 3600, &o->grace_s))
                cli_fail(CLI_USAGE, "--grace: expected seconds, 0..3600");
            break;
        case O_REPLY:
            o->reply_to = optarg;
            break;
        case O_TOPIC:
            o->topic = optarg;
            break;
        case O_AVRO:
            o->use_avro = 1;
            break;
        case O_PROG: {
            char *end;
            o->progress_s = strtod(optarg, &end);
            if (*end || !(o->progress_s >= 0.1 && o->progress_s <= 86400))
                cli_fail(CLI_USAGE, "--progress-interval: expected seconds, 0.1..86400");
            break;
        }
        case 'q':
            o->quiet = 1;
            break;
        case O_JSON:
            o->as_json = 1;
            break;
        case 'h':
            batch_usage(stdout);
            return -1;
        default:
            batch_usage(stderr);
            cli_fail(CLI_USAGE, "batch run: unknown option or missing value: %s", argv[optind - 1]);
        }
    }
    if (optind != argc - 1 || !o->out_path) {
        batch_usage(stderr);
        cli_fail(CLI_USAGE, "batch run: wants one input file and -o OUT.jsonl");
    }
    o->in_path = argv[optind];
    return 0;
}

static FILE *open_output(const char *path, int resume)
{
    FILE *f = fopen(path, resume ? "a" : "w");
    if (!f)
        cli_fail(CLI_USAGE, "%s: %s", path, strerror(errno));
    return f;
}

/* Peak resident set of this process image in KiB (VmHWM; getrusage's
 * ru_maxrss would include the parent's image from before exec). */
static long peak_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kib;
}

static void print_summary(batch_t *b, int rc)
{
    long missing = b->sent - b->succeeded - b->failed - b->undelivered;
    double el = (double)(ifq_mono_ms() - b->start_ms) / 1000.0;
    fprintf(stderr,
            "inferq: %ld request line(s), %ld already done, %ld sent, %ld succeeded, %ld failed, "
            "%ld undelivered, %ld without result%s -> %s%s%s (%.1f s)\n",
            b->total, b->skipped, b->sent, b->succeeded, b->failed, b->undelivered, missing,
            cli_interrupted ? " (interrupted: run again with --resume)" : "", b->o.out_path,
            b->err ? ", " : "", b->err ? b->o.err_path : "", el);
    if (b->o.as_json) {
        json_t *j = json_pack(
            "{ss ss so sI sI sI sI sI sI sI sb sf si sI}", "input", b->o.in_path, "output",
            b->o.out_path, "errors", b->o.err_path ? json_string(b->o.err_path) : json_null(),
            "lines", (json_int_t)b->total, "skipped", (json_int_t)b->skipped, "sent",
            (json_int_t)b->sent, "succeeded", (json_int_t)b->succeeded, "failed",
            (json_int_t)b->failed, "undelivered", (json_int_t)b->undelivered, "missing",
            (json_int_t)missing, "interrupted", cli_interrupted != 0, "elapsed_s", el, "exit", rc,
            "peak_rss_kib", (json_int_t)peak_rss_kib());
        char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
        puts(s);
        free(s);
        json_decref(j);
    }
}

int cli_batch(ifq_config_t *cfg, int argc, char **argv, int use_avro)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        batch_usage(stdout);
        return CLI_OK;
    }
    if (argc < 2 || strcmp(argv[1], "run") != 0) {
        batch_usage(stderr);
        return CLI_USAGE;
    }
    batch_t b = {.o = {.max_in_flight = 10000,
                       .timeout_s = 600,
                       .grace_s = 5,
                       .progress_s = 10,
                       .use_avro = use_avro}};
    if (parse_opts(&b.o, argc - 1, argv + 1))
        return CLI_OK;
    FILE *in = fopen(b.o.in_path, "r");
    if (!in)
        cli_fail(CLI_USAGE, "%s: %s", b.o.in_path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(in), &sb) || !S_ISREG(sb.st_mode))
        cli_fail(CLI_USAGE, "%s: not a regular file (batch run reads its input twice)",
                 b.o.in_path);
    if (b.o.err_path && strcmp(b.o.err_path, b.o.out_path) == 0)
        cli_fail(CLI_USAGE, "--errors must name another file than --output");

    cli_u64set_t done;
    cli_u64set_init(&done);
    if (b.o.resume) {
        load_done(b.o.out_path, &done);
        if (b.o.err_path)
            load_done(b.o.err_path, &done);
    }
    check_input(&b, in, b.o.resume ? &done : NULL);
    b.out = open_output(b.o.out_path, b.o.resume);
    b.err = b.o.err_path ? open_output(b.o.err_path, b.o.resume) : NULL;
    b.tty = isatty(2);

    b.c.cfg = cfg;
    b.c.use_avro = b.o.use_avro;
    b.c.on_dr_fail = on_dr_fail;
    b.c.dr_opaque = &b;
    char errstr[256];
    if (b.c.use_avro && !(b.c.avro = ifq_avro_new(errstr, sizeof(errstr))))
        cli_fail(CLI_INFRA, "avro: %s", errstr);
    cli_strset_init(&b.inflight, (size_t)b.o.max_in_flight);
    b.listen_topic = b.o.reply_to ? b.o.reply_to : cfg->topic_replies;
    int rc = b.total - b.skipped > 0 ? cli_client_open(&b.c, b.listen_topic, 1, 0, NULL, NULL) : 0;
    b.start_ms = b.last_result_ms = b.last_progress_ms = b.last_flush_ms = ifq_mono_ms();
    if (!rc && b.total - b.skipped > 0) {
        rc = send_all(&b, in, b.o.resume ? &done : NULL);
        /* wait for the rest: until done, timeout, or the grace after a signal */
        int64_t grace_end = 0;
        while (!rc && b.inflight.n > 0) {
            if (cli_interrupted) {
                if (!grace_end)
                    grace_end = ifq_mono_ms() + b.o.grace_s * 1000;
                if (cli_interrupted > 1 || ifq_mono_ms() >= grace_end)
                    break;
            }
            pump(&b, 100);
            if (!cli_interrupted && ifq_mono_ms() - b.last_result_ms > b.o.timeout_s * 1000) {
                fprintf(stderr, "inferq: no result for %ld s; %zu request(s) still in flight\n",
                        b.o.timeout_s, b.inflight.n);
                rc = CLI_INFRA;
            }
        }
        rd_kafka_flush(b.c.producer, 5000);
        rd_kafka_poll(b.c.producer, 0);
    }
    progress(&b, 1);
    flush_files(&b);
    if (fsync(fileno(b.out)) != 0 && errno != EINVAL)
        b.write_error = errno;
    if (b.err && fsync(fileno(b.err)) != 0 && errno != EINVAL)
        b.write_error = errno;
    if (b.write_error) {
        fprintf(stderr, "inferq: writing results: %s\n", strerror(b.write_error));
        rc = CLI_INFRA;
    }
    if (!rc) {
        if (cli_interrupted)
            rc = CLI_INTERRUPTED;
        else if (b.inflight.n > 0)
            rc = CLI_INFRA;
        else if (b.failed || b.undelivered)
            rc = CLI_FAILED;
    }
    print_summary(&b, rc);
    fclose(b.out);
    if (b.err)
        fclose(b.err);
    fclose(in);
    cli_u64set_free(&done);
    cli_strset_free(&b.inflight);
    cli_client_close(&b.c);
    return rc;
}
