/*  viworksctl - the admin CLI (SPEC §7): every admin-socket op as a
    subcommand, human tables by default, --json for scripts, the event
    stream, and CURVE keys.

    One request, one answer: a DEALER socket sends {"op","args"} to the
    admin socket and waits (--timeout) for {"ok":…}. With --server-key and
    --key the socket is a CURVE client; a refused handshake is told at once
    (a socket monitor), not left to the timeout. Exit status (docs/operations.md):
    0 ok, 1 the backend refused the request, 2 usage, 3 not found,
    4 conflict, 5 no answer / cannot connect / CURVE refused, 6 a watched
    command ended failed or cancelled.
*/
#include "vw_curve.h"

#include <czmq.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
    S_OK = 0,
    S_REFUSED = 1,
    S_USAGE = 2,
    S_NOT_FOUND = 3,
    S_CONFLICT = 4,
    S_UNREACHABLE = 5,
    S_FAILED = 6
};

typedef struct {
    const char *endpoint, *events_endpoint, *server_key, *key;
    bool json;
    int timeout_ms;
    //  Subcommand options.
    const char *status, *label, *cursor, *agent, *state, *payload, *priority, *idempotency_key,
        *public_key, *metric, *agg, *role, *password, *name, *level;
    json_t *labels;  //  --label k=v (agents create)
    json_t *topics;  //  --topic (events, repeatable)
    long long limit, from, to, step_ms, timeout_cmd, max_retries, ttl_s, count, grace_s;
    int disabled;  //  -1: not given
} s_opts_t;

static volatile sig_atomic_t s_interrupted;

static void
s_on_signal (int sig)
{
    (void) sig;
    s_interrupted = 1;
}

