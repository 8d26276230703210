/*  vw_admin - the admin socket actor (SPEC §7).

    A ZeroMQ ROUTER socket for ops scripts and viworksctl: one JSON frame
    {"op":…,"args":{…}} in, one frame {"ok":true,"data":…} or
    {"ok":false,"error":{"code","message"}} out. REQ clients (which add an
    empty delimiter frame) and DEALER clients (which do not) both work: the
    reply mirrors the request's envelope.

    Ops that need another actor are answered asynchronously: the request's
    envelope waits in a pending table until the reply or its deadline.

    With admin.curve_cert the socket is a CURVE server and takes only the
    clients whose public certificates are in admin.curve_clients (vw_zap,
    started by viworks-backend). Without it the socket binds to loopback or
    ipc:// only: SPEC §7 requires CURVE on any other address, and such an
    endpoint is refused at start-up rather than exposed.
*/
#include "vw_actors.h"
#include "vw_broker.h"
#include "vw_lifecycle.h"
#include "vw_log.h"
#include "vw_api.h"
#include "vw_clock.h"
#include "vw_curve.h"
#include "vw_zap.h"
#include "vw_jwt.h"
#include "vw_pending.h"
#include "vw_probe.h"
#include "vw_text.h"
#include "vw_wire.h"

#include <jansson.h>
#include <sodium.h>

#define S_MAX_REQUEST (1024 * 1024)

typedef struct {
    const vw_config_t *config;
    vw_actor_t *actor;
    zsock_t *router;
    vw_probe_t *probe;
    vw_pending_t *pending;
    int64_t started_ms;
} self_t;

//  A request waiting for another actor: its envelope, minus the payload.
typedef struct {
    self_t *self;
    zmsg_t *envelope;
    char source[64];  //  client address, for the audit log
    char action[32];  //  audit action, or ""
    char target[160];
    char token[VW_TOKEN_TEXT_LEN + 1];  //  agents.create: shown once
    int64_t ttl_s;                      //  tokens.issue
} s_waiting_t;

//  Sends `body` (consumed) as the reply to the request whose routing frames
//  are in envelope (consumed).
static void
s_send_reply (self_t *self, zmsg_t **envelope_p, json_t *body)
{
    char *text = json_dumps (body, JSON_COMPACT);
    json_decref (body);
    zmsg_t *reply = *envelope_p;
    *envelope_p = NULL;
    zmsg_addstr (reply, text ? text : "{\"ok\":false}");
    free (text);
    //  The installed CZMQ keeps a message whose send failed (client gone).
    if (zmsg_send (&reply, self->router))
        zmsg_destroy (&reply);
}

static json_t *
s_error (const char *code, const char *message)
{
    char safe[400];
    snprintf (safe, sizeof safe, "%s", message);
    vw_text_sanitize (safe);
    return json_pack ("{s:b, s:{s:s, s:s}}", "ok", 0, "error", "code", code, "message", safe);
}

static json_t *
s_ok (json_t *data)
{
    return json_pack ("{s:b, s:o}", "ok", 1, "data", data ? data : json_null ());
}

static void
s_audit (self_t *self, const char *source, const char *action, const char *target,
         const char *outcome, const char *detail)
{
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_audit);
    msg->audit.ts = vw_clock_wall_ms ();
    vw_msg_set_str (&msg->audit.actor, "admin-socket");
    vw_msg_set_str (&msg->audit.source, source && *source ? source : NULL);
    vw_msg_set_str (&msg->audit.action, action);
    vw_msg_set_str (&msg->audit.target, target);
    vw_msg_set_str (&msg->audit.outcome, outcome);
    vw_msg_set_str (&msg->audit.detail, detail);
    if (vw_actor_send (self->actor, "store", &msg)) {
        vw_error ("admin", "audit row for %s lost: the store is unreachable", action);
        vw_msg_destroy (&msg);
    }
}

