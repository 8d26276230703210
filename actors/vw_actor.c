/*  vw_actor - see vw_actor.h. */
#include "vw_actor.h"
#include "vw_broker.h"
#include "vw_clock.h"
#include "vw_curve.h"
#include "vw_lifecycle.h"
#include "vw_log.h"

#include <stdarg.h>
#include <string.h>
#include <unistd.h>

//  Queue bound per socket direction, matching the broker's.
#define S_HWM 200000
//  Destinations batched at once; a send to one more goes out at once.
#define S_BATCH_DESTS 16
//  Bytes one bundle may carry; a message that would take it past this goes
//  out after the bundle, on its own. Well below VW_MSG_MAX_BODY (64 MiB),
//  the most a receiver takes in one message: a bundle over that would be
//  dropped whole by the receiver.
#define S_BUNDLE_MAX (8 * 1024 * 1024)

//  What a loop pass sends one destination: the first message as it is (a
//  lone message travels unbundled), then a bundle once there is a second.
typedef struct {
    char to[VW_ADDR_MAX];
    vw_msg_t *first;
    msgpack_sbuffer msgs;
    int64_t count;
} s_batch_t;

struct vw_actor_t {
    const vw_actor_class_t *cls;
    void *state;
    zsock_t *pipe;
    zsock_t *sock;
    vw_timers_t *timers;
    uint64_t rid;
    uint64_t join_rid;
    bool joined;
    bool terminated;     //  $TERM received
    char *abort_reason;  //  set by vw_actor_abort
    int fail_code;
    char fail_reason[256];
    bool stall;  //  fault injection: ignore pings (tests only)
    zsock_t *watched[VW_ACTOR_MAX_WATCH];
    vw_actor_watch_fn *watch_fn[VW_ACTOR_MAX_WATCH];
    int nwatched;
    bool batching;  //  sends wait for vw_actor_flush_sends
    s_batch_t batch[S_BATCH_DESTS];
    int nbatch;
    vw_actor_batch_fn *on_batch;  //  told when a pass's first send waits
    void *on_batch_arg;
    uint64_t bundles_sent, batched_msgs;
    uint64_t send_failures;  //  sends the socket refused (see vw_actor_send_failures)
    uint64_t received;       //  messages taken from the socket (a bundle is one)
    bool reload;             //  RELOAD came on the pipe (SIGHUP), not taken yet
    //  The link to a broker in another process (tcp://): heartbeats.
    bool remote;
    bool link_up;       //  the broker answers and holds us in its directory
    bool rejoining;     //  it had forgotten us: actor_join sent again
    int64_t rejoin_ms;  //  monotonic: when
    int64_t heard_ms;   //  monotonic: the broker's last answer to a heartbeat
    uint64_t hb_count;  //  heartbeats sent (their rids: S_HB_RID | count)
    uint64_t hb_timer;
    char *endpoint;          //  the broker's, to connect again while it is lost
    zactor_t *monitor;       //  until joined: a refused CURVE handshake
    bool join_refused;       //  the broker refused our key
    int64_t reconnected_ms;  //  monotonic: last fresh connection while lost
};

//  Heartbeats to a remote broker: one a second, their rids apart from the
//  actor's own (vw_actor_next_rid counts up from 1 and never gets there).
#define S_HEARTBEAT_MS 1000
#define S_HB_RID       (UINT64_C (1) << 62)

//  How this process's actors reach a broker in another process: CURVE keys
//  and the silence after which the core counts as lost. Set once by main
//  before any actor starts (vw_actor_set_link), read by every actor thread.
static struct {
    zcert_t *cert;
    char server[41];
    int64_t timeout_ms;
} s_link = {NULL, "", 5000};

int
vw_actor_set_link (const char *curve_cert, const char *curve_server, int64_t timeout_ms, char *err,
                   size_t errlen)
{
    if (timeout_ms > 0)
        s_link.timeout_ms = timeout_ms;
    if (!curve_cert)
        return 0;
    zcert_destroy (&s_link.cert);
    s_link.cert = vw_curve_load_secret (curve_cert, err, errlen);
    if (!s_link.cert)
        return -1;
    if (vw_curve_load_public (curve_server, s_link.server, err, errlen)) {
        zcert_destroy (&s_link.cert);
        return -1;
    }
    return 0;
}

