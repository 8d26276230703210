/*  vw_telemetry_query - see vw_telemetry_query.h. */
#include "vw_telemetry_query.h"
#include "vw_points.h"
#include "vw_rollup.h"
#include "vw_telemetry_rows.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define S_MINUTE 60000
#define S_HOUR   3600000

static const char *S_SQL_AGENT = "SELECT 1 FROM agents WHERE agent_id = ?1";
static const char *S_SQL_FRAMES = "SELECT points FROM telemetry_frames "
                                  "WHERE tid = ?1 AND ts_max >= ?2 AND ts_min < ?3 ORDER BY id";
static const char *S_SQL_SERIES_ALL =
    "SELECT series_id, metric FROM telemetry_series WHERE agent_id = ?1";
static const char *S_SQL_SERIES_ONE =
    "SELECT series_id, metric FROM telemetry_series WHERE agent_id = ?1 AND metric = ?2";
//  An agent's roll-up rows in a range of buckets (vw_telemetry_rows: the
//  key is tid << 32 | the bucket's number).
static const char *S_SQL_ROLLUP_1M =
    "SELECT key, aggs FROM telemetry_1m WHERE key >= ?1 AND key < ?2 ORDER BY key";
static const char *S_SQL_ROLLUP_1H =
    "SELECT key, aggs FROM telemetry_1h WHERE key >= ?1 AND key < ?2 ORDER BY key";

vw_agg_t
vw_agg_from_name (const char *name)
{
    static const char *const names[] = {"", "avg", "min", "max", "sum", "count", "last"};
    for (int i = 1; name && i < (int) (sizeof names / sizeof names[0]); i++)
        if (strcmp (name, names[i]) == 0)
            return (vw_agg_t) i;
    return VW_AGG_NONE;
}

typedef struct {
    int64_t ts;
    uint64_t order;  //  when stored: of equal ts, the earlier first
    double value;
} s_point_t;

//  A bucket's aggregates (from raw points or roll-up rows).
typedef struct {
    int64_t bucket, count, last_ts;
    double min, max, sum, last;
} s_bucket_t;

typedef struct {
    char name[65];
    s_point_t *points;
    size_t count, cap;
    s_bucket_t *buckets;
    size_t nbuckets, capbuckets;
} s_series_t;

typedef struct {
    const vw_telemetry_query_t *query;
    int64_t lo, hi;  //  the range being read: [lo, hi)
    json_t *index;   //  metric -> position in series
    s_series_t *series;
    size_t count, cap;
    uint64_t order;
    size_t points;  //  read so far, in every series
    bool too_many, failed;
} s_collect_t;

static bool
s_grow (void **items, size_t *cap, size_t count, size_t size, size_t first)
{
    if (count < *cap)
        return true;
    size_t n = *cap ? 2 * *cap : first;
    void *grown = realloc (*items, n * size);
    if (!grown)
        return false;
    *items = grown;
    *cap = n;
    return true;
}

static s_series_t *
s_series_of (s_collect_t *c, const char *name, size_t len)
{
    char key[65];
    snprintf (key, sizeof key, "%.*s", (int) len, name);
    json_t *at = json_object_get (c->index, key);
    if (at)
        return &c->series[json_integer_value (at)];
    if (!s_grow ((void **) &c->series, &c->cap, c->count, sizeof *c->series, 8))
        return NULL;
    s_series_t *s = &c->series[c->count];
    memset (s, 0, sizeof *s);
    memcpy (s->name, key, strlen (key) + 1);
    json_object_set_new (c->index, key, json_integer ((json_int_t) c->count++));
    return s;
}

static void
s_collect_free (s_collect_t *c)
{
    for (size_t i = 0; i < c->count; i++) {
        free (c->series[i].points);
        free (c->series[i].buckets);
    }
    free (c->series);
    json_decref (c->index);
}

static int
s_collect (void *arg, const vw_points_value_t *v)
{
    s_collect_t *c = (s_collect_t *) arg;
    const vw_telemetry_query_t *q = c->query;
    c->order++;
    if (v->ts < c->lo || v->ts >= c->hi)
        return 0;
    if (q->metric &&
        (strlen (q->metric) != v->name_len || memcmp (q->metric, v->name, v->name_len)))
        return 0;
    //  Raw answers are bounded by the points; bucketed ones by the buckets
    //  (checked before the query), with a generous bound on what is read.
    if (++c->points > (size_t) q->max_points * (q->step_ms ? 100 : 1)) {
        c->too_many = true;
        return 1;
    }
    s_series_t *s = s_series_of (c, v->name, v->name_len);
    if (!s || !s_grow ((void **) &s->points, &s->cap, s->count, sizeof *s->points, 64)) {
        c->failed = true;
        return 1;
    }
    s->points[s->count++] = (s_point_t){v->ts, c->order, v->value};
    return 0;
}

