/*  vw_httpreq - a strict, bounded HTTP/1.1 request parser for the API edge.

    The HTTP API does not use lws's HTTP parser: lws percent-decodes the
    whole target and then folds "/x/../y" dot segments, so an encoded
    slash (x%2f..%2fgw-02) could name another resource, and it drops
    over-long header blocks without an answer. This class reads the bytes
    of one request at a time and makes every refusal an answer:

      - the request line: METHOD SP target SP HTTP/1.x; a target longer than
        limits.max_url -> 414; HTTP/2+ -> 505; anything malformed -> 400;
      - header fields: over limits.max_header bytes or 100 fields -> 431;
        obs-fold, control characters, a field name with spaces -> 400;
      - framing: Content-Length (digits only, one value) or
        Transfer-Encoding: chunked, never both (400); a declared length over
        limits.max_body -> 413 as soon as the headers are in, before any
        body byte is read; a chunked body is decoded and limited the same
        way (413 once it grows past the limit);
      - the target is split into path and query first; the path into
        segments on '/'; then each segment (and each query key and value)
        is percent-decoded once. A segment that is "." or "..", or that
        decodes to something containing '/', NUL or a control character,
        and a malformed escape anywhere, are 400: nothing is normalised,
        so no request names a resource other than the one it spells.

    After VW_HTTPREQ_ERROR the connection cannot be resynchronised: answer
    with status/code/message and close. After VW_HTTPREQ_DONE the request's
    fields below are valid until vw_httpreq_reset; bytes after the request
    (pipelining) are left unconsumed for the next one.

    The fields of vw_httpreq_t are read-only for callers; strings point
    into buffers the parser owns. */
#ifndef VW_HTTPREQ_H
#define VW_HTTPREQ_H

#include <stdbool.h>
#include <stddef.h>

#define VW_HTTPREQ_MAX_SEGMENTS 16
#define VW_HTTPREQ_MAX_ARGS     32
#define VW_HTTPREQ_MAX_FIELDS   100

typedef struct {
    size_t max_url;     //  request target (path + query), bytes
    size_t max_header;  //  header fields after the request line (and trailers), bytes
    size_t max_body;    //  body after de-chunking, bytes
} vw_httpreq_limits_t;

typedef enum {
    VW_HTTPREQ_MORE = 0,  //  needs more bytes
    VW_HTTPREQ_DONE,      //  a whole request is in
    VW_HTTPREQ_ERROR      //  answer status/code/message, then close
} vw_httpreq_state_t;

typedef struct {
    const char *name;   //  as sent
    const char *value;  //  without surrounding whitespace
} vw_httpreq_field_t;

typedef struct vw_httpreq_t vw_httpreq_t;

struct vw_httpreq_t {
    //  Filled as parsing goes; valid once head_done (body: once DONE).
    bool started;          //  some byte of this request arrived
    bool head_done;        //  request line and header fields are in
    bool expect_continue;  //  "Expect: 100-continue" and a body is due
    bool keep_alive;       //  the connection may carry another request
    int version_minor;     //  HTTP/1.<minor>
    const char *method;    //  "GET", "POST", …
    const char *target;    //  raw request target as sent
    const char *path;      //  raw path (target up to '?')
    int nsegments;         //  path segments, decoded
    const char *segment[VW_HTTPREQ_MAX_SEGMENTS];
    int nargs;  //  query parameters, decoded ('+' is a space)
    const char *arg_key[VW_HTTPREQ_MAX_ARGS];
    const char *arg_val[VW_HTTPREQ_MAX_ARGS];
    int nfields;
    vw_httpreq_field_t field[VW_HTTPREQ_MAX_FIELDS];
    bool has_body;  //  Content-Length > 0 or chunked
    char *body;     //  NUL-terminated (the NUL is not counted)
    size_t body_len;
    //  Set with VW_HTTPREQ_ERROR.
    int status;
    const char *code;
    char message[160];
    //  Private: the parser's state.
    vw_httpreq_limits_t limits;
    int state;
    char *head;  //  request line + fields, up to the blank line
    size_t head_len, head_cap, head_skip;
    size_t method_len;   //  bytes before the first space so far
    bool method_done;    //  the first space was seen
    size_t line_end;     //  bytes of the request line with its CRLF (0: not yet)
    size_t line_start;   //  where the current field line starts
    unsigned char last;  //  the byte before the current one (trailers)
    char *dec;           //  decoded segments and arguments
    size_t body_cap;
    size_t content_left;  //  Content-Length still to read / chunk data left
    size_t line_len;      //  chunk extension or trailer line bytes so far
    size_t trailer_bytes;
    bool trailer_colon;  //  the current trailer line's name is complete
    int size_digits;     //  hex digits of the chunk size so far
};

//  A parser with these limits (copied); NULL if out of memory.
vw_httpreq_t *vw_httpreq_new (const vw_httpreq_limits_t *limits);
void vw_httpreq_destroy (vw_httpreq_t **self_p);

//  Consumes bytes of the current request from data. *used says how many
//  were taken (the rest belongs to the next request, or is to be fed again
//  after MORE... never: MORE always takes everything).
vw_httpreq_state_t vw_httpreq_feed (vw_httpreq_t *self, const char *data, size_t len, size_t *used);

//  Forgets the request (after its answer) and is ready for the next one.
//  Keeps the buffers for reuse, up to a modest size.
void vw_httpreq_reset (vw_httpreq_t *self);

//  The value of a header field (case-insensitive name), NULL if absent.
const char *vw_httpreq_header (const vw_httpreq_t *self, const char *name);

//  The value of a query parameter, NULL if absent.
const char *vw_httpreq_arg (const vw_httpreq_t *self, const char *key);

//  "OK", "Not Found", … for a status code ("Unknown" for others).
const char *vw_httpreq_reason (int status);

#endif
