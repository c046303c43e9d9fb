/* conn.c - one client connection: HTTP head, static files, the WebSocket
 * upgrade, frames, and the STOMP session on top. Thin glue: every protocol
 * decision is made by the sans-I/O modules; this file moves bytes, arms one
 * timer and frees the connection in exactly one place (conn_free).
 *
 * Re-entrancy: session callbacks may run inside our read loop, so nothing
 * frees a connection directly; it sets c->dead and the outermost callback
 * frees it on the way out (enter/leave).
 */
#include "auth.h"
#include "buf.h"
#include "error.h"
#include "log.h"
#include "conn.h"
#include "relay.h"
#include "ticker.h"
#include "server.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define READ_HWM_SLACK 65536 /* bound on unprocessed input: max_message + this */
#define OUT_HWM (256 * 1024) /* stop reading a peer we cannot write to */
#define LINGER_MS 2000
#define COPY_SHARED_MAX 8192 /* shared MESSAGE parts up to this are copied */

enum cstate {
    CS_HTTP,       /* waiting for the request head */
    CS_WS,         /* upgraded */
    CS_WS_CLOSING, /* we sent a close frame and wait for the peer's */
    CS_FLUSH,      /* writing the last bytes, then close */
    CS_LINGER,     /* write side shut, discarding input until EOF */
};

struct sg_conn {
    struct sg_worker *w;
    struct sg_server *s;
    struct sg_conn *prev, *next;
    struct bufferevent *bev;
    int fd, tls;
    int admin;     /* came in on an admin_listen listener */
    int loopback;  /* the peer is on 127.0.0.0/8 or ::1 */
    int transport; /* SG_TRANSPORT_* (metrics.h) */
    /* raw STOMP (stomp_listen): no HTTP and no WebSocket framing - socket
     * bytes go straight to the session's decoder and frames straight out;
     * the state machine is the WebSocket one (CS_WS while the session runs) */
    int raw;
    int ver_slot; /* 1 + the STOMP version counted in m.sessions, 0 if none */
    char ip[INET6_ADDRSTRLEN];
    char id[48];
    enum cstate state;
    int over_cap, ip_counted, ws_counted, stomp_counted;
    int in_cb, dead, read_paused, broker_paused;
    /* plain TCP after the upgrade: we write the output ourselves at the end
     * of each callback (one writev) and arm EV_WRITE only when the socket
     * would block, instead of libevent arming and disarming the write event
     * around every flush (two epoll_ctl per write on fan-out) */
    int manual_write;
    size_t dirty_idx;                 /* 1 + index in w->dirty, 0 if not listed */
    struct sg_relay_sess *rs;         /* the session's broker side, once authenticated */
    struct evbuffer_cb_entry *out_cb; /* counts output into w->out_bytes */
    struct event *timer;
    uint64_t dl_hs, dl_ping, dl_pong, dl_close;
    struct sg_ws_dec dec;
    int echo, close_sent;
    struct evbuffer *echo_buf;
    int echo_op;
    struct sg_stomp_session *sess;
    struct sg_auth_req *auth;
};

static _Thread_local struct sg_http_request tl_req;

static void conn_free(struct sg_conn *c);
static void handle_ws(struct sg_conn *c, struct evbuffer *in);

static void enter(struct sg_conn *c)
{
    c->in_cb++;
}

static void rearm(struct sg_conn *c)
{
    uint64_t dl = UINT64_MAX;
    uint64_t cand[4] = {c->dl_hs, c->dl_ping, c->dl_pong, c->dl_close};
    for (int i = 0; i < 4; i++)
        if (cand[i] && cand[i] < dl) dl = cand[i];
    if (c->sess && c->state == CS_WS) {
        uint64_t sd = sg_stomp_session_next_deadline(c->sess);
        if (sd < dl) dl = sd;
    }
    if (dl == UINT64_MAX) {
        event_del(c->timer);
        return;
    }
    uint64_t now = sg_now_ms();
    uint64_t d = dl > now ? dl - now : 0;
    struct timeval tv = {(time_t)(d / 1000), (suseconds_t)((d % 1000) * 1000)};
    event_add(c->timer, &tv);
}

static void on_drained(struct sg_conn *c);

/* Keeps the worker's count of buffered output bytes (the memory budget's
 * input) exact: every add and every drain of a connection's output. */
static void out_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    struct sg_conn *c = arg;
    long d = (long)info->n_added - (long)info->n_deleted;
    if (d) atomic_fetch_add_explicit(&c->w->out_bytes, d, memory_order_relaxed);
}

/* Manual write mode: write what is queued now; leave the rest to libevent. */
static void conn_flush(struct sg_conn *c)
{
    if (!c->manual_write) return;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (evbuffer_get_length(out) == 0) return;
    if (bufferevent_get_enabled(c->bev) & EV_WRITE) return; /* libevent is on it */
    int n = evbuffer_write(out, c->fd);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        /* let the bufferevent hit the same error and report it through
         * event_cb, the one place that ends a connection on I/O errors */
        bufferevent_enable(c->bev, EV_WRITE);
        return;
    }
    if (evbuffer_get_length(out) == 0)
        on_drained(c);
    else
        bufferevent_enable(c->bev, EV_WRITE); /* until write_cb sees it drained */
}

static void leave(struct sg_conn *c)
{
    if (--c->in_cb > 0) return;
    if (!c->dead) conn_flush(c);
    if (c->dead) {
        conn_free(c);
        return;
    }
    rearm(c);
}

/* ---- output */

static void out_bytes(struct sg_conn *c, const void *p, size_t n)
{
    bufferevent_write(c->bev, p, n);
    atomic_fetch_add_explicit(&c->s->m.bytes_out, (long)n, memory_order_relaxed);
}

static void ws_send(struct sg_conn *c, int opcode, const uint8_t *p, size_t n)
{
    uint8_t hdr[10];
    size_t hl = sg_ws_frame_header(hdr, opcode, 1, n);
    /* header and payload into the output buffer: the payload is copied once */
    out_bytes(c, hdr, hl);
    if (n) out_bytes(c, p, n);
    if (opcode < 8) atomic_fetch_add_explicit(&c->s->m.ws_msgs_out, 1, memory_order_relaxed);
}

