/*  test_scheduler - the scheduler actor (actors/vw_scheduler) driven with
    proto messages through a real broker (vw_testbroker).

    Test peers play the other actors: "store" (answers the recovery load,
    the inserts and the look-ups as the test decides), "edge" (submits and
    cancels), "registry" (agent presence) and "executor" (receives the
    dispatches, reports outcomes). They join before the scheduler starts,
    because it asks the store for unfinished commands while it starts.
    Every wait is a receive with a deadline; "nothing happened" is checked
    after a ping/pong barrier, never after a sleep.
*/
#include "vw_actors.h"
#include "vw_clock.h"
#include "vw_cmdpage.h"
#include "vw_config.h"
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
    vw_config_t *config;
    vw_tb_peer_t *store, *edge, *registry, *executor;
    uint64_t load_rid;  //  rid of the scheduler's first commands_load
} t_fixture_t;

static int
s_setup (void **state)
{
    t_fixture_t *f = (t_fixture_t *) calloc (1, sizeof (t_fixture_t));
    *state = f;
    f->tb = vw_tb_new ();
    if (!f->tb || !(f->config = vw_tb_config (f->tb)) ||
        vw_tb_peers (f->tb, "store", &f->store, "edge", &f->edge, "registry", &f->registry,
                     "executor", &f->executor, NULL) ||
        vw_tb_run (f->tb, &vw_scheduler_class, f->config))
        return -1;
    vw_msg_t *load = vw_tb_expect (f->store, VW_MSG_ID_commands_load, VW_TB_TIMEOUT_MS);
    if (!load || load->commands_load.after != 0)
        return -1;
    f->load_rid = load->rid;
    vw_msg_destroy (&load);
    return 0;
}

//  The store answers the recovery load: nothing unfinished.
static void
s_load_empty (t_fixture_t *f)
{
    vw_msg_t *page = vw_msg_new (VW_MSG_ID_commands_page);
    page->rid = f->load_rid;
    assert_int_equal (vw_tb_send (f->store, "scheduler", &page), 0);
}

static void
s_presence (t_fixture_t *f, const char *agent_id, bool dispatchable, int64_t conn)
{
    vw_msg_t *p = vw_msg_new (VW_MSG_ID_agent_presence);
    vw_msg_set_str (&p->agent_presence.agent_id, agent_id);
    p->agent_presence.dispatchable = dispatchable;
    p->agent_presence.conn = conn;
    assert_int_equal (vw_tb_send (f->registry, "scheduler", &p), 0);
}

//  The edge submits a ping for agent_id with the given rid (0: a fresh one),
//  this timeout, retries and expiry.
static uint64_t
s_submit_with (t_fixture_t *f, const char *agent_id, uint64_t rid, int64_t timeout_ms,
               int64_t max_retries, int64_t expires_in_ms)
{
    vw_msg_t *s = vw_msg_new (VW_MSG_ID_command_submit);
    vw_msg_set_str (&s->command_submit.agent_id, agent_id);
    vw_msg_set_str (&s->command_submit.type, "ping");
    vw_msg_set_str (&s->command_submit.payload, "{\"n\":1}");
    s->command_submit.priority = 1;
    s->command_submit.timeout_ms = timeout_ms;
    s->command_submit.max_retries = max_retries;
    s->command_submit.expires_in_ms = expires_in_ms;
    vw_msg_set_str (&s->command_submit.created_by, "tester");
    if (!rid)
        return vw_tb_ask (f->edge, "scheduler", &s);
    s->rid = rid;
    assert_int_equal (vw_tb_send (f->edge, "scheduler", &s), 0);
    return rid;
}

static uint64_t
s_submit (t_fixture_t *f, const char *agent_id, uint64_t rid)
{
    return s_submit_with (f, agent_id, rid, 30000, 0, 3600000);
}

