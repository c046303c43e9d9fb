/* test_http.c - the HTTP request parser (src/http.c), table-driven.
 *
 * Every request in the table is fed whole, as every strict prefix (each in
 * an exact-size heap copy, so ASan catches a read past len), and grown one
 * byte at a time in one buffer, as a server re-parsing what it has so far
 * would. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "http.h"

#define S(lit) lit, sizeof(lit) - 1
#define WHOLE 0 /* want: complete, the head is the whole input */

static const struct sg_http_limits small_lim = {64, 4, 256};
static const struct sg_http_limits tight_lim = {64, 4, 64}; /* request line = whole head */

struct http_case {
    const char *name;
    const char *raw;
    size_t len;
    const struct sg_http_limits *lim; /* NULL = defaults */
    long want;                        /* WHOLE, a head length, SG_AGAIN or an error */
    int status;                       /* error status when want is an error */
    const char *why;                  /* error: a substring of req->error */
};

#define CHROMIUM                                                                                   \
    "GET /ws HTTP/1.1\r\n"                                                                         \
    "Host: localhost:8181\r\n"                                                                     \
    "Connection: Upgrade\r\n"                                                                      \
    "Pragma: no-cache\r\n"                                                                         \
    "Cache-Control: no-cache\r\n"                                                                  \
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "          \
    "Chrome/120.0.0.0 Safari/537.36\r\n"                                                           \
    "Upgrade: websocket\r\n"                                                                       \
    "Origin: http://localhost:8181\r\n"                                                            \
    "Sec-WebSocket-Version: 13\r\n"                                                                \
    "Accept-Encoding: gzip, deflate, br\r\n"                                                       \
    "Accept-Language: en-US,en;q=0.9\r\n"                                                          \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"                                              \
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"                     \
    "Sec-WebSocket-Protocol: v12.stomp, v11.stomp, v10.stomp\r\n"                                  \
    "\r\n"

