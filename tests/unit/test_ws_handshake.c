/* test_ws_handshake.c - the RFC 6455 server handshake (src/ws_handshake.c).
 *
 * Table-driven: each request is parsed whole, as every strict prefix (all
 * SG_AGAIN) and grown one byte at a time, then decided with a policy; the
 * response bytes are checked too. */
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
#include "ws_handshake.h"

/* ---- policies ---- */

static const char *const paths[] = {"/", "/ws", "/stomp", NULL};
static const char *const origins[] = {"https://example.com", "http://127.0.0.1:8181", NULL};
static const char *const no_origins[] = {NULL};
static const char *const star[] = {"https://example.com", "*", NULL};

static const struct sg_ws_policy pol_default = {paths, NULL, 0};
static const struct sg_ws_policy pol_origins = {paths, origins, 0};
static const struct sg_ws_policy pol_empty_origins = {paths, no_origins, 0};
static const struct sg_ws_policy pol_star = {paths, star, 0};
static const struct sg_ws_policy pol_echo = {paths, origins, 1};
static const struct sg_ws_policy pol_no_paths = {NULL, NULL, 1};

/* ---- request pieces ---- */

#define HOST "Host: localhost:8181\r\n"
#define UPG "Upgrade: websocket\r\n"
#define CONN "Connection: Upgrade\r\n"
#define KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define VER "Sec-WebSocket-Version: 13\r\n"
#define BASIC HOST UPG CONN KEY VER
#define STOMP3 "Sec-WebSocket-Protocol: v12.stomp, v11.stomp, v10.stomp\r\n"
#define GET_WS "GET /ws HTTP/1.1\r\n"
#define END "\r\n"

#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

#define CHROMIUM                                                                                   \
    "GET /ws HTTP/1.1\r\n"                                                                         \
    "Host: localhost:8181\r\n"                                                                     \
    "Connection: Upgrade\r\n"                                                                      \
    "Pragma: no-cache\r\n"                                                                         \
    "Cache-Control: no-cache\r\n"                                                                  \
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "          \
    "Chrome/120.0.0.0 Safari/537.36\r\n"                                                           \
    "Upgrade: websocket\r\n"                                                                       \
    "Origin: https://example.com\r\n"                                                              \
    "Sec-WebSocket-Version: 13\r\n"                                                                \
    "Accept-Encoding: gzip, deflate, br\r\n"                                                       \
    "Accept-Language: en-US,en;q=0.9\r\n"                                                          \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"                                              \
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"                     \
    "Sec-WebSocket-Protocol: v12.stomp, v11.stomp, v10.stomp\r\n"                                  \
    "\r\n"

#define FIREFOX                                                                                    \
    "GET /stomp HTTP/1.1\r\n"                                                                      \
    "Host: 127.0.0.1:8181\r\n"                                                                     \
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0\r\n"       \
    "Accept: */*\r\n"                                                                              \
    "Accept-Language: en-US,en;q=0.5\r\n"                                                          \
    "Accept-Encoding: gzip, deflate, br\r\n"                                                       \
    "Sec-WebSocket-Version: 13\r\n"                                                                \
    "Origin: http://127.0.0.1:8181\r\n"                                                            \
    "Sec-WebSocket-Protocol: v10.stomp, v11.stomp, v12.stomp\r\n"                                  \
    "Sec-WebSocket-Extensions: permessage-deflate\r\n"                                             \
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"                                              \
    "Connection: keep-alive, Upgrade\r\n"                                                          \
    "Sec-Fetch-Dest: empty\r\n"                                                                    \
    "Sec-Fetch-Mode: websocket\r\n"                                                                \
    "Sec-Fetch-Site: same-origin\r\n"                                                              \
    "Pragma: no-cache\r\n"                                                                         \
    "Cache-Control: no-cache\r\n"                                                                  \
    "Upgrade: websocket\r\n"                                                                       \
    "\r\n"

/* the book's client: ws://localhost:8181 with new WebSocket(url, "v10.stomp") */
#define BOOK                                                                                       \
    "GET / HTTP/1.1\r\n"                                                                           \
    "Host: localhost:8181\r\n"                                                                     \
    "Connection: Upgrade\r\n"                                                                      \
    "Upgrade: websocket\r\n"                                                                       \
    "Origin: http://localhost:8181\r\n"                                                            \
    "Sec-WebSocket-Version: 13\r\n"                                                                \
    "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n"                                              \
    "Sec-WebSocket-Protocol: v10.stomp\r\n"                                                        \
    "\r\n"