//  The store gets the insert and commits it: 202 with one row to queue.
//  Returns the command id (caller frees).
static char *
s_store_inserts (t_fixture_t *f, const char *agent_id)
{
    vw_msg_t *insert = vw_tb_want (f->store, VW_MSG_ID_command_insert);
    assert_string_equal (insert->command_insert.agent_id, agent_id);
    assert_string_equal (insert->command_insert.type, "ping");
    assert_string_equal (insert->command_insert.created_by, "tester");
    char *id = strdup (insert->command_insert.command_id);
    vw_msg_t *done = vw_msg_new (VW_MSG_ID_command_inserted);
    done->rid = insert->rid;
    done->command_inserted.status = 202;
    done->command_inserted.json = zsys_sprintf ("{\"command_id\":\"%s\"}", id);
    done->command_inserted.rows = zsys_sprintf ("[[\"%s\",\"%s\",1]]", id, agent_id);
    vw_msg_destroy (&insert);
    assert_int_equal (vw_tb_send (f->store, "scheduler", &done), 0);
    return id;
}

//  The edge's answer to its submit.
static void
s_expect_accepted (t_fixture_t *f, uint64_t rid, const char *id)
{
    vw_msg_t *reply = vw_tb_expect_rid (f->edge, rid, VW_TB_TIMEOUT_MS);
    if (!reply)
        fail_msg ("the edge got no answer to its submit");
    assert_int_equal (reply->id, VW_MSG_ID_reply);
    assert_non_null (strstr (reply->reply.json, id));
    vw_tb_check_reply (&reply, 202, NULL);
}

static void
s_expect_dispatch (t_fixture_t *f, const char *id, int64_t conn, int64_t attempt)
{
    vw_msg_t *d = vw_tb_want (f->executor, VW_MSG_ID_command_dispatch);
    assert_string_equal (d->command_dispatch.command_id, id);
    assert_string_equal (d->command_dispatch.agent_id, "gw-1");
    assert_int_equal (d->command_dispatch.conn, conn);
    assert_int_equal (d->command_dispatch.attempt, attempt);
    assert_string_equal (d->command_dispatch.type, "ping");
    assert_string_equal (d->command_dispatch.payload, "{\"n\":1}");
    vw_msg_destroy (&d);
}

//  The store is told of a transition (command_update with this event, and
//  this state and reason unless NULL) and answers with `status` (200: it is
//  committed; 503: the commit failed). Returns the update's attempt count.
static int64_t
s_store_update (t_fixture_t *f, const char *id, const char *event, const char *state,
                const char *reason, int status)
{
    vw_msg_t *u = vw_tb_want (f->store, VW_MSG_ID_command_update);
    assert_string_equal (u->command_update.command_id, id);
    assert_string_equal (u->command_update.event, event);
    assert_true (u->command_update.ack);
    if (state)
        assert_string_equal (u->command_update.state, state);
    if (reason)
        assert_string_equal (u->command_update.failure_reason, reason);
    int64_t attempt = u->command_update.attempt;
    vw_tb_answer (f->store, "scheduler", &u, status, NULL, status == 200 ? NULL : "database_error");
    return attempt;
}

static void
s_expect_update (t_fixture_t *f, const char *id, const char *event, const char *state)
{
    s_store_update (f, id, event, state, NULL, 200);
}

static void
s_outcome (t_fixture_t *f, const char *id, const char *outcome, int64_t conn, int64_t attempt)
{
    vw_msg_t *o = vw_msg_new (VW_MSG_ID_command_outcome);
    vw_msg_set_str (&o->command_outcome.command_id, id);
    vw_msg_set_str (&o->command_outcome.outcome, outcome);
    o->command_outcome.conn = conn;
    o->command_outcome.attempt = attempt;
    assert_int_equal (vw_tb_send (f->executor, "scheduler", &o), 0);
}

