/*  vw_registry - the registry actor: which agents exist, which are
    connected, in what status (SPEC §3, §4).

    It checks every hello (token digest, revocation, the optional Ed25519
    challenge), hands out sessions, replaces an older session of the same
    agent (4409), follows each session's frames through the status model of
    vw_agent_state with one timer per agent (no scans), and closes sessions
    that fall silent for three heartbeat intervals. Every status change is
    persisted through the store and published as an event.

    Memory holds the agents seen since start (credentials cached from the
    store on first hello) and drops an agent once it has been offline for
    registry.stale_after; the database keeps everything.

    Operator changes (revoke, maintenance) take effect here once the store
    has saved them, and a record read before such a change never undoes it:
    revoked is sticky, and the maintenance flag is taken from a record only
    while the registry knows none.
*/
#include "vw_actors.h"
#include "vw_agent_state.h"
#include "vw_clock.h"
#include "vw_keys.h"
#include "vw_log.h"
#include "vw_pending.h"
#include "vw_token.h"

#include <jansson.h>
#include <sodium.h>
#include <string.h>

#define S_STORE_TIMEOUT_MS 5000
#define S_NONCE_BYTES      32

typedef struct s_agent_t s_agent_t;

//  A hello waiting for credentials from the store or for a challenge answer.
typedef struct {
    int64_t conn;
    char edge[VW_ADDR_MAX];  //  the edge actor the hello came through
    char *agent_id, *token, *version, *hostname, *capabilities, *labels, *peer;
    uint8_t nonce[S_NONCE_BYTES];
    bool challenged;
} s_hello_t;

struct s_agent_t {
    void *owner;  //  the registry's self_t, for timer callbacks
    char *agent_id;
    bool loaded;  //  credentials came from the store
    bool revoked;
    uint8_t token_hash[32];
    bool has_token_hash;
    //  After a rotation: the token before it, until previous_until (ms).
    uint8_t previous_hash[32];
    bool has_previous;
    int64_t previous_until;
    bool token_known;  //  a rotation was applied here: records read before it do not undo it
    uint8_t public_key[32];
    bool has_public_key;
    vw_agent_state_t model;
    //  model.maintenance is the row's flag as the registry knows it: from
    //  the first record, then from each change the store saved. A record
    //  does not replace it once known: it may have been read before a
    //  change that was saved while it travelled.
    bool maintenance_known;
    vw_agent_status_t status;  //  last persisted and published
    char session_id[VW_ID_TEXT_LEN + 1];
    char *capabilities;      //  the session's hello capabilities (JSON array), NULL if none
    int64_t conn;            //  edge connection of the session, 0 if none
    char edge[VW_ADDR_MAX];  //  the edge actor holding it
    uint64_t timer;          //  next status deadline
    uint64_t stale_timer;    //  drop from memory after stale_after offline
    //  The rest of the agent object, so that GET /agents/{id} of an agent
    //  held here is answered from memory, with the live fields as they are
    //  now: taken from the first record, then kept as every write this
    //  registry sends to the store changes the row (s_persist). The JSON
    //  texts of hostname, version, labels, reported_labels and the stored
    //  capabilities, as one block of NUL-terminated pieces (S_TEXT_*);
    //  times in ms since the epoch, 0 for never.
    char *texts;
    int64_t created_at, connected_at, last_seen;
    int64_t connect_count, disconnect_count;
};

enum { S_TEXT_HOSTNAME, S_TEXT_VERSION, S_TEXT_LABELS, S_TEXT_REPORTED, S_TEXT_CAPS, S_TEXTS };

typedef struct {
    const vw_config_t *config;
    vw_actor_t *actor;
    vw_pending_t *pending;
    zhashx_t *agents;  //  agent_id -> s_agent_t
    zhashx_t *hellos;  //  conn (int64_t *) -> s_hello_t
    //  Agents heard from whose status did not change: agent_id -> last_seen
    //  (ms, as a pointer-sized integer), written in one batch per interval.
    zhashx_t *seen;
    uint64_t seen_timer;
    uint64_t connects, disconnects, rejects, seen_batches;
    uint64_t rejects_unauthorized;  //  of rejects: closed 4401 (the rest: 1013, try later)
} self_t;

//  --------------------------------------------------------------------------
//  Small helpers

static void
s_hello_destroy (s_hello_t **hello_p)
{
    s_hello_t *h = *hello_p;
    if (!h)
        return;
    if (h->token) {
        sodium_memzero (h->token, strlen (h->token));
        free (h->token);
    }
    free (h->agent_id);
    free (h->version);
    free (h->hostname);
    free (h->capabilities);
    free (h->labels);
    free (h->peer);
    free (h);
    *hello_p = NULL;
}

static void
s_hello_free (void **item)
{
    s_hello_destroy ((s_hello_t **) item);
}

static void
s_agent_free (void **item)
{
    s_agent_t *agent = (s_agent_t *) *item;
    if (agent) {
        free (agent->agent_id);
        free (agent->capabilities);
        free (agent->texts);
        free (agent);
    }
    *item = NULL;
}

