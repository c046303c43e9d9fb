/* test_ws_frame.c - RFC 6455 frame codec: table-driven client byte streams,
 * each fed whole, split in two at every boundary and one byte at a time
 * (wslay's recv_1byte), compared event by event with the expectation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "error.h"
#include "ws_frame.h"

/* ---- vectors ---- */

#define F_UNMASKED 1 /* no MASK bit, no key */
#define F_PATTERN 2  /* payload is pat() of the message offset (control: frame offset) */
#define F_LEN16 4    /* force the 16-bit length form */
#define F_LEN64 8    /* force the 64-bit length form */

struct tframe {
    int set;
    uint8_t b0; /* FIN | RSV | opcode */
    uint64_t len;
    const char *pay;
    int flags;
};

struct tev {
    int type;
    int opcode;
    int fin;
    const char *data; /* NULL: pat(0 .. len) */
    size_t len;
    int close_code;
};

#define MAXFR 8
#define MAXEV 8

struct tvec {
    const char *name;
    uint64_t max_message; /* 0: default */
    int allow_rsv1;
    struct tframe fr[MAXFR];
    const char *raw; /* instead of fr */
    size_t raw_len;
    struct tev ev[MAXEV]; /* expected, normalized (see rec_event); ends at type 0 */
    int err;              /* 0: no error expected */
    int close_code;
    size_t err_at; /* index of the offending byte in the stream */
    /* set: sg_ws_dec_set_max_message(set_max) once the bytes before set_at
     * are consumed (every way of feeding has a call boundary there) */
    int set;
    uint64_t set_max;
    size_t set_at;
};

#define FR(b, s)                                                                                   \
    {                                                                                              \
        .set = 1, .b0 = (b), .len = sizeof(s) - 1, .pay = (s)                                      \
    }
#define FRF(b, s, f)                                                                               \
    {                                                                                              \
        .set = 1, .b0 = (b), .len = sizeof(s) - 1, .pay = (s), .flags = (f)                        \
    }
#define FRP(b, n)                                                                                  \
    {                                                                                              \
        .set = 1, .b0 = (b), .len = (n), .flags = F_PATTERN                                        \
    }
#define FRPF(b, n, f)                                                                              \
    {                                                                                              \
        .set = 1, .b0 = (b), .len = (n), .flags = F_PATTERN | (f)                                  \
    }
#define RAW(s) .raw = (s), .raw_len = sizeof(s) - 1
#define DATA(op, fin, s)                                                                           \
    {                                                                                              \
        SG_WS_EV_DATA, (op), (fin), (s), sizeof(s) - 1, 0                                          \
    }
#define DATAP(op, fin, n)                                                                          \
    {                                                                                              \
        SG_WS_EV_DATA, (op), (fin), NULL, (n), 0                                                   \
    }
#define PING(s)                                                                                    \
    {                                                                                              \
        SG_WS_EV_PING, SG_WS_OP_PING, 1, (s), sizeof(s) - 1, 0                                     \
    }
#define PINGP(n)                                                                                   \
    {                                                                                              \
        SG_WS_EV_PING, SG_WS_OP_PING, 1, NULL, (n), 0                                              \
    }
#define PONG(s)                                                                                    \
    {                                                                                              \
        SG_WS_EV_PONG, SG_WS_OP_PONG, 1, (s), sizeof(s) - 1, 0                                     \
    }
#define CLOSE(c, s)                                                                                \
    {                                                                                              \
        SG_WS_EV_CLOSE, SG_WS_OP_CLOSE, 1, (s), sizeof(s) - 1, (c)                                 \
    }
#define ERR(e, c, at) .err = (e), .close_code = (c), .err_at = (at)
#define E1002(at) ERR(SG_EWSFRAME, 1002, at)
#define E1007(at) ERR(SG_EUTF8, 1007, at)
#define E1009(at) ERR(SG_ETOOBIG, 1009, at)

#define TXT SG_WS_OP_TEXT
#define BIN SG_WS_OP_BINARY

/* "κόσμε", the Markus Kuhn test string: 11 bytes */
#define KOSME "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"
#define R10 "0123456789"
#define R123 R10 R10 R10 R10 R10 R10 R10 R10 R10 R10 R10 R10 "abc"

static uint8_t pat(uint64_t i)
{
    return (uint8_t) "abcdefghijklmnopqrstuvwxyz0123456789"[i % 36];
}

/* Encodes v's client frames (masked with a different key per frame) into
 * out, or only measures when out is NULL. Returns the stream length. */
static size_t build(const struct tvec *v, uint8_t *out)
{
    size_t n = 0;
    uint64_t msg_off = 0;

#define PUT(x)                                                                                     \
    do {                                                                                           \
        if (out) out[n] = (uint8_t)(x);                                                            \
        n++;                                                                                       \
    } while (0)
    if (v->raw) {
        if (out) memcpy(out, v->raw, v->raw_len);
        return v->raw_len;
    }
    for (int f = 0; f < MAXFR && v->fr[f].set; f++) {
        const struct tframe *fr = &v->fr[f];
        uint8_t key[4] = {(uint8_t)(0x12 + 0x11 * f), 0x34, (uint8_t)(0x56 ^ f), 0xF8};
        int masked = !(fr->flags & F_UNMASKED);
        int op = fr->b0 & 0xF, ctl = op >= 8;
        uint8_t mbit = masked ? 0x80 : 0;

        if (op == TXT || op == BIN) msg_off = 0;
        PUT(fr->b0);
        if (fr->len < 126 && !(fr->flags & (F_LEN16 | F_LEN64))) {
            PUT(mbit | fr->len);
        } else if (fr->len <= 0xFFFF && !(fr->flags & F_LEN64)) {
            PUT(mbit | 126);
            PUT(fr->len >> 8);
            PUT(fr->len);
        } else {
            PUT(mbit | 127);
            for (int i = 0; i < 8; i++)
                PUT(fr->len >> (56 - 8 * i));
        }
        if (masked)
            for (int i = 0; i < 4; i++)
                PUT(key[i]);
        for (uint64_t i = 0; i < fr->len; i++) {
            uint8_t b = (fr->flags & F_PATTERN) ? pat(ctl ? i : msg_off + i) : (uint8_t)fr->pay[i];
            PUT(masked ? b ^ key[i & 3] : b);
        }
        if (!ctl) msg_off += fr->len;
    }
#undef PUT
    return n;
}

/* ---- running a stream through the decoder ---- */

struct rec_ev {
    int type, opcode, fin, close_code;
    size_t off, len; /* in rec.data */
};

struct rec {
    struct rec_ev *ev;
    size_t nev, cap;
    uint8_t *data;
    size_t data_len;
    uint64_t msg_len, max_message;
    int err, close_code;
    size_t err_lo, err_hi; /* input range of the call that failed */
    int set_done;
};

static const char *g_name;
static char g_mode[64];