//  A command for gw-1, accepted; gw-1 online on conn 7 if `online`.
static char *
s_accepted (t_fixture_t *f, bool online, int64_t timeout_ms, int64_t max_retries,
            int64_t expires_in_ms)
{
    if (online)
        s_presence (f, "gw-1", true, 7);
    uint64_t rid = s_submit_with (f, "gw-1", 0, timeout_ms, max_retries, expires_in_ms);
    char *id = s_store_inserts (f, "gw-1");
    s_expect_accepted (f, rid, id);
    return id;
}

//  A command for gw-1 (online on conn 7), accepted and dispatched as
//  attempt 1, its executing state stored.
static char *
s_running (t_fixture_t *f, int64_t timeout_ms, int64_t max_retries, int64_t expires_in_ms)
{
    s_load_empty (f);
    char *id = s_accepted (f, true, timeout_ms, max_retries, expires_in_ms);
    s_expect_update (f, id, "executing", NULL);
    s_expect_dispatch (f, id, 7, 1);
    return id;
}

//  The edge asks to cancel a command; returns the request's rid.
static uint64_t
s_cancel (t_fixture_t *f, const char *id)
{
    vw_msg_t *cancel = vw_msg_new (VW_MSG_ID_command_cancel);
    vw_msg_set_str (&cancel->command_cancel.command_id, id);
    return vw_tb_ask (f->edge, "scheduler", &cancel);
}

//  --------------------------------------------------------------------------
//  Cases

//  Submit -> insert -> 202 -> dispatch to the online agent -> completed.
static void
test_submit_dispatch_complete (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_load_empty (f);
    s_presence (f, "gw-1", true, 7);
    uint64_t rid = s_submit (f, "gw-1", 0);
    char *id = s_store_inserts (f, "gw-1");
    s_expect_accepted (f, rid, id);
    s_expect_update (f, id, "executing", NULL);
    s_expect_dispatch (f, id, 7, 1);

    vw_msg_t *outcome = vw_msg_new (VW_MSG_ID_command_outcome);
    vw_msg_set_str (&outcome->command_outcome.command_id, id);
    vw_msg_set_str (&outcome->command_outcome.outcome, "completed");
    vw_msg_set_str (&outcome->command_outcome.result, "{\"pong\":true}");
    outcome->command_outcome.conn = 7;
    assert_int_equal (vw_tb_send (f->executor, "scheduler", &outcome), 0);
    s_expect_update (f, id, "finish", "completed");

    vw_msg_t *q = vw_msg_new (VW_MSG_ID_stats_query);
    vw_msg_t *stats = vw_tb_call (f->edge, "scheduler", &q, VW_TB_TIMEOUT_MS);
    assert_non_null (stats);
    assert_int_equal (stats->reply.status, 200);
    json_t *body = json_loads (stats->reply.json, 0, NULL);
    assert_int_equal (
        json_integer_value (json_object_get (json_object_get (body, "since_start"), "completed")),
        1);
    assert_int_equal (json_integer_value (json_object_get (body, "pending_total")), 0);
    json_decref (body);
    vw_msg_destroy (&stats);
    free (id);
}

//  An agent that is not dispatchable gets nothing until it is.
static void
test_offline_agent_waits (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_load_empty (f);
    uint64_t rid = s_submit (f, "gw-1", 0);
    char *id = s_store_inserts (f, "gw-1");
    s_expect_accepted (f, rid, id);
    s_presence (f, "gw-1", false, 0);
    assert_int_equal (vw_tb_sync (f->registry, "scheduler"), 0);
    assert_int_equal (vw_tb_kept (f->executor, VW_MSG_ID_command_dispatch), 0);
    s_presence (f, "gw-1", true, 9);
    s_expect_dispatch (f, id, 9, 1);
    free (id);
}

