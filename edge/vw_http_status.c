/*  vw_http_status - GET /health and GET /statistics (SPEC §6). */
#include "vw_http_int.h"
#include "vw_clock.h"
#include "vw_metrics.h"
#include "vw_probe.h"

#include <dirent.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

//  --------------------------------------------------------------------------
//  GET /health

static void
s_health_done (void *arg, const vw_probe_result_t *result)
{
    vw_http_session_t *session = (vw_http_session_t *) arg;
    vw_edge_t *edge = vw_edge_from_wsi (session->wsi);
    session->probe_id = 0;
    json_t *actors = json_object ();
    const char *database = "unknown";
    bool ok = true;
    for (int i = 0; i < result->count; i++) {
        const vw_probe_entry_t *e = &result->actors[i];
        //  An actor is up when it answered; the store's verdict on the
        //  database is reported separately as "database".
        json_object_set_new (actors, e->name, json_string (e->up ? "up" : "down"));
        if (!e->up)
            ok = false;
        //  The store's detail names the cause: disk_full, read_only, error.
        if (strcmp (e->name, "store") == 0 && e->up)
            database = e->healthy                               ? "ok"
                       : *e->detail && strcmp (e->detail, "ok") ? e->detail
                                                                : "error";
    }
    if (strcmp (database, "ok") != 0)
        ok = false;
    json_t *body = json_pack ("{s:s, s:s, s:I, s:o, s:s}", "status", ok ? "ok" : "degraded",
                              "version", VW_VERSION, "uptime_s",
                              (json_int_t) ((vw_clock_mono_ms () - edge->started_ms) / 1000),
                              "actors", actors, "database", database);
    vw_http_respond (session, ok ? 200 : 503, body);
}

void
vw_http_get_health (vw_edge_t *edge, vw_http_session_t *session)
{
    session->probe_id =
        vw_probe_start (edge->probe, (int) edge->config->health_timeout_ms, s_health_done, session);
    if (!session->probe_id)
        vw_http_error (session, 500, "internal", "cannot start the health probe");
}

//  --------------------------------------------------------------------------
//  GET /statistics: the scheduler's queue, the store's counts, the broker's
//  per-actor message counters and the telemetry actor's figures, one after
//  the other.

static json_t *
s_reply_json (vw_msg_t *reply)
{
    return reply && reply->id == VW_MSG_ID_reply && reply->reply.json
               ? json_loads (reply->reply.json, 0, NULL)
               : NULL;
}

//  The broker's broker_stats answer, parsed; NULL if none came.
static json_t *
s_broker_json (vw_msg_t *reply)
{
    return reply && reply->id == VW_MSG_ID_broker_stats && reply->broker_stats.json
               ? json_loads (reply->broker_stats.json, 0, NULL)
               : NULL;
}

//  Merges an actor's JSON figures into the answer being built: false
//  (answered 503) when the actor did not give any.
static bool
s_merge (vw_http_session_t *session, vw_msg_t *reply, const char *actor)
{
    json_t *figures = s_reply_json (reply);
    if (!figures) {
        vw_http_error (session, 503, "unavailable", "the %s did not answer", actor);
        return false;
    }
    json_object_update (session->partial, figures);
    json_decref (figures);
    return true;
}

static void
s_stats_telemetry (vw_edge_t *edge, vw_http_session_t *session, vw_http_call_t *call,
                   vw_msg_t *reply, const char *why)
{
    if (!s_merge (session, reply, "telemetry actor"))
        return;
    json_t *body = session->partial;
    session->partial = NULL;
    vw_http_respond (session, 200, body);
}

static void
s_stats_broker (vw_edge_t *edge, vw_http_session_t *session, vw_http_call_t *call, vw_msg_t *reply,
                const char *why)
{
    json_t *broker = s_broker_json (reply);
    json_t *actors = json_object_get (broker, "actors");
    json_object_set (session->partial, "messages", actors ? actors : json_null ());
    json_decref (broker);
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_stats_query);
    vw_http_call (edge, session, "telemetry", &msg, s_stats_telemetry, NULL, NULL);
}

static void
s_stats_store (vw_edge_t *edge, vw_http_session_t *session, vw_http_call_t *call, vw_msg_t *reply,
               const char *why)
{
    if (!s_merge (session, reply, "store"))
        return;
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_broker_stats);
    vw_http_call (edge, session, "broker", &msg, s_stats_broker, NULL, NULL);
}

