/*  vw_unacked - see vw_unacked.h. A doubly linked list: acks come in order
    almost always, so the search starts at the oldest frame. */
#include "vw_unacked.h"

#include <stdlib.h>
#include <string.h>

typedef struct s_frame_t {
    struct s_frame_t *prev, *next;
    int64_t seq;
    int64_t stamp;
    size_t size;
    unsigned char data[];
} s_frame_t;

struct vw_unacked_t {
    s_frame_t *head, *tail;
    size_t count, max;
    uint64_t dropped;
};

vw_unacked_t *
vw_unacked_new (size_t max)
{
    vw_unacked_t *self = (vw_unacked_t *) calloc (1, sizeof *self);
    if (self)
        self->max = max ? max : 1;
    return self;
}

static void
s_unlink (vw_unacked_t *self, s_frame_t *frame)
{
    if (frame->prev)
        frame->prev->next = frame->next;
    else
        self->head = frame->next;
    if (frame->next)
        frame->next->prev = frame->prev;
    else
        self->tail = frame->prev;
    self->count--;
    free (frame);
}

void
vw_unacked_destroy (vw_unacked_t **self_p)
{
    vw_unacked_t *self = *self_p;
    if (!self)
        return;
    while (self->head)
        s_unlink (self, self->head);
    free (self);
    *self_p = NULL;
}

int
vw_unacked_add (vw_unacked_t *self, int64_t seq, const void *data, size_t size)
{
    s_frame_t *frame = (s_frame_t *) malloc (sizeof *frame + size);
    if (!frame)
        return -1;
    if (self->count == self->max) {
        s_unlink (self, self->head);
        self->dropped++;
    }
    frame->seq = seq;
    frame->stamp = 0;
    frame->size = size;
    memcpy (frame->data, data, size);
    frame->next = NULL;
    frame->prev = self->tail;
    if (self->tail)
        self->tail->next = frame;
    else
        self->head = frame;
    self->tail = frame;
    self->count++;
    return 0;
}

bool
vw_unacked_remove (vw_unacked_t *self, int64_t seq, int64_t *stamp)
{
    for (s_frame_t *frame = self->head; frame; frame = frame->next)
        if (frame->seq == seq) {
            if (stamp)
                *stamp = frame->stamp;
            s_unlink (self, frame);
            return true;
        }
    return false;
}

int
vw_unacked_each (vw_unacked_t *self, vw_unacked_fn *fn, void *arg)
{
    for (s_frame_t *frame = self->head; frame; frame = frame->next) {
        int rc = fn (arg, frame->seq, frame->data, frame->size, &frame->stamp);
        if (rc)
            return rc;
    }
    return 0;
}

size_t
vw_unacked_size (vw_unacked_t *self)
{
    return self->count;
}

uint64_t
vw_unacked_dropped (vw_unacked_t *self)
{
    return self->dropped;
}