//  The bug vw_pending's matching fixes: the edge's submit carries the rid of
//  the scheduler's outstanding commands_load (rids are per-actor). It must
//  be served as a submit, and the load's real answer still be taken.
static void
test_submit_with_the_rid_of_the_load (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_presence (f, "gw-1", true, 7);
    uint64_t rid = s_submit (f, "gw-1", f->load_rid);
    char *id = s_store_inserts (f, "gw-1");
    s_load_empty (f);
    s_expect_accepted (f, rid, id);
    s_expect_dispatch (f, id, 7, 1);
    //  The load was answered once: no second load was asked for.
    assert_int_equal (vw_tb_sync (f->store, "scheduler"), 0);
    assert_int_equal (vw_tb_kept (f->store, VW_MSG_ID_commands_load), 0);
    free (id);
}

//  The store cannot do it: the edge gets a clear 503, nothing is queued.
static void
test_store_error_gives_503 (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_load_empty (f);
    s_presence (f, "gw-1", true, 7);
    uint64_t rid = s_submit (f, "gw-1", 0);
    vw_msg_t *insert = vw_tb_want (f->store, VW_MSG_ID_command_insert);
    vw_tb_answer_error (f->store, "scheduler", &insert, "database_error");
    vw_tb_expect_reply (f->edge, rid, 503, "unavailable");
    vw_tb_quiet (f->edge, "scheduler", f->executor, NULL);
}

//  A refusal by the store (unknown agent) is passed on as it is.
static void
test_store_refusal_passed_on (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_load_empty (f);
    uint64_t rid = s_submit (f, "gw-404", 0);
    vw_msg_t *insert = vw_tb_want (f->store, VW_MSG_ID_command_insert);
    vw_msg_t *done = vw_msg_new (VW_MSG_ID_command_inserted);
    done->rid = insert->rid;
    done->command_inserted.status = 404;
    vw_msg_set_str (&done->command_inserted.code, "not_found");
    vw_msg_set_str (&done->command_inserted.message, "no agent 'gw-404'");
    vw_msg_set_str (&done->command_inserted.rows, "[]");
    vw_msg_destroy (&insert);
    assert_int_equal (vw_tb_send (f->store, "scheduler", &done), 0);
    vw_tb_expect_reply (f->edge, rid, 404, "not_found");
}

//  Cancel of a queued command: finished as cancelled, the answer is the
//  store's row; cancel of an unknown one passes the store's 404 on.
static void
test_cancel (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_load_empty (f);
    uint64_t rid = s_submit (f, "gw-1", 0);
    char *id = s_store_inserts (f, "gw-1");
    s_expect_accepted (f, rid, id);

    rid = s_cancel (f, id);
    s_expect_update (f, id, "finish", "cancelled");
    vw_msg_t *get = vw_tb_want (f->store, VW_MSG_ID_command_get);
    assert_string_equal (get->command_get.command_id, id);
    vw_tb_answer (f->store, "scheduler", &get, 200, "{\"state\":\"cancelled\"}", NULL);
    vw_msg_t *reply = vw_tb_expect_rid (f->edge, rid, VW_TB_TIMEOUT_MS);
    assert_non_null (reply);
    assert_string_equal (reply->reply.json, "{\"state\":\"cancelled\"}");
    vw_tb_check_reply (&reply, 200, NULL);

    rid = s_cancel (f, "nope");
    get = vw_tb_want (f->store, VW_MSG_ID_command_get);
    vw_tb_answer (f->store, "scheduler", &get, 404, NULL, "not_found");
    vw_tb_expect_reply (f->edge, rid, 404, "not_found");
    free (id);
}

//  Outcomes for unknown commands, presences without an agent and messages
//  the scheduler does not serve change nothing and get no answer.
static void
test_bad_input_ignored (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_load_empty (f);
    vw_msg_t *outcome = vw_msg_new (VW_MSG_ID_command_outcome);
    vw_msg_set_str (&outcome->command_outcome.command_id, "unknown");
    vw_msg_set_str (&outcome->command_outcome.outcome, "completed");
    assert_int_equal (vw_tb_send (f->executor, "scheduler", &outcome), 0);
    outcome = vw_msg_new (VW_MSG_ID_command_outcome);
    assert_int_equal (vw_tb_send (f->executor, "scheduler", &outcome), 0);
    vw_msg_t *p = vw_msg_new (VW_MSG_ID_agent_presence);
    p->agent_presence.dispatchable = true;
    p->agent_presence.conn = 3;
    assert_int_equal (vw_tb_send (f->registry, "scheduler", &p), 0);
    vw_msg_t *stray = vw_msg_new (VW_MSG_ID_agent_create);
    assert_true (vw_tb_ask (f->edge, "scheduler", &stray) != 0);
    vw_tb_quiet (f->edge, "scheduler", f->edge, f->executor, f->store, NULL);
}

