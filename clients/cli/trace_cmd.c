/*
 * trace_cmd.c - `inferq trace`: looks up a request's state in Redis (its
 * trace id and when it was received), reads its spans from the traces
 * topic (lib/trace_read.c) and prints them as a tree with a timeline:
 *
 *   STAGE                 SERVICE        START    DURATION  TIMELINE
 *   broker.receive        inferq-broker  0.0 ms   4.1 ms    |██        |
 *     worker.attempt      inferq-worker  5.0 ms   100.0 ms  |  ████████|
 *         deployment=fake-chat status=200 tokens=3→9
 */
#include "trace_cmd.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "state.h"
#include "trace_read.h"

#define TRACE_READ_TIMEOUT_MS 15000
#define TRACE_QUIET_MS 1000

static void trace_usage(FILE *f)
{
    fputs("usage: inferq trace CUSTOM_ID [--json] [--redis URL] [--bootstrap HOST:PORT]\n"
          "                    [--wait SECONDS] [--width COLUMNS]\n",
          f);
}

static int term_width(int forced)
{
    if (forced > 0)
        return forced;
    struct winsize ws;
    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    const char *c = getenv("COLUMNS");
    int64_t n;
    if (c && ifq_parse_i64(c, &n) == IFQ_OK && n > 20 && n < 1000)
        return (int)n;
    return 120;
}

static int utf8_locale(void)
{
    const char *vars[] = {"LC_ALL", "LC_CTYPE", "LANG"};
    for (size_t i = 0; i < IFQ_ARRAY_LEN(vars); i++) {
        const char *v = getenv(vars[i]);
        if (v && v[0])
            return strstr(v, "UTF-8") || strstr(v, "utf8") || strstr(v, "UTF8");
    }
    return 0;
}

/* 1 when every span's parent is among the spans (no hop missing). */
static int tree_complete(const ifq_trace_t *t)
{
    for (size_t i = 0; i < t->n; i++) {
        if (!t->spans[i].parent_id[0])
            continue;
        size_t k = 0;
        while (k < t->n && strcmp(t->spans[k].span_id, t->spans[i].parent_id) != 0)
            k++;
        if (k == t->n)
            return 0;
    }
    return t->n > 0;
}

/* The attributes worth a glance, as "k=v k=v" into out. */
static void key_attributes(const ifq_span_t *s, char *out, size_t size)
{
    static const struct {
        const char *key, *label;
    } keys[] = {
        {"inferq.deployment", "deployment"},
        {"gen_ai.request.model", "model"},
        {"inferq.attempt", "attempt"},
        {"http.response.status_code", "status"},
        {"gen_ai.usage.input_tokens", "tokens_in"},
        {"gen_ai.usage.output_tokens", "tokens_out"},
        {"gen_ai.response.finish_reasons", "finish"},
        {"inferq.cost_usd", "cost_usd"},
        {"error.type", "error.type"},
    };
    size_t n = 0;
    out[0] = '\0';
#define APPEND(...)                                                                                \
    do {                                                                                           \
        if (n < size)                                                                              \
            n += (size_t)snprintf(out + n, size - n, __VA_ARGS__);                                 \
    } while (0)
    for (size_t i = 0; i < IFQ_ARRAY_LEN(keys); i++) {
        json_t *v = json_object_get(s->attributes, keys[i].key);
        if (!v)
            continue;
        char *txt = json_is_string(v) ? strdup(json_string_value(v))
                                      : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        APPEND("%s%s=%s", n ? " " : "", keys[i].label, txt ? txt : "?");
        free(txt);
    }
    /* Guardrail findings and routing decisions, whatever their exact key. */
    const char *k;
    json_t *v;
    json_object_foreach(s->attributes, k, v)
    {
        if (!strstr(k, "guardrail") && !strstr(k, "routing"))
            continue;
        char *txt = json_is_string(v) ? strdup(json_string_value(v))
                                      : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        APPEND("%s%s=%s", n ? " " : "", k, txt ? txt : "?");
        free(txt);
    }
    if (s->status_code == 2)
        APPEND("%sERROR%s%s", n ? " " : "", s->status_message[0] ? ": " : "", s->status_message);
#undef APPEND
}

static void fmt_ms(char *buf, size_t size, double ms)
{
    if (ms >= 10000)
        snprintf(buf, size, "%.1f s", ms / 1000);
    else
        snprintf(buf, size, "%.1f ms", ms);
}

