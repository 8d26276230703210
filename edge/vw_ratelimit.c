/*  vw_ratelimit - see vw_ratelimit.h.

    Buckets live in a chained hash table (power-of-two slots, grown by
    doubling up to max_keys, so the load factor stays <= 1) and on a doubly
    linked LRU list, head most recent. A take is one keyed SipHash of the key, one
    chain walk, a move to the list head and integer arithmetic. Once
    max_keys buckets exist, the evicted bucket's memory is reused for the
    new key when the key fits, so a flood of new keys costs no allocation.

    Tokens are int64 counts of 10^-9 token; a millisecond adds `per_ms` of
    them (rate * 10^6, rounded). Elapsed time is capped at the time to fill
    an empty bucket before multiplying, so nothing overflows whatever the
    clock says. */
#include "vw_ratelimit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#define S_UNITS_PER_TOKEN 1e9
#define S_RATE_MAX        1e12  //  tokens/s: per_ms stays <= 10^18
#define S_BURST_MAX       1e9   //  tokens: burst_units stays <= 10^18
#define S_SLOTS_MIN       16
#define S_SLOTS_MAX       (1u << 30)
#define S_EVICT_SCAN      4     //  LRU entries examined for a full bucket
#define S_REFUSED_MS      1000  //  retry_after for refusals with no bucket

typedef struct s_bucket_t s_bucket_t;
struct s_bucket_t {
    s_bucket_t *chain;  //  next in the same hash slot
    s_bucket_t *prev;   //  LRU: towards the most recently used
    s_bucket_t *next;   //  LRU: towards the least recently used
    uint64_t hash;
    int64_t tokens;   //  in 10^-9 token, 0 .. burst_units
    int64_t last_ms;  //  latest now_ms seen; never moves back
    uint32_t key_len;
    uint32_t key_cap;  //  bytes available in key[], NUL included
    char key[];
};

struct vw_ratelimit_t {
    int64_t per_ms;       //  units added per millisecond, >= 1
    int64_t burst_units;  //  bucket capacity in units
    int64_t fill_ms;      //  ms to fill an empty bucket, >= 1
    double burst;
    size_t max_keys;
    size_t count;
    s_bucket_t **slots;
    size_t nslots;  //  power of two
    size_t max_slots;
    s_bucket_t *head;  //  most recently used
    s_bucket_t *tail;  //  least recently used
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
};

//  --------------------------------------------------------------------------
//  Keys come from clients, and an unkeyed hash would let them build one long
//  chain: hash with libsodium's keyed SipHash-2-4 (crypto_shorthash) and a
//  random key per limiter.

static void
s_seed (vw_ratelimit_t *self)
{
    randombytes_buf (self->hash_key, sizeof self->hash_key);
}

static uint64_t
s_hash (vw_ratelimit_t *self, const char *key, size_t key_len)
{
    unsigned char out[crypto_shorthash_BYTES];
    crypto_shorthash (out, (const unsigned char *) key, key_len, self->hash_key);
    uint64_t hash;
    memcpy (&hash, out, sizeof hash);
    return hash;
}

//  --------------------------------------------------------------------------
//  LRU list

static void
s_lru_unlink (vw_ratelimit_t *self, s_bucket_t *b)
{
    if (b->prev)
        b->prev->next = b->next;
    else
        self->head = b->next;
    if (b->next)
        b->next->prev = b->prev;
    else
        self->tail = b->prev;
    b->prev = b->next = NULL;
}

static void
s_lru_push_head (vw_ratelimit_t *self, s_bucket_t *b)
{
    b->prev = NULL;
    b->next = self->head;
    if (self->head)
        self->head->prev = b;
    else
        self->tail = b;
    self->head = b;
}

//  --------------------------------------------------------------------------
//  Hash table

static s_bucket_t *
s_lookup (vw_ratelimit_t *self, const char *key, uint32_t key_len, uint64_t hash)
{
    s_bucket_t *b = self->slots[hash & (self->nslots - 1)];
    for (; b; b = b->chain)
        if (b->hash == hash && b->key_len == key_len && memcmp (b->key, key, key_len) == 0)
            return b;
    return NULL;
}

