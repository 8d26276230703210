/*  vw_outq - see vw_outq.h. */
#include "vw_outq.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct s_frame_t {
    struct s_frame_t *next;
    size_t len;
    bool binary;
    unsigned char data[];  //  headroom, then the payload
} s_frame_t;

struct vw_outq_t {
    s_frame_t *head, *tail;
    size_t max_bytes;
    size_t headroom;
    size_t bytes;
    size_t size;
};

vw_outq_t *
vw_outq_new (size_t max_bytes, size_t headroom)
{
    vw_outq_t *self = (vw_outq_t *) calloc (1, sizeof (vw_outq_t));
    if (!self)
        return NULL;
    self->max_bytes = max_bytes;
    self->headroom = headroom;
    return self;
}

void
vw_outq_destroy (vw_outq_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vw_outq_clear (*self_p);
    free (*self_p);
    *self_p = NULL;
}

int
vw_outq_push (vw_outq_t *self, const void *data, size_t len, bool binary)
{
    if (self->head && self->max_bytes &&
        (len > self->max_bytes || self->bytes > self->max_bytes - len))
        return VW_OUTQ_FULL;
    if (len > SIZE_MAX - sizeof (s_frame_t) - self->headroom)
        return VW_OUTQ_NOMEM;
    s_frame_t *frame = (s_frame_t *) malloc (sizeof (s_frame_t) + self->headroom + len);
    if (!frame)
        return VW_OUTQ_NOMEM;
    frame->next = NULL;
    frame->len = len;
    frame->binary = binary;
    if (len)
        memcpy (frame->data + self->headroom, data, len);
    if (self->tail)
        self->tail->next = frame;
    else
        self->head = frame;
    self->tail = frame;
    self->bytes += len;
    self->size++;
    return 0;
}

unsigned char *
vw_outq_front (vw_outq_t *self, size_t *len, bool *binary)
{
    s_frame_t *frame = self->head;
    if (!frame)
        return NULL;
    if (len)
        *len = frame->len;
    if (binary)
        *binary = frame->binary;
    return frame->data + self->headroom;
}

void
vw_outq_pop (vw_outq_t *self)
{
    s_frame_t *frame = self->head;
    if (!frame)
        return;
    self->head = frame->next;
    if (!self->head)
        self->tail = NULL;
    self->bytes -= frame->len;
    self->size--;
    free (frame);
}

void
vw_outq_clear (vw_outq_t *self)
{
    while (self->head)
        vw_outq_pop (self);
}

size_t
vw_outq_bytes (const vw_outq_t *self)
{
    return self->bytes;
}

size_t
vw_outq_size (const vw_outq_t *self)
{
    return self->size;
}

size_t
vw_outq_max (const vw_outq_t *self)
{
    return self->max_bytes;
}