//  Another actor's `reply` (or its absence) as the op's answer; audited
//  when the op changes state.
static void
s_on_reply (void *state, vw_actor_t *actor, void *ctx, vw_msg_t *reply, const char *why)
{
    self_t *self = (self_t *) state;
    s_waiting_t *w = (s_waiting_t *) ctx;
    json_t *answer;
    if (reply && reply->id == VW_MSG_ID_broker_stats) {
        json_t *data =
            reply->broker_stats.json ? json_loads (reply->broker_stats.json, 0, NULL) : NULL;
        answer = s_ok (json_pack ("{s:o}", "broker", data ? data : json_null ()));
    }
    else if (!reply || reply->id != VW_MSG_ID_reply) {
        char message[128];
        snprintf (message, sizeof message, "no answer in time (%s)", why ? why : "?");
        answer = s_error ("unavailable", message);
        if (*w->action)
            s_audit (self, w->source, w->action, w->target, "failure", why);
    }
    else {
        const vw_reply_msg_t *r = &reply->reply;
        if (*w->action)
            s_audit (self, w->source, w->action, w->target, r->status < 300 ? "success" : "failure",
                     r->code);
        if (r->code)
            answer = s_error (r->code, r->message ? r->message : r->code);
        else {
            json_t *data = r->json ? json_loads (r->json, JSON_DECODE_ANY, NULL) : NULL;
            if (*w->token && streq (w->action, "agent.rotate_token")) {
                json_t *more = json_pack ("{s:s, s:s}", "agent_id", w->target, "token", w->token);
                if (json_is_object (data))
                    json_object_update (more, data);
                json_decref (data);
                data = more;
            }
            else if (*w->token)
                data = json_pack ("{s:s, s:s, s:o}", "agent_id", w->target, "token", w->token,
                                  "agent", data ? data : json_null ());
            answer = s_ok (data);
        }
    }
    sodium_memzero (w->token, sizeof w->token);
    if (w->envelope)
        s_send_reply (self, &w->envelope, answer);
    else
        json_decref (answer);
    free (w);
}

//  Sends msg to `to` on behalf of the client; the reply answers the op.
static void
s_forward_for (self_t *self, zmsg_t **envelope_p, const char *source, const char *to,
               vw_msg_t **msg_p, const char *action, const char *target, const char *token,
               int64_t timeout_ms)
{
    s_waiting_t *w = (s_waiting_t *) zmalloc (sizeof (s_waiting_t));
    w->self = self;
    w->envelope = *envelope_p;
    *envelope_p = NULL;
    snprintf (w->source, sizeof w->source, "%s", source ? source : "");
    snprintf (w->action, sizeof w->action, "%s", action ? action : "");
    snprintf (w->target, sizeof w->target, "%s", target ? target : "");
    snprintf (w->token, sizeof w->token, "%s", token ? token : "");
    if (vw_pending_request (self->pending, to, msg_p, timeout_ms, s_on_reply, w)) {
        vw_msg_destroy (msg_p);
        s_on_reply (self, self->actor, w, NULL, "not reachable");
    }
}

static void
s_forward (self_t *self, zmsg_t **envelope_p, const char *source, const char *to, vw_msg_t **msg_p,
           const char *action, const char *target, const char *token)
{
    s_forward_for (self, envelope_p, source, to, msg_p, action, target, token, 5000);
}

//  A backup copies the whole file: give it time (the store answers when
//  the copy is done).
#define S_BACKUP_TIMEOUT_MS (60 * 60 * 1000)

