/*  test_config - vw_config: defaults, value parsers, the four sources and
    their precedence, legacy variables, error messages, --help, --version
    and vw_config_source.

    Every case runs with the options' environment variables cleared and puts
    back what was there before, so the developer's shell cannot leak in.
*/
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vw_config.h"

#ifndef VW_VERSION
#define VW_VERSION "dev"
#endif

#define PROG "/opt/viworks/bin/viworks-backend"

//  What --help must show, written out by hand so the test checks the table
//  in vw_config.c rather than repeating it.
typedef struct {
    const char *key;
    const char *flag;  //  NULL: env and file only
    const char *env;
    const char *legacy_env;
    const char *defval;  //  as --help shows it
} expected_option_t;

static const expected_option_t s_expected[] = {
    {"config", "--config", "VIWORKS_CONFIG", NULL, "none"},
    {"http.addr", "--http-addr", "VIWORKS_HTTP_ADDR", NULL, "0.0.0.0"},
    {"http.port", "--http-port", "VIWORKS_HTTP_PORT", NULL, "8080"},
    {"ws.addr", "--ws-addr", "VIWORKS_WS_ADDR", NULL, "0.0.0.0"},
    {"ws.port", "--ws-port", "VIWORKS_WS_PORT", NULL, "8081"},
    {"ws.max_frame", "--ws-max-frame", "VIWORKS_WS_MAX_FRAME", NULL, "1MiB"},
    {"ws.out_max", "--ws-out-max", "VIWORKS_WS_OUT_MAX", NULL, "8MiB"},
    {"ws.max_pending_hellos", "--ws-max-pending-hellos", "VIWORKS_WS_MAX_PENDING_HELLOS", NULL,
     "512"},
    {"tls.cert", "--tls-cert", "VIWORKS_TLS_CERT", NULL, "none"},
    {"tls.key", "--tls-key", "VIWORKS_TLS_KEY", NULL, "none"},
    {"admin.endpoint", "--admin-endpoint", "VIWORKS_ADMIN_ENDPOINT", NULL, "tcp://127.0.0.1:5555"},
    {"events.endpoint", "--events-endpoint", "VIWORKS_EVENTS_ENDPOINT", NULL,
     "tcp://127.0.0.1:5556"},
    {"broker.bind", "--broker-bind", "VIWORKS_BROKER_BIND", NULL, "none"},
    {"broker.connect", "--broker-connect", "VIWORKS_BROKER_CONNECT", NULL, "none"},
    {"actors", "--actors", "VIWORKS_ACTORS", NULL, "all"},
    {"database.url", "--database-url", "VIWORKS_DATABASE_URL", "DATABASE_URL", "./data/viworks.db"},
    {"store.synchronous", "--store-synchronous", "VIWORKS_STORE_SYNCHRONOUS", NULL, "normal"},
    {"jwt.secret", NULL, "VIWORKS_JWT_SECRET", "JWT_SECRET", "none"},
    {"log.level", "--log-level", "VIWORKS_LOG_LEVEL", "LOG_LEVEL", "info"},
    {"log.format", "--log-format", "VIWORKS_LOG_FORMAT", NULL, "json"},
    {"registry.heartbeat_interval", "--heartbeat-interval", "VIWORKS_REGISTRY_HEARTBEAT_INTERVAL",
     NULL, "10s"},
    {"registry.stale_after", "--stale-after", "VIWORKS_REGISTRY_STALE_AFTER", NULL, "7d"},
    {"health.timeout", "--health-timeout", "VIWORKS_HEALTH_TIMEOUT", NULL, "250ms"},
    {"shutdown.timeout", "--shutdown-timeout", "VIWORKS_SHUTDOWN_TIMEOUT", NULL, "4s"},
};

#define EXPECTED_COUNT (sizeof (s_expected) / sizeof (s_expected[0]))

// --------------------------------------------------------------------------
//  Environment: cleared before each case, restored after

static char *s_saved_env[2 * EXPECTED_COUNT];

static const char *
s_env_name (size_t slot)
{
    const expected_option_t *option = &s_expected[slot / 2];
    return slot % 2 ? option->legacy_env : option->env;
}

static int
s_env_setup (void **state)
{
    for (size_t slot = 0; slot < 2 * EXPECTED_COUNT; slot++) {
        const char *name = s_env_name (slot);
        const char *value = name ? getenv (name) : NULL;
        s_saved_env[slot] = value ? strdup (value) : NULL;
        if (name)
            unsetenv (name);
    }
    return 0;
}

static int
s_env_teardown (void **state)
{
    for (size_t slot = 0; slot < 2 * EXPECTED_COUNT; slot++) {
        const char *name = s_env_name (slot);
        if (!name)
            continue;
        if (s_saved_env[slot])
            setenv (name, s_saved_env[slot], 1);
        else
            unsetenv (name);
        free (s_saved_env[slot]);
        s_saved_env[slot] = NULL;
    }
    return 0;
}

// --------------------------------------------------------------------------
//  Helpers

typedef struct {
    int rc;
    vw_config_t *config;
    char *out;
    size_t out_size;
    char *err;
    size_t err_size;
} run_t;

static void
s_run_argv (run_t *run, int argc, char **argv)
{
    FILE *out = open_memstream (&run->out, &run->out_size);
    FILE *err = open_memstream (&run->err, &run->err_size);
    assert_non_null (out);
    assert_non_null (err);
    run->config = NULL;
    run->rc = vw_config_load (&run->config, argc, argv, out, err);
    fclose (out);
    fclose (err);
}

