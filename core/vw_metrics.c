/*  vw_metrics - see vw_metrics.h. */
#include "vw_metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double vw_histo_bounds[VW_HISTO_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                  0.25,  0.5,    1,     2.5,  5,     10};

void
vw_histo_observe_ms (vw_histo_t *self, double ms)
{
    double s = ms > 0 ? ms / 1000.0 : 0;
    int i = 0;
    while (i < VW_HISTO_BUCKETS && s > vw_histo_bounds[i])
        i++;
    self->counts[i]++;
    self->count++;
    self->sum_s += s;
}

double
vw_histo_quantile_ms (const vw_histo_t *self, double q)
{
    if (!self->count)
        return -1;
    uint64_t want = (uint64_t) ceil (q * (double) self->count), seen = 0;
    if (want < 1)
        want = 1;
    for (int i = 0; i < VW_HISTO_BUCKETS; i++)
        if ((seen += self->counts[i]) >= want)
            return vw_histo_bounds[i] * 1000.0;
    return vw_histo_bounds[VW_HISTO_BUCKETS - 1] * 1000.0;
}

static void s_printf (vw_prom_t *self, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
s_printf (vw_prom_t *self, const char *fmt, ...)
{
    for (int attempt = 0; attempt < 2 && !self->failed; attempt++) {
        va_list args;
        va_start (args, fmt);
        int n = vsnprintf (self->data ? self->data + self->len : NULL,
                           self->data ? self->cap - self->len : 0, fmt, args);
        va_end (args);
        if (n < 0) {
            self->failed = true;
            return;
        }
        if (self->data && self->len + (size_t) n < self->cap) {
            self->len += (size_t) n;
            return;
        }
        size_t cap = self->cap ? self->cap : 4096;
        while (cap <= self->len + (size_t) n)
            cap *= 2;
        char *data = (char *) realloc (self->data, cap);
        if (!data) {
            self->failed = true;
            return;
        }
        self->data = data;
        self->cap = cap;
    }
}

//  A value as Prometheus writes it: integers plainly, +Inf/-Inf/NaN named.
static void
s_value (char *buf, size_t size, double v)
{
    if (isnan (v))
        snprintf (buf, size, "NaN");
    else if (isinf (v))
        snprintf (buf, size, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor (v) && fabs (v) < 1e15)
        snprintf (buf, size, "%.0f", v);
    else
        snprintf (buf, size, "%.17g", v);
}

void
vw_prom_family (vw_prom_t *self, const char *name, const char *type, const char *help)
{
    s_printf (self, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void
vw_prom_sample (vw_prom_t *self, const char *name, const char *label, const char *label_value,
                double value)
{
    char v[40];
    s_value (v, sizeof v, value);
    if (!label) {
        s_printf (self, "%s %s\n", name, v);
        return;
    }
    //  Label values escape backslash, double quote and newline.
    char escaped[256];
    size_t n = 0;
    for (const char *p = label_value; p && *p && n + 2 < sizeof escaped; p++) {
        if (*p == '\\' || *p == '"' || *p == '\n') {
            escaped[n++] = '\\';
            escaped[n++] = *p == '\n' ? 'n' : *p;
        }
        else
            escaped[n++] = *p;
    }
    escaped[n] = 0;
    s_printf (self, "%s{%s=\"%s\"} %s\n", name, label, escaped, v);
}

void
vw_prom_one (vw_prom_t *self, const char *name, const char *type, const char *help, double value)
{
    vw_prom_family (self, name, type, help);
    vw_prom_sample (self, name, NULL, NULL, value);
}

void
vw_prom_histo (vw_prom_t *self, const char *name, const char *help, const vw_histo_t *histo)
{
    vw_prom_family (self, name, "histogram", help);
    uint64_t cumulative = 0;
    for (int i = 0; i < VW_HISTO_BUCKETS; i++) {
        cumulative += histo->counts[i];
        char le[32];
        s_value (le, sizeof le, vw_histo_bounds[i]);
        s_printf (self, "%s_bucket{le=\"%s\"} %llu\n", name, le, (unsigned long long) cumulative);
    }
    s_printf (self, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long) histo->count);
    char sum[40];
    s_value (sum, sizeof sum, histo->sum_s);
    s_printf (self, "%s_sum %s\n%s_count %llu\n", name, sum, name,
              (unsigned long long) histo->count);
}

void
vw_prom_append (vw_prom_t *self, const char *text, size_t len)
{
    if (len)
        s_printf (self, "%.*s", (int) len, text);
}

void
vw_prom_free (vw_prom_t *self)
{
    free (self->data);
    memset (self, 0, sizeof *self);
}
