/*  vw_db - the SQLite database: location, schema, migrations.

    Only the store actor opens the database for writing; it owns the vw_db_t
    and everything hanging off it. Opening runs the versioned migrations
    (PRAGMA user_version) inside a transaction; re-opening an up-to-date
    database changes nothing; a database written by a newer schema version
    is refused (VW_DB_ERR_TOO_NEW) rather than touched.
*/
#ifndef VW_DB_H
#define VW_DB_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

//  The schema version this build writes.
#define VW_DB_SCHEMA_VERSION 8

//  PRAGMA application_id of a ViWorkS database ("VIWK"), written by
//  migration 1. A file carrying another non-zero id belongs to some other
//  program and is refused (VW_DB_ERR_OPEN).
#define VW_DB_APPLICATION_ID 0x5649574B

typedef struct vw_db_t vw_db_t;

typedef enum {
    VW_DB_OK = 0,
    VW_DB_ERR_URL = 1,      //  DATABASE_URL cannot be understood
    VW_DB_ERR_OPEN = 2,     //  directory or file cannot be created/opened
    VW_DB_ERR_MIGRATE = 3,  //  a migration failed (the transaction was rolled back)
    VW_DB_ERR_TOO_NEW = 4,  //  the file's schema version is newer than this build
} vw_db_status_t;

//  Turns DATABASE_URL into a file path. Accepts "sqlite:///abs/path.db",
//  "sqlite://relative/path.db", "sqlite:relative.db", "file:path.db",
//  "file:///abs/path.db", "file://localhost/abs/path.db" and a plain path;
//  schemes are case-insensitive. ":memory:" is accepted as is (also as
//  "sqlite::memory:"). For the URL forms a "?query" or "#fragment" is
//  dropped and %XX escapes are decoded. Anything starting "word:" (two or
//  more letters) counts as a URL, so a relative file literally named
//  "ab:c.db" must be written "./ab:c.db". Returns a new string (caller
//  frees) or NULL if the URL has another scheme (e.g. "postgres://…"), is
//  empty, or has an empty path or a malformed escape.
char *vw_db_path_from_url (const char *url);

//  Opens (creating missing parent directories with mode 0700 and a missing
//  file with mode 0600), sets WAL mode, foreign_keys=ON, busy_timeout 5 s,
//  synchronous (full = true → FULL, else NORMAL), and migrates to
//  VW_DB_SCHEMA_VERSION. The header (application_id, user_version) is
//  checked before anything is written, so a refused file stays untouched.
//  On failure returns NULL, sets *status and writes a human sentence into
//  err (naming the path and, for TOO_NEW, both versions); on success err
//  is "". status and err may be NULL. VW_DB_ERR_URL is never returned here:
//  it is for callers whose vw_db_path_from_url gave NULL.
vw_db_t *vw_db_open (const char *path, bool full_sync, vw_db_status_t *status, char *err,
                     size_t errlen);

void vw_db_close (vw_db_t **self_p);

//  The raw handle, for the store actor's prepared statements.
sqlite3 *vw_db_handle (vw_db_t *self);

//  The schema version found in the file after opening (== VW_DB_SCHEMA_VERSION).
int vw_db_schema_version (vw_db_t *self);

//  Cheap liveness check: a statement prepared at open that reads the file
//  header (PRAGMA user_version), so a broken file or lock shows up, unlike
//  a bare "SELECT 1". Returns 0 ok, -1 broken.
int vw_db_ping (vw_db_t *self);

//  How many migrations this open applied (0 when the file was up to date);
//  for the startup log line and for tests.
int vw_db_migrations_applied (vw_db_t *self);

//  The path the database was opened with; borrowed, valid while open.
const char *vw_db_path (vw_db_t *self);

//  The directory that holds the database file (for the JWT secret file and
//  other state kept "in the data directory"); borrowed, valid while open.
const char *vw_db_data_dir (vw_db_t *self);

//  A cached prepared statement for `sql`, which must be a string literal
//  (the cache is keyed by its address). Returned reset with no bindings;
//  owned by the database. NULL if the SQL does not prepare.
sqlite3_stmt *vw_db_stmt (vw_db_t *self, const char *sql);

//  Binds text, or NULL when text is NULL (a copy is made).
void vw_db_bind_text (sqlite3_stmt *stmt, int index, const char *text);

//  Group commit: vw_db_begin opens a write transaction unless one is open;
//  vw_db_commit commits it (0) or rolls it back (-1). The store actor
//  begins on the first write of a loop pass and commits in its flush hook.
//  vw_db_begin fails (-1) when BEGIN does (busy past the busy timeout, I/O
//  error) and, inside an open transaction, once SQLite has rolled it back
//  after a failed statement: nothing more joins a transaction that is gone.
int vw_db_begin (vw_db_t *self);
int vw_db_commit (vw_db_t *self);
bool vw_db_in_tx (vw_db_t *self);

//  Whether the last commit landed, and if not, why: what /health shows as
//  "database" and the store logs. A failed commit sets it, the next
//  successful one clears it.
typedef enum {
    VW_DB_WRITES_OK = 0,
    VW_DB_DISK_FULL,   //  SQLITE_FULL, or ENOSPC/EDQUOT under an I/O error
    VW_DB_READ_ONLY,   //  SQLITE_READONLY*, or EROFS/EACCES/EPERM under an I/O error
    VW_DB_WRITE_ERROR  //  anything else
} vw_db_writes_t;
vw_db_writes_t vw_db_writes (vw_db_t *self);
//  "ok", "disk_full", "read_only", "error".
const char *vw_db_writes_name (vw_db_writes_t state);
//  The failed COMMIT's own message (not a ROLLBACK's that followed it),
//  e.g. "database or disk is full"; "" while writes are ok. Borrowed.
const char *vw_db_write_error (vw_db_t *self);
//  While writes are failing: tries a minimal write transaction, so that a
//  database with no traffic notices that space came back. Returns the
//  state after the attempt. Does nothing (returns the state) when writes
//  are ok or a transaction is open.
vw_db_writes_t vw_db_retry_writes (vw_db_t *self);

//  Moves the WAL checkpoints off this connection: a thread with its own
//  connection runs a PASSIVE checkpoint whenever a commit leaves the WAL
//  at 1,000 pages or more, so that commits never wait for one; the writer
//  checkpoints itself only if the WAL reaches 16,000 pages. Stopped by
//  vw_db_close. 0, or -1 (the writer keeps checkpointing itself). Nothing
//  to do for an in-memory database.
int vw_db_checkpoint_in_background (vw_db_t *self);
//  Checkpoints the thread has run (that copied pages); *inline_runs (when not NULL) those the
//  writer had to run itself.
uint64_t vw_db_checkpoints (vw_db_t *self, uint64_t *inline_runs);

#endif