/* A whole STOMP frame (ending in NUL) on a raw stream, with the EOL
 * RabbitMQ's plugin adds when trailing_lf is set. */
static void raw_send(struct sg_conn *c, const uint8_t *frame, size_t n)
{
    out_bytes(c, frame, n);
    if (c->s->cfg->trailing_lf) out_bytes(c, "\n", 1);
}

static void ws_send_close(struct sg_conn *c, int code, const char *reason)
{
    if (c->close_sent) return;
    if (c->raw) {
        /* no close frame on a raw stream: the ERROR before it and the
         * half-close (conn_finish) say it all */
        c->close_sent = 1;
        return;
    }
    uint8_t f[127];
    size_t n = sg_ws_close_frame(f, code, reason);
    out_bytes(c, f, n);
    c->close_sent = 1;
    sg_metrics_count_close(&c->s->m, 1, code);
}

/* The last bytes are written. Plain TCP: half-close and read until EOF, so
 * the peer gets our last bytes instead of an RST for data it sent
 * meanwhile. TLS: close now. */
static void conn_flushed(struct sg_conn *c)
{
    if (c->tls) {
        c->dead = 1;
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->state = CS_LINGER;
    c->dl_close = sg_now_ms() + LINGER_MS;
}

/* The last bytes are queued: close once they are written. */
static void conn_finish(struct sg_conn *c)
{
    if (c->state == CS_FLUSH || c->state == CS_LINGER) return;
    c->state = CS_FLUSH;
    c->dl_hs = c->dl_ping = c->dl_pong = 0;
    c->dl_close = sg_now_ms() + (uint64_t)c->s->cfg->close_timeout_ms;
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    /* nothing pending: the write callback won't fire */
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) conn_flushed(c);
}

/* Fail the WebSocket connection (RFC 6455 7.1.7): close frame, then close. */
static void ws_fail(struct sg_conn *c, int code, const char *reason)
{
    sg_log_sess(SG_LOG_INFO, c->id, "closing with %d: %s", code, reason ? reason : "");
    if (code == SG_WS_CLOSE_PROTOCOL || code == SG_WS_CLOSE_INVALID_DATA ||
        code == SG_WS_CLOSE_TOO_BIG)
        atomic_fetch_add_explicit(&c->s->m.ws_close_protocol, 1, memory_order_relaxed);
    ws_send_close(c, code, reason);
    conn_finish(c);
}

/* ---- HTTP */

/* Strict-Transport-Security for a response over TLS (hsts_max_age > 0),
 * else "": a header line with its CRLF, in buf. */
static const char *hsts(const struct sg_conn *c, char *buf, size_t cap)
{
    long long age = c->s->cfg->hsts_max_age;
    if (!c->tls || age <= 0) return "";
    snprintf(buf, cap, "Strict-Transport-Security: max-age=%lld\r\n", age);
    return buf;
}

static void http_error(struct sg_conn *c, int status, const char *msg)
{
    char buf[1024], h[96];
    size_t n = sg_http_error_response(status, msg ? msg : sg_http_reason(status), buf, sizeof buf);
    const char *eol = n ? memchr(buf, '\n', n) : NULL;
    const char *hs = hsts(c, h, sizeof h);
    if (eol && *hs) {
        /* after the status line */
        size_t first = (size_t)(eol - buf) + 1;
        out_bytes(c, buf, first);
        out_bytes(c, hs, strlen(hs));
        out_bytes(c, buf + first, n - first);
    } else if (n) {
        out_bytes(c, buf, n);
    }
    sg_log_sess(SG_LOG_DEBUG, c->id, "HTTP %d: %s", status, msg ? msg : "");
    conn_finish(c);
}

static void http_reply(struct sg_conn *c, int status, const char *ctype, const char *body,
                       size_t len, int head_only)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char h[96];
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                        "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
                        "%sConnection: close\r\n\r\n",
                        status, sg_http_reason(status), ctype, len, hsts(c, h, sizeof h));
    if (!head_only && len) evbuffer_add(out, body, len);
    conn_finish(c);
}

/* The body is built whole in a growable buffer (a few KiB; bounded so a
 * bug can never make it grow without end), then sent with its length. */
#define METRICS_BODY_MAX (1u << 20)

static void serve_metrics(struct sg_conn *c, int head_only)
{
    struct sg_server *s = c->s;
    struct sg_metrics_extra x = {0};
    for (int i = 0; i < s->nworkers; i++)
        x.buffered_bytes += atomic_load_explicit(&s->workers[i].out_bytes, memory_order_relaxed);
    x.auth_queue_length = (long)sg_auth_queue_length(s->auth);
    x.quote_symbols = s->ticker ? (long)sg_ticker_hub_interest(s->ticker, NULL, 0) : 0;
    x.nworkers = s->nworkers;
    x.uptime_s = (double)(sg_now_ms() - s->start_ms) / 1000.0;
    x.version = SG_VERSION;
    struct sg_buf body;
    sg_buf_init(&body, METRICS_BODY_MAX);
    if (sg_metrics_render(&body, &s->m, &x) != SG_OK) {
        sg_buf_reset(&body);
        http_error(c, 500, "cannot render the metrics");
        return;
    }
    http_reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", (const char *)body.data,
               body.len, head_only);
    sg_buf_reset(&body);
}

/* Sent with every static file. The page loads only its own scripts, styles
 * and images and talks only to the WebSocket endpoint it was served from:
 * CSP 3 lets 'self' match ws: and wss: on the page's own host and port (and
 * wss: only for an https page), which tests/browser checks in Chromium. */
static const char *SEC_HEADERS =
    "X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n"
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'\r\nReferrer-Policy: no-referrer\r\n";

/* realpath + prefix check: symlinks may not lead outside client_dir.
 * Returns 1 with real (PATH_MAX bytes) and *st set if path resolves to
 * something under root, else 0. */
static int resolve_under_root(const char *root, const char *path, char *real, struct stat *st)
{
    size_t rl = strlen(root);
    return realpath(path, real) && strncmp(real, root, rl) == 0 && real[rl] == '/' &&
           stat(real, st) == 0;
}

