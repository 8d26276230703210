/*  test_broker - the ROUTER broker (broker/vw_broker).

    Each case starts its own broker on its own inproc:// endpoint and talks
    to it through plain DEALER sockets named like actors, speaking the frames
    an actor speaks. The tcp case runs a second process (tests/helpers/
    remote_actor) whose actor joins over tcp:// and pings back.

    Nothing sleeps: replies are awaited with receive timeouts (a timeout is
    a failure), the PUB/SUB slow joiner is handled by publishing until the
    first event arrives, and the helper process reports READY on a pipe.
*/
#include "vw_broker.h"
#include "vw_lifecycle.h"
#include "vw_msg.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

//  How long any single expected reply may take before the case fails.
#define S_TIMEOUT_MS 5000

//  --------------------------------------------------------------------------
//  Helpers

typedef struct {
    zactor_t *actor;
    vw_broker_args_t args;
    char inproc[96];
    char events[96];
    char tcp[64];
} s_broker_t;

//  A fresh endpoint name for every case (and every broker in a case).

//  Messages of a bundle not yet looked at (actors batch what they send).
static zlist_t *s_backlog;

static void
s_endpoint (char *buf, size_t size, const char *what)
{
    static int counter;
    snprintf (buf, size, "inproc://test-broker-%d-%s-%d", (int) getpid (), what, ++counter);
}

static void
s_broker_start (s_broker_t *b, bool events, const char *tcp)
{
    memset (b, 0, sizeof *b);
    s_endpoint (b->inproc, sizeof b->inproc, "router");
    b->args.inproc_endpoint = b->inproc;
    if (events) {
        s_endpoint (b->events, sizeof b->events, "events");
        b->args.events_endpoint = b->events;
    }
    if (tcp) {
        snprintf (b->tcp, sizeof b->tcp, "%s", tcp);
        b->args.tcp_endpoint = b->tcp;
    }
    b->actor = zactor_new (vw_broker_actor, &b->args);
    assert_non_null (b->actor);
    char *reason = NULL;
    int rc = vw_lifecycle_await (b->actor, S_TIMEOUT_MS, &reason);
    if (rc)
        fail_msg ("broker did not start: %d %s", rc, reason ? reason : "");
    assert_null (reason);
}

static void
s_broker_stop (s_broker_t *b)
{
    zactor_destroy (&b->actor);
    assert_null (b->actor);
}

//  A DEALER that looks like an actor named `name` to the broker.
static zsock_t *
s_client (const char *endpoint, const char *name)
{
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    assert_non_null (sock);
    zsock_set_identity (sock, name);
    zsock_set_rcvtimeo (sock, S_TIMEOUT_MS);
    zsock_set_sndtimeo (sock, S_TIMEOUT_MS);
    zsock_set_linger (sock, 0);
    assert_int_equal (zsock_connect (sock, "%s", endpoint), 0);
    return sock;
}

//  Receives the next message, which must be of kind `id` from `peer`.
static vw_msg_t *
s_expect (zsock_t *sock, vw_msg_id_t id, const char *peer)
{
    vw_msg_t *msg = vw_msg_recv_one (sock, &s_backlog);
    if (!msg)
        fail_msg ("no '%s' from '%s' within %d ms", vw_msg_name (id), peer, S_TIMEOUT_MS);
    if (msg->id != id)
        fail_msg ("got '%s' from '%s', wanted '%s'", vw_msg_name (msg->id), msg->peer,
                  vw_msg_name (id));
    assert_string_equal (msg->peer, peer);
    return msg;
}

static void
s_send (zsock_t *sock, const char *to, vw_msg_t **msg_p)
{
    assert_int_equal (vw_msg_send (msg_p, sock, to), 0);
    assert_null (*msg_p);
}

static void
s_join (zsock_t *sock, const char *name, uint64_t rid)
{
    vw_msg_t *join = vw_msg_new (VW_MSG_ID_actor_join);
    join->rid = rid;
    join->actor_join.pid = getpid ();
    vw_msg_set_str (&join->actor_join.actor, name);
    s_send (sock, VW_BROKER_ADDRESS, &join);
    vw_msg_t *ack = s_expect (sock, VW_MSG_ID_actor_joined, VW_BROKER_ADDRESS);
    assert_true (ack->rid == rid);
    assert_non_null (ack->actor_joined.actor);
    assert_string_equal (ack->actor_joined.actor, name);
    vw_msg_destroy (&ack);
}

//  Asks the broker for its counters; returns the parsed JSON (caller decrefs).
static json_t *
s_stats (zsock_t *sock, uint64_t rid)
{
    vw_msg_t *ask = vw_msg_new (VW_MSG_ID_broker_stats);
    ask->rid = rid;
    s_send (sock, VW_BROKER_ADDRESS, &ask);
    vw_msg_t *answer = s_expect (sock, VW_MSG_ID_broker_stats, VW_BROKER_ADDRESS);
    assert_true (answer->rid == rid);
    assert_non_null (answer->broker_stats.json);
    json_error_t jerr;
    json_t *stats = json_loads (answer->broker_stats.json, JSON_REJECT_DUPLICATES, &jerr);
    if (!stats)
        fail_msg ("broker_stats is not JSON (%s): %s", jerr.text, answer->broker_stats.json);
    vw_msg_destroy (&answer);
    assert_true (json_is_object (json_object_get (stats, "actors")));
    assert_true (json_is_integer (json_object_get (stats, "errors")));
    return stats;
}

