/*  test_pending - a reply is a reply (actors/vw_pending).

    The actor under test is a bare vw_actor_t named "scheduler", run by the
    test's own thread on a real broker (vw_testbroker): the test sends its
    requests with vw_pending_request, has test peers ("store", "edge")
    answer or interfere through the broker, reads what arrives at the
    actor's socket and feeds it to vw_pending_handle, as an actor's handler
    does. Rids are per-actor counters, so "edge" can send a request with the
    very rid of the scheduler's outstanding request to "store": it must
    reach the handler, not the callback. Nothing sleeps: every wait is a
    poll with a deadline, and the timeout case runs the timer heap at a
    time past the deadline.
*/
#include "vw_actor.h"
#include "vw_broker.h"
#include "vw_clock.h"
#include "vw_pending.h"
#include "vw_testbroker.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  What the callbacks saw.
typedef struct {
    int calls;
    vw_msg_id_t reply_id;  //  VW_MSG_INVALID for NULL
    int64_t status;        //  reply.status, if a reply
    char why[64];
    void *ctx;
} t_seen_t;

typedef struct {
    vw_tb_t *tb;
    vw_tb_peer_t *store;
    vw_tb_peer_t *edge;
    vw_actor_t *actor;
    vw_pending_t *pending;
    t_seen_t seen;
} t_fixture_t;

static const vw_actor_class_t s_class = {.name = "scheduler"};

static void
s_on_answer (void *state, vw_actor_t *actor, void *ctx, vw_msg_t *reply, const char *why)
{
    t_seen_t *seen = (t_seen_t *) state;
    seen->calls++;
    seen->ctx = ctx;
    seen->reply_id = reply ? reply->id : VW_MSG_INVALID;
    seen->status = reply && reply->id == VW_MSG_ID_reply ? reply->reply.status : 0;
    snprintf (seen->why, sizeof seen->why, "%s", why ? why : "");
}

static int
s_setup (void **state)
{
    t_fixture_t *f = (t_fixture_t *) calloc (1, sizeof (t_fixture_t));
    f->tb = vw_tb_new ();
    if (!f->tb || vw_tb_peers (f->tb, "store", &f->store, "edge", &f->edge, NULL))
        return -1;
    f->actor = vw_actor_new (NULL, &s_class, vw_tb_endpoint (f->tb));
    if (!f->actor || vw_actor_join (f->actor, VW_TB_TIMEOUT_MS))
        return -1;
    f->pending = vw_pending_new (f->actor, &f->seen);
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    vw_pending_destroy (&f->pending);
    vw_actor_destroy (&f->actor);
    vw_tb_destroy (&f->tb);
    free (f);
    return 0;
}

//  The next message at the actor's socket (the test is the actor's loop).
static vw_msg_t *
s_actor_recv (t_fixture_t *f)
{
    zsock_t *sock = vw_actor_sock (f->actor);
    zmq_pollitem_t item = {zsock_resolve (sock), 0, ZMQ_POLLIN, 0};
    if (zmq_poll (&item, 1, VW_TB_TIMEOUT_MS) != 1)
        fail_msg ("nothing arrived at the actor within %d ms", VW_TB_TIMEOUT_MS);
    vw_msg_t *msg = vw_msg_recv (sock);
    assert_non_null (msg);
    return msg;
}

//  The scheduler asks the store for commands; returns the rid used, after
//  checking the store got the request with it.
static uint64_t
s_ask_store (t_fixture_t *f, int timeout_ms)
{
    vw_msg_t *load = vw_msg_new (VW_MSG_ID_commands_load);
    load->commands_load.limit = 10;
    assert_int_equal (
        vw_pending_request (f->pending, "store", &load, timeout_ms, s_on_answer, &f->seen), 0);
    assert_null (load);
    assert_int_equal (vw_pending_size (f->pending), 1);
    vw_msg_t *got = vw_tb_want (f->store, VW_MSG_ID_commands_load);
    assert_string_equal (got->peer, "scheduler");
    uint64_t rid = got->rid;
    assert_true (rid != 0);
    vw_msg_destroy (&got);
    return rid;
}

//  `from` sends a message of kind id with the given rid to the scheduler;
//  returns it as the scheduler received it.
static vw_msg_t *
s_deliver (t_fixture_t *f, vw_tb_peer_t *from, vw_msg_t *msg, uint64_t rid)
{
    msg->rid = rid;
    assert_int_equal (vw_tb_send (from, "scheduler", &msg), 0);
    return s_actor_recv (f);
}

