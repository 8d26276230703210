/*  test_store - the store actor (actors/vw_store) driven with proto
    messages through a real broker (vw_testbroker).

    Each case starts a broker, the store on an in-memory database and a test
    peer named "edge" (or "registry", "scheduler", "auth": the store answers
    whoever asks) that sends the requests and checks the answers. Every wait
    is a receive with a deadline; nothing sleeps.
*/
#include "vw_actors.h"
#include "vw_clock.h"
#include "vw_lifecycle.h"
#include "vw_points.h"
#include "vw_testbroker.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    vw_tb_t *tb;
    vw_store_args_t args;
    vw_tb_peer_t *edge;
} t_fixture_t;

static int
s_setup (void **state)
{
    t_fixture_t *f = (t_fixture_t *) calloc (1, sizeof (t_fixture_t));
    *state = f;
    f->tb = vw_tb_new ();
    f->args.database_url = ":memory:";
    if (!f->tb || vw_tb_run (f->tb, &vw_store_class, &f->args))
        return -1;
    return vw_tb_peers (f->tb, "edge", &f->edge, NULL);
}

//  Sends *msg_p to the store and returns its answer (fails without one).
static vw_msg_t *
s_call (vw_tb_peer_t *peer, vw_msg_t *msg, vw_msg_id_t want)
{
    vw_msg_t *answer = vw_tb_call (peer, "store", &msg, VW_TB_TIMEOUT_MS);
    if (!answer)
        fail_msg ("the store did not answer within %d ms", VW_TB_TIMEOUT_MS);
    if (answer->id != want)
        fail_msg ("the store answered '%s', wanted '%s'", vw_msg_name (answer->id),
                  vw_msg_name (want));
    assert_string_equal (answer->peer, "store");
    return answer;
}

//  A reply's JSON body (caller decrefs).
static json_t *
s_body (const vw_msg_t *reply)
{
    assert_non_null (reply->reply.json);
    json_t *body = json_loads (reply->reply.json, JSON_DECODE_ANY, NULL);
    assert_non_null (body);
    return body;
}

static const uint8_t s_hash[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                   17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

//  A request naming one thing: agent_get, agent_lookup, agent_revoke,
//  command_get or user_get.
static vw_msg_t *
s_get (vw_msg_id_t id, const char *key)
{
    vw_msg_t *msg = vw_msg_new (id);
    vw_msg_set_str (id == VW_MSG_ID_agent_get      ? &msg->agent_get.agent_id
                    : id == VW_MSG_ID_agent_lookup ? &msg->agent_lookup.agent_id
                    : id == VW_MSG_ID_agent_revoke ? &msg->agent_revoke.agent_id
                    : id == VW_MSG_ID_command_get  ? &msg->command_get.command_id
                                                   : &msg->user_get.username,
                    key);
    return msg;
}

static vw_msg_t *
s_agent_create (const char *id, const char *labels)
{
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_agent_create);
    vw_msg_set_str (&msg->agent_create.agent_id, id);
    vw_msg_set_str (&msg->agent_create.labels, labels);
    vw_msg_set_bin (&msg->agent_create.token_hash, s_hash, sizeof s_hash);
    return msg;
}

//  --------------------------------------------------------------------------
//  Agents

static void
test_agent_create_get_and_duplicate (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    vw_msg_t *reply =
        s_call (f->edge, s_agent_create ("gw-1", "{\"site\":\"a\"}"), VW_MSG_ID_reply);
    json_t *body = s_body (reply);
    assert_string_equal (json_string_value (json_object_get (body, "agent_id")), "gw-1");
    json_decref (body);
    vw_tb_check_reply (&reply, 201, NULL);

    reply = s_call (f->edge, s_get (VW_MSG_ID_agent_get, "gw-1"), VW_MSG_ID_reply);
    body = s_body (reply);
    assert_string_equal (json_string_value (json_object_get (body, "agent_id")), "gw-1");
    assert_string_equal (
        json_string_value (json_object_get (json_object_get (body, "labels"), "site")), "a");
    json_decref (body);
    vw_tb_check_reply (&reply, 200, NULL);

    //  The same id again: 409, and the first one is unchanged.
    reply = s_call (f->edge, s_agent_create ("gw-1", "{\"site\":\"b\"}"), VW_MSG_ID_reply);
    vw_tb_check_reply (&reply, 409, "conflict");
    reply = s_call (f->edge, s_get (VW_MSG_ID_agent_get, "gw-1"), VW_MSG_ID_reply);
    body = s_body (reply);
    assert_string_equal (
        json_string_value (json_object_get (json_object_get (body, "labels"), "site")), "a");
    json_decref (body);
    vw_tb_check_reply (&reply, 200, NULL);

    //  An unknown agent: 404.
    reply = s_call (f->edge, s_get (VW_MSG_ID_agent_get, "gw-404"), VW_MSG_ID_reply);
    vw_tb_check_reply (&reply, 404, "not_found");

    //  The list has exactly the one agent.
    vw_msg_t *list = vw_msg_new (VW_MSG_ID_agent_list);
    list->agent_list.limit = 10;
    reply = s_call (f->edge, list, VW_MSG_ID_reply);
    body = s_body (reply);
    assert_int_equal (json_array_size (json_object_get (body, "agents")), 1);
    json_decref (body);
    vw_tb_check_reply (&reply, 200, NULL);
}

