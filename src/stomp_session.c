/* stomp_session.c - the per-connection STOMP state machine (see stomp_session.h).
 *
 * Spec references are to STOMP 1.2 (stomp.github.io/stomp-specification-1.2.html)
 * unless a version is named.
 *
 * Close codes (RFC 6455 section 7.4.1), one table for the whole module:
 *   1000  an ordinary ERROR: the relay refused an action, a duplicate or
 *         unknown subscription/transaction id (the frame itself was valid)
 *   1002  protocol: malformed frame (decoder SG_ESTOMP), a required header
 *         missing or invalid (destination, id, ack, heart-beat, ...), a frame
 *         not allowed in this state (anything before CONNECT, a second
 *         CONNECT, NACK in 1.0, server commands), no common version
 *   1008  policy: access refused, CONNECT timeout, heart-beat timeout, too
 *         many subscriptions or transactions, too much pipelined data while
 *         the broker checks the credentials
 *   1009  size: every decoder bound (SG_ETOOBIG, SG_ELINE, SG_ETOOMANY) and
 *         a transaction over max_tx_bytes
 *   1011  internal: out of memory while building a frame
 *
 * Re-entrancy: ops->authenticate may call sg_stomp_session_auth_result()
 * and ops->relay may call sg_stomp_session_receipt()/_fail() from inside
 * the call; every path re-checks s->state after calling out.
 */
#include "stomp_session.h"
#include "buf.h"
#include "error.h"

#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#ifndef SG_VERSION
#define SG_VERSION "dev"
#endif

#define WS_NORMAL 1000
#define WS_PROTOCOL 1002
#define WS_POLICY 1008
#define WS_TOOBIG 1009
#define WS_INTERNAL 1011

#define WS_REASON_MAX 123 /* RFC 6455 5.5: control payload <= 125, 2 for the code */
#define ERR_MESSAGE_MAX 512

/* Until CONNECTED: the bound on the frame decoded and the bytes held
 * (config max_connect_frame 0 = this). */
#define CONNECT_FRAME_DEFAULT ((size_t)64 << 10)

/* An open transaction: its held frames in order, each one deep copy (a
 * single allocation: header array, NUL-terminated keys and values, body). */
struct sg_tx {
    char *id;
    struct sg_stomp_frame_copy **fr;
    size_t n, cap;
    size_t bytes; /* charged against max_tx_bytes: the copies and their slots */
};

struct sg_sub {
    char *id;
    char *dest;
};

struct sg_stomp_session {
    const struct sg_stomp_session_config *cfg;
    const struct sg_stomp_session_ops *ops;
    void *ctx;

    enum sg_stomp_state state;
    int subproto_cap; /* 0 = none */
    int version;      /* 0 until CONNECT was accepted */
    int authed;
    int close_err; /* what on_data returns once closed (SG_OK after DISCONNECT) */
    char id[37];
    char *login; /* may stay NULL (no login sent, no default) */
    char *vhost;

    /* heart-beats: negotiated periods and the CONNECTED header values */
    unsigned hb_out, hb_in;
    unsigned hb_hdr_sx, hb_hdr_sy;
    int hb_hdr; /* send a heart-beat header in CONNECTED */

    uint64_t now;              /* latest time we were told about */
    uint64_t connect_deadline; /* UINT64_MAX = none */
    uint64_t last_rx, last_tx;

    struct sg_stomp_dec dec;
    struct sg_buf out;     /* outbound frame being built */
    struct sg_buf pending; /* raw bytes received while AUTHENTICATING */

    struct sg_sub *subs;
    size_t nsubs, subs_cap;
    struct sg_tx *txs;
    size_t ntx, txs_cap;
    struct sg_stomp_frame *scratch; /* replayed transactional frames */
};

/* ---------------------------------------------------------------- helpers */

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static struct sg_stomp_header hdr(const char *k, const char *v)
{
    struct sg_stomp_header h = {k, strlen(k), v, strlen(v)};
    return h;
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t';
}

static void trim_view(const char **p, size_t *n)
{
    while (*n && is_ws(**p)) {
        (*p)++;
        (*n)--;
    }
    while (*n && is_ws((*p)[*n - 1]))
        (*n)--;
}

/* NUL-terminated copy of a view; NULL on ENOMEM. */
static char *dup_view(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s) return NULL;
    if (n) memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static char *dup_str(const char *s)
{
    return s ? dup_view(s, strlen(s)) : NULL;
}

/* Copies a header value into *out (NUL-terminated, malloc'd). Returns 1
 * when present, 0 when absent (*out NULL), SG_ESTOMP when the value holds a
 * NUL (we hand C strings to the relay) or SG_ENOMEM. */
static int header_str(const struct sg_stomp_frame *f, const char *key, char **out)
{
    *out = NULL;
    const struct sg_stomp_header *h = sg_stomp_header(f, key);
    if (!h) return 0;
    if (memchr(h->value, '\0', h->value_len)) return SG_ESTOMP;
    *out = dup_view(h->value, h->value_len);
    return *out ? 1 : SG_ENOMEM;
}

/* Truncates a copy of s to at most cap-1 bytes at a UTF-8 boundary and
 * replaces CR and LF, which would end a 1.0 header line. */
