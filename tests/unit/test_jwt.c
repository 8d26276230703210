/*  test_jwt - JSON Web Tokens, HS256 (edge/vw_jwt).

    Tokens under test are built here independently of vw_jwt_sign: the
    helpers base64url-encode literal header and payload JSON and sign it
    with libsodium's HMAC-SHA256 directly, so every claim rule is checked
    behind a valid signature. The known vectors were minted offline with
    PyJWT 2.6.0 (Debian python3-jwt), e.g.
        jwt.encode ({"sub": "alice", "role": "operator", "iat": 1700000000,
                     "exp": 1700003600, "jti": "vector-1"}, "secret",
                    algorithm="HS256")
    and must come out of vw_jwt_sign byte for byte. The last case runs
    20,000 random mutations of a valid token (fixed seed).
*/
#include "vw_jwt.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_KEY          ((const uint8_t *) "secret")
#define S_KEYLEN       6
#define S_NOW          INT64_C (1700001000)
#define S_IAT          INT64_C (1700000000)
#define S_EXP          INT64_C (1700003600)
#define S_HS256_HEADER "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define S_CLAIMS       "\"sub\":\"alice\",\"role\":\"operator\",\"iat\":1700000000"
#define S_PAYLOAD      "{" S_CLAIMS ",\"exp\":1700003600}"
#define S_B64          sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define S_ALPHABET     "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

//  --------------------------------------------------------------------------
//  Independent token construction

static char *
s_b64 (const void *data, size_t len)
{
    size_t size = sodium_base64_ENCODED_LEN (len, S_B64);
    char *text = (char *) malloc (size);
    assert_non_null (text);
    sodium_bin2base64 (text, size, (const unsigned char *) data, len, S_B64);
    return text;
}

static char *
s_mac_b64 (const uint8_t *key, size_t keylen, const char *data, size_t len)
{
    uint8_t mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state state;
    crypto_auth_hmacsha256_init (&state, key, keylen);
    crypto_auth_hmacsha256_update (&state, (const unsigned char *) data, len);
    crypto_auth_hmacsha256_final (&state, mac);
    return s_b64 (mac, sizeof mac);
}

//  "b64(header).b64(payload)", not signed.
static char *
s_unsigned (const char *header, const char *payload)
{
    char *h = s_b64 (header, strlen (header));
    char *p = s_b64 (payload, strlen (payload));
    size_t size = strlen (h) + strlen (p) + 2;
    char *text = (char *) malloc (size);
    assert_non_null (text);
    snprintf (text, size, "%s.%s", h, p);
    free (h);
    free (p);
    return text;
}

//  "b64(header).b64(payload).sig" with sig given literally.
static char *
s_token_with_sig (const char *header, const char *payload, const char *sig)
{
    char *body = s_unsigned (header, payload);
    size_t size = strlen (body) + strlen (sig) + 2;
    char *token = (char *) malloc (size);
    assert_non_null (token);
    snprintf (token, size, "%s.%s", body, sig);
    free (body);
    return token;
}

//  A correctly signed token for any header and payload text.
static char *
s_token_key (const uint8_t *key, size_t keylen, const char *header, const char *payload)
{
    char *body = s_unsigned (header, payload);
    char *sig = s_mac_b64 (key, keylen, body, strlen (body));
    size_t size = strlen (body) + strlen (sig) + 2;
    char *token = (char *) malloc (size);
    assert_non_null (token);
    snprintf (token, size, "%s.%s", body, sig);
    free (body);
    free (sig);
    return token;
}

static char *
s_token (const char *header, const char *payload)
{
    return s_token_key (S_KEY, S_KEYLEN, header, payload);
}

static vw_jwt_status_t
s_verify (const char *token)
{
    return vw_jwt_verify (S_KEY, S_KEYLEN, token, S_NOW, 0, NULL);
}

//  Signs header+payload correctly and expects status at S_NOW, skew 0.
static void
s_expect (const char *header, const char *payload, vw_jwt_status_t expected)
{
    char *token = s_token (header, payload);
    vw_jwt_status_t status = s_verify (token);
    if (status != expected)
        fprintf (stderr, "header %s payload %s: got %s, expected %s\n", header, payload,
                 vw_jwt_status_name (status), vw_jwt_status_name (expected));
    assert_int_equal (status, expected);
    free (token);
}

static void
s_expect_payload (const char *payload, vw_jwt_status_t expected)
{
    s_expect (S_HS256_HEADER, payload, expected);
}

//  --------------------------------------------------------------------------
//  Round trip and known vectors

static void
test_round_trip (void **state)
{
    char *token = vw_jwt_sign (S_KEY, S_KEYLEN, "alice", "operator", S_IAT, S_EXP, NULL);
    assert_non_null (token);
    vw_jwt_claims_t claims;
    memset (&claims, 0xA5, sizeof claims);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_NOW, 0, &claims), VW_JWT_OK);
    assert_string_equal (claims.sub, "alice");
    assert_string_equal (claims.role, "operator");
    assert_true (claims.exp == S_EXP);
    assert_true (claims.has_iat);
    assert_true (claims.iat == S_IAT);
    assert_false (claims.has_nbf);
    //  A generated jti: 128 random bits in base64url, 22 characters.
    assert_int_equal (strlen (claims.jti), 22);
    assert_int_equal (strspn (claims.jti, S_ALPHABET), 22);

    char *again = vw_jwt_sign (S_KEY, S_KEYLEN, "alice", "operator", S_IAT, S_EXP, NULL);
    assert_non_null (again);
    assert_string_not_equal (token, again);  //  fresh jti each time
    vw_jwt_claims_t claims2;
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, again, S_NOW, 0, &claims2), VW_JWT_OK);
    assert_string_not_equal (claims.jti, claims2.jti);
    free (again);
    free (token);

    token = vw_jwt_sign (S_KEY, S_KEYLEN, "bob", "admin", S_IAT, S_EXP, "my-jti");
    assert_non_null (token);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_NOW, 0, &claims), VW_JWT_OK);
    assert_string_equal (claims.sub, "bob");
    assert_string_equal (claims.role, "admin");
    assert_string_equal (claims.jti, "my-jti");
    free (token);

    token = vw_jwt_sign (S_KEY, S_KEYLEN, "carol", "viewer", S_IAT, S_EXP, "");
    assert_non_null (token);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_NOW, 0, &claims), VW_JWT_OK);
    assert_string_equal (claims.role, "viewer");
    assert_string_equal (claims.jti, "");
    free (token);
}

