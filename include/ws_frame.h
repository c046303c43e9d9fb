/* ws_frame.h - RFC 6455 section 5 frame codec, sans-I/O.
 *
 * The decoder is a state machine (wslay style) that takes bytes from a
 * client and returns events. It enforces, per RFC 6455:
 *  - client frames must be masked (5.1) -> 1002
 *  - RSV1-3 must be 0 unless an extension allows them (5.2) -> 1002; with
 *    lim.allow_rsv1, RSV1 is accepted on the first frame of a data message
 *    only (RFC 7692 6.1), the message is then compressed: d->msg_rsv1 is 1
 *    while it is open and its UTF-8 is NOT validated here (the caller must
 *    validate after inflating)
 *  - reserved opcodes 3-7, 11-15 (5.2) -> 1002
 *  - 64-bit length with the top bit set (5.2) -> 1002; non-minimal lengths
 *    are accepted (the RFC says "minimal number of bytes MUST be used" for
 *    senders; Autobahn does not require rejection)
 *  - control frames: payload <= 125 and FIN set (5.5) -> 1002
 *  - continuation with no message open, or a data frame inside an open
 *    fragmented message (5.4) -> 1002
 *  - message size over max_message (decided from the frame header: the
 *    frame's length plus what the message already delivered, before any
 *    byte of payload, even before the masking key) -> 1009
 *  - text messages are UTF-8 validated incrementally, across frames and
 *    across calls; invalid -> 1007 as soon as the offending byte arrives
 *    (an incomplete sequence at FIN is also 1007; the offending byte is then
 *    the frame's last byte, or its last header byte if it is empty)
 *  - close frame payload: 1 byte -> 1002; code must be valid (7.4):
 *    1000-1003, 1007-1014, 3000-4999; reason <= 123 bytes, valid UTF-8
 *    -> else 1002 (1007 for bad UTF-8 in the reason). Checked once the
 *    close frame is complete.
 * Nothing stops the decoder after a CLOSE event; the caller stops feeding.
 *
 * Data payload is unmasked IN PLACE in the caller's buffer (which is why
 * `in` is not const) and returned as chunks pointing into it: a chunk view
 * is valid until the caller discards those bytes. Control-frame payloads
 * (<= 125 bytes) are collected inside the decoder and returned whole; the
 * caller's bytes of a control frame are left as they were.
 */
#ifndef SG_WS_FRAME_H
#define SG_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum sg_ws_opcode {
    SG_WS_OP_CONT = 0x0,
    SG_WS_OP_TEXT = 0x1,
    SG_WS_OP_BINARY = 0x2,
    SG_WS_OP_CLOSE = 0x8,
    SG_WS_OP_PING = 0x9,
    SG_WS_OP_PONG = 0xA,
};

/* Close codes (RFC 6455 7.4.1) */
enum sg_ws_close_code {
    SG_WS_CLOSE_NORMAL = 1000,
    SG_WS_CLOSE_GOING_AWAY = 1001,
    SG_WS_CLOSE_PROTOCOL = 1002,
    SG_WS_CLOSE_UNSUPPORTED = 1003,
    SG_WS_CLOSE_NO_STATUS = 1005, /* never sent; reported when a close had no code */
    SG_WS_CLOSE_ABNORMAL = 1006,  /* never sent */
    SG_WS_CLOSE_INVALID_DATA = 1007,
    SG_WS_CLOSE_POLICY = 1008,
    SG_WS_CLOSE_TOO_BIG = 1009,
    SG_WS_CLOSE_INTERNAL = 1011,
    SG_WS_CLOSE_RESTART = 1012, /* service restart: come back soon */
    SG_WS_CLOSE_TRY_AGAIN = 1013,
};

enum sg_ws_event_type {
    SG_WS_EV_NONE = 0, /* need more input */
    SG_WS_EV_DATA,     /* a chunk of a data message (may be empty, e.g. an empty message) */
    SG_WS_EV_PING,
    SG_WS_EV_PONG,
    SG_WS_EV_CLOSE,
};

struct sg_ws_event {
    enum sg_ws_event_type type;
    /* DATA: opcode of the message (TEXT or BINARY), even for continuation frames.
     * PING/PONG/CLOSE: the frame's opcode. */
    int opcode;
    /* DATA: 1 on the last chunk of the message (FIN frame, all payload delivered).
     * PING/PONG/CLOSE: 1. */
    int fin;
    /* DATA: chunk view into the caller's (unmasked) buffer.
     * PING/PONG/CLOSE: the reason/payload, view into the decoder (valid until next call). */
    const uint8_t *data;
    size_t len;
    /* CLOSE: the peer's code, or SG_WS_CLOSE_NO_STATUS if the payload was empty
     * (data/len are then the reason, possibly empty). Other events: 0. */
    int close_code;
};

struct sg_ws_limits {
    uint64_t max_message; /* max total payload of one data message (0: default 1 MiB) */
    int allow_rsv1;       /* 1 if permessage-deflate was negotiated (future) */
};

