/*  vw_jwt - JSON Web Tokens for the REST API, HS256 only (see vw_jwt.h).

    Verification order matters: split and size-check the token, decode the
    header and refuse any alg but "HS256" (so "none" never reaches the
    signature code), then check the HMAC in constant time over the encoded
    "header.payload", and only then parse the payload and its claims. Every
    base64url part is decoded strictly by libsodium (no padding, no
    whitespace, canonical trailing bits), so no two spellings of a part
    decode alike and a changed token never verifies.

    Signing writes the payload JSON by hand, escaping exactly as Python's
    json.dumps (ensure_ascii) does, so our tokens are byte-identical to
    PyJWT's for the same claims in the same order.
*/
#include "vw_jwt.h"

#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_B64         sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define S_MAC_LEN     crypto_auth_hmacsha256_BYTES
#define S_SUB_MAX     127
#define S_JTI_MAX     79
#define S_JTI_RANDOM  16    //  bytes of randomness in a generated jti
#define S_PAYLOAD_MAX 2100  //  worst case: 127 + 79 bytes escaped 6x each, gen
#define S_HEADER_JSON "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static const char *s_roles[] = {"admin", "operator", "viewer"};

static bool
s_role_valid (const char *role, size_t len)
{
    for (size_t i = 0; i < sizeof s_roles / sizeof s_roles[0]; i++)
        if (strlen (s_roles[i]) == len && memcmp (s_roles[i], role, len) == 0)
            return true;
    return false;
}

//  a + b for b >= 0, saturating at INT64_MAX.
static int64_t
s_add_sat (int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

static void
s_hmac (const uint8_t *key, size_t keylen, const char *data, size_t len, uint8_t mac[S_MAC_LEN])
{
    static const uint8_t empty_key[1] = {0};
    crypto_auth_hmacsha256_state state;
    crypto_auth_hmacsha256_init (&state, key ? key : empty_key, key ? keylen : 0);
    crypto_auth_hmacsha256_update (&state, (const unsigned char *) data, len);
    crypto_auth_hmacsha256_final (&state, mac);
    sodium_memzero (&state, sizeof state);
}

//  --------------------------------------------------------------------------
//  Payload writer (signing)

typedef struct {
    char *data;
    size_t size;
    size_t len;
    bool overflow;
} s_buf_t;

static void
s_buf_put (s_buf_t *self, const char *text, size_t len)
{
    if (self->overflow || len > self->size - self->len) {
        self->overflow = true;
        return;
    }
    memcpy (self->data + self->len, text, len);
    self->len += len;
}

static void
s_buf_puts (s_buf_t *self, const char *text)
{
    s_buf_put (self, text, strlen (text));
}

static void
s_buf_put_int (s_buf_t *self, int64_t value)
{
    char text[24];
    int len = snprintf (text, sizeof text, "%" PRId64, value);
    s_buf_put (self, text, (size_t) len);
}

//  Decodes one UTF-8 sequence at s (NUL-terminated). Returns its length and
//  sets *cp, or 0 when invalid: overlong, surrogate, above U+10FFFF, cut.
static size_t
s_utf8_next (const unsigned char *s, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t value, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if ((c & 0xE0) == 0xC0) {
        n = 2, value = c & 0x1F, min = 0x80;
    }
    else if ((c & 0xF0) == 0xE0) {
        n = 3, value = c & 0x0F, min = 0x800;
    }
    else if ((c & 0xF8) == 0xF0) {
        n = 4, value = c & 0x07, min = 0x10000;
    }
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)  //  also stops at the terminating NUL
            return 0;
        value = (value << 6) | (s[i] & 0x3F);
    }
    if (value < min || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF))
        return 0;
    *cp = value;
    return n;
}

static void
s_buf_put_u16 (s_buf_t *self, uint32_t unit)
{
    char text[8];
    snprintf (text, sizeof text, "\\u%04x", (unsigned) unit);
    s_buf_put (self, text, 6);
}

