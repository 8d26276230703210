/*  vw_cmdqueue - see vw_cmdqueue.h.

    Two levels of binary min-heaps, both keyed by (priority, seq):

    - each agent keeps its pending commands in its own heap, so its head is
      the command it would send next;
    - the queue keeps a "ready" heap of the agents that could send now
      (dispatchable, below the per-agent limit, with something pending),
      keyed by their head.

    The top of the ready heap's top agent is the global answer. Every item
    and agent remembers its heap position, so removing a command from the
    middle (cancel) or moving an agent in or out of the ready heap is
    O(log n). The global limit is a plain counter checked before picking.

    Commands are found by id in a zhashx whose keys point into the items
    themselves; agents likewise. An agent record lives while it is
    dispatchable or holds any command, and is freed otherwise.
*/
#include "vw_cmdqueue.h"

#include <czmq.h>
#include <sodium.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define S_NOWHERE SIZE_MAX  //  heap position of something in no heap

typedef struct s_agent_t s_agent_t;

typedef struct {
    char *command_id;
    s_agent_t *agent;
    int priority;
    int64_t seq;
    void *data;
    vw_cmdqueue_state_t state;
    size_t heap_pos;  //  in agent->heap while pending
} s_item_t;

struct s_agent_t {
    char *agent_id;
    bool dispatchable;
    s_item_t **heap;  //  pending commands, min (priority, seq) first
    size_t heap_size;
    size_t heap_cap;
    size_t inflight;
    size_t parked;
    size_t ready_pos;  //  in self->ready, S_NOWHERE if not there
};

struct vw_cmdqueue_t {
    int global_limit;
    int agent_limit;
    zhashx_t *items;   //  command_id -> s_item_t (owned here)
    zhashx_t *agents;  //  agent_id -> s_agent_t (owned here)
    s_agent_t **ready;
    size_t ready_size;
    size_t ready_cap;
    size_t pending;
    size_t pending_by_priority[VW_CMDQUEUE_PRIORITIES];
    size_t inflight;
    size_t parked;
};

//  --------------------------------------------------------------------------
//  Ordering

static inline bool
s_item_before (const s_item_t *a, const s_item_t *b)
{
    if (a->priority != b->priority)
        return a->priority < b->priority;
    return a->seq < b->seq;
}

//  Ready agents are ordered by their head command; both have one.
static inline bool
s_agent_before (const s_agent_t *a, const s_agent_t *b)
{
    return s_item_before (a->heap[0], b->heap[0]);
}

//  --------------------------------------------------------------------------
//  An agent's heap of pending commands

static inline void
s_item_place (s_agent_t *agent, size_t pos, s_item_t *item)
{
    agent->heap[pos] = item;
    item->heap_pos = pos;
}

static void
s_item_sift_up (s_agent_t *agent, size_t pos)
{
    s_item_t *item = agent->heap[pos];
    while (pos > 0) {
        size_t parent = (pos - 1) / 2;
        if (!s_item_before (item, agent->heap[parent]))
            break;
        s_item_place (agent, pos, agent->heap[parent]);
        pos = parent;
    }
    s_item_place (agent, pos, item);
}

static void
s_item_sift_down (s_agent_t *agent, size_t pos)
{
    s_item_t *item = agent->heap[pos];
    size_t size = agent->heap_size;
    while (true) {
        size_t child = 2 * pos + 1;
        if (child >= size)
            break;
        if (child + 1 < size && s_item_before (agent->heap[child + 1], agent->heap[child]))
            child++;
        if (!s_item_before (agent->heap[child], item))
            break;
        s_item_place (agent, pos, agent->heap[child]);
        pos = child;
    }
    s_item_place (agent, pos, item);
}

static int
s_item_heap_insert (s_agent_t *agent, s_item_t *item)
{
    if (agent->heap_size == agent->heap_cap) {
        size_t cap = agent->heap_cap ? agent->heap_cap * 2 : 4;
        s_item_t **heap = (s_item_t **) realloc (agent->heap, cap * sizeof (s_item_t *));
        if (!heap)
            return -1;
        agent->heap = heap;
        agent->heap_cap = cap;
    }
    agent->heap[agent->heap_size] = item;
    item->heap_pos = agent->heap_size++;
    s_item_sift_up (agent, item->heap_pos);
    return 0;
}

