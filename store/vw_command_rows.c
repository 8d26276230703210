/*  vw_command_rows - see vw_command_rows.h. */
#include "vw_command_rows.h"
#include "vw_msg.h"

#include <stdlib.h>
#include <string.h>

#define S_COLUMNS                                                                                  \
    "command_id, agent_id, type, payload, priority, state, attempts, max_retries, timeout_ms, "    \
    "created_at, started_at, delivered_at, finished_at, expires_at, next_attempt_at, "             \
    "failure_reason, result, error, created_by, idempotency_key, seq, failures, progress, "        \
    "progress_message"

static const char *S_SQL_AGENT = "SELECT revoked_at IS NOT NULL FROM agents WHERE agent_id = ?1";
static const char *S_SQL_BY_KEY = "SELECT command_id FROM commands WHERE idempotency_key = ?1";
static const char *S_SQL_INSERT =
    "INSERT INTO commands (command_id, agent_id, type, payload, priority, state, max_retries, "
    "timeout_ms, created_at, expires_at, created_by, idempotency_key, seq) "
    "VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
//  Apart from the insert: RETURNING would cost an ephemeral table per row.
//  The store is the only writer and this runs in its transaction.
static const char *S_SQL_NEXT_SEQ = "SELECT coalesce (max (seq), 0) + 1 FROM commands";
static const char *S_SQL_GET = "SELECT " S_COLUMNS " FROM commands WHERE command_id = ?1";
static const char *S_SQL_LIST =
    "SELECT " S_COLUMNS " FROM commands WHERE seq < ?1 AND (?2 IS NULL OR agent_id = ?2) "
    "AND (?3 IS NULL OR state = ?3) ORDER BY seq DESC LIMIT ?4";
static const char *S_SQL_EXECUTING =
    "UPDATE commands SET state = 'executing', attempts = ?2, "
    "started_at = coalesce (started_at, ?3), delivered_at = NULL, next_attempt_at = NULL, "
    "progress = NULL, progress_message = NULL "
    "WHERE command_id = ?1 AND state IN ('pending', 'executing')";
static const char *S_SQL_PROGRESS = "UPDATE commands SET progress = ?2, progress_message = ?3 "
                                    "WHERE command_id = ?1 AND state = 'executing'";
static const char *S_SQL_DELIVERED =
    "UPDATE commands SET delivered_at = ?2 WHERE command_id = ?1 AND state = 'executing'";
static const char *S_SQL_PENDING =
    "UPDATE commands SET state = 'pending', next_attempt_at = nullif (?2, 0), "
    "failure_reason = coalesce (?3, failure_reason), failures = ?4, error = coalesce (?5, error), "
    "attempts = ?6, delivered_at = NULL "
    "WHERE command_id = ?1 AND state IN ('pending', 'executing')";
//  delivered_at: the finishing attempt's ack when the finish carries it (the
//  executor folds a quick command's ack into its result), else as it was.
static const char *S_SQL_FINISH =
    "UPDATE commands SET state = ?2, failure_reason = ?3, result = ?4, error = ?5, "
    "finished_at = ?6, next_attempt_at = NULL, failures = ?7, attempts = max (attempts, ?8), "
    "delivered_at = coalesce (nullif (?9, 0), delivered_at) "
    "WHERE command_id = ?1 AND state IN ('pending', 'executing')";
//  The partial index walks the unfinished rows in seq order from `after`.
//  Named, because without statistics the planner prefers the (state, ...)
//  index, which reads every unfinished row and sorts them for each page:
//  quadratic over a recovery.
static const char *S_SQL_UNFINISHED =
    "SELECT command_id, agent_id, type, payload, state, priority, seq, attempts, max_retries, "
    "timeout_ms, expires_at, next_attempt_at, failures FROM commands "
    "INDEXED BY commands_unfinished_seq "
    "WHERE state IN ('pending', 'executing') AND seq > ?1 ORDER BY seq LIMIT ?2";

static const char *S_SQL_TARGETS =
    "SELECT agent_id FROM agents WHERE revoked_at IS NULL AND NOT EXISTS ("
    "SELECT 1 FROM json_each (?1) want WHERE NOT EXISTS ("
    "SELECT 1 FROM json_each (agents.labels) have "
    "WHERE have.key = want.key AND have.value = want.value)) ORDER BY agent_id";
