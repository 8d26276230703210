/*  test_actor - the actor runtime (actors/vw_actor) and the start-up
    handshake (core/vw_lifecycle).

    A test class runs under vw_actor_task against a real broker on a
    per-case inproc:// endpoint. Every hook of the class reports what it
    does as a string on a PUSH socket ("create", "timer:1", "flush", ...),
    so the test checks the exact order of hook calls by reading that log,
    and talks to the actor through a DEALER named like an actor. Nothing
    sleeps: every wait is a receive with a timeout, and a timeout fails.
*/
#include "vw_actor.h"
#include "vw_broker.h"
#include "vw_lifecycle.h"
#include "vw_testbroker.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_TIMEOUT_MS 5000

//  --------------------------------------------------------------------------
//  The test class

typedef struct {
    const char *log_endpoint;
    const char *watch_endpoint;  //  NULL: no watched socket
    int fail_code;               //  0 create succeeds, > 0 vw_actor_fail, < 0 plain NULL
    bool unhealthy;
    const char *detail;  //  health detail, NULL for none
    bool timers;         //  create arms a timer, which arms another
} t_args_t;

#define S_IDLE 3

typedef struct {
    t_args_t *args;
    vw_actor_t *actor;
    zsock_t *log;
    zsock_t *watched;
    zsock_t *idle[S_IDLE];  //  watched, never readable
    zsock_t *late;          //  watched from a handler
    int timers_fired;
} t_state_t;

//  Messages of a bundle not yet looked at (actors batch what they send).
static zlist_t *s_backlog;

static void
s_log (t_state_t *self, const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    char *text = zsys_vprintf (fmt, args);
    va_end (args);
    zstr_send (self->log, text);
    zstr_free (&text);
}

static void
s_on_timer (void *arg, uint64_t id)
{
    t_state_t *self = (t_state_t *) arg;
    s_log (self, "timer:%d", ++self->timers_fired);
    if (self->timers_fired == 1)
        vw_timers_add (vw_actor_timers (self->actor), 1, s_on_timer, self);
}

static void
s_on_watch (void *state, vw_actor_t *actor, zsock_t *sock)
{
    t_state_t *self = (t_state_t *) state;
    //  Never block the loop: a callback without a message is a bug to see.
    zsock_set_rcvtimeo (sock, 0);
    char *text = zstr_recv (sock);
    s_log (self, "watch:%s", text ? text : "(nothing)");
    zstr_free (&text);
}

static void
s_destroy_sockets (t_state_t *self)
{
    zsock_destroy (&self->watched);
    zsock_destroy (&self->late);
    for (int i = 0; i < S_IDLE; i++)
        zsock_destroy (&self->idle[i]);
    zsock_destroy (&self->log);
}

static void *
s_create (vw_actor_t *actor, void *args)
{
    t_state_t *self = (t_state_t *) zmalloc (sizeof (t_state_t));
    self->args = (t_args_t *) args;
    self->actor = actor;
    self->log = zsock_new_push (self->args->log_endpoint);
    assert (self->log);
    s_log (self, "create:%s", vw_actor_name (actor));
    if (self->args->fail_code) {
        if (self->args->fail_code > 0)
            vw_actor_fail (actor, self->args->fail_code, "cannot open %s", "x.db");
        s_destroy_sockets (self);
        free (self);
        return NULL;
    }
    if (self->args->timers)
        vw_timers_add (vw_actor_timers (actor), 0, s_on_timer, self);
    if (self->args->watch_endpoint) {
        self->watched = zsock_new_pull (self->args->watch_endpoint);
        int rc = vw_actor_watch (actor, self->watched, s_on_watch);
        for (int i = 0; i < S_IDLE; i++) {
            self->idle[i] = zsock_new (ZMQ_PULL);
            rc |= vw_actor_watch (actor, self->idle[i], s_on_watch);
        }
        //  VW_ACTOR_MAX_WATCH (4) are taken: a fifth is refused.
        int full = vw_actor_watch (actor, self->watched, s_on_watch);
        s_log (self, "watch-rc:%d,%d", rc, full);
    }
    return self;
}

