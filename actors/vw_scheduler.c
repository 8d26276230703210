/*  vw_scheduler - the scheduler actor: the command queue, its policy and
    every command's state (SPEC §5).

    A submitted command is inserted by the store (the 202 goes out only
    after the commit), then queued in vw_cmdqueue: priority, FIFO inside a
    priority, a global in-flight limit and a per-agent limit. An agent takes
    commands while the registry says it is dispatchable (online or degraded,
    not in maintenance), and only commands of the types its session's hello
    listed (the registry passes the capabilities with its presence; another
    type fails at once, agent_error, without being sent or retried).

    This actor owns "in flight": the slot and the attempt's deadline. Each
    dispatch goes to the executor, which delivers it and reports how the
    attempt ended: completed; failed (retried after 1 s, 2 s, 4 s … capped
    at 60 s, ±20 % jitter, while retries remain); or lost with the
    connection / unsent (queued again in its place, not a failure). When no
    answer comes within timeout_ms of the dispatch, the attempt fails here
    as `timeout` and the executor is told to send the agent `cancel`:
    whatever happens to the executor, an edge or a remote process, nothing
    stays executing past its timeout. expires_at holds in every state: a
    command is never dispatched after it, and an attempt that ends after it
    without completing finishes the command as failed/`expired`.

    Every transition is written through the store and published as
    command.state. Memory leads and the database follows: each command has
    at most one write in flight; when a commit fails the command's latest
    state is written again (after S_SAVE_RETRY_MS) until it lands, so memory
    and database agree once writes land again. A finished command stays in
    memory until its end is stored. What is said to others waits for the
    commit: a cancel holds the command where it is (out of the queue, its
    retry timer, outcomes and deadline put off) while the cancel is written;
    once it is committed the caller gets 200 with the row as stored and the
    agent its `cancel` frame; if the commit fails the hold is undone (the
    command goes on as if never asked) and the caller gets 503. A submit whose commit answer came
   after the caller was answered 503 is queued when it comes (the store echoes the request's id), so
   a committed command always runs, and a retry with the same idempotency_key returns a command that
   will run.

    Timing is by timers only: one expiry timer per unfinished command, a
    deadline while it executes and a retry timer while it waits out a
    backoff. On start the queue is rebuilt from the database (pending and
    executing rows; executing ones are sent again with the same command_id:
    at-least-once), page by page in the packed form of vw_cmdpage; the next
    page is asked for before the current one is queued, so the store reads
    while the scheduler builds.
*/
#include "vw_actors.h"
#include "vw_clock.h"
#include "vw_cmdpage.h"
#include "vw_cmdqueue.h"
#include "vw_command_rows.h"
#include "vw_keys.h"
#include "vw_log.h"
#include "vw_pending.h"
#include "vw_token.h"

#include <jansson.h>
#include <string.h>

#define S_STORE_TIMEOUT_MS 10000
#define S_SAVE_RETRY_MS    1000  //  a state whose commit failed is written again
#define S_LOAD_PAGE        5000
#define S_LOAD_RETRY_MS    1000   //  after a failed page
#define S_RING             65536  //  finished commands kept for /statistics

typedef struct self_t self_t;

//  Where a command is. HELD: out of the queue (or its backoff) while a
//  cancel is written. DONE: finished in memory, kept until its end is
//  stored.
typedef enum { S_QUEUED, S_EXECUTING, S_WAITING, S_HELD, S_DONE } s_where_t;

//  An agent's session as the registry last described it.
typedef struct {
    int64_t conn;            //  edge connection
    char edge[VW_ADDR_MAX];  //  the edge actor holding it
    json_t *capabilities;    //  the command types its hello listed; NULL: it listed none
} s_session_t;

//  One allocation per command: the record and its (immutable) strings.
typedef struct {
    self_t *owner;
    const char *command_id, *agent_id, *type, *payload;  //  in text[]
    int priority;
    int64_t seq, timeout_ms, max_retries, expires_at;
    int64_t created_mono;  //  when submitted (or recovered), monotonic, for latency
    int64_t attempts;      //  dispatches so far
    int64_t failures;      //  failed attempts (timeouts and agent errors)
    s_where_t where;
    uint64_t expiry_timer;
    uint64_t retry_timer;
    uint64_t deadline_timer;  //  EXECUTING: the attempt's timeout
    uint64_t save_timer;      //  a failed write is tried again
    //  What the database must hold (s_save): the last failure, when the
    //  next attempt is due (WAITING), since when the attempt runs
    //  (EXECUTING) and, once DONE, the end.
    const char *reason;  //  failure_reason (a literal) or NULL
    char *error;         //  the last failed attempt's error text, or NULL
    int64_t next_attempt_at, started_at, finished_at;
    int64_t delivered_at;  //  the attempt's ack when the executor left it to the end's write
    const char *final;     //  DONE: completed, failed or cancelled
    char *result;          //  DONE: JSON text, or NULL
    bool saving;           //  a write is in flight
    bool dirty;            //  the state changed since that write was sent (or it failed)
    bool abort_on_save;    //  DONE while executing: the agent's cancel goes after the commit
    //  A cancel is being written: nothing moves until it lands or fails.
    bool cancelling;
    s_where_t held_from;       //  HELD: where it was (QUEUED or WAITING)
    vw_msg_t *parked_outcome;  //  EXECUTING: the attempt's end, put off
    bool deadline_due;         //  EXECUTING: the deadline passed meanwhile
    bool revoke_due;           //  its agent was revoked meanwhile
    zlistx_t *waiters;         //  cancels answered once the end is stored (s_cancel_t *), or NULL
    char text[];
} s_cmd_t;

typedef struct {
    char peer[VW_ADDR_MAX];
    uint64_t rid;
    bool cancelled_now;  //  we cancelled it: answer 200 with the row
} s_cancel_t;

struct self_t {
    const vw_config_t *config;
    vw_actor_t *actor;
    vw_pending_t *pending;
    vw_cmdqueue_t *queue;
    zhashx_t *cmds;  //  command_id (the record's own) -> s_cmd_t (owned): unfinished or unstored
    zhashx_t *sessions;  //  agent_id -> s_session_t (owned): its session, per the registry
    zhashx_t *late;      //  insert's command_id -> s_submit_t: answered 503, commit answer due
    //  Agents revoked while the queue is rebuilt: their rows in the pages
    //  still to come fail as agent_revoked (agent_id -> "").
    zhashx_t *revoked;
    bool loaded;
    bool stopping;          //  destroying: requests that end now are not sent again
    int64_t load_started;   //  monotonic, for the "recovered" line
    int64_t load_after;     //  the page to ask for again after a failure
    size_t load_executing;  //  rows that were in flight when the last run ended
    //  The first seq submitted in this run: rows from there on are known
    //  already, and a page read before one of them finished must not bring
    //  it back.
    int64_t live_seq;
    size_t done;      //  records DONE, waiting for their end to be stored
    size_t unstored;  //  records whose last write failed, waiting to be written again
    uint64_t completed, failed, retried, expired, cancelled, timeouts, save_failures;
    vw_histo_t latency;  //  submit (or recovery) -> the command's end, completed or failed
    //  The last S_RING finished commands: when, submit -> finish latency, ok.
    struct {
        int64_t at_ms;
        int64_t latency_ms;
        bool ok;
    } ring[S_RING];
    size_t ring_next, ring_used;
};

