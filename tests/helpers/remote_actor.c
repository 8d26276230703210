/*  remote_actor - an actor in another process, for test_broker's tcp case.

        remote_actor <broker tcp endpoint> [target]

    Runs an actor class named "remote" with vw_actor_task against the broker
    over tcp://, so it joins and answers pings like any actor. Once the
    actor reports READY it prints "READY <pid>" on stdout; then the actor
    pings `target` (default "tester") in the test process. Exits 0 when the
    matching pong arrived, 1 on an error reply, a failed start or after a
    5 s deadline, 2 on bad usage.
*/
#include "vw_actor.h"
#include "vw_clock.h"
#include "vw_lifecycle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_DEADLINE_MS 5000
//  The actor tells the main thread how its request ended.
#define S_DONE_ENDPOINT "inproc://remote-actor-done"

typedef struct {
    const char *target;
} s_args_t;

typedef struct {
    vw_actor_t *actor;
    const char *target;
    uint64_t rid;  //  of our ping; 0 until sent
    zsock_t *done;
} s_state_t;

static void
s_finish (s_state_t *self, const char *outcome)
{
    zstr_send (self->done, outcome);
}

//  Fires on the first loop pass, i.e. once the actor has joined.
static void
s_send_ping (void *arg, uint64_t id)
{
    s_state_t *self = (s_state_t *) arg;
    vw_msg_t *ping = vw_msg_new (VW_MSG_ID_ping);
    ping->rid = self->rid = vw_actor_next_rid (self->actor);
    ping->ping.sent_ms = vw_clock_mono_ms ();
    if (vw_actor_send (self->actor, self->target, &ping)) {
        vw_msg_destroy (&ping);
        s_finish (self, "FAIL cannot send the ping");
    }
}

static void *
s_create (vw_actor_t *actor, void *args)
{
    s_state_t *self = (s_state_t *) calloc (1, sizeof (s_state_t));
    if (!self)
        return NULL;
    self->actor = actor;
    self->target = ((s_args_t *) args)->target;
    self->done = zsock_new_pair (">" S_DONE_ENDPOINT);
    if (!self->done || !vw_timers_add (vw_actor_timers (actor), 0, s_send_ping, self)) {
        vw_actor_fail (actor, VW_EXIT_FAILURE, "remote_actor: cannot set up");
        zsock_destroy (&self->done);
        free (self);
        return NULL;
    }
    return self;
}

static void
s_destroy (void **state_p)
{
    s_state_t *self = (s_state_t *) *state_p;
    if (!self)
        return;
    zsock_destroy (&self->done);
    free (self);
    *state_p = NULL;
}

static void
s_handle (void *state, vw_actor_t *actor, vw_msg_t **msg_p)
{
    s_state_t *self = (s_state_t *) state;
    vw_msg_t *msg = *msg_p;
    if (!self->rid || msg->rid != self->rid)
        return;
    if (msg->id == VW_MSG_ID_pong && strcmp (msg->peer, self->target) == 0)
        s_finish (self, "OK");
    else if (msg->id == VW_MSG_ID_error) {
        char outcome[160];
        snprintf (outcome, sizeof outcome, "FAIL error %s",
                  msg->error.code ? msg->error.code : "?");
        s_finish (self, outcome);
    }
}

static const vw_actor_class_t s_remote_class = {
    .name = "remote",
    .create = s_create,
    .destroy = s_destroy,
    .handle = s_handle,
};

int
main (int argc, char *argv[])
{
    if (argc < 2 || argc > 3) {
        fprintf (stderr, "usage: %s <broker tcp endpoint> [target]\n", argv[0]);
        return 2;
    }
    int64_t deadline = vw_clock_mono_ms () + S_DEADLINE_MS;
    s_args_t args = {argc == 3 ? argv[2] : "tester"};
    zsock_t *done = zsock_new_pair ("@" S_DONE_ENDPOINT);
    if (!done)
        return 1;
    vw_actor_args_t actor_args = {&s_remote_class, argv[1], &args};
    zactor_t *actor = zactor_new (vw_actor_task, &actor_args);
    int exit_code = 1;
    char *reason = NULL;
    if (!actor)
        fprintf (stderr, "remote_actor: cannot start the actor\n");
    else if (vw_lifecycle_await (actor, S_DEADLINE_MS, &reason))
        fprintf (stderr, "remote_actor: actor failed: %s\n", reason ? reason : "?");
    else {
        printf ("READY %d\n", (int) getpid ());
        fflush (stdout);
        zpoller_t *poller = zpoller_new (done, NULL);
        int64_t left = deadline - vw_clock_mono_ms ();
        if (left > 0 && zpoller_wait (poller, (int) left) == done) {
            char *outcome = zstr_recv (done);
            if (outcome && strcmp (outcome, "OK") == 0)
                exit_code = 0;
            else
                fprintf (stderr, "remote_actor: %s\n", outcome ? outcome : "interrupted");
            zstr_free (&outcome);
        }
        else
            fprintf (stderr, "remote_actor: no pong from '%s' within %d ms\n", args.target,
                     S_DEADLINE_MS);
        zpoller_destroy (&poller);
    }
    free (reason);
    zactor_destroy (&actor);
    zsock_destroy (&done);
    return exit_code;
}
