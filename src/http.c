/* http.c - HTTP/1.1 request head parser (see http.h).
 *
 * picohttpparser's shape: the caller keeps everything received so far and
 * calls again with the whole buffer; we re-parse from the start. Heads are
 * small and bounded (max_header_bytes), so re-parsing costs little and keeps
 * the parser stateless.
 *
 * Why the prefix property holds (http.h): the scan goes line by line, left
 * to right. A complete line is checked in a fixed order (bounds, then syntax,
 * then the header count); the trailing incomplete line only against bounds.
 * Bounds are judged by the byte at which one is first crossed, which a
 * prefix and the whole buffer agree on. So a prefix gets the same verdicts
 * for the lines it holds, and a bound it finds crossed, the whole buffer
 * finds crossed first too.
 */
#include "http.h"
#include "error.h"
#include "util.h"

#include <limits.h>
#include <string.h>

/* RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" /
 * "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* RFC 5234 B.1: VCHAR = %x21-7E */
static int is_vchar(unsigned char c)
{
    return c >= 0x21 && c <= 0x7e;
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* RFC 9110 5.1: field names are case-insensitive (ASCII) */
static int ieq(const char *a, size_t alen, const char *b, size_t blen)
{
    return sg_ascii_casecmp(a, alen, b, blen) == 0;
}

static ssize_t fail(struct sg_http_request *req, int err, int status, const char *why)
{
    req->error_status = status;
    req->error = why;
    return err;
}

static void effective_limits(const struct sg_http_limits *lim, struct sg_http_limits *out)
{
    out->max_request_line =
        lim && lim->max_request_line ? lim->max_request_line : SG_HTTP_DEFAULT_MAX_REQUEST_LINE;
    out->max_headers = lim && lim->max_headers ? lim->max_headers : SG_HTTP_DEFAULT_MAX_HEADERS;
    out->max_header_bytes =
        lim && lim->max_header_bytes ? lim->max_header_bytes : SG_HTTP_DEFAULT_MAX_HEADER_BYTES;
    if (out->max_headers > SG_HTTP_MAX_HEADERS_CAP) out->max_headers = SG_HTTP_MAX_HEADERS_CAP;
    /* keeps "line too long" (414) reported before "head too big" (431) for
     * the request line, whether or not its newline has arrived */
    if (out->max_request_line > out->max_header_bytes)
        out->max_request_line = out->max_header_bytes;
    if (out->max_header_bytes > SSIZE_MAX) out->max_header_bytes = SSIZE_MAX; /* fits the return */
}

/* RFC 9112 3: request-line = method SP request-target SP HTTP-version.
 * Exactly one SP between the parts (the lenient whitespace parsing of 3 is a
 * MAY; we stay strict). NUL and bare CR fail the character classes. */
static ssize_t parse_request_line(const char *p, size_t n, struct sg_http_request *req)
{
    size_t i = 0;

    /* RFC 9112 3.1: method = token */
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i == n || p[i] != ' ') return fail(req, SG_EHTTP, 400, "malformed method");
    req->method = p;
    req->method_len = i;
    i++;

    /* RFC 9112 3.2: the request-target has no whitespace; we also refuse
     * bytes outside visible ASCII (RFC 3986 has no raw non-ASCII) */
    size_t t = i;
    while (i < n && is_vchar((unsigned char)p[i]))
        i++;
    if (i == t || i == n || p[i] != ' ')
        return fail(req, SG_EHTTP, 400, "malformed request target");
    req->target = p + t;
    req->target_len = i - t;
    i++;

    /* RFC 9112 2.3: HTTP-version = "HTTP" "/" DIGIT "." DIGIT, case-sensitive */
    const char *v = p + i;
    if (n - i != 8 || memcmp(v, "HTTP/", 5) != 0 || !is_digit((unsigned char)v[5]) || v[6] != '.' ||
        !is_digit((unsigned char)v[7]))
        return fail(req, SG_EHTTP, 400, "malformed HTTP version");
    /* RFC 9110 15.6.6: 505 for a major version we do not support; within
     * HTTP/1 we know only 1.0 and 1.1 */
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return fail(req, SG_EHTTP, 505, "HTTP version not supported");
    req->minor_version = v[7] - '0';
    return SG_OK;
}

/* RFC 9112 5: field-line = field-name ":" OWS field-value OWS */
static ssize_t parse_header_line(const char *p, size_t n, struct sg_http_header *h,
                                 struct sg_http_request *req)
{
    /* RFC 9112 5.2: obs-fold (a line starting with SP/HT) -> 400; RFC 9112
     * 2.2: whitespace before the first header -> reject, the same check */
    if (p[0] == ' ' || p[0] == '\t') return fail(req, SG_EHTTP, 400, "obsolete line folding");