//  Writes text as a JSON string the way Python's json.dumps does with
//  ensure_ascii: printable ASCII as is, short escapes for \" \\ \b \f \n \r
//  \t, everything else as lowercase \uXXXX (surrogate pairs above U+FFFF).
//  Returns -1 if text is not valid UTF-8.
static int
s_buf_put_json_string (s_buf_t *self, const char *text)
{
    const unsigned char *s = (const unsigned char *) text;
    s_buf_puts (self, "\"");
    while (*s) {
        uint32_t cp;
        size_t n = s_utf8_next (s, &cp);
        if (n == 0)
            return -1;
        s += n;
        switch (cp) {
            case '"': s_buf_puts (self, "\\\""); break;
            case '\\': s_buf_puts (self, "\\\\"); break;
            case '\b': s_buf_puts (self, "\\b"); break;
            case '\f': s_buf_puts (self, "\\f"); break;
            case '\n': s_buf_puts (self, "\\n"); break;
            case '\r': s_buf_puts (self, "\\r"); break;
            case '\t': s_buf_puts (self, "\\t"); break;
            default:
                if (cp >= 0x20 && cp <= 0x7E) {
                    char c = (char) cp;
                    s_buf_put (self, &c, 1);
                }
                else if (cp > 0xFFFF) {
                    cp -= 0x10000;
                    s_buf_put_u16 (self, 0xD800 | (cp >> 10));
                    s_buf_put_u16 (self, 0xDC00 | (cp & 0x3FF));
                }
                else
                    s_buf_put_u16 (self, cp);
        }
    }
    s_buf_puts (self, "\"");
    return 0;
}

//  --------------------------------------------------------------------------
//  Signing

char *
vw_jwt_sign (const uint8_t *key, size_t keylen, const char *sub, const char *role, int64_t iat_s,
             int64_t exp_s, const char *jti)
{
    return vw_jwt_sign_gen (key, keylen, sub, role, iat_s, exp_s, jti, -1);
}

char *
vw_jwt_sign_gen (const uint8_t *key, size_t keylen, const char *sub, const char *role,
                 int64_t iat_s, int64_t exp_s, const char *jti, int64_t gen)
{
    if ((!key && keylen > 0) || !sub || !role)
        return NULL;
    size_t sub_len = strlen (sub);
    if (sub_len == 0 || sub_len > S_SUB_MAX || !s_role_valid (role, strlen (role)))
        return NULL;

    char jti_random[sodium_base64_ENCODED_LEN (S_JTI_RANDOM, S_B64)];
    if (jti) {
        if (strlen (jti) > S_JTI_MAX)
            return NULL;
    }
    else {
        if (sodium_init () < 0)
            return NULL;
        uint8_t bytes[S_JTI_RANDOM];
        randombytes_buf (bytes, sizeof bytes);
        sodium_bin2base64 (jti_random, sizeof jti_random, bytes, sizeof bytes, S_B64);
        jti = jti_random;
    }

    //  Same member order and separators as PyJWT's
    //  jwt.encode ({"sub","role","iat","exp","jti"}, key, "HS256").
    char json[S_PAYLOAD_MAX];
    s_buf_t payload = {json, sizeof json, 0, false};
    s_buf_puts (&payload, "{\"sub\":");
    if (s_buf_put_json_string (&payload, sub))
        return NULL;
    s_buf_puts (&payload, ",\"role\":");
    s_buf_put_json_string (&payload, role);
    s_buf_puts (&payload, ",\"iat\":");
    s_buf_put_int (&payload, iat_s);
    s_buf_puts (&payload, ",\"exp\":");
    s_buf_put_int (&payload, exp_s);
    s_buf_puts (&payload, ",\"jti\":");
    if (s_buf_put_json_string (&payload, jti))
        return NULL;
    if (gen >= 0) {
        s_buf_puts (&payload, ",\"gen\":");
        s_buf_put_int (&payload, gen);
    }
    s_buf_puts (&payload, "}");
    if (payload.overflow)
        return NULL;

    const size_t header_len = strlen (S_HEADER_JSON);
    const size_t header_b64 = sodium_base64_ENCODED_LEN (header_len, S_B64) - 1;
    const size_t payload_b64 = sodium_base64_ENCODED_LEN (payload.len, S_B64) - 1;
    const size_t mac_b64 = sodium_base64_ENCODED_LEN (S_MAC_LEN, S_B64) - 1;
    const size_t signed_len = header_b64 + 1 + payload_b64;
    char *token = (char *) malloc (signed_len + 1 + mac_b64 + 1);
    if (!token)
        return NULL;
    sodium_bin2base64 (token, header_b64 + 1, (const unsigned char *) S_HEADER_JSON, header_len,
                       S_B64);
    token[header_b64] = '.';
    sodium_bin2base64 (token + header_b64 + 1, payload_b64 + 1, (const unsigned char *) json,
                       payload.len, S_B64);
    token[signed_len] = '.';
    uint8_t mac[S_MAC_LEN];
    s_hmac (key, keylen, token, signed_len, mac);
    sodium_bin2base64 (token + signed_len + 1, mac_b64 + 1, mac, sizeof mac, S_B64);
    return token;
}

//  --------------------------------------------------------------------------
//  Verification

