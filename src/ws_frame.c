/* ws_frame.c - RFC 6455 section 5 frame codec (contract in ws_frame.h).
 *
 * The decoder takes the header one byte at a time (at most 14 bytes per
 * frame, and it may arrive split anywhere), so every header rule is checked
 * on the byte that decides it and the error points at that byte. Payload is
 * handled in chunks: data in place in the caller's buffer, control payload
 * copied into d->ctl.
 */
#include "ws_frame.h"

#include <string.h>

#include "error.h"

#define SG_WS_DEFAULT_MAX_MESSAGE ((uint64_t)1 << 20)
#define SG_WS_MAX_CONTROL 125 /* RFC 6455 5.5 */
#define SG_WS_MAX_REASON 123  /* 125 - 2 bytes of code */

enum sg_ws_dec_state {
    SG_WS_ST_HEADER = 0,
    SG_WS_ST_DATA,
    SG_WS_ST_CONTROL,
    SG_WS_ST_FAILED,
};

/* ---- UTF-8 (RFC 3629 section 4) ----
 *
 * A DFA in the manner of Bjoern Hoehrmann's decoder: each byte is mapped to
 * a class, and (state, class) gives the next state. The states that follow
 * E0, ED, F0 and F4 only accept the narrowed second-byte ranges of RFC 3629,
 * which is what rejects overlong forms (E0 80..9F, F0 80..8F), surrogates
 * (ED A0..BF, U+D800-DFFF) and code points over U+10FFFF (F4 90..BF).
 * C0, C1 and F5..FF never occur. Because the DFA moves to REJECT on the
 * first byte that cannot continue any valid sequence, callers learn about
 * the error at that byte (Autobahn 6.x "fail fast").
 */
enum sg_utf8_class {
    SG_U8C_ASCII,   /* 00-7F */
    SG_U8C_CONT_LO, /* 80-8F */
    SG_U8C_CONT_MI, /* 90-9F */
    SG_U8C_CONT_HI, /* A0-BF */
    SG_U8C_BAD,     /* C0 C1 F5-FF */
    SG_U8C_L2,      /* C2-DF */
    SG_U8C_E0,      /* E0: second byte A0-BF */
    SG_U8C_L3,      /* E1-EC EE EF */
    SG_U8C_ED,      /* ED: second byte 80-9F */
    SG_U8C_F0,      /* F0: second byte 90-BF */
    SG_U8C_L4,      /* F1-F3 */
    SG_U8C_F4,      /* F4: second byte 80-8F */
    SG_U8C_COUNT,
};

enum sg_utf8_dfa_state {
    SG_U8S_ACCEPT = SG_UTF8_ACCEPT,
    SG_U8S_REJECT = SG_UTF8_REJECT,
    SG_U8S_NEED1, /* one continuation byte left */
    SG_U8S_NEED2,
    SG_U8S_NEED3,
    SG_U8S_E0, /* after E0 */
    SG_U8S_ED, /* after ED */
    SG_U8S_F0, /* after F0 */
    SG_U8S_F4, /* after F4 */
    SG_U8S_COUNT,
};

/* clang-format off */
static const uint8_t sg_utf8_class_of[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 00-0F */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 10-1F */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 20-2F */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 30-3F */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 40-4F */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 50-5F */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 60-6F */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 70-7F */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 80-8F */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 90-9F */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* A0-AF */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* B0-BF */
    4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, /* C0-CF */
    5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, /* D0-DF */
    6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 7, /* E0-EF */
    9,10,10,10,11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* F0-FF */
};

