/* loadgen.c - STOMP-over-WebSocket load generator for `make bench`.
 *
 * One process, epoll, non-blocking sockets. It opens N WebSocket
 * connections (subprotocol v12.stomp) to ws://HOST:PORT/PATH, CONNECTs a
 * STOMP 1.2 session on each, SUBSCRIBEs S of them to /topic/PREFIX.K (with
 * receipts, so the publish phase starts only once every subscription is in
 * place), then P publisher connections SEND M messages of B bytes in total.
 * Each body starts with the send time (CLOCK_MONOTONIC ns), so subscribers
 * measure end-to-end latency.
 *
 * Flow control: a publisher sends while its topic has fewer than --window
 * messages in flight (sent minus the average count delivered to the topic's
 * live subscribers), optionally capped by --rate messages/s (all publishers
 * together). Everything is bounded: it stops after M messages have been
 * delivered to every live subscriber, or at --timeout.
 *
 * Open-loop AMQP mode (--amqp HOST:PORT, for the overload scenario): the P
 * publishers are AMQP connections (rabbitmq-c, vhost "/", the --login and
 * --passcode credentials) that publish straight to amq.topic with routing
 * key PREFIX.K, the key a /topic/PREFIX.K subscriber binds, so stompgate
 * and web_stomp get byte-identical offered load from the same broker. They
 * publish at fixed rates in --steps (messages/s, --step-seconds each), on a
 * 1 ms tick, and never wait for deliveries. A publisher runs in a thread of
 * its own because amqp_basic_publish is a blocking write: when the broker
 * pushes back (credit flow, a resource alarm) only that thread stalls, the
 * subscribers' event loop keeps reading, and messages more than 100 ms
 * overdue are counted as offered but not sent rather than sent in a burst
 * later. Each step is counted on its own (the body carries the step
 * number): a delivery counts for its step if it arrives before the step's
 * deadline, which is when every message of the step has arrived or
 * --step-grace-ms after its publishing ended.
 *
 * Output: one JSON line on stdout (connect time, delivered messages per
 * second over all subscribers, latency p50/p99/max, errors, deliveries per
 * second of the publish phase, per-step results in AMQP mode, and RSS / CPU
 * of the processes given with --pid NAME:PID: before and after the run,
 * sampled every second, and --settle-ms after every client disconnected).
 *
 * The WebSocket client side is written here (client frames must be masked,
 * server frames are not); STOMP frames are decoded with the project's
 * sans-I/O decoder (stomp_frame.h), which treats EOLs between frames as
 * heart-beats, so web_stomp's NUL+"\n" frame ending is handled.
 *
 * Raw TCP mode (--tcp, or a tcp://IPV4:PORT url; the `tcp` scenario): the
 * same connections and phases without HTTP and WebSocket, for stompgate's
 * stomp_listen and RabbitMQ's rabbitmq_stomp. Once connect() completes the
 * CONNECT frame is written straight to the socket, frames go out as they
 * are (NUL-terminated), and the received byte stream goes straight to the
 * decoder, which skips heart-beat EOLs and the plugin's EOL after each NUL.
 * Instead of the WebSocket ping, every session writes one EOL (a STOMP
 * heart-beat) every KEEPALIVE_NS.
 */
#include "error.h"
#include "stomp_frame.h"
#include "ws_handshake.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
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
    long rss_before_kb, rss_after_kb, rss_peak_kb, rss_leave_kb;
    double cpu_before_s, cpu_after_s;
    long *rss_kb; /* one sample a second from the start */
    size_t nrss, rss_cap;
};

#define MAX_STEPS 64
#define MAX_AMQP_PUBS 16
#define PUB_TICK_NS 1000000ull      /* a publisher sends what is due every 1 ms */
#define PUB_MAX_LAG_NS 100000000ull /* messages overdue by more are offered but not sent */
#define PUB_BLOCKED_NS 1000000ull   /* a publish call this long means the broker pushed back */

/* One rate step of the AMQP mode. Only the main thread writes it, before it
 * hands the step to the publishers (g.ctl_step) and after they report it
 * done (struct amqp_pub.done_step). */
struct step {
    double rate; /* offered messages/s, all publishers */
    enum { STEP_NEW, STEP_PUBLISHING, STEP_DRAINING, STEP_COUNTED } state;
    uint64_t t_start, t_pub_end, t_deadline;
    uint64_t offered, sent, missed, blocked_ns;
    uint64_t expected;  /* sent to each topic x its subscribers at the start */
    uint64_t delivered; /* deliveries of this step's messages before t_deadline */
    uint64_t late;      /* and after it */
    uint64_t during;    /* deliveries of any step received while this one published */
    int subs_start, subs_closed;
    uint64_t *topic_sent0; /* the publishers' per-topic counts at the start */
    int *topic_subs0;
    uint64_t *lat; /* latencies in ns */
    size_t nlat, lat_cap;
    double self_cpu0, main_cpu0, self_cpu, main_cpu;
    double cpu0[MAX_PIDS], cpu[MAX_PIDS];
    long rss_peak_kb[MAX_PIDS];
};

/* An AMQP publisher thread. It owns its rabbitmq-c connection; the main
 * thread reads the step counts only after done_step says they are final. */