static void
s_stats_scheduler (vw_edge_t *edge, vw_http_session_t *session, vw_http_call_t *call,
                   vw_msg_t *reply, const char *why)
{
    json_t *queue = s_reply_json (reply);
    if (!queue) {
        vw_http_error (session, 503, "unavailable", "the scheduler did not answer");
        return;
    }
    session->partial = json_pack ("{s:o}", "queue", queue);
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_stats_query);
    vw_http_call (edge, session, "store", &msg, s_stats_store, NULL, NULL);
}

void
vw_http_get_statistics (vw_edge_t *edge, vw_http_session_t *session)
{
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_stats_query);
    msg->stats_query.window_ms = 300000;
    vw_http_call (edge, session, "scheduler", &msg, s_stats_scheduler, NULL, NULL);
}

//  --------------------------------------------------------------------------
//  GET /metrics: every actor writes its own families (a stats_query in
//  the prometheus format, answered with metrics_text); this
//  edge adds the broker's per-actor message counters and the process's own
//  figures, and joins the text. An actor that does not answer is left out
//  (viworks_up{actor=...} says which). The agent edges are the ones the
//  broker's directory holds (edge, edge@NAME: several processes); their
//  families appear once, each sample labelled edge="NAME".
//  session->partial: {"names": [actor, ...], "parts": [[text, received]
//  or null, ...]}, the parts in the names' order.

static const char *const s_metric_actors[] = {"registry", "scheduler", "executor", "store",
                                              "telemetry"};
#define S_METRIC_ACTORS (sizeof s_metric_actors / sizeof s_metric_actors[0])

static void s_metrics_next (vw_edge_t *edge, vw_http_session_t *session);

//  The process: memory, CPU, descriptors, start, build.
static void
s_process_metrics (vw_edge_t *edge, vw_prom_t *p)
{
    long page = sysconf (_SC_PAGESIZE), ticks = sysconf (_SC_CLK_TCK);
    unsigned long long size = 0, resident = 0, utime = 0, stime = 0, start = 0;
    FILE *file = fopen ("/proc/self/statm", "r");
    if (file) {
        if (fscanf (file, "%llu %llu", &size, &resident) != 2)
            size = resident = 0;
        fclose (file);
    }
    char stat[1024] = "";
    file = fopen ("/proc/self/stat", "r");
    if (file) {
        size_t n = fread (stat, 1, sizeof stat - 1, file);
        stat[n] = 0;
        fclose (file);
    }
    //  After the command name's closing parenthesis: field 3 onwards.
    const char *rest = strrchr (stat, ')');
    if (rest && sscanf (rest + 2,
                        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d "
                        "%*d %*d %llu",
                        &utime, &stime, &start) != 3)
        utime = stime = start = 0;
    double boot = 0;
    file = fopen ("/proc/stat", "r");
    if (file) {
        char line[256];
        while (fgets (line, sizeof line, file))
            if (sscanf (line, "btime %lf", &boot) == 1)
                break;
        fclose (file);
    }
    int fds = 0;
    DIR *dir = opendir ("/proc/self/fd");
    for (struct dirent *e = dir ? readdir (dir) : NULL; e; e = readdir (dir))
        fds += e->d_name[0] != '.';
    if (dir)
        closedir (dir);
    struct rlimit limit = {0, 0};
    getrlimit (RLIMIT_NOFILE, &limit);
    vw_prom_one (p, "viworks_process_resident_memory_bytes", "gauge",
                 "Resident memory of the backend process.", (double) resident * (double) page);
    vw_prom_one (p, "viworks_process_virtual_memory_bytes", "gauge",
                 "Virtual memory of the backend process.", (double) size * (double) page);
    vw_prom_one (p, "viworks_process_cpu_seconds_total", "counter",
                 "CPU time of the backend process (user and system).",
                 (double) (utime + stime) / (double) ticks);
    vw_prom_one (p, "viworks_process_open_fds", "gauge", "Open file descriptors.",
                 (double) (fds > 0 ? fds - 1 : 0));  //  less the one reading the directory
    vw_prom_one (p, "viworks_process_max_fds", "gauge", "The open files limit.",
                 (double) limit.rlim_cur);
    vw_prom_one (p, "viworks_process_start_time_seconds", "gauge",
                 "When the process started, in seconds since the epoch.",
                 boot + (double) start / (double) ticks);
    vw_prom_family (p, "viworks_build_info", "gauge", "The build: always 1, its version a label.");
    vw_prom_sample (p, "viworks_build_info", "version", VW_VERSION, 1);
    vw_prom_one (p, "viworks_uptime_seconds", "gauge", "Seconds since the backend started.",
                 (double) (vw_clock_mono_ms () - edge->started_ms) / 1000.0);
}

