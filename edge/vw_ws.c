/*  vw_ws - the agent WebSocket (SPEC §3) on the edge's "ws" vhost.

    One vw_ws_conn_t per agent connection (the lws per-session data). Frames
    are reassembled up to ws.max_frame (beyond: close 1009), decoded with
    vw_wire in the connection's subprotocol format, and answered through a
    per-connection output queue written only from
    LWS_CALLBACK_SERVER_WRITEABLE. A close is queued like a frame: the
    queue drains, then the close frame carries the code and reason; a
    connection that has not taken both within S_GIVE_UP_GRACE_S is cut.

    Back-pressure. The output queue (vw_outq) holds at most ws.out_max
    bytes: an agent that does not read what it is sent while more comes
    (commands, error frames for what it sends) would otherwise grow the
    server without limit. When a frame would pass the bound, the queue is
    dropped, the overflow is logged and counted, and the connection is
    closed with 1008; if the close frame cannot be written (the agent still
    does not read) the connection is cut S_GIVE_UP_GRACE_S later. Commands
    that were in flight on it go back to the queue when the session ends
    (session_closed), as for any disconnect. A failed allocation closes
    with 1013 the same way instead of dropping a frame. In the other
    direction, when the broker refuses a message for the registry or the
    executor (actor_busy) or the edge's own socket cannot take one, the edge
    stops reading from every agent connection (lws_rx_flow_control) for
    S_BUSY_PAUSE_MS, and again while refusals continue: the agents' frames
    wait in their TCP windows instead of being dropped.

    Handshake: a valid hello goes to the registry as session_hello with the
    connection's id; the registry answers session_welcome, session_reject
    (error frame + close 4401/4400/1013) or session_challenge (the agent
    must answer with `auth`). Before the welcome any other frame gets an
    error frame and close 4400, as does silence for 10 s. After the welcome
    a bad frame gets an error frame and the connection stays open;
    heartbeats (and, at most once a second, any other frame) are reported
    to the registry as session_seen, held briefly and sent together
    (s_send_seen). The registry can close a session
    (session_kick: 4409 replaced, 4401 revoked, 4408 silent, 4000 operator).

    Connection attempts are rate-limited per source address (SPEC §6).
*/
#include "vw_broker.h"
#include "vw_clock.h"
#include "vw_edge_int.h"
#include "vw_log.h"
#include "vw_outq.h"
#include "vw_points.h"
#include "vw_wire.h"

#include <sodium.h>
#include <string.h>

#define S_HELLO_DEADLINE_MS 10000
#define S_AGENT_PATH        "/ws/agent"
//  A connection being closed gets this long to take what is queued and the
//  close frame; then it is cut (an agent that does not read would otherwise
//  keep it open).
#define S_GIVE_UP_GRACE_S 5
//  How long reading stops when the broker refuses what agents feed it.
#define S_BUSY_PAUSE_MS 100
//  At most one warning about busy actors this often.
#define S_BUSY_LOG_MS 10000
//  lws 4.1 writes a close frame for this opcode (lws_write's slot 4, kept
//  out of the public enum, which "is part of the abi", for lws_close_reason).
#define S_LWS_WRITE_CLOSE ((enum lws_write_protocol) 4)

struct vw_ws_conn_t {
    int64_t id;  //  key in edge->conns, named in session_* messages
    struct lws *wsi;
    vw_edge_t *edge;
    char *agent_id;       //  once a hello went to the registry
    char session_id[40];  //  once welcomed
    bool hello_sent;
    bool hello_waiting;  //  the registry has not answered the hello yet
    bool challenged;
    int64_t last_report_ms;     //  last session_seen for a non-heartbeat frame
    vw_ws_conn_t *prev, *next;  //  the edge's list of sessions
    vw_wire_format_t format;
    char peer[64];
    //  incoming frame being reassembled
    unsigned char *rx;
    size_t rx_len;
    //  outgoing frames, then the close
    vw_outq_t *out;
    bool discard;    //  given up on (overflow): queue nothing more
    int close_code;  //  0 = none queued
    char close_reason[64];
    uint64_t hello_timer;
};

size_t
vw_ws_session_size (void)
{
    return sizeof (vw_ws_conn_t);
}

//  Gives up on a connection whose output cannot be queued: what waits is
//  dropped, nothing more is queued, the close goes out if the agent ever
//  reads again, and the connection is cut S_GIVE_UP_GRACE_S later if not.
static void
s_give_up (vw_ws_conn_t *conn, int code, const char *reason)
{
    vw_outq_clear (conn->out);
    conn->discard = true;
    if (!conn->close_code) {
        conn->close_code = code;
        snprintf (conn->close_reason, sizeof conn->close_reason, "%s", reason);
    }
    lws_callback_on_writable (conn->wsi);
    lws_set_timeout (conn->wsi, PENDING_TIMEOUT_CLOSE_SEND, S_GIVE_UP_GRACE_S);
    vw_edge_wake_lws_in (conn->edge, S_GIVE_UP_GRACE_S * 1000 + 10);
}

static void
s_queue_frame (vw_ws_conn_t *conn, const uint8_t *data, size_t len, bool binary)
{
    if (conn->discard)
        return;
    size_t queued = vw_outq_bytes (conn->out), frames = vw_outq_size (conn->out);
    int rc = vw_outq_push (conn->out, data, len, binary);
    if (rc == 0) {
        lws_callback_on_writable (conn->wsi);
        return;
    }
    vw_edge_t *edge = conn->edge;
    const char *agent = conn->agent_id ? conn->agent_id : "-";
    if (rc == VW_OUTQ_FULL) {
        edge->ws_overflows++;
        vw_warn ("edge",
                 "agent '%s' from %s does not read: %zu bytes in %zu frames queued, %zu more "
                 "would pass ws.out_max (%zu); closing with 1008 (%llu closed so far)",
                 agent, conn->peer, queued, frames, len, vw_outq_max (conn->out),
                 (unsigned long long) edge->ws_overflows);
        s_give_up (conn, 1008, "output queue overflow: not reading");
    }
    else {
        edge->ws_out_nomem++;
        vw_error ("edge", "out of memory queueing %zu bytes for agent '%s'; closing with 1013", len,
                  agent);
        s_give_up (conn, 1013, "server out of memory");
    }
}

