/*
 * tail_cmd.c - `inferq tail [TOPIC]`: follows a reply topic and prints one
 * line per result (custom_id, status, model -> deployment, tokens, latency,
 * error code; never the answer text) or, with --raw, the records as JSONL.
 * The topic is read without a consumer group, from its end (or beginning).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"

static void tail_usage(FILE *f)
{
    fputs("usage: inferq tail [TOPIC] [--from-beginning] [--raw|--json] [--follow|--no-follow]\n"
          "                   [--filter-status S] [--max N]\n"
          "\n"
          "Follows a reply topic (default <prefix>.replies) and prints each result:\n"
          "custom_id, status, model -> deployment, tokens in/out, latency and error code.\n"
          "  -b, --from-beginning   start at the oldest retained record, not at the end\n"
          "      --raw, --json      print each record as it is (JSONL, includes answers)\n"
          "  -f, --follow           keep waiting for new results (default)\n"
          "      --no-follow        stop at the end of the topic as it was at start\n"
          "  -s, --filter-status S  only results whose status is S (succeeded, failed,\n"
          "                         rejected, expired); repeat or comma-separate for several\n"
          "  -n, --max N            stop after printing N results\n"
          "Exit: 0 done, 3 Kafka unreachable or no such topic, 130 interrupted.\n",
          f);
}

typedef struct {
    int raw, follow;
    long max;
    char status[256]; /* ",s1,s2," or "" */
} tail_opts_t;

static int status_wanted(const tail_opts_t *o, const char *st)
{
    if (!o->status[0])
        return 1;
    if (!st)
        return 0;
    char pat[80];
    snprintf(pat, sizeof(pat), ",%s,", st);
    return strstr(o->status, pat) != NULL;
}

static void print_pretty(const json_t *res)
{
    const json_t *ext = json_object_get(res, "inferq");
    const char *cid = json_string_value(json_object_get(res, "custom_id"));
    const char *st = json_string_value(json_object_get(ext, "status"));
    const char *model = json_string_value(json_object_get(ext, "model_requested"));
    const char *dep = json_string_value(json_object_get(ext, "deployment"));
    const json_t *usage = json_object_get(ext, "usage");
    const json_t *err = json_object_get(res, "error");
    const char *code = json_string_value(json_object_get(err, "code"));
    const json_t *total = json_object_get(json_object_get(ext, "timings_ms"), "total");
    char route[160], tok[48], lat[32];
    snprintf(route, sizeof(route), "%s -> %s", model ? model : "?", dep ? dep : "-");
    if (json_is_integer(json_object_get(usage, "prompt_tokens")))
        snprintf(tok, sizeof(tok), "%lld/%lld",
                 (long long)json_integer_value(json_object_get(usage, "prompt_tokens")),
                 (long long)json_integer_value(json_object_get(usage, "completion_tokens")));
    else
        snprintf(tok, sizeof(tok), "-");
    if (json_is_number(total))
        snprintf(lat, sizeof(lat), "%.0fms", json_number_value(total));
    else
        snprintf(lat, sizeof(lat), "-");
    printf("%-32s %-9s %-36s %11s %8s %s\n", cid ? cid : "?", st ? st : "?", route, tok, lat,
           code ? code : "-");
}

static int parse_tail_opts(tail_opts_t *o, int argc, char **argv, const char **topic)
{
    enum { O_RAW = 256, O_NOFOLLOW };
    static const struct option opts[] = {{"from-beginning", no_argument, NULL, 'b'},
                                         {"raw", no_argument, NULL, O_RAW},
                                         {"json", no_argument, NULL, O_RAW},
                                         {"follow", no_argument, NULL, 'f'},
                                         {"no-follow", no_argument, NULL, O_NOFOLLOW},
                                         {"filter-status", required_argument, NULL, 's'},
                                         {"max", required_argument, NULL, 'n'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c, from_beginning = 0;
    size_t sl = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "bfs:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            from_beginning = 1;
            break;
        case O_RAW:
            o->raw = 1;
            break;
        case 'f':
            o->follow = 1;
            break;
        case O_NOFOLLOW:
            o->follow = 0;
            break;
        case 's':
            if (sl + strlen(optarg) + 3 >= sizeof(o->status))
                cli_fail(CLI_USAGE, "--filter-status: too long");
            sl += (size_t)snprintf(o->status + sl, sizeof(o->status) - sl, "%s%s,", sl ? "" : ",",
                                   optarg);
            break;
        case 'n':
            if (cli_parse_int(optarg, 1, 1L << 40, &o->max))
                cli_fail(CLI_USAGE, "--max: expected a positive number");
            break;
        case 'h':
            tail_usage(stdout);
            return -1;
        default:
            tail_usage(stderr);
            cli_fail(CLI_USAGE, "tail: unknown option or missing value: %s", argv[optind - 1]);
        }
    }
    if (optind < argc - 1) {
        tail_usage(stderr);
        cli_fail(CLI_USAGE, "tail: at most one topic");
    }
    if (optind == argc - 1)
        *topic = argv[optind];
    return from_beginning;
}

int cli_tail(ifq_config_t *cfg, int argc, char **argv)
{
    tail_opts_t o = {.follow = 1};
    const char *topic = NULL;
    int from_beginning = parse_tail_opts(&o, argc, argv, &topic);
    if (from_beginning < 0)
        return CLI_OK;
    if (!topic)
        topic = cfg->topic_replies;
    /* commas in a filter value are separators: ",a,b," matches both */
    for (char *p = o.status; *p; p++)
        if (*p == ' ')
            *p = ',';
    setvbuf(stdout, NULL, _IOLBF, 0);
    cli_client_t c = {.cfg = cfg};
    int64_t *hi = NULL;
    int np = 0;
    int rc = cli_client_open(&c, topic, 0, from_beginning, &hi, &np);
    if (rc) {
        cli_client_close(&c);
        return rc;
    }
    /* --no-follow: done when every partition reached its start high mark */
    int64_t *next = calloc((size_t)np, sizeof(*next));
    for (int i = 0; i < np; i++)
        next[i] = from_beginning ? 0 : hi[i];
    if (!o.raw && isatty(1))
        printf("%-32s %-9s %-36s %11s %8s %s\n", "CUSTOM_ID", "STATUS", "MODEL -> DEPLOYMENT",
               "TOKENS", "LATENCY", "ERROR");
    long printed = 0;
    for (;;) {
        if (cli_interrupted) {
            rc = CLI_INTERRUPTED;
            break;
        }
        if (o.max && printed >= o.max)
            break;
        if (!o.follow) {
            int at_end = 1;
            for (int i = 0; i < np; i++)
                if (next[i] < hi[i])
                    at_end = 0;
            if (at_end)
                break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c.listener, 200);
        if (!m)
            continue;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                fprintf(stderr, "inferq: %s\n", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->partition >= 0 && m->partition < np)
            next[m->partition] = m->offset + 1;
        json_t *res = m->len ? json_loadb(m->payload, m->len, 0, NULL) : NULL;
        const char *st =
            json_string_value(json_object_get(json_object_get(res, "inferq"), "status"));
        if (status_wanted(&o, st)) {
            if (o.raw)
                printf("%.*s\n", (int)m->len, (const char *)m->payload);
            else if (json_is_object(res))
                print_pretty(res);
            else
                printf("(not a JSON result: %zu bytes at %s[%d]@%lld)\n", m->len, topic,
                       (int)m->partition, (long long)m->offset);
            printed++;
        }
        json_decref(res);
        rd_kafka_message_destroy(m);
    }
    free(next);
    free(hi);
    cli_client_close(&c);
    return rc;
}