//  Labels that are not an object are refused by the schema with 400 (a
//  CHECK constraint, whose extended code the store must recognise);
//  nothing stored. The edge and the admin socket check labels first.
static void
test_agent_create_bad_labels (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    vw_msg_t *reply = s_call (f->edge, s_agent_create ("gw-2", "[1,2]"), VW_MSG_ID_reply);
    vw_tb_check_reply (&reply, 400, "bad_request");
    reply = s_call (f->edge, s_get (VW_MSG_ID_agent_get, "gw-2"), VW_MSG_ID_reply);
    vw_tb_check_reply (&reply, 404, "not_found");
}

//  The registry's credential look-up: agent_record, found or not.
static void
test_agent_lookup (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    int64_t before = vw_clock_wall_ms ();
    vw_msg_t *reply =
        s_call (f->edge, s_agent_create ("gw-3", "{\"site\":\"fra\"}"), VW_MSG_ID_reply);
    vw_tb_check_reply (&reply, 201, NULL);
    vw_tb_peer_t *registry = vw_tb_peer (f->tb, "registry");
    assert_non_null (registry);

    vw_msg_t *record =
        s_call (registry, s_get (VW_MSG_ID_agent_lookup, "gw-3"), VW_MSG_ID_agent_record);
    assert_true (record->agent_record.found);
    assert_string_equal (record->agent_record.agent_id, "gw-3");
    assert_int_equal (record->agent_record.token_hash.size, 32);
    assert_memory_equal (record->agent_record.token_hash.data, s_hash, 32);
    assert_false (record->agent_record.revoked);
    //  The rest of the row, for the registry's GET /agents/{id}.
    assert_string_equal (record->agent_record.labels, "{\"site\":\"fra\"}");
    assert_null (record->agent_record.hostname);
    assert_true (record->agent_record.created_at >= before);
    assert_int_equal (record->agent_record.connected_at, 0);
    assert_int_equal (record->agent_record.connect_count, 0);
    vw_msg_destroy (&record);

    //  Revoked, then looked up again.
    reply = s_call (registry, s_get (VW_MSG_ID_agent_revoke, "gw-3"), VW_MSG_ID_reply);
    assert_true (reply->reply.status < 300);
    vw_msg_destroy (&reply);
    record = s_call (registry, s_get (VW_MSG_ID_agent_lookup, "gw-3"), VW_MSG_ID_agent_record);
    assert_true (record->agent_record.found);
    assert_true (record->agent_record.revoked);
    vw_msg_destroy (&record);

    record = s_call (registry, s_get (VW_MSG_ID_agent_lookup, "nobody"), VW_MSG_ID_agent_record);
    assert_false (record->agent_record.found);
    assert_int_equal (record->agent_record.token_hash.size, 0);
    vw_msg_destroy (&record);
}

//  --------------------------------------------------------------------------
//  Users

