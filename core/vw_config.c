/*  vw_config - see vw_config.h.

    Everything is driven by s_options: parsing of flags, environment and
    config file, the defaults, validation, error messages and --help. Adding
    an option means adding a field to vw_config_t and one row here.
*/
#include "vw_config.h"
#include "vw_proxy.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <czmq.h>

#ifndef VW_VERSION
#define VW_VERSION "dev"
#endif

#define S_PRODUCT "viworks-backend"

#define S_SECOND (INT64_C (1000))
#define S_MINUTE (60 * S_SECOND)
#define S_HOUR   (60 * S_MINUTE)
#define S_DAY    (24 * S_HOUR)
#define S_KIB    (INT64_C (1024))
#define S_MIB    (1024 * S_KIB)

typedef enum {
    S_STRING,    //  required, non-empty
    S_OPTIONAL,  //  "" means unset (NULL)
    S_ENDPOINT,  //  "" or "off" means disabled (NULL)
    S_NAMES,     //  "all" or a comma list of names
    S_ENUM,      //  one of choices, stored as the canonical spelling
    S_INT,       //  int field, decimal within min..max
    S_DURATION,  //  int64_t milliseconds within min..max
    S_SIZE,      //  int64_t bytes within min..max
    S_BOOL       //  bool field
} s_type_t;

typedef struct {
    const char *key;         //  dotted name, also vw_config_source's key
    const char *flag;        //  NULL: not accepted on the command line
    const char *env;         //  VIWORKS_ + key upper-cased, '.' -> '_'
    const char *legacy_env;  //  the seed's name, or NULL; env wins over it
    const char *path;        //  ZPL path; NULL: not accepted in the file
    s_type_t type;
    const char *metavar;         //  value placeholder in --help
    const char *defval;          //  default as text, parsed like user input; NULL = none
    int64_t min, max;            //  for S_INT, S_DURATION, S_SIZE
    const char *const *choices;  //  for S_ENUM, NULL-terminated
    size_t offset;               //  field in vw_config_t
    const char *help;
    bool secret;  //  never echo the value anywhere
} s_option_t;

static const char *const s_synchronous_choices[] = {"normal", "full", NULL};
static const char *const s_level_choices[] = {"trace", "debug", "info", "warn", "error", NULL};
static const char *const s_log_format_choices[] = {"json", "text", NULL};

#define S_FIELD(name) offsetof (vw_config_t, name)

