/*  test_wire - the agent wire codec (proto/vw_wire) and the msgpack
    structural checker (proto/vw_mpack).

    Validation cases are written once as JSON text and run through both
    formats: the tree is serialised as JSON and as msgpack and each frame is
    decoded, so every rule is checked against both parsers.
*/
#include "vw_mpack.h"
#include "vw_wire.h"

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
//  Helpers

//  Parses test-authored JSON (trusted) into a tree.
static json_t *
s_tree (const char *text)
{
    json_error_t jerr;
    json_t *tree = json_loads (text, JSON_REJECT_DUPLICATES, &jerr);
    if (!tree)
        fail_msg ("bad test JSON: %s: %s", jerr.text, text);
    return tree;
}

static void
s_serialize (vw_wire_format_t format, const json_t *tree, uint8_t **data, size_t *size)
{
    assert_int_equal (vw_wire_serialize (format, tree, data, size), 0);
    assert_non_null (*data);
    assert_true (*size > 0);
}

static bool
s_is_known_code (const char *code)
{
    return strcmp (code, "malformed") == 0 || strcmp (code, "invalid_message") == 0 ||
           strcmp (code, "unknown_type") == 0;
}

//  Decodes raw bytes, expecting failure with `code`; checks the error is
//  well formed (and fit to go into an error frame).
static void
s_expect_bytes (vw_wire_format_t format, const void *data, size_t size, const char *code,
                const char *substr)
{
    vw_wire_msg_t msg;
    vw_wire_error_t err;
    int rc = vw_wire_decode (format, data, size, &msg, &err);
    if (rc == 0)
        fail_msg ("decode succeeded, wanted %s", code);
    assert_int_equal (rc, -1);
    assert_null (msg.root);
    assert_int_equal (msg.type, VW_WIRE_UNKNOWN);
    if (strcmp (err.code, code) != 0)
        fail_msg ("code %s (%s), wanted %s", err.code, err.message, code);
    assert_true (strlen (err.message) > 0);
    if (substr && !strstr (err.message, substr))
        fail_msg ("message '%s' lacks '%s'", err.message, substr);
    json_t *frame = vw_wire_error (err.code, err.message);
    assert_non_null (frame);
    json_decref (frame);
}

//  Runs one JSON-text case through both formats, expecting `code`.
static void
s_rejects (const char *text, const char *code, const char *substr)
{
    json_t *tree = s_tree (text);
    for (int format = VW_WIRE_JSON; format <= VW_WIRE_MSGPACK; format++) {
        uint8_t *data;
        size_t size;
        s_serialize (format, tree, &data, &size);
        s_expect_bytes (format, data, size, code, substr);
        free (data);
    }
    json_decref (tree);
}

//  Decodes a tree in `format`; the caller resets msg.
static void
s_decode_tree (vw_wire_format_t format, const json_t *tree, vw_wire_msg_t *msg)
{
    uint8_t *data;
    size_t size;
    vw_wire_error_t err;
    s_serialize (format, tree, &data, &size);
    int rc = vw_wire_decode (format, data, size, msg, &err);
    free (data);
    if (rc)
        fail_msg ("decode failed: %s: %s", err.code, err.message);
    assert_string_equal (err.code, "");
}

//  Runs one JSON-text case through both formats, expecting success with
//  `type`; the two decodes must give equal trees, equal to the input.
static void
s_accepts (const char *text, vw_wire_type_t type)
{
    json_t *tree = s_tree (text);
    vw_wire_msg_t msg_json, msg_mp;
    s_decode_tree (VW_WIRE_JSON, tree, &msg_json);
    s_decode_tree (VW_WIRE_MSGPACK, tree, &msg_mp);
    assert_int_equal (msg_json.type, type);
    assert_int_equal (msg_mp.type, type);
    assert_true (json_equal (msg_json.root, msg_mp.root));
    assert_true (json_equal (msg_json.root, tree));
    vw_wire_msg_reset (&msg_json);
    vw_wire_msg_reset (&msg_mp);
    json_decref (tree);
}

//  A string of n copies of c (caller frees).
static char *
s_repeat (char c, size_t n)
{
    char *s = malloc (n + 1);
    assert_non_null (s);
    memset (s, c, n);
    s[n] = 0;
    return s;
}

//  Both formats of a tree, decoded: msgs[0] JSON, msgs[1] msgpack. Checks
//  that both decodes agree and match the tree.
static void
s_round_trip (const json_t *tree, vw_wire_type_t type, vw_wire_msg_t msgs[2])
{
    s_decode_tree (VW_WIRE_JSON, tree, &msgs[0]);
    s_decode_tree (VW_WIRE_MSGPACK, tree, &msgs[1]);
    for (int i = 0; i < 2; i++) {
        assert_int_equal (msgs[i].type, type);
        assert_true (json_equal (msgs[i].root, tree));
    }
    assert_true (json_equal (msgs[0].root, msgs[1].root));
}

//  Fixed-seed generator so that the randomised tests are reproducible.
static uint64_t s_rng_state;

static uint64_t
s_rand (void)
{
    //  xorshift64*
    s_rng_state ^= s_rng_state >> 12;
    s_rng_state ^= s_rng_state << 25;
    s_rng_state ^= s_rng_state >> 27;
    return s_rng_state * 0x2545F4914F6CDD1DULL;
}

static size_t
s_below (size_t n)
{
    return n ? (size_t) (s_rand () % n) : 0;
}

//  --------------------------------------------------------------------------
//  Round trips of every message type

static void
test_round_trip_hello (void **state)
{
    json_t *tree = s_tree ("{\"type\":\"hello\",\"agent_id\":\"gw-01\",\"token\":\"tok\","
                           "\"version\":\"1.4.2\",\"hostname\":\"gw-01.lan\","
                           "\"capabilities\":[\"exec\",\"restart_service\"],"
                           "\"labels\":{\"site\":\"ams\"}}");
    vw_wire_msg_t msgs[2];
    s_round_trip (tree, VW_WIRE_HELLO, msgs);
    for (int i = 0; i < 2; i++) {
        vw_wire_msg_t *m = &msgs[i];
        assert_string_equal (m->agent_id, "gw-01");
        assert_string_equal (m->token, "tok");
        assert_string_equal (m->version, "1.4.2");
        assert_string_equal (m->hostname, "gw-01.lan");
        assert_int_equal (json_array_size (m->capabilities), 2);
        assert_string_equal (json_string_value (json_array_get (m->capabilities, 1)),
                             "restart_service");
        assert_string_equal (json_string_value (json_object_get (m->labels, "site")), "ams");
        assert_int_equal (m->progress, -1);
        vw_wire_msg_reset (m);
        vw_wire_msg_reset (m);  //  safe twice
        assert_null (m->root);
    }
    json_decref (tree);

    //  Only agent_id and token are required; optional fields absent are NULL.
    tree = s_tree ("{\"type\":\"hello\",\"agent_id\":\"a\",\"token\":\"t\"}");
    s_round_trip (tree, VW_WIRE_HELLO, msgs);
    for (int i = 0; i < 2; i++) {
        assert_string_equal (msgs[i].agent_id, "a");
        assert_string_equal (msgs[i].token, "t");
        assert_null (msgs[i].version);
        assert_null (msgs[i].hostname);
        assert_null (msgs[i].capabilities);
        assert_null (msgs[i].labels);
        vw_wire_msg_reset (&msgs[i]);
    }
    json_decref (tree);
}

static void
test_round_trip_auth (void **state)
{
    json_t *tree = s_tree ("{\"type\":\"auth\",\"signature\":\"c2lnbmF0dXJl\"}");
    vw_wire_msg_t msgs[2];
    s_round_trip (tree, VW_WIRE_AUTH, msgs);
    for (int i = 0; i < 2; i++) {
        assert_string_equal (msgs[i].signature, "c2lnbmF0dXJl");
        vw_wire_msg_reset (&msgs[i]);
    }
    json_decref (tree);
}

static void
test_round_trip_heartbeat (void **state)
{
    json_t *tree = s_tree ("{\"type\":\"heartbeat\",\"status\":\"degraded\"}");
    vw_wire_msg_t msgs[2];
    s_round_trip (tree, VW_WIRE_HEARTBEAT, msgs);
    for (int i = 0; i < 2; i++) {
        assert_string_equal (msgs[i].status, "degraded");
        vw_wire_msg_reset (&msgs[i]);
    }
    json_decref (tree);

    tree = s_tree ("{\"type\":\"heartbeat\"}");
    s_round_trip (tree, VW_WIRE_HEARTBEAT, msgs);
    for (int i = 0; i < 2; i++) {
        assert_null (msgs[i].status);
        vw_wire_msg_reset (&msgs[i]);
    }
    json_decref (tree);
}

static void
test_round_trip_telemetry (void **state)
{
    json_t *tree = s_tree ("{\"type\":\"telemetry\",\"seq\":42,\"points\":["
                           "{\"ts\":1764230000000,\"metrics\":{\"cpu\":0.31,\"mem_used_mb\":812,"
                           "\"tunnels\":17}},"
                           "{\"ts\":1764230010000,\"metrics\":{\"if.wg0:rx-bytes\":-1.5e300,"
                           "\"neg\":-9223372036854775808,\"big\":9223372036854775807}}]}");
    vw_wire_msg_t msgs[2];
    s_round_trip (tree, VW_WIRE_TELEMETRY, msgs);
    for (int i = 0; i < 2; i++) {
        vw_wire_msg_t *m = &msgs[i];
        assert_int_equal (m->seq, 42);
        assert_int_equal (json_array_size (m->points), 2);
        json_t *metrics = json_object_get (json_array_get (m->points, 0), "metrics");
        assert_true (json_is_real (json_object_get (metrics, "cpu")));
        assert_true (json_real_value (json_object_get (metrics, "cpu")) == 0.31);
        assert_true (json_is_integer (json_object_get (metrics, "mem_used_mb")));
        metrics = json_object_get (json_array_get (m->points, 1), "metrics");
        assert_true (json_integer_value (json_object_get (metrics, "neg")) == INT64_MIN);
        assert_true (json_integer_value (json_object_get (metrics, "big")) == INT64_MAX);
        vw_wire_msg_reset (m);
    }
    json_decref (tree);
}

static void
test_round_trip_command_ack (void **state)
{
    json_t *tree = s_tree ("{\"type\":\"command_ack\",\"command_id\":\"c-1\"}");
    vw_wire_msg_t msgs[2];
    s_round_trip (tree, VW_WIRE_COMMAND_ACK, msgs);
    for (int i = 0; i < 2; i++) {
        assert_string_equal (msgs[i].command_id, "c-1");
        vw_wire_msg_reset (&msgs[i]);
    }
    json_decref (tree);
}

static void
test_round_trip_command_progress (void **state)
{
    json_t *tree = s_tree ("{\"type\":\"command_progress\",\"command_id\":\"c-1\",\"progress\":40,"
                           "\"message\":\"half\"}");
    vw_wire_msg_t msgs[2];
    s_round_trip (tree, VW_WIRE_COMMAND_PROGRESS, msgs);
    for (int i = 0; i < 2; i++) {
        assert_string_equal (msgs[i].command_id, "c-1");
        assert_int_equal (msgs[i].progress, 40);
        assert_string_equal (msgs[i].message, "half");
        vw_wire_msg_reset (&msgs[i]);
    }
    json_decref (tree);

    tree = s_tree ("{\"type\":\"command_progress\",\"command_id\":\"c-1\"}");
    s_round_trip (tree, VW_WIRE_COMMAND_PROGRESS, msgs);
    for (int i = 0; i < 2; i++) {
        assert_int_equal (msgs[i].progress, -1);
        assert_null (msgs[i].message);
        vw_wire_msg_reset (&msgs[i]);
    }
    json_decref (tree);
}

