/*  telemetry-sink - the ingest baseline of bench/telemetry.sh (issue 11): a
    libwebsockets server (the same Debian lws 4.1, on libev, the same
    subprotocols and codec as the backend's edge) that welcomes any hello and
    acks every telemetry frame as soon as it has parsed it, storing nothing.
    viworks-agent --simulate runs against it unchanged; what it acks per
    second is the parse limit of this machine under that load.

        telemetry-sink PORT

    Runs until SIGINT or SIGTERM; every 5 s prints the frames and values
    parsed so far ("frames=N values=M"). lws runs on a libev (epoll) loop of
    ours, as the backend's edge does, so the baseline pays what the edge
    pays per wake-up and no more.
*/
#include "vw_points.h"
#include "vw_wire.h"

#include <ev.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_RX_MAX  (1024 * 1024)
#define S_OUT_MAX 256

typedef struct {
    unsigned char *rx;
    size_t rx_len;
    vw_wire_format_t format;
    //  Frames to write (each LWS_PRE + bytes), a ring.
    unsigned char *out[S_OUT_MAX];
    size_t out_len[S_OUT_MAX];
    int head, count;
} s_conn_t;

static struct lws_context *s_context;
static unsigned long long s_frames, s_values;

static void
s_queue (struct lws *wsi, s_conn_t *c, json_t *msg)
{
    uint8_t *data = NULL;
    size_t size = 0;
    if (msg && c->count < S_OUT_MAX && vw_wire_serialize (c->format, msg, &data, &size) == 0) {
        unsigned char *frame = (unsigned char *) malloc (LWS_PRE + size);
        memcpy (frame + LWS_PRE, data, size);
        int at = (c->head + c->count++) % S_OUT_MAX;
        c->out[at] = frame;
        c->out_len[at] = size;
        lws_callback_on_writable (wsi);
    }
    free (data);
    json_decref (msg);
}

static int
s_count (void *arg, const vw_points_value_t *v)
{
    (void) arg;
    (void) v;
    s_values++;
    return 0;
}

static void
s_message (struct lws *wsi, s_conn_t *c)
{
    vw_wire_msg_t msg;
    vw_wire_error_t err;
    if (vw_wire_decode (c->format, c->rx, c->rx_len, &msg, &err)) {
        s_queue (wsi, c, vw_wire_error (err.code, err.message));
        return;
    }
    if (msg.type == VW_WIRE_HELLO) {
        json_t *welcome = json_pack ("{s:s, s:s, s:i, s:I}", "type", "welcome", "session_id",
                                     "sink", "heartbeat_interval_ms", 10000, "server_time",
                                     (json_int_t) (lws_now_usecs () / 1000));
        s_queue (wsi, c, welcome);
    }
    else if (msg.type == VW_WIRE_TELEMETRY) {
        //  Parsed and checked as the edge does; packed the same way, then dropped.
        uint8_t *packed;
        size_t size;
        vw_points_info_t info;
        if (vw_points_pack (msg.points, &packed, &size, &info) == 0) {
            vw_points_walk (packed, size, s_count, NULL, NULL);
            free (packed);
            s_frames++;
        }
        s_queue (wsi, c, vw_wire_telemetry_ack (msg.seq));
    }
    vw_wire_msg_reset (&msg);
}

static int
s_callback (struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    s_conn_t *c = (s_conn_t *) user;
    switch (reason) {
        case LWS_CALLBACK_ESTABLISHED:
            memset (c, 0, sizeof *c);
            c->format = strcmp (lws_get_protocol (wsi)->name, VW_WIRE_SUBPROTO_MSGPACK) == 0
                            ? VW_WIRE_MSGPACK
                            : VW_WIRE_JSON;
            return 0;
        case LWS_CALLBACK_RECEIVE: {
            if (c->rx_len + len > S_RX_MAX)
                return -1;
            unsigned char *rx = (unsigned char *) realloc (c->rx, c->rx_len + len + 1);
            if (!rx)
                return -1;
            c->rx = rx;
            memcpy (c->rx + c->rx_len, in, len);
            c->rx_len += len;
            if (lws_is_final_fragment (wsi) && lws_remaining_packet_payload (wsi) == 0) {
                s_message (wsi, c);
                c->rx_len = 0;
            }
            return 0;
        }
        case LWS_CALLBACK_SERVER_WRITEABLE:
            if (c->count) {
                int at = c->head;
                int n =
                    lws_write (wsi, c->out[at] + LWS_PRE, c->out_len[at],
                               c->format == VW_WIRE_MSGPACK ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
                free (c->out[at]);
                c->head = (c->head + 1) % S_OUT_MAX;
                c->count--;
                if (n < 0)
                    return -1;
                if (c->count)
                    lws_callback_on_writable (wsi);
            }
            return 0;
        case LWS_CALLBACK_CLOSED:
            free (c->rx);
            while (c->count) {
                free (c->out[c->head]);
                c->head = (c->head + 1) % S_OUT_MAX;
                c->count--;
            }
            return 0;
        default: return 0;
    }
}

static const struct lws_protocols s_protocols[] = {
    {VW_WIRE_SUBPROTO_JSON, s_callback, sizeof (s_conn_t), 4096, 0, NULL, 0},
    {VW_WIRE_SUBPROTO_MSGPACK, s_callback, sizeof (s_conn_t), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

static void
s_on_signal (struct ev_loop *loop, ev_signal *w, int revents)
{
    (void) w;
    (void) revents;

    ev_break (loop, EVBREAK_ALL);
}

static void
s_on_tick (struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) w;
    (void) revents;
    printf ("frames=%llu values=%llu\n", s_frames, s_values);
    fflush (stdout);
}

int
main (int argc, char **argv)
{
    if (argc != 2) {
        fprintf (stderr, "usage: telemetry-sink PORT\n");
        return 2;
    }
    lws_set_log_level (LLL_ERR, NULL);
    struct ev_loop *loop = ev_loop_new (EVBACKEND_EPOLL | EVFLAG_NOSIGMASK);
    void *loops[1] = {loop};
    struct lws_context_creation_info info;
    memset (&info, 0, sizeof info);
    info.port = atoi (argv[1]);
    info.iface = "127.0.0.1";
    info.protocols = s_protocols;
    info.options = LWS_SERVER_OPTION_LIBEV;
    info.foreign_loops = loops;
    info.fd_limit_per_thread = 30000;
    s_context = lws_create_context (&info);
    if (!s_context) {
        fprintf (stderr, "telemetry-sink: cannot listen on %s\n", argv[1]);
        return 1;
    }
    ev_signal term, intr;
    ev_signal_init (&term, s_on_signal, SIGTERM);
    ev_signal_init (&intr, s_on_signal, SIGINT);
    ev_signal_start (loop, &term);
    ev_signal_start (loop, &intr);
    ev_timer tick;
    ev_timer_init (&tick, s_on_tick, 5.0, 5.0);
    ev_timer_start (loop, &tick);
    fprintf (stderr, "telemetry-sink listening on 127.0.0.1:%s\n", argv[1]);
    ev_run (loop, 0);
    ev_timer_stop (loop, &tick);
    ev_signal_stop (loop, &term);
    ev_signal_stop (loop, &intr);
    printf ("frames=%llu values=%llu\n", s_frames, s_values);
    lws_context_destroy (s_context);
    ev_loop_destroy (loop);
    return 0;
}
