/*  vw_api - see vw_api.h. */
#include "vw_api.h"
#include "vw_commands.h"
#include "vw_wire.h"

#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static void s_fail (vw_api_error_t *err, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
s_fail (vw_api_error_t *err, const char *fmt, ...)
{
    err->status = 400;
    err->code = "bad_request";
    va_list args;
    va_start (args, fmt);
    vsnprintf (err->message, sizeof err->message, fmt, args);
    va_end (args);
}

bool
vw_api_only (json_t *args, const char *const *allowed, vw_api_error_t *err)
{
    const char *key;
    json_t *value;
    json_object_foreach (args, key, value)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp (key, *a) == 0;
        if (!ok) {
            s_fail (err, "unknown field '%.64s'", key);
            return false;
        }
    }
    return true;
}

//  An optional string field: NULL when absent; false (err set) if mistyped.
static bool
s_opt_string (json_t *args, const char *key, size_t max, const char **out, vw_api_error_t *err)
{
    json_t *value = json_object_get (args, key);
    *out = NULL;
    if (!value || json_is_null (value))
        return true;
    if (!json_is_string (value) || json_string_length (value) > max) {
        s_fail (err, "field '%s' must be a string of at most %zu characters", key, max);
        return false;
    }
    *out = json_string_value (value);
    return true;
}

//  An optional integer in [lo, hi]. From a JSON object (a REST body, the
//  admin socket's args) only a JSON integer will do (SPEC §6: "30000" is
//  refused); from the REST query string, where every value is a string, a
//  decimal string.
static bool
s_opt_int (json_t *args, const char *key, bool query, int64_t lo, int64_t hi, int64_t def,
           int64_t *out, vw_api_error_t *err)
{
    json_t *value = json_object_get (args, key);
    *out = def;
    if (!value || json_is_null (value))
        return true;
    long long v = 0;
    bool ok = false;
    if (json_is_integer (value)) {
        v = json_integer_value (value);
        ok = true;
    }
    else if (query && json_is_string (value) && json_string_length (value)) {
        char *end = NULL;
        errno = 0;
        v = strtoll (json_string_value (value), &end, 10);
        ok = !*end && !errno;
    }
    if (!ok || v < lo || v > hi) {
        s_fail (err, "field '%s' must be %s from %lld to %lld", key,
                query ? "a decimal integer" : "a JSON integer (not a string)", (long long) lo,
                (long long) hi);
        return false;
    }
    *out = v;
    return true;
}

const char *
vw_api_agent_id (json_t *args, vw_api_error_t *err)
{
    json_t *id = json_object_get (args, "agent_id");
    if (!json_is_string (id) || !vw_wire_valid_id (json_string_value (id))) {
        s_fail (err, "field 'agent_id' is required and must match " VW_ID_GRAMMAR);
        return NULL;
    }
    return json_string_value (id);
}

vw_msg_t *
vw_api_agent_create (json_t *args, char token[VW_TOKEN_TEXT_LEN + 1], vw_api_error_t *err)
{
    static const char *const allowed[] = {"agent_id", "labels", "public_key", NULL};
    if (!vw_api_only (args, allowed, err))
        return NULL;
    const char *id = vw_api_agent_id (args, err);
    if (!id)
        return NULL;
    json_t *labels = json_object_get (args, "labels");
    if (labels && !json_is_null (labels)) {
        bool ok = json_is_object (labels) && json_object_size (labels) <= 64;
        const char *key;
        json_t *value;
        json_object_foreach (labels, key, value) ok = ok && json_is_string (value) &&
                                                      strlen (key) <= 64 && *key &&
                                                      json_string_length (value) <= 256;
        if (!ok) {
            s_fail (err, "field 'labels' must be an object of at most 64 string values");
            return NULL;
        }
    }
    json_t *key = json_object_get (args, "public_key");
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    size_t pklen = 0;
    if (key && !json_is_null (key)) {
        const char *b64 = json_is_string (key) ? json_string_value (key) : "";
        if (sodium_base642bin (pk, sizeof pk, b64, strlen (b64), NULL, &pklen, NULL,
                               sodium_base64_VARIANT_ORIGINAL) ||
            pklen != sizeof pk) {
            s_fail (err, "field 'public_key' must be a base64 Ed25519 public key (32 bytes)");
            return NULL;
        }
    }
    uint8_t hash[VW_TOKEN_HASH_BYTES];
    vw_token_new (token, hash);
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_agent_create);
    vw_msg_set_str (&msg->agent_create.agent_id, id);
    if (json_is_object (labels))
        msg->agent_create.labels = json_dumps (labels, JSON_COMPACT);
    if (pklen)
        vw_msg_set_bin (&msg->agent_create.public_key, pk, pklen);
    vw_msg_set_bin (&msg->agent_create.token_hash, hash, sizeof hash);
    return msg;
}