//  The broker's counters: messages in and out per actor; and, for the
//  actors that answered (parts: [text, received] in names' order), the
//  messages waiting in each one's socket: delivered by the broker (asked
//  last) less taken by the actor (when it answered).
static void
s_broker_metrics (json_t *broker, json_t *names, json_t *parts, vw_prom_t *p)
{
    json_t *actors = json_object_get (broker, "actors");
    const char *counters[2] = {"viworks_actor_messages_received_total",
                               "viworks_actor_messages_sent_total"};
    const char *keys[2] = {"out", "in"};  //  the broker's "out" is what it delivered to the actor
    const char *helps[2] = {"Messages the broker delivered to each actor.",
                            "Messages each actor sent through the broker."};
    for (int i = 0; i < 2; i++) {
        vw_prom_family (p, counters[i], "counter", helps[i]);
        const char *actor;
        json_t *figures;
        json_object_foreach (actors, actor, figures)
            vw_prom_sample (p, counters[i], "actor", actor,
                            (double) json_integer_value (json_object_get (figures, keys[i])));
    }
    vw_prom_family (p, "viworks_actor_queue_depth", "gauge",
                    "Messages delivered to each actor and not yet taken from its socket (as of "
                    "the scrape: the broker's count less the actor's).");
    size_t i;
    json_t *part;
    json_array_foreach (parts, i, part) if (json_is_array (part))
    {
        const char *name = json_string_value (json_array_get (names, i));
        json_t *figures = json_object_get (actors, name);
        json_int_t out = json_integer_value (json_object_get (figures, "out"));
        json_int_t taken = json_integer_value (json_array_get (part, 1));
        if (figures)
            vw_prom_sample (p, "viworks_actor_queue_depth", "actor", name,
                            (double) (out > taken ? out - taken : 0));
    }
    vw_prom_one (p, "viworks_broker_routing_errors_total", "counter",
                 "Messages the broker could not route (unknown or busy actor).",
                 (double) json_integer_value (json_object_get (broker, "errors")));
}

//  A sample line of an edge with edge="NAME" added to its labels.
static char *
s_labelled (const char *line, size_t len, const char *edge)
{
    size_t name = strcspn (line, "{ ");
    if (name >= len)
        return NULL;
    bool braces = line[name] == '{';
    return zsys_sprintf ("%.*s{edge=\"%s\"%s%.*s", (int) name, line, edge,
                         braces ? (line[name + 1] == '}' ? "" : ",") : "}",
                         (int) (len - name - (braces ? 1 : 0)), line + name + (braces ? 1 : 0));
}

//  The agent edges' texts: each family once (the first edge's HELP and
//  TYPE), then every edge's samples of it.
static void
s_edge_families (vw_prom_t *p, json_t *names, json_t *parts)
{
    json_t *families = json_object ();  //  family -> [header lines, sample lines]
    json_t *order = json_array ();
    size_t i;
    json_t *part;
    json_array_foreach (parts, i, part)
    {
        const char *edge = json_string_value (json_array_get (names, i));
        const char *text = json_string_value (json_array_get (part, 0));
        if (!edge || !vw_actor_has_role (edge, "edge") || !text)
            continue;
        json_t *family = NULL;
        bool ours = false;  //  this edge gave the family's header
        for (const char *line = text; *line;) {
            size_t len = strcspn (line, "\n");
            if (strncmp (line, "# HELP ", 7) == 0 || strncmp (line, "# TYPE ", 7) == 0) {
                size_t flen = strcspn (line + 7, " \n");
                char fname[128];
                snprintf (fname, sizeof fname, "%.*s", (int) (flen < 127 ? flen : 127), line + 7);
                json_t *known = json_object_get (families, fname);
                if (!known) {
                    known = json_pack ("[[],[]]");
                    json_object_set_new (families, fname, known);
                    json_array_append_new (order, json_string (fname));
                    ours = true;
                }
                else if (known != family)
                    ours = false;
                family = known;
                if (ours)
                    json_array_append_new (json_array_get (family, 0),
                                           json_stringn_nocheck (line, len));
            }
            else if (len && family && line[0] != '#') {
                char *labelled = s_labelled (line, len, edge);
                if (labelled)
                    json_array_append_new (json_array_get (family, 1), json_string (labelled));
                zstr_free (&labelled);
            }
            line += len + (line[len] == '\n');
        }
    }
    json_t *name;
    json_array_foreach (order, i, name)
    {
        json_t *family = json_object_get (families, json_string_value (name));
        for (int k = 0; k < 2; k++) {
            size_t j;
            json_t *line;
            json_array_foreach (json_array_get (family, k), j, line)
            {
                vw_prom_append (p, json_string_value (line), json_string_length (line));
                vw_prom_append (p, "\n", 1);
            }
        }
    }
    json_decref (order);
    json_decref (families);
}

