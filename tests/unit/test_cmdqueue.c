/*  test_cmdqueue - the scheduler's command queue (actors/vw_cmdqueue).

    The queue is a pure data structure, so every case drives it directly:
    no actor, no sockets, no clock. The randomized cases use a fixed-seed
    generator so a failure replays exactly. test_model runs ~200k random
    operations in lock-step against a plain-array reference that scans
    everything on each pick; test_perf times 100,000 commands over 10,000
    agents and prints the result without asserting on it.
*/
#include "vw_cmdqueue.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  --------------------------------------------------------------------------
//  Helpers

//  xorshift64*: deterministic, independent of libc's rand ().
static uint64_t s_rng_state;

static void
s_rng_seed (uint64_t seed)
{
    s_rng_state = seed ? seed : 1;
}

static uint32_t
s_rng (uint32_t bound)
{
    s_rng_state ^= s_rng_state >> 12;
    s_rng_state ^= s_rng_state << 25;
    s_rng_state ^= s_rng_state >> 27;
    return (uint32_t) ((s_rng_state * 0x2545F4914F6CDD1DULL) >> 32) % bound;
}

static const char *
s_id (char *buf, size_t size, const char *prefix, int n)
{
    snprintf (buf, size, "%s%d", prefix, n);
    return buf;
}

//  Picks the next command and checks its id (and data when given).
static void
s_expect_next (vw_cmdqueue_t *q, const char *expected)
{
    void *data = (void *) 1;
    const char *id = vw_cmdqueue_next (q, &data);
    if (!expected) {
        assert_null (id);
        assert_null (data);
    }
    else {
        assert_non_null (id);
        assert_string_equal (id, expected);
    }
}

