/*  test_timers - the min-heap timers (core/vw_timers).

    Every case drives time explicitly with vw_timers_add_at and
    vw_timers_run (now): nothing here sleeps or reads the clock. The last
    case checks ~100k random operations in lock-step against a plain array
    model, including callbacks that add and cancel timers while running.
*/
#include "vw_timers.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

//  --------------------------------------------------------------------------
//  A recorder: each callback appends (tag, id) to a log.

#define S_LOG_MAX 4096

typedef struct {
    int tags[S_LOG_MAX];
    uint64_t ids[S_LOG_MAX];
    size_t n;
} s_log_t;

typedef struct {
    s_log_t *log;
    int tag;
} s_rec_t;

static void
s_record (void *arg, uint64_t id)
{
    s_rec_t *rec = (s_rec_t *) arg;
    assert_true (rec->log->n < S_LOG_MAX);
    rec->log->tags[rec->log->n] = rec->tag;
    rec->log->ids[rec->log->n] = id;
    rec->log->n++;
}

static int
s_setup (void **state)
{
    vw_timers_t *timers = vw_timers_new ();
    assert_non_null (timers);
    *state = timers;
    return 0;
}

static int
s_teardown (void **state)
{
    vw_timers_t *timers = (vw_timers_t *) *state;
    vw_timers_destroy (&timers);
    assert_null (timers);
    vw_timers_destroy (&timers);  //  safe twice
    return 0;
}

//  --------------------------------------------------------------------------
//  Ordering, FIFO, timeout

static void
test_fires_in_deadline_order (void **state)
{
    vw_timers_t *timers = (vw_timers_t *) *state;
    s_log_t log = {0};
    const int64_t due[] = {50, 10, 30, 20, 40, -5, 1000};
    const size_t n = sizeof due / sizeof due[0];
    s_rec_t recs[7];
    uint64_t ids[7];
    for (size_t i = 0; i < n; i++) {
        recs[i] = (s_rec_t){&log, (int) due[i]};
        ids[i] = vw_timers_add_at (timers, due[i], s_record, &recs[i]);
        assert_int_not_equal (ids[i], 0);
        for (size_t j = 0; j < i; j++)
            assert_int_not_equal (ids[i], ids[j]);
    }
    assert_int_equal (vw_timers_count (timers), n);

    //  Nothing due yet at -6; only -5 and 10 at 10 (inclusive).
    assert_int_equal (vw_timers_run (timers, -6), 0);
    assert_int_equal (vw_timers_run (timers, 10), 2);
    assert_int_equal (log.n, 2);
    assert_int_equal (log.tags[0], -5);
    assert_int_equal (log.tags[1], 10);
    assert_int_equal (log.ids[0], ids[5]);
    assert_int_equal (log.ids[1], ids[1]);
    assert_int_equal (vw_timers_count (timers), n - 2);

    assert_int_equal (vw_timers_run (timers, 999), 4);
    const int want[] = {-5, 10, 20, 30, 40, 50};
    assert_int_equal (log.n, 6);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal (log.tags[i], want[i]);
    assert_int_equal (vw_timers_count (timers), 1);
    assert_int_equal (vw_timers_run (timers, 1000), 1);
    assert_int_equal (log.tags[6], 1000);
    assert_int_equal (vw_timers_count (timers), 0);
    assert_int_equal (vw_timers_run (timers, INT64_MAX), 0);
}

static void
test_equal_deadlines_fire_fifo (void **state)
{
    vw_timers_t *timers = (vw_timers_t *) *state;
    s_log_t log = {0};
    enum { N = 300 };
    static s_rec_t recs[N];
    uint64_t ids[N];
    //  Two interleaved deadlines, so the heap has to reorder: every t=3
    //  timer in insertion order, then every t=7 timer in insertion order.
    for (int i = 0; i < N; i++) {
        recs[i] = (s_rec_t){&log, i};
        ids[i] = vw_timers_add_at (timers, i % 2 ? 7 : 3, s_record, &recs[i]);
    }
    //  Cancelling some in the middle must not disturb FIFO among the rest.
    for (int i = 0; i < N; i += 5)
        assert_int_equal (vw_timers_cancel (timers, ids[i]), 0);
    size_t fired = vw_timers_run (timers, 7);
    assert_int_equal (fired, N - N / 5);
    assert_int_equal (log.n, fired);
    size_t k = 0;
    for (int parity = 0; parity < 2; parity++)
        for (int i = parity; i < N; i += 2) {
            if (i % 5 == 0)
                continue;
            assert_int_equal (log.tags[k], i);
            assert_int_equal (log.ids[k], ids[i]);
            k++;
        }
    assert_int_equal (k, fired);
}

