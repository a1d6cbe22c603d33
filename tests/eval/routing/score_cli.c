/*
 * score_cli.c - ifq-complexity-score: runs the cost router's complexity
 * scorer over request lines (JSON Lines on stdin) and prints one JSON line
 * per request with the score, the decision and the features. The helper of
 * tests/eval/routing/evaluate.py and fit.py.
 *
 *   ifq-complexity-score [--config FILE] [--inputs] [--bench N] < requests.jsonl
 *
 * --config FILE  a JSON object with the router section (threshold,
 *                bias, weights, priority_bias, honor_tier_hint)
 * --inputs       also print the scaled model inputs as "x": [...]
 * --bench N      score every line N times and print CPU microseconds per
 *                request on stderr instead of the results
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "complexity.h"

#define MAX_LINES 100000

/* Process CPU time in microseconds: the benchmark should not count the time
 * other processes on a shared machine take. */
static int64_t cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int usage(void)
{
    fprintf(stderr, "usage: ifq-complexity-score [--config FILE] [--inputs] [--bench N] "
                    "< requests.jsonl\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *cfg_path = NULL;
    int inputs = 0;
    int64_t bench = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            cfg_path = argv[++i];
        else if (strcmp(argv[i], "--inputs") == 0)
            inputs = 1;
        else if (strcmp(argv[i], "--bench") == 0 && i + 1 < argc) {
            if (ifq_parse_i64(argv[++i], &bench) != IFQ_OK || bench < 1 || bench > 1000000)
                return usage();
        } else
            return usage();
    }

    char err[512] = "";
    ifq_complexity_cfg_t cfg;
    json_t *section = NULL;
    if (cfg_path) {
        json_error_t jerr;
        section = json_load_file(cfg_path, 0, &jerr);
        if (!section) {
            fprintf(stderr, "%s: line %d: %s\n", cfg_path, jerr.line, jerr.text);
            return 1;
        }
    }
    if (ifq_complexity_cfg_parse(section, &cfg, err, sizeof(err)) != IFQ_OK) {
        fprintf(stderr, "%s: %s\n", cfg_path ? cfg_path : "defaults", err);
        json_decref(section);
        return 1;
    }
    json_decref(section);

    json_t **reqs = calloc(MAX_LINES, sizeof(*reqs));
    size_t n = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int rc = 0;
    while (reqs && (got = getline(&line, &cap, stdin)) > 0) {
        if (got == 1 && line[0] == '\n')
            continue;
        json_error_t jerr;
        json_t *req = json_loadb(line, (size_t)got, 0, &jerr);
        if (!req) {
            fprintf(stderr, "line %zu: %s\n", n + 1, jerr.text);
            rc = 1;
            break;
        }
        if (n == MAX_LINES) {
            json_decref(req);
            fprintf(stderr, "more than %d lines\n", MAX_LINES);
            rc = 1;
            break;
        }
        reqs[n++] = req;
    }
    free(line);

    if (rc == 0 && bench > 0) {
        int64_t t0 = cpu_us();
        for (int64_t r = 0; r < bench; r++) {
            for (size_t i = 0; i < n; i++) {
                ifq_complexity_t out;
                ifq_complexity_score(&cfg, reqs[i], &out);
                json_decref(out.features);
            }
        }
        int64_t t1 = cpu_us();
        ifq_complexity_raw_t raw;
        for (int64_t r = 0; r < bench; r++)
            for (size_t i = 0; i < n; i++)
                ifq_complexity_measure(reqs[i], &raw);
        int64_t t2 = cpu_us();
        double per = n ? (double)(t1 - t0) / (double)(n * (size_t)bench) : 0.0;
        double per_m = n ? (double)(t2 - t1) / (double)(n * (size_t)bench) : 0.0;
        fprintf(stderr,
                "%zu requests x %lld: %.2f us CPU per request scored (features JSON included), "
                "%.2f us measured only\n",
                n, (long long)bench, per, per_m);
    } else if (rc == 0) {
        for (size_t i = 0; i < n; i++) {
            ifq_complexity_t out;
            if (ifq_complexity_score(&cfg, reqs[i], &out) != IFQ_OK) {
                fprintf(stderr, "line %zu: not a request object\n", i + 1);
                rc = 1;
                continue;
            }
            json_t *o = json_object();
            json_object_set(o, "custom_id", json_object_get(reqs[i], "custom_id"));
            json_t *label = json_object_get(reqs[i], "label");
            if (label)
                json_object_set(o, "label", label);
            json_object_set_new(o, "score", json_real(out.score));
            json_object_set_new(o, "large", json_boolean(out.large));
            json_object_set_new(o, "reason", json_string(out.reason));
            json_object_set_new(o, "features", out.features);
            if (inputs) {
                ifq_complexity_raw_t raw;
                ifq_complexity_measure(reqs[i], &raw);
                json_t *x = json_array();
                for (int k = 0; k < IFQ_CX_NFEAT; k++)
                    json_array_append_new(x, json_real(raw.x[k]));
                json_object_set_new(o, "x", x);
            }
            char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
            if (s) {
                puts(s);
                free(s);
            }
            json_decref(o);
        }
    }
    for (size_t i = 0; i < n; i++)
        json_decref(reqs[i]);
    free(reqs);
    return rc;
}