static json_int_t
s_stat (json_t *stats, const char *actor, const char *key)
{
    json_t *entry = json_object_get (json_object_get (stats, "actors"), actor);
    if (!entry)
        fail_msg ("broker_stats lists no actor '%s'", actor);
    json_t *value = json_object_get (entry, key);
    assert_true (json_is_integer (value));
    return json_integer_value (value);
}

static void
s_ping_broker (zsock_t *sock, uint64_t rid)
{
    vw_msg_t *ping = vw_msg_new (VW_MSG_ID_ping);
    ping->rid = rid;
    ping->ping.sent_ms = (int64_t) rid * 3;
    s_send (sock, VW_BROKER_ADDRESS, &ping);
    vw_msg_t *pong = s_expect (sock, VW_MSG_ID_pong, VW_BROKER_ADDRESS);
    assert_true (pong->rid == rid);
    assert_true (pong->pong.sent_ms == (int64_t) rid * 3);
    assert_true (pong->pong.healthy);
    assert_string_equal (pong->pong.actor, VW_BROKER_ADDRESS);
    vw_msg_destroy (&pong);
}

//  --------------------------------------------------------------------------
//  inproc

static void
test_join_and_route_both_ways (void **state)
{
    s_broker_t b;
    s_broker_start (&b, false, NULL);
    zsock_t *alice = s_client (b.inproc, "alice");
    zsock_t *bob = s_client (b.inproc, "bob");
    s_join (alice, "alice", 1);
    s_join (bob, "bob", 0xfeedfacecafebeefull);

    //  alice -> bob: 100 requests, in order, with their rids and bodies.
    enum { N = 100 };
    for (int i = 1; i <= N; i++) {
        vw_msg_t *ping = vw_msg_new (VW_MSG_ID_ping);
        ping->rid = 1000 + (uint64_t) i;
        ping->ping.sent_ms = -i;
        s_send (alice, "bob", &ping);
    }
    for (int i = 1; i <= N; i++) {
        vw_msg_t *ping = s_expect (bob, VW_MSG_ID_ping, "alice");
        assert_true (ping->rid == 1000 + (uint64_t) i);
        assert_true (ping->ping.sent_ms == -i);
        //  bob -> alice: the answer, addressed back to the peer.
        vw_msg_t *pong = vw_msg_new (VW_MSG_ID_pong);
        pong->rid = ping->rid;
        pong->pong.sent_ms = ping->ping.sent_ms;
        pong->pong.healthy = i % 2;
        vw_msg_set_str (&pong->pong.actor, "bob");
        vw_msg_set_str (&pong->pong.detail, i % 3 ? "caf\xc3\xa9" : "");
        s_send (bob, ping->peer, &pong);
        vw_msg_destroy (&ping);
    }
    for (int i = 1; i <= N; i++) {
        vw_msg_t *pong = s_expect (alice, VW_MSG_ID_pong, "bob");
        assert_true (pong->rid == 1000 + (uint64_t) i);
        assert_true (pong->pong.sent_ms == -i);
        assert_int_equal (pong->pong.healthy, i % 2);
        assert_string_equal (pong->pong.actor, "bob");
        assert_string_equal (pong->pong.detail, i % 3 ? "caf\xc3\xa9" : "");
        vw_msg_destroy (&pong);
    }

    //  rid 0 (no reply expected) travels as 0; so does UINT64_MAX.
    const uint64_t rids[] = {0, UINT64_MAX};
    for (int i = 0; i < 2; i++) {
        vw_msg_t *err = vw_msg_new (VW_MSG_ID_error);
        err->rid = rids[i];
        vw_msg_set_str (&err->error.code, "bad_message");
        s_send (bob, "alice", &err);
        err = s_expect (alice, VW_MSG_ID_error, "bob");
        assert_true (err->rid == rids[i]);
        assert_string_equal (err->error.code, "bad_message");
        assert_null (err->error.target);
        vw_msg_destroy (&err);
    }

    zsock_destroy (&alice);
    zsock_destroy (&bob);
    s_broker_stop (&b);
}

static void
test_unknown_actor_gets_error (void **state)
{
    s_broker_t b;
    s_broker_start (&b, false, NULL);
    zsock_t *alice = s_client (b.inproc, "alice");
    s_join (alice, "alice", 1);

    const char *targets[] = {"nobody", "bob", "x", "0123456789012345678901234567890"};
    for (int i = 0; i < 4; i++) {
        vw_msg_t *ping = vw_msg_new (VW_MSG_ID_ping);
        ping->rid = 42 + (uint64_t) i;
        s_send (alice, targets[i], &ping);
        vw_msg_t *err = s_expect (alice, VW_MSG_ID_error, VW_BROKER_ADDRESS);
        assert_true (err->rid == 42 + (uint64_t) i);
        assert_non_null (err->error.code);
        assert_string_equal (err->error.code, "unknown_actor");
        assert_non_null (err->error.target);
        assert_string_equal (err->error.target, targets[i]);
        assert_non_null (err->error.message);
        assert_non_null (strstr (err->error.message, targets[i]));
        vw_msg_destroy (&err);
    }

    //  Once bob connects, the same address is routable.
    zsock_t *bob = s_client (b.inproc, "bob");
    s_join (bob, "bob", 2);
    vw_msg_t *ping = vw_msg_new (VW_MSG_ID_ping);
    ping->rid = 7;
    s_send (alice, "bob", &ping);
    ping = s_expect (bob, VW_MSG_ID_ping, "alice");
    assert_true (ping->rid == 7);
    vw_msg_destroy (&ping);

    zsock_destroy (&bob);
    zsock_destroy (&alice);
    s_broker_stop (&b);
}

