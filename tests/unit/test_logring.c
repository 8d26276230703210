/*  vw_logring: the newest lines, oldest first, filtered by time, capped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "vw_logring.h"

static void
test_ring (void **state)
{
    vw_logring_t *ring = vw_logring_new (3, 8);
    assert_non_null (ring);
    json_t *lines = vw_logring_collect (ring, 0, 10);
    assert_int_equal (json_array_size (lines), 0);
    json_decref (lines);
    const char *texts[] = {"one", "two", "three", "four is long"};
    for (int i = 0; i < 4; i++)
        vw_logring_add (ring, 1000 + i, texts[i], strlen (texts[i]));
    //  The oldest went; the long line was cut to 8 bytes.
    lines = vw_logring_collect (ring, 0, 10);
    assert_int_equal (json_array_size (lines), 3);
    assert_string_equal (json_string_value (json_array_get (lines, 0)), "two");
    assert_string_equal (json_string_value (json_array_get (lines, 2)), "four is ");
    json_decref (lines);
    //  At most `lines`, the newest.
    lines = vw_logring_collect (ring, 0, 2);
    assert_int_equal (json_array_size (lines), 2);
    assert_string_equal (json_string_value (json_array_get (lines, 0)), "three");
    json_decref (lines);
    //  Since a time.
    lines = vw_logring_collect (ring, 1003, 10);
    assert_int_equal (json_array_size (lines), 1);
    json_decref (lines);
    lines = vw_logring_collect (ring, 5000, 10);
    assert_int_equal (json_array_size (lines), 0);
    json_decref (lines);
    //  A cut through a character stays valid UTF-8.
    vw_logring_add (ring, 2000, "1234567\xc3\xa9", 9);
    lines = vw_logring_collect (ring, 2000, 1);
    assert_string_equal (json_string_value (json_array_get (lines, 0)), "1234567?");
    json_decref (lines);
    vw_logring_destroy (&ring);
    assert_null (ring);
    vw_logring_destroy (&ring);
    assert_null (vw_logring_new (0, 10));
}

int
main (void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test (test_ring)};
    return cmocka_run_group_tests_name ("vw_logring", tests, NULL, NULL);
}