static void
s_destroy (void **state_p)
{
    t_state_t *self = (t_state_t *) *state_p;
    if (!self)
        return;
    s_log (self, "destroy");
    s_destroy_sockets (self);
    free (self);
    *state_p = NULL;
}

static void
s_handle (void *state, vw_actor_t *actor, vw_msg_t **msg_p)
{
    t_state_t *self = (t_state_t *) state;
    vw_msg_t *msg = *msg_p;
    if (msg->id != VW_MSG_ID_event || !msg->event.topic) {
        s_log (self, "handle:%s", vw_msg_name (msg->id));
        return;
    }
    s_log (self, "handle:%s", msg->event.topic);
    if (streq (msg->event.topic, "echo")) {
        vw_msg_t *reply = vw_msg_new (VW_MSG_ID_event);
        vw_msg_set_str (&reply->event.topic, "echoed");
        vw_msg_set_str (&reply->event.json, msg->event.json);
        if (vw_actor_reply (self->actor, msg, &reply))
            vw_msg_destroy (&reply);
    }
    else if (streq (msg->event.topic, "keep")) {
        //  The handler takes the message: the runtime must not free it.
        *msg_p = NULL;
        vw_msg_destroy (&msg);
    }
    else if (streq (msg->event.topic, "abort"))
        vw_actor_abort (actor, msg->event.json ? msg->event.json : "?");
    else if (streq (msg->event.topic, "watch") && msg->event.json && !self->late) {
        self->late = zsock_new_pull (msg->event.json);
        s_log (self, "watch-late-rc:%d", vw_actor_watch (actor, self->late, s_on_watch));
    }
}

static void
s_flush (void *state, vw_actor_t *actor)
{
    s_log ((t_state_t *) state, "flush");
}

static void
s_health (void *state, bool *healthy, char *detail, size_t detail_len)
{
    t_state_t *self = (t_state_t *) state;
    if (self->args->unhealthy)
        *healthy = false;
    if (self->args->detail)
        snprintf (detail, detail_len, "%s", self->args->detail);
}

static void
s_stop (void *state, vw_actor_t *actor)
{
    s_log ((t_state_t *) state, "stop");
}

static const vw_actor_class_t s_class = {
    .name = "probe",
    .create = s_create,
    .destroy = s_destroy,
    .handle = s_handle,
    .flush = s_flush,
    .health = s_health,
    .stop = s_stop,
};

//  --------------------------------------------------------------------------
//  Fixture: a broker, a log socket, a client

typedef struct {
    char broker_ep[96];
    char log_ep[96];
    char watch_ep[96];
    vw_broker_args_t broker_args;
    zactor_t *broker;
    zsock_t *log;     //  PULL: the hooks' reports
    zsock_t *client;  //  DEALER "client", joined
    vw_actor_class_t cls;
    t_args_t args;
    vw_actor_args_t actor_args;
    zactor_t *actor;
} t_fixture_t;

static void
s_endpoint (char *buf, size_t size, const char *what)
{
    static int counter;
    snprintf (buf, size, "inproc://test-actor-%d-%s-%d", (int) getpid (), what, ++counter);
}

static int
s_setup (void **state)
{
    t_fixture_t *f = (t_fixture_t *) calloc (1, sizeof (t_fixture_t));
    s_endpoint (f->broker_ep, sizeof f->broker_ep, "broker");
    s_endpoint (f->log_ep, sizeof f->log_ep, "log");
    s_endpoint (f->watch_ep, sizeof f->watch_ep, "watch");
    f->broker_args.inproc_endpoint = f->broker_ep;
    f->broker = zactor_new (vw_broker_actor, &f->broker_args);
    char *reason = NULL;
    int rc = f->broker ? vw_lifecycle_await (f->broker, S_TIMEOUT_MS, &reason) : -1;
    if (rc) {
        print_error ("broker did not start: %d %s\n", rc, reason ? reason : "");
        free (reason);
        return -1;
    }
    f->log = zsock_new (ZMQ_PULL);
    zsock_set_rcvtimeo (f->log, S_TIMEOUT_MS);
    if (zsock_bind (f->log, "%s", f->log_ep))
        return -1;
    f->cls = s_class;
    f->args.log_endpoint = f->log_ep;
    f->actor_args = (vw_actor_args_t){&f->cls, f->broker_ep, &f->args};
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    zactor_destroy (&f->actor);
    zsock_destroy (&f->client);
    zsock_destroy (&f->log);
    zactor_destroy (&f->broker);
    free (f);
    return 0;
}

