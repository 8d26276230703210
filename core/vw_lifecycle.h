/*  vw_lifecycle - the start-up handshake every thread of the backend uses.

    zactor_new returns once the new thread signals its pipe, but a CZMQ
    signal carries no reason. So each actor thread signals at once and then
    reports its start-up outcome as one string message on the pipe:
    "READY", or "FAILED <exit code> <reason>". The main thread waits for that
    report (with a deadline) before starting the next actor, and exits with
    the failed actor's exit code and reason.

    An actor thread that leaves its loop for any reason other than $TERM
    sends "EXITED <reason>" first, so the supervisor can log it and /health
    can show it down.
*/
#ifndef VW_LIFECYCLE_H
#define VW_LIFECYCLE_H

#include <czmq.h>

//  Exit codes of viworks-backend (also documented in docs/operations.md).
#define VW_EXIT_OK       0
#define VW_EXIT_FAILURE  1  //  an actor failed to start (bind error, ...)
#define VW_EXIT_USAGE    2  //  bad option or value
#define VW_EXIT_DATABASE 3  //  database cannot be opened or migrated
#define VW_EXIT_SCHEMA   4  //  database schema is newer than this build

void vw_lifecycle_ready (zsock_t *pipe);
void vw_lifecycle_failed (zsock_t *pipe, int exit_code, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
void vw_lifecycle_exited (zsock_t *pipe, const char *reason);

//  The operator's message for a listener that cannot bind, naming the
//  setting to change: "cannot listen for <what> on <where>: <why> (<flags>)"
//  where why is errno `err`'s text in lower case, e.g. "address already in
//  use" (ZeroMQ's own codes included). Returns buf.
const char *vw_lifecycle_bind_reason (char *buf, size_t len, const char *what, const char *where,
                                      int err, const char *flags);

//  Operator notices: lines that must not drown in the start-up log (the
//  generated admin password). Logged at warn level by `component`, but
//  held until the backend is ready and then written right after the
//  "ready" line; once ready, written at once. The held copy is wiped
//  after writing. At most 4 are held (more are written at once).
void vw_lifecycle_notice (const char *component, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));
//  The backend is ready, or will not be: writes the held notices and
//  writes every later one at once.
void vw_lifecycle_release_notices (void);

//  Waits up to timeout_ms for an actor's report. Returns 0 when READY;
//  otherwise the reported exit code (VW_EXIT_FAILURE on timeout) with a
//  reason in *reason (caller frees).
int vw_lifecycle_await (zactor_t *actor, int timeout_ms, char **reason);

//  This process's instance: a random number (1 .. 2^53), the same for every
//  thread until the process ends. Actors join the broker with it, so that
//  the broker tells an actor of its own process from a remote one, and a
//  restarted process from the one before it.
int64_t vw_lifecycle_instance (void);

#endif
