/*  vw_outq - a connection's queue of outgoing frames, bounded in bytes.

    Frames are copied in behind `headroom` spare bytes (libwebsockets wants
    LWS_PRE in front of what lws_write sends) and taken out in order. The
    queue holds at most max_bytes of payload; a push that would pass the
    bound is refused and queues nothing, except into an empty queue, which
    always takes one frame (so a frame larger than the bound can still be
    sent when nothing else waits). What a refusal means is the owner's call:
    vw_ws closes an agent that does not read its output.

        vw_outq_t *q = vw_outq_new (4 * 1024 * 1024, LWS_PRE);
        if (vw_outq_push (q, data, len, false) == VW_OUTQ_FULL) ...
        size_t n; bool binary;
        unsigned char *p = vw_outq_front (q, &n, &binary);  //  p - headroom is writable
        lws_write (wsi, p, n, ...);
        vw_outq_pop (q);
*/
#ifndef VW_OUTQ_H
#define VW_OUTQ_H

#include <stdbool.h>
#include <stddef.h>

typedef struct vw_outq_t vw_outq_t;

//  vw_outq_push's answers.
#define VW_OUTQ_FULL  -1  //  the frame would take the queue past its bound
#define VW_OUTQ_NOMEM -2  //  no memory for the copy

//  NULL if out of memory; max_bytes 0 means no bound.
vw_outq_t *vw_outq_new (size_t max_bytes, size_t headroom);
void vw_outq_destroy (vw_outq_t **self_p);
//  Copies a frame in at the back: 0, VW_OUTQ_FULL or VW_OUTQ_NOMEM (then
//  nothing was queued).
int vw_outq_push (vw_outq_t *self, const void *data, size_t len, bool binary);
//  The oldest frame's payload (headroom bytes in front of it are the
//  caller's to use), its length and kind; NULL when empty.
unsigned char *vw_outq_front (vw_outq_t *self, size_t *len, bool *binary);
//  Drops the oldest frame.
void vw_outq_pop (vw_outq_t *self);
//  Drops every frame.
void vw_outq_clear (vw_outq_t *self);
//  Payload bytes queued, frames queued, the bound.
size_t vw_outq_bytes (const vw_outq_t *self);
size_t vw_outq_size (const vw_outq_t *self);
size_t vw_outq_max (const vw_outq_t *self);

#endif
