/*  vw_pending - see vw_pending.h. */
#include "vw_pending.h"
#include "vw_broker.h"
#include "vw_keys.h"
#include "vw_log.h"

#include <string.h>

typedef struct {
    uint64_t rid;
    char to[VW_ADDR_MAX];  //  who must answer
    uint64_t timer;
    vw_pending_fn *fn;
    void *ctx;
    struct vw_pending_t *owner;
} s_entry_t;

struct vw_pending_t {
    vw_actor_t *actor;
    void *state;
    zhashx_t *entries;  //  rid (uint64_t *) -> s_entry_t
};

vw_pending_t *
vw_pending_new (vw_actor_t *actor, void *state)
{
    vw_pending_t *self = (vw_pending_t *) zmalloc (sizeof (vw_pending_t));
    self->actor = actor;
    self->state = state;
    self->entries = zhashx_new ();
    //  Keys point at the entry's own rid: no copies, nothing to free.
    vw_keys_int64 (self->entries);
    return self;
}

//  Removes the entry and runs its callback.
static void
s_complete (vw_pending_t *self, s_entry_t *entry, vw_msg_t *reply, const char *why)
{
    zhashx_delete (self->entries, &entry->rid);
    if (entry->timer)
        vw_timers_cancel (vw_actor_timers (self->actor), entry->timer);
    entry->fn (self->state, self->actor, entry->ctx, reply, why);
    free (entry);
}

void
vw_pending_destroy (vw_pending_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vw_pending_t *self = *self_p;
    s_entry_t *entry;
    while ((entry = (s_entry_t *) zhashx_first (self->entries)))
        s_complete (self, entry, NULL, "shutdown");
    zhashx_destroy (&self->entries);
    free (self);
    *self_p = NULL;
}

static void
s_on_timeout (void *arg, uint64_t id)
{
    s_entry_t *entry = (s_entry_t *) arg;
    entry->timer = 0;
    s_complete (entry->owner, entry, NULL, "timeout");
}

int
vw_pending_request (vw_pending_t *self, const char *to, vw_msg_t **msg_p, int timeout_ms,
                    vw_pending_fn *fn, void *ctx)
{
    if (!to || strlen (to) >= VW_ADDR_MAX)
        return -1;
    uint64_t rid = vw_actor_next_rid (self->actor);
    (*msg_p)->rid = rid;
    if (vw_actor_send (self->actor, to, msg_p))
        return -1;
    s_entry_t *entry = (s_entry_t *) zmalloc (sizeof (s_entry_t));
    entry->rid = rid;
    snprintf (entry->to, sizeof entry->to, "%s", to);
    entry->fn = fn;
    entry->ctx = ctx;
    entry->owner = self;
    entry->timer = vw_timers_add (vw_actor_timers (self->actor), timeout_ms, s_on_timeout, entry);
    zhashx_insert (self->entries, &entry->rid, entry);
    return 0;
}

//  True if msg, a reply kind carrying entry's rid, comes from where the
//  answer must come from: the actor the request went to, or the broker
//  saying it could not deliver the request there.
static bool
s_answers (const s_entry_t *entry, const vw_msg_t *msg)
{
    if (streq (msg->peer, entry->to))
        return true;
    return msg->id == VW_MSG_ID_error && streq (msg->peer, VW_BROKER_ADDRESS) &&
           msg->error.target && streq (msg->error.target, entry->to);
}

bool
vw_pending_handle (vw_pending_t *self, vw_msg_t *msg)
{
    //  Rids are per-actor counters: another actor's request may well carry
    //  the rid of one of ours. Only an answer (a reply kind, from the peer
    //  asked) is taken; anything else goes on to the actor's handler.
    if (!msg->rid || !vw_msg_is_reply (msg->id))
        return false;
    s_entry_t *entry = (s_entry_t *) zhashx_lookup (self->entries, &msg->rid);
    if (!entry)
        return false;
    if (!s_answers (entry, msg)) {
        vw_warn (vw_actor_name (self->actor),
                 "'%s' from '%s' carries the rid of a request to '%s': not taken as its answer",
                 vw_msg_name (msg->id), msg->peer, entry->to);
        return false;
    }
    if (msg->id == VW_MSG_ID_error)
        s_complete (self, entry, NULL, msg->error.code ? msg->error.code : "error");
    else
        s_complete (self, entry, msg, NULL);
    return true;
}

size_t
vw_pending_size (vw_pending_t *self)
{
    return zhashx_size (self->entries);
}