enum {
    NONE = SG_SUBPROTO_NONE,
    V10 = SG_SUBPROTO_V10,
    V11 = SG_SUBPROTO_V11,
    V12 = SG_SUBPROTO_V12
};

struct hs_case {
    const char *name;
    const char *raw;
    const struct sg_ws_policy *policy;
    enum sg_ws_hs_kind kind;
    int status;
    int subproto;      /* accept */
    int echo;          /* accept */
    const char *error; /* reject: a substring of res.error */
};

#define ACCEPT(sp) SG_HS_ACCEPT, 101, sp, 0, NULL
#define ACCEPT_ECHO SG_HS_ACCEPT, 101, NONE, 1, NULL
#define REJECT(st, err) SG_HS_REJECT, st, NONE, 0, err
#define PLAIN SG_HS_NOT_UPGRADE, 0, NONE, 0, NULL

static const struct hs_case cases[] = {
    /* real clients */
    {"chromium, stompjs", CHROMIUM, &pol_origins, ACCEPT(V12)},
    {"firefox, stompjs", FIREFOX, &pol_origins, ACCEPT(V12)},
    {"book client", BOOK, &pol_default, ACCEPT(V10)},

    /* not an upgrade: served as plain HTTP */
    {"plain GET /", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", &pol_default, PLAIN},
    {"plain GET of an upgrade path", "GET /ws HTTP/1.1\r\n" HOST CONN KEY VER END, &pol_default,
     PLAIN},
    {"Upgrade: h2c", GET_WS HOST "Upgrade: h2c\r\n" CONN KEY VER END, &pol_default, PLAIN},
    {"plain POST", "POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", &pol_default,
     PLAIN},
    {"HTTP/1.0 plain", "GET /index.html HTTP/1.0\r\n\r\n", &pol_default, PLAIN},

    /* Upgrade header forms */
    {"Upgrade: WebSocket", GET_WS HOST "Upgrade: WebSocket\r\n" CONN KEY VER END, &pol_default,
     ACCEPT(NONE)},
    {"Upgrade list", GET_WS HOST "Upgrade: foo/2, websocket\r\n" CONN KEY VER END, &pol_default,
     ACCEPT(NONE)},
    {"Upgrade repeated", GET_WS HOST "Upgrade: foo\r\nUpgrade: websocket\r\n" CONN KEY VER END,
     &pol_default, ACCEPT(NONE)},

    /* method */
    {"POST", "POST /ws HTTP/1.1\r\n" BASIC END, &pol_default, REJECT(405, "GET")},
    {"lowercase get", "get /ws HTTP/1.1\r\n" BASIC END, &pol_default, REJECT(405, "GET")},
    {"HEAD", "HEAD /ws HTTP/1.1\r\n" BASIC END, &pol_default, REJECT(405, "GET")},

    /* paths */
    {"path /", "GET / HTTP/1.1\r\n" BASIC END, &pol_default, ACCEPT(NONE)},
    {"path /ws", GET_WS BASIC END, &pol_default, ACCEPT(NONE)},
    {"path /stomp", "GET /stomp HTTP/1.1\r\n" BASIC END, &pol_default, ACCEPT(NONE)},
    {"path /ws?token=x", "GET /ws?token=x HTTP/1.1\r\n" BASIC END, &pol_default, ACCEPT(NONE)},
    {"path /%77s", "GET /%77s HTTP/1.1\r\n" BASIC END, &pol_default, ACCEPT(NONE)},
    {"unknown path", "GET /nope HTTP/1.1\r\n" BASIC END, &pol_default, REJECT(404, "path")},
    {"path /ws/", "GET /ws/ HTTP/1.1\r\n" BASIC END, &pol_default, REJECT(404, "path")},
    {"path /WS", "GET /WS HTTP/1.1\r\n" BASIC END, &pol_default, REJECT(404, "path")},
    {"/echo disabled", "GET /echo HTTP/1.1\r\n" BASIC END, &pol_default, REJECT(404, "path")},
    {"/echo enabled", "GET /echo HTTP/1.1\r\n" BASIC END, &pol_echo, ACCEPT_ECHO},
    {"/echo skips subprotocols",
     "GET /echo?x HTTP/1.1\r\n" BASIC "Sec-WebSocket-Protocol: mqtt\r\n" END, &pol_echo,
     ACCEPT_ECHO},
    {"/echo, NULL paths", "GET /echo HTTP/1.1\r\n" BASIC END, &pol_no_paths, ACCEPT_ECHO},
    {"/ws, NULL paths", GET_WS BASIC END, &pol_no_paths, REJECT(404, "path")},
    {"traversal target", "GET /a/../ws HTTP/1.1\r\n" BASIC END, &pol_default,
     REJECT(400, "target")},
    {"asterisk target", "GET * HTTP/1.1\r\n" BASIC END, &pol_default, REJECT(400, "target")},
    {"absolute-form target", "GET http://localhost:8181/nope HTTP/1.1\r\n" BASIC END, &pol_default,
     REJECT(404, "path")},
    {"bad escape in target", "GET /ws%zz HTTP/1.1\r\n" BASIC END, &pol_default,
     REJECT(400, "target")},

    /* HTTP version and Host */
    {"HTTP/1.0 upgrade", "GET /ws HTTP/1.0\r\n" BASIC END, &pol_default, REJECT(400, "HTTP/1.1")},
    {"missing Host", GET_WS UPG CONN KEY VER END, &pol_default, REJECT(400, "Host")},
    {"empty Host", GET_WS "Host:\r\n" UPG CONN KEY VER END, &pol_default, REJECT(400, "Host")},
    {"repeated Host", GET_WS HOST HOST UPG CONN KEY VER END, &pol_default,
     REJECT(400, "repeated Host")},

    /* Connection */
    {"missing Connection", GET_WS HOST UPG KEY VER END, &pol_default, REJECT(400, "Connection")},
    {"Connection: keep-alive", GET_WS HOST UPG "Connection: keep-alive\r\n" KEY VER END,
     &pol_default, REJECT(400, "Connection")},
    {"Connection: Upgraded", GET_WS HOST UPG "Connection: Upgraded\r\n" KEY VER END, &pol_default,
     REJECT(400, "Connection")},
    {"Connection: keep-alive, Upgrade",
     GET_WS HOST UPG "Connection: keep-alive, Upgrade\r\n" KEY VER END, &pol_default, ACCEPT(NONE)},
    {"Connection: upgrade", GET_WS HOST UPG "Connection: upgrade\r\n" KEY VER END, &pol_default,
     ACCEPT(NONE)},
    {"Connection repeated",
     GET_WS HOST UPG "Connection: keep-alive\r\nConnection: UPGRADE\r\n" KEY VER END, &pol_default,
     ACCEPT(NONE)},

    /* Sec-WebSocket-Key */
    {"missing key", GET_WS HOST UPG CONN VER END, &pol_default,
     REJECT(400, "missing Sec-WebSocket-Key")},
    {"key of 15 bytes", GET_WS HOST UPG CONN "Sec-WebSocket-Key: AAECAwQFBgcICQoLDA0O\r\n" VER END,
     &pol_default, REJECT(400, "invalid Sec-WebSocket-Key")},
    {"key of 17 bytes",
     GET_WS HOST UPG CONN "Sec-WebSocket-Key: AAECAwQFBgcICQoLDA0ODxA=\r\n" VER END, &pol_default,
     REJECT(400, "invalid Sec-WebSocket-Key")},
    {"key of 18 bytes",
     GET_WS HOST UPG CONN "Sec-WebSocket-Key: AAECAwQFBgcICQoLDA0ODxAR\r\n" VER END, &pol_default,
     REJECT(400, "invalid Sec-WebSocket-Key")},
    {"key without padding",
     GET_WS HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n" VER END, &pol_default,
     REJECT(400, "invalid Sec-WebSocket-Key")},
    {"non-base64 key",
     GET_WS HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j!Q==\r\n" VER END, &pol_default,
     REJECT(400, "invalid Sec-WebSocket-Key")},
    {"base64url key",
     GET_WS HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j-_==\r\n" VER END, &pol_default,
     REJECT(400, "invalid Sec-WebSocket-Key")},
    {"non-canonical key",
     GET_WS HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n" VER END, &pol_default,
     REJECT(400, "invalid Sec-WebSocket-Key")},
    {"key with inner space",
     GET_WS HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBs ZSBub25jZQ==\r\n" VER END, &pol_default,
     REJECT(400, "invalid Sec-WebSocket-Key")},
    {"duplicated key", GET_WS HOST UPG CONN KEY KEY VER END, &pol_default,
     REJECT(400, "repeated Sec-WebSocket-Key")},
    {"key with OWS",
     GET_WS HOST UPG CONN "Sec-WebSocket-Key: \t dGhlIHNhbXBsZSBub25jZQ==  \r\n" VER END,
     &pol_default, ACCEPT(NONE)},

    /* Sec-WebSocket-Version */
    {"missing version", GET_WS HOST UPG CONN KEY END, &pol_default,
     REJECT(400, "Sec-WebSocket-Version missing")},
    {"version 8", GET_WS HOST UPG CONN KEY "Sec-WebSocket-Version: 8\r\n" END, &pol_default,
     REJECT(426, "supported: 13")},
    {"version 13, 8", GET_WS HOST UPG CONN KEY "Sec-WebSocket-Version: 13, 8\r\n" END, &pol_default,
     REJECT(426, "supported: 13")},
    {"version 130", GET_WS HOST UPG CONN KEY "Sec-WebSocket-Version: 130\r\n" END, &pol_default,
     REJECT(426, "supported: 13")},
    {"version repeated", GET_WS HOST UPG CONN KEY VER VER END, &pol_default,
     REJECT(400, "Sec-WebSocket-Version repeated")},

    /* Origin */
    {"bad Origin", GET_WS BASIC "Origin: https://evil.example\r\n" END, &pol_origins,
     REJECT(403, "origin")},
    {"Origin on another port", GET_WS BASIC "Origin: http://127.0.0.1:8182\r\n" END, &pol_origins,
     REJECT(403, "origin")},
    {"Origin with a path", GET_WS BASIC "Origin: https://example.com/\r\n" END, &pol_origins,
     REJECT(403, "origin")},
    {"Origin of a suffix domain", GET_WS BASIC "Origin: https://example.com.evil\r\n" END,
     &pol_origins, REJECT(403, "origin")},
    {"Origin null", GET_WS BASIC "Origin: null\r\n" END, &pol_origins, REJECT(403, "origin")},
    {"Origin repeated",
     GET_WS BASIC "Origin: https://example.com\r\nOrigin: https://example.com\r\n" END,
     &pol_origins, REJECT(403, "origin")},
    {"allowed Origin", GET_WS BASIC "Origin: https://example.com\r\n" END, &pol_origins,
     ACCEPT(NONE)},
    {"allowed Origin, other case", GET_WS BASIC "Origin: HTTPS://Example.COM\r\n" END, &pol_origins,
     ACCEPT(NONE)},
    {"allowed Origin with port", GET_WS BASIC "Origin: http://127.0.0.1:8181\r\n" END, &pol_origins,
     ACCEPT(NONE)},
    {"no Origin, allow-list", GET_WS BASIC END, &pol_origins, ACCEPT(NONE)},
    {"any Origin, NULL allow-list", GET_WS BASIC "Origin: https://evil.example\r\n" END,
     &pol_default, ACCEPT(NONE)},
    {"any Origin, empty allow-list", GET_WS BASIC "Origin: https://evil.example\r\n" END,
     &pol_empty_origins, ACCEPT(NONE)},
    {"any Origin, * in allow-list", GET_WS BASIC "Origin: https://evil.example\r\n" END, &pol_star,
     ACCEPT(NONE)},

    /* subprotocols */
    {"v10 only", GET_WS BASIC "Sec-WebSocket-Protocol: v10.stomp\r\n" END, &pol_default,
     ACCEPT(V10)},
    {"v10, v11, v12",
     GET_WS BASIC "Sec-WebSocket-Protocol: v10.stomp, v11.stomp, v12.stomp\r\n" END, &pol_default,
     ACCEPT(V12)},
    {"repeated v11 then v10",
     GET_WS BASIC "Sec-WebSocket-Protocol: v11.stomp\r\nSec-WebSocket-Protocol: v10.stomp\r\n" END,
     &pol_default, ACCEPT(V11)},
    {"repeated v10 then v12",
     GET_WS BASIC "Sec-WebSocket-Protocol: v10.stomp\r\nSec-WebSocket-Protocol: v12.stomp\r\n" END,
     &pol_default, ACCEPT(V12)},
    {"mqtt and v11", GET_WS BASIC "Sec-WebSocket-Protocol: mqtt,v11.stomp,,\r\n" END, &pol_default,
     ACCEPT(V11)},
    {"no subprotocol", GET_WS BASIC END, &pol_default, ACCEPT(NONE)},
    {"empty subprotocol header", GET_WS BASIC "Sec-WebSocket-Protocol:\r\n" END, &pol_default,
     ACCEPT(NONE)},
    {"only mqtt", GET_WS BASIC "Sec-WebSocket-Protocol: mqtt\r\n" END, &pol_default,
     REJECT(400, "supported: v12.stomp, v11.stomp, v10.stomp")},
    {"uppercase V12.STOMP", GET_WS BASIC "Sec-WebSocket-Protocol: V12.STOMP\r\n" END, &pol_default,
     REJECT(400, "unsupported subprotocol")},
    {"v12.stomp prefix", GET_WS BASIC "Sec-WebSocket-Protocol: v12.stomps, v12\r\n" END,
     &pol_default, REJECT(400, "unsupported subprotocol")},

    /* the order of checks */
    {"order: 405 before 404", "POST /nope HTTP/1.1\r\n" HOST UPG END, &pol_default,
     REJECT(405, "GET")},
    {"order: 404 before HTTP/1.0", "GET /nope HTTP/1.0\r\n" UPG END, &pol_default,
     REJECT(404, "path")},
    {"order: HTTP/1.0 before Host", "GET /ws HTTP/1.0\r\n" UPG END, &pol_default,
     REJECT(400, "HTTP/1.1")},
    {"order: Host before Connection", GET_WS UPG END, &pol_default, REJECT(400, "Host")},
    {"order: Connection before key", GET_WS HOST UPG END, &pol_default, REJECT(400, "Connection")},
    {"order: key before version", GET_WS HOST UPG CONN "Sec-WebSocket-Version: 8\r\n" END,
     &pol_default, REJECT(400, "Sec-WebSocket-Key")},
    {"order: version before Origin",
     GET_WS HOST UPG CONN KEY "Sec-WebSocket-Version: 8\r\nOrigin: https://evil.example\r\n" END,
     &pol_origins, REJECT(426, "supported: 13")},
    {"order: Origin before subprotocol",
     GET_WS BASIC "Origin: https://evil.example\r\nSec-WebSocket-Protocol: mqtt\r\n" END,
     &pol_origins, REJECT(403, "origin")},
};

/* ---- helpers ---- */

static int contains(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0) return 1;
    return 0;
}