static void
s_chain_unlink (vw_ratelimit_t *self, s_bucket_t *b)
{
    s_bucket_t **link = &self->slots[b->hash & (self->nslots - 1)];
    while (*link && *link != b)
        link = &(*link)->chain;
    if (*link)
        *link = b->chain;
    b->chain = NULL;
}

//  Doubles the table; on allocation failure keeps the old one (chains just
//  get longer), so growth never fails a take.
static void
s_grow (vw_ratelimit_t *self)
{
    size_t nslots = self->nslots * 2;
    s_bucket_t **slots = (s_bucket_t **) calloc (nslots, sizeof (s_bucket_t *));
    if (!slots)
        return;
    for (size_t i = 0; i < self->nslots; i++) {
        s_bucket_t *b = self->slots[i];
        while (b) {
            s_bucket_t *chain = b->chain;
            size_t slot = b->hash & (nslots - 1);
            b->chain = slots[slot];
            slots[slot] = b;
            b = chain;
        }
    }
    free (self->slots);
    self->slots = slots;
    self->nslots = nslots;
}

//  --------------------------------------------------------------------------
//  Buckets

//  Brings the bucket to now_ms. An older now_ms changes nothing: last_ms
//  keeps the latest time, so time already credited is never credited twice.
static void
s_refill (vw_ratelimit_t *self, s_bucket_t *b, int64_t now_ms)
{
    if (now_ms <= b->last_ms)
        return;
    uint64_t elapsed = (uint64_t) now_ms - (uint64_t) b->last_ms;
    b->last_ms = now_ms;
    if (b->tokens >= self->burst_units)
        return;
    if (elapsed >= (uint64_t) self->fill_ms)
        b->tokens = self->burst_units;
    else {
        //  elapsed < fill_ms, so the product is below burst_units: no overflow.
        b->tokens += (int64_t) elapsed * self->per_ms;
        if (b->tokens > self->burst_units)
            b->tokens = self->burst_units;
    }
}

static bool
s_is_full (vw_ratelimit_t *self, s_bucket_t *b, int64_t now_ms)
{
    if (b->tokens >= self->burst_units)
        return true;
    if (now_ms <= b->last_ms)
        return false;
    uint64_t elapsed = (uint64_t) now_ms - (uint64_t) b->last_ms;
    return elapsed >= (uint64_t) self->fill_ms ||
           b->tokens + (int64_t) elapsed * self->per_ms >= self->burst_units;
}

//  The bucket to evict: the least recently used one that has refilled,
//  among the S_EVICT_SCAN least recently used, else the least recently used.
//  The tail has been idle longest, so it is almost always full already.
static s_bucket_t *
s_victim (vw_ratelimit_t *self, int64_t now_ms)
{
    s_bucket_t *b = self->tail;
    for (int i = 0; b && i < S_EVICT_SCAN; i++, b = b->prev)
        if (s_is_full (self, b, now_ms))
            return b;
    return self->tail;
}

//  A new full bucket for key at the LRU head; NULL if out of memory.
static s_bucket_t *
s_insert (vw_ratelimit_t *self, const char *key, uint32_t key_len, uint64_t hash, int64_t now_ms)
{
    s_bucket_t *b = NULL;
    if (self->count >= self->max_keys && self->tail) {
        b = s_victim (self, now_ms);
        s_lru_unlink (self, b);
        s_chain_unlink (self, b);
        self->count--;
        if (b->key_cap <= key_len) {
            free (b);
            b = NULL;
        }
    }
    if (!b) {
        //  Room for the NUL, rounded up so reuse usually fits the next key.
        uint32_t key_cap = (key_len + 1 + 15) & ~15u;
        b = (s_bucket_t *) malloc (sizeof (s_bucket_t) + key_cap);
        if (!b)
            return NULL;
        b->key_cap = key_cap;
    }
    memcpy (b->key, key, key_len);
    b->key[key_len] = '\0';
    b->key_len = key_len;
    b->hash = hash;
    b->tokens = self->burst_units;
    b->last_ms = now_ms;
    size_t slot = hash & (self->nslots - 1);
    b->chain = self->slots[slot];
    self->slots[slot] = b;
    s_lru_push_head (self, b);
    self->count++;
    if (self->count > self->nslots && self->nslots < self->max_slots)
        s_grow (self);
    return b;
}