//  Runs vw_config_load with PROG and a NULL-terminated list of arguments.
static void
s_run (run_t *run, ...)
{
    char *argv[32] = {(char *) PROG};
    int argc = 1;
    va_list args;
    va_start (args, run);
    for (char *arg = va_arg (args, char *); arg; arg = va_arg (args, char *)) {
        assert_true (argc < 31);
        argv[argc++] = arg;
    }
    va_end (args);
    s_run_argv (run, argc, argv);
}

static void
s_run_done (run_t *run)
{
    vw_config_destroy (&run->config);
    free (run->out);
    free (run->err);
    run->out = run->err = NULL;
}

//  Writes text to a fresh temporary file; returns its path (caller frees
//  and unlinks).
static char *
s_temp_file (const char *text)
{
    char *path = strdup ("/tmp/test_config_XXXXXX");
    assert_non_null (path);
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    size_t length = strlen (text);
    assert_int_equal (write (fd, text, length), (ssize_t) length);
    close (fd);
    return path;
}

static void
s_temp_done (char *path)
{
    unlink (path);
    free (path);
}

static size_t
s_count_lines (const char *text)
{
    size_t lines = 0;
    for (; *text; text++)
        lines += *text == '\n';
    return lines;
}

//  A failed load: status 2, no config, nothing on out, exactly one line on
//  err that starts with the program's name.
static void
s_assert_one_error (const run_t *run)
{
    assert_int_equal (run->rc, 2);
    assert_null (run->config);
    assert_int_equal (run->out_size, 0);
    assert_int_equal (s_count_lines (run->err), 1);
    assert_true (run->err_size > 0 && run->err[run->err_size - 1] == '\n');
    assert_true (strncmp (run->err, "viworks-backend: ", 17) == 0);
}

static void
s_assert_defaults (const vw_config_t *config)
{
    assert_null (config->config_file);
    assert_string_equal (config->http_addr, "0.0.0.0");
    assert_int_equal (config->http_port, 8080);
    assert_string_equal (config->ws_addr, "0.0.0.0");
    assert_int_equal (config->ws_port, 8081);
    assert_int_equal (config->ws_max_frame, 1024 * 1024);
    assert_int_equal (config->ws_out_max, 8 * 1024 * 1024);
    assert_null (config->tls_cert);
    assert_null (config->tls_key);
    assert_string_equal (config->admin_endpoint, "tcp://127.0.0.1:5555");
    assert_string_equal (config->events_endpoint, "tcp://127.0.0.1:5556");
    assert_null (config->broker_bind);
    assert_null (config->broker_connect);
    assert_string_equal (config->actors, "all");
    assert_string_equal (config->database_url, "./data/viworks.db");
    assert_string_equal (config->store_synchronous, "normal");
    assert_null (config->jwt_secret);
    assert_string_equal (config->log_level, "info");
    assert_string_equal (config->log_format, "json");
    assert_int_equal (config->heartbeat_interval_ms, 10 * 1000);
    assert_int_equal (config->stale_after_ms, INT64_C (7) * 24 * 3600 * 1000);
    assert_int_equal (config->health_timeout_ms, 250);
    assert_int_equal (config->shutdown_timeout_ms, 4000);
    for (size_t i = 0; i < EXPECTED_COUNT; i++)
        assert_string_equal (vw_config_source (config, s_expected[i].key), "default");
}

// --------------------------------------------------------------------------
//  Defaults

static void
test_defaults (void **state)
{
    vw_config_t *config = vw_config_new_defaults ();
    assert_non_null (config);
    s_assert_defaults (config);
    vw_config_destroy (&config);
    assert_null (config);
    vw_config_destroy (&config);  //  safe twice
}

static void
test_load_with_nothing_set_gives_defaults (void **state)
{
    run_t run;
    s_run (&run, NULL);
    assert_int_equal (run.rc, 0);
    assert_non_null (run.config);
    s_assert_defaults (run.config);
    assert_int_equal (run.out_size, 0);
    assert_int_equal (run.err_size, 0);
    s_run_done (&run);

    //  No argv at all is not an error either
    s_run_argv (&run, 0, NULL);
    assert_int_equal (run.rc, 0);
    s_assert_defaults (run.config);
    s_run_done (&run);
}

// --------------------------------------------------------------------------
//  Parsers

static void
test_parse_duration (void **state)
{
    static const struct {
        const char *text;
        int64_t ms;
    } good[] = {
        {"250ms", 250},
        {"10s", 10000},
        {"5m", 300000},
        {"2h", 7200000},
        {"7d", INT64_C (604800000)},
        {"1500", 1500},
        {"0", 0},
        {"0ms", 0},
        {"9223372036854775807", INT64_MAX},
        {"106751991167d", INT64_C (106751991167) * 86400000},
    };
    for (size_t i = 0; i < sizeof (good) / sizeof (good[0]); i++) {
        int64_t ms = -42;
        assert_int_equal (vw_config_parse_duration (good[i].text, &ms), 0);
        assert_int_equal (ms, good[i].ms);
    }
    static const char *const bad[] = {
        "",
        "5x",
        "-1s",
        "-5",
        "+5s",
        "1.5s",
        " 5s",
        "5s ",
        "5 s",
        "s",
        "ms",
        "5sec",
        "5S",
        "5ms5",
        "9223372036854775808",    //  one past INT64_MAX
        "99999999999999999999s",  //  digits overflow
        "106751991168d",          //  the unit overflows
        "9223372036854776s",
    };
    for (size_t i = 0; i < sizeof (bad) / sizeof (bad[0]); i++) {
        int64_t ms = -42;
        assert_int_equal (vw_config_parse_duration (bad[i], &ms), -1);
        assert_int_equal (ms, -42);  //  untouched on failure
    }
    int64_t ms;
    assert_int_equal (vw_config_parse_duration (NULL, &ms), -1);
    assert_int_equal (vw_config_parse_duration ("1s", NULL), -1);
}

