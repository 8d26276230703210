/*  vw_catalogue - every message exchanged between actors, in one place.

    Each entry names a message, documents it, and lists its fields with their
    types. The X-macro is expanded by vw_msg.h into one C struct per message
    and by vw_msg.c into the field tables that drive the msgpack codec, so a
    message is declared exactly once and actors never hand-roll frames.

    Field types:  INT  int64_t          STR  char * (owned, NULL = absent)
                  DBL  double           BIN  vw_bytes_t (owned)
                  BOOL bool
    On the wire a message body is a msgpack map {field name: value}; absent
    strings and empty byte strings are omitted, unknown keys are ignored and
    missing fields decode as zero/NULL, so processes of neighbouring versions
    can talk (scale-out over tcp://).

    Every message has at least one field.
*/
#ifndef VW_CATALOGUE_H
#define VW_CATALOGUE_H

//  MSG (name, "what it is for")  F (name, TYPE, field, "meaning")  END (name)
#define VW_CATALOGUE(MSG, F, END)                                                       \
    /*  Liveness: any actor answers ping with pong (handled by vw_actor). */            \
    MSG (ping, "liveness probe; the addressed actor answers with pong")                 \
    F (ping, INT, sent_ms, "sender's monotonic clock when sent, echoed in the pong")          \
    END (ping)                                                                          \
    MSG (pong, "answer to ping")                                                        \
    F (pong, STR, actor, "name of the answering actor")                                       \
    F (pong, INT, sent_ms, "copied from the ping")                                            \
    F (pong, BOOL, healthy, "false when the actor runs but a dependency is broken")           \
    F (pong, STR, detail, "optional actor-specific detail, e.g. the database state")          \
    END (pong)                                                                          \
    /*  Errors travel as replies carrying the request's rid. */                         \
    MSG (error, "a request could not be served")                                        \
    F (error, STR, code, "snake_case reason, e.g. unknown_actor, actor_busy, bad_message")     \
    F (error, STR, message, "human sentence")                                                  \
    F (error, STR, target, "for routing errors: the address that could not be reached")       \
    END (error)                                                                         \
    /*  Broker directory (address "broker"). */                                         \
    MSG (actor_join, "an actor announces itself to the broker")                         \
    F (actor_join, STR, actor, "the actor's name, equal to its socket routing id")                  \
    F (actor_join, INT, pid, "process id, to tell local from remote actors in listings")            \
    END (actor_join)                                                                    \
    MSG (actor_joined, "the broker's answer to actor_join: the actor is routable")      \
    F (actor_joined, STR, actor, "the actor's name")                                                  \
    END (actor_joined)                                                                  \
    MSG (actor_leave, "an actor is stopping; the broker forgets it")                    \
    F (actor_leave, STR, actor, "the actor's name")                                                  \
    END (actor_leave)                                                                   \
    MSG (event, "publish on the event stream (PUB) via the broker")                     \
    F (event, STR, topic, "agent.online, agent.offline, agent.status, command.state, ...")     \
    F (event, STR, json, "the event body, a JSON object")                                      \
    END (event)                                                                         \
    MSG (broker_stats, "ask the broker for its routing counters (answer: broker_stats)") \
    F (broker_stats, STR, json, "in the answer: {\"actors\":{name:{\"in\":n,\"out\":n}},\"errors\":n}") \
    END (broker_stats)

#endif