static void safe_text(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (n >= cap) {
        n = cap - 1;
        while (n && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    for (size_t i = 0; i < n; i++)
        dst[i] = (s[i] == '\r' || s[i] == '\n') ? ' ' : s[i];
    dst[n] = '\0';
}

/* Frames we send before a version was negotiated carry only our own
 * static text and raw CONNECT values: no escaping (as 1.0, and as CONNECTED). */
static int out_version(const struct sg_stomp_session *s)
{
    return s->version ? s->version : 10;
}

/* ------------------------------------------------------------ output side */

static void do_close(struct sg_stomp_session *s, int code, const char *reason, int err)
{
    if (s->state == SG_SESS_CLOSED) return;
    s->state = SG_SESS_CLOSED;
    s->close_err = err;
    char r[WS_REASON_MAX + 1];
    safe_text(r, sizeof r, reason ? reason : "");
    s->ops->close(s->ctx, code, r);
}

static int send_frame(struct sg_stomp_session *s, enum sg_stomp_cmd cmd,
                      const struct sg_stomp_header *h, size_t n, const uint8_t *body,
                      size_t body_len, int add_cl)
{
    sg_buf_clear(&s->out);
    int rc = sg_stomp_encode(&s->out, out_version(s), cmd, h, n, body, body_len, add_cl);
    if (rc != SG_OK) return rc;
    s->ops->send(s->ctx, s->out.data, s->out.len);
    if (s->now > s->last_tx) s->last_tx = s->now;
    return SG_OK;
}

/* Sends ERROR (section "ERROR": message header, receipt-id, a short
 * text/plain body) and closes with ws_code. on_data then returns err. */
static void error_close(struct sg_stomp_session *s, const char *message, const char *receipt,
                        const char *body, int ws_code, int err)
{
    if (s->state == SG_SESS_CLOSED) return;
    char msg[ERR_MESSAGE_MAX];
    safe_text(msg, sizeof msg, message ? message : "error");
    struct sg_stomp_header h[4];
    size_t n = 0;
    h[n++] = hdr("message", msg);
    if (receipt) h[n++] = hdr("receipt-id", receipt);
    h[n++] = hdr("content-type", "text/plain");
    if (!body) body = msg;
    int rc = send_frame(s, SG_STOMP_ERROR, h, n, (const uint8_t *)body, strlen(body), 1);
    if (rc == SG_ESTOMP && receipt) {
        /* a receipt value this version cannot carry (e.g. a trailing CR in
         * 1.0/1.1): the ERROR still goes out, without receipt-id */
        h[1] = h[2];
        rc = send_frame(s, SG_STOMP_ERROR, h, n - 1, (const uint8_t *)body, strlen(body), 1);
    }
    if (rc == SG_OK && s->ops->error_sent) s->ops->error_sent(s->ctx, err, msg);
    do_close(s, ws_code, msg, err);
}

static void send_receipt(struct sg_stomp_session *s, const char *receipt)
{
    if (s->state == SG_SESS_CLOSED || !receipt) return;
    struct sg_stomp_header h = hdr("receipt-id", receipt);
    int rc = send_frame(s, SG_STOMP_RECEIPT, &h, 1, NULL, 0, 0);
    if (rc == SG_ESTOMP)
        error_close(s, "invalid receipt header", NULL, NULL, WS_PROTOCOL, SG_ESTOMP);
    else if (rc != SG_OK)
        do_close(s, WS_INTERNAL, "internal error", rc);
}

/* Section "Heart-beating": CONNECTED carries "sx,sy"; 1.0 has no
 * heart-beating, so a 1.0 client only gets the header if it asked. */
static void send_connected(struct sg_stomp_session *s)
{
    char ver[4] = {'1', '.', (char)('0' + s->version % 10), '\0'};
    char hb[32];
    struct sg_stomp_header h[4];
    size_t n = 0;
    if (s->version > 10) h[n++] = hdr("version", ver);
    h[n++] = hdr("session", s->id);
    if (s->cfg->server_name && *s->cfg->server_name) h[n++] = hdr("server", s->cfg->server_name);
    if (s->hb_hdr) {
        snprintf(hb, sizeof hb, "%u,%u", s->hb_hdr_sx, s->hb_hdr_sy);
        h[n++] = hdr("heart-beat", hb);
    }
    if (send_frame(s, SG_STOMP_CONNECTED, h, n, NULL, 0, 0) != SG_OK)
        do_close(s, WS_INTERNAL, "internal error", SG_ENOMEM);
}

/* --------------------------------------------------------- configuration */

void sg_stomp_session_config_defaults(struct sg_stomp_session_config *c)
{
    memset(c, 0, sizeof *c);
    c->server_name = "stompgate/" SG_VERSION;
    c->hb_send_ms = 10000;
    c->hb_recv_ms = 10000;
    c->hb_min_ms = 1000;
    c->hb_max_ms = 120000;
    c->hb_grace = 2.0;
    c->connect_timeout_ms = 10000;
    c->default_login = NULL;
    c->default_passcode = NULL;
    c->default_vhost = "/";
    c->max_subscriptions = 256;
    c->max_tx = 16;
    c->max_tx_bytes = 4u << 20;
    c->max_connect_frame = CONNECT_FRAME_DEFAULT;
    /* as the decoder's defaults (stomp_frame.h): RabbitMQ's web_stomp
     * delivers 16 MiB bodies, 64 KiB more for the headers */
    c->limits.max_frame = (16u << 20) + (64u << 10);
    c->limits.max_headers = 64;
    c->limits.max_header_line = 8192;
    c->limits.max_body = 16u << 20;
}

/* ------------------------------------------------------------- lifecycle */

struct sg_stomp_session *sg_stomp_session_new(const struct sg_stomp_session_config *cfg,
                                              const struct sg_stomp_session_ops *ops, void *ctx,
                                              int subproto_cap, uint64_t now_ms)
{
    assert(cfg && ops);
    struct sg_stomp_session *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->cfg = cfg;
    s->ops = ops;
    s->ctx = ctx;
    s->state = SG_SESS_AWAIT_CONNECT;
    s->subproto_cap = (subproto_cap >= 10 && subproto_cap <= 12) ? subproto_cap : 0;
    s->now = now_ms;
    s->last_rx = s->last_tx = now_ms;
    s->connect_deadline =
        cfg->connect_timeout_ms ? add_sat(now_ms, cfg->connect_timeout_ms) : UINT64_MAX;
    uuid_t u;
    uuid_generate_random(u);
    uuid_unparse_lower(u, s->id);
    /* CONNECT has no escaping and 1.1+ forbids trimming: decode it raw and
     * trim 1.0 values ourselves once the version is known. Until CONNECTED
     * the decoder holds at most a CONNECT's worth (the full limits follow
     * in sg_stomp_session_auth_result), and so do the held bytes. */
    sg_stomp_dec_init(&s->dec, &cfg->limits);
    size_t pre = cfg->max_connect_frame ? cfg->max_connect_frame : CONNECT_FRAME_DEFAULT;
    if (pre < s->dec.lim.max_frame) {
        struct sg_stomp_limits lim = s->dec.lim;
        lim.max_frame = pre;
        sg_stomp_dec_set_limits(&s->dec, &lim);
    }
    s->dec.trim = 0;
    sg_buf_init(&s->out, 0); /* bounded by what we put in: decoder-bounded values */
    sg_buf_init(&s->pending, s->dec.lim.max_frame);
    return s;
}

static void tx_free(struct sg_tx *t)
{
    for (size_t i = 0; i < t->n; i++)
        sg_stomp_frame_copy_free(t->fr[i]);
    free(t->fr);
    free(t->id);
    memset(t, 0, sizeof *t);
}

void sg_stomp_session_free(struct sg_stomp_session *s)
{
    if (!s) return;
    sg_stomp_dec_reset(&s->dec);
    sg_buf_reset(&s->out);
    sg_buf_reset(&s->pending);
    for (size_t i = 0; i < s->nsubs; i++) {
        free(s->subs[i].id);
        free(s->subs[i].dest);
    }
    free(s->subs);
    for (size_t i = 0; i < s->ntx; i++)
        tx_free(&s->txs[i]);
    free(s->txs);
    free(s->scratch);
    free(s->login);
    free(s->vhost);
    free(s);
}

/* --------------------------------------------------------------- CONNECT */

/* CONNECT header lookup: for 1.0 keys and values are compared/returned
 * trimmed (the book's client writes "login: x"); 1.1+ "MUST NOT trim". */
static int connect_header(const struct sg_stomp_frame *f, const char *key, int trim, const char **v,
                          size_t *n)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i < f->num_headers; i++) {
        const char *k = f->headers[i].key;
        size_t kn = f->headers[i].key_len;
        if (trim) trim_view(&k, &kn);
        if (kn != klen || memcmp(k, key, klen) != 0) continue;
        *v = f->headers[i].value;
        *n = f->headers[i].value_len;
        if (trim) trim_view(v, n);
        return 1;
    }
    return 0;
}

