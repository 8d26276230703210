/*  vw_telemetry_rows - see vw_telemetry_rows.h. */
#include "vw_telemetry_rows.h"
#include "vw_points.h"
#include "vw_rollup.h"

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
//  A roll-up row's key: the agent's tid in the high 32 bits, the bucket's
//  number (minutes or hours since the epoch) in the low ones, so that an
//  agent's buckets are one range of the table's own b-tree.
static const char *S_SQL_ROLLUP_GET_1M = "SELECT aggs FROM telemetry_1m WHERE key = ?1";
static const char *S_SQL_ROLLUP_GET_1H = "SELECT aggs FROM telemetry_1h WHERE key = ?1";
static const char *S_SQL_ROLLUP_PUT_1M =
    "INSERT OR REPLACE INTO telemetry_1m (key, aggs) VALUES (?1, ?2)";
static const char *S_SQL_ROLLUP_PUT_1H =
    "INSERT OR REPLACE INTO telemetry_1h (key, aggs) VALUES (?1, ?2)";
//  Retention. Frames go in the order they were stored (their id), up to
//  the first one still inside the retention: a range of the table, not a
//  search. Roll-ups go per series, a range of each series' key.
static const char *S_SQL_FRAMES_OLDEST =
    "SELECT id, ts_max FROM telemetry_frames ORDER BY id LIMIT ?1";
static const char *S_SQL_FRAMES_DROP = "DELETE FROM telemetry_frames WHERE id <= ?1";
static const char *S_SQL_AGENTS_NEXT =
    "SELECT tid FROM telemetry_agents WHERE tid > ?1 ORDER BY tid LIMIT ?2";
static const char *S_SQL_OLDEST_1M =
    "SELECT key FROM telemetry_1m WHERE key >= ?1 ORDER BY key LIMIT 1";
static const char *S_SQL_OLDEST_1H =
    "SELECT key FROM telemetry_1h WHERE key >= ?1 ORDER BY key LIMIT 1";
static const char *S_SQL_DROP_1M = "DELETE FROM telemetry_1m WHERE key >= ?1 AND key < ?2";
static const char *S_SQL_DROP_1H = "DELETE FROM telemetry_1h WHERE key >= ?1 AND key < ?2";

//  One roll-up bucket of one series, summed over a pass.
typedef struct {
    int64_t tid, bucket;
    vw_rollup_t r;  //  r.sid 0: a free slot
} s_agg_t;

//  Open addressing on (sid, bucket).
typedef struct {
    s_agg_t *slots;
    size_t cap, used;
} s_aggs_t;

//  One tier of roll-ups: its span, statements, and this pass's sums.
typedef struct {
    int64_t span;
    const char *get, *put, *oldest, *drop;
    s_aggs_t aggs;
} s_tier_t;

struct vw_telemetry_rows_t {
    vw_db_t *db;
    json_t *series;                //  "agent_id\x1fmetric" -> series_id
    s_tier_t tiers[2];             //  minutes, hours
    vw_rollup_t *stored, *merged;  //  a row's entries as read, and with the pass's added
    size_t cap_stored, cap_merged;
    uint8_t *out;
    size_t cap_out;
    int64_t expire_tid;  //  where the roll-ups' expiry goes on
    bool broken;         //  a roll-up of this pass was lost (no memory): it must fail
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
            if (aggs->slots[i].r.sid) {
                size_t at = s_hash (aggs->slots[i].r.sid, aggs->slots[i].bucket) & (cap - 1);
                while (slots[at].r.sid)
                    at = (at + 1) & (cap - 1);
                slots[at] = aggs->slots[i];
            }
        free (aggs->slots);
        aggs->slots = slots;
        aggs->cap = cap;
    }
    size_t at = s_hash (sid, bucket) & (aggs->cap - 1);
    while (aggs->slots[at].r.sid &&
           (aggs->slots[at].r.sid != sid || aggs->slots[at].bucket != bucket))
        at = (at + 1) & (aggs->cap - 1);
    s_agg_t *agg = &aggs->slots[at];
    if (!agg->r.sid) {
        agg->r.sid = sid;
        agg->bucket = bucket;
        agg->r.last_ts = INT64_MIN;
        aggs->used++;
    }
    return agg;
}

