/*  vw_http_commands - the commands (SPEC §6). */
#include "vw_http_int.h"

#include <string.h>

//  --------------------------------------------------------------------------
//  Commands

static void
s_submitted (vw_edge_t *edge, vw_http_session_t *session, vw_http_call_t *call, vw_msg_t *reply,
             const char *why)
{
    //  One command: the store's object starts with its id (a fan-out's
    //  {"commands": [...]} gets no Location). Read off the text, which
    //  goes out as it came.
    static const char prefix[] = "{\"command_id\":\"";
    const char *json = reply && reply->id == VW_MSG_ID_reply && reply->reply.status == 202
                           ? reply->reply.json
                           : NULL;
    if (json && strncmp (json, prefix, sizeof prefix - 1) == 0) {
        const char *id = json + sizeof prefix - 1;
        size_t len = strcspn (id, "\"\\");
        if (id[len] == '"' && len < 100)
            snprintf (session->location, sizeof session->location, "/commands/%.*s", (int) len, id);
    }
    vw_http_reply_audited (edge, session, call, reply, why);
}

void
vw_http_post_commands (vw_edge_t *edge, vw_http_session_t *session)
{
    vw_api_error_t err;
    vw_msg_t *msg =
        vw_api_command_submit (session->json, edge->config->commands, session->sub, &err);
    if (!msg) {
        vw_http_api_error (session, &err);
        return;
    }
    char target[160];
    snprintf (target, sizeof target, "%s",
              msg->command_submit.agent_id ? msg->command_submit.agent_id
                                           : msg->command_submit.labels);
    vw_http_call (edge, session, "scheduler", &msg, s_submitted, "command.submit", target);
}

void
vw_http_get_commands (vw_edge_t *edge, vw_http_session_t *session)
{
    vw_http_query (edge, session, "store", vw_api_command_list);
}

void
vw_http_get_command (vw_edge_t *edge, vw_http_session_t *session)
{
    const char *id = vw_http_segment (session, 1);
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_command_get);
    vw_msg_set_str (&msg->command_get.command_id, id);
    vw_http_call (edge, session, "store", &msg, vw_http_reply_plain, NULL, NULL);
}

void
vw_http_cancel_command (vw_edge_t *edge, vw_http_session_t *session)
{
    const char *id = vw_http_segment (session, 1);
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_command_cancel);
    vw_msg_set_str (&msg->command_cancel.command_id, id);
    vw_msg_set_str (&msg->command_cancel.actor, session->sub);
    vw_http_call (edge, session, "scheduler", &msg, vw_http_reply_audited, "command.cancel", id);
}