static void
test_round_trip_command_result (void **state)
{
    json_t *tree = s_tree ("{\"type\":\"command_result\",\"command_id\":\"c-1\","
                           "\"status\":\"failed\",\"result\":{\"rc\":1,\"out\":[\"x\",null,true]},"
                           "\"error\":\"exit 1\"}");
    vw_wire_msg_t msgs[2];
    s_round_trip (tree, VW_WIRE_COMMAND_RESULT, msgs);
    for (int i = 0; i < 2; i++) {
        assert_string_equal (msgs[i].command_id, "c-1");
        assert_string_equal (msgs[i].status, "failed");
        assert_int_equal (json_integer_value (json_object_get (msgs[i].result, "rc")), 1);
        assert_string_equal (msgs[i].error, "exit 1");
        assert_int_equal (msgs[i].attempt, 0);  //  no echo: 0
        vw_wire_msg_reset (&msgs[i]);
    }
    json_decref (tree);

    tree = s_tree ("{\"type\":\"command_result\",\"command_id\":\"c-1\",\"status\":\"completed\","
                   "\"attempt\":3}");
    s_round_trip (tree, VW_WIRE_COMMAND_RESULT, msgs);
    for (int i = 0; i < 2; i++) {
        assert_string_equal (msgs[i].status, "completed");
        assert_int_equal (msgs[i].attempt, 3);
        assert_null (msgs[i].result);
        assert_null (msgs[i].error);
        vw_wire_msg_reset (&msgs[i]);
    }
    json_decref (tree);
}

//  Serialises a built message as JSON and compares with the exact text.
static void
s_json_is (const json_t *tree, const char *expected)
{
    uint8_t *data;
    size_t size;
    s_serialize (VW_WIRE_JSON, tree, &data, &size);
    if (size != strlen (expected) || memcmp (data, expected, size) != 0)
        fail_msg ("got %.*s, wanted %s", (int) size, (char *) data, expected);
    free (data);
}

static void
test_round_trip_welcome (void **state)
{
    json_t *tree = vw_wire_welcome ("sess-1", 10000, 1764230000000LL);
    assert_non_null (tree);
    s_json_is (tree, "{\"type\":\"welcome\",\"session_id\":\"sess-1\","
                     "\"heartbeat_interval_ms\":10000,\"server_time\":1764230000000}");
    vw_wire_msg_t msgs[2];
    s_round_trip (tree, VW_WIRE_WELCOME, msgs);
    for (int i = 0; i < 2; i++) {
        assert_string_equal (msgs[i].session_id, "sess-1");
        assert_int_equal (msgs[i].heartbeat_interval_ms, 10000);
        assert_int_equal (msgs[i].server_time, 1764230000000LL);
        vw_wire_msg_reset (&msgs[i]);
    }
    json_decref (tree);
}

static void
test_round_trip_challenge (void **state)
{
    json_t *tree = vw_wire_challenge ("bm9uY2U=");
    assert_non_null (tree);
    s_json_is (tree, "{\"type\":\"challenge\",\"nonce\":\"bm9uY2U=\"}");
    vw_wire_msg_t msgs[2];
    s_round_trip (tree, VW_WIRE_CHALLENGE, msgs);
    for (int i = 0; i < 2; i++) {
        assert_string_equal (msgs[i].nonce, "bm9uY2U=");
        vw_wire_msg_reset (&msgs[i]);
    }
    json_decref (tree);
}

static void
test_round_trip_error (void **state)
{
    json_t *tree = vw_wire_error ("unauthorized", "bad token");
    assert_non_null (tree);
    s_json_is (tree, "{\"type\":\"error\",\"code\":\"unauthorized\",\"message\":\"bad token\"}");
    vw_wire_msg_t msgs[2];
    s_round_trip (tree, VW_WIRE_ERROR, msgs);
    for (int i = 0; i < 2; i++) {
        assert_string_equal (msgs[i].code, "unauthorized");
        assert_string_equal (msgs[i].message, "bad token");
        vw_wire_msg_reset (&msgs[i]);
    }
    json_decref (tree);

    tree = vw_wire_error ("malformed", NULL);
    s_json_is (tree, "{\"type\":\"error\",\"code\":\"malformed\"}");
    s_round_trip (tree, VW_WIRE_ERROR, msgs);
    for (int i = 0; i < 2; i++) {
        assert_null (msgs[i].message);
        assert_int_equal (msgs[i].retry_after_ms, 0);
        vw_wire_msg_reset (&msgs[i]);
    }
    json_decref (tree);

    //  A refusal during a reconnect storm says when to come back.
    tree = vw_wire_error_retry ("unavailable", "busy", 2300);
    s_json_is (tree, "{\"type\":\"error\",\"code\":\"unavailable\",\"message\":\"busy\","
                     "\"retry_after_ms\":2300}");
    s_round_trip (tree, VW_WIRE_ERROR, msgs);
    for (int i = 0; i < 2; i++) {
        assert_int_equal (msgs[i].retry_after_ms, 2300);
        vw_wire_msg_reset (&msgs[i]);
    }
    json_decref (tree);
    assert_null (vw_wire_error_retry ("unavailable", "busy", -1));
    assert_null (vw_wire_error_retry ("unavailable", "busy", VW_WIRE_RETRY_AFTER_MAX_MS + 1));
    assert_null (vw_wire_error_retry ("bad code", "busy", 1000));
    s_rejects ("{\"type\":\"error\",\"code\":\"unavailable\",\"retry_after_ms\":\"soon\"}",
               "invalid_message", "retry_after_ms");
    s_rejects ("{\"type\":\"error\",\"code\":\"unavailable\",\"retry_after_ms\":-5}",
               "invalid_message", "retry_after_ms");
    s_rejects ("{\"type\":\"error\",\"code\":\"unavailable\",\"retry_after_ms\":3600001}",
               "invalid_message", "retry_after_ms");
}

static void
test_round_trip_command (void **state)
{
    json_t *payload = s_tree ("{\"name\":\"wg0\"}");
    json_t *tree = vw_wire_command ("c-7", "restart_service", payload, 30000, 1);
    assert_non_null (tree);
    //  The payload was copied, not taken.
    json_object_set_new (payload, "name", json_string ("changed"));
    json_decref (payload);
    s_json_is (tree, "{\"type\":\"command\",\"command_id\":\"c-7\","
                     "\"command_type\":\"restart_service\",\"payload\":{\"name\":\"wg0\"},"
                     "\"timeout_ms\":30000,\"attempt\":1}");
    vw_wire_msg_t msgs[2];
    s_round_trip (tree, VW_WIRE_COMMAND, msgs);
    for (int i = 0; i < 2; i++) {
        assert_string_equal (msgs[i].command_id, "c-7");
        assert_string_equal (msgs[i].command_type, "restart_service");
        assert_string_equal (json_string_value (json_object_get (msgs[i].payload, "name")), "wg0");
        assert_int_equal (msgs[i].timeout_ms, 30000);
        assert_int_equal (msgs[i].attempt, 1);
        vw_wire_msg_reset (&msgs[i]);
    }
    json_decref (tree);

    //  No payload means an empty one.
    tree = vw_wire_command ("c-8", "ping", NULL, 100, 3);
    s_json_is (tree, "{\"type\":\"command\",\"command_id\":\"c-8\",\"command_type\":\"ping\","
                     "\"payload\":{},\"timeout_ms\":100,\"attempt\":3}");
    json_decref (tree);
}

static void
test_round_trip_cancel (void **state)
{
    json_t *tree = vw_wire_cancel ("c-7");
    assert_non_null (tree);
    s_json_is (tree, "{\"type\":\"cancel\",\"command_id\":\"c-7\"}");
    vw_wire_msg_t msgs[2];
    s_round_trip (tree, VW_WIRE_CANCEL, msgs);
    for (int i = 0; i < 2; i++) {
        assert_string_equal (msgs[i].command_id, "c-7");
        vw_wire_msg_reset (&msgs[i]);
    }
    json_decref (tree);
}

static void
test_round_trip_telemetry_ack (void **state)
{
    json_t *tree = vw_wire_telemetry_ack (42);
    assert_non_null (tree);
    s_json_is (tree, "{\"type\":\"telemetry_ack\",\"seq\":42}");
    vw_wire_msg_t msgs[2];
    s_round_trip (tree, VW_WIRE_TELEMETRY_ACK, msgs);
    for (int i = 0; i < 2; i++) {
        assert_int_equal (msgs[i].seq, 42);
        vw_wire_msg_reset (&msgs[i]);
    }
    json_decref (tree);
}

static void
test_builders_refuse_bad_arguments (void **state)
{
    char *long_id = s_repeat ('x', 129);
    assert_null (vw_wire_welcome (NULL, 1, 0));
    assert_null (vw_wire_welcome ("", 1, 0));
    assert_null (vw_wire_welcome (long_id, 1, 0));
    assert_null (vw_wire_welcome ("s", 0, 0));
    assert_null (vw_wire_welcome ("s", 1, -1));
    assert_null (vw_wire_welcome ("s\xff", 1, 0));  //  not UTF-8
    assert_null (vw_wire_error (NULL, "m"));
    assert_null (vw_wire_error ("bad code", "m"));
    assert_null (vw_wire_error ("code", "\xc0\x80"));
    assert_null (vw_wire_challenge (NULL));
    assert_null (vw_wire_challenge ("not base64!"));
    assert_null (vw_wire_challenge (""));
    assert_null (vw_wire_command (NULL, "ping", NULL, 1, 1));
    assert_null (vw_wire_command ("c", "bad type", NULL, 1, 1));
    assert_null (vw_wire_command (long_id, "ping", NULL, 1, 1));
    assert_null (vw_wire_command ("c", "ping", NULL, 0, 1));
    assert_null (vw_wire_command ("c", "ping", NULL, 1, 0));
    json_t *array = json_array ();
    assert_null (vw_wire_command ("c", "ping", array, 1, 1));
    json_decref (array);
    //  A payload that would push the frame over the depth limit.
    json_t *deep = json_object ();
    json_t *inner = deep;
    for (int i = 0; i < VW_WIRE_MAX_DEPTH - 1; i++) {
        json_t *next = json_object ();
        json_object_set_new (inner, "a", next);
        inner = next;
    }
    assert_null (vw_wire_command ("c", "ping", deep, 1, 1));
    json_decref (deep);
    assert_null (vw_wire_cancel (NULL));
    assert_null (vw_wire_cancel (""));
    assert_null (vw_wire_telemetry_ack (-1));
    free (long_id);
}

//  --------------------------------------------------------------------------
//  Serialisation details