static const char *S_SQL_STATE = "SELECT state FROM commands WHERE command_id = ?1";

static const char *s_priorities[] = {"high", "normal", "low"};

const char *
vw_command_priority_name (int priority)
{
    return priority >= 0 && priority <= 2 ? s_priorities[priority] : "normal";
}

int
vw_command_priority_parse (const char *name)
{
    for (int i = 0; name && i < 3; i++)
        if (strcmp (name, s_priorities[i]) == 0)
            return i;
    return -1;
}

static json_t *
s_json_or_null (sqlite3_stmt *stmt, int col)
{
    const char *text = (const char *) sqlite3_column_text (stmt, col);
    json_t *value = text ? json_loads (text, JSON_DECODE_ANY, NULL) : NULL;
    return value ? value : json_null ();
}

//  The REST API's command object from a row of S_COLUMNS.
static json_t *
s_command_object (sqlite3_stmt *stmt)
{
    json_t *c = json_object ();
    json_object_set_new (c, "command_id", vw_db_json_text (stmt, 0));
    json_object_set_new (c, "agent_id", vw_db_json_text (stmt, 1));
    json_object_set_new (c, "type", vw_db_json_text (stmt, 2));
    json_object_set_new (c, "payload", s_json_or_null (stmt, 3));
    json_object_set_new (c, "priority",
                         json_string (vw_command_priority_name (sqlite3_column_int (stmt, 4))));
    json_object_set_new (c, "state", vw_db_json_text (stmt, 5));
    json_object_set_new (c, "attempts", json_integer (sqlite3_column_int64 (stmt, 6)));
    json_object_set_new (c, "failures", json_integer (sqlite3_column_int64 (stmt, 21)));
    json_object_set_new (c, "max_retries", json_integer (sqlite3_column_int64 (stmt, 7)));
    json_object_set_new (c, "timeout_ms", json_integer (sqlite3_column_int64 (stmt, 8)));
    json_object_set_new (c, "created_at", vw_db_json_int (stmt, 9));
    json_object_set_new (c, "started_at", vw_db_json_int (stmt, 10));
    json_object_set_new (c, "delivered_at", vw_db_json_int (stmt, 11));
    json_object_set_new (c, "finished_at", vw_db_json_int (stmt, 12));
    json_object_set_new (c, "expires_at", vw_db_json_int (stmt, 13));
    json_object_set_new (c, "next_attempt_at", vw_db_json_int (stmt, 14));
    json_object_set_new (c, "failure_reason", vw_db_json_text (stmt, 15));
    json_object_set_new (c, "result", s_json_or_null (stmt, 16));
    json_object_set_new (c, "error", vw_db_json_text (stmt, 17));
    json_object_set_new (c, "created_by", vw_db_json_text (stmt, 18));
    json_object_set_new (c, "idempotency_key", vw_db_json_text (stmt, 19));
    json_object_set_new (c, "progress", vw_db_json_int (stmt, 22));
    json_object_set_new (c, "progress_message", vw_db_json_text (stmt, 23));
    return c;
}

//  The same object for a row just inserted, from the values it was
//  inserted with (no read back: every other column is still its default).
static json_t *
s_new_command_object (const vw_command_new_t *c)
{
    json_t *payload = c->payload_json ? json_loads (c->payload_json, JSON_DECODE_ANY, NULL) : NULL;
    json_t *o = json_pack (
        "{s:s, s:s, s:s, s:o, s:s, s:s, s:i, s:i, s:I, s:I, s:I, s:n, s:n, s:n, s:o, s:n, s:n, "
        "s:n, s:n, s:o, s:o, s:n, s:n}",
        "command_id", c->command_id, "agent_id", c->agent_id, "type", c->type, "payload",
        payload ? payload : json_object (), "priority", vw_command_priority_name (c->priority),
        "state", "pending", "attempts", 0, "failures", 0, "max_retries",
        (json_int_t) c->max_retries, "timeout_ms", (json_int_t) c->timeout_ms, "created_at",
        (json_int_t) c->created_at, "started_at", "delivered_at", "finished_at", "expires_at",
        c->expires_at ? json_integer (c->expires_at) : json_null (), "next_attempt_at",
        "failure_reason", "result", "error", "created_by",
        c->created_by ? json_string (c->created_by) : json_null (), "idempotency_key",
        c->idempotency_key ? json_string (c->idempotency_key) : json_null (), "progress",
        "progress_message");
    return o;
}

