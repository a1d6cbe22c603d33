/*
 * usage_cmd.c - `inferq usage`: requests, tokens and cost per team and model
 * (or per deployment) from the Redis counters the workers keep:
 *
 *   <prefix>:usage:<YYYY-MM-DD>:team:<team>:model:<model>   (lib/limits.c)
 *   <prefix>:usage:<YYYY-MM-DD>:deployment:<name>           (workers/worker.c)
 *
 * each a hash of requests, input_tokens, output_tokens and cost_usd. Days are
 * UTC days, so --since selects whole days: every day that overlaps the
 * window from the given start until now.
 *
 * The keys are built from the configuration's teams, aliases and deployments
 * (plus "auto") and read with one pipelined HGETALL each, so the cost does
 * not depend on how many other keys Redis holds; --scan finds keys of teams
 * or models no longer configured with SCAN instead (a walk over the whole
 * keyspace).
 */
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "common.h"
#include "limits.h"
#include "redis_url.h"

#define MAX_DAYS 400

static void usage_usage(FILE *f)
{
    fputs("usage: inferq usage [--team T] [--model M] [--since 24h|7d|YYYY-MM-DD]\n"
          "                    [--by team|deployment] [--scan] [--json]\n"
          "\n"
          "Requests, tokens and cost per team and model from the workers' Redis counters,\n"
          "as a table with totals. Counters are kept per UTC day: --since selects every\n"
          "day overlapping the window (default: today).\n"
          "  -t, --team T     only team T\n"
          "  -m, --model M    only the model (alias or deployment name as requested) M;\n"
          "                   with --by deployment, only deployment M\n"
          "  -s, --since W    Nh (hours), Nd (days) or a date YYYY-MM-DD (UTC)\n"
          "      --by K       team (rows per team and model, default) or deployment\n"
          "      --scan       find the keys with SCAN (also teams and models no longer in\n"
          "                   the configuration; walks the whole Redis keyspace)\n"
          "      --json       JSON on stdout\n"
          "Exit: 0 rows printed, 1 nothing recorded for the selection, 2 usage error,\n"
          "3 Redis unreachable.\n",
          f);
}

typedef struct {
    char *team, *model; /* model: the requested model, or the deployment */
    long long requests, in_tok, out_tok;
    double cost;
} row_t;

typedef struct {
    row_t *v;
    size_t n, cap;
} rows_t;

static row_t *row_get(rows_t *r, const char *team, const char *model)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->v[i].team, team) == 0 && strcmp(r->v[i].model, model) == 0)
            return &r->v[i];
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->v = realloc(r->v, r->cap * sizeof(*r->v));
        if (!r->v)
            cli_fail(CLI_INFRA, "out of memory");
    }
    row_t *x = &r->v[r->n++];
    memset(x, 0, sizeof(*x));
    x->team = strdup(team);
    x->model = strdup(model);
    return x;
}

static int row_cmp(const void *a, const void *b)
{
    const row_t *x = a, *y = b;
    int c = strcmp(x->team, y->team);
    return c ? c : strcmp(x->model, y->model);
}

/* --since: the first UTC day to include, as epoch seconds. */
static time_t parse_since(const char *s, time_t now)
{
    size_t n = strlen(s);
    long v;
    char num[32];
    if (n >= 2 && n < sizeof(num) && (s[n - 1] == 'h' || s[n - 1] == 'd')) {
        memcpy(num, s, n - 1);
        num[n - 1] = '\0';
        if (cli_parse_int(num, 0, s[n - 1] == 'h' ? 24L * MAX_DAYS : MAX_DAYS, &v))
            cli_fail(CLI_USAGE, "--since: expected Nh, Nd or YYYY-MM-DD, not '%s'", s);
        return now - v * (s[n - 1] == 'h' ? 3600 : 86400);
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int y, mo, d, used = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &used) != 3 || s[used] || mo < 1 || mo > 12 ||
        d < 1 || d > 31 || y < 1970)
        cli_fail(CLI_USAGE, "--since: expected Nh, Nd or YYYY-MM-DD, not '%s'", s);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    time_t t = timegm(&tm);
    if (t > now)
        cli_fail(CLI_USAGE, "--since: %s is in the future", s);
    if ((now - t) / 86400 > MAX_DAYS)
        cli_fail(CLI_USAGE, "--since: at most %d days back", MAX_DAYS);
    return t;
}

