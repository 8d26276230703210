/*  vw_auth - the auth actor: password hashing and checking, off every other
    thread's path.

    Argon2id (libsodium crypto_pwhash, "interactive" limits) costs tens of
    milliseconds and 64 MiB per call on purpose. Done in the edge it would
    stall every agent and API connection; done in the store it would stall
    every write. Here it stalls only other logins, which the edge rate-limits.

    user_create: validate, hash, then the store inserts (reply 201/409).
    First start: right after start-up, auth asks the store how many users
    exist; with none it creates `admin` with VIWORKS_ADMIN_PASSWORD or a
    generated password logged once. Hashing here keeps it off the start-up
    path (the backend answers /health before the admin exists).
    login: the store returns the user's hash; a password for an unknown or
    disabled user is still checked against a dummy hash so the answer takes
    the same time either way (no user enumeration by timing).
*/
#include "vw_actors.h"
#include "vw_log.h"
#include "vw_pending.h"

#include <jansson.h>
#include <sodium.h>
#include <string.h>

#define S_STORE_TIMEOUT_MS 5000

typedef struct {
    const vw_config_t *config;
    vw_actor_t *actor;
    vw_pending_t *pending;
    char dummy_hash[crypto_pwhash_STRBYTES];  //  made on first need
    char generated[32];                       //  first start's password, until logged
} self_t;

//  The original request, kept while the store answers.
typedef struct {
    char peer[VW_ADDR_MAX];
    uint64_t rid;
    char *password;  //  login only; wiped before free
} s_ctx_t;

static s_ctx_t *
s_ctx_new (const vw_msg_t *request, const char *password)
{
    s_ctx_t *ctx = (s_ctx_t *) zmalloc (sizeof (s_ctx_t));
    memcpy (ctx->peer, request->peer, sizeof ctx->peer);
    ctx->rid = request->rid;
    ctx->password = password ? strdup (password) : NULL;
    return ctx;
}

static void
s_ctx_destroy (s_ctx_t **ctx_p)
{
    s_ctx_t *ctx = *ctx_p;
    if (ctx->password) {
        sodium_memzero (ctx->password, strlen (ctx->password));
        free (ctx->password);
    }
    free (ctx);
    *ctx_p = NULL;
}

static void
s_send_to (self_t *self, s_ctx_t *ctx, vw_msg_t **msg_p)
{
    (*msg_p)->rid = ctx->rid;
    if (vw_actor_send (self->actor, ctx->peer, msg_p))
        vw_msg_destroy (msg_p);
}

static void
s_reply_error (self_t *self, s_ctx_t *ctx, int status, const char *code, const char *message)
{
    vw_msg_t *reply = vw_msg_new (VW_MSG_ID_reply);
    reply->reply.status = status;
    vw_msg_set_str (&reply->reply.code, code);
    vw_msg_set_str (&reply->reply.message, message);
    s_send_to (self, ctx, &reply);
}

