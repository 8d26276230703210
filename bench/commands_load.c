/*  commands-load - the load generator of bench/commands.sh (issue 4).

        commands-load register --http-port P --agents N --prefix X --out FILE
        commands-load saturate --http-port P --events EP --agents N --prefix X
                               --count C [--conns 48]
        commands-load rate     --http-port P --events EP --agents N --prefix X
                               --rate R --seconds S [--conns 32]

    register creates agents X00001 .. X<N> with POST /agents and writes the
    token file viworks-agent --token-file reads ("agent_id token" lines).
    saturate submits C ping commands (POST /commands, round-robin over the
    agents) as fast as they are accepted; rate submits R a second for S
    seconds. Both print one line of key=value figures on stdout.

    HTTP/1.1 on loopback: --conns keep-alive connections, one request in
    flight on each, driven by one epoll loop; responses are read by their
    Content-Length. A 429 or 503 is sent again on the same connection after
    10 ms (and counted); any other unexpected status counts as rejected. The
    bearer token is the admin user's, from POST /auth/token with
    VIWORKS_ADMIN_PASSWORD (taken from the environment, as the backend
    does): a token must name a live user (issue 8).

    Completion is observed on the backend's event stream (ZeroMQ SUB on
    --events, topic command.state, SPEC §7) by a second thread, which stamps
    each terminal event (completed, failed, cancelled) with its arrival time.
    The scheduler publishes it right after handing the finish update to the
    store, so "durable" is then checked through the REST API: GET
    /statistics until the database counts every command as finished, then a
    POST /agents (a "barrier" agent): the store answers a write only after
    the commit of its loop pass, and that pass is the one of the count read
    or a later one, so every row the count saw is on disk by then.

    Before measuring: a warm-up ping (sent again until its completion event
    arrives, so the subscription is in place), then the database's counts
    as the baseline, taken once no command is pending or executing.

    saturate: end-to-end commands/s = accepted / (first POST sent -> barrier
    answered); also accepted/s (first POST -> last 202) and the time of the
    last completion event. rate: submit->result latency = completion event
    arrival - the POST's send time, per command; also submit->202 latency
    and how late sends were against the schedule (a send is late when every
    connection is busy, or the loop woke late).
*/

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_REQ_MAX      2048
#define S_RESP_MAX     (64 * 1024)
#define S_ID_LEN       32             //  command ids: 32 hex characters
#define S_RETRY_NS     10000000LL     //  429 / 503: send again after 10 ms
#define S_STALL_NS     30000000000LL  //  no answer for 30 s: give up
#define S_EVENT_WAIT_S 60             //  no new completion event for this long: stop waiting

static int64_t
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void
s_sleep_ms (int ms)
{
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
    nanosleep (&ts, NULL);
}

static double
s_ms (int64_t ns)
{
    return (double) ns / 1e6;
}

//  --------------------------------------------------------------------------
//  HTTP

//  Parses one response at buf: returns its length (headers + body), 0 if
//  incomplete, -1 if malformed or without Content-Length.
static ssize_t
s_response (const char *buf, size_t len, int *status, const char **body, size_t *body_len)
{
    const char *end = (const char *) memmem (buf, len, "\r\n\r\n", 4);
    if (!end)
        return len >= S_RESP_MAX ? -1 : 0;
    if (len < 12 || memcmp (buf, "HTTP/1.1 ", 9) != 0)
        return -1;
    *status = atoi (buf + 9);
    long long clen = -1;
    for (const char *p = buf; p < end;) {
        const char *eol = (const char *) memmem (p, (size_t) (end + 2 - p), "\r\n", 2);
        if (strncasecmp (p, "content-length:", 15) == 0)
            clen = strtoll (p + 15, NULL, 10);
        p = eol + 2;
    }
    size_t head = (size_t) (end + 4 - buf);
    if (clen < 0 || head + (size_t) clen > S_RESP_MAX)
        return -1;
    if (len < head + (size_t) clen)
        return 0;
    *body = buf + head;
    *body_len = (size_t) clen;
    return (ssize_t) (head + (size_t) clen);
}

static int
s_format (char *out, size_t cap, const char *method, const char *path, const char *token,
          const char *body)
{
    int n = snprintf (out, cap,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                      method, path, token, body ? strlen (body) : 0, body ? body : "");
    return n > 0 && (size_t) n < cap ? n : -1;
}

static int
s_connect (uint16_t port)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons (port)};
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    int one = 1;
    if (fd < 0 || connect (fd, (struct sockaddr *) &addr, sizeof addr) != 0) {
        fprintf (stderr, "commands-load: cannot connect to 127.0.0.1:%u: %s\n", port,
                 strerror (errno));
        if (fd >= 0)
            close (fd);
        return -1;
    }
    setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

