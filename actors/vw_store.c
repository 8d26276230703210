/*  vw_store - the store actor: the only thread that opens the database for
    writing (DESIGN: store/ owns schema and statements, this actor owns the
    connection). Other actors send it requests and get replies; they never
    touch SQLite themselves.

    Writes use group commit: the first write of a loop pass opens a
    transaction, the flush hook commits it once per pass, and only then are
    the replies that promise durability (201, 204, ...) sent. A burst of
    requests thus costs one commit, and no caller hears "done" before its
    row is on disk. Reads are answered at once.

    When a commit fails, every reply of that pass becomes an error (503) and
    the callers keep their memory as the database is, or write again (the
    scheduler re-sends a command's state until it lands). The writes nobody
    waits for (agent_state, audit, delivered_at) are kept until their commit
    and applied again, in order and before anything newer, while the
    database refuses them (bounded by S_REDO_MAX). A BEGIN that fails (the
    lock held past the busy timeout, I/O error) fails the rest of its pass
    at once instead of waiting again for every message, and its 503s go out
    with that pass.

    Start-up fails with VW_EXIT_DATABASE when the database cannot be opened
    or migrated, and VW_EXIT_SCHEMA when it was written by a newer build.
    Its pong reports the database's health, which /health shows as
    "database".
*/
#include "vw_actors.h"
#include "vw_backup.h"
#include "vw_agents.h"
#include "vw_audit.h"
#include "vw_clock.h"
#include "vw_cmdpage.h"
#include "vw_command_rows.h"
#include "vw_telemetry_query.h"
#include "vw_telemetry_rows.h"
#include "vw_token.h"
#include "vw_db.h"
#include "vw_lifecycle.h"
#include "vw_log.h"
#include "vw_users.h"

#include <sodium.h>

typedef struct {
    vw_db_t *db;
    vw_actor_t *actor;
    vw_telemetry_rows_t *telemetry;  //  the telemetry tables' writer (this pass's roll-ups)
    zlistx_t *deferred;              //  replies waiting for the commit (vw_msg_t *)
    uint64_t commits;
    uint64_t commit_failures;
    vw_histo_t commit_latency;  //  the pass's roll-ups and COMMIT
    //  A run of failed commits (a full or read-only disk fails every one):
    //  logged when it starts, then at most every S_FAILURE_LOG_MS with the
    //  count of those not logged, and once when writes land again.
    uint64_t failing;           //  failed commits in the current run (0 = none)
    uint64_t failing_unlogged;  //  of those, not logged yet
    int64_t failing_since_ms;
    int64_t failing_logged_ms;
    bool begin_failed;   //  in this pass: the rest of it does not wait for the lock again
    zlistx_t *oneway;    //  this pass's writes nobody waits for (vw_msg_t *), until the commit
    zlistx_t *redo;      //  those of failed commits, applied again first (vw_msg_t *)
    uint64_t redo_lost;  //  dropped because redo was full
    uint64_t redo_timer;
    //  An online backup (vw_backup) running in its own thread: who asked,
    //  and the pipe its result comes back on.
    vw_backup_t *backup;
    zsock_t *backup_rx, *backup_tx;
    uint64_t backup_rid;
    char backup_peer[VW_ADDR_MAX];
    char backup_path[1100];
} self_t;

#define S_FAILURE_LOG_MS 10000
#define S_REDO_MAX       100000  //  one-way writes kept while the database refuses them
#define S_REDO_MS        1000    //  how soon they are tried again with no other traffic

static void s_answer (self_t *self, const vw_msg_t *request, vw_result_t *result);
static vw_msg_t *s_reply_of (vw_result_t *result);

//  db_backup: one at a time; answered when the copy is done.
static void
s_on_backup (self_t *self, const vw_msg_t *msg)
{
    vw_result_t result = {0};
    char err[1200];
    const char *path = msg->db_backup.path;
    if (self->backup)
        vw_result_fail (&result, 409, "conflict", "a backup is running (to %.150s)",
                        self->backup_path);
    else if (!self->backup_tx)
        vw_result_fail (&result, 503, "unavailable", "online backups are not available");
    else if (strstr (vw_db_path (self->db), ":memory:"))
        vw_result_fail (&result, 400, "bad_request", "an in-memory database has no backups");
    else if (!vw_backup_path_ok (path, err, sizeof err))
        vw_result_fail (&result, 400, "bad_request", "%.190s", err);
    else if (!(self->backup = vw_backup_start (vw_db_path (self->db), path, self->backup_tx)))
        vw_result_fail (&result, 503, "unavailable", "cannot start the backup thread");
    else {
        self->backup_rid = msg->rid;
        memcpy (self->backup_peer, msg->peer, sizeof self->backup_peer);
        snprintf (self->backup_path, sizeof self->backup_path, "%s", path);
        vw_info ("store", "backup to %s started", path);
        return;
    }
    s_answer (self, msg, &result);
}