//  Keys of every length work (HMAC hashes keys longer than its 64-byte
//  block), including the empty key, and no two keys are interchangeable.
static void
test_key_lengths (void **state)
{
    uint8_t keys[2][200];
    for (size_t i = 0; i < sizeof keys[0]; i++) {
        keys[0][i] = (uint8_t) (i * 7 + 1);
        keys[1][i] = (uint8_t) (i * 7 + 1);
    }
    keys[1][0] ^= 1;
    const size_t lengths[] = {0, 1, 31, 32, 63, 64, 65, 128, 200};
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        size_t len = lengths[i];
        char *token = vw_jwt_sign (keys[0], len, "alice", "viewer", S_IAT, S_EXP, "k");
        assert_non_null (token);
        assert_int_equal (vw_jwt_verify (keys[0], len, token, S_NOW, 0, NULL), VW_JWT_OK);
        if (len > 0) {
            assert_int_equal (vw_jwt_verify (keys[1], len, token, S_NOW, 0, NULL),
                              VW_JWT_BAD_SIGNATURE);
            assert_int_equal (vw_jwt_verify (keys[0], len - 1, token, S_NOW, 0, NULL),
                              VW_JWT_BAD_SIGNATURE);
        }
        assert_int_equal (vw_jwt_verify (keys[0], len + 1, token, S_NOW, 0, NULL),
                          VW_JWT_BAD_SIGNATURE);
        free (token);
    }
    //  A NULL key is the empty key; NULL with a length is refused.
    char *token = vw_jwt_sign (NULL, 0, "alice", "viewer", S_IAT, S_EXP, "k");
    assert_non_null (token);
    assert_int_equal (vw_jwt_verify ((const uint8_t *) "", 0, token, S_NOW, 0, NULL), VW_JWT_OK);
    assert_int_equal (vw_jwt_verify (NULL, 1, token, S_NOW, 0, NULL), VW_JWT_MALFORMED);
    free (token);
    assert_null (vw_jwt_sign (NULL, 1, "alice", "viewer", S_IAT, S_EXP, "k"));
}

static const char s_vector1[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiJhbGljZSIsInJvbGUiOiJvcGVyYXRvciIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAzNjAw"
    "LCJqdGkiOiJ2ZWN0b3ItMSJ9."
    "BWZcoESzQRLaYdQuWnLJ5YUZsw_uhlR4zfxpCDnyJ8o";

static void
test_known_vector_pyjwt (void **state)
{
    char *token = vw_jwt_sign (S_KEY, S_KEYLEN, "alice", "operator", S_IAT, S_EXP, "vector-1");
    assert_non_null (token);
    assert_string_equal (token, s_vector1);
    free (token);

    vw_jwt_claims_t claims;
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, s_vector1, S_NOW, 0, &claims), VW_JWT_OK);
    assert_string_equal (claims.sub, "alice");
    assert_string_equal (claims.role, "operator");
    assert_true (claims.iat == S_IAT && claims.has_iat);
    assert_true (claims.exp == S_EXP);
    assert_false (claims.has_nbf);
    assert_string_equal (claims.jti, "vector-1");
}

//  PyJWT: sub = "b\u00e9r\u00e9nice \U0001F600 \"q\"\\\n\x7f", role viewer,
//  iat/exp as above, jti "v2", key "a" * 100 (longer than the HMAC block).
//  Checks our escaping matches json.dumps (lowercase hex, surrogate pairs,
//  \u007f) byte for byte.
static void
test_known_vector_unicode (void **state)
{
    const char *token_py =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
        "eyJzdWIiOiJiXHUwMGU5clx1MDBlOW5pY2UgXHVkODNkXHVkZTAwIFwicVwiXFxcblx1MDA3ZiIsInJvbGUiOi"
        "J2aWV3ZXIiLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMzYwMCwianRpIjoidjIifQ."
        "L7FMvq73lMtZx55ATqG7qZhfMiOHmG_1H3nCT1vFo7M";
    const char *sub = "b\xc3\xa9r\xc3\xa9nice \xf0\x9f\x98\x80 \"q\"\\\n\x7f";
    uint8_t key[100];
    memset (key, 'a', sizeof key);
    char *token = vw_jwt_sign (key, sizeof key, sub, "viewer", S_IAT, S_EXP, "v2");
    assert_non_null (token);
    assert_string_equal (token, token_py);
    free (token);

    vw_jwt_claims_t claims;
    assert_int_equal (vw_jwt_verify (key, sizeof key, token_py, S_NOW, 0, &claims), VW_JWT_OK);
    assert_string_equal (claims.sub, sub);
    assert_string_equal (claims.role, "viewer");
    assert_string_equal (claims.jti, "v2");
}

//  PyJWT: {"sub": "alice", "role": "admin", "exp": 1700003600,
//  "nbf": 1699999000} with key "secret": no iat, no jti.
static void
test_known_vector_nbf (void **state)
{
    const char *token_py = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
                           "eyJzdWIiOiJhbGljZSIsInJvbGUiOiJhZG1pbiIsImV4cCI6MTcwMDAwMzYwMCwibmJm"
                           "IjoxNjk5OTk5MDAwfQ."
                           "47Ipd16Tr7g4C4i9OswT5XlOSc8Kt_V9c6Sor419D5Y";
    vw_jwt_claims_t claims;
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token_py, S_NOW, 0, &claims), VW_JWT_OK);
    assert_string_equal (claims.role, "admin");
    assert_false (claims.has_iat);
    assert_true (claims.has_nbf && claims.nbf == INT64_C (1699999000));
    assert_string_equal (claims.jti, "");
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token_py, INT64_C (1699998999), 0, NULL),
                      VW_JWT_NOT_YET_VALID);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token_py, INT64_C (1699998999), 1, NULL),
                      VW_JWT_OK);
}

