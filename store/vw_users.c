/*  vw_users - see vw_users.h. */
#include "vw_users.h"

#include <string.h>

#define S_USER_COLUMNS "username, role, disabled, created_at, token_gen"

static const char *S_SQL_COUNT = "SELECT count(*) FROM users";
static const char *S_SQL_INSERT = "INSERT INTO users (username, password_hash, role, created_at, "
                                  "token_gen) VALUES (?1, ?2, ?3, ?4, ?5)";
static const char *S_SQL_RESET =
    "INSERT INTO users (username, password_hash, role, created_at, token_gen) "
    "VALUES (?1, ?2, 'admin', ?3, ?4) "
    "ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, "
    "role = 'admin', disabled = 0, token_gen = excluded.token_gen";
static const char *S_SQL_GET =
    "SELECT password_hash, role, disabled, token_gen FROM users WHERE username = ?1";
static const char *S_SQL_UPDATE =
    "UPDATE users SET password_hash = coalesce (?2, password_hash), role = coalesce (?3, role), "
    "disabled = CASE WHEN ?4 THEN ?5 ELSE disabled END, token_gen = ?6 WHERE username = ?1";
static const char *S_SQL_ONE = "SELECT " S_USER_COLUMNS " FROM users WHERE username = ?1";
static const char *S_SQL_DELETE = "DELETE FROM users WHERE username = ?1";
static const char *S_SQL_ALL = "SELECT " S_USER_COLUMNS " FROM users ORDER BY username";
static const char *S_SQL_DENIED = "SELECT jti, exp FROM token_denylist WHERE exp > ?1";
static const char *S_SQL_DENY =
    "INSERT OR IGNORE INTO token_denylist (jti, username, exp) VALUES (?1, ?2, ?3)";
static const char *S_SQL_PRUNE = "DELETE FROM token_denylist WHERE exp <= ?1";

static void
s_db_fail (vw_db_t *db, vw_result_t *result)
{
    vw_result_fail (result, 500, "database_error", "database error: %s",
                    sqlite3_errmsg (vw_db_handle (db)));
}

//  One row of S_USER_COLUMNS as a user object (with "gen").
static json_t *
s_user_object (sqlite3_stmt *stmt)
{
    return json_pack ("{s:o, s:o, s:b, s:o, s:I}", "username", vw_db_json_text (stmt, 0), "role",
                      vw_db_json_text (stmt, 1), "disabled", sqlite3_column_int (stmt, 2) != 0,
                      "created_at", vw_db_json_int (stmt, 3), "gen",
                      (json_int_t) sqlite3_column_int64 (stmt, 4));
}

int64_t
vw_users_count (vw_db_t *db)
{
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_COUNT);
    if (!stmt || sqlite3_step (stmt) != SQLITE_ROW)
        return -1;
    int64_t n = sqlite3_column_int64 (stmt, 0);
    sqlite3_reset (stmt);
    return n;
}

void
vw_users_insert (vw_db_t *db, const char *username, const char *password_hash, const char *role,
                 int64_t gen, int64_t now_ms, vw_result_t *result)
{
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_INSERT);
    if (!stmt) {
        s_db_fail (db, result);
        return;
    }
    sqlite3_bind_text (stmt, 1, username, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text (stmt, 2, password_hash, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text (stmt, 3, role, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64 (stmt, 4, now_ms);
    sqlite3_bind_int64 (stmt, 5, gen);
    int rc = sqlite3_step (stmt);
    int extended = sqlite3_extended_errcode (vw_db_handle (db));
    sqlite3_reset (stmt);
    if (rc == SQLITE_DONE)
        vw_result_ok (result, 201,
                      json_pack ("{s:s, s:s, s:b, s:I, s:I}", "username", username, "role", role,
                                 "disabled", 0, "created_at", (json_int_t) now_ms, "gen",
                                 (json_int_t) gen));
    else if (extended == SQLITE_CONSTRAINT_PRIMARYKEY)
        vw_result_fail (result, 409, "conflict", "user '%.64s' already exists", username);
    else if ((rc & 0xff) == SQLITE_CONSTRAINT)  //  rc may be an extended code
        vw_result_fail (result, 400, "bad_request", "user refused by the schema: %s",
                        sqlite3_errmsg (vw_db_handle (db)));
    else
        s_db_fail (db, result);
}

int
vw_users_get (vw_db_t *db, const char *username, vw_user_record_t *out)
{
    memset (out, 0, sizeof *out);
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_GET);
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, username ? username : "", -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        out->found = true;
        snprintf (out->password_hash, sizeof out->password_hash, "%s",
                  (const char *) sqlite3_column_text (stmt, 0));
        snprintf (out->role, sizeof out->role, "%s", (const char *) sqlite3_column_text (stmt, 1));
        out->disabled = sqlite3_column_int (stmt, 2) != 0;
        out->gen = sqlite3_column_int64 (stmt, 3);
    }
    sqlite3_reset (stmt);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

int
vw_users_reset_admin (vw_db_t *db, const char *username, const char *password_hash, int64_t gen,
                      int64_t now_ms)
{
    vw_user_record_t before;
    if (vw_users_get (db, username, &before))
        return -1;
    memset (before.password_hash, 0, sizeof before.password_hash);
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_RESET);
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, username, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text (stmt, 2, password_hash, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64 (stmt, 3, now_ms);
    sqlite3_bind_int64 (stmt, 4, gen);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE)
        return -1;
    return before.found ? 0 : 1;
}