static void
s_on_backup_done (void *state, vw_actor_t *actor, zsock_t *sock)
{
    self_t *self = (self_t *) state;
    char *line = zstr_recv (sock);
    vw_backup_join (&self->backup);
    vw_result_t result = {0};
    long long bytes = 0, ms = 0;
    if (line && sscanf (line, "ok %lld %lld", &bytes, &ms) == 2) {
        vw_info ("store", "backup to %s done: %lld bytes in %lld ms", self->backup_path, bytes, ms);
        vw_result_ok (&result, 200,
                      json_pack ("{s:s, s:I, s:I}", "path", self->backup_path, "bytes",
                                 (json_int_t) bytes, "ms", (json_int_t) ms));
    }
    else {
        vw_warn ("store", "backup to %s failed: %s", self->backup_path,
                 line && strlen (line) > 6 ? line + 6 : "?");
        vw_result_fail (&result, 500, "backup_failed", "backup to %.80s failed: %.90s",
                        self->backup_path, line && strlen (line) > 6 ? line + 6 : "?");
    }
    zstr_free (&line);
    vw_msg_t *reply = s_reply_of (&result);
    reply->rid = self->backup_rid;
    if (vw_actor_send (actor, self->backup_peer, &reply))
        vw_msg_destroy (&reply);
}

//  A reply from a result; the result's body is consumed.
static vw_msg_t *
s_reply_of (vw_result_t *result)
{
    vw_msg_t *reply = vw_msg_new (VW_MSG_ID_reply);
    reply->reply.status = result->status;
    if (result->body) {
        reply->reply.json = json_dumps (
            result->body,
            JSON_COMPACT | (result->real_digits ? JSON_REAL_PRECISION (result->real_digits) : 0));
        json_decref (result->body);
        result->body = NULL;
    }
    if (result->code) {
        vw_msg_set_str (&reply->reply.code, result->code);
        vw_msg_set_str (&reply->reply.message, result->message);
    }
    return reply;
}

static void
s_answer (self_t *self, const vw_msg_t *request, vw_result_t *result)
{
    vw_msg_t *reply = s_reply_of (result);
    if (vw_actor_reply (self->actor, request, &reply))
        vw_msg_destroy (&reply);
}

//  Answers after the commit of this pass (or with 503 if it fails).
static void
s_answer_durable (self_t *self, const vw_msg_t *request, vw_result_t *result)
{
    vw_msg_t *reply = s_reply_of (result);
    reply->rid = request->rid;
    memcpy (reply->peer, request->peer, sizeof reply->peer);
    zlistx_add_end (self->deferred, reply);
}

//  Sends msg (consumed) to the request's sender after this pass's commit.
static void
s_defer (self_t *self, const vw_msg_t *request, vw_msg_t *msg)
{
    msg->rid = request->rid;
    memcpy (msg->peer, request->peer, sizeof msg->peer);
    zlistx_add_end (self->deferred, msg);
}

static void s_redo (self_t *self);

//  Opens (or joins) this pass's transaction; -1 if it cannot. After one
//  failed BEGIN the rest of the pass fails at once: each attempt may wait
//  the whole busy timeout, and the callers' own timeouts are counting.
//  Writes kept from failed commits go first, so that nothing newer lands
//  before them.
static int
s_write_begin (self_t *self)
{
    if (self->begin_failed)
        return -1;
    bool opened = !vw_db_in_tx (self->db);
    if (vw_db_begin (self->db)) {
        self->begin_failed = true;
        return -1;
    }
    if (opened && zlistx_size (self->redo))
        s_redo (self);
    return 0;
}

//  command_insert: one agent, or every agent matching `labels`.
static void
s_on_command_insert (self_t *self, vw_msg_t *msg)
{
    const vw_command_insert_msg_t *in = &msg->command_insert;
    vw_msg_t *out = vw_msg_new (VW_MSG_ID_command_inserted);
    vw_command_inserted_msg_t *o = &out->command_inserted;
    json_t *rows = json_array ();
    vw_command_new_t c = {.command_id = in->command_id,
                          .agent_id = in->agent_id,
                          .type = in->type,
                          .payload_json = in->payload,
                          .priority = (int) in->priority,
                          .timeout_ms = in->timeout_ms,
                          .max_retries = in->max_retries,
                          .created_at = in->created_at,
                          .expires_at = in->expires_at,
                          .created_by = in->created_by,
                          .idempotency_key = in->idempotency_key};
    vw_result_t result = {0};
    if (s_write_begin (self)) {
        vw_result_fail (&result, 503, "database_busy", "cannot start a transaction");
    }
    else if (in->agent_id) {
        int64_t seq = 0;
        bool replayed = false;
        vw_command_rows_insert (self->db, &c, &seq, &replayed, &result);
        if (result.status == 202 && !replayed)
            json_array_append_new (
                rows, json_pack ("[s, s, I]", in->command_id, in->agent_id, (json_int_t) seq));
    }
    else {
        json_t *targets = vw_command_rows_targets (self->db, in->labels);
        json_t *commands = json_array ();
        size_t i;
        json_t *target;
        json_array_foreach (targets, i, target)
        {
            char id[VW_ID_TEXT_LEN + 1];
            vw_id_new (id);
            c.command_id = id;
            c.agent_id = json_string_value (target);
            int64_t seq = 0;
            bool replayed = false;
            vw_result_t one = {0};
            vw_command_rows_insert (self->db, &c, &seq, &replayed, &one);
            if (one.status == 202) {
                json_array_append_new (commands, one.body);
                json_array_append_new (rows,
                                       json_pack ("[s, s, I]", id, c.agent_id, (json_int_t) seq));
            }
            else
                json_decref (one.body);
        }
        if (!targets)
            vw_result_fail (&result, 500, "database_error", "cannot match agents");
        else
            vw_result_ok (&result, 202, json_pack ("{s:o}", "commands", commands));
        if (!targets)
            json_decref (commands);
        json_decref (targets);
    }
    o->status = result.status;
    if (result.body) {
        o->json = json_dumps (result.body, JSON_COMPACT);
        json_decref (result.body);
    }
    if (result.code) {
        vw_msg_set_str (&o->code, result.code);
        vw_msg_set_str (&o->message, result.message);
    }
    o->rows = json_dumps (rows, JSON_COMPACT);
    json_decref (rows);
    vw_msg_set_str (&o->request_id, in->command_id);
    s_defer (self, msg, out);
}