static void
test_broker_answers_ping (void **state)
{
    s_broker_t b;
    s_broker_start (&b, false, NULL);
    //  The broker answers whoever asks, joined or not.
    zsock_t *anon = s_client (b.inproc, "stranger");
    s_ping_broker (anon, 5);
    s_ping_broker (anon, 0);
    zsock_t *alice = s_client (b.inproc, "alice");
    s_join (alice, "alice", 9);
    s_ping_broker (alice, 6);
    zsock_destroy (&alice);
    zsock_destroy (&anon);
    s_broker_stop (&b);
}

//  Joins as an actor of another process (an instance not the broker's).
static void
s_join_remote (zsock_t *sock, const char *name, int64_t instance, uint64_t rid)
{
    vw_msg_t *join = vw_msg_new (VW_MSG_ID_actor_join);
    join->rid = rid;
    join->actor_join.pid = 4242;
    join->actor_join.instance = instance;
    vw_msg_set_str (&join->actor_join.actor, name);
    s_send (sock, VW_BROKER_ADDRESS, &join);
    vw_msg_t *ack = s_expect (sock, VW_MSG_ID_actor_joined, VW_BROKER_ADDRESS);
    assert_true (ack->rid == rid);
    vw_msg_destroy (&ack);
}

static void
s_watch (zsock_t *sock, const char *prefix)
{
    vw_msg_t *watch = vw_msg_new (VW_MSG_ID_actor_watch);
    vw_msg_set_str (&watch->actor_watch.prefix, prefix);
    s_send (sock, VW_BROKER_ADDRESS, &watch);
}

static void
s_expect_lost (zsock_t *sock, const char *actor, const char *reason)
{
    vw_msg_t *lost = s_expect (sock, VW_MSG_ID_actor_lost, VW_BROKER_ADDRESS);
    assert_string_equal (lost->actor_lost.actor, actor);
    assert_string_equal (lost->actor_lost.reason, reason);
    vw_msg_destroy (&lost);
}

//  A heartbeat (a ping naming its process instance): the pong says
//  whether the broker holds the sender, and as that instance.
static vw_msg_t *
s_heartbeat (zsock_t *sock, int64_t instance, uint64_t rid)
{
    vw_msg_t *ping = vw_msg_new (VW_MSG_ID_ping);
    ping->rid = rid;
    ping->ping.instance = instance;
    s_send (sock, VW_BROKER_ADDRESS, &ping);
    vw_msg_t *pong = s_expect (sock, VW_MSG_ID_pong, VW_BROKER_ADDRESS);
    assert_true (pong->rid == rid);
    return pong;
}

//  Watchers hear of actors of their prefix that leave, and of one whose
//  name another process joined under (replaced); not of others.
static void
test_watchers_hear_of_lost_actors (void **state)
{
    s_broker_t b;
    s_broker_start (&b, false, NULL);
    zsock_t *registry = s_client (b.inproc, "registry");
    s_join (registry, "registry", 1);
    s_watch (registry, "edge");
    zsock_t *edge = s_client (b.inproc, "edge@a");
    s_join_remote (edge, "edge@a", 111, 2);
    zsock_t *api = s_client (b.inproc, "api@a");
    s_join_remote (api, "api@a", 111, 3);
    //  A leave of another prefix says nothing; a leave of an edge does.
    vw_msg_t *leave = vw_msg_new (VW_MSG_ID_actor_leave);
    s_send (api, VW_BROKER_ADDRESS, &leave);
    leave = vw_msg_new (VW_MSG_ID_actor_leave);
    s_send (edge, VW_BROKER_ADDRESS, &leave);
    s_expect_lost (registry, "edge@a", "left");
    //  Joined again, then another process joins under the name.
    s_join_remote (edge, "edge@a", 111, 4);
    zsock_t *other = s_client (b.inproc, "edge@a");
    s_join_remote (other, "edge@a", 222, 5);
    s_expect_lost (registry, "edge@a", "replaced");
    //  The one that took the name is held; the one replaced is told so.
    vw_msg_t *pong = s_heartbeat (other, 222, 6);
    assert_true (pong->pong.healthy);
    vw_msg_destroy (&pong);
    //  The replaced process's leave (its instance) does not end the name:
    //  no actor_lost reaches the watcher before the answer to a later ask.
    leave = vw_msg_new (VW_MSG_ID_actor_leave);
    leave->actor_leave.instance = 111;
    s_send (other, VW_BROKER_ADDRESS, &leave);
    json_decref (s_stats (other, 8));
    json_decref (s_stats (registry, 9));
    json_t *stats = s_stats (registry, 7);
    assert_true (json_integer_value (json_object_get (stats, "lost")) == 1);
    json_decref (stats);
    zsock_destroy (&other);
    zsock_destroy (&api);
    zsock_destroy (&edge);
    zsock_destroy (&registry);
    s_broker_stop (&b);
}