static void
test_sign_refuses_bad_arguments (void **state)
{
    char sub[200];
    memset (sub, 's', sizeof sub);
    sub[127] = '\0';
    char *token = vw_jwt_sign (S_KEY, S_KEYLEN, sub, "admin", S_IAT, S_EXP, NULL);
    assert_non_null (token);  //  127 bytes is the limit
    vw_jwt_claims_t claims;
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_NOW, 0, &claims), VW_JWT_OK);
    assert_string_equal (claims.sub, sub);
    free (token);
    sub[127] = 's';
    sub[128] = '\0';
    assert_null (vw_jwt_sign (S_KEY, S_KEYLEN, sub, "admin", S_IAT, S_EXP, NULL));
    assert_null (vw_jwt_sign (S_KEY, S_KEYLEN, "", "admin", S_IAT, S_EXP, NULL));
    assert_null (vw_jwt_sign (S_KEY, S_KEYLEN, NULL, "admin", S_IAT, S_EXP, NULL));
    assert_null (vw_jwt_sign (S_KEY, S_KEYLEN, "alice", NULL, S_IAT, S_EXP, NULL));
    assert_null (vw_jwt_sign (S_KEY, S_KEYLEN, "alice", "root", S_IAT, S_EXP, NULL));
    assert_null (vw_jwt_sign (S_KEY, S_KEYLEN, "alice", "Admin", S_IAT, S_EXP, NULL));
    assert_null (vw_jwt_sign (S_KEY, S_KEYLEN, "alice", "", S_IAT, S_EXP, NULL));
    //  Not UTF-8: a lone continuation byte, an overlong '/', a surrogate,
    //  a cut sequence.
    assert_null (vw_jwt_sign (S_KEY, S_KEYLEN, "a\x80", "admin", S_IAT, S_EXP, NULL));
    assert_null (vw_jwt_sign (S_KEY, S_KEYLEN, "\xc0\xaf", "admin", S_IAT, S_EXP, NULL));
    assert_null (vw_jwt_sign (S_KEY, S_KEYLEN, "\xed\xa0\x80", "admin", S_IAT, S_EXP, NULL));
    assert_null (vw_jwt_sign (S_KEY, S_KEYLEN, "\xe2\x82", "admin", S_IAT, S_EXP, NULL));
    char jti[100];
    memset (jti, 'j', sizeof jti);
    jti[79] = '\0';
    token = vw_jwt_sign (S_KEY, S_KEYLEN, "alice", "admin", S_IAT, S_EXP, jti);
    assert_non_null (token);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_NOW, 0, &claims), VW_JWT_OK);
    assert_string_equal (claims.jti, jti);
    free (token);
    jti[79] = 'j';
    jti[80] = '\0';
    assert_null (vw_jwt_sign (S_KEY, S_KEYLEN, "alice", "admin", S_IAT, S_EXP, jti));
    assert_null (vw_jwt_sign (S_KEY, S_KEYLEN, "alice", "admin", S_IAT, S_EXP, "\xff"));
    //  Extreme NumericDates are written and read back exactly.
    token = vw_jwt_sign (S_KEY, S_KEYLEN, "alice", "admin", INT64_MIN, INT64_MAX, "x");
    assert_non_null (token);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_NOW, 0, &claims), VW_JWT_OK);
    assert_true (claims.iat == INT64_MIN && claims.exp == INT64_MAX);
    free (token);
}

//  --------------------------------------------------------------------------
//  Signatures

static void
test_tampered_signature (void **state)
{
    const char *dot = strrchr (s_vector1, '.');
    assert_non_null (dot);
    size_t sig_at = (size_t) (dot + 1 - s_vector1);
    size_t len = strlen (s_vector1);
    char token[sizeof s_vector1];

    //  Every character of the signature replaced by every other character
    //  of the alphabet: never OK.
    for (size_t pos = sig_at; pos < len; pos++)
        for (const char *c = S_ALPHABET; *c; c++) {
            if (*c == s_vector1[pos])
                continue;
            memcpy (token, s_vector1, sizeof s_vector1);
            token[pos] = *c;
            vw_jwt_status_t status = s_verify (token);
            assert_true (status == VW_JWT_BAD_SIGNATURE || status == VW_JWT_MALFORMED);
        }

    //  Every bit of the 32-byte MAC flipped and re-encoded canonically:
    //  exactly a bad signature.
    uint8_t mac[32];
    size_t mac_len;
    assert_int_equal (sodium_base642bin (mac, sizeof mac, s_vector1 + sig_at, len - sig_at, NULL,
                                         &mac_len, NULL, S_B64),
                      0);
    assert_int_equal (mac_len, 32);
    for (size_t bit = 0; bit < 256; bit++) {
        mac[bit / 8] ^= (uint8_t) (1u << (bit % 8));
        memcpy (token, s_vector1, sizeof s_vector1);
        sodium_bin2base64 (token + sig_at, sizeof token - sig_at, mac, sizeof mac, S_B64);
        assert_int_equal (s_verify (token), VW_JWT_BAD_SIGNATURE);
        mac[bit / 8] ^= (uint8_t) (1u << (bit % 8));
    }

    //  Truncated or extended MACs (valid base64url) are not 32 bytes.
    char *short_mac = s_b64 (mac, 31);
    char *t = s_token_with_sig (S_HS256_HEADER, S_PAYLOAD, short_mac);
    assert_int_equal (s_verify (t), VW_JWT_MALFORMED);
    free (t);
    free (short_mac);
    uint8_t long_mac[33] = {0};
    char *long_b64 = s_b64 (long_mac, sizeof long_mac);
    t = s_token_with_sig (S_HS256_HEADER, S_PAYLOAD, long_b64);
    assert_int_equal (s_verify (t), VW_JWT_MALFORMED);
    free (t);
    free (long_b64);
}

static void
test_tampered_payload (void **state)
{
    //  The signature of the operator token on an admin payload.
    const char *sig = strrchr (s_vector1, '.') + 1;
    char *forged = s_token_with_sig (
        S_HS256_HEADER,
        "{\"sub\":\"alice\",\"role\":\"admin\",\"iat\":1700000000,\"exp\":1700003600,"
        "\"jti\":\"vector-1\"}",
        sig);
    assert_int_equal (s_verify (forged), VW_JWT_BAD_SIGNATURE);
    free (forged);

    //  Every character of header and payload replaced: never OK.
    const char *dot = strrchr (s_vector1, '.');
    char token[sizeof s_vector1];
    for (size_t pos = 0; s_vector1 + pos < dot; pos++) {
        if (s_vector1[pos] == '.')
            continue;
        for (const char *c = S_ALPHABET; *c; c++) {
            if (*c == s_vector1[pos])
                continue;
            memcpy (token, s_vector1, sizeof s_vector1);
            token[pos] = *c;
            assert_int_not_equal (s_verify (token), VW_JWT_OK);
        }
    }
}

static void
test_wrong_key (void **state)
{
    assert_int_equal (vw_jwt_verify ((const uint8_t *) "Secret", 6, s_vector1, S_NOW, 0, NULL),
                      VW_JWT_BAD_SIGNATURE);
    //  HMAC pads short keys with zero bytes, so trailing NULs do not change
    //  the key (RFC 2104; PyJWT behaves the same). Anything else does.
    assert_int_equal (vw_jwt_verify ((const uint8_t *) "secret\0", 7, s_vector1, S_NOW, 0, NULL),
                      VW_JWT_OK);
    assert_int_equal (vw_jwt_verify ((const uint8_t *) "secret\1", 7, s_vector1, S_NOW, 0, NULL),
                      VW_JWT_BAD_SIGNATURE);
    assert_int_equal (vw_jwt_verify ((const uint8_t *) "secre", 5, s_vector1, S_NOW, 0, NULL),
                      VW_JWT_BAD_SIGNATURE);
    assert_int_equal (vw_jwt_verify ((const uint8_t *) "", 0, s_vector1, S_NOW, 0, NULL),
                      VW_JWT_BAD_SIGNATURE);
    //  A wrong key never masks a worse problem: expiry is checked after.
    assert_int_equal (vw_jwt_verify ((const uint8_t *) "x", 1, s_vector1, S_EXP + 10, 0, NULL),
                      VW_JWT_BAD_SIGNATURE);
}