static void
s_msgpack_is (const char *text, const uint8_t *expected, size_t expected_size)
{
    json_t *tree = json_loads (text, JSON_DECODE_ANY, NULL);
    assert_non_null (tree);
    uint8_t *data;
    size_t size;
    s_serialize (VW_WIRE_MSGPACK, tree, &data, &size);
    assert_int_equal (size, expected_size);
    assert_memory_equal (data, expected, size);
    free (data);
    json_decref (tree);
}

static void
test_serialize_encodings (void **state)
{
    //  Smallest integer encodings, float64 reals, str strings.
    s_msgpack_is ("{\"a\":1}",
                  (const uint8_t *) "\x81\xa1"
                                    "a\x01",
                  4);
    s_msgpack_is ("-1", (const uint8_t *) "\xff", 1);
    s_msgpack_is ("-33", (const uint8_t *) "\xd0\xdf", 2);
    s_msgpack_is ("300", (const uint8_t *) "\xcd\x01\x2c", 3);
    s_msgpack_is ("70000", (const uint8_t *) "\xce\x00\x01\x11\x70", 5);
    s_msgpack_is ("1.5", (const uint8_t *) "\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00", 9);
    s_msgpack_is ("[null,true,false]", (const uint8_t *) "\x93\xc0\xc3\xc2", 4);
    s_msgpack_is ("\"hi\"", (const uint8_t *) "\xa2hi", 3);

    //  A 40-byte string becomes str8.
    char text[64];
    snprintf (text, sizeof text, "\"%s\"", "0123456789012345678901234567890123456789");
    json_t *tree = json_loads (text, JSON_DECODE_ANY, NULL);
    uint8_t *data;
    size_t size;
    s_serialize (VW_WIRE_MSGPACK, tree, &data, &size);
    assert_int_equal (size, 42);
    assert_int_equal (data[0], 0xd9);
    assert_int_equal (data[1], 40);
    free (data);
    json_decref (tree);

    //  JSON is compact and keeps reals real.
    tree = s_tree ("{ \"a\" : [ 1 , 2.0 ] }");
    s_json_is (tree, "{\"a\":[1,2.0]}");
    json_decref (tree);

    assert_int_equal (vw_wire_serialize (VW_WIRE_JSON, NULL, &data, &size), -1);
    assert_int_equal (vw_wire_serialize (VW_WIRE_MSGPACK, NULL, &data, &size), -1);
}

//  A caller's tree too deep (or cyclic) to serialise, an unknown format and
//  resetting NULL all fail softly.
static void
test_serialize_limits (void **state)
{
    json_t *deep = json_array ();
    json_t *inner = deep;
    for (int i = 0; i < 5000; i++) {
        json_t *next = json_array ();
        json_array_append_new (inner, next);
        inner = next;
    }
    uint8_t *data;
    size_t size;
    assert_int_equal (vw_wire_serialize (VW_WIRE_MSGPACK, deep, &data, &size), -1);
    assert_null (data);
    assert_int_equal (size, 0);
    json_decref (deep);

    json_t *cycle = json_array ();
    json_t *middle = json_array ();
    json_array_append (cycle, middle);
    json_array_append (middle, cycle);
    assert_int_equal (vw_wire_serialize (VW_WIRE_MSGPACK, cycle, &data, &size), -1);
    assert_int_equal (vw_wire_serialize (VW_WIRE_JSON, cycle, &data, &size), -1);
    json_array_clear (middle);  //  break the cycle so both can be freed
    json_decref (middle);
    json_decref (cycle);

    json_t *tree = s_tree ("{}");
    assert_int_equal (vw_wire_serialize ((vw_wire_format_t) 9, tree, &data, &size), -1);
    json_decref (tree);
    vw_wire_msg_reset (NULL);
}

static void
test_type_names (void **state)
{
    for (int type = VW_WIRE_HELLO; type <= VW_WIRE_TELEMETRY_ACK; type++) {
        const char *name = vw_wire_type_name (type);
        assert_non_null (name);
        assert_int_equal (vw_wire_type_from_name (name), type);
    }
    assert_string_equal (vw_wire_type_name (VW_WIRE_COMMAND_PROGRESS), "command_progress");
    assert_string_equal (vw_wire_type_name (VW_WIRE_UNKNOWN), "unknown");
    assert_string_equal (vw_wire_type_name ((vw_wire_type_t) 999), "unknown");
    assert_int_equal (vw_wire_type_from_name ("unknown"), VW_WIRE_UNKNOWN);
    assert_int_equal (vw_wire_type_from_name ("Hello"), VW_WIRE_UNKNOWN);
    assert_int_equal (vw_wire_type_from_name (""), VW_WIRE_UNKNOWN);
    assert_int_equal (vw_wire_type_from_name (NULL), VW_WIRE_UNKNOWN);
}

static void
test_valid_name (void **state)
{
    assert_true (vw_wire_valid_name ("gw-01", 128));
    assert_true (vw_wire_valid_name ("A.b_c:d-9", 128));
    assert_true (vw_wire_valid_name ("abc", 3));
    assert_false (vw_wire_valid_name ("abcd", 3));
    assert_false (vw_wire_valid_name ("", 3));
    assert_false (vw_wire_valid_name (NULL, 3));
    assert_false (vw_wire_valid_name ("a b", 10));
    assert_false (vw_wire_valid_name ("a/b", 10));
    assert_false (vw_wire_valid_name ("caf\xc3\xa9", 10));
}

//  The agent id / username grammar: [A-Za-z0-9][A-Za-z0-9_.:-]{0,127}.
static void
test_valid_id (void **state)
{
    char longest[VW_ID_MAX + 2];
    memset (longest, 'a', VW_ID_MAX);
    longest[VW_ID_MAX] = 0;
    assert_true (vw_wire_valid_id ("gw-01"));
    assert_true (vw_wire_valid_id ("9.a_b:c-d"));
    assert_true (vw_wire_valid_id ("a"));
    assert_true (vw_wire_valid_id (longest));
    longest[VW_ID_MAX] = 'a';
    longest[VW_ID_MAX + 1] = 0;
    assert_false (vw_wire_valid_id (longest));
    const char *bad[] = {"",    ".",   "..",   "-rf",         "_x",    ":x",  "a/b", "a\\b",
                         "a b", "a\n", "a%2f", "caf\xc3\xa9", "a\x7f", "a?b", "a#b", NULL};
    for (int i = 0; bad[i]; i++)
        assert_false (vw_wire_valid_id (bad[i]));
    assert_false (vw_wire_valid_id (NULL));
}

//  --------------------------------------------------------------------------
//  Validation rules, each through both formats

static void
test_type_field (void **state)
{
    s_rejects ("{}", "invalid_message", "'type'");
    s_rejects ("{\"agent_id\":\"a\"}", "invalid_message", "'type'");
    s_rejects ("{\"type\":1}", "invalid_message", "'type'");
    s_rejects ("{\"type\":null}", "invalid_message", "'type'");
    s_rejects ("{\"type\":[\"hello\"]}", "invalid_message", "'type'");
    s_rejects ("{\"type\":\"nope\"}", "unknown_type", "'nope'");
    s_rejects ("{\"type\":\"\"}", "unknown_type", NULL);
    s_rejects ("{\"type\":\"unknown\"}", "unknown_type", NULL);
    s_rejects ("{\"type\":\"HELLO\",\"agent_id\":\"a\"}", "unknown_type", NULL);
    //  Quoted hostile text stays printable ASCII.
    s_rejects ("{\"type\":\"caf\\u00e9\\n\"}", "unknown_type", "'caf\?\?\?'");
}

static void
test_hello_rules (void **state)
{
    s_accepts ("{\"type\":\"hello\",\"agent_id\":\"gw-01\",\"token\":\"t\",\"extra\":{\"x\":[1]}}",
               VW_WIRE_HELLO);
    s_accepts ("{\"type\":\"hello\",\"agent_id\":\"gw-01\",\"token\":\"t\",\"labels\":null}",
               VW_WIRE_HELLO);
    //  The token is required (SPEC §3): a hello without one is malformed
    //  (4400), not a bad token (4401).
    s_rejects ("{\"type\":\"hello\",\"agent_id\":\"gw-01\"}", "invalid_message",
               "field 'token' is required and must be a string");
    s_rejects ("{\"type\":\"hello\",\"agent_id\":\"gw-01\",\"token\":null}", "invalid_message",
               "field 'token' is required and must be a string");
    s_rejects ("{\"type\":\"hello\",\"agent_id\":\"gw-01\",\"token\":\"\"}", "invalid_message",
               "'token'");
    s_rejects ("{\"type\":\"hello\"}", "invalid_message",
               "field 'agent_id' is required and must be a string");
    s_rejects ("{\"type\":\"hello\",\"agent_id\":null}", "invalid_message", "'agent_id'");
    s_rejects ("{\"type\":\"hello\",\"agent_id\":7}", "invalid_message",
               "field 'agent_id' is required and must be a string");
    s_rejects ("{\"type\":\"hello\",\"agent_id\":\"\"}", "invalid_message", "'agent_id'");
    s_rejects ("{\"type\":\"hello\",\"agent_id\":\"a b\"}", "invalid_message", "'agent_id'");
    s_rejects ("{\"type\":\"hello\",\"agent_id\":\"gw/01\"}", "invalid_message", "'agent_id'");

    char text[1024];
    char *s = s_repeat ('a', 128);
    snprintf (text, sizeof text, "{\"type\":\"hello\",\"agent_id\":\"%s\",\"token\":\"t\"}", s);
    s_accepts (text, VW_WIRE_HELLO);
    free (s);
    s = s_repeat ('a', 129);
    snprintf (text, sizeof text, "{\"type\":\"hello\",\"agent_id\":\"%s\"}", s);
    s_rejects (text, "invalid_message", "'agent_id'");
    free (s);

    s_rejects ("{\"type\":\"hello\",\"agent_id\":\"a\",\"token\":1}", "invalid_message",
               "field 'token' is required and must be a string");
    s = s_repeat ('t', 512);
    snprintf (text, sizeof text, "{\"type\":\"hello\",\"agent_id\":\"a\",\"token\":\"%s\"}", s);
    s_accepts (text, VW_WIRE_HELLO);
    free (s);
    s = s_repeat ('t', 513);
    snprintf (text, sizeof text, "{\"type\":\"hello\",\"agent_id\":\"a\",\"token\":\"%s\"}", s);
    s_rejects (text, "invalid_message", "'token'");
    free (s);
    s = s_repeat ('v', 129);
    snprintf (text, sizeof text,
              "{\"type\":\"hello\",\"agent_id\":\"a\",\"token\":\"t\",\"version\":\"%s\"}", s);
    s_rejects (text, "invalid_message", "'version'");
    free (s);
    s = s_repeat ('h', 256);
    snprintf (text, sizeof text,
              "{\"type\":\"hello\",\"agent_id\":\"a\",\"token\":\"t\",\"hostname\":\"%s\"}", s);
    s_rejects (text, "invalid_message", "'hostname'");
    free (s);
    s_rejects ("{\"type\":\"hello\",\"agent_id\":\"a\",\"token\":\"t\",\"version\":[]}",
               "invalid_message", "'version'");
    s_rejects ("{\"type\":\"hello\",\"agent_id\":\"a\",\"token\":\"t\",\"hostname\":false}",
               "invalid_message", "'hostname'");

    s_rejects ("{\"type\":\"hello\",\"agent_id\":\"a\",\"token\":\"t\",\"capabilities\":\"exec\"}",
               "invalid_message", "'capabilities'");
    s_rejects (
        "{\"type\":\"hello\",\"agent_id\":\"a\",\"token\":\"t\",\"capabilities\":[\"exec\",2]}",
        "invalid_message", "capabilities[1]");
    s_rejects ("{\"type\":\"hello\",\"agent_id\":\"a\",\"token\":\"t\",\"labels\":[]}",
               "invalid_message", "'labels'");
    s_rejects ("{\"type\":\"hello\",\"agent_id\":\"a\",\"token\":\"t\",\"labels\":{\"site\":1}}",
               "invalid_message", "labels: value of 'site'");

    //  64 capabilities and labels are fine, 65 are not.
    for (int n = 64; n <= 65; n++) {
        json_t *tree = s_tree ("{\"type\":\"hello\",\"agent_id\":\"a\",\"token\":\"t\"}");
        json_t *caps = json_array ();
        for (int i = 0; i < n; i++)
            json_array_append_new (caps, json_string ("cap"));
        json_object_set_new (tree, "capabilities", caps);
        char *dump = json_dumps (tree, JSON_COMPACT);
        if (n == 64)
            s_accepts (dump, VW_WIRE_HELLO);
        else
            s_rejects (dump, "invalid_message", "'capabilities'");
        free (dump);
        json_object_del (tree, "capabilities");
        json_t *labels = json_object ();
        for (int i = 0; i < n; i++) {
            char key[16];
            snprintf (key, sizeof key, "k%d", i);
            json_object_set_new (labels, key, json_string ("v"));
        }
        json_object_set_new (tree, "labels", labels);
        dump = json_dumps (tree, JSON_COMPACT);
        if (n == 64)
            s_accepts (dump, VW_WIRE_HELLO);
        else
            s_rejects (dump, "invalid_message", "'labels'");
        free (dump);
        json_decref (tree);
    }
}

