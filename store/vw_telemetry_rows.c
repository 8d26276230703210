/*  vw_telemetry_rows - see vw_telemetry_rows.h. */
#include "vw_telemetry_rows.h"
#include "vw_points.h"

#include <stdlib.h>
#include <string.h>

static const char *S_SQL_TID = "SELECT tid FROM telemetry_agents WHERE agent_id = ?1";
static const char *S_SQL_TID_NEW =
    "INSERT INTO telemetry_agents (agent_id) SELECT agent_id FROM agents WHERE agent_id = ?1";
static const char *S_SQL_AGENT = "SELECT 1 FROM agents WHERE agent_id = ?1";
//  The range at or below seq, and the one starting right after it.
static const char *S_SQL_RANGE_BELOW =
    "SELECT lo, hi FROM telemetry_seqs WHERE tid = ?1 AND lo <= ?2 "
    "ORDER BY lo DESC LIMIT 1";
static const char *S_SQL_RANGE_AT = "SELECT hi FROM telemetry_seqs WHERE tid = ?1 AND lo = ?2";
static const char *S_SQL_RANGE_NEW = "INSERT INTO telemetry_seqs (tid, lo, hi) VALUES (?1, ?2, ?3)";
static const char *S_SQL_RANGE_HI = "UPDATE telemetry_seqs SET hi = ?3 WHERE tid = ?1 AND lo = ?2";
static const char *S_SQL_RANGE_LO = "UPDATE telemetry_seqs SET lo = ?3 WHERE tid = ?1 AND lo = ?2";
static const char *S_SQL_RANGE_DEL = "DELETE FROM telemetry_seqs WHERE tid = ?1 AND lo = ?2";
static const char *S_SQL_FRAME_NEW =
    "INSERT INTO telemetry_frames (tid, seq, ts_min, ts_max, points) VALUES (?1, ?2, ?3, ?4, ?5)";
static const char *S_SQL_FRAMES = "SELECT points FROM telemetry_frames "
                                  "WHERE tid = ?1 AND ts_max >= ?2 AND ts_min < ?3 ORDER BY id";

//  Runs a statement with up to three integer parameters; SQLITE_ROW (the
//  first column in *out), SQLITE_DONE or an error.
static int
s_run (vw_db_t *db, const char *sql, int n, int64_t a, int64_t b, int64_t c, int64_t *out)
{
    sqlite3_stmt *stmt = vw_db_stmt (db, sql);
    if (!stmt)
        return SQLITE_ERROR;
    int64_t args[3] = {a, b, c};
    for (int i = 0; i < n; i++)
        sqlite3_bind_int64 (stmt, i + 1, args[i]);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW && out)
        *out = sqlite3_column_int64 (stmt, 0);
    sqlite3_reset (stmt);
    return rc;
}

//  The agent's tid: 1, 0 when the agent does not exist, -1 on error.
static int
s_tid (vw_db_t *db, const char *agent_id, bool create, int64_t *tid)
{
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_TID);
    if (!stmt)
        return -1;
    vw_db_bind_text (stmt, 1, agent_id);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW)
        *tid = sqlite3_column_int64 (stmt, 0);
    sqlite3_reset (stmt);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc != SQLITE_DONE || !create)
        return rc == SQLITE_DONE ? 0 : -1;
    stmt = vw_db_stmt (db, S_SQL_TID_NEW);
    if (!stmt)
        return -1;
    vw_db_bind_text (stmt, 1, agent_id);
    rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE)
        return -1;
    if (sqlite3_changes (vw_db_handle (db)) == 0)
        return 0;
    *tid = sqlite3_last_insert_rowid (vw_db_handle (db));
    return 1;
}

static int
s_agent_exists (vw_db_t *db, const char *agent_id)
{
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_AGENT);
    if (!stmt)
        return -1;
    vw_db_bind_text (stmt, 1, agent_id);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

