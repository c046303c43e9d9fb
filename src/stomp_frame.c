/* stomp_frame.c - STOMP 1.0/1.1/1.2 frame codec (see stomp_frame.h).
 *
 * The decoder is a state machine over bytes. The command and header lines
 * are scanned byte by byte (each byte exactly once, d->scan marks the start
 * of the current line), so every check fires at the same input position
 * however the input is split; the body is copied in bulk (content-length)
 * or found with memchr (NUL-terminated). Header views point into d->buf and
 * are re-based whenever the buffer moves.
 */
#include "stomp_frame.h"
#include "error.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Decoder states; an error is stored as the (negative) sg_err in d->state. */
enum {
    SG_ST_IDLE = 0, /* between frames: heart-beat EOLs */
    SG_ST_CMD,      /* the command line */
    SG_ST_HEAD,     /* header lines up to the blank line */
    SG_ST_BODY,     /* the body */
    SG_ST_NUL,      /* content-length bytes read: the NUL must follow */
    SG_ST_DONE,     /* a frame was returned: start over on the next call */
};

/* Longest command name ("UNSUBSCRIBE"): a longer command line is unknown. */
#define SG_STOMP_CMD_MAX 11
/* After a frame, a buffer bigger than this is freed rather than kept. */
#define SG_STOMP_KEEP_CAP (64 * 1024)
/* The defaults of struct sg_stomp_limits (stomp_frame.h) */
#define SG_STOMP_DEFAULT_MAX_BODY ((size_t)16 << 20)
#define SG_STOMP_DEFAULT_MAX_FRAME (SG_STOMP_DEFAULT_MAX_BODY + ((size_t)64 << 10))

static const char *const sg_cmd_names[] = {
    [SG_STOMP_CONNECT] = "CONNECT",
    [SG_STOMP_STOMP] = "STOMP",
    [SG_STOMP_SEND] = "SEND",
    [SG_STOMP_SUBSCRIBE] = "SUBSCRIBE",
    [SG_STOMP_UNSUBSCRIBE] = "UNSUBSCRIBE",
    [SG_STOMP_ACK] = "ACK",
    [SG_STOMP_NACK] = "NACK",
    [SG_STOMP_BEGIN] = "BEGIN",
    [SG_STOMP_COMMIT] = "COMMIT",
    [SG_STOMP_ABORT] = "ABORT",
    [SG_STOMP_DISCONNECT] = "DISCONNECT",
    [SG_STOMP_CONNECTED] = "CONNECTED",
    [SG_STOMP_MESSAGE] = "MESSAGE",
    [SG_STOMP_RECEIPT] = "RECEIPT",
    [SG_STOMP_ERROR] = "ERROR",
};

const char *sg_stomp_cmd_name(enum sg_stomp_cmd c)
{
    if ((int)c <= (int)SG_STOMP_NONE || (int)c > (int)SG_STOMP_ERROR) return NULL;
    return sg_cmd_names[c];
}

enum sg_stomp_cmd sg_stomp_cmd_parse(const char *s, size_t len)
{
    if (!s) return SG_STOMP_NONE;
    for (int c = SG_STOMP_CONNECT; c <= SG_STOMP_ERROR; c++) {
        const char *n = sg_cmd_names[c];
        if (strlen(n) == len && memcmp(n, s, len) == 0) return (enum sg_stomp_cmd)c;
    }
    return SG_STOMP_NONE;
}

const struct sg_stomp_header *sg_stomp_header(const struct sg_stomp_frame *f, const char *key)
{
    size_t klen = strlen(key);
    /* STOMP 1.2 "Repeated Header Entries": only the first one counts. */
    for (size_t i = 0; i < f->num_headers; i++) {
        const struct sg_stomp_header *h = &f->headers[i];
        if (h->key_len == klen && memcmp(h->key, key, klen) == 0) return h;
    }
    return NULL;
}

int sg_stomp_header_copy(const struct sg_stomp_frame *f, const char *key, char *out, size_t cap)
{
    const struct sg_stomp_header *h = sg_stomp_header(f, key);
    if (!h) return SG_ENOKEY;
    if (h->value_len >= cap) return SG_ETOOBIG;
    if (h->value_len) memcpy(out, h->value, h->value_len);
    out[h->value_len] = '\0';
    return SG_OK;
}