//  Waits until the wall clock is past `at` (ms): a point in time the test
//  needs behind it (an expires_at), not a guess at how long something takes.
static void
s_wall_past (int64_t at)
{
    while (vw_clock_wall_ms () <= at)
        zclock_sleep (5);
}

//  Finding 2 (issue 9): the attempt's deadline belongs to the scheduler. No
//  outcome at all (an executor or edge that died): the attempt times out
//  here, the executor is told to cancel it, the command fails as timeout.
static void
test_deadline_is_the_schedulers (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    char *id = s_running (f, 200, 0, 3600000);
    vw_msg_t *abort = vw_tb_want (f->executor, VW_MSG_ID_command_abort);
    assert_string_equal (abort->command_abort.command_id, id);
    assert_int_equal (abort->command_abort.attempt, 1);
    vw_msg_destroy (&abort);
    assert_int_equal (s_store_update (f, id, "finish", "failed", "timeout", 200), 1);
    free (id);
}

//  Finding 2: expiry while executing. The attempt is lost after expires_at:
//  the command fails as expired and is not sent again when the agent is
//  back.
static void
test_expiry_while_executing (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    char *id = s_running (f, 5000, 3, 300);
    s_wall_past (vw_clock_wall_ms () + 300);  //  created before: expired past this
    s_outcome (f, id, "lost", 7, 1);
    s_store_update (f, id, "finish", "failed", "expired", 200);
    s_presence (f, "gw-1", true, 8);
    vw_tb_quiet (f->registry, "scheduler", f->executor, f->store, NULL);
    free (id);
}

//  The same for an attempt that fails after expires_at with retries left:
//  no retry, expired.
static void
test_failure_after_expiry_is_final (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    char *id = s_running (f, 5000, 3, 300);
    //  The command was created before s_running returned: past this, it
    //  has expired whatever the load on the machine.
    s_wall_past (vw_clock_wall_ms () + 300);
    s_outcome (f, id, "failed", 7, 1);
    s_store_update (f, id, "finish", "failed", "expired", 200);
    vw_tb_quiet (f->executor, "scheduler", f->executor, f->store, NULL);
    free (id);
}

//  Finding 5: a lost attempt is stored: pending again, no next_attempt_at
//  (it waits for its agent), the attempt counted.
static void
test_lost_is_stored_as_pending (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    char *id = s_running (f, 30000, 0, 3600000);
    s_outcome (f, id, "lost", 7, 1);
    vw_msg_t *u = vw_tb_want (f->store, VW_MSG_ID_command_update);
    assert_string_equal (u->command_update.event, "pending");
    assert_int_equal (u->command_update.next_attempt_at, 0);
    assert_int_equal (u->command_update.attempt, 1);
    vw_tb_answer (f->store, "scheduler", &u, 200, NULL, NULL);
    //  An unsent one does not count its attempt.
    s_presence (f, "gw-1", true, 8);
    s_store_update (f, id, "executing", NULL, NULL, 200);
    s_expect_dispatch (f, id, 8, 2);
    s_outcome (f, id, "unsent", 8, 2);
    u = vw_tb_want (f->store, VW_MSG_ID_command_update);
    assert_string_equal (u->command_update.event, "pending");
    assert_int_equal (u->command_update.attempt, 1);
    vw_tb_answer (f->store, "scheduler", &u, 200, NULL, NULL);
    free (id);
}