    /* RFC 9110 5.1: field-name = token */
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    if (i == n) return fail(req, SG_EHTTP, 400, "header line without colon");
    if (p[i] != ':') {
        /* RFC 9112 5.1: no whitespace between field name and colon -> 400 */
        size_t j = i;
        while (j < n && (p[j] == ' ' || p[j] == '\t'))
            j++;
        if (j > i && j < n && p[j] == ':')
            return fail(req, SG_EHTTP, 400, "whitespace before header colon");
        if (!memchr(p + i, ':', n - i))
            return fail(req, SG_EHTTP, 400, "header line without colon");
        return fail(req, SG_EHTTP, 400, "invalid header name");
    }
    if (i == 0) return fail(req, SG_EHTTP, 400, "empty header name");
    h->name = p;
    h->name_len = i;
    i++;

    /* RFC 9110 5.5: field-value = *field-content, field-vchar = VCHAR /
     * obs-text; SP and HTAB only between; a recipient may reject CR, LF or
     * NUL and we reject every CTL but HT. RFC 9112 5.1: OWS is not part of
     * the value. */
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    size_t vs = i, ve = i;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == ' ' || c == '\t') continue;
        if (c < 0x20 || c == 0x7f)
            return fail(req, SG_EHTTP, 400, "control character in header value");
        ve = i + 1;
    }
    h->value = p + vs;
    h->value_len = ve - vs;
    return SG_OK;
}

/* The bounds, checked on bytes buf[pos..end) of the current line, none of
 * them its LF: the request line may not exceed max_request_line (a CR that
 * may be the start of its CRLF does not count yet), and no prefix of the head
 * may exceed max_header_bytes. Returns SG_OK, or the error of the bound that
 * a reader getting one byte at a time would see crossed first (414 on a
 * tie), so every prefix that is over a bound gets the same answer. */
static int first_bound_crossed(const char *buf, size_t pos, size_t end, int in_request_line,
                               const struct sg_http_limits *l)
{
    const size_t never = (size_t)-1;
    size_t at_line = never, at_head = never; /* prefix lengths at which each is crossed */
    if (in_request_line && end - pos > l->max_request_line) {
        size_t k = pos + l->max_request_line + 1; /* prefix holding one byte too many */
        if (buf[k - 1] == '\r') k++;              /* unless that byte is a CR */
        if (k <= end) at_line = k;
    }
    if (l->max_header_bytes < end) at_head = l->max_header_bytes + 1;
    if (at_line == never && at_head == never) return SG_OK;
    return at_line <= at_head ? SG_ELINE : SG_ETOOBIG;
}

static ssize_t bounds_fail(struct sg_http_request *req, int err)
{
    if (err == SG_ELINE) return fail(req, SG_ELINE, 414, "request line too long");
    return fail(req, SG_ETOOBIG, 431, "request header fields too large");
}

ssize_t sg_http_parse_request(const char *buf, size_t len, struct sg_http_request *req,
                              const struct sg_http_limits *lim)
{
    struct sg_http_limits l;
    effective_limits(lim, &l);

    req->method = NULL;
    req->method_len = 0;
    req->target = NULL;
    req->target_len = 0;
    req->minor_version = 0;
    req->num_headers = 0;
    req->error_status = 0;
    req->error = NULL;

    int have_request_line = 0;
    size_t pos = 0;
    for (;;) {
        const char *lf = pos < len ? memchr(buf + pos, '\n', len - pos) : NULL;
        if (!lf) {
            /* incomplete line: only bounds (the prefix property, above) */
            int err = first_bound_crossed(buf, pos, len, !have_request_line, &l);
            return err == SG_OK ? SG_AGAIN : bounds_fail(req, err);
        }

        /* RFC 9112 2.2: a line ends with CRLF, and a recipient may take a
         * bare LF as the terminator; a bare CR elsewhere is invalid (the
         * character checks below catch it). */
        size_t lf_at = (size_t)(lf - buf);
        size_t next = lf_at + 1;
        const char *line = buf + pos;
        size_t line_len = lf_at - pos;
        if (line_len > 0 && line[line_len - 1] == '\r') line_len--;

        if (!have_request_line) {
            /* a prefix without the LF already over a bound, else the LF
             * pushing the head over (the line itself fits: see above) */
            int err = first_bound_crossed(buf, pos, lf_at, 1, &l);
            if (err != SG_OK) return bounds_fail(req, err);
            if (next > l.max_header_bytes) return bounds_fail(req, SG_ETOOBIG);
            if (line_len > 0) {
                ssize_t rc = parse_request_line(line, line_len, req);
                if (rc != SG_OK) return rc;
                have_request_line = 1;
            }
            /* else RFC 9112 2.2: ignore empty lines before the request line */
        } else {
            if (next > l.max_header_bytes) return bounds_fail(req, SG_ETOOBIG);
            if (line_len == 0) return (ssize_t)next; /* RFC 9112 2.1: end of the head */
            struct sg_http_header h;
            ssize_t rc = parse_header_line(line, line_len, &h, req);
            if (rc != SG_OK) return rc;
            /* RFC 6585 5: 431 Request Header Fields Too Large */
            if (req->num_headers >= l.max_headers)
                return fail(req, SG_ETOOMANY, 431, "too many header fields");
            req->headers[req->num_headers++] = h;
        }
        pos = next;
    }
}

