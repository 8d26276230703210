/*  vw_httpreq - see vw_httpreq.h. */
#include "vw_httpreq.h"
#include "vw_text.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum {
    S_HEAD = 0,
    S_BODY,           //  Content-Length bytes
    S_CHUNK_SIZE,     //  hex digits of a chunk-size line
    S_CHUNK_BWS,      //  spaces after the digits: a ';' or the CR must follow
    S_CHUNK_EXT,      //  ";ext…" up to the CR
    S_CHUNK_SIZE_LF,  //  the LF after the size line's CR
    S_CHUNK_DATA,
    S_CHUNK_CR,  //  CRLF after a chunk's data
    S_CHUNK_LF,
    S_TRAILERS,
    S_DONE,
    S_ERROR
};

//  Method, two spaces and "HTTP/1.1" around the target.
#define S_LINE_EXTRA 32
#define S_METHOD_MAX 16
#define S_EXT_MAX    256
//  Buffers kept across keep-alive requests: enough for a usual head (a
//  bearer token) and a small body. More would stay allocated on every idle
//  connection until it closes (64 KiB each let 10,000 idle connections
//  hold over a GiB).
#define S_KEEP_BYTES  4096
#define S_BLANK_LINES 8
#define S_SIZE_DIGITS 16

static vw_httpreq_state_t s_fail (vw_httpreq_t *self, int status, const char *code, const char *fmt,
                                  ...) __attribute__ ((format (printf, 4, 5)));

static vw_httpreq_state_t
s_fail (vw_httpreq_t *self, int status, const char *code, const char *fmt, ...)
{
    self->status = status;
    self->code = code;
    va_list args;
    va_start (args, fmt);
    vsnprintf (self->message, sizeof self->message, fmt, args);
    va_end (args);
    self->state = S_ERROR;
    self->keep_alive = false;
    return VW_HTTPREQ_ERROR;
}

vw_httpreq_t *
vw_httpreq_new (const vw_httpreq_limits_t *limits)
{
    vw_httpreq_t *self = (vw_httpreq_t *) calloc (1, sizeof (vw_httpreq_t));
    if (!self)
        return NULL;
    self->limits = *limits;
    vw_httpreq_reset (self);
    return self;
}

void
vw_httpreq_destroy (vw_httpreq_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vw_httpreq_t *self = *self_p;
    free (self->head);
    free (self->dec);
    free (self->body);
    free (self);
    *self_p = NULL;
}

void
vw_httpreq_reset (vw_httpreq_t *self)
{
    //  Keep modest buffers for the next request on this connection.
    char *head = self->head, *dec = self->dec, *body = self->body;
    size_t head_cap = self->head_cap, body_cap = self->body_cap;
    if (head_cap > S_KEEP_BYTES) {
        free (head);
        head = NULL;
        head_cap = 0;
    }
    free (dec);
    if (body_cap > S_KEEP_BYTES) {
        free (body);
        body = NULL;
        body_cap = 0;
    }
    vw_httpreq_limits_t limits = self->limits;
    memset (self, 0, sizeof *self);
    self->limits = limits;
    self->head = head;
    self->head_cap = head_cap;
    self->body = body;
    self->body_cap = body_cap;
    self->state = S_HEAD;
}

const char *
vw_httpreq_header (const vw_httpreq_t *self, const char *name)
{
    for (int i = 0; i < self->nfields; i++)
        if (strcasecmp (self->field[i].name, name) == 0)
            return self->field[i].value;
    return NULL;
}

const char *
vw_httpreq_arg (const vw_httpreq_t *self, const char *key)
{
    for (int i = 0; i < self->nargs; i++)
        if (strcmp (self->arg_key[i], key) == 0)
            return self->arg_val[i];
    return NULL;
}

