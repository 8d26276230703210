/*  vw_http - the HTTP façade (SPEC §6) on the edge's "http" vhost.

    The vhost's connections are raw sockets: lws accepts them (and does
    TLS), vw_httpreq parses HTTP/1.1 exactly and within limits, and this
    file answers. Each connection has one vw_http_session_t (lws per-session
    data), reused by keep-alive requests, one request at a time: while a
    request is being answered the connection is not read from (lws rx flow
    control), and pipelined bytes wait in the session. A request runs
    through one pipeline once its headers and body are in:

        malformed or over a limit? (400/408/413/414/431/505, then close)
        -> shutting down? -> rate limit per address -> route (404/405)
        -> bearer token and role (401/403) -> rate limit per token
        -> JSON body (415/400) -> handler

    Deadlines per connection (one timer of the actor's): a request whose head and body
    are not in within http.request_timeout gets 408 and the connection
    closes; an idle keep-alive connection closes after http.idle_timeout,
    and so does one whose client stops taking its answer (no chunk of it
    goes out for http.idle_timeout).

    The handlers live in one file per resource (vw_http_agents.c,
    vw_http_commands.c, vw_http_users.c, vw_http_status.c; vw_http_int.h
    is what they share). A handler either answers at once or asks another
    actor through vw_pending and answers from the reply; the session only holds a
    pointer to the call, which is detached when the connection closes, so
    a late reply never touches a dead connection. Answers are written only
    from LWS_CALLBACK_RAW_WRITEABLE, a chunk at a time.

    Every error is {"error":{"code","message"}} with the right status, and
    every state change is audited (vw_edge_audit) with its outcome.
*/
#include "vw_api.h"
#include "vw_clock.h"
#include "vw_http_int.h"
#include "vw_jwt.h"
#include "vw_log.h"
#include "vw_text.h"
#include "vw_tokens.h"
#include "vw_wire.h"

#include <jansson.h>
#include <string.h>

#define S_CALL_TIMEOUT 5000
#define S_JWT_SKEW_S   30
//  Bytes written per writeable callback, so one large answer does not
//  hold the loop (lws buffers what the socket does not take).
#define S_WRITE_CHUNK (64 * 1024)
//  Bytes read past a request while it is answered (pipelining); lws's flow
//  control keeps it to about one read.
#define S_PENDING_MAX (256 * 1024)

typedef struct {
    int method;
    const char *path;
    vw_http_role_t role;
    bool body;  //  expects a JSON object body
    vw_http_handler_fn *handler;
} s_route_t;

static const char *s_method_names[] = {"GET",   "POST",   "OPTIONS", "PUT",
                                       "PATCH", "DELETE", "CONNECT", "HEAD"};
static const char *s_role_names[] = {"anyone", "viewer", "operator", "admin"};

size_t
vw_http_session_size (void)
{
    return sizeof (vw_http_session_t);
}

//  Clears one request's state, keeping the connection's.
static void
s_reset (vw_http_session_t *session)
{
    free (session->out);
    json_decref (session->json);
    json_decref (session->partial);
    if (session->call)
        session->call->session = NULL;
    size_t keep = offsetof (vw_http_session_t, method);
    memset ((char *) session + keep, 0, sizeof *session - keep);
    session->busy = false;
    session->continue_sent = false;
    if (session->req)
        vw_httpreq_reset (session->req);
}

static void s_arm (vw_http_session_t *session, int64_t ms);

static void s_respond_text (vw_http_session_t *session, int status, const char *type,
                            const char *text);