static void
s_db_error (vw_db_t *db, vw_result_t *result)
{
    vw_result_fail (result, 500, "database_error", "database error: %s",
                    sqlite3_errmsg (vw_db_handle (db)));
}

void
vw_command_rows_get (vw_db_t *db, const char *command_id, vw_result_t *result)
{
    vw_db_get_object (db, S_SQL_GET, command_id, s_command_object, "command", result);
}

void
vw_command_rows_insert (vw_db_t *db, const vw_command_new_t *c, int64_t *seq, bool *replayed,
                        vw_result_t *result)
{
    *replayed = false;
    *seq = 0;
    sqlite3_stmt *stmt;
    if (c->idempotency_key) {
        stmt = vw_db_stmt (db, S_SQL_BY_KEY);
        if (!stmt)
            return s_db_error (db, result);
        vw_db_bind_text (stmt, 1, c->idempotency_key);
        if (sqlite3_step (stmt) == SQLITE_ROW) {
            char *first = strdup ((const char *) sqlite3_column_text (stmt, 0));
            sqlite3_reset (stmt);
            vw_command_rows_get (db, first, result);
            free (first);
            if (result->status == 200)
                result->status = 202;
            *replayed = true;
            return;
        }
        sqlite3_reset (stmt);
    }
    stmt = vw_db_stmt (db, S_SQL_AGENT);
    if (!stmt)
        return s_db_error (db, result);
    vw_db_bind_text (stmt, 1, c->agent_id);
    int rc = sqlite3_step (stmt);
    bool revoked = rc == SQLITE_ROW && sqlite3_column_int (stmt, 0);
    sqlite3_reset (stmt);
    if (rc == SQLITE_DONE) {
        vw_result_fail (result, 404, "not_found", "no agent '%.64s'", c->agent_id);
        return;
    }
    if (revoked) {
        vw_result_fail (result, 409, "conflict", "agent '%.64s' is revoked", c->agent_id);
        return;
    }
    stmt = vw_db_stmt (db, S_SQL_NEXT_SEQ);
    if (!stmt)
        return s_db_error (db, result);
    rc = sqlite3_step (stmt);
    int64_t next = rc == SQLITE_ROW ? sqlite3_column_int64 (stmt, 0) : 0;
    sqlite3_reset (stmt);
    if (rc != SQLITE_ROW)
        return s_db_error (db, result);
    stmt = vw_db_stmt (db, S_SQL_INSERT);
    if (!stmt)
        return s_db_error (db, result);
    vw_db_bind_text (stmt, 1, c->command_id);
    vw_db_bind_text (stmt, 2, c->agent_id);
    vw_db_bind_text (stmt, 3, c->type);
    vw_db_bind_text (stmt, 4, c->payload_json ? c->payload_json : "{}");
    sqlite3_bind_int (stmt, 5, c->priority);
    sqlite3_bind_int64 (stmt, 6, c->max_retries);
    sqlite3_bind_int64 (stmt, 7, c->timeout_ms);
    sqlite3_bind_int64 (stmt, 8, c->created_at);
    sqlite3_bind_int64 (stmt, 9, c->expires_at);
    vw_db_bind_text (stmt, 10, c->created_by);
    vw_db_bind_text (stmt, 11, c->idempotency_key);
    sqlite3_bind_int64 (stmt, 12, next);
    rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE)
        return s_db_error (db, result);
    *seq = next;
    json_t *object = s_new_command_object (c);
    if (object)
        vw_result_ok (result, 202, object);
    else
        vw_result_fail (result, 500, "internal", "out of memory");
}

