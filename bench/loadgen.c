/* loadgen.c - STOMP-over-WebSocket load generator for `make bench`.
 *
 * One process, one thread, epoll, non-blocking sockets. It opens N
 * WebSocket connections (subprotocol v12.stomp) to ws://HOST:PORT/PATH,
 * CONNECTs a STOMP 1.2 session on each, SUBSCRIBEs S of them to
 * /topic/PREFIX.K (with receipts, so the publish phase starts only once
 * every subscription is in place), then P publisher connections SEND M
 * messages of B bytes in total. Each body starts with the send time
 * (CLOCK_MONOTONIC ns), so subscribers measure end-to-end latency.
 *
 * Flow control: a publisher sends while its topic has fewer than --window
 * messages in flight (sent minus the average count delivered to the topic's
 * live subscribers), optionally capped by --rate messages/s (all publishers
 * together). Everything is bounded: it stops after M messages have been
 * delivered to every live subscriber, or at --timeout.
 *
 * Output: one JSON line on stdout (connect time, delivered messages per
 * second over all subscribers, latency p50/p99/max, errors, and RSS / CPU
 * of the processes given with --pid NAME:PID before and after the run).
 *
 * The WebSocket client side is written here (client frames must be masked,
 * server frames are not); STOMP frames are decoded with the project's
 * sans-I/O decoder (stomp_frame.h), which treats EOLs between frames as
 * heart-beats, so web_stomp's NUL+"\n" frame ending is handled.
 */
#include "error.h"
#include "stomp_frame.h"
#include "ws_handshake.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SCRATCH_SIZE (256 * 1024)
#define MAX_IN_PENDING (8u * 1024 * 1024)  /* bound on a partial frame kept per connection */
#define MAX_OUT_PENDING (1u * 1024 * 1024) /* publishers stop queueing past this */
#define MAX_PIDS 4
#define BODY_MIN 32
/* web_stomp (cowboy) closes a WebSocket that sent nothing for 60 s: every
 * session sends a WebSocket ping this often */
#define KEEPALIVE_NS (10ull * 1000000000ull)

enum role { ROLE_IDLE, ROLE_SUB, ROLE_PUB };
enum cstate { ST_NEW, ST_TCP, ST_HS, ST_STOMP, ST_READY, ST_DEAD };
enum phase { PH_CONNECT, PH_SUBSCRIBE, PH_PUBLISH, PH_DRAIN, PH_SETTLE, PH_DONE };
static const char *phase_name[] = {"connect", "subscribe", "publish", "drain", "settle", "done"};

struct conn {
    int fd;
    int idx;
    enum role role;
    enum cstate state;
    int topic;
    int subscribed;
    int dirty; /* on the flush list */
    int want_out;
    char key[32];
    uint8_t *in;
    size_t in_len, in_cap;
    uint8_t *out;
    size_t out_off, out_len, out_cap;
    struct sg_stomp_dec *dec;
    uint64_t recv;  /* MESSAGEs received (subscribers) */
    uint64_t sent;  /* SENDs queued (publishers) */
    uint64_t quota; /* SENDs to do (publishers) */
};

struct watched {
    char name[32];
    int pid;
    long rss_before_kb, rss_after_kb;
    double cpu_before_s, cpu_after_s;
};

static struct {
    /* options */
    struct sockaddr_in addr;
    char host[64];
    char path[256];
    char login[128], passcode[128];
    int conns, subs, pubs, topics;
    long long messages;
    int size;
    int window;
    double rate;
    double timeout_s;
    int settle_ms;
    int concurrency;
    char prefix[96];
    char label[64], target[64];
    struct watched pids[MAX_PIDS];
    int npids;
    /* state */
    int ep;
    struct conn *c;
    struct conn **dirty;
    int ndirty;
    uint8_t *scratch;
    uint64_t rng;
    enum phase phase;
    int started, inprogress, connected, setup_failed, dead;
    int subs_ok;
    long long sent_total;
    uint64_t delivered;
    uint64_t *topic_sent;      /* messages sent to each topic */
    uint64_t *topic_delivered; /* deliveries to live subscribers of each topic */
    int *topic_subs;           /* live subscribers of each topic */
    uint64_t *lat;             /* latencies in ns */
    size_t nlat, lat_cap;
    /* times (ns) */
    uint64_t t0, t_conn_end, t_sub_end, t_pub_start, t_pub_end, t_last_delivery, t_settle;
    uint64_t deadline, next_ping;
    int timed_out;
    /* errors */
    int e_connect, e_handshake, e_stomp_error, e_closed, e_protocol, e_body;
    char first_error[256];
} g;

/* ------------------------------------------------------------------ utils */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(void)
{
    uint64_t x = g.rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    g.rng = x;
    return x;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) die("out of memory (%zu bytes)", n);
    return q;
}

