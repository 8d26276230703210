/*  test_executor - the executor actor (actors/vw_executor) driven with
    proto messages through a real broker (vw_testbroker).

    Test peers play "scheduler" (dispatches, aborts; gets the outcomes),
    "edge" (gets command_send, reports the agent's ack/result and closes)
    and "store" (gets the delivered update of a command still running: a
    quick one's ack travels with its outcome). The timeout case waits for
    the executor's own timer through a receive with a deadline, never a
    sleep.
*/
#include "vw_actors.h"
#include "vw_clock.h"
#include "vw_testbroker.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    vw_tb_t *tb;
    vw_tb_peer_t *scheduler, *edge, *store;
} t_fixture_t;

static int
s_setup (void **state)
{
    t_fixture_t *f = (t_fixture_t *) calloc (1, sizeof (t_fixture_t));
    *state = f;
    f->tb = vw_tb_new ();
    if (!f->tb ||
        vw_tb_peers (f->tb, "scheduler", &f->scheduler, "edge", &f->edge, "store", &f->store, NULL))
        return -1;
    return vw_tb_run (f->tb, &vw_executor_class, NULL);
}

static void
s_dispatch_attempt (t_fixture_t *f, const char *id, int64_t conn, int64_t timeout_ms,
                    int64_t attempt)
{
    vw_msg_t *d = vw_msg_new (VW_MSG_ID_command_dispatch);
    vw_msg_set_str (&d->command_dispatch.command_id, id);
    vw_msg_set_str (&d->command_dispatch.agent_id, "gw-1");
    d->command_dispatch.conn = conn;
    vw_msg_set_str (&d->command_dispatch.edge, "edge");
    vw_msg_set_str (&d->command_dispatch.type, "ping");
    vw_msg_set_str (&d->command_dispatch.payload, "{}");
    d->command_dispatch.timeout_ms = timeout_ms;
    d->command_dispatch.attempt = attempt;
    assert_int_equal (vw_tb_send (f->scheduler, "executor", &d), 0);
}

static void
s_dispatch (t_fixture_t *f, const char *id, int64_t conn, int64_t timeout_ms)
{
    s_dispatch_attempt (f, id, conn, timeout_ms, 1);
}

//  The edge is asked to write the command (type set) or a cancel (NULL).
static void
s_expect_send (t_fixture_t *f, const char *id, int64_t conn, const char *type)
{
    vw_msg_t *s = vw_tb_want (f->edge, VW_MSG_ID_command_send);
    assert_string_equal (s->command_send.command_id, id);
    assert_int_equal (s->command_send.conn, conn);
    if (type) {
        assert_string_equal (s->command_send.type, type);
        assert_string_equal (s->command_send.payload, "{}");
        assert_int_equal (s->command_send.attempt, 1);
    }
    else
        assert_null (s->command_send.type);
    vw_msg_destroy (&s);
}

//  attempt: the result's echo, 0 for an agent that sends none.
static void
s_event_attempt (t_fixture_t *f, const char *id, int64_t conn, const char *kind, const char *status,
                 int64_t attempt)
{
    vw_msg_t *e = vw_msg_new (VW_MSG_ID_command_event);
    e->command_event.conn = conn;
    vw_msg_set_str (&e->command_event.agent_id, "gw-1");
    vw_msg_set_str (&e->command_event.command_id, id);
    vw_msg_set_str (&e->command_event.kind, kind);
    vw_msg_set_str (&e->command_event.status, status);
    if (status)
        vw_msg_set_str (&e->command_event.result, "{\"pong\":true}");
    e->command_event.attempt = attempt;
    assert_int_equal (vw_tb_send (f->edge, "executor", &e), 0);
}

static void
s_event (t_fixture_t *f, const char *id, int64_t conn, const char *kind, const char *status)
{
    s_event_attempt (f, id, conn, kind, status, 0);
}

