/* fuzz_stomp_frame.c - libFuzzer target for the STOMP frame codec.
 *
 * data[0] picks the split stride (low 4 bits), the version (bits 4-5: 10,
 * 11, 12, 12), trim (bit 6) and small limits (bit 7); the rest is the byte
 * stream. Checks:
 *  - decoding it whole and in stride-sized chunks gives the same events
 *    (frames, heart-beats, error code and message);
 *  - every decoded frame re-encodes (or the encoder rightly refuses a value
 *    ending in CR where it cannot be escaped) and decodes back to itself,
 *    also with add_content_length;
 *  - every decoded frame deep-copies (whole, and filtered without its body)
 *    into a copy whose view holds the same, NUL-terminated, and which
 *    survives the decoder's next call.
 * Plain C: also linked with replay_main.c under gcc.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "stomp_frame.h"

#define SG_FZ_CHECK(x)                                                                             \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct fz_cfg {
    size_t stride;
    int version;
    int trim;
    struct sg_stomp_limits lim;
};

static void fz_put(struct sg_buf *b, const void *p, size_t n)
{
    SG_FZ_CHECK(sg_buf_append(b, &n, sizeof n) == SG_OK);
    SG_FZ_CHECK(sg_buf_append(b, p, n) == SG_OK);
}

/* a canonical rendering of one frame */
static void fz_frame(struct sg_buf *b, const struct sg_stomp_frame *f)
{
    int cmd = (int)f->cmd;
    fz_put(b, "F", 1);
    fz_put(b, &cmd, sizeof cmd);
    fz_put(b, &f->num_headers, sizeof f->num_headers);
    for (size_t i = 0; i < f->num_headers; i++) {
        fz_put(b, f->headers[i].key, f->headers[i].key_len);
        fz_put(b, f->headers[i].value, f->headers[i].value_len);
    }
    fz_put(b, f->body, f->body_len);
    SG_FZ_CHECK(f->body[f->body_len] == 0);
}

static void fz_dec_init(struct sg_stomp_dec *d, const struct fz_cfg *c,
                        const struct sg_stomp_limits *lim)
{
    sg_stomp_dec_init(d, lim);
    d->version = c->version;
    d->trim = c->trim;
}

/* Decodes in chunks of `stride` bytes (0 = whole); renders events into out. */
static void fz_decode(const struct fz_cfg *c, const uint8_t *in, size_t len, size_t stride,
                      struct sg_buf *out)
{
    struct sg_stomp_dec d;
    struct sg_stomp_event ev;
    fz_dec_init(&d, c, &c->lim);
    size_t pos = 0;
    int failed = 0;
    while (!failed && (pos < len || pos == 0)) {
        size_t n = stride && len - pos > stride ? stride : len - pos;
        size_t off = 0;
        for (;;) {
            ssize_t rc = sg_stomp_decode(&d, in + pos + off, n - off, &ev);
            if (rc < 0) {
                int e = (int)rc;
                SG_FZ_CHECK(d.error != NULL && strchr(d.error, '\n') == NULL);
                fz_put(out, "E", 1);
                fz_put(out, &e, sizeof e);
                fz_put(out, d.error, strlen(d.error));
                SG_FZ_CHECK(sg_stomp_decode(&d, in, len, &ev) == rc);
                failed = 1;
                break;
            }
            SG_FZ_CHECK((size_t)rc <= n - off);
            off += (size_t)rc;
            if (ev.type == SG_STOMP_EV_NONE) {
                SG_FZ_CHECK(off == n);
                break;
            }
            if (ev.type == SG_STOMP_EV_HEARTBEAT)
                fz_put(out, "H", 1);
            else
                fz_frame(out, ev.frame);
        }
        pos += n;
        if (len == 0) break;
    }
    sg_stomp_dec_reset(&d);
}

static int fz_escapes(int version, enum sg_stomp_cmd cmd)
{
    if (version < 11) return 0;
    if (cmd == SG_STOMP_CONNECT || cmd == SG_STOMP_STOMP || cmd == SG_STOMP_CONNECTED) return 0;
    return version;
}

static int fz_same_header(const struct sg_stomp_header *a, const struct sg_stomp_header *b)
{
    return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0 &&
           a->value_len == b->value_len && memcmp(a->value, b->value, a->value_len) == 0;
}