vw_msg_t *
vw_api_agent_rotate (const char *id, json_t *args, int64_t now_ms,
                     char token[VW_TOKEN_TEXT_LEN + 1], vw_api_error_t *err)
{
    static const char *const with_id[] = {"grace_s", NULL};
    static const char *const without[] = {"agent_id", "grace_s", NULL};
    int64_t grace_s;
    if (!vw_api_only (args, id ? with_id : without, err) ||
        (!id && !(id = vw_api_agent_id (args, err))) ||
        !s_opt_int (args, "grace_s", false, 0, 30 * 86400, 86400, &grace_s, err))
        return NULL;
    uint8_t hash[VW_TOKEN_HASH_BYTES];
    vw_token_new (token, hash);
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_agent_rotate);
    vw_msg_set_str (&msg->agent_rotate.agent_id, id);
    vw_msg_set_bin (&msg->agent_rotate.token_hash, hash, sizeof hash);
    msg->agent_rotate.previous_until = now_ms + grace_s * 1000;
    return msg;
}

static vw_msg_t *
s_agent_list (json_t *args, bool query, vw_api_error_t *err)
{
    static const char *const allowed[] = {"status", "label", "limit", "cursor", NULL};
    const char *status, *label, *cursor;
    int64_t limit;
    if (!vw_api_only (args, allowed, err) || !s_opt_string (args, "status", 16, &status, err) ||
        !s_opt_string (args, "label", 400, &label, err) ||
        !s_opt_string (args, "cursor", 400, &cursor, err) ||
        !s_opt_int (args, "limit", query, 1, 1000, 100, &limit, err))
        return NULL;
    if (status && strcmp (status, "online") && strcmp (status, "degraded") &&
        strcmp (status, "maintenance") && strcmp (status, "offline")) {
        s_fail (err, "field 'status' must be one of online, degraded, maintenance, offline");
        return NULL;
    }
    const char *colon = label ? strchr (label, ':') : NULL;
    if (label && (!colon || colon == label)) {
        s_fail (err, "field 'label' must look like key:value");
        return NULL;
    }
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_agent_list);
    vw_msg_set_str (&msg->agent_list.status, status);
    if (label) {
        char lkey[128];
        snprintf (lkey, sizeof lkey, "%.*s", (int) (colon - label), label);
        vw_msg_set_str (&msg->agent_list.label_key, lkey);
        vw_msg_set_str (&msg->agent_list.label_value, colon + 1);
    }
    msg->agent_list.limit = limit;
    vw_msg_set_str (&msg->agent_list.cursor, cursor);
    return msg;
}

vw_msg_t *
vw_api_agent_list (json_t *query, vw_api_error_t *err)
{
    return s_agent_list (query, true, err);
}

vw_msg_t *
vw_api_agent_list_json (json_t *args, vw_api_error_t *err)
{
    return s_agent_list (args, false, err);
}

vw_msg_t *
vw_api_user_create (json_t *args, vw_api_error_t *err)
{
    static const char *const allowed[] = {"username", "password", "role", NULL};
    if (!vw_api_only (args, allowed, err))
        return NULL;
    const char *names[] = {"username", "password", "role"};
    for (int i = 0; i < 3; i++)
        if (!json_is_string (json_object_get (args, names[i]))) {
            s_fail (err, "field '%s' is required and must be a string", names[i]);
            return NULL;
        }
    if (!vw_wire_valid_id (json_string_value (json_object_get (args, "username")))) {
        s_fail (err, "field 'username' must match " VW_ID_GRAMMAR);
        return NULL;
    }
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_user_create);
    //  Password and role rules live with the hashing, in the auth actor.
    vw_msg_set_str (&msg->user_create.username,
                    json_string_value (json_object_get (args, "username")));
    vw_msg_set_str (&msg->user_create.password,
                    json_string_value (json_object_get (args, "password")));
    vw_msg_set_str (&msg->user_create.role, json_string_value (json_object_get (args, "role")));
    return msg;
}