//  tokens.issue: the auth actor said whether (and with which generation
//  and role) a token may be minted for the subject; mint it.
static void
s_on_grant (void *state, vw_actor_t *actor, void *ctx, vw_msg_t *reply, const char *why)
{
    self_t *self = (self_t *) state;
    s_waiting_t *w = (s_waiting_t *) ctx;
    json_t *grant =
        reply && reply->id == VW_MSG_ID_reply && reply->reply.status == 200 && reply->reply.json
            ? json_loads (reply->reply.json, 0, NULL)
            : NULL;
    const char *role = json_string_value (json_object_get (grant, "role"));
    json_t *gen = json_object_get (grant, "gen");
    json_t *answer;
    char *token = NULL;
    if (role && json_is_integer (gen)) {
        int64_t now = vw_clock_wall_ms () / 1000;
        token = vw_jwt_sign_gen ((const uint8_t *) self->config->jwt_secret,
                                 strlen (self->config->jwt_secret), w->target, role, now,
                                 now + w->ttl_s, NULL, json_integer_value (gen));
        answer =
            token ? s_ok (json_pack ("{s:s, s:s, s:s, s:I}", "access_token", token, "token_type",
                                     "Bearer", "role", role, "expires_in", (json_int_t) w->ttl_s))
                  : s_error ("internal", "cannot sign the token");
    }
    else if (reply && reply->id == VW_MSG_ID_reply && reply->reply.code)
        answer = s_error (reply->reply.code,
                          reply->reply.message ? reply->reply.message : reply->reply.code);
    else
        answer = s_error ("unavailable", why ? why : "the auth actor did not answer");
    s_audit (self, w->source, "token.issue", w->target, token ? "success" : "failure",
             token
                 ? role
                 : json_string_value (json_object_get (json_object_get (answer, "error"), "code")));
    free (token);
    json_decref (grant);
    if (w->envelope)
        s_send_reply (self, &w->envelope, answer);
    else
        json_decref (answer);
    free (w);
}

static void
s_actors_done (void *arg, const vw_probe_result_t *result)
{
    s_waiting_t *w = (s_waiting_t *) arg;
    json_t *actors = json_object ();
    for (int i = 0; i < result->count; i++) {
        const vw_probe_entry_t *e = &result->actors[i];
        json_t *entry =
            json_pack ("{s:s, s:b}", "status", e->up ? "up" : "down", "healthy", e->healthy);
        if (e->up)
            json_object_set_new (entry, "latency_us", json_integer (e->latency_us));
        if (*e->detail)
            json_object_set_new (entry, "detail", json_string (e->detail));
        json_object_set_new (actors, e->name, entry);
    }
    s_send_reply (w->self, &w->envelope,
                  s_ok (json_pack ("{s:o, s:b}", "actors", actors, "all_up", result->all_up)));
    free (w);
}