//  The JSON text of a string, or "null" (also for one jansson refuses:
//  invalid UTF-8, as the store's object shows it).
static char *
s_json_string (const char *value)
{
    json_t *json = value ? json_string (value) : NULL;
    char *text = json ? json_dumps (json, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_decref (json);
    return text ? text : strdup ("null");
}

static const char *
s_text (const s_agent_t *agent, int which)
{
    const char *piece = agent->texts;
    for (int i = 0; i < which; i++)
        piece += strlen (piece) + 1;
    return piece;
}

//  Replaces the object's texts: hostname and version as plain strings,
//  the others as JSON texts. A NULL keeps the piece held (or its default
//  when none is), as the store's coalesce keeps a column.
static void
s_texts_set (s_agent_t *agent, const char *hostname, const char *version, const char *labels,
             const char *reported, const char *capabilities)
{
    static const char *const defaults[S_TEXTS] = {"null", "null", "{}", "{}", "[]"};
    char *host_json = hostname ? s_json_string (hostname) : NULL;
    char *version_json = version ? s_json_string (version) : NULL;
    const char *pieces[S_TEXTS] = {host_json, version_json, labels, reported, capabilities};
    const char *use[S_TEXTS];
    size_t size = 0;
    for (int i = 0; i < S_TEXTS; i++) {
        use[i] = pieces[i] ? pieces[i] : agent->texts ? s_text (agent, i) : defaults[i];
        size += strlen (use[i]) + 1;
    }
    char *texts = (char *) malloc (size), *at = texts;
    for (int i = 0; i < S_TEXTS; i++) {
        size_t len = strlen (use[i]) + 1;
        memcpy (at, use[i], len);
        at += len;
    }
    free (host_json);
    free (version_json);
    free (agent->texts);
    agent->texts = texts;
}

static void
s_send (self_t *self, const char *to, vw_msg_t **msg_p)
{
    if (vw_actor_send (self->actor, to, msg_p))
        vw_msg_destroy (msg_p);
}

static void
s_publish (self_t *self, const char *topic, json_t *event)
{
    json_object_set_new (event, "ts", json_integer (vw_clock_wall_ms ()));
    char *text = json_dumps (event, JSON_COMPACT);
    json_decref (event);
    if (text)
        vw_actor_publish (self->actor, topic, text);
    free (text);
}

static void
s_kick_at (self_t *self, const char *edge, int64_t conn, const char *session_id, int code,
           const char *reason)
{
    vw_msg_t *kick = vw_msg_new (VW_MSG_ID_session_kick);
    kick->session_kick.conn = conn;
    vw_msg_set_str (&kick->session_kick.session_id, session_id);
    kick->session_kick.close_code = code;
    vw_msg_set_str (&kick->session_kick.reason, reason);
    s_send (self, edge, &kick);
}

//  Closes the agent's session on the edge holding it.
static void
s_kick (self_t *self, s_agent_t *agent, int code, const char *reason)
{
    s_kick_at (self, agent->edge, agent->conn, agent->session_id, code, reason);
}

static void
s_reject (self_t *self, s_hello_t *hello, int close_code, const char *code, const char *message)
{
    self->rejects++;
    if (close_code == 4401)
        self->rejects_unauthorized++;
    vw_info ("registry", "hello from '%s' at %s refused: %s", hello->agent_id,
             hello->peer ? hello->peer : "?", message);
    vw_msg_t *reject = vw_msg_new (VW_MSG_ID_session_reject);
    reject->session_reject.conn = hello->conn;
    reject->session_reject.close_code = close_code;
    vw_msg_set_str (&reject->session_reject.code, code);
    vw_msg_set_str (&reject->session_reject.message, message);
    s_send (self, hello->edge, &reject);
}

//  --------------------------------------------------------------------------
//  Status

static void s_on_deadline (void *arg, uint64_t id);

static void
s_persist (self_t *self, s_agent_t *agent, const char *event, const s_hello_t *hello)
{
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_agent_state);
    vw_agent_state_msg_t *s = &msg->agent_state;
    vw_msg_set_str (&s->agent_id, agent->agent_id);
    vw_msg_set_str (&s->event, event);
    vw_msg_set_str (&s->status, vw_agent_status_name (agent->status));
    s->last_seen = vw_clock_wall_ms ();
    if (agent->conn)
        vw_msg_set_str (&s->session_id, agent->session_id);
    if (hello) {
        s->connected_at = s->last_seen;
        vw_msg_set_str (&s->hostname, hello->hostname);
        vw_msg_set_str (&s->version, hello->version);
        vw_msg_set_str (&s->reported_labels, hello->labels);
        vw_msg_set_str (&s->capabilities, hello->capabilities);
    }
    //  The object in memory changes as the row will (vw_agents_apply_state).
    if (agent->last_seen < s->last_seen)
        agent->last_seen = s->last_seen;
    if (hello) {
        agent->connected_at = s->connected_at;
        agent->connect_count++;
        s_texts_set (agent, hello->hostname, hello->version, NULL,
                     hello->labels ? hello->labels : "{}", hello->capabilities);
    }
    else if (streq (event, "disconnect"))
        agent->disconnect_count++;
    s_send (self, "store", &msg);
}

//  Tells the scheduler whether the agent takes commands now (online or
//  degraded, not in maintenance), on which connection, and which command
//  types the session said it takes (the registry owns sessions: the
//  scheduler learns capabilities only from here).
static void
s_presence (self_t *self, s_agent_t *agent, bool revoked)
{
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_agent_presence);
    vw_msg_set_str (&msg->agent_presence.agent_id, agent->agent_id);
    msg->agent_presence.conn = agent->conn;
    if (agent->conn) {
        vw_msg_set_str (&msg->agent_presence.capabilities, agent->capabilities);
        vw_msg_set_str (&msg->agent_presence.edge, agent->edge);
    }
    msg->agent_presence.dispatchable =
        agent->conn && (agent->status == VW_AGENT_ONLINE || agent->status == VW_AGENT_DEGRADED);
    msg->agent_presence.revoked = revoked;
    s_send (self, "scheduler", &msg);
}

//  Re-evaluates the status; persists and publishes a change; re-arms the
//  agent's deadline timer.
static void
s_evaluate (self_t *self, s_agent_t *agent)
{
    int64_t now = vw_clock_mono_ms ();
    int64_t next = -1;
    vw_agent_status_t status = vw_agent_state_eval (&agent->model, now, &next);
    if (status != agent->status && agent->conn) {
        vw_agent_status_t previous = agent->status;
        agent->status = status;
        s_persist (self, agent, "status", NULL);
        s_presence (self, agent, false);
        s_publish (self, "agent.status",
                   json_pack ("{s:s, s:s, s:s}", "agent_id", agent->agent_id, "status",
                              vw_agent_status_name (status), "previous",
                              vw_agent_status_name (previous)));
    }
    if (agent->timer)
        vw_timers_cancel (vw_actor_timers (self->actor), agent->timer);
    agent->timer =
        next >= 0 ? vw_timers_add_at (vw_actor_timers (self->actor), next, s_on_deadline, agent)
                  : 0;
}

static void s_go_offline (self_t *self, s_agent_t *agent, const char *reason);

static void
s_on_deadline (void *arg, uint64_t id)
{
    s_agent_t *agent = (s_agent_t *) arg;
    self_t *self = (self_t *) agent->owner;
    agent->timer = 0;
    if (vw_agent_state_timed_out (&agent->model, vw_clock_mono_ms ())) {
        vw_info ("registry", "agent '%s' silent for 3 heartbeat intervals: closing its session",
                 agent->agent_id);
        s_kick (self, agent, 4408, "heartbeat timeout");
        s_go_offline (self, agent, "heartbeat_timeout");
    }
    else
        s_evaluate (self, agent);
}

static void
s_on_stale (void *arg, uint64_t id)
{
    s_agent_t *agent = (s_agent_t *) arg;
    self_t *self = (self_t *) agent->owner;
    agent->stale_timer = 0;
    if (agent->conn)
        return;
    vw_debug ("registry", "agent '%s' offline for longer than stale_after: dropped from memory",
              agent->agent_id);
    zhashx_delete (self->agents, agent->agent_id);
}

