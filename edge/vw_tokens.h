/*  vw_tokens - the api edge's copy of who may hold a token (issue 8).

    The auth actor owns users. It pushes a token_table to every api edge
    that asked for it (token_sync): each live user's token generation, role
    and disabled flag, and the jtis logged out before their exp. The edge
    verifies a JWT's signature and times itself (vw_jwt) and then asks this
    cache, without a hop: a token is refused when its sub is not a live
    user, the user is disabled, its "gen" is not the user's current
    generation (a password or role change, disabling or deletion draws a
    new one), its jti was logged out, or its role is above the user's.
    Until the first full table has arrived the answer is "not ready" and
    the edge says 503.

    Not thread-safe: one per edge thread.
*/
#ifndef VW_TOKENS_H
#define VW_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vw_jwt.h"

typedef struct vw_tokens_t vw_tokens_t;

typedef enum {
    VW_TOKENS_OK = 0,
    VW_TOKENS_NOT_READY,   //  no full table yet: 503
    VW_TOKENS_NO_USER,     //  sub is not a live user
    VW_TOKENS_DISABLED,    //  the user is disabled
    VW_TOKENS_STALE,       //  gen is not the user's current generation
    VW_TOKENS_LOGGED_OUT,  //  jti on the deny-list
    VW_TOKENS_ROLE         //  role above the user's
} vw_tokens_verdict_t;

vw_tokens_t *vw_tokens_new (void);
void vw_tokens_destroy (vw_tokens_t **self_p);

//  Applies a token_table message's fields: users is a JSON object name ->
//  [gen, role, disabled] or null (deleted), denied a JSON object jti -> exp
//  (seconds); either may be NULL. full replaces everything (and makes the
//  cache ready), else the entries are merged. Entries with bad shapes are
//  skipped. Denied entries with exp <= now_s are dropped. Returns -1 (and
//  changes nothing) when a string is not a JSON object.
int vw_tokens_apply (vw_tokens_t *self, bool full, const char *users, const char *denied,
                     int64_t now_s);

bool vw_tokens_ready (vw_tokens_t *self);

//  Whether verified claims may be used now (see above).
vw_tokens_verdict_t vw_tokens_check (vw_tokens_t *self, const vw_jwt_claims_t *claims);

//  A short sentence for 401 messages.
const char *vw_tokens_verdict_text (vw_tokens_verdict_t verdict);

size_t vw_tokens_user_count (vw_tokens_t *self);
size_t vw_tokens_denied_count (vw_tokens_t *self);

#endif
