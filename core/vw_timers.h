/*  vw_timers - one-shot deadlines for an actor's loop, on a binary min-heap.

    Each actor owns one vw_timers_t and asks it how long it may sleep
    (vw_timers_timeout) before polling, then fires what is due
    (vw_timers_run). Adding and cancelling cost O(log n), and a cancelled
    timer leaves nothing behind, so an actor can hold a deadline per
    in-flight command (hundreds of thousands) without periodic scans.

    A timer is named by an id that stays safe after the timer fired or was
    cancelled: cancelling a stale id does nothing. Ids are never 0.
    Not thread-safe: one actor, one vw_timers_t.
*/
#ifndef VW_TIMERS_H
#define VW_TIMERS_H

#include <stddef.h>
#include <stdint.h>

typedef struct vw_timers_t vw_timers_t;
typedef void (vw_timer_fn) (void *arg, uint64_t id);

vw_timers_t *vw_timers_new (void);
void vw_timers_destroy (vw_timers_t **self_p);

//  Schedules fn(arg, id) at monotonic time `due_ms` (vw_clock_mono_ms).
//  Returns the timer's id, or 0 on allocation failure.
uint64_t vw_timers_add_at (vw_timers_t *self, int64_t due_ms, vw_timer_fn *fn, void *arg);
//  Same, `delay_ms` from now.
uint64_t vw_timers_add (vw_timers_t *self, int64_t delay_ms, vw_timer_fn *fn, void *arg);

//  Cancels a pending timer; 0 if it was pending, -1 if unknown/fired/cancelled.
int vw_timers_cancel (vw_timers_t *self, uint64_t id);

//  Milliseconds until the earliest deadline (0 if overdue), -1 if none.
//  Suitable as a zmq_poll timeout.
long vw_timers_timeout (vw_timers_t *self, int64_t now_ms);

//  Fires every timer due at now_ms, earliest first; callbacks may add and
//  cancel timers. Returns how many fired.
size_t vw_timers_run (vw_timers_t *self, int64_t now_ms);

size_t vw_timers_count (vw_timers_t *self);

#endif
