/*  test_auth - the auth actor (actors/vw_auth) driven with proto messages
    through a real broker (vw_testbroker).

    Test peers play "store" (answers users_load, user_get and user_insert
    as each case decides) and "edge" (logins and user creation). Hashes the
    test makes itself use libsodium's minimum Argon2id limits, to keep the
    cases fast; auth verifies any valid crypto_pwhash string. Every wait is
    a receive with a deadline; "nothing sent" is checked after a ping/pong
    barrier.
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
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_PASSWORD "correct horse battery"

typedef struct {
    vw_tb_t *tb;
    vw_config_t *config;
    vw_tb_peer_t *store, *edge;
} t_fixture_t;

static int
s_setup (void **state)
{
    t_fixture_t *f = (t_fixture_t *) calloc (1, sizeof (t_fixture_t));
    *state = f;
    f->tb = vw_tb_new ();
    if (!f->tb || !(f->config = vw_tb_config (f->tb)) || sodium_init () < 0)
        return -1;
    return vw_tb_peers (f->tb, "store", &f->store, "edge", &f->edge, NULL);
}

//  Starts auth; the store answers its load of the users (and of the
//  logged-out tokens) with `users` users.
static void
s_start (t_fixture_t *f, int users)
{
    if (vw_tb_run (f->tb, &vw_auth_class, f->config))
        fail ();
    vw_msg_t *load = vw_tb_want (f->store, VW_MSG_ID_users_load);
    json_t *list = json_array ();
    for (int i = 0; i < users; i++)
        json_array_append_new (
            list, json_pack ("{s:s, s:s, s:b, s:I, s:I}", "username", i ? "operator-1" : "admin",
                             "role", i ? "operator" : "admin", "disabled", 0, "created_at",
                             (json_int_t) 1, "gen", (json_int_t) (i + 1)));
    json_t *body = json_pack ("{s:o, s:{}}", "users", list, "denied");
    char *text = json_dumps (body, JSON_COMPACT);
    json_decref (body);
    vw_tb_answer (f->store, "auth", &load, 200, text, NULL);
    free (text);
}

//  The store gets a user_insert; its hash must verify `password`.
static vw_msg_t *
s_expect_insert (t_fixture_t *f, const char *username, const char *role, const char *password)
{
    vw_msg_t *insert = vw_tb_want (f->store, VW_MSG_ID_user_insert);
    assert_string_equal (insert->user_insert.username, username);
    assert_string_equal (insert->user_insert.role, role);
    const char *hash = insert->user_insert.password_hash;
    assert_non_null (hash);
    assert_int_equal (strncmp (hash, "$argon2id$", 10), 0);
    assert_int_equal (crypto_pwhash_str_verify (hash, password, strlen (password)), 0);
    assert_int_not_equal (crypto_pwhash_str_verify (hash, "wrong", 5), 0);
    return insert;
}

//  The edge logs in; the store answers user_get with `record` (NULL: an
//  error). Returns the edge's answer.
typedef struct {
    bool found, disabled;
    const char *password;  //  hashed into the record
    const char *role;
} t_user_t;

static vw_msg_t *
s_login (t_fixture_t *f, const char *username, const char *password, const t_user_t *user)
{
    vw_msg_t *login = vw_msg_new (VW_MSG_ID_login);
    vw_msg_set_str (&login->login.username, username);
    vw_msg_set_str (&login->login.password, password);
    uint64_t rid = vw_tb_ask (f->edge, "auth", &login);
    vw_msg_t *get = vw_tb_want (f->store, VW_MSG_ID_user_get);
    assert_string_equal (get->user_get.username, username);
    if (user) {
        vw_msg_t *record = vw_msg_new (VW_MSG_ID_user_record);
        record->user_record.found = user->found;
        record->user_record.disabled = user->disabled;
        vw_msg_set_str (&record->user_record.username, username);
        vw_msg_set_str (&record->user_record.role, user->role);
        if (user->password) {
            char hash[crypto_pwhash_STRBYTES];
            assert_int_equal (crypto_pwhash_str (hash, user->password, strlen (user->password),
                                                 crypto_pwhash_OPSLIMIT_MIN,
                                                 crypto_pwhash_MEMLIMIT_MIN),
                              0);
            vw_msg_set_str (&record->user_record.password_hash, hash);
        }
        record->rid = get->rid;
        vw_msg_destroy (&get);
        assert_int_equal (vw_tb_send (f->store, "auth", &record), 0);
    }
    else
        vw_tb_answer_error (f->store, "auth", &get, "database_error");
    vw_msg_t *answer = vw_tb_expect_rid (f->edge, rid, VW_TB_TIMEOUT_MS);
    if (!answer)
        fail_msg ("the edge got no answer to its login");
    return answer;
}

static void
s_expect_verdict (vw_msg_t **answer_p, bool ok, const char *role)
{
    vw_msg_t *answer = *answer_p;
    assert_int_equal (answer->id, VW_MSG_ID_login_result);
    assert_int_equal (answer->login_result.ok, ok);
    if (role)
        assert_string_equal (answer->login_result.role, role);
    else
        assert_null (answer->login_result.role);
    vw_msg_destroy (answer_p);
}

//  --------------------------------------------------------------------------
//  Cases

//  No users yet: auth creates 'admin' with the configured password, and
//  audits it.
static void
test_first_start_creates_admin (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    f->config->admin_password = strdup (S_PASSWORD);
    s_start (f, 0);
    vw_msg_t *insert = s_expect_insert (f, "admin", "admin", S_PASSWORD);
    vw_tb_answer (f->store, "auth", &insert, 201, NULL, NULL);
    vw_tb_want_audit (f->store, "user.create", "admin", "success");
}

//  Users exist: nothing is created.
static void
test_later_start_creates_nothing (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_start (f, 2);
    vw_tb_quiet (f->store, "auth", f->store, NULL);
}

static void
test_login_good_and_bad (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_start (f, 1);
    t_user_t ops = {.found = true, .password = S_PASSWORD, .role = "operator"};
    vw_msg_t *answer = s_login (f, "ops", S_PASSWORD, &ops);
    s_expect_verdict (&answer, true, "operator");
    answer = s_login (f, "ops", "not the password", &ops);
    s_expect_verdict (&answer, false, NULL);
    t_user_t nobody = {.found = false};
    answer = s_login (f, "nobody", S_PASSWORD, &nobody);
    s_expect_verdict (&answer, false, NULL);
    t_user_t disabled = {.found = true, .disabled = true, .password = S_PASSWORD, .role = "admin"};
    answer = s_login (f, "old", S_PASSWORD, &disabled);
    s_expect_verdict (&answer, false, NULL);
}

//  The store cannot answer: a 503, not a verdict.
static void
test_login_store_error (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_start (f, 1);
    vw_msg_t *answer = s_login (f, "ops", S_PASSWORD, NULL);
    vw_tb_check_reply (&answer, 503, "unavailable");
}

//  user_create: hashed and inserted; the store's verdict is passed on.
static void
test_user_create (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_start (f, 1);
    for (int round = 0; round < 2; round++) {
        vw_msg_t *create = vw_msg_new (VW_MSG_ID_user_create);
        vw_msg_set_str (&create->user_create.username, "viewer.one");
        vw_msg_set_str (&create->user_create.password, S_PASSWORD);
        vw_msg_set_str (&create->user_create.role, "viewer");
        uint64_t rid = vw_tb_ask (f->edge, "auth", &create);
        vw_msg_t *insert = s_expect_insert (f, "viewer.one", "viewer", S_PASSWORD);
        vw_tb_answer (f->store, "auth", &insert, round ? 409 : 201, NULL,
                      round ? "conflict" : NULL);
        vw_tb_expect_reply (f->edge, rid, round ? 409 : 201, round ? "conflict" : NULL);
    }
}

//  Bad usernames, passwords and roles: 400 and nothing reaches the store.
static void
test_user_create_bad_input (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_start (f, 1);
    const struct {
        const char *username, *password, *role, *field;
    } bad[] = {
        {NULL, S_PASSWORD, "viewer", "'username'"},
        {"", S_PASSWORD, "viewer", "'username'"},
        {"has space", S_PASSWORD, "viewer", "'username'"},
        {"a/b", S_PASSWORD, "viewer", "'username'"},
        {"ok", "short", "viewer", "'password'"},
        {"ok", NULL, "viewer", "'password'"},
        {"ok", S_PASSWORD, "root", "'role'"},
        {"ok", S_PASSWORD, NULL, "'role'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        vw_msg_t *create = vw_msg_new (VW_MSG_ID_user_create);
        vw_msg_set_str (&create->user_create.username, bad[i].username);
        vw_msg_set_str (&create->user_create.password, bad[i].password);
        vw_msg_set_str (&create->user_create.role, bad[i].role);
        vw_msg_t *reply = vw_tb_call (f->edge, "auth", &create, VW_TB_TIMEOUT_MS);
        assert_non_null (reply);
        if (!reply->reply.message || !strstr (reply->reply.message, bad[i].field)) {
            //  Seen once under a loaded suite: say what came instead.
            print_error ("case %zu: a '%s' reply, status %d, code %s, message %s\n", i,
                         vw_msg_name (reply->id), (int) reply->reply.status,
                         reply->reply.code ? reply->reply.code : "-",
                         reply->reply.message ? reply->reply.message : "-");
            fail ();
        }
        vw_tb_check_reply (&reply, 400, "bad_request");
    }
    vw_msg_t *stray = vw_msg_new (VW_MSG_ID_agent_get);
    assert_true (vw_tb_ask (f->edge, "auth", &stray) != 0);
    vw_tb_quiet (f->edge, "auth", f->store, f->edge, NULL);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_first_start_creates_admin, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_later_start_creates_nothing, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_login_good_and_bad, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_login_store_error, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_user_create, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_user_create_bad_input, s_setup, vw_tb_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