/* STOMP 1.2 "Value Encoding": CONNECT and CONNECTED frames never escape
 * (STOMP is CONNECT's 1.2 alias); 1.0 has no escaping at all. */
static int sg_cmd_escapes(enum sg_stomp_cmd cmd)
{
    return cmd != SG_STOMP_CONNECT && cmd != SG_STOMP_STOMP && cmd != SG_STOMP_CONNECTED;
}

/* ------------------------------------------------------------------ */
/* decoder */

static void sg_dec_clear_frame(struct sg_stomp_dec *d)
{
    free(d->frame);
    d->frame = NULL;
    d->scan = 0;
    d->head_end = 0;
    d->content_length = -1;
    d->cr = 0;
}

static void sg_dec_apply_limits(struct sg_stomp_dec *d, const struct sg_stomp_limits *lim)
{
    static const struct sg_stomp_limits none;
    d->lim = lim ? *lim : none;
    /* 0 = default (a bound of zero is never what a config means) */
    if (!d->lim.max_frame) d->lim.max_frame = SG_STOMP_DEFAULT_MAX_FRAME;
    if (!d->lim.max_headers) d->lim.max_headers = 64;
    if (d->lim.max_headers > SG_STOMP_MAX_HEADERS_CAP)
        d->lim.max_headers = SG_STOMP_MAX_HEADERS_CAP;
    if (!d->lim.max_header_line) d->lim.max_header_line = 8192;
    if (!d->lim.max_body) d->lim.max_body = SG_STOMP_DEFAULT_MAX_BODY;
    d->buf.max = d->lim.max_frame;
}

void sg_stomp_dec_init(struct sg_stomp_dec *d, const struct sg_stomp_limits *lim)
{
    memset(d, 0, sizeof *d);
    d->version = 12;
    d->trim = 0;
    d->state = SG_ST_IDLE;
    sg_buf_init(&d->buf, 0);
    sg_dec_apply_limits(d, lim);
    sg_dec_clear_frame(d);
    d->error = NULL;
}

void sg_stomp_dec_set_limits(struct sg_stomp_dec *d, const struct sg_stomp_limits *lim)
{
    sg_dec_apply_limits(d, lim);
}

void sg_stomp_dec_reset(struct sg_stomp_dec *d)
{
    sg_buf_reset(&d->buf);
    sg_dec_clear_frame(d);
    d->state = SG_ST_IDLE;
}

static ssize_t sg_dec_fail(struct sg_stomp_dec *d, int err, const char *msg)
{
    d->state = err;
    d->error = msg;
    return err;
}

/* Makes room for n more bytes in d->buf, re-basing the header views if the
 * buffer moves. */
static int sg_dec_reserve(struct sg_stomp_dec *d, size_t n)
{
    if (d->buf.data && n <= d->buf.cap - d->buf.len) return SG_OK;
    size_t nh = d->frame->num_headers;
    size_t koff[SG_STOMP_MAX_HEADERS_CAP], voff[SG_STOMP_MAX_HEADERS_CAP];
    for (size_t i = 0; i < nh; i++) {
        koff[i] = (size_t)((const uint8_t *)d->frame->headers[i].key - d->buf.data);
        voff[i] = (size_t)((const uint8_t *)d->frame->headers[i].value - d->buf.data);
    }
    int rc = sg_buf_reserve(&d->buf, n);
    if (rc != SG_OK) return rc;
    for (size_t i = 0; i < nh; i++) {
        d->frame->headers[i].key = (const char *)d->buf.data + koff[i];
        d->frame->headers[i].value = (const char *)d->buf.data + voff[i];
    }
    return SG_OK;
}

static int sg_dec_append(struct sg_stomp_dec *d, const uint8_t *p, size_t n)
{
    int rc = sg_dec_reserve(d, n);
    if (rc != SG_OK) return rc;
    if (n) memcpy(d->buf.data + d->buf.len, p, n);
    d->buf.len += n;
    return SG_OK;
}

static ssize_t sg_dec_append_fail(struct sg_stomp_dec *d, int rc)
{
    if (rc == SG_ENOMEM) return sg_dec_fail(d, SG_ENOMEM, "out of memory");
    return sg_dec_fail(d, SG_ETOOBIG, "frame too big");
}

