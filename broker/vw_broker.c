/*  vw_broker - see vw_broker.h. */
#include "vw_broker.h"
#include "vw_curve.h"
#include "vw_zap.h"
#include "vw_lifecycle.h"
#include "vw_log.h"
#include "vw_msg.h"

#include <jansson.h>
#include <string.h>

//  Per-destination queue bound: deep enough to absorb a burst, bounded so a
//  stuck actor shows up as actor_busy errors instead of unbounded memory.
#define S_HWM 200000

typedef struct {
    uint64_t in;   //  messages the actor sent
    uint64_t out;  //  messages delivered to it
    int pid;
    int64_t instance;  //  its process's, from actor_join
    bool remote;       //  another process: must be heard from, or is lost
    int64_t heard_ms;  //  monotonic: last message from it
} s_peer_t;

//  An actor that asked to hear of losses of actors named prefix...
typedef struct {
    char watcher[VW_ADDR_MAX];
    char prefix[VW_ADDR_MAX];
} s_watch_t;

#define S_WATCHES_MAX 16

typedef struct {
    zsock_t *pipe;
    zsock_t *router;
    zsock_t *pub;
    zhashx_t *peers;  //  name -> s_peer_t: the actors that joined
    uint64_t errors;
    bool terminated;
    int64_t peer_timeout_ms;
    s_watch_t watches[S_WATCHES_MAX];
    int nwatches;
    uint64_t lost;  //  actors declared lost (silent or replaced)
} self_t;

bool
vw_endpoint_is_loopback (const char *endpoint)
{
    if (!endpoint)
        return false;
    if (strncmp (endpoint, "inproc://", 9) == 0 || strncmp (endpoint, "ipc://", 6) == 0)
        return true;
    if (strncmp (endpoint, "tcp://", 6) != 0)
        return false;
    const char *host = endpoint + 6;
    return strncmp (host, "127.", 4) == 0 || strncmp (host, "localhost:", 10) == 0 ||
           strncmp (host, "[::1]:", 6) == 0;
}

static void
s_peer_free (void **item)
{
    free (*item);
    *item = NULL;
}

static s_peer_t *
s_peer (self_t *self, const char *name)
{
    s_peer_t *peer = (s_peer_t *) zhashx_lookup (self->peers, name);
    if (!peer) {
        peer = (s_peer_t *) zmalloc (sizeof (s_peer_t));
        zhashx_insert (self->peers, name, peer);
    }
    return peer;
}

//  Sends a message from the broker to `to`: [to][broker][name][rid][body].
static void
s_reply (self_t *self, const char *to, vw_msg_t **msg_p)
{
    zmsg_t *zmsg = vw_msg_encode (*msg_p, VW_BROKER_ADDRESS);
    vw_msg_destroy (msg_p);
    if (!zmsg)
        return;
    zmsg_pushstr (zmsg, to);
    //  zmsg_send consumes the message only on success (e.g. not when `to`
    //  has gone: EHOSTUNREACH).
    if (zmsg_send (&zmsg, self->router))
        zmsg_destroy (&zmsg);
}

static void
s_reply_error (self_t *self, const char *to, uint64_t rid, const char *code, const char *target)
{
    vw_msg_t *err = vw_msg_new (VW_MSG_ID_error);
    err->rid = rid;
    vw_msg_set_str (&err->error.code, code);
    vw_msg_set_str (&err->error.target, target);
    char text[128];
    if (strcmp (code, "actor_busy") == 0)
        snprintf (text, sizeof text, "actor '%s' is not keeping up; message dropped", target);
    else
        snprintf (text, sizeof text, "no actor named '%s'", target);
    vw_msg_set_str (&err->error.message, text);
    s_reply (self, to, &err);
    self->errors++;
}