static void
test_auth_rules (void **state)
{
    s_accepts ("{\"type\":\"auth\",\"signature\":\"YWI=\"}", VW_WIRE_AUTH);
    s_accepts ("{\"type\":\"auth\",\"signature\":\"YWI\"}", VW_WIRE_AUTH);
    s_accepts ("{\"type\":\"auth\",\"signature\":\"a+/9\"}", VW_WIRE_AUTH);
    s_rejects ("{\"type\":\"auth\"}", "invalid_message",
               "field 'signature' is required and must be a string");
    s_rejects ("{\"type\":\"auth\",\"signature\":42}", "invalid_message", "'signature'");
    s_rejects ("{\"type\":\"auth\",\"signature\":\"\"}", "invalid_message", "'signature'");
    s_rejects ("{\"type\":\"auth\",\"signature\":\"abc!\"}", "invalid_message", "base64");
    s_rejects ("{\"type\":\"auth\",\"signature\":\"abcde\"}", "invalid_message", "base64");
    s_rejects ("{\"type\":\"auth\",\"signature\":\"ab=c\"}", "invalid_message", "base64");
    s_rejects ("{\"type\":\"auth\",\"signature\":\"a===\"}", "invalid_message", "base64");
    s_rejects ("{\"type\":\"auth\",\"signature\":\"====\"}", "invalid_message", "base64");
    s_rejects ("{\"type\":\"auth\",\"signature\":\"YWI=YWI=\"}", "invalid_message", "base64");
}

static void
test_heartbeat_rules (void **state)
{
    s_accepts ("{\"type\":\"heartbeat\",\"status\":\"online\"}", VW_WIRE_HEARTBEAT);
    s_accepts ("{\"type\":\"heartbeat\",\"status\":\"maintenance\"}", VW_WIRE_HEARTBEAT);
    s_accepts ("{\"type\":\"heartbeat\",\"status\":null}", VW_WIRE_HEARTBEAT);
    s_rejects ("{\"type\":\"heartbeat\",\"status\":\"busy\"}", "invalid_message",
               "field 'status' must be one of online|degraded|maintenance");
    s_rejects ("{\"type\":\"heartbeat\",\"status\":\"offline\"}", "invalid_message", "'status'");
    s_rejects ("{\"type\":\"heartbeat\",\"status\":1}", "invalid_message", "'status'");
}

//  A telemetry frame with `points` points of `metrics` metrics each.
static char *
s_telemetry_text (size_t points, size_t metrics)
{
    json_t *tree = s_tree ("{\"type\":\"telemetry\",\"seq\":1}");
    json_t *array = json_array ();
    for (size_t p = 0; p < points; p++) {
        json_t *values = json_object ();
        for (size_t m = 0; m < metrics; m++) {
            char name[32];
            snprintf (name, sizeof name, "m%zu", m);
            json_object_set_new (values, name, json_integer ((json_int_t) m));
        }
        json_array_append_new (array,
                               json_pack ("{s:I,s:o}", "ts", (json_int_t) p, "metrics", values));
    }
    json_object_set_new (tree, "points", array);
    char *text = json_dumps (tree, JSON_COMPACT);
    json_decref (tree);
    return text;
}

static void
test_telemetry_rules (void **state)
{
#define POINT "{\"ts\":1,\"metrics\":{\"cpu\":1}}"
    s_accepts ("{\"type\":\"telemetry\",\"seq\":0,\"points\":[" POINT "]}", VW_WIRE_TELEMETRY);
    s_accepts ("{\"type\":\"telemetry\",\"seq\":1,\"points\":[{\"ts\":0,\"metrics\":"
               "{\"a\":-0.0,\"b\":1e-300,\"c\":-5}}]}",
               VW_WIRE_TELEMETRY);
    s_rejects ("{\"type\":\"telemetry\",\"points\":[" POINT "]}", "invalid_message",
               "field 'seq' is required and must be an integer");
    s_rejects ("{\"type\":\"telemetry\",\"seq\":\"1\",\"points\":[" POINT "]}", "invalid_message",
               "'seq'");
    s_rejects ("{\"type\":\"telemetry\",\"seq\":1.5,\"points\":[" POINT "]}", "invalid_message",
               "'seq'");
    s_rejects ("{\"type\":\"telemetry\",\"seq\":1.0,\"points\":[" POINT "]}", "invalid_message",
               "'seq'");
    s_rejects ("{\"type\":\"telemetry\",\"seq\":-1,\"points\":[" POINT "]}", "invalid_message",
               "field 'seq' must be an integer >= 0");
    s_rejects ("{\"type\":\"telemetry\",\"seq\":1}", "invalid_message", "'points'");
    s_rejects ("{\"type\":\"telemetry\",\"seq\":1,\"points\":{}}", "invalid_message", "'points'");
    s_rejects ("{\"type\":\"telemetry\",\"seq\":1,\"points\":[]}", "invalid_message", "'points'");
    s_rejects ("{\"type\":\"telemetry\",\"seq\":1,\"points\":[" POINT ",5]}", "invalid_message",
               "points[1] must be an object");
    s_rejects ("{\"type\":\"telemetry\",\"seq\":1,\"points\":[{\"metrics\":{\"a\":1}}]}",
               "invalid_message", "points[0].ts");
    s_rejects ("{\"type\":\"telemetry\",\"seq\":1,\"points\":[{\"ts\":-1,\"metrics\":{\"a\":1}}]}",
               "invalid_message", "points[0].ts");
    s_rejects ("{\"type\":\"telemetry\",\"seq\":1,\"points\":[{\"ts\":1.5,\"metrics\":{\"a\":1}}]}",
               "invalid_message", "points[0].ts");
    s_rejects ("{\"type\":\"telemetry\",\"seq\":1,\"points\":[{\"ts\":1}]}", "invalid_message",
               "points[0].metrics");
    s_rejects ("{\"type\":\"telemetry\",\"seq\":1,\"points\":[{\"ts\":1,\"metrics\":[1]}]}",
               "invalid_message", "points[0].metrics");
    s_rejects ("{\"type\":\"telemetry\",\"seq\":1,\"points\":[{\"ts\":1,\"metrics\":{}}]}",
               "invalid_message", "points[0].metrics must hold 1..256 metrics");
    s_rejects ("{\"type\":\"telemetry\",\"seq\":1,\"points\":[" POINT "," POINT "," POINT
               ",{\"ts\":1,\"metrics\":{\"ok\":1,\"a b\":2}}]}",
               "invalid_message", "points[3].metrics: metric name 'a b' is invalid");
    s_rejects ("{\"type\":\"telemetry\",\"seq\":1,\"points\":[{\"ts\":1,\"metrics\":{\"\":1}}]}",
               "invalid_message", "metric name '' is invalid");
    s_rejects ("{\"type\":\"telemetry\",\"seq\":1,\"points\":[{\"ts\":1,\"metrics\":"
               "{\"caf\\u00e9\":1}}]}",
               "invalid_message", "metric name 'caf\?\?' is invalid");
    s_rejects ("{\"type\":\"telemetry\",\"seq\":1,\"points\":[{\"ts\":1,\"metrics\":{\"cpu\":"
               "\"high\"}}]}",
               "invalid_message", "points[0].metrics: value of 'cpu' must be a finite number");
    s_rejects ("{\"type\":\"telemetry\",\"seq\":1,\"points\":[{\"ts\":1,\"metrics\":{\"cpu\":"
               "true}}]}",
               "invalid_message", "value of 'cpu'");
    s_rejects ("{\"type\":\"telemetry\",\"seq\":1,\"points\":[{\"ts\":1,\"metrics\":{\"cpu\":"
               "null}}]}",
               "invalid_message", "value of 'cpu'");
    s_rejects ("{\"type\":\"telemetry\",\"seq\":1,\"points\":[{\"ts\":1,\"metrics\":{\"cpu\":"
               "{\"v\":1}}}]}",
               "invalid_message", "value of 'cpu'");
#undef POINT

    //  Metric names: 64 characters fine, 65 not.
    char text[512];
    char *name = s_repeat ('n', 64);
    snprintf (text, sizeof text,
              "{\"type\":\"telemetry\",\"seq\":1,\"points\":[{\"ts\":1,\"metrics\":{\"%s\":1}}]}",
              name);
    s_accepts (text, VW_WIRE_TELEMETRY);
    free (name);
    name = s_repeat ('n', 65);
    snprintf (text, sizeof text,
              "{\"type\":\"telemetry\",\"seq\":1,\"points\":[{\"ts\":1,\"metrics\":{\"%s\":1}}]}",
              name);
    s_rejects (text, "invalid_message", "is invalid");
    free (name);

    //  Limits on points and metrics.
    char *frame = s_telemetry_text (VW_WIRE_MAX_POINTS, 1);
    s_accepts (frame, VW_WIRE_TELEMETRY);
    free (frame);
    frame = s_telemetry_text (VW_WIRE_MAX_POINTS + 1, 1);
    s_rejects (frame, "invalid_message", "field 'points' must hold 1..10000 points, not 10001");
    free (frame);
    frame = s_telemetry_text (1, VW_WIRE_MAX_METRICS);
    s_accepts (frame, VW_WIRE_TELEMETRY);
    free (frame);
    frame = s_telemetry_text (1, VW_WIRE_MAX_METRICS + 1);
    s_rejects (frame, "invalid_message", "points[0].metrics must hold 1..256 metrics, not 257");
    free (frame);
}

