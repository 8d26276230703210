/*  test_httpreq - the HTTP/1.1 request parser of the API edge: framing,
    limits, and path/query decoding that never names another resource. */
#include "vw_httpreq.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const vw_httpreq_limits_t s_limits = {.max_url = 256, .max_header = 512, .max_body = 1024};

//  Feeds `text` in pieces of `step` bytes; returns the final state and
//  leaves the parser in *req_p.
static vw_httpreq_state_t
s_feed (vw_httpreq_t **req_p, const char *text, size_t len, size_t step, size_t *consumed)
{
    *req_p = vw_httpreq_new (&s_limits);
    assert_non_null (*req_p);
    size_t off = 0;
    vw_httpreq_state_t state = VW_HTTPREQ_MORE;
    while (off < len && state == VW_HTTPREQ_MORE) {
        size_t n = len - off < step ? len - off : step;
        size_t used = 0;
        state = vw_httpreq_feed (*req_p, text + off, n, &used);
        assert_true (used <= n);
        if (state == VW_HTTPREQ_MORE)
            assert_int_equal (used, n);
        off += used;
    }
    if (consumed)
        *consumed = off;
    return state;
}

//  Every piece size gives the same answer.
static vw_httpreq_t *
s_parse_ok (const char *text)
{
    vw_httpreq_t *req = NULL;
    for (size_t step = 1; step <= 7; step += 3) {
        assert_int_equal (s_feed (&req, text, strlen (text), step, NULL), VW_HTTPREQ_DONE);
        vw_httpreq_destroy (&req);
    }
    assert_int_equal (s_feed (&req, text, strlen (text), 4096, NULL), VW_HTTPREQ_DONE);
    return req;
}

static void
s_parse_fails (const char *text, size_t len, int status, const char *in_message)
{
    for (size_t step = 1; step <= 4096; step = step == 1 ? 5 : 4096) {
        vw_httpreq_t *req = NULL;
        vw_httpreq_state_t state = s_feed (&req, text, len, step, NULL);
        if (state != VW_HTTPREQ_ERROR || req->status != status ||
            (in_message && !strstr (req->message, in_message)))
            fail_msg ("%.60s: state %d status %d '%s' (want %d '%s')", text, state, req->status,
                      req->message, status, in_message ? in_message : "");
        assert_false (req->keep_alive);
        assert_non_null (req->code);
        vw_httpreq_destroy (&req);
        if (step == 4096)
            break;
    }
}

#define S_FAILS(text, status, msg) s_parse_fails (text, sizeof (text) - 1, status, msg)

static void
test_simple_get (void **state)
{
    vw_httpreq_t *req = s_parse_ok ("GET /agents/gw-01?limit=10&status=online HTTP/1.1\r\n"
                                    "Host: x\r\nAuthorization:  Bearer abc \r\n\r\n");
    assert_string_equal (req->method, "GET");
    assert_string_equal (req->path, "/agents/gw-01");
    assert_int_equal (req->nsegments, 2);
    assert_string_equal (req->segment[0], "agents");
    assert_string_equal (req->segment[1], "gw-01");
    assert_int_equal (req->nargs, 2);
    assert_string_equal (vw_httpreq_arg (req, "limit"), "10");
    assert_string_equal (vw_httpreq_arg (req, "status"), "online");
    assert_null (vw_httpreq_arg (req, "cursor"));
    assert_string_equal (vw_httpreq_header (req, "AUTHORIZATION"), "Bearer abc");
    assert_true (req->keep_alive);
    assert_false (req->has_body);
    vw_httpreq_destroy (&req);
    vw_httpreq_destroy (&req);  //  safe twice
}

static void
test_root_and_empty_segments (void **state)
{
    vw_httpreq_t *req = s_parse_ok ("GET / HTTP/1.1\r\n\r\n");
    assert_int_equal (req->nsegments, 0);
    vw_httpreq_destroy (&req);
    req = s_parse_ok ("GET /agents/ HTTP/1.1\r\n\r\n");
    assert_int_equal (req->nsegments, 2);
    assert_string_equal (req->segment[1], "");
    vw_httpreq_destroy (&req);
    req = s_parse_ok ("GET //agents HTTP/1.1\r\n\r\n");
    assert_int_equal (req->nsegments, 2);
    assert_string_equal (req->segment[0], "");
    vw_httpreq_destroy (&req);
}

