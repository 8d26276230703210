/*  vw_proxy: the source address behind trusted proxies; X-Forwarded-For
    from anyone else is ignored, and garbage in it changes nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "vw_proxy.h"

static void
test_parse (void **state)
{
    (void) state;
    char err[200];
    vw_proxies_t *p = vw_proxies_parse ("127.0.0.1, 10.0.0.0/8,::1,fd00::/8", err, sizeof err);
    assert_non_null (p);
    assert_true (vw_proxies_match (p, "127.0.0.1"));
    assert_false (vw_proxies_match (p, "127.0.0.2"));
    assert_true (vw_proxies_match (p, "10.200.3.4"));
    assert_false (vw_proxies_match (p, "11.0.0.1"));
    assert_true (vw_proxies_match (p, "::1"));
    assert_true (vw_proxies_match (p, "fd12:3456::1"));
    assert_false (vw_proxies_match (p, "fe80::1"));
    assert_false (vw_proxies_match (p, "not an address"));
    vw_proxies_destroy (&p);
    assert_null (p);
    const char *bad[] = {"10.0.0.0/33", "10.0.0.0/",    "10.0.0/8",
                         "::1/129",     "host.example", "1.2.3.4/x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        assert_null (vw_proxies_parse (bad[i], err, sizeof err));
        assert_non_null (strstr (err, "not an address range"));
    }
    err[0] = 'x';
    assert_null (vw_proxies_parse ("", err, sizeof err));
    assert_string_equal (err, "");
    //  /0 trusts everyone; 0.0.0.0/0 only IPv4.
    p = vw_proxies_parse ("0.0.0.0/0", err, sizeof err);
    assert_true (vw_proxies_match (p, "203.0.113.9"));
    assert_false (vw_proxies_match (p, "2001:db8::1"));
    vw_proxies_destroy (&p);
}

static void
test_source (void **state)
{
    (void) state;
    vw_proxies_t *p = vw_proxies_parse ("127.0.0.1/32,10.0.0.0/8", NULL, 0);
    char out[64];
    //  From a trusted proxy: the client it names.
    vw_proxies_source (p, "127.0.0.1", "203.0.113.7", out, sizeof out);
    assert_string_equal (out, "203.0.113.7");
    //  Through two proxies: the right-most address not trusted; what the
    //  client wrote itself (on the left) does not count.
    vw_proxies_source (p, "127.0.0.1", "6.6.6.6, 203.0.113.7 , 10.1.1.1", out, sizeof out);
    assert_string_equal (out, "203.0.113.7");
    //  Only trusted ones: the left-most.
    vw_proxies_source (p, "127.0.0.1", "10.0.0.2,10.0.0.3", out, sizeof out);
    assert_string_equal (out, "10.0.0.2");
    //  Not from a trusted proxy: the header is ignored.
    vw_proxies_source (p, "198.51.100.1", "203.0.113.7", out, sizeof out);
    assert_string_equal (out, "198.51.100.1");
    //  No header, an empty one, garbage: the peer (or the last good address).
    vw_proxies_source (p, "127.0.0.1", NULL, out, sizeof out);
    assert_string_equal (out, "127.0.0.1");
    vw_proxies_source (p, "127.0.0.1", "", out, sizeof out);
    assert_string_equal (out, "127.0.0.1");
    vw_proxies_source (p, "127.0.0.1", "<script>", out, sizeof out);
    assert_string_equal (out, "127.0.0.1");
    vw_proxies_source (p, "127.0.0.1", "garbage, 10.0.0.9", out, sizeof out);
    assert_string_equal (out, "10.0.0.9");
    vw_proxies_source (p, "127.0.0.1", ",,,", out, sizeof out);
    assert_string_equal (out, "127.0.0.1");
    vw_proxies_source (p, "127.0.0.1", "2001:db8::7", out, sizeof out);
    assert_string_equal (out, "2001:db8::7");
    //  No proxies configured: always the peer.
    vw_proxies_source (NULL, "127.0.0.1", "203.0.113.7", out, sizeof out);
    assert_string_equal (out, "127.0.0.1");
    vw_proxies_destroy (&p);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_parse),
        cmocka_unit_test (test_source),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
