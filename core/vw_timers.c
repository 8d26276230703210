/*  vw_timers - see vw_timers.h.

    Timers live in a slot array; the heap orders slot indices by deadline and
    each slot remembers its heap position, so a cancel removes the exact
    entry. An id packs a slot index (low 32 bits) with the slot's generation
    (high 32 bits), bumped on every reuse: a stale id never matches. */
#include "vw_timers.h"
#include "vw_clock.h"

#include <assert.h>
#include <stdlib.h>

typedef struct {
    int64_t due;
    uint64_t seq;  //  insertion order: equal deadlines fire FIFO
    vw_timer_fn *fn;
    void *arg;
    uint32_t gen;
    uint32_t heap_pos;  //  UINT32_MAX when free
    uint32_t next_free;
} s_slot_t;

struct vw_timers_t {
    s_slot_t *slots;
    uint32_t nslots;
    uint32_t free_head;  //  UINT32_MAX when none
    uint32_t *heap;      //  slot indices
    uint32_t count;
    uint64_t seq;
};

#define S_NONE UINT32_MAX

vw_timers_t *
vw_timers_new (void)
{
    vw_timers_t *self = (vw_timers_t *) calloc (1, sizeof (vw_timers_t));
    if (self)
        self->free_head = S_NONE;
    return self;
}

void
vw_timers_destroy (vw_timers_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free ((*self_p)->slots);
    free ((*self_p)->heap);
    free (*self_p);
    *self_p = NULL;
}

static int
s_before (vw_timers_t *self, uint32_t a, uint32_t b)
{
    const s_slot_t *x = &self->slots[a], *y = &self->slots[b];
    return x->due < y->due || (x->due == y->due && x->seq < y->seq);
}

static void
s_place (vw_timers_t *self, uint32_t pos, uint32_t slot)
{
    self->heap[pos] = slot;
    self->slots[slot].heap_pos = pos;
}

static void
s_sift_up (vw_timers_t *self, uint32_t pos)
{
    uint32_t slot = self->heap[pos];
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (!s_before (self, slot, self->heap[parent]))
            break;
        s_place (self, pos, self->heap[parent]);
        pos = parent;
    }
    s_place (self, pos, slot);
}

static void
s_sift_down (vw_timers_t *self, uint32_t pos)
{
    uint32_t slot = self->heap[pos];
    for (;;) {
        uint32_t child = 2 * pos + 1;
        if (child >= self->count)
            break;
        if (child + 1 < self->count && s_before (self, self->heap[child + 1], self->heap[child]))
            child++;
        if (!s_before (self, self->heap[child], slot))
            break;
        s_place (self, pos, self->heap[child]);
        pos = child;
    }
    s_place (self, pos, slot);
}

static void
s_remove_at (vw_timers_t *self, uint32_t pos)
{
    uint32_t slot = self->heap[pos];
    self->count--;
    if (pos != self->count) {
        uint32_t moved = self->heap[self->count];
        s_place (self, pos, moved);
        s_sift_down (self, pos);
        s_sift_up (self, self->slots[moved].heap_pos);
    }
    s_slot_t *s = &self->slots[slot];
    s->heap_pos = S_NONE;
    s->gen++;
    s->next_free = self->free_head;
    self->free_head = slot;
}

static int
s_grow (vw_timers_t *self)
{
    uint32_t n = self->nslots ? self->nslots * 2 : 64;
    if (n <= self->nslots)
        return -1;
    s_slot_t *slots = (s_slot_t *) realloc (self->slots, n * sizeof (s_slot_t));
    if (!slots)
        return -1;
    self->slots = slots;
    uint32_t *heap = (uint32_t *) realloc (self->heap, n * sizeof (uint32_t));
    if (!heap)
        return -1;
    self->heap = heap;
    for (uint32_t i = n; i-- > self->nslots;) {
        slots[i].gen = 1;
        slots[i].heap_pos = S_NONE;
        slots[i].next_free = self->free_head;
        self->free_head = i;
    }
    self->nslots = n;
    return 0;
}

uint64_t
vw_timers_add_at (vw_timers_t *self, int64_t due_ms, vw_timer_fn *fn, void *arg)
{
    assert (fn);
    if (self->free_head == S_NONE && s_grow (self))
        return 0;
    uint32_t slot = self->free_head;
    s_slot_t *s = &self->slots[slot];
    self->free_head = s->next_free;
    s->due = due_ms;
    s->seq = ++self->seq;
    s->fn = fn;
    s->arg = arg;
    self->heap[self->count] = slot;
    s->heap_pos = self->count++;
    s_sift_up (self, s->heap_pos);
    return ((uint64_t) s->gen << 32) | slot;
}

uint64_t
vw_timers_add (vw_timers_t *self, int64_t delay_ms, vw_timer_fn *fn, void *arg)
{
    return vw_timers_add_at (self, vw_clock_mono_ms () + (delay_ms > 0 ? delay_ms : 0), fn, arg);
}

int
vw_timers_cancel (vw_timers_t *self, uint64_t id)
{
    uint32_t slot = (uint32_t) id;
    uint32_t gen = (uint32_t) (id >> 32);
    if (!id || slot >= self->nslots)
        return -1;
    s_slot_t *s = &self->slots[slot];
    if (s->gen != gen || s->heap_pos == S_NONE)
        return -1;
    s_remove_at (self, s->heap_pos);
    return 0;
}

long
vw_timers_timeout (vw_timers_t *self, int64_t now_ms)
{
    if (self->count == 0)
        return -1;
    int64_t wait = self->slots[self->heap[0]].due - now_ms;
    if (wait < 0)
        return 0;
    return wait > (int64_t) 0x7fffffff ? 0x7fffffffL : (long) wait;
}

size_t
vw_timers_run (vw_timers_t *self, int64_t now_ms)
{
    size_t fired = 0;
    while (self->count && self->slots[self->heap[0]].due <= now_ms) {
        uint32_t slot = self->heap[0];
        s_slot_t *s = &self->slots[slot];
        uint64_t id = ((uint64_t) s->gen << 32) | slot;
        vw_timer_fn *fn = s->fn;
        void *arg = s->arg;
        s_remove_at (self, 0);  //  before the call: the callback may re-add
        fn (arg, id);
        fired++;
    }
    return fired;
}

size_t
vw_timers_count (vw_timers_t *self)
{
    return self->count;
}
