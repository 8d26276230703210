/*  vw_store - the store actor: the only thread that opens the database for
    writing (DESIGN: store/ owns schema and statements, this actor owns the
    connection). Other actors send it requests and get replies; they never
    touch SQLite themselves.

    Writes use group commit: the first write of a loop pass opens a
    transaction, the flush hook commits it once per pass, and only then are
    the replies that promise durability (201, 204, ...) sent. A burst of
    requests thus costs one commit, and no caller hears "done" before its
    row is on disk. Reads are answered at once.

    Start-up fails with VW_EXIT_DATABASE when the database cannot be opened
    or migrated, and VW_EXIT_SCHEMA when it was written by a newer build.
    Its pong reports the database's health, which /health shows as
    "database".
*/
#include "vw_actors.h"
#include "vw_agents.h"
#include "vw_audit.h"
#include "vw_clock.h"
#include "vw_db.h"
#include "vw_lifecycle.h"
#include "vw_log.h"
#include "vw_users.h"

#include <sodium.h>

typedef struct {
    vw_db_t *db;
    vw_actor_t *actor;
    zlistx_t *deferred;  //  replies waiting for the commit (vw_msg_t *)
    uint64_t commits;
    uint64_t commit_failures;
} self_t;

//  A reply from a result; the result's body is consumed.
static vw_msg_t *
s_reply_of (vw_result_t *result)
{
    vw_msg_t *reply = vw_msg_new (VW_MSG_ID_reply);
    reply->reply.status = result->status;
    if (result->body) {
        reply->reply.json = json_dumps (result->body, JSON_COMPACT);
        json_decref (result->body);
        result->body = NULL;
    }
    if (result->code) {
        vw_msg_set_str (&reply->reply.code, result->code);
        vw_msg_set_str (&reply->reply.message, result->message);
    }
    return reply;
}

static void
s_answer (self_t *self, const vw_msg_t *request, vw_result_t *result)
{
    vw_msg_t *reply = s_reply_of (result);
    if (vw_actor_reply (self->actor, request, &reply))
        vw_msg_destroy (&reply);
}

//  Answers after the commit of this pass (or with 503 if it fails).
static void
s_answer_durable (self_t *self, const vw_msg_t *request, vw_result_t *result)
{
    vw_msg_t *reply = s_reply_of (result);
    reply->rid = request->rid;
    memcpy (reply->peer, request->peer, sizeof reply->peer);
    zlistx_add_end (self->deferred, reply);
}

static bool
s_begin (self_t *self, const vw_msg_t *request, vw_result_t *result)
{
    if (vw_db_begin (self->db) == 0)
        return true;
    vw_result_fail (result, 503, "database_busy", "cannot start a transaction: %s",
                    sqlite3_errmsg (vw_db_handle (self->db)));
    s_answer (self, request, result);
    return false;
}

static void *
s_create (vw_actor_t *actor, void *args)
{
    const vw_store_args_t *a = (const vw_store_args_t *) args;
    char *path = vw_db_path_from_url (a->database_url);
    if (!path) {
        vw_actor_fail (actor, VW_EXIT_DATABASE,
                       "DATABASE_URL '%s' is not a SQLite URL or path (sqlite:///path/to.db)",
                       a->database_url ? a->database_url : "");
        return NULL;
    }
    vw_db_status_t status;
    char err[512];
    vw_db_t *db = vw_db_open (path, a->full_sync, &status, err, sizeof err);
    if (!db) {
        vw_actor_fail (actor, status == VW_DB_ERR_TOO_NEW ? VW_EXIT_SCHEMA : VW_EXIT_DATABASE, "%s",
                       err);
        free (path);
        return NULL;
    }
    vw_info ("store", "database %s open (schema version %d, synchronous=%s)", path,
             vw_db_schema_version (db), a->full_sync ? "full" : "normal");
    free (path);
    self_t *self = (self_t *) zmalloc (sizeof (self_t));
    self->db = db;
    self->actor = actor;
    self->deferred = zlistx_new ();
    int reset = vw_agents_reset_sessions (db, vw_clock_wall_ms ());
    if (reset > 0)
        vw_info ("store", "%d agent session(s) from the previous run marked offline", reset);
    return self;
}