//  The raw points in [lo, hi) into c's series.
static int
s_read_raw (vw_db_t *db, int64_t tid, s_collect_t *c, int64_t lo, int64_t hi)
{
    if (lo >= hi)
        return 0;
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_FRAMES);
    if (!stmt)
        return -1;
    c->lo = lo;
    c->hi = hi;
    sqlite3_bind_int64 (stmt, 1, tid);
    sqlite3_bind_int64 (stmt, 2, lo);
    sqlite3_bind_int64 (stmt, 3, hi);
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW && !c->too_many && !c->failed)
        //  A frame that does not walk (it cannot be: the store checked it)
        //  adds what it holds before the fault.
        vw_points_walk ((const uint8_t *) sqlite3_column_blob (stmt, 0),
                        (size_t) sqlite3_column_bytes (stmt, 0), s_collect, c, NULL);
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

static s_bucket_t *
s_bucket_new (s_series_t *s, int64_t bucket)
{
    if (!s_grow ((void **) &s->buckets, &s->capbuckets, s->nbuckets, sizeof *s->buckets, 16))
        return NULL;
    s_bucket_t *b = &s->buckets[s->nbuckets++];
    *b = (s_bucket_t){bucket, 0, INT64_MIN, 0, 0, 0, 0};
    return b;
}

//  Adds (count, min, max, sum, last at last_ts) to a bucket.
static void
s_bucket_add (s_bucket_t *b, int64_t count, double min, double max, double sum, double last,
              int64_t last_ts)
{
    if (b->count == 0 || min < b->min)
        b->min = min;
    if (b->count == 0 || max > b->max)
        b->max = max;
    b->sum += sum;
    b->count += count;
    if (last_ts >= b->last_ts) {
        b->last = last;
        b->last_ts = last_ts;
    }
}

