/*  vw_pending - requests an actor has sent and is waiting on.

    STYLE: no actor blocks waiting for another's reply. Instead it sends the
    request with a fresh rid through vw_pending_request, keeps going, and
    feeds every message it receives to vw_pending_handle. When the reply
    with that rid arrives (or the broker's `error` for it, or the deadline
    passes) the callback runs once with the reply, or with NULL for a
    timeout or a routing error. The callback owns ctx from then on.

    A reply is a message of a reply kind (vw_msg_is_reply: reply, error,
    agent_record, ...) that carries the request's rid and comes from the
    actor the request was sent to, or an `error` from the broker naming
    that actor as its target. Rids are per-actor counters, so a request
    from another actor can carry the rid of one of ours: it is never taken
    as the answer and goes on to the actor's handler.

    One vw_pending_t per actor; it uses the actor's timers.
*/
#ifndef VW_PENDING_H
#define VW_PENDING_H

#include "vw_actor.h"

typedef struct vw_pending_t vw_pending_t;

//  reply is borrowed (the caller of vw_pending_handle destroys it); NULL
//  means no answer: timeout, routing error or shutdown. `why` says which.
typedef void (vw_pending_fn) (void *state, vw_actor_t *actor, void *ctx, vw_msg_t *reply,
                              const char *why);

vw_pending_t *vw_pending_new (vw_actor_t *actor, void *state);
//  Every request still pending gets its callback with NULL ("shutdown").
void vw_pending_destroy (vw_pending_t **self_p);

//  Sends *msg_p to `to` with a fresh rid. On success *msg_p is NULLed and
//  the callback will run exactly once; on failure (-1) the caller keeps
//  both the message and ctx.
int vw_pending_request (vw_pending_t *self, const char *to, vw_msg_t **msg_p, int timeout_ms,
                        vw_pending_fn *fn, void *ctx);

//  True if msg answered one of our requests (the callback has run); false
//  for anything else, which the caller handles as usual.
bool vw_pending_handle (vw_pending_t *self, vw_msg_t *msg);

size_t vw_pending_size (vw_pending_t *self);

#endif
