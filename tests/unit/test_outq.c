/*  test_outq - a connection's bounded queue of outgoing frames
    (edge/vw_outq): order, headroom, the byte bound (a refused push queues
    nothing and the queue stays usable), the one-frame exception for an
    empty queue, and that popping makes room again. Under ASan the leak
    check covers clear and destroy with frames still queued.
*/
#include "vw_outq.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
test_order_and_headroom (void **state)
{
    vw_outq_t *q = vw_outq_new (0, 16);  //  unbounded
    assert_non_null (q);
    assert_null (vw_outq_front (q, NULL, NULL));
    vw_outq_pop (q);  //  empty: no-op
    assert_int_equal (vw_outq_push (q, "one", 3, false), 0);
    assert_int_equal (vw_outq_push (q, "\x01\x02", 2, true), 0);
    assert_int_equal (vw_outq_push (q, "", 0, false), 0);
    assert_int_equal (vw_outq_size (q), 3);
    assert_int_equal (vw_outq_bytes (q), 5);

    size_t len = 99;
    bool binary = true;
    unsigned char *p = vw_outq_front (q, &len, &binary);
    assert_non_null (p);
    assert_int_equal (len, 3);
    assert_false (binary);
    assert_memory_equal (p, "one", 3);
    memset (p - 16, 0xAA, 16);  //  the headroom is ours to write
    vw_outq_pop (q);
    p = vw_outq_front (q, &len, &binary);
    assert_int_equal (len, 2);
    assert_true (binary);
    assert_memory_equal (p, "\x01\x02", 2);
    vw_outq_pop (q);
    p = vw_outq_front (q, &len, NULL);
    assert_non_null (p);
    assert_int_equal (len, 0);
    vw_outq_pop (q);
    assert_int_equal (vw_outq_size (q), 0);
    assert_int_equal (vw_outq_bytes (q), 0);
    vw_outq_destroy (&q);
    assert_null (q);
    vw_outq_destroy (&q);  //  twice: no-op
    vw_outq_destroy (NULL);
}

static void
test_bound (void **state)
{
    char block[100];
    memset (block, 'x', sizeof block);
    vw_outq_t *q = vw_outq_new (250, 0);
    assert_int_equal (vw_outq_max (q), 250);
    assert_int_equal (vw_outq_push (q, block, 100, false), 0);
    assert_int_equal (vw_outq_push (q, block, 100, false), 0);
    //  300 > 250: refused, nothing queued.
    assert_int_equal (vw_outq_push (q, block, 100, false), VW_OUTQ_FULL);
    assert_int_equal (vw_outq_size (q), 2);
    assert_int_equal (vw_outq_bytes (q), 200);
    //  Exactly at the bound is allowed.
    assert_int_equal (vw_outq_push (q, block, 50, false), 0);
    assert_int_equal (vw_outq_bytes (q), 250);
    assert_int_equal (vw_outq_push (q, block, 1, false), VW_OUTQ_FULL);
    //  A frame larger than the bound, into a queue that is not empty.
    assert_int_equal (vw_outq_push (q, block, 251, false), VW_OUTQ_FULL);
    //  Popping makes room again.
    vw_outq_pop (q);
    assert_int_equal (vw_outq_bytes (q), 150);
    assert_int_equal (vw_outq_push (q, block, 100, false), 0);
    assert_int_equal (vw_outq_bytes (q), 250);
    //  Cleared: empty, usable, and the memory is gone (ASan's leak check).
    vw_outq_clear (q);
    assert_int_equal (vw_outq_size (q), 0);
    assert_int_equal (vw_outq_bytes (q), 0);
    assert_null (vw_outq_front (q, NULL, NULL));
    assert_int_equal (vw_outq_push (q, block, 10, false), 0);
    vw_outq_destroy (&q);  //  with a frame still queued
}

static void
test_empty_queue_takes_one_large_frame (void **state)
{
    size_t big = 4096;
    unsigned char *data = (unsigned char *) malloc (big);
    for (size_t i = 0; i < big; i++)
        data[i] = (unsigned char) i;
    vw_outq_t *q = vw_outq_new (1024, 8);
    //  Larger than the bound, but nothing else waits: taken.
    assert_int_equal (vw_outq_push (q, data, big, true), 0);
    assert_int_equal (vw_outq_bytes (q), big);
    //  Not even a byte more until it is gone.
    assert_int_equal (vw_outq_push (q, data, 1, true), VW_OUTQ_FULL);
    size_t len = 0;
    unsigned char *p = vw_outq_front (q, &len, NULL);
    assert_int_equal (len, big);
    assert_memory_equal (p, data, big);
    vw_outq_pop (q);
    assert_int_equal (vw_outq_push (q, data, 1024, true), 0);
    assert_int_equal (vw_outq_push (q, data, 1, true), VW_OUTQ_FULL);
    vw_outq_destroy (&q);
    free (data);
}

//  A flood into a bounded queue never holds more than the bound, however
//  many pushes are refused, and every refused push leaves the queue as it
//  was.
static void
test_flood_stays_bounded (void **state)
{
    vw_outq_t *q = vw_outq_new (64 * 1024, 16);
    char frame[1000];
    memset (frame, 'f', sizeof frame);
    size_t accepted = 0, refused = 0;
    for (int i = 0; i < 100000; i++) {
        size_t len = 1 + (size_t) (i * 7919) % sizeof frame;
        size_t before = vw_outq_bytes (q);
        int rc = vw_outq_push (q, frame, len, false);
        if (rc == 0)
            accepted++;
        else {
            assert_int_equal (rc, VW_OUTQ_FULL);
            assert_int_equal (vw_outq_bytes (q), before);
            refused++;
        }
        assert_true (vw_outq_bytes (q) <= 64 * 1024);
        if (i % 10 == 0)
            vw_outq_pop (q);  //  a reader ten times slower than the writer
    }
    assert_true (refused > 0);
    assert_true (accepted > 0);
    vw_outq_destroy (&q);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_order_and_headroom),
        cmocka_unit_test (test_bound),
        cmocka_unit_test (test_empty_queue_takes_one_large_frame),
        cmocka_unit_test (test_flood_stays_bounded),
    };
    return cmocka_run_group_tests_name ("vw_outq", tests, NULL, NULL);
}
