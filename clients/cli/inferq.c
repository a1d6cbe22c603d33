/*
 * inferq - the command-line client (docs/cli.md). The command table at the
 * end of this file lists every command; exit codes are the same for all of
 * them (cli.h).
 *
 *   inferq [--config F] submit [--model M] [--message TEXT] [...]   one request, waits, prints
 *   inferq [--config F] batch run IN.jsonl -o OUT.jsonl             a batch file (batch_cmd.c)
 *   inferq [--config F] status CUSTOM_ID                            the request's state in Redis
 *   inferq [--config F] tail [TOPIC] / usage                         tail_cmd.c, usage_cmd.c
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
#include "cli.h"
#include "catalog.h"
#include "route.h"
#include "config.h"
#include "envelope.h"
#include "kafka.h"
#include "log.h"
#include "prompt_cmd.h"
#include "trace_cmd.h"
#include "state.h"

#define MAX_LINE (64u * 1024 * 1024)

/* clients/cli/guard_cmd.c */
int ifq_cli_guard(ifq_config_t *cfg, int argc, char **argv);

/* clients/cli/batch_cmd.c, tail_cmd.c, usage_cmd.c */
int cli_batch(ifq_config_t *cfg, int argc, char **argv, int use_avro);
int cli_tail(ifq_config_t *cfg, int argc, char **argv);
int cli_usage(ifq_config_t *cfg, int argc, char **argv);

/* Waits for the result of custom_id on the listener; returns it (caller
 * owns), or NULL on timeout or interruption. */
