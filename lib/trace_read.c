/*
 * trace_read.c - one trace's spans, read back from the OTLP/JSON messages
 * on the traces topic (see trace_read.h).
 */
#include "trace_read.h"

#include <ctype.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kafka.h"

/* ---- spans ---------------------------------------------------------------- */

void ifq_trace_init(ifq_trace_t *t)
{
    memset(t, 0, sizeof(*t));
}

static void span_free(ifq_span_t *s)
{
    free(s->service);
    free(s->name);
    free(s->status_message);
    json_decref(s->attributes);
}

void ifq_trace_clear(ifq_trace_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        span_free(&t->spans[i]);
    free(t->spans);
    ifq_trace_init(t);
}

static int hex_id(const char *s, size_t len)
{
    if (!s || strlen(s) != len)
        return 0;
    int nonzero = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isxdigit((unsigned char)s[i]))
            return 0;
        nonzero |= s[i] != '0';
    }
    return nonzero;
}

int ifq_trace_id_valid(const char *s)
{
    return hex_id(s, 32);
}

static void lower_copy(char *dst, const char *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (char)tolower((unsigned char)src[i]);
    dst[n] = '\0';
}

/* An OTLP int64 field: a decimal string (proto3 JSON) or a number. */
static int otlp_i64(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_string(v) && ifq_parse_i64(json_string_value(v), out) == IFQ_OK)
        return 0;
    return -1;
}

