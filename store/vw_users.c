/*  vw_users - see vw_users.h. */
#include "vw_users.h"

#include <string.h>

static const char *S_SQL_COUNT = "SELECT count(*) FROM users";
static const char *S_SQL_INSERT =
    "INSERT INTO users (username, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4)";
static const char *S_SQL_RESET =
    "INSERT INTO users (username, password_hash, role, created_at) VALUES (?1, ?2, 'admin', ?3) "
    "ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, "
    "role = 'admin', disabled = 0";
static const char *S_SQL_GET =
    "SELECT password_hash, role, disabled FROM users WHERE username = ?1";

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
                 int64_t now_ms, vw_result_t *result)
{
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_INSERT);
    if (!stmt) {
        vw_result_fail (result, 500, "database_error", "database error: %s",
                        sqlite3_errmsg (vw_db_handle (db)));
        return;
    }
    sqlite3_bind_text (stmt, 1, username, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text (stmt, 2, password_hash, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text (stmt, 3, role, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64 (stmt, 4, now_ms);
    int rc = sqlite3_step (stmt);
    int extended = sqlite3_extended_errcode (vw_db_handle (db));
    sqlite3_reset (stmt);
    if (rc == SQLITE_DONE)
        vw_result_ok (result, 201,
                      json_pack ("{s:s, s:s, s:I}", "username", username, "role", role,
                                 "created_at", (json_int_t) now_ms));
    else if (extended == SQLITE_CONSTRAINT_PRIMARYKEY)
        vw_result_fail (result, 409, "conflict", "user '%.64s' already exists", username);
    else if ((rc & 0xff) == SQLITE_CONSTRAINT)  //  rc may be an extended code
        vw_result_fail (result, 400, "bad_request", "user refused by the schema: %s",
                        sqlite3_errmsg (vw_db_handle (db)));
    else
        vw_result_fail (result, 500, "database_error", "database error: %s",
                        sqlite3_errmsg (vw_db_handle (db)));
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
    }
    sqlite3_reset (stmt);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

int
vw_users_reset_admin (vw_db_t *db, const char *username, const char *password_hash, int64_t now_ms)
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
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE)
        return -1;
    return before.found ? 0 : 1;
}
