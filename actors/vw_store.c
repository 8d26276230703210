/*  vw_store - the store actor: the only thread that opens the database for
    writing (DESIGN: store/ owns schema and statements, this actor owns the
    connection). Other actors send it requests and get replies; they never
    touch SQLite themselves.

    Start-up fails with VW_EXIT_DATABASE when the database cannot be opened
    or migrated, and VW_EXIT_SCHEMA when it was written by a newer build.
    Its pong reports the database's health, which /health shows as
    "database".
*/
#include "vw_actors.h"
#include "vw_db.h"
#include "vw_lifecycle.h"
#include "vw_log.h"

typedef struct {
    vw_db_t *db;
} self_t;

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
        vw_actor_fail (actor, status == VW_DB_ERR_TOO_NEW ? VW_EXIT_SCHEMA : VW_EXIT_DATABASE,
                       "%s", err);
        free (path);
        return NULL;
    }
    vw_info ("store", "database %s open (schema version %d, synchronous=%s)", path,
             vw_db_schema_version (db), a->full_sync ? "full" : "normal");
    free (path);
    self_t *self = (self_t *) zmalloc (sizeof (self_t));
    self->db = db;
    return self;
}

static void
s_destroy (void **state_p)
{
    self_t *self = (self_t *) *state_p;
    if (self) {
        vw_db_close (&self->db);
        free (self);
    }
    *state_p = NULL;
}

static void
s_handle (void *state, vw_actor_t *actor, vw_msg_t **msg_p)
{
    vw_warn ("store", "unexpected '%s' from '%s' ignored", vw_msg_name ((*msg_p)->id),
             (*msg_p)->peer);
}

static void
s_health (void *state, bool *healthy, char *detail, size_t len)
{
    self_t *self = (self_t *) state;
    *healthy = vw_db_ping (self->db) == 0;
    snprintf (detail, len, "%s", *healthy ? "ok" : "error");
}

const vw_actor_class_t vw_store_class = {
    .name = "store",
    .create = s_create,
    .destroy = s_destroy,
    .handle = s_handle,
    .health = s_health,
};
