/*  test_edge - the agent edge actor (vw_edge_actor, role "edge") on a test
    broker, driven from both sides: agents are raw WebSocket clients on a
    loopback socket (handshake and masked frames written here), the
    registry is a test peer that receives session_* messages and answers
    with proto messages. Covers the libev loop (ZeroMQ and lws in one loop,
    no busy loop while idle), admission (ws.max_pending_hellos: 1013 with a
    retry_after_ms), batched heard-from reports, and the 1001 close of every
    agent when the actor stops.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "vw_config.h"
#include "vw_edge.h"
#include "vw_lifecycle.h"
#include "vw_testbroker.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    vw_tb_t *tb;
    vw_config_t *config;
    vw_edge_args_t args;
    zactor_t *edge;
    vw_tb_peer_t *registry;
    vw_tb_peer_t *executor;  //  hears session_closed too
    int port;
} fixture_t;

//  --------------------------------------------------------------------------
//  A minimal WebSocket client: enough for frames of up to 64 KiB.

//  Reads until `len` bytes or a deadline; the count read.
static size_t
s_read (int fd, void *buf, size_t len, int timeout_ms)
{
    size_t got = 0;
    while (got < len) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll (&p, 1, timeout_ms) <= 0)
            break;
        ssize_t n = recv (fd, (char *) buf + got, len - got, 0);
        if (n <= 0)
            break;
        got += (size_t) n;
    }
    return got;
}

static int
s_connect (int port)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    assert_true (fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons ((uint16_t) port)};
    sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    assert_int_equal (connect (fd, (struct sockaddr *) &sa, sizeof sa), 0);
    const char *req =
        "GET /ws/agent HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: viworks.v1.json\r\n\r\n";
    assert_int_equal (send (fd, req, strlen (req), 0), (ssize_t) strlen (req));
    //  The 101 answer, up to its blank line.
    char head[2048];
    size_t got = 0;
    while (got < sizeof head - 1 && s_read (fd, head + got, 1, VW_TB_TIMEOUT_MS) == 1) {
        got++;
        if (got >= 4 && memcmp (head + got - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    head[got] = 0;
    assert_non_null (strstr (head, "101"));
    return fd;
}

//  Sends one masked text frame (client to server frames are masked).
static void
s_send_text (int fd, const char *text)
{
    size_t len = strlen (text);
    assert_true (len < 65536);
    uint8_t frame[8 + 65536];
    size_t n = 0;
    frame[n++] = 0x81;
    if (len < 126)
        frame[n++] = (uint8_t) (0x80 | len);
    else {
        frame[n++] = 0x80 | 126;
        frame[n++] = (uint8_t) (len >> 8);
        frame[n++] = (uint8_t) len;
    }
    const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    memcpy (frame + n, mask, 4);
    n += 4;
    for (size_t i = 0; i < len; i++)
        frame[n++] = (uint8_t) text[i] ^ mask[i % 4];
    assert_int_equal (send (fd, frame, n, 0), (ssize_t) n);
}

//  The next frame from the server: its opcode, payload in buf (NUL ended).
static int
s_recv_frame (int fd, char *buf, size_t size)
{
    uint8_t h[4];
    if (s_read (fd, h, 2, VW_TB_TIMEOUT_MS) != 2)
        return -1;
    size_t len = h[1] & 0x7f;
    if (len == 126) {
        if (s_read (fd, h + 2, 2, VW_TB_TIMEOUT_MS) != 2)
            return -1;
        len = (size_t) h[2] << 8 | h[3];
    }
    assert_true (len < size);
    assert_int_equal (s_read (fd, buf, len, VW_TB_TIMEOUT_MS), len);
    buf[len] = 0;
    return h[0] & 0x0f;
}

//  A text frame's JSON object, or fails.
static json_t *
s_recv_json (int fd)
{
    char buf[4096];
    assert_int_equal (s_recv_frame (fd, buf, sizeof buf), 1);
    json_t *frame = json_loads (buf, 0, NULL);
    assert_non_null (frame);
    return frame;
}

//  A close frame's code.
static int
s_recv_close (int fd)
{
    char buf[256];
    int op;
    while ((op = s_recv_frame (fd, buf, sizeof buf)) == 1)
        ;  //  frames before the close
    assert_int_equal (op, 8);
    return ((uint8_t) buf[0]) << 8 | (uint8_t) buf[1];
}

static char *
s_hello (const char *id)
{
    static char text[256];
    snprintf (text, sizeof text, "{\"type\":\"hello\",\"agent_id\":\"%s\",\"token\":\"t-%s\"}", id,
              id);
    return text;
}

//  --------------------------------------------------------------------------
//  Fixture: a broker, the registry as a test peer, the edge on free ports.

static int
s_setup_with (void **state, int max_pending)
{
    fixture_t *f = (fixture_t *) calloc (1, sizeof (fixture_t));
    f->tb = vw_tb_new ();
    assert_non_null (f->tb);
    f->registry = vw_tb_peer (f->tb, "registry");
    assert_non_null (f->registry);
    f->executor = vw_tb_peer (f->tb, "executor");
    assert_non_null (f->executor);
    f->config = vw_config_new_defaults ();
    free (f->config->ws_addr);
    f->config->ws_addr = strdup ("127.0.0.1");
    //  A free port: bind to 0, read it back, let go.
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    assert_int_equal (bind (fd, (struct sockaddr *) &sa, sizeof sa), 0);
    assert_int_equal (getsockname (fd, (struct sockaddr *) &sa, &sl), 0);
    close (fd);
    f->port = ntohs (sa.sin_port);
    f->config->ws_port = f->port;
    f->config->ws_max_pending_hellos = max_pending;
    f->config->heartbeat_interval_ms = 2000;  //  heard-from reports wait 100 ms
    f->args = (vw_edge_args_t){
        .config = f->config, .endpoint = vw_tb_endpoint (f->tb), .roles = VW_EDGE_AGENTS};
    f->edge = zactor_new (vw_edge_actor, &f->args);
    assert_non_null (f->edge);
    char *reason = NULL;
    assert_int_equal (vw_lifecycle_await (f->edge, VW_TB_TIMEOUT_MS, &reason), 0);
    free (reason);
    *state = f;
    return 0;
}

static int
s_setup (void **state)
{
    return s_setup_with (state, 512);
}

static int
s_setup_one_pending (void **state)
{
    return s_setup_with (state, 1);
}

static int
s_teardown (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    zactor_destroy (&f->edge);
    vw_tb_destroy (&f->tb);
    vw_config_destroy (&f->config);
    free (f);
    return 0;
}

static double
s_cpu_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double) ts.tv_sec * 1000.0 + (double) ts.tv_nsec / 1e6;
}

//  Welcomes the hello the registry peer got; returns its conn.
static int64_t
s_welcome (fixture_t *f, const char *id, const char *session)
{
    vw_msg_t *hello = vw_tb_expect (f->registry, VW_MSG_ID_session_hello, VW_TB_TIMEOUT_MS);
    assert_non_null (hello);
    assert_string_equal (hello->session_hello.agent_id, id);
    int64_t conn = hello->session_hello.conn;
    vw_msg_destroy (&hello);
    vw_msg_t *welcome = vw_msg_new (VW_MSG_ID_session_welcome);
    welcome->session_welcome.conn = conn;
    vw_msg_set_str (&welcome->session_welcome.agent_id, id);
    vw_msg_set_str (&welcome->session_welcome.session_id, session);
    welcome->session_welcome.heartbeat_interval_ms = 2000;
    assert_int_equal (vw_tb_send (f->registry, "edge", &welcome), 0);
    return conn;
}

//  --------------------------------------------------------------------------
//  Tests

//  Idle, the edge's loop waits: a busy loop would burn the whole window.
//  The window ends on a deadline with nothing expected (bounded, no sleep).
static void
test_idle_loop_waits (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    int fd = s_connect (f->port);  //  one agent connected, silent
    double before = s_cpu_ms ();
    vw_msg_t *none = vw_tb_recv (f->registry, 400);
    double used = s_cpu_ms () - before;
    assert_null (none);
    assert_true (used < 150.0);
    close (fd);
}

//  hello -> session_hello; session_welcome -> welcome frame; heartbeats ->
//  one batched session_seen each; the actor's stop closes the agent with 1001.
static void
test_session_and_stop (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    int fd = s_connect (f->port);
    s_send_text (fd, s_hello ("gw-1"));
    int64_t conn = s_welcome (f, "gw-1", "s-1");
    json_t *welcome = s_recv_json (fd);
    assert_string_equal (json_string_value (json_object_get (welcome, "type")), "welcome");
    assert_string_equal (json_string_value (json_object_get (welcome, "session_id")), "s-1");
    json_decref (welcome);
    s_send_text (fd, "{\"type\":\"heartbeat\",\"status\":\"online\"}");
    vw_msg_t *seen = vw_tb_expect (f->registry, VW_MSG_ID_session_seen, VW_TB_TIMEOUT_MS);
    assert_non_null (seen);
    assert_string_equal (seen->session_seen.session_id, "s-1");
    assert_string_equal (seen->session_seen.status, "online");
    vw_msg_destroy (&seen);
    //  Stop: the agent gets its 1001, the registry hears the session end.
    zactor_destroy (&f->edge);
    assert_int_equal (s_recv_close (fd), 1001);
    vw_msg_t *closed = vw_tb_expect (f->registry, VW_MSG_ID_session_closed, VW_TB_TIMEOUT_MS);
    assert_non_null (closed);
    assert_int_equal (closed->session_closed.conn, conn);
    vw_msg_destroy (&closed);
    close (fd);
}

//  The executor asks the edge to write a ping for agent_id on conn.
static void
s_command_send (fixture_t *f, int64_t conn, const char *agent_id, const char *command_id)
{
    vw_msg_t *send = vw_msg_new (VW_MSG_ID_command_send);
    send->command_send.conn = conn;
    vw_msg_set_str (&send->command_send.agent_id, agent_id);
    vw_msg_set_str (&send->command_send.command_id, command_id);
    vw_msg_set_str (&send->command_send.type, "ping");
    vw_msg_set_str (&send->command_send.payload, "{}");
    send->command_send.attempt = 1;
    send->command_send.timeout_ms = 30000;
    assert_int_equal (vw_tb_send (f->executor, "edge", &send), 0);
}

//  A command is written only to the session of its own agent: one naming
//  another agent (a connection id from before a restart, or another edge's)
//  is undeliverable, and the agent never sees it.
static void
test_command_only_to_its_agent (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    int fd = s_connect (f->port);
    s_send_text (fd, s_hello ("gw-1"));
    int64_t conn = s_welcome (f, "gw-1", "s-1");
    json_decref (s_recv_json (fd));  //  the welcome
    //  Connection ids do not start at 1: they are not reused across edges.
    assert_true (conn > 1);
    s_command_send (f, conn, "gw-2", "c-1");
    vw_msg_t *event = vw_tb_expect (f->executor, VW_MSG_ID_command_event, VW_TB_TIMEOUT_MS);
    assert_non_null (event);
    assert_string_equal (event->command_event.kind, "undeliverable");
    assert_string_equal (event->command_event.command_id, "c-1");
    vw_msg_destroy (&event);
    //  The same for its own agent is written.
    s_command_send (f, conn, "gw-1", "c-2");
    json_t *command = s_recv_json (fd);
    assert_string_equal (json_string_value (json_object_get (command, "type")), "command");
    assert_string_equal (json_string_value (json_object_get (command, "command_id")), "c-2");
    json_decref (command);
    close (fd);
}

//  With room for one hello waiting for the registry, the next is refused at
//  once: error unavailable with a retry_after_ms, then close 1013; once the
//  registry answered, hellos are admitted again.
static void
test_admission (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    int a = s_connect (f->port), b = s_connect (f->port), c = s_connect (f->port);
    s_send_text (a, s_hello ("gw-a"));
    vw_msg_t *hello = vw_tb_expect (f->registry, VW_MSG_ID_session_hello, VW_TB_TIMEOUT_MS);
    assert_non_null (hello);  //  gw-a waits for the registry now
    int64_t conn = hello->session_hello.conn;
    vw_msg_destroy (&hello);
    s_send_text (b, s_hello ("gw-b"));
    json_t *error = s_recv_json (b);
    assert_string_equal (json_string_value (json_object_get (error, "type")), "error");
    assert_string_equal (json_string_value (json_object_get (error, "code")), "unavailable");
    json_int_t retry = json_integer_value (json_object_get (error, "retry_after_ms"));
    assert_true (retry >= 250 && retry <= 30250);
    json_decref (error);
    assert_int_equal (s_recv_close (b), 1013);
    //  The registry answers gw-a: room again.
    vw_msg_t *welcome = vw_msg_new (VW_MSG_ID_session_welcome);
    welcome->session_welcome.conn = conn;
    vw_msg_set_str (&welcome->session_welcome.agent_id, "gw-a");
    vw_msg_set_str (&welcome->session_welcome.session_id, "s-a");
    welcome->session_welcome.heartbeat_interval_ms = 2000;
    assert_int_equal (vw_tb_send (f->registry, "edge", &welcome), 0);
    json_t *w = s_recv_json (a);
    assert_string_equal (json_string_value (json_object_get (w, "type")), "welcome");
    json_decref (w);
    s_send_text (c, s_hello ("gw-c"));
    s_welcome (f, "gw-c", "s-c");
    json_t *wc = s_recv_json (c);
    assert_string_equal (json_string_value (json_object_get (wc, "type")), "welcome");
    json_decref (wc);
    close (a);
    close (b);
    close (c);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_idle_loop_waits, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_session_and_stop, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_command_only_to_its_agent, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_admission, s_setup_one_pending, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
