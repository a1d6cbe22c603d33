/*
 * guard_cmd.c - `inferq guard`: run a guardrail policy locally, before
 * deploying it, and measure the engine.
 *
 *   inferq [--config F] guard scan [--policy NAME] [--output] [--jsonl]
 *       Text on stdin (one text), or with --jsonl one {"text": ...} object
 *       per line (other fields are echoed back). Prints one JSON line per
 *       input: {"findings":[...],"blocked":b,"blocked_by":"...",
 *       "text":"<transformed>","injection_score":x,"elapsed_us":n}.
 *       --output applies the policy's output (model answer) detectors.
 *   inferq guard policies
 *       Lists the policy names.
 *   inferq guard bench [--policy NAME] [--msg-bytes N] [--seconds S] FILE...
 *       Splits each file into messages of about N bytes (default 2048) and
 *       scans them for at least S seconds (default 3); prints MB/s per core
 *       (thread CPU time) per file as JSON.
 *
 * Exit status: 0 ok, 1 a scan or input error, 2 usage, 3 blocked (scan of
 * a single stdin text only).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "guard.h"

int ifq_cli_guard(ifq_config_t *cfg, int argc, char **argv);

#define GUARD_MAX_INPUT ((size_t)64 << 20)

static void guard_usage(FILE *f)
{
    fputs("usage: inferq guard scan [--policy NAME] [--output] [--jsonl]\n"
          "       inferq guard policies\n"
          "       inferq guard bench [--policy NAME] [--output] [--msg-bytes N] [--seconds S] "
          "FILE...\n",
          f);
}

/* Reads a whole stream, at most GUARD_MAX_INPUT bytes. Caller frees. */
static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *b = malloc(cap + 1);
    if (!b)
        return NULL;
    for (;;) {
        if (n == cap) {
            if (cap >= GUARD_MAX_INPUT) {
                free(b);
                return NULL;
            }
            cap *= 2;
            char *nb = realloc(b, cap + 1);
            if (!nb) {
                free(b);
                return NULL;
            }
            b = nb;
        }
        size_t k = fread(b + n, 1, cap - n, f);
        if (k == 0)
            break;
        n += k;
    }
    b[n] = 0;
    *len = n;
    return b;
}

/* Prints one result line; `extra` (may be NULL) is an object whose fields
 * are echoed first. Returns 0, or -1 on an output error. */
static int print_result(json_t *extra, const ifq_guard_verdict_t *v, const char *text, size_t len)
{
    json_t *o = extra ? json_deep_copy(extra) : json_object();
    if (!o)
        return -1;
    json_object_del(o, "text");
    json_object_set(o, "findings", v->findings ? v->findings : json_array());
    json_object_set_new(o, "blocked", json_boolean(v->blocked));
    if (v->blocked)
        json_object_set_new(o, "blocked_by", json_string(v->blocked_by));
    json_object_set_new(o, "modified", json_boolean(v->modified));
    if (v->incomplete)
        json_object_set_new(o, "incomplete", json_true());
    json_t *t = json_stringn(text, len);
    /* invalid UTF-8 from stdin cannot be a JSON string: say so instead */
    json_object_set_new(o, "text", t ? t : json_null());
    if (v->injection_score >= 0)
        json_object_set_new(o, "injection_score",
                            json_real((double)(long)(v->injection_score * 10000 + 0.5) / 10000));
    json_object_set_new(o, "elapsed_us", json_integer(v->elapsed_us));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        return -1;
    int rc = puts(s) < 0 ? -1 : 0;
    free(s);
    return rc;
}

static int scan_one(const ifq_guard_policy_t *p, ifq_guard_dir_t dir, json_t *extra,
                    const char *text, size_t len, int *blocked)
{
    ifq_guard_verdict_t v;
    ifq_guard_verdict_init(&v);
    char *out = NULL;
    size_t out_len = 0;
    int rc = ifq_guard_scan_text(p, dir, text, len, &out, &out_len, &v);
    if (rc) {
        fprintf(stderr, "inferq guard: scan failed: %s\n", ifq_err2str(rc));
        ifq_guard_verdict_clear(&v);
        return 1;
    }
    if (blocked)
        *blocked = v.blocked;
    int prc = out ? print_result(extra, &v, out, out_len) : print_result(extra, &v, text, len);
    free(out);
    ifq_guard_verdict_clear(&v);
    return prc ? 1 : 0;
}

