/* test_util.c - the shared helpers of util.h: the monotonic clock, the
 * percent-decoder (table of vectors with every cap, plus the precedence of
 * malformed input over a too small cap), the ASCII case-insensitive
 * compare (no locale folding) and the loopback test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <locale.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "error.h"
#include "util.h"

/* ---- sg_now_ms */

static void test_now_ms_is_monotonic(void **state)
{
    (void)state;
    uint64_t a = sg_now_ms();
    for (int i = 0; i < 1000; i++) {
        uint64_t b = sg_now_ms();
        assert_true(b >= a);
        a = b;
    }
    struct timespec ts = {0, 30 * 1000 * 1000};
    uint64_t before = sg_now_ms();
    nanosleep(&ts, NULL);
    uint64_t after = sg_now_ms();
    assert_true(after - before >= 29); /* ms, not seconds or microseconds */
    assert_true(after - before < 10000);
    /* the same clock as CLOCK_MONOTONIC, not the wall clock */
    struct timespec m;
    clock_gettime(CLOCK_MONOTONIC, &m);
    uint64_t mono = (uint64_t)m.tv_sec * 1000 + (uint64_t)m.tv_nsec / 1000000;
    uint64_t now = sg_now_ms();
    assert_true(now >= mono && now - mono < 1000);
}

/* ---- sg_pct_decode */

struct pct_case {
    const char *src;
    size_t len;      /* (size_t)-1: strlen */
    int rc;          /* with a cap big enough */
    const char *out; /* for SG_OK */
    size_t out_len;
};

#define L (size_t) - 1
static const struct pct_case pct_cases[] = {
    {"abc", L, SG_OK, "abc", 3},
    {"", 0, SG_OK, "", 0},
    {"%2F", L, SG_OK, "/", 1},
    {"%2f", L, SG_OK, "/", 1},
    {"a%2Fb%2fc", L, SG_OK, "a/b/c", 5},
    {"%41%42", L, SG_OK, "AB", 2},
    {"%C3%A9", L, SG_OK, "\xc3\xa9", 2},
    {"%0A", L, SG_OK, "\n", 1},  /* no control check: callers decide */
    {"a+b", L, SG_OK, "a+b", 3}, /* not form encoding */
    {"%25", L, SG_OK, "%", 1},
    {"%2525", L, SG_OK, "%25", 3}, /* decoded once */
    {"\xff%ff", L, SG_OK, "\xff\xff", 2},
    {"%zz", L, SG_EESCAPE, NULL, 0},
    {"%2", L, SG_EESCAPE, NULL, 0},
    {"%", L, SG_EESCAPE, NULL, 0},
    {"a%", L, SG_EESCAPE, NULL, 0},
    {"%%41", L, SG_EESCAPE, NULL, 0},
    {"%x1", L, SG_EESCAPE, NULL, 0},
    {"%1x", L, SG_EESCAPE, NULL, 0},
    {"%00", L, SG_ENUL, NULL, 0},
    {"a%00b", L, SG_ENUL, NULL, 0},
    {"a\0b", 3, SG_ENUL, NULL, 0},   /* a raw NUL too */
    {"%00%zz", L, SG_ENUL, NULL, 0}, /* the first offender */
    {"%zz%00", L, SG_EESCAPE, NULL, 0},
    {"abc%2F", 3, SG_OK, "abc", 3},    /* only len bytes are read */
    {"ab%2F", 4, SG_EESCAPE, NULL, 0}, /* "%2" then the end */
};

static void test_pct_decode_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof pct_cases / sizeof pct_cases[0]; i++) {
        const struct pct_case *c = &pct_cases[i];
        size_t len = c->len == L ? strlen(c->src) : c->len;
        /* every cap from 0 up: SG_ETOOBIG exactly when the result and its
         * NUL do not fit, and never for malformed input */
        for (size_t cap = 0; cap < 16; cap++) {
            char out[32];
            memset(out, 'X', sizeof out);
            size_t n = 777;
            int rc = sg_pct_decode(c->src, len, out, cap, &n);
            int want = c->rc;
            if (want == SG_OK && c->out_len + 1 > cap) want = SG_ETOOBIG;
            if (rc != want)
                fail_msg("case %zu \"%s\" cap %zu: rc %d (%s), want %d (%s)", i, c->src, cap, rc,
                         sg_strerror(rc), want, sg_strerror(want));
            assert_int_equal(out[cap], 'X'); /* never past cap */
            if (rc == SG_OK) {
                assert_int_equal(n, c->out_len);
                assert_memory_equal(out, c->out, n);
                assert_int_equal(out[n], '\0');
            } else {
                assert_int_equal(n, 777); /* left alone */
                if (cap > 0) assert_int_equal(out[0], '\0');
            }
        }
    }
}