//  Strictly decodes one non-empty base64url part into out (room for cap
//  bytes). Returns 0 and sets *out_len, or -1.
static int
s_b64_decode (const char *part, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    if (len == 0)
        return -1;
    //  b64_end NULL: anything outside the alphabet ('=', whitespace) fails
    //  the whole decode instead of ending it early.
    if (sodium_base642bin (out, cap, part, len, NULL, out_len, NULL, S_B64) != 0)
        return -1;
    return *out_len > 0 ? 0 : -1;
}

//  Parses data as one JSON object, duplicate keys refused; NULL otherwise.
static json_t *
s_json_object_load (const uint8_t *data, size_t len)
{
    json_error_t error;
    json_t *json = json_loadb ((const char *) data, len, JSON_REJECT_DUPLICATES, &error);
    if (json && !json_is_object (json)) {
        json_decref (json);
        json = NULL;
    }
    return json;
}

static vw_jwt_status_t
s_header_check (json_t *header)
{
    json_t *alg = json_object_get (header, "alg");
    if (!json_is_string (alg) || json_string_length (alg) != 5 ||
        memcmp (json_string_value (alg), "HS256", 5) != 0)
        return VW_JWT_BAD_ALG;
    //  We understand no header extensions, so a critical one is fatal.
    if (json_object_get (header, "crit"))
        return VW_JWT_MALFORMED;
    json_t *typ = json_object_get (header, "typ");
    if (typ && (!json_is_string (typ) || json_string_length (typ) != 3 ||
                strcasecmp (json_string_value (typ), "JWT") != 0))
        return VW_JWT_MALFORMED;
    return VW_JWT_OK;
}

//  Copies a string claim of 1..max bytes (0..max if allow_empty) into dest.
static int
s_claim_string (json_t *value, char *dest, size_t max, bool allow_empty)
{
    if (!json_is_string (value))
        return -1;
    size_t len = json_string_length (value);
    if (len > max || (len == 0 && !allow_empty))
        return -1;
    memcpy (dest, json_string_value (value), len);
    dest[len] = '\0';
    return 0;
}

static vw_jwt_status_t
s_claims_parse (json_t *payload, vw_jwt_claims_t *claims)
{
    memset (claims, 0, sizeof *claims);
    json_t *exp = json_object_get (payload, "exp");
    if (!exp)
        return VW_JWT_MISSING_EXP;
    if (!json_is_integer (exp))
        return VW_JWT_BAD_CLAIMS;
    claims->exp = json_integer_value (exp);

    if (s_claim_string (json_object_get (payload, "sub"), claims->sub, S_SUB_MAX, false))
        return VW_JWT_BAD_CLAIMS;
    json_t *role = json_object_get (payload, "role");
    if (!json_is_string (role) ||
        !s_role_valid (json_string_value (role), json_string_length (role)))
        return VW_JWT_BAD_CLAIMS;
    strcpy (claims->role, json_string_value (role));

    json_t *iat = json_object_get (payload, "iat");
    if (iat) {
        if (!json_is_integer (iat))
            return VW_JWT_BAD_CLAIMS;
        claims->iat = json_integer_value (iat);
        claims->has_iat = true;
    }
    json_t *nbf = json_object_get (payload, "nbf");
    if (nbf) {
        if (!json_is_integer (nbf))
            return VW_JWT_BAD_CLAIMS;
        claims->nbf = json_integer_value (nbf);
        claims->has_nbf = true;
    }
    json_t *gen = json_object_get (payload, "gen");
    if (gen) {
        if (!json_is_integer (gen) || json_integer_value (gen) < 0)
            return VW_JWT_BAD_CLAIMS;
        claims->gen = json_integer_value (gen);
        claims->has_gen = true;
    }
    json_t *jti = json_object_get (payload, "jti");
    if (jti && s_claim_string (jti, claims->jti, S_JTI_MAX, true))
        return VW_JWT_BAD_CLAIMS;
    return VW_JWT_OK;
}

static vw_jwt_status_t
s_times_check (const vw_jwt_claims_t *claims, int64_t now_s, int64_t skew_s)
{
    int64_t skew = skew_s > 0 ? skew_s : 0;
    if (now_s >= s_add_sat (claims->exp, skew))
        return VW_JWT_EXPIRED;
    int64_t latest = s_add_sat (now_s, skew);
    if (claims->has_nbf && claims->nbf > latest)
        return VW_JWT_NOT_YET_VALID;
    if (claims->has_iat && claims->iat > latest)
        return VW_JWT_NOT_YET_VALID;
    return VW_JWT_OK;
}