static void
s_go_offline (self_t *self, s_agent_t *agent, const char *reason)
{
    if (!agent->conn)
        return;
    vw_agent_state_disconnect (&agent->model);
    agent->status = VW_AGENT_OFFLINE;
    agent->conn = 0;
    self->disconnects++;
    s_persist (self, agent, "disconnect", NULL);
    s_presence (self, agent, false);
    s_publish (self, "agent.offline",
               json_pack ("{s:s, s:s, s:s}", "agent_id", agent->agent_id, "session_id",
                          agent->session_id, "reason", reason));
    agent->session_id[0] = 0;
    if (agent->timer)
        vw_timers_cancel (vw_actor_timers (self->actor), agent->timer);
    agent->timer = 0;
    if (agent->stale_timer)
        vw_timers_cancel (vw_actor_timers (self->actor), agent->stale_timer);
    agent->stale_timer = vw_timers_add (vw_actor_timers (self->actor), self->config->stale_after_ms,
                                        s_on_stale, agent);
}

//  --------------------------------------------------------------------------
//  Hello -> (credentials) -> (challenge) -> welcome

static s_agent_t *
s_agent_get (self_t *self, const char *agent_id, bool create)
{
    s_agent_t *agent = (s_agent_t *) zhashx_lookup (self->agents, agent_id);
    if (!agent && create) {
        agent = (s_agent_t *) zmalloc (sizeof (s_agent_t));
        agent->owner = self;
        agent->agent_id = strdup (agent_id);
        zhashx_insert (self->agents, agent_id, agent);
    }
    return agent;
}

static void
s_welcome (self_t *self, s_agent_t *agent, s_hello_t *hello)
{
    if (agent->conn) {
        //  A newer connection replaces the session (SPEC §3).
        vw_info ("registry", "agent '%s' reconnected: replacing session %s", agent->agent_id,
                 agent->session_id);
        s_kick (self, agent, 4409, "replaced by a newer connection");
        s_go_offline (self, agent, "replaced");
    }
    if (agent->stale_timer)
        vw_timers_cancel (vw_actor_timers (self->actor), agent->stale_timer);
    agent->stale_timer = 0;
    vw_id_new (agent->session_id);
    agent->conn = hello->conn;
    memcpy (agent->edge, hello->edge, sizeof agent->edge);
    free (agent->capabilities);
    agent->capabilities = hello->capabilities ? strdup (hello->capabilities) : NULL;
    vw_agent_state_connect (&agent->model, vw_clock_mono_ms (),
                            self->config->heartbeat_interval_ms);
    agent->status = vw_agent_state_eval (&agent->model, vw_clock_mono_ms (), NULL);
    self->connects++;
    s_persist (self, agent, "connect", hello);

    //  The welcome goes before the scheduler hears of the session: a
    //  command it dispatches at once travels scheduler -> executor -> edge
    //  behind the welcome through the broker, and the edge only sends
    //  commands on a welcomed session (anything earlier would come back
    //  "undeliverable" and leave the agent waiting for its next status
    //  change). Batching sends a pass's messages per destination, in the
    //  order destinations were first used: flush here so the welcome is
    //  on its way before the presence is even queued.
    vw_msg_t *welcome = vw_msg_new (VW_MSG_ID_session_welcome);
    welcome->session_welcome.conn = hello->conn;
    vw_msg_set_str (&welcome->session_welcome.agent_id, agent->agent_id);
    vw_msg_set_str (&welcome->session_welcome.session_id, agent->session_id);
    welcome->session_welcome.heartbeat_interval_ms = self->config->heartbeat_interval_ms;
    s_send (self, hello->edge, &welcome);
    vw_actor_flush_sends (self->actor);
    s_presence (self, agent, false);
    vw_info ("registry", "agent '%s' online from %s (session %s)", agent->agent_id,
             hello->peer ? hello->peer : "?", agent->session_id);
    s_publish (self, "agent.online",
               json_pack ("{s:s, s:s, s:s}", "agent_id", agent->agent_id, "session_id",
                          agent->session_id, "status", vw_agent_status_name (agent->status)));
    s_evaluate (self, agent);
}

//  Checks a hello against cached credentials; answers, challenges or rejects.
//  Consumes the hello unless it waits for a challenge answer.
static void
s_check (self_t *self, s_agent_t *agent, int64_t conn)
{
    s_hello_t *hello = (s_hello_t *) zhashx_lookup (self->hellos, &conn);
    if (!hello)
        return;  //  the connection went away meanwhile
    if (!agent || !agent->loaded || agent->revoked) {
        s_reject (self, hello, 4401, "unauthorized", "unknown or revoked agent");
        zhashx_delete (self->hellos, &conn);
        return;
    }
    //  After a rotation the previous token works until its deadline or
    //  until the agent has used the new one, whichever comes first.
    bool current = !agent->has_token_hash || vw_token_verify (hello->token, agent->token_hash);
    bool previous = !current && agent->has_previous &&
                    vw_clock_wall_ms () < agent->previous_until &&
                    vw_token_verify (hello->token, agent->previous_hash);
    if (!current && !previous) {
        s_reject (self, hello, 4401, "unauthorized", "bad token");
        zhashx_delete (self->hellos, &conn);
        return;
    }
    if (previous)
        vw_info ("registry", "agent '%s' used its previous token (works until %lld)",
                 agent->agent_id, (long long) agent->previous_until);
    else if (agent->has_previous) {
        agent->has_previous = false;
        agent->token_known = true;
        vw_msg_t *settled = vw_msg_new (VW_MSG_ID_agent_token_settled);
        vw_msg_set_str (&settled->agent_token_settled.agent_id, agent->agent_id);
        s_send (self, "store", &settled);
        vw_info ("registry", "agent '%s' used its new token: the previous one stops",
                 agent->agent_id);
    }
    if (agent->has_public_key) {
        randombytes_buf (hello->nonce, sizeof hello->nonce);
        hello->challenged = true;
        char nonce[sodium_base64_ENCODED_LEN (S_NONCE_BYTES, sodium_base64_VARIANT_ORIGINAL)];
        sodium_bin2base64 (nonce, sizeof nonce, hello->nonce, sizeof hello->nonce,
                           sodium_base64_VARIANT_ORIGINAL);
        vw_msg_t *challenge = vw_msg_new (VW_MSG_ID_session_challenge);
        challenge->session_challenge.conn = conn;
        vw_msg_set_str (&challenge->session_challenge.nonce, nonce);
        s_send (self, hello->edge, &challenge);
        return;
    }
    s_welcome (self, agent, hello);
    zhashx_delete (self->hellos, &conn);
}

static s_agent_t *s_take_record (self_t *self, const char *agent_id,
                                 const vw_agent_record_msg_t *record);

static void
s_on_credentials (void *state, vw_actor_t *actor, void *ctx, vw_msg_t *reply, const char *why)
{
    self_t *self = (self_t *) state;
    int64_t conn = (int64_t) (intptr_t) ctx;
    s_hello_t *hello = (s_hello_t *) zhashx_lookup (self->hellos, &conn);
    if (!hello)
        return;
    if (!reply || reply->id != VW_MSG_ID_agent_record) {
        s_reject (self, hello, 1013, "unavailable", "credentials cannot be checked right now");
        zhashx_delete (self->hellos, &conn);
        return;
    }
    s_check (self, s_take_record (self, hello->agent_id, &reply->agent_record), conn);
}

