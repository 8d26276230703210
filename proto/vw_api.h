/*  vw_api - operator requests, validated once for both front doors.

    The REST API (edge/vw_http.c) and the admin socket (actors/vw_admin.c)
    accept the same operations with the same rules. Each function here takes
    the request's arguments as a JSON object (the REST body, or the REST
    query string turned into an object of strings, or the admin op's args),
    checks every field, and builds the proto message to send — or fills
    *err with the status, code and a message naming the field.

    Types are strict (SPEC §6): in a JSON object an integer field takes a
    JSON integer only ("30000" is a 400 naming the field), a string field a
    string only. The one exception is the REST query string, where every
    value arrives as a string: the list requests read it through their
    query form (vw_api_agent_list, vw_api_command_list, vw_api_audit_list),
    which parses integers written in decimal; the admin socket's args, which
    are JSON, go through the _json forms.
*/
#ifndef VW_API_H
#define VW_API_H

#include <jansson.h>

#include "vw_msg.h"
#include "vw_token.h"

typedef struct {
    int status;        //  400 (bad field) unless stated
    const char *code;  //  "bad_request"
    char message[256];
} vw_api_error_t;

//  agents.create / POST /agents {"agent_id", "labels"?, "public_key"?}.
//  Also returns the new agent token (shown once) in token.
vw_msg_t *vw_api_agent_create (json_t *args, char token[VW_TOKEN_TEXT_LEN + 1],
                               vw_api_error_t *err);

//  agents.rotate_token {"agent_id", "grace_s"?} / POST /agents/{id}/token
//  {"grace_s"?} (id given, then agent_id is not allowed): a new token in
//  token (shown once); the current one keeps working for grace_s seconds
//  (0..30 days, default 86400) or until the agent uses the new one.
vw_msg_t *vw_api_agent_rotate (const char *id, json_t *args, int64_t now_ms,
                               char token[VW_TOKEN_TEXT_LEN + 1], vw_api_error_t *err);

//  GET /agents?status=&label=k:v&limit=&cursor= (limit 1..1000): query is
//  the query string as an object of strings; limit is a decimal integer.
vw_msg_t *vw_api_agent_list (json_t *query, vw_api_error_t *err);

//  agents.list (admin socket): the same from JSON args; limit must be a
//  JSON integer.
vw_msg_t *vw_api_agent_list_json (json_t *args, vw_api_error_t *err);

//  An agent id argument (agents.get, revoke, disconnect, maintenance).
const char *vw_api_agent_id (json_t *args, vw_api_error_t *err);

//  users.create / POST /users {"username", "password", "role"}.
vw_msg_t *vw_api_user_create (json_t *args, vw_api_error_t *err);

//  Users (issue 8). A username must match VW_ID_GRAMMAR (400 otherwise).
//  GET /users?limit=&cursor= (the query string) and users.list {limit?
//  1..1000, cursor?} (JSON).
vw_msg_t *vw_api_user_list (json_t *query, vw_api_error_t *err);
vw_msg_t *vw_api_user_list_json (json_t *args, vw_api_error_t *err);
//  users.get / GET /users/{name}.
vw_msg_t *vw_api_user_show (const char *username, vw_api_error_t *err);
//  users.update / PUT /users/{name} {"role"?, "password"?, "disabled"?}: at
//  least one; role one of admin, operator, viewer; password 8-1024
//  characters; disabled a boolean.
vw_msg_t *vw_api_user_update (const char *username, json_t *args, vw_api_error_t *err);
//  users.delete / DELETE /users/{name}.
vw_msg_t *vw_api_user_delete (const char *username, vw_api_error_t *err);
//  The "username" argument of the admin socket's users.* ops.
const char *vw_api_username (json_t *args, vw_api_error_t *err);

//  GET /audit?action=&actor=&from=&to=&limit=&cursor= (the query string;
//  integers in decimal).
vw_msg_t *vw_api_audit_list (json_t *query, vw_api_error_t *err);

struct vw_commands_t;

//  commands.submit / POST /commands {"agent_id" | "target":{"labels":{…}},
//  "type", "payload"?, "priority"?, "timeout_ms"?, "max_retries"?,
//  "expires_in_ms"?, "idempotency_key"?}. The type and payload are checked
//  against the catalogue (422 for an unknown type or a payload that does
//  not match its schema).
vw_msg_t *vw_api_command_submit (json_t *args, const struct vw_commands_t *commands,
                                 const char *created_by, vw_api_error_t *err);

//  GET /commands?agent_id=&state=&limit=&cursor= (the query string; limit
//  in decimal).
vw_msg_t *vw_api_command_list (json_t *query, vw_api_error_t *err);

//  commands.list (admin socket): the same from JSON args; limit must be a
//  JSON integer.
vw_msg_t *vw_api_command_list_json (json_t *args, vw_api_error_t *err);

//  telemetry.query / GET /telemetry/{agent_id}?metric=&from=&to=&step_ms=&agg=
//  (SPEC §6): to defaults to now, from to to - 1 h; agg (default avg) only
//  with step_ms; at most max_points points or buckets. From the query
//  string (query = true) integers are decimal strings. agent_id is the
//  path's, or NULL to take it from args (the admin socket).
vw_msg_t *vw_api_telemetry_query (json_t *args, bool query, const char *agent_id, int64_t now,
                                  int64_t max_points, vw_api_error_t *err);

//  Refuses keys other than `allowed` (NULL-terminated): a typo must not be
//  silently ignored. true if all keys are known.
bool vw_api_only (json_t *args, const char *const *allowed, vw_api_error_t *err);

#endif