//  Non-finite numbers cannot be written in JSON, and a msgpack NaN or
//  infinity cannot enter a jansson tree: the frame is malformed in both
//  formats, wherever the number sits.
static void
test_non_finite_values (void **state)
{
    const char *json_cases[] = {
        "{\"type\":\"telemetry\",\"seq\":1,\"points\":[{\"ts\":1,\"metrics\":{\"cpu\":NaN}}]}",
        "{\"type\":\"telemetry\",\"seq\":1,\"points\":[{\"ts\":1,\"metrics\":{\"cpu\":Infinity}}]}",
        "{\"type\":\"telemetry\",\"seq\":1,\"points\":[{\"ts\":1,\"metrics\":{\"cpu\":1e999}}]}",
        "{\"type\":\"telemetry\",\"seq\":1,\"points\":[{\"ts\":1,\"metrics\":{\"cpu\":-1e400}}]}",
    };
    for (size_t i = 0; i < sizeof json_cases / sizeof json_cases[0]; i++)
        s_expect_bytes (VW_WIRE_JSON, json_cases[i], strlen (json_cases[i]), "malformed", NULL);

    //  {"type":"telemetry","seq":1,"points":[{"ts":1,"metrics":{"cpu":<float>}}]}
    const uint8_t head[] = "\x83\xa4type\xa9telemetry\xa3seq\x01\xa6points\x91"
                           "\x82\xa2ts\x01\xa7metrics\x81\xa3"
                           "cpu";
    const uint8_t *floats[] = {
        (const uint8_t *) "\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00",  //  NaN
        (const uint8_t *) "\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00",  //  +Inf
        (const uint8_t *) "\xcb\xff\xf0\x00\x00\x00\x00\x00\x00",  //  -Inf
        (const uint8_t *) "\xca\x7f\xc0\x00\x00",                  //  float32 NaN
        (const uint8_t *) "\xca\x7f\x80\x00\x00",                  //  float32 +Inf
    };
    const size_t float_sizes[] = {9, 9, 9, 5, 5};
    for (size_t i = 0; i < 5; i++) {
        uint8_t frame[128];
        size_t size = sizeof head - 1;
        memcpy (frame, head, size);
        memcpy (frame + size, floats[i], float_sizes[i]);
        size += float_sizes[i];
        s_expect_bytes (VW_WIRE_MSGPACK, frame, size, "malformed", "finite");
    }
    //  The same frame with a finite float32 is fine and decodes to a real.
    uint8_t frame[128];
    size_t size = sizeof head - 1;
    memcpy (frame, head, size);
    memcpy (frame + size, "\xca\x3f\xc0\x00\x00", 5);  //  1.5f
    size += 5;
    vw_wire_msg_t msg;
    vw_wire_error_t err;
    assert_int_equal (vw_wire_decode (VW_WIRE_MSGPACK, frame, size, &msg, &err), 0);
    json_t *cpu =
        json_object_get (json_object_get (json_array_get (msg.points, 0), "metrics"), "cpu");
    assert_true (json_is_real (cpu));
    assert_true (json_real_value (cpu) == 1.5);
    vw_wire_msg_reset (&msg);
}

static void
test_command_ack_rules (void **state)
{
    s_rejects ("{\"type\":\"command_ack\"}", "invalid_message",
               "field 'command_id' is required and must be a string");
    s_rejects ("{\"type\":\"command_ack\",\"command_id\":5}", "invalid_message", "'command_id'");
    s_rejects ("{\"type\":\"command_ack\",\"command_id\":\"\"}", "invalid_message", "'command_id'");
    char text[512];
    char *id = s_repeat ('c', 128);
    snprintf (text, sizeof text, "{\"type\":\"command_ack\",\"command_id\":\"%s\"}", id);
    s_accepts (text, VW_WIRE_COMMAND_ACK);
    free (id);
    id = s_repeat ('c', 129);
    snprintf (text, sizeof text, "{\"type\":\"command_ack\",\"command_id\":\"%s\"}", id);
    s_rejects (text, "invalid_message", "'command_id'");
    free (id);
}

static void
test_command_progress_rules (void **state)
{
    s_accepts ("{\"type\":\"command_progress\",\"command_id\":\"c\",\"progress\":0}",
               VW_WIRE_COMMAND_PROGRESS);
    s_accepts ("{\"type\":\"command_progress\",\"command_id\":\"c\",\"progress\":100}",
               VW_WIRE_COMMAND_PROGRESS);
    s_rejects ("{\"type\":\"command_progress\",\"progress\":10}", "invalid_message",
               "'command_id'");
    s_rejects ("{\"type\":\"command_progress\",\"command_id\":\"c\",\"progress\":101}",
               "invalid_message", "field 'progress' must be an integer in 0..100");
    s_rejects ("{\"type\":\"command_progress\",\"command_id\":\"c\",\"progress\":-1}",
               "invalid_message", "'progress'");
    s_rejects ("{\"type\":\"command_progress\",\"command_id\":\"c\",\"progress\":40.5}",
               "invalid_message", "'progress'");
    s_rejects ("{\"type\":\"command_progress\",\"command_id\":\"c\",\"progress\":\"40\"}",
               "invalid_message", "'progress'");
    s_rejects ("{\"type\":\"command_progress\",\"command_id\":\"c\",\"progress\":"
               "9223372036854775807}",
               "invalid_message", "'progress'");
    s_rejects ("{\"type\":\"command_progress\",\"command_id\":\"c\",\"message\":1}",
               "invalid_message", "'message'");
}

static void
test_command_result_rules (void **state)
{
    s_accepts ("{\"type\":\"command_result\",\"command_id\":\"c\",\"status\":\"completed\","
               "\"result\":null}",
               VW_WIRE_COMMAND_RESULT);
    s_accepts ("{\"type\":\"command_result\",\"command_id\":\"c\",\"status\":\"completed\","
               "\"result\":[1,\"two\",3.0]}",
               VW_WIRE_COMMAND_RESULT);
    s_rejects ("{\"type\":\"command_result\",\"status\":\"completed\"}", "invalid_message",
               "'command_id'");
    s_rejects ("{\"type\":\"command_result\",\"command_id\":\"c\"}", "invalid_message",
               "field 'status' is required and must be one of completed|failed");
    s_rejects ("{\"type\":\"command_result\",\"command_id\":\"c\",\"status\":\"done\"}",
               "invalid_message", "'status'");
    s_rejects ("{\"type\":\"command_result\",\"command_id\":\"c\",\"status\":null}",
               "invalid_message", "'status'");
    s_rejects ("{\"type\":\"command_result\",\"command_id\":\"c\",\"status\":\"failed\","
               "\"error\":{}}",
               "invalid_message", "field 'error' must be a string");
    //  The attempt echo (issue 9) is optional, an integer >= 1 when given.
    s_rejects ("{\"type\":\"command_result\",\"command_id\":\"c\",\"status\":\"failed\","
               "\"attempt\":0}",
               "invalid_message", "field 'attempt' must be an integer >= 1");
    s_rejects ("{\"type\":\"command_result\",\"command_id\":\"c\",\"status\":\"failed\","
               "\"attempt\":\"2\"}",
               "invalid_message", "field 'attempt' must be an integer");

    //  A null result is a result, not an absent one.
    json_t *tree = s_tree ("{\"type\":\"command_result\",\"command_id\":\"c\",\"status\":"
                           "\"completed\",\"result\":null}");
    vw_wire_msg_t msgs[2];
    s_round_trip (tree, VW_WIRE_COMMAND_RESULT, msgs);
    for (int i = 0; i < 2; i++) {
        assert_true (json_is_null (msgs[i].result));
        vw_wire_msg_reset (&msgs[i]);
    }
    json_decref (tree);
}

static void
test_backend_message_rules (void **state)
{
    s_rejects ("{\"type\":\"welcome\",\"heartbeat_interval_ms\":1,\"server_time\":1}",
               "invalid_message", "'session_id'");
    s_rejects ("{\"type\":\"welcome\",\"session_id\":\"s\",\"server_time\":1}", "invalid_message",
               "'heartbeat_interval_ms'");
    s_rejects ("{\"type\":\"welcome\",\"session_id\":\"s\",\"heartbeat_interval_ms\":0,"
               "\"server_time\":1}",
               "invalid_message", "'heartbeat_interval_ms'");
    s_rejects ("{\"type\":\"welcome\",\"session_id\":\"s\",\"heartbeat_interval_ms\":1,"
               "\"server_time\":-5}",
               "invalid_message", "'server_time'");
    s_rejects ("{\"type\":\"welcome\",\"session_id\":\"s\",\"heartbeat_interval_ms\":1,"
               "\"server_time\":1.5}",
               "invalid_message", "'server_time'");

    s_rejects ("{\"type\":\"challenge\"}", "invalid_message", "'nonce'");
    s_rejects ("{\"type\":\"challenge\",\"nonce\":\"**\"}", "invalid_message", "'nonce'");

    s_accepts ("{\"type\":\"error\",\"code\":\"x\"}", VW_WIRE_ERROR);
    s_rejects ("{\"type\":\"error\"}", "invalid_message", "'code'");
    s_rejects ("{\"type\":\"error\",\"code\":\"bad code\"}", "invalid_message", "'code'");
    s_rejects ("{\"type\":\"error\",\"code\":\"x\",\"message\":1}", "invalid_message", "'message'");

#define CMD_HEAD "{\"type\":\"command\",\"command_id\":\"c\",\"command_type\":\"ping\","
    s_accepts (CMD_HEAD "\"payload\":{},\"timeout_ms\":1,\"attempt\":1}", VW_WIRE_COMMAND);
    s_rejects ("{\"type\":\"command\",\"command_type\":\"ping\",\"payload\":{},\"timeout_ms\":1,"
               "\"attempt\":1}",
               "invalid_message", "'command_id'");
    s_rejects ("{\"type\":\"command\",\"command_id\":\"c\",\"payload\":{},\"timeout_ms\":1,"
               "\"attempt\":1}",
               "invalid_message", "'command_type'");
    s_rejects ("{\"type\":\"command\",\"command_id\":\"c\",\"command_type\":\"a b\","
               "\"payload\":{},\"timeout_ms\":1,\"attempt\":1}",
               "invalid_message", "'command_type'");
    s_rejects (CMD_HEAD "\"timeout_ms\":1,\"attempt\":1}", "invalid_message", "'payload'");
    s_rejects (CMD_HEAD "\"payload\":[],\"timeout_ms\":1,\"attempt\":1}", "invalid_message",
               "'payload'");
    s_rejects (CMD_HEAD "\"payload\":{},\"timeout_ms\":0,\"attempt\":1}", "invalid_message",
               "'timeout_ms'");
    s_rejects (CMD_HEAD "\"payload\":{},\"attempt\":1}", "invalid_message", "'timeout_ms'");
    s_rejects (CMD_HEAD "\"payload\":{},\"timeout_ms\":1,\"attempt\":0}", "invalid_message",
               "'attempt'");
    s_rejects (CMD_HEAD "\"payload\":{},\"timeout_ms\":1,\"attempt\":\"1\"}", "invalid_message",
               "'attempt'");
#undef CMD_HEAD

    s_rejects ("{\"type\":\"cancel\"}", "invalid_message", "'command_id'");
    s_rejects ("{\"type\":\"telemetry_ack\"}", "invalid_message", "'seq'");
    s_rejects ("{\"type\":\"telemetry_ack\",\"seq\":-1}", "invalid_message", "'seq'");
}

