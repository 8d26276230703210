/*  vw_telemetry_query - GET /telemetry/{agent_id} (SPEC §6): raw points, or
    buckets aligned to multiples of step_ms since the epoch, each
    [bucket_start, aggregate], empty buckets left out. Called by the store
    actor only.

    A bucketed query reads the roll-ups where they hold the answer: with a
    step_ms that is a multiple of an hour, the 1-hour roll-up; of a minute,
    the 1-minute one; for the buckets wholly inside [from, to). The one or
    two buckets that `from` or `to` cut are computed from the raw points in
    range, as are all buckets of any other step_ms. Roll-ups hold every
    stored point, so both ways give the same figures while raw points are
    kept; past the raw retention only roll-ups answer.
*/
#ifndef VW_TELEMETRY_QUERY_H
#define VW_TELEMETRY_QUERY_H

#include <stdint.h>

#include "vw_db.h"
#include "vw_result.h"

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
    int64_t max_points;  //  more raw points in the answer: 400 too_many_points
} vw_telemetry_query_t;

//  200 {"agent_id","series":[{"metric","points":[[ts,value],…]}]}: series
//  by metric name (those with points in range), points by ts, in the order
//  stored for equal ts. 404 for an unknown agent; 400 too_many_points; 500.
void vw_telemetry_query (vw_db_t *db, const vw_telemetry_query_t *query, vw_result_t *result);

//  GET /telemetry/{agent_id}/summary at `now`: 200 {"agent_id","at","metrics":
//  {"cpu":{"last","last_ts","windows":{"1m":{"min","max","avg","count"},
//  "5m":{…},"1h":{…}},"trend_per_min"},…}}. 1m and 5m are the raw points
//  in [now - window, now]; 1h and the trend come from the minute roll-ups
//  since now - 1 h (the first minute may start before it); trend_per_min
//  is the slope of the least-squares line through the minute averages
//  (null with fewer than two minutes). last is the newest point (from the
//  newest minute bucket when none is 5 min old). 404 for an unknown agent.
void vw_telemetry_summary (vw_db_t *db, const char *agent_id, int64_t now, vw_result_t *result);

#endif
