/*  test_ratelimit - keyed token buckets (edge/vw_ratelimit).

    Time is a fake clock: every case passes now_ms explicitly, so nothing
    sleeps or reads the clock. Eviction is observed through behaviour: a key
    whose bucket was evicted comes back with a full burst, a kept key does
    not. The flood case pushes 1,000,000 distinct keys through a small
    limiter; run under ASan, its leak check covers the reused buckets.
*/
#include "vw_ratelimit.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Takes until refused at now_ms; returns how many were allowed.
static int
s_drain (vw_ratelimit_t *rl, const char *key, int64_t now_ms)
{
    int allowed = 0;
    while (vw_ratelimit_take (rl, key, 1, now_ms, NULL)) {
        allowed++;
        assert_true (allowed <= 1000000);
    }
    return allowed;
}

//  Small deterministic PRNG (xorshift64*) so failures reproduce.
static uint64_t
s_rand (uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dULL;
}

//  --------------------------------------------------------------------------

static void
test_new_bad_arguments (void **state)
{
    assert_null (vw_ratelimit_new (0, 10, 10));
    assert_null (vw_ratelimit_new (-1, 10, 10));
    assert_null (vw_ratelimit_new (NAN, 10, 10));
    assert_null (vw_ratelimit_new (INFINITY, 10, 10));
    assert_null (vw_ratelimit_new (1e-9, 10, 10));  //  below resolution
    assert_null (vw_ratelimit_new (10, 0.5, 10));
    assert_null (vw_ratelimit_new (10, NAN, 10));
    assert_null (vw_ratelimit_new (10, INFINITY, 10));
    assert_null (vw_ratelimit_new (10, 10, 0));

    vw_ratelimit_t *rl = vw_ratelimit_new (0.001, 1, 1);
    assert_non_null (rl);
    vw_ratelimit_destroy (&rl);
}

static void
test_destroy_twice (void **state)
{
    vw_ratelimit_t *rl = vw_ratelimit_new (100, 200, 16);
    assert_non_null (rl);
    assert_true (vw_ratelimit_take (rl, "a", 1, 0, NULL));
    vw_ratelimit_destroy (&rl);
    assert_null (rl);
    vw_ratelimit_destroy (&rl);
    assert_null (rl);
    vw_ratelimit_destroy (NULL);
}

static void
test_bad_take_arguments (void **state)
{
    vw_ratelimit_t *rl = vw_ratelimit_new (100, 200, 16);
    int64_t retry = 0;
    assert_false (vw_ratelimit_take (NULL, "a", 1, 0, &retry));
    assert_int_equal (retry, 1000);
    retry = 0;
    assert_false (vw_ratelimit_take (rl, NULL, 1, 0, &retry));
    assert_int_equal (retry, 1000);
    retry = 0;
    assert_false (vw_ratelimit_take (rl, "a", -1, 0, &retry));
    assert_int_equal (retry, 1000);
    assert_false (vw_ratelimit_take (rl, "a", NAN, 0, &retry));
    assert_false (vw_ratelimit_take (rl, "a", INFINITY, 0, &retry));
    assert_false (vw_ratelimit_take (rl, "a", -INFINITY, 0, NULL));
    //  None of those created or drained a bucket.
    assert_int_equal (vw_ratelimit_size (rl), 0);
    assert_int_equal (vw_ratelimit_size (NULL), 0);
    assert_int_equal (s_drain (rl, "a", 0), 200);
    vw_ratelimit_destroy (&rl);
}

static void
test_burst_then_refusal (void **state)
{
    vw_ratelimit_t *rl = vw_ratelimit_new (100, 200, 16);
    for (int i = 0; i < 200; i++)
        assert_true (vw_ratelimit_take (rl, "tok", 1, 5000, NULL));
    int64_t retry = 0;
    assert_false (vw_ratelimit_take (rl, "tok", 1, 5000, &retry));
    assert_int_equal (retry, 10);  //  one token at 100/s
    //  A refusal takes nothing: still exactly 10 ms away.
    assert_false (vw_ratelimit_take (rl, "tok", 1, 5000, &retry));
    assert_int_equal (retry, 10);
    assert_false (vw_ratelimit_take (rl, "tok", 1, 5009, &retry));
    assert_int_equal (retry, 1);
    assert_true (vw_ratelimit_take (rl, "tok", 1, 5010, NULL));
    assert_false (vw_ratelimit_take (rl, "tok", 1, 5010, NULL));
    //  Refill is capped at burst however long the key was idle.
    assert_int_equal (s_drain (rl, "tok", 5010 + 3600 * 1000), 200);
    assert_int_equal (s_drain (rl, "tok", INT64_MAX), 200);
    vw_ratelimit_destroy (&rl);
}