void
vw_actor_clear_link (void)
{
    zcert_destroy (&s_link.cert);
}

vw_actor_t *
vw_actor_new (zsock_t *pipe, const vw_actor_class_t *cls, const char *endpoint)
{
    assert (cls && cls->name && strlen (cls->name) < VW_ADDR_MAX);
    vw_actor_t *self = (vw_actor_t *) zmalloc (sizeof (vw_actor_t));
    self->cls = cls;
    self->pipe = pipe;
    self->timers = vw_timers_new ();
    self->sock = zsock_new (ZMQ_DEALER);
    zsock_set_identity (self->sock, cls->name);
    zsock_set_sndhwm (self->sock, S_HWM);
    zsock_set_rcvhwm (self->sock, S_HWM);
    zsock_set_linger (self->sock, 0);
    //  A send never blocks the actor's loop: if the broker cannot take it, the
    //  send fails and the caller handles the error.
    zsock_set_sndtimeo (self->sock, 0);
    self->remote = strncmp (endpoint, "tcp://", 6) == 0;
    self->endpoint = strdup (endpoint);
    if (self->remote && s_link.cert) {
        vw_curve_connect (self->sock, s_link.cert, s_link.server);
        //  Watching the handshakes from before the first one (a refused
        //  key is not tried again), so that vw_actor_join says it at once.
        self->monitor = zactor_new (zmonitor, self->sock);
        zstr_sendx (self->monitor, "LISTEN", "HANDSHAKE_FAILED_AUTH", "HANDSHAKE_FAILED_PROTOCOL",
                    "HANDSHAKE_FAILED_NO_DETAIL", NULL);
        zstr_sendx (self->monitor, "START", NULL);
        zsock_wait (self->monitor);
    }
    if (zsock_connect (self->sock, "%s", endpoint) == -1) {
        vw_error (cls->name, "cannot connect to broker %s: %s", endpoint,
                  zmq_strerror (zmq_errno ()));
        vw_actor_destroy (&self);
        return NULL;
    }
    //  VIWORKS_FAULT=stall:<actor> makes that actor ignore pings, so tests
    //  can see /health report it down. Documented in docs/operations.md.
    const char *fault = getenv ("VIWORKS_FAULT");
    if (fault && strncmp (fault, "stall:", 6) == 0 && strcmp (fault + 6, cls->name) == 0) {
        vw_warn (cls->name, "fault injection: this actor will not answer pings");
        self->stall = true;
    }
    return self;
}

void
vw_actor_destroy (vw_actor_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vw_actor_t *self = *self_p;
    self->batching = false;
    vw_actor_flush_sends (self);
    if (self->joined) {
        vw_msg_t *leave = vw_msg_new (VW_MSG_ID_actor_leave);
        vw_msg_set_str (&leave->actor_leave.actor, self->cls->name);
        leave->actor_leave.instance = vw_lifecycle_instance ();
        if (vw_msg_send (&leave, self->sock, VW_BROKER_ADDRESS))
            vw_msg_destroy (&leave);
    }
    zactor_destroy (&self->monitor);
    zsock_destroy (&self->sock);
    free (self->endpoint);
    vw_timers_destroy (&self->timers);
    free (self->abort_reason);
    free (self);
    *self_p = NULL;
}

void
vw_actor_set_state (vw_actor_t *self, void *state)
{
    self->state = state;
}

const char *
vw_actor_name (vw_actor_t *self)
{
    return self->cls->name;
}

zsock_t *
vw_actor_sock (vw_actor_t *self)
{
    return self->sock;
}

zsock_t *
vw_actor_pipe (vw_actor_t *self)
{
    return self->pipe;
}

vw_timers_t *
vw_actor_timers (vw_actor_t *self)
{
    return self->timers;
}

uint64_t
vw_actor_send_failures (vw_actor_t *self)
{
    return self->send_failures;
}

