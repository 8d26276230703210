/*  vw_cmdpage - see vw_cmdpage.h. The writer is msgpack-c's packer; the
    reader decodes the few msgpack types a row uses by hand: msgpack-c's
    unpacker builds an object tree in a fresh zone for every row it returns,
    and a recovery reads hundreds of thousands of rows. */
#include "vw_cmdpage.h"
#include "vw_mpack.h"

#include <string.h>

static int
s_pack_str (msgpack_packer *pk, vw_cmdpage_str_t s)
{
    if (msgpack_pack_str (pk, s.len))
        return -1;
    return s.len ? msgpack_pack_str_body (pk, s.ptr, s.len) : 0;
}

int
vw_cmdpage_pack (msgpack_sbuffer *sbuf, const vw_cmdpage_row_t *row)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, sbuf, msgpack_sbuffer_write);
    if (msgpack_pack_array (&pk, VW_CMDPAGE_FIELDS) || s_pack_str (&pk, row->command_id) ||
        s_pack_str (&pk, row->agent_id) || s_pack_str (&pk, row->type) ||
        s_pack_str (&pk, row->payload) ||
        (row->executing ? msgpack_pack_true (&pk) : msgpack_pack_false (&pk)))
        return -1;
    int rc = 0;
    const int64_t ints[] = {
        row->priority,    row->seq,        row->attempts,   row->failures,
        row->max_retries, row->timeout_ms, row->expires_at, row->next_attempt_at};
    for (size_t i = 0; rc == 0 && i < sizeof ints / sizeof ints[0]; i++)
        rc = msgpack_pack_int64 (&pk, ints[i]);
    return rc ? -1 : 0;
}

void
vw_cmdpage_reader_init (vw_cmdpage_reader_t *self, const uint8_t *data, size_t size)
{
    self->data = data;
    self->size = data ? size : 0;
    self->pos = 0;
}

//  --------------------------------------------------------------------------
//  Reading: each helper takes one value at the cursor, or fails (-1)
//  wherever it stopped; the reader's own position moves only past whole
//  rows.

typedef struct {
    const uint8_t *data;
    size_t size, pos;
} s_cursor_t;

//  n big-endian bytes as an unsigned number.
static int
s_take (s_cursor_t *c, size_t n, uint64_t *value)
{
    if (c->size - c->pos < n)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | c->data[c->pos + i];
    c->pos += n;
    *value = v;
    return 0;
}

static int
s_read_int (s_cursor_t *c, int64_t *out)
{
    uint64_t v;
    if (s_take (c, 1, &v))
        return -1;
    uint8_t b = (uint8_t) v;
    if (b <= 0x7f || b >= 0xe0) {  //  positive and negative fixint
        *out = (int8_t) b;
        return 0;
    }
    //  uint 8/16/32/64 are 0xcc..0xcf, int 8/16/32/64 are 0xd0..0xd3
    if (b < 0xcc || b > 0xd3)
        return -1;
    bool sign = b >= 0xd0;
    size_t n = (size_t) 1 << (sign ? b - 0xd0 : b - 0xcc);
    if (s_take (c, n, &v))
        return -1;
    if (!sign) {
        if (v > INT64_MAX)
            return -1;
        *out = (int64_t) v;
    }
    else if (n == 8)
        *out = (int64_t) v;
    else {
        uint64_t top = (uint64_t) 1 << (8 * n - 1);  //  sign bit of an n-byte number
        *out = (int64_t) (v ^ top) - (int64_t) top;
    }
    return 0;
}

static int
s_read_str (s_cursor_t *c, vw_cmdpage_str_t *out)
{
    uint64_t b, len;
    if (s_take (c, 1, &b))
        return -1;
    if (b >= 0xa0 && b <= 0xbf)
        len = b & 0x1f;
    else if (b < 0xd9 || b > 0xdb || s_take (c, (size_t) 1 << (b - 0xd9), &len))
        return -1;
    if (c->size - c->pos < len)
        return -1;
    const char *ptr = (const char *) c->data + c->pos;
    if (memchr (ptr, 0, (size_t) len))
        return -1;  //  a C string later: it would be cut short silently
    out->ptr = ptr;
    out->len = (size_t) len;
    c->pos += (size_t) len;
    return 0;
}

static int
s_read_array (s_cursor_t *c, uint64_t *count)
{
    uint64_t b;
    if (s_take (c, 1, &b))
        return -1;
    if (b >= 0x90 && b <= 0x9f) {
        *count = b & 0x0f;
        return 0;
    }
    if (b == 0xdc)
        return s_take (c, 2, count);
    if (b == 0xdd)
        return s_take (c, 4, count);
    return -1;
}

int
vw_cmdpage_next (vw_cmdpage_reader_t *self, vw_cmdpage_row_t *row)
{
    if (self->pos >= self->size)
        return 0;
    s_cursor_t c = {self->data, self->size, self->pos};
    uint64_t count, executing;
    if (s_read_array (&c, &count) || count < VW_CMDPAGE_FIELDS ||
        s_read_str (&c, &row->command_id) || s_read_str (&c, &row->agent_id) ||
        s_read_str (&c, &row->type) || s_read_str (&c, &row->payload) ||
        s_take (&c, 1, &executing) || (executing != 0xc2 && executing != 0xc3))
        return -1;
    row->executing = executing == 0xc3;
    int64_t *ints[] = {
        &row->priority,    &row->seq,        &row->attempts,   &row->failures,
        &row->max_retries, &row->timeout_ms, &row->expires_at, &row->next_attempt_at};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (s_read_int (&c, ints[i]))
            return -1;
    //  Elements a newer writer added: skipped, whatever they are.
    for (uint64_t i = VW_CMDPAGE_FIELDS; i < count; i++) {
        size_t used = 0;
        if (vw_mpack_check (c.data + c.pos, c.size - c.pos, 8, &used))
            return -1;
        c.pos += used;
    }
    self->pos = c.pos;
    return 1;
}