static const s_option_t s_options[] = {
    {.key = "config",
     .flag = "--config",
     .env = "VIWORKS_CONFIG",
     .type = S_OPTIONAL,
     .metavar = "FILE",
     .offset = S_FIELD (config_file),
     .help = "read settings from this ZPL config file"},
    {.key = "http.addr",
     .flag = "--http-addr",
     .env = "VIWORKS_HTTP_ADDR",
     .path = "http/addr",
     .type = S_STRING,
     .metavar = "ADDR",
     .defval = "0.0.0.0",
     .offset = S_FIELD (http_addr),
     .help = "address the HTTP REST API listens on"},
    {.key = "http.port",
     .flag = "--http-port",
     .env = "VIWORKS_HTTP_PORT",
     .path = "http/port",
     .type = S_INT,
     .metavar = "PORT",
     .defval = "8080",
     .min = 0,
     .max = 65535,
     .offset = S_FIELD (http_port),
     .help = "HTTP REST API port, 0 = any free port"},
    {.key = "http.max_header",
     .flag = "--http-max-header",
     .env = "VIWORKS_HTTP_MAX_HEADER",
     .path = "http/max_header",
     .type = S_SIZE,
     .metavar = "SIZE",
     .defval = "16KiB",
     .min = S_KIB,
     .max = S_MIB,
     .offset = S_FIELD (http_max_header),
     .help = "largest HTTP header block (fields, after the request line); more: 431"},
    {.key = "http.max_url",
     .flag = "--http-max-url",
     .env = "VIWORKS_HTTP_MAX_URL",
     .path = "http/max_url",
     .type = S_SIZE,
     .metavar = "SIZE",
     .defval = "16KiB",
     .min = 256,
     .max = S_MIB,
     .offset = S_FIELD (http_max_url),
     .help = "longest HTTP request target (path and query); longer: 414"},
    {.key = "http.max_body",
     .flag = "--http-max-body",
     .env = "VIWORKS_HTTP_MAX_BODY",
     .path = "http/max_body",
     .type = S_SIZE,
     .metavar = "SIZE",
     .defval = "1MiB",
     .min = S_KIB,
     .max = 64 * S_MIB,
     .offset = S_FIELD (http_max_body),
     .help = "largest HTTP request body (Content-Length or chunked); larger: 413"},
    {.key = "http.request_timeout",
     .flag = "--http-request-timeout",
     .env = "VIWORKS_HTTP_REQUEST_TIMEOUT",
     .path = "http/request_timeout",
     .type = S_DURATION,
     .metavar = "DURATION",
     .defval = "10s",
     .min = 100,
     .max = 5 * 60 * S_SECOND,
     .offset = S_FIELD (http_request_timeout_ms),
     .help = "time to receive a request's headers and body once it started; then 408"},
    {.key = "http.idle_timeout",
     .flag = "--http-idle-timeout",
     .env = "VIWORKS_HTTP_IDLE_TIMEOUT",
     .path = "http/idle_timeout",
     .type = S_DURATION,
     .metavar = "DURATION",
     .defval = "30s",
     .min = 100,
     .max = 60 * 60 * S_SECOND,
     .offset = S_FIELD (http_idle_timeout_ms),
     .help = "an idle keep-alive HTTP connection is closed after this"},
    {.key = "ws.addr",
     .flag = "--ws-addr",
     .env = "VIWORKS_WS_ADDR",
     .path = "ws/addr",
     .type = S_STRING,
     .metavar = "ADDR",
     .defval = "0.0.0.0",
     .offset = S_FIELD (ws_addr),
     .help = "address the agent WebSocket listens on"},
    {.key = "ws.port",
     .flag = "--ws-port",
     .env = "VIWORKS_WS_PORT",
     .path = "ws/port",
     .type = S_INT,
     .metavar = "PORT",
     .defval = "8081",
     .min = 0,
     .max = 65535,
     .offset = S_FIELD (ws_port),
     .help = "agent WebSocket port, 0 = any free port"},
    {.key = "ws.max_frame",
     .flag = "--ws-max-frame",
     .env = "VIWORKS_WS_MAX_FRAME",
     .path = "ws/max_frame",
     .type = S_SIZE,
     .metavar = "SIZE",
     .defval = "1MiB",
     .min = S_KIB,
     .max = 64 * S_MIB,
     .offset = S_FIELD (ws_max_frame),
     .help = "largest WebSocket message accepted from an agent"},
    {.key = "ws.out_max",
     .flag = "--ws-out-max",
     .env = "VIWORKS_WS_OUT_MAX",
     .path = "ws/out_max",
     .type = S_SIZE,
     .metavar = "SIZE",
     .defval = "8MiB",
     .min = 64 * S_KIB,
     .max = 1024 * S_MIB,
     .offset = S_FIELD (ws_out_max),
     .help = "most output queued for one agent; one that does not read is closed (1008) past it"},
    {.key = "ws.max_pending_hellos",
     .flag = "--ws-max-pending-hellos",
     .env = "VIWORKS_WS_MAX_PENDING_HELLOS",
     .path = "ws/max_pending_hellos",
     .type = S_INT,
     .metavar = "N",
     .defval = "512",
     .min = 1,
     .max = 1000000,
     .offset = S_FIELD (ws_max_pending_hellos),
     .help = "hellos an edge has waiting for the registry at once; more are refused with 1013 "
             "and a retry_after_ms (reconnect storms)"},
    {.key = "http.trusted_proxies",
     .flag = "--trusted-proxy",
     .env = "VIWORKS_TRUSTED_PROXIES",
     .path = "http/trusted_proxies",
     .type = S_OPTIONAL,
     .metavar = "CIDR[,CIDR]",
     .offset = S_FIELD (trusted_proxies),
     .help = "proxies (nginx) whose X-Forwarded-For names the client for rate limits and audit; "
             "from anyone else the header is ignored"},
    {.key = "tls.cert",
     .flag = "--tls-cert",
     .env = "VIWORKS_TLS_CERT",
     .path = "tls/cert",
     .type = S_OPTIONAL,
     .metavar = "FILE",
     .offset = S_FIELD (tls_cert),
     .help = "PEM certificate: serve https and wss (needs --tls-key)"},
    {.key = "tls.key",
     .flag = "--tls-key",
     .env = "VIWORKS_TLS_KEY",
     .path = "tls/key",
     .type = S_OPTIONAL,
     .metavar = "FILE",
     .offset = S_FIELD (tls_key),
     .help = "PEM private key for --tls-cert"},
    {.key = "admin.endpoint",
     .flag = "--admin-endpoint",
     .env = "VIWORKS_ADMIN_ENDPOINT",
     .path = "admin/endpoint",
     .type = S_ENDPOINT,
     .metavar = "ENDPOINT",
     .defval = "tcp://127.0.0.1:5555",
     .offset = S_FIELD (admin_endpoint),
     .help = "admin socket (ZeroMQ ROUTER, JSON), \"off\" disables"},
    {.key = "admin.curve_cert",
     .flag = "--admin-curve-cert",
     .env = "VIWORKS_ADMIN_CURVE_CERT",
     .path = "admin/curve_cert",
     .type = S_OPTIONAL,
     .metavar = "FILE",
     .offset = S_FIELD (admin_curve_cert),
     .help = "the server's CURVE certificate (FILE and FILE_secret, from viworksctl keygen): "
             "the admin socket and the event stream take only CURVE clients listed in "
             "--admin-curve-clients (needed on any non-loopback endpoint)"},
    {.key = "admin.curve_clients",
     .flag = "--admin-curve-clients",
     .env = "VIWORKS_ADMIN_CURVE_CLIENTS",
     .path = "admin/curve_clients",
     .type = S_OPTIONAL,
     .metavar = "DIR",
     .offset = S_FIELD (admin_curve_clients),
     .help = "directory of the public certificates of the clients allowed in (read again "
             "whenever a file is added or removed)"},
    {.key = "events.endpoint",
     .flag = "--events-endpoint",
     .env = "VIWORKS_EVENTS_ENDPOINT",
     .path = "events/endpoint",
     .type = S_ENDPOINT,
     .metavar = "ENDPOINT",
     .defval = "tcp://127.0.0.1:5556",
     .offset = S_FIELD (events_endpoint),
     .help = "event stream (ZeroMQ PUB, JSON), \"off\" disables"},
    {.key = "broker.bind",
     .flag = "--broker-bind",
     .env = "VIWORKS_BROKER_BIND",
     .path = "broker/bind",
     .type = S_OPTIONAL,
     .metavar = "ENDPOINT",
     .offset = S_FIELD (broker_bind),
     .help = "accept remote actors here, e.g. tcp://*:5560"},
    {.key = "broker.connect",
     .flag = "--broker-connect",
     .env = "VIWORKS_BROKER_CONNECT",
     .path = "broker/connect",
     .type = S_OPTIONAL,
     .metavar = "ENDPOINT",
     .offset = S_FIELD (broker_connect),
     .help = "join the broker there instead of running one in-process"},
    {.key = "broker.curve_cert",
     .flag = "--broker-curve-cert",
     .env = "VIWORKS_BROKER_CURVE_CERT",
     .path = "broker/curve_cert",
     .type = S_OPTIONAL,
     .metavar = "FILE",
     .offset = S_FIELD (broker_curve_cert),
     .help = "this process's CURVE certificate for the broker link (FILE and FILE_secret, "
             "from viworksctl keygen): the core's with --broker-bind, an actor process's own "
             "with --broker-connect (needed on any non-loopback endpoint)"},
    {.key = "broker.curve_clients",
     .flag = "--broker-curve-clients",
     .env = "VIWORKS_BROKER_CURVE_CLIENTS",
     .path = "broker/curve_clients",
     .type = S_OPTIONAL,
     .metavar = "DIR",
     .offset = S_FIELD (broker_curve_clients),
     .help = "with --broker-bind: directory of the public certificates of the actor "
             "processes allowed to join (read again whenever a file is added or removed)"},
    {.key = "broker.curve_server",
     .flag = "--broker-curve-server",
     .env = "VIWORKS_BROKER_CURVE_SERVER",
     .path = "broker/curve_server",
     .type = S_OPTIONAL,
     .metavar = "FILE",
     .offset = S_FIELD (broker_curve_server),
     .help = "with --broker-connect: the core's public certificate (its --broker-curve-cert "
             "FILE without the secret)"},
    {.key = "broker.peer_timeout",
     .flag = "--broker-peer-timeout",
     .env = "VIWORKS_BROKER_PEER_TIMEOUT",
     .path = "broker/peer_timeout",
     .type = S_DURATION,
     .metavar = "DURATION",
     .defval = "5s",
     .min = 2000,
     .max = S_HOUR,
     .offset = S_FIELD (broker_peer_timeout_ms),
     .help = "an actor process not heard from for this long is lost: its agents go offline "
             "and their commands wait for them to reconnect; a process that does not hear "
             "the core for this long refuses new agents (1013)"},
    {.key = "node",
     .flag = "--node",
     .env = "VIWORKS_NODE",
     .path = "node",
     .type = S_OPTIONAL,
     .metavar = "NAME",
     .offset = S_FIELD (node),
     .help = "this process's name among several: its edges join the broker as edge@NAME and "
             "api@NAME (default with --broker-connect: the host name)"},
    {.key = "actors",
     .flag = "--actors",
     .env = "VIWORKS_ACTORS",
     .path = "actors",
     .type = S_NAMES,
     .metavar = "LIST",
     .defval = "all",
     .offset = S_FIELD (actors),
     .help = "actors to run in this process: all, or a comma list of names"},
    {.key = "database.url",
     .flag = "--database-url",
     .env = "VIWORKS_DATABASE_URL",
     .legacy_env = "DATABASE_URL",
     .path = "database/url",
     .type = S_STRING,
     .metavar = "URL",
     .defval = "./data/viworks.db",
     .offset = S_FIELD (database_url),
     .help = "SQLite database, sqlite:///path/to.db or a path"},
    {.key = "store.synchronous",
     .flag = "--store-synchronous",
     .env = "VIWORKS_STORE_SYNCHRONOUS",
     .path = "store/synchronous",
     .type = S_ENUM,
     .metavar = "MODE",
     .defval = "normal",
     .choices = s_synchronous_choices,
     .offset = S_FIELD (store_synchronous),
     .help = "SQLite synchronous mode"},
    //  No flag: argv is visible to every user of the host
    {.key = "jwt.secret",
     .env = "VIWORKS_JWT_SECRET",
     .legacy_env = "JWT_SECRET",
     .path = "jwt/secret",
     .type = S_OPTIONAL,
     .metavar = "SECRET",
     .offset = S_FIELD (jwt_secret),
     .help = "token signing secret; when unset one is generated and kept",
     .secret = true},
    {.key = "jwt.secret_previous",
     .env = "VIWORKS_JWT_SECRET_PREVIOUS",
     .legacy_env = "JWT_SECRET_PREVIOUS",
     .path = "jwt/secret_previous",
     .type = S_OPTIONAL,
     .metavar = "SECRET",
     .offset = S_FIELD (jwt_secret_previous),
     .help = "the secret before the last rotation: verifies tokens issued before this start, "
             "for jwt.previous_grace",
     .secret = true},
    {.key = "jwt.previous_grace",
     .flag = "--jwt-previous-grace",
     .env = "VIWORKS_JWT_PREVIOUS_GRACE",
     .path = "jwt/previous_grace",
     .type = S_DURATION,
     .metavar = "DURATION",
     .defval = "24h",
     .min = 0,
     .max = 400 * S_DAY,
     .offset = S_FIELD (jwt_previous_grace_ms),
     .help = "how long after a rotation tokens signed with the previous secret still verify"},
    {.key = "log.level",
     .flag = "--log-level",
     .env = "VIWORKS_LOG_LEVEL",
     .legacy_env = "LOG_LEVEL",
     .path = "log/level",
     .type = S_ENUM,
     .metavar = "LEVEL",
     .defval = "info",
     .choices = s_level_choices,
     .offset = S_FIELD (log_level),
     .help = "least severe log level written"},
    {.key = "log.format",
     .flag = "--log-format",
     .env = "VIWORKS_LOG_FORMAT",
     .path = "log/format",
     .type = S_ENUM,
     .metavar = "FORMAT",
     .defval = "json",
     .choices = s_log_format_choices,
     .offset = S_FIELD (log_format),
     .help = "log lines as JSON objects or human text"},
    {.key = "registry.heartbeat_interval",
     .flag = "--heartbeat-interval",
     .env = "VIWORKS_REGISTRY_HEARTBEAT_INTERVAL",
     .path = "registry/heartbeat_interval",
     .type = S_DURATION,
     .metavar = "DURATION",
     .defval = "10s",
     .min = 100,
     .max = S_HOUR,
     .offset = S_FIELD (heartbeat_interval_ms),
     .help = "heartbeat interval expected from agents"},
    {.key = "registry.stale_after",
     .flag = "--stale-after",
     .env = "VIWORKS_REGISTRY_STALE_AFTER",
     .path = "registry/stale_after",
     .type = S_DURATION,
     .metavar = "DURATION",
     .defval = "7d",
     .min = S_SECOND,
     .max = 365 * S_DAY,
     .offset = S_FIELD (stale_after_ms),
     .help = "agents not seen for this long are stale"},
    {.key = "health.timeout",
     .flag = "--health-timeout",
     .env = "VIWORKS_HEALTH_TIMEOUT",
     .path = "health/timeout",
     .type = S_DURATION,
     .metavar = "DURATION",
     .defval = "250ms",
     .min = 10,
     .max = 10 * S_SECOND,
     .offset = S_FIELD (health_timeout_ms),
     .help = "time limit for each health check"},
    {.key = "ratelimit.address_rate",
     .flag = "--ratelimit-address-rate",
     .env = "VIWORKS_RATELIMIT_ADDRESS_RATE",
     .path = "ratelimit/address_rate",
     .type = S_INT,
     .metavar = "N",
     .defval = "500",
     .min = 1,
     .max = 1000000,
     .offset = S_FIELD (rl_address_rate),
     .help = "API requests per second allowed from one source address"},
    {.key = "ratelimit.address_burst",
     .flag = "--ratelimit-address-burst",
     .env = "VIWORKS_RATELIMIT_ADDRESS_BURST",
     .path = "ratelimit/address_burst",
     .type = S_INT,
     .metavar = "N",
     .defval = "1000",
     .min = 1,
     .max = 10000000,
     .offset = S_FIELD (rl_address_burst),
     .help = "API request burst allowed from one source address"},
    {.key = "ratelimit.token_rate",
     .flag = "--ratelimit-token-rate",
     .env = "VIWORKS_RATELIMIT_TOKEN_RATE",
     .path = "ratelimit/token_rate",
     .type = S_INT,
     .metavar = "N",
     .defval = "100",
     .min = 1,
     .max = 1000000,
     .offset = S_FIELD (rl_token_rate),
     .help = "API requests per second allowed for one bearer token"},
    {.key = "ratelimit.token_burst",
     .flag = "--ratelimit-token-burst",
     .env = "VIWORKS_RATELIMIT_TOKEN_BURST",
     .path = "ratelimit/token_burst",
     .type = S_INT,
     .metavar = "N",
     .defval = "200",
     .min = 1,
     .max = 10000000,
     .offset = S_FIELD (rl_token_burst),
     .help = "API request burst allowed for one bearer token"},
    {.key = "ratelimit.hello_rate",
     .flag = "--ratelimit-hello-rate",
     .env = "VIWORKS_RATELIMIT_HELLO_RATE",
     .path = "ratelimit/hello_rate",
     .type = S_INT,
     .metavar = "N",
     .defval = "50",
     .min = 1,
     .max = 1000000,
     .offset = S_FIELD (rl_hello_rate),
     .help = "agent connection attempts per second allowed from one source address"},
    {.key = "ratelimit.hello_burst",
     .flag = "--ratelimit-hello-burst",
     .env = "VIWORKS_RATELIMIT_HELLO_BURST",
     .path = "ratelimit/hello_burst",
     .type = S_INT,
     .metavar = "N",
     .defval = "200",
     .min = 1,
     .max = 10000000,
     .offset = S_FIELD (rl_hello_burst),
     .help = "agent connection attempt burst allowed from one source address"},
    {.key = "auth.token_ttl",
     .flag = "--token-ttl",
     .env = "VIWORKS_AUTH_TOKEN_TTL",
     .path = "auth/token_ttl",
     .type = S_DURATION,
     .metavar = "DURATION",
     .defval = "1h",
     .min = S_MINUTE,
     .max = 30 * S_DAY,
     .offset = S_FIELD (token_ttl_ms),
     .help = "lifetime of the access tokens POST /auth/token issues"},
    {.key = "commands.max_inflight",
     .flag = "--max-inflight",
     .env = "VIWORKS_COMMANDS_MAX_INFLIGHT",
     .path = "commands/max_inflight",
     .type = S_INT,
     .metavar = "N",
     .defval = "1024",
     .min = 1,
     .max = 1000000,
     .offset = S_FIELD (commands_max_inflight),
     .help = "commands in flight at once, across all agents"},
    {.key = "http.metrics_auth",
     .flag = "--metrics-auth",
     .env = "VIWORKS_HTTP_METRICS_AUTH",
     .path = "http/metrics_auth",
     .type = S_BOOL,
     .metavar = "BOOL",
     .defval = "false",
     .offset = S_FIELD (http_metrics_auth),
     .help = "GET /metrics needs a viewer's token (default: open, like a Prometheus target)"},
    {.key = "telemetry.retention",
     .flag = "--telemetry-retention",
     .env = "VIWORKS_TELEMETRY_RETENTION",
     .path = "telemetry/retention",
     .type = S_DURATION,
     .metavar = "DURATION",
     .defval = "7d",
     .min = S_HOUR,
     .max = 3650 * S_DAY,
     .offset = S_FIELD (telemetry_retention_ms),
     .help = "raw telemetry kept this long; older points are refused"},
    {.key = "telemetry.retention_1m",
     .flag = "--telemetry-retention-1m",
     .env = "VIWORKS_TELEMETRY_RETENTION_1M",
     .path = "telemetry/retention_1m",
     .type = S_DURATION,
     .metavar = "DURATION",
     .defval = "90d",
     .min = S_HOUR,
     .max = 3650 * S_DAY,
     .offset = S_FIELD (telemetry_retention_1m_ms),
     .help = "1-minute roll-ups kept this long"},
    {.key = "telemetry.retention_1h",
     .flag = "--telemetry-retention-1h",
     .env = "VIWORKS_TELEMETRY_RETENTION_1H",
     .path = "telemetry/retention_1h",
     .type = S_DURATION,
     .metavar = "DURATION",
     .defval = "730d",
     .min = S_HOUR,
     .max = 3650 * S_DAY,
     .offset = S_FIELD (telemetry_retention_1h_ms),
     .help = "1-hour roll-ups kept this long"},
    {.key = "telemetry.alerts",
     .flag = "--telemetry-alerts",
     .env = "VIWORKS_TELEMETRY_ALERTS",
     .path = "telemetry/alerts",
     .type = S_OPTIONAL,
     .metavar = "RULES",
     .offset = S_FIELD (telemetry_alerts),
     .help = "alert rules: 'NAME: METRIC OP THRESHOLD [for DURATION] [degrade]; ...'"},
    {.key = "telemetry.max_future",
     .flag = "--telemetry-max-future",
     .env = "VIWORKS_TELEMETRY_MAX_FUTURE",
     .path = "telemetry/max_future",
     .type = S_DURATION,
     .metavar = "DURATION",
     .defval = "5m",
     .min = 0,
     .max = S_DAY,
     .offset = S_FIELD (telemetry_max_future_ms),
     .help = "points stamped further ahead of the backend's clock are refused"},
    {.key = "telemetry.max_points",
     .flag = "--telemetry-max-points",
     .env = "VIWORKS_TELEMETRY_MAX_POINTS",
     .path = "telemetry/max_points",
     .type = S_INT,
     .metavar = "N",
     .defval = "100000",
     .min = 100,
     .max = 10000000,
     .offset = S_FIELD (telemetry_max_points),
     .help = "points (or buckets) one telemetry query may answer; more is 400"},
    {.key = "telemetry.max_in_flight",
     .flag = "--telemetry-max-in-flight",
     .env = "VIWORKS_TELEMETRY_MAX_IN_FLIGHT",
     .path = "telemetry/max_in_flight",
     .type = S_INT,
     .metavar = "N",
     .defval = "300000",
     .min = 1,
     .max = 100000000,
     .offset = S_FIELD (telemetry_max_in_flight),
     .help = "metric values on their way to the store past which a frame is refused at once "
             "(unavailable, sent again later)"},
    {.key = "commands.max_per_agent",
     .flag = "--max-per-agent",
     .env = "VIWORKS_COMMANDS_MAX_PER_AGENT",
     .path = "commands/max_per_agent",
     .type = S_INT,
     .metavar = "N",
     .defval = "4",
     .min = 1,
     .max = 10000,
     .offset = S_FIELD (commands_max_per_agent),
     .help = "commands in flight at once on one agent"},
    {.key = "commands.schema_file",
     .flag = "--command-schemas",
     .env = "VIWORKS_COMMANDS_SCHEMA_FILE",
     .path = "commands/schema_file",
     .type = S_OPTIONAL,
     .metavar = "FILE",
     .offset = S_FIELD (commands_schema_file),
     .help = "JSON file of extra command types and their payload schemas"},
    {.key = "admin.password",
     .env = "VIWORKS_ADMIN_PASSWORD",
     .path = "admin/password",
     .type = S_OPTIONAL,
     .metavar = "SECRET",
     .offset = S_FIELD (admin_password),
     .help = "password of the 'admin' user created on first start (else generated and logged once)",
     .secret = true},
    {.key = "shutdown.timeout",
     .flag = "--shutdown-timeout",
     .env = "VIWORKS_SHUTDOWN_TIMEOUT",
     .path = "shutdown/timeout",
     .type = S_DURATION,
     .metavar = "DURATION",
     .defval = "4s",
     .min = 100,
     .max = 60 * S_SECOND,
     .offset = S_FIELD (shutdown_timeout_ms),
     .help = "time allowed for an orderly shutdown"},
};

