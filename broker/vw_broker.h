/*  vw_broker - routes addressed messages between actors, Malamute-style.

    One ZeroMQ ROUTER socket, bound on an inproc:// endpoint for the actors
    of this process and optionally on tcp:// for actors in other processes or
    hosts. An actor's DEALER socket has the actor's name as routing id;
    frames arrive as [sender][destination][name][rid][body] and leave as
    [destination][sender][name][rid][body], so the same actor code works over
    inproc:// and tcp://.

    A message to an address nobody holds gets an `error` reply
    (code unknown_actor) carrying the request's rid, never a silent drop; a
    destination whose queue is full gets actor_busy. Messages addressed to
    "broker" are for the broker itself: actor_join/actor_leave (directory),
    event (published on the PUB socket as [topic][json]), ping, broker_stats,
    actor_watch.

    Actors of other processes (their actor_join names another process
    instance) ping the broker every second (vw_actor's heartbeat); one not
    heard from for peer_timeout_ms, one that left, and one whose name
    another process joined under are lost: the actors that asked
    (actor_watch, by name prefix: the registry and executor watch "edge")
    get actor_lost. A ping from an actor the directory does not hold gets
    an unhealthy pong ("not joined": join again) or, from a process that
    was replaced under its name, "replaced" (stop).

    Run it as a CZMQ actor: zactor_new (vw_broker_actor, &args). args must
    stay valid until the actor has signalled ready. On start it answers the
    pipe with a signal (0 = listening, -1 = a bind failed).
*/
#ifndef VW_BROKER_H
#define VW_BROKER_H

#include <czmq.h>

#define VW_BROKER_ADDRESS "broker"
#define VW_BROKER_INPROC  "inproc://vw-broker"

typedef struct {
    const char *inproc_endpoint;  //  NULL = VW_BROKER_INPROC
    const char *tcp_endpoint;     //  NULL = no remote actors
    const char *events_endpoint;  //  PUB endpoint for events; NULL = none
    //  The events' CURVE certificate (vw_curve; clients checked by zauth),
    //  NULL = none, which only a loopback or ipc endpoint may go without.
    const char *events_curve_cert;
    //  CURVE on tcp_endpoint: the broker's certificate (secret) and the
    //  ZAP domain whose allow-list admits actor processes (vw_zap). NULL
    //  = none, which only a loopback endpoint may go without.
    const char *curve_cert;
    //  An actor of another process not heard from for this long is lost
    //  (its watchers get actor_lost). 0 = 5000.
    int64_t peer_timeout_ms;
} vw_broker_args_t;

void vw_broker_actor (zsock_t *pipe, void *args);

//  True when a tcp:// endpoint names a loopback interface (127.0.0.0/8,
//  ::1, localhost). Non-loopback endpoints need CURVE.
bool vw_endpoint_is_loopback (const char *endpoint);

#endif
