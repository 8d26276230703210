/*  vw_probe - see vw_probe.h. */
#include "vw_probe.h"
#include "vw_broker.h"
#include "vw_clock.h"
#include "vw_log.h"

#include <jansson.h>
#include <string.h>
#include <time.h>

const char *const vw_actor_names[VW_ACTOR_COUNT] = {
    "store", "registry", "scheduler", "executor", "telemetry", "auth", "admin", "api", "edge"};

typedef struct s_pending_t {
    struct vw_probe_t *owner;
    uint64_t id;
    uint64_t rids[VW_PROBE_MAX];  //  rid of the ping sent to each actor
    uint64_t dir_rid;             //  the broker's directory, until it answers
    int waiting;
    int64_t started_us;
    uint64_t timer;
    vw_probe_done_fn *done;
    void *arg;
    vw_probe_result_t result;
    struct s_pending_t *next;
} s_pending_t;

struct vw_probe_t {
    vw_actor_t *actor;
    s_pending_t *pending;
    uint64_t next_id;
};

static int64_t
s_now_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

vw_probe_t *
vw_probe_new (vw_actor_t *actor)
{
    vw_probe_t *self = (vw_probe_t *) zmalloc (sizeof (vw_probe_t));
    self->actor = actor;
    return self;
}

static void
s_unlink (vw_probe_t *self, s_pending_t *p)
{
    for (s_pending_t **pp = &self->pending; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
}

static void
s_finish (vw_probe_t *self, s_pending_t *p)
{
    vw_timers_cancel (vw_actor_timers (self->actor), p->timer);
    s_unlink (self, p);
    p->result.all_up = true;
    for (int i = 0; i < p->result.count; i++)
        if (!p->result.actors[i].up || !p->result.actors[i].healthy)
            p->result.all_up = false;
    p->done (p->arg, &p->result);
    free (p);
}

void
vw_probe_destroy (vw_probe_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vw_probe_t *self = *self_p;
    //  Complete what is pending as timed out, so callers free their state.
    while (self->pending)
        s_finish (self, self->pending);
    free (self);
    *self_p = NULL;
}

static void
s_on_deadline (void *arg, uint64_t timer)
{
    s_pending_t *p = (s_pending_t *) arg;
    p->timer = 0;
    s_finish (p->owner, p);  //  whoever has not answered stays down
}

//  Adds an actor to the probe and pings it.
static void
s_ask (vw_probe_t *self, s_pending_t *p, const char *name)
{
    if (p->result.count == VW_PROBE_MAX)
        return;
    int i = p->result.count++;
    vw_probe_entry_t *e = &p->result.actors[i];
    snprintf (e->name, sizeof e->name, "%s", name);
    vw_msg_t *ping = vw_msg_new (VW_MSG_ID_ping);
    ping->rid = p->rids[i] = vw_actor_next_rid (self->actor);
    ping->ping.sent_ms = vw_clock_mono_ms ();
    if (vw_actor_send (self->actor, e->name, &ping) == 0)
        p->waiting++;
    else {
        vw_msg_destroy (&ping);
        p->rids[i] = 0;
        snprintf (e->detail, sizeof e->detail, "cannot send ping");
    }
}

//  The broker's directory: the edges to ask.
static void
s_on_directory (vw_probe_t *self, s_pending_t *p, const vw_msg_t *msg)
{
    p->dir_rid = 0;
    json_t *root = msg->broker_stats.json ? json_loads (msg->broker_stats.json, 0, NULL) : NULL;
    json_t *actors = json_object_get (root, "actors");
    static const char *const roles[] = {"edge", "api"};
    for (int r = 0; r < 2; r++) {
        bool any = false;
        const char *name;
        json_t *value;
        json_object_foreach (actors, name, value)
        {
            if (vw_actor_has_role (name, roles[r])) {
                s_ask (self, p, name);
                any = true;
            }
        }
        if (!any)
            s_ask (self, p, roles[r]);
    }
    json_decref (root);
}

uint64_t
vw_probe_start (vw_probe_t *self, int timeout_ms, vw_probe_done_fn *done, void *arg)
{
    s_pending_t *p = (s_pending_t *) zmalloc (sizeof (s_pending_t));
    p->owner = self;
    p->id = ++self->next_id;
    p->done = done;
    p->arg = arg;
    p->started_us = s_now_us ();
    //  The core's actors (every name but the edges'), then the directory.
    for (int i = 0; i < VW_ACTOR_COUNT; i++)
        if (!vw_actor_has_role (vw_actor_names[i], "edge") &&
            !vw_actor_has_role (vw_actor_names[i], "api"))
            s_ask (self, p, vw_actor_names[i]);
    vw_msg_t *dir = vw_msg_new (VW_MSG_ID_broker_stats);
    dir->rid = p->dir_rid = vw_actor_next_rid (self->actor);
    if (vw_actor_send (self->actor, VW_BROKER_ADDRESS, &dir) == 0)
        p->waiting++;
    else {
        vw_msg_destroy (&dir);
        p->dir_rid = 0;
    }
    p->timer = vw_timers_add (vw_actor_timers (self->actor), timeout_ms, s_on_deadline, p);
    p->next = self->pending;
    self->pending = p;
    if (p->waiting == 0) {
        s_finish (self, p);
        return self->next_id;
    }
    return p->id;
}

void
vw_probe_cancel (vw_probe_t *self, uint64_t id)
{
    for (s_pending_t *p = self->pending; p; p = p->next)
        if (p->id == id) {
            vw_timers_cancel (vw_actor_timers (self->actor), p->timer);
            s_unlink (self, p);
            free (p);
            return;
        }
}

bool
vw_probe_handle (vw_probe_t *self, const vw_msg_t *msg)
{
    if (msg->id != VW_MSG_ID_pong && msg->id != VW_MSG_ID_error &&
        msg->id != VW_MSG_ID_broker_stats)
        return false;
    for (s_pending_t *p = self->pending; p; p = p->next) {
        if (msg->rid && p->dir_rid == msg->rid && streq (msg->peer, VW_BROKER_ADDRESS)) {
            if (msg->id == VW_MSG_ID_broker_stats)
                s_on_directory (self, p, msg);
            p->dir_rid = 0;
            if (--p->waiting == 0)
                s_finish (self, p);
            return true;
        }
        for (int i = 0; i < p->result.count; i++) {
            if (!msg->rid || p->rids[i] != msg->rid)
                continue;
            vw_probe_entry_t *e = &p->result.actors[i];
            p->rids[i] = 0;  //  count each actor once
            if (msg->id == VW_MSG_ID_pong) {
                e->up = true;
                e->healthy = msg->pong.healthy;
                e->latency_us = s_now_us () - p->started_us;
                if (msg->pong.detail)
                    snprintf (e->detail, sizeof e->detail, "%s", msg->pong.detail);
            }
            else
                snprintf (e->detail, sizeof e->detail, "%s",
                          msg->error.message ? msg->error.message : "unreachable");
            if (--p->waiting == 0)
                s_finish (self, p);
            return true;
        }
    }
    return false;
}
