/* stomp_frame.h - STOMP 1.0/1.1/1.2 frame codec, sans-I/O.
 *
 * Decoder: stream-oriented. Bytes arrive in any split (several frames in
 * one WebSocket message, one frame over several messages); EOLs between
 * frames are heart-beats. The decoder copies the current frame into its own
 * bounded buffer, so the caller may discard input once it has been
 * consumed. Views in a returned frame are valid until the next call on the
 * decoder.
 *
 * Rules (STOMP 1.2 "Augmented BNF", "Value Encoding", "Repeated Header
 * Entries", "Size Limits"; 1.0 and 1.1 differences noted):
 *  - command line, then header lines "key:value", then a blank line, then
 *    the body, then NUL. Lines end in LF or CRLF (CRLF accepted for every
 *    version: the 1.0/1.1 specs are silent, real clients send it).
 *  - body ends at the first NUL, or, with a valid content-length header,
 *    after exactly that many bytes, which must be followed by NUL (bodies
 *    may contain NULs). A content-length that is not a non-negative decimal
 *    integer -> error.
 *  - repeated header: the first occurrence wins; later ones are kept in the
 *    array after it (so a caller can still see them) but sg_stomp_header()
 *    returns the first.
 *  - escaping (dec->version >= 11, never in CONNECT/STOMP/CONNECTED):
 *    \n \c \\ in 1.1; plus \r in 1.2; any other escape, or a trailing
 *    backslash -> error. Decoded in place in the decoder's buffer.
 *  - dec->trim (set for 1.0): surrounding spaces and tabs of keys and values
 *    are removed. Without trim nothing is trimmed (1.1/1.2 "MUST NOT trim").
 *  - a header line without ':' -> error; an empty command -> impossible
 *    (EOLs before a command are heart-beats); unknown command -> error
 *    (as soon as the command line is longer than any command); an empty
 *    header name -> error from 1.1 on; a NUL before the blank line -> error;
 *    a CR between frames not followed by LF -> error.
 *  - bounds: max_frame (whole frame incl. body), max_headers, max_header_line,
 *    max_body -> SG_ETOOBIG / SG_ETOOMANY / SG_ELINE. Every check fires at
 *    the first input byte that breaks it (an over-long line before its EOL,
 *    a too big content-length at the blank line), so the outcome never
 *    depends on how the input was split.
 *  - the body is followed by a NUL in the decoder's buffer
 *    (frame->body[frame->body_len] == '\0'); keys and values are not.
 *
 * Encoder: one complete frame into a struct sg_buf, with escaping per
 * version (none for CONNECT/STOMP/CONNECTED) and a content-length when asked.
 */
#ifndef SG_STOMP_FRAME_H
#define SG_STOMP_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "buf.h"

enum sg_stomp_cmd {
    SG_STOMP_NONE = 0,
    /* client */
    SG_STOMP_CONNECT,
    SG_STOMP_STOMP,
    SG_STOMP_SEND,
    SG_STOMP_SUBSCRIBE,
    SG_STOMP_UNSUBSCRIBE,
    SG_STOMP_ACK,
    SG_STOMP_NACK,
    SG_STOMP_BEGIN,
    SG_STOMP_COMMIT,
    SG_STOMP_ABORT,
    SG_STOMP_DISCONNECT,
    /* server */
    SG_STOMP_CONNECTED,
    SG_STOMP_MESSAGE,
    SG_STOMP_RECEIPT,
    SG_STOMP_ERROR,
};

/* "CONNECT", ... (a static string); NULL for NONE/out of range */
const char *sg_stomp_cmd_name(enum sg_stomp_cmd c);
/* Parses a command name (exact, case-sensitive); SG_STOMP_NONE if unknown. */
enum sg_stomp_cmd sg_stomp_cmd_parse(const char *s, size_t len);

struct sg_stomp_header {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
};

#define SG_STOMP_MAX_HEADERS_CAP 256

