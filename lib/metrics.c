/*
 * metrics.c - a small Prometheus registry. A family keeps its series in a
 * hash table keyed by the label values joined with '\x1f'; each series is
 * a value (counter, gauge) or a bucket array (histogram). One mutex per
 * family: an update is a lookup plus an add, short enough that the main
 * loops never wait on the admin thread's render for long.
 */
#include "metrics.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { M_COUNTER, M_GAUGE, M_HISTOGRAM } mtype_t;

typedef struct series {
    struct series *next; /* hash chain */
    struct series *order_next;
    uint64_t hash;
    char *key;     /* label values joined with 0x1f */
    char **values; /* nlabels copies */
    double value;  /* counter, gauge; histogram: sum */
    uint64_t count;
    uint64_t *buckets; /* histogram: nbounds + 1 cumulative-at-render counts */
} series_t;

#define NSLOTS 256

struct ifq_metric {
    struct ifq_metric *next;
    struct ifq_metrics *reg;
    mtype_t type;
    char *name, *help;
    char *labels[IFQ_METRICS_MAX_LABELS];
    size_t nlabels;
    double bounds[IFQ_METRICS_MAX_BUCKETS];
    size_t nbounds;
    pthread_mutex_t mu;
    series_t *slots[NSLOTS];
    series_t *first, *last; /* creation order, for stable output */
    size_t nseries;
};

struct ifq_metrics {
    pthread_mutex_t mu; /* the family list */
    ifq_metric_t *first, *last;
    ifq_metric_t *dropped; /* inferq_metrics_dropped_series_total */
};

const double ifq_metrics_latency_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                              0.5,   1,      2.5,   5,    10,    30,   60,  120};
const size_t ifq_metrics_latency_nbuckets =
    sizeof(ifq_metrics_latency_buckets) / sizeof(ifq_metrics_latency_buckets[0]);

static void series_free(series_t *s, size_t nlabels)
{
    if (!s)
        return;
    for (size_t i = 0; i < nlabels; i++)
        free(s->values[i]);
    free(s->values);
    free(s->key);
    free(s->buckets);
    free(s);
}

static void family_clear(ifq_metric_t *m)
{
    series_t *s = m->first;
    while (s) {
        series_t *n = s->order_next;
        series_free(s, m->nlabels);
        s = n;
    }
    memset(m->slots, 0, sizeof(m->slots));
    m->first = m->last = NULL;
    m->nseries = 0;
}