//  The store answers the request with a commands_page: taken.
static void
s_store_answers (t_fixture_t *f, uint64_t rid)
{
    vw_msg_t *page = vw_msg_new (VW_MSG_ID_commands_page);
    vw_msg_t *got = s_deliver (f, f->store, page, rid);
    assert_true (vw_pending_handle (f->pending, got));
    vw_msg_destroy (&got);
    assert_int_equal (f->seen.calls, 1);
    assert_int_equal (f->seen.reply_id, VW_MSG_ID_commands_page);
    assert_string_equal (f->seen.why, "");
    assert_int_equal (vw_pending_size (f->pending), 0);
}

//  --------------------------------------------------------------------------
//  Cases

//  The bug this file was written for: the edge's command_submit carried the
//  rid of the scheduler's commands_load and was taken as the store's answer
//  (the submit was lost, the client got a 503 after 5 s).
static void
test_request_with_the_rid_is_not_a_reply (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    uint64_t rid = s_ask_store (f, VW_TB_TIMEOUT_MS);
    vw_msg_t *submit = vw_msg_new (VW_MSG_ID_command_submit);
    vw_msg_set_str (&submit->command_submit.agent_id, "gw-1");
    vw_msg_set_str (&submit->command_submit.type, "ping");
    vw_msg_t *got = s_deliver (f, f->edge, submit, rid);
    assert_int_equal (got->id, VW_MSG_ID_command_submit);
    assert_int_equal (got->rid, rid);
    assert_false (vw_pending_handle (f->pending, got));
    //  The handler gets it intact.
    assert_string_equal (got->command_submit.agent_id, "gw-1");
    vw_msg_destroy (&got);
    assert_int_equal (f->seen.calls, 0);
    assert_int_equal (vw_pending_size (f->pending), 1);
    //  The real answer still completes the request.
    s_store_answers (f, rid);
}

//  A request from the very peer asked, with the rid, is not its answer either.
static void
test_request_from_the_peer_asked_is_not_a_reply (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    uint64_t rid = s_ask_store (f, VW_TB_TIMEOUT_MS);
    vw_msg_t *got = s_deliver (f, f->store, vw_msg_new (VW_MSG_ID_command_update), rid);
    assert_false (vw_pending_handle (f->pending, got));
    vw_msg_destroy (&got);
    got = s_deliver (f, f->store, vw_msg_new (VW_MSG_ID_login), rid);
    assert_false (vw_pending_handle (f->pending, got));
    vw_msg_destroy (&got);
    assert_int_equal (f->seen.calls, 0);
    s_store_answers (f, rid);
}

//  A reply kind with the rid, but from another actor: not the answer.
static void
test_reply_from_another_peer_is_not_the_answer (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    uint64_t rid = s_ask_store (f, VW_TB_TIMEOUT_MS);
    vw_msg_t *reply = vw_msg_new (VW_MSG_ID_reply);
    reply->reply.status = 202;
    vw_msg_t *got = s_deliver (f, f->edge, reply, rid);
    assert_false (vw_pending_handle (f->pending, got));
    vw_msg_destroy (&got);
    //  Nor an error from another actor.
    vw_msg_t *err = vw_msg_new (VW_MSG_ID_error);
    vw_msg_set_str (&err->error.code, "unknown_actor");
    vw_msg_set_str (&err->error.target, "store");
    got = s_deliver (f, f->edge, err, rid);
    assert_false (vw_pending_handle (f->pending, got));
    vw_msg_destroy (&got);
    assert_int_equal (f->seen.calls, 0);
    assert_int_equal (vw_pending_size (f->pending), 1);
    s_store_answers (f, rid);
}

//  The answer is taken once; a second one with the rid goes to the handler.
static void
test_reply_is_taken_once (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    uint64_t rid = s_ask_store (f, VW_TB_TIMEOUT_MS);
    vw_msg_t *reply = vw_msg_new (VW_MSG_ID_reply);
    reply->reply.status = 503;
    vw_msg_t *got = s_deliver (f, f->store, reply, rid);
    assert_true (vw_pending_handle (f->pending, got));
    vw_msg_destroy (&got);
    assert_int_equal (f->seen.calls, 1);
    assert_int_equal (f->seen.reply_id, VW_MSG_ID_reply);
    assert_int_equal (f->seen.status, 503);
    assert_ptr_equal (f->seen.ctx, &f->seen);
    got = s_deliver (f, f->store, vw_msg_new (VW_MSG_ID_commands_page), rid);
    assert_false (vw_pending_handle (f->pending, got));
    vw_msg_destroy (&got);
    assert_int_equal (f->seen.calls, 1);
    //  A rid nobody asked with, and rid 0, are not answers.
    got = s_deliver (f, f->store, vw_msg_new (VW_MSG_ID_reply), rid + 1000);
    assert_false (vw_pending_handle (f->pending, got));
    vw_msg_destroy (&got);
    got = s_deliver (f, f->store, vw_msg_new (VW_MSG_ID_reply), 0);
    assert_false (vw_pending_handle (f->pending, got));
    vw_msg_destroy (&got);
}