//  Finding 9: an outcome of an earlier attempt (here attempt 1, timed out,
//  answering while attempt 2 runs) is not credited to the current one.
static void
test_earlier_attempt_outcome_ignored (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    char *id = s_running (f, 200, 1, 3600000);
    vw_msg_t *abort = vw_tb_want (f->executor, VW_MSG_ID_command_abort);
    vw_msg_destroy (&abort);
    s_store_update (f, id, "pending", NULL, "timeout", 200);
    //  The retry, after its backoff (about a second).
    s_expect_update (f, id, "executing", NULL);
    s_expect_dispatch (f, id, 7, 2);
    s_outcome (f, id, "completed", 7, 1);
    vw_tb_quiet (f->executor, "scheduler", f->store, NULL);
    s_outcome (f, id, "completed", 7, 2);
    s_store_update (f, id, "finish", "completed", NULL, 200);
    free (id);
}

//  Finding 3: a cancel is answered after its commit, and the agent's cancel
//  goes after it too. While the cancel is written the command is held (here
//  its result, arriving meanwhile, is put off); when the commit fails the
//  caller gets 503, the agent hears nothing and the command goes on as if
//  never asked (the result completes it).
static void
test_failed_cancel_is_undone (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    char *id = s_running (f, 30000, 0, 3600000);

    uint64_t rid = s_cancel (f, id);
    vw_msg_t *u = vw_tb_want (f->store, VW_MSG_ID_command_update);
    assert_string_equal (u->command_update.event, "finish");
    assert_string_equal (u->command_update.state, "cancelled");
    s_outcome (f, id, "completed", 7, 1);
    assert_int_equal (vw_tb_sync (f->executor, "scheduler"), 0);
    vw_tb_answer (f->store, "scheduler", &u, 503, NULL, "database_error");
    vw_tb_expect_reply (f->edge, rid, 503, "unavailable");
    s_store_update (f, id, "finish", "completed", NULL, 200);
    vw_tb_quiet (f->edge, "scheduler", f->executor, f->store, NULL);
    free (id);
}

//  A cancel that lands: the agent gets its cancel, the caller the row as
//  stored; a second cancel finds it finished (409).
static void
test_cancel_waits_for_its_commit (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    char *id = s_running (f, 30000, 0, 3600000);
    uint64_t rid = s_cancel (f, id);
    vw_msg_t *u = vw_tb_want (f->store, VW_MSG_ID_command_update);
    assert_string_equal (u->command_update.state, "cancelled");
    //  Nothing reaches the agent before the commit.
    vw_tb_quiet (f->edge, "scheduler", f->executor, NULL);
    vw_tb_answer (f->store, "scheduler", &u, 200, NULL, NULL);
    vw_msg_t *abort = vw_tb_want (f->executor, VW_MSG_ID_command_abort);
    assert_string_equal (abort->command_abort.command_id, id);
    assert_int_equal (abort->command_abort.attempt, 1);
    vw_msg_destroy (&abort);
    vw_msg_t *get = vw_tb_want (f->store, VW_MSG_ID_command_get);
    vw_tb_answer (f->store, "scheduler", &get, 200, "{\"state\":\"cancelled\"}", NULL);
    vw_tb_expect_reply (f->edge, rid, 200, NULL);

    rid = s_cancel (f, id);
    get = vw_tb_want (f->store, VW_MSG_ID_command_get);
    vw_tb_answer (f->store, "scheduler", &get, 200, "{\"state\":\"cancelled\"}", NULL);
    vw_tb_expect_reply (f->edge, rid, 409, "conflict");
    free (id);
}

