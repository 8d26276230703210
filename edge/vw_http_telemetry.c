/*  vw_http_telemetry - an agent's telemetry and its summary (SPEC §6). */
#include "vw_clock.h"
#include "vw_http_int.h"

void
vw_http_get_telemetry (vw_edge_t *edge, vw_http_session_t *session)
{
    const char *id = vw_http_id_segment (session, 1, "agent");
    if (!id)
        return;
    vw_api_error_t err;
    json_t *args = vw_http_query_object (session);
    vw_msg_t *msg = vw_api_telemetry_query (args, true, id, vw_clock_wall_ms (),
                                            edge->config->telemetry_max_points, &err);
    json_decref (args);
    if (msg)
        vw_http_call (edge, session, "store", &msg, vw_http_reply_plain, NULL, NULL);
    else
        vw_http_api_error (session, &err);
}

void
vw_http_get_summary (vw_edge_t *edge, vw_http_session_t *session)
{
    const char *id = vw_http_id_segment (session, 1, "agent");
    if (!id)
        return;
    if (session->req->nargs) {
        vw_http_error (session, 400, "bad_request", "unknown field '%.64s'",
                       session->req->arg_key[0]);
        return;
    }
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_telemetry_summary);
    vw_msg_set_str (&msg->telemetry_summary.agent_id, id);
    msg->telemetry_summary.now = vw_clock_wall_ms ();
    vw_http_call (edge, session, "store", &msg, vw_http_reply_plain, NULL, NULL);
}