bool
vw_actor_terminated (vw_actor_t *self)
{
    return self->terminated || self->abort_reason;
}

uint64_t
vw_actor_next_rid (vw_actor_t *self)
{
    return ++self->rid;
}

//  Keeps msg for `to` until the end of the pass; -1 if it cannot (no slot
//  left, out of memory): then it goes out at once.
static int
s_batch_add (vw_actor_t *self, const char *to, vw_msg_t **msg_p)
{
    size_t tolen = strlen (to);
    if (tolen >= VW_ADDR_MAX)
        return -1;
    s_batch_t *batch = NULL;
    for (int i = 0; i < self->nbatch && !batch; i++)
        if (strcmp (self->batch[i].to, to) == 0)
            batch = &self->batch[i];
    if (!batch) {
        if (self->nbatch == S_BATCH_DESTS)
            return -1;
        batch = &self->batch[self->nbatch++];
        memcpy (batch->to, to, tolen + 1);
        batch->first = *msg_p;
        batch->count = 1;
        *msg_p = NULL;
        if (self->nbatch == 1 && self->on_batch)
            self->on_batch (self->on_batch_arg, self);
        return 0;
    }
    bool fresh = batch->count == 1;
    if (fresh) {
        msgpack_sbuffer_init (&batch->msgs);
        if (vw_msg_bundle_append (&batch->msgs, batch->first)) {
            msgpack_sbuffer_destroy (&batch->msgs);
            return -1;
        }
    }
    size_t before = batch->msgs.size;
    if (vw_msg_bundle_append (&batch->msgs, *msg_p) || batch->msgs.size > S_BUNDLE_MAX) {
        //  It cannot join this bundle: the caller flushes what waits and
        //  sends it on its own. The batch is left as it was (a lone first
        //  message stays unbundled).
        if (fresh)
            msgpack_sbuffer_destroy (&batch->msgs);
        else
            batch->msgs.size = before;
        return -1;
    }
    if (fresh)
        vw_msg_destroy (&batch->first);
    batch->count++;
    vw_msg_destroy (msg_p);
    return 0;
}

void
vw_actor_flush_sends (vw_actor_t *self)
{
    for (int i = 0; i < self->nbatch; i++) {
        s_batch_t *batch = &self->batch[i];
        if (batch->count == 1) {
            if (vw_msg_send (&batch->first, self->sock, batch->to)) {
                self->send_failures++;
                vw_warn (self->cls->name, "cannot send '%s' to '%s': %s",
                         vw_msg_name (batch->first->id), batch->to, zmq_strerror (zmq_errno ()));
                vw_msg_destroy (&batch->first);
            }
            continue;
        }
        vw_msg_t *bundle = vw_msg_new (VW_MSG_ID_bundle);
        bundle->bundle.count = batch->count;
        //  The sbuffer's memory becomes the message's (freed with it).
        bundle->bundle.msgs.data = (uint8_t *) batch->msgs.data;
        bundle->bundle.msgs.size = batch->msgs.size;
        if (vw_msg_send (&bundle, self->sock, batch->to)) {
            self->send_failures++;
            vw_warn (self->cls->name, "cannot send %lld message(s) to '%s': %s",
                     (long long) batch->count, batch->to, zmq_strerror (zmq_errno ()));
            vw_msg_destroy (&bundle);
        }
        self->bundles_sent++;
        self->batched_msgs += (uint64_t) batch->count;
    }
    self->nbatch = 0;
}

void
vw_actor_set_batching (vw_actor_t *self, bool on, vw_actor_batch_fn *fn, void *arg)
{
    if (!on)
        vw_actor_flush_sends (self);
    self->batching = on;
    self->on_batch = fn;
    self->on_batch_arg = arg;
}

int
vw_actor_send (vw_actor_t *self, const char *to, vw_msg_t **msg_p)
{
    if (self->batching) {
        if (s_batch_add (self, to, msg_p) == 0)
            return 0;
        //  It cannot wait: what waits goes first, to keep the order.
        vw_actor_flush_sends (self);
    }
    if (vw_msg_send (msg_p, self->sock, to) == 0)
        return 0;
    self->send_failures++;
    vw_warn (self->cls->name, "cannot send '%s' to '%s': %s", vw_msg_name ((*msg_p)->id), to,
             zmq_strerror (zmq_errno ()));
    return -1;
}

