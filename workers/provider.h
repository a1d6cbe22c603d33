/*
 * provider.h - the interface every provider adapter implements.
 *
 * An adapter turns an OpenAI-shaped request body into the provider's HTTP
 * request, and the provider's HTTP response back into an OpenAI-shaped
 * response body, classifying failures. Adapters do no I/O: the worker's event
 * loop performs the HTTP exchange, so adapters are unit-tested on recorded
 * bodies alone.
 */
#ifndef IFQ_PROVIDER_H
#define IFQ_PROVIDER_H

#include <jansson.h>

#include "config.h"
#include "envelope.h"

#define IFQ_HTTP_MAX_HEADERS 8

typedef struct {
    char url[1024];
    char *body; /* malloc'd, caller frees */
    size_t body_len;
    /* "Name: value" lines; values may hold secrets, so they are never logged. */
    char headers[IFQ_HTTP_MAX_HEADERS][2048]; /* room for AWS session tokens */
    int n_headers;
    /* AWS SigV4 signing by libcurl (CURLOPT_AWS_SIGV4), e.g.
     * "aws:amz:us-east-1:bedrock"; empty for none. userpwd is then
     * "ACCESS_KEY:SECRET_KEY" (a secret: wiped after use, never logged). */
    char aws_sigv4[128];
    char userpwd[512];
} ifq_http_req_t;

typedef struct {
    int retryable;     /* 1 when another attempt may succeed */
    char type[64];     /* stable short class: http_429, http_500, timeout, connect, malformed ... */
    char message[512]; /* readable, never contains request text or secrets */
} ifq_upstream_err_t;

typedef struct ifq_provider {
    const char *name;
    /* Builds the HTTP request. api_key may be NULL. Returns IFQ_OK or
     * IFQ_ERR_INVALID with err filled (a request the provider cannot take). */
    int (*build)(const ifq_deployment_t *dep, ifq_url_kind_t kind, const json_t *body,
                 const char *api_key, ifq_http_req_t *out, ifq_upstream_err_t *err);
    /* Parses a completed HTTP response (status 0 never reaches here). On
     * success returns a new OpenAI-shaped body (caller owns); on failure NULL
     * with err filled. */
    json_t *(*parse)(const ifq_deployment_t *dep, ifq_url_kind_t kind, long status,
                     const char *body, size_t len, ifq_upstream_err_t *err);
    /* 1 when parse returns a 2xx answer exactly as it was received (only
     * parsed, not translated): the worker then copies the response bytes
     * into the result instead of encoding the tree again. */
    int passthrough;
} ifq_provider_t;

/* The adapter for a provider name, or NULL. */
const ifq_provider_t *ifq_provider_find(const char *name);

/* Classifies an HTTP status per the gateway's retry policy: connection
 * errors, timeouts, 408, 409, 429, 5xx and 529 are retryable. */
int ifq_http_status_retryable(long status);

/* Parses a Retry-After value (delta seconds or an HTTP date) relative to
 * now_ms; returns the delay in ms, or -1 when unparseable. */
int64_t ifq_retry_after_ms(const char *value, int64_t now_ms);

/* Exponential backoff with full jitter: uniform in [0, min(max, base*2^n)]
 * for attempt n (1-based) using the random value r in [0,1). */
int64_t ifq_backoff_ms(int attempt, int base_ms, int max_ms, double r);

#endif