static void
s_timer_cancel (self_t *self, uint64_t *timer)
{
    if (*timer)
        vw_timers_cancel (vw_actor_timers (self->actor), *timer);
    *timer = 0;
}

//  No more writing again (the record goes).
static void
s_save_later_cancel (self_t *self, s_cmd_t *cmd)
{
    if (cmd->save_timer && self->unstored)
        self->unstored--;
    s_timer_cancel (self, &cmd->save_timer);
}

static void
s_cmd_free (void **item)
{
    s_cmd_t *cmd = (s_cmd_t *) *item;
    if (cmd) {
        self_t *self = cmd->owner;
        s_timer_cancel (self, &cmd->expiry_timer);
        s_timer_cancel (self, &cmd->retry_timer);
        s_timer_cancel (self, &cmd->deadline_timer);
        s_save_later_cancel (self, cmd);
        if (cmd->where == S_DONE && self->done)
            self->done--;
        if (cmd->waiters) {
            s_cancel_t *c;
            while ((c = (s_cancel_t *) zlistx_detach (cmd->waiters, NULL)))
                free (c);
            zlistx_destroy (&cmd->waiters);
        }
        vw_msg_destroy (&cmd->parked_outcome);
        free (cmd->error);
        free (cmd->result);
        free (cmd);
    }
    *item = NULL;
}

static void
s_session_free (void **item)
{
    s_session_t *session = (s_session_t *) *item;
    if (session) {
        json_decref (session->capabilities);
        free (session);
    }
    *item = NULL;
}

//  Whether the session takes commands of this type: any type if its hello
//  listed no capabilities, else only those listed. If not, `why` says so.
static bool
s_session_takes (const s_session_t *session, const char *agent_id, const char *type, char *why,
                 size_t len)
{
    if (!session->capabilities)
        return true;
    size_t i;
    json_t *cap;
    json_array_foreach (session->capabilities, i, cap)
    {
        if (json_is_string (cap) && streq (json_string_value (cap), type))
            return true;
    }
    //  "... (capabilities in its hello: a, b, c)", the list cut short with
    //  "…" if it does not fit.
    int n = snprintf (why, len,
                      "agent '%s' does not support command type '%s' (capabilities in its hello: ",
                      agent_id, type);
    size_t used = n > 0 && (size_t) n < len ? (size_t) n : len - 1;
    json_array_foreach (session->capabilities, i, cap)
    {
        const char *name = json_is_string (cap) ? json_string_value (cap) : "?";
        if (used + strlen (name) + 16 >= len) {
            used += (size_t) snprintf (why + used, len - used, "%s…", i ? ", " : "");
            break;
        }
        used += (size_t) snprintf (why + used, len - used, "%s%s", i ? ", " : "", name);
    }
    if (!json_array_size (session->capabilities) && used + 8 < len)
        used += (size_t) snprintf (why + used, len - used, "none");
    snprintf (why + used, len - used, ")");
    return false;
}

static void
s_send (self_t *self, const char *to, vw_msg_t **msg_p)
{
    if (vw_actor_send (self->actor, to, msg_p))
        vw_msg_destroy (msg_p);
}

static void
s_publish_state (self_t *self, const s_cmd_t *cmd, const char *state, const char *reason)
{
    json_t *event = json_pack ("{s:s, s:s, s:s, s:I, s:I}", "command_id", cmd->command_id,
                               "agent_id", cmd->agent_id, "state", state, "attempts",
                               (json_int_t) cmd->attempts, "ts", (json_int_t) vw_clock_wall_ms ());
    if (reason)
        json_object_set_new (event, "failure_reason", json_string (reason));
    char *text = json_dumps (event, JSON_COMPACT);
    json_decref (event);
    if (text)
        vw_actor_publish (self->actor, "command.state", text);
    free (text);
}

static const char *
s_copy (char **to, vw_cmdpage_str_t from)
{
    char *start = *to;
    memcpy (start, from.ptr, from.len);
    start[from.len] = 0;
    *to += from.len + 1;
    return start;
}

static vw_cmdpage_str_t
s_str (const char *text)
{
    return (vw_cmdpage_str_t){text ? text : "", text ? strlen (text) : 0};
}

//  --------------------------------------------------------------------------
//  Writing a command's state

static void s_save (self_t *self, s_cmd_t *cmd);
static void s_pump (self_t *self);
static void s_on_retry_due (void *arg, uint64_t id);
static void s_answer_waiters (self_t *self, s_cmd_t *cmd, int status, const char *message);

static void
s_on_save_due (void *arg, uint64_t id)
{
    s_cmd_t *cmd = (s_cmd_t *) arg;
    cmd->save_timer = 0;
    if (cmd->owner->unstored)
        cmd->owner->unstored--;
    s_save (cmd->owner, cmd);
}

//  The write did not land: the latest state goes again in S_SAVE_RETRY_MS.
static void
s_save_later (self_t *self, s_cmd_t *cmd)
{
    cmd->dirty = true;
    self->unstored++;
    cmd->save_timer =
        vw_timers_add (vw_actor_timers (self->actor), S_SAVE_RETRY_MS, s_on_save_due, cmd);
}

//  What the store answered a write: its status, and why when it is not 200
//  (503 when it did not answer: timeout, unreachable, shutdown).
static int
s_write_status (const vw_msg_t *reply, const char *why, const char **message)
{
    bool answered = reply && reply->id == VW_MSG_ID_reply;
    *message = answered && reply->reply.message
                   ? reply->reply.message
                   : (answered ? "write not applied" : (why ? why : "no answer"));
    return answered ? (int) reply->reply.status : 503;
}

static void
s_abort (self_t *self, s_cmd_t *cmd)
{
    vw_msg_t *abort = vw_msg_new (VW_MSG_ID_command_abort);
    vw_msg_set_str (&abort->command_abort.command_id, cmd->command_id);
    abort->command_abort.attempt = cmd->attempts;
    s_send (self, "executor", &abort);
}

//  The end is stored: the agent's cancel if it waited for that (a revoked
//  agent's executing command), then the record goes.
static void
s_stored_done (self_t *self, s_cmd_t *cmd)
{
    if (cmd->abort_on_save)
        s_abort (self, cmd);
    zhashx_delete (self->cmds, cmd->command_id);
}

static void
s_on_saved (void *state, vw_actor_t *actor, void *ctx, vw_msg_t *reply, const char *why)
{
    self_t *self = (self_t *) state;
    s_cmd_t *cmd = (s_cmd_t *) ctx;
    if (self->stopping)
        return;  //  the records go with the actor
    cmd->saving = false;
    const char *message;
    int status = s_write_status (reply, why, &message);
    if (status >= 500) {
        //  Not stored: the latest state is written again a little later.
        if (self->save_failures++ % 1000 == 0)
            vw_warn ("scheduler",
                     "state of command %s not stored (%s); writing it again in %d ms "
                     "(%llu such failure(s) so far)",
                     cmd->command_id, message, S_SAVE_RETRY_MS,
                     (unsigned long long) self->save_failures);
        s_save_later (self, cmd);
        return;
    }
    if (status != 200)
        //  409: the row is finished already (or unknown): nothing to bring
        //  it to; memory follows the database by ending the record below
        //  if it is DONE, else by its next transition.
        vw_warn ("scheduler", "command %s: %s", cmd->command_id, message);
    if (cmd->dirty)
        s_save (self, cmd);
    else if (cmd->where == S_DONE)
        s_stored_done (self, cmd);
}