int
vw_actor_reply (vw_actor_t *self, const vw_msg_t *request, vw_msg_t **reply_p)
{
    (*reply_p)->rid = request->rid;
    return vw_actor_send (self, request->peer, reply_p);
}

void
vw_actor_reply_json (vw_actor_t *self, const vw_msg_t *request, int status, json_t *body)
{
    vw_msg_t *reply = vw_msg_new (VW_MSG_ID_reply);
    reply->reply.status = status;
    reply->reply.json = body ? json_dumps (body, JSON_COMPACT) : NULL;
    json_decref (body);
    if (vw_actor_reply (self, request, &reply))
        vw_msg_destroy (&reply);
}

bool
vw_actor_wants_prometheus (const vw_msg_t *stats_query)
{
    const char *format = stats_query->stats_query.format;
    return format && strcmp (format, "prometheus") == 0;
}

void
vw_actor_reply_metrics (vw_actor_t *self, const vw_msg_t *request, vw_prom_t *prom)
{
    vw_msg_t *reply = vw_msg_new (VW_MSG_ID_metrics_text);
    if (!prom->failed && prom->data)
        vw_msg_set_str (&reply->metrics_text.text, prom->data);
    //  With the broker's count of what it delivered, the edge tells how
    //  many messages wait in this actor's socket.
    reply->metrics_text.received = (int64_t) self->received;
    vw_prom_free (prom);
    if (vw_actor_reply (self, request, &reply))
        vw_msg_destroy (&reply);
}

void
vw_actor_publish (vw_actor_t *self, const char *topic, const char *json)
{
    vw_msg_t *event = vw_msg_new (VW_MSG_ID_event);
    vw_msg_set_str (&event->event.topic, topic);
    vw_msg_set_str (&event->event.json, json);
    if (vw_actor_send (self, VW_BROKER_ADDRESS, &event))
        vw_msg_destroy (&event);
}

void
vw_actor_fail (vw_actor_t *self, int exit_code, const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    vsnprintf (self->fail_reason, sizeof self->fail_reason, fmt, args);
    va_end (args);
    self->fail_code = exit_code;
}

int
vw_actor_watch (vw_actor_t *self, zsock_t *sock, vw_actor_watch_fn *fn)
{
    if (self->nwatched == VW_ACTOR_MAX_WATCH)
        return -1;
    self->watched[self->nwatched] = sock;
    self->watch_fn[self->nwatched++] = fn;
    return 0;
}

void
vw_actor_routing_error (vw_actor_t *self, const vw_msg_t *msg)
{
    //  unknown_actor: most often an edge that is gone (a kick or a cancel
    //  for it); the broker announces the loss itself (actor_lost).
    bool gone = msg->error.code && streq (msg->error.code, "unknown_actor");
    vw_log (gone ? VW_LOG_DEBUG : VW_LOG_WARN, self->cls->name, "'%s' from '%s': %s",
            vw_msg_name (msg->id), msg->peer, msg->error.message ? msg->error.message : "?");
}

bool
vw_actor_has_role (const char *name, const char *role)
{
    size_t len = strlen (role);
    return strncmp (name, role, len) == 0 && (name[len] == 0 || name[len] == '@');
}

const char *
vw_actor_abort_reason (vw_actor_t *self)
{
    return self->abort_reason;
}

void
vw_actor_abort (vw_actor_t *self, const char *reason)
{
    if (!self->abort_reason)
        self->abort_reason = strdup (reason);
}

static void
s_answer_ping (vw_actor_t *self, vw_msg_t *ping)
{
    if (self->stall)
        return;
    vw_msg_t *pong = vw_msg_new (VW_MSG_ID_pong);
    pong->pong.sent_ms = ping->ping.sent_ms;
    pong->pong.healthy = true;
    vw_msg_set_str (&pong->pong.actor, self->cls->name);
    if (self->cls->health && self->state) {
        char detail[256] = "";
        self->cls->health (self->state, &pong->pong.healthy, detail, sizeof detail);
        if (*detail)
            vw_msg_set_str (&pong->pong.detail, detail);
    }
    if (vw_actor_reply (self, ping, &pong))
        vw_msg_destroy (&pong);
}