/* Parses raw whole (into req, views into raw), checks that every strict
 * prefix (in an exact-size copy) and every grown buffer is SG_AGAIN. */
static void parse_complete(const char *name, const char *raw, struct sg_http_request *req)
{
    size_t len = strlen(raw);
    for (size_t p = 0; p < len; p++) {
        char *copy = malloc(p ? p : 1);
        assert_non_null(copy);
        memcpy(copy, raw, p);
        ssize_t r = sg_http_parse_request(copy, p, req, NULL);
        free(copy);
        if (r != SG_AGAIN) fail_msg("%s: prefix %zu: got %zd, want SG_AGAIN", name, p, r);
    }
    char *grow = NULL;
    ssize_t r = SG_AGAIN;
    size_t n = 0;
    while (r == SG_AGAIN && n < len) {
        char *g = realloc(grow, ++n);
        assert_non_null(g);
        grow = g;
        grow[n - 1] = raw[n - 1];
        r = sg_http_parse_request(grow, n, req, NULL);
    }
    free(grow);
    if (r != (ssize_t)len || n != len)
        fail_msg("%s: grown: got %zd at %zu of %zu", name, r, n, len);
    r = sg_http_parse_request(raw, len, req, NULL);
    if (r != (ssize_t)len) fail_msg("%s: whole: got %zd (%s), want %zu", name, r, req->error, len);
}

