/*
 * submit_await - one chat request, wait for its result, print it.
 *
 *   submit_await [-b HOST:PORT] [-p PREFIX] [-a] [-m MODEL] [-i CUSTOM_ID]
 *                [-t TIMEOUT_MS] MESSAGE
 *
 * Prints the result line on stdout. Exit status: 0 succeeded, 1 an error
 * result (its code on stderr), 3 no result within the timeout, 2 a usage or
 * setup error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "example_config.h"

int main(int argc, char **argv)
{
    inferq_config_t *cfg = example_config_new();
    const char *model = "chat-default";
    char idbuf[64];
    const char *cid = NULL;
    int timeout_ms = 60000, opt, r;
    while ((opt = getopt(argc, argv, EXAMPLE_OPTS "m:i:t:")) != -1) {
        if ((r = example_option(cfg, opt, optarg)) < 0)
            return 2;
        if (r == 1)
            continue;
        if (opt == 'm')
            model = optarg;
        else if (opt == 'i')
            cid = optarg;
        else if (opt == 't')
            timeout_ms = (int)strtol(optarg, NULL, 10);
        else
            return 2;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "usage: submit_await [-b HOST:PORT] [-p PREFIX] [-a] [-m MODEL] "
                        "[-i CUSTOM_ID] [-t TIMEOUT_MS] MESSAGE\n");
        return 2;
    }
    if (!cid) {
        snprintf(idbuf, sizeof(idbuf), "example-%ld-%ld", (long)getpid(), (long)time(NULL));
        cid = idbuf;
    }

    char err[512];
    inferq_client_t *client = inferq_client_new(cfg, err, sizeof(err));
    inferq_config_destroy(cfg);
    if (!client) {
        fprintf(stderr, "submit_await: %s\n", err);
        return 2;
    }

    inferq_request_t *req = inferq_request_new(cid);
    inferq_request_set_model(req, model);
    inferq_request_add_message(req, "user", argv[optind]);
    int rc = inferq_submit(client, req, NULL, NULL);
    inferq_request_destroy(req);
    if (rc != INFERQ_OK) {
        fprintf(stderr, "submit_await: submit: %s\n", inferq_strerror(rc));
        inferq_client_destroy(client, 5000);
        return 2;
    }

    inferq_result_t *res = NULL;
    rc = inferq_await(client, cid, timeout_ms, &res);
    int status = 3;
    if (rc == INFERQ_OK) {
        puts(inferq_result_json(res));
        status = inferq_result_ok(res) ? 0 : 1;
        if (status)
            fprintf(stderr, "submit_await: %s: %s\n", inferq_result_error_code(res),
                    inferq_result_error_message(res));
        inferq_result_free(res);
    } else {
        fprintf(stderr, "submit_await: %s: %s\n", cid, inferq_strerror(rc));
    }
    inferq_client_destroy(client, 5000);
    return status;
}
