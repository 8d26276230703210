/*  viworks-agent - a gateway agent for the ViWorkS backend (SPEC §3, §4).

    Keeps a WebSocket open to the backend: hello, welcome, heartbeats,
    commands, and reconnects with exponential backoff and full jitter. With
    --simulate N it runs N agents in one lws context on one thread, for load
    tests. docs/agent.md is the user's guide.

    Everything happens in the lws event loop. Each agent owns one lws_sul
    timer whose meaning follows its state (ramp, backoff, welcome deadline);
    heartbeats due in the same slot share one timer (a bucket), because lws
    keeps timers in a sorted list; the process owns three more (connection
    ramp, summary, shutdown deadline). Frames are written only from
    LWS_CALLBACK_CLIENT_WRITEABLE, one per callback, from a small per-agent
    queue that is empty (and costs nothing) while an agent is idle. The
    signal handler only sets a flag and rings lws_cancel_service.

    Every frame goes through the wire codec (proto/vw_wire.h): outgoing
    messages are jansson trees serialised by vw_wire_serialize, incoming ones
    are checked by vw_wire_decode.
*/
#include "vw_clock.h"
#include "vw_log.h"
#include "vw_wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

//  Exit codes (docs/agent.md).
#define S_EXIT_OK       0
#define S_EXIT_FAILURE  1  //  cannot start, gave up reconnecting, --once failed
#define S_EXIT_USAGE    2  //  bad option or value
#define S_EXIT_REFUSED  3  //  closed with 4401 or 4400: bad token, revoked, bad hello
#define S_EXIT_REPLACED 4  //  closed with 4409: a newer connection took our agent_id

#define S_BACKOFF_BASE_MS     500
#define S_BACKOFF_CAP_MS      30000
#define S_BACKOFF_RESET_MS    60000  //  a session longer than this resets the backoff
#define S_WELCOME_TIMEOUT_MS  15000  //  the backend closes a silent hello at 10 s
#define S_SUMMARY_MS          5000
#define S_SHUTDOWN_GRACE_MS   5000
#define S_HEARTBEAT_MIN_MS    100
#define S_HEARTBEAT_MARGIN_MS 1000  //  at most this early (see s_agent_on_welcome)
//  Simulated agents' heartbeats fire in batches on multiples of this: one
//  wake-up of the loop serves many agents instead of one each.
#define S_BATCH_MS 50
#define S_BUCKETS  1024           //  hash heads for the heartbeat buckets
#define S_RX_MAX   (1024 * 1024)  //  largest message accepted (SPEC §3)
//  lws's receive buffer per connection: larger frames arrive in pieces and
//  are reassembled on the heap only while they do.
#define S_RX_CHUNK 1024
//  Frames waiting to be written. Normally 0 or 1; a server that reads
//  nothing for this long gets its connection dropped.
#define S_QUEUE_MAX        64
#define S_SPREAD_ADDRESSES 250
#define S_CLOSE_NO_STATUS  1005
#define S_CLOSE_ABNORMAL   1006
//  --raw: the heartbeat period without --heartbeat-ms (what the backend's
//  default 10 s interval gives, see s_agent_on_welcome), and the frame.
#define S_RAW_HEARTBEAT_MS 9000
#define S_RAW_HEARTBEAT    "{\"type\":\"heartbeat\"}"

typedef enum {
    S_IDLE = 0,    //  not started yet (ramp)
    S_CONNECTING,  //  TCP, TLS and the upgrade in progress
    S_HANDSHAKE,   //  hello sent, waiting for the welcome
    S_ONLINE,      //  welcomed, sending heartbeats
    S_BACKOFF,     //  waiting to reconnect
    S_STOPPED,     //  for good
    S_STATE_COUNT
} s_state_t;

typedef struct s_frame_t {
    struct s_frame_t *next;
    size_t size;
    bool heartbeat;
    unsigned char data[];  //  LWS_PRE bytes of headroom, then the frame
} s_frame_t;

typedef struct s_app_t s_app_t;

//  Agents whose heartbeat is due in the same slot share one lws_sul. lws
//  keeps its timers in one sorted list and an insertion walks it, so a timer
//  per agent would cost O(agents) per heartbeat; this costs O(slots).
typedef struct s_bucket_t {
    lws_sorted_usec_list_t sul;
    s_app_t *app;
    struct s_bucket_t *next;  //  hash chain
    int64_t slot;             //  due at slot * slot_ms (monotonic)
    lws_dll2_owner_t agents;
} s_bucket_t;

//  One agent: a few hundred bytes plus lws's wsi while connected.
typedef struct {
    lws_sorted_usec_list_t sul;  //  the agent's timer, meaning set by the state
    lws_dll2_t beat_link;        //  in a heartbeat bucket while ONLINE
    s_app_t *app;
    struct lws *wsi;    //  set while CONNECTING, HANDSHAKE or ONLINE
    char *id;           //  owned
    const char *token;  //  app->opt.token, or owned (token file)
    s_frame_t *head;    //  output queue
    s_frame_t *tail;
    unsigned char *rx;  //  reassembly of a message split over callbacks
    size_t rx_size;
    char *close_reason;     //  from the server's close frame, until logged
    const char *close_why;  //  reason of the close we send (static text)
    int64_t online_at;      //  monotonic ms of the welcome
    int64_t heartbeat_ms;
    uint32_t index;
    uint16_t backoff_exp;  //  grows with each failure, reset by a long session
    uint16_t retries;      //  reconnects since the last welcome
    uint16_t queued;
    uint16_t peer_close;  //  code of the server's close frame, 0 if none
    uint16_t our_close;   //  code we close with from WRITEABLE, 0 if none
    uint8_t state;
    uint8_t stop_code;  //  exit code this agent stopped with
    bool heartbeat_queued;
    bool token_owned;
} s_agent_t;

typedef struct {
    const char *url;
    const char *id;
    const char *token;
    const char *token_file;
    const char *hostname;
    const char *version;
    const char *id_prefix;
    const char *ca_file;
    vw_wire_format_t format;
    int64_t heartbeat_ms;    //  0: heartbeat_interval_ms of the welcome
    int64_t simulate;        //  0: one agent named --id
    int64_t ramp;            //  connections started per second
    int64_t max_reconnects;  //  -1: no limit
    const char *ready_file;  //  a line is written here once all agents are online
    bool once;
    bool insecure;
    bool raw;              //  baseline mode: no subprotocol, no hello, bare heartbeats
    json_t *labels;        //  object of strings
    json_t *capabilities;  //  array of strings; NULL until defaulted
} s_options_t;

struct s_app_t {
    s_options_t opt;
    char *url_copy;       //  cut up by lws_parse_uri; address and host point into it
    const char *address;  //  what we connect to
    const char *host;     //  Host header
    char path[1024];
    int port;
    bool tls;
    bool spread;  //  bind each agent to a source address 127.0.0.x
    char hostname[256];
    struct lws_context *context;
    s_agent_t *agents;
    uint32_t count;
    uint32_t started;
    int64_t ramp_t0;
    lws_sorted_usec_list_t sul_ramp;
    lws_sorted_usec_list_t sul_summary;
    lws_sorted_usec_list_t sul_deadline;
    s_bucket_t *buckets[S_BUCKETS];
    int64_t slot_ms;
    uint32_t states[S_STATE_COUNT];
    uint64_t sent, received, connects, disconnects;
    uint64_t last_sent, last_received;
    bool all_online;  //  every agent was online at once (logged once)
    bool stopping;
    bool done;
    int exit_code;
};

static volatile sig_atomic_t s_signalled;
static struct lws_context *volatile s_context;
static uint64_t s_rng;
static char s_source_addresses[S_SPREAD_ADDRESSES][16];

static void s_agent_connect (s_agent_t *agent);
static void s_agent_on_timer (lws_sorted_usec_list_t *sul);
static void s_agent_heartbeat (s_agent_t *agent);

//  --------------------------------------------------------------------------
//  Small helpers

//  Uniform in [0, bound] (xorshift64*: backoff jitter needs no crypto).
static uint32_t
s_random (uint32_t bound)
{
    s_rng ^= s_rng >> 12;
    s_rng ^= s_rng << 25;
    s_rng ^= s_rng >> 27;
    return (uint32_t) ((s_rng * 0x2545F4914F6CDD1DULL) >> 32) % (bound + 1);
}

