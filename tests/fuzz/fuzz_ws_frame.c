/* fuzz_ws_frame.c - libFuzzer target for the RFC 6455 frame decoder (and
 * the UTF-8 validator and encoders). Plain C, no libFuzzer-only API: the
 * gcc build links it with tests/fuzz/replay_main.c to replay the corpus.
 *
 * Input: byte 0 picks how the stream is split (0-127: fixed chunks of
 * byte0 + 1 bytes; 128-255: pseudo-random chunks of 1..16 seeded by it),
 * byte 1 the limits (bit 0 allow_rsv1, bits 1-3 max_message), the rest is
 * the client byte stream. The stream is decoded whole, in those chunks and
 * one byte at a time; the normalized events (DATA chunks of a message
 * merged), the error, the close code and the offending byte must agree,
 * and every event must respect the header's contract.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "ws_frame.h"

#define FUZZ_CHECK(c)                                                                              \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct fz_ev {
    int type, opcode, fin, close_code;
    size_t off, len;
};

struct fz_run {
    struct fz_ev *ev;
    size_t nev;
    uint8_t *data;
    size_t data_len;
    int err, close_code;
    size_t err_lo, err_hi; /* input range of the failing call */
    /* per-message checks */
    uint64_t msg_len, max_message;
    int check_utf8;
    uint32_t utf8;
};