//  --------------------------------------------------------------------------
//  Algorithms and header

static void
test_alg_none (void **state)
{
    const char *headers[] = {"{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"alg\":\"none\"}",
                             "{\"alg\":\"None\"}", "{\"alg\":\"NONE\"}", "{\"alg\":\"nOnE\"}"};
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        //  Without a signature: "header.payload."
        char *t = s_token_with_sig (headers[i], S_PAYLOAD, "");
        assert_int_equal (s_verify (t), VW_JWT_BAD_ALG);
        free (t);
        //  With the right HS256 signature over these very bytes.
        t = s_token (headers[i], S_PAYLOAD);
        assert_int_equal (s_verify (t), VW_JWT_BAD_ALG);
        free (t);
        //  With a signature of the HS256 token.
        t = s_token_with_sig (headers[i], S_PAYLOAD, strrchr (s_vector1, '.') + 1);
        assert_int_equal (s_verify (t), VW_JWT_BAD_ALG);
        free (t);
        //  Without the last dot at all: two parts.
        t = s_unsigned (headers[i], S_PAYLOAD);
        assert_int_equal (s_verify (t), VW_JWT_MALFORMED);
        free (t);
    }
}

static void
test_other_algs (void **state)
{
    const char *headers[] = {"{\"alg\":\"HS384\",\"typ\":\"JWT\"}",
                             "{\"alg\":\"HS512\",\"typ\":\"JWT\"}",
                             "{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
                             "{\"alg\":\"ES256\",\"typ\":\"JWT\"}",
                             "{\"alg\":\"PS256\",\"typ\":\"JWT\"}",
                             "{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}",
                             "{\"alg\":\"hs256\",\"typ\":\"JWT\"}",
                             "{\"alg\":\"Hs256\",\"typ\":\"JWT\"}",
                             "{\"alg\":\"HS256 \",\"typ\":\"JWT\"}",
                             "{\"alg\":\" HS256\",\"typ\":\"JWT\"}",
                             "{\"alg\":\"HS2560\",\"typ\":\"JWT\"}",
                             "{\"alg\":\"HS25\",\"typ\":\"JWT\"}",
                             "{\"alg\":\"\",\"typ\":\"JWT\"}",
                             "{\"typ\":\"JWT\"}",
                             "{}",
                             "{\"alg\":null}",
                             "{\"alg\":256}",
                             "{\"alg\":true}",
                             "{\"alg\":[\"HS256\"]}",
                             "{\"alg\":{\"HS256\":1}}",
                             "{\"ALG\":\"HS256\"}",
                             "{\"alg\":\"HS\\u0032\\u0035\\u0036 \"}"};
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++)
        s_expect (headers[i], S_PAYLOAD, VW_JWT_BAD_ALG);
    //  Escapes that spell HS256 exactly are HS256.
    s_expect ("{\"alg\":\"HS\\u0032\\u0035\\u0036\"}", S_PAYLOAD, VW_JWT_OK);
    //  An embedded NUL is refused by the JSON parser itself.
    s_expect ("{\"alg\":\"HS256\\u0000\"}", S_PAYLOAD, VW_JWT_MALFORMED);
}

static void
test_header_rules (void **state)
{
    s_expect ("{\"alg\":\"HS256\"}", S_PAYLOAD, VW_JWT_OK);
    s_expect ("{\"typ\":\"JWT\",\"alg\":\"HS256\"}", S_PAYLOAD, VW_JWT_OK);
    s_expect ("{\"alg\":\"HS256\",\"typ\":\"jwt\"}", S_PAYLOAD, VW_JWT_OK);
    s_expect ("{\"alg\":\"HS256\",\"typ\":\"Jwt\"}", S_PAYLOAD, VW_JWT_OK);
    s_expect ("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}", S_PAYLOAD, VW_JWT_OK);
    s_expect (" { \"alg\" : \"HS256\" } ", S_PAYLOAD, VW_JWT_OK);
    s_expect ("{\"alg\":\"HS256\",\"typ\":\"JWS\"}", S_PAYLOAD, VW_JWT_MALFORMED);
    s_expect ("{\"alg\":\"HS256\",\"typ\":\"JWTX\"}", S_PAYLOAD, VW_JWT_MALFORMED);
    s_expect ("{\"alg\":\"HS256\",\"typ\":\"\"}", S_PAYLOAD, VW_JWT_MALFORMED);
    s_expect ("{\"alg\":\"HS256\",\"typ\":1}", S_PAYLOAD, VW_JWT_MALFORMED);
    s_expect ("{\"alg\":\"HS256\",\"typ\":null}", S_PAYLOAD, VW_JWT_MALFORMED);
    s_expect ("{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", S_PAYLOAD, VW_JWT_MALFORMED);
    s_expect ("{\"alg\":\"HS256\",\"crit\":[]}", S_PAYLOAD, VW_JWT_MALFORMED);
    //  Not a JSON object.
    s_expect ("not json", S_PAYLOAD, VW_JWT_MALFORMED);
    s_expect ("{\"alg\":\"HS256\"", S_PAYLOAD, VW_JWT_MALFORMED);
    s_expect ("{\"alg\":\"HS256\"}x", S_PAYLOAD, VW_JWT_MALFORMED);
    s_expect ("{\"alg\":\"HS256\"}{}", S_PAYLOAD, VW_JWT_MALFORMED);
    s_expect ("[\"HS256\"]", S_PAYLOAD, VW_JWT_MALFORMED);
    s_expect ("\"HS256\"", S_PAYLOAD, VW_JWT_MALFORMED);
    s_expect ("null", S_PAYLOAD, VW_JWT_MALFORMED);
    s_expect ("{\"alg\":\"HS256\",\"alg\":\"HS256\"}", S_PAYLOAD, VW_JWT_MALFORMED);
    s_expect ("{\"alg\":\"none\",\"alg\":\"HS256\"}", S_PAYLOAD, VW_JWT_MALFORMED);
    s_expect ("{\"alg\":\"HS256\",\"x\":\"\xff\"}", S_PAYLOAD, VW_JWT_MALFORMED);
    //  A NUL byte inside the decoded header.
    char hdr_nul[] = "{\"alg\":\"HS256\"}\0 ";
    char *hb = s_b64 (hdr_nul, sizeof hdr_nul - 1);
    char *pb = s_b64 (S_PAYLOAD, strlen (S_PAYLOAD));
    char body[512];
    snprintf (body, sizeof body, "%s.%s", hb, pb);
    char *sig = s_mac_b64 (S_KEY, S_KEYLEN, body, strlen (body));
    char full[600];
    snprintf (full, sizeof full, "%s.%s", body, sig);
    assert_int_equal (s_verify (full), VW_JWT_MALFORMED);
    free (hb);
    free (pb);
    free (sig);
}