static void sg_trim(uint8_t **s, size_t *len)
{
    while (*len && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*len)--;
    }
    while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}

/* STOMP 1.2 "Value Encoding": \n \c \\ (1.1 and 1.2) and \r (1.2 only);
 * "Undefined escape sequences such as \t MUST be treated as a fatal
 * protocol error". In place: the result is never longer. */
static int sg_unescape(uint8_t *s, size_t *len, int version)
{
    size_t w = 0, n = *len;
    for (size_t r = 0; r < n; r++) {
        uint8_t c = s[r];
        if (c == '\\') {
            if (++r == n) return -1;
            switch (s[r]) {
            case 'n':
                c = '\n';
                break;
            case 'c':
                c = ':';
                break;
            case '\\':
                c = '\\';
                break;
            case 'r':
                if (version < 12) return -1;
                c = '\r';
                break;
            default:
                return -1;
            }
        }
        s[w++] = c;
    }
    *len = w;
    return 0;
}

/* Parses one complete header line at d->buf[d->scan..len): content_len
 * bytes without the EOL. STOMP 1.2 "Augmented BNF": header = name ":" value. */
static ssize_t sg_dec_header_line(struct sg_stomp_dec *d, size_t content_len)
{
    if (content_len > d->lim.max_header_line)
        return sg_dec_fail(d, SG_ELINE, "header line too long");
    if (d->frame->num_headers >= d->lim.max_headers)
        return sg_dec_fail(d, SG_ETOOMANY, "too many headers");
    uint8_t *line = d->buf.data + d->scan;
    uint8_t *colon = memchr(line, ':', content_len);
    if (!colon) return sg_dec_fail(d, SG_ESTOMP, "header line without colon");
    uint8_t *key = line, *val = colon + 1;
    size_t klen = (size_t)(colon - line), vlen = content_len - klen - 1;
    /* 1.0 only: 1.1+ "MUST NOT trim or pad" */
    if (d->trim) {
        sg_trim(&key, &klen);
        sg_trim(&val, &vlen);
    }
    /* 1.1+ BNF: header-name = 1*<any OCTET except CR or LF or ":"> */
    if (klen == 0 && d->version >= 11) return sg_dec_fail(d, SG_ESTOMP, "empty header name");
    if (d->version >= 11 && sg_cmd_escapes(d->frame->cmd)) {
        if (sg_unescape(key, &klen, d->version) != 0 || sg_unescape(val, &vlen, d->version) != 0)
            return sg_dec_fail(d, SG_ESTOMP, "invalid header escape");
    }
    struct sg_stomp_header *h = &d->frame->headers[d->frame->num_headers++];
    h->key = (const char *)key;
    h->key_len = klen;
    h->value = (const char *)val;
    h->value_len = vlen;
    return 0;
}

/* content-length = 1*DIGIT (STOMP 1.2 "Header content-length"); -1 if
 * invalid. Values above cap (or absurdly long) saturate at cap + 1. */
static long long sg_parse_length(const char *s, size_t len, size_t cap)
{
    const unsigned long long sat = 1000000000000000ULL; /* 1e15: no real body */
    if (cap >= sat) cap = sat - 1;
    if (len == 0) return -1;
    unsigned long long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        if (v <= cap) v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > cap) v = (unsigned long long)cap + 1;
    return (long long)v;
}

/* The blank line ended the header block: decide how the body ends, and
 * reject a too big frame before its body arrives. */