static void
test_users (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    vw_tb_peer_t *auth = vw_tb_peer (f->tb, "auth");
    assert_non_null (auth);
    vw_msg_t *count = vw_msg_new (VW_MSG_ID_user_count);
    count->user_count.all = true;
    vw_msg_t *reply = s_call (auth, count, VW_MSG_ID_reply);
    assert_string_equal (reply->reply.json, "{\"users\":0}");
    vw_tb_check_reply (&reply, 200, NULL);

    vw_msg_t *insert = vw_msg_new (VW_MSG_ID_user_insert);
    vw_msg_set_str (&insert->user_insert.username, "ops");
    vw_msg_set_str (&insert->user_insert.password_hash, "$argon2id$v=19$m=65536,t=2,p=1$x$y");
    vw_msg_set_str (&insert->user_insert.role, "operator");
    reply = s_call (auth, insert, VW_MSG_ID_reply);
    vw_tb_check_reply (&reply, 201, NULL);

    insert = vw_msg_new (VW_MSG_ID_user_insert);
    vw_msg_set_str (&insert->user_insert.username, "ops");
    vw_msg_set_str (&insert->user_insert.password_hash, "$argon2id$other");
    vw_msg_set_str (&insert->user_insert.role, "admin");
    reply = s_call (auth, insert, VW_MSG_ID_reply);
    vw_tb_check_reply (&reply, 409, "conflict");

    vw_msg_t *record = s_call (auth, s_get (VW_MSG_ID_user_get, "ops"), VW_MSG_ID_user_record);
    assert_true (record->user_record.found);
    assert_string_equal (record->user_record.role, "operator");
    assert_string_equal (record->user_record.password_hash, "$argon2id$v=19$m=65536,t=2,p=1$x$y");
    assert_false (record->user_record.disabled);
    vw_msg_destroy (&record);

    record = s_call (auth, s_get (VW_MSG_ID_user_get, "nobody"), VW_MSG_ID_user_record);
    assert_false (record->user_record.found);
    assert_null (record->user_record.password_hash);
    vw_msg_destroy (&record);

    count = vw_msg_new (VW_MSG_ID_user_count);
    reply = s_call (auth, count, VW_MSG_ID_reply);
    assert_string_equal (reply->reply.json, "{\"users\":1}");
    vw_tb_check_reply (&reply, 200, NULL);
}

//  --------------------------------------------------------------------------
//  Commands

static vw_msg_t *
s_command_insert (const char *id, const char *agent_id)
{
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_command_insert);
    vw_command_insert_msg_t *c = &msg->command_insert;
    vw_msg_set_str (&c->command_id, id);
    vw_msg_set_str (&c->agent_id, agent_id);
    vw_msg_set_str (&c->type, "ping");
    vw_msg_set_str (&c->payload, "{}");
    c->priority = 1;
    c->timeout_ms = 30000;
    c->created_at = 1000;
    c->expires_at = 1000 + 3600000;
    vw_msg_set_str (&c->created_by, "test");
    return msg;
}