/* Decoder state; embed it and call sg_ws_dec_init. No heap memory. */
struct sg_ws_dec {
    struct sg_ws_limits lim;
    int state;       /* internal */
    uint8_t hdr[14]; /* internal: header bytes collected so far */
    size_t hdr_len, hdr_need;
    int fin, opcode, masked, rsv;
    uint8_t mask[4];
    uint64_t remaining;  /* payload bytes left in the current frame */
    uint64_t mask_pos;   /* payload offset for the mask */
    int msg_opcode;      /* 0 when no data message is open */
    uint64_t msg_len;    /* payload delivered so far in the open message */
    uint32_t utf8_state; /* incremental UTF-8 validator state */
    int msg_rsv1;        /* 1 while the open message is compressed (RSV1, allow_rsv1) */
    uint8_t ctl[125];    /* control frame payload */
    size_t ctl_len;
    /* after an error: */
    int close_code;    /* close code to send (1002, 1007, 1009) */
    const char *error; /* static text naming the problem */
};

/* lim is copied; NULL means the defaults (1 MiB, no RSV1). */
void sg_ws_dec_init(struct sg_ws_dec *d, const struct sg_ws_limits *lim);
/* Changes lim.max_message (0 = the default) at any point of the stream,
 * e.g. raised once the STOMP session above is CONNECTED. The bound is
 * checked at each data frame's header, so it applies from the next frame
 * header on, counting what the open message already delivered: if that is
 * already over a lowered bound, the message's next frame fails with 1009. */
void sg_ws_dec_set_max_message(struct sg_ws_dec *d, uint64_t max_message);

/* Decodes from in[0..len) and returns at most one event per call in *ev.
 * Returns the number of bytes consumed (n >= 0), with these guarantees:
 *  - ev->type == SG_WS_EV_NONE: n == len. All input was consumed (parts of
 *    a header or of a control frame are kept inside the decoder) and no
 *    event is pending: more input is needed. len == 0 always gives this.
 *  - any other event: 1 <= n <= len. An event is returned by the very call
 *    that consumes the last byte it depends on (an empty frame's event
 *    comes with its last header byte), never later, so an event never
 *    comes with 0 bytes consumed and nothing is left pending when the
 *    input runs out. A DATA chunk is the last ev->len bytes of in[0..n).
 * So the caller's loop is:
 *
 *     for (;;) {
 *         ssize_t n = sg_ws_decode(d, in, len, &ev);
 *         if (n < 0) fail the connection with d->close_code;
 *         in += n; len -= n;
 *         if (ev.type == SG_WS_EV_NONE) break;   (len is now 0)
 *         handle(&ev);
 *     }
 *
 * and `while (len > 0) { same body }` sees exactly the same events.
 *
 * On a protocol error returns a negative sg_err (SG_EWSFRAME -> 1002,
 * SG_EUTF8 -> 1007, SG_ETOOBIG -> 1009) and sets d->close_code and d->error
 * (static text). The error is returned by the call whose input holds the
 * offending byte; valid text bytes before an invalid UTF-8 byte are first
 * returned as a DATA chunk (fin 0) by that same call, and the next call,
 * whose input then starts with the offending byte, returns the error. After
 * an error every call returns the same error; the decoder is finished. */
ssize_t sg_ws_decode(struct sg_ws_dec *d, uint8_t *in, size_t len, struct sg_ws_event *ev);

/* Writes an unmasked server frame header (RSV bits 0, FIN if fin != 0,
 * opcode & 0xF) for a payload of `len` bytes into out (at least 10 bytes),
 * with the minimal length form (5.2). Returns the header length (2, 4 or
 * 10). The payload itself is sent by the caller after the header, uncopied. */
size_t sg_ws_frame_header(uint8_t out[10], int opcode, int fin, uint64_t len);

/* Builds a complete unmasked close frame (code big-endian + reason) into out
 * (at least 127 bytes); code 0 means an empty close payload (reason
 * ignored). reason (NUL-terminated, may be NULL) is cut to its longest
 * valid UTF-8 prefix of at most 123 bytes, so a multi-byte character is
 * never cut in half. code is not checked (1005/1006 must never be sent).
 * Returns the frame length (2 .. 127). */
size_t sg_ws_close_frame(uint8_t out[127], int code, const char *reason);

/* Returns 1 if `code` may appear in a close frame received from a peer
 * (RFC 6455 7.4: 1000-1003, 1007-1014, 3000-4999), else 0. */
int sg_ws_close_code_valid(int code);

/* Incremental UTF-8 validation (Hoehrmann-style DFA, written here).
 * state starts at SG_UTF8_ACCEPT; returns the new state; SG_UTF8_REJECT is
 * sticky. A message is valid iff the final state is SG_UTF8_ACCEPT. */
#define SG_UTF8_ACCEPT 0u
#define SG_UTF8_REJECT 1u
uint32_t sg_utf8_validate(uint32_t state, const uint8_t *p, size_t len);
/* Convenience: 1 if the whole buffer is valid UTF-8. */
int sg_utf8_valid(const uint8_t *p, size_t len);

#endif