const char *
vw_httpreq_reason (int status)
{
    switch (status) {
        case 100: return "Continue";
        case 200: return "OK";
        case 201: return "Created";
        case 202: return "Accepted";
        case 204: return "No Content";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 409: return "Conflict";
        case 413: return "Content Too Large";
        case 414: return "URI Too Long";
        case 415: return "Unsupported Media Type";
        case 417: return "Expectation Failed";
        case 422: return "Unprocessable Content";
        case 429: return "Too Many Requests";
        case 431: return "Request Header Fields Too Large";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 503: return "Service Unavailable";
        case 505: return "HTTP Version Not Supported";
        default: return "Unknown";
    }
}

//  --------------------------------------------------------------------------
//  Character classes (RFC 9110 §5.6.2), locale-free

static bool
s_is_tchar (unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr ("!#$%&'*+-.^_`|~", c));
}

//  --------------------------------------------------------------------------
//  The target: path segments and query parameters, each decoded once

//  Decodes src[0..len) into *out (NUL-terminated) and advances *out. In a
//  query '+' is a space and an encoded '/' is an ordinary character (a
//  label value may hold one); in a path segment it would split the segment.
//  Returns 0, or -1 for a malformed escape, -2 for a control character or
//  NUL, -3 for a '/' that came from an escape in a path segment.
static int
s_decode (const char *src, size_t len, bool query, char **out)
{
    char *dst = *out;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) src[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int h1 = vw_text_hex_digit ((unsigned char) src[i + 1]),
                h2 = vw_text_hex_digit ((unsigned char) src[i + 2]);
            if (h1 < 0 || h2 < 0)
                return -1;
            c = (unsigned char) (h1 << 4 | h2);
            i += 2;
            if (c == '/' && !query)
                return -3;
        }
        else if (c == '+' && query)
            c = ' ';
        if (c < 0x20 || c == 0x7f)
            return -2;
        *dst++ = (char) c;
    }
    *dst++ = 0;
    *out = dst;
    return 0;
}

static vw_httpreq_state_t
s_parse_target (vw_httpreq_t *self)
{
    const char *target = self->target;
    size_t tlen = strlen (target);
    const char *query = strchr (target, '?');
    size_t plen = query ? (size_t) (query - target) : tlen;
    //  Every decoded piece is at most as long as its source, plus a NUL.
    self->dec = (char *) malloc (2 * tlen + 2);
    if (!self->dec)
        return s_fail (self, 500, "internal", "out of memory");
    char *out = self->dec;
    //  The raw path, for logs and messages.
    memcpy (out, target, plen);
    out[plen] = 0;
    self->path = out;
    out += plen + 1;

    //  Segments: "/" alone has none; "/a/b" has "a" and "b".
    const char *p = target + 1;
    const char *end = target + plen;
    while (plen > 1 && p <= end) {
        const char *slash = memchr (p, '/', (size_t) (end - p));
        const char *seg_end = slash ? slash : end;
        size_t n = (size_t) (seg_end - p);
        if (self->nsegments == VW_HTTPREQ_MAX_SEGMENTS)
            return s_fail (self, 404, "not_found", "no resource at %.64s…", self->path);
        char *seg = out;
        int rc = s_decode (p, n, false, &out);
        if (rc == -1)
            return s_fail (self, 400, "bad_request", "malformed percent-encoding in the path");
        if (rc == -2)
            return s_fail (self, 400, "bad_request",
                           "a path segment contains a control character or NUL");
        if (rc == -3)
            return s_fail (self, 400, "bad_request",
                           "a path segment contains an encoded '/' (%%2F)");
        if (strcmp (seg, ".") == 0 || strcmp (seg, "..") == 0)
            return s_fail (self, 400, "bad_request",
                           "a path segment is '.' or '..' (paths are not normalised)");
        self->segment[self->nsegments++] = seg;
        if (!slash)
            break;
        p = slash + 1;
    }

    //  Query parameters: "a=1&b=2"; empty pieces are skipped.
    const char *q = query ? query + 1 : NULL;
    while (q && *q) {
        const char *amp = strchr (q, '&');
        size_t n = amp ? (size_t) (amp - q) : strlen (q);
        if (n) {
            const char *eq = memchr (q, '=', n);
            size_t klen = eq ? (size_t) (eq - q) : n;
            if (!klen)
                return s_fail (self, 400, "bad_request", "a query parameter has no name");
            if (self->nargs == VW_HTTPREQ_MAX_ARGS)
                return s_fail (self, 400, "bad_request", "more than %d query parameters",
                               VW_HTTPREQ_MAX_ARGS);
            char *key = out;
            int rc = s_decode (q, klen, true, &out);
            char *val = out;
            if (rc == 0)
                rc =
                    eq ? s_decode (eq + 1, n - klen - 1, true, &out) : s_decode ("", 0, true, &out);
            if (rc == -1)
                return s_fail (self, 400, "bad_request", "malformed percent-encoding in the query");
            if (rc)
                return s_fail (self, 400, "bad_request",
                               "a query parameter contains a control character or NUL");
            for (int i = 0; i < self->nargs; i++)
                if (strcmp (self->arg_key[i], key) == 0)
                    return s_fail (self, 400, "bad_request",
                                   "query parameter '%.64s' is given more than once", key);
            self->arg_key[self->nargs] = key;
            self->arg_val[self->nargs++] = val;
        }
        q = amp ? amp + 1 : NULL;
    }
    return VW_HTTPREQ_MORE;
}

