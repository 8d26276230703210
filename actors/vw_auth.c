/*  vw_auth - the auth actor: password hashing and checking, off every other
    thread's path.

    Argon2id (libsodium crypto_pwhash, "interactive" limits) costs tens of
    milliseconds and 64 MiB per call on purpose. Done in the edge it would
    stall every agent and API connection; done in the store it would stall
    every write. The auth actor hands each hash or check to its own worker
    thread (the hasher) and keeps its loop free, so it still answers pings
    and queues further logins while a hash runs; the edge rate-limits
    logins per address.

    user_create: validate, hash, then the store inserts (reply 201/409).
    login: the store returns the user's hash; a password for an unknown or
    disabled user is still checked, against a dummy hash, so the answer
    takes the same time either way (no user enumeration by timing).
    First start: right after start-up, auth loads every user from the
    store; with none it creates `admin` with VIWORKS_ADMIN_PASSWORD or a
    generated password logged once.

    Users and their tokens (issue 8): auth owns the users. It keeps each
    user's role, disabled flag and token generation in memory (loaded at
    start, then changed only after the store committed the change), and the
    jtis logged out until their exp. Every token carries its user's
    generation ("gen"); a password or role change, disabling or deletion
    draws a new random one, so the old tokens no longer match. The api
    edges verify tokens themselves against a copy of this table: each asks
    for the whole table with token_sync (and is remembered), and auth
    pushes every change to all of them BEFORE it answers the request that
    made it, so by the time a client hears 200/204 its edge refuses the old
    tokens. Until the table is loaded, user requests get 503.
*/
#include "vw_actors.h"
#include "vw_clock.h"
#include "vw_keys.h"
#include "vw_lifecycle.h"
#include "vw_log.h"
#include "vw_token.h"
#include "vw_pending.h"
#include "vw_wire.h"

#include <jansson.h>
#include <sodium.h>
#include <string.h>

#define S_STORE_TIMEOUT_MS 5000
#define S_RELOAD_MS        1000

//  --------------------------------------------------------------------------
//  The hasher thread. Jobs: [id: 8 bytes]["hash" | "verify"][password][hash]
//  (for "verify", an empty hash means the dummy). Answers: [id]["ok"|"fail"][hash].

//  What an unknown or disabled user's password is checked against, so the
//  answer takes as long as for a real user: an Argon2id hash with our
//  parameters (INTERACTIVE: m=64 MiB, t=2) of 24 random bytes nobody kept.
//  A constant, so no start pays for hashing it; it can never let anyone
//  in (a verify against it always answers "fail").
static const char s_dummy[] = "$argon2id$v=19$m=65536,t=2,p=1$nUW/"
                              "sIbDsMTJVyyybImbnQ$q21WczUw08yRecX6q82bp+uiesGDJ6NfITarmNmJvq8";

