/*  vw_edge - the edge actor: the libwebsockets service that turns bytes
    from agents (WebSocket, port 8081, path /ws/agent) and operators (HTTP,
    port 8080) into proto messages to the other actors, and back.

    It runs libwebsockets' event loop in its own thread. ZeroMQ reaches that
    loop without polling: the actor's broker socket and its pipe are adopted
    into lws as raw file descriptors (duplicates of their ZMQ_FD), so lws's
    own poll wakes when a message arrives; the edge then drains the socket
    until it is empty, as ZeroMQ's edge-triggered ZMQ_FD requires. After it
    sends anything it re-checks ZMQ_EVENTS and rings lws_cancel_service ()
    on itself if messages are already waiting. The actor's timers (vw_timers)
    ride on one lws_sul set to the earliest deadline. Nothing ticks while
    idle. Unlike a doorbell rung by senders, this also works when the broker
    is in another process.

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