//  A copy of untrusted bytes fit for a log line: printable ASCII only.
static char *
s_printable_dup (const unsigned char *data, size_t size)
{
    char *copy = malloc (size + 1);
    if (!copy)
        return NULL;
    for (size_t i = 0; i < size; i++)
        copy[i] = data[i] >= 0x20 && data[i] < 0x7f ? (char) data[i] : '?';
    copy[size] = 0;
    return copy;
}

//  Per-agent routine events are info for one agent, debug when simulating
//  (the 5 s summary tells the story then).
#define s_note(app, ...)                                                                           \
    vw_log ((app)->opt.simulate ? VW_LOG_DEBUG : VW_LOG_INFO, "agent", __VA_ARGS__)

static void
s_agent_timer (s_agent_t *agent, int64_t delay_ms)
{
    lws_sul_schedule (agent->app->context, 0, &agent->sul, s_agent_on_timer,
                      (lws_usec_t) delay_ms * 1000);
}

static void
s_bucket_on_timer (lws_sorted_usec_list_t *sul)
{
    s_bucket_t *bucket = lws_container_of (sul, s_bucket_t, sul);
    s_app_t *app = bucket->app;
    s_bucket_t **link = &app->buckets[bucket->slot % S_BUCKETS];
    while (*link != bucket)
        link = &(*link)->next;
    *link = bucket->next;
    //  Each agent moves on to a later bucket (the interval is >= 100 ms).
    while (bucket->agents.head) {
        s_agent_t *agent = lws_container_of (bucket->agents.head, s_agent_t, beat_link);
        lws_dll2_remove (&agent->beat_link);
        s_agent_heartbeat (agent);
    }
    free (bucket);
}

//  The bucket for a slot, created and scheduled if needed; NULL if out of
//  memory.
static s_bucket_t *
s_bucket_get (s_app_t *app, int64_t slot, int64_t now)
{
    s_bucket_t **head = &app->buckets[slot % S_BUCKETS];
    for (s_bucket_t *bucket = *head; bucket; bucket = bucket->next)
        if (bucket->slot == slot)
            return bucket;
    s_bucket_t *bucket = calloc (1, sizeof (s_bucket_t));
    if (!bucket)
        return NULL;
    bucket->app = app;
    bucket->slot = slot;
    bucket->next = *head;
    *head = bucket;
    int64_t delay = slot * app->slot_ms - now;
    lws_sul_schedule (app->context, 0, &bucket->sul, s_bucket_on_timer,
                      (lws_usec_t) (delay > 0 ? delay : 0) * 1000);
    return bucket;
}

static void
s_buckets_destroy (s_app_t *app)
{
    for (int i = 0; i < S_BUCKETS; i++)
        while (app->buckets[i]) {
            s_bucket_t *bucket = app->buckets[i];
            app->buckets[i] = bucket->next;
            lws_sul_cancel (&bucket->sul);
            while (bucket->agents.head)
                lws_dll2_remove (bucket->agents.head);
            free (bucket);
        }
}

//  Schedules the next heartbeat one interval from now (the welcome or the
//  last heartbeat). Batching rounds down: a gap between two heartbeats can
//  be up to a slot shorter than the interval, never longer (the backend
//  calls an agent degraded one interval after its last frame).
static void
s_agent_next_heartbeat (s_agent_t *agent)
{
    s_app_t *app = agent->app;
    int64_t now = vw_clock_mono_ms ();
    int64_t slot = (now + agent->heartbeat_ms) / app->slot_ms;
    s_bucket_t *bucket = s_bucket_get (app, slot, now);
    if (!lws_dll2_is_detached (&agent->beat_link))
        lws_dll2_remove (&agent->beat_link);
    if (bucket)
        lws_dll2_add_tail (&agent->beat_link, &bucket->agents);
    else
        s_agent_timer (agent, slot * app->slot_ms - now);  //  a timer of its own
}

static void
s_agent_cancel_timers (s_agent_t *agent)
{
    lws_sul_cancel (&agent->sul);
    if (!lws_dll2_is_detached (&agent->beat_link))
        lws_dll2_remove (&agent->beat_link);
}

static void
s_agent_set_state (s_agent_t *agent, s_state_t state)
{
    agent->app->states[agent->state]--;
    agent->app->states[state]++;
    agent->state = (uint8_t) state;
}

//  Drops whatever the last connection left: queue, reassembly, close reason.
static void
s_agent_reset_io (s_agent_t *agent)
{
    while (agent->head) {
        s_frame_t *next = agent->head->next;
        free (agent->head);
        agent->head = next;
    }
    agent->tail = NULL;
    agent->queued = 0;
    agent->heartbeat_queued = false;
    free (agent->rx);
    agent->rx = NULL;
    agent->rx_size = 0;
    free (agent->close_reason);
    agent->close_reason = NULL;
}

//  --------------------------------------------------------------------------
//  Process state

static void
s_app_finish (s_app_t *app)
{
    if (app->done)
        return;
    app->done = true;
    lws_sul_cancel (&app->sul_ramp);
    lws_sul_cancel (&app->sul_summary);
    lws_sul_cancel (&app->sul_deadline);
    if (app->stopping) {
        app->exit_code = S_EXIT_OK;
        vw_info ("agent", "stopped");
        return;
    }
    //  Every agent stopped on its own: their common status, or a failure.
    app->exit_code = app->agents[0].stop_code;
    for (uint32_t i = 1; i < app->count; i++)
        if (app->agents[i].stop_code != app->exit_code)
            app->exit_code = S_EXIT_FAILURE;
    if (app->opt.simulate)
        vw_info ("agent", "all %u agents stopped; exit status %d", app->count, app->exit_code);
}

static void
s_agent_stop (s_agent_t *agent, int code)
{
    s_agent_cancel_timers (agent);
    agent->stop_code = (uint8_t) code;
    s_agent_set_state (agent, S_STOPPED);
    if (agent->app->states[S_STOPPED] == agent->app->count)
        s_app_finish (agent->app);
}

//  --------------------------------------------------------------------------
//  Sending

