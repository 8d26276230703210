/*  vw_http - the HTTP façade (SPEC §6) on the edge's "http" vhost.

    Each connection has one s_session_t (lws per-session data), reused by
    keep-alive requests. A request is routed when its headers (and body, if
    any) are in; the handler either answers at once or starts asynchronous
    work (a probe, later a request to another actor) and answers from the
    reply. Answers are written only from LWS_CALLBACK_HTTP_WRITEABLE: first
    the headers, then the body.

    Every error is {"error":{"code","message"}} with the right status.
*/
#include "vw_clock.h"
#include "vw_edge_int.h"
#include "vw_log.h"

#include <jansson.h>
#include <string.h>

#define S_MAX_BODY (1024 * 1024)

typedef struct {
    int method;                //  LWSHUMETH_*
    char path[512];
    //  request body
    char *req_body;
    size_t req_len;
    bool req_too_large;
    //  response
    bool ready;
    bool headers_sent;
    int status;
    unsigned char *out;        //  LWS_PRE headroom + body
    size_t out_len;
    char allow[64];
    //  asynchronous work
    uint64_t probe_id;
} s_session_t;

typedef void (s_handler_fn) (vw_edge_t *edge, struct lws *wsi, s_session_t *session);

typedef struct {
    int method;
    const char *path;
    s_handler_fn *handler;
} s_route_t;

static const char *s_method_names[] = {"GET", "POST", "OPTIONS", "PUT", "PATCH", "DELETE",
                                       "CONNECT", "HEAD"};

size_t
vw_http_session_size (void)
{
    return sizeof (s_session_t);
}

static void
s_reset (s_session_t *session)
{
    free (session->req_body);
    free (session->out);
    memset (session, 0, sizeof *session);
}

//  Queues an answer; body (a JSON value) is consumed.
static void
s_respond (struct lws *wsi, s_session_t *session, int status, json_t *body)
{
    char *text = body ? json_dumps (body, JSON_COMPACT) : NULL;
    json_decref (body);
    size_t len = text ? strlen (text) : 0;
    session->out = (unsigned char *) malloc (LWS_PRE + len + 1);
    if (session->out && text)
        memcpy (session->out + LWS_PRE, text, len);
    session->out_len = session->out ? len : 0;
    free (text);
    session->status = status;
    session->ready = true;
    lws_callback_on_writable (wsi);
}

static void
s_respond_error (struct lws *wsi, s_session_t *session, int status, const char *code,
                 const char *message)
{
    s_respond (wsi, session, status,
               json_pack ("{s:{s:s, s:s}}", "error", "code", code, "message", message));
}

//  GET /health ---------------------------------------------------------------

static void
s_health_done (void *arg, const vw_probe_result_t *result)
{
    struct lws *wsi = (struct lws *) arg;
    s_session_t *session = (s_session_t *) lws_wsi_user (wsi);
    vw_edge_t *edge = vw_edge_from_wsi (wsi);
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
        if (strcmp (e->name, "store") == 0 && e->up)
            database = e->healthy ? "ok" : "error";
    }
    if (strcmp (database, "ok") != 0)
        ok = false;
    json_t *body = json_pack ("{s:s, s:s, s:I, s:o, s:s}", "status", ok ? "ok" : "degraded",
                              "version", VW_VERSION, "uptime_s",
                              (json_int_t) ((vw_clock_mono_ms () - edge->started_ms) / 1000),
                              "actors", actors, "database", database);
    s_respond (wsi, session, ok ? 200 : 503, body);
}

static void
s_get_health (vw_edge_t *edge, struct lws *wsi, s_session_t *session)
{
    session->probe_id = vw_probe_start (edge->probe, (int) edge->config->health_timeout_ms,
                                        s_health_done, wsi);
    if (!session->probe_id)
        s_respond_error (wsi, session, 500, "internal", "cannot start the health probe");
    vw_edge_kick (edge);
}

//  Routing --------------------------------------------------------------------

static const s_route_t s_routes[] = {
    {LWSHUMETH_GET, "/health", s_get_health},
};
#define S_ROUTES (sizeof s_routes / sizeof s_routes[0])

//  True if `path` matches `pattern`, where a "{name}" segment in the pattern
//  matches one non-empty path segment.
static bool
s_path_matches (const char *pattern, const char *path)
{
    while (*pattern && *path) {
        if (*pattern == '{') {
            while (*pattern && *pattern != '}')
                pattern++;
            if (*pattern)
                pattern++;
            if (*path == '/')
                return false;
            while (*path && *path != '/')
                path++;
            continue;
        }
        if (*pattern++ != *path++)
            return false;
    }
    return *pattern == 0 && *path == 0;
}