/* IMF-fixdate (RFC 9110 5.6.7), never locale-dependent: buf holds 30 bytes. */
static void http_date(time_t t, char *buf, size_t cap)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(buf, cap, "Thu, 01 Jan 1970 00:00:00 GMT");
        return;
    }
    snprintf(buf, cap, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Parses an IMF-fixdate; 0 for anything else, which RFC 9110 13.1.3 says to
 * ignore (the obsolete RFC 850 and asctime forms are not sent by browsers). */
static int http_date_parse(const char *v, size_t len, time_t *out)
{
    char s[64];
    struct tm tm = {0};
    if (len >= sizeof s) return 0;
    memcpy(s, v, len);
    s[len] = 0;
    const char *end = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end) return 0;
    *out = timegm(&tm);
    return *out != (time_t)-1;
}

/* If-None-Match (RFC 9110 13.1.2): "*" or a list of entity tags, compared
 * weakly (a W/ prefix is ignored on either side). etag is our quoted tag. */
static int etag_matches(const char *v, size_t len, const char *etag)
{
    size_t el = strlen(etag), i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        if (i == len) break;
        if (v[i] == '*') return 1;
        if (len - i >= 2 && v[i] == 'W' && v[i + 1] == '/') i += 2;
        if (i == len || v[i] != '"') return 0; /* malformed: no match, a full 200 */
        size_t start = i++;
        while (i < len && v[i] != '"')
            i++;
        if (i == len) return 0;
        i++;
        if (i - start == el && memcmp(v + start, etag, el) == 0) return 1;
    }
    return 0;
}

/* 1 if the request's validators say the client's copy is current (RFC 9110
 * 13.2.2: If-None-Match, when present, decides alone). */
static int not_modified(const struct sg_http_request *req, const char *etag, time_t mtime)
{
    const struct sg_http_header *h = sg_http_find(req, "If-None-Match");
    if (h) return etag_matches(h->value, h->value_len, etag);
    h = sg_http_find(req, "If-Modified-Since");
    time_t since;
    return h && http_date_parse(h->value, h->value_len, &since) && mtime <= since;
}

/* Static files are served with Cache-Control: no-cache and both validators,
 * so a browser always revalidates and gets a 304 without a body while the
 * file is unchanged. The ETag is the file's size and mtime in nanoseconds
 * (what a rewrite changes, as nginx does); Last-Modified its mtime. */
static void serve_file(struct sg_conn *c, const struct sg_http_request *req, const char *path,
                       int head_only)
{
    const char *root = c->s->client_root;
    char full[8192], real[PATH_MAX];
    if (!root[0]) {
        http_error(c, 404, "not found");
        return;
    }
    size_t pl = strlen(path);
    int fl = snprintf(full, sizeof full, "%s%s%s", root, path,
                      (pl && path[pl - 1] == '/') ? "index.html" : "");
    struct stat st;
    if (fl < 0 || (size_t)fl >= sizeof full || !resolve_under_root(root, full, real, &st)) {
        http_error(c, 404, "not found");
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        /* a directory without trailing slash: its index.html, which may be
         * a symlink too, so it is resolved and checked like any path */
        fl = snprintf(full, sizeof full, "%s/index.html", real);
        if (fl < 0 || (size_t)fl >= sizeof full || !resolve_under_root(root, full, real, &st)) {
            http_error(c, 404, "not found");
            return;
        }
    }
    if (!S_ISREG(st.st_mode)) {
        http_error(c, 404, "not found");
        return;
    }
    char etag[64], modified[40], date[40], hb[96];
    snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ULL +
                 (unsigned long long)st.st_mtim.tv_nsec);
    http_date(st.st_mtim.tv_sec, modified, sizeof modified);
    http_date(time(NULL), date, sizeof date);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (not_modified(req, etag, st.st_mtim.tv_sec)) {
        evbuffer_add_printf(out,
                            "HTTP/1.1 304 Not Modified\r\nDate: %s\r\nCache-Control: no-cache\r\n"
                            "ETag: %s\r\nLast-Modified: %s\r\n%s%sConnection: close\r\n\r\n",
                            date, etag, modified, SEC_HEADERS, hsts(c, hb, sizeof hb));
        conn_finish(c);
        return;
    }
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        http_error(c, 403, "forbidden");
        return;
    }
    evbuffer_add_printf(
        out,
        "HTTP/1.1 200 OK\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %lld\r\n"
        "Cache-Control: no-cache\r\nETag: %s\r\nLast-Modified: %s\r\n"
        "%s%sConnection: close\r\n\r\n",
        date, sg_http_mime(real), (long long)st.st_size, etag, modified, SEC_HEADERS,
        hsts(c, hb, sizeof hb));
    if (!head_only && st.st_size > 0) {
        evbuffer_add_file(out, fd, 0, st.st_size); /* takes the fd */
    } else {
        close(fd);
    }
    atomic_fetch_add_explicit(&c->s->m.bytes_out, (long)st.st_size, memory_order_relaxed);
    conn_finish(c);
}

static int is_ws_path(struct sg_server *s, const char *path)
{
    for (char **p = s->cfg->ws_paths; p && *p; p++)
        if (strcmp(*p, path) == 0) return 1;
    return 0;
}

/* Who may read /metrics and /readyz (/healthz is public: liveness
 * probes): anyone on an admin listener; on the public listeners, anyone
 * with metrics_public, nobody (404) once admin_listen moved them to
 * listeners of their own, else only loopback peers (403 for the others).
 * Returns 200 (allowed), 403 or 404. */
static int admin_allowed(const struct sg_conn *c)
{
    const struct sg_gw_config *cfg = c->s->cfg;
    if (c->admin || cfg->metrics_public) return 200;
    if (cfg->admin_listen && cfg->admin_listen[0]) return 404;
    return c->loopback ? 200 : 403;
}