static void
test_command_insert_load_update_get (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    vw_msg_t *reply = s_call (f->edge, s_agent_create ("gw-4", NULL), VW_MSG_ID_reply);
    vw_tb_check_reply (&reply, 201, NULL);
    vw_tb_peer_t *scheduler = vw_tb_peer (f->tb, "scheduler");
    assert_non_null (scheduler);

    vw_msg_t *inserted =
        s_call (scheduler, s_command_insert ("cmd-1", "gw-4"), VW_MSG_ID_command_inserted);
    assert_int_equal (inserted->command_inserted.status, 202);
    json_t *rows = json_loads (inserted->command_inserted.rows, 0, NULL);
    assert_int_equal (json_array_size (rows), 1);
    assert_string_equal (json_string_value (json_array_get (json_array_get (rows, 0), 0)), "cmd-1");
    assert_string_equal (json_string_value (json_array_get (json_array_get (rows, 0), 1)), "gw-4");
    json_decref (rows);
    //  The insert's id comes back, so that a late answer can be matched.
    assert_string_equal (inserted->command_inserted.request_id, "cmd-1");
    vw_msg_destroy (&inserted);

    //  An unknown agent: 404 and no row to queue.
    inserted = s_call (scheduler, s_command_insert ("cmd-2", "gw-404"), VW_MSG_ID_command_inserted);
    assert_int_equal (inserted->command_inserted.status, 404);
    assert_string_equal (inserted->command_inserted.code, "not_found");
    assert_string_equal (inserted->command_inserted.rows, "[]");
    vw_msg_destroy (&inserted);

    //  Recovery sees the one unfinished command.
    vw_msg_t *load = vw_msg_new (VW_MSG_ID_commands_load);
    load->commands_load.limit = 100;
    vw_msg_t *page = s_call (scheduler, load, VW_MSG_ID_commands_page);
    assert_int_equal (page->commands_page.count, 1);
    assert_true (page->commands_page.last > 0);
    vw_msg_destroy (&page);

    //  Finished (no answer), then read back by the edge.
    vw_msg_t *update = vw_msg_new (VW_MSG_ID_command_update);
    vw_msg_set_str (&update->command_update.command_id, "cmd-1");
    vw_msg_set_str (&update->command_update.event, "finish");
    vw_msg_set_str (&update->command_update.state, "completed");
    vw_msg_set_str (&update->command_update.result, "{\"pong\":true}");
    update->command_update.ts = 2000;
    assert_int_equal (vw_tb_send (scheduler, "store", &update), 0);
    //  An update without an event changes nothing and gets no answer.
    update = vw_msg_new (VW_MSG_ID_command_update);
    vw_msg_set_str (&update->command_update.command_id, "cmd-1");
    vw_msg_set_str (&update->command_update.state, "failed");
    assert_int_equal (vw_tb_send (scheduler, "store", &update), 0);
    vw_tb_quiet (scheduler, "store", scheduler, NULL);

    reply = s_call (f->edge, s_get (VW_MSG_ID_command_get, "cmd-1"), VW_MSG_ID_reply);
    json_t *body = s_body (reply);
    assert_string_equal (json_string_value (json_object_get (body, "state")), "completed");
    json_decref (body);
    vw_tb_check_reply (&reply, 200, NULL);

    load = vw_msg_new (VW_MSG_ID_commands_load);
    load->commands_load.limit = 100;
    page = s_call (scheduler, load, VW_MSG_ID_commands_page);
    assert_int_equal (page->commands_page.count, 0);
    assert_false (page->commands_page.more);
    vw_msg_destroy (&page);

    reply = s_call (f->edge, s_get (VW_MSG_ID_command_get, "cmd-2"), VW_MSG_ID_reply);
    vw_tb_check_reply (&reply, 404, "not_found");

    //  Acknowledged transitions (issue 9): 200 once committed, 409 when the
    //  row is not in a state the change applies to.
    vw_msg_t *inserted3 =
        s_call (scheduler, s_command_insert ("cmd-3", "gw-4"), VW_MSG_ID_command_inserted);
    vw_msg_destroy (&inserted3);
    update = vw_msg_new (VW_MSG_ID_command_update);
    vw_msg_set_str (&update->command_update.command_id, "cmd-3");
    vw_msg_set_str (&update->command_update.event, "executing");
    update->command_update.attempt = 1;
    update->command_update.ts = 3000;
    update->command_update.ack = true;
    reply = s_call (scheduler, update, VW_MSG_ID_reply);
    vw_tb_check_reply (&reply, 200, NULL);
    update = vw_msg_new (VW_MSG_ID_command_update);
    vw_msg_set_str (&update->command_update.command_id, "cmd-3");
    vw_msg_set_str (&update->command_update.event, "pending");
    update->command_update.attempt = 1;
    update->command_update.ack = true;
    reply = s_call (scheduler, update, VW_MSG_ID_reply);
    vw_tb_check_reply (&reply, 200, NULL);
    reply = s_call (f->edge, s_get (VW_MSG_ID_command_get, "cmd-3"), VW_MSG_ID_reply);
    body = s_body (reply);
    assert_string_equal (json_string_value (json_object_get (body, "state")), "pending");
    assert_true (json_is_null (json_object_get (body, "next_attempt_at")));
    assert_int_equal (json_integer_value (json_object_get (body, "attempts")), 1);
    json_decref (body);
    vw_tb_check_reply (&reply, 200, NULL);
    update = vw_msg_new (VW_MSG_ID_command_update);
    vw_msg_set_str (&update->command_update.command_id, "cmd-1");
    vw_msg_set_str (&update->command_update.event, "finish");
    vw_msg_set_str (&update->command_update.state, "failed");
    vw_msg_set_str (&update->command_update.failure_reason, "timeout");
    update->command_update.ack = true;
    reply = s_call (scheduler, update, VW_MSG_ID_reply);
    vw_tb_check_reply (&reply, 409, "conflict");
}

