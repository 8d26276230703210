/*  vw_token - agent credentials and random identifiers, on libsodium.

    An agent token is 256 random bits, shown once as 43 base64url
    characters; only its BLAKE2b-256 digest is stored. The tokens carry far
    more entropy than any password, so a fast unsalted digest is enough: an
    attacker holding the database still has to guess 2^256 values. Checks
    compare digests in constant time.
*/
#ifndef VW_TOKEN_H
#define VW_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VW_TOKEN_HASH_BYTES 32
//  Text length of a token (without NUL) and of a 128-bit identifier.
#define VW_TOKEN_TEXT_LEN 43
#define VW_ID_TEXT_LEN    32

//  A new agent token (43 base64url characters + NUL) into out, and its digest.
void vw_token_new (char out[VW_TOKEN_TEXT_LEN + 1], uint8_t hash[VW_TOKEN_HASH_BYTES]);

//  Digest of a token as presented by an agent.
void vw_token_hash (const char *token, uint8_t hash[VW_TOKEN_HASH_BYTES]);

//  True when token's digest equals hash (constant time in the digest).
bool vw_token_verify (const char *token, const uint8_t hash[VW_TOKEN_HASH_BYTES]);

//  A session or command id: 32 lowercase hex characters + NUL, time-ordered
//  like a UUIDv7 (48 bits of wall-clock ms, then 80 random bits).
void vw_id_new (char out[VW_ID_TEXT_LEN + 1]);

//  A user's new token generation (the JWT "gen" claim): random, 53 bits
//  (exact in any JSON reader), never 0 (what users had before
//  generations) nor `old`.
int64_t vw_token_gen_new (int64_t old);

#endif
