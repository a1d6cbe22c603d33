/*
 * batch_file - stream an OpenAI batch input file through inferq with a
 * bounded number of requests in flight, writing results as they arrive.
 *
 *   batch_file [-b HOST:PORT] [-p PREFIX] [-a] [-f MAX_IN_FLIGHT] [-t TIMEOUT_MS]
 *              IN.jsonl OUT.jsonl
 *
 * Memory stays bounded by MAX_IN_FLIGHT (default 100) whatever the file size:
 * a line is read only when a slot is free. A line that is not a request is
 * reported and skipped. Exit status: 0 every line answered with success,
 * 1 some error results or bad lines, 3 results missing after TIMEOUT_MS of
 * silence, 2 usage or setup error.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "example_config.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slot_free = PTHREAD_COND_INITIALIZER;
static int in_flight, failed;
static long written;
static FILE *out;

static void on_result(inferq_result_t *res, void *opaque)
{
    pthread_mutex_lock(&lock);
    fprintf(out, "%s\n", inferq_result_json(res));
    written++;
    failed += !inferq_result_ok(res);
    in_flight--;
    pthread_cond_signal(&slot_free);
    pthread_mutex_unlock(&lock);
    inferq_result_free(res);
}

/* Waits until fewer than max requests are in flight; 0 on timeout. */
static int wait_below(int max, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    int ok = 1;
    pthread_mutex_lock(&lock);
    while (in_flight >= max && ok)
        ok = pthread_cond_timedwait(&slot_free, &lock, &deadline) == 0;
    pthread_mutex_unlock(&lock);
    return ok;
}

int main(int argc, char **argv)
{
    inferq_config_t *cfg = example_config_new();
    int max_in_flight = 100, timeout_ms = 120000, opt, r;
    while ((opt = getopt(argc, argv, EXAMPLE_OPTS "f:t:")) != -1) {
        if ((r = example_option(cfg, opt, optarg)) < 0)
            return 2;
        if (r == 1)
            continue;
        if (opt == 'f')
            max_in_flight = (int)strtol(optarg, NULL, 10);
        else if (opt == 't')
            timeout_ms = (int)strtol(optarg, NULL, 10);
        else
            return 2;
    }
    if (optind != argc - 2 || max_in_flight < 1) {
        fprintf(stderr, "usage: batch_file [options] [-f MAX_IN_FLIGHT] IN.jsonl OUT.jsonl\n");
        return 2;
    }
    FILE *in = fopen(argv[optind], "r");
    out = fopen(argv[optind + 1], "w");
    if (!in || !out) {
        fprintf(stderr, "batch_file: %s\n", strerror(errno));
        return 2;
    }
    char err[512];
    inferq_client_t *client = inferq_client_new(cfg, err, sizeof(err));
    inferq_config_destroy(cfg);
    if (!client) {
        fprintf(stderr, "batch_file: %s\n", err);
        return 2;
    }
    inferq_on_result(client, on_result, NULL);

    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0, sent = 0, bad = 0;
    int stalled = 0;
    while (!stalled && (len = getline(&line, &cap, in)) > 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        if (!wait_below(max_in_flight, timeout_ms)) {
            stalled = 1;
            break;
        }
        pthread_mutex_lock(&lock);
        in_flight++;
        pthread_mutex_unlock(&lock);
        if (inferq_submit_json(client, line, (size_t)len, NULL, NULL, err, sizeof(err))) {
            fprintf(stderr, "batch_file: line %ld: %s\n", lineno, err);
            bad++;
            pthread_mutex_lock(&lock);
            in_flight--;
            pthread_mutex_unlock(&lock);
            continue;
        }
        sent++;
    }
    free(line);
    fclose(in);
    if (!stalled)
        stalled = !wait_below(1, timeout_ms);

    pthread_mutex_lock(&lock);
    long got = written;
    int nfail = failed;
    pthread_mutex_unlock(&lock);
    fprintf(stderr, "batch_file: %ld sent, %ld results, %d failed, %ld bad lines\n", sent, got,
            nfail, bad);
    inferq_client_destroy(client, 5000); /* no callback runs after this */
    fclose(out);
    return stalled ? 3 : (nfail || bad) ? 1 : 0;
}
