/*  vw_db - the SQLite database: location, schema, migrations.

    Opening goes: URL → path, create the parent directory, open the file,
    look at its header (application_id, user_version) BEFORE changing
    anything, then switch to WAL, set the connection pragmas and apply the
    missing migrations, one transaction each. A file that is too new or
    belongs to another program is left exactly as it was.
*/
#include "vw_db.h"
#include "vw_result.h"
#include "vw_text.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

//  How long a statement waits for another connection's lock (a second
//  process, the sqlite3 shell) before giving up with SQLITE_BUSY. Short
//  beside the callers' own deadlines (the API's 5 s per call, the
//  scheduler's 10 s per write): the store fails the rest of a pass at once
//  after one BEGIN gave up, so a write is answered about 2 s after it
//  arrives at worst, before its caller has answered its client 503 and
//  while it can still believe the answer. (At 5 s, the same as the API's,
//  a create answered 503 at the API was committed a moment later.)
#define VW_DB_BUSY_TIMEOUT_MS 1000

#define S_STMT_CACHE 64

struct vw_db_t {
    sqlite3 *handle;
    char *path;
    char *data_dir;
    sqlite3_stmt *ping;      //  prepared once at open
    int schema_version;      //  user_version after opening
    int migrations_applied;  //  by this open
    //  Statement cache for vw_db_stmt: keyed by the SQL text's address
    //  (callers pass string literals), prepared on first use.
    struct {
        const char *sql;
        sqlite3_stmt *stmt;
    } cache[S_STMT_CACHE];
    int cached;
    bool in_tx;
    vw_db_writes_t writes;  //  verdict of the last commit
    char write_error[256];  //  its message when it failed
    //  The background checkpointer (vw_db_checkpoint_in_background): its
    //  own connection and thread; the writer's WAL hook wakes it.
    struct {
        bool running, stop, due;
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t wake;
        sqlite3 *handle;
        atomic_uint_fast64_t done;         //  checkpoints run
        atomic_uint_fast64_t inline_runs;  //  run by the writer: the WAL outgrew the bound
    } ckpt;
};

//  --------------------------------------------------------------------------
//  Migrations. Entry i takes the schema from version i to version i + 1 and
//  runs in one transaction with the user_version bump. Never edit an entry
//  that has shipped: append a new one and raise VW_DB_SCHEMA_VERSION.
//
//  Conventions: times are INTEGER milliseconds since the Unix epoch; JSON is
//  TEXT checked with json_valid; enums are TEXT with CHECK; tables are
//  STRICT so a wrongly typed bind fails instead of being stored.