//  A write of this command's state for `event`, answered after its commit;
//  the caller fills in what the event needs.
static vw_msg_t *
s_update_new (const s_cmd_t *cmd, const char *event)
{
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_command_update);
    vw_command_update_msg_t *u = &msg->command_update;
    vw_msg_set_str (&u->command_id, cmd->command_id);
    vw_msg_set_str (&u->event, event);
    u->ack = true;
    u->attempt = cmd->attempts;
    u->failures = cmd->failures;
    return msg;
}

//  Writes the command's whole current state (one write in flight per
//  command; a change meanwhile is written when that one lands).
static void
s_save (self_t *self, s_cmd_t *cmd)
{
    if (cmd->saving || cmd->save_timer) {
        cmd->dirty = true;
        return;
    }
    cmd->dirty = false;
    vw_msg_t *msg = s_update_new (cmd, cmd->where == S_EXECUTING ? "executing"
                                       : cmd->where == S_DONE    ? "finish"
                                                                 : "pending");
    vw_command_update_msg_t *u = &msg->command_update;
    switch (cmd->where) {
        case S_EXECUTING: u->ts = cmd->started_at; break;
        case S_QUEUED:
        case S_WAITING:
        case S_HELD:
            u->next_attempt_at = (cmd->where == S_HELD ? cmd->held_from : cmd->where) == S_WAITING
                                     ? cmd->next_attempt_at
                                     : 0;
            vw_msg_set_str (&u->failure_reason, cmd->reason);
            vw_msg_set_str (&u->error, cmd->error);
            break;
        case S_DONE:
            vw_msg_set_str (&u->state, cmd->final);
            vw_msg_set_str (&u->failure_reason, cmd->reason);
            vw_msg_set_str (&u->result, cmd->result);
            vw_msg_set_str (&u->error, cmd->error);
            u->ts = cmd->finished_at;
            u->delivered_at = cmd->delivered_at;
            break;
    }
    if (vw_pending_request (self->pending, "store", &msg, S_STORE_TIMEOUT_MS, s_on_saved, cmd)) {
        vw_msg_destroy (&msg);
        s_save_later (self, cmd);
        return;
    }
    cmd->saving = true;
}

//  Waits out its backoff until next_attempt_at (out of the queue).
static void
s_arm_retry (self_t *self, s_cmd_t *cmd, int64_t now)
{
    int64_t left = cmd->next_attempt_at - now;
    cmd->where = S_WAITING;
    cmd->retry_timer =
        vw_timers_add (vw_actor_timers (self->actor), left > 0 ? left : 0, s_on_retry_due, cmd);
}

static void
s_set_error (s_cmd_t *cmd, const char *error)
{
    free (cmd->error);
    cmd->error = error ? strdup (error) : NULL;
}

//  The command is over in memory: out of the queue, published, its end
//  written; the record goes once that is stored.
static void
s_end (self_t *self, s_cmd_t *cmd, const char *state, const char *reason, const char *result,
       const char *error)
{
    if (!streq (state, "cancelled")) {
        int64_t now = vw_clock_mono_ms ();
        self->ring[self->ring_next].at_ms = now;
        self->ring[self->ring_next].latency_ms = now - cmd->created_mono;
        self->ring[self->ring_next].ok = streq (state, "completed");
        self->ring_next = (self->ring_next + 1) % S_RING;
        if (self->ring_used < S_RING)
            self->ring_used++;
        vw_histo_observe_ms (&self->latency, (double) (now - cmd->created_mono));
    }
    if (streq (state, "completed"))
        self->completed++;
    else if (streq (state, "cancelled"))
        self->cancelled++;
    else if (reason && streq (reason, "expired"))
        self->expired++;
    else
        self->failed++;
    //  Out of the queue in whatever state it was.
    if (cmd->where == S_EXECUTING)
        vw_cmdqueue_done (self->queue, cmd->command_id);
    else if (cmd->where == S_QUEUED)
        vw_cmdqueue_remove (self->queue, cmd->command_id);
    s_timer_cancel (self, &cmd->expiry_timer);
    s_timer_cancel (self, &cmd->retry_timer);
    s_timer_cancel (self, &cmd->deadline_timer);
    cmd->where = S_DONE;
    self->done++;
    cmd->final = state;
    cmd->reason = reason;
    if (error)
        s_set_error (cmd, error);
    free (cmd->result);
    cmd->result = result ? strdup (result) : NULL;
    cmd->finished_at = vw_clock_wall_ms ();
    s_publish_state (self, cmd, state, reason);
}

static void
s_finish (self_t *self, s_cmd_t *cmd, const char *state, const char *reason, const char *result,
          const char *error)
{
    if (cmd->where == S_DONE)
        return;
    s_end (self, cmd, state, reason, result, error);
    s_save (self, cmd);
}

//  An attempt failed (the agent said so, or the deadline passed): retried
//  after its backoff while retries remain and it has not expired.
static void
s_attempt_failed (self_t *self, s_cmd_t *cmd, const char *reason, const char *result,
                  const char *error)
{
    int64_t now = vw_clock_wall_ms ();
    cmd->failures++;
    if (now >= cmd->expires_at)
        s_finish (self, cmd, "failed", "expired", result, error);
    else if (cmd->failures > cmd->max_retries)
        s_finish (self, cmd, "failed", reason, result, error);
    else {
        int64_t delay = vw_cmdqueue_backoff_ms ((int) cmd->failures, vw_cmdqueue_jitter ());
        vw_cmdqueue_done (self->queue, cmd->command_id);
        cmd->next_attempt_at = now + delay;
        cmd->reason = reason;
        s_set_error (cmd, error);
        s_arm_retry (self, cmd, now);
        self->retried++;
        s_save (self, cmd);
        s_publish_state (self, cmd, "pending", reason);
    }
}

//  The attempt's deadline: no answer within timeout_ms of the dispatch. The
//  executor sends the agent `cancel` and forgets the attempt.
static void
s_on_deadline (void *arg, uint64_t id)
{
    s_cmd_t *cmd = (s_cmd_t *) arg;
    self_t *self = cmd->owner;
    cmd->deadline_timer = 0;
    if (cmd->cancelling) {
        cmd->deadline_due = true;
        return;
    }
    self->timeouts++;
    vw_info ("scheduler", "command %s on '%s' timed out (attempt %lld)", cmd->command_id,
             cmd->agent_id, (long long) cmd->attempts);
    s_abort (self, cmd);
    char error[96];
    snprintf (error, sizeof error, "no result within %lld ms", (long long) cmd->timeout_ms);
    s_attempt_failed (self, cmd, "timeout", NULL, error);
    s_pump (self);
}