struct sg_stomp_frame {
    enum sg_stomp_cmd cmd;
    struct sg_stomp_header headers[SG_STOMP_MAX_HEADERS_CAP];
    size_t num_headers;
    const uint8_t *body;
    size_t body_len;
};

/* First header with this key (exact, case-sensitive), or NULL. */
const struct sg_stomp_header *sg_stomp_header(const struct sg_stomp_frame *f, const char *key);
/* Copies the value of the first header with this key into out (cap bytes,
 * NUL-terminated). Returns SG_OK; SG_ENOKEY if the frame has no such header;
 * SG_ETOOBIG if the value and its NUL do not fit cap. On error out is
 * unchanged. */
int sg_stomp_header_copy(const struct sg_stomp_frame *f, const char *key, char *out, size_t cap);

/* Defaults: no stricter than RabbitMQ's web_stomp, which delivers 16 MiB
 * bodies; the frame bound leaves 64 KiB for the command and headers. */
struct sg_stomp_limits {
    size_t max_frame;       /* default 16 MiB + 64 KiB */
    size_t max_headers;     /* default 64 (<= SG_STOMP_MAX_HEADERS_CAP) */
    size_t max_header_line; /* default 8192 (bytes of one "key:value" line) */
    size_t max_body;        /* default 16 MiB */
};

enum sg_stomp_event_type {
    SG_STOMP_EV_NONE = 0,  /* need more input */
    SG_STOMP_EV_HEARTBEAT, /* an EOL (LF or CRLF) between frames */
    SG_STOMP_EV_FRAME,     /* a complete frame in ev->frame */
};

struct sg_stomp_event {
    enum sg_stomp_event_type type;
    struct sg_stomp_frame *frame; /* points into the decoder; valid until the next call */
};

struct sg_stomp_dec {
    struct sg_stomp_limits lim;
    int version; /* 10, 11 or 12: escaping rules; set by the session after CONNECT */
    int trim;    /* 1: trim keys and values (1.0) */
    /* internal */
    int state;
    struct sg_buf buf;        /* the frame being collected */
    size_t scan;              /* how far buf has been scanned */
    size_t head_end;          /* offset just past the blank line, once known */
    long long content_length; /* -1 when absent */
    int cr;                   /* internal: a CR seen between frames */
    /* the frame being decoded: allocated when a frame starts and freed at
     * the next call after it was returned, so an idle session holds none
     * (a frame has 256 header slots: 8 KiB) */
    struct sg_stomp_frame *frame;
    /* after an error: */
    const char *error; /* static text for the ERROR frame's message header */
};

/* Initialises; version starts at 12 and trim at 0. CONNECT/STOMP/CONNECTED
 * frames are never unescaped, so the first frame decodes the same whatever
 * the version; the session sets version (and trim) after it. lim is copied
 * (NULL or a 0 field = the default; max_headers is capped at
 * SG_STOMP_MAX_HEADERS_CAP). */
void sg_stomp_dec_init(struct sg_stomp_dec *d, const struct sg_stomp_limits *lim);
/* Frees the buffer; the decoder is then back at the start of a stream. */
void sg_stomp_dec_reset(struct sg_stomp_dec *d);
/* Replaces the bounds (lim copied, NULL or a 0 field = the default, as for
 * sg_stomp_dec_init), e.g. the session's CONNECT-sized bounds by the full
 * ones once it is CONNECTED. Meant for use between frames: before any
 * input, or right after an event was returned (the returned frame's views
 * stay valid). Raising a bound is harmless at any point; a bound lowered in
 * the middle of a frame applies to that frame's remaining bytes (never a
 * wrap-around), though a body whose content-length was accepted at its
 * blank line is then only held to max_frame. */
void sg_stomp_dec_set_limits(struct sg_stomp_dec *d, const struct sg_stomp_limits *lim);

/* Decodes from in[0..len). Returns bytes consumed (>= 0) and fills *ev
 * (SG_STOMP_EV_NONE: all consumed, need more; the decoder never returns
 * SG_AGAIN). Call again with the rest of the input while it returns events.
 * On error returns a negative sg_err (SG_ESTOMP, SG_ETOOBIG, SG_ETOOMANY,
 * SG_ELINE, SG_ENOMEM) and sets d->error (a static string, one line); the
 * decoder must not be used again (it keeps returning the error). */
