/*  vw_command_rows - the commands table (SPEC §5): submission with
    idempotency keys, the state transitions the scheduler and executor make,
    the command objects of the REST API, and the recovery scan after a
    restart. Called by the store actor only. */
#ifndef VW_COMMAND_ROWS_H
#define VW_COMMAND_ROWS_H

#include <stdbool.h>
#include <stdint.h>

#include "vw_db.h"
#include "vw_result.h"

typedef struct {
    const char *command_id;
    const char *agent_id;
    const char *type;
    const char *payload_json;  //  NULL = {}
    int priority;              //  0 high, 1 normal, 2 low
    int64_t timeout_ms;
    int64_t max_retries;
    int64_t created_at;
    int64_t expires_at;
    const char *created_by;
    const char *idempotency_key;  //  NULL = none
} vw_command_new_t;

const char *vw_command_priority_name (int priority);
//  "high" -> 0 ... ; -1 if unknown.
int vw_command_priority_parse (const char *name);

//  Inserts a pending command. 202 with the command object; with an
//  idempotency key already used, 202 with the first command and *replayed
//  set; 404 if the agent does not exist, 409 if it is revoked. *seq gets the
//  row's submit order (for the scheduler's FIFO).
void vw_command_rows_insert (vw_db_t *db, const vw_command_new_t *c, int64_t *seq, bool *replayed,
                             vw_result_t *result);

//  Agents (not revoked) whose labels include every key/value of
//  labels_json; a new JSON array of ids, or NULL on error.
json_t *vw_command_rows_targets (vw_db_t *db, const char *labels_json);

//  GET /commands/{id}: 200 command object or 404.
void vw_command_rows_get (vw_db_t *db, const char *command_id, vw_result_t *result);

//  GET /commands: 200 {"commands":[…],"next_cursor":…}, newest first.
void vw_command_rows_list (vw_db_t *db, const char *agent_id, const char *state, int64_t limit,
                           const char *cursor, vw_result_t *result);

//  Transitions; each returns 0 when applied, 1 when the row is unknown or
//  not in a state that allows the change (finished already), -1 on a
//  database error. `attempts` counts dispatches; `failures` the failed
//  attempts (timeouts and agent errors: what uses up max_retries and sets
//  the backoff). Each carries the command's whole state for its event, so
//  that writing the latest one again after a failed commit brings the row
//  to what the scheduler holds, whatever was lost before it.
//
//  pending: waiting for a retry at next_attempt_at, or (0) for its agent
//  after a lost or unsent attempt; a NULL failure_reason or error keeps
//  the row's. delivered_at is set only while executing.
int vw_command_rows_executing (vw_db_t *db, const char *command_id, int64_t attempt,
                               int64_t now_ms);
int vw_command_rows_delivered (vw_db_t *db, const char *command_id, int64_t now_ms);
//  The agent's latest progress (0..100, -1: none said) and message (NULL: none) of an
//  executing command; 0, 1 when it is not executing (nothing written), -1.
int vw_command_rows_progress (vw_db_t *db, const char *command_id, int64_t progress,
                              const char *message);
int vw_command_rows_pending (vw_db_t *db, const char *command_id, int64_t next_attempt_at,
                             const char *failure_reason, const char *error, int64_t failures,
                             int64_t attempts);
//  delivered_at: the attempt's ack time when known (0: delivered_at stays).
int vw_command_rows_finish (vw_db_t *db, const char *command_id, const char *state,
                            const char *failure_reason, const char *result_json, const char *error,
                            int64_t failures, int64_t attempts, int64_t now_ms,
                            int64_t delivered_at);

//  One unfinished command, as the recovery scan returns it. Strings are
//  borrowed from SQLite (valid during the callback), NUL-terminated, with
//  their lengths; next_attempt_at is 0 when the row has none.
typedef struct {
    const char *command_id, *agent_id, *type, *payload_json, *state;
    size_t command_id_len, agent_id_len, type_len, payload_len;
    int priority;
    int64_t seq, attempts, failures, max_retries, timeout_ms, expires_at, next_attempt_at;
} vw_command_row_t;

//  Returns false to stop after this row.
typedef bool (vw_command_row_fn) (void *arg, const vw_command_row_t *row);

//  Calls fn for up to `limit` pending or executing commands with seq > after,
//  in seq order (an index range scan: the cost is the rows returned, not the
//  table's history), until fn returns false; returns how many, or -1.
int vw_command_rows_unfinished (vw_db_t *db, int64_t after, int64_t limit, vw_command_row_fn *fn,
                                void *arg);

//  The state of a command: "pending", …, or NULL (not found). Caller frees.
char *vw_command_rows_state (vw_db_t *db, const char *command_id);

//  {"agents":{status:n},"commands":{state:n}} for GET /statistics.
json_t *vw_command_rows_counts (vw_db_t *db);

#endif
