/*  vw_text_sanitize: what error messages quote must stay valid JSON text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "vw_text.h"

static void
s_check (const char *in, const char *expect)
{
    char buf[64];
    snprintf (buf, sizeof buf, "%s", in);
    vw_text_sanitize (buf);
    assert_string_equal (buf, expect);
}

static void
test_cases (void **state)
{
    s_check ("plain ascii", "plain ascii");
    s_check ("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
             "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    s_check ("cut \xe2\x82", "cut ??");  //  half a character at the end
    s_check ("bad \xff\xfe x", "bad ?? x");
    s_check ("ctl \t\n\x1b\x7f.", "ctl ????.");
    s_check ("overlong \xc0\xaf \xe0\x80\xaf", "overlong ?? ???");
    s_check ("surrogate \xed\xa0\x80", "surrogate ???");
    s_check ("big \xf4\x90\x80\x80", "big ????");
    s_check ("", "");
    vw_text_sanitize (NULL);
}

static void
test_random_bytes_become_valid_json (void **state)
{
    srand (7);
    for (int round = 0; round < 20000; round++) {
        char buf[48];
        size_t len = (size_t) (rand () % 47);
        for (size_t i = 0; i < len; i++)
            buf[i] = (char) (1 + rand () % 255);
        buf[len] = 0;
        vw_text_sanitize (buf);
        json_t *s = json_string (buf);
        assert_non_null (s);
        json_decref (s);
    }
}

//  Program output keeps its lines and tabs; NULs and broken UTF-8 go.
static void
test_output (void **state)
{
    char buf[] = "line 1\n\tcaf\xc3\xa9\x00\xff end \xe2\x82";
    size_t size = sizeof buf - 1;
    vw_text_sanitize_output (buf, size);
    assert_memory_equal (buf, "line 1\n\tcaf\xc3\xa9?? end ??", size);
    srand (11);
    for (int round = 0; round < 20000; round++) {
        char bytes[48];
        size_t len = (size_t) (rand () % 47);
        for (size_t i = 0; i < len; i++)
            bytes[i] = (char) (rand () % 256);
        bytes[len] = 0;
        vw_text_sanitize_output (bytes, len);
        json_t *s = json_stringn (bytes, len);
        assert_non_null (s);
        assert_int_equal (strlen (bytes), len);
        json_decref (s);
    }
}

//  Every byte: the sixteen hex digits of both cases have their values,
//  everything else is -1.
static void
test_hex_digit (void **state)
{
    const char *lower = "0123456789abcdef", *upper = "0123456789ABCDEF";
    for (int c = 0; c < 256; c++) {
        const char *at = c ? strchr (lower, c) : NULL;
        const char *up = c ? strchr (upper, c) : NULL;
        int want = at ? (int) (at - lower) : up ? (int) (up - upper) : -1;
        assert_int_equal (vw_text_hex_digit (c), want);
    }
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_cases),
        cmocka_unit_test (test_random_bytes_become_valid_json),
        cmocka_unit_test (test_output),
        cmocka_unit_test (test_hex_digit),
    };
    return cmocka_run_group_tests_name ("vw_text", tests, NULL, NULL);
}