#define S_OPTION_COUNT (sizeof (s_options) / sizeof (s_options[0]))

typedef enum { S_FROM_DEFAULT = 0, S_FROM_FILE, S_FROM_ENV, S_FROM_FLAG } s_source_t;

static const char *const s_source_names[] = {"default", "file", "env", "flag"};

//  The public struct plus where each value came from. Callers only see the
//  first member, so vw_config_source works on configs made by this module.
typedef struct {
    vw_config_t public;
    unsigned char source[S_OPTION_COUNT];
} s_config_t;

//  Where a value being applied came from, for error messages.
typedef struct {
    s_source_t source;
    const char *name;  //  the flag, the environment variable or the ZPL path
    const char *file;  //  the config file, for S_FROM_FILE
} s_origin_t;

//  One load's output streams and program name.
typedef struct {
    const char *prog;
    FILE *out;
    FILE *err;
} s_ctx_t;

//  A flag from argv, kept until the lower-precedence sources are applied.
typedef struct {
    size_t index;
    const char *value;
} s_flag_t;

typedef union {
    char *string;
    int64_t number;
    bool boolean;
} s_value_t;

static void s_error (s_ctx_t *ctx, const char *format, ...) __attribute__ ((format (printf, 2, 3)));

static void
s_error (s_ctx_t *ctx, const char *format, ...)
{
    if (!ctx->err)
        return;
    fprintf (ctx->err, "%s: ", ctx->prog);
    va_list args;
    va_start (args, format);
    vfprintf (ctx->err, format, args);
    va_end (args);
    fputc ('\n', ctx->err);
    fflush (ctx->err);
}