//  A remote actor that stops heartbeating is lost after peer_timeout_ms;
//  its next heartbeat hears "not joined" (join again); one of this
//  process or a plain ping is always answered healthy.
static void
test_silent_remote_actor_is_lost (void **state)
{
    s_broker_t b;
    memset (&b, 0, sizeof b);
    s_endpoint (b.inproc, sizeof b.inproc, "router");
    b.args.inproc_endpoint = b.inproc;
    b.args.peer_timeout_ms = 300;
    b.actor = zactor_new (vw_broker_actor, &b.args);
    char *reason = NULL;
    assert_int_equal (vw_lifecycle_await (b.actor, S_TIMEOUT_MS, &reason), 0);
    zsock_t *registry = s_client (b.inproc, "registry");
    s_join (registry, "registry", 1);
    s_watch (registry, "edge");
    zsock_t *edge = s_client (b.inproc, "edge@b");
    s_join_remote (edge, "edge@b", 333, 2);
    vw_msg_t *pong = s_heartbeat (edge, 333, 3);
    assert_true (pong->pong.healthy);
    vw_msg_destroy (&pong);
    //  Silence: the broker checks once a second.
    s_expect_lost (registry, "edge@b", "silent");
    pong = s_heartbeat (edge, 333, 4);
    assert_false (pong->pong.healthy);
    assert_string_equal (pong->pong.detail, "not joined");
    vw_msg_destroy (&pong);
    //  Joined again, it is held again.
    s_join_remote (edge, "edge@b", 333, 5);
    pong = s_heartbeat (edge, 333, 6);
    assert_true (pong->pong.healthy);
    vw_msg_destroy (&pong);
    zsock_destroy (&edge);
    zsock_destroy (&registry);
    s_broker_stop (&b);
}

static void
s_send_event (zsock_t *sock, const char *topic, const char *json)
{
    vw_msg_t *event = vw_msg_new (VW_MSG_ID_event);
    vw_msg_set_str (&event->event.topic, topic);
    vw_msg_set_str (&event->event.json, json);
    s_send (sock, VW_BROKER_ADDRESS, &event);
}

//  Receives [topic][json] from the SUB, skipping the synchronisation events.
static void
s_expect_event (zsock_t *sub, const char *topic, const char *json)
{
    for (;;) {
        zmsg_t *zmsg = zmsg_recv (sub);
        if (!zmsg)
            fail_msg ("no event '%s' within %d ms", topic, S_TIMEOUT_MS);
        assert_int_equal (zmsg_size (zmsg), 2);
        char *t = zmsg_popstr (zmsg);
        char *j = zmsg_popstr (zmsg);
        zmsg_destroy (&zmsg);
        bool sync = strcmp (t, "agent.sync") == 0;
        if (!sync) {
            assert_string_equal (t, topic);
            assert_string_equal (j, json);
        }
        free (t);
        free (j);
        if (!sync)
            return;
    }
}

static void
test_events_are_published (void **state)
{
    s_broker_t b;
    s_broker_start (&b, true, NULL);
    zsock_t *alice = s_client (b.inproc, "alice");
    s_join (alice, "alice", 1);
    zsock_t *sub = zsock_new (ZMQ_SUB);
    zsock_set_subscribe (sub, "agent.");
    zsock_set_rcvtimeo (sub, S_TIMEOUT_MS);
    assert_int_equal (zsock_connect (sub, "%s", b.events), 0);

    //  Slow joiner: the subscription reaches the PUB asynchronously. Publish
    //  until the first event arrives (bounded), then everything after it is
    //  delivered in order.
    zpoller_t *poller = zpoller_new (sub, NULL);
    bool synced = false;
    for (int i = 0; i < 500 && !synced; i++) {
        s_send_event (alice, "agent.sync", "{}");
        synced = zpoller_wait (poller, 10) == sub;
    }
    zpoller_destroy (&poller);
    assert_true (synced);

    //  Not subscribed, and malformed (no json): neither appears; by order,
    //  the next event seen must be agent.online.
    s_send_event (alice, "other.topic", "{\"no\":1}");
    vw_msg_t *bad = vw_msg_new (VW_MSG_ID_event);
    vw_msg_set_str (&bad->event.topic, "agent.bad");
    s_send (alice, VW_BROKER_ADDRESS, &bad);
    s_send_event (alice, "agent.online", "{\"agent\":\"a1\"}");
    s_send_event (alice, "agent.offline", "{\"agent\":\"a1\",\"why\":\"caf\xc3\xa9\"}");
    s_expect_event (sub, "agent.online", "{\"agent\":\"a1\"}");
    s_expect_event (sub, "agent.offline", "{\"agent\":\"a1\",\"why\":\"caf\xc3\xa9\"}");
    //  Events from any sender, joined or not (sent only now: the broker
    //  fair-queues senders, so there is no order across them).
    zsock_t *anon = s_client (b.inproc, "stranger");
    s_send_event (anon, "agent.status", "{}");
    s_expect_event (sub, "agent.status", "{}");

    //  Events get no reply: the next thing alice receives answers her ping.
    s_ping_broker (alice, 77);

    zsock_destroy (&anon);
    zsock_destroy (&sub);
    zsock_destroy (&alice);
    s_broker_stop (&b);
}