static void note_error(struct conn *c, const char *fmt, ...)
{
    if (g.first_error[0]) return;
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(g.first_error, sizeof g.first_error, "conn %d (%s, %s): %s", c ? c->idx : -1,
             c ? (c->role == ROLE_SUB   ? "sub"
                  : c->role == ROLE_PUB ? "pub"
                                        : "idle")
               : "-",
             phase_name[g.phase], msg);
}

static long read_rss_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

static double read_cpu_s(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* after "(comm)": state is field 3 */
    if (!p) return -1;
    p += 2;
    unsigned long long ut = 0, st = 0;
    /* fields 3..15: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
     * stime */
    if (sscanf(p, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void sample_pids(int after)
{
    for (int i = 0; i < g.npids; i++) {
        struct watched *w = &g.pids[i];
        if (after) {
            w->rss_after_kb = read_rss_kb(w->pid);
            w->cpu_after_s = read_cpu_s(w->pid);
        } else {
            w->rss_before_kb = read_rss_kb(w->pid);
            w->cpu_before_s = read_cpu_s(w->pid);
        }
    }
}

/* ------------------------------------------------------------------ output */

static void flush_list_add(struct conn *c)
{
    if (!c->dirty) {
        c->dirty = 1;
        g.dirty[g.ndirty++] = c;
    }
}

static void out_reserve(struct conn *c, size_t n)
{
    if (c->out_off > 0 && c->out_off == c->out_len) c->out_off = c->out_len = 0;
    if (c->out_len + n <= c->out_cap) return;
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_len + n <= c->out_cap) return;
    }
    size_t cap = c->out_cap ? c->out_cap : 512;
    while (cap < c->out_len + n)
        cap *= 2;
    c->out = xrealloc(c->out, cap);
    c->out_cap = cap;
}

static void out_raw(struct conn *c, const void *p, size_t n)
{
    out_reserve(c, n);
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    flush_list_add(c);
}

/* one masked client frame (RFC 6455 5.3) */
static void ws_send(struct conn *c, int opcode, const void *payload, size_t len)
{
    out_reserve(c, len + 14);
    uint8_t *h = c->out + c->out_len;
    size_t hl = 0;
    h[hl++] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        h[hl++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xffff) {
        h[hl++] = 0x80 | 126;
        h[hl++] = (uint8_t)(len >> 8);
        h[hl++] = (uint8_t)len;
    } else {
        h[hl++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            h[hl++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint32_t k = (uint32_t)rnd();
    uint8_t mask[4] = {(uint8_t)k, (uint8_t)(k >> 8), (uint8_t)(k >> 16), (uint8_t)(k >> 24)};
    memcpy(h + hl, mask, 4);
    hl += 4;
    const uint8_t *src = payload;
    uint8_t *dst = h + hl;
    for (size_t i = 0; i < len; i++)
        dst[i] = src[i] ^ mask[i & 3];
    c->out_len += hl + len;
    flush_list_add(c);
}

static void conn_kill(struct conn *c, int counted);

static void set_events(struct conn *c, int want_out)
{
    if (c->want_out == want_out) return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(g.ep, EPOLL_CTL_MOD, c->fd, &ev) == 0) c->want_out = want_out;
}

static void flush(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_events(c, 1);
            return;
        }
        g.e_closed++;
        note_error(c, "send: %s", n < 0 ? strerror(errno) : "0 bytes");
        conn_kill(c, 1);
        return;
    }
    c->out_off = c->out_len = 0;
    set_events(c, 0);
}

static void flush_dirty(void)
{
    for (int i = 0; i < g.ndirty; i++) {
        struct conn *c = g.dirty[i];
        c->dirty = 0;
        if (c->state != ST_DEAD) flush(c);
    }
    g.ndirty = 0;
}

/* ------------------------------------------------------------------ connections */

static void conn_kill(struct conn *c, int counted)
{
    if (c->state == ST_DEAD) return;
    if (c->state == ST_NEW || c->state == ST_TCP || c->state == ST_HS || c->state == ST_STOMP) {
        g.inprogress--;
        if (counted) g.setup_failed++;
    }
    if (c->role == ROLE_SUB && c->subscribed) {
        g.topic_subs[c->topic]--;
        g.topic_delivered[c->topic] -= c->recv;
    }
    c->state = ST_DEAD;
    if (c->fd >= 0) {
        epoll_ctl(g.ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    if (counted) g.dead++;
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    free(c->out);
    c->out = NULL;
    c->out_off = c->out_len = c->out_cap = 0;
    if (c->dec) {
        sg_stomp_dec_reset(c->dec);
        free(c->dec);
        c->dec = NULL;
    }
}

static void send_handshake(struct conn *c)
{
    uint8_t raw[16];
    for (int i = 0; i < 16; i += 8) {
        uint64_t r = rnd();
        memcpy(raw + i, &r, 8);
    }
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int o = 0;
    for (int i = 0; i < 15; i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
        c->key[o++] = b64[(v >> 18) & 63];
        c->key[o++] = b64[(v >> 12) & 63];
        c->key[o++] = b64[(v >> 6) & 63];
        c->key[o++] = b64[v & 63];
    }
    uint32_t v = (uint32_t)raw[15] << 16;
    c->key[o++] = b64[(v >> 18) & 63];
    c->key[o++] = b64[(v >> 12) & 63];
    c->key[o++] = '=';
    c->key[o++] = '=';
    c->key[o] = 0;
    char req[768];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v12.stomp\r\n\r\n",
                     g.path, g.host, ntohs(g.addr.sin_port), c->key);
    out_raw(c, req, (size_t)n);
    c->state = ST_HS;
}

static void start_connect(struct conn *c)
{
    g.started++;
    g.inprogress++;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        g.e_connect++;
        note_error(c, "socket: %s", strerror(errno));
        conn_kill(c, 1);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(g.ep, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl: %s", strerror(errno));
    c->want_out = 1;
    int r = connect(fd, (struct sockaddr *)&g.addr, sizeof g.addr);
    if (r != 0 && errno != EINPROGRESS) {
        g.e_connect++;
        note_error(c, "connect: %s", strerror(errno));
        conn_kill(c, 1);
        return;
    }
    c->state = ST_TCP;
    if (r == 0) send_handshake(c);
}

/* ------------------------------------------------------------------ STOMP */

static void stomp_send_frame(struct conn *c, const char *frame, size_t len)
{
    ws_send(c, 0x1, frame, len);
}

static void send_connect(struct conn *c)
{
    char f[512];
    int n = snprintf(f, sizeof f,
                     "CONNECT\naccept-version:1.2\nhost:/\nlogin:%s\npasscode:%s\n"
                     "heart-beat:0,0\n\n",
                     g.login, g.passcode);
    f[n++] = 0;
    stomp_send_frame(c, f, (size_t)n);
}

static void send_subscribe(struct conn *c)
{
    char f[512];
    int n = snprintf(f, sizeof f,
                     "SUBSCRIBE\nid:0\ndestination:/topic/%s.%d\nack:auto\nreceipt:sub-%d\n\n",
                     g.prefix, c->topic, c->idx);
    f[n++] = 0;
    stomp_send_frame(c, f, (size_t)n);
}

static void send_message(struct conn *c)
{
    char f[1024 + 65536];
    size_t body = (size_t)g.size;
    int n = snprintf(f, 1024,
                     "SEND\ndestination:/topic/%s.%d\ncontent-type:text/plain\n"
                     "content-length:%zu\n\n",
                     g.prefix, c->topic, body);
    char *b = f + n;
    int m = snprintf(b, body + 1, "%020llu %010llu ", (unsigned long long)now_ns(),
                     (unsigned long long)c->sent);
    memset(b + m, 'x', body - (size_t)m);
    b[body] = 0;
    stomp_send_frame(c, f, (size_t)n + body + 1);
    c->sent++;
    g.sent_total++;
    g.topic_sent[c->topic]++;
}

static void record_latency(uint64_t ns)
{
    if (g.nlat == g.lat_cap) {
        g.lat_cap = g.lat_cap ? g.lat_cap * 2 : 65536;
        g.lat = xrealloc(g.lat, g.lat_cap * sizeof *g.lat);
    }
    g.lat[g.nlat++] = ns;
}

static void on_frame(struct conn *c, const struct sg_stomp_frame *f)
{
    switch (f->cmd) {
    case SG_STOMP_CONNECTED:
        if (c->state != ST_STOMP) {
            g.e_protocol++;
            note_error(c, "unexpected CONNECTED");
            return;
        }
        c->state = ST_READY;
        g.inprogress--;
        g.connected++;
        return;
    case SG_STOMP_RECEIPT: {
        char id[64];
        if (c->role == ROLE_SUB && !c->subscribed &&
            sg_stomp_header_copy(f, "receipt-id", id, sizeof id) == SG_OK && !strncmp(id, "sub-", 4)) {
            c->subscribed = 1;
            g.subs_ok++;
            g.topic_subs[c->topic]++;
        } else {
            g.e_protocol++;
            note_error(c, "unexpected RECEIPT");
        }
        return;
    }
    case SG_STOMP_MESSAGE: {
        uint64_t t = now_ns();
        if (c->role != ROLE_SUB || !c->subscribed) {
            g.e_protocol++;
            note_error(c, "MESSAGE on a connection without a subscription");
            return;
        }
        char *end = NULL;
        unsigned long long sent = 0;
        if (f->body_len >= 20) sent = strtoull((const char *)f->body, &end, 10);
        if (!end || end != (const char *)f->body + 20 || sent == 0 || sent > t) {
            g.e_body++;
            note_error(c, "MESSAGE body without a send timestamp (%zu bytes)", f->body_len);
        } else {
            record_latency(t - sent);
        }
        c->recv++;
        g.delivered++;
        g.topic_delivered[c->topic]++;
        g.t_last_delivery = t;
        return;
    }
    case SG_STOMP_ERROR: {
        char msg[160] = "";
        sg_stomp_header_copy(f, "message", msg, sizeof msg);
        g.e_stomp_error++;
        note_error(c, "ERROR frame: %s", msg);
        conn_kill(c, 1);
        return;
    }
    default:
        g.e_protocol++;
        note_error(c, "unexpected frame %s", sg_stomp_cmd_name(f->cmd));
        return;
    }
}

static void on_data(struct conn *c, const uint8_t *p, size_t len)
{
    while (c->state != ST_DEAD) {
        struct sg_stomp_event ev;
        ssize_t n = sg_stomp_decode(c->dec, p, len, &ev);
        if (n < 0) {
            g.e_protocol++;
            note_error(c, "STOMP decode: %s", c->dec->error ? c->dec->error : "error");
            conn_kill(c, 1);
            return;
        }
        p += n;
        len -= (size_t)n;
        if (ev.type == SG_STOMP_EV_NONE) return;
        if (ev.type == SG_STOMP_EV_FRAME) on_frame(c, ev.frame);
    }
}

/* case-insensitive header lookup in an HTTP head; value trimmed */
static int http_header(const char *head, size_t len, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = head, *end = head + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        if ((size_t)(eol - p) > nl && !strncasecmp(p, name, nl) && p[nl] == ':') {
            const char *v = p + nl + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            size_t vl = (size_t)(ve - v);
            if (vl >= cap) vl = cap - 1;
            memcpy(out, v, vl);
            out[vl] = 0;
            return 1;
        }
        p = eol + 1;
    }
    return 0;
}

/* consumes what it can of p[0..len) and returns how much */
static size_t on_bytes(struct conn *c, uint8_t *p, size_t len)
{
    size_t off = 0;
    if (c->state == ST_HS) {
        const uint8_t *e = memmem(p, len, "\r\n\r\n", 4);
        if (!e) {
            if (len > 16384) {
                g.e_handshake++;
                note_error(c, "handshake answer too long");
                conn_kill(c, 1);
            }
            return 0;
        }
        size_t hl = (size_t)(e - p) + 4;
        char acc[64] = "", want[29], proto[64] = "";
        if (hl < 12 || memcmp(p, "HTTP/1.1 101", 12) != 0) {
            char line[80];
            size_t l = 0;
            while (l < hl && l < sizeof line - 1 && p[l] != '\r') {
                line[l] = (char)p[l];
                l++;
            }
            line[l] = 0;
            g.e_handshake++;
            note_error(c, "handshake refused: %s", line);
            conn_kill(c, 1);
            return 0;
        }
        sg_ws_accept_key(c->key, strlen(c->key), want);
        http_header((const char *)p, hl, "Sec-WebSocket-Accept", acc, sizeof acc);
        http_header((const char *)p, hl, "Sec-WebSocket-Protocol", proto, sizeof proto);
        if (strcmp(acc, want) != 0 || strcmp(proto, "v12.stomp") != 0) {
            g.e_handshake++;
            note_error(c, "bad handshake answer (accept '%s', protocol '%s')", acc, proto);
            conn_kill(c, 1);
            return 0;
        }
        off = hl;
        c->dec = xrealloc(NULL, sizeof *c->dec);
        sg_stomp_dec_init(c->dec, NULL);
        c->state = ST_STOMP;
        send_connect(c);
    }
    while (off < len && c->state != ST_DEAD) {
        const uint8_t *h = p + off;
        size_t avail = len - off;
        if (avail < 2) break;
        int opcode = h[0] & 0x0f;
        if (h[1] & 0x80) {
            g.e_protocol++;
            note_error(c, "masked server frame");
            conn_kill(c, 1);
            return off;
        }
        uint64_t plen = h[1] & 0x7f;
        size_t hl = 2;
        if (plen == 126) {
            if (avail < 4) break;
            plen = (uint64_t)h[2] << 8 | h[3];
            hl = 4;
        } else if (plen == 127) {
            if (avail < 10) break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = plen << 8 | h[2 + i];
            hl = 10;
        }
        if (plen > MAX_IN_PENDING) {
            g.e_protocol++;
            note_error(c, "server frame too big (%llu bytes)", (unsigned long long)plen);
            conn_kill(c, 1);
            return off;
        }
        if (avail < hl + plen) break;
        const uint8_t *pl = h + hl;
        off += hl + (size_t)plen;
        switch (opcode) {
        case 0x0:
        case 0x1:
        case 0x2:
            if (c->dec) on_data(c, pl, (size_t)plen);
            break;
        case 0x8: {
            int code = plen >= 2 ? (pl[0] << 8 | pl[1]) : 1005;
            if (g.phase != PH_DONE) {
                g.e_closed++;
                note_error(c, "server closed the WebSocket with %d '%.*s'", code,
                           plen > 2 ? (int)plen - 2 : 0, (const char *)pl + 2);
            }
            conn_kill(c, 1);
            return off;
        }
        case 0x9:
            ws_send(c, 0xA, pl, (size_t)plen);
            break;
        case 0xA:
            break;
        default:
            g.e_protocol++;
            note_error(c, "server frame with opcode %d", opcode);
            conn_kill(c, 1);
            return off;
        }
    }
    return off;
}

static void on_readable(struct conn *c)
{
    for (int round = 0; round < 4 && c->state != ST_DEAD; round++) {
        ssize_t n = recv(c->fd, g.scratch, SCRATCH_SIZE, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            g.e_closed++;
            note_error(c, "connection %s", n == 0 ? "closed by the server" : strerror(errno));
            conn_kill(c, 1);
            return;
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            return;
        }
        uint8_t *p;
        size_t len;
        if (c->in_len) {
            if (c->in_len + (size_t)n > c->in_cap) {
                size_t cap = c->in_cap ? c->in_cap : 4096;
                while (cap < c->in_len + (size_t)n)
                    cap *= 2;
                c->in = xrealloc(c->in, cap);
                c->in_cap = cap;
            }
            memcpy(c->in + c->in_len, g.scratch, (size_t)n);
            c->in_len += (size_t)n;
            p = c->in;
            len = c->in_len;
        } else {
            p = g.scratch;
            len = (size_t)n;
        }
        size_t used = on_bytes(c, p, len);
        if (c->state == ST_DEAD) return;
        size_t rest = len - used;
        if (rest > MAX_IN_PENDING) {
            g.e_protocol++;
            note_error(c, "partial input over %u bytes", MAX_IN_PENDING);
            conn_kill(c, 1);
            return;
        }
        if (p == c->in) {
            memmove(c->in, c->in + used, rest);
            c->in_len = rest;
        } else if (rest) {
            if (rest > c->in_cap) {
                c->in = xrealloc(c->in, rest);
                c->in_cap = rest;
            }
            memcpy(c->in, p + used, rest);
            c->in_len = rest;
        }
        if ((size_t)n < SCRATCH_SIZE) return;
    }
}

static void on_event(struct conn *c, uint32_t events)
{
    if (c->state == ST_DEAD) return;
    if (c->state == ST_TCP) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            g.e_connect++;
            note_error(c, "connect: %s", strerror(err));
            conn_kill(c, 1);
            return;
        }
        if (!(events & (EPOLLOUT | EPOLLIN | EPOLLHUP | EPOLLERR))) return;
        send_handshake(c);
        flush_list_add(c);
        return;
    }
    if (events & EPOLLOUT) flush(c);
    if (c->state != ST_DEAD && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) on_readable(c);
}

