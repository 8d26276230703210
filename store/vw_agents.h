/*  vw_agents - the agents table: registration, credentials, live state and
    the agent objects of the REST API. Called by the store actor only; every
    function uses the store's connection and returns plain values. */
#ifndef VW_AGENTS_H
#define VW_AGENTS_H

#include <stdbool.h>
#include <stdint.h>

#include "vw_db.h"
#include "vw_result.h"

//  At start-up: no session survived the previous run, so every agent is
//  offline without a session. Returns how many rows changed, or -1.
int vw_agents_reset_sessions (vw_db_t *db, int64_t now_ms);

//  POST /agents. 201 with {"agent_id", "token"} is built by the caller: the
//  result body is the stored agent object. 409 if it exists, 400 if
//  labels or the key are unacceptable.
void vw_agents_create (vw_db_t *db, const char *agent_id, const char *labels_json,
                       const uint8_t *public_key, size_t public_key_len, const uint8_t *token_hash,
                       size_t token_hash_len, int64_t now_ms, vw_result_t *result);

//  GET /agents/{id}: 200 agent object, or 404.
void vw_agents_get (vw_db_t *db, const char *agent_id, vw_result_t *result);

//  GET /agents: 200 {"agents":[…],"next_cursor":…}; 400 for a bad cursor.
void vw_agents_list (vw_db_t *db, const char *status, const char *label_key,
                     const char *label_value, int64_t limit, const char *cursor,
                     vw_result_t *result);

typedef struct {
    bool found;
    uint8_t token_hash[32];
    bool has_token_hash;
    uint8_t public_key[32];
    bool has_public_key;
    bool revoked;
    bool maintenance;
    //  The rest of the row, for the registry to answer GET /agents/{id}
    //  from memory while it holds the agent: JSON texts (NULL if the
    //  column is), times in ms (0 if never).
    char *labels, *hostname, *version, *reported_labels, *capabilities;
    int64_t created_at, connected_at, last_seen, connect_count, disconnect_count;
    //  After a rotation: the token before it, until previous_until (ms).
    uint8_t previous_token_hash[32];
    bool has_previous;
    int64_t previous_until;
} vw_agent_credentials_t;

//  A rotation: token_hash becomes the agent's token, the current one keeps
//  working until previous_until (ms). 200, 404 (unknown or revoked), 400.
void vw_agents_rotate (vw_db_t *db, const char *agent_id, const uint8_t *token_hash, size_t len,
                       int64_t previous_until, vw_result_t *result);
//  The agent has used its new token: the previous one stops. 0, or -1.
int vw_agents_token_settled (vw_db_t *db, const char *agent_id);

//  Credentials and the row for the registry's hello check. -1 on a
//  database error. Free with vw_agents_credentials_clear.
int vw_agents_credentials (vw_db_t *db, const char *agent_id, vw_agent_credentials_t *out);
void vw_agents_credentials_clear (vw_agent_credentials_t *cred);

//  Live state from the registry. event: "connect" (all fields, counts a
//  connection), "resume" (status, session and last_seen: a session the
//  registry took back from an edge), "disconnect" (offline, no session,
//  counts a disconnection) or "status" (status and last_seen). -1 on a database error. On connect
//  the hello's labels replace reported_labels (NULL: none); the operator's
//  labels, which targeting and label= filters read, are never touched.
int vw_agents_apply_state (vw_db_t *db, const char *agent_id, const char *event, const char *status,
                           const char *session_id, int64_t connected_at, int64_t last_seen,
                           const char *hostname, const char *version,
                           const char *reported_labels_json, const char *capabilities_json);

//  Heartbeats that changed nothing, in one batch from the registry: a JSON
//  array of [agent_id, last_seen ms]; last_seen only moves forward. -1 on
//  a database error or a malformed batch.
int vw_agents_seen (vw_db_t *db, const char *seen_json);

//  DELETE /agents/{id}: 204, or 404 (also for an agent already revoked).
void vw_agents_revoke (vw_db_t *db, const char *agent_id, int64_t now_ms, vw_result_t *result);

//  PUT /agents/{id}/maintenance: 200 agent object, or 404.
void vw_agents_set_maintenance (vw_db_t *db, const char *agent_id, bool enabled,
                                vw_result_t *result);

#endif