//  Finding 3/4: a transition whose commit failed is written again until it
//  lands, so the row catches up with memory.
static void
test_failed_write_is_written_again (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_load_empty (f);
    char *id = s_accepted (f, true, 30000, 0, 3600000);
    s_store_update (f, id, "executing", NULL, NULL, 503);
    s_expect_dispatch (f, id, 7, 1);
    s_outcome (f, id, "completed", 7, 1);
    //  The latest state is what is written again: the end.
    s_store_update (f, id, "finish", "completed", NULL, 503);
    s_store_update (f, id, "finish", "completed", NULL, 200);
    vw_tb_quiet (f->executor, "scheduler", f->store, NULL);
    free (id);
}

//  Finding 4: the store commits a submit after the scheduler gave up on it
//  (the edge got 503). The late answer still queues the command: it runs.
static void
test_late_commit_is_queued (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_load_empty (f);
    s_presence (f, "gw-1", true, 7);
    uint64_t rid = s_submit (f, "gw-1", 0);
    vw_msg_t *insert = vw_tb_want (f->store, VW_MSG_ID_command_insert);
    vw_msg_t *reply = vw_tb_expect_rid (f->edge, rid, 15000);
    assert_non_null (reply);
    vw_tb_check_reply (&reply, 503, "unavailable");
    char *id = strdup (insert->command_insert.command_id);
    vw_msg_t *done = vw_msg_new (VW_MSG_ID_command_inserted);
    done->rid = insert->rid;
    done->command_inserted.status = 202;
    vw_msg_set_str (&done->command_inserted.request_id, id);
    done->command_inserted.rows = zsys_sprintf ("[[\"%s\",\"gw-1\",1]]", id);
    vw_msg_destroy (&insert);
    assert_int_equal (vw_tb_send (f->store, "scheduler", &done), 0);
    s_expect_update (f, id, "executing", NULL);
    s_expect_dispatch (f, id, 7, 1);
    free (id);
}

//  Finding 9: an agent revoked while the recovery pages load: its rows in
//  the pages still to come fail as agent_revoked, not later as expired.
static void
test_revoked_while_loading (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    vw_msg_t *p = vw_msg_new (VW_MSG_ID_agent_presence);
    vw_msg_set_str (&p->agent_presence.agent_id, "gw-1");
    p->agent_presence.revoked = true;
    assert_int_equal (vw_tb_send (f->registry, "scheduler", &p), 0);
    assert_int_equal (vw_tb_sync (f->registry, "scheduler"), 0);

    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    vw_cmdpage_row_t row = {.command_id = {"old-1", 5},
                            .agent_id = {"gw-1", 4},
                            .type = {"ping", 4},
                            .payload = {"{}", 2},
                            .priority = 1,
                            .seq = 1,
                            .max_retries = 3,
                            .timeout_ms = 30000,
                            .expires_at = vw_clock_wall_ms () + 3600000};
    assert_int_equal (vw_cmdpage_pack (&sbuf, &row), 0);
    vw_msg_t *page = vw_msg_new (VW_MSG_ID_commands_page);
    page->rid = f->load_rid;
    page->commands_page.count = 1;
    page->commands_page.last = 1;
    page->commands_page.rows.size = sbuf.size;
    page->commands_page.rows.data = (uint8_t *) msgpack_sbuffer_release (&sbuf);
    assert_int_equal (vw_tb_send (f->store, "scheduler", &page), 0);
    s_store_update (f, "old-1", "finish", "failed", "agent_revoked", 200);
    vw_tb_quiet (f->registry, "scheduler", f->executor, NULL);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_submit_dispatch_complete, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_offline_agent_waits, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_submit_with_the_rid_of_the_load, s_setup,
                                         vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_store_error_gives_503, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_store_refusal_passed_on, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_cancel, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_bad_input_ignored, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_deadline_is_the_schedulers, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_expiry_while_executing, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_failure_after_expiry_is_final, s_setup,
                                         vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_lost_is_stored_as_pending, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_earlier_attempt_outcome_ignored, s_setup,
                                         vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_cancel_waits_for_its_commit, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_failed_cancel_is_undone, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_failed_write_is_written_again, s_setup,
                                         vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_late_commit_is_queued, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_revoked_while_loading, s_setup, vw_tb_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