static void serve_http(struct sg_conn *c, const struct sg_http_request *req)
{
    atomic_fetch_add_explicit(&c->s->m.http_requests, 1, memory_order_relaxed);
    int head = req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
    int get = req->method_len == 3 && memcmp(req->method, "GET", 3) == 0;
    if (!get && !head) {
        http_error(c, 405, "method not allowed");
        return;
    }
    char path[4096];
    if (sg_http_path(req->target, req->target_len, path, sizeof path) != SG_OK) {
        http_error(c, 400, "bad request target");
        return;
    }
    int metrics = !strcmp(path, "/metrics");
    if (!strcmp(path, "/healthz")) {
        http_reply(c, 200, "text/plain", "ok\n", 3, head);
    } else if (metrics || !strcmp(path, "/readyz")) {
        int allow = admin_allowed(c);
        if (allow == 404)
            http_error(c, 404, "not found");
        else if (allow == 403)
            http_error(c, 403, "forbidden: only loopback peers may read this");
        else if (metrics)
            serve_metrics(c, head);
        else if (sg_relay_ready(c->w->relay))
            http_reply(c, 200, "text/plain", "ready\n", 6, head);
        else
            http_reply(c, 503, "text/plain", "broker unavailable\n", 19, head);
    } else if (c->admin) {
        http_error(c, 404, "not found"); /* an admin listener serves nothing else */
    } else if (strcmp(path, "/") != 0 && is_ws_path(c->s, path)) {
        http_error(c, 426, "this is a WebSocket endpoint: send Upgrade: websocket");
    } else {
        serve_file(c, req, path, head);
    }
}

/* ---- STOMP session ops */

static void op_send(void *ctx, const uint8_t *frame, size_t len)
{
    struct sg_conn *c = ctx;
    if (c->close_sent) return;
    if (c->raw)
        raw_send(c, frame, len);
    else
        ws_send(c, sg_utf8_valid(frame, len) ? SG_WS_OP_TEXT : SG_WS_OP_BINARY, frame, len);
    /* the session sends CONNECTED, RECEIPT and ERROR: its command line */
    const uint8_t *eol = memchr(frame, '\n', len < 16 ? len : 16);
    int slot = eol ? sg_metrics_frame_out_slot(
                         sg_stomp_cmd_parse((const char *)frame, (size_t)(eol - frame)))
                   : -1;
    if (slot >= 0) atomic_fetch_add_explicit(&c->s->m.frames_out[slot], 1, memory_order_relaxed);
}

static void op_frame_in(void *ctx, enum sg_stomp_cmd cmd)
{
    struct sg_conn *c = ctx;
    atomic_fetch_add_explicit(&c->s->m.frames_in[sg_metrics_frame_in_slot((int)cmd)], 1,
                              memory_order_relaxed);
}

static void op_error_sent(void *ctx, int err, const char *message)
{
    struct sg_conn *c = ctx;
    if (c->close_sent) return; /* op_send dropped it */
    enum sg_err_reason r = sg_metrics_error_reason(err, message);
    atomic_fetch_add_explicit(&c->s->m.errors[r], 1, memory_order_relaxed);
}

static void op_send_heartbeat(void *ctx)
{
    struct sg_conn *c = ctx;
    if (c->close_sent) return;
    if (c->raw)
        out_bytes(c, "\n", 1);
    else
        ws_send(c, SG_WS_OP_TEXT, (const uint8_t *)"\n", 1);
}

static void op_close(void *ctx, int code, const char *reason)
{
    struct sg_conn *c = ctx;
    sg_log_sess(SG_LOG_DEBUG, c->id, "session closing with %d %s", code, reason ? reason : "");
    if (c->state != CS_WS) return;
    if (c->raw) {
        /* the ERROR is queued: write it, then half-close */
        c->close_sent = 1;
        conn_finish(c);
        return;
    }
    ws_send_close(c, code, reason);
    c->state = CS_WS_CLOSING;
    c->dl_ping = c->dl_pong = 0;
    c->dl_close = sg_now_ms() + (uint64_t)c->s->cfg->close_timeout_ms;
}

static void op_authenticate(void *ctx, const char *login, const char *passcode, const char *vhost)
{
    struct sg_conn *c = ctx;
    if (!login) {
        sg_log_sess(SG_LOG_INFO, c->id, "CONNECT without login refused (no default_login)");
        atomic_fetch_add_explicit(&c->s->m.auth_refused, 1, memory_order_relaxed);
        sg_stomp_session_auth_result(c->sess, 0, sg_now_ms());
        return;
    }
    struct sg_auth_req *r = calloc(1, sizeof *r);
    if (!r || strlen(login) >= sizeof r->login ||
        strlen(passcode ? passcode : "") >= sizeof r->passcode ||
        strlen(vhost) >= sizeof r->vhost) {
        free(r);
        sg_stomp_session_auth_result(c->sess, 0, sg_now_ms());
        return;
    }
    r->w = c->w;
    r->conn = c;
    r->done = sg_conn_auth_done;
    snprintf(r->login, sizeof r->login, "%s", login);
    snprintf(r->passcode, sizeof r->passcode, "%s", passcode ? passcode : "");
    snprintf(r->vhost, sizeof r->vhost, "%s", vhost);
    c->auth = r;
    if (sg_auth_submit(c->s->auth, r) == SG_EBUSY) {
        /* auth_queue_max logins already wait for the broker: refuse now
         * rather than queue behind them (1013: try again later) */
        c->auth = NULL;
        OPENSSL_cleanse(r->passcode, sizeof r->passcode);
        free(r);
        atomic_fetch_add_explicit(&c->s->m.auth_rejected_busy, 1, memory_order_relaxed);
        sg_log_sess(SG_LOG_INFO, c->id, "login %s refused: too many logins in progress", login);
        sg_stomp_session_fail(c->sess, "server busy: too many logins in progress", NULL,
                              SG_WS_CLOSE_TRY_AGAIN);
    }
}

static int op_relay(void *ctx, const struct sg_action *act, const char **errmsg)
{
    struct sg_conn *c = ctx;
    return sg_relay_action(c->rs, act, errmsg);
}

static const struct sg_stomp_session_ops session_ops = {
    .send = op_send,
    .send_heartbeat = op_send_heartbeat,
    .close = op_close,
    .authenticate = op_authenticate,
    .relay = op_relay,
    .frame_in = op_frame_in,
    .error_sent = op_error_sent,
};