static void test_case(void **state)
{
    const struct hs_case *c = *state;
    struct sg_http_request req;
    struct sg_ws_hs_result res;
    char out[1024];

    parse_complete(c->name, c->raw, &req);
    memset(&res, 0xa5, sizeof res);
    sg_ws_handshake(&req, c->policy, &res);

    if (res.kind != c->kind || res.status != c->status)
        fail_msg("%s: got kind %d status %d (%s), want kind %d status %d", c->name, res.kind,
                 res.status, res.error ? res.error : "-", c->kind, c->status);
    switch (c->kind) {
    case SG_HS_NOT_UPGRADE:
        assert_null(res.error);
        break;
    case SG_HS_ACCEPT: {
        assert_null(res.error);
        if ((int)res.subproto != c->subproto)
            fail_msg("%s: subproto %d, want %d", c->name, res.subproto, c->subproto);
        assert_int_equal(res.echo, c->echo);
        assert_int_equal(strlen(res.accept_key), 28);
        size_t n = sg_ws_hs_response_101(&res, out, sizeof out);
        assert_true(n > 0);
        assert_int_equal(strlen(out), n);
        assert_true(contains(out, n, "HTTP/1.1 101 Switching Protocols\r\n"));
        assert_true(contains(out, n, res.accept_key));
        assert_int_equal(contains(out, n, "Sec-WebSocket-Protocol:"), c->subproto != NONE);
        break;
    }
    case SG_HS_REJECT: {
        assert_non_null(res.error);
        if (!strstr(res.error, c->error))
            fail_msg("%s: error \"%s\" lacks \"%s\"", c->name, res.error, c->error);
        size_t n = sg_http_error_response(res.status, res.error, out, sizeof out);
        assert_true(n > 0);
        char status_line[64];
        snprintf(status_line, sizeof status_line, "HTTP/1.1 %d %s\r\n", res.status,
                 sg_http_reason(res.status));
        assert_true(strncmp(out, status_line, strlen(status_line)) == 0);
        int want_version =
            res.status == 426 || contains(c->error, strlen(c->error), "Sec-WebSocket-Version");
        assert_int_equal(contains(out, n, "\r\nSec-WebSocket-Version: 13\r\n"), want_version);
        assert_int_equal(contains(out, n, "\r\nAllow: GET\r\n"), res.status == 405);
        break;
    }
    }
}