static void
s_destroy (void **state_p)
{
    self_t *self = (self_t *) *state_p;
    if (self) {
        vw_msg_t *reply;
        while ((reply = (vw_msg_t *) zlistx_detach (self->deferred, NULL)))
            vw_msg_destroy (&reply);
        zlistx_destroy (&self->deferred);
        vw_db_close (&self->db);
        free (self);
    }
    *state_p = NULL;
}

static void
s_on_agent_lookup (self_t *self, vw_msg_t *msg)
{
    vw_agent_credentials_t cred;
    vw_msg_t *record = vw_msg_new (VW_MSG_ID_agent_record);
    vw_msg_set_str (&record->agent_record.agent_id, msg->agent_lookup.agent_id);
    if (vw_agents_credentials (self->db, msg->agent_lookup.agent_id, &cred) == 0 && cred.found) {
        record->agent_record.found = true;
        if (cred.has_token_hash)
            vw_msg_set_bin (&record->agent_record.token_hash, cred.token_hash, 32);
        if (cred.has_public_key)
            vw_msg_set_bin (&record->agent_record.public_key, cred.public_key, 32);
        record->agent_record.revoked = cred.revoked;
        record->agent_record.maintenance = cred.maintenance;
    }
    if (vw_actor_reply (self->actor, msg, &record))
        vw_msg_destroy (&record);
}

static void
s_handle (void *state, vw_actor_t *actor, vw_msg_t **msg_p)
{
    self_t *self = (self_t *) state;
    vw_msg_t *msg = *msg_p;
    vw_result_t result = {0};
    int64_t now = vw_clock_wall_ms ();

    switch (msg->id) {
        case VW_MSG_ID_agent_lookup: s_on_agent_lookup (self, msg); break;
        case VW_MSG_ID_agent_get:
            vw_agents_get (self->db, msg->agent_get.agent_id, &result);
            s_answer (self, msg, &result);
            break;
        case VW_MSG_ID_agent_list:
            vw_agents_list (self->db, msg->agent_list.status, msg->agent_list.label_key,
                            msg->agent_list.label_value, msg->agent_list.limit,
                            msg->agent_list.cursor, &result);
            s_answer (self, msg, &result);
            break;
        case VW_MSG_ID_agent_create:
            if (!s_begin (self, msg, &result))
                break;
            vw_agents_create (self->db, msg->agent_create.agent_id, msg->agent_create.labels,
                              msg->agent_create.public_key.data, msg->agent_create.public_key.size,
                              msg->agent_create.token_hash.data, msg->agent_create.token_hash.size,
                              now, &result);
            s_answer_durable (self, msg, &result);
            break;
        case VW_MSG_ID_agent_revoke:
            if (!s_begin (self, msg, &result))
                break;
            vw_agents_revoke (self->db, msg->agent_revoke.agent_id, now, &result);
            s_answer_durable (self, msg, &result);
            break;
        case VW_MSG_ID_agent_maintenance:
            if (!s_begin (self, msg, &result))
                break;
            vw_agents_set_maintenance (self->db, msg->agent_maintenance.agent_id,
                                       msg->agent_maintenance.enabled, &result);
            s_answer_durable (self, msg, &result);
            break;
        case VW_MSG_ID_agent_state: {
            const vw_agent_state_msg_t *s = &msg->agent_state;
            if (!s->agent_id || !s->event || vw_db_begin (self->db) ||
                vw_agents_apply_state (self->db, s->agent_id, s->event, s->status, s->session_id,
                                       s->connected_at, s->last_seen, s->hostname, s->version,
                                       s->labels, s->capabilities))
                vw_warn ("store", "agent state for '%s' not saved: %s",
                         s->agent_id ? s->agent_id : "?", sqlite3_errmsg (vw_db_handle (self->db)));
            break;
        }
        case VW_MSG_ID_user_insert:
            if (!s_begin (self, msg, &result))
                break;
            vw_users_insert (self->db, msg->user_insert.username, msg->user_insert.password_hash,
                             msg->user_insert.role, now, &result);
            s_answer_durable (self, msg, &result);
            break;
        case VW_MSG_ID_user_count: {
            int64_t n = vw_users_count (self->db);
            if (n < 0)
                vw_result_fail (&result, 500, "database_error", "cannot count users");
            else
                vw_result_ok (&result, 200, json_pack ("{s:I}", "users", (json_int_t) n));
            s_answer (self, msg, &result);
            break;
        }
        case VW_MSG_ID_user_get: {
            vw_user_record_t user;
            vw_msg_t *record = vw_msg_new (VW_MSG_ID_user_record);
            vw_msg_set_str (&record->user_record.username, msg->user_get.username);
            if (vw_users_get (self->db, msg->user_get.username, &user) == 0 && user.found) {
                record->user_record.found = true;
                vw_msg_set_str (&record->user_record.password_hash, user.password_hash);
                vw_msg_set_str (&record->user_record.role, user.role);
                record->user_record.disabled = user.disabled;
            }
            sodium_memzero (&user, sizeof user);
            if (vw_actor_reply (self->actor, msg, &record))
                vw_msg_destroy (&record);
            break;
        }
        case VW_MSG_ID_audit: {
            const vw_audit_msg_t *a = &msg->audit;
            if (vw_db_begin (self->db) ||
                vw_audit_append (self->db, a->ts ? a->ts : now, a->actor, a->source, a->action,
                                 a->target, a->outcome, a->detail))
                vw_error ("store", "audit row for %s not saved: %s", a->action ? a->action : "?",
                          sqlite3_errmsg (vw_db_handle (self->db)));
            break;
        }
        case VW_MSG_ID_audit_list:
            vw_audit_list (self->db, msg->audit_list.action, msg->audit_list.actor,
                           msg->audit_list.from, msg->audit_list.to, msg->audit_list.limit,
                           msg->audit_list.cursor, &result);
            s_answer (self, msg, &result);
            break;
        default:
            vw_warn ("store", "unexpected '%s' from '%s' ignored", vw_msg_name (msg->id),
                     msg->peer);
            break;
    }
}