static void
s_link_change (vw_actor_t *self, bool up)
{
    self->link_up = up;
    if (self->cls->link && self->state)
        self->cls->link (self->state, self, up);
}

static void
s_on_heartbeat (void *arg, uint64_t id)
{
    vw_actor_t *self = (vw_actor_t *) arg;
    int64_t now = vw_clock_mono_ms ();
    if (self->link_up && now - self->heard_ms > s_link.timeout_ms) {
        vw_warn (self->cls->name, "the broker has not answered for %lld ms: the core is lost",
                 (long long) (now - self->heard_ms));
        s_link_change (self, false);
    }
    //  While it is lost, a fresh connection every timeout: the one we hold
    //  may be half-open (a host cut off), or the broker may have handed our
    //  name to another process (then the next heartbeat hears "replaced").
    if (!self->link_up && now - self->heard_ms > s_link.timeout_ms &&
        now - self->reconnected_ms > s_link.timeout_ms) {
        self->reconnected_ms = now;
        zsock_disconnect (self->sock, "%s", self->endpoint);
        if (zsock_connect (self->sock, "%s", self->endpoint))
            vw_warn (self->cls->name, "cannot connect to the broker %s again: %s", self->endpoint,
                     zmq_strerror (zmq_errno ()));
    }
    vw_msg_t *ping = vw_msg_new (VW_MSG_ID_ping);
    ping->rid = S_HB_RID | ++self->hb_count;
    ping->ping.sent_ms = now;
    ping->ping.instance = vw_lifecycle_instance ();
    if (vw_msg_send (&ping, self->sock, VW_BROKER_ADDRESS))
        vw_msg_destroy (&ping);  //  the queue to a broker that is away is full
    self->hb_timer = vw_timers_add (self->timers, S_HEARTBEAT_MS, s_on_heartbeat, self);
}

static void
s_send_join (vw_actor_t *self)
{
    vw_msg_t *join = vw_msg_new (VW_MSG_ID_actor_join);
    join->rid = self->join_rid = vw_actor_next_rid (self);
    join->actor_join.pid = getpid ();
    join->actor_join.instance = vw_lifecycle_instance ();
    vw_msg_set_str (&join->actor_join.actor, self->cls->name);
    if (vw_msg_send (&join, self->sock, VW_BROKER_ADDRESS))
        vw_msg_destroy (&join);
}

//  The broker's answer to a heartbeat: it is there; and whether it holds
//  us (else it restarted or declared us lost: join again, and tell the
//  class, which has sessions to tell about again) or another process of
//  our name replaced us (stop: two processes must not share a name).
static void
s_on_heartbeat_pong (vw_actor_t *self, const vw_msg_t *pong)
{
    int64_t now = self->heard_ms = vw_clock_mono_ms ();
    const char *detail = pong->pong.detail ? pong->pong.detail : "";
    //  A join's answer comes before the pong of any later heartbeat; one
    //  that has not come for two of them was lost.
    bool join_overdue = self->rejoining && now - self->rejoin_ms > 2 * S_HEARTBEAT_MS;
    if (pong->pong.healthy) {
        if ((!self->link_up && !self->rejoining) || join_overdue) {
            vw_info (self->cls->name, "the broker answers again");
            self->rejoining = false;
            s_link_change (self, true);
        }
    }
    else if (streq (detail, "replaced")) {
        char reason[160];
        snprintf (reason, sizeof reason,
                  "another process joined the broker as '%s' (give each process its own --node)",
                  self->cls->name);
        vw_actor_abort (self, reason);
    }
    else if (!self->rejoining || join_overdue) {
        vw_info (self->cls->name, "the broker does not know this actor (%s): joining again",
                 detail);
        self->rejoining = true;
        self->rejoin_ms = now;
        s_send_join (self);
    }
}

