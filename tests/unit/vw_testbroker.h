/*  vw_testbroker - a real broker and actors for unit tests of one actor.

    vw_tb_new starts vw_broker_actor on a fresh inproc:// endpoint (unique
    per call) with an event stream; vw_tb_start runs an actor class on it
    with vw_actor_task; vw_tb_peer connects a DEALER that joins the broker
    under a name ("edge", "store", ...) and plays that actor: it sends proto
    messages and receives what the actor under test sends it.

    Nothing sleeps. Every receive has a deadline; a receive that times out
    returns NULL (the test then fails). vw_tb_expect skips over (and keeps,
    for later) messages of other kinds, so a test asserts on the messages it
    cares about in the order it wants; vw_tb_sync is a barrier (ping, wait
    for the pong): once it returns, the actor has handled everything the
    peer sent before it.

    vw_tb_destroy stops the actors (newest first), then the peers and the
    broker, and frees every message still kept.

    The second part is the scaffolding the cmocka actor tests share: the
    fixture's setup and teardown, "the peer must get X", the peers' answers
    (a reply or an error with the request's rid), "expect a reply with this
    status and code", and "after a barrier, nothing was sent". These fail
    the running cmocka test, naming the peer and the message kinds.
*/
#ifndef VW_TESTBROKER_H
#define VW_TESTBROKER_H

#include "vw_actor.h"
#include "vw_config.h"
#include "vw_msg.h"

#include <czmq.h>

//  How long any expected message may take before a test fails.
#define VW_TB_TIMEOUT_MS 5000

typedef struct vw_tb_t vw_tb_t;
typedef struct vw_tb_peer_t vw_tb_peer_t;

//  NULL if the broker did not start (the reason is printed).
vw_tb_t *vw_tb_new (void);
void vw_tb_destroy (vw_tb_t **self_p);
const char *vw_tb_endpoint (vw_tb_t *self);
//  A fresh inproc:// endpoint name (for sockets a test binds itself).
void vw_tb_fresh_endpoint (char *buf, size_t size, const char *what);

//  Starts cls on the broker with args (which must outlive the actor).
//  0 when it reported READY; otherwise the lifecycle exit code, with the
//  reason in *reason if reason is not NULL (caller frees).
int vw_tb_start (vw_tb_t *self, const vw_actor_class_t *cls, void *args, char **reason);

//  A joined peer named `name` (owned by the broker fixture). NULL on failure.
vw_tb_peer_t *vw_tb_peer (vw_tb_t *self, const char *name);
//  The peer's socket, to wait on several peers (and event streams) at once
//  with zmq_poll; read it with vw_tb_recv (a bundle's messages wait in the
//  peer, so drain with vw_tb_recv (peer, 0) until NULL before polling again).
zsock_t *vw_tb_peer_socket (vw_tb_peer_t *peer);
//  Subscribes to the event stream (topic prefix, "" for all).
zsock_t *vw_tb_events (vw_tb_t *self, const char *prefix);

//  Sends *msg_p (rid as set) to `to`; 0 and *msg_p NULLed, or -1.
int vw_tb_send (vw_tb_peer_t *peer, const char *to, vw_msg_t **msg_p);
//  Sends *msg_p to `to` with a fresh rid of this peer's and returns the rid
//  (0 when the send failed; *msg_p is destroyed either way).
uint64_t vw_tb_ask (vw_tb_peer_t *peer, const char *to, vw_msg_t **msg_p);
//  The next message (kept ones first); NULL after timeout_ms.
vw_msg_t *vw_tb_recv (vw_tb_peer_t *peer, int timeout_ms);
//  The first message of kind `id` (any kind: VW_MSG_INVALID), kept ones
//  first; messages of other kinds are kept. NULL after timeout_ms.
vw_msg_t *vw_tb_expect (vw_tb_peer_t *peer, vw_msg_id_t id, int timeout_ms);
//  The first message carrying `rid` (whatever its kind), as vw_tb_expect.
vw_msg_t *vw_tb_expect_rid (vw_tb_peer_t *peer, uint64_t rid, int timeout_ms);
//  Sends a request and waits for the message carrying its rid.
vw_msg_t *vw_tb_call (vw_tb_peer_t *peer, const char *to, vw_msg_t **msg_p, int timeout_ms);
//  Barrier: pings `to` and waits for its pong. 0, or -1 on timeout.
int vw_tb_sync (vw_tb_peer_t *peer, const char *to);
//  How many messages of kind id are kept (received, not yet expected);
//  VW_MSG_INVALID counts all. Reads what has already arrived first.
size_t vw_tb_kept (vw_tb_peer_t *peer, vw_msg_id_t id);
//  Drops every kept message.
void vw_tb_forget (vw_tb_peer_t *peer);

//  --------------------------------------------------------------------------
//  For cmocka tests

//  An update_config payload of about `bytes` bytes: {"config":"xxx…"}
//  (caller frees; NULL if memory ran out).
char *vw_tb_big_payload (size_t bytes);

//  A default configuration (vw_config_new_defaults) for an actor's args,
//  made at the first call; vw_tb_destroy frees it after the actors stopped.
//  NULL if memory ran out.
vw_config_t *vw_tb_config (vw_tb_t *self);
//  Joins peers given as pairs of a name and a vw_tb_peer_t ** to set, then
//  NULL: vw_tb_peers (tb, "edge", &f->edge, "store", &f->store, NULL).
//  0, or -1 when one did not join.
int vw_tb_peers (vw_tb_t *self, ...);
//  vw_tb_start for a setup: 0 when the actor is READY; otherwise prints
//  "<class> did not start: <code> <reason>" and returns -1.
int vw_tb_run (vw_tb_t *self, const vw_actor_class_t *cls, void *args);
//  A cmocka teardown for a fixture allocated with calloc whose first member
//  is its vw_tb_t *: destroys the broker (actors, peers, config), frees it.
int vw_tb_teardown (void **state);

//  vw_tb_expect with VW_TB_TIMEOUT_MS that fails the test without one.
vw_msg_t *vw_tb_want (vw_tb_peer_t *peer, vw_msg_id_t id);
//  The peer answers the request *request_p (destroyed) by sending `to` a
//  reply with the request's rid, this status, json and code (NULL: none;
//  with a code, a message too).
void vw_tb_answer (vw_tb_peer_t *peer, const char *to, vw_msg_t **request_p, int64_t status,
                   const char *json, const char *code);
//  The same with an `error` of this code instead of a reply.
void vw_tb_answer_error (vw_tb_peer_t *peer, const char *to, vw_msg_t **request_p,
                         const char *code);
//  Asserts *reply_p is a reply with this status and code (NULL: it has
//  none), then destroys it.
void vw_tb_check_reply (vw_msg_t **reply_p, int64_t status, const char *code);
//  Waits for the answer carrying rid (a vw_tb_ask's: 0 fails, the request
//  was not sent; so does no answer) and checks it as vw_tb_check_reply.
void vw_tb_expect_reply (vw_tb_peer_t *peer, uint64_t rid, int64_t status, const char *code);
//  The store (peer) gets an audit record of this action and outcome, and
//  of this target unless target is NULL.
void vw_tb_want_audit (vw_tb_peer_t *store, const char *action, const char *target,
                       const char *outcome);
//  Barrier (peer pings `to`), then asserts that none of the peers that
//  follow, up to NULL, has received anything not yet expected.
void vw_tb_quiet (vw_tb_peer_t *peer, const char *to, ...);

#endif