//  One request on a new connection, blocking (statistics, warm-up, barrier).
//  Returns the status (body in *body_p, caller frees) or -1.
static int
s_request_once (uint16_t port, const char *token, const char *method, const char *path,
                const char *body, char **body_p)
{
    char req[S_REQ_MAX];
    int n = s_format (req, sizeof req, method, path, token, body);
    int fd = n < 0 ? -1 : s_connect (port);
    if (fd < 0)
        return -1;
    struct timeval tv = {10, 0};
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char *buf = (char *) malloc (S_RESP_MAX);
    size_t len = 0;
    int status = -1;
    if (send (fd, req, (size_t) n, MSG_NOSIGNAL) == n) {
        for (;;) {
            ssize_t got = recv (fd, buf + len, S_RESP_MAX - len, 0);
            if (got <= 0)
                break;
            len += (size_t) got;
            const char *rbody;
            size_t rlen;
            int st;
            ssize_t done = s_response (buf, len, &st, &rbody, &rlen);
            if (done < 0)
                break;
            if (done > 0) {
                status = st;
                if (body_p)
                    *body_p = strndup (rbody, rlen);
                break;
            }
        }
    }
    free (buf);
    close (fd);
    return status;
}

static int s_request (uint16_t port, const char *token, const char *method, const char *path,
                      const char *body, char **body_p);

//  The admin user's token. The first start makes `admin` just after
//  "ready": 401 until then.
static char *
s_login (uint16_t port, const char *password)
{
    json_t *request = json_pack ("{s:s, s:s}", "username", "admin", "password", password);
    char *body = json_dumps (request, JSON_COMPACT);
    json_decref (request);
    char *token = NULL;
    int status = -1;
    for (int i = 0; i < 100 && !token; i++) {
        char *answer = NULL;
        status = s_request (port, "-", "POST", "/auth/token", body, &answer);
        json_t *json = status == 200 && answer ? json_loads (answer, 0, NULL) : NULL;
        const char *text = json_string_value (json_object_get (json, "access_token"));
        token = text ? strdup (text) : NULL;
        json_decref (json);
        free (answer);
        if (!token && status != 401)
            break;
        if (!token)
            s_sleep_ms (100);
    }
    free (body);
    if (!token)
        fprintf (stderr, "commands-load: cannot log in as admin (status %d)\n", status);
    return token;
}

//  The same, sent again after 100 ms on 429 or 503 (for up to 30 s).
static int
s_request (uint16_t port, const char *token, const char *method, const char *path, const char *body,
           char **body_p)
{
    int status = -1;
    for (int i = 0; i < 300; i++) {
        if (body_p) {
            free (*body_p);
            *body_p = NULL;
        }
        status = s_request_once (port, token, method, path, body, body_p);
        if (status != 429 && status != 503)
            break;
        s_sleep_ms (100);
    }
    return status;
}

//  The load: `total` requests over `nconns` keep-alive connections, request
//  i sent when due (at t0 + i / rate, or at once when rate is 0).
typedef struct s_load_t s_load_t;

typedef struct {
    int fd;
    int64_t job;        //  request in flight, or -1
    int64_t sent_ns;    //  when it was written
    int64_t resume_ns;  //  0, or when to send `job` again (after a 429 / 503)
    char out[S_REQ_MAX];
    size_t out_len, out_off;
    bool out_armed;  //  waiting for EPOLLOUT (a partial write)
    char *in;
    size_t in_len;
} s_conn_t;

struct s_load_t {
    uint16_t port;
    const char *token;
    const char *path;
    int nconns;
    int64_t total, rate;
    //  the request body of job i; the answer to job i
    void (*body) (s_load_t *load, int64_t job, char *out, size_t cap);
    void (*done) (s_load_t *load, int64_t job, int status, const char *body, size_t len,
                  int64_t sent_ns, int64_t now_ns);
    void *user;
    //  filled by s_load_run
    int64_t t0_ns, first_sent_ns, last_done_ns;
    int64_t resent;       //  429 / 503 answers sent again
    int64_t late_max_ns;  //  largest delay of a send behind its schedule
};