static void
s_item_heap_remove (s_agent_t *agent, s_item_t *item)
{
    size_t pos = item->heap_pos;
    item->heap_pos = S_NOWHERE;
    s_item_t *last = agent->heap[--agent->heap_size];
    if (pos < agent->heap_size) {
        s_item_place (agent, pos, last);
        s_item_sift_up (agent, pos);
        s_item_sift_down (agent, last->heap_pos);
    }
    if (agent->heap_size == 0 && agent->heap_cap > 64) {
        //  Give back a burst's worth of memory once the agent has drained.
        free (agent->heap);
        agent->heap = NULL;
        agent->heap_cap = 0;
    }
}

//  --------------------------------------------------------------------------
//  The ready heap of agents

static inline void
s_agent_place (vw_cmdqueue_t *self, size_t pos, s_agent_t *agent)
{
    self->ready[pos] = agent;
    agent->ready_pos = pos;
}

static void
s_agent_sift_up (vw_cmdqueue_t *self, size_t pos)
{
    s_agent_t *agent = self->ready[pos];
    while (pos > 0) {
        size_t parent = (pos - 1) / 2;
        if (!s_agent_before (agent, self->ready[parent]))
            break;
        s_agent_place (self, pos, self->ready[parent]);
        pos = parent;
    }
    s_agent_place (self, pos, agent);
}

static void
s_agent_sift_down (vw_cmdqueue_t *self, size_t pos)
{
    s_agent_t *agent = self->ready[pos];
    size_t size = self->ready_size;
    while (true) {
        size_t child = 2 * pos + 1;
        if (child >= size)
            break;
        if (child + 1 < size && s_agent_before (self->ready[child + 1], self->ready[child]))
            child++;
        if (!s_agent_before (self->ready[child], agent))
            break;
        s_agent_place (self, pos, self->ready[child]);
        pos = child;
    }
    s_agent_place (self, pos, agent);
}

static void
s_ready_remove (vw_cmdqueue_t *self, s_agent_t *agent)
{
    size_t pos = agent->ready_pos;
    agent->ready_pos = S_NOWHERE;
    s_agent_t *last = self->ready[--self->ready_size];
    if (pos < self->ready_size) {
        s_agent_place (self, pos, last);
        s_agent_sift_up (self, pos);
        s_agent_sift_down (self, last->ready_pos);
    }
}

static bool
s_agent_eligible (vw_cmdqueue_t *self, s_agent_t *agent)
{
    return agent->dispatchable && agent->heap_size > 0 &&
           agent->inflight < (size_t) self->agent_limit;
}

//  Puts the agent where it belongs after any change to its flag, its
//  in-flight count or its head: in the ready heap at the right place, or
//  out of it. The ready array is sized when agents are created, so this
//  never allocates and never fails.
static void
s_agent_update (vw_cmdqueue_t *self, s_agent_t *agent)
{
    bool eligible = s_agent_eligible (self, agent);
    if (agent->ready_pos == S_NOWHERE) {
        if (eligible) {
            size_t pos = self->ready_size++;
            s_agent_place (self, pos, agent);
            s_agent_sift_up (self, pos);
        }
    }
    else if (eligible) {
        s_agent_sift_up (self, agent->ready_pos);
        s_agent_sift_down (self, agent->ready_pos);
    }
    else
        s_ready_remove (self, agent);
}

//  --------------------------------------------------------------------------
//  Agent records

static s_agent_t *
s_agent_lookup (vw_cmdqueue_t *self, const char *agent_id)
{
    if (!agent_id)
        return NULL;
    return (s_agent_t *) zhashx_lookup (self->agents, agent_id);
}

static s_agent_t *
s_agent_require (vw_cmdqueue_t *self, const char *agent_id)
{
    s_agent_t *agent = s_agent_lookup (self, agent_id);
    if (agent)
        return agent;
    //  Every agent may sit in the ready heap: keep room for all of them.
    size_t nagents = zhashx_size (self->agents);
    if (nagents >= self->ready_cap) {
        size_t cap = self->ready_cap ? self->ready_cap * 2 : 64;
        s_agent_t **ready = (s_agent_t **) realloc (self->ready, cap * sizeof (s_agent_t *));
        if (!ready)
            return NULL;
        self->ready = ready;
        self->ready_cap = cap;
    }
    agent = (s_agent_t *) calloc (1, sizeof (s_agent_t));
    if (!agent)
        return NULL;
    agent->agent_id = strdup (agent_id);
    if (!agent->agent_id) {
        free (agent);
        return NULL;
    }
    agent->ready_pos = S_NOWHERE;
    zhashx_insert (self->agents, agent->agent_id, agent);
    return agent;
}