static double
s_now_s (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

//  --------------------------------------------------------------------------
//  Construction and argument checks

static void
test_new_destroy (void **state)
{
    assert_null (vw_cmdqueue_new (0, 4));
    assert_null (vw_cmdqueue_new (1024, 0));
    assert_null (vw_cmdqueue_new (-1, -1));

    vw_cmdqueue_t *q =
        vw_cmdqueue_new (VW_CMDQUEUE_GLOBAL_LIMIT_DEFAULT, VW_CMDQUEUE_AGENT_LIMIT_DEFAULT);
    assert_non_null (q);
    assert_int_equal (vw_cmdqueue_global_limit (q), 1024);
    assert_int_equal (vw_cmdqueue_agent_limit (q), 4);
    assert_int_equal (vw_cmdqueue_size (q), 0);
    assert_null (vw_cmdqueue_next (q, NULL));
    vw_cmdqueue_destroy (&q, NULL);
    assert_null (q);
    vw_cmdqueue_destroy (&q, NULL);  //  safe twice
    vw_cmdqueue_destroy (NULL, NULL);
}

static void
test_bad_args_and_duplicates (void **state)
{
    vw_cmdqueue_t *q = vw_cmdqueue_new (10, 4);
    assert_int_equal (vw_cmdqueue_push (q, NULL, "a", 1, 1, NULL), -1);
    assert_int_equal (vw_cmdqueue_push (q, "", "a", 1, 1, NULL), -1);
    assert_int_equal (vw_cmdqueue_push (q, "c1", NULL, 1, 1, NULL), -1);
    assert_int_equal (vw_cmdqueue_push (q, "c1", "", 1, 1, NULL), -1);
    assert_int_equal (vw_cmdqueue_push (q, "c1", "a", -1, 1, NULL), -1);
    assert_int_equal (vw_cmdqueue_push (q, "c1", "a", 3, 1, NULL), -1);
    assert_int_equal (vw_cmdqueue_push (NULL, "c1", "a", 1, 1, NULL), -1);
    assert_int_equal (vw_cmdqueue_size (q), 0);
    assert_int_equal (vw_cmdqueue_agents (q), 0);  //  refused pushes leave no agent behind

    int x = 1, y = 2;
    assert_int_equal (vw_cmdqueue_push (q, "c1", "a", 1, 1, &x), 0);
    //  Duplicate id, whatever the agent, priority or state.
    assert_int_equal (vw_cmdqueue_push (q, "c1", "b", 0, 2, &y), -1);
    assert_int_equal (vw_cmdqueue_size (q), 1);
    assert_int_equal (vw_cmdqueue_agents (q), 1);
    vw_cmdqueue_set_dispatchable (q, "a", true);
    s_expect_next (q, "c1");
    assert_int_equal (vw_cmdqueue_push (q, "c1", "a", 1, 3, &y), -1);
    assert_int_equal (vw_cmdqueue_park (q, "c1"), 0);
    assert_int_equal (vw_cmdqueue_push (q, "c1", "a", 1, 3, &y), -1);
    assert_int_equal (vw_cmdqueue_unpark (q, "c1"), 0);
    s_expect_next (q, "c1");
    assert_ptr_equal (vw_cmdqueue_done (q, "c1"), &x);
    //  Once gone, the id may be used again.
    assert_int_equal (vw_cmdqueue_push (q, "c1", "a", 1, 4, &y), 0);
    assert_ptr_equal (vw_cmdqueue_lookup (q, "c1"), &y);

    //  Operations on unknown ids and NULLs are refused quietly.
    assert_null (vw_cmdqueue_done (q, "nope"));
    assert_null (vw_cmdqueue_remove (q, "nope"));
    assert_null (vw_cmdqueue_done (q, NULL));
    assert_int_equal (vw_cmdqueue_requeue (q, "nope"), -1);
    assert_int_equal (vw_cmdqueue_park (q, "nope"), -1);
    assert_int_equal (vw_cmdqueue_unpark (q, "nope"), -1);
    assert_int_equal (vw_cmdqueue_state (q, "nope"), VW_CMDQUEUE_ABSENT);
    assert_int_equal (vw_cmdqueue_pending_priority (q, 3), 0);
    assert_int_equal (vw_cmdqueue_pending_priority (q, -1), 0);
    assert_int_equal (vw_cmdqueue_agent_pending (q, "unknown"), 0);
    assert_int_equal (vw_cmdqueue_agent_inflight (q, NULL), 0);
    vw_cmdqueue_set_dispatchable (q, NULL, true);
    vw_cmdqueue_set_dispatchable (q, "", true);
    vw_cmdqueue_set_dispatchable (q, "ghost", false);  //  nothing to remember
    assert_int_equal (vw_cmdqueue_agents (q), 1);
    vw_cmdqueue_destroy (&q, NULL);
}

//  --------------------------------------------------------------------------
//  Ordering

static void
test_priority_order (void **state)
{
    //  One agent, room for everything: order is priority, then seq.
    vw_cmdqueue_t *q = vw_cmdqueue_new (1000, 1000);
    vw_cmdqueue_set_dispatchable (q, "a", true);
    const int prios[] = {2, 1, 0, 2, 0, 1, 1, 2, 0};
    const int n = (int) (sizeof (prios) / sizeof (prios[0]));
    char buf[32];
    for (int i = 0; i < n; i++)
        assert_int_equal (
            vw_cmdqueue_push (q, s_id (buf, sizeof buf, "c", i), "a", prios[i], i, NULL), 0);
    assert_int_equal (vw_cmdqueue_pending (q), 9);
    assert_int_equal (vw_cmdqueue_pending_priority (q, 0), 3);
    assert_int_equal (vw_cmdqueue_pending_priority (q, 1), 3);
    assert_int_equal (vw_cmdqueue_pending_priority (q, 2), 3);
    const char *expected[] = {"c2", "c4", "c8", "c1", "c5", "c6", "c0", "c3", "c7"};
    for (int i = 0; i < n; i++)
        s_expect_next (q, expected[i]);
    s_expect_next (q, NULL);
    assert_int_equal (vw_cmdqueue_inflight (q), 9);
    assert_int_equal (vw_cmdqueue_pending (q), 0);

    //  A long queue on one agent, mixed priorities pushed in random order of
    //  priority: comes out sorted by (priority, seq).
    vw_cmdqueue_t *big = vw_cmdqueue_new (10000, 10000);
    vw_cmdqueue_set_dispatchable (big, "b", true);
    s_rng_seed (7);
    int prio_of[500];
    for (int i = 0; i < 500; i++) {
        prio_of[i] = (int) s_rng (3);
        assert_int_equal (
            vw_cmdqueue_push (big, s_id (buf, sizeof buf, "x", i), "b", prio_of[i], i, &prio_of[i]),
            0);
    }
    int last_prio = 0, last_seq = -1;
    for (int i = 0; i < 500; i++) {
        void *data;
        const char *id = vw_cmdqueue_next (big, &data);
        assert_non_null (id);
        int seq = atoi (id + 1);
        assert_ptr_equal (data, &prio_of[seq]);
        int prio = prio_of[seq];
        assert_true (prio > last_prio || (prio == last_prio && seq > last_seq));
        last_prio = prio;
        last_seq = seq;
        assert_ptr_equal (vw_cmdqueue_done (big, id), &prio_of[seq]);
    }
    assert_null (vw_cmdqueue_next (big, NULL));
    vw_cmdqueue_destroy (&big, NULL);
    vw_cmdqueue_destroy (&q, NULL);
}

static void
test_fifo_across_agents (void **state)
{
    vw_cmdqueue_t *q = vw_cmdqueue_new (1000, 1000);
    vw_cmdqueue_set_dispatchable (q, "a", true);
    vw_cmdqueue_set_dispatchable (q, "b", true);
    vw_cmdqueue_set_dispatchable (q, "c", true);
    //  Same priority, agents interleaved irregularly: seq order wins.
    const char *agents[] = {"b", "a", "a", "c", "b", "c", "a", "b"};
    char buf[32];
    for (int i = 0; i < 8; i++)
        assert_int_equal (
            vw_cmdqueue_push (q, s_id (buf, sizeof buf, "c", i), agents[i], 1, 100 + i, NULL), 0);
    //  A high-priority command pushed last still goes first.
    assert_int_equal (vw_cmdqueue_push (q, "urgent", "c", 0, 200, NULL), 0);
    s_expect_next (q, "urgent");
    for (int i = 0; i < 8; i++)
        s_expect_next (q, s_id (buf, sizeof buf, "c", i));
    s_expect_next (q, NULL);
    assert_int_equal (vw_cmdqueue_agent_inflight (q, "a"), 3);
    assert_int_equal (vw_cmdqueue_agent_inflight (q, "b"), 3);
    assert_int_equal (vw_cmdqueue_agent_inflight (q, "c"), 3);
    vw_cmdqueue_destroy (&q, NULL);
}

//  --------------------------------------------------------------------------
//  Limits

static void
test_per_agent_limit (void **state)
{
    vw_cmdqueue_t *q = vw_cmdqueue_new (1000, 2);
    vw_cmdqueue_set_dispatchable (q, "a", true);
    vw_cmdqueue_set_dispatchable (q, "b", true);
    char buf[32];
    for (int i = 0; i < 5; i++)
        vw_cmdqueue_push (q, s_id (buf, sizeof buf, "a", i), "a", 1, i, NULL);
    vw_cmdqueue_push (q, "b0", "b", 2, 10, NULL);
    //  a0, a1 fill a's slots; the low-priority b0 goes before a2.
    s_expect_next (q, "a0");
    s_expect_next (q, "a1");
    s_expect_next (q, "b0");
    s_expect_next (q, NULL);
    assert_int_equal (vw_cmdqueue_agent_inflight (q, "a"), 2);
    assert_int_equal (vw_cmdqueue_agent_pending (q, "a"), 3);
    vw_cmdqueue_done (q, "a1");  //  data was NULL
    assert_int_equal (vw_cmdqueue_state (q, "a1"), VW_CMDQUEUE_ABSENT);
    s_expect_next (q, "a2");
    s_expect_next (q, NULL);
    vw_cmdqueue_destroy (&q, NULL);
}

//  Random pushes, picks and completions over a few agents; after every step
//  an independent tally must match and never exceed the limits, and a NULL
//  pick must mean nothing could go (no starvation).
static void
s_limits_random (int global_limit, int agent_limit, int nagents, uint64_t seed)
{
    enum { STEPS = 20000, MAXC = STEPS + 1 };
    vw_cmdqueue_t *q = vw_cmdqueue_new (global_limit, agent_limit);
    assert_non_null (q);
    s_rng_seed (seed);
    int *agent_of = (int *) calloc (MAXC, sizeof (int));
    int *inflight_ids = (int *) calloc (MAXC, sizeof (int));
    int *tally = (int *) calloc ((size_t) nagents, sizeof (int));
    int *pending = (int *) calloc ((size_t) nagents, sizeof (int));
    int ninflight = 0, next_id = 0;
    char buf[32], agent[32];
    for (int i = 0; i < nagents; i++)
        vw_cmdqueue_set_dispatchable (q, s_id (agent, sizeof agent, "ag", i), true);

    for (int step = 0; step < STEPS; step++) {
        uint32_t op = s_rng (10);
        if (op < 4) {
            int a = (int) s_rng ((uint32_t) nagents);
            agent_of[next_id] = a;
            assert_int_equal (vw_cmdqueue_push (q, s_id (buf, sizeof buf, "c", next_id),
                                                s_id (agent, sizeof agent, "ag", a),
                                                (int) s_rng (3), next_id, NULL),
                              0);
            pending[a]++;
            next_id++;
        }
        else if (op < 7) {
            const char *id = vw_cmdqueue_next (q, NULL);
            if (id) {
                int c = atoi (id + 1);
                int a = agent_of[c];
                tally[a]++;
                pending[a]--;
                inflight_ids[ninflight++] = c;
                assert_true (tally[a] <= agent_limit);
                assert_true (ninflight <= global_limit);
            }
            else if (ninflight < global_limit) {
                //  Nothing went: every agent with work must be at its limit.
                for (int a = 0; a < nagents; a++)
                    assert_true (pending[a] == 0 || tally[a] == agent_limit);
            }
        }
        else if (ninflight > 0) {
            int k = (int) s_rng ((uint32_t) ninflight);
            int c = inflight_ids[k];
            inflight_ids[k] = inflight_ids[--ninflight];
            vw_cmdqueue_done (q, s_id (buf, sizeof buf, "c", c));
            tally[agent_of[c]]--;
        }
        assert_int_equal (vw_cmdqueue_inflight (q), ninflight);
        assert_true (vw_cmdqueue_inflight (q) <= (size_t) global_limit);
        int a = (int) s_rng ((uint32_t) nagents);
        s_id (agent, sizeof agent, "ag", a);
        assert_int_equal (vw_cmdqueue_agent_inflight (q, agent), tally[a]);
        assert_int_equal (vw_cmdqueue_agent_pending (q, agent), pending[a]);
    }
    free (agent_of);
    free (inflight_ids);
    free (tally);
    free (pending);
    vw_cmdqueue_destroy (&q, NULL);
}

static void
test_per_agent_limit_random (void **state)
{
    s_limits_random (1000, 3, 20, 11);
    s_limits_random (1000, 1, 5, 12);
}

static void
test_global_limit (void **state)
{
    vw_cmdqueue_t *q = vw_cmdqueue_new (5, 4);
    char buf[32], agent[32];
    for (int a = 0; a < 10; a++) {
        vw_cmdqueue_set_dispatchable (q, s_id (agent, sizeof agent, "ag", a), true);
        for (int i = 0; i < 10; i++)
            vw_cmdqueue_push (q, s_id (buf, sizeof buf, "c", a * 10 + i), agent, 1, i * 10 + a,
                              NULL);
    }
    //  Seq i*10+a: the first picks take one command from each of ag0..ag4.
    for (int a = 0; a < 5; a++)
        s_expect_next (q, s_id (buf, sizeof buf, "c", a * 10));
    s_expect_next (q, NULL);
    assert_int_equal (vw_cmdqueue_inflight (q), 5);
    vw_cmdqueue_done (q, "c20");
    assert_int_equal (vw_cmdqueue_state (q, "c20"), VW_CMDQUEUE_ABSENT);
    s_expect_next (q, "c50");  //  ag5's first, seq 5
    s_expect_next (q, NULL);
    //  Park frees a global slot as well.
    assert_int_equal (vw_cmdqueue_park (q, "c0"), 0);
    s_expect_next (q, "c60");
    s_expect_next (q, NULL);
    vw_cmdqueue_destroy (&q, NULL);

    s_limits_random (7, 4, 30, 13);
    s_limits_random (1, 2, 4, 14);
}

//  --------------------------------------------------------------------------
//  Dispatchable agents

static void
test_undispatchable_holds (void **state)
{
    vw_cmdqueue_t *q = vw_cmdqueue_new (100, 4);
    //  "off" has commands but was never told it is online.
    vw_cmdqueue_push (q, "o1", "off", 1, 1, NULL);
    vw_cmdqueue_push (q, "o2", "off", 0, 3, NULL);
    vw_cmdqueue_push (q, "n1", "on", 1, 2, NULL);
    vw_cmdqueue_push (q, "n2", "on", 1, 4, NULL);
    vw_cmdqueue_push (q, "o3", "off", 1, 5, NULL);
    vw_cmdqueue_set_dispatchable (q, "on", true);
    assert_false (vw_cmdqueue_dispatchable (q, "off"));
    assert_true (vw_cmdqueue_dispatchable (q, "on"));
    s_expect_next (q, "n1");
    s_expect_next (q, "n2");
    s_expect_next (q, NULL);
    assert_int_equal (vw_cmdqueue_agent_pending (q, "off"), 3);
    assert_int_equal (vw_cmdqueue_pending (q), 3);

    //  More work for "on", then "off" comes online: release in global order.
    vw_cmdqueue_push (q, "n3", "on", 1, 6, NULL);
    vw_cmdqueue_push (q, "n4", "on", 0, 7, NULL);
    vw_cmdqueue_set_dispatchable (q, "off", true);
    s_expect_next (q, "o2");  //  high, seq 3
    s_expect_next (q, "n4");  //  high, seq 7
    s_expect_next (q, "o1");  //  normal, seq 1
    s_expect_next (q, "o3");  //  normal, seq 5
    s_expect_next (q, "n3");  //  normal, seq 6
    s_expect_next (q, NULL);

    //  Going into maintenance with commands in flight: they stay counted
    //  (slots held) until done or park; new pending ones wait.
    vw_cmdqueue_set_dispatchable (q, "on", false);
    assert_int_equal (vw_cmdqueue_agent_inflight (q, "on"), 4);
    assert_int_equal (vw_cmdqueue_inflight (q), 7);
    vw_cmdqueue_push (q, "n5", "on", 0, 8, NULL);
    vw_cmdqueue_done (q, "n1");
    assert_int_equal (vw_cmdqueue_state (q, "n1"), VW_CMDQUEUE_ABSENT);
    s_expect_next (q, NULL);
    assert_int_equal (vw_cmdqueue_agent_inflight (q, "on"), 3);

    //  Reconnect: the caller parks the in-flight ones and unparks them; they
    //  go again in their original places, before n5 where the seq says so.
    assert_int_equal (vw_cmdqueue_park (q, "n2"), 0);
    assert_int_equal (vw_cmdqueue_park (q, "n3"), 0);
    assert_int_equal (vw_cmdqueue_park (q, "n4"), 0);
    assert_int_equal (vw_cmdqueue_agent_inflight (q, "on"), 0);
    assert_int_equal (vw_cmdqueue_agent_parked (q, "on"), 3);
    assert_int_equal (vw_cmdqueue_unpark (q, "n2"), 0);
    assert_int_equal (vw_cmdqueue_unpark (q, "n3"), 0);
    assert_int_equal (vw_cmdqueue_unpark (q, "n4"), 0);
    s_expect_next (q, NULL);  //  still in maintenance
    vw_cmdqueue_set_dispatchable (q, "on", true);
    s_expect_next (q, "n4");  //  high, seq 7
    s_expect_next (q, "n5");  //  high, seq 8
    s_expect_next (q, "n2");  //  normal, seq 4
    s_expect_next (q, "n3");  //  normal, seq 6
    s_expect_next (q, NULL);
    vw_cmdqueue_destroy (&q, NULL);
}

static void
test_agent_records_collected (void **state)
{
    vw_cmdqueue_t *q = vw_cmdqueue_new (100, 4);
    vw_cmdqueue_set_dispatchable (q, "a", true);
    assert_int_equal (vw_cmdqueue_agents (q), 1);  //  remembered while online
    vw_cmdqueue_push (q, "c1", "a", 1, 1, NULL);
    vw_cmdqueue_push (q, "c2", "b", 1, 2, NULL);
    assert_int_equal (vw_cmdqueue_agents (q), 2);
    s_expect_next (q, "c1");
    vw_cmdqueue_set_dispatchable (q, "a", false);
    assert_int_equal (vw_cmdqueue_agents (q), 2);  //  holds c1 in flight
    vw_cmdqueue_done (q, "c1");
    assert_int_equal (vw_cmdqueue_agents (q), 1);
    assert_ptr_equal (vw_cmdqueue_remove (q, "c2"), NULL);
    assert_int_equal (vw_cmdqueue_state (q, "c2"), VW_CMDQUEUE_ABSENT);
    assert_int_equal (vw_cmdqueue_agents (q), 0);
    vw_cmdqueue_destroy (&q, NULL);
}

//  --------------------------------------------------------------------------
//  Remove, done, park, requeue

static void
test_remove (void **state)
{
    vw_cmdqueue_t *q = vw_cmdqueue_new (100, 1);
    int d[6];
    char buf[32];
    for (int i = 0; i < 6; i++)
        vw_cmdqueue_push (q, s_id (buf, sizeof buf, "c", i), "a", 1, i, &d[i]);
    vw_cmdqueue_set_dispatchable (q, "a", true);
    //  Cancel the head and one in the middle while pending.
    assert_ptr_equal (vw_cmdqueue_remove (q, "c0"), &d[0]);
    assert_ptr_equal (vw_cmdqueue_remove (q, "c3"), &d[3]);
    assert_null (vw_cmdqueue_remove (q, "c3"));
    assert_int_equal (vw_cmdqueue_pending (q), 4);
    assert_int_equal (vw_cmdqueue_agent_pending (q, "a"), 4);
    void *data;
    assert_string_equal (vw_cmdqueue_next (q, &data), "c1");
    assert_ptr_equal (data, &d[1]);
    //  In flight: remove refuses (use done); the command is untouched.
    assert_null (vw_cmdqueue_remove (q, "c1"));
    assert_int_equal (vw_cmdqueue_state (q, "c1"), VW_CMDQUEUE_INFLIGHT);
    //  Parked: remove drops it (cancel or expiry during backoff).
    assert_int_equal (vw_cmdqueue_park (q, "c1"), 0);
    assert_ptr_equal (vw_cmdqueue_remove (q, "c1"), &d[1]);
    assert_int_equal (vw_cmdqueue_parked (q), 0);
    s_expect_next (q, "c2");
    assert_ptr_equal (vw_cmdqueue_done (q, "c2"), &d[2]);
    s_expect_next (q, "c4");
    assert_ptr_equal (vw_cmdqueue_done (q, "c4"), &d[4]);
    s_expect_next (q, "c5");
    assert_ptr_equal (vw_cmdqueue_done (q, "c5"), &d[5]);
    assert_int_equal (vw_cmdqueue_size (q), 0);
    vw_cmdqueue_destroy (&q, NULL);
}

static void
test_done_unblocks (void **state)
{
    vw_cmdqueue_t *q = vw_cmdqueue_new (2, 1);
    int d[4];
    vw_cmdqueue_set_dispatchable (q, "a", true);
    vw_cmdqueue_set_dispatchable (q, "b", true);
    vw_cmdqueue_push (q, "a1", "a", 1, 1, &d[0]);
    vw_cmdqueue_push (q, "a2", "a", 1, 2, &d[1]);
    vw_cmdqueue_push (q, "b1", "b", 1, 3, &d[2]);
    vw_cmdqueue_push (q, "b2", "b", 1, 4, &d[3]);
    s_expect_next (q, "a1");
    s_expect_next (q, "b1");
    s_expect_next (q, NULL);
    //  done on a pending command is refused and changes nothing.
    assert_null (vw_cmdqueue_done (q, "a2"));
    assert_int_equal (vw_cmdqueue_state (q, "a2"), VW_CMDQUEUE_PENDING);
    assert_ptr_equal (vw_cmdqueue_done (q, "b1"), &d[2]);
    assert_null (vw_cmdqueue_done (q, "b1"));
    s_expect_next (q, "b2");
    s_expect_next (q, NULL);
    assert_ptr_equal (vw_cmdqueue_done (q, "a1"), &d[0]);
    s_expect_next (q, "a2");
    assert_int_equal (vw_cmdqueue_inflight (q), 2);
    assert_int_equal (vw_cmdqueue_pending (q), 0);
    vw_cmdqueue_destroy (&q, NULL);
}

static void
test_park_unpark (void **state)
{
    vw_cmdqueue_t *q = vw_cmdqueue_new (100, 1);
    vw_cmdqueue_set_dispatchable (q, "a", true);
    char buf[32];
    for (int i = 1; i <= 5; i++)
        vw_cmdqueue_push (q, s_id (buf, sizeof buf, "c", i), "a", 1, i, NULL);
    s_expect_next (q, "c1");
    //  park only from in flight; unpark only from parked.
    assert_int_equal (vw_cmdqueue_park (q, "c2"), -1);
    assert_int_equal (vw_cmdqueue_unpark (q, "c1"), -1);
    assert_int_equal (vw_cmdqueue_park (q, "c1"), 0);
    assert_int_equal (vw_cmdqueue_park (q, "c1"), -1);
    assert_int_equal (vw_cmdqueue_state (q, "c1"), VW_CMDQUEUE_PARKED);
    assert_int_equal (vw_cmdqueue_parked (q), 1);
    assert_int_equal (vw_cmdqueue_inflight (q), 0);
    assert_int_equal (vw_cmdqueue_pending (q), 4);
    assert_null (vw_cmdqueue_done (q, "c1"));  //  not in flight
    //  Its slot is free while it waits out the backoff.
    s_expect_next (q, "c2");
    vw_cmdqueue_done (q, "c2");
    //  Back to pending: it goes before c3 (its seq is older).
    assert_int_equal (vw_cmdqueue_unpark (q, "c1"), 0);
    assert_int_equal (vw_cmdqueue_parked (q), 0);
    assert_int_equal (vw_cmdqueue_pending (q), 4);
    s_expect_next (q, "c1");
    vw_cmdqueue_done (q, "c1");
    s_expect_next (q, "c3");
    //  Parked behind newer commands of another priority keeps its own.
    assert_int_equal (vw_cmdqueue_park (q, "c3"), 0);
    vw_cmdqueue_push (q, "h1", "a", 0, 10, NULL);
    assert_int_equal (vw_cmdqueue_unpark (q, "c3"), 0);
    s_expect_next (q, "h1");
    vw_cmdqueue_done (q, "h1");
    s_expect_next (q, "c3");
    vw_cmdqueue_destroy (&q, NULL);
}

static void
test_requeue (void **state)
{
    vw_cmdqueue_t *q = vw_cmdqueue_new (100, 2);
    vw_cmdqueue_set_dispatchable (q, "a", true);
    vw_cmdqueue_set_dispatchable (q, "b", true);
    vw_cmdqueue_push (q, "a1", "a", 1, 1, NULL);
    vw_cmdqueue_push (q, "a2", "a", 1, 2, NULL);
    vw_cmdqueue_push (q, "b3", "b", 1, 3, NULL);
    vw_cmdqueue_push (q, "a4", "a", 1, 4, NULL);
    s_expect_next (q, "a1");
    s_expect_next (q, "a2");
    s_expect_next (q, "b3");
    assert_int_equal (vw_cmdqueue_requeue (q, "a4"), -1);  //  pending, not in flight
    assert_int_equal (vw_cmdqueue_requeue (q, "a2"), 0);
    assert_int_equal (vw_cmdqueue_requeue (q, "a2"), -1);
    assert_int_equal (vw_cmdqueue_state (q, "a2"), VW_CMDQUEUE_PENDING);
    assert_int_equal (vw_cmdqueue_agent_inflight (q, "a"), 1);
    assert_int_equal (vw_cmdqueue_agent_pending (q, "a"), 2);
    //  a2 retakes its place ahead of a4.
    s_expect_next (q, "a2");
    s_expect_next (q, NULL);
    vw_cmdqueue_requeue (q, "a1");
    vw_cmdqueue_requeue (q, "b3");
    s_expect_next (q, "a1");
    s_expect_next (q, "b3");
    s_expect_next (q, NULL);
    vw_cmdqueue_destroy (&q, NULL);
}

//  --------------------------------------------------------------------------
//  Destroy and data

static int s_freed;

static void
s_free_data (void *data)
{
    s_freed++;
    free (data);
}

static void
test_destroy_frees_data (void **state)
{
    vw_cmdqueue_t *q = vw_cmdqueue_new (100, 4);
    vw_cmdqueue_set_dispatchable (q, "a", true);
    char buf[32];
    for (int i = 0; i < 10; i++)
        vw_cmdqueue_push (q, s_id (buf, sizeof buf, "c", i), i < 5 ? "a" : "b", 1, i, malloc (16));
    vw_cmdqueue_push (q, "nodata", "b", 1, 99, NULL);
    s_expect_next (q, "c0");
    s_expect_next (q, "c1");
    vw_cmdqueue_park (q, "c1");
    s_freed = 0;
    vw_cmdqueue_destroy (&q, s_free_data);  //  pending, in flight and parked
    assert_int_equal (s_freed, 10);
    assert_null (q);
}

//  --------------------------------------------------------------------------
//  Backoff

static void
test_backoff (void **state)
{
    const int64_t expected[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000, 60000};
    for (int attempt = 1; attempt <= 10; attempt++) {
        int64_t base = expected[attempt - 1];
        assert_int_equal (vw_cmdqueue_backoff_ms (attempt, 0.0), base);
        assert_int_equal (vw_cmdqueue_backoff_ms (attempt, 1.0), base * 6 / 5);
        assert_int_equal (vw_cmdqueue_backoff_ms (attempt, -1.0), base * 4 / 5);
        assert_int_equal (vw_cmdqueue_backoff_ms (attempt, 0.5), base * 11 / 10);
    }
    assert_int_equal (vw_cmdqueue_backoff_ms (6, 1.0), 38400);
    assert_int_equal (vw_cmdqueue_backoff_ms (7, 1.0), 72000);
    assert_int_equal (vw_cmdqueue_backoff_ms (7, -1.0), 48000);
    //  Out-of-range input is clamped, never undefined.
    assert_int_equal (vw_cmdqueue_backoff_ms (0, 0.0), 1000);
    assert_int_equal (vw_cmdqueue_backoff_ms (-5, 0.0), 1000);
    assert_int_equal (vw_cmdqueue_backoff_ms (64, 0.0), 60000);
    assert_int_equal (vw_cmdqueue_backoff_ms (INT_MAX, 0.0), 60000);
    assert_int_equal (vw_cmdqueue_backoff_ms (1, 7.0), 1200);
    assert_int_equal (vw_cmdqueue_backoff_ms (1, -7.0), 800);
    assert_int_equal (vw_cmdqueue_backoff_ms (1, NAN), 1000);
    assert_int_equal (vw_cmdqueue_backoff_ms (1, INFINITY), 1200);
    //  Every jitter in range stays within ±20 %.
    for (int i = 0; i <= 200; i++) {
        double j = -1.0 + i / 100.0;
        int64_t ms = vw_cmdqueue_backoff_ms (3, j);
        assert_true (ms >= 3200 && ms <= 4800);
    }
}

static void
test_jitter (void **state)
{
    double sum = 0, lo = 1, hi = -1;
    const int n = 20000;
    for (int i = 0; i < n; i++) {
        double j = vw_cmdqueue_jitter ();
        assert_true (j >= -1.0 && j <= 1.0);
        sum += j;
        if (j < lo)
            lo = j;
        if (j > hi)
            hi = j;
    }
    //  Uniform on [-1, 1]: mean 0, sd of the mean ~0.004.
    assert_true (fabs (sum / n) < 0.05);
    assert_true (lo < -0.99 && hi > 0.99);
    int64_t ms = vw_cmdqueue_backoff_ms (2, vw_cmdqueue_jitter ());
    assert_true (ms >= 1600 && ms <= 2400);
}

//  --------------------------------------------------------------------------
//  Randomized model test: lock-step against a reference that keeps every
//  command in a flat array and scans it all on each pick.

typedef enum { M_ABSENT, M_PENDING, M_INFLIGHT, M_PARKED } m_state_t;

typedef struct {
    m_state_t state;
    int agent;
    int priority;
    int64_t seq;
} m_item_t;

typedef struct {
    int global_limit;
    int agent_limit;
    int nagents;
    m_item_t *items;  //  by command number; data pointer is &items[k]
    int nitems;
    int *live;  //  command numbers not absent
    int *live_pos;
    int nlive;
    int *sub[4];  //  command numbers in flight / parked, to aim ops at them
    int *sub_pos;
    int nsub[4];
    bool *dispatchable;
    int *agent_inflight;
    int inflight;
} m_model_t;

static void
m_live_add (m_model_t *m, int k)
{
    m->live_pos[k] = m->nlive;
    m->live[m->nlive++] = k;
}

//  Moves command k to a new state, keeping the in-flight and parked lists.
static void
m_set (m_model_t *m, int k, m_state_t state)
{
    m_state_t old = m->items[k].state;
    if (old == M_INFLIGHT || old == M_PARKED) {
        int pos = m->sub_pos[k];
        int last = m->sub[old][--m->nsub[old]];
        m->sub[old][pos] = last;
        m->sub_pos[last] = pos;
    }
    if (state == M_INFLIGHT || state == M_PARKED) {
        m->sub_pos[k] = m->nsub[state];
        m->sub[state][m->nsub[state]++] = k;
    }
    m->items[k].state = state;
}

static void
m_live_del (m_model_t *m, int k)
{
    m_set (m, k, M_ABSENT);
    int pos = m->live_pos[k];
    int last = m->live[--m->nlive];
    m->live[pos] = last;
    m->live_pos[last] = pos;
}

//  Mostly a command in `state`, sometimes any live one (wrong-state calls).
static int
m_pick (m_model_t *m, m_state_t state)
{
    if (m->nsub[state] && s_rng (5) != 0)
        return m->sub[state][s_rng ((uint32_t) m->nsub[state])];
    return m->nlive ? m->live[s_rng ((uint32_t) m->nlive)] : -1;
}

//  The reference pick: a full scan.
static int
m_next (m_model_t *m)
{
    if (m->inflight >= m->global_limit)
        return -1;
    int best = -1;
    for (int i = 0; i < m->nlive; i++) {
        m_item_t *it = &m->items[m->live[i]];
        if (it->state != M_PENDING || !m->dispatchable[it->agent] ||
            m->agent_inflight[it->agent] >= m->agent_limit)
            continue;
        if (best < 0 || it->priority < m->items[best].priority ||
            (it->priority == m->items[best].priority && it->seq < m->items[best].seq))
            best = m->live[i];
    }
    return best;
}

static void
m_check (m_model_t *m, vw_cmdqueue_t *q, bool per_agent)
{
    size_t pending = 0, parked = 0, by_prio[3] = {0, 0, 0};
    for (int i = 0; i < m->nlive; i++) {
        m_item_t *it = &m->items[m->live[i]];
        if (it->state == M_PENDING) {
            pending++;
            by_prio[it->priority]++;
        }
        else if (it->state == M_PARKED)
            parked++;
    }
    assert_int_equal (vw_cmdqueue_pending (q), pending);
    assert_int_equal (vw_cmdqueue_parked (q), parked);
    assert_int_equal (vw_cmdqueue_inflight (q), m->inflight);
    assert_int_equal (vw_cmdqueue_size (q), m->nlive);
    for (int p = 0; p < 3; p++)
        assert_int_equal (vw_cmdqueue_pending_priority (q, p), by_prio[p]);
    assert_true (m->inflight <= m->global_limit);
    if (!per_agent)
        return;
    int *apending = (int *) calloc ((size_t) m->nagents, sizeof (int));
    int *aparked = (int *) calloc ((size_t) m->nagents, sizeof (int));
    for (int i = 0; i < m->nlive; i++) {
        m_item_t *it = &m->items[m->live[i]];
        if (it->state == M_PENDING)
            apending[it->agent]++;
        else if (it->state == M_PARKED)
            aparked[it->agent]++;
    }
    size_t remembered = 0;
    char agent[32];
    for (int a = 0; a < m->nagents; a++) {
        s_id (agent, sizeof agent, "ag", a);
        assert_int_equal (vw_cmdqueue_agent_pending (q, agent), apending[a]);
        assert_int_equal (vw_cmdqueue_agent_parked (q, agent), aparked[a]);
        assert_int_equal (vw_cmdqueue_agent_inflight (q, agent), m->agent_inflight[a]);
        assert_int_equal (vw_cmdqueue_dispatchable (q, agent), m->dispatchable[a]);
        assert_true (m->agent_inflight[a] <= m->agent_limit);
        if (m->dispatchable[a] || apending[a] || aparked[a] || m->agent_inflight[a])
            remembered++;
    }
    assert_int_equal (vw_cmdqueue_agents (q), remembered);
    free (apending);
    free (aparked);
}

static void
s_model_run (int global_limit, int agent_limit, int nagents, int ops, int target_live,
             uint64_t seed)
{
    vw_cmdqueue_t *q = vw_cmdqueue_new (global_limit, agent_limit);
    assert_non_null (q);
    m_model_t m = {.global_limit = global_limit, .agent_limit = agent_limit, .nagents = nagents};
    m.items = (m_item_t *) calloc ((size_t) ops + 1, sizeof (m_item_t));
    m.live = (int *) calloc ((size_t) ops + 1, sizeof (int));
    m.live_pos = (int *) calloc ((size_t) ops + 1, sizeof (int));
    m.sub[M_INFLIGHT] = (int *) calloc ((size_t) ops + 1, sizeof (int));
    m.sub[M_PARKED] = (int *) calloc ((size_t) ops + 1, sizeof (int));
    m.sub_pos = (int *) calloc ((size_t) ops + 1, sizeof (int));
    m.dispatchable = (bool *) calloc ((size_t) nagents, sizeof (bool));
    m.agent_inflight = (int *) calloc ((size_t) nagents, sizeof (int));
    s_rng_seed (seed);
    char buf[32], agent[32];
    int64_t seq = 0;
    size_t picks = 0, nulls = 0;

    for (int op = 0; op < ops; op++) {
        uint32_t r = s_rng (100);
        //  Keep the population near target_live so the reference stays cheap.
        if (m.nlive < target_live / 4)
            r = r % 30;
        //  The command the state-changing ops act on: mostly one in the state
        //  the op expects, sometimes any (wrong-state calls must be refused).
        int k = r >= 55 && r < 78   ? m_pick (&m, M_INFLIGHT)
                : r >= 78 && r < 85 ? m_pick (&m, M_PARKED)
                : m.nlive           ? m.live[s_rng ((uint32_t) m.nlive)]
                                    : -1;
        m_item_t *it = k >= 0 ? &m.items[k] : NULL;
        const char *cid = k >= 0 ? s_id (buf, sizeof buf, "c", k) : "none";

        if (r < 30 && m.nlive < target_live) {  //  push
            int n = m.nitems++;
            m_item_t *ni = &m.items[n];
            ni->agent = (int) s_rng ((uint32_t) nagents);
            ni->priority = (int) s_rng (3);
            ni->seq = ++seq;
            assert_int_equal (vw_cmdqueue_push (q, s_id (buf, sizeof buf, "c", n),
                                                s_id (agent, sizeof agent, "ag", ni->agent),
                                                ni->priority, ni->seq, ni),
                              0);
            ni->state = M_PENDING;
            m_live_add (&m, n);
        }
        else if (r < 32) {  //  duplicate push
            if (it)
                assert_int_equal (vw_cmdqueue_push (q, cid, "ag0", 0, ++seq, NULL), -1);
        }
        else if (r < 55) {  //  pick
            int expect = m_next (&m);
            void *data;
            const char *id = vw_cmdqueue_next (q, &data);
            if (expect < 0) {
                assert_null (id);
                nulls++;
            }
            else {
                assert_non_null (id);
                assert_string_equal (id, s_id (buf, sizeof buf, "c", expect));
                assert_ptr_equal (data, &m.items[expect]);
                m_set (&m, expect, M_INFLIGHT);
                m.agent_inflight[m.items[expect].agent]++;
                m.inflight++;
                picks++;
            }
        }
        else if (r < 67) {  //  done
            if (!it)
                continue;
            void *data = vw_cmdqueue_done (q, cid);
            if (it->state == M_INFLIGHT) {
                assert_ptr_equal (data, it);
                m.agent_inflight[it->agent]--;
                m.inflight--;
                m_live_del (&m, k);
            }
            else
                assert_null (data);
        }
        else if (r < 72) {  //  requeue
            if (!it)
                continue;
            int rc = vw_cmdqueue_requeue (q, cid);
            assert_int_equal (rc, it->state == M_INFLIGHT ? 0 : -1);
            if (rc == 0) {
                m_set (&m, k, M_PENDING);
                m.agent_inflight[it->agent]--;
                m.inflight--;
            }
        }
        else if (r < 78) {  //  park
            if (!it)
                continue;
            int rc = vw_cmdqueue_park (q, cid);
            assert_int_equal (rc, it->state == M_INFLIGHT ? 0 : -1);
            if (rc == 0) {
                m_set (&m, k, M_PARKED);
                m.agent_inflight[it->agent]--;
                m.inflight--;
            }
        }
        else if (r < 85) {  //  unpark
            if (!it)
                continue;
            int rc = vw_cmdqueue_unpark (q, cid);
            assert_int_equal (rc, it->state == M_PARKED ? 0 : -1);
            if (rc == 0)
                m_set (&m, k, M_PENDING);
        }
        else if (r < 91) {  //  remove (cancel, expire)
            if (!it)
                continue;
            void *data = vw_cmdqueue_remove (q, cid);
            if (it->state == M_PENDING || it->state == M_PARKED) {
                assert_ptr_equal (data, it);
                m_live_del (&m, k);
            }
            else {
                assert_null (data);
                assert_int_equal (vw_cmdqueue_state (q, cid), VW_CMDQUEUE_INFLIGHT);
            }
        }
        else {  //  an agent comes online or goes offline / into maintenance
            int a = (int) s_rng ((uint32_t) nagents);
            bool on = s_rng (3) != 0;  //  mostly online, so work flows
            vw_cmdqueue_set_dispatchable (q, s_id (agent, sizeof agent, "ag", a), on);
            m.dispatchable[a] = on;
        }
        m_check (&m, q, (op & 63) == 0);
    }
    m_check (&m, q, true);
    //  Everything still here is freed by destroy; data is not ours to free.
    print_message ("model %d/%d over %d agents: %d ops, %zu picks, %zu empty picks, %d left\n",
                   global_limit, agent_limit, nagents, ops, picks, nulls, m.nlive);
    assert_true (picks > (size_t) ops / 20);
    vw_cmdqueue_destroy (&q, NULL);
    free (m.items);
    free (m.live);
    free (m.live_pos);
    free (m.sub[M_INFLIGHT]);
    free (m.sub[M_PARKED]);
    free (m.sub_pos);
    free (m.dispatchable);
    free (m.agent_inflight);
}

static void
test_model (void **state)
{
    //  ~200k operations over four shapes of limits.
    s_model_run (1024, 4, 40, 60000, 300, 0x5eed0001);  //  defaults: per-agent bound
    s_model_run (6, 2, 25, 50000, 200, 0x5eed0002);     //  global bound
    s_model_run (3, 10, 4, 40000, 100, 0x5eed0003);     //  few busy agents
    s_model_run (1, 1, 100, 50000, 300, 0x5eed0004);    //  one at a time
}

//  --------------------------------------------------------------------------
//  Performance sanity: 100,000 commands over 10,000 agents. Prints the time;
//  asserts only on correctness.

static void
test_perf (void **state)
{
    enum { NCMD = 100000, NAGENTS = 10000 };
    vw_cmdqueue_t *q =
        vw_cmdqueue_new (VW_CMDQUEUE_GLOBAL_LIMIT_DEFAULT, VW_CMDQUEUE_AGENT_LIMIT_DEFAULT);
    char buf[32], agent[32];
    const char **inflight = (const char **) calloc (NCMD, sizeof (char *));
    s_rng_seed (42);

    double t0 = s_now_s ();
    for (int i = 0; i < NCMD; i++)
        assert_int_equal (vw_cmdqueue_push (q, s_id (buf, sizeof buf, "cmd-", i),
                                            s_id (agent, sizeof agent, "agent-", i % NAGENTS),
                                            (int) s_rng (3), i, NULL),
                          0);
    double t1 = s_now_s ();
    for (int a = 0; a < NAGENTS; a++)
        vw_cmdqueue_set_dispatchable (q, s_id (agent, sizeof agent, "agent-", a), true);
    //  Waves: fill every free slot, then finish half of what is in flight.
    size_t picked = 0, waves = 0;
    int ninflight = 0;
    while (picked < NCMD) {
        const char *id;
        while ((id = vw_cmdqueue_next (q, NULL)))
            inflight[ninflight++] = id, picked++;
        assert_true (ninflight <= VW_CMDQUEUE_GLOBAL_LIMIT_DEFAULT);
        assert_true (ninflight > 0);
        int keep = ninflight / 2;
        for (int i = keep; i < ninflight; i++)
            vw_cmdqueue_done (q, inflight[i]);
        ninflight = keep;
        waves++;
    }
    for (int i = 0; i < ninflight; i++)
        vw_cmdqueue_done (q, inflight[i]);
    double t2 = s_now_s ();
    assert_int_equal (vw_cmdqueue_size (q), 0);
    assert_int_equal (vw_cmdqueue_inflight (q), 0);
    print_message ("perf: %d pushes over %d agents %.3f s; %zu picks + dones in %zu waves "
                   "%.3f s; total %.3f s\n",
                   NCMD, NAGENTS, t1 - t0, picked, waves, t2 - t1, t2 - t0);

    //  Mostly offline: 99,990 commands wait on 9,999 undispatchable agents
    //  while one online agent works. Picks must not cost a scan.
    for (int i = 0; i < NCMD; i++)
        vw_cmdqueue_push (q, s_id (buf, sizeof buf, "cmd-", i),
                          s_id (agent, sizeof agent, "agent-", i % NAGENTS), (int) s_rng (3),
                          NCMD + i, NULL);
    for (int a = 1; a < NAGENTS; a++)
        vw_cmdqueue_set_dispatchable (q, s_id (agent, sizeof agent, "agent-", a), false);
    double t3 = s_now_s ();
    size_t online_picks = 0;
    for (int round = 0; round < 10000; round++) {
        const char *id = vw_cmdqueue_next (q, NULL);
        if (!id)
            break;
        assert_int_equal (vw_cmdqueue_requeue (q, id), 0);  //  retried in place
        online_picks++;
    }
    double t4 = s_now_s ();
    assert_int_equal (online_picks, 10000);
    assert_int_equal (vw_cmdqueue_pending (q), NCMD);
    print_message ("perf: 10000 pick+requeue with %d pending on %d offline agents %.3f s\n", NCMD,
                   NAGENTS - 1, t4 - t3);
    free (inflight);
    vw_cmdqueue_destroy (&q, NULL);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_new_destroy),
        cmocka_unit_test (test_bad_args_and_duplicates),
        cmocka_unit_test (test_priority_order),
        cmocka_unit_test (test_fifo_across_agents),
        cmocka_unit_test (test_per_agent_limit),
        cmocka_unit_test (test_per_agent_limit_random),
        cmocka_unit_test (test_global_limit),
        cmocka_unit_test (test_undispatchable_holds),
        cmocka_unit_test (test_agent_records_collected),
        cmocka_unit_test (test_remove),
        cmocka_unit_test (test_done_unblocks),
        cmocka_unit_test (test_park_unpark),
        cmocka_unit_test (test_requeue),
        cmocka_unit_test (test_destroy_frees_data),
        cmocka_unit_test (test_backoff),
        cmocka_unit_test (test_jitter),
        cmocka_unit_test (test_model),
        cmocka_unit_test (test_perf),
    };
    return cmocka_run_group_tests_name ("vw_cmdqueue", tests, NULL, NULL);
}