#define CHECK(cond, what)                                                                          \
    do {                                                                                           \
        if (!(cond)) fail_msg("%s [%s]: %s (%s)", g_name, g_mode, what, #cond);                    \
    } while (0)

static void rec_init(struct rec *r, size_t stream_len, uint64_t max_message)
{
    memset(r, 0, sizeof *r);
    r->cap = stream_len + 1; /* every event consumes >= 1 byte */
    r->ev = calloc(r->cap, sizeof *r->ev);
    r->data = malloc(stream_len + 1);
    r->max_message = max_message ? max_message : (uint64_t)1 << 20;
    assert_non_null(r->ev);
    assert_non_null(r->data);
}

static void rec_free(struct rec *r)
{
    free(r->ev);
    free(r->data);
}

/* Records ev normalized: DATA chunks of one message that follow each other
 * are merged (the chunking depends on how input was split; the message
 * bytes, opcode, fin and the place of control frames do not). */
static void rec_event(struct rec *r, const struct sg_ws_event *ev)
{
    struct rec_ev *last = r->nev ? &r->ev[r->nev - 1] : NULL;

    if (ev->type == SG_WS_EV_DATA) {
        r->msg_len += ev->len;
        CHECK(r->msg_len <= r->max_message, "message over max_message delivered");
        if (ev->fin) r->msg_len = 0;
    }
    if (ev->type == SG_WS_EV_DATA && last && last->type == SG_WS_EV_DATA && !last->fin) {
        CHECK(last->opcode == ev->opcode, "opcode changed inside a message");
        last->len += ev->len;
        last->fin = ev->fin;
    } else {
        CHECK(r->nev < r->cap, "too many events");
        last = &r->ev[r->nev++];
        last->type = ev->type;
        last->opcode = ev->opcode;
        last->fin = ev->fin;
        last->close_code = ev->close_code;
        last->off = r->data_len;
        last->len = ev->len;
    }
    if (ev->len) memcpy(r->data + r->data_len, ev->data, ev->len);
    r->data_len += ev->len;
}

/* Feeds buf[start..end) like a read callback does. while_len picks the
 * header's second loop shape (`while (len > 0)`), else the NONE-terminated
 * one; both must see every event. */
static void feed(struct sg_ws_dec *d, uint8_t *buf, size_t start, size_t end, int while_len,
                 struct rec *r)
{
    size_t pos = start;

    while (!r->err) {
        struct sg_ws_event ev;
        size_t len = end - pos;
        ssize_t n;

        if (while_len && len == 0) break;
        memset(&ev, 0xA5, sizeof ev); /* the decoder must fill all of it */
        n = sg_ws_decode(d, buf + pos, len, &ev);
        if (n < 0) {
            uint8_t junk[2] = {0x81, 0x80};
            r->err = (int)n;
            r->close_code = d->close_code;
            r->err_lo = pos;
            r->err_hi = end;
            CHECK(d->error != NULL, "no error text");
            /* the decoder is finished: the same error again */
            CHECK(sg_ws_decode(d, junk, sizeof junk, &ev) == n, "error not sticky");
            CHECK(d->close_code == r->close_code, "close_code changed");
            break;
        }
        CHECK((size_t)n <= len, "consumed more than given");
        if (ev.type == SG_WS_EV_NONE) {
            CHECK((size_t)n == len, "NONE without consuming all input");
            break;
        }
        CHECK(n >= 1, "event with 0 bytes consumed");
        if (ev.type == SG_WS_EV_DATA) {
            CHECK(ev.opcode == TXT || ev.opcode == BIN, "DATA opcode");
            CHECK(ev.fin == 0 || ev.fin == 1, "fin");
            CHECK(ev.close_code == 0, "DATA close_code");
            CHECK(ev.data == buf + pos + n - ev.len, "chunk is not the end of consumed input");
        } else {
            CHECK(ev.type == SG_WS_EV_PING || ev.type == SG_WS_EV_PONG || ev.type == SG_WS_EV_CLOSE,
                  "event type");
            CHECK(ev.data != NULL && ev.len <= 125, "control payload");
            CHECK(ev.fin == 1, "control fin");
            CHECK(ev.opcode == (ev.type == SG_WS_EV_PING   ? SG_WS_OP_PING
                                : ev.type == SG_WS_EV_PONG ? SG_WS_OP_PONG
                                                           : SG_WS_OP_CLOSE),
                  "control opcode");
            CHECK((ev.type == SG_WS_EV_CLOSE) == (ev.close_code != 0), "close_code");
        }
        rec_event(r, &ev);
        pos += (size_t)n;
    }
}

static void apply_set(struct sg_ws_dec *d, const struct tvec *v, struct rec *r)
{
    if (!v->set || r->set_done || r->err) return;
    sg_ws_dec_set_max_message(d, v->set_max);
    r->max_message = v->set_max ? v->set_max : (uint64_t)1 << 20;
    r->set_done = 1;
}

/* feed() with a call boundary at v->set_at, where the bound changes */
static void feed_range(struct sg_ws_dec *d, const struct tvec *v, uint8_t *buf, size_t a, size_t b,
                       int while_len, struct rec *r)
{
    if (v->set && a < v->set_at && v->set_at < b) {
        feed_range(d, v, buf, a, v->set_at, while_len, r);
        feed_range(d, v, buf, v->set_at, b, while_len, r);
        return;
    }
    if (v->set && a == v->set_at) apply_set(d, v, r);
    feed(d, buf, a, b, while_len, r);
    if (v->set && b == v->set_at) apply_set(d, v, r);
}

/* mode 0: whole; 1: two calls split at `split`; 2: one byte at a time */
static void run(const struct tvec *v, const uint8_t *orig, uint8_t *buf, size_t n, int mode,
                size_t split, struct rec *r)
{
    struct sg_ws_limits lim = {.max_message = v->max_message, .allow_rsv1 = v->allow_rsv1};
    struct sg_ws_dec d;

    memcpy(buf, orig, n); /* the decoder unmasks in place */
    rec_init(r, n, v->max_message);
    sg_ws_dec_init(&d, &lim);
    if (mode == 0) {
        snprintf(g_mode, sizeof g_mode, "whole");
        feed_range(&d, v, buf, 0, n, 1, r);
    } else if (mode == 1) {
        snprintf(g_mode, sizeof g_mode, "split at %zu", split);
        feed_range(&d, v, buf, 0, split, 0, r);
        feed_range(&d, v, buf, split, n, 0, r);
    } else {
        snprintf(g_mode, sizeof g_mode, "byte at a time");
        for (size_t i = 0; i < n && !r->err; i++)
            feed_range(&d, v, buf, i, i + 1, 0, r);
    }
    if (v->set) CHECK(r->set_done || r->err, "the bound was never changed");
}

static void check_rec(const struct tvec *v, const struct rec *r)
{
    size_t nexp = 0;

    while (nexp < MAXEV && v->ev[nexp].type)
        nexp++;
    if (r->nev != nexp) fail_msg("%s [%s]: %zu events, expected %zu", g_name, g_mode, r->nev, nexp);
    for (size_t i = 0; i < nexp; i++) {
        const struct tev *e = &v->ev[i];
        const struct rec_ev *g = &r->ev[i];

        CHECK(g->type == e->type, "event type");
        CHECK(g->opcode == e->opcode, "opcode");
        CHECK(g->fin == e->fin, "fin");
        CHECK(g->close_code == e->close_code, "close code");
        if (g->len != e->len)
            fail_msg("%s [%s]: event %zu has %zu bytes, expected %zu", g_name, g_mode, i, g->len,
                     e->len);
        for (size_t k = 0; k < e->len; k++) {
            uint8_t want = e->data ? (uint8_t)e->data[k] : pat(k);
            if (r->data[g->off + k] != want)
                fail_msg("%s [%s]: event %zu byte %zu is %02x, expected %02x", g_name, g_mode, i, k,
                         r->data[g->off + k], want);
        }
    }
    if (r->err != v->err)
        fail_msg("%s [%s]: result %d, expected %d", g_name, g_mode, r->err, v->err);
    if (v->err) {
        CHECK(r->close_code == v->close_code, "close code to send");
        /* fail fast: the call that failed held the offending byte (one
         * byte at a time: it WAS that byte), and nothing after it was
         * needed */
        if (!(r->err_lo <= v->err_at && v->err_at < r->err_hi))
            fail_msg("%s [%s]: error in the call on [%zu, %zu), offending byte %zu", g_name, g_mode,
                     r->err_lo, r->err_hi, v->err_at);
    }
}

static void run_vec(const struct tvec *v)
{
    size_t n = build(v, NULL);
    uint8_t *orig = malloc(n + 1), *buf = malloc(n + 1);
    struct rec r;

    assert_non_null(orig);
    assert_non_null(buf);
    build(v, orig);
    g_name = v->name;
    if (v->err) assert_true(v->err_at < n);

    run(v, orig, buf, n, 0, 0, &r);
    check_rec(v, &r);
    rec_free(&r);
    for (size_t k = 1; k < n; k++) {
        /* big streams: every split near the ends, a prime stride between */
        if (n > 4096 && k > 64 && k < n - 64 && k % 251) continue;
        run(v, orig, buf, n, 1, k, &r);
        check_rec(v, &r);
        rec_free(&r);
    }
    run(v, orig, buf, n, 2, 0, &r);
    check_rec(v, &r);
    rec_free(&r);
    free(orig);
    free(buf);
}

static void run_table(const struct tvec *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        run_vec(&t[i]);
}

#define RUN_TABLE(t) run_table((t), sizeof(t) / sizeof((t)[0]))

/* ---- tables ---- */

static const struct tvec lengths[] = {
    {"text 0", .fr = {FR(0x81, "")}, .ev = {DATA(TXT, 1, "")}},
    {"binary 0", .fr = {FR(0x82, "")}, .ev = {DATA(BIN, 1, "")}},
    {"text 1", .fr = {FR(0x81, "x")}, .ev = {DATA(TXT, 1, "x")}},
    {"binary 1 (NUL)", .fr = {FR(0x82, "\x00")}, .ev = {DATA(BIN, 1, "\x00")}},
    {"text 5", .fr = {FR(0x81, "Hello")}, .ev = {DATA(TXT, 1, "Hello")}},
    {"text 125", .fr = {FRP(0x81, 125)}, .ev = {DATAP(TXT, 1, 125)}},
    {"binary 125", .fr = {FRP(0x82, 125)}, .ev = {DATAP(BIN, 1, 125)}},
    {"text 126 (16-bit)", .fr = {FRP(0x81, 126)}, .ev = {DATAP(TXT, 1, 126)}},
    {"binary 126 (16-bit)", .fr = {FRP(0x82, 126)}, .ev = {DATAP(BIN, 1, 126)}},
    {"text 65535 (16-bit)", .fr = {FRP(0x81, 65535)}, .ev = {DATAP(TXT, 1, 65535)}},
    {"binary 65535 (16-bit)", .fr = {FRP(0x82, 65535)}, .ev = {DATAP(BIN, 1, 65535)}},
    {"text 65536 (64-bit)", .fr = {FRP(0x81, 65536)}, .ev = {DATAP(TXT, 1, 65536)}},
    {"binary 65536 (64-bit)", .fr = {FRP(0x82, 65536)}, .ev = {DATAP(BIN, 1, 65536)}},
    {"non-minimal 16-bit length accepted", .fr = {FRF(0x81, "Hello", F_LEN16)},
     .ev = {DATA(TXT, 1, "Hello")}},
    {"non-minimal 64-bit length accepted", .fr = {FRPF(0x82, 300, F_LEN64)},
     .ev = {DATAP(BIN, 1, 300)}},
    {"two messages back to back", .fr = {FR(0x81, "Hello"), FR(0x82, "\x01\x02"), FR(0x81, "")},
     .ev = {DATA(TXT, 1, "Hello"), DATA(BIN, 1, "\x01\x02"), DATA(TXT, 1, "")}},
    {"exactly max_message", .max_message = 100, .fr = {FRP(0x82, 100)}, .ev = {DATAP(BIN, 1, 100)}},
    {"control frames do not count against max_message", .max_message = 10,
     .fr = {FRP(0x89, 125), FRP(0x81, 10)}, .ev = {PINGP(125), DATAP(TXT, 1, 10)}},
    {"default max_message: 1 MiB header accepted", RAW("\x82\xFF\x00\x00\x00\x00\x00\x10\x00\x00")},
};

static const struct tvec header_errors[] = {
    {"unmasked text -> 1002", .fr = {FRF(0x81, "Hi", F_UNMASKED)}, E1002(1)},
    {"unmasked empty ping -> 1002", .fr = {FRF(0x89, "", F_UNMASKED)}, E1002(1)},
    {"unmasked frame after a good one -> 1002", .fr = {FR(0x81, "a"), FRF(0x82, "b", F_UNMASKED)},
     .ev = {DATA(TXT, 1, "a")}, E1002(8)},
    {"RSV1 -> 1002", .fr = {FR(0xC1, "Hi")}, E1002(0)},
    {"RSV2 -> 1002", .fr = {FR(0xA1, "Hi")}, E1002(0)},
    {"RSV3 -> 1002", .fr = {FR(0x91, "Hi")}, E1002(0)},
    {"RSV3 on ping -> 1002", .fr = {FR(0x99, "")}, E1002(0)},
    {"RSV1 allowed with allow_rsv1", .allow_rsv1 = 1, .fr = {FR(0xC2, "\x01\x02"), FR(0x81, "ok")},
     .ev = {DATA(BIN, 1, "\x01\x02"), DATA(TXT, 1, "ok")}},
    {"RSV1 text is not UTF-8 checked (compressed)", .allow_rsv1 = 1,
     .fr = {FR(0x41, "\xC0\xAF"), FR(0x80, "\xFF")}, .ev = {DATA(TXT, 1, "\xC0\xAF\xFF")}},
    {"next text after a compressed one is checked again", .allow_rsv1 = 1,
     .fr = {FR(0xC1, "\xFF"), FR(0x81, "a\xFF")}, .ev = {DATA(TXT, 1, "\xFF"), DATA(TXT, 0, "a")},
     E1007(14)},
    {"RSV1 on a continuation -> 1002 even with allow_rsv1", .allow_rsv1 = 1,
     .fr = {FR(0x41, "a"), FR(0xC0, "b")}, .ev = {DATA(TXT, 0, "a")}, E1002(7)},
    {"RSV1 on ping -> 1002 even with allow_rsv1", .allow_rsv1 = 1, .fr = {FR(0xC9, "")}, E1002(0)},
    {"RSV2 -> 1002 even with allow_rsv1", .allow_rsv1 = 1, .fr = {FR(0xA2, "")}, E1002(0)},
    {"RSV3 -> 1002 even with allow_rsv1", .allow_rsv1 = 1, .fr = {FR(0x92, "")}, E1002(0)},
    {"64-bit length with top bit -> 1002", RAW("\x82\xFF\x80\x00\x00\x00\x00\x00\x00\x00"),
     E1002(2)},
    {"64-bit length with top bit, 1 -> 1002", RAW("\x82\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF"),
     E1002(2)},
    {"7-bit length over max_message -> 1009 (header only)", .max_message = 100, RAW("\x81\xE5"),
     E1009(1)},
    {"16-bit length over max_message -> 1009 (header only)", .max_message = 100,
     RAW("\x82\xFE\x00\x65"), E1009(3)},
    {"64-bit length over default max_message -> 1009 (header only)",
     RAW("\x82\xFF\x00\x00\x00\x00\x00\x10\x00\x01"), E1009(9)},
    {"huge 64-bit length -> 1009 (header only)", RAW("\x82\xFF\x7F\xFF\xFF\xFF\xFF\xFF\xFF\xFF"),
     E1009(9)},
    {"fragmented message over max_message -> 1009 at the 2nd header", .max_message = 100,
     .fr = {FRP(0x01, 60), FRP(0x80, 41)}, .ev = {DATAP(TXT, 0, 60)}, E1009(67)},
    {"fragmented message exactly max_message", .max_message = 100,
     .fr = {FRP(0x01, 60), FRP(0x00, 0), FRP(0x80, 40)}, .ev = {DATAP(TXT, 1, 100)}},
    {"fragmented: 3rd frame over max_message -> 1009", .max_message = 100,
     .fr = {FRP(0x02, 50), FRP(0x00, 50), FRP(0x80, 1)}, .ev = {DATAP(BIN, 0, 100)}, E1009(113)},
    {"new message after a full-size one starts from 0", .max_message = 100,
     .fr = {FRP(0x82, 100), FRP(0x81, 100)}, .ev = {DATAP(BIN, 1, 100), DATAP(TXT, 1, 100)}},
    {"control frame len 126 -> 1002", RAW("\x89\xFE\x00\x7E"), E1002(1)},
    {"close frame len 127 -> 1002", RAW("\x88\xFF"), E1002(1)},
    {"ping 125 ok", .fr = {FRP(0x89, 125)}, .ev = {PINGP(125)}},
    {"fragmented ping (FIN=0) -> 1002", .fr = {FR(0x09, "x")}, E1002(0)},
    {"fragmented close (FIN=0) -> 1002", .fr = {FR(0x08, "")}, E1002(0)},
    {"continuation with nothing open -> 1002", .fr = {FR(0x80, "x")}, E1002(0)},
    {"non-final continuation with nothing open -> 1002", .fr = {FR(0x00, "")}, E1002(0)},
    {"continuation after a finished message -> 1002", .fr = {FR(0x81, "a"), FR(0x80, "b")},
     .ev = {DATA(TXT, 1, "a")}, E1002(7)},
    {"new text frame inside an open message -> 1002", .fr = {FR(0x01, "a"), FR(0x81, "b")},
     .ev = {DATA(TXT, 0, "a")}, E1002(7)},
    {"new binary frame inside an open message -> 1002",
     .fr = {FR(0x01, "a"), FR(0x89, ""), FR(0x02, "b")}, .ev = {DATA(TXT, 0, "a"), PING("")},
     E1002(13)},
};

static const struct tvec fragmentation[] = {
    {"text in 3 fragments", .fr = {FR(0x01, "Hel"), FR(0x00, "lo "), FR(0x80, "world")},
     .ev = {DATA(TXT, 1, "Hello world")}},
    {"text in 3 fragments, ping interleaved",
     .fr = {FR(0x01, "Hel"), FR(0x89, "p"), FR(0x00, "lo "), FR(0x80, "world")},
     .ev = {DATA(TXT, 0, "Hel"), PING("p"), DATA(TXT, 1, "lo world")}},
    {"binary fragments, pong and close interleaved, continuation keeps BINARY",
     .fr = {FR(0x02, "ab"), FR(0x8A, ""), FR(0x00, "cd"), FR(0x88, "\x03\xE8"), FR(0x80, "e")},
     .ev = {DATA(BIN, 0, "ab"), PONG(""), DATA(BIN, 0, "cd"), CLOSE(1000, ""), DATA(BIN, 1, "e")}},
    {"empty fragments", .fr = {FR(0x01, ""), FR(0x00, ""), FR(0x80, "")}, .ev = {DATA(TXT, 1, "")}},
    {"ping before and after a fragmented message",
     .fr = {FR(0x89, "1"), FR(0x02, "x"), FR(0x80, "y"), FR(0x89, "2"), FR(0x81, "z")},
     .ev = {PING("1"), DATA(BIN, 1, "xy"), PING("2"), DATA(TXT, 1, "z")}},
    {"big fragments (16/64-bit) with a ping between",
     .fr = {FRP(0x02, 70000), FRP(0x89, 3), FR(0x80, "tail")},
     .ev = {DATAP(BIN, 0, 70000), PINGP(3), DATA(BIN, 1, "tail")}},
};

static const struct tvec utf8[] = {
    {"valid 2/3-byte text", .fr = {FR(0x81, KOSME)}, .ev = {DATA(TXT, 1, KOSME)}},
    {"valid 4-byte text", .fr = {FR(0x81, "\xF0\x9F\x98\x80!")},
     .ev = {DATA(TXT, 1, "\xF0\x9F\x98\x80!")}},
    {"valid edges U+D7FF U+E000 U+FFFF U+10000 U+10FFFF",
     .fr = {FR(0x81, "\xED\x9F\xBF\xEE\x80\x80\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF")},
     .ev = {DATA(TXT, 1, "\xED\x9F\xBF\xEE\x80\x80\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF")}},
    {"3-byte char split across fragments", .fr = {FR(0x01, "\xE2\x82"), FR(0x80, "\xAC")},
     .ev = {DATA(TXT, 1, "\xE2\x82\xAC")}},
    {"4-byte char split across 3 fragments with a ping",
     .fr = {FR(0x01, "\xF0"), FR(0x00, "\x9F\x98"), FR(0x89, ""), FR(0x80, "\x80")},
     .ev = {DATA(TXT, 0, "\xF0\x9F\x98"), PING(""), DATA(TXT, 1, "\x80")}},
    {"overlong '/' C0 AF -> 1007 at C0", .fr = {FR(0x81, "\xC0\xAF")}, E1007(6)},
    {"overlong after text: prefix delivered first", .fr = {FR(0x81, "ab\xC0\xAF")},
     .ev = {DATA(TXT, 0, "ab")}, E1007(8)},
    {"overlong 3-byte E0 80 AF -> 1007 at 80", .fr = {FR(0x81, "\xE0\x80\xAF")},
     .ev = {DATA(TXT, 0, "\xE0")}, E1007(7)},
    {"overlong 4-byte F0 8F BF BF -> 1007 at 8F", .fr = {FR(0x81, "\xF0\x8F\xBF\xBF")},
     .ev = {DATA(TXT, 0, "\xF0")}, E1007(7)},
    {"surrogate ED A0 80 -> 1007 at A0", .fr = {FR(0x81, "a\xED\xA0\x80")},
     .ev = {DATA(TXT, 0, "a\xED")}, E1007(8)},
    {"surrogate ED BF BF -> 1007 at BF", .fr = {FR(0x81, "\xED\xBF\xBF")},
     .ev = {DATA(TXT, 0, "\xED")}, E1007(7)},
    {"F4 90 80 80 (> U+10FFFF) -> 1007 at 90", .fr = {FR(0x81, "\xF4\x90\x80\x80")},
     .ev = {DATA(TXT, 0, "\xF4")}, E1007(7)},
    {"F5 -> 1007", .fr = {FR(0x81, "\xF5\x80\x80\x80")}, E1007(6)},
    {"FE -> 1007", .fr = {FR(0x81, "x\xFE")}, .ev = {DATA(TXT, 0, "x")}, E1007(7)},
    {"lone continuation 80 -> 1007", .fr = {FR(0x81, "\x80")}, E1007(6)},
    {"continuation where a lead is due -> 1007", .fr = {FR(0x81, "\xC3\xA9\xA9")},
     .ev = {DATA(TXT, 0, "\xC3\xA9")}, E1007(8)},
    {"lead where a continuation is due -> 1007", .fr = {FR(0x81, "\xE2\x82\x41")},
     .ev = {DATA(TXT, 0, "\xE2\x82")}, E1007(8)},
    {"truncated sequence at FIN -> 1007 at the last byte", .fr = {FR(0x81, "ab\xE2\x82")},
     .ev = {DATA(TXT, 0, "ab\xE2")}, E1007(9)},
    {"truncated lead at FIN -> 1007", .fr = {FR(0x81, "\xC3")}, E1007(6)},
    {"truncated at an empty final fragment -> 1007 at its last header byte",
     .fr = {FR(0x01, "\xE2\x82"), FR(0x80, "")}, .ev = {DATA(TXT, 0, "\xE2\x82")}, E1007(13)},
    {"truncated 4-byte at FIN, split over fragments",
     .fr = {FR(0x01, "\xF0\x9F"), FR(0x80, "\x98")}, .ev = {DATA(TXT, 0, "\xF0\x9F")}, E1007(14)},
    /* Autobahn 6.4.1: the 2nd fragment holds the bad sequence; the error
     * must come at the 0x90, before the 3rd fragment is sent */
    {"fail fast across fragments (Autobahn 6.4.1)",
     .fr = {FR(0x01, KOSME), FR(0x00, "\xF4\x90\x80\x80"), FR(0x80, "edited")},
     .ev = {DATA(TXT, 0, KOSME "\xF4")}, E1007(24)},
    {"fail fast in the middle of a frame",
     .fr = {FR(0x81, "abc\xFF"
                     "def")},
     .ev = {DATA(TXT, 0, "abc")}, E1007(9)},
    {"fail fast in a 16-bit frame", .fr = {FR(0x81, R123 R10 "\xC0" R10)},
     .ev = {DATA(TXT, 0, R123 R10)}, E1007(8 + 133)},
    {"binary is not UTF-8 checked", .fr = {FR(0x82, "\xC0\xAF\xFF\xED\xA0\x80")},
     .ev = {DATA(BIN, 1, "\xC0\xAF\xFF\xED\xA0\x80")}},
};

static const struct tvec control[] = {
    {"close, empty payload -> 1005 reported", .fr = {FR(0x88, "")}, .ev = {CLOSE(1005, "")}},
    {"close, 1-byte payload -> 1002", .fr = {FR(0x88, "\x03")}, E1002(6)},
    /* a decoder reading ctl[1] anyway would see 03 E8 = 1000 here */
    {"close, 1-byte payload after a ping -> 1002", .fr = {FR(0x89, "\x03\xE8"), FR(0x88, "\x03")},
     .ev = {PING("\x03\xE8")}, E1002(14)},
    {"close 1000 + reason",
     .fr = {FR(0x88, "\x03\xE8"
                     "bye")},
     .ev = {CLOSE(1000, "bye")}},
    {"close, 123-byte reason", .fr = {FR(0x88, "\x0F\xA0" R123)}, .ev = {CLOSE(4000, R123)}},
    {"close, UTF-8 reason", .fr = {FR(0x88, "\x03\xE9" KOSME)}, .ev = {CLOSE(1001, KOSME)}},
    {"close, invalid UTF-8 reason -> 1007",
     .fr = {FR(0x88, "\x03\xE8"
                     "a\xC0\xAF")},
     E1007(10)},
    {"close, truncated UTF-8 reason -> 1007", .fr = {FR(0x88, "\x03\xE8\xE2\x82")}, E1007(9)},
    {"close, surrogate in reason -> 1007", .fr = {FR(0x88, "\x03\xE8\xED\xA0\x80")}, E1007(10)},
    {"close, invalid code with valid reason -> 1002",
     .fr = {FR(0x88, "\x03\xED"
                     "x")},
     E1002(8)},
    {"ping payload", .fr = {FR(0x89, "hello")}, .ev = {PING("hello")}},
    {"ping binary payload", .fr = {FR(0x89, "\x00\xFF\xC0")}, .ev = {PING("\x00\xFF\xC0")}},
    {"ping empty", .fr = {FR(0x89, "")}, .ev = {PING("")}},
    {"pong", .fr = {FR(0x8A, "x")}, .ev = {PONG("x")}},
    {"two pings then text", .fr = {FR(0x89, "a"), FR(0x89, "bc"), FR(0x81, "t")},
     .ev = {PING("a"), PING("bc"), DATA(TXT, 1, "t")}},
};

/* ---- tests ---- */

static void test_lengths(void **state)
{
    (void)state;
    RUN_TABLE(lengths);
}

static void test_header_errors(void **state)
{
    (void)state;
    RUN_TABLE(header_errors);
}

static void test_reserved_opcodes(void **state)
{
    static const int ops[] = {3, 4, 5, 6, 7, 11, 12, 13, 14, 15};
    char name[64];

    (void)state;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        struct tvec v = {name, .fr = {FR(0x80 | ops[i], "x")}, E1002(0)};
        struct tvec after = {name, .fr = {FR(0x01, "a"), FR(0x80 | ops[i], "")},
                             .ev = {DATA(TXT, 0, "a")}, E1002(7)};
        snprintf(name, sizeof name, "opcode %d -> 1002", ops[i]);
        run_vec(&v);
        snprintf(name, sizeof name, "opcode %d inside a message -> 1002", ops[i]);
        run_vec(&after);
    }
}

