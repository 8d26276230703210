/*  vw_log - structured logging. See vw_log.h. */
#include "vw_log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static _Atomic int s_level = VW_LOG_INFO;
static _Atomic int s_format = VW_LOG_JSON;
static vw_log_tee_fn *s_tee;
static void *s_tee_arg;

static const char *s_names[] = {"trace", "debug", "info", "warn", "error", "off"};

int
vw_log_level_parse (const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i <= VW_LOG_OFF; i++)
        if (strcasecmp (name, s_names[i]) == 0)
            return i;
    if (strcasecmp (name, "warning") == 0)
        return VW_LOG_WARN;
    return -1;
}

const char *
vw_log_level_name (vw_log_level_t level)
{
    return level >= VW_LOG_TRACE && level <= VW_LOG_OFF ? s_names[level] : "?";
}

void
vw_log_set_level (vw_log_level_t level)
{
    atomic_store (&s_level, (int) level);
}

vw_log_level_t
vw_log_get_level (void)
{
    return (vw_log_level_t) atomic_load (&s_level);
}

void
vw_log_set_format (vw_log_format_t format)
{
    atomic_store (&s_format, (int) format);
}

bool
vw_log_enabled (vw_log_level_t level)
{
    return (int) level >= atomic_load (&s_level) && level < VW_LOG_OFF;
}

//  Appends `src` JSON-escaped to buf at *pos; never overruns cap (keeps 1 byte
//  for the terminator). Control characters become \u00XX.
static void
s_append_escaped (char *buf, size_t cap, size_t *pos, const char *src)
{
    static const char hex[] = "0123456789abcdef";
    size_t p = *pos;
    for (const unsigned char *s = (const unsigned char *) src; *s && p + 7 < cap; s++) {
        unsigned char c = *s;
        if (c == '"' || c == '\\') {
            buf[p++] = '\\';
            buf[p++] = (char) c;
        }
        else if (c == '\n') {
            buf[p++] = '\\';
            buf[p++] = 'n';
        }
        else if (c < 0x20) {
            memcpy (buf + p, "\\u00", 4);
            p += 4;
            buf[p++] = hex[c >> 4];
            buf[p++] = hex[c & 15];
        }
        else
            buf[p++] = (char) c;
    }
    *pos = p;
}

static void
s_append (char *buf, size_t cap, size_t *pos, const char *src)
{
    size_t len = strlen (src);
    if (*pos + len >= cap)
        len = cap - *pos - 1;
    memcpy (buf + *pos, src, len);
    *pos += len;
}

void
vw_log_set_tee (vw_log_tee_fn *tee, void *arg)
{
    s_tee = tee;
    s_tee_arg = arg;
}

void
vw_logv (vw_log_level_t level, const char *component, const char *fmt, va_list args)
{
    if (!vw_log_enabled (level))
        return;
    char msg[2048];
    vsnprintf (msg, sizeof msg, fmt, args);

    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r (&ts.tv_sec, &tm);
    char when[40];
    size_t n = strftime (when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (when + n, sizeof when - n, ".%03ldZ", ts.tv_nsec / 1000000);

    char line[4096];
    size_t pos = 0;
    if (atomic_load (&s_format) == VW_LOG_TEXT) {
        char head[128];
        snprintf (head, sizeof head, "%s %-5s [%s] ", when, vw_log_level_name (level),
                  component ? component : "-");
        s_append (line, sizeof line - 1, &pos, head);
        s_append (line, sizeof line - 1, &pos, msg);
    }
    else {
        s_append (line, sizeof line - 1, &pos, "{\"ts\":\"");
        s_append (line, sizeof line - 1, &pos, when);
        s_append (line, sizeof line - 1, &pos, "\",\"level\":\"");
        s_append (line, sizeof line - 1, &pos, vw_log_level_name (level));
        s_append (line, sizeof line - 1, &pos, "\",\"component\":\"");
        s_append_escaped (line, sizeof line - 8, &pos, component ? component : "-");
        s_append (line, sizeof line - 1, &pos, "\",\"msg\":\"");
        s_append_escaped (line, sizeof line - 8, &pos, msg);
        s_append (line, sizeof line - 1, &pos, "\"}");
    }
    if (s_tee)
        s_tee (s_tee_arg, (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000, level, line, pos);
    line[pos++] = '\n';
    //  One write per line so lines from different threads never interleave.
    ssize_t rc = write (STDERR_FILENO, line, pos);
    (void) rc;
}

void
vw_log (vw_log_level_t level, const char *component, const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    vw_logv (level, component, fmt, args);
    va_end (args);
}
