/*  vw_telemetry_rows - see vw_telemetry_rows.h. */
#include "vw_telemetry_rows.h"
#include "vw_points.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define S_MINUTE    60000
#define S_HOUR      3600000
#define S_CACHE_MAX 200000  //  series ids kept in memory; past that the cache starts again

static const char *S_SQL_TID = "SELECT tid FROM telemetry_agents WHERE agent_id = ?1";
static const char *S_SQL_TID_NEW =
    "INSERT INTO telemetry_agents (agent_id) SELECT agent_id FROM agents WHERE agent_id = ?1";
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
static const char *S_SQL_SERIES_NEW =
    "INSERT INTO telemetry_series (agent_id, metric) VALUES (?1, ?2) ON CONFLICT DO NOTHING";
static const char *S_SQL_SERIES =
    "SELECT series_id FROM telemetry_series WHERE agent_id = ?1 AND metric = ?2";
static const char *S_SQL_UPSERT_1M =
    "INSERT INTO telemetry_1m (series_id, bucket, min, max, sum, count, last, last_ts) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (series_id, bucket) DO UPDATE SET "
    "min = min (telemetry_1m.min, excluded.min), max = max (telemetry_1m.max, excluded.max), "
    "sum = telemetry_1m.sum + excluded.sum, count = telemetry_1m.count + excluded.count, "
    "last = CASE WHEN excluded.last_ts >= telemetry_1m.last_ts THEN excluded.last "
    "ELSE telemetry_1m.last END, last_ts = max (telemetry_1m.last_ts, excluded.last_ts)";
static const char *S_SQL_UPSERT_1H =
    "INSERT INTO telemetry_1h (series_id, bucket, min, max, sum, count, last, last_ts) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (series_id, bucket) DO UPDATE SET "
    "min = min (telemetry_1h.min, excluded.min), max = max (telemetry_1h.max, excluded.max), "
    "sum = telemetry_1h.sum + excluded.sum, count = telemetry_1h.count + excluded.count, "
    "last = CASE WHEN excluded.last_ts >= telemetry_1h.last_ts THEN excluded.last "
    "ELSE telemetry_1h.last END, last_ts = max (telemetry_1h.last_ts, excluded.last_ts)";
//  Retention. Frames go in the order they were stored (their id), up to
//  the first one still inside the retention: a range of the table, not a
//  search. Roll-ups go per series, a range of each series' key.
static const char *S_SQL_FRAMES_OLDEST =
    "SELECT id, ts_max FROM telemetry_frames ORDER BY id LIMIT ?1";
static const char *S_SQL_FRAMES_DROP = "DELETE FROM telemetry_frames WHERE id <= ?1";
static const char *S_SQL_SERIES_NEXT =
    "SELECT series_id FROM telemetry_series WHERE series_id > ?1 ORDER BY series_id LIMIT ?2";
static const char *S_SQL_DROP_1M = "DELETE FROM telemetry_1m WHERE series_id = ?1 AND bucket < ?2";
static const char *S_SQL_DROP_1H = "DELETE FROM telemetry_1h WHERE series_id = ?1 AND bucket < ?2";

//  One roll-up bucket of one series, summed over a pass.
typedef struct {
    int64_t sid;  //  0: free slot
    int64_t bucket, count, last_ts;
    double min, max, sum, last;
} s_agg_t;

//  Open addressing on (sid, bucket).
typedef struct {
    s_agg_t *slots;
    size_t cap, used;
} s_aggs_t;

struct vw_telemetry_rows_t {
    vw_db_t *db;
    json_t *series;  //  "agent_id\x1fmetric" -> series_id
    s_aggs_t minutes, hours;
    int64_t expire_series;  //  where the roll-ups' expiry goes on
    bool broken;            //  a roll-up of this pass was lost (no memory): it must fail
};

static size_t
s_hash (int64_t sid, int64_t bucket)
{
    uint64_t h = (uint64_t) sid * 0x9E3779B97F4A7C15ull ^ (uint64_t) bucket * 0xC2B2AE3D27D4EB4Full;
    return (size_t) (h ^ (h >> 29));
}