vw_jwt_status_t
vw_jwt_verify (const uint8_t *key, size_t keylen, const char *token, int64_t now_s, int64_t skew_s,
               vw_jwt_claims_t *claims)
{
    if (!token || (!key && keylen > 0))
        return VW_JWT_MALFORMED;
    size_t len = strnlen (token, VW_JWT_MAX_TOKEN + 1);
    if (len == 0 || len > VW_JWT_MAX_TOKEN)
        return VW_JWT_MALFORMED;

    //  Exactly three parts: header.payload.signature
    const char *end = token + len;
    const char *dot1 = (const char *) memchr (token, '.', len);
    if (!dot1)
        return VW_JWT_MALFORMED;
    const char *dot2 = (const char *) memchr (dot1 + 1, '.', (size_t) (end - dot1 - 1));
    if (!dot2 || memchr (dot2 + 1, '.', (size_t) (end - dot2 - 1)))
        return VW_JWT_MALFORMED;
    const char *payload_part = dot1 + 1;
    const char *mac_part = dot2 + 1;
    size_t header_len = (size_t) (dot1 - token);
    size_t payload_len = (size_t) (dot2 - payload_part);
    size_t mac_len = (size_t) (end - mac_part);

    //  Decoded parts are shorter than the encoded ones: one scratch buffer
    //  the size of the token serves both.
    uint8_t *scratch = (uint8_t *) malloc (len);
    if (!scratch)
        return VW_JWT_MALFORMED;
    vw_jwt_status_t status = VW_JWT_MALFORMED;
    uint8_t mac_given[S_MAC_LEN], mac_expected[S_MAC_LEN];
    size_t mac_given_len, payload_bin_len;
    vw_jwt_claims_t parsed;
    json_t *payload = NULL;
    size_t header_bin_len;
    json_t *header = NULL;
    if (s_b64_decode (token, header_len, scratch, len, &header_bin_len))
        goto done;
    header = s_json_object_load (scratch, header_bin_len);
    if (!header)
        goto done;
    status = s_header_check (header);
    if (status != VW_JWT_OK)
        goto done;

    //  Encoding errors in any part are malformed, whatever the MAC says.
    status = VW_JWT_MALFORMED;
    if (s_b64_decode (payload_part, payload_len, scratch, len, &payload_bin_len) ||
        s_b64_decode (mac_part, mac_len, mac_given, sizeof mac_given, &mac_given_len) ||
        mac_given_len != S_MAC_LEN)
        goto done;
    s_hmac (key, keylen, token, (size_t) (dot2 - token), mac_expected);
    if (sodium_memcmp (mac_expected, mac_given, S_MAC_LEN) != 0) {
        status = VW_JWT_BAD_SIGNATURE;
        goto done;
    }

    //  Authentic from here on.
    payload = s_json_object_load (scratch, payload_bin_len);
    if (!payload)
        goto done;
    status = s_claims_parse (payload, &parsed);
    if (status == VW_JWT_OK)
        status = s_times_check (&parsed, now_s, skew_s);
    if (status == VW_JWT_OK && claims)
        *claims = parsed;
done:
    json_decref (payload);
    json_decref (header);
    free (scratch);
    return status;
}

//  --------------------------------------------------------------------------

const char *
vw_jwt_status_text (vw_jwt_status_t status)
{
    switch (status) {
        case VW_JWT_OK: return "token is valid";
        case VW_JWT_MALFORMED: return "token is malformed";
        case VW_JWT_BAD_ALG: return "token algorithm is not HS256";
        case VW_JWT_BAD_SIGNATURE: return "token signature is invalid";
        case VW_JWT_EXPIRED: return "token has expired";
        case VW_JWT_NOT_YET_VALID: return "token is not valid yet";
        case VW_JWT_MISSING_EXP: return "token has no expiry";
        case VW_JWT_BAD_CLAIMS: return "token claims are invalid";
    }
    return "token status is unknown";
}

const char *
vw_jwt_status_name (vw_jwt_status_t status)
{
    switch (status) {
        case VW_JWT_OK: return "ok";
        case VW_JWT_MALFORMED: return "malformed";
        case VW_JWT_BAD_ALG: return "bad_alg";
        case VW_JWT_BAD_SIGNATURE: return "bad_signature";
        case VW_JWT_EXPIRED: return "expired";
        case VW_JWT_NOT_YET_VALID: return "not_yet_valid";
        case VW_JWT_MISSING_EXP: return "missing_exp";
        case VW_JWT_BAD_CLAIMS: return "bad_claims";
    }
    return "unknown";
}
