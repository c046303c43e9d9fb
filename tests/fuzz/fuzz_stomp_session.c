/* fuzz_stomp_session.c - libFuzzer target for the STOMP session.
 *
 * Input: byte 0 = flags, byte 1 = split seed, then the client's bytes.
 *   flags & 3    WebSocket subprotocol cap: 0, 10, 11, 12
 *   flags & 4    small limits (4 subscriptions, 2 transactions, 512 tx bytes,
 *                1 KiB frames, 256 bytes until CONNECTED, 8 headers) so the
 *                bounds (and the switch to the full ones) are reachable
 *   flags & 8    authenticate answers later (after the first chunk) instead
 *                of from inside the call
 *   flags & 16   relay returns SG_AGAIN; receipts are answered at the end
 *   flags & 32   every third relay action fails with SG_EPROTO
 * The bytes are fed to one session whole and to another in chunks; then
 * both are ticked through their deadlines. Stub ops check invariants:
 *   - nothing is sent, no op is called after close; close at most once
 *   - every frame sent is exactly one well-formed STOMP frame
 *   - every ERROR has a message header and is followed by the close before
 *     the API call returns; every RECEIPT has a receipt-id
 *   - CONNECTED comes at most once and before any relay action
 *   - actions carry what their type needs (destination, sub_id, ack_id)
 *   - with synchronous auth, whole and chunked feeding give the same
 *     transcript (commands, actions, close code)
 * Violations abort(). Builds with clang -fsanitize=fuzzer or with gcc and
 * tests/fuzz/replay_main.c.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "stomp_frame.h"
#include "stomp_session.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c);              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define MAX_RECEIPTS 64

struct fz {
    struct sg_stomp_session *s;
    int flags;
    uint64_t now;
    int closed;
    int close_code;
    int connected_sent;
    int error_sent;
    int auth_pending;
    unsigned relay_calls;
    char *receipts[MAX_RECEIPTS];
    size_t nreceipts;
    /* transcript: a running hash of everything observable */
    uint64_t hash;
    unsigned events;
};

static void mix(struct fz *f, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        f->hash = (f->hash ^ b[i]) * 1099511628211ULL;
    f->events++;
}

static void mix_str(struct fz *f, const char *s)
{
    if (s)
        mix(f, s, strlen(s) + 1);
    else
        mix(f, "\xff", 1);
}

static void op_send(void *ctx, const uint8_t *p, size_t len)
{
    struct fz *f = ctx;
    CHECK(!f->closed);
    CHECK(!f->error_sent); /* ERROR is the last frame */
    struct sg_stomp_dec d;
    sg_stomp_dec_init(&d, NULL);
    int v = sg_stomp_session_version(f->s);
    d.version = v ? v : 10;
    struct sg_stomp_event ev;
    ssize_t n = sg_stomp_decode(&d, p, len, &ev);
    CHECK(n == (ssize_t)len);
    CHECK(ev.type == SG_STOMP_EV_FRAME);
    const struct sg_stomp_frame *fr = ev.frame;
    switch (fr->cmd) {
    case SG_STOMP_CONNECTED:
        CHECK(!f->connected_sent);
        CHECK(sg_stomp_header(fr, "session") != NULL);
        f->connected_sent = 1;
        break;
    case SG_STOMP_ERROR:
        CHECK(sg_stomp_header(fr, "message") != NULL);
        f->error_sent = 1;
        break;
    case SG_STOMP_RECEIPT:
        CHECK(f->connected_sent);
        CHECK(sg_stomp_header(fr, "receipt-id") != NULL);
        break;
    default:
        CHECK(0);
    }
    mix(f, &fr->cmd, sizeof fr->cmd);
    for (size_t i = 0; i < fr->num_headers; i++) {
        const struct sg_stomp_header *h = &fr->headers[i];
        if (h->key_len == 7 && memcmp(h->key, "session", 7) == 0) continue; /* random */
        mix(f, h->key, h->key_len);
        mix(f, h->value, h->value_len);
    }
    mix(f, fr->body, fr->body_len);
    sg_stomp_dec_reset(&d);
}