//  One write nobody waits for; 0, or -1 if it did not apply (logged).
static int
s_apply_oneway (self_t *self, const vw_msg_t *msg)
{
    if (msg->id == VW_MSG_ID_agent_state) {
        const vw_agent_state_msg_t *s = &msg->agent_state;
        if (vw_agents_apply_state (self->db, s->agent_id, s->event, s->status, s->session_id,
                                   s->connected_at, s->last_seen, s->hostname, s->version,
                                   s->reported_labels, s->capabilities) == 0)
            return 0;
        vw_warn ("store", "agent state for '%s' not saved: %s", s->agent_id,
                 sqlite3_errmsg (vw_db_handle (self->db)));
    }
    else if (msg->id == VW_MSG_ID_agent_token_settled) {
        if (vw_agents_token_settled (self->db, msg->agent_token_settled.agent_id) == 0)
            return 0;
        vw_warn ("store", "the previous token of '%s' not cleared: %s",
                 msg->agent_token_settled.agent_id, sqlite3_errmsg (vw_db_handle (self->db)));
    }
    else if (msg->id == VW_MSG_ID_agents_seen) {
        if (vw_agents_seen (self->db, msg->agents_seen.seen) == 0)
            return 0;
        vw_warn ("store", "last_seen of a batch of agents not saved: %s",
                 sqlite3_errmsg (vw_db_handle (self->db)));
    }
    else if (msg->id == VW_MSG_ID_audit) {
        const vw_audit_msg_t *a = &msg->audit;
        if (vw_audit_append (self->db, a->ts, a->actor, a->source, a->action, a->target, a->outcome,
                             a->detail) == 0)
            return 0;
        vw_error ("store", "audit row for %s not saved: %s", a->action ? a->action : "?",
                  sqlite3_errmsg (vw_db_handle (self->db)));
    }
    else if (msg->id == VW_MSG_ID_command_update) {
        //  delivered_at or progress; 1 (not executing any more) is not an
        //  error.
        const vw_command_update_msg_t *u = &msg->command_update;
        if ((u->event && streq (u->event, "progress")
                 ? vw_command_rows_progress (self->db, u->command_id, u->progress, u->message)
                 : vw_command_rows_delivered (self->db, u->command_id, u->ts)) >= 0)
            return 0;
    }
    return -1;
}

//  Applies a one-way write (taken from *msg_p) in the open transaction and
//  keeps it until the commit. A statement that failed while the
//  transaction lives is the write's own fault (a constraint): applying it
//  again would fail the same way, so it is dropped (logged).
static void
s_apply_and_keep (self_t *self, vw_msg_t **msg_p)
{
    if (s_apply_oneway (self, *msg_p) && !sqlite3_get_autocommit (vw_db_handle (self->db)))
        vw_msg_destroy (msg_p);
    else {
        zlistx_add_end (self->oneway, *msg_p);
        *msg_p = NULL;
    }
}

//  A one-way write in this pass's transaction; if the transaction cannot
//  be had, it waits in redo for the next one.
static void
s_oneway (self_t *self, vw_msg_t **msg_p)
{
    if (s_write_begin (self)) {
        zlistx_add_end (self->redo, *msg_p);
        *msg_p = NULL;
    }
    else
        s_apply_and_keep (self, msg_p);
}

//  Applies the kept writes of failed commits, oldest first, in the
//  transaction just opened.
static void
s_redo (self_t *self)
{
    vw_msg_t *msg;
    while ((msg = (vw_msg_t *) zlistx_detach (self->redo, NULL)))
        s_apply_and_keep (self, &msg);
}

static void
s_on_redo_due (void *arg, uint64_t id)
{
    self_t *self = (self_t *) arg;
    self->redo_timer = 0;
    //  The flush hook commits it.
    if (zlistx_size (self->redo))
        s_write_begin (self);
}