static void print_header(const char *custom_id, const json_t *state, const ifq_trace_t *t)
{
    const char *st = json_string_value(json_object_get(state, "state"));
    const char *model = json_string_value(json_object_get(state, "model"));
    const char *dep = json_string_value(json_object_get(state, "deployment"));
    const char *err = json_string_value(json_object_get(state, "error_code"));
    printf("request %s  state %s", custom_id, st ? st : "?");
    if (model)
        printf("  model %s%s%s", model, dep ? " -> " : "", dep ? dep : "");
    if (err)
        printf("  error %s", err);
    printf("\ntrace %s", json_string_value(json_object_get(state, "trace_id")));
    int64_t rcv = json_integer_value(json_object_get(state, "received_ms"));
    char key[32];
    snprintf(key, sizeof(key), "%s_ms", st ? st : "");
    int64_t fin = json_integer_value(json_object_get(state, key));
    if (rcv > 0) {
        time_t secs = (time_t)(rcv / 1000);
        struct tm tm;
        char when[32];
        gmtime_r(&secs, &tm);
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
        printf("  received %s.%03d UTC", when, (int)(rcv % 1000));
        if (fin >= rcv && ifq_state_rank(st ? st : "") == 4)
            printf(", %s after %lld ms", st, (long long)(fin - rcv));
    }
    size_t nserv = 0;
    for (size_t i = 0; i < t->n; i++) {
        size_t k = 0;
        while (k < i && strcmp(t->spans[k].service, t->spans[i].service) != 0)
            k++;
        nserv += k == i;
    }
    printf("\n%zu span(s) from %zu service(s)", t->n, nserv);
    if (t->malformed)
        printf(", %zu malformed message(s)/span(s) skipped", t->malformed);
    if (t->truncated)
        printf(", truncated at %d spans", IFQ_TRACE_MAX_SPANS);
    printf("\n\n");
}

static void print_waterfall(const ifq_trace_t *t, int width)
{
    int64_t t0 = t->spans[0].start_ns, t1 = t->spans[0].end_ns;
    for (size_t i = 0; i < t->n; i++) {
        if (t->spans[i].start_ns < t0)
            t0 = t->spans[i].start_ns;
        if (t->spans[i].end_ns > t1)
            t1 = t->spans[i].end_ns;
    }
    double total = (double)(t1 - t0);
    if (total <= 0)
        total = 1;
    const int name_w = 34, serv_w = 16, num_w = 10;
    int bar_w = width - name_w - serv_w - 2 * num_w - 6;
    if (bar_w < 10)
        bar_w = 10;
    const char *full = utf8_locale() ? "\xe2\x96\x88" : "#";
    printf("%-*s %-*s %*s %*s  TIMELINE (%.1f ms)\n", name_w, "STAGE", serv_w, "SERVICE", num_w,
           "START", num_w, "DURATION", total / 1e6);
    for (size_t i = 0; i < t->n; i++) {
        const ifq_span_t *s = &t->spans[i];
        int indent = s->depth * 2 < 16 ? s->depth * 2 : 16;
        char start[24], dur[24], attrs[1024];
        fmt_ms(start, sizeof(start), (double)(s->start_ns - t0) / 1e6);
        fmt_ms(dur, sizeof(dur), (double)(s->end_ns - s->start_ns) / 1e6);
        int from = (int)((double)(s->start_ns - t0) / total * bar_w);
        int len = (int)((double)(s->end_ns - s->start_ns) / total * bar_w + 0.5);
        if (len < 1)
            len = 1;
        if (from >= bar_w)
            from = bar_w - 1;
        if (from + len > bar_w)
            len = bar_w - from;
        printf("%*s%-*.*s %-*.*s %*s %*s  |", indent, "", name_w - indent, name_w - indent, s->name,
               serv_w, serv_w, s->service, num_w, start, num_w, dur);
        for (int c = 0; c < bar_w; c++)
            fputs(c >= from && c < from + len ? (s->status_code == 2 ? "x" : full) : " ", stdout);
        puts("|");
        key_attributes(s, attrs, sizeof(attrs));
        if (attrs[0])
            printf("%*s%s\n", indent + 4, "", attrs);
    }
}