//  --------------------------------------------------------------------------
//  Time claims

static void
test_expiry (void **state)
{
    char *token = s_token (S_HS256_HEADER, S_PAYLOAD);
    //  One second before exp: valid. At exp: expired (exp is exclusive).
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_EXP - 1, 0, NULL), VW_JWT_OK);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_EXP, 0, NULL), VW_JWT_EXPIRED);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_EXP + 3600, 0, NULL),
                      VW_JWT_EXPIRED);
    //  Within skew: valid until exp + skew.
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_EXP, 60, NULL), VW_JWT_OK);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_EXP + 59, 60, NULL), VW_JWT_OK);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_EXP + 60, 60, NULL), VW_JWT_EXPIRED);
    //  A negative skew counts as none.
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_EXP - 1, -60, NULL), VW_JWT_OK);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_EXP, -60, NULL), VW_JWT_EXPIRED);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_EXP, INT64_MIN, NULL),
                      VW_JWT_EXPIRED);
    //  Claims are not filled on failure.
    vw_jwt_claims_t claims;
    memset (&claims, 0x5A, sizeof claims);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_EXP, 0, &claims), VW_JWT_EXPIRED);
    assert_int_equal ((unsigned char) claims.sub[0], 0x5A);
    free (token);

    //  Extremes do not overflow.
    char *far =
        s_token (S_HS256_HEADER, "{\"sub\":\"a\",\"role\":\"viewer\",\"exp\":9223372036854775807}");
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, far, S_NOW, INT64_MAX, NULL), VW_JWT_OK);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, far, INT64_MAX, 0, NULL), VW_JWT_EXPIRED);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, far, INT64_MAX - 1, 0, NULL), VW_JWT_OK);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, far, INT64_MIN, INT64_MAX, NULL), VW_JWT_OK);
    free (far);
    char *past = s_token (S_HS256_HEADER,
                          "{\"sub\":\"a\",\"role\":\"viewer\",\"exp\":-9223372036854775808}");
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, past, S_NOW, INT64_MAX, NULL),
                      VW_JWT_EXPIRED);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, past, INT64_MIN, 0, NULL), VW_JWT_EXPIRED);
    free (past);
}

static void
test_not_yet_valid (void **state)
{
    //  nbf one second in the future.
    char *token = s_token (S_HS256_HEADER, "{" S_CLAIMS ",\"exp\":1700003600,\"nbf\":1700001001}");
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_NOW, 0, NULL), VW_JWT_NOT_YET_VALID);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_NOW + 1, 0, NULL), VW_JWT_OK);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_NOW, 1, NULL), VW_JWT_OK);
    free (token);
    //  nbf far in the future, outside any reasonable skew.
    token = s_token (S_HS256_HEADER, "{" S_CLAIMS ",\"exp\":1700003600,\"nbf\":1700002000}");
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_NOW, 60, NULL),
                      VW_JWT_NOT_YET_VALID);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_NOW + 940, 60, NULL), VW_JWT_OK);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_NOW + 939, 60, NULL),
                      VW_JWT_NOT_YET_VALID);
    free (token);
    //  iat in the future: not valid yet either, unless within skew.
    token =
        s_token (S_HS256_HEADER,
                 "{\"sub\":\"alice\",\"role\":\"operator\",\"iat\":1700001030,\"exp\":1700003600}");
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_NOW, 0, NULL), VW_JWT_NOT_YET_VALID);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_NOW, 29, NULL),
                      VW_JWT_NOT_YET_VALID);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_NOW, 30, NULL), VW_JWT_OK);
    free (token);
    //  nbf and iat in the past are fine; so is now near INT64_MAX with a
    //  huge skew (exp + skew saturates instead of wrapping).
    token = s_token (S_HS256_HEADER, "{\"sub\":\"a\",\"role\":\"viewer\",\"iat\":1,\"nbf\":-5,"
                                     "\"exp\":9223372036854775807}");
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_NOW, 0, NULL), VW_JWT_OK);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, INT64_MAX - 1, INT64_MAX, NULL),
                      VW_JWT_OK);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, INT64_MAX, INT64_MAX, NULL),
                      VW_JWT_EXPIRED);
    free (token);
    token =
        s_token (S_HS256_HEADER, "{\"sub\":\"a\",\"role\":\"viewer\",\"nbf\":9223372036854775807,"
                                 "\"exp\":9223372036854775807}");
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, token, S_NOW, 3600, NULL),
                      VW_JWT_NOT_YET_VALID);
    free (token);
}

//  --------------------------------------------------------------------------
//  Claims

