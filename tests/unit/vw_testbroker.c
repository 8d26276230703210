/*  vw_testbroker - see vw_testbroker.h. */
#include "vw_testbroker.h"
#include "vw_broker.h"
#include "vw_clock.h"
#include "vw_lifecycle.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define S_MAX_ACTORS 8
#define S_MAX_PEERS  8

struct vw_tb_peer_t {
    char name[VW_ADDR_MAX];
    zsock_t *sock;
    zlist_t *backlog;  //  messages of a bundle not yet read
    zlistx_t *kept;    //  received, not yet expected
    uint64_t rid;
};

struct vw_tb_t {
    char endpoint[96];
    char events[96];
    vw_broker_args_t args;
    zactor_t *broker;
    zactor_t *actors[S_MAX_ACTORS];
    int nactors;
    vw_tb_peer_t *peers[S_MAX_PEERS];
    int npeers;
    zsock_t *subs[S_MAX_PEERS];
    int nsubs;
    vw_config_t *config;  //  made by vw_tb_config
};

void
vw_tb_fresh_endpoint (char *buf, size_t size, const char *what)
{
    static int counter;
    snprintf (buf, size, "inproc://vw-tb-%d-%s-%d", (int) getpid (), what, ++counter);
}

vw_tb_t *
vw_tb_new (void)
{
    vw_tb_t *self = (vw_tb_t *) zmalloc (sizeof (vw_tb_t));
    vw_tb_fresh_endpoint (self->endpoint, sizeof self->endpoint, "broker");
    vw_tb_fresh_endpoint (self->events, sizeof self->events, "events");
    self->args.inproc_endpoint = self->endpoint;
    self->args.events_endpoint = self->events;
    self->broker = zactor_new (vw_broker_actor, &self->args);
    char *reason = NULL;
    int rc = self->broker ? vw_lifecycle_await (self->broker, VW_TB_TIMEOUT_MS, &reason) : -1;
    if (rc) {
        fprintf (stderr, "vw_testbroker: the broker did not start: %d %s\n", rc,
                 reason ? reason : "");
        free (reason);
        vw_tb_destroy (&self);
    }
    return self;
}

static void
s_peer_destroy (vw_tb_peer_t **peer_p)
{
    vw_tb_peer_t *peer = *peer_p;
    if (!peer)
        return;
    vw_tb_forget (peer);
    zlistx_destroy (&peer->kept);
    vw_msg_backlog_destroy (&peer->backlog);
    zsock_destroy (&peer->sock);
    free (peer);
    *peer_p = NULL;
}

void
vw_tb_destroy (vw_tb_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vw_tb_t *self = *self_p;
    while (self->nactors)
        zactor_destroy (&self->actors[--self->nactors]);
    while (self->npeers)
        s_peer_destroy (&self->peers[--self->npeers]);
    while (self->nsubs)
        zsock_destroy (&self->subs[--self->nsubs]);
    zactor_destroy (&self->broker);
    vw_config_destroy (&self->config);
    free (self);
    *self_p = NULL;
}

const char *
vw_tb_endpoint (vw_tb_t *self)
{
    return self->endpoint;
}

int
vw_tb_start (vw_tb_t *self, const vw_actor_class_t *cls, void *args, char **reason)
{
    assert (self->nactors < S_MAX_ACTORS);
    //  vw_actor_task reads its args before it reports; they may then go.
    vw_actor_args_t actor_args = {cls, self->endpoint, args};
    zactor_t *actor = zactor_new (vw_actor_task, &actor_args);
    if (!actor)
        return VW_EXIT_FAILURE;
    char *why = NULL;
    int rc = vw_lifecycle_await (actor, VW_TB_TIMEOUT_MS, &why);
    self->actors[self->nactors++] = actor;
    if (reason)
        *reason = why;
    else
        free (why);
    return rc;
}

