/*  vw_telemetry_rows - writing the telemetry tables (SPEC §3, §9): frames as
    the agents sent them (packed by vw_points, one row per frame), the seqs
    stored per agent, the 1-minute and 1-hour roll-ups, and their expiry.
    Called by the store actor only.

    Roll-ups follow the raw points exactly. A frame's values are added to
    this pass's roll-up sums in memory (one per series and bucket); once the
    pass has committed they join the sums held for committed frames. Every
    2 s (or when many buckets wait) vw_telemetry_rows_flush upserts all of
    them in a pass's transaction, with a watermark: the id of the last frame
    they include. A crash loses only sums of frames after the watermark,
    and those are summed again from the frames' rows at the next start.
    Queries add the sums not written yet (vw_telemetry_rows_unwritten), so
    an answer always covers every stored point.
*/
#ifndef VW_TELEMETRY_ROWS_H
#define VW_TELEMETRY_ROWS_H

#include <stdbool.h>
#include <stdint.h>

#include "vw_db.h"
#include "vw_result.h"

typedef struct vw_telemetry_rows_t vw_telemetry_rows_t;

vw_telemetry_rows_t *vw_telemetry_rows_new (vw_db_t *db);
void vw_telemetry_rows_destroy (vw_telemetry_rows_t **self_p);

//  Stores one frame (in the open transaction) unless the agent's `seq` is
//  stored already: 201 when stored, 200 when it was a duplicate (nothing
//  written), 404 for an unknown agent, 400 when the points are not a packed
//  frame, 500.
void vw_telemetry_rows_store (vw_telemetry_rows_t *self, const char *agent_id, int64_t seq,
                              const uint8_t *points, size_t size, vw_result_t *result);

//  Before the pass's commit: writes the roll-ups waiting in memory when
//  due. 0, or -1 after rolling the whole transaction back (the commit then
//  fails).
int vw_telemetry_rows_flush (vw_telemetry_rows_t *self, int64_t now_ms);
//  After it: ok, the pass's sums are held (or gone, if they were written);
//  not ok, they are dropped with what was learnt about series ids.
void vw_telemetry_rows_committed (vw_telemetry_rows_t *self, bool ok, int64_t now_ms);

//  The roll-up sums in memory (held and this pass's) of the 1-hour (or
//  1-minute) buckets in [lo, hi), for queries.
typedef void (vw_telemetry_rollup_fn) (void *arg, int64_t sid, int64_t bucket, int64_t count,
                                       double min, double max, double sum, double last,
                                       int64_t last_ts);
void vw_telemetry_rows_unwritten (vw_telemetry_rows_t *self, bool hours, int64_t lo, int64_t hi,
                                  vw_telemetry_rollup_fn *fn, void *arg);
//  Frames summed again at start (after the watermark); -1 if that failed.
int vw_telemetry_rows_replayed (vw_telemetry_rows_t *self);

//  Retention, one small step in the open transaction: at most `budget`
//  frames wholly before raw_before, in the order they were stored, up to
//  the first one still inside (*more when the budget ran out first); and
//  the roll-up buckets before m1_before and h1_before of the next
//  budget / 10 series, round robin. Returns the rows deleted, or -1.
int64_t vw_telemetry_rows_expire (vw_telemetry_rows_t *self, int64_t raw_before, int64_t m1_before,
                                  int64_t h1_before, int64_t budget, bool *more);

//  The agent's small integer in the telemetry tables (made when `create`
//  and the agent exists): 1, 0 when it has none, -1 on error.
int vw_telemetry_rows_tid (vw_db_t *db, const char *agent_id, bool create, int64_t *tid);

#endif