static void
test_parse_size (void **state)
{
    static const struct {
        const char *text;
        int64_t bytes;
    } good[] = {
        {"512", 512},
        {"0", 0},
        {"10B", 10},
        {"64KiB", 64 * 1024},
        {"1MiB", 1024 * 1024},
        {"1GiB", INT64_C (1024) * 1024 * 1024},
        {"2K", 2048},
        {"3M", 3 * 1024 * 1024},
        {"1G", INT64_C (1024) * 1024 * 1024},
        {"1KB", 1000},
        {"5MB", 5000000},
        {"2GB", INT64_C (2000000000)},
        {"1kib", 1024},
        {"9223372036854775807", INT64_MAX},
    };
    for (size_t i = 0; i < sizeof (good) / sizeof (good[0]); i++) {
        int64_t bytes = -42;
        assert_int_equal (vw_config_parse_size (good[i].text, &bytes), 0);
        assert_int_equal (bytes, good[i].bytes);
    }
    static const char *const bad[] = {
        "",
        "KiB",
        "-1",
        "+1",
        "1.5MiB",
        "1 MiB",
        "1MiBs",
        "1TiB",
        "1x",
        " 512",
        "512 ",
        "9223372036854775807K",
        "99999999999999999999",
    };
    for (size_t i = 0; i < sizeof (bad) / sizeof (bad[0]); i++) {
        int64_t bytes = -42;
        assert_int_equal (vw_config_parse_size (bad[i], &bytes), -1);
        assert_int_equal (bytes, -42);
    }
    int64_t bytes;
    assert_int_equal (vw_config_parse_size (NULL, &bytes), -1);
}

static void
test_parse_bool (void **state)
{
    static const char *const yes[] = {"true", "yes", "on", "1", "TRUE", "Yes", "On"};
    static const char *const no[] = {"false", "no", "off", "0", "FALSE", "No", "OFF"};
    for (size_t i = 0; i < sizeof (yes) / sizeof (yes[0]); i++) {
        bool value = false;
        assert_int_equal (vw_config_parse_bool (yes[i], &value), 0);
        assert_true (value);
    }
    for (size_t i = 0; i < sizeof (no) / sizeof (no[0]); i++) {
        bool value = true;
        assert_int_equal (vw_config_parse_bool (no[i], &value), 0);
        assert_false (value);
    }
    static const char *const bad[] = {"", "2", "y", "n", "truex", " true", "enabled", "-1"};
    for (size_t i = 0; i < sizeof (bad) / sizeof (bad[0]); i++) {
        bool value = true;
        assert_int_equal (vw_config_parse_bool (bad[i], &value), -1);
        assert_true (value);
    }
    bool value;
    assert_int_equal (vw_config_parse_bool (NULL, &value), -1);
}

// --------------------------------------------------------------------------
//  Sources and precedence

static void
test_precedence_all_four_sources (void **state)
{
    char *file = s_temp_file ("http\n"
                              "    port = 1111\n"
                              "registry\n"
                              "    stale_after = 1h\n");
    run_t run;

    //  flag > env > file > default, each on the same two options
    setenv ("VIWORKS_HTTP_PORT", "2222", 1);
    setenv ("VIWORKS_REGISTRY_STALE_AFTER", "2h", 1);
    s_run (&run, "--config", file, "--http-port", "3333", "--stale-after=3h", NULL);
    assert_int_equal (run.rc, 0);
    assert_int_equal (run.config->http_port, 3333);
    assert_string_equal (vw_config_source (run.config, "http.port"), "flag");
    assert_int_equal (run.config->stale_after_ms, 3 * 3600 * 1000);
    assert_string_equal (vw_config_source (run.config, "registry.stale_after"), "flag");
    s_run_done (&run);

    s_run (&run, "--config", file, NULL);
    assert_int_equal (run.rc, 0);
    assert_int_equal (run.config->http_port, 2222);
    assert_string_equal (vw_config_source (run.config, "http.port"), "env");
    assert_int_equal (run.config->stale_after_ms, 2 * 3600 * 1000);
    assert_string_equal (vw_config_source (run.config, "registry.stale_after"), "env");
    s_run_done (&run);

    unsetenv ("VIWORKS_HTTP_PORT");
    unsetenv ("VIWORKS_REGISTRY_STALE_AFTER");
    s_run (&run, "--config", file, NULL);
    assert_int_equal (run.rc, 0);
    assert_int_equal (run.config->http_port, 1111);
    assert_string_equal (vw_config_source (run.config, "http.port"), "file");
    assert_int_equal (run.config->stale_after_ms, 3600 * 1000);
    assert_string_equal (vw_config_source (run.config, "registry.stale_after"), "file");
    assert_string_equal (run.config->config_file, file);
    assert_string_equal (vw_config_source (run.config, "config"), "flag");
    s_run_done (&run);

    s_run (&run, NULL);
    assert_int_equal (run.rc, 0);
    assert_int_equal (run.config->http_port, 8080);
    assert_string_equal (vw_config_source (run.config, "http.port"), "default");
    s_run_done (&run);

    //  A flag also beats the file when no environment is set
    s_run (&run, "--http-port=4444", "--config=", NULL);
    assert_int_equal (run.rc, 0);
    assert_int_equal (run.config->http_port, 4444);
    assert_null (run.config->config_file);
    s_run_done (&run);
    s_temp_done (file);
}