//  The agent's range at or below seq (lo = -1 when there is none): 0, or
//  -1 on error.
static int
s_seq_below (vw_db_t *db, int64_t tid, int64_t seq, int64_t *lo, int64_t *hi)
{
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_RANGE_BELOW);
    if (!stmt)
        return -1;
    sqlite3_bind_int64 (stmt, 1, tid);
    sqlite3_bind_int64 (stmt, 2, seq);
    int rc = sqlite3_step (stmt);
    *lo = *hi = -1;
    if (rc == SQLITE_ROW) {
        *lo = sqlite3_column_int64 (stmt, 0);
        *hi = sqlite3_column_int64 (stmt, 1);
    }
    sqlite3_reset (stmt);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

//  Adds seq (not in any range; [lo, hi] the range below it, lo = -1 for
//  none) to the agent's ranges, merging with its neighbours: 0, or -1.
static int
s_seq_add (vw_db_t *db, int64_t tid, int64_t seq, int64_t lo, int64_t hi)
{
    int64_t next_hi = -1;
    int rc =
        seq < INT64_MAX ? s_run (db, S_SQL_RANGE_AT, 2, tid, seq + 1, 0, &next_hi) : SQLITE_DONE;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return -1;
    bool next = rc == SQLITE_ROW;
    bool joins_below = lo >= 0 && hi == seq - 1;
    if (joins_below && next)
        rc = s_run (db, S_SQL_RANGE_DEL, 2, tid, seq + 1, 0, NULL) == SQLITE_DONE
                 ? s_run (db, S_SQL_RANGE_HI, 3, tid, lo, next_hi, NULL)
                 : SQLITE_ERROR;
    else if (joins_below)
        rc = s_run (db, S_SQL_RANGE_HI, 3, tid, lo, seq, NULL);
    else if (next)
        rc = s_run (db, S_SQL_RANGE_LO, 3, tid, seq + 1, seq, NULL);
    else
        rc = s_run (db, S_SQL_RANGE_NEW, 3, tid, seq, seq, NULL);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int
s_frame_add (vw_db_t *db, int64_t tid, int64_t seq, const vw_points_info_t *info,
             const uint8_t *points, size_t size)
{
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_FRAME_NEW);
    if (!stmt)
        return -1;
    sqlite3_bind_int64 (stmt, 1, tid);
    sqlite3_bind_int64 (stmt, 2, seq);
    sqlite3_bind_int64 (stmt, 3, info->ts_min);
    sqlite3_bind_int64 (stmt, 4, info->ts_max);
    sqlite3_bind_blob (stmt, 5, points, (int) size, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    sqlite3_clear_bindings (stmt);
    return rc == SQLITE_DONE ? 0 : -1;
}

void
vw_telemetry_rows_store (vw_db_t *db, const char *agent_id, int64_t seq, const uint8_t *points,
                         size_t size, vw_result_t *result)
{
    vw_points_info_t info;
    if (seq < 0 || vw_points_walk (points, size, NULL, NULL, &info)) {
        vw_result_fail (result, 400, "bad_request", "not a telemetry frame");
        return;
    }
    int64_t tid = 0, lo, hi;
    int found = s_tid (db, agent_id, true, &tid);
    if (found == 0) {
        vw_result_fail (result, 404, "not_found", "no agent '%.64s'", agent_id);
        return;
    }
    //  The frame goes in before its seq is recorded: should the second step
    //  fail alone, a re-sent frame is stored twice rather than lost.
    if (found == 1 && s_seq_below (db, tid, seq, &lo, &hi) == 0) {
        if (lo >= 0 && hi >= seq) {
            vw_result_ok (result, 200, NULL);
            return;
        }
        if (s_frame_add (db, tid, seq, &info, points, size) == 0 &&
            s_seq_add (db, tid, seq, lo, hi) == 0) {
            vw_result_ok (result, 201, NULL);
            return;
        }
    }
    vw_result_fail (result, 500, "database_error", "database error: %s",
                    sqlite3_errmsg (vw_db_handle (db)));
}

vw_agg_t
vw_agg_from_name (const char *name)
{
    static const char *const names[] = {"", "avg", "min", "max", "sum", "count", "last"};
    for (int i = 1; name && i < (int) (sizeof names / sizeof names[0]); i++)
        if (strcmp (name, names[i]) == 0)
            return (vw_agg_t) i;
    return VW_AGG_NONE;
}

//  --------------------------------------------------------------------------
//  Queries

typedef struct {
    int64_t ts;
    uint64_t order;  //  when stored: the later one of a (metric, ts) wins
    double value;
} s_point_t;

typedef struct {
    char name[65];
    s_point_t *points;
    size_t count, cap;
} s_series_t;

typedef struct {
    const vw_telemetry_query_t *query;
    json_t *index;  //  metric -> position in series
    s_series_t *series;
    size_t count, cap;
    uint64_t order;
    size_t points;  //  in every series, before duplicates are dropped
    bool too_many, failed;
} s_collect_t;

static s_series_t *
s_series_of (s_collect_t *c, const char *name, size_t len)
{
    char key[65];
    memcpy (key, name, len);
    key[len] = 0;
    json_t *at = json_object_get (c->index, key);
    if (at)
        return &c->series[json_integer_value (at)];
    if (c->count == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 8;
        s_series_t *series = (s_series_t *) realloc (c->series, cap * sizeof *series);
        if (!series)
            return NULL;
        c->series = series;
        c->cap = cap;
    }
    s_series_t *s = &c->series[c->count];
    memset (s, 0, sizeof *s);
    memcpy (s->name, key, len + 1);
    json_object_set_new (c->index, key, json_integer ((json_int_t) c->count++));
    return s;
}

static int
s_collect (void *arg, const vw_points_value_t *v)
{
    s_collect_t *c = (s_collect_t *) arg;
    const vw_telemetry_query_t *q = c->query;
    c->order++;
    if (v->ts < q->from || v->ts >= q->to)
        return 0;
    if (q->metric &&
        (strlen (q->metric) != v->name_len || memcmp (q->metric, v->name, v->name_len)))
        return 0;
    //  Raw answers are bounded by the points; bucketed ones by the buckets
    //  (checked before the walk), with a generous bound on what is read.
    if (++c->points > (size_t) q->max_points * (q->step_ms ? 100 : 1)) {
        c->too_many = true;
        return 1;
    }
    s_series_t *s = s_series_of (c, v->name, v->name_len);
    if (s && s->count == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        s_point_t *points = (s_point_t *) realloc (s->points, cap * sizeof *points);
        if (points) {
            s->points = points;
            s->cap = cap;
        }
    }
    if (!s || s->count == s->cap) {
        c->failed = true;
        return 1;
    }
    s->points[s->count++] = (s_point_t){v->ts, c->order, v->value};
    return 0;
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
s_by_name (const void *a, const void *b)
{
    return strcmp (((const s_series_t *) a)->name, ((const s_series_t *) b)->name);
}

//  A number as JSON: an integer when it is one (812, not 812.0).
static json_t *
s_number (double v)
{
    if (v == (double) (int64_t) v && v > -9007199254740992.0 && v < 9007199254740992.0)
        return json_integer ((json_int_t) v);
    return json_real (v);
}

static json_t *
s_pair (int64_t ts, double v)
{
    json_t *pair = json_array ();
    json_array_append_new (pair, json_integer (ts));
    json_array_append_new (pair, s_number (v));
    return pair;
}

//  The series' points as [[ts, value], …]: sorted, one per ts (the last
//  stored), raw or in buckets.
static json_t *
s_series_points (s_series_t *s, const vw_telemetry_query_t *q)
{
    if (s->count)
        qsort (s->points, s->count, sizeof *s->points, s_by_ts);
    size_t kept = 0;
    for (size_t i = 0; i < s->count; i++) {
        if (kept && s->points[kept - 1].ts == s->points[i].ts)
            s->points[kept - 1] = s->points[i];
        else
            s->points[kept++] = s->points[i];
    }
    json_t *out = json_array ();
    for (size_t i = 0; i < kept;) {
        if (!q->step_ms) {
            json_array_append_new (out, s_pair (s->points[i].ts, s->points[i].value));
            i++;
            continue;
        }
        int64_t bucket = s->points[i].ts - s->points[i].ts % q->step_ms;
        double min = s->points[i].value, max = min, sum = 0, last = min;
        int64_t count = 0;
        for (; i < kept && s->points[i].ts < bucket + q->step_ms; i++, count++) {
            double v = s->points[i].value;
            min = v < min ? v : min;
            max = v > max ? v : max;
            sum += v;
            last = v;
        }
        double value = q->agg == VW_AGG_MIN     ? min
                       : q->agg == VW_AGG_MAX   ? max
                       : q->agg == VW_AGG_SUM   ? sum
                       : q->agg == VW_AGG_COUNT ? (double) count
                       : q->agg == VW_AGG_LAST  ? last
                                                : sum / (double) count;
        json_array_append_new (out, s_pair (bucket, value));
    }
    return out;
}

void
vw_telemetry_rows_query (vw_db_t *db, const vw_telemetry_query_t *query, vw_result_t *result)
{
    int64_t tid = 0;
    int found = s_tid (db, query->agent_id, false, &tid);
    if (found == 0) {
        //  An agent that never sent telemetry has none; an unknown one is 404.
        int exists = s_agent_exists (db, query->agent_id);
        found = exists == 1 ? 2 : exists;
    }
    if (found == 0) {
        vw_result_fail (result, 404, "not_found", "no agent '%.64s'", query->agent_id);
        return;
    }
    if (found < 0) {
        vw_result_fail (result, 500, "database_error", "database error: %s",
                        sqlite3_errmsg (vw_db_handle (db)));
        return;
    }
    s_collect_t c = {query, json_object (), NULL, 0, 0, 0, 0, false, false};
    int rc = SQLITE_DONE;
    if (found == 1) {
        sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_FRAMES);
        rc = SQLITE_ERROR;
        if (stmt) {
            sqlite3_bind_int64 (stmt, 1, tid);
            sqlite3_bind_int64 (stmt, 2, query->from);
            sqlite3_bind_int64 (stmt, 3, query->to);
            while ((rc = sqlite3_step (stmt)) == SQLITE_ROW && !c.too_many && !c.failed)
                //  A frame that does not walk (it cannot be: the store
                //  checked it) adds what it holds before the fault.
                vw_points_walk ((const uint8_t *) sqlite3_column_blob (stmt, 0),
                                (size_t) sqlite3_column_bytes (stmt, 0), s_collect, &c, NULL);
            sqlite3_reset (stmt);
        }
    }
    if (c.too_many)
        vw_result_fail (result, 400, "too_many_points",
                        "the range holds more than %lld points; narrow it (from, to, metric) or "
                        "ask for buckets (step_ms)",
                        (long long) query->max_points);
    else if (c.failed || (rc != SQLITE_DONE && rc != SQLITE_ROW))
        vw_result_fail (result, 500, "database_error", "database error: %s",
                        c.failed ? "out of memory" : sqlite3_errmsg (vw_db_handle (db)));
    else {
        if (c.count)
            qsort (c.series, c.count, sizeof *c.series, s_by_name);
        json_t *series = json_array ();
        size_t total = 0;
        for (size_t i = 0; i < c.count; i++) {
            json_t *points = s_series_points (&c.series[i], query);
            total += json_array_size (points);
            json_array_append_new (
                series, json_pack ("{s:s, s:o}", "metric", c.series[i].name, "points", points));
        }
        if (total > (size_t) query->max_points) {
            json_decref (series);
            vw_result_fail (result, 400, "too_many_points",
                            "the answer holds more than %lld points; narrow the range or the "
                            "metrics, or use a larger step_ms",
                            (long long) query->max_points);
        }
        else
            vw_result_ok (result, 200,
                          json_pack ("{s:s, s:o}", "agent_id", query->agent_id, "series", series));
    }
    for (size_t i = 0; i < c.count; i++)
        free (c.series[i].points);
    free (c.series);
    json_decref (c.index);
}