//  --------------------------------------------------------------------------
//  The head: request line and header fields, parsed in place

static vw_httpreq_state_t
s_parse_request_line (vw_httpreq_t *self, char *line)
{
    char *sp1 = strchr (line, ' ');
    if (!sp1 || sp1 == line || sp1 - line > S_METHOD_MAX)
        return s_fail (self, 400, "bad_request", "malformed request line");
    *sp1 = 0;
    self->method = line;
    char *target = sp1 + 1;
    char *sp2 = strchr (target, ' ');
    if (!sp2 || sp2 == target)
        return s_fail (self, 400, "bad_request", "malformed request line");
    *sp2 = 0;
    if ((size_t) (sp2 - target) > self->limits.max_url)
        return s_fail (self, 414, "uri_too_long", "the request target is longer than %zu bytes",
                       self->limits.max_url);
    for (const char *t = target; *t; t++) {
        unsigned char c = (unsigned char) *t;
        if (c <= 0x20 || c >= 0x7f)
            return s_fail (self, 400, "bad_request",
                           "the request target contains a byte that must be percent-encoded");
        if (c == '#')
            return s_fail (self, 400, "bad_request", "the request target contains a fragment");
    }
    if (*target != '/')
        return s_fail (self, 400, "bad_request", "the request target must be a path ('/…')");
    self->target = target;
    const char *version = sp2 + 1;
    if (strncmp (version, "HTTP/", 5) != 0 || !(version[5] >= '0' && version[5] <= '9') ||
        version[6] != '.' || !(version[7] >= '0' && version[7] <= '9') || version[8])
        return s_fail (self, 400, "bad_request", "malformed request line (HTTP version)");
    if (version[5] != '1')
        return s_fail (self, 505, "http_version_not_supported",
                       "only HTTP/1.0 and HTTP/1.1 are served");
    self->version_minor = version[7] - '0';
    return VW_HTTPREQ_MORE;
}

//  True if the comma-separated list `value` holds `token` (case-insensitive).
static bool
s_has_token (const char *value, const char *token)
{
    size_t tlen = strlen (token);
    const char *p = value;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        size_t n = strcspn (p, ", \t");
        if (n == tlen && strncasecmp (p, token, tlen) == 0)
            return true;
        p += n;
    }
    return false;
}