/* Section "Protocol Negotiation": highest common version, capped by the
 * WebSocket subprotocol. Entries are "1.0", "1.1", "1.2" separated by
 * commas; spaces around entries are tolerated, unknown entries ignored.
 * Returns 10/11/12 or 0 when none is in common. */
static int negotiate_version(const char *v, size_t n, int cap)
{
    int best = 0;
    size_t i = 0;
    while (i <= n) {
        size_t j = i;
        while (j < n && v[j] != ',')
            j++;
        const char *e = v + i;
        size_t en = j - i;
        trim_view(&e, &en);
        int ver = 0;
        if (en == 3 && e[0] == '1' && e[1] == '.' && e[2] >= '0' && e[2] <= '2')
            ver = 10 + (e[2] - '0');
        if (ver && (!cap || ver <= cap) && ver > best) best = ver;
        i = j + 1;
    }
    return best;
}

/* "cx,cy": two non-negative decimal integers, nothing else. Values are
 * saturated at UINT_MAX (they are clamped to hb_max anyway). */
static int parse_heartbeat(const char *v, size_t n, unsigned *cx, unsigned *cy)
{
    unsigned out[2] = {0, 0};
    size_t i = 0;
    for (int k = 0; k < 2; k++) {
        size_t start = i;
        unsigned long long x = 0;
        while (i < n && v[i] >= '0' && v[i] <= '9') {
            x = x * 10 + (unsigned)(v[i] - '0');
            if (x > UINT_MAX) x = UINT_MAX;
            i++;
        }
        if (i == start) return -1;
        out[k] = (unsigned)x;
        if (k == 0) {
            if (i >= n || v[i] != ',') return -1;
            i++;
        }
    }
    if (i != n) return -1;
    *cx = out[0];
    *cy = out[1];
    return 0;
}

static unsigned clamp_hb(const struct sg_stomp_session_config *c, unsigned v)
{
    if (!v) return 0;
    if (c->hb_min_ms && v < c->hb_min_ms) v = c->hb_min_ms;
    if (c->hb_max_ms && v > c->hb_max_ms) v = c->hb_max_ms;
    return v;
}

static const char *versions_text(int cap)
{
    switch (cap) {
    case 10:
        return "1.0";
    case 11:
        return "1.0,1.1";
    default:
        return "1.0,1.1,1.2";
    }
}

