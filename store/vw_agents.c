/*  vw_agents - see vw_agents.h. */
#include "vw_agents.h"

#include <sodium.h>
#include <string.h>

#define S_COLUMNS                                                                                  \
    "agent_id, status, hostname, version, labels, capabilities, connected_at, last_seen, "         \
    "session_id, created_at, maintenance, revoked_at, connect_count, disconnect_count, "           \
    "reported_labels"

static const char *S_SQL_RESET =
    "UPDATE agents SET status = 'offline', session_id = NULL, last_seen = "
    "coalesce(last_seen, ?1) WHERE status <> 'offline' OR session_id IS NOT NULL";
static const char *S_SQL_INSERT =
    "INSERT INTO agents (agent_id, token_hash, public_key, labels, created_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5)";
static const char *S_SQL_GET = "SELECT " S_COLUMNS " FROM agents WHERE agent_id = ?1";
static const char *S_SQL_LIST =
    "SELECT " S_COLUMNS " FROM agents WHERE agent_id > ?1 "
    "AND (?2 IS NULL OR status = ?2) "
    "AND (?3 IS NULL OR EXISTS (SELECT 1 FROM json_each (agents.labels) "
    "                           WHERE key = ?3 AND value = ?4)) "
    "ORDER BY agent_id LIMIT ?5";
static const char *S_SQL_CREDENTIALS =
    "SELECT token_hash, public_key, revoked_at, maintenance, labels, hostname, version, "
    "reported_labels, capabilities, created_at, connected_at, last_seen, connect_count, "
    "disconnect_count, previous_token_hash, previous_token_until FROM agents WHERE agent_id = ?1";
static const char *S_SQL_ROTATE =
    "UPDATE agents SET previous_token_hash = token_hash, previous_token_until = ?3, "
    "token_hash = ?2 WHERE agent_id = ?1 AND revoked_at IS NULL";
static const char *S_SQL_SETTLE = "UPDATE agents SET previous_token_hash = NULL, "
                                  "previous_token_until = NULL WHERE agent_id = ?1";
static const char *S_SQL_CONNECT =
    "UPDATE agents SET status = ?2, session_id = ?3, connected_at = ?4, last_seen = ?5, "
    "hostname = coalesce(?6, hostname), version = coalesce(?7, version), "
    "reported_labels = coalesce(?8, '{}'), "
    "capabilities = coalesce(?9, capabilities), connect_count = connect_count + 1 "
    "WHERE agent_id = ?1";
//  A session the registry takes back from an edge after losing it (or
//  after a restart of the core): not a new connection.
static const char *S_SQL_RESUME =
    "UPDATE agents SET status = ?2, session_id = ?3, last_seen = max(coalesce(last_seen, 0), ?4) "
    "WHERE agent_id = ?1";
static const char *S_SQL_DISCONNECT =
    "UPDATE agents SET status = 'offline', session_id = NULL, last_seen = ?2, "
    "disconnect_count = disconnect_count + 1 WHERE agent_id = ?1";
static const char *S_SQL_STATUS =
    "UPDATE agents SET status = ?2, last_seen = max(coalesce(last_seen, 0), ?3) "
    "WHERE agent_id = ?1";
static const char *S_SQL_SEEN =
    "UPDATE agents SET last_seen = max(coalesce(last_seen, 0), ?2) WHERE agent_id = ?1";
static const char *S_SQL_REVOKE =
    "UPDATE agents SET revoked_at = ?2, status = 'offline', session_id = NULL "
    "WHERE agent_id = ?1 AND revoked_at IS NULL";
static const char *S_SQL_MAINTENANCE =
    "UPDATE agents SET maintenance = ?2 WHERE agent_id = ?1 AND revoked_at IS NULL";

static json_t *
s_json_column (sqlite3_stmt *stmt, int col, json_t *fallback)
{
    const char *text = (const char *) sqlite3_column_text (stmt, col);
    json_t *value = text ? json_loads (text, 0, NULL) : NULL;
    if (value) {
        json_decref (fallback);
        return value;
    }
    return fallback;
}