static ssize_t sg_dec_headers_done(struct sg_stomp_dec *d)
{
    d->head_end = d->buf.len;
    d->content_length = -1;
    const struct sg_stomp_header *cl = sg_stomp_header(d->frame, "content-length");
    if (cl) {
        long long n = sg_parse_length(cl->value, cl->value_len, d->lim.max_body);
        if (n < 0) return sg_dec_fail(d, SG_ESTOMP, "invalid content-length");
        if ((unsigned long long)n > d->lim.max_body)
            return sg_dec_fail(d, SG_ETOOBIG, "body too big");
        d->content_length = n;
    }
    /* the frame so far, the body and the NUL */
    size_t body = d->content_length > 0 ? (size_t)d->content_length : 0;
    if (d->head_end >= d->lim.max_frame || body > d->lim.max_frame - d->head_end - 1)
        return sg_dec_fail(d, SG_ETOOBIG, "frame too big");
    /* Room for the body up front, but not more than SG_STOMP_KEEP_CAP on a
     * header's word alone (a 30-byte header must not buy a 1 MiB buffer);
     * beyond that the buffer doubles as bytes arrive. */
    if (d->content_length >= 0) {
        int rc = sg_dec_reserve(d, body + 1 < SG_STOMP_KEEP_CAP ? body + 1 : SG_STOMP_KEEP_CAP);
        if (rc != SG_OK) return sg_dec_append_fail(d, rc);
    }
    d->state = SG_ST_BODY;
    return 0;
}

/* Command and header lines, byte by byte. Returns bytes consumed or an error. */
static ssize_t sg_dec_head(struct sg_stomp_dec *d, const uint8_t *p, size_t n)
{
    int is_cmd = d->state == SG_ST_CMD;
    size_t line_len = d->buf.len - d->scan; /* without the LF */
    size_t frame_len = d->buf.len;
    size_t i = 0;
    int eol = 0;
    ssize_t err = 0;
    for (; i < n; i++) {
        uint8_t c = p[i];
        /* STOMP 1.2 "Size Limits": the header block counts toward the frame */
        if (++frame_len > d->lim.max_frame) {
            err = sg_dec_fail(d, SG_ETOOBIG, "frame too big");
            goto out;
        }
        if (c == '\n') {
            eol = 1;
            i++;
            break;
        }
        line_len++;
        if (c == '\0') {
            err = sg_dec_fail(d, SG_ESTOMP, "NUL in frame header");
            goto out;
        }
        /* a CR may still turn out to be the EOL's */
        if (c != '\r') {
            if (is_cmd && line_len > SG_STOMP_CMD_MAX) {
                err = sg_dec_fail(d, SG_ESTOMP, "unknown command");
                goto out;
            }
            if (!is_cmd && line_len > d->lim.max_header_line) {
                err = sg_dec_fail(d, SG_ELINE, "header line too long");
                goto out;
            }
        }
    }
    int rc = sg_dec_append(d, p, i);
    if (rc != SG_OK) {
        err = sg_dec_append_fail(d, rc);
        goto out;
    }
    if (!eol) goto out;

    /* STOMP 1.2 "Augmented BNF": EOL = [CR] LF */
    size_t content_len = d->buf.len - d->scan - 1;
    if (content_len && d->buf.data[d->scan + content_len - 1] == '\r') content_len--;
    if (is_cmd) {
        enum sg_stomp_cmd cmd =
            sg_stomp_cmd_parse((const char *)d->buf.data + d->scan, content_len);
        if (cmd == SG_STOMP_NONE) {
            err = sg_dec_fail(d, SG_ESTOMP, "unknown command");
            goto out;
        }
        d->frame->cmd = cmd;
        d->state = SG_ST_HEAD;
    } else if (content_len == 0) {
        err = sg_dec_headers_done(d);
    } else {
        err = sg_dec_header_line(d, content_len);
    }
    d->scan = d->buf.len;
out:
    return err < 0 ? err : (ssize_t)i;
}

static void sg_dec_finish(struct sg_stomp_dec *d, struct sg_stomp_event *ev)
{
    /* the NUL is kept in the buffer: body[body_len] == '\0' */
    d->frame->body = d->buf.data + d->head_end;
    d->frame->body_len = d->buf.len - d->head_end - 1;
    d->state = SG_ST_DONE;
    ev->type = SG_STOMP_EV_FRAME;
    ev->frame = d->frame;
}