#define A_ SG_U8S_ACCEPT
#define R_ SG_U8S_REJECT
#define N1 SG_U8S_NEED1
#define N2 SG_U8S_NEED2
#define N3 SG_U8S_NEED3
static const uint8_t sg_utf8_next[SG_U8S_COUNT][SG_U8C_COUNT] = {
    /*                ASCII 80-8F 90-9F A0-BF  bad  C2-DF  E0         E1-EF ED         F0         F1-F3 F4 */
    [SG_U8S_ACCEPT] = {A_,  R_,   R_,   R_,    R_,  N1,    SG_U8S_E0, N2,   SG_U8S_ED, SG_U8S_F0, N3,   SG_U8S_F4},
    [SG_U8S_REJECT] = {R_,  R_,   R_,   R_,    R_,  R_,    R_,        R_,   R_,        R_,        R_,   R_},
    [SG_U8S_NEED1]  = {R_,  A_,   A_,   A_,    R_,  R_,    R_,        R_,   R_,        R_,        R_,   R_},
    [SG_U8S_NEED2]  = {R_,  N1,   N1,   N1,    R_,  R_,    R_,        R_,   R_,        R_,        R_,   R_},
    [SG_U8S_NEED3]  = {R_,  N2,   N2,   N2,    R_,  R_,    R_,        R_,   R_,        R_,        R_,   R_},
    [SG_U8S_E0]     = {R_,  R_,   R_,   N1,    R_,  R_,    R_,        R_,   R_,        R_,        R_,   R_},
    [SG_U8S_ED]     = {R_,  N1,   N1,   R_,    R_,  R_,    R_,        R_,   R_,        R_,        R_,   R_},
    [SG_U8S_F0]     = {R_,  R_,   N2,   N2,    R_,  R_,    R_,        R_,   R_,        R_,        R_,   R_},
    [SG_U8S_F4]     = {R_,  N2,   R_,   R_,    R_,  R_,    R_,        R_,   R_,        R_,        R_,   R_},
};
#undef A_
#undef R_
#undef N1
#undef N2
#undef N3
/* clang-format on */

/* Advances *state over p[0..len) and returns the index of the first byte
 * that makes it REJECT (len if none). On a rejection *state is left as it
 * was before that byte, so the accepted prefix can still be delivered. */
static size_t sg_utf8_scan(uint32_t *state, const uint8_t *p, size_t len)
{
    uint32_t s = *state;
    size_t i = 0;

    if (s >= SG_U8S_COUNT || s == SG_U8S_REJECT) return 0; /* sticky */
    while (i < len) {
        uint32_t next;

        /* ASCII runs are the common case (STOMP headers, JSON bodies) */
        if (s == SG_U8S_ACCEPT) {
            while (len - i >= 8) {
                uint64_t w;
                memcpy(&w, p + i, 8);
                if (w & UINT64_C(0x8080808080808080)) break;
                i += 8;
            }
            while (i < len && p[i] < 0x80)
                i++;
            if (i == len) break;
        }
        next = sg_utf8_next[s][sg_utf8_class_of[p[i]]];
        if (next == SG_U8S_REJECT) break;
        s = next;
        i++;
    }
    *state = s;
    return i;
}

uint32_t sg_utf8_validate(uint32_t state, const uint8_t *p, size_t len)
{
    if (state >= SG_U8S_COUNT) return SG_UTF8_REJECT;
    if (sg_utf8_scan(&state, p, len) < len) return SG_UTF8_REJECT;
    return state;
}

int sg_utf8_valid(const uint8_t *p, size_t len)
{
    return sg_utf8_validate(SG_UTF8_ACCEPT, p, len) == SG_UTF8_ACCEPT;
}

/* ---- helpers ---- */

/* RFC 6455 5.3: octet i of the payload is XORed with mask[i mod 4]; `pos`
 * is the payload offset of p[0], kept across calls. XOR is its own
 * inverse, so this also re-masks. */
static void sg_ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t pos)
{
    size_t i = 0;

    if (n >= 16) {
        uint8_t rot[8];
        uint64_t m, w;
        for (size_t k = 0; k < 8; k++)
            rot[k] = mask[(pos + k) & 3];
        memcpy(&m, rot, 8);
        for (; n - i >= 8; i += 8) {
            memcpy(&w, p + i, 8);
            w ^= m;
            memcpy(p + i, &w, 8);
        }
    }
    for (; i < n; i++)
        p[i] ^= mask[(pos + i) & 3];
}

