/*  viworks-backend - the single binary: loads the settings, starts the
    broker and the actors in order, supervises them, and on SIGINT/SIGTERM
    stops them in reverse order.

    Signals are blocked in every thread and read from a signalfd by this
    thread's poll loop, so no code runs in signal context. The same loop
    watches each actor's pipe: an actor that leaves its loop on its own
    reports EXITED, which is logged as an error (and /health shows it down)
    instead of taking the process down silently.
*/
#include "vw_actors.h"
#include "vw_alerts.h"
#include "vw_broker.h"
#include "vw_zap.h"
#include "vw_commands.h"
#include "vw_clock.h"
#include "vw_config.h"
#include "vw_edge.h"
#include "vw_lifecycle.h"
#include "vw_log.h"
#include "vw_token.h"
#include "vw_probe.h"
#include "vw_secret.h"
#include "vw_audit.h"
#include "vw_db.h"
#include "vw_tls.h"
#include "vw_users.h"

#include <libgen.h>

#include <poll.h>
#include <sodium.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_START_TIMEOUT_MS 10000

typedef struct {
    const char *name;
    zactor_t *actor;
    bool exited;
} s_running_t;

//  Shutdown watchdog: if the ordered shutdown overruns, say so and leave.
typedef struct {
    int fds[2];
    int64_t timeout_ms;
    pthread_t thread;
    bool started;
} s_watchdog_t;

static void *
s_watchdog_run (void *arg)
{
    s_watchdog_t *w = (s_watchdog_t *) arg;
    struct pollfd pfd = {w->fds[0], POLLIN, 0};
    if (poll (&pfd, 1, (int) w->timeout_ms) == 0) {
        vw_error ("main", "shutdown did not finish within %lld ms; exiting now",
                  (long long) w->timeout_ms);
        _exit (VW_EXIT_FAILURE);
    }
    return NULL;
}

static void
s_watchdog_start (s_watchdog_t *w, int64_t timeout_ms)
{
    w->timeout_ms = timeout_ms;
    if (pipe (w->fds) == 0 && pthread_create (&w->thread, NULL, s_watchdog_run, w) == 0)
        w->started = true;
}

static void
s_watchdog_stop (s_watchdog_t *w)
{
    if (!w->started)
        return;
    ssize_t rc = write (w->fds[1], "x", 1);
    (void) rc;
    pthread_join (w->thread, NULL);
    close (w->fds[0]);
    close (w->fds[1]);
}

static bool
s_wanted (const char *list, const char *name)
{
    if (!list || strcmp (list, "all") == 0)
        return true;
    size_t n = strlen (name);
    for (const char *p = list; *p;) {
        const char *comma = strchr (p, ',');
        size_t len = comma ? (size_t) (comma - p) : strlen (p);
        if (len == n && strncmp (p, name, n) == 0)
            return true;
        p += len + (comma ? 1 : 0);
    }
    return false;
}

//  Validates --actors: every name must be one of ours.
static int
s_check_actor_list (const char *list)
{
    if (!list || strcmp (list, "all") == 0)
        return 0;
    for (const char *p = list; *p;) {
        const char *comma = strchr (p, ',');
        size_t len = comma ? (size_t) (comma - p) : strlen (p);
        bool known = false;
        for (int i = 0; i < VW_ACTOR_COUNT; i++)
            if (strlen (vw_actor_names[i]) == len && strncmp (p, vw_actor_names[i], len) == 0)
                known = true;
        if (!known) {
            fprintf (stderr,
                     "viworks-backend: invalid value '%s' for --actors (unknown actor "
                     "'%.*s'; known: store, registry, scheduler, executor, telemetry, "
                     "auth, admin, api, edge)\n",
                     list, (int) len, p);
            return -1;
        }
        p += len + (comma ? 1 : 0);
    }
    return 0;
}

#define S_RESET_FLAG  "--reset-admin-password"
#define S_ROTATE_FLAG "--rotate-jwt-secret"

