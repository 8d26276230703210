/*  vw_tokens - see vw_tokens.h. The second half is the edge's side of the
    protocol with the auth actor: ask for the whole table at start (and
    again every S_RESYNC_MS, in case the auth actor restarted and forgot
    this edge), retry while nobody answers, merge the pushes. */
#include "vw_tokens.h"
#include "vw_clock.h"
#include "vw_edge_int.h"
#include "vw_log.h"

#include <jansson.h>
#include <string.h>

#define S_RETRY_MS  500
#define S_RESYNC_MS 60000

typedef struct {
    int64_t gen;
    int rank;  //  1 viewer, 2 operator, 3 admin
    bool disabled;
} s_user_t;

struct vw_tokens_t {
    zhashx_t *users;   //  name -> s_user_t
    zhashx_t *denied;  //  jti -> int64_t exp
    bool ready;
};

static int
s_rank (const char *role)
{
    return !role                        ? 0
           : !strcmp (role, "admin")    ? 3
           : !strcmp (role, "operator") ? 2
           : !strcmp (role, "viewer")   ? 1
                                        : 0;
}

static void
s_free (void **item)
{
    free (*item);
    *item = NULL;
}

vw_tokens_t *
vw_tokens_new (void)
{
    vw_tokens_t *self = (vw_tokens_t *) zmalloc (sizeof (vw_tokens_t));
    self->users = zhashx_new ();
    zhashx_set_destructor (self->users, s_free);
    self->denied = zhashx_new ();
    zhashx_set_destructor (self->denied, s_free);
    return self;
}

void
vw_tokens_destroy (vw_tokens_t **self_p)
{
    vw_tokens_t *self = *self_p;
    if (self) {
        zhashx_destroy (&self->users);
        zhashx_destroy (&self->denied);
        free (self);
    }
    *self_p = NULL;
}

static json_t *
s_object (const char *text, bool *bad)
{
    if (!text)
        return NULL;
    json_t *json = json_loads (text, 0, NULL);
    if (!json_is_object (json)) {
        json_decref (json);
        *bad = true;
        return NULL;
    }
    return json;
}

int
vw_tokens_apply (vw_tokens_t *self, bool full, const char *users, const char *denied, int64_t now_s)
{
    bool bad = false;
    json_t *u = s_object (users, &bad);
    json_t *d = s_object (denied, &bad);
    if (bad) {
        json_decref (u);
        json_decref (d);
        return -1;
    }
    if (full) {
        zhashx_purge (self->users);
        zhashx_purge (self->denied);
        self->ready = true;
    }
    const char *key;
    json_t *value;
    json_object_foreach (u, key, value)
    {
        if (json_is_null (value)) {
            zhashx_delete (self->users, key);
            continue;
        }
        json_t *gen = json_array_get (value, 0);
        int rank = s_rank (json_string_value (json_array_get (value, 1)));
        json_t *disabled = json_array_get (value, 2);
        if (!json_is_integer (gen) || !rank || !json_is_boolean (disabled))
            continue;
        s_user_t *user = (s_user_t *) zmalloc (sizeof (s_user_t));
        user->gen = json_integer_value (gen);
        user->rank = rank;
        user->disabled = json_is_true (disabled);
        zhashx_update (self->users, key, user);
    }
    json_object_foreach (d, key, value)
    {
        if (!json_is_integer (value) || json_integer_value (value) <= now_s)
            continue;
        int64_t *exp = (int64_t *) zmalloc (sizeof (int64_t));
        *exp = json_integer_value (value);
        zhashx_update (self->denied, key, exp);
    }
    json_decref (u);
    json_decref (d);
    return 0;
}

bool
vw_tokens_ready (vw_tokens_t *self)
{
    return self->ready;
}