static int sg_ws_err_of(int close_code)
{
    switch (close_code) {
    case SG_WS_CLOSE_INVALID_DATA:
        return SG_EUTF8;
    case SG_WS_CLOSE_TOO_BIG:
        return SG_ETOOBIG;
    default:
        return SG_EWSFRAME;
    }
}

static int sg_ws_fail(struct sg_ws_dec *d, int close_code, const char *why)
{
    d->state = SG_WS_ST_FAILED;
    d->close_code = close_code;
    d->error = why;
    return sg_ws_err_of(close_code);
}

static int sg_ws_is_control(int opcode)
{
    return (opcode & 0x8) != 0; /* RFC 6455 5.5: opcodes 0x8-0xF */
}

static void sg_ws_next_frame(struct sg_ws_dec *d)
{
    d->state = SG_WS_ST_HEADER;
    d->hdr_len = 0;
    d->hdr_need = 2;
}

static void sg_ws_end_message(struct sg_ws_dec *d)
{
    d->msg_opcode = 0;
    d->msg_len = 0;
    d->utf8_state = SG_UTF8_ACCEPT;
    d->msg_rsv1 = 0;
}

/* ---- decoder ---- */

void sg_ws_dec_init(struct sg_ws_dec *d, const struct sg_ws_limits *lim)
{
    memset(d, 0, sizeof *d);
    if (lim) d->lim = *lim;
    if (d->lim.max_message == 0) d->lim.max_message = SG_WS_DEFAULT_MAX_MESSAGE;
    sg_ws_next_frame(d);
    sg_ws_end_message(d);
}

void sg_ws_dec_set_max_message(struct sg_ws_dec *d, uint64_t max_message)
{
    d->lim.max_message = max_message ? max_message : SG_WS_DEFAULT_MAX_MESSAGE;
}

/* Byte 0: FIN, RSV1-3, opcode. */
static int sg_ws_header_byte0(struct sg_ws_dec *d, uint8_t b)
{
    d->fin = (b >> 7) & 1;
    d->rsv = (b >> 4) & 7; /* RSV1 is 4, RSV2 2, RSV3 1 */
    d->opcode = b & 0xF;

    switch (d->opcode) {
    case SG_WS_OP_CONT:
    case SG_WS_OP_TEXT:
    case SG_WS_OP_BINARY:
    case SG_WS_OP_CLOSE:
    case SG_WS_OP_PING:
    case SG_WS_OP_PONG:
        break;
    default: /* 5.2: 0x3-0x7 and 0xB-0xF are reserved */
        return sg_ws_fail(d, SG_WS_CLOSE_PROTOCOL, "reserved opcode");
    }
    /* 5.2: RSV2/RSV3 are never negotiated here. RSV1 means "compressed" and
     * RFC 7692 6.1 allows it only on the first frame of a data message. */
    if (d->rsv & 3) return sg_ws_fail(d, SG_WS_CLOSE_PROTOCOL, "RSV2/RSV3 set");
    if ((d->rsv & 4) &&
        (!d->lim.allow_rsv1 || sg_ws_is_control(d->opcode) || d->opcode == SG_WS_OP_CONT))
        return sg_ws_fail(d, SG_WS_CLOSE_PROTOCOL, "RSV1 set");
    /* 5.5: control frames must not be fragmented */
    if (sg_ws_is_control(d->opcode) && !d->fin)
        return sg_ws_fail(d, SG_WS_CLOSE_PROTOCOL, "fragmented control frame");
    /* 5.4: continuation only inside a message, a new message only outside */
    if (d->opcode == SG_WS_OP_CONT && d->msg_opcode == 0)
        return sg_ws_fail(d, SG_WS_CLOSE_PROTOCOL, "continuation frame without a message");
    if ((d->opcode == SG_WS_OP_TEXT || d->opcode == SG_WS_OP_BINARY) && d->msg_opcode != 0)
        return sg_ws_fail(d, SG_WS_CLOSE_PROTOCOL, "data frame inside a fragmented message");
    return 0;
}

