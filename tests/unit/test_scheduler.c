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

//  The edge submits a ping for agent_id with the given rid (0: a fresh one).
static uint64_t
s_submit (t_fixture_t *f, const char *agent_id, uint64_t rid)
{
    vw_msg_t *s = vw_msg_new (VW_MSG_ID_command_submit);
    vw_msg_set_str (&s->command_submit.agent_id, agent_id);
    vw_msg_set_str (&s->command_submit.type, "ping");
    vw_msg_set_str (&s->command_submit.payload, "{\"n\":1}");
    s->command_submit.priority = 1;
    s->command_submit.timeout_ms = 30000;
    s->command_submit.max_retries = 0;
    s->command_submit.expires_in_ms = 3600000;
    vw_msg_set_str (&s->command_submit.created_by, "tester");
    if (!rid)
        return vw_tb_ask (f->edge, "scheduler", &s);
    s->rid = rid;
    assert_int_equal (vw_tb_send (f->edge, "scheduler", &s), 0);
    return rid;
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

//  The store is told of a transition (command_update with this event).
static void
s_expect_update (t_fixture_t *f, const char *id, const char *event, const char *state)
{
    vw_msg_t *u = vw_tb_want (f->store, VW_MSG_ID_command_update);
    assert_string_equal (u->command_update.command_id, id);
    assert_string_equal (u->command_update.event, event);
    if (state)
        assert_string_equal (u->command_update.state, state);
    vw_msg_destroy (&u);
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

    vw_msg_t *cancel = vw_msg_new (VW_MSG_ID_command_cancel);
    vw_msg_set_str (&cancel->command_cancel.command_id, id);
    rid = vw_tb_ask (f->edge, "scheduler", &cancel);
    s_expect_update (f, id, "finish", "cancelled");
    vw_msg_t *get = vw_tb_want (f->store, VW_MSG_ID_command_get);
    assert_string_equal (get->command_get.command_id, id);
    vw_tb_answer (f->store, "scheduler", &get, 200, "{\"state\":\"cancelled\"}", NULL);
    vw_msg_t *reply = vw_tb_expect_rid (f->edge, rid, VW_TB_TIMEOUT_MS);
    assert_non_null (reply);
    assert_string_equal (reply->reply.json, "{\"state\":\"cancelled\"}");
    vw_tb_check_reply (&reply, 200, NULL);

    cancel = vw_msg_new (VW_MSG_ID_command_cancel);
    vw_msg_set_str (&cancel->command_cancel.command_id, "nope");
    rid = vw_tb_ask (f->edge, "scheduler", &cancel);
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
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