struct amqp_pub {
    int idx;
    pthread_t th;
    atomic_int ready;     /* 1 logged in, -1 failed (err says why) */
    atomic_int done_step; /* the last step finished */
    atomic_int finished;  /* the thread is about to return */
    atomic_int fd;        /* its socket, so a stuck write can be shut down */
    uint64_t seq;
    uint64_t step_sent[MAX_STEPS], step_missed[MAX_STEPS], step_blocked_ns[MAX_STEPS];
    char err[200];
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
    int tcp; /* raw STOMP over TCP: no HTTP upgrade, no WebSocket framing */
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
    int e_connect, e_handshake, e_stomp_error, e_closed, e_protocol, e_body, e_amqp;
    char first_error[256];
    uint64_t expected_final;
    /* deliveries per second since the publish phase started */
    uint64_t *per_sec;
    size_t nper_sec;
    uint64_t next_sample; /* RSS */
    /* AMQP mode */
    int amqp;
    char amqp_host[64];
    int amqp_port;
    struct amqp_pub apub[MAX_AMQP_PUBS];
    struct step steps[MAX_STEPS];
    int nsteps, cur_step;
    double step_s;
    int step_grace_ms;
    double stop_below;
    int below_run, stopped_early;
    int subs_lost; /* subscribers the server closed while publishing: a result, not an error */
    atomic_int ctl_step; /* the step the publishers are to publish */
    atomic_int ctl_quit;
    _Atomic uint64_t *amqp_topic_sent;
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

static double cpu_clock_s(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0) return -1;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(uint64_t t)
{
    struct timespec ts = {(time_t)(t / 1000000000ull), (long)(t % 1000000000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static void note_rss(struct watched *w, long kb)
{
    if (kb > w->rss_peak_kb) w->rss_peak_kb = kb;
}

static void sample_pids(int after)
{
    for (int i = 0; i < g.npids; i++) {
        struct watched *w = &g.pids[i];
        if (after) {
            w->rss_after_kb = read_rss_kb(w->pid);
            w->cpu_after_s = read_cpu_s(w->pid);
            note_rss(w, w->rss_after_kb);
        } else {
            w->rss_before_kb = read_rss_kb(w->pid);
            w->cpu_before_s = read_cpu_s(w->pid);
            w->rss_peak_kb = w->rss_before_kb;
        }
    }
}

/* the once-a-second RSS sample; a step being published or drained keeps its own peak */
static void sample_rss_tick(void)
{
    struct step *s = g.amqp && g.cur_step < g.nsteps ? &g.steps[g.cur_step] : NULL;
    if (s && s->state != STEP_PUBLISHING && s->state != STEP_DRAINING) s = NULL;
    for (int i = 0; i < g.npids; i++) {
        struct watched *w = &g.pids[i];
        long kb = read_rss_kb(w->pid);
        if (w->nrss == w->rss_cap) {
            w->rss_cap = w->rss_cap ? w->rss_cap * 2 : 256;
            w->rss_kb = xrealloc(w->rss_kb, w->rss_cap * sizeof *w->rss_kb);
        }
        w->rss_kb[w->nrss++] = kb;
        note_rss(w, kb);
        if (s && kb > s->rss_peak_kb[i]) s->rss_peak_kb[i] = kb;
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
    if (counted && g.amqp && g.phase == PH_PUBLISH && c->role == ROLE_SUB && c->subscribed) {
        g.subs_lost++;
        if (g.cur_step < g.nsteps) g.steps[g.cur_step].subs_closed++;
    }
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

/* the STOMP session starts: a decoder, then CONNECT */
static void send_connect(struct conn *c);
static void start_stomp(struct conn *c)
{
    c->dec = xrealloc(NULL, sizeof *c->dec);
    sg_stomp_dec_init(c->dec, NULL);
    c->state = ST_STOMP;
    send_connect(c);
}

/* the TCP connection is up: the WebSocket handshake, or (--tcp) STOMP at once */
static void on_tcp_up(struct conn *c)
{
    if (g.tcp)
        start_stomp(c);
    else
        send_handshake(c);
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
    if (r == 0) on_tcp_up(c);
}

/* ------------------------------------------------------------------ STOMP */

static void stomp_send_frame(struct conn *c, const char *frame, size_t len)
{
    if (g.tcp)
        out_raw(c, frame, len);
    else
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

static void step_latency(struct step *s, uint64_t ns)
{
    if (s->nlat == s->lat_cap) {
        s->lat_cap = s->lat_cap ? s->lat_cap * 2 : 65536;
        s->lat = xrealloc(s->lat, s->lat_cap * sizeof *s->lat);
    }
    s->lat[s->nlat++] = ns;
}

static void count_per_second(uint64_t t)
{
    if (!g.t_pub_start || t < g.t_pub_start) return;
    size_t i = (size_t)((t - g.t_pub_start) / 1000000000ull);
    if (i >= g.nper_sec) {
        size_t n = i + 16;
        g.per_sec = xrealloc(g.per_sec, n * sizeof *g.per_sec);
        memset(g.per_sec + g.nper_sec, 0, (n - g.nper_sec) * sizeof *g.per_sec);
        g.nper_sec = n;
    }
    g.per_sec[i]++;
}

/* AMQP mode: a body is "<send ns, 20 digits> <seq, 10 digits> <step, 4 digits> " */
static void count_step_delivery(struct conn *c, const struct sg_stomp_frame *f, uint64_t t,
                                uint64_t sent)
{
    const char *b = (const char *)f->body;
    int k = -1;
    if (f->body_len >= 37 && b[31] == ' ' && b[36] == ' ') {
        k = 0;
        for (int i = 32; i < 36; i++)
            k = b[i] >= '0' && b[i] <= '9' && k >= 0 ? k * 10 + (b[i] - '0') : -1;
    }
    if (k < 0 || k >= g.nsteps) {
        g.e_body++;
        note_error(c, "MESSAGE body without a step number (%zu bytes)", f->body_len);
        return;
    }
    struct step *s = &g.steps[k];
    if (s->state == STEP_PUBLISHING || s->state == STEP_DRAINING) {
        s->delivered++;
        step_latency(s, t - sent);
    } else {
        s->late++;
    }
    if (g.cur_step < g.nsteps && g.steps[g.cur_step].state == STEP_PUBLISHING)
        g.steps[g.cur_step].during++;
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
            sg_stomp_header_copy(f, "receipt-id", id, sizeof id) == SG_OK &&
            !strncmp(id, "sub-", 4)) {
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
        } else if (g.amqp) {
            count_step_delivery(c, f, t, sent);
        } else {
            record_latency(t - sent);
        }
        count_per_second(t);
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
    if (g.tcp) { /* the byte stream is the STOMP stream; the decoder keeps partial frames */
        if (c->dec) on_data(c, p, len);
        return len;
    }
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
        start_stomp(c);
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
        on_tcp_up(c);
        flush_list_add(c);
        return;
    }
    if (events & EPOLLOUT) flush(c);
    if (c->state != ST_DEAD && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) on_readable(c);
}

/* ------------------------------------------------------------------ AMQP publishers */

/* frames the broker sent since the last look: a channel.close or
 * connection.close ends the publisher (say why), anything else is dropped */
static int apub_check_input(struct amqp_pub *p, amqp_connection_state_t conn)
{
    for (;;) {
        amqp_frame_t f;
        struct timeval tv = {0, 0};
        int st = amqp_simple_wait_frame_noblock(conn, &f, &tv);
        if (st == AMQP_STATUS_TIMEOUT) return 0;
        if (st != AMQP_STATUS_OK) {
            snprintf(p->err, sizeof p->err, "reading from the broker: %s", amqp_error_string2(st));
            return -1;
        }
        if (f.frame_type != AMQP_FRAME_METHOD) continue;
        if (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *m = f.payload.method.decoded;
            snprintf(p->err, sizeof p->err, "broker closed the channel: %d %.*s", m->reply_code,
                     (int)m->reply_text.len, (const char *)m->reply_text.bytes);
            return -1;
        }
        if (f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *m = f.payload.method.decoded;
            snprintf(p->err, sizeof p->err, "broker closed the connection: %d %.*s", m->reply_code,
                     (int)m->reply_text.len, (const char *)m->reply_text.bytes);
            return -1;
        }
        amqp_maybe_release_buffers(conn);
    }
}

/* Publishes this publisher's share of step k on its schedule: message j of
 * n is due at t_start + j * seconds / n. Each 1 ms tick sends what is due;
 * what is more than PUB_MAX_LAG_NS overdue (the previous publish blocked
 * that long, or the thread was not scheduled) is counted as missed, so the
 * offered load stays a rate and never turns into a catch-up burst. */
static int apub_step(struct amqp_pub *p, amqp_connection_state_t conn, char *body, int k)
{
    struct step *s = &g.steps[k];
    uint64_t n = s->offered / (uint64_t)g.pubs + ((uint64_t)p->idx < s->offered % (uint64_t)g.pubs);
    uint64_t dur = (uint64_t)(g.step_s * 1e9);
    uint64_t lag = (uint64_t)((double)n * (double)PUB_MAX_LAG_NS / (double)dur);
    uint64_t next = 0, sent = 0, missed = 0, blocked = 0;
    amqp_bytes_t exchange = amqp_cstring_bytes("amq.topic");
    if (lag < 1) lag = 1;
    while (next < n) {
        uint64_t t = now_ns();
        uint64_t due = t - s->t_start >= dur
                           ? n
                           : (uint64_t)((double)(t - s->t_start) * (double)n / (double)dur) + 1;
        if (due > n) due = n;
        if (due > next + lag) {
            missed += due - lag - next;
            next = due - lag;
        }
        while (next < due) {
            int topic = (int)(((uint64_t)p->idx + p->seq * (uint64_t)g.pubs) % (uint64_t)g.topics);
            char key[128];
            snprintf(key, sizeof key, "%s.%d", g.prefix, topic);
            uint64_t t0 = now_ns();
            int m = snprintf(body, (size_t)g.size + 1, "%020llu %010llu %04d ",
                             (unsigned long long)t0, (unsigned long long)p->seq, k);
            body[m] = 'x';
            amqp_bytes_t b = {(size_t)g.size, body};
            int st = amqp_basic_publish(conn, 1, exchange, amqp_cstring_bytes(key), 0, 0, NULL, b);
            uint64_t t1 = now_ns();
            if (st != AMQP_STATUS_OK) {
                snprintf(p->err, sizeof p->err, "basic.publish: %s", amqp_error_string2(st));
                return -1;
            }
            if (t1 - t0 >= PUB_BLOCKED_NS) blocked += t1 - t0;
            atomic_fetch_add_explicit(&g.amqp_topic_sent[topic], 1, memory_order_relaxed);
            p->seq++;
            next++;
            sent++;
        }
        if (next < n) sleep_until(t + PUB_TICK_NS);
    }
    p->step_sent[k] = sent;
    p->step_missed[k] = missed;
    p->step_blocked_ns[k] = blocked;
    return apub_check_input(p, conn);
}

static void *apub_main(void *arg)
{
    struct amqp_pub *p = arg;
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *sock = conn ? amqp_tcp_socket_new(conn) : NULL;
    char *body = malloc((size_t)g.size + 1);
    int done = -1, logged_in = 0;
    if (!sock || !body) {
        snprintf(p->err, sizeof p->err, "out of memory");
        goto fail;
    }
    memset(body, 'x', (size_t)g.size);
    struct timeval tv = {10, 0};
    amqp_set_handshake_timeout(conn, &tv);
    amqp_set_rpc_timeout(conn, &tv);
    int st = amqp_socket_open_noblock(sock, g.amqp_host, g.amqp_port, &tv);
    if (st != AMQP_STATUS_OK) {
        snprintf(p->err, sizeof p->err, "connect to %s:%d: %s", g.amqp_host, g.amqp_port,
                 amqp_error_string2(st));
        goto fail;
    }
    atomic_store(&p->fd, amqp_get_sockfd(conn));
    amqp_rpc_reply_t r =
        amqp_login(conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, g.login, g.passcode);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        snprintf(p->err, sizeof p->err, "AMQP login as %s refused", g.login);
        goto fail;
    }
    logged_in = 1;
    amqp_channel_open(conn, 1);
    r = amqp_get_rpc_reply(conn);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        snprintf(p->err, sizeof p->err, "channel.open refused");
        goto fail;
    }
    atomic_store(&p->ready, 1);
    while (!atomic_load(&g.ctl_quit)) {
        int k = atomic_load_explicit(&g.ctl_step, memory_order_acquire);
        if (k <= done) {
            sleep_until(now_ns() + PUB_TICK_NS);
            continue;
        }
        if (apub_step(p, conn, body, k) != 0) goto fail;
        done = k;
        atomic_store_explicit(&p->done_step, k, memory_order_release);
    }
    amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
    goto out;
fail:
    atomic_store(&p->ready, -1);
    atomic_store_explicit(&p->done_step, MAX_STEPS, memory_order_release);
out:
    if (logged_in) amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    if (conn) amqp_destroy_connection(conn);
    free(body);
    atomic_store(&p->finished, 1);
    return NULL;
}

static void apub_stop_all(void)
{
    atomic_store(&g.ctl_quit, 1);
    uint64_t until = now_ns() + 5000000000ull;
    for (int i = 0; i < (g.amqp ? g.pubs : 0); i++) {
        struct amqp_pub *p = &g.apub[i];
        while (!atomic_load(&p->finished) && now_ns() < until)
            sleep_until(now_ns() + 10000000ull);
        if (!atomic_load(&p->finished) && atomic_load(&p->fd) >= 0)
            shutdown(atomic_load(&p->fd), SHUT_RDWR); /* a write the broker never takes */
        pthread_join(p->th, NULL);
    }
}

/* 1 all ready, 0 still logging in, -1 one failed (its reason is noted) */
static int apub_ready(void)
{
    int all = 1;
    for (int i = 0; i < g.pubs; i++) {
        int r = atomic_load(&g.apub[i].ready);
        if (r < 0) {
            g.e_amqp++;
            note_error(NULL, "AMQP publisher %d: %s", i, g.apub[i].err);
            return -1;
        }
        if (r == 0) all = 0;
    }
    return all;
}

/* ------------------------------------------------------------------ steps */

static void step_begin(struct step *s, uint64_t t)
{
    s->t_start = t;
    s->offered = (uint64_t)(s->rate * g.step_s + 0.5);
    s->topic_sent0 = xrealloc(NULL, (size_t)g.topics * sizeof *s->topic_sent0);
    s->topic_subs0 = xrealloc(NULL, (size_t)g.topics * sizeof *s->topic_subs0);
    s->subs_start = 0;
    for (int i = 0; i < g.topics; i++) {
        s->topic_sent0[i] = atomic_load(&g.amqp_topic_sent[i]);
        s->topic_subs0[i] = g.topic_subs[i] > 0 ? g.topic_subs[i] : 0;
        s->subs_start += s->topic_subs0[i];
    }
    s->self_cpu0 = cpu_clock_s(CLOCK_PROCESS_CPUTIME_ID);
    s->main_cpu0 = cpu_clock_s(CLOCK_THREAD_CPUTIME_ID);
    for (int i = 0; i < g.npids; i++) {
        s->cpu0[i] = read_cpu_s(g.pids[i].pid);
        s->rss_peak_kb[i] = read_rss_kb(g.pids[i].pid);
    }
    s->state = STEP_PUBLISHING;
    atomic_store_explicit(&g.ctl_step, g.cur_step, memory_order_release);
}

/* every publisher is done with step k: its counts are final */
static void step_collect(struct step *s, uint64_t t)
{
    int k = (int)(s - g.steps);
    s->t_pub_end = t;
    for (int i = 0; i < g.pubs; i++) {
        s->sent += g.apub[i].step_sent[k];
        s->missed += g.apub[i].step_missed[k];
        s->blocked_ns += g.apub[i].step_blocked_ns[k];
    }
    for (int i = 0; i < g.topics; i++)
        s->expected +=
            (atomic_load(&g.amqp_topic_sent[i]) - s->topic_sent0[i]) * (uint64_t)s->topic_subs0[i];
    s->state = STEP_DRAINING;
}

static double step_frac(const struct step *s)
{
    /* offered deliveries: each offered message to its topic's subscribers (topics get
     * the same number of messages, so this is exact for evenly spread subscribers) */
    double off = (double)s->offered * (double)s->subs_start / (double)g.topics;
    return off > 0 ? (double)s->delivered / off : 0;
}

static void step_end(struct step *s, uint64_t t)
{
    s->t_deadline = t;
    s->self_cpu = cpu_clock_s(CLOCK_PROCESS_CPUTIME_ID) - s->self_cpu0;
    s->main_cpu = cpu_clock_s(CLOCK_THREAD_CPUTIME_ID) - s->main_cpu0;
    for (int i = 0; i < g.npids; i++) {
        double c = read_cpu_s(g.pids[i].pid);
        s->cpu[i] = c >= 0 && s->cpu0[i] >= 0 ? c - s->cpu0[i] : -1;
        long kb = read_rss_kb(g.pids[i].pid);
        if (kb > s->rss_peak_kb[i]) s->rss_peak_kb[i] = kb;
        note_rss(&g.pids[i], kb);
    }
    s->state = STEP_COUNTED;
}

/* the step machine of the publish phase: returns an epoll timeout (ms), or
 * -1 once the last step is counted or the ladder stopped */
static int advance_steps(void)
{
    uint64_t t = now_ns();
    uint64_t dur = (uint64_t)(g.step_s * 1e9);
    while (g.cur_step < g.nsteps) {
        struct step *s = &g.steps[g.cur_step];
        if (s->state == STEP_NEW) step_begin(s, t);
        if (s->state == STEP_PUBLISHING) {
            if (t < s->t_start + dur) return 1;
            for (int i = 0; i < g.pubs; i++)
                if (atomic_load_explicit(&g.apub[i].done_step, memory_order_acquire) < g.cur_step)
                    return 1;
            if (apub_ready() < 0) return -1;
            step_collect(s, t);
        }
        if (s->delivered < s->expected && t < s->t_pub_end + (uint64_t)g.step_grace_ms * 1000000ull)
            return 1;
        step_end(s, t);
        /* two steps in a row under --stop-below: the target has collapsed */
        if (g.stop_below > 0 && step_frac(s) < g.stop_below) {
            if (++g.below_run >= 2 && g.cur_step + 1 < g.nsteps) {
                g.stopped_early = 1;
                g.cur_step++;
                return -1;
            }
        } else {
            g.below_run = 0;
        }
        g.cur_step++;
    }
    return -1;
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
    if (t >= g.next_sample) {
        g.next_sample += 1000000000ull;
        sample_rss_tick();
    }
    if (t >= g.next_ping) {
        g.next_ping = t + KEEPALIVE_NS;
        for (int i = 0; i < g.started; i++) {
            if (g.c[i].state != ST_READY) continue;
            if (g.tcp)
                out_raw(&g.c[i], "\n", 1); /* a heart-beat EOL */
            else
                ws_send(&g.c[i], 0x9, "k", 1);
        }
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
        if (g.amqp) {
            int r = apub_ready();
            if (r < 0) {
                g.phase = PH_DONE;
                return 0;
            }
            if (r == 0) return 10;
        }
        g.t_sub_end = g.t_pub_start = now_ns();
        g.phase = PH_PUBLISH;
    }
        /* fall through */
    case PH_PUBLISH: {
        if (g.amqp) {
            int ms = advance_steps();
            if (ms >= 0) return ms;
            g.t_pub_end = now_ns();
            g.phase = PH_DONE;
            return 0;
        }
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

static double pct_of(const uint64_t *v, size_t n, double q)
{
    if (!n) return -1;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    if (i >= n) i = n - 1;
    return (double)v[i] / 1000.0;
}

static int error_count(void)
{
    return g.e_connect + g.e_handshake + g.e_stomp_error + g.e_closed + g.e_protocol + g.e_body +
           g.e_amqp;
}

/* ok: no timeout, and no error but the subscribers the server closed under
 * overload in AMQP mode (reported as subs_lost, per step as subs_closed) */
static int run_ok(void)
{
    return !g.timed_out && error_count() - (g.amqp ? g.subs_lost : 0) == 0;
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void report_steps(void)
{
    printf("\"stopped_early\":%s,\"step_seconds\":%.3f,\"step_grace_ms\":%d,\"steps\":[",
           g.stopped_early ? "true" : "false", g.step_s, g.step_grace_ms);
    for (int k = 0; k < g.nsteps; k++) {
        struct step *s = &g.steps[k];
        if (s->state != STEP_COUNTED) break;
        if (s->nlat) qsort(s->lat, s->nlat, sizeof *s->lat, cmp_u64);
        double pub_s = (double)(s->t_pub_end - s->t_start) / 1e9;
        double off_deliv = (double)s->offered * (double)s->subs_start / (double)g.topics;
        printf("%s{\"rate\":%.1f,\"offered_deliveries_per_s\":%.0f,\"start_s\":%.3f,"
               "\"publish_s\":%.3f,\"drain_s\":%.3f,",
               k ? "," : "", s->rate, s->rate * (double)s->subs_start / (double)g.topics,
               (double)(s->t_start - g.t_pub_start) / 1e9, pub_s,
               (double)(s->t_deadline - s->t_pub_end) / 1e9);
        printf("\"offered\":%llu,\"sent\":%llu,\"missed\":%llu,\"sent_per_s\":%.1f,"
               "\"publisher_blocked_s\":%.3f,\"subs\":%d,\"subs_closed\":%d,",
               (unsigned long long)s->offered, (unsigned long long)s->sent,
               (unsigned long long)s->missed, pub_s > 0 ? (double)s->sent / pub_s : 0,
               (double)s->blocked_ns / 1e9, s->subs_start, s->subs_closed);
        printf("\"offered_deliveries\":%.0f,\"expected\":%llu,\"delivered\":%llu,\"late\":%llu,"
               "\"delivered_frac\":%.5f,\"during\":%llu,\"delivered_per_s\":%.1f,",
               off_deliv, (unsigned long long)s->expected, (unsigned long long)s->delivered,
               (unsigned long long)s->late, step_frac(s), (unsigned long long)s->during,
               pub_s > 0 ? (double)s->during / pub_s : 0);
        printf("\"latency_us\":{\"n\":%zu,\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f},", s->nlat,
               pct_of(s->lat, s->nlat, 0.50), pct_of(s->lat, s->nlat, 0.99),
               s->nlat ? (double)s->lat[s->nlat - 1] / 1000.0 : -1.0);
        printf("\"loadgen_cpu_s\":%.2f,\"loadgen_main_cpu_s\":%.2f,\"procs\":{", s->self_cpu,
               s->main_cpu);
        for (int i = 0; i < g.npids; i++)
            printf("%s\"%s\":{\"cpu_s\":%.2f,\"rss_peak_kb\":%ld}", i ? "," : "", g.pids[i].name,
                   s->cpu[i], s->rss_peak_kb[i]);
        printf("}}");
    }
    printf("],");
}

static void report(const char *stopped_in)
{
    if (g.nlat) qsort(g.lat, g.nlat, sizeof *g.lat, cmp_u64);
    uint64_t expected = g.expected_final;
    long long sent = g.sent_total;
    if (g.amqp)
        for (int k = 0; k < g.nsteps; k++)
            sent += (long long)g.steps[k].sent;
    double connect_s = g.t_conn_end ? (double)(g.t_conn_end - g.t0) / 1e9 : -1;
    double sub_s = g.t_sub_end ? (double)(g.t_sub_end - g.t_conn_end) / 1e9 : -1;
    double pub_s = -1, deliv_s = -1;
    if (g.t_pub_start && sent > 0) {
        uint64_t end = g.t_last_delivery > g.t_pub_start ? g.t_last_delivery : now_ns();
        deliv_s = (double)(end - g.t_pub_start) / 1e9;
        pub_s = (double)((g.t_pub_end ? g.t_pub_end : now_ns()) - g.t_pub_start) / 1e9;
    }
    int errors = error_count();
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double self_cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                      (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;

    printf("{\"scenario\":\"%s\",\"target\":\"%s\",\"ok\":%s,\"stopped_in\":\"%s\","
           "\"conns\":%d,\"subs\":%d,\"pubs\":%d,\"topics\":%d,\"messages\":%lld,\"size\":%d,"
           "\"window\":%d,\"rate\":%.0f,\"amqp\":%s,\"transport\":\"%s\",",
           g.label, g.target, run_ok() ? "true" : "false", stopped_in, g.conns, g.subs, g.pubs,
           g.topics, g.messages, g.size, g.window, g.rate, g.amqp ? "true" : "false",
           g.tcp ? "tcp" : "ws");
    printf("\"connected\":%d,\"connect_s\":%.3f,\"connect_per_s\":%.1f,\"subscribed\":%d,"
           "\"subscribe_s\":%.3f,",
           g.connected, connect_s, connect_s > 0 ? g.connected / connect_s : 0, g.subs_ok, sub_s);
    printf("\"sent\":%lld,\"delivered\":%llu,\"expected\":%llu,\"publish_s\":%.3f,"
           "\"deliver_s\":%.3f,\"delivered_per_s\":%.1f,",
           sent, (unsigned long long)g.delivered, (unsigned long long)expected, pub_s, deliv_s,
           deliv_s > 0 ? (double)g.delivered / deliv_s : 0);
    printf("\"per_second\":[");
    for (size_t i = 0; i < g.nper_sec; i++) {
        if (g.t_pub_start + i * 1000000000ull > (g.t_pub_end ? g.t_pub_end : now_ns())) break;
        printf("%s%llu", i ? "," : "", (unsigned long long)g.per_sec[i]);
    }
    printf("],");
    printf("\"latency_us\":{\"n\":%zu,\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f},", g.nlat,
           pct_of(g.lat, g.nlat, 0.50), pct_of(g.lat, g.nlat, 0.99),
           g.nlat ? (double)g.lat[g.nlat - 1] / 1000.0 : -1.0);
    if (g.amqp) report_steps();
    printf("\"errors\":%d,\"subs_lost\":%d,\"error_detail\":{\"connect\":%d,\"handshake\":%d,"
           "\"stomp_error\":%d,\"closed\":%d,\"protocol\":%d,\"body\":%d,\"amqp\":%d},"
           "\"first_error\":",
           errors, g.subs_lost, g.e_connect, g.e_handshake, g.e_stomp_error, g.e_closed,
           g.e_protocol, g.e_body, g.e_amqp);
    json_str(g.first_error);
    printf(",\"loadgen_cpu_s\":%.2f,\"settle_ms\":%d,\"procs\":{", self_cpu, g.settle_ms);
    for (int i = 0; i < g.npids; i++) {
        struct watched *w = &g.pids[i];
        printf("%s\"%s\":{\"pid\":%d,\"rss_before_kb\":%ld,\"rss_after_kb\":%ld,"
               "\"rss_peak_kb\":%ld,\"rss_after_leave_kb\":%ld,\"cpu_s\":%.2f,\"rss_kb\":[",
               i ? "," : "", w->name, w->pid, w->rss_before_kb, w->rss_after_kb, w->rss_peak_kb,
               w->rss_leave_kb,
               (w->cpu_after_s >= 0 && w->cpu_before_s >= 0) ? w->cpu_after_s - w->cpu_before_s
                                                             : -1.0);
        for (size_t j = 0; j < w->nrss; j++)
            printf("%s%ld", j ? "," : "", w->rss_kb[j]);
        printf("]}");
    }
    printf("}}\n");
    fflush(stdout);
}

/* ------------------------------------------------------------------ main */

static void usage(void)
{
    fprintf(
        stderr,
        "usage: loadgen --url ws://127.0.0.1:PORT/PATH [options]\n"
        "       loadgen --tcp --url tcp://127.0.0.1:PORT [options]\n"
        "  --tcp                    raw STOMP over TCP (stomp_listen, rabbitmq_stomp): no HTTP\n"
        "                           upgrade, no WebSocket framing; implied by a tcp:// url\n"
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
        "  --pid NAME:PID           sample RSS and CPU of PID before and after, RSS every\n"
        "                           second and --settle-ms after the clients left (repeatable)\n"
        "open-loop AMQP publishers (the overload scenario):\n"
        "  --amqp HOST:PORT         the --pubs publishers (<= %d) are AMQP connections to the\n"
        "                           broker (--login/--passcode, vhost /) that publish to\n"
        "                           amq.topic, key PREFIX.K; --conns counts subscribers only\n"
        "  --steps R1,R2,...        offered rates in messages/s over all publishers, one step\n"
        "                           each (default: one step at --rate)\n"
        "  --step-seconds S         publishing time of each step (default 4)\n"
        "  --step-grace-ms MS       a step's deliveries count until this long after its\n"
        "                           publishing ended, or until all arrived (default 1000)\n"
        "  --stop-below F           stop after two steps in a row deliver under F of the\n"
        "                           offered deliveries (default 0: run every step)\n",
        BODY_MIN, MAX_AMQP_PUBS);
    exit(2);
}

int main(int argc, char **argv)
{
    /* clang-format off: one option a line (it would pack them in two columns) */
    // clang-format off
    static const struct option opts[] = {{"url", 1, 0, 'u'},
                                         {"login", 1, 0, 'l'},
                                         {"passcode", 1, 0, 'p'},
                                         {"conns", 1, 0, 'n'},
                                         {"subs", 1, 0, 's'},
                                         {"pubs", 1, 0, 'P'},
                                         {"topics", 1, 0, 'T'},
                                         {"messages", 1, 0, 'm'},
                                         {"size", 1, 0, 'b'},
                                         {"window", 1, 0, 'w'},
                                         {"rate", 1, 0, 'r'},
                                         {"timeout", 1, 0, 't'},
                                         {"settle-ms", 1, 0, 'S'},
                                         {"concurrency", 1, 0, 'c'},
                                         {"prefix", 1, 0, 'x'},
                                         {"label", 1, 0, 'L'},
                                         {"target", 1, 0, 'G'},
                                         {"pid", 1, 0, 'i'},
                                         {"amqp", 1, 0, 'A'},
                                         {"steps", 1, 0, 'R'},
                                         {"step-seconds", 1, 0, 'D'},
                                         {"step-grace-ms", 1, 0, 'g'},
                                         {"stop-below", 1, 0, 'B'},
                                         {"tcp", 0, 0, 'C'},
                                         {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    // clang-format on
    const char *amqp = NULL, *steps = NULL;
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
    g.step_s = 4;
    g.step_grace_ms = 1000;
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
        case 'A':
            amqp = optarg;
            break;
        case 'R':
            steps = optarg;
            break;
        case 'D':
            g.step_s = atof(optarg);
            break;
        case 'g':
            g.step_grace_ms = atoi(optarg);
            break;
        case 'B':
            g.stop_below = atof(optarg);
            break;
        case 'C':
            g.tcp = 1;
            break;
        default:
            usage();
        }
    }
    if (url && !strncmp(url, "tcp://", 6)) g.tcp = 1;
    if (!url || strncmp(url, g.tcp ? "tcp://" : "ws://", g.tcp ? 6 : 5) != 0) usage();
    {
        const char *h = url + (g.tcp ? 6 : 5), *colon = strchr(h, ':'), *slash = strchr(h, '/');
        if (!colon || (slash && slash < colon) || (size_t)(colon - h) >= sizeof g.host) usage();
        snprintf(g.host, sizeof g.host, "%.*s", (int)(colon - h), h);
        int port = atoi(colon + 1);
        snprintf(g.path, sizeof g.path, "%s", slash ? slash : "/");
        g.addr.sin_family = AF_INET;
        g.addr.sin_port = htons((uint16_t)port);
        if (port <= 0 || port > 65535 || inet_pton(AF_INET, g.host, &g.addr.sin_addr) != 1)
            die("url must be %s, got %s", g.tcp ? "tcp://IPV4:PORT" : "ws://IPV4:PORT/PATH", url);
        if (g.tcp && slash) die("a tcp:// url has no path, got %s", url);
    }
    if (amqp) {
        const char *colon = strrchr(amqp, ':');
        if (!colon || (size_t)(colon - amqp) >= sizeof g.amqp_host) usage();
        g.amqp = 1;
        snprintf(g.amqp_host, sizeof g.amqp_host, "%.*s", (int)(colon - amqp), amqp);
        g.amqp_port = atoi(colon + 1);
        if (steps) {
            for (const char *q = steps; *q;) {
                char *end;
                double r = strtod(q, &end);
                if (end == q || r <= 0 || g.nsteps == MAX_STEPS) die("bad --steps %s", steps);
                g.steps[g.nsteps++].rate = r;
                q = *end == ',' ? end + 1 : end;
                if (*end && *end != ',') die("bad --steps %s", steps);
            }
        } else if (g.rate > 0) {
            g.steps[g.nsteps++].rate = g.rate;
        }
        if (g.nsteps < 1 || g.pubs < 1 || g.pubs > MAX_AMQP_PUBS || g.messages != 0 ||
            g.window != 0 || g.step_s <= 0 || g.step_grace_ms < 0 || g.amqp_port <= 0 ||
            g.amqp_port > 65535 || g.stop_below < 0 || g.stop_below > 1)
            die("--amqp needs --steps or --rate, 1..%d --pubs, no --messages, --window 0",
                MAX_AMQP_PUBS);
    } else if (steps) {
        die("--steps needs --amqp");
    }
    /* AMQP publishers are not among the --conns WebSocket connections */
    int ws_pubs = g.amqp ? 0 : g.pubs;
    if (g.conns < 1 || g.subs < 0 || g.pubs < 0 || g.subs + ws_pubs > g.conns || g.topics < 1 ||
        g.messages < 0 || g.size < BODY_MIN || g.size > 65536 || g.window < 0 || g.rate < 0 ||
        g.timeout_s <= 0 || g.concurrency < 1 || (g.messages > 0 && g.pubs == 0) || g.settle_ms < 0)
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
        } else if (i < g.subs + ws_pubs) {
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

    if (g.amqp) {
        g.amqp_topic_sent = calloc((size_t)g.topics, sizeof *g.amqp_topic_sent);
        if (!g.amqp_topic_sent) die("out of memory");
        atomic_store(&g.ctl_step, -1);
        for (int i = 0; i < g.pubs; i++) {
            struct amqp_pub *p = &g.apub[i];
            p->idx = i;
            atomic_store(&p->done_step, -1);
            atomic_store(&p->fd, -1);
            if (pthread_create(&p->th, NULL, apub_main, p) != 0) die("pthread_create failed");
        }
    }

    sample_pids(0);
    g.t0 = now_ns();
    g.deadline = g.t0 + (uint64_t)(g.timeout_s * 1e9);
    g.next_ping = g.t0 + KEEPALIVE_NS;
    g.next_sample = g.t0;
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
    for (int t = 0; t < g.topics; t++)
        g.expected_final += g.topic_sent[t] * (uint64_t)(g.topic_subs[t] > 0 ? g.topic_subs[t] : 0);
    for (int k = 0; k < g.nsteps; k++)
        g.expected_final += g.steps[k].expected;
    /* every client leaves; the servers get --settle-ms to give memory back */
    apub_stop_all();
    for (int i = 0; i < g.conns; i++)
        conn_kill(&g.c[i], 0);
    uint64_t leave = now_ns() + (uint64_t)g.settle_ms * 1000000ull;
    while (now_ns() < leave) {
        uint64_t t = now_ns();
        if (t >= g.next_sample) {
            g.next_sample += 1000000000ull;
            sample_rss_tick();
        }
        sleep_until(g.next_sample < leave ? g.next_sample : leave);
    }
    for (int i = 0; i < g.npids; i++)
        g.pids[i].rss_leave_kb = read_rss_kb(g.pids[i].pid);
    report(g.timed_out ? phase_name[stopped] : "done");
    return run_ok() ? 0 : 1;
}