static void test_fragmentation(void **state)
{
    (void)state;
    RUN_TABLE(fragmentation);
}

static void test_utf8_stream(void **state)
{
    (void)state;
    RUN_TABLE(utf8);
}

static void test_control(void **state)
{
    (void)state;
    RUN_TABLE(control);
}

static void test_close_codes(void **state)
{
    static const int good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                               1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    static const int bad[] = {0,    1,    999,  1004, 1005, 1006, 1015,
                              1016, 1100, 2000, 2999, 5000, 65535};
    char name[64], pay[2];

    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct tvec v = {name, .fr = {{.set = 1, .b0 = 0x88, .len = 2, .pay = pay}},
                         .ev = {CLOSE(good[i], "")}};
        pay[0] = (char)(good[i] >> 8);
        pay[1] = (char)good[i];
        snprintf(name, sizeof name, "close %d ok", good[i]);
        run_vec(&v);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct tvec v = {name, .fr = {{.set = 1, .b0 = 0x88, .len = 2, .pay = pay}}, E1002(7)};
        pay[0] = (char)(bad[i] >> 8);
        pay[1] = (char)bad[i];
        snprintf(name, sizeof name, "close %d -> 1002", bad[i]);
        run_vec(&v);
    }
}

/* Every data frame, even empty and non-final, gives its own DATA event with
 * the frame's fin, and it comes with the frame's last header byte. */