//  The store's record of an agent into memory; NULL if there is no such
//  agent.
static s_agent_t *
s_take_record (self_t *self, const char *agent_id, const vw_agent_record_msg_t *record)
{
    s_agent_t *agent = NULL;
    if (record->found) {
        agent = s_agent_get (self, agent_id, true);
        if (!agent->loaded) {
            //  The first record fills the object; later ones may have been
            //  read before changes this registry has made since. (No texts
            //  are held yet: a column that is NULL gets the default.)
            s_texts_set (agent, record->hostname, record->version, record->labels,
                         record->reported_labels, record->capabilities);
            agent->created_at = record->created_at;
            agent->connected_at = record->connected_at;
            if (agent->last_seen < record->last_seen)
                agent->last_seen = record->last_seen;
            agent->connect_count = record->connect_count;
            agent->disconnect_count = record->disconnect_count;
        }
        agent->loaded = true;
        //  Sticky: a revoke this registry saw after the store read the
        //  record (the look-up was in flight) is not undone by it.
        agent->revoked = agent->revoked || record->revoked;
        //  Nor a maintenance change saved meanwhile: the record's flag only
        //  fills in one the registry does not know yet.
        if (!agent->maintenance_known) {
            agent->model.maintenance = record->maintenance;
            agent->maintenance_known = true;
        }
        if (!agent->token_known) {
            agent->has_token_hash = record->token_hash.size == 32;
            if (agent->has_token_hash)
                memcpy (agent->token_hash, record->token_hash.data, 32);
            agent->has_previous = record->previous_token_hash.size == 32;
            if (agent->has_previous)
                memcpy (agent->previous_hash, record->previous_token_hash.data, 32);
            agent->previous_until = record->previous_until;
        }
        agent->has_public_key = record->public_key.size == 32;
        if (agent->has_public_key)
            memcpy (agent->public_key, record->public_key.data, 32);
    }
    return agent;
}

static void
s_on_hello (self_t *self, vw_msg_t *msg)
{
    vw_session_hello_msg_t *h = &msg->session_hello;
    if (!h->agent_id)
        return;
    s_hello_t *hello = (s_hello_t *) zmalloc (sizeof (s_hello_t));
    hello->conn = h->conn;
    memcpy (hello->edge, msg->peer, sizeof hello->edge);
    //  Take the strings over from the message.
    hello->agent_id = h->agent_id, h->agent_id = NULL;
    hello->token = h->token, h->token = NULL;
    hello->version = h->version, h->version = NULL;
    hello->hostname = h->hostname, h->hostname = NULL;
    hello->capabilities = h->capabilities, h->capabilities = NULL;
    hello->labels = h->labels, h->labels = NULL;
    hello->peer = h->peer, h->peer = NULL;
    zhashx_update (self->hellos, &hello->conn, hello);

    s_agent_t *agent = s_agent_get (self, hello->agent_id, false);
    if (agent && agent->loaded) {
        s_check (self, agent, hello->conn);
        return;
    }
    vw_msg_t *lookup = vw_msg_new (VW_MSG_ID_agent_lookup);
    vw_msg_set_str (&lookup->agent_lookup.agent_id, hello->agent_id);
    if (vw_pending_request (self->pending, "store", &lookup, S_STORE_TIMEOUT_MS, s_on_credentials,
                            (void *) (intptr_t) hello->conn)) {
        vw_msg_destroy (&lookup);
        s_reject (self, hello, 1013, "unavailable", "credentials cannot be checked right now");
        zhashx_delete (self->hellos, &hello->conn);
    }
}

static void
s_on_auth (self_t *self, vw_msg_t *msg)
{
    int64_t conn = msg->session_auth.conn;
    s_hello_t *hello = (s_hello_t *) zhashx_lookup (self->hellos, &conn);
    if (!hello || !hello->challenged || !streq (hello->edge, msg->peer))
        return;
    s_agent_t *agent = s_agent_get (self, hello->agent_id, false);
    uint8_t signature[crypto_sign_BYTES];
    size_t siglen = 0;
    const char *b64 = msg->session_auth.signature ? msg->session_auth.signature : "";
    bool ok = agent && !agent->revoked && agent->has_public_key &&
              sodium_base642bin (signature, sizeof signature, b64, strlen (b64), NULL, &siglen,
                                 NULL, sodium_base64_VARIANT_ORIGINAL) == 0 &&
              siglen == sizeof signature;
    if (ok) {
        //  The agent signs nonce || agent_id.
        size_t idlen = strlen (hello->agent_id);
        uint8_t *signed_msg = (uint8_t *) malloc (S_NONCE_BYTES + idlen);
        memcpy (signed_msg, hello->nonce, S_NONCE_BYTES);
        memcpy (signed_msg + S_NONCE_BYTES, hello->agent_id, idlen);
        ok = crypto_sign_verify_detached (signature, signed_msg, S_NONCE_BYTES + idlen,
                                          agent->public_key) == 0;
        free (signed_msg);
    }
    if (ok)
        s_welcome (self, agent, hello);
    else
        s_reject (self, hello, 4401, "unauthorized", "bad signature");
    zhashx_delete (self->hellos, &conn);
}

//  One message for every agent heard from in the last interval: a fleet's
//  heartbeats cost one UPDATE each per interval in one transaction, not a
//  message and a write each as they come.
static void
s_on_seen_due (void *arg, uint64_t id)
{
    self_t *self = (self_t *) arg;
    self->seen_timer = 0;
    json_t *seen = json_array ();
    for (void *at = zhashx_first (self->seen); at; at = zhashx_next (self->seen))
        json_array_append_new (seen, json_pack ("[s, I]", (const char *) zhashx_cursor (self->seen),
                                                (json_int_t) (intptr_t) at));
    zhashx_purge (self->seen);
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_agents_seen);
    msg->agents_seen.seen = json_dumps (seen, JSON_COMPACT);
    json_decref (seen);
    self->seen_batches++;
    s_send (self, "store", &msg);
}

static void
s_on_seen (self_t *self, vw_msg_t *msg)
{
    const vw_session_seen_msg_t *seen = &msg->session_seen;
    s_agent_t *agent = seen->agent_id ? s_agent_get (self, seen->agent_id, false) : NULL;
    if (!agent || !agent->conn || !seen->session_id ||
        strcmp (agent->session_id, seen->session_id) != 0)
        return;  //  a stale session: ignore
    vw_agent_state_frame (&agent->model, vw_clock_mono_ms (), seen->status);
    vw_agent_status_t before = agent->status;
    s_evaluate (self, agent);
    //  Heartbeats carry last_seen to the database even without a change,
    //  batched: at most one interval late (status changes went out above).
    if (seen->status && agent->status == before) {
        agent->last_seen = vw_clock_wall_ms ();
        zhashx_update (self->seen, agent->agent_id, (void *) (intptr_t) agent->last_seen);
        if (!self->seen_timer)
            self->seen_timer =
                vw_timers_add (vw_actor_timers (self->actor), self->config->heartbeat_interval_ms,
                               s_on_seen_due, self);
    }
}

