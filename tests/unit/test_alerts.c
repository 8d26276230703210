/*  vw_alerts: the alert rules of telemetry.alerts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "vw_alerts.h"

static void
test_parse_rules (void **state)
{
    (void) state;
    vw_alert_rule_t rules[4];
    char err[256];
    assert_int_equal (vw_alerts_parse (NULL, rules, 4, err, sizeof err), 0);
    assert_int_equal (vw_alerts_parse (" ; ", rules, 4, err, sizeof err), 0);
    int n = vw_alerts_parse ("cpu_high: cpu > 0.9 for 5m degrade;disk:full: disk_used_pct>= 95 ;"
                             "  cold : temp_c < -10.5 for 250ms",
                             rules, 4, err, sizeof err);
    assert_int_equal (n, 3);
    assert_string_equal (rules[0].name, "cpu_high");
    assert_string_equal (rules[0].metric, "cpu");
    assert_int_equal (rules[0].op, VW_ALERT_GT);
    assert_true (rules[0].threshold == 0.9);
    assert_int_equal (rules[0].for_ms, 300000);
    assert_true (rules[0].degrade);
    //  A name may hold a colon; the separator is the colon before a blank.
    assert_string_equal (rules[1].name, "disk:full");
    assert_string_equal (rules[1].metric, "disk_used_pct");
    assert_int_equal (rules[1].op, VW_ALERT_GE);
    assert_true (rules[1].threshold == 95);
    assert_int_equal (rules[1].for_ms, 0);
    assert_false (rules[1].degrade);
    assert_string_equal (rules[2].name, "cold");
    assert_int_equal (rules[2].op, VW_ALERT_LT);
    assert_true (rules[2].threshold == -10.5);
    assert_int_equal (rules[2].for_ms, 250);
    assert_int_equal (vw_alerts_parse ("x: cpu!=0", rules, 4, err, sizeof err), 1);
    assert_int_equal (rules[0].op, VW_ALERT_NE);
}

static void
test_refusals_name_the_rule (void **state)
{
    (void) state;
    vw_alert_rule_t rules[2];
    char err[256];
    const struct {
        const char *text, *why;
    } bad[] = {
        {"no colon here", "expected 'NAME: METRIC OP THRESHOLD'"},
        {"x: cpu >> 1", "operator"},
        {"x: cpu > high", "threshold"},
        {"x: cpu > 1e999", "threshold"},
        {"x: c/pu > 1", "metric"},
        {"x: cpu > 1 for", "duration"},
        {"x: cpu > 1 for soon", "duration"},
        {"x: cpu > 1 loudly", "unexpected 'loudly'"},
        {"x: cpu > 1; x: cpu < 0", "defined twice"},
        {"a: m > 1; b: m > 1; c: m > 1", "more than 2"},
        {"bad name: cpu > 1", "name"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        assert_int_equal (vw_alerts_parse (bad[i].text, rules, 2, err, sizeof err), -1);
        if (!strstr (err, bad[i].why))
            fail_msg ("'%s': '%s' lacks '%s'", bad[i].text, err, bad[i].why);
    }
}

static void
test_operators (void **state)
{
    (void) state;
    vw_alert_rule_t rule = {.threshold = 5};
    const struct {
        vw_alert_op_t op;
        bool at4, at5, at6;
    } cases[] = {
        {VW_ALERT_GT, false, false, true}, {VW_ALERT_GE, false, true, true},
        {VW_ALERT_LT, true, false, false}, {VW_ALERT_LE, true, true, false},
        {VW_ALERT_EQ, false, true, false}, {VW_ALERT_NE, true, false, true},
    };
    for (size_t i = 0; i < 6; i++) {
        rule.op = cases[i].op;
        assert_int_equal (vw_alert_holds (&rule, 4), cases[i].at4);
        assert_int_equal (vw_alert_holds (&rule, 5), cases[i].at5);
        assert_int_equal (vw_alert_holds (&rule, 6), cases[i].at6);
    }
    assert_string_equal (vw_alert_op_name (VW_ALERT_NE), "!=");
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_parse_rules),
        cmocka_unit_test (test_refusals_name_the_rule),
        cmocka_unit_test (test_operators),
    };
    return cmocka_run_group_tests_name ("vw_alerts", tests, NULL, NULL);
}