//  Copies untrusted text for a one-line message: control characters would
//  break the line, and a huge value would bury the message.
static void
s_sanitize (const char *text, char *buffer, size_t size)
{
    assert (size > 4);
    size_t used = 0;
    for (const char *p = text; *p; p++) {
        if (used + 4 >= size) {
            strcpy (buffer + used, "...");
            return;
        }
        unsigned char c = (unsigned char) *p;
        buffer[used++] = (c < 0x20 || c == 0x7f) ? '?' : (char) c;
    }
    buffer[used] = 0;
}

static bool
s_is_digit (char c)
{
    return c >= '0' && c <= '9';
}

//  Leading decimal digits of text into *value; returns the rest, or NULL if
//  there are no digits or the number overflows.
static const char *
s_parse_digits (const char *text, int64_t *value)
{
    if (!s_is_digit (*text))
        return NULL;
    int64_t number = 0;
    for (; s_is_digit (*text); text++) {
        int digit = *text - '0';
        if (number > (INT64_MAX - digit) / 10)
            return NULL;
        number = number * 10 + digit;
    }
    *value = number;
    return text;
}

static int
s_parse_int (const char *text, int64_t *value)
{
    bool negative = *text == '-';
    int64_t number = 0;
    const char *rest = s_parse_digits (negative ? text + 1 : text, &number);
    if (!rest || *rest)
        return -1;
    *value = negative ? -number : number;
    return 0;
}

