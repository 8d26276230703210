/*  vw_cmdpage: the packed rows of a commands_page, written by msgpack-c's
    packer and read back by the hand-written reader, including hostile
    input (the page may come over tcp). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "vw_cmdpage.h"

static vw_cmdpage_str_t
s_str (const char *text)
{
    return (vw_cmdpage_str_t){text, strlen (text)};
}

static bool
s_str_eq (vw_cmdpage_str_t s, const char *text)
{
    return s.len == strlen (text) && memcmp (s.ptr, text, s.len) == 0;
}

static void
s_assert_row_eq (const vw_cmdpage_row_t *a, const vw_cmdpage_row_t *b)
{
    assert_int_equal (a->command_id.len, b->command_id.len);
    assert_memory_equal (a->command_id.ptr, b->command_id.ptr, a->command_id.len);
    assert_int_equal (a->agent_id.len, b->agent_id.len);
    assert_memory_equal (a->agent_id.ptr, b->agent_id.ptr, a->agent_id.len);
    assert_int_equal (a->type.len, b->type.len);
    if (a->type.len)
        assert_memory_equal (a->type.ptr, b->type.ptr, a->type.len);
    assert_int_equal (a->payload.len, b->payload.len);
    if (a->payload.len)
        assert_memory_equal (a->payload.ptr, b->payload.ptr, a->payload.len);
    assert_int_equal (a->executing, b->executing);
    assert_int_equal (a->priority, b->priority);
    assert_int_equal (a->seq, b->seq);
    assert_int_equal (a->attempts, b->attempts);
    assert_int_equal (a->failures, b->failures);
    assert_int_equal (a->max_retries, b->max_retries);
    assert_int_equal (a->timeout_ms, b->timeout_ms);
    assert_int_equal (a->expires_at, b->expires_at);
    assert_int_equal (a->next_attempt_at, b->next_attempt_at);
}

static void
test_round_trip (void **state)
{
    //  Integers of every msgpack width, both signs; strings of every
    //  header size (fixstr, str8, str16).
    char *long_payload = malloc (70000);
    memset (long_payload, 'x', 69999);
    long_payload[0] = '"';
    long_payload[69998] = '"';
    long_payload[69999] = 0;
    char medium[200];
    memset (medium, 'a', sizeof medium - 1);
    medium[sizeof medium - 1] = 0;
    vw_cmdpage_row_t rows[] = {
        {s_str ("cmd-1"), s_str ("gw-01"), s_str ("ping"), s_str ("{}"), false, 0, 1, 0, 0, 3,
         30000, 1764230000000, 0},
        {s_str ("cmd-2"), s_str (medium), s_str ("exec"), s_str ("{\"cmd\":\"uptime\"}"), true, 2,
         INT64_MAX, 200, 70000, 10, 86400000, INT64_MAX - 1, 1764230000123},
        {s_str ("cmd-3"), s_str ("gw-ü"), s_str (""), s_str (long_payload), false, 1, 4294967296LL,
         -1, -33, -200, -40000, -5000000000LL, INT64_MIN},
    };
    size_t n = sizeof rows / sizeof rows[0];
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    for (size_t i = 0; i < n; i++)
        assert_int_equal (vw_cmdpage_pack (&sbuf, &rows[i]), 0);

    vw_cmdpage_reader_t reader;
    vw_cmdpage_reader_init (&reader, (const uint8_t *) sbuf.data, sbuf.size);
    vw_cmdpage_row_t row;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal (vw_cmdpage_next (&reader, &row), 1);
        s_assert_row_eq (&row, &rows[i]);
        //  Strings point into the page, not into copies
        assert_true (row.command_id.ptr >= sbuf.data && row.command_id.ptr < sbuf.data + sbuf.size);
    }
    assert_int_equal (vw_cmdpage_next (&reader, &row), 0);
    assert_int_equal (vw_cmdpage_next (&reader, &row), 0);
    msgpack_sbuffer_destroy (&sbuf);
    free (long_payload);

    //  An empty page
    vw_cmdpage_reader_init (&reader, NULL, 0);
    assert_int_equal (vw_cmdpage_next (&reader, &row), 0);
}

//  Writes a row by hand: the 13 known elements, then `extra` more.
static void
s_pack_raw (msgpack_sbuffer *sbuf, uint32_t elements, int extra_kind)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, sbuf, msgpack_sbuffer_write);
    msgpack_pack_array (&pk, elements);
    const char *strs[] = {"c-9", "gw-9", "ping", "{}"};
    for (int i = 0; i < 4 && (uint32_t) i < elements; i++) {
        msgpack_pack_str (&pk, strlen (strs[i]));
        msgpack_pack_str_body (&pk, strs[i], strlen (strs[i]));
    }
    if (elements > 4)
        msgpack_pack_true (&pk);
    for (uint32_t i = 5; i < elements && i < VW_CMDPAGE_FIELDS; i++)
        msgpack_pack_int64 (&pk, (int64_t) i);
    for (uint32_t i = VW_CMDPAGE_FIELDS; i < elements; i++) {
        if (extra_kind == 0)
            msgpack_pack_nil (&pk);
        else {
            //  Something nested a newer writer might add
            msgpack_pack_map (&pk, 1);
            msgpack_pack_str (&pk, 1);
            msgpack_pack_str_body (&pk, "k", 1);
            msgpack_pack_array (&pk, 2);
            msgpack_pack_double (&pk, 1.5);
            msgpack_pack_bin (&pk, 3);
            msgpack_pack_bin_body (&pk, "abc", 3);
        }
    }
}

static void
test_newer_and_shorter_rows (void **state)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    s_pack_raw (&sbuf, VW_CMDPAGE_FIELDS + 2, 0);
    s_pack_raw (&sbuf, VW_CMDPAGE_FIELDS + 3, 1);
    s_pack_raw (&sbuf, VW_CMDPAGE_FIELDS, 0);
    vw_cmdpage_reader_t reader;
    vw_cmdpage_reader_init (&reader, (const uint8_t *) sbuf.data, sbuf.size);
    vw_cmdpage_row_t row;
    for (int i = 0; i < 3; i++) {
        assert_int_equal (vw_cmdpage_next (&reader, &row), 1);
        assert_true (s_str_eq (row.command_id, "c-9"));
        assert_true (s_str_eq (row.payload, "{}"));
        assert_true (row.executing);
        assert_int_equal (row.priority, 5);
        assert_int_equal (row.next_attempt_at, 12);
    }
    assert_int_equal (vw_cmdpage_next (&reader, &row), 0);
    msgpack_sbuffer_destroy (&sbuf);

    //  A row shorter than this version's is refused, and stays refused
    msgpack_sbuffer_init (&sbuf);
    s_pack_raw (&sbuf, VW_CMDPAGE_FIELDS - 1, 0);
    vw_cmdpage_reader_init (&reader, (const uint8_t *) sbuf.data, sbuf.size);
    assert_int_equal (vw_cmdpage_next (&reader, &row), -1);
    assert_int_equal (vw_cmdpage_next (&reader, &row), -1);
    msgpack_sbuffer_destroy (&sbuf);
}

static void
test_hostile_input (void **state)
{
    vw_cmdpage_row_t good = {
        s_str ("cmd-1"), s_str ("gw-01"), s_str ("ping"), s_str ("{}"), true, 1, 77, 2, 1, 3,
        30000,           1764230000000,   1764230005000};
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    assert_int_equal (vw_cmdpage_pack (&sbuf, &good), 0);
    vw_cmdpage_reader_t reader;
    vw_cmdpage_row_t row;

    //  Every truncation is refused, never read past
    for (size_t len = 1; len < sbuf.size; len++) {
        uint8_t *copy = malloc (len);
        memcpy (copy, sbuf.data, len);
        vw_cmdpage_reader_init (&reader, copy, len);
        assert_int_equal (vw_cmdpage_next (&reader, &row), -1);
        free (copy);
    }
    //  Every single byte changed to every value: a row or a refusal, and
    //  whatever is read lies inside the buffer
    for (size_t at = 0; at < sbuf.size; at++)
        for (int value = 0; value < 256; value++) {
            uint8_t *copy = malloc (sbuf.size);
            memcpy (copy, sbuf.data, sbuf.size);
            copy[at] = (uint8_t) value;
            vw_cmdpage_reader_init (&reader, copy, sbuf.size);
            int rc;
            while ((rc = vw_cmdpage_next (&reader, &row)) == 1) {
                vw_cmdpage_str_t strs[] = {row.command_id, row.agent_id, row.type, row.payload};
                for (int i = 0; i < 4; i++) {
                    assert_true ((const uint8_t *) strs[i].ptr >= copy);
                    assert_true ((const uint8_t *) strs[i].ptr + strs[i].len <= copy + sbuf.size);
                    assert_null (memchr (strs[i].ptr, 0, strs[i].len));
                }
            }
            assert_true (rc == 0 || rc == -1);
            free (copy);
        }
    msgpack_sbuffer_destroy (&sbuf);

    //  Wrong types where strings, the flag and integers belong
    const uint8_t not_rows[][20] = {
        {0x9d, 0x01},                                                   //  int for command_id
        {0x9d, 0xa1, 'c', 0xa1, 'a', 0xa1, 't', 0xa2, '{', '}', 0xc0},  //  nil for executing
        {0x9d, 0xa1, 'c', 0xa1, 'a', 0xa1, 't', 0xa2, '{', '}', 0xc2, 0xca, 0, 0, 0, 0},  //  float
        {0x9d, 0xa1, 'c',  0xa1, 'a',  0xa1, 't',  0xa2, '{',  '}',
         0xc2, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},  //  uint64 beyond INT64_MAX
        {0x9d, 0xa2, 'c', 0x00},                                       //  embedded NUL in a string
        {0x81, 0xa1, 'k', 0x01},                                       //  a map, not a row
        {0xc1},                                                        //  reserved byte
    };
    const size_t lens[] = {2, 11, 16, 20, 4, 4, 1};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        vw_cmdpage_reader_init (&reader, not_rows[i], lens[i]);
        assert_int_equal (vw_cmdpage_next (&reader, &row), -1);
    }
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_round_trip),
        cmocka_unit_test (test_newer_and_shorter_rows),
        cmocka_unit_test (test_hostile_input),
    };
    return cmocka_run_group_tests_name ("vw_cmdpage", tests, NULL, NULL);
}
