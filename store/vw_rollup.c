/*  vw_rollup - see vw_rollup.h. */
#include "vw_rollup.h"
#include "vw_points.h"

#include <stdlib.h>

void
vw_rollup_merge (vw_rollup_t *a, const vw_rollup_t *b)
{
    if (b->min < a->min)
        a->min = b->min;
    if (b->max > a->max)
        a->max = b->max;
    a->sum += b->sum;
    a->count += b->count;
    if (b->last_ts >= a->last_ts) {
        a->last = b->last;
        a->last_ts = b->last_ts;
    }
}

size_t
vw_rollup_bound (size_t n)
{
    //  version, count; per entry three varints and four numbers.
    return 1 + 10 + n * (3 * 10 + 4 * 10);
}

size_t
vw_rollup_encode (const vw_rollup_t *entries, size_t n, int64_t bucket, uint8_t *out)
{
    size_t at = 0;
    out[at++] = VW_ROLLUP_VERSION;
    at += vw_varint_put (out + at, n);
    int64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        const vw_rollup_t *e = &entries[i];
        at += vw_varint_put (out + at, (uint64_t) (e->sid - prev));
        at += vw_varint_put (out + at, (uint64_t) e->count);
        at += vw_varint_put (out + at, (uint64_t) (e->last_ts - bucket));
        at += vw_number_put (out + at, e->min);
        at += vw_number_put (out + at, e->max);
        at += vw_number_put (out + at, e->sum);
        at += vw_number_put (out + at, e->last);
        prev = e->sid;
    }
    return at;
}

int
vw_rollup_decode (const uint8_t *data, size_t size, int64_t bucket, int64_t span,
                  vw_rollup_t **entries, size_t *cap, size_t *n)
{
    const uint8_t *p = data, *end = data + size;
    uint64_t count;
    *n = 0;
    //  An entry takes at least seven bytes.
    if (size < 2 || *p++ != VW_ROLLUP_VERSION || vw_varint_get (&p, end, &count) ||
        count > (uint64_t) (end - p) / 7)
        return -1;
    if (count > *cap) {
        vw_rollup_t *grown = (vw_rollup_t *) realloc (*entries, count * sizeof *grown);
        if (!grown)
            return -1;
        *entries = grown;
        *cap = count;
    }
    uint64_t sid = 0;
    for (size_t i = 0; i < count; i++) {
        vw_rollup_t *e = &(*entries)[i];
        uint64_t delta, k, offset;
        if (vw_varint_get (&p, end, &delta) || delta == 0 || delta > (uint64_t) INT64_MAX - sid ||
            vw_varint_get (&p, end, &k) || k == 0 || k > (uint64_t) INT64_MAX ||
            vw_varint_get (&p, end, &offset) || offset >= (uint64_t) span ||
            vw_number_get (&p, end, &e->min) || vw_number_get (&p, end, &e->max) ||
            vw_number_get (&p, end, &e->sum) || vw_number_get (&p, end, &e->last) ||
            e->min > e->max)
            return -1;
        sid += delta;
        e->sid = (int64_t) sid;
        e->count = (int64_t) k;
        e->last_ts = bucket + (int64_t) offset;
    }
    if (p != end)
        return -1;
    *n = (size_t) count;
    return 0;
}