/* The body up to the first NUL (no content-length). */
static ssize_t sg_dec_body_nul(struct sg_stomp_dec *d, const uint8_t *p, size_t n,
                               struct sg_stomp_event *ev)
{
    const uint8_t *z = memchr(p, 0, n);
    size_t chunk = z ? (size_t)(z - p) : n;
    size_t body_len = d->buf.len - d->head_end;
    /* (bounds lowered mid-frame by sg_stomp_dec_set_limits leave no room) */
    size_t room_body = body_len < d->lim.max_body ? d->lim.max_body - body_len : 0;
    /* keep one byte for the NUL */
    size_t room_frame = d->buf.len < d->lim.max_frame ? d->lim.max_frame - 1 - d->buf.len : 0;
    if (chunk > room_body || chunk > room_frame) {
        /* whichever bound the byte stream crosses first */
        if (room_body <= room_frame) return sg_dec_fail(d, SG_ETOOBIG, "body too big");
        return sg_dec_fail(d, SG_ETOOBIG, "frame too big");
    }
    int rc = sg_dec_append(d, p, z ? chunk + 1 : chunk);
    if (rc != SG_OK) return sg_dec_append_fail(d, rc);
    if (z) {
        sg_dec_finish(d, ev);
        return (ssize_t)chunk + 1;
    }
    return (ssize_t)chunk;
}

ssize_t sg_stomp_decode(struct sg_stomp_dec *d, const uint8_t *in, size_t len,
                        struct sg_stomp_event *ev)
{
    size_t off = 0;
    ssize_t n;
    ev->type = SG_STOMP_EV_NONE;
    ev->frame = NULL;
    if (d->state < 0) return d->state;
    if (d->state == SG_ST_DONE) {
        if (d->buf.cap > SG_STOMP_KEEP_CAP)
            sg_buf_reset(&d->buf);
        else
            sg_buf_clear(&d->buf);
        sg_dec_clear_frame(d);
        d->state = SG_ST_IDLE;
    }
    while (off < len) {
        switch (d->state) {
        case SG_ST_IDLE:
            /* STOMP 1.2 "Heart-beating": EOLs between frames */
            if (in[off] == '\n') {
                d->cr = 0;
                ev->type = SG_STOMP_EV_HEARTBEAT;
                return (ssize_t)off + 1;
            }
            if (d->cr) return sg_dec_fail(d, SG_ESTOMP, "CR not followed by LF");
            if (in[off] == '\r') {
                d->cr = 1;
                off++;
                break;
            }
            /* a frame starts: its header table (not zeroed: only the
             * counted slots are ever read) */
            if (!d->frame && !(d->frame = malloc(sizeof *d->frame)))
                return sg_dec_fail(d, SG_ENOMEM, "out of memory");
            d->frame->cmd = SG_STOMP_NONE;
            d->frame->num_headers = 0;
            d->frame->body = NULL;
            d->frame->body_len = 0;
            d->state = SG_ST_CMD;
            break;
        case SG_ST_CMD:
        case SG_ST_HEAD:
            n = sg_dec_head(d, in + off, len - off);
            if (n < 0) return n;
            off += (size_t)n;
            break;
        case SG_ST_BODY:
            if (d->content_length < 0) {
                n = sg_dec_body_nul(d, in + off, len - off, ev);
                if (n < 0) return n;
                off += (size_t)n;
                if (ev->type == SG_STOMP_EV_FRAME) return (ssize_t)off;
            } else {
                /* STOMP 1.2 "Header content-length": exactly that many
                 * octets, whatever they are, copied in bulk */
                size_t have = d->buf.len - d->head_end;
                size_t need = (size_t)d->content_length - have;
                size_t take = need < len - off ? need : len - off;
                int rc = sg_dec_append(d, in + off, take);
                if (rc != SG_OK) return sg_dec_append_fail(d, rc);
                off += take;
                if (take == need) d->state = SG_ST_NUL;
            }
            break;
        case SG_ST_NUL:
            if (in[off] != '\0')
                return sg_dec_fail(d, SG_ESTOMP,
                                   "frame not terminated by NUL after content-length");
            if (sg_dec_append(d, in + off, 1) != SG_OK)
                return sg_dec_fail(d, SG_ETOOBIG, "frame too big");
            off++;
            sg_dec_finish(d, ev);
            return (ssize_t)off;
        default:
            return sg_dec_fail(d, SG_ESTOMP, "decoder misuse");
        }
    }
    /* a content-length of 0 needs no body byte to reach SG_ST_NUL */
    if (d->state == SG_ST_BODY && d->content_length == 0) d->state = SG_ST_NUL;
    return (ssize_t)off;
}

/* ------------------------------------------------------------------ */
/* encoder */

