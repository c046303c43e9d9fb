/* ws_frame.h - RFC 6455 section 5 frame codec, sans-I/O.
 *
 * The decoder is a state machine (wslay style) that takes bytes from a
 * client and returns events. It enforces, per RFC 6455:
 *  - client frames must be masked (5.1) -> 1002
 *  - RSV1-3 must be 0 unless an extension allows them (5.2) -> 1002
 *  - reserved opcodes 3-7, 11-15 (5.2) -> 1002
 *  - 64-bit length with the top bit set (5.2) -> 1002; non-minimal lengths
 *    are accepted (the RFC says "minimal number of bytes MUST be used" for
 *    senders; Autobahn does not require rejection)
 *  - control frames: payload <= 125 and FIN set (5.5) -> 1002
 *  - continuation with no message open, or a data frame inside an open
 *    fragmented message (5.4) -> 1002
 *  - message size over max_message (decided from the frame header, before
 *    any byte of payload is buffered) -> 1009
 *  - text messages are UTF-8 validated incrementally, across frames and
 *    across calls; invalid -> 1007 as soon as the offending byte arrives
 *    (an incomplete sequence at FIN is also 1007)
 *  - close frame payload: 1 byte -> 1002; code must be valid (7.4):
 *    1000-1003, 1007-1014, 3000-4999; reason <= 123 bytes, valid UTF-8
 *    -> else 1002 (1007 for bad UTF-8 in the reason)
 *
 * Data payload is unmasked IN PLACE in the caller's buffer (which is why
 * `in` is not const) and returned as chunks pointing into it: a chunk view
 * is valid until the caller discards those bytes. Control-frame payloads
 * (<= 125 bytes) are collected inside the decoder and returned whole.
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
    /* DATA: opcode of the message (TEXT or BINARY), even for continuation frames */
    int opcode;
    /* DATA: 1 on the last chunk of the message (FIN frame, all payload delivered) */
    int fin;
    /* DATA: chunk view into the caller's (unmasked) buffer.
     * PING/PONG/CLOSE: the reason/payload, view into the decoder (valid until next call). */
    const uint8_t *data;
    size_t len;
    /* CLOSE: the peer's code, or SG_WS_CLOSE_NO_STATUS if the payload was empty */
    int close_code;
};

struct sg_ws_limits {
    uint64_t max_message; /* max total payload of one data message (default 1 MiB) */
    int allow_rsv1;       /* 1 if permessage-deflate was negotiated (future) */
};

/* Decoder state; embed it and call sg_ws_dec_init. No heap memory. */
struct sg_ws_dec {
    struct sg_ws_limits lim;
    int state;            /* internal */
    uint8_t hdr[14];      /* internal: header bytes collected so far */
    size_t hdr_len, hdr_need;
    int fin, opcode, masked, rsv;
    uint8_t mask[4];
    uint64_t remaining;   /* payload bytes left in the current frame */
    uint64_t mask_pos;    /* payload offset for the mask */
    int msg_opcode;       /* 0 when no data message is open */
    uint64_t msg_len;     /* payload delivered so far in the open message */
    uint32_t utf8_state;  /* incremental UTF-8 validator state */
    uint8_t ctl[125];     /* control frame payload */
    size_t ctl_len;
    /* after an error: */
    int close_code;       /* close code to send (1002, 1007, 1009) */
    const char *error;    /* static text naming the problem */
};

void sg_ws_dec_init(struct sg_ws_dec *d, const struct sg_ws_limits *lim);

/* Decodes from in[0..len). Returns the number of bytes consumed (>= 0) and
 * fills *ev; ev->type == SG_WS_EV_NONE means all input was consumed and more
 * is needed. Call again with the rest of the input until it returns 0 bytes
 * with SG_WS_EV_NONE. On a protocol error returns a negative sg_err
 * (SG_EWSFRAME, SG_EUTF8, SG_ETOOBIG) and sets d->close_code and d->error;
 * the decoder must not be used again. Unmasks data payload in place. */
ssize_t sg_ws_decode(struct sg_ws_dec *d, uint8_t *in, size_t len, struct sg_ws_event *ev);

/* Writes an unmasked server frame header for a payload of `len` bytes into
 * out (at least 10 bytes). Returns the header length (2, 4 or 10). The
 * payload itself is sent by the caller after the header, uncopied. */
size_t sg_ws_frame_header(uint8_t out[10], int opcode, int fin, uint64_t len);

/* Builds a complete close frame (code + reason, reason truncated to 123
 * bytes) into out (at least 127 bytes); code 0 means an empty close
 * payload. Returns the frame length. */
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
