/*  vw_unacked: the agent's telemetry frames until they are acked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "vw_unacked.h"

typedef struct {
    int64_t seqs[16];
    size_t count;
} s_seen_t;

static int
s_each (void *arg, int64_t seq, const void *data, size_t size, int64_t *stamp)
{
    *stamp = seq * 100;
    s_seen_t *seen = (s_seen_t *) arg;
    char text[32];
    snprintf (text, sizeof text, "frame %lld", (long long) seq);
    assert_int_equal (size, strlen (text));
    assert_memory_equal (data, text, size);
    seen->seqs[seen->count++] = seq;
    return seen->count == 16;
}

static void
s_add (vw_unacked_t *u, int64_t seq)
{
    char text[32];
    snprintf (text, sizeof text, "frame %lld", (long long) seq);
    assert_int_equal (vw_unacked_add (u, seq, text, strlen (text)), 0);
}

static void
test_order_ack_and_bound (void **state)
{
    (void) state;
    vw_unacked_t *u = vw_unacked_new (3);
    assert_non_null (u);
    s_add (u, 10);
    s_add (u, 11);
    s_add (u, 12);
    //  Full: the oldest goes.
    s_add (u, 13);
    assert_int_equal (vw_unacked_size (u), 3);
    assert_int_equal (vw_unacked_dropped (u), 1);
    assert_false (vw_unacked_remove (u, 10, NULL));
    //  An ack out of order, then in order.
    assert_true (vw_unacked_remove (u, 12, NULL));
    assert_true (vw_unacked_remove (u, 11, NULL));
    assert_false (vw_unacked_remove (u, 11, NULL));
    s_seen_t seen = {{0}, 0};
    assert_int_equal (vw_unacked_each (u, s_each, &seen), 0);
    s_add (u, 14);
    seen.count = 0;
    assert_int_equal (vw_unacked_each (u, s_each, &seen), 0);
    assert_int_equal (seen.count, 2);
    assert_int_equal (seen.seqs[0], 13);
    assert_int_equal (seen.seqs[1], 14);
    int64_t stamp = 0;
    assert_true (vw_unacked_remove (u, 14, &stamp));
    assert_int_equal (stamp, 1400);
    s_add (u, 15);
    assert_true (vw_unacked_remove (u, 15, &stamp));
    assert_int_equal (stamp, 0);  //  never handed to fn
    vw_unacked_destroy (&u);
    assert_null (u);
    vw_unacked_destroy (&u);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_order_ack_and_bound),
    };
    return cmocka_run_group_tests_name ("vw_unacked", tests, NULL, NULL);
}