/* Reference validator written from the definition (RFC 3629 section 3). */
static int fz_ref_utf8(const uint8_t *p, size_t len)
{
    size_t i = 0;

    while (i < len) {
        uint32_t cp;
        size_t n;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        if ((p[i] & 0xE0) == 0xC0)
            n = 2, cp = p[i] & 0x1F;
        else if ((p[i] & 0xF0) == 0xE0)
            n = 3, cp = p[i] & 0x0F;
        else if ((p[i] & 0xF8) == 0xF0)
            n = 4, cp = p[i] & 0x07;
        else
            return 0;
        if (len - i < n) return 0;
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

static void fz_record(struct fz_run *r, const struct sg_ws_event *ev)
{
    struct fz_ev *last = r->nev ? &r->ev[r->nev - 1] : NULL;

    if (ev->type == SG_WS_EV_DATA) {
        /* the sum of a message's DATA never exceeds max_message */
        r->msg_len += ev->len;
        FUZZ_CHECK(r->msg_len <= r->max_message);
        if (r->check_utf8 && ev->opcode == SG_WS_OP_TEXT) {
            /* text is valid so far at every chunk, and complete at fin */
            r->utf8 = sg_utf8_validate(r->utf8, ev->data, ev->len);
            FUZZ_CHECK(r->utf8 != SG_UTF8_REJECT);
            if (ev->fin) FUZZ_CHECK(r->utf8 == SG_UTF8_ACCEPT);
        }
        if (ev->fin) {
            r->msg_len = 0;
            r->utf8 = SG_UTF8_ACCEPT;
        }
    }
    if (ev->type == SG_WS_EV_DATA && last && last->type == SG_WS_EV_DATA && !last->fin) {
        FUZZ_CHECK(last->opcode == ev->opcode);
        last->len += ev->len;
        last->fin = ev->fin;
    } else {
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

static void fz_check_event(const struct sg_ws_event *ev, const uint8_t *in, size_t n)
{
    switch (ev->type) {
    case SG_WS_EV_DATA:
        FUZZ_CHECK(ev->opcode == SG_WS_OP_TEXT || ev->opcode == SG_WS_OP_BINARY);
        FUZZ_CHECK(ev->fin == 0 || ev->fin == 1);
        FUZZ_CHECK(ev->close_code == 0);
        FUZZ_CHECK(ev->len <= n && ev->data == in + n - ev->len);
        break;
    case SG_WS_EV_PING:
    case SG_WS_EV_PONG:
        FUZZ_CHECK(ev->close_code == 0);
        /* fall through */
    case SG_WS_EV_CLOSE:
        FUZZ_CHECK(ev->data != NULL && ev->len <= 125 && ev->fin == 1);
        break;
    default:
        FUZZ_CHECK(0);
    }
    if (ev->type == SG_WS_EV_CLOSE) {
        FUZZ_CHECK(ev->opcode == SG_WS_OP_CLOSE && ev->len <= 123);
        if (ev->close_code == SG_WS_CLOSE_NO_STATUS)
            FUZZ_CHECK(ev->len == 0);
        else
            FUZZ_CHECK(sg_ws_close_code_valid(ev->close_code));
        FUZZ_CHECK(fz_ref_utf8(ev->data, ev->len));
    }
}

/* Decodes buf[start..end) with the header's NONE-terminated loop. */
static void fz_feed(struct sg_ws_dec *d, uint8_t *buf, size_t start, size_t end, struct fz_run *r)
{
    size_t pos = start;

    while (!r->err) {
        struct sg_ws_event ev;
        size_t len = end - pos;
        ssize_t n = sg_ws_decode(d, buf + pos, len, &ev);

        if (n < 0) {
            uint8_t more[6] = {0x81, 0x80, 1, 2, 3, 4};
            FUZZ_CHECK((n == SG_EWSFRAME && d->close_code == 1002) ||
                       (n == SG_EUTF8 && d->close_code == 1007) ||
                       (n == SG_ETOOBIG && d->close_code == 1009));
            FUZZ_CHECK(d->error != NULL);
            FUZZ_CHECK(sg_ws_decode(d, more, sizeof more, &ev) == n); /* sticky */
            r->err = (int)n;
            r->close_code = d->close_code;
            r->err_lo = pos;
            r->err_hi = end;
            return;
        }
        FUZZ_CHECK((size_t)n <= len);
        if (ev.type == SG_WS_EV_NONE) {
            FUZZ_CHECK((size_t)n == len);
            return;
        }
        FUZZ_CHECK(n >= 1);
        fz_check_event(&ev, buf + pos, (size_t)n);
        fz_record(r, &ev);
        pos += (size_t)n;
    }
}

/* mode 0: whole; 1: chunks picked by sel; 2: one byte at a time */
static int fz_run(const uint8_t *in, size_t len, const struct sg_ws_limits *lim, int mode,
                  uint8_t sel, struct fz_run *r)
{
    struct sg_ws_dec d;
    uint8_t *buf = malloc(len ? len : 1);
    uint32_t seed = sel;
    size_t pos = 0;

    memset(r, 0, sizeof *r);
    r->ev = malloc((len + 1) * sizeof *r->ev); /* each event consumes >= 1 byte */
    r->data = malloc(len + 1);
    if (!buf || !r->ev || !r->data) {
        free(buf);
        return -1;
    }
    memcpy(buf, in, len); /* unmasked in place */
    sg_ws_dec_init(&d, lim);
    r->max_message = d.lim.max_message;
    r->check_utf8 = !lim->allow_rsv1;
    r->utf8 = SG_UTF8_ACCEPT;
    if (mode == 0) {
        /* the header's other loop shape: while (len > 0) */
        while (pos < len && !r->err) {
            struct sg_ws_event ev;
            ssize_t n = sg_ws_decode(&d, buf + pos, len - pos, &ev);
            if (n < 0) {
                fz_feed(&d, buf, pos, len, r); /* records the (sticky) error */
                break;
            }
            FUZZ_CHECK((size_t)n <= len - pos);
            if (ev.type == SG_WS_EV_NONE) {
                FUZZ_CHECK((size_t)n == len - pos);
                break;
            }
            FUZZ_CHECK(n >= 1);
            fz_check_event(&ev, buf + pos, (size_t)n);
            fz_record(r, &ev);
            pos += (size_t)n;
        }
    } else {
        while (pos < len && !r->err) {
            size_t chunk;
            if (mode == 2) {
                chunk = 1;
            } else if (sel < 128) {
                chunk = (size_t)sel + 1;
            } else {
                seed = seed * 1103515245u + 12345u;
                chunk = 1 + ((seed >> 16) & 15);
            }
            if (chunk > len - pos) chunk = len - pos;
            fz_feed(&d, buf, pos, pos + chunk, r);
            pos += chunk;
        }
    }
    free(buf);
    return 0;
}

static void fz_free(struct fz_run *r)
{
    free(r->ev);
    free(r->data);
}

static void fz_same(const struct fz_run *a, const struct fz_run *b)
{
    FUZZ_CHECK(a->err == b->err && a->close_code == b->close_code);
    FUZZ_CHECK(a->nev == b->nev && a->data_len == b->data_len);
    for (size_t i = 0; i < a->nev; i++) {
        FUZZ_CHECK(a->ev[i].type == b->ev[i].type && a->ev[i].opcode == b->ev[i].opcode);
        FUZZ_CHECK(a->ev[i].fin == b->ev[i].fin && a->ev[i].close_code == b->ev[i].close_code);
        FUZZ_CHECK(a->ev[i].len == b->ev[i].len);
    }
    FUZZ_CHECK(a->data_len == 0 || memcmp(a->data, b->data, a->data_len) == 0);
}

static void fz_encoders(const uint8_t *data, size_t size)
{
    uint8_t hdr[10], close[127 + 1], reason[200];
    uint64_t len = 0;
    size_t n, rl;
    int code;

    /* sg_ws_frame_header: minimal form, fields round-trip */
    for (size_t i = 0; i < 8 && i < size; i++)
        len = (len << 8) | data[i];
    len >>= size > 8 ? data[8] & 63 : 0;
    n = sg_ws_frame_header(hdr, size ? data[0] & 0xF : 1, size > 1 ? data[1] & 1 : 1, len);
    FUZZ_CHECK(n == (len < 126 ? 2u : len <= 0xFFFF ? 4u : 10u));
    FUZZ_CHECK((hdr[0] & 0x70) == 0 && (hdr[1] & 0x80) == 0);
    if (n == 2) FUZZ_CHECK(hdr[1] == len);
    if (n == 4) FUZZ_CHECK(hdr[1] == 126 && (uint64_t)(hdr[2] << 8 | hdr[3]) == len);
    if (n == 10) {
        uint64_t got = 0;
        for (int i = 2; i < 10; i++)
            got = (got << 8) | hdr[i];
        FUZZ_CHECK(hdr[1] == 127 && got == len);
    }

    /* sg_ws_close_frame: a valid UTF-8 prefix of the reason, <= 123 bytes */
    rl = size < sizeof reason - 1 ? size : sizeof reason - 1;
    memcpy(reason, data, rl);
    reason[rl] = 0;
    rl = strlen((const char *)reason);
    code = size > 1 ? (data[0] << 8 | data[1]) : 1000;
    close[127] = 0xEE;
    n = sg_ws_close_frame(close, code, (const char *)reason);
    FUZZ_CHECK(close[127] == 0xEE);
    FUZZ_CHECK(close[0] == 0x88);
    if (code == 0) {
        FUZZ_CHECK(n == 2 && close[1] == 0);
        return;
    }
    FUZZ_CHECK(n >= 4 && n <= 127 && close[1] == n - 2);
    FUZZ_CHECK(close[2] == ((code >> 8) & 0xFF) && close[3] == (code & 0xFF));
    FUZZ_CHECK(n - 4 <= rl && memcmp(close + 4, reason, n - 4) == 0);
    FUZZ_CHECK(fz_ref_utf8(close + 4, n - 4));
    if (rl <= 123 && fz_ref_utf8(reason, rl)) FUZZ_CHECK(n - 4 == rl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sg_ws_limits lim;
    struct fz_run whole, chunks, bytes;
    static const uint64_t max_choice[8] = {0, 1, 3, 10, 100, 125, 1000, 65536};
    const uint8_t *s;
    size_t len;

    /* the validator against the reference, whole and split at a point */
    {
        size_t k = size ? data[0] % (size + 1) : 0;
        int ok = fz_ref_utf8(data, size);
        uint32_t st = sg_utf8_validate(SG_UTF8_ACCEPT, data, k);
        st = sg_utf8_validate(st, data + k, size - k);
        FUZZ_CHECK(sg_utf8_valid(data, size) == ok);
        FUZZ_CHECK((st == SG_UTF8_ACCEPT) == ok);
    }
    fz_encoders(data, size);
    if (size < 2) return 0;

    lim.allow_rsv1 = data[1] & 1;
    lim.max_message = max_choice[(data[1] >> 1) & 7];
    s = data + 2;
    len = size - 2;
    if (fz_run(s, len, &lim, 0, data[0], &whole) < 0) goto out_whole;
    if (fz_run(s, len, &lim, 1, data[0], &chunks) < 0) goto out_chunks;
    if (fz_run(s, len, &lim, 2, data[0], &bytes) < 0) goto out_bytes;

    fz_same(&whole, &chunks);
    fz_same(&whole, &bytes);
    if (bytes.err) {
        /* one byte at a time pins the offending byte; every other split
         * reports the error in the call that held it */
        size_t at = bytes.err_lo;
        FUZZ_CHECK(bytes.err_hi == at + 1);
        FUZZ_CHECK(whole.err_lo <= at && at < whole.err_hi);
        FUZZ_CHECK(chunks.err_lo <= at && at < chunks.err_hi);
    }
out_bytes:
    fz_free(&bytes);
out_chunks:
    fz_free(&chunks);
out_whole:
    fz_free(&whole);
    return 0;
}