static void
s_dispatch (vw_actor_t *self, vw_msg_t *msg)
{
    if (msg->id == VW_MSG_ID_ping)
        s_answer_ping (self, msg);
    else if (msg->id == VW_MSG_ID_pong && (msg->rid & S_HB_RID) &&
             streq (msg->peer, VW_BROKER_ADDRESS))
        s_on_heartbeat_pong (self, msg);
    else if (msg->id == VW_MSG_ID_actor_joined && msg->rid == self->join_rid) {
        self->joined = true;
        if (self->rejoining) {
            self->rejoining = false;
            vw_info (self->cls->name, "joined the broker again");
            s_link_change (self, true);
        }
    }
    else if (self->cls->handle && self->state)
        self->cls->handle (self->state, self, &msg);
    else
        vw_debug (self->cls->name, "'%s' from '%s' dropped: actor not ready", vw_msg_name (msg->id),
                  msg->peer);
    vw_msg_destroy (&msg);
}

int
vw_actor_drain (vw_actor_t *self, int max)
{
    int handled = 0;
    while (handled < max && (zsock_events (self->sock) & ZMQ_POLLIN)) {
        vw_msg_t *msg = vw_msg_recv (self->sock);
        handled++;
        self->received++;
        if (!msg) {
            vw_warn (self->cls->name, "malformed message dropped");
            continue;
        }
        if (msg->id != VW_MSG_ID_bundle) {
            s_dispatch (self, msg);
            continue;
        }
        //  One bundle, many messages, in the order they were sent.
        size_t offset = 0;
        vw_msg_t *one = NULL;
        int rc;
        while ((rc = vw_msg_bundle_next (&msg->bundle.msgs, &offset, msg->peer, &one)) == 1)
            s_dispatch (self, one);
        if (rc < 0)
            vw_warn (self->cls->name, "malformed bundle from '%s': the rest dropped", msg->peer);
        vw_msg_destroy (&msg);
    }
    return handled;
}

bool
vw_actor_pipe_drain (vw_actor_t *self)
{
    while (zsock_events (self->pipe) & ZMQ_POLLIN) {
        char *command = zstr_recv (self->pipe);
        if (!command || streq (command, "$TERM"))
            self->terminated = true;
        else if (streq (command, "RELOAD"))
            self->reload = true;
        zstr_free (&command);
    }
    return self->terminated;
}

bool
vw_actor_take_reload (vw_actor_t *self)
{
    bool reload = self->reload;
    self->reload = false;
    return reload;
}

int
vw_actor_join (vw_actor_t *self, int timeout_ms)
{
    vw_actor_flush_sends (self);
    s_send_join (self);
    int64_t deadline = vw_clock_mono_ms () + timeout_ms;
    //  Over tcp:// with CURVE a refused handshake is said at once (the
    //  monitor vw_actor_new started), not left to the timeout.
    zactor_t *monitor = self->monitor;
    self->monitor = NULL;
    zpoller_t *poller = zpoller_new (self->sock, NULL);
    if (monitor)
        zpoller_add (poller, monitor);
    bool refused = false;
    while (!self->joined && !refused) {
        int64_t left = deadline - vw_clock_mono_ms ();
        void *which = left > 0 ? zpoller_wait (poller, (int) left) : NULL;
        if (!which)
            break;
        if (which == monitor) {
            char *event = zstr_recv (monitor);
            vw_error (self->cls->name,
                      "the broker refused this process's CURVE key (%s): is it "
                      "in the core's broker.curve_clients, and is broker.curve_server the core's?",
                      event ? event : "?");
            zstr_free (&event);
            refused = true;
            self->join_refused = true;
        }
        else
            vw_actor_drain (self, 1);
    }
    zpoller_destroy (&poller);
    zactor_destroy (&monitor);
    if (!self->joined)
        return -1;
    if (self->remote && !self->hb_timer) {
        self->link_up = true;
        self->heard_ms = vw_clock_mono_ms ();
        self->hb_timer = vw_timers_add (self->timers, S_HEARTBEAT_MS, s_on_heartbeat, self);
    }
    return 0;
}