static void on_connect(struct sg_stomp_session *s, const struct sg_stomp_frame *f)
{
    char *login = NULL, *pass = NULL, *vhost = NULL;
    const char *v;
    size_t n;

    /* Version first: it decides whether the other values are trimmed. */
    int version = 10;
    if (connect_header(f, "accept-version", 0, &v, &n) ||
        connect_header(f, "accept-version", 1, &v, &n)) {
        version = negotiate_version(v, n, s->subproto_cap);
        if (!version) {
            char msg[64];
            snprintf(msg, sizeof msg, "Supported protocol versions are %s",
                     versions_text(s->subproto_cap));
            struct sg_stomp_header h[4] = {
                hdr("message", msg),
                hdr("version", versions_text(s->subproto_cap)),
                hdr("content-type", "text/plain"),
            };
            if (send_frame(s, SG_STOMP_ERROR, h, 3, (const uint8_t *)msg, strlen(msg), 1) ==
                    SG_OK &&
                s->ops->error_sent)
                s->ops->error_sent(s->ctx, SG_EVERSION, msg);
            do_close(s, WS_PROTOCOL, "unsupported STOMP version", SG_EVERSION);
            return;
        }
    }
    int trim = version == 10;

    unsigned cx = 0, cy = 0;
    int client_hb = connect_header(f, "heart-beat", trim, &v, &n);
    if (client_hb && parse_heartbeat(v, n, &cx, &cy) != 0) {
        error_close(s, "invalid heart-beat header", NULL,
                    "The heart-beat header must be two integers: cx,cy", WS_PROTOCOL, SG_ESTOMP);
        return;
    }
    if (client_hb) {
        /* The client's values decide (as RabbitMQ's STOMP plugin): we send
         * as often as it wants to receive and expect what it can send,
         * both clamped to [hb_min, hb_max]; 0 stays 0 (off). */
        s->hb_hdr_sx = s->hb_out = clamp_hb(s->cfg, cy);
        s->hb_hdr_sy = s->hb_in = clamp_hb(s->cfg, cx);
    } else {
        /* No header is 0,0 (section "Heart-beating"): nothing either way.
         * CONNECTED states our configured offer, for information only. */
        s->hb_out = s->hb_in = 0;
        s->hb_hdr_sx = clamp_hb(s->cfg, s->cfg->hb_send_ms);
        s->hb_hdr_sy = clamp_hb(s->cfg, s->cfg->hb_recv_ms);
    }
    s->hb_hdr = version > 10 || client_hb;

    if (connect_header(f, "host", trim, &v, &n) && n)
        vhost = dup_view(v, n);
    else
        vhost = dup_str(s->cfg->default_vhost ? s->cfg->default_vhost : "/");
    int want_login = 1;
    if (connect_header(f, "login", trim, &v, &n)) {
        login = dup_view(v, n);
        pass = connect_header(f, "passcode", trim, &v, &n) ? dup_view(v, n) : dup_str("");
    } else if (s->cfg->default_login) {
        login = dup_str(s->cfg->default_login);
        pass = dup_str(s->cfg->default_passcode ? s->cfg->default_passcode : "");
    } else {
        want_login = 0; /* authenticate(NULL, ...): the relay refuses */
        pass = dup_str("");
    }
    if (!vhost || !pass || (want_login && !login)) {
        do_close(s, WS_INTERNAL, "internal error", SG_ENOMEM);
        goto out;
    }

    /* From here on frames are decoded with this version's rules. */
    s->version = version;
    s->dec.version = version;
    s->dec.trim = trim;
    s->vhost = vhost;
    vhost = NULL;
    s->login = login;
    login = NULL;
    s->state = SG_SESS_AUTHENTICATING;
    /* Strings are borrowed for the call; the result may arrive inside it. */
    s->ops->authenticate(s->ctx, s->login, pass, s->vhost);
out:
    if (pass) {
        explicit_bzero(pass, strlen(pass));
        free(pass);
    }
    free(login);
    free(vhost);
}

/* ---------------------------------------------------------- subscriptions */

static struct sg_sub *sub_find_id(struct sg_stomp_session *s, const char *id)
{
    for (size_t i = 0; i < s->nsubs; i++)
        if (strcmp(s->subs[i].id, id) == 0) return &s->subs[i];
    return NULL;
}

static struct sg_sub *sub_find_dest(struct sg_stomp_session *s, const char *dest)
{
    for (size_t i = 0; i < s->nsubs; i++)
        if (strcmp(s->subs[i].dest, dest) == 0) return &s->subs[i];
    return NULL;
}

static void sub_remove(struct sg_stomp_session *s, struct sg_sub *sub)
{
    free(sub->id);
    free(sub->dest);
    size_t i = (size_t)(sub - s->subs);
    memmove(&s->subs[i], &s->subs[i + 1], (s->nsubs - i - 1) * sizeof *s->subs);
    s->nsubs--;
}

/* ------------------------------------------------------------ the relay */

static void run_action(struct sg_stomp_session *s, const struct sg_action *act)
{
    const char *errmsg = NULL;
    int rc = s->ops->relay(s->ctx, act, &errmsg);
    if (s->state == SG_SESS_CLOSED) return; /* the relay failed us from inside the call */
    if (rc == SG_AGAIN) return;
    if (rc < 0) {
        error_close(s, errmsg ? errmsg : sg_strerror(rc), act->receipt, NULL, WS_NORMAL, rc);
        return;
    }
    send_receipt(s, act->receipt);
}

/* ------------------------------------------------------------ transactions */

static struct sg_tx *tx_find(struct sg_stomp_session *s, const char *id)
{
    for (size_t i = 0; i < s->ntx; i++)
        if (strcmp(s->txs[i].id, id) == 0) return &s->txs[i];
    return NULL;
}