static void
s_expect_outcome (t_fixture_t *f, const char *id, const char *outcome, int64_t conn)
{
    vw_msg_t *o = vw_tb_want (f->scheduler, VW_MSG_ID_command_outcome);
    assert_string_equal (o->command_outcome.command_id, id);
    assert_string_equal (o->command_outcome.outcome, outcome);
    assert_int_equal (o->command_outcome.conn, conn);
    vw_msg_destroy (&o);
}

//  Nothing more reaches any peer (after a barrier).
static void
s_expect_quiet (t_fixture_t *f)
{
    vw_tb_quiet (f->edge, "executor", f->edge, f->scheduler, f->store, NULL);
}

//  --------------------------------------------------------------------------
//  Cases

//  dispatch -> command_send to the edge; ack, then result -> one outcome
//  carrying the ack's time (written with the command's end, not alone).
static void
test_dispatch_ack_result (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_dispatch (f, "cmd-1", 7, 30000);
    s_expect_send (f, "cmd-1", 7, "ping");
    s_event (f, "cmd-1", 7, "ack", NULL);
    s_event (f, "cmd-1", 7, "result", "completed");
    vw_msg_t *o = vw_tb_want (f->scheduler, VW_MSG_ID_command_outcome);
    assert_string_equal (o->command_outcome.outcome, "completed");
    assert_string_equal (o->command_outcome.result, "{\"pong\":true}");
    assert_true (o->command_outcome.delivered_at > 0);
    vw_msg_destroy (&o);
    //  A second result for it is late: the first word counts. No delivered
    //  write follows, now or when the ack timer comes (the flight is over).
    s_event (f, "cmd-1", 7, "result", "failed");
    s_expect_quiet (f);
}

//  A command still running after the ack: its delivered_at is written on
//  its own, with the ack's time.
static void
test_ack_of_running_command (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_dispatch (f, "cmd-9", 7, 30000);
    s_expect_send (f, "cmd-9", 7, "ping");
    int64_t before = vw_clock_wall_ms ();
    s_event (f, "cmd-9", 7, "ack", NULL);
    vw_msg_t *u = vw_tb_want (f->store, VW_MSG_ID_command_update);
    assert_string_equal (u->command_update.command_id, "cmd-9");
    assert_string_equal (u->command_update.event, "delivered");
    assert_true (u->command_update.ts >= before);
    vw_msg_destroy (&u);
    s_event (f, "cmd-9", 7, "result", "completed");
    vw_msg_t *o = vw_tb_want (f->scheduler, VW_MSG_ID_command_outcome);
    assert_int_equal (o->command_outcome.delivered_at, 0);  //  written already
    vw_msg_destroy (&o);
}

//  The agent's progress: written to the store (one-way) and published as
//  command.progress, with the message cut at 1,024 bytes on a character
//  boundary; only from the attempt's own session.
static void
test_progress_is_kept_and_published (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    zsock_t *events = vw_tb_events (f->tb, "command.progress");
    s_dispatch (f, "cmd-p", 7, 30000);
    s_expect_send (f, "cmd-p", 7, "ping");
    //  1,023 bytes of 'a' then a two-byte character: cut before it.
    char message[1100];
    memset (message, 'a', 1023);
    strcpy (message + 1023, "\xc3\xa9 and more");
    vw_msg_t *e = vw_msg_new (VW_MSG_ID_command_event);
    e->command_event.conn = 7;
    vw_msg_set_str (&e->command_event.agent_id, "gw-1");
    vw_msg_set_str (&e->command_event.command_id, "cmd-p");
    vw_msg_set_str (&e->command_event.kind, "progress");
    e->command_event.progress = 40;
    vw_msg_set_str (&e->command_event.message, message);
    assert_int_equal (vw_tb_send (f->edge, "executor", &e), 0);
    vw_msg_t *u = vw_tb_want (f->store, VW_MSG_ID_command_update);
    assert_string_equal (u->command_update.event, "progress");
    assert_string_equal (u->command_update.command_id, "cmd-p");
    assert_int_equal (u->command_update.progress, 40);
    assert_int_equal (strlen (u->command_update.message), 1023);
    vw_msg_destroy (&u);
    char *topic = NULL, *body = NULL;
    assert_int_equal (zsock_recv (events, "ss", &topic, &body), 0);
    assert_string_equal (topic, "command.progress");
    json_t *event = json_loads (body, 0, NULL);
    assert_non_null (event);
    assert_string_equal (json_string_value (json_object_get (event, "command_id")), "cmd-p");
    assert_int_equal (json_integer_value (json_object_get (event, "progress")), 40);
    assert_int_equal (json_integer_value (json_object_get (event, "attempt")), 1);
    assert_int_equal (strlen (json_string_value (json_object_get (event, "message"))), 1023);
    json_decref (event);
    zstr_free (&topic);
    zstr_free (&body);
    //  From another session: ignored.
    s_event (f, "cmd-p", 8, "progress", NULL);
    s_expect_quiet (f);
}

