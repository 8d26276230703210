/*  vw_token - see vw_token.h. */
#include "vw_token.h"
#include "vw_clock.h"

#include <sodium.h>
#include <string.h>

void
vw_token_new (char out[VW_TOKEN_TEXT_LEN + 1], uint8_t hash[VW_TOKEN_HASH_BYTES])
{
    uint8_t raw[32];
    randombytes_buf (raw, sizeof raw);
    sodium_bin2base64 (out, VW_TOKEN_TEXT_LEN + 1, raw, sizeof raw,
                       sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero (raw, sizeof raw);
    vw_token_hash (out, hash);
}

void
vw_token_hash (const char *token, uint8_t hash[VW_TOKEN_HASH_BYTES])
{
    crypto_generichash (hash, VW_TOKEN_HASH_BYTES, (const unsigned char *) token,
                        token ? strlen (token) : 0, NULL, 0);
}

bool
vw_token_verify (const char *token, const uint8_t hash[VW_TOKEN_HASH_BYTES])
{
    if (!token || !hash)
        return false;
    uint8_t digest[VW_TOKEN_HASH_BYTES];
    vw_token_hash (token, digest);
    return sodium_memcmp (digest, hash, VW_TOKEN_HASH_BYTES) == 0;
}

void
vw_id_new (char out[VW_ID_TEXT_LEN + 1])
{
    //  Time-ordered, like a UUIDv7: 48 bits of wall-clock milliseconds,
    //  then 80 random bits. New rows land at the end of the id indexes
    //  instead of on a random page each (fewer pages per commit), and ids
    //  sort by creation.
    uint8_t raw[16];
    uint64_t ms = (uint64_t) vw_clock_wall_ms ();
    for (int i = 0; i < 6; i++)
        raw[i] = (uint8_t) (ms >> (40 - 8 * i));
    randombytes_buf (raw + 6, sizeof raw - 6);
    sodium_bin2hex (out, VW_ID_TEXT_LEN + 1, raw, sizeof raw);
}

int64_t
vw_token_gen_new (int64_t old)
{
    int64_t gen;
    do {
        uint64_t r;
        randombytes_buf (&r, sizeof r);
        gen = (int64_t) (r & ((UINT64_C (1) << 53) - 1));
    } while (gen == 0 || gen == old);
    return gen;
}