static void test_empty_frames_raw(void **state)
{
    static const struct tvec v = {"3 empty fragments, empty binary",
                                  .fr = {FR(0x01, ""), FR(0x00, ""), FR(0x80, ""), FR(0x82, "")}};
    static const int fins[] = {0, 0, 1, 1}, ops[] = {TXT, TXT, TXT, BIN};
    uint8_t buf[64];
    size_t n = build(&v, buf);
    struct sg_ws_dec d;
    struct sg_ws_event ev;
    ssize_t r;
    size_t pos = 0, k = 0;

    (void)state;
    assert_int_equal(n, 24);
    /* whole */
    sg_ws_dec_init(&d, NULL);
    while ((r = sg_ws_decode(&d, buf + pos, n - pos, &ev)) > 0 && ev.type != SG_WS_EV_NONE) {
        assert_int_equal(r, 6);
        assert_int_equal(ev.type, SG_WS_EV_DATA);
        assert_int_equal(ev.len, 0);
        assert_non_null(ev.data);
        assert_int_equal(ev.fin, fins[k]);
        assert_int_equal(ev.opcode, ops[k]);
        k++;
        pos += (size_t)r;
    }
    assert_int_equal(k, 4);
    assert_int_equal(pos, n);
    assert_int_equal(r, 0);
    assert_int_equal(ev.type, SG_WS_EV_NONE);
    /* one byte at a time: the event comes with byte 5 of each frame */
    build(&v, buf);
    sg_ws_dec_init(&d, NULL);
    for (size_t i = 0; i < n; i++) {
        r = sg_ws_decode(&d, buf + i, 1, &ev);
        assert_int_equal(r, 1);
        assert_int_equal(ev.type, i % 6 == 5 ? SG_WS_EV_DATA : SG_WS_EV_NONE);
        if (ev.type == SG_WS_EV_DATA) assert_int_equal(ev.fin, fins[i / 6]);
        /* nothing pending: an empty call gives NONE */
        r = sg_ws_decode(&d, buf + i + 1, 0, &ev);
        assert_int_equal(r, 0);
        assert_int_equal(ev.type, SG_WS_EV_NONE);
    }
}