void sg_conn_auth_done(struct sg_auth_req *r)
{
    struct sg_conn *c = r->conn;
    if (!c) return; /* the connection went away meanwhile */
    c->auth = NULL;
    enter(c);
    if (r->ok) {
        atomic_fetch_add_explicit(&c->s->m.auth_ok, 1, memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&c->s->m.auth_refused, 1, memory_order_relaxed);
    }
    sg_log_sess(r->ok ? SG_LOG_DEBUG : SG_LOG_INFO, c->id, "login %s vhost %s: %s", r->login,
                r->vhost, r->reason);
    if (c->sess && c->state == CS_WS) {
        int ok = r->ok;
        if (ok && sg_relay_attach(c->w->relay, &sg_conn_relay_ops, c, r->login, r->passcode,
                                  r->vhost, &c->rs) != SG_OK)
            ok = 0;
        sg_stomp_session_auth_result(c->sess, ok, sg_now_ms());
        if (sg_stomp_session_state(c->sess) == SG_SESS_CONNECTED && !c->stomp_counted) {
            c->stomp_counted = 1;
            atomic_fetch_add_explicit(&c->s->m.stomp_connected, 1, memory_order_relaxed);
            int v = sg_stomp_session_version(c->sess) - 10, t = c->transport;
            if (v >= 0 && v < SG_STOMP_VERSIONS) {
                c->ver_slot = v + 1;
                atomic_fetch_add_explicit(&c->s->m.sessions[v][t], 1, memory_order_relaxed);
                atomic_fetch_add_explicit(&c->s->m.sessions_total[v][t], 1, memory_order_relaxed);
            }
            sg_log_sess(SG_LOG_INFO, c->id, "STOMP %d.%d session %s for %s",
                        sg_stomp_session_version(c->sess) / 10,
                        sg_stomp_session_version(c->sess) % 10, sg_stomp_session_id(c->sess),
                        r->login);
            snprintf(c->id, sizeof c->id, "%s", sg_stomp_session_id(c->sess));
            /* CONNECTED: WebSocket messages up to max_message from now on
             * (before the CONNECTED frame is flushed on leave) */
            sg_ws_dec_set_max_message(&c->dec, c->s->ws_lim.max_message);
        }
    }
    leave(c);
}

/* ---- upgrade (or a raw STOMP start) */

/* From now on the connection's output counts in its worker's buffered
 * bytes (the memory budget's input). */
static void count_output(struct sg_conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    atomic_fetch_add_explicit(&c->w->out_bytes, (long)evbuffer_get_length(out),
                              memory_order_relaxed);
    c->out_cb = evbuffer_add_cb(out, out_cb, c);
}

/* A raw STOMP connection (stomp_listen): the session starts at once; the
 * CONNECT deadline, heart-beats, limits, auth and the relay are the
 * WebSocket path's, only the framing differs. */
static void raw_start(struct sg_conn *c)
{
    c->state = CS_WS;
    c->dl_hs = 0;
    if (!c->tls) {
        c->manual_write = 1;
        bufferevent_disable(c->bev, EV_WRITE);
    }
    count_output(c);
    c->sess = sg_stomp_session_new(&c->s->sess_cfg, &session_ops, c, 0, sg_now_ms());
    if (!c->sess) {
        c->dead = 1;
        return;
    }
    if (c->over_cap) {
        sg_log_sess(SG_LOG_INFO, c->id, "STOMP connection from %s over the connection caps", c->ip);
        sg_stomp_session_fail(c->sess, "too many connections", NULL, SG_WS_CLOSE_TRY_AGAIN);
    } else if (atomic_load(&c->s->draining)) {
        sg_stomp_session_fail(c->sess, "server shutting down", NULL, c->s->close_code);
    }
}

static void do_upgrade(struct sg_conn *c, const struct sg_ws_hs_result *res, size_t head_len)
{
    char buf[512];
    size_t n = sg_ws_hs_response_101(res, buf, sizeof buf);
    struct evbuffer *in = bufferevent_get_input(c->bev);
    evbuffer_drain(in, head_len);
    out_bytes(c, buf, n);
    c->state = CS_WS;
    c->dl_hs = 0;
    if (!c->tls) {
        c->manual_write = 1;
        bufferevent_disable(c->bev, EV_WRITE);
    }
    uint64_t now = sg_now_ms();
    if (c->s->cfg->ping_interval_ms > 0) c->dl_ping = now + (uint64_t)c->s->cfg->ping_interval_ms;
    c->ws_counted = 1;
    count_output(c);
    atomic_fetch_add_explicit(&c->s->m.ws_open, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->s->m.ws_upgrades, 1, memory_order_relaxed);
    /* until the STOMP session is CONNECTED a message holds at most a
     * CONNECT (max_connect_frame); sg_conn_auth_done raises the bound */
    struct sg_ws_limits lim = c->s->ws_lim;
    if (!res->echo && (uint64_t)c->s->cfg->max_connect_frame < lim.max_message)
        lim.max_message = (uint64_t)c->s->cfg->max_connect_frame;
    sg_ws_dec_init(&c->dec, &lim);
    c->echo = res->echo;
    if (c->echo) {
        c->echo_buf = evbuffer_new();
    } else {
        c->sess = sg_stomp_session_new(&c->s->sess_cfg, &session_ops, c, (int)res->subproto, now);
        if (!c->sess) {
            ws_fail(c, SG_WS_CLOSE_TRY_AGAIN, "out of memory");
            return;
        }
    }
    sg_log_sess(SG_LOG_DEBUG, c->id, "upgraded (%s)",
                c->echo ? "echo" : (sg_ws_subproto_name(res->subproto) ?: "no subprotocol"));
    if (evbuffer_get_length(in)) handle_ws(c, in);
}

