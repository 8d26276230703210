/*  vw_rollup: an agent's roll-up bucket packed by the store, merged with a
    pass's sums, and read back; damaged bytes are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vw_rollup.h"

#define MINUTE 60000
#define BUCKET (29403833 * (int64_t) MINUTE)

static size_t
s_encode (const vw_rollup_t *entries, size_t n, uint8_t **out)
{
    *out = (uint8_t *) malloc (vw_rollup_bound (n));
    assert_non_null (*out);
    size_t size = vw_rollup_encode (entries, n, BUCKET, *out);
    assert_true (size <= vw_rollup_bound (n));
    return size;
}

static void
test_round_trip (void **state)
{
    (void) state;
    const vw_rollup_t in[] = {
        {3, 6, BUCKET + 59999, 0.31, 0.95, 3.52, 0.5},
        {4, 1, BUCKET, 812, 812, 812, 812},
        {900000, 2, BUCKET + 10, -1e300, 1.0 / 3, -1e300 + 1.0 / 3, 1.0 / 3},
    };
    uint8_t *data;
    size_t size = s_encode (in, 3, &data);
    //  Short values stay short: the integer entry takes 1 + 1 + 1 + 4 x 2.
    vw_rollup_t *out = NULL;
    size_t cap = 0, n = 0;
    assert_int_equal (vw_rollup_decode (data, size, BUCKET, MINUTE, &out, &cap, &n), 0);
    assert_int_equal (n, 3);
    assert_memory_equal (out, in, sizeof in);
    //  Nothing: a row of no entries is two bytes.
    free (data);
    size = s_encode (in, 0, &data);
    assert_int_equal (size, 2);
    assert_int_equal (vw_rollup_decode (data, size, BUCKET, MINUTE, &out, &cap, &n), 0);
    assert_int_equal (n, 0);
    free (data);
    free (out);
}

static void
test_merge (void **state)
{
    (void) state;
    vw_rollup_t a = {7, 2, BUCKET + 100, 1, 5, 6, 5};
    const vw_rollup_t later = {7, 3, BUCKET + 200, 0, 4, 6, 2};
    vw_rollup_merge (&a, &later);
    assert_int_equal (a.count, 5);
    assert_true (a.min == 0 && a.max == 5 && a.sum == 12 && a.last == 2);
    assert_int_equal (a.last_ts, BUCKET + 200);
    //  An older last does not replace a newer one; one at the same ts does
    //  (it came later).
    const vw_rollup_t older = {7, 1, BUCKET + 50, 9, 9, 9, 9};
    vw_rollup_merge (&a, &older);
    assert_true (a.last == 2 && a.max == 9 && a.count == 6);
    const vw_rollup_t same = {7, 1, BUCKET + 200, 3, 3, 3, 3};
    vw_rollup_merge (&a, &same);
    assert_true (a.last == 3);
}

static void
test_refuses_damage (void **state)
{
    (void) state;
    const vw_rollup_t in[] = {{3, 6, BUCKET + 5, 1, 2, 9, 2}, {5, 1, BUCKET + 6, 4, 4, 4, 4}};
    uint8_t *data;
    size_t size = s_encode (in, 2, &data);
    vw_rollup_t *out = NULL;
    size_t cap = 0, n = 0;
    //  Every truncation, a trailing byte, another version, another bucket.
    for (size_t cut = 0; cut < size; cut++)
        assert_int_equal (vw_rollup_decode (data, cut, BUCKET, MINUTE, &out, &cap, &n), -1);
    uint8_t *longer = (uint8_t *) malloc (size + 1);
    memcpy (longer, data, size);
    longer[size] = 0;
    assert_int_equal (vw_rollup_decode (longer, size + 1, BUCKET, MINUTE, &out, &cap, &n), -1);
    free (longer);
    data[0] = 2;
    assert_int_equal (vw_rollup_decode (data, size, BUCKET, MINUTE, &out, &cap, &n), -1);
    data[0] = 1;
    //  Offsets 5 and 6 are outside a span of 5 ms.
    assert_int_equal (vw_rollup_decode (data, size, BUCKET, 5, &out, &cap, &n), -1);
    free (data);

    //  Hand-written rows: ids not increasing, a zero count, min above max,
    //  a double that is not finite, a count beyond the bytes.
    const uint8_t same_id[] = {1, 2, 3, 1, 0, 2, 2, 2, 2, 0, 1, 0, 2, 2, 2, 2};
    const uint8_t no_count[] = {1, 1, 3, 0, 0, 2, 2, 2, 2};
    const uint8_t min_over_max[] = {1, 1, 3, 1, 0, 4, 2, 2, 2};
    const uint8_t nan[] = {1, 1, 3, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f, 2, 2, 2};
    const uint8_t too_many[] = {1, 0x80, 0x01, 3, 1, 0, 2, 2, 2, 2};
    const struct {
        const uint8_t *bytes;
        size_t size;
    } bad[] = {{same_id, sizeof same_id},
               {no_count, sizeof no_count},
               {min_over_max, sizeof min_over_max},
               {nan, sizeof nan},
               {too_many, sizeof too_many}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal (
            vw_rollup_decode (bad[i].bytes, bad[i].size, BUCKET, MINUTE, &out, &cap, &n), -1);
    //  The same bytes with a proper entry decode.
    const uint8_t good[] = {1, 1, 3, 1, 0, 2, 2, 2, 2};
    assert_int_equal (vw_rollup_decode (good, sizeof good, BUCKET, MINUTE, &out, &cap, &n), 0);
    assert_int_equal (n, 1);
    //  (the number 2 is the integer -1: zigzag)
    assert_true (out[0].sid == 3 && out[0].count == 1 && out[0].last_ts == BUCKET &&
                 out[0].min == -1 && out[0].last == -1);
    free (out);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_round_trip),
        cmocka_unit_test (test_merge),
        cmocka_unit_test (test_refuses_damage),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
