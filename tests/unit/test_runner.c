/*  vw_runner: programs run without a shell, output is captured and capped,
    deadlines and cancels end them (SIGTERM, then SIGKILL), a program that
    cannot start is a finished run with an error. Completion is waited for
    through the wake doorbell (a pipe), never with sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "vw_clock.h"
#include "vw_runner.h"

static int s_bell[2];

static void
s_wake (void *arg)
{
    ssize_t rc = write (s_bell[1], "x", 1);
    (void) rc;
}

//  The next finished run, waiting on the doorbell for up to 10 s.
static vw_run_t *
s_wait (vw_runner_t *runner)
{
    int64_t deadline = vw_clock_mono_ms () + 10000;
    while (true) {
        vw_run_t *run = vw_runner_next (runner);
        if (run)
            return run;
        int64_t left = deadline - vw_clock_mono_ms ();
        assert_true (left > 0);
        struct pollfd fd = {s_bell[0], POLLIN, 0};
        if (poll (&fd, 1, (int) left) == 1) {
            char drain[64];
            ssize_t rc = read (s_bell[0], drain, sizeof drain);
            (void) rc;
        }
    }
}

static int
s_setup (void **state)
{
    assert_int_equal (pipe (s_bell), 0);
    *state = vw_runner_new (64, 200, s_wake, NULL);
    return *state ? 0 : -1;
}

static int
s_teardown (void **state)
{
    vw_runner_t *runner = (vw_runner_t *) *state;
    vw_runner_destroy (&runner);
    assert_null (runner);
    vw_runner_destroy (&runner);
    close (s_bell[0]);
    close (s_bell[1]);
    return 0;
}

static void
test_output_and_status (void **state)
{
    vw_runner_t *runner = (vw_runner_t *) *state;
    const char *echo[] = {"/bin/echo", "hello", "world", NULL};
    const char *fail[] = {"/bin/sh", "-c", "echo oops >&2; exit 3", NULL};
    assert_int_equal (vw_runner_start (runner, 1, echo, 5000), 0);
    assert_int_equal (vw_runner_start (runner, 2, fail, 5000), 0);
    assert_int_equal (vw_runner_start (runner, 2, fail, 5000), -1);  //  id in use
    for (int i = 0; i < 2; i++) {
        vw_run_t *run = s_wait (runner);
        if (run->id == 1) {
            assert_int_equal (run->exit_status, 0);
            assert_string_equal (run->out, "hello world\n");
            assert_int_equal (run->err_size, 0);
        }
        else {
            assert_int_equal (run->id, 2);
            assert_int_equal (run->exit_status, 3);
            assert_string_equal (run->err, "oops\n");
            assert_int_equal (run->out_size, 0);
        }
        assert_int_equal (run->signal, 0);
        assert_false (run->timed_out);
        assert_false (run->cancelled);
        assert_string_equal (run->error, "");
        vw_run_destroy (&run);
        assert_null (run);
    }
    assert_int_equal (vw_runner_count (runner), 0);
}

//  No shell: metacharacters reach the program as they are.
static void
test_no_shell (void **state)
{
    vw_runner_t *runner = (vw_runner_t *) *state;
    const char *argv[] = {"/bin/echo", "$HOME;", "`id`", "|", NULL};
    assert_int_equal (vw_runner_start (runner, 7, argv, 5000), 0);
    vw_run_t *run = s_wait (runner);
    assert_string_equal (run->out, "$HOME; `id` |\n");
    vw_run_destroy (&run);
}

static void
test_truncated (void **state)
{
    vw_runner_t *runner = (vw_runner_t *) *state;
    //  Far more than the 64 bytes kept, and more than a pipe holds: the
    //  child must not block on a full pipe.
    const char *argv[] = {"/bin/sh", "-c", "head -c 300000 /dev/zero | tr '\\0' a", NULL};
    assert_int_equal (vw_runner_start (runner, 3, argv, 10000), 0);
    vw_run_t *run = s_wait (runner);
    assert_int_equal (run->exit_status, 0);
    assert_int_equal (run->out_size, 64);
    assert_true (run->out_truncated);
    assert_int_equal (strlen (run->out), 64);
    vw_run_destroy (&run);
}

static void
test_timeout (void **state)
{
    vw_runner_t *runner = (vw_runner_t *) *state;
    const char *argv[] = {"/bin/sleep", "30", NULL};
    assert_int_equal (vw_runner_start (runner, 4, argv, 150), 0);
    vw_run_t *run = s_wait (runner);
    assert_true (run->timed_out);
    assert_false (run->cancelled);
    assert_int_equal (run->exit_status, -1);
    assert_int_equal (run->signal, SIGTERM);
    assert_true (run->duration_ms >= 150);
    vw_run_destroy (&run);
}

//  A program that ignores SIGTERM is killed after the grace (200 ms here),
//  with what it started (same process group).
static void
test_kill_after_grace (void **state)
{
    vw_runner_t *runner = (vw_runner_t *) *state;
    const char *argv[] = {"/bin/sh", "-c", "trap '' TERM; echo started; sleep 30; sleep 30", NULL};
    assert_int_equal (vw_runner_start (runner, 5, argv, 100), 0);
    vw_run_t *run = s_wait (runner);
    assert_true (run->timed_out);
    assert_int_equal (run->signal, SIGKILL);
    assert_string_equal (run->out, "started\n");
    assert_true (run->duration_ms >= 300);
    vw_run_destroy (&run);
}

static void
test_cancel (void **state)
{
    vw_runner_t *runner = (vw_runner_t *) *state;
    const char *argv[] = {"/bin/sleep", "30", NULL};
    assert_false (vw_runner_cancel (runner, 6));
    assert_int_equal (vw_runner_start (runner, 6, argv, 60000), 0);
    assert_int_equal (vw_runner_count (runner), 1);
    assert_true (vw_runner_cancel (runner, 6));
    vw_run_t *run = s_wait (runner);
    assert_true (run->cancelled);
    assert_false (run->timed_out);
    assert_int_equal (run->signal, SIGTERM);
    vw_run_destroy (&run);
    assert_int_equal (vw_runner_count (runner), 0);
}

static void
test_cannot_start (void **state)
{
    vw_runner_t *runner = (vw_runner_t *) *state;
    const char *argv[] = {"/nonexistent/program", NULL};
    assert_int_equal (vw_runner_start (runner, 8, argv, 1000), 0);
    vw_run_t *run = s_wait (runner);
    assert_int_equal (run->exit_status, -1);
    assert_non_null (strstr (run->error, "cannot start /nonexistent/program"));
    vw_run_destroy (&run);
    const char *none[] = {NULL};
    assert_int_equal (vw_runner_start (runner, 9, none, 1000), -1);
    assert_int_equal (vw_runner_start (runner, 9, argv, 0), -1);
}

//  Destroying the runner stops what still runs, promptly.
static void
test_destroy_while_running (void **state)
{
    vw_runner_t *runner = vw_runner_new (64, 100, NULL, NULL);
    const char *argv[] = {"/bin/sleep", "30", NULL};
    for (uint64_t id = 1; id <= 4; id++)
        assert_int_equal (vw_runner_start (runner, id, argv, 60000), 0);
    int64_t t0 = vw_clock_mono_ms ();
    vw_runner_destroy (&runner);
    assert_null (runner);
    assert_true (vw_clock_mono_ms () - t0 < 5000);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_output_and_status, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_no_shell, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_truncated, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_timeout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_kill_after_grace, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_cancel, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_cannot_start, s_setup, s_teardown),
        cmocka_unit_test (test_destroy_while_running),
    };
    return cmocka_run_group_tests_name ("vw_runner", tests, NULL, NULL);
}