static bool
s_username_ok (const char *username, vw_api_error_t *err)
{
    if (username && vw_wire_valid_id (username))
        return true;
    s_fail (err, "the username must match " VW_ID_GRAMMAR);
    return false;
}

const char *
vw_api_username (json_t *args, vw_api_error_t *err)
{
    json_t *name = json_object_get (args, "username");
    if (!json_is_string (name) || !vw_wire_valid_id (json_string_value (name))) {
        s_fail (err, "field 'username' is required and must match " VW_ID_GRAMMAR);
        return NULL;
    }
    return json_string_value (name);
}

static vw_msg_t *
s_user_list (json_t *args, bool query, vw_api_error_t *err)
{
    static const char *const allowed[] = {"limit", "cursor", NULL};
    const char *cursor;
    int64_t limit;
    if (!vw_api_only (args, allowed, err) || !s_opt_string (args, "cursor", 200, &cursor, err) ||
        !s_opt_int (args, "limit", query, 1, 1000, 100, &limit, err))
        return NULL;
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_user_list);
    msg->user_list.limit = limit;
    vw_msg_set_str (&msg->user_list.cursor, cursor);
    return msg;
}

vw_msg_t *
vw_api_user_list (json_t *query, vw_api_error_t *err)
{
    return s_user_list (query, true, err);
}

vw_msg_t *
vw_api_user_list_json (json_t *args, vw_api_error_t *err)
{
    return s_user_list (args, false, err);
}

vw_msg_t *
vw_api_user_show (const char *username, vw_api_error_t *err)
{
    if (!s_username_ok (username, err))
        return NULL;
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_user_show);
    vw_msg_set_str (&msg->user_show.username, username);
    return msg;
}

vw_msg_t *
vw_api_user_update (const char *username, json_t *args, vw_api_error_t *err)
{
    static const char *const allowed[] = {"role", "password", "disabled", NULL};
    if (!s_username_ok (username, err) || !vw_api_only (args, allowed, err))
        return NULL;
    json_t *role = json_object_get (args, "role");
    json_t *password = json_object_get (args, "password");
    json_t *disabled = json_object_get (args, "disabled");
    const char *r = json_string_value (role);
    size_t plen = json_is_string (password) ? json_string_length (password) : 0;
    if (!role && !password && !disabled)
        s_fail (err, "give at least one of 'role', 'password' and 'disabled'");
    else if (role &&
             (!r || (strcmp (r, "admin") && strcmp (r, "operator") && strcmp (r, "viewer"))))
        s_fail (err, "field 'role' must be one of admin, operator, viewer");
    else if (password && (plen < 8 || plen > 1024))
        s_fail (err, "field 'password' must be a string of 8 to 1024 characters");
    else if (disabled && !json_is_boolean (disabled))
        s_fail (err, "field 'disabled' must be a boolean");
    else {
        vw_msg_t *msg = vw_msg_new (VW_MSG_ID_user_update);
        vw_msg_set_str (&msg->user_update.username, username);
        vw_msg_set_str (&msg->user_update.role, r);
        vw_msg_set_str (&msg->user_update.password, json_string_value (password));
        msg->user_update.set_disabled = disabled != NULL;
        msg->user_update.disabled = json_is_true (disabled);
        return msg;
    }
    return NULL;
}

vw_msg_t *
vw_api_user_delete (const char *username, vw_api_error_t *err)
{
    if (!s_username_ok (username, err))
        return NULL;
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_user_delete);
    vw_msg_set_str (&msg->user_delete.username, username);
    return msg;
}