vw_tb_peer_t *
vw_tb_peer (vw_tb_t *self, const char *name)
{
    assert (self->npeers < S_MAX_PEERS && strlen (name) < VW_ADDR_MAX);
    vw_tb_peer_t *peer = (vw_tb_peer_t *) zmalloc (sizeof (vw_tb_peer_t));
    snprintf (peer->name, sizeof peer->name, "%s", name);
    peer->kept = zlistx_new ();
    peer->sock = zsock_new (ZMQ_DEALER);
    zsock_set_identity (peer->sock, name);
    zsock_set_linger (peer->sock, 0);
    self->peers[self->npeers++] = peer;
    if (zsock_connect (peer->sock, "%s", self->endpoint))
        return NULL;
    vw_msg_t *join = vw_msg_new (VW_MSG_ID_actor_join);
    vw_msg_set_str (&join->actor_join.actor, name);
    join->actor_join.pid = getpid ();
    vw_msg_t *joined = vw_tb_call (peer, VW_BROKER_ADDRESS, &join, VW_TB_TIMEOUT_MS);
    bool ok = joined && joined->id == VW_MSG_ID_actor_joined;
    vw_msg_destroy (&joined);
    return ok ? peer : NULL;
}

zsock_t *
vw_tb_peer_socket (vw_tb_peer_t *peer)
{
    return peer->sock;
}

zsock_t *
vw_tb_events (vw_tb_t *self, const char *prefix)
{
    assert (self->nsubs < S_MAX_PEERS);
    zsock_t *sub = zsock_new_sub (self->events, prefix);
    if (sub)
        self->subs[self->nsubs++] = sub;
    return sub;
}

int
vw_tb_send (vw_tb_peer_t *peer, const char *to, vw_msg_t **msg_p)
{
    return vw_msg_send (msg_p, peer->sock, to);
}

uint64_t
vw_tb_ask (vw_tb_peer_t *peer, const char *to, vw_msg_t **msg_p)
{
    //  Far from the actors' own counters, so a test sees whose rid is whose.
    uint64_t rid = (*msg_p)->rid = 1000000 + ++peer->rid;
    if (vw_tb_send (peer, to, msg_p)) {
        vw_msg_destroy (msg_p);
        return 0;
    }
    return rid;
}