static void
s_hasher (zsock_t *pipe, void *args)
{
    zsock_signal (pipe, 0);
    const char *dummy = s_dummy;
    while (true) {
        zmsg_t *job = zmsg_recv (pipe);
        if (!job)
            break;
        zframe_t *id = zmsg_pop (job);
        char *op = zmsg_popstr (job);
        if (!op || streq (op, "$TERM") || !id) {
            zstr_free (&op);
            zframe_destroy (&id);
            zmsg_destroy (&job);
            break;
        }
        char *password = zmsg_popstr (job);
        char *hash = zmsg_popstr (job);
        char out[crypto_pwhash_STRBYTES] = "";
        bool ok = false;
        if (password && streq (op, "hash"))
            ok = crypto_pwhash_str (out, password, strlen (password),
                                    crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                    crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0;
        else if (password && streq (op, "verify")) {
            const char *against = hash && *hash ? hash : dummy;
            ok = *against && crypto_pwhash_str_verify (against, password, strlen (password)) == 0 &&
                 hash && *hash;
        }
        if (password) {
            sodium_memzero (password, strlen (password));
            free (password);
        }
        zstr_free (&hash);
        zstr_free (&op);
        zmsg_destroy (&job);
        zmsg_t *answer = zmsg_new ();
        zmsg_append (answer, &id);
        zmsg_addstr (answer, ok ? "ok" : "fail");
        zmsg_addstr (answer, out);
        if (zmsg_send (&answer, pipe))
            zmsg_destroy (&answer);
    }
}

//  --------------------------------------------------------------------------
//  The actor

typedef struct self_t self_t;
typedef struct s_job_t s_job_t;
typedef void (s_job_fn) (self_t *self, s_job_t *job, bool ok, const char *hash);

//  The original request, kept while the store or the hasher works.
struct s_job_t {
    int64_t id;
    s_job_fn *fn;
    char peer[VW_ADDR_MAX];
    uint64_t rid;
    char *username, *role;
    int64_t gen;        //  login: the user's generation when looked up
    bool set_disabled;  //  user_update
    bool disabled;
    bool logout;  //  token_revoke without a jti: answer 204
};

struct self_t {
    const vw_config_t *config;
    vw_actor_t *actor;
    vw_pending_t *pending;
    zactor_t *hasher;
    zhashx_t *jobs;  //  job id -> s_job_t (owned), while the hasher works
    int64_t next_job;
    char generated[32];  //  first start's password, until logged
    //  Users and tokens (see the top)
    zhashx_t *users;   //  name -> s_user_t
    zhashx_t *denied;  //  jti -> int64_t exp (seconds)
    zhashx_t *edges;   //  api edges that asked for the table (name -> "")
    zlistx_t *syncs;   //  token_sync requests waiting for the load (vw_msg_t)
    bool loaded;
};

typedef struct {
    char role[16];
    bool disabled;
    int64_t gen;
    int64_t created_at;
} s_user_t;

static void
s_free (void **item)
{
    free (*item);
    *item = NULL;
}

static s_job_t *
s_job_new (const vw_msg_t *request, const char *username, const char *role)
{
    s_job_t *job = (s_job_t *) zmalloc (sizeof (s_job_t));
    if (request) {
        memcpy (job->peer, request->peer, sizeof job->peer);
        job->rid = request->rid;
    }
    job->username = username ? strdup (username) : NULL;
    job->role = role ? strdup (role) : NULL;
    return job;
}

static void
s_job_free (void **item)
{
    s_job_t *job = (s_job_t *) *item;
    if (job) {
        free (job->username);
        free (job->role);
        free (job);
    }
    *item = NULL;
}

static void
s_job_destroy (s_job_t **job_p)
{
    s_job_free ((void **) job_p);
}

//  Hands a job to the hasher; fn runs when it answers.
static void
s_hash_job (self_t *self, s_job_t *job, const char *op, const char *password, const char *hash,
            s_job_fn *fn)
{
    job->id = ++self->next_job;
    job->fn = fn;
    zhashx_insert (self->jobs, &job->id, job);
    zmsg_t *msg = zmsg_new ();
    zmsg_addmem (msg, &job->id, sizeof job->id);
    zmsg_addstr (msg, op);
    zmsg_addstr (msg, password ? password : "");
    zmsg_addstr (msg, hash ? hash : "");
    if (zmsg_send (&msg, zactor_sock (self->hasher))) {
        zmsg_destroy (&msg);
        zhashx_delete (self->jobs, &job->id);
    }
}

static void
s_on_hasher (void *state, vw_actor_t *actor, zsock_t *sock)
{
    self_t *self = (self_t *) state;
    while (zsock_events (sock) & ZMQ_POLLIN) {
        zmsg_t *answer = zmsg_recv (sock);
        if (!answer)
            return;
        zframe_t *id = zmsg_pop (answer);
        char *verdict = zmsg_popstr (answer);
        char *hash = zmsg_popstr (answer);
        int64_t key = 0;
        if (id && zframe_size (id) == sizeof key)
            memcpy (&key, zframe_data (id), sizeof key);
        s_job_t *job = (s_job_t *) zhashx_lookup (self->jobs, &key);
        if (job) {
            zhashx_freefn (self->jobs, &key, NULL);  //  the callback owns it now
            zhashx_delete (self->jobs, &key);
            job->fn (self, job, verdict && streq (verdict, "ok"), hash);
        }
        zframe_destroy (&id);
        zstr_free (&verdict);
        zstr_free (&hash);
        zmsg_destroy (&answer);
    }
}

static void
s_send_to (self_t *self, const s_job_t *job, vw_msg_t **msg_p)
{
    (*msg_p)->rid = job->rid;
    if (vw_actor_send (self->actor, job->peer, msg_p))
        vw_msg_destroy (msg_p);
}

static void
s_reply_error (self_t *self, const s_job_t *job, int status, const char *code, const char *message)
{
    vw_msg_t *reply = vw_msg_new (VW_MSG_ID_reply);
    reply->reply.status = status;
    vw_msg_set_str (&reply->reply.code, code);
    vw_msg_set_str (&reply->reply.message, message);
    s_send_to (self, job, &reply);
}

//  Passes the store's `reply` on to the job's requester (the strings are
//  taken over), or 503 when the store did not answer.
static void
s_forward_reply (self_t *self, const s_job_t *job, vw_msg_t *reply)
{
    if (!reply || reply->id != VW_MSG_ID_reply) {
        s_reply_error (self, job, 503, "unavailable", "the store did not answer");
        return;
    }
    vw_msg_t *forward = vw_msg_new (VW_MSG_ID_reply);
    forward->reply = reply->reply;
    memset (&reply->reply, 0, sizeof reply->reply);
    s_send_to (self, job, &forward);
}

static bool
s_valid_username (const char *name)
{
    return vw_wire_valid_id (name);
}

static bool
s_valid_role (const char *role)
{
    return role &&
           (!strcmp (role, "admin") || !strcmp (role, "operator") || !strcmp (role, "viewer"));
}

//  --------------------------------------------------------------------------
//  The users table and the api edges' copies of it

//  Remembers a user object from the store ({"username","role","disabled",
//  "created_at","gen"}); returns its name (in object), or NULL if malformed.
static const char *
s_user_put (self_t *self, json_t *object)
{
    const char *name = json_string_value (json_object_get (object, "username"));
    const char *role = json_string_value (json_object_get (object, "role"));
    json_t *gen = json_object_get (object, "gen");
    if (!name || !s_valid_role (role) || !json_is_integer (gen))
        return NULL;
    s_user_t *user = (s_user_t *) zmalloc (sizeof (s_user_t));
    snprintf (user->role, sizeof user->role, "%s", role);
    user->disabled = json_is_true (json_object_get (object, "disabled"));
    user->gen = json_integer_value (gen);
    user->created_at = json_integer_value (json_object_get (object, "created_at"));
    zhashx_update (self->users, name, user);
    return name;
}

//  The user object clients see: never the hash nor the generation.
static json_t *
s_user_json (const char *name, const s_user_t *user)
{
    return json_pack ("{s:s, s:s, s:b, s:I}", "username", name, "role", user->role, "disabled",
                      user->disabled, "created_at", (json_int_t) user->created_at);
}

//  The edges' entry for one user: [gen, role, disabled].
static json_t *
s_user_entry (const s_user_t *user)
{
    return json_pack ("[I, s, b]", (json_int_t) user->gen, user->role, user->disabled);
}

static int
s_enabled_admins (self_t *self)
{
    int n = 0;
    for (s_user_t *user = (s_user_t *) zhashx_first (self->users); user;
         user = (s_user_t *) zhashx_next (self->users))
        n += !user->disabled && !strcmp (user->role, "admin");
    return n;
}

static void
s_forget_expired (self_t *self, int64_t now_s)
{
    zlistx_t *gone = zlistx_new ();
    zlistx_set_destructor (gone, (czmq_destructor *) zstr_free);
    for (int64_t *exp = (int64_t *) zhashx_first (self->denied); exp;
         exp = (int64_t *) zhashx_next (self->denied))
        if (*exp <= now_s)
            zlistx_add_end (gone, strdup ((const char *) zhashx_cursor (self->denied)));
    for (char *jti = (char *) zlistx_first (gone); jti; jti = (char *) zlistx_next (gone))
        zhashx_delete (self->denied, jti);
    zlistx_destroy (&gone);
}

static vw_msg_t *
s_table_full (self_t *self)
{
    s_forget_expired (self, vw_clock_wall_ms () / 1000);
    json_t *users = json_object ();
    for (s_user_t *user = (s_user_t *) zhashx_first (self->users); user;
         user = (s_user_t *) zhashx_next (self->users))
        json_object_set_new (users, (const char *) zhashx_cursor (self->users),
                             s_user_entry (user));
    json_t *denied = json_object ();
    for (int64_t *exp = (int64_t *) zhashx_first (self->denied); exp;
         exp = (int64_t *) zhashx_next (self->denied))
        json_object_set_new (denied, (const char *) zhashx_cursor (self->denied),
                             json_integer (*exp));
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_token_table);
    msg->token_table.full = true;
    msg->token_table.users = json_dumps (users, JSON_COMPACT);
    msg->token_table.denied = json_dumps (denied, JSON_COMPACT);
    json_decref (users);
    json_decref (denied);
    return msg;
}

