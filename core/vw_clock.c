/*  vw_clock - see vw_clock.h. */
#include "vw_clock.h"

#include <stdatomic.h>
#include <time.h>

static const int64_t *_Atomic s_fake;

static int64_t
s_read (clockid_t id)
{
    const int64_t *fake = atomic_load (&s_fake);
    if (fake)
        return *fake;
    struct timespec ts;
    clock_gettime (id, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
vw_clock_wall_ms (void)
{
    return s_read (CLOCK_REALTIME);
}

int64_t
vw_clock_mono_ms (void)
{
    return s_read (CLOCK_MONOTONIC);
}

int64_t
vw_clock_mono_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
vw_clock_set_fake (const int64_t *fake)
{
    atomic_store (&s_fake, fake);
}