//  The requests: none may name another resource.
static void
test_path_tricks (void **state)
{
    S_FAILS ("DELETE /agents/x%2f..%2fgw-02 HTTP/1.1\r\n\r\n", 400, "encoded '/'");
    S_FAILS ("GET /commands/..%2fagents HTTP/1.1\r\n\r\n", 400, "encoded '/'");
    S_FAILS ("GET /agents/gw-01%0ajunk HTTP/1.1\r\n\r\n", 400, "control character");
    S_FAILS ("GET /agents/gw-01%00 HTTP/1.1\r\n\r\n", 400, "control character");
    S_FAILS ("GET /agents/a%7f HTTP/1.1\r\n\r\n", 400, "control character");
    S_FAILS ("GET /agents/.. HTTP/1.1\r\n\r\n", 400, "'.' or '..'");
    S_FAILS ("GET /agents/. HTTP/1.1\r\n\r\n", 400, "'.' or '..'");
    S_FAILS ("GET /agents/%2e%2E HTTP/1.1\r\n\r\n", 400, "'.' or '..'");
    S_FAILS ("GET /x/../agents HTTP/1.1\r\n\r\n", 400, "'.' or '..'");
    S_FAILS ("GET /agents/%zz HTTP/1.1\r\n\r\n", 400, "percent-encoding");
    S_FAILS ("GET /agents/%4 HTTP/1.1\r\n\r\n", 400, "percent-encoding");
    S_FAILS ("GET /agents/% HTTP/1.1\r\n\r\n", 400, "percent-encoding");
    S_FAILS ("GET /agents#frag HTTP/1.1\r\n\r\n", 400, "fragment");
    S_FAILS ("GET agents HTTP/1.1\r\n\r\n", 400, "must be a path");
    S_FAILS ("GET http://h/agents HTTP/1.1\r\n\r\n", 400, "must be a path");
    S_FAILS ("GET /a\x01 HTTP/1.1\r\n\r\n", 400, NULL);
    S_FAILS ("GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", 400, "percent-encoded");
    //  Decoded once: %252f is the three characters "%2f", not a slash.
    vw_httpreq_t *req = s_parse_ok ("GET /agents/a%252fb HTTP/1.1\r\n\r\n");
    assert_string_equal (req->segment[1], "a%2fb");
    vw_httpreq_destroy (&req);
    req = s_parse_ok ("GET /agents/gw%2D01 HTTP/1.1\r\n\r\n");
    assert_string_equal (req->segment[1], "gw-01");
    assert_string_equal (req->path, "/agents/gw%2D01");
    vw_httpreq_destroy (&req);
}

static void
test_query (void **state)
{
    vw_httpreq_t *req =
        s_parse_ok ("GET /agents?label=site%3Aams&&x=a+b%2Bc&flag&e= HTTP/1.1\r\n\r\n");
    assert_int_equal (req->nargs, 4);
    assert_string_equal (vw_httpreq_arg (req, "label"), "site:ams");
    assert_string_equal (vw_httpreq_arg (req, "x"), "a b+c");
    assert_string_equal (vw_httpreq_arg (req, "flag"), "");
    assert_string_equal (vw_httpreq_arg (req, "e"), "");
    vw_httpreq_destroy (&req);
    S_FAILS ("GET /agents?a=1&a=2 HTTP/1.1\r\n\r\n", 400, "more than once");
    S_FAILS ("GET /agents?=1 HTTP/1.1\r\n\r\n", 400, "no name");
    S_FAILS ("GET /agents?a=%0a HTTP/1.1\r\n\r\n", 400, "control character");
    S_FAILS ("GET /agents?a=%g1 HTTP/1.1\r\n\r\n", 400, "percent-encoding");
    char line[400];
    int n = snprintf (line, sizeof line, "GET /a?");
    for (int i = 0; i <= VW_HTTPREQ_MAX_ARGS; i++)
        n += snprintf (line + n, sizeof line - (size_t) n, "k%d&", i);
    snprintf (line + n, sizeof line - (size_t) n, " HTTP/1.1\r\n\r\n");
    s_parse_fails (line, strlen (line), 400, "query parameters");
}

