/*  vw_unacked - the telemetry frames an agent has built and the backend has
    not acked yet (SPEC §3: a frame is acked only once it is durable).

    Frames are kept serialised, in seq order, until telemetry_ack names
    their seq (or an error refuses them for good); after a reconnect every
    frame still here is sent again, and the backend acks a seq it stored
    before without storing it twice. Bounded: when `max` frames wait (the
    backend has been away a long time), the oldest is dropped and counted.
*/
#ifndef VW_UNACKED_H
#define VW_UNACKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct vw_unacked_t vw_unacked_t;

vw_unacked_t *vw_unacked_new (size_t max);
void vw_unacked_destroy (vw_unacked_t **self_p);

//  Keeps a copy of the frame. 0, or -1 when out of memory. When the bound
//  is reached the oldest frame goes first (vw_unacked_dropped counts them).
int vw_unacked_add (vw_unacked_t *self, int64_t seq, const void *data, size_t size);

//  Forgets the frame with this seq: true if it was here. *stamp (when not
//  NULL) gets the frame's stamp.
bool vw_unacked_remove (vw_unacked_t *self, int64_t seq, int64_t *stamp);

//  Calls fn for every frame, oldest first; stops at a non-zero return.
//  *stamp is the frame's to keep (0 when added), e.g. when it was sent.
typedef int (vw_unacked_fn) (void *arg, int64_t seq, const void *data, size_t size, int64_t *stamp);
int vw_unacked_each (vw_unacked_t *self, vw_unacked_fn *fn, void *arg);

size_t vw_unacked_size (vw_unacked_t *self);
uint64_t vw_unacked_dropped (vw_unacked_t *self);

#endif
