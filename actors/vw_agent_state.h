/*  vw_agent_state - the agent status model of SPEC §4, as a pure function of
    events and time, so the registry's behaviour can be tested with a fake
    clock and no sockets.

    online       after the welcome, while frames keep coming;
    degraded     the agent says so, one heartbeat interval passed with no
                 frame from it, or a telemetry alert that degrades fires;
    maintenance  an operator set it (it wins over everything but offline), or
                 the agent reports it;
    offline      disconnected, or three intervals passed with no frame (the
                 registry then closes the session).
*/
#ifndef VW_AGENT_STATE_H
#define VW_AGENT_STATE_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    VW_AGENT_OFFLINE = 0,
    VW_AGENT_ONLINE,
    VW_AGENT_DEGRADED,
    VW_AGENT_MAINTENANCE,
} vw_agent_status_t;

typedef struct {
    bool connected;
    bool maintenance;            //  set by an operator
    vw_agent_status_t reported;  //  last status the agent reported
    int64_t last_frame_ms;       //  monotonic
    int64_t interval_ms;         //  heartbeat interval announced in the welcome
    bool alerting;               //  a telemetry alert rule that degrades fires for it
} vw_agent_state_t;

const char *vw_agent_status_name (vw_agent_status_t status);
//  Parses online|degraded|maintenance|offline; -1 if unknown.
int vw_agent_status_parse (const char *name);

//  A session was welcomed at now_ms.
void vw_agent_state_connect (vw_agent_state_t *self, int64_t now_ms, int64_t interval_ms);
//  Any frame from the agent; `reported` is a heartbeat's status or NULL.
void vw_agent_state_frame (vw_agent_state_t *self, int64_t now_ms, const char *reported);
void vw_agent_state_disconnect (vw_agent_state_t *self);

//  The status at now_ms. *next_ms (may be NULL) is the monotonic time at
//  which the status may change by itself (silence thresholds), or -1.
vw_agent_status_t vw_agent_state_eval (const vw_agent_state_t *self, int64_t now_ms,
                                       int64_t *next_ms);

//  True when silence means the session must be closed (3 intervals).
bool vw_agent_state_timed_out (const vw_agent_state_t *self, int64_t now_ms);

#endif
