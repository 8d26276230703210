/*  Agent tokens: randomness, shape, hashing, constant-time verification. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <sodium.h>
#include <string.h>

#include "vw_clock.h"
#include "vw_token.h"

static int
s_setup (void **state)
{
    return sodium_init () < 0 ? -1 : 0;
}

static void
test_token_shape_and_uniqueness (void **state)
{
    char seen[64][VW_TOKEN_TEXT_LEN + 1];
    for (int i = 0; i < 64; i++) {
        uint8_t hash[VW_TOKEN_HASH_BYTES];
        vw_token_new (seen[i], hash);
        assert_int_equal (strlen (seen[i]), VW_TOKEN_TEXT_LEN);
        //  base64url alphabet only: safe in headers, URLs and JSON.
        assert_int_equal (strspn (seen[i], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                           "0123456789-_"),
                          VW_TOKEN_TEXT_LEN);
        assert_true (vw_token_verify (seen[i], hash));
        for (int j = 0; j < i; j++)
            assert_string_not_equal (seen[i], seen[j]);
    }
}

static void
test_hash_is_blake2b_of_the_text (void **state)
{
    uint8_t hash[VW_TOKEN_HASH_BYTES], expect[VW_TOKEN_HASH_BYTES];
    vw_token_hash ("abc", hash);
    crypto_generichash (expect, sizeof expect, (const unsigned char *) "abc", 3, NULL, 0);
    assert_memory_equal (hash, expect, sizeof hash);
    //  The stored digest is not the token.
    char token[VW_TOKEN_TEXT_LEN + 1];
    vw_token_new (token, hash);
    assert_null (memmem (hash, sizeof hash, token, 8));
}

static void
test_verify_refuses_near_misses (void **state)
{
    char token[VW_TOKEN_TEXT_LEN + 1];
    uint8_t hash[VW_TOKEN_HASH_BYTES];
    vw_token_new (token, hash);
    char other[VW_TOKEN_TEXT_LEN + 2];
    for (int i = 0; i < VW_TOKEN_TEXT_LEN; i++) {
        memcpy (other, token, sizeof token);
        other[i] = other[i] == 'A' ? 'B' : 'A';
        assert_false (vw_token_verify (other, hash));
    }
    memcpy (other, token, sizeof token);
    other[VW_TOKEN_TEXT_LEN - 1] = 0;  //  truncated
    assert_false (vw_token_verify (other, hash));
    snprintf (other, sizeof other, "%sx", token);  //  extended
    assert_false (vw_token_verify (other, hash));
    assert_false (vw_token_verify ("", hash));
    assert_false (vw_token_verify (NULL, hash));
    assert_false (vw_token_verify (token, NULL));
}

static void
test_ids (void **state)
{
    char a[VW_ID_TEXT_LEN + 1], b[VW_ID_TEXT_LEN + 1];
    vw_id_new (a);
    vw_id_new (b);
    assert_int_equal (strlen (a), 32);
    assert_int_equal (strspn (a, "0123456789abcdef"), 32);
    assert_string_not_equal (a, b);
    //  Time-ordered: the first 12 hex digits are the wall clock in ms.
    int64_t now = 1764230000000;
    vw_clock_set_fake (&now);
    vw_id_new (a);
    now++;
    vw_id_new (b);
    vw_clock_set_fake (NULL);
    assert_memory_equal (a, "019ac44d6d80", 12);
    assert_memory_equal (b, "019ac44d6d81", 12);
    assert_true (strcmp (a, b) < 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_token_shape_and_uniqueness),
        cmocka_unit_test (test_hash_is_blake2b_of_the_text),
        cmocka_unit_test (test_verify_refuses_near_misses),
        cmocka_unit_test (test_ids),
    };
    return cmocka_run_group_tests_name ("vw_token", tests, s_setup, NULL);
}