static void handle_http(struct sg_conn *c, struct evbuffer *in)
{
    size_t len = evbuffer_get_length(in);
    size_t cap = c->s->http_lim.max_header_bytes;
    size_t n = len < cap ? len : cap;
    const char *p = (const char *)evbuffer_pullup(in, (ssize_t)n);
    struct sg_http_request *req = &tl_req;
    ssize_t r = sg_http_parse_request(p, n, req, &c->s->http_lim);
    if (r == SG_AGAIN) {
        if (len >= cap) http_error(c, 431, "request header fields too large");
        return;
    }
    if (r < 0) {
        atomic_fetch_add_explicit(&c->s->m.hs_rejected, 1, memory_order_relaxed);
        http_error(c, req->error_status ? req->error_status : 400, req->error);
        return;
    }
    if (c->admin) {
        serve_http(c, req); /* plain HTTP only: no upgrade, no static files */
        return;
    }
    if (c->over_cap) {
        atomic_fetch_add_explicit(&c->s->m.hs_rejected, 1, memory_order_relaxed);
        http_error(c, 503, "too many connections, try again later");
        return;
    }
    struct sg_ws_hs_result res;
    sg_ws_handshake(req, &c->s->policy, &res);
    switch (res.kind) {
    case SG_HS_NOT_UPGRADE:
        serve_http(c, req);
        break;
    case SG_HS_REJECT:
        atomic_fetch_add_explicit(&c->s->m.hs_rejected, 1, memory_order_relaxed);
        sg_log_sess(SG_LOG_INFO, c->id, "handshake from %s rejected: %d %s", c->ip, res.status,
                    res.error);
        http_error(c, res.status, res.error);
        break;
    case SG_HS_ACCEPT:
        if (atomic_load(&c->s->draining)) {
            http_error(c, 503, "shutting down");
            break;
        }
        do_upgrade(c, &res, (size_t)r);
        break;
    }
}

/* ---- WebSocket frames */

static void on_ws_event(struct sg_conn *c, const struct sg_ws_event *ev)
{
    switch (ev->type) {
    case SG_WS_EV_DATA:
        if (ev->fin) atomic_fetch_add_explicit(&c->s->m.ws_msgs_in, 1, memory_order_relaxed);
        c->dl_pong = 0;                /* the peer is alive */
        if (c->state != CS_WS) return; /* after our close: data is ignored (RFC 6455 5.5.1) */
        if (c->echo) {
            if (ev->len) evbuffer_add(c->echo_buf, ev->data, ev->len);
            c->echo_op = ev->opcode;
            if (ev->fin) {
                size_t n = evbuffer_get_length(c->echo_buf);
                ws_send(c, c->echo_op, evbuffer_pullup(c->echo_buf, -1), n);
                evbuffer_drain(c->echo_buf, n);
            }
        } else if (ev->len) {
            sg_stomp_session_on_data(c->sess, ev->data, ev->len, sg_now_ms());
        }
        break;
    case SG_WS_EV_PING:
        if (!c->close_sent) ws_send(c, SG_WS_OP_PONG, ev->data, ev->len);
        break;
    case SG_WS_EV_PONG:
        c->dl_pong = 0;
        break;
    case SG_WS_EV_CLOSE:
        sg_metrics_count_close(&c->s->m, 0, ev->close_code);
        if (!c->close_sent) {
            /* echo the peer's code (RFC 6455 5.5.1); none -> empty close */
            ws_send_close(c, ev->close_code == SG_WS_CLOSE_NO_STATUS ? 0 : ev->close_code, NULL);
        }
        conn_finish(c);
        break;
    case SG_WS_EV_NONE:
        break;
    }
}

static void handle_ws(struct sg_conn *c, struct evbuffer *in)
{
    size_t len = evbuffer_get_length(in);
    if (!len) return;
    uint8_t *p = evbuffer_pullup(in, (ssize_t)len);
    size_t off = 0;
    while (!c->dead && (c->state == CS_WS || c->state == CS_WS_CLOSING)) {
        struct sg_ws_event ev;
        ssize_t n = sg_ws_decode(&c->dec, p + off, len - off, &ev);
        if (n < 0) {
            ws_fail(c, c->dec.close_code, c->dec.error);
            break;
        }
        off += (size_t)n;
        if (ev.type == SG_WS_EV_NONE) break;
        on_ws_event(c, &ev);
    }
    evbuffer_drain(in, len);
    /* backpressure (libevent's le-proxy): stop reading a peer whose output is
     * piling up until it drains */
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) > OUT_HWM && !c->read_paused &&
        (c->state == CS_WS || c->state == CS_WS_CLOSING)) {
        c->read_paused = 1;
        bufferevent_disable(c->bev, EV_READ);
    }
}

/* Raw STOMP: the socket's bytes are the session's input (its decoder finds
 * the frames, heart-beat EOLs and bounds). */
static void handle_raw(struct sg_conn *c, struct evbuffer *in)
{
    size_t len = evbuffer_get_length(in);
    if (!len) return;
    if (c->state == CS_WS && c->sess)
        sg_stomp_session_on_data(c->sess, evbuffer_pullup(in, (ssize_t)len), len, sg_now_ms());
    evbuffer_drain(in, len);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) > OUT_HWM && !c->read_paused &&
        c->state == CS_WS) {
        c->read_paused = 1;
        bufferevent_disable(c->bev, EV_READ);
    }
}

/* ---- libevent callbacks */

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct sg_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    enter(c);
    atomic_fetch_add_explicit(&c->s->m.bytes_in, (long)evbuffer_get_length(in),
                              memory_order_relaxed);
    switch (c->state) {
    case CS_HTTP:
        handle_http(c, in);
        break;
    case CS_WS:
    case CS_WS_CLOSING:
        if (c->raw)
            handle_raw(c, in);
        else
            handle_ws(c, in);
        break;
    case CS_FLUSH:
    case CS_LINGER:
        evbuffer_drain(in, evbuffer_get_length(in));
        break;
    }
    leave(c);
}