static void
test_config_file_named_by_env (void **state)
{
    char *from_env = s_temp_file ("ws\n    port = 7001\n");
    char *from_flag = s_temp_file ("ws\n    port = 7002\n");
    run_t run;

    setenv ("VIWORKS_CONFIG", from_env, 1);
    s_run (&run, NULL);
    assert_int_equal (run.rc, 0);
    assert_int_equal (run.config->ws_port, 7001);
    assert_string_equal (run.config->config_file, from_env);
    assert_string_equal (vw_config_source (run.config, "config"), "env");
    assert_string_equal (vw_config_source (run.config, "ws.port"), "file");
    s_run_done (&run);

    //  --config wins over VIWORKS_CONFIG; only its file is read
    s_run (&run, "--config", from_flag, NULL);
    assert_int_equal (run.rc, 0);
    assert_int_equal (run.config->ws_port, 7002);
    assert_string_equal (run.config->config_file, from_flag);
    assert_string_equal (vw_config_source (run.config, "config"), "flag");
    s_run_done (&run);

    //  Empty means no file
    setenv ("VIWORKS_CONFIG", "", 1);
    s_run (&run, NULL);
    assert_int_equal (run.rc, 0);
    assert_null (run.config->config_file);
    assert_int_equal (run.config->ws_port, 8081);
    s_run_done (&run);

    unsetenv ("VIWORKS_CONFIG");
    s_temp_done (from_env);
    s_temp_done (from_flag);
}

static void
test_file_sets_every_type (void **state)
{
    char *file = s_temp_file ("#   A full config file\n"
                              "http\n"
                              "    addr = \"127.0.0.1\"\n"
                              "    port = 0            # any free port\n"
                              "ws\n"
                              "    addr = 10.0.0.1\n"
                              "    port = 9443\n"
                              "    max_frame = 64KiB\n"
                              "    out_max = 1MiB\n"
                              "    max_pending_hellos = 64\n"
                              "tls\n"
                              "    cert = /etc/vw/cert.pem\n"
                              "    key = /etc/vw/key.pem\n"
                              "admin\n"
                              "    endpoint = off\n"
                              "events\n"
                              "    endpoint = \"\"\n"
                              "broker\n"
                              "    bind = tcp://*:5560\n"
                              "    connect = \"\"\n"
                              "actors = \"registry, dispatcher\"\n"
                              "database\n"
                              "    url = sqlite:///var/lib/vw/vw.db\n"
                              "store\n"
                              "    synchronous = FULL\n"
                              "jwt\n"
                              "    secret = \"from the file\"\n"
                              "log\n"
                              "    level = warn\n"
                              "    format = text\n"
                              "registry\n"
                              "    heartbeat_interval = 30s\n"
                              "    stale_after = 2h\n"
                              "health\n"
                              "    timeout = 1000\n"
                              "shutdown\n"
                              "    timeout = 100ms\n"
                              "tls\n");  //  an empty known section is harmless
    run_t run;
    s_run (&run, "--config", file, NULL);
    assert_int_equal (run.rc, 0);
    assert_int_equal (run.err_size, 0);
    vw_config_t *config = run.config;
    assert_string_equal (config->http_addr, "127.0.0.1");
    assert_int_equal (config->http_port, 0);
    assert_string_equal (config->ws_addr, "10.0.0.1");
    assert_int_equal (config->ws_port, 9443);
    assert_int_equal (config->ws_max_frame, 64 * 1024);
    assert_int_equal (config->ws_out_max, 1024 * 1024);
    assert_int_equal (config->ws_max_pending_hellos, 64);
    assert_string_equal (config->tls_cert, "/etc/vw/cert.pem");
    assert_string_equal (config->tls_key, "/etc/vw/key.pem");
    assert_null (config->admin_endpoint);
    assert_null (config->events_endpoint);
    assert_string_equal (config->broker_bind, "tcp://*:5560");
    assert_null (config->broker_connect);
    assert_string_equal (config->actors, "registry,dispatcher");
    assert_string_equal (config->database_url, "sqlite:///var/lib/vw/vw.db");
    assert_string_equal (config->store_synchronous, "full");
    assert_string_equal (config->jwt_secret, "from the file");
    assert_string_equal (config->log_level, "warn");
    assert_string_equal (config->log_format, "text");
    assert_int_equal (config->heartbeat_interval_ms, 30000);
    assert_int_equal (config->stale_after_ms, 2 * 3600 * 1000);
    assert_int_equal (config->health_timeout_ms, 1000);
    assert_int_equal (config->shutdown_timeout_ms, 100);
    for (size_t i = 0; i < EXPECTED_COUNT; i++)
        assert_string_equal (vw_config_source (config, s_expected[i].key),
                             strcmp (s_expected[i].key, "config") == 0 ? "flag" : "file");
    s_run_done (&run);
    s_temp_done (file);

    //  An empty section nothing lives in is an unknown key like any other
    file = s_temp_file ("http\n    port = 1\nnosuch\n");
    s_run (&run, "--config", file, NULL);
    s_assert_one_error (&run);
    assert_non_null (strstr (run.err, "unknown key 'nosuch'"));
    s_run_done (&run);
    s_temp_done (file);
}