//  Tells the watchers of `name` that it is gone, and forgets it.
static void
s_lost (self_t *self, const char *name, const char *reason)
{
    for (int i = 0; i < self->nwatches; i++) {
        const s_watch_t *w = &self->watches[i];
        if (strncmp (name, w->prefix, strlen (w->prefix)) != 0 || streq (name, w->watcher))
            continue;
        vw_msg_t *lost = vw_msg_new (VW_MSG_ID_actor_lost);
        vw_msg_set_str (&lost->actor_lost.actor, name);
        vw_msg_set_str (&lost->actor_lost.reason, reason);
        s_reply (self, w->watcher, &lost);
    }
    zhashx_delete (self->peers, name);
}

//  Remote actors heartbeat (vw_actor pings the broker every second): one
//  not heard from for peer_timeout_ms is lost, whatever its connection
//  looks like (a host cut off keeps its TCP connection half-open).
static void
s_check_peers (self_t *self)
{
    int64_t now = zclock_mono ();
    zlistx_t *silent = zlistx_new ();
    zlistx_set_destructor (silent, (zlistx_destructor_fn *) zstr_free);
    for (s_peer_t *p = (s_peer_t *) zhashx_first (self->peers); p;
         p = (s_peer_t *) zhashx_next (self->peers))
        if (p->remote && now - p->heard_ms > self->peer_timeout_ms)
            zlistx_add_end (silent, strdup ((const char *) zhashx_cursor (self->peers)));
    for (char *name = (char *) zlistx_first (silent); name; name = (char *) zlistx_next (silent)) {
        vw_warn ("broker", "actor '%s' not heard from for %lld ms: lost", name,
                 (long long) self->peer_timeout_ms);
        self->lost++;
        s_lost (self, name, "silent");
    }
    zlistx_destroy (&silent);
}

