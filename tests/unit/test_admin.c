/*  test_admin - the admin actor (actors/vw_admin) driven over its ROUTER
    socket with JSON ops, from a REQ or a DEALER client, while test peers on
    a real broker (vw_testbroker) play "store", "registry", "scheduler" and
    "auth" and answer the proto requests the ops become. The admin socket
    binds a fresh inproc:// endpoint per case. Every wait is a receive with
    a deadline; nothing sleeps.
*/
#include "vw_actors.h"
#include "vw_commands.h"
#include "vw_config.h"
#include "vw_lifecycle.h"
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
    vw_commands_t *commands;
    vw_tb_peer_t *store;
    zsock_t *client;  //  DEALER
} t_fixture_t;

static int
s_setup (void **state)
{
    t_fixture_t *f = (t_fixture_t *) calloc (1, sizeof (t_fixture_t));
    *state = f;
    f->tb = vw_tb_new ();
    f->commands = vw_commands_new ();
    if (!f->tb || !(f->config = vw_tb_config (f->tb)) || !f->commands)
        return -1;
    f->config->commands = f->commands;
    char endpoint[96];
    vw_tb_fresh_endpoint (endpoint, sizeof endpoint, "admin");
    free (f->config->admin_endpoint);
    f->config->admin_endpoint = strdup (endpoint);
    if (vw_tb_peers (f->tb, "store", &f->store, NULL) ||
        vw_tb_run (f->tb, &vw_admin_class, f->config))
        return -1;
    f->client = zsock_new_dealer (endpoint);
    if (!f->client)
        return -1;
    zsock_set_rcvtimeo (f->client, VW_TB_TIMEOUT_MS);
    return 0;
}

static int
s_teardown (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    zsock_destroy (&f->client);
    vw_tb_destroy (&f->tb);  //  the admin, then the config that names the commands
    vw_commands_destroy (&f->commands);
    free (f);
    return 0;
}

//  Sends a request frame from the DEALER client.
static void
s_send (t_fixture_t *f, const char *text)
{
    assert_int_equal (zstr_send (f->client, text), 0);
}

//  The answer to the client's request (fails after the deadline).
static json_t *
s_answer (t_fixture_t *f)
{
    char *text = zstr_recv (f->client);
    if (!text)
        fail_msg ("no answer on the admin socket within %d ms", VW_TB_TIMEOUT_MS);
    json_t *answer = json_loads (text, 0, NULL);
    zstr_free (&text);
    assert_non_null (answer);
    return answer;
}

static json_t *
s_op (t_fixture_t *f, const char *text)
{
    s_send (f, text);
    return s_answer (f);
}

static void
s_expect_error (json_t *answer, const char *code)
{
    if (!json_is_false (json_object_get (answer, "ok"))) {
        char *text = json_dumps (answer, 0);
        fail_msg ("wanted error %s, got %s", code, text);
    }
    assert_string_equal (
        json_string_value (json_object_get (json_object_get (answer, "error"), "code")), code);
    json_decref (answer);
}

//  The "data" member of a successful answer (borrowed from answer).
static json_t *
s_data (json_t *answer)
{
    if (!json_is_true (json_object_get (answer, "ok"))) {
        char *text = json_dumps (answer, 0);
        fail_msg ("wanted ok, got %s", text);
    }
    return json_object_get (answer, "data");
}

//  --------------------------------------------------------------------------
//  Cases

//  ping from a REQ client (empty delimiter frame) and from the DEALER.
static void
test_ping_req_and_dealer (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    zsock_t *req = zsock_new_req (f->config->admin_endpoint);
    assert_non_null (req);
    zsock_set_rcvtimeo (req, VW_TB_TIMEOUT_MS);
    assert_int_equal (zstr_send (req, "{\"op\":\"ping\"}"), 0);
    char *text = zstr_recv (req);
    assert_non_null (text);
    json_t *answer = json_loads (text, 0, NULL);
    zstr_free (&text);
    assert_true (json_is_true (json_object_get (s_data (answer), "pong")));
    json_decref (answer);
    zsock_destroy (&req);

    answer = s_op (f, "{\"op\":\"ping\",\"args\":{}}");
    assert_true (json_is_true (json_object_get (s_data (answer), "pong")));
    json_decref (answer);
}