static void
test_timeout (void **state)
{
    vw_timers_t *timers = (vw_timers_t *) *state;
    s_log_t log = {0};
    s_rec_t rec = {&log, 0};
    assert_int_equal (vw_timers_timeout (timers, 0), -1);
    assert_int_equal (vw_timers_timeout (timers, INT64_MIN), -1);

    uint64_t late = vw_timers_add_at (timers, 1000, s_record, &rec);
    assert_int_equal (vw_timers_timeout (timers, 0), 1000);
    assert_int_equal (vw_timers_timeout (timers, 999), 1);
    assert_int_equal (vw_timers_timeout (timers, 1000), 0);  //  due now
    assert_int_equal (vw_timers_timeout (timers, 5000), 0);  //  overdue
    assert_int_equal (vw_timers_timeout (timers, INT64_MAX), 0);

    uint64_t early = vw_timers_add_at (timers, 250, s_record, &rec);
    assert_int_equal (vw_timers_timeout (timers, 200), 50);
    assert_int_equal (vw_timers_cancel (timers, early), 0);
    assert_int_equal (vw_timers_timeout (timers, 200), 800);

    //  Far deadlines clamp to a value zmq_poll takes (int milliseconds).
    uint64_t far = vw_timers_add_at (timers, INT64_MAX, s_record, &rec);
    assert_int_equal (vw_timers_cancel (timers, late), 0);
    assert_int_equal (vw_timers_timeout (timers, 0), 0x7fffffffL);
    assert_int_equal (vw_timers_timeout (timers, INT64_MAX - 10), 10);
    assert_int_equal (vw_timers_cancel (timers, far), 0);
    assert_int_equal (vw_timers_timeout (timers, 0), -1);
    assert_int_equal (log.n, 0);
}

//  --------------------------------------------------------------------------
//  Cancel

static void
test_cancel (void **state)
{
    vw_timers_t *timers = (vw_timers_t *) *state;
    s_log_t log = {0};
    s_rec_t a = {&log, 1}, b = {&log, 2}, c = {&log, 3};

    //  Pending: cancelled once, then unknown.
    uint64_t id_a = vw_timers_add_at (timers, 10, s_record, &a);
    uint64_t id_b = vw_timers_add_at (timers, 20, s_record, &b);
    assert_int_equal (vw_timers_count (timers), 2);
    assert_int_equal (vw_timers_cancel (timers, id_a), 0);
    assert_int_equal (vw_timers_count (timers), 1);
    assert_int_equal (vw_timers_cancel (timers, id_a), -1);
    assert_int_equal (vw_timers_count (timers), 1);

    //  Stale: a's slot is reused by c, but a's id must not cancel c.
    uint64_t id_c = vw_timers_add_at (timers, 30, s_record, &c);
    assert_int_not_equal (id_c, id_a);
    assert_int_equal ((uint32_t) id_c, (uint32_t) id_a);  //  same slot, new generation
    assert_int_equal (vw_timers_cancel (timers, id_a), -1);
    assert_int_equal (vw_timers_count (timers), 2);

    //  Fired: cancelling afterwards fails and changes nothing.
    assert_int_equal (vw_timers_run (timers, 20), 1);
    assert_int_equal (log.n, 1);
    assert_int_equal (log.tags[0], 2);
    assert_int_equal (vw_timers_cancel (timers, id_b), -1);
    assert_int_equal (vw_timers_count (timers), 1);

    //  Id 0 and garbage ids: never a match, never a crash.
    assert_int_equal (vw_timers_cancel (timers, 0), -1);
    assert_int_equal (vw_timers_cancel (timers, UINT64_MAX), -1);
    assert_int_equal (vw_timers_cancel (timers, (uint64_t) 1 << 32 | 0xfffffffe), -1);
    assert_int_equal (vw_timers_cancel (timers, id_c ^ ((uint64_t) 1 << 32)), -1);
    assert_int_equal (vw_timers_cancel (timers, id_c & 0xffffffffu), -1);  //  generation 0
    assert_int_equal (vw_timers_cancel (timers, id_c + 1), -1);            //  a free slot
    for (uint64_t g = 0; g < 1000; g++)
        vw_timers_cancel (timers, g * 0x9e3779b97f4a7c15ull + 1);
    assert_int_equal (vw_timers_count (timers), 1);

    assert_int_equal (vw_timers_run (timers, 100), 1);
    assert_int_equal (log.n, 2);
    assert_int_equal (log.tags[1], 3);
    assert_int_equal (log.ids[1], id_c);
    assert_int_equal (vw_timers_cancel (timers, id_c), -1);
}

