/* fuzz_http.c - libFuzzer target for the HTTP request parser and the
 * WebSocket handshake (src/http.c, src/ws_handshake.c).
 *
 * Parses the input as a request head; checks that shorter prefixes give
 * SG_AGAIN or the same answer (the re-parse-the-growing-buffer contract in
 * http.h) and that a complete head's views are sane; then runs the
 * handshake with a fixed policy and builds the response. Any violated
 * property aborts. Plain C: also links with tests/fuzz/replay_main.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "http.h"
#include "ws_handshake.h"

/* small enough that the fuzzer reaches every bound */
static const struct sg_http_limits lim = {512, 24, 2048};
/* for the prefix property only: both byte bounds close together, so which
 * one is crossed first matters */
static const struct sg_http_limits tight = {40, 4, 48};

static const char *const paths[] = {"/", "/ws", "/stomp", NULL};
static const char *const origins[] = {"https://example.com", "http://127.0.0.1:8181",
                                      "http://localhost:8181", NULL};
static const struct sg_ws_policy policy = {paths, origins, 1};

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Parses data[0..n) from an exact-size heap copy, so ASan sees a read past n. */
static ssize_t parse_prefix(const uint8_t *data, size_t n, const struct sg_http_limits *l,
                            int *status)
{
    static struct sg_http_request req;
    char *copy = malloc(n ? n : 1);
    if (!copy) abort();
    if (n) memcpy(copy, data, n);
    ssize_t r = sg_http_parse_request(copy, n, &req, l);
    *status = req.error_status;
    free(copy);
    return r;
}

static void check_prefix(const uint8_t *data, size_t p, const struct sg_http_limits *l,
                         ssize_t whole, int whole_status)
{
    int status;
    ssize_t r = parse_prefix(data, p, l, &status);
    if (whole > 0 && p >= (size_t)whole) {
        CHECK(r == whole);
    } else if (r != SG_AGAIN) {
        /* a strict prefix of a complete head is SG_AGAIN; otherwise an
         * error found early is the whole buffer's error */
        CHECK(whole < 0 && whole != SG_AGAIN);
        CHECK(r == whole);
        CHECK(status == whole_status);
    }
}

static void check_request(const char *buf, size_t head, const struct sg_http_request *req)
{
    CHECK(head <= lim.max_header_bytes);
    CHECK(req->method >= buf && req->method + req->method_len <= buf + head);
    CHECK(req->method_len > 0);
    for (size_t i = 0; i < req->method_len; i++)
        CHECK(is_tchar((unsigned char)req->method[i]));
    CHECK(req->target >= buf && req->target + req->target_len <= buf + head);
    CHECK(req->target_len > 0 && req->target_len < lim.max_request_line);
    for (size_t i = 0; i < req->target_len; i++)
        CHECK(req->target[i] > 0x20 && req->target[i] < 0x7f);
    CHECK(req->minor_version == 0 || req->minor_version == 1);
    CHECK(req->num_headers <= lim.max_headers);
    for (size_t h = 0; h < req->num_headers; h++) {
        const struct sg_http_header *hd = &req->headers[h];
        CHECK(hd->name >= buf && hd->name + hd->name_len <= buf + head);
        CHECK(hd->value >= buf && hd->value + hd->value_len <= buf + head);
        CHECK(hd->name_len > 0);
        for (size_t i = 0; i < hd->name_len; i++)
            CHECK(is_tchar((unsigned char)hd->name[i]));
        for (size_t i = 0; i < hd->value_len; i++) {
            unsigned char c = (unsigned char)hd->value[i];
            CHECK(c == '\t' || (c >= 0x20 && c != 0x7f));
        }
        if (hd->value_len) {
            CHECK(hd->value[0] != ' ' && hd->value[0] != '\t');
            CHECK(hd->value[hd->value_len - 1] != ' ' && hd->value[hd->value_len - 1] != '\t');
        }
        CHECK(sg_http_find(req, "x") == NULL || sg_http_count(req, "x") > 0);
    }
}