//  Issue 10: a batch of last_seen from the registry moves each agent's
//  last_seen forward only; a malformed batch changes nothing.
static void
test_agents_seen_batch (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    vw_msg_t *reply = s_call (f->edge, s_agent_create ("gw-7", NULL), VW_MSG_ID_reply);
    vw_tb_check_reply (&reply, 201, NULL);
    vw_tb_peer_t *registry = vw_tb_peer (f->tb, "registry");
    assert_non_null (registry);
    const char *batches[] = {"[[\"gw-7\",5000],[\"gw-404\",1]]", "[[\"gw-7\",4000]]",
                             "{\"not\":\"a batch\"}", "[[\"gw-7\",\"9000\"],[7,9000]]"};
    for (size_t i = 0; i < sizeof batches / sizeof batches[0]; i++) {
        vw_msg_t *seen = vw_msg_new (VW_MSG_ID_agents_seen);
        vw_msg_set_str (&seen->agents_seen.seen, batches[i]);
        assert_int_equal (vw_tb_send (registry, "store", &seen), 0);
    }
    vw_tb_quiet (registry, "store", registry, NULL);
    reply = s_call (f->edge, s_get (VW_MSG_ID_agent_get, "gw-7"), VW_MSG_ID_reply);
    json_t *body = s_body (reply);
    assert_int_equal (json_integer_value (json_object_get (body, "last_seen")), 5000);
    json_decref (body);
    vw_tb_check_reply (&reply, 200, NULL);
}

static vw_msg_t *
s_backup (const char *path)
{
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_db_backup);
    vw_msg_set_str (&msg->db_backup.path, path);
    return msg;
}

//  db_backup (issue 12): a copy that opens and holds what was committed;
//  refused for a relative or existing path, a missing directory, and for
//  an in-memory database.
static void
test_backup (void **state)
{
    t_fixture_t *mem = (t_fixture_t *) *state;
    vw_msg_t *reply = s_call (mem->edge, s_backup ("/tmp/vw-never.db"), VW_MSG_ID_reply);
    vw_tb_check_reply (&reply, 400, "bad_request");

    char dir[] = "/tmp/vw_test_store.XXXXXX";
    assert_non_null (mkdtemp (dir));
    char path[128], copy[160], nodir[160];
    snprintf (path, sizeof path, "%s/vw.db", dir);
    snprintf (copy, sizeof copy, "%s/copy.db", dir);
    snprintf (nodir, sizeof nodir, "%s/no/copy.db", dir);
    vw_store_args_t args = {.database_url = path};
    vw_tb_t *tb = vw_tb_new ();
    assert_non_null (tb);
    assert_int_equal (vw_tb_run (tb, &vw_store_class, &args), 0);
    vw_tb_peer_t *admin = NULL;
    assert_int_equal (vw_tb_peers (tb, "admin", &admin, NULL), 0);
    reply = s_call (admin, s_agent_create ("gw-b", NULL), VW_MSG_ID_reply);
    vw_tb_check_reply (&reply, 201, NULL);
    reply = s_call (admin, s_backup ("copy.db"), VW_MSG_ID_reply);
    vw_tb_check_reply (&reply, 400, "bad_request");
    reply = s_call (admin, s_backup (nodir), VW_MSG_ID_reply);
    vw_tb_check_reply (&reply, 400, "bad_request");
    reply = s_call (admin, s_backup (copy), VW_MSG_ID_reply);
    json_t *body = s_body (reply);
    assert_string_equal (json_string_value (json_object_get (body, "path")), copy);
    assert_true (json_integer_value (json_object_get (body, "bytes")) > 0);
    json_decref (body);
    vw_tb_check_reply (&reply, 200, NULL);
    reply = s_call (admin, s_backup (copy), VW_MSG_ID_reply);
    vw_tb_check_reply (&reply, 400, "bad_request");  //  exists: never overwritten
    sqlite3 *db = NULL;
    assert_int_equal (sqlite3_open (copy, &db), SQLITE_OK);
    sqlite3_stmt *stmt = NULL;
    assert_int_equal (sqlite3_prepare_v2 (db, "SELECT count(*) FROM agents WHERE agent_id = 'gw-b'",
                                          -1, &stmt, NULL),
                      SQLITE_OK);
    assert_int_equal (sqlite3_step (stmt), SQLITE_ROW);
    assert_int_equal (sqlite3_column_int (stmt, 0), 1);
    sqlite3_finalize (stmt);
    sqlite3_close (db);
    vw_tb_destroy (&tb);
    char rm[200];
    snprintf (rm, sizeof rm, "rm -rf %s", dir);
    assert_int_equal (system (rm), 0);
}