static json_t *await_result(cli_client_t *c, const char *custom_id, int64_t deadline_mono)
{
    while (!cli_interrupted && ifq_mono_ms() < deadline_mono) {
        rd_kafka_poll(c->producer, 0);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->listener, 100);
        if (!m)
            continue;
        json_t *res = NULL;
        if (!m->err && m->len) {
            res = json_loadb(m->payload, m->len, 0, NULL);
            const char *cid = json_string_value(json_object_get(res, "custom_id"));
            if (!cid || strcmp(cid, custom_id) != 0) {
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
        cli_fail(CLI_USAGE, "%s", errstr);
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
                cli_fail(CLI_USAGE, "stdin larger than %u bytes", MAX_LINE);
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
                cli_fail(CLI_USAGE, "--metadata wants KEY=VALUE");
            *eq = '\0';
            json_object_set_new(metadata, optarg, json_string(eq + 1));
            break;
        }
        default:
            cli_fail(CLI_USAGE, "submit: unknown option (see inferq --help)");
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
                cli_fail(CLI_USAGE, "stdin: not a JSON request line: %s", jerr.text);
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

    cli_client_t c = {.cfg = cfg, .use_avro = use_avro};
    char errstr[256];
    if (use_avro && !(c.avro = ifq_avro_new(errstr, sizeof(errstr))))
        cli_fail(CLI_USAGE, "avro: %s", errstr);
    int rc = cli_client_open(&c, rt ? rt : cfg->topic_replies, 1, 0, NULL, NULL);
    if (!rc)
        rc = cli_produce(&c, cfg->topic_requests, req, cid);
    json_t *res = rc ? NULL : await_result(&c, cid, ifq_mono_ms() + (int64_t)timeout_s * 1000);
    if (rc) {
        /* already reported */
    } else if (!res) {
        fprintf(stderr, "inferq: no result for %s %s\n", cid,
                cli_interrupted ? "(interrupted)" : "in time");
        rc = cli_interrupted ? CLI_INTERRUPTED : CLI_INFRA;
    } else {
        char *s = json_dumps(res, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        puts(s);
        free(s);
        rc = result_failed(res) ? CLI_FAILED : CLI_OK;
        json_decref(res);
    }
    json_decref(req);
    cli_client_close(&c);
    return rc;
}

static int cmd_status(ifq_config_t *cfg, int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[2], "--json") == 0)
        argc = 2; /* the state is always printed as JSON */
    if (argc != 2 || argv[1][0] == '-')
        cli_fail(CLI_USAGE, "usage: inferq status CUSTOM_ID [--json]");
    char errstr[512];
    ifq_state_t *st =
        ifq_state_connect(cfg->redis_url, cfg->prefix, cfg->state_ttl_s, errstr, sizeof(errstr));
    if (!st) {
        fprintf(stderr, "inferq: %s\n", errstr);
        return CLI_INFRA;
    }
    int err = 0;
    json_t *s = ifq_state_get(st, argv[1], &err);
    ifq_state_destroy(st);
    if (!s) {
        fprintf(stderr, "inferq: %s: %s\n", argv[1],
                err == IFQ_ERR_NOTFOUND ? "no such request (or its state expired)" : "redis error");
        return err == IFQ_ERR_NOTFOUND ? CLI_FAILED : CLI_INFRA;
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
            cli_fail(CLI_USAGE, "usage: inferq models [--team T] [--json]");
    }
    if (team && !ifq_config_team(cfg, team))
        cli_fail(CLI_USAGE, "no team '%s' in the configuration", team);
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

/* ---- the command table -------------------------------------------------- */

typedef struct {
    const char *name;
    int (*run)(ifq_config_t *cfg, int argc, char **argv, int use_avro);
    const char *synopsis; /* printed by `inferq --help` and `inferq CMD --help` */
} command_t;

static int run_submit(ifq_config_t *cfg, int argc, char **argv, int use_avro)
{
    return cmd_submit(cfg, argc, argv, use_avro);
}
static int run_batch(ifq_config_t *cfg, int argc, char **argv, int use_avro)
{
    return cli_batch(cfg, argc, argv, use_avro);
}
static int run_status(ifq_config_t *cfg, int argc, char **argv, int use_avro)
{
    (void)use_avro;
    return cmd_status(cfg, argc, argv);
}
static int run_models(ifq_config_t *cfg, int argc, char **argv, int use_avro)
{
    (void)use_avro;
    return cmd_models(cfg, argc, argv);
}
static int run_tail(ifq_config_t *cfg, int argc, char **argv, int use_avro)
{
    (void)use_avro;
    return cli_tail(cfg, argc, argv);
}
static int run_usage(ifq_config_t *cfg, int argc, char **argv, int use_avro)
{
    (void)use_avro;
    return cli_usage(cfg, argc, argv);
}
static int run_prompt(ifq_config_t *cfg, int argc, char **argv, int use_avro)
{
    (void)use_avro;
    return ifq_cli_prompt(cfg, argc, argv);
}
static int run_trace(ifq_config_t *cfg, int argc, char **argv, int use_avro)
{
    (void)use_avro;
    return ifq_cli_trace(cfg, argc, argv);
}
static int run_guard(ifq_config_t *cfg, int argc, char **argv, int use_avro)
{
    (void)use_avro;
    return ifq_cli_guard(cfg, argc, argv);
}

static const command_t commands[] = {
    {"submit", run_submit,
     "submit [--model M] [--message TEXT] [--url /v1/...] [--custom-id ID]\n"
     "         [--reply-to TOPIC] [--priority high|normal|low] [--deadline-ms MS]\n"
     "         [--metadata K=V]... [--max-tokens N] [--timeout S] [--avro]\n"
     "      Sends one request (from the flags, or a JSON request line or plain text on\n"
     "      stdin), waits for its result and prints it as JSON.\n"},
    {"batch", run_batch,
     "batch run IN.jsonl -o OUT.jsonl [--errors ERR.jsonl] [--max-in-flight N]\n"
     "          [--resume] [--timeout S] [--grace S] [--json] ...\n"
     "      Streams an OpenAI batch input file through inferq with bounded memory;\n"
     "      Ctrl-C stops cleanly, --resume continues (inferq batch run --help).\n"},
    {"status", run_status,
     "status CUSTOM_ID [--json]\n"
     "      Prints the request's state from Redis (JSON). Exit 1 when unknown.\n"},
    {"models", run_models,
     "models [--team T] [--json]\n"
     "      Lists the models (aliases and deployments) a team may use, with health.\n"},
    {"usage", run_usage,
     "usage [--team T] [--model M] [--since 24h|7d|YYYY-MM-DD] [--by team|deployment]\n        "
     "[--scan] [--json]\n"
     "      Requests, tokens and cost per team and model from the Redis counters.\n"},
    {"tail", run_tail,
     "tail [TOPIC] [--from-beginning] [--raw] [--follow|--no-follow] [--filter-status S]\n"
     "      Follows a reply topic: one line per result, or raw JSONL.\n"},
    {"prompt", run_prompt,
     "prompt push ID FILE | list [--json] | show ID [--version N|--label L] [--raw]\n"
     "         | label ID LABEL VERSION | render ID [--version N|--label L] [--var K=V]...\n"
     "      Versioned prompt templates in Redis (docs/prompts.md).\n"},
    {"guard", run_guard,
     "guard scan [--policy NAME] [--output] [--jsonl] | guard policies\n"
     "      Runs a guardrail policy on text from stdin and prints the findings and the\n"
     "      transformed text (docs/guardrails.md).\n"},
    {"trace", run_trace,
     "trace CUSTOM_ID [--json] [--wait S] [--width N] [--redis URL] [--bootstrap B]\n"
     "      Draws the request's spans (from the traces topic) as a waterfall.\n"},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
    fputs("usage: inferq [--config FILE] [--avro] COMMAND ...\n\ncommands:\n", f);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %s", commands[i].synopsis);
    fputs("\n"
          "Every command takes --help. Exit codes: 0 ok, 1 some request failed or nothing\n"
          "found, 2 usage or input error, 3 Kafka/Redis unreachable or timed out,\n"
          "130 interrupted (docs/cli.md).\n"
          "The config defaults to $INFERQ_CONFIG, then deploy/local/inferq.yaml;\n"
          "INFERQ_KAFKA_BOOTSTRAP and INFERQ_REDIS_URL override it.\n",
          f);
}

/* `inferq CMD --help` for the commands without their own help text. */
static int wants_help(int argc, char **argv)
{
    return argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
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
            return CLI_OK;
        } else {
            usage(stderr);
            return CLI_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *name = argv[i];
    if (strcmp(name, "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    const command_t *cmd = NULL;
    for (size_t k = 0; k < N_COMMANDS; k++)
        if (strcmp(commands[k].name, name) == 0)
            cmd = &commands[k];
    if (!cmd) {
        fprintf(stderr, "inferq: unknown command '%s'\n", name);
        usage(stderr);
        return CLI_USAGE;
    }
    int sub_argc = argc - i;
    char **sub_argv = argv + i;
    /* help needs no configuration; batch, tail and usage print their own
     * (they return before touching cfg) */
    if (wants_help(sub_argc, sub_argv)) {
        if (cmd->run == run_batch || cmd->run == run_tail || cmd->run == run_usage)
            return cmd->run(NULL, sub_argc, sub_argv, use_avro);
        printf("usage: inferq %s", cmd->synopsis);
        return CLI_OK;
    }
    ifq_log_init("inferq", IFQ_LOG_WARN);
    cli_signals_install();
    ifq_config_t *cfg = load_config(config);
    int rc = cmd->run(cfg, sub_argc, sub_argv, use_avro);
    ifq_config_destroy(cfg);
    return rc;
}
