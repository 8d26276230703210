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
*/
#ifndef VW_TESTBROKER_H
#define VW_TESTBROKER_H

#include "vw_actor.h"
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

#endif
