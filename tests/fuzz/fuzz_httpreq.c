/*  fuzz_httpreq - libFuzzer target for the API edge's HTTP/1.1 request
    parser (edge/vw_httpreq).

    Each input is fed as a stream of requests, first whole and then in
    pieces whose sizes come from the input itself. Properties: the parser
    never takes more bytes than it is given, takes all of them while it
    asks for more, gives the same answer however the bytes are split, and
    a parsed request keeps its promises: decoded path segments hold no
    '/', NUL or control character and are never "." or "..", query values
    hold no control character, and the body is within its limit. An error
    has a 4xx/5xx status, a code and a message. Anything else aborts. */
#include "vw_httpreq.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
s_require (int condition, const char *what)
{
    if (!condition) {
        fprintf (stderr, "fuzz_httpreq: property violated: %s\n", what);
        abort ();
    }
}

static const vw_httpreq_limits_t s_limits = {.max_url = 512, .max_header = 1024, .max_body = 2048};

static bool
s_clean (const char *s)
{
    for (; *s; s++)
        if ((unsigned char) *s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

static void
s_check_request (const vw_httpreq_t *req)
{
    s_require (req->head_done, "a done request has its head");
    s_require (req->method && *req->method, "method");
    s_require (req->path && req->path[0] == '/', "path starts with '/'");
    s_require (req->nsegments >= 0 && req->nsegments <= VW_HTTPREQ_MAX_SEGMENTS, "segments");
    for (int i = 0; i < req->nsegments; i++) {
        const char *seg = req->segment[i];
        s_require (!strchr (seg, '/'), "no slash in a segment");
        s_require (s_clean (seg), "no control character in a segment");
        s_require (strcmp (seg, ".") && strcmp (seg, ".."), "no dot segment");
    }
    for (int i = 0; i < req->nargs; i++) {
        s_require (*req->arg_key[i], "query keys are not empty");
        s_require (s_clean (req->arg_key[i]) && s_clean (req->arg_val[i]), "clean query");
    }
    s_require (req->body_len <= s_limits.max_body, "body within its limit");
    s_require (!req->body_len || req->body[req->body_len] == 0, "body is NUL-terminated");
}

//  Parses the whole input as requests; returns a digest of the outcome.
static uint64_t
s_run (const uint8_t *data, size_t size, size_t step_seed)
{
    vw_httpreq_t *req = vw_httpreq_new (&s_limits);
    s_require (req != NULL, "new");
    uint64_t digest = 1469598103934665603ULL;
    size_t off = 0, piece = 0;
    while (off < size) {
        size_t step = step_seed ? 1 + (data[piece++ % size] + step_seed) % 97 : size - off;
        if (step > size - off)
            step = size - off;
        size_t used = 0;
        vw_httpreq_state_t state = vw_httpreq_feed (req, (const char *) data + off, step, &used);
        s_require (used <= step, "takes at most what it is given");
        off += used;
        if (state == VW_HTTPREQ_MORE) {
            s_require (used == step, "takes everything while it asks for more");
            continue;
        }
        if (state == VW_HTTPREQ_ERROR) {
            s_require (req->status >= 400 && req->status <= 599, "error status");
            s_require (req->code && *req->code && *req->message, "error code and message");
            digest = (digest ^ (uint64_t) req->status) * 1099511628211ULL;
            digest = (digest ^ off) * 1099511628211ULL;
            break;
        }
        s_check_request (req);
        digest = (digest ^ req->body_len) * 1099511628211ULL;
        digest = (digest ^ (uint64_t) req->nsegments) * 1099511628211ULL;
        digest = (digest ^ off) * 1099511628211ULL;
        vw_httpreq_reset (req);
    }
    vw_httpreq_destroy (&req);
    return digest;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (!size)
        return 0;
    uint64_t whole = s_run (data, size, 0);
    s_require (s_run (data, size, 1) == whole, "same answer byte by byte in pieces");
    s_require (s_run (data, size, 7) == whole, "same answer in other pieces");
    return 0;
}