//  viworks-backend --rotate-jwt-secret [settings]: the kept JWT secret
//  becomes the previous one (it verifies tokens issued before, for
//  jwt.previous_grace) and a new one signs from the next start on; audited.
static int
s_rotate_jwt_secret (const vw_config_t *config)
{
    if (config->jwt_secret) {
        vw_error ("main", "JWT_SECRET is set, so there is no kept secret to rotate: set "
                          "JWT_SECRET to the new secret and JWT_SECRET_PREVIOUS to the old one, "
                          "then restart");
        return VW_EXIT_USAGE;
    }
    char *path = vw_db_path_from_url (config->database_url);
    if (!path || !strcmp (path, ":memory:")) {
        vw_error ("main", "DATABASE_URL '%s' names no data directory", config->database_url);
        free (path);
        return VW_EXIT_USAGE;
    }
    char *copy = strdup (path);
    char err[512];
    int code = VW_EXIT_OK;
    if (vw_secret_rotate (dirname (copy), err, sizeof err)) {
        vw_error ("main", "%s", err);
        code = VW_EXIT_FAILURE;
    }
    vw_db_status_t status;
    vw_db_t *db = vw_db_open (path, false, &status, err, sizeof err);
    if (!db || vw_db_begin (db) ||
        vw_audit_append (db, vw_clock_wall_ms (), "system", "cli", "jwt.rotate", "jwt.secret",
                         code ? "failure" : "success", S_ROTATE_FLAG) ||
        vw_db_commit (db))
        vw_warn ("main", "the rotation is not audited: %s",
                 db ? sqlite3_errmsg (vw_db_handle (db)) : err);
    vw_db_close (&db);
    if (!code)
        printf ("JWT secret rotated: restart the backend; tokens signed before keep working for "
                "%lld s after now\n",
                (long long) (config->jwt_previous_grace_ms / 1000));
    free (copy);
    free (path);
    return code;
}