/* Escaping modes: 0 none (1.0, CONNECT, CONNECTED), 11, 12. */
static int sg_esc_mode(int version, enum sg_stomp_cmd cmd)
{
    if (version < 11 || !sg_cmd_escapes(cmd)) return 0;
    return version >= 12 ? 12 : 11;
}

/* Whether a key or value can be written so that sg_stomp_decode gives it
 * back: no NUL (it would end the header block), no LF or key colon when not
 * escaping, no trailing CR unless 1.2 escapes it (it would read as CRLF),
 * no empty key from 1.1 on. */
static int sg_representable(int mode, int version, const char *s, size_t len, int is_key)
{
    if (len == 0) return !(is_key && version >= 11);
    if (memchr(s, '\0', len)) return 0;
    if (mode == 0 && (memchr(s, '\n', len) || (is_key && memchr(s, ':', len)))) return 0;
    if (mode != 12 && !is_key && len && s[len - 1] == '\r') return 0;
    return 1;
}

static size_t sg_escaped_len(int mode, const char *s, size_t len)
{
    size_t n = len;
    if (!mode) return n;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '\n' || c == ':' || c == '\\' || (c == '\r' && mode == 12)) n++;
    }
    return n;
}

static uint8_t *sg_escape(int mode, uint8_t *w, const char *s, size_t len)
{
    if (!mode) {
        if (len) memcpy(w, s, len);
        return w + len;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        switch (c) {
        case '\n':
            *w++ = '\\';
            *w++ = 'n';
            break;
        case ':':
            *w++ = '\\';
            *w++ = 'c';
            break;
        case '\\':
            *w++ = '\\';
            *w++ = '\\';
            break;
        case '\r':
            if (mode == 12) {
                *w++ = '\\';
                *w++ = 'r';
                break;
            }
            *w++ = (uint8_t)c;
            break;
        default:
            *w++ = (uint8_t)c;
            break;
        }
    }
    return w;
}

static int sg_encode_header(struct sg_buf *out, int mode, int version, const char *key,
                            size_t key_len, const char *value, size_t value_len)
{
    if (!sg_representable(mode, version, key, key_len, 1) ||
        !sg_representable(mode, version, value, value_len, 0))
        return SG_ESTOMP;
    size_t kl = sg_escaped_len(mode, key, key_len), vl = sg_escaped_len(mode, value, value_len);
    if (kl > SIZE_MAX - vl - 2) return SG_ETOOBIG;
    int rc = sg_buf_reserve(out, kl + vl + 2);
    if (rc != SG_OK) return rc;
    uint8_t *w = out->data + out->len;
    w = sg_escape(mode, w, key, key_len);
    *w++ = ':';
    w = sg_escape(mode, w, value, value_len);
    *w++ = '\n';
    out->len = (size_t)(w - out->data);
    return SG_OK;
}

int sg_stomp_encode_header(struct sg_buf *out, int version, const char *key, size_t key_len,
                           const char *value, size_t value_len)
{
    return sg_encode_header(out, sg_esc_mode(version, SG_STOMP_SEND), version, key, key_len, value,
                            value_len);
}

int sg_stomp_encode(struct sg_buf *out, int version, enum sg_stomp_cmd cmd,
                    const struct sg_stomp_header *headers, size_t num_headers, const uint8_t *body,
                    size_t body_len, int add_content_length)
{
    size_t mark = out->len;
    const char *name = sg_stomp_cmd_name(cmd);
    int mode = sg_esc_mode(version, cmd);
    int rc = SG_ESTOMP;
    if (!name) goto out;
    rc = sg_buf_append_str(out, name);
    if (rc == SG_OK) rc = sg_buf_append(out, "\n", 1);
    for (size_t i = 0; rc == SG_OK && i < num_headers; i++)
        rc = sg_encode_header(out, mode, version, headers[i].key, headers[i].key_len,
                              headers[i].value, headers[i].value_len);
    if (rc == SG_OK && add_content_length) {
        char cl[48];
        int n = snprintf(cl, sizeof cl, "content-length:%zu\n", body_len);
        rc = sg_buf_append(out, cl, (size_t)n);
    }
    if (rc == SG_OK) rc = sg_buf_append(out, "\n", 1);
    if (rc == SG_OK) rc = sg_buf_append(out, body, body_len);
    if (rc == SG_OK) rc = sg_buf_append(out, "", 1);
out:
    if (rc != SG_OK) out->len = mark;
    return rc;
}

