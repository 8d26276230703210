/*  vw_points - the packed form of one telemetry frame's points.

    The edge validates a telemetry frame (vw_wire) and packs its points once;
    the telemetry actor reads them for its windows and alerts, and the store
    keeps the bytes as they are, one row per frame (SPEC §3, §9). The form:

        version      1 byte (1)
        names        varint count, then each name: varint length, bytes
        points       varint count, then each point:
                       ts     zigzag varint, the difference to the previous
                              point's ts (the first: to 0)
                       values varint count, then each value:
                                varint index into names, then the number

    A number is a varint v: an even v is the integer zigzag(v >> 1) (every
    integral value of magnitude up to 2^53, which a double holds exactly:
    counters and gauges such as tunnels=17 take one or two bytes); v = 1 is
    followed by the 8 bytes of an IEEE 754 double, little-endian; any other
    odd v is a short decimal: with u = v >> 1, the value is
    zigzag⁻¹(u >> 3) / 10^((u & 7) + 1), chosen by the writer only when that
    division gives the very same double (cpu=0.31 takes two bytes, not
    nine). Values are doubles to their readers in every case.

    Varints are LEB128 (7 bits a byte, at most 10 bytes). The reader trusts
    nothing: every count and length is checked against the bytes left, the
    indexes against the names, names against the metric grammar, and a
    number that is not finite is refused.
*/
#ifndef VW_POINTS_H
#define VW_POINTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VW_POINTS_VERSION 1

//  What a packed frame holds.
typedef struct {
    size_t points;
    size_t values;
    int64_t ts_min, ts_max;
} vw_points_info_t;

//  Packs a validated telemetry `points` array (vw_wire's checks passed).
//  *out is malloc'ed; 0, or -1 when out of memory or the array is not what
//  vw_wire accepts.
int vw_points_pack (json_t *points, uint8_t **out, size_t *size, vw_points_info_t *info);

//  One value, as vw_points_walk hands it over: name points into the packed
//  bytes (not NUL-terminated).
typedef struct {
    const char *name;
    size_t name_len;
    uint32_t name_index;  //  the same name has the same index within a frame
    int64_t ts;
    double value;
} vw_points_value_t;

//  Called for every value in order; a non-zero return stops the walk and is
//  returned.
typedef int (vw_points_fn) (void *arg, const vw_points_value_t *value);

//  Walks the values of a packed frame. 0 at the end; -1 when the bytes are
//  not a packed frame (values before the fault may have been handed over:
//  check a frame with a NULL fn first where that matters); or fn's return.
//  info, when not NULL, is filled on success.
int vw_points_walk (const uint8_t *data, size_t size, vw_points_fn *fn, void *arg,
                    vw_points_info_t *info);

//  LEB128 and zigzag, for the other packed forms.
size_t vw_varint_put (uint8_t *out, uint64_t value);  //  out has room for 10 bytes
//  Reads one varint at *p (before end): 0, or -1 (truncated or over 64 bits).
int vw_varint_get (const uint8_t **p, const uint8_t *end, uint64_t *value);
//  A number in the form above (out has room for 10 bytes): the bytes
//  written. vw_number_get reads one at *p: 0, or -1 (truncated, out of
//  range or not finite).
size_t vw_number_put (uint8_t *out, double value);
int vw_number_get (const uint8_t **p, const uint8_t *end, double *value);

static inline uint64_t
vw_zigzag (int64_t v)
{
    return ((uint64_t) v << 1) ^ (uint64_t) (v >> 63);
}
static inline int64_t
vw_unzigzag (uint64_t v)
{
    return (int64_t) (v >> 1) ^ -(int64_t) (v & 1);
}

#endif