//  command_update: a transition of the scheduler's (answered after the
//  commit when `ack` is set), or the executor's delivered_at (one-way).
static void
s_on_command_update (self_t *self, vw_msg_t **msg_p)
{
    vw_msg_t *msg = *msg_p;
    const vw_command_update_msg_t *u = &msg->command_update;
    vw_result_t result = {0};
    if (!u->command_id || !u->event) {
        vw_result_fail (&result, 400, "invalid_request", "command_update without id or event");
        if (u->ack)
            s_answer (self, msg, &result);
        return;
    }
    if ((streq (u->event, "delivered") || streq (u->event, "progress")) && !u->ack) {
        s_oneway (self, msg_p);
        return;
    }
    if (s_write_begin (self)) {
        vw_result_fail (&result, 503, "database_busy", "cannot start a transaction: %s",
                        sqlite3_errmsg (vw_db_handle (self->db)));
        if (u->ack)
            s_answer (self, msg, &result);
        return;
    }
    int rc = -1;
    if (streq (u->event, "executing"))
        rc = vw_command_rows_executing (self->db, u->command_id, u->attempt, u->ts);
    else if (streq (u->event, "delivered"))
        rc = vw_command_rows_delivered (self->db, u->command_id, u->ts);
    else if (streq (u->event, "pending"))
        rc = vw_command_rows_pending (self->db, u->command_id, u->next_attempt_at,
                                      u->failure_reason, u->error, u->failures, u->attempt);
    else if (streq (u->event, "finish"))
        rc =
            vw_command_rows_finish (self->db, u->command_id, u->state, u->failure_reason, u->result,
                                    u->error, u->failures, u->attempt, u->ts, u->delivered_at);
    if (rc == 0 && u->want_row)
        vw_command_rows_get (self->db, u->command_id, &result);
    else if (rc == 0)
        vw_result_ok (&result, 200, NULL);
    else if (rc == 1)
        vw_result_fail (&result, 409, "conflict",
                        "command %s: '%s' does not apply (finished already)", u->command_id,
                        u->event);
    else
        vw_result_fail (&result, 500, "database_error", "command %s: '%s' failed: %s",
                        u->command_id, u->event, sqlite3_errmsg (vw_db_handle (self->db)));
    if (rc)
        vw_debug ("store", "%s", result.message);
    if (u->ack)
        s_answer_durable (self, msg, &result);
    else
        json_decref (result.body);
}

//  The recovery scan: rows straight from the statement into the packed page
//  (vw_cmdpage), no JSON on either side. A page ends at the scheduler's row
//  count or once it holds VW_MSG_ROWS_BYTES, whichever comes first, so it always
//  fits in one message (payloads are up to 1 MiB each).

typedef struct {
    msgpack_sbuffer sbuf;
    int64_t last;
    bool failed;
    bool full;  //  stopped by bytes
} s_page_t;

static bool
s_pack_row (void *arg, const vw_command_row_t *row)
{
    s_page_t *page = (s_page_t *) arg;
    vw_cmdpage_row_t out = {
        .command_id = {row->command_id, row->command_id_len},
        .agent_id = {row->agent_id, row->agent_id_len},
        .type = {row->type, row->type_len},
        .payload = {row->payload_json, row->payload_len},
        .executing = row->state && streq (row->state, "executing"),
        .priority = row->priority,
        .seq = row->seq,
        .attempts = row->attempts,
        .failures = row->failures,
        .max_retries = row->max_retries,
        .timeout_ms = row->timeout_ms,
        .expires_at = row->expires_at,
        .next_attempt_at = row->next_attempt_at,
    };
    if (vw_cmdpage_pack (&page->sbuf, &out))
        page->failed = true;
    page->last = row->seq;
    page->full = page->sbuf.size >= VW_MSG_ROWS_BYTES;
    return !page->failed && !page->full;
}

static void
s_on_commands_load (self_t *self, vw_msg_t *msg)
{
    s_page_t page = {.last = msg->commands_load.after};
    msgpack_sbuffer_init (&page.sbuf);
    int n = vw_command_rows_unfinished (self->db, msg->commands_load.after,
                                        msg->commands_load.limit, s_pack_row, &page);
    vw_msg_t *reply;
    if (n < 0 || page.failed) {
        //  The scheduler tries this page again a little later.
        vw_error ("store", "cannot read unfinished commands after seq %lld: %s",
                  (long long) msg->commands_load.after,
                  page.failed ? "out of memory" : sqlite3_errmsg (vw_db_handle (self->db)));
        reply = vw_msg_new (VW_MSG_ID_error);
        vw_msg_set_str (&reply->error.code, "database_error");
        vw_msg_set_str (&reply->error.message, "cannot read unfinished commands");
        msgpack_sbuffer_destroy (&page.sbuf);
    }
    else {
        reply = vw_msg_new (VW_MSG_ID_commands_page);
        reply->commands_page.count = n;
        reply->commands_page.last = page.last;
        reply->commands_page.more = page.full || n == msg->commands_load.limit;
        reply->commands_page.rows.size = page.sbuf.size;
        reply->commands_page.rows.data = (uint8_t *) msgpack_sbuffer_release (&page.sbuf);
    }
    if (vw_actor_reply (self->actor, msg, &reply))
        vw_msg_destroy (&reply);
}

static bool
s_begin (self_t *self, const vw_msg_t *request, vw_result_t *result)
{
    if (s_write_begin (self) == 0)
        return true;
    vw_result_fail (result, 503, "database_busy", "cannot start a transaction: %s",
                    sqlite3_errmsg (vw_db_handle (self->db)));
    s_answer (self, request, result);
    return false;
}