/* Payload is unmasked in place; control frames and the bytes after a
 * delivered UTF-8 prefix are left as they came. */
static void test_in_place(void **state)
{
    static const struct tvec v = {"in place", .fr = {FR(0x81, "Hello"), FR(0x89, "ping")}};
    static const struct tvec bad = {"bad", .fr = {FR(0x81, "abcd\xFF"
                                                           "efgh")}};
    uint8_t buf[64], orig[64];
    size_t n = build(&v, buf);
    struct sg_ws_dec d;
    struct sg_ws_event ev;
    ssize_t r;

    (void)state;
    memcpy(orig, buf, n);
    sg_ws_dec_init(&d, NULL);
    r = sg_ws_decode(&d, buf, n, &ev);
    assert_int_equal(r, 11);
    assert_ptr_equal(ev.data, buf + 6);
    assert_memory_equal(buf + 6, "Hello", 5);
    assert_memory_equal(buf, orig, 6); /* header untouched */
    r = sg_ws_decode(&d, buf + 11, n - 11, &ev);
    assert_int_equal(r, 10);
    assert_int_equal(ev.type, SG_WS_EV_PING);
    assert_memory_equal(ev.data, "ping", 4);
    assert_memory_equal(buf + 11, orig + 11, 10); /* control bytes untouched */

    n = build(&bad, buf);
    memcpy(orig, buf, n);
    sg_ws_dec_init(&d, NULL);
    r = sg_ws_decode(&d, buf, n, &ev);
    assert_int_equal(r, 10);
    assert_int_equal(ev.type, SG_WS_EV_DATA);
    assert_int_equal(ev.fin, 0);
    assert_memory_equal(ev.data, "abcd", 4);
    assert_memory_equal(buf + 10, orig + 10, n - 10); /* still masked */
    r = sg_ws_decode(&d, buf + 10, n - 10, &ev);
    assert_int_equal(r, SG_EUTF8);
    assert_int_equal(d.close_code, 1007);
}