/* ---- byte-exact tests ---- */

static void test_accept_key(void **state)
{
    (void)state;
    char out[29];
    /* RFC 6455 1.3 */
    sg_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out);
    assert_string_equal(out, RFC_ACCEPT);
    /* RFC 6455 1.2's other example; also widely quoted */
    sg_ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", 24, out);
    assert_string_equal(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
    /* only key_len bytes of the key count */
    sg_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==garbage", 24, out);
    assert_string_equal(out, RFC_ACCEPT);
}

static void test_response_101(void **state)
{
    (void)state;
    static const char raw[] = "GET /chat HTTP/1.1\r\n"
                              "Host: server.example.com\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Origin: http://example.com\r\n"
                              "Sec-WebSocket-Protocol: chat, v12.stomp\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "\r\n";
    static const char *const chat_paths[] = {"/chat", NULL};
    static const char *const chat_origins[] = {"http://example.com", NULL};
    const struct sg_ws_policy pol = {chat_paths, chat_origins, 0};
    static const char want[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                               "Sec-WebSocket-Protocol: v12.stomp\r\n"
                               "\r\n";
    struct sg_http_request req;
    struct sg_ws_hs_result res;
    char out[512];

    parse_complete("rfc 6455 example", raw, &req);
    sg_ws_handshake(&req, &pol, &res);
    assert_int_equal(res.kind, SG_HS_ACCEPT);
    assert_int_equal(res.status, 101);
    assert_int_equal(res.subproto, SG_SUBPROTO_V12);
    assert_string_equal(res.accept_key, RFC_ACCEPT);
    assert_int_equal(sg_ws_hs_response_101(&res, out, sizeof out), sizeof want - 1);
    assert_string_equal(out, want);

    /* the buffer must hold the response and its NUL */
    assert_int_equal(sg_ws_hs_response_101(&res, out, sizeof want - 1), 0);
    assert_int_equal(sg_ws_hs_response_101(&res, out, sizeof want), sizeof want - 1);
    assert_int_equal(sg_ws_hs_response_101(&res, NULL, 0), 0);

    /* no subprotocol chosen: no Sec-WebSocket-Protocol header */
    res.subproto = SG_SUBPROTO_NONE;
    static const char want_none[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                    "Upgrade: websocket\r\n"
                                    "Connection: Upgrade\r\n"
                                    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                                    "\r\n";
    assert_int_equal(sg_ws_hs_response_101(&res, out, sizeof out), sizeof want_none - 1);
    assert_string_equal(out, want_none);

    /* not an accept: nothing */
    res.kind = SG_HS_REJECT;
    assert_int_equal(sg_ws_hs_response_101(&res, out, sizeof out), 0);
}

static void test_error_responses(void **state)
{
    (void)state;
    char out[512];
    static const char want426[] = "HTTP/1.1 426 Upgrade Required\r\n"
                                  "Content-Type: text/plain; charset=utf-8\r\n"
                                  "Content-Length: 45\r\n"
                                  "Connection: upgrade, close\r\n"
                                  "Upgrade: websocket\r\n"
                                  "Sec-WebSocket-Version: 13\r\n"
                                  "\r\n"
                                  "unsupported WebSocket version; supported: 13\n";
    assert_int_equal(sg_http_error_response(426, "unsupported WebSocket version; supported: 13",
                                            out, sizeof out),
                     sizeof want426 - 1);
    assert_string_equal(out, want426);
    assert_int_equal(sg_http_error_response(426, "unsupported WebSocket version; supported: 13",
                                            out, sizeof want426 - 1),
                     0);

    static const char want405[] = "HTTP/1.1 405 Method Not Allowed\r\n"
                                  "Content-Type: text/plain; charset=utf-8\r\n"
                                  "Content-Length: 49\r\n"
                                  "Connection: close\r\n"
                                  "Allow: GET\r\n"
                                  "\r\n"
                                  "method not allowed; a WebSocket upgrade uses GET\n";
    assert_int_equal(sg_http_error_response(405, "method not allowed; a WebSocket upgrade uses GET",
                                            out, sizeof out),
                     sizeof want405 - 1);
    assert_string_equal(out, want405);

    static const char want400v[] = "HTTP/1.1 400 Bad Request\r\n"
                                   "Content-Type: text/plain; charset=utf-8\r\n"
                                   "Content-Length: 30\r\n"
                                   "Connection: close\r\n"
                                   "Sec-WebSocket-Version: 13\r\n"
                                   "\r\n"
                                   "Sec-WebSocket-Version missing\n";
    assert_int_equal(sg_http_error_response(400, "Sec-WebSocket-Version missing", out, sizeof out),
                     sizeof want400v - 1);
    assert_string_equal(out, want400v);

    static const char want400[] = "HTTP/1.1 400 Bad Request\r\n"
                                  "Content-Type: text/plain; charset=utf-8\r\n"
                                  "Content-Length: 26\r\n"
                                  "Connection: close\r\n"
                                  "\r\n"
                                  "missing Sec-WebSocket-Key\n";
    assert_int_equal(sg_http_error_response(400, "missing Sec-WebSocket-Key", out, sizeof out),
                     sizeof want400 - 1);
    assert_string_equal(out, want400);

    static const char want404[] = "HTTP/1.1 404 Not Found\r\n"
                                  "Content-Type: text/plain; charset=utf-8\r\n"
                                  "Content-Length: 10\r\n"
                                  "Connection: close\r\n"
                                  "\r\n"
                                  "Not Found\n";
    assert_int_equal(sg_http_error_response(404, NULL, out, sizeof out), sizeof want404 - 1);
    assert_string_equal(out, want404);

    /* the handshake's own texts: missing version -> 400 with the header */
    static const char raw[] = GET_WS HOST UPG CONN KEY END;
    struct sg_http_request req;
    struct sg_ws_hs_result res;
    parse_complete("missing version", raw, &req);
    sg_ws_handshake(&req, &pol_default, &res);
    assert_int_equal(res.status, 400);
    assert_int_equal(sg_http_error_response(res.status, res.error, out, sizeof out),
                     sizeof want400v - 1);
    assert_string_equal(out, want400v);

    /* and the 400 naming our subprotocols */
    static const char raw2[] = GET_WS BASIC "Sec-WebSocket-Protocol: mqtt\r\n" END;
    parse_complete("mqtt", raw2, &req);
    sg_ws_handshake(&req, &pol_default, &res);
    static const char want_mqtt[] =
        "HTTP/1.1 400 Bad Request\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 68\r\n"
        "Connection: close\r\n"
        "\r\n"
        "unsupported subprotocol; supported: v12.stomp, v11.stomp, v10.stomp\n";
    assert_int_equal(sg_http_error_response(res.status, res.error, out, sizeof out),
                     sizeof want_mqtt - 1);
    assert_string_equal(out, want_mqtt);
}

static void test_subproto_name(void **state)
{
    (void)state;
    assert_null(sg_ws_subproto_name(SG_SUBPROTO_NONE));
    assert_string_equal(sg_ws_subproto_name(SG_SUBPROTO_V10), "v10.stomp");
    assert_string_equal(sg_ws_subproto_name(SG_SUBPROTO_V11), "v11.stomp");
    assert_string_equal(sg_ws_subproto_name(SG_SUBPROTO_V12), "v12.stomp");
}

int main(void)
{
    enum { N = sizeof cases / sizeof cases[0] };
    struct CMUnitTest table[N];
    for (size_t i = 0; i < N; i++)
        table[i] = (struct CMUnitTest){cases[i].name, test_case, NULL, NULL, (void *)&cases[i]};
    const struct CMUnitTest others[] = {
        cmocka_unit_test(test_accept_key),
        cmocka_unit_test(test_response_101),
        cmocka_unit_test(test_error_responses),
        cmocka_unit_test(test_subproto_name),
    };
    int failed = _cmocka_run_group_tests("handshake requests", table, N, NULL, NULL);
    failed += cmocka_run_group_tests_name("ws_handshake", others, NULL, NULL);
    return failed ? 1 : 0;
}
