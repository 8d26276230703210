/*  vw_telemetry - the telemetry actor (SPEC §3, §9).

    The edge validates each telemetry frame, packs its points (vw_points)
    and sends them here. Each frame goes to the store, which writes it in
    its pass's transaction unless the agent's seq is stored already; only
    once that commit has landed does this actor tell the edge to send
    `telemetry_ack` (for a duplicate too: it was stored before). A frame the
    store could not take (busy, failing disk, no answer) gets an `error`
    with the seq and a retry_after_ms instead, and is not acked: the agent
    sends it again.

    Rolling analytics and alert rules arrive here next (issue 11).
*/
#include "vw_actors.h"
#include "vw_alerts.h"
#include "vw_clock.h"
#include "vw_log.h"
#include "vw_metrics.h"
#include "vw_pending.h"
#include "vw_points.h"

#include <string.h>

#define S_STORE_TIMEOUT_MS 10000
#define S_EXPIRE_MS        1000  //  a retention step every second while nothing is due
#define S_EXPIRE_SOON_MS   20    //  the next one soon while a step left some
#define S_EXPIRE_BUDGET    2000  //  frames per step: a few ms of the store's time
#define S_RATE_SLOTS       10    //  seconds over which /statistics gives rates

typedef struct {
    const vw_config_t *config;
    vw_actor_t *actor;
    vw_pending_t *pending;
    uint64_t frames;      //  received from the edges
    uint64_t values;      //  in those frames
    uint64_t stored;      //  frames written
    uint64_t duplicates;  //  frames whose seq was stored already
    uint64_t refused;     //  frames not stored (invalid, or the store did not take them)
    uint64_t shed;        //  frames refused at once: too many values on their way to the store
    uint64_t inflight;    //  values on their way to the store
    uint64_t values_stored, points_stored;
    vw_histo_t ack_latency;  //  frame in -> its ack decided (the commit), ms
    //  Values and points stored per second, the last S_RATE_SLOTS seconds.
    struct {
        int64_t second;
        uint64_t values, points;
    } rate[S_RATE_SLOTS];
    bool stopping;  //  destroying: answers that end now go nowhere
    uint64_t expire_timer;
    uint64_t expired;  //  rows retention removed
    //  Alert rules (telemetry.alerts) and where each stands per agent.
    vw_alert_rule_t rules[VW_ALERTS_MAX];
    int nrules;
    zhashx_t *alerts;    //  "agent_id\x1frule index" -> s_alert_t (owned): the condition holds
    zhashx_t *degrades;  //  agent_id -> count of firing rules that degrade (as a pointer)
    uint64_t fired, resolved;
} self_t;

//  A rule whose condition holds for an agent, since `since` (the ts of
//  the first point of this run that met it).
typedef struct {
    int64_t since, last_ts;
    double value;
    bool firing;
} s_alert_t;

static void s_expire_later (self_t *self, int64_t ms);

//  A frame on its way to the store: who to ack.
typedef struct {
    char edge[VW_ADDR_MAX];
    int64_t conn;
    int64_t seq;
    int64_t in_ms;  //  when it came in (monotonic)
    uint64_t values, points;
} s_frame_t;

static void
s_count_stored (self_t *self, const s_frame_t *frame)
{
    int64_t second = vw_clock_mono_ms () / 1000;
    int slot = (int) (second % S_RATE_SLOTS);
    if (self->rate[slot].second != second) {
        self->rate[slot].second = second;
        self->rate[slot].values = self->rate[slot].points = 0;
    }
    self->rate[slot].values += frame->values;
    self->rate[slot].points += frame->points;
    self->values_stored += frame->values;
    self->points_stored += frame->points;
}

static void
s_acked (self_t *self, s_frame_t *frame, bool stored, const char *code, const char *message)
{
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_telemetry_acked);
    msg->telemetry_acked.conn = frame->conn;
    msg->telemetry_acked.seq = frame->seq;
    msg->telemetry_acked.stored = stored;
    vw_msg_set_str (&msg->telemetry_acked.code, code);
    vw_msg_set_str (&msg->telemetry_acked.message, message);
    if (vw_actor_send (self->actor, frame->edge, &msg))
        vw_msg_destroy (&msg);
}