//  --------------------------------------------------------------------------
//  Malformed input

#define JSON_BAD(text) s_expect_bytes (VW_WIRE_JSON, text, sizeof (text) - 1, "malformed", NULL)
#define MP_BAD(bytes, why)                                                                         \
    s_expect_bytes (VW_WIRE_MSGPACK, bytes, sizeof (bytes) - 1, "malformed", why)

static void
test_malformed_json (void **state)
{
    JSON_BAD ("{\"type\":\"heartbeat\"");
    JSON_BAD ("{\"type\":\"heartbeat\",}");
    JSON_BAD ("{\"type\":\"heartbeat\"} x");
    JSON_BAD ("{\"type\":\"heartbeat\"}{}");
    JSON_BAD ("[{\"type\":\"heartbeat\"}]");
    JSON_BAD ("\"heartbeat\"");
    JSON_BAD ("42");
    JSON_BAD ("null");
    JSON_BAD ("");
    JSON_BAD (" ");
    JSON_BAD ("{'type':'heartbeat'}");
    JSON_BAD ("{\"type\":\"heartbeat\",\"type\":\"heartbeat\"}");        //  duplicate
    JSON_BAD ("{\"type\":\"hello\",\"agent_id\":\"\xff\"}");             //  bad UTF-8
    JSON_BAD ("{\"type\":\"hello\",\"agent_id\":\"\xc0\x80\"}");         //  overlong
    JSON_BAD ("{\"type\":\"hello\",\"agent_id\":\"\xed\xa0\x80\"}");     //  surrogate
    JSON_BAD ("{\"type\":\"hello\",\"agent_id\":\"\\ud800\"}");          //  lone surrogate
    JSON_BAD ("{\"type\":\"hello\",\"agent_id\":\"a\\u0000b\"}");        //  NUL escape
    JSON_BAD ("{\"type\":\"hello\",\"agent_id\":\"a\0b\"}");             //  raw NUL
    JSON_BAD ("{\"type\":\"hello\",\"\xff\":1}");                        //  bad key
    JSON_BAD ("{\"type\":\"telemetry\",\"seq\":99999999999999999999}");  //  int overflow
    JSON_BAD ("{\"type\":\"heartbeat\"}\0");                             //  trailing NUL
    s_expect_bytes (VW_WIRE_JSON, NULL, 0, "malformed", NULL);
    s_expect_bytes (VW_WIRE_JSON, NULL, 10, "malformed", NULL);

    //  Error messages quote input yet stay printable ASCII.
    vw_wire_msg_t msg;
    vw_wire_error_t err;
    const char *text = "{\"a\":\xff\xfe}";
    assert_int_equal (vw_wire_decode (VW_WIRE_JSON, text, strlen (text), &msg, &err), -1);
    for (const char *p = err.message; *p; p++)
        assert_true (*p >= 0x20 && *p <= 0x7e);

    //  A NULL err is allowed.
    assert_int_equal (vw_wire_decode (VW_WIRE_JSON, "x", 1, &msg, NULL), -1);
    assert_null (vw_wire_parse (VW_WIRE_JSON, "x", 1, NULL));
    //  An unknown format is an error, not a crash.
    assert_int_equal (vw_wire_decode ((vw_wire_format_t) 7, "{}", 2, &msg, &err), -1);
    assert_string_equal (err.code, "malformed");
}

static void
test_malformed_msgpack (void **state)
{
    MP_BAD ("\x81\xa4type\xa9heartbeat\xc0", "trailing");      //  trailing nil
    MP_BAD ("\x81\xa4type\xa9heartbeat\x00\x00", "trailing");  //  trailing zeros
    MP_BAD ("\x91\xa1x", "must be a msgpack map");             //  array
    MP_BAD ("\x01", "must be a msgpack map");                  //  int
    MP_BAD ("\xa2hi", "must be a msgpack map");                //  str
    MP_BAD ("\xc0", "must be a msgpack map");                  //  nil
    MP_BAD ("\x81\x01\x02", "key is not a string");            //  int key
    MP_BAD ("\x81\xc0\x02", "key is not a string");            //  nil key
    MP_BAD ("\x81\x91\xa1x\x02", "key is not a string");       //  array key
    MP_BAD ("\x81\xa4type\xc4\x01x", "bin");                   //  bin value
    MP_BAD ("\x81\xa4type\xd4\x01\x00", "ext");                //  fixext value
    MP_BAD ("\x81\xa4type\xc7\x01\x05x", "ext");               //  ext8 value
    MP_BAD ("\x81\xa4type\xd6\xff\x00\x00\x00\x00", "ext");    //  timestamp ext
    MP_BAD ("\x81\xa1t\xc1", "invalid msgpack");               //  reserved byte
    MP_BAD ("\xc1", "invalid msgpack");
    MP_BAD ("\x81\xa4type\xdd\xff\xff\xff\xff", "invalid msgpack");  //  array32 of 4 billion
    MP_BAD ("\x81\xa4type\xdd\xff\xff\xff\xff\xc0\xc0\xc0\xc0", "invalid msgpack");
    MP_BAD ("\xdf\xff\xff\xff\xff\xa4type\xa9heartbeat", "invalid msgpack");  //  map32 of 4 billion
    MP_BAD ("\x81\xa4type\xdb\xff\xff\xff\xff\x61\x62\x63", "invalid msgpack");  //  str32 of 4 GB
    MP_BAD ("\x82\xa4type\xa9heartbeat\xa4type\xa9heartbeat",
            "duplicate key 'type'");                   //  duplicate key
    MP_BAD ("\x81\xa4type\xa1\xff", "UTF-8");          //  bad UTF-8 value
    MP_BAD ("\x81\xa4type\xa2\xc0\x80", "UTF-8");      //  overlong
    MP_BAD ("\x81\xa4type\xa3\xed\xa0\x80", "UTF-8");  //  surrogate
    MP_BAD ("\x81\xa2\xff\xfe\x01", "UTF-8");          //  bad UTF-8 key
    MP_BAD ("\x81\xa4type\xa3\x61\x00\x62", "NUL");    //  NUL in value
    MP_BAD ("\x81\xa3t\0e\x01", "NUL");                //  NUL in key
    MP_BAD ("\x81\xa1n\xcf\x80\x00\x00\x00\x00\x00\x00\x00",
            "out of range");  //  uint64 > INT64_MAX
    MP_BAD ("\x81\xa1n\xcf\xff\xff\xff\xff\xff\xff\xff\xff", "out of range");
    s_expect_bytes (VW_WIRE_MSGPACK, "", 0, "malformed", NULL);
    s_expect_bytes (VW_WIRE_MSGPACK, NULL, 0, "malformed", NULL);

    //  INT64_MAX as uint64 and INT64_MIN as int64 are fine.
    json_t *tree = vw_wire_parse (VW_WIRE_MSGPACK,
                                  "\x82\xa1n\xcf\x7f\xff\xff\xff\xff\xff\xff\xff"
                                  "\xa1m\xd3\x80\x00\x00\x00\x00\x00\x00\x00",
                                  23, NULL);
    assert_non_null (tree);
    assert_true (json_integer_value (json_object_get (tree, "n")) == INT64_MAX);
    assert_true (json_integer_value (json_object_get (tree, "m")) == INT64_MIN);
    json_decref (tree);

    //  Non-minimal encodings are accepted (and equal the minimal ones).
    tree = vw_wire_parse (VW_WIRE_MSGPACK,
                          "\xde\x00\x01\xd9\x04type\xdc\x00\x02\xd0\x05\xd3\xff\xff\xff\xff\xff"
                          "\xff\xff\xff",
                          23, NULL);
    assert_non_null (tree);
    json_t *want = s_tree ("{\"type\":[5,-1]}");
    assert_true (json_equal (tree, want));
    json_decref (want);
    json_decref (tree);
}

//  Every proper prefix of a valid frame is refused, in both formats.
static void
test_truncations (void **state)
{
    json_t *tree = s_tree ("{\"type\":\"telemetry\",\"seq\":42,\"points\":[{\"ts\":1764230000000,"
                           "\"metrics\":{\"cpu\":0.31,\"mem_used_mb\":812,\"big\":70000,"
                           "\"neg\":-40000}}],\"extra\":[null,true,false,\"x\",{}]}");
    for (int format = VW_WIRE_JSON; format <= VW_WIRE_MSGPACK; format++) {
        uint8_t *data;
        size_t size;
        s_serialize (format, tree, &data, &size);
        for (size_t len = 0; len < size; len++) {
            //  Copy so that ASan sees any read past the prefix.
            uint8_t *prefix = malloc (len ? len : 1);
            memcpy (prefix, data, len);
            s_expect_bytes (format, prefix, len, "malformed", NULL);
            free (prefix);
        }
        vw_wire_msg_t msg;
        vw_wire_error_t err;
        assert_int_equal (vw_wire_decode (format, data, size, &msg, &err), 0);
        vw_wire_msg_reset (&msg);
        free (data);
    }
    json_decref (tree);
}

//  A JSON frame of `depth` objects inside one another: {"a":{"a":...{}}}
static char *
s_deep_json (int depth, bool arrays)
{
    size_t cap = (size_t) depth * 8 + 32;
    char *text = malloc (cap);
    size_t len = 0;
    len += (size_t) sprintf (text + len, "{\"type\":\"heartbeat\"");
    if (depth > 1)
        len += (size_t) sprintf (text + len, ",\"a\":");
    for (int i = 1; i < depth; i++)
        len += (size_t) sprintf (text + len, arrays ? "[" : (i + 1 < depth ? "{\"a\":" : "{"));
    for (int i = 1; i < depth; i++)
        len += (size_t) sprintf (text + len, arrays ? "]" : "}");
    sprintf (text + len, "}");
    return text;
}

//  The same in msgpack; `leaf` says whether the innermost container holds a
//  nil (true) or is empty.
static uint8_t *
s_deep_msgpack (int depth, bool arrays, bool leaf, size_t *size)
{
    uint8_t *data = malloc ((size_t) depth * 4 + 32);
    size_t len = 0;
    data[len++] = depth > 1 ? 0x82 : 0x81;
    memcpy (data + len, "\xa4type\xa9heartbeat", 15);
    len += 15;
    if (depth > 1) {
        data[len++] = 0xa1;
        data[len++] = 'a';
    }
    for (int i = 1; i < depth; i++) {
        bool last = i + 1 == depth;
        if (arrays)
            data[len++] = last && !leaf ? 0x90 : 0x91;
        else {
            data[len++] = last && !leaf ? 0x80 : 0x81;
            if (!last || leaf) {
                data[len++] = 0xa1;
                data[len++] = 'a';
            }
        }
        if (last && leaf)
            data[len++] = 0xc0;
    }
    *size = len;
    return data;
}