static void
test_failed_result (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_dispatch (f, "cmd-2", 7, 30000);
    s_expect_send (f, "cmd-2", 7, "ping");
    s_event (f, "cmd-2", 7, "result", "failed");
    s_expect_outcome (f, "cmd-2", "failed", 7);
}

//  The deadline is the scheduler's: its abort names the attempt, and only
//  that attempt is cancelled (an abort for another one changes nothing).
static void
test_abort_names_its_attempt (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_dispatch_attempt (f, "cmd-3", 8, 50, 2);
    vw_msg_t *s = vw_tb_want (f->edge, VW_MSG_ID_command_send);
    assert_int_equal (s->command_send.attempt, 2);
    vw_msg_destroy (&s);
    vw_msg_t *abort = vw_msg_new (VW_MSG_ID_command_abort);
    vw_msg_set_str (&abort->command_abort.command_id, "cmd-3");
    abort->command_abort.attempt = 1;
    assert_int_equal (vw_tb_send (f->scheduler, "executor", &abort), 0);
    s_expect_quiet (f);
    abort = vw_msg_new (VW_MSG_ID_command_abort);
    vw_msg_set_str (&abort->command_abort.command_id, "cmd-3");
    abort->command_abort.attempt = 2;
    assert_int_equal (vw_tb_send (f->scheduler, "executor", &abort), 0);
    s_expect_send (f, "cmd-3", 8, NULL);
    s_expect_quiet (f);
}

//  Finding 9 (issue 9): a late result of attempt 1 arriving while attempt 2
//  is in flight on the same session is not credited to attempt 2. A result
//  without the echo (an older agent) is taken.
static void
test_earlier_attempts_result_ignored (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_dispatch_attempt (f, "cmd-9", 7, 30000, 2);
    vw_msg_t *s = vw_tb_want (f->edge, VW_MSG_ID_command_send);
    vw_msg_destroy (&s);
    s_event_attempt (f, "cmd-9", 7, "result", "completed", 1);
    s_expect_quiet (f);
    s_event_attempt (f, "cmd-9", 7, "result", "failed", 2);
    s_expect_outcome (f, "cmd-9", "failed", 7);
    s_dispatch_attempt (f, "cmd-10", 7, 30000, 3);
    s = vw_tb_want (f->edge, VW_MSG_ID_command_send);
    vw_msg_destroy (&s);
    s_event (f, "cmd-10", 7, "result", "completed");
    vw_msg_t *o = vw_tb_want (f->scheduler, VW_MSG_ID_command_outcome);
    assert_int_equal (o->command_outcome.attempt, 3);
    vw_msg_destroy (&o);
}

//  No session: unsent at once, nothing written.
static void
test_no_session_unsent (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_dispatch (f, "cmd-4", 0, 30000);
    s_expect_outcome (f, "cmd-4", "unsent", 0);
    s_expect_quiet (f);
}

