/*  vw_points: a telemetry frame's points packed by the edge and walked by
    the telemetry actor and the store; hostile bytes are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vw_points.h"

typedef struct {
    char names[64][65];
    int64_t ts[64];
    double values[64];
    size_t count;
} s_seen_t;

static int
s_collect (void *arg, const vw_points_value_t *v)
{
    s_seen_t *seen = (s_seen_t *) arg;
    assert_true (seen->count < 64);
    memcpy (seen->names[seen->count], v->name, v->name_len);
    seen->names[seen->count][v->name_len] = 0;
    seen->ts[seen->count] = v->ts;
    seen->values[seen->count] = v->value;
    seen->count++;
    return 0;
}

static json_t *
s_points (const char *text)
{
    json_error_t error;
    json_t *points = json_loads (text, 0, &error);
    assert_non_null (points);
    return points;
}

static void
test_round_trip (void **state)
{
    (void) state;
    json_t *points = s_points (
        "[{\"ts\":1764230000000,\"metrics\":{\"cpu\":0.31,\"mem_used_mb\":812,\"tunnels\":17}},"
        " {\"ts\":1764230010000,\"metrics\":{\"cpu\":-1e300,\"tunnels\":-18,\"big\":"
        "9007199254740993}},"
        " {\"ts\":1764229990000,\"metrics\":{\"x.y:z-w_0\":0}}]");
    uint8_t *data;
    size_t size;
    vw_points_info_t info;
    assert_int_equal (vw_points_pack (points, &data, &size, &info), 0);
    assert_int_equal (info.points, 3);
    assert_int_equal (info.values, 7);
    assert_int_equal (info.ts_min, 1764229990000);
    assert_int_equal (info.ts_max, 1764230010000);

    s_seen_t seen;
    memset (&seen, 0, sizeof seen);
    vw_points_info_t again;
    assert_int_equal (vw_points_walk (data, size, s_collect, &seen, &again), 0);
    assert_memory_equal (&info, &again, sizeof info);
    assert_int_equal (seen.count, 7);
    assert_string_equal (seen.names[0], "cpu");
    assert_true (seen.values[0] == 0.31);
    assert_string_equal (seen.names[1], "mem_used_mb");
    assert_true (seen.values[1] == 812);
    assert_true (seen.values[2] == 17);
    assert_int_equal (seen.ts[3], 1764230010000);
    assert_true (seen.values[3] == -1e300);
    assert_true (seen.values[4] == -18);
    assert_string_equal (seen.names[5], "big");
    assert_true (seen.values[5] == 9007199254740992.0);  //  as a double holds it
    assert_string_equal (seen.names[6], "x.y:z-w_0");
    //  Short decimals are written as such and read back as the same double.
    json_t *decimals = s_points ("[{\"ts\":1,\"metrics\":{\"a\":0.31,\"b\":-12.5,\"c\":0.00000001,"
                                 "\"d\":0.1234567891,\"e\":1e-300}}]");
    uint8_t *packed;
    size_t packed_size;
    assert_int_equal (vw_points_pack (decimals, &packed, &packed_size, &info), 0);
    s_seen_t back;
    memset (&back, 0, sizeof back);
    assert_int_equal (vw_points_walk (packed, packed_size, s_collect, &back, NULL), 0);
    assert_true (back.values[0] == 0.31);
    assert_true (back.values[1] == -12.5);
    assert_true (back.values[2] == 0.00000001);
    assert_true (back.values[3] == 0.1234567891);  //  10 decimals: as a double
    assert_true (back.values[4] == 1e-300);
    //  Head: version, 5 one-letter names, 1 point, ts, count = 15 bytes.
    //  Values (index + number): a 1+2, b 1+2, c 1+1, d 1+9, e 1+9 = 28.
    assert_int_equal (packed_size, 15 + 28);
    free (packed);
    json_decref (decimals);
    assert_int_equal (seen.ts[6], 1764229990000);
    //  Small integers are small: the third point is 3 bytes of ts and
    //  count, one index and one value byte.
    json_t *one = s_points ("[{\"ts\":5,\"metrics\":{\"a\":17}}]");
    uint8_t *small;
    size_t small_size;
    assert_int_equal (vw_points_pack (one, &small, &small_size, &info), 0);
    //  version, 1 name "a", 1 point: ts 5, 1 value: index 0, 17
    const uint8_t expect[] = {1, 1, 1, 'a', 1, 10, 1, 0, 68};
    assert_int_equal (small_size, sizeof expect);
    assert_memory_equal (small, expect, sizeof expect);
    free (small);
    json_decref (one);
    free (data);
    json_decref (points);
}

static void
test_refused_arrays (void **state)
{
    (void) state;
    const char *bad[] = {
        "[]",
        "{}",
        "[{\"ts\":1,\"metrics\":{}}]",
        "[{\"ts\":1.5,\"metrics\":{\"a\":1}}]",
        "[{\"ts\":1,\"metrics\":{\"a\":\"1\"}}]",
        "[{\"metrics\":{\"a\":1}}]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *points = s_points (bad[i]);
        uint8_t *data;
        size_t size;
        vw_points_info_t info;
        assert_int_equal (vw_points_pack (points, &data, &size, &info), -1);
        assert_null (data);
        json_decref (points);
    }
}

static void
test_hostile_bytes (void **state)
{
    (void) state;
    const uint8_t good[] = {1, 1, 1, 'a', 1, 10, 1, 0, 68};
    assert_int_equal (vw_points_walk (good, sizeof good, NULL, NULL, NULL), 0);
    //  Every truncation is refused, and so is a trailing byte.
    for (size_t len = 0; len < sizeof good; len++)
        assert_int_equal (vw_points_walk (good, len, NULL, NULL, NULL), -1);
    uint8_t longer[sizeof good + 1];
    memcpy (longer, good, sizeof good);
    longer[sizeof good] = 0;
    assert_int_equal (vw_points_walk (longer, sizeof longer, NULL, NULL, NULL), -1);

    const struct {
        uint8_t bytes[24];
        size_t len;
    } bad[] = {
        {{2, 1, 1, 'a', 1, 10, 1, 0, 68}, 9},  //  another version
        {{1, 1, 1, '/', 1, 10, 1, 0, 68}, 9},  //  name outside the grammar
        {{1, 1, 0, 1, 10, 1, 0, 68}, 8},       //  empty name
        {{1, 1, 1, 'a', 1, 10, 1, 1, 68}, 9},  //  index past the names
        {{1, 1, 1, 'a', 1, 10, 0, 0, 68}, 9},  //  a point without values
        {{1, 1, 1, 'a', 0}, 5},                //  no points
        {{1, 1, 1, 'a', 1, 10, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0xf0, 0x7f}, 17},  //  +inf
        {{1, 1, 1, 'a', 1, 10, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f}, 17},  //  NaN
        {{1, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 'a'}, 8},  //  a count past the bytes
        {{1, 1, 1, 'a', 1, 3, 1, 0, 68}, 9},             //  ts below 0
        {{1, 1, 1, 'a', 1, 10, 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
         18},  //  varint over 64 bits
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal (vw_points_walk (bad[i].bytes, bad[i].len, NULL, NULL, NULL), -1);
}

static void
test_varint (void **state)
{
    (void) state;
    const uint64_t values[] = {0, 1, 127, 128, 16383, 16384, UINT64_MAX};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        uint8_t buf[10];
        size_t n = vw_varint_put (buf, values[i]);
        const uint8_t *p = buf;
        uint64_t back;
        assert_int_equal (vw_varint_get (&p, buf + n, &back), 0);
        assert_true (back == values[i]);
        assert_ptr_equal (p, buf + n);
    }
    const int64_t signs[] = {0, -1, 1, INT64_MIN, INT64_MAX};
    for (size_t i = 0; i < sizeof signs / sizeof signs[0]; i++)
        assert_true (vw_unzigzag (vw_zigzag (signs[i])) == signs[i]);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_round_trip),
        cmocka_unit_test (test_refused_arrays),
        cmocka_unit_test (test_hostile_bytes),
        cmocka_unit_test (test_varint),
    };
    return cmocka_run_group_tests_name ("vw_points", tests, NULL, NULL);
}