//  ceil (units / per_ms) + lag_ms, at least 1, saturating.
static int64_t
s_wait_ms (vw_ratelimit_t *self, int64_t units, uint64_t lag_ms)
{
    uint64_t wait = (uint64_t) ((units + self->per_ms - 1) / self->per_ms);
    wait = lag_ms > (uint64_t) INT64_MAX - wait ? (uint64_t) INT64_MAX : wait + lag_ms;
    return wait < 1 ? 1 : (int64_t) wait;
}

static bool
s_refuse (int64_t *retry_after_ms, int64_t ms)
{
    if (retry_after_ms)
        *retry_after_ms = ms;
    return false;
}

//  --------------------------------------------------------------------------

vw_ratelimit_t *
vw_ratelimit_new (double rate, double burst, size_t max_keys)
{
    if (!(rate > 0) || !(rate <= S_RATE_MAX) || !(burst >= 1) || !(burst <= S_BURST_MAX) ||
        max_keys < 1)
        return NULL;  //  the negated comparisons also refuse NaN
    int64_t per_ms = llround (rate * (S_UNITS_PER_TOKEN / 1000));
    if (per_ms < 1)
        return NULL;  //  below the 10^-6 tokens/s resolution

    vw_ratelimit_t *self = (vw_ratelimit_t *) calloc (1, sizeof (vw_ratelimit_t));
    if (!self)
        return NULL;
    self->per_ms = per_ms;
    self->burst_units = llround (burst * S_UNITS_PER_TOKEN);
    self->fill_ms = (self->burst_units + per_ms - 1) / per_ms;
    self->burst = burst;
    self->max_keys = max_keys;
    self->max_slots = S_SLOTS_MIN;
    while (self->max_slots < max_keys && self->max_slots < S_SLOTS_MAX)
        self->max_slots *= 2;
    self->nslots = S_SLOTS_MIN;
    self->slots = (s_bucket_t **) calloc (self->nslots, sizeof (s_bucket_t *));
    if (!self->slots) {
        free (self);
        return NULL;
    }
    s_seed (self);
    return self;
}

void
vw_ratelimit_destroy (vw_ratelimit_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vw_ratelimit_t *self = *self_p;
    s_bucket_t *b = self->head;
    while (b) {
        s_bucket_t *next = b->next;
        free (b);
        b = next;
    }
    free (self->slots);
    free (self);
    *self_p = NULL;
}

bool
vw_ratelimit_take (vw_ratelimit_t *self, const char *key, double cost, int64_t now_ms,
                   int64_t *retry_after_ms)
{
    if (!self || !key || !(cost >= 0) || !isfinite (cost))
        return s_refuse (retry_after_ms, S_REFUSED_MS);  //  !(>=) catches NaN
    size_t len = strlen (key);
    if (len >= UINT32_MAX - 16)
        return s_refuse (retry_after_ms, S_REFUSED_MS);

    uint32_t key_len = (uint32_t) len;
    uint64_t hash = s_hash (self, key, key_len);
    s_bucket_t *b = s_lookup (self, key, key_len, hash);
    if (b) {
        if (b != self->head) {
            s_lru_unlink (self, b);
            s_lru_push_head (self, b);
        }
        s_refill (self, b, now_ms);
    }
    else {
        b = s_insert (self, key, key_len, hash, now_ms);
        if (!b)
            return s_refuse (retry_after_ms, S_REFUSED_MS);
    }
    int64_t cost_units = cost <= self->burst ? llround (cost * S_UNITS_PER_TOKEN) : INT64_MAX;
    if (cost_units <= self->burst_units && b->tokens >= cost_units) {
        b->tokens -= cost_units;
        return true;
    }
    if (retry_after_ms) {
        //  A cost above burst is never satisfiable: report when the bucket
        //  is full, since waiting longer cannot help and a huge value would
        //  only look like a ban. A caller whose now_ms is behind the bucket
        //  also waits for that lag.
        int64_t need = cost_units < self->burst_units ? cost_units : self->burst_units;
        uint64_t lag = now_ms < b->last_ms ? (uint64_t) b->last_ms - (uint64_t) now_ms : 0;
        *retry_after_ms = s_wait_ms (self, need - b->tokens, lag);
    }
    return false;
}

size_t
vw_ratelimit_size (vw_ratelimit_t *self)
{
    return self ? self->count : 0;
}