static void
test_flag_forms (void **state)
{
    run_t run;
    s_run (&run, "--http-port", "9000", "--ws-port=9001", "--database-url=sqlite:///tmp/a=b.db",
           "--log-level", "debug", "--log-level", "warn", "--log-format", "TEXT",
           "--admin-endpoint", "off", "--events-endpoint=", "--tls-cert=", "--tls-key", "",
           "--actors", "registry,store", "--broker-connect", "tcp://hub:5560", "--health-timeout",
           "10ms", "--", NULL);
    assert_int_equal (run.rc, 0);
    assert_int_equal (run.err_size, 0);
    vw_config_t *config = run.config;
    assert_int_equal (config->http_port, 9000);
    assert_int_equal (config->ws_port, 9001);
    assert_string_equal (config->database_url, "sqlite:///tmp/a=b.db");
    assert_string_equal (config->log_level, "warn");   //  the last one wins
    assert_string_equal (config->log_format, "text");  //  canonical spelling
    assert_null (config->admin_endpoint);
    assert_null (config->events_endpoint);
    assert_null (config->tls_cert);
    assert_null (config->tls_key);
    assert_string_equal (config->actors, "registry,store");
    assert_string_equal (config->broker_connect, "tcp://hub:5560");
    assert_int_equal (config->health_timeout_ms, 10);
    assert_string_equal (vw_config_source (config, "admin.endpoint"), "flag");
    assert_string_equal (vw_config_source (config, "ws.addr"), "default");
    s_run_done (&run);

    //  A flag can unset a value that the environment set
    setenv ("VIWORKS_BROKER_BIND", "tcp://*:5560", 1);
    s_run (&run, "--broker-bind=", NULL);
    assert_int_equal (run.rc, 0);
    assert_null (run.config->broker_bind);
    assert_string_equal (vw_config_source (run.config, "broker.bind"), "flag");
    s_run_done (&run);
    unsetenv ("VIWORKS_BROKER_BIND");
}

static void
test_env_sets_values (void **state)
{
    setenv ("VIWORKS_HEALTH_TIMEOUT", "2s", 1);
    setenv ("VIWORKS_WS_MAX_FRAME", "2MiB", 1);
    setenv ("VIWORKS_WS_OUT_MAX", "256KiB", 1);
    setenv ("VIWORKS_ADMIN_ENDPOINT", "ipc:///tmp/vw-admin", 1);
    setenv ("VIWORKS_EVENTS_ENDPOINT", "OFF", 1);
    setenv ("VIWORKS_TLS_CERT", "", 1);  //  empty: unset
    run_t run;
    s_run (&run, NULL);
    assert_int_equal (run.rc, 0);
    assert_int_equal (run.config->health_timeout_ms, 2000);
    assert_int_equal (run.config->ws_max_frame, 2 * 1024 * 1024);
    assert_int_equal (run.config->ws_out_max, 256 * 1024);
    assert_string_equal (run.config->admin_endpoint, "ipc:///tmp/vw-admin");
    assert_null (run.config->events_endpoint);
    assert_null (run.config->tls_cert);
    assert_string_equal (vw_config_source (run.config, "tls.cert"), "env");
    assert_string_equal (vw_config_source (run.config, "health.timeout"), "env");
    s_run_done (&run);
    unsetenv ("VIWORKS_HEALTH_TIMEOUT");
    unsetenv ("VIWORKS_WS_MAX_FRAME");
    unsetenv ("VIWORKS_WS_OUT_MAX");
    unsetenv ("VIWORKS_ADMIN_ENDPOINT");
    unsetenv ("VIWORKS_EVENTS_ENDPOINT");
    unsetenv ("VIWORKS_TLS_CERT");
}

static void
test_legacy_env (void **state)
{
    run_t run;
    setenv ("DATABASE_URL", "sqlite:///legacy.db", 1);
    setenv ("JWT_SECRET", "legacy-secret", 1);
    setenv ("LOG_LEVEL", "debug", 1);
    s_run (&run, NULL);
    assert_int_equal (run.rc, 0);
    assert_string_equal (run.config->database_url, "sqlite:///legacy.db");
    assert_string_equal (run.config->jwt_secret, "legacy-secret");
    assert_string_equal (run.config->log_level, "debug");
    assert_string_equal (vw_config_source (run.config, "database.url"), "env");
    assert_string_equal (vw_config_source (run.config, "jwt.secret"), "env");
    assert_string_equal (vw_config_source (run.config, "log.level"), "env");
    s_run_done (&run);

    //  The VIWORKS_ names win when both are set
    setenv ("VIWORKS_DATABASE_URL", "/new.db", 1);
    setenv ("VIWORKS_JWT_SECRET", "new-secret", 1);
    setenv ("VIWORKS_LOG_LEVEL", "error", 1);
    s_run (&run, NULL);
    assert_int_equal (run.rc, 0);
    assert_string_equal (run.config->database_url, "/new.db");
    assert_string_equal (run.config->jwt_secret, "new-secret");
    assert_string_equal (run.config->log_level, "error");
    s_run_done (&run);

    //  ... even when empty, which unsets the optional secret
    setenv ("VIWORKS_JWT_SECRET", "", 1);
    s_run (&run, NULL);
    assert_int_equal (run.rc, 0);
    assert_null (run.config->jwt_secret);
    s_run_done (&run);

    //  A flag still beats both
    s_run (&run, "--log-level", "trace", "--database-url", "/flag.db", NULL);
    assert_int_equal (run.rc, 0);
    assert_string_equal (run.config->log_level, "trace");
    assert_string_equal (run.config->database_url, "/flag.db");
    s_run_done (&run);

    //  A bad legacy value is reported under the legacy name
    unsetenv ("VIWORKS_LOG_LEVEL");
    setenv ("LOG_LEVEL", "loud", 1);
    s_run (&run, NULL);
    s_assert_one_error (&run);
    assert_string_equal (run.err, "viworks-backend: invalid value 'loud' for LOG_LEVEL (expected "
                                  "one of trace|debug|info|warn|error)\n");
    s_run_done (&run);

    unsetenv ("DATABASE_URL");
    unsetenv ("JWT_SECRET");
    unsetenv ("LOG_LEVEL");
    unsetenv ("VIWORKS_DATABASE_URL");
    unsetenv ("VIWORKS_JWT_SECRET");
}