static int cmd_scan(const ifq_guard_policy_t *p, ifq_guard_dir_t dir, int jsonl)
{
    if (!jsonl) {
        size_t len;
        char *text = read_all(stdin, &len);
        if (!text) {
            fprintf(stderr, "inferq guard: cannot read stdin (at most %zu bytes)\n",
                    GUARD_MAX_INPUT);
            return 1;
        }
        int blocked = 0;
        int rc = scan_one(p, dir, NULL, text, len, &blocked);
        free(text);
        return rc ? rc : blocked ? 3 : 0;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int status = 0;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if (n == 0)
            continue;
        json_error_t je;
        json_t *o = json_loadb(line, (size_t)n, 0, &je);
        json_t *t = json_object_get(o, "text");
        if (!json_is_string(t)) {
            printf(
                "{\"line\":%ld,\"error\":\"expected a JSON object with a string \\\"text\\\"\"}\n",
                lineno);
            json_decref(o);
            status = 1;
            continue;
        }
        if (scan_one(p, dir, o, json_string_value(t), json_string_length(t), NULL))
            status = 1;
        json_decref(o);
    }
    free(line);
    return status;
}

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmd_bench(const ifq_guard_policy_t *p, ifq_guard_dir_t dir, size_t msg_bytes,
                     double seconds, int nfiles, char **files)
{
    for (int fi = 0; fi < nfiles; fi++) {
        FILE *f = fopen(files[fi], "rb");
        if (!f) {
            fprintf(stderr, "inferq guard bench: cannot open %s\n", files[fi]);
            return 1;
        }
        size_t len;
        char *buf = read_all(f, &len);
        fclose(f);
        if (!buf || !len) {
            free(buf);
            fprintf(stderr, "inferq guard bench: cannot read %s\n", files[fi]);
            return 1;
        }
        /* message boundaries at whitespace near every msg_bytes */
        size_t nmsg = 0, capm = 1024;
        size_t *starts = malloc(sizeof(size_t) * (capm + 1));
        for (size_t s = 0; starts && s < len;) {
            size_t e = s + msg_bytes < len ? s + msg_bytes : len;
            while (e < len && e < s + msg_bytes + 256 && buf[e] != ' ' && buf[e] != '\n')
                e++;
            if (nmsg == capm) {
                capm *= 2;
                size_t *ns = realloc(starts, sizeof(size_t) * (capm + 1));
                if (!ns) {
                    free(starts);
                    starts = NULL;
                    break;
                }
                starts = ns;
            }
            starts[nmsg++] = s;
            s = e;
        }
        if (!starts) {
            free(buf);
            return 1;
        }
        starts[nmsg] = len;
        double t0 = thread_cpu_s(), el = 0;
        size_t bytes = 0, findings = 0, passes = 0, modified = 0;
        ifq_guard_verdict_t v;
        ifq_guard_verdict_init(&v);
        do {
            for (size_t m = 0; m < nmsg; m++) {
                char *out = NULL;
                size_t ol;
                if (ifq_guard_scan_text(p, dir, buf + starts[m], starts[m + 1] - starts[m], &out,
                                        &ol, &v) == IFQ_OK) {
                    findings += json_array_size(v.findings);
                    modified += v.modified;
                }
                free(out);
                bytes += starts[m + 1] - starts[m];
            }
            passes++;
            el = thread_cpu_s() - t0;
        } while (el < seconds);
        ifq_guard_verdict_clear(&v);
        printf("{\"file\":\"%s\",\"policy\":\"%s\",\"bytes\":%zu,\"messages\":%zu,"
               "\"passes\":%zu,\"cpu_s\":%.3f,\"mb_per_s\":%.1f,\"findings_per_pass\":%zu,"
               "\"modified_per_pass\":%zu}\n",
               files[fi], ifq_guard_policy_name(p), len, nmsg, passes, el, (double)bytes / el / 1e6,
               findings / passes, modified / passes);
        free(starts);
        free(buf);
    }
    return 0;
}

int ifq_cli_guard(ifq_config_t *cfg, int argc, char **argv)
{
    if (argc < 2) {
        guard_usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    const char *policy = NULL;
    int jsonl = 0;
    ifq_guard_dir_t dir = IFQ_GUARD_INPUT;
    long msg_bytes = 2048;
    double seconds = 3;
    static const struct option opts[] = {{"policy", required_argument, NULL, 'p'},
                                         {"jsonl", no_argument, NULL, 'j'},
                                         {"output", no_argument, NULL, 'o'},
                                         {"msg-bytes", required_argument, NULL, 'm'},
                                         {"seconds", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    optind = 1;
    int o;
    while ((o = getopt_long(argc - 1, argv + 1, "p:jom:s:h", opts, NULL)) != -1) {
        switch (o) {
        case 'p':
            policy = optarg;
            break;
        case 'j':
            jsonl = 1;
            break;
        case 'o':
            dir = IFQ_GUARD_OUTPUT;
            break;
        case 'm': {
            int64_t x;
            if (ifq_parse_i64(optarg, &x) || x < 16 || x > (1 << 26)) {
                fprintf(stderr, "inferq guard: --msg-bytes: expected 16..67108864\n");
                return 2;
            }
            msg_bytes = (long)x;
            break;
        }
        case 's': {
            char *end;
            seconds = strtod(optarg, &end);
            if (*end || seconds <= 0 || seconds > 3600) {
                fprintf(stderr, "inferq guard: --seconds: expected a number in (0, 3600]\n");
                return 2;
            }
            break;
        }
        case 'h':
            guard_usage(stdout);
            return 0;
        default:
            guard_usage(stderr);
            return 2;
        }
    }
    int rest = argc - 1 - optind;
    char **rest_argv = argv + 1 + optind;

    char errstr[512];
    ifq_guard_t *g = ifq_guard_from_config(cfg, errstr, sizeof(errstr));
    if (!g) {
        fprintf(stderr, "inferq guard: %s\n", errstr);
        return 1;
    }
    int rc;
    const ifq_guard_policy_t *p = ifq_guard_policy(g, policy);
    if (strcmp(sub, "policies") == 0) {
        for (size_t i = 0; i < ifq_guard_policy_count(g); i++)
            puts(ifq_guard_policy_at(g, i));
        rc = 0;
    } else if (!p) {
        fprintf(stderr, "inferq guard: no policy named '%s'\n", policy);
        rc = 2;
    } else if (strcmp(sub, "scan") == 0 && rest == 0) {
        rc = cmd_scan(p, dir, jsonl);
    } else if (strcmp(sub, "bench") == 0 && rest > 0) {
        rc = cmd_bench(p, dir, (size_t)msg_bytes, seconds, rest, rest_argv);
    } else {
        guard_usage(stderr);
        rc = 2;
    }
    ifq_guard_destroy(g);
    return rc;
}
