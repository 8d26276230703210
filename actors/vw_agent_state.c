/*  vw_agent_state - see vw_agent_state.h. */
#include "vw_agent_state.h"

#include <stddef.h>
#include <string.h>

#define S_OFFLINE_INTERVALS 3

static const char *s_names[] = {"offline", "online", "degraded", "maintenance"};

const char *
vw_agent_status_name (vw_agent_status_t status)
{
    return status >= VW_AGENT_OFFLINE && status <= VW_AGENT_MAINTENANCE ? s_names[status] : "?";
}

int
vw_agent_status_parse (const char *name)
{
    for (int i = 0; name && i <= VW_AGENT_MAINTENANCE; i++)
        if (strcmp (name, s_names[i]) == 0)
            return i;
    return -1;
}

void
vw_agent_state_connect (vw_agent_state_t *self, int64_t now_ms, int64_t interval_ms)
{
    self->connected = true;
    self->reported = VW_AGENT_ONLINE;
    self->last_frame_ms = now_ms;
    self->interval_ms = interval_ms > 0 ? interval_ms : 1;
}

void
vw_agent_state_frame (vw_agent_state_t *self, int64_t now_ms, const char *reported)
{
    if (!self->connected)
        return;
    if (now_ms > self->last_frame_ms)
        self->last_frame_ms = now_ms;
    int status = vw_agent_status_parse (reported);
    if (status == VW_AGENT_ONLINE || status == VW_AGENT_DEGRADED || status == VW_AGENT_MAINTENANCE)
        self->reported = (vw_agent_status_t) status;
}

void
vw_agent_state_disconnect (vw_agent_state_t *self)
{
    self->connected = false;
}

bool
vw_agent_state_timed_out (const vw_agent_state_t *self, int64_t now_ms)
{
    return self->connected &&
           now_ms - self->last_frame_ms >= S_OFFLINE_INTERVALS * self->interval_ms;
}

vw_agent_status_t
vw_agent_state_eval (const vw_agent_state_t *self, int64_t now_ms, int64_t *next_ms)
{
    if (next_ms)
        *next_ms = -1;
    if (!self->connected || vw_agent_state_timed_out (self, now_ms))
        return VW_AGENT_OFFLINE;
    int64_t degraded_at = self->last_frame_ms + self->interval_ms;
    if (next_ms)
        *next_ms = now_ms < degraded_at
                       ? degraded_at
                       : self->last_frame_ms + S_OFFLINE_INTERVALS * self->interval_ms;
    if (self->maintenance || self->reported == VW_AGENT_MAINTENANCE)
        return VW_AGENT_MAINTENANCE;
    if (self->reported == VW_AGENT_DEGRADED || self->alerting || now_ms >= degraded_at)
        return VW_AGENT_DEGRADED;
    return VW_AGENT_ONLINE;
}
