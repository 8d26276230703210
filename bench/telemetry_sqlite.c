/*  telemetry-sqlite - the storage baseline of bench/telemetry.sh (issue 11):
    how fast a plain C loop puts the same frames into SQLite, in the same
    batches, with nothing else around it.

        telemetry-sqlite FILE AGENTS METRICS POINTS FRAMES_PER_TX SECONDS

    Frames are built as viworks-agent --simulate builds them (AGENTS agents
    taking turns, POINTS points of METRICS simulated gateway metrics each,
    agent/vw_simmetrics) and packed by vw_points, as the edge packs them;
    then inserted into a table of the backend's telemetry_frames shape (with
    its index), FRAMES_PER_TX frames per transaction, WAL and
    synchronous=NORMAL as the store runs, for SECONDS. The frames are built
    before the clock starts: only SQLite is timed. Prints one line of
    key=value figures.
*/
#include "vw_points.h"
#include "vw_simmetrics.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int
s_exec (sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec (db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf (stderr, "telemetry-sqlite: %s: %s\n", sql, err ? err : "?");
        sqlite3_free (err);
        return -1;
    }
    return 0;
}

int
main (int argc, char **argv)
{
    if (argc != 7) {
        fprintf (stderr,
                 "usage: telemetry-sqlite FILE AGENTS METRICS POINTS FRAMES_PER_TX SECONDS\n");
        return 2;
    }
    const char *file = argv[1];
    int agents = atoi (argv[2]), metrics = atoi (argv[3]), points = atoi (argv[4]);
    int per_tx = atoi (argv[5]);
    double seconds = atof (argv[6]);
    if (agents < 1 || metrics < 1 || metrics > 256 || points < 1 || per_tx < 1 || seconds <= 0) {
        fprintf (stderr, "telemetry-sqlite: bad arguments\n");
        return 2;
    }
    //  A ring of prepared frames: one per agent, a few rounds deep.
    int rounds = 4, nframes = agents * rounds;
    uint8_t **frames = (uint8_t **) calloc ((size_t) nframes, sizeof *frames);
    size_t *sizes = (size_t *) calloc ((size_t) nframes, sizeof *sizes);
    double *values = (double *) calloc ((size_t) agents * (size_t) metrics, sizeof (double));
    uint64_t rng = 88172645463325252ull;
    int64_t ts = 1764230000000;
    for (int a = 0; a < agents; a++)
        vw_simmetrics_init (values + (size_t) a * metrics, (size_t) metrics);
    size_t bytes = 0;
    for (int f = 0; f < nframes; f++) {
        int a = f % agents;
        json_t *array = json_array ();
        for (int p = 0; p < points; p++)
            json_array_append_new (
                array, json_pack ("{s:I, s:o}", "ts", (json_int_t) (ts + f * 100 + p), "metrics",
                                  vw_simmetrics_step (values + (size_t) a * metrics,
                                                      (size_t) metrics, &rng)));
        vw_points_info_t info;
        if (vw_points_pack (array, &frames[f], &sizes[f], &info)) {
            fprintf (stderr, "telemetry-sqlite: cannot pack a frame\n");
            return 1;
        }
        bytes += sizes[f];
        json_decref (array);
    }
    remove (file);
    sqlite3 *db = NULL;
    if (sqlite3_open (file, &db) != SQLITE_OK ||
        s_exec (db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;") ||
        s_exec (db, "CREATE TABLE telemetry_frames (id INTEGER PRIMARY KEY, tid INTEGER NOT "
                    "NULL, seq INTEGER NOT NULL, ts_min INTEGER NOT NULL, ts_max INTEGER NOT "
                    "NULL, points BLOB NOT NULL) STRICT;"
                    "CREATE INDEX telemetry_frames_tid_ts ON telemetry_frames (tid, ts_max);"))
        return 1;
    sqlite3_stmt *insert = NULL;
    if (sqlite3_prepare_v2 (db,
                            "INSERT INTO telemetry_frames (tid, seq, ts_min, ts_max, points) "
                            "VALUES (?1, ?2, ?3, ?4, ?5)",
                            -1, &insert, NULL) != SQLITE_OK)
        return 1;
    double t0 = s_now (), t = t0;
    long long written = 0, commits = 0;
    while (t - t0 < seconds) {
        if (s_exec (db, "BEGIN IMMEDIATE"))
            return 1;
        for (int i = 0; i < per_tx; i++, written++) {
            int f = (int) (written % nframes);
            sqlite3_bind_int64 (insert, 1, f % agents + 1);
            sqlite3_bind_int64 (insert, 2, written);
            sqlite3_bind_int64 (insert, 3, ts + written);
            sqlite3_bind_int64 (insert, 4, ts + written + points);
            sqlite3_bind_blob (insert, 5, frames[f], (int) sizes[f], SQLITE_STATIC);
            if (sqlite3_step (insert) != SQLITE_DONE) {
                fprintf (stderr, "telemetry-sqlite: insert: %s\n", sqlite3_errmsg (db));
                return 1;
            }
            sqlite3_reset (insert);
        }
        if (s_exec (db, "COMMIT"))
            return 1;
        commits++;
        t = s_now ();
    }
    double elapsed = t - t0;
    printf ("frames=%lld commits=%lld seconds=%.2f frames_per_s=%.0f values_per_s=%.0f "
            "bytes_per_value_packed=%.2f\n",
            written, commits, elapsed, (double) written / elapsed,
            (double) written * points * metrics / elapsed,
            (double) bytes / ((double) nframes * points * metrics));
    sqlite3_finalize (insert);
    sqlite3_close (db);
    for (int f = 0; f < nframes; f++)
        free (frames[f]);
    free (frames);
    free (sizes);
    free (values);
    remove (file);
    return 0;
}