static vw_httpreq_state_t
s_parse_fields (vw_httpreq_t *self, char *p, char *end)
{
    while (p < end) {
        char *eol = strstr (p, "\r\n");  //  every line ends so (checked while reading)
        *eol = 0;
        if (*p == ' ' || *p == '\t')
            return s_fail (self, 400, "bad_request", "obsolete line folding in a header field");
        char *colon = strchr (p, ':');
        if (!colon || colon == p)
            return s_fail (self, 400, "bad_request", "malformed header field");
        for (char *n = p; n < colon; n++)
            if (!s_is_tchar ((unsigned char) *n))
                return s_fail (self, 400, "bad_request", "malformed header field name");
        *colon = 0;
        char *value = colon + 1;
        while (*value == ' ' || *value == '\t')
            value++;
        char *vend = value + strlen (value);
        while (vend > value && (vend[-1] == ' ' || vend[-1] == '\t'))
            *--vend = 0;
        for (char *v = value; *v; v++) {
            unsigned char c = (unsigned char) *v;
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return s_fail (self, 400, "bad_request",
                               "header field '%.64s' contains a control character", p);
        }
        if (self->nfields == VW_HTTPREQ_MAX_FIELDS)
            return s_fail (self, 431, "request_header_fields_too_large",
                           "more than %d header fields", VW_HTTPREQ_MAX_FIELDS);
        self->field[self->nfields].name = p;
        self->field[self->nfields++].value = value;
        p = eol + 2;
    }
    return VW_HTTPREQ_MORE;
}

//  Framing and connection semantics once the fields are in.
static vw_httpreq_state_t
s_parse_semantics (vw_httpreq_t *self)
{
    const char *length = NULL, *te = NULL;
    int lengths = 0, tes = 0;
    for (int i = 0; i < self->nfields; i++) {
        if (strcasecmp (self->field[i].name, "content-length") == 0) {
            length = self->field[i].value;
            lengths++;
        }
        else if (strcasecmp (self->field[i].name, "transfer-encoding") == 0) {
            te = self->field[i].value;
            tes++;
        }
    }
    if (lengths > 1 || tes > 1)
        return s_fail (self, 400, "bad_request", "%s is given more than once",
                       lengths > 1 ? "Content-Length" : "Transfer-Encoding");
    //  Fields that hold one value, which a proxy in front might take from
    //  another copy than we would: refused rather than guessed.
    static const char *const singletons[] = {"authorization", "content-type", "expect", NULL};
    for (int k = 0; singletons[k]; k++) {
        int copies = 0;
        for (int i = 0; i < self->nfields; i++)
            if (strcasecmp (self->field[i].name, singletons[k]) == 0 && ++copies > 1)
                return s_fail (self, 400, "bad_request", "%s is given more than once",
                               self->field[i].name);
    }
    if (length && te)
        return s_fail (self, 400, "bad_request",
                       "Content-Length and Transfer-Encoding must not be combined");
    if (te) {
        if (strcasecmp (te, "chunked") != 0 || self->version_minor == 0)
            return s_fail (self, 501, "not_implemented",
                           "Transfer-Encoding '%.32s' is not supported (only chunked, HTTP/1.1)",
                           te);
        self->has_body = true;
        self->state = S_CHUNK_SIZE;
    }
    else if (length) {
        size_t n = strlen (length);
        if (!n || n > 18 || strspn (length, "0123456789") != n)
            return s_fail (self, 400, "bad_request", "malformed Content-Length");
        unsigned long long declared = strtoull (length, NULL, 10);
        if (declared > self->limits.max_body)
            return s_fail (self, 413, "payload_too_large",
                           "the request body (%llu bytes) is larger than %zu bytes", declared,
                           self->limits.max_body);
        self->content_left = (size_t) declared;
        self->has_body = declared > 0;
        self->state = S_BODY;
    }
    //  Connection is a list, perhaps over several fields; "close"
    //  anywhere wins.
    bool close = false, keep = false;
    for (int i = 0; i < self->nfields; i++)
        if (strcasecmp (self->field[i].name, "connection") == 0) {
            close = close || s_has_token (self->field[i].value, "close");
            keep = keep || s_has_token (self->field[i].value, "keep-alive");
        }
    self->keep_alive = !close && (self->version_minor >= 1 || keep);
    const char *expect = vw_httpreq_header (self, "expect");
    if (expect) {
        if (strcasecmp (expect, "100-continue") != 0)
            return s_fail (self, 417, "expectation_failed", "only 'Expect: 100-continue' is met");
        self->expect_continue = self->has_body && self->version_minor >= 1;
    }
    //  Room for the whole declared body at once (it is within the limit).
    if (self->state == S_BODY && self->content_left + 1 > self->body_cap) {
        char *body = (char *) realloc (self->body, self->content_left + 1);
        if (!body)
            return s_fail (self, 500, "internal", "out of memory");
        self->body = body;
        self->body_cap = self->content_left + 1;
    }
    return VW_HTTPREQ_MORE;
}