static void add_hash(row_t *r, const redisReply *h)
{
    if (!h || h->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const char *k = h->element[i]->str, *v = h->element[i + 1]->str;
        if (!k || !v)
            continue;
        if (strcmp(k, "requests") == 0)
            r->requests += strtoll(v, NULL, 10);
        else if (strcmp(k, "input_tokens") == 0)
            r->in_tok += strtoll(v, NULL, 10);
        else if (strcmp(k, "output_tokens") == 0)
            r->out_tok += strtoll(v, NULL, 10);
        else if (strcmp(k, "cost_usd") == 0)
            r->cost += strtod(v, NULL);
    }
}

/* --scan: reads every matching key of one day into rows. Returns 0 or
 * CLI_INFRA. */
static int read_day_scan(redisContext *rc, const char *prefix, const char *day, int by_dep,
                         const char *team, const char *model, rows_t *rows)
{
    char pat[512], cursor[32] = "0";
    snprintf(pat, sizeof(pat), "%s:usage:%s:%s:*", prefix, day, by_dep ? "deployment" : "team");
    size_t base = strlen(prefix) + strlen(":usage:") + strlen(day) + 1;
    do {
        redisReply *r = redisCommand(rc, "SCAN %s MATCH %s COUNT 1000", cursor, pat);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            fprintf(stderr, "inferq: redis SCAN: %s\n", r && r->str ? r->str : rc->errstr);
            freeReplyObject(r);
            return CLI_INFRA;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        const redisReply *keys = r->element[1];
        /* which keys count, and as which row */
        row_t **dst = calloc(keys->elements + 1, sizeof(*dst));
        size_t sent = 0;
        for (size_t i = 0; i < keys->elements; i++) {
            const char *k = keys->element[i]->str;
            if (!k || strlen(k) <= base)
                continue;
            const char *rest = k + base; /* "team:T:model:M" or "deployment:D" */
            char t[256], m[512];
            if (by_dep) {
                snprintf(m, sizeof(m), "%s", rest + strlen("deployment:"));
                snprintf(t, sizeof(t), "%s", "*");
            } else {
                const char *mm = strstr(rest, ":model:");
                if (!mm)
                    continue; /* the team total: the rows add up to it */
                snprintf(t, sizeof(t), "%.*s", (int)(mm - rest - 5), rest + 5);
                snprintf(m, sizeof(m), "%s", mm + 7);
            }
            if ((team && !by_dep && strcmp(team, t) != 0) || (model && strcmp(model, m) != 0))
                continue;
            dst[i] = row_get(rows, t, m);
            redisAppendCommand(rc, "HGETALL %s", k);
            sent++;
        }
        for (size_t i = 0; i < keys->elements && sent; i++) {
            if (!dst[i])
                continue;
            redisReply *h = NULL;
            if (redisGetReply(rc, (void **)&h) != REDIS_OK) {
                fprintf(stderr, "inferq: redis: %s\n", rc->errstr);
                free(dst);
                freeReplyObject(r);
                return CLI_INFRA;
            }
            add_hash(dst[i], h);
            freeReplyObject(h);
            sent--;
        }
        free(dst);
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

/* One candidate key and the row it adds to. */
typedef struct {
    char key[768];
    const char *team, *model;
} cand_t;

/* Reads the keys of the configured teams x models (or deployments) of one
 * day, pipelined. Returns 0 or CLI_INFRA. */
static int read_day_direct(redisContext *rc, const ifq_config_t *cfg, const char *day, int by_dep,
                           const char *team, const char *model, rows_t *rows)
{
    size_t nm = model ? 1 : cfg->n_deployments + (by_dep ? 0 : cfg->n_aliases + 1);
    size_t nt = by_dep ? 1 : team ? 1 : cfg->n_teams;
    const char **models = calloc(nm + 1, sizeof(*models));
    size_t k = 0;
    if (model) {
        models[k++] = model;
    } else {
        for (size_t i = 0; i < cfg->n_deployments; i++)
            models[k++] = cfg->deployments[i].name;
        for (size_t i = 0; !by_dep && i < cfg->n_aliases; i++)
            models[k++] = cfg->aliases[i].name;
        if (!by_dep)
            models[k++] = "auto";
    }
    cand_t *c = calloc(nt * nm + 1, sizeof(*c));
    size_t n = 0;
    for (size_t t = 0; t < nt; t++) {
        const char *tn = by_dep ? "*" : team ? team : cfg->teams[t].name;
        for (size_t m = 0; m < nm; m++) {
            if (by_dep)
                ifq_usage_key(c[n].key, sizeof(c[n].key), cfg->prefix, day, "deployment", models[m],
                              NULL);
            else
                ifq_usage_key(c[n].key, sizeof(c[n].key), cfg->prefix, day, "team", tn, models[m]);
            c[n].team = tn;
            c[n].model = models[m];
            redisAppendCommand(rc, "HGETALL %s", c[n].key);
            n++;
        }
    }
    int err = 0;
    for (size_t i = 0; i < n; i++) {
        redisReply *h = NULL;
        if (redisGetReply(rc, (void **)&h) != REDIS_OK) {
            fprintf(stderr, "inferq: redis: %s\n", rc->errstr);
            err = CLI_INFRA;
            break;
        }
        if (h && h->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "inferq: redis HGETALL: %s\n", h->str);
            err = CLI_INFRA;
        } else if (h && h->type == REDIS_REPLY_ARRAY && h->elements > 0) {
            add_hash(row_get(rows, c[i].team, c[i].model), h);
        }
        freeReplyObject(h);
    }
    free(c);
    free(models);
    return err;
}

static void print_table(const rows_t *rows, const row_t *tot, int by_dep)
{
    const char *h1 = by_dep ? "DEPLOYMENT" : "TEAM", *h2 = by_dep ? "" : "MODEL";
    int w1 = (int)strlen(h1), w2 = (int)strlen(h2);
    for (size_t i = 0; i < rows->n; i++) {
        const char *a = by_dep ? rows->v[i].model : rows->v[i].team;
        if ((int)strlen(a) > w1)
            w1 = (int)strlen(a);
        if (!by_dep && (int)strlen(rows->v[i].model) > w2)
            w2 = (int)strlen(rows->v[i].model);
    }
    if (w1 < 5)
        w1 = 5; /* TOTAL */
    if (by_dep)
        printf("%-*s %10s %14s %14s %14s\n", w1, h1, "REQUESTS", "INPUT_TOKENS", "OUTPUT_TOKENS",
               "COST_USD");
    else
        printf("%-*s %-*s %10s %14s %14s %14s\n", w1, h1, w2, h2, "REQUESTS", "INPUT_TOKENS",
               "OUTPUT_TOKENS", "COST_USD");
    for (size_t i = 0; i <= rows->n; i++) {
        const row_t *r = i < rows->n ? &rows->v[i] : tot;
        const char *a = i < rows->n ? (by_dep ? r->model : r->team) : "TOTAL";
        if (by_dep)
            printf("%-*s %10lld %14lld %14lld %14.6f\n", w1, a, r->requests, r->in_tok, r->out_tok,
                   r->cost);
        else
            printf("%-*s %-*s %10lld %14lld %14lld %14.6f\n", w1, a, w2,
                   i < rows->n ? r->model : "", r->requests, r->in_tok, r->out_tok, r->cost);
    }
}

static json_t *row_json(const row_t *r, int by_dep, int total)
{
    json_t *j = json_object();
    if (!total) {
        if (by_dep) {
            json_object_set_new(j, "deployment", json_string(r->model));
        } else {
            json_object_set_new(j, "team", json_string(r->team));
            json_object_set_new(j, "model", json_string(r->model));
        }
    }
    json_object_set_new(j, "requests", json_integer(r->requests));
    json_object_set_new(j, "input_tokens", json_integer(r->in_tok));
    json_object_set_new(j, "output_tokens", json_integer(r->out_tok));
    json_object_set_new(j, "cost_usd", json_real(r->cost));
    return j;
}

int cli_usage(ifq_config_t *cfg, int argc, char **argv)
{
    enum { O_BY = 256, O_JSON, O_SCAN };
    static const struct option opts[] = {
        {"team", required_argument, NULL, 't'},  {"model", required_argument, NULL, 'm'},
        {"since", required_argument, NULL, 's'}, {"by", required_argument, NULL, O_BY},
        {"json", no_argument, NULL, O_JSON},     {"scan", no_argument, NULL, O_SCAN},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0}};
    const char *team = NULL, *model = NULL, *since = NULL;
    int by_dep = 0, as_json = 0, scan = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "t:m:s:h", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            team = optarg;
            break;
        case 'm':
            model = optarg;
            break;
        case 's':
            since = optarg;
            break;
        case O_BY:
            if (strcmp(optarg, "deployment") == 0)
                by_dep = 1;
            else if (strcmp(optarg, "team") != 0)
                cli_fail(CLI_USAGE, "--by: expected team or deployment");
            break;
        case O_JSON:
            as_json = 1;
            break;
        case O_SCAN:
            scan = 1;
            break;
        case 'h':
            usage_usage(stdout);
            return CLI_OK;
        default:
            usage_usage(stderr);
            cli_fail(CLI_USAGE, "usage: unknown option or missing value: %s", argv[optind - 1]);
        }
    }
    if (optind != argc) {
        usage_usage(stderr);
        return CLI_USAGE;
    }
    if (by_dep && team)
        cli_fail(CLI_USAGE, "--team does not apply to --by deployment (deployments are shared)");
    time_t now = time(NULL);
    time_t from = since ? parse_since(since, now) : now;
    ifq_redis_url_t u;
    char errstr[512];
    if (ifq_redis_url_parse(cfg->redis_url, &u, errstr, sizeof(errstr)) != IFQ_OK)
        cli_fail(CLI_USAGE, "%s", errstr);
    redisContext *rc = ifq_redis_url_connect(&u, 5000, errstr, sizeof(errstr));
    if (!rc) {
        fprintf(stderr, "inferq: redis: %s\n", errstr);
        return CLI_INFRA;
    }
    rows_t rows = {0};
    json_t *days = json_array();
    int err = 0;
    /* from the first day to today, UTC */
    time_t d0 = from - from % 86400;
    for (time_t t = d0; t <= now && !err; t += 86400) {
        struct tm tm;
        char day[16];
        gmtime_r(&t, &tm);
        strftime(day, sizeof(day), "%Y-%m-%d", &tm);
        json_array_append_new(days, json_string(day));
        err = scan ? read_day_scan(rc, cfg->prefix, day, by_dep, team, model, &rows)
                   : read_day_direct(rc, cfg, day, by_dep, team, model, &rows);
    }
    redisFree(rc);
    row_t tot = {0};
    if (!err) {
        qsort(rows.v, rows.n, sizeof(*rows.v), row_cmp);
        for (size_t i = 0; i < rows.n; i++) {
            tot.requests += rows.v[i].requests;
            tot.in_tok += rows.v[i].in_tok;
            tot.out_tok += rows.v[i].out_tok;
            tot.cost += rows.v[i].cost;
        }
        if (as_json) {
            json_t *arr = json_array();
            for (size_t i = 0; i < rows.n; i++)
                json_array_append_new(arr, row_json(&rows.v[i], by_dep, 0));
            json_t *j = json_pack("{so so so}", "days", json_incref(days), "rows", arr, "total",
                                  row_json(&tot, by_dep, 1));
            char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            puts(s);
            free(s);
            json_decref(j);
        } else if (rows.n) {
            print_table(&rows, &tot, by_dep);
        } else {
            fprintf(stderr, "inferq: no usage recorded for this selection (%s .. today, UTC)\n",
                    json_string_value(json_array_get(days, 0)));
        }
    }
    json_decref(days);
    for (size_t i = 0; i < rows.n; i++) {
        free(rows.v[i].team);
        free(rows.v[i].model);
    }
    free(rows.v);
    return err ? err : rows.n ? CLI_OK : CLI_FAILED;
}
