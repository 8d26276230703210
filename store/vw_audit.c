/*  vw_audit - see vw_audit.h. */
#include "vw_audit.h"

#include <stdlib.h>
#include <string.h>

static const char *S_SQL_APPEND =
    "INSERT INTO audit_logs (ts, actor, source, action, target, outcome, detail) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
static const char *S_SQL_LIST =
    "SELECT id, ts, actor, source, action, target, outcome, detail FROM audit_logs "
    "WHERE id < ?1 AND (?2 IS NULL OR action = ?2) AND (?3 IS NULL OR actor = ?3) "
    "AND ts >= ?4 AND ts < ?5 ORDER BY id DESC LIMIT ?6";

int
vw_audit_append (vw_db_t *db, int64_t ts, const char *actor, const char *source, const char *action,
                 const char *target, const char *outcome, const char *detail)
{
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_APPEND);
    if (!stmt)
        return -1;
    sqlite3_bind_int64 (stmt, 1, ts);
    vw_db_bind_text (stmt, 2, actor ? actor : "unknown");
    vw_db_bind_text (stmt, 3, source);
    vw_db_bind_text (stmt, 4, action ? action : "unknown");
    vw_db_bind_text (stmt, 5, target);
    vw_db_bind_text (stmt, 6, outcome ? outcome : "unknown");
    vw_db_bind_text (stmt, 7, detail);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE ? 0 : -1;
}

void
vw_audit_list (vw_db_t *db, const char *action, const char *actor, int64_t from, int64_t to,
               int64_t limit, const char *cursor, vw_result_t *result)
{
    //  The cursor is the id of the last entry of the previous page.
    int64_t before = INT64_MAX;
    if (cursor && *cursor) {
        char *end = NULL;
        long long id = strtoll (cursor, &end, 10);
        if (!end || *end || id <= 0) {
            vw_result_fail (result, 400, "bad_request", "field 'cursor' is not a valid cursor");
            return;
        }
        before = id;
    }
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_LIST);
    if (!stmt) {
        vw_result_fail (result, 500, "database_error", "database error: %s",
                        sqlite3_errmsg (vw_db_handle (db)));
        return;
    }
    sqlite3_bind_int64 (stmt, 1, before);
    vw_db_bind_text (stmt, 2, action);
    vw_db_bind_text (stmt, 3, actor);
    sqlite3_bind_int64 (stmt, 4, from > 0 ? from : INT64_MIN);
    sqlite3_bind_int64 (stmt, 5, to > 0 ? to : INT64_MAX);
    sqlite3_bind_int64 (stmt, 6, limit + 1);
    json_t *entries = json_array ();
    int64_t last = 0;
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        if ((int64_t) json_array_size (entries) == limit)
            break;
        json_t *entry = json_object ();
        last = sqlite3_column_int64 (stmt, 0);
        json_object_set_new (entry, "id", json_integer (last));
        json_object_set_new (entry, "ts", json_integer (sqlite3_column_int64 (stmt, 1)));
        static const char *names[] = {"actor", "source", "action", "target", "outcome", "detail"};
        for (int i = 0; i < 6; i++) {
            const char *text = (const char *) sqlite3_column_text (stmt, 2 + i);
            json_object_set_new (entry, names[i], text ? json_string (text) : json_null ());
        }
        json_array_append_new (entries, entry);
    }
    bool more = rc == SQLITE_ROW;
    sqlite3_reset (stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        json_decref (entries);
        vw_result_fail (result, 500, "database_error", "database error: %s",
                        sqlite3_errmsg (vw_db_handle (db)));
        return;
    }
    json_t *next = json_null ();
    if (more) {
        char text[24];
        snprintf (text, sizeof text, "%lld", (long long) last);
        next = json_string (text);
    }
    vw_result_ok (result, 200, json_pack ("{s:o, s:o}", "entries", entries, "next_cursor", next));
}