static void
test_stats_count_messages (void **state)
{
    s_broker_t b;
    s_broker_start (&b, false, NULL);
    zsock_t *alice = s_client (b.inproc, "alice");
    zsock_t *bob = s_client (b.inproc, "bob");
    s_join (alice, "alice", 1);
    s_join (bob, "bob", 1);

    json_t *stats = s_stats (alice, 50);
    //  The join itself is not counted (alice was not known yet); the stats
    //  request is, as it is counted before being served.
    assert_int_equal (s_stat (stats, "alice", "in"), 1);
    assert_int_equal (s_stat (stats, "alice", "out"), 0);
    assert_int_equal (s_stat (stats, "alice", "pid"), getpid ());
    assert_int_equal (s_stat (stats, "bob", "in"), 0);
    assert_int_equal (s_stat (stats, "bob", "out"), 0);
    assert_int_equal (json_integer_value (json_object_get (stats, "errors")), 0);
    json_decref (stats);

    for (int i = 0; i < 3; i++) {
        vw_msg_t *ping = vw_msg_new (VW_MSG_ID_ping);
        s_send (alice, "bob", &ping);
        ping = s_expect (bob, VW_MSG_ID_ping, "alice");
        vw_msg_destroy (&ping);
    }
    for (int i = 0; i < 2; i++) {
        vw_msg_t *pong = vw_msg_new (VW_MSG_ID_pong);
        s_send (bob, "alice", &pong);
        pong = s_expect (alice, VW_MSG_ID_pong, "bob");
        vw_msg_destroy (&pong);
    }
    vw_msg_t *lost = vw_msg_new (VW_MSG_ID_ping);
    lost->rid = 3;
    s_send (alice, "ghost", &lost);
    lost = s_expect (alice, VW_MSG_ID_error, VW_BROKER_ADDRESS);
    vw_msg_destroy (&lost);

    stats = s_stats (alice, 51);
    //  alice: 2 stats requests + 3 pings + 1 to ghost; bob: 2 pongs.
    assert_int_equal (s_stat (stats, "alice", "in"), 6);
    assert_int_equal (s_stat (stats, "alice", "out"), 2);
    assert_int_equal (s_stat (stats, "bob", "in"), 2);
    assert_int_equal (s_stat (stats, "bob", "out"), 3);
    assert_int_equal (json_integer_value (json_object_get (stats, "errors")), 1);
    assert_null (json_object_get (json_object_get (stats, "actors"), "ghost"));
    json_decref (stats);

    //  actor_leave: bob is forgotten.
    vw_msg_t *leave = vw_msg_new (VW_MSG_ID_actor_leave);
    vw_msg_set_str (&leave->actor_leave.actor, "bob");
    s_send (bob, VW_BROKER_ADDRESS, &leave);
    stats = s_stats (bob, 52);  //  after the leave, on the same pipe
    assert_null (json_object_get (json_object_get (stats, "actors"), "bob"));
    assert_non_null (json_object_get (json_object_get (stats, "actors"), "alice"));
    json_decref (stats);

    zsock_destroy (&alice);
    zsock_destroy (&bob);
    s_broker_stop (&b);
}

static void
test_stats_is_json_for_any_name (void **state)
{
    //  Actor names are routing ids, chosen by the peer (remote ones too): the
    //  stats must stay valid JSON whatever they contain.
    s_broker_t b;
    s_broker_start (&b, false, NULL);
    const char *names[] = {"q\"uote", "back\\slash", "tab\there", "caf\xc3\xa9", "}{"};
    zsock_t *socks[5];
    for (int i = 0; i < 5; i++) {
        socks[i] = s_client (b.inproc, names[i]);
        s_join (socks[i], names[i], (uint64_t) i + 1);
    }
    //  Not UTF-8: it cannot be a JSON key, but must not break the document.
    zsock_t *binary = s_client (b.inproc, "\xff\xfe");
    s_join (binary, "\xff\xfe", 6);
    json_t *stats = s_stats (socks[0], 9);
    for (int i = 0; i < 5; i++)
        assert_int_equal (s_stat (stats, names[i], "pid"), getpid ());
    assert_int_equal (s_stat (stats, names[0], "in"), 1);
    json_decref (stats);
    stats = s_stats (binary, 10);
    json_decref (stats);
    for (int i = 0; i < 5; i++)
        zsock_destroy (&socks[i]);
    zsock_destroy (&binary);
    s_broker_stop (&b);
}

//  Sends raw frames (the DEALER adds nothing; the ROUTER adds the sender).
static void
s_send_raw (zsock_t *sock, int nframes, const char *const *frames)
{
    zmsg_t *zmsg = zmsg_new ();
    for (int i = 0; i < nframes; i++)
        zmsg_addmem (zmsg, frames[i], strlen (frames[i]));
    assert_int_equal (zmsg_send (&zmsg, sock), 0);
}

