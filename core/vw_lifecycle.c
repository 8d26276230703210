/*  vw_lifecycle - see vw_lifecycle.h. */
#include "vw_lifecycle.h"
#include "vw_log.h"

#include <ctype.h>
#include <sodium.h>
#include <pthread.h>
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

const char *
vw_lifecycle_bind_reason (char *buf, size_t len, const char *what, const char *where, int err,
                          const char *flags)
{
    char why[128];
    snprintf (why, sizeof why, "%s", err ? zmq_strerror (err) : "unknown error");
    //  "Address already in use" reads as part of our sentence
    if (why[0] && !(why[1] && isupper ((unsigned char) why[1])))
        why[0] = (char) tolower ((unsigned char) why[0]);
    snprintf (buf, len, "cannot listen for %s on %s: %s (%s)", what, where, why, flags);
    return buf;
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

#define S_NOTICES 4

static pthread_mutex_t s_notice_lock = PTHREAD_MUTEX_INITIALIZER;
static bool s_notices_released;
static int s_notice_count;
static struct {
    char component[32];
    char text[1024];
} s_notices[S_NOTICES];

//  Overwrites text in a way the compiler does not drop.
static void
s_wipe (char *text, size_t len)
{
    volatile char *p = text;
    while (len--)
        *p++ = 0;
}

void
vw_lifecycle_notice (const char *component, const char *fmt, ...)
{
    char text[1024];
    va_list args;
    va_start (args, fmt);
    vsnprintf (text, sizeof text, fmt, args);
    va_end (args);
    pthread_mutex_lock (&s_notice_lock);
    bool hold = !s_notices_released && s_notice_count < S_NOTICES;
    if (hold) {
        snprintf (s_notices[s_notice_count].component, sizeof s_notices[0].component, "%s",
                  component);
        memcpy (s_notices[s_notice_count++].text, text, sizeof text);
    }
    pthread_mutex_unlock (&s_notice_lock);
    if (!hold)
        vw_warn (component, "%s", text);
    s_wipe (text, sizeof text);
}

void
vw_lifecycle_release_notices (void)
{
    pthread_mutex_lock (&s_notice_lock);
    for (int i = 0; i < s_notice_count; i++) {
        vw_warn (s_notices[i].component, "%s", s_notices[i].text);
        s_wipe (s_notices[i].text, sizeof s_notices[i].text);
    }
    s_notice_count = 0;
    s_notices_released = true;
    pthread_mutex_unlock (&s_notice_lock);
}

static int64_t s_instance;

static void
s_make_instance (void)
{
    uint64_t r = 0;
    while (!r) {
        randombytes_buf (&r, sizeof r);
        r &= (UINT64_C (1) << 53) - 1;
    }
    s_instance = (int64_t) r;
}

int64_t
vw_lifecycle_instance (void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once (&once, s_make_instance);
    return s_instance;
}