//  GET /metrics: commits, and the database's agents and commands by state.
static void
s_on_metrics (self_t *self, vw_msg_t *msg)
{
    vw_prom_t p = {0};
    vw_prom_one (&p, "viworks_store_commits_total", "counter",
                 "Transactions committed (one per store pass with writes).",
                 (double) self->commits);
    vw_prom_one (&p, "viworks_store_commit_failures_total", "counter",
                 "Transactions that did not commit (their writes answered 503).",
                 (double) self->commit_failures);
    vw_prom_histo (&p, "viworks_store_commit_seconds",
                   "Time to commit a pass's transaction (telemetry roll-ups included).",
                   &self->commit_latency);
    uint64_t inline_runs = 0;
    uint64_t checkpoints = vw_db_checkpoints (self->db, &inline_runs);
    vw_prom_family (&p, "viworks_store_checkpoints_total", "counter",
                    "WAL checkpoints, by who ran them (background: off the commit path; "
                    "writer: the WAL outgrew its bound).");
    vw_prom_sample (&p, "viworks_store_checkpoints_total", "by", "background",
                    (double) checkpoints);
    vw_prom_sample (&p, "viworks_store_checkpoints_total", "by", "writer", (double) inline_runs);
    json_t *counts = vw_command_rows_counts (self->db);
    const char *names[] = {"viworks_agents", "viworks_commands"};
    const char *keys[] = {"agents", "commands"};
    const char *labels[] = {"status", "state"};
    const char *helps[] = {"Registered agents by status (the database's count).",
                           "Commands in the database by state."};
    for (int i = 0; i < 2; i++) {
        vw_prom_family (&p, names[i], "gauge", helps[i]);
        const char *key;
        json_t *value;
        json_object_foreach (json_object_get (counts, keys[i]), key, value)
            vw_prom_sample (&p, names[i], labels[i], key, (double) json_integer_value (value));
    }
    json_decref (counts);
    vw_actor_reply_metrics (self->actor, msg, &p);
}

static void *
s_create (vw_actor_t *actor, void *args)
{
    const vw_store_args_t *a = (const vw_store_args_t *) args;
    char *path = vw_db_path_from_url (a->database_url);
    if (!path) {
        vw_actor_fail (actor, VW_EXIT_DATABASE,
                       "DATABASE_URL '%s' is not a SQLite URL or path (sqlite:///path/to.db)",
                       a->database_url ? a->database_url : "");
        return NULL;
    }
    vw_db_status_t status;
    char err[512];
    vw_db_t *db = vw_db_open (path, a->full_sync, &status, err, sizeof err);
    if (!db) {
        vw_actor_fail (actor, status == VW_DB_ERR_TOO_NEW ? VW_EXIT_SCHEMA : VW_EXIT_DATABASE, "%s",
                       err);
        free (path);
        return NULL;
    }
    vw_info ("store", "database %s open (schema version %d, synchronous=%s)", path,
             vw_db_schema_version (db), a->full_sync ? "full" : "normal");
    free (path);
    self_t *self = (self_t *) zmalloc (sizeof (self_t));
    self->db = db;
    self->actor = actor;
    //  Commits must not wait for a checkpoint's disk flush (vw_db).
    if (vw_db_checkpoint_in_background (db))
        vw_warn ("store", "no background checkpoints (%s): commits run them",
                 sqlite3_errmsg (vw_db_handle (db)));
    self->telemetry = vw_telemetry_rows_new (db);
    self->deferred = zlistx_new ();
    self->oneway = zlistx_new ();
    self->redo = zlistx_new ();
    self->backup_rx = zsys_create_pipe (&self->backup_tx);
    if (!self->backup_rx || vw_actor_watch (actor, self->backup_rx, s_on_backup_done))
        vw_warn ("store", "online backups are not available (no pipe)");
    int reset = vw_agents_reset_sessions (db, vw_clock_wall_ms ());
    if (reset > 0)
        vw_info ("store", "%d agent session(s) from the previous run marked offline", reset);
    return self;
}

static void
s_destroy (void **state_p)
{
    self_t *self = (self_t *) *state_p;
    if (self) {
        vw_msg_t *reply;
        if (self->backup) {
            //  The copy finishes first: a backup is never left half-made
            //  by a stop.
            char *line = zstr_recv (self->backup_rx);
            vw_info ("store", "backup %s at stop: %s", self->backup_path, line ? line : "?");
            zstr_free (&line);
            vw_backup_join (&self->backup);
        }
        zsock_destroy (&self->backup_rx);
        zsock_destroy (&self->backup_tx);
        while ((reply = (vw_msg_t *) zlistx_detach (self->deferred, NULL)))
            vw_msg_destroy (&reply);
        zlistx_destroy (&self->deferred);
        if (zlistx_size (self->oneway) || zlistx_size (self->redo))
            vw_error ("store", "%zu agent state, audit or delivery write(s) not saved at exit",
                      zlistx_size (self->oneway) + zlistx_size (self->redo));
        while ((reply = (vw_msg_t *) zlistx_detach (self->oneway, NULL)))
            vw_msg_destroy (&reply);
        while ((reply = (vw_msg_t *) zlistx_detach (self->redo, NULL)))
            vw_msg_destroy (&reply);
        vw_telemetry_rows_destroy (&self->telemetry);
        zlistx_destroy (&self->oneway);
        zlistx_destroy (&self->redo);
        if (self->redo_timer)
            vw_timers_cancel (vw_actor_timers (self->actor), self->redo_timer);
        vw_db_close (&self->db);
        free (self);
    }
    *state_p = NULL;
}