static int
s_by_ts (const void *a, const void *b)
{
    const s_point_t *x = (const s_point_t *) a, *y = (const s_point_t *) b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int
s_by_bucket (const void *a, const void *b)
{
    int64_t x = ((const s_bucket_t *) a)->bucket, y = ((const s_bucket_t *) b)->bucket;
    return x < y ? -1 : x > y;
}

static int
s_by_name (const void *a, const void *b)
{
    return strcmp (((const s_series_t *) a)->name, ((const s_series_t *) b)->name);
}

//  The series' raw points into buckets of step_ms.
static int
s_bucketize (s_series_t *s, int64_t step)
{
    if (s->count)
        qsort (s->points, s->count, sizeof *s->points, s_by_ts);
    s_bucket_t *b = NULL;
    for (size_t i = 0; i < s->count; i++) {
        const s_point_t *p = &s->points[i];
        int64_t bucket = p->ts - p->ts % step;
        if ((!b || b->bucket != bucket) && !(b = s_bucket_new (s, bucket)))
            return -1;
        s_bucket_add (b, 1, p->value, p->value, p->value, p->value, p->ts);
    }
    return 0;
}

typedef struct {
    int64_t sid;
    char name[65];
} s_named_t;

static int
s_by_sid (const void *a, const void *b)
{
    int64_t x = ((const s_named_t *) a)->sid, y = ((const s_named_t *) b)->sid;
    return x < y ? -1 : x > y;
}

//  The roll-ups of every series (or the one metric) in buckets [lo, hi)
//  of the tier, in buckets of step_ms.
static int
s_read_rollups (vw_db_t *db, int64_t tid, s_collect_t *c, int64_t tier, int64_t lo, int64_t hi)
{
    const vw_telemetry_query_t *q = c->query;
    sqlite3_stmt *list = vw_db_stmt (db, q->metric ? S_SQL_SERIES_ONE : S_SQL_SERIES_ALL);
    if (!list)
        return -1;
    vw_db_bind_text (list, 1, q->agent_id);
    if (q->metric)
        vw_db_bind_text (list, 2, q->metric);
    //  The series wanted, by id (the list statement is done before the
    //  rows are read).
    s_named_t *wanted = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step (list)) == SQLITE_ROW) {
        if (!s_grow ((void **) &wanted, &cap, n, sizeof *wanted, 16)) {
            rc = SQLITE_NOMEM;
            break;
        }
        wanted[n].sid = sqlite3_column_int64 (list, 0);
        snprintf (wanted[n].name, sizeof wanted[n].name, "%s",
                  (const char *) sqlite3_column_text (list, 1));
        n++;
    }
    sqlite3_reset (list);
    if (n)
        qsort (wanted, n, sizeof *wanted, s_by_sid);
    sqlite3_stmt *rows = NULL;
    if (rc == SQLITE_DONE && n) {
        rows = vw_db_stmt (db, tier == S_HOUR ? S_SQL_ROLLUP_1H : S_SQL_ROLLUP_1M);
        if (!rows)
            rc = SQLITE_ERROR;
        else {
            sqlite3_bind_int64 (rows, 1, (int64_t) ((uint64_t) tid << 32 | (uint64_t) (lo / tier)));
            sqlite3_bind_int64 (
                rows, 2, (int64_t) ((uint64_t) tid << 32 | (uint64_t) ((hi + tier - 1) / tier)));
        }
    }
    vw_rollup_t *entries = NULL;
    size_t cap_entries = 0, count = 0;
    while (rows && rc == SQLITE_DONE && (rc = sqlite3_step (rows)) == SQLITE_ROW) {
        rc = SQLITE_DONE;
        int64_t at = (sqlite3_column_int64 (rows, 0) & 0xffffffff) * tier;
        if (vw_rollup_decode ((const uint8_t *) sqlite3_column_blob (rows, 1),
                              (size_t) sqlite3_column_bytes (rows, 1), at, tier, &entries,
                              &cap_entries, &count)) {
            rc = SQLITE_CORRUPT;
            break;
        }
        int64_t bucket = at - at % q->step_ms;
        for (size_t i = 0; i < count; i++) {
            s_named_t key = {entries[i].sid, ""};
            const s_named_t *w =
                (const s_named_t *) bsearch (&key, wanted, n, sizeof *wanted, s_by_sid);
            if (!w)
                continue;
            //  Rows come by bucket: a series' buckets grow at its end.
            s_series_t *s = s_series_of (c, w->name, strlen (w->name));
            s_bucket_t *b = s && s->nbuckets && s->buckets[s->nbuckets - 1].bucket == bucket
                                ? &s->buckets[s->nbuckets - 1]
                            : s ? s_bucket_new (s, bucket)
                                : NULL;
            if (!b) {
                rc = SQLITE_NOMEM;
                break;
            }
            const vw_rollup_t *e = &entries[i];
            s_bucket_add (b, e->count, e->min, e->max, e->sum, e->last, e->last_ts);
        }
    }
    if (rows)
        sqlite3_reset (rows);
    free (entries);
    free (wanted);
    return rc == SQLITE_DONE ? 0 : -1;
}

//  Whether every real of the answer reads back exactly with 15 digits
//  (then the answer is written with 15: 1.93 rather than 1.9299999999999999).
static bool s_short_reals;

//  A real as JSON, noting whether 15 digits give it back.
static json_t *
s_real (double v)
{
    if (s_short_reals) {
        char text[32];
        snprintf (text, sizeof text, "%.15g", v);
        s_short_reals = strtod (text, NULL) == v;
    }
    return json_real (v);
}

//  A number as JSON: an integer when it is one (812, not 812.0).
static json_t *
s_number (double v)
{
    if (v == (double) (int64_t) v && v > -9007199254740992.0 && v < 9007199254740992.0)
        return json_integer ((json_int_t) v);
    return s_real (v);
}

static json_t *
s_pair (int64_t ts, double v)
{
    json_t *pair = json_array ();
    json_array_append_new (pair, json_integer (ts));
    json_array_append_new (pair, s_number (v));
    return pair;
}

static json_t *
s_series_points (s_series_t *s, const vw_telemetry_query_t *q)
{
    json_t *out = json_array ();
    if (!q->step_ms) {
        if (s->count)
            qsort (s->points, s->count, sizeof *s->points, s_by_ts);
        for (size_t i = 0; i < s->count; i++)
            json_array_append_new (out, s_pair (s->points[i].ts, s->points[i].value));
        return out;
    }
    if (s->nbuckets)
        qsort (s->buckets, s->nbuckets, sizeof *s->buckets, s_by_bucket);
    for (size_t i = 0; i < s->nbuckets; i++) {
        const s_bucket_t *b = &s->buckets[i];
        double value = q->agg == VW_AGG_MIN     ? b->min
                       : q->agg == VW_AGG_MAX   ? b->max
                       : q->agg == VW_AGG_SUM   ? b->sum
                       : q->agg == VW_AGG_COUNT ? (double) b->count
                       : q->agg == VW_AGG_LAST  ? b->last
                                                : b->sum / (double) b->count;
        json_array_append_new (out, s_pair (b->bucket, value));
    }
    return out;
}

