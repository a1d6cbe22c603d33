/*
 * trace.h - W3C trace context and spans written as OTLP/JSON.
 *
 * A request's spans from one service hop (the broker's decision, or one
 * worker's handling of it) are collected in an ifq_spans_t and written as
 * ONE Kafka message: an OpenTelemetry ExportTraceServiceRequest in the
 * protobuf JSON mapping (resourceSpans / scopeSpans / spans, ids in hex,
 * times as decimal strings of Unix nanoseconds, enums as integers), keyed
 * by the 32-hex trace id, so the OpenTelemetry Collector's Kafka receiver
 * with `encoding: otlp_json` reads it as is. The JSON text is written
 * directly (no jansson tree) to keep the hot path cheap, and produced
 * without waiting: spans are best effort and never hold a request back.
 *
 * Every span of a batch carries the batch's inferq.custom_id and, when
 * known, inferq.request_id. Callers never put prompt text, answers,
 * matched PII or secrets into attributes or status messages.
 */
#ifndef IFQ_TRACE_H
#define IFQ_TRACE_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

/* OTLP SpanKind. */
enum {
    IFQ_SPAN_INTERNAL = 1,
    IFQ_SPAN_SERVER = 2,
    IFQ_SPAN_CLIENT = 3,
    IFQ_SPAN_PRODUCER = 4,
    IFQ_SPAN_CONSUMER = 5
};
/* OTLP StatusCode. */
enum { IFQ_STATUS_UNSET = 0, IFQ_STATUS_OK = 1, IFQ_STATUS_ERROR = 2 };

#define IFQ_SPANS_MAX 48 /* spans per batch; more are dropped (and counted) */

typedef struct {
    char trace_id[33]; /* 32 lowercase hex */
    char span_id[17];  /* 16 lowercase hex: the parent of spans made from this context */
    int sampled;       /* the traceparent's sampled flag */
} ifq_tracectx_t;

/* Parses "00-<32 hex>-<16 hex>-<2 hex>" (lowercase, non-zero ids). Returns
 * 0, or -1 when tp is NULL or not a valid traceparent. */
int ifq_tracectx_parse(const char *tp, ifq_tracectx_t *out);
/* Writes "00-<trace>-<span>-0x" (55 chars + NUL) into out. */
void ifq_tracectx_format(const ifq_tracectx_t *c, char out[56]);
/* The sampling decision for a trace without a sampled parent: a pure
 * function of the trace id, so every service decides the same way. rate
 * <= 0 samples nothing, >= 1 everything. */
int ifq_trace_sample(const char *trace_id, double rate);
/* A new random non-zero span id (16 hex + NUL). Uses a per-thread
 * generator. */
void ifq_span_id_new(char out[17]);
/* Wall clock in Unix nanoseconds. */
int64_t ifq_now_ns(void);

typedef struct ifq_span ifq_span_t;
typedef struct ifq_spans ifq_spans_t;

/* A batch for one request and hop. Strings are copied; custom_id and
 * request_id may be NULL. Returns NULL when out of memory or trace_id is
 * not 32 hex characters. */
ifq_spans_t *ifq_spans_new(const char *trace_id, const char *custom_id, const char *request_id);
void ifq_spans_destroy(ifq_spans_t *b); /* NULL is a no-op */
/* Sets the request id of every span (when it becomes known). */
void ifq_spans_set_request_id(ifq_spans_t *b, const char *request_id);
size_t ifq_spans_count(const ifq_spans_t *b);
/* Spans that did not fit (IFQ_SPANS_MAX) or ran out of memory. */
size_t ifq_spans_dropped(const ifq_spans_t *b);

/* Starts a span. parent_id: 16 hex, or NULL/"" for a root. span_id: 16 hex,
 * or NULL for a new random one. start_ns 0 = now. Returns the span, owned by
 * the batch (valid until it is destroyed), or NULL when the batch is full;
 * every span function accepts NULL and then does nothing, so callers need
 * no checks. */
ifq_span_t *ifq_span_start(ifq_spans_t *b, const char *name, int kind, const char *parent_id,
                           const char *span_id, int64_t start_ns);
/* The span's id (16 hex), or "" for NULL. */
const char *ifq_span_id(const ifq_span_t *s);
/* Attributes; a NULL string value skips the attribute. */
void ifq_span_str(ifq_span_t *s, const char *key, const char *value);
void ifq_span_int(ifq_span_t *s, const char *key, int64_t value);
void ifq_span_double(ifq_span_t *s, const char *key, double value);
void ifq_span_bool(ifq_span_t *s, const char *key, int value);
void ifq_span_strs(ifq_span_t *s, const char *key, const char *const *values, size_t n);
/* Status: code IFQ_STATUS_*, message may be NULL (copied, at most 256 bytes). */
void ifq_span_status(ifq_span_t *s, int code, const char *message);
/* Ends the span at end_ns (0 = now). A span never ended is ended at encode
 * time. */
void ifq_span_end(ifq_span_t *s, int64_t end_ns);

/* The OTLP/JSON ExportTraceServiceRequest of the batch. service and
 * instance name the resource (service.name, service.instance.id; instance
 * may be NULL). Returns a malloc'd NUL-terminated string (caller frees) and
 * its length in *len, or NULL when out of memory. */
char *ifq_spans_encode(const ifq_spans_t *b, const char *service, const char *instance,
                       size_t *len);
/* Encodes and produces the batch to topic, keyed by the trace id, without
 * waiting (the delivery report carries msg_opaque, which the caller's
 * delivery callback must recognise and ignore). An empty batch produces
 * nothing. Returns 0, or -1 when the producer queue is full or encoding
 * failed (the spans are then dropped). The batch stays owned by the caller. */
int ifq_spans_produce(const ifq_spans_t *b, rd_kafka_t *rk, const char *topic, const char *service,
                      const char *instance, void *msg_opaque);

#endif
