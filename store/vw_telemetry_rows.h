/*  vw_telemetry_rows - the telemetry tables: frames as the agents sent
    them (packed by vw_points, one row per frame), the seqs stored per agent,
    and the queries of GET /telemetry/{agent_id} (SPEC §6). Called by the
    store actor only. */
#ifndef VW_TELEMETRY_ROWS_H
#define VW_TELEMETRY_ROWS_H

#include <stdint.h>

#include "vw_db.h"
#include "vw_result.h"

//  Stores one frame unless the agent's `seq` is stored already: 201 when
//  stored, 200 when it was a duplicate (nothing written), 404 for an
//  unknown agent, 400 when the points are not a packed frame, 500.
void vw_telemetry_rows_store (vw_db_t *db, const char *agent_id, int64_t seq, const uint8_t *points,
                              size_t size, vw_result_t *result);

typedef enum {
    VW_AGG_NONE = 0,  //  raw points
    VW_AGG_AVG,
    VW_AGG_MIN,
    VW_AGG_MAX,
    VW_AGG_SUM,
    VW_AGG_COUNT,
    VW_AGG_LAST,
} vw_agg_t;

//  "avg" ... "last" -> VW_AGG_*; VW_AGG_NONE for anything else.
vw_agg_t vw_agg_from_name (const char *name);

typedef struct {
    const char *agent_id;
    const char *metric;  //  NULL: every metric
    int64_t from, to;    //  [from, to)
    int64_t step_ms;     //  0: raw points
    vw_agg_t agg;        //  with step_ms
    int64_t max_points;  //  more points (or buckets) in the answer: 400 too_many_points
} vw_telemetry_query_t;

//  200 {"agent_id","series":[{"metric","points":[[ts,value],…]}]}: series
//  by metric name, points by ts; a (metric, ts) stored twice counts once,
//  with the value stored last. 404 for an unknown agent; 400
//  too_many_points; 500.
void vw_telemetry_rows_query (vw_db_t *db, const vw_telemetry_query_t *query, vw_result_t *result);

#endif