static void
s_on_written (void *state, vw_actor_t *actor, void *ctx, vw_msg_t *reply, const char *why)
{
    self_t *self = (self_t *) state;
    s_frame_t *frame = (s_frame_t *) ctx;
    if (self->stopping) {
        free (frame);
        return;
    }
    int status = reply && reply->id == VW_MSG_ID_reply ? (int) reply->reply.status : 503;
    self->inflight -= frame->values;
    vw_histo_observe_ms (&self->ack_latency, (double) (vw_clock_mono_ms () - frame->in_ms));
    if (status == 201 || status == 200) {
        if (status == 201) {
            self->stored++;
            s_count_stored (self, frame);
        }
        else
            self->duplicates++;
        s_acked (self, frame, true, NULL, NULL);
    }
    else {
        self->refused++;
        const char *detail = reply && reply->id == VW_MSG_ID_reply && reply->reply.message
                                 ? reply->reply.message
                                 : (why ? why : "no answer");
        char message[256];
        snprintf (message, sizeof message, "telemetry seq %lld not stored (%s); send it again",
                  (long long) frame->seq, detail);
        if (self->refused % 1000 == 1)
            vw_warn ("telemetry", "%s (%llu such frame(s) so far)", message,
                     (unsigned long long) self->refused);
        //  A frame the store refused as malformed cannot come from our edge;
        //  anything else is the database's trouble, and passes.
        s_acked (self, frame, false, status == 400 ? "invalid_message" : "unavailable", message);
    }
    free (frame);
}

//  --------------------------------------------------------------------------
//  Alerts (SPEC §9). Each value of a metric some rule watches is checked
//  as it arrives, in the order of the points' ts (an older point than the
//  last seen for that rule and agent, e.g. a re-sent frame, is skipped).
//  The rule fires once its condition has held from a point at `since` to
//  one at since + for_ms, and resolves at the first point that breaks it;
//  both are published as telemetry.alert. A rule that degrades keeps its
//  agent degraded while it fires (the registry is told on the first such
//  rule and when the last resolves).

static void
s_alert_publish (self_t *self, const char *agent_id, const vw_alert_rule_t *rule,
                 const s_alert_t *a, const char *state, double value, int64_t ts)
{
    json_t *event =
        json_pack ("{s:s, s:s, s:s, s:s, s:s, s:f, s:f, s:I, s:I, s:b}", "rule", rule->name,
                   "agent_id", agent_id, "metric", rule->metric, "state", state, "op",
                   vw_alert_op_name (rule->op), "threshold", rule->threshold, "value", value,
                   "since", (json_int_t) a->since, "ts", (json_int_t) ts, "degrade", rule->degrade);
    char *json = json_dumps (event, JSON_COMPACT);
    vw_actor_publish (self->actor, "telemetry.alert", json);
    vw_info ("telemetry", "alert %s %s for '%s': %s %s %g (value %g)", rule->name, state, agent_id,
             rule->metric, vw_alert_op_name (rule->op), rule->threshold, value);
    free (json);
    json_decref (event);
}

static void
s_degrade (self_t *self, const char *agent_id, int delta)
{
    intptr_t n = (intptr_t) zhashx_lookup (self->degrades, agent_id) + delta;
    if (n > 0)
        zhashx_update (self->degrades, agent_id, (void *) n);
    else
        zhashx_delete (self->degrades, agent_id);
    if ((delta > 0 && n == 1) || (delta < 0 && n == 0)) {
        vw_msg_t *msg = vw_msg_new (VW_MSG_ID_agent_alerting);
        vw_msg_set_str (&msg->agent_alerting.agent_id, agent_id);
        msg->agent_alerting.alerting = n > 0;
        if (vw_actor_send (self->actor, "registry", &msg))
            vw_msg_destroy (&msg);
    }
}