//  A message for the broker itself (taken).
static void
s_handle_msg (self_t *self, const char *sender, vw_msg_t *msg)
{
    switch (msg->id) {
        case VW_MSG_ID_actor_join: {
            s_peer_t *peer = (s_peer_t *) zhashx_lookup (self->peers, sender);
            if (peer && peer->instance != msg->actor_join.instance) {
                //  Another process took the name (ROUTER_HANDOVER gave it the
                //  route): the one before is gone for us, restarted or not.
                vw_warn ("broker",
                         "actor '%s' joined from another process (pid %d, was pid %d): the "
                         "earlier one is replaced",
                         sender, (int) msg->actor_join.pid, peer->pid);
                self->lost++;
                s_lost (self, sender, "replaced");
                peer = NULL;
            }
            if (!peer)
                peer = s_peer (self, sender);
            peer->pid = (int) msg->actor_join.pid;
            peer->instance = msg->actor_join.instance;
            //  (A join that names no instance comes from a test or an older
            //  build: it is not held to heartbeats.)
            peer->remote =
                msg->actor_join.instance && msg->actor_join.instance != vw_lifecycle_instance ();
            peer->heard_ms = zclock_mono ();
            vw_log (peer->remote ? VW_LOG_INFO : VW_LOG_DEBUG, "broker",
                    "actor '%s' joined (pid %d%s)", sender, peer->pid,
                    peer->remote ? ", another process" : "");
            vw_msg_t *ack = vw_msg_new (VW_MSG_ID_actor_joined);
            ack->rid = msg->rid;
            vw_msg_set_str (&ack->actor_joined.actor, sender);
            s_reply (self, sender, &ack);
            break;
        }
        case VW_MSG_ID_actor_leave: {
            s_peer_t *peer = (s_peer_t *) zhashx_lookup (self->peers, sender);
            if (peer && msg->actor_leave.instance && peer->instance &&
                msg->actor_leave.instance != peer->instance) {
                //  A process that was replaced under this name, going: the
                //  one that holds the name now stays.
                vw_info ("broker", "actor '%s' of a replaced process left", sender);
                break;
            }
            vw_log (peer && peer->remote ? VW_LOG_INFO : VW_LOG_DEBUG, "broker", "actor '%s' left",
                    sender);
            s_lost (self, sender, "left");
            break;
        }
        case VW_MSG_ID_actor_watch: {
            const char *prefix = msg->actor_watch.prefix ? msg->actor_watch.prefix : "";
            bool known = false;
            for (int i = 0; i < self->nwatches && !known; i++)
                known = streq (self->watches[i].watcher, sender) &&
                        streq (self->watches[i].prefix, prefix);
            if (known)
                break;
            if (self->nwatches == S_WATCHES_MAX || strlen (prefix) >= VW_ADDR_MAX) {
                vw_warn ("broker", "watch of '%s' by '%s' refused: too many watches", prefix,
                         sender);
                break;
            }
            s_watch_t *w = &self->watches[self->nwatches++];
            snprintf (w->watcher, sizeof w->watcher, "%s", sender);
            snprintf (w->prefix, sizeof w->prefix, "%s", prefix);
            break;
        }
        case VW_MSG_ID_event:
            if (self->pub && msg->event.topic && msg->event.json) {
                zmsg_t *pub = zmsg_new ();
                zmsg_addstr (pub, msg->event.topic);
                zmsg_addstr (pub, msg->event.json);
                if (zmsg_send (&pub, self->pub))
                    zmsg_destroy (&pub);
            }
            break;
        case VW_MSG_ID_ping: {
            vw_msg_t *pong = vw_msg_new (VW_MSG_ID_pong);
            pong->rid = msg->rid;
            pong->pong.sent_ms = msg->ping.sent_ms;
            //  Unhealthy to an actor the directory does not hold (it was
            //  declared lost, or this broker restarted): it joins again.
            //  A heartbeat from another process than the one that joined
            //  under that name: it was replaced, and must not join again.
            s_peer_t *peer = (s_peer_t *) zhashx_lookup (self->peers, sender);
            bool replaced = peer && msg->ping.instance && peer->instance &&
                            msg->ping.instance != peer->instance;
            bool heartbeat = msg->ping.instance != 0;
            pong->pong.healthy = !replaced && (!heartbeat || peer);
            if (!pong->pong.healthy)
                vw_msg_set_str (&pong->pong.detail, replaced ? "replaced" : "not joined");
            vw_msg_set_str (&pong->pong.actor, VW_BROKER_ADDRESS);
            s_reply (self, sender, &pong);
            break;
        }
        case VW_MSG_ID_broker_stats: {
            //  Built with jansson: names are peers' routing ids and may hold
            //  quotes or control characters (a name that is not UTF-8 cannot
            //  be a JSON key and is left out).
            json_t *actors = json_object ();
            for (s_peer_t *p = (s_peer_t *) zhashx_first (self->peers); p;
                 p = (s_peer_t *) zhashx_next (self->peers))
                json_object_set_new (actors, (const char *) zhashx_cursor (self->peers),
                                     json_pack ("{s:I,s:I,s:i,s:b}", "in", (json_int_t) p->in,
                                                "out", (json_int_t) p->out, "pid", p->pid, "remote",
                                                p->remote));
            json_t *root = json_pack ("{s:o,s:I,s:I}", "actors", actors, "errors",
                                      (json_int_t) self->errors, "lost", (json_int_t) self->lost);
            char *json = root ? json_dumps (root, JSON_COMPACT) : NULL;
            json_decref (root);
            vw_msg_t *answer = vw_msg_new (VW_MSG_ID_broker_stats);
            answer->rid = msg->rid;
            answer->broker_stats.json = json;
            s_reply (self, sender, &answer);
            break;
        }
        default:
            vw_warn ("broker", "'%s' sent '%s' to the broker, which does not serve it", sender,
                     vw_msg_name (msg->id));
            break;
    }
    vw_msg_destroy (&msg);
}

static void
s_handle_own (self_t *self, const char *sender, zmsg_t **zmsg_p)
{
    vw_msg_t *msg = vw_msg_decode (zmsg_p);
    if (!msg) {
        vw_warn ("broker", "malformed message from '%s' dropped", sender);
        self->errors++;
        return;
    }
    if (msg->id != VW_MSG_ID_bundle) {
        s_handle_msg (self, sender, msg);
        return;
    }
    //  An actor's pass sent us several (events, mostly).
    size_t offset = 0;
    vw_msg_t *one = NULL;
    int rc;
    while ((rc = vw_msg_bundle_next (&msg->bundle.msgs, &offset, sender, &one)) == 1)
        s_handle_msg (self, sender, one);
    if (rc < 0) {
        vw_warn ("broker", "malformed bundle from '%s': the rest dropped", sender);
        self->errors++;
    }
    vw_msg_destroy (&msg);
}