static const char *const s_migrations[] = {
    //  1: the initial schema
    "CREATE TABLE agents (\n"
    "    agent_id         TEXT NOT NULL PRIMARY KEY CHECK (agent_id <> ''),\n"
    "    token_hash       BLOB,\n"
    "    public_key       BLOB CHECK (public_key IS NULL OR length (public_key) = 32),\n"
    "    status           TEXT NOT NULL DEFAULT 'offline'\n"
    "                     CHECK (status IN ('online', 'degraded', 'maintenance', 'offline')),\n"
    "    maintenance      INTEGER NOT NULL DEFAULT 0 CHECK (maintenance IN (0, 1)),\n"
    "    hostname         TEXT,\n"
    "    version          TEXT,\n"
    "    labels           TEXT NOT NULL DEFAULT '{}'\n"
    "                     CHECK (json_valid (labels) AND json_type (labels) = 'object'),\n"
    "    capabilities     TEXT NOT NULL DEFAULT '[]'\n"
    "                     CHECK (json_valid (capabilities) AND json_type (capabilities) = "
    "'array'),\n"
    "    connected_at     INTEGER,\n"
    "    last_seen        INTEGER,\n"
    "    session_id       TEXT,\n"
    "    created_at       INTEGER NOT NULL,\n"
    "    revoked_at       INTEGER,\n"
    "    telemetry_seq    INTEGER NOT NULL DEFAULT -1,\n"
    "    connect_count    INTEGER NOT NULL DEFAULT 0 CHECK (connect_count >= 0),\n"
    "    disconnect_count INTEGER NOT NULL DEFAULT 0 CHECK (disconnect_count >= 0)\n"
    ") STRICT;\n"
    "\n"
    "CREATE TABLE commands (\n"
    "    command_id      TEXT NOT NULL PRIMARY KEY CHECK (command_id <> ''),\n"
    "    agent_id        TEXT NOT NULL REFERENCES agents (agent_id),\n"
    "    type            TEXT NOT NULL CHECK (type <> ''),\n"
    "    payload         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid (payload)),\n"
    "    priority        INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 2),\n"
    "    state           TEXT NOT NULL\n"
    "                    CHECK (state IN ('pending', 'executing', 'completed', 'failed',\n"
    "                                     'cancelled')),\n"
    "    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),\n"
    "    max_retries     INTEGER NOT NULL DEFAULT 3 CHECK (max_retries >= 0),\n"
    "    timeout_ms      INTEGER NOT NULL CHECK (timeout_ms > 0),\n"
    "    created_at      INTEGER NOT NULL,\n"
    "    started_at      INTEGER,\n"
    "    delivered_at    INTEGER,\n"
    "    finished_at     INTEGER,\n"
    "    expires_at      INTEGER NOT NULL,\n"
    "    next_attempt_at INTEGER,\n"
    "    failure_reason  TEXT\n"
    "                    CHECK (failure_reason IS NULL\n"
    "                           OR failure_reason IN ('agent_error', 'timeout', 'expired',\n"
    "                                                 'agent_revoked', 'cancelled_by_user')),\n"
    "    result          TEXT CHECK (result IS NULL OR json_valid (result)),\n"
    "    error           TEXT,\n"
    "    created_by      TEXT,\n"
    "    idempotency_key TEXT,\n"
    "    seq             INTEGER NOT NULL\n"
    ") STRICT;\n"
    "CREATE UNIQUE INDEX commands_idempotency_key ON commands (idempotency_key)\n"
    "    WHERE idempotency_key IS NOT NULL;\n"
    "CREATE INDEX commands_state_priority_seq ON commands (state, priority, seq);\n"
    "CREATE INDEX commands_agent_state_seq ON commands (agent_id, state, seq);\n"
    "CREATE UNIQUE INDEX commands_seq ON commands (seq);\n"
    "\n"
    //  One row per (agent, metric) so that the point tables carry a small
    //  integer key. Retention deletes per series (a range of the primary
    //  key): an index on ts alone would double the cost of every insert.
    "CREATE TABLE telemetry_series (\n"
    "    series_id INTEGER PRIMARY KEY,\n"
    "    agent_id  TEXT NOT NULL REFERENCES agents (agent_id),\n"
    "    metric    TEXT NOT NULL CHECK (length (metric) BETWEEN 1 AND 64),\n"
    "    UNIQUE (agent_id, metric)\n"
    ") STRICT;\n"
    "\n"
    "CREATE TABLE telemetry (\n"
    "    series_id INTEGER NOT NULL REFERENCES telemetry_series (series_id),\n"
    "    ts        INTEGER NOT NULL,\n"
    "    value     REAL NOT NULL,\n"
    "    PRIMARY KEY (series_id, ts)\n"
    ") STRICT, WITHOUT ROWID;\n"
    "\n"
    "CREATE TABLE telemetry_1m (\n"
    "    series_id INTEGER NOT NULL REFERENCES telemetry_series (series_id),\n"
    "    bucket    INTEGER NOT NULL CHECK (bucket % 60000 = 0),\n"
    "    min       REAL NOT NULL,\n"
    "    max       REAL NOT NULL CHECK (max >= min),\n"
    "    sum       REAL NOT NULL,\n"
    "    count     INTEGER NOT NULL CHECK (count > 0),\n"
    "    last      REAL NOT NULL,\n"
    "    last_ts   INTEGER NOT NULL CHECK (last_ts >= bucket AND last_ts < bucket + 60000),\n"
    "    PRIMARY KEY (series_id, bucket)\n"
    ") STRICT, WITHOUT ROWID;\n"
    "\n"
    "CREATE TABLE telemetry_1h (\n"
    "    series_id INTEGER NOT NULL REFERENCES telemetry_series (series_id),\n"
    "    bucket    INTEGER NOT NULL CHECK (bucket % 3600000 = 0),\n"
    "    min       REAL NOT NULL,\n"
    "    max       REAL NOT NULL CHECK (max >= min),\n"
    "    sum       REAL NOT NULL,\n"
    "    count     INTEGER NOT NULL CHECK (count > 0),\n"
    "    last      REAL NOT NULL,\n"
    "    last_ts   INTEGER NOT NULL CHECK (last_ts >= bucket AND last_ts < bucket + 3600000),\n"
    "    PRIMARY KEY (series_id, bucket)\n"
    ") STRICT, WITHOUT ROWID;\n"
    "\n"
    //  AUTOINCREMENT: ids are never reused after retention deletes old
    //  rows, so an id is a stable cursor.
    "CREATE TABLE audit_logs (\n"
    "    id      INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "    ts      INTEGER NOT NULL,\n"
    "    actor   TEXT NOT NULL,\n"
    "    source  TEXT,\n"
    "    action  TEXT NOT NULL,\n"
    "    target  TEXT,\n"
    "    outcome TEXT NOT NULL,\n"
    "    detail  TEXT\n"
    ") STRICT;\n"
    "CREATE INDEX audit_logs_ts ON audit_logs (ts);\n"
    "CREATE INDEX audit_logs_action_ts ON audit_logs (action, ts);\n"
    "CREATE INDEX audit_logs_actor_ts ON audit_logs (actor, ts);\n"
    "\n"
    "CREATE TABLE users (\n"
    "    username      TEXT NOT NULL PRIMARY KEY CHECK (username <> ''),\n"
    "    password_hash TEXT NOT NULL,\n"
    "    role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),\n"
    "    created_at    INTEGER NOT NULL,\n"
    "    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))\n"
    ") STRICT;\n"
    "\n"
    "PRAGMA application_id = 1447647051;\n",  //  VW_DB_APPLICATION_ID

    //  2: failed attempts (timeouts, agent errors) are counted apart from
    //  dispatches, so the retry budget and the backoff survive a restart.
    //  Rows written before get the estimate recovery used until then: every
    //  dispatch but the last failed (the last too if the command ended
    //  failed by timeout or agent error). The partial index serves the
    //  recovery scan: unfinished rows in submit order, without visiting the
    //  finished history or sorting.
    "ALTER TABLE commands ADD COLUMN failures INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0);\n"
    "UPDATE commands SET failures = CASE\n"
    "    WHEN state = 'failed' AND failure_reason IN ('timeout', 'agent_error') THEN attempts\n"
    "    ELSE attempts - 1 END\n"
    "    WHERE attempts > 1 OR (attempts = 1 AND state = 'failed'\n"
    "                           AND failure_reason IN ('timeout', 'agent_error'));\n"
    "CREATE INDEX commands_unfinished_seq ON commands (seq)\n"
    "    WHERE state IN ('pending', 'executing');\n",

    //  3: the labels an agent reports in its hello are kept apart from the
    //  operator's (SPEC §6 reported_labels), so an agent cannot move itself
    //  into a fan-out: targeting and label= filters read `labels` only.
    //  Rows from before keep `labels` as they are (hellos were merged into
    //  them and cannot be told apart now); reported_labels fills at the
    //  agent's next hello.
    ("ALTER TABLE agents ADD COLUMN reported_labels TEXT NOT NULL DEFAULT '{}'\n"
     "    CHECK (json_valid (reported_labels) AND json_type (reported_labels) = 'object');\n"),
    //  4: token revocation (issue 8). Every user has a token generation,
    //  signed into their tokens as the "gen" claim; a change of password or
    //  role, disabling or deletion draws a new one (at random, so a user
    //  deleted and created again never matches an old token). Rows written
    //  before keep 0, which is what a token without "gen" carries. Logged
    //  out tokens are kept by jti until their exp (seconds).
    "ALTER TABLE users ADD COLUMN token_gen INTEGER NOT NULL DEFAULT 0;\n"
    "CREATE TABLE token_denylist (\n"
    "    jti      TEXT NOT NULL PRIMARY KEY CHECK (jti <> ''),\n"
    "    username TEXT NOT NULL,\n"
    "    exp      INTEGER NOT NULL\n"
    ") STRICT;\n"
    "CREATE INDEX token_denylist_exp ON token_denylist (exp);\n",
    //  5: telemetry (issue 11). Migration 1's table of one row per value was
    //  never written: measured, one row per value costs 27-49 bytes and
    //  ~111 k inserts/s (docs/benchmarks.md). A frame is kept as it came,
    //  packed by vw_points, one row per frame; telemetry_seqs holds the seqs
    //  stored per agent as closed ranges, so a re-sent frame is acked
    //  without being stored twice, whatever has happened to its row since.
    //  An agent's frames carry a small integer (tid) instead of its id.
    "DROP TABLE telemetry;\n"
    "CREATE TABLE telemetry_agents (\n"
    "    tid      INTEGER PRIMARY KEY,\n"
    "    agent_id TEXT NOT NULL UNIQUE REFERENCES agents (agent_id)\n"
    ") STRICT;\n"
    "CREATE TABLE telemetry_frames (\n"
    "    id     INTEGER PRIMARY KEY,\n"
    "    tid    INTEGER NOT NULL REFERENCES telemetry_agents (tid),\n"
    "    seq    INTEGER NOT NULL CHECK (seq >= 0),\n"
    "    ts_min INTEGER NOT NULL,\n"
    "    ts_max INTEGER NOT NULL CHECK (ts_max >= ts_min),\n"
    "    points BLOB NOT NULL\n"
    ") STRICT;\n"
    "CREATE INDEX telemetry_frames_tid_ts ON telemetry_frames (tid, ts_max);\n"
    "CREATE TABLE telemetry_seqs (\n"
    "    tid INTEGER NOT NULL REFERENCES telemetry_agents (tid),\n"
    "    lo  INTEGER NOT NULL CHECK (lo >= 0),\n"
    "    hi  INTEGER NOT NULL CHECK (hi >= lo),\n"
    "    PRIMARY KEY (tid, lo)\n"
    ") STRICT, WITHOUT ROWID;\n",

    //  6: roll-ups one row per agent and bucket, every metric's aggregates
    //  packed by vw_rollup: a pass then upserts a row per agent and bucket
    //  instead of one per metric (measured: the per-metric upserts bounded
    //  the ack latency). The key is the agent's tid in the high 32 bits and
    //  the bucket's number in the low ones: an agent's buckets are one range
    //  of the table's own b-tree, with no index beside it. tid and bucket
    //  are there to read. Schema 5 lived one day on the development branch;
    //  its roll-ups are not carried over (decision 58).
    "DROP TABLE telemetry_1m;\n"
    "DROP TABLE telemetry_1h;\n"
    "CREATE TABLE telemetry_1m (\n"
    "    key    INTEGER PRIMARY KEY CHECK (key > 0),\n"
    "    aggs   BLOB NOT NULL CHECK (length (aggs) >= 2),\n"
    "    tid    INTEGER GENERATED ALWAYS AS (key >> 32) VIRTUAL,\n"
    "    bucket INTEGER GENERATED ALWAYS AS ((key & 4294967295) * 60000) VIRTUAL\n"
    ") STRICT;\n"
    "CREATE TABLE telemetry_1h (\n"
    "    key    INTEGER PRIMARY KEY CHECK (key > 0),\n"
    "    aggs   BLOB NOT NULL CHECK (length (aggs) >= 2),\n"
    "    tid    INTEGER GENERATED ALWAYS AS (key >> 32) VIRTUAL,\n"
    "    bucket INTEGER GENERATED ALWAYS AS ((key & 4294967295) * 3600000) VIRTUAL\n"
    ") STRICT;\n",

    //  7: a command's latest progress from its agent (command_progress):
    //  shown on the command while it runs, reset when an attempt starts.
    "ALTER TABLE commands ADD COLUMN progress INTEGER "
    "CHECK (progress IS NULL OR progress BETWEEN 0 AND 100);\n"
    "ALTER TABLE commands ADD COLUMN progress_message TEXT "
    "CHECK (progress_message IS NULL OR length (progress_message) <= 1024);\n",

    //  8: agent token rotation: the token before the last rotation still
    //  works until previous_token_until, or until the agent uses its new one.
    "ALTER TABLE agents ADD COLUMN previous_token_hash BLOB "
    "CHECK (previous_token_hash IS NULL OR length (previous_token_hash) = 32);\n"
    "ALTER TABLE agents ADD COLUMN previous_token_until INTEGER;\n",
};