//  The next hook report must be `want`.
static void
s_expect_log (t_fixture_t *f, const char *want)
{
    char *got = zstr_recv (f->log);
    if (!got)
        fail_msg ("no hook report within %d ms, wanted '%s'", S_TIMEOUT_MS, want);
    if (strcmp (got, want) != 0) {
        char copy[256];
        snprintf (copy, sizeof copy, "%s", got);
        zstr_free (&got);
        fail_msg ("hook report '%s', wanted '%s'", copy, want);
    }
    zstr_free (&got);
}

//  No further reports (call once the actor thread has ended).
static void
s_expect_log_end (t_fixture_t *f)
{
    if (zsock_events (f->log) & ZMQ_POLLIN) {
        char *got = zstr_recv (f->log);
        char copy[256];
        snprintf (copy, sizeof copy, "%s", got ? got : "?");
        zstr_free (&got);
        fail_msg ("unexpected hook report '%s'", copy);
    }
}

//  Starts the actor; returns what vw_lifecycle_await returned.
static int
s_start (t_fixture_t *f, char **reason)
{
    f->actor = zactor_new (vw_actor_task, &f->actor_args);
    assert_non_null (f->actor);
    return vw_lifecycle_await (f->actor, S_TIMEOUT_MS, reason);
}

static void
s_start_ok (t_fixture_t *f)
{
    char *reason = NULL;
    int rc = s_start (f, &reason);
    if (rc)
        fail_msg ("actor did not start: %d %s", rc, reason ? reason : "");
    assert_null (reason);
}

static zsock_t *
s_client (t_fixture_t *f)
{
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    zsock_set_identity (sock, "client");
    zsock_set_rcvtimeo (sock, S_TIMEOUT_MS);
    zsock_set_sndtimeo (sock, S_TIMEOUT_MS);
    zsock_set_linger (sock, 0);
    assert_int_equal (zsock_connect (sock, "%s", f->broker_ep), 0);
    vw_msg_t *join = vw_msg_new (VW_MSG_ID_actor_join);
    join->rid = 1;
    assert_int_equal (vw_msg_send (&join, sock, VW_BROKER_ADDRESS), 0);
    vw_msg_t *ack = vw_msg_recv_one (sock, &s_backlog);
    assert_non_null (ack);
    assert_int_equal (ack->id, VW_MSG_ID_actor_joined);
    vw_msg_destroy (&ack);
    return sock;
}

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
s_send_event (zsock_t *sock, const char *to, uint64_t rid, const char *topic, const char *json)
{
    vw_msg_t *event = vw_msg_new (VW_MSG_ID_event);
    event->rid = rid;
    vw_msg_set_str (&event->event.topic, topic);
    vw_msg_set_str (&event->event.json, json);
    assert_int_equal (vw_msg_send (&event, sock, to), 0);
}

static void
s_send_ping (zsock_t *sock, const char *to, uint64_t rid)
{
    vw_msg_t *ping = vw_msg_new (VW_MSG_ID_ping);
    ping->rid = rid;
    ping->ping.sent_ms = (int64_t) rid * 1000 + 7;
    assert_int_equal (vw_msg_send (&ping, sock, to), 0);
}

//  --------------------------------------------------------------------------
//  Start-up