//  The telemetry actor's word: an alert rule that degrades fires for the
//  agent (or none does any more). Kept across its sessions while it is in
//  memory; the telemetry actor tells again when that changes.
static void
s_on_alerting (self_t *self, vw_msg_t *msg)
{
    const vw_agent_alerting_msg_t *a = &msg->agent_alerting;
    s_agent_t *agent = a->agent_id ? s_agent_get (self, a->agent_id, false) : NULL;
    if (!agent || agent->model.alerting == a->alerting)
        return;
    agent->model.alerting = a->alerting;
    if (agent->conn)
        s_evaluate (self, agent);
}

static void
s_on_closed (self_t *self, vw_msg_t *msg)
{
    const vw_session_closed_msg_t *closed = &msg->session_closed;
    int64_t conn = closed->conn;
    s_hello_t *hello = (s_hello_t *) zhashx_lookup (self->hellos, &conn);
    if (hello && streq (hello->edge, msg->peer))
        zhashx_delete (self->hellos, &conn);
    s_agent_t *agent = closed->agent_id ? s_agent_get (self, closed->agent_id, false) : NULL;
    if (agent && agent->conn == conn && streq (agent->edge, msg->peer) && closed->session_id &&
        strcmp (agent->session_id, closed->session_id) == 0) {
        vw_info ("registry", "agent '%s' disconnected", agent->agent_id);
        s_go_offline (self, agent, "disconnected");
    }
}

//  --------------------------------------------------------------------------
//  Edges in other processes. The broker says when one is gone (it left,
//  stopped answering heartbeats, or another process took its name): its
//  sessions are over, and their agents come back through any edge. An edge
//  that lost the core and finds it again tells every session it held
//  (session_resync): the registry takes back those it can.

static void
s_on_actor_lost (self_t *self, vw_msg_t *msg)
{
    const char *edge = msg->actor_lost.actor;
    if (!edge)
        return;
    zlistx_t *gone = zlistx_new ();
    for (s_agent_t *a = (s_agent_t *) zhashx_first (self->agents); a;
         a = (s_agent_t *) zhashx_next (self->agents))
        if (a->conn && streq (a->edge, edge))
            zlistx_add_end (gone, a);
    size_t sessions = zlistx_size (gone);
    for (s_agent_t *a = (s_agent_t *) zlistx_first (gone); a; a = (s_agent_t *) zlistx_next (gone))
        s_go_offline (self, a, "edge_lost");
    zlistx_purge (gone);
    for (s_hello_t *h = (s_hello_t *) zhashx_first (self->hellos); h;
         h = (s_hello_t *) zhashx_next (self->hellos))
        if (streq (h->edge, edge))
            zlistx_add_end (gone, h);
    for (s_hello_t *h = (s_hello_t *) zlistx_first (gone); h;
         h = (s_hello_t *) zlistx_next (gone)) {
        int64_t conn = h->conn;
        zhashx_delete (self->hellos, &conn);
    }
    zlistx_destroy (&gone);
    if (sessions)
        vw_warn ("registry", "edge '%s' is gone (%s): %zu agent session(s) ended", edge,
                 msg->actor_lost.reason ? msg->actor_lost.reason : "?", sessions);
}

//  A session the registry did not hold (it restarted, or ended it when it
//  lost the edge), alive on its edge: taken back as it is.
static void
s_adopt (self_t *self, s_agent_t *agent, const char *edge, int64_t conn, const char *session_id)
{
    if (agent->stale_timer)
        vw_timers_cancel (vw_actor_timers (self->actor), agent->stale_timer);
    agent->stale_timer = 0;
    snprintf (agent->session_id, sizeof agent->session_id, "%s", session_id);
    snprintf (agent->edge, sizeof agent->edge, "%s", edge);
    agent->conn = conn;
    //  The hello's command types, as this registry or the store last knew them.
    if (!agent->capabilities && agent->texts && !streq (s_text (agent, S_TEXT_CAPS), "[]"))
        agent->capabilities = strdup (s_text (agent, S_TEXT_CAPS));
    vw_agent_state_connect (&agent->model, vw_clock_mono_ms (),
                            self->config->heartbeat_interval_ms);
    agent->status = vw_agent_state_eval (&agent->model, vw_clock_mono_ms (), NULL);
    s_persist (self, agent, "resume", NULL);
    s_presence (self, agent, false);
    s_publish (self, "agent.online",
               json_pack ("{s:s, s:s, s:s, s:b}", "agent_id", agent->agent_id, "session_id",
                          agent->session_id, "status", vw_agent_status_name (agent->status),
                          "resumed", 1));
    s_evaluate (self, agent);
}

typedef struct {
    char edge[VW_ADDR_MAX];
    int64_t conn;
    char *agent_id;
    char session_id[VW_ID_TEXT_LEN + 1];
} s_resync_t;

static void s_resync_one (self_t *self, s_resync_t *r);

static void
s_on_resync_record (void *state, vw_actor_t *actor, void *ctx, vw_msg_t *reply, const char *why)
{
    self_t *self = (self_t *) state;
    s_resync_t *r = (s_resync_t *) ctx;
    if (reply && reply->id == VW_MSG_ID_agent_record) {
        if (s_take_record (self, r->agent_id, &reply->agent_record)) {
            s_resync_one (self, r);  //  takes r
            return;
        }
        else
            s_kick_at (self, r->edge, r->conn, r->session_id, 4401, "unknown agent");
    }
    else
        s_kick_at (self, r->edge, r->conn, r->session_id, 1013, "the core cannot check it now");
    free (r->agent_id);
    free (r);
}

//  Takes r (frees it, or hands it to a look-up that will).
static void
s_resync_one (self_t *self, s_resync_t *r)
{
    s_agent_t *agent = s_agent_get (self, r->agent_id, false);
    if (agent && agent->loaded) {
        if (agent->conn == r->conn && streq (agent->edge, r->edge))
            ;  //  held already
        else if (agent->revoked)
            s_kick_at (self, r->edge, r->conn, r->session_id, 4401, "agent revoked");
        else if (agent->conn)
            //  It came back through another edge meanwhile: that one stays.
            s_kick_at (self, r->edge, r->conn, r->session_id, 4409,
                       "replaced by a newer connection");
        else
            s_adopt (self, agent, r->edge, r->conn, r->session_id);
        free (r->agent_id);
        free (r);
        return;
    }
    vw_msg_t *lookup = vw_msg_new (VW_MSG_ID_agent_lookup);
    vw_msg_set_str (&lookup->agent_lookup.agent_id, r->agent_id);
    if (vw_pending_request (self->pending, "store", &lookup, S_STORE_TIMEOUT_MS, s_on_resync_record,
                            r)) {
        vw_msg_destroy (&lookup);
        s_on_resync_record (self, self->actor, r, NULL, "cannot ask the store");
    }
}

