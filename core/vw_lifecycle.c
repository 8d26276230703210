/*  vw_lifecycle - see vw_lifecycle.h. */
#include "vw_lifecycle.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void
vw_lifecycle_ready (zsock_t *pipe)
{
    zstr_send (pipe, "READY");
}

void
vw_lifecycle_failed (zsock_t *pipe, int exit_code, const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    char reason[512];
    vsnprintf (reason, sizeof reason, fmt, args);
    va_end (args);
    zstr_sendf (pipe, "FAILED %d %s", exit_code, reason);
}

void
vw_lifecycle_exited (zsock_t *pipe, const char *reason)
{
    zsock_set_sndtimeo (pipe, 0);
    zstr_sendf (pipe, "EXITED %s", reason);
}

int
vw_lifecycle_await (zactor_t *actor, int timeout_ms, char **reason)
{
    *reason = NULL;
    zsock_t *pipe = zactor_sock (actor);
    zpoller_t *poller = zpoller_new (pipe, NULL);
    void *which = zpoller_wait (poller, timeout_ms);
    zpoller_destroy (&poller);
    if (!which) {
        *reason = strdup ("did not report ready in time");
        return 1;
    }
    char *report = zstr_recv (pipe);
    if (report && strcmp (report, "READY") == 0) {
        zstr_free (&report);
        return 0;
    }
    int code = 1;
    const char *why = "stopped during start-up";
    char *end = NULL;
    if (report && strncmp (report, "FAILED ", 7) == 0) {
        code = (int) strtol (report + 7, &end, 10);
        why = end && *end == ' ' ? end + 1 : "unknown reason";
        if (code <= 0)
            code = 1;
    }
    else if (report && strncmp (report, "EXITED ", 7) == 0)
        why = report + 7;
    *reason = strdup (why);
    zstr_free (&report);
    return code;
}