//  The REST API's agent object from a row of S_COLUMNS.
static json_t *
s_agent_object (sqlite3_stmt *stmt)
{
    json_t *agent = json_object ();
    json_object_set_new (agent, "agent_id", vw_db_json_text (stmt, 0));
    json_object_set_new (agent, "status", vw_db_json_text (stmt, 1));
    json_object_set_new (agent, "hostname", vw_db_json_text (stmt, 2));
    json_object_set_new (agent, "version", vw_db_json_text (stmt, 3));
    json_object_set_new (agent, "labels", s_json_column (stmt, 4, json_object ()));
    json_object_set_new (agent, "reported_labels", s_json_column (stmt, 14, json_object ()));
    json_object_set_new (agent, "capabilities", s_json_column (stmt, 5, json_array ()));
    json_object_set_new (agent, "connected_at", vw_db_json_int (stmt, 6));
    json_object_set_new (agent, "last_seen", vw_db_json_int (stmt, 7));
    json_object_set_new (agent, "session_id", vw_db_json_text (stmt, 8));
    json_object_set_new (agent, "created_at", vw_db_json_int (stmt, 9));
    json_object_set_new (agent, "maintenance", json_boolean (sqlite3_column_int (stmt, 10)));
    json_object_set_new (agent, "revoked_at", vw_db_json_int (stmt, 11));
    json_object_set_new (agent, "connect_count", json_integer (sqlite3_column_int64 (stmt, 12)));
    json_object_set_new (agent, "disconnect_count", json_integer (sqlite3_column_int64 (stmt, 13)));
    return agent;
}

static void
s_db_error (vw_db_t *db, vw_result_t *result)
{
    vw_result_fail (result, 500, "database_error", "database error: %s",
                    sqlite3_errmsg (vw_db_handle (db)));
}

int
vw_agents_reset_sessions (vw_db_t *db, int64_t now_ms)
{
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_RESET);
    if (!stmt)
        return -1;
    sqlite3_bind_int64 (stmt, 1, now_ms);
    if (sqlite3_step (stmt) != SQLITE_DONE)
        return -1;
    return sqlite3_changes (vw_db_handle (db));
}

void
vw_agents_get (vw_db_t *db, const char *agent_id, vw_result_t *result)
{
    vw_db_get_object (db, S_SQL_GET, agent_id, s_agent_object, "agent", result);
}

void
vw_agents_create (vw_db_t *db, const char *agent_id, const char *labels_json,
                  const uint8_t *public_key, size_t public_key_len, const uint8_t *token_hash,
                  size_t token_hash_len, int64_t now_ms, vw_result_t *result)
{
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_INSERT);
    if (!stmt)
        return s_db_error (db, result);
    vw_db_bind_text (stmt, 1, agent_id);
    sqlite3_bind_blob (stmt, 2, token_hash, (int) token_hash_len, SQLITE_TRANSIENT);
    if (public_key && public_key_len)
        sqlite3_bind_blob (stmt, 3, public_key, (int) public_key_len, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null (stmt, 3);
    vw_db_bind_text (stmt, 4, labels_json ? labels_json : "{}");
    sqlite3_bind_int64 (stmt, 5, now_ms);
    int rc = sqlite3_step (stmt);
    int extended = sqlite3_extended_errcode (vw_db_handle (db));
    sqlite3_reset (stmt);
    if (rc == SQLITE_DONE) {
        vw_agents_get (db, agent_id, result);
        if (result->status == 200)
            result->status = 201;
    }
    else if (extended == SQLITE_CONSTRAINT_PRIMARYKEY)
        vw_result_fail (result, 409, "conflict", "agent '%.64s' already exists", agent_id);
    else if ((rc & 0xff) == SQLITE_CONSTRAINT)  //  rc may be an extended code
        //  The schema's CHECKs: labels not an object, key not 32 bytes.
        vw_result_fail (result, 400, "bad_request", "agent '%.64s' refused by the schema: %s",
                        agent_id, sqlite3_errmsg (vw_db_handle (db)));
    else
        s_db_error (db, result);
}