//  Multiplies a parsed number by its unit's scale; -1 on overflow.
static int
s_scale (int64_t number, int64_t scale, int64_t *result)
{
    if (number > INT64_MAX / scale)
        return -1;
    *result = number * scale;
    return 0;
}

int
vw_config_parse_duration (const char *text, int64_t *ms)
{
    static const struct {
        const char *unit;
        int64_t scale;
    } units[] = {{"", 1}, {"ms", 1}, {"s", S_SECOND}, {"m", S_MINUTE}, {"h", S_HOUR}, {"d", S_DAY}};
    int64_t number = 0;
    const char *rest = text ? s_parse_digits (text, &number) : NULL;
    if (!rest || !ms)
        return -1;
    for (size_t i = 0; i < sizeof (units) / sizeof (units[0]); i++)
        if (streq (rest, units[i].unit))
            return s_scale (number, units[i].scale, ms);
    return -1;
}

int
vw_config_parse_size (const char *text, int64_t *bytes)
{
    static const struct {
        const char *unit;
        int64_t scale;
    } units[] = {{"", 1},
                 {"B", 1},
                 {"K", S_KIB},
                 {"KiB", S_KIB},
                 {"KB", 1000},
                 {"M", S_MIB},
                 {"MiB", S_MIB},
                 {"MB", 1000 * 1000},
                 {"G", 1024 * S_MIB},
                 {"GiB", 1024 * S_MIB},
                 {"GB", 1000 * 1000 * 1000}};
    int64_t number = 0;
    const char *rest = text ? s_parse_digits (text, &number) : NULL;
    if (!rest || !bytes)
        return -1;
    //  Units ignore case: "kib" is as clear as "KiB"
    for (size_t i = 0; i < sizeof (units) / sizeof (units[0]); i++)
        if (strcasecmp (rest, units[i].unit) == 0)
            return s_scale (number, units[i].scale, bytes);
    return -1;
}

int
vw_config_parse_bool (const char *text, bool *value)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    if (!text || !value)
        return -1;
    for (size_t i = 0; i < sizeof (yes) / sizeof (yes[0]); i++) {
        if (strcasecmp (text, yes[i]) == 0) {
            *value = true;
            return 0;
        }
        if (strcasecmp (text, no[i]) == 0) {
            *value = false;
            return 0;
        }
    }
    return -1;
}

//  "all" or a comma list of names ([A-Za-z0-9_.-]+); spaces around the
//  commas are dropped. Returns a fresh normalised copy, or NULL if invalid.
static char *
s_parse_names (const char *text)
{
    char *copy = malloc (strlen (text) + 1);
    if (!copy)
        return NULL;
    size_t used = 0;
    const char *p = text;
    while (true) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *start = p;
        while (isalnum ((unsigned char) *p) || *p == '_' || *p == '-' || *p == '.')
            p++;
        size_t length = (size_t) (p - start);
        while (*p == ' ' || *p == '\t')
            p++;
        if (length == 0 || (*p != ',' && *p != 0)) {
            free (copy);
            return NULL;
        }
        if (used)
            copy[used++] = ',';
        memcpy (copy + used, start, length);
        used += length;
        if (*p == 0)
            break;
        p++;
    }
    copy[used] = 0;
    return copy;
}

//  Formats a duration in the largest unit that divides it exactly.
static void
s_format_duration (int64_t ms, char *buffer, size_t size)
{
    if (ms != 0 && ms % S_DAY == 0)
        snprintf (buffer, size, "%" PRId64 "d", ms / S_DAY);
    else if (ms != 0 && ms % S_HOUR == 0)
        snprintf (buffer, size, "%" PRId64 "h", ms / S_HOUR);
    else if (ms != 0 && ms % S_MINUTE == 0)
        snprintf (buffer, size, "%" PRId64 "m", ms / S_MINUTE);
    else if (ms != 0 && ms % S_SECOND == 0)
        snprintf (buffer, size, "%" PRId64 "s", ms / S_SECOND);
    else
        snprintf (buffer, size, "%" PRId64 "ms", ms);
}

static void
s_format_size (int64_t bytes, char *buffer, size_t size)
{
    if (bytes != 0 && bytes % (1024 * S_MIB) == 0)
        snprintf (buffer, size, "%" PRId64 "GiB", bytes / (1024 * S_MIB));
    else if (bytes != 0 && bytes % S_MIB == 0)
        snprintf (buffer, size, "%" PRId64 "MiB", bytes / S_MIB);
    else if (bytes != 0 && bytes % S_KIB == 0)
        snprintf (buffer, size, "%" PRId64 "KiB", bytes / S_KIB);
    else
        snprintf (buffer, size, "%" PRId64, bytes);
}

static void
s_format_choices (const s_option_t *option, char *buffer, size_t size)
{
    size_t used = 0;
    buffer[0] = 0;
    for (const char *const *choice = option->choices; *choice; choice++) {
        int n = snprintf (buffer + used, size - used, "%s%s", used ? "|" : "", *choice);
        if (n < 0 || (size_t) n >= size - used)
            break;
        used += (size_t) n;
    }
}

//  The accepted values of an option, for --help ("0..65535") and errors.
static void
s_format_range (const s_option_t *option, char *buffer, size_t size)
{
    char low[32], high[32];
    buffer[0] = 0;
    switch (option->type) {
        case S_INT:
            snprintf (buffer, size, "%" PRId64 "..%" PRId64, option->min, option->max);
            break;
        case S_DURATION:
            s_format_duration (option->min, low, sizeof (low));
            s_format_duration (option->max, high, sizeof (high));
            snprintf (buffer, size, "%s..%s", low, high);
            break;
        case S_SIZE:
            s_format_size (option->min, low, sizeof (low));
            s_format_size (option->max, high, sizeof (high));
            snprintf (buffer, size, "%s..%s", low, high);
            break;
        case S_ENUM: s_format_choices (option, buffer, size); break;
        default: break;
    }
}