static void
s_on_resync (self_t *self, vw_msg_t *msg)
{
    json_t *sessions =
        msg->session_resync.sessions ? json_loads (msg->session_resync.sessions, 0, NULL) : NULL;
    size_t i, taken = 0;
    json_t *entry;
    json_array_foreach (sessions, i, entry)
    {
        json_int_t conn;
        const char *agent_id, *session_id;
        if (json_unpack (entry, "[I,s,s]", &conn, &agent_id, &session_id) || conn <= 0 ||
            strlen (session_id) > VW_ID_TEXT_LEN)
            continue;
        s_resync_t *r = (s_resync_t *) zmalloc (sizeof (s_resync_t));
        snprintf (r->edge, sizeof r->edge, "%s", msg->peer);
        r->conn = conn;
        r->agent_id = strdup (agent_id);
        snprintf (r->session_id, sizeof r->session_id, "%s", session_id);
        s_resync_one (self, r);
        taken++;
    }
    vw_info ("registry", "edge '%s' is back with %zu session(s)", msg->peer, taken);
    json_decref (sessions);
}

//  --------------------------------------------------------------------------
//  Operator requests: revoke, maintenance, disconnect

typedef struct {
    char peer[VW_ADDR_MAX];
    uint64_t rid;
    char *agent_id;
    bool enabled;
    uint8_t token_hash[32];  //  agent_rotate
    int64_t previous_until;
} s_request_t;

static s_request_t *
s_request_new (const vw_msg_t *msg, const char *agent_id)
{
    s_request_t *r = (s_request_t *) zmalloc (sizeof (s_request_t));
    memcpy (r->peer, msg->peer, sizeof r->peer);
    r->rid = msg->rid;
    r->agent_id = strdup (agent_id ? agent_id : "");
    return r;
}

static void
s_request_destroy (s_request_t **r_p)
{
    free ((*r_p)->agent_id);
    free (*r_p);
    *r_p = NULL;
}

//  Forwards a store reply (or an error when none came) to the requester.
static void
s_forward (self_t *self, s_request_t *r, vw_msg_t *reply)
{
    vw_msg_t *answer = vw_msg_new (VW_MSG_ID_reply);
    if (reply && reply->id == VW_MSG_ID_reply) {
        answer->reply = reply->reply;
        memset (&reply->reply, 0, sizeof reply->reply);
    }
    else {
        answer->reply.status = 503;
        vw_msg_set_str (&answer->reply.code, "unavailable");
        vw_msg_set_str (&answer->reply.message, "the store did not answer");
    }
    answer->rid = r->rid;
    s_send (self, r->peer, &answer);
}

//  The agent's entry for an operator change the store has saved: the one
//  in memory, or a new one when a hello of the agent waits for its record,
//  which may have been read before the change and must not undo it. NULL
//  when there is neither: the next look-up reads the saved row.
static s_agent_t *
s_agent_for_change (self_t *self, const char *agent_id)
{
    s_agent_t *agent = s_agent_get (self, agent_id, false);
    for (s_hello_t *hello = (s_hello_t *) zhashx_first (self->hellos); hello && !agent;
         hello = (s_hello_t *) zhashx_next (self->hellos))
        if (!hello->challenged && streq (hello->agent_id, agent_id))
            agent = s_agent_get (self, agent_id, true);
    return agent;
}

//  A revoked agent's handshakes waiting for a challenge answer end now with
//  4401; one waiting for its credentials is refused when they come
//  (agent->revoked is sticky, set on the entry s_agent_for_change gave).
static void
s_refuse_hellos (self_t *self, const char *agent_id)
{
    zlistx_t *conns = zlistx_new ();
    for (s_hello_t *hello = (s_hello_t *) zhashx_first (self->hellos); hello;
         hello = (s_hello_t *) zhashx_next (self->hellos))
        if (hello->challenged && streq (hello->agent_id, agent_id))
            zlistx_add_end (conns, hello);
    for (s_hello_t *hello = (s_hello_t *) zlistx_first (conns); hello;
         hello = (s_hello_t *) zlistx_next (conns)) {
        int64_t conn = hello->conn;
        s_reject (self, hello, 4401, "unauthorized", "agent revoked");
        zhashx_delete (self->hellos, &conn);
    }
    zlistx_destroy (&conns);
}

static void
s_on_revoked (void *state, vw_actor_t *actor, void *ctx, vw_msg_t *reply, const char *why)
{
    self_t *self = (self_t *) state;
    s_request_t *r = (s_request_t *) ctx;
    if (reply && reply->id == VW_MSG_ID_reply && reply->reply.status == 204) {
        s_agent_t *agent = s_agent_for_change (self, r->agent_id);
        if (agent) {
            agent->revoked = true;
            if (agent->conn) {
                s_kick (self, agent, 4401, "agent revoked");
                s_go_offline (self, agent, "revoked");
            }
        }
        s_refuse_hellos (self, r->agent_id);
        vw_info ("registry", "agent '%s' revoked", r->agent_id);
        //  Its unfinished commands fail with agent_revoked.
        vw_msg_t *gone = vw_msg_new (VW_MSG_ID_agent_presence);
        vw_msg_set_str (&gone->agent_presence.agent_id, r->agent_id);
        gone->agent_presence.revoked = true;
        s_send (self, "scheduler", &gone);
        s_publish (self, "agent.status",
                   json_pack ("{s:s, s:s, s:b}", "agent_id", r->agent_id, "status", "offline",
                              "revoked", 1));
    }
    s_forward (self, r, reply);
    s_request_destroy (&r);
}

//  The store's agent object was read before the registry persisted the
//  status the change brings (it applies the change once saved): the answer
//  carries the session's status as it is now.
static void
s_answer_live_status (vw_msg_t *reply, const s_agent_t *agent)
{
    json_t *object = reply->reply.json ? json_loads (reply->reply.json, 0, NULL) : NULL;
    char *text = NULL;
    if (json_is_object (object) &&
        json_object_set_new (object, "status",
                             json_string (vw_agent_status_name (agent->status))) == 0)
        text = json_dumps (object, JSON_COMPACT);
    json_decref (object);
    if (text) {
        free (reply->reply.json);
        reply->reply.json = text;
    }
}

