/*  vw_actor - the runtime every actor shares: one thread, one private state,
    one DEALER socket to the broker, a timer heap, one lifecycle.

    An actor is described by a vw_actor_class_t and run as a CZMQ actor:

        vw_actor_args_t args = {&vw_registry_class, VW_BROKER_INPROC, &my_args};
        zactor_t *actor = zactor_new (vw_actor_task, &args);
        vw_lifecycle_await (actor, 5000, &reason);

    The runtime connects to the broker under the class's name, builds the
    state (create), joins the broker directory, reports READY, then loops:
    poll the pipe and the socket with the timer heap's timeout, dispatch
    messages, fire due timers, and call the class's flush hook once per pass
    (so batches become one transaction per wake-up, as in Redis's
    beforeSleep). It answers `ping` itself with a `pong` whose health comes
    from the class. On $TERM it calls stop, leaves the broker and destroys
    the state.

    Handlers never block on another actor: they send a request with a fresh
    rid, keep it in a pending table and continue when the reply (or an
    `error` reply from the broker, or their own timer) arrives.

    The edge actor runs libwebsockets' loop instead of zmq_poll; it uses the
    lower-level functions at the end of this header to get the same
    behaviour.
*/
#ifndef VW_ACTOR_H
#define VW_ACTOR_H

#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>

#include "vw_metrics.h"
#include "vw_msg.h"
#include "vw_timers.h"

typedef struct vw_actor_t vw_actor_t;

typedef struct {
    const char *name;  //  address on the broker, < VW_ADDR_MAX bytes
    //  Builds the state. Returning NULL fails start-up: call vw_actor_fail
    //  first to give the exit code and reason.
    void *(*create) (vw_actor_t *actor, void *args);
    //  Frees the state; *state_p may be NULL.
    void (*destroy) (void **state_p);
    //  A message other than ping arrived. The runtime destroys *msg_p after
    //  the call unless the handler took it (set *msg_p to NULL).
    void (*handle) (void *state, vw_actor_t *actor, vw_msg_t **msg_p);
    //  Optional: after every loop pass that handled messages or timers.
    void (*flush) (void *state, vw_actor_t *actor);
    //  Optional: health for pong (default healthy, no detail).
    void (*health) (void *state, bool *healthy, char *detail, size_t detail_len);
    //  Optional: $TERM arrived; finish in-flight work before destroy.
    void (*stop) (void *state, vw_actor_t *actor);
    //  Optional, for actors joined to a broker in another process: the
    //  broker stopped answering heartbeats for broker.peer_timeout (up =
    //  false), or answers again / took us back into its directory after it
    //  had forgotten us (up = true: what the core knew of us may be gone).
    void (*link) (void *state, vw_actor_t *actor, bool up);
} vw_actor_class_t;

typedef struct {
    const vw_actor_class_t *cls;
    const char *endpoint;  //  broker endpoint (inproc:// or tcp://)
    void *args;            //  handed to cls->create
} vw_actor_args_t;

//  The zactor_fn that runs an actor class with the generic loop.
void vw_actor_task (zsock_t *pipe, void *args);

//  For handlers ------------------------------------------------------------

const char *vw_actor_name (vw_actor_t *self);
//  Sends to an actor by name; on success *msg_p is destroyed and NULLed.
int vw_actor_send (vw_actor_t *self, const char *to, vw_msg_t **msg_p);

//  Batching. Inside vw_actor_task's loop, what handlers, timers and the
//  flush hook send during one pass waits until the end of the pass and then
//  goes out as one `bundle` per destination (a lone message as itself), in
//  the order sent: fewer messages through the broker, fewer wake-ups of the
//  receivers. The receiving vw_actor_drain unpacks bundles. A send that
//  waits returns 0; if the broker then refuses it, it is logged and dropped
//  (the broker's HWM is far above a pass's output).
//  An actor with a loop of its own (the edge) turns batching on here and
//  flushes itself: `fn` (may be NULL) is called when the first message of a
//  batch waits, so the loop can schedule the flush. Turning it off flushes.
typedef void (vw_actor_batch_fn) (void *arg, vw_actor_t *actor);
void vw_actor_set_batching (vw_actor_t *self, bool on, vw_actor_batch_fn *fn, void *arg);

