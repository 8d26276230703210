/*  test_users - users and token revocation (issue 8): store/vw_users (the
    rows, generations and the deny-list, migration 3), edge/vw_tokens (the
    api edge's table and its verdicts), the "gen" claim of vw_jwt, and the
    user request builders of vw_api. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vw_api.h"
#include "vw_db.h"
#include "vw_jwt.h"
#include "vw_tokens.h"
#include "vw_users.h"

#include <sodium.h>

static const uint8_t S_KEY[] = "unit-test-secret";
#define S_KEYLEN (sizeof S_KEY - 1)

static vw_db_t *
s_db (void)
{
    vw_db_status_t status;
    vw_db_t *db = vw_db_open (":memory:", false, &status, NULL, 0);
    assert_non_null (db);
    return db;
}

static json_t *
s_take (vw_result_t *result)
{
    json_t *body = result->body;
    result->body = NULL;
    return body;
}

//  --------------------------------------------------------------------------
//  store/vw_users

static void
test_store_users_round_trip (void **state)
{
    vw_db_t *db = s_db ();
    vw_result_t r = {0};
    vw_users_insert (db, "alice", "$argon2id$hash-a", "operator", 77, 1000, &r);
    assert_int_equal (r.status, 201);
    json_t *body = s_take (&r);
    assert_int_equal (json_integer_value (json_object_get (body, "gen")), 77);
    assert_false (json_is_true (json_object_get (body, "disabled")));
    json_decref (body);
    memset (&r, 0, sizeof r);
    vw_users_insert (db, "alice", "x", "viewer", 1, 1000, &r);
    assert_int_equal (r.status, 409);

    vw_user_record_t rec;
    assert_int_equal (vw_users_get (db, "alice", &rec), 0);
    assert_true (rec.found);
    assert_int_equal (rec.gen, 77);
    assert_string_equal (rec.role, "operator");
    assert_string_equal (rec.password_hash, "$argon2id$hash-a");

    //  Only what is given changes; the generation always does.
    memset (&r, 0, sizeof r);
    vw_users_update (db, "alice", NULL, "viewer", false, false, 78, &r);
    assert_int_equal (r.status, 200);
    body = s_take (&r);
    assert_string_equal (json_string_value (json_object_get (body, "role")), "viewer");
    assert_int_equal (json_integer_value (json_object_get (body, "gen")), 78);
    assert_null (json_object_get (body, "password_hash"));
    json_decref (body);
    assert_int_equal (vw_users_get (db, "alice", &rec), 0);
    assert_string_equal (rec.password_hash, "$argon2id$hash-a");
    memset (&r, 0, sizeof r);
    vw_users_update (db, "alice", "$argon2id$hash-b", NULL, true, true, 79, &r);
    assert_int_equal (r.status, 200);
    json_decref (s_take (&r));
    assert_int_equal (vw_users_get (db, "alice", &rec), 0);
    assert_string_equal (rec.password_hash, "$argon2id$hash-b");
    assert_string_equal (rec.role, "viewer");
    assert_true (rec.disabled);
    assert_int_equal (rec.gen, 79);

    //  A bad role is refused by the schema and changes nothing.
    memset (&r, 0, sizeof r);
    vw_users_update (db, "alice", NULL, "root", false, false, 80, &r);
    assert_int_equal (r.status, 400);
    assert_int_equal (vw_users_get (db, "alice", &rec), 0);
    assert_int_equal (rec.gen, 79);
    memset (&r, 0, sizeof r);
    vw_users_update (db, "nobody", NULL, "viewer", false, false, 1, &r);
    assert_int_equal (r.status, 404);

    memset (&r, 0, sizeof r);
    vw_users_delete (db, "alice", &r);
    assert_int_equal (r.status, 204);
    memset (&r, 0, sizeof r);
    vw_users_delete (db, "alice", &r);
    assert_int_equal (r.status, 404);
    assert_int_equal (vw_users_get (db, "alice", &rec), 0);
    assert_false (rec.found);
    vw_db_close (&db);
}

static void
test_store_load_and_deny (void **state)
{
    vw_db_t *db = s_db ();
    vw_result_t r = {0};
    vw_users_insert (db, "zed", "h", "viewer", 5, 1, &r);
    json_decref (s_take (&r));
    vw_users_insert (db, "amy", "h", "admin", 6, 2, &r);
    json_decref (s_take (&r));
    memset (&r, 0, sizeof r);
    vw_users_deny (db, "jti-live", "amy", 2000, 1000, &r);
    assert_int_equal (r.status, 204);
    vw_users_deny (db, "jti-live", "amy", 2000, 1000, &r);  //  again: no change
    assert_int_equal (r.status, 204);
    vw_users_deny (db, "jti-old", "amy", 1500, 1000, &r);
    memset (&r, 0, sizeof r);
    vw_users_deny (db, "", "amy", 1500, 1000, &r);
    assert_int_equal (r.status, 400);

    memset (&r, 0, sizeof r);
    vw_users_load (db, 1600, &r);
    assert_int_equal (r.status, 200);
    json_t *body = s_take (&r);
    json_t *users = json_object_get (body, "users");
    assert_int_equal (json_array_size (users), 2);
    assert_string_equal (
        json_string_value (json_object_get (json_array_get (users, 0), "username")), "amy");
    assert_int_equal (json_integer_value (json_object_get (json_array_get (users, 1), "gen")), 5);
    json_t *denied = json_object_get (body, "denied");
    assert_int_equal (json_object_size (denied), 1);  //  jti-old expired at 1500
    assert_int_equal (json_integer_value (json_object_get (denied, "jti-live")), 2000);
    json_decref (body);

    //  A later deny forgets the expired rows.
    memset (&r, 0, sizeof r);
    vw_users_deny (db, "jti-new", "zed", 9000, 1600, &r);
    sqlite3_stmt *stmt = NULL;
    sqlite3_prepare_v2 (vw_db_handle (db), "SELECT count(*) FROM token_denylist", -1, &stmt, NULL);
    assert_int_equal (sqlite3_step (stmt), SQLITE_ROW);
    assert_int_equal (sqlite3_column_int (stmt, 0), 2);
    sqlite3_finalize (stmt);
    vw_db_close (&db);
}

static void
test_migration_4_keeps_users_at_generation_0 (void **state)
{
    char path[] = "/tmp/vw_test_users.XXXXXX";
    assert_non_null (mkdtemp (path));
    char file[300];
    snprintf (file, sizeof file, "%s/viworks.db", path);
    vw_db_status_t status;
    vw_db_t *db = vw_db_open (file, false, &status, NULL, 0);
    assert_non_null (db);
    vw_db_close (&db);
    //  Back to schema 3 with a user, as an older build left it.
    sqlite3 *raw = NULL;
    assert_int_equal (sqlite3_open (file, &raw), SQLITE_OK);
    assert_int_equal (sqlite3_exec (raw,
                                    "ALTER TABLE agents DROP COLUMN previous_token_hash; "
                                    "ALTER TABLE agents DROP COLUMN previous_token_until; "
                                    "ALTER TABLE commands DROP COLUMN progress; "
                                    "ALTER TABLE commands DROP COLUMN progress_message; "
                                    "DROP TABLE telemetry_seqs; DROP TABLE telemetry_frames; "
                                    "DROP TABLE telemetry_agents; CREATE TABLE telemetry (a "
                                    "INTEGER); "
                                    "DROP TABLE token_denylist; ALTER TABLE users DROP COLUMN "
                                    "token_gen; INSERT INTO users (username, password_hash, role, "
                                    "created_at) VALUES ('old', 'h', 'admin', 1); PRAGMA "
                                    "user_version = 3;",
                                    NULL, NULL, NULL),
                      SQLITE_OK);
    sqlite3_close (raw);
    db = vw_db_open (file, false, &status, NULL, 0);
    assert_non_null (db);
    assert_int_equal (vw_db_migrations_applied (db), 5);  //  4 to 8
    vw_user_record_t rec;
    assert_int_equal (vw_users_get (db, "old", &rec), 0);
    assert_true (rec.found);
    assert_int_equal (rec.gen, 0);  //  what a token without "gen" carries
    vw_result_t r = {0};
    vw_users_deny (db, "j", "old", 10, 1, &r);
    assert_int_equal (r.status, 204);
    vw_db_close (&db);
    char cmd[400];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", path);
    assert_int_equal (system (cmd), 0);
}

//  --------------------------------------------------------------------------
//  edge/vw_tokens

static vw_jwt_claims_t
s_claims (const char *sub, const char *role, int64_t gen, bool has_gen, const char *jti)
{
    vw_jwt_claims_t c;
    memset (&c, 0, sizeof c);
    snprintf (c.sub, sizeof c.sub, "%s", sub);
    snprintf (c.role, sizeof c.role, "%s", role);
    snprintf (c.jti, sizeof c.jti, "%s", jti);
    c.gen = gen;
    c.has_gen = has_gen;
    c.exp = 5000;
    return c;
}

static void
test_tokens_verdicts (void **state)
{
    vw_tokens_t *t = vw_tokens_new ();
    vw_jwt_claims_t c = s_claims ("ann", "operator", 7, true, "j1");
    assert_int_equal (vw_tokens_check (t, &c), VW_TOKENS_NOT_READY);
    //  A merge before the first full table does not make it ready.
    assert_int_equal (vw_tokens_apply (t, false, "{\"ann\":[7,\"operator\",false]}", NULL, 100), 0);
    assert_false (vw_tokens_ready (t));
    assert_int_equal (
        vw_tokens_apply (t, true,
                         "{\"ann\":[7,\"operator\",false],\"bob\":[0,\"viewer\",false],"
                         "\"cy\":[3,\"admin\",true],\"bad\":[1,\"root\",false],\"worse\":7}",
                         "{\"dead\":50,\"j9\":9000}", 100),
        0);
    assert_true (vw_tokens_ready (t));
    assert_int_equal (vw_tokens_user_count (t), 3);    //  bad shapes skipped
    assert_int_equal (vw_tokens_denied_count (t), 1);  //  "dead" expired
    assert_int_equal (vw_tokens_check (t, &c), VW_TOKENS_OK);
    c = s_claims ("ann", "viewer", 7, true, "j2");  //  a narrower role is fine
    assert_int_equal (vw_tokens_check (t, &c), VW_TOKENS_OK);
    c = s_claims ("ann", "admin", 7, true, "j2");
    assert_int_equal (vw_tokens_check (t, &c), VW_TOKENS_ROLE);
    c = s_claims ("ann", "operator", 8, true, "j2");
    assert_int_equal (vw_tokens_check (t, &c), VW_TOKENS_STALE);
    c = s_claims ("ann", "operator", 0, false, "j2");  //  no gen = generation 0
    assert_int_equal (vw_tokens_check (t, &c), VW_TOKENS_STALE);
    c = s_claims ("bob", "viewer", 0, false, "");
    assert_int_equal (vw_tokens_check (t, &c), VW_TOKENS_OK);
    c = s_claims ("cy", "admin", 3, true, "j3");
    assert_int_equal (vw_tokens_check (t, &c), VW_TOKENS_DISABLED);
    c = s_claims ("ghost", "viewer", 0, false, "j4");
    assert_int_equal (vw_tokens_check (t, &c), VW_TOKENS_NO_USER);
    c = s_claims ("ann", "operator", 7, true, "j9");
    assert_int_equal (vw_tokens_check (t, &c), VW_TOKENS_LOGGED_OUT);

    //  Merges: a change, a deletion, a denial.
    assert_int_equal (vw_tokens_apply (t, false, "{\"ann\":[11,\"operator\",false],\"bob\":null}",
                                       "{\"j1\":6000}", 100),
                      0);
    c = s_claims ("ann", "operator", 7, true, "j5");
    assert_int_equal (vw_tokens_check (t, &c), VW_TOKENS_STALE);
    c = s_claims ("ann", "operator", 11, true, "j1");
    assert_int_equal (vw_tokens_check (t, &c), VW_TOKENS_LOGGED_OUT);
    c = s_claims ("ann", "operator", 11, true, "j5");
    assert_int_equal (vw_tokens_check (t, &c), VW_TOKENS_OK);
    c = s_claims ("bob", "viewer", 0, false, "");
    assert_int_equal (vw_tokens_check (t, &c), VW_TOKENS_NO_USER);

    //  Garbage changes nothing.
    assert_int_equal (vw_tokens_apply (t, true, "[1]", NULL, 100), -1);
    assert_int_equal (vw_tokens_apply (t, true, "{", NULL, 100), -1);
    assert_int_equal (vw_tokens_apply (t, false, NULL, "\"x\"", 100), -1);
    assert_int_equal (vw_tokens_user_count (t), 2);
    //  A full table replaces everything.
    assert_int_equal (vw_tokens_apply (t, true, "{}", "{}", 100), 0);
    assert_int_equal (vw_tokens_user_count (t), 0);
    assert_int_equal (vw_tokens_denied_count (t), 0);
    assert_string_equal (vw_tokens_verdict_text (VW_TOKENS_STALE),
                         "token was revoked (the user's password, role or account changed)");
    vw_tokens_destroy (&t);
    assert_null (t);
}

//  --------------------------------------------------------------------------
//  edge/vw_jwt: the "gen" claim

static void
test_jwt_gen_claim (void **state)
{
    char *token =
        vw_jwt_sign_gen (S_KEY, S_KEYLEN, "ann", "viewer", 100, 200, "j", 9007199254740991);
    assert_non_null (token);
    vw_jwt_claims_t c;
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, 150, 0, &c), VW_JWT_OK);
    assert_true (c.has_gen);
    assert_int_equal (c.gen, 9007199254740991);
    //  The payload is PyJWT's for {"sub","role","iat","exp","jti","gen"}.
    const char *dot = strchr (token, '.');
    char payload[256];
    size_t len = strcspn (dot + 1, ".");
    snprintf (payload, sizeof payload, "%.*s", (int) len, dot + 1);
    assert_string_equal (payload, "eyJzdWIiOiJhbm4iLCJyb2xlIjoidmlld2VyIiwiaWF0IjoxMDAsImV4cCI6MjAw"
                                  "LCJqdGkiOiJqIiwiZ2VuIjo5MDA3MTk5MjU0NzQwOTkxfQ");
    free (token);
    //  Without gen (and from vw_jwt_sign): no claim, generation 0.
    token = vw_jwt_sign_gen (S_KEY, S_KEYLEN, "ann", "viewer", 100, 200, "j", -1);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, 150, 0, &c), VW_JWT_OK);
    assert_false (c.has_gen);
    assert_int_equal (c.gen, 0);
    char *plain = vw_jwt_sign (S_KEY, S_KEYLEN, "ann", "viewer", 100, 200, "j");
    assert_string_equal (plain, token);
    free (plain);
    free (token);
}

//  A token with the given payload JSON, signed with S_KEY.
static void
s_verify_payload (const char *json, vw_jwt_status_t expected)
{
    char *token = vw_jwt_sign (S_KEY, S_KEYLEN, "x", "viewer", 1, 2, "j");
    //  Swap the payload and re-sign by hand: header.payload.mac
    char header[64];
    snprintf (header, sizeof header, "%.*s", (int) strcspn (token, "."), token);
    free (token);
    char b64[512];
    sodium_bin2base64 (b64, sizeof b64, (const unsigned char *) json, strlen (json),
                       sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char signed_part[700];
    snprintf (signed_part, sizeof signed_part, "%s.%s", header, b64);
    uint8_t mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init (&st, S_KEY, S_KEYLEN);
    crypto_auth_hmacsha256_update (&st, (const unsigned char *) signed_part, strlen (signed_part));
    crypto_auth_hmacsha256_final (&st, mac);
    char mac64[64];
    sodium_bin2base64 (mac64, sizeof mac64, mac, sizeof mac,
                       sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char full[800];
    snprintf (full, sizeof full, "%s.%s", signed_part, mac64);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, full, 1, 0, NULL), expected);
}

static void
test_jwt_gen_must_be_a_natural_number (void **state)
{
    s_verify_payload ("{\"sub\":\"a\",\"role\":\"viewer\",\"exp\":9,\"gen\":3}", VW_JWT_OK);
    s_verify_payload ("{\"sub\":\"a\",\"role\":\"viewer\",\"exp\":9,\"gen\":-1}",
                      VW_JWT_BAD_CLAIMS);
    s_verify_payload ("{\"sub\":\"a\",\"role\":\"viewer\",\"exp\":9,\"gen\":\"3\"}",
                      VW_JWT_BAD_CLAIMS);
    s_verify_payload ("{\"sub\":\"a\",\"role\":\"viewer\",\"exp\":9,\"gen\":1.5}",
                      VW_JWT_BAD_CLAIMS);
}

//  --------------------------------------------------------------------------
//  proto/vw_api: user requests

static void
test_api_user_requests (void **state)
{
    vw_api_error_t err;
    json_t *args =
        json_pack ("{s:s, s:s, s:s}", "username", "a@b", "password", "password1", "role", "viewer");
    assert_null (vw_api_user_create (args, &err));
    assert_int_equal (err.status, 400);
    assert_non_null (strstr (err.message, "username"));
    json_object_set_new (args, "username", json_string ("ok.name:1"));
    vw_msg_t *msg = vw_api_user_create (args, &err);
    assert_non_null (msg);
    vw_msg_destroy (&msg);
    json_decref (args);

    //  update: at least one field, each of the right type.
    const char *bad[] = {"{}",
                         "{\"role\":\"root\"}",
                         "{\"password\":\"short\"}",
                         "{\"password\":12345678}",
                         "{\"disabled\":1}",
                         "{\"disabled\":\"true\"}",
                         "{\"colour\":\"red\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        args = json_loads (bad[i], 0, NULL);
        assert_null (vw_api_user_update ("ann", args, &err));
        assert_int_equal (err.status, 400);
        json_decref (args);
    }
    args = json_loads ("{\"role\":\"admin\"}", 0, NULL);
    assert_null (vw_api_user_update ("..", args, &err));
    assert_null (vw_api_user_update ("a/b", args, &err));
    json_decref (args);
    args = json_loads ("{\"disabled\":false,\"password\":\"long-enough\"}", 0, NULL);
    msg = vw_api_user_update ("ann", args, &err);
    assert_non_null (msg);
    assert_string_equal (msg->user_update.username, "ann");
    assert_null (msg->user_update.role);
    assert_string_equal (msg->user_update.password, "long-enough");
    assert_true (msg->user_update.set_disabled);
    assert_false (msg->user_update.disabled);
    vw_msg_destroy (&msg);
    json_decref (args);

    assert_null (vw_api_user_show ("", &err));
    assert_null (vw_api_user_delete (".", &err));
    msg = vw_api_user_delete ("ann", &err);
    assert_string_equal (msg->user_delete.username, "ann");
    vw_msg_destroy (&msg);

    args = json_loads ("{\"limit\":\"0\"}", 0, NULL);
    assert_null (vw_api_user_list (args, &err));
    json_decref (args);
    args = json_loads ("{\"limit\":\"5\",\"cursor\":\"bob\"}", 0, NULL);
    msg = vw_api_user_list (args, &err);
    assert_int_equal (msg->user_list.limit, 5);
    assert_string_equal (msg->user_list.cursor, "bob");
    vw_msg_destroy (&msg);
    json_decref (args);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_store_users_round_trip),
        cmocka_unit_test (test_store_load_and_deny),
        cmocka_unit_test (test_migration_4_keeps_users_at_generation_0),
        cmocka_unit_test (test_tokens_verdicts),
        cmocka_unit_test (test_jwt_gen_claim),
        cmocka_unit_test (test_jwt_gen_must_be_a_natural_number),
        cmocka_unit_test (test_api_user_requests),
    };
    return cmocka_run_group_tests_name ("users", tests, NULL, NULL);
}