//  The flag changes in memory only once the row has it: a change the store
//  refused, could not commit or did not answer leaves the registry with the
//  row's flag, as the database has it.
static void
s_on_maintenance_saved (void *state, vw_actor_t *actor, void *ctx, vw_msg_t *reply, const char *why)
{
    self_t *self = (self_t *) state;
    s_request_t *r = (s_request_t *) ctx;
    if (reply && reply->id == VW_MSG_ID_reply && reply->reply.status == 200) {
        s_agent_t *agent = s_agent_for_change (self, r->agent_id);
        if (agent) {
            agent->model.maintenance = r->enabled;
            agent->maintenance_known = true;
            s_evaluate (self, agent);
            if (agent->conn)
                s_answer_live_status (reply, agent);
        }
        vw_info ("registry", "agent '%s' %s maintenance", r->agent_id,
                 r->enabled ? "in" : "out of");
    }
    s_forward (self, r, reply);
    s_request_destroy (&r);
}

//  A rotation the store has saved: the registry's copy follows it (and is
//  not undone by a record read before it).
static void
s_on_rotated (void *state, vw_actor_t *actor, void *ctx, vw_msg_t *reply, const char *why)
{
    self_t *self = (self_t *) state;
    s_request_t *r = (s_request_t *) ctx;
    if (reply && reply->id == VW_MSG_ID_reply && reply->reply.status == 200) {
        s_agent_t *agent = s_agent_for_change (self, r->agent_id);
        if (agent) {
            agent->has_previous = agent->has_token_hash;
            memcpy (agent->previous_hash, agent->token_hash, 32);
            agent->previous_until = r->previous_until;
            memcpy (agent->token_hash, r->token_hash, 32);
            agent->has_token_hash = true;
            agent->token_known = true;
        }
        vw_info ("registry", "agent '%s' has a new token; the previous one works until %lld",
                 r->agent_id, (long long) r->previous_until);
    }
    s_forward (self, r, reply);
    s_request_destroy (&r);
}

static void
s_on_operator_request (self_t *self, vw_msg_t *msg)
{
    if (msg->id == VW_MSG_ID_agent_rotate) {
        const vw_agent_rotate_msg_t *in = &msg->agent_rotate;
        s_request_t *r = s_request_new (msg, in->agent_id);
        vw_msg_t *forward = vw_msg_new (VW_MSG_ID_agent_rotate);
        vw_msg_set_str (&forward->agent_rotate.agent_id, r->agent_id);
        if (in->token_hash.size == 32) {
            memcpy (r->token_hash, in->token_hash.data, 32);
            vw_msg_set_bin (&forward->agent_rotate.token_hash, in->token_hash.data, 32);
        }
        r->previous_until = forward->agent_rotate.previous_until = in->previous_until;
        if (vw_pending_request (self->pending, "store", &forward, S_STORE_TIMEOUT_MS, s_on_rotated,
                                r)) {
            vw_msg_destroy (&forward);
            s_forward (self, r, NULL);
            s_request_destroy (&r);
        }
        return;
    }
    if (msg->id == VW_MSG_ID_agent_disconnect) {
        s_agent_t *agent = s_agent_get (
            self, msg->agent_disconnect.agent_id ? msg->agent_disconnect.agent_id : "", false);
        vw_msg_t *answer = vw_msg_new (VW_MSG_ID_reply);
        if (agent && agent->conn) {
            s_kick (self, agent, 4000, "disconnected by an operator");
            s_go_offline (self, agent, "disconnected_by_operator");
            answer->reply.status = 200;
            vw_msg_set_str (&answer->reply.json, "{\"disconnected\":true}");
        }
        else {
            answer->reply.status = 404;
            vw_msg_set_str (&answer->reply.code, "not_found");
            vw_msg_set_str (&answer->reply.message, "that agent has no session");
        }
        if (vw_actor_reply (self->actor, msg, &answer))
            vw_msg_destroy (&answer);
        return;
    }
    bool revoke = msg->id == VW_MSG_ID_agent_revoke;
    const char *agent_id = revoke ? msg->agent_revoke.agent_id : msg->agent_maintenance.agent_id;
    s_request_t *r = s_request_new (msg, agent_id);
    r->enabled = !revoke && msg->agent_maintenance.enabled;
    vw_msg_t *forward = vw_msg_new (msg->id);
    if (revoke)
        vw_msg_set_str (&forward->agent_revoke.agent_id, r->agent_id);
    else {
        vw_msg_set_str (&forward->agent_maintenance.agent_id, r->agent_id);
        forward->agent_maintenance.enabled = msg->agent_maintenance.enabled;
    }
    if (vw_pending_request (self->pending, "store", &forward, S_STORE_TIMEOUT_MS,
                            revoke ? s_on_revoked : s_on_maintenance_saved, r)) {
        vw_msg_destroy (&forward);
        s_forward (self, r, NULL);
        s_request_destroy (&r);
    }
}

//  --------------------------------------------------------------------------
//  GET /agents/{id}: an agent held here is answered from memory, with its
//  live fields as they are now (last_seen is not one batch late, as in the
//  row); any other goes to the store.

static void
s_time_text (char *buf, size_t size, int64_t ms)
{
    if (ms > 0)
        snprintf (buf, size, "%lld", (long long) ms);
    else
        snprintf (buf, size, "null");
}

//  The REST agent object, the fields in the store's order.
static char *
s_agent_object (const s_agent_t *agent)
{
    char connected[24], seen[24], created[24], session[VW_ID_TEXT_LEN + 3];
    s_time_text (connected, sizeof connected, agent->connected_at);
    s_time_text (seen, sizeof seen, agent->last_seen);
    s_time_text (created, sizeof created, agent->created_at);
    if (agent->conn)
        snprintf (session, sizeof session, "\"%s\"", agent->session_id);
    else
        snprintf (session, sizeof session, "null");
    //  The format's 222 literal bytes, status <= 11, three times and two
    //  counts <= 20 digits each, the quoted session id: < 400.
    size_t size = strlen (agent->agent_id) + 400;
    for (int i = 0; i < S_TEXTS; i++)
        size += strlen (s_text (agent, i));
    char *text = (char *) malloc (size);
    snprintf (
        text, size,
        "{\"agent_id\":\"%s\",\"status\":\"%s\",\"hostname\":%s,\"version\":%s,"
        "\"labels\":%s,\"reported_labels\":%s,\"capabilities\":%s,\"connected_at\":%s,"
        "\"last_seen\":%s,\"session_id\":%s,\"created_at\":%s,\"maintenance\":%s,"
        "\"revoked_at\":null,\"connect_count\":%lld,\"disconnect_count\":%lld}",
        agent->agent_id, vw_agent_status_name (agent->conn ? agent->status : VW_AGENT_OFFLINE),
        s_text (agent, S_TEXT_HOSTNAME), s_text (agent, S_TEXT_VERSION),
        s_text (agent, S_TEXT_LABELS), s_text (agent, S_TEXT_REPORTED), s_text (agent, S_TEXT_CAPS),
        connected, seen, session, created, agent->model.maintenance ? "true" : "false",
        (long long) agent->connect_count, (long long) agent->disconnect_count);
    return text;
}