static void
test_malformed_frames_are_dropped (void **state)
{
    s_broker_t b;
    s_broker_start (&b, false, NULL);
    zsock_t *alice = s_client (b.inproc, "alice");
    zsock_t *bob = s_client (b.inproc, "bob");
    s_join (alice, "alice", 1);
    s_join (bob, "bob", 1);

    char long_name[VW_ADDR_MAX + 1];
    memset (long_name, 'n', VW_ADDR_MAX);
    long_name[VW_ADDR_MAX] = 0;
    const char *f2[] = {"bob", "ping"};
    const char *f1[] = {"bob"};
    const char *f3[] = {"bob", "ping", "12345678"};
    const char *f6[] = {"bob", "ping", "12345678", "\x80", "extra", "frames"};
    const char *empty_dest[] = {"", "ping", "12345678", "\x80"};
    const char *long_dest[] = {long_name, "ping", "12345678", "\x80"};
    const char *own_unknown[] = {VW_BROKER_ADDRESS, "nope", "12345678", "\x80"};
    const char *own_bad_body[] = {VW_BROKER_ADDRESS, "ping", "12345678", "\xc1"};
    const char *own_bad_rid[] = {VW_BROKER_ADDRESS, "ping", "1234567", "\x80"};
    s_send_raw (alice, 2, f2);
    s_send_raw (alice, 1, f1);
    s_send_raw (alice, 3, f3);
    s_send_raw (alice, 6, f6);
    s_send_raw (alice, 4, empty_dest);
    s_send_raw (alice, 4, long_dest);
    s_send_raw (alice, 4, own_unknown);
    s_send_raw (alice, 4, own_bad_body);
    s_send_raw (alice, 4, own_bad_rid);
    //  An empty message (one empty frame).
    const char *f_empty[] = {""};
    s_send_raw (alice, 1, f_empty);
    //  A well-formed message the broker does not serve: dropped, no reply,
    //  not an error.
    vw_msg_t *stray = vw_msg_new (VW_MSG_ID_pong);
    stray->rid = 99;
    s_send (alice, VW_BROKER_ADDRESS, &stray);

    //  The broker is alive and routes: the next thing bob sees is this ping,
    //  and the next thing alice sees is the broker's pong.
    vw_msg_t *ping = vw_msg_new (VW_MSG_ID_ping);
    ping->rid = 31;
    s_send (alice, "bob", &ping);
    ping = s_expect (bob, VW_MSG_ID_ping, "alice");
    assert_true (ping->rid == 31);
    vw_msg_destroy (&ping);
    s_ping_broker (alice, 32);

    json_t *stats = s_stats (alice, 33);
    assert_int_equal (json_integer_value (json_object_get (stats, "errors")), 10);
    json_decref (stats);

    zsock_destroy (&alice);
    zsock_destroy (&bob);
    s_broker_stop (&b);
}

static void
test_unreachable_sender (void **state)
{
    //  A routing id with a NUL byte reads as a shorter name, so every reply
    //  the broker makes to it fails (EHOSTUNREACH): the broker must drop
    //  those replies cleanly (LeakSanitizer checks) and keep serving.
    s_broker_t b;
    s_broker_start (&b, false, NULL);
    zsock_t *odd = zsock_new (ZMQ_DEALER);
    assert_non_null (odd);
    assert_int_equal (zmq_setsockopt (zsock_resolve (odd), ZMQ_ROUTING_ID, "ab\0cd", 5), 0);
    zsock_set_linger (odd, 0);
    assert_int_equal (zsock_connect (odd, "%s", b.inproc), 0);
    for (int i = 0; i < 3; i++) {
        vw_msg_t *ping = vw_msg_new (VW_MSG_ID_ping);
        s_send (odd, VW_BROKER_ADDRESS, &ping);  //  pong to "ab" fails
        ping = vw_msg_new (VW_MSG_ID_ping);
        s_send (odd, "nobody", &ping);  //  unknown_actor to "ab" fails
    }
    zsock_t *alice = s_client (b.inproc, "alice");
    s_join (alice, "alice", 1);
    //  The broker fair-queues senders: wait (bounded) until it has served
    //  the odd sender's three unknown_actor errors.
    json_int_t errors = 0;
    for (int i = 0; i < 1000 && errors < 3; i++) {
        json_t *stats = s_stats (alice, 10 + (uint64_t) i);
        errors = json_integer_value (json_object_get (stats, "errors"));
        json_decref (stats);
    }
    assert_int_equal (errors, 3);
    s_ping_broker (alice, 2);
    //  The odd sender got nothing.
    assert_false (zsock_events (odd) & ZMQ_POLLIN);
    zsock_destroy (&alice);
    zsock_destroy (&odd);
    s_broker_stop (&b);
}

