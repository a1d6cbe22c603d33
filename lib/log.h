/*
 * log.h - structured JSON log lines on stderr.
 *
 * One line per event: {"time","ts","level","service","event","msg",
 * ["trace_id","custom_id",] ...fields}. "ts" is the same instant as "time"
 * (kept for readers written before "time"). Event-specific fields sit at
 * the top level beside these keys and never replace them. Callers never
 * pass prompt text, answers, matched PII or secrets here.
 */
#ifndef IFQ_LOG_H
#define IFQ_LOG_H

#include <jansson.h>

typedef enum { IFQ_LOG_DEBUG = 0, IFQ_LOG_INFO, IFQ_LOG_WARN, IFQ_LOG_ERROR } ifq_log_level_t;

/* service is borrowed for the life of the process. */
void ifq_log_init(const char *service, ifq_log_level_t level);
/* Returns the level for "debug|info|warn|error", or -1. */
int ifq_log_level_parse(const char *s);
int ifq_log_enabled(ifq_log_level_t level);

void ifq_log(ifq_log_level_t level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like ifq_log with extra structured fields; takes ownership of fields
 * (may be NULL). */
void ifq_log_fields(ifq_log_level_t level, const char *event, json_t *fields, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Like ifq_log_fields for one request: adds "trace_id" (32 hex, or taken
 * from a traceparent) and "custom_id" when not NULL. */
void ifq_log_req(ifq_log_level_t level, const char *event, const char *trace, const char *custom_id,
                 json_t *fields, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#define ifq_debug(ev, ...) ifq_log(IFQ_LOG_DEBUG, ev, __VA_ARGS__)
#define ifq_info(ev, ...) ifq_log(IFQ_LOG_INFO, ev, __VA_ARGS__)
#define ifq_warn(ev, ...) ifq_log(IFQ_LOG_WARN, ev, __VA_ARGS__)
#define ifq_error(ev, ...) ifq_log(IFQ_LOG_ERROR, ev, __VA_ARGS__)

#endif