static void op_heartbeat(void *ctx)
{
    struct fz *f = ctx;
    CHECK(!f->closed);
    CHECK(f->connected_sent);
    mix(f, "HB", 2);
}

static void op_close(void *ctx, int code, const char *reason)
{
    struct fz *f = ctx;
    CHECK(!f->closed);
    CHECK(reason != NULL && strlen(reason) <= 123);
    CHECK(code == 1000 || code == 1002 || code == 1008 || code == 1009 || code == 1011);
    f->closed = 1;
    f->close_code = code;
    mix(f, &code, sizeof code);
}

static void op_auth(void *ctx, const char *login, const char *pass, const char *vhost)
{
    struct fz *f = ctx;
    CHECK(!f->closed);
    CHECK(pass != NULL && vhost != NULL);
    CHECK(sg_stomp_session_state(f->s) == SG_SESS_AUTHENTICATING);
    mix_str(f, login);
    mix_str(f, pass);
    mix_str(f, vhost);
    if (f->flags & 8)
        f->auth_pending = 1;
    else
        sg_stomp_session_auth_result(f->s, 1, f->now);
}

static int op_relay(void *ctx, const struct sg_action *act, const char **errmsg)
{
    struct fz *f = ctx;
    CHECK(!f->closed);
    CHECK(f->connected_sent);
    CHECK(sg_stomp_session_state(f->s) == SG_SESS_CONNECTED);
    CHECK(act->frame != NULL);
    switch (act->type) {
    case SG_ACT_SUBSCRIBE:
        CHECK(act->destination && *act->destination && act->sub_id);
        CHECK(act->ack_mode <= SG_ACK_CLIENT_INDIVIDUAL);
        break;
    case SG_ACT_UNSUBSCRIBE:
        CHECK(act->sub_id);
        break;
    case SG_ACT_SEND:
        CHECK(act->destination && *act->destination);
        break;
    case SG_ACT_ACK:
    case SG_ACT_NACK:
        CHECK(act->ack_id);
        break;
    default:
        CHECK(0);
    }
    mix(f, &act->type, sizeof act->type);
    mix_str(f, act->destination);
    mix_str(f, act->sub_id);
    mix_str(f, act->ack_id);
    mix_str(f, act->receipt);
    /* a replayed action knows its COMMIT; others carry no commit receipt */
    CHECK(act->in_commit == 0 || act->in_commit == 1);
    if (!act->in_commit) CHECK(act->commit_receipt == NULL);
    if (act->in_commit && act->receipt) CHECK(act->commit_receipt == act->receipt);
    mix(f, &act->in_commit, sizeof act->in_commit);
    mix_str(f, act->commit_receipt);
    mix(f, act->frame->body, act->frame->body_len);
    f->relay_calls++;
    if ((f->flags & 32) && f->relay_calls % 3 == 0) {
        *errmsg = "not yet supported";
        return SG_EPROTO;
    }
    if (f->flags & 16) {
        if (act->receipt && f->nreceipts < MAX_RECEIPTS) {
            f->receipts[f->nreceipts] = strdup(act->receipt);
            if (f->receipts[f->nreceipts]) f->nreceipts++;
        }
        return SG_AGAIN;
    }
    return SG_OK;
}

static const struct sg_stomp_session_ops fz_ops = {
    .send = op_send,
    .send_heartbeat = op_heartbeat,
    .close = op_close,
    .authenticate = op_auth,
    .relay = op_relay,
};

/* after every public call */
static void after_call(struct fz *f)
{
    if (f->error_sent) CHECK(f->closed);
    if (f->closed) {
        CHECK(sg_stomp_session_state(f->s) == SG_SESS_CLOSED);
        CHECK(sg_stomp_session_next_deadline(f->s) == UINT64_MAX);
    }
}