//  Queues one frame (a copy of data) and asks for a WRITEABLE.
static int
s_agent_queue (s_agent_t *agent, const void *data, size_t size, bool heartbeat)
{
    if (!agent->wsi)
        return -1;
    if (agent->queued >= S_QUEUE_MAX) {
        vw_warn ("agent",
                 "%s: %d frames wait to be sent: the server reads nothing; dropping the "
                 "connection",
                 agent->id, S_QUEUE_MAX);
        lws_set_timeout (agent->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return -1;
    }
    s_frame_t *frame = malloc (sizeof (s_frame_t) + LWS_PRE + size);
    if (!frame) {
        vw_error ("agent", "%s: out of memory", agent->id);
        return -1;
    }
    frame->next = NULL;
    frame->size = size;
    frame->heartbeat = heartbeat;
    memcpy (frame->data + LWS_PRE, data, size);
    if (agent->tail)
        agent->tail->next = frame;
    else
        agent->head = frame;
    agent->tail = frame;
    agent->queued++;
    if (heartbeat)
        agent->heartbeat_queued = true;
    lws_callback_on_writable (agent->wsi);
    return 0;
}

//  Queues one message (takes ownership of msg), serialised by the codec.
static int
s_agent_send (s_agent_t *agent, json_t *msg, bool heartbeat)
{
    uint8_t *data = NULL;
    size_t size = 0;
    int rc = vw_wire_serialize (agent->app->opt.format, msg, &data, &size);
    json_decref (msg);
    if (rc) {
        vw_error ("agent", "%s: cannot build a frame (out of memory?)", agent->id);
        return -1;
    }
    rc = s_agent_queue (agent, data, size, heartbeat);
    free (data);
    return rc;
}

//  A heartbeat: the protocol's, or --raw's bare text frame.
static int
s_agent_send_heartbeat (s_agent_t *agent)
{
    if (agent->app->opt.raw)
        return s_agent_queue (agent, S_RAW_HEARTBEAT, strlen (S_RAW_HEARTBEAT), true);
    return s_agent_send (agent, json_pack ("{s:s, s:s}", "type", "heartbeat", "status", "online"),
                         true);
}

//  Closes with `code` once the queue is written (from WRITEABLE).
static void
s_agent_close (s_agent_t *agent, uint16_t code, const char *why)
{
    if (!agent->wsi || agent->our_close)
        return;
    agent->our_close = code;
    agent->close_why = why;
    lws_callback_on_writable (agent->wsi);
}

static int
s_agent_writeable (s_agent_t *agent)
{
    s_frame_t *frame = agent->head;
    if (frame) {
        agent->head = frame->next;
        if (!agent->head)
            agent->tail = NULL;
        agent->queued--;
        if (frame->heartbeat)
            agent->heartbeat_queued = false;
        bool binary = !agent->app->opt.raw && agent->app->opt.format == VW_WIRE_MSGPACK;
        //  lws keeps what the socket does not take and sends it before
        //  the next WRITEABLE: one lws_write per callback is the rule.
        int n = lws_write (agent->wsi, frame->data + LWS_PRE, frame->size,
                           binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
        size_t size = frame->size;
        free (frame);
        if (n < 0 || (size_t) n < size) {
            vw_warn ("agent", "%s: write failed; dropping the connection", agent->id);
            return -1;
        }
        agent->app->sent++;
        if (agent->head || agent->our_close)
            lws_callback_on_writable (agent->wsi);
        return 0;
    }
    if (agent->our_close) {
        const char *why = agent->close_why ? agent->close_why : "";
        lws_close_reason (agent->wsi, (enum lws_close_status) agent->our_close,
                          (unsigned char *) why, strlen (why));
        return -1;
    }
    return 0;
}

//  Builds the hello (a new reference, NULL if out of memory).
static json_t *
s_hello_new (s_agent_t *agent)
{
    s_app_t *app = agent->app;
    return json_pack ("{s:s, s:s, s:s, s:s, s:s, s:O, s:O}", "type", "hello", "agent_id", agent->id,
                      "token", agent->token, "version", app->opt.version, "hostname", app->hostname,
                      "capabilities", app->opt.capabilities, "labels", app->opt.labels);
}

static void
s_agent_send_result (s_agent_t *agent, const char *command_id, json_t *result, const char *error)
{
    s_agent_send (agent,
                  json_pack ("{s:s, s:s, s:s, s:o?, s:s?}", "type", "command_result", "command_id",
                             command_id, "status", error ? "failed" : "completed", "result", result,
                             "error", error),
                  false);
}

//  --------------------------------------------------------------------------
//  Commands. A handler returns 0 with *result set (completed) or -1 with
//  *error set (failed). Handlers that take time (exec, upgrade...) will
//  return 1 and send their result later with s_agent_send_result.

typedef int s_command_fn (s_agent_t *agent, const vw_wire_msg_t *msg, json_t **result,
                          const char **error);

static int
s_command_ping (s_agent_t *agent, const vw_wire_msg_t *msg, json_t **result, const char **error)
{
    *result = json_pack ("{s:b}", "pong", 1);
    return 0;
}

static const struct {
    const char *type;
    s_command_fn *run;  //  NULL: known to the backend, not executed here yet
} s_commands[] = {
    {"ping", s_command_ping}, {"exec", NULL},         {"restart_service", NULL},
    {"update_config", NULL},  {"collect_logs", NULL}, {"upgrade", NULL},
};
#define S_COMMAND_COUNT (sizeof (s_commands) / sizeof (s_commands[0]))

static void
s_agent_on_command (s_agent_t *agent, const vw_wire_msg_t *msg)
{
    s_agent_send (agent,
                  json_pack ("{s:s, s:s}", "type", "command_ack", "command_id", msg->command_id),
                  false);
    json_t *result = NULL;
    const char *error = "unsupported command type";
    for (size_t i = 0; i < S_COMMAND_COUNT; i++) {
        if (strcmp (s_commands[i].type, msg->command_type) != 0)
            continue;
        error = "not implemented by this agent yet";
        if (s_commands[i].run) {
            error = NULL;
            int rc = s_commands[i].run (agent, msg, &result, &error);
            if (rc == 1)
                return;  //  answers later
            if (rc != 0 && !error)
                error = "command failed";
        }
        break;
    }
    s_note (agent->app, "%s: command %s (%s, attempt %lld): %s%s", agent->id, msg->command_id,
            msg->command_type, (long long) msg->attempt, error ? "failed: " : "completed",
            error ? error : "");
    if (error) {
        json_decref (result);
        result = NULL;
    }
    s_agent_send_result (agent, msg->command_id, result, error);
}

//  --------------------------------------------------------------------------
//  Receiving

//  Logs (and writes to --ready-file) the first time every agent is online.
static void
s_app_check_ready (s_app_t *app)
{
    if (app->all_online || app->states[S_ONLINE] != app->count)
        return;
    app->all_online = true;
    int64_t ms = vw_clock_mono_ms () - app->ramp_t0;
    if (app->opt.simulate)
        vw_info ("agent", "all %u agents online in %lld ms (%.0f/s)", app->count, (long long) ms,
                 ms > 0 ? app->count * 1000.0 / (double) ms : 0.0);
    if (!app->opt.ready_file)
        return;
    //  Written whole under a temporary name, then renamed: a reader never
    //  sees half a line.
    char temp[4096];
    snprintf (temp, sizeof temp, "%s.tmp", app->opt.ready_file);
    FILE *file = fopen (temp, "w");
    bool ok =
        file && fprintf (file, "%u agents online after %lld ms\n", app->count, (long long) ms) > 0;
    if (file && fclose (file) != 0)
        ok = false;
    if (!ok || rename (temp, app->opt.ready_file) != 0)
        vw_error ("agent", "cannot write --ready-file %s: %s", app->opt.ready_file,
                  strerror (errno));
}

//  The session is up (welcome, or the WebSocket itself with --raw): start
//  the heartbeats every `interval` ms.
static void
s_agent_go_online (s_agent_t *agent, int64_t interval)
{
    s_app_t *app = agent->app;
    agent->heartbeat_ms = interval;
    agent->online_at = vw_clock_mono_ms ();
    agent->retries = 0;
    s_agent_set_state (agent, S_ONLINE);
    lws_sul_cancel (&agent->sul);  //  the welcome deadline
    s_app_check_ready (app);
    if (app->opt.once) {
        s_agent_send_heartbeat (agent);
        s_agent_close (agent, LWS_CLOSE_STATUS_NORMAL, "once");
        return;
    }
    s_agent_next_heartbeat (agent);
}

static void
s_agent_on_welcome (s_agent_t *agent, const vw_wire_msg_t *msg)
{
    s_app_t *app = agent->app;
    if (agent->state != S_HANDSHAKE) {
        vw_warn ("agent", "%s: unexpected second welcome ignored", agent->id);
        return;
    }
    //  The backend calls an agent degraded one interval after its last frame:
    //  a heartbeat sent exactly on the interval arrives after that deadline
    //  as often as not (network, both event loops). Go a tenth early, at most
    //  a second. An interval given with --heartbeat-ms is used as is.
    int64_t interval = app->opt.heartbeat_ms;
    if (!interval) {
        int64_t margin = msg->heartbeat_interval_ms / 10;
        interval = msg->heartbeat_interval_ms -
                   (margin < S_HEARTBEAT_MARGIN_MS ? margin : S_HEARTBEAT_MARGIN_MS);
    }
    if (interval < S_HEARTBEAT_MIN_MS) {
        vw_warn ("agent", "%s: heartbeat interval %lld ms raised to %d ms", agent->id,
                 (long long) interval, S_HEARTBEAT_MIN_MS);
        interval = S_HEARTBEAT_MIN_MS;
    }
    s_note (app,
            "%s: online, session %s, heartbeat_interval_ms %lld, heartbeat every %lld ms, "
            "server clock %+lld ms",
            agent->id, msg->session_id, (long long) msg->heartbeat_interval_ms,
            (long long) interval, (long long) (msg->server_time - vw_clock_wall_ms ()));
    s_agent_go_online (agent, interval);
}

static void
s_agent_on_frame (s_agent_t *agent, const void *data, size_t size)
{
    agent->app->received++;
    vw_wire_msg_t msg;
    vw_wire_error_t err;
    if (vw_wire_decode (agent->app->opt.format, data, size, &msg, &err)) {
        vw_warn ("agent", "%s: bad frame from the server ignored: %s: %s", agent->id, err.code,
                 err.message);
        return;
    }
    switch (msg.type) {
        case VW_WIRE_WELCOME: s_agent_on_welcome (agent, &msg); break;
        case VW_WIRE_ERROR:
            vw_warn ("agent", "%s: error from the server: %s%s%s", agent->id, msg.code,
                     msg.message ? ": " : "", msg.message ? msg.message : "");
            break;
        case VW_WIRE_COMMAND:
            if (agent->state == S_ONLINE)
                s_agent_on_command (agent, &msg);
            else
                vw_warn ("agent", "%s: command %s before the welcome ignored", agent->id,
                         msg.command_id);
            break;
        case VW_WIRE_CANCEL:
            //  Commands run to completion at once for now: nothing to stop.
            s_note (agent->app, "%s: cancel for command %s", agent->id, msg.command_id);
            break;
        case VW_WIRE_TELEMETRY_ACK:
            vw_debug ("agent", "%s: telemetry_ack %lld", agent->id, (long long) msg.seq);
            break;
        case VW_WIRE_CHALLENGE:
            vw_warn ("agent",
                     "%s: the server asks for an Ed25519 signature; this agent has no "
                     "key support yet",
                     agent->id);
            break;
        default:
            vw_warn ("agent", "%s: unexpected '%s' from the server ignored", agent->id,
                     vw_wire_type_name (msg.type));
            break;
    }
    vw_wire_msg_reset (&msg);
}

//  One piece of a message; whole messages are decoded from lws's buffer,
//  split ones are gathered on the heap first.
static int
s_agent_receive (s_agent_t *agent, struct lws *wsi, const void *in, size_t len)
{
    bool last = lws_is_final_fragment (wsi) && lws_remaining_packet_payload (wsi) == 0;
    if (agent->app->opt.raw) {
        //  A baseline server may say anything: count messages, read nothing.
        if (last)
            agent->app->received++;
        return 0;
    }
    if (last && !agent->rx) {
        s_agent_on_frame (agent, in, len);
        return 0;
    }
    if (agent->rx_size + len > S_RX_MAX) {
        vw_warn ("agent", "%s: message over %d bytes from the server; closing", agent->id,
                 S_RX_MAX);
        agent->our_close = LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE;
        agent->close_why = "message too big";
        lws_close_reason (wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                          (unsigned char *) agent->close_why, strlen (agent->close_why));
        return -1;
    }
    unsigned char *grown = realloc (agent->rx, agent->rx_size + len + 1);
    if (!grown) {
        vw_error ("agent", "%s: out of memory", agent->id);
        return -1;
    }
    agent->rx = grown;
    if (len)
        memcpy (agent->rx + agent->rx_size, in, len);
    agent->rx_size += len;
    if (last) {
        s_agent_on_frame (agent, agent->rx, agent->rx_size);
        free (agent->rx);
        agent->rx = NULL;
        agent->rx_size = 0;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Connection life cycle

static void
s_agent_established (s_agent_t *agent)
{
    s_app_t *app = agent->app;
    s_agent_set_state (agent, S_HANDSHAKE);
    if (app->stopping) {
        s_agent_close (agent, LWS_CLOSE_STATUS_NORMAL, "agent shutting down");
        return;
    }
    if (app->opt.raw) {
        s_note (app, "%s: connected to %s (raw)", agent->id, app->opt.url);
        s_agent_go_online (agent,
                           app->opt.heartbeat_ms ? app->opt.heartbeat_ms : S_RAW_HEARTBEAT_MS);
        return;
    }
    s_note (app, "%s: connected to %s, sending hello", agent->id, app->opt.url);
    s_agent_send (agent, s_hello_new (agent), false);
    s_agent_timer (agent, S_WELCOME_TIMEOUT_MS);
}

//  The connection is gone or never came up: reconnect later, or stop.
static void
s_agent_lost (s_agent_t *agent, struct lws *wsi, const char *error)
{
    if (agent->wsi != wsi || agent->state == S_STOPPED)
        return;  //  an old connection's late news
    s_app_t *app = agent->app;
    s_state_t was = (s_state_t) agent->state;
    agent->wsi = NULL;
    s_agent_cancel_timers (agent);

    char what[256];
    int code = agent->peer_close;
    if (was == S_CONNECTING)
        snprintf (what, sizeof what, "cannot connect: %s", error ? error : "connection failed");
    else if (agent->our_close && !code)
        snprintf (what, sizeof what, "closed by us with %u (%s)", agent->our_close,
                  agent->close_why ? agent->close_why : "");
    else if (code)
        snprintf (what, sizeof what, "closed by the server with %d%s%s%s", code,
                  agent->close_reason ? " (" : "", agent->close_reason ? agent->close_reason : "",
                  agent->close_reason ? ")" : "");
    else
        snprintf (what, sizeof what, "connection lost (%d)", S_CLOSE_ABNORMAL);
    s_agent_reset_io (agent);

    int64_t online_ms = was == S_ONLINE ? vw_clock_mono_ms () - agent->online_at : -1;
    if (was == S_HANDSHAKE || was == S_ONLINE)
        app->disconnects++;
    if (online_ms > S_BACKOFF_RESET_MS)
        agent->backoff_exp = 0;

    if (app->stopping) {
        s_note (app, "%s: %s", agent->id, what);
        s_agent_stop (agent, S_EXIT_OK);
        return;
    }
    if (code == 4401 || code == 4400 || code == 4409) {
        vw_warn ("agent", "%s: %s: %s; not reconnecting", agent->id, what,
                 code == 4409   ? "replaced by a newer connection with the same agent_id"
                 : code == 4401 ? "unauthorized (bad token, unknown or revoked agent)"
                                : "the server refused our hello");
        s_agent_stop (agent, code == 4409 ? S_EXIT_REPLACED : S_EXIT_REFUSED);
        return;
    }
    if (app->opt.once && was == S_ONLINE) {
        s_note (app, "%s: %s", agent->id, what);
        s_agent_stop (agent, S_EXIT_OK);
        return;
    }
    if (app->opt.max_reconnects >= 0 && agent->retries >= app->opt.max_reconnects) {
        vw_warn ("agent", "%s: %s; giving up after %u reconnect(s)", agent->id, what,
                 agent->retries);
        s_agent_stop (agent, S_EXIT_FAILURE);
        return;
    }
    //  Full jitter: uniform in [0, min(cap, base * 2^n)].
    uint32_t ceiling = S_BACKOFF_CAP_MS;
    if (agent->backoff_exp < 16 && (S_BACKOFF_BASE_MS << agent->backoff_exp) < S_BACKOFF_CAP_MS)
        ceiling = S_BACKOFF_BASE_MS << agent->backoff_exp;
    uint32_t delay = s_random (ceiling);
    if (agent->backoff_exp < UINT16_MAX)
        agent->backoff_exp++;
    if (agent->retries < UINT16_MAX)
        agent->retries++;
    if (app->opt.simulate)
        vw_debug ("agent", "%s: %s; reconnecting in %u ms", agent->id, what, delay);
    else if (was == S_CONNECTING)
        vw_warn ("agent", "%s: %s; retrying in %u ms", agent->id, what, delay);
    else
        vw_info ("agent", "%s: %s; reconnecting in %u ms", agent->id, what, delay);
    s_agent_set_state (agent, S_BACKOFF);
    s_agent_timer (agent, delay);
}

static void
s_agent_connect (s_agent_t *agent)
{
    s_app_t *app = agent->app;
    struct lws_client_connect_info info;
    //  lws pings a connection that had no pong for this long and drops it if
    //  none comes: a vanished server is noticed in under a minute, not when
    //  TCP gives up. Simulated agents ping rarely: each ping is a wake-up.
    static const lws_retry_bo_t idle_policy = {.secs_since_valid_ping = 30,
                                               .secs_since_valid_hangup = 45};
    static const lws_retry_bo_t idle_policy_sim = {.secs_since_valid_ping = 300,
                                                   .secs_since_valid_hangup = 330};
    memset (&info, 0, sizeof info);
    info.context = app->context;
    info.address = app->address;
    info.port = app->port;
    info.path = app->path;
    info.host = app->host;
    info.origin = app->host;
    //  --raw offers no subprotocol: lws binds the connection to s_protocols[0].
    info.protocol = app->opt.raw                         ? NULL
                    : app->opt.format == VW_WIRE_MSGPACK ? VW_WIRE_SUBPROTO_MSGPACK
                                                         : VW_WIRE_SUBPROTO_JSON;
    info.userdata = agent;  //  our struct is the wsi's user data: lws allocates none
    info.pwsi = &agent->wsi;
    info.retry_and_idle_policy = app->opt.simulate ? &idle_policy_sim : &idle_policy;
    if (app->tls) {
        info.ssl_connection = LCCSCF_USE_SSL;
        if (app->opt.insecure)
            info.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED |
                                   LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK | LCCSCF_ALLOW_EXPIRED |
                                   LCCSCF_ALLOW_INSECURE;
    }
    if (app->spread)
        info.iface = s_source_addresses[agent->index % S_SPREAD_ADDRESSES];

    agent->peer_close = 0;
    agent->our_close = 0;
    agent->close_why = NULL;
    agent->wsi = NULL;
    s_agent_set_state (agent, S_CONNECTING);
    app->connects++;
    struct lws *wsi = lws_client_connect_via_info (&info);
    if (agent->state != S_CONNECTING)
        return;  //  lws already reported the failure through the callback
    if (wsi)
        agent->wsi = wsi;
    else
        s_agent_lost (agent, agent->wsi, "cannot start a connection");
}

static void
s_agent_heartbeat (s_agent_t *agent)
{
    if (agent->state != S_ONLINE)
        return;
    //  A heartbeat still queued says the same: do not pile them up.
    if (!agent->heartbeat_queued)
        s_agent_send_heartbeat (agent);
    s_agent_next_heartbeat (agent);
}

static void
s_agent_on_timer (lws_sorted_usec_list_t *sul)
{
    s_agent_t *agent = lws_container_of (sul, s_agent_t, sul);
    switch (agent->state) {
        case S_IDLE:
        case S_BACKOFF: s_agent_connect (agent); break;
        case S_HANDSHAKE:
            vw_warn ("agent", "%s: no welcome within %d ms; closing", agent->id,
                     S_WELCOME_TIMEOUT_MS);
            s_agent_close (agent, LWS_CLOSE_STATUS_NORMAL, "no welcome");
            break;
        case S_ONLINE: s_agent_heartbeat (agent); break;
        default: break;
    }
}

//  --------------------------------------------------------------------------
//  Process timers and shutdown

static void
s_app_on_ramp (lws_sorted_usec_list_t *sul)
{
    s_app_t *app = lws_container_of (sul, s_app_t, sul_ramp);
    int64_t now = vw_clock_mono_ms ();
    uint64_t due = (uint64_t) (now - app->ramp_t0) * (uint64_t) app->opt.ramp / 1000 + 1;
    if (due > app->count)
        due = app->count;
    while (app->started < due && !app->stopping)
        s_agent_connect (&app->agents[app->started++]);
    if (app->stopping)
        return;
    if (app->started < app->count) {
        int64_t next = app->ramp_t0 + (int64_t) app->started * 1000 / app->opt.ramp - now;
        if (next < 10)
            next = 10;  //  batches: at most 100 wake-ups a second
        lws_sul_schedule (app->context, 0, &app->sul_ramp, s_app_on_ramp, (lws_usec_t) next * 1000);
    }
    else if (app->opt.simulate)
        vw_info ("agent", "all %u agents started in %lld ms", app->count,
                 (long long) (now - app->ramp_t0));
}

static void
s_app_on_summary (lws_sorted_usec_list_t *sul)
{
    s_app_t *app = lws_container_of (sul, s_app_t, sul_summary);
    vw_info ("agent",
             "agents %u: idle %u, connecting %u, online %u, backoff %u, stopped %u; frames "
             "sent %llu (+%llu), received %llu (+%llu); connects %llu, disconnects %llu",
             app->count, app->states[S_IDLE], app->states[S_CONNECTING] + app->states[S_HANDSHAKE],
             app->states[S_ONLINE], app->states[S_BACKOFF], app->states[S_STOPPED],
             (unsigned long long) app->sent, (unsigned long long) (app->sent - app->last_sent),
             (unsigned long long) app->received,
             (unsigned long long) (app->received - app->last_received),
             (unsigned long long) app->connects, (unsigned long long) app->disconnects);
    app->last_sent = app->sent;
    app->last_received = app->received;
    lws_sul_schedule (app->context, 0, &app->sul_summary, s_app_on_summary,
                      (lws_usec_t) S_SUMMARY_MS * 1000);
}

static void
s_app_on_deadline (lws_sorted_usec_list_t *sul)
{
    s_app_t *app = lws_container_of (sul, s_app_t, sul_deadline);
    vw_warn ("agent", "%u connection(s) did not close within %u ms",
             app->states[S_CONNECTING] + app->states[S_HANDSHAKE] + app->states[S_ONLINE],
             S_SHUTDOWN_GRACE_MS + app->count / 2);
    s_app_finish (app);
}

static void
s_app_shutdown (s_app_t *app)
{
    if (app->stopping || app->done)
        return;
    app->stopping = true;
    vw_info ("agent", "%s: closing %u connection(s) with 1000",
             s_signalled == SIGINT ? "SIGINT" : "SIGTERM",
             app->states[S_CONNECTING] + app->states[S_HANDSHAKE] + app->states[S_ONLINE]);
    lws_sul_cancel (&app->sul_ramp);
    //  Closing takes a round trip each; a big simulated fleet gets longer.
    lws_sul_schedule (app->context, 0, &app->sul_deadline, s_app_on_deadline,
                      ((lws_usec_t) S_SHUTDOWN_GRACE_MS + app->count / 2) * 1000);
    for (uint32_t i = 0; i < app->count && !app->done; i++) {
        s_agent_t *agent = &app->agents[i];
        switch (agent->state) {
            case S_IDLE:
            case S_BACKOFF: s_agent_stop (agent, S_EXIT_OK); break;
            case S_CONNECTING:
                //  No WebSocket yet to close: drop the attempt.
                if (agent->wsi)
                    lws_set_timeout (agent->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
                else
                    s_agent_stop (agent, S_EXIT_OK);
                break;
            case S_HANDSHAKE:
            case S_ONLINE:
                s_agent_cancel_timers (agent);
                s_agent_close (agent, LWS_CLOSE_STATUS_NORMAL, "agent shutting down");
                break;
            default: break;
        }
    }
}

//  --------------------------------------------------------------------------
//  The lws callback

static int
s_callback (struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    s_agent_t *agent = (s_agent_t *) user;
    switch (reason) {
        case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
            if (s_signalled)
                s_app_shutdown ((s_app_t *) lws_context_user (lws_get_context (wsi)));
            return 0;
        case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
            if (agent) {
                char error[160] = "connection failed";
                if (in)
                    snprintf (error, sizeof error, "%s", (const char *) in);
                s_agent_lost (agent, wsi, error);
            }
            return 0;
        case LWS_CALLBACK_CLIENT_ESTABLISHED:
            if (!agent || agent->wsi != wsi)
                return -1;
            s_agent_established (agent);
            return 0;
        case LWS_CALLBACK_CLIENT_RECEIVE:
            if (!agent || agent->wsi != wsi)
                return -1;
            return s_agent_receive (agent, wsi, in, len);
        case LWS_CALLBACK_CLIENT_WRITEABLE:
            if (!agent || agent->wsi != wsi)
                return 0;
            return s_agent_writeable (agent);
        case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
            if (agent && agent->wsi == wsi) {
                const unsigned char *payload = (const unsigned char *) in;
                agent->peer_close =
                    len >= 2 ? (uint16_t) (payload[0] << 8 | payload[1]) : S_CLOSE_NO_STATUS;
                free (agent->close_reason);
                agent->close_reason = len > 2 ? s_printable_dup (payload + 2, len - 2) : NULL;
            }
            return 0;
        case LWS_CALLBACK_CLIENT_CLOSED:
            if (agent)
                s_agent_lost (agent, wsi, "connection closed");
            return 0;
        case LWS_CALLBACK_WSI_DESTROY:
            //  Any other way a wsi of ours can end (lws timeouts included).
            if (agent)
                s_agent_lost (agent, wsi, "no answer in time, or closed during the upgrade");
            return 0;
        default: break;
    }
    return 0;
}

static const struct lws_protocols s_protocols[] = {
    //  Named after the subprotocols, so whichever the server picks binds here.
    {VW_WIRE_SUBPROTO_JSON, s_callback, 0, S_RX_CHUNK, 0, NULL, 0},
    {VW_WIRE_SUBPROTO_MSGPACK, s_callback, 0, S_RX_CHUNK, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

static void
s_lws_log (int level, const char *line)
{
    size_t len = strlen (line);
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    vw_log ((level & LLL_ERR) ? VW_LOG_WARN : VW_LOG_DEBUG, "lws", "%.*s", (int) len, line);
}

static void
s_on_signal (int sig)
{
    s_signalled = sig;
    if (s_context)
        lws_cancel_service (s_context);
}

//  --------------------------------------------------------------------------
//  Options

static void
s_usage (FILE *out)
{
    fprintf (
        out,
        "Usage: viworks-agent --url URL --id ID [options]\n"
        "       viworks-agent --url URL --simulate N [options]\n"
        "\n"
        "Keeps a WebSocket open to the ViWorkS backend, sends heartbeats and runs commands.\n"
        "The token comes from the environment variable VIWORKS_AGENT_TOKEN (preferred: the\n"
        "command line is visible to other users), --token or --token-file.\n"
        "\n"
        "  --url URL             ws:// or wss:// endpoint (default ws://127.0.0.1:8081/ws/agent)\n"
        "  --id ID               agent_id, 1..128 of [A-Za-z0-9_.:-]\n"
        "  --token TOKEN         agent token (default: $VIWORKS_AGENT_TOKEN)\n"
        "  --token-file FILE     lines of \"agent_id token\"; used for the agents it lists\n"
        "  --format json|msgpack subprotocol viworks.v1.json (default) or viworks.v1.msgpack\n"
        "  --hostname H          hostname to report (default: this host's name)\n"
        "  --version-string V    version to report (default: " VW_VERSION ")\n"
        "  --label K=V           a label to report (repeatable, at most 64)\n"
        "  --capability NAME     a capability to report (repeatable, at most 64;\n"
        "                        default: the command types this agent executes)\n"
        "  --heartbeat-ms N      heartbeat interval (default: heartbeat_interval_ms of the\n"
        "                        welcome)\n"
        "  --max-reconnects N    give up after N reconnects without a welcome (default: never;\n"
        "                        with --once: 0)\n"
        "  --once                complete one handshake, send one heartbeat, close with 1000\n"
        "                        and exit 0; exit non-zero if that fails\n"
        "  --insecure            wss: accept self-signed, expired or misnamed certificates\n"
        "  --ca-file FILE        wss: trust the CA certificates in FILE (PEM)\n"
        "  --simulate N          run N agents in this process (load tests)\n"
        "  --id-prefix P         simulated agent ids: P + 5-digit index (default gw-)\n"
        "  --ramp N              simulated agents started per second (default 1000)\n"
        "  --ready-file FILE     write a line to FILE once every agent is online\n"
        "  --raw                 baseline for load tests against any WebSocket server: no\n"
        "                        subprotocol, no hello, {\"type\":\"heartbeat\"} every\n"
        "                        --heartbeat-ms (default 9000); online once the WebSocket is open\n"
        "  --log-level L         trace|debug|info|warn|error (default: $LOG_LEVEL or info)\n"
        "  --log-format F        json (default) or text\n"
        "  --version             print the version and exit\n"
        "  -h, --help            print this help and exit\n"
        "\n"
        "Exit status: 0 stopped by SIGINT/SIGTERM (or --once succeeded), 1 failure,\n"
        "2 bad option, 3 refused by the server (close 4401 or 4400), 4 replaced by a\n"
        "newer connection (close 4409).\n");
}

static int
s_bad_value (const char *option, const char *value, const char *expected)
{
    fprintf (stderr, "viworks-agent: invalid value '%s' for %s (%s)\n", value, option, expected);
    return -1;
}

static int
s_parse_int (const char *option, const char *text, int64_t min, int64_t max, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long value = strtoll (text, &end, 10);
    if (errno || end == text || *end || value < min || value > max) {
        char expected[96];
        snprintf (expected, sizeof expected, "an integer from %lld to %lld", (long long) min,
                  (long long) max);
        return s_bad_value (option, text, expected);
    }
    *out = value;
    return 0;
}

enum {
    O_URL = 256,
    O_ID,
    O_TOKEN,
    O_TOKEN_FILE,
    O_FORMAT,
    O_HOSTNAME,
    O_VERSION_STRING,
    O_LABEL,
    O_CAPABILITY,
    O_HEARTBEAT_MS,
    O_SIMULATE,
    O_ID_PREFIX,
    O_RAMP,
    O_LOG_LEVEL,
    O_LOG_FORMAT,
    O_MAX_RECONNECTS,
    O_ONCE,
    O_INSECURE,
    O_CA_FILE,
    O_READY_FILE,
    O_RAW,
    O_VERSION,
};

//  Returns 0 to run, 1 when --help or --version answered, -1 on a bad option.
static int
s_options_parse (s_options_t *opt, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, O_URL},
        {"id", required_argument, NULL, O_ID},
        {"token", required_argument, NULL, O_TOKEN},
        {"token-file", required_argument, NULL, O_TOKEN_FILE},
        {"format", required_argument, NULL, O_FORMAT},
        {"hostname", required_argument, NULL, O_HOSTNAME},
        {"version-string", required_argument, NULL, O_VERSION_STRING},
        {"label", required_argument, NULL, O_LABEL},
        {"capability", required_argument, NULL, O_CAPABILITY},
        {"heartbeat-ms", required_argument, NULL, O_HEARTBEAT_MS},
        {"simulate", required_argument, NULL, O_SIMULATE},
        {"id-prefix", required_argument, NULL, O_ID_PREFIX},
        {"ramp", required_argument, NULL, O_RAMP},
        {"log-level", required_argument, NULL, O_LOG_LEVEL},
        {"log-format", required_argument, NULL, O_LOG_FORMAT},
        {"max-reconnects", required_argument, NULL, O_MAX_RECONNECTS},
        {"once", no_argument, NULL, O_ONCE},
        {"insecure", no_argument, NULL, O_INSECURE},
        {"ca-file", required_argument, NULL, O_CA_FILE},
        {"ready-file", required_argument, NULL, O_READY_FILE},
        {"raw", no_argument, NULL, O_RAW},
        {"version", no_argument, NULL, O_VERSION},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};

    opt->url = "ws://127.0.0.1:8081/ws/agent";
    opt->token = getenv ("VIWORKS_AGENT_TOKEN");
    opt->version = VW_VERSION;
    opt->id_prefix = "gw-";
    opt->ramp = 1000;
    opt->max_reconnects = -2;  //  not given
    opt->labels = json_object ();
    if (!opt->labels)
        return -1;
    const char *level = getenv ("LOG_LEVEL");
    if (level && *level && vw_log_level_parse (level) < 0) {
        fprintf (stderr, "viworks-agent: invalid LOG_LEVEL '%s' ignored\n", level);
        level = NULL;
    }
    vw_log_set_level (level && *level ? (vw_log_level_t) vw_log_level_parse (level) : VW_LOG_INFO);

    opterr = 0;
    int c;
    while ((c = getopt_long (argc, argv, ":h", longopts, NULL)) != -1) {
        const char *name = argv[optind - 1];
        switch (c) {
            case O_URL: opt->url = optarg; break;
            case O_ID: opt->id = optarg; break;
            case O_TOKEN: opt->token = optarg; break;
            case O_TOKEN_FILE: opt->token_file = optarg; break;
            case O_FORMAT:
                if (strcmp (optarg, "json") == 0)
                    opt->format = VW_WIRE_JSON;
                else if (strcmp (optarg, "msgpack") == 0)
                    opt->format = VW_WIRE_MSGPACK;
                else
                    return s_bad_value ("--format", optarg, "json or msgpack");
                break;
            case O_HOSTNAME: opt->hostname = optarg; break;
            case O_VERSION_STRING: opt->version = optarg; break;
            case O_LABEL: {
                const char *equals = strchr (optarg, '=');
                if (!equals || equals == optarg)
                    return s_bad_value ("--label", optarg, "KEY=VALUE");
                char *key = strndup (optarg, (size_t) (equals - optarg));
                json_t *value = json_string (equals + 1);
                int rc = key && value ? json_object_set_new (opt->labels, key, value) : -1;
                if (rc && !key)
                    json_decref (value);
                free (key);
                if (rc)
                    return s_bad_value ("--label", optarg, "KEY=VALUE in UTF-8");
                if (json_object_size (opt->labels) > 64)
                    return s_bad_value ("--label", optarg, "at most 64 labels");
                break;
            }
            case O_CAPABILITY:
                if (!*optarg)
                    return s_bad_value ("--capability", optarg, "a non-empty name");
                if (!opt->capabilities && !(opt->capabilities = json_array ()))
                    return -1;
                if (json_array_append_new (opt->capabilities, json_string (optarg)))
                    return s_bad_value ("--capability", optarg, "a name in UTF-8");
                if (json_array_size (opt->capabilities) > 64)
                    return s_bad_value ("--capability", optarg, "at most 64 capabilities");
                break;
            case O_HEARTBEAT_MS:
                if (s_parse_int ("--heartbeat-ms", optarg, S_HEARTBEAT_MIN_MS, 86400000,
                                 &opt->heartbeat_ms))
                    return -1;
                break;
            case O_SIMULATE:
                if (s_parse_int ("--simulate", optarg, 1, 1000000, &opt->simulate))
                    return -1;
                break;
            case O_ID_PREFIX: opt->id_prefix = optarg; break;
            case O_RAMP:
                if (s_parse_int ("--ramp", optarg, 1, 1000000, &opt->ramp))
                    return -1;
                break;
            case O_LOG_LEVEL:
                if (vw_log_level_parse (optarg) < 0)
                    return s_bad_value ("--log-level", optarg, "trace|debug|info|warn|error");
                vw_log_set_level ((vw_log_level_t) vw_log_level_parse (optarg));
                break;
            case O_LOG_FORMAT:
                if (strcmp (optarg, "json") == 0)
                    vw_log_set_format (VW_LOG_JSON);
                else if (strcmp (optarg, "text") == 0)
                    vw_log_set_format (VW_LOG_TEXT);
                else
                    return s_bad_value ("--log-format", optarg, "json or text");
                break;
            case O_MAX_RECONNECTS:
                if (s_parse_int ("--max-reconnects", optarg, 0, UINT16_MAX - 1,
                                 &opt->max_reconnects))
                    return -1;
                break;
            case O_ONCE: opt->once = true; break;
            case O_INSECURE: opt->insecure = true; break;
            case O_CA_FILE: opt->ca_file = optarg; break;
            case O_READY_FILE:
                if (!*optarg)
                    return s_bad_value ("--ready-file", optarg, "a file name");
                opt->ready_file = optarg;
                break;
            case O_RAW: opt->raw = true; break;
            case O_VERSION: printf ("viworks-agent %s\n", VW_VERSION); return 1;
            case 'h': s_usage (stdout); return 1;
            case ':':
                fprintf (stderr, "viworks-agent: option '%s' needs a value (see --help)\n", name);
                return -1;
            default:
                if (optopt && optopt < 256)
                    fprintf (stderr, "viworks-agent: unknown option '-%c' (see --help)\n", optopt);
                else
                    fprintf (stderr, "viworks-agent: unknown option '%s' (see --help)\n", name);
                return -1;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "viworks-agent: unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
    if (opt->max_reconnects == -2)
        opt->max_reconnects = opt->once ? 0 : -1;
    if (opt->raw && opt->format == VW_WIRE_MSGPACK) {
        fprintf (stderr,
                 "viworks-agent: --raw sends text frames: --format msgpack does not apply\n");
        return -1;
    }
    if (opt->simulate && opt->id) {
        fprintf (stderr, "viworks-agent: --id and --simulate exclude each other (simulated ids "
                         "are --id-prefix + index)\n");
        return -1;
    }
    if (!opt->simulate && !opt->id) {
        fprintf (stderr, "viworks-agent: --id is required (see --help)\n");
        return -1;
    }
    if (opt->id && !vw_wire_valid_name (opt->id, 128))
        return s_bad_value ("--id", opt->id, "1..128 characters of [A-Za-z0-9_.:-]");
    //  The index adds at least 5 characters.
    if (opt->simulate && *opt->id_prefix && !vw_wire_valid_name (opt->id_prefix, 128 - 7))
        return s_bad_value ("--id-prefix", opt->id_prefix, "0..121 characters of [A-Za-z0-9_.:-]");
    if (opt->token && !*opt->token)
        opt->token = NULL;
    if (!opt->capabilities) {
        //  By default we claim what we execute.
        opt->capabilities = json_array ();
        for (size_t i = 0; i < S_COMMAND_COUNT && opt->capabilities; i++)
            if (s_commands[i].run)
                json_array_append_new (opt->capabilities, json_string (s_commands[i].type));
        if (!opt->capabilities)
            return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Set-up

static int
s_app_parse_url (s_app_t *app)
{
    const char *prot = NULL, *address = NULL, *path = NULL;
    app->url_copy = strdup (app->opt.url);
    if (!app->url_copy || lws_parse_uri (app->url_copy, &prot, &address, &app->port, &path) ||
        !*address)
        return s_bad_value ("--url", app->opt.url, "ws://HOST[:PORT]/PATH or wss://...");
    if (strcmp (prot, "ws") == 0)
        app->tls = false;
    else if (strcmp (prot, "wss") == 0)
        app->tls = true;
    else
        return s_bad_value ("--url", app->opt.url, "the scheme must be ws:// or wss://");
    if (app->port <= 0 || app->port > 65535)
        return s_bad_value ("--url", app->opt.url, "bad port");
    snprintf (app->path, sizeof app->path, "/%s", path ? path : "");
    app->host = address;
    app->address = address;

    //  Simulated agents on a loopback URL spread over 127.0.0.1-250 as
    //  source addresses: 250 times the ephemeral ports of one address.
    struct in_addr in4;
    bool loopback4 = strcmp (address, "localhost") == 0 ||
                     (inet_pton (AF_INET, address, &in4) == 1 && (ntohl (in4.s_addr) >> 24) == 127);
    if (app->opt.simulate && loopback4) {
        if (strcmp (address, "localhost") == 0)
            app->address = "127.0.0.1";  //  an IPv4 source needs an IPv4 peer
        app->spread = true;
        for (int i = 0; i < S_SPREAD_ADDRESSES; i++)
            snprintf (s_source_addresses[i], sizeof s_source_addresses[i], "127.0.0.%d", 1 + i);
    }
    return 0;
}

//  Finds the agent a token-file line names, or NULL.
static s_agent_t *
s_app_agent_by_id (s_app_t *app, const char *id)
{
    if (!app->opt.simulate)
        return strcmp (app->agents[0].id, id) == 0 ? &app->agents[0] : NULL;
    size_t prefix = strlen (app->opt.id_prefix);
    if (strncmp (id, app->opt.id_prefix, prefix) != 0)
        return NULL;
    char *end = NULL;
    unsigned long index = strtoul (id + prefix, &end, 10);
    if (end == id + prefix || *end || index < 1 || index > app->count)
        return NULL;
    s_agent_t *agent = &app->agents[index - 1];
    return strcmp (agent->id, id) == 0 ? agent : NULL;
}

static int
s_app_load_tokens (s_app_t *app)
{
    const char *path = app->opt.token_file;
    FILE *file = fopen (path, "r");
    if (!file) {
        fprintf (stderr, "viworks-agent: cannot open --token-file '%s': %s\n", path,
                 strerror (errno));
        return -1;
    }
    struct stat st;
    if (fstat (fileno (file), &st) == 0 && (st.st_mode & 077))
        vw_warn ("agent", "token file %s is readable by other users (mode %03o); chmod 600 it",
                 path, (unsigned) (st.st_mode & 0777));
    char *line = NULL;
    size_t cap = 0;
    unsigned lineno = 0, used = 0;
    int rc = 0;
    while (rc == 0 && getline (&line, &cap, file) != -1) {
        lineno++;
        char *save = NULL;
        char *id = strtok_r (line, " \t\r\n", &save);
        if (!id || *id == '#')
            continue;
        char *token = strtok_r (NULL, " \t\r\n", &save);
        if (!token || strtok_r (NULL, " \t\r\n", &save)) {
            fprintf (stderr,
                     "viworks-agent: --token-file %s line %u: expected \"agent_id token\"\n", path,
                     lineno);
            rc = -1;
            break;
        }
        s_agent_t *agent = s_app_agent_by_id (app, id);
        if (!agent)
            continue;  //  a file for a larger fleet is fine
        if (agent->token_owned)
            free ((char *) agent->token);
        agent->token = strdup (token);
        agent->token_owned = agent->token != NULL;
        if (!agent->token)
            rc = -1;
        used++;
    }
    free (line);
    fclose (file);
    if (rc == 0)
        vw_info ("agent", "token file %s: tokens for %u of %u agent(s)", path, used, app->count);
    return rc;
}

static int
s_app_setup (s_app_t *app)
{
    if (s_app_parse_url (app))
        return -1;
    if (app->opt.hostname)
        snprintf (app->hostname, sizeof app->hostname, "%s", app->opt.hostname);
    else if (gethostname (app->hostname, sizeof app->hostname - 1) != 0)
        snprintf (app->hostname, sizeof app->hostname, "unknown");

    app->count = app->opt.simulate ? (uint32_t) app->opt.simulate : 1;
    app->agents = calloc (app->count, sizeof (s_agent_t));
    if (!app->agents)
        return -1;
    app->states[S_IDLE] = app->count;
    for (uint32_t i = 0; i < app->count; i++) {
        s_agent_t *agent = &app->agents[i];
        agent->app = app;
        agent->index = i;
        agent->token = app->opt.token;
        if (app->opt.simulate) {
            if (asprintf (&agent->id, "%s%05u", app->opt.id_prefix, i + 1) < 0)
                agent->id = NULL;
        }
        else
            agent->id = strdup (app->opt.id);
        if (!agent->id)
            return -1;
    }
    if (app->opt.token_file && s_app_load_tokens (app))
        return -1;
    if (app->opt.raw)
        return 0;  //  no hello: no token needed
    uint32_t missing = 0;
    for (uint32_t i = 0; i < app->count; i++) {
        const char *token = app->agents[i].token;
        if (!token || !*token || strlen (token) > 512) {
            if (!missing)
                fprintf (stderr,
                         "viworks-agent: agent %s has %s token (VIWORKS_AGENT_TOKEN, --token "
                         "or --token-file; 1..512 bytes)\n",
                         app->agents[i].id, token && *token ? "an overlong" : "no");
            missing++;
        }
    }
    if (missing) {
        if (missing > 1)
            fprintf (stderr, "viworks-agent: %u agents have no usable token\n", missing);
        return -1;
    }
    //  Our hello must pass the backend's own codec: check the first and the
    //  last agent's (ids differ only by index) before connecting anyone.
    for (uint32_t k = 0; k < 2; k++) {
        s_agent_t *agent = &app->agents[k ? app->count - 1 : 0];
        uint8_t *data = NULL;
        size_t size = 0;
        json_t *hello = s_hello_new (agent);
        vw_wire_msg_t msg;
        vw_wire_error_t err = {"malformed", "cannot build the hello"};
        int rc = vw_wire_serialize (app->opt.format, hello, &data, &size);
        if (rc == 0)
            rc = vw_wire_decode (app->opt.format, data, size, &msg, &err);
        json_decref (hello);
        free (data);
        vw_wire_msg_reset (&msg);
        if (rc) {
            fprintf (stderr, "viworks-agent: the hello of agent %s would be refused: %s\n",
                     agent->id, err.message);
            return -1;
        }
    }
    return 0;
}

//  Each simulated agent needs a descriptor: raise the soft limit (and the
//  hard one if we may).
static int
s_app_raise_fd_limit (s_app_t *app)
{
    rlim_t need = (rlim_t) app->count + 64;
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= need)
        return 0;
    struct rlimit wanted = {need, limit.rlim_max >= need ? limit.rlim_max : need};
    if (setrlimit (RLIMIT_NOFILE, &wanted) == 0)
        return 0;
    vw_error ("agent",
              "%u agents need %llu file descriptors; the limit is %llu (raise ulimit -n "
              "or LimitNOFILE)",
              app->count, (unsigned long long) need, (unsigned long long) limit.rlim_max);
    return -1;
}

static void
s_app_destroy (s_app_t *app)
{
    if (app->agents) {
        for (uint32_t i = 0; i < app->count; i++) {
            s_agent_t *agent = &app->agents[i];
            s_agent_reset_io (agent);
            if (agent->token_owned)
                free ((char *) agent->token);
            free (agent->id);
        }
        free (app->agents);
    }
    json_decref (app->opt.labels);
    json_decref (app->opt.capabilities);
    free (app->url_copy);
}

int
main (int argc, char **argv)
{
    s_app_t app;
    memset (&app, 0, sizeof app);
    int rc = s_options_parse (&app.opt, argc, argv);
    if (rc != 0) {
        s_app_destroy (&app);
        return rc > 0 ? S_EXIT_OK : S_EXIT_USAGE;
    }
    if (s_app_setup (&app)) {
        s_app_destroy (&app);
        return S_EXIT_USAGE;
    }
    if (app.opt.simulate && s_app_raise_fd_limit (&app)) {
        s_app_destroy (&app);
        return S_EXIT_FAILURE;
    }
    uint64_t seed = 0;
    if (getrandom (&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t) sizeof seed)
        seed = (uint64_t) vw_clock_wall_ms () ^ ((uint64_t) getpid () << 32);
    s_rng = seed | 1;

    //  The handler only sets a flag (and rings the loop once it exists).
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = s_on_signal;
    sigemptyset (&action.sa_mask);
    sigaction (SIGINT, &action, NULL);
    sigaction (SIGTERM, &action, NULL);
    signal (SIGPIPE, SIG_IGN);

    lws_set_log_level (vw_log_enabled (VW_LOG_DEBUG) ? LLL_ERR | LLL_WARN | LLL_NOTICE : LLL_ERR,
                       s_lws_log);
    struct lws_context_creation_info info;
    memset (&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = s_protocols;
    info.user = &app;
    info.gid = -1;
    info.uid = -1;
    if (app.tls) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.client_ssl_ca_filepath = app.opt.ca_file;
    }
    //  Many handshakes at once when simulating (lws's default is small).
    if (app.opt.simulate)
        info.max_http_header_pool = 256;
    app.context = lws_create_context (&info);
    if (!app.context) {
        vw_error ("agent", "cannot create the libwebsockets context");
        s_app_destroy (&app);
        return S_EXIT_FAILURE;
    }
    s_context = app.context;  //  from now on a signal also wakes the loop

    if (app.opt.simulate)
        vw_info ("agent", "simulating %u agents %s%05u..%s%05u on %s (%s, ramp %lld/s%s)",
                 app.count, app.opt.id_prefix, 1u, app.opt.id_prefix, app.count, app.opt.url,
                 app.opt.raw                         ? "raw"
                 : app.opt.format == VW_WIRE_MSGPACK ? "msgpack"
                                                     : "json",
                 (long long) app.opt.ramp, app.spread ? ", source addresses 127.0.0.1-250" : "");
    else
        vw_info ("agent", "agent %s connecting to %s (%s)", app.agents[0].id, app.opt.url,
                 app.opt.raw                         ? "raw"
                 : app.opt.format == VW_WIRE_MSGPACK ? "msgpack"
                                                     : "json");
    app.slot_ms = app.opt.simulate ? S_BATCH_MS : 1;
    app.ramp_t0 = vw_clock_mono_ms ();
    lws_sul_schedule (app.context, 0, &app.sul_ramp, s_app_on_ramp, 1);
    if (app.opt.simulate)
        lws_sul_schedule (app.context, 0, &app.sul_summary, s_app_on_summary,
                          (lws_usec_t) S_SUMMARY_MS * 1000);

    while (!app.done) {
        if (s_signalled && !app.stopping)
            s_app_shutdown (&app);
        if (!app.done && lws_service (app.context, 0) < 0) {
            vw_error ("agent", "the libwebsockets loop failed");
            app.exit_code = S_EXIT_FAILURE;
            break;
        }
    }

    s_context = NULL;
    for (uint32_t i = 0; i < app.count; i++)
        s_agent_cancel_timers (&app.agents[i]);
    s_buckets_destroy (&app);
    lws_sul_cancel (&app.sul_ramp);
    lws_sul_cancel (&app.sul_summary);
    lws_sul_cancel (&app.sul_deadline);
    //  Destroying the context closes what is left; our callbacks must not
    //  schedule anything then.
    app.stopping = true;
    app.done = true;
    lws_context_destroy (app.context);
    int exit_code = app.exit_code;
    s_app_destroy (&app);
    return exit_code;
}