static void
s_route (self_t *self)
{
    zmsg_t *zmsg = zmsg_recv (self->router);
    if (!zmsg)
        return;
    //  [sender][destination][name][rid][body]
    if (zmsg_size (zmsg) != 5) {
        self->errors++;
        zmsg_destroy (&zmsg);
        return;
    }
    char *sender = zmsg_popstr (zmsg);
    zframe_t *dest = zmsg_first (zmsg);
    char target[VW_ADDR_MAX];
    size_t tlen = zframe_size (dest);
    if (tlen == 0 || tlen >= VW_ADDR_MAX) {
        self->errors++;
        zmsg_destroy (&zmsg);
        free (sender);
        return;
    }
    memcpy (target, zframe_data (dest), tlen);
    target[tlen] = 0;
    s_peer_t *from = (s_peer_t *) zhashx_lookup (self->peers, sender);
    if (from) {
        from->in++;
        if (from->remote)
            from->heard_ms = zclock_mono ();
    }

    if (strcmp (target, VW_BROKER_ADDRESS) == 0) {
        //  Decode wants [address][name][rid][body]: the address is the sender.
        zframe_reset (zmsg_first (zmsg), sender, strlen (sender));
        s_handle_own (self, sender, &zmsg);
        free (sender);
        return;
    }
    //  Rewrite to [destination][sender][name][rid][body].
    zmsg_next (zmsg);
    zframe_t *ridf = zmsg_next (zmsg);
    uint64_t rid = 0;
    if (zframe_size (ridf) == 8)
        for (int i = 0; i < 8; i++)
            rid = (rid << 8) | zframe_data (ridf)[i];
    zframe_reset (zmsg_first (zmsg), sender, strlen (sender));
    zmsg_pushstr (zmsg, target);
    if (zmsg_send (&zmsg, self->router) == 0) {
        s_peer_t *to = (s_peer_t *) zhashx_lookup (self->peers, target);
        if (to)
            to->out++;
    }
    else {
        //  ROUTER_MANDATORY: unknown peer -> EHOSTUNREACH; full queue -> EAGAIN.
        //  The unsent message is still ours.
        int err = zmq_errno ();
        zmsg_destroy (&zmsg);
        if (err == EHOSTUNREACH) {
            //  Its connection is gone (a process that died, a host cut
            //  off): lost now, not after the heartbeat timeout.
            s_peer_t *peer = (s_peer_t *) zhashx_lookup (self->peers, target);
            if (peer) {
                vw_log (peer->remote ? VW_LOG_WARN : VW_LOG_DEBUG, "broker",
                        "actor '%s' is unreachable: lost", target);
                self->lost += peer->remote;
                s_lost (self, target, "unreachable");
            }
        }
        s_reply_error (self, sender, rid, err == EAGAIN ? "actor_busy" : "unknown_actor", target);
    }
    free (sender);
}

//  On failure, the operator's reason (naming the flag) goes to reason.
static int
s_bind (zsock_t *sock, const char *endpoint, const char *what, const char *flag, char *reason,
        size_t len)
{
    if (zsock_bind (sock, "%s", endpoint) == -1) {
        vw_lifecycle_bind_reason (reason, len, what, endpoint, zmq_errno (), flag);
        return -1;
    }
    return 0;
}

