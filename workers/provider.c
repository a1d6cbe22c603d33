/*
 * provider.c - adapter lookup and the retry policy shared by all adapters.
 */
#define _GNU_SOURCE /* timegm */
#include "provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern const ifq_provider_t ifq_provider_openai;
extern const ifq_provider_t ifq_provider_azure;
extern const ifq_provider_t ifq_provider_anthropic;
extern const ifq_provider_t ifq_provider_gemini;
extern const ifq_provider_t ifq_provider_bedrock;

static const ifq_provider_t *const providers[] = {
    &ifq_provider_openai, &ifq_provider_azure,   &ifq_provider_anthropic,
    &ifq_provider_gemini, &ifq_provider_bedrock,
};

const ifq_provider_t *ifq_provider_find(const char *name)
{
    for (size_t i = 0; name && i < IFQ_ARRAY_LEN(providers); i++)
        if (strcmp(providers[i]->name, name) == 0)
            return providers[i];
    return NULL;
}

int ifq_http_status_retryable(long status)
{
    return status == 408 || status == 409 || status == 429 || status >= 500;
}

int64_t ifq_retry_after_ms(const char *value, int64_t now_ms)
{
    if (!value)
        return -1;
    while (*value == ' ')
        value++;
    int64_t secs;
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", value);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\r' || buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    if (ifq_parse_i64(buf, &secs) == IFQ_OK)
        return secs < 0 ? -1 : secs > 86400 ? 86400000 : secs * 1000;
    struct tm tm = {0};
    const char *end = strptime(buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end)
        return -1;
    int64_t when = (int64_t)timegm(&tm) * 1000;
    return when > now_ms ? when - now_ms : 0;
}

int64_t ifq_backoff_ms(int attempt, int base_ms, int max_ms, double r)
{
    double cap = base_ms;
    for (int i = 1; i < attempt && cap < max_ms; i++)
        cap *= 2;
    if (cap > max_ms)
        cap = max_ms;
    return (int64_t)(cap * r);
}