//  A value into a bucket; of two values at the same ts the later one is last.
static void
s_agg_add (vw_rollup_t *r, int64_t ts, double v)
{
    vw_rollup_t one = {r->sid, 1, ts, v, v, v, v};
    if (r->count == 0)
        *r = one;
    else
        vw_rollup_merge (r, &one);
}

vw_telemetry_rows_t *
vw_telemetry_rows_new (vw_db_t *db)
{
    vw_telemetry_rows_t *self = (vw_telemetry_rows_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->db = db;
    self->tiers[0] = (s_tier_t){S_MINUTE,        S_SQL_ROLLUP_GET_1M, S_SQL_ROLLUP_PUT_1M,
                                S_SQL_OLDEST_1M, S_SQL_DROP_1M,       {NULL, 0, 0}};
    self->tiers[1] = (s_tier_t){S_HOUR,          S_SQL_ROLLUP_GET_1H, S_SQL_ROLLUP_PUT_1H,
                                S_SQL_OLDEST_1H, S_SQL_DROP_1H,       {NULL, 0, 0}};
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
    for (int i = 0; i < 2; i++)
        free (self->tiers[i].aggs.slots);
    free (self->stored);
    free (self->merged);
    free (self->out);
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
    int64_t tid;
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
    for (int i = 0; i < 2; i++) {
        s_tier_t *tier = &w->self->tiers[i];
        s_agg_t *agg = s_aggs_get (&tier->aggs, sid, v->ts - v->ts % tier->span);
        if (!agg) {
            w->self->broken = true;
            return -1;
        }
        agg->tid = w->tid;
        s_agg_add (&agg->r, v->ts, v->value);
    }
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
    s_frame_walk_t walk = {self, agent_id, tid, NULL, 0};
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

static int64_t
s_key (int64_t tid, int64_t bucket, int64_t span)
{
    return (int64_t) ((uint64_t) tid << 32 | (uint64_t) (bucket / span));
}

static int
s_by_row (const void *a, const void *b)
{
    const s_agg_t *x = (const s_agg_t *) a, *y = (const s_agg_t *) b;
    if (x->tid != y->tid)
        return x->tid < y->tid ? -1 : 1;
    if (x->bucket != y->bucket)
        return x->bucket < y->bucket ? -1 : 1;
    return x->r.sid < y->r.sid ? -1 : x->r.sid > y->r.sid;
}

static bool
s_room (void **items, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return true;
    void *grown = realloc (*items, need * size);
    if (!grown)
        return false;
    *items = grown;
    *cap = need;
    return true;
}

//  One row (an agent's bucket): what it holds merged with the pass's sums
//  of it, pass[0..n) by series id.
static int
s_write_row (vw_telemetry_rows_t *self, s_tier_t *tier, const s_agg_t *pass, size_t n)
{
    int64_t key = s_key (pass->tid, pass->bucket, tier->span);
    sqlite3_stmt *stmt = vw_db_stmt (self->db, tier->get);
    if (!stmt)
        return -1;
    sqlite3_bind_int64 (stmt, 1, key);
    int rc = sqlite3_step (stmt);
    size_t nstored = 0;
    if (rc == SQLITE_ROW &&
        vw_rollup_decode ((const uint8_t *) sqlite3_column_blob (stmt, 0),
                          (size_t) sqlite3_column_bytes (stmt, 0), pass->bucket, tier->span,
                          &self->stored, &self->cap_stored, &nstored))
        rc = SQLITE_CORRUPT;
    sqlite3_reset (stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return -1;
    //  Both lists go by series id: merge them.
    if (!s_room ((void **) &self->merged, &self->cap_merged, nstored + n, sizeof *self->merged))
        return -1;
    size_t i = 0, j = 0, m = 0;
    while (i < nstored || j < n) {
        if (j == n || (i < nstored && self->stored[i].sid < pass[j].r.sid))
            self->merged[m++] = self->stored[i++];
        else if (i == nstored || pass[j].r.sid < self->stored[i].sid)
            self->merged[m++] = pass[j++].r;
        else {
            self->merged[m] = self->stored[i++];
            vw_rollup_merge (&self->merged[m++], &pass[j++].r);
        }
    }
    size_t bound = vw_rollup_bound (m);
    if (!s_room ((void **) &self->out, &self->cap_out, bound, 1))
        return -1;
    size_t size = vw_rollup_encode (self->merged, m, pass->bucket, self->out);
    if (!(stmt = vw_db_stmt (self->db, tier->put)))
        return -1;
    sqlite3_bind_int64 (stmt, 1, key);
    sqlite3_bind_blob (stmt, 2, self->out, (int) size, SQLITE_STATIC);
    rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    sqlite3_clear_bindings (stmt);
    return rc == SQLITE_DONE ? 0 : -1;
}

//  The pass's sums of one tier, a row per agent and bucket.
static int
s_write_tier (vw_telemetry_rows_t *self, s_tier_t *tier)
{
    s_aggs_t *aggs = &tier->aggs;
    if (!aggs->used)
        return 0;
    //  The used slots, packed to the front and sorted by row, then series.
    size_t n = 0;
    for (size_t i = 0; i < aggs->cap; i++)
        if (aggs->slots[i].r.sid)
            aggs->slots[n++] = aggs->slots[i];
    qsort (aggs->slots, n, sizeof *aggs->slots, s_by_row);
    for (size_t at = 0, end; at < n; at = end) {
        for (end = at + 1; end < n && aggs->slots[end].tid == aggs->slots[at].tid &&
                           aggs->slots[end].bucket == aggs->slots[at].bucket;
             end++)
            ;
        if (s_write_row (self, tier, &aggs->slots[at], end - at))
            return -1;
    }
    return 0;
}

static void
s_aggs_clear_all (vw_telemetry_rows_t *self)
{
    for (int i = 0; i < 2; i++) {
        s_aggs_t *aggs = &self->tiers[i].aggs;
        if (aggs->cap)
            memset (aggs->slots, 0, aggs->cap * sizeof *aggs->slots);
        aggs->used = 0;
    }
}

int
vw_telemetry_rows_flush (vw_telemetry_rows_t *self)
{
    int rc = 0;
    if (self->broken || s_write_tier (self, &self->tiers[0]) ||
        s_write_tier (self, &self->tiers[1]))
        rc = -1;
    s_aggs_clear_all (self);
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
    s_aggs_clear_all (self);
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
    //  Roll-ups: the next few agents, round robin; of each, at most a
    //  budget of buckets (keys are consecutive bucket numbers).
    stmt = vw_db_stmt (db, S_SQL_AGENTS_NEXT);
    if (!stmt)
        return -1;
    int64_t per_step = budget / 10 > 0 ? budget / 10 : 1;
    sqlite3_bind_int64 (stmt, 1, self->expire_tid);
    sqlite3_bind_int64 (stmt, 2, per_step);
    int64_t tids[1024];
    int64_t n = 0;
    while (n < (int64_t) (sizeof tids / sizeof tids[0]) && n < per_step &&
           (rc = sqlite3_step (stmt)) == SQLITE_ROW)
        tids[n++] = sqlite3_column_int64 (stmt, 0);
    sqlite3_reset (stmt);
    const int64_t before[2] = {m1_before, h1_before};
    for (int64_t i = 0; i < n; i++)
        for (int t = 0; t < 2; t++) {
            const s_tier_t *tier = &self->tiers[t];
            int64_t lo = s_key (tids[i], 0, tier->span), oldest = 0;
            //  Buckets that start before the bound go, as in the raw tier.
            int64_t hi =
                before[t] > 0 ? s_key (tids[i], before[t] + tier->span - 1, tier->span) : lo;
            rc = s_run (db, tier->oldest, 1, lo, 0, 0, &oldest);
            if (rc == SQLITE_DONE || (rc == SQLITE_ROW && oldest >= hi))
                continue;
            if (rc != SQLITE_ROW)
                return -1;
            if (hi - oldest > budget)
                hi = oldest + budget;
            if (s_run (db, tier->drop, 2, oldest, hi, 0, NULL) != SQLITE_DONE)
                return -1;
            deleted += sqlite3_changes (vw_db_handle (db));
        }
    //  The next step goes on after these agents; after the last, from the
    //  start. Roll-ups expire by the minute: going round at this pace is soon
    //  enough, and `more` speaks for the frames only.
    self->expire_tid = n == per_step ? tids[n - 1] : 0;
    return deleted;
}