static void
test_create_fails_with_reason (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    f->args.fail_code = VW_EXIT_DATABASE;
    char *reason = NULL;
    assert_int_equal (s_start (f, &reason), VW_EXIT_DATABASE);
    assert_non_null (reason);
    assert_string_equal (reason, "cannot open x.db");
    free (reason);
    s_expect_log (f, "create:probe");
    zactor_destroy (&f->actor);
    assert_null (f->actor);
    //  No state, so no destroy, stop or flush.
    s_expect_log_end (f);
}

static void
test_create_fails_without_reason (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    f->args.fail_code = -1;
    char *reason = NULL;
    assert_int_equal (s_start (f, &reason), VW_EXIT_FAILURE);
    assert_non_null (reason);
    assert_string_equal (reason, "start-up failed");
    free (reason);
    s_expect_log (f, "create:probe");
    zactor_destroy (&f->actor);
    s_expect_log_end (f);
}

static void
test_ready_and_term_order (void **state)
{
    //  READY, then $TERM: stop, a last flush, destroy, in that order.
    t_fixture_t *f = (t_fixture_t *) *state;
    s_start_ok (f);
    s_expect_log (f, "create:probe");
    f->client = s_client (f);
    //  The actor joined the broker's directory before reporting READY.
    vw_msg_t *ask = vw_msg_new (VW_MSG_ID_broker_stats);
    assert_int_equal (vw_msg_send (&ask, f->client, VW_BROKER_ADDRESS), 0);
    ask = s_expect (f->client, VW_MSG_ID_broker_stats, VW_BROKER_ADDRESS);
    json_t *stats = json_loads (ask->broker_stats.json, 0, NULL);
    assert_non_null (stats);
    json_t *probe = json_object_get (json_object_get (stats, "actors"), "probe");
    assert_non_null (probe);
    assert_int_equal (json_integer_value (json_object_get (probe, "pid")), getpid ());
    json_decref (stats);
    vw_msg_destroy (&ask);

    zactor_destroy (&f->actor);
    assert_null (f->actor);
    s_expect_log (f, "stop");
    s_expect_log (f, "flush");
    s_expect_log (f, "destroy");
    s_expect_log_end (f);

    //  It left the directory: the broker forgets it (bounded wait, as the
    //  broker serves the actor's and our sockets in no fixed order).
    bool gone = false;
    for (int i = 0; i < 1000 && !gone; i++) {
        ask = vw_msg_new (VW_MSG_ID_broker_stats);
        assert_int_equal (vw_msg_send (&ask, f->client, VW_BROKER_ADDRESS), 0);
        ask = s_expect (f->client, VW_MSG_ID_broker_stats, VW_BROKER_ADDRESS);
        stats = json_loads (ask->broker_stats.json, 0, NULL);
        assert_non_null (stats);
        gone = !json_object_get (json_object_get (stats, "actors"), "probe");
        json_decref (stats);
        vw_msg_destroy (&ask);
    }
    assert_true (gone);
}

//  --------------------------------------------------------------------------
//  Ping and health

static void
test_ping_pong_with_health (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    f->args.unhealthy = true;
    f->args.detail = "db: locked";
    s_start_ok (f);
    s_expect_log (f, "create:probe");
    f->client = s_client (f);
    for (uint64_t rid = 10; rid < 13; rid++) {
        s_send_ping (f->client, "probe", rid);
        vw_msg_t *pong = s_expect (f->client, VW_MSG_ID_pong, "probe");
        assert_true (pong->rid == rid);
        assert_true (pong->pong.sent_ms == (int64_t) rid * 1000 + 7);
        assert_false (pong->pong.healthy);
        assert_string_equal (pong->pong.actor, "probe");
        assert_non_null (pong->pong.detail);
        assert_string_equal (pong->pong.detail, "db: locked");
        vw_msg_destroy (&pong);
        //  The runtime answered, not the handler; the pass still flushes.
        s_expect_log (f, "flush");
    }
}