//  What a valid value looks like, for an error message. `syntax_ok` says
//  the value parsed but was out of range.
static void
s_expected (const s_option_t *option, bool syntax_ok, char *buffer, size_t size)
{
    char range[128];
    s_format_range (option, range, sizeof (range));
    switch (option->type) {
        case S_INT: snprintf (buffer, size, "an integer %s", range); break;
        case S_DURATION:
            if (syntax_ok)
                snprintf (buffer, size, "a duration in %s", range);
            else
                snprintf (buffer, size, "a duration like 500ms, 10s, 7d");
            break;
        case S_SIZE:
            if (syntax_ok)
                snprintf (buffer, size, "a size in %s", range);
            else
                snprintf (buffer, size, "a size like 512, 64KiB, 1MiB");
            break;
        case S_BOOL: snprintf (buffer, size, "true/false, yes/no, on/off or 1/0"); break;
        case S_ENUM: snprintf (buffer, size, "one of %s", range); break;
        case S_NAMES:
            snprintf (buffer, size, "all, or a comma-separated list of actor names");
            break;
        default: snprintf (buffer, size, "a non-empty value"); break;
    }
}

//  Parses text as option's type into *value. On a bad value returns -1 and
//  sets *syntax_ok (true when only the range was wrong).
static int
s_parse (const s_option_t *option, const char *text, s_value_t *value, bool *syntax_ok)
{
    *syntax_ok = false;
    int rc = -1;
    switch (option->type) {
        case S_STRING:
            if (*text == 0)
                return -1;
            value->string = strdup (text);
            return value->string ? 0 : -1;
        case S_OPTIONAL:
            value->string = NULL;
            if (*text == 0)
                return 0;
            value->string = strdup (text);
            return value->string ? 0 : -1;
        case S_ENDPOINT:
            value->string = NULL;
            if (*text == 0 || strcasecmp (text, "off") == 0)
                return 0;
            value->string = strdup (text);
            return value->string ? 0 : -1;
        case S_NAMES: value->string = s_parse_names (text); return value->string ? 0 : -1;
        case S_ENUM:
            for (const char *const *choice = option->choices; *choice; choice++)
                if (strcasecmp (text, *choice) == 0) {
                    value->string = strdup (*choice);
                    return value->string ? 0 : -1;
                }
            return -1;
        case S_BOOL: return vw_config_parse_bool (text, &value->boolean);
        case S_INT: rc = s_parse_int (text, &value->number); break;
        case S_DURATION: rc = vw_config_parse_duration (text, &value->number); break;
        case S_SIZE: rc = vw_config_parse_size (text, &value->number); break;
    }
    if (rc != 0)
        return -1;
    *syntax_ok = true;
    return value->number >= option->min && value->number <= option->max ? 0 : -1;
}

static void
s_print_origin (const s_origin_t *origin, char *buffer, size_t size)
{
    if (origin->source == S_FROM_FILE)
        snprintf (buffer, size, "%s in config file %s", origin->name, origin->file);
    else
        snprintf (buffer, size, "%s", origin->name);
}

//  Parses text and stores it in option `index` of self, recording the
//  source. Prints one line to ctx->err and returns -1 on a bad value.
static int
s_set (s_config_t *self, size_t index, const char *text, const s_origin_t *origin, s_ctx_t *ctx)
{
    const s_option_t *option = &s_options[index];
    void *field = (char *) &self->public + option->offset;
    s_value_t value;
    bool syntax_ok;
    if (s_parse (option, text, &value, &syntax_ok)) {
        char expected[160], where[512], shown[80];
        s_expected (option, syntax_ok, expected, sizeof (expected));
        s_print_origin (origin, where, sizeof (where));
        if (option->secret)
            s_error (ctx, "invalid value for %s (expected %s)", where, expected);
        else {
            s_sanitize (text, shown, sizeof (shown));
            s_error (ctx, "invalid value '%s' for %s (expected %s)", shown, where, expected);
        }
        return -1;
    }
    switch (option->type) {
        case S_INT: *(int *) field = (int) value.number; break;
        case S_DURATION:
        case S_SIZE: *(int64_t *) field = value.number; break;
        case S_BOOL: *(bool *) field = value.boolean; break;
        default: {
            char **string = field;
            //  A secret replaced by a higher source leaves no copy behind
            if (option->secret && *string)
                explicit_bzero (*string, strlen (*string));
            free (*string);
            *string = value.string;
            break;
        }
    }
    self->source[index] = (unsigned char) origin->source;
    return 0;
}

static void
s_free_strings (vw_config_t *config)
{
    for (size_t index = 0; index < S_OPTION_COUNT; index++) {
        const s_option_t *option = &s_options[index];
        switch (option->type) {
            case S_INT:
            case S_DURATION:
            case S_SIZE:
            case S_BOOL: break;
            default: {
                void *address = (char *) config + option->offset;
                char **field = address;
                if (option->secret && *field)
                    explicit_bzero (*field, strlen (*field));
                free (*field);
                *field = NULL;
            }
        }
    }
}

static int
s_find_key (const char *key)
{
    for (size_t index = 0; index < S_OPTION_COUNT; index++)
        if (streq (s_options[index].key, key))
            return (int) index;
    return -1;
}

vw_config_t *
vw_config_new_defaults (void)
{
    s_config_t *self = calloc (1, sizeof (s_config_t));
    if (!self)
        return NULL;
    //  The defaults are ours and always parse; only memory can run out, and
    //  the caller reports that
    s_ctx_t ctx = {S_PRODUCT, NULL, NULL};
    for (size_t index = 0; index < S_OPTION_COUNT; index++) {
        const s_option_t *option = &s_options[index];
        s_origin_t origin = {S_FROM_DEFAULT, option->key, NULL};
        //  Options without a default start as zero/NULL from calloc
        if (option->defval && s_set (self, index, option->defval, &origin, &ctx)) {
            vw_config_t *config = &self->public;
            vw_config_destroy (&config);
            return NULL;
        }
    }
    return &self->public;
}

void
vw_config_destroy (vw_config_t **config_p)
{
    assert (config_p);
    if (*config_p) {
        s_config_t *self = (s_config_t *) *config_p;
        s_free_strings (&self->public);
        free (self);
        *config_p = NULL;
    }
}

const char *
vw_config_source (const vw_config_t *config, const char *key)
{
    if (!config || !key)
        return NULL;
    const s_config_t *self = (const s_config_t *) config;
    int index = s_find_key (key);
    return index >= 0 ? s_source_names[self->source[index]] : NULL;
}

