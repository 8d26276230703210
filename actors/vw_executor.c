/*  vw_executor - the executor actor: attempts on their way to agents
    (SPEC §5).

    It sends each attempt the scheduler dispatches to the agent's session
    (through the edge), records the agent's ack (delivered_at, best effort:
    written with the attempt's end through the scheduler when that comes
    within S_DELIVERED_WAIT_MS, else on its own), and reports how the
    attempt ended to the scheduler: completed, failed (the agent said so),
    lost (the session closed, or the edge holding it is gone: the broker
    says so) or unsent (the send found no session). It
    knows which session and which attempt number each command went out as,
    and takes an answer only from that session and for that attempt: a late
    result of an earlier attempt (its `attempt` echo differs) is ignored and
    logged, as is one for a command not in flight.

    The attempt's deadline is not kept here: the scheduler owns "in flight"
    (its slot and its timeout), so that a command never stays executing
    past its timeout whatever happens to this actor or an edge. When the
    deadline passes the scheduler sends command_abort, and this actor sends
    the agent its `cancel` frame and forgets the attempt.
*/
#include "vw_actors.h"
#include "vw_clock.h"
#include "vw_log.h"

#include <jansson.h>
#include <string.h>

typedef struct self_t self_t;

typedef struct {
    self_t *owner;
    char *command_id;
    char *agent_id;
    int64_t conn;
    char edge[VW_ADDR_MAX];  //  the edge actor holding conn
    int64_t attempt;
    int64_t acked_at;  //  the agent's ack (wall ms), not yet written; 0 if none
} s_flight_t;

struct self_t {
    vw_actor_t *actor;
    zhashx_t *flights;  //  command_id -> s_flight_t (owned)
    uint64_t sent, aborted, late, progress;
    uint64_t delivered_timer;  //  writes the acks of commands still running
};

static void
s_flight_free (void **item)
{
    s_flight_t *f = (s_flight_t *) *item;
    if (f) {
        free (f->command_id);
        free (f->agent_id);
        free (f);
    }
    *item = NULL;
}

static void
s_send (self_t *self, const char *to, vw_msg_t **msg_p)
{
    if (vw_actor_send (self->actor, to, msg_p))
        vw_msg_destroy (msg_p);
}

static void
s_cancel_frame (self_t *self, s_flight_t *f)
{
    vw_msg_t *send = vw_msg_new (VW_MSG_ID_command_send);
    send->command_send.conn = f->conn;
    vw_msg_set_str (&send->command_send.agent_id, f->agent_id);
    vw_msg_set_str (&send->command_send.command_id, f->command_id);
    s_send (self, f->edge, &send);
}

//  Reports the attempt's end and forgets it.
static void
s_outcome (self_t *self, s_flight_t *f, const char *outcome, const char *result, const char *error)
{
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_command_outcome);
    vw_msg_set_str (&msg->command_outcome.command_id, f->command_id);
    vw_msg_set_str (&msg->command_outcome.outcome, outcome);
    vw_msg_set_str (&msg->command_outcome.result, result);
    vw_msg_set_str (&msg->command_outcome.error, error);
    msg->command_outcome.conn = f->conn;
    msg->command_outcome.attempt = f->attempt;
    msg->command_outcome.delivered_at = f->acked_at;
    s_send (self, "scheduler", &msg);
    zhashx_delete (self->flights, f->command_id);
}

static void
s_on_dispatch (self_t *self, vw_msg_t *msg)
{
    vw_command_dispatch_msg_t *d = &msg->command_dispatch;
    if (!d->command_id || !d->agent_id)
        return;
    s_flight_t *f = (s_flight_t *) zmalloc (sizeof (s_flight_t));
    f->owner = self;
    f->command_id = strdup (d->command_id);
    f->agent_id = strdup (d->agent_id);
    f->conn = d->conn;
    snprintf (f->edge, sizeof f->edge, "%s", d->edge ? d->edge : "");
    f->attempt = d->attempt;
    zhashx_update (self->flights, f->command_id, f);
    if (!f->conn || !*f->edge) {
        s_outcome (self, f, "unsent", NULL, NULL);
        return;
    }
    vw_msg_t *send = vw_msg_new (VW_MSG_ID_command_send);
    vw_command_send_msg_t *s = &send->command_send;
    s->conn = d->conn;
    vw_msg_set_str (&s->agent_id, f->agent_id);
    s->command_id = d->command_id, d->command_id = NULL;
    s->type = d->type, d->type = NULL;
    s->payload = d->payload, d->payload = NULL;
    s->timeout_ms = d->timeout_ms;
    s->attempt = d->attempt;
    s_send (self, f->edge, &send);
    self->sent++;
}

//  The agent's ack (delivered_at) of a flight, written on its own: for a
//  command still running S_DELIVERED_WAIT_MS after its ack, or one aborted.
//  A quick command's ack travels with its outcome instead and is written
//  with its end: one message and one UPDATE fewer per command.
#define S_DELIVERED_WAIT_MS 200