/* sg_ws_dec_set_max_message mid-stream (stompgate raises the bound once the
 * STOMP session is CONNECTED). A frame's size is checked at its header, so
 * a change applies from the next frame header on. */
static const struct tvec set_max[] = {
    {"raised before any input", .max_message = 100, .set = 1, .set_max = 300, .set_at = 0,
     .fr = {FRP(0x82, 200)}, .ev = {DATAP(BIN, 1, 200)}},
    {"not raised: the same message is 1009", .max_message = 100, .fr = {FRP(0x82, 200)}, E1009(3)},
    {"raised between messages", .max_message = 100, .set = 1, .set_max = 300, .set_at = 106,
     .fr = {FRP(0x82, 100), FRP(0x82, 200)}, .ev = {DATAP(BIN, 1, 100), DATAP(BIN, 1, 200)}},
    {"raised inside a fragmented message", .max_message = 100, .set = 1, .set_max = 200,
     .set_at = 86, .fr = {FRP(0x02, 80), FRP(0x80, 100)}, .ev = {DATAP(BIN, 1, 180)}},
    {"lowered below what the open message holds: 1009 at the next header", .max_message = 100,
     .set = 1, .set_max = 50, .set_at = 86, .fr = {FRP(0x02, 80), FRP(0x80, 10)},
     .ev = {DATAP(BIN, 0, 80)}, E1009(87)},
    {"lowered mid-frame: the frame goes on, the next header counts", .max_message = 100, .set = 1,
     .set_max = 85, .set_at = 40, .fr = {FRP(0x01, 80), FRP(0x80, 10)}, .ev = {DATAP(TXT, 0, 80)},
     E1009(87)},
    {"lowered between messages", .max_message = 1000, .set = 1, .set_max = 10, .set_at = 106,
     .fr = {FRP(0x82, 100), FRP(0x82, 11)}, .ev = {DATAP(BIN, 1, 100)}, E1009(107)},
    {"0 is the default (1 MiB)", .max_message = 100, .set = 1, .set_max = 0, .set_at = 0,
     .fr = {FRP(0x82, 65536)}, .ev = {DATAP(BIN, 1, 65536)}},
    {"control frames never count", .max_message = 100, .set = 1, .set_max = 1, .set_at = 0,
     .fr = {FRP(0x89, 125), FR(0x81, "x")}, .ev = {PINGP(125), DATA(TXT, 1, "x")}},
};

static void test_set_max_message(void **state)
{
    struct sg_ws_dec d;

    (void)state;
    RUN_TABLE(set_max);
    sg_ws_dec_init(&d, NULL);
    sg_ws_dec_set_max_message(&d, 7);
    assert_int_equal(d.lim.max_message, 7);
    sg_ws_dec_set_max_message(&d, 0);
    assert_int_equal(d.lim.max_message, 1 << 20);
}

static void test_init_defaults(void **state)
{
    struct sg_ws_dec d;
    struct sg_ws_limits lim = {.max_message = 0, .allow_rsv1 = 0};

    (void)state;
    sg_ws_dec_init(&d, NULL);
    assert_int_equal(d.lim.max_message, 1 << 20);
    assert_int_equal(d.lim.allow_rsv1, 0);
    sg_ws_dec_init(&d, &lim);
    assert_int_equal(d.lim.max_message, 1 << 20);
    lim.max_message = 7;
    sg_ws_dec_init(&d, &lim);
    assert_int_equal(d.lim.max_message, 7);
}

/* A 64 KiB text message of 1-4 byte characters fed in 997-byte chops: the
 * chops cut characters and the mask cycle anywhere. */
static void run_chops(const uint8_t *stream, size_t n, const uint8_t *text, size_t tlen,
                      size_t bad_at, int pings)
{
    uint8_t *buf = malloc(n), *got = malloc(tlen);
    struct sg_ws_dec d;
    size_t got_len = 0, fins = 0, pos = 0, nping = 0;
    int err = 0;

    assert_non_null(buf);
    assert_non_null(got);
    memcpy(buf, stream, n);
    sg_ws_dec_init(&d, NULL);
    while (pos < n && !err) {
        size_t end = pos + 997 < n ? pos + 997 : n, p = pos;
        for (;;) {
            struct sg_ws_event ev;
            ssize_t r = sg_ws_decode(&d, buf + p, end - p, &ev);
            if (r < 0) {
                err = (int)r;
                /* the chop that failed holds the bad byte */
                assert_true(p <= bad_at && bad_at < end);
                break;
            }
            p += (size_t)r;
            if (ev.type == SG_WS_EV_NONE) break;
            if (ev.type == SG_WS_EV_PING) {
                nping++;
                continue;
            }
            assert_int_equal(ev.type, SG_WS_EV_DATA);
            assert_int_equal(ev.opcode, SG_WS_OP_TEXT);
            assert_true(got_len + ev.len <= tlen);
            memcpy(got + got_len, ev.data, ev.len);
            got_len += ev.len;
            fins += (size_t)ev.fin;
        }
        pos = end;
    }
    if (bad_at == SIZE_MAX) {
        assert_int_equal(err, 0);
        assert_int_equal(got_len, tlen);
        assert_memory_equal(got, text, tlen);
        assert_int_equal(fins, 1);
        assert_int_equal(nping, pings);
    } else {
        assert_int_equal(err, SG_EUTF8);
        assert_int_equal(d.close_code, 1007);
        assert_int_equal(fins, 0);
        assert_true(got_len < tlen);
        assert_memory_equal(got, text, got_len);
    }
    free(buf);
    free(got);
}

