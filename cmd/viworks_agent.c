/*  viworks-agent - a gateway agent for the ViWorkS backend (SPEC §3, §4).

    Keeps a WebSocket open to the backend: hello, welcome, heartbeats,
    commands, and reconnects with exponential backoff and full jitter. With
    --simulate N it runs N agents in one lws context on one thread, for load
    tests. docs/agent.md is the user's guide.

    Everything happens in one event loop: lws on a libev (epoll) loop of
    ours. Timers are libev's (a heap), not lws_sul: lws 4.1 re-arms its
    libev timer only after its own events, so an earlier lws_sul set from a
    quiet loop waits for the previous deadline. Each agent owns one timer
    whose meaning follows its state (ramp, backoff, welcome deadline);
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
#include "vw_logring.h"
#include "vw_runner.h"
#include "vw_simmetrics.h"
#include "vw_text.h"
#include "vw_unacked.h"
#include "vw_wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ev.h>
#include <getopt.h>
#include <libwebsockets.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

//  Exit codes (docs/agent.md).
#define S_URLS_MAX      8  //  --url may be given this many times
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
//  wake-up of the loop serves the few agents due in the slot instead of one
//  each. Small, so that what the backend sees stays close to a real fleet's
//  spread arrivals (10,000 agents every 9 s: ~6 heartbeats per slot).
#define S_BATCH_MS 5
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
typedef struct s_cmd_t s_cmd_t;

//  Agents whose heartbeat is due in the same slot share one timer: one
//  wake-up serves them all.
typedef struct s_bucket_t {
    ev_timer timer;
    s_app_t *app;
    struct s_bucket_t *next;  //  hash chain
    int64_t slot;             //  due at slot * slot_ms (monotonic)
    lws_dll2_owner_t agents;
} s_bucket_t;

//  One agent: a few hundred bytes plus lws's wsi while connected.
typedef struct {
    ev_timer timer;        //  the agent's timer, meaning set by the state
    lws_dll2_t beat_link;  //  in a heartbeat bucket while ONLINE
    s_app_t *app;
    struct lws *wsi;    //  set while CONNECTING, HANDSHAKE or ONLINE
    char *id;           //  owned
    const char *token;  //  app->opt.token, or owned (token file)
    s_frame_t *head;    //  output queue
    s_frame_t *tail;
    unsigned char *rx;  //  reassembly of a message split over callbacks
    s_cmd_t *cmds;      //  recent commands, newest first (see Commands)
    struct s_tm_t *tm;  //  telemetry, while --telemetry-ms is set (see Telemetry)
    size_t rx_size;
    char *close_reason;     //  from the server's close frame, until logged
    const char *close_why;  //  reason of the close we send (static text)
    int64_t online_at;      //  monotonic ms of the welcome
    int64_t heartbeat_ms;
    uint32_t index;
    uint16_t backoff_exp;    //  grows with each failure, reset by a long session
    int64_t retry_after_ms;  //  the server's word on when to come back (error frame), 0 if none
    uint16_t retries;        //  reconnects since the last welcome
    uint16_t queued;
    uint16_t done;        //  completed commands in cmds
    uint16_t peer_close;  //  code of the server's close frame, 0 if none
    uint16_t our_close;   //  code we close with from WRITEABLE, 0 if none
    uint8_t state;
    uint8_t target;     //  which --url it connects to (the next after a failed connect)
    uint8_t stop_code;  //  exit code this agent stopped with
    uint8_t give_up;    //  non-zero: stop with this exit code once closed
    bool heartbeat_queued;
    bool token_owned;
    bool drop;  //  --disconnect-fraction: drop the connection after this frame
} s_agent_t;

typedef struct {
    const char *url;               //  the first --url
    const char *urls[S_URLS_MAX];  //  every --url, in order
    int nurls;
    int pass, urls_pass;  //  options pass (1 config file, 2 command line); the urls' pass
    const char *id;
    const char *token;
    const char *token_file;
    const char *hostname;
    const char *version;
    const char *id_prefix;
    const char *ca_file;
    vw_wire_format_t format;
    int64_t heartbeat_ms;       //  0: heartbeat_interval_ms of the welcome
    int64_t telemetry_ms;       //  a point every this many ms; 0: no telemetry
    int64_t telemetry_batch;    //  points per frame
    int64_t telemetry_metrics;  //  simulated: metrics per point
    int64_t telemetry_buffer;   //  unacked frames kept
    int64_t simulate;           //  0: one agent named --id
    int64_t ramp;               //  connections started per second
    int64_t max_reconnects;     //  -1: no limit
    const char *ready_file;     //  a line is written here once all agents are online
    bool once;
    bool insecure;
    bool raw;                     //  baseline mode: no subprotocol, no hello, bare heartbeats
    json_t *labels;               //  object of strings
    json_t *capabilities;         //  array of strings; NULL until defaulted
    json_t *allow_exec;           //  array of absolute paths exec may run
    json_t *allow_service;        //  array of service names restart_service may restart
    const char *service_command;  //  program and arguments, the name is appended
    const char *config_target;    //  update_config writes here
    const char *config_apply;     //  and then runs this with the path, if set
    const char *upgrade_command;  //  upgrade runs this with version and url
    int64_t max_running;          //  programs at once
    int64_t output_max;           //  bytes of stdout and of stderr kept
    double fail_fraction;         //  fault injection (tests, benchmarks)
    double hang_fraction;
    double disconnect_fraction;
    char **config_args;    //  --config FILE as arguments (owned; options point into it)
    const char *key_file;  //  Ed25519 seed for the challenge (SPEC §3)
    const char *gen_key;   //  write a new key here, print its public half, exit
} s_options_t;

//  One --url, parsed.
typedef struct {
    const char *url;
    char *url_copy;       //  cut up by lws_parse_uri; address and host point into it
    const char *address;  //  what we connect to
    const char *host;     //  Host header
    char path[1024];
    int port;
    bool tls;
    bool spread;  //  bind each agent to a source address 127.0.0.x
} s_target_t;

struct s_app_t {
    s_options_t opt;
    s_target_t targets[S_URLS_MAX];
    int ntargets;
    bool tls;  //  some target is wss
    char hostname[256];
    struct lws_context *context;
    struct ev_loop *loop;  //  epoll through libev; lws runs on it (foreign loop)
    s_agent_t *agents;
    uint32_t count;
    uint32_t started;
    int64_t ramp_t0;
    ev_timer timer_ramp;
    ev_timer timer_summary;
    ev_timer timer_deadline;
    ev_timer timer_tm;   //  telemetry: one slice of the agents per tick
    uint32_t tm_slices;  //  the agents take points in this many slices of the interval
    uint64_t tm_tick;
    uint64_t tm_frames, tm_acked, tm_refused, tm_values;
    uint32_t *tm_latency;  //  acks of the current summary interval by ms after the send
    s_bucket_t *buckets[S_BUCKETS];
    int64_t slot_ms;
    vw_runner_t *runner;
    vw_logring_t *logs;  //  recent log lines, for collect_logs
    s_cmd_t **runs;      //  commands running a program (max_running slots)
    size_t running;
    uint64_t run_seq;
    char **service_argv;  //  --service-command split on blanks (owned)
    unsigned char sign_key[crypto_sign_SECRETKEYBYTES];  //  --key-file
    bool has_key;
    uint32_t states[S_STATE_COUNT];
    uint64_t sent, received, connects, disconnects;
    uint64_t last_sent, last_received;
    bool all_online;  //  every agent is online now
    int64_t lost_at;  //  monotonic ms when the last round of all-online ended
    uint32_t rounds;  //  times every agent was online together
    bool stopping;
    bool done;
    int exit_code;
};

static volatile sig_atomic_t s_signalled;
static struct lws_context *volatile s_context;
static uint64_t s_rng;
static char s_source_addresses[S_SPREAD_ADDRESSES][16];

static void s_agent_connect (s_agent_t *agent);
static void s_agent_on_timer (struct ev_loop *loop, ev_timer *timer, int revents);
static void s_agent_heartbeat (s_agent_t *agent);
static int s_app_load_key (s_app_t *app);
static void s_tm_pump (s_agent_t *agent);

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

//  (Re)starts a one-shot timer delay_ms from now (libev's cached time is
//  that of the pass's start: refreshed first).
static void
s_timer_start (s_app_t *app, ev_timer *timer, int64_t delay_ms)
{
    ev_timer_stop (app->loop, timer);
    ev_now_update (app->loop);
    ev_timer_set (timer, delay_ms > 0 ? (double) delay_ms / 1000.0 : 0., 0.);
    ev_timer_start (app->loop, timer);
}

static void
s_agent_timer (s_agent_t *agent, int64_t delay_ms)
{
    s_timer_start (agent->app, &agent->timer, delay_ms);
}

//  Has lws drop the connection at once. lws does that from a timer of its
//  own that, on a quiet loop, only its next event would look at: ring it.
static void
s_agent_kill (s_agent_t *agent)
{
    lws_set_timeout (agent->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    lws_cancel_service (agent->app->context);
}

static void
s_bucket_on_timer (struct ev_loop *loop, ev_timer *timer, int revents)
{
    s_bucket_t *bucket = (s_bucket_t *) timer->data;
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
    ev_init (&bucket->timer, s_bucket_on_timer);
    bucket->timer.data = bucket;
    s_timer_start (app, &bucket->timer, slot * app->slot_ms - now);
    return bucket;
}

static void
s_buckets_destroy (s_app_t *app)
{
    for (int i = 0; i < S_BUCKETS; i++)
        while (app->buckets[i]) {
            s_bucket_t *bucket = app->buckets[i];
            app->buckets[i] = bucket->next;
            ev_timer_stop (app->loop, &bucket->timer);
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
s_agent_next_heartbeat_in (s_agent_t *agent, int64_t delay_ms)
{
    s_app_t *app = agent->app;
    int64_t now = vw_clock_mono_ms ();
    int64_t slot = (now + delay_ms) / app->slot_ms;
    s_bucket_t *bucket = s_bucket_get (app, slot, now);
    if (!lws_dll2_is_detached (&agent->beat_link))
        lws_dll2_remove (&agent->beat_link);
    if (bucket)
        lws_dll2_add_tail (&agent->beat_link, &bucket->agents);
    else
        s_agent_timer (agent, slot * app->slot_ms - now);  //  a timer of its own
}

static void
s_agent_next_heartbeat (s_agent_t *agent)
{
    s_agent_next_heartbeat_in (agent, agent->heartbeat_ms);
}

static void
s_agent_cancel_timers (s_agent_t *agent)
{
    ev_timer_stop (agent->app->loop, &agent->timer);
    if (!lws_dll2_is_detached (&agent->beat_link))
        lws_dll2_remove (&agent->beat_link);
}

static void
s_agent_set_state (s_agent_t *agent, s_state_t state)
{
    s_app_t *app = agent->app;
    if (agent->state == S_ONLINE && state != S_ONLINE && app->all_online) {
        app->all_online = false;
        app->lost_at = vw_clock_mono_ms ();
    }
    app->states[agent->state]--;
    app->states[state]++;
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
    ev_break (app->loop, EVBREAK_ALL);
    ev_timer_stop (app->loop, &app->timer_ramp);
    ev_timer_stop (app->loop, &app->timer_summary);
    ev_timer_stop (app->loop, &app->timer_deadline);
    ev_timer_stop (app->loop, &app->timer_tm);
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
        s_agent_kill (agent);
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
        if (agent->tm)
            s_tm_pump (agent);
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

//  --------------------------------------------------------------------------
//  Telemetry (SPEC §3). Every --telemetry-ms an agent takes a point: this
//  host's figures, or made-up gateway metrics when simulating. Every
//  --telemetry-batch points make a frame with the next seq; the frame is
//  kept (vw_unacked) until the backend acks it, and whatever is unacked is
//  sent again on the next session. Simulated agents take their points in
//  slices spread over the interval, as a real fleet's arrive.

#define S_TM_QUEUE_LOW   (S_QUEUE_MAX / 2)  //  unacked frames go out while the queue is below this
#define S_TM_LATENCY_MAX 10000  //  ack latencies counted to the ms up to this (the rest: over)

typedef struct s_tm_t {
    vw_unacked_t *unacked;
    json_t *batch;        //  points not in a frame yet
    int64_t seq;          //  the next frame's
    int64_t sent_upto;    //  highest seq queued on this session (-1: none)
    int64_t resend_at;    //  monotonic ms: send the unacked again (after an `unavailable`)
    int64_t resend_from;  //  from this seq (the lowest refused; -1: every unacked frame)
    double values[];      //  simulated: each metric's current value
} s_tm_t;

static s_tm_t *
s_tm_new (s_app_t *app)
{
    size_t metrics = app->opt.simulate ? (size_t) app->opt.telemetry_metrics : 0;
    s_tm_t *tm = (s_tm_t *) calloc (1, sizeof *tm + metrics * sizeof (double));
    if (!tm)
        return NULL;
    tm->unacked = vw_unacked_new ((size_t) app->opt.telemetry_buffer);
    tm->batch = json_array ();
    //  A seq that survives restarts without being stored anywhere: the
    //  clock in ms, one frame at a time from there (SPEC §3).
    tm->seq = vw_clock_wall_ms ();
    tm->sent_upto = -1;
    vw_simmetrics_init (tm->values, metrics);
    if (!tm->unacked || !tm->batch) {
        vw_unacked_destroy (&tm->unacked);
        json_decref (tm->batch);
        free (tm);
        return NULL;
    }
    return tm;
}

static void
s_tm_destroy (s_tm_t **tm_p)
{
    s_tm_t *tm = *tm_p;
    if (!tm)
        return;
    vw_unacked_destroy (&tm->unacked);
    json_decref (tm->batch);
    free (tm);
    *tm_p = NULL;
}

//  Reads a number after `key` in a /proc file; -1 if it is not there.
static double
s_proc_number (const char *path, const char *key)
{
    char buf[8192];
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    size_t n = fread (buf, 1, sizeof buf - 1, file);
    fclose (file);
    buf[n] = 0;
    const char *at = *key ? strstr (buf, key) : buf;
    return at ? strtod (at + strlen (key), NULL) : -1;
}

//  This host's figures: load, memory, uptime, bytes through its interfaces.
static json_t *
s_tm_host_metrics (void)
{
    json_t *metrics = json_object ();
    double load1 = s_proc_number ("/proc/loadavg", "");
    double total = s_proc_number ("/proc/meminfo", "MemTotal:");
    double available = s_proc_number ("/proc/meminfo", "MemAvailable:");
    double uptime = s_proc_number ("/proc/uptime", "");
    if (load1 >= 0)
        json_object_set_new (metrics, "load1", json_real (load1));
    if (total > 0 && available >= 0) {
        json_object_set_new (metrics, "mem_total_mb", json_integer ((json_int_t) (total / 1024)));
        json_object_set_new (metrics, "mem_used_mb",
                             json_integer ((json_int_t) ((total - available) / 1024)));
    }
    if (uptime >= 0)
        json_object_set_new (metrics, "uptime_s", json_integer ((json_int_t) uptime));
    FILE *file = fopen ("/proc/net/dev", "r");
    if (file) {
        char line[512];
        unsigned long long rx = 0, tx = 0, r, t;
        char name[64];
        while (fgets (line, sizeof line, file))
            //  "  eth0: rx_bytes packets errs drop fifo frame compressed multicast tx_bytes ..."
            if (sscanf (line, " %63[^:]: %llu %*u %*u %*u %*u %*u %*u %*u %llu", name, &r, &t) ==
                    3 &&
                strcmp (name, "lo") != 0) {
                rx += r;
                tx += t;
            }
        fclose (file);
        json_object_set_new (metrics, "rx_bytes", json_integer ((json_int_t) rx));
        json_object_set_new (metrics, "tx_bytes", json_integer ((json_int_t) tx));
    }
    if (json_object_size (metrics) == 0)
        json_object_set_new (metrics, "up", json_integer (1));
    return metrics;
}

static int
s_tm_send_one (void *arg, int64_t seq, const void *data, size_t size, int64_t *stamp)
{
    s_agent_t *agent = (s_agent_t *) arg;
    if (seq <= agent->tm->sent_upto)
        return 0;
    if (agent->queued >= S_TM_QUEUE_LOW)
        return 1;  //  the rest when the queue has drained
    if (s_agent_queue (agent, data, size, false))
        return 1;
    agent->tm->sent_upto = seq;
    agent->app->tm_frames++;
    *stamp = vw_clock_mono_ms ();  //  the latest send: ack latency counts from it
    return 0;
}

//  Sends the unacked frames not sent on this session yet, as far as the
//  output queue allows (more after each write).
static void
s_tm_pump (s_agent_t *agent)
{
    if (agent->tm && agent->state == S_ONLINE && agent->wsi && !agent->our_close)
        vw_unacked_each (agent->tm->unacked, s_tm_send_one, agent);
}

//  One point; a full batch becomes a frame.
static void
s_tm_sample (s_agent_t *agent)
{
    s_app_t *app = agent->app;
    s_tm_t *tm = agent->tm;
    json_t *metrics =
        app->opt.simulate
            ? vw_simmetrics_step (tm->values, (size_t) app->opt.telemetry_metrics, &s_rng)
            : s_tm_host_metrics ();
    app->tm_values += json_object_size (metrics);
    json_array_append_new (
        tm->batch,
        json_pack ("{s:I, s:o}", "ts", (json_int_t) vw_clock_wall_ms (), "metrics", metrics));
    if ((int64_t) json_array_size (tm->batch) < app->opt.telemetry_batch)
        return;
    int64_t seq = tm->seq++;
    json_t *frame = json_pack ("{s:s, s:I, s:o}", "type", "telemetry", "seq", (json_int_t) seq,
                               "points", tm->batch);
    tm->batch = json_array ();
    uint8_t *data = NULL;
    size_t size = 0;
    if (frame && vw_wire_serialize (app->opt.format, frame, &data, &size) == 0) {
        size_t dropped = vw_unacked_dropped (tm->unacked);
        vw_unacked_add (tm->unacked, seq, data, size);
        if (vw_unacked_dropped (tm->unacked) != dropped && dropped % 1000 == 0)
            vw_warn ("agent",
                     "%s: %zu telemetry frames wait for an ack; dropping the oldest "
                     "(%llu so far)",
                     agent->id, vw_unacked_size (tm->unacked),
                     (unsigned long long) vw_unacked_dropped (tm->unacked));
    }
    free (data);
    json_decref (frame);
    s_tm_pump (agent);
}

//  The backend acked a frame, or refused one (an error naming its seq).
static void
s_tm_on_ack (s_agent_t *agent, int64_t seq)
{
    s_app_t *app = agent->app;
    int64_t sent = 0;
    if (!agent->tm || !vw_unacked_remove (agent->tm->unacked, seq, &sent))
        return;
    app->tm_acked++;
    int64_t ms = sent ? vw_clock_mono_ms () - sent : 0;
    if (app->tm_latency)
        app->tm_latency[ms < 0 ? 0 : ms > S_TM_LATENCY_MAX ? S_TM_LATENCY_MAX : ms]++;
}

//  The ack latency of this interval at fraction q (0..1), in ms; -1 with no acks.
static int64_t
s_tm_latency_at (const s_app_t *app, double q)
{
    uint64_t total = 0, seen = 0;
    for (int i = 0; app->tm_latency && i <= S_TM_LATENCY_MAX; i++)
        total += app->tm_latency[i];
    if (!total)
        return -1;
    uint64_t want = (uint64_t) (q * (double) total);
    for (int i = 0; i <= S_TM_LATENCY_MAX; i++)
        if ((seen += app->tm_latency[i]) > want)
            return i;
    return S_TM_LATENCY_MAX;
}

static void
s_tm_on_error (s_agent_t *agent, const vw_wire_msg_t *msg)
{
    s_tm_t *tm = agent->tm;
    if (!tm)
        return;
    if (msg->code && strcmp (msg->code, "unavailable") == 0) {
        //  Not stored this time: it goes again a little later, with the
        //  frames sent after it (those before it are on their way, or were
        //  refused too and said so). Further refusals meanwhile do not put
        //  the resend off.
        int64_t after = msg->retry_after_ms > 0 ? msg->retry_after_ms : 1000;
        if (!tm->resend_at) {
            tm->resend_at = vw_clock_mono_ms () + after;
            tm->resend_from = msg->seq;
        }
        else if (msg->seq < tm->resend_from)
            tm->resend_from = msg->seq;
        vw_debug ("agent", "%s: telemetry seq %lld not stored; sending again in %lld ms", agent->id,
                  (long long) msg->seq, (long long) after);
        return;
    }
    //  Refused for good (a point the backend will never take): dropped.
    if (vw_unacked_remove (tm->unacked, msg->seq, NULL))
        agent->app->tm_refused++;
    vw_warn ("agent", "%s: telemetry seq %lld refused: %s: %s", agent->id, (long long) msg->seq,
             msg->code, msg->message ? msg->message : "");
}

static void
s_app_on_tm_tick (struct ev_loop *loop, ev_timer *timer, int revents)
{
    s_app_t *app = (s_app_t *) timer->data;
    if (app->stopping)
        return;
    uint32_t slice = (uint32_t) (app->tm_tick++ % app->tm_slices);
    int64_t now = vw_clock_mono_ms ();
    for (uint32_t i = slice; i < app->count; i += app->tm_slices) {
        s_agent_t *agent = &app->agents[i];
        if (agent->state == S_STOPPED)
            continue;
        if (!agent->tm && !(agent->tm = s_tm_new (app)))
            continue;
        if (agent->tm->resend_at && now >= agent->tm->resend_at) {
            agent->tm->resend_at = 0;
            if (agent->tm->resend_from - 1 < agent->tm->sent_upto)
                agent->tm->sent_upto = agent->tm->resend_from < 0 ? -1 : agent->tm->resend_from - 1;
            s_tm_pump (agent);
        }
        s_tm_sample (agent);
    }
}

//  Starts the telemetry ticks: the interval cut into slices of at least
//  S_BATCH_MS, each slice's agents taking their point together.
static void
s_app_tm_start (s_app_t *app)
{
    if (!app->opt.telemetry_ms || app->opt.raw || app->opt.once)
        return;
    int64_t slices = app->opt.telemetry_ms / S_BATCH_MS;
    if (slices > (int64_t) app->count)
        slices = app->count;
    app->tm_slices = slices > 0 ? (uint32_t) slices : 1;
    app->tm_latency = (uint32_t *) calloc (S_TM_LATENCY_MAX + 1, sizeof (uint32_t));
    double period = (double) app->opt.telemetry_ms / 1000.0 / app->tm_slices;
    ev_init (&app->timer_tm, s_app_on_tm_tick);
    app->timer_tm.data = app;
    ev_timer_set (&app->timer_tm, period, period);
    ev_timer_start (app->loop, &app->timer_tm);
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

//  `attempt` is echoed so that the backend can tell this answer from a late
//  one to an earlier attempt (docs/protocol.md); 0 leaves it out.
static void
s_agent_send_result (s_agent_t *agent, const char *command_id, int64_t attempt, json_t *result,
                     const char *error)
{
    json_t *frame = json_pack ("{s:s, s:s, s:s, s:o?, s:s?}", "type", "command_result",
                               "command_id", command_id, "status", error ? "failed" : "completed",
                               "result", result, "error", error);
    if (frame && attempt > 0)
        json_object_set_new (frame, "attempt", json_integer (attempt));
    s_agent_send (agent, frame, false);
}

//  --------------------------------------------------------------------------
//  Commands (docs/agent.md). Delivery is at-least-once (SPEC §3), so each
//  agent remembers its recent commands by command_id: one still running is
//  not started twice, one that completed answers its stored result again,
//  and one that failed or was cancelled runs again (the backend only sends
//  those again to retry them). Programs (exec, restart_service, the
//  update_config apply step, upgrade) run on vw_runner's threads, which ring
//  the lws loop when they finish; everything else completes at once.

#define S_DONE_KEEP       32    //  completed commands remembered per agent
#define S_LOG_LINES       1000  //  collect_logs: lines kept in memory
#define S_LOG_DEFAULT     100   //  collect_logs: lines returned without `lines`
#define S_ARGS_MAX        256   //  exec: arguments
#define S_KILL_GRACE      2000  //  SIGTERM to SIGKILL, ms
#define S_DEADLINE_MARGIN 1000  //  a program's deadline: the command's timeout + this

typedef enum { S_CMD_RUNNING, S_CMD_HUNG, S_CMD_DONE } s_cmd_state_t;

struct s_cmd_t {
    s_cmd_t *next;  //  the agent's list, newest first
    s_agent_t *agent;
    char *id;
    char *type;
    json_t *result;   //  DONE: what it completed with
    json_t *extra;    //  RUNNING: fields added to the program's result
    uint64_t run;     //  RUNNING a program: its vw_runner id, else 0
    int64_t attempt;  //  the latest attempt the backend sent it as, echoed in the result
    uint8_t state;
    bool cancelled;  //  RUNNING: cancel asked; the run's end is not reported
};

static void
s_cmd_destroy (s_cmd_t **cmd_p)
{
    s_cmd_t *cmd = *cmd_p;
    if (!cmd)
        return;
    free (cmd->id);
    free (cmd->type);
    json_decref (cmd->result);
    json_decref (cmd->extra);
    free (cmd);
    *cmd_p = NULL;
}

static s_cmd_t *
s_cmd_find (s_agent_t *agent, const char *id)
{
    for (s_cmd_t *cmd = agent->cmds; cmd; cmd = cmd->next)
        if (strcmp (cmd->id, id) == 0)
            return cmd;
    return NULL;
}

//  Takes a command off the table of running programs; its run is over.
static void
s_cmd_ran (s_cmd_t *cmd)
{
    s_app_t *app = cmd->agent->app;
    for (size_t i = 0; cmd->run && i < app->running; i++)
        if (app->runs[i] == cmd) {
            app->runs[i] = app->runs[--app->running];
            break;
        }
    cmd->run = 0;
}

//  Unlinks and frees a command (and its place among the running).
static void
s_cmd_forget (s_cmd_t *cmd)
{
    s_agent_t *agent = cmd->agent;
    for (s_cmd_t **link = &agent->cmds; *link; link = &(*link)->next)
        if (*link == cmd) {
            *link = cmd->next;
            break;
        }
    if (cmd->state == S_CMD_DONE)
        agent->done--;
    s_cmd_ran (cmd);
    s_cmd_destroy (&cmd);
}

static s_cmd_t *
s_cmd_new (s_agent_t *agent, const vw_wire_msg_t *msg)
{
    s_cmd_t *cmd = (s_cmd_t *) calloc (1, sizeof (s_cmd_t));
    if (!cmd || !(cmd->id = strdup (msg->command_id)) ||
        !(cmd->type = strdup (msg->command_type))) {
        s_cmd_destroy (&cmd);
        return NULL;
    }
    cmd->agent = agent;
    cmd->attempt = msg->attempt;
    cmd->state = S_CMD_RUNNING;
    cmd->next = agent->cmds;
    agent->cmds = cmd;
    return cmd;
}

//  The command is over: answer, and remember it if it completed.
static void
s_cmd_finish (s_cmd_t *cmd, json_t *result, const char *error)
{
    s_agent_t *agent = cmd->agent;
    s_note (agent->app, "%s: command %s (%s): %s%s", agent->id, cmd->id, cmd->type,
            error ? "failed: " : "completed", error ? error : "");
    //  Only a welcomed session takes a result: one that ended while the
    //  agent was away (or reconnecting, before the welcome) is lost to the
    //  backend, which sends the command again; a completed one is answered
    //  from memory then, a failed one runs again.
    if (agent->state == S_ONLINE)
        s_agent_send_result (agent, cmd->id, cmd->attempt, json_incref (result), error);
    if (error) {
        json_decref (result);
        s_cmd_forget (cmd);
        return;
    }
    cmd->state = S_CMD_DONE;
    cmd->result = result;
    //  Forget the oldest completed ones beyond what we keep.
    if (++agent->done > S_DONE_KEEP) {
        s_cmd_t *oldest = NULL;
        for (s_cmd_t *c = agent->cmds; c; c = c->next)
            if (c->state == S_CMD_DONE)
                oldest = c;
        s_cmd_forget (oldest);
    }
}

//  Starts a program for cmd; *extra (taken) is merged into its result.
static int
s_cmd_spawn (s_cmd_t *cmd, const char *const argv[], int64_t timeout_ms, json_t *extra, char *error,
             size_t errlen)
{
    s_app_t *app = cmd->agent->app;
    if (app->running >= (size_t) app->opt.max_running) {
        json_decref (extra);
        snprintf (error, errlen, "busy: %zu programs running (--max-running)", app->running);
        return -1;
    }
    //  The backend's timeout (counted from the send) comes first and its
    //  cancel stops the program; our own deadline, a little later, covers a
    //  cancel that never arrives without racing it.
    uint64_t run = ++app->run_seq;
    int64_t deadline = (timeout_ms > 0 ? timeout_ms : 30000) + S_DEADLINE_MARGIN;
    if (vw_runner_start (app->runner, run, argv, deadline)) {
        json_decref (extra);
        snprintf (error, errlen, "cannot start %s (out of resources)", argv[0]);
        return -1;
    }
    cmd->run = run;
    cmd->extra = extra;
    app->runs[app->running++] = cmd;
    return 1;
}

//  A handler returns 0 with *result set (completed), -1 with error set
//  (failed; *result may say more) or 1 when it started a program.
typedef int s_command_fn (s_cmd_t *cmd, const vw_wire_msg_t *msg, json_t **result, char *error,
                          size_t errlen);

static int
s_command_ping (s_cmd_t *cmd, const vw_wire_msg_t *msg, json_t **result, char *error, size_t errlen)
{
    *result = json_pack ("{s:b}", "pong", 1);
    return 0;
}

static bool
s_listed (json_t *list, const char *name)
{
    size_t i;
    json_t *item;
    json_array_foreach (list, i, item)
    {
        if (strcmp (json_string_value (item), name) == 0)
            return true;
    }
    return false;
}

static int
s_command_exec (s_cmd_t *cmd, const vw_wire_msg_t *msg, json_t **result, char *error, size_t errlen)
{
    s_app_t *app = cmd->agent->app;
    const char *program = json_string_value (json_object_get (msg->payload, "cmd"));
    json_t *args = json_object_get (msg->payload, "args");
    if (!program) {
        snprintf (error, errlen, "payload.cmd must be a string");
        return -1;
    }
    if (!s_listed (app->opt.allow_exec, program)) {
        snprintf (error, errlen, "'%.200s' is not in this agent's exec allow-list (--allow-exec)",
                  program);
        return -1;
    }
    if (args && (!json_is_array (args) || json_array_size (args) > S_ARGS_MAX)) {
        snprintf (error, errlen, "payload.args must be an array of at most %d strings", S_ARGS_MAX);
        return -1;
    }
    const char *argv[S_ARGS_MAX + 2] = {program};
    size_t argc = 1, i;
    json_t *arg;
    json_array_foreach (args, i, arg)
    {
        if (!(argv[argc++] = json_string_value (arg))) {
            snprintf (error, errlen, "payload.args[%zu] must be a string", i);
            return -1;
        }
    }
    argv[argc] = NULL;
    return s_cmd_spawn (cmd, argv, msg->timeout_ms, NULL, error, errlen);
}

static int
s_command_restart_service (s_cmd_t *cmd, const vw_wire_msg_t *msg, json_t **result, char *error,
                           size_t errlen)
{
    s_app_t *app = cmd->agent->app;
    const char *name = json_string_value (json_object_get (msg->payload, "name"));
    if (!name) {
        snprintf (error, errlen, "payload.name must be a string");
        return -1;
    }
    if (!s_listed (app->opt.allow_service, name)) {
        snprintf (error, errlen,
                  "service '%.200s' is not in this agent's allow-list (--allow-service)", name);
        return -1;
    }
    const char *argv[S_ARGS_MAX + 2];
    size_t argc = 0;
    for (; app->service_argv[argc]; argc++)
        argv[argc] = app->service_argv[argc];
    argv[argc++] = name;
    argv[argc] = NULL;
    return s_cmd_spawn (cmd, argv, msg->timeout_ms, json_pack ("{s:s}", "service", name), error,
                        errlen);
}

//  Writes the config atomically (a temporary file, fsync, rename), then
//  runs --config-apply on it if given.
static int
s_command_update_config (s_cmd_t *cmd, const vw_wire_msg_t *msg, json_t **result, char *error,
                         size_t errlen)
{
    s_app_t *app = cmd->agent->app;
    json_t *config = json_object_get (msg->payload, "config");
    const char *target = app->opt.config_target;
    if (!target) {
        snprintf (error, errlen, "update_config is not set up on this agent (--config-target)");
        return -1;
    }
    if (!json_is_object (config)) {
        snprintf (error, errlen, "payload.config must be an object");
        return -1;
    }
    char *text = json_dumps (config, JSON_INDENT (2));
    if (!text) {
        snprintf (error, errlen, "out of memory");
        return -1;
    }
    size_t size = strlen (text);
    text[size++] = '\n';  //  json_dumps's terminator becomes the final newline
    char temp[4096];
    snprintf (temp, sizeof temp, "%s.tmp", target);
    int fd = open (temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write (fd, text, size) == (ssize_t) size && fsync (fd) == 0;
    if (fd >= 0 && close (fd) != 0)
        ok = false;
    if (ok && rename (temp, target) != 0)
        ok = false;
    if (!ok) {
        snprintf (error, errlen, "cannot write %s: %s", target, strerror (errno));
        if (fd >= 0)
            unlink (temp);
        free (text);
        return -1;
    }
    unsigned char digest[crypto_hash_sha256_BYTES];
    char hex[crypto_hash_sha256_BYTES * 2 + 1];
    crypto_hash_sha256 (digest, (const unsigned char *) text, size);
    sodium_bin2hex (hex, sizeof hex, digest, sizeof digest);
    free (text);
    json_t *written =
        json_pack ("{s:s, s:I, s:s}", "path", target, "bytes", (json_int_t) size, "sha256", hex);
    if (!app->opt.config_apply) {
        *result = written;
        return 0;
    }
    const char *argv[] = {app->opt.config_apply, target, NULL};
    return s_cmd_spawn (cmd, argv, msg->timeout_ms, written, error, errlen);
}

static int
s_command_collect_logs (s_cmd_t *cmd, const vw_wire_msg_t *msg, json_t **result, char *error,
                        size_t errlen)
{
    json_t *since = json_object_get (msg->payload, "since_ms");
    json_t *lines = json_object_get (msg->payload, "lines");
    json_int_t want = json_is_integer (lines) ? json_integer_value (lines) : S_LOG_DEFAULT;
    if (want < 1 || want > S_LOG_LINES)
        want = want < 1 ? 1 : S_LOG_LINES;
    json_t *collected = vw_logring_collect (
        cmd->agent->app->logs, json_is_integer (since) ? json_integer_value (since) : 0,
        (size_t) want);
    *result = json_pack ("{s:I, s:o}", "count", (json_int_t) json_array_size (collected), "lines",
                         collected);
    return 0;
}

static int
s_command_upgrade (s_cmd_t *cmd, const vw_wire_msg_t *msg, json_t **result, char *error,
                   size_t errlen)
{
    s_app_t *app = cmd->agent->app;
    const char *version = json_string_value (json_object_get (msg->payload, "version"));
    const char *url = json_string_value (json_object_get (msg->payload, "url"));
    if (!app->opt.upgrade_command) {
        snprintf (error, errlen, "upgrades are not set up on this agent (--upgrade-command)");
        return -1;
    }
    if (!version || !url) {
        snprintf (error, errlen, "payload.version and payload.url must be strings");
        return -1;
    }
    const char *argv[] = {app->opt.upgrade_command, version, url, NULL};
    return s_cmd_spawn (cmd, argv, msg->timeout_ms, json_pack ("{s:s}", "version", version), error,
                        errlen);
}

static const struct {
    const char *type;
    s_command_fn *run;
} s_commands[] = {
    {"ping", s_command_ping},
    {"exec", s_command_exec},
    {"restart_service", s_command_restart_service},
    {"update_config", s_command_update_config},
    {"collect_logs", s_command_collect_logs},
    {"upgrade", s_command_upgrade},
};
#define S_COMMAND_COUNT (sizeof (s_commands) / sizeof (s_commands[0]))

//  A program's end, as a result and (if it failed) an error.
static json_t *
s_run_result (vw_run_t *run, json_t *extra, char *error, size_t errlen)
{
    *error = 0;
    if (run->error[0])
        snprintf (error, errlen, "%s", run->error);
    else if (run->timed_out)
        snprintf (error, errlen, "timed out after %lld ms", (long long) run->duration_ms);
    else if (run->signal)
        snprintf (error, errlen, "killed by signal %d", run->signal);
    else if (run->exit_status != 0)
        snprintf (error, errlen, "exit status %d", run->exit_status);
    if (run->error[0]) {
        json_decref (extra);
        return NULL;
    }
    vw_text_sanitize_output (run->out, run->out_size);
    vw_text_sanitize_output (run->err, run->err_size);
    json_t *result = json_pack (
        "{s:i, s:s%, s:s%, s:b, s:b, s:I}", "exit_status", run->exit_status, "stdout", run->out,
        run->out_size, "stderr", run->err, run->err_size, "stdout_truncated", run->out_truncated,
        "stderr_truncated", run->err_truncated, "duration_ms", (json_int_t) run->duration_ms);
    if (result && run->signal)
        json_object_set_new (result, "signal", json_integer (run->signal));
    if (result && extra)
        json_object_update (result, extra);
    json_decref (extra);
    return result;
}

//  Programs that ended (the runner rang the loop).
static void
s_app_collect_runs (s_app_t *app)
{
    vw_run_t *run;
    while ((run = vw_runner_next (app->runner))) {
        s_cmd_t *cmd = NULL;
        for (size_t i = 0; i < app->running && !cmd; i++)
            if (app->runs[i]->run == run->id)
                cmd = app->runs[i];
        if (cmd) {
            json_t *extra = cmd->extra;
            cmd->extra = NULL;
            if (cmd->cancelled) {
                s_note (app, "%s: command %s (%s) stopped after its cancel", cmd->agent->id,
                        cmd->id, cmd->type);
                json_decref (extra);
                s_cmd_forget (cmd);
            }
            else {
                char error[512];
                json_t *result = s_run_result (run, extra, error, sizeof error);
                s_cmd_ran (cmd);
                s_cmd_finish (cmd, result, error[0] ? error : NULL);
            }
        }
        vw_run_destroy (&run);
    }
}

static void
s_log_tee (void *arg, int64_t wall_ms, vw_log_level_t level, const char *line, size_t size)
{
    vw_logring_add ((vw_logring_t *) arg, wall_ms, line, size);
}

static void
s_runner_wake (void *arg)
{
    (void) arg;
    struct lws_context *context = s_context;
    if (context)
        lws_cancel_service (context);
}

//  Fault injection for tests and benchmarks: what this delivery does.
typedef enum { S_FAULT_NONE, S_FAULT_FAIL, S_FAULT_HANG, S_FAULT_DISCONNECT } s_fault_t;

static s_fault_t
s_fault_draw (const s_options_t *opt)
{
    if (opt->fail_fraction + opt->hang_fraction + opt->disconnect_fraction <= 0)
        return S_FAULT_NONE;
    double r = s_random (999999) / 1e6;
    if (r < opt->fail_fraction)
        return S_FAULT_FAIL;
    if (r < opt->fail_fraction + opt->hang_fraction)
        return S_FAULT_HANG;
    if (r < opt->fail_fraction + opt->hang_fraction + opt->disconnect_fraction)
        return S_FAULT_DISCONNECT;
    return S_FAULT_NONE;
}

static void
s_agent_ack (s_agent_t *agent, const char *command_id)
{
    s_agent_send (agent, json_pack ("{s:s, s:s}", "type", "command_ack", "command_id", command_id),
                  false);
}

static void
s_agent_on_command (s_agent_t *agent, const vw_wire_msg_t *msg)
{
    s_app_t *app = agent->app;
    s_cmd_t *cmd = s_cmd_find (agent, msg->command_id);
    if (cmd && cmd->state != S_CMD_DONE) {
        s_note (app, "%s: command %s (attempt %lld) is already running; not started again",
                agent->id, msg->command_id, (long long) msg->attempt);
        //  Its result now answers this attempt.
        cmd->attempt = msg->attempt;
        s_agent_ack (agent, msg->command_id);
        return;
    }
    if (cmd) {
        s_note (app, "%s: command %s (attempt %lld) completed before; answering that again",
                agent->id, msg->command_id, (long long) msg->attempt);
        s_agent_ack (agent, msg->command_id);
        s_agent_send_result (agent, cmd->id, msg->attempt, json_incref (cmd->result), NULL);
        return;
    }
    s_fault_t fault = s_fault_draw (&app->opt);
    if (fault == S_FAULT_DISCONNECT) {
        vw_info ("agent", "%s: command %s: dropping the connection (--disconnect-fraction)",
                 agent->id, msg->command_id);
        agent->backoff_exp = 0;  //  come back soon: this is a test
        agent->drop = true;      //  s_agent_receive closes it, no close frame
        return;
    }
    s_agent_ack (agent, msg->command_id);
    if (!(cmd = s_cmd_new (agent, msg))) {
        s_agent_send_result (agent, msg->command_id, msg->attempt, NULL, "out of memory");
        return;
    }
    if (fault == S_FAULT_FAIL) {
        s_cmd_finish (cmd, NULL, "injected failure (--fail-fraction)");
        return;
    }
    if (fault == S_FAULT_HANG) {
        vw_info ("agent", "%s: command %s (%s): hanging until cancelled (--hang-fraction)",
                 agent->id, msg->command_id, msg->command_type);
        cmd->state = S_CMD_HUNG;
        return;
    }
    json_t *result = NULL;
    char error[512] = "unsupported command type";
    int rc = -1;
    for (size_t i = 0; i < S_COMMAND_COUNT; i++)
        if (strcmp (s_commands[i].type, msg->command_type) == 0) {
            error[0] = 0;
            rc = s_commands[i].run (cmd, msg, &result, error, sizeof error);
            break;
        }
    if (rc == 1) {
        s_note (app, "%s: command %s (%s, attempt %lld) started", agent->id, cmd->id, cmd->type,
                (long long) msg->attempt);
        return;
    }
    if (rc != 0 && !error[0])
        snprintf (error, sizeof error, "command failed");
    s_cmd_finish (cmd, result, rc == 0 ? NULL : error);
}

static void
s_agent_on_cancel (s_agent_t *agent, const vw_wire_msg_t *msg)
{
    s_cmd_t *cmd = s_cmd_find (agent, msg->command_id);
    if (!cmd || cmd->state == S_CMD_DONE) {
        s_note (agent->app, "%s: cancel for command %s, which is not running", agent->id,
                msg->command_id);
        return;
    }
    s_note (agent->app, "%s: cancel for command %s (%s)", agent->id, cmd->id, cmd->type);
    if (cmd->state == S_CMD_RUNNING && cmd->run) {
        cmd->cancelled = true;
        vw_runner_cancel (agent->app->runner, cmd->run);
    }
    else
        s_cmd_forget (cmd);
}

//  --------------------------------------------------------------------------
//  Receiving

//  Logs (and writes to --ready-file) each time every agent is online: the
//  first time counted from the start, later ones (after a server restart,
//  say) from the moment the previous round ended.
static void
s_app_check_ready (s_app_t *app)
{
    if (app->all_online || app->states[S_ONLINE] != app->count)
        return;
    app->all_online = true;
    app->rounds++;
    int64_t ms = vw_clock_mono_ms () - (app->rounds == 1 ? app->ramp_t0 : app->lost_at);
    if (app->opt.simulate)
        vw_info ("agent", "all %u agents online %s %lld ms (%.0f/s)", app->count,
                 app->rounds == 1 ? "in" : "again after", (long long) ms,
                 ms > 0 ? app->count * 1000.0 / (double) ms : 0.0);
    if (!app->opt.ready_file)
        return;
    //  Written whole under a temporary name, then renamed: a reader never
    //  sees half a line.
    char temp[4096];
    snprintf (temp, sizeof temp, "%s.tmp", app->opt.ready_file);
    FILE *file = fopen (temp, "w");
    bool ok =
        file && fprintf (file, "%u agents online after %lld ms (round %u, at %lld)\n", app->count,
                         (long long) ms, app->rounds, (long long) vw_clock_wall_ms ()) > 0;
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
    agent->retry_after_ms = 0;
    s_agent_set_state (agent, S_ONLINE);
    ev_timer_stop (app->loop, &agent->timer);  //  the welcome deadline
    s_app_check_ready (app);
    if (app->opt.once) {
        s_agent_send_heartbeat (agent);
        s_agent_close (agent, LWS_CLOSE_STATUS_NORMAL, "once");
        return;
    }
    //  Simulated agents come online together (a ramp, a reconnect storm);
    //  a real fleet's heartbeats arrive spread over the interval. Each
    //  simulated agent takes a random phase: its first heartbeat comes
    //  after a uniform fraction of the interval, the rest one interval
    //  apart.
    if (app->opt.simulate)
        s_agent_next_heartbeat_in (agent, 1 + (int64_t) s_random ((uint32_t) interval - 1));
    else
        s_agent_next_heartbeat (agent);
    //  What the last session left unacked goes first.
    if (agent->tm) {
        agent->tm->sent_upto = -1;
        s_tm_pump (agent);
    }
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

//  SPEC §3: sign nonce || agent_id with the --key-file key.
static void
s_agent_on_challenge (s_agent_t *agent, const vw_wire_msg_t *msg)
{
    s_app_t *app = agent->app;
    if (agent->state != S_HANDSHAKE) {
        vw_warn ("agent", "%s: unexpected challenge ignored", agent->id);
        return;
    }
    if (!app->has_key) {
        vw_error ("agent",
                  "%s: the server asks for an Ed25519 signature (the agent was registered with "
                  "a public key); start it with --key-file",
                  agent->id);
        agent->give_up = S_EXIT_REFUSED;  //  reconnecting cannot help
        s_agent_close (agent, LWS_CLOSE_STATUS_NORMAL, "no key");
        return;
    }
    size_t idlen = strlen (agent->id);
    unsigned char nonce[256];
    size_t nonce_len = 0;
    unsigned char *signed_msg = NULL;
    if (sodium_base642bin (nonce, sizeof nonce, msg->nonce, strlen (msg->nonce), NULL, &nonce_len,
                           NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        !(signed_msg = malloc (nonce_len + idlen))) {
        vw_warn ("agent", "%s: challenge with a bad nonce ignored", agent->id);
        return;
    }
    memcpy (signed_msg, nonce, nonce_len);
    memcpy (signed_msg + nonce_len, agent->id, idlen);
    unsigned char signature[crypto_sign_BYTES];
    crypto_sign_detached (signature, NULL, signed_msg, nonce_len + idlen, app->sign_key);
    free (signed_msg);
    char text[sodium_base64_ENCODED_LEN (crypto_sign_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64 (text, sizeof text, signature, sizeof signature,
                       sodium_base64_VARIANT_ORIGINAL);
    s_note (app, "%s: answering the server's challenge", agent->id);
    s_agent_send (agent, json_pack ("{s:s, s:s}", "type", "auth", "signature", text), false);
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
            if (msg.seq >= 0) {
                s_tm_on_error (agent, &msg);  //  about a telemetry frame
                break;
            }
            //  A refusal during a reconnect storm says when to come back.
            agent->retry_after_ms = msg.retry_after_ms;
            if (msg.retry_after_ms && agent->app->opt.simulate)
                vw_debug ("agent", "%s: %s: %s (retry after %lld ms)", agent->id, msg.code,
                          msg.message ? msg.message : "", (long long) msg.retry_after_ms);
            else
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
        case VW_WIRE_CANCEL: s_agent_on_cancel (agent, &msg); break;
        case VW_WIRE_TELEMETRY_ACK: s_tm_on_ack (agent, msg.seq); break;
        case VW_WIRE_CHALLENGE: s_agent_on_challenge (agent, &msg); break;
        default:
            vw_warn ("agent", "%s: unexpected '%s' from the server ignored", agent->id,
                     vw_wire_type_name (msg.type));
            break;
    }
    vw_wire_msg_reset (&msg);
}

//  -1 (lws closes the connection at once, without a close frame) when a
//  command asked for an injected disconnect.
static int
s_agent_dropping (s_agent_t *agent)
{
    if (!agent->drop)
        return 0;
    agent->drop = false;
    return -1;
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
        return s_agent_dropping (agent);
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
    return s_agent_dropping (agent);
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
        s_note (app, "%s: connected to %s (raw)", agent->id,
                app->targets[agent->target % app->ntargets].url);
        s_agent_go_online (agent,
                           app->opt.heartbeat_ms ? app->opt.heartbeat_ms : S_RAW_HEARTBEAT_MS);
        return;
    }
    s_note (app, "%s: connected to %s, sending hello", agent->id,
            app->targets[agent->target % app->ntargets].url);
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
    if (agent->give_up) {
        vw_warn ("agent", "%s: %s; not reconnecting", agent->id, what);
        s_agent_stop (agent, agent->give_up);
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
    //  A connection that could not be made: the next --url (another edge)
    //  gets the next try. A session that was up tries its edge again first.
    if (was == S_CONNECTING && app->ntargets > 1) {
        agent->target = (uint8_t) ((agent->target + 1) % app->ntargets);
        vw_info ("agent", "%s: next try to %s", agent->id, app->targets[agent->target].url);
    }
    if (app->opt.max_reconnects >= 0 && agent->retries >= app->opt.max_reconnects) {
        vw_warn ("agent", "%s: %s; giving up after %u reconnect(s)", agent->id, what,
                 agent->retries);
        s_agent_stop (agent, S_EXIT_FAILURE);
        return;
    }
    uint32_t delay;
    if (agent->retry_after_ms > 0) {
        //  The server said when (SPEC §3): that long, plus up to a fifth
        //  more so that agents told the same do not return together. The
        //  backoff stays where it was: this was no failure of ours.
        int64_t after = agent->retry_after_ms;
        delay = (uint32_t) after + s_random ((uint32_t) (after / 5));
        agent->retry_after_ms = 0;
    }
    else {
        //  Full jitter: uniform in [0, min(cap, base * 2^n)].
        uint32_t ceiling = S_BACKOFF_CAP_MS;
        if (agent->backoff_exp < 16 && (S_BACKOFF_BASE_MS << agent->backoff_exp) < S_BACKOFF_CAP_MS)
            ceiling = S_BACKOFF_BASE_MS << agent->backoff_exp;
        delay = s_random (ceiling);
        if (agent->backoff_exp < UINT16_MAX)
            agent->backoff_exp++;
    }
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
    //  TCP gives up. Simulated agents have none: lws 4.1 keeps these timers
    //  in one sorted list whose insertion walks it, O(connections) for each
    //  connect of a process holding thousands (a real agent holds one), and
    //  a load generator need not notice a vanished server.
    static const lws_retry_bo_t idle_policy = {.secs_since_valid_ping = 30,
                                               .secs_since_valid_hangup = 45};
    static const lws_retry_bo_t idle_policy_sim = {.secs_since_valid_ping = 0,
                                                   .secs_since_valid_hangup = 0};
    memset (&info, 0, sizeof info);
    info.context = app->context;
    const s_target_t *t = &app->targets[agent->target % app->ntargets];
    info.address = t->address;
    info.port = t->port;
    info.path = t->path;
    info.host = t->host;
    info.origin = t->host;
    //  --raw offers no subprotocol: lws binds the connection to s_protocols[0].
    info.protocol = app->opt.raw                         ? NULL
                    : app->opt.format == VW_WIRE_MSGPACK ? VW_WIRE_SUBPROTO_MSGPACK
                                                         : VW_WIRE_SUBPROTO_JSON;
    info.userdata = agent;  //  our struct is the wsi's user data: lws allocates none
    info.pwsi = &agent->wsi;
    info.retry_and_idle_policy = app->opt.simulate ? &idle_policy_sim : &idle_policy;
    if (t->tls) {
        info.ssl_connection = LCCSCF_USE_SSL;
        if (app->opt.insecure)
            info.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED |
                                   LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK | LCCSCF_ALLOW_EXPIRED |
                                   LCCSCF_ALLOW_INSECURE;
    }
    if (t->spread)
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
s_agent_on_timer (struct ev_loop *loop, ev_timer *timer, int revents)
{
    s_agent_t *agent = (s_agent_t *) timer->data;
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
s_app_on_ramp (struct ev_loop *loop, ev_timer *timer, int revents)
{
    s_app_t *app = (s_app_t *) timer->data;
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
        s_timer_start (app, &app->timer_ramp, next);
    }
    else if (app->opt.simulate)
        vw_info ("agent", "all %u agents started in %lld ms", app->count,
                 (long long) (now - app->ramp_t0));
}

static void
s_app_on_summary (struct ev_loop *loop, ev_timer *timer, int revents)
{
    s_app_t *app = (s_app_t *) timer->data;
    vw_info ("agent",
             "agents %u: idle %u, connecting %u, online %u, backoff %u, stopped %u; frames "
             "sent %llu (+%llu), received %llu (+%llu); connects %llu, disconnects %llu; "
             "telemetry values %llu, frames sent %llu, acked %llu, refused %llu, ack p50 %lld "
             "ms p99 %lld ms",
             app->count, app->states[S_IDLE], app->states[S_CONNECTING] + app->states[S_HANDSHAKE],
             app->states[S_ONLINE], app->states[S_BACKOFF], app->states[S_STOPPED],
             (unsigned long long) app->sent, (unsigned long long) (app->sent - app->last_sent),
             (unsigned long long) app->received,
             (unsigned long long) (app->received - app->last_received),
             (unsigned long long) app->connects, (unsigned long long) app->disconnects,
             (unsigned long long) app->tm_values, (unsigned long long) app->tm_frames,
             (unsigned long long) app->tm_acked, (unsigned long long) app->tm_refused,
             (long long) s_tm_latency_at (app, 0.5), (long long) s_tm_latency_at (app, 0.99));
    if (app->tm_latency)
        memset (app->tm_latency, 0, (S_TM_LATENCY_MAX + 1) * sizeof (uint32_t));
    app->last_sent = app->sent;
    app->last_received = app->received;
    s_timer_start (app, &app->timer_summary, S_SUMMARY_MS);
}

static void
s_app_on_deadline (struct ev_loop *loop, ev_timer *timer, int revents)
{
    s_app_t *app = (s_app_t *) timer->data;
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
    ev_timer_stop (app->loop, &app->timer_ramp);
    //  Closing takes a round trip each; a big simulated fleet gets longer.
    s_timer_start (app, &app->timer_deadline, (int64_t) S_SHUTDOWN_GRACE_MS + app->count / 2);
    for (uint32_t i = 0; i < app->count && !app->done; i++) {
        s_agent_t *agent = &app->agents[i];
        switch (agent->state) {
            case S_IDLE:
            case S_BACKOFF: s_agent_stop (agent, S_EXIT_OK); break;
            case S_CONNECTING:
                //  No WebSocket yet to close: drop the attempt.
                if (agent->wsi)
                    s_agent_kill (agent);
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
        case LWS_CALLBACK_EVENT_WAIT_CANCELLED: {
            //  The doorbell: a signal, or programs that ended.
            s_app_t *app = (s_app_t *) lws_context_user (lws_get_context (wsi));
            s_app_collect_runs (app);
            if (s_signalled)
                s_app_shutdown (app);
            return 0;
        }
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
        "  --url URL             ws:// or wss:// endpoint (default ws://127.0.0.1:8081/ws/agent);\n"
        "                        up to 8 (edges): a connection that cannot be made is tried\n"
        "                        at the next, with the backoff; simulated agents spread over\n"
        "                        them\n"
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
        "  --telemetry-ms N      take a telemetry point every N ms, 0 for none (default:\n"
        "                        10000). Points are this host's load,\n"
        "                        memory, uptime and interface bytes; simulated agents make\n"
        "                        up gateway metrics\n"
        "  --telemetry-batch N   points per telemetry frame (default 1)\n"
        "  --telemetry-metrics N simulated agents: metrics per point (default 8, max 256)\n"
        "  --telemetry-buffer N  frames kept until the backend acks them; sent again after\n"
        "                        a reconnect; the oldest dropped beyond N (default 1000)\n"
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
        "\n"
        "Commands (docs/agent.md):\n"
        "  --allow-exec PATH     exec may run this program (absolute path; repeatable)\n"
        "  --allow-service NAME  restart_service may restart this service (repeatable)\n"
        "  --service-command C   program and arguments restart_service runs, the name\n"
        "                        appended (default: /usr/bin/systemctl restart)\n"
        "  --config-target FILE  update_config writes the config (JSON) to FILE\n"
        "  --config-apply PATH   then runs PATH FILE (optional)\n"
        "  --upgrade-command P   upgrade runs P VERSION URL\n"
        "  --max-running N       programs running at once (default 16)\n"
        "  --output-max BYTES    stdout and stderr kept per program (default 65536)\n"
        "  --fail-fraction F     tests: fail this fraction of commands (0..1)\n"
        "  --hang-fraction F     tests: never answer this fraction (until cancelled)\n"
        "  --disconnect-fraction F  tests: drop the connection on this fraction\n"
        "  --config FILE         options from FILE, one per line: `name value` (read first)\n"
        "  --key-file FILE       Ed25519 key (base64 seed) for agents registered with a\n"
        "                        public_key: answers the server's challenge\n"
        "  --gen-key FILE        write a new key to FILE, print its public key, exit\n"
        "\n"
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
    O_TELEMETRY_MS,
    O_TELEMETRY_BATCH,
    O_TELEMETRY_METRICS,
    O_TELEMETRY_BUFFER,
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
    O_CONFIG,
    O_ALLOW_EXEC,
    O_ALLOW_SERVICE,
    O_SERVICE_COMMAND,
    O_CONFIG_TARGET,
    O_CONFIG_APPLY,
    O_UPGRADE_COMMAND,
    O_MAX_RUNNING,
    O_OUTPUT_MAX,
    O_FAIL_FRACTION,
    O_HANG_FRACTION,
    O_DISCONNECT_FRACTION,
    O_KEY_FILE,
    O_GEN_KEY,
    O_VERSION,
};

static const struct option s_longopts[] = {
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
    {"telemetry-ms", required_argument, NULL, O_TELEMETRY_MS},
    {"telemetry-batch", required_argument, NULL, O_TELEMETRY_BATCH},
    {"telemetry-metrics", required_argument, NULL, O_TELEMETRY_METRICS},
    {"telemetry-buffer", required_argument, NULL, O_TELEMETRY_BUFFER},
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
    {"config", required_argument, NULL, O_CONFIG},
    {"allow-exec", required_argument, NULL, O_ALLOW_EXEC},
    {"allow-service", required_argument, NULL, O_ALLOW_SERVICE},
    {"service-command", required_argument, NULL, O_SERVICE_COMMAND},
    {"config-target", required_argument, NULL, O_CONFIG_TARGET},
    {"config-apply", required_argument, NULL, O_CONFIG_APPLY},
    {"upgrade-command", required_argument, NULL, O_UPGRADE_COMMAND},
    {"max-running", required_argument, NULL, O_MAX_RUNNING},
    {"output-max", required_argument, NULL, O_OUTPUT_MAX},
    {"fail-fraction", required_argument, NULL, O_FAIL_FRACTION},
    {"hang-fraction", required_argument, NULL, O_HANG_FRACTION},
    {"disconnect-fraction", required_argument, NULL, O_DISCONNECT_FRACTION},
    {"key-file", required_argument, NULL, O_KEY_FILE},
    {"gen-key", required_argument, NULL, O_GEN_KEY},
    {"version", no_argument, NULL, O_VERSION},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

static int
s_parse_fraction (const char *option, const char *text, double *out)
{
    char *end = NULL;
    errno = 0;
    double value = strtod (text, &end);
    if (errno || end == text || *end || !(value >= 0 && value <= 1))
        return s_bad_value (option, text, "a number from 0 to 1");
    *out = value;
    return 0;
}

//  An absolute path (programs run without a shell and without PATH).
static int
s_parse_program (const char *option, const char *text)
{
    if (text[0] != '/')
        return s_bad_value (option, text, "an absolute path");
    return 0;
}

//  Appends a name to a list option (a JSON array of strings).
static int
s_list_add (json_t **list, const char *option, const char *value)
{
    if (!*value)
        return s_bad_value (option, value, "a non-empty value");
    if (!*list && !(*list = json_array ()))
        return -1;
    if (json_array_append_new (*list, json_string (value)))
        return s_bad_value (option, value, "a value in UTF-8");
    return 0;
}

//  --config FILE: one option per line, `name value` or `name` (the long
//  option without its dashes; the value is the rest of the line, blanks
//  trimmed), blank lines and `#` comments skipped. Becomes arguments that
//  are parsed before the command line's, so the command line adds to
//  lists and overrides single values.
static int
s_config_read (s_options_t *opt, const char *path)
{
    FILE *file = fopen (path, "r");
    if (!file) {
        fprintf (stderr, "viworks-agent: cannot open --config '%s': %s\n", path, strerror (errno));
        return -1;
    }
    size_t count = 1, cap = 16;
    char **args = (char **) calloc (cap, sizeof (char *));
    char *line = NULL;
    size_t line_cap = 0;
    unsigned lineno = 0;
    int rc = args ? 0 : -1;
    if (args)
        args[0] = strdup ("viworks-agent");
    while (rc == 0 && getline (&line, &line_cap, file) != -1) {
        lineno++;
        char *name = line + strspn (line, " \t");
        size_t end = strcspn (name, "\r\n");
        while (end && (name[end - 1] == ' ' || name[end - 1] == '\t'))
            end--;
        name[end] = 0;
        if (!*name || *name == '#')
            continue;
        char *value = name + strcspn (name, " \t=");
        if (*value) {
            *value++ = 0;
            value += strspn (value, " \t=");
        }
        if (count + 3 > cap) {
            char **grown = (char **) realloc (args, cap * 2 * sizeof (char *));
            if (!grown) {
                rc = -1;
                break;
            }
            args = grown;
            cap *= 2;
        }
        if (strcmp (name, "config") == 0) {
            fprintf (stderr, "viworks-agent: %s line %u: a config file cannot name another\n", path,
                     lineno);
            rc = -1;
            break;
        }
        if (asprintf (&args[count], "--%s", name) < 0) {
            rc = -1;
            break;
        }
        count++;
        if (*value && !(args[count++] = strdup (value)))
            rc = -1;
    }
    free (line);
    fclose (file);
    if (args)
        args[count] = NULL;
    opt->config_args = args;
    return rc;
}

static int
s_config_argc (const s_options_t *opt)
{
    int argc = 0;
    while (opt->config_args && opt->config_args[argc])
        argc++;
    return argc;
}

//  One pass of getopt over argv (the config file's or the command line's).
//  Returns 0 to go on, 1 when --help or --version answered, -1 on a bad
//  option.
static int
s_options_apply (s_options_t *opt, int argc, char **argv)
{
    optind = 0;  //  glibc: start over (the config file was parsed first)
    opterr = 0;
    int c;
    while ((c = getopt_long (argc, argv, ":h", s_longopts, NULL)) != -1) {
        const char *name = argv[optind - 1];
        switch (c) {
            case O_URL:
                //  The command line's --url replace the config file's.
                if (opt->urls_pass != opt->pass) {
                    opt->urls_pass = opt->pass;
                    opt->nurls = 0;
                }
                if (opt->nurls == S_URLS_MAX) {
                    fprintf (stderr, "viworks-agent: at most %d --url\n", S_URLS_MAX);
                    return -1;
                }
                opt->urls[opt->nurls++] = optarg;
                opt->url = opt->urls[0];
                break;
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
            case O_TELEMETRY_MS:
                if (s_parse_int ("--telemetry-ms", optarg, 0, 86400000, &opt->telemetry_ms))
                    return -1;
                break;
            case O_TELEMETRY_BATCH:
                if (s_parse_int ("--telemetry-batch", optarg, 1, 10000, &opt->telemetry_batch))
                    return -1;
                break;
            case O_TELEMETRY_METRICS:
                if (s_parse_int ("--telemetry-metrics", optarg, 1, 256, &opt->telemetry_metrics))
                    return -1;
                break;
            case O_TELEMETRY_BUFFER:
                if (s_parse_int ("--telemetry-buffer", optarg, 1, 1000000, &opt->telemetry_buffer))
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
            case O_CONFIG: break;  //  read first, see s_options_parse
            case O_ALLOW_EXEC:
                if (s_parse_program ("--allow-exec", optarg) ||
                    s_list_add (&opt->allow_exec, "--allow-exec", optarg))
                    return -1;
                break;
            case O_ALLOW_SERVICE:
                if (s_list_add (&opt->allow_service, "--allow-service", optarg))
                    return -1;
                break;
            case O_SERVICE_COMMAND:
                if (s_parse_program ("--service-command", optarg))
                    return -1;
                opt->service_command = optarg;
                break;
            case O_CONFIG_TARGET:
                if (!*optarg)
                    return s_bad_value ("--config-target", optarg, "a file name");
                opt->config_target = optarg;
                break;
            case O_CONFIG_APPLY:
                if (s_parse_program ("--config-apply", optarg))
                    return -1;
                opt->config_apply = optarg;
                break;
            case O_UPGRADE_COMMAND:
                if (s_parse_program ("--upgrade-command", optarg))
                    return -1;
                opt->upgrade_command = optarg;
                break;
            case O_MAX_RUNNING:
                if (s_parse_int ("--max-running", optarg, 1, 1024, &opt->max_running))
                    return -1;
                break;
            case O_OUTPUT_MAX:
                if (s_parse_int ("--output-max", optarg, 1, 1 << 20, &opt->output_max))
                    return -1;
                break;
            case O_FAIL_FRACTION:
                if (s_parse_fraction ("--fail-fraction", optarg, &opt->fail_fraction))
                    return -1;
                break;
            case O_HANG_FRACTION:
                if (s_parse_fraction ("--hang-fraction", optarg, &opt->hang_fraction))
                    return -1;
                break;
            case O_DISCONNECT_FRACTION:
                if (s_parse_fraction ("--disconnect-fraction", optarg, &opt->disconnect_fraction))
                    return -1;
                break;
            case O_KEY_FILE: opt->key_file = optarg; break;
            case O_GEN_KEY: opt->gen_key = optarg; break;
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
    return 0;
}

//  Returns 0 to run, 1 when --help or --version answered, -1 on a bad option.
static int
s_options_parse (s_options_t *opt, int argc, char **argv)
{
    opt->url = "ws://127.0.0.1:8081/ws/agent";
    opt->token = getenv ("VIWORKS_AGENT_TOKEN");
    opt->version = VW_VERSION;
    opt->id_prefix = "gw-";
    opt->ramp = 1000;
    opt->max_reconnects = -2;  //  not given
    opt->telemetry_ms = -1;    //  not given
    opt->telemetry_batch = 1;
    opt->telemetry_metrics = 8;
    opt->telemetry_buffer = 1000;
    opt->service_command = "/usr/bin/systemctl restart";
    opt->max_running = 16;
    opt->output_max = 64 * 1024;
    opt->labels = json_object ();
    if (!opt->labels)
        return -1;
    const char *level = getenv ("LOG_LEVEL");
    if (level && *level && vw_log_level_parse (level) < 0) {
        fprintf (stderr, "viworks-agent: invalid LOG_LEVEL '%s' ignored\n", level);
        level = NULL;
    }
    vw_log_set_level (level && *level ? (vw_log_level_t) vw_log_level_parse (level) : VW_LOG_INFO);

    //  --config first, wherever it is on the command line.
    const char *config = NULL;
    for (int i = 1; i < argc && strcmp (argv[i], "--") != 0; i++) {
        if (strcmp (argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[i + 1];
        else if (strncmp (argv[i], "--config=", 9) == 0)
            config = argv[i] + 9;
    }
    if (config) {
        if (s_config_read (opt, config))
            return -1;
        opt->pass = 1;
        int rc = s_options_apply (opt, s_config_argc (opt), opt->config_args);
        if (rc) {
            if (rc < 0)
                fprintf (stderr, "viworks-agent: (in --config %s)\n", config);
            return rc;
        }
    }
    opt->pass = 2;
    int rc = s_options_apply (opt, argc, argv);
    if (rc)
        return rc;
    if (opt->nurls == 0)
        opt->urls[opt->nurls++] = opt->url;  //  the default
    if (opt->max_reconnects == -2)
        opt->max_reconnects = opt->once ? 0 : -1;
    if (opt->raw && opt->format == VW_WIRE_MSGPACK) {
        fprintf (stderr,
                 "viworks-agent: --raw sends text frames: --format msgpack does not apply\n");
        return -1;
    }
    if (opt->telemetry_ms < 0)
        opt->telemetry_ms = 10000;
    if (opt->telemetry_ms && opt->telemetry_ms < S_HEARTBEAT_MIN_MS) {
        fprintf (stderr, "viworks-agent: --telemetry-ms must be 0 or at least %d\n",
                 S_HEARTBEAT_MIN_MS);
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
    if (opt->fail_fraction + opt->hang_fraction + opt->disconnect_fraction > 1) {
        fprintf (stderr, "viworks-agent: --fail-fraction, --hang-fraction and "
                         "--disconnect-fraction add up to more than 1\n");
        return -1;
    }
    if (!opt->capabilities) {
        //  By default we claim what we are set up to execute.
        const bool set_up[] = {true,
                               opt->allow_exec != NULL,
                               opt->allow_service != NULL,
                               opt->config_target != NULL,
                               true,
                               opt->upgrade_command != NULL};
        _Static_assert(sizeof set_up / sizeof set_up[0] == S_COMMAND_COUNT, "one per type");
        opt->capabilities = json_array ();
        for (size_t i = 0; i < S_COMMAND_COUNT && opt->capabilities; i++)
            if (set_up[i])
                json_array_append_new (opt->capabilities, json_string (s_commands[i].type));
        if (!opt->capabilities)
            return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Set-up

static int
s_app_parse_url (s_app_t *app, s_target_t *t, const char *url)
{
    const char *prot = NULL, *address = NULL, *path = NULL;
    t->url = url;
    t->url_copy = strdup (url);
    if (!t->url_copy || lws_parse_uri (t->url_copy, &prot, &address, &t->port, &path) || !*address)
        return s_bad_value ("--url", url, "ws://HOST[:PORT]/PATH or wss://...");
    if (strcmp (prot, "ws") == 0)
        t->tls = false;
    else if (strcmp (prot, "wss") == 0)
        t->tls = app->tls = true;
    else
        return s_bad_value ("--url", url, "the scheme must be ws:// or wss://");
    if (t->port <= 0 || t->port > 65535)
        return s_bad_value ("--url", url, "bad port");
    snprintf (t->path, sizeof t->path, "/%s", path ? path : "");
    t->host = address;
    t->address = address;

    //  Simulated agents on a loopback URL spread over 127.0.0.1-250 as
    //  source addresses: 250 times the ephemeral ports of one address.
    struct in_addr in4;
    bool loopback4 = strcmp (address, "localhost") == 0 ||
                     (inet_pton (AF_INET, address, &in4) == 1 && (ntohl (in4.s_addr) >> 24) == 127);
    if (app->opt.simulate && loopback4) {
        if (strcmp (address, "localhost") == 0)
            t->address = "127.0.0.1";  //  an IPv4 source needs an IPv4 peer
        t->spread = true;
        for (int i = 0; i < S_SPREAD_ADDRESSES; i++)
            snprintf (s_source_addresses[i], sizeof s_source_addresses[i], "127.0.0.%d", 1 + i);
    }
    return 0;
}

//  Opens a file of secrets (tokens, a key) named by `option`; warns when
//  other users may read it. NULL, with the reason on stderr, if it cannot.
static FILE *
s_open_secret (const char *path, const char *option)
{
    FILE *file = fopen (path, "r");
    if (!file) {
        fprintf (stderr, "viworks-agent: cannot open %s '%s': %s\n", option, path,
                 strerror (errno));
        return NULL;
    }
    struct stat st;
    if (fstat (fileno (file), &st) == 0 && (st.st_mode & 077))
        vw_warn ("agent", "%s %s is readable by other users (mode %03o); chmod 600 it", option,
                 path, (unsigned) (st.st_mode & 0777));
    return file;
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
    FILE *file = s_open_secret (path, "--token-file");
    if (!file)
        return -1;
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
    for (int i = 0; i < app->opt.nurls; i++)
        if (s_app_parse_url (app, &app->targets[app->ntargets++], app->opt.urls[i]))
            return -1;
    if (app->opt.hostname)
        snprintf (app->hostname, sizeof app->hostname, "%s", app->opt.hostname);
    else if (gethostname (app->hostname, sizeof app->hostname - 1) != 0)
        snprintf (app->hostname, sizeof app->hostname, "unknown");

    app->count = app->opt.simulate ? (uint32_t) app->opt.simulate : 1;
    app->agents = calloc (app->count, sizeof (s_agent_t));
    if (!app->agents)
        return -1;
    //  What commands need: the program runner, the running table, the
    //  service command as arguments.
    app->runner = vw_runner_new ((size_t) app->opt.output_max, S_KILL_GRACE, s_runner_wake, NULL);
    app->runs = (s_cmd_t **) calloc ((size_t) app->opt.max_running, sizeof (s_cmd_t *));
    app->service_argv = (char **) calloc (S_ARGS_MAX + 1, sizeof (char *));
    if (!app->runner || !app->runs || !app->service_argv)
        return -1;
    char *copy = strdup (app->opt.service_command), *save = NULL;
    size_t argc = 0;
    for (char *word = copy ? strtok_r (copy, " \t", &save) : NULL; word && argc < S_ARGS_MAX - 1;
         word = strtok_r (NULL, " \t", &save))
        if (!(app->service_argv[argc++] = strdup (word)))
            break;
    free (copy);
    if (!argc)
        return -1;
    app->states[S_IDLE] = app->count;
    for (uint32_t i = 0; i < app->count; i++) {
        s_agent_t *agent = &app->agents[i];
        agent->app = app;
        ev_init (&agent->timer, s_agent_on_timer);
        agent->timer.data = agent;
        agent->index = i;
        //  A simulated fleet spreads over the --url given (edges).
        agent->target = (uint8_t) (i % (uint32_t) app->ntargets);
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
    if (app->opt.key_file && s_app_load_key (app))
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
        vw_wire_error_t err = {"malformed", "cannot build the hello", -1};
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

//  --key-file: the base64 of a 32-byte Ed25519 seed (what --gen-key writes).
static int
s_app_load_key (s_app_t *app)
{
    const char *path = app->opt.key_file;
    FILE *file = s_open_secret (path, "--key-file");
    if (!file)
        return -1;
    char line[256] = "";
    unsigned char seed[crypto_sign_SEEDBYTES];
    size_t len = 0;
    bool ok = fgets (line, sizeof line, file) != NULL;
    fclose (file);
    line[strcspn (line, " \t\r\n")] = 0;
    ok = ok &&
         sodium_base642bin (seed, sizeof seed, line, strlen (line), NULL, &len, NULL,
                            sodium_base64_VARIANT_ORIGINAL) == 0 &&
         len == sizeof seed;
    sodium_memzero (line, sizeof line);
    if (!ok) {
        fprintf (stderr,
                 "viworks-agent: --key-file '%s' must hold the base64 of a 32-byte Ed25519 seed "
                 "(see --gen-key)\n",
                 path);
        return -1;
    }
    unsigned char public_key[crypto_sign_PUBLICKEYBYTES];
    crypto_sign_seed_keypair (public_key, app->sign_key, seed);
    sodium_memzero (seed, sizeof seed);
    app->has_key = true;
    return 0;
}

//  --gen-key FILE: a new seed into FILE (created 0600, never overwritten);
//  the public key (base64) on stdout, for POST /agents' public_key.
static int
s_gen_key (const char *path)
{
    unsigned char seed[crypto_sign_SEEDBYTES], public_key[crypto_sign_PUBLICKEYBYTES],
        secret[crypto_sign_SECRETKEYBYTES];
    char seed_text[sodium_base64_ENCODED_LEN (crypto_sign_SEEDBYTES,
                                              sodium_base64_VARIANT_ORIGINAL)];
    char public_text[sodium_base64_ENCODED_LEN (crypto_sign_PUBLICKEYBYTES,
                                                sodium_base64_VARIANT_ORIGINAL)];
    if (sodium_init () < 0)
        return S_EXIT_FAILURE;
    randombytes_buf (seed, sizeof seed);
    crypto_sign_seed_keypair (public_key, secret, seed);
    sodium_bin2base64 (seed_text, sizeof seed_text, seed, sizeof seed,
                       sodium_base64_VARIANT_ORIGINAL);
    sodium_bin2base64 (public_text, sizeof public_text, public_key, sizeof public_key,
                       sodium_base64_VARIANT_ORIGINAL);
    sodium_memzero (seed, sizeof seed);
    sodium_memzero (secret, sizeof secret);
    int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    size_t size = strlen (seed_text);
    seed_text[size++] = '\n';
    bool ok = fd >= 0 && write (fd, seed_text, size) == (ssize_t) size && fsync (fd) == 0;
    if (fd >= 0 && close (fd) != 0)
        ok = false;
    sodium_memzero (seed_text, sizeof seed_text);
    if (!ok) {
        fprintf (stderr, "viworks-agent: cannot write --gen-key '%s': %s\n", path,
                 strerror (errno));
        return S_EXIT_FAILURE;
    }
    printf ("%s\n", public_text);
    return S_EXIT_OK;
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
    //  Stops the programs still running first (their commands go below).
    vw_runner_destroy (&app->runner);
    if (app->agents) {
        for (uint32_t i = 0; i < app->count; i++) {
            s_agent_t *agent = &app->agents[i];
            while (agent->cmds) {
                s_cmd_t *next = agent->cmds->next;
                s_cmd_destroy (&agent->cmds);
                agent->cmds = next;
            }
            s_agent_reset_io (agent);
            s_tm_destroy (&agent->tm);
            if (agent->token_owned)
                free ((char *) agent->token);
            free (agent->id);
        }
        free (app->agents);
    }
    json_decref (app->opt.labels);
    json_decref (app->opt.capabilities);
    json_decref (app->opt.allow_exec);
    json_decref (app->opt.allow_service);
    for (char **arg = app->opt.config_args; arg && *arg; arg++)
        free (*arg);
    free (app->opt.config_args);
    for (char **arg = app->service_argv; arg && *arg; arg++)
        free (*arg);
    free (app->service_argv);
    free (app->runs);
    free (app->tm_latency);
    vw_log_set_tee (NULL, NULL);
    vw_logring_destroy (&app->logs);
    sodium_memzero (app->sign_key, sizeof app->sign_key);
    for (int i = 0; i < app->ntargets; i++)
        free (app->targets[i].url_copy);
}

int
main (int argc, char **argv)
{
    s_app_t app;
    memset (&app, 0, sizeof app);
    //  --gen-key stands alone: no agent to run.
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp (argv[i], "--gen-key") == 0 && argc == 3)
            return s_gen_key (argv[i + 1]);
    int rc = s_options_parse (&app.opt, argc, argv);
    if (rc == 0 && app.opt.gen_key) {
        fprintf (stderr, "viworks-agent: --gen-key FILE takes no other option\n");
        rc = -1;
    }
    if (rc != 0) {
        s_app_destroy (&app);
        return rc > 0 ? S_EXIT_OK : S_EXIT_USAGE;
    }
    //  collect_logs answers from the lines logged since the start.
    app.logs = vw_logring_new (S_LOG_LINES, 1024);
    if (app.logs)
        vw_log_set_tee (s_log_tee, app.logs);
    if (sodium_init () < 0) {
        vw_error ("agent", "cannot initialise libsodium");
        s_app_destroy (&app);
        return S_EXIT_FAILURE;
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
    //  Programs are reaped by vw_runner: a parent that left SIGCHLD ignored
    //  would have the kernel reap them first and hide their exit status.
    signal (SIGCHLD, SIG_DFL);

    lws_set_log_level (vw_log_enabled (VW_LOG_DEBUG) ? LLL_ERR | LLL_WARN | LLL_NOTICE : LLL_ERR,
                       s_lws_log);
    //  lws's own loop polls every connection on each wake-up: thousands of
    //  simulated agents want epoll. The loop is ours (no signal handling:
    //  ours above stays).
    app.loop = ev_loop_new (EVBACKEND_EPOLL | EVFLAG_NOSIGMASK);
    if (!app.loop) {
        vw_error ("agent", "cannot create the event loop (epoll)");
        s_app_destroy (&app);
        return S_EXIT_FAILURE;
    }
    void *loops[] = {app.loop};
    struct lws_context_creation_info info;
    memset (&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_LIBEV;
    info.foreign_loops = loops;
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
        ev_loop_destroy (app.loop);
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
                 (long long) app.opt.ramp,
                 app.targets[0].spread ? ", source addresses 127.0.0.1-250" : "");
    else
        vw_info ("agent", "agent %s connecting to %s (%s)", app.agents[0].id, app.opt.url,
                 app.opt.raw                         ? "raw"
                 : app.opt.format == VW_WIRE_MSGPACK ? "msgpack"
                                                     : "json");
    app.slot_ms = app.opt.simulate ? S_BATCH_MS : 1;
    app.ramp_t0 = vw_clock_mono_ms ();
    ev_init (&app.timer_ramp, s_app_on_ramp);
    ev_init (&app.timer_summary, s_app_on_summary);
    ev_init (&app.timer_deadline, s_app_on_deadline);
    app.timer_ramp.data = app.timer_summary.data = app.timer_deadline.data = &app;
    s_timer_start (&app, &app.timer_ramp, 0);
    if (app.opt.simulate)
        s_timer_start (&app, &app.timer_summary, S_SUMMARY_MS);
    s_app_tm_start (&app);

    //  lws re-arms its timer after its own events: ring once so the first
    //  timers above are seen. The loop runs until s_app_finish breaks it.
    lws_cancel_service (app.context);
    if (s_signalled)
        s_app_shutdown (&app);
    if (!app.done)
        ev_run (app.loop, 0);
    if (!app.done) {
        vw_error ("agent", "the event loop ended early");
        app.exit_code = S_EXIT_FAILURE;
    }

    //  Programs still running are stopped first: their threads ring this
    //  context's doorbell until they are gone.
    vw_runner_destroy (&app.runner);
    s_context = NULL;
    for (uint32_t i = 0; i < app.count; i++)
        s_agent_cancel_timers (&app.agents[i]);
    s_buckets_destroy (&app);
    ev_timer_stop (app.loop, &app.timer_ramp);
    ev_timer_stop (app.loop, &app.timer_summary);
    ev_timer_stop (app.loop, &app.timer_deadline);
    ev_timer_stop (app.loop, &app.timer_tm);
    //  Destroying the context closes what is left; our callbacks must not
    //  schedule anything then.
    app.stopping = true;
    app.done = true;
    lws_context_destroy (app.context);
    ev_loop_destroy (app.loop);
    int exit_code = app.exit_code;
    s_app_destroy (&app);
    return exit_code;
}
