/*  test_msg - the message catalogue and its msgpack codec (proto/vw_msg,
    with proto/vw_mpack as its first line of defence).

    The test expands vw_catalogue.h itself into a table of every field, so
    a message added to the catalogue is round-tripped and fuzzed here
    without touching this file. Hostile bodies are written byte by byte:
    the codec must answer -1 (or NULL), never crash, leak or over-read.
*/
#include "vw_msg.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  --------------------------------------------------------------------------
//  The catalogue, as the test sees it

typedef enum { T_INT, T_DBL, T_BOOL, T_STR, T_BIN } t_type_t;
#define T_TYPE_INT  T_INT
#define T_TYPE_DBL  T_DBL
#define T_TYPE_BOOL T_BOOL
#define T_TYPE_STR  T_STR
#define T_TYPE_BIN  T_BIN

typedef struct {
    vw_msg_id_t id;
    const char *msg;
    const char *name;
    t_type_t type;
    size_t offset;  //  from the start of vw_msg_t
} t_field_t;

#define X_MSG(name, doc)
#define X_F(msg, type, field, doc)                                                                 \
    {VW_MSG_ID_##msg, #msg, #field, T_TYPE_##type,                                                 \
     offsetof (vw_msg_t, msg) + offsetof (vw_##msg##_msg_t, field)},
#define X_END(name)
static const t_field_t s_fields[] = {VW_CATALOGUE (X_MSG, X_F, X_END)};
#undef X_MSG
#undef X_F
#undef X_END
#define S_NFIELDS (sizeof s_fields / sizeof s_fields[0])

typedef struct {
    vw_msg_id_t id;
    const char *name;
} t_msg_t;

#define X_MSG(name, doc) {VW_MSG_ID_##name, #name},
#define X_F(msg, type, field, doc)
#define X_END(name)
static const t_msg_t s_msgs[] = {VW_CATALOGUE (X_MSG, X_F, X_END)};
#undef X_MSG
#undef X_F
#undef X_END
#define S_NMSGS (sizeof s_msgs / sizeof s_msgs[0])

static void *
s_at (vw_msg_t *msg, const t_field_t *f)
{
    return (char *) msg + f->offset;
}

//  First field of a message of the given type, or NULL.
static const t_field_t *
s_field_of (vw_msg_id_t id, t_type_t type)
{
    for (size_t i = 0; i < S_NFIELDS; i++)
        if (s_fields[i].id == id && s_fields[i].type == type)
            return &s_fields[i];
    return NULL;
}

//  --------------------------------------------------------------------------
//  Values: each variant sets every field of a message

static const int64_t s_ints[] = {INT64_MIN,
                                 INT64_MAX,
                                 0,
                                 -1,
                                 1,
                                 127,
                                 128,
                                 -32,
                                 -33,
                                 255,
                                 256,
                                 -128,
                                 -129,
                                 65535,
                                 65536,
                                 -32768,
                                 -32769,
                                 4294967295LL,
                                 4294967296LL,
                                 -2147483648LL,
                                 -2147483649LL,
                                 INT64_MIN + 1,
                                 INT64_MAX - 1};
#define S_NINTS (sizeof s_ints / sizeof s_ints[0])

static const double s_dbls[] = {0.0, -0.0, 1.5, -2.25e300, 5e-324, INFINITY, -INFINITY, 3.14159};
#define S_NDBLS (sizeof s_dbls / sizeof s_dbls[0])

#define S_VARIANTS 48

//  Variant v: 0 = every string empty, 1 = every string absent (NULL),
//  2 = UTF-8 text, 3 = long text, others alternate; ints and doubles walk
//  their tables, bools alternate.
static void
s_fill (vw_msg_t *msg, int v)
{
    int k = 0;
    for (size_t i = 0; i < S_NFIELDS; i++) {
        const t_field_t *f = &s_fields[i];
        if (f->id != msg->id)
            continue;
        void *at = s_at (msg, f);
        switch (f->type) {
            case T_INT: *(int64_t *) at = s_ints[(size_t) (v + k) % S_NINTS]; break;
            case T_DBL: *(double *) at = s_dbls[(size_t) (v + k) % S_NDBLS]; break;
            case T_BOOL: *(bool *) at = (v + k) % 2 == 0; break;
            case T_STR: {
                char text[400];
                if (v == 0)
                    vw_msg_set_str ((char **) at, "");
                else if (v == 1)
                    vw_msg_set_str ((char **) at, NULL);
                else if (v == 2) {
                    snprintf (text, sizeof text, "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x9a\x80 %s",
                              f->name);
                    vw_msg_set_str ((char **) at, text);
                }
                else if (v == 3) {
                    memset (text, 'x', sizeof text - 1);
                    text[sizeof text - 1] = 0;  //  str16 on the wire
                    vw_msg_set_str ((char **) at, text);
                }
                else if ((v + k) % 3 == 0)
                    vw_msg_set_str ((char **) at, NULL);
                else {
                    snprintf (text, sizeof text, "%s.%s/%d \"q\" \\ \t", f->msg, f->name, v);
                    vw_msg_set_str ((char **) at, text);
                }
                break;
            }
            case T_BIN: {
                uint8_t bytes[40];
                for (size_t j = 0; j < sizeof bytes; j++)
                    bytes[j] = (uint8_t) (j * 37 + (size_t) v);
                vw_msg_set_bin ((vw_bytes_t *) at, bytes, (size_t) (v + k) % sizeof bytes);
                break;
            }
        }
        k++;
    }
}

//  Every field of a and b (same id) is equal.
static void
s_assert_same (vw_msg_t *a, vw_msg_t *b)
{
    assert_int_equal (a->id, b->id);
    for (size_t i = 0; i < S_NFIELDS; i++) {
        const t_field_t *f = &s_fields[i];
        if (f->id != a->id)
            continue;
        void *x = s_at (a, f), *y = s_at (b, f);
        switch (f->type) {
            case T_INT: assert_true (*(int64_t *) x == *(int64_t *) y); break;
            case T_DBL: assert_memory_equal (x, y, sizeof (double)); break;
            case T_BOOL: assert_int_equal (*(bool *) x, *(bool *) y); break;
            case T_STR: {
                const char *s = *(char **) x, *t = *(char **) y;
                if (!s || !t) {
                    if (s != t)
                        fail_msg ("%s.%s: '%s' vs '%s'", f->msg, f->name, s ? s : "(null)",
                                  t ? t : "(null)");
                }
                else
                    assert_string_equal (s, t);
                break;
            }
            case T_BIN: {
                const vw_bytes_t *p = (const vw_bytes_t *) x, *q = (const vw_bytes_t *) y;
                assert_int_equal (p->size, q->size);
                if (p->size)
                    assert_memory_equal (p->data, q->data, p->size);
                break;
            }
        }
    }
}

//  --------------------------------------------------------------------------
//  Building bodies and frames by hand

typedef struct {
    msgpack_sbuffer sbuf;
    msgpack_packer pk;
} s_pk_t;

static void
s_pk_init (s_pk_t *b)
{
    msgpack_sbuffer_init (&b->sbuf);
    msgpack_packer_init (&b->pk, &b->sbuf, msgpack_sbuffer_write);
}

static void
s_pk_str (s_pk_t *b, const char *s, size_t len)
{
    msgpack_pack_str (&b->pk, len);
    msgpack_pack_str_body (&b->pk, s, len);
}

static void
s_pk_cstr (s_pk_t *b, const char *s)
{
    s_pk_str (b, s, strlen (s));
}

static void
s_pk_done (s_pk_t *b)
{
    msgpack_sbuffer_destroy (&b->sbuf);
}

//  The valid body of `id` with every field set (variant 2).
static void
s_valid_body (vw_msg_id_t id, msgpack_sbuffer *sbuf)
{
    vw_msg_t *msg = vw_msg_new (id);
    assert_non_null (msg);
    s_fill (msg, 2);
    msgpack_sbuffer_init (sbuf);
    assert_int_equal (vw_msg_pack (msg, sbuf), 0);
    vw_msg_destroy (&msg);
}

//  Unpacks untrusted bytes into a fresh message of `id`; returns the rc.
static int
s_unpack (vw_msg_id_t id, const void *data, size_t size)
{
    vw_msg_t *msg = vw_msg_new (id);
    assert_non_null (msg);
    int rc = vw_msg_unpack (msg, (const uint8_t *) data, size);
    vw_msg_destroy (&msg);
    return rc;
}

//  [addr][name][rid][body] with explicit sizes (rid bytes are 1..n).
static zmsg_t *
s_frames (const void *addr, size_t addr_len, const char *name, size_t rid_len, const void *body,
          size_t body_len)
{
    uint8_t rid[16];
    for (size_t i = 0; i < sizeof rid; i++)
        rid[i] = (uint8_t) (i + 1);
    assert_true (rid_len <= sizeof rid);
    zmsg_t *zmsg = zmsg_new ();
    zmsg_addmem (zmsg, addr, addr_len);
    zmsg_addmem (zmsg, name, strlen (name));
    zmsg_addmem (zmsg, rid, rid_len);
    zmsg_addmem (zmsg, body, body_len);
    return zmsg;
}

static vw_msg_t *
s_decode (zmsg_t *zmsg)
{
    vw_msg_t *msg = vw_msg_decode (&zmsg);
    assert_null (zmsg);  //  consumed either way
    return msg;
}

static void
s_assert_rejected (zmsg_t *zmsg)
{
    vw_msg_t *msg = s_decode (zmsg);
    if (msg) {
        vw_msg_destroy (&msg);
        fail_msg ("decode accepted malformed frames");
    }
}

//  --------------------------------------------------------------------------
//  Names and ids

static void
test_names_and_ids (void **state)
{
    assert_int_equal (S_NMSGS, VW_MSG_COUNT - 1);
    for (size_t i = 0; i < S_NMSGS; i++) {
        assert_int_equal (s_msgs[i].id, (vw_msg_id_t) (i + 1));
        const char *name = vw_msg_name (s_msgs[i].id);
        assert_non_null (name);
        assert_string_equal (name, s_msgs[i].name);
        assert_int_equal (vw_msg_id_from_name (name, strlen (name)), s_msgs[i].id);
        //  The length is what counts, not a NUL.
        char padded[64];
        snprintf (padded, sizeof padded, "%sX", name);
        assert_int_equal (vw_msg_id_from_name (padded, strlen (name)), s_msgs[i].id);
        assert_int_equal (vw_msg_id_from_name (padded, strlen (padded)), VW_MSG_INVALID);
        assert_int_equal (vw_msg_id_from_name (name, strlen (name) - 1), VW_MSG_INVALID);
        assert_int_equal (vw_msg_id_from_name (name, strlen (name) + 1), VW_MSG_INVALID);
        //  Every message has at least one field.
        bool has_field = false;
        for (size_t j = 0; j < S_NFIELDS; j++)
            has_field |= s_fields[j].id == s_msgs[i].id;
        assert_true (has_field);
    }
    assert_null (vw_msg_name (VW_MSG_INVALID));
    assert_null (vw_msg_name (VW_MSG_COUNT));
    assert_null (vw_msg_name ((vw_msg_id_t) (VW_MSG_COUNT + 100)));
    const char *unknown[] = {"", "PING", "Ping", "pin", "pingg", " ping", "actor", "broker", "x"};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        assert_int_equal (vw_msg_id_from_name (unknown[i], strlen (unknown[i])), VW_MSG_INVALID);
    assert_int_equal (vw_msg_id_from_name ("ping\0", 5), VW_MSG_INVALID);
}

//  --------------------------------------------------------------------------
//  Round trips

static void
test_round_trip_every_message (void **state)
{
    const uint64_t rids[] = {0, 1, 0x0102030405060708ull, UINT64_MAX, 1ull << 63};
    const char *addrs[] = {"alice", "a", "0123456789012345678901234567890"};  //  31 = max
    int checked = 0;
    for (size_t m = 0; m < S_NMSGS; m++)
        for (int v = 0; v < S_VARIANTS; v++) {
            vw_msg_t *msg = vw_msg_new (s_msgs[m].id);
            assert_non_null (msg);
            s_fill (msg, v);
            msg->rid = rids[(size_t) v % 5];
            const char *addr = addrs[(size_t) v % 3];
            zmsg_t *zmsg = vw_msg_encode (msg, addr);
            assert_non_null (zmsg);
            //  The frames are as documented.
            assert_int_equal (zmsg_size (zmsg), 4);
            zframe_t *f = zmsg_first (zmsg);
            assert_true (zframe_streq (f, addr));
            f = zmsg_next (zmsg);
            assert_true (zframe_streq (f, s_msgs[m].name));
            f = zmsg_next (zmsg);
            assert_int_equal (zframe_size (f), 8);
            for (int i = 0; i < 8; i++)
                assert_int_equal (zframe_data (f)[i], (uint8_t) (msg->rid >> (56 - 8 * i)));

            vw_msg_t *copy = s_decode (zmsg);
            assert_non_null (copy);
            assert_string_equal (copy->peer, addr);
            assert_true (copy->rid == msg->rid);
            s_assert_same (msg, copy);
            vw_msg_destroy (&copy);

            //  pack/unpack directly, too.
            msgpack_sbuffer sbuf;
            msgpack_sbuffer_init (&sbuf);
            assert_int_equal (vw_msg_pack (msg, &sbuf), 0);
            copy = vw_msg_new (msg->id);
            assert_int_equal (vw_msg_unpack (copy, (const uint8_t *) sbuf.data, sbuf.size), 0);
            s_assert_same (msg, copy);
            vw_msg_destroy (&copy);
            msgpack_sbuffer_destroy (&sbuf);
            vw_msg_destroy (&msg);
            assert_null (msg);
            vw_msg_destroy (&msg);  //  safe twice
            checked++;
        }
    assert_int_equal (checked, (int) S_NMSGS * S_VARIANTS);
}

//  A msgpack map header of n entries: fixmap up to 15, map 16 above.
static void
s_assert_map_header (const msgpack_sbuffer *sbuf, size_t n)
{
    const uint8_t *b = (const uint8_t *) sbuf->data;
    assert_true (sbuf->size >= 1);
    if (n <= 15)
        assert_int_equal (b[0], 0x80 | n);
    else {
        assert_true (sbuf->size >= 3);
        assert_int_equal (b[0], 0xde);
        assert_int_equal ((size_t) b[1] << 8 | b[2], n);
    }
}

static void
test_absent_and_empty_strings (void **state)
{
    //  Absent strings are omitted from the body and decode as NULL; empty
    //  strings travel and decode as "".
    for (size_t m = 0; m < S_NMSGS; m++) {
        vw_msg_t *msg = vw_msg_new (s_msgs[m].id);
        size_t nstr = 0, nfields = 0;
        for (size_t i = 0; i < S_NFIELDS; i++)
            if (s_fields[i].id == msg->id) {
                nfields++;
                nstr += s_fields[i].type == T_STR || s_fields[i].type == T_BIN;
            }
        msgpack_sbuffer sbuf;
        msgpack_sbuffer_init (&sbuf);
        assert_int_equal (vw_msg_pack (msg, &sbuf), 0);
        //  A map whose size counts only the non-string fields.
        s_assert_map_header (&sbuf, nfields - nstr);
        vw_msg_t *copy = vw_msg_new (msg->id);
        assert_int_equal (vw_msg_unpack (copy, (const uint8_t *) sbuf.data, sbuf.size), 0);
        for (size_t i = 0; i < S_NFIELDS; i++)
            if (s_fields[i].id == msg->id && s_fields[i].type == T_STR)
                assert_null (*(char **) s_at (copy, &s_fields[i]));
        vw_msg_destroy (&copy);
        msgpack_sbuffer_destroy (&sbuf);

        s_fill (msg, 0);
        //  Every field travels now, but a byte string s_fill left empty.
        size_t nempty = 0;
        for (size_t i = 0; i < S_NFIELDS; i++)
            if (s_fields[i].id == msg->id && s_fields[i].type == T_BIN)
                nempty += ((vw_bytes_t *) s_at (msg, &s_fields[i]))->size == 0;
        msgpack_sbuffer_init (&sbuf);
        assert_int_equal (vw_msg_pack (msg, &sbuf), 0);
        s_assert_map_header (&sbuf, nfields - nempty);
        copy = vw_msg_new (msg->id);
        assert_int_equal (vw_msg_unpack (copy, (const uint8_t *) sbuf.data, sbuf.size), 0);
        for (size_t i = 0; i < S_NFIELDS; i++)
            if (s_fields[i].id == msg->id && s_fields[i].type == T_STR) {
                const char *s = *(char **) s_at (copy, &s_fields[i]);
                assert_non_null (s);
                assert_string_equal (s, "");
            }
        vw_msg_destroy (&copy);
        msgpack_sbuffer_destroy (&sbuf);
        vw_msg_destroy (&msg);
    }
}

static void
test_int_encodings (void **state)
{
    //  Every msgpack integer encoding of a value decodes to that value.
    const t_field_t *f = s_field_of (VW_MSG_ID_ping, T_INT);
    assert_non_null (f);
    struct {
        const char *hex;
        int64_t want;
    } cases[] = {
        {"05", 5},
        {"e0", -32},
        {"ff", -1},
        {"cc ff", 255},
        {"cd ff ff", 65535},
        {"ce ff ff ff ff", 4294967295LL},
        {"cf 7f ff ff ff ff ff ff ff", INT64_MAX},
        {"d0 80", -128},
        {"d1 80 00", -32768},
        {"d2 80 00 00 00", -2147483648LL},
        {"d3 80 00 00 00 00 00 00 00", INT64_MIN},
        {"d3 00 00 00 00 00 00 00 07", 7},  //  a signed encoding of a positive value
        {"d0 05", 5},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint8_t body[32] = {0x81, 0xa7, 's', 'e', 'n', 't', '_', 'm', 's'};
        size_t n = 9;
        for (const char *p = cases[c].hex; *p;) {
            unsigned int byte;
            int used;
            if (sscanf (p, " %2x%n", &byte, &used) != 1)
                break;
            body[n++] = (uint8_t) byte;
            p += used;
        }
        vw_msg_t *msg = vw_msg_new (VW_MSG_ID_ping);
        assert_int_equal (vw_msg_unpack (msg, body, n), 0);
        assert_true (*(int64_t *) s_at (msg, f) == cases[c].want);
        vw_msg_destroy (&msg);
    }
}

static void
test_unknown_keys_ignored (void **state)
{
    s_pk_t b;
    s_pk_init (&b);
    msgpack_pack_map (&b.pk, 6);
    s_pk_cstr (&b, "zzz");
    msgpack_pack_array (&b.pk, 3);
    msgpack_pack_int (&b.pk, 1);
    msgpack_pack_nil (&b.pk);
    msgpack_pack_map (&b.pk, 1);
    s_pk_cstr (&b, "sent_ms");  //  a known name, nested: not a field
    s_pk_cstr (&b, "not an int");
    s_pk_cstr (&b, "actor");  //  a field of pong, not of ping
    msgpack_pack_true (&b.pk);
    s_pk_cstr (&b, "sent_ms");
    msgpack_pack_int64 (&b.pk, -42);
    s_pk_cstr (&b, "");
    msgpack_pack_bin (&b.pk, 3);
    msgpack_pack_bin_body (&b.pk, "\0\1\2", 3);
    s_pk_cstr (&b, "sent_ms_");
    msgpack_pack_double (&b.pk, 1.5);
    s_pk_cstr (&b, "SENT_MS");
    msgpack_pack_false (&b.pk);

    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_ping);
    assert_int_equal (vw_msg_unpack (msg, (const uint8_t *) b.sbuf.data, b.sbuf.size), 0);
    assert_true (msg->ping.sent_ms == -42);
    vw_msg_destroy (&msg);
    s_pk_done (&b);

    //  A missing field decodes as zero; an empty map is a valid body.
    const uint8_t empty[] = {0x80};
    for (size_t m = 0; m < S_NMSGS; m++)
        assert_int_equal (s_unpack (s_msgs[m].id, empty, sizeof empty), 0);

    //  A repeated key: the last value wins, the first is freed (ASan checks).
    s_pk_init (&b);
    msgpack_pack_map (&b.pk, 4);
    s_pk_cstr (&b, "actor");
    s_pk_cstr (&b, "first");
    s_pk_cstr (&b, "actor");
    s_pk_cstr (&b, "second");
    s_pk_cstr (&b, "detail");
    s_pk_cstr (&b, "gone");
    s_pk_cstr (&b, "detail");
    msgpack_pack_nil (&b.pk);  //  nil clears a string: absent
    msg = vw_msg_new (VW_MSG_ID_pong);
    assert_int_equal (vw_msg_unpack (msg, (const uint8_t *) b.sbuf.data, b.sbuf.size), 0);
    assert_string_equal (msg->pong.actor, "second");
    assert_null (msg->pong.detail);
    vw_msg_destroy (&msg);
    s_pk_done (&b);
}

//  --------------------------------------------------------------------------
//  Frames that decode must refuse

static void
test_decode_rejects_bad_frames (void **state)
{
    msgpack_sbuffer body;
    s_valid_body (VW_MSG_ID_pong, &body);

    //  Control: the well-formed frames decode.
    vw_msg_t *msg = s_decode (s_frames ("alice", 5, "pong", 8, body.data, body.size));
    assert_non_null (msg);
    assert_string_equal (msg->peer, "alice");
    assert_true (msg->rid == 0x0102030405060708ull);
    vw_msg_destroy (&msg);

    //  No message at all, and every wrong frame count.
    zmsg_t *none = NULL;
    assert_null (vw_msg_decode (&none));
    for (int n = 0; n <= 7; n++) {
        if (n == 4)
            continue;
        zmsg_t *zmsg = zmsg_new ();
        const char *parts[] = {"alice", "pong", "12345678", NULL};
        for (int i = 0; i < n; i++)
            if (i < 3)
                zmsg_addstr (zmsg, parts[i]);
            else
                zmsg_addmem (zmsg, body.data, body.size);
        s_assert_rejected (zmsg);
    }

    //  Address: empty, VW_ADDR_MAX and longer; VW_ADDR_MAX - 1 is fine.
    char addr[VW_ADDR_MAX + 8];
    memset (addr, 'a', sizeof addr);
    s_assert_rejected (s_frames ("", 0, "pong", 8, body.data, body.size));
    s_assert_rejected (s_frames (addr, VW_ADDR_MAX, "pong", 8, body.data, body.size));
    s_assert_rejected (s_frames (addr, VW_ADDR_MAX + 8, "pong", 8, body.data, body.size));
    msg = s_decode (s_frames (addr, VW_ADDR_MAX - 1, "pong", 8, body.data, body.size));
    assert_non_null (msg);
    assert_int_equal (strlen (msg->peer), VW_ADDR_MAX - 1);
    vw_msg_destroy (&msg);

    //  rid: exactly 8 bytes.
    const size_t rid_lens[] = {0, 1, 7, 9, 16};
    for (size_t i = 0; i < sizeof rid_lens / sizeof rid_lens[0]; i++)
        s_assert_rejected (s_frames ("alice", 5, "pong", rid_lens[i], body.data, body.size));

    //  Unknown message names.
    const char *names[] = {"", "nope", "PONG", "pong ", "po"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        s_assert_rejected (s_frames ("alice", 5, names[i], 8, body.data, body.size));

    //  A valid body under another message's name whose fields clash in type:
    //  pong's "sent_ms" is an INT, and error has no INT; use a ping body
    //  with a string sent_ms instead.
    s_pk_t b;
    s_pk_init (&b);
    msgpack_pack_map (&b.pk, 1);
    s_pk_cstr (&b, "sent_ms");
    s_pk_cstr (&b, "12");
    s_assert_rejected (s_frames ("alice", 5, "ping", 8, b.sbuf.data, b.sbuf.size));
    s_pk_done (&b);

    //  Empty body and trailing bytes.
    s_assert_rejected (s_frames ("alice", 5, "pong", 8, "", 0));
    uint8_t *longer = (uint8_t *) malloc (body.size * 2);
    memcpy (longer, body.data, body.size);
    longer[body.size] = 0xc0;
    s_assert_rejected (s_frames ("alice", 5, "pong", 8, longer, body.size + 1));
    memcpy (longer + body.size, body.data, body.size);
    s_assert_rejected (s_frames ("alice", 5, "pong", 8, longer, body.size * 2));
    free (longer);

    msgpack_sbuffer_destroy (&body);
}

//  Hex bytes (spaces allowed) -> buffer; returns the length.
static size_t
s_hex (const char *hex, uint8_t *out, size_t max)
{
    size_t n = 0;
    for (const char *p = hex; *p;) {
        unsigned int byte;
        int used;
        if (sscanf (p, " %2x%n", &byte, &used) != 1)
            break;
        assert_true (n < max);
        out[n++] = (uint8_t) byte;
        p += used;
    }
    return n;
}

static void
test_unpack_rejects_bad_bodies (void **state)
{
    //  Bodies for ping {sent_ms: INT} and pong {actor: STR, healthy: BOOL, ...}.
    struct {
        vw_msg_id_t id;
        const char *hex;
        const char *why;
    } cases[] = {
        {VW_MSG_ID_ping, "", "empty"},
        {VW_MSG_ID_ping, "c0", "nil, not a map"},
        {VW_MSG_ID_ping, "05", "int, not a map"},
        {VW_MSG_ID_ping, "90", "empty array, not a map"},
        {VW_MSG_ID_ping, "91 80", "array holding a map"},
        {VW_MSG_ID_ping, "a4 70 69 6e 67", "string, not a map"},
        {VW_MSG_ID_ping, "c4 00", "bin, not a map"},
        {VW_MSG_ID_ping, "c3", "bool, not a map"},
        {VW_MSG_ID_ping, "81 01 02", "int key"},
        {VW_MSG_ID_ping, "81 c0 02", "nil key"},
        {VW_MSG_ID_ping, "82 a7 73 65 6e 74 5f 6d 73 01 02 03", "string key then int key"},
        {VW_MSG_ID_ping, "81 c4 07 73 65 6e 74 5f 6d 73 05", "bin key spelling a field"},
        {VW_MSG_ID_ping, "81 91 a1 78 01", "array key"},
        {VW_MSG_ID_ping, "81 a7 73 65 6e 74 5f 6d 73 a1 35", "INT field given a string"},
        {VW_MSG_ID_ping, "81 a7 73 65 6e 74 5f 6d 73 c3", "INT field given a bool"},
        {VW_MSG_ID_ping, "81 a7 73 65 6e 74 5f 6d 73 c0", "INT field given nil"},
        {VW_MSG_ID_ping, "81 a7 73 65 6e 74 5f 6d 73 cb 3f f8 00 00 00 00 00 00",
         "INT field given a double"},
        {VW_MSG_ID_ping, "81 a7 73 65 6e 74 5f 6d 73 ca 3f c0 00 00", "INT field given a float"},
        {VW_MSG_ID_ping, "81 a7 73 65 6e 74 5f 6d 73 90", "INT field given an array"},
        {VW_MSG_ID_ping, "81 a7 73 65 6e 74 5f 6d 73 80", "INT field given a map"},
        {VW_MSG_ID_ping, "81 a7 73 65 6e 74 5f 6d 73 c4 01 05", "INT field given bin"},
        {VW_MSG_ID_ping, "81 a7 73 65 6e 74 5f 6d 73 d4 01 05", "INT field given ext"},
        {VW_MSG_ID_ping, "81 a7 73 65 6e 74 5f 6d 73 cf 80 00 00 00 00 00 00 00",
         "INT field given INT64_MAX + 1"},
        {VW_MSG_ID_ping, "81 a7 73 65 6e 74 5f 6d 73 cf ff ff ff ff ff ff ff ff",
         "INT field given UINT64_MAX"},
        {VW_MSG_ID_pong, "81 a5 61 63 74 6f 72 05", "STR field given an int"},
        {VW_MSG_ID_pong, "81 a5 61 63 74 6f 72 c3", "STR field given a bool"},
        {VW_MSG_ID_pong, "81 a5 61 63 74 6f 72 c4 01 61", "STR field given bin"},
        {VW_MSG_ID_pong, "81 a5 61 63 74 6f 72 91 a1 61", "STR field given an array"},
        {VW_MSG_ID_pong, "81 a5 61 63 74 6f 72 a3 61 00 62", "STR field with an embedded NUL"},
        {VW_MSG_ID_pong, "81 a5 61 63 74 6f 72 a1 00", "STR field that is one NUL"},
        {VW_MSG_ID_pong, "81 a5 61 63 74 6f 72 d9 02 00 61", "str8 with a leading NUL"},
        {VW_MSG_ID_pong, "81 a7 68 65 61 6c 74 68 79 01", "BOOL field given 1"},
        {VW_MSG_ID_pong, "81 a7 68 65 61 6c 74 68 79 00", "BOOL field given 0"},
        {VW_MSG_ID_pong, "81 a7 68 65 61 6c 74 68 79 c0", "BOOL field given nil"},
        {VW_MSG_ID_pong, "81 a7 68 65 61 6c 74 68 79 a4 74 72 75 65", "BOOL field given a string"},
        {VW_MSG_ID_ping, "81 a7 73 65 6e 74 5f 6d 73 c1", "reserved byte 0xc1"},
        {VW_MSG_ID_ping, "c1", "reserved byte 0xc1 alone"},
        {VW_MSG_ID_ping, "df ff ff ff ff", "map32 claiming 2^32-1 pairs"},
        {VW_MSG_ID_ping, "de ff ff a1 61", "map16 claiming more pairs than bytes"},
        {VW_MSG_ID_ping, "81 a1 78 dd ff ff ff ff", "array32 value claiming 2^32-1 items"},
        {VW_MSG_ID_ping, "81 a1 78 db ff ff ff ff", "str32 value longer than the body"},
        {VW_MSG_ID_ping, "81 a1 78 c6 ff ff ff ff", "bin32 value longer than the body"},
        {VW_MSG_ID_ping, "81 a1 78 c9 ff ff ff ff 01", "ext32 value longer than the body"},
        {VW_MSG_ID_ping, "81 a7 73 65 6e 74 5f 6d 73 05 c0", "trailing nil"},
        {VW_MSG_ID_ping, "80 80", "trailing map"},
        {VW_MSG_ID_ping, "80 00", "trailing zero byte"},
        {VW_MSG_ID_ping, "82 a7 73 65 6e 74 5f 6d 73 05", "map with one pair missing"},
        {VW_MSG_ID_ping, "81 a1 78 91 91 91 91 91 91 91 91 01", "nesting too deep"},
        {VW_MSG_ID_ping, "81 a1 78 81 a1 79 81 a1 7a 81 a1 77 91 01", "maps nested too deep"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint8_t body[64];
        size_t n = s_hex (cases[c].hex, body, sizeof body);
        if (s_unpack (cases[c].id, n ? body : (const uint8_t *) "", n) != -1)
            fail_msg ("accepted: %s", cases[c].why);
        //  And through decode, with otherwise valid frames.
        s_assert_rejected (s_frames ("alice", 5, vw_msg_name (cases[c].id), 8, body, n));
    }

    //  Nesting within the limit in an unknown key is fine.
    uint8_t body[64];
    size_t n = s_hex ("81 a1 78 91 91 91 01", body, sizeof body);
    assert_int_equal (s_unpack (VW_MSG_ID_ping, body, n), 0);
    //  Empty containers nest as deep as they like: they hold nothing.
    n = s_hex ("81 a1 78 91 91 91 90", body, sizeof body);
    assert_int_equal (s_unpack (VW_MSG_ID_ping, body, n), 0);
}

static void
test_unpack_rejects_every_truncation (void **state)
{
    for (size_t m = 0; m < S_NMSGS; m++)
        for (int v = 0; v < 8; v++) {
            vw_msg_t *msg = vw_msg_new (s_msgs[m].id);
            s_fill (msg, v);
            msgpack_sbuffer sbuf;
            msgpack_sbuffer_init (&sbuf);
            assert_int_equal (vw_msg_pack (msg, &sbuf), 0);
            vw_msg_destroy (&msg);
            assert_int_equal (s_unpack (s_msgs[m].id, sbuf.data, sbuf.size), 0);
            for (size_t len = 0; len < sbuf.size; len++) {
                //  An exact-size copy, so ASan sees any over-read.
                uint8_t *cut = (uint8_t *) malloc (len ? len : 1);
                memcpy (cut, sbuf.data, len);
                if (s_unpack (s_msgs[m].id, cut, len) != -1)
                    fail_msg ("%s: accepted a body cut to %zu of %zu bytes", s_msgs[m].name, len,
                              sbuf.size);
                if (len % 7 == 0)
                    s_assert_rejected (s_frames ("bob", 3, s_msgs[m].name, 8, cut, len));
                free (cut);
            }
            msgpack_sbuffer_destroy (&sbuf);
        }
}

static void
test_body_size_limit (void **state)
{
    //  One string field holding a value just over the limit: refused before
    //  any parsing; a large body under the limit is fine.
    const t_field_t *f = s_field_of (VW_MSG_ID_event, T_STR);
    assert_non_null (f);
    size_t nlen = strlen (f->name);
    size_t header = 1 + 1 + nlen + 5;  //  fixmap, fixstr name, str32 header
    size_t sizes[] = {(size_t) 1 << 20, VW_MSG_MAX_BODY - header, VW_MSG_MAX_BODY - header + 1};
    int want[] = {0, 0, -1};
    for (int i = 0; i < 3; i++) {
        size_t len = sizes[i];
        size_t total = header + len;
        uint8_t *body = (uint8_t *) malloc (total);
        assert_non_null (body);
        uint8_t *p = body;
        *p++ = 0x81;
        *p++ = (uint8_t) (0xa0 | nlen);
        memcpy (p, f->name, nlen);
        p += nlen;
        *p++ = 0xdb;
        for (int s = 3; s >= 0; s--)
            *p++ = (uint8_t) (len >> (8 * s));
        memset (p, 'j', len);
        assert_int_equal (s_unpack (VW_MSG_ID_event, body, total), want[i]);
        free (body);
    }
}

//  --------------------------------------------------------------------------
//  Randomised: random bodies and mutations of valid ones

static uint64_t s_rng = 0x9e3779b97f4a7c15ull;

static uint64_t
s_rand (void)
{
    s_rng ^= s_rng >> 12;
    s_rng ^= s_rng << 25;
    s_rng ^= s_rng >> 27;
    return s_rng * 0x2545f4914f6cdd1dull;
}

static size_t
s_below (size_t n)
{
    return (size_t) (s_rand () % n);
}

//  Bytes msgpack treats specially; mutations favour them.
static const uint8_t s_magic[] = {0x00, 0x01, 0x7f, 0x80, 0x81, 0x8f, 0x90, 0x9f, 0xa0,
                                  0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc6, 0xc7, 0xc9,
                                  0xca, 0xcb, 0xcc, 0xcf, 0xd0, 0xd3, 0xd4, 0xd8, 0xd9,
                                  0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff};

static uint8_t
s_byte (void)
{
    return s_below (2) ? s_magic[s_below (sizeof s_magic)] : (uint8_t) s_rand ();
}

//  Unpacks untrusted bytes; if accepted, the result must survive its own
//  round trip.
static int
s_fuzz_one (vw_msg_id_t id, const uint8_t *data, size_t size)
{
    vw_msg_t *msg = vw_msg_new (id);
    int rc = vw_msg_unpack (msg, data, size);
    if (rc != 0 && rc != -1)
        fail_msg ("vw_msg_unpack returned %d", rc);
    if (rc == 0) {
        msgpack_sbuffer sbuf;
        msgpack_sbuffer_init (&sbuf);
        assert_int_equal (vw_msg_pack (msg, &sbuf), 0);
        vw_msg_t *again = vw_msg_new (id);
        assert_int_equal (vw_msg_unpack (again, (const uint8_t *) sbuf.data, sbuf.size), 0);
        s_assert_same (msg, again);
        vw_msg_destroy (&again);
        msgpack_sbuffer_destroy (&sbuf);
    }
    vw_msg_destroy (&msg);
    return rc;
}

//  A random msgpack value: any type, sometimes nested.
static void
s_gen_value (msgpack_packer *pk, int depth)
{
    switch (s_below (depth < 4 ? 14 : 12)) {
        case 0: msgpack_pack_nil (pk); break;
        case 1: s_below (2) ? msgpack_pack_true (pk) : msgpack_pack_false (pk); break;
        case 2: msgpack_pack_int64 (pk, (int64_t) s_rand ()); break;
        case 3: msgpack_pack_uint64 (pk, s_rand ()); break;
        case 4: msgpack_pack_int64 (pk, (int64_t) s_below (300) - 150); break;
        case 5: msgpack_pack_double (pk, (double) (int64_t) s_rand () / 1e6); break;
        case 6: msgpack_pack_float (pk, (float) s_below (1000) / 8.0f); break;
        case 7:
        case 8: {
            char text[24];
            size_t len = s_below (sizeof text);
            for (size_t i = 0; i < len; i++)
                text[i] = s_below (16) ? (char) ('a' + s_below (26)) : (char) s_byte ();
            msgpack_pack_str (pk, len);
            msgpack_pack_str_body (pk, text, len);
            break;
        }
        case 9: {
            uint8_t bytes[8];
            size_t len = s_below (sizeof bytes);
            for (size_t i = 0; i < len; i++)
                bytes[i] = s_byte ();
            msgpack_pack_bin (pk, len);
            msgpack_pack_bin_body (pk, bytes, len);
            break;
        }
        case 10: msgpack_pack_ext_with_body (pk, "\1\2\3\4", 4, 1); break;
        case 11: msgpack_pack_str_with_body (pk, "", 0); break;
        case 12: {
            size_t n = s_below (4);
            msgpack_pack_array (pk, n);
            for (size_t i = 0; i < n; i++)
                s_gen_value (pk, depth + 1);
            break;
        }
        case 13: {
            size_t n = s_below (4);
            msgpack_pack_map (pk, n);
            for (size_t i = 0; i < n; i++) {
                s_gen_value (pk, depth + 1);
                s_gen_value (pk, depth + 1);
            }
            break;
        }
    }
}

//  A map whose keys are mostly field names (of any message) with values of
//  random types, so the per-type checks of every field are exercised.
static void
s_gen_body (msgpack_sbuffer *sbuf)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, sbuf, msgpack_sbuffer_write);
    size_t n = s_below (6);
    msgpack_pack_map (&pk, n);
    for (size_t i = 0; i < n; i++) {
        if (s_below (8)) {
            const char *key = s_fields[s_below (S_NFIELDS)].name;
            msgpack_pack_str_with_body (&pk, key, strlen (key));
        }
        else
            s_gen_value (&pk, 1);
        s_gen_value (&pk, 1);
    }
}

//  Untrusted input is copied to the very end of a heap block, so ASan sees
//  any read past its last byte.
typedef struct {
    uint8_t *block;
    size_t size;
} s_tail_t;

static const uint8_t *
s_tail (s_tail_t *t, const uint8_t *data, size_t len)
{
    assert_true (len <= t->size);
    memcpy (t->block + t->size - len, data, len);
    return t->block + t->size - len;
}

static void
test_random_bodies (void **state)
{
    //  20,000 random bodies, each decoded as the next message id in turn,
    //  so every id sees a share (bytes are mostly id-agnostic; the mutations
    //  below give every id its own 20,000).
    enum { N = 20000 };
    uint8_t buf[512];
    s_tail_t tail = {(uint8_t *) malloc (sizeof buf), sizeof buf};
    int accepted = 0;
    for (int i = 0; i < N; i++) {
        size_t len = s_below (97);
        for (size_t j = 0; j < len; j++)
            buf[j] = s_byte ();
        //  Some start as a small map, to get past the first check; some
        //  are well-formed maps of random keys and values.
        if (len && s_below (3) == 0)
            buf[0] = (uint8_t) (0x80 | s_below (4));
        else if (s_below (2)) {
            msgpack_sbuffer sbuf;
            msgpack_sbuffer_init (&sbuf);
            s_gen_body (&sbuf);
            len = sbuf.size < sizeof buf ? sbuf.size : sizeof buf;
            memcpy (buf, sbuf.data, len);
            msgpack_sbuffer_destroy (&sbuf);
        }
        vw_msg_id_t id = s_msgs[(size_t) i % S_NMSGS].id;
        accepted += s_fuzz_one (id, s_tail (&tail, buf, len), len) == 0;
    }
    free (tail.block);
    print_message ("random:  %5d of %d accepted over %zu message ids\n", accepted, N, S_NMSGS);
}

static void
test_mutated_bodies (void **state)
{
    enum { N = 20000 };
    uint8_t buf[2048];
    s_tail_t tail = {(uint8_t *) malloc (sizeof buf), sizeof buf};
    for (size_t m = 0; m < S_NMSGS; m++) {
        int accepted = 0;
        //  Seeds: the message with its fields in several variants.
        msgpack_sbuffer seeds[4];
        for (int v = 0; v < 4; v++) {
            vw_msg_t *msg = vw_msg_new (s_msgs[m].id);
            s_fill (msg, v == 3 ? 5 : v);
            msgpack_sbuffer_init (&seeds[v]);
            assert_int_equal (vw_msg_pack (msg, &seeds[v]), 0);
            //  Room for the edits below (which never grow a body past buf).
            assert_true (seeds[v].size + 4 <= sizeof buf);
            vw_msg_destroy (&msg);
        }
        for (int i = 0; i < N; i++) {
            const msgpack_sbuffer *seed = &seeds[s_below (4)];
            size_t len = seed->size;
            memcpy (buf, seed->data, len);
            int edits = 1 + (int) s_below (4);
            for (int e = 0; e < edits; e++) {
                size_t at = len ? s_below (len) : 0;
                switch (s_below (6)) {
                    case 0:  //  flip a bit
                        if (len)
                            buf[at] ^= (uint8_t) (1u << s_below (8));
                        break;
                    case 1:  //  replace a byte
                        if (len)
                            buf[at] = s_byte ();
                        break;
                    case 2:  //  insert a byte
                        if (len < sizeof buf) {
                            memmove (buf + at + 1, buf + at, len - at);
                            buf[at] = s_byte ();
                            len++;
                        }
                        break;
                    case 3:  //  delete a byte
                        if (len) {
                            memmove (buf + at, buf + at + 1, len - at - 1);
                            len--;
                        }
                        break;
                    case 4:  //  truncate
                        len = at;
                        break;
                    case 5: {  //  duplicate a chunk
                        size_t chunk = len - at < 16 ? len - at : 16;
                        if (len + chunk <= sizeof buf) {
                            memmove (buf + at + chunk, buf + at, len - at);
                            len += chunk;
                        }
                        break;
                    }
                }
            }
            const uint8_t *data = s_tail (&tail, buf, len);
            accepted += s_fuzz_one (s_msgs[m].id, data, len) == 0;
            //  Some go through the frame decoder as well.
            if (i % 16 == 0) {
                vw_msg_t *msg = s_decode (s_frames ("fuzz", 4, s_msgs[m].name, 8, data, len));
                vw_msg_destroy (&msg);
            }
        }
        for (int v = 0; v < 4; v++)
            msgpack_sbuffer_destroy (&seeds[v]);
        print_message ("%-14s mutated:  %5d of %d accepted\n", s_msgs[m].name, accepted, N);
    }
    free (tail.block);
}

//  --------------------------------------------------------------------------
//  Send and receive over a socket pair

static void
test_send_recv (void **state)
{
    zsock_t *out = zsock_new_pair ("@inproc://test-msg-send-recv");
    zsock_t *in = zsock_new_pair (">inproc://test-msg-send-recv");
    assert_non_null (out);
    assert_non_null (in);

    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_error);
    msg->rid = 77;
    vw_msg_set_str (&msg->error.code, "unknown_actor");
    vw_msg_set_str (&msg->error.target, "nobody");
    assert_int_equal (vw_msg_send (&msg, out, "carol"), 0);
    assert_null (msg);

    //  A malformed message is consumed and dropped: recv returns NULL and the
    //  next good message still arrives.
    zstr_sendm (out, "carol");
    zstr_send (out, "error");
    msg = vw_msg_new (VW_MSG_ID_ping);
    msg->ping.sent_ms = 5;
    assert_int_equal (vw_msg_send (&msg, out, "carol"), 0);

    vw_msg_t *got = vw_msg_recv (in);
    assert_non_null (got);
    assert_int_equal (got->id, VW_MSG_ID_error);
    assert_true (got->rid == 77);
    assert_string_equal (got->peer, "carol");
    assert_string_equal (got->error.code, "unknown_actor");
    assert_string_equal (got->error.target, "nobody");
    assert_null (got->error.message);
    vw_msg_destroy (&got);
    assert_null (vw_msg_recv (in));
    got = vw_msg_recv (in);
    assert_non_null (got);
    assert_int_equal (got->id, VW_MSG_ID_ping);
    assert_true (got->ping.sent_ms == 5);
    vw_msg_destroy (&got);

    //  A send that fails leaves the message with the caller, and nothing
    //  leaks (LeakSanitizer checks): a ROUTER cannot reach an unknown peer.
    zsock_t *router = zsock_new_router ("@inproc://test-msg-send-fails");
    assert_non_null (router);
    zsock_set_router_mandatory (router, 1);
    zsock_set_sndtimeo (router, 0);
    msg = vw_msg_new (VW_MSG_ID_ping);
    assert_int_equal (vw_msg_send (&msg, router, "nobody"), -1);
    assert_non_null (msg);
    assert_int_equal (msg->id, VW_MSG_ID_ping);
    vw_msg_destroy (&msg);
    zsock_destroy (&router);

    //  encode refuses a NULL address.
    msg = vw_msg_new (VW_MSG_ID_ping);
    assert_null (vw_msg_encode (msg, NULL));
    vw_msg_destroy (&msg);

    zsock_destroy (&in);
    zsock_destroy (&out);
}