static void tx_remove(struct sg_stomp_session *s, struct sg_tx *t)
{
    size_t i = (size_t)(t - s->txs);
    memmove(&s->txs[i], &s->txs[i + 1], (s->ntx - i - 1) * sizeof *s->txs);
    s->ntx--;
}

/* What a held frame keeps: not its transaction and receipt headers (the
 * session has dealt with both). */
static int tx_keep_header(const struct sg_stomp_header *h, void *arg)
{
    (void)arg;
    return !((h->key_len == 11 && memcmp(h->key, "transaction", 11) == 0) ||
             (h->key_len == 7 && memcmp(h->key, "receipt", 7) == 0));
}

/* Holds a SEND/ACK/NACK for transaction `txid`, then answers its receipt:
 * the frame has been accepted into the transaction. */
static void tx_hold(struct sg_stomp_session *s, const struct sg_stomp_frame *f, const char *txid,
                    const char *receipt)
{
    struct sg_tx *t = tx_find(s, txid);
    if (!t) {
        error_close(s, "unknown transaction", receipt, NULL, WS_NORMAL, SG_ESTATE);
        return;
    }
    size_t size;
    struct sg_stomp_frame_copy *c = sg_stomp_frame_copy_filter(f, tx_keep_header, NULL, 1, &size);
    if (!c) {
        do_close(s, WS_INTERNAL, "internal error", SG_ENOMEM);
        return;
    }
    size += sizeof *t->fr; /* its slot in the list */
    if (size > s->cfg->max_tx_bytes || t->bytes > s->cfg->max_tx_bytes - size) {
        sg_stomp_frame_copy_free(c);
        error_close(s, "transaction too large", receipt, NULL, WS_TOOBIG, SG_ETOOBIG);
        return;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 4;
        struct sg_stomp_frame_copy **p = realloc(t->fr, cap * sizeof *p);
        if (!p) {
            sg_stomp_frame_copy_free(c);
            do_close(s, WS_INTERNAL, "internal error", SG_ENOMEM);
            return;
        }
        t->fr = p;
        t->cap = cap;
    }
    t->fr[t->n++] = c;
    t->bytes += size;
    send_receipt(s, receipt);
}

static void action_for(struct sg_stomp_session *s, const struct sg_stomp_frame *f,
                       struct sg_action *act);

/* COMMIT: replays the held frames in order, each action marked in_commit
 * with the COMMIT's receipt as commit_receipt (the relay may answer the
 * COMMIT as a unit). The receipt also rides on the last replayed action
 * (earlier ones carry none), so with an in-order relay the RECEIPT means
 * every action completed; an empty transaction answers at once. */
static void tx_commit(struct sg_stomp_session *s, struct sg_tx *t, const char *receipt)
{
    struct sg_tx tx = *t;
    tx_remove(s, t);
    if (!tx.n) {
        send_receipt(s, receipt);
        goto out;
    }
    if (!s->scratch) s->scratch = malloc(sizeof *s->scratch);
    if (!s->scratch) {
        do_close(s, WS_INTERNAL, "internal error", SG_ENOMEM);
        goto out;
    }
    for (size_t i = 0; i < tx.n && s->state == SG_SESS_CONNECTED; i++) {
        const struct sg_stomp_frame *fr = sg_stomp_frame_copy_view(tx.fr[i], s->scratch);
        struct sg_action act;
        action_for(s, fr, &act);
        act.receipt = i + 1 == tx.n ? receipt : NULL;
        act.in_commit = 1;
        act.commit_receipt = receipt;
        run_action(s, &act);
    }
out:
    tx_free(&tx);
}

/* Fills the action for a SEND/ACK/NACK that was validated when held: the
 * header views are NUL-terminated inside the held copy. */