//  Finding 4 (issue 9): another connection holds the write lock. Every
//  write is answered 503 - the insert's too, which used to wait for some
//  later commit that never came - and writes work again once it lets go.
static void
test_busy_database_answers_503 (void **state)
{
    char dir[] = "/tmp/vw_test_store.XXXXXX";
    assert_non_null (mkdtemp (dir));
    char path[128];
    snprintf (path, sizeof path, "%s/vw.db", dir);
    vw_store_args_t args = {.database_url = path};
    vw_tb_t *tb = vw_tb_new ();
    assert_non_null (tb);
    assert_int_equal (vw_tb_run (tb, &vw_store_class, &args), 0);
    vw_tb_peer_t *edge = NULL, *scheduler = NULL;
    assert_int_equal (vw_tb_peers (tb, "edge", &edge, "scheduler", &scheduler, NULL), 0);
    vw_msg_t *reply = s_call (edge, s_agent_create ("gw-5", NULL), VW_MSG_ID_reply);
    vw_tb_check_reply (&reply, 201, NULL);

    sqlite3 *other = NULL;
    assert_int_equal (sqlite3_open (path, &other), SQLITE_OK);
    assert_int_equal (sqlite3_exec (other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    vw_msg_t *insert = s_command_insert ("cmd-b", "gw-5");
    uint64_t insert_rid = vw_tb_ask (scheduler, "store", &insert);
    vw_msg_t *update = vw_msg_new (VW_MSG_ID_command_update);
    vw_msg_set_str (&update->command_update.command_id, "cmd-b");
    vw_msg_set_str (&update->command_update.event, "executing");
    update->command_update.ack = true;
    uint64_t update_rid = vw_tb_ask (scheduler, "store", &update);
    vw_msg_t *create = s_agent_create ("gw-6", NULL);
    uint64_t create_rid = vw_tb_ask (edge, "store", &create);
    //  The busy timeout is 5 s per pass: generous deadlines, no timing
    //  asserted.
    vw_msg_t *inserted = vw_tb_expect_rid (scheduler, insert_rid, 20000);
    assert_non_null (inserted);
    assert_int_equal (inserted->id, VW_MSG_ID_command_inserted);
    assert_int_equal (inserted->command_inserted.status, 503);
    assert_string_equal (inserted->command_inserted.request_id, "cmd-b");
    vw_msg_destroy (&inserted);
    reply = vw_tb_expect_rid (scheduler, update_rid, 20000);
    assert_non_null (reply);
    vw_tb_check_reply (&reply, 503, "database_busy");
    reply = vw_tb_expect_rid (edge, create_rid, 20000);
    assert_non_null (reply);
    vw_tb_check_reply (&reply, 503, "database_busy");

    assert_int_equal (sqlite3_exec (other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close (other);
    reply = s_call (edge, s_agent_create ("gw-6", NULL), VW_MSG_ID_reply);
    vw_tb_check_reply (&reply, 201, NULL);
    reply = s_call (edge, s_get (VW_MSG_ID_command_get, "cmd-b"), VW_MSG_ID_reply);
    vw_tb_check_reply (&reply, 404, "not_found");
    vw_tb_destroy (&tb);
    char cmd[200];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal (system (cmd), 0);
}

//  Recovery pages are bounded by bytes as well as by rows: 24 commands of
//  1 MiB payloads come back in pages of at most ~17 MiB, each saying
//  whether more may follow, and every command is in exactly one page.
static void
test_recovery_pages_bounded_by_bytes (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    vw_msg_t *reply = s_call (f->edge, s_agent_create ("gw-big", NULL), VW_MSG_ID_reply);
    vw_tb_check_reply (&reply, 201, NULL);
    vw_tb_peer_t *scheduler = vw_tb_peer (f->tb, "scheduler");
    assert_non_null (scheduler);
    const size_t big = 1024 * 1024;
    char *payload = vw_tb_big_payload (big);
    assert_non_null (payload);
    const int count = 24;
    for (int i = 0; i < count; i++) {
        char id[32];
        snprintf (id, sizeof id, "big-%02d", i);
        vw_msg_t *insert = s_command_insert (id, "gw-big");
        vw_msg_set_str (&insert->command_insert.type, "update_config");
        vw_msg_set_str (&insert->command_insert.payload, payload);
        vw_msg_t *inserted = s_call (scheduler, insert, VW_MSG_ID_command_inserted);
        assert_int_equal (inserted->command_inserted.status, 202);
        vw_msg_destroy (&inserted);
    }
    free (payload);
    int64_t after = 0, seen = 0, pages = 0;
    bool more = true;
    while (more) {
        vw_msg_t *load = vw_msg_new (VW_MSG_ID_commands_load);
        load->commands_load.after = after;
        load->commands_load.limit = 5000;
        vw_msg_t *page = s_call (scheduler, load, VW_MSG_ID_commands_page);
        assert_true (page->commands_page.rows.size <= 18 * big);
        seen += page->commands_page.count;
        more = page->commands_page.more;
        if (page->commands_page.count)
            after = page->commands_page.last;
        pages++;
        vw_msg_destroy (&page);
        assert_true (pages <= count + 1);
    }
    assert_int_equal (seen, count);
    assert_true (pages >= 2);
}

//  --------------------------------------------------------------------------
//  Bad input

//  Messages the store does not serve, and answers that arrive at it (a
//  reply with some rid), are dropped: no answer, no change, still serving.
static void
test_unserved_messages_are_ignored (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    vw_msg_t *hello = vw_msg_new (VW_MSG_ID_session_hello);
    vw_msg_set_str (&hello->session_hello.agent_id, "gw-5");
    assert_true (vw_tb_ask (f->edge, "store", &hello) != 0);
    vw_msg_t *stray = vw_msg_new (VW_MSG_ID_reply);
    stray->reply.status = 201;
    assert_true (vw_tb_ask (f->edge, "store", &stray) != 0);
    vw_tb_quiet (f->edge, "store", f->edge, NULL);
    vw_msg_t *list = vw_msg_new (VW_MSG_ID_agent_list);
    list->agent_list.limit = 10;
    vw_msg_t *reply = s_call (f->edge, list, VW_MSG_ID_reply);
    assert_string_equal (reply->reply.json, "{\"agents\":[],\"next_cursor\":null}");
    vw_tb_check_reply (&reply, 200, NULL);
}

//  A database URL that is not SQLite fails start-up with the database code.
static void
test_bad_database_url_fails_start (void **state)
{
    vw_tb_t *tb = vw_tb_new ();
    assert_non_null (tb);
    vw_store_args_t args = {.database_url = "postgres://db/viworks"};
    char *reason = NULL;
    assert_int_equal (vw_tb_start (tb, &vw_store_class, &args, &reason), VW_EXIT_DATABASE);
    assert_non_null (strstr (reason, "postgres://db/viworks"));
    free (reason);
    vw_tb_destroy (&tb);
}

//  --------------------------------------------------------------------------
//  Telemetry

static vw_msg_t *
s_tm_write (const char *agent, int64_t seq, const char *points_json)
{
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_telemetry_write);
    vw_msg_set_str (&msg->telemetry_write.agent_id, agent);
    msg->telemetry_write.seq = seq;
    json_t *points = json_loads (points_json, 0, NULL);
    uint8_t *data;
    size_t size;
    vw_points_info_t info;
    if (points && vw_points_pack (points, &data, &size, &info) == 0) {
        vw_msg_set_bin (&msg->telemetry_write.points, data, size);
        free (data);
    }
    else
        vw_msg_set_bin (&msg->telemetry_write.points, (const uint8_t *) "junk", 4);
    json_decref (points);
    return msg;
}

static void
s_tm_expect (t_fixture_t *f, const char *agent, int64_t seq, const char *points, int status)
{
    vw_msg_t *reply = s_call (f->edge, s_tm_write (agent, seq, points), VW_MSG_ID_reply);
    if (reply->reply.status != status)
        fail_msg ("seq %lld: %lld %s, wanted %d", (long long) seq, (long long) reply->reply.status,
                  reply->reply.message ? reply->reply.message : "", status);
    vw_msg_destroy (&reply);
}

static json_t *
s_tm_query (t_fixture_t *f, const char *agent, const char *metric, int64_t step, const char *agg,
            int64_t max_points, int status)
{
    vw_msg_t *q = vw_msg_new (VW_MSG_ID_telemetry_query);
    vw_msg_set_str (&q->telemetry_query.agent_id, agent);
    vw_msg_set_str (&q->telemetry_query.metric, metric);
    q->telemetry_query.from = 0;
    q->telemetry_query.to = INT64_MAX / 2;
    q->telemetry_query.step_ms = step;
    vw_msg_set_str (&q->telemetry_query.agg, agg);
    q->telemetry_query.max_points = max_points;
    vw_msg_t *reply = s_call (f->edge, q, VW_MSG_ID_reply);
    assert_int_equal (reply->reply.status, status);
    json_t *body = status == 200 ? s_body (reply) : NULL;
    vw_msg_destroy (&reply);
    return body;
}

//  Frames are stored once per seq, in any order; the ranges of stored
//  seqs merge; queries answer raw points (one per ts, the last stored) and
//  buckets.
static void
test_telemetry_write_once_and_query (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    vw_msg_t *reply = s_call (f->edge, s_agent_create ("gw-1", NULL), VW_MSG_ID_reply);
    vw_tb_check_reply (&reply, 201, NULL);
    const char *p = "[{\"ts\":1000,\"metrics\":{\"cpu\":0.5,\"n\":2}}]";
    s_tm_expect (f, "gw-1", 5, p, 201);
    s_tm_expect (f, "gw-1", 5, p, 200);
    s_tm_expect (f, "gw-1", 3, "[{\"ts\":1001,\"metrics\":{\"cpu\":1}}]", 201);
    s_tm_expect (f, "gw-1", 4, "[{\"ts\":1000,\"metrics\":{\"cpu\":0.75}}]", 201);
    for (int64_t seq = 3; seq <= 5; seq++)
        s_tm_expect (f, "gw-1", seq, p, 200);
    s_tm_expect (f, "gw-1", 2, "[{\"ts\":11000,\"metrics\":{\"cpu\":2}}]", 201);
    s_tm_expect (f, "gw-1", 6, "[{\"ts\":12000,\"metrics\":{\"cpu\":3}}]", 201);
    s_tm_expect (f, "gw-1", 0, "[{\"ts\":12500,\"metrics\":{\"cpu\":4}}]", 201);
    s_tm_expect (f, "gw-1", 0, p, 200);
    s_tm_expect (f, "gw-1", 2, p, 200);
    s_tm_expect (f, "gw-1", 6, p, 200);
    s_tm_expect (f, "gw-nobody", 1, p, 404);
    s_tm_expect (f, "gw-1", 7, NULL, 400);

    json_t *body = s_tm_query (f, "gw-1", "cpu", 0, NULL, 100, 200);
    char *text = json_dumps (body, JSON_COMPACT);
    //  ts 1000 was written by seq 5 (0.5) then seq 4 (0.75): both are
    //  stored points, in the order stored.
    assert_string_equal (text,
                         "{\"agent_id\":\"gw-1\",\"series\":[{\"metric\":\"cpu\",\"points\":"
                         "[[1000,0.5],[1000,0.75],[1001,1],[11000,2],[12000,3],[12500,4]]}]}");
    free (text);
    json_decref (body);
    body = s_tm_query (f, "gw-1", NULL, 10000, "sum", 100, 200);
    text = json_dumps (json_object_get (body, "series"), JSON_COMPACT);
    assert_string_equal (text, "[{\"metric\":\"cpu\",\"points\":[[0,2.25],[10000,9]]},"
                               "{\"metric\":\"n\",\"points\":[[0,2]]}]");
    free (text);
    json_decref (body);
    //  A step of a minute (and of an hour) reads the roll-ups: the same
    //  figures as the raw points give, for each aggregate.
    const char *aggs[] = {"sum", "count", "min", "max", "last", "avg"};
    const char *want[] = {"11.25", "6", "0.5", "4", "4", "1.875"};
    for (int step = 0; step < 2; step++)
        for (size_t i = 0; i < 6; i++) {
            body = s_tm_query (f, "gw-1", "cpu", step ? 3600000 : 60000, aggs[i], 100, 200);
            text = json_dumps (json_object_get (body, "series"),
                               JSON_REAL_PRECISION (6) | JSON_COMPACT);
            char expect[128];
            snprintf (expect, sizeof expect, "[{\"metric\":\"cpu\",\"points\":[[0,%s]]}]", want[i]);
            assert_string_equal (text, expect);
            free (text);
            json_decref (body);
        }
    s_tm_query (f, "gw-1", "cpu", 0, NULL, 5, 400);
    s_tm_query (f, "gw-nobody", NULL, 0, NULL, 100, 404);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_agent_create_get_and_duplicate, s_setup,
                                         vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_agent_create_bad_labels, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_agent_lookup, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_backup, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_users, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_recovery_pages_bounded_by_bytes, s_setup,
                                         vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_command_insert_load_update_get, s_setup,
                                         vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_unserved_messages_are_ignored, s_setup,
                                         vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_agents_seen_batch, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_telemetry_write_once_and_query, s_setup,
                                         vw_tb_teardown),
        cmocka_unit_test (test_bad_database_url_fails_start),
        cmocka_unit_test (test_busy_database_answers_503),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