static void
s_alert_check (self_t *self, const char *agent_id, int index, int64_t ts, double value)
{
    const vw_alert_rule_t *rule = &self->rules[index];
    char key[256];
    snprintf (key, sizeof key, "%s\x1f%d", agent_id, index);
    s_alert_t *a = (s_alert_t *) zhashx_lookup (self->alerts, key);
    if (a && ts < a->last_ts)
        return;
    if (!vw_alert_holds (rule, value)) {
        if (a && a->firing) {
            self->resolved++;
            s_alert_publish (self, agent_id, rule, a, "resolved", value, ts);
            if (rule->degrade)
                s_degrade (self, agent_id, -1);
        }
        if (a)
            zhashx_delete (self->alerts, key);
        return;
    }
    if (!a) {
        a = (s_alert_t *) zmalloc (sizeof *a);
        a->since = ts;
        zhashx_insert (self->alerts, key, a);
    }
    a->last_ts = ts;
    a->value = value;
    if (!a->firing && ts - a->since >= rule->for_ms) {
        a->firing = true;
        self->fired++;
        s_alert_publish (self, agent_id, rule, a, "firing", value, ts);
        if (rule->degrade)
            s_degrade (self, agent_id, +1);
    }
}

typedef struct {
    self_t *self;
    const char *agent_id;
} s_alert_walk_t;

static int
s_alert_value (void *arg, const vw_points_value_t *v)
{
    s_alert_walk_t *w = (s_alert_walk_t *) arg;
    for (int i = 0; i < w->self->nrules; i++) {
        const char *metric = w->self->rules[i].metric;
        if (strlen (metric) == v->name_len && memcmp (metric, v->name, v->name_len) == 0)
            s_alert_check (w->self, w->agent_id, i, v->ts, v->value);
    }
    return 0;
}

static void
s_on_frame (self_t *self, vw_msg_t *msg)
{
    vw_telemetry_frame_msg_t *in = &msg->telemetry_frame;
    vw_points_info_t info;
    s_frame_t *frame = (s_frame_t *) zmalloc (sizeof *frame);
    snprintf (frame->edge, sizeof frame->edge, "%s", msg->peer);
    frame->conn = in->conn;
    frame->seq = in->seq;
    frame->in_ms = vw_clock_mono_ms ();
    self->frames++;
    if (!in->agent_id || vw_points_walk (in->points.data, in->points.size, NULL, NULL, &info)) {
        self->refused++;
        s_acked (self, frame, false, "invalid_message", "not a telemetry frame");
        free (frame);
        return;
    }
    self->values += info.values;
    //  Back-pressure: past telemetry.max_in_flight values on their way to
    //  the store a frame is refused at once (`unavailable`: the agent sends
    //  it again after retry_after_ms) rather than queued, so that the wait a
    //  frame meets stays bounded at any offered load (decision 59).
    if (self->inflight &&
        self->inflight + info.values > (uint64_t) self->config->telemetry_max_in_flight) {
        self->shed++;
        char message[160];
        snprintf (message, sizeof message,
                  "telemetry seq %lld not stored: the store is busy; send it again",
                  (long long) in->seq);
        s_acked (self, frame, false, "unavailable", message);
        free (frame);
        return;
    }
    frame->values = info.values;
    frame->points = info.points;
    self->inflight += info.values;
    if (self->nrules) {
        s_alert_walk_t walk = {self, in->agent_id};
        vw_points_walk (in->points.data, in->points.size, s_alert_value, &walk, NULL);
    }
    vw_msg_t *write = vw_msg_new (VW_MSG_ID_telemetry_write);
    vw_msg_set_str (&write->telemetry_write.agent_id, in->agent_id);
    write->telemetry_write.seq = in->seq;
    //  The bytes move on as they are.
    write->telemetry_write.points = in->points;
    memset (&in->points, 0, sizeof in->points);
    if (vw_pending_request (self->pending, "store", &write, S_STORE_TIMEOUT_MS, s_on_written,
                            frame)) {
        vw_msg_destroy (&write);
        s_on_written (self, self->actor, frame, NULL, "the store cannot be reached");
    }
}

//  --------------------------------------------------------------------------
//  Retention (SPEC §9): small steps, one at a time, so that ingestion
//  never waits behind a long delete.

