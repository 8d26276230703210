/*  vw_telemetry - the telemetry actor.

    Ingests telemetry batches, keeps rolling analytics and alert rules (SPEC §9). Arrives with the
   telemetry issue; for now it runs, joins the broker and answers liveness pings.
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
    vw_warn ("telemetry", "unexpected '%s' from '%s' ignored", vw_msg_name ((*msg_p)->id),
             (*msg_p)->peer);
}

const vw_actor_class_t vw_telemetry_class = {
    .name = "telemetry",
    .create = s_create,
    .destroy = s_destroy,
    .handle = s_handle,
};