/* ------------------------------------------------------------------ */
/* frame copies */

struct sg_stomp_frame_copy {
    enum sg_stomp_cmd cmd;
    size_t num_headers;
    const uint8_t *body; /* inside the block, followed by a NUL */
    size_t body_len;
    struct sg_stomp_header headers[]; /* then the strings, then the body */
};

/* a + b into *sum; 0 on overflow (sizes come from views of real memory, so
 * this never fires in practice, but a wrapped size would be a heap overflow) */
static int sg_size_add(size_t *sum, size_t a, size_t b)
{
    if (a > SIZE_MAX - b) return 0;
    *sum = a + b;
    return 1;
}

static char *sg_copy_str(char *p, const char *s, size_t n)
{
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    return p + n + 1;
}

struct sg_stomp_frame_copy *sg_stomp_frame_copy_filter(const struct sg_stomp_frame *f,
                                                       int (*keep)(const struct sg_stomp_header *h,
                                                                   void *arg),
                                                       void *arg, int with_body, size_t *bytes)
{
    /* the header array of struct sg_stomp_frame cannot hold more */
    assert(f->num_headers <= SG_STOMP_MAX_HEADERS_CAP);
    unsigned char kept[SG_STOMP_MAX_HEADERS_CAP];
    size_t nh = 0, size = sizeof(struct sg_stomp_frame_copy);
    size_t body_len = with_body ? f->body_len : 0;
    struct sg_stomp_frame_copy *c = NULL;
    if (bytes) *bytes = 0;
    for (size_t i = 0; i < f->num_headers; i++) {
        const struct sg_stomp_header *h = &f->headers[i];
        kept[i] = !keep || keep(h, arg);
        if (!kept[i]) continue;
        nh++;
        if (!sg_size_add(&size, size, sizeof(struct sg_stomp_header)) ||
            !sg_size_add(&size, size, h->key_len) || !sg_size_add(&size, size, h->value_len) ||
            !sg_size_add(&size, size, 2))
            return NULL;
    }
    if (!sg_size_add(&size, size, body_len) || !sg_size_add(&size, size, 1)) return NULL;
    c = malloc(size);
    if (!c) return NULL;
    c->cmd = f->cmd;
    c->num_headers = nh;
    char *p = (char *)&c->headers[nh];
    size_t k = 0;
    for (size_t i = 0; i < f->num_headers; i++) {
        if (!kept[i]) continue;
        const struct sg_stomp_header *h = &f->headers[i];
        struct sg_stomp_header *o = &c->headers[k++];
        o->key = p;
        o->key_len = h->key_len;
        p = sg_copy_str(p, h->key, h->key_len);
        o->value = p;
        o->value_len = h->value_len;
        p = sg_copy_str(p, h->value, h->value_len);
    }
    c->body = (const uint8_t *)p;
    c->body_len = body_len;
    sg_copy_str(p, (const char *)f->body, body_len);
    if (bytes) *bytes = size;
    return c;
}

struct sg_stomp_frame_copy *sg_stomp_frame_copy_new(const struct sg_stomp_frame *f, size_t *bytes)
{
    return sg_stomp_frame_copy_filter(f, NULL, NULL, 1, bytes);
}

void sg_stomp_frame_copy_free(struct sg_stomp_frame_copy *c)
{
    free(c);
}

const struct sg_stomp_frame *sg_stomp_frame_copy_view(const struct sg_stomp_frame_copy *c,
                                                      struct sg_stomp_frame *out)
{
    out->cmd = c->cmd;
    out->num_headers = c->num_headers;
    if (c->num_headers) memcpy(out->headers, c->headers, c->num_headers * sizeof c->headers[0]);
    out->body = c->body;
    out->body_len = c->body_len;
    return out;
}

size_t sg_stomp_frame_copy_nheaders(const struct sg_stomp_frame_copy *c)
{
    return c->num_headers;
}

const struct sg_stomp_header *sg_stomp_frame_copy_header(const struct sg_stomp_frame_copy *c,
                                                         size_t i)
{
    return i < c->num_headers ? &c->headers[i] : NULL;
}