static void action_for(struct sg_stomp_session *s, const struct sg_stomp_frame *f,
                       struct sg_action *act)
{
    memset(act, 0, sizeof *act);
    act->frame = f;
    const char *idkey = s->version >= 12 ? "id" : "message-id";
    const struct sg_stomp_header *h;
    switch (f->cmd) {
    case SG_STOMP_SEND:
        act->type = SG_ACT_SEND;
        h = sg_stomp_header(f, "destination");
        act->destination = h ? h->value : "";
        break;
    case SG_STOMP_NACK:
    case SG_STOMP_ACK:
        act->type = f->cmd == SG_STOMP_ACK ? SG_ACT_ACK : SG_ACT_NACK;
        h = sg_stomp_header(f, idkey);
        act->ack_id = h ? h->value : "";
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------- frame handlers */

struct frame_ctx {
    char *receipt;
    char *a; /* first string header of interest */
    char *b;
    char *tx;
};

/* Reads a header as a C string into *out; on failure sends ERROR/closes and
 * returns < 0. required: missing -> ERROR "missing <key> header". */
static int need(struct sg_stomp_session *s, const struct sg_stomp_frame *f, const char *key,
                int required, const char *receipt, char **out)
{
    int rc = header_str(f, key, out);
    if (rc == SG_ENOMEM) {
        do_close(s, WS_INTERNAL, "internal error", SG_ENOMEM);
        return rc;
    }
    if (rc < 0) {
        char m[64];
        snprintf(m, sizeof m, "invalid %s header", key);
        error_close(s, m, receipt, NULL, WS_PROTOCOL, SG_ESTOMP);
        return rc;
    }
    if (rc == 0 && required) {
        char m[64];
        snprintf(m, sizeof m, "missing %s header", key);
        error_close(s, m, receipt, NULL, WS_PROTOCOL, SG_ESTOMP);
        return SG_ESTOMP;
    }
    return SG_OK;
}

static void on_subscribe(struct sg_stomp_session *s, const struct sg_stomp_frame *f,
                         struct frame_ctx *c)
{
    char *ack = NULL;
    if (need(s, f, "destination", 1, c->receipt, &c->a) < 0) return;
    if (!*c->a) {
        error_close(s, "missing destination header", c->receipt, NULL, WS_PROTOCOL, SG_ESTOMP);
        return;
    }
    /* 1.1+: "id" is required; 1.0: optional, the destination is the id. */
    if (need(s, f, "id", s->version >= 11, c->receipt, &c->b) < 0) return;
    if (need(s, f, "ack", 0, c->receipt, &ack) < 0) return;
    enum sg_ack_mode mode = SG_ACK_AUTO;
    if (!ack || strcmp(ack, "auto") == 0)
        mode = SG_ACK_AUTO;
    else if (strcmp(ack, "client") == 0)
        mode = SG_ACK_CLIENT;
    else if (strcmp(ack, "client-individual") == 0) /* RabbitMQ accepts it for 1.0 too */
        mode = SG_ACK_CLIENT_INDIVIDUAL;
    else {
        free(ack);
        error_close(s, "invalid ack mode", c->receipt, NULL, WS_PROTOCOL, SG_ESTOMP);
        return;
    }
    free(ack);
    const char *id = c->b ? c->b : c->a;
    if (sub_find_id(s, id)) {
        error_close(s, "duplicate subscription id", c->receipt, NULL, WS_NORMAL, SG_ESTATE);
        return;
    }
    if (s->nsubs >= s->cfg->max_subscriptions) {
        error_close(s, "too many subscriptions", c->receipt, NULL, WS_POLICY, SG_ETOOMANY);
        return;
    }
    if (s->nsubs == s->subs_cap) {
        size_t cap = s->subs_cap ? s->subs_cap * 2 : 8;
        struct sg_sub *p = realloc(s->subs, cap * sizeof *p);
        if (!p) {
            do_close(s, WS_INTERNAL, "internal error", SG_ENOMEM);
            return;
        }
        s->subs = p;
        s->subs_cap = cap;
    }
    struct sg_sub sub = {dup_str(id), dup_str(c->a)};
    if (!sub.id || !sub.dest) {
        free(sub.id);
        free(sub.dest);
        do_close(s, WS_INTERNAL, "internal error", SG_ENOMEM);
        return;
    }
    s->subs[s->nsubs++] = sub;
    struct sg_action act = {.type = SG_ACT_SUBSCRIBE,
                            .frame = f,
                            .destination = c->a,
                            .sub_id = id,
                            .ack_mode = mode,
                            .receipt = c->receipt};
    run_action(s, &act);
}

static void on_unsubscribe(struct sg_stomp_session *s, const struct sg_stomp_frame *f,
                           struct frame_ctx *c)
{
    /* 1.0: by id or by destination; 1.1+: id required. */
    if (need(s, f, "id", s->version >= 11, c->receipt, &c->a) < 0) return;
    struct sg_sub *sub = NULL;
    if (c->a) {
        sub = sub_find_id(s, c->a);
    } else {
        if (need(s, f, "destination", 0, c->receipt, &c->b) < 0) return;
        if (!c->b) {
            error_close(s, "missing id header", c->receipt, NULL, WS_PROTOCOL, SG_ESTOMP);
            return;
        }
        sub = sub_find_dest(s, c->b);
    }
    if (!sub && c->a && strncmp(c->a, "/temp-queue/", 12) == 0) {
        /* a temp queue the relay made for a reply-to: the relay knows it
         * (and answers "no such subscription" if it does not) */
        struct sg_action act = {
            .type = SG_ACT_UNSUBSCRIBE, .frame = f, .sub_id = c->a, .receipt = c->receipt};
        run_action(s, &act);
        return;
    }
    if (!sub) {
        error_close(s, "unknown subscription", c->receipt, NULL, WS_NORMAL, SG_ESTATE);
        return;
    }
    /* The action's sub_id must outlive the table entry. */
    char *id = sub->id;
    sub->id = NULL;
    sub_remove(s, sub);
    struct sg_action act = {
        .type = SG_ACT_UNSUBSCRIBE, .frame = f, .sub_id = id, .receipt = c->receipt};
    run_action(s, &act);
    free(id);
}

static void on_send(struct sg_stomp_session *s, const struct sg_stomp_frame *f, struct frame_ctx *c)
{
    if (need(s, f, "destination", 1, c->receipt, &c->a) < 0) return;
    if (!*c->a) {
        error_close(s, "missing destination header", c->receipt, NULL, WS_PROTOCOL, SG_ESTOMP);
        return;
    }
    if (need(s, f, "transaction", 0, c->receipt, &c->tx) < 0) return;
    if (c->tx) {
        tx_hold(s, f, c->tx, c->receipt);
        return;
    }
    struct sg_action act = {
        .type = SG_ACT_SEND, .frame = f, .destination = c->a, .receipt = c->receipt};
    run_action(s, &act);
}

static void on_ack(struct sg_stomp_session *s, const struct sg_stomp_frame *f, struct frame_ctx *c)
{
    if (f->cmd == SG_STOMP_NACK && s->version == 10) {
        error_close(s, "NACK is not supported in STOMP 1.0", c->receipt, NULL, WS_PROTOCOL,
                    SG_ESTATE);
        return;
    }
    /* 1.2: "id" (the MESSAGE's ack header); 1.0/1.1: "message-id". */
    if (need(s, f, s->version >= 12 ? "id" : "message-id", 1, c->receipt, &c->a) < 0) return;
    if (need(s, f, "transaction", 0, c->receipt, &c->tx) < 0) return;
    if (c->tx) {
        tx_hold(s, f, c->tx, c->receipt);
        return;
    }
    struct sg_action act = {.type = f->cmd == SG_STOMP_ACK ? SG_ACT_ACK : SG_ACT_NACK,
                            .frame = f,
                            .ack_id = c->a,
                            .receipt = c->receipt};
    run_action(s, &act);
}

static void on_tx(struct sg_stomp_session *s, const struct sg_stomp_frame *f, struct frame_ctx *c)
{
    if (need(s, f, "transaction", 1, c->receipt, &c->tx) < 0) return;
    struct sg_tx *t = tx_find(s, c->tx);
    if (f->cmd == SG_STOMP_BEGIN) {
        if (t) {
            error_close(s, "duplicate transaction", c->receipt, NULL, WS_NORMAL, SG_ESTATE);
            return;
        }
        if (s->ntx >= s->cfg->max_tx) {
            error_close(s, "too many transactions", c->receipt, NULL, WS_POLICY, SG_ETOOMANY);
            return;
        }
        if (s->ntx == s->txs_cap) {
            size_t cap = s->txs_cap ? s->txs_cap * 2 : 4;
            struct sg_tx *p = realloc(s->txs, cap * sizeof *p);
            if (!p) {
                do_close(s, WS_INTERNAL, "internal error", SG_ENOMEM);
                return;
            }
            s->txs = p;
            s->txs_cap = cap;
        }
        struct sg_tx nt = {.id = c->tx};
        c->tx = NULL; /* owned by the table now */
        s->txs[s->ntx++] = nt;
        send_receipt(s, c->receipt);
        return;
    }
    if (!t) {
        error_close(s, "unknown transaction", c->receipt, NULL, WS_NORMAL, SG_ESTATE);
        return;
    }
    if (f->cmd == SG_STOMP_COMMIT) {
        tx_commit(s, t, c->receipt);
        return;
    }
    struct sg_tx dead = *t;
    tx_remove(s, t);
    tx_free(&dead);
    send_receipt(s, c->receipt);
}

static void on_connected_frame(struct sg_stomp_session *s, const struct sg_stomp_frame *f)
{
    struct frame_ctx c = {0};
    if (need(s, f, "receipt", 0, NULL, &c.receipt) < 0) goto out;
    switch (f->cmd) {
    case SG_STOMP_SEND:
        on_send(s, f, &c);
        break;
    case SG_STOMP_SUBSCRIBE:
        on_subscribe(s, f, &c);
        break;
    case SG_STOMP_UNSUBSCRIBE:
        on_unsubscribe(s, f, &c);
        break;
    case SG_STOMP_ACK:
    case SG_STOMP_NACK:
        on_ack(s, f, &c);
        break;
    case SG_STOMP_BEGIN:
    case SG_STOMP_COMMIT:
    case SG_STOMP_ABORT:
        on_tx(s, f, &c);
        break;
    case SG_STOMP_DISCONNECT:
        /* Section "DISCONNECT": RECEIPT, then the server closes. */
        send_receipt(s, c.receipt);
        do_close(s, WS_NORMAL, "", SG_OK);
        break;
    case SG_STOMP_CONNECT:
    case SG_STOMP_STOMP:
        error_close(s, "already connected", c.receipt, NULL, WS_PROTOCOL, SG_ESTATE);
        break;
    default:
        error_close(s, "unexpected frame", c.receipt, NULL, WS_PROTOCOL, SG_ESTATE);
        break;
    }
out:
    free(c.receipt);
    free(c.a);
    free(c.b);
    free(c.tx);
}

static void on_frame(struct sg_stomp_session *s, const struct sg_stomp_frame *f)
{
    if (s->ops->frame_in) s->ops->frame_in(s->ctx, f->cmd);
    if (s->state == SG_SESS_AWAIT_CONNECT) {
        if (f->cmd == SG_STOMP_CONNECT || f->cmd == SG_STOMP_STOMP)
            on_connect(s, f);
        else
            error_close(s, "expected CONNECT", NULL, "The first frame must be CONNECT or STOMP",
                        WS_PROTOCOL, SG_ESTATE);
        return;
    }
    on_connected_frame(s, f);
}

static void decode_error(struct sg_stomp_session *s, int err)
{
    int code = WS_PROTOCOL;
    if (err == SG_ETOOBIG || err == SG_ELINE || err == SG_ETOOMANY) code = WS_TOOBIG;
    const char *msg = s->dec.error ? s->dec.error : sg_strerror(err);
    error_close(s, msg, NULL, NULL, code, err);
}

/* Decodes and handles as much of p as the state allows; what arrives while
 * the broker checks the credentials is held raw (bounded by
 * max_connect_frame) and fed again after a successful auth_result. */
static void feed(struct sg_stomp_session *s, const uint8_t *p, size_t len)
{
    while (len > 0 && s->state != SG_SESS_CLOSED) {
        if (s->state == SG_SESS_AUTHENTICATING) {
            int rc = sg_buf_append(&s->pending, p, len);
            if (rc == SG_ENOMEM)
                do_close(s, WS_INTERNAL, "internal error", SG_ENOMEM);
            else if (rc != SG_OK)
                error_close(s, "too much data before CONNECTED", NULL, NULL, WS_POLICY, SG_ELIMIT);
            return;
        }
        struct sg_stomp_event ev = {SG_STOMP_EV_NONE, NULL};
        ssize_t n = sg_stomp_decode(&s->dec, p, len, &ev);
        if (n < 0) {
            decode_error(s, (int)n);
            return;
        }
        if ((size_t)n > len) n = (ssize_t)len; /* never trust a count past the input */
        p += n;
        len -= (size_t)n;
        if (ev.type == SG_STOMP_EV_FRAME && ev.frame)
            on_frame(s, ev.frame);
        else if (ev.type == SG_STOMP_EV_NONE && n == 0)
            break;
    }
}

/* ------------------------------------------------------------ public API */

int sg_stomp_session_on_data(struct sg_stomp_session *s, const uint8_t *p, size_t len,
                             uint64_t now_ms)
{
    if (s->state == SG_SESS_CLOSED) return SG_OK;
    if (now_ms > s->now) s->now = now_ms;
    if (len) s->last_rx = s->now;
    feed(s, p, len);
    return s->state == SG_SESS_CLOSED ? s->close_err : SG_OK;
}

void sg_stomp_session_auth_result(struct sg_stomp_session *s, int ok, uint64_t now_ms)
{
    if (s->state != SG_SESS_AUTHENTICATING) return;
    if (now_ms > s->now) s->now = now_ms;
    if (!ok) {
        error_close(s, "access refused", NULL, "Login or passcode refused", WS_POLICY, SG_EAUTH);
        return;
    }
    s->state = SG_SESS_CONNECTED;
    s->authed = 1;
    s->connect_deadline = UINT64_MAX;
    /* from now on the full bounds; the decoder is between frames (it just
     * returned the CONNECT), so this only raises them */
    sg_stomp_dec_set_limits(&s->dec, &s->cfg->limits);
    s->last_rx = s->now; /* the incoming heart-beat clock starts now */
    send_connected(s);
    if (s->pending.len && s->state == SG_SESS_CONNECTED) {
        /* Frames pipelined behind CONNECT. If we are inside on_data (auth
         * answered from inside ops->authenticate) pending is empty: the
         * caller's loop goes on with the rest of its input. */
        struct sg_buf held = s->pending;
        sg_buf_init(&s->pending, held.max);
        feed(s, held.data, held.len);
        sg_buf_reset(&held);
    }
}

void sg_stomp_session_receipt(struct sg_stomp_session *s, const char *receipt)
{
    if (s->state != SG_SESS_CONNECTED) return;
    send_receipt(s, receipt);
}

void sg_stomp_session_fail(struct sg_stomp_session *s, const char *message, const char *receipt,
                           int ws_code)
{
    error_close(s, message, receipt, NULL, ws_code ? ws_code : WS_NORMAL, SG_EBROKER);
}

void sg_stomp_session_on_paused(struct sg_stomp_session *s, uint64_t now_ms)
{
    s->last_rx = now_ms;
}

/* When a silent client is dropped: last_rx + hb_in * grace (a grace below 1
 * would drop clients before their period); UINT64_MAX when off. */
static uint64_t rx_deadline(const struct sg_stomp_session *s)
{
    if (!s->hb_in) return UINT64_MAX;
    double g = s->cfg->hb_grace >= 1.0 ? s->cfg->hb_grace : 1.0;
    double w = (double)s->hb_in * g;
    return w >= 1e18 ? UINT64_MAX : add_sat(s->last_rx, (uint64_t)w);
}

/* When our next heart-beat is due; UINT64_MAX when off. */
static uint64_t tx_deadline(const struct sg_stomp_session *s)
{
    return s->hb_out ? add_sat(s->last_tx, s->hb_out) : UINT64_MAX;
}

uint64_t sg_stomp_session_next_deadline(const struct sg_stomp_session *s)
{
    if (s->state == SG_SESS_CLOSED) return UINT64_MAX;
    if (s->state != SG_SESS_CONNECTED) return s->connect_deadline;
    uint64_t rx = rx_deadline(s), tx = tx_deadline(s);
    return rx < tx ? rx : tx;
}

void sg_stomp_session_on_tick(struct sg_stomp_session *s, uint64_t now_ms)
{
    if (s->state == SG_SESS_CLOSED) return;
    if (now_ms > s->now) s->now = now_ms;
    if (s->state != SG_SESS_CONNECTED) {
        if (s->now >= s->connect_deadline)
            error_close(s, "CONNECT timeout", NULL, NULL, WS_POLICY, SG_ETIMEOUT);
        return;
    }
    if (s->now >= rx_deadline(s)) {
        error_close(s, "heart-beat timeout", NULL, NULL, WS_POLICY, SG_ETIMEOUT);
        return;
    }
    if (s->now >= tx_deadline(s)) {
        s->ops->send_heartbeat(s->ctx);
        if (s->now > s->last_tx) s->last_tx = s->now;
    }
}

void sg_stomp_session_on_sent(struct sg_stomp_session *s, uint64_t now_ms)
{
    if (now_ms > s->now) s->now = now_ms;
    if (now_ms > s->last_tx) s->last_tx = now_ms;
}

enum sg_stomp_state sg_stomp_session_state(const struct sg_stomp_session *s)
{
    return s->state;
}

int sg_stomp_session_version(const struct sg_stomp_session *s)
{
    return s->version;
}

const char *sg_stomp_session_id(const struct sg_stomp_session *s)
{
    return s->id;
}

const char *sg_stomp_session_login(const struct sg_stomp_session *s)
{
    return s->authed ? s->login : NULL;
}

const char *sg_stomp_session_vhost(const struct sg_stomp_session *s)
{
    return s->vhost;
}

unsigned sg_stomp_session_hb_out_ms(const struct sg_stomp_session *s)
{
    return s->authed ? s->hb_out : 0;
}

unsigned sg_stomp_session_hb_in_ms(const struct sg_stomp_session *s)
{
    return s->authed ? s->hb_in : 0;
}