//  Sends a protocol message (consumed) in the connection's format.
static void
s_send (vw_ws_conn_t *conn, json_t *message)
{
    uint8_t *data = NULL;
    size_t size = 0;
    if (!message) {
        if (!conn->discard) {
            conn->edge->ws_out_nomem++;
            vw_error ("edge", "out of memory building a frame for agent '%s'; closing with 1013",
                      conn->agent_id ? conn->agent_id : "-");
            s_give_up (conn, 1013, "server out of memory");
        }
        return;
    }
    if (vw_wire_serialize (conn->format, message, &data, &size) == 0)
        s_queue_frame (conn, data, size, conn->format == VW_WIRE_MSGPACK);
    else if (!conn->discard) {
        conn->edge->ws_out_nomem++;
        vw_error ("edge", "cannot encode a '%s' frame for agent '%s'; closing with 1013",
                  json_string_value (json_object_get (message, "type")),
                  conn->agent_id ? conn->agent_id : "-");
        s_give_up (conn, 1013, "server out of memory");
    }
    free (data);
    json_decref (message);
}

//  Agents' frames feed the registry and the executor; when either (or the
//  edge's own socket) refuses, stop reading from every agent for a while.
static void
s_rx_flow_all (vw_edge_t *edge, int enable)
{
    for (vw_ws_conn_t *conn = edge->ws_conns; conn; conn = conn->next)
        lws_rx_flow_control (conn->wsi, enable);
}

static void
s_on_resume (void *arg, uint64_t id)
{
    vw_edge_t *edge = (vw_edge_t *) arg;
    int64_t left = edge->ws_resume_ms - vw_clock_mono_ms ();
    if (left > 0 && !edge->stopping) {
        vw_timers_add (vw_actor_timers (edge->actor), left, s_on_resume, edge);
        return;
    }
    edge->ws_rx_paused = false;
    s_rx_flow_all (edge, 1);
    //  lws serves what it buffered for paused connections from its own
    //  idle watcher, which only its own events start (lws 4.1 on libev):
    //  this timer is ours, so ring it.
    lws_cancel_service (edge->context);
    vw_debug ("edge", "reading from agents resumed");
}

static void
s_pause_reading (vw_edge_t *edge, const char *busy)
{
    int64_t now = vw_clock_mono_ms ();
    edge->ws_resume_ms = now + S_BUSY_PAUSE_MS;
    if (edge->ws_rx_paused || edge->stopping)
        return;
    edge->ws_rx_paused = true;
    edge->ws_rx_pauses++;
    s_rx_flow_all (edge, 0);
    vw_timers_add (vw_actor_timers (edge->actor), S_BUSY_PAUSE_MS, s_on_resume, edge);
    if (!edge->ws_busy_logged_ms || now - edge->ws_busy_logged_ms >= S_BUSY_LOG_MS) {
        edge->ws_busy_logged_ms = now;
        vw_warn ("edge",
                 "%s is not keeping up: reading from %d agent connection(s) paused for %d ms "
                 "(%llu pauses so far)",
                 busy, edge->ws_count, S_BUSY_PAUSE_MS, (unsigned long long) edge->ws_rx_pauses);
    }
}

//  The edge's own socket refused a send since we last looked: the broker
//  itself is behind.
static void
s_check_send_failures (vw_edge_t *edge)
{
    uint64_t failures = vw_actor_send_failures (edge->actor);
    if (failures != edge->ws_send_failures) {
        edge->ws_send_failures = failures;
        s_pause_reading (edge, "the broker");
    }
}

bool
vw_ws_on_refused (vw_edge_t *self, vw_msg_t *msg)
{
    const char *code = msg->error.code, *target = msg->error.target;
    //  Only the broker says who is busy.
    if (!self->ws_vhost || strcmp (msg->peer, VW_BROKER_ADDRESS) != 0 || !code ||
        strcmp (code, "actor_busy") != 0 || !target ||
        (strcmp (target, "registry") != 0 && strcmp (target, "executor") != 0 &&
         strcmp (target, "telemetry") != 0))
        return false;
    char busy[64];
    snprintf (busy, sizeof busy, "the %s", target);
    s_pause_reading (self, busy);
    return true;
}

void
vw_ws_metrics (vw_edge_t *self, vw_prom_t *p)
{
    vw_prom_one (p, "viworks_agent_connections", "gauge",
                 "WebSocket connections this edge holds (welcomed or not yet).",
                 (double) self->ws_count);
    vw_prom_one (p, "viworks_agent_hellos_waiting", "gauge",
                 "Hellos waiting for the registry (admission: ws.max_pending_hellos).",
                 (double) self->ws_hellos_waiting);
    vw_prom_family (p, "viworks_agent_closed_total", "counter",
                    "Agent connections the edge closed, by reason (admission: 1013 with "
                    "retry_after_ms; slow_reader: 1008, ws.out_max; no_memory: 1013).");
    vw_prom_sample (p, "viworks_agent_closed_total", "reason", "admission",
                    (double) self->ws_hellos_refused);
    vw_prom_sample (p, "viworks_agent_closed_total", "reason", "slow_reader",
                    (double) self->ws_overflows);
    vw_prom_sample (p, "viworks_agent_closed_total", "reason", "no_memory",
                    (double) self->ws_out_nomem);
    vw_prom_one (p, "viworks_agent_read_pauses_total", "counter",
                 "Times the edge stopped reading from agents while an actor was busy.",
                 (double) self->ws_rx_pauses);
}