static void feed(struct fz *f, const uint8_t *p, size_t n)
{
    int was_closed = f->closed;
    int rc = sg_stomp_session_on_data(f->s, p, n, f->now);
    if (was_closed || !f->closed) CHECK(rc == SG_OK);
    if (rc != SG_OK) CHECK(f->closed && rc < 0);
    after_call(f);
}

static uint64_t run(const struct sg_stomp_session_config *cfg, int flags, const uint8_t *data,
                    size_t size, unsigned seed, int chunked)
{
    static const int caps[4] = {0, 10, 11, 12};
    struct fz f;
    memset(&f, 0, sizeof f);
    f.flags = flags;
    f.now = 1000;
    f.hash = 1469598103934665603ULL;
    f.s = sg_stomp_session_new(cfg, &fz_ops, &f, caps[flags & 3], f.now);
    if (!f.s) return 0;

    if (!chunked) {
        feed(&f, data, size);
    } else {
        size_t off = 0;
        unsigned x = seed * 2654435761u + 1;
        while (off < size) {
            x = x * 1103515245u + 12345u;
            size_t n = 1 + (x >> 16) % 17;
            if (n > size - off) n = size - off;
            feed(&f, data + off, n);
            off += n;
            if (f.auth_pending && (flags & 8)) {
                f.auth_pending = 0;
                sg_stomp_session_auth_result(f.s, 1, f.now);
                after_call(&f);
            }
        }
    }
    if (f.auth_pending) {
        f.auth_pending = 0;
        sg_stomp_session_auth_result(f.s, 1, f.now);
        after_call(&f);
    }
    for (size_t i = 0; i < f.nreceipts; i++) {
        sg_stomp_session_receipt(f.s, f.receipts[i]);
        after_call(&f);
        free(f.receipts[i]);
    }
    /* walk the timers: heart-beats, then a deadline */
    for (int i = 0; i < 8; i++) {
        uint64_t d = sg_stomp_session_next_deadline(f.s);
        if (d == UINT64_MAX) break;
        CHECK(d >= f.now);
        f.now = d;
        sg_stomp_session_on_tick(f.s, f.now);
        after_call(&f);
        /* a tick at the deadline deals with it */
        CHECK(sg_stomp_session_next_deadline(f.s) > f.now);
    }
    /* after close: everything is ignored */
    if (f.closed) {
        feed(&f, (const uint8_t *)"SEND\ndestination:/queue/a\nreceipt:1\n\nx\0", 40);
        sg_stomp_session_receipt(f.s, "1");
        sg_stomp_session_fail(f.s, "late", NULL, 0);
        sg_stomp_session_on_tick(f.s, UINT64_MAX - 1);
    }
    sg_stomp_session_free(f.s);
    return f.hash ^ ((uint64_t)f.events << 56) ^ (uint64_t)f.close_code;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    int flags = data[0];
    unsigned seed = data[1];
    data += 2;
    size -= 2;

    struct sg_stomp_session_config cfg;
    sg_stomp_session_config_defaults(&cfg);
    cfg.server_name = "stompgate/fuzz";
    if (flags & 4) {
        cfg.max_subscriptions = 4;
        cfg.max_tx = 2;
        cfg.max_tx_bytes = 512;
        cfg.limits.max_frame = 1024;
        cfg.max_connect_frame = 256;
        cfg.limits.max_headers = 8;
        cfg.limits.max_header_line = 128;
        cfg.limits.max_body = 256;
        cfg.default_login = "guest";
        cfg.default_passcode = "guest";
    }

    uint64_t whole = run(&cfg, flags, data, size, seed, 0);
    uint64_t split = run(&cfg, flags, data, size, seed, 1);
    /* Async auth changes when pipelined bytes are held against
     * max_connect_frame, so only synchronous runs must match exactly. */
    if (!(flags & 8)) CHECK(whole == split);
    return 0;
}
