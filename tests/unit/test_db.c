/*  test_db - vw_db: DATABASE_URL parsing, opening, schema, migrations.

    Every case gets its own fresh directory under /tmp (removed afterwards)
    and inspects the file with plain sqlite3 calls where the point is what
    is on disk, not what vw_db says about it.
*/
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vw_clock.h"
#include "vw_db.h"

typedef struct {
    char dir[64];
} fixture_t;

static int
s_remove_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove (path);
}

static int
s_setup (void **state)
{
    fixture_t *fx = calloc (1, sizeof (fixture_t));
    if (!fx)
        return -1;
    snprintf (fx->dir, sizeof (fx->dir), "/tmp/vw_test_db.XXXXXX");
    if (!mkdtemp (fx->dir)) {
        free (fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int
s_teardown (void **state)
{
    fixture_t *fx = *state;
    int rc = nftw (fx->dir, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free (fx);
    return rc;
}

//  fx->dir + "/" + rel into a static-sized buffer owned by the caller
static void
s_path (fixture_t *fx, const char *rel, char *buf, size_t len)
{
    int n = snprintf (buf, len, "%s/%s", fx->dir, rel);
    assert_true (n > 0 && (size_t) n < len);
}

//  One integer from a one-row query; fails the test on error
static int64_t
s_int (sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    assert_int_equal (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_step (stmt), SQLITE_ROW);
    int64_t value = sqlite3_column_int64 (stmt, 0);
    sqlite3_finalize (stmt);
    return value;
}

static void
s_text (sqlite3 *db, const char *sql, char *buf, size_t len)
{
    sqlite3_stmt *stmt = NULL;
    assert_int_equal (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_step (stmt), SQLITE_ROW);
    const unsigned char *text = sqlite3_column_text (stmt, 0);
    snprintf (buf, len, "%s", text ? (const char *) text : "(null)");
    sqlite3_finalize (stmt);
}

static void
s_exec_ok (sqlite3 *db, const char *sql)
{
    char *message = NULL;
    int rc = sqlite3_exec (db, sql, NULL, NULL, &message);
    if (rc != SQLITE_OK)
        print_error ("%s\n  -> %s\n", sql, message ? message : "?");
    sqlite3_free (message);
    assert_int_equal (rc, SQLITE_OK);
}

//  A plain sqlite3 connection, for preparing files and looking at them
static sqlite3 *
s_raw_open (const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                      SQLITE_OK);
    sqlite3_extended_result_codes (db, 1);
    return db;
}

static uint8_t *
s_read_file (const char *path, size_t *size)
{
    FILE *file = fopen (path, "rb");
    assert_non_null (file);
    assert_int_equal (fseek (file, 0, SEEK_END), 0);
    long len = ftell (file);
    assert_true (len >= 0);
    rewind (file);
    uint8_t *data = malloc ((size_t) len + 1);
    assert_non_null (data);
    assert_int_equal (fread (data, 1, (size_t) len, file), (size_t) len);
    fclose (file);
    *size = (size_t) len;
    return data;
}

static void
s_assert_file_unchanged (const char *path, const uint8_t *before, size_t before_size)
{
    size_t after_size = 0;
    uint8_t *after = s_read_file (path, &after_size);
    assert_int_equal (after_size, before_size);
    assert_memory_equal (after, before, before_size);
    free (after);
}

static vw_db_t *
s_open_ok (const char *path, bool full_sync)
{
    vw_db_status_t status = VW_DB_ERR_URL;
    char err[512] = "untouched";
    vw_db_t *db = vw_db_open (path, full_sync, &status, err, sizeof (err));
    if (!db)
        print_error ("vw_db_open (%s): %s\n", path, err);
    assert_non_null (db);
    assert_int_equal (status, VW_DB_OK);
    assert_string_equal (err, "");
    return db;
}

//  Opens expecting failure; returns the message for further checks
static void
s_open_fails (const char *path, vw_db_status_t expected, char *err, size_t errlen)
{
    vw_db_status_t status = VW_DB_OK;
    vw_db_t *db = vw_db_open (path, false, &status, err, errlen);
    assert_null (db);
    assert_int_equal (status, expected);
    assert_true (strlen (err) > 0);
}

static void
s_insert_agent (sqlite3 *db, const char *agent_id)
{
    char sql[256];
    snprintf (sql, sizeof (sql),
              "INSERT INTO agents (agent_id, token_hash, created_at) VALUES ('%s', x'00ff', 1)",
              agent_id);
    s_exec_ok (db, sql);
}

//  --------------------------------------------------------------------------

static void
test_path_from_url (void **state)
{
    struct {
        const char *url;
        const char *path;  //  NULL: refused
    } cases[] = {
        {"sqlite:///abs/x.db", "/abs/x.db"},
        {"sqlite://rel/x.db", "rel/x.db"},
        {"sqlite:x.db", "x.db"},
        {"sqlite:./data/x.db", "./data/x.db"},
        {"SQLite:///ABS/X.db", "/ABS/X.db"},
        {"sqlite:///var/lib/viworks/viworks.db?mode=rwc", "/var/lib/viworks/viworks.db"},
        {"sqlite:///a%20b/x.db", "/a b/x.db"},
        {"sqlite::memory:", ":memory:"},
        {"sqlite://:memory:", ":memory:"},
        {"file:x.db", "x.db"},
        {"file:///abs/x.db", "/abs/x.db"},
        {"file://localhost/abs/x.db", "/abs/x.db"},
        {"file:data/x.db#frag", "data/x.db"},
        {"./data/viworks.db", "./data/viworks.db"},
        {"/abs/x.db", "/abs/x.db"},
        {"data/x:y.db", "data/x:y.db"},
        {"x.db", "x.db"},
        {":memory:", ":memory:"},
        {"", NULL},
        {"postgres://user:pw@localhost/viworks", NULL},
        {"postgresql://localhost/viworks", NULL},
        {"mysql://localhost/viworks", NULL},
        {"http://example.com/x.db", NULL},
        {"sqlite:", NULL},
        {"sqlite://", NULL},
        {"sqlite:///", "/"},
        {"sqlite://?mode=rwc", NULL},
        {"sqlite:///a%2", NULL},
        {"sqlite:///a%zz.db", NULL},
        {"sqlite:///a%00.db", NULL},
    };
    for (size_t i = 0; i < sizeof (cases) / sizeof (cases[0]); i++) {
        char *path = vw_db_path_from_url (cases[i].url);
        if (cases[i].path) {
            if (!path || strcmp (path, cases[i].path) != 0)
                print_error ("url '%s': got '%s', want '%s'\n", cases[i].url,
                             path ? path : "(null)", cases[i].path);
            assert_non_null (path);
            assert_string_equal (path, cases[i].path);
        }
        else {
            if (path)
                print_error ("url '%s': got '%s', want NULL\n", cases[i].url, path);
            assert_null (path);
        }
        free (path);
    }
    assert_null (vw_db_path_from_url (NULL));
}

static void
test_open_creates_nested_directories (void **state)
{
    fixture_t *fx = *state;
    char path[256], dir[256];
    s_path (fx, "a/b/c/viworks.db", path, sizeof (path));
    s_path (fx, "a/b/c", dir, sizeof (dir));

    vw_db_t *db = s_open_ok (path, false);
    assert_string_equal (vw_db_path (db), path);
    assert_string_equal (vw_db_data_dir (db), dir);
    assert_int_equal (vw_db_migrations_applied (db), VW_DB_SCHEMA_VERSION);
    assert_int_equal (vw_db_schema_version (db), VW_DB_SCHEMA_VERSION);
    vw_db_close (&db);

    const char *levels[] = {"a", "a/b", "a/b/c"};
    for (size_t i = 0; i < 3; i++) {
        char level[256];
        struct stat st;
        s_path (fx, levels[i], level, sizeof (level));
        assert_int_equal (stat (level, &st), 0);
        assert_true (S_ISDIR (st.st_mode));
        assert_int_equal (st.st_mode & 0777, 0700);
    }
    struct stat st;
    assert_int_equal (stat (path, &st), 0);
    assert_true (S_ISREG (st.st_mode));
    assert_true (st.st_size > 0);
    assert_int_equal (st.st_mode & 0077, 0);  //  no access for group or others

    //  An existing directory is used as it is, its mode untouched
    char shared[256], inside[256];
    s_path (fx, "shared", shared, sizeof (shared));
    s_path (fx, "shared/viworks.db", inside, sizeof (inside));
    assert_int_equal (mkdir (shared, 0755), 0);
    assert_int_equal (chmod (shared, 0755), 0);
    db = s_open_ok (inside, false);
    vw_db_close (&db);
    assert_int_equal (stat (shared, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0755);

    //  A bare file name lives in the current directory
    char cwd[4096];
    assert_non_null (getcwd (cwd, sizeof (cwd)));
    assert_int_equal (chdir (fx->dir), 0);
    db = s_open_ok ("bare.db", false);
    assert_string_equal (vw_db_data_dir (db), ".");
    vw_db_close (&db);
    assert_int_equal (chdir (cwd), 0);
    s_path (fx, "bare.db", path, sizeof (path));
    assert_int_equal (access (path, F_OK), 0);
}

static void
test_connection_settings (void **state)
{
    fixture_t *fx = *state;
    char path[256];
    char mode[32];

    s_path (fx, "normal.db", path, sizeof (path));
    vw_db_t *db = s_open_ok (path, false);
    sqlite3 *handle = vw_db_handle (db);
    s_text (handle, "PRAGMA journal_mode", mode, sizeof (mode));
    assert_string_equal (mode, "wal");
    assert_int_equal (s_int (handle, "PRAGMA foreign_keys"), 1);
    assert_int_equal (s_int (handle, "PRAGMA synchronous"), 1);  //  NORMAL
    assert_int_equal (s_int (handle, "PRAGMA busy_timeout"),
                      1000);  //  under the callers' deadlines
    vw_db_close (&db);

    s_path (fx, "full.db", path, sizeof (path));
    db = s_open_ok (path, true);
    assert_int_equal (s_int (vw_db_handle (db), "PRAGMA synchronous"), 2);  //  FULL
    vw_db_close (&db);

    //  WAL is a property of the file: a plain connection sees it too
    sqlite3 *raw = s_raw_open (path);
    s_text (raw, "PRAGMA journal_mode", mode, sizeof (mode));
    assert_string_equal (mode, "wal");
    sqlite3_close (raw);
}

static void
test_schema_is_complete (void **state)
{
    fixture_t *fx = *state;
    char path[256];
    s_path (fx, "viworks.db", path, sizeof (path));
    vw_db_t *db = s_open_ok (path, false);
    sqlite3 *handle = vw_db_handle (db);

    const char *tables[] = {
        "agents",           "commands",       "telemetry_series", "telemetry_agents",
        "telemetry_frames", "telemetry_seqs", "telemetry_1m",     "telemetry_1h",
        "audit_logs",       "users"};
    for (size_t i = 0; i < sizeof (tables) / sizeof (tables[0]); i++) {
        char sql[256];
        snprintf (sql, sizeof (sql),
                  "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '%s'",
                  tables[i]);
        if (s_int (handle, sql) != 1)
            print_error ("missing table %s\n", tables[i]);
        assert_int_equal (s_int (handle, sql), 1);
        //  STRICT: a wrongly typed value is an error, not silently stored
        snprintf (sql, sizeof (sql), "SELECT strict FROM pragma_table_list WHERE name = '%s'",
                  tables[i]);
        assert_int_equal (s_int (handle, sql), 1);
    }
    struct {
        const char *name, *table;
    } indexes[] = {
        {"commands_idempotency_key", "commands"},
        {"commands_state_priority_seq", "commands"},
        {"commands_agent_state_seq", "commands"},
        {"commands_seq", "commands"},
        {"commands_unfinished_seq", "commands"},
        {"audit_logs_ts", "audit_logs"},
        {"audit_logs_action_ts", "audit_logs"},
        {"audit_logs_actor_ts", "audit_logs"},
        {"telemetry_frames_tid_ts", "telemetry_frames"},
    };
    for (size_t i = 0; i < sizeof (indexes) / sizeof (indexes[0]); i++) {
        char sql[256];
        snprintf (sql, sizeof (sql),
                  "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = '%s' "
                  "AND tbl_name = '%s'",
                  indexes[i].name, indexes[i].table);
        if (s_int (handle, sql) != 1)
            print_error ("missing index %s\n", indexes[i].name);
        assert_int_equal (s_int (handle, sql), 1);
    }
    //  The unique (agent_id, metric) of telemetry_series
    assert_int_equal (s_int (handle, "SELECT count(*) FROM pragma_index_list('telemetry_series') "
                                     "WHERE origin = 'u' AND \"unique\" = 1"),
                      1);
    //  The columns the code relies on (a sample per table)
    assert_int_equal (s_int (handle, "SELECT count(*) FROM pragma_table_info('agents') WHERE name "
                                     "IN ('telemetry_seq', 'connect_count', 'disconnect_count', "
                                     "'maintenance', 'revoked_at')"),
                      5);
    assert_int_equal (s_int (handle,
                             "SELECT count(*) FROM pragma_table_info('commands') WHERE name "
                             "IN ('seq', 'next_attempt_at', 'delivered_at', "
                             "'failure_reason', 'idempotency_key', 'created_by', 'failures')"),
                      7);
    //  The recovery scan's index holds the unfinished rows only
    assert_int_equal (s_int (handle, "SELECT partial FROM pragma_index_list('commands') "
                                     "WHERE name = 'commands_unfinished_seq'"),
                      1);
    //  key and aggs, and the two generated columns to read them by
    assert_int_equal (s_int (handle, "SELECT count(*) FROM pragma_table_xinfo('telemetry_1h')"), 4);

    assert_int_equal (s_int (handle, "PRAGMA user_version"), VW_DB_SCHEMA_VERSION);
    assert_int_equal (s_int (handle, "PRAGMA application_id"), VW_DB_APPLICATION_ID);
    char check[32];
    s_text (handle, "PRAGMA integrity_check", check, sizeof (check));
    assert_string_equal (check, "ok");
    vw_db_close (&db);
}

static void
test_reopen_is_a_noop (void **state)
{
    fixture_t *fx = *state;
    char path[256];
    s_path (fx, "viworks.db", path, sizeof (path));

    vw_db_t *db = s_open_ok (path, false);
    assert_int_equal (vw_db_migrations_applied (db), VW_DB_SCHEMA_VERSION);
    s_insert_agent (vw_db_handle (db), "gw-01");
    int64_t cookie = s_int (vw_db_handle (db), "PRAGMA schema_version");
    vw_db_close (&db);

    db = s_open_ok (path, false);
    sqlite3 *handle = vw_db_handle (db);
    assert_int_equal (vw_db_migrations_applied (db), 0);
    assert_int_equal (vw_db_schema_version (db), VW_DB_SCHEMA_VERSION);
    assert_int_equal (s_int (handle, "PRAGMA schema_version"), cookie);
    assert_int_equal (s_int (handle, "SELECT count(*) FROM agents WHERE agent_id = 'gw-01'"), 1);
    vw_db_close (&db);
}

static void
test_newer_schema_is_refused (void **state)
{
    fixture_t *fx = *state;
    char path[256];
    s_path (fx, "viworks.db", path, sizeof (path));
    vw_db_t *db = s_open_ok (path, false);
    s_insert_agent (vw_db_handle (db), "gw-01");
    vw_db_close (&db);

    //  Back in rollback-journal mode, so that switching to WAL too early
    //  would show in the header bytes
    sqlite3 *raw = s_raw_open (path);
    s_exec_ok (raw, "PRAGMA journal_mode = DELETE");
    char sql[64];
    snprintf (sql, sizeof (sql), "PRAGMA user_version = %d", VW_DB_SCHEMA_VERSION + 5);
    s_exec_ok (raw, sql);
    assert_int_equal (sqlite3_close (raw), SQLITE_OK);

    size_t size = 0;
    uint8_t *before = s_read_file (path, &size);
    char err[512] = "";
    s_open_fails (path, VW_DB_ERR_TOO_NEW, err, sizeof (err));
    char expected[512];
    snprintf (expected, sizeof (expected),
              "database %s has schema version %d, newer than this build's %d; "
              "refusing to open it (upgrade viworks-backend)",
              path, VW_DB_SCHEMA_VERSION + 5, VW_DB_SCHEMA_VERSION);
    assert_string_equal (err, expected);
    s_assert_file_unchanged (path, before, size);

    //  Still refused the second time, and the version is still the newer one
    s_open_fails (path, VW_DB_ERR_TOO_NEW, err, sizeof (err));
    s_assert_file_unchanged (path, before, size);
    raw = s_raw_open (path);
    assert_int_equal (s_int (raw, "PRAGMA user_version"), VW_DB_SCHEMA_VERSION + 5);
    assert_int_equal (s_int (raw, "SELECT count(*) FROM agents"), 1);
    sqlite3_close (raw);
    free (before);
}

static void
test_foreign_database_is_refused (void **state)
{
    fixture_t *fx = *state;
    char path[256], err[512] = "";
    s_path (fx, "other.db", path, sizeof (path));
    sqlite3 *raw = s_raw_open (path);
    s_exec_ok (raw, "PRAGMA application_id = 42; CREATE TABLE t (x);");
    sqlite3_close (raw);

    size_t size = 0;
    uint8_t *before = s_read_file (path, &size);
    s_open_fails (path, VW_DB_ERR_OPEN, err, sizeof (err));
    assert_non_null (strstr (err, path));
    assert_non_null (strstr (err, "another application"));
    s_assert_file_unchanged (path, before, size);
    free (before);

    //  Not a database at all: refused, left alone
    s_path (fx, "notes.txt", path, sizeof (path));
    FILE *file = fopen (path, "wb");
    assert_non_null (file);
    for (int i = 0; i < 64; i++)
        fputs ("these are not the pages you are looking for\n", file);
    fclose (file);
    before = s_read_file (path, &size);
    s_open_fails (path, VW_DB_ERR_OPEN, err, sizeof (err));
    assert_non_null (strstr (err, path));
    s_assert_file_unchanged (path, before, size);
    free (before);
}

static void
test_unusable_path_is_an_open_error (void **state)
{
    fixture_t *fx = *state;
    char blocker[256], path[256], err[512] = "";
    s_path (fx, "blocker", blocker, sizeof (blocker));
    FILE *file = fopen (blocker, "w");
    assert_non_null (file);
    fclose (file);

    //  The parent is a regular file
    s_path (fx, "blocker/viworks.db", path, sizeof (path));
    s_open_fails (path, VW_DB_ERR_OPEN, err, sizeof (err));
    assert_non_null (strstr (err, path));
    //  A missing directory would have to be created inside a regular file
    s_path (fx, "blocker/sub/viworks.db", path, sizeof (path));
    s_open_fails (path, VW_DB_ERR_OPEN, err, sizeof (err));
    assert_non_null (strstr (err, path));
    //  The path names a directory
    s_open_fails (fx->dir, VW_DB_ERR_OPEN, err, sizeof (err));
    //  No path
    s_open_fails ("", VW_DB_ERR_OPEN, err, sizeof (err));
    s_open_fails (NULL, VW_DB_ERR_OPEN, err, sizeof (err));

    //  status and err are optional
    assert_null (vw_db_open (path, false, NULL, NULL, 0));
}

static void
test_failed_migration_rolls_back (void **state)
{
    fixture_t *fx = *state;
    char path[256], err[512] = "";
    s_path (fx, "clash.db", path, sizeof (path));
    //  A version-0 file where migration 1 cannot create its "users" table
    sqlite3 *raw = s_raw_open (path);
    s_exec_ok (raw, "CREATE TABLE users (name TEXT)");
    sqlite3_close (raw);

    s_open_fails (path, VW_DB_ERR_MIGRATE, err, sizeof (err));
    assert_non_null (strstr (err, "migration 1"));
    assert_non_null (strstr (err, path));
    assert_non_null (strstr (err, "already exists"));

    raw = s_raw_open (path);
    assert_int_equal (s_int (raw, "PRAGMA user_version"), 0);
    assert_int_equal (s_int (raw, "PRAGMA application_id"), 0);
    assert_int_equal (s_int (raw, "SELECT count(*) FROM sqlite_master WHERE name = 'agents'"), 0);
    assert_int_equal (s_int (raw, "SELECT count(*) FROM sqlite_master"), 1);
    sqlite3_close (raw);
}

//  Each statement must fail with the given extended code and change nothing
static void
test_constraints_reject_bad_rows (void **state)
{
    fixture_t *fx = *state;
    char path[256];
    s_path (fx, "viworks.db", path, sizeof (path));
    vw_db_t *db = s_open_ok (path, false);
    sqlite3 *handle = vw_db_handle (db);

    //  Good rows first: the constraints must let these through
    s_exec_ok (
        handle,
        "INSERT INTO agents (agent_id, token_hash, public_key, status, labels, capabilities, "
        "created_at) VALUES ('gw-01', x'0102', zeroblob (32), 'online', '{\"site\":\"ams\"}', "
        "'[\"exec\"]', 1764230000000)");
    s_exec_ok (handle,
               "INSERT INTO commands (command_id, agent_id, type, payload, priority, state, "
               "timeout_ms, created_at, expires_at, seq) VALUES ('c1', 'gw-01', 'ping', "
               "'{}', 0, 'pending', 30000, 1, 2, 1)");
    s_exec_ok (handle, "UPDATE commands SET state = 'failed', failure_reason = 'timeout', "
                       "result = '{\"ok\":false}' WHERE command_id = 'c1'");
    s_exec_ok (handle, "INSERT INTO telemetry_series (agent_id, metric) VALUES ('gw-01', 'cpu')");
    s_exec_ok (handle, "INSERT INTO telemetry_agents (agent_id) VALUES ('gw-01')");
    s_exec_ok (handle, "INSERT INTO telemetry_frames (tid, seq, ts_min, ts_max, points) "
                       "VALUES (1, 42, 1764230000000, 1764230000000, x'01')");
    s_exec_ok (handle, "INSERT INTO telemetry_seqs VALUES (1, 40, 42)");
    s_exec_ok (handle, "INSERT INTO telemetry_1m (key, aggs) VALUES (1 << 32 | 29403833, x'0100')");
    s_exec_ok (handle, "INSERT INTO telemetry_1h (key, aggs) VALUES (1 << 32 | 490063, x'0100')");
    //  The key reads as the agent's tid and the bucket's start.
    assert_int_equal (s_int (handle, "SELECT tid FROM telemetry_1m"), 1);
    assert_true (s_int (handle, "SELECT bucket = 1764229980000 FROM telemetry_1m"));
    assert_true (s_int (handle, "SELECT bucket = 1764226800000 FROM telemetry_1h"));
    s_exec_ok (handle, "INSERT INTO users (username, password_hash, role, created_at) "
                       "VALUES ('admin', '$argon2id$…', 'admin', 1)");
    s_exec_ok (handle, "INSERT INTO audit_logs (ts, actor, action, outcome) "
                       "VALUES (1, 'admin', 'auth.login', 'success')");

    struct {
        const char *sql;
        int code;
    } bad[] = {
        //  enums
        {"INSERT INTO agents (agent_id, status, created_at) VALUES ('gw-02', 'asleep', 1)",
         SQLITE_CONSTRAINT_CHECK},
        {"UPDATE agents SET status = 'ONLINE'", SQLITE_CONSTRAINT_CHECK},
        {"UPDATE agents SET maintenance = 2", SQLITE_CONSTRAINT_CHECK},
        {"UPDATE commands SET state = 'running'", SQLITE_CONSTRAINT_CHECK},
        {"UPDATE commands SET priority = 3", SQLITE_CONSTRAINT_CHECK},
        {"UPDATE commands SET priority = -1", SQLITE_CONSTRAINT_CHECK},
        {"UPDATE commands SET failure_reason = 'bad_luck'", SQLITE_CONSTRAINT_CHECK},
        {"INSERT INTO users (username, password_hash, role, created_at) "
         "VALUES ('eve', 'h', 'root', 1)",
         SQLITE_CONSTRAINT_CHECK},
        //  JSON columns
        {"UPDATE agents SET labels = '[\"not\",\"an object\"]'", SQLITE_CONSTRAINT_CHECK},
        {"UPDATE agents SET labels = '{broken'", SQLITE_CONSTRAINT_CHECK},
        {"UPDATE agents SET reported_labels = '[]'", SQLITE_CONSTRAINT_CHECK},
        {"UPDATE agents SET reported_labels = NULL", SQLITE_CONSTRAINT_NOTNULL},
        {"UPDATE agents SET capabilities = '{}'", SQLITE_CONSTRAINT_CHECK},
        {"UPDATE commands SET payload = 'not json'", SQLITE_CONSTRAINT_CHECK},
        {"UPDATE commands SET result = '{'", SQLITE_CONSTRAINT_CHECK},
        //  ranges and shapes
        {"UPDATE agents SET public_key = x'0102'", SQLITE_CONSTRAINT_CHECK},
        {"UPDATE commands SET attempts = -1", SQLITE_CONSTRAINT_CHECK},
        {"UPDATE commands SET failures = -1", SQLITE_CONSTRAINT_CHECK},
        {"UPDATE commands SET failures = NULL", SQLITE_CONSTRAINT_NOTNULL},
        {"UPDATE commands SET timeout_ms = 0", SQLITE_CONSTRAINT_CHECK},
        {"INSERT INTO telemetry_series (agent_id, metric) VALUES ('gw-01', '')",
         SQLITE_CONSTRAINT_CHECK},
        {"INSERT INTO telemetry_1m (key, aggs) VALUES (0, x'0100')", SQLITE_CONSTRAINT_CHECK},
        {"UPDATE telemetry_1m SET aggs = x'01'", SQLITE_CONSTRAINT_CHECK},
        {"UPDATE telemetry_1h SET aggs = NULL", SQLITE_CONSTRAINT_NOTNULL},
        {"UPDATE telemetry_1h SET aggs = 'text'", SQLITE_CONSTRAINT_DATATYPE},
        //  missing and wrongly typed values (STRICT)
        {"INSERT INTO agents (agent_id, created_at) VALUES (NULL, 1)", SQLITE_CONSTRAINT_NOTNULL},
        {"INSERT INTO agents (agent_id) VALUES ('gw-03')", SQLITE_CONSTRAINT_NOTNULL},
        {"INSERT INTO users (username, password_hash, role, created_at) "
         "VALUES ('bob', 'h', 'viewer', 'yesterday')",
         SQLITE_CONSTRAINT_DATATYPE},
        {"UPDATE agents SET token_hash = 'hex text'", SQLITE_CONSTRAINT_DATATYPE},
        {"INSERT INTO telemetry_frames (tid, seq, ts_min, ts_max, points) VALUES (1, 43, 1, 1, "
         "NULL)",
         SQLITE_CONSTRAINT_NOTNULL},
        {"INSERT INTO telemetry_frames (tid, seq, ts_min, ts_max, points) "
         "VALUES (1, 43, 1, 1, 'text')",
         SQLITE_CONSTRAINT_DATATYPE},
        {"INSERT INTO telemetry_frames (tid, seq, ts_min, ts_max, points) VALUES (1, 43, 2, 1, "
         "x'01')",
         SQLITE_CONSTRAINT_CHECK},
        {"INSERT INTO telemetry_seqs VALUES (1, 50, 49)", SQLITE_CONSTRAINT_CHECK},
        //  references
        {"INSERT INTO commands (command_id, agent_id, type, priority, state, timeout_ms, "
         "created_at, expires_at, seq) VALUES ('c2', 'ghost', 'ping', 1, 'pending', 1000, 1, 2, 2)",
         SQLITE_CONSTRAINT_FOREIGNKEY},
        {"INSERT INTO telemetry_frames (tid, seq, ts_min, ts_max, points) VALUES (99, 1, 1, 1, "
         "x'01')",
         SQLITE_CONSTRAINT_FOREIGNKEY},
        {"INSERT INTO telemetry_agents (agent_id) VALUES ('ghost')", SQLITE_CONSTRAINT_FOREIGNKEY},
        {"DELETE FROM agents WHERE agent_id = 'gw-01'", SQLITE_CONSTRAINT_FOREIGNKEY},
        //  keys
        {"INSERT INTO telemetry_seqs VALUES (1, 40, 41)", SQLITE_CONSTRAINT_PRIMARYKEY},
        {"INSERT INTO telemetry_agents (agent_id) VALUES ('gw-01')", SQLITE_CONSTRAINT_UNIQUE},
        {"INSERT INTO telemetry_series (agent_id, metric) VALUES ('gw-01', 'cpu')",
         SQLITE_CONSTRAINT_UNIQUE},
    };
    for (size_t i = 0; i < sizeof (bad) / sizeof (bad[0]); i++) {
        int rc = sqlite3_exec (handle, bad[i].sql, NULL, NULL, NULL);
        if (rc != bad[i].code)
            print_error ("%s\n  -> %d (%s), want %d\n", bad[i].sql, rc, sqlite3_errmsg (handle),
                         bad[i].code);
        assert_int_equal (rc, bad[i].code);
    }
    //  Nothing of the above got in
    char text[64];
    s_text (handle, "SELECT status || ' ' || labels FROM agents", text, sizeof (text));
    assert_string_equal (text, "online {\"site\":\"ams\"}");
    assert_int_equal (s_int (handle, "SELECT count(*) FROM agents"), 1);
    assert_int_equal (s_int (handle, "SELECT count(*) FROM commands"), 1);
    assert_int_equal (s_int (handle, "SELECT count(*) FROM telemetry_frames"), 1);
    assert_int_equal (s_int (handle, "SELECT count(*) || lo || hi FROM telemetry_seqs"), 14042);
    assert_int_equal (s_int (handle, "SELECT count(*) FROM users"), 1);
    vw_db_close (&db);
}

static void
test_idempotency_key_is_unique (void **state)
{
    fixture_t *fx = *state;
    char path[256];
    s_path (fx, "viworks.db", path, sizeof (path));
    vw_db_t *db = s_open_ok (path, false);
    sqlite3 *handle = vw_db_handle (db);
    s_insert_agent (handle, "gw-01");

    const char *insert = "INSERT INTO commands (command_id, agent_id, type, priority, state, "
                         "timeout_ms, created_at, expires_at, idempotency_key, seq) "
                         "VALUES (?1, 'gw-01', 'ping', 1, 'pending', 30000, 1, 2, ?2, ?3)";
    struct {
        const char *command_id, *key;
        int seq, code;
    } rows[] = {
        {"c1", "deploy-42", 1, SQLITE_DONE},
        {"c2", "deploy-43", 2, SQLITE_DONE},
        {"c3", "deploy-42", 3, SQLITE_CONSTRAINT_UNIQUE},  //  same key again
        {"c4", NULL, 4, SQLITE_DONE},                      //  no key: never a clash
        {"c5", NULL, 5, SQLITE_DONE},
        {"c6", "deploy-44", 5, SQLITE_CONSTRAINT_UNIQUE},  //  seq is unique too
        {"c1", "deploy-45", 6, SQLITE_CONSTRAINT_PRIMARYKEY},
    };
    sqlite3_stmt *stmt = NULL;
    assert_int_equal (sqlite3_prepare_v2 (handle, insert, -1, &stmt, NULL), SQLITE_OK);
    for (size_t i = 0; i < sizeof (rows) / sizeof (rows[0]); i++) {
        sqlite3_bind_text (stmt, 1, rows[i].command_id, -1, SQLITE_STATIC);
        if (rows[i].key)
            sqlite3_bind_text (stmt, 2, rows[i].key, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null (stmt, 2);
        sqlite3_bind_int (stmt, 3, rows[i].seq);
        int rc = sqlite3_step (stmt);
        sqlite3_reset (stmt);
        if (rc != rows[i].code)
            print_error ("row %zu: %d (%s)\n", i, rc, sqlite3_errmsg (handle));
        assert_int_equal (rc, rows[i].code);
    }
    sqlite3_finalize (stmt);
    assert_int_equal (s_int (handle, "SELECT count(*) FROM commands"), 4);
    //  The lookup the scheduler does on a repeated submit uses the index
    char plan[512] = "";
    assert_int_equal (sqlite3_prepare_v2 (handle,
                                          "EXPLAIN QUERY PLAN SELECT command_id FROM commands "
                                          "WHERE idempotency_key = 'deploy-42'",
                                          -1, &stmt, NULL),
                      SQLITE_OK);
    while (sqlite3_step (stmt) == SQLITE_ROW) {
        const unsigned char *detail = sqlite3_column_text (stmt, 3);
        strncat (plan, detail ? (const char *) detail : "", sizeof (plan) - strlen (plan) - 1);
    }
    sqlite3_finalize (stmt);
    assert_non_null (strstr (plan, "commands_idempotency_key"));
    vw_db_close (&db);
}

//  The recovery scan (store/vw_command_rows.c) names the partial index: it
//  must serve "unfinished, after seq, in seq order" as a range, no sort.
static void
test_recovery_scan_uses_its_index (void **state)
{
    fixture_t *fx = *state;
    char path[256];
    s_path (fx, "viworks.db", path, sizeof (path));
    vw_db_t *db = s_open_ok (path, false);
    sqlite3 *handle = vw_db_handle (db);
    s_insert_agent (handle, "gw-01");
    s_exec_ok (handle, "INSERT INTO commands (command_id, agent_id, type, priority, state, "
                       "timeout_ms, created_at, expires_at, seq) VALUES "
                       "('c1', 'gw-01', 'ping', 1, 'completed', 1000, 1, 2, 1), "
                       "('c2', 'gw-01', 'ping', 2, 'pending', 1000, 1, 2, 2), "
                       "('c3', 'gw-01', 'ping', 0, 'executing', 1000, 1, 2, 3), "
                       "('c4', 'gw-01', 'ping', 1, 'failed', 1000, 1, 2, 4), "
                       "('c5', 'gw-01', 'ping', 0, 'pending', 1000, 1, 2, 5)");
    const char *scan = "SELECT command_id FROM commands INDEXED BY commands_unfinished_seq "
                       "WHERE state IN ('pending', 'executing') AND seq > ?1 ORDER BY seq LIMIT ?2";
    char sql[512], plan[512] = "";
    snprintf (sql, sizeof (sql), "EXPLAIN QUERY PLAN %s", scan);
    sqlite3_stmt *stmt = NULL;
    assert_int_equal (sqlite3_prepare_v2 (handle, sql, -1, &stmt, NULL), SQLITE_OK);
    while (sqlite3_step (stmt) == SQLITE_ROW) {
        const unsigned char *detail = sqlite3_column_text (stmt, 3);
        strncat (plan, detail ? (const char *) detail : "", sizeof (plan) - strlen (plan) - 1);
    }
    sqlite3_finalize (stmt);
    assert_non_null (strstr (plan, "commands_unfinished_seq (seq>?)"));
    assert_null (strstr (plan, "TEMP B-TREE"));
    //  ... and finds exactly the unfinished rows, in order
    assert_int_equal (sqlite3_prepare_v2 (handle, scan, -1, &stmt, NULL), SQLITE_OK);
    sqlite3_bind_int (stmt, 1, 2);
    sqlite3_bind_int (stmt, 2, 10);
    char found[32] = "";
    while (sqlite3_step (stmt) == SQLITE_ROW)
        strncat (found, (const char *) sqlite3_column_text (stmt, 0),
                 sizeof (found) - strlen (found) - 1);
    sqlite3_finalize (stmt);
    assert_string_equal (found, "c3c5");
    vw_db_close (&db);
}

//  A version-1 file is migrated in place: failures appears, filled with the
//  estimate recovery used before it was stored, and the index is built.
//  Takes a file back over migrations 8 to 5, for the tests that upgrade a
//  file an older build left (each new migration adds its undo here, once).
#define S_UNDO_8_TO_5                                                                              \
    "ALTER TABLE agents DROP COLUMN previous_token_hash; " /*  migration 8  */                     \
    "ALTER TABLE agents DROP COLUMN previous_token_until; "                                        \
    "ALTER TABLE commands DROP COLUMN progress; " /*  migration 7  */                              \
    "ALTER TABLE commands DROP COLUMN progress_message; "                                          \
    "DROP TABLE telemetry_1m; DROP TABLE telemetry_1h; " /*  migration 6  */                       \
    "CREATE TABLE telemetry_1m (series_id INTEGER, bucket INTEGER, min REAL, max REAL, "           \
    "sum REAL, count INTEGER, last REAL, last_ts INTEGER, PRIMARY KEY (series_id, "                \
    "bucket)) STRICT, WITHOUT ROWID; CREATE TABLE telemetry_1h (series_id INTEGER, "               \
    "bucket INTEGER) STRICT; "                                                                     \
    "DROP TABLE telemetry_seqs; DROP TABLE telemetry_frames; " /*  migration 5  */                 \
    "DROP TABLE telemetry_agents; CREATE TABLE telemetry (series_id INTEGER, ts INTEGER, "         \
    "value REAL, PRIMARY KEY (series_id, ts)) STRICT, WITHOUT ROWID; "

static void
test_migration_2_upgrades_a_version_1_file (void **state)
{
    fixture_t *fx = *state;
    char path[256];
    s_path (fx, "viworks.db", path, sizeof (path));
    vw_db_t *db = s_open_ok (path, false);
    vw_db_close (&db);
    //  Back to what migration 1 left (SQLite can drop a column since 3.35)
    sqlite3 *raw = s_raw_open (path);
    s_exec_ok (raw, S_UNDO_8_TO_5 "DROP TABLE token_denylist; "  //  migration 4
                                  "ALTER TABLE users DROP COLUMN token_gen; "
                                  "DROP INDEX commands_unfinished_seq; "
                                  "ALTER TABLE commands DROP COLUMN failures; "
                                  "ALTER TABLE agents DROP COLUMN reported_labels; "
                                  "PRAGMA user_version = 1;");
    s_insert_agent (raw, "gw-01");
    s_exec_ok (raw, "INSERT INTO commands (command_id, agent_id, type, priority, state, attempts, "
                    "timeout_ms, created_at, expires_at, failure_reason, seq) VALUES "
                    "('new', 'gw-01', 'ping', 1, 'pending', 0, 1000, 1, 2, NULL, 1), "
                    "('retry', 'gw-01', 'ping', 1, 'pending', 3, 1000, 1, 2, 'timeout', 2), "
                    "('flying', 'gw-01', 'ping', 1, 'executing', 2, 1000, 1, 2, NULL, 3), "
                    "('done', 'gw-01', 'ping', 1, 'completed', 1, 1000, 1, 2, NULL, 4), "
                    "('done2', 'gw-01', 'ping', 1, 'completed', 2, 1000, 1, 2, NULL, 5), "
                    "('broke', 'gw-01', 'ping', 1, 'failed', 4, 1000, 1, 2, 'agent_error', 6), "
                    "('once', 'gw-01', 'ping', 1, 'failed', 1, 1000, 1, 2, 'timeout', 7), "
                    "('late', 'gw-01', 'ping', 1, 'failed', 2, 1000, 1, 2, 'expired', 8)");
    sqlite3_close (raw);

    db = s_open_ok (path, false);
    sqlite3 *handle = vw_db_handle (db);
    assert_int_equal (vw_db_migrations_applied (db), VW_DB_SCHEMA_VERSION - 1);
    assert_int_equal (vw_db_schema_version (db), VW_DB_SCHEMA_VERSION);
    struct {
        const char *id;
        int failures;
    } want[] = {{"new", 0},   {"retry", 2}, {"flying", 1}, {"done", 0},
                {"done2", 1}, {"broke", 4}, {"once", 1},   {"late", 1}};
    for (size_t i = 0; i < sizeof (want) / sizeof (want[0]); i++) {
        char sql[128];
        snprintf (sql, sizeof (sql), "SELECT failures FROM commands WHERE command_id = '%s'",
                  want[i].id);
        if (s_int (handle, sql) != want[i].failures)
            print_error ("%s: failures %lld, want %d\n", want[i].id,
                         (long long) s_int (handle, sql), want[i].failures);
        assert_int_equal (s_int (handle, sql), want[i].failures);
    }
    assert_int_equal (s_int (handle, "SELECT count(*) FROM sqlite_master WHERE type = 'index' "
                                     "AND name = 'commands_unfinished_seq'"),
                      1);
    char check[32];
    s_text (handle, "PRAGMA integrity_check", check, sizeof (check));
    assert_string_equal (check, "ok");
    vw_db_close (&db);
}

//  A version-2 file gets reported_labels, empty; the operator's labels
//  (which then held the hellos' too) stay as they were.
static void
test_migration_3_upgrades_a_version_2_file (void **state)
{
    fixture_t *fx = *state;
    char path[256];
    s_path (fx, "viworks.db", path, sizeof (path));
    vw_db_t *db = s_open_ok (path, false);
    vw_db_close (&db);
    sqlite3 *raw = s_raw_open (path);
    s_exec_ok (raw, S_UNDO_8_TO_5
               "DROP TABLE token_denylist; ALTER TABLE users DROP COLUMN token_gen; "
               "ALTER TABLE agents DROP COLUMN reported_labels; PRAGMA user_version = 2;");
    s_exec_ok (raw, "INSERT INTO agents (agent_id, token_hash, labels, created_at) VALUES "
                    "('gw-01', x'00ff', '{\"site\":\"ams\"}', 1)");
    sqlite3_close (raw);

    db = s_open_ok (path, false);
    sqlite3 *handle = vw_db_handle (db);
    assert_int_equal (vw_db_migrations_applied (db), 6);  //  3 to 8
    assert_int_equal (vw_db_schema_version (db), VW_DB_SCHEMA_VERSION);
    char text[64];
    s_text (handle, "SELECT labels || ' ' || reported_labels FROM agents", text, sizeof (text));
    assert_string_equal (text, "{\"site\":\"ams\"} {}");
    //  The roll-ups have their row-per-agent shape (migration 6).
    assert_int_equal (s_int (handle, "SELECT count(*) FROM pragma_table_xinfo('telemetry_1m')"), 4);
    //  The new column's CHECK holds for rows written from now on.
    assert_int_equal (
        sqlite3_exec (handle, "UPDATE agents SET reported_labels = '[1]'", NULL, NULL, NULL),
        SQLITE_CONSTRAINT_CHECK);
    vw_db_close (&db);
}

static void
test_ping_and_close_twice (void **state)
{
    fixture_t *fx = *state;
    char path[256];
    s_path (fx, "viworks.db", path, sizeof (path));
    vw_db_t *db = s_open_ok (path, false);
    for (int i = 0; i < 3; i++)
        assert_int_equal (vw_db_ping (db), 0);
    //  Ping takes no lock it keeps: a writer on another connection proceeds
    sqlite3 *raw = s_raw_open (path);
    s_exec_ok (raw, "INSERT INTO users (username, password_hash, role, created_at) "
                    "VALUES ('u', 'h', 'viewer', 1)");
    sqlite3_close (raw);
    assert_int_equal (vw_db_ping (db), 0);

    vw_db_close (&db);
    assert_null (db);
    vw_db_close (&db);
    assert_null (db);
}

//  With checkpoints in the background the writer's commits leave the WAL
//  to the thread: past 1,000 pages one runs (and the writer runs none), the
//  WAL starts again from its beginning, and what was written reads back.
static void
test_checkpoints_in_the_background (void **state)
{
    fixture_t *fx = *state;
    char path[256];
    s_path (fx, "viworks.db", path, sizeof (path));
    vw_db_t *db = s_open_ok (path, false);
    sqlite3 *handle = vw_db_handle (db);
    assert_int_equal (vw_db_checkpoint_in_background (db), 0);
    s_exec_ok (handle, "CREATE TABLE t (x BLOB)");
    //  About 2,000 pages of 4 KiB, in commits of 40 pages.
    for (int i = 0; i < 50; i++) {
        assert_int_equal (vw_db_begin (db), 0);
        s_exec_ok (handle, "WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                           "WHERE i < 40) INSERT INTO t SELECT randomblob (4000) FROM n");
        assert_int_equal (vw_db_commit (db), 0);
    }
    //  The thread's work shows in its counter (polled: it has no event).
    int64_t deadline = vw_clock_mono_ms () + 10000;
    while (vw_db_checkpoints (db, NULL) == 0 && vw_clock_mono_ms () < deadline)
        usleep (10000);
    uint64_t inline_runs = 1;
    assert_true (vw_db_checkpoints (db, &inline_runs) >= 1);
    assert_int_equal (inline_runs, 0);
    //  Once every frame is in the database, the next commit restarts the
    //  WAL: it then holds only that commit's pages.
    int log = -1, done = -1;
    assert_int_equal (
        sqlite3_wal_checkpoint_v2 (handle, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done),
        SQLITE_OK);
    assert_int_equal (log, done);
    assert_int_equal (vw_db_begin (db), 0);
    s_exec_ok (handle, "INSERT INTO t VALUES (x'00')");
    assert_int_equal (vw_db_commit (db), 0);
    assert_int_equal (
        sqlite3_wal_checkpoint_v2 (handle, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done),
        SQLITE_OK);
    assert_true (log < 20);
    assert_int_equal (s_int (handle, "SELECT count(*) FROM t"), 2001);
    vw_db_close (&db);
    //  Closed: the thread is gone with it (ASan/LSan see what it left).
    db = s_open_ok (path, false);
    assert_int_equal (s_int (vw_db_handle (db), "SELECT count(*) FROM t"), 2001);
    vw_db_close (&db);
}

static void
test_memory_database (void **state)
{
    vw_db_t *db = s_open_ok (":memory:", false);
    char mode[32];
    s_text (vw_db_handle (db), "PRAGMA journal_mode", mode, sizeof (mode));
    assert_string_equal (mode, "memory");
    assert_string_equal (vw_db_data_dir (db), ".");
    assert_int_equal (vw_db_schema_version (db), VW_DB_SCHEMA_VERSION);
    assert_int_equal (s_int (vw_db_handle (db), "PRAGMA foreign_keys"), 1);
    assert_int_equal (vw_db_ping (db), 0);
    vw_db_close (&db);
    assert_null (db);
}

//  --------------------------------------------------------------------------
//  Failing writes. A VFS over the default one whose xWrite fails with
//  s_fault_rc (and whose last OS error is s_fault_errno) while s_fault_rc
//  is set: SQLite sees a full or read-only disk at the real place, the WAL
//  write of a COMMIT. It is registered as the default VFS for these cases.

static sqlite3_vfs *s_real_vfs;
static sqlite3_vfs s_fault_vfs;
static int s_fault_rc;
static int s_fault_errno;

typedef struct {
    sqlite3_file base;
    sqlite3_file *real;  //  follows this struct in the same allocation
} s_fault_file_t;

#define S_REAL(f) (((s_fault_file_t *) (f))->real)

static int
s_f_close (sqlite3_file *f)
{
    int rc = S_REAL (f)->pMethods ? S_REAL (f)->pMethods->xClose (S_REAL (f)) : SQLITE_OK;
    return rc;
}
static int
s_f_read (sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    return S_REAL (f)->pMethods->xRead (S_REAL (f), buf, n, off);
}
static int
s_f_write (sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    if (s_fault_rc)
        return s_fault_rc;
    return S_REAL (f)->pMethods->xWrite (S_REAL (f), buf, n, off);
}
static int
s_f_truncate (sqlite3_file *f, sqlite3_int64 size)
{
    return S_REAL (f)->pMethods->xTruncate (S_REAL (f), size);
}
static int
s_f_sync (sqlite3_file *f, int flags)
{
    return S_REAL (f)->pMethods->xSync (S_REAL (f), flags);
}
static int
s_f_size (sqlite3_file *f, sqlite3_int64 *size)
{
    return S_REAL (f)->pMethods->xFileSize (S_REAL (f), size);
}
static int
s_f_lock (sqlite3_file *f, int level)
{
    return S_REAL (f)->pMethods->xLock (S_REAL (f), level);
}
static int
s_f_unlock (sqlite3_file *f, int level)
{
    return S_REAL (f)->pMethods->xUnlock (S_REAL (f), level);
}
static int
s_f_reserved (sqlite3_file *f, int *out)
{
    return S_REAL (f)->pMethods->xCheckReservedLock (S_REAL (f), out);
}
static int
s_f_control (sqlite3_file *f, int op, void *arg)
{
    return S_REAL (f)->pMethods->xFileControl (S_REAL (f), op, arg);
}
static int
s_f_sector (sqlite3_file *f)
{
    return S_REAL (f)->pMethods->xSectorSize (S_REAL (f));
}
static int
s_f_device (sqlite3_file *f)
{
    return S_REAL (f)->pMethods->xDeviceCharacteristics (S_REAL (f));
}
static int
s_f_shm_map (sqlite3_file *f, int page, int size, int extend, void volatile **out)
{
    return S_REAL (f)->pMethods->xShmMap (S_REAL (f), page, size, extend, out);
}
static int
s_f_shm_lock (sqlite3_file *f, int offset, int n, int flags)
{
    return S_REAL (f)->pMethods->xShmLock (S_REAL (f), offset, n, flags);
}
static void
s_f_shm_barrier (sqlite3_file *f)
{
    S_REAL (f)->pMethods->xShmBarrier (S_REAL (f));
}
static int
s_f_shm_unmap (sqlite3_file *f, int del)
{
    return S_REAL (f)->pMethods->xShmUnmap (S_REAL (f), del);
}

static const sqlite3_io_methods s_fault_io = {
    2,          s_f_close,   s_f_read,     s_f_write,       s_f_truncate,  s_f_sync,
    s_f_size,   s_f_lock,    s_f_unlock,   s_f_reserved,    s_f_control,   s_f_sector,
    s_f_device, s_f_shm_map, s_f_shm_lock, s_f_shm_barrier, s_f_shm_unmap, NULL,
    NULL};

static int
s_fault_open (sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out_flags)
{
    s_fault_file_t *f = (s_fault_file_t *) file;
    f->real = (sqlite3_file *) (f + 1);
    memset (f->real, 0, (size_t) s_real_vfs->szOsFile);
    int rc = s_real_vfs->xOpen (s_real_vfs, name, f->real, flags, out_flags);
    f->base.pMethods = rc == SQLITE_OK ? &s_fault_io : NULL;
    return rc;
}

static int
s_fault_last_error (sqlite3_vfs *vfs, int n, char *buf)
{
    return s_fault_rc ? s_fault_errno : s_real_vfs->xGetLastError (s_real_vfs, n, buf);
}

static void
s_fault_vfs_install (void)
{
    sqlite3_vfs_unregister (&s_fault_vfs);  //  left by a failed case
    s_real_vfs = sqlite3_vfs_find ("unix");
    assert_non_null (s_real_vfs);
    s_fault_vfs = *s_real_vfs;
    s_fault_vfs.iVersion = s_real_vfs->iVersion;
    s_fault_vfs.szOsFile = (int) sizeof (s_fault_file_t) + s_real_vfs->szOsFile;
    s_fault_vfs.zName = "vw-fault";
    s_fault_vfs.pNext = NULL;
    s_fault_vfs.xOpen = s_fault_open;
    s_fault_vfs.xGetLastError = s_fault_last_error;
    assert_int_equal (sqlite3_vfs_register (&s_fault_vfs, 1), SQLITE_OK);
    s_fault_rc = 0;
}

static void
s_fault_vfs_remove (void)
{
    sqlite3_vfs_unregister (&s_fault_vfs);
    s_fault_rc = 0;
}

static int
s_insert_user (vw_db_t *db, const char *name)
{
    char sql[200];
    snprintf (sql, sizeof sql,
              "INSERT INTO users (username, password_hash, role, created_at) "
              "VALUES ('%s', 'h', 'viewer', 1)",
              name);
    if (vw_db_begin (db))
        return -1;
    return sqlite3_exec (vw_db_handle (db), sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

//  Runs a commit that fails with rc/errno and checks the verdict, that the
//  error is the COMMIT's own, and that nothing landed; then lets writes
//  through again and checks the verdict clears (by the retry, with no
//  traffic) and a write lands.
static void
s_check_failed_commit (fixture_t *fx, int rc, int sys_errno, vw_db_writes_t expected,
                       const char *name)
{
    char path[256];
    s_path (fx, "viworks.db", path, sizeof (path));
    s_fault_vfs_install ();
    vw_db_t *db = s_open_ok (path, false);
    assert_int_equal (vw_db_writes (db), VW_DB_WRITES_OK);
    assert_string_equal (vw_db_write_error (db), "");

    assert_int_equal (s_insert_user (db, "lost"), 0);
    s_fault_rc = rc;
    s_fault_errno = sys_errno;
    assert_int_equal (vw_db_commit (db), -1);
    assert_false (vw_db_in_tx (db));
    assert_int_equal (vw_db_writes (db), expected);
    assert_string_equal (vw_db_writes_name (vw_db_writes (db)), name);
    //  The COMMIT's error, not the ROLLBACK's "no transaction is active"
    assert_null (strstr (vw_db_write_error (db), "no transaction"));
    assert_string_not_equal (vw_db_write_error (db), "");
    if (rc == SQLITE_FULL)
        assert_non_null (strstr (vw_db_write_error (db), "full"));
    //  Still failing: the retry says so and changes nothing
    assert_int_equal (vw_db_retry_writes (db), expected);
    //  Space is back but another connection holds the write lock: the
    //  retry neither waits for it nor changes the verdict
    s_fault_rc = 0;
    sqlite3 *other = s_raw_open (path);
    s_exec_ok (other, "BEGIN IMMEDIATE");
    assert_int_equal (vw_db_retry_writes (db), expected);
    s_exec_ok (other, "ROLLBACK");
    sqlite3_close (other);
    //  Space is back: the retry notices without any other write
    assert_int_equal (vw_db_retry_writes (db), VW_DB_WRITES_OK);
    assert_string_equal (vw_db_write_error (db), "");
    assert_int_equal (s_insert_user (db, "kept"), 0);
    assert_int_equal (vw_db_commit (db), 0);
    assert_int_equal (
        s_int (vw_db_handle (db), "SELECT count(*) FROM users WHERE username = 'lost'"), 0);
    assert_int_equal (
        s_int (vw_db_handle (db), "SELECT count(*) FROM users WHERE username = 'kept'"), 1);
    assert_int_equal (vw_db_ping (db), 0);
    vw_db_close (&db);
    s_fault_vfs_remove ();
}

static void
test_commit_on_a_full_disk (void **state)
{
    s_check_failed_commit (*state, SQLITE_FULL, ENOSPC, VW_DB_DISK_FULL, "disk_full");
}

static void
test_commit_on_a_full_disk_as_io_error (void **state)
{
    s_check_failed_commit (*state, SQLITE_IOERR_WRITE, ENOSPC, VW_DB_DISK_FULL, "disk_full");
}

static void
test_commit_on_a_read_only_disk (void **state)
{
    s_check_failed_commit (*state, SQLITE_IOERR_WRITE, EROFS, VW_DB_READ_ONLY, "read_only");
}

static void
test_commit_on_another_io_error (void **state)
{
    s_check_failed_commit (*state, SQLITE_IOERR_WRITE, EIO, VW_DB_WRITE_ERROR, "error");
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_path_from_url),
        cmocka_unit_test_setup_teardown (test_open_creates_nested_directories, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_connection_settings, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_schema_is_complete, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_reopen_is_a_noop, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_newer_schema_is_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_foreign_database_is_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_unusable_path_is_an_open_error, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_failed_migration_rolls_back, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_constraints_reject_bad_rows, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_idempotency_key_is_unique, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_recovery_scan_uses_its_index, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_migration_3_upgrades_a_version_2_file, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_migration_2_upgrades_a_version_1_file, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_ping_and_close_twice, s_setup, s_teardown),
        cmocka_unit_test (test_memory_database),
        cmocka_unit_test_setup_teardown (test_checkpoints_in_the_background, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_commit_on_a_full_disk, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_commit_on_a_full_disk_as_io_error, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_commit_on_a_read_only_disk, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_commit_on_another_io_error, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name ("vw_db", tests, NULL, NULL);
}
