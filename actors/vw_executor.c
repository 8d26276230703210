/*  vw_executor - the executor actor.

    Validates and dispatches commands, tracks them in flight, times them out and records results
   (SPEC §5). Arrives with the command-engine issue; for now it runs, joins the broker and answers
   liveness pings.
*/
#include "vw_actors.h"
#include "vw_log.h"

typedef struct {
    const vw_config_t *config;
} self_t;

static void *
s_create (vw_actor_t *actor, void *args)
{
    self_t *self = (self_t *) zmalloc (sizeof (self_t));
    self->config = (const vw_config_t *) args;
    return self;
}

static void
s_destroy (void **state_p)
{
    free (*state_p);
    *state_p = NULL;
}

static void
s_handle (void *state, vw_actor_t *actor, vw_msg_t **msg_p)
{
    vw_warn ("executor", "unexpected '%s' from '%s' ignored", vw_msg_name ((*msg_p)->id),
             (*msg_p)->peer);
}

const vw_actor_class_t vw_executor_class = {
    .name = "executor",
    .create = s_create,
    .destroy = s_destroy,
    .handle = s_handle,
};