//  Malformed requests get a clear error, and nothing goes to any actor.
static void
test_bad_requests (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_expect_error (s_op (f, "not json"), "bad_request");
    s_expect_error (s_op (f, "[1,2]"), "bad_request");
    s_expect_error (s_op (f, "{\"args\":{}}"), "bad_request");
    s_expect_error (s_op (f, "{\"op\":7}"), "bad_request");
    s_expect_error (s_op (f, "{\"op\":\"ping\",\"args\":[]}"), "bad_request");
    s_expect_error (s_op (f, "{\"op\":\"ping\",\"op\":\"ping\"}"), "bad_request");
    s_expect_error (s_op (f, "{\"op\":\"no.such.op\"}"), "unknown_op");
    s_expect_error (s_op (f, "{\"op\":\"agents.get\",\"args\":{}}"), "bad_request");
    s_expect_error (s_op (f, "{\"op\":\"agents.get\",\"args\":{\"agent_id\":\"../x\"}}"),
                    "bad_request");
    s_expect_error (
        s_op (f, "{\"op\":\"agents.get\",\"args\":{\"agent_id\":\"gw-1\",\"extra\":1}}"),
        "bad_request");
    s_expect_error (s_op (f, "{\"op\":\"commands.get\",\"args\":{\"command_id\":5}}"),
                    "bad_request");
    s_expect_error (s_op (f, "{\"op\":\"log.level\",\"args\":{\"level\":\"loud\"}}"),
                    "bad_request");
    s_expect_error (
        s_op (f, "{\"op\":\"tokens.issue\",\"args\":{\"sub\":\"ops\",\"role\":\"operator\"}}"),
        "bad_request");
    //  The store heard nothing (no audit either).
    vw_tb_quiet (f->store, "admin", f->store, NULL);
}

//  agents.get goes to the registry (which holds the live agents and asks
//  the store for the others); its reply is the op's answer.
static void
test_agents_get_via_registry (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    vw_tb_peer_t *registry = vw_tb_peer (f->tb, "registry");
    assert_non_null (registry);
    s_send (f, "{\"op\":\"agents.get\",\"args\":{\"agent_id\":\"gw-1\"}}");
    vw_msg_t *get = vw_tb_want (registry, VW_MSG_ID_agent_get);
    assert_string_equal (get->agent_get.agent_id, "gw-1");
    vw_tb_answer (registry, "admin", &get, 200, "{\"agent_id\":\"gw-1\",\"status\":\"offline\"}",
                  NULL);
    json_t *answer = s_answer (f);
    assert_string_equal (json_string_value (json_object_get (s_data (answer), "status")),
                         "offline");
    json_decref (answer);

    s_send (f, "{\"op\":\"agents.get\",\"args\":{\"agent_id\":\"gw-2\"}}");
    get = vw_tb_want (registry, VW_MSG_ID_agent_get);
    vw_tb_answer (registry, "admin", &get, 404, NULL, "not_found");
    s_expect_error (s_answer (f), "not_found");
}

//  A reply with the rid of the admin's request, but from another actor, is
//  not the answer: the registry's real reply is.
static void
test_reply_from_the_wrong_peer_ignored (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    vw_tb_peer_t *registry = vw_tb_peer (f->tb, "registry");
    assert_non_null (registry);
    s_send (f, "{\"op\":\"agents.get\",\"args\":{\"agent_id\":\"gw-1\"}}");
    vw_msg_t *get = vw_tb_want (registry, VW_MSG_ID_agent_get);
    vw_msg_t *forged = vw_msg_new (VW_MSG_ID_reply);
    forged->rid = get->rid;
    forged->reply.status = 200;
    vw_msg_set_str (&forged->reply.json, "{\"forged\":true}");
    assert_int_equal (vw_tb_send (f->store, "admin", &forged), 0);
    //  The admin has handled it (barrier) and the client has no answer yet.
    assert_int_equal (vw_tb_sync (f->store, "admin"), 0);
    assert_false (zsock_events (f->client) & ZMQ_POLLIN);
    vw_tb_answer (registry, "admin", &get, 200, "{\"agent_id\":\"gw-1\"}", NULL);
    json_t *answer = s_answer (f);
    assert_string_equal (json_string_value (json_object_get (s_data (answer), "agent_id")), "gw-1");
    json_decref (answer);
}