void
vw_ws_health (vw_edge_t *self, char *detail, size_t len)
{
    snprintf (detail, len,
              "%d agent connection(s), %d hello(s) waiting, %llu refused (1013, "
              "ws.max_pending_hellos); %llu closed for not reading (ws.out_max), %llu for lack of "
              "memory; reading paused %llu time(s) (busy actors)%s",
              self->ws_count, self->ws_hellos_waiting, (unsigned long long) self->ws_hellos_refused,
              (unsigned long long) self->ws_overflows, (unsigned long long) self->ws_out_nomem,
              (unsigned long long) self->ws_rx_pauses, self->ws_rx_paused ? "; paused now" : "");
}

static void
s_close (vw_ws_conn_t *conn, int code, const char *reason)
{
    if (conn->close_code)
        return;
    conn->close_code = code;
    snprintf (conn->close_reason, sizeof conn->close_reason, "%s", reason);
    lws_callback_on_writable (conn->wsi);
    //  While stopping, the edge's own deadline ends every connection: a
    //  timeout each would cost an insertion into lws 4.1's sorted timer
    //  list, O(connections) each (10,000 agents took over a second).
    if (conn->edge->stopping)
        return;
    lws_set_timeout (conn->wsi, PENDING_TIMEOUT_CLOSE_SEND, S_GIVE_UP_GRACE_S);
    vw_edge_wake_lws_in (conn->edge, S_GIVE_UP_GRACE_S * 1000 + 10);
}

static void
s_on_hello_deadline (void *arg, uint64_t id)
{
    vw_ws_conn_t *conn = (vw_ws_conn_t *) arg;
    conn->hello_timer = 0;
    if (*conn->session_id)
        return;
    s_send (conn, vw_wire_error ("hello_timeout", "no hello within 10 s"));
    s_close (conn, 4400, "hello timeout");
}

static void
s_to_registry (vw_ws_conn_t *conn, vw_msg_t **msg_p)
{
    if (vw_actor_send (conn->edge->actor, "registry", msg_p))
        vw_msg_destroy (msg_p);
}

//  A connection's end, told to the registry (it forgets a pending hello or
//  ends the session) and, for a session, to the executor (what was in
//  flight on it is lost).
static void
s_report_closed (vw_edge_t *edge, int64_t conn_id, const char *agent_id, const char *session_id)
{
    for (int i = session_id ? 0 : 1; i < 2; i++) {
        vw_msg_t *closed = vw_msg_new (VW_MSG_ID_session_closed);
        closed->session_closed.conn = conn_id;
        vw_msg_set_str (&closed->session_closed.agent_id, agent_id);
        vw_msg_set_str (&closed->session_closed.session_id, session_id);
        if (vw_actor_send (edge->actor, i ? "registry" : "executor", &closed))
            vw_msg_destroy (&closed);
    }
}

