/*  vw_ratelimit - token-bucket rate limits keyed by a string (SPEC §6).

    The edge keeps one vw_ratelimit_t per limit (per bearer token, per
    source address, agent hellos per source address) and asks it once per
    request whether the request may pass; a refusal comes with the delay to
    put in the 429's Retry-After.

    Each key has a bucket of `burst` tokens that refills continuously at
    `rate` tokens per second; a new key starts full. Tokens are counted in
    fixed point (10^-9 token) against integer milliseconds, so sustained
    rates are exact and a retry_after that was waited always succeeds.
    Time is whatever monotonic clock the caller passes (vw_clock_mono_ms);
    a now_ms older than a bucket's last update neither adds nor removes
    tokens.

    Memory is bounded by max_keys: at most max_keys buckets (56 bytes plus
    the key rounded up to 16, about 80 bytes with allocator overhead for an
    IPv4 address) and a hash table of at most the next power of two above
    max_keys pointers. Callers bound the key length (hash long tokens).

    When full, a new key evicts the least recently used bucket, preferring
    one that has refilled completely among the few least recently used (a
    full bucket carries no information; the tail, idle longest, almost
    always is full). Evicting a bucket that was not full hands its key a
    fresh burst when it returns, so size max_keys well above the number of
    keys that can be active within one refill period (burst / rate
    seconds). Keys are hashed with a per-limiter seeded SipHash, so an
    attacker choosing keys cannot aim them all at one hash chain.

    Not thread-safe: the edge thread owns its limiters.
*/
#ifndef VW_RATELIMIT_H
#define VW_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct vw_ratelimit_t vw_ratelimit_t;

//  rate: tokens added per second (> 0, resolution 10^-6, at most 10^12);
//  burst: bucket capacity (>= 1, at most 10^9); max_keys: most buckets kept
//  (>= 1). Returns NULL on bad arguments or allocation failure.
vw_ratelimit_t *vw_ratelimit_new (double rate, double burst, size_t max_keys);

//  Frees the limiter and NULLs *self_p; safe on NULL and twice.
void vw_ratelimit_destroy (vw_ratelimit_t **self_p);

//  Takes `cost` tokens (usually 1) from key's bucket at monotonic time
//  now_ms; the key is copied. Returns true if allowed. A refusal takes
//  nothing; *retry_after_ms (may be NULL) is then how long until `cost`
//  tokens are available, >= 1, exact: taking again at now_ms +
//  *retry_after_ms succeeds if nothing else took from the bucket.
//  A cost above burst is never allowed; *retry_after_ms is then the time
//  until the bucket is full (>= 1), since no wait can help. A cost of 0 is
//  always allowed. Refused without touching any bucket, with 1000 ms: NULL
//  self or key, a cost that is not a finite number >= 0, or no memory for a
//  new bucket. Any take, allowed or not, marks the key recently used.
bool vw_ratelimit_take (vw_ratelimit_t *self, const char *key, double cost, int64_t now_ms,
                        int64_t *retry_after_ms);

//  Number of buckets held (<= max_keys).
size_t vw_ratelimit_size (vw_ratelimit_t *self);

#endif
