/*  vw_runner - runs programs for the agent's commands: no shell, bounded
    output, a deadline, cancellation.

    Each run gets a thread of its own. It spawns the program (posix_spawn,
    argv[0] an absolute path, no shell, stdin from /dev/null, stdout and
    stderr into pipes, a process group of its own, default signal
    dispositions), reads both pipes up to `output_max` bytes each (the rest
    is read and dropped, so the child never blocks on a full pipe), and
    waits for it. At the deadline, or on vw_runner_cancel, it sends SIGTERM
    to the child's process group and SIGKILL `kill_grace_ms` later. Only
    that thread signals and reaps its child, so a pid is never signalled
    after it was reaped (and maybe reused). A run is over when the child
    has exited and its pipes are closed, or 100 ms after it exited if
    something it started keeps them open.

    Finished runs are queued; the thread then calls `wake` (from that
    thread: an event loop's doorbell, e.g. lws_cancel_service), and the
    owner collects them with vw_runner_next on its own thread.

    Ownership: argv is copied by vw_runner_start. vw_runner_next returns a
    run the caller owns (vw_run_destroy). Thread-safe: every function may be
    called from the owner's thread while runs are in progress.
*/
#ifndef VW_RUNNER_H
#define VW_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct vw_runner_t vw_runner_t;

typedef struct {
    uint64_t id;         //  as given to vw_runner_start
    int exit_status;     //  0..255 when the program exited, else -1
    int signal;          //  the signal that ended it, else 0
    bool timed_out;      //  ended by the deadline
    bool cancelled;      //  ended by vw_runner_cancel
    char *out;           //  stdout, NUL-terminated (may hold other NULs)
    size_t out_size;     //  bytes kept
    bool out_truncated;  //  more was written than output_max
    char *err;           //  stderr, same rules
    size_t err_size;
    bool err_truncated;
    int64_t duration_ms;
    char error[256];  //  non-empty: could not be started, or its status is unknown
} vw_run_t;

typedef void (vw_runner_wake_fn) (void *arg);

//  output_max: bytes kept per stream (>= 1); kill_grace_ms: SIGTERM to
//  SIGKILL; wake may be NULL (then poll vw_runner_next). NULL if out of
//  memory or a bad argument.
vw_runner_t *vw_runner_new (size_t output_max, int64_t kill_grace_ms, vw_runner_wake_fn *wake,
                            void *arg);

//  Cancels every run still going, waits for their threads, frees what was
//  not collected. Safe on NULL and twice; NULLs *self_p.
void vw_runner_destroy (vw_runner_t **self_p);

//  Starts argv[0] (an absolute path) with argv (NULL-terminated) and a
//  deadline of timeout_ms (> 0). A program that cannot be started still
//  finishes as a run, with `error` set. Returns 0, or -1 if the thread could
//  not be created (out of resources) or id is already running.
int vw_runner_start (vw_runner_t *self, uint64_t id, const char *const argv[], int64_t timeout_ms);

//  Asks run `id` to stop (SIGTERM, then SIGKILL). Its result still arrives
//  through vw_runner_next, with cancelled set. Returns false if no such run
//  is going.
bool vw_runner_cancel (vw_runner_t *self, uint64_t id);

//  Runs started and not yet collected by vw_runner_next.
size_t vw_runner_count (vw_runner_t *self);

//  The next finished run (the caller's), or NULL if none is waiting.
vw_run_t *vw_runner_next (vw_runner_t *self);

void vw_run_destroy (vw_run_t **run_p);

#endif