void
vw_command_rows_list (vw_db_t *db, const char *agent_id, const char *state, int64_t limit,
                      const char *cursor, vw_result_t *result)
{
    //  The cursor is the seq of the last command of the previous page.
    int64_t before = INT64_MAX;
    if (cursor && *cursor) {
        char *end = NULL;
        long long v = strtoll (cursor, &end, 10);
        if (!end || *end || v <= 0) {
            vw_result_fail (result, 400, "bad_request", "field 'cursor' is not a valid cursor");
            return;
        }
        before = v;
    }
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_LIST);
    if (!stmt)
        return s_db_error (db, result);
    sqlite3_bind_int64 (stmt, 1, before);
    vw_db_bind_text (stmt, 2, agent_id);
    vw_db_bind_text (stmt, 3, state);
    sqlite3_bind_int64 (stmt, 4, limit + 1);
    json_t *commands = json_array ();
    int64_t last = 0;
    size_t bytes = 0;
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        //  At most `limit` commands, and at most VW_MSG_ROWS_BYTES of them
        //  (counted as the columns' sizes): the answer must fit in one
        //  message. next_cursor goes on from the last one given.
        if ((int64_t) json_array_size (commands) == limit || bytes >= VW_MSG_ROWS_BYTES)
            break;
        for (int col = 0; col < sqlite3_column_count (stmt); col++)
            bytes += (size_t) sqlite3_column_bytes (stmt, col);
        json_array_append_new (commands, s_command_object (stmt));
        last = sqlite3_column_int64 (stmt, 20);
    }
    bool more = rc == SQLITE_ROW;
    sqlite3_reset (stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        json_decref (commands);
        return s_db_error (db, result);
    }
    json_t *next = json_null ();
    if (more) {
        char text[24];
        snprintf (text, sizeof text, "%lld", (long long) last);
        next = json_string (text);
    }
    vw_result_ok (result, 200, json_pack ("{s:o, s:o}", "commands", commands, "next_cursor", next));
}

//  Runs an UPDATE bound by the caller: 0 when it changed the row, 1 when
//  no row matched (unknown, or not in a state the update applies to), -1
//  on a database error.
static int
s_update (vw_db_t *db, sqlite3_stmt *stmt)
{
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE)
        return -1;
    return sqlite3_changes (vw_db_handle (db)) == 1 ? 0 : 1;
}

int
vw_command_rows_executing (vw_db_t *db, const char *command_id, int64_t attempt, int64_t now_ms)
{
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_EXECUTING);
    if (!stmt)
        return -1;
    vw_db_bind_text (stmt, 1, command_id);
    sqlite3_bind_int64 (stmt, 2, attempt);
    sqlite3_bind_int64 (stmt, 3, now_ms);
    return s_update (db, stmt);
}

int
vw_command_rows_delivered (vw_db_t *db, const char *command_id, int64_t now_ms)
{
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_DELIVERED);
    if (!stmt)
        return -1;
    vw_db_bind_text (stmt, 1, command_id);
    sqlite3_bind_int64 (stmt, 2, now_ms);
    return s_update (db, stmt);
}

int
vw_command_rows_progress (vw_db_t *db, const char *command_id, int64_t progress,
                          const char *message)
{
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_PROGRESS);
    if (!stmt)
        return -1;
    vw_db_bind_text (stmt, 1, command_id);
    if (progress >= 0)
        sqlite3_bind_int64 (stmt, 2, progress);
    else
        sqlite3_bind_null (stmt, 2);
    vw_db_bind_text (stmt, 3, message);
    return s_update (db, stmt);
}

int
vw_command_rows_pending (vw_db_t *db, const char *command_id, int64_t next_attempt_at,
                         const char *failure_reason, const char *error, int64_t failures,
                         int64_t attempts)
{
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_PENDING);
    if (!stmt)
        return -1;
    vw_db_bind_text (stmt, 1, command_id);
    sqlite3_bind_int64 (stmt, 2, next_attempt_at);
    vw_db_bind_text (stmt, 3, failure_reason);
    sqlite3_bind_int64 (stmt, 4, failures);
    vw_db_bind_text (stmt, 5, error);
    sqlite3_bind_int64 (stmt, 6, attempts);
    return s_update (db, stmt);
}

int
vw_command_rows_finish (vw_db_t *db, const char *command_id, const char *state,
                        const char *failure_reason, const char *result_json, const char *error,
                        int64_t failures, int64_t attempts, int64_t now_ms, int64_t delivered_at)
{
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_FINISH);
    if (!stmt)
        return -1;
    vw_db_bind_text (stmt, 1, command_id);
    vw_db_bind_text (stmt, 2, state);
    vw_db_bind_text (stmt, 3, failure_reason);
    vw_db_bind_text (stmt, 4, result_json);
    vw_db_bind_text (stmt, 5, error);
    sqlite3_bind_int64 (stmt, 6, now_ms);
    sqlite3_bind_int64 (stmt, 7, failures);
    sqlite3_bind_int64 (stmt, 8, attempts);
    sqlite3_bind_int64 (stmt, 9, delivered_at);
    return s_update (db, stmt);
}