static void family_free(ifq_metric_t *m)
{
    family_clear(m);
    for (size_t i = 0; i < m->nlabels; i++)
        free(m->labels[i]);
    free(m->name);
    free(m->help);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

ifq_metrics_t *ifq_metrics_new(void)
{
    ifq_metrics_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    pthread_mutex_init(&r->mu, NULL);
    r->dropped = ifq_metrics_counter(
        r, "inferq_metrics_dropped_series_total",
        "Updates dropped because a metric family reached its series limit.", "metric");
    return r;
}

void ifq_metrics_destroy(ifq_metrics_t *r)
{
    if (!r)
        return;
    ifq_metric_t *m = r->first;
    while (m) {
        ifq_metric_t *n = m->next;
        family_free(m);
        m = n;
    }
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static int split_labels(ifq_metric_t *m, const char *labels)
{
    if (!labels || !*labels)
        return 0;
    const char *p = labels;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (m->nlabels == IFQ_METRICS_MAX_LABELS || n == 0)
            return -1;
        m->labels[m->nlabels] = strndup(p, n);
        if (!m->labels[m->nlabels])
            return -1;
        m->nlabels++;
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

static ifq_metric_t *family_new(ifq_metrics_t *r, mtype_t type, const char *name, const char *help,
                                const char *labels, const double *bounds, size_t nbounds)
{
    if (!r || !name || nbounds > IFQ_METRICS_MAX_BUCKETS)
        return NULL;
    pthread_mutex_lock(&r->mu);
    for (ifq_metric_t *m = r->first; m; m = m->next)
        if (strcmp(m->name, name) == 0) {
            pthread_mutex_unlock(&r->mu);
            return m;
        }
    ifq_metric_t *m = calloc(1, sizeof(*m));
    if (!m) {
        pthread_mutex_unlock(&r->mu);
        return NULL;
    }
    m->reg = r;
    m->type = type;
    m->name = strdup(name);
    m->help = strdup(help ? help : "");
    pthread_mutex_init(&m->mu, NULL);
    if (nbounds)
        memcpy(m->bounds, bounds, nbounds * sizeof(*bounds));
    m->nbounds = nbounds;
    if (!m->name || !m->help || split_labels(m, labels) < 0) {
        family_free(m);
        pthread_mutex_unlock(&r->mu);
        return NULL;
    }
    if (r->last)
        r->last->next = m;
    else
        r->first = m;
    r->last = m;
    pthread_mutex_unlock(&r->mu);
    return m;
}

ifq_metric_t *ifq_metrics_counter(ifq_metrics_t *r, const char *name, const char *help,
                                  const char *labels)
{
    return family_new(r, M_COUNTER, name, help, labels, NULL, 0);
}

ifq_metric_t *ifq_metrics_gauge(ifq_metrics_t *r, const char *name, const char *help,
                                const char *labels)
{
    return family_new(r, M_GAUGE, name, help, labels, NULL, 0);
}

ifq_metric_t *ifq_metrics_histogram(ifq_metrics_t *r, const char *name, const char *help,
                                    const char *labels, const double *bounds, size_t nbounds)
{
    for (size_t i = 1; i < nbounds; i++)
        if (!(bounds[i] > bounds[i - 1]))
            return NULL;
    return family_new(r, M_HISTOGRAM, name, help, labels, bounds, nbounds);
}

/* FNV-1a over the values with a separator; the key is the same bytes. */
static uint64_t key_of(const ifq_metric_t *m, const char *const *values, char *key, size_t size,
                       size_t *klen)
{
    uint64_t h = 1469598103934665603ULL;
    size_t n = 0;
    for (size_t i = 0; i < m->nlabels; i++) {
        const char *v = values && values[i] ? values[i] : "";
        for (const char *p = v;; p++) {
            char c = *p ? *p : '\x1f';
            if (n + 1 < size)
                key[n] = c;
            n++;
            h = (h ^ (unsigned char)c) * 1099511628211ULL;
            if (!*p)
                break;
        }
    }
    *klen = n;
    if (n < size)
        key[n] = '\0';
    return h;
}

/* Returns the series for values, creating it; NULL over the limit or out
 * of memory. Called with m->mu held. */
static series_t *series_get(ifq_metric_t *m, const char *const *values, int create, int *dropped)
{
    char kbuf[512];
    size_t klen;
    uint64_t h = key_of(m, values, kbuf, sizeof(kbuf), &klen);
    char *key = kbuf;
    char *heap = NULL;
    if (klen >= sizeof(kbuf)) {
        heap = malloc(klen + 1);
        if (!heap)
            return NULL;
        key_of(m, values, heap, klen + 1, &klen);
        key = heap;
    }
    series_t *s = m->slots[h % NSLOTS];
    while (s && !(s->hash == h && strcmp(s->key, key) == 0))
        s = s->next;
    if (s || !create) {
        free(heap);
        return s;
    }
    if (m->nseries >= IFQ_METRICS_MAX_SERIES) {
        free(heap);
        *dropped = 1;
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        free(heap);
        return NULL;
    }
    s->hash = h;
    s->key = heap ? heap : strdup(key);
    s->values = calloc(m->nlabels ? m->nlabels : 1, sizeof(*s->values));
    if (m->type == M_HISTOGRAM)
        s->buckets = calloc(m->nbounds + 1, sizeof(*s->buckets));
    int bad = !s->key || !s->values || (m->type == M_HISTOGRAM && !s->buckets);
    for (size_t i = 0; !bad && i < m->nlabels; i++) {
        s->values[i] = strdup(values && values[i] ? values[i] : "");
        bad = !s->values[i];
    }
    if (bad) {
        series_free(s, m->nlabels);
        return NULL;
    }
    s->next = m->slots[h % NSLOTS];
    m->slots[h % NSLOTS] = s;
    if (m->last)
        m->last->order_next = s;
    else
        m->first = s;
    m->last = s;
    m->nseries++;
    return s;
}

static void note_dropped(ifq_metric_t *m)
{
    ifq_metric_t *d = m->reg->dropped;
    if (d && d != m)
        ifq_counter_add(d, (const char *[]){m->name}, 1);
}

static void update(ifq_metric_t *m, const char *const *values, double v, int op)
{
    if (!m)
        return;
    int dropped = 0;
    pthread_mutex_lock(&m->mu);
    series_t *s = series_get(m, values, 1, &dropped);
    if (s) {
        if (op == 0)
            s->value += v;
        else if (op == 1)
            s->value = v;
        else {
            size_t b = 0;
            while (b < m->nbounds && v > m->bounds[b])
                b++;
            s->buckets[b]++;
            s->count++;
            s->value += v;
        }
    }
    pthread_mutex_unlock(&m->mu);
    if (dropped)
        note_dropped(m);
}

void ifq_counter_add(ifq_metric_t *m, const char *const *values, double v)
{
    if (v >= 0)
        update(m, values, v, 0);
}

void ifq_gauge_set(ifq_metric_t *m, const char *const *values, double v)
{
    update(m, values, v, 1);
}

void ifq_gauge_add(ifq_metric_t *m, const char *const *values, double v)
{
    update(m, values, v, 0);
}

void ifq_histogram_observe(ifq_metric_t *m, const char *const *values, double v)
{
    if (m && m->type == M_HISTOGRAM)
        update(m, values, v, 2);
}

void ifq_metric_reset(ifq_metric_t *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    family_clear(m);
    pthread_mutex_unlock(&m->mu);
}

double ifq_metric_value(ifq_metric_t *m, const char *const *values)
{
    if (!m)
        return 0;
    int dropped = 0;
    pthread_mutex_lock(&m->mu);
    series_t *s = series_get(m, values, 0, &dropped);
    double v = !s ? 0 : m->type == M_HISTOGRAM ? (double)s->count : s->value;
    pthread_mutex_unlock(&m->mu);
    return v;
}

/* ---- exposition ---------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t size, len;
    int full;
} out_t;

static void put(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out_t *o, const char *fmt, ...)
{
    if (o->full)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->size - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->size - o->len) {
        o->full = 1;
        return;
    }
    o->len += (size_t)n;
}

/* Label values escape backslash, double quote and newline; HELP text
 * backslash and newline. */
static void put_escaped(out_t *o, const char *s, int quote)
{
    for (; *s && !o->full; s++) {
        if (*s == '\\')
            put(o, "\\\\");
        else if (*s == '\n')
            put(o, "\\n");
        else if (*s == '"' && quote)
            put(o, "\\\"");
        else
            put(o, "%c", *s);
    }
}

static void put_num(out_t *o, double v)
{
    if (v == (double)(int64_t)v && v < 9e15 && v > -9e15)
        put(o, "%lld", (long long)v);
    else
        put(o, "%.10g", v);
}

/* {a="x",b="y"[,le="..."]} or nothing. */
static void put_labels(out_t *o, const ifq_metric_t *m, const series_t *s, const char *le)
{
    if (!m->nlabels && !le)
        return;
    put(o, "{");
    for (size_t i = 0; i < m->nlabels; i++) {
        put(o, "%s%s=\"", i ? "," : "", m->labels[i]);
        put_escaped(o, s->values[i], 1);
        put(o, "\"");
    }
    if (le)
        put(o, "%sle=\"%s\"", m->nlabels ? "," : "", le);
    put(o, "}");
}

static void render_family(out_t *o, ifq_metric_t *m)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    put(o, "# HELP %s ", m->name);
    put_escaped(o, m->help, 0);
    put(o, "\n# TYPE %s %s\n", m->name, types[m->type]);
    for (series_t *s = m->first; s && !o->full; s = s->order_next) {
        if (m->type != M_HISTOGRAM) {
            put(o, "%s", m->name);
            put_labels(o, m, s, NULL);
            put(o, " ");
            put_num(o, s->value);
            put(o, "\n");
            continue;
        }
        uint64_t cum = 0;
        for (size_t b = 0; b <= m->nbounds; b++) {
            char le[32];
            cum += s->buckets[b];
            if (b < m->nbounds)
                snprintf(le, sizeof(le), "%g", m->bounds[b]);
            else
                snprintf(le, sizeof(le), "+Inf");
            put(o, "%s_bucket", m->name);
            put_labels(o, m, s, le);
            put(o, " %llu\n", (unsigned long long)cum);
        }
        put(o, "%s_sum", m->name);
        put_labels(o, m, s, NULL);
        put(o, " ");
        put_num(o, s->value);
        put(o, "\n%s_count", m->name);
        put_labels(o, m, s, NULL);
        put(o, " %llu\n", (unsigned long long)s->count);
    }
}

size_t ifq_metrics_render(ifq_metrics_t *r, char *buf, size_t size)
{
    if (!buf || size == 0)
        return 0;
    buf[0] = '\0';
    if (!r)
        return 0;
    out_t o = {.buf = buf, .size = size};
    pthread_mutex_lock(&r->mu);
    for (ifq_metric_t *m = r->first; m && !o.full; m = m->next) {
        size_t mark = o.len;
        pthread_mutex_lock(&m->mu);
        render_family(&o, m);
        pthread_mutex_unlock(&m->mu);
        if (o.full) {
            /* Cut at the last complete line. */
            while (o.len > mark && buf[o.len - 1] != '\n')
                o.len--;
        }
    }
    pthread_mutex_unlock(&r->mu);
    if (o.full) {
        while (o.len > 0 && buf[o.len - 1] != '\n')
            o.len--;
    }
    buf[o.len] = '\0';
    return o.len;
}

void ifq_metrics_kafka_lag(ifq_metric_t *gauge, struct rd_kafka_s *consumer, const char *group)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (!gauge || !consumer || rd_kafka_assignment(consumer, &parts) || !parts)
        return;
    rd_kafka_position(consumer, parts);
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *p = &parts->elems[i];
        int64_t lo = 0, hi = 0;
        if (p->offset < 0 ||
            rd_kafka_get_watermark_offsets(consumer, p->topic, p->partition, &lo, &hi) || hi < 0)
            continue;
        char pn[16];
        snprintf(pn, sizeof(pn), "%d", (int)p->partition);
        int64_t lag = hi - p->offset;
        ifq_gauge_set(gauge, (const char *[]){group, p->topic, pn}, (double)(lag > 0 ? lag : 0));
    }
    rd_kafka_topic_partition_list_destroy(parts);
}
