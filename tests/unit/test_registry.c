/*  test_registry - the registry actor (actors/vw_registry) driven with
    proto messages through a real broker (vw_testbroker).

    Test peers play "edge" (hellos, challenge answers, closes, operator
    requests; gets welcomes, rejects, challenges, kicks), "store" (answers
    the credential look-ups and operator writes; gets agent_state) and
    "scheduler" (gets agent_presence). Only today's main flows are covered:
    token and Ed25519 checks, refusals, close, revoke, maintenance,
    disconnect. Every wait is a receive with a deadline; "nothing sent" is checked after a
    ping/pong barrier.
*/
#include "vw_actors.h"
#include "vw_clock.h"
#include "vw_config.h"
#include "vw_testbroker.h"
#include "vw_token.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_TOKEN "secret-token-of-gw-1"

typedef struct {
    vw_tb_t *tb;
    vw_config_t *config;
    vw_tb_peer_t *edge, *store, *scheduler;
} t_fixture_t;

//  The registry on a test broker with these peers; interval_ms 0 keeps the
//  default heartbeat interval.
static int
s_setup_with (void **state, int64_t interval_ms)
{
    t_fixture_t *f = (t_fixture_t *) calloc (1, sizeof (t_fixture_t));
    *state = f;
    f->tb = vw_tb_new ();
    if (!f->tb || !(f->config = vw_tb_config (f->tb)) || sodium_init () < 0 ||
        vw_tb_peers (f->tb, "edge", &f->edge, "store", &f->store, "scheduler", &f->scheduler, NULL))
        return -1;
    if (interval_ms)
        f->config->heartbeat_interval_ms = interval_ms;
    return vw_tb_run (f->tb, &vw_registry_class, f->config);
}

static int
s_setup (void **state)
{
    return s_setup_with (state, 0);
}

//  A short heartbeat interval, for the batches of last_seen.
static int
s_setup_short_interval (void **state)
{
    return s_setup_with (state, 300);
}

static void
s_hello (t_fixture_t *f, int64_t conn, const char *agent_id, const char *token)
{
    vw_msg_t *h = vw_msg_new (VW_MSG_ID_session_hello);
    h->session_hello.conn = conn;
    vw_msg_set_str (&h->session_hello.agent_id, agent_id);
    vw_msg_set_str (&h->session_hello.token, token);
    vw_msg_set_str (&h->session_hello.version, "1.0.0");
    vw_msg_set_str (&h->session_hello.hostname, "host-1");
    vw_msg_set_str (&h->session_hello.peer, "127.0.0.1");
    assert_int_equal (vw_tb_send (f->edge, "registry", &h), 0);
}

typedef struct {
    bool found, revoked, maintenance;
    const char *token;          //  its digest goes in the record
    const uint8_t *public_key;  //  32 bytes or NULL
    //  The rest of the row (absent / 0 unless a test sets them).
    const char *labels, *hostname, *capabilities;
    int64_t created_at, connected_at, last_seen, connect_count, disconnect_count;
} t_record_t;

//  The store answers the look-up *lookup_p (destroyed) with the record.
static void
s_answer_lookup (t_fixture_t *f, vw_msg_t **lookup_p, t_record_t rec)
{
    vw_msg_t *record = vw_msg_new (VW_MSG_ID_agent_record);
    record->rid = (*lookup_p)->rid;
    vw_msg_set_str (&record->agent_record.agent_id, (*lookup_p)->agent_lookup.agent_id);
    vw_msg_destroy (lookup_p);
    record->agent_record.found = rec.found;
    record->agent_record.revoked = rec.revoked;
    record->agent_record.maintenance = rec.maintenance;
    if (rec.token) {
        uint8_t hash[VW_TOKEN_HASH_BYTES];
        vw_token_hash (rec.token, hash);
        vw_msg_set_bin (&record->agent_record.token_hash, hash, sizeof hash);
    }
    if (rec.public_key)
        vw_msg_set_bin (&record->agent_record.public_key, rec.public_key, 32);
    vw_agent_record_msg_t *r = &record->agent_record;
    vw_msg_set_str (&r->labels, rec.labels);
    vw_msg_set_str (&r->hostname, rec.hostname);
    vw_msg_set_str (&r->capabilities, rec.capabilities);
    r->created_at = rec.created_at;
    r->connected_at = rec.connected_at;
    r->last_seen = rec.last_seen;
    r->connect_count = rec.connect_count;
    r->disconnect_count = rec.disconnect_count;
    assert_int_equal (vw_tb_send (f->store, "registry", &record), 0);
}

//  The store gets the look-up for agent_id and answers with the record.
static void
s_store_answers_lookup (t_fixture_t *f, const char *agent_id, t_record_t rec)
{
    vw_msg_t *lookup = vw_tb_want (f->store, VW_MSG_ID_agent_lookup);
    assert_string_equal (lookup->agent_lookup.agent_id, agent_id);
    s_answer_lookup (f, &lookup, rec);
}