static int s_usage (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static int
s_usage (const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    fprintf (stderr, "viworksctl: ");
    vfprintf (stderr, fmt, ap);
    fprintf (stderr, " (viworksctl --help)\n");
    va_end (ap);
    return S_USAGE;
}

static void
s_help (void)
{
    printf (
        "usage: viworksctl [options] COMMAND [ARGS]\n"
        "\n"
        "The admin CLI of viworks-backend, over its admin socket (ZeroMQ).\n"
        "\n"
        "Commands:\n"
        "  ping                                 is the backend there (version, uptime)\n"
        "  stats                                the broker's message counters per actor\n"
        "  actors                               each actor's liveness and latency\n"
        "  log level [LEVEL]                    show or set the log level\n"
        "  agents list [--status S] [--label K:V] [--limit N] [--cursor C]\n"
        "  agents get ID\n"
        "  agents create ID [--label K=V]... [--public-key HEX]   prints the agent's token once\n"
        "  agents revoke ID\n"
        "  agents disconnect ID\n"
        "  agents rotate-token ID [--grace-s N] a new token (shown once); the current one\n"
        "                                       works N s more (default 86400) or until the\n"
        "                                       agent uses the new one\n"
        "  commands submit AGENT TYPE [--payload JSON] [--priority high|normal|low]\n"
        "                  [--timeout-ms N] [--max-retries N] [--idempotency-key K]\n"
        "  commands get ID\n"
        "  commands list [--agent ID] [--state S] [--limit N] [--cursor C]\n"
        "  commands cancel ID\n"
        "  commands watch ID                    follow a command until it ends (exit 0\n"
        "                                       completed, 6 failed or cancelled)\n"
        "  telemetry query AGENT [--metric M] [--from MS] [--to MS] [--step-ms N] [--agg A]\n"
        "  telemetry summary AGENT\n"
        "  users list [--limit N] [--cursor C]\n"
        "  users get NAME\n"
        "  users create NAME --password P [--role viewer|operator|admin]\n"
        "  users update NAME [--password P] [--role R] [--disabled|--enabled]\n"
        "  users delete NAME\n"
        "  tokens issue SUBJECT [--role R] [--ttl-s N]   a JWT for the REST API\n"
        "  events [--topic PREFIX]... [--count N]   print events as they come\n"
        "  db backup FILE                       an online copy of the database, written by\n"
        "                                       the backend to FILE on its host (consistent\n"
        "                                       while agents and commands run)\n"
        "  keygen FILE [--name NAME]            a CURVE key pair: FILE (public) and\n"
        "                                       FILE_secret\n"
        "\n"
        "Options:\n"
        "  --endpoint E         admin socket (default tcp://127.0.0.1:5555;\n"
        "                       VIWORKS_ADMIN_ENDPOINT)\n"
        "  --events-endpoint E  event stream (default tcp://127.0.0.1:5556;\n"
        "                       VIWORKS_EVENTS_ENDPOINT)\n"
        "  --server-key FILE    the backend's public CURVE certificate: talk CURVE\n"
        "                       (VIWORKS_ADMIN_SERVER_KEY; needs --key)\n"
        "  --key FILE           this client's certificate (FILE and FILE_secret;\n"
        "                       VIWORKS_ADMIN_KEY); its public file goes into the\n"
        "                       backend's --admin-curve-clients directory\n"
        "  --json               print the answer's data as JSON (for scripts)\n"
        "  --timeout MS         wait this long for an answer (default 10000)\n"
        "  --help, --version\n"
        "\n"
        "Exit status: 0 ok; 1 the backend refused the request; 2 usage; 3 not found;\n"
        "4 conflict; 5 no answer, cannot connect or CURVE refused; 6 a watched command\n"
        "failed or was cancelled.\n");
}

//  --------------------------------------------------------------------------
//  Talking to the backend

//  A socket of `type` connected to endpoint, a CURVE client when keys are
//  given; *monitor watches its handshakes. NULL (and an exit status in
//  *code) on failure.
static zsock_t *
s_connect (const s_opts_t *o, int type, const char *endpoint, zactor_t **monitor, int *code)
{
    zsock_t *sock = zsock_new (type);
    if (!sock) {
        fprintf (stderr, "viworksctl: cannot make a ZeroMQ socket\n");
        *code = S_UNREACHABLE;
        return NULL;
    }
    zsock_set_linger (sock, 0);
    if (o->server_key || o->key) {
        char err[512], server[41];
        zcert_t *cert = NULL;
        if (!o->server_key || !o->key) {
            *code = s_usage ("--server-key and --key go together");
            zsock_destroy (&sock);
            return NULL;
        }
        if (vw_curve_load_public (o->server_key, server, err, sizeof err) ||
            !(cert = vw_curve_load_secret (o->key, err, sizeof err))) {
            fprintf (stderr, "viworksctl: %s\n", err);
            *code = S_USAGE;
            zsock_destroy (&sock);
            return NULL;
        }
        vw_curve_connect (sock, cert, server);
        zcert_destroy (&cert);
    }
    *monitor = zactor_new (zmonitor, sock);
    zstr_sendx (*monitor, "LISTEN", "HANDSHAKE_FAILED_AUTH", "HANDSHAKE_FAILED_PROTOCOL",
                "HANDSHAKE_FAILED_NO_DETAIL", NULL);
    zstr_sendx (*monitor, "START", NULL);
    zsock_wait (*monitor);
    if (zsock_connect (sock, "%s", endpoint) == -1) {
        fprintf (stderr, "viworksctl: cannot connect to %s: %s\n", endpoint,
                 zmq_strerror (zmq_errno ()));
        zactor_destroy (monitor);
        zsock_destroy (&sock);
        *code = S_USAGE;
        return NULL;
    }
    return sock;
}

//  What the monitor saw: a refused handshake ends the call.
static int
s_handshake_failed (zactor_t *monitor, const char *endpoint)
{
    zmsg_t *event = zmsg_recv (monitor);
    char *name = event ? zmsg_popstr (event) : NULL;
    fprintf (stderr, "viworksctl: %s refused the connection (%s): %s\n", endpoint,
             name ? name : "?",
             name && strstr (name, "AUTH")
                 ? "this client's key is not in the backend's --admin-curve-clients"
                 : "check --server-key and --key against the backend's CURVE settings");
    zstr_free (&name);
    zmsg_destroy (&event);
    return S_UNREACHABLE;
}

static int
s_error_code (const char *code)
{
    if (!code)
        return S_REFUSED;
    if (streq (code, "not_found"))
        return S_NOT_FOUND;
    if (streq (code, "conflict"))
        return S_CONFLICT;
    return S_REFUSED;
}

//  Sends op with args (stolen) and waits for the answer: S_OK with the
//  data in *data (new reference), or an exit status after saying why.
static int
s_call (const s_opts_t *o, const char *op, json_t *args, json_t **data)
{
    *data = NULL;
    int code = S_OK;
    zactor_t *monitor = NULL;
    zsock_t *sock = s_connect (o, ZMQ_DEALER, o->endpoint, &monitor, &code);
    if (!sock) {
        json_decref (args);
        return code;
    }
    json_t *request = json_pack ("{s:s, s:o}", "op", op, "args", args ? args : json_object ());
    char *text = json_dumps (request, JSON_COMPACT);
    json_decref (request);
    zstr_send (sock, text);
    free (text);
    zpoller_t *poller = zpoller_new (sock, monitor, NULL);
    void *which = zpoller_wait (poller, o->timeout_ms);
    if (which == monitor)
        code = s_handshake_failed (monitor, o->endpoint);
    else if (which != sock) {
        fprintf (stderr,
                 "viworksctl: no answer from %s within %d ms (is viworks-backend running, and "
                 "does it use CURVE?)\n",
                 o->endpoint, o->timeout_ms);
        code = S_UNREACHABLE;
    }
    else {
        char *answer = zstr_recv (sock);
        json_t *reply = answer ? json_loads (answer, 0, NULL) : NULL;
        zstr_free (&answer);
        if (json_is_true (json_object_get (reply, "ok"))) {
            *data = json_incref (json_object_get (reply, "data"));
            if (!*data)
                *data = json_null ();
        }
        else {
            json_t *error = json_object_get (reply, "error");
            const char *ecode = json_string_value (json_object_get (error, "code"));
            fprintf (stderr, "viworksctl: %s: %s\n", ecode ? ecode : "error",
                     json_string_value (json_object_get (error, "message"))
                         ? json_string_value (json_object_get (error, "message"))
                         : "malformed answer");
            if (o->json && error)
                json_dumpf (error, stdout, JSON_COMPACT), putchar ('\n');
            code = s_error_code (ecode);
        }
        json_decref (reply);
    }
    zpoller_destroy (&poller);
    zactor_destroy (&monitor);
    zsock_destroy (&sock);
    return code;
}

//  --------------------------------------------------------------------------
//  Printing

//  A value as a table cell: strings as they are, null as "-", times (keys
//  ending in _at, last_seen) as ISO 8601, the rest as compact JSON.
static char *
s_cell (const char *key, json_t *value)
{
    if (!value || json_is_null (value))
        return strdup ("-");
    if (json_is_string (value))
        return strdup (json_string_value (value));
    bool time = key && (strstr (key, "_at") || streq (key, "last_seen") || streq (key, "at"));
    if (time && json_is_integer (value)) {
        time_t s = (time_t) (json_integer_value (value) / 1000);
        struct tm tm;
        char text[32];
        gmtime_r (&s, &tm);
        strftime (text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
        return strdup (text);
    }
    if (json_is_object (value) && key && strstr (key, "labels")) {
        //  k=v,k=v
        char *out = strdup ("");
        const char *k;
        json_t *v;
        json_object_foreach (value, k, v)
        {
            char *more = NULL;
            if (asprintf (&more, "%s%s%s=%s", out, *out ? "," : "", k,
                          json_is_string (v) ? json_string_value (v) : "?") < 0)
                break;
            free (out);
            out = more;
        }
        return out;
    }
    return json_dumps (value, JSON_COMPACT | JSON_ENCODE_ANY);
}

//  Rows (objects) as aligned columns.
static void
s_table (json_t *rows, const char *const *columns)
{
    size_t ncol = 0;
    while (columns[ncol])
        ncol++;
    size_t nrows = json_array_size (rows);
    char **cells = (char **) calloc ((nrows + 1) * ncol, sizeof *cells);
    size_t *width = (size_t *) calloc (ncol, sizeof *width);
    for (size_t c = 0; c < ncol; c++) {
        cells[c] = strdup (columns[c]);
        for (char *p = cells[c]; *p; p++)
            *p = (char) (*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    }
    for (size_t r = 0; r < nrows; r++)
        for (size_t c = 0; c < ncol; c++)
            cells[(r + 1) * ncol + c] =
                s_cell (columns[c], json_object_get (json_array_get (rows, r), columns[c]));
    for (size_t i = 0; i < (nrows + 1) * ncol; i++)
        if (strlen (cells[i]) > width[i % ncol])
            width[i % ncol] = strlen (cells[i]);
    for (size_t r = 0; r <= nrows; r++) {
        for (size_t c = 0; c < ncol; c++)
            if (c + 1 < ncol)
                printf ("%-*s  ", (int) width[c], cells[r * ncol + c]);
            else
                printf ("%s", cells[r * ncol + c]);
        putchar ('\n');
    }
    for (size_t i = 0; i < (nrows + 1) * ncol; i++)
        free (cells[i]);
    free (cells);
    free (width);
}

//  An object as "key: value" lines.
static void
s_fields (json_t *object)
{
    size_t width = 0;
    const char *key;
    json_t *value;
    json_object_foreach (object, key, value) if (strlen (key) > width) width = strlen (key);
    json_object_foreach (object, key, value)
    {
        char *cell = s_cell (key, value);
        printf ("%-*s  %s\n", (int) width + 1, key, cell);
        free (cell);
    }
}

static void
s_next_page (json_t *data)
{
    const char *next = json_string_value (json_object_get (data, "next_cursor"));
    if (next)
        printf ("(more: --cursor %s)\n", next);
}

//  The answer, as asked: JSON, a table of `list` with columns, or fields.
static void
s_print (const s_opts_t *o, json_t *data, const char *list, const char *const *columns)
{
    if (o->json) {
        json_dumpf (data, stdout, JSON_INDENT (2) | JSON_ENCODE_ANY);
        putchar ('\n');
    }
    else if (list && json_is_array (json_object_get (data, list))) {
        s_table (json_object_get (data, list), columns);
        s_next_page (data);
    }
    else if (json_is_object (data))
        s_fields (data);
    else if (!json_is_null (data)) {
        json_dumpf (data, stdout, JSON_ENCODE_ANY);
        putchar ('\n');
    }
}

//  --------------------------------------------------------------------------
//  Events

//  A SUB socket on the event stream for these topic prefixes.
static zsock_t *
s_subscribe (const s_opts_t *o, json_t *topics, zactor_t **monitor, int *code)
{
    zsock_t *sub = s_connect (o, ZMQ_SUB, o->events_endpoint, monitor, code);
    if (!sub)
        return NULL;
    size_t i;
    json_t *topic;
    if (json_array_size (topics) == 0)
        zsock_set_subscribe (sub, "");
    json_array_foreach (topics, i, topic) zsock_set_subscribe (sub, json_string_value (topic));
    return sub;
}

static int
s_events (const s_opts_t *o)
{
    int code = S_OK;
    zactor_t *monitor = NULL;
    zsock_t *sub = s_subscribe (o, o->topics, &monitor, &code);
    if (!sub)
        return code;
    zpoller_t *poller = zpoller_new (sub, monitor, NULL);
    long long seen = 0;
    while (!s_interrupted && (o->count <= 0 || seen < o->count)) {
        void *which = zpoller_wait (poller, 200);
        if (which == monitor) {
            code = s_handshake_failed (monitor, o->events_endpoint);
            break;
        }
        if (which != sub)
            continue;
        char *topic = NULL, *body = NULL;
        if (zsock_recv (sub, "ss", &topic, &body) == 0) {
            if (o->json)
                printf ("{\"topic\":\"%s\",\"event\":%s}\n", topic, body);
            else
                printf ("%s %s\n", topic, body);
            fflush (stdout);
            seen++;
        }
        zstr_free (&topic);
        zstr_free (&body);
    }
    zpoller_destroy (&poller);
    zactor_destroy (&monitor);
    zsock_destroy (&sub);
    return code;
}

static bool
s_finished (const char *state)
{
    return state &&
           (streq (state, "completed") || streq (state, "failed") || streq (state, "cancelled"));
}

static void
s_progress_line (const char *state, json_t *command)
{
    json_t *progress = json_object_get (command, "progress");
    //  A command object says progress_message; a command.progress event, message.
    const char *message = json_string_value (json_object_get (command, "progress_message"));
    if (!message)
        message = json_string_value (json_object_get (command, "message"));
    printf ("%-10s", state ? state : "?");
    if (json_is_number (progress)) {
        double p = json_number_value (progress);
        int filled = (int) (p / 100.0 * 30.0 + 0.5);
        printf (" [%.*s%.*s] %3.0f%%",
                filled < 0    ? 0
                : filled > 30 ? 30
                              : filled,
                "##############################",
                30 - (filled < 0    ? 0
                      : filled > 30 ? 30
                                    : filled),
                "..............................", p);
    }
    if (message)
        printf (" %s", message);
    putchar ('\n');
    fflush (stdout);
}

//  commands watch: the command's state now, then its events until it ends.
static int
s_watch (const s_opts_t *o, const char *id)
{
    int code = S_OK;
    zactor_t *monitor = NULL;
    json_t *topics = json_pack ("[s]", "command.");
    zsock_t *sub = s_subscribe (o, topics, &monitor, &code);
    json_decref (topics);
    if (!sub)
        return code;
    //  Subscribed first: nothing that happens after the read is missed.
    json_t *command = NULL;
    code = s_call (o, "commands.get", json_pack ("{s:s}", "command_id", id), &command);
    const char *state = json_string_value (json_object_get (command, "state"));
    if (code == S_OK && !o->json)
        s_progress_line (state, command);
    if (code == S_OK && o->json)
        json_dumpf (command, stdout, JSON_COMPACT), putchar ('\n');
    bool done = code != S_OK || s_finished (state);
    char last[16] = "";
    snprintf (last, sizeof last, "%s", state ? state : "");
    zpoller_t *poller = zpoller_new (sub, monitor, NULL);
    while (!done && !s_interrupted) {
        void *which = zpoller_wait (poller, 200);
        if (which == monitor) {
            code = s_handshake_failed (monitor, o->events_endpoint);
            break;
        }
        if (which != sub)
            continue;
        char *topic = NULL, *body = NULL;
        if (zsock_recv (sub, "ss", &topic, &body) == 0) {
            json_t *event = json_loads (body, 0, NULL);
            const char *cid = json_string_value (json_object_get (event, "command_id"));
            if (cid && streq (cid, id)) {
                const char *now = json_string_value (json_object_get (event, "state"));
                if (streq (topic, "command.progress"))
                    now = last;
                if (o->json)
                    json_dumpf (event, stdout, JSON_COMPACT), putchar ('\n'), fflush (stdout);
                else
                    s_progress_line (now, event);
                if (now && now != last)
                    snprintf (last, sizeof last, "%s", now);
                done = s_finished (last);
            }
            json_decref (event);
        }
        zstr_free (&topic);
        zstr_free (&body);
    }
    zpoller_destroy (&poller);
    zactor_destroy (&monitor);
    zsock_destroy (&sub);
    json_decref (command);
    if (code == S_OK && done && !streq (last, "completed"))
        code = S_FAILED;
    if (code == S_OK && !done)
        code = S_FAILED;  //  interrupted before the end
    return code;
}

//  --------------------------------------------------------------------------
//  Subcommands

//  Optional arguments: set when given.
static void
s_set_str (json_t *args, const char *key, const char *value)
{
    if (value)
        json_object_set_new (args, key, json_string (value));
}

static void
s_set_int (json_t *args, const char *key, long long value)
{
    if (value)
        json_object_set_new (args, key, json_integer (value));
}

//  A list's page: --limit and --cursor.
static json_t *
s_page (const s_opts_t *o)
{
    json_t *args = json_object ();
    s_set_int (args, "limit", o->limit);
    s_set_str (args, "cursor", o->cursor);
    return args;
}

static int
s_run (s_opts_t *o, int argc, char **argv)
{
    if (argc < 1)
        return s_usage ("no command");
    const char *noun = argv[0], *verb = argc > 1 ? argv[1] : NULL;
    const char *a1 = argc > 2 ? argv[2] : NULL, *a2 = argc > 3 ? argv[3] : NULL;
    json_t *data = NULL;
    int code;
#define S_NEED(n, what)                                                                            \
    if (argc != (n))                                                                               \
        return s_usage ("%s", what);
    if (streq (noun, "ping") || streq (noun, "stats") || streq (noun, "actors")) {
        S_NEED (1, "ping, stats and actors take no arguments");
        code = s_call (o, streq (noun, "actors") ? "actors.status" : noun, NULL, &data);
        if (code == S_OK && streq (noun, "actors") && !o->json) {
            //  {"actors":{name:{status,latency_us,detail}},"all_up"}
            json_t *rows = json_array ();
            const char *name;
            json_t *a;
            json_object_foreach (json_object_get (data, "actors"), name, a)
            {
                json_t *row = json_deep_copy (a);
                json_object_set_new (row, "actor", json_string (name));
                json_array_append_new (rows, row);
            }
            static const char *const cols[] = {"actor", "status", "latency_us", "detail", NULL};
            s_table (rows, cols);
            json_decref (rows);
        }
        else if (code == S_OK)
            s_print (o, data, NULL, NULL);
    }
    else if (streq (noun, "log")) {
        if (!verb || !streq (verb, "level") || argc > 3)
            return s_usage ("log level [LEVEL]");
        code = s_call (o, "log.level", a1 ? json_pack ("{s:s}", "level", a1) : NULL, &data);
        if (code == S_OK)
            s_print (o, data, NULL, NULL);
    }
    else if (streq (noun, "agents") && verb && streq (verb, "list")) {
        S_NEED (2, "agents list takes options only");
        json_t *args = s_page (o);
        s_set_str (args, "status", o->status);
        s_set_str (args, "label", o->label);
        code = s_call (o, "agents.list", args, &data);
        static const char *const cols[] = {"agent_id", "status", "last_seen", "version",
                                           "hostname", "labels", NULL};
        if (code == S_OK)
            s_print (o, data, "agents", cols);
    }
    else if (streq (noun, "agents") && verb &&
             (streq (verb, "get") || streq (verb, "revoke") || streq (verb, "disconnect") ||
              streq (verb, "create"))) {
        S_NEED (3, "agents get|create|revoke|disconnect ID");
        json_t *args = json_pack ("{s:s}", "agent_id", a1);
        if (streq (verb, "create") && json_object_size (o->labels))
            json_object_set (args, "labels", o->labels);
        if (streq (verb, "create") && o->public_key)
            json_object_set_new (args, "public_key", json_string (o->public_key));
        char op[32];
        snprintf (op, sizeof op, "agents.%s", verb);
        code = s_call (o, op, args, &data);
        if (code == S_OK && streq (verb, "create") && !o->json)
            printf ("agent %s created; its token (shown once):\n%s\n", a1,
                    json_string_value (json_object_get (data, "token")));
        else if (code == S_OK && !json_is_null (data))
            s_print (o, data, NULL, NULL);
        else if (code == S_OK && !o->json)
            printf ("%s: done\n", a1);
    }
    else if (streq (noun, "agents") && verb && streq (verb, "rotate-token")) {
        S_NEED (3, "agents rotate-token ID");
        json_t *args = json_pack ("{s:s}", "agent_id", a1);
        if (o->grace_s >= 0)
            json_object_set_new (args, "grace_s", json_integer (o->grace_s));
        code = s_call (o, "agents.rotate_token", args, &data);
        if (code == S_OK && !o->json) {
            char *until = s_cell ("until_at", json_object_get (data, "previous_valid_until"));
            printf ("agent %s has a new token (shown once):\n%s\nthe previous one works until %s "
                    "or until the agent uses the new one\n",
                    a1, json_string_value (json_object_get (data, "token")), until);
            free (until);
        }
        else if (code == S_OK)
            s_print (o, data, NULL, NULL);
    }
    else if (streq (noun, "commands") && verb && streq (verb, "submit")) {
        S_NEED (4, "commands submit AGENT TYPE");
        json_t *args = json_pack ("{s:s, s:s}", "agent_id", a1, "type", a2);
        if (o->payload) {
            json_error_t error;
            json_t *payload = json_loads (o->payload, JSON_DECODE_ANY, &error);
            if (!payload) {
                json_decref (args);
                return s_usage ("--payload is not JSON: %s", error.text);
            }
            json_object_set_new (args, "payload", payload);
        }
        s_set_str (args, "priority", o->priority);
        s_set_int (args, "timeout_ms", o->timeout_cmd);
        if (o->max_retries >= 0)
            json_object_set_new (args, "max_retries", json_integer (o->max_retries));
        s_set_str (args, "idempotency_key", o->idempotency_key);
        code = s_call (o, "commands.submit", args, &data);
        if (code == S_OK && !o->json)
            printf ("%s %s\n", json_string_value (json_object_get (data, "command_id")),
                    json_string_value (json_object_get (data, "state")));
        else if (code == S_OK)
            s_print (o, data, NULL, NULL);
    }
    else if (streq (noun, "commands") && verb &&
             (streq (verb, "get") || streq (verb, "cancel") || streq (verb, "watch"))) {
        S_NEED (3, "commands get|cancel|watch ID");
        if (streq (verb, "watch"))
            return s_watch (o, a1);
        char op[32];
        snprintf (op, sizeof op, "commands.%s", verb);
        code = s_call (o, op, json_pack ("{s:s}", "command_id", a1), &data);
        if (code == S_OK)
            s_print (o, data, NULL, NULL);
    }
    else if (streq (noun, "commands") && verb && streq (verb, "list")) {
        S_NEED (2, "commands list takes options only");
        json_t *args = s_page (o);
        s_set_str (args, "agent_id", o->agent);
        s_set_str (args, "state", o->state);
        code = s_call (o, "commands.list", args, &data);
        static const char *const cols[] = {"command_id", "agent_id",   "type", "state",
                                           "attempts",   "created_at", NULL};
        if (code == S_OK)
            s_print (o, data, "commands", cols);
    }
    else if (streq (noun, "telemetry") && verb &&
             (streq (verb, "query") || streq (verb, "summary"))) {
        S_NEED (3, "telemetry query|summary AGENT");
        json_t *args = json_pack ("{s:s}", "agent_id", a1);
        if (streq (verb, "query")) {
            s_set_str (args, "metric", o->metric);
            s_set_int (args, "from", o->from);
            s_set_int (args, "to", o->to);
            s_set_int (args, "step_ms", o->step_ms);
            s_set_str (args, "agg", o->agg);
        }
        code = s_call (o, streq (verb, "query") ? "telemetry.query" : "telemetry.summary", args,
                       &data);
        if (code == S_OK && !o->json && streq (verb, "query")) {
            json_t *rows = json_array ();
            size_t i, k;
            json_t *series, *point;
            json_array_foreach (json_object_get (data, "series"), i, series)
                json_array_foreach (json_object_get (series, "points"), k, point)
                    json_array_append_new (rows, json_pack ("{s:O, s:O, s:O}", "metric",
                                                            json_object_get (series, "metric"),
                                                            "at", json_array_get (point, 0),
                                                            "value", json_array_get (point, 1)));
            static const char *const cols[] = {"metric", "at", "value", NULL};
            s_table (rows, cols);
            json_decref (rows);
        }
        else if (code == S_OK && !o->json) {
            json_t *rows = json_array ();
            const char *name;
            json_t *m;
            json_object_foreach (json_object_get (data, "metrics"), name, m)
            {
                json_t *w = json_object_get (json_object_get (m, "windows"), "5m");
                json_array_append_new (rows,
                                       json_pack ("{s:s, s:O, s:O, s:O, s:O, s:O}", "metric", name,
                                                  "last", json_object_get (m, "last"), "min_5m",
                                                  json_object_get (w, "min"), "avg_5m",
                                                  json_object_get (w, "avg"), "max_5m",
                                                  json_object_get (w, "max"), "trend_per_min",
                                                  json_object_get (m, "trend_per_min")));
            }
            static const char *const cols[] = {"metric", "last",          "min_5m", "avg_5m",
                                               "max_5m", "trend_per_min", NULL};
            s_table (rows, cols);
            json_decref (rows);
        }
        else if (code == S_OK)
            s_print (o, data, NULL, NULL);
    }
    else if (streq (noun, "users") && verb) {
        json_t *args = NULL;
        if (streq (verb, "list")) {
            S_NEED (2, "users list takes options only");
            args = s_page (o);
        }
        else if (streq (verb, "get") || streq (verb, "delete") || streq (verb, "create") ||
                 streq (verb, "update")) {
            S_NEED (3, "users get|create|update|delete NAME");
            args = json_pack ("{s:s}", "username", a1);
            s_set_str (args, "password", o->password);
            s_set_str (args, "role", o->role);
            if (o->disabled >= 0)
                json_object_set_new (args, "disabled", json_boolean (o->disabled));
        }
        else
            return s_usage ("users list|get|create|update|delete");
        char op[32];
        snprintf (op, sizeof op, "users.%s", verb);
        code = s_call (o, op, args, &data);
        static const char *const cols[] = {"username", "role", "disabled", "created_at", NULL};
        if (code == S_OK && json_is_null (data) && !o->json)
            printf ("%s: done\n", a1);
        else if (code == S_OK)
            s_print (o, data, "users", cols);
    }
    else if (streq (noun, "tokens") && verb && streq (verb, "issue")) {
        S_NEED (3, "tokens issue SUBJECT");
        json_t *args = json_pack ("{s:s}", "sub", a1);
        s_set_str (args, "role", o->role);
        s_set_int (args, "ttl_s", o->ttl_s);
        code = s_call (o, "tokens.issue", args, &data);
        if (code == S_OK && !o->json)
            printf ("%s\n", json_string_value (json_object_get (data, "access_token")));
        else if (code == S_OK)
            s_print (o, data, NULL, NULL);
    }
    else if (streq (noun, "db") && verb && streq (verb, "backup")) {
        S_NEED (3, "db backup FILE");
        //  The backend writes the file on its own host; a relative path is
        //  taken from here (the same host, usually).
        char path[4096];
        if (a1[0] == '/')
            snprintf (path, sizeof path, "%s", a1);
        else {
            char cwd[2048];
            if (!getcwd (cwd, sizeof cwd))
                return s_usage (
                    "db backup: cannot tell the current directory; give an absolute path");
            snprintf (path, sizeof path, "%s/%s", cwd, a1);
        }
        code = s_call (o, "db.backup", json_pack ("{s:s}", "path", path), &data);
        if (code == S_OK && !o->json)
            printf ("backup written to %s (%lld bytes, %lld ms)\n", path,
                    (long long) json_integer_value (json_object_get (data, "bytes")),
                    (long long) json_integer_value (json_object_get (data, "ms")));
        else if (code == S_OK)
            s_print (o, data, NULL, NULL);
    }
    else if (streq (noun, "events")) {
        S_NEED (1, "events takes options only (--topic, --count)");
        return s_events (o);
    }
    else if (streq (noun, "keygen")) {
        S_NEED (2, "keygen FILE");
        char err[512], key[41];
        if (vw_curve_keygen (verb, o->name, err, sizeof err) ||
            vw_curve_load_public (verb, key, err, sizeof err)) {
            fprintf (stderr, "viworksctl: %s\n", err);
            return S_REFUSED;
        }
        if (o->json)
            printf ("{\"public\":\"%s\",\"file\":\"%s\",\"secret_file\":\"%s_secret\"}\n", key,
                    verb, verb);
        else
            printf ("public key %s\nwritten to %s (give this one out) and %s_secret (keep it)\n",
                    key, verb, verb);
        return S_OK;
    }
    else
        return s_usage ("unknown command '%s%s%s'", noun, verb ? " " : "", verb ? verb : "");
    json_decref (data);
    return code;
}

//  --------------------------------------------------------------------------

enum {
    O_ENDPOINT = 256,
    O_EVENTS,
    O_SERVER_KEY,
    O_KEY,
    O_JSON,
    O_TIMEOUT,
    O_STATUS,
    O_LABEL,
    O_LIMIT,
    O_CURSOR,
    O_AGENT,
    O_STATE,
    O_PAYLOAD,
    O_PRIORITY,
    O_TIMEOUT_MS,
    O_MAX_RETRIES,
    O_IDEMPOTENCY,
    O_PUBLIC_KEY,
    O_METRIC,
    O_FROM,
    O_TO,
    O_STEP,
    O_AGG,
    O_ROLE,
    O_PASSWORD,
    O_DISABLED,
    O_ENABLED,
    O_TTL,
    O_TOPIC,
    O_COUNT,
    O_NAME,
    O_HELP,
    O_VERSION,
    O_GRACE
};

static bool
s_number (const char *flag, const char *text, long long min, long long max, long long *out)
{
    char *end = NULL;
    long long v = strtoll (text, &end, 10);
    if (!*text || *end || v < min || v > max) {
        s_usage ("%s wants an integer %lld..%lld, not '%s'", flag, min, max, text);
        return false;
    }
    *out = v;
    return true;
}

int
main (int argc, char **argv)
{
    static const struct option options[] = {
        {"endpoint", required_argument, NULL, O_ENDPOINT},
        {"events-endpoint", required_argument, NULL, O_EVENTS},
        {"server-key", required_argument, NULL, O_SERVER_KEY},
        {"key", required_argument, NULL, O_KEY},
        {"json", no_argument, NULL, O_JSON},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"status", required_argument, NULL, O_STATUS},
        {"label", required_argument, NULL, O_LABEL},
        {"limit", required_argument, NULL, O_LIMIT},
        {"cursor", required_argument, NULL, O_CURSOR},
        {"agent", required_argument, NULL, O_AGENT},
        {"state", required_argument, NULL, O_STATE},
        {"payload", required_argument, NULL, O_PAYLOAD},
        {"priority", required_argument, NULL, O_PRIORITY},
        {"timeout-ms", required_argument, NULL, O_TIMEOUT_MS},
        {"max-retries", required_argument, NULL, O_MAX_RETRIES},
        {"idempotency-key", required_argument, NULL, O_IDEMPOTENCY},
        {"public-key", required_argument, NULL, O_PUBLIC_KEY},
        {"metric", required_argument, NULL, O_METRIC},
        {"from", required_argument, NULL, O_FROM},
        {"to", required_argument, NULL, O_TO},
        {"step-ms", required_argument, NULL, O_STEP},
        {"agg", required_argument, NULL, O_AGG},
        {"role", required_argument, NULL, O_ROLE},
        {"password", required_argument, NULL, O_PASSWORD},
        {"disabled", no_argument, NULL, O_DISABLED},
        {"enabled", no_argument, NULL, O_ENABLED},
        {"ttl-s", required_argument, NULL, O_TTL},
        {"topic", required_argument, NULL, O_TOPIC},
        {"count", required_argument, NULL, O_COUNT},
        {"name", required_argument, NULL, O_NAME},
        {"grace-s", required_argument, NULL, O_GRACE},
        {"help", no_argument, NULL, O_HELP},
        {"version", no_argument, NULL, O_VERSION},
        {NULL, 0, NULL, 0}};
    s_opts_t o = {0};
    o.endpoint = getenv ("VIWORKS_ADMIN_ENDPOINT") ? getenv ("VIWORKS_ADMIN_ENDPOINT")
                                                   : "tcp://127.0.0.1:5555";
    o.events_endpoint = getenv ("VIWORKS_EVENTS_ENDPOINT") ? getenv ("VIWORKS_EVENTS_ENDPOINT")
                                                           : "tcp://127.0.0.1:5556";
    o.server_key = getenv ("VIWORKS_ADMIN_SERVER_KEY");
    o.key = getenv ("VIWORKS_ADMIN_KEY");
    o.timeout_ms = 10000;
    o.max_retries = -1;
    o.grace_s = -1;
    o.disabled = -1;
    o.labels = json_object ();
    o.topics = json_array ();
    int code = S_OK, c;
    long long n;
    opterr = 0;
    while (code == S_OK && (c = getopt_long (argc, argv, "", options, NULL)) != -1) {
        switch (c) {
            case O_ENDPOINT: o.endpoint = optarg; break;
            case O_EVENTS: o.events_endpoint = optarg; break;
            case O_SERVER_KEY: o.server_key = optarg; break;
            case O_KEY: o.key = optarg; break;
            case O_JSON: o.json = true; break;
            case O_TIMEOUT:
                if (!s_number ("--timeout", optarg, 1, 3600000, &n))
                    code = S_USAGE;
                o.timeout_ms = (int) n;
                break;
            case O_STATUS: o.status = optarg; break;
            case O_LABEL: {
                o.label = optarg;  //  agents list: k:v; agents create: k=v
                const char *eq = strchr (optarg, '=');
                if (eq) {
                    char key[256];
                    snprintf (key, sizeof key, "%.*s", (int) (eq - optarg), optarg);
                    json_object_set_new (o.labels, key, json_string (eq + 1));
                }
                break;
            }
            case O_LIMIT:
                if (!s_number ("--limit", optarg, 1, 1000000, &o.limit))
                    code = S_USAGE;
                break;
            case O_CURSOR: o.cursor = optarg; break;
            case O_AGENT: o.agent = optarg; break;
            case O_STATE: o.state = optarg; break;
            case O_PAYLOAD: o.payload = optarg; break;
            case O_PRIORITY: o.priority = optarg; break;
            case O_TIMEOUT_MS:
                if (!s_number ("--timeout-ms", optarg, 1, 86400000, &o.timeout_cmd))
                    code = S_USAGE;
                break;
            case O_MAX_RETRIES:
                if (!s_number ("--max-retries", optarg, 0, 1000, &o.max_retries))
                    code = S_USAGE;
                break;
            case O_IDEMPOTENCY: o.idempotency_key = optarg; break;
            case O_PUBLIC_KEY: o.public_key = optarg; break;
            case O_METRIC: o.metric = optarg; break;
            case O_FROM:
                if (!s_number ("--from", optarg, 0, INT64_MAX / 2, &o.from))
                    code = S_USAGE;
                break;
            case O_TO:
                if (!s_number ("--to", optarg, 0, INT64_MAX / 2, &o.to))
                    code = S_USAGE;
                break;
            case O_STEP:
                if (!s_number ("--step-ms", optarg, 1, INT64_MAX / 2, &o.step_ms))
                    code = S_USAGE;
                break;
            case O_AGG: o.agg = optarg; break;
            case O_ROLE: o.role = optarg; break;
            case O_PASSWORD: o.password = optarg; break;
            case O_DISABLED: o.disabled = 1; break;
            case O_ENABLED: o.disabled = 0; break;
            case O_TTL:
                if (!s_number ("--ttl-s", optarg, 1, 366LL * 86400, &o.ttl_s))
                    code = S_USAGE;
                break;
            case O_TOPIC: json_array_append_new (o.topics, json_string (optarg)); break;
            case O_COUNT:
                if (!s_number ("--count", optarg, 1, INT64_MAX / 2, &o.count))
                    code = S_USAGE;
                break;
            case O_NAME: o.name = optarg; break;
            case O_GRACE:
                if (!s_number ("--grace-s", optarg, 0, 30 * 86400, &o.grace_s))
                    code = S_USAGE;
                break;
            case O_HELP:
                s_help ();
                json_decref (o.labels);
                json_decref (o.topics);
                return S_OK;
            case O_VERSION:
                printf ("viworksctl %s\n", VW_VERSION);
                json_decref (o.labels);
                json_decref (o.topics);
                return S_OK;
            default: code = s_usage ("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (code == S_OK) {
        //  CZMQ's own signal handling off: ^C ends `events` and `watch`.
        zsys_handler_set (NULL);
        signal (SIGINT, s_on_signal);
        signal (SIGTERM, s_on_signal);
        zsys_init ();
        zsys_set_logstream (NULL);
        code = s_run (&o, argc - optind, argv + optind);
        zsys_shutdown ();
    }
    json_decref (o.labels);
    json_decref (o.topics);
    return code;
}
