/*  vw_admin - the admin socket actor (SPEC §7).

    A ZeroMQ ROUTER socket for ops scripts and viworksctl: one JSON frame
    {"op":…,"args":{…}} in, one frame {"ok":true,"data":…} or
    {"ok":false,"error":{"code","message"}} out. REQ clients (which add an
    empty delimiter frame) and DEALER clients (which do not) both work: the
    reply mirrors the request's envelope.

    Ops that need another actor are answered asynchronously: the request's
    envelope waits in a pending table until the reply or its deadline.

    The socket binds to loopback or ipc:// only: SPEC §7 requires CURVE on
    any other address, and until CURVE is configured such an endpoint is
    refused at start-up rather than exposed.
*/
#include "vw_actors.h"
#include "vw_broker.h"
#include "vw_lifecycle.h"
#include "vw_log.h"
#include "vw_probe.h"

#include <jansson.h>

#define S_MAX_REQUEST (1024 * 1024)

typedef struct {
    const vw_config_t *config;
    vw_actor_t *actor;
    zsock_t *router;
    vw_probe_t *probe;
    int64_t started_ms;
} self_t;

//  A request waiting for another actor: its envelope, minus the payload.
typedef struct {
    self_t *self;
    zmsg_t *envelope;
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
    zmsg_send (&reply, self->router);
}

static json_t *
s_error (const char *code, const char *message)
{
    return json_pack ("{s:b, s:{s:s, s:s}}", "ok", 0, "error", "code", code, "message", message);
}

static json_t *
s_ok (json_t *data)
{
    return json_pack ("{s:b, s:o}", "ok", 1, "data", data ? data : json_null ());
}

static void
s_actors_done (void *arg, const vw_probe_result_t *result)
{
    s_waiting_t *w = (s_waiting_t *) arg;
    json_t *actors = json_object ();
    for (int i = 0; i < VW_ACTOR_COUNT; i++) {
        const vw_probe_entry_t *e = &result->actors[i];
        json_t *entry = json_pack ("{s:s, s:b}", "status", e->up ? "up" : "down", "healthy",
                                   e->healthy);
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
s_handle_request (self_t *self, zmsg_t **envelope_p, const char *op, json_t *args)
{
    if (streq (op, "ping")) {
        s_send_reply (self, envelope_p,
                      s_ok (json_pack ("{s:b, s:s, s:I}", "pong", 1, "version", VW_VERSION,
                                       "uptime_ms", (json_int_t) (zclock_mono () - self->started_ms))));
    }
    else if (streq (op, "actors.status")) {
        s_waiting_t *w = (s_waiting_t *) zmalloc (sizeof (s_waiting_t));
        w->self = self;
        w->envelope = *envelope_p;
        *envelope_p = NULL;
        if (!vw_probe_start (self->probe, (int) self->config->health_timeout_ms, s_actors_done, w)) {
            s_send_reply (self, &w->envelope, s_error ("internal", "cannot start the probe"));
            free (w);
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
            s_send_reply (self, envelope_p,
                          s_ok (json_pack ("{s:s}", "level", vw_log_level_name (vw_log_get_level ()))));
        }
    }
    else {
        char message[160];
        snprintf (message, sizeof message, "op '%.64s' is not supported by this build", op);
        s_send_reply (self, envelope_p, s_error ("unknown_op", message));
    }
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
            s_send_reply (self, &envelope, s_error ("bad_request", "field 'args' must be an object"));
        else
            s_handle_request (self, &envelope, json_string_value (op), args);
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
    if (config->admin_endpoint) {
        if (!vw_endpoint_is_loopback (config->admin_endpoint)) {
            vw_actor_fail (actor, VW_EXIT_USAGE,
                           "admin endpoint %s is not loopback or ipc:// and CURVE is not "
                           "configured; refusing to expose the admin socket",
                           config->admin_endpoint);
            goto fail;
        }
        self->router = zsock_new (ZMQ_ROUTER);
        zsock_set_maxmsgsize (self->router, S_MAX_REQUEST);
        zsock_set_linger (self->router, 0);
        zsock_set_sndtimeo (self->router, 0);
        if (zsock_bind (self->router, "%s", config->admin_endpoint) == -1) {
            vw_actor_fail (actor, VW_EXIT_FAILURE, "cannot bind admin socket %s: %s",
                           config->admin_endpoint, zmq_strerror (zmq_errno ()));
            goto fail;
        }
        vw_actor_watch (actor, self->router, s_on_request);
        vw_info ("admin", "admin socket on %s", config->admin_endpoint);
    }
    return self;
fail:
    zsock_destroy (&self->router);
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
        zsock_destroy (&self->router);
        free (self);
    }
    *state_p = NULL;
}

static void
s_handle (void *state, vw_actor_t *actor, vw_msg_t **msg_p)
{
    self_t *self = (self_t *) state;
    if (vw_probe_handle (self->probe, *msg_p))
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