void
vw_agents_list (vw_db_t *db, const char *status, const char *label_key, const char *label_value,
                int64_t limit, const char *cursor, vw_result_t *result)
{
    //  The cursor is the last agent id of the previous page, base64url.
    char after[256] = "";
    if (cursor && *cursor) {
        size_t len = 0;
        if (sodium_base642bin ((unsigned char *) after, sizeof after - 1, cursor, strlen (cursor),
                               NULL, &len, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) ||
            len == 0) {
            vw_result_fail (result, 400, "bad_request", "field 'cursor' is not a valid cursor");
            return;
        }
        after[len] = 0;
    }
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_LIST);
    if (!stmt)
        return s_db_error (db, result);
    vw_db_bind_text (stmt, 1, after);
    vw_db_bind_text (stmt, 2, status);
    vw_db_bind_text (stmt, 3, label_key);
    vw_db_bind_text (stmt, 4, label_value ? label_value : "");
    sqlite3_bind_int64 (stmt, 5, limit + 1);  //  one more tells whether a next page exists
    json_t *agents = json_array ();
    int rc;
    char last[256] = "";
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        if ((int64_t) json_array_size (agents) == limit)
            break;
        json_array_append_new (agents, s_agent_object (stmt));
        snprintf (last, sizeof last, "%s", (const char *) sqlite3_column_text (stmt, 0));
    }
    bool more = rc == SQLITE_ROW;
    sqlite3_reset (stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        json_decref (agents);
        return s_db_error (db, result);
    }
    json_t *next = json_null ();
    if (more) {
        char encoded[sizeof last * 4 / 3 + 8];
        sodium_bin2base64 (encoded, sizeof encoded, (const unsigned char *) last, strlen (last),
                           sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        next = json_string (encoded);
    }
    vw_result_ok (result, 200, json_pack ("{s:o, s:o}", "agents", agents, "next_cursor", next));
}

int
vw_agents_credentials (vw_db_t *db, const char *agent_id, vw_agent_credentials_t *out)
{
    memset (out, 0, sizeof *out);
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_CREDENTIALS);
    if (!stmt)
        return -1;
    vw_db_bind_text (stmt, 1, agent_id);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        out->found = true;
        if (sqlite3_column_bytes (stmt, 0) == 32) {
            memcpy (out->token_hash, sqlite3_column_blob (stmt, 0), 32);
            out->has_token_hash = true;
        }
        if (sqlite3_column_bytes (stmt, 1) == 32) {
            memcpy (out->public_key, sqlite3_column_blob (stmt, 1), 32);
            out->has_public_key = true;
        }
        out->revoked = sqlite3_column_type (stmt, 2) != SQLITE_NULL;
        out->maintenance = sqlite3_column_int (stmt, 3) != 0;
        char **texts[] = {&out->labels, &out->hostname, &out->version, &out->reported_labels,
                          &out->capabilities};
        for (int i = 0; i < 5; i++) {
            const char *text = (const char *) sqlite3_column_text (stmt, 4 + i);
            *texts[i] = text ? strdup (text) : NULL;
        }
        int64_t *ints[] = {&out->created_at, &out->connected_at, &out->last_seen,
                           &out->connect_count, &out->disconnect_count};
        for (int i = 0; i < 5; i++)
            *ints[i] = sqlite3_column_int64 (stmt, 9 + i);
        if (sqlite3_column_bytes (stmt, 14) == 32) {
            memcpy (out->previous_token_hash, sqlite3_column_blob (stmt, 14), 32);
            out->has_previous = true;
            out->previous_until = sqlite3_column_int64 (stmt, 15);
        }
    }
    sqlite3_reset (stmt);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

void
vw_agents_credentials_clear (vw_agent_credentials_t *cred)
{
    free (cred->labels);
    free (cred->hostname);
    free (cred->version);
    free (cred->reported_labels);
    free (cred->capabilities);
    memset (cred, 0, sizeof *cred);
}

int
vw_agents_apply_state (vw_db_t *db, const char *agent_id, const char *event, const char *status,
                       const char *session_id, int64_t connected_at, int64_t last_seen,
                       const char *hostname, const char *version, const char *reported_labels_json,
                       const char *capabilities_json)
{
    sqlite3_stmt *stmt;
    if (strcmp (event, "connect") == 0) {
        stmt = vw_db_stmt (db, S_SQL_CONNECT);
        if (!stmt)
            return -1;
        vw_db_bind_text (stmt, 2, status);
        vw_db_bind_text (stmt, 3, session_id);
        sqlite3_bind_int64 (stmt, 4, connected_at);
        sqlite3_bind_int64 (stmt, 5, last_seen);
        vw_db_bind_text (stmt, 6, hostname);
        vw_db_bind_text (stmt, 7, version);
        vw_db_bind_text (stmt, 8, reported_labels_json);
        vw_db_bind_text (stmt, 9, capabilities_json);
    }
    else if (strcmp (event, "resume") == 0) {
        stmt = vw_db_stmt (db, S_SQL_RESUME);
        if (!stmt)
            return -1;
        vw_db_bind_text (stmt, 2, status);
        vw_db_bind_text (stmt, 3, session_id);
        sqlite3_bind_int64 (stmt, 4, last_seen);
    }
    else if (strcmp (event, "disconnect") == 0) {
        stmt = vw_db_stmt (db, S_SQL_DISCONNECT);
        if (!stmt)
            return -1;
        sqlite3_bind_int64 (stmt, 2, last_seen);
    }
    else {
        stmt = vw_db_stmt (db, S_SQL_STATUS);
        if (!stmt)
            return -1;
        vw_db_bind_text (stmt, 2, status);
        sqlite3_bind_int64 (stmt, 3, last_seen);
    }
    vw_db_bind_text (stmt, 1, agent_id);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE ? 0 : -1;
}