/* Once the payload length is known: 1009 before any payload (wslay's
 * max_recv_msg_length). msg_len can exceed max_message only after
 * sg_ws_dec_set_max_message lowered it; the first test keeps the
 * subtraction from wrapping. */
static int sg_ws_header_length(struct sg_ws_dec *d, uint64_t len)
{
    d->remaining = len;
    if (!sg_ws_is_control(d->opcode) &&
        (d->msg_len > d->lim.max_message || len > d->lim.max_message - d->msg_len))
        return sg_ws_fail(d, SG_WS_CLOSE_TOO_BIG, "message too big");
    return 0;
}

/* Byte 1: MASK, 7-bit length. */
static int sg_ws_header_byte1(struct sg_ws_dec *d, uint8_t b)
{
    uint8_t len7 = b & 0x7F;

    d->masked = (b >> 7) & 1;
    /* 5.1: a server MUST close the connection on an unmasked client frame */
    if (!d->masked) return sg_ws_fail(d, SG_WS_CLOSE_PROTOCOL, "unmasked client frame");
    /* 5.5: control frames carry at most 125 bytes, so never 126/127 */
    if (sg_ws_is_control(d->opcode) && len7 > SG_WS_MAX_CONTROL)
        return sg_ws_fail(d, SG_WS_CLOSE_PROTOCOL, "control frame over 125 bytes");
    /* 5.2: 126 -> 16-bit length, 127 -> 64-bit length; then the 4-byte key */
    d->hdr_need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
    if (len7 < 126) return sg_ws_header_length(d, len7);
    return 0;
}

/* Called with each new header byte; 0 to go on, or an error. */
static int sg_ws_header_byte(struct sg_ws_dec *d)
{
    size_t i = d->hdr_len - 1, ext_end;
    uint8_t b = d->hdr[i];

    if (i == 0) return sg_ws_header_byte0(d, b);
    if (i == 1) return sg_ws_header_byte1(d, b);
    ext_end = d->hdr_need - 4; /* end of the extended length, set by byte 1 */
    if (i < ext_end) {
        /* 5.2: "the most significant bit MUST be 0" in the 64-bit form.
         * Non-minimal forms are accepted (see the header). */
        if (i == 2 && ext_end == 10 && (b & 0x80))
            return sg_ws_fail(d, SG_WS_CLOSE_PROTOCOL, "64-bit length with the top bit set");
        if (i == ext_end - 1) {
            uint64_t len = 0;
            for (size_t k = 2; k < ext_end; k++)
                len = (len << 8) | d->hdr[k];
            return sg_ws_header_length(d, len);
        }
        return 0;
    }
    d->mask[i - ext_end] = b;
    return 0;
}

/* Checks a text chunk p[0..n) (unmasked) whose last byte ends the message
 * when `ends`. Returns how many leading bytes are good; *bad is set when
 * the byte at that index is the offending one (for `ends` with an
 * incomplete sequence: the last byte, or index 0 of an empty chunk). */
static size_t sg_ws_text_check(struct sg_ws_dec *d, const uint8_t *p, size_t n, int ends, int *bad)
{
    size_t body = (ends && n > 0) ? n - 1 : n;
    size_t ok = sg_utf8_scan(&d->utf8_state, p, body);
    uint32_t s;

    *bad = 0;
    if (ok < body) {
        *bad = 1;
        return ok;
    }
    if (!ends) return n;
    /* RFC 6455 8.1: the whole message must be valid UTF-8, so a sequence
     * still open at FIN is invalid; blame the byte that ends the message */
    s = d->utf8_state;
    if (n > 0 && sg_utf8_scan(&s, p + body, 1) == 0) s = SG_UTF8_REJECT;
    if (s != SG_UTF8_ACCEPT) {
        *bad = 1;
        return body;
    }
    d->utf8_state = s;
    return n;
}

