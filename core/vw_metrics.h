/*  vw_metrics - latency histograms and the Prometheus text exposition
    format 0.0.4 (GET /metrics).

    Each actor keeps its own figures and writes its own metric families
    (one owner per fact); the api edge joins the pieces. vw_histo_t counts
    durations into fixed buckets from 1 ms to 10 s (Prometheus' default
    spread, in seconds, the base unit). vw_prom_t is a growing text buffer
    with helpers that write a family's HELP and TYPE lines and its samples;
    names and help texts are the caller's literals, label values are escaped
    here.
*/
#ifndef VW_METRICS_H
#define VW_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VW_HISTO_BUCKETS 13

typedef struct {
    uint64_t counts[VW_HISTO_BUCKETS + 1];  //  per bucket (not cumulative); the last: over 10 s
    uint64_t count;
    double sum_s;
} vw_histo_t;

//  The buckets' upper bounds, in seconds.
extern const double vw_histo_bounds[VW_HISTO_BUCKETS];

void vw_histo_observe_ms (vw_histo_t *self, double ms);
//  The upper bound (ms) of the bucket holding quantile q (0..1); -1 when
//  empty; over the last bound: the last bound.
double vw_histo_quantile_ms (const vw_histo_t *self, double q);

typedef struct {
    char *data;
    size_t len, cap;
    bool failed;  //  out of memory: the text is incomplete
} vw_prom_t;

//  "# HELP name help" and "# TYPE name type" (counter, gauge, histogram).
void vw_prom_family (vw_prom_t *self, const char *name, const char *type, const char *help);
//  One sample: name{label="value"} v, or name v when label is NULL.
void vw_prom_sample (vw_prom_t *self, const char *name, const char *label, const char *label_value,
                     double value);
//  A family of one sample.
void vw_prom_one (vw_prom_t *self, const char *name, const char *type, const char *help,
                  double value);
//  A whole histogram family (durations in seconds).
void vw_prom_histo (vw_prom_t *self, const char *name, const char *help, const vw_histo_t *histo);
//  Appends raw text (another actor's families).
void vw_prom_append (vw_prom_t *self, const char *text, size_t len);
void vw_prom_free (vw_prom_t *self);

#endif