void
vw_actor_watch_actors (vw_actor_t *self, const char *prefix)
{
    vw_msg_t *watch = vw_msg_new (VW_MSG_ID_actor_watch);
    vw_msg_set_str (&watch->actor_watch.prefix, prefix);
    if (vw_actor_send (self, VW_BROKER_ADDRESS, &watch))
        vw_msg_destroy (&watch);
}

const char *
vw_actor_join_failure (vw_actor_t *self)
{
    return self->join_refused ? "the broker refused this process's CURVE key"
                              : "the broker did not answer";
}

bool
vw_actor_link_up (vw_actor_t *self)
{
    return !self->remote || self->link_up;
}

void
vw_actor_task (zsock_t *pipe, void *args)
{
    const vw_actor_args_t *a = (const vw_actor_args_t *) args;
    const vw_actor_class_t *cls = a->cls;
    zsock_signal (pipe, 0);

    vw_actor_t *self = vw_actor_new (pipe, cls, a->endpoint);
    if (!self) {
        vw_lifecycle_failed (pipe, VW_EXIT_FAILURE, "%s: cannot connect to the broker", cls->name);
        return;
    }
    self->fail_code = VW_EXIT_FAILURE;
    void *state = cls->create ? cls->create (self, a->args) : NULL;
    if (cls->create && !state) {
        vw_lifecycle_failed (pipe, self->fail_code, "%s",
                             *self->fail_reason ? self->fail_reason : "start-up failed");
        vw_actor_destroy (&self);
        return;
    }
    self->state = state;
    if (vw_actor_join (self, 5000)) {
        vw_lifecycle_failed (pipe, VW_EXIT_FAILURE, "%s: %s", cls->name,
                             vw_actor_join_failure (self));
        if (cls->destroy)
            cls->destroy (&self->state);
        vw_actor_destroy (&self);
        return;
    }
    vw_lifecycle_ready (pipe);
    vw_debug (cls->name, "started");

    zmq_pollitem_t items[2 + VW_ACTOR_MAX_WATCH] = {{zsock_resolve (pipe), 0, ZMQ_POLLIN, 0},
                                                    {zsock_resolve (self->sock), 0, ZMQ_POLLIN, 0}};
    while (!vw_actor_terminated (self)) {
        //  Every pass: a handler may have added a watch in the previous one.
        for (int i = 0; i < self->nwatched; i++)
            items[2 + i] = (zmq_pollitem_t){zsock_resolve (self->watched[i]), 0, ZMQ_POLLIN, 0};
        long timeout = vw_timers_timeout (self->timers, vw_clock_mono_ms ());
        //  Handlers' sends wait for the end of the pass: one bundle per
        //  destination instead of a message (and a wake-up) each.
        if (zmq_poll (items, 2 + self->nwatched, timeout) == -1) {
            if (zmq_errno () == EINTR)
                continue;
            vw_actor_abort (self, "poll failed");
            break;
        }
        if (items[0].revents & ZMQ_POLLIN && vw_actor_pipe_drain (self))
            break;
        self->batching = true;
        int work = 0;
        if (items[1].revents & ZMQ_POLLIN)
            work += vw_actor_drain (self, 4096);
        for (int i = 0; i < self->nwatched; i++)
            if (items[2 + i].revents & ZMQ_POLLIN) {
                self->watch_fn[i](self->state, self, self->watched[i]);
                work++;
            }
        work += (int) vw_timers_run (self->timers, vw_clock_mono_ms ());
        if (work && cls->flush)
            cls->flush (self->state, self);
        self->batching = false;
        vw_actor_flush_sends (self);
    }
    if (self->abort_reason) {
        vw_error (cls->name, "actor stopped unexpectedly: %s", self->abort_reason);
        vw_lifecycle_exited (pipe, self->abort_reason);
    }
    else {
        if (cls->stop)
            cls->stop (self->state, self);
        if (cls->flush)
            cls->flush (self->state, self);
        vw_debug (cls->name, "stopped");
    }
    if (cls->destroy)
        cls->destroy (&self->state);
    vw_actor_destroy (&self);
}