static void check_handshake(const struct sg_http_request *req)
{
    struct sg_ws_hs_result res;
    char out[1024];
    sg_ws_handshake(req, &policy, &res);
    switch (res.kind) {
    case SG_HS_NOT_UPGRADE:
        CHECK(res.status == 0 && res.error == NULL);
        break;
    case SG_HS_ACCEPT: {
        CHECK(res.status == 101 && res.error == NULL);
        CHECK(strlen(res.accept_key) == 28);
        CHECK(res.echo == 0 || res.subproto == SG_SUBPROTO_NONE);
        size_t n = sg_ws_hs_response_101(&res, out, sizeof out);
        CHECK(n > 0 && n == strlen(out));
        CHECK(memcmp(out, "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0);
        CHECK(n >= 4 && memcmp(out + n - 4, "\r\n\r\n", 4) == 0);
        CHECK((strstr(out, "Sec-WebSocket-Protocol: ") != NULL) ==
              (res.subproto != SG_SUBPROTO_NONE));
        CHECK(sg_ws_hs_response_101(&res, out, n) == 0);
        break;
    }
    case SG_HS_REJECT: {
        CHECK(res.status == 400 || res.status == 403 || res.status == 404 || res.status == 405 ||
              res.status == 426 || res.status == 500);
        CHECK(res.error != NULL);
        size_t n = sg_http_error_response(res.status, res.error, out, sizeof out);
        CHECK(n > 0 && n == strlen(out));
        CHECK(memcmp(out, "HTTP/1.1 ", 9) == 0);
        CHECK(strstr(out, "\r\n\r\n") != NULL);
        CHECK(sg_http_error_response(res.status, res.error, out, n) == 0);
        break;
    }
    default:
        CHECK(0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sg_http_request req;
    int whole_status;
    ssize_t whole = parse_prefix(data, size, &lim, &whole_status);

    /* Every strict prefix for small inputs; for larger ones, the prefixes
     * around each line ending plus a stride, to keep the run fast. */
    if (size <= 256) {
        for (size_t p = 0; p < size; p++)
            check_prefix(data, p, &lim, whole, whole_status);
    } else {
        for (size_t p = 0; p < size; p++) {
            int near_eol = data[p] == '\n' || data[p] == '\r' ||
                           (p > 0 && (data[p - 1] == '\n' || data[p - 1] == '\r'));
            if (near_eol || p % 61 == 0 || p == size - 1)
                check_prefix(data, p, &lim, whole, whole_status);
        }
        /* the bounds' edges */
        size_t edges[] = {lim.max_request_line, lim.max_request_line + 1, lim.max_request_line + 2,
                          lim.max_header_bytes, lim.max_header_bytes + 1};
        for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
            if (edges[i] < size) check_prefix(data, edges[i], &lim, whole, whole_status);
    }

    /* the same with tight limits: every prefix up to a little past them
     * (beyond that the answer cannot change) */
    int tight_status;
    ssize_t tight_whole = parse_prefix(data, size, &tight, &tight_status);
    for (size_t p = 0; p < size && p <= tight.max_header_bytes + 2; p++)
        check_prefix(data, p, &tight, tight_whole, tight_status);

    /* once more in place: libFuzzer's buffer is exactly size bytes too */
    const char *buf = (const char *)data;
    ssize_t r = sg_http_parse_request(buf, size, &req, &lim);
    CHECK(r == whole);
    if (r == SG_AGAIN) return 0;
    if (r < 0) {
        CHECK(req.error != NULL);
        CHECK(req.error_status == 400 || req.error_status == 414 || req.error_status == 431 ||
              req.error_status == 505);
        CHECK((r == SG_ELINE) == (req.error_status == 414));
        CHECK((r == SG_ETOOMANY || r == SG_ETOOBIG) == (req.error_status == 431));
        return 0;
    }
    CHECK((size_t)r <= size);
    check_request(buf, (size_t)r, &req);

    char path[64];
    int prc = sg_http_path(req.target, req.target_len, path, sizeof path);
    CHECK(prc == SG_OK || prc == SG_EHTTP || prc == SG_ETOOBIG);
    if (prc == SG_OK) {
        CHECK(path[0] == '/');
        CHECK(strstr(path, "/../") == NULL);
        size_t pl = strlen(path);
        CHECK(!(pl >= 3 && strcmp(path + pl - 3, "/..") == 0));
        CHECK(sg_http_mime(path) != NULL);
    } else {
        CHECK(path[0] == '\0');
    }
    for (size_t i = 0; i < req.num_headers; i++)
        (void)sg_http_is_in_list(req.headers[i].value, req.headers[i].value_len, "upgrade");

    check_handshake(&req);
    return 0;
}
