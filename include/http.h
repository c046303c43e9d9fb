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

/* Defaults used for a NULL limits pointer or a zero field. */
#define SG_HTTP_DEFAULT_MAX_REQUEST_LINE 8192
#define SG_HTTP_DEFAULT_MAX_HEADERS 100
#define SG_HTTP_DEFAULT_MAX_HEADER_BYTES 16384

struct sg_http_header {
    const char *name;
    size_t name_len;
    const char *value; /* leading/trailing OWS stripped */
    size_t value_len;
};

/* A zero field means its default. max_headers is clamped to
 * SG_HTTP_MAX_HEADERS_CAP and max_request_line to max_header_bytes. */
struct sg_http_limits {
    size_t max_request_line; /* bytes, without the line ending; default 8192 */
    size_t max_headers;      /* default 100 (<= SG_HTTP_MAX_HEADERS_CAP) */
    size_t max_header_bytes; /* whole head incl. request line, default 16384 */
};

struct sg_http_request {
    const char *method;
    size_t method_len;
    const char *target; /* request-target as sent, e.g. "/ws?x=1" */
    size_t target_len;
    int minor_version; /* 0 or 1: the version is exactly "HTTP/1.0" or "HTTP/1.1" */
    struct sg_http_header headers[SG_HTTP_MAX_HEADERS_CAP];
    size_t num_headers;
    /* on error: the HTTP status to answer (400, 414, 431, 505) and a short reason */
    int error_status;
    const char *error;
};

/* Parses buf[0..len) (borrowed; req's views point into it). lim may be NULL
 * (defaults). Returns:
 *   > 0       the head is complete; the value is its length in bytes
 *             (through the blank line); bytes after it are not looked at
 *   SG_AGAIN  incomplete, and within limits: read more and call again with
 *             the whole buffer
 *   < 0 other an sg_err with req->error_status and req->error (a static
 *             string) set:
 *             SG_EHTTP    400 malformed; 505 for a well-formed HTTP/x.y other
 *                         than HTTP/1.0 and HTTP/1.1
 *             SG_ELINE    414 request line longer than max_request_line
 *                         (reported as soon as that many bytes arrived, even
 *                         before its newline)
 *             SG_ETOOMANY 431 more than max_headers header fields
 *             SG_ETOOBIG  431 head longer than max_header_bytes (reported as
 *                         soon as the buffer is over it while incomplete)
 * On SG_AGAIN and on errors the other fields of req are unspecified.
 * Bounds are checked while incomplete; syntax is checked line by line as
 * each line completes, so for any prefix of a buffer the result is SG_AGAIN
 * or the buffer's own result (same error, same status, same head length).
 * Accepts CRLF or bare LF line endings, and skips empty lines before the
 * request line (RFC 9112 2.2; they count in the returned length). Rejects
 * NUL and bare CR anywhere, obsolete line folding (also whitespace before the
 * first header), whitespace before a header colon, control characters other
 * than HT in values, non-token method or header names, and a request-target
 * that is not visible ASCII (RFC 9112). */
ssize_t sg_http_parse_request(const char *buf, size_t len, struct sg_http_request *req,
                              const struct sg_http_limits *lim);

/* Finds a header by name, ASCII case-insensitively (sg_ascii_casecmp);
 * returns the first match (a view into req) or NULL. */
const struct sg_http_header *sg_http_find(const struct sg_http_request *req, const char *name);
/* Counts headers with that name (e.g. to reject duplicate Sec-WebSocket-Key). */
size_t sg_http_count(const struct sg_http_request *req, const char *name);

/* 1 if the comma-separated token list value[0..len) contains `token`
 * (ASCII case-insensitive, OWS around elements ignored), else 0. */
int sg_http_is_in_list(const char *value, size_t len, const char *token);

/* Reason phrase for a status code ("Bad Request"), "Unknown" otherwise; a
 * static string. */
const char *sg_http_reason(int status);

/* Path part of a target (before '?'), percent-decoded (sg_pct_decode) into
 * out (cap bytes, NUL-terminated); an absolute-form target ("http://host/p")
 * gives its path. Returns SG_OK, SG_EHTTP for a target that does not start
 * with '/' (not origin-form), contains a NUL (raw or "%00"), a bad escape
 * ('%' not followed by two hex digits), or a ".." segment after decoding
 * (path traversal, so "%2e%2e" and "%2f" tricks are caught; "%2F" is
 * otherwise a '/' like any other), or SG_ETOOBIG if the decoded path and
 * its NUL do not fit in cap (a malformed path is SG_EHTTP whatever cap is).
 * On error out is "" (when cap > 0). */
int sg_http_path(const char *target, size_t len, char *out, size_t cap);

/* Content type for a file name by extension, case-insensitive ("text/html;
 * charset=utf-8", "application/javascript", ...; "application/octet-stream"
 * otherwise). Returns a static string. */
const char *sg_http_mime(const char *path);

#endif