void
vw_broker_actor (zsock_t *pipe, void *args)
{
    const vw_broker_args_t *a = (const vw_broker_args_t *) args;
    self_t self = {.pipe = pipe};
    //  args are valid until the actor is ready: read them before.
    self.peer_timeout_ms = a->peer_timeout_ms > 0 ? a->peer_timeout_ms : 5000;
    self.peers = zhashx_new ();
    zhashx_set_destructor (self.peers, s_peer_free);
    self.router = zsock_new (ZMQ_ROUTER);
    zsock_set_router_mandatory (self.router, 1);
    //  A restarted remote actor reconnects under the same name: let it take over.
    zsock_set_router_handover (self.router, 1);
    zsock_set_sndhwm (self.router, S_HWM);
    zsock_set_rcvhwm (self.router, S_HWM);
    zsock_set_sndtimeo (self.router, 0);
    zsock_set_linger (self.router, 0);
    char reason[512] = "";
    int rc = s_bind (self.router, a->inproc_endpoint ? a->inproc_endpoint : VW_BROKER_INPROC,
                     "actors", "internal endpoint", reason, sizeof reason);
    if (rc == 0 && a->tcp_endpoint && a->curve_cert) {
        //  CURVE from here on: inproc:// pipes have no handshake, the actors
        //  of this process are not affected.
        zcert_t *cert = vw_curve_load_secret (a->curve_cert, reason, sizeof reason);
        if (cert)
            vw_curve_serve (self.router, cert, VW_ZAP_BROKER);
        else
            rc = -2;
        zcert_destroy (&cert);
    }
    if (rc == 0 && a->tcp_endpoint) {
        rc = s_bind (self.router, a->tcp_endpoint, "remote actors", "--broker-bind", reason,
                     sizeof reason);
        if (rc == 0)
            vw_info ("broker", "actors of other processes join on %s%s", a->tcp_endpoint,
                     a->curve_cert ? " (CURVE: broker.curve_clients only)" : "");
    }
    if (rc == 0 && a->events_endpoint) {
        self.pub = zsock_new (ZMQ_PUB);
        zsock_set_sndhwm (self.pub, 10000);
        zsock_set_linger (self.pub, 0);
        zcert_t *cert = NULL;
        if (a->events_curve_cert) {
            if (!(cert = vw_curve_load_secret (a->events_curve_cert, reason, sizeof reason)))
                rc = -2;
            else
                vw_curve_serve (self.pub, cert, VW_ZAP_ADMIN);
        }
        else if (!vw_endpoint_is_loopback (a->events_endpoint)) {
            snprintf (reason, sizeof reason,
                      "events endpoint %s is not loopback or ipc:// and CURVE is not configured "
                      "(--admin-curve-cert, --admin-curve-clients); refusing to expose the event "
                      "stream",
                      a->events_endpoint);
            rc = -2;
        }
        if (rc == 0)
            rc = s_bind (self.pub, a->events_endpoint, "the event stream", "--events-endpoint",
                         reason, sizeof reason);
        zcert_destroy (&cert);
    }
    zsock_signal (pipe, 0);
    if (rc == 0)
        vw_lifecycle_ready (pipe);
    else {
        vw_lifecycle_failed (pipe, rc == -2 ? VW_EXIT_USAGE : VW_EXIT_FAILURE, "%s", reason);
        self.terminated = true;
    }

    int64_t next_check = zclock_mono () + 1000;
    zpoller_t *poller = zpoller_new (pipe, self.router, NULL);
    while (!self.terminated) {
        int64_t now = zclock_mono ();
        if (now >= next_check) {
            s_check_peers (&self);
            next_check = now + 1000;
        }
        void *which = zpoller_wait (poller, (int) (next_check - now));
        if (which == pipe) {
            char *command = zstr_recv (pipe);
            if (!command || streq (command, "$TERM"))
                self.terminated = true;
            zstr_free (&command);
        }
        else if (which == self.router) {
            //  Drain what is queued before polling again: one wake-up, many messages.
            for (int i = 0; i < 1024 && (zsock_events (self.router) & ZMQ_POLLIN); i++)
                s_route (&self);
        }
        else if (zpoller_terminated (poller))
            break;
        else if (zpoller_expired (poller))
            continue;
    }
    zpoller_destroy (&poller);
    zsock_destroy (&self.pub);
    zsock_destroy (&self.router);
    zhashx_destroy (&self.peers);
}