//  The agent's tid: 1; 2 when the agent exists but never sent telemetry;
//  -1 on a database error; 0 (answered 404) when there is no such agent.
static int
s_find (vw_db_t *db, const char *agent_id, int64_t *tid, vw_result_t *result)
{
    int found = vw_telemetry_rows_tid (db, agent_id, false, tid);
    if (found == 0) {
        sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_AGENT);
        int rc = SQLITE_ERROR;
        if (stmt) {
            vw_db_bind_text (stmt, 1, agent_id);
            rc = sqlite3_step (stmt);
            sqlite3_reset (stmt);
        }
        found = rc == SQLITE_ROW ? 2 : rc == SQLITE_DONE ? 0 : -1;
    }
    if (found == 0)
        vw_result_fail (result, 404, "not_found", "no agent '%.64s'", agent_id);
    return found;
}

void
vw_telemetry_query (vw_db_t *db, const vw_telemetry_query_t *query, vw_result_t *result)
{
    int64_t tid = 0;
    int found = s_find (db, query->agent_id, &tid, result);
    if (found == 0)
        return;
    //  Which buckets the roll-ups answer: those wholly inside [from, to).
    int64_t step = query->step_ms, tier = 0, inner_lo = 0, inner_hi = 0;
    if (step && step % S_HOUR == 0)
        tier = S_HOUR;
    else if (step && step % S_MINUTE == 0)
        tier = S_MINUTE;
    if (tier) {
        inner_lo = (query->from + step - 1) / step * step;
        inner_hi = query->to / step * step;
        if (inner_lo >= inner_hi)
            tier = 0;
    }
    s_collect_t c = {query, 0, 0, json_object (), NULL, 0, 0, 0, 0, false, false};
    int rc = found < 0 ? -1 : 0;
    s_short_reals = true;
    if (rc == 0 && found == 1) {
        if (tier)
            rc = s_read_raw (db, tid, &c, query->from, inner_lo) ||
                 s_read_raw (db, tid, &c, inner_hi, query->to);
        else
            rc = s_read_raw (db, tid, &c, query->from, query->to);
    }
    if (rc == 0 && !c.too_many && !c.failed && step)
        for (size_t i = 0; i < c.count && rc == 0; i++)
            rc = s_bucketize (&c.series[i], step);
    if (rc == 0 && !c.too_many && !c.failed && tier && found == 1)
        rc = s_read_rollups (db, tid, &c, tier, inner_lo, inner_hi);
    if (c.too_many)
        vw_result_fail (result, 400, "too_many_points",
                        "the range holds more than %lld points; narrow it (from, to, metric) or "
                        "ask for buckets (step_ms)",
                        (long long) query->max_points);
    else if (c.failed || rc)
        vw_result_fail (result, 500, "database_error", "database error: %s",
                        c.failed ? "out of memory" : sqlite3_errmsg (vw_db_handle (db)));
    else {
        if (c.count)
            qsort (c.series, c.count, sizeof *c.series, s_by_name);
        json_t *series = json_array ();
        for (size_t i = 0; i < c.count; i++)
            json_array_append_new (series,
                                   json_pack ("{s:s, s:o}", "metric", c.series[i].name, "points",
                                              s_series_points (&c.series[i], query)));
        vw_result_ok (result, 200,
                      json_pack ("{s:s, s:o}", "agent_id", query->agent_id, "series", series));
        result->real_digits = s_short_reals ? 15 : 0;
    }
    s_collect_free (&c);
}

//  --------------------------------------------------------------------------
//  GET /telemetry/{agent_id}/summary

#define S_SUMMARY_RAW_MS (5 * S_MINUTE)  //  the raw points read: the 1 m and 5 m windows

//  {"min","max","avg","count"} of the series' raw points in [from, now].
static json_t *
s_window (const s_series_t *s, int64_t from, int64_t now)
{
    s_bucket_t b = {0, 0, INT64_MIN, 0, 0, 0, 0};
    for (size_t i = 0; i < s->count; i++)
        if (s->points[i].ts >= from && s->points[i].ts <= now)
            s_bucket_add (&b, 1, s->points[i].value, s->points[i].value, s->points[i].value,
                          s->points[i].value, s->points[i].ts);
    return b.count ? json_pack ("{s:o, s:o, s:o, s:I}", "min", s_number (b.min), "max",
                                s_number (b.max), "avg", s_real (b.sum / (double) b.count), "count",
                                (json_int_t) b.count)
                   : json_pack ("{s:n, s:n, s:n, s:i}", "min", "max", "avg", "count", 0);
}