//  The session closes: what was in flight on it is lost; the edge could not
//  deliver: unsent; abort: a cancel frame and no outcome.
static void
test_closed_undeliverable_abort (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_dispatch (f, "cmd-5", 9, 30000);
    s_dispatch (f, "cmd-6", 10, 30000);
    s_dispatch (f, "cmd-7", 11, 30000);
    s_expect_send (f, "cmd-5", 9, "ping");
    s_expect_send (f, "cmd-6", 10, "ping");
    s_expect_send (f, "cmd-7", 11, "ping");
    vw_msg_t *closed = vw_msg_new (VW_MSG_ID_session_closed);
    closed->session_closed.conn = 9;
    assert_int_equal (vw_tb_send (f->edge, "executor", &closed), 0);
    s_expect_outcome (f, "cmd-5", "lost", 9);
    s_event (f, "cmd-6", 10, "undeliverable", NULL);
    s_expect_outcome (f, "cmd-6", "unsent", 10);
    vw_msg_t *abort = vw_msg_new (VW_MSG_ID_command_abort);
    vw_msg_set_str (&abort->command_abort.command_id, "cmd-7");
    assert_int_equal (vw_tb_send (f->scheduler, "executor", &abort), 0);
    s_expect_send (f, "cmd-7", 11, NULL);
    //  A result after the abort is ignored.
    s_event (f, "cmd-7", 11, "result", "completed");
    s_expect_quiet (f);
}

//  The edge holding the sessions is gone (the broker says so; here it
//  left): everything in flight on it is lost, and queued again by the
//  scheduler.
static void
test_edge_lost_loses_its_flights (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_dispatch (f, "cmd-8", 12, 30000);
    s_dispatch (f, "cmd-9", 13, 30000);
    s_expect_send (f, "cmd-8", 12, "ping");
    s_expect_send (f, "cmd-9", 13, "ping");
    vw_msg_t *leave = vw_msg_new (VW_MSG_ID_actor_leave);
    assert_int_equal (vw_tb_send (f->edge, "broker", &leave), 0);
    int seen = 0;  //  in either order
    for (int i = 0; i < 2; i++) {
        vw_msg_t *o = vw_tb_want (f->scheduler, VW_MSG_ID_command_outcome);
        assert_string_equal (o->command_outcome.outcome, "lost");
        bool eight = streq (o->command_outcome.command_id, "cmd-8");
        assert_int_equal (o->command_outcome.conn, eight ? 12 : 13);
        seen |= eight ? 1 : 2;
        vw_msg_destroy (&o);
    }
    assert_int_equal (seen, 3);
    //  What an edge that is gone says later is not taken.
    s_event (f, "cmd-8", 12, "result", "completed");
    s_expect_quiet (f);
}

//  Only the session the attempt went to may answer; malformed messages and
//  ones the executor does not serve are ignored.
static void
test_bad_input_ignored (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_dispatch (f, "cmd-8", 12, 30000);
    s_expect_send (f, "cmd-8", 12, "ping");
    s_event (f, "cmd-8", 99, "result", "completed");        //  another connection
    s_event (f, "cmd-8", 12, NULL, NULL);                   //  no kind
    s_event (f, "unknown", 12, "result", "completed");      //  not in flight
    vw_msg_t *d = vw_msg_new (VW_MSG_ID_command_dispatch);  //  no ids
    d->command_dispatch.conn = 12;
    assert_int_equal (vw_tb_send (f->scheduler, "executor", &d), 0);
    vw_msg_t *stray = vw_msg_new (VW_MSG_ID_login);
    assert_true (vw_tb_ask (f->edge, "executor", &stray) != 0);
    s_expect_quiet (f);
    //  The real answer still counts.
    s_event (f, "cmd-8", 12, "result", "completed");
    s_expect_outcome (f, "cmd-8", "completed", 12);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_ack_of_running_command, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_dispatch_ack_result, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_failed_result, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_progress_is_kept_and_published, s_setup,
                                         vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_abort_names_its_attempt, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_earlier_attempts_result_ignored, s_setup,
                                         vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_no_session_unsent, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_closed_undeliverable_abort, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_edge_lost_loses_its_flights, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_bad_input_ignored, s_setup, vw_tb_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