static void
s_print_help (s_ctx_t *ctx)
{
    FILE *out = ctx->out;
    char left[128], range[128], shown[64];
    int width = 0;
    for (size_t index = 0; index < S_OPTION_COUNT; index++) {
        const s_option_t *option = &s_options[index];
        int n = snprintf (left, sizeof (left), "%s %s",
                          option->flag ? option->flag : "(env/file only)", option->metavar);
        if (n > width)
            width = n;
    }
    fprintf (out, "Usage: %s [OPTION]...\n", ctx->prog);
    fprintf (out, "Command-and-control backend for ViWorkS gateway agents.\n\n");
    fprintf (out, "Options (each line: flag, what it sets, accepted values, default,\n"
                  "environment variable):\n");
    for (size_t index = 0; index < S_OPTION_COUNT; index++) {
        const s_option_t *option = &s_options[index];
        snprintf (left, sizeof (left), "%s %s", option->flag ? option->flag : "(env/file only)",
                  option->metavar);
        s_format_range (option, range, sizeof (range));
        //  Defaults come from the table, never from the environment, so a
        //  secret can never show up here
        if (option->secret || !option->defval)
            snprintf (shown, sizeof (shown), "none");
        else
            snprintf (shown, sizeof (shown), "%s", option->defval);
        fprintf (out, "  %-*s  %s (%s%sdefault %s; env %s%s%s)\n", width, left, option->help, range,
                 *range ? "; " : "", shown, option->env, option->legacy_env ? " or " : "",
                 option->legacy_env ? option->legacy_env : "");
    }
    fprintf (out, "  %-*s  %s\n", width, "-h, --help", "print this help and exit");
    fprintf (out, "  %-*s  %s\n", width, "--version", "print the version and exit");
    fprintf (out,
             "\n"
             "Precedence: command-line flags > environment > config file > defaults.\n"
             "Flags take \"--name value\" or \"--name=value\". Every option has an environment\n"
             "variable VIWORKS_<KEY> (the key upper-cased, '.' as '_'; the seed's DATABASE_URL,\n"
             "JWT_SECRET and LOG_LEVEL also work, VIWORKS_* wins). Secrets are not accepted as\n"
             "flags, since any user of the host can read a process's arguments.\n"
             "\n"
             "The config file (--config FILE or VIWORKS_CONFIG) is ZPL: the key's first part is\n"
             "a section, the rest a 'name = value' line indented by 4 spaces; unknown keys\n"
             "are an error. For example:\n"
             "\n"
             "http\n"
             "    port = 8080\n"
             "registry\n"
             "    stale_after = 7d\n"
             "actors = all\n"
             "\n"
             "Durations: 250ms, 10s, 5m, 2h, 7d or plain milliseconds. Sizes: 512, 64KiB,\n"
             "1MiB, 1GiB (KB/MB/GB are powers of 1000). Booleans: true/false, yes/no, on/off,\n"
             "1/0. An empty value unsets an optional setting; \"off\" disables an endpoint.\n");
}

static int
s_find_flag (const char *name, size_t length)
{
    for (size_t index = 0; index < S_OPTION_COUNT; index++) {
        const char *flag = s_options[index].flag;
        if (flag && strlen (flag) == length && memcmp (flag, name, length) == 0)
            return (int) index;
    }
    return -1;
}

//  The option without a flag that "--name" would have named ("--jwt-secret"
//  for jwt.secret), or -1.
static int
s_find_flagless (const char *name, size_t length)
{
    char key[80];
    if (length <= 2 || length - 2 >= sizeof (key) || strncmp (name, "--", 2) != 0)
        return -1;
    memcpy (key, name + 2, length - 2);
    key[length - 2] = 0;
    for (char *p = key; *p; p++)
        if (*p == '-')
            *p = '.';
    int index = s_find_key (key);
    return index >= 0 && !s_options[index].flag ? index : -1;
}

static int
s_find_path (const char *path)
{
    for (size_t index = 0; index < S_OPTION_COUNT; index++)
        if (s_options[index].path && streq (s_options[index].path, path))
            return (int) index;
    return -1;
}

//  True if path is a section some option lives under ("http" for "http/port").
static bool
s_is_section (const char *path)
{
    size_t length = strlen (path);
    for (size_t index = 0; index < S_OPTION_COUNT; index++) {
        const char *option_path = s_options[index].path;
        if (option_path && strncmp (option_path, path, length) == 0 && option_path[length] == '/')
            return true;
    }
    return false;
}

//  First pass over argv: finds the flags and their values without applying
//  them (flags are applied last, after the file and the environment).
//  Returns 0, 1 for --help/--version (printed), or 2 (error printed).
static int
s_scan_argv (int argc, char **argv, s_flag_t *flags, size_t *flag_count, s_ctx_t *ctx)
{
    *flag_count = 0;
    for (int arg = 1; arg < argc; arg++) {
        const char *text = argv[arg];
        char shown[80];
        if (streq (text, "--help") || streq (text, "-h")) {
            s_print_help (ctx);
            return 1;
        }
        if (streq (text, "--version")) {
            fprintf (ctx->out, S_PRODUCT " %s\n", VW_VERSION);
            return 1;
        }
        if (streq (text, "--")) {
            //  Nothing positional is accepted, so anything after is stray
            if (arg + 1 < argc) {
                s_sanitize (argv[arg + 1], shown, sizeof (shown));
                s_error (ctx, "unexpected argument '%s' (see --help)", shown);
                return 2;
            }
            break;
        }
        if (text[0] != '-') {
            s_sanitize (text, shown, sizeof (shown));
            s_error (ctx, "unexpected argument '%s' (see --help)", shown);
            return 2;
        }
        const char *equals = strchr (text, '=');
        size_t length = equals ? (size_t) (equals - text) : strlen (text);
        int index = strncmp (text, "--", 2) == 0 ? s_find_flag (text, length) : -1;
        if (index < 0) {
            char name[80];
            snprintf (name, sizeof (name), "%.*s", (int) (length < 64 ? length : 64), text);
            s_sanitize (name, shown, sizeof (shown));
            //  A flag spelled like a flagless key (--jwt-secret) gets told
            //  where it can be set instead; the value is never echoed
            int hidden = s_find_flagless (text, length);
            if (hidden >= 0) {
                s_error (ctx,
                         "option '%s' is not accepted on the command line "
                         "(set %s or %s in the config file)",
                         shown, s_options[hidden].env, s_options[hidden].path);
                return 2;
            }
            s_error (ctx, "unknown option '%s' (see --help)", shown);
            return 2;
        }
        const char *value = NULL;
        if (equals)
            value = equals + 1;
        else if (s_options[index].type == S_BOOL)
            value = "true";
        else if (arg + 1 < argc && strncmp (argv[arg + 1], "--", 2) != 0)
            value = argv[++arg];
        else {
            s_error (ctx, "option %s needs a value", s_options[index].flag);
            return 2;
        }
        flags[*flag_count].index = (size_t) index;
        flags[*flag_count].value = value;
        (*flag_count)++;
    }
    return 0;
}

typedef struct {
    s_config_t *self;
    s_ctx_t *ctx;
    const char *file;
} s_walk_t;

static int
s_walk_file (zconfig_t *node, const char *prefix, s_walk_t *walk)
{
    for (zconfig_t *child = zconfig_child (node); child; child = zconfig_next (child)) {
        char path[256];
        const char *name = zconfig_name (child);
        const char *value = zconfig_value (child);
        if (!value)
            value = "";
        if (*prefix)
            snprintf (path, sizeof (path), "%s/%s", prefix, name ? name : "");
        else
            snprintf (path, sizeof (path), "%s", name ? name : "");
        int index = s_find_path (path);
        bool has_children = zconfig_child (child) != NULL;
        int dotted;
        //  An option cannot have children: report those before its value
        if (index >= 0 && has_children && s_walk_file (child, path, walk))
            return -1;
        if (index >= 0) {
            s_origin_t origin = {S_FROM_FILE, s_options[index].path, walk->file};
            if (s_set (walk->self, (size_t) index, value, &origin, walk->ctx))
                return -1;
        }
        else if (!(s_is_section (path) && *value == 0)) {
            char shown[128];
            s_sanitize (path, shown, sizeof (shown));
            if (streq (path, "config"))
                s_error (walk->ctx, "key 'config' cannot be set in config file %s", walk->file);
            else if (!has_children && (dotted = s_find_key (path)) >= 0 && s_options[dotted].path &&
                     strchr (s_options[dotted].path, '/')) {
                //  "http.port = 1" at the top level: say how it is spelled
                const char *option_path = s_options[dotted].path;
                const char *slash = strchr (option_path, '/');
                s_error (walk->ctx,
                         "unknown key '%s' in config file %s (write '%s = ...' in section '%.*s')",
                         shown, walk->file, slash + 1, (int) (slash - option_path), option_path);
            }
            else
                s_error (walk->ctx, "unknown key '%s' in config file %s", shown, walk->file);
            return -1;
        }
        if (index < 0 && has_children && s_walk_file (child, path, walk))
            return -1;
    }
    return 0;
}