static vw_httpreq_state_t
s_parse_head (vw_httpreq_t *self)
{
    char *line_end = strstr (self->head, "\r\n");
    *line_end = 0;
    if (s_parse_request_line (self, self->head) == VW_HTTPREQ_ERROR)
        return VW_HTTPREQ_ERROR;
    //  Fields are the bytes between the request line and the blank line.
    if (s_parse_fields (self, line_end + 2, self->head + self->head_len - 2) == VW_HTTPREQ_ERROR)
        return VW_HTTPREQ_ERROR;
    if (s_parse_target (self) == VW_HTTPREQ_ERROR)
        return VW_HTTPREQ_ERROR;
    if (s_parse_semantics (self) == VW_HTTPREQ_ERROR)
        return VW_HTTPREQ_ERROR;
    self->head_done = true;
    if (!self->has_body) {
        self->state = S_DONE;
        return VW_HTTPREQ_DONE;
    }
    return VW_HTTPREQ_MORE;
}

//  Bytes of the head, up to and including the blank line.
static vw_httpreq_state_t
s_feed_head (vw_httpreq_t *self, const char *data, size_t len, size_t *i)
{
    size_t cap_max = self->limits.max_url + S_LINE_EXTRA + self->limits.max_header + 4;
    while (*i < len) {
        unsigned char c = (unsigned char) data[(*i)++];
        //  Empty lines before the request line are ignored (RFC 9112 §2.2).
        if (!self->head_len && (c == '\r' || c == '\n')) {
            if (++self->head_skip > S_BLANK_LINES)
                return s_fail (self, 400, "bad_request", "malformed request line");
            continue;
        }
        self->started = true;
        if (!c)
            return s_fail (self, 400, "bad_request", "a NUL byte in the request head");
        if (self->head_len + 2 > self->head_cap) {
            size_t cap = self->head_cap ? self->head_cap * 2 : 1024;
            if (cap > cap_max + 2)
                cap = cap_max + 2;
            char *head = (char *) realloc (self->head, cap);
            if (!head)
                return s_fail (self, 500, "internal", "out of memory");
            self->head = head;
            self->head_cap = cap;
        }
        self->head[self->head_len++] = (char) c;
        self->head[self->head_len] = 0;
        if (!self->line_end) {
            //  The method is a token: refuse garbage (a TLS hello on the
            //  plain port, say) at its first byte, not after 16 KiB.
            if (!self->method_done) {
                if (c == ' ')
                    self->method_done = true;
                else if (!s_is_tchar (c) || ++self->method_len > S_METHOD_MAX)
                    return s_fail (self, 400, "bad_request", "malformed request line");
            }
            if (c == '\n') {
                if (self->head_len < 2 || self->head[self->head_len - 2] != '\r')
                    return s_fail (self, 400, "bad_request", "lines must end with CRLF");
                self->line_end = self->line_start = self->head_len;
            }
            else if (self->head_len > self->limits.max_url + S_LINE_EXTRA) {
                if (self->method_done && self->head[self->method_len + 1] == '/')
                    return s_fail (self, 414, "uri_too_long",
                                   "the request target is longer than %zu bytes",
                                   self->limits.max_url);
                return s_fail (self, 400, "bad_request", "malformed request line");
            }
            continue;
        }
        if (self->head_len - self->line_end > self->limits.max_header + 2)
            return s_fail (self, 431, "request_header_fields_too_large",
                           "the header fields are larger than %zu bytes", self->limits.max_header);
        if (c == '\n') {
            if (self->head[self->head_len - 2] != '\r')
                return s_fail (self, 400, "bad_request", "lines must end with CRLF");
            bool blank = self->head_len - self->line_start == 2;
            self->line_start = self->head_len;
            if (blank)
                return s_parse_head (self);
        }
    }
    return VW_HTTPREQ_MORE;
}