static s_agg_t *
s_aggs_get (s_aggs_t *aggs, int64_t sid, int64_t bucket)
{
    if ((aggs->used + 1) * 2 > aggs->cap) {
        size_t cap = aggs->cap ? aggs->cap * 2 : 1024;
        s_agg_t *slots = (s_agg_t *) calloc (cap, sizeof *slots);
        if (!slots)
            return NULL;
        for (size_t i = 0; i < aggs->cap; i++)
            if (aggs->slots[i].sid) {
                size_t at = s_hash (aggs->slots[i].sid, aggs->slots[i].bucket) & (cap - 1);
                while (slots[at].sid)
                    at = (at + 1) & (cap - 1);
                slots[at] = aggs->slots[i];
            }
        free (aggs->slots);
        aggs->slots = slots;
        aggs->cap = cap;
    }
    size_t at = s_hash (sid, bucket) & (aggs->cap - 1);
    while (aggs->slots[at].sid && (aggs->slots[at].sid != sid || aggs->slots[at].bucket != bucket))
        at = (at + 1) & (aggs->cap - 1);
    s_agg_t *agg = &aggs->slots[at];
    if (!agg->sid) {
        agg->sid = sid;
        agg->bucket = bucket;
        agg->last_ts = INT64_MIN;
        aggs->used++;
    }
    return agg;
}

static void
s_aggs_clear (s_aggs_t *aggs)
{
    if (aggs->used)
        memset (aggs->slots, 0, aggs->cap * sizeof *aggs->slots);
    aggs->used = 0;
}

//  A value into a bucket; of two values at the same ts the later one is last.
static void
s_agg_add (s_agg_t *agg, int64_t ts, double v)
{
    if (agg->count == 0 || v < agg->min)
        agg->min = v;
    if (agg->count == 0 || v > agg->max)
        agg->max = v;
    agg->sum += v;
    agg->count++;
    if (ts >= agg->last_ts) {
        agg->last = v;
        agg->last_ts = ts;
    }
}