static void
s_on_expired (void *state, vw_actor_t *actor, void *ctx, vw_msg_t *reply, const char *why)
{
    self_t *self = (self_t *) state;
    if (self->stopping)
        return;
    bool more = false;
    if (reply && reply->id == VW_MSG_ID_reply && reply->reply.status == 200 && reply->reply.json) {
        json_t *body = json_loads (reply->reply.json, 0, NULL);
        self->expired += (uint64_t) json_integer_value (json_object_get (body, "deleted"));
        more = json_is_true (json_object_get (body, "more"));
        json_decref (body);
    }
    s_expire_later (self, more ? S_EXPIRE_SOON_MS : S_EXPIRE_MS);
}

static void
s_on_expire_due (void *arg, uint64_t id)
{
    self_t *self = (self_t *) arg;
    self->expire_timer = 0;
    const vw_config_t *config = self->config;
    int64_t now = vw_clock_wall_ms ();
    vw_msg_t *msg = vw_msg_new (VW_MSG_ID_telemetry_expire);
    msg->telemetry_expire.raw_before = now - config->telemetry_retention_ms;
    msg->telemetry_expire.m1_before = now - config->telemetry_retention_1m_ms;
    msg->telemetry_expire.h1_before = now - config->telemetry_retention_1h_ms;
    msg->telemetry_expire.budget = S_EXPIRE_BUDGET;
    if (vw_pending_request (self->pending, "store", &msg, S_STORE_TIMEOUT_MS, s_on_expired, NULL)) {
        vw_msg_destroy (&msg);
        s_expire_later (self, S_EXPIRE_MS);
    }
}

static void
s_expire_later (self_t *self, int64_t ms)
{
    self->expire_timer = vw_timers_add (vw_actor_timers (self->actor), ms, s_on_expire_due, self);
}

//  --------------------------------------------------------------------------
//  Figures: GET /statistics and GET /metrics

static void
s_on_stats (self_t *self, vw_msg_t *msg)
{
    //  The rate over the last whole seconds (the current one is still filling).
    int64_t now = vw_clock_mono_ms () / 1000;
    uint64_t values = 0, points = 0;
    for (int i = 0; i < S_RATE_SLOTS; i++)
        if (self->rate[i].second < now && self->rate[i].second >= now - (S_RATE_SLOTS - 1)) {
            values += self->rate[i].values;
            points += self->rate[i].points;
        }
    double span = S_RATE_SLOTS - 1;
    double p50 = vw_histo_quantile_ms (&self->ack_latency, 0.5);
    double p99 = vw_histo_quantile_ms (&self->ack_latency, 0.99);
    json_t *body = json_pack (
        "{s:{s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:I}}", "telemetry",
        "points_per_s", (double) points / span, "values_per_s", (double) values / span,
        "frames_received", (json_int_t) self->frames, "frames_stored", (json_int_t) self->stored,
        "duplicates", (json_int_t) self->duplicates, "refused", (json_int_t) self->refused, "shed",
        (json_int_t) self->shed, "values_in_flight", (json_int_t) self->inflight, "values_stored",
        (json_int_t) self->values_stored, "points_stored", (json_int_t) self->points_stored,
        "ack_p50_ms", p50 < 0 ? json_null () : json_real (p50), "ack_p99_ms",
        p99 < 0 ? json_null () : json_real (p99), "rows_expired", (json_int_t) self->expired);
    vw_actor_reply_json (self->actor, msg, 200, body);
}