static void
test_ping_pong_default_health (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_start_ok (f);
    f->client = s_client (f);
    s_send_ping (f->client, "probe", 1);
    vw_msg_t *pong = s_expect (f->client, VW_MSG_ID_pong, "probe");
    assert_true (pong->pong.healthy);
    assert_null (pong->pong.detail);  //  empty detail is not sent
    vw_msg_destroy (&pong);
}

static void
test_stall_fault_ignores_pings (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    setenv ("VIWORKS_FAULT", "stall:stally", 1);
    f->cls.name = "stally";
    s_start_ok (f);
    //  Another actor in the same process is not affected.
    t_args_t other_args = {.log_endpoint = f->log_ep};
    vw_actor_class_t other_cls = s_class;
    vw_actor_args_t other = {&other_cls, f->broker_ep, &other_args};
    zactor_t *probe = zactor_new (vw_actor_task, &other);
    char *reason = NULL;
    assert_int_equal (vw_lifecycle_await (probe, S_TIMEOUT_MS, &reason), 0);
    unsetenv ("VIWORKS_FAULT");
    f->client = s_client (f);

    //  Ping, then a request the handler answers: messages from one sender
    //  to one actor keep their order, so the echo arriving first proves the
    //  ping was read and ignored.
    s_send_ping (f->client, "stally", 1);
    s_send_event (f->client, "stally", 2, "echo", "{\"n\":2}");
    vw_msg_t *echo = s_expect (f->client, VW_MSG_ID_event, "stally");
    assert_true (echo->rid == 2);
    assert_string_equal (echo->event.topic, "echoed");
    assert_string_equal (echo->event.json, "{\"n\":2}");
    vw_msg_destroy (&echo);

    s_send_ping (f->client, "probe", 3);
    vw_msg_t *pong = s_expect (f->client, VW_MSG_ID_pong, "probe");
    assert_true (pong->rid == 3);
    vw_msg_destroy (&pong);
    zactor_destroy (&probe);
}

//  --------------------------------------------------------------------------
//  Timers, flush, handler

static void
test_timers_fire_and_flush_follows (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    f->args.timers = true;
    s_start_ok (f);
    //  create arms timer 1 (due at once); it arms timer 2 (1 ms later).
    //  Each pass that fired a timer ends with one flush.
    s_expect_log (f, "create:probe");
    s_expect_log (f, "timer:1");
    s_expect_log (f, "flush");
    s_expect_log (f, "timer:2");
    s_expect_log (f, "flush");
    zactor_destroy (&f->actor);
    s_expect_log (f, "stop");
    s_expect_log (f, "flush");
    s_expect_log (f, "destroy");
    s_expect_log_end (f);
}

static void
test_handler_gets_messages (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_start_ok (f);
    s_expect_log (f, "create:probe");
    f->client = s_client (f);
    s_send_event (f->client, "probe", 5, "echo", "{}");
    vw_msg_t *echo = s_expect (f->client, VW_MSG_ID_event, "probe");
    assert_true (echo->rid == 5);
    vw_msg_destroy (&echo);
    s_expect_log (f, "handle:echo");
    s_expect_log (f, "flush");
    //  A handler may keep the message (ASan checks the runtime does not
    //  free it twice); other kinds reach the handler too.
    s_send_event (f->client, "probe", 6, "keep", "{}");
    vw_msg_t *err = vw_msg_new (VW_MSG_ID_error);
    vw_msg_set_str (&err->error.code, "bad_message");
    assert_int_equal (vw_msg_send (&err, f->client, "probe"), 0);
    //  Both may be handled in one pass or two.
    s_expect_log (f, "handle:keep");
    char *next = zstr_recv (f->log);
    assert_non_null (next);
    if (streq (next, "flush"))
        s_expect_log (f, "handle:error");
    else
        assert_string_equal (next, "handle:error");
    zstr_free (&next);
    s_expect_log (f, "flush");
}

//  --------------------------------------------------------------------------
//  Watched sockets

