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
#define VW_CATALOGUE(MSG, F, END)                                                                  \
    /*  Liveness: any actor answers ping with pong (handled by vw_actor). */                       \
    MSG (ping, "liveness probe; the addressed actor answers with pong")                            \
    F (ping, INT, sent_ms, "sender's monotonic clock when sent, echoed in the pong")               \
    END (ping)                                                                                     \
    MSG (pong, "answer to ping")                                                                   \
    F (pong, STR, actor, "name of the answering actor")                                            \
    F (pong, INT, sent_ms, "copied from the ping")                                                 \
    F (pong, BOOL, healthy, "false when the actor runs but a dependency is broken")                \
    F (pong, STR, detail, "optional actor-specific detail, e.g. the database state")               \
    END (pong)                                                                                     \
    /*  Errors travel as replies carrying the request's rid. */                                    \
    MSG (error, "a request could not be served")                                                   \
    F (error, STR, code, "snake_case reason, e.g. unknown_actor, actor_busy, bad_message")         \
    F (error, STR, message, "human sentence")                                                      \
    F (error, STR, target, "for routing errors: the address that could not be reached")            \
    END (error)                                                                                    \
    /*  Broker directory (address "broker"). */                                                    \
    MSG (actor_join, "an actor announces itself to the broker")                                    \
    F (actor_join, STR, actor, "the actor's name, equal to its socket routing id")                 \
    F (actor_join, INT, pid, "process id, to tell local from remote actors in listings")           \
    END (actor_join)                                                                               \
    MSG (actor_joined, "the broker's answer to actor_join: the actor is routable")                 \
    F (actor_joined, STR, actor, "the actor's name")                                               \
    END (actor_joined)                                                                             \
    MSG (actor_leave, "an actor is stopping; the broker forgets it")                               \
    F (actor_leave, STR, actor, "the actor's name")                                                \
    END (actor_leave)                                                                              \
    MSG (event, "publish on the event stream (PUB) via the broker")                                \
    F (event, STR, topic, "agent.online, agent.offline, agent.status, command.state, ...")         \
    F (event, STR, json, "the event body, a JSON object")                                          \
    END (event)                                                                                    \
    MSG (broker_stats, "ask the broker for its routing counters (answer: broker_stats)")           \
    F (broker_stats, STR, json,                                                                    \
       "in the answer: {\"actors\":{name:{\"in\":n,\"out\":n}},\"errors\":n}")                     \
    END (broker_stats)                                                                             \
    /*  Generic answer to a request from the edge or the admin socket: an   */                     \
    /*  HTTP-like status and a JSON body, or an error code and message.     */                     \
    MSG (reply, "answer to a request: status and JSON body, or an error")                          \
    F (reply, INT, status, "HTTP-like status: 200, 201, 204, 400, 404, 409, ...")                  \
    F (reply, STR, json, "the body, a JSON value (absent for 204 and errors)")                     \
    F (reply, STR, code, "for errors: snake_case code")                                            \
    F (reply, STR, message, "for errors: human sentence")                                          \
    END (reply)                                                                                    \
    /*  Agent sessions: edge <-> registry. conn is the edge's connection id. */                    \
    MSG (session_hello, "edge -> registry: a hello arrived on connection conn")                    \
    F (session_hello, INT, conn, "edge connection id")                                             \
    F (session_hello, STR, agent_id, "claimed agent id")                                           \
    F (session_hello, STR, token, "presented token (never stored)")                                \
    F (session_hello, STR, version, "agent software version")                                      \
    F (session_hello, STR, hostname, "agent host name")                                            \
    F (session_hello, STR, capabilities, "JSON array of strings")                                  \
    F (session_hello, STR, labels, "JSON object of strings")                                       \
    F (session_hello, STR, peer, "source address of the connection")                               \
    END (session_hello)                                                                            \
    MSG (session_challenge, "registry -> edge: send this Ed25519 challenge")                       \
    F (session_challenge, INT, conn, "edge connection id")                                         \
    F (session_challenge, STR, nonce, "base64 nonce to sign with agent_id appended")               \
    END (session_challenge)                                                                        \
    MSG (session_auth, "edge -> registry: the agent's answer to a challenge")                      \
    F (session_auth, INT, conn, "edge connection id")                                              \
    F (session_auth, STR, agent_id, "agent id of the pending hello")                               \
    F (session_auth, STR, signature, "base64 Ed25519 signature of nonce || agent_id")              \
    END (session_auth)                                                                             \
    MSG (session_welcome, "registry -> edge: the agent is authenticated")                          \
    F (session_welcome, INT, conn, "edge connection id")                                           \
    F (session_welcome, STR, agent_id, "agent id")                                                 \
    F (session_welcome, STR, session_id, "new session id")                                         \
    F (session_welcome, INT, heartbeat_interval_ms, "expected heartbeat interval")                 \
    END (session_welcome)                                                                          \
    MSG (session_reject, "registry -> edge: refuse the hello and close")                           \
    F (session_reject, INT, conn, "edge connection id")                                            \
    F (session_reject, STR, code, "error code for the error frame, e.g. unauthorized")             \
    F (session_reject, STR, message, "human sentence for the error frame")                         \
    F (session_reject, INT, close_code, "WebSocket close code: 4401, 4400, 1013")                  \
    END (session_reject)                                                                           \
    MSG (session_seen, "edge -> registry: frames arrived from a session")                          \
    F (session_seen, STR, agent_id, "agent id")                                                    \
    F (session_seen, STR, session_id, "session the frames came on")                                \
    F (session_seen, STR, status, "status a heartbeat reported, if any")                           \
    END (session_seen)                                                                             \
    MSG (session_closed, "edge -> registry: a welcomed session's connection closed")               \
    F (session_closed, INT, conn, "edge connection id")                                            \
    F (session_closed, STR, agent_id, "agent id")                                                  \
    F (session_closed, STR, session_id, "session id")                                              \
    END (session_closed)                                                                           \
    MSG (session_kick, "registry -> edge: close this session")                                     \
    F (session_kick, INT, conn, "edge connection id")                                              \
    F (session_kick, STR, session_id, "only if the connection still carries this session")         \
    F (session_kick, INT, close_code, "4409 replaced, 4401 revoked, 4408 heartbeat timeout")       \
    F (session_kick, STR, reason, "close reason text")                                             \
    END (session_kick)                                                                             \
    /*  Agents: registry/edge/admin -> store and registry. */                                      \
    MSG (agent_lookup, "registry -> store: credentials of an agent (answer: agent_record)")        \
    F (agent_lookup, STR, agent_id, "agent id")                                                    \
    END (agent_lookup)                                                                             \
    MSG (agent_record, "store -> registry: an agent's credentials and flags")                      \
    F (agent_record, STR, agent_id, "agent id")                                                    \
    F (agent_record, BOOL, found, "false if no such agent")                                        \
    F (agent_record, BIN, token_hash, "BLAKE2b-256 of the token")                                  \
    F (agent_record, BIN, public_key, "Ed25519 public key, if registered with one")                \
    F (agent_record, BOOL, revoked, "revoked agents are refused")                                  \
    F (agent_record, BOOL, maintenance, "operator maintenance flag")                               \
    END (agent_record)                                                                             \
    MSG (agent_state, "registry -> store: persist an agent's live state (no answer)")              \
    F (agent_state, STR, agent_id, "agent id")                                                     \
    F (agent_state, STR, event, "connect, disconnect or status")                                   \
    F (agent_state, STR, status, "online, degraded, maintenance, offline")                         \
    F (agent_state, STR, session_id, "current session, absent when offline")                       \
    F (agent_state, INT, connected_at, "ms since epoch, on connect")                               \
    F (agent_state, INT, last_seen, "ms since epoch")                                              \
    F (agent_state, STR, hostname, "on connect")                                                   \
    F (agent_state, STR, version, "on connect")                                                    \
    F (agent_state, STR, labels, "on connect: JSON object reported by the agent")                  \
    F (agent_state, STR, capabilities, "on connect: JSON array")                                   \
    END (agent_state)                                                                              \
    MSG (agent_create, "edge/admin -> store: register an agent (answer: reply 201 or 409)")        \
    F (agent_create, STR, agent_id, "agent id")                                                    \
    F (agent_create, STR, labels, "JSON object of strings")                                        \
    F (agent_create, BIN, public_key, "optional Ed25519 public key (32 bytes)")                    \
    F (agent_create, BIN, token_hash, "digest of the token shown once to the caller")              \
    END (agent_create)                                                                             \
    MSG (agent_get, "edge/admin -> store: one agent (answer: reply 200 or 404)")                   \
    F (agent_get, STR, agent_id, "agent id")                                                       \
    END (agent_get)                                                                                \
    MSG (agent_list, "edge/admin -> store: a page of agents (answer: reply 200)")                  \
    F (agent_list, STR, status, "filter: status, or absent")                                       \
    F (agent_list, STR, label_key, "filter: label key, or absent")                                 \
    F (agent_list, STR, label_value, "filter: label value")                                        \
    F (agent_list, INT, limit, "page size 1..1000")                                                \
    F (agent_list, STR, cursor, "opaque cursor from the previous page, or absent")                 \
    END (agent_list)                                                                               \
    MSG (agent_revoke,                                                                             \
         "edge/admin -> registry -> store: revoke an agent (answer: reply 204 or 404)")            \
    F (agent_revoke, STR, agent_id, "agent id")                                                    \
    END (agent_revoke)                                                                             \
    MSG (agent_maintenance,                                                                        \
         "edge/admin -> registry -> store: set the maintenance flag (answer: reply 200 agent)")    \
    F (agent_maintenance, STR, agent_id, "agent id")                                               \
    F (agent_maintenance, BOOL, enabled, "on or off")                                              \
    END (agent_maintenance)                                                                        \
    MSG (agent_disconnect,                                                                         \
         "admin -> registry: close an agent's session (answer: reply 200 or 404)")                 \
    F (agent_disconnect, STR, agent_id, "agent id")                                                \
    END (agent_disconnect)                                                                         \
    /*  Users and logins: edge/admin -> auth -> store. */                                          \
    MSG (user_create, "edge/admin -> auth: create a user (answer: reply 201 or 409)")              \
    F (user_create, STR, username, "user name")                                                    \
    F (user_create, STR, password, "clear text, hashed by auth with Argon2id")                     \
    F (user_create, STR, role, "admin, operator or viewer")                                        \
    END (user_create)                                                                              \
    MSG (user_insert, "auth -> store: insert a user (answer: reply 201 or 409)")                   \
    F (user_insert, STR, username, "user name")                                                    \
    F (user_insert, STR, password_hash, "crypto_pwhash_str output")                                \
    F (user_insert, STR, role, "admin, operator or viewer")                                        \
    END (user_insert)                                                                              \
    MSG (user_count, "auth -> store: how many users exist (answer: reply 200 {\"users\":n})")      \
    F (user_count, BOOL, all, "count every user (reserved; always true)")                          \
    END (user_count)                                                                               \
    MSG (user_get, "auth -> store: a user's hash and role (answer: user_record)")                  \
    F (user_get, STR, username, "user name")                                                       \
    END (user_get)                                                                                 \
    MSG (user_record, "store -> auth: a user's hash and role")                                     \
    F (user_record, BOOL, found, "false if no such user")                                          \
    F (user_record, STR, username, "user name")                                                    \
    F (user_record, STR, password_hash, "crypto_pwhash_str output")                                \
    F (user_record, STR, role, "admin, operator or viewer")                                        \
    F (user_record, BOOL, disabled, "disabled users cannot log in")                                \
    END (user_record)                                                                              \
    MSG (login, "edge -> auth: check a user's password (answer: login_result)")                    \
    F (login, STR, username, "user name")                                                          \
    F (login, STR, password, "clear text")                                                         \
    END (login)                                                                                    \
    MSG (login_result, "auth -> edge: the verdict")                                                \
    F (login_result, BOOL, ok, "password correct and user enabled")                                \
    F (login_result, STR, username, "user name")                                                   \
    F (login_result, STR, role, "role when ok")                                                    \
    END (login_result)                                                                             \
    /*  Audit log: anyone -> store. */                                                             \
    MSG (audit, "append an audit_logs row (no answer)")                                            \
    F (audit, INT, ts, "ms since epoch")                                                           \
    F (audit, STR, actor, "JWT sub, admin-socket or system")                                       \
    F (audit, STR, source, "client address")                                                       \
    F (audit, STR, action, "agent.create, agent.revoke, ... (SPEC §6)")                            \
    F (audit, STR, target, "what the action was about")                                            \
    F (audit, STR, outcome, "success or failure")                                                  \
    F (audit, STR, detail, "optional: error code or extra facts")                                  \
    END (audit)                                                                                    \
    MSG (audit_list, "edge -> store: a page of audit entries, newest first (answer: reply 200)")   \
    F (audit_list, STR, action, "filter, or absent")                                               \
    F (audit_list, STR, actor, "filter, or absent")                                                \
    F (audit_list, INT, from, "ts >= from (ms), 0 = no bound")                                     \
    F (audit_list, INT, to, "ts < to (ms), 0 = no bound")                                          \
    F (audit_list, INT, limit, "page size 1..1000")                                                \
    F (audit_list, STR, cursor, "opaque cursor from the previous page, or absent")                 \
    END (audit_list)

#endif