static bool
s_valid_username (const char *name)
{
    size_t len = name ? strlen (name) : 0;
    return len >= 1 && len <= 64 &&
           strspn (name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@-") ==
               len;
}

static void
s_on_inserted (void *state, vw_actor_t *actor, void *arg, vw_msg_t *reply, const char *why)
{
    self_t *self = (self_t *) state;
    s_ctx_t *ctx = (s_ctx_t *) arg;
    if (reply && reply->id == VW_MSG_ID_reply) {
        vw_msg_t *forward = vw_msg_new (VW_MSG_ID_reply);
        forward->reply = reply->reply;  //  take the strings over
        memset (&reply->reply, 0, sizeof reply->reply);
        s_send_to (self, ctx, &forward);
    }
    else
        s_reply_error (self, ctx, 503, "unavailable", "the store did not answer");
    s_ctx_destroy (&ctx);
}

static void
s_user_create (self_t *self, vw_msg_t *msg)
{
    s_ctx_t *ctx = s_ctx_new (msg, NULL);
    const vw_user_create_msg_t *u = &msg->user_create;
    size_t plen = u->password ? strlen (u->password) : 0;
    if (!s_valid_username (u->username))
        s_reply_error (self, ctx, 400, "bad_request",
                       "field 'username' must be 1-64 characters of A-Z a-z 0-9 _ . @ -");
    else if (plen < 8 || plen > 1024)
        s_reply_error (self, ctx, 400, "bad_request",
                       "field 'password' must be 8 to 1024 characters");
    else if (!u->role || (strcmp (u->role, "admin") && strcmp (u->role, "operator") &&
                          strcmp (u->role, "viewer")))
        s_reply_error (self, ctx, 400, "bad_request",
                       "field 'role' must be one of admin, operator, viewer");
    else {
        char hash[crypto_pwhash_STRBYTES];
        if (crypto_pwhash_str (hash, u->password, plen, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                               crypto_pwhash_MEMLIMIT_INTERACTIVE))
            s_reply_error (self, ctx, 503, "unavailable", "out of memory hashing the password");
        else {
            vw_msg_t *insert = vw_msg_new (VW_MSG_ID_user_insert);
            vw_msg_set_str (&insert->user_insert.username, u->username);
            vw_msg_set_str (&insert->user_insert.password_hash, hash);
            vw_msg_set_str (&insert->user_insert.role, u->role);
            if (vw_pending_request (self->pending, "store", &insert, S_STORE_TIMEOUT_MS,
                                    s_on_inserted, ctx) == 0)
                return;  //  ctx now belongs to the pending request
            vw_msg_destroy (&insert);
            s_reply_error (self, ctx, 503, "unavailable", "the store is not reachable");
        }
    }
    s_ctx_destroy (&ctx);
}

static void
s_on_user_record (void *state, vw_actor_t *actor, void *arg, vw_msg_t *reply, const char *why)
{
    self_t *self = (self_t *) state;
    s_ctx_t *ctx = (s_ctx_t *) arg;
    if (!reply || reply->id != VW_MSG_ID_user_record) {
        s_reply_error (self, ctx, 503, "unavailable", "the store did not answer");
        s_ctx_destroy (&ctx);
        return;
    }
    const vw_user_record_msg_t *user = &reply->user_record;
    bool usable = user->found && !user->disabled && user->password_hash;
    if (!usable && !*self->dummy_hash) {
        //  A hash of a random password nobody knows, for unknown users.
        uint8_t raw[24];
        randombytes_buf (raw, sizeof raw);
        if (crypto_pwhash_str (self->dummy_hash, (const char *) raw, sizeof raw,
                               crypto_pwhash_OPSLIMIT_INTERACTIVE,
                               crypto_pwhash_MEMLIMIT_INTERACTIVE))
            *self->dummy_hash = 0;
    }
    const char *hash = usable ? user->password_hash : self->dummy_hash;
    bool ok = *hash && crypto_pwhash_str_verify (hash, ctx->password, strlen (ctx->password)) == 0;
    vw_msg_t *result = vw_msg_new (VW_MSG_ID_login_result);
    result->login_result.ok = ok && usable;
    vw_msg_set_str (&result->login_result.username, user->username);
    if (ok && usable)
        vw_msg_set_str (&result->login_result.role, user->role);
    s_send_to (self, ctx, &result);
    s_ctx_destroy (&ctx);
}

static void
s_login (self_t *self, vw_msg_t *msg)
{
    const char *password = msg->login.password ? msg->login.password : "";
    s_ctx_t *ctx = s_ctx_new (msg, password);
    vw_msg_t *get = vw_msg_new (VW_MSG_ID_user_get);
    vw_msg_set_str (&get->user_get.username, msg->login.username ? msg->login.username : "");
    if (vw_pending_request (self->pending, "store", &get, S_STORE_TIMEOUT_MS, s_on_user_record,
                            ctx)) {
        vw_msg_destroy (&get);
        s_reply_error (self, ctx, 503, "unavailable", "the store is not reachable");
        s_ctx_destroy (&ctx);
    }
}

static void
s_on_admin_created (void *state, vw_actor_t *actor, void *ctx, vw_msg_t *reply, const char *why)
{
    self_t *self = (self_t *) state;
    bool ok = reply && reply->id == VW_MSG_ID_reply && reply->reply.status == 201;
    if (!ok)
        vw_error ("auth", "cannot create the first admin user: %s",
                  reply && reply->id == VW_MSG_ID_reply && reply->reply.message
                      ? reply->reply.message
                      : (why ? why : "no answer"));
    else if (*self->generated)
        vw_warn ("auth",
                 "created user 'admin' with generated password '%s' (shown once; set "
                 "VIWORKS_ADMIN_PASSWORD to choose it)",
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
    char hash[crypto_pwhash_STRBYTES];
    if (crypto_pwhash_str (hash, password, strlen (password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                           crypto_pwhash_MEMLIMIT_INTERACTIVE)) {
        vw_error ("auth", "cannot hash the admin password (out of memory)");
        return;
    }
    vw_msg_t *insert = vw_msg_new (VW_MSG_ID_user_insert);
    vw_msg_set_str (&insert->user_insert.username, "admin");
    vw_msg_set_str (&insert->user_insert.password_hash, hash);
    vw_msg_set_str (&insert->user_insert.role, "admin");
    if (vw_pending_request (self->pending, "store", &insert, S_STORE_TIMEOUT_MS, s_on_admin_created,
                            NULL))
        vw_msg_destroy (&insert);
}

static void *
s_create (vw_actor_t *actor, void *args)
{
    self_t *self = (self_t *) zmalloc (sizeof (self_t));
    self->config = (const vw_config_t *) args;
    self->actor = actor;
    self->pending = vw_pending_new (actor, self);
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
