/*  vw_config - the backend's settings: one option table drives the command
    line, the environment, the config file, the defaults and --help.

    Precedence (SPEC §8): command-line flags > environment > config file >
    defaults. Every option has a dotted key ("http.port"), a flag
    ("--http-port"), an environment variable ("VIWORKS_HTTP_PORT", plus the
    seed's legacy names DATABASE_URL, JWT_SECRET and LOG_LEVEL for the three
    options that have them) and a path in the ZPL config file ("http/port",
    read with CZMQ's zconfig). The config file is named by --config or
    VIWORKS_CONFIG.

    Value syntax: durations accept "250ms", "10s", "5m", "2h", "7d" or a plain
    integer of milliseconds; sizes accept "512", "64KiB", "1MiB", "1GiB" (and
    KB/MB/GB as powers of 1000, K/M/G as powers of 1024); booleans accept
    true/false/yes/no/on/off/1/0; ints are decimal within the option's range.

    The struct is owned by the caller of vw_config_load and destroyed with
    vw_config_destroy; all strings in it are owned by the struct.
*/
#ifndef VW_CONFIG_H
#define VW_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    char *config_file;        //  config            --config            (none)
    char *http_addr;          //  http.addr         --http-addr         0.0.0.0
    int http_port;            //  http.port         --http-port         8080  (0..65535, 0 = any)
    int64_t http_max_header;  //  http.max_header   --http-max-header   16KiB (fields; over: 431)
    int64_t http_max_url;     //  http.max_url      --http-max-url      16KiB (target; over: 414)
    int64_t http_max_body;    //  http.max_body     --http-max-body     1MiB  (over: 413)
    int64_t http_request_timeout_ms;  //  http.request_timeout          10s   (then 408)
    int64_t http_idle_timeout_ms;     //  http.idle_timeout             30s   (keep-alive)
    char *ws_addr;                    //  ws.addr           --ws-addr           0.0.0.0
    int ws_port;                      //  ws.port           --ws-port           8081
    int64_t ws_max_frame;       //  ws.max_frame      --ws-max-frame      1MiB  (size, 1KiB..64MiB)
    int64_t ws_out_max;         //  ws.out_max        --ws-out-max        8MiB  (size, 64KiB..1GiB)
    int ws_max_pending_hellos;  //  ws.max_pending_hellos --ws-max-pending-hellos 512 (1..1000000)
    char *trusted_proxies;      //  http.trusted_proxies --trusted-proxy (none)
    char *tls_cert;             //  tls.cert          --tls-cert          (none)
    char *tls_key;              //  tls.key           --tls-key           (none)
    char *admin_endpoint;    //  admin.endpoint    --admin-endpoint    tcp://127.0.0.1:5555 ("" or
                             //  "off" disables)
    char *admin_curve_cert;  //  admin.curve_cert  --admin-curve-cert  (none: no CURVE)
    char *admin_curve_clients;  //  admin.curve_clients --admin-curve-clients (none)
    char *events_endpoint;    //  events.endpoint   --events-endpoint   tcp://127.0.0.1:5556 ("" or
                              //  "off" disables)
    char *broker_bind;        //  broker.bind       --broker-bind       (none = off)
    char *broker_connect;     //  broker.connect    --broker-connect    (none = run the broker
                              //  in-process)
    char *broker_curve_cert;  //  broker.curve_cert    --broker-curve-cert    (none)
    char *broker_curve_clients;      //  broker.curve_clients --broker-curve-clients (none)
    char *broker_curve_server;       //  broker.curve_server  --broker-curve-server  (none)
    int64_t broker_peer_timeout_ms;  //  broker.peer_timeout --broker-peer-timeout 5s
    char *node;    //  node              --node              (none; hostname with --broker-connect)
    char *actors;  //  actors            --actors            "all" or a comma list of actor names
    char *database_url;       //  database.url      --database-url      ./data/viworks.db   env also
                              //  DATABASE_URL
    char *store_synchronous;  //  store.synchronous --store-synchronous normal  (enum: normal|full)
    char *jwt_secret;         //  jwt.secret        (no flag)           (none)  env also JWT_SECRET
    char *jwt_secret_previous;      //  jwt.secret_previous (no flag; env also JWT_SECRET_PREVIOUS)
    int64_t jwt_previous_grace_ms;  //  jwt.previous_grace --jwt-previous-grace 24h
    int64_t jwt_previous_since_ms;  //  (set at start) when the previous secret was rotated out
    char *log_level;                //  log.level         --log-level         info (enum:
                                    //  trace|debug|info|warn|error) env also LOG_LEVEL
    char *log_format;               //  log.format        --log-format        json (enum: json|text)
    int64_t heartbeat_interval_ms;  //  registry.heartbeat_interval --heartbeat-interval 10s
                                    //  (duration, 100ms..1h)
    int64_t stale_after_ms;  //  registry.stale_after --stale-after    7d  (duration, 1s..365d)
    int64_t
        health_timeout_ms;  //  health.timeout    --health-timeout    250ms (duration, 10ms..10s)
    int64_t
        shutdown_timeout_ms;  //  shutdown.timeout  --shutdown-timeout  4s (duration, 100ms..60s)
    int rl_address_rate;      //  ratelimit.address_rate  500/s per source address
    int rl_address_burst;     //  ratelimit.address_burst 1000
    int rl_token_rate;        //  ratelimit.token_rate    100/s per bearer token
    int rl_token_burst;       //  ratelimit.token_burst   200
    int rl_hello_rate;        //  ratelimit.hello_rate    50/s agent connections per address
    int rl_hello_burst;       //  ratelimit.hello_burst   200
    int64_t token_ttl_ms;     //  auth.token_ttl    --token-ttl         1h (duration, 1m..30d)
    bool http_metrics_auth;   //  http.metrics_auth     false (GET /metrics open)
    int64_t telemetry_retention_ms;     //  telemetry.retention   7d (raw points; older refused)
    int64_t telemetry_retention_1m_ms;  //  telemetry.retention_1m  90d
    int64_t telemetry_retention_1h_ms;  //  telemetry.retention_1h  730d
    int64_t telemetry_max_future_ms;
    char *telemetry_alerts;       //  telemetry.alerts  (none) rules, see vw_alerts.h    //
                                  //  telemetry.max_future  5m (points further ahead refused)
    int telemetry_max_points;     //  telemetry.max_points  100000 (per query answer)
    int telemetry_max_in_flight;  //  telemetry.max_in_flight  300000 values (back-pressure)
    int commands_max_inflight;    //  commands.max_inflight  1024 (global in-flight limit)
    int commands_max_per_agent;   //  commands.max_per_agent 4 (per-agent in-flight limit)
    char *commands_schema_file;   //  commands.schema_file  (none) more command types (JSON)
    const struct vw_commands_t
        *commands;         //  derived at start: the command catalogue (not an option)
    char *admin_password;  //  admin.password    (no flag)           first start's admin password;
                           //  env VIWORKS_ADMIN_PASSWORD
} vw_config_t;