//  Tells every api edge about one change: a user (NULL user: deleted) or a
//  denied jti. Sent before the answer to the request that made the change.
static void
s_push (self_t *self, const char *name, const s_user_t *user, const char *jti, int64_t exp)
{
    json_t *users = json_object (), *denied = json_object ();
    if (name)
        json_object_set_new (users, name, user ? s_user_entry (user) : json_null ());
    if (jti)
        json_object_set_new (denied, jti, json_integer (exp));
    char *users_text = json_dumps (users, JSON_COMPACT);
    char *denied_text = json_dumps (denied, JSON_COMPACT);
    json_decref (users);
    json_decref (denied);
    zlistx_t *lost = zlistx_new ();
    for (void *item = zhashx_first (self->edges); item; item = zhashx_next (self->edges)) {
        const char *edge = (const char *) zhashx_cursor (self->edges);
        vw_msg_t *msg = vw_msg_new (VW_MSG_ID_token_table);
        vw_msg_set_str (&msg->token_table.users, users_text);
        vw_msg_set_str (&msg->token_table.denied, denied_text);
        if (vw_actor_send (self->actor, edge, &msg)) {
            vw_msg_destroy (&msg);
            zlistx_add_end (lost, (void *) edge);
        }
    }
    //  An edge we cannot reach asks again (token_sync) when it is back.
    for (const char *edge = (const char *) zlistx_first (lost); edge;
         edge = (const char *) zlistx_next (lost)) {
        vw_warn ("auth", "api edge '%s' is unreachable: forgotten until it asks again", edge);
        zhashx_delete (self->edges, edge);
    }
    zlistx_destroy (&lost);
    free (users_text);
    free (denied_text);
}

//  A user that is gone: out of the table, and out of the edges' copies.
static void
s_forget_user (self_t *self, const char *name)
{
    zhashx_delete (self->users, name);
    s_push (self, name, NULL, NULL, 0);
}

static void
s_token_sync (self_t *self, vw_msg_t *msg)
{
    zhashx_update (self->edges, msg->peer, (void *) "");
    if (!self->loaded) {
        vw_msg_t *copy = vw_msg_new (VW_MSG_ID_token_sync);
        copy->rid = msg->rid;
        memcpy (copy->peer, msg->peer, sizeof copy->peer);
        zlistx_add_end (self->syncs, copy);
        return;
    }
    vw_msg_t *table = s_table_full (self);
    if (vw_actor_reply (self->actor, msg, &table))
        vw_msg_destroy (&table);
}

//  user_create: validate -> hash -> store insert -> forward its reply.