_Static_assert(sizeof (s_migrations) / sizeof (s_migrations[0]) == VW_DB_SCHEMA_VERSION,
               "one migration per schema version");
_Static_assert(VW_DB_APPLICATION_ID == 1447647051, "migration 1 writes the application id");

//  --------------------------------------------------------------------------

static void s_set_err (char *err, size_t errlen, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_set_err (char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list args;
    va_start (args, fmt);
    vsnprintf (err, errlen, fmt, args);
    va_end (args);
}

static bool
s_is_memory (const char *path)
{
    return strcmp (path, ":memory:") == 0;
}

//  Length of a URL scheme at the start of s ("sqlite" in "sqlite://…"), or 0
//  when s does not start with one. One-letter schemes are not schemes, so
//  that "C:…"-like names stay paths.
static size_t
s_scheme_length (const char *s)
{
    if (!isalpha ((unsigned char) s[0]))
        return 0;
    size_t len = 1;
    while (isalnum ((unsigned char) s[len]) || s[len] == '+' || s[len] == '-' || s[len] == '.')
        len++;
    return (s[len] == ':' && len >= 2) ? len : 0;
}

//  Copies the path part of a URL (up to '?' or '#'), decoding %XX. NULL on
//  a malformed escape, an encoded NUL or an empty result.
static char *
s_url_path_decode (const char *src)
{
    size_t len = strcspn (src, "?#");
    char *path = malloc (len + 1);
    if (!path)
        return NULL;
    size_t out = 0;
    bool valid = true;
    for (size_t in = 0; in < len && valid; in++) {
        if (src[in] != '%') {
            path[out++] = src[in];
            continue;
        }
        int high = in + 2 < len ? vw_text_hex_digit ((unsigned char) src[in + 1]) : -1;
        int low = high >= 0 ? vw_text_hex_digit ((unsigned char) src[in + 2]) : -1;
        valid = high >= 0 && low >= 0 && (high | low) != 0;
        if (valid)
            path[out++] = (char) (high * 16 + low);
        in += 2;
    }
    path[out] = 0;
    if (!valid || out == 0) {
        free (path);
        path = NULL;
    }
    return path;
}

char *
vw_db_path_from_url (const char *url)
{
    if (!url || !*url)
        return NULL;
    size_t scheme_len = s_scheme_length (url);
    if (scheme_len == 0)
        return strdup (url);  //  a plain path, ":memory:" included

    bool is_file = scheme_len == 4 && strncasecmp (url, "file", 4) == 0;
    bool is_sqlite = scheme_len == 6 && strncasecmp (url, "sqlite", 6) == 0;
    if (!is_file && !is_sqlite)
        return NULL;  //  postgres://, mysql:, http:… are not ours

    //  "sqlite:///abs" and "sqlite://rel" (the sqlx convention), "sqlite:rel",
    //  "file:///abs", "file://localhost/abs", "file:rel"
    const char *rest = url + scheme_len + 1;
    if (strncmp (rest, "//", 2) == 0) {
        rest += 2;
        if (is_file && strncasecmp (rest, "localhost/", 10) == 0)
            rest += 9;
    }
    return s_url_path_decode (rest);
}

//  --------------------------------------------------------------------------
//  Opening, step by step. Each step returns a status and fills err on
//  failure; vw_db_open runs them in order and tears down on the first error.

//  mkdir -p dir with the given mode; directories that exist are left as they
//  are (mode included).
static int
s_mkdir_p (const char *dir, mode_t mode)
{
    char *copy = strdup (dir);
    if (!copy) {
        errno = ENOMEM;
        return -1;
    }
    int rc = 0;
    size_t len = strlen (copy);
    //  Each prefix ending before a '/' (and the whole string) is one level
    for (size_t i = 1; i <= len && rc == 0; i++) {
        if (copy[i] != '/' && copy[i] != 0)
            continue;
        char saved = copy[i];
        copy[i] = 0;
        if (mkdir (copy, mode) != 0) {
            //  EEXIST, but also EACCES/EROFS on a directory that already
            //  exists: only "it is a directory now" matters
            int saved_errno = errno;
            struct stat st;
            if (stat (copy, &st) != 0 || !S_ISDIR (st.st_mode)) {
                errno = saved_errno == EEXIST ? ENOTDIR : saved_errno;
                rc = -1;
            }
        }
        copy[i] = saved;
    }
    free (copy);
    return rc;
}

static char *
s_parent_dir (const char *path)
{
    const char *slash = strrchr (path, '/');
    if (s_is_memory (path) || !slash)
        return strdup (".");
    if (slash == path)
        return strdup ("/");
    return strndup (path, (size_t) (slash - path));
}

//  Creates the directory and, if missing, the file itself with mode 0600:
//  it holds token and password hashes, and SQLite gives the -wal and -shm
//  files the mode of the main file.
static vw_db_status_t
s_prepare_file (vw_db_t *self, char *err, size_t errlen)
{
    if (s_is_memory (self->path))
        return VW_DB_OK;
    if (s_mkdir_p (self->data_dir, 0700) != 0) {
        s_set_err (err, errlen, "cannot create directory %s for database %s: %s", self->data_dir,
                   self->path, strerror (errno));
        return VW_DB_ERR_OPEN;
    }
    int fd = open (self->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        s_set_err (err, errlen, "cannot open database %s for writing: %s", self->path,
                   strerror (errno));
        return VW_DB_ERR_OPEN;
    }
    close (fd);
    return VW_DB_OK;
}

//  Runs a statement that returns one row and one column and stores it as
//  int (*number) or, when text is not NULL, copies it as text. 0 / -1.
static int
s_query_one (sqlite3 *db, const char *sql, int *number, char *text, size_t textlen)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        if (number)
            *number = sqlite3_column_int (stmt, 0);
        if (text && textlen > 0) {
            const unsigned char *value = sqlite3_column_text (stmt, 0);
            snprintf (text, textlen, "%s", value ? (const char *) value : "");
        }
    }
    sqlite3_finalize (stmt);  //  keeps the error message of the failing step
    return rc == SQLITE_ROW ? 0 : -1;
}

