/*  test_cmdmodel - a randomized state-machine test of the scheduler and the
    executor together, against a model (issue 9, deliverable 7; SPEC §5).

    Both real actors run on one test broker: vw_scheduler_class with small
    limits (S_INFLIGHT in flight, S_PER_AGENT per agent) and
    vw_executor_class. Test peers play everything around them, each a small
    model of its own:

      store     an in-memory command table. An insert commits a pending row
                (202, with the row to queue; 409 for a revoked agent); a
                transition (command_update, ack'd) applies with the rules of
                store/vw_command_rows.c: executing, pending and finish only
                to a pending or executing row, else 409; command_get reads a
                row. While the model says the database refuses writes, a
                commit (an insert or an ack'd update) is answered 503 and
                nothing is applied.
      edge      the REST API (submits, cancels, statistics) and the agents'
                side of the WebSocket edge: it gets command_send, holds the
                attempts its agents run, answers them (completed, failed,
                with the attempt echo or without, stale ones, acks), reports
                a send to a closing or closed connection undeliverable, and
                reports closed sessions to the executor.
      registry  agent presence, a fresh connection id per session, and one
                revocation a run.

    test_model runs a seeded pseudo-random sequence of operations - submits
    with short timeouts, 0-2 retries and sometimes a short expiry; agents
    going away, closing, coming back, revoked; results; acks; cancels; time
    passing; the database refusing commits for a while or now and then -
    while one loop handles whatever reaches the peers and the event stream,
    as it comes. Then the faults stop, every agent (but a revoked one) comes
    online, every attempt delivered is completed, and all must settle within
    S_SETTLE_MS.

    Invariants, checked as messages arrive and at the end:
      - every accepted command (202) has one row, which ends in a state §5
        allows: completed (after its agent said so for the attempt it ran);
        failed with agent_error, timeout, expired or agent_revoked (only for
        a revoked agent); or cancelled (cancelled_by_user). Its end is
        applied once: a second finish answered 409 is allowed and changes
        nothing; any other transition after the end is a violation.
      - memory ends each command once too: exactly one final command.state
        event, nothing after it, equal to the row; the scheduler's
        since_start counters equal the table's.
      - attempts: failures <= max_retries + 1 (= for a command failed by
        timeout or agent_error; <= max_retries for one completed or
        cancelled); nothing is sent after max_retries + 1 certain failures;
        sends <= failures + lost + unsent + 1 (a lost or unsent attempt is
        not a failure); the row's attempts <= sends; a retry waits no longer
        than its backoff allows.
      - expires_at: the dispatch time the scheduler writes (started_at) is
        before it, exactly; a send reaches the edge, and its command.state
        event is stamped, at most S_LATENCY_MS after it (latency, only ever
        late); a command expires once it is due, and no later than its
        attempt's timeout after it.
      - an agent holds at most one attempt of a command (the earlier one was
        answered, cancelled or lost before the next is sent), at most
        S_PER_AGENT attempts, and the agents together at most S_INFLIGHT,
        counting an attempt until its agent is told to stop it.
      - the API reports exactly the cancels the database has: a command
        ends cancelled if and only if a cancel of it was answered 200 (with
        the row, cancelled); 503 means the cancel's write failed and the
        command went on; 409 is for a command finished before. Every submit
        and cancel is answered once.
      - no slot leaks: pending_total, in_flight and waiting_retry are 0, the
        scheduler holds no record and no unstored state, the executor no
        attempt.

    Two scripted cases pin the cancel of an executing command down with
    the same model: test_cancel_frees_the_slot_when_the_agent_is_told (the
    slot goes back when the agent gets its cancel frame - test_model found
    it going back before, so that an agent ran more than its limit - and is
    used at once) and test_cancel_refused_goes_on (a cancel whose write
    fails is answered 503 and the command goes on).

    The seed is printed; VW_MODEL_SEED=<n> replays its sequence of
    operations (the actors' timing and backoff jitter still vary, so a
    replay is close, not exact); VW_MODEL_STEPS=<n> sets the number of
    operations (default S_STEPS); VW_MODEL_TRACE=1 prints each operation as
    it runs and keeps the actors' log at its default level. When an
    invariant breaks, the operations and what the peers saw are printed.
    Every wait is a receive with a deadline.
*/
#include "vw_actors.h"
#include "vw_clock.h"
#include "vw_config.h"
#include "vw_log.h"
#include "vw_testbroker.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_AGENTS      4
#define S_INFLIGHT    4    //  commands_max_inflight
#define S_PER_AGENT   2    //  commands_max_per_agent
#define S_STEPS       300  //  operations, by default
#define S_STEPS_MAX   5000
#define S_CMDS_MAX    4096
#define S_ASKS_MAX    16384
#define S_CONN_FIRST  100
#define S_CONNS_MAX   8192
#define S_LONG_EXPIRY 20000   //  ms: a command that should not expire
#define S_LATENCY_MS  500     //  message and timer latency allowed (only ever late, never early)
#define S_CLOCK_MS    2       //  timers run on the monotonic clock, expires_at is wall time
#define S_SETTLE_MS   10000   //  the end must be reached within this (backoffs <= 2.4 s)
#define S_BAD_CONN    999999  //  a connection that never existed
#define S_VIOLATIONS  64      //  printed at most

typedef struct {
    char id[64];
    int agent;
    int64_t timeout_ms, max_retries, expires_at;
    bool accepted;  //  the edge got its 202
    //  The row, as the fake store holds it.
    char state[16];
    char reason[32];
    int64_t attempts, failures;
    int finishes;    //  finish applied
    int refinishes;  //  finish answered 409
    //  The agents' side.
    int sends, lost, unsent;
    int certain_failures;  //  sends ended by a failed result or a cancel frame while held
    bool last_failed;      //  the last send ended that way
    bool held;             //  the agent runs an attempt of it
    int completions;       //  completed results for the attempt it ran (not stale ones)
    int64_t held_conn, held_attempt, last_conn;
    //  The API's side.
    int cancels, cancel_200, cancel_409, cancel_503;
    //  Memory: the scheduler's command.state events.
    int final_events;
    char ev_state[16], ev_reason[32];
} s_cmd_t;

typedef enum { S_OFFLINE, S_ONLINE, S_CLOSING } s_link_t;

typedef struct {
    s_link_t link;
    int64_t conn;  //  online or closing: its session's connection
    bool revoked;  //  for good: the store refuses its commands, it never comes back
} s_agent_t;

typedef enum { S_ASK_SUBMIT, S_ASK_CANCEL, S_ASK_STATS, S_ASK_PING } s_ask_kind_t;

typedef struct {
    uint64_t rid;
    s_ask_kind_t kind;
    int arg;  //  submit: the agent; cancel: the command; ping: 0 scheduler, 1 executor
    bool answered;
} s_ask_t;

typedef struct {
    vw_tb_t *tb;
    vw_tb_peer_t *store, *edge, *registry;
    zsock_t *events;
    uint64_t seed;
    uint64_t rng;   //  the operations
    uint64_t frng;  //  the store's sporadic refusals (drawn as messages come)
    int64_t start;
    bool trace;
    s_cmd_t *cmds;
    int ncmds;
    zhashx_t *by_id;  //  command id -> index + 1
    s_agent_t agents[S_AGENTS];
    int64_t next_conn;
    int conn_agent[S_CONNS_MAX];
    s_ask_t *asks;
    int nasks;
    int64_t seq;
    bool loaded;  //  the recovery load was answered
    bool draining;
    int64_t store_down_until;  //  monotonic ms
    int fail_permille;         //  sporadic refusals outside a window
    //  Counters for the report.
    int submits, accepted, rejected, refused_commits, stale_results, dispatches, timeouts_seen;
    int step, steps;  //  operations done and to do
    //  The last answers to the final queries.
    json_t *stats;
    char health[2][256];
    bool have_health[2];
    zlistx_t *violations;  //  char *
    int nviolations;
    zlistx_t *oplog;  //  char *
} s_model_t;

//  --------------------------------------------------------------------------
//  Randomness, logs, violations