static void
s_metrics_done (vw_edge_t *edge, vw_http_session_t *session, json_t *broker)
{
    vw_prom_t p = {0};
    size_t i;
    json_t *part;
    json_t *names = json_object_get (session->partial, "names");
    json_t *parts = json_object_get (session->partial, "parts");
    vw_prom_family (&p, "viworks_up", "gauge",
                    "Whether each actor answered this scrape (1) or not (0).");
    json_array_foreach (parts, i, part)
        vw_prom_sample (&p, "viworks_up", "actor", json_string_value (json_array_get (names, i)),
                        json_is_array (part));
    json_array_foreach (parts, i, part)
    {
        json_t *text = json_array_get (part, 0);
        if (json_is_array (part) &&
            !vw_actor_has_role (json_string_value (json_array_get (names, i)), "edge"))
            vw_prom_append (&p, json_string_value (text), json_string_length (text));
    }
    s_edge_families (&p, names, parts);
    if (broker)
        s_broker_metrics (broker, names, parts, &p);
    s_process_metrics (edge, &p);
    json_decref (session->partial);
    session->partial = NULL;
    if (p.failed)
        vw_http_error (session, 500, "internal", "out of memory writing the metrics");
    else
        vw_http_respond_text (session, 200, "text/plain; version=0.0.4; charset=utf-8", p.data);
    vw_prom_free (&p);
}

static void
s_metrics_broker (vw_edge_t *edge, vw_http_session_t *session, vw_http_call_t *call,
                  vw_msg_t *reply, const char *why)
{
    json_t *broker = s_broker_json (reply);
    s_metrics_done (edge, session, broker);
    json_decref (broker);
}

static void
s_metrics_part (vw_edge_t *edge, vw_http_session_t *session, vw_http_call_t *call, vw_msg_t *reply,
                const char *why)
{
    bool ok = reply && reply->id == VW_MSG_ID_metrics_text;
    //  [text, messages received] per actor, null when it did not answer.
    json_array_append_new (json_object_get (session->partial, "parts"),
                           ok ? json_pack ("[s, I]",
                                           reply->metrics_text.text ? reply->metrics_text.text : "",
                                           (json_int_t) reply->metrics_text.received)
                              : json_null ());
    s_metrics_next (edge, session);
}

static void
s_metrics_next (vw_edge_t *edge, vw_http_session_t *session)
{
    json_t *names = json_object_get (session->partial, "names");
    size_t step = json_array_size (json_object_get (session->partial, "parts"));
    if (step < json_array_size (names)) {
        vw_msg_t *msg = vw_msg_new (VW_MSG_ID_stats_query);
        vw_msg_set_str (&msg->stats_query.format, "prometheus");
        //  Should the call fail, the session is answered 503 already.
        vw_http_call (edge, session, json_string_value (json_array_get (names, step)), &msg,
                      s_metrics_part, NULL, NULL);
        return;
    }
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_broker_stats);
    vw_http_call (edge, session, "broker", &msg, s_metrics_broker, NULL, NULL);
}

//  The broker's directory: the core's actors, then every agent edge.
static void
s_metrics_directory (vw_edge_t *edge, vw_http_session_t *session, vw_http_call_t *call,
                     vw_msg_t *reply, const char *why)
{
    json_t *broker = s_broker_json (reply);
    json_t *names = json_object_get (session->partial, "names");
    for (size_t i = 0; i < S_METRIC_ACTORS; i++)
        json_array_append_new (names, json_string (s_metric_actors[i]));
    size_t before = json_array_size (names);
    const char *name;
    json_t *figures;
    json_object_foreach (json_object_get (broker, "actors"), name, figures)
    {
        if (vw_actor_has_role (name, "edge") && json_array_size (names) < VW_PROBE_MAX)
            json_array_append_new (names, json_string (name));
    }
    if (json_array_size (names) == before)
        json_array_append_new (names, json_string ("edge"));  //  none: shown down
    json_decref (broker);
    s_metrics_next (edge, session);
}

void
vw_http_get_metrics (vw_edge_t *edge, vw_http_session_t *session)
{
    session->partial = json_pack ("{s:[], s:[]}", "names", "parts");
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_broker_stats);
    vw_http_call (edge, session, "broker", &msg, s_metrics_directory, NULL, NULL);
}
