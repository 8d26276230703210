/*  vw_rollup - the packed form of one agent's roll-up bucket: the
    aggregates of every metric the agent sent in one minute (or hour), one
    row of telemetry_1m (telemetry_1h) per agent and bucket (SPEC §9). One
    row per agent rather than per series: the frames of a pass then cost
    one upsert per agent and bucket instead of one per metric, which is what
    bounded the ack latency (docs/benchmarks.md). The form:
        version  1 byte (1)
        entries  varint count, then each, by increasing series id:
                   series id   varint, the difference to the previous
                               entry's (the first: to 0), never 0
                   count       varint, > 0
                   last_ts     varint, the offset into the bucket (< span)
                   min, max, sum, last   numbers as vw_points writes them
    The reader trusts nothing: counts against the bytes left, ids strictly
    increasing, offsets inside the bucket, min <= max, finite numbers.
*/
#ifndef VW_ROLLUP_H
#define VW_ROLLUP_H

#include <stddef.h>
#include <stdint.h>

#define VW_ROLLUP_VERSION 1

//  The aggregates of one series in one bucket.
typedef struct {
    int64_t sid, count, last_ts;
    double min, max, sum, last;
} vw_rollup_t;

//  Adds b into a (same series and bucket): of two lasts the later one, and
//  of two at the same ts b's (b came later).
void vw_rollup_merge (vw_rollup_t *a, const vw_rollup_t *b);

//  The bytes vw_rollup_encode may write for n entries.
size_t vw_rollup_bound (size_t n);

//  Writes n entries (strictly increasing sid > 0, each last_ts inside
//  [bucket, bucket + span)) to out: the bytes written.
size_t vw_rollup_encode (const vw_rollup_t *entries, size_t n, int64_t bucket, uint8_t *out);

//  Reads a bucket's entries into *entries (grown with realloc; *cap its
//  room), *n the count: 0, or -1 when the bytes are not a roll-up of this
//  bucket and span (or out of memory).
int vw_rollup_decode (const uint8_t *data, size_t size, int64_t bucket, int64_t span,
                      vw_rollup_t **entries, size_t *cap, size_t *n);

#endif