static void
test_cancel_on_empty (void **state)
{
    //  A fresh set has no slots at all.
    vw_timers_t *timers = (vw_timers_t *) *state;
    assert_int_equal (vw_timers_cancel (timers, 0), -1);
    assert_int_equal (vw_timers_cancel (timers, 1), -1);
    assert_int_equal (vw_timers_cancel (timers, (uint64_t) 1 << 32), -1);
    assert_int_equal (vw_timers_run (timers, 0), 0);
    assert_int_equal (vw_timers_count (timers), 0);
}

//  --------------------------------------------------------------------------
//  Callbacks that change the set while it runs

typedef struct {
    vw_timers_t *timers;
    s_log_t *log;
    uint64_t victim;  //  cancelled by the callback
    int victim_rc;
    uint64_t added;  //  added by the callback
    int64_t add_due;
    s_rec_t added_rec;
    uint64_t self_id;
    int self_cancel_rc;
} s_meddler_t;

static void
s_meddle (void *arg, uint64_t id)
{
    s_meddler_t *m = (s_meddler_t *) arg;
    m->self_id = id;
    //  The firing timer is already gone: cancelling it fails.
    m->self_cancel_rc = vw_timers_cancel (m->timers, id);
    if (m->victim)
        m->victim_rc = vw_timers_cancel (m->timers, m->victim);
    m->added = vw_timers_add_at (m->timers, m->add_due, s_record, &m->added_rec);
    assert_int_not_equal (m->added, 0);
}

static void
test_callbacks_add_and_cancel (void **state)
{
    vw_timers_t *timers = (vw_timers_t *) *state;
    s_log_t log = {0};
    s_rec_t before = {&log, 1}, victim = {&log, 2}, after = {&log, 3};
    s_meddler_t m = {.timers = timers, .log = &log, .add_due = 15, .added_rec = {&log, 4}};

    vw_timers_add_at (timers, 4, s_record, &before);
    uint64_t id_m = vw_timers_add_at (timers, 5, s_meddle, &m);
    m.victim = vw_timers_add_at (timers, 6, s_record, &victim);  //  due in the same run
    vw_timers_add_at (timers, 8, s_record, &after);

    assert_int_equal (vw_timers_run (timers, 10), 3);
    assert_int_equal (m.self_id, id_m);
    assert_int_equal (m.self_cancel_rc, -1);
    assert_int_equal (m.victim_rc, 0);
    assert_int_equal (log.n, 2);
    assert_int_equal (log.tags[0], 1);
    assert_int_equal (log.tags[1], 3);  //  the victim never fired
    //  The added timer is not yet due, and is now the earliest.
    assert_int_equal (vw_timers_count (timers), 1);
    assert_int_equal (vw_timers_timeout (timers, 10), 5);
    assert_int_equal (vw_timers_run (timers, 15), 1);
    assert_int_equal (log.n, 3);
    assert_int_equal (log.tags[2], 4);
    assert_int_equal (log.ids[2], m.added);
}

//  A callback that re-arms itself a fixed period later, as a heartbeat does.
typedef struct {
    vw_timers_t *timers;
    int64_t due;
    int fired;
} s_periodic_t;

static void
s_periodic (void *arg, uint64_t id)
{
    s_periodic_t *p = (s_periodic_t *) arg;
    p->fired++;
    p->due += 10;
    assert_int_not_equal (vw_timers_add_at (p->timers, p->due, s_periodic, p), 0);
}

static void
test_callback_rearms (void **state)
{
    vw_timers_t *timers = (vw_timers_t *) *state;
    s_periodic_t p = {timers, 10, 0};
    vw_timers_add_at (timers, p.due, s_periodic, &p);
    //  Late by 25 ms: the catch-up fires every missed period in one run, in
    //  order, and stops at the first deadline in the future.
    assert_int_equal (vw_timers_run (timers, 35), 3);
    assert_int_equal (p.fired, 3);
    assert_int_equal (vw_timers_count (timers), 1);
    assert_int_equal (vw_timers_timeout (timers, 35), 5);
    for (int64_t now = 40; now <= 1000; now += 10)
        assert_int_equal (vw_timers_run (timers, now), 1);
    assert_int_equal (p.fired, 100);
    assert_int_equal (vw_timers_count (timers), 1);
}

//  --------------------------------------------------------------------------
//  Growth

