/*  test_telemetry - the telemetry actor (actors/vw_telemetry) driven with
    proto messages through a real broker (vw_testbroker).

    Test peers play "edge" (sends telemetry_frame, gets telemetry_acked)
    and "store" (gets telemetry_write and answers it). A frame is acked
    only after the store's answer says it is stored (or was, for a
    duplicate); a failed or missing write gets "unavailable", a frame that
    is not packed points never reaches the store.
*/
#include "vw_actors.h"
#include "vw_clock.h"
#include "vw_points.h"
#include "vw_testbroker.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

typedef struct {
    vw_tb_t *tb;
    vw_tb_peer_t *edge, *store, *registry;
    zsock_t *events;
} t_fixture_t;

static int
s_setup (void **state)
{
    t_fixture_t *f = (t_fixture_t *) calloc (1, sizeof (t_fixture_t));
    *state = f;
    f->tb = vw_tb_new ();
    if (!f->tb || vw_tb_peers (f->tb, "edge", &f->edge, "store", &f->store, NULL))
        return -1;
    return vw_tb_run (f->tb, &vw_telemetry_class, vw_tb_config (f->tb));
}

//  With the rules "hot: t > 10 for 2s degrade; low: t < 0" and a registry peer.
static int
s_setup_alerts (void **state)
{
    t_fixture_t *f = (t_fixture_t *) calloc (1, sizeof (t_fixture_t));
    *state = f;
    f->tb = vw_tb_new ();
    vw_config_t *config = f->tb ? vw_tb_config (f->tb) : NULL;
    if (!config ||
        vw_tb_peers (f->tb, "edge", &f->edge, "store", &f->store, "registry", &f->registry, NULL))
        return -1;
    config->telemetry_alerts = strdup ("hot: t > 10 for 2s degrade; low: t < 0");
    f->events = vw_tb_events (f->tb, "telemetry.alert");
    return vw_tb_run (f->tb, &vw_telemetry_class, config);
}

//  With telemetry.max_in_flight at 3 values (the frames below hold 2).
static int
s_setup_busy (void **state)
{
    t_fixture_t *f = (t_fixture_t *) calloc (1, sizeof (t_fixture_t));
    *state = f;
    f->tb = vw_tb_new ();
    vw_config_t *config = f->tb ? vw_tb_config (f->tb) : NULL;
    if (!config || vw_tb_peers (f->tb, "edge", &f->edge, "store", &f->store, NULL))
        return -1;
    config->telemetry_max_in_flight = 3;
    return vw_tb_run (f->tb, &vw_telemetry_class, config);
}

static void
s_frame_points (t_fixture_t *f, int64_t conn, int64_t seq, const char *points_json, bool packed)
{
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_telemetry_frame);
    msg->telemetry_frame.conn = conn;
    vw_msg_set_str (&msg->telemetry_frame.agent_id, "gw-1");
    msg->telemetry_frame.seq = seq;
    json_t *points = json_loads (points_json, 0, NULL);
    uint8_t *data;
    size_t size;
    vw_points_info_t info;
    assert_int_equal (vw_points_pack (points, &data, &size, &info), 0);
    if (!packed)
        data[0] = 9;  //  a version nobody writes
    vw_msg_set_bin (&msg->telemetry_frame.points, data, size);
    free (data);
    json_decref (points);
    assert_int_equal (vw_tb_send (f->edge, "telemetry", &msg), 0);
}

static void
s_frame (t_fixture_t *f, int64_t conn, int64_t seq, bool packed)
{
    s_frame_points (f, conn, seq, "[{\"ts\":1764230000000,\"metrics\":{\"cpu\":0.5,\"n\":3}}]",
                    packed);
}

static void
s_expect_acked (t_fixture_t *f, int64_t conn, int64_t seq, bool stored, const char *code)
{
    vw_msg_t *a = vw_tb_want (f->edge, VW_MSG_ID_telemetry_acked);
    assert_int_equal (a->telemetry_acked.conn, conn);
    assert_int_equal (a->telemetry_acked.seq, seq);
    assert_int_equal (a->telemetry_acked.stored, stored);
    if (code) {
        assert_string_equal (a->telemetry_acked.code, code);
        assert_non_null (strstr (a->telemetry_acked.message, "not stored"));
    }
    vw_msg_destroy (&a);
}

//  Stored (201) and duplicate (200) are both acked, each only after the
//  store's answer; the bytes reach the store as the edge packed them.
static void
test_ack_after_the_store_answers (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_frame (f, 7, 42, true);
    vw_msg_t *w = vw_tb_want (f->store, VW_MSG_ID_telemetry_write);
    assert_string_equal (w->telemetry_write.agent_id, "gw-1");
    assert_int_equal (w->telemetry_write.seq, 42);
    vw_points_info_t info;
    assert_int_equal (vw_points_walk (w->telemetry_write.points.data,
                                      w->telemetry_write.points.size, NULL, NULL, &info),
                      0);
    assert_int_equal (info.values, 2);
    //  Nothing is acked while the write is pending.
    vw_tb_quiet (f->edge, "telemetry", f->edge, NULL);
    vw_tb_answer (f->store, "telemetry", &w, 201, NULL, NULL);
    s_expect_acked (f, 7, 42, true, NULL);

    s_frame (f, 7, 42, true);
    w = vw_tb_want (f->store, VW_MSG_ID_telemetry_write);
    vw_tb_answer (f->store, "telemetry", &w, 200, NULL, NULL);
    s_expect_acked (f, 7, 42, true, NULL);
}

