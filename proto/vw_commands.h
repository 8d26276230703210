/*  vw_commands - the catalogue of command types and their payload schemas.

    A submitted command (POST /commands, the admin socket's commands.submit)
    names a type and carries a JSON payload; before it is queued the front
    doors ask this catalogue whether the type exists and the payload matches
    its schema (SPEC §5), and answer 422 when it does not (SPEC §6).

    Built-in types (always present):
        ping             {}
        exec             {cmd: non-empty string, args?: array of strings}
        restart_service  {name: non-empty string}
        update_config    {config: object}
        collect_logs     {since_ms?: integer >= 0, lines?: integer 1..1000000}
        upgrade          {version: non-empty string, url: non-empty string}

    More types are loaded at start from a JSON schema file:

        {"types": {
            "rotate_keys": {
                "description": "roll the gateway's WireGuard keys",
                "fields": {
                    "key_id": {"type": "string", "required": true, "min_length": 1,
                               "max_length": 64},
                    "force": {"type": "boolean"},
                    "grace_s": {"type": "integer", "min": 0, "max": 86400},
                    "peers": {"type": "array<string>"}
                },
                "additional": false
            }
        }}

    - Top level: exactly one key, "types", an object (may be empty).
    - Type names and field names: 1-64 characters of A-Z a-z 0-9 _ . -,
      starting with a letter or '_'. A type may not redefine a built-in, nor
      a type loaded from an earlier file.
    - A type: "fields" (object, optional = no fields), "additional"
      (boolean, default false), "description" (string). No other key.
    - A field: "type" (required) one of string, integer, number, boolean,
      object, array, array<string>; "required" (boolean, default false);
      "min"/"max" (integer and number fields only; JSON integers for an
      integer field); "min_length"/"max_length" (string fields only,
      integers >= 0, counted in Unicode characters); "description" (string).
      No other key; min <= max, min_length <= max_length.
    - Duplicate keys anywhere in the file are refused.
    Any violation makes vw_commands_load fail with a message naming the file
    and the entry ("types.rotate_keys.fields.key_id.type: ..."); the backend
    then refuses to start (exit 2). A failed load leaves the catalogue as it
    was.

    Validation rules (built-in and loaded types alike):
    - An absent or JSON null payload means {}; any other non-object is refused.
    - Unknown fields are refused, unless the type says "additional": true:
      a typo ("comd") must not be silently ignored and the field dropped.
    - A field present with JSON null is refused: omit an optional field
      instead (the payload is forwarded to agents verbatim, and they should
      not have to tell null from absent).
    - Integers must be JSON integers (5, not 5.0 nor "5"); "number" takes both.
    - Only top-level fields are checked, plus the elements of array<string>;
      objects and plain arrays are passed on as they are.
    - The first problem found is reported, in this order: the type, the
      payload's JSON type, unknown fields (in the payload's order), then the
      declared fields in name order - so a given request always gets the
      same message.

    Threading: the catalogue is built (new, load) by one thread at start and
    is read-only afterwards; validate, types and schema only read it and keep
    no hidden state, so any number of threads may call them concurrently.
*/
#ifndef VW_COMMANDS_H
#define VW_COMMANDS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "vw_api.h"

typedef struct vw_commands_t vw_commands_t;

//  A catalogue holding the built-in types only. NULL if out of memory.
vw_commands_t *vw_commands_new (void);

//  Adds the types of the schema file at `path`. 0 on success; -1 with a
//  message naming the path and the bad entry in err (errlen bytes, may be 0)
//  when the file cannot be read, is not JSON, or has an invalid shape. On
//  failure no type of the file is added.
int vw_commands_load (vw_commands_t *self, const char *path, char *err, size_t errlen);

//  Destroys the catalogue and NULLs *self_p; safe on NULL and twice.
void vw_commands_destroy (vw_commands_t **self_p);

//  0 if `type` is known and `payload` (NULL or JSON null = {}) matches its
//  schema. Otherwise -1 and *err is filled:
//    422 "unknown_command_type"  "unknown command type 'reboot' (known: collect_logs, ...)"
//    422 "invalid_payload"       "payload.cmd is required and must be a non-empty string",
//                                "payload.args[2] must be a string",
//                                "payload.comd is not a field of command type 'exec' (fields:
//                                args, cmd)", "payload must be an object", ...
//    400 "bad_request"           when `type` is NULL: "field 'type' is required and must be
//                                a string (known: ...)" - a malformed request, not a schema
//                                mismatch.
//  self and err must not be NULL (programming errors, asserted).
int vw_commands_validate (const vw_commands_t *self, const char *type, const json_t *payload,
                          vw_api_error_t *err);

//  True if `type` is a known command type.
bool vw_commands_has (const vw_commands_t *self, const char *type);

//  Names of all known types, sorted (strcmp order), as a new JSON array the
//  caller owns. NULL if out of memory.
json_t *vw_commands_types (const vw_commands_t *self);

//  The schema of one type, in the schema file's format plus "builtin": bool,
//  as a new JSON object the caller owns (for docs and GET endpoints). NULL if
//  the type is unknown or out of memory.
json_t *vw_commands_schema (const vw_commands_t *self, const char *type);

#endif
