/*  vw_simmetrics - made-up gateway metrics for simulated agents and the
    telemetry benchmarks: the first twelve are named like a VPN gateway's
    (cpu, mem_used_mb, tunnels, rx_bytes, tx_bytes, latency_ms, sessions,
    loss_pct, load1, conntrack, disk_used_pct, temp_c), then m12, m13, ...;
    each is a random walk (the byte counters only grow), rounded to the
    decimals a gateway prints (cpu 0.317, temp_c 47.9, counters whole), so
    that what is stored looks like what a fleet sends.
*/
#ifndef VW_SIMMETRICS_H
#define VW_SIMMETRICS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

//  Starting values of n metrics.
void vw_simmetrics_init (double *values, size_t n);
//  One step of every walk; the point's metrics object (new reference).
//  *rng is an xorshift state (not 0).
json_t *vw_simmetrics_step (double *values, size_t n, uint64_t *rng);
//  The name of metric `index`.
void vw_simmetrics_name (size_t index, char *name, size_t size);

#endif