static void
test_bind_failure_is_reported (void **state)
{
    //  The endpoint is taken: the broker reports FAILED and ends.
    char endpoint[96];
    s_endpoint (endpoint, sizeof endpoint, "taken");
    zsock_t *squatter = zsock_new (ZMQ_ROUTER);
    assert_int_equal (zsock_bind (squatter, "%s", endpoint), 0);
    vw_broker_args_t args = {.inproc_endpoint = endpoint};
    zactor_t *broker = zactor_new (vw_broker_actor, &args);
    assert_non_null (broker);
    char *reason = NULL;
    int rc = vw_lifecycle_await (broker, S_TIMEOUT_MS, &reason);
    assert_int_equal (rc, VW_EXIT_FAILURE);
    assert_non_null (reason);
    //  The operator's sentence: what, where, why
    assert_non_null (strstr (reason, "cannot listen for actors on"));
    assert_non_null (strstr (reason, endpoint));
    assert_non_null (strstr (reason, "address already in use"));
    free (reason);
    zactor_destroy (&broker);
    zsock_destroy (&squatter);
}

static void
test_loopback_endpoints (void **state)
{
    assert_true (vw_endpoint_is_loopback ("tcp://127.0.0.1:5555"));
    assert_true (vw_endpoint_is_loopback ("tcp://127.1.2.3:5555"));
    assert_true (vw_endpoint_is_loopback ("tcp://localhost:5555"));
    assert_true (vw_endpoint_is_loopback ("tcp://[::1]:5555"));
    assert_true (vw_endpoint_is_loopback ("inproc://x"));
    assert_true (vw_endpoint_is_loopback ("ipc:///tmp/x"));
    assert_false (vw_endpoint_is_loopback (NULL));
    assert_false (vw_endpoint_is_loopback ("tcp://0.0.0.0:5555"));
    assert_false (vw_endpoint_is_loopback ("tcp://*:5555"));
    assert_false (vw_endpoint_is_loopback ("tcp://10.0.0.1:5555"));
    assert_false (vw_endpoint_is_loopback ("tcp://localhost.example.com:5555"));
    assert_false (vw_endpoint_is_loopback ("tcp://1127.0.0.1:5555"));
    assert_false (vw_endpoint_is_loopback ("udp://127.0.0.1:5555"));
}

//  --------------------------------------------------------------------------
//  tcp, across processes

//  A loopback port nobody listens on: bind port 0, read it, release it.
//  The socket is closed synchronously, so the broker can bind it at once.
static int
s_free_port (void)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true (fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    assert_int_equal (bind (fd, (struct sockaddr *) &addr, sizeof addr), 0);
    socklen_t len = sizeof addr;
    assert_int_equal (getsockname (fd, (struct sockaddr *) &addr, &len), 0);
    close (fd);
    return ntohs (addr.sin_port);
}