static void test_pct_decode_malformed_beats_long(void **state)
{
    (void)state;
    char out[8];
    /* over cap first, then a bad escape / a NUL: the malformation is reported */
    assert_int_equal(sg_pct_decode("abcdefghij%zz", 13, out, sizeof out, NULL), SG_EESCAPE);
    assert_int_equal(sg_pct_decode("abcdefghij%00", 13, out, sizeof out, NULL), SG_ENUL);
    assert_int_equal(sg_pct_decode("abcdefghij", 10, out, sizeof out, NULL), SG_ETOOBIG);
    assert_string_equal(out, "");
    assert_int_equal(sg_pct_decode("%61%62%63%64%65%66%67", 21, out, sizeof out, NULL), SG_OK);
    assert_string_equal(out, "abcdefg"); /* 21 bytes in, 7 + NUL out: fits */
    /* out_len may be NULL; out may be NULL with cap 0 */
    assert_int_equal(sg_pct_decode("a", 1, NULL, 0, NULL), SG_ETOOBIG);
    assert_int_equal(sg_pct_decode("%zz", 3, NULL, 0, NULL), SG_EESCAPE);
    assert_int_equal(sg_pct_decode("", 0, NULL, 0, NULL), SG_ETOOBIG);
}

/* every byte value escaped, in both cases, decodes to itself (but NUL) */
static void test_pct_decode_every_byte(void **state)
{
    (void)state;
    static const char hex_u[] = "0123456789ABCDEF", hex_l[] = "0123456789abcdef";
    for (int c = 1; c < 256; c++) {
        for (int k = 0; k < 2; k++) {
            const char *hx = k ? hex_l : hex_u;
            char in[3] = {'%', hx[c >> 4], hx[c & 15]};
            char out[2];
            size_t n = 0;
            assert_int_equal(sg_pct_decode(in, 3, out, sizeof out, &n), SG_OK);
            assert_int_equal(n, 1);
            assert_int_equal((unsigned char)out[0], c);
        }
    }
}

/* ---- sg_ascii_casecmp */

static int sign(int x)
{
    return (x > 0) - (x < 0);
}

