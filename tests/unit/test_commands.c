/*  Command types and payload schemas: built-ins, schema files, messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vw_commands.h"

//  ---------------------------------------------------------------------
//  Helpers

static int
s_setup (void **state)
{
    *state = vw_commands_new ();
    return *state ? 0 : -1;
}

static int
s_teardown (void **state)
{
    vw_commands_t *cmds = *state;
    vw_commands_destroy (&cmds);
    return 0;
}

//  Parses a payload written as JSON text; NULL text means no payload.
static json_t *
s_json (const char *text)
{
    if (!text)
        return NULL;
    json_error_t jerr;
    json_t *json = json_loads (text, JSON_DECODE_ANY, &jerr);
    if (!json)
        fail_msg ("bad test JSON %s: %s", text, jerr.text);
    return json;
}

static void
s_accepts (const vw_commands_t *cmds, const char *type, const char *payload)
{
    json_t *json = s_json (payload);
    vw_api_error_t err = {0};
    int rc = vw_commands_validate (cmds, type, json, &err);
    if (rc != 0)
        fail_msg ("%s %s refused: %s", type, payload ? payload : "(none)", err.message);
    json_decref (json);
}

//  Refused with this status, code and exact message.
static void
s_refuses (const vw_commands_t *cmds, const char *type, const char *payload, int status,
           const char *code, const char *message)
{
    json_t *json = s_json (payload);
    vw_api_error_t err = {0};
    int rc = vw_commands_validate (cmds, type, json, &err);
    if (rc != -1)
        fail_msg ("%s %s accepted, expected: %s", type ? type : "(null)",
                  payload ? payload : "(none)", message);
    assert_int_equal (err.status, status);
    assert_string_equal (err.code, code);
    assert_string_equal (err.message, message);
    //  Every message must be usable as a JSON string (valid UTF-8).
    json_t *as_json = json_string (err.message);
    assert_non_null (as_json);
    json_decref (as_json);
    json_decref (json);
}

static void
s_invalid (const vw_commands_t *cmds, const char *type, const char *payload, const char *message)
{
    s_refuses (cmds, type, payload, 422, "invalid_payload", message);
}

//  Writes text to a new temporary file; its path goes to path.
static void
s_temp_file (const char *text, char path[64])
{
    snprintf (path, 64, "/tmp/test_commands_XXXXXX");
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    size_t len = strlen (text);
    assert_int_equal (write (fd, text, len), (ssize_t) len);
    close (fd);
}

//  Loads text as a schema file; returns the rc, the message in err.
static int
s_load_text (vw_commands_t *cmds, const char *text, char *err, size_t errlen, char path[64])
{
    s_temp_file (text, path);
    int rc = vw_commands_load (cmds, path, err, errlen);
    unlink (path);
    return rc;
}

static size_t
s_count_types (const vw_commands_t *cmds)
{
    json_t *types = vw_commands_types (cmds);
    assert_non_null (types);
    size_t n = json_array_size (types);
    json_decref (types);
    return n;
}

//  Expects loading text to fail with a message that starts with the
//  file's path and contains `expect`; the catalogue stays as it was.
static void
s_load_refused (const char *text, const char *expect)
{
    vw_commands_t *cmds = vw_commands_new ();
    assert_non_null (cmds);
    size_t before = s_count_types (cmds);
    char err[512] = "";
    char path[64];
    int rc = s_load_text (cmds, text, err, sizeof err, path);
    if (rc != -1)
        fail_msg ("schema accepted, expected '%s': %s", expect, text);
    assert_int_equal (strncmp (err, path, strlen (path)), 0);
    if (!strstr (err, expect))
        fail_msg ("message '%s' does not contain '%s'", err, expect);
    assert_int_equal (s_count_types (cmds), before);
    vw_commands_destroy (&cmds);
}

//  A schema file with one type of each kind of field.
static const char s_schema[] =
    "{\"types\": {"
    " \"rotate_keys\": {\"description\": \"roll keys\", \"fields\": {"
    "   \"key_id\": {\"type\": \"string\", \"required\": true, \"min_length\": 2,"
    "               \"max_length\": 4},"
    "   \"force\": {\"type\": \"boolean\"},"
    "   \"grace_s\": {\"type\": \"integer\", \"min\": -5, \"max\": 86400},"
    "   \"ratio\": {\"type\": \"number\", \"min\": 0.5, \"max\": 2},"
    "   \"peers\": {\"type\": \"array<string>\"},"
    "   \"extra\": {\"type\": \"object\"},"
    "   \"list\": {\"type\": \"array\"},"
    "   \"note\": {\"type\": \"string\", \"max_length\": 3},"
    "   \"tag\": {\"type\": \"string\", \"min_length\": 3}"
    " }, \"additional\": false},"
    " \"open_type\": {\"fields\": {\"n\": {\"type\": \"integer\", \"required\": true}},"
    "                 \"additional\": true},"
    " \"bare\": {},"
    " \"any_num\": {\"fields\": {\"x\": {\"type\": \"number\"}, \"y\": {\"type\": \"integer\","
    "   \"max\": 10}, \"z\": {\"type\": \"number\", \"min\": 1}, \"s\": {\"type\": \"string\","
    "   \"min_length\": 1, \"max_length\": 2}}}"
    "}}";

static vw_commands_t *
s_loaded (void)
{
    vw_commands_t *cmds = vw_commands_new ();
    assert_non_null (cmds);
    char err[512] = "";
    char path[64];
    if (s_load_text (cmds, s_schema, err, sizeof err, path))
        fail_msg ("valid schema refused: %s", err);
    return cmds;
}

//  ---------------------------------------------------------------------
//  Built-in types

static void
test_builtins_accept_valid_payloads (void **state)
{
    const vw_commands_t *cmds = *state;
    s_accepts (cmds, "ping", "{}");
    s_accepts (cmds, "exec", "{\"cmd\":\"uptime\"}");
    s_accepts (cmds, "exec", "{\"cmd\":\"ls\",\"args\":[]}");
    s_accepts (cmds, "exec", "{\"cmd\":\"ls\",\"args\":[\"-l\",\"\",\"/tmp\"]}");
    s_accepts (cmds, "exec", "{\"args\":[\"x\"],\"cmd\":\"caf\\u00e9\"}");
    s_accepts (cmds, "restart_service", "{\"name\":\"wg-quick@wg0\"}");
    s_accepts (cmds, "update_config", "{\"config\":{}}");
    s_accepts (cmds, "update_config", "{\"config\":{\"a\":[1,2],\"b\":null}}");
    s_accepts (cmds, "collect_logs", "{}");
    s_accepts (cmds, "collect_logs", "{\"since_ms\":0}");
    s_accepts (cmds, "collect_logs", "{\"since_ms\":1700000000000,\"lines\":1}");
    s_accepts (cmds, "collect_logs", "{\"lines\":1000000}");
    s_accepts (cmds, "upgrade", "{\"version\":\"1.4.2\",\"url\":\"https://x/a.tgz\"}");
}

static void
test_absent_or_null_payload_means_empty_object (void **state)
{
    const vw_commands_t *cmds = *state;
    s_accepts (cmds, "ping", NULL);
    s_accepts (cmds, "ping", "null");
    s_accepts (cmds, "collect_logs", NULL);
    s_accepts (cmds, "collect_logs", "null");
    s_invalid (cmds, "exec", NULL, "payload.cmd is required and must be a non-empty string");
    s_invalid (cmds, "exec", "null", "payload.cmd is required and must be a non-empty string");
    s_invalid (cmds, "update_config", NULL, "payload.config is required and must be an object");
    s_invalid (cmds, "upgrade", "null", "payload.url is required and must be a non-empty string");
}

static void
test_payload_must_be_an_object (void **state)
{
    const vw_commands_t *cmds = *state;
    s_invalid (cmds, "ping", "[]", "payload must be an object, not an array");
    s_invalid (cmds, "exec", "\"uptime\"", "payload must be an object, not a string");
    s_invalid (cmds, "ping", "0", "payload must be an object, not an integer");
    s_invalid (cmds, "ping", "1.5", "payload must be an object, not a number");
    s_invalid (cmds, "ping", "true", "payload must be an object, not a boolean");
}

static void
test_exec_violations (void **state)
{
    const vw_commands_t *cmds = *state;
    const char *need_cmd = "payload.cmd is required and must be a non-empty string";
    s_invalid (cmds, "exec", "{}", need_cmd);
    s_invalid (cmds, "exec", "{\"args\":[]}", need_cmd);
    s_invalid (cmds, "exec", "{\"cmd\":\"\"}", need_cmd);
    s_invalid (cmds, "exec", "{\"cmd\":5}", need_cmd);
    s_invalid (cmds, "exec", "{\"cmd\":null}", need_cmd);
    s_invalid (cmds, "exec", "{\"cmd\":[\"ls\"]}", need_cmd);
    s_invalid (cmds, "exec", "{\"cmd\":\"ls\",\"args\":\"-l\"}",
               "payload.args must be an array of strings");
    s_invalid (cmds, "exec", "{\"cmd\":\"ls\",\"args\":null}",
               "payload.args must be an array of strings");
    s_invalid (cmds, "exec", "{\"cmd\":\"ls\",\"args\":{}}",
               "payload.args must be an array of strings");
    s_invalid (cmds, "exec", "{\"cmd\":\"ls\",\"args\":[\"a\",\"b\",3]}",
               "payload.args[2] must be a string");
    s_invalid (cmds, "exec", "{\"cmd\":\"ls\",\"args\":[null]}",
               "payload.args[0] must be a string");
    s_invalid (cmds, "exec", "{\"cmd\":\"ls\",\"args\":[[\"a\"]]}",
               "payload.args[0] must be a string");
}

static void
test_restart_service_and_update_config_violations (void **state)
{
    const vw_commands_t *cmds = *state;
    const char *need_name = "payload.name is required and must be a non-empty string";
    s_invalid (cmds, "restart_service", "{}", need_name);
    s_invalid (cmds, "restart_service", "{\"name\":\"\"}", need_name);
    s_invalid (cmds, "restart_service", "{\"name\":1}", need_name);
    s_invalid (cmds, "restart_service", "{\"name\":true}", need_name);
    const char *need_config = "payload.config is required and must be an object";
    s_invalid (cmds, "update_config", "{}", need_config);
    s_invalid (cmds, "update_config", "{\"config\":\"a=1\"}", need_config);
    s_invalid (cmds, "update_config", "{\"config\":[]}", need_config);
    s_invalid (cmds, "update_config", "{\"config\":null}", need_config);
}

static void
test_collect_logs_violations (void **state)
{
    const vw_commands_t *cmds = *state;
    const char *since = "payload.since_ms must be an integer >= 0";
    s_invalid (cmds, "collect_logs", "{\"since_ms\":-1}", since);
    s_invalid (cmds, "collect_logs", "{\"since_ms\":1.5}", since);
    s_invalid (cmds, "collect_logs", "{\"since_ms\":5.0}", since);
    s_invalid (cmds, "collect_logs", "{\"since_ms\":\"5\"}", since);
    s_invalid (cmds, "collect_logs", "{\"since_ms\":null}", since);
    const char *lines = "payload.lines must be an integer from 1 to 1000000";
    s_invalid (cmds, "collect_logs", "{\"lines\":0}", lines);
    s_invalid (cmds, "collect_logs", "{\"lines\":1000001}", lines);
    s_invalid (cmds, "collect_logs", "{\"lines\":-9223372036854775807}", lines);
    s_invalid (cmds, "collect_logs", "{\"lines\":true}", lines);
    s_invalid (cmds, "collect_logs", "{\"since_ms\":0,\"lines\":[]}", lines);
}

static void
test_upgrade_violations (void **state)
{
    const vw_commands_t *cmds = *state;
    const char *version = "payload.version is required and must be a non-empty string";
    const char *url = "payload.url is required and must be a non-empty string";
    //  Fields are checked in name order, so the message is deterministic.
    s_invalid (cmds, "upgrade", "{}", url);
    s_invalid (cmds, "upgrade", "{\"url\":\"https://x\"}", version);
    s_invalid (cmds, "upgrade", "{\"version\":\"1.0\"}", url);
    s_invalid (cmds, "upgrade", "{\"version\":\"\",\"url\":\"https://x\"}", version);
    s_invalid (cmds, "upgrade", "{\"version\":1,\"url\":\"https://x\"}", version);
    s_invalid (cmds, "upgrade", "{\"version\":\"1.0\",\"url\":\"\"}", url);
    s_invalid (cmds, "upgrade", "{\"version\":\"1.0\",\"url\":{}}", url);
}

static void
test_unknown_fields_are_refused (void **state)
{
    const vw_commands_t *cmds = *state;
    s_invalid (cmds, "exec", "{\"cmd\":\"ls\",\"arsg\":[]}",
               "payload.arsg is not a field of command type 'exec' (fields: args, cmd)");
    //  A typo is reported as such, not as the missing field it replaces.
    s_invalid (cmds, "exec", "{\"comd\":\"ls\"}",
               "payload.comd is not a field of command type 'exec' (fields: args, cmd)");
    s_invalid (cmds, "ping", "{\"x\":1}",
               "payload.x is not a field of command type 'ping', which takes no fields");
    s_invalid (cmds, "collect_logs", "{\"lines\":5,\"level\":\"warn\"}",
               "payload.level is not a field of command type 'collect_logs' "
               "(fields: lines, since_ms)");
    s_invalid (cmds, "upgrade", "{\"version\":\"1\",\"url\":\"u\",\"sha256\":\"ab\"}",
               "payload.sha256 is not a field of command type 'upgrade' (fields: url, version)");
    //  Unprintable or long keys are quoted safely.
    s_invalid (cmds, "ping", "{\"a\\u0001\\u00e9\":1}",
               "payload.a??? is not a field of command type 'ping', which takes no fields");
    char long_key[300];
    memset (long_key, 'k', 200);
    long_key[200] = 0;
    char payload[400];
    snprintf (payload, sizeof payload, "{\"%s\":1}", long_key);
    char expect[256];
    snprintf (expect, sizeof expect,
              "payload.%.64s... is not a field of command type 'ping', which takes no fields",
              long_key);
    s_invalid (cmds, "ping", payload, expect);
}

static void
test_unknown_type (void **state)
{
    const vw_commands_t *cmds = *state;
    const char *known =
        "(known: collect_logs, exec, ping, restart_service, update_config, upgrade)";
    char expect[256];
    snprintf (expect, sizeof expect, "unknown command type 'reboot' %s", known);
    s_refuses (cmds, "reboot", "{}", 422, "unknown_command_type", expect);
    //  The type is checked before the payload.
    s_refuses (cmds, "reboot", "[1]", 422, "unknown_command_type", expect);
    snprintf (expect, sizeof expect, "unknown command type 'Ping' %s", known);
    s_refuses (cmds, "Ping", NULL, 422, "unknown_command_type", expect);
    snprintf (expect, sizeof expect, "unknown command type '' %s", known);
    s_refuses (cmds, "", NULL, 422, "unknown_command_type", expect);
    snprintf (expect, sizeof expect, "unknown command type 'r??\?t' %s", known);
    s_refuses (cmds, "r\xc3\xa9\nt", NULL, 422, "unknown_command_type", expect);
    //  No type at all is a malformed request (400), not a schema mismatch.
    snprintf (expect, sizeof expect, "field 'type' is required and must be a string %s", known);
    s_refuses (cmds, NULL, "{}", 400, "bad_request", expect);
    assert_false (vw_commands_has (cmds, NULL));
    assert_false (vw_commands_has (cmds, "reboot"));
    assert_true (vw_commands_has (cmds, "exec"));
}

static void
test_long_unknown_type_keeps_message_valid (void **state)
{
    const vw_commands_t *cmds = *state;
    //  A 1000-byte type of multi-byte characters: clipped, never cut
    //  inside a character, and the message still fits.
    char type[1001];
    for (int i = 0; i < 1000; i += 2)
        memcpy (type + i, "\xc3\xa9", 2);
    type[1000] = 0;
    vw_api_error_t err = {0};
    assert_int_equal (vw_commands_validate (cmds, type, NULL, &err), -1);
    assert_int_equal (err.status, 422);
    assert_string_equal (err.code, "unknown_command_type");
    assert_non_null (strstr (err.message, "...'"));
    assert_non_null (strstr (err.message, "(known: collect_logs"));
    json_t *as_json = json_string (err.message);
    assert_non_null (as_json);
    json_decref (as_json);
}

static void
test_types_sorted (void **state)
{
    const vw_commands_t *cmds = *state;
    json_t *types = vw_commands_types (cmds);
    assert_non_null (types);
    char *text = json_dumps (types, JSON_COMPACT);
    assert_string_equal (text, "[\"collect_logs\",\"exec\",\"ping\",\"restart_service\","
                               "\"update_config\",\"upgrade\"]");
    free (text);
    json_decref (types);

    vw_commands_t *loaded = s_loaded ();
    types = vw_commands_types (loaded);
    text = json_dumps (types, JSON_COMPACT);
    assert_string_equal (text, "[\"any_num\",\"bare\",\"collect_logs\",\"exec\",\"open_type\","
                               "\"ping\",\"restart_service\",\"rotate_keys\",\"update_config\","
                               "\"upgrade\"]");
    free (text);
    json_decref (types);
    vw_commands_destroy (&loaded);
}

static void
test_schema_describes_a_type (void **state)
{
    const vw_commands_t *cmds = *state;
    json_t *schema = vw_commands_schema (cmds, "collect_logs");
    assert_non_null (schema);
    assert_true (json_is_true (json_object_get (schema, "builtin")));
    assert_true (json_is_false (json_object_get (schema, "additional")));
    json_t *lines = json_object_get (json_object_get (schema, "fields"), "lines");
    assert_string_equal (json_string_value (json_object_get (lines, "type")), "integer");
    assert_int_equal (json_integer_value (json_object_get (lines, "min")), 1);
    assert_int_equal (json_integer_value (json_object_get (lines, "max")), 1000000);
    assert_true (json_is_false (json_object_get (lines, "required")));
    json_decref (schema);

    schema = vw_commands_schema (cmds, "exec");
    json_t *cmd = json_object_get (json_object_get (schema, "fields"), "cmd");
    assert_true (json_is_true (json_object_get (cmd, "required")));
    assert_int_equal (json_integer_value (json_object_get (cmd, "min_length")), 1);
    json_t *args = json_object_get (json_object_get (schema, "fields"), "args");
    assert_string_equal (json_string_value (json_object_get (args, "type")), "array<string>");
    json_decref (schema);

    assert_null (vw_commands_schema (cmds, "reboot"));
    assert_null (vw_commands_schema (cmds, NULL));

    //  A loaded type reads back in the file's format (minus "builtin").
    vw_commands_t *loaded = s_loaded ();
    schema = vw_commands_schema (loaded, "rotate_keys");
    assert_non_null (schema);
    assert_true (json_is_false (json_object_get (schema, "builtin")));
    assert_string_equal (json_string_value (json_object_get (schema, "description")), "roll keys");
    json_t *ratio = json_object_get (json_object_get (schema, "fields"), "ratio");
    assert_true (json_number_value (json_object_get (ratio, "min")) == 0.5);
    assert_true (json_number_value (json_object_get (ratio, "max")) == 2.0);
    json_decref (schema);
    vw_commands_destroy (&loaded);
}

static void
test_destroy_is_safe_twice (void **state)
{
    vw_commands_t *cmds = vw_commands_new ();
    assert_non_null (cmds);
    vw_commands_destroy (&cmds);
    assert_null (cmds);
    vw_commands_destroy (&cmds);
    assert_null (cmds);
    vw_commands_destroy (NULL);

    cmds = s_loaded ();
    vw_commands_destroy (&cmds);
    assert_null (cmds);
    vw_commands_destroy (&cmds);
}

//  ---------------------------------------------------------------------
//  Schema files

static void
test_loaded_types_validate (void **state)
{
    vw_commands_t *cmds = s_loaded ();
    s_accepts (cmds, "rotate_keys", "{\"key_id\":\"ab\"}");
    s_accepts (cmds, "rotate_keys",
               "{\"key_id\":\"abcd\",\"force\":false,\"grace_s\":-5,"
               "\"ratio\":0.5,\"peers\":[\"p1\",\"p2\"],\"extra\":{},"
               "\"list\":[1,\"a\",null],\"note\":\"\",\"tag\":\"abc\"}");
    s_accepts (cmds, "rotate_keys", "{\"key_id\":\"ab\",\"grace_s\":86400,\"ratio\":2}");
    s_accepts (cmds, "rotate_keys", "{\"key_id\":\"ab\",\"ratio\":1}");
    //  Lengths count characters, not bytes: 4 x 2-byte "é" is 4 characters.
    s_accepts (cmds, "rotate_keys", "{\"key_id\":\"\\u00e9\\u00e9\\u00e9\\u00e9\"}");
    s_accepts (cmds, "rotate_keys", "{\"key_id\":\"ab\",\"note\":\"\\u00e9\\u00e9\\u00e9\"}");

    const char *key_id = "payload.key_id is required and must be a string of 2 to 4 characters";
    s_invalid (cmds, "rotate_keys", "{}", key_id);
    s_invalid (cmds, "rotate_keys", "{\"key_id\":\"a\"}", key_id);
    s_invalid (cmds, "rotate_keys", "{\"key_id\":\"abcde\"}", key_id);
    s_invalid (cmds, "rotate_keys", "{\"key_id\":\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"}", key_id);
    s_invalid (cmds, "rotate_keys", "{\"key_id\":12}", key_id);
    s_invalid (cmds, "rotate_keys", "{\"key_id\":\"ab\",\"force\":1}",
               "payload.force must be true or false");
    s_invalid (cmds, "rotate_keys", "{\"key_id\":\"ab\",\"force\":\"true\"}",
               "payload.force must be true or false");
    const char *grace = "payload.grace_s must be an integer from -5 to 86400";
    s_invalid (cmds, "rotate_keys", "{\"key_id\":\"ab\",\"grace_s\":-6}", grace);
    s_invalid (cmds, "rotate_keys", "{\"key_id\":\"ab\",\"grace_s\":86401}", grace);
    s_invalid (cmds, "rotate_keys", "{\"key_id\":\"ab\",\"grace_s\":1.0}", grace);
    const char *ratio = "payload.ratio must be a number from 0.5 to 2";
    s_invalid (cmds, "rotate_keys", "{\"key_id\":\"ab\",\"ratio\":0.49}", ratio);
    s_invalid (cmds, "rotate_keys", "{\"key_id\":\"ab\",\"ratio\":2.01}", ratio);
    s_invalid (cmds, "rotate_keys", "{\"key_id\":\"ab\",\"ratio\":\"1\"}", ratio);
    s_invalid (cmds, "rotate_keys", "{\"key_id\":\"ab\",\"peers\":[\"a\",{}]}",
               "payload.peers[1] must be a string");
    s_invalid (cmds, "rotate_keys", "{\"key_id\":\"ab\",\"peers\":\"a\"}",
               "payload.peers must be an array of strings");
    s_invalid (cmds, "rotate_keys", "{\"key_id\":\"ab\",\"extra\":[]}",
               "payload.extra must be an object");
    s_invalid (cmds, "rotate_keys", "{\"key_id\":\"ab\",\"list\":{}}",
               "payload.list must be an array");
    s_invalid (cmds, "rotate_keys", "{\"key_id\":\"ab\",\"note\":\"abcd\"}",
               "payload.note must be a string of at most 3 characters");
    s_invalid (cmds, "rotate_keys", "{\"key_id\":\"ab\",\"tag\":\"ab\"}",
               "payload.tag must be a string of at least 3 characters");
    s_invalid (cmds, "rotate_keys", "{\"key_id\":\"ab\",\"keyid\":\"ab\"}",
               "payload.keyid is not a field of command type 'rotate_keys' (fields: extra, "
               "force, grace_s, key_id, list, note, peers, ratio, tag)");

    //  "additional": true lets unknown fields through, still checks known ones.
    s_accepts (cmds, "open_type", "{\"n\":1,\"anything\":[1]}");
    s_invalid (cmds, "open_type", "{\"anything\":1}",
               "payload.n is required and must be an integer");
    s_invalid (cmds, "open_type", "{\"n\":\"1\"}", "payload.n is required and must be an integer");
    s_invalid (cmds, "open_type", "[]", "payload must be an object, not an array");

    //  A type without "fields" takes none; "additional" defaults to false.
    s_accepts (cmds, "bare", NULL);
    s_accepts (cmds, "bare", "{}");
    s_invalid (cmds, "bare", "{\"a\":1}",
               "payload.a is not a field of command type 'bare', which takes no fields");

    s_accepts (cmds, "any_num", "{\"x\":1,\"y\":-100,\"z\":1,\"s\":\"ab\"}");
    s_accepts (cmds, "any_num", "{\"x\":-1.5e300,\"z\":1e300}");
    s_invalid (cmds, "any_num", "{\"x\":\"1\"}", "payload.x must be a number");
    s_invalid (cmds, "any_num", "{\"y\":11}", "payload.y must be an integer <= 10");
    s_invalid (cmds, "any_num", "{\"z\":0.999}", "payload.z must be a number >= 1");
    s_invalid (cmds, "any_num", "{\"s\":\"\"}",
               "payload.s must be a non-empty string of at most 2 characters");
    s_invalid (cmds, "any_num", "{\"s\":\"abc\"}",
               "payload.s must be a non-empty string of at most 2 characters");

    //  Built-ins are still there.
    s_accepts (cmds, "exec", "{\"cmd\":\"ls\"}");
    vw_commands_destroy (&cmds);
}

static void
test_load_several_files (void **state)
{
    vw_commands_t *cmds = vw_commands_new ();
    char err[512] = "";
    char path[64];
    assert_int_equal (s_load_text (cmds, "{\"types\":{\"a1\":{}}}", err, sizeof err, path), 0);
    assert_int_equal (s_load_text (cmds, "{\"types\":{}}", err, sizeof err, path), 0);
    assert_int_equal (
        s_load_text (cmds, "{\"types\":{\"b1\":{\"fields\":{}}}}", err, sizeof err, path), 0);
    assert_int_equal (s_count_types (cmds), 8);
    //  A second file may not redefine a type of the first.
    assert_int_equal (
        s_load_text (cmds, "{\"types\":{\"c1\":{},\"a1\":{}}}", err, sizeof err, path), -1);
    assert_non_null (strstr (err, "types.a1: is already defined by an earlier schema file"));
    //  ... and the failed file added nothing, not even its valid c1.
    assert_int_equal (s_count_types (cmds), 8);
    assert_false (vw_commands_has (cmds, "c1"));
    //  err may be absent.
    assert_int_equal (s_load_text (cmds, "{", NULL, 0, path), -1);
    assert_int_equal (s_load_text (cmds, "{", err, 0, path), -1);
    vw_commands_destroy (&cmds);
}

static void
test_load_missing_file (void **state)
{
    vw_commands_t *cmds = *state;
    char err[512] = "";
    const char *path = "/nonexistent/dir/commands.json";
    assert_int_equal (vw_commands_load (cmds, path, err, sizeof err), -1);
    assert_string_equal (err, "/nonexistent/dir/commands.json: cannot open the command schema "
                              "file: No such file or directory");
    //  A directory is not a schema file either.
    assert_int_equal (vw_commands_load (cmds, "/tmp", err, sizeof err), -1);
    assert_string_equal (err, "/tmp: cannot read the command schema file: Is a directory");
    //  A tiny buffer is truncated, not overrun.
    char small[8];
    assert_int_equal (vw_commands_load (cmds, path, small, sizeof small), -1);
    assert_string_equal (small, "/nonexi");
    assert_int_equal (s_count_types (cmds), 6);
}

static void
test_load_invalid_json (void **state)
{
    s_load_refused ("", "not valid JSON");
    s_load_refused ("{\"types\": {\n \"x\": {,}}}", ":2:");
    s_load_refused ("{\"types\": {}} trailing", "not valid JSON");
    //  Duplicate keys would silently drop one definition.
    s_load_refused ("{\"types\": {\"a\": {}, \"a\": {}}}", "duplicate");
    s_load_refused ("{\"types\": {\"a\": {\"fields\": {\"x\": {\"type\": \"string\", "
                    "\"type\": \"integer\"}}}}}",
                    "duplicate");
}

static void
test_load_invalid_shapes (void **state)
{
    //  Top level.
    s_load_refused ("[]", ": the top level must be an object");
    s_load_refused ("{}", ": types: is required and must be an object");
    s_load_refused ("{\"types\": []}", ": types: is required and must be an object");
    s_load_refused ("{\"types\": {}, \"version\": 1}",
                    ": unknown key 'version' at the top level (expected \"types\")");
    //  Types.
    s_load_refused ("{\"types\": {\"rotate keys\": {}}}",
                    ": types.rotate keys: a type name must be 1-64 characters");
    s_load_refused ("{\"types\": {\"\": {}}}", ": types.: a type name must be");
    s_load_refused ("{\"types\": {\"9lives\": {}}}", ": types.9lives: a type name must be");
    s_load_refused ("{\"types\": {\"a\": []}}", ": types.a: must be an object");
    s_load_refused ("{\"types\": {\"a\": {\"feilds\": {}}}}",
                    ": types.a: unknown key 'feilds' (expected fields, additional, description)");
    s_load_refused ("{\"types\": {\"a\": {\"fields\": []}}}",
                    ": types.a.fields: must be an object of fields");
    s_load_refused ("{\"types\": {\"a\": {\"additional\": \"no\"}}}",
                    ": types.a.additional: must be true or false");
    s_load_refused ("{\"types\": {\"a\": {\"description\": 1}}}",
                    ": types.a.description: must be a string");
    //  Fields.
    s_load_refused ("{\"types\": {\"a\": {\"fields\": {\"x\": \"string\"}}}}",
                    ": types.a.fields.x: must be an object such as {\"type\": \"string\"}");
    s_load_refused ("{\"types\": {\"a\": {\"fields\": {\"x y\": {\"type\": \"string\"}}}}}",
                    ": types.a.fields.x y: a field name must be 1-64 characters");
    s_load_refused ("{\"types\": {\"a\": {\"fields\": {\"x\": {\"type\": \"strin\"}}}}}",
                    ": types.a.fields.x.type: unknown type 'strin' (expected string, integer");
    s_load_refused ("{\"types\": {\"a\": {\"fields\": {\"x\": {\"type\": \"array<int>\"}}}}}",
                    ": types.a.fields.x.type: unknown type 'array<int>'");
    s_load_refused ("{\"types\": {\"a\": {\"fields\": {\"x\": {\"required\": true}}}}}",
                    ": types.a.fields.x.type: is required");
    s_load_refused ("{\"types\": {\"a\": {\"fields\": {\"x\": {\"type\": 1}}}}}",
                    ": types.a.fields.x.type: is required");
    s_load_refused ("{\"types\": {\"a\": {\"fields\": {\"x\": {\"type\": \"string\", "
                    "\"optional\": true}}}}}",
                    ": types.a.fields.x: unknown key 'optional' (expected type, required");
    s_load_refused ("{\"types\": {\"a\": {\"fields\": {\"x\": {\"type\": \"string\", "
                    "\"required\": \"yes\"}}}}}",
                    ": types.a.fields.x.required: must be true or false");
    s_load_refused ("{\"types\": {\"a\": {\"fields\": {\"x\": {\"type\": \"string\", "
                    "\"description\": []}}}}}",
                    ": types.a.fields.x.description: must be a string");
}

static void
test_load_invalid_bounds (void **state)
{
    s_load_refused ("{\"types\": {\"a\": {\"fields\": {\"x\": {\"type\": \"integer\", "
                    "\"min\": 5, \"max\": 3}}}}}",
                    ": types.a.fields.x: min (5) is greater than max (3)");
    s_load_refused ("{\"types\": {\"a\": {\"fields\": {\"x\": {\"type\": \"number\", "
                    "\"min\": 0.5, \"max\": 0.25}}}}}",
                    ": types.a.fields.x: min (0.5) is greater than max (0.25)");
    s_load_refused ("{\"types\": {\"a\": {\"fields\": {\"x\": {\"type\": \"string\", "
                    "\"min_length\": 5, \"max_length\": 3}}}}}",
                    ": types.a.fields.x: min_length (5) is greater than max_length (3)");
    s_load_refused ("{\"types\": {\"a\": {\"fields\": {\"x\": {\"type\": \"integer\", "
                    "\"min\": 1.5}}}}}",
                    ": types.a.fields.x.min: must be an integer for an integer field");
    s_load_refused ("{\"types\": {\"a\": {\"fields\": {\"x\": {\"type\": \"integer\", "
                    "\"max\": \"10\"}}}}}",
                    ": types.a.fields.x.max: must be an integer for an integer field");
    s_load_refused ("{\"types\": {\"a\": {\"fields\": {\"x\": {\"type\": \"number\", "
                    "\"max\": \"10\"}}}}}",
                    ": types.a.fields.x.max: must be a number");
    s_load_refused ("{\"types\": {\"a\": {\"fields\": {\"x\": {\"type\": \"string\", "
                    "\"min\": 1}}}}}",
                    ": types.a.fields.x.min: only integer and number fields take min and max");
    s_load_refused ("{\"types\": {\"a\": {\"fields\": {\"x\": {\"type\": \"integer\", "
                    "\"max_length\": 1}}}}}",
                    ": types.a.fields.x.max_length: only string fields take min_length and "
                    "max_length");
    s_load_refused ("{\"types\": {\"a\": {\"fields\": {\"x\": {\"type\": \"string\", "
                    "\"min_length\": -1}}}}}",
                    ": types.a.fields.x.min_length: must be an integer >= 0");
    s_load_refused ("{\"types\": {\"a\": {\"fields\": {\"x\": {\"type\": \"string\", "
                    "\"max_length\": 2.5}}}}}",
                    ": types.a.fields.x.max_length: must be an integer >= 0");
}

static void
test_load_may_not_redefine_builtins (void **state)
{
    s_load_refused ("{\"types\": {\"exec\": {\"fields\": {\"cmd\": {\"type\": \"string\"}}}}}",
                    ": types.exec: redefines the built-in command type");
    s_load_refused ("{\"types\": {\"a\": {}, \"ping\": {}}}",
                    ": types.ping: redefines the built-in command type");
}

static void
test_many_types_keep_the_message_short (void **state)
{
    //  With more types than fit, the known list ends in "...)" and the
    //  message stays a well-formed sentence within its buffer.
    char text[8192] = "{\"types\": {";
    for (int i = 0; i < 40; i++) {
        char entry[128];
        snprintf (entry, sizeof entry, "%s\"type_with_a_rather_long_name_%02d\": {}", i ? ", " : "",
                  i);
        strcat (text, entry);
    }
    strcat (text, "}}");
    vw_commands_t *cmds = vw_commands_new ();
    char err[512] = "";
    char path[64];
    assert_int_equal (s_load_text (cmds, text, err, sizeof err, path), 0);
    assert_int_equal (s_count_types (cmds), 46);
    vw_api_error_t verr = {0};
    assert_int_equal (vw_commands_validate (cmds, "nope", NULL, &verr), -1);
    assert_string_equal (verr.code, "unknown_command_type");
    size_t len = strlen (verr.message);
    assert_true (len < sizeof verr.message);
    const char *head =
        "unknown command type 'nope' (known: collect_logs, exec, ping, restart_service, ";
    assert_true (len > strlen (head));
    assert_string_equal (verr.message + len - 6, ", ...)");
    assert_int_equal (strncmp (verr.message, head, strlen (head)), 0);
    vw_commands_destroy (&cmds);
}

//  ---------------------------------------------------------------------
//  Sharing between threads

static void *
s_validator (void *args)
{
    const vw_commands_t *cmds = args;
    json_t *good = json_loads ("{\"key_id\":\"ab\",\"peers\":[\"x\"]}", 0, NULL);
    json_t *bad = json_loads ("{\"key_id\":\"ab\",\"peers\":[\"x\",1]}", 0, NULL);
    intptr_t failures = 0;
    for (int i = 0; i < 2000; i++) {
        vw_api_error_t err;
        failures += vw_commands_validate (cmds, "rotate_keys", good, &err) != 0;
        failures += vw_commands_validate (cmds, "rotate_keys", bad, &err) != -1;
        failures += strcmp (err.message, "payload.peers[1] must be a string") != 0;
        failures += vw_commands_validate (cmds, "nope", NULL, &err) != -1;
    }
    json_decref (good);
    json_decref (bad);
    return (void *) failures;
}

static void
test_concurrent_readers (void **state)
{
    vw_commands_t *cmds = s_loaded ();
    pthread_t threads[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal (pthread_create (&threads[i], NULL, s_validator, cmds), 0);
    for (int i = 0; i < 4; i++) {
        void *failures = NULL;
        assert_int_equal (pthread_join (threads[i], &failures), 0);
        assert_null (failures);
    }
    vw_commands_destroy (&cmds);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_builtins_accept_valid_payloads, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_absent_or_null_payload_means_empty_object, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_payload_must_be_an_object, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_exec_violations, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_restart_service_and_update_config_violations, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_collect_logs_violations, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_upgrade_violations, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_unknown_fields_are_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_unknown_type, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_long_unknown_type_keeps_message_valid, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_types_sorted, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_schema_describes_a_type, s_setup, s_teardown),
        cmocka_unit_test (test_destroy_is_safe_twice),
        cmocka_unit_test (test_loaded_types_validate),
        cmocka_unit_test (test_load_several_files),
        cmocka_unit_test_setup_teardown (test_load_missing_file, s_setup, s_teardown),
        cmocka_unit_test (test_load_invalid_json),
        cmocka_unit_test (test_load_invalid_shapes),
        cmocka_unit_test (test_load_invalid_bounds),
        cmocka_unit_test (test_load_may_not_redefine_builtins),
        cmocka_unit_test (test_many_types_keep_the_message_short),
        cmocka_unit_test (test_concurrent_readers),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