static void
test_watched_socket_triggers_callback (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    f->args.watch_endpoint = f->watch_ep;
    s_start_ok (f);
    s_expect_log (f, "create:probe");
    s_expect_log (f, "watch-rc:0,-1");
    zsock_t *push = zsock_new_push (f->watch_ep);
    assert_non_null (push);
    for (int i = 0; i < 3; i++) {
        zstr_sendf (push, "hello %d", i);
        char want[32];
        snprintf (want, sizeof want, "watch:hello %d", i);
        s_expect_log (f, want);
        s_expect_log (f, "flush");
    }
    zsock_destroy (&push);
}

static void
test_watch_added_by_handler (void **state)
{
    //  vw_actor_watch is offered to handlers too: a socket watched from a
    //  handler, after the loop started, must be polled like the others.
    t_fixture_t *f = (t_fixture_t *) *state;
    s_start_ok (f);
    s_expect_log (f, "create:probe");
    f->client = s_client (f);
    s_send_event (f->client, "probe", 1, "watch", f->watch_ep);
    s_expect_log (f, "handle:watch");
    s_expect_log (f, "watch-late-rc:0");
    s_expect_log (f, "flush");
    zsock_t *push = zsock_new_push (f->watch_ep);
    assert_non_null (push);
    zstr_send (push, "late");
    s_expect_log (f, "watch:late");
    s_expect_log (f, "flush");
    //  And the loop still serves the broker socket.
    s_send_ping (f->client, "probe", 2);
    vw_msg_t *pong = s_expect (f->client, VW_MSG_ID_pong, "probe");
    vw_msg_destroy (&pong);
    s_expect_log (f, "flush");
    zsock_destroy (&push);
}

//  --------------------------------------------------------------------------
//  Abort

static void
test_abort_reports_exited (void **state)
{
    t_fixture_t *f = (t_fixture_t *) *state;
    s_start_ok (f);
    s_expect_log (f, "create:probe");
    f->client = s_client (f);
    s_send_event (f->client, "probe", 1, "abort", "disk on fire");

    //  The pipe carries the report before the thread ends.
    zsock_t *pipe = zactor_sock (f->actor);
    zsock_set_rcvtimeo (pipe, S_TIMEOUT_MS);
    char *report = zstr_recv (pipe);
    assert_non_null (report);
    assert_string_equal (report, "EXITED disk on fire");
    zstr_free (&report);

    //  The pass ends (flush), then destroy; no stop, as no one asked.
    s_expect_log (f, "handle:abort");
    s_expect_log (f, "flush");
    s_expect_log (f, "destroy");
    zactor_destroy (&f->actor);
    assert_null (f->actor);
    s_expect_log_end (f);
}

static void
test_abort_destroy_without_reading (void **state)
{
    //  The supervisor may destroy an aborted actor without reading EXITED.
    t_fixture_t *f = (t_fixture_t *) *state;
    s_start_ok (f);
    s_expect_log (f, "create:probe");
    f->client = s_client (f);
    s_send_event (f->client, "probe", 1, "abort", "gone");
    s_expect_log (f, "handle:abort");
    s_expect_log (f, "flush");
    s_expect_log (f, "destroy");
    zactor_destroy (&f->actor);
    assert_null (f->actor);
    s_expect_log_end (f);
}