static void
s_on_agent_lookup (self_t *self, vw_msg_t *msg)
{
    vw_agent_credentials_t cred;
    vw_msg_t *record = vw_msg_new (VW_MSG_ID_agent_record);
    vw_msg_set_str (&record->agent_record.agent_id, msg->agent_lookup.agent_id);
    if (vw_agents_credentials (self->db, msg->agent_lookup.agent_id, &cred) == 0 && cred.found) {
        record->agent_record.found = true;
        if (cred.has_token_hash)
            vw_msg_set_bin (&record->agent_record.token_hash, cred.token_hash, 32);
        if (cred.has_public_key)
            vw_msg_set_bin (&record->agent_record.public_key, cred.public_key, 32);
        if (cred.has_previous) {
            vw_msg_set_bin (&record->agent_record.previous_token_hash, cred.previous_token_hash,
                            32);
            record->agent_record.previous_until = cred.previous_until;
        }
        record->agent_record.revoked = cred.revoked;
        record->agent_record.maintenance = cred.maintenance;
        vw_agent_record_msg_t *r = &record->agent_record;
        //  The strings move into the message (freed with it).
        r->labels = cred.labels, r->hostname = cred.hostname, r->version = cred.version;
        r->reported_labels = cred.reported_labels, r->capabilities = cred.capabilities;
        cred.labels = cred.hostname = cred.version = cred.reported_labels = cred.capabilities =
            NULL;
        r->created_at = cred.created_at, r->connected_at = cred.connected_at;
        r->last_seen = cred.last_seen, r->connect_count = cred.connect_count;
        r->disconnect_count = cred.disconnect_count;
    }
    vw_agents_credentials_clear (&cred);
    if (vw_actor_reply (self->actor, msg, &record))
        vw_msg_destroy (&record);
}