//  A write that fails (503), or that the store refuses as malformed, is not
//  acked: the agent hears unavailable (send again) or invalid_message.
static void
test_failed_writes_are_not_acked (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_frame (f, 3, 1, true);
    vw_msg_t *w = vw_tb_want (f->store, VW_MSG_ID_telemetry_write);
    vw_tb_answer (f->store, "telemetry", &w, 503, NULL, "database_busy");
    s_expect_acked (f, 3, 1, false, "unavailable");

    s_frame (f, 3, 2, true);
    w = vw_tb_want (f->store, VW_MSG_ID_telemetry_write);
    vw_tb_answer_error (f->store, "telemetry", &w, "actor_busy");
    s_expect_acked (f, 3, 2, false, "unavailable");

    s_frame (f, 3, 3, true);
    w = vw_tb_want (f->store, VW_MSG_ID_telemetry_write);
    vw_tb_answer (f->store, "telemetry", &w, 400, NULL, "bad_request");
    s_expect_acked (f, 3, 3, false, "invalid_message");
}

//  Bytes that are not packed points are answered at once and never written.
static void
test_unpacked_frame_never_reaches_the_store (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_frame (f, 5, 9, false);
    vw_msg_t *a = vw_tb_want (f->edge, VW_MSG_ID_telemetry_acked);
    assert_false (a->telemetry_acked.stored);
    assert_string_equal (a->telemetry_acked.code, "invalid_message");
    vw_msg_destroy (&a);
    assert_int_equal (vw_tb_sync (f->edge, "telemetry"), 0);
    assert_int_equal (vw_tb_kept (f->store, VW_MSG_ID_telemetry_write), 0);
}

//  Back-pressure: past telemetry.max_in_flight values waiting for the store
//  a frame is refused at once with unavailable (it is sent again), never
//  queued; once the store has answered, frames go through again. A frame
//  bigger than the bound alone still goes (nothing else waits).
static void
test_frames_over_the_bound_are_refused_at_once (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_frame (f, 4, 1, true);
    vw_msg_t *w1 = vw_tb_want (f->store, VW_MSG_ID_telemetry_write);
    s_frame (f, 4, 2, true);  //  2 + 2 > 3
    vw_msg_t *a = vw_tb_want (f->edge, VW_MSG_ID_telemetry_acked);
    assert_int_equal (a->telemetry_acked.seq, 2);
    assert_false (a->telemetry_acked.stored);
    assert_string_equal (a->telemetry_acked.code, "unavailable");
    assert_non_null (strstr (a->telemetry_acked.message, "busy"));
    vw_msg_destroy (&a);
    assert_int_equal (vw_tb_sync (f->edge, "telemetry"), 0);
    assert_int_equal (vw_tb_kept (f->store, VW_MSG_ID_telemetry_write), 0);
    vw_tb_answer (f->store, "telemetry", &w1, 201, NULL, NULL);
    s_expect_acked (f, 4, 1, true, NULL);
    //  Room again: the re-sent frame goes to the store.
    s_frame (f, 4, 2, true);
    vw_msg_t *w2 = vw_tb_want (f->store, VW_MSG_ID_telemetry_write);
    assert_int_equal (w2->telemetry_write.seq, 2);
    vw_tb_answer (f->store, "telemetry", &w2, 201, NULL, NULL);
    s_expect_acked (f, 4, 2, true, NULL);
    //  A frame of 4 values, alone, is written.
    s_frame_points (f, 4, 3,
                    "[{\"ts\":1764230000000,\"metrics\":{\"a\":1,\"b\":2,\"c\":3,\"d\":4}}]", true);
    vw_msg_t *w3 = vw_tb_want (f->store, VW_MSG_ID_telemetry_write);
    vw_tb_answer (f->store, "telemetry", &w3, 201, NULL, NULL);
    s_expect_acked (f, 4, 3, true, NULL);
}

