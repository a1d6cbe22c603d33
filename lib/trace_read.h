/*
 * trace_read.h - reads one trace's spans back from the traces topic.
 *
 * Spans travel as OTLP/JSON ExportTraceServiceRequest messages on
 * cfg->topic_traces (docs/dashboard.md), one message per request per
 * service hop, keyed by the trace id. The reader assigns every partition of
 * the topic at offsetsForTimes(since - margin), reads to the end each
 * partition had when it started, keeps the messages whose key is the trace
 * id and returns their spans as a flat list. Time and memory are bounded
 * (a deadline, IFQ_TRACE_MAX_SPANS, IFQ_TRACE_MAX_MESSAGE); malformed
 * messages and spans are skipped and counted.
 *
 * `inferq trace` and the broker's dashboard use it.
 */
#ifndef IFQ_TRACE_READ_H
#define IFQ_TRACE_READ_H

#include <jansson.h>
#include <stdint.h>

#include "common.h"
#include "config.h"

#define IFQ_TRACE_MAX_SPANS 4096
#define IFQ_TRACE_MAX_MESSAGE ((size_t)4 << 20)
/* How far before `since` the reader starts, for clock skew between the
 * hosts that wrote the request and the spans. */
#define IFQ_TRACE_SINCE_MARGIN_MS 60000

typedef struct {
    char trace_id[33];  /* 32 lowercase hex */
    char span_id[17];   /* 16 lowercase hex */
    char parent_id[17]; /* "" for a root */
    char *service;      /* resource attribute service.name ("" when absent); owned */
    char *name;         /* owned */
    int kind;           /* OTLP SpanKind: 0 unspecified, 1 internal, 2 server, ... */
    int64_t start_ns, end_ns;
    json_t *attributes;   /* object: key -> string/integer/real/boolean/array; owned */
    int status_code;      /* 0 unset, 1 ok, 2 error */
    char *status_message; /* owned, "" when absent */
    int depth;            /* tree depth, set by ifq_trace_order */
} ifq_span_t;

typedef struct {
    ifq_span_t *spans;
    size_t n, cap;
    size_t messages;  /* messages read from the topic */
    size_t matched;   /* messages whose key was the trace id */
    size_t malformed; /* matched messages or spans skipped as malformed */
    int truncated;    /* 1 when IFQ_TRACE_MAX_SPANS was reached */
} ifq_trace_t;

/* An empty trace; ifq_trace_clear frees what it holds (and may be called
 * on a zeroed struct). */
void ifq_trace_init(ifq_trace_t *t);
void ifq_trace_clear(ifq_trace_t *t);

/* Adds the spans of trace_id (32 hex, any case) found in one OTLP/JSON
 * ExportTraceServiceRequest of len bytes (borrowed). Spans of other traces
 * are ignored. Returns the number of spans added, or -1 when the message
 * is not an OTLP trace request (counted in t->malformed). Never fails on
 * bad input otherwise: a bad span is skipped and counted. */
int ifq_trace_add_otlp(ifq_trace_t *t, const char *trace_id, const void *buf, size_t len);

/* Puts the spans in tree order: roots (no parent, or a parent that is not
 * in the list) by start time, each followed by its children by start time,
 * and sets depth. */
void ifq_trace_order(ifq_trace_t *t);

/* {"trace_id", "spans": [{"trace_id", "span_id", "parent_span_id" (null for
 * a root), "service", "name", "kind", "start_unix_nano", "end_unix_nano"
 * (decimal strings), "offset_ms", "duration_ms" (from the earliest start),
 * "depth", "attributes", "status": {"code", "message"}}], "messages",
 * "malformed", "truncated"}. Caller owns the result. */
json_t *ifq_trace_to_json(const ifq_trace_t *t, const char *trace_id);

/* 1 when s is 32 hex characters (a W3C trace id, not all zeros). */
int ifq_trace_id_valid(const char *s);

typedef struct ifq_trace_reader ifq_trace_reader_t;

/* Opens a reader of topic for trace_id, positioned at since_ms -
 * IFQ_TRACE_SINCE_MARGIN_MS on every partition (since_ms <= 0: from the
 * beginning). Kafka settings (bootstrap, kafka.properties for security)
 * come from cfg (borrowed for the call). Bounded by timeout_ms. Returns
 * NULL with errstr (IFQ_ERR_NOTFOUND in *err when the topic does not
 * exist, IFQ_ERR_IO otherwise; err may be NULL). */
ifq_trace_reader_t *ifq_trace_reader_new(const ifq_config_t *cfg, const char *topic,
                                         const char *trace_id, int64_t since_ms, int timeout_ms,
                                         int *err, char *errstr, size_t errstr_size);
/* Reads until every partition reached the end it had when the reader was
 * opened, or timeout_ms. Returns IFQ_OK, or IFQ_ERR_TIMEOUT when the
 * deadline came first (the spans read so far are kept). */
int ifq_trace_reader_read(ifq_trace_reader_t *r, int timeout_ms);
/* Reads whatever arrives for up to ms; returns the number of spans added. */
size_t ifq_trace_reader_follow(ifq_trace_reader_t *r, int ms);
/* The spans read so far (in arrival order until ifq_trace_order);
 * borrowed until the reader is destroyed. */
ifq_trace_t *ifq_trace_reader_trace(ifq_trace_reader_t *r);
void ifq_trace_reader_destroy(ifq_trace_reader_t *r); /* NULL is a no-op */

#endif