const struct sg_http_header *sg_http_find(const struct sg_http_request *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct sg_http_header *h = &req->headers[i];
        if (ieq(h->name, h->name_len, name, n)) return h;
    }
    return NULL;
}

size_t sg_http_count(const struct sg_http_request *req, const char *name)
{
    size_t n = strlen(name), count = 0;
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct sg_http_header *h = &req->headers[i];
        if (ieq(h->name, h->name_len, name, n)) count++;
    }
    return count;
}

/* RFC 9110 5.6.1: #element lists; empty elements are allowed and ignored,
 * OWS surrounds the commas. */
int sg_http_is_in_list(const char *value, size_t len, const char *token)
{
    size_t tlen = strlen(token);
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && value[i] != ',')
            i++;
        size_t end = i;
        while (start < end && (value[start] == ' ' || value[start] == '\t'))
            start++;
        while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t'))
            end--;
        if (end > start && ieq(value + start, end - start, token, tlen)) return 1;
        i++; /* past the comma */
    }
    return 0;
}

const char *sg_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 416:
        return "Range Not Satisfiable";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

static int path_fail(char *out, size_t cap, int err)
{
    if (cap > 0) out[0] = '\0';
    return err;
}

int sg_http_path(const char *target, size_t len, char *out, size_t cap)
{
    /* RFC 9112 3.2.2: a server MUST accept the absolute-form, and RFC 6455
     * 4.2.1 allows "an absolute HTTP/HTTPS URI": drop scheme and authority
     * (RFC 3986 3.1: the scheme is case-insensitive) */
    size_t skip = 0;
    if (len > 7 && ieq(target, 7, "http://", 7)) skip = 7;
    if (len > 8 && ieq(target, 8, "https://", 8)) skip = 8;
    if (skip) {
        size_t i = skip;
        while (i < len && target[i] != '/' && target[i] != '?')
            i++;
        if (i == skip) return path_fail(out, cap, SG_EHTTP); /* no authority */
        if (i == len || target[i] == '?') {
            /* "http://host" or "http://host?q": the path is "/" */
            if (cap < 2) return path_fail(out, cap, SG_ETOOBIG);
            out[0] = '/';
            out[1] = '\0';
            return SG_OK;
        }
        target += i;
        len -= i;
    }
    /* RFC 9112 3.2.1: origin-form = absolute-path [ "?" query ] */
    if (len == 0 || target[0] != '/') return path_fail(out, cap, SG_EHTTP);
    const char *q = memchr(target, '?', len);
    size_t plen = q ? (size_t)(q - target) : len;

    /* RFC 3986 2.1; a NUL (raw or %00) would truncate the C string */
    size_t o = 0;
    int rc = sg_pct_decode(target, plen, out, cap, &o);
    if (rc == SG_ETOOBIG) return path_fail(out, cap, SG_ETOOBIG);
    if (rc != SG_OK) return path_fail(out, cap, SG_EHTTP);

    /* RFC 3986 3.3 segments; ".." (after decoding, so "%2e%2e" and "%2f.."
     * count) would climb out of the served directory */
    for (size_t s = 1; s <= o;) {
        size_t e = s;
        while (e < o && out[e] != '/')
            e++;
        if (e - s == 2 && out[s] == '.' && out[s + 1] == '.') return path_fail(out, cap, SG_EHTTP);
        s = e + 1;
    }
    return SG_OK;
}

const char *sg_http_mime(const char *path)
{
    static const struct {
        const char *ext;
        const char *type;
    } types[] = {
        {"html", "text/html; charset=utf-8"},
        {"htm", "text/html; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"js", "application/javascript"},
        {"mjs", "application/javascript"},
        {"json", "application/json"},
        {"map", "application/json"},
        {"txt", "text/plain; charset=utf-8"},
        {"png", "image/png"},
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},
        {"webp", "image/webp"},
        {"svg", "image/svg+xml"},
        {"ico", "image/x-icon"},
        {"wasm", "application/wasm"},
        {"woff", "font/woff"},
        {"woff2", "font/woff2"},
        {"xml", "application/xml"},
        {"pdf", "application/pdf"},
    };
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    if (dot && dot != base) {
        const char *ext = dot + 1;
        size_t n = strlen(ext);
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (ieq(ext, n, types[i].ext, strlen(types[i].ext))) return types[i].type;
    }
    return "application/octet-stream";
}