//  Dispatches everything the limits allow now.
static void
s_pump (self_t *self)
{
    void *data;
    int64_t now = vw_clock_wall_ms ();
    while (vw_cmdqueue_next (self->queue, &data)) {
        s_cmd_t *cmd = (s_cmd_t *) data;
        cmd->where = S_EXECUTING;  //  it holds a slot: s_finish gives it back
        if (now >= cmd->expires_at) {
            //  Never dispatched after expires_at, whatever timer comes first.
            s_finish (self, cmd, "failed", "expired", NULL, NULL);
            continue;
        }
        s_session_t *session = (s_session_t *) zhashx_lookup (self->sessions, cmd->agent_id);
        cmd->attempts++;
        cmd->started_at = now;
        cmd->delivered_at = 0;
        s_save (self, cmd);
        char why[512];
        if (session && !s_session_takes (session, cmd->agent_id, cmd->type, why, sizeof why)) {
            //  The agent said it does not take this type: the attempt fails
            //  here, and at once for good (a retry would meet the same
            //  session). Counted as an attempt and a failure.
            vw_info ("scheduler", "command %s: %s", cmd->command_id, why);
            cmd->failures++;
            s_finish (self, cmd, "failed", "agent_error", NULL, why);
            continue;
        }
        vw_msg_t *d = vw_msg_new (VW_MSG_ID_command_dispatch);
        vw_msg_set_str (&d->command_dispatch.command_id, cmd->command_id);
        vw_msg_set_str (&d->command_dispatch.agent_id, cmd->agent_id);
        d->command_dispatch.conn = session ? session->conn : 0;
        if (session)
            vw_msg_set_str (&d->command_dispatch.edge, session->edge);
        vw_msg_set_str (&d->command_dispatch.type, cmd->type);
        vw_msg_set_str (&d->command_dispatch.payload, cmd->payload);
        d->command_dispatch.timeout_ms = cmd->timeout_ms;
        d->command_dispatch.attempt = cmd->attempts;
        s_send (self, "executor", &d);
        //  The timeout counts from the send (SPEC §5), which the executor
        //  makes as soon as it reads this.
        cmd->deadline_timer =
            vw_timers_add (vw_actor_timers (self->actor), cmd->timeout_ms, s_on_deadline, cmd);
        s_publish_state (self, cmd, "executing", NULL);
    }
}

static void
s_on_expiry (void *arg, uint64_t id)
{
    s_cmd_t *cmd = (s_cmd_t *) arg;
    self_t *self = cmd->owner;
    cmd->expiry_timer = 0;
    //  An executing command is not stopped: its attempt ends (result,
    //  deadline or lost session) and then finishes it as expired unless it
    //  completed.
    if (cmd->where == S_EXECUTING || cmd->where == S_DONE || cmd->cancelling)
        return;  //  a cancel that fails to land looks at expires_at again
    vw_info ("scheduler", "command %s for '%s' expired", cmd->command_id, cmd->agent_id);
    s_finish (self, cmd, "failed", "expired", NULL, NULL);
}

static void
s_arm_expiry (self_t *self, s_cmd_t *cmd, int64_t now)
{
    int64_t left = cmd->expires_at - now;
    cmd->expiry_timer =
        vw_timers_add (vw_actor_timers (self->actor), left > 0 ? left : 0, s_on_expiry, cmd);
}

static void
s_queue (self_t *self, s_cmd_t *cmd)
{
    cmd->where = S_QUEUED;
    if (vw_cmdqueue_push (self->queue, cmd->command_id, cmd->agent_id, cmd->priority, cmd->seq,
                          cmd))
        vw_error ("scheduler", "command %s cannot be queued", cmd->command_id);
}

//  A new record, known by id and with its expiry timer; NULL if the id is
//  known already (a command submitted while the queue was being rebuilt
//  shows up again in the last page) or the row has no id or agent.
static s_cmd_t *
s_cmd_new (self_t *self, const vw_cmdpage_row_t *row, int64_t now)
{
    if (!row->command_id.len || !row->agent_id.len)
        return NULL;
    vw_cmdpage_str_t payload = row->payload.len ? row->payload : s_str ("{}");
    size_t text = row->command_id.len + row->agent_id.len + row->type.len + payload.len + 4;
    s_cmd_t *cmd = (s_cmd_t *) zmalloc (sizeof (s_cmd_t) + text);
    char *next = cmd->text;
    cmd->owner = self;
    cmd->command_id = s_copy (&next, row->command_id);
    cmd->agent_id = s_copy (&next, row->agent_id);
    cmd->type = s_copy (&next, row->type);
    cmd->payload = s_copy (&next, payload);
    cmd->priority = (int) row->priority;
    cmd->seq = row->seq;
    cmd->timeout_ms = row->timeout_ms;
    cmd->max_retries = row->max_retries;
    cmd->expires_at = row->expires_at;
    cmd->created_mono = vw_clock_mono_ms ();
    if (zhashx_insert (self->cmds, cmd->command_id, cmd)) {
        free (cmd);
        return NULL;
    }
    s_arm_expiry (self, cmd, now);
    return cmd;
}

//  --------------------------------------------------------------------------
//  Submit

typedef struct {
    char peer[VW_ADDR_MAX];
    uint64_t rid;
    char id[VW_ID_TEXT_LEN + 1];  //  the insert's command_id, echoed by the store
    char *type, *payload;
    int priority;
    int64_t timeout_ms, max_retries, expires_at;
} s_submit_t;

static void
s_submit_free (s_submit_t *s)
{
    free (s->type);
    free (s->payload);
    free (s);
}

static void
s_late_free (void **item)
{
    if (*item)
        s_submit_free ((s_submit_t *) *item);
    *item = NULL;
}

//  Queues the rows the store committed for a submit.
static void
s_queue_inserted (self_t *self, const s_submit_t *s, const vw_command_inserted_msg_t *in)
{
    json_t *rows = in->rows ? json_loads (in->rows, 0, NULL) : NULL;
    size_t i;
    json_t *row;
    int64_t now = vw_clock_wall_ms ();
    json_array_foreach (rows, i, row)
    {
        vw_cmdpage_row_t r = {.command_id = s_str (json_string_value (json_array_get (row, 0))),
                              .agent_id = s_str (json_string_value (json_array_get (row, 1))),
                              .type = s_str (s->type),
                              .payload = s_str (s->payload),
                              .priority = s->priority,
                              .seq = json_integer_value (json_array_get (row, 2)),
                              .timeout_ms = s->timeout_ms,
                              .max_retries = s->max_retries,
                              .expires_at = s->expires_at};
        if (r.seq < self->live_seq)
            self->live_seq = r.seq;
        s_cmd_t *cmd = s_cmd_new (self, &r, now);
        if (!cmd)
            continue;
        s_queue (self, cmd);
        s_publish_state (self, cmd, "pending", NULL);
    }
    json_decref (rows);
    s_pump (self);
}

static void
s_on_inserted (void *state, vw_actor_t *actor, void *ctx, vw_msg_t *reply, const char *why)
{
    self_t *self = (self_t *) state;
    s_submit_t *s = (s_submit_t *) ctx;
    vw_msg_t *answer = vw_msg_new (VW_MSG_ID_reply);
    answer->rid = s->rid;
    if (!reply || reply->id != VW_MSG_ID_command_inserted) {
        answer->reply.status = 503;
        vw_msg_set_str (&answer->reply.code, "unavailable");
        vw_msg_set_str (&answer->reply.message, "the store did not answer in time");
    }
    else {
        vw_command_inserted_msg_t *in = &reply->command_inserted;
        s_queue_inserted (self, s, in);
        answer->reply.status = in->status;
        answer->reply.json = in->json, in->json = NULL;
        answer->reply.code = in->code, in->code = NULL;
        answer->reply.message = in->message, in->message = NULL;
    }
    s_send (self, s->peer, &answer);
    if (!reply && why && streq (why, "timeout") && !self->stopping)
        //  The store answers every insert, in order: when it does, the
        //  rows it committed are queued (s_on_late_inserted).
        zhashx_update (self->late, s->id, s);
    else
        s_submit_free (s);
}

