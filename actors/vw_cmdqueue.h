/*  vw_cmdqueue - which command goes to which agent next (SPEC §5).

    The scheduler actor owns one vw_cmdqueue_t. It is a pure data structure:
    no sockets, no threads, no clock. Deadlines (timeouts, backoff waits,
    expires_at) are the caller's timers; this class only decides order and
    enforces the concurrency limits.

    A command lives in exactly one of three states here:

      pending   - waiting for a slot (vw_cmdqueue_push, _requeue, _unpark);
      in flight - picked by vw_cmdqueue_next, holds a global and a per-agent
                  slot until vw_cmdqueue_done, _requeue or _park;
      parked    - a failed attempt waiting out its backoff: no slot, not
                  dispatchable, keeps its priority and seq (vw_cmdqueue_park).

    vw_cmdqueue_next picks, among agents that are dispatchable (online and not
    in maintenance, as told by vw_cmdqueue_set_dispatchable) and below the
    per-agent limit, while the global in-flight count is below the global
    limit, the pending command with the highest priority (0 high, 1 normal,
    2 low) and then the lowest seq: FIFO inside a priority, across agents.
    A requeued or unparked command gets its original place back.

    Ownership: command and agent ids are copied. `data` belongs to the
    caller; the queue only carries it and hands it back from _remove and
    _done (and to free_data on destroy). A returned command id is borrowed:
    valid until that command leaves the queue (_done or _remove).

    Cost: push, next, done, remove, requeue, park, unpark and
    set_dispatchable are O(log n) (n pending commands, plus a hash lookup by
    id); counters are O(1). Nothing ever scans all agents or all commands.
    Not thread-safe: one actor, one vw_cmdqueue_t.
*/
#ifndef VW_CMDQUEUE_H
#define VW_CMDQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VW_CMDQUEUE_GLOBAL_LIMIT_DEFAULT 1024
#define VW_CMDQUEUE_AGENT_LIMIT_DEFAULT  4
#define VW_CMDQUEUE_PRIORITIES           3  //  0 high, 1 normal, 2 low
#define VW_CMDQUEUE_MAX_RETRIES_DEFAULT  3
#define VW_CMDQUEUE_MAX_RETRIES_MAX      10
#define VW_CMDQUEUE_BACKOFF_CAP_MS       60000

typedef enum {
    VW_CMDQUEUE_ABSENT = 0,  //  not in this queue
    VW_CMDQUEUE_PENDING,
    VW_CMDQUEUE_INFLIGHT,
    VW_CMDQUEUE_PARKED
} vw_cmdqueue_state_t;

typedef struct vw_cmdqueue_t vw_cmdqueue_t;

//  Both limits must be >= 1; returns NULL otherwise or when out of memory.
vw_cmdqueue_t *vw_cmdqueue_new (int global_limit, int per_agent_limit);

//  Frees every command and agent; calls free_data (data) on each command's
//  data if free_data is not NULL. Safe on NULL and twice; NULLs *self_p.
void vw_cmdqueue_destroy (vw_cmdqueue_t **self_p, void (*free_data) (void *));

//  Enqueues a command as pending. seq is the submit order and must be unique
//  and increasing across the whole queue. Returns 0, or -1 on a duplicate
//  command_id, NULL/empty ids, a priority outside 0..2, or out of memory
//  (the caller keeps data).
int vw_cmdqueue_push (vw_cmdqueue_t *self, const char *command_id, const char *agent_id,
                      int priority, int64_t seq, void *data);

//  Drops a command that is not in flight - pending, or parked waiting for a
//  retry (cancel, expiry). Returns its data; NULL if it is not pending or
//  parked here (use vw_cmdqueue_state to tell a NULL data from that).
void *vw_cmdqueue_remove (vw_cmdqueue_t *self, const char *command_id);

//  Online and not in maintenance. Agents start not dispatchable. Making an
//  agent undispatchable keeps its in-flight commands counted until done or
//  park; its pending ones wait. Unknown agents are remembered while
//  dispatchable or while they have commands.
void vw_cmdqueue_set_dispatchable (vw_cmdqueue_t *self, const char *agent_id, bool dispatchable);
bool vw_cmdqueue_dispatchable (vw_cmdqueue_t *self, const char *agent_id);

//  Picks the next command that may go now and moves it to in flight.
//  Returns its command id (borrowed) and sets *data_p (if data_p is not
//  NULL) to its data; returns NULL (and *data_p = NULL) if nothing can go.
const char *vw_cmdqueue_next (vw_cmdqueue_t *self, void **data_p);

//  An in-flight command finished for good (completed, failed, cancelled):
//  frees its slots and forgets it. Returns its data; NULL if not in flight.
void *vw_cmdqueue_done (vw_cmdqueue_t *self, const char *command_id);

//  In flight -> pending, in its original place (same priority and seq).
//  0, or -1 if the command is not in flight.
int vw_cmdqueue_requeue (vw_cmdqueue_t *self, const char *command_id);

//  In flight -> parked: frees its slots while the caller waits (backoff).
//  0, or -1 if the command is not in flight.
int vw_cmdqueue_park (vw_cmdqueue_t *self, const char *command_id);

//  Parked -> pending, in its original place. 0, or -1 if not parked.
int vw_cmdqueue_unpark (vw_cmdqueue_t *self, const char *command_id);

//  Where a command is, and its data (NULL if absent).
vw_cmdqueue_state_t vw_cmdqueue_state (vw_cmdqueue_t *self, const char *command_id);
void *vw_cmdqueue_lookup (vw_cmdqueue_t *self, const char *command_id);

//  Counters, O(1).
size_t vw_cmdqueue_pending (vw_cmdqueue_t *self);
//  0 for a priority outside 0..2.
size_t vw_cmdqueue_pending_priority (vw_cmdqueue_t *self, int priority);
size_t vw_cmdqueue_inflight (vw_cmdqueue_t *self);
size_t vw_cmdqueue_parked (vw_cmdqueue_t *self);
//  Pending + in flight + parked.
size_t vw_cmdqueue_size (vw_cmdqueue_t *self);
//  Agents currently remembered (dispatchable or holding commands).
size_t vw_cmdqueue_agents (vw_cmdqueue_t *self);
//  Per agent; 0 for an unknown agent.
size_t vw_cmdqueue_agent_pending (vw_cmdqueue_t *self, const char *agent_id);
size_t vw_cmdqueue_agent_inflight (vw_cmdqueue_t *self, const char *agent_id);
size_t vw_cmdqueue_agent_parked (vw_cmdqueue_t *self, const char *agent_id);

int vw_cmdqueue_global_limit (vw_cmdqueue_t *self);
int vw_cmdqueue_agent_limit (vw_cmdqueue_t *self);

//  Wait before retry number `attempt` (1 for the first retry):
//  min (2^(attempt-1) s, 60 s) * (1 + 0.2 * jitter), rounded to the
//  millisecond. attempt < 1 counts as 1; jitter is clamped to [-1, 1].
int64_t vw_cmdqueue_backoff_ms (int attempt, double jitter);

//  A jitter drawn uniformly in [-1, 1] (libsodium randombytes_uniform).
double vw_cmdqueue_jitter (void);

#endif