//  A text column and its length in bytes (asked in that order, as SQLite
//  wants); "" for NULL.
static const char *
s_column_text (sqlite3_stmt *stmt, int col, size_t *len)
{
    const char *text = (const char *) sqlite3_column_text (stmt, col);
    *len = text ? (size_t) sqlite3_column_bytes (stmt, col) : 0;
    return text ? text : "";
}

int
vw_command_rows_unfinished (vw_db_t *db, int64_t after, int64_t limit, vw_command_row_fn *fn,
                            void *arg)
{
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_UNFINISHED);
    if (!stmt)
        return -1;
    sqlite3_bind_int64 (stmt, 1, after);
    sqlite3_bind_int64 (stmt, 2, limit);
    int n = 0, rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        vw_command_row_t row = {
            .state = (const char *) sqlite3_column_text (stmt, 4),
            .priority = sqlite3_column_int (stmt, 5),
            .seq = sqlite3_column_int64 (stmt, 6),
            .attempts = sqlite3_column_int64 (stmt, 7),
            .max_retries = sqlite3_column_int64 (stmt, 8),
            .timeout_ms = sqlite3_column_int64 (stmt, 9),
            .expires_at = sqlite3_column_int64 (stmt, 10),
            .next_attempt_at =
                sqlite3_column_type (stmt, 11) == SQLITE_NULL ? 0 : sqlite3_column_int64 (stmt, 11),
            .failures = sqlite3_column_int64 (stmt, 12),
        };
        row.command_id = s_column_text (stmt, 0, &row.command_id_len);
        row.agent_id = s_column_text (stmt, 1, &row.agent_id_len);
        row.type = s_column_text (stmt, 2, &row.type_len);
        row.payload_json = s_column_text (stmt, 3, &row.payload_len);
        n++;
        if (!fn (arg, &row)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE ? n : -1;
}

json_t *
vw_command_rows_targets (vw_db_t *db, const char *labels_json)
{
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_TARGETS);
    if (!stmt)
        return NULL;
    vw_db_bind_text (stmt, 1, labels_json ? labels_json : "{}");
    json_t *ids = json_array ();
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
        json_array_append_new (ids, json_string ((const char *) sqlite3_column_text (stmt, 0)));
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE) {
        json_decref (ids);
        return NULL;
    }
    return ids;
}

char *
vw_command_rows_state (vw_db_t *db, const char *command_id)
{
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_STATE);
    if (!stmt)
        return NULL;
    vw_db_bind_text (stmt, 1, command_id);
    char *state = NULL;
    if (sqlite3_step (stmt) == SQLITE_ROW)
        state = strdup ((const char *) sqlite3_column_text (stmt, 0));
    sqlite3_reset (stmt);
    return state;
}

static const char *S_SQL_AGENT_COUNTS =
    "SELECT status, count(*) FROM agents WHERE revoked_at IS NULL GROUP BY status";
static const char *S_SQL_COMMAND_COUNTS = "SELECT state, count(*) FROM commands GROUP BY state";

static json_t *
s_counts (vw_db_t *db, const char *sql, const char *const *keys)
{
    json_t *out = json_object ();
    for (const char *const *k = keys; *k; k++)
        json_object_set_new (out, *k, json_integer (0));
    sqlite3_stmt *stmt = vw_db_stmt (db, sql);
    while (stmt && sqlite3_step (stmt) == SQLITE_ROW)
        json_object_set_new (out, (const char *) sqlite3_column_text (stmt, 0),
                             json_integer (sqlite3_column_int64 (stmt, 1)));
    if (stmt)
        sqlite3_reset (stmt);
    return out;
}

json_t *
vw_command_rows_counts (vw_db_t *db)
{
    static const char *const statuses[] = {"online", "degraded", "maintenance", "offline", NULL};
    static const char *const states[] = {"pending", "executing", "completed",
                                         "failed",  "cancelled", NULL};
    return json_pack ("{s:o, s:o}", "agents", s_counts (db, S_SQL_AGENT_COUNTS, statuses),
                      "commands", s_counts (db, S_SQL_COMMAND_COUNTS, states));
}
