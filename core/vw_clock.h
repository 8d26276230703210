/*  vw_clock - wall and monotonic time in milliseconds.

    Wall time (Unix epoch ms) is what the protocol and the database carry;
    monotonic time drives timers. Tests can install a fake clock so that
    deadline logic (heartbeats, backoff, expiry) is checked without sleeping.
*/
#ifndef VW_CLOCK_H
#define VW_CLOCK_H

#include <stdint.h>

//  Milliseconds since the Unix epoch.
int64_t vw_clock_wall_ms (void);
//  Milliseconds on a monotonic clock (arbitrary origin).
int64_t vw_clock_mono_ms (void);
//  Microseconds on the same clock, for durations shorter than a few ms
//  (not faked: what it measures is real work).
int64_t vw_clock_mono_us (void);

//  Test hook: when set, both clocks return *fake (per process). NULL restores.
void vw_clock_set_fake (const int64_t *fake);

#endif
