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
    First start: right after start-up, auth asks the store how many users
    exist; with none it creates `admin` with VIWORKS_ADMIN_PASSWORD or a
    generated password logged once.
*/
#include "vw_actors.h"
#include "vw_keys.h"
#include "vw_lifecycle.h"
#include "vw_log.h"
#include "vw_pending.h"

#include <jansson.h>
#include <sodium.h>
#include <string.h>

#define S_STORE_TIMEOUT_MS 5000

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
};

struct self_t {
    const vw_config_t *config;
    vw_actor_t *actor;
    vw_pending_t *pending;
    zactor_t *hasher;
    zhashx_t *jobs;  //  job id -> s_job_t (owned), while the hasher works
    int64_t next_job;
    char generated[32];  //  first start's password, until logged
};

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

static bool
s_valid_username (const char *name)
{
    size_t len = name ? strlen (name) : 0;
    return len >= 1 && len <= 64 &&
           strspn (name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@-") ==
               len;
}

//  user_create: validate -> hash -> store insert -> forward its reply.

static void
s_on_inserted (void *state, vw_actor_t *actor, void *arg, vw_msg_t *reply, const char *why)
{
    self_t *self = (self_t *) state;
    s_job_t *job = (s_job_t *) arg;
    if (reply && reply->id == VW_MSG_ID_reply) {
        vw_msg_t *forward = vw_msg_new (VW_MSG_ID_reply);
        forward->reply = reply->reply;  //  take the strings over
        memset (&reply->reply, 0, sizeof reply->reply);
        s_send_to (self, job, &forward);
    }
    else
        s_reply_error (self, job, 503, "unavailable", "the store did not answer");
    s_job_destroy (&job);
}

static void
s_insert_user (self_t *self, s_job_t *job, const char *hash, vw_pending_fn *fn)
{
    vw_msg_t *insert = vw_msg_new (VW_MSG_ID_user_insert);
    vw_msg_set_str (&insert->user_insert.username, job->username);
    vw_msg_set_str (&insert->user_insert.password_hash, hash);
    vw_msg_set_str (&insert->user_insert.role, job->role);
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
    if (!s_valid_username (u->username))
        s_reply_error (self, job, 400, "bad_request",
                       "field 'username' must be 1-64 characters of A-Z a-z 0-9 _ . @ -");
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
    if (ok && job->role)
        vw_msg_set_str (&result->login_result.role, job->role);
    s_send_to (self, job, &result);
    s_job_destroy (&job);
}

typedef struct {
    s_job_t *job;
    char *password;
} s_login_t;

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
        bool usable = user->found && !user->disabled && user->password_hash;
        //  The role is kept only for a usable user; an empty hash makes the
        //  hasher check against its dummy, which takes as long and fails.
        if (usable)
            job->role = strdup (user->role ? user->role : "viewer");
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

static void
s_on_user_count (void *state, vw_actor_t *actor, void *ctx, vw_msg_t *reply, const char *why)
{
    self_t *self = (self_t *) state;
    json_t *body = reply && reply->id == VW_MSG_ID_reply && reply->reply.json
                       ? json_loads (reply->reply.json, 0, NULL)
                       : NULL;
    json_t *users = json_object_get (body, "users");
    bool empty = json_is_integer (users) && json_integer_value (users) == 0;
    if (!json_is_integer (users))
        vw_error ("auth", "cannot count users: %s", why ? why : "bad answer");
    json_decref (body);
    if (!empty)
        return;
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
    //  First start? The answer arrives once the loop runs.
    vw_msg_t *count = vw_msg_new (VW_MSG_ID_user_count);
    count->user_count.all = true;
    if (vw_pending_request (self->pending, "store", &count, S_STORE_TIMEOUT_MS, s_on_user_count,
                            NULL))
        vw_msg_destroy (&count);
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
    else
        vw_warn ("auth", "unexpected '%s' from '%s' ignored", vw_msg_name (msg->id), msg->peer);
}

const vw_actor_class_t vw_auth_class = {
    .name = "auth",
    .create = s_create,
    .destroy = s_destroy,
    .handle = s_handle,
};
