/*  vw_api: operator requests, strict types (SPEC §6) — a JSON body or the
    admin socket's args take JSON integers only; the REST query string, whose
    values are all strings, takes decimal integers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vw_api.h"
#include "vw_commands.h"

static json_t *
s_json (const char *text)
{
    json_error_t jerr;
    json_t *json = json_loads (text, 0, &jerr);
    if (!json)
        fail_msg ("bad test JSON %s: %s", text, jerr.text);
    return json;
}

typedef vw_msg_t *(s_build_fn) (json_t *args, vw_api_error_t *err);

//  Builds from `text`; expects success (want == NULL) or a 400 whose message
//  contains `want`.
static vw_msg_t *
s_build (s_build_fn *build, const char *text, const char *want)
{
    json_t *args = s_json (text);
    vw_api_error_t err = {0, NULL, ""};
    vw_msg_t *msg = build (args, &err);
    json_decref (args);
    if (want) {
        if (msg)
            fail_msg ("%s accepted; wanted an error with \"%s\"", text, want);
        assert_int_equal (err.status, 400);
        assert_string_equal (err.code, "bad_request");
        if (!strstr (err.message, want))
            fail_msg ("%s: message \"%s\" lacks \"%s\"", text, err.message, want);
        return NULL;
    }
    if (!msg)
        fail_msg ("%s refused: %s", text, err.message);
    return msg;
}

static vw_commands_t *s_commands;

static vw_msg_t *
s_submit (json_t *args, vw_api_error_t *err)
{
    return vw_api_command_submit (args, s_commands, "tester", err);
}

static void
test_submit_integers_are_json_integers (void **state)
{
    s_commands = vw_commands_new ();
    assert_non_null (s_commands);
    vw_msg_t *msg = s_build (s_submit,
                             "{\"agent_id\":\"gw-1\",\"type\":\"ping\",\"timeout_ms\":30000,"
                             "\"max_retries\":0,\"expires_in_ms\":5000}",
                             NULL);
    assert_int_equal (msg->command_submit.timeout_ms, 30000);
    assert_int_equal (msg->command_submit.max_retries, 0);
    assert_int_equal (msg->command_submit.expires_in_ms, 5000);
    vw_msg_destroy (&msg);
    //  Absent or null: the default.
    msg = s_build (s_submit, "{\"agent_id\":\"gw-1\",\"type\":\"ping\",\"timeout_ms\":null}", NULL);
    assert_int_equal (msg->command_submit.timeout_ms, 30000);
    assert_int_equal (msg->command_submit.max_retries, 3);
    vw_msg_destroy (&msg);

    //  A decimal string, a real, a boolean: 400 naming the field.
    const char *bad[][2] = {
        {"\"timeout_ms\":\"30000\"", "field 'timeout_ms' must be a JSON integer"},
        {"\"timeout_ms\":30000.0", "field 'timeout_ms'"},
        {"\"timeout_ms\":true", "field 'timeout_ms'"},
        {"\"timeout_ms\":[30000]", "field 'timeout_ms'"},
        {"\"max_retries\":\"3\"", "field 'max_retries' must be a JSON integer"},
        {"\"max_retries\":false", "field 'max_retries'"},
        {"\"expires_in_ms\":\"60000\"", "field 'expires_in_ms' must be a JSON integer"},
        {"\"timeout_ms\":99", "field 'timeout_ms' must be a JSON integer (not a string) from 100 "
                              "to 86400000"},
        {"\"max_retries\":11", "field 'max_retries'"},
        {"\"priority\":0", "field 'priority' must be a string"},
        {"\"priority\":true", "field 'priority'"},
        {"\"idempotency_key\":7", "field 'idempotency_key'"},
        {"\"type\":\"ping\",\"agent_id\":7", "field 'agent_id'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256];
        snprintf (text, sizeof text, "{\"agent_id\":\"gw-1\",\"type\":\"ping\",%s}", bad[i][0]);
        //  A duplicate key keeps the last value (jansson's default).
        s_build (s_submit, text, bad[i][1]);
    }
    vw_commands_destroy (&s_commands);
}

static void
test_list_query_takes_decimal_strings (void **state)
{
    //  The REST query string: every value is a string.
    vw_msg_t *msg = s_build (vw_api_agent_list, "{\"limit\":\"10\",\"label\":\"site:ams\"}", NULL);
    assert_int_equal (msg->agent_list.limit, 10);
    assert_string_equal (msg->agent_list.label_key, "site");
    vw_msg_destroy (&msg);
    msg = s_build (vw_api_command_list, "{\"limit\":\"1000\"}", NULL);
    assert_int_equal (msg->command_list.limit, 1000);
    vw_msg_destroy (&msg);
    msg = s_build (vw_api_audit_list, "{\"from\":\"5\",\"to\":\"1764230000000\",\"limit\":\"2\"}",
                   NULL);
    assert_int_equal (msg->audit_list.from, 5);
    assert_int_equal (msg->audit_list.to, 1764230000000);
    assert_int_equal (msg->audit_list.limit, 2);
    vw_msg_destroy (&msg);
    s_build (vw_api_agent_list, "{\"limit\":\"ten\"}", "field 'limit' must be a decimal integer");
    s_build (vw_api_agent_list, "{\"limit\":\"10x\"}", "field 'limit'");
    s_build (vw_api_agent_list, "{\"limit\":\"\"}", "field 'limit'");
    s_build (vw_api_agent_list, "{\"limit\":\"0\"}", "field 'limit'");
    s_build (vw_api_command_list, "{\"limit\":\"1001\"}", "field 'limit'");
    s_build (vw_api_audit_list, "{\"from\":\"-1\"}", "field 'from'");
    s_build (vw_api_audit_list, "{\"to\":\"99999999999999999999\"}", "field 'to'");
}

static void
test_list_json_takes_json_integers (void **state)
{
    //  The admin socket's args are JSON: strict.
    vw_msg_t *msg = s_build (vw_api_agent_list_json, "{\"limit\":10}", NULL);
    assert_int_equal (msg->agent_list.limit, 10);
    vw_msg_destroy (&msg);
    msg = s_build (vw_api_command_list_json, "{\"limit\":5,\"state\":\"pending\"}", NULL);
    assert_int_equal (msg->command_list.limit, 5);
    vw_msg_destroy (&msg);
    s_build (vw_api_agent_list_json, "{\"limit\":\"10\"}", "field 'limit' must be a JSON integer");
    s_build (vw_api_command_list_json, "{\"limit\":\"10\"}",
             "field 'limit' must be a JSON integer");
    s_build (vw_api_command_list_json, "{\"limit\":10.5}", "field 'limit'");
    s_build (vw_api_agent_list_json, "{\"status\":1}", "field 'status'");
}

static void
test_create_field_types (void **state)
{
    char token[VW_TOKEN_TEXT_LEN + 1];
    vw_api_error_t err = {0, NULL, ""};
    const char *bad[][2] = {
        {"{\"agent_id\":1}", "field 'agent_id'"},
        {"{\"agent_id\":\"gw-1\",\"labels\":{\"site\":1}}", "field 'labels'"},
        {"{\"agent_id\":\"gw-1\",\"labels\":[\"site\"]}", "field 'labels'"},
        {"{\"agent_id\":\"gw-1\",\"public_key\":12}", "field 'public_key'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *args = s_json (bad[i][0]);
        vw_msg_t *msg = vw_api_agent_create (args, token, &err);
        json_decref (args);
        assert_null (msg);
        assert_int_equal (err.status, 400);
        assert_non_null (strstr (err.message, bad[i][1]));
    }
    json_t *args = s_json ("{\"username\":\"u\",\"password\":1,\"role\":\"admin\"}");
    assert_null (vw_api_user_create (args, &err));
    assert_non_null (strstr (err.message, "field 'password'"));
    json_decref (args);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_submit_integers_are_json_integers),
        cmocka_unit_test (test_list_query_takes_decimal_strings),
        cmocka_unit_test (test_list_json_takes_json_integers),
        cmocka_unit_test (test_create_field_types),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