static void
test_depth_limit (void **state)
{
    vw_wire_msg_t msg;
    vw_wire_error_t err;
    for (int arrays = 0; arrays <= 1; arrays++) {
        //  Exactly the limit (the top-level object counts as one) is fine.
        char *text = s_deep_json (VW_WIRE_MAX_DEPTH, arrays);
        assert_int_equal (vw_wire_decode (VW_WIRE_JSON, text, strlen (text), &msg, &err), 0);
        vw_wire_msg_reset (&msg);
        free (text);
        for (int leaf = 0; leaf <= 1; leaf++) {
            size_t size;
            uint8_t *data = s_deep_msgpack (VW_WIRE_MAX_DEPTH, arrays, leaf, &size);
            if (vw_wire_decode (VW_WIRE_MSGPACK, data, size, &msg, &err))
                fail_msg ("depth %d: %s", VW_WIRE_MAX_DEPTH, err.message);
            vw_wire_msg_reset (&msg);
            free (data);
        }
        //  One more, including an empty innermost container, is not; nor is 100.
        int depths[] = {VW_WIRE_MAX_DEPTH + 1, 100, 5000};
        for (int d = 0; d < 3; d++) {
            text = s_deep_json (depths[d], arrays);
            s_expect_bytes (VW_WIRE_JSON, text, strlen (text), "malformed", NULL);
            free (text);
            for (int leaf = 0; leaf <= 1; leaf++) {
                size_t size;
                uint8_t *data = s_deep_msgpack (depths[d], arrays, leaf, &size);
                s_expect_bytes (VW_WIRE_MSGPACK, data, size, "malformed", NULL);
                free (data);
            }
        }
    }
}

//  vw_wire_parse returns any object without looking at its type.
static void
test_parse (void **state)
{
    vw_wire_error_t err;
    json_t *tree = vw_wire_parse (VW_WIRE_JSON, "{\"x\":1}", 7, &err);
    assert_non_null (tree);
    assert_int_equal (json_integer_value (json_object_get (tree, "x")), 1);
    json_decref (tree);
    tree = vw_wire_parse (VW_WIRE_MSGPACK, "\x80", 1, &err);
    assert_non_null (tree);
    assert_int_equal (json_object_size (tree), 0);
    json_decref (tree);
    assert_null (vw_wire_parse (VW_WIRE_MSGPACK, "\x90", 1, &err));
    assert_string_equal (err.code, "malformed");
}

//  --------------------------------------------------------------------------
//  Randomised input

//  Decodes and checks the outcome is one of the two allowed ones; a
//  success must survive a re-serialisation in both formats.
static int
s_decode_any (vw_wire_format_t format, const uint8_t *data, size_t size)
{
    vw_wire_msg_t msg;
    vw_wire_error_t err;
    int rc = vw_wire_decode (format, data, size, &msg, &err);
    if (rc == 0) {
        assert_non_null (msg.root);
        assert_true (msg.type != VW_WIRE_UNKNOWN);
        for (int again = VW_WIRE_JSON; again <= VW_WIRE_MSGPACK; again++) {
            uint8_t *out;
            size_t out_size;
            s_serialize (again, msg.root, &out, &out_size);
            vw_wire_msg_t msg2;
            assert_int_equal (vw_wire_decode (again, out, out_size, &msg2, &err), 0);
            assert_true (json_equal (msg.root, msg2.root));
            vw_wire_msg_reset (&msg2);
            free (out);
        }
        vw_wire_msg_reset (&msg);
        return 0;
    }
    assert_int_equal (rc, -1);
    assert_null (msg.root);
    assert_true (s_is_known_code (err.code));
    assert_true (strlen (err.message) > 0);
    return -1;
}

static void
test_random_bytes (void **state)
{
    s_rng_state = 0x5eed5eed12345678ULL;
    //  Plain noise, then noise from a JSON-ish alphabet and noise that
    //  starts with a msgpack map header, so that parsers get past byte one.
    static const char alphabet[] = "{}[]\":,0123456789.eE-+ truefalsnl\\u\xc3\xa9\xff";
    uint8_t buffer[512];
    int successes = 0;
    for (int i = 0; i < 21000; i++) {
        size_t size = s_below (i % 10 == 0 ? sizeof buffer : 48);
        for (size_t j = 0; j < size; j++)
            buffer[j] = (uint8_t) s_rand ();
        if (i % 3 == 1)
            for (size_t j = 0; j < size; j++)
                buffer[j] = (uint8_t) alphabet[s_below (sizeof alphabet - 1)];
        if (i % 3 == 2 && size > 0)
            buffer[0] = (uint8_t) (0x80 | s_below (16));
        for (int format = VW_WIRE_JSON; format <= VW_WIRE_MSGPACK; format++) {
            uint8_t *copy = malloc (size ? size : 1);
            memcpy (copy, buffer, size);
            if (s_decode_any (format, copy, size) == 0)
                successes++;
            free (copy);
        }
    }
    print_message ("random bytes: %d of 42000 decodes succeeded\n", successes);
}

//  Valid frames of every type, the seeds for mutation.
static const char *s_valid_frames[] = {
    "{\"type\":\"hello\",\"agent_id\":\"gw-01\",\"token\":\"tok\",\"version\":\"1.4.2\","
    "\"hostname\":\"gw-01.lan\",\"capabilities\":[\"exec\",\"restart_service\"],"
    "\"labels\":{\"site\":\"ams\"}}",
    "{\"type\":\"auth\",\"signature\":\"c2lnbmF0dXJl\"}",
    "{\"type\":\"heartbeat\",\"status\":\"online\"}",
    "{\"type\":\"telemetry\",\"seq\":42,\"points\":[{\"ts\":1764230000000,\"metrics\":"
    "{\"cpu\":0.31,\"mem_used_mb\":812,\"tunnels\":17}},{\"ts\":1,\"metrics\":{\"x\":-3}}]}",
    "{\"type\":\"command_ack\",\"command_id\":\"c-1\"}",
    "{\"type\":\"command_progress\",\"command_id\":\"c-1\",\"progress\":40,\"message\":\"half\"}",
    "{\"type\":\"command_result\",\"command_id\":\"c-1\",\"status\":\"completed\","
    "\"result\":{\"out\":[1,2.5,null,true,\"x\"]},\"error\":\"\"}",
    "{\"type\":\"welcome\",\"session_id\":\"s\",\"heartbeat_interval_ms\":10000,"
    "\"server_time\":1764230000000}",
    "{\"type\":\"challenge\",\"nonce\":\"bm9uY2U=\"}",
    "{\"type\":\"error\",\"code\":\"unauthorized\",\"message\":\"no\"}",
    "{\"type\":\"command\",\"command_id\":\"c-7\",\"command_type\":\"restart_service\","
    "\"payload\":{\"name\":\"wg0\"},\"timeout_ms\":30000,\"attempt\":1}",
    "{\"type\":\"cancel\",\"command_id\":\"c-7\"}",
    "{\"type\":\"telemetry_ack\",\"seq\":42}",
};
#define S_VALID_COUNT (sizeof s_valid_frames / sizeof s_valid_frames[0])

static size_t
s_mutate (uint8_t *data, size_t size, size_t cap)
{
    int edits = 1 + (int) s_below (4);
    for (int e = 0; e < edits; e++) {
        switch (s_below (6)) {
            case 0:  //  bit flip
                if (size)
                    data[s_below (size)] ^= (uint8_t) (1u << s_below (8));
                break;
            case 1:  //  truncation
                size = s_below (size + 1);
                break;
            case 2:  //  insertion of a random byte
                if (size < cap) {
                    size_t at = s_below (size + 1);
                    memmove (data + at + 1, data + at, size - at);
                    data[at] = (uint8_t) s_rand ();
                    size++;
                }
                break;
            case 3:  //  overwrite with an interesting byte
                if (size) {
                    static const uint8_t bytes[] = {0x00, 0xff, 0xc1, 0xdd, 0xdf, 0xc4,
                                                    0xd4, 0x7f, 0x80, '"',  '{',  '\\'};
                    data[s_below (size)] = bytes[s_below (sizeof bytes)];
                }
                break;
            case 4:  //  deletion
                if (size) {
                    size_t at = s_below (size);
                    memmove (data + at, data + at + 1, size - at - 1);
                    size--;
                }
                break;
            default:  //  duplicate a chunk
                if (size && size < cap) {
                    size_t from = s_below (size);
                    size_t len = 1 + s_below (size - from);
                    if (len > cap - size)
                        len = cap - size;
                    size_t at = s_below (size + 1);
                    uint8_t chunk[1024];
                    memcpy (chunk, data + from, len);
                    memmove (data + at + len, data + at, size - at);
                    memcpy (data + at, chunk, len);
                    size += len;
                }
                break;
        }
    }
    return size;
}

static void
test_random_mutations (void **state)
{
    s_rng_state = 0xfeedfacecafebeefULL;
    //  Seeds in both formats.
    uint8_t *seeds[S_VALID_COUNT][2];
    size_t seed_sizes[S_VALID_COUNT][2];
    for (size_t i = 0; i < S_VALID_COUNT; i++) {
        json_t *tree = s_tree (s_valid_frames[i]);
        for (int format = VW_WIRE_JSON; format <= VW_WIRE_MSGPACK; format++)
            s_serialize (format, tree, &seeds[i][format], &seed_sizes[i][format]);
        json_decref (tree);
    }
    int successes = 0;
    uint8_t buffer[1024];
    for (int i = 0; i < 21000; i++) {
        size_t which = s_below (S_VALID_COUNT);
        int format = (int) s_below (2);
        size_t size = seed_sizes[which][format];
        assert_true (size <= 512);
        memcpy (buffer, seeds[which][format], size);
        size = s_mutate (buffer, size, sizeof buffer);
        //  Each mutant goes to both decoders: the other one sees foreign bytes.
        for (int f = VW_WIRE_JSON; f <= VW_WIRE_MSGPACK; f++) {
            uint8_t *copy = malloc (size ? size : 1);
            memcpy (copy, buffer, size);
            if (s_decode_any (f, copy, size) == 0)
                successes++;
            free (copy);
        }
    }
    print_message ("mutations: %d of 42000 decodes succeeded\n", successes);
    for (size_t i = 0; i < S_VALID_COUNT; i++)
        for (int format = VW_WIRE_JSON; format <= VW_WIRE_MSGPACK; format++)
            free (seeds[i][format]);
}

//  --------------------------------------------------------------------------
//  vw_mpack_check

typedef struct {
    const char *name;
    const char *bytes;
    size_t size;
} mpack_case_t;

#define MPC(name, lit)                                                                             \
    {                                                                                              \
        name, lit, sizeof (lit) - 1                                                                \
    }

