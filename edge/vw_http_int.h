/*  vw_http_int - what the HTTP façade's files share (vw_http.c owns the
    connection and the pipeline; vw_http_<resource>.c hold the handlers).
    Only the api edge's thread touches any of it.

    A handler gets a request that is routed, authenticated, authorised and
    (for POST/PUT) parsed into session->json. It answers at once
    (vw_http_respond, vw_http_error) or asks another actor
    (vw_http_call) and answers from the reply. */
#ifndef VW_HTTP_INT_H
#define VW_HTTP_INT_H

#include "vw_api.h"
#include "vw_edge_int.h"
#include "vw_httpreq.h"

#include <jansson.h>

typedef enum { VW_HTTP_ANYONE = 0, VW_HTTP_VIEWER, VW_HTTP_OPERATOR, VW_HTTP_ADMIN } vw_http_role_t;

typedef struct vw_http_call_t vw_http_call_t;
typedef struct vw_http_session_t vw_http_session_t;

struct vw_http_session_t {
    //  The connection: kept across keep-alive requests.
    struct lws *wsi;
    char peer[64];
    vw_httpreq_t *req;  //  the request being read or answered
    char *pending;      //  bytes after it (pipelining), not parsed yet
    size_t pending_len;
    uint64_t deadline;   //  timer: request (408) or idle deadline
    bool busy;           //  a request is in: answering it, not reading
    bool close_after;    //  close once the answer is out
    bool continue_sent;  //  "100 Continue" for this request
    //  The request being answered.
    int method;  //  LWSHUMETH_* of req->method, -1 for others
    //  authenticated caller
    char sub[128];
    vw_http_role_t role;
    char jti[80];       //  the bearer token's, for POST /auth/logout
    int64_t token_exp;  //  seconds
    json_t *json;       //  parsed body of POST/PUT
    json_t *partial;    //  a multi-step answer being assembled
    //  response
    bool ready;
    int status;
    unsigned char *out;  //  LWS_PRE headroom + status line, fields and body
    size_t out_len, out_off;
    char allow[64];
    char location[256];
    int retry_after;  //  seconds, for 429
    bool challenge;   //  WWW-Authenticate, for 401
    //  asynchronous work
    uint64_t probe_id;
    vw_http_call_t *call;
};

typedef void (vw_http_reply_fn) (vw_edge_t *edge, vw_http_session_t *session, vw_http_call_t *call,
                                 vw_msg_t *reply, const char *why);

//  A request to another actor on behalf of a session.
struct vw_http_call_t {
    vw_http_session_t *session;  //  NULL once the connection closed
    vw_http_reply_fn *fn;
    char action[32];   //  audit action, or ""
    char target[160];  //  audit target
    char extra[160];   //  handler-specific (e.g. the new agent's token)
};

typedef void (vw_http_handler_fn) (vw_edge_t *edge, vw_http_session_t *session);

//  A read whose arguments are the query string: build it with vw_api, ask
//  `to`, answer with the reply.
typedef vw_msg_t *(vw_http_query_fn) (json_t *args, vw_api_error_t *err);

//  --------------------------------------------------------------------------
//  Answers (vw_http.c)

//  Queues an answer: status line, fields and body (a JSON value, consumed).
void vw_http_respond (vw_http_session_t *session, int status, json_t *body);
//  {"error":{"code","message"}} with `status`; the message is sanitised.
void vw_http_error (vw_http_session_t *session, int status, const char *code, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));
void vw_http_api_error (vw_http_session_t *session, const vw_api_error_t *err);
//  Queues an answer whose body is text of this content type.
void vw_http_respond_text (vw_http_session_t *session, int status, const char *type,
                           const char *text);
//  Answers with another actor's `reply` message.
void vw_http_respond_reply (vw_http_session_t *session, const vw_msg_t *reply);

//  Path segment `index`, decoded (the {id} of /agents/{id} is 1).
const char *vw_http_segment (vw_http_session_t *session, int index);
//  An agent id or username from the path: NULL (answered 404) if it does
//  not follow the grammar, so no such resource can exist.
const char *vw_http_id_segment (vw_http_session_t *session, int index, const char *what);

//  Sends *msg_p to `to`; fn runs with the reply (or NULL and `why`). For a
//  state change, `action` and `target` name the audit row (else NULL).
//  NULL (answered 503) if the actor cannot be reached.
vw_http_call_t *vw_http_call (vw_edge_t *edge, vw_http_session_t *session, const char *to,
                              vw_msg_t **msg_p, vw_http_reply_fn *fn, const char *action,
                              const char *target);
//  Reply functions for vw_http_call: answer with the reply, auditing the
//  outcome of a state change, or plainly for a read.
vw_http_reply_fn vw_http_reply_audited;
vw_http_reply_fn vw_http_reply_plain;
//  The query string as a JSON object of strings, for vw_api (new reference).
json_t *vw_http_query_object (vw_http_session_t *session);
//  A read whose arguments are the query string: build the message with
//  `build`, ask `to`, answer with the reply.
void vw_http_query (vw_edge_t *edge, vw_http_session_t *session, const char *to,
                    vw_http_query_fn *build);

//  --------------------------------------------------------------------------
//  Handlers, one file per resource

//  vw_http_status.c
vw_http_handler_fn vw_http_get_health, vw_http_get_statistics, vw_http_get_metrics;
//  vw_http_users.c
vw_http_handler_fn vw_http_post_token, vw_http_post_logout, vw_http_post_users, vw_http_get_users,
    vw_http_get_user, vw_http_put_user, vw_http_delete_user, vw_http_get_audit;
//  vw_http_agents.c
vw_http_handler_fn vw_http_get_agents, vw_http_post_agents, vw_http_get_agent, vw_http_delete_agent,
    vw_http_put_maintenance, vw_http_post_agent_token;
//  vw_http_commands.c
vw_http_handler_fn vw_http_post_commands, vw_http_get_commands, vw_http_get_command,
    vw_http_cancel_command;
//  vw_http_telemetry.c
vw_http_handler_fn vw_http_get_telemetry, vw_http_get_summary;

#endif
