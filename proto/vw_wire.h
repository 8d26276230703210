/*  vw_wire - the agent wire codec (SPEC §3, protocol v1).

    Agents speak JSON text frames (subprotocol "viworks.v1.json") or msgpack
    binary frames ("viworks.v1.msgpack"); both carry the same shape. A frame
    in either format is parsed into the same jansson tree, then validated
    against the message's schema, so one set of rules serves both formats.
    Outgoing messages are built as jansson trees and serialised into either
    format.

    Nothing here trusts its input: every decoder returns an error value for
    truncated, oversized, deeply nested, mistyped or otherwise malformed
    frames, and never crashes or allocates in proportion to a claimed (rather
    than actual) size. msgpack input is checked with vw_mpack_check first.
*/
#ifndef VW_WIRE_H
#define VW_WIRE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VW_WIRE_SUBPROTO_JSON    "viworks.v1.json"
#define VW_WIRE_SUBPROTO_MSGPACK "viworks.v1.msgpack"

//  Nesting limit for any agent frame (objects/arrays inside one another).
#define VW_WIRE_MAX_DEPTH 16
//  Limits inside a telemetry message.
#define VW_WIRE_MAX_POINTS  10000
#define VW_WIRE_MAX_METRICS 256

typedef enum { VW_WIRE_JSON = 0, VW_WIRE_MSGPACK = 1 } vw_wire_format_t;

typedef enum {
    VW_WIRE_UNKNOWN = 0,
    //  agent -> backend
    VW_WIRE_HELLO,
    VW_WIRE_AUTH,
    VW_WIRE_HEARTBEAT,
    VW_WIRE_TELEMETRY,
    VW_WIRE_COMMAND_ACK,
    VW_WIRE_COMMAND_PROGRESS,
    VW_WIRE_COMMAND_RESULT,
    //  backend -> agent (decodable too, for our own agent and tests)
    VW_WIRE_WELCOME,
    VW_WIRE_CHALLENGE,
    VW_WIRE_ERROR,
    VW_WIRE_COMMAND,
    VW_WIRE_CANCEL,
    VW_WIRE_TELEMETRY_ACK,
} vw_wire_type_t;

typedef struct {
    //  "malformed"       - not JSON / not msgpack / not an object / too deep /
    //                      bad UTF-8 / non-string map key / bin or ext value
    //  "invalid_message" - no or non-string "type", or a field missing or of
    //                      the wrong type or out of range (message names it)
    //  "unknown_type"    - "type" names no message of the protocol
    char code[32];
    char message[256];
    //  A refused telemetry frame's seq, once it was read (so the error frame
    //  can name the frame); -1 otherwise.
    int64_t seq;
} vw_wire_error_t;

//  A decoded, validated message. Every pointer is borrowed from `root` and
//  valid until vw_wire_msg_reset; absent optional fields are NULL (strings,
//  json_t *) or the stated sentinel.
typedef struct {
    vw_wire_type_t type;
    json_t *root;  //  owned: the whole validated frame

    const char *agent_id;  //  hello (required, 1..128 of [A-Za-z0-9_.:-])
    const char *token;     //  hello (required string, 1..512 bytes)
    const char *version;   //  hello (optional, <= 128 bytes)
    const char *hostname;  //  hello (optional, <= 255 bytes)
    json_t *capabilities;  //  hello (optional array of strings, <= 64 items)
    json_t *labels;        //  hello (optional object of string values, <= 64 keys)

    const char *signature;  //  auth (required base64 text)

    const char *status;  //  heartbeat: optional, online|degraded|maintenance
                         //  command_result: required, completed|failed

    int64_t seq;     //  telemetry (required, >= 0); telemetry_ack
    json_t *points;  //  telemetry: 1..VW_WIRE_MAX_POINTS objects
                     //  {"ts": int >= 0, "metrics": {name: finite number}}
                     //  names match [A-Za-z0-9_.:-]{1,64}, 1..VW_WIRE_MAX_METRICS per point

    const char *command_id;  //  command_ack/_progress/_result, command, cancel (1..128 bytes)
    int progress;            //  command_progress: 0..100, -1 when absent
    const char *message;     //  command_progress (optional), error (optional)
    json_t *result;          //  command_result (optional, any JSON value)
    const char *error;       //  command_result (optional string)

    //  backend -> agent fields, filled when decoding those types
    const char *session_id;         //  welcome
    int64_t heartbeat_interval_ms;  //  welcome
    int64_t server_time;            //  welcome
    const char *nonce;              //  challenge
    const char *code;               //  error
    int64_t retry_after_ms;         //  error (optional, 0..VW_WIRE_RETRY_AFTER_MAX_MS; 0 if absent)
                             //  error: seq (optional) names the telemetry frame; -1 if absent
    const char *command_type;  //  command
    json_t *payload;           //  command (object)
    int64_t timeout_ms;        //  command
    int64_t attempt;           //  command; command_result (optional echo, 0 if absent)
} vw_wire_msg_t;

//  Parses one frame into a JSON object tree without validating its type.
//  Returns a new reference (caller decrefs) or NULL with *err set.
json_t *vw_wire_parse (vw_wire_format_t format, const void *data, size_t size,
                       vw_wire_error_t *err);

//  Parses and validates one frame. Returns 0 and fills *msg (call
//  vw_wire_msg_reset when done), or -1 with *err set and *msg reset.
int vw_wire_decode (vw_wire_format_t format, const void *data, size_t size, vw_wire_msg_t *msg,
                    vw_wire_error_t *err);

//  Releases msg->root and zeroes msg. Safe on a zeroed or reset msg.
void vw_wire_msg_reset (vw_wire_msg_t *msg);

//  Serialises a JSON value (normally an object) in the given format. Returns
//  0 and a malloc'd buffer in *data (caller frees) with *size, or -1.
//  JSON output is compact; msgpack uses the smallest encodings.
int vw_wire_serialize (vw_wire_format_t format, const json_t *value, uint8_t **data, size_t *size);

const char *vw_wire_type_name (vw_wire_type_t type);
vw_wire_type_t vw_wire_type_from_name (const char *name);

//  Builders for backend -> agent messages (new references).
json_t *vw_wire_welcome (const char *session_id, int64_t heartbeat_interval_ms,
                         int64_t server_time);
json_t *vw_wire_error (const char *code, const char *message);
//  An error that tells the agent when to try again (SPEC §3: a refused
//  hello during a reconnect storm, close 1013).
#define VW_WIRE_RETRY_AFTER_MAX_MS 3600000
json_t *vw_wire_error_retry (const char *code, const char *message, int64_t retry_after_ms);
json_t *vw_wire_challenge (const char *nonce_b64);
json_t *vw_wire_command (const char *command_id, const char *command_type,
                         json_t *payload /* borrowed, copied */, int64_t timeout_ms,
                         int64_t attempt);
json_t *vw_wire_cancel (const char *command_id);
json_t *vw_wire_telemetry_ack (int64_t seq);

//  True if s is 1..maxlen characters of [A-Za-z0-9_.:-].
bool vw_wire_valid_name (const char *s, size_t maxlen);

//  The grammar of agent ids and usernames (SPEC §6):
//  [A-Za-z0-9][A-Za-z0-9_.:-]{0,127}. The first character being a letter
//  or digit rules out "." and ".." and anything that looks like an option;
//  no slash, no control character, nothing that needs percent-encoding.
#define VW_ID_MAX     128
#define VW_ID_GRAMMAR "[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}"
bool vw_wire_valid_id (const char *s);

#endif
