/*
 * threads_await - many threads share one client; each submits its own
 * requests and awaits them, in reverse order, checking that every result is
 * the one it asked for.
 *
 *   threads_await [-b HOST:PORT] [-p PREFIX] [-a] [-m MODEL] [-T THREADS]
 *                 [-n PER_THREAD] [-i ID_PREFIX] [-t TIMEOUT_MS]
 *
 * Request k of thread j has custom_id ID_PREFIX-j-k and the message
 * "ID_PREFIX-j-k"; with the echoing fake model the answer must contain it.
 * Prints "ok N wrong M missing K". Exit 0 when every result matched.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "example_config.h"

static inferq_client_t *client;
static const char *model = "chat-default", *prefix = "thr";
static int per_thread = 20, timeout_ms = 60000;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int ok, wrong, missing;

static void *worker(void *arg)
{
    int j = (int)(long)arg, good = 0, bad = 0, lost = 0;
    char cid[256];
    for (int k = 0; k < per_thread; k++) {
        snprintf(cid, sizeof(cid), "%s-%d-%d", prefix, j, k);
        inferq_request_t *req = inferq_request_new(cid);
        inferq_request_set_model(req, model);
        inferq_request_add_message(req, "user", cid);
        if (inferq_submit(client, req, NULL, NULL) != INFERQ_OK)
            lost++;
        inferq_request_destroy(req);
    }
    for (int k = per_thread - 1; k >= 0; k--) {
        snprintf(cid, sizeof(cid), "%s-%d-%d", prefix, j, k);
        inferq_result_t *res = NULL;
        if (inferq_await(client, cid, timeout_ms, &res) != INFERQ_OK) {
            lost++;
            continue;
        }
        const char *text = inferq_result_content(res);
        if (strcmp(inferq_result_custom_id(res), cid) == 0 && inferq_result_ok(res) && text &&
            strstr(text, cid))
            good++;
        else
            bad++;
        inferq_result_free(res);
    }
    pthread_mutex_lock(&lock);
    ok += good;
    wrong += bad;
    missing += lost;
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(int argc, char **argv)
{
    inferq_config_t *cfg = example_config_new();
    int threads = 8, opt, r;
    while ((opt = getopt(argc, argv, EXAMPLE_OPTS "m:T:n:i:t:")) != -1) {
        if ((r = example_option(cfg, opt, optarg)) < 0)
            return 2;
        if (r == 1)
            continue;
        if (opt == 'm')
            model = optarg;
        else if (opt == 'T')
            threads = (int)strtol(optarg, NULL, 10);
        else if (opt == 'n')
            per_thread = (int)strtol(optarg, NULL, 10);
        else if (opt == 'i')
            prefix = optarg;
        else if (opt == 't')
            timeout_ms = (int)strtol(optarg, NULL, 10);
        else
            return 2;
    }
    if (threads < 1 || threads > 1024 || per_thread < 1) {
        fprintf(stderr, "usage: threads_await [options] [-T THREADS] [-n PER_THREAD]\n");
        return 2;
    }
    char err[512];
    client = inferq_client_new(cfg, err, sizeof(err));
    inferq_config_destroy(cfg);
    if (!client) {
        fprintf(stderr, "threads_await: %s\n", err);
        return 2;
    }
    pthread_t *tids = calloc((size_t)threads, sizeof(*tids));
    for (long j = 0; j < threads; j++)
        pthread_create(&tids[j], NULL, worker, (void *)j);
    for (int j = 0; j < threads; j++)
        pthread_join(tids[j], NULL);
    free(tids);
    printf("ok %d wrong %d missing %d\n", ok, wrong, missing);
    inferq_client_destroy(client, 5000);
    return ok == threads * per_thread ? 0 : 1;
}