/* Payload of a data frame: unmask in place and return it as one chunk.
 * Returns the bytes consumed (a DATA event is always produced) or an error. */
static ssize_t sg_ws_data(struct sg_ws_dec *d, uint8_t *p, size_t avail, struct sg_ws_event *ev)
{
    size_t n = d->remaining < avail ? (size_t)d->remaining : avail;
    int ends;

    sg_ws_unmask(p, n, d->mask, d->mask_pos);
    ends = d->fin && n == d->remaining;
    /* 5.6 / 8.1: text is UTF-8, checked incrementally so an error is seen at
     * the offending byte (Autobahn 6.4 fails fast). A compressed message
     * (RFC 7692) can only be checked after inflating, by the caller. */
    if (d->msg_opcode == SG_WS_OP_TEXT && !d->msg_rsv1) {
        int bad;
        size_t ok = sg_ws_text_check(d, p, n, ends, &bad);
        if (bad) {
            if (ok == 0)
                return sg_ws_fail(d, SG_WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text message");
            /* deliver the good prefix now; the next call starts at the bad
             * byte and fails. Restore the rest so it unmasks again then. */
            sg_ws_unmask(p + ok, n - ok, d->mask, d->mask_pos + ok);
            n = ok;
            ends = 0;
        }
    }
    d->remaining -= n;
    d->mask_pos += n;
    d->msg_len += n;
    ev->type = SG_WS_EV_DATA;
    ev->opcode = d->msg_opcode;
    ev->fin = ends;
    ev->data = p;
    ev->len = n;
    if (d->remaining == 0) {
        sg_ws_next_frame(d);
        if (ends) sg_ws_end_message(d);
    }
    return (ssize_t)n;
}

/* A control frame is complete in d->ctl: produce its event. */
static int sg_ws_control_done(struct sg_ws_dec *d, struct sg_ws_event *ev)
{
    ev->opcode = d->opcode;
    ev->fin = 1;
    ev->data = d->ctl;
    ev->len = d->ctl_len;
    switch (d->opcode) {
    case SG_WS_OP_PING:
        ev->type = SG_WS_EV_PING;
        break;
    case SG_WS_OP_PONG:
        ev->type = SG_WS_EV_PONG;
        break;
    default: /* SG_WS_OP_CLOSE, 5.5.1 */
        ev->type = SG_WS_EV_CLOSE;
        if (d->ctl_len == 0) {
            /* 7.1.5: no status code -> "1005" is what we report */
            ev->close_code = SG_WS_CLOSE_NO_STATUS;
            break;
        }
        /* 5.5.1: if there is a body, its first two bytes are the code */
        if (d->ctl_len == 1) return sg_ws_fail(d, SG_WS_CLOSE_PROTOCOL, "close payload of 1 byte");
        ev->close_code = (d->ctl[0] << 8) | d->ctl[1];
        if (!sg_ws_close_code_valid(ev->close_code))
            return sg_ws_fail(d, SG_WS_CLOSE_PROTOCOL, "invalid close code");
        /* 5.5.1: the reason is UTF-8 (7.1.6); not valid -> 1007 (8.1) */
        ev->data = d->ctl + 2;
        ev->len = d->ctl_len - 2;
        if (!sg_utf8_valid(ev->data, ev->len))
            return sg_ws_fail(d, SG_WS_CLOSE_INVALID_DATA, "invalid UTF-8 in close reason");
        break;
    }
    sg_ws_next_frame(d);
    return 0;
}

/* Payload of a control frame: collect it (<= 125 bytes) in d->ctl. */
static ssize_t sg_ws_control(struct sg_ws_dec *d, const uint8_t *p, size_t avail,
                             struct sg_ws_event *ev)
{
    size_t n = d->remaining < avail ? (size_t)d->remaining : avail;
    int rc;

    memcpy(d->ctl + d->ctl_len, p, n);
    sg_ws_unmask(d->ctl + d->ctl_len, n, d->mask, d->mask_pos);
    d->ctl_len += n;
    d->mask_pos += n;
    d->remaining -= n;
    if (d->remaining == 0 && (rc = sg_ws_control_done(d, ev)) < 0) return rc;
    return (ssize_t)n;
}

/* The header is complete: set up the payload. Frames without payload
 * produce their event right away (with their last header byte). */
static ssize_t sg_ws_frame_start(struct sg_ws_dec *d, uint8_t *p, struct sg_ws_event *ev)
{
    d->mask_pos = 0;
    if (sg_ws_is_control(d->opcode)) {
        d->state = SG_WS_ST_CONTROL;
        d->ctl_len = 0;
        return d->remaining == 0 ? sg_ws_control(d, p, 0, ev) : 0;
    }
    if (d->opcode != SG_WS_OP_CONT) {
        sg_ws_end_message(d);
        d->msg_opcode = d->opcode;
        d->msg_rsv1 = (d->rsv >> 2) & 1;
    }
    d->state = SG_WS_ST_DATA;
    return d->remaining == 0 ? sg_ws_data(d, p, 0, ev) : 0;
}

ssize_t sg_ws_decode(struct sg_ws_dec *d, uint8_t *in, size_t len, struct sg_ws_event *ev)
{
    size_t pos = 0;
    ssize_t rc;

    memset(ev, 0, sizeof *ev);
    ev->type = SG_WS_EV_NONE;
    if (d->state == SG_WS_ST_FAILED) {
        rc = sg_ws_err_of(d->close_code);
        goto out;
    }
    while (pos < len && ev->type == SG_WS_EV_NONE) {
        ssize_t n;

        switch (d->state) {
        case SG_WS_ST_HEADER:
            d->hdr[d->hdr_len++] = in[pos++];
            n = sg_ws_header_byte(d);
            if (n == 0 && d->hdr_len == d->hdr_need) n = sg_ws_frame_start(d, in + pos, ev);
            break;
        case SG_WS_ST_DATA:
            n = sg_ws_data(d, in + pos, len - pos, ev);
            break;
        default:
            n = sg_ws_control(d, in + pos, len - pos, ev);
            break;
        }
        if (n < 0) {
            rc = n;
            goto out;
        }
        pos += (size_t)n;
    }
    rc = (ssize_t)pos;
out:
    return rc;
}

/* ---- encoders ---- */

size_t sg_ws_frame_header(uint8_t out[10], int opcode, int fin, uint64_t len)
{
    /* 5.2: server-to-client frames are not masked (5.1), RSV bits 0 */
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0xF));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