//  Once per loop pass: commit, then release the replies that waited for it.
static void
s_flush (void *state, vw_actor_t *actor)
{
    self_t *self = (self_t *) state;
    if (!vw_db_in_tx (self->db))
        return;
    bool ok = vw_db_commit (self->db) == 0;
    if (ok)
        self->commits++;
    else {
        self->commit_failures++;
        vw_error ("store", "commit failed: %s", sqlite3_errmsg (vw_db_handle (self->db)));
    }
    vw_msg_t *reply;
    while ((reply = (vw_msg_t *) zlistx_detach (self->deferred, NULL))) {
        if (!ok) {
            //  Nothing of this pass is stored: say so instead of "done".
            vw_msg_t *err = vw_msg_new (VW_MSG_ID_reply);
            err->rid = reply->rid;
            memcpy (err->peer, reply->peer, sizeof err->peer);
            err->reply.status = 503;
            vw_msg_set_str (&err->reply.code, "database_error");
            vw_msg_set_str (&err->reply.message, "the change could not be committed");
            vw_msg_destroy (&reply);
            reply = err;
        }
        char to[VW_ADDR_MAX];
        memcpy (to, reply->peer, sizeof to);
        if (vw_actor_send (actor, to, &reply))
            vw_msg_destroy (&reply);
    }
}

static void
s_health (void *state, bool *healthy, char *detail, size_t len)
{
    self_t *self = (self_t *) state;
    *healthy = vw_db_ping (self->db) == 0;
    snprintf (detail, len, "%s", *healthy ? "ok" : "error");
}

const vw_actor_class_t vw_store_class = {
    .name = "store",
    .create = s_create,
    .destroy = s_destroy,
    .handle = s_handle,
    .flush = s_flush,
    .health = s_health,
};