static void
test_steady_rate_sustained (void **state)
{
    //  Greedy client: takes everything it can every millisecond for 10 s.
    vw_ratelimit_t *rl = vw_ratelimit_new (100, 200, 16);
    int allowed = 0;
    for (int64_t t = 0; t <= 10000; t++)
        allowed += s_drain (rl, "k", t);
    assert_int_equal (allowed, 200 + 100 * 10);
    vw_ratelimit_destroy (&rl);

    //  Rates that are not exact in binary floating point stay exact.
    const double rates[] = {3, 7, 0.5, 33.3, 1000, 4321};
    for (size_t i = 0; i < sizeof (rates) / sizeof (rates[0]); i++) {
        rl = vw_ratelimit_new (rates[i], 10, 16);
        allowed = 0;
        for (int64_t t = 0; t <= 20000; t++)
            allowed += s_drain (rl, "k", t);
        assert_int_equal (allowed, 10 + (int) floor (rates[i] * 20 + 1e-9));
        vw_ratelimit_destroy (&rl);
    }

    //  A client that waits exactly retry_after each time gets exactly the rate.
    rl = vw_ratelimit_new (100, 200, 16);
    int64_t t = 0;
    allowed = s_drain (rl, "k", 0);
    while (t < 10000) {
        int64_t retry = 0;
        assert_false (vw_ratelimit_take (rl, "k", 1, t, &retry));
        assert_int_equal (retry, 10);
        t += retry;
        assert_true (vw_ratelimit_take (rl, "k", 1, t, NULL));
        allowed++;
    }
    assert_int_equal (allowed, 1200);
    vw_ratelimit_destroy (&rl);
}

static void
test_retry_after_exact (void **state)
{
    //  Random rates, bursts, costs and gaps: each retry_after is the first
    //  millisecond at which the same take succeeds.
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    for (int round = 0; round < 200; round++) {
        double rate = (double) (s_rand (&seed) % 100000) / 100 + 0.01;
        double burst = (double) (s_rand (&seed) % 50 + 1);
        vw_ratelimit_t *rl = vw_ratelimit_new (rate, burst, 4);
        assert_non_null (rl);
        int64_t now = (int64_t) (s_rand (&seed) % 1000000);
        for (int i = 0; i < 200; i++) {
            double cost = (double) (s_rand (&seed) % 30) / 10;
            if (cost > burst)
                cost = burst;
            int64_t retry = 0;
            if (vw_ratelimit_take (rl, "k", cost, now, &retry)) {
                now += (int64_t) (s_rand (&seed) % 50);
                continue;
            }
            assert_true (retry >= 1);
            if (retry > 1) {
                int64_t again = 0;
                assert_false (vw_ratelimit_take (rl, "k", cost, now + retry - 1, &again));
                assert_int_equal (again, 1);
            }
            now += retry;
            assert_true (vw_ratelimit_take (rl, "k", cost, now, NULL));
        }
        vw_ratelimit_destroy (&rl);
    }

    //  A slow rate: 0.5/s, one token every 2 s.
    vw_ratelimit_t *rl = vw_ratelimit_new (0.5, 1, 4);
    int64_t retry = 0;
    assert_true (vw_ratelimit_take (rl, "k", 1, 0, NULL));
    assert_false (vw_ratelimit_take (rl, "k", 1, 0, &retry));
    assert_int_equal (retry, 2000);
    assert_false (vw_ratelimit_take (rl, "k", 1, 1500, &retry));
    assert_int_equal (retry, 500);
    assert_true (vw_ratelimit_take (rl, "k", 1, 2000, NULL));
    vw_ratelimit_destroy (&rl);

    //  3/s: a token every 333.3 ms, rounded up, never down.
    rl = vw_ratelimit_new (3, 1, 4);
    assert_true (vw_ratelimit_take (rl, "k", 1, 0, NULL));
    assert_false (vw_ratelimit_take (rl, "k", 1, 0, &retry));
    assert_int_equal (retry, 334);
    assert_false (vw_ratelimit_take (rl, "k", 1, 333, NULL));
    assert_true (vw_ratelimit_take (rl, "k", 1, 334, NULL));
    vw_ratelimit_destroy (&rl);
}