//  Sends the socket refuses are counted (the edge stops reading from agents
//  when the count grows). A DEALER whose broker is not there queues up to
//  its HWM (200,000 messages), then refuses: directly, and on a flush of a
//  batch.
static void
test_send_failures_counted (void **state)
{
    static const vw_actor_class_t cls = {.name = "refusals"};
    vw_actor_t *actor = vw_actor_new (NULL, &cls, "inproc://test-actor-nobody-binds-this");
    assert_non_null (actor);
    assert_int_equal (vw_actor_send_failures (actor), 0);
    int sent = 0;
    for (; sent < 1000000; sent++) {
        vw_msg_t *msg = vw_msg_new (VW_MSG_ID_ping);
        if (vw_actor_send (actor, "nobody", &msg)) {
            vw_msg_destroy (&msg);
            break;
        }
    }
    assert_true (sent >= 1000 && sent < 1000000);  //  refused at the HWM, not before
    assert_int_equal (vw_actor_send_failures (actor), 1);
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_ping);
    assert_int_not_equal (vw_actor_send (actor, "nobody", &msg), 0);
    vw_msg_destroy (&msg);
    assert_int_equal (vw_actor_send_failures (actor), 2);
    //  Batched: the send waits and succeeds; the flush is refused.
    vw_actor_set_batching (actor, true, NULL, NULL);
    msg = vw_msg_new (VW_MSG_ID_ping);
    assert_int_equal (vw_actor_send (actor, "nobody", &msg), 0);
    assert_null (msg);
    assert_int_equal (vw_actor_send_failures (actor), 2);
    vw_actor_flush_sends (actor);
    assert_int_equal (vw_actor_send_failures (actor), 3);
    vw_actor_destroy (&actor);
}

//  A pass that sends one actor more than a receiver takes in one message
//  (VW_MSG_MAX_BODY, 64 MiB) leaves as several bundles, and every message
//  arrives, in order. (Before, the batch grew into one bundle of 70 MiB,
//  which the receiver dropped whole as malformed.)
static void
test_batches_split_by_bytes (void **state)
{
    vw_tb_t *tb = vw_tb_new ();
    assert_non_null (tb);
    vw_tb_peer_t *sink = vw_tb_peer (tb, "sink");
    assert_non_null (sink);
    static const vw_actor_class_t cls = {.name = "bulky"};
    vw_actor_t *actor = vw_actor_new (NULL, &cls, vw_tb_endpoint (tb));
    assert_non_null (actor);
    assert_int_equal (vw_actor_join (actor, VW_TB_TIMEOUT_MS), 0);
    vw_actor_set_batching (actor, true, NULL, NULL);
    const size_t big = 1024 * 1024;
    char *text = (char *) malloc (big + 3);
    assert_non_null (text);
    text[0] = '"';
    memset (text + 1, 'x', big);
    text[big + 1] = '"';
    text[big + 2] = 0;
    const int count = 70;
    for (int i = 0; i < count; i++) {
        vw_msg_t *msg = vw_msg_new (VW_MSG_ID_reply);
        msg->rid = (uint64_t) i + 1;
        msg->reply.status = 200;
        vw_msg_set_str (&msg->reply.json, text);
        assert_int_equal (vw_actor_send (actor, "sink", &msg), 0);
        assert_null (msg);
    }
    //  A small one after them, too.
    vw_msg_t *ping = vw_msg_new (VW_MSG_ID_ping);
    ping->rid = (uint64_t) count + 1;
    assert_int_equal (vw_actor_send (actor, "sink", &ping), 0);
    vw_actor_flush_sends (actor);
    assert_int_equal (vw_actor_send_failures (actor), 0);
    for (int i = 0; i <= count; i++) {
        vw_msg_t *got = vw_tb_recv (sink, VW_TB_TIMEOUT_MS);
        if (!got)
            fail_msg ("message %d of %d did not arrive", i + 1, count + 1);
        assert_int_equal (got->rid, (uint64_t) i + 1);
        if (i < count) {
            assert_int_equal (got->id, VW_MSG_ID_reply);
            assert_int_equal (strlen (got->reply.json), big + 2);
        }
        else
            assert_int_equal (got->id, VW_MSG_ID_ping);
        vw_msg_destroy (&got);
    }
    free (text);
    vw_actor_destroy (&actor);
    vw_tb_destroy (&tb);
}

//  --------------------------------------------------------------------------
//  vw_lifecycle, with scripted threads

