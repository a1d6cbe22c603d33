/*
 * callbacks - many requests, results through the result callback.
 *
 *   callbacks [-b HOST:PORT] [-p PREFIX] [-a] [-m MODEL] [-n N] [-i ID_PREFIX]
 *             [-t TIMEOUT_MS] MESSAGE
 *
 * Sends N requests (custom_ids ID_PREFIX-0 .. ID_PREFIX-<N-1>, message
 * "MESSAGE <i>") without waiting in between and prints each result line as
 * its callback delivers it. Exit status: 0 all N succeeded, 1 some came back
 * as errors, 3 some did not come back in time, 2 usage or setup error.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "example_config.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done = PTHREAD_COND_INITIALIZER;
static int received, failed;

static void on_result(inferq_result_t *res, void *opaque)
{
    pthread_mutex_lock(&lock);
    puts(inferq_result_json(res));
    received++;
    failed += !inferq_result_ok(res);
    pthread_cond_signal(&done);
    pthread_mutex_unlock(&lock);
    inferq_result_free(res);
}

static void on_delivery(const char *custom_id, int err, const char *errmsg, void *opaque)
{
    if (err) {
        /* its result still comes, as a "delivery_failed" error */
        fprintf(stderr, "callbacks: %s not delivered: %s\n", custom_id, errmsg);
    }
}

int main(int argc, char **argv)
{
    inferq_config_t *cfg = example_config_new();
    const char *model = "chat-default", *prefix = "cb";
    int n = 10, timeout_ms = 60000, opt, r;
    while ((opt = getopt(argc, argv, EXAMPLE_OPTS "m:n:i:t:")) != -1) {
        if ((r = example_option(cfg, opt, optarg)) < 0)
            return 2;
        if (r == 1)
            continue;
        if (opt == 'm')
            model = optarg;
        else if (opt == 'n')
            n = (int)strtol(optarg, NULL, 10);
        else if (opt == 'i')
            prefix = optarg;
        else if (opt == 't')
            timeout_ms = (int)strtol(optarg, NULL, 10);
        else
            return 2;
    }
    if (optind != argc - 1 || n < 1) {
        fprintf(stderr, "usage: callbacks [options] [-n N] [-i ID_PREFIX] MESSAGE\n");
        return 2;
    }
    char err[512];
    inferq_client_t *client = inferq_client_new(cfg, err, sizeof(err));
    inferq_config_destroy(cfg);
    if (!client) {
        fprintf(stderr, "callbacks: %s\n", err);
        return 2;
    }
    inferq_on_result(client, on_result, NULL);

    int sent = 0;
    for (int i = 0; i < n; i++) {
        char cid[256], text[1024];
        snprintf(cid, sizeof(cid), "%s-%d", prefix, i);
        snprintf(text, sizeof(text), "%s %d", argv[optind], i);
        inferq_request_t *req = inferq_request_new(cid);
        inferq_request_set_model(req, model);
        inferq_request_add_message(req, "user", text);
        int rc = inferq_submit(client, req, on_delivery, NULL);
        inferq_request_destroy(req);
        if (rc != INFERQ_OK)
            fprintf(stderr, "callbacks: %s: %s\n", cid, inferq_strerror(rc));
        else
            sent++;
    }

    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    pthread_mutex_lock(&lock);
    while (received < sent && pthread_cond_timedwait(&done, &lock, &deadline) == 0)
        ;
    int got = received, bad = failed;
    pthread_mutex_unlock(&lock);
    fprintf(stderr, "callbacks: %d sent, %d results, %d failed\n", sent, got, bad);
    inferq_client_destroy(client, 5000);
    return got < n ? 3 : bad ? 1 : 0;
}