static void
test_source (void **state)
{
    char *file = s_temp_file ("ws\n    port = 7000\n");
    setenv ("VIWORKS_LOG_LEVEL", "debug", 1);
    run_t run;
    s_run (&run, "--config", file, "--http-port", "7001", NULL);
    assert_int_equal (run.rc, 0);
    const vw_config_t *config = run.config;
    assert_string_equal (vw_config_source (config, "config"), "flag");
    assert_string_equal (vw_config_source (config, "http.port"), "flag");
    assert_string_equal (vw_config_source (config, "log.level"), "env");
    assert_string_equal (vw_config_source (config, "ws.port"), "file");
    assert_string_equal (vw_config_source (config, "ws.addr"), "default");
    assert_string_equal (vw_config_source (config, "jwt.secret"), "default");
    assert_null (vw_config_source (config, "http.prot"));
    assert_null (vw_config_source (config, "http/port"));
    assert_null (vw_config_source (config, ""));
    assert_null (vw_config_source (config, NULL));
    assert_null (vw_config_source (NULL, "http.port"));
    s_run_done (&run);
    unsetenv ("VIWORKS_LOG_LEVEL");
    s_temp_done (file);
}

// --------------------------------------------------------------------------
//  Errors

typedef struct {
    const char *args[6];  //  "@FILE" is replaced by the temp file's path
    const char *env_name;
    const char *env_value;
    const char *file_text;  //  written to a temp file when set
    const char *expect;     //  whole line if it ends in \n, else a substring
    const char *absent;     //  must not appear in the message
} error_case_t;

static const error_case_t s_error_cases[] = {
    //  The brief's examples, word for word
    {{"--http-port", "abc"},
     .expect =
         "viworks-backend: invalid value 'abc' for --http-port (expected an integer 0..65535)\n"},
    {{NULL},
     "VIWORKS_REGISTRY_STALE_AFTER",
     "5x",
     .expect = "viworks-backend: invalid value '5x' for VIWORKS_REGISTRY_STALE_AFTER (expected a "
               "duration like 500ms, 10s, 7d)\n"},
    {{"--htp-port", "5"}, .expect = "viworks-backend: unknown option '--htp-port' (see --help)\n"},
    {{"--htp-port=5"}, .expect = "viworks-backend: unknown option '--htp-port' (see --help)\n"},
    {{"--http-port"}, .expect = "viworks-backend: option --http-port needs a value\n"},
    {{"--config", "@FILE"},
     .file_text = "http\n    prot = 1\n",
     .expect = "viworks-backend: unknown key 'http/prot' in config file @FILE\n"},
    //  Ranges, enums, sizes, names, strings
    {{"--http-port", "--ws-port", "1"}, .expect = "option --http-port needs a value\n"},
    {{"--http-port", "65536"},
     .expect = "'65536' for --http-port (expected an integer 0..65535)\n"},
    {{"--ws-port=-1"}, .expect = "'-1' for --ws-port (expected an integer 0..65535)\n"},
    {{"--stale-after", "500ms"},
     .expect = "'500ms' for --stale-after (expected a duration in 1s..365d)\n"},
    {{"--heartbeat-interval", "-1s"}, .expect = "'-1s' for --heartbeat-interval"},
    {{"--shutdown-timeout", "99999999999999999999s"}, .expect = "for --shutdown-timeout"},
    {{"--log-level", "loud"},
     .expect = "'loud' for --log-level (expected one of trace|debug|info|warn|error)\n"},
    {{"--store-synchronous", "extra"}, .expect = "(expected one of normal|full)\n"},
    {{"--ws-max-frame", "1TiB"}, .expect = "(expected a size like 512, 64KiB, 1MiB)\n"},
    {{"--ws-max-frame", "512"},
     .expect = "'512' for --ws-max-frame (expected a size in 1KiB..64MiB)\n"},
    {{"--ws-out-max", "1KiB"},
     .expect = "'1KiB' for --ws-out-max (expected a size in 64KiB..1GiB)\n"},
    {{"--actors", "a,,b"}, .expect = "'a,,b' for --actors"},
    {{"--http-addr="}, .expect = "'' for --http-addr (expected a non-empty value)\n"},
    {{"--http-port", "1\n2"}, .expect = "'1?2' for --http-port"},
    {{NULL}, "VIWORKS_HTTP_PORT", "", .expect = "'' for VIWORKS_HTTP_PORT"},
    //  Command-line shape
    {{"stray"}, .expect = "viworks-backend: unexpected argument 'stray' (see --help)\n"},
    {{"--", "stray"}, .expect = "unexpected argument 'stray'"},
    {{"-x"}, .expect = "unknown option '-x'"},
    {{"--jwt-secret=hunter2"}, .expect = "'--jwt-secret' is not accepted", .absent = "hunter2"},
    {{"--jwt-secret", "hunter2"}, .expect = "VIWORKS_JWT_SECRET", .absent = "hunter2"},
    //  Config file problems
    {{"--config", "/nonexistent/vw.cfg"},
     .expect = "viworks-backend: cannot read config file /nonexistent/vw.cfg (from --config): No "
               "such file or directory\n"},
    {{"--config", "/tmp"}, .expect = "cannot read config file /tmp (from --config)"},
    {{NULL}, "VIWORKS_CONFIG", "/nonexistent/vw.cfg", .expect = "(from VIWORKS_CONFIG)"},
    {{"--config", "@FILE"},
     .file_text = "http\n  port = 1\n",
     .expect = "cannot parse config file @FILE (from --config)"},
    {{"--config", "@FILE"},
     .file_text = "registry\n    stale_after = 5x\n",
     .expect = "viworks-backend: invalid value '5x' for registry/stale_after in config file @FILE "
               "(expected a duration like 500ms, 10s, 7d)\n"},
    {{"--config", "@FILE"},
     .file_text = "http.port = 1\n",
     .expect = "unknown key 'http.port' in config file @FILE"},
    {{"--config", "@FILE"},
     .file_text = "config = /etc/other.cfg\n",
     .expect = "key 'config' cannot be set in config file @FILE\n"},
    {{"--config", "@FILE"},
     .file_text = "http\n    port\n        deeper = 1\n",
     .expect = "unknown key 'http/port/deeper'"},
    //  A bad value is an error even when a higher source overrides it
    {{"--config", "@FILE", "--http-port", "80"},
     .file_text = "http\n    port = eighty\n",
     .expect = "'eighty' for http/port in config file @FILE"},
    //  Settings that need each other
    {{"--tls-cert", "/c.pem"}, .expect = "tls.cert is set without tls.key"},
    {{NULL}, "VIWORKS_TLS_KEY", "/k.pem", .expect = "tls.key is set without tls.cert"},
};

