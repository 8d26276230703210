/*  vw_http_agents - the agents (SPEC §6). */
#include "vw_http_int.h"
#include "vw_clock.h"
#include "vw_token.h"
#include "vw_wire.h"

#include <sodium.h>
#include <string.h>

//  --------------------------------------------------------------------------
//  Agents

void
vw_http_get_agents (vw_edge_t *edge, vw_http_session_t *session)
{
    vw_http_query (edge, session, "store", vw_api_agent_list);
}

void
vw_http_get_agent (vw_edge_t *edge, vw_http_session_t *session)
{
    const char *id = vw_http_id_segment (session, 1, "agent");
    if (!id)
        return;
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_agent_get);
    vw_msg_set_str (&msg->agent_get.agent_id, id);
    //  The registry answers for the agents it holds (live fields current),
    //  and asks the store for the others.
    vw_http_call (edge, session, "registry", &msg, vw_http_reply_plain, NULL, NULL);
}

static void
s_agent_created (vw_edge_t *edge, vw_http_session_t *session, vw_http_call_t *call, vw_msg_t *reply,
                 const char *why)
{
    if (!reply || reply->id != VW_MSG_ID_reply || reply->reply.status != 201) {
        vw_http_reply_audited (edge, session, call, reply, why);
        return;
    }
    vw_edge_audit (edge, session->sub, session->peer, "agent.create", call->target, "success",
                   NULL);
    json_t *agent = reply->reply.json ? json_loads (reply->reply.json, 0, NULL) : NULL;
    snprintf (session->location, sizeof session->location, "/agents/%s", call->target);
    //  The token is shown once, here, and never stored.
    vw_http_respond (session, 201,
                     json_pack ("{s:s, s:s, s:o}", "agent_id", call->target, "token", call->extra,
                                "agent", agent ? agent : json_null ()));
    sodium_memzero (call->extra, sizeof call->extra);
}

void
vw_http_post_agents (vw_edge_t *edge, vw_http_session_t *session)
{
    vw_api_error_t err;
    char token[VW_TOKEN_TEXT_LEN + 1];
    vw_msg_t *msg = vw_api_agent_create (session->json, token, &err);
    if (!msg) {
        vw_http_api_error (session, &err);
        return;
    }
    char id[160];
    snprintf (id, sizeof id, "%s", msg->agent_create.agent_id);
    vw_http_call_t *call =
        vw_http_call (edge, session, "store", &msg, s_agent_created, "agent.create", id);
    if (call)
        snprintf (call->extra, sizeof call->extra, "%s", token);
    sodium_memzero (token, sizeof token);
}

static void
s_agent_rotated (vw_edge_t *edge, vw_http_session_t *session, vw_http_call_t *call, vw_msg_t *reply,
                 const char *why)
{
    if (!reply || reply->id != VW_MSG_ID_reply || reply->reply.status != 200) {
        vw_http_reply_audited (edge, session, call, reply, why);
        return;
    }
    vw_edge_audit (edge, session->sub, session->peer, "agent.rotate_token", call->target, "success",
                   NULL);
    json_t *body = reply->reply.json ? json_loads (reply->reply.json, 0, NULL) : NULL;
    json_t *answer = json_pack ("{s:s, s:s}", "agent_id", call->target, "token", call->extra);
    if (json_is_object (body))
        json_object_update (answer, body);
    json_decref (body);
    //  The token is shown once, here, and never stored.
    vw_http_respond (session, 200, answer);
    sodium_memzero (call->extra, sizeof call->extra);
}

//  POST /agents/{id}/token {"grace_s"?}: a new token; the current one
//  works for grace_s more (default a day) or until the agent uses the new.
void
vw_http_post_agent_token (vw_edge_t *edge, vw_http_session_t *session)
{
    const char *id = vw_http_id_segment (session, 1, "agent");
    if (!id)
        return;
    vw_api_error_t err;
    char token[VW_TOKEN_TEXT_LEN + 1];
    vw_msg_t *msg = vw_api_agent_rotate (id, session->json, vw_clock_wall_ms (), token, &err);
    if (!msg) {
        vw_http_api_error (session, &err);
        return;
    }
    vw_http_call_t *call =
        vw_http_call (edge, session, "registry", &msg, s_agent_rotated, "agent.rotate_token", id);
    if (call)
        snprintf (call->extra, sizeof call->extra, "%s", token);
    sodium_memzero (token, sizeof token);
}

void
vw_http_delete_agent (vw_edge_t *edge, vw_http_session_t *session)
{
    const char *id = vw_http_id_segment (session, 1, "agent");
    if (!id)
        return;
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_agent_revoke);
    vw_msg_set_str (&msg->agent_revoke.agent_id, id);
    vw_http_call (edge, session, "registry", &msg, vw_http_reply_audited, "agent.revoke", id);
}

void
vw_http_put_maintenance (vw_edge_t *edge, vw_http_session_t *session)
{
    json_t *enabled = json_object_get (session->json, "enabled");
    if (!json_is_boolean (enabled)) {
        vw_http_error (session, 400, "bad_request",
                       "field 'enabled' is required and must be a boolean");
        return;
    }
    const char *id = vw_http_id_segment (session, 1, "agent");
    if (!id)
        return;
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_agent_maintenance);
    vw_msg_set_str (&msg->agent_maintenance.agent_id, id);
    msg->agent_maintenance.enabled = json_is_true (enabled);
    vw_http_call (edge, session, "registry", &msg, vw_http_reply_audited, "agent.maintenance", id);
}