static void
s_agent_free (s_agent_t *agent)
{
    free (agent->heap);
    free (agent->agent_id);
    free (agent);
}

//  Forgets an agent that is offline and holds nothing.
static void
s_agent_collect (vw_cmdqueue_t *self, s_agent_t *agent)
{
    if (agent->dispatchable || agent->heap_size || agent->inflight || agent->parked)
        return;
    if (agent->ready_pos != S_NOWHERE)
        s_ready_remove (self, agent);  //  cannot happen: it is not eligible
    zhashx_delete (self->agents, agent->agent_id);
    s_agent_free (agent);
}

//  --------------------------------------------------------------------------
//  Item state changes; each keeps the counters and the agent in step.

static int
s_make_pending (vw_cmdqueue_t *self, s_item_t *item)
{
    if (s_item_heap_insert (item->agent, item))
        return -1;
    item->state = VW_CMDQUEUE_PENDING;
    self->pending++;
    self->pending_by_priority[item->priority]++;
    return 0;
}

static void
s_leave_pending (vw_cmdqueue_t *self, s_item_t *item)
{
    s_item_heap_remove (item->agent, item);
    self->pending--;
    self->pending_by_priority[item->priority]--;
}

static void
s_leave_inflight (vw_cmdqueue_t *self, s_item_t *item)
{
    item->agent->inflight--;
    self->inflight--;
}

static s_item_t *
s_item_lookup (vw_cmdqueue_t *self, const char *command_id)
{
    if (!self || !command_id)
        return NULL;
    return (s_item_t *) zhashx_lookup (self->items, command_id);
}

static void
s_item_forget (vw_cmdqueue_t *self, s_item_t *item)
{
    zhashx_delete (self->items, item->command_id);
    free (item->command_id);
    free (item);
}

//  --------------------------------------------------------------------------
//  Public API

vw_cmdqueue_t *
vw_cmdqueue_new (int global_limit, int per_agent_limit)
{
    if (global_limit < 1 || per_agent_limit < 1)
        return NULL;
    vw_cmdqueue_t *self = (vw_cmdqueue_t *) calloc (1, sizeof (vw_cmdqueue_t));
    if (!self)
        return NULL;
    self->global_limit = global_limit;
    self->agent_limit = per_agent_limit;
    self->items = zhashx_new ();
    self->agents = zhashx_new ();
    if (!self->items || !self->agents) {
        zhashx_destroy (&self->items);
        zhashx_destroy (&self->agents);
        free (self);
        return NULL;
    }
    //  Keys point at the records' own ids: nothing copied, nothing to free.
    zhashx_set_key_duplicator (self->items, NULL);
    zhashx_set_key_destructor (self->items, NULL);
    zhashx_set_key_duplicator (self->agents, NULL);
    zhashx_set_key_destructor (self->agents, NULL);
    return self;
}

void
vw_cmdqueue_destroy (vw_cmdqueue_t **self_p, void (*free_data) (void *))
{
    if (!self_p || !*self_p)
        return;
    vw_cmdqueue_t *self = *self_p;
    for (s_item_t *item = (s_item_t *) zhashx_first (self->items); item;
         item = (s_item_t *) zhashx_next (self->items)) {
        if (free_data && item->data)
            free_data (item->data);
        free (item->command_id);
        free (item);
    }
    for (s_agent_t *agent = (s_agent_t *) zhashx_first (self->agents); agent;
         agent = (s_agent_t *) zhashx_next (self->agents))
        s_agent_free (agent);
    zhashx_destroy (&self->items);
    zhashx_destroy (&self->agents);
    free (self->ready);
    free (self);
    *self_p = NULL;
}