static void
s_handle_request (self_t *self, zmsg_t **envelope_p, const char *source, const char *op,
                  json_t *args)
{
    json_t *no_args = NULL;
    if (!args)
        args = no_args = json_object ();
    vw_api_error_t err = {400, "bad_request", ""};
    vw_msg_t *msg = NULL;
    if (streq (op, "agents.list")) {
        if ((msg = vw_api_agent_list_json (args, &err)))
            s_forward (self, envelope_p, source, "store", &msg, NULL, NULL, NULL);
    }
    else if (streq (op, "agents.get") || streq (op, "agents.revoke") ||
             streq (op, "agents.disconnect")) {
        static const char *const allowed[] = {"agent_id", NULL};
        const char *id = vw_api_only (args, allowed, &err) ? vw_api_agent_id (args, &err) : NULL;
        if (id && streq (op, "agents.get")) {
            msg = vw_msg_new (VW_MSG_ID_agent_get);
            vw_msg_set_str (&msg->agent_get.agent_id, id);
            s_forward (self, envelope_p, source, "registry", &msg, NULL, NULL, NULL);
        }
        else if (id && streq (op, "agents.revoke")) {
            msg = vw_msg_new (VW_MSG_ID_agent_revoke);
            vw_msg_set_str (&msg->agent_revoke.agent_id, id);
            s_forward (self, envelope_p, source, "registry", &msg, "agent.revoke", id, NULL);
        }
        else if (id) {
            msg = vw_msg_new (VW_MSG_ID_agent_disconnect);
            vw_msg_set_str (&msg->agent_disconnect.agent_id, id);
            s_forward (self, envelope_p, source, "registry", &msg, "agent.disconnect", id, NULL);
        }
    }
    else if (streq (op, "agents.create")) {
        char token[VW_TOKEN_TEXT_LEN + 1];
        if ((msg = vw_api_agent_create (args, token, &err))) {
            char id[160];
            snprintf (id, sizeof id, "%s", msg->agent_create.agent_id);
            s_forward (self, envelope_p, source, "store", &msg, "agent.create", id, token);
        }
        sodium_memzero (token, sizeof token);
    }
    else if (streq (op, "agents.rotate_token")) {
        char token[VW_TOKEN_TEXT_LEN + 1];
        if ((msg = vw_api_agent_rotate (NULL, args, vw_clock_wall_ms (), token, &err))) {
            char id[160];
            snprintf (id, sizeof id, "%s", msg->agent_rotate.agent_id);
            s_forward (self, envelope_p, source, "registry", &msg, "agent.rotate_token", id, token);
        }
        sodium_memzero (token, sizeof token);
    }
    else if (streq (op, "commands.submit")) {
        if ((msg = vw_api_command_submit (args, self->config->commands, "admin-socket", &err))) {
            char target[160];
            snprintf (target, sizeof target, "%s",
                      msg->command_submit.agent_id ? msg->command_submit.agent_id
                                                   : msg->command_submit.labels);
            s_forward (self, envelope_p, source, "scheduler", &msg, "command.submit", target, NULL);
        }
    }
    else if (streq (op, "commands.list")) {
        if ((msg = vw_api_command_list_json (args, &err)))
            s_forward (self, envelope_p, source, "store", &msg, NULL, NULL, NULL);
    }
    else if (streq (op, "commands.get") || streq (op, "commands.cancel")) {
        static const char *const allowed[] = {"command_id", NULL};
        json_t *id = json_object_get (args, "command_id");
        if (vw_api_only (args, allowed, &err) && !json_is_string (id))
            snprintf (err.message, sizeof err.message,
                      "field 'command_id' is required and must be a string");
        else if (json_is_string (id) && streq (op, "commands.get")) {
            msg = vw_msg_new (VW_MSG_ID_command_get);
            vw_msg_set_str (&msg->command_get.command_id, json_string_value (id));
            s_forward (self, envelope_p, source, "store", &msg, NULL, NULL, NULL);
        }
        else if (json_is_string (id)) {
            msg = vw_msg_new (VW_MSG_ID_command_cancel);
            vw_msg_set_str (&msg->command_cancel.command_id, json_string_value (id));
            vw_msg_set_str (&msg->command_cancel.actor, "admin-socket");
            s_forward (self, envelope_p, source, "scheduler", &msg, "command.cancel",
                       json_string_value (id), NULL);
        }
    }
    //  telemetry.query (the arguments of GET /telemetry/{agent_id}, with
    //  agent_id) and telemetry.summary.
    else if (streq (op, "telemetry.query")) {
        if ((msg = vw_api_telemetry_query (args, false, NULL, vw_clock_wall_ms (),
                                           self->config->telemetry_max_points, &err)))
            s_forward (self, envelope_p, source, "store", &msg, NULL, NULL, NULL);
    }
    else if (streq (op, "telemetry.summary")) {
        static const char *const allowed[] = {"agent_id", NULL};
        const char *id = vw_api_only (args, allowed, &err) ? vw_api_agent_id (args, &err) : NULL;
        if (id) {
            msg = vw_msg_new (VW_MSG_ID_telemetry_summary);
            vw_msg_set_str (&msg->telemetry_summary.agent_id, id);
            msg->telemetry_summary.now = vw_clock_wall_ms ();
            s_forward (self, envelope_p, source, "store", &msg, NULL, NULL, NULL);
        }
    }
    else if (streq (op, "users.create")) {
        if ((msg = vw_api_user_create (args, &err))) {
            char user[160];
            snprintf (user, sizeof user, "%s", msg->user_create.username);
            s_forward (self, envelope_p, source, "auth", &msg, "user.create", user, NULL);
        }
    }
    //  users.list, users.get, users.update, users.delete (issue 8): the
    //  auth actor owns users; changes end the user's tokens at once.
    else if (streq (op, "users.list")) {
        if ((msg = vw_api_user_list_json (args, &err)))
            s_forward (self, envelope_p, source, "auth", &msg, NULL, NULL, NULL);
    }
    else if (streq (op, "users.get") || streq (op, "users.delete")) {
        static const char *const allowed[] = {"username", NULL};
        const char *name = vw_api_only (args, allowed, &err) ? vw_api_username (args, &err) : NULL;
        if (name && streq (op, "users.get") && (msg = vw_api_user_show (name, &err)))
            s_forward (self, envelope_p, source, "auth", &msg, NULL, NULL, NULL);
        else if (name && streq (op, "users.delete") && (msg = vw_api_user_delete (name, &err)))
            s_forward (self, envelope_p, source, "auth", &msg, "user.delete", name, NULL);
    }
    else if (streq (op, "users.update")) {
        const char *name = vw_api_username (args, &err);
        json_t *changes = name ? json_deep_copy (args) : NULL;
        json_object_del (changes, "username");
        if (name && (msg = vw_api_user_update (name, changes, &err)))
            s_forward (self, envelope_p, source, "auth", &msg, "user.update", name, NULL);
        json_decref (changes);
    }
    else if (streq (op, "tokens.issue")) {
        //  The subject must be a live, enabled user (docs/decisions.md): the
        //  token carries their generation and ends with their other tokens.
        static const char *const allowed[] = {"sub", "role", "ttl_s", NULL};
        json_t *sub = json_object_get (args, "sub");
        json_t *role = json_object_get (args, "role");
        json_t *ttl = json_object_get (args, "ttl_s");
        const char *r = json_string_value (role);
        int64_t ttl_s = json_is_integer (ttl) ? json_integer_value (ttl) : 3600;
        if (!vw_api_only (args, allowed, &err))
            ;
        else if (!json_is_string (sub) || !vw_wire_valid_id (json_string_value (sub)))
            snprintf (err.message, sizeof err.message,
                      "field 'sub' is required: the name of a user (" VW_ID_GRAMMAR ")");
        else if (role &&
                 (!r || (strcmp (r, "admin") && strcmp (r, "operator") && strcmp (r, "viewer"))))
            snprintf (err.message, sizeof err.message,
                      "field 'role' must be one of admin, operator, viewer (at most the user's; "
                      "default: the user's)");
        else if ((ttl && !json_is_integer (ttl)) || ttl_s < 60 || ttl_s > 366 * 86400)
            snprintf (err.message, sizeof err.message,
                      "field 'ttl_s' must be an integer from 60 to 31622400");
        else if (!self->config->jwt_secret)
            snprintf (err.message, sizeof err.message, "no JWT secret is configured");
        else {
            s_waiting_t *w = (s_waiting_t *) zmalloc (sizeof (s_waiting_t));
            w->self = self;
            w->envelope = *envelope_p;
            *envelope_p = NULL;
            snprintf (w->source, sizeof w->source, "%s", source ? source : "");
            snprintf (w->target, sizeof w->target, "%s", json_string_value (sub));
            w->ttl_s = ttl_s;
            msg = vw_msg_new (VW_MSG_ID_token_grant);
            vw_msg_set_str (&msg->token_grant.username, json_string_value (sub));
            vw_msg_set_str (&msg->token_grant.role, r);
            if (vw_pending_request (self->pending, "auth", &msg, 5000, s_on_grant, w)) {
                vw_msg_destroy (&msg);
                s_on_grant (self, self->actor, w, NULL, "the auth actor is not reachable");
            }
        }
    }
    else if (streq (op, "stats")) {
        msg = vw_msg_new (VW_MSG_ID_broker_stats);
        s_forward (self, envelope_p, source, "broker", &msg, NULL, NULL, NULL);
    }
    else if (streq (op, "ping")) {
        s_send_reply (
            self, envelope_p,
            s_ok (json_pack ("{s:b, s:s, s:I}", "pong", 1, "version", VW_VERSION, "uptime_ms",
                             (json_int_t) (zclock_mono () - self->started_ms))));
    }
    else if (streq (op, "actors.status")) {
        s_waiting_t *w = (s_waiting_t *) zmalloc (sizeof (s_waiting_t));
        w->self = self;
        w->envelope = *envelope_p;
        *envelope_p = NULL;
        if (!vw_probe_start (self->probe, (int) self->config->health_timeout_ms, s_actors_done,
                             w)) {
            s_send_reply (self, &w->envelope, s_error ("internal", "cannot start the probe"));
            free (w);
        }
    }
    else if (streq (op, "db.backup")) {
        static const char *const allowed[] = {"path", NULL};
        json_t *path = json_object_get (args, "path");
        if (vw_api_only (args, allowed, &err) && !json_is_string (path))
            snprintf (err.message, sizeof err.message,
                      "field 'path' is required and must be a string (an absolute path on the "
                      "backend's host)");
        else if (json_is_string (path)) {
            msg = vw_msg_new (VW_MSG_ID_db_backup);
            vw_msg_set_str (&msg->db_backup.path, json_string_value (path));
            s_forward_for (self, envelope_p, source, "store", &msg, "db.backup",
                           json_string_value (path), NULL, S_BACKUP_TIMEOUT_MS);
        }
    }
    else if (streq (op, "log.level")) {
        json_t *level = json_object_get (args, "level");
        if (level && !json_is_string (level))
            s_send_reply (self, envelope_p, s_error ("bad_request", "args.level must be a string"));
        else if (level && vw_log_level_parse (json_string_value (level)) < 0)
            s_send_reply (self, envelope_p,
                          s_error ("bad_request",
                                   "args.level must be one of trace, debug, info, warn, error"));
        else {
            if (level) {
                vw_log_set_level ((vw_log_level_t) vw_log_level_parse (json_string_value (level)));
                vw_info ("admin", "log level set to %s", json_string_value (level));
            }
            s_send_reply (
                self, envelope_p,
                s_ok (json_pack ("{s:s}", "level", vw_log_level_name (vw_log_get_level ()))));
        }
    }
    else {
        char message[160];
        snprintf (message, sizeof message, "op '%.64s' is not supported by this build", op);
        s_send_reply (self, envelope_p, s_error ("unknown_op", message));
    }
    //  A request refused by validation: nothing was sent anywhere.
    if (*envelope_p && *err.message)
        s_send_reply (self, envelope_p, s_error (err.code, err.message));
    json_decref (no_args);
}