static void test_ascii_casecmp(void **state)
{
    (void)state;
    struct {
        const char *a, *b;
        int want;
    } t[] = {
        {"Upgrade", "upgrade", 0},
        {"SEC-WEBSOCKET-KEY", "sec-websocket-key", 0},
        {"", "", 0},
        {"a", "", 1},
        {"", "a", -1},
        {"abc", "abd", -1},
        {"ABD", "abc", 1},
        {"abc", "ABCD", -1},       /* a proper prefix sorts first */
        {"[", "a", -1},            /* '[' (0x5b) is not 'A'-'Z': not folded ('[' < 'a') */
        {"@", "`", -1},            /* the bytes just outside 'A'-'Z' stay as they are */
        {"\xc4", "\xe4", -1},      /* Latin-1 A-umlaut vs a-umlaut: never folded */
        {"K", "\xe2\x84\xaa", -1}, /* nor is U+212A KELVIN SIGN */
        {"http://", "HTTP://", 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int got = sign(sg_ascii_casecmp(t[i].a, strlen(t[i].a), t[i].b, strlen(t[i].b)));
        if (got != t[i].want)
            fail_msg("casecmp(\"%s\", \"%s\") = %d, want %d", t[i].a, t[i].b, got, t[i].want);
        int rev = sign(sg_ascii_casecmp(t[i].b, strlen(t[i].b), t[i].a, strlen(t[i].a)));
        assert_int_equal(rev, -t[i].want);
    }
    /* lengths, not NULs, bound the strings */
    assert_int_equal(sg_ascii_casecmp("HOSTx", 4, "host", 4), 0);
    assert_int_equal(sg_ascii_casecmp("a\0b", 3, "A\0B", 3), 0);
    assert_true(sg_ascii_casecmp("a\0b", 3, "a\0c", 3) < 0);
    /* the same in any locale (strcasecmp follows LC_CTYPE) */
    if (setlocale(LC_CTYPE, "C.UTF-8") || setlocale(LC_CTYPE, "en_US.UTF-8")) {
        assert_true(sg_ascii_casecmp("\xc4", 1, "\xe4", 1) != 0);
        setlocale(LC_CTYPE, "C");
    }
    for (int c = 0; c < 256; c++) {
        unsigned char want = (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : (unsigned char)c;
        assert_int_equal(sg_ascii_lower((unsigned char)c), want);
    }
}

/* ---- sg_now_ns */

static void test_now_ns_matches_ms(void **state)
{
    (void)state;
    uint64_t ms0 = sg_now_ms(), ns = sg_now_ns(), ms1 = sg_now_ms();
    /* the same clock: ns / 1e6 lies between two ms readings around it */
    assert_true(ns / 1000000 >= ms0 && ns / 1000000 <= ms1);
    uint64_t a = sg_now_ns();
    for (int i = 0; i < 1000; i++) {
        uint64_t b = sg_now_ns();
        assert_true(b >= a);
        a = b;
    }
}

/* ---- sg_addr_is_loopback */

static int loop4(const char *ip)
{
    struct sockaddr_in s4 = {0};
    s4.sin_family = AF_INET;
    s4.sin_port = htons(8181);
    assert_int_equal(inet_pton(AF_INET, ip, &s4.sin_addr), 1);
    return sg_addr_is_loopback((const struct sockaddr *)&s4, sizeof s4);
}

static int loop6(const char *ip)
{
    struct sockaddr_in6 s6 = {0};
    s6.sin6_family = AF_INET6;
    s6.sin6_port = htons(8181);
    assert_int_equal(inet_pton(AF_INET6, ip, &s6.sin6_addr), 1);
    return sg_addr_is_loopback((const struct sockaddr *)&s6, sizeof s6);
}

static void test_loopback_addresses(void **state)
{
    (void)state;
    static const struct {
        const char *ip;
        int want;
    } v4[] = {
        {"127.0.0.1", 1},       {"127.0.0.0", 1}, {"127.255.255.255", 1}, {"127.1.2.3", 1},
        {"126.255.255.255", 0}, {"128.0.0.1", 0}, {"0.0.0.0", 0},         {"10.0.0.1", 0},
        {"192.168.1.127", 0},   {"1.0.0.127", 0}, {"255.255.255.255", 0},
    };
    for (size_t i = 0; i < sizeof v4 / sizeof v4[0]; i++)
        if (loop4(v4[i].ip) != v4[i].want) fail_msg("%s: want %d", v4[i].ip, v4[i].want);
    static const struct {
        const char *ip;
        int want;
    } v6[] = {
        {"::1", 1},
        {"::ffff:127.0.0.1", 1},
        {"::ffff:127.9.8.7", 1},
        {"::", 0},
        {"::2", 0},
        {"::100:0:0:1", 0},
        {"1::1", 0},
        {"fe80::1", 0},
        {"::ffff:10.0.0.1", 0},
        {"::ffff:128.0.0.1", 0},
        {"::127.0.0.1", 0}, /* the deprecated IPv4-compatible form is not mapped */
        {"::fffe:127.0.0.1", 0},
        {"2001:db8::1", 0},
    };
    for (size_t i = 0; i < sizeof v6 / sizeof v6[0]; i++)
        if (loop6(v6[i].ip) != v6[i].want) fail_msg("%s: want %d", v6[i].ip, v6[i].want);
}

static void test_loopback_rejects_bad_input(void **state)
{
    (void)state;
    assert_int_equal(sg_addr_is_loopback(NULL, 0), 0);
    assert_int_equal(sg_addr_is_loopback(NULL, sizeof(struct sockaddr_in)), 0);
    struct sockaddr_in s4 = {0};
    s4.sin_family = AF_INET;
    s4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(sg_addr_is_loopback((struct sockaddr *)&s4, sizeof s4), 1);
    /* a length too short for the family is not trusted */
    assert_int_equal(sg_addr_is_loopback((struct sockaddr *)&s4, sizeof s4 - 1), 0);
    assert_int_equal(sg_addr_is_loopback((struct sockaddr *)&s4, 1), 0);
    struct sockaddr_in6 s6 = {0};
    s6.sin6_family = AF_INET6;
    s6.sin6_addr = in6addr_loopback;
    assert_int_equal(sg_addr_is_loopback((struct sockaddr *)&s6, sizeof s6), 1);
    assert_int_equal(sg_addr_is_loopback((struct sockaddr *)&s6, sizeof(struct sockaddr_in)), 0);
    /* a Unix socket peer is not an IP peer */
    struct sockaddr_un su = {0};
    su.sun_family = AF_UNIX;
    assert_int_equal(sg_addr_is_loopback((struct sockaddr *)&su, sizeof su), 0);
    /* an IPv4 struct with a family that says otherwise */
    s4.sin_family = AF_UNSPEC;
    assert_int_equal(sg_addr_is_loopback((struct sockaddr *)&s4, sizeof s4), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_now_ms_is_monotonic),
        cmocka_unit_test(test_pct_decode_vectors),
        cmocka_unit_test(test_pct_decode_malformed_beats_long),
        cmocka_unit_test(test_pct_decode_every_byte),
        cmocka_unit_test(test_ascii_casecmp),
        cmocka_unit_test(test_now_ns_matches_ms),
        cmocka_unit_test(test_loopback_addresses),
        cmocka_unit_test(test_loopback_rejects_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