//  Replaces every "@FILE" in pattern with path.
static char *
s_expand (const char *pattern, const char *path)
{
    size_t size = strlen (pattern) + 1;
    for (const char *p = strstr (pattern, "@FILE"); p; p = strstr (p + 5, "@FILE"))
        size += path ? strlen (path) : 0;
    char *result = calloc (1, size);
    assert_non_null (result);
    const char *p = pattern;
    for (const char *at = strstr (p, "@FILE"); at; at = strstr (p, "@FILE")) {
        strncat (result, p, (size_t) (at - p));
        strcat (result, path ? path : "");
        p = at + 5;
    }
    strcat (result, p);
    return result;
}

static void
test_errors (void **state)
{
    for (size_t i = 0; i < sizeof (s_error_cases) / sizeof (s_error_cases[0]); i++) {
        const error_case_t *test = &s_error_cases[i];
        char *file = test->file_text ? s_temp_file (test->file_text) : NULL;
        char *args[8] = {(char *) PROG};
        int argc = 1;
        for (int arg = 0; arg < 6 && test->args[arg]; arg++)
            args[argc++] = s_expand (test->args[arg], file);
        if (test->env_name)
            setenv (test->env_name, test->env_value, 1);

        run_t run;
        s_run_argv (&run, argc, args);
        char *expect = s_expand (test->expect, file);
        print_message ("case %zu: %s", i, run.err ? run.err : "(none)\n");
        s_assert_one_error (&run);
        size_t length = strlen (expect);
        if (length && expect[length - 1] == '\n' && strncmp (expect, "viworks-backend: ", 17) == 0)
            assert_string_equal (run.err, expect);
        else if (length && expect[length - 1] == '\n')
            assert_true (length <= run.err_size &&
                         strcmp (run.err + run.err_size - length, expect) == 0);
        else
            assert_non_null (strstr (run.err, expect));
        if (test->absent)
            assert_null (strstr (run.err, test->absent));

        s_run_done (&run);
        free (expect);
        if (test->env_name)
            unsetenv (test->env_name);
        for (int arg = 1; arg < argc; arg++)
            free (args[arg]);
        if (file)
            s_temp_done (file);
    }
}

static void
test_program_name_in_messages (void **state)
{
    run_t run;
    char *argv[] = {(char *) "/usr/local/bin/vwb", (char *) "--bogus", NULL};
    s_run_argv (&run, 2, argv);
    assert_int_equal (run.rc, 2);
    assert_string_equal (run.err, "vwb: unknown option '--bogus' (see --help)\n");
    s_run_done (&run);

    char *plain[] = {(char *) "vwb2", (char *) "--bogus", NULL};
    s_run_argv (&run, 2, plain);
    assert_string_equal (run.err, "vwb2: unknown option '--bogus' (see --help)\n");
    s_run_done (&run);

    char *help[] = {(char *) "./bin/vwb3", (char *) "--help", NULL};
    s_run_argv (&run, 2, help);
    assert_int_equal (run.rc, 1);
    assert_true (strncmp (run.out, "Usage: vwb3 ", 12) == 0);
    s_run_done (&run);
}

// --------------------------------------------------------------------------
//  --help and --version

//  The line of --help that starts with text after the two-space indent.
static char *
s_help_line (const char *help, const char *start)
{
    size_t length = strlen (start);
    for (const char *line = help; line && *line;) {
        const char *end = strchr (line, '\n');
        if (strncmp (line, "  ", 2) == 0 && strncmp (line + 2, start, length) == 0 &&
            line[2 + length] == ' ')
            return strndup (line, end ? (size_t) (end - line) : strlen (line));
        line = end ? end + 1 : NULL;
    }
    return NULL;
}