//  A store reply with a user object (and its "gen"): remember the user,
//  tell the edges, then answer with the object minus "gen".
static void
s_user_changed (self_t *self, s_job_t *job, vw_msg_t *reply)
{
    json_t *body = json_loads (reply->reply.json, 0, NULL);
    const char *name = s_user_put (self, body);
    if (!name) {
        json_decref (body);
        s_reply_error (self, job, 500, "internal", "the store's answer is malformed");
        return;
    }
    s_push (self, name, (s_user_t *) zhashx_lookup (self->users, name), NULL, 0);
    json_object_del (body, "gen");
    vw_msg_t *forward = vw_msg_new (VW_MSG_ID_reply);
    forward->reply.status = job->logout ? 204 : reply->reply.status;
    if (!job->logout)
        forward->reply.json = json_dumps (body, JSON_COMPACT);
    json_decref (body);
    s_send_to (self, job, &forward);
}

static void
s_on_inserted (void *state, vw_actor_t *actor, void *arg, vw_msg_t *reply, const char *why)
{
    self_t *self = (self_t *) state;
    s_job_t *job = (s_job_t *) arg;
    if (reply && reply->id == VW_MSG_ID_reply && reply->reply.status == 201 && reply->reply.json)
        s_user_changed (self, job, reply);
    else
        s_forward_reply (self, job, reply);
    s_job_destroy (&job);
}

static void
s_insert_user (self_t *self, s_job_t *job, const char *hash, vw_pending_fn *fn)
{
    vw_msg_t *insert = vw_msg_new (VW_MSG_ID_user_insert);
    vw_msg_set_str (&insert->user_insert.username, job->username);
    vw_msg_set_str (&insert->user_insert.password_hash, hash);
    vw_msg_set_str (&insert->user_insert.role, job->role);
    insert->user_insert.gen = vw_token_gen_new (0);
    if (vw_pending_request (self->pending, "store", &insert, S_STORE_TIMEOUT_MS, fn, job)) {
        vw_msg_destroy (&insert);
        fn (self, self->actor, job, NULL, "store unreachable");
    }
}

static void
s_on_user_hashed (self_t *self, s_job_t *job, bool ok, const char *hash)
{
    if (!ok) {
        s_reply_error (self, job, 503, "unavailable", "out of memory hashing the password");
        s_job_destroy (&job);
        return;
    }
    s_insert_user (self, job, hash, s_on_inserted);
}

static void
s_user_create (self_t *self, vw_msg_t *msg)
{
    const vw_user_create_msg_t *u = &msg->user_create;
    s_job_t *job = s_job_new (msg, u->username, u->role);
    size_t plen = u->password ? strlen (u->password) : 0;
    if (!self->loaded)
        s_reply_error (self, job, 503, "unavailable", "the user table is not loaded yet");
    else if (!s_valid_username (u->username))
        s_reply_error (self, job, 400, "bad_request", "field 'username' must match " VW_ID_GRAMMAR);
    else if (plen < 8 || plen > 1024)
        s_reply_error (self, job, 400, "bad_request",
                       "field 'password' must be 8 to 1024 characters");
    else if (!u->role || (strcmp (u->role, "admin") && strcmp (u->role, "operator") &&
                          strcmp (u->role, "viewer")))
        s_reply_error (self, job, 400, "bad_request",
                       "field 'role' must be one of admin, operator, viewer");
    else {
        s_hash_job (self, job, "hash", u->password, NULL, s_on_user_hashed);
        return;
    }
    s_job_destroy (&job);
}

//  login: store user_get -> hasher verify -> login_result.

static void
s_on_verified (self_t *self, s_job_t *job, bool ok, const char *hash)
{
    vw_msg_t *result = vw_msg_new (VW_MSG_ID_login_result);
    result->login_result.ok = ok && job->role;
    vw_msg_set_str (&result->login_result.username, job->username);
    if (ok && job->role) {
        vw_msg_set_str (&result->login_result.role, job->role);
        //  The generation the password was checked under: if it changed
        //  since, the token is born revoked.
        result->login_result.gen = job->gen;
    }
    s_send_to (self, job, &result);
    s_job_destroy (&job);
}

typedef struct {
    s_job_t *job;
    char *password;
} s_login_t;

//  The database is the truth: a user changed there by another process
//  (viworks-backend --reset-admin-password beside a running backend) is
//  taken over when its record is read, and the edges hear of it, so tokens
//  of the old generation stop working from the next login on.
static void
s_adopt_record (self_t *self, const vw_user_record_msg_t *record)
{
    if (!record->found || !record->username || !s_valid_role (record->role))
        return;
    s_user_t *user = (s_user_t *) zhashx_lookup (self->users, record->username);
    if (user && user->gen == record->gen && !strcmp (user->role, record->role) &&
        user->disabled == record->disabled)
        return;
    if (!user) {
        user = (s_user_t *) zmalloc (sizeof (s_user_t));
        user->created_at = vw_clock_wall_ms ();
        zhashx_update (self->users, record->username, user);
    }
    snprintf (user->role, sizeof user->role, "%s", record->role);
    user->disabled = record->disabled;
    user->gen = record->gen;
    vw_info ("auth", "user '%s' was changed outside this process: following the database",
             record->username);
    s_push (self, record->username, user, NULL, 0);
}

