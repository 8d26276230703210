/*  vw_jwt - JSON Web Tokens (RFC 7519) for the REST API, HS256 only.

    Tokens are HMAC-SHA256 (libsodium) over "header.payload", base64url
    without padding, with the claims of SPEC §6: sub, role (admin, operator
    or viewer), exp (required), iat, optional nbf and jti, and our optional
    "gen" (a non-negative integer: the user's token generation). Any alg other than
    exactly "HS256" is refused before the signature is looked at ("none"
    above all), and no token whose signature fails is ever accepted.

    Stateless and thread-safe. vw_jwt_sign returns a new string the caller
    frees with free (); vw_jwt_status_text and vw_jwt_status_name return
    static strings. Times are seconds since the Unix epoch (NumericDate).
*/
#ifndef VW_JWT_H
#define VW_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Longest token vw_jwt_verify looks at; longer ones are malformed.
#define VW_JWT_MAX_TOKEN 8192

typedef enum {
    VW_JWT_OK = 0,
    VW_JWT_MALFORMED,
    VW_JWT_BAD_ALG,
    VW_JWT_BAD_SIGNATURE,
    VW_JWT_EXPIRED,
    VW_JWT_NOT_YET_VALID,
    VW_JWT_MISSING_EXP,
    VW_JWT_BAD_CLAIMS
} vw_jwt_status_t;

typedef struct {
    char sub[128];  //  non-empty, at most 127 bytes, UTF-8
    char role[16];  //  "admin", "operator" or "viewer"
    int64_t exp;
    int64_t iat;  //  valid when has_iat
    int64_t nbf;  //  valid when has_nbf
    bool has_iat;
    bool has_nbf;
    char jti[80];  //  empty when the token has none
    int64_t gen;   //  the user's token generation ("gen"); 0 when absent
    bool has_gen;
} vw_jwt_claims_t;

//  Returns a new token (caller frees) signed with key, or NULL when an
//  argument is invalid (sub empty or over 127 bytes or not UTF-8, role not
//  one of the three, jti over 79 bytes or not UTF-8, key NULL with keylen
//  > 0). The payload is {"sub","role","iat","exp","jti"} in that order; the
//  bytes are what PyJWT produces for the same claims. jti may be NULL: one
//  is generated (128 random bits, base64url). Keys of any length are valid.
char *vw_jwt_sign (const uint8_t *key, size_t keylen, const char *sub, const char *role,
                   int64_t iat_s, int64_t exp_s, const char *jti);

//  The same, with the user's token generation as a last claim "gen" when
//  gen >= 0: {"sub","role","iat","exp","jti","gen"}, again as PyJWT writes
//  that dict. The API's tokens carry it; the edge refuses a token whose
//  generation is not its user's current one (see edge/vw_tokens.h).
char *vw_jwt_sign_gen (const uint8_t *key, size_t keylen, const char *sub, const char *role,
                       int64_t iat_s, int64_t exp_s, const char *jti, int64_t gen);

//  Verifies token at time now_s, allowing skew_s seconds of clock skew for
//  exp, nbf and iat (a negative skew counts as 0). Fills *claims (if not
//  NULL) only when it returns VW_JWT_OK. Expired when now_s >= exp + skew_s;
//  not yet valid when nbf or iat > now_s + skew_s. Never crashes, whatever
//  the input.
vw_jwt_status_t vw_jwt_verify (const uint8_t *key, size_t keylen, const char *token, int64_t now_s,
                               int64_t skew_s, vw_jwt_claims_t *claims);

//  A short human sentence for 401 messages ("token has expired").
const char *vw_jwt_status_text (vw_jwt_status_t status);

//  A snake_case name for logs and metrics ("expired").
const char *vw_jwt_status_name (vw_jwt_status_t status);

#endif