//  Sends what waits (bundled per destination).
void vw_actor_flush_sends (vw_actor_t *self);
//  How many sends (or batches) the actor's socket has refused so far: its
//  queue to the broker is full (the broker is behind) or the broker is gone.
//  An actor fed from outside (the edge) stops reading its sources when this
//  grows.
uint64_t vw_actor_send_failures (vw_actor_t *self);
//  Sends a reply to `request`'s sender with `request`'s rid.
int vw_actor_reply (vw_actor_t *self, const vw_msg_t *request, vw_msg_t **reply_p);
//  Answers a request with a reply of this status and JSON body (consumed).
void vw_actor_reply_json (vw_actor_t *self, const vw_msg_t *request, int status, json_t *body);
//  Whether a stats_query asks for Prometheus families (GET /metrics)
//  rather than JSON figures (GET /statistics).
bool vw_actor_wants_prometheus (const vw_msg_t *stats_query);
//  Answers such a stats_query with the families written into *prom (freed).
void vw_actor_reply_metrics (vw_actor_t *self, const vw_msg_t *request, vw_prom_t *prom);
//  A fresh request id (never 0), unique within this actor.
uint64_t vw_actor_next_rid (vw_actor_t *self);
vw_timers_t *vw_actor_timers (vw_actor_t *self);
//  Publishes an event (topic + JSON object text) on the event stream.
void vw_actor_publish (vw_actor_t *self, const char *topic, const char *json);
//  During create: records why start-up failed (exit code per vw_lifecycle.h).
void vw_actor_fail (vw_actor_t *self, int exit_code, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
//  Also polls `sock` (e.g. the admin ROUTER) in the generic loop and calls
//  fn when it is readable; at most VW_ACTOR_MAX_WATCH sockets. 0 ok, -1 full.
#define VW_ACTOR_MAX_WATCH 4
typedef void (vw_actor_watch_fn) (void *state, vw_actor_t *actor, zsock_t *sock);
int vw_actor_watch (vw_actor_t *self, zsock_t *sock, vw_actor_watch_fn *fn);
//  Asks the broker for actor_lost whenever an actor whose name starts with
//  prefix leaves, falls silent or is replaced (e.g. "edge": every edge).
void vw_actor_watch_actors (vw_actor_t *self, const char *prefix);
//  Ends the loop after this pass: the actor stops and is reported EXITED.
void vw_actor_abort (vw_actor_t *self, const char *reason);
//  Whether an actor's name is of this role: the role alone ("edge") or at
//  a node ("edge@host-a", as --node names the edges of a process).
bool vw_actor_has_role (const char *name, const char *role);
//  Logs an `error` the broker sent for a one-way message (no request
//  waits for it): unknown_actor at debug (a peer that is gone: the broker
//  announces that with actor_lost), anything else (actor_busy) as a warning.
void vw_actor_routing_error (vw_actor_t *self, const vw_msg_t *msg);
//  Why vw_actor_abort was called, NULL if it was not.
const char *vw_actor_abort_reason (vw_actor_t *self);

//  For actors with their own loop (the edge) --------------------------------

//  Connects a DEALER named cls->name to the broker. NULL if that fails.
vw_actor_t *vw_actor_new (zsock_t *pipe, const vw_actor_class_t *cls, const char *endpoint);
//  Sends actor_leave and frees the runtime (not the state).
void vw_actor_destroy (vw_actor_t **self_p);
void vw_actor_set_state (vw_actor_t *self, void *state);
//  Joins the broker directory, waiting up to timeout_ms; 0 ok, -1 failed.
//  Messages that arrive meanwhile are dispatched normally.
int vw_actor_join (vw_actor_t *self, int timeout_ms);
//  Why vw_actor_join failed, as a sentence.
const char *vw_actor_join_failure (vw_actor_t *self);
//  Whether the broker answers: always for one in this process; for a remote
//  one, whether it answered a heartbeat within broker.peer_timeout and
//  holds this actor in its directory.
bool vw_actor_link_up (vw_actor_t *self);

//  The link of this process's actors to a broker in another process (set
//  once by main before any actor starts): this process's CURVE certificate
//  (FILE and FILE_secret) and the broker's public one, or curve_cert NULL
//  for none (loopback only); and the silence (ms) after which the broker
//  counts as lost. 0, or -1 with a reason in err. vw_actor_clear_link frees
//  the keys at exit.
int vw_actor_set_link (const char *curve_cert, const char *curve_server, int64_t timeout_ms,
                       char *err, size_t errlen);
void vw_actor_clear_link (void);
zsock_t *vw_actor_sock (vw_actor_t *self);
zsock_t *vw_actor_pipe (vw_actor_t *self);
//  Reads pipe commands without blocking; true once $TERM has arrived.
bool vw_actor_pipe_drain (vw_actor_t *self);
//  Whether RELOAD came on the pipe since the last call (the supervisor
//  sends it on SIGHUP: read the files you were started with again).
bool vw_actor_take_reload (vw_actor_t *self);
//  Dispatches up to max queued messages without blocking; returns how many.
int vw_actor_drain (vw_actor_t *self, int max);
bool vw_actor_terminated (vw_actor_t *self);

#endif