static void
s_on_user_record (void *state, vw_actor_t *actor, void *arg, vw_msg_t *reply, const char *why)
{
    self_t *self = (self_t *) state;
    s_login_t *login = (s_login_t *) arg;
    s_job_t *job = login->job;
    if (!reply || reply->id != VW_MSG_ID_user_record) {
        s_reply_error (self, job, 503, "unavailable", "the store did not answer");
        s_job_destroy (&job);
    }
    else {
        const vw_user_record_msg_t *user = &reply->user_record;
        s_adopt_record (self, user);
        bool usable = user->found && !user->disabled && user->password_hash;
        //  The role is kept only for a usable user; an empty hash makes the
        //  hasher check against its dummy, which takes as long and fails.
        if (usable) {
            job->role = strdup (user->role ? user->role : "viewer");
            job->gen = user->gen;
        }
        s_hash_job (self, job, "verify", login->password, usable ? user->password_hash : "",
                    s_on_verified);
    }
    sodium_memzero (login->password, strlen (login->password));
    free (login->password);
    free (login);
}

static void
s_login (self_t *self, vw_msg_t *msg)
{
    s_login_t *login = (s_login_t *) zmalloc (sizeof (s_login_t));
    login->job = s_job_new (msg, msg->login.username ? msg->login.username : "", NULL);
    login->password = strdup (msg->login.password ? msg->login.password : "");
    vw_msg_t *get = vw_msg_new (VW_MSG_ID_user_get);
    vw_msg_set_str (&get->user_get.username, login->job->username);
    if (vw_pending_request (self->pending, "store", &get, S_STORE_TIMEOUT_MS, s_on_user_record,
                            login)) {
        vw_msg_destroy (&get);
        s_on_user_record (self, self->actor, login, NULL, "store unreachable");
    }
}

//  First start: the admin user.

static void
s_on_admin_created (void *state, vw_actor_t *actor, void *arg, vw_msg_t *reply, const char *why)
{
    self_t *self = (self_t *) state;
    s_job_t *job = (s_job_t *) arg;
    bool ok = reply && reply->id == VW_MSG_ID_reply && reply->reply.status == 201;
    json_t *body = ok && reply->reply.json ? json_loads (reply->reply.json, 0, NULL) : NULL;
    const char *name = body ? s_user_put (self, body) : NULL;
    if (name)
        s_push (self, name, (s_user_t *) zhashx_lookup (self->users, name), NULL, 0);
    json_decref (body);
    if (!ok)
        vw_error ("auth", "cannot create the first admin user: %s",
                  reply && reply->id == VW_MSG_ID_reply && reply->reply.message
                      ? reply->reply.message
                      : (why ? why : "no answer"));
    else if (*self->generated)
        //  Its own line after "ready", not lost among the start-up lines.
        vw_lifecycle_notice ("auth",
                             "ADMIN PASSWORD: created user 'admin' with generated password '%s' "
                             "(shown once; set VIWORKS_ADMIN_PASSWORD to choose it, "
                             "viworks-backend --reset-admin-password to replace it)",
                             self->generated);
    else
        vw_info ("auth", "created user 'admin' with the password from VIWORKS_ADMIN_PASSWORD");
    sodium_memzero (self->generated, sizeof self->generated);
    vw_msg_t *audit = vw_msg_new (VW_MSG_ID_audit);
    vw_msg_set_str (&audit->audit.actor, "system");
    vw_msg_set_str (&audit->audit.action, "user.create");
    vw_msg_set_str (&audit->audit.target, "admin");
    vw_msg_set_str (&audit->audit.outcome, ok ? "success" : "failure");
    vw_msg_set_str (&audit->audit.detail, "first start");
    if (vw_actor_send (actor, "store", &audit))
        vw_msg_destroy (&audit);
    s_job_destroy (&job);
}

static void
s_on_admin_hashed (self_t *self, s_job_t *job, bool ok, const char *hash)
{
    if (!ok) {
        vw_error ("auth", "cannot hash the admin password (out of memory)");
        s_job_destroy (&job);
        return;
    }
    s_insert_user (self, job, hash, s_on_admin_created);
}

//  Start-up: load every user and denied jti, then answer the edges that
//  asked for the table meanwhile; with no user at all, create `admin`.

static void s_load (self_t *self);

static void
s_on_reload_timer (void *arg, uint64_t id)
{
    s_load ((self_t *) arg);
}