static void
s_handle (void *state, vw_actor_t *actor, vw_msg_t **msg_p)
{
    self_t *self = (self_t *) state;
    vw_msg_t *msg = *msg_p;
    vw_result_t result = {0};
    int64_t now = vw_clock_wall_ms ();

    switch (msg->id) {
        case VW_MSG_ID_agent_lookup: s_on_agent_lookup (self, msg); break;
        case VW_MSG_ID_agent_get:
            vw_agents_get (self->db, msg->agent_get.agent_id, &result);
            s_answer (self, msg, &result);
            break;
        case VW_MSG_ID_agent_list:
            vw_agents_list (self->db, msg->agent_list.status, msg->agent_list.label_key,
                            msg->agent_list.label_value, msg->agent_list.limit,
                            msg->agent_list.cursor, &result);
            s_answer (self, msg, &result);
            break;
        case VW_MSG_ID_agent_create:
            if (!s_begin (self, msg, &result))
                break;
            vw_agents_create (self->db, msg->agent_create.agent_id, msg->agent_create.labels,
                              msg->agent_create.public_key.data, msg->agent_create.public_key.size,
                              msg->agent_create.token_hash.data, msg->agent_create.token_hash.size,
                              now, &result);
            s_answer_durable (self, msg, &result);
            break;
        case VW_MSG_ID_agent_revoke:
            if (!s_begin (self, msg, &result))
                break;
            vw_agents_revoke (self->db, msg->agent_revoke.agent_id, now, &result);
            s_answer_durable (self, msg, &result);
            break;
        case VW_MSG_ID_agent_rotate:
            if (!s_begin (self, msg, &result))
                break;
            vw_agents_rotate (self->db, msg->agent_rotate.agent_id,
                              msg->agent_rotate.token_hash.data, msg->agent_rotate.token_hash.size,
                              msg->agent_rotate.previous_until, &result);
            s_answer_durable (self, msg, &result);
            break;
        case VW_MSG_ID_agent_token_settled:
            if (msg->agent_token_settled.agent_id)
                s_oneway (self, msg_p);
            break;
        case VW_MSG_ID_agent_maintenance:
            if (!s_begin (self, msg, &result))
                break;
            vw_agents_set_maintenance (self->db, msg->agent_maintenance.agent_id,
                                       msg->agent_maintenance.enabled, &result);
            s_answer_durable (self, msg, &result);
            break;
        case VW_MSG_ID_agent_state:
            if (msg->agent_state.agent_id && msg->agent_state.event)
                s_oneway (self, msg_p);
            break;
        case VW_MSG_ID_user_insert:
            if (!s_begin (self, msg, &result))
                break;
            vw_users_insert (self->db, msg->user_insert.username, msg->user_insert.password_hash,
                             msg->user_insert.role, msg->user_insert.gen, now, &result);
            s_answer_durable (self, msg, &result);
            break;
        case VW_MSG_ID_user_count: {
            int64_t n = vw_users_count (self->db);
            if (n < 0)
                vw_result_fail (&result, 500, "database_error", "cannot count users");
            else
                vw_result_ok (&result, 200, json_pack ("{s:I}", "users", (json_int_t) n));
            s_answer (self, msg, &result);
            break;
        }
        case VW_MSG_ID_user_get: {
            vw_user_record_t user;
            vw_msg_t *record = vw_msg_new (VW_MSG_ID_user_record);
            vw_msg_set_str (&record->user_record.username, msg->user_get.username);
            if (vw_users_get (self->db, msg->user_get.username, &user) == 0 && user.found) {
                record->user_record.found = true;
                vw_msg_set_str (&record->user_record.password_hash, user.password_hash);
                vw_msg_set_str (&record->user_record.role, user.role);
                record->user_record.disabled = user.disabled;
                record->user_record.gen = user.gen;
            }
            sodium_memzero (&user, sizeof user);
            if (vw_actor_reply (self->actor, msg, &record))
                vw_msg_destroy (&record);
            break;
        }
        //  Users and token revocation (issue 8): asked by the auth actor.
        case VW_MSG_ID_user_save:
            if (!s_begin (self, msg, &result))
                break;
            vw_users_update (self->db, msg->user_save.username, msg->user_save.password_hash,
                             msg->user_save.role, msg->user_save.set_disabled,
                             msg->user_save.disabled, msg->user_save.gen, &result);
            s_answer_durable (self, msg, &result);
            break;
        case VW_MSG_ID_user_remove:
            if (!s_begin (self, msg, &result))
                break;
            vw_users_delete (self->db, msg->user_remove.username, &result);
            s_answer_durable (self, msg, &result);
            break;
        case VW_MSG_ID_token_deny:
            if (!s_begin (self, msg, &result))
                break;
            vw_users_deny (self->db, msg->token_deny.jti, msg->token_deny.username,
                           msg->token_deny.exp, now / 1000, &result);
            s_answer_durable (self, msg, &result);
            break;
        case VW_MSG_ID_users_load:
            vw_users_load (self->db, msg->users_load.now_s, &result);
            s_answer (self, msg, &result);
            break;
        case VW_MSG_ID_agents_seen: s_oneway (self, msg_p); break;
        case VW_MSG_ID_audit:
            //  Stamped on arrival, so that a row applied again later keeps
            //  its time.
            if (!msg->audit.ts)
                msg->audit.ts = now;
            s_oneway (self, msg_p);
            break;
        case VW_MSG_ID_command_insert: s_on_command_insert (self, msg); break;
        case VW_MSG_ID_command_update: s_on_command_update (self, msg_p); break;
        case VW_MSG_ID_commands_load: s_on_commands_load (self, msg); break;
        case VW_MSG_ID_stats_query:
            if (vw_actor_wants_prometheus (msg)) {
                s_on_metrics (self, msg);
                break;
            }
            vw_result_ok (&result, 200, vw_command_rows_counts (self->db));
            s_answer (self, msg, &result);
            break;
        case VW_MSG_ID_db_backup: s_on_backup (self, msg); break;
        case VW_MSG_ID_command_get:
            vw_command_rows_get (self->db, msg->command_get.command_id, &result);
            s_answer (self, msg, &result);
            break;
        case VW_MSG_ID_command_list:
            vw_command_rows_list (self->db, msg->command_list.agent_id, msg->command_list.state,
                                  msg->command_list.limit, msg->command_list.cursor, &result);
            s_answer (self, msg, &result);
            break;
        case VW_MSG_ID_telemetry_write:
            if (!s_begin (self, msg, &result))
                break;
            vw_telemetry_rows_store (self->telemetry, msg->telemetry_write.agent_id,
                                     msg->telemetry_write.seq, msg->telemetry_write.points.data,
                                     msg->telemetry_write.points.size, &result);
            s_answer_durable (self, msg, &result);
            break;
        case VW_MSG_ID_telemetry_query: {
            const vw_telemetry_query_msg_t *in = &msg->telemetry_query;
            vw_telemetry_query_t query = {in->agent_id,  in->metric,  in->from,
                                          in->to,        in->step_ms, vw_agg_from_name (in->agg),
                                          in->max_points};
            vw_telemetry_query (self->db, &query, &result);
            s_answer (self, msg, &result);
            break;
        }
        case VW_MSG_ID_telemetry_summary:
            vw_telemetry_summary (self->db, msg->telemetry_summary.agent_id,
                                  msg->telemetry_summary.now ? msg->telemetry_summary.now : now,
                                  &result);
            s_answer (self, msg, &result);
            break;
        case VW_MSG_ID_telemetry_expire: {
            if (!s_begin (self, msg, &result))
                break;
            const vw_telemetry_expire_msg_t *in = &msg->telemetry_expire;
            bool more = false;
            int64_t deleted =
                vw_telemetry_rows_expire (self->telemetry, in->raw_before, in->m1_before,
                                          in->h1_before, in->budget > 0 ? in->budget : 1, &more);
            if (deleted < 0)
                vw_result_fail (&result, 500, "database_error", "database error: %s",
                                sqlite3_errmsg (vw_db_handle (self->db)));
            else
                vw_result_ok (
                    &result, 200,
                    json_pack ("{s:I, s:b}", "deleted", (json_int_t) deleted, "more", more));
            s_answer_durable (self, msg, &result);
            break;
        }
        case VW_MSG_ID_audit_list:
            vw_audit_list (self->db, msg->audit_list.action, msg->audit_list.actor,
                           msg->audit_list.from, msg->audit_list.to, msg->audit_list.limit,
                           msg->audit_list.cursor, &result);
            s_answer (self, msg, &result);
            break;
        default:
            vw_warn ("store", "unexpected '%s' from '%s' ignored", vw_msg_name (msg->id),
                     msg->peer);
            break;
    }
}

static const char *
s_writes_text (vw_db_writes_t state)
{
    switch (state) {
        case VW_DB_DISK_FULL: return "the disk is full";
        case VW_DB_READ_ONLY: return "the database or its disk is read-only";
        default: return "database error";
    }
}