//  viworks-backend --reset-admin-password [settings]: gives the user
//  `admin` a new password (VIWORKS_ADMIN_PASSWORD, or a generated one
//  printed on stdout), makes it an enabled admin (creating it if missing),
//  audits the change and exits. Works beside a running backend (SQLite
//  locking); logins use the new password at once.
static int
s_reset_admin_password (const vw_config_t *config)
{
    char *path = vw_db_path_from_url (config->database_url);
    if (!path) {
        vw_error ("main", "DATABASE_URL '%s' is not a SQLite URL or path", config->database_url);
        return VW_EXIT_DATABASE;
    }
    char generated[32] = "";
    const char *password = config->admin_password;
    if (password && *password && (strlen (password) < 8 || strlen (password) > 1024)) {
        vw_error ("main", "VIWORKS_ADMIN_PASSWORD must be 8 to 1024 characters");
        free (path);
        return VW_EXIT_USAGE;
    }
    if (!password || !*password) {
        uint8_t raw[15];
        randombytes_buf (raw, sizeof raw);
        sodium_bin2base64 (generated, sizeof generated, raw, sizeof raw,
                           sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        password = generated;
    }
    char hash[crypto_pwhash_STRBYTES];
    vw_db_status_t status;
    char err[512];
    vw_db_t *db = NULL;
    int code = VW_EXIT_OK;
    int created = -1;
    if (crypto_pwhash_str (hash, password, strlen (password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                           crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
        vw_error ("main", "cannot hash the password (out of memory)");
        code = VW_EXIT_FAILURE;
    }
    else if (!(db = vw_db_open (path, false, &status, err, sizeof err))) {
        vw_error ("main", "%s", err);
        code = status == VW_DB_ERR_TOO_NEW ? VW_EXIT_SCHEMA : VW_EXIT_DATABASE;
    }
    else if (vw_db_begin (db) ||
             (created = vw_users_reset_admin (db, "admin", hash, vw_token_gen_new (0),
                                              vw_clock_wall_ms ())) < 0 ||
             vw_audit_append (db, vw_clock_wall_ms (), "system", "cli", "user.password_reset",
                              "admin", "success", S_RESET_FLAG) ||
             vw_db_commit (db)) {
        vw_error ("main", "cannot reset the admin password in %s: %s", path,
                  *vw_db_write_error (db) ? vw_db_write_error (db)
                                          : sqlite3_errmsg (vw_db_handle (db)));
        code = VW_EXIT_DATABASE;
    }
    else {
        vw_info ("main", "%s in %s",
                 created ? "created the user 'admin' with a new password"
                         : "gave the user 'admin' a new password",
                 path);
        if (*generated)
            printf ("ADMIN PASSWORD: user 'admin' now has the generated password '%s'\n",
                    generated);
        else
            printf ("ADMIN PASSWORD: user 'admin' now has the password in "
                    "VIWORKS_ADMIN_PASSWORD\n");
        fflush (stdout);
    }
    if (db && vw_db_in_tx (db))
        vw_db_commit (db);
    vw_db_close (&db);
    sodium_memzero (generated, sizeof generated);
    sodium_memzero (hash, sizeof hash);
    free (path);
    return code;
}

int
main (int argc, char **argv)
{
    int64_t t0 = vw_clock_mono_ms ();
    vw_config_t *config = NULL;
    //  --reset-admin-password is a command, not a setting: taken off the
    //  arguments before the settings are read.
    bool reset_admin = false, rotate_jwt = false;
    char **args_left = (char **) calloc ((size_t) argc + 1, sizeof (char *));
    int nargs = 0;
    for (int i = 0; i < argc && args_left; i++) {
        if (i > 0 && strcmp (argv[i], S_RESET_FLAG) == 0)
            reset_admin = true;
        else if (i > 0 && strcmp (argv[i], S_ROTATE_FLAG) == 0)
            rotate_jwt = true;
        else
            args_left[nargs++] = argv[i];
    }
    int rc = args_left ? vw_config_load (&config, nargs, args_left, stdout, stderr) : -1;
    bool help = false;
    for (int i = 1; i < nargs && args_left; i++)
        help = help || strcmp (args_left[i], "--help") == 0 || strcmp (args_left[i], "-h") == 0;
    free (args_left);
    if (rc == 1 && help)
        printf (
            "\nCommand (runs instead of the backend, with the same settings):\n"
            "  %s  give the user 'admin' a new password (VIWORKS_ADMIN_PASSWORD,\n"
            "                          or a generated one printed here) and exit\n"
            "  %s     the kept JWT secret becomes the previous one (still verifying\n"
            "                          tokens issued before, for jwt.previous_grace), a new one\n"
            "                          signs from the next start; exit\n",
            S_RESET_FLAG, S_ROTATE_FLAG);
    if (rc == 1)
        return VW_EXIT_OK;
    if (rc != 0)
        return VW_EXIT_USAGE;
    if (s_check_actor_list (config->actors)) {
        vw_config_destroy (&config);
        return VW_EXIT_USAGE;
    }
    vw_log_set_level ((vw_log_level_t) vw_log_level_parse (config->log_level));
    vw_log_set_format (strcmp (config->log_format, "text") == 0 ? VW_LOG_TEXT : VW_LOG_JSON);
    if (sodium_init () < 0) {
        vw_error ("main", "libsodium cannot initialise");
        vw_config_destroy (&config);
        return VW_EXIT_FAILURE;
    }
    if (rotate_jwt) {
        int code = s_rotate_jwt_secret (config);
        vw_config_destroy (&config);
        return code;
    }
    if (reset_admin) {
        int code = s_reset_admin_password (config);
        vw_config_destroy (&config);
        return code;
    }

    //  Signals: blocked everywhere (threads inherit the mask), read here.
    zsys_handler_set (NULL);
    sigset_t sigs;
    sigemptyset (&sigs);
    sigaddset (&sigs, SIGINT);
    sigaddset (&sigs, SIGTERM);
    sigaddset (&sigs, SIGHUP);
    pthread_sigmask (SIG_BLOCK, &sigs, NULL);
    signal (SIGPIPE, SIG_IGN);
    int sigfd = signalfd (-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
    zsys_init ();
    zsys_set_logstream (NULL);

    int exit_code = VW_EXIT_OK;
    const char *endpoint = config->broker_connect ? config->broker_connect : VW_BROKER_INPROC;
    zactor_t *broker = NULL;
    zactor_t *zap = NULL;  //  vw_zap, with CURVE
    s_running_t running[VW_ACTOR_COUNT];
    int nrunning = 0;

    //  A TLS pair that cannot serve stops us before anything is created
    //  (the edges check again: they can run on their own).
    if (config->tls_cert && config->tls_key &&
        (s_wanted (config->actors, "api") || s_wanted (config->actors, "edge"))) {
        char err[600], warning[300];
        if (vw_tls_check_files (config->tls_cert, config->tls_key, err, sizeof err, warning,
                                sizeof warning)) {
            vw_error ("main", "%s", err);
            exit_code = VW_EXIT_USAGE;
            goto shutdown;
        }
    }
    //  The broker link leaves the host only with CURVE, on both sides.
    const char *link = config->broker_bind ? config->broker_bind : config->broker_connect;
    if (link && !vw_endpoint_is_loopback (link) && !config->broker_curve_cert) {
        vw_error ("main",
                  "broker endpoint %s is not loopback and CURVE is not configured "
                  "(--broker-curve-cert with %s); refusing to %s",
                  link, config->broker_bind ? "--broker-curve-clients" : "--broker-curve-server",
                  config->broker_bind ? "expose the broker" : "join the broker in the clear");
        exit_code = VW_EXIT_USAGE;
        goto shutdown;
    }
    if (config->broker_connect) {
        char err[512] = "";
        if (vw_actor_set_link (config->broker_curve_cert, config->broker_curve_server,
                               config->broker_peer_timeout_ms, err, sizeof err)) {
            vw_error ("main", "%s", err);
            exit_code = VW_EXIT_USAGE;
            goto shutdown;
        }
        //  Its edges need names of their own among the core's others.
        if (!config->node) {
            char host[256] = "";
            gethostname (host, sizeof host - 1);
            host[strcspn (host, ".")] = 0;
            config->node = strdup (*host ? host : "node");
        }
    }
    //  CURVE on the admin socket and the event stream (domain "admin") and
    //  on the broker's tcp endpoint (domain "broker"): vw_zap answers the
    //  handshakes of every socket of the process from each domain's
    //  directory of allowed clients' public certificates, read again
    //  whenever a file is added or removed there.
    {
        vw_zap_domain_t domains[3] = {{NULL, NULL}, {NULL, NULL}, {NULL, NULL}};
        int ndomains = 0;
        if (config->admin_curve_cert)
            domains[ndomains++] = (vw_zap_domain_t){VW_ZAP_ADMIN, config->admin_curve_clients};
        if (config->broker_bind && !config->broker_connect && config->broker_curve_cert)
            domains[ndomains++] = (vw_zap_domain_t){VW_ZAP_BROKER, config->broker_curve_clients};
        for (int i = 0; i < ndomains; i++) {
            struct stat st;
            if (stat (domains[i].dir, &st) != 0 || !S_ISDIR (st.st_mode)) {
                vw_error ("main", "%s.curve_clients %s is not a directory", domains[i].domain,
                          domains[i].dir);
                exit_code = VW_EXIT_USAGE;
                goto shutdown;
            }
        }
        if (ndomains) {
            zap = zactor_new (vw_zap_actor, domains);
            if (!zap || zsock_wait (zap) != 0) {
                vw_error ("main", "cannot start the CURVE authenticator (ZAP)");
                exit_code = VW_EXIT_FAILURE;
                goto shutdown;
            }
        }
    }
    if (!config->broker_connect) {
        vw_broker_args_t bargs = {VW_BROKER_INPROC,
                                  config->broker_bind,
                                  s_wanted (config->actors, "admin") ? config->events_endpoint
                                                                     : NULL,
                                  config->admin_curve_cert,
                                  config->broker_curve_cert,
                                  config->broker_peer_timeout_ms};
        broker = zactor_new (vw_broker_actor, &bargs);
        char *reason = NULL;
        exit_code = vw_lifecycle_await (broker, S_START_TIMEOUT_MS, &reason);
        if (exit_code) {
            vw_error ("main", "broker failed to start: %s", reason);
            free (reason);
            goto shutdown;
        }
    }

    //  The JWT secret: JWT_SECRET, or one kept in the data directory; and
    //  the one before the last rotation (JWT_SECRET_PREVIOUS with this
    //  start as the rotation, or the kept jwt.secret.previous with its
    //  time), which verifies older tokens for jwt.previous_grace.
    if (config->jwt_secret && config->jwt_secret_previous)
        config->jwt_previous_since_ms = vw_clock_wall_ms ();
    if (!config->jwt_secret &&
        (s_wanted (config->actors, "api") || s_wanted (config->actors, "admin"))) {
        char *path = vw_db_path_from_url (config->database_url);
        char err[256] = "";
        if (path) {
            char *dir = strcmp (path, ":memory:") ? dirname (path) : ".";
            config->jwt_secret = vw_secret_load (dir, err, sizeof err);
            int64_t since = 0;
            char *previous =
                config->jwt_secret_previous ? NULL : vw_secret_load_previous (dir, &since);
            if (previous) {
                config->jwt_secret_previous = previous;
                config->jwt_previous_since_ms = since;
            }
        }
        else
            snprintf (err, sizeof err, "DATABASE_URL '%s' is not a SQLite URL or path",
                      config->database_url);
        free (path);
        if (!config->jwt_secret) {
            vw_error ("main", "no JWT secret: %s", err);
            exit_code = VW_EXIT_DATABASE;
            goto shutdown;
        }
    }

    if (config->jwt_secret_previous) {
        int64_t until = config->jwt_previous_since_ms + config->jwt_previous_grace_ms;
        if (vw_clock_wall_ms () < until)
            vw_info ("main",
                     "the previous JWT secret verifies tokens issued before its rotation for "
                     "another %lld s",
                     (long long) ((until - vw_clock_wall_ms ()) / 1000));
    }

    //  Alert rules are read by the telemetry actor; a bad one stops the start.
    {
        vw_alert_rule_t rules[VW_ALERTS_MAX];
        char err[512] = "";
        if (vw_alerts_parse (config->telemetry_alerts, rules, VW_ALERTS_MAX, err, sizeof err) < 0) {
            fprintf (stderr, "viworks-backend: invalid value for telemetry.alerts: %s\n", err);
            exit_code = VW_EXIT_USAGE;
            goto shutdown;
        }
    }

    //  The command catalogue: built-in types plus the schema file's.
    vw_commands_t *commands = vw_commands_new ();
    if (commands && config->commands_schema_file) {
        char err[512] = "";
        if (vw_commands_load (commands, config->commands_schema_file, err, sizeof err)) {
            fprintf (stderr, "viworks-backend: invalid command schema file: %s\n", err);
            vw_commands_destroy (&commands);
            exit_code = VW_EXIT_USAGE;
            goto shutdown;
        }
    }
    config->commands = commands;

    //  Actor arguments live on this stack frame for the whole run.
    vw_store_args_t store_args = {config->database_url,
                                  strcmp (config->store_synchronous, "full") == 0};
    //  Two edge threads: the HTTP façade ("api") and the agent WebSocket
    //  ("edge"); see vw_edge.h.
    vw_edge_args_t api_args = {config, endpoint, VW_EDGE_API};
    vw_edge_args_t edge_args = {config, endpoint, VW_EDGE_AGENTS};
    vw_actor_args_t args[VW_ACTOR_COUNT] = {
        {&vw_store_class, endpoint, &store_args},
        {&vw_registry_class, endpoint, config},
        {&vw_scheduler_class, endpoint, config},
        {&vw_executor_class, endpoint, config},
        {&vw_telemetry_class, endpoint, config},
        {&vw_auth_class, endpoint, config},
        {&vw_admin_class, endpoint, config},
        {NULL, endpoint, &api_args},  //  the edges run their own loops
        {NULL, endpoint, &edge_args},
    };
    for (int i = 0; i < VW_ACTOR_COUNT; i++) {
        const char *name = vw_actor_names[i];
        if (!s_wanted (config->actors, name))
            continue;
        zactor_t *actor = args[i].cls ? zactor_new (vw_actor_task, &args[i])
                                      : zactor_new (vw_edge_actor, args[i].args);
        running[nrunning++] = (s_running_t){name, actor, false};
        char *reason = NULL;
        exit_code = vw_lifecycle_await (actor, S_START_TIMEOUT_MS, &reason);
        if (exit_code) {
            vw_error ("main", "%s failed to start: %s", name, reason);
            free (reason);
            goto shutdown;
        }
    }
    vw_info ("main", "viworks-backend %s ready in %lld ms (%d actors)", VW_VERSION,
             (long long) (vw_clock_mono_ms () - t0), nrunning);
    vw_lifecycle_release_notices ();  //  e.g. the generated admin password

    //  Supervise: wait for a signal, log any actor that stops on its own.
    for (bool stop = false; !stop;) {
        zmq_pollitem_t items[1 + VW_ACTOR_COUNT];
        int map[1 + VW_ACTOR_COUNT];
        int n = 0;
        items[n++] = (zmq_pollitem_t){NULL, sigfd, ZMQ_POLLIN, 0};
        for (int i = 0; i < nrunning; i++)
            if (!running[i].exited) {
                map[n] = i;
                items[n++] = (zmq_pollitem_t){zsock_resolve (zactor_sock (running[i].actor)), 0,
                                              ZMQ_POLLIN, 0};
            }
        if (zmq_poll (items, n, -1) == -1) {
            if (zmq_errno () == EINTR)
                continue;
            break;
        }
        if (items[0].revents & ZMQ_POLLIN) {
            struct signalfd_siginfo info;
            if (read (sigfd, &info, sizeof info) == (ssize_t) sizeof info &&
                info.ssi_signo == SIGHUP) {
                //  Files read again: the edges' TLS certificate. The CURVE
                //  allow-lists need nothing (vw_zap reads a directory on
                //  change).
                vw_info ("main", "SIGHUP received: reloading the TLS certificate");
                for (int i = 0; i < nrunning; i++)
                    if (!running[i].exited &&
                        (streq (running[i].name, "api") || streq (running[i].name, "edge")))
                        zstr_send (running[i].actor, "RELOAD");
                continue;
            }
            vw_info ("main", "%s received: shutting down",
                     info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
            stop = true;
        }
        for (int k = 1; k < n; k++) {
            if (!(items[k].revents & ZMQ_POLLIN))
                continue;
            s_running_t *r = &running[map[k]];
            //  Read only the report: the thread's exit signal stays queued
            //  for zactor_destroy to collect.
            char *report = zstr_recv (zactor_sock (r->actor));
            vw_error ("main", "actor %s stopped: %s", r->name,
                      report && strncmp (report, "EXITED ", 7) == 0 ? report + 7 : "no reason");
            zstr_free (&report);
            r->exited = true;
            //  A process joined to another's broker is there for its actors:
            //  without one it stops, and its supervisor (systemd) sees it.
            if (config->broker_connect) {
                exit_code = VW_EXIT_FAILURE;
                stop = true;
            }
        }
    }

shutdown:;
    //  A first start that failed after creating the admin user still shows
    //  its password.
    vw_lifecycle_release_notices ();
    s_watchdog_t watchdog = {{-1, -1}, 0, 0, false};
    s_watchdog_start (&watchdog, config->shutdown_timeout_ms);
    //  Reverse start order: the edge stops taking work first, the store
    //  finishes last so every write in flight lands.
    for (int i = nrunning - 1; i >= 0; i--) {
        int64_t t = vw_clock_mono_ms ();
        zactor_destroy (&running[i].actor);
        vw_info ("main", "%s stopped (%lld ms)", running[i].name,
                 (long long) (vw_clock_mono_ms () - t));
    }
    zactor_destroy (&broker);
    zactor_destroy (&zap);
    vw_actor_clear_link ();
    s_watchdog_stop (&watchdog);
    if (sigfd >= 0)
        close (sigfd);
    vw_info ("main", "bye (exit code %d)", exit_code);
    vw_commands_t *catalogue = (vw_commands_t *) config->commands;
    vw_commands_destroy (&catalogue);
    vw_config_destroy (&config);
    zsys_shutdown ();
    return exit_code;
}