int
vw_cmdqueue_push (vw_cmdqueue_t *self, const char *command_id, const char *agent_id, int priority,
                  int64_t seq, void *data)
{
    if (!self || !command_id || !*command_id || !agent_id || !*agent_id || priority < 0 ||
        priority >= VW_CMDQUEUE_PRIORITIES)
        return -1;
    if (zhashx_lookup (self->items, command_id))
        return -1;
    s_agent_t *agent = s_agent_require (self, agent_id);
    if (!agent)
        return -1;
    s_item_t *item = (s_item_t *) calloc (1, sizeof (s_item_t));
    if (item)
        item->command_id = strdup (command_id);
    if (!item || !item->command_id) {
        free (item);
        s_agent_collect (self, agent);
        return -1;
    }
    item->agent = agent;
    item->priority = priority;
    item->seq = seq;
    item->data = data;
    item->heap_pos = S_NOWHERE;
    if (s_make_pending (self, item)) {
        free (item->command_id);
        free (item);
        s_agent_collect (self, agent);
        return -1;
    }
    zhashx_insert (self->items, item->command_id, item);
    s_agent_update (self, agent);
    return 0;
}

void *
vw_cmdqueue_remove (vw_cmdqueue_t *self, const char *command_id)
{
    s_item_t *item = s_item_lookup (self, command_id);
    if (!item)
        return NULL;
    s_agent_t *agent = item->agent;
    if (item->state == VW_CMDQUEUE_PENDING)
        s_leave_pending (self, item);
    else if (item->state == VW_CMDQUEUE_PARKED) {
        agent->parked--;
        self->parked--;
    }
    else
        return NULL;
    void *data = item->data;
    s_item_forget (self, item);
    s_agent_update (self, agent);
    s_agent_collect (self, agent);
    return data;
}

void
vw_cmdqueue_set_dispatchable (vw_cmdqueue_t *self, const char *agent_id, bool dispatchable)
{
    if (!self || !agent_id || !*agent_id)
        return;
    s_agent_t *agent =
        dispatchable ? s_agent_require (self, agent_id) : s_agent_lookup (self, agent_id);
    if (!agent)
        return;  //  unknown and going offline: nothing to remember
    agent->dispatchable = dispatchable;
    s_agent_update (self, agent);
    s_agent_collect (self, agent);
}

bool
vw_cmdqueue_dispatchable (vw_cmdqueue_t *self, const char *agent_id)
{
    s_agent_t *agent = self ? s_agent_lookup (self, agent_id) : NULL;
    return agent && agent->dispatchable;
}

const char *
vw_cmdqueue_next (vw_cmdqueue_t *self, void **data_p)
{
    if (data_p)
        *data_p = NULL;
    if (!self || self->ready_size == 0 || self->inflight >= (size_t) self->global_limit)
        return NULL;
    s_agent_t *agent = self->ready[0];
    s_item_t *item = agent->heap[0];
    s_leave_pending (self, item);
    item->state = VW_CMDQUEUE_INFLIGHT;
    agent->inflight++;
    self->inflight++;
    s_agent_update (self, agent);
    if (data_p)
        *data_p = item->data;
    return item->command_id;
}

void *
vw_cmdqueue_done (vw_cmdqueue_t *self, const char *command_id)
{
    s_item_t *item = s_item_lookup (self, command_id);
    if (!item || item->state != VW_CMDQUEUE_INFLIGHT)
        return NULL;
    s_agent_t *agent = item->agent;
    void *data = item->data;
    s_leave_inflight (self, item);
    s_item_forget (self, item);
    s_agent_update (self, agent);
    s_agent_collect (self, agent);
    return data;
}

int
vw_cmdqueue_requeue (vw_cmdqueue_t *self, const char *command_id)
{
    s_item_t *item = s_item_lookup (self, command_id);
    if (!item || item->state != VW_CMDQUEUE_INFLIGHT)
        return -1;
    //  Insert first: if that fails the command simply stays in flight.
    if (s_make_pending (self, item))
        return -1;
    s_leave_inflight (self, item);
    s_agent_update (self, item->agent);
    return 0;
}

