/*  vw_edge_int - state shared by the edge's files (vw_edge.c owns it;
    vw_http.c serves the HTTP façade, vw_ws.c the agent WebSocket). Only the
    edge thread touches any of it. */
#ifndef VW_EDGE_INT_H
#define VW_EDGE_INT_H

#include <ev.h>
#include <libwebsockets.h>
#include <stdbool.h>
#include <stdint.h>

#include "vw_actor.h"
#include "vw_config.h"
#include "vw_pending.h"
#include "vw_probe.h"
#include "vw_proxy.h"
#include "vw_ratelimit.h"

typedef struct vw_ws_conn_t vw_ws_conn_t;
typedef struct vw_tokens_t vw_tokens_t;

typedef struct {
    const vw_config_t *config;
    vw_actor_class_t cls;  //  named after the role: "api" or "edge", @node if set
    char name[VW_ADDR_MAX];
    int roles;  //  vw_edge_role_t bits
    vw_actor_t *actor;
    struct lws_context *context;
    struct lws_vhost *http_vhost;
    struct lws_vhost *ws_vhost;
    //  With TLS: an idle client SSL_CTX handed to lws for every vhost, so
    //  lws makes (and fails to free, see vw_edge.c) none of its own.
    SSL_CTX *tls_client_ctx;
    vw_probe_t *probe;
    vw_pending_t *pending;       //  requests to other actors on behalf of clients
    vw_ratelimit_t *rl_address;  //  every HTTP request, per source address
    vw_ratelimit_t *rl_token;    //  authenticated requests, per bearer token
    vw_ratelimit_t *rl_login;    //  POST /auth/token, per source address
    vw_ratelimit_t *rl_hello;    //  agent connections, per source address
    vw_proxies_t *proxies;       //  http.trusted_proxies (NULL: none): X-Forwarded-For from them
    uint64_t tls_reloads;        //  certificates read again (SIGHUP)
    zhashx_t *conns;             //  agent connection id (int64_t *) -> vw_ws_conn_t
    int64_t next_conn;
    struct ev_loop *loop;  //  ours, lws's foreign loop (vw_edge.c)
    ev_io w_pipe, w_sock;  //  ZMQ_FD of the actor's pipe and broker socket
    ev_timer w_timer;      //  the actor's earliest timer
    int64_t timer_due;     //  monotonic ms w_timer is set for
    ev_idle w_idle;        //  no waiting while ZeroMQ holds messages
    ev_timer w_lws;        //  rings lws when a timeout of its own is due
    int64_t lws_wake_due;  //  monotonic ms w_lws is set for
    ev_prepare w_prepare;  //  before each wait: flush, drain, re-arm
    zsock_t *pipe;
    int64_t started_ms;      //  monotonic, for uptime
    bool stopping;           //  $TERM received: closing agent sessions
    bool done;               //  leave the service loop
    vw_ws_conn_t *ws_conns;  //  every open agent session (for shutdown)
    int ws_count;
    //  Back-pressure (vw_ws.c): agents closed for not reading (ws.out_max)
    //  or for lack of memory; reading from agents paused while actors they
    //  feed are busy.
    uint64_t ws_overflows;
    uint64_t ws_out_nomem;
    uint64_t ws_rx_pauses;
    bool ws_rx_paused;
    int64_t ws_resume_ms;       //  monotonic: read again from then on
    int64_t ws_busy_logged_ms;  //  last warning about busy actors
    uint64_t ws_send_failures;  //  vw_actor_send_failures last seen
    //  Admission (vw_ws.c): hellos waiting for the registry, refused ones,
    //  and the answers and refusals of this second and the one before.
    int ws_hellos_waiting;
    uint64_t ws_hellos_refused;
    zlistx_t *seen;       //  session_seen reports waiting to go (vw_ws.c)
    uint64_t seen_timer;  //  when they go
    int64_t ws_window_s;
    uint32_t ws_window_answered, ws_window_refused;
    uint32_t ws_prev_answered, ws_prev_refused;
    vw_tokens_t *tokens;  //  api edges: who may hold a token (vw_tokens.c)
} vw_edge_t;

//  The edge that owns a wsi's context.
vw_edge_t *vw_edge_from_wsi (struct lws *wsi);

//  lws 4.1 on libev re-arms its timer only after an event of its own: a
//  timeout it was given from one of our timers or messages may wait for
//  that. vw_edge_kill has lws drop a connection at once, from anywhere;
//  vw_edge_wake_lws_in rings lws when a timeout given to it is due.
void vw_edge_kill (struct lws *wsi);
void vw_edge_wake_lws_in (vw_edge_t *self, int64_t ms);

//  vw_http.c
int vw_http_callback (struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                      size_t len);
size_t vw_http_session_size (void);

//  Sends an audit row to the store (fire and forget).
void vw_edge_audit (vw_edge_t *self, const char *actor, const char *source, const char *action,
                    const char *target, const char *outcome, const char *detail);

//  vw_tokens.c: an api edge asks the auth actor for the token table at
//  start and keeps it up to date; token_table pushes are merged here.
void vw_edge_tokens_start (vw_edge_t *self);
void vw_edge_on_token_table (vw_edge_t *self, vw_msg_t *msg);
//  Drains what the broker already delivered (pushes first) before a token
//  is checked against the table.
void vw_edge_tokens_catch_up (vw_edge_t *self);

//  vw_ws.c
//  A session_* message from the registry for one of our connections.
void vw_ws_on_registry (vw_edge_t *self, vw_msg_t *msg);
//  command_send from the executor: a command or cancel frame for a session.
void vw_ws_on_command_send (vw_edge_t *self, vw_msg_t *msg);
//  The telemetry actor's word on a frame: telemetry_ack, or an error naming its seq.
void vw_ws_on_telemetry_acked (vw_edge_t *self, vw_msg_t *msg);
int vw_ws_callback (struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len);
size_t vw_ws_session_size (void);
//  Why this thread's last upgrade was refused (a static sentence), once;
//  NULL when it gave none.
const char *vw_ws_refusal (void);
//  The core was lost (up = false): hellos waiting for it are refused with
//  1013, and so are new ones until it is back; sessions stay. Back (up =
//  true): the registry is told every session held here (session_resync).
void vw_ws_on_link (vw_edge_t *self, bool up);
//  Closes every agent session with 1001 (going away) as part of shutdown.
void vw_ws_close_all (vw_edge_t *self);
//  An `error` from the broker: if it says an actor agents feed is busy,
//  stops reading from agents for a while and returns true.
bool vw_ws_on_refused (vw_edge_t *self, vw_msg_t *msg);
//  The agent side's counters, for the edge's pong detail.
void vw_ws_health (vw_edge_t *self, char *detail, size_t len);
//  The agent side's families for GET /metrics.
void vw_ws_metrics (vw_edge_t *self, vw_prom_t *p);

#endif