//  Loads settings from argv (argv[0] is the program name), the process
//  environment (environ) and the config file. Returns:
//    0  on success, *config_p set;
//    1  when --help or --version was asked for (text printed to `out`),
//       *config_p NULL: the caller exits 0;
//    2  on a bad option or value: one line naming the option (and the source:
//       flag, environment variable or config file) printed to `err`,
//       *config_p NULL: the caller exits 2.
//  Flags take "--name value" and "--name=value"; unknown flags, missing values,
//  stray positional arguments, unknown keys in the config file and a config
//  file that cannot be read or parsed are errors.
int vw_config_load (vw_config_t **config_p, int argc, char **argv, FILE *out, FILE *err);

//  Defaults only (for tests and embedding).
vw_config_t *vw_config_new_defaults (void);

void vw_config_destroy (vw_config_t **config_p);

//  Where an option's value came from: "default", "file", "env" or "flag";
//  NULL for an unknown key. Useful for the start-up log line.
const char *vw_config_source (const vw_config_t *config, const char *key);

//  Parsers shared with other modules (return 0 ok, -1 bad input).
int vw_config_parse_duration (const char *text, int64_t *ms);
int vw_config_parse_size (const char *text, int64_t *bytes);
int vw_config_parse_bool (const char *text, bool *value);

#endif
