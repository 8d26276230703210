/*  vw_runner - runs programs for the agent's commands (see vw_runner.h).

    A run is a detached thread plus a job record on the runner's list of
    live jobs. The job's cancel pipe is how the owner reaches the thread:
    vw_runner_cancel writes a byte to it under the runner's lock, and the
    thread unlinks its job under the same lock before closing the pipe, so
    a cancel never writes to a closed (or reused) descriptor.
*/
#include "vw_runner.h"
#include "vw_clock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

//  After the child exited, how long we still read pipes that something it
//  started keeps open.
#define S_DRAIN_MS 100
//  The longest poll while the child runs: how soon an exit is noticed when
//  its pipes stay open (exits normally close them and wake us at once).
#define S_TICK_MS 250

typedef struct s_job_t {
    struct s_job_t *next;
    vw_runner_t *owner;
    uint64_t id;
    char **argv;
    int64_t timeout_ms;
    int cancel[2];  //  owner writes, thread reads
} s_job_t;

struct vw_runner_t {
    pthread_mutex_t lock;
    pthread_cond_t idle;  //  signalled when a thread ends
    size_t output_max;
    int64_t kill_grace_ms;
    vw_runner_wake_fn *wake;
    void *wake_arg;
    s_job_t *jobs;  //  running
    size_t threads;
    vw_run_t **done;  //  finished, not collected (FIFO)
    size_t done_count, done_cap;
    size_t uncollected;  //  started, not yet returned by vw_runner_next
};

typedef struct {
    int fd;
    char *data;
    size_t size;
    bool truncated;
} s_stream_t;

static void
s_job_free (s_job_t *job)
{
    if (!job)
        return;
    if (job->argv)
        for (char **arg = job->argv; *arg; arg++)
            free (*arg);
    free (job->argv);
    if (job->cancel[0] >= 0)
        close (job->cancel[0]);
    if (job->cancel[1] >= 0)
        close (job->cancel[1]);
    free (job);
}

