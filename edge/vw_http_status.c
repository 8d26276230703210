/*  vw_http_status - GET /health and GET /statistics (SPEC §6). */
#include "vw_http_int.h"
#include "vw_clock.h"
#include "vw_probe.h"

#include <string.h>

//  --------------------------------------------------------------------------
//  GET /health

static void
s_health_done (void *arg, const vw_probe_result_t *result)
{
    vw_http_session_t *session = (vw_http_session_t *) arg;
    vw_edge_t *edge = vw_edge_from_wsi (session->wsi);
    session->probe_id = 0;
    json_t *actors = json_object ();
    const char *database = "unknown";
    bool ok = true;
    for (int i = 0; i < VW_ACTOR_COUNT; i++) {
        const vw_probe_entry_t *e = &result->actors[i];
        //  An actor is up when it answered; the store's verdict on the
        //  database is reported separately as "database".
        json_object_set_new (actors, e->name, json_string (e->up ? "up" : "down"));
        if (!e->up)
            ok = false;
        //  The store's detail names the cause: disk_full, read_only, error.
        if (strcmp (e->name, "store") == 0 && e->up)
            database = e->healthy                               ? "ok"
                       : *e->detail && strcmp (e->detail, "ok") ? e->detail
                                                                : "error";
    }
    if (strcmp (database, "ok") != 0)
        ok = false;
    json_t *body = json_pack ("{s:s, s:s, s:I, s:o, s:s}", "status", ok ? "ok" : "degraded",
                              "version", VW_VERSION, "uptime_s",
                              (json_int_t) ((vw_clock_mono_ms () - edge->started_ms) / 1000),
                              "actors", actors, "database", database);
    vw_http_respond (session, ok ? 200 : 503, body);
}

void
vw_http_get_health (vw_edge_t *edge, vw_http_session_t *session)
{
    session->probe_id =
        vw_probe_start (edge->probe, (int) edge->config->health_timeout_ms, s_health_done, session);
    if (!session->probe_id)
        vw_http_error (session, 500, "internal", "cannot start the health probe");
}

//  --------------------------------------------------------------------------
//  GET /statistics: the scheduler's queue, the store's counts, the broker's
//  per-actor message counters, one after the other.

static json_t *
s_reply_json (vw_msg_t *reply)
{
    return reply && reply->id == VW_MSG_ID_reply && reply->reply.json
               ? json_loads (reply->reply.json, 0, NULL)
               : NULL;
}

static void
s_stats_broker (vw_edge_t *edge, vw_http_session_t *session, vw_http_call_t *call, vw_msg_t *reply,
                const char *why)
{
    json_t *broker = reply && reply->id == VW_MSG_ID_broker_stats && reply->broker_stats.json
                         ? json_loads (reply->broker_stats.json, 0, NULL)
                         : NULL;
    json_t *actors = json_object_get (broker, "actors");
    json_object_set (session->partial, "messages", actors ? actors : json_null ());
    json_decref (broker);
    //  Telemetry ingestion arrives with the telemetry engine.
    json_object_set_new (session->partial, "telemetry", json_pack ("{s:f}", "points_per_s", 0.0));
    json_t *body = session->partial;
    session->partial = NULL;
    vw_http_respond (session, 200, body);
}

static void
s_stats_store (vw_edge_t *edge, vw_http_session_t *session, vw_http_call_t *call, vw_msg_t *reply,
               const char *why)
{
    json_t *counts = s_reply_json (reply);
    if (!counts) {
        vw_http_error (session, 503, "unavailable", "the store did not answer");
        return;
    }
    json_object_update (session->partial, counts);
    json_decref (counts);
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_broker_stats);
    vw_http_call (edge, session, "broker", &msg, s_stats_broker, NULL, NULL);
}

static void
s_stats_scheduler (vw_edge_t *edge, vw_http_session_t *session, vw_http_call_t *call,
                   vw_msg_t *reply, const char *why)
{
    json_t *queue = s_reply_json (reply);
    if (!queue) {
        vw_http_error (session, 503, "unavailable", "the scheduler did not answer");
        return;
    }
    session->partial = json_pack ("{s:o}", "queue", queue);
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_stats_query);
    vw_http_call (edge, session, "store", &msg, s_stats_store, NULL, NULL);
}

void
vw_http_get_statistics (vw_edge_t *edge, vw_http_session_t *session)
{
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_stats_query);
    msg->stats_query.window_ms = 300000;
    vw_http_call (edge, session, "scheduler", &msg, s_stats_scheduler, NULL, NULL);
}