//  Signals like every actor, then sends the report named by args (a known
//  script, or the literal text to send) and returns.
static void
s_scripted (zsock_t *pipe, void *args)
{
    zsock_signal (pipe, 0);
    const char *report = (const char *) args;
    if (report && streq (report, "exited"))
        vw_lifecycle_exited (pipe, "lost the database");
    else if (report && streq (report, "failed"))
        vw_lifecycle_failed (pipe, VW_EXIT_SCHEMA, "schema %d is newer than %d", 9, 4);
    else if (report && streq (report, "ready"))
        vw_lifecycle_ready (pipe);
    else if (report && streq (report, "silent")) {
        //  Reports nothing until told to stop.
        char *command = zstr_recv (pipe);
        zstr_free (&command);
    }
    else if (report)
        zstr_send (pipe, report);
}

static int
s_await_scripted (const char *script, char **reason, int timeout_ms)
{
    zactor_t *actor = zactor_new (s_scripted, (void *) script);
    assert_non_null (actor);
    int rc = vw_lifecycle_await (actor, timeout_ms, reason);
    zactor_destroy (&actor);
    assert_null (actor);
    return rc;
}

static void
test_lifecycle_reports (void **state)
{
    char *reason = (char *) "not touched";
    assert_int_equal (s_await_scripted ("ready", &reason, S_TIMEOUT_MS), 0);
    assert_null (reason);

    assert_int_equal (s_await_scripted ("failed", &reason, S_TIMEOUT_MS), VW_EXIT_SCHEMA);
    assert_string_equal (reason, "schema 9 is newer than 4");
    free (reason);

    //  An exit code of 0 or less would read as success: it becomes 1.
    assert_int_equal (s_await_scripted ("FAILED 0 zero", &reason, S_TIMEOUT_MS), 1);
    assert_string_equal (reason, "zero");
    free (reason);
    assert_int_equal (s_await_scripted ("FAILED -3 negative", &reason, S_TIMEOUT_MS), 1);
    free (reason);
    assert_int_equal (s_await_scripted ("FAILED junk", &reason, S_TIMEOUT_MS), 1);
    assert_string_equal (reason, "unknown reason");
    free (reason);
    assert_int_equal (s_await_scripted ("FAILED 2 ", &reason, S_TIMEOUT_MS), 2);
    assert_string_equal (reason, "");
    free (reason);

    //  EXITED during start-up keeps its reason; any other text: not ready. (A thread that
    //  ends with no report at all is left out on purpose: await would take
    //  CZMQ's end-of-thread signal as the report, and zactor_destroy could
    //  then wait for that signal forever.)
    assert_int_equal (s_await_scripted ("exited", &reason, S_TIMEOUT_MS), 1);
    assert_string_equal (reason, "lost the database");
    free (reason);
    const char *others[] = {"READY?", "ready "};
    for (int i = 0; i < 2; i++) {
        assert_int_equal (s_await_scripted (others[i], &reason, S_TIMEOUT_MS), 1);
        assert_string_equal (reason, "stopped during start-up");
        free (reason);
    }
}

static void
test_lifecycle_timeout (void **state)
{
    //  The one wait here is on purpose: a thread that never reports.
    char *reason = NULL;
    assert_int_equal (s_await_scripted ("silent", &reason, 50), 1);
    assert_string_equal (reason, "did not report ready in time");
    free (reason);
}

int
main (void)
{

    const struct CMUnitTest lifecycle_tests[] = {
        cmocka_unit_test (test_lifecycle_reports),
        cmocka_unit_test (test_lifecycle_timeout),
    };
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_create_fails_with_reason, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_create_fails_without_reason, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_ready_and_term_order, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_ping_pong_with_health, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_ping_pong_default_health, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_stall_fault_ignores_pings, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_timers_fire_and_flush_follows, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_handler_gets_messages, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_watched_socket_triggers_callback, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_watch_added_by_handler, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_abort_reports_exited, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_abort_destroy_without_reading, s_setup, s_teardown),
        cmocka_unit_test (test_send_failures_counted),
        cmocka_unit_test (test_batches_split_by_bytes),
    };
    int failed = cmocka_run_group_tests_name ("vw_lifecycle", lifecycle_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name ("vw_actor", tests, NULL, NULL);
    vw_msg_backlog_destroy (&s_backlog);
    return failed;
}
