/*  fuzz_points - libFuzzer target for the packed telemetry points
    (vw_points). The store and the telemetry actor read these bytes; over
    tcp they come from another process. Any input must be walked or refused
    without crashing; what walks must pack again (as JSON points) into bytes
    that walk to the same values. */
#include "vw_points.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    json_t *points;  //  rebuilt: one point per value, in order
    size_t values;
} s_rebuilt_t;

static int
s_rebuild (void *arg, const vw_points_value_t *v)
{
    s_rebuilt_t *r = (s_rebuilt_t *) arg;
    char name[65];
    memcpy (name, v->name, v->name_len);
    name[v->name_len] = 0;
    json_array_append_new (r->points, json_pack ("{s:I, s:{s:f}}", "ts", (json_int_t) v->ts,
                                                 "metrics", name, v->value));
    r->values++;
    return 0;
}

typedef struct {
    json_t *points;
    size_t next;
} s_compare_t;

static int
s_compare (void *arg, const vw_points_value_t *v)
{
    s_compare_t *c = (s_compare_t *) arg;
    json_t *point = json_array_get (c->points, c->next++);
    json_t *metrics = json_object_get (point, "metrics");
    const char *name = json_object_iter_key (json_object_iter (metrics));
    if (json_integer_value (json_object_get (point, "ts")) != v->ts ||
        strlen (name) != v->name_len || memcmp (name, v->name, v->name_len) ||
        json_real_value (json_object_iter_value (json_object_iter (metrics))) != v->value)
        __builtin_trap ();
    return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    vw_points_info_t info;
    if (vw_points_walk (data, size, NULL, NULL, &info))
        return 0;
    s_rebuilt_t r = {json_array (), 0};
    if (vw_points_walk (data, size, s_rebuild, &r, NULL) || r.values != info.values)
        __builtin_trap ();
    uint8_t *again;
    size_t again_size;
    vw_points_info_t again_info;
    if (vw_points_pack (r.points, &again, &again_size, &again_info) ||
        again_info.values != info.values || again_info.ts_min != info.ts_min ||
        again_info.ts_max != info.ts_max)
        __builtin_trap ();
    s_compare_t c = {r.points, 0};
    if (vw_points_walk (again, again_size, s_compare, &c, NULL))
        __builtin_trap ();
    free (again);
    json_decref (r.points);
    return 0;
}