static void
test_request_line (void **state)
{
    S_FAILS ("garbage\r\n\r\n", 400, "request line");
    S_FAILS ("\x16\x03\x01\x02\x00", 400, "request line");
    S_FAILS ("GET /health HTTP/2.0\r\n\r\n", 505, NULL);
    S_FAILS ("GET /health HTTP/1.1 extra\r\n\r\n", 400, "version");
    S_FAILS ("GET  /health HTTP/1.1\r\n\r\n", 400, "request line");
    S_FAILS ("GET /health\r\n\r\n", 400, "request line");
    S_FAILS ("GET /health HTTP/1.1\n\n", 400, "CRLF");
    S_FAILS ("VERYVERYLONGMETHODNAME /x HTTP/1.1\r\n\r\n", 400, "request line");
    //  Leading empty lines are skipped, a few of them.
    vw_httpreq_t *req = s_parse_ok ("\r\n\r\nPOST /x HTTP/1.0\r\n\r\n");
    assert_string_equal (req->method, "POST");
    assert_int_equal (req->version_minor, 0);
    assert_false (req->keep_alive);
    vw_httpreq_destroy (&req);
    req = s_parse_ok ("FOO /x HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    assert_string_equal (req->method, "FOO");
    assert_true (req->keep_alive);
    vw_httpreq_destroy (&req);
    req = s_parse_ok ("GET /x HTTP/1.1\r\nConnection: foo, close\r\n\r\n");
    assert_false (req->keep_alive);
    vw_httpreq_destroy (&req);
}

static void
test_limits (void **state)
{
    char text[2048];
    //  A target of exactly max_url is fine, one more is 414.
    int n = snprintf (text, sizeof text, "GET /");
    memset (text + n, 'a', s_limits.max_url - 1);
    n += (int) s_limits.max_url - 1;
    n += snprintf (text + n, sizeof text - (size_t) n, " HTTP/1.1\r\n\r\n");
    vw_httpreq_t *req = s_parse_ok (text);
    vw_httpreq_destroy (&req);
    n = snprintf (text, sizeof text, "GET /");
    memset (text + n, 'a', s_limits.max_url);
    n += (int) s_limits.max_url;
    n += snprintf (text + n, sizeof text - (size_t) n, " HTTP/1.1\r\n\r\n");
    s_parse_fails (text, (size_t) n, 414, NULL);
    //  A target that never ends: 414 without waiting for the line's end.
    n = snprintf (text, sizeof text, "GET /");
    memset (text + n, 'a', 1000);
    s_parse_fails (text, (size_t) n + 1000, 414, NULL);
    //  Header fields over max_header: 431, also without a blank line.
    n = snprintf (text, sizeof text, "GET / HTTP/1.1\r\nX-Big: ");
    memset (text + n, 'b', s_limits.max_header);
    n += (int) s_limits.max_header;
    s_parse_fails (text, (size_t) n, 431, "header fields");
    n += snprintf (text + n, sizeof text - (size_t) n, "\r\n\r\n");
    s_parse_fails (text, (size_t) n, 431, "header fields");
    //  Just under: fine.
    n = snprintf (text, sizeof text, "GET / HTTP/1.1\r\nX-Big: ");
    memset (text + n, 'b', s_limits.max_header - 11);
    n += (int) s_limits.max_header - 11;
    n += snprintf (text + n, sizeof text - (size_t) n, "\r\n\r\n");
    req = s_parse_ok (text);
    vw_httpreq_destroy (&req);
    //  Too many fields.
    n = snprintf (text, sizeof text, "GET / HTTP/1.1\r\n");
    for (int i = 0; i <= VW_HTTPREQ_MAX_FIELDS && n < 1900; i++)
        n += snprintf (text + n, sizeof text - (size_t) n, "a:\r\n");
    n += snprintf (text + n, sizeof text - (size_t) n, "\r\n");
    vw_httpreq_limits_t roomy = s_limits;
    roomy.max_header = 4096;
    req = vw_httpreq_new (&roomy);
    size_t used;
    assert_int_equal (vw_httpreq_feed (req, text, (size_t) n, &used), VW_HTTPREQ_ERROR);
    assert_int_equal (req->status, 431);
    vw_httpreq_destroy (&req);
}

static void
test_fields (void **state)
{
    S_FAILS ("GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400, "folding");
    S_FAILS ("GET / HTTP/1.1\r\nNo colon\r\n\r\n", 400, "malformed header");
    S_FAILS ("GET / HTTP/1.1\r\n: empty\r\n\r\n", 400, "malformed header");
    S_FAILS ("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400, "name");
    S_FAILS ("GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n", 400, "control character");
    S_FAILS ("GET / HTTP/1.1\r\nX: a\0z\r\n\r\n", 400, "NUL");
    S_FAILS ("GET / HTTP/1.1\r\nX: a\nY: b\r\n\r\n", 400, "CRLF");
    S_FAILS ("GET / HTTP/1.1\r\nExpect: magic\r\n\r\n", 417, NULL);
}

static void
test_content_length (void **state)
{
    vw_httpreq_t *req = s_parse_ok ("POST /auth/token HTTP/1.1\r\nContent-Length: 13\r\n\r\n"
                                    "{\"a\":\"bcde\"}\n");
    assert_true (req->has_body);
    assert_int_equal (req->body_len, 13);
    assert_string_equal (req->body, "{\"a\":\"bcde\"}\n");
    vw_httpreq_destroy (&req);
    S_FAILS ("POST / HTTP/1.1\r\nContent-Length: 1025\r\n\r\n", 413, "larger than 1024");
    S_FAILS ("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400, NULL);
    S_FAILS ("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "Content-Length");
    S_FAILS ("POST / HTTP/1.1\r\nContent-Length: 1,1\r\n\r\n", 400, "Content-Length");
    S_FAILS ("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400,
             "more than once");
    S_FAILS ("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
             "combined");
    //  413 comes from the head alone: no body byte is needed.
    const char *head = "POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n";
    req = vw_httpreq_new (&s_limits);
    size_t used;
    assert_int_equal (vw_httpreq_feed (req, head, strlen (head), &used), VW_HTTPREQ_ERROR);
    assert_int_equal (req->status, 413);
    vw_httpreq_destroy (&req);
    //  Expect: 100-continue is seen once the head is in.
    head = "POST / HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n";
    req = vw_httpreq_new (&s_limits);
    assert_int_equal (vw_httpreq_feed (req, head, strlen (head), &used), VW_HTTPREQ_MORE);
    assert_true (req->head_done);
    assert_true (req->expect_continue);
    assert_int_equal (vw_httpreq_feed (req, "abc", 3, &used), VW_HTTPREQ_DONE);
    assert_string_equal (req->body, "abc");
    vw_httpreq_destroy (&req);
}

static void
test_chunked (void **state)
{
    vw_httpreq_t *req = s_parse_ok ("POST /x HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n"
                                    "5\r\n{\"a\":\r\n"
                                    "A;name=value\r\n\"01234567\"\r\n"
                                    "1\r\n}\r\n"
                                    "0\r\nX-Trailer: 1\r\n\r\n");
    assert_int_equal (req->body_len, 16);
    assert_string_equal (req->body, "{\"a\":\"01234567\"}");
    vw_httpreq_destroy (&req);
    req = s_parse_ok ("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_int_equal (req->body_len, 0);
    vw_httpreq_destroy (&req);
    S_FAILS ("POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501, NULL);
    S_FAILS ("POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 501, NULL);
    S_FAILS ("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n", 400, "chunk size");
    S_FAILS ("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", 400, "chunk size");
    S_FAILS ("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", 400, "CRLF");
    S_FAILS ("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\nab\r\n", 400, NULL);
    //  Over the limit in one chunk, across chunks, or in a size that overflows.
    S_FAILS ("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n401\r\n", 413, NULL);
    S_FAILS ("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\n", 413,
             NULL);
    char text[4096];
    int n = snprintf (text, sizeof text, "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        n += snprintf (text + n, sizeof text - (size_t) n, "200\r\n");
        memset (text + n, 'x', 512);
        n += 512;
        n += snprintf (text + n, sizeof text - (size_t) n, "\r\n");
    }
    s_parse_fails (text, (size_t) n, 413, NULL);
}

//  Bytes after a request are left for the next; reset reads it.
static void
test_pipelining (void **state)
{
    const char *two = "POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /b HTTP/1.1\r\n\r\n";
    vw_httpreq_t *req = vw_httpreq_new (&s_limits);
    size_t used = 0, len = strlen (two);
    assert_int_equal (vw_httpreq_feed (req, two, len, &used), VW_HTTPREQ_DONE);
    assert_string_equal (req->path, "/a");
    assert_string_equal (req->body, "hi");
    assert_true (used < len);
    //  Done stays done until reset.
    size_t again = 99;
    assert_int_equal (vw_httpreq_feed (req, two + used, len - used, &again), VW_HTTPREQ_DONE);
    assert_int_equal (again, 0);
    vw_httpreq_reset (req);
    assert_false (req->started);
    size_t used2 = 0;
    assert_int_equal (vw_httpreq_feed (req, two + used, len - used, &used2), VW_HTTPREQ_DONE);
    assert_int_equal (used + used2, len);
    assert_string_equal (req->path, "/b");
    assert_false (req->has_body);
    vw_httpreq_destroy (&req);
}

//  An encoded '/' is refused in a path segment (it would split it) but is
//  an ordinary character in a query value: a label may hold one.
static void
test_query_encoded_slash (void **state)
{
    vw_httpreq_t *req = s_parse_ok ("GET /agents?label=site%3Aams%2Frack-1 HTTP/1.1\r\n\r\n");
    assert_string_equal (vw_httpreq_arg (req, "label"), "site:ams/rack-1");
    vw_httpreq_destroy (&req);
    req = s_parse_ok ("GET /agents?label=site:ams/rack-1 HTTP/1.1\r\n\r\n");
    assert_string_equal (vw_httpreq_arg (req, "label"), "site:ams/rack-1");
    vw_httpreq_destroy (&req);
    S_FAILS ("GET /agents/a%2Fb?label=x HTTP/1.1\r\n\r\n", 400, "encoded '/'");
    S_FAILS ("GET /agents?label=a%00b HTTP/1.1\r\n\r\n", 400, "control character");
}

//  A chunk-size line is the size, optional spaces, then ";ext" or CRLF;
//  extensions and trailers are ignored but held to the rules of the head,
//  so no byte in them can be read two ways.
static void
test_chunk_extensions_and_trailers (void **state)
{
#define S_CHUNKED "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    vw_httpreq_t *req = s_parse_ok (S_CHUNKED "2 \t; a=b;c=\"d e\"\r\nhi\r\n0;x\r\n"
                                              "X-A: 1\r\nX-B:\r\nX-C: a\tb\r\n\r\n");
    assert_string_equal (req->body, "hi");
    vw_httpreq_destroy (&req);
    req = s_parse_ok (S_CHUNKED "2  \r\nhi\r\n0\r\n\r\n");
    assert_string_equal (req->body, "hi");
    vw_httpreq_destroy (&req);
    //  Not a size line: something after the spaces that is not ';'.
    S_FAILS (S_CHUNKED "2 zz\r\nhi\r\n0\r\n\r\n", 400, "chunk size");
    S_FAILS (S_CHUNKED "2 1\r\nhi\r\n0\r\n\r\n", 400, "chunk size");
    //  Control bytes in an extension.
    S_FAILS (S_CHUNKED "2;\0\r\nhi\r\n0\r\n\r\n", 400, "chunk extension");
    S_FAILS (S_CHUNKED "2;a\x01\r\nhi\r\n0\r\n\r\n", 400, "chunk extension");
    S_FAILS (S_CHUNKED "2;a\rb\r\nhi\r\n0\r\n\r\n", 400, "CRLF");
    //  Trailers: a field or nothing; no bare CR, no obs-fold, no bare LF.
    S_FAILS (S_CHUNKED "0\r\nnot a field\r\n\r\n", 400, "trailer field");
    S_FAILS (S_CHUNKED "0\r\nX-A: 1\rX-B: 2\r\n\r\n", 400, "CRLF");
    S_FAILS (S_CHUNKED "0\r\nX-A: 1\r\n folded\r\n\r\n", 400, "trailer field");
    S_FAILS (S_CHUNKED "0\r\n: 1\r\n\r\n", 400, "trailer field");
    S_FAILS (S_CHUNKED "0\r\nX-A : 1\r\n\r\n", 400, "trailer field");
    S_FAILS (S_CHUNKED "0\r\nX-A: a\0b\r\n\r\n", 400, "control character");
    S_FAILS (S_CHUNKED "0\r\nX-A: 1\n\r\n", 400, "CRLF");
    S_FAILS (S_CHUNKED "0\r\n\r\r\n", 400, "CRLF");
#undef S_CHUNKED
}

//  Connection is a list over every Connection field ("close" wins); fields
//  that hold one value are refused when given twice, as a proxy in front
//  might read the other copy.
static void
test_connection_and_singletons (void **state)
{
    vw_httpreq_t *req =
        s_parse_ok ("GET /x HTTP/1.1\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n");
    assert_false (req->keep_alive);
    vw_httpreq_destroy (&req);
    req = s_parse_ok ("GET /x HTTP/1.1\r\nConnection: foo\r\nConnection: bar, Close\r\n\r\n");
    assert_false (req->keep_alive);
    vw_httpreq_destroy (&req);
    req = s_parse_ok ("GET /x HTTP/1.0\r\nConnection: foo\r\nConnection: keep-alive\r\n\r\n");
    assert_true (req->keep_alive);
    vw_httpreq_destroy (&req);
    req = s_parse_ok ("GET /x HTTP/1.0\r\n\r\n");
    assert_false (req->keep_alive);
    vw_httpreq_destroy (&req);
    req = s_parse_ok ("GET /x HTTP/1.1\r\nX-A: 1\r\nX-A: 2\r\n\r\n");
    assert_true (req->keep_alive);
    vw_httpreq_destroy (&req);
    S_FAILS ("GET /x HTTP/1.1\r\nAuthorization: Bearer a\r\nauthorization: Bearer b\r\n\r\n", 400,
             "more than once");
    S_FAILS ("POST /x HTTP/1.1\r\nContent-Type: application/json\r\nContent-Type: text/plain\r\n"
             "Content-Length: 2\r\n\r\n{}",
             400, "more than once");
    S_FAILS ("POST /x HTTP/1.1\r\nExpect: 100-continue\r\nExpect: 100-continue\r\n"
             "Content-Length: 2\r\n\r\n{}",
             400, "more than once");
}

//  After a large request the connection does not keep large buffers: an
//  idle keep-alive connection holds a few KiB, whatever it sent before.
static void
test_reset_releases_large_buffers (void **state)
{
    const vw_httpreq_limits_t limits = {.max_url = 1024, .max_header = 65536, .max_body = 65536};
    vw_httpreq_t *req = vw_httpreq_new (&limits);
    char *text = (char *) malloc (140 * 1024);
    int n = snprintf (text, 1024, "POST /x HTTP/1.1\r\nX-Big: ");
    memset (text + n, 'h', 60000);
    n += 60000;
    n += snprintf (text + n, 1024, "\r\nContent-Length: 60000\r\n\r\n");
    memset (text + n, 'b', 60000);
    n += 60000;
    size_t used = 0;
    assert_int_equal (vw_httpreq_feed (req, text, (size_t) n, &used), VW_HTTPREQ_DONE);
    assert_int_equal (used, (size_t) n);
    assert_int_equal (req->body_len, 60000);
    assert_true (req->head_cap >= 60000 && req->body_cap >= 60000);
    vw_httpreq_reset (req);
    assert_true (req->head_cap <= 4096);
    assert_true (req->body_cap <= 4096);
    //  A small request keeps its (small) buffers for the next one.
    const char *small = "POST /x HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi";
    assert_int_equal (vw_httpreq_feed (req, small, strlen (small), &used), VW_HTTPREQ_DONE);
    char *head = req->head;
    vw_httpreq_reset (req);
    assert_ptr_equal (req->head, head);
    assert_int_equal (vw_httpreq_feed (req, small, strlen (small), &used), VW_HTTPREQ_DONE);
    assert_string_equal (req->body, "hi");
    vw_httpreq_destroy (&req);
    free (text);
}

static void
test_reason (void **state)
{
    assert_string_equal (vw_httpreq_reason (431), "Request Header Fields Too Large");
    assert_string_equal (vw_httpreq_reason (414), "URI Too Long");
    assert_string_equal (vw_httpreq_reason (408), "Request Timeout");
    assert_string_equal (vw_httpreq_reason (599), "Unknown");
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_simple_get),
        cmocka_unit_test (test_root_and_empty_segments),
        cmocka_unit_test (test_path_tricks),
        cmocka_unit_test (test_query),
        cmocka_unit_test (test_request_line),
        cmocka_unit_test (test_limits),
        cmocka_unit_test (test_fields),
        cmocka_unit_test (test_content_length),
        cmocka_unit_test (test_chunked),
        cmocka_unit_test (test_pipelining),
        cmocka_unit_test (test_reason),
        cmocka_unit_test (test_query_encoded_slash),
        cmocka_unit_test (test_chunk_extensions_and_trailers),
        cmocka_unit_test (test_reset_releases_large_buffers),
        cmocka_unit_test (test_connection_and_singletons),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