void
vw_users_update (vw_db_t *db, const char *username, const char *password_hash, const char *role,
                 bool set_disabled, bool disabled, int64_t gen, vw_result_t *result)
{
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_UPDATE);
    if (!stmt) {
        s_db_fail (db, result);
        return;
    }
    sqlite3_bind_text (stmt, 1, username ? username : "", -1, SQLITE_TRANSIENT);
    if (password_hash)
        sqlite3_bind_text (stmt, 2, password_hash, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null (stmt, 2);
    if (role)
        sqlite3_bind_text (stmt, 3, role, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null (stmt, 3);
    sqlite3_bind_int (stmt, 4, set_disabled);
    sqlite3_bind_int (stmt, 5, disabled);
    sqlite3_bind_int64 (stmt, 6, gen);
    int rc = sqlite3_step (stmt);
    int changed = sqlite3_changes (vw_db_handle (db));
    sqlite3_reset (stmt);
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        vw_result_fail (result, 400, "bad_request", "change refused by the schema: %s",
                        sqlite3_errmsg (vw_db_handle (db)));
        return;
    }
    if (rc != SQLITE_DONE) {
        s_db_fail (db, result);
        return;
    }
    if (changed == 0) {
        vw_result_fail (result, 404, "not_found", "no user '%.128s'", username ? username : "");
        return;
    }
    vw_db_get_object (db, S_SQL_ONE, username, s_user_object, "user", result);
}

void
vw_users_delete (vw_db_t *db, const char *username, vw_result_t *result)
{
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_DELETE);
    if (!stmt) {
        s_db_fail (db, result);
        return;
    }
    sqlite3_bind_text (stmt, 1, username ? username : "", -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step (stmt);
    int changed = sqlite3_changes (vw_db_handle (db));
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE)
        s_db_fail (db, result);
    else if (changed == 0)
        vw_result_fail (result, 404, "not_found", "no user '%.128s'", username ? username : "");
    else
        vw_result_ok (result, 204, NULL);
}

void
vw_users_load (vw_db_t *db, int64_t now_s, vw_result_t *result)
{
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_ALL);
    if (!stmt) {
        s_db_fail (db, result);
        return;
    }
    json_t *users = json_array ();
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
        json_array_append_new (users, s_user_object (stmt));
    sqlite3_reset (stmt);
    json_t *denied = json_object ();
    sqlite3_stmt *deny = rc == SQLITE_DONE ? vw_db_stmt (db, S_SQL_DENIED) : NULL;
    if (deny) {
        sqlite3_bind_int64 (deny, 1, now_s);
        while ((rc = sqlite3_step (deny)) == SQLITE_ROW)
            json_object_set_new (denied, (const char *) sqlite3_column_text (deny, 0),
                                 json_integer (sqlite3_column_int64 (deny, 1)));
        sqlite3_reset (deny);
    }
    if (!deny || rc != SQLITE_DONE) {
        json_decref (users);
        json_decref (denied);
        s_db_fail (db, result);
        return;
    }
    vw_result_ok (result, 200, json_pack ("{s:o, s:o}", "users", users, "denied", denied));
}

void
vw_users_deny (vw_db_t *db, const char *jti, const char *username, int64_t exp_s, int64_t now_s,
               vw_result_t *result)
{
    if (!jti || !*jti) {
        vw_result_fail (result, 400, "bad_request", "a token id must not be empty");
        return;
    }
    sqlite3_stmt *prune = vw_db_stmt (db, S_SQL_PRUNE);
    if (!prune) {
        s_db_fail (db, result);
        return;
    }
    sqlite3_bind_int64 (prune, 1, now_s);
    int rc = sqlite3_step (prune);
    sqlite3_reset (prune);
    sqlite3_stmt *stmt = rc == SQLITE_DONE ? vw_db_stmt (db, S_SQL_DENY) : NULL;
    if (!stmt) {
        s_db_fail (db, result);
        return;
    }
    sqlite3_bind_text (stmt, 1, jti, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text (stmt, 2, username ? username : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64 (stmt, 3, exp_s);
    rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE)
        s_db_fail (db, result);
    else
        vw_result_ok (result, 204, NULL);
}