//  Bundles: several messages in one, read back in order; malformed
//  records stop the walk.
static void
test_bundle (void **state)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    vw_msg_t *ping = vw_msg_new (VW_MSG_ID_ping);
    ping->rid = 7;
    ping->ping.sent_ms = 1234;
    vw_msg_t *event = vw_msg_new (VW_MSG_ID_event);
    vw_msg_set_str (&event->event.topic, "command.state");
    vw_msg_set_str (&event->event.json, "{\"state\":\"completed\"}");
    vw_msg_t *page = vw_msg_new (VW_MSG_ID_commands_page);
    vw_msg_set_bin (&page->commands_page.rows, "\x00\x01\x02", 3);
    page->commands_page.count = 1;
    assert_int_equal (vw_msg_bundle_append (&buf, ping), 0);
    assert_int_equal (vw_msg_bundle_append (&buf, event), 0);
    assert_int_equal (vw_msg_bundle_append (&buf, page), 0);
    vw_bytes_t msgs = {(uint8_t *) buf.data, buf.size};
    size_t offset = 0;
    vw_msg_t *got = NULL;
    assert_int_equal (vw_msg_bundle_next (&msgs, &offset, "scheduler", &got), 1);
    assert_int_equal (got->id, VW_MSG_ID_ping);
    assert_int_equal (got->rid, 7);
    assert_int_equal (got->ping.sent_ms, 1234);
    assert_string_equal (got->peer, "scheduler");
    vw_msg_destroy (&got);
    assert_int_equal (vw_msg_bundle_next (&msgs, &offset, "scheduler", &got), 1);
    assert_string_equal (got->event.topic, "command.state");
    assert_string_equal (got->event.json, "{\"state\":\"completed\"}");
    vw_msg_destroy (&got);
    assert_int_equal (vw_msg_bundle_next (&msgs, &offset, "scheduler", &got), 1);
    assert_int_equal (got->commands_page.rows.size, 3);
    assert_memory_equal (got->commands_page.rows.data, "\x00\x01\x02", 3);
    vw_msg_destroy (&got);
    assert_int_equal (vw_msg_bundle_next (&msgs, &offset, "scheduler", &got), 0);
    assert_null (got);

    //  Every truncation of the last record is refused, never over-read.
    size_t second = 0;
    assert_int_equal (vw_msg_bundle_next (&msgs, &second, "x", &got), 1);
    vw_msg_destroy (&got);
    for (size_t cut = second + 1; cut < buf.size; cut++) {
        vw_bytes_t part = {(uint8_t *) buf.data, cut};
        size_t at = second;
        int rc = vw_msg_bundle_next (&part, &at, "x", &got);
        if (rc == 1) {  //  the event record fits: the page's must not
            vw_msg_destroy (&got);
            if (at == cut)
                continue;  //  cut exactly between two records
            rc = vw_msg_bundle_next (&part, &at, "x", &got);
        }
        assert_int_equal (rc, -1);
        assert_null (got);
    }
    //  Unknown names and bundles inside bundles are refused.
    uint8_t bad[] = {6, 'b', 'u', 'n', 'd', 'l', 'e', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x80};
    vw_bytes_t nested = {bad, sizeof bad};
    offset = 0;
    assert_int_equal (vw_msg_bundle_next (&nested, &offset, "x", &got), -1);
    memcpy (bad + 1, "nosuch", 6);
    offset = 0;
    assert_int_equal (vw_msg_bundle_next (&nested, &offset, "x", &got), -1);
    vw_msg_destroy (&ping);
    vw_msg_destroy (&event);
    vw_msg_destroy (&page);
    msgpack_sbuffer_destroy (&buf);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_names_and_ids),
        cmocka_unit_test (test_round_trip_every_message),
        cmocka_unit_test (test_absent_and_empty_strings),
        cmocka_unit_test (test_int_encodings),
        cmocka_unit_test (test_unknown_keys_ignored),
        cmocka_unit_test (test_decode_rejects_bad_frames),
        cmocka_unit_test (test_unpack_rejects_bad_bodies),
        cmocka_unit_test (test_unpack_rejects_every_truncation),
        cmocka_unit_test (test_body_size_limit),
        cmocka_unit_test (test_random_bodies),
        cmocka_unit_test (test_mutated_bodies),
        cmocka_unit_test (test_send_recv),
        cmocka_unit_test (test_bundle),
    };
    return cmocka_run_group_tests_name ("vw_msg", tests, NULL, NULL);
}