int ifq_cli_trace(ifq_config_t *cfg, int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                         {"redis", required_argument, NULL, 'r'},
                                         {"bootstrap", required_argument, NULL, 'b'},
                                         {"wait", required_argument, NULL, 'w'},
                                         {"width", required_argument, NULL, 'W'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int as_json = 0, width = 0;
    int64_t wait_s = 0;
    const char *redis = cfg->redis_url, *bootstrap = cfg->bootstrap;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int64_t n = 0;
        if (c == 'j') {
            as_json = 1;
        } else if (c == 'r') {
            redis = optarg;
        } else if (c == 'b') {
            bootstrap = optarg;
        } else if ((c == 'w' || c == 'W') && ifq_parse_i64(optarg, &n) == IFQ_OK && n >= 0 &&
                   n <= 3600) {
            if (c == 'w')
                wait_s = n;
            else
                width = (int)n;
        } else {
            trace_usage(c == 'h' ? stdout : stderr);
            return c == 'h' ? 0 : 2;
        }
    }
    if (optind != argc - 1 || !argv[optind][0] || strlen(argv[optind]) > IFQ_MAX_CUSTOM_ID) {
        trace_usage(stderr);
        return 2;
    }
    const char *custom_id = argv[optind];

    char errstr[512];
    ifq_state_t *st =
        ifq_state_connect(redis, cfg->prefix, cfg->state_ttl_s, errstr, sizeof(errstr));
    if (!st) {
        fprintf(stderr, "inferq: %s\n", errstr);
        return CLI_INFRA;
    }
    int err = 0;
    json_t *state = ifq_state_get(st, custom_id, &err);
    ifq_state_destroy(st);
    if (!state) {
        fprintf(stderr, "inferq: %s: %s\n", custom_id,
                err == IFQ_ERR_NOTFOUND ? "no such request (or its state expired)" : "redis error");
        return err == IFQ_ERR_NOTFOUND ? CLI_FAILED : CLI_INFRA;
    }
    const char *trace_id = json_string_value(json_object_get(state, "trace_id"));
    if (!trace_id || !ifq_trace_id_valid(trace_id)) {
        fprintf(stderr, "inferq: %s: the request has no trace id\n", custom_id);
        json_decref(state);
        return CLI_FAILED;
    }

    ifq_config_t kcfg = *cfg; /* the same Kafka settings, maybe another bootstrap */
    kcfg.bootstrap = bootstrap;
    int64_t since = json_integer_value(json_object_get(state, "received_ms"));
    ifq_trace_reader_t *r =
        ifq_trace_reader_new(&kcfg, cfg->topic_traces, trace_id, since, TRACE_READ_TIMEOUT_MS, &err,
                             errstr, sizeof(errstr));
    if (!r) {
        fprintf(stderr, "inferq: %s\n", errstr);
        json_decref(state);
        return CLI_INFRA;
    }
    if (ifq_trace_reader_read(r, TRACE_READ_TIMEOUT_MS) != IFQ_OK)
        fprintf(stderr, "inferq: %s: not read to the end in %d s; showing what was read\n",
                cfg->topic_traces, TRACE_READ_TIMEOUT_MS / 1000);
    /* --wait: spans are written when each hop finishes, so keep reading
     * until the tree has no missing parent and nothing new came for a
     * second, or the time is up. */
    ifq_trace_t *t = ifq_trace_reader_trace(r);
    int64_t deadline = ifq_mono_ms() + wait_s * 1000;
    while (ifq_mono_ms() < deadline) {
        int64_t left = deadline - ifq_mono_ms();
        size_t added =
            ifq_trace_reader_follow(r, (int)(left < TRACE_QUIET_MS ? left : TRACE_QUIET_MS));
        if (added == 0 && tree_complete(t))
            break;
    }
    ifq_trace_order(t);
    int rc = t->n ? CLI_OK : CLI_FAILED;
    if (as_json) {
        json_t *out = ifq_trace_to_json(t, trace_id);
        json_object_set_new(out, "custom_id", json_string(custom_id));
        json_object_set(out, "state", state);
        char *s = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        puts(s);
        free(s);
        json_decref(out);
    } else {
        print_header(custom_id, state, t);
        if (t->n)
            print_waterfall(t, term_width(width));
        else
            printf("no spans found in %s (read %zu message(s))%s\n", cfg->topic_traces, t->messages,
                   wait_s ? "" : "; try --wait SECONDS");
    }
    ifq_trace_reader_destroy(r);
    json_decref(state);
    return rc;
}