/* ------------------------------------------------------------------ phases */

static int topic_inflight(int t)
{
    if (g.topic_subs[t] <= 0) return 0;
    uint64_t avg = g.topic_delivered[t] / (uint64_t)g.topic_subs[t];
    return avg >= g.topic_sent[t] ? 0 : (int)(g.topic_sent[t] - avg);
}

static int all_delivered(void)
{
    for (int t = 0; t < g.topics; t++)
        if (g.topic_delivered[t] <
            g.topic_sent[t] * (uint64_t)(g.topic_subs[t] > 0 ? g.topic_subs[t] : 0))
            return 0;
    return 1;
}

/* returns the epoll timeout to use (ms) */
static int advance(void)
{
    uint64_t t = now_ns();
    if (t >= g.deadline && g.phase != PH_DONE) {
        g.timed_out = 1;
        g.phase = PH_DONE;
        return 0;
    }
    if (t >= g.next_ping) {
        g.next_ping = t + KEEPALIVE_NS;
        for (int i = 0; i < g.started; i++)
            if (g.c[i].state == ST_READY) ws_send(&g.c[i], 0x9, "k", 1);
    }
    switch (g.phase) {
    case PH_CONNECT:
        while (g.started < g.conns && g.inprogress < g.concurrency)
            start_connect(&g.c[g.started]);
        if (g.connected + g.setup_failed < g.conns) return 100;
        g.t_conn_end = now_ns();
        g.phase = PH_SUBSCRIBE;
        for (int i = 0; i < g.conns; i++)
            if (g.c[i].role == ROLE_SUB && g.c[i].state == ST_READY) send_subscribe(&g.c[i]);
        /* fall through */
    case PH_SUBSCRIBE: {
        int pending = 0;
        for (int i = 0; i < g.conns; i++)
            if (g.c[i].role == ROLE_SUB && g.c[i].state == ST_READY && !g.c[i].subscribed)
                pending++;
        if (pending) return 100;
        g.t_sub_end = g.t_pub_start = now_ns();
        g.phase = PH_PUBLISH;
    }
        /* fall through */
    case PH_PUBLISH: {
        int more = 0, wait_rate = 0;
        double elapsed = (double)(now_ns() - g.t_pub_start) / 1e9;
        for (int i = 0; i < g.conns; i++) {
            struct conn *c = &g.c[i];
            if (c->role != ROLE_PUB || c->state != ST_READY) continue;
            while (c->sent < c->quota) {
                if (g.window > 0 && topic_inflight(c->topic) >= g.window) break;
                if (c->out_len - c->out_off > MAX_OUT_PENDING) break;
                if (g.rate > 0 && (double)g.sent_total >= g.rate * elapsed) {
                    wait_rate = 1;
                    break;
                }
                send_message(c);
            }
            if (c->sent < c->quota) more = 1;
        }
        if (more) return wait_rate ? 1 : 100;
        g.t_pub_end = now_ns();
        g.phase = PH_DRAIN;
    }
        /* fall through */
    case PH_DRAIN:
        if (!all_delivered()) return 100;
        g.phase = PH_SETTLE;
        g.t_settle = now_ns();
        /* fall through */
    case PH_SETTLE:
        if (now_ns() < g.t_settle + (uint64_t)g.settle_ms * 1000000ull) return 50;
        g.phase = PH_DONE;
        return 0;
    case PH_DONE:
        return 0;
    }
    return 0;
}

