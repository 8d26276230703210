/*  vw_alerts - see vw_alerts.h. */
#include "vw_alerts.h"
#include "vw_config.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const s_ops[] = {">", ">=", "<", "<=", "==", "!="};

const char *
vw_alert_op_name (vw_alert_op_t op)
{
    return (unsigned) op < 6 ? s_ops[op] : "?";
}

bool
vw_alert_holds (const vw_alert_rule_t *rule, double value)
{
    switch (rule->op) {
        case VW_ALERT_GT: return value > rule->threshold;
        case VW_ALERT_GE: return value >= rule->threshold;
        case VW_ALERT_LT: return value < rule->threshold;
        case VW_ALERT_LE: return value <= rule->threshold;
        case VW_ALERT_EQ: return value == rule->threshold;
        case VW_ALERT_NE: return value != rule->threshold;
    }
    return false;
}

static bool
s_name_char (char c)
{
    return isalnum ((unsigned char) c) || c == '_' || c == '.' || c == ':' || c == '-';
}

//  The next word (up to blank), copied into word; NULL at the end.
static const char *
s_word (const char *p, char *word, size_t size)
{
    while (isspace ((unsigned char) *p))
        p++;
    if (!*p)
        return NULL;
    size_t n = 0;
    while (*p && !isspace ((unsigned char) *p)) {
        if (n + 1 < size)
            word[n++] = *p;
        p++;
    }
    word[n] = 0;
    return p;
}

static bool
s_valid_name (const char *s)
{
    size_t n = strlen (s);
    if (n < 1 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!s_name_char (s[i]))
            return false;
    return true;
}

static int
s_parse_rule (const char *text, vw_alert_rule_t *rule, char *err, size_t errlen)
{
    memset (rule, 0, sizeof *rule);
    const char *colon = strchr (text, ':');
    //  The name ends at the first colon followed by a blank (names may hold colons).
    while (colon && colon[1] && !isspace ((unsigned char) colon[1]))
        colon = strchr (colon + 1, ':');
    if (!colon) {
        snprintf (err, errlen, "alert rule '%.80s': expected 'NAME: METRIC OP THRESHOLD'", text);
        return -1;
    }
    char name[128];
    snprintf (name, sizeof name, "%.*s", (int) (colon - text), text);
    char *start = name;
    while (isspace ((unsigned char) *start))
        start++;
    for (char *end = start + strlen (start); end > start && isspace ((unsigned char) end[-1]);)
        *--end = 0;
    if (!s_valid_name (start)) {
        snprintf (err, errlen, "alert rule '%.80s': the name must match [A-Za-z0-9_.:-]{1,64}",
                  text);
        return -1;
    }
    snprintf (rule->name, sizeof rule->name, "%s", start);
    //  METRIC OP THRESHOLD, blanks between them optional ("cpu>0.9").
    const char *p = colon + 1;
    while (isspace ((unsigned char) *p))
        p++;
    size_t n = 0;
    while (s_name_char (p[n]))
        n++;
    if (n < 1 || n > 64 || (p[n] && !isspace ((unsigned char) p[n]) && !strchr ("<>=!", p[n]))) {
        snprintf (err, errlen, "alert rule '%s': the metric must match [A-Za-z0-9_.:-]{1,64}",
                  rule->name);
        return -1;
    }
    snprintf (rule->metric, sizeof rule->metric, "%.*s", (int) n, p);
    p += n;
    while (isspace ((unsigned char) *p))
        p++;
    n = strspn (p, "<>=!");
    int op = -1;
    for (int i = 0; i < 6; i++)
        if (strlen (s_ops[i]) == n && strncmp (p, s_ops[i], n) == 0)
            op = i;
    if (op < 0) {
        snprintf (err, errlen,
                  "alert rule '%s': the operator must be one of > >= < <= == !=", rule->name);
        return -1;
    }
    p += n;
    char word[128];
    rule->op = (vw_alert_op_t) op;
    p = s_word (p, word, sizeof word);
    char *end = NULL;
    rule->threshold = p ? strtod (word, &end) : NAN;
    if (!p || !end || *end || end == word || !isfinite (rule->threshold)) {
        snprintf (err, errlen, "alert rule '%s': the threshold must be a finite number",
                  rule->name);
        return -1;
    }
    while ((p = s_word (p, word, sizeof word))) {
        if (strcmp (word, "for") == 0) {
            p = s_word (p, word, sizeof word);
            if (!p || vw_config_parse_duration (word, &rule->for_ms) || rule->for_ms < 0) {
                snprintf (err, errlen,
                          "alert rule '%s': 'for' needs a duration (250ms, 10s, 5m, 2h)",
                          rule->name);
                return -1;
            }
        }
        else if (strcmp (word, "degrade") == 0)
            rule->degrade = true;
        else {
            snprintf (err, errlen,
                      "alert rule '%s': unexpected '%.40s' (expected 'for DURATION' "
                      "or 'degrade')",
                      rule->name, word);
            return -1;
        }
    }
    return 0;
}

int
vw_alerts_parse (const char *text, vw_alert_rule_t *rules, size_t max, char *err, size_t errlen)
{
    size_t count = 0;
    const char *p = text ? text : "";
    while (*p) {
        const char *semi = strchr (p, ';');
        size_t len = semi ? (size_t) (semi - p) : strlen (p);
        char one[512];
        if (len >= sizeof one) {
            snprintf (err, errlen, "alert rule '%.40s…' is too long", p);
            return -1;
        }
        memcpy (one, p, len);
        one[len] = 0;
        bool blank = true;
        for (size_t i = 0; i < len && blank; i++)
            blank = isspace ((unsigned char) one[i]);
        if (!blank) {
            if (count == max) {
                snprintf (err, errlen, "more than %zu alert rules", max);
                return -1;
            }
            if (s_parse_rule (one, &rules[count], err, errlen))
                return -1;
            for (size_t i = 0; i < count; i++)
                if (strcmp (rules[i].name, rules[count].name) == 0) {
                    snprintf (err, errlen, "alert rule '%s' is defined twice", rules[i].name);
                    return -1;
                }
            count++;
        }
        p += len + (semi ? 1 : 0);
    }
    return (int) count;
}