static int
s_conn_open (s_load_t *load, s_conn_t *c, int epfd)
{
    c->fd = s_connect (load->port);
    c->out_armed = false;
    if (c->fd < 0)
        return -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    return epoll_ctl (epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

static int
s_conn_flush (s_conn_t *c, int epfd)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send (c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0)
            return -1;
        c->out_off += (size_t) n;
    }
    bool want = c->out_off < c->out_len;
    if (want == c->out_armed)
        return 0;
    c->out_armed = want;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    return epoll_ctl (epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static int
s_conn_send (s_load_t *load, s_conn_t *c, int64_t job, int epfd)
{
    char body[512];
    load->body (load, job, body, sizeof body);
    int n = s_format (c->out, sizeof c->out, "POST", load->path, load->token, body);
    if (n < 0)
        return -1;
    c->out_len = (size_t) n;
    c->out_off = 0;
    c->job = job;
    c->resume_ns = 0;
    c->sent_ns = s_now_ns ();
    if (!load->first_sent_ns)
        load->first_sent_ns = c->sent_ns;
    return s_conn_flush (c, epfd);
}

//  Reads what arrived; answers complete requests. Returns -1 on a broken
//  connection with a request in flight, or a malformed answer.
static int
s_conn_read (s_load_t *load, s_conn_t *c, int epfd, int64_t *answered)
{
    while (c->in_len < S_RESP_MAX) {
        ssize_t n = recv (c->fd, c->in + c->in_len, S_RESP_MAX - c->in_len, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            //  Closed: harmless while idle (keep-alive timeout), fatal otherwise.
            close (c->fd);
            c->in_len = 0;
            if (c->job >= 0) {
                fprintf (stderr, "commands-load: connection closed with a request in flight\n");
                return -1;
            }
            return s_conn_open (load, c, epfd);
        }
        c->in_len += (size_t) n;
    }
    int status;
    const char *body;
    size_t len;
    ssize_t used = s_response (c->in, c->in_len, &status, &body, &len);
    if (used < 0 || (used > 0 && c->job < 0)) {
        fprintf (stderr, "commands-load: malformed or unexpected HTTP answer\n");
        return -1;
    }
    if (used == 0)
        return 0;
    int64_t now = s_now_ns ();
    int64_t job = c->job;
    if (status == 429 || status == 503) {
        load->resent++;
        c->resume_ns = now + S_RETRY_NS;
    }
    else {
        load->done (load, job, status, body, len, c->sent_ns, now);
        load->last_done_ns = now;
        c->job = -1;
        (*answered)++;
    }
    memmove (c->in, c->in + used, c->in_len - (size_t) used);
    c->in_len -= (size_t) used;
    return 0;
}

static int
s_load_run (s_load_t *load)
{
    int epfd = epoll_create1 (EPOLL_CLOEXEC);
    s_conn_t *conns = (s_conn_t *) calloc ((size_t) load->nconns, sizeof (s_conn_t));
    int rc = epfd < 0 ? -1 : 0;
    for (int i = 0; rc == 0 && i < load->nconns; i++) {
        conns[i].job = -1;
        conns[i].in = (char *) malloc (S_RESP_MAX);
        rc = s_conn_open (load, &conns[i], epfd);
    }
    int64_t next = 0, answered = 0, last_progress = s_now_ns ();
    load->t0_ns = s_now_ns ();
    while (rc == 0 && answered < load->total) {
        int64_t now = s_now_ns ();
        int64_t wake = INT64_MAX;  //  next time something is due
        for (int i = 0; rc == 0 && i < load->nconns; i++) {
            s_conn_t *c = &conns[i];
            if (c->job >= 0 && c->resume_ns) {
                if (c->resume_ns <= now)
                    rc = s_conn_send (load, c, c->job, epfd);
                else if (c->resume_ns < wake)
                    wake = c->resume_ns;
            }
            else if (c->job < 0 && next < load->total) {
                int64_t due =
                    load->rate ? load->t0_ns + next * 1000000000LL / load->rate : load->t0_ns;
                if (due <= now) {
                    rc = s_conn_send (load, c, next++, epfd);
                    if (c->sent_ns - due > load->late_max_ns)
                        load->late_max_ns = c->sent_ns - due;
                }
                else if (due < wake)
                    wake = due;
            }
        }
        if (rc)
            break;
        now = s_now_ns ();
        int timeout = 1000;
        if (wake != INT64_MAX)
            timeout = wake <= now ? 0 : (int) ((wake - now + 999999) / 1000000);
        struct epoll_event evs[64];
        int n = epoll_wait (epfd, evs, 64, timeout < 1000 ? timeout : 1000);
        if (n < 0 && errno != EINTR)
            rc = -1;
        int64_t before = answered;
        for (int i = 0; rc == 0 && i < n; i++) {
            s_conn_t *c = (s_conn_t *) evs[i].data.ptr;
            if (evs[i].events & EPOLLOUT)
                rc = s_conn_flush (c, epfd);
            if (rc == 0 && evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                rc = s_conn_read (load, c, epfd, &answered);
        }
        if (answered > before || next == 0)
            last_progress = s_now_ns ();
        else if (s_now_ns () - last_progress > S_STALL_NS) {
            fprintf (stderr, "commands-load: no answer for 30 s (%lld of %lld answered)\n",
                     (long long) answered, (long long) load->total);
            rc = -1;
        }
    }
    for (int i = 0; i < load->nconns; i++) {
        if (conns[i].fd > 0)
            close (conns[i].fd);
        free (conns[i].in);
    }
    free (conns);
    if (epfd >= 0)
        close (epfd);
    return rc;
}

//  --------------------------------------------------------------------------
//  Event stream: a thread that records when each command finished.

typedef struct {
    int64_t at_ns;
    char state;  //  'c'ompleted, 'f'ailed, 'x' cancelled
} s_finish_t;

typedef struct {
    const char *endpoint;
    pthread_t thread;
    pthread_mutex_t lock;
    zhashx_t *finished;  //  command_id -> s_finish_t (under lock)
    atomic_llong terminal, retries;
    atomic_llong last_ns;  //  arrival of the last terminal event
    atomic_bool stop;
    atomic_int ready;  //  1 connected, -1 failed
} s_events_t;

//  Copies the string value of "key" in a compact JSON object to out.
static bool
s_json_str (const char *json, size_t len, const char *key, char *out, size_t cap)
{
    char pat[64];
    int n = snprintf (pat, sizeof pat, "\"%s\":\"", key);
    const char *p = (const char *) memmem (json, len, pat, (size_t) n);
    if (!p)
        return false;
    p += n;
    const char *q = (const char *) memchr (p, '"', len - (size_t) (p - json));
    if (!q || (size_t) (q - p) >= cap)
        return false;
    memcpy (out, p, (size_t) (q - p));
    out[q - p] = 0;
    return true;
}

static void *
s_events_thread (void *arg)
{
    s_events_t *ev = (s_events_t *) arg;
    void *ctx = zmq_ctx_new ();
    void *sub = zmq_socket (ctx, ZMQ_SUB);
    int hwm = 0, timeout = 100, linger = 0;
    zmq_setsockopt (sub, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt (sub, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt (sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (sub, ZMQ_SUBSCRIBE, "command.state", 13);
    if (zmq_connect (sub, ev->endpoint) != 0) {
        fprintf (stderr, "commands-load: cannot connect to %s: %s\n", ev->endpoint,
                 zmq_strerror (zmq_errno ()));
        atomic_store (&ev->ready, -1);
    }
    else
        atomic_store (&ev->ready, 1);
    zmq_msg_t frame;
    zmq_msg_init (&frame);
    int part = 0;
    while (atomic_load (&ev->ready) == 1 && !atomic_load (&ev->stop)) {
        if (zmq_msg_recv (&frame, sub, 0) < 0)
            continue;  //  timeout: look at the stop flag
        int more = zmq_msg_more (&frame);
        if (part++ == 1) {  //  [topic, json]
            const char *json = (const char *) zmq_msg_data (&frame);
            size_t len = zmq_msg_size (&frame);
            char id[S_ID_LEN + 1], state[16];
            if (s_json_str (json, len, "command_id", id, sizeof id) &&
                s_json_str (json, len, "state", state, sizeof state)) {
                char kind = streq (state, "completed")   ? 'c'
                            : streq (state, "failed")    ? 'f'
                            : streq (state, "cancelled") ? 'x'
                                                         : 0;
                if (kind) {
                    int64_t at = s_now_ns ();
                    s_finish_t *f = (s_finish_t *) malloc (sizeof (s_finish_t));
                    f->at_ns = at;
                    f->state = kind;
                    pthread_mutex_lock (&ev->lock);
                    if (zhashx_insert (ev->finished, id, f) != 0)
                        free (f);  //  a second terminal event: keep the first
                    pthread_mutex_unlock (&ev->lock);
                    atomic_fetch_add (&ev->terminal, 1);
                    atomic_store (&ev->last_ns, at);
                }
                else if (memmem (json, len, "\"failure_reason\"", 16))
                    atomic_fetch_add (&ev->retries, 1);  //  back to pending after a failure
            }
        }
        if (!more)
            part = 0;
    }
    zmq_msg_close (&frame);
    zmq_close (sub);
    zmq_ctx_term (ctx);
    return NULL;
}

static void
s_free_item (void **item)
{
    free (*item);
    *item = NULL;
}

static int
s_events_start (s_events_t *ev, const char *endpoint)
{
    memset (ev, 0, sizeof *ev);
    ev->endpoint = endpoint;
    pthread_mutex_init (&ev->lock, NULL);
    ev->finished = zhashx_new ();
    zhashx_set_destructor (ev->finished, s_free_item);
    if (pthread_create (&ev->thread, NULL, s_events_thread, ev))
        return -1;
    while (atomic_load (&ev->ready) == 0)
        s_sleep_ms (1);
    return atomic_load (&ev->ready) == 1 ? 0 : -1;
}

static void
s_events_stop (s_events_t *ev)
{
    atomic_store (&ev->stop, true);
    pthread_join (ev->thread, NULL);
    zhashx_destroy (&ev->finished);
    pthread_mutex_destroy (&ev->lock);
}

//  The finish of command `id`, copied to *out; false if not seen (yet).
static bool
s_events_get (s_events_t *ev, const char *id, s_finish_t *out)
{
    pthread_mutex_lock (&ev->lock);
    s_finish_t *f = (s_finish_t *) zhashx_lookup (ev->finished, id);
    if (f)
        *out = *f;
    pthread_mutex_unlock (&ev->lock);
    return f != NULL;
}

//  --------------------------------------------------------------------------
//  The runs

typedef struct {
    uint16_t port;
    const char *events, *prefix, *out;
    const char *token;
    int64_t agents, count, rate, seconds;
    int conns;
} s_opts_t;

typedef struct {
    const s_opts_t *opt;
    char (*ids)[S_ID_LEN + 1];  //  command id of job i ("" if not accepted)
    int64_t *sent_ns;           //  when job i was (last) sent
    int64_t *accept_ns;         //  send -> 202
    char **tokens;              //  register: "agent_id token" of job i
    int64_t accepted, rejected, last_status;
} s_run_t;

static void
s_body_command (s_load_t *load, int64_t job, char *out, size_t cap)
{
    s_run_t *run = (s_run_t *) load->user;
    snprintf (out, cap, "{\"agent_id\":\"%s%05lld\",\"type\":\"ping\"}", run->opt->prefix,
              (long long) (job % run->opt->agents + 1));
}

static void
s_done_command (s_load_t *load, int64_t job, int status, const char *body, size_t len,
                int64_t sent_ns, int64_t now_ns)
{
    s_run_t *run = (s_run_t *) load->user;
    run->sent_ns[job] = sent_ns;
    run->accept_ns[job] = now_ns - sent_ns;
    if (status == 202 && s_json_str (body, len, "command_id", run->ids[job], S_ID_LEN + 1))
        run->accepted++;
    else {
        run->ids[job][0] = 0;
        run->rejected++;
        run->last_status = status;
    }
}

static void
s_body_agent (s_load_t *load, int64_t job, char *out, size_t cap)
{
    s_run_t *run = (s_run_t *) load->user;
    snprintf (out, cap, "{\"agent_id\":\"%s%05lld\"}", run->opt->prefix, (long long) job + 1);
}

static void
s_done_agent (s_load_t *load, int64_t job, int status, const char *body, size_t len,
              int64_t sent_ns, int64_t now_ns)
{
    s_run_t *run = (s_run_t *) load->user;
    char token[128];
    if (status == 201 && s_json_str (body, len, "token", token, sizeof token)) {
        if (asprintf (&run->tokens[job], "%s%05lld %s\n", run->opt->prefix, (long long) job + 1,
                      token) < 0)
            run->tokens[job] = NULL;
        run->accepted++;
    }
    else {
        run->rejected++;
        run->last_status = status;
    }
}

static int
s_register (const s_opts_t *opt)
{
    s_run_t run = {.opt = opt};
    run.tokens = (char **) calloc ((size_t) opt->agents, sizeof (char *));
    s_load_t load = {.port = opt->port,
                     .token = opt->token,
                     .path = "/agents",
                     .nconns = opt->conns,
                     .total = opt->agents,
                     .body = s_body_agent,
                     .done = s_done_agent,
                     .user = &run};
    int rc = s_load_run (&load);
    FILE *file = NULL;
    if (rc == 0 && run.rejected == 0) {
        int fd = open (opt->out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        file = fd >= 0 ? fdopen (fd, "w") : NULL;
        for (int64_t i = 0; file && i < opt->agents; i++)
            if (!run.tokens[i] || fputs (run.tokens[i], file) < 0)
                rc = -1;
        if (!file || fclose (file) != 0)
            rc = -1;
    }
    else
        fprintf (stderr, "commands-load: %lld agent(s) refused (last status %lld)\n",
                 (long long) run.rejected, (long long) run.last_status);
    for (int64_t i = 0; i < opt->agents; i++)
        free (run.tokens[i]);
    free (run.tokens);
    if (rc == 0)
        printf ("registered=%lld ms=%.0f\n", (long long) opt->agents,
                s_ms (load.last_done_ns - load.t0_ns));
    return rc == 0 && run.rejected == 0 ? 0 : 1;
}

//  The database's counts of finished commands (GET /statistics).
typedef struct {
    int64_t completed, failed, cancelled, pending, executing;
} s_counts_t;

static int
s_counts (const s_opts_t *opt, s_counts_t *counts)
{
    char *body = NULL;
    int status = s_request (opt->port, opt->token, "GET", "/statistics", NULL, &body);
    json_t *root = body ? json_loads (body, 0, NULL) : NULL;
    json_t *c = json_object_get (root, "commands");
    free (body);
    if (status != 200 || !json_is_object (c)) {
        json_decref (root);
        fprintf (stderr, "commands-load: GET /statistics answered %d\n", status);
        return -1;
    }
    counts->completed = json_integer_value (json_object_get (c, "completed"));
    counts->failed = json_integer_value (json_object_get (c, "failed"));
    counts->cancelled = json_integer_value (json_object_get (c, "cancelled"));
    counts->pending = json_integer_value (json_object_get (c, "pending"));
    counts->executing = json_integer_value (json_object_get (c, "executing"));
    json_decref (root);
    return 0;
}

//  Every earlier write is committed once the store has answered a later
//  write (it answers writes after its commit): create a throwaway agent.
static int
s_barrier (const s_opts_t *opt)
{
    static int serial;
    char body[128];
    snprintf (body, sizeof body, "{\"agent_id\":\"barrier-%d-%d\"}", (int) getpid (), ++serial);
    int status = s_request (opt->port, opt->token, "POST", "/agents", body, NULL);
    if (status != 201)
        fprintf (stderr, "commands-load: barrier POST /agents answered %d\n", status);
    return status == 201 ? 0 : -1;
}

//  A ping to the first agent until its completion event arrives (the
//  subscription may take a moment to reach the publisher), then the
//  baseline counts once nothing is pending or executing.
static int
s_warm_up (const s_opts_t *opt, s_events_t *ev, s_counts_t *base)
{
    char body[256], *answer = NULL;
    snprintf (body, sizeof body, "{\"agent_id\":\"%s00001\",\"type\":\"ping\"}", opt->prefix);
    bool seen = false;
    for (int attempt = 0; attempt < 20 && !seen; attempt++) {
        int status = s_request (opt->port, opt->token, "POST", "/commands", body, &answer);
        char id[S_ID_LEN + 1];
        if (status != 202 || !answer ||
            !s_json_str (answer, strlen (answer), "command_id", id, sizeof id)) {
            fprintf (stderr, "commands-load: warm-up POST /commands answered %d: %s\n", status,
                     answer ? answer : "");
            free (answer);
            return -1;
        }
        free (answer);
        answer = NULL;
        s_finish_t f;
        for (int i = 0; i < 500 && !(seen = s_events_get (ev, id, &f)); i++)
            s_sleep_ms (2);
    }
    if (!seen) {
        fprintf (stderr, "commands-load: no completion event for the warm-up command\n");
        return -1;
    }
    for (int i = 0; i < 3000; i++) {
        if (s_counts (opt, base))
            return -1;
        if (base->pending == 0 && base->executing == 0)
            return 0;
        s_sleep_ms (10);
    }
    fprintf (stderr, "commands-load: commands still pending before the run\n");
    return -1;
}

//  Waits until every accepted command has a completion event, or none came
//  for S_EVENT_WAIT_S. Returns the number without one.
static int64_t
s_wait_events (const s_opts_t *opt, s_events_t *ev, s_run_t *run, int64_t total)
{
    int64_t cursor = 0, last = atomic_load (&ev->terminal), quiet_since = s_now_ns ();
    for (;;) {
        s_finish_t f;
        while (cursor < total && (!run->ids[cursor][0] || s_events_get (ev, run->ids[cursor], &f)))
            cursor++;
        if (cursor == total)
            return 0;
        int64_t now_terminal = atomic_load (&ev->terminal);
        if (now_terminal != last) {
            last = now_terminal;
            quiet_since = s_now_ns ();
        }
        else if (s_now_ns () - quiet_since > S_EVENT_WAIT_S * 1000000000LL)
            break;
        s_sleep_ms (1);
    }
    int64_t missing = 0;
    for (; cursor < total; cursor++) {
        s_finish_t f;
        missing += run->ids[cursor][0] && !s_events_get (ev, run->ids[cursor], &f);
    }
    return missing;
}

//  Polls the database's counts until `expected` more commands have finished
//  than in `base` (at most 60 s), then passes the commit barrier. Fills
//  *now (the finished counts) and returns 0, or -1 on an error.
static int
s_wait_durable (const s_opts_t *opt, const s_counts_t *base, int64_t expected, s_counts_t *now)
{
    int64_t deadline = s_now_ns () + 60000000000LL;
    for (;;) {
        if (s_counts (opt, now))
            return -1;
        int64_t finished = now->completed + now->failed + now->cancelled - base->completed -
                           base->failed - base->cancelled;
        if (finished >= expected || s_now_ns () > deadline)
            break;
        s_sleep_ms (1);
    }
    return s_barrier (opt);
}

static int
s_compare_i64 (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

//  Percentile q of n sorted values, in ms.
static double
s_pct (const int64_t *sorted, int64_t n, double q)
{
    return n ? s_ms (sorted[(int64_t) (q * (double) (n - 1))]) : 0;
}

static int
s_commands (const s_opts_t *opt, bool saturate)
{
    int64_t total = saturate ? opt->count : opt->rate * opt->seconds;
    s_run_t run = {.opt = opt};
    run.ids = calloc ((size_t) total, sizeof *run.ids);
    run.sent_ns = (int64_t *) calloc ((size_t) total, sizeof (int64_t));
    run.accept_ns = (int64_t *) calloc ((size_t) total, sizeof (int64_t));
    int64_t *lat = (int64_t *) calloc ((size_t) total, sizeof (int64_t));
    s_events_t ev;
    s_counts_t base = {0}, after = {0};
    int rc = s_events_start (&ev, opt->events) || s_warm_up (opt, &ev, &base) ? -1 : 0;
    s_load_t load = {.port = opt->port,
                     .token = opt->token,
                     .path = "/commands",
                     .nconns = opt->conns,
                     .total = total,
                     .rate = saturate ? 0 : opt->rate,
                     .body = s_body_command,
                     .done = s_done_command,
                     .user = &run};
    if (rc == 0)
        rc = s_load_run (&load);
    int64_t missing = 0, t_durable = 0;
    if (rc == 0) {
        missing = s_wait_events (opt, &ev, &run, total);
        rc = s_wait_durable (opt, &base, run.accepted, &after);
        t_durable = s_now_ns ();
    }
    if (rc) {
        if (atomic_load (&ev.ready) != 0)
            s_events_stop (&ev);
        fprintf (stderr, "commands-load: run failed\n");
        return 1;
    }
    //  Per command: submit -> completion event; the last event.
    int64_t n = 0, failed_ev = 0, last_event = 0;
    for (int64_t i = 0; i < total; i++) {
        s_finish_t f;
        if (run.ids[i][0] && s_events_get (&ev, run.ids[i], &f)) {
            lat[n++] = f.at_ns - run.sent_ns[i];
            failed_ev += f.state != 'c';
            if (f.at_ns > last_event)
                last_event = f.at_ns;
        }
    }
    int64_t retries = atomic_load (&ev.retries);
    s_events_stop (&ev);
    qsort (lat, (size_t) n, sizeof (int64_t), s_compare_i64);
    qsort (run.accept_ns, (size_t) total, sizeof (int64_t), s_compare_i64);
    int64_t completed = after.completed - base.completed;
    int64_t failed = after.failed - base.failed + after.cancelled - base.cancelled;
    int64_t t0 = load.first_sent_ns;
    printf ("mode=%s count=%lld agents=%lld conns=%d accepted=%lld rejected=%lld http_resent=%lld "
            "completed=%lld failed=%lld missing=%lld events_missing=%lld events_failed=%lld "
            "retried=%lld",
            saturate ? "saturate" : "rate", (long long) total, (long long) opt->agents, opt->conns,
            (long long) run.accepted, (long long) run.rejected, (long long) load.resent,
            (long long) completed, (long long) failed,
            (long long) (run.accepted - completed - failed), (long long) missing,
            (long long) failed_ev, (long long) retries);
    if (saturate)
        printf (" accept_ms=%.0f events_ms=%.0f durable_ms=%.0f accepted_per_s=%.0f "
                "e2e_per_s=%.0f",
                s_ms (load.last_done_ns - t0), s_ms (last_event - t0), s_ms (t_durable - t0),
                (double) run.accepted * 1e9 / (double) (load.last_done_ns - t0),
                (double) run.accepted * 1e9 / (double) (t_durable - t0));
    else
        printf (" rate=%lld seconds=%lld sent_per_s=%.0f late_max_ms=%.2f", (long long) opt->rate,
                (long long) opt->seconds,
                (double) total * 1e9 / (double) (load.last_done_ns - load.t0_ns),
                s_ms (load.late_max_ns));
    struct rusage ru;
    getrusage (RUSAGE_SELF, &ru);
    printf (" cpu_ms=%.0f", (double) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
                                (double) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3);
    printf (" lat_p50_ms=%.2f lat_p95_ms=%.2f lat_p99_ms=%.2f lat_max_ms=%.2f "
            "submit_p50_ms=%.2f submit_p99_ms=%.2f\n",
            s_pct (lat, n, 0.50), s_pct (lat, n, 0.95), s_pct (lat, n, 0.99), s_pct (lat, n, 1.0),
            s_pct (run.accept_ns, total, 0.50), s_pct (run.accept_ns, total, 0.99));
    free (run.ids);
    free (run.sent_ns);
    free (run.accept_ns);
    free (lat);
    bool clean = run.rejected == 0 && missing == 0 && failed == 0 && failed_ev == 0 &&
                 completed == run.accepted;
    return clean ? 0 : 1;
}

//  --------------------------------------------------------------------------

static int
s_usage (void)
{
    fprintf (stderr,
             "usage: commands-load register --http-port P --agents N --prefix X --out FILE\n"
             "       commands-load saturate --http-port P --events EP --agents N "
             "--prefix X --count C [--conns 48]\n"
             "       commands-load rate --http-port P --events EP --agents N --prefix X "
             "--rate R --seconds S [--conns 32]\n"
             "(VIWORKS_ADMIN_PASSWORD: the password of the backend's admin user)\n");
    return 2;
}

static bool
s_number (const char *text, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll (text, &end, 10);
    if (errno || end == text || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

int
main (int argc, char **argv)
{
    if (argc < 2)
        return s_usage ();
    const char *mode = argv[1];
    bool reg = streq (mode, "register"), sat = streq (mode, "saturate"),
         rate = streq (mode, "rate");
    if (!reg && !sat && !rate)
        return s_usage ();
    s_opts_t opt = {.prefix = "bench-", .conns = sat ? 48 : rate ? 32 : 16};
    static const struct option options[] = {
        {"http-port", required_argument, NULL, 'p'}, {"events", required_argument, NULL, 'e'},
        {"agents", required_argument, NULL, 'a'},    {"prefix", required_argument, NULL, 'x'},
        {"count", required_argument, NULL, 'c'},     {"rate", required_argument, NULL, 'r'},
        {"seconds", required_argument, NULL, 's'},   {"conns", required_argument, NULL, 'n'},
        {"out", required_argument, NULL, 'o'},       {NULL, 0, NULL, 0}};
    int ch;
    int64_t v;
    while ((ch = getopt_long (argc - 1, argv + 1, "", options, NULL)) != -1) {
        bool ok = true;
        switch (ch) {
            case 'p':
                ok = s_number (optarg, 1, 65535, &v);
                opt.port = (uint16_t) v;
                break;
            case 'e': opt.events = optarg; break;
            case 'x': opt.prefix = optarg; break;
            case 'o': opt.out = optarg; break;
            case 'a': ok = s_number (optarg, 1, 99999, &opt.agents); break;
            case 'c': ok = s_number (optarg, 1, 100000000, &opt.count); break;
            case 'r': ok = s_number (optarg, 1, 1000000, &opt.rate); break;
            case 's': ok = s_number (optarg, 1, 86400, &opt.seconds); break;
            case 'n':
                ok = s_number (optarg, 1, 4096, &v);
                opt.conns = (int) v;
                break;
            default: ok = false; break;
        }
        if (!ok)
            return s_usage ();
    }
    if (optind != argc - 1 || !opt.port || !opt.agents || (reg && !opt.out) ||
        (!reg && !opt.events) || (sat && !opt.count) || (rate && (!opt.rate || !opt.seconds)))
        return s_usage ();
    const char *password = getenv ("VIWORKS_ADMIN_PASSWORD");
    if (!password || !*password) {
        fprintf (stderr, "commands-load: VIWORKS_ADMIN_PASSWORD is not set\n");
        return 2;
    }
    char *token = s_login (opt.port, password);
    if (!token)
        return 1;
    opt.token = token;
    setvbuf (stdout, NULL, _IOLBF, 0);
    int rc = reg ? s_register (&opt) : s_commands (&opt, sat);
    free (token);
    return rc;
}