static void
test_independent_keys (void **state)
{
    vw_ratelimit_t *rl = vw_ratelimit_new (10, 5, 16);
    assert_int_equal (s_drain (rl, "10.0.0.1", 0), 5);
    assert_int_equal (s_drain (rl, "10.0.0.2", 0), 5);
    assert_int_equal (vw_ratelimit_size (rl), 2);
    assert_true (vw_ratelimit_take (rl, "10.0.0.3", 1, 0, NULL));
    assert_false (vw_ratelimit_take (rl, "10.0.0.1", 1, 0, NULL));
    //  Prefixes and the empty key are distinct keys.
    assert_int_equal (s_drain (rl, "10.0.0.", 0), 5);
    assert_int_equal (s_drain (rl, "", 0), 5);
    assert_int_equal (vw_ratelimit_size (rl), 5);

    //  Keys are copied: the caller's buffer may change afterwards.
    char buf[32];
    snprintf (buf, sizeof (buf), "%s", "token-A");
    assert_int_equal (s_drain (rl, buf, 0), 5);
    snprintf (buf, sizeof (buf), "%s", "token-B");
    assert_int_equal (s_drain (rl, buf, 0), 5);
    assert_false (vw_ratelimit_take (rl, "token-A", 1, 0, NULL));

    //  Long keys (a whole bearer token) work too.
    char longkey[2048];
    memset (longkey, 'x', sizeof (longkey) - 1);
    longkey[sizeof (longkey) - 1] = '\0';
    assert_int_equal (s_drain (rl, longkey, 0), 5);
    longkey[1000] = 'y';
    assert_int_equal (s_drain (rl, longkey, 0), 5);
    vw_ratelimit_destroy (&rl);
}

static void
test_time_backwards (void **state)
{
    vw_ratelimit_t *rl = vw_ratelimit_new (100, 10, 16);
    int64_t retry = 0;

    //  Going back adds nothing: drained at 1000, still empty at 0 and 1000.
    assert_int_equal (s_drain (rl, "k", 1000), 10);
    assert_false (vw_ratelimit_take (rl, "k", 1, 0, &retry));
    assert_int_equal (retry, 1000 + 10);  //  the lag plus one token
    assert_false (vw_ratelimit_take (rl, "k", 1, 1000, &retry));
    assert_int_equal (retry, 10);
    //  ...and coming forward again credits 1000..1010 once, not 0..1010.
    assert_int_equal (s_drain (rl, "k", 1010), 1);
    //  A stale caller that waits its retry_after succeeds.
    assert_false (vw_ratelimit_take (rl, "k", 1, 500, &retry));
    assert_int_equal (retry, 520);
    assert_true (vw_ratelimit_take (rl, "k", 1, 500 + retry, NULL));

    //  Going back removes nothing: a full bucket stays full at an old time,
    //  and what is taken then is gone at the later time.
    assert_true (vw_ratelimit_take (rl, "full", 0, 9000, NULL));
    assert_int_equal (s_drain (rl, "full", 100), 10);
    assert_int_equal (s_drain (rl, "full", 9000), 0);
    assert_int_equal (s_drain (rl, "full", 9100), 10);
    assert_int_equal (s_drain (rl, "other", 9000), 10);
    assert_int_equal (s_drain (rl, "other", -9000), 0);
    assert_int_equal (s_drain (rl, "other", 9100), 10);
    //  Extreme clocks do not overflow.
    assert_int_equal (s_drain (rl, "far", INT64_MIN), 10);
    assert_false (vw_ratelimit_take (rl, "far", 1, INT64_MIN, &retry));
    assert_int_equal (retry, 10);
    assert_int_equal (s_drain (rl, "far", INT64_MAX), 10);
    assert_false (vw_ratelimit_take (rl, "far", 1, INT64_MIN, &retry));
    assert_int_equal (retry, INT64_MAX);
    vw_ratelimit_destroy (&rl);
}