/* ------------------------------------------------------------------ report */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_us(double q)
{
    if (!g.nlat) return -1;
    size_t i = (size_t)(q * (double)(g.nlat - 1) + 0.5);
    if (i >= g.nlat) i = g.nlat - 1;
    return (double)g.lat[i] / 1000.0;
}

static void report(const char *stopped_in)
{
    qsort(g.lat, g.nlat, sizeof *g.lat, cmp_u64);
    uint64_t expected = 0;
    for (int t = 0; t < g.topics; t++)
        expected += g.topic_sent[t] * (uint64_t)(g.topic_subs[t] > 0 ? g.topic_subs[t] : 0);
    double connect_s = g.t_conn_end ? (double)(g.t_conn_end - g.t0) / 1e9 : -1;
    double sub_s = g.t_sub_end ? (double)(g.t_sub_end - g.t_conn_end) / 1e9 : -1;
    double pub_s = -1, deliv_s = -1;
    if (g.t_pub_start && g.sent_total > 0) {
        uint64_t end = g.t_last_delivery > g.t_pub_start ? g.t_last_delivery : now_ns();
        deliv_s = (double)(end - g.t_pub_start) / 1e9;
        pub_s = (double)((g.t_pub_end ? g.t_pub_end : now_ns()) - g.t_pub_start) / 1e9;
    }
    int errors =
        g.e_connect + g.e_handshake + g.e_stomp_error + g.e_closed + g.e_protocol + g.e_body;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double self_cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                      (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;

    printf("{\"scenario\":\"%s\",\"target\":\"%s\",\"ok\":%s,\"stopped_in\":\"%s\","
           "\"conns\":%d,\"subs\":%d,\"pubs\":%d,\"topics\":%d,\"messages\":%lld,\"size\":%d,"
           "\"window\":%d,\"rate\":%.0f,",
           g.label, g.target, (!g.timed_out && errors == 0) ? "true" : "false", stopped_in, g.conns,
           g.subs, g.pubs, g.topics, g.messages, g.size, g.window, g.rate);
    printf("\"connected\":%d,\"connect_s\":%.3f,\"connect_per_s\":%.1f,\"subscribed\":%d,"
           "\"subscribe_s\":%.3f,",
           g.connected, connect_s, connect_s > 0 ? g.connected / connect_s : 0, g.subs_ok, sub_s);
    printf("\"sent\":%lld,\"delivered\":%llu,\"expected\":%llu,\"publish_s\":%.3f,"
           "\"deliver_s\":%.3f,\"delivered_per_s\":%.1f,",
           g.sent_total, (unsigned long long)g.delivered, (unsigned long long)expected, pub_s,
           deliv_s, deliv_s > 0 ? (double)g.delivered / deliv_s : 0);
    printf("\"latency_us\":{\"n\":%zu,\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f},", g.nlat,
           pct_us(0.50), pct_us(0.99), g.nlat ? (double)g.lat[g.nlat - 1] / 1000.0 : -1.0);
    printf("\"errors\":%d,\"error_detail\":{\"connect\":%d,\"handshake\":%d,\"stomp_error\":%d,"
           "\"closed\":%d,\"protocol\":%d,\"body\":%d},\"first_error\":\"",
           errors, g.e_connect, g.e_handshake, g.e_stomp_error, g.e_closed, g.e_protocol, g.e_body);
    for (const char *s = g.first_error; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    printf("\",\"loadgen_cpu_s\":%.2f,\"procs\":{", self_cpu);
    for (int i = 0; i < g.npids; i++) {
        struct watched *w = &g.pids[i];
        printf("%s\"%s\":{\"pid\":%d,\"rss_before_kb\":%ld,\"rss_after_kb\":%ld,\"cpu_s\":%.2f}",
               i ? "," : "", w->name, w->pid, w->rss_before_kb, w->rss_after_kb,
               (w->cpu_after_s >= 0 && w->cpu_before_s >= 0) ? w->cpu_after_s - w->cpu_before_s
                                                             : -1.0);
    }
    printf("}}\n");
    fflush(stdout);
}

/* ------------------------------------------------------------------ main */

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen --url ws://127.0.0.1:PORT/PATH [options]\n"
            "  --login U --passcode P   STOMP credentials\n"
            "  --conns N                connections in total (subs + pubs + idle)\n"
            "  --subs S --pubs P        subscriber / publisher connections\n"
            "  --topics T               topics /topic/PREFIX.0 .. T-1 (sub i -> i %% T, pub i -> i "
            "%% T)\n"
            "  --messages M --size B    messages in total over all publishers, body bytes (>= %d)\n"
            "  --window W               max messages in flight per topic (0 = unbounded)\n"
            "  --rate R                 max messages/s over all publishers (0 = as fast as the "
            "window allows)\n"
            "  --timeout SEC            hard stop (default 120)\n"
            "  --settle-ms MS           wait before the final RSS sample (default 0)\n"
            "  --concurrency C          connections being set up at once (default 200)\n"
            "  --prefix KEYPREFIX       topic key prefix (default bench)\n"
            "  --label NAME --target NAME  names in the JSON line\n"
            "  --pid NAME:PID           sample RSS and CPU of PID before and after (repeatable)\n",
            BODY_MIN);
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"url", 1, 0, 'u'},       {"login", 1, 0, 'l'},
                                         {"passcode", 1, 0, 'p'},  {"conns", 1, 0, 'n'},
                                         {"subs", 1, 0, 's'},      {"pubs", 1, 0, 'P'},
                                         {"topics", 1, 0, 'T'},    {"messages", 1, 0, 'm'},
                                         {"size", 1, 0, 'b'},      {"window", 1, 0, 'w'},
                                         {"rate", 1, 0, 'r'},      {"timeout", 1, 0, 't'},
                                         {"settle-ms", 1, 0, 'S'}, {"concurrency", 1, 0, 'c'},
                                         {"prefix", 1, 0, 'x'},    {"label", 1, 0, 'L'},
                                         {"target", 1, 0, 'G'},    {"pid", 1, 0, 'i'},
                                         {"help", 0, 0, 'h'},      {0, 0, 0, 0}};
    const char *url = NULL;
    snprintf(g.login, sizeof g.login, "guest");
    snprintf(g.passcode, sizeof g.passcode, "guest");
    snprintf(g.prefix, sizeof g.prefix, "bench");
    snprintf(g.label, sizeof g.label, "run");
    snprintf(g.target, sizeof g.target, "target");
    g.conns = 1;
    g.topics = 1;
    g.size = 128;
    g.timeout_s = 120;
    g.concurrency = 200;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'u':
            url = optarg;
            break;
        case 'l':
            snprintf(g.login, sizeof g.login, "%s", optarg);
            break;
        case 'p':
            snprintf(g.passcode, sizeof g.passcode, "%s", optarg);
            break;
        case 'n':
            g.conns = atoi(optarg);
            break;
        case 's':
            g.subs = atoi(optarg);
            break;
        case 'P':
            g.pubs = atoi(optarg);
            break;
        case 'T':
            g.topics = atoi(optarg);
            break;
        case 'm':
            g.messages = atoll(optarg);
            break;
        case 'b':
            g.size = atoi(optarg);
            break;
        case 'w':
            g.window = atoi(optarg);
            break;
        case 'r':
            g.rate = atof(optarg);
            break;
        case 't':
            g.timeout_s = atof(optarg);
            break;
        case 'S':
            g.settle_ms = atoi(optarg);
            break;
        case 'c':
            g.concurrency = atoi(optarg);
            break;
        case 'x':
            snprintf(g.prefix, sizeof g.prefix, "%s", optarg);
            break;
        case 'L':
            snprintf(g.label, sizeof g.label, "%s", optarg);
            break;
        case 'G':
            snprintf(g.target, sizeof g.target, "%s", optarg);
            break;
        case 'i': {
            const char *colon = strrchr(optarg, ':');
            if (!colon || g.npids == MAX_PIDS) usage();
            struct watched *w = &g.pids[g.npids++];
            snprintf(w->name, sizeof w->name, "%.*s", (int)(colon - optarg), optarg);
            w->pid = atoi(colon + 1);
            break;
        }
        default:
            usage();
        }
    }
    if (!url || strncmp(url, "ws://", 5) != 0) usage();
    {
        const char *h = url + 5, *colon = strchr(h, ':'), *slash = strchr(h, '/');
        if (!colon || (slash && slash < colon) || (size_t)(colon - h) >= sizeof g.host) usage();
        snprintf(g.host, sizeof g.host, "%.*s", (int)(colon - h), h);
        int port = atoi(colon + 1);
        snprintf(g.path, sizeof g.path, "%s", slash ? slash : "/");
        g.addr.sin_family = AF_INET;
        g.addr.sin_port = htons((uint16_t)port);
        if (port <= 0 || port > 65535 || inet_pton(AF_INET, g.host, &g.addr.sin_addr) != 1)
            die("url must be ws://IPV4:PORT/PATH, got %s", url);
    }
    if (g.conns < 1 || g.subs < 0 || g.pubs < 0 || g.subs + g.pubs > g.conns || g.topics < 1 ||
        g.messages < 0 || g.size < BODY_MIN || g.size > 65536 || g.window < 0 || g.rate < 0 ||
        g.timeout_s <= 0 || g.concurrency < 1 || (g.messages > 0 && g.pubs == 0))
        die("inconsistent options (see --help)");

    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)g.conns + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < (rlim_t)g.conns + 64)
            die("fd limit %llu too low for %d connections", (unsigned long long)rl.rlim_cur,
                g.conns);
    }

    g.rng = (uint64_t)now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
    if (!g.rng) g.rng = 1;
    g.ep = epoll_create1(EPOLL_CLOEXEC);
    if (g.ep < 0) die("epoll_create1: %s", strerror(errno));
    g.c = calloc((size_t)g.conns, sizeof *g.c);
    g.dirty = calloc((size_t)g.conns, sizeof *g.dirty);
    g.scratch = malloc(SCRATCH_SIZE);
    g.topic_sent = calloc((size_t)g.topics, sizeof *g.topic_sent);
    g.topic_delivered = calloc((size_t)g.topics, sizeof *g.topic_delivered);
    g.topic_subs = calloc((size_t)g.topics, sizeof *g.topic_subs);
    if (!g.c || !g.dirty || !g.scratch || !g.topic_sent || !g.topic_delivered || !g.topic_subs)
        die("out of memory");
    /* subscribers first, then publishers, then idle connections */
    for (int i = 0; i < g.conns; i++) {
        struct conn *c = &g.c[i];
        c->fd = -1;
        c->idx = i;
        if (i < g.subs) {
            c->role = ROLE_SUB;
            c->topic = i % g.topics;
        } else if (i < g.subs + g.pubs) {
            int k = i - g.subs;
            c->role = ROLE_PUB;
            c->topic = k % g.topics;
            c->quota = (uint64_t)(g.messages / g.pubs + (k < g.messages % g.pubs ? 1 : 0));
        } else {
            c->role = ROLE_IDLE;
        }
    }
    if (g.subs > 0 && g.messages > 0)
        g.lat_cap = 65536, g.lat = xrealloc(NULL, g.lat_cap * sizeof *g.lat);

    sample_pids(0);
    g.t0 = now_ns();
    g.deadline = g.t0 + (uint64_t)(g.timeout_s * 1e9);
    g.next_ping = g.t0 + KEEPALIVE_NS;
    enum { MAXEV = 512 };
    struct epoll_event evs[MAXEV];
    int timeout = 0;
    enum phase stopped = PH_CONNECT;
    for (;;) {
        timeout = advance();
        flush_dirty();
        if (g.phase == PH_DONE) break;
        stopped = g.phase;
        int n = epoll_wait(g.ep, evs, MAXEV, timeout);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait: %s", strerror(errno));
        }
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
        flush_dirty();
    }
    sample_pids(1);
    report(g.timed_out ? phase_name[stopped] : "done");
    int errors =
        g.e_connect + g.e_handshake + g.e_stomp_error + g.e_closed + g.e_protocol + g.e_body;
    for (int i = 0; i < g.conns; i++)
        conn_kill(&g.c[i], 0);
    return (g.timed_out || errors) ? 1 : 0;
}
