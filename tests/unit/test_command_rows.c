/*  The commands table: submission, idempotency, transitions, listing and
    the recovery scan, on a real SQLite file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vw_agents.h"
#include "vw_command_rows.h"
#include "vw_testbroker.h"

typedef struct {
    char dir[64];
    vw_db_t *db;
} fixture_t;

static int
s_setup (void **state)
{
    fixture_t *f = calloc (1, sizeof *f);
    snprintf (f->dir, sizeof f->dir, "/tmp/vw-cmdrows-XXXXXX");
    if (!mkdtemp (f->dir))
        return -1;
    char path[128];
    snprintf (path, sizeof path, "%s/db.sqlite", f->dir);
    vw_db_status_t status;
    f->db = vw_db_open (path, false, &status, NULL, 0);
    if (!f->db)
        return -1;
    uint8_t hash[32] = {1};
    vw_result_t r = {0};
    vw_agents_create (f->db, "gw-1", NULL, NULL, 0, hash, 32, 1000, &r);
    json_decref (r.body);
    vw_agents_create (f->db, "gw-2", NULL, NULL, 0, hash, 32, 1000, &r);
    json_decref (r.body);
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    fixture_t *f = *state;
    vw_db_close (&f->db);
    char cmd[128];
    snprintf (cmd, sizeof cmd, "rm -rf %s", f->dir);
    int rc = system (cmd);
    (void) rc;
    free (f);
    return 0;
}

static void
s_submit (fixture_t *f, const char *id, const char *agent, int priority, const char *key,
          vw_result_t *r, int64_t *seq, bool *replayed)
{
    vw_command_new_t c = {.command_id = id,
                          .agent_id = agent,
                          .type = "ping",
                          .payload_json = "{}",
                          .priority = priority,
                          .timeout_ms = 30000,
                          .max_retries = 3,
                          .created_at = 5000,
                          .expires_at = 5000 + 86400000,
                          .created_by = "tester",
                          .idempotency_key = key};
    memset (r, 0, sizeof *r);
    vw_command_rows_insert (f->db, &c, seq, replayed, r);
}

static void
test_submit_and_get (void **state)
{
    fixture_t *f = *state;
    vw_result_t r;
    int64_t seq1, seq2;
    bool replayed;
    s_submit (f, "c1", "gw-1", 1, NULL, &r, &seq1, &replayed);
    assert_int_equal (r.status, 202);
    assert_false (replayed);
    assert_string_equal (json_string_value (json_object_get (r.body, "state")), "pending");
    assert_string_equal (json_string_value (json_object_get (r.body, "priority")), "normal");
    assert_int_equal (json_integer_value (json_object_get (r.body, "attempts")), 0);
    assert_true (json_is_null (json_object_get (r.body, "started_at")));
    //  The 202 body is built from the inserted values, not read back: it
    //  must be exactly the row as a read returns it, field for field.
    vw_result_t read;
    memset (&read, 0, sizeof read);
    vw_command_rows_get (f->db, "c1", &read);
    assert_int_equal (read.status, 200);
    char *built = json_dumps (r.body, JSON_COMPACT);
    char *stored = json_dumps (read.body, JSON_COMPACT);
    assert_string_equal (built, stored);
    free (built);
    free (stored);
    json_decref (read.body);
    json_decref (r.body);
    s_submit (f, "c2", "gw-1", 0, NULL, &r, &seq2, &replayed);
    json_decref (r.body);
    assert_true (seq2 > seq1);
    s_submit (f, "c3", "nobody", 1, NULL, &r, &seq1, &replayed);
    assert_int_equal (r.status, 404);
    vw_command_rows_get (f->db, "c1", &r);
    assert_int_equal (r.status, 200);
    json_decref (r.body);
    vw_command_rows_get (f->db, "zz", &r);
    assert_int_equal (r.status, 404);
}

static void
test_idempotency_and_revoked (void **state)
{
    fixture_t *f = *state;
    vw_result_t r;
    int64_t seq;
    bool replayed;
    s_submit (f, "k1", "gw-1", 1, "key-1", &r, &seq, &replayed);
    assert_int_equal (r.status, 202);
    json_decref (r.body);
    s_submit (f, "k2", "gw-1", 1, "key-1", &r, &seq, &replayed);
    assert_int_equal (r.status, 202);
    assert_true (replayed);
    assert_string_equal (json_string_value (json_object_get (r.body, "command_id")), "k1");
    json_decref (r.body);
    vw_command_rows_get (f->db, "k2", &r);
    assert_int_equal (r.status, 404);  //  no second command
    vw_agents_revoke (f->db, "gw-2", 6000, &r);
    s_submit (f, "k3", "gw-2", 1, NULL, &r, &seq, &replayed);
    assert_int_equal (r.status, 409);
}

static void
test_transitions (void **state)
{
    fixture_t *f = *state;
    vw_result_t r;
    int64_t seq;
    bool replayed;
    s_submit (f, "t1", "gw-1", 1, NULL, &r, &seq, &replayed);
    json_decref (r.body);
    assert_int_equal (vw_command_rows_delivered (f->db, "t1", 10), 1);  //  not executing
    assert_int_equal (vw_command_rows_executing (f->db, "t1", 1, 100), 0);
    assert_int_equal (vw_command_rows_delivered (f->db, "t1", 110), 0);
    assert_int_equal (vw_command_rows_pending (f->db, "t1", 2100, "agent_error", "disk full", 1, 1),
                      0);
    vw_command_rows_get (f->db, "t1", &r);
    assert_string_equal (json_string_value (json_object_get (r.body, "state")), "pending");
    //  The failed attempt's error shows while retries remain.
    assert_string_equal (json_string_value (json_object_get (r.body, "failure_reason")),
                         "agent_error");
    assert_string_equal (json_string_value (json_object_get (r.body, "error")), "disk full");
    assert_int_equal (json_integer_value (json_object_get (r.body, "attempts")), 1);
    assert_int_equal (json_integer_value (json_object_get (r.body, "failures")), 1);
    assert_int_equal (json_integer_value (json_object_get (r.body, "next_attempt_at")), 2100);
    json_decref (r.body);
    assert_int_equal (vw_command_rows_executing (f->db, "t1", 2, 2200), 0);
    assert_int_equal (vw_command_rows_finish (f->db, "t1", "completed", NULL, "{\"pong\":true}",
                                              NULL, 1, 2, 2300, 0),
                      0);
    //  Finished is final: not applied (1), which is not an error (-1).
    assert_int_equal (
        vw_command_rows_finish (f->db, "t1", "failed", "timeout", NULL, NULL, 2, 2, 2400, 0), 1);
    assert_int_equal (vw_command_rows_executing (f->db, "t1", 3, 2500), 1);
    assert_int_equal (vw_command_rows_pending (f->db, "t1", 0, NULL, NULL, 2, 3), 1);
    assert_int_equal (vw_command_rows_executing (f->db, "no-such-command", 1, 2500), 1);
    vw_command_rows_get (f->db, "t1", &r);
    assert_string_equal (json_string_value (json_object_get (r.body, "state")), "completed");
    assert_int_equal (json_integer_value (json_object_get (r.body, "attempts")), 2);
    assert_int_equal (json_integer_value (json_object_get (r.body, "failures")), 1);
    assert_int_equal (json_integer_value (json_object_get (r.body, "started_at")), 100);
    assert_int_equal (json_integer_value (json_object_get (r.body, "finished_at")), 2300);
    assert_true (json_is_true (json_object_get (json_object_get (r.body, "result"), "pong")));
    assert_true (json_is_null (json_object_get (r.body, "error")));
    json_decref (r.body);
    //  The schema refuses unknown states and reasons.
    s_submit (f, "t2", "gw-1", 1, NULL, &r, &seq, &replayed);
    json_decref (r.body);
    assert_int_equal (
        vw_command_rows_finish (f->db, "t2", "exploded", NULL, NULL, NULL, 0, 0, 1, 0), -1);
    assert_int_equal (
        vw_command_rows_finish (f->db, "t2", "failed", "gremlins", NULL, NULL, 0, 0, 1, 0), -1);
    //  ... and a negative count of failures.
    assert_int_equal (vw_command_rows_pending (f->db, "t2", 10, "timeout", NULL, -1, 0), -1);
    //  Back to waiting for its agent after a lost attempt: no next_attempt_at,
    //  and the last failure's reason and error stay.
    assert_int_equal (vw_command_rows_executing (f->db, "t2", 1, 5), 0);
    assert_int_equal (vw_command_rows_pending (f->db, "t2", 20, "timeout", "slow", 1, 1), 0);
    assert_int_equal (vw_command_rows_executing (f->db, "t2", 2, 25), 0);
    assert_int_equal (vw_command_rows_delivered (f->db, "t2", 26), 0);
    assert_int_equal (vw_command_rows_pending (f->db, "t2", 0, NULL, NULL, 1, 2), 0);
    vw_command_rows_get (f->db, "t2", &r);
    assert_string_equal (json_string_value (json_object_get (r.body, "state")), "pending");
    assert_true (json_is_null (json_object_get (r.body, "next_attempt_at")));
    assert_true (json_is_null (json_object_get (r.body, "delivered_at")));
    assert_string_equal (json_string_value (json_object_get (r.body, "failure_reason")), "timeout");
    assert_int_equal (json_integer_value (json_object_get (r.body, "attempts")), 2);
    json_decref (r.body);
    assert_int_equal (vw_command_rows_finish (f->db, "t2", "cancelled", "cancelled_by_user", NULL,
                                              NULL, 1, 2, 30, 0),
                      0);
    //  A final failure records the count with it.
    s_submit (f, "t3", "gw-1", 1, NULL, &r, &seq, &replayed);
    assert_int_equal (json_integer_value (json_object_get (r.body, "failures")), 0);
    json_decref (r.body);
    for (int attempt = 1; attempt <= 2; attempt++) {
        assert_int_equal (vw_command_rows_executing (f->db, "t3", attempt, 10 * attempt), 0);
        assert_int_equal (vw_command_rows_pending (f->db, "t3", 100 * attempt, "agent_error", NULL,
                                                   attempt, attempt),
                          0);
    }
    assert_int_equal (vw_command_rows_executing (f->db, "t3", 3, 300), 0);
    assert_int_equal (
        vw_command_rows_finish (f->db, "t3", "failed", "agent_error", NULL, "boom", 3, 3, 310, 305),
        0);
    vw_command_rows_get (f->db, "t3", &r);
    //  The ack folded into the finish (the delivered write was never sent).
    assert_int_equal (json_integer_value (json_object_get (r.body, "delivered_at")), 305);
    assert_int_equal (json_integer_value (json_object_get (r.body, "attempts")), 3);
    assert_int_equal (json_integer_value (json_object_get (r.body, "failures")), 3);
    assert_true (json_is_null (json_object_get (r.body, "next_attempt_at")));
    json_decref (r.body);
}

static bool
s_collect (void *arg, const vw_command_row_t *row)
{
    json_array_append_new ((json_t *) arg, json_string (row->command_id));
    return true;
}

//  Every field of a recovery row, as JSON, for comparing.
static bool
s_collect_rows (void *arg, const vw_command_row_t *row)
{
    assert_int_equal (strlen (row->command_id), row->command_id_len);
    assert_int_equal (strlen (row->agent_id), row->agent_id_len);
    assert_int_equal (strlen (row->type), row->type_len);
    assert_int_equal (strlen (row->payload_json), row->payload_len);
    json_array_append_new (
        (json_t *) arg,
        json_pack ("{s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "id",
                   row->command_id, "agent", row->agent_id, "type", row->type, "payload",
                   row->payload_json, "state", row->state, "priority", row->priority, "seq",
                   (json_int_t) row->seq, "attempts", (json_int_t) row->attempts, "failures",
                   (json_int_t) row->failures, "max_retries", (json_int_t) row->max_retries,
                   "timeout_ms", (json_int_t) row->timeout_ms, "expires_at",
                   (json_int_t) row->expires_at, "next", (json_int_t) row->next_attempt_at));
    return true;
}

static void
test_recovery_scan (void **state)
{
    fixture_t *f = *state;
    vw_result_t r;
    int64_t seq[6];
    bool replayed;
    const char *ids[] = {"r0", "r1", "r2", "r3", "r4", "r5"};
    for (int i = 0; i < 6; i++) {
        s_submit (f, ids[i], i % 2 ? "gw-2" : "gw-1", i % 3, NULL, &r, &seq[i], &replayed);
        json_decref (r.body);
    }
    //  r0 waits out its second backoff, r1 is in flight, r2 finished,
    //  r3 lost its first dispatch with the connection (no failure), r4 and
    //  r5 were never sent.
    vw_command_rows_executing (f->db, "r0", 1, 10);
    vw_command_rows_pending (f->db, "r0", 2000, "timeout", NULL, 1, 1);
    vw_command_rows_executing (f->db, "r0", 2, 2000);
    vw_command_rows_pending (f->db, "r0", 6000, "agent_error", NULL, 2, 2);
    vw_command_rows_executing (f->db, "r1", 1, 20);
    vw_command_rows_executing (f->db, "r2", 1, 30);
    vw_command_rows_finish (f->db, "r2", "completed", NULL, "{}", NULL, 0, 1, 40, 0);
    vw_command_rows_executing (f->db, "r3", 1, 50);
    vw_command_rows_executing (f->db, "r3", 2, 60);

    json_t *rows = json_array ();
    assert_int_equal (vw_command_rows_unfinished (f->db, 0, 100, s_collect_rows, rows), 5);
    const char *expected[] = {"r0", "r1", "r3", "r4", "r5"};
    for (size_t i = 0; i < 5; i++)
        assert_string_equal (json_string_value (json_object_get (json_array_get (rows, i), "id")),
                             expected[i]);
    json_t *r0 = json_array_get (rows, 0);
    assert_string_equal (json_string_value (json_object_get (r0, "state")), "pending");
    assert_string_equal (json_string_value (json_object_get (r0, "agent")), "gw-1");
    assert_string_equal (json_string_value (json_object_get (r0, "type")), "ping");
    assert_string_equal (json_string_value (json_object_get (r0, "payload")), "{}");
    assert_int_equal (json_integer_value (json_object_get (r0, "seq")), seq[0]);
    assert_int_equal (json_integer_value (json_object_get (r0, "attempts")), 2);
    assert_int_equal (json_integer_value (json_object_get (r0, "failures")), 2);
    assert_int_equal (json_integer_value (json_object_get (r0, "max_retries")), 3);
    assert_int_equal (json_integer_value (json_object_get (r0, "timeout_ms")), 30000);
    assert_int_equal (json_integer_value (json_object_get (r0, "expires_at")), 5000 + 86400000);
    assert_int_equal (json_integer_value (json_object_get (r0, "next")), 6000);
    json_t *r1 = json_array_get (rows, 1);
    assert_string_equal (json_string_value (json_object_get (r1, "state")), "executing");
    assert_int_equal (json_integer_value (json_object_get (r1, "priority")), 1);
    assert_int_equal (json_integer_value (json_object_get (r1, "attempts")), 1);
    assert_int_equal (json_integer_value (json_object_get (r1, "failures")), 0);
    assert_int_equal (json_integer_value (json_object_get (r1, "next")), 0);
    json_t *r3 = json_array_get (rows, 2);
    assert_int_equal (json_integer_value (json_object_get (r3, "attempts")), 2);
    assert_int_equal (json_integer_value (json_object_get (r3, "failures")), 0);
    json_decref (rows);

    //  Paged by seq: two at a time, each page after the last seq of the one before.
    json_t *paged = json_array ();
    int64_t after = 0;
    int n;
    while ((n = vw_command_rows_unfinished (f->db, after, 2, s_collect_rows, paged)) > 0) {
        assert_true (n <= 2);
        after = json_integer_value (
            json_object_get (json_array_get (paged, json_array_size (paged) - 1), "seq"));
    }
    assert_int_equal (n, 0);
    assert_int_equal (json_array_size (paged), 5);
    json_decref (paged);
    assert_int_equal (vw_command_rows_unfinished (f->db, seq[5], 100, s_collect_rows, NULL), 0);
}

static void
test_list_and_unfinished (void **state)
{
    fixture_t *f = *state;
    vw_result_t r;
    int64_t seq;
    bool replayed;
    char id[16];
    for (int i = 0; i < 7; i++) {
        snprintf (id, sizeof id, "l%d", i);
        s_submit (f, id, "gw-1", i % 3, NULL, &r, &seq, &replayed);
        json_decref (r.body);
    }
    vw_command_rows_finish (f->db, "l3", "failed", "agent_error", NULL, "boom", 1, 1, 1, 0);
    vw_command_rows_executing (f->db, "l4", 1, 1);
    //  Newest first, three at a time.
    json_t *seen = json_array ();
    char cursor[32] = "";
    do {
        memset (&r, 0, sizeof r);
        vw_command_rows_list (f->db, "gw-1", NULL, 3, *cursor ? cursor : NULL, &r);
        assert_int_equal (r.status, 200);
        json_t *page = json_object_get (r.body, "commands");
        assert_true (json_array_size (page) <= 3);
        size_t i;
        json_t *c;
        json_array_foreach (page, i, c) json_array_append (seen, json_object_get (c, "command_id"));
        json_t *next = json_object_get (r.body, "next_cursor");
        snprintf (cursor, sizeof cursor, "%s",
                  json_is_string (next) ? json_string_value (next) : "");
        json_decref (r.body);
    } while (*cursor);
    assert_int_equal (json_array_size (seen), 7);
    assert_string_equal (json_string_value (json_array_get (seen, 0)), "l6");
    assert_string_equal (json_string_value (json_array_get (seen, 6)), "l0");
    json_decref (seen);
    vw_command_rows_list (f->db, NULL, "failed", 100, NULL, &r);
    assert_int_equal (json_array_size (json_object_get (r.body, "commands")), 1);
    json_decref (r.body);
    vw_command_rows_list (f->db, NULL, NULL, 10, "x", &r);
    assert_int_equal (r.status, 400);
    //  Recovery scan: pending and executing, in submit order, paged by seq.
    json_t *ids = json_array ();
    assert_int_equal (vw_command_rows_unfinished (f->db, 0, 100, s_collect, ids), 6);
    assert_string_equal (json_string_value (json_array_get (ids, 0)), "l0");
    assert_string_equal (json_string_value (json_array_get (ids, 3)), "l4");
    json_decref (ids);
}

//  A list answer is bounded by bytes too (it must fit in one message):
//  1,000 asked, 24 commands of 1 MiB payloads stored; each page stops at
//  about 16 MiB with a next_cursor, and the pages give every command once.
static void
test_list_bounded_by_bytes (void **state)
{
    fixture_t *f = *state;
    const size_t big = 1024 * 1024;
    char *payload = vw_tb_big_payload (big);
    assert_non_null (payload);
    const int count = 24;
    for (int i = 0; i < count; i++) {
        char id[16];
        snprintf (id, sizeof id, "b%02d", i);
        vw_command_new_t c = {.command_id = id,
                              .agent_id = "gw-1",
                              .type = "update_config",
                              .payload_json = payload,
                              .priority = 1,
                              .timeout_ms = 30000,
                              .max_retries = 3,
                              .created_at = 5000,
                              .expires_at = 5000 + 86400000,
                              .created_by = "tester"};
        vw_result_t r = {0};
        int64_t seq;
        bool replayed;
        vw_command_rows_insert (f->db, &c, &seq, &replayed, &r);
        assert_int_equal (r.status, 202);
        json_decref (r.body);
    }
    free (payload);
    char cursor[32] = "";
    int seen = 0, pages = 0;
    do {
        vw_result_t r = {0};
        vw_command_rows_list (f->db, "gw-1", NULL, 1000, *cursor ? cursor : NULL, &r);
        assert_int_equal (r.status, 200);
        json_t *page = json_object_get (r.body, "commands");
        char *text = json_dumps (r.body, JSON_COMPACT);
        assert_true (strlen (text) < 20 * big);
        free (text);
        seen += (int) json_array_size (page);
        json_t *next = json_object_get (r.body, "next_cursor");
        snprintf (cursor, sizeof cursor, "%s",
                  json_is_string (next) ? json_string_value (next) : "");
        json_decref (r.body);
        pages++;
    } while (*cursor && pages <= count);
    assert_int_equal (seen, count);
    assert_true (pages >= 2);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_submit_and_get, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_list_bounded_by_bytes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_idempotency_and_revoked, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_transitions, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_list_and_unfinished, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_recovery_scan, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name ("vw_command_rows", tests, NULL, NULL);
}