size_t sg_ws_close_frame(uint8_t out[127], int code, const char *reason)
{
    size_t n = 0, avail = 0;
    uint32_t state = SG_UTF8_ACCEPT;

    out[0] = 0x80 | SG_WS_OP_CLOSE;
    if (code == 0) {
        out[1] = 0;
        return 2;
    }
    /* 5.5.1: the reason follows the 2-byte code, within 125 bytes; it must
     * be UTF-8 (7.1.6), so cut at the last complete character. */
    while (reason && avail < SG_WS_MAX_REASON && reason[avail])
        avail++;
    for (size_t i = 0; i < avail; i++) {
        if (sg_utf8_scan(&state, (const uint8_t *)reason + i, 1) == 0) break;
        if (state == SG_UTF8_ACCEPT) n = i + 1;
    }
    out[1] = (uint8_t)(2 + n);
    out[2] = (uint8_t)((code >> 8) & 0xFF);
    out[3] = (uint8_t)(code & 0xFF);
    if (n) memcpy(out + 4, reason, n);
    return 4 + n;
}

int sg_ws_close_code_valid(int code)
{
    /* 7.4.1 defined codes that may be sent (not 1004 reserved, 1005/1006
     * never on the wire, 1015 TLS), IANA registry up to 1014, and 7.4.2's
     * 3000-3999 (registered) and 4000-4999 (private use) */
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}