static void
test_claims (void **state)
{
    s_expect_payload (S_PAYLOAD, VW_JWT_OK);
    //  exp is required and must be an integer.
    s_expect_payload ("{" S_CLAIMS "}", VW_JWT_MISSING_EXP);
    s_expect_payload ("{\"sub\":\"alice\",\"role\":\"operator\"}", VW_JWT_MISSING_EXP);
    s_expect_payload ("{" S_CLAIMS ",\"exp\":\"1700003600\"}", VW_JWT_BAD_CLAIMS);
    s_expect_payload ("{" S_CLAIMS ",\"exp\":1700003600.0}", VW_JWT_BAD_CLAIMS);
    s_expect_payload ("{" S_CLAIMS ",\"exp\":1.5}", VW_JWT_BAD_CLAIMS);
    s_expect_payload ("{" S_CLAIMS ",\"exp\":1.7e9}", VW_JWT_BAD_CLAIMS);
    s_expect_payload ("{" S_CLAIMS ",\"exp\":null}", VW_JWT_BAD_CLAIMS);
    s_expect_payload ("{" S_CLAIMS ",\"exp\":true}", VW_JWT_BAD_CLAIMS);
    s_expect_payload ("{" S_CLAIMS ",\"exp\":[1700003600]}", VW_JWT_BAD_CLAIMS);
    s_expect_payload ("{" S_CLAIMS ",\"exp\":99999999999999999999}", VW_JWT_MALFORMED);
    //  role
    const char *roles_bad[] = {"\"root\"",   "\"Admin\"",   "\"ADMIN\"",          "\"\"",
                               "\"admin \"", "\"adminx\"",  "\"admi\"",           "3",
                               "null",       "[\"admin\"]", "\"operator\\u0000\""};
    for (size_t i = 0; i < sizeof roles_bad / sizeof roles_bad[0]; i++) {
        char payload[256];
        snprintf (payload, sizeof payload, "{\"sub\":\"a\",\"role\":%s,\"exp\":1700003600}",
                  roles_bad[i]);
        vw_jwt_status_t want =
            strstr (roles_bad[i], "\\u0000") ? VW_JWT_MALFORMED : VW_JWT_BAD_CLAIMS;
        s_expect_payload (payload, want);
    }
    s_expect_payload ("{\"sub\":\"a\",\"exp\":1700003600}", VW_JWT_BAD_CLAIMS);
    s_expect_payload ("{\"sub\":\"a\",\"role\":\"admin\",\"exp\":1700003600}", VW_JWT_OK);
    s_expect_payload ("{\"sub\":\"a\",\"role\":\"viewer\",\"exp\":1700003600}", VW_JWT_OK);
    //  sub
    s_expect_payload ("{\"role\":\"admin\",\"exp\":1700003600}", VW_JWT_BAD_CLAIMS);
    s_expect_payload ("{\"sub\":\"\",\"role\":\"admin\",\"exp\":1700003600}", VW_JWT_BAD_CLAIMS);
    s_expect_payload ("{\"sub\":42,\"role\":\"admin\",\"exp\":1700003600}", VW_JWT_BAD_CLAIMS);
    s_expect_payload ("{\"sub\":null,\"role\":\"admin\",\"exp\":1700003600}", VW_JWT_BAD_CLAIMS);
    char payload[512];
    char long_text[200];
    memset (long_text, 'x', sizeof long_text);
    long_text[127] = '\0';
    snprintf (payload, sizeof payload, "{\"sub\":\"%s\",\"role\":\"admin\",\"exp\":1700003600}",
              long_text);
    s_expect_payload (payload, VW_JWT_OK);
    long_text[127] = 'x';
    long_text[128] = '\0';
    snprintf (payload, sizeof payload, "{\"sub\":\"%s\",\"role\":\"admin\",\"exp\":1700003600}",
              long_text);
    s_expect_payload (payload, VW_JWT_BAD_CLAIMS);
    //  127 bytes of UTF-8 that are fewer characters still fit; 128 do not.
    s_expect_payload ("{\"sub\":\"\\u00e9\",\"role\":\"admin\",\"exp\":1700003600}", VW_JWT_OK);
    //  iat and nbf are optional integers.
    s_expect_payload ("{\"sub\":\"a\",\"role\":\"admin\",\"exp\":1700003600,\"iat\":\"1\"}",
                      VW_JWT_BAD_CLAIMS);
    s_expect_payload ("{\"sub\":\"a\",\"role\":\"admin\",\"exp\":1700003600,\"iat\":1.0}",
                      VW_JWT_BAD_CLAIMS);
    s_expect_payload ("{\"sub\":\"a\",\"role\":\"admin\",\"exp\":1700003600,\"nbf\":0.5}",
                      VW_JWT_BAD_CLAIMS);
    s_expect_payload ("{\"sub\":\"a\",\"role\":\"admin\",\"exp\":1700003600,\"nbf\":null}",
                      VW_JWT_BAD_CLAIMS);
    //  jti: optional string of at most 79 bytes.
    s_expect_payload ("{\"sub\":\"a\",\"role\":\"admin\",\"exp\":1700003600,\"jti\":7}",
                      VW_JWT_BAD_CLAIMS);
    long_text[79] = '\0';
    snprintf (payload, sizeof payload,
              "{\"sub\":\"a\",\"role\":\"admin\",\"exp\":1700003600,\"jti\":\"%s\"}", long_text);
    s_expect_payload (payload, VW_JWT_OK);
    long_text[79] = 'x';
    long_text[80] = '\0';
    snprintf (payload, sizeof payload,
              "{\"sub\":\"a\",\"role\":\"admin\",\"exp\":1700003600,\"jti\":\"%s\"}", long_text);
    s_expect_payload (payload, VW_JWT_BAD_CLAIMS);
    //  Claims we do not know are ignored.
    s_expect_payload ("{\"iss\":\"x\",\"aud\":[\"y\"],\"sub\":\"a\",\"role\":\"admin\","
                      "\"exp\":1700003600,\"extra\":{\"deep\":[1,2,{}]}}",
                      VW_JWT_OK);
    //  The payload must be one JSON object without duplicate keys.
    s_expect_payload ("[" S_PAYLOAD "]", VW_JWT_MALFORMED);
    s_expect_payload ("[]", VW_JWT_MALFORMED);
    s_expect_payload ("null", VW_JWT_MALFORMED);
    s_expect_payload ("1700003600", VW_JWT_MALFORMED);
    s_expect_payload ("\"text\"", VW_JWT_MALFORMED);
    s_expect_payload ("not json", VW_JWT_MALFORMED);
    s_expect_payload (S_PAYLOAD " x", VW_JWT_MALFORMED);
    s_expect_payload ("{" S_CLAIMS ",\"exp\":1700003600,\"exp\":1700003600}", VW_JWT_MALFORMED);
    s_expect_payload ("{" S_CLAIMS ",\"exp\":1700003600,\"role\":\"admin\"}", VW_JWT_MALFORMED);
    s_expect_payload ("{\"sub\":\"a\xff\",\"role\":\"admin\",\"exp\":1700003600}",
                      VW_JWT_MALFORMED);
    s_expect_payload ("{\"sub\":\"a\\u0000b\",\"role\":\"admin\",\"exp\":1700003600}",
                      VW_JWT_MALFORMED);
    s_expect_payload ("{\"sub\":\"\\ud800\",\"role\":\"admin\",\"exp\":1700003600}",
                      VW_JWT_MALFORMED);
    //  Deep nesting is refused by the parser, not by a crash.
    static char deep[6000];
    size_t n = 0;
    n +=
        (size_t) snprintf (deep, sizeof deep, "{\"sub\":\"a\",\"role\":\"admin\",\"exp\":1,\"x\":");
    while (n < 4000)
        deep[n++] = '[';
    deep[n] = '\0';
    s_expect_payload (deep, VW_JWT_MALFORMED);
}

//  --------------------------------------------------------------------------
//  Structure

static void
s_expect_raw (const char *token, vw_jwt_status_t expected)
{
    vw_jwt_status_t status = s_verify (token);
    if (status != expected)
        fprintf (stderr, "token '%.80s': got %s, expected %s\n", token, vw_jwt_status_name (status),
                 vw_jwt_status_name (expected));
    assert_int_equal (status, expected);
}