static void
test_mpack_check_families (void **state)
{
    static char str16[3 + 300], str32[5 + 70], bin16[3 + 300], arr16[3 + 20];
    static char map16[3 + 40], arr32[5 + 3], map32[5 + 6], ext16[4 + 300], ext32[6 + 5];
    memcpy (str16, "\xda\x01\x2c", 3);
    memset (str16 + 3, 'a', 300);
    memcpy (str32, "\xdb\x00\x00\x00\x46", 5);  //  wide header, short body
    memset (str32 + 5, 'b', 70);
    memcpy (bin16, "\xc5\x01\x2c", 3);
    memset (bin16 + 3, 0, 300);
    memcpy (arr16, "\xdc\x00\x14", 3);
    memset (arr16 + 3, 0x01, 20);
    memcpy (map16, "\xde\x00\x14", 3);
    memset (map16 + 3, 0xc0, 40);
    memcpy (arr32, "\xdd\x00\x00\x00\x03\xc0\xc2\xc3", 8);
    memcpy (map32, "\xdf\x00\x00\x00\x03\x01\x02\x03\x04\x05\x06", 11);
    memcpy (ext16, "\xc8\x01\x2c\x05", 4);
    memset (ext16 + 4, 7, 300);
    memcpy (ext32,
            "\xc9\x00\x00\x00\x05\x05"
            "abcde",
            11);

    const mpack_case_t cases[] = {
        MPC ("nil", "\xc0"),
        MPC ("false", "\xc2"),
        MPC ("true", "\xc3"),
        MPC ("positive fixint", "\x7f"),
        MPC ("negative fixint", "\xe0"),
        MPC ("uint8", "\xcc\xff"),
        MPC ("uint16", "\xcd\xff\xff"),
        MPC ("uint32", "\xce\xff\xff\xff\xff"),
        MPC ("uint64", "\xcf\xff\xff\xff\xff\xff\xff\xff\xff"),
        MPC ("int8", "\xd0\x80"),
        MPC ("int16", "\xd1\x80\x00"),
        MPC ("int32", "\xd2\x80\x00\x00\x00"),
        MPC ("int64", "\xd3\x80\x00\x00\x00\x00\x00\x00\x00"),
        MPC ("float32", "\xca\x3f\xc0\x00\x00"),
        MPC ("float64", "\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00"),
        MPC ("fixstr empty", "\xa0"),
        MPC ("fixstr", "\xa3"
                       "abc"),
        MPC ("str8", "\xd9\x03"
                     "abc"),
        {"str16", str16, sizeof str16},
        {"str32", str32, sizeof str32},
        MPC ("bin8", "\xc4\x02\x00\x01"),
        {"bin16", bin16, sizeof bin16},
        MPC ("bin32", "\xc6\x00\x00\x00\x01\x00"),
        MPC ("fixext1", "\xd4\x01\x00"),
        MPC ("fixext2", "\xd5\x01\x00\x00"),
        MPC ("fixext4", "\xd6\xff\x00\x00\x00\x00"),
        MPC ("fixext8", "\xd7\x01\x00\x00\x00\x00\x00\x00\x00\x00"),
        MPC ("fixext16", "\xd8\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
                         "\x00"),
        MPC ("ext8", "\xc7\x02\x05\x00\x00"),
        {"ext16", ext16, sizeof ext16},
        {"ext32", ext32, sizeof ext32},
        MPC ("fixarray empty", "\x90"),
        MPC ("fixarray", "\x93\x01\xa1x\x91\xc0"),
        {"array16", arr16, sizeof arr16},
        {"array32", arr32, sizeof arr32},
        MPC ("fixmap empty", "\x80"),
        MPC ("fixmap", "\x82\xa1"
                       "a\x01\xa1"
                       "b\x92\x02\x03"),
        {"map16", map16, sizeof map16},
        {"map32", map32, sizeof map32},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const mpack_case_t *c = &cases[i];
        //  Alone, then followed by a trailing byte that `used` must exclude.
        uint8_t *data = malloc (c->size + 1);
        memcpy (data, c->bytes, c->size);
        data[c->size] = 0xc0;
        for (size_t extra = 0; extra <= 1; extra++) {
            size_t used = 0;
            if (vw_mpack_check (data, c->size + extra, VW_MPACK_MAX_DEPTH, &used))
                fail_msg ("%s rejected", c->name);
            assert_int_equal (used, c->size);
        }
        assert_int_equal (vw_mpack_check (data, c->size, VW_MPACK_MAX_DEPTH, NULL), 0);
        //  Every proper prefix is refused.
        for (size_t len = 0; len < c->size; len++) {
            uint8_t *prefix = malloc (len ? len : 1);
            memcpy (prefix, data, len);
            if (vw_mpack_check (prefix, len, VW_MPACK_MAX_DEPTH, NULL) == 0)
                fail_msg ("%s: prefix of %zu bytes accepted", c->name, len);
            free (prefix);
        }
        free (data);
    }
}

static void
test_mpack_check_refusals (void **state)
{
    size_t used = 99;
    //  Reserved byte, anywhere.
    assert_int_equal (vw_mpack_check ((const uint8_t *) "\xc1", 1, 4, &used), -1);
    assert_int_equal (vw_mpack_check ((const uint8_t *) "\x92\x01\xc1", 3, 4, &used), -1);
    //  Counts larger than the bytes left.
    assert_int_equal (vw_mpack_check ((const uint8_t *) "\xdd\xff\xff\xff\xff\xc0", 6, 4, &used),
                      -1);
    assert_int_equal (
        vw_mpack_check ((const uint8_t *) "\xdf\x80\x00\x00\x00\xc0\xc0", 7, 4, &used), -1);
    assert_int_equal (vw_mpack_check ((const uint8_t *) "\xdb\xff\xff\xff\xff"
                                                        "ab",
                                      7, 4, &used),
                      -1);
    assert_int_equal (vw_mpack_check ((const uint8_t *) "\xc6\xff\xff\xff\xff"
                                                        "ab",
                                      7, 4, &used),
                      -1);
    assert_int_equal (vw_mpack_check ((const uint8_t *) "\xc9\xff\xff\xff\xff\x01"
                                                        "ab",
                                      8, 4, &used),
                      -1);
    //  Bad arguments.
    assert_int_equal (vw_mpack_check (NULL, 0, 4, &used), -1);
    assert_int_equal (vw_mpack_check ((const uint8_t *) "\xc0", 0, 4, &used), -1);
    assert_int_equal (vw_mpack_check ((const uint8_t *) "\xc0", 1, -1, &used), -1);
    assert_int_equal (vw_mpack_check ((const uint8_t *) "\xc0", 1, VW_MPACK_MAX_DEPTH + 1, &used),
                      -1);
    assert_int_equal (used, 99);  //  untouched on failure

    //  Depth: max_depth containers holding something are fine, one more is not.
    uint8_t deep[64];
    for (int depth = 0; depth <= 5; depth++) {
        memset (deep, 0x91, (size_t) depth);
        deep[depth] = 0x01;
        int rc = vw_mpack_check (deep, (size_t) depth + 1, 4, &used);
        assert_int_equal (rc, depth <= 4 ? 0 : -1);
        if (rc == 0)
            assert_int_equal (used, (size_t) depth + 1);
    }
    memset (deep, 0x91, VW_MPACK_MAX_DEPTH);
    deep[VW_MPACK_MAX_DEPTH] = 0xc0;
    assert_int_equal (vw_mpack_check (deep, VW_MPACK_MAX_DEPTH + 1, VW_MPACK_MAX_DEPTH, &used), 0);
    memset (deep, 0x91, VW_MPACK_MAX_DEPTH + 1);
    deep[VW_MPACK_MAX_DEPTH + 1] = 0xc0;
    assert_int_equal (vw_mpack_check (deep, VW_MPACK_MAX_DEPTH + 2, VW_MPACK_MAX_DEPTH, &used), -1);
}

//  A refused telemetry frame's error can name its seq (once it was read);
//  an error frame carries it back to the agent.
static void
test_telemetry_refusals_name_the_seq (void **state)
{
    (void) state;
    vw_wire_msg_t msg;
    vw_wire_error_t err;
    const char *bad =
        "{\"type\":\"telemetry\",\"seq\":7,\"points\":[{\"ts\":1,\"metrics\":{\"a b\":1}}]}";
    assert_int_equal (vw_wire_decode (VW_WIRE_JSON, bad, strlen (bad), &msg, &err), -1);
    assert_int_equal (err.seq, 7);
    const char *noseq = "{\"type\":\"telemetry\",\"points\":[]}";
    assert_int_equal (vw_wire_decode (VW_WIRE_JSON, noseq, strlen (noseq), &msg, &err), -1);
    assert_int_equal (err.seq, -1);
    const char *ok =
        "{\"type\":\"telemetry\",\"seq\":8,\"points\":[{\"ts\":1,\"metrics\":{\"a\":1}}]}";
    assert_int_equal (vw_wire_decode (VW_WIRE_JSON, ok, strlen (ok), &msg, &err), 0);
    assert_int_equal (err.seq, -1);
    assert_int_equal (msg.seq, 8);
    vw_wire_msg_reset (&msg);
    const char *named =
        "{\"type\":\"error\",\"code\":\"unavailable\",\"seq\":9,\"retry_after_ms\":1500}";
    assert_int_equal (vw_wire_decode (VW_WIRE_JSON, named, strlen (named), &msg, &err), 0);
    assert_int_equal (msg.seq, 9);
    assert_int_equal (msg.retry_after_ms, 1500);
    vw_wire_msg_reset (&msg);
    const char *plain = "{\"type\":\"error\",\"code\":\"unavailable\"}";
    assert_int_equal (vw_wire_decode (VW_WIRE_JSON, plain, strlen (plain), &msg, &err), 0);
    assert_int_equal (msg.seq, -1);
    vw_wire_msg_reset (&msg);
    const char *wrong = "{\"type\":\"error\",\"code\":\"x\",\"seq\":\"9\"}";
    assert_int_equal (vw_wire_decode (VW_WIRE_JSON, wrong, strlen (wrong), &msg, &err), -1);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_round_trip_hello),
        cmocka_unit_test (test_round_trip_auth),
        cmocka_unit_test (test_round_trip_heartbeat),
        cmocka_unit_test (test_round_trip_telemetry),
        cmocka_unit_test (test_round_trip_command_ack),
        cmocka_unit_test (test_round_trip_command_progress),
        cmocka_unit_test (test_round_trip_command_result),
        cmocka_unit_test (test_round_trip_welcome),
        cmocka_unit_test (test_round_trip_challenge),
        cmocka_unit_test (test_round_trip_error),
        cmocka_unit_test (test_round_trip_command),
        cmocka_unit_test (test_round_trip_cancel),
        cmocka_unit_test (test_round_trip_telemetry_ack),
        cmocka_unit_test (test_builders_refuse_bad_arguments),
        cmocka_unit_test (test_serialize_encodings),
        cmocka_unit_test (test_serialize_limits),
        cmocka_unit_test (test_type_names),
        cmocka_unit_test (test_valid_name),
        cmocka_unit_test (test_valid_id),
        cmocka_unit_test (test_type_field),
        cmocka_unit_test (test_hello_rules),
        cmocka_unit_test (test_auth_rules),
        cmocka_unit_test (test_heartbeat_rules),
        cmocka_unit_test (test_telemetry_rules),
        cmocka_unit_test (test_non_finite_values),
        cmocka_unit_test (test_command_ack_rules),
        cmocka_unit_test (test_command_progress_rules),
        cmocka_unit_test (test_command_result_rules),
        cmocka_unit_test (test_backend_message_rules),
        cmocka_unit_test (test_malformed_json),
        cmocka_unit_test (test_malformed_msgpack),
        cmocka_unit_test (test_truncations),
        cmocka_unit_test (test_depth_limit),
        cmocka_unit_test (test_parse),
        cmocka_unit_test (test_random_bytes),
        cmocka_unit_test (test_random_mutations),
        cmocka_unit_test (test_mpack_check_families),
        cmocka_unit_test (test_mpack_check_refusals),
        cmocka_unit_test (test_telemetry_refusals_name_the_seq),
    };
    return cmocka_run_group_tests_name ("vw_wire", tests, NULL, NULL);
}
