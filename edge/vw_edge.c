/*  vw_edge - see vw_edge.h. This file owns the lws context, the bridge to
    ZeroMQ, the timers and the shutdown sequence. */
#include "vw_edge.h"
#include "vw_clock.h"
#include "vw_edge_int.h"
#include "vw_keys.h"
#include "vw_lifecycle.h"
#include "vw_log.h"
#include "vw_tls.h"
#include "vw_tokens.h"
#include "vw_wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sodium.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

//  How long agents get to see their close frame before the loop ends.
#define S_CLOSE_GRACE_MS 1000

static int s_ws_entry (struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len);

static struct lws_protocols s_http_protocols[] = {{"http", vw_http_callback, 0, 0, 0, NULL, 0},
                                                  {NULL, NULL, 0, 0, 0, NULL, 0}};

//  First protocol is also the one used when an agent offers no subprotocol.
static struct lws_protocols s_ws_protocols[] = {
    {VW_WIRE_SUBPROTO_JSON, s_ws_entry, 0, 0, 0, NULL, 0},
    {VW_WIRE_SUBPROTO_MSGPACK, s_ws_entry, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

vw_edge_t *
vw_edge_from_wsi (struct lws *wsi)
{
    return (vw_edge_t *) lws_context_user (lws_get_context (wsi));
}

//  --------------------------------------------------------------------------
//  The loop. The edge owns a libev loop (epoll) and hands it to lws as a
//  foreign loop; lws adds its sockets to it. Next to them the loop watches
//  the actor's pipe and broker socket (their ZMQ_FD, edge-triggered), and
//  carries one timer for the actor's timer heap. A prepare watcher runs
//  last before every wait: it sends what callbacks batched during the pass,
//  drains ZeroMQ again if a send consumed ZMQ_FD's edge while messages
//  wait, and re-arms the timer. Nothing wakes while idle.

static void
s_on_stop_deadline (void *arg, uint64_t id)
{
    vw_edge_t *self = (vw_edge_t *) arg;
    if (self->ws_count)
        vw_warn ("edge", "%d agent session(s) did not close in time", self->ws_count);
    self->done = true;
}

static void
s_begin_stop (vw_edge_t *self)
{
    if (self->stopping)
        return;
    self->stopping = true;
    vw_timers_add (vw_actor_timers (self->actor), S_CLOSE_GRACE_MS, s_on_stop_deadline, self);
    if (self->ws_vhost)
        vw_info ("edge", "stopping: closing %d agent session(s) with 1001", self->ws_count);
    vw_ws_close_all (self);
}

//  Drains the pipe and the broker socket, bounded per pass so HTTP and
//  agents are not starved by a flood (the prepare watcher comes back for
//  the rest).
//  SIGHUP: the TLS certificate and key are read again from their files
//  (replaced in place, e.g. by a renewal) for new connections; sessions
//  already up keep theirs. A pair that does not load or match is refused
//  and the one in use stays.
static void
s_tls_reload (vw_edge_t *self)
{
    const vw_config_t *config = self->config;
    if (!config->tls_cert)
        return;
    char err[600], warning[300];
    if (vw_tls_check_files (config->tls_cert, config->tls_key, err, sizeof err, warning,
                            sizeof warning)) {
        vw_error (self->cls.name, "TLS certificate not reloaded, the one in use stays: %s", err);
        return;
    }
    lws_tls_cert_updated (self->context, config->tls_cert, config->tls_key, NULL, 0, NULL, 0);
    self->tls_reloads++;
    vw_info (self->cls.name, "TLS certificate reloaded from %s", config->tls_cert);
}

static void
s_drain (vw_edge_t *self)
{
    if (vw_actor_pipe_drain (self->actor) || vw_actor_terminated (self->actor))
        s_begin_stop (self);
    if (vw_actor_take_reload (self->actor))
        s_tls_reload (self);
    vw_actor_drain (self->actor, 4096);
    if (self->stopping && self->ws_count == 0)
        self->done = true;
}

static void
s_on_lws_wake (struct ev_loop *loop, ev_timer *watcher, int revents)
{
    vw_edge_t *self = (vw_edge_t *) watcher->data;
    lws_cancel_service (self->context);
}

void
vw_edge_wake_lws_in (vw_edge_t *self, int64_t ms)
{
    int64_t due = vw_clock_mono_ms () + ms;
    if (ev_is_active (&self->w_lws) && self->lws_wake_due <= due)
        return;
    self->lws_wake_due = due;
    ev_timer_stop (self->loop, &self->w_lws);
    ev_now_update (self->loop);
    ev_timer_set (&self->w_lws, (double) ms / 1000.0, 0.);
    ev_timer_start (self->loop, &self->w_lws);
}

void
vw_edge_kill (struct lws *wsi)
{
    lws_set_timeout (wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    //  lws does that from its own timer, which lws 4.1 on libev re-arms only
    //  after an event of its own: this may be a timer or message of ours.
    lws_cancel_service (lws_get_context (wsi));
}

static void
s_on_zmq (struct ev_loop *loop, ev_io *watcher, int revents)
{
    s_drain ((vw_edge_t *) watcher->data);
}

static void
s_on_timer (struct ev_loop *loop, ev_timer *watcher, int revents)
{
    vw_edge_t *self = (vw_edge_t *) watcher->data;
    vw_timers_run (vw_actor_timers (self->actor), vw_clock_mono_ms ());
}

//  Keeps the loop from blocking while ZeroMQ holds messages the bounded
//  drain left (the prepare watcher drains them on the next pass).
static void
s_on_idle (struct ev_loop *loop, ev_idle *watcher, int revents)
{
    ev_idle_stop (loop, watcher);
}

static void s_lws_pass_done (void);

static void
s_on_prepare (struct ev_loop *loop, ev_prepare *watcher, int revents)
{
    vw_edge_t *self = (vw_edge_t *) watcher->data;
    s_lws_pass_done ();
    //  ZMQ_FD only signals an edge: a send (or a drain cut short) may have
    //  consumed it while messages wait. Sending may also receive.
    for (int pass = 0; pass < 2; pass++) {
        vw_actor_flush_sends (self->actor);
        if (!(zsock_events (vw_actor_sock (self->actor)) & ZMQ_POLLIN) &&
            !(zsock_events (self->pipe) & ZMQ_POLLIN))
            break;
        if (pass == 1) {
            ev_idle_start (loop, &self->w_idle);
            break;
        }
        s_drain (self);
    }
    if (self->done) {
        ev_break (loop, EVBREAK_ALL);
        return;
    }
    int64_t now = vw_clock_mono_ms ();
    long wait = vw_timers_timeout (vw_actor_timers (self->actor), now);
    if (wait < 0)
        ev_timer_stop (loop, &self->w_timer);
    else if (!ev_is_active (&self->w_timer) || now + wait != self->timer_due) {
        self->timer_due = now + wait;
        ev_timer_stop (loop, &self->w_timer);
        ev_timer_set (&self->w_timer, (double) wait / 1000.0, 0.);
        ev_timer_start (loop, &self->w_timer);
    }
}

//  --------------------------------------------------------------------------
//  Who a connection-level message is about. lws 4.1's log callback gets
//  no connection (lws_log_cx came with 4.3), so its complaints ("Ran out
//  of header data space", ...) name no peer. Each thread notes the last
//  warning or error lws logged during the current service pass; lws closes
//  the connection it complains about in the same pass, on the same thread,
//  and the edge then logs one more line naming the peer (and the path when
//  the request got that far) with the complaint. Every accepted connection
//  carries its peer for that (lws's opaque user data; the socket is closed
//  before lws reports the destruction). Upgrades the edge refuses are
//  logged with peer and path too, at most S_REFUSALS_PER_S lines a second
//  per thread, the rest counted.

#define S_REFUSALS_PER_S 10

typedef struct {
    char peer[48];
    char path[96];
} s_wsi_note_t;

static __thread char s_complaint[256];
static __thread bool s_refused;  //  the edge refused an upgrade in this pass
static __thread int64_t s_refusal_second;
static __thread int s_refusals_logged;
static __thread int s_refusals_dropped;

static void
s_lws_log (int level, const char *line)
{
    char text[512];
    snprintf (text, sizeof text, "%s", line);
    size_t n = strlen (text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        text[--n] = 0;
    //  lws's echo of a refusal the edge logged already is only noise.
    if (s_refused && strstr (text, "denied connection"))
        level = LLL_DEBUG;
    if (level == LLL_ERR || level == LLL_WARN)
        snprintf (s_complaint, sizeof s_complaint, "%s", text);
    vw_log (level == LLL_ERR    ? VW_LOG_ERROR
            : level == LLL_WARN ? VW_LOG_WARN
                                : VW_LOG_DEBUG,
            "lws", "%s", text);
}

//  The end of a loop pass: a complaint belongs to its pass.
static void
s_lws_pass_done (void)
{
    *s_complaint = 0;
    s_refused = false;
}

static void s_log_refusal (const char *component, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
s_log_refusal (const char *component, const char *fmt, ...)
{
    int64_t second = vw_clock_mono_ms () / 1000;
    if (second != s_refusal_second) {
        if (s_refusals_dropped)
            vw_info (component, "%d more refused connection(s) not logged", s_refusals_dropped);
        s_refusal_second = second;
        s_refusals_logged = s_refusals_dropped = 0;
    }
    if (s_refusals_logged++ >= S_REFUSALS_PER_S) {
        s_refusals_dropped++;
        return;
    }
    va_list args;
    va_start (args, fmt);
    vw_logv (VW_LOG_INFO, component, fmt, args);
    va_end (args);
}

//  Notes, logs and forgets per-connection context around the real
//  callback (vw_ws_callback; the HTTP API reads raw bytes and answers
//  every refusal itself, see vw_http.c).
static int
s_entry (struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len,
         lws_callback_function *inner)
{
    s_wsi_note_t *note = (s_wsi_note_t *) lws_get_opaque_user_data (wsi);
    switch (reason) {
        case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
            note = (s_wsi_note_t *) calloc (1, sizeof *note);
            if (note) {
                lws_get_peer_simple (wsi, note->peer, sizeof note->peer);
                lws_set_opaque_user_data (wsi, note);
            }
            break;
        case LWS_CALLBACK_HTTP:
            if (note)
                snprintf (note->path, sizeof note->path, "%.*s", (int) len, (const char *) in);
            break;
        case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
            char path[96] = "";
            lws_hdr_copy (wsi, path, sizeof path, WSI_TOKEN_GET_URI);
            if (note)
                snprintf (note->path, sizeof note->path, "%s", path);
            int rc = inner (wsi, reason, user, in, len);
            if (rc) {
                s_refused = true;
                vw_edge_t *edge = vw_edge_from_wsi (wsi);
                const char *why = vw_ws_refusal ();
                if (!why)
                    why = "refused";
                s_log_refusal (edge ? edge->cls.name : "edge",
                               "refused a WebSocket upgrade from %s for %s: %s",
                               note ? note->peer : "?", *path ? path : "?", why);
            }
            return rc;
        }
        case LWS_CALLBACK_WSI_DESTROY: {
            int rc = inner (wsi, reason, user, in, len);
            if (*s_complaint) {
                vw_edge_t *edge = vw_edge_from_wsi (wsi);
                vw_warn (edge ? edge->cls.name : "edge",
                         "lws closed the connection from %s (%s) after: %s",
                         note && *note->peer ? note->peer : "an unknown peer",
                         note && *note->path ? note->path : "no complete request", s_complaint);
                *s_complaint = 0;
            }
            s_refused = false;
            if (note) {
                lws_set_opaque_user_data (wsi, NULL);
                free (note);
            }
            return rc;
        }
        default: break;
    }
    return inner (wsi, reason, user, in, len);
}

static int
s_ws_entry (struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    return s_entry (wsi, reason, user, in, len, vw_ws_callback);
}

//  lws 4.1 gives every connection a "validity" timer by default (a ping
//  after 300 s of silence, hang-up after 310) in its sorted timer list,
//  whose insertion walks the list: O(connections) for every agent that
//  connects, 30 % of the edge's time while a fleet of 10,000 connected.
//  Agents prove themselves alive with heartbeats (the registry closes a
//  silent session with 4408): no validity timer.
static const lws_retry_bo_t s_no_validity = {.secs_since_valid_ping = 0,
                                             .secs_since_valid_hangup = 0};

static struct lws_vhost *
s_create_vhost (vw_edge_t *self, const char *name, const char *addr, int port,
                struct lws_protocols *protocols)
{
    struct lws_context_creation_info info;
    memset (&info, 0, sizeof info);
    info.vhost_name = name;
    info.port = port;
    //  lws binds to an interface name or address; "0.0.0.0" and "::" are
    //  "every interface", which lws spells NULL.
    info.iface = addr && *addr && strcmp (addr, "0.0.0.0") && strcmp (addr, "::") ? addr : NULL;
    info.protocols = protocols;
    info.retry_and_idle_policy = &s_no_validity;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    if (protocols == s_http_protocols) {
        //  The HTTP API reads raw bytes (after TLS) and parses them itself
        //  (vw_httpreq): lws's HTTP parser normalises encoded paths and
        //  drops over-long headers without an answer.
        info.options |= LWS_SERVER_OPTION_ADOPT_APPLY_LISTEN_ACCEPT_CONFIG;
        info.listen_accept_role = "raw-skt";
        info.listen_accept_protocol = "http";
    }
    //  Over TLS, offer HTTP/1.1 only: the API speaks nothing else, and
    //  agents upgrade from HTTP/1.1.
    info.alpn = "http/1.1";
    if (!info.iface || !strchr (info.iface, ':'))
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info.keepalive_timeout = 30;
    info.timeout_secs = 30;
    if (self->config->tls_cert && self->config->tls_key) {
        //  lws 4.1 makes a vhost TLS only when its own creation info also
        //  carries DO_SSL_GLOBAL_INIT (lws_context_init_server_ssl returns
        //  early otherwise): without it both ports spoke plain HTTP. The
        //  pair was checked in s_start; "" keeps lws's passphrase callback
        //  off a NULL.
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = self->config->tls_cert;
        info.ssl_private_key_filepath = self->config->tls_key;
        info.ssl_private_key_password = "";
        //  lws also makes a client SSL_CTX per TLS vhost, found again at
        //  destruction through an SSL_CTX ex_data index that is a process
        //  global, set by each context's SSL init: with two contexts (api
        //  and edge) the first one's lookup misses and its client context
        //  (the system CA store) leaks. We never connect out: lws gets one
        //  idle context of ours, which it does not free.
        info.provided_client_ssl_ctx = self->tls_client_ctx;
    }
    return lws_create_vhost (self->context, &info);
}

//  Binds addr:port the way lws will (SO_REUSEADDR) and lets go at once:
//  the errno of a failure, 0 when it would work or addr is not numeric
//  (an interface name: lws resolves it). lws does not say why a bind
//  failed, and for an address this host does not have it even creates the
//  vhost and retries in the background: this is where the operator learns.
static int
s_listen_errno (const char *addr, int port)
{
    struct sockaddr_storage ss;
    memset (&ss, 0, sizeof ss);
    socklen_t sslen;
    struct sockaddr_in *in4 = (struct sockaddr_in *) &ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &ss;
    bool any = !addr || !*addr || !strcmp (addr, "0.0.0.0") || !strcmp (addr, "::");
    if (any || inet_pton (AF_INET, addr, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons ((uint16_t) port);
        if (any)
            in4->sin_addr.s_addr = htonl (INADDR_ANY);
        sslen = sizeof *in4;
    }
    else if (inet_pton (AF_INET6, addr, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons ((uint16_t) port);
        sslen = sizeof *in6;
    }
    else
        return 0;
    int fd = socket (ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;  //  lws will say
    int one = 1;
    setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int err = bind (fd, (struct sockaddr *) &ss, sslen) == 0 ? 0 : errno;
    close (fd);
    return err;
}

//  Creates a listening vhost, or fails start-up with the reason and the
//  flags that set the address.
static struct lws_vhost *
s_listen (vw_edge_t *self, zsock_t *pipe, const char *name, const char *addr, int port,
          struct lws_protocols *protocols, const char *what, const char *flags)
{
    char where[300];
    snprintf (where, sizeof where, "%s:%d", addr ? addr : "0.0.0.0", port);
    char reason[512];
    int err = s_listen_errno (addr, port);
    struct lws_vhost *vhost = err ? NULL : s_create_vhost (self, name, addr, port, protocols);
    if (err)
        vw_lifecycle_failed (
            pipe, VW_EXIT_FAILURE, "%s",
            vw_lifecycle_bind_reason (reason, sizeof reason, what, where, err, flags));
    else if (!vhost)
        vw_lifecycle_failed (
            pipe, VW_EXIT_FAILURE, "cannot listen for %s on %s (%s)%s", what, where, flags,
            self->config->tls_cert ? " or set up TLS there (see the lws error)" : "");
    return vhost;
}

static void *
s_create (vw_actor_t *actor, void *args)
{
    return args;  //  the edge builds its state in vw_edge_actor itself
}

void
vw_edge_audit (vw_edge_t *self, const char *actor, const char *source, const char *action,
               const char *target, const char *outcome, const char *detail)
{
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_audit);
    msg->audit.ts = vw_clock_wall_ms ();
    vw_msg_set_str (&msg->audit.actor, actor);
    vw_msg_set_str (&msg->audit.source, source);
    vw_msg_set_str (&msg->audit.action, action);
    vw_msg_set_str (&msg->audit.target, target);
    vw_msg_set_str (&msg->audit.outcome, outcome);
    vw_msg_set_str (&msg->audit.detail, detail);
    if (vw_actor_send (self->actor, "store", &msg)) {
        vw_error ("edge", "audit row for %s lost: the store is unreachable", action);
        vw_msg_destroy (&msg);
    }
}

static void
s_handle (void *state, vw_actor_t *actor, vw_msg_t **msg_p)
{
    vw_edge_t *self = (vw_edge_t *) state;
    if (vw_probe_handle (self->probe, *msg_p) || vw_pending_handle (self->pending, *msg_p))
        return;
    switch ((*msg_p)->id) {
        case VW_MSG_ID_session_welcome:
        case VW_MSG_ID_session_reject:
        case VW_MSG_ID_session_challenge:
        case VW_MSG_ID_session_kick: vw_ws_on_registry (self, *msg_p); return;
        case VW_MSG_ID_command_send: vw_ws_on_command_send (self, *msg_p); return;
        case VW_MSG_ID_telemetry_acked: vw_ws_on_telemetry_acked (self, *msg_p); return;
        case VW_MSG_ID_error:
            //  actor_busy for an actor agents feed: back-pressure (vw_ws.c).
            if (vw_ws_on_refused (self, *msg_p))
                return;
            break;
        case VW_MSG_ID_token_table: vw_edge_on_token_table (self, *msg_p); return;
        case VW_MSG_ID_stats_query: {  //  prometheus only
            vw_prom_t p = {0};
            if (self->ws_vhost)
                vw_ws_metrics (self, &p);
            vw_actor_reply_metrics (self->actor, *msg_p, &p);
            return;
        }
        default: break;
    }
    vw_warn ("edge", "unexpected '%s' from '%s' ignored", vw_msg_name ((*msg_p)->id),
             (*msg_p)->peer);
}

//  The agent side's back-pressure counters in the pong's detail.
static void
s_health (void *state, bool *healthy, char *detail, size_t detail_len)
{
    vw_edge_t *self = (vw_edge_t *) state;
    if (self->ws_vhost)
        vw_ws_health (self, detail, detail_len);
}

//  The broker in the core's process stopped answering, or answers again.
static void
s_link (void *state, vw_actor_t *actor, bool up)
{
    vw_edge_t *self = (vw_edge_t *) state;
    if (self->ws_vhost)
        vw_ws_on_link (self, up);
}

static const vw_actor_class_t s_edge_class = {
    .name = "edge",
    .create = s_create,
    .handle = s_handle,
    .health = s_health,
    .link = s_link,
};

//  The actor name of a thread serving `roles`.
static const char *
s_role_name (int roles)
{
    return roles == VW_EDGE_API ? "api" : "edge";
}

static int
s_start (vw_edge_t *self, const vw_edge_args_t *args, zsock_t *pipe)
{
    const vw_config_t *config = self->config;
    if (!!config->tls_cert != !!config->tls_key) {
        vw_lifecycle_failed (pipe, VW_EXIT_USAGE, "--tls-cert and --tls-key go together");
        return -1;
    }
    if (config->tls_cert) {
        char err[600], warning[300];
        if (vw_tls_check_files (config->tls_cert, config->tls_key, err, sizeof err, warning,
                                sizeof warning)) {
            vw_lifecycle_failed (pipe, VW_EXIT_USAGE, "%s", err);
            return -1;
        }
        if (*warning && (args->roles & VW_EDGE_API || !args->roles))
            vw_warn ("edge", "%s", warning);
        self->tls_client_ctx = SSL_CTX_new (TLS_client_method ());
        if (!self->tls_client_ctx) {
            vw_lifecycle_failed (pipe, VW_EXIT_FAILURE, "edge: cannot set up TLS (out of memory)");
            return -1;
        }
    }
    self->roles = args->roles ? args->roles : VW_EDGE_API | VW_EDGE_AGENTS;
    self->cls = s_edge_class;
    //  Several processes' edges join one broker, each under its own name.
    if (config->node)
        snprintf (self->name, sizeof self->name, "%s@%s", s_role_name (self->roles), config->node);
    else
        snprintf (self->name, sizeof self->name, "%s", s_role_name (self->roles));
    self->cls.name = self->name;
    self->pipe = pipe;
    self->actor = vw_actor_new (pipe, &self->cls, args->endpoint);
    if (!self->actor) {
        vw_lifecycle_failed (pipe, VW_EXIT_FAILURE, "%s: cannot connect to the broker",
                             self->cls.name);
        return -1;
    }
    vw_actor_set_state (self->actor, self);
    s_http_protocols[0].per_session_data_size = vw_http_session_size ();
    s_ws_protocols[0].per_session_data_size = vw_ws_session_size ();
    s_ws_protocols[1].per_session_data_size = vw_ws_session_size ();
    //  lws hands over at most this much of a frame per callback, from a
    //  buffer it allocates per connection for the connection's life: sized
    //  for what an idle agent sends (a heartbeat is ~40 bytes; 10,000 idle
    //  agents x 64 KiB would be 640 MB). vw_ws reassembles larger frames,
    //  up to ws.max_frame, in a buffer that exists only while one arrives.
    s_ws_protocols[0].rx_buffer_size = s_ws_protocols[1].rx_buffer_size = 512;
    self->probe = vw_probe_new (self->actor);
    self->pending = vw_pending_new (self->actor, self);
    self->rl_address = vw_ratelimit_new ((double) config->rl_address_rate,
                                         (double) config->rl_address_burst, 100000);
    self->rl_token =
        vw_ratelimit_new ((double) config->rl_token_rate, (double) config->rl_token_burst, 100000);
    self->rl_login = vw_ratelimit_new (5, 20, 100000);
    self->rl_hello =
        vw_ratelimit_new ((double) config->rl_hello_rate, (double) config->rl_hello_burst, 100000);
    self->proxies = vw_proxies_parse (config->trusted_proxies, NULL, 0);  //  checked at start
    //  Connection ids start at a random point (below 2^50: exact in JSON),
    //  so that two edge processes, or one before and after a restart, do
    //  not hand out the same ids (the core checks the agent as well).
    self->next_conn = (int64_t) randombytes_uniform (1u << 30) << 20;
    self->conns = zhashx_new ();
    vw_keys_int64 (self->conns);
    self->seen = zlistx_new ();
    zlistx_set_destructor (self->seen, (zlistx_destructor_fn *) vw_msg_destroy);

    int lws_levels = LLL_ERR | LLL_WARN;
    if (vw_log_enabled (VW_LOG_TRACE))
        lws_levels |= LLL_NOTICE | LLL_INFO;
    lws_set_log_level (lws_levels, s_lws_log);

    //  epoll through libev, on a loop of ours: lws's built-in loop polls
    //  every connection on every wake-up. No signal handling: main owns
    //  the signals (signalfd).
    self->loop = ev_loop_new (EVBACKEND_EPOLL | EVFLAG_NOSIGMASK);
    if (!self->loop) {
        vw_lifecycle_failed (pipe, VW_EXIT_FAILURE, "edge: cannot create the event loop (epoll)");
        return -1;
    }
    void *loops[] = {self->loop};
    struct lws_context_creation_info info;
    memset (&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_LIBEV;
    info.foreign_loops = loops;
    if (config->tls_cert)
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.user = self;
    info.gid = -1;
    info.uid = -1;
    info.pt_serv_buf_size = 64 * 1024;
    self->context = lws_create_context (&info);
    if (!self->context) {
        vw_lifecycle_failed (pipe, VW_EXIT_FAILURE, "edge: cannot create the lws context");
        return -1;
    }
    if (self->roles & VW_EDGE_API) {
        self->http_vhost = s_listen (self, pipe, "http", config->http_addr, config->http_port,
                                     s_http_protocols, "HTTP", "--http-port / --http-addr");
        if (!self->http_vhost)
            return -1;
    }
    if (self->roles & VW_EDGE_AGENTS) {
        self->ws_vhost = s_listen (self, pipe, "ws", config->ws_addr, config->ws_port,
                                   s_ws_protocols, "agents", "--ws-port / --ws-addr");
        if (!self->ws_vhost)
            return -1;
    }
    ev_io_init (&self->w_pipe, s_on_zmq, zsock_fd (pipe), EV_READ);
    ev_io_init (&self->w_sock, s_on_zmq, zsock_fd (vw_actor_sock (self->actor)), EV_READ);
    ev_timer_init (&self->w_timer, s_on_timer, 0., 0.);
    ev_timer_init (&self->w_lws, s_on_lws_wake, 0., 0.);
    self->w_lws.data = self;
    ev_idle_init (&self->w_idle, s_on_idle);
    ev_prepare_init (&self->w_prepare, s_on_prepare);
    self->w_pipe.data = self->w_sock.data = self->w_timer.data = self->w_prepare.data = self;
    ev_io_start (self->loop, &self->w_pipe);
    ev_io_start (self->loop, &self->w_sock);
    ev_prepare_start (self->loop, &self->w_prepare);
    //  Joining waits on the broker socket outside the loop: fine, nothing
    //  is being served yet.
    if (vw_actor_join (self->actor, 5000)) {
        vw_lifecycle_failed (pipe, VW_EXIT_FAILURE, "%s: %s", self->name,
                             vw_actor_join_failure (self->actor));
        return -1;
    }
    if (self->http_vhost)
        vw_edge_tokens_start (self);  //  tokens get 503 until the table is in
    if (self->http_vhost)
        vw_info (self->cls.name, "HTTP API on %s:%d%s", config->http_addr,
                 lws_get_vhost_listen_port (self->http_vhost), config->tls_cert ? " (TLS)" : "");
    if (self->ws_vhost)
        vw_info (self->cls.name, "agent WebSocket on %s:%d/ws/agent%s", config->ws_addr,
                 lws_get_vhost_listen_port (self->ws_vhost), config->tls_cert ? " (TLS)" : "");
    return 0;
}

void
vw_edge_actor (zsock_t *pipe, void *args)
{
    const vw_edge_args_t *a = (const vw_edge_args_t *) args;
    const char *args_name = s_role_name (a->roles ? a->roles : VW_EDGE_API | VW_EDGE_AGENTS);
    zsock_signal (pipe, 0);
    vw_edge_t *self = (vw_edge_t *) zmalloc (sizeof (vw_edge_t));
    self->config = a->config;
    self->started_ms = vw_clock_mono_ms ();

    if (s_start (self, a, pipe) == 0) {
        vw_actor_set_batching (self->actor, true, NULL, NULL);
        vw_lifecycle_ready (pipe);
        //  Returns when the prepare watcher sees `done`.
        ev_run (self->loop, 0);
        //  Stopped on its own (its name was taken by another process, say):
        //  main hears why.
        const char *aborted = vw_actor_abort_reason (self->actor);
        if (aborted)
            vw_lifecycle_exited (pipe, aborted);
        else if (!self->stopping)
            vw_lifecycle_exited (pipe, "the event loop ended");
        //  From here on (closing connections reports to actors) sends go
        //  out at once.
        vw_actor_set_batching (self->actor, false, NULL, NULL);
    }
    //  Destroying the context closes listeners and every connection; the
    //  probe goes first so no callback answers into a dead HTTP session.
    vw_probe_destroy (&self->probe);
    //  lws leaves a foreign loop's watchers stopped: then the loop goes.
    if (self->context)
        lws_context_destroy (self->context);
    if (self->loop) {
        ev_io_stop (self->loop, &self->w_pipe);
        ev_io_stop (self->loop, &self->w_sock);
        ev_timer_stop (self->loop, &self->w_timer);
        ev_timer_stop (self->loop, &self->w_lws);
        ev_idle_stop (self->loop, &self->w_idle);
        ev_prepare_stop (self->loop, &self->w_prepare);
        ev_loop_destroy (self->loop);
    }
    SSL_CTX_free (self->tls_client_ctx);
    vw_tokens_destroy (&self->tokens);  //  before pending: a late sync sees none
    //  After the context: closing connections still reports to the registry
    //  and cancels pending HTTP calls.
    vw_pending_destroy (&self->pending);
    zhashx_destroy (&self->conns);
    zlistx_destroy (&self->seen);  //  reports of sessions that are over
    vw_ratelimit_destroy (&self->rl_address);
    vw_ratelimit_destroy (&self->rl_token);
    vw_ratelimit_destroy (&self->rl_login);
    vw_ratelimit_destroy (&self->rl_hello);
    vw_proxies_destroy (&self->proxies);
    vw_actor_destroy (&self->actor);
    free (self);
    vw_debug (args_name, "stopped");
}