static int64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  Reads one line from fd, waiting at most until deadline; -1 on timeout/EOF.
static int
s_read_line (int fd, char *buf, size_t size, int64_t deadline)
{
    size_t n = 0;
    while (n + 1 < size) {
        int64_t left = deadline - s_now_ms ();
        if (left <= 0)
            return -1;
        struct pollfd pfd = {fd, POLLIN, 0};
        int rc = poll (&pfd, 1, (int) left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return -1;
        char c;
        ssize_t got = read (fd, &c, 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return -1;
        if (c == '\n')
            break;
        buf[n++] = c;
    }
    buf[n] = 0;
    return 0;
}

//  Waits (bounded) for the child to close its stdout, then reaps it.
static int
s_reap (pid_t pid, int fd, int64_t deadline)
{
    char sink[256];
    for (;;) {
        int64_t left = deadline - s_now_ms ();
        struct pollfd pfd = {fd, POLLIN, 0};
        int rc = left > 0 ? poll (&pfd, 1, (int) left) : 0;
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc == 0) {
            kill (pid, SIGKILL);  //  our own child, by its id
            break;
        }
        ssize_t got = read (fd, sink, sizeof sink);
        if (got <= 0 && !(got < 0 && errno == EINTR))
            break;  //  EOF: the child is exiting
    }
    int status = 0;
    pid_t waited;
    do
        waited = waitpid (pid, &status, 0);
    while (waited < 0 && errno == EINTR);
    assert_int_equal (waited, pid);
    return status;
}

static void
s_helper_path (char *path, size_t size)
{
    const char *dir = getenv ("VW_TEST_BINARY_DIR");
    if (dir && *dir)
        snprintf (path, size, "%s/tests/remote_actor", dir);
    else {
        //  Run by hand: the helper is built next to this program.
        char self[512];
        ssize_t n = readlink ("/proc/self/exe", self, sizeof self - 1);
        assert_true (n > 0);
        self[n] = 0;
        char *slash = strrchr (self, '/');
        assert_non_null (slash);
        *slash = 0;
        snprintf (path, size, "%s/remote_actor", self);
    }
    if (access (path, X_OK) != 0)
        fail_msg ("helper %s is not built", path);
}

//  Starts tests/helpers/remote_actor against the broker's tcp endpoint and
//  waits (bounded) for its "READY <pid>" line. *out is its stdout.
static pid_t
s_spawn_remote (const char *tcp, const char *target, int *out, int64_t deadline)
{
    char path[600];
    s_helper_path (path, sizeof path);
    int fds[2];
    assert_int_equal (pipe2 (fds, O_CLOEXEC), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init (&actions);
    posix_spawn_file_actions_adddup2 (&actions, fds[1], STDOUT_FILENO);
    char *argv[] = {path, (char *) tcp, (char *) target, NULL};
    pid_t pid = 0;
    int rc = posix_spawn (&pid, path, &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy (&actions);
    close (fds[1]);
    assert_int_equal (rc, 0);
    *out = fds[0];

    char line[128];
    if (s_read_line (fds[0], line, sizeof line, deadline)) {
        int status = s_reap (pid, fds[0], deadline);
        close (fds[0]);
        fail_msg ("remote_actor did not report READY (status 0x%x)", status);
    }
    int ready_pid = 0;
    assert_int_equal (sscanf (line, "READY %d", &ready_pid), 1);
    assert_int_equal (ready_pid, pid);
    assert_int_not_equal (ready_pid, getpid ());
    return pid;
}

static void
test_remote_actor_over_tcp (void **state)
{
    char tcp[64];
    snprintf (tcp, sizeof tcp, "tcp://127.0.0.1:%d", s_free_port ());
    s_broker_t b;
    s_broker_start (&b, false, tcp);
    zsock_t *tester = s_client (b.inproc, "tester");
    s_join (tester, "tester", 1);

    int out = -1;
    int64_t deadline = s_now_ms () + 10000;
    pid_t pid = s_spawn_remote (tcp, "tester", &out, deadline);

    //  Ping the remote actor; it pings us too, in whatever order. Its ping
    //  is answered last: the helper leaves once it has our pong.
    vw_msg_t *ping = vw_msg_new (VW_MSG_ID_ping);
    ping->rid = 4242;
    ping->ping.sent_ms = 123456;
    s_send (tester, "remote", &ping);
    bool got_pong = false;
    vw_msg_t *remote_ping = NULL;
    while (!got_pong || !remote_ping) {
        vw_msg_t *msg = vw_msg_recv_one (tester, &s_backlog);
        if (!msg)
            fail_msg ("nothing from remote within %d ms (pong %d, ping %d)", S_TIMEOUT_MS, got_pong,
                      remote_ping != NULL);
        assert_string_equal (msg->peer, "remote");
        if (msg->id == VW_MSG_ID_pong) {
            assert_false (got_pong);
            assert_true (msg->rid == 4242);
            assert_true (msg->pong.sent_ms == 123456);
            assert_true (msg->pong.healthy);
            assert_string_equal (msg->pong.actor, "remote");
            got_pong = true;
            vw_msg_destroy (&msg);
        }
        else if (msg->id == VW_MSG_ID_ping) {
            assert_null (remote_ping);
            assert_int_not_equal (msg->rid, 0);
            remote_ping = msg;
        }
        else
            fail_msg ("unexpected '%s' from remote", vw_msg_name (msg->id));
    }

    //  The broker tells the remote actor from the local one by pid.
    json_t *stats = s_stats (tester, 2);
    assert_int_equal (s_stat (stats, "remote", "pid"), pid);
    assert_int_equal (s_stat (stats, "tester", "pid"), getpid ());
    assert_int_not_equal (s_stat (stats, "remote", "pid"), s_stat (stats, "tester", "pid"));
    json_decref (stats);

    vw_msg_t *pong = vw_msg_new (VW_MSG_ID_pong);
    pong->rid = remote_ping->rid;
    pong->pong.sent_ms = remote_ping->ping.sent_ms;
    pong->pong.healthy = true;
    vw_msg_set_str (&pong->pong.actor, "tester");
    s_send (tester, remote_ping->peer, &pong);
    vw_msg_destroy (&remote_ping);

    //  The helper exits 0 only if it got its pong.
    int status = s_reap (pid, out, deadline);
    close (out);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);

    zsock_destroy (&tester);
    s_broker_stop (&b);
}

static void
test_remote_actor_unknown_target (void **state)
{
    //  The helper's own check is real: a ping to nobody gets unknown_actor
    //  over tcp, and the helper exits 1.
    char tcp[64];
    snprintf (tcp, sizeof tcp, "tcp://127.0.0.1:%d", s_free_port ());
    s_broker_t b;
    s_broker_start (&b, false, tcp);
    int out = -1;
    int64_t deadline = s_now_ms () + 10000;
    pid_t pid = s_spawn_remote (tcp, "nobody", &out, deadline);
    int status = s_reap (pid, out, deadline);
    close (out);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 1);
    s_broker_stop (&b);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_join_and_route_both_ways),
        cmocka_unit_test (test_unknown_actor_gets_error),
        cmocka_unit_test (test_broker_answers_ping),
        cmocka_unit_test (test_watchers_hear_of_lost_actors),
        cmocka_unit_test (test_silent_remote_actor_is_lost),
        cmocka_unit_test (test_events_are_published),
        cmocka_unit_test (test_stats_count_messages),
        cmocka_unit_test (test_stats_is_json_for_any_name),
        cmocka_unit_test (test_malformed_frames_are_dropped),
        cmocka_unit_test (test_unreachable_sender),
        cmocka_unit_test (test_bind_failure_is_reported),
        cmocka_unit_test (test_loopback_endpoints),
        cmocka_unit_test (test_remote_actor_over_tcp),
        cmocka_unit_test (test_remote_actor_unknown_target),
    };
    int failed = cmocka_run_group_tests_name ("vw_broker", tests, NULL, NULL);
    vw_msg_backlog_destroy (&s_backlog);
    return failed;
}