//  Returns s_vector1 with text inserted at pos (caller frees).
static char *
s_insert (size_t pos, const char *text)
{
    size_t len = strlen (s_vector1), add = strlen (text);
    char *token = (char *) malloc (len + add + 1);
    assert_non_null (token);
    memcpy (token, s_vector1, pos);
    memcpy (token + pos, text, add);
    memcpy (token + pos + add, s_vector1 + pos, len - pos + 1);
    return token;
}

static void
test_structure (void **state)
{
    s_expect_raw (s_vector1, VW_JWT_OK);
    assert_int_equal (vw_jwt_verify (S_KEY, S_KEYLEN, NULL, S_NOW, 0, NULL), VW_JWT_MALFORMED);
    s_expect_raw ("", VW_JWT_MALFORMED);
    s_expect_raw (".", VW_JWT_MALFORMED);
    s_expect_raw ("..", VW_JWT_MALFORMED);
    s_expect_raw ("...", VW_JWT_MALFORMED);
    s_expect_raw ("a.b", VW_JWT_MALFORMED);
    s_expect_raw ("a.b.c", VW_JWT_MALFORMED);
    s_expect_raw ("abc", VW_JWT_MALFORMED);

    const char *dot1 = strchr (s_vector1, '.');
    const char *dot2 = strrchr (s_vector1, '.');
    size_t d1 = (size_t) (dot1 - s_vector1), d2 = (size_t) (dot2 - s_vector1);
    size_t len = strlen (s_vector1);
    //  Padding, whitespace and foreign characters anywhere in any part.
    const char *inserts[] = {"=", "==", " ", "\t", "\n", "\r\n", "+", "/", "%", "\"", "\\", "\x80"};
    const size_t positions[] = {0, 5, d1, d1 + 1, d1 + 7, d2, d2 + 1, d2 + 9, len};
    for (size_t i = 0; i < sizeof inserts / sizeof inserts[0]; i++)
        for (size_t j = 0; j < sizeof positions / sizeof positions[0]; j++) {
            char *token = s_insert (positions[j], inserts[i]);
            s_expect_raw (token, VW_JWT_MALFORMED);
            free (token);
        }
    //  Extra dots: "h.p.s.", ".h.p.s", "h..p.s", 4 parts, 2 parts.
    const size_t dot_positions[] = {0, d1, d1 + 1, d2, d2 + 1, len};
    for (size_t j = 0; j < sizeof dot_positions / sizeof dot_positions[0]; j++) {
        char *token = s_insert (dot_positions[j], ".");
        s_expect_raw (token, VW_JWT_MALFORMED);
        free (token);
    }
    char *four = s_insert (len, ".eyJhIjoxfQ");
    s_expect_raw (four, VW_JWT_MALFORMED);
    free (four);
    char two[sizeof s_vector1];
    memcpy (two, s_vector1, d2);
    two[d2] = '\0';
    s_expect_raw (two, VW_JWT_MALFORMED);
    //  Empty parts: header, payload, signature.
    char buf[sizeof s_vector1 + 8];
    snprintf (buf, sizeof buf, "%s", s_vector1 + d1);  //  ".p.s"
    s_expect_raw (buf, VW_JWT_MALFORMED);
    snprintf (buf, sizeof buf, "%.*s.%s", (int) d1, s_vector1, s_vector1 + d2);  //  "h..s"
    s_expect_raw (buf, VW_JWT_MALFORMED);
    snprintf (buf, sizeof buf, "%.*s", (int) d2 + 1, s_vector1);  //  "h.p."
    s_expect_raw (buf, VW_JWT_MALFORMED);
    //  A part of length 1 mod 4 can never be base64url.
    snprintf (buf, sizeof buf, "%sA", s_vector1);
    s_expect_raw (buf, VW_JWT_MALFORMED);
    //  Non-canonical trailing bits: the signature's last character stands
    //  for 4 bits + 2 zero bits; setting a zero bit must not decode.
    memcpy (buf, s_vector1, sizeof s_vector1);
    const char *alphabet = S_ALPHABET;
    size_t last = len - 1;
    size_t index = (size_t) (strchr (alphabet, buf[last]) - alphabet);
    buf[last] = alphabet[index ^ 1];
    s_expect_raw (buf, VW_JWT_MALFORMED);
    //  Standard-alphabet base64 of the same bytes is refused, if it differs.
    char *std = strdup (s_vector1);
    bool changed = false;
    for (char *c = std; *c; c++) {
        if (*c == '-')
            *c = '+', changed = true;
        else if (*c == '_')
            *c = '/', changed = true;
    }
    if (changed)
        s_expect_raw (std, VW_JWT_MALFORMED);
    free (std);
}

//  A valid token padded with an extra claim to exactly `want` characters,
//  or NULL if base64 lengths make that size impossible.
static char *
s_token_of_length (size_t want)
{
    static char payload[VW_JWT_MAX_TOKEN + 64];
    for (size_t pad = 5000; pad < 7000; pad++) {
        int n = snprintf (payload, sizeof payload, "{" S_CLAIMS ",\"exp\":1700003600,\"x\":\"");
        memset (payload + n, 'x', pad);
        strcpy (payload + n + pad, "\"}");
        char *token = s_token (S_HS256_HEADER, payload);
        size_t len = strlen (token);
        if (len == want)
            return token;
        free (token);
        if (len > want)
            break;
    }
    return NULL;
}

static void
test_length_limit (void **state)
{
    char *token = s_token_of_length (VW_JWT_MAX_TOKEN);
    assert_non_null (token);
    s_expect_raw (token, VW_JWT_OK);
    free (token);
    token = s_token_of_length (VW_JWT_MAX_TOKEN + 1);
    assert_non_null (token);
    s_expect_raw (token, VW_JWT_MALFORMED);
    free (token);
    //  A 9000-byte token: a valid one padded out, and plain junk.
    token = s_token_of_length (9000);
    if (!token)
        token = s_token_of_length (9001);
    assert_non_null (token);
    s_expect_raw (token, VW_JWT_MALFORMED);
    free (token);
    char *junk = (char *) malloc (9001);
    assert_non_null (junk);
    memset (junk, 'A', 9000);
    junk[9000] = '\0';
    junk[100] = '.';
    junk[200] = '.';
    s_expect_raw (junk, VW_JWT_MALFORMED);
    //  Enormous input: only the first 8193 bytes are ever looked at.
    free (junk);
    size_t huge = 1 << 22;
    junk = (char *) malloc (huge + 1);
    assert_non_null (junk);
    memset (junk, 'A', huge);
    junk[huge] = '\0';
    s_expect_raw (junk, VW_JWT_MALFORMED);
    free (junk);
}

