/*  vw_cmdpage - the rows of a commands_page message: the unfinished commands
    the store reads back for the scheduler when it rebuilds its queue after a
    restart (SPEC §5).

    A restart may have to move hundreds of thousands of rows, so the form is
    compact and positional rather than JSON objects: msgpack, one array per
    row, rows back to back, in this order:

        [command_id, agent_id, type, payload, executing, priority, seq,
         attempts, failures, max_retries, timeout_ms, expires_at,
         next_attempt_at]

    Strings are msgpack str (payload stays the JSON text the executor sends);
    executing is a bool (the row was in flight when the previous run ended);
    the rest are integers, next_attempt_at 0 when there is none. A reader
    skips elements past the ones it knows (a newer writer appended some) and
    refuses shorter rows.

    The writer appends to a msgpack_sbuffer. The reader walks a buffer
    without allocating; its strings are (pointer, length) pairs into that
    buffer, borrowed while the buffer lives and not NUL-terminated. Input is
    untrusted (the page may come over tcp): every length is checked, and a
    string with an embedded NUL is refused.
*/
#ifndef VW_CMDPAGE_H
#define VW_CMDPAGE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Elements of a row this version writes and reads.
#define VW_CMDPAGE_FIELDS 13

typedef struct {
    const char *ptr;
    size_t len;
} vw_cmdpage_str_t;

typedef struct {
    vw_cmdpage_str_t command_id, agent_id, type, payload;
    bool executing;
    int64_t priority, seq, attempts, failures, max_retries, timeout_ms, expires_at, next_attempt_at;
} vw_cmdpage_row_t;

//  Appends one row to sbuf. 0, or -1 when out of memory.
int vw_cmdpage_pack (msgpack_sbuffer *sbuf, const vw_cmdpage_row_t *row);

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t pos;
} vw_cmdpage_reader_t;

void vw_cmdpage_reader_init (vw_cmdpage_reader_t *self, const uint8_t *data, size_t size);

//  Reads the next row into *row: 1, or 0 at the end of the buffer, or -1 if
//  the bytes there are not a row (the reader stays at that row, and returns
//  -1 again).
int vw_cmdpage_next (vw_cmdpage_reader_t *self, vw_cmdpage_row_t *row);

#endif