//  agents.revoke goes to the registry and is audited; with no registry on
//  the broker, the broker's error is the answer (unavailable), audited too.
static void
test_revoke_audited_and_unreachable (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_send (f, "{\"op\":\"agents.revoke\",\"args\":{\"agent_id\":\"gw-1\"}}");
    json_t *answer = s_answer (f);
    json_t *error = json_object_get (answer, "error");
    assert_string_equal (json_string_value (json_object_get (error, "code")), "unavailable");
    assert_non_null (
        strstr (json_string_value (json_object_get (error, "message")), "unknown_actor"));
    json_decref (answer);
    vw_tb_want_audit (f->store, "agent.revoke", NULL, "failure");

    vw_tb_peer_t *registry = vw_tb_peer (f->tb, "registry");
    assert_non_null (registry);
    s_send (f, "{\"op\":\"agents.revoke\",\"args\":{\"agent_id\":\"gw-1\"}}");
    vw_msg_t *revoke = vw_tb_want (registry, VW_MSG_ID_agent_revoke);
    assert_string_equal (revoke->agent_revoke.agent_id, "gw-1");
    vw_tb_answer (registry, "admin", &revoke, 204, NULL, NULL);
    answer = s_answer (f);
    assert_true (json_is_true (json_object_get (answer, "ok")));
    json_decref (answer);
    vw_tb_want_audit (f->store, "agent.revoke", "gw-1", "success");
}

//  commands.submit goes to the scheduler; its 202 body is the answer.
static void
test_commands_submit (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    vw_tb_peer_t *scheduler = vw_tb_peer (f->tb, "scheduler");
    assert_non_null (scheduler);
    s_send (f, "{\"op\":\"commands.submit\",\"args\":{\"agent_id\":\"gw-1\",\"type\":\"ping\"}}");
    vw_msg_t *submit = vw_tb_want (scheduler, VW_MSG_ID_command_submit);
    assert_string_equal (submit->command_submit.agent_id, "gw-1");
    assert_string_equal (submit->command_submit.type, "ping");
    assert_string_equal (submit->command_submit.created_by, "admin-socket");
    vw_tb_answer (scheduler, "admin", &submit, 202,
                  "{\"command_id\":\"c-1\",\"state\":\"pending\"}", NULL);
    json_t *answer = s_answer (f);
    assert_string_equal (json_string_value (json_object_get (s_data (answer), "command_id")),
                         "c-1");
    json_decref (answer);
    //  An unknown command type never reaches the scheduler.
    s_expect_error (
        s_op (f, "{\"op\":\"commands.submit\",\"args\":{\"agent_id\":\"gw-1\",\"type\":\"nope\"}}"),
        "unknown_command_type");
    vw_tb_quiet (scheduler, "admin", scheduler, NULL);
}

//  stats asks the broker itself (broker_stats answered by the broker).
static void
test_stats_from_the_broker (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    json_t *answer = s_op (f, "{\"op\":\"stats\"}");
    json_t *actors = json_object_get (json_object_get (s_data (answer), "broker"), "actors");
    assert_non_null (json_object_get (actors, "admin"));
    assert_non_null (json_object_get (actors, "store"));
    json_decref (answer);
}

//  The store answers with `error`: the op fails as unavailable.
static void
test_store_error_unavailable (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_send (f, "{\"op\":\"commands.get\",\"args\":{\"command_id\":\"c-9\"}}");
    vw_msg_t *get = vw_tb_want (f->store, VW_MSG_ID_command_get);
    vw_tb_answer_error (f->store, "admin", &get, "database_error");
    s_expect_error (s_answer (f), "unavailable");
}

//  A non-loopback admin endpoint is refused at start-up (no CURVE).
static void
test_public_endpoint_refused (void **state)
{
    vw_tb_t *tb = vw_tb_new ();
    vw_config_t *config = vw_config_new_defaults ();
    assert_non_null (tb);
    free (config->admin_endpoint);
    config->admin_endpoint = strdup ("tcp://0.0.0.0:5555");
    char *reason = NULL;
    assert_int_equal (vw_tb_start (tb, &vw_admin_class, config, &reason), VW_EXIT_USAGE);
    assert_non_null (strstr (reason, "tcp://0.0.0.0:5555"));
    free (reason);
    vw_tb_destroy (&tb);
    vw_config_destroy (&config);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_ping_req_and_dealer, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_bad_requests, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_agents_get_via_registry, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_reply_from_the_wrong_peer_ignored, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_revoke_audited_and_unreachable, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_commands_submit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_stats_from_the_broker, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_store_error_unavailable, s_setup, s_teardown),
        cmocka_unit_test (test_public_endpoint_refused),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