static void
test_cost (void **state)
{
    vw_ratelimit_t *rl = vw_ratelimit_new (10, 20, 16);
    int64_t retry = 0;
    assert_true (vw_ratelimit_take (rl, "k", 8, 0, NULL));
    assert_true (vw_ratelimit_take (rl, "k", 8, 0, NULL));
    assert_false (vw_ratelimit_take (rl, "k", 8, 0, &retry));
    assert_int_equal (retry, 400);  //  4 tokens left, 4 more at 10/s
    assert_true (vw_ratelimit_take (rl, "k", 4, 0, NULL));
    assert_false (vw_ratelimit_take (rl, "k", 8, 399, NULL));
    //  After 400 ms, 4 tokens: the cheap take fits, the dear one waits.
    assert_false (vw_ratelimit_take (rl, "k", 8, 400, &retry));
    assert_int_equal (retry, 400);
    assert_true (vw_ratelimit_take (rl, "k", 0.5, 400, NULL));
    assert_false (vw_ratelimit_take (rl, "k", 4, 400, &retry));
    assert_int_equal (retry, 50);  //  half a token at 10/s
    //  Cost 0 always passes and takes nothing.
    assert_true (vw_ratelimit_take (rl, "k", 0, 400, NULL));
    assert_false (vw_ratelimit_take (rl, "k", 4, 400, &retry));
    assert_int_equal (retry, 50);

    //  cost == burst is allowed from a full bucket...
    assert_true (vw_ratelimit_take (rl, "fresh", 20, 0, NULL));
    //  ...cost > burst never is: retry_after is the time to fill the
    //  bucket, and waiting it still refuses.
    assert_false (vw_ratelimit_take (rl, "fresh", 21, 0, &retry));
    assert_int_equal (retry, 2000);
    assert_false (vw_ratelimit_take (rl, "fresh", 21, 2000, &retry));
    assert_int_equal (retry, 1);
    assert_false (vw_ratelimit_take (rl, "fresh", 1e300, 2000, &retry));
    assert_int_equal (retry, 1);
    //  The refusals took nothing.
    assert_true (vw_ratelimit_take (rl, "fresh", 20, 2000, NULL));
    vw_ratelimit_destroy (&rl);
}

static void
test_lru_order (void **state)
{
    //  burst 2 at 1/s: at a fixed time a bucket with tokens taken stays
    //  non-full, so eviction must fall back to pure LRU order.
    vw_ratelimit_t *rl = vw_ratelimit_new (1, 2, 3);
    assert_true (vw_ratelimit_take (rl, "a", 1, 0, NULL));
    assert_true (vw_ratelimit_take (rl, "b", 1, 0, NULL));
    assert_true (vw_ratelimit_take (rl, "c", 1, 0, NULL));
    assert_true (vw_ratelimit_take (rl, "a", 1, 0, NULL));  //  touch a: b is now LRU
    assert_true (vw_ratelimit_take (rl, "d", 1, 0, NULL));  //  evicts b
    assert_int_equal (vw_ratelimit_size (rl), 3);
    //  a and c kept their state (a fresh bucket would allow these).
    assert_false (vw_ratelimit_take (rl, "a", 1, 0, NULL));
    assert_false (vw_ratelimit_take (rl, "c", 2, 0, NULL));
    //  b was evicted: it comes back with a full burst (evicting d).
    assert_true (vw_ratelimit_take (rl, "b", 2, 0, NULL));
    assert_int_equal (vw_ratelimit_size (rl), 3);
    assert_false (vw_ratelimit_take (rl, "a", 1, 0, NULL));
    assert_false (vw_ratelimit_take (rl, "c", 2, 0, NULL));
    assert_false (vw_ratelimit_take (rl, "b", 1, 0, NULL));
    assert_true (vw_ratelimit_take (rl, "d", 2, 0, NULL));  //  d was the one evicted
    vw_ratelimit_destroy (&rl);

    //  A refused take is a use too: an abuser hammering its key stays
    //  resident and drained while other keys come and go.
    rl = vw_ratelimit_new (1, 2, 2);
    assert_int_equal (s_drain (rl, "abuser", 0), 2);
    for (int i = 0; i < 100; i++) {
        char key[16];
        snprintf (key, sizeof (key), "k%d", i);
        assert_true (vw_ratelimit_take (rl, key, 1, 0, NULL));
        assert_false (vw_ratelimit_take (rl, "abuser", 1, 0, NULL));
    }
    vw_ratelimit_destroy (&rl);
}

static void
test_evicts_full_bucket_first (void **state)
{
    //  LRU order a (drained), b, c; b and c full (cost 0 touches without
    //  taking). A new key evicts b, not the less recently used a, since b
    //  carries no state while evicting a would give it a fresh burst.
    vw_ratelimit_t *rl = vw_ratelimit_new (1, 2, 3);
    assert_int_equal (s_drain (rl, "a", 0), 2);
    assert_true (vw_ratelimit_take (rl, "b", 0, 0, NULL));
    assert_true (vw_ratelimit_take (rl, "c", 0, 0, NULL));
    assert_true (vw_ratelimit_take (rl, "d", 1, 0, NULL));
    assert_int_equal (vw_ratelimit_size (rl), 3);
    assert_false (vw_ratelimit_take (rl, "a", 1, 0, NULL));

    //  A bucket counts as full once it has refilled by the eviction time.
    vw_ratelimit_destroy (&rl);
    rl = vw_ratelimit_new (1, 2, 3);
    assert_int_equal (s_drain (rl, "x", 0), 2);                //  LRU, full at 2000
    assert_true (vw_ratelimit_take (rl, "y", 1, 0, NULL));     //  full at 1000
    assert_int_equal (s_drain (rl, "z", 0), 2);                //  full at 2000
    assert_true (vw_ratelimit_take (rl, "w", 1, 1000, NULL));  //  evicts y
    assert_int_equal (vw_ratelimit_size (rl), 3);
    assert_false (vw_ratelimit_take (rl, "x", 2, 1000, NULL));  //  kept: 1 token
    assert_false (vw_ratelimit_take (rl, "z", 2, 1000, NULL));  //  kept: 1 token
    vw_ratelimit_destroy (&rl);
}