//  The store may answer with `error` (e.g. a page it cannot read).
static void
test_error_from_the_peer_asked (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    uint64_t rid = s_ask_store (f, VW_TB_TIMEOUT_MS);
    vw_msg_t *err = vw_msg_new (VW_MSG_ID_error);
    vw_msg_set_str (&err->error.code, "database_error");
    vw_msg_t *got = s_deliver (f, f->store, err, rid);
    assert_true (vw_pending_handle (f->pending, got));
    vw_msg_destroy (&got);
    assert_int_equal (f->seen.calls, 1);
    assert_int_equal (f->seen.reply_id, VW_MSG_INVALID);
    assert_string_equal (f->seen.why, "database_error");
}

//  The broker's error for an unreachable destination completes the request.
static void
test_broker_error_for_unknown_actor (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    vw_msg_t *get = vw_msg_new (VW_MSG_ID_command_get);
    assert_int_equal (
        vw_pending_request (f->pending, "nobody", &get, VW_TB_TIMEOUT_MS, s_on_answer, f), 0);
    vw_msg_t *got = s_actor_recv (f);
    assert_int_equal (got->id, VW_MSG_ID_error);
    assert_string_equal (got->peer, VW_BROKER_ADDRESS);
    assert_string_equal (got->error.target, "nobody");
    assert_true (vw_pending_handle (f->pending, got));
    vw_msg_destroy (&got);
    assert_int_equal (f->seen.calls, 1);
    assert_ptr_equal (f->seen.ctx, f);
    assert_int_equal (f->seen.reply_id, VW_MSG_INVALID);
    assert_string_equal (f->seen.why, "unknown_actor");
    assert_int_equal (vw_pending_size (f->pending), 0);
}

//  An error from the broker about another destination is not the answer.
static void
test_broker_error_for_another_target (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    uint64_t rid = s_ask_store (f, VW_TB_TIMEOUT_MS);
    vw_msg_t *err = vw_msg_new (VW_MSG_ID_error);
    err->rid = rid;
    snprintf (err->peer, sizeof err->peer, "%s", VW_BROKER_ADDRESS);
    vw_msg_set_str (&err->error.code, "unknown_actor");
    vw_msg_set_str (&err->error.target, "auth");
    assert_false (vw_pending_handle (f->pending, err));
    vw_msg_set_str (&err->error.target, NULL);
    assert_false (vw_pending_handle (f->pending, err));
    vw_msg_set_str (&err->error.target, "store");
    assert_true (vw_pending_handle (f->pending, err));
    vw_msg_destroy (&err);
    assert_int_equal (f->seen.calls, 1);
    assert_string_equal (f->seen.why, "unknown_actor");
}

//  A request to the broker itself is answered by the broker, with the same
//  kind (broker_stats); the edge's broker_stats request is not an answer.
static void
test_broker_answers_broker_stats (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    vw_msg_t *ask = vw_msg_new (VW_MSG_ID_broker_stats);
    assert_int_equal (vw_pending_request (f->pending, VW_BROKER_ADDRESS, &ask, VW_TB_TIMEOUT_MS,
                                          s_on_answer, &f->seen),
                      0);
    vw_msg_t *got = s_actor_recv (f);
    uint64_t rid = got->rid;
    assert_int_equal (got->id, VW_MSG_ID_broker_stats);
    //  Not yet handled: first the edge's look-alike with the same rid.
    vw_msg_t *fake = s_deliver (f, f->edge, vw_msg_new (VW_MSG_ID_broker_stats), rid);
    assert_false (vw_pending_handle (f->pending, fake));
    vw_msg_destroy (&fake);
    assert_int_equal (f->seen.calls, 0);
    assert_true (vw_pending_handle (f->pending, got));
    assert_non_null (got->broker_stats.json);
    vw_msg_destroy (&got);
    assert_int_equal (f->seen.calls, 1);
    assert_int_equal (f->seen.reply_id, VW_MSG_ID_broker_stats);
}