//  Reads a whole regular file into a fresh string; NULL with errno set.
static char *
s_read_file (const char *file)
{
    FILE *handle = fopen (file, "r");
    if (!handle)
        return NULL;
    struct stat status;
    if (fstat (fileno (handle), &status) || !S_ISREG (status.st_mode)) {
        fclose (handle);
        errno = EINVAL;
        return NULL;
    }
    size_t size = (size_t) status.st_size;
    char *text = malloc (size + 1);
    size_t got = text ? fread (text, 1, size, handle) : 0;
    bool failed = !text || ferror (handle);
    fclose (handle);
    if (failed) {
        free (text);
        errno = EIO;
        return NULL;
    }
    text[got] = 0;
    return text;
}

static int
s_load_file (s_config_t *self, const char *file, const char *named_by, s_ctx_t *ctx)
{
    char shown[256];
    s_sanitize (file, shown, sizeof (shown));
    //  Read it ourselves rather than with zconfig_load: that cannot tell a
    //  missing file from a bad one, leaks on a parse error and "loads" a
    //  directory as an empty tree
    char *text = s_read_file (file);
    if (!text) {
        s_error (ctx, "cannot read config file %s (from %s): %s", shown, named_by,
                 errno == EINVAL ? "not a regular file" : strerror (errno));
        return -1;
    }
    zconfig_t *root = zconfig_str_load (text);
    free (text);
    if (!root) {
        s_error (ctx,
                 "cannot parse config file %s (from %s): expected ZPL, sections and "
                 "'name = value' lines indented by 4 spaces",
                 shown, named_by);
        return -1;
    }
    s_walk_t walk = {self, ctx, shown};
    int rc = s_walk_file (root, "", &walk);
    zconfig_destroy (&root);
    return rc;
}

static int
s_load_env (s_config_t *self, s_ctx_t *ctx)
{
    for (size_t index = 0; index < S_OPTION_COUNT; index++) {
        const s_option_t *option = &s_options[index];
        const char *name = option->env;
        const char *value = getenv (name);
        if (!value && option->legacy_env) {
            name = option->legacy_env;
            value = getenv (name);
        }
        s_origin_t origin = {S_FROM_ENV, name, NULL};
        if (value && s_set (self, index, value, &origin, ctx))
            return -1;
    }
    return 0;
}

//  Rules that involve more than one option.
static int
s_check (s_config_t *self, s_ctx_t *ctx)
{
    const vw_config_t *config = &self->public;
    char perr[200] = "";
    vw_proxies_t *proxies = vw_proxies_parse (config->trusted_proxies, perr, sizeof perr);
    vw_proxies_destroy (&proxies);
    if (*perr) {
        s_error (ctx, "http.trusted_proxies: %s", perr);
        return -1;
    }
    if (!config->admin_curve_cert != !config->admin_curve_clients) {
        s_error (ctx,
                 "%s is set without %s (CURVE needs the server's certificate and the "
                 "clients allowed)",
                 config->admin_curve_cert ? "admin.curve_cert" : "admin.curve_clients",
                 config->admin_curve_cert ? "admin.curve_clients" : "admin.curve_cert");
        return -1;
    }
    if (config->broker_curve_clients && !config->broker_curve_cert) {
        s_error (ctx, "broker.curve_clients is set without broker.curve_cert");
        return -1;
    }
    if (config->broker_curve_server && !config->broker_curve_cert) {
        s_error (ctx, "broker.curve_server is set without broker.curve_cert (the actor process's "
                      "own certificate)");
        return -1;
    }
    if (config->broker_connect && config->broker_curve_cert && !config->broker_curve_server) {
        s_error (ctx, "broker.curve_cert is set with broker.connect but broker.curve_server (the "
                      "core's public certificate) is not");
        return -1;
    }
    if (config->broker_bind && config->broker_curve_cert && !config->broker_curve_clients) {
        s_error (ctx, "broker.curve_cert is set with broker.bind but broker.curve_clients (the "
                      "actor processes allowed) is not");
        return -1;
    }
    if (config->node &&
        (!*config->node || strlen (config->node) > 40 ||
         strspn (config->node, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "0123456789.-_") != strlen (config->node))) {
        s_error (ctx, "node '%s': 1 to 40 letters, digits, '.', '-' or '_'", config->node);
        return -1;
    }
    if (!config->tls_cert != !config->tls_key) {
        s_error (ctx, "%s is set without %s (TLS needs both a certificate and a key)",
                 config->tls_cert ? "tls.cert" : "tls.key",
                 config->tls_cert ? "tls.key" : "tls.cert");
        return -1;
    }
    return 0;
}

//  Applies file, environment and flags over the defaults, in that order so
//  that each overrides the one before. Returns -1 after printing an error.
static int
s_apply_sources (s_config_t *self, const s_flag_t *flags, size_t flag_count, s_ctx_t *ctx)
{
    //  The file is named by the last --config, else VIWORKS_CONFIG
    const char *file = getenv ("VIWORKS_CONFIG");
    const char *named_by = "VIWORKS_CONFIG";
    for (size_t i = 0; i < flag_count; i++)
        if (streq (s_options[flags[i].index].key, "config")) {
            file = flags[i].value;
            named_by = "--config";
        }
    if (file && *file && s_load_file (self, file, named_by, ctx))
        return -1;
    if (s_load_env (self, ctx))
        return -1;
    for (size_t i = 0; i < flag_count; i++) {
        const s_option_t *option = &s_options[flags[i].index];
        s_origin_t origin = {S_FROM_FLAG, option->flag, NULL};
        if (s_set (self, flags[i].index, flags[i].value, &origin, ctx))
            return -1;
    }
    return s_check (self, ctx);
}

int
vw_config_load (vw_config_t **config_p, int argc, char **argv, FILE *out, FILE *err)
{
    assert (config_p);
    *config_p = NULL;
    s_ctx_t ctx = {S_PRODUCT, out ? out : stdout, err ? err : stderr};
    if (argc > 0 && argv && argv[0] && *argv[0]) {
        const char *slash = strrchr (argv[0], '/');
        ctx.prog = slash && slash[1] ? slash + 1 : argv[0];
    }
    s_flag_t *flags = calloc (argc > 0 ? (size_t) argc : 1, sizeof (s_flag_t));
    vw_config_t *config = vw_config_new_defaults ();
    size_t flag_count = 0;
    int rc;
    if (!flags || !config) {
        s_error (&ctx, "out of memory");
        rc = 2;
    }
    else {
        rc = s_scan_argv (argc, argv, flags, &flag_count, &ctx);
        if (rc == 0 && s_apply_sources ((s_config_t *) config, flags, flag_count, &ctx))
            rc = 2;
    }
    if (rc == 0) {
        *config_p = config;
        config = NULL;
    }
    vw_config_destroy (&config);
    free (flags);
    return rc;
}
