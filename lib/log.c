/*
 * log.c - structured JSON log lines. A line is built in a local buffer and
 * written with one fputs so that lines of concurrent threads never interleave.
 */
#include "log.h"

#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *log_service = "inferq";
static ifq_log_level_t log_level = IFQ_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void ifq_log_init(const char *service, ifq_log_level_t level)
{
    log_service = service;
    log_level = level;
}

int ifq_log_level_parse(const char *s)
{
    for (size_t i = 0; s && i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcmp(s, level_names[i]) == 0)
            return (int)i;
    return -1;
}

int ifq_log_enabled(ifq_log_level_t level)
{
    return level >= log_level;
}

static void log_emit(ifq_log_level_t level, const char *event, const char *trace,
                     const char *custom_id, json_t *fields, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof(when) - n, ".%03ldZ", ts.tv_nsec / 1000000);

    json_t *line = json_object();
    json_object_set_new(line, "time", json_string(when));
    json_object_set_new(line, "ts", json_string(when));
    json_object_set_new(line, "level", json_string(level_names[level]));
    json_object_set_new(line, "service", json_string(log_service));
    json_object_set_new(line, "event", json_string(event));
    if (msg[0])
        json_object_set_new(line, "msg", json_string(msg));
    if (trace) {
        /* A traceparent "00-<trace>-<span>-<flags>" or a bare trace id. */
        const char *t = strlen(trace) == 55 && trace[2] == '-' ? trace + 3 : trace;
        json_object_set_new(line, "trace_id", json_stringn(t, strnlen(t, 32)));
    }
    if (custom_id)
        json_object_set_new(line, "custom_id", json_string(custom_id));
    if (fields) {
        json_object_update_missing(line, fields);
        json_decref(fields);
    }
    char *text = json_dumps(line, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(line);
    if (text) {
        flockfile(stderr);
        fputs(text, stderr);
        fputc('\n', stderr);
        funlockfile(stderr);
        free(text);
    }
}

void ifq_log(ifq_log_level_t level, const char *event, const char *fmt, ...)
{
    if (level < log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_emit(level, event, NULL, NULL, NULL, fmt, ap);
    va_end(ap);
}

void ifq_log_fields(ifq_log_level_t level, const char *event, json_t *fields, const char *fmt, ...)
{
    if (level < log_level) {
        json_decref(fields);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    log_emit(level, event, NULL, NULL, fields, fmt, ap);
    va_end(ap);
}

void ifq_log_req(ifq_log_level_t level, const char *event, const char *trace, const char *custom_id,
                 json_t *fields, const char *fmt, ...)
{
    if (level < log_level) {
        json_decref(fields);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    log_emit(level, event, trace, custom_id, fields, fmt, ap);
    va_end(ap);
}