//  The commit answer of a submit whose caller was already answered 503.
static void
s_on_late_inserted (self_t *self, vw_msg_t *msg)
{
    const vw_command_inserted_msg_t *in = &msg->command_inserted;
    s_submit_t *s =
        in->request_id ? (s_submit_t *) zhashx_lookup (self->late, in->request_id) : NULL;
    if (!s) {
        vw_warn ("scheduler", "commit answer for an unknown submit '%s' ignored",
                 in->request_id ? in->request_id : "?");
        return;
    }
    vw_info ("scheduler", "submit %s: the store answered after its caller was told 503 (%lld): %s",
             s->id, (long long) in->status,
             in->status == 202 ? "its rows are queued now" : "nothing was stored");
    s_queue_inserted (self, s, in);
    zhashx_delete (self->late, s->id);
}

static void
s_on_submit (self_t *self, vw_msg_t *msg)
{
    vw_command_submit_msg_t *in = &msg->command_submit;
    int64_t now = vw_clock_wall_ms ();
    s_submit_t *s = (s_submit_t *) zmalloc (sizeof (s_submit_t));
    memcpy (s->peer, msg->peer, sizeof s->peer);
    s->rid = msg->rid;
    s->type = strdup (in->type ? in->type : "");
    s->payload = strdup (in->payload ? in->payload : "{}");
    s->priority = (int) in->priority;
    s->timeout_ms = in->timeout_ms;
    s->max_retries = in->max_retries;
    s->expires_at = now + in->expires_in_ms;

    vw_id_new (s->id);
    vw_msg_t *insert = vw_msg_new (VW_MSG_ID_command_insert);
    vw_command_insert_msg_t *c = &insert->command_insert;
    vw_msg_set_str (&c->command_id, s->id);
    vw_msg_set_str (&c->agent_id, in->agent_id);
    vw_msg_set_str (&c->labels, in->labels);
    vw_msg_set_str (&c->type, s->type);
    vw_msg_set_str (&c->payload, s->payload);
    c->priority = s->priority;
    c->timeout_ms = s->timeout_ms;
    c->max_retries = s->max_retries;
    c->created_at = now;
    c->expires_at = s->expires_at;
    vw_msg_set_str (&c->created_by, in->created_by);
    vw_msg_set_str (&c->idempotency_key, in->idempotency_key);
    if (vw_pending_request (self->pending, "store", &insert, S_STORE_TIMEOUT_MS, s_on_inserted,
                            s)) {
        vw_msg_destroy (&insert);
        s_on_inserted (self, self->actor, s, NULL, "store unreachable");
    }
}

//  --------------------------------------------------------------------------
//  Outcomes, retries, cancel

static void
s_on_retry_due (void *arg, uint64_t id)
{
    s_cmd_t *cmd = (s_cmd_t *) arg;
    cmd->retry_timer = 0;
    s_queue (cmd->owner, cmd);
    s_pump (cmd->owner);
}

//  Takes *msg_p when it puts the outcome off (a cancel is being written).
static void
s_on_outcome (self_t *self, vw_msg_t **msg_p)
{
    const vw_command_outcome_msg_t *o = &(*msg_p)->command_outcome;
    s_cmd_t *cmd = o->command_id ? (s_cmd_t *) zhashx_lookup (self->cmds, o->command_id) : NULL;
    //  Cancelled, timed out or finished meanwhile, or an earlier attempt's.
    if (!cmd || cmd->where != S_EXECUTING || !o->outcome ||
        (o->attempt && o->attempt != cmd->attempts))
        return;
    //  A quick command's ack is written with its end, not on its own.
    if (o->delivered_at)
        cmd->delivered_at = o->delivered_at;
    if (cmd->cancelling) {
        //  Decided when the cancel lands (dropped) or fails (handled then).
        if (!cmd->parked_outcome) {
            cmd->parked_outcome = *msg_p;
            *msg_p = NULL;
        }
        return;
    }
    s_timer_cancel (self, &cmd->deadline_timer);
    if (streq (o->outcome, "completed"))
        s_finish (self, cmd, "completed", NULL, o->result, NULL);
    else if (streq (o->outcome, "lost") || streq (o->outcome, "unsent")) {
        //  The session went away: back in its place, not a failure. An
        //  attempt that never left does not count.
        if (streq (o->outcome, "unsent") && cmd->attempts > 0)
            cmd->attempts--;
        //  That session is gone: wait for the registry's word on the next.
        s_session_t *session = (s_session_t *) zhashx_lookup (self->sessions, cmd->agent_id);
        if (session && session->conn == o->conn) {
            zhashx_delete (self->sessions, cmd->agent_id);
            vw_cmdqueue_set_dispatchable (self->queue, cmd->agent_id, false);
        }
        if (vw_clock_wall_ms () >= cmd->expires_at)
            s_finish (self, cmd, "failed", "expired", NULL, NULL);
        else {
            vw_cmdqueue_requeue (self->queue, cmd->command_id);
            cmd->where = S_QUEUED;
            s_save (self, cmd);
            s_publish_state (self, cmd, "pending", NULL);
        }
    }
    else
        //  Every failed attempt carries a message (the executor's default
        //  when the agent gave none).
        s_attempt_failed (self, cmd, "agent_error", o->result, o->error);
    s_pump (self);
}

//  Whether a command row (JSON text) is pending or executing.
static bool
s_row_unfinished (const char *row_json)
{
    json_t *row = row_json ? json_loads (row_json, 0, NULL) : NULL;
    const char *state = json_string_value (json_object_get (row, "state"));
    bool unfinished = state && (streq (state, "pending") || streq (state, "executing"));
    json_decref (row);
    return unfinished;
}

static void
s_on_cancel_row (void *state, vw_actor_t *actor, void *ctx, vw_msg_t *reply, const char *why)
{
    self_t *self = (self_t *) state;
    s_cancel_t *c = (s_cancel_t *) ctx;
    vw_msg_t *answer = vw_msg_new (VW_MSG_ID_reply);
    answer->rid = c->rid;
    if (!reply || reply->id != VW_MSG_ID_reply) {
        answer->reply.status = 503;
        vw_msg_set_str (&answer->reply.code, "unavailable");
        vw_msg_set_str (&answer->reply.message, "the store did not answer");
    }
    else if (reply->reply.status == 200 && !c->cancelled_now &&
             s_row_unfinished (reply->reply.json)) {
        //  Unfinished in the database but not known here: the queue is
        //  still being rebuilt after a restart, or its commit answer is on
        //  its way (a fraction of a second either way).
        answer->reply.status = 503;
        vw_msg_set_str (&answer->reply.code, "unavailable");
        vw_msg_set_str (&answer->reply.message,
                        self->loaded ? "the command is not queued yet; try again"
                                     : "the command queue is being rebuilt after a restart; try "
                                       "again");
    }
    else if (reply->reply.status == 200 && !c->cancelled_now) {
        //  Not in the queue: it finished before.
        answer->reply.status = 409;
        vw_msg_set_str (&answer->reply.code, "conflict");
        vw_msg_set_str (&answer->reply.message, "the command has already finished");
    }
    else {
        answer->reply = reply->reply;
        memset (&reply->reply, 0, sizeof reply->reply);
    }
    s_send (self, c->peer, &answer);
    free (c);
}