static void
s_write_delivered (self_t *self, s_flight_t *f)
{
    if (!f->acked_at)
        return;
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_command_update);
    vw_msg_set_str (&msg->command_update.command_id, f->command_id);
    vw_msg_set_str (&msg->command_update.event, "delivered");
    msg->command_update.ts = f->acked_at;
    f->acked_at = 0;
    s_send (self, "store", &msg);
}

static void
s_on_delivered_due (void *arg, uint64_t id)
{
    self_t *self = (self_t *) arg;
    self->delivered_timer = 0;
    int64_t now = vw_clock_wall_ms ();
    bool waiting = false;
    for (s_flight_t *f = (s_flight_t *) zhashx_first (self->flights); f;
         f = (s_flight_t *) zhashx_next (self->flights))
        if (f->acked_at && now - f->acked_at >= S_DELIVERED_WAIT_MS)
            s_write_delivered (self, f);
        else if (f->acked_at)
            waiting = true;
    if (waiting)
        self->delivered_timer = vw_timers_add (vw_actor_timers (self->actor), S_DELIVERED_WAIT_MS,
                                               s_on_delivered_due, self);
}

static void
s_on_ack (self_t *self, s_flight_t *f)
{
    if (!f->acked_at)
        f->acked_at = vw_clock_wall_ms ();
    if (!self->delivered_timer)
        self->delivered_timer = vw_timers_add (vw_actor_timers (self->actor), S_DELIVERED_WAIT_MS,
                                               s_on_delivered_due, self);
}

//  The agent's progress: kept on the command (one-way write, as
//  delivered_at) and published as command.progress. The message is cut to
//  S_PROGRESS_MESSAGE_MAX bytes (at a UTF-8 boundary): the rest is the
//  agent's business.
#define S_PROGRESS_MESSAGE_MAX 1024

static void
s_on_progress (self_t *self, s_flight_t *f, vw_command_event_msg_t *e)
{
    if (e->message && strlen (e->message) > S_PROGRESS_MESSAGE_MAX) {
        size_t cut = S_PROGRESS_MESSAGE_MAX;
        while (cut > 0 && ((unsigned char) e->message[cut] & 0xC0) == 0x80)
            cut--;
        e->message[cut] = 0;
    }
    json_t *event =
        json_pack ("{s:s, s:s, s:I, s:I}", "command_id", f->command_id, "agent_id", f->agent_id,
                   "attempt", (json_int_t) f->attempt, "ts", (json_int_t) vw_clock_wall_ms ());
    json_object_set_new (event, "progress",
                         e->progress >= 0 ? json_integer (e->progress) : json_null ());
    json_object_set_new (event, "message", e->message ? json_string (e->message) : json_null ());
    char *text = json_dumps (event, JSON_COMPACT);
    json_decref (event);
    if (text)
        vw_actor_publish (self->actor, "command.progress", text);
    free (text);
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_command_update);
    vw_msg_set_str (&msg->command_update.command_id, f->command_id);
    vw_msg_set_str (&msg->command_update.event, "progress");
    msg->command_update.progress = e->progress;
    vw_msg_set_str (&msg->command_update.message, e->message);
    msg->command_update.ts = vw_clock_wall_ms ();
    s_send (self, "store", &msg);
    self->progress++;
}

static void
s_on_event (self_t *self, vw_msg_t *msg)
{
    vw_command_event_msg_t *e = &msg->command_event;
    s_flight_t *f =
        e->command_id ? (s_flight_t *) zhashx_lookup (self->flights, e->command_id) : NULL;
    //  Only the session the attempt went to may answer for it, and a
    //  result that names its attempt only for that attempt (an agent that
    //  does not echo `attempt` is taken at its word).
    bool stale = f && e->attempt && e->attempt != f->attempt;
    if (!f || f->conn != e->conn || !streq (f->edge, msg->peer) || !e->kind || stale) {
        if (e->kind && streq (e->kind, "result")) {
            self->late++;
            vw_info ("executor", "result for command %s from '%s' ignored: %s",
                     e->command_id ? e->command_id : "?", e->agent_id ? e->agent_id : "?",
                     stale ? "it answers an earlier attempt" : "not in flight");
        }
        return;
    }
    if (streq (e->kind, "ack"))
        s_on_ack (self, f);
    else if (streq (e->kind, "progress"))
        s_on_progress (self, f, e);
    else if (streq (e->kind, "result") && e->status && streq (e->status, "completed"))
        s_outcome (self, f, "completed", e->result, NULL);
    else if (streq (e->kind, "result"))
        //  Every failed attempt carries a message, the agent's if it gave one.
        s_outcome (self, f, "failed", e->result,
                   e->error && *e->error ? e->error
                                         : "the agent reported failure without a message");
    else if (streq (e->kind, "undeliverable"))
        s_outcome (self, f, "unsent", NULL, NULL);
}