static void
s_set_err_too_new (vw_db_t *self, char *err, size_t errlen)
{
    s_set_err (err, errlen,
               "database %s has schema version %d, newer than this build's %d; "
               "refusing to open it (upgrade viworks-backend)",
               self->path, self->schema_version, VW_DB_SCHEMA_VERSION);
}

//  Opens the handle and reads the header without writing anything: a file
//  we refuse must stay byte for byte as it was.
static vw_db_status_t
s_connect (vw_db_t *self, char *err, size_t errlen)
{
    int rc =
        sqlite3_open_v2 (self->path, &self->handle,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        s_set_err (err, errlen, "cannot open database %s: %s", self->path,
                   self->handle ? sqlite3_errmsg (self->handle) : sqlite3_errstr (rc));
        return VW_DB_ERR_OPEN;
    }
    sqlite3_extended_result_codes (self->handle, 1);
    sqlite3_busy_timeout (self->handle, VW_DB_BUSY_TIMEOUT_MS);
    if (sqlite3_db_readonly (self->handle, "main") == 1) {
        s_set_err (err, errlen, "database %s is read-only", self->path);
        return VW_DB_ERR_OPEN;
    }
    int app_id = 0;
    if (s_query_one (self->handle, "PRAGMA application_id", &app_id, NULL, 0) != 0 ||
        s_query_one (self->handle, "PRAGMA user_version", &self->schema_version, NULL, 0) != 0) {
        s_set_err (err, errlen, "cannot read database %s: %s", self->path,
                   sqlite3_errmsg (self->handle));
        return VW_DB_ERR_OPEN;
    }
    if (app_id != 0 && app_id != VW_DB_APPLICATION_ID) {
        s_set_err (err, errlen,
                   "database %s belongs to another application (application_id 0x%08X); "
                   "refusing to open it",
                   self->path, (unsigned) app_id);
        return VW_DB_ERR_OPEN;
    }
    if (self->schema_version > VW_DB_SCHEMA_VERSION) {
        s_set_err_too_new (self, err, errlen);
        return VW_DB_ERR_TOO_NEW;
    }
    return VW_DB_OK;
}