//  --------------------------------------------------------------------------
//  Random mutations

static uint64_t s_rng_state = UINT64_C (0x9E3779B97F4A7C15);

static uint64_t
s_rng (void)
{
    //  xorshift64*: fixed seed, same sequence on every run and platform.
    s_rng_state ^= s_rng_state >> 12;
    s_rng_state ^= s_rng_state << 25;
    s_rng_state ^= s_rng_state >> 27;
    return s_rng_state * UINT64_C (2685821657736338717);
}

static size_t
s_rand_below (size_t n)
{
    return n ? (size_t) (s_rng () % n) : 0;
}

static char
s_rand_char (void)
{
    static const char interesting[] = S_ALPHABET ".=+/ \t\"{}";
    uint64_t r = s_rng ();
    if (r % 4 == 0)
        return (char) (1 + (r >> 8) % 255);  //  any byte but NUL
    return interesting[(r >> 8) % (sizeof interesting - 1)];
}

#define S_MUT_MAX 2048

//  Applies one random edit to buf (length *len, capacity S_MUT_MAX).
static void
s_mutate (char *buf, size_t *len)
{
    size_t n = *len;
    switch (s_rng () % 8) {
        case 0:  //  replace a byte
        case 1:
            if (n)
                buf[s_rand_below (n)] = s_rand_char ();
            break;
        case 2:  //  flip one bit (never to NUL)
            if (n) {
                size_t pos = s_rand_below (n);
                char c = (char) (buf[pos] ^ (char) (1 << s_rand_below (8)));
                buf[pos] = c ? c : buf[pos];
            }
            break;
        case 3:  //  delete a byte
            if (n) {
                size_t pos = s_rand_below (n);
                memmove (buf + pos, buf + pos + 1, n - pos - 1);
                n--;
            }
            break;
        case 4:  //  insert a byte
            if (n + 1 < S_MUT_MAX) {
                size_t pos = s_rand_below (n + 1);
                memmove (buf + pos + 1, buf + pos, n - pos);
                buf[pos] = s_rand_char ();
                n++;
            }
            break;
        case 5:  //  swap two bytes
            if (n) {
                size_t a = s_rand_below (n), b = s_rand_below (n);
                char c = buf[a];
                buf[a] = buf[b];
                buf[b] = c;
            }
            break;
        case 6:  //  truncate
            n = s_rand_below (n + 1);
            break;
        case 7:  //  copy a slice over another place
            if (n) {
                size_t from = s_rand_below (n), to = s_rand_below (n);
                size_t span = 1 + s_rand_below (16);
                for (size_t i = 0; i < span && from + i < n && to + i < n; i++)
                    buf[to + i] = buf[from + i];
            }
            break;
    }
    buf[n] = '\0';
    *len = n;
}

static void
test_random_mutations (void **state)
{
    char *base =
        s_token (S_HS256_HEADER, "{" S_CLAIMS ",\"exp\":1700003600,\"nbf\":1,\"jti\":\"m-1\"}");
    size_t base_len = strlen (base);
    assert_true (base_len < S_MUT_MAX);
    assert_int_equal (s_verify (base), VW_JWT_OK);
    char buf[S_MUT_MAX + 1];
    size_t unchanged = 0, by_status[VW_JWT_BAD_CLAIMS + 1] = {0};
    for (int round = 0; round < 20000; round++) {
        memcpy (buf, base, base_len + 1);
        size_t len = base_len;
        size_t edits = 1 + s_rand_below (3);
        for (size_t e = 0; e < edits; e++)
            s_mutate (buf, &len);
        vw_jwt_claims_t claims;
        vw_jwt_status_t status = vw_jwt_verify (S_KEY, S_KEYLEN, buf, S_NOW, 0, &claims);
        assert_true ((int) status >= VW_JWT_OK && status <= VW_JWT_BAD_CLAIMS);
        by_status[status]++;
        if (len == base_len && memcmp (buf, base, len) == 0) {
            unchanged++;
            assert_int_equal (status, VW_JWT_OK);
        }
        else if (status == VW_JWT_OK) {
            fprintf (stderr, "mutation %d verified: %s\n", round, buf);
            fail ();
        }
    }
    printf ("# mutations: %zu unchanged, %zu malformed, %zu bad alg, %zu bad signature\n",
            unchanged, by_status[VW_JWT_MALFORMED], by_status[VW_JWT_BAD_ALG],
            by_status[VW_JWT_BAD_SIGNATURE]);
    assert_int_equal (by_status[VW_JWT_OK], unchanged);
    free (base);
}

static void
test_status_text (void **state)
{
    for (int a = VW_JWT_OK; a <= VW_JWT_BAD_CLAIMS; a++) {
        const char *text = vw_jwt_status_text ((vw_jwt_status_t) a);
        assert_non_null (text);
        assert_true (strlen (text) > 0);
        assert_non_null (vw_jwt_status_name ((vw_jwt_status_t) a));
        for (int b = a + 1; b <= VW_JWT_BAD_CLAIMS; b++) {
            assert_string_not_equal (text, vw_jwt_status_text ((vw_jwt_status_t) b));
            assert_string_not_equal (vw_jwt_status_name ((vw_jwt_status_t) a),
                                     vw_jwt_status_name ((vw_jwt_status_t) b));
        }
    }
    assert_string_equal (vw_jwt_status_text (VW_JWT_EXPIRED), "token has expired");
    assert_non_null (vw_jwt_status_text ((vw_jwt_status_t) 99));
    assert_non_null (vw_jwt_status_name ((vw_jwt_status_t) 99));
}

int
main (void)
{
    if (sodium_init () < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_round_trip),
        cmocka_unit_test (test_key_lengths),
        cmocka_unit_test (test_known_vector_pyjwt),
        cmocka_unit_test (test_known_vector_unicode),
        cmocka_unit_test (test_known_vector_nbf),
        cmocka_unit_test (test_sign_refuses_bad_arguments),
        cmocka_unit_test (test_tampered_signature),
        cmocka_unit_test (test_tampered_payload),
        cmocka_unit_test (test_wrong_key),
        cmocka_unit_test (test_alg_none),
        cmocka_unit_test (test_other_algs),
        cmocka_unit_test (test_header_rules),
        cmocka_unit_test (test_expiry),
        cmocka_unit_test (test_not_yet_valid),
        cmocka_unit_test (test_claims),
        cmocka_unit_test (test_structure),
        cmocka_unit_test (test_length_limit),
        cmocka_unit_test (test_random_mutations),
        cmocka_unit_test (test_status_text),
    };
    return cmocka_run_group_tests_name ("vw_jwt", tests, NULL, NULL);
}