/* encode f, decode it again, compare */
static void fz_round_trip(const struct fz_cfg *c, const struct sg_stomp_frame *f, int add_cl)
{
    /* escaping at most doubles a header; the frame grows by that much */
    struct sg_stomp_limits lim = c->lim;
    lim.max_frame = lim.max_frame * 2 + 64;
    lim.max_header_line = lim.max_header_line * 2 + 2;
    lim.max_headers = lim.max_headers + 1 > SG_STOMP_MAX_HEADERS_CAP ? SG_STOMP_MAX_HEADERS_CAP
                                                                     : lim.max_headers + 1;

    /* the one thing a decoded frame can hold that the encoder must refuse: a
     * value ending in CR where \r is not escaped (it would read as CRLF) */
    int refuse = 0;
    for (size_t i = 0; i < f->num_headers; i++) {
        const struct sg_stomp_header *h = &f->headers[i];
        if (fz_escapes(c->version, f->cmd) != 12 && h->value_len &&
            h->value[h->value_len - 1] == '\r')
            refuse = 1;
    }

    struct sg_buf out;
    sg_buf_init(&out, 0);
    int rc = sg_stomp_encode(&out, c->version, f->cmd, f->headers, f->num_headers, f->body,
                             f->body_len, add_cl);
    if (refuse) {
        SG_FZ_CHECK(rc == SG_ESTOMP);
        SG_FZ_CHECK(out.len == 0);
        goto out;
    }
    SG_FZ_CHECK(rc == SG_OK);
    SG_FZ_CHECK(out.len > 0 && out.data[out.len - 1] == 0);

    struct sg_stomp_dec d;
    struct sg_stomp_event ev;
    fz_dec_init(&d, c, &lim);
    ssize_t n = sg_stomp_decode(&d, out.data, out.len, &ev);
    if (n < 0) fprintf(stderr, "round trip: %s\n", d.error);
    SG_FZ_CHECK(n == (ssize_t)out.len);
    SG_FZ_CHECK(ev.type == SG_STOMP_EV_FRAME);
    const struct sg_stomp_frame *g = ev.frame;
    SG_FZ_CHECK(g->cmd == f->cmd);
    SG_FZ_CHECK(g->num_headers == f->num_headers + (add_cl ? 1u : 0u));
    for (size_t i = 0; i < f->num_headers; i++)
        SG_FZ_CHECK(fz_same_header(&g->headers[i], &f->headers[i]));
    if (add_cl) {
        char want[32];
        int wl = snprintf(want, sizeof want, "%zu", f->body_len);
        const struct sg_stomp_header *h = &g->headers[f->num_headers];
        SG_FZ_CHECK(h->key_len == 14 && memcmp(h->key, "content-length", 14) == 0);
        SG_FZ_CHECK(h->value_len == (size_t)wl && memcmp(h->value, want, h->value_len) == 0);
    }
    SG_FZ_CHECK(g->body_len == f->body_len);
    SG_FZ_CHECK(f->body_len == 0 || memcmp(g->body, f->body, f->body_len) == 0);
    sg_stomp_dec_reset(&d);
out:
    sg_buf_reset(&out);
}

static int fz_keep_odd(const struct sg_stomp_header *h, void *arg)
{
    (*(size_t *)arg)++;
    return (int)(h->key_len & 1);
}

static void fz_same_copy(const struct sg_stomp_frame *f, const struct sg_stomp_frame_copy *c,
                         int filtered)
{
    static struct sg_stomp_frame view; /* large: not on the stack */
    SG_FZ_CHECK(sg_stomp_frame_copy_view(c, &view) == &view);
    SG_FZ_CHECK(view.cmd == f->cmd);
    SG_FZ_CHECK(view.num_headers == sg_stomp_frame_copy_nheaders(c));
    size_t k = 0;
    for (size_t i = 0; i < f->num_headers; i++) {
        if (filtered && !(f->headers[i].key_len & 1)) continue;
        const struct sg_stomp_header *h = sg_stomp_frame_copy_header(c, k);
        SG_FZ_CHECK(h && fz_same_header(h, &f->headers[i]) && fz_same_header(h, &view.headers[k]));
        SG_FZ_CHECK(h->key[h->key_len] == 0 && h->value[h->value_len] == 0);
        k++;
    }
    SG_FZ_CHECK(k == view.num_headers && !sg_stomp_frame_copy_header(c, k));
    SG_FZ_CHECK(view.body && view.body[view.body_len] == 0);
    if (filtered) {
        SG_FZ_CHECK(view.body_len == 0);
    } else {
        SG_FZ_CHECK(view.body_len == f->body_len);
        SG_FZ_CHECK(f->body_len == 0 || memcmp(view.body, f->body, f->body_len) == 0);
    }
}