static void
s_on_relayed (void *state, vw_actor_t *actor, void *ctx, vw_msg_t *reply, const char *why)
{
    s_request_t *r = (s_request_t *) ctx;
    s_forward ((self_t *) state, r, reply);
    s_request_destroy (&r);
}

static void
s_on_agent_get (self_t *self, vw_msg_t *msg)
{
    const char *agent_id = msg->agent_get.agent_id ? msg->agent_get.agent_id : "";
    s_agent_t *agent = s_agent_get (self, agent_id, false);
    //  Held, loaded (which filled its object) and not revoked (a revoked
    //  agent's object shows its revoked_at, which the row has).
    if (agent && agent->loaded && !agent->revoked) {
        vw_msg_t *answer = vw_msg_new (VW_MSG_ID_reply);
        answer->reply.status = 200;
        answer->reply.json = s_agent_object (agent);
        if (vw_actor_reply (self->actor, msg, &answer))
            vw_msg_destroy (&answer);
        return;
    }
    s_request_t *r = s_request_new (msg, agent_id);
    vw_msg_t *forward = vw_msg_new (VW_MSG_ID_agent_get);
    vw_msg_set_str (&forward->agent_get.agent_id, agent_id);
    if (vw_pending_request (self->pending, "store", &forward, S_STORE_TIMEOUT_MS, s_on_relayed,
                            r)) {
        vw_msg_destroy (&forward);
        s_forward (self, r, NULL);
        s_request_destroy (&r);
    }
}

//  --------------------------------------------------------------------------
//  Actor

static void *
s_create (vw_actor_t *actor, void *args)
{
    self_t *self = (self_t *) zmalloc (sizeof (self_t));
    self->config = (const vw_config_t *) args;
    self->actor = actor;
    self->pending = vw_pending_new (actor, self);
    self->agents = zhashx_new ();
    zhashx_set_destructor (self->agents, s_agent_free);
    self->hellos = zhashx_new ();
    vw_keys_int64 (self->hellos);
    zhashx_set_destructor (self->hellos, s_hello_free);
    self->seen = zhashx_new ();
    vw_actor_watch_actors (actor, "edge");  //  edges of other processes can die
    return self;
}

static void
s_destroy (void **state_p)
{
    self_t *self = (self_t *) *state_p;
    if (self) {
        vw_pending_destroy (&self->pending);
        if (self->seen_timer)
            vw_timers_cancel (vw_actor_timers (self->actor), self->seen_timer);
        zhashx_destroy (&self->seen);
        zhashx_destroy (&self->hellos);
        zhashx_destroy (&self->agents);
        free (self);
    }
    *state_p = NULL;
}

//  The last interval's heartbeats go out before the registry stops (the
//  store stops after it).
static void
s_stop (void *state, vw_actor_t *actor)
{
    self_t *self = (self_t *) state;
    if (zhashx_size (self->seen))
        s_on_seen_due (self, 0);
}

//  GET /metrics: sessions (the store counts agents by status).
static void
s_on_metrics (self_t *self, vw_msg_t *msg)
{
    vw_prom_t p = {0};
    vw_prom_one (&p, "viworks_agent_connects_total", "counter",
                 "Agent sessions welcomed (hello accepted).", (double) self->connects);
    vw_prom_one (&p, "viworks_agent_disconnects_total", "counter", "Agent sessions that ended.",
                 (double) self->disconnects);
    vw_prom_family (&p, "viworks_agent_hellos_refused_total", "counter",
                    "Agent hellos the registry refused, by reason (unauthorized: closed 4401; "
                    "unavailable: closed 1013, credentials not checkable then).");
    vw_prom_sample (&p, "viworks_agent_hellos_refused_total", "reason", "unauthorized",
                    (double) self->rejects_unauthorized);
    vw_prom_sample (&p, "viworks_agent_hellos_refused_total", "reason", "unavailable",
                    (double) (self->rejects - self->rejects_unauthorized));
    vw_prom_one (&p, "viworks_agents_in_memory", "gauge",
                 "Agents the registry holds in memory (online, or offline less than "
                 "registry.stale_after).",
                 (double) zhashx_size (self->agents));
    vw_actor_reply_metrics (self->actor, msg, &p);
}

static void
s_handle (void *state, vw_actor_t *actor, vw_msg_t **msg_p)
{
    self_t *self = (self_t *) state;
    vw_msg_t *msg = *msg_p;
    if (vw_pending_handle (self->pending, msg))
        return;
    switch (msg->id) {
        case VW_MSG_ID_session_hello: s_on_hello (self, msg); break;
        case VW_MSG_ID_session_auth: s_on_auth (self, msg); break;
        case VW_MSG_ID_session_seen: s_on_seen (self, msg); break;
        case VW_MSG_ID_session_closed: s_on_closed (self, msg); break;
        case VW_MSG_ID_session_resync: s_on_resync (self, msg); break;
        case VW_MSG_ID_actor_lost: s_on_actor_lost (self, msg); break;
        case VW_MSG_ID_agent_alerting: s_on_alerting (self, msg); break;
        case VW_MSG_ID_agent_get: s_on_agent_get (self, msg); break;
        case VW_MSG_ID_agent_revoke:
        case VW_MSG_ID_agent_rotate:
        case VW_MSG_ID_agent_maintenance:
        case VW_MSG_ID_agent_disconnect: s_on_operator_request (self, msg); break;
        case VW_MSG_ID_stats_query: s_on_metrics (self, msg); break;  //  prometheus only
        case VW_MSG_ID_error: vw_actor_routing_error (self->actor, msg); break;
        default:
            vw_warn ("registry", "unexpected '%s' from '%s' ignored", vw_msg_name (msg->id),
                     msg->peer);
            break;
    }
}

static void
s_health (void *state, bool *healthy, char *detail, size_t len)
{
    self_t *self = (self_t *) state;
    *healthy = true;
    snprintf (detail, len,
              "%zu agents in memory, %llu connects, %llu disconnects, %llu refused; %zu last_seen "
              "waiting, %llu batch(es) written",
              zhashx_size (self->agents), (unsigned long long) self->connects,
              (unsigned long long) self->disconnects, (unsigned long long) self->rejects,
              zhashx_size (self->seen), (unsigned long long) self->seen_batches);
}

const vw_actor_class_t vw_registry_class = {
    .name = "registry",
    .create = s_create,
    .destroy = s_destroy,
    .handle = s_handle,
    .stop = s_stop,
    .health = s_health,
};