//  Reads one message that has arrived or arrives before the deadline.
static vw_msg_t *
s_read (vw_tb_peer_t *peer, int64_t deadline)
{
    if (peer->backlog && zlist_size (peer->backlog))
        return vw_msg_recv_one (peer->sock, &peer->backlog);
    while (true) {
        int64_t left = deadline - vw_clock_mono_ms ();
        if (left < 0)
            left = 0;
        zmq_pollitem_t item = {zsock_resolve (peer->sock), 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll (&item, 1, (long) left);
        if (rc == -1 && zmq_errno () == EINTR)
            continue;
        if (rc <= 0)
            return NULL;
        vw_msg_t *msg = vw_msg_recv_one (peer->sock, &peer->backlog);
        if (msg)
            return msg;
        if (vw_clock_mono_ms () >= deadline)
            return NULL;
    }
}

typedef bool (s_match_fn) (const vw_msg_t *msg, uint64_t arg);

static bool
s_match_kind (const vw_msg_t *msg, uint64_t id)
{
    return id == VW_MSG_INVALID || msg->id == (vw_msg_id_t) id;
}

static bool
s_match_rid (const vw_msg_t *msg, uint64_t rid)
{
    return msg->rid == rid;
}

static vw_msg_t *
s_expect (vw_tb_peer_t *peer, s_match_fn *match, uint64_t arg, int timeout_ms)
{
    for (vw_msg_t *msg = (vw_msg_t *) zlistx_first (peer->kept); msg;
         msg = (vw_msg_t *) zlistx_next (peer->kept))
        if (match (msg, arg))
            return (vw_msg_t *) zlistx_detach_cur (peer->kept);
    int64_t deadline = vw_clock_mono_ms () + timeout_ms;
    vw_msg_t *msg;
    while ((msg = s_read (peer, deadline))) {
        if (match (msg, arg))
            return msg;
        zlistx_add_end (peer->kept, msg);
    }
    return NULL;
}

vw_msg_t *
vw_tb_recv (vw_tb_peer_t *peer, int timeout_ms)
{
    return s_expect (peer, s_match_kind, VW_MSG_INVALID, timeout_ms);
}

vw_msg_t *
vw_tb_expect (vw_tb_peer_t *peer, vw_msg_id_t id, int timeout_ms)
{
    return s_expect (peer, s_match_kind, (uint64_t) id, timeout_ms);
}

vw_msg_t *
vw_tb_expect_rid (vw_tb_peer_t *peer, uint64_t rid, int timeout_ms)
{
    return s_expect (peer, s_match_rid, rid, timeout_ms);
}

vw_msg_t *
vw_tb_call (vw_tb_peer_t *peer, const char *to, vw_msg_t **msg_p, int timeout_ms)
{
    uint64_t rid = vw_tb_ask (peer, to, msg_p);
    return rid ? vw_tb_expect_rid (peer, rid, timeout_ms) : NULL;
}

int
vw_tb_sync (vw_tb_peer_t *peer, const char *to)
{
    vw_msg_t *ping = vw_msg_new (VW_MSG_ID_ping);
    vw_msg_t *pong = vw_tb_call (peer, to, &ping, VW_TB_TIMEOUT_MS);
    bool ok = pong && pong->id == VW_MSG_ID_pong;
    vw_msg_destroy (&pong);
    return ok ? 0 : -1;
}

size_t
vw_tb_kept (vw_tb_peer_t *peer, vw_msg_id_t id)
{
    vw_msg_t *msg;
    while ((msg = s_read (peer, 0)))
        zlistx_add_end (peer->kept, msg);
    size_t n = 0;
    for (msg = (vw_msg_t *) zlistx_first (peer->kept); msg;
         msg = (vw_msg_t *) zlistx_next (peer->kept))
        if (s_match_kind (msg, (uint64_t) id))
            n++;
    return n;
}

void
vw_tb_forget (vw_tb_peer_t *peer)
{
    vw_msg_t *msg;
    while ((msg = (vw_msg_t *) zlistx_detach (peer->kept, NULL)))
        vw_msg_destroy (&msg);
}

//  --------------------------------------------------------------------------
//  For cmocka tests

vw_config_t *
vw_tb_config (vw_tb_t *self)
{
    if (!self->config)
        self->config = vw_config_new_defaults ();
    return self->config;
}

int
vw_tb_peers (vw_tb_t *self, ...)
{
    va_list args;
    va_start (args, self);
    int rc = 0;
    const char *name;
    while ((name = va_arg (args, const char *))) {
        vw_tb_peer_t **peer_p = va_arg (args, vw_tb_peer_t **);
        *peer_p = vw_tb_peer (self, name);
        if (!*peer_p)
            rc = -1;
    }
    va_end (args);
    return rc;
}

int
vw_tb_run (vw_tb_t *self, const vw_actor_class_t *cls, void *args)
{
    char *reason = NULL;
    int rc = vw_tb_start (self, cls, args, &reason);
    if (rc)
        print_error ("%s did not start: %d %s\n", cls->name, rc, reason ? reason : "");
    free (reason);
    return rc ? -1 : 0;
}

int
vw_tb_teardown (void **state)
{
    vw_tb_t **tb_p = (vw_tb_t **) *state;
    if (tb_p)
        vw_tb_destroy (tb_p);
    free (tb_p);
    return 0;
}

vw_msg_t *
vw_tb_want (vw_tb_peer_t *peer, vw_msg_id_t id)
{
    vw_msg_t *msg = vw_tb_expect (peer, id, VW_TB_TIMEOUT_MS);
    if (!msg)
        fail_msg ("the %s got no %s within %d ms", peer->name, vw_msg_name (id), VW_TB_TIMEOUT_MS);
    return msg;
}

void
vw_tb_answer (vw_tb_peer_t *peer, const char *to, vw_msg_t **request_p, int64_t status,
              const char *json, const char *code)
{
    vw_msg_t *reply = vw_msg_new (VW_MSG_ID_reply);
    reply->rid = (*request_p)->rid;
    reply->reply.status = status;
    vw_msg_set_str (&reply->reply.json, json);
    vw_msg_set_str (&reply->reply.code, code);
    if (code)
        vw_msg_set_str (&reply->reply.message, "as the test said");
    vw_msg_destroy (request_p);
    assert_int_equal (vw_tb_send (peer, to, &reply), 0);
}

void
vw_tb_answer_error (vw_tb_peer_t *peer, const char *to, vw_msg_t **request_p, const char *code)
{
    vw_msg_t *err = vw_msg_new (VW_MSG_ID_error);
    err->rid = (*request_p)->rid;
    vw_msg_set_str (&err->error.code, code);
    vw_msg_destroy (request_p);
    assert_int_equal (vw_tb_send (peer, to, &err), 0);
}

void
vw_tb_check_reply (vw_msg_t **reply_p, int64_t status, const char *code)
{
    vw_msg_t *reply = *reply_p;
    if (reply->id != VW_MSG_ID_reply)
        fail_msg ("got '%s', wanted a reply with status %lld", vw_msg_name (reply->id),
                  (long long) status);
    if (reply->reply.status != status)
        fail_msg ("status %lld (%s: %s), wanted %lld", (long long) reply->reply.status,
                  reply->reply.code ? reply->reply.code : "-",
                  reply->reply.message ? reply->reply.message : "-", (long long) status);
    if (code)
        assert_string_equal (reply->reply.code, code);
    else
        assert_null (reply->reply.code);
    vw_msg_destroy (reply_p);
}

void
vw_tb_expect_reply (vw_tb_peer_t *peer, uint64_t rid, int64_t status, const char *code)
{
    if (!rid)
        fail_msg ("the %s could not send its request", peer->name);
    vw_msg_t *reply = vw_tb_expect_rid (peer, rid, VW_TB_TIMEOUT_MS);
    if (!reply)
        fail_msg ("the %s got no answer within %d ms", peer->name, VW_TB_TIMEOUT_MS);
    vw_tb_check_reply (&reply, status, code);
}

void
vw_tb_want_audit (vw_tb_peer_t *store, const char *action, const char *target, const char *outcome)
{
    vw_msg_t *audit = vw_tb_want (store, VW_MSG_ID_audit);
    assert_string_equal (audit->audit.action, action);
    if (target)
        assert_string_equal (audit->audit.target, target);
    assert_string_equal (audit->audit.outcome, outcome);
    vw_msg_destroy (&audit);
}

void
vw_tb_quiet (vw_tb_peer_t *peer, const char *to, ...)
{
    if (vw_tb_sync (peer, to))
        fail_msg ("the %s got no pong from %s within %d ms", peer->name, to, VW_TB_TIMEOUT_MS);
    va_list args;
    va_start (args, to);
    vw_tb_peer_t *quiet;
    while ((quiet = va_arg (args, vw_tb_peer_t *))) {
        size_t kept = vw_tb_kept (quiet, VW_MSG_INVALID);
        if (kept) {
            const vw_msg_t *first = (const vw_msg_t *) zlistx_first (quiet->kept);
            va_end (args);
            fail_msg ("the %s got %zu message(s) it should not have, the first '%s'", quiet->name,
                      kept, vw_msg_name (first->id));
        }
    }
    va_end (args);
}

char *
vw_tb_big_payload (size_t bytes)
{
    char *payload = (char *) malloc (bytes + 16);
    if (!payload)
        return NULL;
    int n = snprintf (payload, bytes + 16, "{\"config\":\"");
    memset (payload + n, 'x', bytes);
    snprintf (payload + n + bytes, 16, "\"}");
    return payload;
}