/* *held (may be NULL) renders as snap did; then it is freed */
static void fz_check_held(struct sg_stomp_frame_copy **held, const struct sg_buf *snap)
{
    static struct sg_stomp_frame view;
    if (!*held) return;
    struct sg_buf now;
    sg_buf_init(&now, 0);
    fz_frame(&now, sg_stomp_frame_copy_view(*held, &view));
    SG_FZ_CHECK(now.len == snap->len && memcmp(now.data, snap->data, now.len) == 0);
    sg_buf_reset(&now);
    sg_stomp_frame_copy_free(*held);
    *held = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    struct fz_cfg c;
    uint8_t b = data[0];
    static const int versions[4] = {10, 11, 12, 12};
    c.stride = 1 + (b & 15);
    c.version = versions[(b >> 4) & 3];
    c.trim = (b >> 6) & 1;
    memset(&c.lim, 0, sizeof c.lim);
    if (b & 0x80) {
        c.lim.max_frame = 96;
        c.lim.max_headers = 4;
        c.lim.max_header_line = 32;
        c.lim.max_body = 48;
    } else {
        c.lim.max_frame = 1024 * 1024 + 64 * 1024;
        c.lim.max_headers = 64;
        c.lim.max_header_line = 8192;
        c.lim.max_body = 1024 * 1024;
    }
    const uint8_t *in = data + 1;
    size_t len = size - 1;

    struct sg_buf whole, split;
    sg_buf_init(&whole, 0);
    sg_buf_init(&split, 0);
    fz_decode(&c, in, len, 0, &whole);
    fz_decode(&c, in, len, c.stride, &split);
    SG_FZ_CHECK(whole.len == split.len &&
                (whole.len == 0 || memcmp(whole.data, split.data, whole.len) == 0));
    sg_buf_reset(&split);
    sg_buf_reset(&whole);

    /* round trip and copies of every frame (decoded again, whole) */
    struct sg_stomp_dec d;
    struct sg_stomp_event ev;
    struct sg_stomp_frame_copy *held = NULL;
    struct sg_buf snap;
    sg_buf_init(&snap, 0);
    fz_dec_init(&d, &c, &c.lim);
    size_t off = 0;
    while (off < len) {
        ssize_t n = sg_stomp_decode(&d, in + off, len - off, &ev);
        fz_check_held(&held, &snap);
        if (n < 0) break;
        off += (size_t)n;
        if (ev.type == SG_STOMP_EV_NONE) break;
        if (ev.type != SG_STOMP_EV_FRAME) continue;
        size_t bytes = 0, calls = 0, fbytes = 0;
        struct sg_stomp_frame_copy *cp = sg_stomp_frame_copy_new(ev.frame, &bytes);
        struct sg_stomp_frame_copy *fc =
            sg_stomp_frame_copy_filter(ev.frame, fz_keep_odd, &calls, 0, &fbytes);
        SG_FZ_CHECK(cp && fc && bytes >= ev.frame->body_len + 1 && fbytes > 0 && fbytes <= bytes);
        SG_FZ_CHECK(calls == ev.frame->num_headers);
        fz_same_copy(ev.frame, cp, 0);
        fz_same_copy(ev.frame, fc, 1);
        sg_stomp_frame_copy_free(fc);
        fz_round_trip(&c, ev.frame, 0);
        if (!sg_stomp_header(ev.frame, "content-length") &&
            ev.frame->num_headers < SG_STOMP_MAX_HEADERS_CAP)
            fz_round_trip(&c, ev.frame, 1);
        /* the copy outlives the frame: rendered now and after the decoder
         * moved on (next call or reset), it must be the same */
        fz_check_held(&held, &snap);
        held = cp;
        sg_buf_clear(&snap);
        fz_frame(&snap, ev.frame);
    }
    sg_stomp_dec_reset(&d);
    fz_check_held(&held, &snap);
    sg_buf_reset(&snap);
    return 0;
}