vw_msg_t *
vw_api_audit_list (json_t *args, vw_api_error_t *err)
{
    static const char *const allowed[] = {"action", "actor", "from", "to", "limit", "cursor", NULL};
    const char *action, *actor, *cursor;
    int64_t limit, from, to;
    if (!vw_api_only (args, allowed, err) || !s_opt_string (args, "action", 64, &action, err) ||
        !s_opt_string (args, "actor", 128, &actor, err) ||
        !s_opt_string (args, "cursor", 32, &cursor, err) ||
        !s_opt_int (args, "limit", true, 1, 1000, 100, &limit, err) ||
        !s_opt_int (args, "from", true, 0, INT64_MAX, 0, &from, err) ||
        !s_opt_int (args, "to", true, 0, INT64_MAX, 0, &to, err))
        return NULL;
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_audit_list);
    vw_msg_set_str (&msg->audit_list.action, action);
    vw_msg_set_str (&msg->audit_list.actor, actor);
    msg->audit_list.from = from;
    msg->audit_list.to = to;
    msg->audit_list.limit = limit;
    vw_msg_set_str (&msg->audit_list.cursor, cursor);
    return msg;
}

vw_msg_t *
vw_api_command_submit (json_t *args, const struct vw_commands_t *commands, const char *created_by,
                       vw_api_error_t *err)
{
    static const char *const allowed[] = {
        "agent_id",   "target",      "type",          "payload",         "priority",
        "timeout_ms", "max_retries", "expires_in_ms", "idempotency_key", NULL};
    if (!vw_api_only (args, allowed, err))
        return NULL;
    json_t *target = json_object_get (args, "target");
    json_t *labels = json_object_get (target, "labels");
    bool has_agent = json_object_get (args, "agent_id") != NULL;
    if (has_agent == (target != NULL)) {
        s_fail (err, "give exactly one of 'agent_id' and 'target'");
        return NULL;
    }
    const char *agent_id = NULL;
    if (has_agent && !(agent_id = vw_api_agent_id (args, err)))
        return NULL;
    if (target) {
        bool ok = json_is_object (target) && json_object_size (target) == 1 &&
                  json_is_object (labels) && json_object_size (labels) > 0 &&
                  json_object_size (labels) <= 64;
        const char *key;
        json_t *value;
        json_object_foreach (labels, key, value) ok = ok && json_is_string (value);
        if (!ok) {
            s_fail (err, "field 'target' must be {\"labels\": {key: string value, …}} with 1-64 "
                         "labels");
            return NULL;
        }
    }
    json_t *type = json_object_get (args, "type");
    json_t *payload = json_object_get (args, "payload");
    if (!json_is_string (type)) {
        s_fail (err, "field 'type' is required and must be a string");
        return NULL;
    }
    if (vw_commands_validate (commands, json_string_value (type), payload, err))
        return NULL;
    const char *priority, *key;
    int64_t timeout_ms, max_retries, expires_in_ms;
    if (!s_opt_string (args, "priority", 16, &priority, err) ||
        !s_opt_string (args, "idempotency_key", 128, &key, err) ||
        !s_opt_int (args, "timeout_ms", false, 100, 86400000, 30000, &timeout_ms, err) ||
        !s_opt_int (args, "max_retries", false, 0, 10, 3, &max_retries, err) ||
        !s_opt_int (args, "expires_in_ms", false, 1, 30LL * 86400000, 86400000, &expires_in_ms,
                    err))
        return NULL;
    int prio = 1;
    if (priority) {
        prio = !strcmp (priority, "high")     ? 0
               : !strcmp (priority, "normal") ? 1
               : !strcmp (priority, "low")    ? 2
                                              : -1;
        if (prio < 0) {
            s_fail (err, "field 'priority' must be one of high, normal, low");
            return NULL;
        }
    }
    if (key && (!*key || target)) {
        s_fail (err, target ? "field 'idempotency_key' is not supported with 'target'"
                            : "field 'idempotency_key' must not be empty");
        return NULL;
    }
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_command_submit);
    vw_command_submit_msg_t *c = &msg->command_submit;
    vw_msg_set_str (&c->agent_id, agent_id);
    if (labels)
        c->labels = json_dumps (labels, JSON_COMPACT);
    vw_msg_set_str (&c->type, json_string_value (type));
    c->payload = json_is_object (payload) ? json_dumps (payload, JSON_COMPACT) : strdup ("{}");
    c->priority = prio;
    c->timeout_ms = timeout_ms;
    c->max_retries = max_retries;
    c->expires_in_ms = expires_in_ms;
    vw_msg_set_str (&c->idempotency_key, key);
    vw_msg_set_str (&c->created_by, created_by);
    return msg;
}