static void
s_dispatch (vw_edge_t *edge, struct lws *wsi, s_session_t *session)
{
    const char *method = session->method >= 0 && session->method <= LWSHUMETH_HEAD
                             ? s_method_names[session->method]
                             : "?";
    vw_debug ("edge", "%s %s", method, session->path);
    if (edge->stopping) {
        s_respond_error (wsi, session, 503, "unavailable", "the server is shutting down");
        return;
    }
    if (session->req_too_large) {
        s_respond_error (wsi, session, 413, "payload_too_large",
                         "the request body is larger than 1 MiB");
        return;
    }
    char allow[64] = "";
    for (size_t i = 0; i < S_ROUTES; i++) {
        if (!s_path_matches (s_routes[i].path, session->path))
            continue;
        if (s_routes[i].method == session->method) {
            s_routes[i].handler (edge, wsi, session);
            return;
        }
        size_t n = strlen (allow);
        snprintf (allow + n, sizeof allow - n, "%s%s", n ? ", " : "",
                  s_method_names[s_routes[i].method]);
    }
    char message[700];
    if (*allow) {
        snprintf (session->allow, sizeof session->allow, "%s", allow);
        snprintf (message, sizeof message, "%s is not allowed on %s (allowed: %s)", method,
                  session->path, allow);
        s_respond_error (wsi, session, 405, "method_not_allowed", message);
    }
    else {
        snprintf (message, sizeof message, "no resource at %s", session->path);
        s_respond_error (wsi, session, 404, "not_found", message);
    }
}

//  Writes the headers, then (on the next writeable callback) the body.
//  Returns -1 to close the connection.
static int
s_write (struct lws *wsi, s_session_t *session)
{
    if (!session->ready)
        return 0;
    if (!session->headers_sent) {
        unsigned char buf[LWS_PRE + 1024];
        unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
        if (lws_add_http_common_headers (wsi, (unsigned int) session->status, "application/json",
                                         session->out_len, &p, end))
            return -1;
        if (*session->allow
            && lws_add_http_header_by_name (wsi, (const unsigned char *) "allow:",
                                            (const unsigned char *) session->allow,
                                            (int) strlen (session->allow), &p, end))
            return -1;
        if (lws_add_http_header_by_name (wsi, (const unsigned char *) "cache-control:",
                                         (const unsigned char *) "no-store", 8, &p, end))
            return -1;
        if (lws_finalize_write_http_header (wsi, start, &p, end))
            return -1;
        session->headers_sent = true;
        if (session->out_len) {
            lws_callback_on_writable (wsi);
            return 0;
        }
    }
    else if (session->out_len
             && lws_write (wsi, session->out + LWS_PRE, session->out_len, LWS_WRITE_HTTP_FINAL)
                    != (int) session->out_len)
        return -1;
    s_reset (session);
    //  Keep-alive: wait for the next request, or close.
    return lws_http_transaction_completed (wsi) ? -1 : 0;
}

int
vw_http_callback (struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len)
{
    s_session_t *session = (s_session_t *) user;
    vw_edge_t *edge = vw_edge_from_wsi (wsi);

    switch (reason) {
        case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
            return 1;   //  no WebSocket upgrades here: agents use the ws port
        case LWS_CALLBACK_HTTP: {
            s_reset (session);
            char *uri = NULL;
            int uri_len = 0;
            session->method = lws_http_get_uri_and_method (wsi, &uri, &uri_len);
            snprintf (session->path, sizeof session->path, "%.*s", (int) len, (const char *) in);
            //  A request with a body is routed once the body is complete.
            if (lws_hdr_total_length (wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0
                && (session->method == LWSHUMETH_POST || session->method == LWSHUMETH_PUT
                    || session->method == LWSHUMETH_PATCH))
                return 0;
            s_dispatch (edge, wsi, session);
            return 0;
        }
        case LWS_CALLBACK_HTTP_BODY:
            if (session->req_too_large || session->req_len + len > S_MAX_BODY) {
                session->req_too_large = true;
                return 0;
            }
            {
                char *grown = (char *) realloc (session->req_body, session->req_len + len + 1);
                if (!grown)
                    return -1;
                memcpy (grown + session->req_len, in, len);
                session->req_body = grown;
                session->req_len += len;
                grown[session->req_len] = 0;
            }
            return 0;
        case LWS_CALLBACK_HTTP_BODY_COMPLETION:
            s_dispatch (edge, wsi, session);
            return 0;
        case LWS_CALLBACK_HTTP_WRITEABLE:
            return s_write (wsi, session);
        case LWS_CALLBACK_CLOSED_HTTP:
        case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
            if (session) {
                if (session->probe_id && edge && edge->probe)
                    vw_probe_cancel (edge->probe, session->probe_id);
                s_reset (session);
            }
            return 0;
        default: break;
    }
    return lws_callback_http_dummy (wsi, reason, user, in, len);
}