vw_telemetry_rows_t *
vw_telemetry_rows_new (vw_db_t *db)
{
    vw_telemetry_rows_t *self = (vw_telemetry_rows_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->db = db;
    self->series = json_object ();
    if (!self->series) {
        free (self);
        return NULL;
    }
    return self;
}

void
vw_telemetry_rows_destroy (vw_telemetry_rows_t **self_p)
{
    vw_telemetry_rows_t *self = *self_p;
    if (!self)
        return;
    json_decref (self->series);
    free (self->minutes.slots);
    free (self->hours.slots);
    free (self);
    *self_p = NULL;
}

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

int
vw_telemetry_rows_tid (vw_db_t *db, const char *agent_id, bool create, int64_t *tid)
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

//  The series id of (agent, metric), created when new: > 0, or -1.
static int64_t
s_series_id (vw_telemetry_rows_t *self, const char *agent_id, const char *metric, size_t len)
{
    char key[256];
    snprintf (key, sizeof key, "%s\x1f%.*s", agent_id, (int) len, metric);
    json_t *known = json_object_get (self->series, key);
    if (known)
        return json_integer_value (known);
    char name[65];
    snprintf (name, sizeof name, "%.*s", (int) len, metric);
    int64_t sid = -1;
    for (int step = 0; step < 2 && sid < 0; step++) {
        sqlite3_stmt *stmt = vw_db_stmt (self->db, step ? S_SQL_SERIES_NEW : S_SQL_SERIES);
        if (!stmt)
            return -1;
        vw_db_bind_text (stmt, 1, agent_id);
        vw_db_bind_text (stmt, 2, name);
        int rc = sqlite3_step (stmt);
        if (rc == SQLITE_ROW)
            sid = sqlite3_column_int64 (stmt, 0);
        sqlite3_reset (stmt);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            return -1;
        if (step == 1) {
            if (sqlite3_changes (vw_db_handle (self->db)) != 1)
                return -1;
            sid = sqlite3_last_insert_rowid (vw_db_handle (self->db));
        }
    }
    if (json_object_size (self->series) >= S_CACHE_MAX)
        json_object_clear (self->series);
    json_object_set_new (self->series, key, json_integer (sid));
    return sid;
}

//  A frame's walk: first the series of its names, then its values into
//  the pass's roll-ups.
typedef struct {
    vw_telemetry_rows_t *self;
    const char *agent_id;
    int64_t *sids;  //  by the frame's name index
    size_t nsids;
} s_frame_walk_t;

static int
s_resolve (void *arg, const vw_points_value_t *v)
{
    s_frame_walk_t *w = (s_frame_walk_t *) arg;
    if (v->name_index >= w->nsids) {
        size_t n = (size_t) v->name_index + 16;
        int64_t *sids = (int64_t *) realloc (w->sids, n * sizeof *sids);
        if (!sids)
            return -1;
        memset (sids + w->nsids, 0, (n - w->nsids) * sizeof *sids);
        w->sids = sids;
        w->nsids = n;
    }
    if (!w->sids[v->name_index])
        w->sids[v->name_index] = s_series_id (w->self, w->agent_id, v->name, v->name_len);
    return w->sids[v->name_index] > 0 ? 0 : -1;
}

static int
s_roll (void *arg, const vw_points_value_t *v)
{
    s_frame_walk_t *w = (s_frame_walk_t *) arg;
    int64_t sid = w->sids[v->name_index];
    s_agg_t *m = s_aggs_get (&w->self->minutes, sid, v->ts - v->ts % S_MINUTE);
    s_agg_t *h = s_aggs_get (&w->self->hours, sid, v->ts - v->ts % S_HOUR);
    if (!m || !h) {
        w->self->broken = true;
        return -1;
    }
    s_agg_add (m, v->ts, v->value);
    s_agg_add (h, v->ts, v->value);
    return 0;
}

void
vw_telemetry_rows_store (vw_telemetry_rows_t *self, const char *agent_id, int64_t seq,
                         const uint8_t *points, size_t size, vw_result_t *result)
{
    vw_db_t *db = self->db;
    vw_points_info_t info;
    if (seq < 0 || vw_points_walk (points, size, NULL, NULL, &info)) {
        vw_result_fail (result, 400, "bad_request", "not a telemetry frame");
        return;
    }
    int64_t tid = 0, lo, hi;
    int found = vw_telemetry_rows_tid (db, agent_id, true, &tid);
    if (found == 0) {
        vw_result_fail (result, 404, "not_found", "no agent '%.64s'", agent_id);
        return;
    }
    s_frame_walk_t walk = {self, agent_id, NULL, 0};
    if (found == 1 && s_seq_below (db, tid, seq, &lo, &hi) == 0) {
        if (lo >= 0 && hi >= seq) {
            vw_result_ok (result, 200, NULL);
            return;
        }
        //  The frame goes in before its seq is recorded: should the second
        //  step fail alone, a re-sent frame is stored twice rather than lost.
        if (vw_points_walk (points, size, s_resolve, &walk, NULL) == 0 &&
            s_frame_add (db, tid, seq, &info, points, size) == 0 &&
            s_seq_add (db, tid, seq, lo, hi) == 0) {
            //  Only memory from here: a failure fails the pass (flush).
            vw_points_walk (points, size, s_roll, &walk, NULL);
            free (walk.sids);
            vw_result_ok (result, 201, NULL);
            return;
        }
    }
    free (walk.sids);
    vw_result_fail (result, 500, "database_error", "database error: %s",
                    sqlite3_errmsg (vw_db_handle (db)));
}

static int
s_upsert_all (vw_db_t *db, s_aggs_t *aggs, const char *sql)
{
    for (size_t i = 0; i < aggs->cap; i++) {
        const s_agg_t *a = &aggs->slots[i];
        if (!a->sid)
            continue;
        sqlite3_stmt *stmt = vw_db_stmt (db, sql);
        if (!stmt)
            return -1;
        sqlite3_bind_int64 (stmt, 1, a->sid);
        sqlite3_bind_int64 (stmt, 2, a->bucket);
        sqlite3_bind_double (stmt, 3, a->min);
        sqlite3_bind_double (stmt, 4, a->max);
        sqlite3_bind_double (stmt, 5, a->sum);
        sqlite3_bind_int64 (stmt, 6, a->count);
        sqlite3_bind_double (stmt, 7, a->last);
        sqlite3_bind_int64 (stmt, 8, a->last_ts);
        int rc = sqlite3_step (stmt);
        sqlite3_reset (stmt);
        if (rc != SQLITE_DONE)
            return -1;
    }
    return 0;
}

int
vw_telemetry_rows_flush (vw_telemetry_rows_t *self)
{
    int rc = 0;
    if (self->broken || s_upsert_all (self->db, &self->minutes, S_SQL_UPSERT_1M) ||
        s_upsert_all (self->db, &self->hours, S_SQL_UPSERT_1H))
        rc = -1;
    s_aggs_clear (&self->minutes);
    s_aggs_clear (&self->hours);
    self->broken = false;
    if (rc) {
        //  Frames without their roll-ups must not land: the commit that
        //  follows finds the transaction gone and fails the pass.
        sqlite3_exec (vw_db_handle (self->db), "ROLLBACK", NULL, NULL, NULL);
        json_object_clear (self->series);
    }
    return rc;
}

void
vw_telemetry_rows_forget (vw_telemetry_rows_t *self)
{
    self->broken = false;
    s_aggs_clear (&self->minutes);
    s_aggs_clear (&self->hours);
    json_object_clear (self->series);
}

int64_t
vw_telemetry_rows_expire (vw_telemetry_rows_t *self, int64_t raw_before, int64_t m1_before,
                          int64_t h1_before, int64_t budget, bool *more)
{
    vw_db_t *db = self->db;
    *more = false;
    int64_t deleted = 0;
    //  Frames: the oldest `budget` by id, up to the first still kept.
    sqlite3_stmt *stmt = vw_db_stmt (db, S_SQL_FRAMES_OLDEST);
    if (!stmt)
        return -1;
    sqlite3_bind_int64 (stmt, 1, budget);
    int64_t last = 0, seen = 0;
    bool stopped = false;
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        seen++;
        if (sqlite3_column_int64 (stmt, 1) >= raw_before) {
            stopped = true;
            break;
        }
        last = sqlite3_column_int64 (stmt, 0);
    }
    sqlite3_reset (stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return -1;
    if (last) {
        if (s_run (db, S_SQL_FRAMES_DROP, 1, last, 0, 0, NULL) != SQLITE_DONE)
            return -1;
        deleted += sqlite3_changes (vw_db_handle (db));
    }
    if (!stopped && seen == budget)
        *more = true;
    //  Roll-ups: the next few series, round robin.
    stmt = vw_db_stmt (db, S_SQL_SERIES_NEXT);
    if (!stmt)
        return -1;
    int64_t per_step = budget / 10 > 0 ? budget / 10 : 1;
    sqlite3_bind_int64 (stmt, 1, self->expire_series);
    sqlite3_bind_int64 (stmt, 2, per_step);
    int64_t sids[1024];
    int64_t n = 0;
    while (n < (int64_t) (sizeof sids / sizeof sids[0]) && n < per_step &&
           (rc = sqlite3_step (stmt)) == SQLITE_ROW)
        sids[n++] = sqlite3_column_int64 (stmt, 0);
    sqlite3_reset (stmt);
    for (int64_t i = 0; i < n; i++) {
        if (s_run (db, S_SQL_DROP_1M, 2, sids[i], m1_before, 0, NULL) != SQLITE_DONE)
            return -1;
        deleted += sqlite3_changes (vw_db_handle (db));
        if (s_run (db, S_SQL_DROP_1H, 2, sids[i], h1_before, 0, NULL) != SQLITE_DONE)
            return -1;
        deleted += sqlite3_changes (vw_db_handle (db));
    }
    //  The next step goes on after these series; after the last, from the
    //  start. Roll-ups expire by the minute: going round at this pace is soon
    //  enough, and `more` speaks for the frames only.
    self->expire_series = n == per_step ? sids[n - 1] : 0;
    return deleted;
}