//  Answers the row as the store has it (read after the commit that ended
//  the command, when cancelled_now).
static void
s_cancel_answer_row (self_t *self, s_cancel_t *c, const char *command_id)
{
    vw_msg_t *get = vw_msg_new (VW_MSG_ID_command_get);
    vw_msg_set_str (&get->command_get.command_id, command_id);
    if (vw_pending_request (self->pending, "store", &get, S_STORE_TIMEOUT_MS, s_on_cancel_row, c)) {
        vw_msg_destroy (&get);
        s_on_cancel_row (self, self->actor, c, NULL, "store unreachable");
    }
}

//  The cancels waiting on a command's end: 200 with the stored row once it
//  is stored, or an error now.
static void
s_answer_waiters (self_t *self, s_cmd_t *cmd, int status, const char *message)
{
    if (!cmd->waiters)
        return;
    s_cancel_t *c;
    while ((c = (s_cancel_t *) zlistx_detach (cmd->waiters, NULL))) {
        if (status == 200) {
            c->cancelled_now = true;
            s_cancel_answer_row (self, c, cmd->command_id);
            continue;
        }
        vw_msg_t *answer = vw_msg_new (VW_MSG_ID_reply);
        answer->rid = c->rid;
        answer->reply.status = status;
        vw_msg_set_str (&answer->reply.code, "unavailable");
        vw_msg_set_str (&answer->reply.message, message);
        s_send (self, c->peer, &answer);
        free (c);
    }
}

static void
s_wait_for_store (s_cmd_t *cmd, s_cancel_t *c)
{
    if (!cmd->waiters)
        cmd->waiters = zlistx_new ();
    zlistx_add_end (cmd->waiters, c);
}

static void s_revoke_cmd (self_t *self, s_cmd_t *cmd);

//  The cancel's write landed: the command ends as cancelled (memory
//  follows the row), whatever it was waiting for is dropped.
static void
s_cancel_landed (self_t *self, s_cmd_t *cmd)
{
    bool executing = cmd->where == S_EXECUTING;
    if (cmd->where == S_HELD)
        cmd->where = S_WAITING;  //  out of the queue, no timers: s_end has nothing to undo
    vw_msg_destroy (&cmd->parked_outcome);
    s_end (self, cmd, "cancelled", "cancelled_by_user", NULL, NULL);
    if (executing)
        s_abort (self, cmd);
    s_answer_waiters (self, cmd, 200, NULL);
    cmd->dirty = false;
    if (!cmd->saving) {  //  else an earlier write is still out: s_on_saved ends the record
        s_save_later_cancel (self, cmd);
        zhashx_delete (self->cmds, cmd->command_id);
    }
    //  An executing one gave its slot back.
    s_pump (self);
}

//  The cancel's write failed: undone, the command goes on where it was, and
//  what was put off meanwhile happens now.
static void
s_cancel_undone (self_t *self, s_cmd_t *cmd)
{
    s_answer_waiters (self, cmd, 503,
                      "the cancel could not be stored (the database refuses writes); the command "
                      "goes on: ask again");
    int64_t now = vw_clock_wall_ms ();
    if (cmd->where == S_HELD) {
        cmd->where = S_WAITING;  //  out of the queue, no retry timer yet
        if (cmd->revoke_due)
            s_revoke_cmd (self, cmd);
        else if (now >= cmd->expires_at)
            s_finish (self, cmd, "failed", "expired", NULL, NULL);
        else if (cmd->held_from == S_QUEUED)
            s_queue (self, cmd);  //  back in its place
        else
            s_arm_retry (self, cmd, now);
    }
    else if (cmd->revoke_due)
        s_revoke_cmd (self, cmd);
    else if (cmd->parked_outcome) {
        vw_msg_t *parked = cmd->parked_outcome;
        cmd->parked_outcome = NULL;
        s_on_outcome (self, &parked);
        vw_msg_destroy (&parked);
    }
    else if (cmd->deadline_due) {
        cmd->deadline_due = false;
        s_on_deadline (cmd, 0);
    }
    cmd->revoke_due = false;
    cmd->deadline_due = false;
    //  Its expiry may have come and gone while it was held.
    if (cmd->where != S_DONE && !cmd->expiry_timer)
        s_arm_expiry (self, cmd, now);
    s_pump (self);
}

static void
s_on_cancel_stored (void *state, vw_actor_t *actor, void *ctx, vw_msg_t *reply, const char *why)
{
    self_t *self = (self_t *) state;
    s_cmd_t *cmd = (s_cmd_t *) ctx;
    if (self->stopping)
        return;
    cmd->cancelling = false;
    const char *message;
    if (s_write_status (reply, why, &message) == 200)
        s_cancel_landed (self, cmd);
    else {
        vw_warn ("scheduler", "cancel of command %s not stored (%s): the command goes on",
                 cmd->command_id, message);
        s_cancel_undone (self, cmd);
    }
}

//  Cancel: the command stays where it is, held, while the cancel is
//  written; it ends when that lands (s_cancel_landed) and goes on if it
//  does not (s_cancel_undone). Written apart from s_save's chain: the
//  command's own state does not change until then.
static void
s_cancel_hold (self_t *self, s_cmd_t *cmd)
{
    cmd->cancelling = true;
    if (cmd->where == S_QUEUED || cmd->where == S_WAITING) {
        if (cmd->where == S_QUEUED)
            vw_cmdqueue_remove (self->queue, cmd->command_id);
        s_timer_cancel (self, &cmd->retry_timer);
        cmd->held_from = cmd->where;
        cmd->where = S_HELD;
    }
    vw_msg_t *msg = s_update_new (cmd, "finish");
    vw_command_update_msg_t *u = &msg->command_update;
    vw_msg_set_str (&u->state, "cancelled");
    vw_msg_set_str (&u->failure_reason, "cancelled_by_user");
    vw_msg_set_str (&u->error, cmd->error);
    u->ts = vw_clock_wall_ms ();
    if (vw_pending_request (self->pending, "store", &msg, S_STORE_TIMEOUT_MS, s_on_cancel_stored,
                            cmd)) {
        vw_msg_destroy (&msg);
        s_on_cancel_stored (self, self->actor, cmd, NULL, "store unreachable");
    }
}

static void
s_on_cancel (self_t *self, vw_msg_t *msg)
{
    const char *id = msg->command_cancel.command_id ? msg->command_cancel.command_id : "";
    s_cancel_t *c = (s_cancel_t *) zmalloc (sizeof (s_cancel_t));
    memcpy (c->peer, msg->peer, sizeof c->peer);
    c->rid = msg->rid;
    s_cmd_t *cmd = (s_cmd_t *) zhashx_lookup (self->cmds, id);
    if (cmd && cmd->cancelling)
        //  A cancel is being written: the same answer as that one's.
        s_wait_for_store (cmd, c);
    else if (cmd && cmd->where != S_DONE) {
        s_wait_for_store (cmd, c);
        s_cancel_hold (self, cmd);
    }
    else if (cmd) {
        vw_msg_t *answer = vw_msg_new (VW_MSG_ID_reply);
        answer->rid = c->rid;
        answer->reply.status = 409;
        vw_msg_set_str (&answer->reply.code, "conflict");
        vw_msg_set_str (&answer->reply.message, "the command has already finished");
        s_send (self, c->peer, &answer);
        free (c);
    }
    else
        //  Not known here: the row says whether it finished before.
        s_cancel_answer_row (self, c, id);
}