static void
s_on_metrics (self_t *self, vw_msg_t *msg)
{
    vw_prom_t p = {0};
    vw_prom_one (&p, "viworks_telemetry_frames_received_total", "counter",
                 "Telemetry frames received from agents (valid ones).", (double) self->frames);
    vw_prom_one (&p, "viworks_telemetry_frames_stored_total", "counter",
                 "Telemetry frames stored (acked after their commit).", (double) self->stored);
    vw_prom_one (&p, "viworks_telemetry_frames_duplicate_total", "counter",
                 "Telemetry frames whose seq was stored before (acked, not stored again).",
                 (double) self->duplicates);
    vw_prom_one (&p, "viworks_telemetry_frames_refused_total", "counter",
                 "Telemetry frames not stored (the agent sends them again).",
                 (double) self->refused);
    vw_prom_one (&p, "viworks_telemetry_frames_shed_total", "counter",
                 "Telemetry frames refused at once while the store was busy (the agent sends "
                 "them again).",
                 (double) self->shed);
    vw_prom_one (&p, "viworks_telemetry_values_in_flight", "gauge",
                 "Metric values on their way to the store, not yet committed.",
                 (double) self->inflight);
    vw_prom_one (&p, "viworks_telemetry_values_stored_total", "counter", "Metric values stored.",
                 (double) self->values_stored);
    vw_prom_one (&p, "viworks_telemetry_points_stored_total", "counter",
                 "Telemetry points (timestamps with their metrics) stored.",
                 (double) self->points_stored);
    vw_prom_one (&p, "viworks_telemetry_rows_expired_total", "counter",
                 "Telemetry rows (frames and roll-up buckets) removed by retention.",
                 (double) self->expired);
    vw_prom_one (&p, "viworks_telemetry_alerts_fired_total", "counter",
                 "Alert rules that started firing for an agent.", (double) self->fired);
    vw_prom_one (&p, "viworks_telemetry_alerts_resolved_total", "counter",
                 "Alert rules that stopped firing for an agent.", (double) self->resolved);
    vw_prom_one (&p, "viworks_telemetry_alerts_firing", "gauge",
                 "Alert rules firing now (over all agents).",
                 (double) (self->fired - self->resolved));
    vw_prom_histo (&p, "viworks_telemetry_ack_seconds",
                   "From a telemetry frame's arrival at the telemetry actor to its ack (the "
                   "commit).",
                   &self->ack_latency);
    vw_actor_reply_metrics (self->actor, msg, &p);
}

static void *
s_create (vw_actor_t *actor, void *args)
{
    self_t *self = (self_t *) zmalloc (sizeof (self_t));
    self->config = (const vw_config_t *) args;
    self->actor = actor;
    self->pending = vw_pending_new (actor, self);
    self->alerts = zhashx_new ();
    zhashx_set_destructor (self->alerts, (zhashx_destructor_fn *) zstr_free);
    self->degrades = zhashx_new ();
    char err[512];
    //  main checked the rules before starting the actors.
    int n = vw_alerts_parse (self->config->telemetry_alerts, self->rules, VW_ALERTS_MAX, err,
                             sizeof err);
    self->nrules = n > 0 ? n : 0;
    if (self->nrules)
        vw_info ("telemetry", "%d alert rule(s)", self->nrules);
    s_expire_later (self, S_EXPIRE_MS);
    return self;
}

static void
s_destroy (void **state_p)
{
    self_t *self = (self_t *) *state_p;
    if (!self)
        return;
    //  Frames still waiting for the store are not acked: the agents send
    //  them again to the next run.
    self->stopping = true;
    vw_pending_destroy (&self->pending);
    zhashx_destroy (&self->alerts);
    zhashx_destroy (&self->degrades);
    free (self);
    *state_p = NULL;
}

static void
s_handle (void *state, vw_actor_t *actor, vw_msg_t **msg_p)
{
    self_t *self = (self_t *) state;
    vw_msg_t *msg = *msg_p;
    if (vw_pending_handle (self->pending, msg))
        return;
    if (msg->id == VW_MSG_ID_telemetry_frame)
        s_on_frame (self, msg);
    else if (msg->id == VW_MSG_ID_stats_query && vw_actor_wants_prometheus (msg))
        s_on_metrics (self, msg);
    else if (msg->id == VW_MSG_ID_stats_query)
        s_on_stats (self, msg);
    else
        vw_warn ("telemetry", "unexpected '%s' from '%s' ignored", vw_msg_name (msg->id),
                 msg->peer);
}

const vw_actor_class_t vw_telemetry_class = {
    .name = "telemetry",
    .create = s_create,
    .destroy = s_destroy,
    .handle = s_handle,
};