static void
s_on_request (void *state, vw_actor_t *actor, zsock_t *router)
{
    self_t *self = (self_t *) state;
    for (int n = 0; n < 256 && (zsock_events (router) & ZMQ_POLLIN); n++) {
        zmsg_t *envelope = zmsg_recv (router);
        if (!envelope)
            return;
        //  [identity][optional empty delimiter][request]: the last frame is
        //  the request, everything before it is the envelope.
        zframe_t *payload = zmsg_last (envelope);
        if (zmsg_size (envelope) < 2 || zmsg_size (envelope) > 3) {
            zmsg_destroy (&envelope);
            continue;
        }
        zmsg_remove (envelope, payload);
        //  The client's address, for the audit log (tcp:// only).
        const char *peer = zframe_meta (payload, "Peer-Address");
        char source[64];
        snprintf (source, sizeof source, "%s", peer ? peer : "local");
        json_error_t jerr;
        json_t *request = json_loadb ((const char *) zframe_data (payload), zframe_size (payload),
                                      JSON_REJECT_DUPLICATES, &jerr);
        zframe_destroy (&payload);
        json_t *op = json_object_get (request, "op");
        json_t *args = json_object_get (request, "args");
        if (!json_is_object (request))
            s_send_reply (self, &envelope,
                          s_error ("bad_request", "the request must be a JSON object"));
        else if (!json_is_string (op))
            s_send_reply (self, &envelope,
                          s_error ("bad_request", "field 'op' is required and must be a string"));
        else if (args && !json_is_object (args))
            s_send_reply (self, &envelope,
                          s_error ("bad_request", "field 'args' must be an object"));
        else
            s_handle_request (self, &envelope, source, json_string_value (op), args);
        json_decref (request);
        zmsg_destroy (&envelope);
    }
}