static void
test_help (void **state)
{
    //  Values in the environment never reach --help, secrets least of all
    setenv ("VIWORKS_JWT_SECRET", "s3cr3t-from-env", 1);
    setenv ("JWT_SECRET", "legacy-s3cr3t", 1);
    char *file = s_temp_file ("jwt\n    secret = file-s3cr3t\n");
    setenv ("VIWORKS_CONFIG", file, 1);

    run_t run;
    s_run (&run, "--help", NULL);
    assert_int_equal (run.rc, 1);
    assert_null (run.config);
    assert_int_equal (run.err_size, 0);
    const char *help = run.out;
    assert_true (strncmp (help, "Usage: viworks-backend ", 23) == 0);
    for (size_t i = 0; i < EXPECTED_COUNT; i++) {
        const expected_option_t *option = &s_expected[i];
        char *line = s_help_line (help, option->flag ? option->flag : "(env/file only)");
        assert_non_null (line);
        //  One line per option: flag, env var, legacy name, default
        assert_non_null (strstr (line, option->env));
        if (option->legacy_env)
            assert_non_null (strstr (line, option->legacy_env));
        char defval[64];
        snprintf (defval, sizeof (defval), "default %s", option->defval);
        assert_non_null (strstr (line, defval));
        free (line);
    }
    assert_non_null (strstr (help, "--help"));
    assert_non_null (strstr (help, "--version"));
    assert_non_null (strstr (help, "flags > environment > config file > defaults"));
    assert_non_null (strstr (help, "ZPL"));
    assert_null (strstr (help, "--jwt-secret"));
    assert_null (strstr (help, "s3cr3t"));
    s_run_done (&run);

    //  -h too, and --help wins over a later bad option
    s_run (&run, "-h", "--bogus", NULL);
    assert_int_equal (run.rc, 1);
    assert_non_null (strstr (run.out, "--http-port"));
    assert_int_equal (run.err_size, 0);
    s_run_done (&run);

    //  ... but not over an earlier one
    s_run (&run, "--bogus", "--help", NULL);
    assert_int_equal (run.rc, 2);
    s_run_done (&run);

    unsetenv ("VIWORKS_JWT_SECRET");
    unsetenv ("JWT_SECRET");
    unsetenv ("VIWORKS_CONFIG");
    s_temp_done (file);
}

static void
test_version (void **state)
{
    run_t run;
    s_run (&run, "--http-port", "1", "--version", NULL);
    assert_int_equal (run.rc, 1);
    assert_null (run.config);
    assert_string_equal (run.out, "viworks-backend " VW_VERSION "\n");
    assert_int_equal (run.err_size, 0);
    s_run_done (&run);
}

// --------------------------------------------------------------------------
//  Secrets

static void
test_secret_only_from_env_and_file (void **state)
{
    char *file = s_temp_file ("jwt\n    secret = file-secret\n");
    run_t run;
    s_run (&run, "--config", file, NULL);
    assert_int_equal (run.rc, 0);
    assert_string_equal (run.config->jwt_secret, "file-secret");
    assert_string_equal (vw_config_source (run.config, "jwt.secret"), "file");
    s_run_done (&run);

    setenv ("VIWORKS_JWT_SECRET", "env-secret", 1);
    s_run (&run, "--config", file, NULL);
    assert_int_equal (run.rc, 0);
    assert_string_equal (run.config->jwt_secret, "env-secret");
    s_run_done (&run);

    //  No flag, in either form, and the value is never echoed
    s_run (&run, "--jwt-secret", "flag-secret", NULL);
    s_assert_one_error (&run);
    assert_null (strstr (run.err, "flag-secret"));
    s_run_done (&run);

    unsetenv ("VIWORKS_JWT_SECRET");
    s_temp_done (file);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_defaults, s_env_setup, s_env_teardown),
        cmocka_unit_test_setup_teardown (test_load_with_nothing_set_gives_defaults, s_env_setup,
                                         s_env_teardown),
        cmocka_unit_test_setup_teardown (test_parse_duration, s_env_setup, s_env_teardown),
        cmocka_unit_test_setup_teardown (test_parse_size, s_env_setup, s_env_teardown),
        cmocka_unit_test_setup_teardown (test_parse_bool, s_env_setup, s_env_teardown),
        cmocka_unit_test_setup_teardown (test_precedence_all_four_sources, s_env_setup,
                                         s_env_teardown),
        cmocka_unit_test_setup_teardown (test_config_file_named_by_env, s_env_setup,
                                         s_env_teardown),
        cmocka_unit_test_setup_teardown (test_file_sets_every_type, s_env_setup, s_env_teardown),
        cmocka_unit_test_setup_teardown (test_flag_forms, s_env_setup, s_env_teardown),
        cmocka_unit_test_setup_teardown (test_env_sets_values, s_env_setup, s_env_teardown),
        cmocka_unit_test_setup_teardown (test_legacy_env, s_env_setup, s_env_teardown),
        cmocka_unit_test_setup_teardown (test_source, s_env_setup, s_env_teardown),
        cmocka_unit_test_setup_teardown (test_errors, s_env_setup, s_env_teardown),
        cmocka_unit_test_setup_teardown (test_program_name_in_messages, s_env_setup,
                                         s_env_teardown),
        cmocka_unit_test_setup_teardown (test_help, s_env_setup, s_env_teardown),
        cmocka_unit_test_setup_teardown (test_version, s_env_setup, s_env_teardown),
        cmocka_unit_test_setup_teardown (test_secret_only_from_env_and_file, s_env_setup,
                                         s_env_teardown),
    };
    return cmocka_run_group_tests_name ("vw_config", tests, NULL, NULL);
}