static void
test_max_keys_flood (void **state)
{
    //  A spray of 1,000,000 distinct keys (addresses, random tokens of
    //  varying length) never grows the limiter past max_keys, while a busy
    //  legitimate key touched throughout keeps its state.
    const size_t max_keys = 1000;
    vw_ratelimit_t *rl = vw_ratelimit_new (500, 1000, max_keys);
    assert_non_null (rl);
    assert_int_equal (s_drain (rl, "203.0.113.7", 0), 1000);
    int busy = 0;
    uint64_t seed = 42;
    char key[80];
    for (int i = 0; i < 1000000; i++) {
        int64_t now = i / 1000;  //  1000 new keys per ms
        if (i % 3 == 0)
            snprintf (key, sizeof (key), "198.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        else
            snprintf (key, sizeof (key), "%llx-%.*s", (unsigned long long) s_rand (&seed),
                      (int) (s_rand (&seed) % 40), "0123456789abcdef0123456789abcdef01234567");
        assert_true (vw_ratelimit_take (rl, key, 1, now, NULL));
        assert_true (vw_ratelimit_size (rl) <= max_keys);
        if (i % 100 == 0) {
            //  The busy key, 10 takes/ms, only ever gets what it earned.
            int got = s_drain (rl, "203.0.113.7", now);
            assert_true (got <= 1);
            busy += got;
        }
    }
    assert_int_equal (busy, 499);  //  999 ms at 500/s, never a fresh burst
    assert_int_equal (vw_ratelimit_size (rl), max_keys);
    vw_ratelimit_destroy (&rl);

    //  max_keys 1 works: each new key replaces the only bucket.
    rl = vw_ratelimit_new (1, 1, 1);
    for (int i = 0; i < 1000; i++) {
        snprintf (key, sizeof (key), "%d", i);
        assert_true (vw_ratelimit_take (rl, key, 1, 0, NULL));
        assert_false (vw_ratelimit_take (rl, key, 1, 0, NULL));
        assert_int_equal (vw_ratelimit_size (rl), 1);
    }
    vw_ratelimit_destroy (&rl);
}

static void
test_many_keys_lookup (void **state)
{
    //  100k live keys (the table grows to fit): every key keeps its own state.
    const int n = 100000;
    vw_ratelimit_t *rl = vw_ratelimit_new (1, 3, (size_t) n);
    char key[32];
    for (int i = 0; i < n; i++) {
        snprintf (key, sizeof (key), "key-%d", i);
        assert_true (vw_ratelimit_take (rl, key, (double) (i % 4), 0, NULL));
    }
    assert_int_equal (vw_ratelimit_size (rl), (size_t) n);
    for (int i = 0; i < n; i++) {
        snprintf (key, sizeof (key), "key-%d", i);
        assert_int_equal (s_drain (rl, key, 0), 3 - i % 4);
    }
    assert_int_equal (vw_ratelimit_size (rl), (size_t) n);
    vw_ratelimit_destroy (&rl);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_new_bad_arguments),
        cmocka_unit_test (test_destroy_twice),
        cmocka_unit_test (test_bad_take_arguments),
        cmocka_unit_test (test_burst_then_refusal),
        cmocka_unit_test (test_steady_rate_sustained),
        cmocka_unit_test (test_retry_after_exact),
        cmocka_unit_test (test_independent_keys),
        cmocka_unit_test (test_time_backwards),
        cmocka_unit_test (test_cost),
        cmocka_unit_test (test_lru_order),
        cmocka_unit_test (test_evicts_full_bucket_first),
        cmocka_unit_test (test_max_keys_flood),
        cmocka_unit_test (test_many_keys_lookup),
    };
    return cmocka_run_group_tests_name ("vw_ratelimit", tests, NULL, NULL);
}