static char *
s_json_text (json_t *value)
{
    return value ? json_dumps (value, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

static void
s_send_hello (vw_ws_conn_t *conn, vw_wire_msg_t *msg)
{
    vw_msg_t *hello = vw_msg_new (VW_MSG_ID_session_hello);
    vw_session_hello_msg_t *h = &hello->session_hello;
    h->conn = conn->id;
    vw_msg_set_str (&h->agent_id, msg->agent_id);
    vw_msg_set_str (&h->token, msg->token);
    vw_msg_set_str (&h->version, msg->version);
    vw_msg_set_str (&h->hostname, msg->hostname);
    h->capabilities = s_json_text (msg->capabilities);
    h->labels = s_json_text (msg->labels);
    vw_msg_set_str (&h->peer, conn->peer);
    conn->agent_id = strdup (msg->agent_id);
    conn->hello_sent = true;
    s_to_registry (conn, &hello);
}

//  Heard-from reports (session_seen) wait a little and go to the registry
//  together: a fleet's heartbeats arrive spread over the interval, one per
//  loop pass, and each sent alone would wake the broker and the registry
//  (thread switches were most of the cost of holding idle agents). The wait
//  is a twentieth of the heartbeat interval, at most 250 ms: agents send a
//  tenth early, so a heartbeat still reaches the registry before its
//  deadline.
#define S_SEEN_DELAY_MAX_MS 250

static void
s_flush_seen (vw_edge_t *edge)
{
    if (edge->seen_timer) {
        vw_timers_cancel (vw_actor_timers (edge->actor), edge->seen_timer);
        edge->seen_timer = 0;
    }
    vw_msg_t *seen;
    while ((seen = (vw_msg_t *) zlistx_detach (edge->seen, NULL)))
        if (vw_actor_send (edge->actor, "registry", &seen))
            vw_msg_destroy (&seen);
}

static void
s_on_seen_due (void *arg, uint64_t id)
{
    vw_edge_t *edge = (vw_edge_t *) arg;
    edge->seen_timer = 0;
    s_flush_seen (edge);
}

static void
s_send_seen (vw_ws_conn_t *conn, const char *status)
{
    vw_edge_t *edge = conn->edge;
    vw_msg_t *seen = vw_msg_new (VW_MSG_ID_session_seen);
    vw_msg_set_str (&seen->session_seen.agent_id, conn->agent_id);
    vw_msg_set_str (&seen->session_seen.session_id, conn->session_id);
    vw_msg_set_str (&seen->session_seen.status, status);
    conn->last_report_ms = vw_clock_mono_ms ();
    zlistx_add_end (edge->seen, seen);
    if (!edge->seen_timer) {
        int64_t delay = edge->config->heartbeat_interval_ms / 20;
        if (delay > S_SEEN_DELAY_MAX_MS)
            delay = S_SEEN_DELAY_MAX_MS;
        edge->seen_timer = vw_timers_add (vw_actor_timers (edge->actor), delay > 0 ? delay : 1,
                                          s_on_seen_due, edge);
    }
}

//  An agent's word on a command goes to the executor, which knows whether
//  that command is in flight on this session.
static void
s_command_event (vw_ws_conn_t *conn, vw_wire_msg_t *msg)
{
    vw_msg_t *event = vw_msg_new (VW_MSG_ID_command_event);
    vw_command_event_msg_t *e = &event->command_event;
    e->conn = conn->id;
    vw_msg_set_str (&e->agent_id, conn->agent_id);
    vw_msg_set_str (&e->command_id, msg->command_id);
    vw_msg_set_str (&e->kind, msg->type == VW_WIRE_COMMAND_ACK        ? "ack"
                              : msg->type == VW_WIRE_COMMAND_PROGRESS ? "progress"
                                                                      : "result");
    vw_msg_set_str (&e->status, msg->status);
    vw_msg_set_str (&e->error, msg->error);
    e->progress = msg->progress;
    if (msg->type == VW_WIRE_COMMAND_PROGRESS)
        vw_msg_set_str (&e->message, msg->message);
    e->attempt = msg->attempt;
    if (msg->result)
        e->result = json_dumps (msg->result, JSON_COMPACT | JSON_ENCODE_ANY);
    if (vw_actor_send (conn->edge->actor, "executor", &event))
        vw_msg_destroy (&event);
}

//  --------------------------------------------------------------------------
//  Admission. After a restart a whole fleet says hello at once; each hello
//  costs the registry a credential check (and the store a read when the
//  agent is not in memory). An edge keeps at most ws.max_pending_hellos
//  waiting for the registry; the next ones are refused at once with
//  `error unavailable`, a retry_after_ms, and close 1013. The delay spreads
//  the refused agents over the time the edge needs to admit them at the
//  rate it answered lately, jittered so that they do not come back together.

#define S_RETRY_MIN_MS   250
#define S_RETRY_SPAN_MIN 1000
#define S_RETRY_SPAN_MAX 30000

static void
s_admission_window (vw_edge_t *edge)
{
    int64_t second = vw_clock_mono_ms () / 1000;
    if (second == edge->ws_window_s)
        return;
    if (edge->ws_window_refused)
        vw_info ("edge",
                 "reconnect storm: %u hello(s) refused with 1013 in the last second, %u answered, "
                 "%d waiting for the registry",
                 edge->ws_window_refused, edge->ws_window_answered, edge->ws_hellos_waiting);
    bool adjacent = second == edge->ws_window_s + 1;
    edge->ws_prev_answered = adjacent ? edge->ws_window_answered : 0;
    edge->ws_prev_refused = adjacent ? edge->ws_window_refused : 0;
    edge->ws_window_answered = edge->ws_window_refused = 0;
    edge->ws_window_s = second;
}

//  When a refused agent should come back: uniform in [S_RETRY_MIN_MS,
//  S_RETRY_MIN_MS + span], span the time to answer the agents refused in
//  the last two seconds at the rate hellos were answered meanwhile.
static int64_t
s_retry_after_ms (vw_edge_t *edge)
{
    uint64_t refused = (uint64_t) edge->ws_prev_refused + edge->ws_window_refused;
    uint64_t answered = (uint64_t) edge->ws_prev_answered + edge->ws_window_answered;
    if (answered < 100)
        answered = 100;  //  a slow start is not a verdict on the rate
    uint64_t span = refused * 2000 / answered;
    if (span < S_RETRY_SPAN_MIN)
        span = S_RETRY_SPAN_MIN;
    if (span > S_RETRY_SPAN_MAX)
        span = S_RETRY_SPAN_MAX;
    return S_RETRY_MIN_MS + (int64_t) randombytes_uniform ((uint32_t) span + 1);
}

//  The registry answered the hello (or never will: the connection is gone).
static void
s_hello_done (vw_ws_conn_t *conn, bool answered)
{
    if (!conn->hello_waiting || !conn->edge)
        return;
    conn->hello_waiting = false;
    conn->edge->ws_hellos_waiting--;
    s_admission_window (conn->edge);
    if (answered)
        conn->edge->ws_window_answered++;
}

//  true when the hello may go to the registry; otherwise the agent has
//  been told to come back later.
static bool
s_admit_hello (vw_ws_conn_t *conn)
{
    vw_edge_t *edge = conn->edge;
    s_admission_window (edge);
    if (edge->ws_hellos_waiting < edge->config->ws_max_pending_hellos) {
        conn->hello_waiting = true;
        edge->ws_hellos_waiting++;
        return true;
    }
    edge->ws_window_refused++;
    edge->ws_hellos_refused++;
    s_send (conn, vw_wire_error_retry ("unavailable",
                                       "the backend is busy admitting other agents; try again "
                                       "after retry_after_ms",
                                       s_retry_after_ms (edge)));
    s_close (conn, 1013, "try again later");
    return false;
}

//  --------------------------------------------------------------------------
//  Telemetry. A valid frame is packed once (vw_points) and goes to the
//  telemetry actor; the agent's telemetry_ack comes back from it once the
//  frame is durable. A refusal names the frame's seq, so the agent knows
//  which one not to send again (invalid) or to send again later
//  (unavailable, with retry_after_ms).

static json_t *
s_error_frame (const char *code, const char *message, int64_t seq)
{
    json_t *error =
        strcmp (code, "unavailable") == 0
            ? vw_wire_error_retry (code, message, 1000 + (int64_t) randombytes_uniform (1001))
            : vw_wire_error (code, message);
    if (error && seq >= 0)
        json_object_set_new (error, "seq", json_integer (seq));
    return error;
}

static void
s_telemetry (vw_ws_conn_t *conn, vw_wire_msg_t *msg)
{
    vw_edge_t *edge = conn->edge;
    if (!vw_actor_link_up (edge->actor)) {
        //  Nothing could store it now: the agent keeps it and sends it again.
        s_send (conn, s_error_frame ("unavailable", "the core is unreachable", msg->seq));
        return;
    }
    int64_t now = vw_clock_wall_ms ();
    int64_t oldest = now - edge->config->telemetry_retention_ms;
    int64_t newest = now + edge->config->telemetry_max_future_ms;
    size_t index;
    json_t *point;
    json_array_foreach (msg->points, index, point)
    {
        int64_t ts = json_integer_value (json_object_get (point, "ts"));
        if (ts < oldest || ts > newest) {
            char message[200];
            snprintf (message, sizeof message,
                      "points[%zu].ts %lld is %s: points must be within the retention (%lld ms) "
                      "and at most %lld ms ahead of the server's clock (%lld)",
                      index, (long long) ts, ts < oldest ? "too old" : "in the future",
                      (long long) edge->config->telemetry_retention_ms,
                      (long long) edge->config->telemetry_max_future_ms, (long long) now);
            s_send (conn, s_error_frame ("invalid_message", message, msg->seq));
            return;
        }
    }
    uint8_t *packed;
    size_t size;
    vw_points_info_t info;
    if (vw_points_pack (msg->points, &packed, &size, &info)) {
        s_send (conn, s_error_frame ("unavailable", "server out of memory", msg->seq));
        return;
    }
    vw_msg_t *frame = vw_msg_new (VW_MSG_ID_telemetry_frame);
    frame->telemetry_frame.conn = conn->id;
    vw_msg_set_str (&frame->telemetry_frame.agent_id, conn->agent_id);
    frame->telemetry_frame.seq = msg->seq;
    frame->telemetry_frame.points.data = packed;
    frame->telemetry_frame.points.size = size;
    if (vw_actor_send (edge->actor, "telemetry", &frame))
        vw_msg_destroy (&frame);
}

void
vw_ws_on_telemetry_acked (vw_edge_t *self, vw_msg_t *msg)
{
    vw_telemetry_acked_msg_t *a = &msg->telemetry_acked;
    int64_t id = a->conn;
    vw_ws_conn_t *conn = (vw_ws_conn_t *) zhashx_lookup (self->conns, &id);
    //  A connection that closed meanwhile: its agent sends the frame again
    //  on its next session and is acked then.
    if (!conn || !*conn->session_id || conn->close_code)
        return;
    if (a->stored)
        s_send (conn, vw_wire_telemetry_ack (a->seq));
    else
        s_send (conn, s_error_frame (a->code ? a->code : "unavailable",
                                     a->message ? a->message : "not stored", a->seq));
}

//  Where an agent's connection comes from: the peer, or behind a trusted
//  proxy (http.trusted_proxies) the client its X-Forwarded-For names.
static void
s_source (vw_edge_t *edge, struct lws *wsi, char *out, size_t len)
{
    char peer[64] = "";
    lws_get_peer_simple (wsi, peer, sizeof peer);
    char forwarded[512] = "";
    if (edge->proxies &&
        lws_hdr_copy (wsi, forwarded, sizeof forwarded, WSI_TOKEN_X_FORWARDED_FOR) > 0)
        vw_proxies_source (edge->proxies, peer, forwarded, out, len);
    else
        snprintf (out, len, "%s", peer);
}

static void s_refuse_core_lost (vw_ws_conn_t *conn);

//  A frame before the welcome: only a hello (or, when challenged, an auth).
static void
s_on_first_frames (vw_ws_conn_t *conn, int rc, vw_wire_msg_t *msg, vw_wire_error_t *err)
{
    if (rc == 0 && conn->challenged && msg->type == VW_WIRE_AUTH) {
        vw_msg_t *auth = vw_msg_new (VW_MSG_ID_session_auth);
        auth->session_auth.conn = conn->id;
        vw_msg_set_str (&auth->session_auth.agent_id, conn->agent_id);
        vw_msg_set_str (&auth->session_auth.signature, msg->signature);
        conn->challenged = false;
        s_to_registry (conn, &auth);
        return;
    }
    if (rc == 0 && msg->type == VW_WIRE_HELLO && !conn->hello_sent) {
        if (!vw_actor_link_up (conn->edge->actor))
            s_refuse_core_lost (conn);
        else if (s_admit_hello (conn))
            s_send_hello (conn, msg);
        return;
    }
    if (rc == 0) {
        snprintf (err->code, sizeof err->code, "invalid_message");
        snprintf (err->message, sizeof err->message, "%s",
                  conn->hello_sent ? "wait for the welcome before sending anything else"
                                   : "the first message must be a hello");
    }
    s_send (conn, vw_wire_error (err->code, err->message));
    s_close (conn, 4400, "bad hello");
}

static void
s_on_frame (vw_ws_conn_t *conn, bool binary)
{
    vw_wire_msg_t msg;
    vw_wire_error_t err;
    memset (&msg, 0, sizeof msg);
    bool wrong_kind = binary != (conn->format == VW_WIRE_MSGPACK);
    int rc = wrong_kind ? -1 : vw_wire_decode (conn->format, conn->rx, conn->rx_len, &msg, &err);
    if (wrong_kind) {
        err.seq = -1;
        snprintf (err.code, sizeof err.code, "malformed");
        snprintf (err.message, sizeof err.message, "%s frames carry %s",
                  conn->format == VW_WIRE_MSGPACK ? VW_WIRE_SUBPROTO_MSGPACK
                                                  : VW_WIRE_SUBPROTO_JSON,
                  conn->format == VW_WIRE_MSGPACK ? "binary msgpack" : "text JSON");
    }
    if (!*conn->session_id)
        s_on_first_frames (conn, rc, &msg, &err);
    else if (rc)
        s_send (conn, s_error_frame (err.code, err.message, err.seq));
    else if (msg.type == VW_WIRE_HEARTBEAT)
        s_send_seen (conn, msg.status ? msg.status : "online");
    else {
        //  Any frame proves the agent alive; tell the registry at most once
        //  a second so a telemetry stream does not become a message storm.
        if (vw_clock_mono_ms () - conn->last_report_ms >= 1000)
            s_send_seen (conn, NULL);
        if (msg.type == VW_WIRE_HELLO || msg.type == VW_WIRE_AUTH)
            s_send (conn, vw_wire_error ("invalid_message", "this session is already welcomed"));
        else if (msg.type == VW_WIRE_COMMAND_ACK || msg.type == VW_WIRE_COMMAND_PROGRESS ||
                 msg.type == VW_WIRE_COMMAND_RESULT)
            s_command_event (conn, &msg);
        else if (msg.type == VW_WIRE_TELEMETRY)
            s_telemetry (conn, &msg);
        else
            s_send (conn,
                    vw_wire_error ("invalid_message", "agents do not send this message type"));
    }
    vw_wire_msg_reset (&msg);
}

static void
s_unlink (vw_ws_conn_t *conn)
{
    vw_edge_t *edge = conn->edge;
    if (!edge)
        return;
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        edge->ws_conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    edge->ws_count--;
    zhashx_delete (edge->conns, &conn->id);
    conn->edge = NULL;
}

static void
s_free (vw_ws_conn_t *conn)
{
    s_hello_done (conn, false);
    if (conn->edge && conn->agent_id)
        s_report_closed (conn->edge, conn->id, conn->agent_id,
                         *conn->session_id ? conn->session_id : NULL);
    free (conn->agent_id);
    conn->agent_id = NULL;
    if (conn->edge && conn->hello_timer)
        vw_timers_cancel (vw_actor_timers (conn->edge->actor), conn->hello_timer);
    s_unlink (conn);
    vw_outq_destroy (&conn->out);
    free (conn->rx);
    conn->rx = NULL;
}

void
vw_ws_on_registry (vw_edge_t *self, vw_msg_t *msg)
{
    int64_t id = 0;
    switch (msg->id) {
        case VW_MSG_ID_session_welcome: id = msg->session_welcome.conn; break;
        case VW_MSG_ID_session_reject: id = msg->session_reject.conn; break;
        case VW_MSG_ID_session_challenge: id = msg->session_challenge.conn; break;
        case VW_MSG_ID_session_kick: id = msg->session_kick.conn; break;
        default: return;
    }
    vw_ws_conn_t *conn = (vw_ws_conn_t *) zhashx_lookup (self->conns, &id);
    if (conn && msg->id != VW_MSG_ID_session_kick)
        s_hello_done (conn, true);
    if (msg->id == VW_MSG_ID_session_welcome && (!conn || conn->close_code)) {
        //  The connection closed while its welcome was on the way: the
        //  session the registry just opened is already over. Say which, so
        //  it ends now and not after three silent intervals (a closing
        //  connection says it when it is freed).
        const vw_session_welcome_msg_t *w = &msg->session_welcome;
        if (conn)
            snprintf (conn->session_id, sizeof conn->session_id, "%s", w->session_id);
        else if (w->agent_id && w->session_id)
            s_report_closed (self, id, w->agent_id, w->session_id);
        return;
    }
    if (!conn || conn->close_code)
        return;  //  gone or closing already
    if (msg->id == VW_MSG_ID_session_welcome) {
        const vw_session_welcome_msg_t *w = &msg->session_welcome;
        snprintf (conn->session_id, sizeof conn->session_id, "%s", w->session_id);
        if (conn->hello_timer)
            vw_timers_cancel (vw_actor_timers (self->actor), conn->hello_timer);
        conn->hello_timer = 0;
        s_send (conn,
                vw_wire_welcome (w->session_id, w->heartbeat_interval_ms, vw_clock_wall_ms ()));
    }
    else if (msg->id == VW_MSG_ID_session_reject) {
        const vw_session_reject_msg_t *r = &msg->session_reject;
        s_send (conn, vw_wire_error (r->code ? r->code : "unauthorized",
                                     r->message ? r->message : "refused"));
        s_close (conn, r->close_code ? (int) r->close_code : 4401,
                 r->code ? r->code : "unauthorized");
    }
    else if (msg->id == VW_MSG_ID_session_challenge) {
        conn->challenged = true;
        s_send (conn, vw_wire_challenge (msg->session_challenge.nonce));
    }
    else {
        const vw_session_kick_msg_t *k = &msg->session_kick;
        //  Only the session it names: a newer one on this connection stays.
        if (k->session_id && strcmp (k->session_id, conn->session_id) != 0)
            return;
        s_close (conn, (int) k->close_code, k->reason ? k->reason : "closed");
    }
}

void
vw_ws_on_command_send (vw_edge_t *self, vw_msg_t *msg)
{
    vw_command_send_msg_t *c = &msg->command_send;
    int64_t id = c->conn;
    vw_ws_conn_t *conn = (vw_ws_conn_t *) zhashx_lookup (self->conns, &id);
    bool cancel = !c->type;
    //  A connection id names a session only while it lives, and only in this
    //  process: a command meant for another agent (an id from before a
    //  restart, or another edge's) is never written here.
    if (conn && c->agent_id && (!conn->agent_id || strcmp (conn->agent_id, c->agent_id) != 0)) {
        vw_warn ("edge", "command %s for '%s' not written to connection %lld, which is '%s'",
                 c->command_id ? c->command_id : "?", c->agent_id, (long long) id,
                 conn->agent_id ? conn->agent_id : "-");
        conn = NULL;
    }
    if (!conn || !*conn->session_id || conn->close_code) {
        if (!cancel) {
            //  The session is gone: the attempt never left.
            vw_msg_t *event = vw_msg_new (VW_MSG_ID_command_event);
            event->command_event.conn = id;
            vw_msg_set_str (&event->command_event.command_id, c->command_id);
            vw_msg_set_str (&event->command_event.kind, "undeliverable");
            if (vw_actor_send (self->actor, "executor", &event))
                vw_msg_destroy (&event);
        }
        return;
    }
    if (cancel) {
        s_send (conn, vw_wire_cancel (c->command_id));
        return;
    }
    json_t *payload = c->payload ? json_loads (c->payload, 0, NULL) : NULL;
    s_send (conn, vw_wire_command (c->command_id, c->type, payload, c->timeout_ms, c->attempt));
    json_decref (payload);
}

static void
s_refuse_core_lost (vw_ws_conn_t *conn)
{
    conn->edge->ws_hellos_refused++;
    s_send (conn, vw_wire_error_retry ("unavailable",
                                       "this edge has lost the core; try another edge or again "
                                       "after retry_after_ms",
                                       1000 + (int64_t) randombytes_uniform (4001)));
    s_close (conn, 1013, "core unreachable");
}

void
vw_ws_on_link (vw_edge_t *self, bool up)
{
    if (!up) {
        int refused = 0;
        for (vw_ws_conn_t *conn = self->ws_conns; conn; conn = conn->next)
            if (conn->hello_sent && !*conn->session_id && !conn->close_code) {
                s_hello_done (conn, false);
                s_refuse_core_lost (conn);
                refused++;
            }
        vw_warn (self->name,
                 "core lost: %d agent session(s) stay connected, %d waiting hello(s) and every "
                 "new one refused with 1013 until it is back",
                 self->ws_count - refused, refused);
        return;
    }
    //  Tell the registry every session held here: it may have restarted,
    //  or ended them when it lost us. It takes them back, or kicks the ones
    //  it cannot (the agent is revoked, or connected elsewhere since).
    json_t *sessions = json_array ();
    for (vw_ws_conn_t *conn = self->ws_conns; conn; conn = conn->next)
        if (*conn->session_id && !conn->close_code && conn->agent_id)
            json_array_append_new (sessions, json_pack ("[I,s,s]", (json_int_t) conn->id,
                                                        conn->agent_id, conn->session_id));
    size_t count = json_array_size (sessions);
    vw_msg_t *resync = vw_msg_new (VW_MSG_ID_session_resync);
    resync->session_resync.sessions = json_dumps (sessions, JSON_COMPACT);
    json_decref (sessions);
    if (vw_actor_send (self->actor, "registry", &resync))
        vw_msg_destroy (&resync);
    vw_info (self->name, "core back: told the registry of %zu session(s)", count);
}

void
vw_ws_close_all (vw_edge_t *self)
{
    s_flush_seen (self);
    //  Read again if paused: the close handshake needs the agents' answers.
    if (self->ws_rx_paused) {
        self->ws_rx_paused = false;
        s_rx_flow_all (self, 1);
    }
    for (vw_ws_conn_t *conn = self->ws_conns; conn; conn = conn->next)
        s_close (conn, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
}

//  The upgrade asks for exactly /ws/agent. lws hands us the target decoded
//  and with dot segments folded; that can only ever name this one resource,
//  but an encoded CR or LF ends lws's request line early ("/ws/agent%0ajunk"
//  reads as "/ws/agent"), and then no HTTP version follows the target: so
//  the version must be there, and no query either.
static bool
s_path_is_agent (struct lws *wsi)
{
    char uri[64], version[16];
    if (lws_hdr_copy (wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0 ||
        lws_hdr_copy (wsi, version, sizeof version, WSI_TOKEN_HTTP) <= 0)
        return false;
    return strcmp (uri, S_AGENT_PATH) == 0 && strcmp (version, "HTTP/1.1") == 0 &&
           lws_hdr_total_length (wsi, WSI_TOKEN_HTTP_URI_ARGS) == 0;
}

//  Answers an upgrade we refuse with an HTTP status and the JSON error
//  shape (SPEC §6), then lets lws close the connection (returns 1 for the
//  filter callback). The answer is small: lws sends it at once.
static __thread const char *s_refusal;

const char *
vw_ws_refusal (void)
{
    const char *why = s_refusal;
    s_refusal = NULL;
    return why;
}

static int
s_refuse_upgrade (struct lws *wsi, int status, const char *code, const char *message,
                  int retry_after_s)
{
    s_refusal = message;
    char body[256];
    int len = snprintf (body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code,
                        message);
    unsigned char buf[LWS_PRE + 512];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
    char retry[16];
    snprintf (retry, sizeof retry, "%d", retry_after_s);
    if (lws_add_http_common_headers (wsi, (unsigned int) status, "application/json",
                                     (lws_filepos_t) len, &p, end) ||
        (retry_after_s > 0 && lws_add_http_header_by_name (
                                  wsi, (const unsigned char *) "retry-after:",
                                  (const unsigned char *) retry, (int) strlen (retry), &p, end)) ||
        lws_add_http_header_by_name (wsi, (const unsigned char *) "connection:",
                                     (const unsigned char *) "close", 5, &p, end) ||
        lws_finalize_http_header (wsi, &p, end) || p + len >= end)
        return 1;
    memcpy (p, body, (size_t) len);
    p += len;
    lws_write (wsi, start, (size_t) (p - start), LWS_WRITE_HTTP_FINAL);
    return 1;
}

int
vw_ws_callback (struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    vw_ws_conn_t *conn = (vw_ws_conn_t *) user;
    vw_edge_t *edge = vw_edge_from_wsi (wsi);

    switch (reason) {
        case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
            //  Only /ws/agent upgrades; refuse while shutting down.
            if (!s_path_is_agent (wsi))
                return s_refuse_upgrade (wsi, 404, "not_found",
                                         "agents connect to /ws/agent (HTTP/1.1, no query)", 0);
            if (edge->stopping)
                return s_refuse_upgrade (wsi, 503, "unavailable", "the server is shutting down", 1);
            //  A flood of connection attempts from one address is throttled
            //  before it costs a session (SPEC §6: hellos per address).
            char peer[64] = "";
            s_source (edge, wsi, peer, sizeof peer);
            int64_t retry_ms = 0;
            if (!vw_ratelimit_take (edge->rl_hello, peer, 1, vw_clock_mono_ms (), &retry_ms)) {
                vw_debug ("edge", "agent connection from %s throttled", peer);
                return s_refuse_upgrade (wsi, 429, "rate_limited",
                                         "too many connection attempts from this address",
                                         (int) ((retry_ms + 999) / 1000));
            }
            return 0;
        }

        case LWS_CALLBACK_ESTABLISHED: {
            memset (conn, 0, sizeof *conn);
            conn->out = vw_outq_new ((size_t) edge->config->ws_out_max, LWS_PRE);
            if (!conn->out) {
                vw_error ("edge", "out of memory for an agent connection: refused");
                return -1;
            }
            conn->wsi = wsi;
            conn->edge = edge;
            conn->id = ++edge->next_conn;
            zhashx_insert (edge->conns, &conn->id, conn);
            const struct lws_protocols *protocol = lws_get_protocol (wsi);
            conn->format = protocol && strcmp (protocol->name, VW_WIRE_SUBPROTO_MSGPACK) == 0
                               ? VW_WIRE_MSGPACK
                               : VW_WIRE_JSON;
            s_source (edge, wsi, conn->peer, sizeof conn->peer);
            conn->next = edge->ws_conns;
            if (edge->ws_conns)
                edge->ws_conns->prev = conn;
            edge->ws_conns = conn;
            edge->ws_count++;
            conn->hello_timer = vw_timers_add (vw_actor_timers (edge->actor), S_HELLO_DEADLINE_MS,
                                               s_on_hello_deadline, conn);
            if (edge->ws_rx_paused)
                lws_rx_flow_control (wsi, 0);  //  resumed with the others
            vw_debug ("edge", "agent connection from %s (%s)", conn->peer,
                      conn->format == VW_WIRE_MSGPACK ? "msgpack" : "json");
            return 0;
        }

        case LWS_CALLBACK_RECEIVE: {
            if (conn->close_code)
                return 0;  //  closing: ignore the rest
            size_t max = (size_t) edge->config->ws_max_frame;
            if (conn->rx_len + len > max) {
                lws_close_reason (wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                                  (unsigned char *) "frame too large", 15);
                return -1;
            }
            unsigned char *grown = (unsigned char *) realloc (conn->rx, conn->rx_len + len + 1);
            if (!grown)
                return -1;
            memcpy (grown + conn->rx_len, in, len);
            conn->rx = grown;
            conn->rx_len += len;
            if (lws_is_final_fragment (wsi) && !lws_remaining_packet_payload (wsi)) {
                s_on_frame (conn, lws_frame_is_binary (wsi));
                free (conn->rx);
                conn->rx = NULL;
                conn->rx_len = 0;
            }
            s_check_send_failures (edge);
            return 0;
        }

        case LWS_CALLBACK_SERVER_WRITEABLE: {
            size_t size = 0;
            bool binary = false;
            unsigned char *payload = vw_outq_front (conn->out, &size, &binary);
            if (payload) {
                int n = lws_write (wsi, payload, size, binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
                vw_outq_pop (conn->out);
                if (n < 0)
                    return -1;
                if (vw_outq_size (conn->out) || conn->close_code)
                    lws_callback_on_writable (wsi);
                return 0;
            }
            if (conn->close_code && edge->stopping) {
                //  Shutting down: the close frame goes out and the
                //  connection ends without waiting for the agent's echo.
                //  lws's close handshake gives each connection a timeout in
                //  its sorted timer list, O(connections) per insertion:
                //  quadratic over a fleet (10,000 agents took seconds).
                unsigned char frame[LWS_PRE + 2 + sizeof conn->close_reason];
                size_t reason_len = strlen (conn->close_reason);
                frame[LWS_PRE] = (unsigned char) (conn->close_code >> 8);
                frame[LWS_PRE + 1] = (unsigned char) (conn->close_code & 0xff);
                memcpy (frame + LWS_PRE + 2, conn->close_reason, reason_len);
                lws_write (wsi, frame + LWS_PRE, 2 + reason_len, S_LWS_WRITE_CLOSE);
                return -1;
            }
            if (conn->close_code) {
                lws_close_reason (wsi, (enum lws_close_status) conn->close_code,
                                  (unsigned char *) conn->close_reason,
                                  strlen (conn->close_reason));
                return -1;
            }
            return 0;
        }

        case LWS_CALLBACK_CLOSED:
            s_free (conn);
            if (edge->stopping && edge->ws_count == 0)
                edge->done = true;
            return 0;

        case LWS_CALLBACK_HTTP:
            //  A plain HTTP request on the agent port: it only speaks WebSocket.
            if (lws_return_http_status (wsi, HTTP_STATUS_NOT_FOUND,
                                        "the agent port serves WebSocket upgrades on /ws/agent"))
                return -1;
            return lws_http_transaction_completed (wsi) ? -1 : 0;

        default: break;
    }
    return lws_callback_http_dummy (wsi, reason, user, in, len);
}