static void
s_first_admin (self_t *self)
{
    const char *password = self->config ? self->config->admin_password : NULL;
    if (!password || !*password) {
        uint8_t raw[15];
        randombytes_buf (raw, sizeof raw);
        sodium_bin2base64 (self->generated, sizeof self->generated, raw, sizeof raw,
                           sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        password = self->generated;
    }
    s_hash_job (self, s_job_new (NULL, "admin", "admin"), "hash", password, NULL,
                s_on_admin_hashed);
}

static void
s_on_loaded (void *state, vw_actor_t *actor, void *ctx, vw_msg_t *reply, const char *why)
{
    self_t *self = (self_t *) state;
    json_t *body =
        reply && reply->id == VW_MSG_ID_reply && reply->reply.status == 200 && reply->reply.json
            ? json_loads (reply->reply.json, 0, NULL)
            : NULL;
    json_t *users = json_object_get (body, "users");
    json_t *denied = json_object_get (body, "denied");
    if (!json_is_array (users) || !json_is_object (denied)) {
        vw_error ("auth", "cannot load the users: %s; trying again",
                  reply && reply->id == VW_MSG_ID_reply && reply->reply.message
                      ? reply->reply.message
                      : (why ? why : "bad answer"));
        json_decref (body);
        vw_timers_add (vw_actor_timers (actor), S_RELOAD_MS, s_on_reload_timer, self);
        return;
    }
    size_t i;
    json_t *user;
    json_array_foreach (users, i, user) if (!s_user_put (self, user))
        vw_warn ("auth", "a malformed user row was skipped");
    const char *jti;
    json_t *exp;
    json_object_foreach (denied, jti, exp)
    {
        int64_t *copy = (int64_t *) zmalloc (sizeof (int64_t));
        *copy = json_integer_value (exp);
        zhashx_update (self->denied, jti, copy);
    }
    self->loaded = true;
    vw_debug ("auth", "%zu user(s), %zu denied token(s) loaded", zhashx_size (self->users),
              zhashx_size (self->denied));
    for (vw_msg_t *sync = (vw_msg_t *) zlistx_first (self->syncs); sync;
         sync = (vw_msg_t *) zlistx_next (self->syncs))
        s_token_sync (self, sync);
    zlistx_purge (self->syncs);
    if (json_array_size (users) == 0)
        s_first_admin (self);
    json_decref (body);
}

static void
s_load (self_t *self)
{
    vw_msg_t *load = vw_msg_new (VW_MSG_ID_users_load);
    load->users_load.now_s = vw_clock_wall_ms () / 1000;
    if (vw_pending_request (self->pending, "store", &load, S_STORE_TIMEOUT_MS, s_on_loaded, NULL)) {
        vw_msg_destroy (&load);
        vw_timers_add (vw_actor_timers (self->actor), S_RELOAD_MS, s_on_reload_timer, self);
    }
}

//  --------------------------------------------------------------------------
//  Reads, changes, logout, grants (issue 8)

//  Answers job's request at once with status and body (consumed).
static void
s_reply_json (self_t *self, const s_job_t *job, int status, json_t *body)
{
    vw_msg_t *reply = vw_msg_new (VW_MSG_ID_reply);
    reply->reply.status = status;
    if (body)
        reply->reply.json = json_dumps (body, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref (body);
    s_send_to (self, job, &reply);
}

//  Refuses (and answers) a request while the table is not loaded, or for a
//  user who does not exist; else returns the user.
static s_user_t *
s_user_or_reply (self_t *self, const s_job_t *job)
{
    if (!self->loaded) {
        s_reply_error (self, job, 503, "unavailable", "the user table is not loaded yet");
        return NULL;
    }
    s_user_t *user = job->username ? (s_user_t *) zhashx_lookup (self->users, job->username) : NULL;
    if (!user) {
        char message[200];
        snprintf (message, sizeof message, "no user '%.128s'", job->username ? job->username : "");
        s_reply_error (self, job, 404, "not_found", message);
    }
    return user;
}

static int
s_compare_names (const void *a, const void *b)
{
    return strcmp (*(const char *const *) a, *(const char *const *) b);
}

static void
s_user_list (self_t *self, vw_msg_t *msg)
{
    s_job_t *job = s_job_new (msg, NULL, NULL);
    if (!self->loaded) {
        s_reply_error (self, job, 503, "unavailable", "the user table is not loaded yet");
        s_job_destroy (&job);
        return;
    }
    size_t count = zhashx_size (self->users), n = 0;
    const char **names = (const char **) zmalloc ((count + 1) * sizeof (char *));
    for (void *item = zhashx_first (self->users); item; item = zhashx_next (self->users))
        names[n++] = (const char *) zhashx_cursor (self->users);
    qsort (names, n, sizeof (char *), s_compare_names);
    const char *cursor = msg->user_list.cursor;
    int64_t limit =
        msg->user_list.limit > 0 && msg->user_list.limit <= 1000 ? msg->user_list.limit : 100;
    json_t *page = json_array ();
    size_t i = 0;
    while (i < n && cursor && strcmp (names[i], cursor) <= 0)
        i++;
    for (; i < n && (int64_t) json_array_size (page) < limit; i++)
        json_array_append_new (
            page, s_user_json (names[i], (s_user_t *) zhashx_lookup (self->users, names[i])));
    json_t *next = i < n && json_array_size (page)
                       ? json_string (names[i - 1])  //  the last name shown
                       : json_null ();
    free (names);
    s_reply_json (self, job, 200, json_pack ("{s:o, s:o}", "users", page, "next_cursor", next));
    s_job_destroy (&job);
}

static void
s_user_show (self_t *self, vw_msg_t *msg)
{
    s_job_t *job = s_job_new (msg, msg->user_show.username, NULL);
    s_user_t *user = s_user_or_reply (self, job);
    if (user)
        s_reply_json (self, job, 200, s_user_json (job->username, user));
    s_job_destroy (&job);
}

//  user_save answered: a changed user (200) or an error to pass on.
static void
s_on_saved (void *state, vw_actor_t *actor, void *arg, vw_msg_t *reply, const char *why)
{
    self_t *self = (self_t *) state;
    s_job_t *job = (s_job_t *) arg;
    if (reply && reply->id == VW_MSG_ID_reply && reply->reply.status == 200 && reply->reply.json)
        s_user_changed (self, job, reply);
    else {
        if (reply && reply->id == VW_MSG_ID_reply && reply->reply.status == 404 && job->username)
            s_forget_user (self, job->username);  //  gone meanwhile
        s_forward_reply (self, job, reply);
    }
    s_job_destroy (&job);
}

//  Persists job's change (and hash, if any) with a new token generation.
static void
s_save (self_t *self, s_job_t *job, const char *hash)
{
    s_user_t *user = (s_user_t *) zhashx_lookup (self->users, job->username);
    vw_msg_t *save = vw_msg_new (VW_MSG_ID_user_save);
    vw_msg_set_str (&save->user_save.username, job->username);
    vw_msg_set_str (&save->user_save.password_hash, hash);
    vw_msg_set_str (&save->user_save.role, job->role);
    save->user_save.set_disabled = job->set_disabled;
    save->user_save.disabled = job->disabled;
    save->user_save.gen = vw_token_gen_new (user ? user->gen : 0);
    if (vw_pending_request (self->pending, "store", &save, S_STORE_TIMEOUT_MS, s_on_saved, job)) {
        vw_msg_destroy (&save);
        s_on_saved (self, self->actor, job, NULL, "store unreachable");
    }
}

static void
s_on_update_hashed (self_t *self, s_job_t *job, bool ok, const char *hash)
{
    if (!ok) {
        s_reply_error (self, job, 503, "unavailable", "out of memory hashing the password");
        s_job_destroy (&job);
        return;
    }
    s_save (self, job, hash);
}

//  Would this change leave no enabled admin? (Then nobody could manage
//  users through the API; the admin socket still could.)
static bool
s_last_admin (self_t *self, const s_user_t *user, bool removed)
{
    return !user->disabled && !strcmp (user->role, "admin") && removed &&
           s_enabled_admins (self) <= 1;
}

static void
s_user_update (self_t *self, vw_msg_t *msg)
{
    const vw_user_update_msg_t *u = &msg->user_update;
    s_job_t *job = s_job_new (msg, u->username, u->role);
    job->set_disabled = u->set_disabled;
    job->disabled = u->disabled;
    size_t plen = u->password ? strlen (u->password) : 0;
    s_user_t *user = s_user_or_reply (self, job);
    if (!user)
        ;
    else if (u->role && !s_valid_role (u->role))
        s_reply_error (self, job, 400, "bad_request",
                       "field 'role' must be one of admin, operator, viewer");
    else if (u->password && (plen < 8 || plen > 1024))
        s_reply_error (self, job, 400, "bad_request",
                       "field 'password' must be 8 to 1024 characters");
    else if (!u->role && !u->password && !u->set_disabled)
        s_reply_error (self, job, 400, "bad_request",
                       "give at least one of 'role', 'password' and 'disabled'");
    else if (s_last_admin (self, user,
                           (u->role && strcmp (u->role, "admin")) ||
                               (u->set_disabled && u->disabled)))
        s_reply_error (self, job, 409, "conflict",
                       "this would leave no enabled admin: make another admin first");
    else if (u->password) {
        s_hash_job (self, job, "hash", u->password, NULL, s_on_update_hashed);
        return;
    }
    else {
        s_save (self, job, NULL);
        return;
    }
    s_job_destroy (&job);
}

static void
s_on_removed (void *state, vw_actor_t *actor, void *arg, vw_msg_t *reply, const char *why)
{
    self_t *self = (self_t *) state;
    s_job_t *job = (s_job_t *) arg;
    if (reply && reply->id == VW_MSG_ID_reply &&
        (reply->reply.status == 204 || reply->reply.status == 404))
        s_forget_user (self, job->username);
    s_forward_reply (self, job, reply);
    s_job_destroy (&job);
}

static void
s_user_delete (self_t *self, vw_msg_t *msg)
{
    s_job_t *job = s_job_new (msg, msg->user_delete.username, NULL);
    s_user_t *user = s_user_or_reply (self, job);
    if (user && s_last_admin (self, user, true))
        s_reply_error (self, job, 409, "conflict",
                       "this would leave no enabled admin: make another admin first");
    else if (user) {
        vw_msg_t *remove = vw_msg_new (VW_MSG_ID_user_remove);
        vw_msg_set_str (&remove->user_remove.username, job->username);
        if (vw_pending_request (self->pending, "store", &remove, S_STORE_TIMEOUT_MS, s_on_removed,
                                job)) {
            vw_msg_destroy (&remove);
            s_on_removed (self, self->actor, job, NULL, "store unreachable");
        }
        return;
    }
    s_job_destroy (&job);
}

//  POST /auth/logout: the jti is denied until the token's exp.
typedef struct {
    s_job_t *job;
    char jti[80];
    int64_t exp;
} s_revoke_t;

static void
s_on_denied (void *state, vw_actor_t *actor, void *arg, vw_msg_t *reply, const char *why)
{
    self_t *self = (self_t *) state;
    s_revoke_t *revoke = (s_revoke_t *) arg;
    s_job_t *job = revoke->job;
    if (reply && reply->id == VW_MSG_ID_reply && reply->reply.status == 204) {
        int64_t *exp = (int64_t *) zmalloc (sizeof (int64_t));
        *exp = revoke->exp;
        zhashx_update (self->denied, revoke->jti, exp);
        s_push (self, NULL, NULL, revoke->jti, revoke->exp);
        s_reply_json (self, job, 204, NULL);
    }
    else if (reply && reply->id == VW_MSG_ID_reply)
        s_reply_error (self, job, (int) reply->reply.status,
                       reply->reply.code ? reply->reply.code : "internal",
                       reply->reply.message ? reply->reply.message : "cannot log out");
    else
        s_reply_error (self, job, 503, "unavailable", "the store did not answer");
    s_job_destroy (&job);
    free (revoke);
}

static void
s_token_revoke (self_t *self, vw_msg_t *msg)
{
    const vw_token_revoke_msg_t *r = &msg->token_revoke;
    s_job_t *job = s_job_new (msg, r->username, NULL);
    if (!s_user_or_reply (self, job))
        s_job_destroy (&job);
    else if (!r->jti || !*r->jti) {
        //  A token without a jti cannot be told from its siblings: end them
        //  all (a new generation).
        job->logout = true;
        s_save (self, job, NULL);
    }
    else if (strlen (r->jti) >= sizeof ((s_revoke_t *) 0)->jti) {
        s_reply_error (self, job, 400, "bad_request", "the token's jti is too long");
        s_job_destroy (&job);
    }
    else {
        s_revoke_t *revoke = (s_revoke_t *) zmalloc (sizeof (s_revoke_t));
        revoke->job = job;
        snprintf (revoke->jti, sizeof revoke->jti, "%s", r->jti);
        revoke->exp = r->exp;
        vw_msg_t *deny = vw_msg_new (VW_MSG_ID_token_deny);
        vw_msg_set_str (&deny->token_deny.jti, r->jti);
        vw_msg_set_str (&deny->token_deny.username, r->username);
        deny->token_deny.exp = r->exp;
        if (vw_pending_request (self->pending, "store", &deny, S_STORE_TIMEOUT_MS, s_on_denied,
                                revoke)) {
            vw_msg_destroy (&deny);
            s_on_denied (self, self->actor, revoke, NULL, "store unreachable");
        }
    }
}

//  The admin socket's tokens.issue: the subject must be a live, enabled
//  user, the role at most theirs; the answer is the generation to sign.
static int
s_role_rank (const char *role)
{
    return !strcmp (role, "admin") ? 3 : !strcmp (role, "operator") ? 2 : 1;
}

static void
s_token_grant (self_t *self, vw_msg_t *msg)
{
    const vw_token_grant_msg_t *g = &msg->token_grant;
    s_job_t *job = s_job_new (msg, g->username, NULL);
    s_user_t *user = s_user_or_reply (self, job);
    if (!user)
        ;
    else if (user->disabled)
        s_reply_error (self, job, 409, "conflict", "the user is disabled");
    else if (g->role && !s_valid_role (g->role))
        s_reply_error (self, job, 400, "bad_request",
                       "field 'role' must be one of admin, operator, viewer");
    else if (g->role && s_role_rank (g->role) > s_role_rank (user->role))
        s_reply_error (self, job, 403, "forbidden", "the role is above the user's");
    else
        s_reply_json (self, job, 200,
                      json_pack ("{s:s, s:s, s:I}", "username", job->username, "role",
                                 g->role ? g->role : user->role, "gen", (json_int_t) user->gen));
    s_job_destroy (&job);
}

static void *
s_create (vw_actor_t *actor, void *args)
{
    self_t *self = (self_t *) zmalloc (sizeof (self_t));
    self->config = (const vw_config_t *) args;
    self->actor = actor;
    self->pending = vw_pending_new (actor, self);
    self->jobs = zhashx_new ();
    vw_keys_int64 (self->jobs);
    self->hasher = zactor_new (s_hasher, NULL);
    vw_actor_watch (actor, zactor_sock (self->hasher), s_on_hasher);
    self->users = zhashx_new ();
    zhashx_set_destructor (self->users, s_free);
    self->denied = zhashx_new ();
    zhashx_set_destructor (self->denied, s_free);
    self->edges = zhashx_new ();
    self->syncs = zlistx_new ();
    zlistx_set_destructor (self->syncs, (czmq_destructor *) vw_msg_destroy);
    //  The answer arrives once the loop runs (and tells a first start).
    s_load (self);
    return self;
}

static void
s_destroy (void **state_p)
{
    self_t *self = (self_t *) *state_p;
    if (self) {
        vw_pending_destroy (&self->pending);
        zactor_destroy (&self->hasher);
        //  Jobs the hasher never answered: their clients see a timeout.
        for (s_job_t *job = (s_job_t *) zhashx_first (self->jobs); job;
             job = (s_job_t *) zhashx_next (self->jobs))
            s_job_destroy (&job);
        zhashx_destroy (&self->jobs);
        zhashx_destroy (&self->users);
        zhashx_destroy (&self->denied);
        zhashx_destroy (&self->edges);
        zlistx_destroy (&self->syncs);
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
    if (msg->id == VW_MSG_ID_user_create)
        s_user_create (self, msg);
    else if (msg->id == VW_MSG_ID_login)
        s_login (self, msg);
    else if (msg->id == VW_MSG_ID_user_list)
        s_user_list (self, msg);
    else if (msg->id == VW_MSG_ID_user_show)
        s_user_show (self, msg);
    else if (msg->id == VW_MSG_ID_user_update)
        s_user_update (self, msg);
    else if (msg->id == VW_MSG_ID_user_delete)
        s_user_delete (self, msg);
    else if (msg->id == VW_MSG_ID_token_revoke)
        s_token_revoke (self, msg);
    else if (msg->id == VW_MSG_ID_token_grant)
        s_token_grant (self, msg);
    else if (msg->id == VW_MSG_ID_token_sync)
        s_token_sync (self, msg);
    else
        vw_warn ("auth", "unexpected '%s' from '%s' ignored", vw_msg_name (msg->id), msg->peer);
}

const vw_actor_class_t vw_auth_class = {
    .name = "auth",
    .create = s_create,
    .destroy = s_destroy,
    .handle = s_handle,
};