//  Queues an answer: status line, fields and body (a JSON value, consumed).
void
vw_http_respond (vw_http_session_t *session, int status, json_t *body)
{
    char *text = body ? json_dumps (body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref (body);
    s_respond_text (session, status, "application/json", text);
    free (text);
}

void
vw_http_respond_text (vw_http_session_t *session, int status, const char *type, const char *text)
{
    s_respond_text (session, status, type, text);
}

//  The same with the body already serialized (JSON text, or NULL for none):
//  what another actor answered goes out as it came, not parsed and dumped
//  again.
static void
s_respond_text (vw_http_session_t *session, int status, const char *type, const char *text)
{
    size_t len = text ? strlen (text) : 0;
    vw_edge_t *edge = vw_edge_from_wsi (session->wsi);
    if (!session->req || !session->req->keep_alive || edge->stopping)
        session->close_after = true;
    //  204 has no body, and no Content-Length either (RFC 9110 §8.6).
    if (status == 204)
        len = 0;
    char head[1024];
    int n = snprintf (head, sizeof head, "HTTP/1.1 %d %s\r\n", status, vw_httpreq_reason (status));
    if (status != 204)
        n += snprintf (head + n, sizeof head - (size_t) n,
                       "content-type: %s\r\ncontent-length: %zu\r\n", type, len);
    n += snprintf (head + n, sizeof head - (size_t) n, "cache-control: no-store\r\n%s",
                   session->close_after ? "connection: close\r\n" : "");
    if (*session->allow)
        n += snprintf (head + n, sizeof head - (size_t) n, "allow: %s\r\n", session->allow);
    if (*session->location)
        n += snprintf (head + n, sizeof head - (size_t) n, "location: %s\r\n", session->location);
    if (session->retry_after)
        n += snprintf (head + n, sizeof head - (size_t) n, "retry-after: %d\r\n",
                       session->retry_after);
    if (session->challenge && status == 401)
        n += snprintf (head + n, sizeof head - (size_t) n, "www-authenticate: Bearer\r\n");
    //  An HTTP/1.0 client keeps the connection only when told so.
    if (!session->close_after && session->req->version_minor == 0)
        n += snprintf (head + n, sizeof head - (size_t) n, "connection: keep-alive\r\n");
    n += snprintf (head + n, sizeof head - (size_t) n, "\r\n");
    //  The answer to HEAD has the fields of the body it does not carry
    //  (RFC 9110 §9.3.2): a body would be read as the next answer.
    if (session->method == LWSHUMETH_HEAD)
        len = 0;
    free (session->out);
    session->out = (unsigned char *) malloc (LWS_PRE + (size_t) n + len + 1);
    session->out_len = session->out_off = 0;
    if (session->out) {
        memcpy (session->out + LWS_PRE, head, (size_t) n);
        if (len)
            memcpy (session->out + LWS_PRE + n, text, len);
        session->out_len = (size_t) n + len;
    }
    else
        session->close_after = true;
    session->status = status;
    session->ready = true;
    //  The client has http.idle_timeout to take each chunk of it.
    s_arm (session, edge->config->http_idle_timeout_ms);
    lws_callback_on_writable (session->wsi);
}

void
vw_http_error (vw_http_session_t *session, int status, const char *code, const char *fmt, ...)
{
    char message[400];
    va_list args;
    va_start (args, fmt);
    vsnprintf (message, sizeof message, fmt, args);
    va_end (args);
    vw_text_sanitize (message);
    vw_http_respond (session, status,
                     json_pack ("{s:{s:s, s:s}}", "error", "code", code, "message", message));
}

//  Answers with another actor's `reply` message.
void
vw_http_respond_reply (vw_http_session_t *session, const vw_msg_t *reply)
{
    const vw_reply_msg_t *r = &reply->reply;
    if (r->code)
        vw_http_error (session, (int) r->status, r->code, "%s", r->message ? r->message : r->code);
    else
        s_respond_text (session, (int) r->status, "application/json", r->json);
}

json_t *
vw_http_query_object (vw_http_session_t *session)
{
    json_t *args = json_object ();
    const vw_httpreq_t *req = session->req;
    for (int i = 0; i < req->nargs; i++)
        json_object_set_new (args, req->arg_key[i], json_string (req->arg_val[i]));
    return args;
}

void
vw_http_api_error (vw_http_session_t *session, const vw_api_error_t *err)
{
    vw_http_error (session, err->status, err->code, "%s", err->message);
}

//  Path segment `index`, decoded (the {id} of /agents/{id} is 1). Routing
//  made sure it exists.
const char *
vw_http_segment (vw_http_session_t *session, int index)
{
    return session->req->segment[index];
}

//  An agent id or username from the path: NULL (answered 404) if it does
//  not follow the grammar, so no such resource can exist.
const char *
vw_http_id_segment (vw_http_session_t *session, int index, const char *what)
{
    const char *id = vw_http_segment (session, index);
    if (vw_wire_valid_id (id))
        return id;
    vw_http_error (session, 404, "not_found", "no %s '%.64s' (names match %s)", what, id,
                   VW_ID_GRAMMAR);
    return NULL;
}

//  --------------------------------------------------------------------------
//  Calls to other actors

static void
s_on_call_reply (void *state, vw_actor_t *actor, void *ctx, vw_msg_t *reply, const char *why)
{
    vw_edge_t *edge = (vw_edge_t *) state;
    vw_http_call_t *call = (vw_http_call_t *) ctx;
    vw_http_session_t *session = call->session;
    if (session) {
        session->call = NULL;
        call->fn (edge, session, call, reply, why);
    }
    else if (*call->action && reply && reply->id == VW_MSG_ID_reply)
        //  The client left, but the change happened: audit it anyway.
        vw_edge_audit (edge, "unknown", NULL, call->action, call->target,
                       reply->reply.status < 300 ? "success" : "failure", "client went away");
    free (call);
}

//  Sends *msg_p to `to`; fn runs with the reply (or NULL and `why`). For a
//  state change, `action` and `target` name the audit row (else NULL).
vw_http_call_t *
vw_http_call (vw_edge_t *edge, vw_http_session_t *session, const char *to, vw_msg_t **msg_p,
              vw_http_reply_fn *fn, const char *action, const char *target)
{
    vw_http_call_t *call = (vw_http_call_t *) zmalloc (sizeof (vw_http_call_t));
    call->session = session;
    call->fn = fn;
    snprintf (call->action, sizeof call->action, "%s", action ? action : "");
    snprintf (call->target, sizeof call->target, "%s", target ? target : "");
    if (vw_pending_request (edge->pending, to, msg_p, S_CALL_TIMEOUT, s_on_call_reply, call)) {
        vw_msg_destroy (msg_p);
        free (call);
        vw_http_error (session, 503, "unavailable", "the %s actor is not reachable", to);
        return NULL;
    }
    session->call = call;
    return call;
}

//  A reply for a state change: answer with it and audit the outcome.
void
vw_http_reply_audited (vw_edge_t *edge, vw_http_session_t *session, vw_http_call_t *call,
                       vw_msg_t *reply, const char *why)
{
    if (!reply || reply->id != VW_MSG_ID_reply) {
        vw_http_error (session, 503, "unavailable", "no answer in time (%s)", why ? why : "?");
        vw_edge_audit (edge, session->sub, session->peer, call->action, call->target, "failure",
                       why ? why : "no answer");
        return;
    }
    vw_edge_audit (edge, session->sub, session->peer, call->action, call->target,
                   reply->reply.status < 300 ? "success" : "failure", reply->reply.code);
    vw_http_respond_reply (session, reply);
}

//  A reply to a read: answer with it.
void
vw_http_reply_plain (vw_edge_t *edge, vw_http_session_t *session, vw_http_call_t *call,
                     vw_msg_t *reply, const char *why)
{
    if (!reply || reply->id != VW_MSG_ID_reply)
        vw_http_error (session, 503, "unavailable", "no answer in time (%s)", why ? why : "?");
    else
        vw_http_respond_reply (session, reply);
}

void
vw_http_query (vw_edge_t *edge, vw_http_session_t *session, const char *to, vw_http_query_fn *build)
{
    vw_api_error_t err;
    json_t *args = vw_http_query_object (session);
    vw_msg_t *msg = build (args, &err);
    json_decref (args);
    if (msg)
        vw_http_call (edge, session, to, &msg, vw_http_reply_plain, NULL, NULL);
    else
        vw_http_api_error (session, &err);
}

//  --------------------------------------------------------------------------
//  Routing

static const s_route_t s_routes[] = {
    {LWSHUMETH_GET, "/health", VW_HTTP_ANYONE, false, vw_http_get_health},
    {LWSHUMETH_GET, "/metrics", VW_HTTP_ANYONE, false, vw_http_get_metrics},
    {LWSHUMETH_POST, "/auth/token", VW_HTTP_ANYONE, true, vw_http_post_token},
    {LWSHUMETH_GET, "/agents", VW_HTTP_VIEWER, false, vw_http_get_agents},
    {LWSHUMETH_POST, "/agents", VW_HTTP_ADMIN, true, vw_http_post_agents},
    {LWSHUMETH_GET, "/agents/{id}", VW_HTTP_VIEWER, false, vw_http_get_agent},
    {LWSHUMETH_DELETE, "/agents/{id}", VW_HTTP_ADMIN, false, vw_http_delete_agent},
    {LWSHUMETH_PUT, "/agents/{id}/maintenance", VW_HTTP_OPERATOR, true, vw_http_put_maintenance},
    {LWSHUMETH_POST, "/agents/{id}/token", VW_HTTP_ADMIN, true, vw_http_post_agent_token},
    {LWSHUMETH_POST, "/users", VW_HTTP_ADMIN, true, vw_http_post_users},
    {LWSHUMETH_GET, "/users", VW_HTTP_ADMIN, false, vw_http_get_users},
    {LWSHUMETH_GET, "/users/{name}", VW_HTTP_ADMIN, false, vw_http_get_user},
    {LWSHUMETH_PUT, "/users/{name}", VW_HTTP_VIEWER, true, vw_http_put_user},
    {LWSHUMETH_DELETE, "/users/{name}", VW_HTTP_ADMIN, false, vw_http_delete_user},
    {LWSHUMETH_POST, "/auth/logout", VW_HTTP_VIEWER, false, vw_http_post_logout},
    {LWSHUMETH_POST, "/commands", VW_HTTP_OPERATOR, true, vw_http_post_commands},
    {LWSHUMETH_GET, "/commands", VW_HTTP_VIEWER, false, vw_http_get_commands},
    {LWSHUMETH_GET, "/telemetry/{id}", VW_HTTP_VIEWER, false, vw_http_get_telemetry},
    {LWSHUMETH_GET, "/telemetry/{id}/summary", VW_HTTP_VIEWER, false, vw_http_get_summary},
    {LWSHUMETH_GET, "/commands/{id}", VW_HTTP_VIEWER, false, vw_http_get_command},
    {LWSHUMETH_POST, "/commands/{id}/cancel", VW_HTTP_OPERATOR, false, vw_http_cancel_command},
    {LWSHUMETH_GET, "/audit", VW_HTTP_ADMIN, false, vw_http_get_audit},
    {LWSHUMETH_GET, "/statistics", VW_HTTP_VIEWER, false, vw_http_get_statistics},
};
#define S_ROUTES (sizeof s_routes / sizeof s_routes[0])

//  True if the request's decoded segments match `pattern`, where a
//  "{name}" segment matches any one non-empty segment and every other
//  segment must be equal. "/agents/x%2f..%2fgw-02" has the segments
//  "agents" and an invalid one (refused by vw_httpreq before routing);
//  nothing is normalised, so a path only ever names what it spells.
static bool
s_path_matches (const char *pattern, const vw_httpreq_t *req)
{
    const char *p = pattern + 1;
    int index = 0;
    while (*p) {
        size_t n = strcspn (p, "/");
        if (index >= req->nsegments)
            return false;
        const char *segment = req->segment[index++];
        if (*p == '{') {
            if (!*segment)
                return false;
        }
        else if (strlen (segment) != n || memcmp (segment, p, n) != 0)
            return false;
        p += n;
        if (*p == '/')
            p++;
    }
    return index == req->nsegments;
}

//  LWSHUMETH_* for a method name, -1 for methods no route uses.
static int
s_method_of (const char *name)
{
    for (int i = 0; i <= LWSHUMETH_HEAD; i++)
        if (strcmp (name, s_method_names[i]) == 0)
            return i;
    return -1;
}

//  Bearer token -> caller and role; false (answered 401) if missing or bad.
static bool
s_authenticate (vw_edge_t *edge, vw_http_session_t *session)
{
    const char *header = vw_httpreq_header (session->req, "authorization");
    session->challenge = true;
    if (!header || !*header) {
        vw_http_error (session, 401, "unauthorized", "an Authorization: Bearer token is required");
        return false;
    }
    if (strncasecmp (header, "Bearer ", 7) != 0) {
        vw_http_error (session, 401, "unauthorized",
                       "the Authorization header must be 'Bearer <token>'");
        return false;
    }
    vw_jwt_claims_t claims;
    const vw_config_t *config = edge->config;
    int64_t now = vw_clock_wall_ms ();
    vw_jwt_status_t status =
        vw_jwt_verify ((const uint8_t *) config->jwt_secret, strlen (config->jwt_secret),
                       header + 7, now / 1000, S_JWT_SKEW_S, &claims);
    //  After a rotation the previous secret still verifies the tokens it
    //  signed (issued before the rotation), for jwt.previous_grace.
    if (status == VW_JWT_BAD_SIGNATURE && config->jwt_secret_previous &&
        now < config->jwt_previous_since_ms + config->jwt_previous_grace_ms) {
        vw_jwt_claims_t old;
        if (vw_jwt_verify ((const uint8_t *) config->jwt_secret_previous,
                           strlen (config->jwt_secret_previous), header + 7, now / 1000,
                           S_JWT_SKEW_S, &old) == VW_JWT_OK &&
            old.has_iat && old.iat * 1000 < config->jwt_previous_since_ms) {
            claims = old;
            status = VW_JWT_OK;
        }
    }
    if (status != VW_JWT_OK) {
        vw_http_error (session, 401, "unauthorized", "bad token: %s", vw_jwt_status_text (status));
        return false;
    }
    //  Signed and in time; now: is its user live, and the token not revoked?
    vw_edge_tokens_catch_up (edge);
    vw_tokens_verdict_t verdict =
        edge->tokens ? vw_tokens_check (edge->tokens, &claims) : VW_TOKENS_NOT_READY;
    if (verdict == VW_TOKENS_NOT_READY) {
        session->challenge = false;
        session->retry_after = 1;
        vw_http_error (session, 503, "unavailable", "the server is starting: %s",
                       vw_tokens_verdict_text (verdict));
        return false;
    }
    if (verdict != VW_TOKENS_OK) {
        vw_http_error (session, 401, "unauthorized", "bad token: %s",
                       vw_tokens_verdict_text (verdict));
        return false;
    }
    snprintf (session->jti, sizeof session->jti, "%s", claims.jti);
    session->token_exp = claims.exp;
    session->challenge = false;
    snprintf (session->sub, sizeof session->sub, "%s", claims.sub);
    session->role = strcmp (claims.role, "admin") == 0      ? VW_HTTP_ADMIN
                    : strcmp (claims.role, "operator") == 0 ? VW_HTTP_OPERATOR
                                                            : VW_HTTP_VIEWER;
    //  Per token: the jti when there is one, else the subject.
    int64_t retry_ms = 0;
    if (!vw_ratelimit_take (edge->rl_token, *claims.jti ? claims.jti : claims.sub, 1,
                            vw_clock_mono_ms (), &retry_ms)) {
        session->retry_after = (int) ((retry_ms + 999) / 1000);
        vw_http_error (session, 429, "rate_limited",
                       "too many requests for this token; retry in %d s", session->retry_after);
        return false;
    }
    return true;
}

static bool
s_parse_body (vw_http_session_t *session)
{
    const char *type = vw_httpreq_header (session->req, "content-type");
    if (!type)
        type = "";
    if (strncasecmp (type, "application/json", 16) != 0 ||
        (type[16] && type[16] != ';' && type[16] != ' ')) {
        vw_http_error (session, 415, "unsupported_media_type",
                       "the request body must be application/json");
        return false;
    }
    json_error_t jerr;
    const vw_httpreq_t *req = session->req;
    session->json =
        req->body_len ? json_loadb (req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!session->json) {
        vw_http_error (session, 400, "bad_request", "malformed JSON: %s",
                       req->body_len ? jerr.text : "empty body");
        return false;
    }
    if (!json_is_object (session->json)) {
        vw_http_error (session, 400, "bad_request", "the request body must be a JSON object");
        return false;
    }
    return true;
}

static void
s_dispatch (vw_edge_t *edge, vw_http_session_t *session)
{
    const char *method = session->req->method;
    if (edge->proxies) {
        //  Behind a trusted proxy the client is the one it names.
        char source[sizeof session->peer];
        vw_proxies_source (edge->proxies, session->peer,
                           vw_httpreq_header (session->req, "x-forwarded-for"), source,
                           sizeof source);
        memcpy (session->peer, source, sizeof source);
    }
    vw_debug ("api", "%s %s from %s", method, session->req->path, session->peer);
    if (edge->stopping) {
        vw_http_error (session, 503, "unavailable", "the server is shutting down");
        return;
    }
    int64_t retry_ms = 0;
    if (!vw_ratelimit_take (edge->rl_address, session->peer, 1, vw_clock_mono_ms (), &retry_ms)) {
        session->retry_after = (int) ((retry_ms + 999) / 1000);
        vw_http_error (session, 429, "rate_limited", "too many requests from %s; retry in %d s",
                       session->peer, session->retry_after);
        return;
    }
    if (vw_httpreq_header (session->req, "upgrade")) {
        vw_info ("api", "refused a WebSocket upgrade from %s for %s: agents use the agent port",
                 session->peer, session->req->path);
        vw_http_error (
            session, 404, "not_found",
            "this is the HTTP API: agents open their WebSocket on the agent port (/ws/agent)");
        return;
    }
    char allow[64] = "";
    for (size_t i = 0; i < S_ROUTES; i++) {
        const s_route_t *route = &s_routes[i];
        if (!s_path_matches (route->path, session->req))
            continue;
        if (route->method == session->method) {
            //  GET /metrics takes a viewer's token when http.metrics_auth says so.
            vw_http_role_t need =
                route->handler == vw_http_get_metrics && edge->config->http_metrics_auth
                    ? VW_HTTP_VIEWER
                    : route->role;
            if (need != VW_HTTP_ANYONE) {
                if (!s_authenticate (edge, session))
                    return;
                if (session->role < need) {
                    vw_http_error (session, 403, "forbidden",
                                   "%s %s needs the %s role (you are %s)", method, route->path,
                                   s_role_names[need], s_role_names[session->role]);
                    return;
                }
            }
            if (route->body && !s_parse_body (session))
                return;
            route->handler (edge, session);
            return;
        }
        size_t n = strlen (allow);
        snprintf (allow + n, sizeof allow - n, "%s%s", n ? ", " : "",
                  s_method_names[route->method]);
    }
    if (*allow) {
        snprintf (session->allow, sizeof session->allow, "%s", allow);
        vw_http_error (session, 405, "method_not_allowed", "%s is not allowed on %s (allowed: %s)",
                       method, session->req->path, allow);
    }
    else
        vw_http_error (session, 404, "not_found", "no resource at %s", session->req->path);
}

//  --------------------------------------------------------------------------
//  The connection: reading requests, deadlines, writing answers

static void s_on_deadline (void *arg, uint64_t id);

static void
s_disarm (vw_http_session_t *session)
{
    if (session->deadline) {
        vw_edge_t *edge = vw_edge_from_wsi (session->wsi);
        vw_timers_cancel (vw_actor_timers (edge->actor), session->deadline);
        session->deadline = 0;
    }
}

static void
s_arm (vw_http_session_t *session, int64_t ms)
{
    s_disarm (session);
    vw_edge_t *edge = vw_edge_from_wsi (session->wsi);
    session->deadline = vw_timers_add (vw_actor_timers (edge->actor), ms, s_on_deadline, session);
}

//  A request that could not be read answers and closes the connection
//  (its framing is lost, so no further request can be found in it).
static void
s_refuse (vw_http_session_t *session, int status, const char *code, const char *message)
{
    session->busy = true;
    session->close_after = true;
    s_disarm (session);
    lws_rx_flow_control (session->wsi, 0);
    vw_debug ("api", "%s: %d %s (%s)", session->peer, status, code, message);
    vw_http_error (session, status, code, "%s", message);
}

static void
s_on_deadline (void *arg, uint64_t id)
{
    vw_http_session_t *session = (vw_http_session_t *) arg;
    session->deadline = 0;
    if (session->busy) {
        //  Waiting for an actor: the calls have deadlines of their own.
        //  Writing: the client did not take a chunk of its answer in time
        //  (it does not read, and would hold the answer and the
        //  connection for ever).
        if (session->ready) {
            vw_debug ("api", "%s: the answer was not read in time; closing", session->peer);
            vw_edge_kill (session->wsi);
        }
        return;
    }
    if (session->req->started)
        s_refuse (session, 408, "request_timeout",
                  "the request was not received in time; the connection is closed");
    else
        vw_edge_kill (session->wsi);
}

//  Feeds received bytes to the parser until a request is complete; the
//  rest waits in session->pending until that request is answered.
static int
s_consume (vw_edge_t *edge, vw_http_session_t *session, const char *data, size_t len)
{
    while (len && !session->busy) {
        bool started = session->req->started;
        size_t used = 0;
        vw_httpreq_state_t state = vw_httpreq_feed (session->req, data, len, &used);
        data += used;
        len -= used;
        if (!started && session->req->started)
            s_arm (session, edge->config->http_request_timeout_ms);
        if (state == VW_HTTPREQ_ERROR) {
            s_refuse (session, session->req->status, session->req->code, session->req->message);
            return 0;  //  the rest is not read
        }
        if (state == VW_HTTPREQ_MORE) {
            if (session->req->expect_continue && !session->continue_sent)
                lws_callback_on_writable (session->wsi);
            break;
        }
        //  A whole request: answer it before reading on.
        session->busy = true;
        s_disarm (session);
        lws_rx_flow_control (session->wsi, 0);
        session->method = s_method_of (session->req->method);
        s_dispatch (edge, session);
    }
    if (len) {
        //  At most what lws read while we were answering (it delivers what
        //  it had buffered even with rx paused); bounded by the flow
        //  control above (one read's worth per request).
        if (session->pending_len + len > S_PENDING_MAX)
            return -1;
        char *grown = (char *) realloc (session->pending, session->pending_len + len);
        if (!grown)
            return -1;
        memcpy (grown + session->pending_len, data, len);
        session->pending = grown;
        session->pending_len += len;
    }
    return 0;
}

//  Writes the answer a chunk at a time; when it is out, the next request.
//  Returns -1 to close the connection.
static int
s_write (vw_edge_t *edge, vw_http_session_t *session)
{
    if (session->req && session->req->expect_continue && !session->continue_sent &&
        !session->ready) {
        static const char s_continue[] = "HTTP/1.1 100 Continue\r\n\r\n";
        unsigned char buf[LWS_PRE + sizeof s_continue];
        memcpy (buf + LWS_PRE, s_continue, sizeof s_continue - 1);
        session->continue_sent = true;
        if (lws_write (session->wsi, buf + LWS_PRE, sizeof s_continue - 1, LWS_WRITE_RAW) < 0)
            return -1;
        return 0;
    }
    if (!session->ready)
        return 0;
    size_t n = session->out_len - session->out_off;
    if (n > S_WRITE_CHUNK)
        n = S_WRITE_CHUNK;
    if (n && lws_write (session->wsi, session->out + LWS_PRE + session->out_off, n,
                        LWS_WRITE_RAW) != (int) n)
        return -1;
    session->out_off += n;
    if (session->out_off < session->out_len) {
        s_arm (session, edge->config->http_idle_timeout_ms);  //  it is reading: more time
        lws_callback_on_writable (session->wsi);
        return 0;
    }
    if (session->close_after)
        return -1;
    //  Keep-alive: the next request, perhaps already here.
    s_reset (session);
    lws_rx_flow_control (session->wsi, 1);
    s_arm (session, edge->config->http_idle_timeout_ms);
    if (session->pending_len) {
        char *pending = session->pending;
        size_t len = session->pending_len;
        session->pending = NULL;
        session->pending_len = 0;
        int rc = s_consume (edge, session, pending, len);
        free (pending);
        return rc;
    }
    return 0;
}

static int
s_open (vw_edge_t *edge, struct lws *wsi, vw_http_session_t *session)
{
    memset (session, 0, sizeof *session);
    session->wsi = wsi;
    lws_get_peer_simple (wsi, session->peer, sizeof session->peer);
    vw_httpreq_limits_t limits = {.max_url = (size_t) edge->config->http_max_url,
                                  .max_header = (size_t) edge->config->http_max_header,
                                  .max_body = (size_t) edge->config->http_max_body};
    session->req = vw_httpreq_new (&limits);
    if (!session->req)
        return -1;
    s_arm (session, edge->config->http_idle_timeout_ms);
    return 0;
}

static void
s_close (vw_edge_t *edge, vw_http_session_t *session)
{
    if (!session->wsi)
        return;
    s_disarm (session);
    if (session->probe_id && edge && edge->probe)
        vw_probe_cancel (edge->probe, session->probe_id);
    s_reset (session);
    vw_httpreq_destroy (&session->req);
    free (session->pending);
    session->pending = NULL;
    session->wsi = NULL;
}

int
vw_http_callback (struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len)
{
    vw_http_session_t *session = (vw_http_session_t *) user;
    vw_edge_t *edge = vw_edge_from_wsi (wsi);

    switch (reason) {
        case LWS_CALLBACK_RAW_ADOPT: return s_open (edge, wsi, session);
        case LWS_CALLBACK_RAW_RX:
            if (!session->req || !in)
                return 0;
            if (session->busy && session->close_after)
                return 0;  //  refused: the rest is not read
            //  While a request is answered lws still delivers what it had
            //  buffered; s_consume keeps it for later.
            return s_consume (edge, session, (const char *) in, len);
        case LWS_CALLBACK_RAW_WRITEABLE: return s_write (edge, session);
        case LWS_CALLBACK_RAW_CLOSE: s_close (edge, session); return 0;
        default: break;
    }
    return 0;
}