static void *
s_create (vw_actor_t *actor, void *args)
{
    const vw_config_t *config = (const vw_config_t *) args;
    self_t *self = (self_t *) zmalloc (sizeof (self_t));
    self->config = config;
    self->actor = actor;
    self->started_ms = zclock_mono ();
    self->probe = vw_probe_new (actor);
    self->pending = vw_pending_new (actor, self);
    zcert_t *cert = NULL;
    if (config->admin_endpoint) {
        char err[512];
        if (config->admin_curve_cert &&
            !(cert = vw_curve_load_secret (config->admin_curve_cert, err, sizeof err))) {
            vw_actor_fail (actor, VW_EXIT_USAGE, "%s", err);
            goto fail;
        }
        if (!cert && !vw_endpoint_is_loopback (config->admin_endpoint)) {
            vw_actor_fail (actor, VW_EXIT_USAGE,
                           "admin endpoint %s is not loopback or ipc:// and CURVE is not "
                           "configured (--admin-curve-cert, --admin-curve-clients); refusing to "
                           "expose the admin socket",
                           config->admin_endpoint);
            goto fail;
        }
        self->router = zsock_new (ZMQ_ROUTER);
        zsock_set_maxmsgsize (self->router, S_MAX_REQUEST);
        zsock_set_linger (self->router, 0);
        zsock_set_sndtimeo (self->router, 0);
        if (cert)
            vw_curve_serve (self->router, cert, VW_ZAP_ADMIN);
        if (zsock_bind (self->router, "%s", config->admin_endpoint) == -1) {
            char reason[512];
            vw_actor_fail (actor, VW_EXIT_FAILURE, "%s",
                           vw_lifecycle_bind_reason (reason, sizeof reason, "the admin socket",
                                                     config->admin_endpoint, zmq_errno (),
                                                     "--admin-endpoint"));
            goto fail;
        }
        vw_actor_watch (actor, self->router, s_on_request);
        vw_info ("admin", "admin socket on %s%s", config->admin_endpoint,
                 cert ? " (CURVE: clients from --admin-curve-clients)" : "");
    }
    zcert_destroy (&cert);
    return self;
fail:
    zcert_destroy (&cert);
    zsock_destroy (&self->router);
    vw_pending_destroy (&self->pending);
    vw_probe_destroy (&self->probe);
    free (self);
    return NULL;
}

static void
s_destroy (void **state_p)
{
    self_t *self = (self_t *) *state_p;
    if (self) {
        //  Pending waiters are freed with the probe's pending table; their
        //  clients see a timeout, as with any server going away.
        vw_probe_destroy (&self->probe);
        vw_pending_destroy (&self->pending);
        zsock_destroy (&self->router);
        free (self);
    }
    *state_p = NULL;
}

static void
s_handle (void *state, vw_actor_t *actor, vw_msg_t **msg_p)
{
    self_t *self = (self_t *) state;
    if (vw_probe_handle (self->probe, *msg_p) || vw_pending_handle (self->pending, *msg_p))
        return;
    vw_warn ("admin", "unexpected '%s' from '%s' ignored", vw_msg_name ((*msg_p)->id),
             (*msg_p)->peer);
}

const vw_actor_class_t vw_admin_class = {
    .name = "admin",
    .create = s_create,
    .destroy = s_destroy,
    .handle = s_handle,
};