//  --------------------------------------------------------------------------
//  Agents

//  Fails a revoked agent's unfinished command; one executing gets its
//  cancel after the end is stored (the session is being closed anyway).
static void
s_revoke_cmd (self_t *self, s_cmd_t *cmd)
{
    if (cmd->cancelling) {
        cmd->revoke_due = true;  //  unless the cancel lands first
        return;
    }
    cmd->abort_on_save = cmd->where == S_EXECUTING;
    s_finish (self, cmd, "failed", "agent_revoked", NULL, NULL);
}

static void
s_on_presence (self_t *self, vw_msg_t *msg)
{
    const vw_agent_presence_msg_t *p = &msg->agent_presence;
    if (!p->agent_id)
        return;
    if (p->conn) {
        s_session_t *session = (s_session_t *) zmalloc (sizeof (s_session_t));
        session->conn = p->conn;
        snprintf (session->edge, sizeof session->edge, "%s", p->edge ? p->edge : "");
        json_t *caps = p->capabilities ? json_loads (p->capabilities, 0, NULL) : NULL;
        if (json_is_array (caps))
            session->capabilities = caps;
        else
            json_decref (caps);
        zhashx_update (self->sessions, p->agent_id, session);
    }
    else
        zhashx_delete (self->sessions, p->agent_id);
    vw_cmdqueue_set_dispatchable (self->queue, p->agent_id, p->dispatchable && p->conn);
    if (p->revoked) {
        //  A revoked agent's unfinished commands fail now (a one-off walk,
        //  on an operator's action), and so do those still to come in the
        //  recovery pages.
        if (!self->loaded)
            zhashx_update (self->revoked, p->agent_id, (void *) "");
        zlistx_t *doomed = zlistx_new ();
        for (s_cmd_t *cmd = (s_cmd_t *) zhashx_first (self->cmds); cmd;
             cmd = (s_cmd_t *) zhashx_next (self->cmds))
            if (cmd->where != S_DONE && streq (cmd->agent_id, p->agent_id))
                zlistx_add_end (doomed, cmd);
        for (s_cmd_t *cmd = (s_cmd_t *) zlistx_first (doomed); cmd;
             cmd = (s_cmd_t *) zlistx_next (doomed))
            s_revoke_cmd (self, cmd);
        zlistx_destroy (&doomed);
    }
    s_pump (self);
}

//  --------------------------------------------------------------------------
//  Recovery

static void s_load (self_t *self, int64_t after);

static void
s_on_load_retry (void *arg, uint64_t id)
{
    self_t *self = (self_t *) arg;
    s_load (self, self->load_after);
}

static void
s_load_later (self_t *self, int64_t after, const char *why)
{
    vw_error ("scheduler", "cannot load unfinished commands after seq %lld (%s); trying again",
              (long long) after, why);
    self->load_after = after;
    vw_timers_add (vw_actor_timers (self->actor), S_LOAD_RETRY_MS, s_on_load_retry, self);
}

//  One row of a page: queued, or waiting out its backoff.
static void
s_recover (self_t *self, const vw_cmdpage_row_t *row, int64_t now)
{
    if (row->seq >= self->live_seq)
        return;
    s_cmd_t *cmd = s_cmd_new (self, row, now);
    if (!cmd)
        return;
    cmd->attempts = row->attempts;
    cmd->failures = row->failures;
    self->load_executing += row->executing;
    if (zhashx_lookup (self->revoked, cmd->agent_id)) {
        //  Its agent was revoked while the pages were loading.
        cmd->where = S_WAITING;  //  not queued, no timer: nothing to undo
        s_revoke_cmd (self, cmd);
        return;
    }
    if (row->next_attempt_at > now) {
        cmd->next_attempt_at = row->next_attempt_at;
        s_arm_retry (self, cmd, now);
    }
    else
        s_queue (self, cmd);
    //  In flight when the last run ended: it waits for its agent again, and
    //  the row says so until it is sent.
    if (row->executing)
        s_save (self, cmd);
}

static void
s_on_page (void *state, vw_actor_t *actor, void *ctx, vw_msg_t *reply, const char *why)
{
    self_t *self = (self_t *) state;
    int64_t after = (int64_t) (intptr_t) ctx;
    if (!reply || reply->id != VW_MSG_ID_commands_page) {
        //  While destroying, every request still pending ends here: asking
        //  again would never end.
        if (!self->stopping)
            s_load_later (self, after, why ? why : "unexpected answer");
        return;
    }
    const vw_commands_page_msg_t *page = &reply->commands_page;
    bool more = page->more;
    //  The store reads the next page while this one is queued.
    if (more)
        s_load (self, page->last);
    int64_t now = vw_clock_wall_ms ();
    vw_cmdpage_reader_t reader;
    vw_cmdpage_reader_init (&reader, page->rows.data, page->rows.size);
    vw_cmdpage_row_t row;
    int64_t rows = 0;
    int rc;
    while ((rc = vw_cmdpage_next (&reader, &row)) == 1) {
        s_recover (self, &row, now);
        rows++;
    }
    if (rc < 0 || rows != page->count)
        vw_error ("scheduler",
                  "page of unfinished commands after seq %lld is malformed: %lld of %lld "
                  "row(s) read",
                  (long long) after, (long long) rows, (long long) page->count);
    if (!more) {
        self->loaded = true;
        zhashx_purge (self->revoked);
        vw_info ("scheduler",
                 "%zu unfinished command(s) recovered from the database in %lld ms (%zu in "
                 "flight at the last stop: sent again)",
                 zhashx_size (self->cmds), (long long) (vw_clock_mono_ms () - self->load_started),
                 self->load_executing);
    }
    s_pump (self);
}

static void
s_load (self_t *self, int64_t after)
{
    vw_msg_t *load = vw_msg_new (VW_MSG_ID_commands_load);
    load->commands_load.after = after;
    load->commands_load.limit = S_LOAD_PAGE;
    if (vw_pending_request (self->pending, "store", &load, S_STORE_TIMEOUT_MS, s_on_page,
                            (void *) (intptr_t) after)) {
        vw_msg_destroy (&load);
        s_load_later (self, after, "store unreachable");
    }
}

//  --------------------------------------------------------------------------
//  Statistics

