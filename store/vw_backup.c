/*  vw_backup - see vw_backup.h. */
#include "vw_backup.h"
#include "vw_clock.h"

#include <errno.h>
#include <libgen.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct vw_backup_t {
    char *src, *dest;
    zsock_t *done;
    pthread_t thread;
};

bool
vw_backup_path_ok (const char *dest, char *err, size_t errlen)
{
    struct stat st;
    if (!dest || dest[0] != '/' || strlen (dest) > 1024) {
        snprintf (err, errlen, "the backup path must be absolute (a path on the backend's host)");
        return false;
    }
    if (stat (dest, &st) == 0) {
        snprintf (err, errlen, "%s exists; a backup never overwrites a file", dest);
        return false;
    }
    char *copy = strdup (dest);
    bool dir_ok = copy && stat (dirname (copy), &st) == 0 && S_ISDIR (st.st_mode);
    free (copy);
    if (!dir_ok) {
        snprintf (err, errlen, "the directory of %s does not exist", dest);
        return false;
    }
    return true;
}

static void *
s_run (void *arg)
{
    vw_backup_t *self = (vw_backup_t *) arg;
    int64_t t0 = vw_clock_mono_ms ();
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_open_v2 (self->src, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout (db, 10000);
        rc = sqlite3_prepare_v2 (db, "VACUUM INTO ?1", -1, &stmt, NULL);
    }
    if (rc == SQLITE_OK) {
        sqlite3_bind_text (stmt, 1, self->dest, -1, SQLITE_STATIC);
        rc = sqlite3_step (stmt);
        if (rc == SQLITE_DONE)
            rc = SQLITE_OK;
    }
    char message[600];
    struct stat st;
    if (rc == SQLITE_OK && stat (self->dest, &st) == 0)
        snprintf (message, sizeof message, "ok %lld %lld", (long long) st.st_size,
                  (long long) (vw_clock_mono_ms () - t0));
    else
        snprintf (message, sizeof message, "error %s",
                  db ? sqlite3_errmsg (db) : sqlite3_errstr (rc));
    sqlite3_finalize (stmt);
    sqlite3_close (db);
    zstr_send (self->done, message);
    return NULL;
}

vw_backup_t *
vw_backup_start (const char *src, const char *dest, zsock_t *done)
{
    vw_backup_t *self = (vw_backup_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->src = strdup (src);
    self->dest = strdup (dest);
    self->done = done;
    if (!self->src || !self->dest || pthread_create (&self->thread, NULL, s_run, self) != 0) {
        free (self->src);
        free (self->dest);
        free (self);
        return NULL;
    }
    return self;
}

void
vw_backup_join (vw_backup_t **self_p)
{
    vw_backup_t *self = *self_p;
    if (!self)
        return;
    pthread_join (self->thread, NULL);
    free (self->src);
    free (self->dest);
    free (self);
    *self_p = NULL;
}
