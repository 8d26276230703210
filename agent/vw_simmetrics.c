/*  vw_simmetrics - see vw_simmetrics.h. */
#include "vw_simmetrics.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>

static const struct {
    const char *name;
    double start, step;
    bool counter;
    int decimals;  //  as a gateway reports it (0: an integer)
} s_metrics[] = {
    {"cpu", 0.3, 0.02, false, 3},
    {"mem_used_mb", 812, 4, false, 0},
    {"tunnels", 17, 1, false, 0},
    {"rx_bytes", 1e9, 125000, true, 0},
    {"tx_bytes", 4e8, 60000, true, 0},
    {"latency_ms", 12.5, 0.4, false, 2},
    {"sessions", 240, 3, false, 0},
    {"loss_pct", 0.1, 0.01, false, 3},
    {"load1", 0.8, 0.05, false, 2},
    {"conntrack", 5300, 40, false, 0},
    {"disk_used_pct", 41.2, 0.01, false, 2},
    {"temp_c", 48, 0.2, false, 1},
};
#define S_NAMED (sizeof s_metrics / sizeof s_metrics[0])

void
vw_simmetrics_name (size_t index, char *name, size_t size)
{
    if (index < S_NAMED)
        snprintf (name, size, "%s", s_metrics[index].name);
    else
        snprintf (name, size, "m%zu", index);
}

void
vw_simmetrics_init (double *values, size_t n)
{
    for (size_t i = 0; i < n; i++)
        values[i] = i < S_NAMED ? s_metrics[i].start : 100.0 + (double) i;
}

//  -1..1
static double
s_unit (uint64_t *rng)
{
    *rng ^= *rng >> 12;
    *rng ^= *rng << 25;
    *rng ^= *rng >> 27;
    uint32_t r = (uint32_t) ((*rng * 0x2545F4914F6CDD1DULL) >> 32) % 2001;
    return (double) r / 1000.0 - 1.0;
}

json_t *
vw_simmetrics_step (double *values, size_t n, uint64_t *rng)
{
    json_t *metrics = json_object ();
    for (size_t i = 0; i < n; i++) {
        bool named = i < S_NAMED;
        double step = named ? s_metrics[i].step : 1.0;
        double r = s_unit (rng);
        double v = values[i] + (named && s_metrics[i].counter ? (r + 1.0) : r) * step;
        if (v < 0)
            v = -v;
        //  Rounded as a gateway prints it: 0.317, 12.48, 47.9.
        double scale = pow (10, named ? s_metrics[i].decimals : 0);
        v = round (v * scale) / scale;
        values[i] = v;
        char name[32];
        vw_simmetrics_name (i, name, sizeof name);
        json_object_set_new (metrics, name, json_real (v));
    }
    return metrics;
}
