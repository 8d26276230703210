/*  vw_alerts - telemetry alert rules (SPEC §9): `metric`, `op`, `threshold`,
    `for_ms`, read from the setting telemetry.alerts, rules separated by
    semicolons:

        cpu_high: cpu > 0.9 for 5m degrade; disk_full: disk_used_pct >= 95

    NAME: METRIC OP THRESHOLD [for DURATION] [degrade]. NAME and METRIC
    follow the metric grammar ([A-Za-z0-9_.:-]{1,64}); OP is one of > >= <
    <= == !=; THRESHOLD a finite number; DURATION as the other settings
    (250ms, 10s, 5m, 2h or plain ms; default 0: at the first point);
    `degrade` marks the agent degraded while the rule fires for it.
*/
#ifndef VW_ALERTS_H
#define VW_ALERTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VW_ALERTS_MAX 64

typedef enum {
    VW_ALERT_GT,
    VW_ALERT_GE,
    VW_ALERT_LT,
    VW_ALERT_LE,
    VW_ALERT_EQ,
    VW_ALERT_NE
} vw_alert_op_t;

typedef struct {
    char name[65];
    char metric[65];
    vw_alert_op_t op;
    double threshold;
    int64_t for_ms;
    bool degrade;
} vw_alert_rule_t;

//  Parses text (NULL or blank: no rules) into rules[max]. Returns the count,
//  or -1 with a sentence naming the rule and what is wrong in err.
int vw_alerts_parse (const char *text, vw_alert_rule_t *rules, size_t max, char *err,
                     size_t errlen);

bool vw_alert_holds (const vw_alert_rule_t *rule, double value);
const char *vw_alert_op_name (vw_alert_op_t op);

#endif