//  Reads what is there; returns false at end of file or on an error.
static bool
s_stream_read (s_stream_t *stream, size_t max)
{
    char chunk[4096];
    ssize_t n = read (stream->fd, chunk, sizeof chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (n <= 0)
        return false;
    size_t room = max - stream->size;
    size_t keep = (size_t) n < room ? (size_t) n : room;
    if (keep) {
        memcpy (stream->data + stream->size, chunk, keep);
        stream->size += keep;
    }
    if (keep < (size_t) n)
        stream->truncated = true;
    return true;
}

static void
s_stream_close (s_stream_t *stream)
{
    if (stream->fd >= 0)
        close (stream->fd);
    stream->fd = -1;
}

//  Spawns the child with stdout and stderr on the write ends of the pipes.
static int
s_spawn (s_job_t *job, int out_w, int err_w, pid_t *pid, char *error, size_t errlen)
{
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    if (posix_spawn_file_actions_init (&actions) != 0)
        return ENOMEM;
    if (posix_spawnattr_init (&attr) != 0) {
        posix_spawn_file_actions_destroy (&actions);
        return ENOMEM;
    }
    //  Our descriptors are all close-on-exec; dup2 clears the flag on the
    //  copies. Signals: the agent ignores SIGPIPE, which a child inherits
    //  unless reset; its mask must be empty too.
    sigset_t none, defaults;
    sigemptyset (&none);
    sigemptyset (&defaults);
    sigaddset (&defaults, SIGPIPE);
    sigaddset (&defaults, SIGINT);
    sigaddset (&defaults, SIGTERM);
    sigaddset (&defaults, SIGHUP);
    int rc = posix_spawn_file_actions_addopen (&actions, 0, "/dev/null", O_RDONLY, 0);
    if (!rc)
        rc = posix_spawn_file_actions_adddup2 (&actions, out_w, 1);
    if (!rc)
        rc = posix_spawn_file_actions_adddup2 (&actions, err_w, 2);
    if (!rc)
        rc = posix_spawnattr_setflags (&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                  POSIX_SPAWN_SETSIGDEF);
    if (!rc)
        rc = posix_spawnattr_setpgroup (&attr, 0);
    if (!rc)
        rc = posix_spawnattr_setsigmask (&attr, &none);
    if (!rc)
        rc = posix_spawnattr_setsigdefault (&attr, &defaults);
    if (!rc)
        rc = posix_spawn (pid, job->argv[0], &actions, &attr, job->argv, environ);
    if (rc)
        snprintf (error, errlen, "cannot start %s: %s", job->argv[0], strerror (rc));
    posix_spawnattr_destroy (&attr);
    posix_spawn_file_actions_destroy (&actions);
    return rc;
}

//  Waits for the child, reading its output, until it is over (see the
//  header), the deadline or a cancel.
static void
s_supervise (s_job_t *job, pid_t pid, s_stream_t *streams, vw_run_t *run)
{
    vw_runner_t *owner = job->owner;
    int64_t start = vw_clock_mono_ms ();
    int64_t deadline = start + job->timeout_ms;
    int64_t kill_at = 0;     //  SIGKILL due (after a SIGTERM), 0: none sent
    int64_t exited_at = -1;  //  when we reaped it
    bool killed = false;
    while (true) {
        int64_t now = vw_clock_mono_ms ();
        if (exited_at < 0) {
            int status = 0;
            pid_t got = waitpid (pid, &status, WNOHANG);
            if (got < 0 && errno == ECHILD) {
                //  Reaped by someone else (SIGCHLD ignored, or a waitpid
                //  (-1) elsewhere in the process): over, status unknown.
                exited_at = now;
                snprintf (run->error, sizeof run->error,
                          "%s ended, but its exit status was collected elsewhere", job->argv[0]);
            }
            else if (got == pid) {
                exited_at = now;
                if (WIFEXITED (status))
                    run->exit_status = WEXITSTATUS (status);
                else if (WIFSIGNALED (status))
                    run->signal = WTERMSIG (status);
            }
        }
        bool open = streams[0].fd >= 0 || streams[1].fd >= 0;
        if (exited_at >= 0 && (!open || now - exited_at >= S_DRAIN_MS))
            break;
        //  Deadline and cancel: SIGTERM to the group, SIGKILL after the grace.
        if (exited_at < 0) {
            if (!kill_at && now >= deadline) {
                run->timed_out = true;
                killpg (pid, SIGTERM);
                kill_at = now + owner->kill_grace_ms;
            }
            else if (kill_at && !killed && now >= kill_at) {
                killpg (pid, SIGKILL);
                killed = true;
            }
        }
        int64_t wait = S_TICK_MS;
        if (exited_at >= 0)
            wait = S_DRAIN_MS - (now - exited_at);
        else if (!kill_at && deadline - now < wait)
            wait = deadline - now;
        else if (kill_at && !killed && kill_at - now < wait)
            wait = kill_at - now;
        if (!open && exited_at < 0 && wait > 10)
            wait = 10;  //  pipes closed, child still there: it exits soon
        if (wait < 0)
            wait = 0;
        struct pollfd fds[3] = {{streams[0].fd, POLLIN, 0},
                                {streams[1].fd, POLLIN, 0},
                                {kill_at || exited_at >= 0 ? -1 : job->cancel[0], POLLIN, 0}};
        if (poll (fds, 3, (int) wait) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++)
            if (fds[i].revents && !s_stream_read (&streams[i], owner->output_max))
                s_stream_close (&streams[i]);
        if (fds[2].revents && exited_at < 0 && !kill_at) {
            run->cancelled = true;
            killpg (pid, SIGTERM);
            kill_at = vw_clock_mono_ms () + owner->kill_grace_ms;
        }
    }
    if (exited_at < 0) {
        //  poll failed: do not leave a zombie behind.
        killpg (pid, SIGKILL);
        waitpid (pid, NULL, 0);
    }
}

static void *
s_thread (void *arg)
{
    s_job_t *job = (s_job_t *) arg;
    vw_runner_t *owner = job->owner;
    vw_run_t *run = (vw_run_t *) calloc (1, sizeof (vw_run_t));
    s_stream_t streams[2] = {{-1, NULL, 0, false}, {-1, NULL, 0, false}};
    int pipes[2][2] = {{-1, -1}, {-1, -1}};
    int64_t start = vw_clock_mono_ms ();
    if (run) {
        run->id = job->id;
        run->exit_status = -1;
        streams[0].data = (char *) malloc (owner->output_max + 1);
        streams[1].data = (char *) malloc (owner->output_max + 1);
        if (!streams[0].data || !streams[1].data)
            snprintf (run->error, sizeof run->error, "out of memory");
        else if (pipe2 (pipes[0], O_CLOEXEC) || pipe2 (pipes[1], O_CLOEXEC))
            snprintf (run->error, sizeof run->error, "cannot create pipes: %s", strerror (errno));
        else {
            pid_t pid = 0;
            int rc = s_spawn (job, pipes[0][1], pipes[1][1], &pid, run->error, sizeof run->error);
            close (pipes[0][1]);
            close (pipes[1][1]);
            pipes[0][1] = pipes[1][1] = -1;
            streams[0].fd = pipes[0][0];
            streams[1].fd = pipes[1][0];
            if (rc == 0)
                s_supervise (job, pid, streams, run);
        }
        run->duration_ms = vw_clock_mono_ms () - start;
        run->out = streams[0].data;
        run->out_size = streams[0].size;
        run->out_truncated = streams[0].truncated;
        run->err = streams[1].data;
        run->err_size = streams[1].size;
        run->err_truncated = streams[1].truncated;
        if (run->out)
            run->out[run->out_size] = 0;
        if (run->err)
            run->err[run->err_size] = 0;
        streams[0].data = streams[1].data = NULL;
    }
    for (int i = 0; i < 2; i++) {
        s_stream_close (&streams[i]);
        free (streams[i].data);
        if (pipes[i][1] >= 0)
            close (pipes[i][1]);
    }

    pthread_mutex_lock (&owner->lock);
    for (s_job_t **link = &owner->jobs; *link; link = &(*link)->next)
        if (*link == job) {
            *link = job->next;
            break;
        }
    if (run && owner->done_count == owner->done_cap) {
        size_t cap = owner->done_cap ? owner->done_cap * 2 : 16;
        vw_run_t **grown = (vw_run_t **) realloc (owner->done, cap * sizeof (vw_run_t *));
        if (grown) {
            owner->done = grown;
            owner->done_cap = cap;
        }
    }
    if (run && owner->done_count < owner->done_cap)
        owner->done[owner->done_count++] = run;
    else {
        vw_run_destroy (&run);
        owner->uncollected--;  //  lost for want of memory: nobody will collect it
    }
    pthread_mutex_unlock (&owner->lock);
    s_job_free (job);
    //  Ring while still counted: vw_runner_destroy waits for every thread
    //  to be done with the runner, the doorbell included (the owner may
    //  free what the doorbell uses right after).
    if (owner->wake)
        owner->wake (owner->wake_arg);
    pthread_mutex_lock (&owner->lock);
    owner->threads--;
    pthread_cond_broadcast (&owner->idle);
    pthread_mutex_unlock (&owner->lock);
    return NULL;
}

vw_runner_t *
vw_runner_new (size_t output_max, int64_t kill_grace_ms, vw_runner_wake_fn *wake, void *arg)
{
    if (output_max < 1 || kill_grace_ms < 0)
        return NULL;
    vw_runner_t *self = (vw_runner_t *) calloc (1, sizeof (vw_runner_t));
    if (!self)
        return NULL;
    pthread_mutex_init (&self->lock, NULL);
    pthread_cond_init (&self->idle, NULL);
    self->output_max = output_max;
    self->kill_grace_ms = kill_grace_ms;
    self->wake = wake;
    self->wake_arg = arg;
    return self;
}

void
vw_runner_destroy (vw_runner_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vw_runner_t *self = *self_p;
    pthread_mutex_lock (&self->lock);
    for (s_job_t *job = self->jobs; job; job = job->next) {
        ssize_t rc = write (job->cancel[1], "x", 1);
        (void) rc;
    }
    while (self->threads)
        pthread_cond_wait (&self->idle, &self->lock);
    pthread_mutex_unlock (&self->lock);
    for (size_t i = 0; i < self->done_count; i++)
        vw_run_destroy (&self->done[i]);
    free (self->done);
    pthread_cond_destroy (&self->idle);
    pthread_mutex_destroy (&self->lock);
    free (self);
    *self_p = NULL;
}

int
vw_runner_start (vw_runner_t *self, uint64_t id, const char *const argv[], int64_t timeout_ms)
{
    if (!self || !argv || !argv[0] || timeout_ms <= 0)
        return -1;
    s_job_t *job = (s_job_t *) calloc (1, sizeof (s_job_t));
    if (!job)
        return -1;
    job->owner = self;
    job->id = id;
    job->timeout_ms = timeout_ms;
    job->cancel[0] = job->cancel[1] = -1;
    size_t argc = 0;
    while (argv[argc])
        argc++;
    job->argv = (char **) calloc (argc + 1, sizeof (char *));
    bool ok = job->argv != NULL && pipe2 (job->cancel, O_CLOEXEC | O_NONBLOCK) == 0;
    for (size_t i = 0; ok && i < argc; i++)
        ok = (job->argv[i] = strdup (argv[i])) != NULL;
    if (!ok) {
        s_job_free (job);
        return -1;
    }
    pthread_mutex_lock (&self->lock);
    for (s_job_t *other = self->jobs; other; other = other->next)
        if (other->id == id)
            ok = false;
    pthread_t thread;
    pthread_attr_t attr;
    if (ok && pthread_attr_init (&attr) == 0) {
        pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize (&attr, 256 * 1024);
        ok = pthread_create (&thread, &attr, s_thread, job) == 0;
        pthread_attr_destroy (&attr);
    }
    else
        ok = false;
    if (ok) {
        job->next = self->jobs;
        self->jobs = job;
        self->threads++;
        self->uncollected++;
    }
    pthread_mutex_unlock (&self->lock);
    if (!ok)
        s_job_free (job);
    return ok ? 0 : -1;
}

bool
vw_runner_cancel (vw_runner_t *self, uint64_t id)
{
    if (!self)
        return false;
    bool found = false;
    pthread_mutex_lock (&self->lock);
    for (s_job_t *job = self->jobs; job && !found; job = job->next)
        if (job->id == id) {
            ssize_t rc = write (job->cancel[1], "x", 1);
            (void) rc;
            found = true;
        }
    pthread_mutex_unlock (&self->lock);
    return found;
}

size_t
vw_runner_count (vw_runner_t *self)
{
    if (!self)
        return 0;
    pthread_mutex_lock (&self->lock);
    size_t count = self->uncollected;
    pthread_mutex_unlock (&self->lock);
    return count;
}

vw_run_t *
vw_runner_next (vw_runner_t *self)
{
    if (!self)
        return NULL;
    vw_run_t *run = NULL;
    pthread_mutex_lock (&self->lock);
    if (self->done_count) {
        run = self->done[0];
        memmove (self->done, self->done + 1, (self->done_count - 1) * sizeof (vw_run_t *));
        self->done_count--;
        self->uncollected--;
    }
    pthread_mutex_unlock (&self->lock);
    return run;
}

void
vw_run_destroy (vw_run_t **run_p)
{
    if (!run_p || !*run_p)
        return;
    free ((*run_p)->out);
    free ((*run_p)->err);
    free (*run_p);
    *run_p = NULL;
}