//  The edge gets a welcome for conn, and the session starts in `status`
//  (online or maintenance); returns the session id (caller frees).
static char *
s_expect_welcome_as (t_fixture_t *f, int64_t conn, const char *agent_id, const char *status)
{
    vw_msg_t *w = vw_tb_want (f->edge, VW_MSG_ID_session_welcome);
    assert_int_equal (w->session_welcome.conn, conn);
    assert_string_equal (w->session_welcome.agent_id, agent_id);
    assert_non_null (w->session_welcome.session_id);
    assert_int_equal (w->session_welcome.heartbeat_interval_ms, f->config->heartbeat_interval_ms);
    char *session = strdup (w->session_welcome.session_id);
    vw_msg_destroy (&w);
    //  The scheduler hears on which connection, and whether the agent takes
    //  commands there (not in maintenance).
    vw_msg_t *p = vw_tb_want (f->scheduler, VW_MSG_ID_agent_presence);
    assert_string_equal (p->agent_presence.agent_id, agent_id);
    assert_int_equal (p->agent_presence.dispatchable, strcmp (status, "online") == 0);
    assert_int_equal (p->agent_presence.conn, conn);
    vw_msg_destroy (&p);
    //  The store is told to persist the connect.
    vw_msg_t *s = vw_tb_want (f->store, VW_MSG_ID_agent_state);
    assert_string_equal (s->agent_state.agent_id, agent_id);
    assert_string_equal (s->agent_state.event, "connect");
    assert_string_equal (s->agent_state.status, status);
    assert_string_equal (s->agent_state.session_id, session);
    vw_msg_destroy (&s);
    return session;
}

static char *
s_expect_welcome (t_fixture_t *f, int64_t conn, const char *agent_id)
{
    return s_expect_welcome_as (f, conn, agent_id, "online");
}

//  agent_id's session ended: offline for the scheduler and the store.
static void
s_expect_offline (t_fixture_t *f, const char *agent_id)
{
    vw_msg_t *p = vw_tb_want (f->scheduler, VW_MSG_ID_agent_presence);
    assert_string_equal (p->agent_presence.agent_id, agent_id);
    assert_false (p->agent_presence.dispatchable);
    assert_int_equal (p->agent_presence.conn, 0);
    vw_msg_destroy (&p);
    vw_msg_t *s = vw_tb_want (f->store, VW_MSG_ID_agent_state);
    assert_string_equal (s->agent_state.agent_id, agent_id);
    assert_string_equal (s->agent_state.event, "disconnect");
    vw_msg_destroy (&s);
}

//  agent_id (token S_TOKEN, looked up in the store) is welcomed on conn.
static void
s_connected (t_fixture_t *f, int64_t conn, const char *agent_id)
{
    s_hello (f, conn, agent_id, S_TOKEN);
    s_store_answers_lookup (f, agent_id, (t_record_t){.found = true, .token = S_TOKEN});
    free (s_expect_welcome (f, conn, agent_id));
}

static void
s_expect_reject (t_fixture_t *f, int64_t conn, int64_t close_code, const char *code)
{
    vw_msg_t *r = vw_tb_want (f->edge, VW_MSG_ID_session_reject);
    assert_int_equal (r->session_reject.conn, conn);
    assert_int_equal (r->session_reject.close_code, close_code);
    assert_string_equal (r->session_reject.code, code);
    vw_msg_destroy (&r);
    //  Nobody was told the agent is there.
    assert_int_equal (vw_tb_sync (f->edge, "registry"), 0);
    assert_int_equal (vw_tb_kept (f->edge, VW_MSG_ID_session_welcome), 0);
    assert_int_equal (vw_tb_kept (f->scheduler, VW_MSG_ID_agent_presence), 0);
    assert_int_equal (vw_tb_kept (f->store, VW_MSG_ID_agent_state), 0);
}

//  The edge gets a challenge for conn; its nonce (32 bytes) into nonce.
static void
s_take_challenge (t_fixture_t *f, int64_t conn, uint8_t nonce[32])
{
    vw_msg_t *c = vw_tb_want (f->edge, VW_MSG_ID_session_challenge);
    assert_int_equal (c->session_challenge.conn, conn);
    size_t len = 0;
    assert_int_equal (sodium_base642bin (nonce, 32, c->session_challenge.nonce,
                                         strlen (c->session_challenge.nonce), NULL, &len, NULL,
                                         sodium_base64_VARIANT_ORIGINAL),
                      0);
    assert_int_equal (len, 32);
    vw_msg_destroy (&c);
}