//  --------------------------------------------------------------------------
//  The body

static int
s_body_room (vw_httpreq_t *self, size_t need)
{
    if (need + 1 <= self->body_cap)
        return 0;
    size_t cap = self->body_cap ? self->body_cap : 4096;
    while (cap < need + 1)
        cap *= 2;
    if (cap > self->limits.max_body + 1)
        cap = self->limits.max_body + 1;
    char *body = (char *) realloc (self->body, cap);
    if (!body)
        return -1;
    self->body = body;
    self->body_cap = cap;
    return 0;
}

static vw_httpreq_state_t
s_done (vw_httpreq_t *self)
{
    self->state = S_DONE;
    if (self->body)
        self->body[self->body_len] = 0;
    return VW_HTTPREQ_DONE;
}

static vw_httpreq_state_t
s_feed_body (vw_httpreq_t *self, const char *data, size_t len, size_t *i)
{
    while (*i < len) {
        unsigned char c = (unsigned char) data[*i];
        switch (self->state) {
            case S_BODY: {
                size_t n = len - *i < self->content_left ? len - *i : self->content_left;
                memcpy (self->body + self->body_len, data + *i, n);
                self->body_len += n;
                self->content_left -= n;
                *i += n;
                if (!self->content_left)
                    return s_done (self);
                break;
            }
            case S_CHUNK_SIZE:
                (*i)++;
                if (vw_text_hex_digit (c) >= 0) {
                    if (++self->size_digits > S_SIZE_DIGITS)
                        return s_fail (self, 413, "payload_too_large",
                                       "the request body is larger than %zu bytes",
                                       self->limits.max_body);
                    self->content_left = self->content_left * 16 + (size_t) vw_text_hex_digit (c);
                    if (self->body_len + self->content_left > self->limits.max_body)
                        return s_fail (self, 413, "payload_too_large",
                                       "the request body is larger than %zu bytes",
                                       self->limits.max_body);
                    break;
                }
                if (!self->size_digits)
                    return s_fail (self, 400, "bad_request", "malformed chunk size");
                if (c == ';')
                    self->state = S_CHUNK_EXT;
                else if (c == ' ' || c == '\t')
                    self->state = S_CHUNK_BWS;
                else if (c == '\r')
                    self->state = S_CHUNK_SIZE_LF;
                else
                    return s_fail (self, 400, "bad_request", "malformed chunk size");
                break;
            case S_CHUNK_BWS:
                //  chunk-ext = *( BWS ";" … ): "5 junk" is not a size line.
                (*i)++;
                if (++self->line_len > S_EXT_MAX)
                    return s_fail (self, 400, "bad_request", "malformed chunk extension");
                if (c == ';')
                    self->state = S_CHUNK_EXT;
                else if (c == '\r')
                    self->state = S_CHUNK_SIZE_LF;
                else if (c != ' ' && c != '\t')
                    return s_fail (self, 400, "bad_request", "malformed chunk size");
                break;
            case S_CHUNK_EXT:
                //  Read and ignored, but held to what a field value may
                //  hold: no NUL, no bare CR or LF, no other control byte.
                (*i)++;
                if (c == '\r')
                    self->state = S_CHUNK_SIZE_LF;
                else if ((c < 0x20 && c != '\t') || c == 0x7f || ++self->line_len > S_EXT_MAX)
                    return s_fail (self, 400, "bad_request", "malformed chunk extension");
                break;
            case S_CHUNK_SIZE_LF:
                (*i)++;
                if (c != '\n')
                    return s_fail (self, 400, "bad_request", "chunk size lines end with CRLF");
                self->size_digits = 0;
                self->line_len = 0;
                if (!self->content_left) {
                    self->state = S_TRAILERS;
                    break;
                }
                if (s_body_room (self, self->body_len + self->content_left))
                    return s_fail (self, 500, "internal", "out of memory");
                self->state = S_CHUNK_DATA;
                break;
            case S_CHUNK_DATA: {
                size_t n = len - *i < self->content_left ? len - *i : self->content_left;
                memcpy (self->body + self->body_len, data + *i, n);
                self->body_len += n;
                self->content_left -= n;
                *i += n;
                if (!self->content_left)
                    self->state = S_CHUNK_CR;
                break;
            }
            case S_CHUNK_CR:
            case S_CHUNK_LF:
                (*i)++;
                if (c != (self->state == S_CHUNK_CR ? '\r' : '\n'))
                    return s_fail (self, 400, "bad_request", "chunk data must end with CRLF");
                self->state = self->state == S_CHUNK_CR ? S_CHUNK_LF : S_CHUNK_SIZE;
                break;
            case S_TRAILERS:
                //  Trailer fields are read, limited and checked like the
                //  head's (name ":" value, CRLF only), and ignored; the
                //  empty line ends the message.
                (*i)++;
                if (++self->trailer_bytes > self->limits.max_header)
                    return s_fail (self, 431, "request_header_fields_too_large",
                                   "the trailer fields are larger than %zu bytes",
                                   self->limits.max_header);
                if (c == '\n') {
                    if (!self->line_len || self->last != '\r')
                        return s_fail (self, 400, "bad_request", "trailer lines end with CRLF");
                    bool blank = self->line_len == 1;
                    if (!blank && !self->trailer_colon)
                        return s_fail (self, 400, "bad_request", "malformed trailer field");
                    self->line_len = 0;
                    self->trailer_colon = false;
                    if (blank)
                        return s_done (self);
                }
                else if (self->last == '\r' && self->line_len)
                    return s_fail (self, 400, "bad_request", "trailer lines end with CRLF");
                else if (c != '\r' && !self->trailer_colon) {
                    //  The name: a token (no obs-fold, no space before ':').
                    if (c == ':' && self->line_len)
                        self->trailer_colon = true;
                    else if (!s_is_tchar (c))
                        return s_fail (self, 400, "bad_request", "malformed trailer field");
                }
                else if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f)
                    return s_fail (self, 400, "bad_request",
                                   "a trailer field contains a control character");
                if (c != '\n')
                    self->line_len++;
                self->last = c;
                break;
            default: return s_fail (self, 500, "internal", "parser state");
        }
    }
    return VW_HTTPREQ_MORE;
}

vw_httpreq_state_t
vw_httpreq_feed (vw_httpreq_t *self, const char *data, size_t len, size_t *used)
{
    size_t i = 0;
    vw_httpreq_state_t rc = VW_HTTPREQ_MORE;
    if (self->state == S_ERROR) {
        *used = 0;
        return VW_HTTPREQ_ERROR;
    }
    if (self->state == S_DONE) {
        *used = 0;
        return VW_HTTPREQ_DONE;
    }
    if (self->state == S_HEAD)
        rc = s_feed_head (self, data, len, &i);
    if (rc == VW_HTTPREQ_MORE && self->state != S_HEAD && i < len)
        rc = s_feed_body (self, data, len, &i);
    *used = i;
    return rc;
}
