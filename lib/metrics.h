/*
 * metrics.h - Prometheus metrics: counters, gauges and histograms with
 * labels, and their text exposition (format 0.0.4, with HELP and TYPE;
 * histograms as _bucket{le=...}, _sum and _count).
 *
 * A registry holds metric families; a family has fixed label names and one
 * series per distinct tuple of label values, created on first use. Updates
 * and rendering are thread-safe (one mutex per family), so the admin
 * thread renders while the main loop counts. Label values are copied. A
 * family holds at most IFQ_METRICS_MAX_SERIES series: values of further
 * tuples are dropped (counted in inferq_metrics_dropped_series_total), so a
 * label fed by outside input can never grow memory without bound.
 */
#ifndef IFQ_METRICS_H
#define IFQ_METRICS_H

#include <stddef.h>

#define IFQ_METRICS_MAX_LABELS 6
#define IFQ_METRICS_MAX_SERIES 4096
#define IFQ_METRICS_MAX_BUCKETS 32

typedef struct ifq_metrics ifq_metrics_t;
typedef struct ifq_metric ifq_metric_t;

/* Returns a new empty registry, or NULL when out of memory. */
ifq_metrics_t *ifq_metrics_new(void);
/* Frees the registry and every family in it; NULL is a no-op. */
void ifq_metrics_destroy(ifq_metrics_t *r);

/* Registers a family. name and help are copied. labels is a comma-separated
 * list of label names ("status,team") or NULL for none. Histograms take
 * their upper bounds in increasing order (+Inf is implied). Returns the
 * family, owned by the registry; NULL on a bad argument (too many labels or
 * buckets) or out of memory. Registering a name twice returns the first. */
ifq_metric_t *ifq_metrics_counter(ifq_metrics_t *r, const char *name, const char *help,
                                  const char *labels);
ifq_metric_t *ifq_metrics_gauge(ifq_metrics_t *r, const char *name, const char *help,
                                const char *labels);
ifq_metric_t *ifq_metrics_histogram(ifq_metrics_t *r, const char *name, const char *help,
                                    const char *labels, const double *bounds, size_t nbounds);

/* Updates the series named by values (one string per label name, in order;
 * NULL values are written as ""; values may be NULL for a family without
 * labels). m NULL is a no-op, so optional metrics need no checks. */
void ifq_counter_add(ifq_metric_t *m, const char *const *values, double v);
void ifq_gauge_set(ifq_metric_t *m, const char *const *values, double v);
void ifq_gauge_add(ifq_metric_t *m, const char *const *values, double v);
void ifq_histogram_observe(ifq_metric_t *m, const char *const *values, double v);
/* Removes every series of the family (for gauges rebuilt from scratch, such
 * as the lag of the partitions currently assigned). */
void ifq_metric_reset(ifq_metric_t *m);
/* The current value of a counter or gauge series (0 when absent); for a
 * histogram, its count. For tests and for programs reading their own
 * figures. */
double ifq_metric_value(ifq_metric_t *m, const char *const *values);

/* Appends the text exposition of every family, in registration order, to
 * buf (at most size bytes, always NUL-terminated). Returns the length
 * written; a full buffer truncates at a line boundary. */
size_t ifq_metrics_render(ifq_metrics_t *r, char *buf, size_t size);

struct rd_kafka_s;
/* Sets gauge{group,topic,partition} to the lag of every partition assigned
 * to the consumer: librdkafka's cached high watermark minus the consumer's
 * position (partitions without a position yet are skipped). Cheap: no
 * network round trip. */
void ifq_metrics_kafka_lag(ifq_metric_t *gauge, struct rd_kafka_s *consumer, const char *group);

/* Default buckets, in seconds: latency from 1 ms to 2 minutes. */
extern const double ifq_metrics_latency_buckets[];
extern const size_t ifq_metrics_latency_nbuckets;

#endif