static void
test_growth_past_64 (void **state)
{
    vw_timers_t *timers = (vw_timers_t *) *state;
    enum { N = 1000 };
    static s_log_t log;
    static s_rec_t recs[N];
    static uint64_t ids[N];
    memset (&log, 0, sizeof log);
    //  Deadlines are a permutation of 0..N-1 (7 is coprime with 1000).
    for (int i = 0; i < N; i++) {
        int due = (i * 7) % N;
        recs[i] = (s_rec_t){&log, due};
        ids[i] = vw_timers_add_at (timers, due, s_record, &recs[i]);
        assert_int_not_equal (ids[i], 0);
        assert_int_equal (vw_timers_count (timers), (size_t) i + 1);
    }
    //  Every id is distinct.
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            if (ids[i] == ids[j])
                fail_msg ("ids %d and %d are equal", i, j);
    //  Timers set before the first growth survive it, and cancel still finds them.
    int cancelled = 0;
    for (int i = 0; i < N; i += 3, cancelled++)
        assert_int_equal (vw_timers_cancel (timers, ids[i]), 0);
    assert_int_equal (vw_timers_count (timers), N - cancelled);
    //  Due 0 (i = 0) was cancelled; due 1 (i = 143, as 7 * 143 = 1001) was not.
    assert_int_equal (vw_timers_timeout (timers, 0), 1);

    assert_int_equal (vw_timers_run (timers, N), (size_t) (N - cancelled));
    assert_int_equal (log.n, (size_t) (N - cancelled));
    for (size_t k = 1; k < log.n; k++)
        assert_true (log.tags[k - 1] < log.tags[k]);
    for (size_t k = 0; k < log.n; k++) {
        int i = -1;
        for (int j = 0; j < N; j++)
            if (recs[j].tag == log.tags[k])
                i = j;
        assert_true (i >= 0 && i % 3 != 0);
        assert_int_equal (log.ids[k], ids[i]);
    }
    //  Fired ids are stale after growth too.
    for (int i = 0; i < N; i++)
        assert_int_equal (vw_timers_cancel (timers, ids[i]), -1);
    assert_int_equal (vw_timers_timeout (timers, 0), -1);
}

//  --------------------------------------------------------------------------
//  Randomised lock-step check against a reference model

typedef struct {
    int64_t due;
    uint64_t order;  //  insertion order, for FIFO among equal deadlines
    uint64_t id;
} s_ref_t;

typedef struct {
    vw_timers_t *timers;
    s_ref_t *pending;  //  unordered; the model searches it
    size_t npending;
    size_t cap;
    uint64_t order;
    uint64_t *dead;  //  ids that fired or were cancelled
    size_t ndead;
    size_t dead_cap;
    int64_t now;
    uint64_t rng;
    size_t fired_total;
    size_t meddles;
} s_model_t;

static uint64_t
s_rand (s_model_t *m)
{
    //  xorshift64*: fixed seed, same sequence on every platform.
    m->rng ^= m->rng >> 12;
    m->rng ^= m->rng << 25;
    m->rng ^= m->rng >> 27;
    return m->rng * 0x2545f4914f6cdd1dull;
}

static uint64_t
s_below (s_model_t *m, uint64_t n)
{
    return s_rand (m) % n;
}

static void s_model_fire (void *arg, uint64_t id);

static void
s_model_add (s_model_t *m, int64_t due)
{
    uint64_t id = vw_timers_add_at (m->timers, due, s_model_fire, m);
    assert_int_not_equal (id, 0);
    for (size_t i = 0; i < m->npending; i++)
        if (m->pending[i].id == id)
            fail_msg ("id %llu handed out twice", (unsigned long long) id);
    if (m->npending == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 256;
        m->pending = (s_ref_t *) realloc (m->pending, m->cap * sizeof (s_ref_t));
        assert_non_null (m->pending);
    }
    m->pending[m->npending++] = (s_ref_t){due, ++m->order, id};
}

static void
s_model_bury (s_model_t *m, uint64_t id)
{
    if (m->ndead == m->dead_cap) {
        m->dead_cap = m->dead_cap ? m->dead_cap * 2 : 1024;
        m->dead = (uint64_t *) realloc (m->dead, m->dead_cap * sizeof (uint64_t));
        assert_non_null (m->dead);
    }
    m->dead[m->ndead++] = id;
}

static void
s_model_remove (s_model_t *m, size_t i)
{
    s_model_bury (m, m->pending[i].id);
    m->pending[i] = m->pending[--m->npending];
}

//  Index of the earliest pending timer (deadline, then insertion order).
static ssize_t
s_model_min (s_model_t *m)
{
    ssize_t best = -1;
    for (size_t i = 0; i < m->npending; i++)
        if (best < 0 || m->pending[i].due < m->pending[best].due ||
            (m->pending[i].due == m->pending[best].due &&
             m->pending[i].order < m->pending[best].order))
            best = (ssize_t) i;
    return best;
}