//  Logs the start of a run of failed commits, then one line per
//  S_FAILURE_LOG_MS with the count of the failures in between, and the end
//  of the run. `attempt` is true after a commit (false after the health
//  check's retry, which is not counted as a failure of its own).
static void
s_note_writes (self_t *self, bool attempt)
{
    vw_db_writes_t state = vw_db_writes (self->db);
    int64_t now = vw_clock_mono_ms ();
    if (state == VW_DB_WRITES_OK) {
        if (self->failing)
            vw_info ("store",
                     "writes land again after %llu failed commit(s) in %lld s (%llu of them "
                     "not logged)",
                     (unsigned long long) self->failing,
                     (long long) ((now - self->failing_since_ms) / 1000),
                     (unsigned long long) self->failing_unlogged);
        self->failing = self->failing_unlogged = 0;
        return;
    }
    if (!attempt)
        return;
    if (self->failing++ == 0) {
        self->failing_since_ms = self->failing_logged_ms = now;
        self->failing_unlogged = 0;
        vw_error ("store",
                  "commit failed: %s (%s); changes are refused with 503 until the database "
                  "takes writes again",
                  s_writes_text (state), vw_db_write_error (self->db));
    }
    else if (now - self->failing_logged_ms >= S_FAILURE_LOG_MS) {
        vw_error ("store", "commit failed: %s (%s); %llu similar line(s) not logged in %lld s",
                  s_writes_text (state), vw_db_write_error (self->db),
                  (unsigned long long) self->failing_unlogged,
                  (long long) ((now - self->failing_logged_ms) / 1000));
        self->failing_logged_ms = now;
        self->failing_unlogged = 0;
    }
    else
        self->failing_unlogged++;
}

//  A reply of a pass whose commit failed: the same kind, saying nothing was
//  stored (a command_inserted stays one, so the scheduler still matches it).
static vw_msg_t *
s_not_stored (vw_msg_t *reply)
{
    if (reply->id == VW_MSG_ID_command_inserted) {
        vw_command_inserted_msg_t *in = &reply->command_inserted;
        in->status = 503;
        vw_msg_set_str (&in->code, "database_error");
        vw_msg_set_str (&in->message, "the change could not be committed");
        vw_msg_set_str (&in->json, NULL);
        vw_msg_set_str (&in->rows, "[]");
        return reply;
    }
    vw_msg_t *err = vw_msg_new (VW_MSG_ID_reply);
    err->rid = reply->rid;
    memcpy (err->peer, reply->peer, sizeof err->peer);
    err->reply.status = 503;
    vw_msg_set_str (&err->reply.code, "database_error");
    vw_msg_set_str (&err->reply.message, "the change could not be committed");
    vw_msg_destroy (&reply);
    return err;
}

//  Once per loop pass: commit, then release the replies that waited for it
//  (also those of a pass whose BEGIN failed: their 503 goes out now).
static void
s_flush (void *state, vw_actor_t *actor)
{
    self_t *self = (self_t *) state;
    bool ok = true;
    if (vw_db_in_tx (self->db)) {
        //  The pass's roll-ups join its transaction; if they cannot, the
        //  commit fails (the frames must not land without them).
        int64_t t0 = vw_clock_mono_us ();
        vw_telemetry_rows_flush (self->telemetry);
        ok = vw_db_commit (self->db) == 0;
        vw_histo_observe_ms (&self->commit_latency, (double) (vw_clock_mono_us () - t0) / 1000.0);
        if (!ok)
            vw_telemetry_rows_forget (self->telemetry);
        if (ok)
            self->commits++;
        else
            self->commit_failures++;
        s_note_writes (self, true);
    }
    self->begin_failed = false;
    vw_msg_t *msg;
    while ((msg = (vw_msg_t *) zlistx_detach (self->oneway, NULL))) {
        if (ok)
            vw_msg_destroy (&msg);
        else
            zlistx_add_end (self->redo, msg);
    }
    while (zlistx_size (self->redo) > S_REDO_MAX) {
        msg = (vw_msg_t *) zlistx_detach (self->redo, NULL);
        vw_msg_destroy (&msg);
        if (self->redo_lost++ % 10000 == 0)
            vw_error ("store",
                      "%llu agent state, audit or delivery write(s) dropped: the database has "
                      "refused writes for too long",
                      (unsigned long long) self->redo_lost);
    }
    if (zlistx_size (self->redo) && !self->redo_timer)
        self->redo_timer = vw_timers_add (vw_actor_timers (actor), S_REDO_MS, s_on_redo_due, self);
    while ((msg = (vw_msg_t *) zlistx_detach (self->deferred, NULL))) {
        //  Nothing of this pass is stored: say so instead of "done".
        if (!ok)
            msg = s_not_stored (msg);
        char to[VW_ADDR_MAX];
        memcpy (to, msg->peer, sizeof to);
        if (vw_actor_send (actor, to, &msg))
            vw_msg_destroy (&msg);
    }
}

static void
s_health (void *state, bool *healthy, char *detail, size_t len)
{
    self_t *self = (self_t *) state;
    //  A database that refused its last commit is not healthy even when it
    //  reads fine; with no traffic, the retry is what notices space came
    //  back.
    bool readable = vw_db_ping (self->db) == 0;
    vw_db_writes_t writes = vw_db_retry_writes (self->db);
    s_note_writes (self, false);
    *healthy = readable && writes == VW_DB_WRITES_OK;
    snprintf (detail, len, "%s", readable ? vw_db_writes_name (writes) : "error");
}

const vw_actor_class_t vw_store_class = {
    .name = "store",
    .create = s_create,
    .destroy = s_destroy,
    .handle = s_handle,
    .flush = s_flush,
    .health = s_health,
};
