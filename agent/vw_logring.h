/*  vw_logring - the last N log lines of a process, in memory, for the
    agent's collect_logs command.

    Lines are copied in (cut to line_max bytes) with their wall-clock time;
    the oldest goes when the ring is full. Thread-safe (vw_log may be called
    from any thread).
*/
#ifndef VW_LOGRING_H
#define VW_LOGRING_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct vw_logring_t vw_logring_t;

//  NULL if out of memory or a size is 0.
vw_logring_t *vw_logring_new (size_t lines, size_t line_max);
void vw_logring_destroy (vw_logring_t **self_p);

void vw_logring_add (vw_logring_t *self, int64_t wall_ms, const char *line, size_t size);

//  The newest `lines` lines (at most) stamped at or after since_ms, oldest
//  first, as a new JSON array of strings; NULL if out of memory.
json_t *vw_logring_collect (vw_logring_t *self, int64_t since_ms, size_t lines);

#endif
