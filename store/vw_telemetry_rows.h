/*  vw_telemetry_rows - writing the telemetry tables (SPEC §3, §9): frames as
    the agents sent them (packed by vw_points, one row per frame), the seqs
    stored per agent, the 1-minute and 1-hour roll-ups, and their expiry.
    Called by the store actor only.

    Roll-ups follow the raw points exactly: a frame's values are added to
    this pass's roll-up sums (one per series and bucket, however many points
    the pass brought), and vw_telemetry_rows_flush writes them, as upserts,
    in the same transaction as the frames, just before its commit. What is
    committed therefore always agrees with the frames committed; a pass
    that fails leaves neither.
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

//  Writes this pass's roll-ups (before the commit). 0, or -1 after rolling
//  the whole transaction back (the commit then fails).
int vw_telemetry_rows_flush (vw_telemetry_rows_t *self);
//  The pass's transaction did not land: forget its roll-ups and what was
//  learnt about series ids in it.
void vw_telemetry_rows_forget (vw_telemetry_rows_t *self);

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
