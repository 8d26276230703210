/*  vw_log - structured logging, one line per event on stderr.

    JSON lines by default ({"ts":…,"level":…,"component":…,"msg":…}), or
    human text. Thread-safe: each line is written with a single write(2).
    The level and format are process-wide and set once at start (and by the
    admin socket's `log.level` op later, which is why the level is atomic).
*/
#ifndef VW_LOG_H
#define VW_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    VW_LOG_TRACE = 0,
    VW_LOG_DEBUG,
    VW_LOG_INFO,
    VW_LOG_WARN,
    VW_LOG_ERROR,
    VW_LOG_OFF
} vw_log_level_t;

typedef enum { VW_LOG_JSON = 0, VW_LOG_TEXT } vw_log_format_t;

//  Parse "trace|debug|info|warn|error" (also "warning", "off"); -1 if unknown.
int vw_log_level_parse (const char *name);
const char *vw_log_level_name (vw_log_level_t level);

void vw_log_set_level (vw_log_level_t level);
vw_log_level_t vw_log_get_level (void);
void vw_log_set_format (vw_log_format_t format);
bool vw_log_enabled (vw_log_level_t level);

//  A copy of every line written (without its newline), e.g. for an
//  in-memory ring of recent lines. Called on the logging thread with
//  the wall-clock time of the line. Set once at start, before threads.
typedef void (vw_log_tee_fn) (void *arg, int64_t wall_ms, vw_log_level_t level, const char *line,
                              size_t size);
void vw_log_set_tee (vw_log_tee_fn *tee, void *arg);

//  Log one event from `component` (an actor or module name).
void vw_log (vw_log_level_t level, const char *component, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
void vw_logv (vw_log_level_t level, const char *component, const char *fmt, va_list args)
    __attribute__ ((format (printf, 3, 0)));

#define vw_trace(c, ...) vw_log (VW_LOG_TRACE, (c), __VA_ARGS__)
#define vw_debug(c, ...) vw_log (VW_LOG_DEBUG, (c), __VA_ARGS__)
#define vw_info(c, ...)  vw_log (VW_LOG_INFO, (c), __VA_ARGS__)
#define vw_warn(c, ...)  vw_log (VW_LOG_WARN, (c), __VA_ARGS__)
#define vw_error(c, ...) vw_log (VW_LOG_ERROR, (c), __VA_ARGS__)

#endif