vw_tokens_verdict_t
vw_tokens_check (vw_tokens_t *self, const vw_jwt_claims_t *claims)
{
    if (!self->ready)
        return VW_TOKENS_NOT_READY;
    const s_user_t *user = (const s_user_t *) zhashx_lookup (self->users, claims->sub);
    if (!user)
        return VW_TOKENS_NO_USER;
    if (user->disabled)
        return VW_TOKENS_DISABLED;
    //  A token without "gen" is generation 0: what users had before
    //  generations existed, never what a change draws.
    if ((claims->has_gen ? claims->gen : 0) != user->gen)
        return VW_TOKENS_STALE;
    if (*claims->jti && zhashx_lookup (self->denied, claims->jti))
        return VW_TOKENS_LOGGED_OUT;
    if (s_rank (claims->role) > user->rank)
        return VW_TOKENS_ROLE;
    return VW_TOKENS_OK;
}

const char *
vw_tokens_verdict_text (vw_tokens_verdict_t verdict)
{
    switch (verdict) {
        case VW_TOKENS_OK: return "token is valid";
        case VW_TOKENS_NOT_READY: return "the user table is not loaded yet";
        case VW_TOKENS_NO_USER: return "the token's user does not exist";
        case VW_TOKENS_DISABLED: return "the token's user is disabled";
        case VW_TOKENS_STALE:
            return "token was revoked (the user's password, role or account changed)";
        case VW_TOKENS_LOGGED_OUT: return "token was logged out";
        case VW_TOKENS_ROLE: return "token's role is above its user's";
    }
    return "token is refused";
}

size_t
vw_tokens_user_count (vw_tokens_t *self)
{
    return zhashx_size (self->users);
}

size_t
vw_tokens_denied_count (vw_tokens_t *self)
{
    return zhashx_size (self->denied);
}

//  --------------------------------------------------------------------------
//  The edge's side

static void s_sync (vw_edge_t *edge);

static void
s_on_timer (void *arg, uint64_t id)
{
    s_sync ((vw_edge_t *) arg);
}

static void
s_on_table (void *state, vw_actor_t *actor, void *ctx, vw_msg_t *reply, const char *why)
{
    vw_edge_t *edge = (vw_edge_t *) state;
    if (!edge->tokens || edge->stopping)
        return;
    bool ok = reply && reply->id == VW_MSG_ID_token_table;
    if (ok)
        vw_edge_on_token_table (edge, reply);
    else if (!vw_tokens_ready (edge->tokens))
        vw_debug (edge->cls.name, "no token table yet (%s): asking again", why ? why : "?");
    vw_timers_add (vw_actor_timers (edge->actor), ok ? S_RESYNC_MS : S_RETRY_MS, s_on_timer, edge);
}

static void
s_sync (vw_edge_t *edge)
{
    if (!edge->tokens || edge->stopping)
        return;
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_token_sync);
    msg->token_sync.full = true;
    if (vw_pending_request (edge->pending, "auth", &msg, 5000, s_on_table, NULL)) {
        vw_msg_destroy (&msg);
        vw_timers_add (vw_actor_timers (edge->actor), S_RETRY_MS, s_on_timer, edge);
    }
}

void
vw_edge_tokens_start (vw_edge_t *edge)
{
    edge->tokens = vw_tokens_new ();
    s_sync (edge);
}

void
vw_edge_on_token_table (vw_edge_t *edge, vw_msg_t *msg)
{
    const vw_token_table_msg_t *t = &msg->token_table;
    if (!edge->tokens)
        return;
    if (vw_tokens_apply (edge->tokens, t->full, t->users, t->denied, vw_clock_wall_ms () / 1000))
        vw_warn (edge->cls.name, "malformed token table from '%s' ignored", msg->peer);
}

void
vw_edge_tokens_catch_up (vw_edge_t *edge)
{
    //  A push may wait behind this request in the broker socket (a change
    //  made through the admin socket or another edge a moment ago, whose
    //  client already heard "done"): take it in before judging a token.
    if (zsock_events (vw_actor_sock (edge->actor)) & ZMQ_POLLIN)
        vw_actor_drain (edge->actor, 4096);
}