/* An OTLP enum: its number, or its name with one of the given spellings. */
static int otlp_enum(const json_t *v, const char *const *names, int nnames, int dflt)
{
    if (json_is_integer(v))
        return (int)json_integer_value(v);
    const char *s = json_string_value(v);
    for (int i = 0; s && i < nnames; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return dflt;
}

/* An AnyValue as a plain JSON value (new reference), or NULL. Nesting is
 * bounded; bytesValue stays its base64 string. */
static json_t *otlp_value(const json_t *v, int depth)
{
    if (!json_is_object(v) || depth > 8)
        return NULL;
    json_t *x;
    if ((x = json_object_get(v, "stringValue")) && json_is_string(x))
        return json_incref(x);
    if ((x = json_object_get(v, "boolValue")) && json_is_boolean(x))
        return json_incref(x);
    if ((x = json_object_get(v, "intValue"))) {
        int64_t n;
        return otlp_i64(x, &n) == 0 ? json_integer(n) : NULL;
    }
    if ((x = json_object_get(v, "doubleValue")) && json_is_number(x))
        return json_real(json_number_value(x));
    if ((x = json_object_get(v, "bytesValue")) && json_is_string(x))
        return json_incref(x);
    if ((x = json_object_get(v, "arrayValue"))) {
        json_t *arr = json_array(), *e;
        size_t i;
        json_array_foreach(json_object_get(x, "values"), i, e)
        {
            json_t *c = otlp_value(e, depth + 1);
            json_array_append_new(arr, c ? c : json_null());
        }
        return arr;
    }
    if ((x = json_object_get(v, "kvlistValue"))) {
        json_t *obj = json_object(), *e;
        size_t i;
        json_array_foreach(json_object_get(x, "values"), i, e)
        {
            const char *k = json_string_value(json_object_get(e, "key"));
            json_t *c = k ? otlp_value(json_object_get(e, "value"), depth + 1) : NULL;
            if (c)
                json_object_set_new(obj, k, c);
        }
        return obj;
    }
    return NULL;
}

/* KeyValue[] -> object; entries without a key or a value are skipped. */
static json_t *otlp_attributes(const json_t *arr)
{
    json_t *obj = json_object(), *e;
    size_t i;
    json_array_foreach(arr, i, e)
    {
        const char *k = json_string_value(json_object_get(e, "key"));
        json_t *v = k ? otlp_value(json_object_get(e, "value"), 0) : NULL;
        if (v)
            json_object_set_new(obj, k, v);
    }
    return obj;
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

/* Appends one span; 1 added, 0 another trace or no room, -1 malformed. */
static int add_span(ifq_trace_t *t, const char *want, const char *service, const json_t *sp)
{
    const char *tid = json_string_value(json_object_get(sp, "traceId"));
    if (!hex_id(tid, 32))
        return -1;
    if (strncasecmp(tid, want, 32) != 0)
        return 0;
    const char *sid = json_string_value(json_object_get(sp, "spanId"));
    const char *pid = json_string_value(json_object_get(sp, "parentSpanId"));
    const char *name = json_string_value(json_object_get(sp, "name"));
    int64_t start, end;
    if (!hex_id(sid, 16) || (pid && pid[0] && !hex_id(pid, 16)) || !name ||
        otlp_i64(json_object_get(sp, "startTimeUnixNano"), &start) < 0 ||
        otlp_i64(json_object_get(sp, "endTimeUnixNano"), &end) < 0 || start < 0 || end < start)
        return -1;
    if (t->n >= IFQ_TRACE_MAX_SPANS) {
        t->truncated = 1;
        return 0;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        ifq_span_t *ns = realloc(t->spans, cap * sizeof(*ns));
        if (!ns)
            return 0;
        t->spans = ns;
        t->cap = cap;
    }
    static const char *const kinds[] = {"SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL",
                                        "SPAN_KIND_SERVER",      "SPAN_KIND_CLIENT",
                                        "SPAN_KIND_PRODUCER",    "SPAN_KIND_CONSUMER"};
    static const char *const codes[] = {"STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"};
    ifq_span_t *s = &t->spans[t->n++];
    memset(s, 0, sizeof(*s));
    lower_copy(s->trace_id, tid, 32);
    lower_copy(s->span_id, sid, 16);
    if (pid && pid[0])
        lower_copy(s->parent_id, pid, 16);
    s->service = dup_or_empty(service);
    s->name = dup_or_empty(name);
    s->kind = otlp_enum(json_object_get(sp, "kind"), kinds, 6, 0);
    s->start_ns = start;
    s->end_ns = end;
    s->attributes = otlp_attributes(json_object_get(sp, "attributes"));
    const json_t *st = json_object_get(sp, "status");
    s->status_code = otlp_enum(json_object_get(st, "code"), codes, 3, 0);
    s->status_message = dup_or_empty(json_string_value(json_object_get(st, "message")));
    return 1;
}

int ifq_trace_add_otlp(ifq_trace_t *t, const char *trace_id, const void *buf, size_t len)
{
    json_error_t jerr;
    json_t *root = len <= IFQ_TRACE_MAX_MESSAGE ? json_loadb(buf, len, 0, &jerr) : NULL;
    const json_t *rss = json_object_get(root, "resourceSpans");
    if (!json_is_array(rss)) {
        json_decref(root);
        t->malformed++;
        return -1;
    }
    int added = 0;
    size_t i, j, k;
    const json_t *rs, *ss, *sp;
    json_array_foreach(rss, i, rs)
    {
        const char *service = NULL;
        const json_t *a;
        json_array_foreach(json_object_get(json_object_get(rs, "resource"), "attributes"), j, a)
        {
            const char *key = json_string_value(json_object_get(a, "key"));
            if (key && strcmp(key, "service.name") == 0)
                service =
                    json_string_value(json_object_get(json_object_get(a, "value"), "stringValue"));
        }
        const json_t *scopes = json_object_get(rs, "scopeSpans");
        if (!scopes) /* the name before OTLP 0.15 */
            scopes = json_object_get(rs, "instrumentationLibrarySpans");
        json_array_foreach(scopes, j, ss)
        {
            json_array_foreach(json_object_get(ss, "spans"), k, sp)
            {
                int r = add_span(t, trace_id, service, sp);
                if (r < 0)
                    t->malformed++;
                else
                    added += r;
            }
        }
    }
    json_decref(root);
    return added;
}

/* ---- order and JSON ------------------------------------------------------- */

static int by_start(const void *a, const void *b)
{
    const ifq_span_t *x = a, *y = b;
    if (x->start_ns != y->start_ns)
        return x->start_ns < y->start_ns ? -1 : 1;
    if (x->end_ns != y->end_ns) /* the enclosing span first */
        return x->end_ns > y->end_ns ? -1 : 1;
    return strcmp(x->span_id, y->span_id);
}

/* Index of the span with id, or -1. */
static long find_span(const ifq_trace_t *t, const char *id)
{
    for (size_t i = 0; id[0] && i < t->n; i++)
        if (strcmp(t->spans[i].span_id, id) == 0)
            return (long)i;
    return -1;
}

void ifq_trace_order(ifq_trace_t *t)
{
    if (t->n == 0)
        return;
    qsort(t->spans, t->n, sizeof(*t->spans), by_start);
    size_t n = t->n;
    long *parent = malloc(n * sizeof(*parent));
    size_t *out = malloc(n * sizeof(*out)), *stack = malloc(n * sizeof(*stack));
    char *done = calloc(n, 1);
    ifq_span_t *sorted = malloc(n * sizeof(*sorted));
    if (!parent || !out || !stack || !done || !sorted)
        goto out;
    for (size_t i = 0; i < n; i++) {
        parent[i] = find_span(t, t->spans[i].parent_id);
        if (parent[i] == (long)i)
            parent[i] = -1;
    }
    /* Depth-first from each root in start order; spans caught in a parent
     * cycle (never reached from a root) are placed as roots at the end. */
    size_t nout = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t r = 0; r < n; r++) {
            if (done[r] || (pass == 0 && parent[r] >= 0))
                continue;
            size_t top = 0;
            stack[top++] = r;
            done[r] = 1;
            t->spans[r].depth = 0;
            while (top) {
                size_t cur = stack[--top];
                out[nout++] = cur;
                /* Push children in reverse start order so the earliest pops first. */
                for (size_t c = n; c-- > 0;)
                    if (!done[c] && parent[c] == (long)cur) {
                        done[c] = 1;
                        t->spans[c].depth = t->spans[cur].depth + 1;
                        stack[top++] = c;
                    }
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        sorted[i] = t->spans[out[i]];
    memcpy(t->spans, sorted, n * sizeof(*sorted));
out:
    free(parent);
    free(out);
    free(stack);
    free(done);
    free(sorted);
}

json_t *ifq_trace_to_json(const ifq_trace_t *t, const char *trace_id)
{
    int64_t t0 = 0;
    for (size_t i = 0; i < t->n; i++)
        if (i == 0 || t->spans[i].start_ns < t0)
            t0 = t->spans[i].start_ns;
    json_t *spans = json_array();
    for (size_t i = 0; i < t->n; i++) {
        const ifq_span_t *s = &t->spans[i];
        char st[24], en[24];
        snprintf(st, sizeof(st), "%lld", (long long)s->start_ns);
        snprintf(en, sizeof(en), "%lld", (long long)s->end_ns);
        json_t *o = json_pack(
            "{ss ss so ss ss si ss ss sf sf si sO s{si ss}}", "trace_id", s->trace_id, "span_id",
            s->span_id, "parent_span_id", s->parent_id[0] ? json_string(s->parent_id) : json_null(),
            "service", s->service, "name", s->name, "kind", s->kind, "start_unix_nano", st,
            "end_unix_nano", en, "offset_ms", (double)(s->start_ns - t0) / 1e6, "duration_ms",
            (double)(s->end_ns - s->start_ns) / 1e6, "depth", s->depth, "attributes", s->attributes,
            "status", "code", s->status_code, "message", s->status_message);
        if (o)
            json_array_append_new(spans, o);
    }
    return json_pack("{ss so sI sI sb}", "trace_id", trace_id ? trace_id : "", "spans", spans,
                     "messages", (json_int_t)t->messages, "malformed", (json_int_t)t->malformed,
                     "truncated", t->truncated);
}

/* ---- the Kafka reader ------------------------------------------------------ */

typedef struct {
    int32_t id;
    int64_t end; /* high watermark when the reader was opened */
    int done;    /* reached end (or nothing to read) */
} part_t;

struct ifq_trace_reader {
    rd_kafka_t *rk;
    char topic[IFQ_MAX_TOPIC + 1];
    char trace_id[33];
    part_t *parts;
    int nparts;
    ifq_trace_t trace;
};

static part_t *part_of(ifq_trace_reader_t *r, int32_t id)
{
    for (int i = 0; i < r->nparts; i++)
        if (r->parts[i].id == id)
            return &r->parts[i];
    return NULL;
}

/* A consumer that never joins its group (it only assigns), with
 * partition-EOF events on so that the end of each partition is seen even
 * when the last offsets are transaction markers. */
static rd_kafka_t *reader_consumer(const ifq_config_t *cfg, char *errstr, size_t errstr_size)
{
    ifq_config_t c = *cfg;
    c.kafka_props = cfg->kafka_props ? json_deep_copy(cfg->kafka_props) : json_object();
    json_object_set_new(c.kafka_props, "enable.partition.eof", json_true());
    char group[64];
    snprintf(group, sizeof(group), "inferq-trace-read-%d", (int)getpid());
    rd_kafka_t *rk = ifq_kafka_consumer_new(&c, group, NULL, NULL, errstr, errstr_size);
    json_decref(c.kafka_props);
    return rk;
}

static int reader_partitions(ifq_trace_reader_t *r, int timeout_ms, int *err, char *errstr,
                             size_t errstr_size)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(r->rk, r->topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(r->rk, 0, rkt, &md, timeout_ms);
    rd_kafka_topic_destroy(rkt);
    if (e || !md || md->topic_cnt != 1) {
        snprintf(errstr, errstr_size, "%s: no metadata (%s)", r->topic, rd_kafka_err2str(e));
        *err = IFQ_ERR_IO;
        goto fail;
    }
    if (md->topics[0].err || md->topics[0].partition_cnt <= 0) {
        snprintf(errstr, errstr_size, "%s: %s", r->topic,
                 md->topics[0].err ? rd_kafka_err2str(md->topics[0].err) : "no partitions");
        *err = md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ? IFQ_ERR_NOTFOUND
                                                                            : IFQ_ERR_IO;
        goto fail;
    }
    r->nparts = md->topics[0].partition_cnt;
    r->parts = calloc((size_t)r->nparts, sizeof(*r->parts));
    for (int i = 0; i < r->nparts; i++)
        r->parts[i].id = md->topics[0].partitions[i].id;
    rd_kafka_metadata_destroy(md);
    return 0;
fail:
    if (md)
        rd_kafka_metadata_destroy(md);
    return -1;
}

ifq_trace_reader_t *ifq_trace_reader_new(const ifq_config_t *cfg, const char *topic,
                                         const char *trace_id, int64_t since_ms, int timeout_ms,
                                         int *err, char *errstr, size_t errstr_size)
{
    int e_local;
    if (!err)
        err = &e_local;
    *err = IFQ_ERR_IO;
    if (!ifq_trace_id_valid(trace_id)) {
        snprintf(errstr, errstr_size, "not a trace id: %.40s", trace_id ? trace_id : "(null)");
        *err = IFQ_ERR_INVALID;
        return NULL;
    }
    int64_t deadline = ifq_mono_ms() + timeout_ms;
    ifq_trace_reader_t *r = calloc(1, sizeof(*r));
    snprintf(r->topic, sizeof(r->topic), "%s", topic);
    lower_copy(r->trace_id, trace_id, 32);
    ifq_trace_init(&r->trace);
    r->rk = reader_consumer(cfg, errstr, errstr_size);
    if (!r->rk || reader_partitions(r, timeout_ms, err, errstr, errstr_size) < 0)
        goto fail;

    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(r->nparts);
    int64_t from = since_ms > IFQ_TRACE_SINCE_MARGIN_MS ? since_ms - IFQ_TRACE_SINCE_MARGIN_MS : 0;
    for (int i = 0; i < r->nparts; i++)
        rd_kafka_topic_partition_list_add(l, r->topic, r->parts[i].id)->offset = from;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (since_ms > 0) {
        int left = (int)(deadline - ifq_mono_ms());
        e = rd_kafka_offsets_for_times(r->rk, l, left > 100 ? left : 100);
    } else {
        for (int i = 0; i < l->cnt; i++)
            l->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    for (int i = 0; !e && i < r->nparts; i++) {
        int64_t lo = 0, hi = 0;
        int left = (int)(deadline - ifq_mono_ms());
        e = rd_kafka_query_watermark_offsets(r->rk, r->topic, r->parts[i].id, &lo, &hi,
                                             left > 100 ? left : 100);
        r->parts[i].end = hi;
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(l, r->topic, r->parts[i].id);
        /* offsetsForTimes answers -1 when no message is that recent; a
         * partition it could not answer for is read from its start. */
        if (tp && tp->err)
            tp->offset = lo;
        if (tp && tp->offset == RD_KAFKA_OFFSET_END)
            tp->offset = hi;
        if (tp && tp->offset == RD_KAFKA_OFFSET_BEGINNING)
            tp->offset = lo;
        r->parts[i].done = !tp || tp->offset >= hi;
    }
    if (!e)
        e = rd_kafka_assign(r->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        snprintf(errstr, errstr_size, "%s: %s", r->topic, rd_kafka_err2str(e));
        *err = IFQ_ERR_IO;
        goto fail;
    }
    *err = IFQ_OK;
    return r;
fail:
    ifq_trace_reader_destroy(r);
    return NULL;
}

static int all_done(const ifq_trace_reader_t *r)
{
    for (int i = 0; i < r->nparts; i++)
        if (!r->parts[i].done)
            return 0;
    return 1;
}

/* Handles one polled message; returns the spans it added. */
static size_t take(ifq_trace_reader_t *r, rd_kafka_message_t *m)
{
    size_t added = 0;
    part_t *p = part_of(r, m->partition);
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (p)
            p->done = 1;
    } else if (!m->err) {
        r->trace.messages++;
        if (p && m->offset + 1 >= p->end)
            p->done = 1;
        if (m->key_len == 32 && strncasecmp(m->key, r->trace_id, 32) == 0) {
            r->trace.matched++;
            int n = m->len <= IFQ_TRACE_MAX_MESSAGE
                        ? ifq_trace_add_otlp(&r->trace, r->trace_id, m->payload, m->len)
                        : (r->trace.malformed++, -1);
            if (n > 0)
                added = (size_t)n;
        }
    }
    rd_kafka_message_destroy(m);
    return added;
}

int ifq_trace_reader_read(ifq_trace_reader_t *r, int timeout_ms)
{
    int64_t deadline = ifq_mono_ms() + timeout_ms;
    while (!all_done(r)) {
        int64_t left = deadline - ifq_mono_ms();
        if (left <= 0)
            return IFQ_ERR_TIMEOUT;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->rk, left < 100 ? (int)left : 100);
        if (m)
            take(r, m);
    }
    return IFQ_OK;
}

size_t ifq_trace_reader_follow(ifq_trace_reader_t *r, int ms)
{
    int64_t deadline = ifq_mono_ms() + ms;
    size_t added = 0;
    for (int64_t left; (left = deadline - ifq_mono_ms()) > 0;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->rk, left < 100 ? (int)left : 100);
        if (m)
            added += take(r, m);
    }
    return added;
}

ifq_trace_t *ifq_trace_reader_trace(ifq_trace_reader_t *r)
{
    return &r->trace;
}

void ifq_trace_reader_destroy(ifq_trace_reader_t *r)
{
    if (!r)
        return;
    if (r->rk) {
        rd_kafka_consumer_close(r->rk);
        rd_kafka_destroy(r->rk);
    }
    free(r->parts);
    ifq_trace_clear(&r->trace);
    free(r);
}