static int
s_compare_i64 (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

//  GET /metrics: the queue and how commands ended (the store counts rows
//  by state).
static void
s_on_metrics (self_t *self, vw_msg_t *msg)
{
    vw_prom_t p = {0};
    vw_prom_family (&p, "viworks_commands_ended_total", "counter",
                    "Commands that ended since the start, by how (expired and timed-out ones "
                    "are failed; see viworks_command_timeouts_total).");
    const char *ends[] = {"completed", "failed", "expired", "cancelled"};
    uint64_t counts[] = {self->completed, self->failed, self->expired, self->cancelled};
    for (int i = 0; i < 4; i++)
        vw_prom_sample (&p, "viworks_commands_ended_total", "how", ends[i], (double) counts[i]);
    vw_prom_one (&p, "viworks_command_retries_total", "counter",
                 "Failed attempts queued again after their backoff.", (double) self->retried);
    vw_prom_one (&p, "viworks_command_timeouts_total", "counter",
                 "Attempts that got no result within timeout_ms.", (double) self->timeouts);
    vw_prom_family (&p, "viworks_command_queue_depth", "gauge",
                    "Commands waiting for a slot, by priority.");
    const char *priorities[] = {"high", "normal", "low"};
    for (int i = 0; i < 3; i++)
        vw_prom_sample (&p, "viworks_command_queue_depth", "priority", priorities[i],
                        (double) vw_cmdqueue_pending_priority (self->queue, i));
    vw_prom_one (&p, "viworks_commands_in_flight", "gauge", "Commands executing on an agent.",
                 (double) vw_cmdqueue_inflight (self->queue));
    vw_prom_histo (&p, "viworks_command_duration_seconds",
                   "From submit to the command's end (completed, or failed for good).",
                   &self->latency);
    vw_actor_reply_metrics (self->actor, msg, &p);
}

static void
s_on_stats (self_t *self, vw_msg_t *msg)
{
    int64_t window = msg->stats_query.window_ms > 0 ? msg->stats_query.window_ms : 300000;
    int64_t since = vw_clock_mono_ms () - window;
    int64_t *latencies =
        (int64_t *) malloc ((self->ring_used ? self->ring_used : 1) * sizeof (int64_t));
    size_t n = 0, ok = 0;
    for (size_t i = 0; i < self->ring_used; i++)
        if (self->ring[i].at_ms >= since) {
            latencies[n++] = self->ring[i].latency_ms;
            ok += self->ring[i].ok;
        }
    qsort (latencies, n, sizeof (int64_t), s_compare_i64);
    json_t *pct = json_object ();
    const double points[] = {0.50, 0.95, 0.99};
    const char *names[] = {"p50_ms", "p95_ms", "p99_ms"};
    for (int i = 0; i < 3; i++)
        json_object_set_new (pct, names[i],
                             n ? json_integer (latencies[(size_t) (points[i] * (double) (n - 1))])
                               : json_null ());
    free (latencies);
    json_t *body = json_pack (
        "{s:{s:I, s:I, s:I}, s:I, s:I, s:I, s:I, s:o, s:o, s:I, s:{s:I, s:I, s:I, s:I, s:I}}",
        "queue_depth", "high", (json_int_t) vw_cmdqueue_pending_priority (self->queue, 0), "normal",
        (json_int_t) vw_cmdqueue_pending_priority (self->queue, 1), "low",
        (json_int_t) vw_cmdqueue_pending_priority (self->queue, 2), "pending_total",
        (json_int_t) vw_cmdqueue_pending (self->queue), "in_flight",
        (json_int_t) vw_cmdqueue_inflight (self->queue), "waiting_retry",
        (json_int_t) (zhashx_size (self->cmds) - self->done - vw_cmdqueue_pending (self->queue) -
                      vw_cmdqueue_inflight (self->queue)),
        "finished_in_window", (json_int_t) n, "success_rate",
        n ? json_real ((double) ok / (double) n) : json_null (), "latency", pct, "window_ms",
        (json_int_t) window, "since_start", "completed", (json_int_t) self->completed, "failed",
        (json_int_t) self->failed, "retried", (json_int_t) self->retried, "expired",
        (json_int_t) self->expired, "cancelled", (json_int_t) self->cancelled);
    vw_actor_reply_json (self->actor, msg, 200, body);
}

//  --------------------------------------------------------------------------
//  Actor

static void *
s_create (vw_actor_t *actor, void *args)
{
    self_t *self = (self_t *) zmalloc (sizeof (self_t));
    self->config = (const vw_config_t *) args;
    self->actor = actor;
    self->pending = vw_pending_new (actor, self);
    self->queue =
        vw_cmdqueue_new (self->config->commands_max_inflight, self->config->commands_max_per_agent);
    self->cmds = zhashx_new ();
    //  Keys are the records' own ids: nothing copied, nothing to free.
    zhashx_set_key_duplicator (self->cmds, NULL);
    zhashx_set_key_destructor (self->cmds, NULL);
    zhashx_set_destructor (self->cmds, s_cmd_free);
    self->sessions = zhashx_new ();
    zhashx_set_destructor (self->sessions, s_session_free);
    self->late = zhashx_new ();
    zhashx_set_destructor (self->late, s_late_free);
    self->revoked = zhashx_new ();
    if (!self->queue) {
        vw_actor_fail (actor, 1, "scheduler: bad concurrency limits");
        vw_pending_destroy (&self->pending);
        zhashx_destroy (&self->cmds);
        zhashx_destroy (&self->sessions);
        zhashx_destroy (&self->late);
        zhashx_destroy (&self->revoked);
        free (self);
        return NULL;
    }
    self->load_started = vw_clock_mono_ms ();
    self->live_seq = INT64_MAX;
    s_load (self, 0);
    return self;
}

static void
s_destroy (void **state_p)
{
    self_t *self = (self_t *) *state_p;
    if (self) {
        self->stopping = true;
        vw_pending_destroy (&self->pending);
        vw_cmdqueue_destroy (&self->queue, NULL);
        zhashx_destroy (&self->cmds);
        zhashx_destroy (&self->sessions);
        zhashx_destroy (&self->late);
        zhashx_destroy (&self->revoked);
        free (self);
    }
    *state_p = NULL;
}

static void
s_handle (void *state, vw_actor_t *actor, vw_msg_t **msg_p)
{
    self_t *self = (self_t *) state;
    vw_msg_t *msg = *msg_p;
    if (vw_pending_handle (self->pending, msg))
        return;
    switch (msg->id) {
        case VW_MSG_ID_command_submit: s_on_submit (self, msg); break;
        case VW_MSG_ID_command_outcome: s_on_outcome (self, msg_p); break;
        case VW_MSG_ID_command_cancel: s_on_cancel (self, msg); break;
        case VW_MSG_ID_agent_presence: s_on_presence (self, msg); break;
        case VW_MSG_ID_stats_query:
            if (vw_actor_wants_prometheus (msg))
                s_on_metrics (self, msg);
            else
                s_on_stats (self, msg);
            break;
        case VW_MSG_ID_command_inserted: s_on_late_inserted (self, msg); break;
        case VW_MSG_ID_reply:
            //  A write's answer that came after its deadline: the write was
            //  sent again meanwhile (s_save), and that one's answer counts.
            vw_debug ("scheduler", "late answer from '%s' ignored", msg->peer);
            break;
        default:
            vw_warn ("scheduler", "unexpected '%s' from '%s' ignored", vw_msg_name (msg->id),
                     msg->peer);
            break;
    }
}

static void
s_health (void *state, bool *healthy, char *detail, size_t len)
{
    self_t *self = (self_t *) state;
    *healthy = true;
    snprintf (detail, len,
              "%zu pending, %zu in flight, %zu unfinished%s, %zu finished but not stored yet, "
              "%zu state(s) waiting to be written again; %llu completed, %llu failed, %llu "
              "retried, %llu timed out, %llu expired, %llu cancelled",
              vw_cmdqueue_pending (self->queue), vw_cmdqueue_inflight (self->queue),
              zhashx_size (self->cmds) - self->done, self->loaded ? "" : " (loading)", self->done,
              self->unstored, (unsigned long long) self->completed,
              (unsigned long long) self->failed, (unsigned long long) self->retried,
              (unsigned long long) self->timeouts, (unsigned long long) self->expired,
              (unsigned long long) self->cancelled);
}

const vw_actor_class_t vw_scheduler_class = {
    .name = "scheduler",
    .create = s_create,
    .destroy = s_destroy,
    .handle = s_handle,
    .health = s_health,
};