//  The session closed (conn > 0), or its whole edge is gone (conn 0):
//  everything in flight on it is lost.
static void
s_lose (self_t *self, const char *edge, int64_t conn)
{
    zlistx_t *lost = zlistx_new ();
    for (s_flight_t *f = (s_flight_t *) zhashx_first (self->flights); f;
         f = (s_flight_t *) zhashx_next (self->flights))
        if ((!conn || f->conn == conn) && streq (f->edge, edge))
            zlistx_add_end (lost, f);
    if (!conn && zlistx_size (lost))
        vw_warn ("executor", "edge '%s' is gone: %zu command(s) in flight on it lost, queued again",
                 edge, zlistx_size (lost));
    for (s_flight_t *f = (s_flight_t *) zlistx_first (lost); f;
         f = (s_flight_t *) zlistx_next (lost))
        s_outcome (self, f, "lost", NULL, NULL);
    zlistx_destroy (&lost);
}

static void
s_on_closed (self_t *self, vw_msg_t *msg)
{
    if (msg->session_closed.conn)
        s_lose (self, msg->peer, msg->session_closed.conn);
}

static void
s_on_abort (self_t *self, vw_msg_t *msg)
{
    const char *id = msg->command_abort.command_id;
    int64_t attempt = msg->command_abort.attempt;
    s_flight_t *f = id ? (s_flight_t *) zhashx_lookup (self->flights, id) : NULL;
    if (f && (!attempt || attempt == f->attempt)) {
        self->aborted++;
        s_write_delivered (self, f);  //  its end is the scheduler's to write
        s_cancel_frame (self, f);
        zhashx_delete (self->flights, id);
    }
}

static void *
s_create (vw_actor_t *actor, void *args)
{
    self_t *self = (self_t *) zmalloc (sizeof (self_t));
    self->actor = actor;
    self->flights = zhashx_new ();
    zhashx_set_destructor (self->flights, s_flight_free);
    vw_actor_watch_actors (actor, "edge");
    return self;
}

static void
s_destroy (void **state_p)
{
    self_t *self = (self_t *) *state_p;
    if (self) {
        zhashx_destroy (&self->flights);
        free (self);
    }
    *state_p = NULL;
}

static void
s_on_metrics (self_t *self, vw_msg_t *msg)
{
    vw_prom_t p = {0};
    vw_prom_one (&p, "viworks_command_deliveries_total", "counter",
                 "Command attempts the executor sent to an agent's session.", (double) self->sent);
    vw_prom_one (&p, "viworks_command_cancels_sent_total", "counter",
                 "Cancels sent to agents (operator cancels and timeouts).", (double) self->aborted);
    vw_prom_one (&p, "viworks_command_late_results_total", "counter",
                 "Agent results that came after their attempt had ended.", (double) self->late);
    vw_prom_one (&p, "viworks_command_progress_reports_total", "counter",
                 "Progress reports from agents on commands in flight.", (double) self->progress);
    vw_prom_one (&p, "viworks_command_deliveries_in_flight", "gauge",
                 "Attempts sent and not answered yet.", (double) zhashx_size (self->flights));
    vw_actor_reply_metrics (self->actor, msg, &p);
}

static void
s_handle (void *state, vw_actor_t *actor, vw_msg_t **msg_p)
{
    self_t *self = (self_t *) state;
    vw_msg_t *msg = *msg_p;
    switch (msg->id) {
        case VW_MSG_ID_stats_query: s_on_metrics (self, msg); break;  //  prometheus only
        case VW_MSG_ID_command_dispatch: s_on_dispatch (self, msg); break;
        case VW_MSG_ID_command_event: s_on_event (self, msg); break;
        case VW_MSG_ID_command_abort: s_on_abort (self, msg); break;
        case VW_MSG_ID_session_closed: s_on_closed (self, msg); break;
        case VW_MSG_ID_actor_lost:
            if (msg->actor_lost.actor)
                s_lose (self, msg->actor_lost.actor, 0);
            break;
        case VW_MSG_ID_error: vw_actor_routing_error (self->actor, msg); break;
        default:
            vw_warn ("executor", "unexpected '%s' from '%s' ignored", vw_msg_name (msg->id),
                     msg->peer);
            break;
    }
}

static void
s_health (void *state, bool *healthy, char *detail, size_t len)
{
    self_t *self = (self_t *) state;
    *healthy = true;
    snprintf (detail, len, "%zu in flight; %llu sent, %llu aborted, %llu late results",
              zhashx_size (self->flights), (unsigned long long) self->sent,
              (unsigned long long) self->aborted, (unsigned long long) self->late);
}

const vw_actor_class_t vw_executor_class = {
    .name = "executor",
    .create = s_create,
    .destroy = s_destroy,
    .handle = s_handle,
    .health = s_health,
};
