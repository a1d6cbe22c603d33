/*
 * trace.c - W3C trace context, sampling, and OTLP/JSON span batches.
 *
 * The JSON is written directly with a small growable buffer. While a
 * request is in flight its batch holds only compact attribute records (one
 * arena per batch, see "spans" below); encoding frames and escapes them
 * into a stack buffer, and the message is produced as one exact-size copy.
 * Strings are escaped for JSON and invalid UTF-8 bytes become '?', so a
 * message is always valid JSON whatever an upstream error message held.
 */
#include "trace.h"

#include "jsonbuf.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- trace context ---------------------------------------------------------- */

static int hex_run(const char *s, size_t n)
{
    int nonzero = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
            return -1;
        nonzero |= s[i] != '0';
    }
    return nonzero;
}

int ifq_tracectx_parse(const char *tp, ifq_tracectx_t *out)
{
    if (!tp || strlen(tp) != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-')
        return -1;
    if (hex_run(tp, 2) < 0 || strncmp(tp, "ff", 2) == 0 || hex_run(tp + 3, 32) != 1 ||
        hex_run(tp + 36, 16) != 1 || hex_run(tp + 53, 2) < 0)
        return -1;
    memcpy(out->trace_id, tp + 3, 32);
    out->trace_id[32] = '\0';
    memcpy(out->span_id, tp + 36, 16);
    out->span_id[16] = '\0';
    int flags = (int)strtol(tp + 53, NULL, 16);
    out->sampled = flags & 1;
    return 0;
}

void ifq_tracectx_format(const ifq_tracectx_t *c, char out[56])
{
    snprintf(out, 56, "00-%.32s-%.16s-%s", c->trace_id, c->span_id, c->sampled ? "01" : "00");
}

int ifq_trace_sample(const char *trace_id, double rate)
{
    if (rate >= 1.0)
        return 1;
    if (rate <= 0.0 || !trace_id || strlen(trace_id) < 32)
        return 0;
    /* The low 64 bits of the id, as W3C's "random" trace ids put the
     * randomness there. */
    uint64_t x = 0;
    for (int i = 16; i < 32; i++) {
        int c = trace_id[i];
        x = (x << 4) | (uint64_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return (double)(x >> 11) < rate * (double)(1ULL << 53);
}

static _Thread_local uint64_t id_state; /* per-thread span id generator */

static uint64_t next_rand(void)
{
    if (!id_state) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        id_state = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ ((uint64_t)getpid() << 40) ^
                   (uint64_t)(uintptr_t)&ts;
    }
    uint64_t z = (id_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void ifq_span_id_new(char out[17])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t v;
    do
        v = next_rand();
    while (v == 0);
    for (int i = 15; i >= 0; i--, v >>= 4)
        out[i] = hex[v & 15];
    out[16] = '\0';
}

int64_t ifq_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- spans ------------------------------------------------------------------- */

/* A batch keeps every attribute of its spans in one arena (b->attrs), in
 * the order they were set, as compact records:
 *
 *   tag (the span's number, 1..IFQ_SPANS_MAX), type, key NUL, value
 *
 * where the value of ATTR_STR, ATTR_INT and ATTR_DBL is NUL-terminated
 * text (the raw string, or the number in decimal), of ATTR_TRUE and
 * ATTR_FALSE nothing, and of ATTR_STRS a count byte and that many
 * NUL-terminated strings. Escaping and the OTLP/JSON framing happen once,
 * at encode time: a request in flight holds the attribute text without the
 * ~35 bytes of JSON around each, and one buffer instead of one per span. */
enum {
    ATTR_STR = 's',
    ATTR_INT = 'i',
    ATTR_DBL = 'd',
    ATTR_TRUE = 't',
    ATTR_FALSE = 'f',
    ATTR_STRS = 'a'
};

/* As before the arena: longer names and status messages are cut. */
#define IFQ_SPAN_NAME_MAX 127
#define IFQ_SPAN_STATUS_MAX 256

struct ifq_span {
    ifq_spans_t *b;
    ifq_span_t *next;
    char *status_msg; /* NULL: none */
    int64_t start_ns, end_ns;
    unsigned char tag; /* its attributes' tag in b->attrs */
    unsigned char kind, status;
    char span_id[17];
    char parent_id[17];
    char name[]; /* NUL-terminated */
};

struct ifq_spans {
    char trace_id[33];
    char *custom_id;
    char *request_id;
    ifq_sb_t attrs; /* the attribute records of every span */
    ifq_span_t *head, *tail;
    size_t n;
    size_t dropped;
};

ifq_spans_t *ifq_spans_new(const char *trace_id, const char *custom_id, const char *request_id)
{
    if (!trace_id || strlen(trace_id) != 32 || hex_run(trace_id, 32) < 0)
        return NULL;
    ifq_spans_t *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    memcpy(b->trace_id, trace_id, 33);
    b->custom_id = custom_id ? strdup(custom_id) : NULL;
    b->request_id = request_id ? strdup(request_id) : NULL;
    return b;
}

void ifq_spans_destroy(ifq_spans_t *b)
{
    if (!b)
        return;
    for (ifq_span_t *s = b->head, *next; s; s = next) {
        next = s->next;
        free(s->status_msg);
        free(s);
    }
    free(b->custom_id);
    free(b->request_id);
    free(b->attrs.p);
    free(b);
}

void ifq_spans_set_request_id(ifq_spans_t *b, const char *request_id)
{
    if (!b || !request_id)
        return;
    free(b->request_id);
    b->request_id = strdup(request_id);
}

size_t ifq_spans_count(const ifq_spans_t *b)
{
    return b ? b->n : 0;
}

size_t ifq_spans_dropped(const ifq_spans_t *b)
{
    return b ? b->dropped : 0;
}

static void copy_id(char dst[17], const char *src)
{
    if (src && strlen(src) == 16 && hex_run(src, 16) == 1)
        memcpy(dst, src, 17);
    else
        dst[0] = '\0';
}

ifq_span_t *ifq_span_start(ifq_spans_t *b, const char *name, int kind, const char *parent_id,
                           const char *span_id, int64_t start_ns)
{
    if (!b)
        return NULL;
    if (b->n >= IFQ_SPANS_MAX) {
        b->dropped++;
        return NULL;
    }
    name = name ? name : "span";
    size_t nl = strnlen(name, IFQ_SPAN_NAME_MAX);
    ifq_span_t *s = calloc(1, sizeof(*s) + nl + 1);
    if (!s) {
        b->dropped++;
        return NULL;
    }
    s->b = b;
    copy_id(s->span_id, span_id);
    if (!s->span_id[0])
        ifq_span_id_new(s->span_id);
    copy_id(s->parent_id, parent_id);
    memcpy(s->name, name, nl);
    s->name[nl] = '\0';
    s->kind = (unsigned char)(kind >= 1 && kind <= 5 ? kind : IFQ_SPAN_INTERNAL);
    s->start_ns = start_ns ? start_ns : ifq_now_ns();
    s->tag = (unsigned char)(b->n + 1);
    if (b->tail)
        b->tail->next = s;
    else
        b->head = s;
    b->tail = s;
    b->n++;
    return s;
}

const char *ifq_span_id(const ifq_span_t *s)
{
    return s ? s->span_id : "";
}

/*
 * The attribute keys the gateway writes. A record names one of them with
 * one byte, KEY_KNOWN + its index, instead of its text: a request's
 * attributes then take about half the memory while it is in flight. Any
 * other key is written out (after KEY_TEXT when its first byte could be
 * taken for an index).
 */
static const char *const known_keys[] = {
    "error.type",
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.max_tokens",
    "gen_ai.request.model",
    "gen_ai.request.temperature",
    "gen_ai.response.finish_reasons",
    "gen_ai.response.id",
    "gen_ai.response.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "http.response.status_code",
    "inferq.alias",
    "inferq.attempt",
    "inferq.attempts",
    "inferq.cache.hit",
    "inferq.cost_usd",
    "inferq.deployment",
    "inferq.failover.to",
    "inferq.guardrail.actions",
    "inferq.guardrail.blocked",
    "inferq.guardrail.detectors",
    "inferq.guardrail.findings",
    "inferq.guardrail.stage",
    "inferq.hop",
    "inferq.limits.result",
    "inferq.model_ms",
    "inferq.outcome",
    "inferq.queue_wait_ms",
    "inferq.request_topic_wait_ms",
    "inferq.route.decision",
    "inferq.route.strategy",
    "inferq.status",
    "inferq.team",
    "messaging.destination.name",
    "messaging.destination.partition.id",
    "messaging.kafka.offset",
    "messaging.operation.type",
    "messaging.system",
    "server.address",
    "server.port",
};
#define N_KNOWN (sizeof(known_keys) / sizeof(known_keys[0]))
#define KEY_KNOWN 0x80
#define KEY_TEXT 0xFF
#define KEY_SLOTS 128 /* a power of two, well above N_KNOWN */

_Static_assert(N_KNOWN < KEY_TEXT - KEY_KNOWN && N_KNOWN < KEY_SLOTS / 2, "too many known keys");

static unsigned char key_slot[KEY_SLOTS]; /* index + 1 of a known key; 0: empty */
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static uint32_t key_hash(const char *k)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 16777619u;
    return h;
}

static void key_index(void)
{
    for (size_t i = 0; i < N_KNOWN; i++) {
        uint32_t h = key_hash(known_keys[i]) & (KEY_SLOTS - 1);
        while (key_slot[h])
            h = (h + 1) & (KEY_SLOTS - 1);
        key_slot[h] = (unsigned char)(i + 1);
    }
}

/* The index of key among known_keys, or -1. */
static int key_code(const char *key)
{
    pthread_once(&key_once, key_index);
    for (uint32_t h = key_hash(key) & (KEY_SLOTS - 1); key_slot[h]; h = (h + 1) & (KEY_SLOTS - 1))
        if (strcmp(known_keys[key_slot[h] - 1], key) == 0)
            return key_slot[h] - 1;
    return -1;
}

/* Starts an attribute record of s: tag, type, key. */
static ifq_sb_t *attr_rec(ifq_span_t *s, int type, const char *key)
{
    ifq_sb_t *a = &s->b->attrs;
    int code = key_code(key);
    char head[3] = {(char)s->tag, (char)type, (char)(KEY_KNOWN + code)};
    if (code >= 0) {
        ifq_sb_putn(a, head, 3);
        return a;
    }
    ifq_sb_putn(a, head, 2);
    if ((unsigned char)key[0] >= KEY_KNOWN) {
        char esc = (char)KEY_TEXT;
        ifq_sb_putn(a, &esc, 1);
    }
    ifq_sb_putn(a, key, strlen(key) + 1);
    return a;
}

void ifq_span_str(ifq_span_t *s, const char *key, const char *value)
{
    if (!s || !key || !value)
        return;
    ifq_sb_putn(attr_rec(s, ATTR_STR, key), value, strlen(value) + 1);
}

void ifq_span_int(ifq_span_t *s, const char *key, int64_t value)
{
    if (!s || !key)
        return;
    ifq_sb_t *a = attr_rec(s, ATTR_INT, key);
    ifq_sb_i64(a, value);
    ifq_sb_putn(a, "", 1);
}

void ifq_span_double(ifq_span_t *s, const char *key, double value)
{
    if (!s || !key)
        return;
    /* JSON has no NaN or infinities. */
    if (value != value || value > 1e300 || value < -1e300)
        value = 0;
    /* The shortest of %.15g and %.17g that reads back exactly. */
    char num[40];
    snprintf(num, sizeof(num), "%.15g", value);
    if (strtod(num, NULL) != value)
        snprintf(num, sizeof(num), "%.17g", value);
    ifq_sb_putn(attr_rec(s, ATTR_DBL, key), num, strlen(num) + 1);
}

void ifq_span_bool(ifq_span_t *s, const char *key, int value)
{
    if (!s || !key)
        return;
    attr_rec(s, value ? ATTR_TRUE : ATTR_FALSE, key);
}

void ifq_span_strs(ifq_span_t *s, const char *key, const char *const *values, size_t n)
{
    if (!s || !key)
        return;
    if (n > 255)
        n = 255;
    ifq_sb_t *a = attr_rec(s, ATTR_STRS, key);
    char cnt = (char)n;
    ifq_sb_putn(a, &cnt, 1);
    for (size_t i = 0; i < n; i++) {
        const char *v = values[i] ? values[i] : "";
        ifq_sb_putn(a, v, strlen(v) + 1);
    }
}

void ifq_span_status(ifq_span_t *s, int code, const char *message)
{
    if (!s)
        return;
    s->status = (unsigned char)(code >= 0 && code <= 2 ? code : IFQ_STATUS_UNSET);
    free(s->status_msg);
    s->status_msg = NULL;
    if (message && *message) {
        size_t n = strnlen(message, IFQ_SPAN_STATUS_MAX);
        s->status_msg = malloc(n + 1);
        if (s->status_msg) {
            memcpy(s->status_msg, message, n);
            s->status_msg[n] = '\0';
        }
    }
}

void ifq_span_end(ifq_span_t *s, int64_t end_ns)
{
    if (!s)
        return;
    s->end_ns = end_ns ? end_ns : ifq_now_ns();
    if (s->end_ns < s->start_ns)
        s->end_ns = s->start_ns;
}

static void common_attr(ifq_sb_t *o, int *first, const char *key, const char *value)
{
    if (!value)
        return;
    if (!*first)
        IFQ_SB_LIT(o, ",");
    IFQ_SB_LIT(o, "{\"key\":");
    *first = 0;
    ifq_sb_str(o, key);
    IFQ_SB_LIT(o, ",\"value\":{\"stringValue\":");
    ifq_sb_str(o, value);
    IFQ_SB_LIT(o, "}}");
}

/* Writes the attribute record at p (its type byte) as an OTLP attribute
 * when o is not NULL; returns the next record. */
static const char *attr_write(ifq_sb_t *o, const char *p)
{
    int type = (unsigned char)*p++;
    const char *key;
    unsigned char k = (unsigned char)*p;
    if (k >= KEY_KNOWN && k != KEY_TEXT) {
        key = known_keys[k - KEY_KNOWN];
        p++;
    } else {
        key = p + (k == KEY_TEXT);
        p = key + strlen(key) + 1;
    }
    if (o) {
        IFQ_SB_LIT(o, "{\"key\":");
        ifq_sb_str(o, key);
        IFQ_SB_LIT(o, ",\"value\":{");
    }
    size_t n;
    switch (type) {
    case ATTR_STR:
        if (o) {
            IFQ_SB_LIT(o, "\"stringValue\":");
            ifq_sb_str(o, p);
            IFQ_SB_LIT(o, "}}");
        }
        return p + strlen(p) + 1;
    case ATTR_INT:
    case ATTR_DBL:
        n = strlen(p);
        if (o) {
            if (type == ATTR_INT) {
                IFQ_SB_LIT(o, "\"intValue\":\"");
                ifq_sb_putn(o, p, n);
                IFQ_SB_LIT(o, "\"}}");
            } else {
                IFQ_SB_LIT(o, "\"doubleValue\":");
                ifq_sb_putn(o, p, n);
                IFQ_SB_LIT(o, "}}");
            }
        }
        return p + n + 1;
    case ATTR_TRUE:
    case ATTR_FALSE:
        if (o && type == ATTR_TRUE)
            IFQ_SB_LIT(o, "\"boolValue\":true}}");
        else if (o)
            IFQ_SB_LIT(o, "\"boolValue\":false}}");
        return p;
    default: /* ATTR_STRS */
        n = (unsigned char)*p++;
        if (o)
            IFQ_SB_LIT(o, "\"arrayValue\":{\"values\":[");
        for (size_t i = 0; i < n; i++) {
            if (o) {
                if (i)
                    IFQ_SB_LIT(o, ",");
                IFQ_SB_LIT(o, "{\"stringValue\":");
                ifq_sb_str(o, p);
                IFQ_SB_LIT(o, "}");
            }
            p += strlen(p) + 1;
        }
        if (o)
            IFQ_SB_LIT(o, "]}}}");
        return p;
    }
}

/* Whether s is a top span of its batch: its parent is not in the batch. */
static int top_span(const ifq_spans_t *b, const ifq_span_t *s)
{
    if (!s->parent_id[0])
        return 1;
    for (const ifq_span_t *t = b->head; t; t = t->next)
        if (memcmp(t->span_id, s->parent_id, 16) == 0)
            return 0;
    return 1;
}

static void encode_span(ifq_sb_t *o, const ifq_spans_t *b, const ifq_span_t *s, int64_t now)
{
    IFQ_SB_LIT(o, "{\"traceId\":\"");
    ifq_sb_putn(o, b->trace_id, 32);
    IFQ_SB_LIT(o, "\",\"spanId\":\"");
    ifq_sb_putn(o, s->span_id, 16);
    if (s->parent_id[0]) {
        IFQ_SB_LIT(o, "\",\"parentSpanId\":\"");
        ifq_sb_putn(o, s->parent_id, 16);
    }
    IFQ_SB_LIT(o, "\",\"name\":");
    ifq_sb_str(o, s->name);
    int64_t end = s->end_ns ? s->end_ns : now < s->start_ns ? s->start_ns : now;
    IFQ_SB_LIT(o, ",\"kind\":");
    ifq_sb_i64(o, s->kind);
    IFQ_SB_LIT(o, ",\"startTimeUnixNano\":\"");
    ifq_sb_i64(o, s->start_ns);
    IFQ_SB_LIT(o, "\",\"endTimeUnixNano\":\"");
    ifq_sb_i64(o, end);
    IFQ_SB_LIT(o, "\",\"attributes\":[");
    /* The request's ids go on the batch's top spans only (their children
     * are found through them): about a fifth of a hop's bytes otherwise. */
    int first = 1;
    if (top_span(b, s)) {
        common_attr(o, &first, "inferq.custom_id", b->custom_id ? b->custom_id : "");
        common_attr(o, &first, "inferq.request_id", b->request_id);
    }
    const char *p = b->attrs.p, *e = p + b->attrs.len;
    while (p && p < e && !o->oom) {
        int mine = (unsigned char)*p == s->tag;
        if (mine && !first)
            IFQ_SB_LIT(o, ",");
        if (mine)
            first = 0;
        p = attr_write(mine ? o : NULL, p + 1);
    }
    IFQ_SB_LIT(o, "],\"status\":{\"code\":");
    ifq_sb_i64(o, s->status);
    if (s->status_msg) {
        IFQ_SB_LIT(o, ",\"message\":");
        ifq_sb_str(o, s->status_msg);
    }
    IFQ_SB_LIT(o, "}}");
}

/* Encodes the batch into o (which may start on a caller's buffer). */
static void encode_batch(ifq_sb_t *o, const ifq_spans_t *b, const char *service,
                         const char *instance)
{
    IFQ_SB_LIT(o, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    int first = 1;
    common_attr(o, &first, "service.name", service ? service : "inferq");
    common_attr(o, &first, "service.instance.id", instance);
    IFQ_SB_LIT(o, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"inferq\"},\"spans\":[");
    int64_t now = ifq_now_ns();
    for (const ifq_span_t *s = b->head; s; s = s->next) {
        if (s != b->head)
            IFQ_SB_LIT(o, ",");
        encode_span(o, b, s, now);
    }
    IFQ_SB_LIT(o, "]}]}]}");
    o->oom |= b->attrs.oom;
}

/* Most batches fit: they are encoded on the stack and copied once, at
 * their exact size. */
#define ENCODE_STACK 16384

char *ifq_spans_encode(const ifq_spans_t *b, const char *service, const char *instance, size_t *len)
{
    if (!b)
        return NULL;
    char stack[ENCODE_STACK];
    ifq_sb_t o = {.p = stack, .cap = sizeof(stack), .borrowed = 1};
    encode_batch(&o, b, service, instance);
    char *out = NULL;
    if (!o.oom) {
        out = malloc(o.len + 1);
        if (out)
            memcpy(out, o.p, o.len + 1);
    }
    if (!o.borrowed)
        free(o.p);
    if (out && len)
        *len = o.len;
    return out;
}

int ifq_spans_produce(const ifq_spans_t *b, rd_kafka_t *rk, const char *topic, const char *service,
                      const char *instance, void *msg_opaque)
{
    if (!b || b->n == 0)
        return 0;
    char stack[ENCODE_STACK];
    ifq_sb_t o = {.p = stack, .cap = sizeof(stack), .borrowed = 1};
    encode_batch(&o, b, service, instance);
    /* RD_KAFKA_MSG_F_COPY: librdkafka keeps the message and its payload
     * in one allocation of the exact size while it waits for delivery. */
    rd_kafka_resp_err_t err =
        o.oom ? RD_KAFKA_RESP_ERR__FAIL
              : rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE(o.p, o.len),
                                  RD_KAFKA_V_KEY((void *)b->trace_id, 32),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_HEADER("content-type", "application/json", -1),
                                  RD_KAFKA_V_OPAQUE(msg_opaque), RD_KAFKA_V_END);
    if (!o.borrowed)
        free(o.p);
    return err ? -1 : 0;
}