static void
s_model_cancel_random (s_model_t *m)
{
    uint64_t pick = s_below (m, 10);
    if (pick < 6 && m->npending) {
        size_t i = s_below (m, m->npending);
        assert_int_equal (vw_timers_cancel (m->timers, m->pending[i].id), 0);
        s_model_remove (m, i);
    }
    else if (pick < 9 && m->ndead) {
        //  A fired or cancelled id, unless its slot is now live under
        //  the same id (impossible: generations only grow).
        uint64_t id = m->dead[s_below (m, m->ndead)];
        assert_int_equal (vw_timers_cancel (m->timers, id), -1);
    }
    else {
        //  Garbage: must not match anything pending unless it happens to
        //  equal a live id (then the model cancels it too).
        uint64_t id = s_rand (m);
        int rc = vw_timers_cancel (m->timers, id);
        size_t i;
        for (i = 0; i < m->npending && m->pending[i].id != id; i++)
            ;
        if (i < m->npending) {
            assert_int_equal (rc, 0);
            s_model_remove (m, i);
        }
        else
            assert_int_equal (rc, -1);
    }
}

//  Every fire must be the model's earliest due timer; some callbacks change
//  the set, mirrored in the model at once.
static void
s_model_fire (void *arg, uint64_t id)
{
    s_model_t *m = (s_model_t *) arg;
    ssize_t best = s_model_min (m);
    assert_true (best >= 0);
    if (m->pending[best].id != id)
        fail_msg ("fired %llu, model expected %llu", (unsigned long long) id,
                  (unsigned long long) m->pending[best].id);
    assert_true (m->pending[best].due <= m->now);
    s_model_remove (m, (size_t) best);
    m->fired_total++;
    if (s_below (m, 8) == 0) {
        m->meddles++;
        s_model_cancel_random (m);
        //  Strictly in the future, so the set drains within this run.
        s_model_add (m, m->now + 1 + (int64_t) s_below (m, 50));
    }
}

static void
test_randomized_against_model (void **state)
{
    vw_timers_t *timers = (vw_timers_t *) *state;
    s_model_t m = {.timers = timers, .rng = 0x5eed1234abcdull, .now = 1000};
    size_t runs = 0, peak = 0;
    for (int op = 0; op < 100000; op++) {
        uint64_t kind = s_below (&m, 100);
        if (kind < 55) {
            //  Deadlines cluster (many equal) and some are already overdue.
            int64_t due = m.now - 20 + (int64_t) s_below (&m, 200);
            if (s_below (&m, 4) == 0)
                due = m.now + (int64_t) (s_below (&m, 8) * 25);
            s_model_add (&m, due);
        }
        else if (kind < 80)
            s_model_cancel_random (&m);
        else if (kind < 97) {
            //  Phases of slow and fast time: the set grows to thousands, then drains.
            m.now += (int64_t) s_below (&m, (op / 5000) % 2 ? 30 : 2);
            size_t before = m.fired_total;
            size_t fired = vw_timers_run (timers, m.now);
            assert_int_equal (fired, m.fired_total - before);
            ssize_t best = s_model_min (&m);
            assert_true (best < 0 || m.pending[best].due > m.now);
            runs++;
        }
        else {
            ssize_t best = s_model_min (&m);
            long want = best < 0                       ? -1
                        : m.pending[best].due <= m.now ? 0
                                                       : (long) (m.pending[best].due - m.now);
            assert_int_equal (vw_timers_timeout (timers, m.now), want);
        }
        assert_int_equal (vw_timers_count (timers), m.npending);
        if (m.npending > peak)
            peak = m.npending;
    }
    //  Drain.
    //  Drain: meddling callbacks may re-add, always in the future.
    for (int round = 0; vw_timers_count (timers) && round < 1000; round++) {
        m.now += 1000;
        vw_timers_run (timers, m.now);
    }
    assert_int_equal (m.npending, 0);
    assert_int_equal (vw_timers_count (timers), 0);
    //  The mix really exercised the structure.
    assert_true (runs > 10000);
    assert_true (peak > 64);
    assert_true (m.meddles > 100);
    print_message ("randomized: %zu fired, %zu runs, peak %zu pending, %zu meddling callbacks\n",
                   m.fired_total, runs, peak, m.meddles);
    free (m.pending);
    free (m.dead);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_fires_in_deadline_order, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_equal_deadlines_fire_fifo, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_timeout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_cancel, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_cancel_on_empty, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_callbacks_add_and_cancel, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_callback_rearms, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_growth_past_64, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_randomized_against_model, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name ("vw_timers", tests, NULL, NULL);
}