static vw_msg_t *
s_command_list (json_t *args, bool query, vw_api_error_t *err)
{
    static const char *const allowed[] = {"agent_id", "state", "limit", "cursor", NULL};
    const char *agent, *state, *cursor;
    int64_t limit;
    if (!vw_api_only (args, allowed, err) || !s_opt_string (args, "agent_id", 128, &agent, err) ||
        !s_opt_string (args, "state", 16, &state, err) ||
        !s_opt_string (args, "cursor", 32, &cursor, err) ||
        !s_opt_int (args, "limit", query, 1, 1000, 100, &limit, err))
        return NULL;
    if (state && strcmp (state, "pending") && strcmp (state, "executing") &&
        strcmp (state, "completed") && strcmp (state, "failed") && strcmp (state, "cancelled")) {
        s_fail (err, "field 'state' must be one of pending, executing, completed, failed, "
                     "cancelled");
        return NULL;
    }
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_command_list);
    vw_msg_set_str (&msg->command_list.agent_id, agent);
    vw_msg_set_str (&msg->command_list.state, state);
    msg->command_list.limit = limit;
    vw_msg_set_str (&msg->command_list.cursor, cursor);
    return msg;
}

vw_msg_t *
vw_api_command_list (json_t *query, vw_api_error_t *err)
{
    return s_command_list (query, true, err);
}

vw_msg_t *
vw_api_command_list_json (json_t *args, vw_api_error_t *err)
{
    return s_command_list (args, false, err);
}

vw_msg_t *
vw_api_telemetry_query (json_t *args, bool query, const char *agent_id, int64_t now,
                        int64_t max_points, vw_api_error_t *err)
{
    static const char *const allowed[] = {"agent_id", "metric", "from", "to",
                                          "step_ms",  "agg",    NULL};
    const char *metric, *agg;
    int64_t from, to, step;
    if (!vw_api_only (args, allowed, err) || !s_opt_string (args, "metric", 64, &metric, err) ||
        !s_opt_string (args, "agg", 8, &agg, err) ||
        !s_opt_int (args, "to", query, 1, INT64_MAX / 2, now, &to, err) ||
        !s_opt_int (args, "from", query, 0, INT64_MAX / 2, to > 3600000 ? to - 3600000 : 0, &from,
                    err) ||
        !s_opt_int (args, "step_ms", query, 1, INT64_MAX / 2, 0, &step, err))
        return NULL;
    if (agent_id && json_object_get (args, "agent_id")) {
        s_fail (err, "unknown field 'agent_id' (the agent is the path's)");
        return NULL;
    }
    if (!agent_id && !(agent_id = vw_api_agent_id (args, err)))
        return NULL;
    if (metric && !vw_wire_valid_name (metric, 64)) {
        s_fail (err, "field 'metric' must match [A-Za-z0-9_.:-]{1,64}");
        return NULL;
    }
    if (from >= to) {
        s_fail (err, "field 'from' (%lld) must be before 'to' (%lld)", (long long) from,
                (long long) to);
        return NULL;
    }
    static const char *const aggs[] = {"avg", "min", "max", "sum", "count", "last", NULL};
    bool known = !agg;
    for (int i = 0; agg && aggs[i]; i++)
        known = known || strcmp (agg, aggs[i]) == 0;
    if (!known) {
        s_fail (err, "field 'agg' must be one of avg, min, max, sum, count, last");
        return NULL;
    }
    if (agg && !step) {
        s_fail (err, "field 'agg' needs 'step_ms' (raw points are not aggregated)");
        return NULL;
    }
    if (step && (to - from) / step >= max_points) {
        s_fail (err,
                "field 'step_ms': %lld buckets from 'from' to 'to' is more than the %lld an "
                "answer may hold; use a larger step_ms or a shorter range",
                (long long) ((to - from + step - 1) / step), (long long) max_points);
        return NULL;
    }
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_telemetry_query);
    vw_telemetry_query_msg_t *q = &msg->telemetry_query;
    vw_msg_set_str (&q->agent_id, agent_id);
    vw_msg_set_str (&q->metric, metric);
    q->from = from;
    q->to = to;
    q->step_ms = step;
    vw_msg_set_str (&q->agg, step ? (agg ? agg : "avg") : NULL);
    q->max_points = max_points;
    return msg;
}