//  The agent answers: sign (nonce || agent_id) with sk, or something else
//  when `wrong`.
static void
s_send_auth (t_fixture_t *f, int64_t conn, const char *agent_id, const uint8_t nonce[32],
             const uint8_t *sk, bool wrong)
{
    size_t idlen = strlen (agent_id);
    uint8_t signed_msg[32 + 64];
    assert_true (idlen <= 64);
    memcpy (signed_msg, nonce, 32);
    memcpy (signed_msg + 32, agent_id, idlen);
    if (wrong)
        signed_msg[0] ^= 1;
    uint8_t sig[crypto_sign_BYTES];
    crypto_sign_detached (sig, NULL, signed_msg, 32 + idlen, sk);
    char b64[sodium_base64_ENCODED_LEN (crypto_sign_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64 (b64, sizeof b64, sig, sizeof sig, sodium_base64_VARIANT_ORIGINAL);
    vw_msg_t *auth = vw_msg_new (VW_MSG_ID_session_auth);
    auth->session_auth.conn = conn;
    vw_msg_set_str (&auth->session_auth.agent_id, agent_id);
    vw_msg_set_str (&auth->session_auth.signature, b64);
    assert_int_equal (vw_tb_send (f->edge, "registry", &auth), 0);
}

//  The operator revokes agent_id: through the registry to the store (204).
static void
s_revoke (t_fixture_t *f, const char *agent_id)
{
    vw_msg_t *revoke = vw_msg_new (VW_MSG_ID_agent_revoke);
    vw_msg_set_str (&revoke->agent_revoke.agent_id, agent_id);
    uint64_t rid = vw_tb_ask (f->edge, "registry", &revoke);
    vw_msg_t *fwd = vw_tb_want (f->store, VW_MSG_ID_agent_revoke);
    assert_string_equal (fwd->agent_revoke.agent_id, agent_id);
    vw_tb_answer (f->store, "registry", &fwd, 204, NULL, NULL);
    vw_tb_expect_reply (f->edge, rid, 204, NULL);
}

//  The operator sets (or clears) maintenance of agent_id: through the
//  registry to the store, which saves it and answers 200 with the agent
//  object, its status column reading row_status. Returns the answer the
//  edge gets (caller destroys).
static vw_msg_t *
s_maintenance (t_fixture_t *f, const char *agent_id, bool enabled, const char *row_status)
{
    vw_msg_t *m = vw_msg_new (VW_MSG_ID_agent_maintenance);
    vw_msg_set_str (&m->agent_maintenance.agent_id, agent_id);
    m->agent_maintenance.enabled = enabled;
    uint64_t rid = vw_tb_ask (f->edge, "registry", &m);
    assert_true (rid != 0);
    vw_msg_t *fwd = vw_tb_want (f->store, VW_MSG_ID_agent_maintenance);
    assert_string_equal (fwd->agent_maintenance.agent_id, agent_id);
    assert_int_equal (fwd->agent_maintenance.enabled, enabled);
    char row[160];
    snprintf (row, sizeof row, "{\"agent_id\":\"%s\",\"status\":\"%s\",\"maintenance\":%s}",
              agent_id, row_status, enabled ? "true" : "false");
    vw_tb_answer (f->store, "registry", &fwd, 200, row, NULL);
    vw_msg_t *answer = vw_tb_expect_rid (f->edge, rid, VW_TB_TIMEOUT_MS);
    assert_non_null (answer);
    assert_int_equal (answer->id, VW_MSG_ID_reply);
    assert_int_equal (answer->reply.status, 200);
    return answer;
}

//  --------------------------------------------------------------------------
//  Cases

static void
test_hello_good_token_welcomed (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_hello (f, 5, "gw-1", S_TOKEN);
    s_store_answers_lookup (f, "gw-1", (t_record_t){.found = true, .token = S_TOKEN});
    char *session = s_expect_welcome (f, 5, "gw-1");

    //  The connection closes: offline for the scheduler and the store.
    vw_msg_t *closed = vw_msg_new (VW_MSG_ID_session_closed);
    closed->session_closed.conn = 5;
    vw_msg_set_str (&closed->session_closed.agent_id, "gw-1");
    vw_msg_set_str (&closed->session_closed.session_id, session);
    assert_int_equal (vw_tb_send (f->edge, "registry", &closed), 0);
    s_expect_offline (f, "gw-1");
    free (session);
}

//  The broker says the edge is gone (here: it left): its sessions end, as
//  if each had closed, and the scheduler hears so.
static void
test_edge_lost_ends_its_sessions (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_connected (f, 5, "gw-1");
    vw_msg_t *leave = vw_msg_new (VW_MSG_ID_actor_leave);
    assert_int_equal (vw_tb_send (f->edge, "broker", &leave), 0);
    s_expect_offline (f, "gw-1");
}

//  An edge back from losing the core lists its sessions: one the registry
//  does not hold is taken back as it is (after a look-up: the registry may
//  have restarted), without a welcome; one of a revoked agent is kicked;
//  one of an agent connected elsewhere meanwhile is kicked as replaced.
static void
test_resync_takes_sessions_back (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    //  gw-2 is connected on conn 8 already.
    s_connected (f, 8, "gw-2");
    vw_msg_t *resync = vw_msg_new (VW_MSG_ID_session_resync);
    vw_msg_set_str (&resync->session_resync.sessions,
                    "[[5,\"gw-1\",\"s-gw-1\"],[6,\"gw-3\",\"s-gw-3\"],[7,\"gw-2\",\"s-old\"],"
                    "\"junk\",[0,\"gw-4\",\"x\"]]");
    assert_int_equal (vw_tb_send (f->edge, "registry", &resync), 0);
    //  gw-2 is held on another connection: its old session goes.
    vw_msg_t *k = vw_tb_want (f->edge, VW_MSG_ID_session_kick);
    assert_int_equal (k->session_kick.conn, 7);
    assert_string_equal (k->session_kick.session_id, "s-old");
    assert_int_equal (k->session_kick.close_code, 4409);
    vw_msg_destroy (&k);
    //  gw-1 and gw-3 are looked up; gw-3 is revoked.
    s_store_answers_lookup (f, "gw-1", (t_record_t){.found = true, .token = S_TOKEN});
    vw_msg_t *s = vw_tb_want (f->store, VW_MSG_ID_agent_state);
    assert_string_equal (s->agent_state.agent_id, "gw-1");
    assert_string_equal (s->agent_state.event, "resume");
    assert_string_equal (s->agent_state.session_id, "s-gw-1");
    vw_msg_destroy (&s);
    vw_msg_t *p = vw_tb_want (f->scheduler, VW_MSG_ID_agent_presence);
    assert_string_equal (p->agent_presence.agent_id, "gw-1");
    assert_true (p->agent_presence.dispatchable);
    assert_int_equal (p->agent_presence.conn, 5);
    assert_string_equal (p->agent_presence.edge, "edge");
    vw_msg_destroy (&p);
    s_store_answers_lookup (f, "gw-3",
                            (t_record_t){.found = true, .revoked = true, .token = S_TOKEN});
    k = vw_tb_want (f->edge, VW_MSG_ID_session_kick);
    assert_int_equal (k->session_kick.conn, 6);
    assert_int_equal (k->session_kick.close_code, 4401);
    vw_msg_destroy (&k);
    //  No welcome for any of them: their agents were welcomed long ago.
    assert_int_equal (vw_tb_sync (f->edge, "registry"), 0);
    assert_int_equal (vw_tb_kept (f->edge, VW_MSG_ID_session_welcome), 0);
}

static void
test_hello_bad_token_rejected (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_hello (f, 6, "gw-1", "not-the-token");
    s_store_answers_lookup (f, "gw-1", (t_record_t){.found = true, .token = S_TOKEN});
    s_expect_reject (f, 6, 4401, "unauthorized");
    //  The credentials are cached: the good token now needs no look-up.
    s_hello (f, 7, "gw-1", S_TOKEN);
    free (s_expect_welcome (f, 7, "gw-1"));
    assert_int_equal (vw_tb_kept (f->store, VW_MSG_ID_agent_lookup), 0);
}

//  The session on conn ends (its presence and state changes consumed).
static void
s_session_ends (t_fixture_t *f, int64_t conn, const char *agent_id, char *session)
{
    vw_msg_t *closed = vw_msg_new (VW_MSG_ID_session_closed);
    closed->session_closed.conn = conn;
    vw_msg_set_str (&closed->session_closed.agent_id, agent_id);
    vw_msg_set_str (&closed->session_closed.session_id, session);
    assert_int_equal (vw_tb_send (f->edge, "registry", &closed), 0);
    vw_msg_t *p = vw_tb_want (f->scheduler, VW_MSG_ID_agent_presence);
    vw_msg_destroy (&p);
    vw_msg_t *st = vw_tb_want (f->store, VW_MSG_ID_agent_state);
    assert_string_equal (st->agent_state.event, "disconnect");
    vw_msg_destroy (&st);
    free (session);
}

//  A rotation: the registry forwards it to the store and, once saved, takes
//  both tokens until the agent has used the new one (then the store is
//  told to forget the old) - without asking the store again.
static void
test_token_rotation (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_hello (f, 5, "gw-1", S_TOKEN);
    s_store_answers_lookup (f, "gw-1", (t_record_t){.found = true, .token = S_TOKEN});
    s_session_ends (f, 5, "gw-1", s_expect_welcome (f, 5, "gw-1"));
    vw_msg_t *rot = vw_msg_new (VW_MSG_ID_agent_rotate);
    vw_msg_set_str (&rot->agent_rotate.agent_id, "gw-1");
    uint8_t hash[VW_TOKEN_HASH_BYTES];
    vw_token_hash ("the-new-token-of-gw-1", hash);
    vw_msg_set_bin (&rot->agent_rotate.token_hash, hash, sizeof hash);
    rot->agent_rotate.previous_until = vw_clock_wall_ms () + 60000;
    uint64_t rid = vw_tb_ask (f->edge, "registry", &rot);
    vw_msg_t *fwd = vw_tb_want (f->store, VW_MSG_ID_agent_rotate);
    assert_string_equal (fwd->agent_rotate.agent_id, "gw-1");
    assert_int_equal (fwd->agent_rotate.token_hash.size, 32);
    assert_memory_equal (fwd->agent_rotate.token_hash.data, hash, 32);
    vw_tb_answer (f->store, "registry", &fwd, 200, "{\"previous_valid_until\":1}", NULL);
    vw_tb_expect_reply (f->edge, rid, 200, NULL);
    //  The old token still works, then the new one; then only the new one.
    s_hello (f, 6, "gw-1", S_TOKEN);
    s_session_ends (f, 6, "gw-1", s_expect_welcome (f, 6, "gw-1"));
    s_hello (f, 7, "gw-1", "the-new-token-of-gw-1");
    s_session_ends (f, 7, "gw-1", s_expect_welcome (f, 7, "gw-1"));
    vw_msg_t *settled = vw_tb_want (f->store, VW_MSG_ID_agent_token_settled);
    assert_string_equal (settled->agent_token_settled.agent_id, "gw-1");
    vw_msg_destroy (&settled);
    s_hello (f, 8, "gw-1", S_TOKEN);
    s_expect_reject (f, 8, 4401, "unauthorized");
    assert_int_equal (vw_tb_kept (f->store, VW_MSG_ID_agent_lookup), 0);
}

static void
test_hello_unknown_or_revoked_rejected (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_hello (f, 8, "gw-unknown", S_TOKEN);
    s_store_answers_lookup (f, "gw-unknown", (t_record_t){.found = false});
    s_expect_reject (f, 8, 4401, "unauthorized");
    s_hello (f, 9, "gw-revoked", S_TOKEN);
    s_store_answers_lookup (f, "gw-revoked",
                            (t_record_t){.found = true, .revoked = true, .token = S_TOKEN});
    s_expect_reject (f, 9, 4401, "unauthorized");
}

//  The store cannot answer: 1013, try again later.
static void
test_hello_store_error_unavailable (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_hello (f, 10, "gw-1", S_TOKEN);
    vw_msg_t *lookup = vw_tb_want (f->store, VW_MSG_ID_agent_lookup);
    vw_tb_answer_error (f->store, "registry", &lookup, "database_error");
    s_expect_reject (f, 10, 1013, "unavailable");
}

//  A look-alike of the store's answer, sent by the edge with the rid of the
//  look-up, is not taken as the answer (vw_pending matches the peer).
static void
test_hello_answer_from_the_wrong_peer_ignored (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_hello (f, 11, "gw-1", S_TOKEN);
    vw_msg_t *lookup = vw_tb_want (f->store, VW_MSG_ID_agent_lookup);
    vw_msg_t *forged = vw_msg_new (VW_MSG_ID_agent_record);
    forged->rid = lookup->rid;
    forged->agent_record.found = true;
    vw_msg_set_str (&forged->agent_record.agent_id, "gw-1");
    vw_msg_destroy (&lookup);
    assert_int_equal (vw_tb_send (f->edge, "registry", &forged), 0);
    assert_int_equal (vw_tb_sync (f->edge, "registry"), 0);
    assert_int_equal (vw_tb_kept (f->edge, VW_MSG_ID_session_welcome), 0);
    assert_int_equal (vw_tb_kept (f->edge, VW_MSG_ID_session_reject), 0);
}

//  An agent with a public key is challenged; a good signature is welcomed,
//  a bad one rejected.
static void
test_hello_ed25519_challenge (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_keypair (pk, sk);
    for (int round = 0; round < 2; round++) {
        bool good = round == 1;
        int64_t conn = 20 + round;
        s_hello (f, conn, "gw-key", S_TOKEN);
        if (round == 0)
            s_store_answers_lookup (
                f, "gw-key", (t_record_t){.found = true, .token = S_TOKEN, .public_key = pk});
        uint8_t nonce[32];
        s_take_challenge (f, conn, nonce);
        s_send_auth (f, conn, "gw-key", nonce, sk, !good);
        if (good)
            free (s_expect_welcome (f, conn, "gw-key"));
        else
            s_expect_reject (f, conn, 4401, "unauthorized");
    }
}

//  Revoked while its challenge is outstanding: a correct signature that
//  arrives after the revoke is not welcomed (issue 9, finding 6).
static void
test_revoked_during_challenge_not_welcomed (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_keypair (pk, sk);
    s_hello (f, 40, "gw-rk", S_TOKEN);
    s_store_answers_lookup (f, "gw-rk",
                            (t_record_t){.found = true, .token = S_TOKEN, .public_key = pk});
    uint8_t nonce[32];
    s_take_challenge (f, 40, nonce);
    //  The operator revokes it now.
    s_revoke (f, "gw-rk");
    //  Then the right signature arrives (if the connection is still there).
    s_send_auth (f, 40, "gw-rk", nonce, sk, false);
    //  Refused with 4401 (at the revoke or at the answer), never welcomed.
    vw_msg_t *r = vw_tb_want (f->edge, VW_MSG_ID_session_reject);
    assert_int_equal (r->session_reject.conn, 40);
    assert_int_equal (r->session_reject.close_code, 4401);
    vw_msg_destroy (&r);
    assert_int_equal (vw_tb_sync (f->edge, "registry"), 0);
    assert_int_equal (vw_tb_kept (f->edge, VW_MSG_ID_session_welcome), 0);
    assert_int_equal (vw_tb_kept (f->edge, VW_MSG_ID_session_reject), 0);  //  only once
}

//  Revoked while its credentials are being read: the record the store
//  read before the revoke does not welcome it.
static void
test_revoked_during_lookup_not_welcomed (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_hello (f, 41, "gw-rl", S_TOKEN);
    vw_msg_t *lookup = vw_tb_want (f->store, VW_MSG_ID_agent_lookup);
    s_revoke (f, "gw-rl");
    //  The stale record: found, not revoked, the right token.
    s_answer_lookup (f, &lookup, (t_record_t){.found = true, .token = S_TOKEN});
    vw_msg_t *r = vw_tb_want (f->edge, VW_MSG_ID_session_reject);
    assert_int_equal (r->session_reject.conn, 41);
    assert_int_equal (r->session_reject.close_code, 4401);
    vw_msg_destroy (&r);
    assert_int_equal (vw_tb_sync (f->edge, "registry"), 0);
    assert_int_equal (vw_tb_kept (f->edge, VW_MSG_ID_session_welcome), 0);
}

//  Maintenance set while the agent's credentials are being read: the
//  record the store read before the change does not undo it (issue 9,
//  finding 9b). The session starts in maintenance and takes no commands.
static void
test_maintenance_set_during_lookup_kept (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_hello (f, 50, "gw-ms", S_TOKEN);
    vw_msg_t *lookup = vw_tb_want (f->store, VW_MSG_ID_agent_lookup);
    vw_msg_t *answer = s_maintenance (f, "gw-ms", true, "offline");
    vw_tb_check_reply (&answer, 200, NULL);
    //  The stale record: not in maintenance.
    s_answer_lookup (f, &lookup, (t_record_t){.found = true, .token = S_TOKEN});
    free (s_expect_welcome_as (f, 50, "gw-ms", "maintenance"));
}

//  The same for clearing it: the stale record says maintenance, the
//  session starts online and takes commands.
static void
test_maintenance_cleared_during_lookup_kept (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_hello (f, 51, "gw-mc", S_TOKEN);
    vw_msg_t *lookup = vw_tb_want (f->store, VW_MSG_ID_agent_lookup);
    vw_msg_t *answer = s_maintenance (f, "gw-mc", false, "offline");
    vw_tb_check_reply (&answer, 200, NULL);
    s_answer_lookup (f, &lookup,
                     (t_record_t){.found = true, .token = S_TOKEN, .maintenance = true});
    free (s_expect_welcome_as (f, 51, "gw-mc", "online"));
}

//  A live session: maintenance takes effect once the store has saved it; a
//  change the store could not save changes nothing (the row keeps the old
//  flag, so does the registry). The answer carries the status the change
//  brought, which the store's row did not have yet.
static void
test_maintenance_applied_once_saved (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_hello (f, 52, "gw-m", S_TOKEN);
    s_store_answers_lookup (f, "gw-m", (t_record_t){.found = true, .token = S_TOKEN});
    free (s_expect_welcome (f, 52, "gw-m"));

    vw_msg_t *m = vw_msg_new (VW_MSG_ID_agent_maintenance);
    vw_msg_set_str (&m->agent_maintenance.agent_id, "gw-m");
    m->agent_maintenance.enabled = true;
    uint64_t rid = vw_tb_ask (f->edge, "registry", &m);
    vw_msg_t *fwd = vw_tb_want (f->store, VW_MSG_ID_agent_maintenance);
    vw_tb_answer (f->store, "registry", &fwd, 503, NULL, "database_error");
    vw_tb_expect_reply (f->edge, rid, 503, "database_error");
    //  Still online: neither the scheduler nor the store heard otherwise.
    vw_tb_quiet (f->edge, "registry", f->edge, f->store, f->scheduler, NULL);

    const struct {
        bool enabled;
        const char *row, *live;  //  the status in the store's row, and the registry's
    } steps[] = {{true, "online", "maintenance"}, {false, "maintenance", "online"}};
    for (int i = 0; i < 2; i++) {
        vw_msg_t *answer = s_maintenance (f, "gw-m", steps[i].enabled, steps[i].row);
        char status[64];
        snprintf (status, sizeof status, "\"status\":\"%s\"", steps[i].live);
        assert_non_null (strstr (answer->reply.json, status));
        vw_msg_destroy (&answer);
        vw_msg_t *p = vw_tb_want (f->scheduler, VW_MSG_ID_agent_presence);
        assert_int_equal (p->agent_presence.dispatchable, !steps[i].enabled);
        vw_msg_destroy (&p);
        vw_msg_t *s = vw_tb_want (f->store, VW_MSG_ID_agent_state);
        assert_string_equal (s->agent_state.status, steps[i].live);
        vw_msg_destroy (&s);
    }
}

//  Operator requests: revoke goes through the store and kicks the session;
//  disconnect of an agent without a session is 404.
static void
test_revoke_and_disconnect (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_connected (f, 30, "gw-1");

    s_revoke (f, "gw-1");
    vw_msg_t *kick = vw_tb_want (f->edge, VW_MSG_ID_session_kick);
    assert_int_equal (kick->session_kick.conn, 30);
    assert_int_equal (kick->session_kick.close_code, 4401);
    vw_msg_destroy (&kick);
    //  The scheduler fails its commands.
    bool revoked_seen = false;
    vw_msg_t *p;
    while (!revoked_seen &&
           (p = vw_tb_expect (f->scheduler, VW_MSG_ID_agent_presence, VW_TB_TIMEOUT_MS))) {
        revoked_seen = p->agent_presence.revoked;
        vw_msg_destroy (&p);
    }
    assert_true (revoked_seen);
    //  Whatever else the revoke sent (offline presence, state) is done with.
    assert_int_equal (vw_tb_sync (f->edge, "registry"), 0);
    vw_tb_peer_t *peers[] = {f->edge, f->store, f->scheduler};
    for (int i = 0; i < 3; i++) {
        vw_tb_kept (peers[i], VW_MSG_INVALID);
        vw_tb_forget (peers[i]);
    }
    //  A revoked agent's hello is refused without asking the store again.
    s_hello (f, 31, "gw-1", S_TOKEN);
    s_expect_reject (f, 31, 4401, "unauthorized");

    vw_msg_t *disconnect = vw_msg_new (VW_MSG_ID_agent_disconnect);
    vw_msg_set_str (&disconnect->agent_disconnect.agent_id, "gw-1");
    vw_tb_expect_reply (f->edge, vw_tb_ask (f->edge, "registry", &disconnect), 404, "not_found");
}

//  Malformed or stale input changes nothing and gets no answer.
static void
test_bad_input_ignored (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    //  A hello without an agent id.
    s_hello (f, 40, NULL, S_TOKEN);
    //  An answer to a challenge nobody sent.
    vw_msg_t *auth = vw_msg_new (VW_MSG_ID_session_auth);
    auth->session_auth.conn = 41;
    vw_msg_set_str (&auth->session_auth.signature, "AAAA");
    assert_int_equal (vw_tb_send (f->edge, "registry", &auth), 0);
    //  Frames and a close from a session that does not exist.
    vw_msg_t *seen = vw_msg_new (VW_MSG_ID_session_seen);
    vw_msg_set_str (&seen->session_seen.agent_id, "gw-1");
    vw_msg_set_str (&seen->session_seen.session_id, "nope");
    vw_msg_set_str (&seen->session_seen.status, "online");
    assert_int_equal (vw_tb_send (f->edge, "registry", &seen), 0);
    vw_msg_t *closed = vw_msg_new (VW_MSG_ID_session_closed);
    closed->session_closed.conn = 42;
    assert_int_equal (vw_tb_send (f->edge, "registry", &closed), 0);
    //  A message the registry does not serve.
    vw_msg_t *stray = vw_msg_new (VW_MSG_ID_command_submit);
    assert_true (vw_tb_ask (f->edge, "registry", &stray) != 0);
    vw_tb_quiet (f->edge, "registry", f->edge, f->store, f->scheduler, NULL);
}

//  Issue 10: heartbeats that change nothing are not a write each. The
//  store gets one agents_seen per interval with every agent heard from and
//  the time it was last heard.
static void
test_last_seen_batched (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_hello (f, 5, "gw-1", S_TOKEN);
    s_store_answers_lookup (f, "gw-1", (t_record_t){.found = true, .token = S_TOKEN});
    char *session = s_expect_welcome (f, 5, "gw-1");
    int64_t before = vw_clock_wall_ms ();
    for (int i = 0; i < 5; i++) {
        vw_msg_t *seen = vw_msg_new (VW_MSG_ID_session_seen);
        vw_msg_set_str (&seen->session_seen.agent_id, "gw-1");
        vw_msg_set_str (&seen->session_seen.session_id, session);
        vw_msg_set_str (&seen->session_seen.status, "online");
        assert_int_equal (vw_tb_send (f->edge, "registry", &seen), 0);
    }
    assert_int_equal (vw_tb_sync (f->edge, "registry"), 0);
    assert_int_equal (vw_tb_kept (f->store, VW_MSG_ID_agent_state), 0);
    vw_msg_t *batch = vw_tb_want (f->store, VW_MSG_ID_agents_seen);
    json_t *seen = json_loads (batch->agents_seen.seen, 0, NULL);
    assert_int_equal (json_array_size (seen), 1);
    assert_string_equal (json_string_value (json_array_get (json_array_get (seen, 0), 0)), "gw-1");
    assert_true (json_integer_value (json_array_get (json_array_get (seen, 0), 1)) >= before);
    json_decref (seen);
    vw_msg_destroy (&batch);
    free (session);
}

static vw_msg_t *
s_agent_get_msg (const char *agent_id)
{
    vw_msg_t *get = vw_msg_new (VW_MSG_ID_agent_get);
    vw_msg_set_str (&get->agent_get.agent_id, agent_id);
    return get;
}

//  Issue 10: GET /agents/{id} of an agent the registry holds is answered
//  from memory with the live fields as they are now, without the store;
//  the fields the registry does not change come from the first record.
static void
test_agent_get_from_memory (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_hello (f, 7, "gw-1", S_TOKEN);
    int64_t before = vw_clock_wall_ms ();
    s_store_answers_lookup (f, "gw-1",
                            (t_record_t){.found = true,
                                         .token = S_TOKEN,
                                         .labels = "{\"site\":\"fra\"}",
                                         .hostname = "old-host",
                                         .capabilities = "[\"ping\"]",
                                         .created_at = 1700000000000,
                                         .connected_at = 1700000001000,
                                         .last_seen = 1700000002000,
                                         .connect_count = 3,
                                         .disconnect_count = 3});
    char *session = s_expect_welcome (f, 7, "gw-1");

    vw_msg_t *get = s_agent_get_msg ("gw-1");
    vw_msg_t *reply = vw_tb_call (f->edge, "registry", &get, 2000);
    assert_non_null (reply);
    assert_int_equal (reply->reply.status, 200);
    json_error_t error;
    json_t *agent = json_loads (reply->reply.json, 0, &error);
    assert_non_null (agent);
    assert_string_equal (json_string_value (json_object_get (agent, "agent_id")), "gw-1");
    assert_string_equal (json_string_value (json_object_get (agent, "status")), "online");
    //  The hello's hostname and version replaced the row's; its capabilities
    //  were absent, so the row's stay (as vw_agents_apply_state keeps them).
    assert_string_equal (json_string_value (json_object_get (agent, "hostname")), "host-1");
    assert_string_equal (json_string_value (json_object_get (agent, "version")), "1.0.0");
    assert_string_equal (
        json_string_value (json_object_get (json_object_get (agent, "labels"), "site")), "fra");
    assert_int_equal (json_object_size (json_object_get (agent, "reported_labels")), 0);
    assert_string_equal (
        json_string_value (json_array_get (json_object_get (agent, "capabilities"), 0)), "ping");
    assert_string_equal (json_string_value (json_object_get (agent, "session_id")), session);
    assert_true (json_integer_value (json_object_get (agent, "connected_at")) >= before);
    assert_true (json_integer_value (json_object_get (agent, "last_seen")) >= before);
    assert_int_equal (json_integer_value (json_object_get (agent, "created_at")), 1700000000000);
    assert_int_equal (json_integer_value (json_object_get (agent, "connect_count")), 4);
    assert_int_equal (json_integer_value (json_object_get (agent, "disconnect_count")), 3);
    assert_true (json_is_false (json_object_get (agent, "maintenance")));
    assert_true (json_is_null (json_object_get (agent, "revoked_at")));
    json_decref (agent);
    vw_msg_destroy (&reply);
    assert_int_equal (vw_tb_kept (f->store, VW_MSG_ID_agent_get), 0);

    //  Offline: no session, the disconnection counted, still from memory.
    vw_msg_t *closed = vw_msg_new (VW_MSG_ID_session_closed);
    closed->session_closed.conn = 7;
    vw_msg_set_str (&closed->session_closed.agent_id, "gw-1");
    vw_msg_set_str (&closed->session_closed.session_id, session);
    assert_int_equal (vw_tb_send (f->edge, "registry", &closed), 0);
    get = s_agent_get_msg ("gw-1");
    reply = vw_tb_call (f->edge, "registry", &get, 2000);
    assert_non_null (reply);
    assert_int_equal (reply->reply.status, 200);
    agent = json_loads (reply->reply.json, 0, &error);
    assert_non_null (agent);
    assert_string_equal (json_string_value (json_object_get (agent, "status")), "offline");
    assert_true (json_is_null (json_object_get (agent, "session_id")));
    assert_int_equal (json_integer_value (json_object_get (agent, "disconnect_count")), 4);
    json_decref (agent);
    vw_msg_destroy (&reply);
    assert_int_equal (vw_tb_kept (f->store, VW_MSG_ID_agent_get), 0);
    free (session);
}

//  An agent the registry does not hold is the store's to answer: the
//  request goes there and its reply comes back as it was.
static void
test_agent_get_not_held_asks_the_store (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    vw_msg_t *get = s_agent_get_msg ("gw-9");
    uint64_t rid = vw_tb_ask (f->edge, "registry", &get);
    vw_msg_t *forwarded = vw_tb_want (f->store, VW_MSG_ID_agent_get);
    assert_string_equal (forwarded->agent_get.agent_id, "gw-9");
    vw_tb_answer (f->store, "registry", &forwarded, 404, NULL, "not_found");
    vw_tb_expect_reply (f->edge, rid, 404, "not_found");

    get = s_agent_get_msg ("gw-8");
    rid = vw_tb_ask (f->edge, "registry", &get);
    forwarded = vw_tb_want (f->store, VW_MSG_ID_agent_get);
    vw_tb_answer (f->store, "registry", &forwarded, 200, "{\"agent_id\":\"gw-8\"}", NULL);
    vw_msg_t *reply = vw_tb_expect_rid (f->edge, rid, 2000);
    assert_non_null (reply);
    assert_int_equal (reply->reply.status, 200);
    assert_string_equal (reply->reply.json, "{\"agent_id\":\"gw-8\"}");
    vw_msg_destroy (&reply);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_last_seen_batched, s_setup_short_interval,
                                         vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_hello_good_token_welcomed, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_hello_bad_token_rejected, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_edge_lost_ends_its_sessions, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_resync_takes_sessions_back, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_token_rotation, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_hello_unknown_or_revoked_rejected, s_setup,
                                         vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_hello_store_error_unavailable, s_setup,
                                         vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_hello_answer_from_the_wrong_peer_ignored, s_setup,
                                         vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_hello_ed25519_challenge, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_revoked_during_challenge_not_welcomed, s_setup,
                                         vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_revoked_during_lookup_not_welcomed, s_setup,
                                         vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_maintenance_set_during_lookup_kept, s_setup,
                                         vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_maintenance_cleared_during_lookup_kept, s_setup,
                                         vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_maintenance_applied_once_saved, s_setup,
                                         vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_revoke_and_disconnect, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_bad_input_ignored, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_agent_get_from_memory, s_setup, vw_tb_teardown),
        cmocka_unit_test_setup_teardown (test_agent_get_not_held_asks_the_store, s_setup,
                                         vw_tb_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