int
vw_cmdqueue_park (vw_cmdqueue_t *self, const char *command_id)
{
    s_item_t *item = s_item_lookup (self, command_id);
    if (!item || item->state != VW_CMDQUEUE_INFLIGHT)
        return -1;
    s_leave_inflight (self, item);
    item->state = VW_CMDQUEUE_PARKED;
    item->agent->parked++;
    self->parked++;
    s_agent_update (self, item->agent);
    return 0;
}

int
vw_cmdqueue_unpark (vw_cmdqueue_t *self, const char *command_id)
{
    s_item_t *item = s_item_lookup (self, command_id);
    if (!item || item->state != VW_CMDQUEUE_PARKED)
        return -1;
    if (s_make_pending (self, item))
        return -1;
    item->agent->parked--;
    self->parked--;
    s_agent_update (self, item->agent);
    return 0;
}

vw_cmdqueue_state_t
vw_cmdqueue_state (vw_cmdqueue_t *self, const char *command_id)
{
    s_item_t *item = s_item_lookup (self, command_id);
    return item ? item->state : VW_CMDQUEUE_ABSENT;
}

void *
vw_cmdqueue_lookup (vw_cmdqueue_t *self, const char *command_id)
{
    s_item_t *item = s_item_lookup (self, command_id);
    return item ? item->data : NULL;
}

size_t
vw_cmdqueue_pending (vw_cmdqueue_t *self)
{
    return self ? self->pending : 0;
}

size_t
vw_cmdqueue_pending_priority (vw_cmdqueue_t *self, int priority)
{
    if (!self || priority < 0 || priority >= VW_CMDQUEUE_PRIORITIES)
        return 0;
    return self->pending_by_priority[priority];
}

size_t
vw_cmdqueue_inflight (vw_cmdqueue_t *self)
{
    return self ? self->inflight : 0;
}

size_t
vw_cmdqueue_parked (vw_cmdqueue_t *self)
{
    return self ? self->parked : 0;
}

size_t
vw_cmdqueue_size (vw_cmdqueue_t *self)
{
    return self ? zhashx_size (self->items) : 0;
}

size_t
vw_cmdqueue_agents (vw_cmdqueue_t *self)
{
    return self ? zhashx_size (self->agents) : 0;
}

size_t
vw_cmdqueue_agent_pending (vw_cmdqueue_t *self, const char *agent_id)
{
    s_agent_t *agent = self ? s_agent_lookup (self, agent_id) : NULL;
    return agent ? agent->heap_size : 0;
}

size_t
vw_cmdqueue_agent_inflight (vw_cmdqueue_t *self, const char *agent_id)
{
    s_agent_t *agent = self ? s_agent_lookup (self, agent_id) : NULL;
    return agent ? agent->inflight : 0;
}

size_t
vw_cmdqueue_agent_parked (vw_cmdqueue_t *self, const char *agent_id)
{
    s_agent_t *agent = self ? s_agent_lookup (self, agent_id) : NULL;
    return agent ? agent->parked : 0;
}

int
vw_cmdqueue_global_limit (vw_cmdqueue_t *self)
{
    return self ? self->global_limit : 0;
}

int
vw_cmdqueue_agent_limit (vw_cmdqueue_t *self)
{
    return self ? self->agent_limit : 0;
}

//  --------------------------------------------------------------------------
//  Retry backoff

int64_t
vw_cmdqueue_backoff_ms (int attempt, double jitter)
{
    if (attempt < 1)
        attempt = 1;
    if (isnan (jitter))
        jitter = 0.0;
    else if (jitter < -1.0)
        jitter = -1.0;
    else if (jitter > 1.0)
        jitter = 1.0;
    //  2^6 s = 64 s is already past the cap.
    int64_t base = attempt > 6 ? VW_CMDQUEUE_BACKOFF_CAP_MS : (int64_t) 1000 << (attempt - 1);
    if (base > VW_CMDQUEUE_BACKOFF_CAP_MS)
        base = VW_CMDQUEUE_BACKOFF_CAP_MS;
    return base + (int64_t) llround ((double) base * 0.2 * jitter);
}

double
vw_cmdqueue_jitter (void)
{
    if (sodium_init () < 0)
        return 0.0;
    //  2^31 + 1 evenly spaced values from -1 to 1 inclusive.
    uint32_t draw = randombytes_uniform (UINT32_C (0x80000001));
    return (double) draw / (double) UINT32_C (0x40000000) - 1.0;
}