static vw_db_status_t
s_configure (vw_db_t *self, bool full_sync, char *err, size_t errlen)
{
    //  WAL lets readers (sqlite3 shell, backups) run beside the writer and
    //  makes small commits cheap. A file on a filesystem without shared
    //  memory support silently stays in another mode: refuse that.
    char mode[16] = "";
    if (s_query_one (self->handle, "PRAGMA journal_mode = WAL", NULL, mode, sizeof (mode)) != 0) {
        s_set_err (err, errlen, "cannot set WAL mode on database %s: %s", self->path,
                   sqlite3_errmsg (self->handle));
        return VW_DB_ERR_OPEN;
    }
    const char *expected = s_is_memory (self->path) ? "memory" : "wal";
    if (strcasecmp (mode, expected) != 0) {
        s_set_err (err, errlen, "database %s did not switch to WAL mode (journal_mode is %s)",
                   self->path, mode);
        return VW_DB_ERR_OPEN;
    }
    const char *sync_sql = full_sync ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL";
    int foreign_keys = 0;
    if (sqlite3_exec (self->handle, sync_sql, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec (self->handle, "PRAGMA foreign_keys = ON", NULL, NULL, NULL) != SQLITE_OK ||
        s_query_one (self->handle, "PRAGMA foreign_keys", &foreign_keys, NULL, 0) != 0) {
        s_set_err (err, errlen, "cannot configure database %s: %s", self->path,
                   sqlite3_errmsg (self->handle));
        return VW_DB_ERR_OPEN;
    }
    if (foreign_keys != 1) {
        s_set_err (err, errlen, "database %s: this SQLite cannot enforce foreign keys", self->path);
        return VW_DB_ERR_OPEN;
    }
    return VW_DB_OK;
}

//  Applies the migration after self->schema_version in one write
//  transaction. The version is read again under the lock: another process
//  may have migrated the file since we first looked, and then we only take
//  note of its version.
static vw_db_status_t
s_migrate_once (vw_db_t *self, char *err, size_t errlen)
{
    int found = self->schema_version;
    int current = found;
    char *message = NULL;

    int rc = sqlite3_exec (self->handle, "BEGIN IMMEDIATE", NULL, NULL, &message);
    if (rc == SQLITE_OK &&
        s_query_one (self->handle, "PRAGMA user_version", &current, NULL, 0) != 0) {
        rc = sqlite3_errcode (self->handle);
        if (rc == SQLITE_OK)
            rc = SQLITE_ERROR;
    }
    bool apply = rc == SQLITE_OK && current == found;
    if (apply) {
        char bump[48];
        snprintf (bump, sizeof (bump), "PRAGMA user_version = %d", found + 1);
        rc = sqlite3_exec (self->handle, s_migrations[found], NULL, NULL, &message);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec (self->handle, bump, NULL, NULL, &message);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec (self->handle, "COMMIT", NULL, NULL, &message);

    vw_db_status_t status = VW_DB_OK;
    if (rc != SQLITE_OK) {
        s_set_err (err, errlen, "migration %d of database %s failed: %s (rolled back)", found + 1,
                   self->path, message ? message : sqlite3_errmsg (self->handle));
        if (!sqlite3_get_autocommit (self->handle))
            sqlite3_exec (self->handle, "ROLLBACK", NULL, NULL, NULL);
        status = VW_DB_ERR_MIGRATE;
    }
    else if (apply) {
        self->schema_version = found + 1;
        self->migrations_applied++;
    }
    else
        self->schema_version = current;
    sqlite3_free (message);
    return status;
}

static vw_db_status_t
s_migrate (vw_db_t *self, char *err, size_t errlen)
{
    vw_db_status_t status = VW_DB_OK;
    while (status == VW_DB_OK && self->schema_version < VW_DB_SCHEMA_VERSION)
        status = s_migrate_once (self, err, errlen);
    if (status == VW_DB_OK && self->schema_version > VW_DB_SCHEMA_VERSION) {
        //  A newer build migrated the file while we were opening it
        s_set_err_too_new (self, err, errlen);
        status = VW_DB_ERR_TOO_NEW;
    }
    return status;
}

static vw_db_status_t
s_prepare_statements (vw_db_t *self, char *err, size_t errlen)
{
    if (sqlite3_prepare_v3 (self->handle, "PRAGMA user_version", -1, SQLITE_PREPARE_PERSISTENT,
                            &self->ping, NULL) != SQLITE_OK) {
        s_set_err (err, errlen, "cannot prepare statements on database %s: %s", self->path,
                   sqlite3_errmsg (self->handle));
        return VW_DB_ERR_OPEN;
    }
    return VW_DB_OK;
}

//  --------------------------------------------------------------------------

vw_db_t *
vw_db_open (const char *path, bool full_sync, vw_db_status_t *status, char *err, size_t errlen)
{
    vw_db_status_t rc = VW_DB_OK;
    vw_db_t *self = NULL;
    if (err && errlen > 0)
        err[0] = 0;

    if (!path || !*path) {
        s_set_err (err, errlen, "no database path given");
        rc = VW_DB_ERR_OPEN;
    }
    else {
        self = calloc (1, sizeof (vw_db_t));
        if (self) {
            self->path = strdup (path);
            self->data_dir = s_parent_dir (path);
        }
        if (!self || !self->path || !self->data_dir) {
            s_set_err (err, errlen, "cannot open database %s: out of memory", path);
            rc = VW_DB_ERR_OPEN;
        }
    }
    if (rc == VW_DB_OK)
        rc = s_prepare_file (self, err, errlen);
    if (rc == VW_DB_OK)
        rc = s_connect (self, err, errlen);
    if (rc == VW_DB_OK)
        rc = s_configure (self, full_sync, err, errlen);
    if (rc == VW_DB_OK)
        rc = s_migrate (self, err, errlen);
    if (rc == VW_DB_OK)
        rc = s_prepare_statements (self, err, errlen);

    if (rc != VW_DB_OK)
        vw_db_close (&self);
    if (status)
        *status = rc;
    return self;
}

//  --------------------------------------------------------------------------
//  Checkpoints in the background. SQLite's own (wal_autocheckpoint) run in
//  the committing connection: every ~1,000 pages the writer copies the WAL
//  into the database and syncs it, and each commit waiting behind that
//  waits for a disk flush (measured: the telemetry ack p99 at 600 k
//  values/s fell from 250 ms to 50 ms without them). Here a thread with
//  its own connection runs PASSIVE checkpoints, which never block the
//  writer, whenever the writer's WAL hook reports S_CKPT_PAGES pages; the
//  writer checkpoints itself only past S_CKPT_INLINE_PAGES (the thread
//  cannot keep up, or the WAL never gets a moment to restart).

#define S_CKPT_PAGES        1000
#define S_CKPT_INLINE_PAGES 16000
#define S_CKPT_RESTART_LEFT 256  //  frames not yet copied past which no RESTART is tried

static void *
s_ckpt_thread (void *arg)
{
    vw_db_t *self = (vw_db_t *) arg;
    pthread_mutex_lock (&self->ckpt.lock);
    while (!self->ckpt.stop) {
        if (!self->ckpt.due) {
            pthread_cond_wait (&self->ckpt.wake, &self->ckpt.lock);
            continue;
        }
        self->ckpt.due = false;
        pthread_mutex_unlock (&self->ckpt.lock);
        int log = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2 (self->ckpt.handle, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                            &log, &done);
        //  A WAL starts again from its beginning only when a writer finds
        //  every frame copied, which a steady stream of commits rarely
        //  leaves time for: once little is left, RESTART copies the rest
        //  and makes the next writer start over (it waits for that short
        //  copy, not for the whole WAL).
        if (rc == SQLITE_OK && log >= S_CKPT_PAGES && log - done <= S_CKPT_RESTART_LEFT)
            rc = sqlite3_wal_checkpoint_v2 (self->ckpt.handle, NULL, SQLITE_CHECKPOINT_RESTART,
                                            &log, &done);
        if (rc == SQLITE_OK && done > 0)
            atomic_fetch_add (&self->ckpt.done, 1);
        pthread_mutex_lock (&self->ckpt.lock);
    }
    pthread_mutex_unlock (&self->ckpt.lock);
    return NULL;
}

//  After each commit of the writer, with the WAL's size in pages.
static int
s_wal_hook (void *arg, sqlite3 *handle, const char *name, int pages)
{
    vw_db_t *self = (vw_db_t *) arg;
    if (pages >= S_CKPT_INLINE_PAGES) {
        sqlite3_wal_checkpoint_v2 (handle, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        atomic_fetch_add (&self->ckpt.inline_runs, 1);
    }
    else if (pages >= S_CKPT_PAGES) {
        pthread_mutex_lock (&self->ckpt.lock);
        self->ckpt.due = true;
        pthread_cond_signal (&self->ckpt.wake);
        pthread_mutex_unlock (&self->ckpt.lock);
    }
    return SQLITE_OK;
}

int
vw_db_checkpoint_in_background (vw_db_t *self)
{
    assert (self);
    if (self->ckpt.running || s_is_memory (self->path))
        return 0;
    if (sqlite3_open_v2 (self->path, &self->ckpt.handle,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        sqlite3_close (self->ckpt.handle);
        self->ckpt.handle = NULL;
        return -1;
    }
    sqlite3_busy_timeout (self->ckpt.handle, VW_DB_BUSY_TIMEOUT_MS);
    //  A connection opens the WAL on its first read; until then it has none
    //  to checkpoint (and says -1).
    char mode[16] = "";
    if (s_query_one (self->ckpt.handle, "PRAGMA journal_mode", NULL, mode, sizeof mode) != 0 ||
        strcasecmp (mode, "wal") != 0) {
        sqlite3_close (self->ckpt.handle);
        self->ckpt.handle = NULL;
        return -1;
    }
    pthread_mutex_init (&self->ckpt.lock, NULL);
    pthread_cond_init (&self->ckpt.wake, NULL);
    if (pthread_create (&self->ckpt.thread, NULL, s_ckpt_thread, self) != 0) {
        pthread_mutex_destroy (&self->ckpt.lock);
        pthread_cond_destroy (&self->ckpt.wake);
        sqlite3_close (self->ckpt.handle);
        self->ckpt.handle = NULL;
        return -1;
    }
    self->ckpt.running = true;
    //  From now on the writer no longer checkpoints by itself.
    sqlite3_wal_autocheckpoint (self->handle, 0);
    sqlite3_wal_hook (self->handle, s_wal_hook, self);
    return 0;
}

uint64_t
vw_db_checkpoints (vw_db_t *self, uint64_t *inline_runs)
{
    if (inline_runs)
        *inline_runs = atomic_load (&self->ckpt.inline_runs);
    return atomic_load (&self->ckpt.done);
}

static void
s_ckpt_stop (vw_db_t *self)
{
    if (!self->ckpt.running)
        return;
    sqlite3_wal_hook (self->handle, NULL, NULL);
    pthread_mutex_lock (&self->ckpt.lock);
    self->ckpt.stop = true;
    pthread_cond_signal (&self->ckpt.wake);
    pthread_mutex_unlock (&self->ckpt.lock);
    pthread_join (self->ckpt.thread, NULL);
    pthread_mutex_destroy (&self->ckpt.lock);
    pthread_cond_destroy (&self->ckpt.wake);
    sqlite3_close (self->ckpt.handle);
    self->ckpt.running = false;
}

void
vw_db_close (vw_db_t **self_p)
{
    assert (self_p);
    vw_db_t *self = *self_p;
    if (!self)
        return;
    s_ckpt_stop (self);
    sqlite3_finalize (self->ping);
    for (int i = 0; i < self->cached; i++)
        sqlite3_finalize (self->cache[i].stmt);
    //  _v2: a statement someone forgot to finalize delays the close
    //  instead of leaking the handle
    sqlite3_close_v2 (self->handle);
    free (self->path);
    free (self->data_dir);
    free (self);
    *self_p = NULL;
}

sqlite3 *
vw_db_handle (vw_db_t *self)
{
    assert (self);
    return self->handle;
}

int
vw_db_schema_version (vw_db_t *self)
{
    assert (self);
    return self->schema_version;
}

int
vw_db_migrations_applied (vw_db_t *self)
{
    assert (self);
    return self->migrations_applied;
}

int
vw_db_ping (vw_db_t *self)
{
    assert (self);
    int rc = sqlite3_step (self->ping);
    sqlite3_reset (self->ping);
    return rc == SQLITE_ROW ? 0 : -1;
}

const char *
vw_db_data_dir (vw_db_t *self)
{
    assert (self);
    return self->data_dir;
}

const char *
vw_db_path (vw_db_t *self)
{
    assert (self);
    return self->path;
}

sqlite3_stmt *
vw_db_stmt (vw_db_t *self, const char *sql)
{
    for (int i = 0; i < self->cached; i++)
        if (self->cache[i].sql == sql) {
            sqlite3_reset (self->cache[i].stmt);
            sqlite3_clear_bindings (self->cache[i].stmt);
            return self->cache[i].stmt;
        }
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v3 (self->handle, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL) !=
        SQLITE_OK)
        return NULL;
    if (self->cached < S_STMT_CACHE) {
        self->cache[self->cached].sql = sql;
        self->cache[self->cached++].stmt = stmt;
    }
    //  A full cache is a programming error (raise S_STMT_CACHE); the
    //  statement still works but leaks until close.
    assert (self->cached < S_STMT_CACHE);
    return stmt;
}

int
vw_db_begin (vw_db_t *self)
{
    //  SQLite may roll a transaction back by itself when one of its
    //  statements fails (SQLITE_FULL, SQLITE_IOERR, ...): what follows in
    //  this pass must not run in autocommit mode and land on its own while
    //  the pass's earlier writes are gone. It fails until the commit.
    if (self->in_tx)
        return sqlite3_get_autocommit (self->handle) ? -1 : 0;
    if (sqlite3_exec (self->handle, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return -1;
    self->in_tx = true;
    return 0;
}

//  Classifies a failed write from SQLite's extended code and the OS errno
//  behind it.
static vw_db_writes_t
s_classify (int rc, int sys_errno)
{
    int primary = rc & 0xff;
    if (primary == SQLITE_FULL ||
        (primary == SQLITE_IOERR && (sys_errno == ENOSPC || sys_errno == EDQUOT)))
        return VW_DB_DISK_FULL;
    if (primary == SQLITE_READONLY ||
        (primary == SQLITE_IOERR &&
         (sys_errno == EROFS || sys_errno == EACCES || sys_errno == EPERM)) ||
        (primary == SQLITE_CANTOPEN && (sys_errno == EROFS || sys_errno == EACCES)))
        return VW_DB_READ_ONLY;
    return VW_DB_WRITE_ERROR;
}

//  The OS error behind the last failed call. SQLite records it only for
//  errors raised while a statement runs, not for those of the commit that
//  ends it; then the VFS's own last error (errno for the unix VFS) is the
//  best there is, read at once.
static int
s_system_errno (sqlite3 *handle)
{
    int sys_errno = sqlite3_system_errno (handle);
    sqlite3_vfs *vfs = NULL;
    if (!sys_errno &&
        sqlite3_file_control (handle, "main", SQLITE_FCNTL_VFS_POINTER, &vfs) == SQLITE_OK && vfs &&
        vfs->xGetLastError)
        sys_errno = vfs->xGetLastError (vfs, 0, NULL);
    return sys_errno;
}

int
vw_db_commit (vw_db_t *self)
{
    if (!self->in_tx)
        return 0;
    self->in_tx = false;
    int rc, sys_errno = 0;
    if (sqlite3_get_autocommit (self->handle)) {
        //  SQLite already rolled the transaction back after one of its
        //  statements failed (SQLITE_FULL, SQLITE_IOERR, ... may do that):
        //  the most recent error is the cause.
        rc = sqlite3_extended_errcode (self->handle);
        sys_errno = s_system_errno (self->handle);
        if ((rc & 0xff) == SQLITE_OK || (rc & 0xff) == SQLITE_ROW || (rc & 0xff) == SQLITE_DONE)
            rc = SQLITE_ABORT;
        snprintf (self->write_error, sizeof self->write_error, "%s (rolled back by SQLite)",
                  sqlite3_errstr (rc));
    }
    else {
        rc = sqlite3_exec (self->handle, "COMMIT", NULL, NULL, NULL);
        if (rc == SQLITE_OK) {
            self->writes = VW_DB_WRITES_OK;
            self->write_error[0] = 0;
            return 0;
        }
        sys_errno = s_system_errno (self->handle);
        //  The COMMIT's own error, before a ROLLBACK replaces it (and
        //  after SQLITE_FULL there may be no transaction left to roll back).
        rc = sqlite3_extended_errcode (self->handle);
        snprintf (self->write_error, sizeof self->write_error, "%s", sqlite3_errmsg (self->handle));
    }
    self->writes = s_classify (rc, sys_errno);
    if (!sqlite3_get_autocommit (self->handle))
        sqlite3_exec (self->handle, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

vw_db_writes_t
vw_db_writes (vw_db_t *self)
{
    return self->writes;
}

const char *
vw_db_writes_name (vw_db_writes_t state)
{
    switch (state) {
        case VW_DB_WRITES_OK: return "ok";
        case VW_DB_DISK_FULL: return "disk_full";
        case VW_DB_READ_ONLY: return "read_only";
        default: return "error";
    }
}

const char *
vw_db_write_error (vw_db_t *self)
{
    return self->write_error;
}

//  Records the most recent error on the handle as the write verdict.
static void
s_record_write_error (vw_db_t *self)
{
    self->writes =
        s_classify (sqlite3_extended_errcode (self->handle), sqlite3_system_errno (self->handle));
    snprintf (self->write_error, sizeof self->write_error, "%s", sqlite3_errmsg (self->handle));
}

vw_db_writes_t
vw_db_retry_writes (vw_db_t *self)
{
    if (self->writes == VW_DB_WRITES_OK || self->in_tx)
        return self->writes;
    //  Rewriting the schema version dirties the header page: a real write
    //  that changes nothing.
    char sql[48];
    snprintf (sql, sizeof sql, "PRAGMA user_version = %d", self->schema_version);
    //  Another connection holding the write lock is no news about the
    //  disk: do not wait for it, and keep the verdict.
    sqlite3_busy_timeout (self->handle, 0);
    int begun = vw_db_begin (self);
    sqlite3_busy_timeout (self->handle, VW_DB_BUSY_TIMEOUT_MS);
    if (begun != 0) {
        if ((sqlite3_extended_errcode (self->handle) & 0xff) != SQLITE_BUSY)
            s_record_write_error (self);
    }
    else if (sqlite3_exec (self->handle, sql, NULL, NULL, NULL) != SQLITE_OK) {
        s_record_write_error (self);
        self->in_tx = false;
        if (!sqlite3_get_autocommit (self->handle))
            sqlite3_exec (self->handle, "ROLLBACK", NULL, NULL, NULL);
    }
    else
        vw_db_commit (self);
    return self->writes;
}

bool
vw_db_in_tx (vw_db_t *self)
{
    return self->in_tx;
}

void
vw_db_bind_text (sqlite3_stmt *stmt, int index, const char *text)
{
    if (text)
        sqlite3_bind_text (stmt, index, text, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null (stmt, index);
}

void
vw_db_get_object (vw_db_t *db, const char *sql, const char *key, vw_db_row_fn *fn, const char *what,
                  vw_result_t *result)
{
    sqlite3_stmt *stmt = vw_db_stmt (db, sql);
    int rc = SQLITE_ERROR;
    if (stmt) {
        vw_db_bind_text (stmt, 1, key);
        rc = sqlite3_step (stmt);
    }
    if (rc == SQLITE_ROW)
        vw_result_ok (result, 200, fn (stmt));
    else if (rc == SQLITE_DONE)
        vw_result_fail (result, 404, "not_found", "no %s '%.64s'", what, key ? key : "");
    else
        vw_result_fail (result, 500, "database_error", "database error: %s",
                        sqlite3_errmsg (db->handle));
    if (stmt)
        sqlite3_reset (stmt);
}

json_t *
vw_db_json_int (sqlite3_stmt *stmt, int col)
{
    return sqlite3_column_type (stmt, col) == SQLITE_NULL
               ? json_null ()
               : json_integer (sqlite3_column_int64 (stmt, col));
}

json_t *
vw_db_json_text (sqlite3_stmt *stmt, int col)
{
    const char *text = (const char *) sqlite3_column_text (stmt, col);
    return text ? json_string (text) : json_null ();
}