/* The output buffer is empty (written by libevent or by conn_flush). */
static void on_drained(struct sg_conn *c)
{
    struct bufferevent *bev = c->bev;
    if (c->manual_write && c->state != CS_FLUSH) bufferevent_disable(bev, EV_WRITE);
    if (c->read_paused && c->state != CS_FLUSH && c->state != CS_LINGER) {
        c->read_paused = 0;
        if (!c->broker_paused) bufferevent_enable(bev, EV_READ);
    }
    if (c->rs && c->state == CS_WS) sg_relay_drained(c->rs);
    if (c->state == CS_FLUSH && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        conn_flushed(c);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    struct sg_conn *c = arg;
    enter(c);
    on_drained(c);
    leave(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct sg_conn *c = arg;
    enter(c);
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        if (what & BEV_EVENT_ERROR && c->state != CS_LINGER) {
            unsigned long e = c->tls ? bufferevent_get_openssl_error(bev) : 0;
            sg_log_sess(SG_LOG_DEBUG, c->id, "connection error: %s",
                        e ? "TLS error" : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        }
        c->dead = 1;
    }
    leave(c);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_conn *c = arg;
    uint64_t now = sg_now_ms();
    enter(c);
    if (c->dl_close && now >= c->dl_close) {
        /* the peer never answered our close, or never finished: drop it */
        c->dead = 1;
    } else if (c->dl_hs && now >= c->dl_hs) {
        http_error(c, 408, "request timeout");
    } else if (c->state == CS_WS) {
        if (c->dl_pong && now >= c->dl_pong) {
            ws_fail(c, SG_WS_CLOSE_GOING_AWAY, "ping timeout");
        } else {
            if (c->dl_ping && now >= c->dl_ping) {
                uint8_t payload[8];
                for (int i = 0; i < 8; i++)
                    payload[i] = (uint8_t)(now >> (56 - 8 * i));
                ws_send(c, SG_WS_OP_PING, payload, sizeof payload);
                if (!c->dl_pong) c->dl_pong = now + (uint64_t)c->s->cfg->pong_timeout_ms;
                c->dl_ping = now + (uint64_t)c->s->cfg->ping_interval_ms;
            }
            /* not reading it because the broker blocks publishing: the
             * client's heart-beats wait in the socket, it is not silent */
            if (c->sess && c->broker_paused) sg_stomp_session_on_paused(c->sess, now);
            if (c->sess && now >= sg_stomp_session_next_deadline(c->sess))
                sg_stomp_session_on_tick(c->sess, now);
        }
    }
    leave(c);
}

/* ---- lifecycle */

void sg_conn_accept(struct sg_worker *w, int fd, const struct sockaddr *sa, int socklen, int flags)
{
    struct sg_server *s = w->srv;
    struct sg_conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    int tls = !!(flags & SG_LISTEN_TLS);
    c->w = w;
    c->s = s;
    c->fd = fd;
    c->tls = tls;
    c->admin = !!(flags & SG_LISTEN_ADMIN);
    c->raw = !!(flags & SG_LISTEN_STOMP);
    c->transport = c->admin ? SG_TRANSPORT_ADMIN
                   : c->raw ? (tls ? SG_TRANSPORT_STOMPS : SG_TRANSPORT_STOMP)
                   : tls    ? SG_TRANSPORT_WSS
                            : SG_TRANSPORT_WS;
    c->loopback = socklen > 0 && sg_addr_is_loopback(sa, (size_t)socklen);
    c->state = CS_HTTP;
    snprintf(c->id, sizeof c->id, "w%d-c%llu", w->id, (unsigned long long)++w->next_conn_id);
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->ip, sizeof c->ip);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->ip, sizeof c->ip);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    if (tls) {
        SSL *ssl = SSL_new(s->ssl_ctx);
        if (ssl)
            c->bev =
                bufferevent_openssl_socket_new(w->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                               BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        if (c->bev)
            bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
        else if (ssl)
            SSL_free(ssl);
    } else {
        c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    c->timer = evtimer_new(w->base, timer_cb, c);
    if (!c->bev || !c->timer) {
        if (c->bev)
            bufferevent_free(c->bev);
        else
            close(fd);
        if (c->timer) event_free(c->timer);
        free(c);
        return;
    }
    long open_now = atomic_fetch_add(&s->m.conns_open, 1) + 1;
    atomic_fetch_add_explicit(&s->m.conns_accepted, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->m.conns_by_transport[c->transport], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->m.accepted_by_transport[c->transport], 1, memory_order_relaxed);
    /* an admin connection is answered even at the caps: that is when an
     * operator needs the metrics */
    if (!c->admin) {
        if (open_now > s->cfg->max_connections) c->over_cap = 1;
        if (sg_ip_acquire(s, c->ip))
            c->ip_counted = 1;
        else
            c->over_cap = 1;
    }
    c->next = w->conns;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, (size_t)s->cfg->max_message + READ_HWM_SLACK);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->dl_hs = sg_now_ms() + (uint64_t)s->cfg->handshake_timeout_ms;
    sg_log_sess(SG_LOG_DEBUG, c->id, "accepted %s%s%s%s from %s", tls ? "TLS " : "",
                c->admin ? "admin " : "", c->raw ? "STOMP " : "", c->over_cap ? "(over cap)" : "",
                c->ip);
    if (c->raw) {
        enter(c);
        raw_start(c);
        leave(c); /* writes what it queued; frees a connection that failed */
        return;
    }
    rearm(c);
}

static void conn_free(struct sg_conn *c)
{
    struct sg_worker *w = c->w;
    struct sg_server *s = c->s;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    if (c->auth) c->auth->conn = NULL; /* the auth thread's answer finds nobody */
    if (c->dirty_idx) w->dirty[c->dirty_idx - 1] = NULL;
    sg_relay_detach(c->rs);
    c->rs = NULL;
    if (c->sess) sg_stomp_session_free(c->sess);
    if (c->echo_buf) evbuffer_free(c->echo_buf);
    if (c->stomp_counted) atomic_fetch_sub(&s->m.stomp_connected, 1);
    if (c->ver_slot) atomic_fetch_sub(&s->m.sessions[c->ver_slot - 1][c->transport], 1);
    if (c->ws_counted) atomic_fetch_sub(&s->m.ws_open, 1);
    if (c->ip_counted) sg_ip_release(s, c->ip);
    atomic_fetch_sub(&s->m.conns_open, 1);
    atomic_fetch_sub(&s->m.conns_by_transport[c->transport], 1);
    event_free(c->timer);
    if (c->out_cb) {
        struct evbuffer *out = bufferevent_get_output(c->bev);
        evbuffer_remove_cb_entry(out, c->out_cb);
        atomic_fetch_sub_explicit(&w->out_bytes, (long)evbuffer_get_length(out),
                                  memory_order_relaxed);
    }
    bufferevent_free(c->bev);
    sg_log_sess(SG_LOG_DEBUG, c->id, "closed");
    free(c);
}

/* ---- the relay's view of a connection (relay.h: sg_relay_client_ops) */

static const char *rop_id(void *client)
{
    return ((struct sg_conn *)client)->id;
}

static int rop_version(void *client)
{
    struct sg_conn *c = client;
    return c->sess ? sg_stomp_session_version(c->sess) : 0;
}

static int conn_open(const struct sg_conn *c)
{
    return c->state == CS_WS && !c->dead && !c->close_sent;
}

static int rop_is_open(void *client)
{
    return conn_open(client);
}

static size_t rop_outlen(void *client)
{
    struct sg_conn *c = client;
    return evbuffer_get_length(bufferevent_get_output(c->bev));
}

static void rop_write(void *client, const void *head, size_t head_len, struct evbuffer *shared,
                      int text)
{
    struct sg_conn *c = client;
    if (!conn_open(c)) return;
    size_t n = head_len + (shared ? evbuffer_get_length(shared) : 0);
    uint8_t hdr[10];
    size_t hl = c->raw ? 0 : sg_ws_frame_header(hdr, text ? SG_WS_OP_TEXT : SG_WS_OP_BINARY, 1, n);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (hl) evbuffer_add(out, hdr, hl);
    if (head_len) evbuffer_add(out, head, head_len);
    /* A large shared part is referenced, not copied: one encoding per
     * delivery. A small one is copied: a reference costs a chain of its own
     * (~100 bytes) and makes the next head start a fresh 1 KiB chain, so
     * for small messages a reference would cost several times the message
     * and the buffered byte count would not be what the memory holds;
     * copied, consecutive small messages pack into full chains. */
    if (shared) {
        size_t sl = evbuffer_get_length(shared);
        if (sl <= COPY_SHARED_MAX)
            evbuffer_add(out, evbuffer_pullup(shared, -1), sl);
        else
            evbuffer_add_buffer_reference(out, shared);
    }
    if (c->raw && c->s->cfg->trailing_lf) {
        evbuffer_add(out, "\n", 1);
        n++;
    }
    atomic_fetch_add_explicit(&c->s->m.bytes_out, (long)(hl + n), memory_order_relaxed);
    atomic_fetch_add_explicit(&c->s->m.ws_msgs_out, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->s->m.frames_out[sg_metrics_frame_out_slot(SG_STOMP_MESSAGE)], 1,
                              memory_order_relaxed);
    if (c->sess) sg_stomp_session_on_sent(c->sess, sg_now_ms());
    if (c->manual_write && !c->dirty_idx && !c->in_cb) {
        struct sg_worker *w = c->w;
        if (w->ndirty == w->capdirty) {
            size_t cap = w->capdirty ? w->capdirty * 2 : 64;
            struct sg_conn **d = realloc(w->dirty, cap * sizeof *d);
            if (!d) {
                bufferevent_enable(c->bev, EV_WRITE); /* libevent writes it instead */
                return;
            }
            w->dirty = d;
            w->capdirty = cap;
        }
        w->dirty[w->ndirty++] = c;
        c->dirty_idx = w->ndirty;
    }
}

static void rop_pause_read(void *client, int pause)
{
    struct sg_conn *c = client;
    c->broker_paused = pause;
    if (pause)
        bufferevent_disable(c->bev, EV_READ);
    else if (!c->read_paused && (c->state == CS_WS || c->state == CS_WS_CLOSING))
        bufferevent_enable(c->bev, EV_READ);
}

static void rop_receipt(void *client, const char *receipt)
{
    struct sg_conn *c = client;
    if (conn_open(c) && c->sess) sg_stomp_session_receipt(c->sess, receipt);
}

static void rop_fail(void *client, const char *message, const char *receipt, int ws_code)
{
    struct sg_conn *c = client;
    if (conn_open(c) && c->sess) sg_stomp_session_fail(c->sess, message, receipt, ws_code);
}

static void rop_hold(void *client)
{
    enter(client);
}

static void rop_release(void *client)
{
    leave(client);
}

const struct sg_relay_client_ops sg_conn_relay_ops = {
    .id = rop_id,
    .version = rop_version,
    .is_open = rop_is_open,
    .write = rop_write,
    .outlen = rop_outlen,
    .pause_read = rop_pause_read,
    .receipt = rop_receipt,
    .fail = rop_fail,
    .hold = rop_hold,
    .release = rop_release,
};

void sg_conn_flush_pending(void *worker)
{
    struct sg_worker *w = worker;
    for (size_t i = 0; i < w->ndirty; i++) {
        struct sg_conn *c = w->dirty[i];
        if (!c) continue; /* freed meanwhile */
        c->dirty_idx = 0;
        w->dirty[i] = NULL;
        enter(c);
        leave(c); /* flushes; frees a connection that died */
    }
    w->ndirty = 0;
}

void sg_conn_drain_begin(struct sg_worker *w)
{
    struct sg_conn *c = w->conns, *next;
    for (; c; c = next) {
        next = c->next;
        enter(c);
        if (c->state == CS_WS) {
            /* no new frames: what was sent is finished (confirms, receipts) */
            c->broker_paused = 1;
            bufferevent_disable(c->bev, EV_READ);
        } else if (c->state == CS_HTTP) {
            c->dead = 1;
        }
        leave(c);
    }
}

void sg_conn_close_all(struct sg_worker *w, int code)
{
    struct sg_conn *c = w->conns, *next;
    for (; c; c = next) {
        next = c->next;
        enter(c);
        if (c->state == CS_WS || c->state == CS_WS_CLOSING) {
            /* read again: the peer's close frame answers ours */
            c->broker_paused = 0;
            if (!c->read_paused) bufferevent_enable(c->bev, EV_READ);
        }
        if (c->state == CS_WS && c->sess)
            sg_stomp_session_fail(c->sess, "server shutting down", NULL, code);
        else if (c->state == CS_WS || c->state == CS_WS_CLOSING)
            ws_fail(c, code, "server shutting down");
        else if (c->state == CS_HTTP)
            c->dead = 1;
        leave(c);
    }
}

void sg_conn_free_all(struct sg_worker *w)
{
    while (w->conns)
        conn_free(w->conns);
}