static void test_64k_chops(void **state)
{
    static const char *chars[] = {"a", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80"};
    const size_t tlen = 65536;
    uint8_t *text = malloc(tlen), *stream = malloc(tlen + 200), key[4] = {0xA1, 0x5E, 0x07, 0xFF};
    size_t t = 0, n, c = 0, cut[5] = {0, 10001, 10001, 40000, tlen};

    (void)state;
    assert_non_null(text);
    assert_non_null(stream);
    while (t < tlen) {
        const char *ch = chars[c++ % 4];
        size_t l = strlen(ch);
        if (t + l > tlen) ch = "a", l = 1;
        memcpy(text + t, ch, l);
        t += l;
    }
    assert_true(sg_utf8_valid(text, tlen));

    /* one frame, 64-bit length */
    n = 0;
    stream[n++] = 0x81;
    stream[n++] = 0x80 | 127;
    for (int i = 0; i < 8; i++)
        stream[n++] = (uint8_t)((uint64_t)tlen >> (56 - 8 * i));
    memcpy(stream + n, key, 4);
    n += 4;
    for (size_t i = 0; i < tlen; i++)
        stream[n + i] = text[i] ^ key[i & 3];
    run_chops(stream, n + tlen, text, tlen, SIZE_MAX, 0);

    /* four fragments (one empty) with a ping before each continuation */
    n = 0;
    for (int f = 0; f < 4; f++) {
        size_t l = cut[f + 1] - cut[f];
        if (f > 0) {
            memcpy(stream + n, "\x89\x81\x01\x02\x03\x04\x6B", 7); /* ping "j" */
            n += 7;
        }
        stream[n++] = (uint8_t)((f == 0 ? 0x01 : 0x00) | (f == 3 ? 0x80 : 0));
        if (l < 126) {
            stream[n++] = (uint8_t)(0x80 | l);
        } else {
            stream[n++] = 0x80 | 126;
            stream[n++] = (uint8_t)(l >> 8);
            stream[n++] = (uint8_t)l;
        }
        memcpy(stream + n, key, 4);
        n += 4;
        for (size_t i = 0; i < l; i++)
            stream[n + i] = text[cut[f] + i] ^ key[i & 3];
        n += l;
    }
    run_chops(stream, n, text, tlen, SIZE_MAX, 3);

    /* the same single frame with one surrogate sequence in the middle: the
     * error comes in the chop holding the A0 byte */
    memcpy(text + 50000, "\xED\xA0\x80", 3);
    n = 0;
    stream[n++] = 0x81;
    stream[n++] = 0x80 | 127;
    for (int i = 0; i < 8; i++)
        stream[n++] = (uint8_t)((uint64_t)tlen >> (56 - 8 * i));
    memcpy(stream + n, key, 4);
    n += 4;
    for (size_t i = 0; i < tlen; i++)
        stream[n + i] = text[i] ^ key[i & 3];
    run_chops(stream, n + tlen, text, tlen, n + 50001, 0);
    free(text);
    free(stream);
}

static void test_frame_header(void **state)
{
    static const struct {
        int opcode, fin;
        uint64_t len;
        size_t n;
        const char *bytes;
    } t[] = {
        {SG_WS_OP_TEXT, 1, 0, 2, "\x81\x00"},
        {SG_WS_OP_BINARY, 1, 1, 2, "\x82\x01"},
        {SG_WS_OP_TEXT, 1, 125, 2, "\x81\x7D"},
        {SG_WS_OP_TEXT, 1, 126, 4, "\x81\x7E\x00\x7E"},
        {SG_WS_OP_BINARY, 1, 65535, 4, "\x82\x7E\xFF\xFF"},
        {SG_WS_OP_BINARY, 1, 65536, 10, "\x82\x7F\x00\x00\x00\x00\x00\x01\x00\x00"},
        {SG_WS_OP_TEXT, 0, 0x0102030405060708ull, 10, "\x01\x7F\x01\x02\x03\x04\x05\x06\x07\x08"},
        {SG_WS_OP_CONT, 0, 3, 2, "\x00\x03"},
        {SG_WS_OP_CONT, 1, 300, 4, "\x80\x7E\x01\x2C"},
        {SG_WS_OP_PONG, 1, 5, 2, "\x8A\x05"},
        {SG_WS_OP_PING, 7, 0, 2, "\x89\x00"}, /* any nonzero fin sets FIN */
        {SG_WS_OP_CLOSE, 1, 2, 2, "\x88\x02"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        uint8_t out[10];
        memset(out, 0xEE, sizeof out);
        assert_int_equal(sg_ws_frame_header(out, t[i].opcode, t[i].fin, t[i].len), t[i].n);
        assert_memory_equal(out, t[i].bytes, t[i].n);
    }
}

/* A server frame, masked the way a client would, decodes to the same thing. */
static void roundtrip_close(const uint8_t *frame, size_t n, int code, const char *reason)
{
    uint8_t buf[140], key[4] = {9, 8, 7, 6};
    struct sg_ws_dec d;
    struct sg_ws_event ev;
    size_t pay = n - 2;

    assert_true(n >= 2 && frame[1] < 126);
    buf[0] = frame[0];
    buf[1] = 0x80 | frame[1];
    memcpy(buf + 2, key, 4);
    for (size_t i = 0; i < pay; i++)
        buf[6 + i] = frame[2 + i] ^ key[i & 3];
    sg_ws_dec_init(&d, NULL);
    assert_int_equal(sg_ws_decode(&d, buf, pay + 6, &ev), (ssize_t)(pay + 6));
    assert_int_equal(ev.type, SG_WS_EV_CLOSE);
    assert_int_equal(ev.close_code, code);
    assert_int_equal(ev.len, strlen(reason));
    assert_memory_equal(ev.data, reason, ev.len);
}

static void test_close_frame(void **state)
{
    char reason[300], want[130];
    uint8_t out[127 + 16];
    size_t n;

    (void)state;
    n = sg_ws_close_frame(out, 0, "ignored");
    assert_int_equal(n, 2);
    assert_memory_equal(out, "\x88\x00", 2);
    roundtrip_close(out, n, 1005, "");

    n = sg_ws_close_frame(out, 1000, "bye");
    assert_int_equal(n, 7);
    assert_memory_equal(out,
                        "\x88\x05\x03\xE8"
                        "bye",
                        7);
    roundtrip_close(out, n, 1000, "bye");

    n = sg_ws_close_frame(out, 1002, NULL);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "\x88\x02\x03\xEA", 4);

    n = sg_ws_close_frame(out, 4999, "");
    assert_int_equal(n, 4);
    assert_memory_equal(out, "\x88\x02\x13\x87", 4);

    /* 200 ASCII bytes: cut to 123, frame of exactly 127 */
    memset(reason, 'r', 200);
    reason[200] = 0;
    memset(out, 0xEE, sizeof out);
    n = sg_ws_close_frame(out, 1009, reason);
    assert_int_equal(n, 127);
    assert_int_equal(out[1], 125);
    assert_memory_equal(out + 2, "\x03\xF1", 2);
    assert_memory_equal(out + 4, reason, 123);
    assert_int_equal(out[127], 0xEE); /* no overrun */
    memcpy(want, reason, 123);
    want[123] = 0;
    roundtrip_close(out, n, 1009, want);

    /* exactly 123 */
    reason[123] = 0;
    assert_int_equal(sg_ws_close_frame(out, 1000, reason), 127);

    /* 122 + a 2-byte char: the char would end at 124 -> dropped */
    memset(reason, 'a', 122);
    strcpy(reason + 122, "\xC3\xA9tail");
    n = sg_ws_close_frame(out, 1011, reason);
    assert_int_equal(n, 4 + 122);
    assert_int_equal(out[1], 124);
    reason[122] = 0;
    roundtrip_close(out, n, 1011, reason);

    /* 121 + a 3-byte char: the char would end at 124 -> dropped */
    memset(reason, 'a', 121);
    strcpy(reason + 121, "\xE2\x82\xAC");
    assert_int_equal(sg_ws_close_frame(out, 1000, reason), 4 + 121);

    /* 120 + a 3-byte char ends exactly at 123 -> kept */
    memset(reason, 'a', 120);
    strcpy(reason + 120, "\xE2\x82\xAC"
                         "more");
    n = sg_ws_close_frame(out, 1000, reason);
    assert_int_equal(n, 127);
    assert_memory_equal(out + 4 + 120, "\xE2\x82\xAC", 3);
    reason[123] = 0;
    roundtrip_close(out, n, 1000, reason);

    /* 119 + a 4-byte char ends at 123 -> kept; 120 + 4-byte -> dropped */
    memset(reason, 'a', 119);
    strcpy(reason + 119, "\xF0\x9F\x98\x80");
    assert_int_equal(sg_ws_close_frame(out, 1000, reason), 127);
    memset(reason, 'a', 120);
    strcpy(reason + 120, "\xF0\x9F\x98\x80");
    assert_int_equal(sg_ws_close_frame(out, 1000, reason), 4 + 120);

    /* an invalid reason is cut before the bad byte, never sent as is */
    n = sg_ws_close_frame(out, 1000,
                          "ab\xFF"
                          "cd");
    assert_int_equal(n, 6);
    assert_memory_equal(out + 4, "ab", 2);
    n = sg_ws_close_frame(out, 1000, "ab\xE2\x82");
    assert_int_equal(n, 6);
    roundtrip_close(out, n, 1000, "ab");
}

static void test_close_code_valid(void **state)
{
    static const struct {
        int code, ok;
    } t[] = {
        {-1, 0},   {0, 0},    {1, 0},    {999, 0},   {1000, 1},         {1001, 1}, {1002, 1},
        {1003, 1}, {1004, 0}, {1005, 0}, {1006, 0},  {1007, 1},         {1008, 1}, {1009, 1},
        {1010, 1}, {1011, 1}, {1012, 1}, {1013, 1},  {1014, 1},         {1015, 0}, {1016, 0},
        {1100, 0}, {2000, 0}, {2999, 0}, {3000, 1},  {3001, 1},         {3999, 1}, {4000, 1},
        {4500, 1}, {4999, 1}, {5000, 0}, {65535, 0}, {65536 + 1000, 0},
    };
    int count = 0;

    (void)state;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (sg_ws_close_code_valid(t[i].code) != t[i].ok)
            fail_msg("close code %d: expected %d", t[i].code, t[i].ok);
    for (int c = 0; c < 70000; c++)
        count += sg_ws_close_code_valid(c);
    assert_int_equal(count, 4 + 8 + 2000);
}

/* ---- UTF-8 validator ---- */

static const struct {
    const char *s;
    size_t len;
    int ok;
    size_t bad_at; /* invalid: index where the state turns REJECT; len: only at the end */
} utf8_table[] = {
#define U_OK(s)                                                                                    \
    {                                                                                              \
        (s), sizeof(s) - 1, 1, 0                                                                   \
    }
#define U_BAD(s, at)                                                                               \
    {                                                                                              \
        (s), sizeof(s) - 1, 0, (at)                                                                \
    }
    U_OK(""),
    U_OK("hello, world"),
    U_OK("\x00\x7F"),
    U_OK("\xC2\x80"),
    U_OK("\xC3\xA9"),
    U_OK("\xDF\xBF"),
    U_OK("\xE0\xA0\x80"),
    U_OK("\xE2\x82\xAC"),
    U_OK("\xED\x9F\xBF"),
    U_OK("\xEE\x80\x80"),
    U_OK("\xEF\xBF\xBF"),
    U_OK("\xF0\x90\x80\x80"),
    U_OK("\xF0\x9F\x98\x80"),
    U_OK("\xF3\xBF\xBF\xBF"),
    U_OK("\xF4\x8F\xBF\xBF"),
    U_OK(KOSME),
    U_OK("0123456789abcdef0123456789abcdef\xC3\xA9 ascii run after"),
    U_BAD("\xC0\xAF", 0),
    U_BAD("\xC1\xBF", 0),
    U_BAD("\xE0\x80\xAF", 1),
    U_BAD("\xE0\x9F\xBF", 1),
    U_BAD("\xF0\x80\x80\xAF", 1),
    U_BAD("\xF0\x8F\xBF\xBF", 1),
    U_BAD("\xED\xA0\x80", 1),
    U_BAD("\xED\xAD\xBF", 1),
    U_BAD("\xED\xBF\xBF", 1),
    U_BAD("\xED\xA0\x80\xED\xB0\x80", 1),
    U_BAD("\xF4\x90\x80\x80", 1),
    U_BAD("\xF4\xBF\xBF\xBF", 1),
    U_BAD("\xF5\x80\x80\x80", 0),
    U_BAD("\xF7\xBF\xBF\xBF", 0),
    U_BAD("\xF8\x88\x80\x80\x80", 0),
    U_BAD("\xFC\x84\x80\x80\x80\x80", 0),
    U_BAD("\xFE", 0),
    U_BAD("\xFF", 0),
    U_BAD("\x80", 0),
    U_BAD("\xBF", 0),
    U_BAD("abc\x80", 3),
    U_BAD("\xC3\xA9\xA9", 2),
    U_BAD("\xE2\x82\x41", 2),
    U_BAD("\xF0\x9F\x98\x41", 3),
    U_BAD("\xC3", 1), /* truncated: never REJECT, just not ACCEPT */
    U_BAD("\xE2\x82", 2),
    U_BAD("\xF0\x9F\x98", 3),
    U_BAD("ok\xF4", 3),
    U_BAD(KOSME "\xED\xA0\x80"
                "edited",
          12),
    U_BAD("0123456789abcdef0123456789abcdef\xFF", 32),
#undef U_OK
#undef U_BAD
};

static void test_utf8_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof utf8_table / sizeof utf8_table[0]; i++) {
        const uint8_t *p = (const uint8_t *)utf8_table[i].s;
        size_t len = utf8_table[i].len;
        uint32_t s = SG_UTF8_ACCEPT;

        if (sg_utf8_valid(p, len) != utf8_table[i].ok) fail_msg("utf8 table %zu: whole", i);
        /* split in two anywhere */
        for (size_t k = 0; k <= len; k++) {
            uint32_t a = sg_utf8_validate(SG_UTF8_ACCEPT, p, k);
            a = sg_utf8_validate(a, p + k, len - k);
            if ((a == SG_UTF8_ACCEPT) != utf8_table[i].ok)
                fail_msg("utf8 table %zu: split %zu", i, k);
        }
        /* one byte at a time: REJECT exactly at the offending byte, sticky */
        for (size_t k = 0; k < len; k++) {
            s = sg_utf8_validate(s, p + k, 1);
            if ((s == SG_UTF8_REJECT) != (!utf8_table[i].ok && k >= utf8_table[i].bad_at))
                fail_msg("utf8 table %zu: byte %zu state %u", i, k, s);
        }
        if (!utf8_table[i].ok) assert_int_not_equal(s, SG_UTF8_ACCEPT);
    }
    /* REJECT is sticky, even with no input or valid input */
    assert_int_equal(sg_utf8_validate(SG_UTF8_REJECT, NULL, 0), SG_UTF8_REJECT);
    assert_int_equal(sg_utf8_validate(SG_UTF8_REJECT, (const uint8_t *)"a", 1), SG_UTF8_REJECT);
    /* a bad byte inside a long ASCII chunk is found (fast path) */
    {
        uint8_t buf[100];
        for (size_t k = 0; k < sizeof buf; k++) {
            memset(buf, 'x', sizeof buf);
            buf[k] = 0x80;
            assert_false(sg_utf8_valid(buf, sizeof buf));
            assert_int_equal(sg_utf8_validate(SG_UTF8_ACCEPT, buf, k), SG_UTF8_ACCEPT);
        }
    }
}