//  Retention runs by itself: a step a second with the configured bounds,
//  the next one soon while the store says more is due, and never two at once.
static void
test_retention_steps (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    const vw_config_t *config = vw_tb_config (f->tb);
    int64_t before = vw_clock_wall_ms ();
    vw_msg_t *e = vw_tb_want (f->store, VW_MSG_ID_telemetry_expire);
    int64_t after = vw_clock_wall_ms ();
    assert_true (e->telemetry_expire.raw_before >= before - config->telemetry_retention_ms);
    assert_true (e->telemetry_expire.raw_before <= after - config->telemetry_retention_ms);
    assert_true (e->telemetry_expire.m1_before <= after - config->telemetry_retention_1m_ms);
    assert_true (e->telemetry_expire.h1_before <= after - config->telemetry_retention_1h_ms);
    assert_true (e->telemetry_expire.budget > 0);
    //  None while this one is unanswered.
    assert_null (vw_tb_expect (f->store, VW_MSG_ID_telemetry_expire, 1500));
    vw_tb_answer (f->store, "telemetry", &e, 200, "{\"deleted\":2000,\"more\":true}", NULL);
    int64_t t0 = vw_clock_mono_ms ();
    e = vw_tb_want (f->store, VW_MSG_ID_telemetry_expire);
    assert_true (vw_clock_mono_ms () - t0 < 900);  //  soon, not a second later
    vw_tb_answer (f->store, "telemetry", &e, 200, "{\"deleted\":5,\"more\":false}", NULL);
    e = vw_tb_want (f->store, VW_MSG_ID_telemetry_expire);
    vw_msg_destroy (&e);
}

//  One value of t at ts: stored, acked.
static void
s_t (t_fixture_t *f, int64_t seq, int64_t ts, double t)
{
    char points[128];
    snprintf (points, sizeof points, "[{\"ts\":%lld,\"metrics\":{\"t\":%g,\"x\":1}}]",
              (long long) ts, t);
    s_frame_points (f, 1, seq, points, true);
    vw_msg_t *w = vw_tb_want (f->store, VW_MSG_ID_telemetry_write);
    vw_tb_answer (f->store, "telemetry", &w, 201, NULL, NULL);
    s_expect_acked (f, 1, seq, true, NULL);
}

static json_t *
s_event (t_fixture_t *f)
{
    zsock_set_rcvtimeo (f->events, VW_TB_TIMEOUT_MS);
    char *topic = NULL, *body = NULL;
    assert_int_equal (zstr_recvx (f->events, &topic, &body, NULL), 2);
    assert_string_equal (topic, "telemetry.alert");
    json_t *event = json_loads (body, 0, NULL);
    zstr_free (&topic);
    zstr_free (&body);
    assert_non_null (event);
    return event;
}

static void
s_no_event (t_fixture_t *f)
{
    assert_int_equal (vw_tb_sync (f->edge, "telemetry"), 0);
    assert_false (zsock_events (f->events) & ZMQ_POLLIN);
}

//  A rule fires once its condition held from one point to another for_ms
//  later (the points' ts), degrades the agent while it fires, and resolves
//  at the first point that breaks it; an older point changes nothing.
static void
test_alert_fires_degrades_and_resolves (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    const int64_t t0 = 1764230000000;
    s_t (f, 1, t0, 11);
    s_t (f, 2, t0 + 1000, 12);
    s_no_event (f);
    s_t (f, 3, t0 + 2000, 13);
    json_t *e = s_event (f);
    assert_string_equal (json_string_value (json_object_get (e, "rule")), "hot");
    assert_string_equal (json_string_value (json_object_get (e, "agent_id")), "gw-1");
    assert_string_equal (json_string_value (json_object_get (e, "state")), "firing");
    assert_int_equal (json_integer_value (json_object_get (e, "since")), t0);
    assert_true (json_real_value (json_object_get (e, "value")) == 13);
    json_decref (e);
    vw_msg_t *a = vw_tb_want (f->registry, VW_MSG_ID_agent_alerting);
    assert_string_equal (a->agent_alerting.agent_id, "gw-1");
    assert_true (a->agent_alerting.alerting);
    vw_msg_destroy (&a);
    //  Older than the last point seen: skipped (a re-sent frame).
    s_t (f, 4, t0 + 1500, 1);
    s_t (f, 5, t0 + 3000, 14);  //  still firing: no new event
    s_no_event (f);
    s_t (f, 6, t0 + 4000, 5);
    e = s_event (f);
    assert_string_equal (json_string_value (json_object_get (e, "state")), "resolved");
    json_decref (e);
    a = vw_tb_want (f->registry, VW_MSG_ID_agent_alerting);
    assert_false (a->agent_alerting.alerting);
    vw_msg_destroy (&a);
    //  A rule without for fires at its first point, and does not degrade.
    s_t (f, 7, t0 + 5000, -1);
    e = s_event (f);
    assert_string_equal (json_string_value (json_object_get (e, "rule")), "low");
    assert_false (json_is_true (json_object_get (e, "degrade")));
    json_decref (e);
    vw_tb_quiet (f->edge, "telemetry", f->registry, NULL);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_ack_after_the_store_answers, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_failed_writes_are_not_acked, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_unpacked_frame_never_reaches_the_store, s_setup,
                                         vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_retention_steps, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_frames_over_the_bound_are_refused_at_once,
                                         s_setup_busy, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_alert_fires_degrades_and_resolves, s_setup_alerts,
                                         vw_tb_teardown),
    };
    return cmocka_run_group_tests_name ("telemetry actor", tests, NULL, NULL);
}
