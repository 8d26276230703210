/*  Status transitions of SPEC §4, driven by a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "vw_agent_state.h"

#define IV 10000  //  heartbeat interval, ms

static void
test_offline_until_welcomed (void **state)
{
    vw_agent_state_t s = {0};
    int64_t next = 0;
    assert_int_equal (vw_agent_state_eval (&s, 1000, &next), VW_AGENT_OFFLINE);
    assert_int_equal (next, -1);
    //  Frames before a welcome change nothing.
    vw_agent_state_frame (&s, 1000, "online");
    assert_int_equal (vw_agent_state_eval (&s, 1000, NULL), VW_AGENT_OFFLINE);
}

static void
test_silence_degrades_then_times_out (void **state)
{
    vw_agent_state_t s = {0};
    vw_agent_state_connect (&s, 0, IV);
    int64_t next;
    assert_int_equal (vw_agent_state_eval (&s, 0, &next), VW_AGENT_ONLINE);
    assert_int_equal (next, IV);
    assert_int_equal (vw_agent_state_eval (&s, IV - 1, NULL), VW_AGENT_ONLINE);
    assert_int_equal (vw_agent_state_eval (&s, IV, &next), VW_AGENT_DEGRADED);
    assert_int_equal (next, 3 * IV);
    assert_false (vw_agent_state_timed_out (&s, 3 * IV - 1));
    assert_int_equal (vw_agent_state_eval (&s, 3 * IV - 1, NULL), VW_AGENT_DEGRADED);
    assert_true (vw_agent_state_timed_out (&s, 3 * IV));
    assert_int_equal (vw_agent_state_eval (&s, 3 * IV, &next), VW_AGENT_OFFLINE);
    assert_int_equal (next, -1);
}

static void
test_frames_keep_it_online (void **state)
{
    vw_agent_state_t s = {0};
    vw_agent_state_connect (&s, 0, IV);
    for (int64_t t = IV / 2; t < 20 * IV; t += IV / 2) {
        vw_agent_state_frame (&s, t, NULL);
        assert_int_equal (vw_agent_state_eval (&s, t + IV - 1, NULL), VW_AGENT_ONLINE);
    }
    //  A frame after a degraded spell brings it back online.
    vw_agent_state_connect (&s, 0, IV);
    assert_int_equal (vw_agent_state_eval (&s, 2 * IV, NULL), VW_AGENT_DEGRADED);
    vw_agent_state_frame (&s, 2 * IV, "online");
    assert_int_equal (vw_agent_state_eval (&s, 2 * IV, NULL), VW_AGENT_ONLINE);
    //  Time going backwards does not rewind last_frame.
    vw_agent_state_frame (&s, IV, NULL);
    assert_int_equal (s.last_frame_ms, 2 * IV);
}

static void
test_reported_status (void **state)
{
    vw_agent_state_t s = {0};
    vw_agent_state_connect (&s, 0, IV);
    vw_agent_state_frame (&s, 1, "degraded");
    assert_int_equal (vw_agent_state_eval (&s, 2, NULL), VW_AGENT_DEGRADED);
    vw_agent_state_frame (&s, 3, "maintenance");
    assert_int_equal (vw_agent_state_eval (&s, 4, NULL), VW_AGENT_MAINTENANCE);
    //  Silence does not override a reported maintenance, but timeout does.
    assert_int_equal (vw_agent_state_eval (&s, 3 + IV, NULL), VW_AGENT_MAINTENANCE);
    assert_int_equal (vw_agent_state_eval (&s, 3 + 3 * IV, NULL), VW_AGENT_OFFLINE);
    vw_agent_state_frame (&s, 5, "online");
    assert_int_equal (vw_agent_state_eval (&s, 6, NULL), VW_AGENT_ONLINE);
    //  Unknown or absent statuses keep the last reported one.
    vw_agent_state_frame (&s, 7, "offline");
    vw_agent_state_frame (&s, 8, "bogus");
    vw_agent_state_frame (&s, 9, NULL);
    assert_int_equal (vw_agent_state_eval (&s, 10, NULL), VW_AGENT_ONLINE);
    //  A reconnect starts from online again.
    vw_agent_state_frame (&s, 11, "degraded");
    vw_agent_state_disconnect (&s);
    assert_int_equal (vw_agent_state_eval (&s, 12, NULL), VW_AGENT_OFFLINE);
    vw_agent_state_connect (&s, 13, IV);
    assert_int_equal (vw_agent_state_eval (&s, 14, NULL), VW_AGENT_ONLINE);
}

static void
test_operator_maintenance (void **state)
{
    vw_agent_state_t s = {0};
    s.maintenance = true;
    assert_int_equal (vw_agent_state_eval (&s, 0, NULL), VW_AGENT_OFFLINE);
    vw_agent_state_connect (&s, 0, IV);
    assert_int_equal (vw_agent_state_eval (&s, 0, NULL), VW_AGENT_MAINTENANCE);
    vw_agent_state_frame (&s, 1, "degraded");
    assert_int_equal (vw_agent_state_eval (&s, 2, NULL), VW_AGENT_MAINTENANCE);
    assert_int_equal (vw_agent_state_eval (&s, 1 + IV, NULL), VW_AGENT_MAINTENANCE);
    s.maintenance = false;
    assert_int_equal (vw_agent_state_eval (&s, 2, NULL), VW_AGENT_DEGRADED);
}

//  A telemetry alert that degrades: degraded while it fires, through a
//  reconnect; maintenance still wins.
static void
test_alerting (void **state)
{
    (void) state;
    vw_agent_state_t s = {0};
    vw_agent_state_connect (&s, 1000, 10000);
    s.alerting = true;
    assert_int_equal (vw_agent_state_eval (&s, 1001, NULL), VW_AGENT_DEGRADED);
    vw_agent_state_disconnect (&s);
    vw_agent_state_connect (&s, 2000, 10000);
    assert_int_equal (vw_agent_state_eval (&s, 2001, NULL), VW_AGENT_DEGRADED);
    s.maintenance = true;
    assert_int_equal (vw_agent_state_eval (&s, 2002, NULL), VW_AGENT_MAINTENANCE);
    s.maintenance = false;
    s.alerting = false;
    assert_int_equal (vw_agent_state_eval (&s, 2003, NULL), VW_AGENT_ONLINE);
}

static void
test_names (void **state)
{
    for (int i = VW_AGENT_OFFLINE; i <= VW_AGENT_MAINTENANCE; i++)
        assert_int_equal (vw_agent_status_parse (vw_agent_status_name ((vw_agent_status_t) i)), i);
    assert_int_equal (vw_agent_status_parse ("ONLINE"), -1);
    assert_int_equal (vw_agent_status_parse (NULL), -1);
    assert_string_equal (vw_agent_status_name ((vw_agent_status_t) 42), "?");
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_offline_until_welcomed),
        cmocka_unit_test (test_silence_degrades_then_times_out),
        cmocka_unit_test (test_frames_keep_it_online),
        cmocka_unit_test (test_reported_status),
        cmocka_unit_test (test_alerting),
        cmocka_unit_test (test_operator_maintenance),
        cmocka_unit_test (test_names),
    };
    return cmocka_run_group_tests_name ("vw_agent_state", tests, NULL, NULL);
}
