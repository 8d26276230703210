/*  vw_edge - the edge actor: the libwebsockets service that turns bytes
    from agents (WebSocket, port 8081, path /ws/agent) and operators (HTTP,
    port 8080) into proto messages to the other actors, and back.

    Each edge thread owns a libev loop (epoll) and runs libwebsockets on it
    as a foreign loop. The same loop watches the actor's broker socket and
    pipe (their ZMQ_FD: drained until empty, as ZeroMQ's edge-triggered
    ZMQ_FD requires) and carries one timer for the actor's timers
    (vw_timers). Before every wait a prepare watcher flushes what the pass
    sent, drains again if a send consumed ZMQ_FD's edge while messages wait,
    and re-arms the timer. Nothing ticks while idle. Unlike a doorbell rung
    by senders, this also works when the broker is in another process.

    Run with zactor_new (vw_edge_actor, &args) where args is vw_edge_args_t.
*/
#ifndef VW_EDGE_H
#define VW_EDGE_H

#include <czmq.h>

#include "vw_config.h"

//  What one edge thread serves. The backend runs two: "api" (the HTTP
//  façade) and "edge" (the agent WebSocket), each with its own lws context
//  and loop, so that operators' requests neither wait for nor pay the poll
//  over every agent connection. One thread can also serve both.
typedef enum { VW_EDGE_API = 1, VW_EDGE_AGENTS = 2 } vw_edge_role_t;

typedef struct {
    const vw_config_t *config;
    const char *endpoint;  //  broker endpoint
    int roles;             //  VW_EDGE_API and/or VW_EDGE_AGENTS
} vw_edge_args_t;

void vw_edge_actor (zsock_t *pipe, void *args);

#endif