static uint64_t
s_splitmix (uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t
s_rand (s_model_t *m)
{
    return s_splitmix (&m->rng);
}

//  lo..hi inclusive
static int64_t
s_range (s_model_t *m, int64_t lo, int64_t hi)
{
    return lo + (int64_t) (s_rand (m) % (uint64_t) (hi - lo + 1));
}

static int64_t
s_elapsed (s_model_t *m)
{
    return vw_clock_mono_ms () - m->start;
}

static void s_log (s_model_t *m, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static void
s_log (s_model_t *m, const char *fmt, ...)
{
    char line[512];
    int n = snprintf (line, sizeof line, "%6lld ms  ", (long long) s_elapsed (m));
    va_list args;
    va_start (args, fmt);
    vsnprintf (line + n, sizeof line - (size_t) n, fmt, args);
    va_end (args);
    if (m->trace)
        fprintf (stderr, "model: %s\n", line);
    zlistx_add_end (m->oplog, strdup (line));
}

static void s_violation (s_model_t *m, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
s_violation (s_model_t *m, const char *fmt, ...)
{
    char line[512];
    va_list args;
    va_start (args, fmt);
    vsnprintf (line, sizeof line, fmt, args);
    va_end (args);
    m->nviolations++;
    fprintf (stderr, "model: VIOLATION (seed %" PRIu64 ", at %lld ms): %s\n", m->seed,
             (long long) s_elapsed (m), line);
    s_log (m, "VIOLATION %s", line);
    if (m->nviolations <= S_VIOLATIONS)
        zlistx_add_end (m->violations, strdup (line));
}

static s_cmd_t *
s_lookup (s_model_t *m, const char *id)
{
    intptr_t i = id ? (intptr_t) zhashx_lookup (m->by_id, id) : 0;
    return i ? &m->cmds[i - 1] : NULL;
}

static int
s_agent_of (const char *agent_id)
{
    int agent = -1;
    if (!agent_id || sscanf (agent_id, "gw-%d", &agent) != 1 || agent < 0 || agent >= S_AGENTS)
        return -1;
    return agent;
}

static int
s_conn_agent (s_model_t *m, int64_t conn)
{
    int64_t i = conn - S_CONN_FIRST;
    return i >= 0 && i < S_CONNS_MAX ? m->conn_agent[i] : -1;
}

static bool
s_finished (const s_cmd_t *cmd)
{
    return streq (cmd->state, "completed") || streq (cmd->state, "failed") ||
           streq (cmd->state, "cancelled");
}

static s_ask_t *
s_ask_new (s_model_t *m, s_ask_kind_t kind, int arg, uint64_t rid)
{
    if (!rid) {
        s_violation (m, "the edge could not send a request");
        return NULL;
    }
    assert_true (m->nasks < S_ASKS_MAX);
    s_ask_t *ask = &m->asks[m->nasks++];
    ask->rid = rid;
    ask->kind = kind;
    ask->arg = arg;
    return ask;
}

static s_ask_t *
s_ask_find (s_model_t *m, uint64_t rid)
{
    for (int i = m->nasks - 1; i >= 0; i--)
        if (m->asks[i].rid == rid)
            return &m->asks[i];
    return NULL;
}

//  --------------------------------------------------------------------------
//  The store

static bool
s_commit_fails (s_model_t *m)
{
    if (m->draining)
        return false;
    if (vw_clock_mono_ms () < m->store_down_until)
        return true;
    return s_splitmix (&m->frng) % 1000 < (uint64_t) m->fail_permille;
}

static void
s_store_answer (s_model_t *m, vw_msg_t **request_p, int status, const char *json)
{
    const char *code = status == 200   ? NULL
                       : status == 409 ? "conflict"
                       : status == 404 ? "not_found"
                                       : "unavailable";
    vw_tb_answer (m->store, "scheduler", request_p, status, json, code);
}

static void
s_store_load (s_model_t *m, vw_msg_t **msg_p)
{
    vw_msg_t *page = vw_msg_new (VW_MSG_ID_commands_page);
    page->rid = (*msg_p)->rid;
    vw_msg_destroy (msg_p);
    assert_int_equal (vw_tb_send (m->store, "scheduler", &page), 0);
    m->loaded = true;
}

static void
s_store_insert (s_model_t *m, vw_msg_t **msg_p)
{
    vw_msg_t *msg = *msg_p;
    const vw_command_insert_msg_t *in = &msg->command_insert;
    int agent = s_agent_of (in->agent_id);
    vw_msg_t *done = vw_msg_new (VW_MSG_ID_command_inserted);
    done->rid = msg->rid;
    vw_msg_set_str (&done->command_inserted.request_id, in->command_id);
    if (!in->command_id || agent < 0 || s_lookup (m, in->command_id) ||
        strlen (in->command_id) >= sizeof m->cmds[0].id) {
        s_violation (m, "insert of a bad or known command '%s' for '%s'",
                     in->command_id ? in->command_id : "-", in->agent_id ? in->agent_id : "-");
        done->command_inserted.status = 400;
        vw_msg_set_str (&done->command_inserted.code, "bad_request");
    }
    else if (m->agents[agent].revoked) {
        done->command_inserted.status = 409;
        vw_msg_set_str (&done->command_inserted.code, "conflict");
        vw_msg_set_str (&done->command_inserted.message, "the agent is revoked (model)");
        s_log (m, "store: insert of %s refused: gw-%d is revoked", in->command_id, agent);
    }
    else if (s_commit_fails (m) || m->ncmds == S_CMDS_MAX) {
        m->refused_commits++;
        done->command_inserted.status = 503;
        vw_msg_set_str (&done->command_inserted.code, "unavailable");
        vw_msg_set_str (&done->command_inserted.message, "the database refuses writes (model)");
        s_log (m, "store: insert of %s refused (503)", in->command_id);
    }
    else {
        s_cmd_t *cmd = &m->cmds[m->ncmds++];
        memset (cmd, 0, sizeof *cmd);
        snprintf (cmd->id, sizeof cmd->id, "%s", in->command_id);
        cmd->agent = agent;
        cmd->timeout_ms = in->timeout_ms;
        cmd->max_retries = in->max_retries;
        cmd->expires_at = in->expires_at;
        snprintf (cmd->state, sizeof cmd->state, "pending");
        zhashx_insert (m->by_id, cmd->id, (void *) (intptr_t) m->ncmds);
        done->command_inserted.status = 202;
        done->command_inserted.json = zsys_sprintf ("{\"command_id\":\"%s\"}", cmd->id);
        done->command_inserted.rows =
            zsys_sprintf ("[[\"%s\",\"gw-%d\",%lld]]", cmd->id, agent, (long long) ++m->seq);
        s_log (m,
               "store: inserted %s for gw-%d (timeout %lld ms, %lld retries, expires in %lld ms)",
               cmd->id, agent, (long long) cmd->timeout_ms, (long long) cmd->max_retries,
               (long long) (cmd->expires_at - vw_clock_wall_ms ()));
    }
    vw_msg_destroy (msg_p);
    assert_int_equal (vw_tb_send (m->store, "scheduler", &done), 0);
}

static bool
s_reason_is (const char *reason, const char *const *allowed)
{
    for (; *allowed; allowed++)
        if (streq (reason, *allowed))
            return true;
    return false;
}

//  A finish, checked before it is applied: a state and a reason §5 allows,
//  and the failures the scheduler counted fit the command's retries.
static void
s_check_finish (s_model_t *m, s_cmd_t *cmd, const vw_command_update_msg_t *u)
{
    static const char *const failed[] = {"agent_error", "timeout", "expired", "agent_revoked",
                                         NULL};
    const char *state = u->state ? u->state : "";
    const char *reason = u->failure_reason ? u->failure_reason : "";
    if (streq (state, "completed")) {
        if (*reason)
            s_violation (m, "%s completed with failure_reason '%s'", cmd->id, reason);
        //  Its agent must have said so (for the attempt it ran) before.
        if (!cmd->completions)
            s_violation (m, "%s completed, but its agent sent no valid completed result", cmd->id);
    }
    else if (streq (state, "failed")) {
        if (!s_reason_is (reason, failed))
            s_violation (m, "%s failed with failure_reason '%s'", cmd->id, reason);
    }
    else if (streq (state, "cancelled")) {
        if (!streq (reason, "cancelled_by_user"))
            s_violation (m, "%s cancelled with failure_reason '%s'", cmd->id, reason);
    }
    else
        s_violation (m, "%s finished in state '%s'", cmd->id, state);
    if (u->failures > cmd->max_retries + 1)
        s_violation (m, "%s finished %s after %lld failures (max_retries %lld)", cmd->id, state,
                     (long long) u->failures, (long long) cmd->max_retries);
    if ((streq (reason, "timeout") || streq (reason, "agent_error")) &&
        u->failures != cmd->max_retries + 1)
        s_violation (m, "%s failed (%s) after %lld failures: max_retries is %lld", cmd->id, reason,
                     (long long) u->failures, (long long) cmd->max_retries);
    if ((streq (state, "completed") || streq (state, "cancelled")) &&
        u->failures > cmd->max_retries)
        s_violation (m, "%s %s after %lld failures: it ran past max_retries %lld", cmd->id, state,
                     (long long) u->failures, (long long) cmd->max_retries);
    if (streq (reason, "expired") && u->ts < cmd->expires_at - S_CLOCK_MS)
        s_violation (m, "%s expired %lld ms before its expires_at", cmd->id,
                     (long long) (cmd->expires_at - u->ts));
    //  Waiting, it expires at expires_at; executing, when its attempt ends,
    //  within timeout_ms of a dispatch made before expires_at.
    if (streq (reason, "expired") && u->ts > cmd->expires_at + cmd->timeout_ms + S_LATENCY_MS)
        s_violation (m, "%s expired %lld ms after its expires_at (timeout %lld ms)", cmd->id,
                     (long long) (u->ts - cmd->expires_at), (long long) cmd->timeout_ms);
}

static void
s_store_update (s_model_t *m, vw_msg_t **msg_p)
{
    const vw_command_update_msg_t *u = &(*msg_p)->command_update;
    s_cmd_t *cmd = s_lookup (m, u->command_id);
    const char *event = u->event ? u->event : "";
    if (streq (event, "delivered")) {
        //  The executor's best-effort note of an ack: no answer.
        if (u->ack || !cmd)
            s_violation (m, "bad delivered update for '%s'", u->command_id ? u->command_id : "-");
        vw_msg_destroy (msg_p);
        return;
    }
    if (!u->ack || !cmd) {
        s_violation (m, "%s update '%s' for '%s'", u->ack ? "unknown command:" : "unacknowledged",
                     event, u->command_id ? u->command_id : "-");
        if (u->ack)
            s_store_answer (m, msg_p, 409, NULL);
        else
            vw_msg_destroy (msg_p);
        return;
    }
    if (s_commit_fails (m)) {
        m->refused_commits++;
        s_log (m, "store: %s of %s refused (503)", event, cmd->id);
        s_store_answer (m, msg_p, 503, NULL);
        return;
    }
    bool open = !s_finished (cmd);
    if (streq (event, "executing")) {
        //  ts is the scheduler's own dispatch time: exact.
        if (u->ts >= cmd->expires_at)
            s_violation (m, "%s dispatched %lld ms at/after its expires_at (started_at)", cmd->id,
                         (long long) (u->ts - cmd->expires_at));
        if (u->attempt < 1)
            s_violation (m, "%s executing as attempt %lld", cmd->id, (long long) u->attempt);
        if (open) {
            snprintf (cmd->state, sizeof cmd->state, "executing");
            cmd->attempts = u->attempt;
        }
    }
    else if (streq (event, "pending")) {
        if (u->next_attempt_at) {
            //  Waiting out a backoff: a retry is due, so retries remain, and
            //  it waits no longer than §5's backoff allows.
            int64_t failures = u->failures;
            if (failures < 1 || failures > cmd->max_retries)
                s_violation (m, "%s waits for a retry after %lld failures (max_retries %lld)",
                             cmd->id, (long long) failures, (long long) cmd->max_retries);
            int64_t base =
                failures >= 1 && failures <= 6 ? (int64_t) 1000 << (failures - 1) : 60000;
            if (base > 60000)
                base = 60000;
            int64_t latest = vw_clock_wall_ms () + base + base / 5 + S_CLOCK_MS;
            if (u->next_attempt_at > latest)
                s_violation (m, "%s retries %lld ms later than its backoff allows", cmd->id,
                             (long long) (u->next_attempt_at - latest));
        }
        if (open) {
            snprintf (cmd->state, sizeof cmd->state, "pending");
            cmd->attempts = u->attempt;
            cmd->failures = u->failures;
            if (u->failure_reason)
                snprintf (cmd->reason, sizeof cmd->reason, "%s", u->failure_reason);
        }
    }
    else if (streq (event, "finish")) {
        if (open) {
            s_check_finish (m, cmd, u);
            snprintf (cmd->state, sizeof cmd->state, "%s", u->state ? u->state : "?");
            snprintf (cmd->reason, sizeof cmd->reason, "%s",
                      u->failure_reason ? u->failure_reason : "");
            cmd->failures = u->failures;
            if (u->attempt > cmd->attempts)
                cmd->attempts = u->attempt;
            cmd->finishes++;
            s_log (m, "store: %s finished %s%s%s (attempts %lld, failures %lld)", cmd->id,
                   cmd->state, *cmd->reason ? "/" : "", cmd->reason, (long long) cmd->attempts,
                   (long long) cmd->failures);
        }
        else
            cmd->refinishes++;
    }
    else {
        s_violation (m, "%s: unknown update event '%s'", cmd->id, event);
        open = false;
    }
    if (!open && !streq (event, "finish"))
        s_violation (m, "%s: '%s' written after its end (%s) was stored", cmd->id, event,
                     cmd->state);
    s_store_answer (m, msg_p, open ? 200 : 409, NULL);
}

static void
s_store_get (s_model_t *m, vw_msg_t **msg_p)
{
    s_cmd_t *cmd = s_lookup (m, (*msg_p)->command_get.command_id);
    if (!cmd) {
        s_violation (m, "the scheduler reads unknown command '%s'",
                     (*msg_p)->command_get.command_id ? (*msg_p)->command_get.command_id : "-");
        s_store_answer (m, msg_p, 404, NULL);
        return;
    }
    json_t *row =
        json_pack ("{s:s, s:s, s:s?, s:I, s:I}", "command_id", cmd->id, "state", cmd->state,
                   "failure_reason", *cmd->reason ? cmd->reason : NULL, "attempts",
                   (json_int_t) cmd->attempts, "failures", (json_int_t) cmd->failures);
    char *text = json_dumps (row, JSON_COMPACT);
    json_decref (row);
    s_store_answer (m, msg_p, 200, text);
    free (text);
}

static void
s_on_store (s_model_t *m, vw_msg_t **msg_p)
{
    switch ((*msg_p)->id) {
        case VW_MSG_ID_commands_load: s_store_load (m, msg_p); break;
        case VW_MSG_ID_command_insert: s_store_insert (m, msg_p); break;
        case VW_MSG_ID_command_update: s_store_update (m, msg_p); break;
        case VW_MSG_ID_command_get: s_store_get (m, msg_p); break;
        default:
            s_violation (m, "the store got '%s' from '%s'", vw_msg_name ((*msg_p)->id),
                         (*msg_p)->peer);
            vw_msg_destroy (msg_p);
            break;
    }
}

//  --------------------------------------------------------------------------
//  The edge: agents' side

//  The agent (or the edge, for undeliverable) tells the executor.
static void
s_event (s_model_t *m, const s_cmd_t *cmd, int64_t conn, const char *kind, const char *status,
         int64_t attempt)
{
    vw_msg_t *e = vw_msg_new (VW_MSG_ID_command_event);
    e->command_event.conn = conn;
    e->command_event.agent_id = zsys_sprintf ("gw-%d", cmd->agent);
    vw_msg_set_str (&e->command_event.command_id, cmd->id);
    vw_msg_set_str (&e->command_event.kind, kind);
    vw_msg_set_str (&e->command_event.status, status);
    if (status && streq (status, "completed"))
        vw_msg_set_str (&e->command_event.result, "{\"ok\":true}");
    else if (status)
        vw_msg_set_str (&e->command_event.error, "the model says no");
    e->command_event.attempt = attempt;
    assert_int_equal (vw_tb_send (m->edge, "executor", &e), 0);
}

//  Attempts the agents run now: on one connection, or on all (conn 0); of
//  these, *ended those of commands asked to be cancelled, of a revoked
//  agent, or ended already (in memory: their final command.state event is
//  out; or in the database), if ended is not NULL.
static int
s_held (s_model_t *m, int64_t conn, int *ended)
{
    int n = 0;
    if (ended)
        *ended = 0;
    for (int i = 0; i < m->ncmds; i++) {
        const s_cmd_t *cmd = &m->cmds[i];
        if (cmd->held && (!conn || cmd->held_conn == conn)) {
            n++;
            if (ended && (cmd->cancels || m->agents[cmd->agent].revoked || cmd->final_events ||
                          s_finished (cmd)))
                (*ended)++;
        }
    }
    return n;
}

static void
s_edge_cancel_frame (s_model_t *m, s_cmd_t *cmd, const vw_command_send_msg_t *s)
{
    if (cmd->held && cmd->held_conn == s->conn) {
        //  A timeout (or a cancel or revocation, which end it anyway): the
        //  attempt failed.
        cmd->held = false;
        cmd->certain_failures++;
        cmd->last_failed = true;
        m->timeouts_seen++;
        s_log (m, "edge: cancel frame for %s attempt %lld on conn %lld", cmd->id,
               (long long) cmd->held_attempt, (long long) s->conn);
    }
    else if (s->conn != cmd->last_conn)
        s_violation (m, "cancel frame for %s to conn %lld: it was last sent to conn %lld", cmd->id,
                     (long long) s->conn, (long long) cmd->last_conn);
}

static void
s_edge_send (s_model_t *m, vw_msg_t **msg_p)
{
    const vw_command_send_msg_t *s = &(*msg_p)->command_send;
    s_cmd_t *cmd = s_lookup (m, s->command_id);
    int owner = s_conn_agent (m, s->conn);
    if (!cmd)
        s_violation (m, "command_send for unknown command '%s'",
                     s->command_id ? s->command_id : "-");
    else if (owner != cmd->agent)
        s_violation (m, "%s (for gw-%d) sent to conn %lld of agent %d", cmd->id, cmd->agent,
                     (long long) s->conn, owner);
    else if (!s->type)
        s_edge_cancel_frame (m, cmd, s);
    else {
        int64_t now = vw_clock_wall_ms ();
        cmd->sends++;
        m->dispatches++;
        if (now >= cmd->expires_at + S_LATENCY_MS)
            s_violation (m, "%s attempt %lld reached the edge %lld ms after its expires_at",
                         cmd->id, (long long) s->attempt, (long long) (now - cmd->expires_at));
        if (cmd->certain_failures > cmd->max_retries)
            s_violation (m, "%s attempt %lld sent after %d failed attempts (max_retries %lld)",
                         cmd->id, (long long) s->attempt, cmd->certain_failures,
                         (long long) cmd->max_retries);
        if (cmd->held)
            s_violation (m,
                         "%s attempt %lld sent to conn %lld while attempt %lld still runs on "
                         "conn %lld (never cancelled)",
                         cmd->id, (long long) s->attempt, (long long) s->conn,
                         (long long) cmd->held_attempt, (long long) cmd->held_conn);
        if (s->attempt < 1 || s->timeout_ms != cmd->timeout_ms)
            s_violation (m, "%s sent as attempt %lld with timeout %lld ms", cmd->id,
                         (long long) s->attempt, (long long) s->timeout_ms);
        cmd->last_conn = s->conn;
        cmd->held = false;
        s_agent_t *agent = &m->agents[cmd->agent];
        if (agent->link != S_ONLINE || agent->conn != s->conn) {
            //  The connection is closing or gone: the edge cannot deliver.
            cmd->unsent++;
            cmd->last_failed = false;
            s_log (m, "edge: %s attempt %lld to conn %lld undeliverable", cmd->id,
                   (long long) s->attempt, (long long) s->conn);
            s_event (m, cmd, s->conn, "undeliverable", NULL, 0);
        }
        else if (m->draining) {
            cmd->last_failed = false;
            s_log (m, "edge: %s attempt %lld on conn %lld completed at once", cmd->id,
                   (long long) s->attempt, (long long) s->conn);
            s_event (m, cmd, s->conn, "result", "completed", s->attempt);
            cmd->completions++;
        }
        else {
            cmd->held = true;
            cmd->held_conn = s->conn;
            cmd->held_attempt = s->attempt;
            s_log (m, "edge: %s attempt %lld runs on conn %lld (gw-%d)", cmd->id,
                   (long long) s->attempt, (long long) s->conn, cmd->agent);
            //  The limits, as the agents see them: an attempt counts from
            //  its send until it is answered, lost or cancelled.
            //  Those of commands cancelled, revoked or ended (the scheduler
            //  gave their slot back) are told apart, so that a limit broken
            //  otherwise reads as what it is.
            int ended_agent, ended_all;
            int on_agent = s_held (m, s->conn, &ended_agent), all = s_held (m, 0, &ended_all);
            if (on_agent - ended_agent > S_PER_AGENT || all - ended_all > S_INFLIGHT)
                s_violation (m,
                             "gw-%d runs %d attempts and the agents %d at once (%s the latest), "
                             "not counting cancelled or revoked ones: the limits are %d and %d",
                             cmd->agent, on_agent - ended_agent, all - ended_all, cmd->id,
                             S_PER_AGENT, S_INFLIGHT);
            else if (on_agent > S_PER_AGENT || all > S_INFLIGHT)
                s_violation (m,
                             "gw-%d runs %d attempts and the agents %d at once (%s the latest): "
                             "the limits are %d and %d; %d and %d of these are of commands "
                             "cancelled or revoked whose cancel frame has not been sent",
                             cmd->agent, on_agent, all, cmd->id, S_PER_AGENT, S_INFLIGHT,
                             ended_agent, ended_all);
        }
    }
    vw_msg_destroy (msg_p);
}

//  --------------------------------------------------------------------------
//  The edge: API side

static void
s_edge_submitted (s_model_t *m, s_ask_t *ask, const vw_reply_msg_t *r)
{
    if (r->status == 503 || (r->status == 409 && m->agents[ask->arg].revoked)) {
        m->rejected++;
        s_log (m, "api: submit for gw-%d answered %lld", ask->arg, (long long) r->status);
        return;
    }
    json_t *body = r->status == 202 && r->json ? json_loads (r->json, 0, NULL) : NULL;
    s_cmd_t *cmd = s_lookup (m, json_string_value (json_object_get (body, "command_id")));
    json_decref (body);
    if (!cmd) {
        s_violation (m, "submit for gw-%d answered %lld (%s) without a known command", ask->arg,
                     (long long) r->status, r->json ? r->json : "-");
        return;
    }
    if (cmd->accepted || cmd->agent != ask->arg)
        s_violation (m, "%s accepted twice, or for another agent", cmd->id);
    cmd->accepted = true;
    m->accepted++;
    s_log (m, "api: %s accepted (202)", cmd->id);
}

static void
s_edge_cancelled (s_model_t *m, s_ask_t *ask, const vw_reply_msg_t *r)
{
    s_cmd_t *cmd = &m->cmds[ask->arg];
    s_log (m, "api: cancel of %s answered %lld", cmd->id, (long long) r->status);
    if (r->status == 200) {
        json_t *row = r->json ? json_loads (r->json, 0, NULL) : NULL;
        const char *state = json_string_value (json_object_get (row, "state"));
        if (!state || !streq (state, "cancelled"))
            s_violation (m, "cancel of %s answered 200 with the row %s", cmd->id,
                         r->json ? r->json : "-");
        json_decref (row);
        cmd->cancel_200++;
    }
    else if (r->status == 409)
        cmd->cancel_409++;
    else if (r->status == 503)
        cmd->cancel_503++;
    else
        s_violation (m, "cancel of %s answered %lld %s", cmd->id, (long long) r->status,
                     r->code ? r->code : "");
}

static void
s_on_edge (s_model_t *m, vw_msg_t **msg_p)
{
    vw_msg_t *msg = *msg_p;
    if (msg->id == VW_MSG_ID_command_send) {
        s_edge_send (m, msg_p);
        return;
    }
    s_ask_t *ask = msg->rid ? s_ask_find (m, msg->rid) : NULL;
    if (!ask || ask->answered || (msg->id != VW_MSG_ID_reply && msg->id != VW_MSG_ID_pong)) {
        s_violation (m, "the edge got '%s' from '%s' (rid %" PRIu64 ") it did not ask for",
                     vw_msg_name (msg->id), msg->peer, msg->rid);
        vw_msg_destroy (msg_p);
        return;
    }
    ask->answered = true;
    if (ask->kind == S_ASK_PING) {
        if (msg->id != VW_MSG_ID_pong)
            s_violation (m, "a ping answered with '%s'", vw_msg_name (msg->id));
        snprintf (m->health[ask->arg], sizeof m->health[0], "%s",
                  msg->pong.detail ? msg->pong.detail : "");
        m->have_health[ask->arg] = true;
    }
    else if (msg->id != VW_MSG_ID_reply)
        s_violation (m, "a request answered with '%s'", vw_msg_name (msg->id));
    else if (ask->kind == S_ASK_SUBMIT)
        s_edge_submitted (m, ask, &msg->reply);
    else if (ask->kind == S_ASK_CANCEL)
        s_edge_cancelled (m, ask, &msg->reply);
    else if (ask->kind == S_ASK_STATS) {
        json_decref (m->stats);
        m->stats = msg->reply.json ? json_loads (msg->reply.json, 0, NULL) : NULL;
    }
    vw_msg_destroy (msg_p);
}

//  --------------------------------------------------------------------------
//  The event stream: memory's view

static void
s_on_state_event (s_model_t *m)
{
    zmsg_t *zmsg = zmsg_recv (m->events);
    if (!zmsg)
        return;
    char *topic = zmsg_popstr (zmsg);
    char *text = zmsg_popstr (zmsg);
    zmsg_destroy (&zmsg);
    json_t *event = text ? json_loads (text, 0, NULL) : NULL;
    const char *id = json_string_value (json_object_get (event, "command_id"));
    const char *state = json_string_value (json_object_get (event, "state"));
    const char *reason = json_string_value (json_object_get (event, "failure_reason"));
    int64_t ts = json_integer_value (json_object_get (event, "ts"));
    s_cmd_t *cmd = s_lookup (m, id);
    if (!topic || !streq (topic, "command.state"))
        ;  //  not ours
    else if (!cmd || !state)
        s_violation (m, "command.state event for an unknown command: %s", text ? text : "-");
    else if (cmd->final_events)
        s_violation (m, "%s: event '%s' after its end (%s)", cmd->id, state, cmd->ev_state);
    else if (streq (state, "completed") || streq (state, "failed") || streq (state, "cancelled")) {
        cmd->final_events++;
        snprintf (cmd->ev_state, sizeof cmd->ev_state, "%s", state);
        snprintf (cmd->ev_reason, sizeof cmd->ev_reason, "%s", reason ? reason : "");
    }
    else if (streq (state, "executing") && ts >= cmd->expires_at + S_LATENCY_MS)
        //  ts is read just after the dispatch: a small tolerance.
        s_violation (m, "%s executing at %lld ms after its expires_at", cmd->id,
                     (long long) (ts - cmd->expires_at));
    json_decref (event);
    free (topic);
    free (text);
}

//  --------------------------------------------------------------------------
//  The loop

//  Handles whatever reaches the store, the edge and the event stream for
//  `ms` milliseconds (0: what has arrived already).
static void
s_pump (s_model_t *m, int64_t ms)
{
    int64_t deadline = vw_clock_mono_ms () + ms;
    while (true) {
        for (int round = 0; round < 100000; round++) {
            int n = 0;
            vw_msg_t *msg;
            if ((msg = vw_tb_recv (m->store, 0))) {
                s_on_store (m, &msg);
                n++;
            }
            if ((msg = vw_tb_recv (m->edge, 0))) {
                s_on_edge (m, &msg);
                n++;
            }
            if (zsock_events (m->events) & ZMQ_POLLIN) {
                s_on_state_event (m);
                n++;
            }
            if (!n)
                break;
        }
        int64_t left = deadline - vw_clock_mono_ms ();
        if (left <= 0)
            break;
        zmq_pollitem_t items[] = {
            {zsock_resolve (vw_tb_peer_socket (m->store)), 0, ZMQ_POLLIN, 0},
            {zsock_resolve (vw_tb_peer_socket (m->edge)), 0, ZMQ_POLLIN, 0},
            {zsock_resolve (m->events), 0, ZMQ_POLLIN, 0},
        };
        zmq_poll (items, 3, (long) left);
    }
}

//  --------------------------------------------------------------------------
//  Operations

static void
s_presence (s_model_t *m, int agent, int64_t conn)
{
    vw_msg_t *p = vw_msg_new (VW_MSG_ID_agent_presence);
    p->agent_presence.agent_id = zsys_sprintf ("gw-%d", agent);
    p->agent_presence.dispatchable = conn != 0;
    p->agent_presence.conn = conn;
    if (conn)
        p->agent_presence.edge = strdup ("edge");
    p->agent_presence.revoked = m->agents[agent].revoked;
    assert_int_equal (vw_tb_send (m->registry, "scheduler", &p), 0);
}

static void
s_open (s_model_t *m, int agent)
{
    s_agent_t *a = &m->agents[agent];
    if (a->revoked)
        return;
    assert_true (m->next_conn - S_CONN_FIRST < S_CONNS_MAX);
    a->conn = m->next_conn++;
    a->link = S_ONLINE;
    m->conn_agent[a->conn - S_CONN_FIRST] = agent;
    s_log (m, "op: gw-%d online on conn %lld", agent, (long long) a->conn);
    s_presence (m, agent, a->conn);
}

//  The session ends: what its agent ran is lost; the edge tells the
//  executor, the registry tells the scheduler.
static void
s_close (s_model_t *m, int agent)
{
    s_agent_t *a = &m->agents[agent];
    if (a->link == S_OFFLINE)
        return;
    for (int i = 0; i < m->ncmds; i++) {
        s_cmd_t *cmd = &m->cmds[i];
        if (cmd->held && cmd->held_conn == a->conn) {
            cmd->held = false;
            cmd->lost++;
            cmd->last_failed = false;
        }
    }
    s_log (m, "op: gw-%d offline (conn %lld closed)", agent, (long long) a->conn);
    vw_msg_t *closed = vw_msg_new (VW_MSG_ID_session_closed);
    closed->session_closed.conn = a->conn;
    closed->session_closed.agent_id = zsys_sprintf ("gw-%d", agent);
    closed->session_closed.session_id = zsys_sprintf ("s-%lld", (long long) a->conn);
    assert_int_equal (vw_tb_send (m->edge, "executor", &closed), 0);
    s_presence (m, agent, 0);
    a->link = S_OFFLINE;
}

static void
s_submit_with (s_model_t *m, int agent, int64_t timeout_ms, int64_t retries, int64_t expires_in,
               int64_t priority)
{
    vw_msg_t *s = vw_msg_new (VW_MSG_ID_command_submit);
    s->command_submit.agent_id = zsys_sprintf ("gw-%d", agent);
    vw_msg_set_str (&s->command_submit.type, "ping");
    vw_msg_set_str (&s->command_submit.payload, "{}");
    s->command_submit.priority = priority;
    s->command_submit.timeout_ms = timeout_ms;
    s->command_submit.max_retries = retries;
    s->command_submit.expires_in_ms = expires_in;
    vw_msg_set_str (&s->command_submit.created_by, "model");
    s_log (m, "op: submit for gw-%d (timeout %lld ms, %lld retries, expires in %lld ms)", agent,
           (long long) timeout_ms, (long long) retries, (long long) expires_in);
    s_ask_new (m, S_ASK_SUBMIT, agent, vw_tb_ask (m->edge, "scheduler", &s));
    m->submits++;
}

static void
s_submit (s_model_t *m, int agent)
{
    int64_t timeout_ms = s_range (m, 150, 400);
    int64_t retries = s_range (m, 0, 2);
    int64_t expires_in = s_range (m, 0, 2) == 0 ? s_range (m, 200, 1500) : S_LONG_EXPIRY;
    s_submit_with (m, agent, timeout_ms, retries, expires_in, s_range (m, 0, 2));
}

//  A command the agents hold, picked by `draw`; NULL if none.
static s_cmd_t *
s_pick_held (s_model_t *m, uint64_t draw)
{
    int n = s_held (m, 0, NULL);
    if (!n)
        return NULL;
    int k = (int) (draw % (uint64_t) n);
    for (int i = 0; i < m->ncmds; i++)
        if (m->cmds[i].held && k-- == 0)
            return &m->cmds[i];
    return NULL;
}

static void
s_op_result (s_model_t *m, bool completed)
{
    uint64_t draw = s_rand (m);
    bool echo = s_rand (m) % 4 != 0;
    s_cmd_t *cmd = s_pick_held (m, draw);
    if (!cmd)
        return;
    int64_t attempt = echo ? cmd->held_attempt : 0;
    s_log (m, "op: %s answers %s for attempt %lld (echo %lld)", cmd->id,
           completed ? "completed" : "failed", (long long) cmd->held_attempt, (long long) attempt);
    s_event (m, cmd, cmd->held_conn, "result", completed ? "completed" : "failed", attempt);
    cmd->held = false;
    cmd->completions += completed;
    cmd->last_failed = !completed;
    if (!completed)
        cmd->certain_failures++;
}

//  Answers nobody waits for: an earlier attempt's (its echo says so), or
//  from a connection the attempt did not go to. Both are ignored.
static void
s_op_stale (s_model_t *m)
{
    uint64_t draw = s_rand (m);
    bool other_conn = s_rand (m) % 4 == 0;
    //  A retry's attempt, if the agents run one: its predecessor can answer.
    s_cmd_t *cmd = NULL;
    for (int i = 0; i < m->ncmds && !other_conn && !cmd; i++)
        if (m->cmds[i].held && m->cmds[i].held_attempt > 1)
            cmd = &m->cmds[i];
    if (!cmd)
        cmd = s_pick_held (m, draw);
    if (!cmd)
        return;
    if (!other_conn && cmd->held_attempt > 1) {
        s_log (m, "op: stale result for %s attempt %lld (it runs %lld)", cmd->id,
               (long long) cmd->held_attempt - 1, (long long) cmd->held_attempt);
        s_event (m, cmd, cmd->held_conn, "result", "completed", cmd->held_attempt - 1);
    }
    else {
        s_log (m, "op: result for %s from conn %d (it runs on %lld)", cmd->id, S_BAD_CONN,
               (long long) cmd->held_conn);
        s_event (m, cmd, S_BAD_CONN, "result", "completed", cmd->held_attempt);
    }
    m->stale_results++;
}

static void
s_op_ack (s_model_t *m)
{
    s_cmd_t *cmd = s_pick_held (m, s_rand (m));
    if (cmd) {
        s_log (m, "op: %s acked", cmd->id);
        s_event (m, cmd, cmd->held_conn, "ack", NULL, 0);
    }
}

static void
s_cancel (s_model_t *m, int i)
{
    s_cmd_t *cmd = &m->cmds[i];
    vw_msg_t *c = vw_msg_new (VW_MSG_ID_command_cancel);
    vw_msg_set_str (&c->command_cancel.command_id, cmd->id);
    vw_msg_set_str (&c->command_cancel.actor, "model");
    s_log (m, "op: cancel %s (row %s)", cmd->id, cmd->state);
    s_ask_new (m, S_ASK_CANCEL, i, vw_tb_ask (m->edge, "scheduler", &c));
    cmd->cancels++;
}

static void
s_op_cancel (s_model_t *m)
{
    uint64_t draw = s_rand (m);
    bool open_only = s_rand (m) % 4 != 0;
    int n = 0;
    for (int i = 0; i < m->ncmds; i++)
        n += m->cmds[i].accepted && (!open_only || !s_finished (&m->cmds[i]));
    if (!n)
        return;
    int k = (int) (draw % (uint64_t) n);
    for (int i = 0; i < m->ncmds; i++) {
        s_cmd_t *cmd = &m->cmds[i];
        if (!cmd->accepted || (open_only && s_finished (cmd)) || k-- != 0)
            continue;
        s_cancel (m, i);
        return;
    }
}

static void
s_op_link (s_model_t *m, int kind)
{
    int agent = (int) s_range (m, 0, S_AGENTS - 1);
    s_agent_t *a = &m->agents[agent];
    if (kind == 0) {
        //  Toggle: online or closing -> offline; offline -> online.
        if (a->link == S_OFFLINE)
            s_open (m, agent);
        else
            s_close (m, agent);
    }
    else if (kind == 1 && a->link == S_ONLINE) {
        //  The connection starts closing: sends to it are undeliverable.
        a->link = S_CLOSING;
        s_log (m, "op: gw-%d conn %lld closing", agent, (long long) a->conn);
    }
    else if (kind == 2) {
        //  Reconnect: the old session ends, a new one starts.
        s_close (m, agent);
        s_open (m, agent);
    }
}

//  An operator revokes an agent (once a run, in its second half, so that
//  the agent worked before): the registry tells the scheduler, whose
//  unfinished commands for it fail as agent_revoked, and kicks its session
//  (the edge reports it closed).
static void
s_op_revoke (s_model_t *m)
{
    int agent = (int) s_range (m, 0, S_AGENTS - 1);
    if (m->step < m->steps / 2)
        return;
    for (int i = 0; i < S_AGENTS; i++)
        if (m->agents[i].revoked)
            return;
    m->agents[agent].revoked = true;
    s_log (m, "op: gw-%d revoked", agent);
    s_presence (m, agent, 0);
    s_close (m, agent);
}

static void
s_step (s_model_t *m)
{
    int r = (int) s_range (m, 0, 99);
    if (r < 22)
        s_submit (m, (int) s_range (m, 0, S_AGENTS - 1));
    else if (r < 25) {
        int agent = (int) s_range (m, 0, S_AGENTS - 1);
        for (int64_t n = s_range (m, 3, 5); n > 0; n--)
            s_submit (m, agent);
    }
    else if (r < 33)
        s_op_link (m, 0);
    else if (r < 37)
        s_op_link (m, 1);
    else if (r < 41)
        s_op_link (m, 2);
    else if (r < 53)
        s_op_result (m, true);
    else if (r < 63)
        s_op_result (m, false);
    else if (r < 68)
        s_op_stale (m);
    else if (r < 72)
        s_op_ack (m);
    else if (r < 80)
        s_op_cancel (m);
    else if (r < 95) {
        int64_t ms = s_range (m, 20, 300);
        s_log (m, "op: %lld ms pass", (long long) ms);
        s_pump (m, ms);
    }
    else if (r < 96) {
        int64_t ms = s_range (m, 200, 700);
        m->store_down_until = vw_clock_mono_ms () + ms;
        s_log (m, "op: the database refuses commits for %lld ms", (long long) ms);
    }
    else if (r < 97)
        s_op_revoke (m);
    else {
        m->fail_permille = m->fail_permille ? 0 : 50;
        s_log (m, "op: sporadic commit failures %d/1000", m->fail_permille);
    }
    s_pump (m, s_range (m, 0, 4));
}

//  --------------------------------------------------------------------------
//  The end

static bool
s_settled (s_model_t *m)
{
    for (int i = 0; i < m->nasks; i++)
        if (!m->asks[i].answered)
            return false;
    for (int i = 0; i < m->ncmds; i++)
        if (m->cmds[i].held || !s_finished (&m->cmds[i]))
            return false;
    return true;
}

//  Asks the scheduler for its statistics and both actors for their health
//  and waits for the answers. True when all say nothing is left.
static bool
s_query_empty (s_model_t *m, bool report)
{
    json_decref (m->stats);
    m->stats = NULL;
    m->have_health[0] = m->have_health[1] = false;
    vw_msg_t *q = vw_msg_new (VW_MSG_ID_stats_query);
    s_ask_new (m, S_ASK_STATS, 0, vw_tb_ask (m->edge, "scheduler", &q));
    const char *actors[] = {"scheduler", "executor"};
    for (int i = 0; i < 2; i++) {
        vw_msg_t *ping = vw_msg_new (VW_MSG_ID_ping);
        s_ask_new (m, S_ASK_PING, i, vw_tb_ask (m->edge, actors[i], &ping));
    }
    int64_t deadline = vw_clock_mono_ms () + VW_TB_TIMEOUT_MS;
    while ((!m->stats || !m->have_health[0] || !m->have_health[1]) &&
           vw_clock_mono_ms () < deadline)
        s_pump (m, 20);
    if (!m->stats || !m->have_health[0] || !m->have_health[1]) {
        if (report)
            s_violation (m, "no answer to the statistics or a ping");
        return false;
    }
    const char *keys[] = {"pending_total", "in_flight", "waiting_retry"};
    bool empty = true;
    for (int i = 0; i < 3; i++) {
        json_int_t v = json_integer_value (json_object_get (m->stats, keys[i]));
        if (v) {
            empty = false;
            if (report)
                s_violation (m, "slot leak: statistics say %s = %lld", keys[i], (long long) v);
        }
    }
    size_t pending, inflight, unfinished, unstored_done, rewrites, flights;
    if (sscanf (m->health[0],
                "%zu pending, %zu in flight, %zu unfinished, %zu finished but not stored yet, "
                "%zu state(s) waiting",
                &pending, &inflight, &unfinished, &unstored_done, &rewrites) != 5 ||
        pending || inflight || unfinished || unstored_done || rewrites) {
        empty = false;
        if (report)
            s_violation (m, "the scheduler still holds something: %s", m->health[0]);
    }
    if (sscanf (m->health[1], "%zu in flight", &flights) != 1 || flights) {
        empty = false;
        if (report)
            s_violation (m, "the executor still holds something: %s", m->health[1]);
    }
    return empty;
}

static void
s_check_command (s_model_t *m, s_cmd_t *cmd)
{
    if (!cmd->accepted)
        s_violation (m, "%s has a row but its submit was never answered 202", cmd->id);
    if (cmd->finishes != 1)
        s_violation (m, "%s: its end was applied %d times", cmd->id, cmd->finishes);
    if (cmd->final_events != 1)
        s_violation (m, "%s: %d final command.state events", cmd->id, cmd->final_events);
    else if (!streq (cmd->ev_state, cmd->state) || !streq (cmd->ev_reason, cmd->reason))
        s_violation (m, "%s: memory ended it %s/%s, the database holds %s/%s", cmd->id,
                     cmd->ev_state, cmd->ev_reason, cmd->state, cmd->reason);
    if (cmd->failures > cmd->max_retries + 1)
        s_violation (m, "%s: %lld failures, max_retries %lld", cmd->id, (long long) cmd->failures,
                     (long long) cmd->max_retries);
    int certain = cmd->certain_failures - (cmd->last_failed ? 1 : 0);
    if (cmd->failures < certain)
        s_violation (m,
                     "%s: the row counts %lld failures, the agents saw %d before its last attempt",
                     cmd->id, (long long) cmd->failures, certain);
    if (cmd->sends > cmd->failures + cmd->lost + cmd->unsent + 1)
        s_violation (m, "%s: sent %d times with %lld failures, %d lost and %d unsent", cmd->id,
                     cmd->sends, (long long) cmd->failures, cmd->lost, cmd->unsent);
    if (cmd->attempts > cmd->sends)
        s_violation (m, "%s: the row counts %lld attempts, the agents got %d", cmd->id,
                     (long long) cmd->attempts, cmd->sends);
    //  The API reports exactly the cancels the database has: 200 when the
    //  cancel landed; 503 when its write failed and the command went on;
    //  409 for a command finished before (a later cancel of this one too).
    bool cancelled = streq (cmd->state, "cancelled");
    if (cmd->cancel_200 && !cancelled)
        s_violation (m, "%s: cancel answered 200, but it ended %s", cmd->id, cmd->state);
    if (cancelled && !cmd->cancel_200)
        s_violation (m,
                     "%s: cancelled, but no cancel was answered 200 (%d asked: %d answered 503, "
                     "%d 409)",
                     cmd->id, cmd->cancels, cmd->cancel_503, cmd->cancel_409);
    if (streq (cmd->reason, "agent_revoked") && !m->agents[cmd->agent].revoked)
        s_violation (m, "%s: failed agent_revoked, but gw-%d was not revoked", cmd->id, cmd->agent);
}

static void
s_check_end (s_model_t *m)
{
    int completed = 0, cancelled = 0, expired = 0, failed = 0, revoked = 0, lost = 0, unsent = 0;
    for (int i = 0; i < m->ncmds; i++) {
        s_cmd_t *cmd = &m->cmds[i];
        s_check_command (m, cmd);
        lost += cmd->lost;
        unsent += cmd->unsent;
        revoked += streq (cmd->reason, "agent_revoked");
        if (streq (cmd->state, "completed"))
            completed++;
        else if (streq (cmd->state, "cancelled"))
            cancelled++;
        else if (streq (cmd->reason, "expired"))
            expired++;
        else
            failed++;
    }
    if (m->accepted != m->ncmds)
        s_violation (m, "%d submits accepted, %d rows", m->accepted, m->ncmds);
    //  Memory's counters against the table.
    json_t *since = json_object_get (m->stats, "since_start");
    const char *keys[] = {"completed", "cancelled", "expired", "failed"};
    int rows[] = {completed, cancelled, expired, failed};
    for (int i = 0; i < 4; i++) {
        json_int_t v = json_integer_value (json_object_get (since, keys[i]));
        if (v != rows[i])
            s_violation (m, "the scheduler counts %lld %s, the database %d", (long long) v, keys[i],
                         rows[i]);
    }
    if (vw_tb_kept (m->registry, VW_MSG_INVALID))
        s_violation (m, "the registry got messages");
    fprintf (stderr,
             "model: seed %" PRIu64 ": %d submits, %d accepted, %d refused (503, or 409 for a "
             "revoked agent); %d completed, %d failed (%d agent_revoked), %d expired, %d "
             "cancelled; %d sends: %d lost, %d unsent, %d cancel frames while held; %d stale "
             "results; %d commits refused; %lld ms\n",
             m->seed, m->submits, m->accepted, m->rejected, completed, failed, revoked, expired,
             cancelled, m->dispatches, lost, unsent, m->timeouts_seen, m->stale_results,
             m->refused_commits, (long long) s_elapsed (m));
}

static void
s_drain (s_model_t *m)
{
    m->draining = true;
    m->store_down_until = 0;
    m->fail_permille = 0;
    s_log (m, "drain: no more faults; every agent online, every attempt completed");
    for (int agent = 0; agent < S_AGENTS; agent++) {
        if (m->agents[agent].link == S_CLOSING)
            s_close (m, agent);
        if (m->agents[agent].link == S_OFFLINE)
            s_open (m, agent);
    }
    for (int i = 0; i < m->ncmds; i++) {
        s_cmd_t *cmd = &m->cmds[i];
        if (cmd->held) {
            s_event (m, cmd, cmd->held_conn, "result", "completed", cmd->held_attempt);
            cmd->completions++;
            cmd->held = false;
            cmd->last_failed = false;
        }
    }
    int64_t deadline = vw_clock_mono_ms () + S_SETTLE_MS;
    while (!s_settled (m) && vw_clock_mono_ms () < deadline)
        s_pump (m, 50);
    if (!s_settled (m)) {
        for (int i = 0; i < m->ncmds; i++)
            if (!s_finished (&m->cmds[i]))
                s_violation (m, "%s (gw-%d) still %s after %d s", m->cmds[i].id, m->cmds[i].agent,
                             m->cmds[i].state, S_SETTLE_MS / 1000);
        for (int i = 0; i < m->nasks; i++)
            if (!m->asks[i].answered)
                s_violation (m, "request %" PRIu64 " never answered", m->asks[i].rid);
    }
    //  The last commits' answers may still be on their way: a few tries.
    for (int i = 0; i < 20 && !s_query_empty (m, false); i++)
        s_pump (m, 100);
    s_query_empty (m, true);
}

//  --------------------------------------------------------------------------
//  Fixture and case

static int64_t
s_env_int (const char *name, int64_t fallback)
{
    const char *text = getenv (name);
    return text && *text ? (int64_t) strtoull (text, NULL, 10) : fallback;
}

static void
s_model_free (s_model_t *m)
{
    char *line;
    while ((line = (char *) zlistx_detach (m->violations, NULL)))
        free (line);
    while ((line = (char *) zlistx_detach (m->oplog, NULL)))
        free (line);
    zlistx_destroy (&m->violations);
    zlistx_destroy (&m->oplog);
    zhashx_destroy (&m->by_id);
    json_decref (m->stats);
    free (m->cmds);
    free (m->asks);
    free (m);
}

static int
s_setup (void **state)
{
    if (!getenv ("VW_MODEL_TRACE"))
        vw_log_set_level (VW_LOG_ERROR);
    s_model_t *m = (s_model_t *) calloc (1, sizeof (s_model_t));
    *state = m;
    m->cmds = (s_cmd_t *) calloc (S_CMDS_MAX, sizeof (s_cmd_t));
    m->asks = (s_ask_t *) calloc (S_ASKS_MAX, sizeof (s_ask_t));
    m->by_id = zhashx_new ();
    m->violations = zlistx_new ();
    m->oplog = zlistx_new ();
    m->next_conn = S_CONN_FIRST + 1;
    for (int i = 0; i < S_CONNS_MAX; i++)
        m->conn_agent[i] = -1;
    m->trace = getenv ("VW_MODEL_TRACE") != NULL;
    m->seed = (uint64_t) s_env_int ("VW_MODEL_SEED", 0);
    if (!m->seed)
        m->seed = ((uint64_t) vw_clock_wall_ms () << 16) ^ (uint64_t) getpid ();
    m->rng = m->seed;
    m->frng = m->seed ^ 0x5eed5eed5eed5eedULL;
    m->tb = vw_tb_new ();
    if (!m->tb)
        return -1;
    vw_config_t *config = vw_tb_config (m->tb);
    if (!config)
        return -1;
    config->commands_max_inflight = S_INFLIGHT;
    config->commands_max_per_agent = S_PER_AGENT;
    m->events = vw_tb_events (m->tb, "command.state");
    if (!m->events ||
        vw_tb_peers (m->tb, "store", &m->store, "edge", &m->edge, "registry", &m->registry, NULL) ||
        vw_tb_run (m->tb, &vw_executor_class, NULL) ||
        vw_tb_run (m->tb, &vw_scheduler_class, config))
        return -1;
    m->start = vw_clock_mono_ms ();
    return 0;
}

static int
s_teardown (void **state)
{
    s_model_t *m = (s_model_t *) *state;
    if (m) {
        vw_tb_destroy (&m->tb);
        s_model_free (m);
    }
    return 0;
}

static void
s_start (s_model_t *m)
{
    int64_t deadline = vw_clock_mono_ms () + VW_TB_TIMEOUT_MS;
    while (!m->loaded && vw_clock_mono_ms () < deadline)
        s_pump (m, 20);
    assert_true (m->loaded);
}

//  Faults stop, everything settles, the invariants are checked.
static void
s_end (s_model_t *m)
{
    s_drain (m);
    s_check_end (m);
    if (m->nviolations) {
        if (!m->trace) {
            fprintf (stderr, "model: the operations and what the peers saw:\n");
            for (char *line = (char *) zlistx_first (m->oplog); line;
                 line = (char *) zlistx_next (m->oplog))
                fprintf (stderr, "  %s\n", line);
        }
        fprintf (stderr, "model: %d violation(s) with seed %" PRIu64 ":\n", m->nviolations,
                 m->seed);
        for (char *line = (char *) zlistx_first (m->violations); line;
             line = (char *) zlistx_next (m->violations))
            fprintf (stderr, "  %s\n", line);
        fail_msg ("%d invariant violation(s); replay with VW_MODEL_SEED=%" PRIu64, m->nviolations,
                  m->seed);
    }
}

static void
test_model (void **state)
{
    s_model_t *m = (s_model_t *) *state;
    fprintf (stderr, "model: seed %" PRIu64 " (replay with VW_MODEL_SEED=%" PRIu64 ")\n", m->seed,
             m->seed);
    s_start (m);
    for (int agent = 0; agent < S_AGENTS; agent++)
        if (s_rand (m) % 2)
            s_open (m, agent);
    m->steps = (int) s_env_int ("VW_MODEL_STEPS", S_STEPS);
    if (m->steps < 1 || m->steps > S_STEPS_MAX)
        m->steps = S_STEPS;
    for (m->step = 0; m->step < m->steps; m->step++)
        s_step (m);
    s_end (m);
}

//  For the scripted cases: gw-0 (2 slots) runs A and B, C waits (timeouts
//  of 5 s: nothing moves unless the case does something). Returns A's
//  index; B and C follow.
static int
s_three_for_gw0 (s_model_t *m)
{
    s_start (m);
    s_open (m, 0);
    int first = m->ncmds;
    for (int i = 0; i < 3; i++)
        s_submit_with (m, 0, 5000, 0, S_LONG_EXPIRY, 1);
    int64_t deadline = vw_clock_mono_ms () + VW_TB_TIMEOUT_MS;
    while ((m->ncmds < first + 3 || s_held (m, 0, NULL) < 2) && vw_clock_mono_ms () < deadline)
        s_pump (m, 20);
    assert_int_equal (s_held (m, 0, NULL), 2);
    assert_true (m->cmds[first].held && m->cmds[first + 1].held);
    return first;
}

//  Waits up to ms for the cancel's answer (the last request asked).
static int64_t
s_cancel_answer (s_model_t *m, int ms)
{
    s_ask_t *ask = &m->asks[m->nasks - 1];
    int64_t deadline = vw_clock_mono_ms () + ms;
    while (!ask->answered && vw_clock_mono_ms () < deadline)
        s_pump (m, 10);
    assert_true (ask->answered);
    s_cmd_t *cmd = &m->cmds[ask->arg];
    return cmd->cancel_200 ? 200 : cmd->cancel_503 ? 503 : cmd->cancel_409 ? 409 : 0;
}

//  The cancel of an executing command lands: A's slot is given back when
//  its agent is told to stop A (its cancel frame), not before - the agent
//  never runs more than its limit (test_model found it given back as the
//  cancel's write started, while the frame waited for the commit; fixed by
//  7cb1668) - and it is used at once: C goes out while B still runs,
//  without waiting for anything else to happen.
static void
test_cancel_frees_the_slot_when_the_agent_is_told (void **state)
{
    s_model_t *m = (s_model_t *) *state;
    int a = s_three_for_gw0 (m);
    s_cmd_t *c = &m->cmds[a + 2];
    s_cancel (m, a);
    assert_int_equal (s_cancel_answer (m, VW_TB_TIMEOUT_MS), 200);
    int64_t told = vw_clock_mono_ms ();
    int64_t deadline = told + 1000;
    while ((m->cmds[a].held || !c->sends) && vw_clock_mono_ms () < deadline)
        s_pump (m, 10);
    if (m->cmds[a].held)
        s_violation (m, "A cancelled (200), but its agent got no cancel frame within 1 s");
    else if (!c->sends)
        s_violation (m,
                     "A cancelled and its agent told, but C was not sent within 1 s: gw-0 runs "
                     "%d of its %d slots while C waits",
                     s_held (m, 0, NULL), S_PER_AGENT);
    else
        s_log (m, "C sent %lld ms after A's cancel was answered",
               (long long) (vw_clock_mono_ms () - told));
    s_end (m);
}

//  The cancel's write fails: answered 503, the command goes on (no cancel
//  frame, its slot kept, C still waits); its agent's answer then counts.
static void
test_cancel_refused_goes_on (void **state)
{
    s_model_t *m = (s_model_t *) *state;
    int a = s_three_for_gw0 (m);
    m->store_down_until = vw_clock_mono_ms () + 1000;
    s_cancel (m, a);
    assert_int_equal (s_cancel_answer (m, VW_TB_TIMEOUT_MS), 503);
    s_pump (m, 200);
    assert_true (m->cmds[a].held);
    assert_int_equal (m->cmds[a + 2].sends, 0);
    m->store_down_until = 0;
    s_event (m, &m->cmds[a], m->cmds[a].held_conn, "result", "completed", m->cmds[a].held_attempt);
    m->cmds[a].held = false;
    m->cmds[a].completions++;
    s_end (m);
    assert_string_equal (m->cmds[a].state, "completed");
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_model, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_cancel_frees_the_slot_when_the_agent_is_told, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_cancel_refused_goes_on, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