/* Reference: decode by the definition (RFC 3629 section 3). */
static int ref_utf8_valid(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n;
        if (p[i] < 0x80)
            n = 1, cp = p[i];
        else if ((p[i] & 0xE0) == 0xC0)
            n = 2, cp = p[i] & 0x1F;
        else if ((p[i] & 0xF0) == 0xE0)
            n = 3, cp = p[i] & 0x0F;
        else if ((p[i] & 0xF8) == 0xF0)
            n = 4, cp = p[i] & 0x07;
        else
            return 0;
        if (i + n > len) return 0;
        for (size_t k = 1; k < n; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000)) return 0;
        i += n;
    }
    return 1;
}

static size_t encode(uint32_t cp, uint8_t *o, size_t n) /* n: forced length (overlongs) */
{
    if (n == 1) {
        o[0] = (uint8_t)cp;
    } else if (n == 2) {
        o[0] = (uint8_t)(0xC0 | (cp >> 6));
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
    } else if (n == 3) {
        o[0] = (uint8_t)(0xE0 | (cp >> 12));
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
    } else {
        o[0] = (uint8_t)(0xF0 | (cp >> 18));
        o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    }
    return n;
}

/* Every code point in its shortest form, surrogates, overlongs and
 * > U+10FFFF; and every 1-, 2- and 3-byte string against the reference. */
static void test_utf8_exhaustive(void **state)
{
    uint8_t b[4];

    (void)state;
    for (uint32_t cp = 0; cp <= 0x1FFFFF; cp++) {
        size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        int ok = cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
        encode(cp, b, n);
        if (sg_utf8_valid(b, n) != ok) fail_msg("U+%04X", cp);
        /* every longer (overlong) form is invalid */
        for (size_t m = n + 1; m <= 4 && n < 4; m++)
            if (sg_utf8_valid(b, encode(cp, b, m))) fail_msg("overlong U+%04X in %zu", cp, m);
    }
    for (uint32_t v = 0; v < (1u << 24); v++) {
        b[0] = (uint8_t)(v >> 16);
        b[1] = (uint8_t)(v >> 8);
        b[2] = (uint8_t)v;
        if (v < 256 && sg_utf8_valid(b + 2, 1) != ref_utf8_valid(b + 2, 1)) fail_msg("1: %06x", v);
        if (v < 65536 && sg_utf8_valid(b + 1, 2) != ref_utf8_valid(b + 1, 2))
            fail_msg("2: %06x", v);
        if (sg_utf8_valid(b, 3) != ref_utf8_valid(b, 3)) fail_msg("3: %06x", v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lengths),          cmocka_unit_test(test_header_errors),
        cmocka_unit_test(test_reserved_opcodes), cmocka_unit_test(test_fragmentation),
        cmocka_unit_test(test_utf8_stream),      cmocka_unit_test(test_control),
        cmocka_unit_test(test_close_codes),      cmocka_unit_test(test_empty_frames_raw),
        cmocka_unit_test(test_in_place),         cmocka_unit_test(test_init_defaults),
        cmocka_unit_test(test_set_max_message),  cmocka_unit_test(test_64k_chops),
        cmocka_unit_test(test_frame_header),     cmocka_unit_test(test_close_frame),
        cmocka_unit_test(test_close_code_valid), cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_utf8_exhaustive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
