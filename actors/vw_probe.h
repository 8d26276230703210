/*  vw_probe - asks every actor of the backend whether it is alive.

    A probe sends `ping` to each actor through the broker and collects the
    `pong`s until all have answered or the deadline passes; an actor that
    did not answer in time (or that the broker could not reach) is down.
    The core's actors are always asked; the edges ("edge", "api", and
    those of other processes: edge@NAME, api@NAME) are the ones the
    broker's directory holds, asked for in the same probe (broker_stats).
    When it holds no agent edge, or no api, "edge" or "api" is asked, so
    that a backend without one shows it down.
    GET /health and the admin socket's actors.status both use it, so the
    answer always comes from a real round trip made for that request.

    The probe belongs to one actor and runs on its timers: feed it every
    message the actor receives (vw_probe_handle takes the ones it owns).
*/
#ifndef VW_PROBE_H
#define VW_PROBE_H

#include "vw_actor.h"

//  The backend's actors, in start-up order.
#define VW_ACTOR_COUNT 9
extern const char *const vw_actor_names[VW_ACTOR_COUNT];
//  Actors one probe asks at most (the core's and up to 40 edges).
#define VW_PROBE_MAX 48

typedef struct {
    char name[VW_ADDR_MAX];
    bool up;       //  answered in time
    bool healthy;  //  its own verdict (e.g. the store's database check)
    char detail[128];
    int64_t latency_us;  //  round trip, when up
} vw_probe_entry_t;

typedef struct {
    vw_probe_entry_t actors[VW_PROBE_MAX];
    int count;    //  entries in actors
    bool all_up;  //  every actor up and healthy
} vw_probe_result_t;

typedef void (vw_probe_done_fn) (void *arg, const vw_probe_result_t *result);

typedef struct vw_probe_t vw_probe_t;

vw_probe_t *vw_probe_new (vw_actor_t *actor);
//  Pending probes complete at once, as if their deadline had passed.
void vw_probe_destroy (vw_probe_t **self_p);

//  Starts a probe; done(arg, result) is called exactly once, from the
//  actor's loop, within timeout_ms. Returns a probe id (0 on failure, and
//  then done is not called).
uint64_t vw_probe_start (vw_probe_t *self, int timeout_ms, vw_probe_done_fn *done, void *arg);
//  Forgets a pending probe (its caller went away); done is not called.
void vw_probe_cancel (vw_probe_t *self, uint64_t id);

//  Returns true if msg was a pong, directory or routing error for one of our probes
//  (it has been accounted for; the caller still destroys it).
bool vw_probe_handle (vw_probe_t *self, const vw_msg_t *msg);

#endif