static const struct http_case cases[] = {
    /* complete heads */
    {"chromium upgrade", S(CHROMIUM), NULL, WHOLE, 0, NULL},
    {"bare LF", S("GET / HTTP/1.1\nHost: a\n\n"), NULL, WHOLE, 0, NULL},
    {"mixed CRLF and LF", S("GET / HTTP/1.1\r\nHost: a\n\r\n"), NULL, WHOLE, 0, NULL},
    {"no headers", S("GET / HTTP/1.1\r\n\r\n"), NULL, WHOLE, 0, NULL},
    {"HTTP/1.0", S("GET / HTTP/1.0\r\n\r\n"), NULL, WHOLE, 0, NULL},
    {"empty lines before request line", S("\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), NULL, WHOLE,
     0, NULL},
    {"bytes after the head", S("GET / HTTP/1.1\r\nHost: a\r\n\r\nbody"), NULL, 27, 0, NULL},
    {"pipelined second request", S("GET / HTTP/1.1\n\nGET /x HTTP/1.1\n\n"), NULL, 16, 0, NULL},
    {"obs-text in value", S("GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n"), NULL, WHOLE, 0, NULL},
    {"empty value", S("GET / HTTP/1.1\r\nX:\r\n\r\n"), NULL, WHOLE, 0, NULL},
    {"tab in value", S("GET / HTTP/1.1\r\nX:\ta\tb\t\r\n\r\n"), NULL, WHOLE, 0, NULL},
    {"token chars in method and name",
     S("M-._~!#$%&'*+^`|9 / HTTP/1.1\r\nX-!#$%&'*+.^_`|~: v\r\n\r\n"), NULL, WHOLE, 0, NULL},
    {"request line exactly at the limit", /* 64 bytes */
     S("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n"), &small_lim,
     WHOLE, 0, NULL},
    {"4 headers with max 4", S("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n"),
     &small_lim, WHOLE, 0, NULL},

    /* incomplete */
    {"no blank line yet", S("GET / HTTP/1.1\r\nHost: a\r\n"), NULL, SG_AGAIN, 0, NULL},
    {"CR of the last CRLF", S("GET / HTTP/1.1\r\nHost: a\r\n\r"), NULL, SG_AGAIN, 0, NULL},
    {"empty", S(""), NULL, SG_AGAIN, 0, NULL},

    /* limits */
    {"request line too long, no newline yet",
     S("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
     &small_lim, SG_ELINE, 414, "request line too long"},
    {"request line one over the limit", /* 65 bytes */
     S("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n"), &small_lim,
     SG_ELINE, 414, "request line too long"},
    {"request line too long and malformed",
     S("G\x01T /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa "
       "HTTP/1.1\r\n\r\n"),
     &small_lim, SG_ELINE, 414, "request line too long"},
    /* with both bounds near, the answer is the bound a byte-by-byte reader
     * hits first, the same for the whole line as for its prefixes */
    {"head bound before line bound", /* the empty line makes the head cross 64 first */
     S("\r\nGET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa "
       "HTTP/1.1\r\n\r\n"),
     &tight_lim, SG_ETOOBIG, 431, "too large"},
    {"line bound before head bound",
     S("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa "
       "HTTP/1.1\r\n\r\n"),
     &tight_lim, SG_ELINE, 414, "request line too long"},
    {"bare CR at the limit", /* byte 65 is a CR that might have been the line's end */
     S("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\rb HTTP/1.1\r\n\r\n"),
     &tight_lim, SG_ETOOBIG, 431, "too large"},
    {"5 headers with max 4", S("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n"),
     &small_lim, SG_ETOOMANY, 431, "too many header fields"},
    {"head over max_header_bytes",
     S("GET / HTTP/1.1\r\n"
       "A: 0123456789012345678901234567890123456789012345678901234567890123456789\r\n"
       "B: 0123456789012345678901234567890123456789012345678901234567890123456789\r\n"
       "C: 0123456789012345678901234567890123456789012345678901234567890123456789\r\n"
       "D: 0123456789012345678901234567890123456789012345678901234567890123456789\r\n"
       "\r\n"),
     &small_lim, SG_ETOOBIG, 431, "too large"},
    {"incomplete head over max_header_bytes",
     S("GET / HTTP/1.1\r\n"
       "A: 0123456789012345678901234567890123456789012345678901234567890123456789\r\n"
       "B: 0123456789012345678901234567890123456789012345678901234567890123456789\r\n"
       "C: 0123456789012345678901234567890123456789012345678901234567890123456789\r\n"
       "D: 0123456789012345678901234567890123456789"),
     &small_lim, SG_ETOOBIG, 431, "too large"},
    {"empty lines over max_header_bytes",
     S("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
       "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
       "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
       "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
       "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
       "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
       "\r\n\r\n\r\n\r\n\r\n\r\n\r\n"),
     &small_lim, SG_ETOOBIG, 431, "too large"},

    /* malformed request line */
    {"HTTP/2.0", S("GET / HTTP/2.0\r\n\r\n"), NULL, SG_EHTTP, 505, "not supported"},
    {"HTTP/1.2", S("GET / HTTP/1.2\r\n\r\n"), NULL, SG_EHTTP, 505, "not supported"},
    {"HTTP/1.1x", S("GET / HTTP/1.1x\r\n\r\n"), NULL, SG_EHTTP, 400, "HTTP version"},
    {"HTTP/1", S("GET / HTTP/1\r\n\r\n"), NULL, SG_EHTTP, 400, "HTTP version"},
    {"lowercase http", S("GET / http/1.1\r\n\r\n"), NULL, SG_EHTTP, 400, "HTTP version"},
    {"no version", S("GET /\r\n\r\n"), NULL, SG_EHTTP, 400, "request target"},
    {"double space", S("GET  / HTTP/1.1\r\n\r\n"), NULL, SG_EHTTP, 400, "request target"},
    {"trailing space", S("GET / HTTP/1.1 \r\n\r\n"), NULL, SG_EHTTP, 400, "HTTP version"},
    {"space in target", S("GET /a b HTTP/1.1\r\n\r\n"), NULL, SG_EHTTP, 400, "HTTP version"},
    {"non-ASCII target", S("GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n"), NULL, SG_EHTTP, 400,
     "request target"},
    {"non-token method", S("G@T / HTTP/1.1\r\n\r\n"), NULL, SG_EHTTP, 400, "method"},
    {"empty method", S(" / HTTP/1.1\r\n\r\n"), NULL, SG_EHTTP, 400, "method"},
    {"tab separator", S("GET\t/ HTTP/1.1\r\n\r\n"), NULL, SG_EHTTP, 400, "method"},
    {"bare CR in request line", S("GET /\r HTTP/1.1\r\n\r\n"), NULL, SG_EHTTP, 400,
     "request target"},
    {"NUL in method", S("G\0T / HTTP/1.1\r\n\r\n"), NULL, SG_EHTTP, 400, "method"},
    {"NUL in target", S("GET /\0 HTTP/1.1\r\n\r\n"), NULL, SG_EHTTP, 400, "request target"},
    {"NUL in version", S("GET / HTTP/1.\0\r\n\r\n"), NULL, SG_EHTTP, 400, "HTTP version"},
    {"error in the request line wins over later ones", S("GET / HTTP/1.1x\r\nA : b\r\n\r\n"), NULL,
     SG_EHTTP, 400, "HTTP version"},

    /* malformed header lines */
    {"space before colon", S("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), NULL, SG_EHTTP, 400,
     "whitespace before header colon"},
    {"tab before colon", S("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), NULL, SG_EHTTP, 400,
     "whitespace before header colon"},
    {"obs-fold", S("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n"), NULL, SG_EHTTP, 400, "line folding"},
    {"obs-fold with tab", S("GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n"), NULL, SG_EHTTP, 400,
     "line folding"},
    {"whitespace before first header", S("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), NULL, SG_EHTTP, 400,
     "line folding"},
    {"whitespace-only line", S("GET / HTTP/1.1\r\nHost: a\r\n \r\n\r\n"), NULL, SG_EHTTP, 400,
     "line folding"},
    {"NUL in value", S("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"), NULL, SG_EHTTP, 400,
     "control character"},
    {"NUL in name", S("GET / HTTP/1.1\r\nX\0: a\r\n\r\n"), NULL, SG_EHTTP, 400, "header name"},
    {"CTL in value", S("GET / HTTP/1.1\r\nX: a\x01\r\n\r\n"), NULL, SG_EHTTP, 400,
     "control character"},
    {"DEL in value", S("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n"), NULL, SG_EHTTP, 400,
     "control character"},
    {"bare CR in value", S("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"), NULL, SG_EHTTP, 400,
     "control character"},
    {"CR CR LF", S("GET / HTTP/1.1\r\nX: a\r\r\n\r\n"), NULL, SG_EHTTP, 400, "control character"},
    {"no colon", S("GET / HTTP/1.1\r\nHost a\r\n\r\n"), NULL, SG_EHTTP, 400, "without colon"},
    {"space inside name", S("GET / HTTP/1.1\r\nHo st: a\r\n\r\n"), NULL, SG_EHTTP, 400,
     "invalid header name"},
    {"name only", S("GET / HTTP/1.1\r\nHost\r\n\r\n"), NULL, SG_EHTTP, 400, "without colon"},
    {"empty name", S("GET / HTTP/1.1\r\n: a\r\n\r\n"), NULL, SG_EHTTP, 400, "empty header name"},
    {"non-token name", S("GET / HTTP/1.1\r\nX/Y: a\r\n\r\n"), NULL, SG_EHTTP, 400, "header name"},
    {"malformed line in an incomplete head", S("GET / HTTP/1.1\r\nHost : a\r\nX: "), NULL, SG_EHTTP,
     400, "whitespace before header colon"},
};

static ssize_t parse_copy(const char *raw, size_t len, const struct sg_http_limits *lim,
                          struct sg_http_request *req, int *status)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, raw, len);
    ssize_t r = sg_http_parse_request(copy, len, req, lim);
    *status = req->error_status;
    free(copy);
    return r;
}

/* The three ways of feeding; returns the whole result, leaves req parsed
 * from raw itself (so its views stay valid while raw does). */
static ssize_t feed(const char *name, const char *raw, size_t len, const struct sg_http_limits *lim,
                    long want, int want_status, const char *why, struct sg_http_request *req)
{
    ssize_t expect = want == WHOLE ? (ssize_t)len : (ssize_t)want;
    int status;

    /* whole, in an exact-size copy */
    ssize_t r = parse_copy(raw, len, lim, req, &status);
    if (r != expect) fail_msg("%s: whole: got %zd, want %zd", name, r, expect);
    if (expect < 0 && expect != SG_AGAIN) {
        assert_int_equal(status, want_status);
        assert_non_null(req->error);
        if (why && !strstr(req->error, why))
            fail_msg("%s: error \"%s\" lacks \"%s\"", name, req->error, why);
    }

    /* every strict prefix */
    int seen_error = 0;
    for (size_t p = 0; p < len; p++) {
        r = parse_copy(raw, p, lim, req, &status);
        if (expect > 0 && (ssize_t)p >= expect) {
            if (r != expect) fail_msg("%s: prefix %zu: got %zd, want %zd", name, p, r, expect);
        } else if (r == SG_AGAIN) {
            if (seen_error) fail_msg("%s: prefix %zu: AGAIN after an error", name, p);
        } else {
            if (expect > 0 || expect == SG_AGAIN || r != expect || status != want_status)
                fail_msg("%s: prefix %zu: got %zd/%d, want AGAIN or %zd/%d", name, p, r, status,
                         expect, want_status);
            seen_error = 1;
        }
    }

    /* grown one byte at a time, stopping at the first answer */
    char *grow = NULL;
    r = SG_AGAIN;
    size_t n;
    for (n = 1; n <= len && r == SG_AGAIN; n++) {
        char *g = realloc(grow, n);
        assert_non_null(g);
        grow = g;
        grow[n - 1] = raw[n - 1];
        r = sg_http_parse_request(grow, n, req, lim);
        status = req->error_status;
    }
    free(grow);
    if (r != expect) fail_msg("%s: grown: got %zd, want %zd", name, r, expect);
    if (expect > 0 && n - 1 != (size_t)expect)
        fail_msg("%s: grown: complete at %zu, want %zd", name, n - 1, expect);
    if (expect < 0 && expect != SG_AGAIN) assert_int_equal(status, want_status);

    /* and once more on raw itself, for the caller */
    return sg_http_parse_request(raw, len, req, lim);
}

static void test_case(void **state)
{
    const struct http_case *c = *state;
    struct sg_http_request req;
    feed(c->name, c->raw, c->len, c->lim, c->want, c->status, c->why, &req);
}

static const struct sg_http_header *hdr(const struct sg_http_request *req, size_t i)
{
    assert_true(i < req->num_headers);
    return &req->headers[i];
}

static void assert_view(const char *p, size_t n, const char *want)
{
    if (n != strlen(want) || memcmp(p, want, n) != 0)
        fail_msg("got \"%.*s\", want \"%s\"", (int)n, p, want);
}

static void test_fields(void **state)
{
    (void)state;
    struct sg_http_request req;
    const char raw[] = CHROMIUM;
    assert_int_equal(sg_http_parse_request(raw, sizeof raw - 1, &req, NULL), sizeof raw - 1);
    assert_view(req.method, req.method_len, "GET");
    assert_view(req.target, req.target_len, "/ws");
    assert_int_equal(req.minor_version, 1);
    assert_int_equal(req.num_headers, 13);
    assert_view(hdr(&req, 0)->name, hdr(&req, 0)->name_len, "Host");
    assert_view(hdr(&req, 0)->value, hdr(&req, 0)->value_len, "localhost:8181");
    assert_view(hdr(&req, 12)->name, hdr(&req, 12)->name_len, "Sec-WebSocket-Protocol");
    assert_view(hdr(&req, 12)->value, hdr(&req, 12)->value_len, "v12.stomp, v11.stomp, v10.stomp");
    assert_int_equal(req.error_status, 0);
    assert_null(req.error);

    const struct sg_http_header *h = sg_http_find(&req, "sec-websocket-key");
    assert_non_null(h);
    assert_view(h->value, h->value_len, "dGhlIHNhbXBsZSBub25jZQ==");
    assert_null(sg_http_find(&req, "Sec-WebSocket-Ke"));
    assert_null(sg_http_find(&req, "Cookie"));
    assert_int_equal(sg_http_count(&req, "HOST"), 1);
    assert_int_equal(sg_http_count(&req, "Cookie"), 0);
}

static void test_ows_trimmed(void **state)
{
    (void)state;
    struct sg_http_request req;
    const char raw[] = "GET /x?y=1 HTTP/1.0\nA:  a b \t\nB:\t\t\nA:v\n\n";
    assert_int_equal(sg_http_parse_request(raw, sizeof raw - 1, &req, NULL), sizeof raw - 1);
    assert_int_equal(req.minor_version, 0);
    assert_view(req.target, req.target_len, "/x?y=1");
    assert_int_equal(req.num_headers, 3);
    assert_view(hdr(&req, 0)->value, hdr(&req, 0)->value_len, "a b");
    assert_view(hdr(&req, 1)->value, hdr(&req, 1)->value_len, "");
    assert_view(hdr(&req, 2)->value, hdr(&req, 2)->value_len, "v");
    assert_int_equal(sg_http_count(&req, "a"), 2);
    assert_ptr_equal(sg_http_find(&req, "a"), hdr(&req, 0));
}

/* "GET / HTTP/1.1" + n lines "Hn: v" + blank line */
static size_t many_headers(char *out, size_t cap, size_t n)
{
    size_t o = (size_t)snprintf(out, cap, "GET / HTTP/1.1\r\n");
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(out + o, cap - o, "H%zu: v\r\n", i);
    o += (size_t)snprintf(out + o, cap - o, "\r\n");
    assert_true(o < cap);
    return o;
}

static void test_header_count_limit(void **state)
{
    (void)state;
    static char raw[8192];
    struct sg_http_request req;
    struct sg_http_limits lim = {0, 100, 0}; /* zero fields: defaults */

    size_t len = many_headers(raw, sizeof raw, 100);
    assert_int_equal(feed("100 headers", raw, len, &lim, WHOLE, 0, NULL, &req), len);
    assert_int_equal(req.num_headers, 100);
    assert_int_equal(feed("100 headers, default limits", raw, len, NULL, WHOLE, 0, NULL, &req),
                     len);

    len = many_headers(raw, sizeof raw, 101);
    assert_int_equal(feed("101 headers", raw, len, &lim, SG_ETOOMANY, 431, "too many", &req),
                     SG_ETOOMANY);
    assert_int_equal(req.error_status, 431);
    assert_int_equal(sg_http_parse_request(raw, len, &req, NULL), SG_ETOOMANY);

    /* max_headers is clamped to the array's capacity */
    struct sg_http_limits huge = {0, 100000, 65536};
    len = many_headers(raw, sizeof raw, SG_HTTP_MAX_HEADERS_CAP + 1);
    assert_int_equal(sg_http_parse_request(raw, len, &req, &huge), SG_ETOOMANY);
    len = many_headers(raw, sizeof raw, SG_HTTP_MAX_HEADERS_CAP);
    assert_int_equal(sg_http_parse_request(raw, len, &req, &huge), (ssize_t)len);
    assert_int_equal(req.num_headers, SG_HTTP_MAX_HEADERS_CAP);
}

static void test_default_limits(void **state)
{
    (void)state;
    static char raw[SG_HTTP_DEFAULT_MAX_HEADER_BYTES + 64];
    struct sg_http_request req;

    /* a request line of 8192 bytes passes, 8193 is 414 before any newline */
    memset(raw, 'a', sizeof raw);
    memcpy(raw, "GET /", 5);
    memcpy(raw + SG_HTTP_DEFAULT_MAX_REQUEST_LINE - 9, " HTTP/1.1\r\n\r\n", 13);
    assert_int_equal(sg_http_parse_request(raw, SG_HTTP_DEFAULT_MAX_REQUEST_LINE + 4, &req, NULL),
                     SG_HTTP_DEFAULT_MAX_REQUEST_LINE + 4);
    memset(raw, 'a', sizeof raw);
    memcpy(raw, "GET /", 5);
    assert_int_equal(sg_http_parse_request(raw, SG_HTTP_DEFAULT_MAX_REQUEST_LINE, &req, NULL),
                     SG_AGAIN);
    assert_int_equal(sg_http_parse_request(raw, SG_HTTP_DEFAULT_MAX_REQUEST_LINE + 1, &req, NULL),
                     SG_ELINE);
    assert_int_equal(req.error_status, 414);

    /* a head of more than 16384 bytes is 431, complete or not */
    memset(raw, 'a', sizeof raw);
    memcpy(raw, "GET / HTTP/1.1\r\nX: ", 19);
    assert_int_equal(sg_http_parse_request(raw, SG_HTTP_DEFAULT_MAX_HEADER_BYTES, &req, NULL),
                     SG_AGAIN);
    assert_int_equal(sg_http_parse_request(raw, SG_HTTP_DEFAULT_MAX_HEADER_BYTES + 1, &req, NULL),
                     SG_ETOOBIG);
    assert_int_equal(req.error_status, 431);
    memcpy(raw + SG_HTTP_DEFAULT_MAX_HEADER_BYTES - 4, "\r\n\r\n", 4);
    assert_int_equal(sg_http_parse_request(raw, SG_HTTP_DEFAULT_MAX_HEADER_BYTES, &req, NULL),
                     SG_HTTP_DEFAULT_MAX_HEADER_BYTES);
    memcpy(raw + SG_HTTP_DEFAULT_MAX_HEADER_BYTES - 4, "a\r\n\r\n", 5);
    assert_int_equal(sg_http_parse_request(raw, SG_HTTP_DEFAULT_MAX_HEADER_BYTES + 1, &req, NULL),
                     SG_ETOOBIG);
}

static void test_list_has(void **state)
{
    (void)state;
    struct {
        const char *v;
        const char *tok;
        int want;
    } t[] = {
        {"Upgrade", "upgrade", 1},
        {"keep-alive, Upgrade", "upgrade", 1},
        {"keep-alive,Upgrade", "upgrade", 1},
        {"  UPGRADE\t ,keep-alive", "upgrade", 1},
        {",,upgrade,,", "upgrade", 1},
        {"websocket", "WebSocket", 1},
        {"keep-alive", "upgrade", 0},
        {"Upgraded", "upgrade", 0},
        {"xupgrade", "upgrade", 0},
        {"up grade", "upgrade", 0},
        {"upgrade;q=1", "upgrade", 0},
        {"", "upgrade", 0},
        {" , ", "upgrade", 0},
        {"h2c, websocket", "websocket", 1},
        {"websocket/13", "websocket", 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (sg_http_is_in_list(t[i].v, strlen(t[i].v), t[i].tok) != t[i].want)
            fail_msg("list_has(\"%s\", \"%s\") != %d", t[i].v, t[i].tok, t[i].want);
    /* len bounds the value: the token past it is not seen */
    assert_int_equal(sg_http_is_in_list("a, upgrade", 3, "upgrade"), 0);
    assert_int_equal(sg_http_is_in_list("upgradex", 7, "upgrade"), 1);
}

static void test_path(void **state)
{
    (void)state;
    struct {
        const char *target;
        int rc;
        const char *path;
    } t[] = {
        {"/", SG_OK, "/"},
        {"/ws", SG_OK, "/ws"},
        {"/ws?token=x", SG_OK, "/ws"},
        {"/ws?a=%zz&b=..", SG_OK, "/ws"}, /* the query is not decoded */
        {"/a%20b", SG_OK, "/a b"},
        {"/%77%73", SG_OK, "/ws"},
        {"/A%2fb", SG_OK, "/A/b"},
        {"/...", SG_OK, "/..."},
        {"/..a/b..", SG_OK, "/..a/b.."},
        {"/./a", SG_OK, "/./a"},
        {"/a/", SG_OK, "/a/"},
        {"/../etc/passwd", SG_EHTTP, ""},
        {"/a/..", SG_EHTTP, ""},
        {"/..", SG_EHTTP, ""},
        {"/a/../b", SG_EHTTP, ""},
        {"/a/%2e%2e/b", SG_EHTTP, ""},
        {"/a/%2E./b", SG_EHTTP, ""},
        {"/a%2f..%2fb", SG_EHTTP, ""},
        {"/%00", SG_EHTTP, ""},
        {"/a%2", SG_EHTTP, ""},
        {"/a%", SG_EHTTP, ""},
        {"/a%g0", SG_EHTTP, ""},
        {"/a%0g", SG_EHTTP, ""},
        {"", SG_EHTTP, ""},
        {"ws", SG_EHTTP, ""},
        {"*", SG_EHTTP, ""},
        {"http://example.com/ws", SG_OK, "/ws"},
        {"HTTPS://example.com:8443/a/b?q=1", SG_OK, "/a/b"},
        {"http://example.com", SG_OK, "/"},
        {"http:///ws", SG_EHTTP, ""},
        {"http://h/../etc", SG_EHTTP, ""},
        {"ftp://example.com/ws", SG_EHTTP, ""},
        {"?x", SG_EHTTP, ""},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char out[64];
        memset(out, 'X', sizeof out);
        int rc = sg_http_path(t[i].target, strlen(t[i].target), out, sizeof out);
        if (rc != t[i].rc || strcmp(out, t[i].path) != 0)
            fail_msg("path(\"%s\"): got %d \"%s\", want %d \"%s\"", t[i].target, rc, out, t[i].rc,
                     t[i].path);
    }

    /* len bounds the target; cap bounds the output, NUL included */
    char out[4];
    assert_int_equal(sg_http_path("/ab/../x", 3, out, sizeof out), SG_OK);
    assert_string_equal(out, "/ab");
    assert_int_equal(sg_http_path("/abc", 4, out, sizeof out), SG_ETOOBIG);
    assert_string_equal(out, "");
    assert_int_equal(sg_http_path("/%61b", 5, out, sizeof out), SG_OK);
    assert_string_equal(out, "/ab");
    assert_int_equal(sg_http_path("/", 1, out, 1), SG_ETOOBIG);
    assert_int_equal(sg_http_path("/", 1, NULL, 0), SG_ETOOBIG);
}

static void test_mime(void **state)
{
    (void)state;
    struct {
        const char *path, *type;
    } t[] = {
        {"/index.html", "text/html; charset=utf-8"},
        {"/INDEX.HTM", "text/html; charset=utf-8"},
        {"/css/app.css", "text/css; charset=utf-8"},
        {"/js/app.js", "application/javascript"},
        {"/js/app.mjs", "application/javascript"},
        {"/js/app.js.map", "application/json"},
        {"/data.json", "application/json"},
        {"/logo.png", "image/png"},
        {"/logo.svg", "image/svg+xml"},
        {"/favicon.ico", "image/x-icon"},
        {"/robots.txt", "text/plain; charset=utf-8"},
        {"/x.wasm", "application/wasm"},
        {"/f.woff2", "font/woff2"},
        {"/f.woff", "font/woff"},
        {"/README", "application/octet-stream"},
        {"/a.b/README", "application/octet-stream"},
        {"/.html", "application/octet-stream"},
        {"/x.", "application/octet-stream"},
        {"/x.exe", "application/octet-stream"},
        {"app.js", "application/javascript"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(sg_http_mime(t[i].path), t[i].type) != 0)
            fail_msg("mime(\"%s\") = \"%s\", want \"%s\"", t[i].path, sg_http_mime(t[i].path),
                     t[i].type);
}

static void test_reason(void **state)
{
    (void)state;
    assert_string_equal(sg_http_reason(101), "Switching Protocols");
    assert_string_equal(sg_http_reason(400), "Bad Request");
    assert_string_equal(sg_http_reason(403), "Forbidden");
    assert_string_equal(sg_http_reason(404), "Not Found");
    assert_string_equal(sg_http_reason(405), "Method Not Allowed");
    assert_string_equal(sg_http_reason(414), "URI Too Long");
    assert_string_equal(sg_http_reason(426), "Upgrade Required");
    assert_string_equal(sg_http_reason(431), "Request Header Fields Too Large");
    assert_string_equal(sg_http_reason(505), "HTTP Version Not Supported");
    assert_string_equal(sg_http_reason(299), "Unknown");
}

int main(void)
{
    enum { N = sizeof cases / sizeof cases[0] };
    struct CMUnitTest table[N];
    for (size_t i = 0; i < N; i++)
        table[i] = (struct CMUnitTest){cases[i].name, test_case, NULL, NULL, (void *)&cases[i]};
    const struct CMUnitTest others[] = {
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_ows_trimmed),
        cmocka_unit_test(test_header_count_limit),
        cmocka_unit_test(test_default_limits),
        cmocka_unit_test(test_list_has),
        cmocka_unit_test(test_path),
        cmocka_unit_test(test_mime),
        cmocka_unit_test(test_reason),
    };
    int failed = _cmocka_run_group_tests("http requests", table, N, NULL, NULL);
    failed += cmocka_run_group_tests_name("http", others, NULL, NULL);
    return failed ? 1 : 0;
}
