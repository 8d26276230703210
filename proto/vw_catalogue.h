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
    F (ping, INT, instance, "to the broker: the sender's process instance (a heartbeat), or 0")    \
    END (ping)                                                                                     \
    /*  Batching: the messages an actor sends one destination during one */                        \
    /*  loop pass travel as one bundle (vw_actor); receivers unpack it.   */                       \
    MSG (bundle, "several messages for one destination, sent as one")                              \
    F (bundle, BIN, msgs, "records: u8 name length, name, u64 rid, u32 body length, body")         \
    F (bundle, INT, count, "messages in msgs")                                                     \
    END (bundle)                                                                                   \
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
    F (actor_join, INT, instance, "random per process start: tells a restart from a duplicate")    \
    END (actor_join)                                                                               \
    MSG (actor_joined, "the broker's answer to actor_join: the actor is routable")                 \
    F (actor_joined, STR, actor, "the actor's name")                                               \
    END (actor_joined)                                                                             \
    MSG (actor_leave, "an actor is stopping; the broker forgets it")                               \
    F (actor_leave, STR, actor, "the actor's name")                                                \
    F (actor_leave, INT, instance, "the leaving process's instance (0: any)")                      \
    END (actor_leave)                                                                              \
    MSG (actor_watch, "tell me when an actor whose name starts with prefix is gone (actor_lost)")  \
    F (actor_watch, STR, prefix, "e.g. edge: every agent edge, edge@host-a included")              \
    END (actor_watch)                                                                              \
    MSG (actor_lost, "broker -> watchers: an actor left, fell silent, or was replaced")            \
    F (actor_lost, STR, actor, "the actor's name")                                                 \
    F (actor_lost, STR, reason,                                                                    \
       "left, silent (no heartbeat within broker.peer_timeout), replaced")                         \
    END (actor_lost)                                                                               \
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
    MSG (session_resync, "edge -> registry: the sessions it holds, after it lost the core")        \
    F (session_resync, STR, sessions, "JSON array of [conn, agent_id, session_id]")                \
    END (session_resync)                                                                           \
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
    F (agent_record, BIN, previous_token_hash,                                                     \
       "the token before a rotation, while it still works")                                        \
    F (agent_record, INT, previous_until, "ms: the previous token works until then")               \
    F (agent_record, BOOL, maintenance, "operator maintenance flag")                               \
    F (agent_record, STR, labels, "the operator's labels (JSON object)")                           \
    F (agent_record, STR, hostname, "as last reported, or absent")                                 \
    F (agent_record, STR, version, "as last reported, or absent")                                  \
    F (agent_record, STR, reported_labels, "the last hello's labels (JSON object)")                \
    F (agent_record, STR, capabilities, "the last hello's capabilities (JSON array), or absent")   \
    F (agent_record, INT, created_at, "ms since epoch")                                            \
    F (agent_record, INT, connected_at, "ms since epoch, 0 if never")                              \
    F (agent_record, INT, last_seen, "ms since epoch, 0 if never")                                 \
    F (agent_record, INT, connect_count, "connections so far")                                     \
    F (agent_record, INT, disconnect_count, "disconnections so far")                               \
    END (agent_record)                                                                             \
    MSG (agent_state, "registry -> store: persist an agent's live state (no answer)")              \
    F (agent_state, STR, agent_id, "agent id")                                                     \
    F (agent_state, STR, event, "connect, resume (a session taken back), disconnect or status")    \
    F (agent_state, STR, status, "online, degraded, maintenance, offline")                         \
    F (agent_state, STR, session_id, "current session, absent when offline")                       \
    F (agent_state, INT, connected_at, "ms since epoch, on connect")                               \
    F (agent_state, INT, last_seen, "ms since epoch")                                              \
    F (agent_state, STR, hostname, "on connect")                                                   \
    F (agent_state, STR, version, "on connect")                                                    \
    F (agent_state, STR, reported_labels,                                                          \
       "on connect: the hello's labels (JSON object), never the operator's")                       \
    F (agent_state, STR, capabilities, "on connect: JSON array")                                   \
    END (agent_state)                                                                              \
    MSG (agent_create, "edge/admin -> store: register an agent (answer: reply 201 or 409)")        \
    F (agent_create, STR, agent_id, "agent id")                                                    \
    F (agent_create, STR, labels, "JSON object of strings")                                        \
    F (agent_create, BIN, public_key, "optional Ed25519 public key (32 bytes)")                    \
    F (agent_create, BIN, token_hash, "digest of the token shown once to the caller")              \
    END (agent_create)                                                                             \
    MSG (agent_get, "edge/admin -> registry (-> store): one agent (answer: reply 200 or 404)")     \
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
    MSG (agent_rotate, "edge/admin -> registry -> store: a new token (answer: reply 200 or 404)")  \
    F (agent_rotate, STR, agent_id, "agent id")                                                    \
    F (agent_rotate, BIN, token_hash, "the new token's hash")                                      \
    F (agent_rotate, INT, previous_until, "ms: the current token keeps working until then")        \
    END (agent_rotate)                                                                             \
    MSG (agent_token_settled, "registry -> store: the agent used its new token; forget the old")   \
    F (agent_token_settled, STR, agent_id, "agent id")                                             \
    END (agent_token_settled)                                                                      \
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
    F (user_insert, INT, gen, "token generation the user starts with (random, drawn by auth)")     \
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
    F (user_record, INT, gen, "token generation: tokens carry it, a change draws a new one")       \
    END (user_record)                                                                              \
    MSG (login, "edge -> auth: check a user's password (answer: login_result)")                    \
    F (login, STR, username, "user name")                                                          \
    F (login, STR, password, "clear text")                                                         \
    END (login)                                                                                    \
    MSG (login_result, "auth -> edge: the verdict")                                                \
    F (login_result, BOOL, ok, "password correct and user enabled")                                \
    F (login_result, STR, username, "user name")                                                   \
    F (login_result, STR, role, "role when ok")                                                    \
    F (login_result, INT, gen, "when ok: the token generation to sign into the token")             \
    END (login_result)                                                                             \
    /*  User management and token revocation (issue 8): edge/admin -> auth   */                    \
    /*  (the owner of users) -> store; auth pushes token_table to api edges. */                    \
    MSG (user_list, "edge/admin -> auth: a page of users by name (answer: reply 200)")             \
    F (user_list, INT, limit, "page size 1..1000")                                                 \
    F (user_list, STR, cursor, "opaque cursor from the previous page, or absent")                  \
    END (user_list)                                                                                \
    MSG (user_show, "edge/admin -> auth: one user, never its hash (answer: reply 200 or 404)")     \
    F (user_show, STR, username, "user name")                                                      \
    END (user_show)                                                                                \
    MSG (user_update, "edge/admin -> auth: change role, password, disabled (answer: reply 200)")   \
    F (user_update, STR, username, "user name")                                                    \
    F (user_update, STR, role, "new role, or absent")                                              \
    F (user_update, STR, password, "new password in clear, or absent")                             \
    F (user_update, BOOL, set_disabled, "true when disabled is given")                             \
    F (user_update, BOOL, disabled, "new disabled flag (with set_disabled)")                       \
    END (user_update)                                                                              \
    MSG (user_delete, "edge/admin -> auth: delete a user (answer: reply 204 or 404)")              \
    F (user_delete, STR, username, "user name")                                                    \
    END (user_delete)                                                                              \
    MSG (user_save, "auth -> store: persist a user change (answer: reply 200 user+gen, 404)")      \
    F (user_save, STR, username, "user name")                                                      \
    F (user_save, STR, password_hash, "new hash, or absent")                                       \
    F (user_save, STR, role, "new role, or absent")                                                \
    F (user_save, BOOL, set_disabled, "true when disabled is given")                               \
    F (user_save, BOOL, disabled, "new disabled flag")                                             \
    F (user_save, INT, gen, "the new token generation")                                            \
    END (user_save)                                                                                \
    MSG (user_remove, "auth -> store: delete a user row (answer: reply 204 or 404)")               \
    F (user_remove, STR, username, "user name")                                                    \
    END (user_remove)                                                                              \
    MSG (users_load, "auth -> store: every user and live denied jti (answer: reply 200)")          \
    F (users_load, INT, now_s, "denied entries with exp <= now_s are left out")                    \
    END (users_load)                                                                               \
    MSG (token_revoke, "edge -> auth: POST /auth/logout, deny this token (answer: reply 204)")     \
    F (token_revoke, STR, username, "the token's sub")                                             \
    F (token_revoke, STR, jti, "the token's jti (absent: every token of the user ends)")           \
    F (token_revoke, INT, exp, "the token's exp, seconds: kept on the deny-list until then")       \
    END (token_revoke)                                                                             \
    MSG (token_deny, "auth -> store: persist a denied jti until exp (answer: reply 204)")          \
    F (token_deny, STR, jti, "token id")                                                           \
    F (token_deny, STR, username, "the token's sub")                                               \
    F (token_deny, INT, exp, "seconds since the epoch")                                            \
    END (token_deny)                                                                               \
    MSG (token_grant, "admin -> auth: may a token be minted for this user? (answer: reply 200)")   \
    F (token_grant, STR, username, "the token's sub: a live, enabled user")                        \
    F (token_grant, STR, role, "requested role, at most the user's; absent: the user's")           \
    END (token_grant)                                                                              \
    MSG (token_sync, "api edge -> auth: send me the whole table (auth pushes a full token_table)") \
    F (token_sync, BOOL, full, "always true")                                                      \
    END (token_sync)                                                                               \
    MSG (token_table, "auth -> api edges: who may hold tokens; full, or a change to merge")        \
    F (token_table, BOOL, full, "replace the whole table (else merge)")                            \
    F (token_table, STR, users, "JSON object: name -> [gen, role, disabled], or null: deleted")    \
    F (token_table, STR, denied, "JSON object: jti -> exp (seconds)")                              \
    END (token_table)                                                                              \
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
    END (audit_list)                                                                               \
    /*  Commands (SPEC §5): edge/admin -> scheduler -> store; scheduler ->    */                  \
    /*  executor -> edge -> agent; agent -> edge -> executor -> scheduler.   */                    \
    MSG (command_submit, "edge/admin -> scheduler: submit (answer: reply 202)")                    \
    F (command_submit, STR, agent_id, "target agent, or absent with labels")                       \
    F (command_submit, STR, labels, "JSON object: fan out to every agent with these labels")       \
    F (command_submit, STR, type, "command type, validated by the caller")                         \
    F (command_submit, STR, payload, "JSON object")                                                \
    F (command_submit, INT, priority, "0 high, 1 normal, 2 low")                                   \
    F (command_submit, INT, timeout_ms, "per attempt")                                             \
    F (command_submit, INT, max_retries, "0..10")                                                  \
    F (command_submit, INT, expires_in_ms, "pending for at most this long")                        \
    F (command_submit, STR, idempotency_key, "optional")                                           \
    F (command_submit, STR, created_by, "JWT sub or admin-socket")                                 \
    END (command_submit)                                                                           \
    MSG (agents_seen,                                                                              \
         "registry -> store: last_seen of agents heard from, once an interval (no answer)")        \
    F (agents_seen, STR, seen, "JSON array of [agent_id, last_seen ms]")                           \
    END (agents_seen)                                                                              \
    MSG (command_insert, "scheduler -> store: insert pending rows (answer: command_inserted)")     \
    F (command_insert, STR, command_id, "new id (fan-out: a prefix, one id per agent)")            \
    F (command_insert, STR, agent_id, "target agent, or absent with labels")                       \
    F (command_insert, STR, labels, "JSON object selector for fan-out")                            \
    F (command_insert, STR, type, "command type")                                                  \
    F (command_insert, STR, payload, "JSON object")                                                \
    F (command_insert, INT, priority, "0..2")                                                      \
    F (command_insert, INT, timeout_ms, "per attempt")                                             \
    F (command_insert, INT, max_retries, "0..10")                                                  \
    F (command_insert, INT, created_at, "ms")                                                      \
    F (command_insert, INT, expires_at, "ms")                                                      \
    F (command_insert, STR, created_by, "who")                                                     \
    F (command_insert, STR, idempotency_key, "optional")                                           \
    END (command_insert)                                                                           \
    MSG (command_inserted, "store -> scheduler: the rows are committed")                           \
    F (command_inserted, INT, status, "202, or an error status")                                   \
    F (command_inserted, STR, json, "the answer's body")                                           \
    F (command_inserted, STR, code, "for errors")                                                  \
    F (command_inserted, STR, message, "for errors")                                               \
    F (command_inserted, STR, rows, "JSON array of new rows to queue: [id, agent, seq]")           \
    F (command_inserted, STR, request_id,                                                          \
       "the insert's command_id, echoed: a late answer is matched")                                \
    END (command_inserted)                                                                         \
    MSG (command_update,                                                                           \
         "scheduler/executor -> store: persist a transition (answer, if ack: reply 200/409/503)")  \
    F (command_update, STR, command_id, "command")                                                 \
    F (command_update, STR, event, "executing, pending, finish; delivered, progress")              \
    F (command_update, INT, attempt, "attempts so far (executing: this attempt's number)")         \
    F (command_update, STR, state, "finish: completed, failed, cancelled")                         \
    F (command_update, STR, failure_reason, "pending/finish: the last failure's reason")           \
    F (command_update, STR, result, "finish: JSON value")                                          \
    F (command_update, STR, error, "pending/finish: the failed attempt's error text")              \
    F (command_update, INT, next_attempt_at, "pending: ms, 0 when it waits for its agent")         \
    F (command_update, INT, failures, "pending/finish: failed attempts so far")                    \
    F (command_update, INT, ts, "ms")                                                              \
    F (command_update, INT, delivered_at, "finish: the attempt's ack (ms), 0 if not known")        \
    F (command_update, INT, progress, "progress: 0..100")                                          \
    F (command_update, STR, message, "progress: the agent's message, if any")                      \
    F (command_update, BOOL, ack, "answer after the commit: 200 applied, 409 not, 503 not stored") \
    F (command_update, BOOL, want_row, "with ack: the 200 carries the row as committed")           \
    END (command_update)                                                                           \
    MSG (command_get, "edge/admin -> store: one command (answer: reply 200/404)")                  \
    F (command_get, STR, command_id, "command")                                                    \
    END (command_get)                                                                              \
    MSG (command_list, "edge/admin -> store: a page of commands (answer: reply 200)")              \
    F (command_list, STR, agent_id, "filter")                                                      \
    F (command_list, STR, state, "filter")                                                         \
    F (command_list, INT, limit, "1..1000")                                                        \
    F (command_list, STR, cursor, "opaque cursor")                                                 \
    END (command_list)                                                                             \
    MSG (command_cancel, "edge/admin -> scheduler: cancel (answer: reply 200/404/409)")            \
    F (command_cancel, STR, command_id, "command")                                                 \
    F (command_cancel, STR, actor, "who asks")                                                     \
    END (command_cancel)                                                                           \
    MSG (commands_load,                                                                            \
         "scheduler -> store: unfinished commands after seq (answer: commands_page)")              \
    F (commands_load, INT, after, "seq")                                                           \
    F (commands_load, INT, limit, "page size")                                                     \
    END (commands_load)                                                                            \
    MSG (commands_page, "store -> scheduler: a page of unfinished commands")                       \
    F (commands_page, BIN, rows, "the rows, packed by vw_cmdpage (msgpack, positional)")           \
    F (commands_page, INT, count, "rows in this page")                                             \
    F (commands_page, INT, last, "seq of the last row")                                            \
    F (commands_page, BOOL, more, "more rows may follow (full by count or by bytes)")              \
    END (commands_page)                                                                            \
    MSG (agent_presence, "registry -> scheduler: whether an agent can take commands now")          \
    F (agent_presence, STR, agent_id, "agent")                                                     \
    F (agent_presence, BOOL, dispatchable, "online or degraded, not in maintenance")               \
    F (agent_presence, INT, conn, "edge connection of the session, 0 if none")                     \
    F (agent_presence, STR, edge, "the edge actor holding the session, absent if none")            \
    F (agent_presence, BOOL, revoked, "the agent was revoked")                                     \
    F (agent_presence, STR, capabilities,                                                          \
       "with a session: JSON array of the command types its hello listed; absent if none given")   \
    END (agent_presence)                                                                           \
    MSG (command_dispatch, "scheduler -> executor: send this attempt")                             \
    F (command_dispatch, STR, command_id, "command")                                               \
    F (command_dispatch, STR, agent_id, "agent")                                                   \
    F (command_dispatch, INT, conn, "edge connection")                                             \
    F (command_dispatch, STR, edge, "the edge actor holding that connection")                      \
    F (command_dispatch, STR, type, "command type")                                                \
    F (command_dispatch, STR, payload, "JSON object")                                              \
    F (command_dispatch, INT, timeout_ms, "from the send")                                         \
    F (command_dispatch, INT, attempt, "1-based")                                                  \
    END (command_dispatch)                                                                         \
    MSG (command_abort, "scheduler -> executor: stop an executing command (cancel sent)")          \
    F (command_abort, STR, command_id, "command")                                                  \
    F (command_abort, INT, attempt, "the attempt to stop; 0: whichever is in flight")              \
    END (command_abort)                                                                            \
    MSG (command_send, "executor -> edge: write a command or cancel frame to an agent")            \
    F (command_send, INT, conn, "edge connection")                                                 \
    F (command_send, STR, agent_id, "the agent the session must be (else undeliverable)")          \
    F (command_send, STR, command_id, "command")                                                   \
    F (command_send, STR, type, "command type; absent for a cancel frame")                         \
    F (command_send, STR, payload, "JSON object")                                                  \
    F (command_send, INT, timeout_ms, "per attempt")                                               \
    F (command_send, INT, attempt, "1-based")                                                      \
    END (command_send)                                                                             \
    MSG (command_event, "edge -> executor: an agent answered, or a send failed")                   \
    F (command_event, INT, conn, "edge connection")                                                \
    F (command_event, STR, agent_id, "agent")                                                      \
    F (command_event, STR, command_id, "command")                                                  \
    F (command_event, STR, kind, "ack, progress, result, undeliverable")                           \
    F (command_event, STR, status, "result: completed or failed")                                  \
    F (command_event, STR, result, "result: JSON value")                                           \
    F (command_event, STR, error, "result: error text")                                            \
    F (command_event, INT, progress, "progress: 0..100")                                           \
    F (command_event, STR, message, "progress: the agent's message, if any")                       \
    F (command_event, INT, attempt, "result: the attempt it answers, 0 if the agent did not say")  \
    END (command_event)                                                                            \
    MSG (command_outcome, "executor -> scheduler: how an attempt ended")                           \
    F (command_outcome, STR, command_id, "command")                                                \
    F (command_outcome, STR, outcome, "completed, failed, lost, unsent")                           \
    F (command_outcome, INT, attempt, "the attempt that ended")                                    \
    F (command_outcome, STR, result, "JSON value")                                                 \
    F (command_outcome, STR, error, "agent's error text")                                          \
    F (command_outcome, INT, conn, "the session the attempt went to")                              \
    F (command_outcome, INT, delivered_at, "the agent's ack (ms) not yet written, 0 if none")      \
    END (command_outcome)                                                                          \
    MSG (telemetry_frame, "edge -> telemetry: a valid telemetry frame of a welcomed session")      \
    F (telemetry_frame, INT, conn, "edge connection id")                                           \
    F (telemetry_frame, STR, agent_id, "agent id")                                                 \
    F (telemetry_frame, INT, seq, "the agent's seq for the frame")                                 \
    F (telemetry_frame, BIN, points, "the points, packed by vw_points")                            \
    END (telemetry_frame)                                                                          \
    MSG (telemetry_write, "telemetry -> store: store a frame once per seq (answer: reply)")        \
    F (telemetry_write, STR, agent_id, "agent id")                                                 \
    F (telemetry_write, INT, seq, "the agent's seq")                                               \
    F (telemetry_write, BIN, points, "packed by vw_points")                                        \
    END (telemetry_write)                                                                          \
    MSG (telemetry_acked, "telemetry -> edge: a frame is durable (or was not stored)")             \
    F (telemetry_acked, INT, conn, "edge connection id")                                           \
    F (telemetry_acked, INT, seq, "the frame's seq")                                               \
    F (telemetry_acked, BOOL, stored, "true: send telemetry_ack; false: send an error")            \
    F (telemetry_acked, STR, code, "not stored: error code for the agent")                         \
    F (telemetry_acked, STR, message, "not stored: why")                                           \
    END (telemetry_acked)                                                                          \
    MSG (telemetry_summary, "edge/admin -> store: an agent's telemetry summary (answer: reply)")   \
    F (telemetry_summary, STR, agent_id, "agent id")                                               \
    F (telemetry_summary, INT, now, "the windows end here (ms)")                                   \
    END (telemetry_summary)                                                                        \
    MSG (agent_alerting, "telemetry -> registry: a degrading alert fires for an agent, or none")   \
    F (agent_alerting, STR, agent_id, "agent id")                                                  \
    F (agent_alerting, BOOL, alerting, "true while one fires: the agent is degraded")              \
    END (agent_alerting)                                                                           \
    MSG (telemetry_expire, "telemetry -> store: one step of retention (answer: reply)")            \
    F (telemetry_expire, INT, raw_before, "frames wholly before this go (ms)")                     \
    F (telemetry_expire, INT, m1_before, "1-minute buckets before this go")                        \
    F (telemetry_expire, INT, h1_before, "1-hour buckets before this go")                          \
    F (telemetry_expire, INT, budget, "at most this many frames in this step")                     \
    END (telemetry_expire)                                                                         \
    MSG (telemetry_query, "edge/admin -> store: an agent's points (answer: reply)")                \
    F (telemetry_query, STR, agent_id, "agent id")                                                 \
    F (telemetry_query, STR, metric, "one metric, or absent for all")                              \
    F (telemetry_query, INT, from, "ms, inclusive")                                                \
    F (telemetry_query, INT, to, "ms, exclusive")                                                  \
    F (telemetry_query, INT, step_ms, "bucket width; 0: raw points")                               \
    F (telemetry_query, STR, agg, "with step_ms: avg, min, max, sum, count, last")                 \
    F (telemetry_query, INT, max_points, "bound on the answer (400 above)")                        \
    END (telemetry_query)                                                                          \
    MSG (metrics_text, "answer to a stats_query for prometheus: text exposition 0.0.4")            \
    F (metrics_text, STR, text, "HELP, TYPE and sample lines")                                     \
    F (metrics_text, INT, received, "messages the actor had taken from its socket by then")        \
    END (metrics_text)                                                                             \
    MSG (stats_query,                                                                              \
         "edge/admin -> scheduler, store, telemetry: figures for /statistics (answer: reply)")     \
    F (stats_query, INT, window_ms, "the window for rates and percentiles")                        \
    F (stats_query, STR, format, "absent: JSON (reply); prometheus: metrics_text")                 \
    END (stats_query)                                                                              \
    MSG (db_backup, "admin -> store: an online copy of the database (answer: reply 200/400/409)")  \
    F (db_backup, STR, path, "absolute path on the backend's host, not existing")                  \
    END (db_backup)

/*  The messages that answer a request: they carry the request's rid back to
    its sender. Everything else in the catalogue is a request or a one-way
    message, and vw_pending never takes one as an answer, whatever its rid
    (rids are per-actor counters, so another actor's request can carry the
    rid of one of ours). broker_stats is both the question and the answer;
    the answer is told apart by coming from the broker it was sent to.
    Every "(answer: X)" in a message's description names one of these
    (tests/unit/test_pending.c checks it). */
#define VW_CATALOGUE_REPLIES(X)                                                                    \
    X (pong)                                                                                       \
    X (error)                                                                                      \
    X (actor_joined)                                                                               \
    X (broker_stats)                                                                               \
    X (reply)                                                                                      \
    X (agent_record)                                                                               \
    X (user_record)                                                                                \
    X (login_result)                                                                               \
    X (command_inserted)                                                                           \
    X (commands_page)                                                                              \
    X (metrics_text)

#endif