//  The 1 h window from the minute roll-ups, and the trend: the slope of the
//  least-squares line through the minute averages, per minute (null with
//  fewer than two minutes).
static s_bucket_t
s_hour (const s_series_t *s, json_t **window, json_t **trend)
{
    s_bucket_t all = {0, 0, INT64_MIN, 0, 0, 0, 0};
    double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (size_t i = 0; i < s->nbuckets; i++) {
        const s_bucket_t *b = &s->buckets[i];
        s_bucket_add (&all, b->count, b->min, b->max, b->sum, b->last, b->last_ts);
        double x = (double) b->bucket / S_MINUTE, y = b->sum / (double) b->count;
        n++;
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
    }
    *window = all.count
                  ? json_pack ("{s:o, s:o, s:o, s:I}", "min", s_number (all.min), "max",
                               s_number (all.max), "avg", s_real (all.sum / (double) all.count),
                               "count", (json_int_t) all.count)
                  : json_pack ("{s:n, s:n, s:n, s:i}", "min", "max", "avg", "count", 0);
    double d = n * sxx - sx * sx;
    *trend = n >= 2 && d != 0 ? s_real ((n * sxy - sx * sy) / d) : json_null ();
    return all;
}

void
vw_telemetry_summary (vw_db_t *db, const char *agent_id, int64_t now, vw_result_t *result)
{
    //  The 1 h window reads the minute roll-ups since now - 1 h (rounded
    //  down to the minute); the rest reads the raw points of the last 5 min.
    vw_telemetry_query_t query = {agent_id, NULL,        now - S_SUMMARY_RAW_MS, now + 1,
                                  0,        VW_AGG_NONE, INT64_MAX / 1000};
    int64_t tid = 0;
    int found = s_find (db, agent_id, &tid, result);
    if (found == 0)
        return;
    s_collect_t c = {&query, 0, 0, json_object (), NULL, 0, 0, 0, 0, false, false};
    int rc = found < 0 ? -1 : found == 2 ? 0 : s_read_raw (db, tid, &c, query.from, query.to);
    s_short_reals = true;
    //  Roll-ups of every series the agent ever had: the raw read found those
    //  of the last 5 minutes; the others appear here.
    query.step_ms = S_MINUTE;
    int64_t hour_from = (now - S_HOUR) / S_MINUTE * S_MINUTE;
    if (rc == 0 && !c.failed && found == 1)
        rc = s_read_rollups (db, tid, &c, S_MINUTE, hour_from, now + 1);
    json_t *metrics = json_object ();
    for (size_t i = 0; rc == 0 && !c.failed && i < c.count; i++) {
        s_series_t *s = &c.series[i];
        if (s->count)
            qsort (s->points, s->count, sizeof *s->points, s_by_ts);
        json_t *hour, *trend;
        s_bucket_t all = s_hour (s, &hour, &trend);
        //  Nothing in 5 min: the newest minute bucket holds the last value.
        json_t *last = s->count ? s_number (s->points[s->count - 1].value) : s_number (all.last);
        json_t *last_ts = json_integer (s->count ? s->points[s->count - 1].ts : all.last_ts);
        json_object_set_new (metrics, s->name,
                             json_pack ("{s:o, s:o, s:{s:o, s:o, s:o}, s:o}", "last", last,
                                        "last_ts", last_ts, "windows", "1m",
                                        s_window (s, now - S_MINUTE, now), "5m",
                                        s_window (s, now - S_SUMMARY_RAW_MS, now), "1h", hour,
                                        "trend_per_min", trend));
    }
    if (c.failed || rc) {
        json_decref (metrics);
        vw_result_fail (result, 500, "database_error", "database error: %s",
                        c.failed ? "out of memory" : sqlite3_errmsg (vw_db_handle (db)));
    }
    else {
        vw_result_ok (result, 200,
                      json_pack ("{s:s, s:I, s:o}", "agent_id", agent_id, "at", (json_int_t) now,
                                 "metrics", metrics));
        result->real_digits = s_short_reals ? 15 : 0;
    }
    s_collect_free (&c);
}