int
vw_agents_seen (vw_db_t *db, const char *seen_json)
{
    json_t *seen = seen_json ? json_loads (seen_json, 0, NULL) : NULL;
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_SEEN);
    if (!json_is_array (seen) || !stmt) {
        json_decref (seen);
        return -1;
    }
    int rc = 0;
    size_t i;
    json_t *pair;
    json_array_foreach (seen, i, pair)
    {
        const char *id = json_string_value (json_array_get (pair, 0));
        json_t *at = json_array_get (pair, 1);
        if (!id || !json_is_integer (at))
            continue;  //  not ours to write: the registry sends well-formed pairs
        vw_db_bind_text (stmt, 1, id);
        sqlite3_bind_int64 (stmt, 2, json_integer_value (at));
        if (sqlite3_step (stmt) != SQLITE_DONE)
            rc = -1;
        sqlite3_reset (stmt);
        if (rc)
            break;
    }
    json_decref (seen);
    return rc;
}

void
vw_agents_revoke (vw_db_t *db, const char *agent_id, int64_t now_ms, vw_result_t *result)
{
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_REVOKE);
    if (!stmt)
        return s_db_error (db, result);
    vw_db_bind_text (stmt, 1, agent_id);
    sqlite3_bind_int64 (stmt, 2, now_ms);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE)
        s_db_error (db, result);
    else if (sqlite3_changes (vw_db_handle (db)) == 0)
        vw_result_fail (result, 404, "not_found", "no agent '%.64s' (or already revoked)",
                        agent_id);
    else
        vw_result_ok (result, 204, NULL);
}

void
vw_agents_rotate (vw_db_t *db, const char *agent_id, const uint8_t *token_hash, size_t len,
                  int64_t previous_until, vw_result_t *result)
{
    if (len != 32) {
        vw_result_fail (result, 400, "bad_request", "a token hash is 32 bytes");
        return;
    }
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_ROTATE);
    if (!stmt)
        return s_db_error (db, result);
    vw_db_bind_text (stmt, 1, agent_id);
    sqlite3_bind_blob (stmt, 2, token_hash, 32, SQLITE_TRANSIENT);
    sqlite3_bind_int64 (stmt, 3, previous_until);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE)
        s_db_error (db, result);
    else if (sqlite3_changes (vw_db_handle (db)) == 0)
        vw_result_fail (result, 404, "not_found", "no agent '%.64s' (or it is revoked)", agent_id);
    else
        vw_result_ok (result, 200,
                      json_pack ("{s:I}", "previous_valid_until", (json_int_t) previous_until));
}

int
vw_agents_token_settled (vw_db_t *db, const char *agent_id)
{
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_SETTLE);
    if (!stmt)
        return -1;
    vw_db_bind_text (stmt, 1, agent_id);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE ? 0 : -1;
}

void
vw_agents_set_maintenance (vw_db_t *db, const char *agent_id, bool enabled, vw_result_t *result)
{
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_MAINTENANCE);
    if (!stmt)
        return s_db_error (db, result);
    vw_db_bind_text (stmt, 1, agent_id);
    sqlite3_bind_int (stmt, 2, enabled ? 1 : 0);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE)
        s_db_error (db, result);
    else if (sqlite3_changes (vw_db_handle (db)) == 0)
        vw_result_fail (result, 404, "not_found", "no agent '%.64s'", agent_id);
    else
        vw_agents_get (db, agent_id, result);
}