ssize_t sg_stomp_decode(struct sg_stomp_dec *d, const uint8_t *in, size_t len,
                        struct sg_stomp_event *ev);

/* Encoder. Appends COMMAND\n, each header (escaped per `version` unless the
 * command is CONNECT/STOMP/CONNECTED; 10 = no escaping), optionally
 * "content-length:N", a blank line, the body and a NUL. Returns SG_OK,
 * SG_ETOOBIG, SG_ENOMEM, or SG_ESTOMP for an invalid cmd or a header that
 * cannot be written so that it decodes back (a NUL; without escaping a LF,
 * or a ':' in a key; a value ending in CR unless 1.2 escapes it; an empty
 * key from 1.1 on): no header injection. On error out is left as it was.
 * A body with a NUL needs add_content_length (or a content-length header). */
int sg_stomp_encode(struct sg_buf *out, int version, enum sg_stomp_cmd cmd,
                    const struct sg_stomp_header *headers, size_t num_headers, const uint8_t *body,
                    size_t body_len, int add_content_length);

/* Appends one header line (escaped per version) to out: building block for
 * callers that assemble frames piecewise (fan-out appends per-subscriber
 * headers). Same return codes as sg_stomp_encode; nothing appended on error. */
int sg_stomp_encode_header(struct sg_buf *out, int version, const char *key, size_t key_len,
                           const char *value, size_t value_len);

/* Deep copies of a frame, for what outlives a decoder call (transactional
 * frames held until COMMIT, SENDs kept until the broker confirmed them,
 * SUBSCRIBE arguments). A copy is one malloc block: the header array, each
 * key and value followed by a NUL (so they can be used as C strings; the
 * lengths stay authoritative should a value hold a NUL itself), then the
 * body followed by a NUL. It references nothing outside itself. */
struct sg_stomp_frame_copy;

/* Deep copy of f (command, every header in order, body). f is borrowed for
 * the call. *bytes (may be NULL) gets the block size (0 on failure), the
 * amount to charge against a memory bound. Returns the copy, owned by the
 * caller (sg_stomp_frame_copy_free), or NULL on ENOMEM. */
struct sg_stomp_frame_copy *sg_stomp_frame_copy_new(const struct sg_stomp_frame *f, size_t *bytes);
/* The same, keeping only the headers for which keep(h, arg) returns
 * non-zero (called once per header, in order, with a view into f; keep NULL
 * keeps all) and the body only if with_body (else the copy's body is "",
 * length 0). sg_stomp_frame_copy_new(f, b) is
 * sg_stomp_frame_copy_filter(f, NULL, NULL, 1, b). */
struct sg_stomp_frame_copy *sg_stomp_frame_copy_filter(const struct sg_stomp_frame *f,
                                                       int (*keep)(const struct sg_stomp_header *h,
                                                                   void *arg),
                                                       void *arg, int with_body, size_t *bytes);
/* Frees a copy; NULL is a no-op. Every view of it dies with it. */
void sg_stomp_frame_copy_free(struct sg_stomp_frame_copy *c);
/* Fills *out (the caller's: struct sg_stomp_frame is large, e.g. keep one
 * thread-local or heap scratch frame) with a view of the copy and returns
 * out. The views in *out are valid while the copy lives. */
const struct sg_stomp_frame *sg_stomp_frame_copy_view(const struct sg_stomp_frame_copy *c,
                                                      struct sg_stomp_frame *out);
/* Number of headers in the copy, and header i (a view into the copy, NULL
 * when i is out of range). */
size_t sg_stomp_frame_copy_nheaders(const struct sg_stomp_frame_copy *c);
const struct sg_stomp_header *sg_stomp_frame_copy_header(const struct sg_stomp_frame_copy *c,
                                                         size_t i);

#endif