//  No answer by the deadline: the callback runs once with "timeout", and a
//  late answer is not taken.
static void
test_timeout (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    uint64_t rid = s_ask_store (f, 200);
    vw_timers_t *timers = vw_actor_timers (f->actor);
    //  Before the deadline nothing fires; past it, the timer does.
    vw_timers_run (timers, vw_clock_mono_ms ());
    assert_int_equal (f->seen.calls, 0);
    assert_int_equal (vw_timers_run (timers, vw_clock_mono_ms () + 1000), 1);
    assert_int_equal (f->seen.calls, 1);
    assert_int_equal (f->seen.reply_id, VW_MSG_INVALID);
    assert_string_equal (f->seen.why, "timeout");
    assert_int_equal (vw_pending_size (f->pending), 0);
    vw_msg_t *got = s_deliver (f, f->store, vw_msg_new (VW_MSG_ID_commands_page), rid);
    assert_false (vw_pending_handle (f->pending, got));
    vw_msg_destroy (&got);
    assert_int_equal (f->seen.calls, 1);
}

//  What is still pending at destroy gets "shutdown"; a failed send keeps
//  the message with the caller and no callback runs.
static void
test_shutdown_and_failed_send (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_ask_store (f, VW_TB_TIMEOUT_MS);
    vw_msg_t *load = vw_msg_new (VW_MSG_ID_commands_load);
    char long_name[VW_ADDR_MAX + 8];
    memset (long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    assert_int_equal (vw_pending_request (f->pending, long_name, &load, 100, s_on_answer, &f->seen),
                      -1);
    assert_non_null (load);
    vw_msg_destroy (&load);
    assert_int_equal (vw_pending_size (f->pending), 1);
    vw_pending_destroy (&f->pending);
    assert_int_equal (f->seen.calls, 1);
    assert_string_equal (f->seen.why, "shutdown");
}

//  The catalogue: every kind named as an answer is a reply kind, and the
//  requests are not.
#define S_X_MSG(name, doc) {#name, doc},
#define S_X_F(msg, type, field, doc)
#define S_X_END(name)
static const struct {
    const char *name;
    const char *doc;
} s_docs[] = {VW_CATALOGUE (S_X_MSG, S_X_F, S_X_END)};
#undef S_X_MSG
#undef S_X_F
#undef S_X_END

static void
test_catalogue_reply_kinds (void **state)
{
    int answers = 0;
    for (size_t i = 0; i < sizeof s_docs / sizeof s_docs[0]; i++) {
        const char *at = strstr (s_docs[i].doc, "(answer: ");
        if (!at)
            continue;
        at += strlen ("(answer: ");
        size_t len = strcspn (at, " )");
        vw_msg_id_t id = vw_msg_id_from_name (at, len);
        if (!vw_msg_is_reply (id))
            fail_msg ("'%s' is answered with '%.*s', which is not a reply kind", s_docs[i].name,
                      (int) len, at);
        answers++;
    }
    assert_true (answers >= 20);
    const vw_msg_id_t replies[] = {
        VW_MSG_ID_reply,        VW_MSG_ID_error,        VW_MSG_ID_pong,
        VW_MSG_ID_actor_joined, VW_MSG_ID_broker_stats, VW_MSG_ID_agent_record,
        VW_MSG_ID_user_record,  VW_MSG_ID_login_result, VW_MSG_ID_command_inserted,
        VW_MSG_ID_commands_page};
    for (size_t i = 0; i < sizeof replies / sizeof replies[0]; i++)
        assert_true (vw_msg_is_reply (replies[i]));
    const vw_msg_id_t requests[] = {
        VW_MSG_ID_command_submit, VW_MSG_ID_commands_load, VW_MSG_ID_command_insert,
        VW_MSG_ID_agent_lookup,   VW_MSG_ID_login,         VW_MSG_ID_session_hello,
        VW_MSG_ID_command_update, VW_MSG_ID_ping,          VW_MSG_ID_bundle,
        VW_MSG_ID_event,          VW_MSG_ID_agent_create,  VW_MSG_ID_command_event};
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++)
        assert_false (vw_msg_is_reply (requests[i]));
    assert_false (vw_msg_is_reply (VW_MSG_INVALID));
    assert_false (vw_msg_is_reply (VW_MSG_COUNT));
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_request_with_the_rid_is_not_a_reply, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_request_from_the_peer_asked_is_not_a_reply, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_reply_from_another_peer_is_not_the_answer, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_reply_is_taken_once, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_error_from_the_peer_asked, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_broker_error_for_unknown_actor, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_broker_error_for_another_target, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_broker_answers_broker_stats, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_timeout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_shutdown_and_failed_send, s_setup, s_teardown),
        cmocka_unit_test (test_catalogue_reply_kinds),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
