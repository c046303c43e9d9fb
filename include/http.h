/* http.h - HTTP/1.1 request parser, sans-I/O (picohttpparser style).
 *
 * Parses a request line and header block from a buffer that holds
 * everything received so far. Results are views into the caller's buffer
 * (valid while that buffer is unchanged). No allocation, no I/O.
 * Request bodies are not supported (GET/HEAD only need none); a request
 * with Content-Length > 0 or Transfer-Encoding is parsed, and the caller
 * decides (we answer 405/400/413).
 */
#ifndef SG_HTTP_H
#define SG_HTTP_H

#include <stddef.h>
#include <sys/types.h>

#define SG_HTTP_MAX_HEADERS_CAP 256

struct sg_http_header {
    const char *name;
    size_t name_len;
    const char *value; /* leading/trailing OWS stripped */
    size_t value_len;
};

struct sg_http_limits {
    size_t max_request_line; /* default 8192 */
    size_t max_headers;      /* default 100 (<= SG_HTTP_MAX_HEADERS_CAP) */
    size_t max_header_bytes; /* whole head incl. request line, default 16384 */
};

struct sg_http_request {
    const char *method;
    size_t method_len;
    const char *target; /* request-target as sent, e.g. "/ws?x=1" */
    size_t target_len;
    int minor_version; /* 0 or 1 (HTTP/1.x) */
    struct sg_http_header headers[SG_HTTP_MAX_HEADERS_CAP];
    size_t num_headers;
    /* on error: the HTTP status to answer (400, 414, 431, 505) and a short reason */
    int error_status;
    const char *error;
};

/* Parses buf[0..len). Returns:
 *   > 0       the head is complete; the value is its length in bytes
 *             (through the blank line)
 *   SG_AGAIN  incomplete, and within limits: read more and call again with
 *             the whole buffer
 *   < 0 other an sg_err (SG_EHTTP, SG_ELINE, SG_ETOOMANY, SG_ETOOBIG) with
 *             req->error_status and req->error set.
 * Accepts CRLF or bare LF line endings. Rejects obsolete line folding,
 * whitespace before a header colon, control characters in values, and
 * non-token method or header names (RFC 9112). */
ssize_t sg_http_parse_request(const char *buf, size_t len, struct sg_http_request *req,
                              const struct sg_http_limits *lim);

/* Finds a header by case-insensitive name; returns the first match or NULL. */
const struct sg_http_header *sg_http_find(const struct sg_http_request *req, const char *name);
/* Counts headers with that name (e.g. to reject duplicate Sec-WebSocket-Key). */
size_t sg_http_count(const struct sg_http_request *req, const char *name);

/* 1 if the comma-separated token list `value` contains `token`
 * (case-insensitive, OWS around elements ignored). */
int sg_http_list_has(const char *value, size_t len, const char *token);

/* Reason phrase for a status code ("Bad Request"), "Unknown" otherwise. */
const char *sg_http_reason(int status);

/* Path part of a target (before '?'), percent-decoded into out (cap bytes,
 * NUL-terminated). Returns SG_OK, or SG_EHTTP for a target that is not an
 * origin-form absolute path, contains "%00", a bad escape, or a ".."
 * segment after decoding (path traversal). */
int sg_http_path(const char *target, size_t len, char *out, size_t cap);

/* Content type for a file name by extension ("text/html; charset=utf-8",
 * "application/javascript", ...; "application/octet-stream" otherwise). */
const char *sg_http_mime(const char *path);

#endif
