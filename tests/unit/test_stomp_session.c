/* test_stomp_session.c - the STOMP session state machine (stomp_session.h).
 *
 * Stub ops record everything the session does: every frame it sends is
 * decoded back with the STOMP decoder (and must be exactly one frame),
 * heart-beats, the close, authenticate's arguments and relay actions. Each
 * record is also appended to a transcript, so a client script fed whole,
 * split at every boundary and one byte at a time must produce the same
 * transcript.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"
#include "stomp_frame.h"
#include "stomp_session.h"

#define MAXS 64
#define MAXA 64
#define MAXH 16

struct pframe {
    enum sg_stomp_cmd cmd;
    size_t nh;
    char k[MAXH][64];
    char v[MAXH][512];
    char body[1024];
    size_t body_len;
};

struct ract {
    enum sg_action_type type;
    char dest[256];
    char sub_id[256];
    enum sg_ack_mode ack_mode;
    char ack_id[256];
    char receipt[256];
    int has_receipt;
    char body[256];
    int has_tx_header;
    int has_receipt_header;
    int in_commit;
    int has_commit_receipt;
    char commit_receipt[256];
};

enum { AUTH_ASYNC = 0, AUTH_OK, AUTH_FAIL };

struct h {
    struct sg_stomp_session_config cfg;
    struct sg_stomp_session_ops ops;
    struct sg_stomp_session *s;
    uint64_t now;
    int auth_mode;
    int relay_rc;
    const char *relay_err;
    int relay_fail_inside; /* call sg_stomp_session_fail from inside relay */

    struct pframe f[MAXS];
    size_t nf;
    int hb;
    int closes;
    int close_code;
    char close_reason[128];
    int auth_calls;
    int auth_login_null;
    char auth_login[128], auth_pass[128], auth_vhost[128];
    struct ract a[MAXA];
    size_t na;
    int calls_after_close;
    /* the optional metrics ops (test_metrics_ops sets them) */
    int frames_in[SG_STOMP_ERROR + 1];
    int nerr, last_err;
    char last_err_msg[600];
    size_t nf_at_error; /* frames sent when error_sent came */
    char log[16384];
    size_t loglen;
};

static void logf_(struct h *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct h *h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(h->log + h->loglen, sizeof h->log - h->loglen, fmt, ap);
    va_end(ap);
    if (n > 0) h->loglen += (size_t)n;
    assert_true(h->loglen < sizeof h->log - 1);
}

static void cp(char *dst, size_t cap, const char *p, size_t n)
{
    assert_true(n < cap);
    memcpy(dst, p, n);
    dst[n] = '\0';
}

/* ---- stub ops */

static void st_send(void *ctx, const uint8_t *p, size_t len)
{
    struct h *h = ctx;
    if (h->closes) h->calls_after_close++;
    assert_true(h->nf < MAXS);
    struct sg_stomp_dec d;
    sg_stomp_dec_init(&d, NULL);
    int v = sg_stomp_session_version(h->s);
    d.version = v ? v : 10;
    struct sg_stomp_event ev;
    ssize_t n = sg_stomp_decode(&d, p, len, &ev);
    assert_int_equal(ev.type, SG_STOMP_EV_FRAME);
    assert_int_equal((size_t)n, len); /* exactly one frame, nothing after the NUL */
    struct pframe *pf = &h->f[h->nf++];
    memset(pf, 0, sizeof *pf);
    pf->cmd = ev.frame->cmd;
    assert_true(ev.frame->num_headers <= MAXH);
    pf->nh = ev.frame->num_headers;
    logf_(h, "%s", sg_stomp_cmd_name(pf->cmd));
    for (size_t i = 0; i < pf->nh; i++) {
        const struct sg_stomp_header *x = &ev.frame->headers[i];
        cp(pf->k[i], sizeof pf->k[i], x->key, x->key_len);
        cp(pf->v[i], sizeof pf->v[i], x->value, x->value_len);
        if (strcmp(pf->k[i], "session") == 0)
            logf_(h, " session=<id>");
        else
            logf_(h, " %s=%s", pf->k[i], pf->v[i]);
    }
    cp(pf->body, sizeof pf->body, (const char *)ev.frame->body, ev.frame->body_len);
    pf->body_len = ev.frame->body_len;
    logf_(h, " |%s|;\n", pf->body);
    sg_stomp_dec_reset(&d);
}

static void st_hb(void *ctx)
{
    struct h *h = ctx;
    if (h->closes) h->calls_after_close++;
    h->hb++;
    logf_(h, "HB;\n");
}

static void st_close(void *ctx, int code, const char *reason)
{
    struct h *h = ctx;
    if (h->closes) h->calls_after_close++;
    h->closes++;
    h->close_code = code;
    snprintf(h->close_reason, sizeof h->close_reason, "%s", reason);
    assert_true(strlen(reason) <= 123);
    logf_(h, "CLOSE %d;\n", code);
}

static void st_auth(void *ctx, const char *login, const char *pass, const char *vhost)
{
    struct h *h = ctx;
    if (h->closes) h->calls_after_close++;
    h->auth_calls++;
    h->auth_login_null = login == NULL;
    snprintf(h->auth_login, sizeof h->auth_login, "%s", login ? login : "");
    snprintf(h->auth_pass, sizeof h->auth_pass, "%s", pass);
    snprintf(h->auth_vhost, sizeof h->auth_vhost, "%s", vhost);
    logf_(h, "AUTH %s/%s/%s;\n", login ? login : "(null)", pass, vhost);
    if (h->auth_mode == AUTH_OK) sg_stomp_session_auth_result(h->s, 1, h->now);
    if (h->auth_mode == AUTH_FAIL) sg_stomp_session_auth_result(h->s, 0, h->now);
}

static int st_relay(void *ctx, const struct sg_action *act, const char **errmsg)
{
    struct h *h = ctx;
    if (h->closes) h->calls_after_close++;
    assert_true(h->na < MAXA);
    struct ract *r = &h->a[h->na++];
    memset(r, 0, sizeof *r);
    r->type = act->type;
    assert_non_null(act->frame);
    if (act->destination) snprintf(r->dest, sizeof r->dest, "%s", act->destination);
    if (act->sub_id) snprintf(r->sub_id, sizeof r->sub_id, "%s", act->sub_id);
    r->ack_mode = act->ack_mode;
    if (act->ack_id) snprintf(r->ack_id, sizeof r->ack_id, "%s", act->ack_id);
    r->has_receipt = act->receipt != NULL;
    if (act->receipt) snprintf(r->receipt, sizeof r->receipt, "%s", act->receipt);
    size_t bl =
        act->frame->body_len < sizeof r->body - 1 ? act->frame->body_len : sizeof r->body - 1;
    memcpy(r->body, act->frame->body, bl);
    r->has_tx_header = sg_stomp_header(act->frame, "transaction") != NULL;
    r->has_receipt_header = sg_stomp_header(act->frame, "receipt") != NULL;
    r->in_commit = act->in_commit;
    r->has_commit_receipt = act->commit_receipt != NULL;
    if (act->commit_receipt)
        snprintf(r->commit_receipt, sizeof r->commit_receipt, "%s", act->commit_receipt);
    logf_(h, "RELAY %d dest=%s sub=%s ack=%d ackid=%s receipt=%s body=%s", (int)r->type, r->dest,
          r->sub_id, (int)r->ack_mode, r->ack_id, r->has_receipt ? r->receipt : "-", r->body);
    if (act->in_commit) logf_(h, " commit=%s", act->commit_receipt ? act->commit_receipt : "-");
    logf_(h, ";\n");
    if (h->relay_fail_inside) {
        sg_stomp_session_fail(h->s, "broker said no", act->receipt, 1011);
        return SG_AGAIN;
    }
    if (h->relay_rc < 0) *errmsg = h->relay_err;
    return h->relay_rc;
}

static void st_frame_in(void *ctx, enum sg_stomp_cmd cmd)
{
    struct h *h = ctx;
    assert_true(cmd > SG_STOMP_NONE && cmd <= SG_STOMP_ERROR);
    h->frames_in[cmd]++;
}

static void st_error_sent(void *ctx, int err, const char *message)
{
    struct h *h = ctx;
    assert_int_equal(h->closes, 0); /* right after the ERROR, before the close */
    h->nerr++;
    h->last_err = err;
    h->nf_at_error = h->nf;
    snprintf(h->last_err_msg, sizeof h->last_err_msg, "%s", message);
}

/* ---- harness */

static struct h *h_alloc(void)
{
    struct h *h = calloc(1, sizeof *h);
    assert_non_null(h);
    sg_stomp_session_config_defaults(&h->cfg);
    h->cfg.server_name = "stompgate/test";
    h->ops.send = st_send;
    h->ops.send_heartbeat = st_hb;
    h->ops.close = st_close;
    h->ops.authenticate = st_auth;
    h->ops.relay = st_relay;
    h->auth_mode = AUTH_OK;
    h->relay_rc = SG_OK;
    h->now = 1000;
    return h;
}

static void h_start(struct h *h, int cap)
{
    h->s = sg_stomp_session_new(&h->cfg, &h->ops, h, cap, h->now);
    assert_non_null(h->s);
}

static struct h *h_new(int cap)
{
    struct h *h = h_alloc();
    h_start(h, cap);
    return h;
}

static void h_free(struct h *h)
{
    sg_stomp_session_free(h->s);
    free(h);
}

static int feed(struct h *h, const char *p, size_t n)
{
    return sg_stomp_session_on_data(h->s, (const uint8_t *)p, n, h->now);
}
#define FEED(h, lit) feed((h), (lit), sizeof(lit) - 1)

static const char *fh(const struct pframe *pf, const char *key)
{
    for (size_t i = 0; i < pf->nh; i++)
        if (strcmp(pf->k[i], key) == 0) return pf->v[i];
    return NULL;
}

static struct pframe *last(struct h *h)
{
    assert_true(h->nf > 0);
    return &h->f[h->nf - 1];
}

/* asserts that the last frame is an ERROR with this message and that the
 * session closed with code */
static void assert_error(struct h *h, const char *message, int code)
{
    struct pframe *e = last(h);
    assert_int_equal(e->cmd, SG_STOMP_ERROR);
    assert_non_null(fh(e, "message"));
    assert_string_equal(fh(e, "message"), message);
    assert_string_equal(fh(e, "content-type"), "text/plain");
    assert_non_null(fh(e, "content-length"));
    assert_true(e->body_len > 0);
    assert_int_equal(h->closes, 1);
    assert_int_equal(h->close_code, code);
    assert_int_equal(sg_stomp_session_state(h->s), SG_SESS_CLOSED);
}

static const char *connect_frame(int version)
{
    switch (version) {
    case 10:
        return "CONNECT\nlogin:guest\npasscode:guest\n\n";
    case 11:
        return "CONNECT\naccept-version:1.1\nlogin:guest\npasscode:guest\n\n";
    default:
        return "CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n";
    }
}

/* CONNECT with this version, synchronous auth ok */
static struct h *h_connected(int version)
{
    struct h *h = h_new(0);
    const char *c = connect_frame(version);
    assert_int_equal(feed(h, c, strlen(c) + 1), SG_OK);
    assert_int_equal(sg_stomp_session_state(h->s), SG_SESS_CONNECTED);
    assert_int_equal(sg_stomp_session_version(h->s), version);
    assert_int_equal(h->nf, 1);
    assert_int_equal(h->f[0].cmd, SG_STOMP_CONNECTED);
    return h;
}

/* ---- configuration */

static void test_config_defaults(void **state)
{
    (void)state;
    struct sg_stomp_session_config c;
    memset(&c, 0xAB, sizeof c);
    sg_stomp_session_config_defaults(&c);
    assert_non_null(c.server_name);
    assert_memory_equal(c.server_name, "stompgate/", 10);
    assert_int_equal(c.hb_send_ms, 10000);
    assert_int_equal(c.hb_recv_ms, 10000);
    assert_int_equal(c.hb_min_ms, 1000);
    assert_int_equal(c.hb_max_ms, 120000);
    assert_true(c.hb_grace == 2.0);
    assert_int_equal(c.connect_timeout_ms, 10000);
    assert_null(c.default_login);
    assert_null(c.default_passcode);
    assert_string_equal(c.default_vhost, "/");
    assert_int_equal(c.max_subscriptions, 256);
    assert_int_equal(c.max_tx, 16);
    assert_int_equal(c.max_tx_bytes, 4u << 20);
    assert_int_equal(c.max_connect_frame, 64u << 10);
    /* no stricter than RabbitMQ's web_stomp: a 16 MiB body and its headers */
    assert_int_equal(c.limits.max_frame, (16u << 20) + (64u << 10));
    assert_int_equal(c.limits.max_headers, 64);
    assert_int_equal(c.limits.max_header_line, 8192);
    assert_int_equal(c.limits.max_body, 16u << 20);
}

static void test_new_state(void **state)
{
    (void)state;
    struct h *h = h_new(0);
    assert_int_equal(sg_stomp_session_state(h->s), SG_SESS_AWAIT_CONNECT);
    assert_int_equal(sg_stomp_session_version(h->s), 0);
    assert_null(sg_stomp_session_login(h->s));
    const char *id = sg_stomp_session_id(h->s);
    assert_int_equal(strlen(id), 36);
    assert_true(id[8] == '-' && id[13] == '-' && id[18] == '-' && id[23] == '-');
    assert_true(id[14] == '4'); /* random (version 4) uuid */
    for (const char *p = id; *p; p++)
        assert_true(*p == '-' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));
    struct h *h2 = h_new(0);
    assert_string_not_equal(id, sg_stomp_session_id(h2->s));
    h_free(h2);
    h_free(h);
}

/* ---- version negotiation */

static void test_version_table(void **state)
{
    (void)state;
    static const struct {
        int cap;
        const char *accept; /* NULL: no header */
        int want;           /* 0: ERROR */
        const char *err_versions;
    } t[] = {
        {0, NULL, 10, NULL},          {0, "1.0,1.1", 11, NULL},     {0, "1.2,1.1,1.0", 12, NULL},
        {0, "1.0", 10, NULL},         {0, " 1.1 , 1.0 ", 11, NULL}, {0, "1.1,3.0,foo", 11, NULL},
        {12, NULL, 10, NULL},         {12, "1.2", 12, NULL},        {11, "1.2,1.1", 11, NULL},
        {11, "1.2", 0, "1.0,1.1"},    {10, "1.1", 0, "1.0"},        {10, "1.0,1.1,1.2", 10, NULL},
        {0, "2.0", 0, "1.0,1.1,1.2"}, {0, "", 0, "1.0,1.1,1.2"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct h *h = h_new(t[i].cap);
        char buf[256];
        int n;
        if (t[i].accept)
            n = snprintf(buf, sizeof buf, "CONNECT\naccept-version:%s\nlogin:a\npasscode:b\n\n",
                         t[i].accept);
        else
            n = snprintf(buf, sizeof buf, "CONNECT\nlogin:a\npasscode:b\n\n");
        int rc = feed(h, buf, (size_t)n + 1);
        if (t[i].want) {
            assert_int_equal(rc, SG_OK);
            assert_int_equal(sg_stomp_session_version(h->s), t[i].want);
            assert_int_equal(h->nf, 1);
            assert_int_equal(h->f[0].cmd, SG_STOMP_CONNECTED);
            const char *v = fh(&h->f[0], "version");
            if (t[i].want == 10) {
                assert_null(v); /* a 1.0 server sends no version header */
            } else {
                assert_non_null(v);
                assert_int_equal(v[0], '1');
                assert_int_equal(v[2] - '0', t[i].want - 10);
            }
        } else {
            assert_int_equal(rc, SG_EVERSION);
            assert_int_equal(h->auth_calls, 0);
            assert_int_equal(h->nf, 1);
            struct pframe *e = &h->f[0];
            assert_int_equal(e->cmd, SG_STOMP_ERROR);
            assert_string_equal(fh(e, "version"), t[i].err_versions);
            assert_non_null(strstr(fh(e, "message"), "Supported protocol versions are"));
            assert_int_equal(h->closes, 1);
            assert_int_equal(h->close_code, 1002);
        }
        h_free(h);
    }
}

/* ---- the book's client */

static const char book_connect[] = "CONNECT\nlogin: websockets\npasscode: rabbitmq\n\n\n\n";
static const char book_subscribe[] = "SUBSCRIBE\ndestination: /queue/stocks.AAPL\n\n\n\n";
static const char book_disconnect[] = "DISCONNECT\n\n\nundefined\n";

static void check_book_connected(struct h *h)
{
    assert_int_equal(h->auth_calls, 1);
    assert_int_equal(h->auth_login_null, 0);
    assert_string_equal(h->auth_login, "websockets");
    assert_string_equal(h->auth_pass, "rabbitmq");
    assert_string_equal(h->auth_vhost, "/");
    assert_int_equal(sg_stomp_session_state(h->s), SG_SESS_CONNECTED);
    assert_int_equal(sg_stomp_session_version(h->s), 10);
    assert_string_equal(sg_stomp_session_login(h->s), "websockets");
    assert_string_equal(sg_stomp_session_vhost(h->s), "/");
    struct pframe *c = &h->f[0];
    assert_int_equal(c->cmd, SG_STOMP_CONNECTED);
    assert_non_null(fh(c, "session"));
    assert_int_equal(strlen(fh(c, "session")), 36);
    assert_string_equal(fh(c, "session"), sg_stomp_session_id(h->s));
    assert_string_equal(fh(c, "server"), "stompgate/test");
    assert_null(fh(c, "version"));
    assert_null(fh(c, "heart-beat"));
    assert_int_equal(c->nh, 2);
    assert_int_equal(sg_stomp_session_hb_out_ms(h->s), 0);
    assert_int_equal(sg_stomp_session_hb_in_ms(h->s), 0);
}

static void test_book_connect(void **state)
{
    (void)state;
    size_t len = sizeof book_connect; /* with the NUL */
    /* whole, every split, one byte at a time */
    for (size_t k = 0; k <= len; k++) {
        struct h *h = h_new(10);
        assert_int_equal(feed(h, book_connect, k), SG_OK);
        assert_int_equal(feed(h, book_connect + k, len - k), SG_OK);
        check_book_connected(h);
        h_free(h);
    }
    struct h *h = h_new(10);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(feed(h, book_connect + i, 1), SG_OK);
    check_book_connected(h);

    /* the book's SUBSCRIBE, value trimmed in 1.0; its DISCONNECT */
    assert_int_equal(feed(h, book_subscribe, sizeof book_subscribe), SG_OK);
    assert_int_equal(h->na, 1);
    assert_int_equal(h->a[0].type, SG_ACT_SUBSCRIBE);
    assert_string_equal(h->a[0].dest, "/queue/stocks.AAPL");
    assert_string_equal(h->a[0].sub_id, "/queue/stocks.AAPL"); /* 1.0: destination is the id */
    assert_int_equal(h->a[0].ack_mode, SG_ACK_AUTO);
    assert_int_equal(feed(h, book_disconnect, sizeof book_disconnect), SG_OK);
    assert_int_equal(h->closes, 1);
    assert_int_equal(h->close_code, 1000);
    assert_int_equal(h->nf, 1); /* no RECEIPT asked, none sent */
    h_free(h);
}

static void test_stomp_command(void **state)
{
    (void)state;
    struct h *h = h_new(0);
    assert_int_equal(FEED(h, "STOMP\naccept-version:1.2\nhost:vh1\nlogin:u\npasscode:p\n\n\0"),
                     SG_OK);
    assert_int_equal(sg_stomp_session_state(h->s), SG_SESS_CONNECTED);
    assert_int_equal(sg_stomp_session_version(h->s), 12);
    assert_string_equal(h->auth_login, "u");
    assert_string_equal(h->auth_vhost, "vh1");
    assert_string_equal(sg_stomp_session_vhost(h->s), "vh1");
    assert_int_equal(h->f[0].cmd, SG_STOMP_CONNECTED);
    assert_string_equal(fh(&h->f[0], "version"), "1.2");
    /* no heart-beat header is 0,0: CONNECTED states our offer, nothing runs */
    assert_string_equal(fh(&h->f[0], "heart-beat"), "10000,10000");
    assert_int_equal(sg_stomp_session_hb_out_ms(h->s), 0);
    assert_int_equal(sg_stomp_session_hb_in_ms(h->s), 0);
    h_free(h);
}

static void test_connect_values_not_trimmed_in_12(void **state)
{
    (void)state;
    struct h *h = h_new(0);
    FEED(h, "CONNECT\naccept-version:1.2\nlogin: u \npasscode: p\n\n\0");
    assert_string_equal(h->auth_login, " u ");
    assert_string_equal(h->auth_pass, " p");
    h_free(h);
}

static void test_default_login(void **state)
{
    (void)state;
    /* no login, no default: authenticate(NULL, ...) - the relay refuses */
    struct h *h = h_alloc();
    h->auth_mode = AUTH_ASYNC;
    h_start(h, 0);
    FEED(h, "CONNECT\naccept-version:1.2\n\n\0");
    assert_int_equal(h->auth_calls, 1);
    assert_int_equal(h->auth_login_null, 1);
    assert_string_equal(h->auth_vhost, "/");
    assert_int_equal(sg_stomp_session_state(h->s), SG_SESS_AUTHENTICATING);
    h_free(h);

    /* a configured default user and vhost */
    h = h_alloc();
    h->cfg.default_login = "websockets";
    h->cfg.default_passcode = "rabbitmq";
    h->cfg.default_vhost = "stocks";
    h_start(h, 0);
    FEED(h, "CONNECT\naccept-version:1.2\n\n\0");
    assert_int_equal(h->auth_login_null, 0);
    assert_string_equal(h->auth_login, "websockets");
    assert_string_equal(h->auth_pass, "rabbitmq");
    assert_string_equal(h->auth_vhost, "stocks");
    assert_string_equal(sg_stomp_session_login(h->s), "websockets");
    h_free(h);

    /* a client login wins over the default */
    h = h_alloc();
    h->cfg.default_login = "websockets";
    h->cfg.default_passcode = "rabbitmq";
    h_start(h, 0);
    FEED(h, "CONNECT\naccept-version:1.2\nlogin:me\npasscode:pw\nhost:v\n\n\0");
    assert_string_equal(h->auth_login, "me");
    assert_string_equal(h->auth_pass, "pw");
    assert_string_equal(h->auth_vhost, "v");
    h_free(h);
}

/* ---- authentication */

static void test_auth_refused(void **state)
{
    (void)state;
    /* synchronous answer */
    struct h *h = h_alloc();
    h->auth_mode = AUTH_FAIL;
    h_start(h, 0);
    assert_int_equal(FEED(h, "CONNECT\naccept-version:1.2\nlogin:x\npasscode:y\n\n\0"), SG_EAUTH);
    assert_int_equal(h->nf, 1);
    assert_error(h, "access refused", 1008);
    assert_null(strstr(h->f[0].body, "y")); /* no passcode echoed */
    assert_null(sg_stomp_session_login(h->s));
    h_free(h);

    /* asynchronous answer */
    h = h_alloc();
    h->auth_mode = AUTH_ASYNC;
    h_start(h, 0);
    assert_int_equal(FEED(h, "CONNECT\naccept-version:1.2\nlogin:x\npasscode:y\n\n\0"), SG_OK);
    assert_int_equal(h->nf, 0);
    assert_int_equal(sg_stomp_session_state(h->s), SG_SESS_AUTHENTICATING);
    sg_stomp_session_auth_result(h->s, 0, h->now);
    assert_int_equal(h->nf, 1);
    assert_error(h, "access refused", 1008);
    /* a late second answer changes nothing */
    sg_stomp_session_auth_result(h->s, 1, h->now);
    assert_int_equal(h->nf, 1);
    assert_int_equal(h->calls_after_close, 0);
    h_free(h);
}

static void test_frame_before_connect(void **state)
{
    (void)state;
    struct h *h = h_new(0);
    /* heart-beat EOLs before CONNECT are fine */
    assert_int_equal(FEED(h, "\n\r\n"), SG_OK);
    assert_int_equal(h->nf, 0);
    assert_int_equal(FEED(h, "SEND\ndestination:/queue/a\nreceipt:1\n\nhi\0"), SG_ESTATE);
    assert_int_equal(h->nf, 1);
    assert_error(h, "expected CONNECT", 1002);
    assert_int_equal(h->auth_calls, 0);
    assert_int_equal(h->na, 0);
    /* later input is ignored: SG_OK, nothing happens */
    assert_int_equal(FEED(h, "CONNECT\naccept-version:1.2\n\n\0"), SG_OK);
    assert_int_equal(h->auth_calls, 0);
    assert_int_equal(h->nf, 1);
    assert_int_equal(h->calls_after_close, 0);
    h_free(h);
}

static void test_connect_twice(void **state)
{
    (void)state;
    struct h *h = h_connected(12);
    assert_int_equal(FEED(h, "CONNECT\naccept-version:1.2\n\n\0"), SG_ESTATE);
    assert_error(h, "already connected", 1002);
    assert_int_equal(h->auth_calls, 1);
    h_free(h);
}

/* ---- heart-beats */

/* Runs one CONNECT (bytes without the NUL) with these heart-beat settings
 * fed whole, split at every boundary and one byte at a time, and checks the
 * negotiated periods and the CONNECTED header (NULL: none) each time. */
static void check_heartbeat(unsigned send, unsigned recv, unsigned min, unsigned max, int cap,
                            const char *connect, unsigned out, unsigned in, const char *hdr)
{
    size_t len = strlen(connect) + 1;
    for (size_t k = 0; k <= len + 1; k++) {
        struct h *h = h_alloc();
        h->cfg.hb_send_ms = send;
        h->cfg.hb_recv_ms = recv;
        h->cfg.hb_min_ms = min;
        h->cfg.hb_max_ms = max;
        h_start(h, cap);
        if (k <= len) {
            assert_int_equal(feed(h, connect, k), SG_OK);
            assert_int_equal(feed(h, connect + k, len - k), SG_OK);
        } else {
            for (size_t i = 0; i < len; i++)
                assert_int_equal(feed(h, connect + i, 1), SG_OK);
        }
        assert_int_equal(h->nf, 1);
        assert_int_equal(h->f[0].cmd, SG_STOMP_CONNECTED);
        if (sg_stomp_session_hb_out_ms(h->s) != out || sg_stomp_session_hb_in_ms(h->s) != in)
            fail_msg("%s: out %u in %u, expected %u %u", connect, sg_stomp_session_hb_out_ms(h->s),
                     sg_stomp_session_hb_in_ms(h->s), out, in);
        if (hdr)
            assert_string_equal(fh(&h->f[0], "heart-beat"), hdr);
        else
            assert_null(fh(&h->f[0], "heart-beat"));
        h_free(h);
    }
}

static void test_heartbeat_table(void **state)
{
    (void)state;
    /* The client's values decide (RabbitMQ's STOMP plugin): CONNECTED
     * heart-beat:sx,sy with sx = clamp(cy), sy = clamp(cx); we send every
     * sx and expect the client every sy. */
    static const struct {
        unsigned send, recv, min, max;
        const char *client; /* heart-beat header */
        unsigned out, in;
        const char *hdr; /* CONNECTED heart-beat */
    } t[] = {
        {10000, 10000, 1000, 120000, "0,0", 0, 0, "0,0"},
        /* a client asking for 1000 gets 1000 (it used to get our 10000) */
        {10000, 10000, 1000, 120000, "1000,1000", 1000, 1000, "1000,1000"},
        {10000, 10000, 1000, 120000, "5000,5000", 5000, 5000, "5000,5000"},
        {10000, 10000, 1000, 120000, "20000,30000", 30000, 20000, "30000,20000"},
        {10000, 10000, 1000, 120000, "0,5000", 5000, 0, "5000,0"},
        {10000, 10000, 1000, 120000, "5000,0", 0, 5000, "0,5000"},
        /* hb_send_ms/hb_recv_ms play no part once the client sent the header */
        {0, 0, 1000, 120000, "5000,5000", 5000, 5000, "5000,5000"},
        {0, 10000, 1000, 120000, "5000,7000", 7000, 5000, "7000,5000"},
        {10000, 0, 1000, 120000, "5000,7000", 7000, 5000, "7000,5000"},
        /* client values clamped to hb_max */
        {10000, 10000, 1000, 120000, "999999,4000000000", 120000, 120000, "120000,120000"},
        {10000, 10000, 1000, 120000, "99999999999999999999,1", 1000, 120000, "1000,120000"},
        /* and to hb_min */
        {500, 500, 1000, 120000, "100,100", 1000, 1000, "1000,1000"},
        {10000, 10000, 250, 120000, "100,300", 300, 250, "300,250"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char buf[256];
        snprintf(buf, sizeof buf, "CONNECT\naccept-version:1.2\nheart-beat:%s\n\n", t[i].client);
        check_heartbeat(t[i].send, t[i].recv, t[i].min, t[i].max, 0, buf, t[i].out, t[i].in,
                        t[i].hdr);
    }
}

/* Without a heart-beat header (0,0 per the spec) nothing is sent or
 * enforced; 1.1 and 1.2 CONNECTED state the configured offer, clamped. */
static void test_heartbeat_no_header(void **state)
{
    (void)state;
    check_heartbeat(7000, 8000, 1000, 120000, 0, "CONNECT\naccept-version:1.2\n\n", 0, 0,
                    "7000,8000");
    check_heartbeat(7000, 8000, 1000, 120000, 0, "CONNECT\naccept-version:1.1\n\n", 0, 0,
                    "7000,8000");
    check_heartbeat(0, 0, 1000, 120000, 0, "CONNECT\naccept-version:1.2\n\n", 0, 0, "0,0");
    check_heartbeat(500, 200000, 1000, 120000, 0, "STOMP\naccept-version:1.2\n\n", 0, 0,
                    "1000,120000");
    /* 1.0 has no heart-beating: no header unless the client sent one */
    check_heartbeat(7000, 8000, 1000, 120000, 0, "CONNECT\nlogin:a\n\n", 0, 0, NULL);
    check_heartbeat(7000, 8000, 1000, 120000, 10, "CONNECT\naccept-version:1.0,1.1\n\n", 0, 0,
                    NULL);

    /* and no deadline at all once CONNECTED */
    struct h *h = h_new(0);
    FEED(h, "CONNECT\naccept-version:1.2\n\n\0");
    assert_int_equal(sg_stomp_session_next_deadline(h->s), UINT64_MAX);
    h_free(h);
}

static void test_heartbeat_malformed(void **state)
{
    (void)state;
    static const char *bad[] = {"5000",  "a,b", "5000,", ",5000", "-1,5", "5000, 5000",
                                "1,2,3", "",    " 1,2",  "1,2 ",  "+1,2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct h *h = h_new(0);
        char buf[256];
        int n = snprintf(buf, sizeof buf, "CONNECT\naccept-version:1.1\nheart-beat:%s\n\n", bad[i]);
        assert_int_equal(feed(h, buf, (size_t)n + 1), SG_ESTOMP);
        assert_int_equal(h->nf, 1);
        assert_error(h, "invalid heart-beat header", 1002);
        assert_int_equal(h->auth_calls, 0);
        h_free(h);
    }
}

static void test_heartbeat_10(void **state)
{
    (void)state;
    /* a 1.0 client that asks for heart-beats gets them, trimmed */
    struct h *h = h_new(10);
    FEED(h, "CONNECT\nlogin: a\nheart-beat: 5000,3000 \n\n\0");
    assert_int_equal(sg_stomp_session_version(h->s), 10);
    assert_string_equal(fh(&h->f[0], "heart-beat"), "3000,5000");
    assert_null(fh(&h->f[0], "version"));
    assert_int_equal(sg_stomp_session_hb_out_ms(h->s), 3000);
    assert_int_equal(sg_stomp_session_hb_in_ms(h->s), 5000);
    h_free(h);
}

static void test_heartbeat_outgoing(void **state)
{
    (void)state;
    struct h *h = h_new(0);
    h->now = 5000;
    FEED(h, "CONNECT\naccept-version:1.2\nheart-beat:0,4000\n\n\0"); /* CONNECTED at 5000 */
    assert_int_equal(sg_stomp_session_hb_out_ms(h->s), 4000); /* what it asked, not our 10000 */
    assert_int_equal(sg_stomp_session_hb_in_ms(h->s), 0);
    assert_int_equal(sg_stomp_session_next_deadline(h->s), 9000);
    sg_stomp_session_on_tick(h->s, 8999);
    assert_int_equal(h->hb, 0);
    sg_stomp_session_on_tick(h->s, 9000);
    assert_int_equal(h->hb, 1);
    assert_int_equal(sg_stomp_session_next_deadline(h->s), 13000);
    /* a delivery sent by the glue resets the clock */
    sg_stomp_session_on_sent(h->s, 12000);
    assert_int_equal(sg_stomp_session_next_deadline(h->s), 16000);
    sg_stomp_session_on_tick(h->s, 13000);
    assert_int_equal(h->hb, 1);
    /* so does a frame the session sends (RECEIPT at 15000) */
    h->now = 15000;
    FEED(h, "SEND\ndestination:/queue/a\nreceipt:r\n\n\0");
    assert_int_equal(last(h)->cmd, SG_STOMP_RECEIPT);
    assert_int_equal(sg_stomp_session_next_deadline(h->s), 19000);
    sg_stomp_session_on_tick(h->s, 16000);
    assert_int_equal(h->hb, 1);
    sg_stomp_session_on_tick(h->s, 19000);
    assert_int_equal(h->hb, 2);
    /* incoming bytes do not count as outgoing activity */
    h->now = 20000;
    FEED(h, "\n");
    assert_int_equal(sg_stomp_session_next_deadline(h->s), 23000);
    assert_int_equal(h->closes, 0);
    h_free(h);
}

static void test_heartbeat_incoming(void **state)
{
    (void)state;
    struct h *h = h_alloc();
    h->now = 0;
    h_start(h, 0);
    FEED(h, "CONNECT\naccept-version:1.2\nheart-beat:5000,0\n\n\0");
    assert_int_equal(sg_stomp_session_hb_in_ms(h->s), 5000); /* what it can send */
    assert_int_equal(sg_stomp_session_hb_out_ms(h->s), 0);
    /* 5000 * grace 2.0 */
    assert_int_equal(sg_stomp_session_next_deadline(h->s), 10000);
    sg_stomp_session_on_tick(h->s, 9999);
    assert_int_equal(h->closes, 0);
    /* any bytes count: a heart-beat EOL at 9999, just before the deadline */
    h->now = 9999;
    assert_int_equal(FEED(h, "\n"), SG_OK);
    assert_int_equal(sg_stomp_session_next_deadline(h->s), 19999);
    sg_stomp_session_on_tick(h->s, 19998);
    assert_int_equal(h->closes, 0);
    assert_int_equal(h->nf, 1);
    sg_stomp_session_on_tick(h->s, 19999);
    assert_error(h, "heart-beat timeout", 1008);
    assert_int_equal(sg_stomp_session_next_deadline(h->s), UINT64_MAX);
    h_free(h);

    /* grace is configurable */
    h = h_alloc();
    h->cfg.hb_grace = 1.5;
    h->now = 0;
    h_start(h, 0);
    FEED(h, "CONNECT\naccept-version:1.2\nheart-beat:10000,0\n\n\0");
    assert_int_equal(sg_stomp_session_next_deadline(h->s), 15000);
    sg_stomp_session_on_tick(h->s, 14999);
    assert_int_equal(h->closes, 0);
    sg_stomp_session_on_tick(h->s, 15000);
    assert_int_equal(h->closes, 1);
    h_free(h);
}

static void test_connect_timeout(void **state)
{
    (void)state;
    struct h *h = h_alloc();
    h->now = 100;
    h_start(h, 0);
    assert_int_equal(sg_stomp_session_next_deadline(h->s), 10100);
    sg_stomp_session_on_tick(h->s, 10099);
    assert_int_equal(h->closes, 0);
    sg_stomp_session_on_tick(h->s, 10100);
    assert_error(h, "CONNECT timeout", 1008);
    h_free(h);

    /* the deadline also covers a broker that never answers */
    h = h_alloc();
    h->auth_mode = AUTH_ASYNC;
    h->now = 0;
    h_start(h, 0);
    h->now = 9000;
    FEED(h, "CONNECT\naccept-version:1.2\n\n\0");
    assert_int_equal(sg_stomp_session_state(h->s), SG_SESS_AUTHENTICATING);
    assert_int_equal(sg_stomp_session_next_deadline(h->s), 10000);
    sg_stomp_session_on_tick(h->s, 10000);
    assert_error(h, "CONNECT timeout", 1008);
    sg_stomp_session_auth_result(h->s, 1, 10001);
    assert_int_equal(h->nf, 1);
    assert_int_equal(h->calls_after_close, 0);
    h_free(h);

    /* and ends with CONNECTED */
    h = h_alloc();
    h->now = 0;
    h_start(h, 0);
    FEED(h, "CONNECT\naccept-version:1.2\n\n\0");
    assert_int_equal(sg_stomp_session_next_deadline(h->s), UINT64_MAX); /* hb off */
    sg_stomp_session_on_tick(h->s, 100000);
    assert_int_equal(h->closes, 0);
    h_free(h);
}

/* ---- subscriptions */

static void test_subscribe_ok(void **state)
{
    (void)state;
    struct h *h = h_connected(12);
    FEED(h, "SUBSCRIBE\nid:0\ndestination:/topic/a\nack:client-individual\nreceipt:r1\n\n\0");
    assert_int_equal(h->na, 1);
    assert_int_equal(h->a[0].type, SG_ACT_SUBSCRIBE);
    assert_string_equal(h->a[0].dest, "/topic/a");
    assert_string_equal(h->a[0].sub_id, "0");
    assert_int_equal(h->a[0].ack_mode, SG_ACK_CLIENT_INDIVIDUAL);
    assert_string_equal(h->a[0].receipt, "r1");
    assert_int_equal(last(h)->cmd, SG_STOMP_RECEIPT);
    assert_string_equal(fh(last(h), "receipt-id"), "r1");
    FEED(h, "SUBSCRIBE\nid:1\ndestination:/topic/b\nack:client\n\n\0");
    assert_int_equal(h->a[1].ack_mode, SG_ACK_CLIENT);
    assert_int_equal(h->a[1].has_receipt, 0);
    FEED(h, "SUBSCRIBE\nid:2\ndestination:/topic/c\nack:auto\n\n\0");
    assert_int_equal(h->a[2].ack_mode, SG_ACK_AUTO);
    assert_int_equal(h->nf, 2); /* CONNECTED, one RECEIPT */
    assert_int_equal(h->closes, 0);
    h_free(h);
}

static void test_subscribe_errors(void **state)
{
    (void)state;
    static const struct {
        int version;
        const char *frame;
        const char *message;
        int code;
    } t[] = {
        {12, "SUBSCRIBE\nid:0\n\n", "missing destination header", 1002},
        {12, "SUBSCRIBE\nid:0\ndestination:\n\n", "missing destination header", 1002},
        {12, "SUBSCRIBE\ndestination:/queue/a\n\n", "missing id header", 1002},
        {11, "SUBSCRIBE\ndestination:/queue/a\n\n", "missing id header", 1002},
        {12, "SUBSCRIBE\nid:0\ndestination:/queue/a\nack:sometimes\n\n", "invalid ack mode", 1002},
        {10, "SUBSCRIBE\nid:0\ndestination:/queue/a\nack:Auto\n\n", "invalid ack mode", 1002},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct h *h = h_connected(t[i].version);
        assert_int_equal(feed(h, t[i].frame, strlen(t[i].frame) + 1), SG_ESTOMP);
        assert_error(h, t[i].message, t[i].code);
        assert_int_equal(h->na, 0);
        h_free(h);
    }
    /* 1.0: no id needed */
    struct h *h = h_connected(10);
    assert_int_equal(FEED(h, "SUBSCRIBE\ndestination:/queue/a\n\n\0"), SG_OK);
    assert_int_equal(h->na, 1);
    assert_string_equal(h->a[0].sub_id, "/queue/a");
    /* a second subscription to the same destination without id is a duplicate id */
    FEED(h, "SUBSCRIBE\ndestination:/queue/a\nreceipt:x\n\n\0");
    assert_error(h, "duplicate subscription id", 1000);
    assert_string_equal(fh(last(h), "receipt-id"), "x");
    h_free(h);
}

static void test_subscribe_duplicate_and_limit(void **state)
{
    (void)state;
    struct h *h = h_connected(12);
    FEED(h, "SUBSCRIBE\nid:a\ndestination:/queue/a\n\n\0");
    assert_int_equal(FEED(h, "SUBSCRIBE\nid:a\ndestination:/queue/b\n\n\0"), SG_ESTATE);
    assert_error(h, "duplicate subscription id", 1000);
    assert_int_equal(h->na, 1);
    h_free(h);

    h = h_alloc();
    h->cfg.max_subscriptions = 2;
    h_start(h, 0);
    FEED(h, "CONNECT\naccept-version:1.2\n\n\0");
    FEED(h, "SUBSCRIBE\nid:a\ndestination:/queue/a\n\n\0");
    FEED(h, "SUBSCRIBE\nid:b\ndestination:/queue/b\n\n\0");
    assert_int_equal(h->closes, 0);
    /* an unsubscribe frees a slot */
    FEED(h, "UNSUBSCRIBE\nid:a\n\n\0");
    FEED(h, "SUBSCRIBE\nid:c\ndestination:/queue/c\n\n\0");
    assert_int_equal(h->closes, 0);
    assert_int_equal(h->na, 4);
    assert_int_equal(FEED(h, "SUBSCRIBE\nid:d\ndestination:/queue/d\n\n\0"), SG_ETOOMANY);
    assert_error(h, "too many subscriptions", 1008);
    assert_int_equal(h->na, 4);
    h_free(h);
}

static void test_unsubscribe(void **state)
{
    (void)state;
    struct h *h = h_connected(12);
    FEED(h, "SUBSCRIBE\nid:s1\ndestination:/queue/a\n\n\0");
    FEED(h, "UNSUBSCRIBE\nid:s1\nreceipt:u\n\n\0");
    assert_int_equal(h->na, 2);
    assert_int_equal(h->a[1].type, SG_ACT_UNSUBSCRIBE);
    assert_string_equal(h->a[1].sub_id, "s1");
    assert_string_equal(fh(last(h), "receipt-id"), "u");
    /* now unknown */
    assert_int_equal(FEED(h, "UNSUBSCRIBE\nid:s1\n\n\0"), SG_ESTATE);
    assert_error(h, "unknown subscription", 1000);
    assert_int_equal(h->na, 2);
    h_free(h);

    h = h_connected(11);
    FEED(h, "UNSUBSCRIBE\nid:nope\n\n\0");
    assert_error(h, "unknown subscription", 1000);
    h_free(h);

    h = h_connected(12);
    FEED(h, "UNSUBSCRIBE\ndestination:/queue/a\n\n\0");
    assert_error(h, "missing id header", 1002);
    h_free(h);

    /* 1.0: by destination, which finds a subscription made with an id */
    h = h_connected(10);
    FEED(h, "SUBSCRIBE\nid:x\ndestination:/queue/a\n\n\0");
    FEED(h, "UNSUBSCRIBE\ndestination:/queue/a\n\n\0");
    assert_int_equal(h->na, 2);
    assert_string_equal(h->a[1].sub_id, "x");
    FEED(h, "UNSUBSCRIBE\ndestination:/queue/a\n\n\0");
    assert_error(h, "unknown subscription", 1000);
    h_free(h);
}

/* ---- SEND, receipts, relay results */

static void test_send(void **state)
{
    (void)state;
    struct h *h = h_connected(12);
    FEED(h, "SEND\ndestination:/queue/a\ncontent-type:text/plain\n\nhello\0");
    assert_int_equal(h->na, 1);
    assert_int_equal(h->a[0].type, SG_ACT_SEND);
    assert_string_equal(h->a[0].dest, "/queue/a");
    assert_string_equal(h->a[0].body, "hello");
    assert_int_equal(h->a[0].has_receipt, 0);
    assert_int_equal(h->nf, 1); /* no receipt asked, none sent */
    /* 1.2 escapes are decoded in the destination and echoed in the receipt */
    FEED(h, "SEND\ndestination:/queue/a\\cb\nreceipt:r\\c1\n\n\0");
    assert_string_equal(h->a[1].dest, "/queue/a:b");
    assert_string_equal(h->a[1].receipt, "r:1");
    assert_string_equal(fh(last(h), "receipt-id"), "r:1");
    assert_int_equal(FEED(h, "SEND\nreceipt:z\n\nx\0"), SG_ESTOMP);
    assert_error(h, "missing destination header", 1002);
    assert_string_equal(fh(last(h), "receipt-id"), "z");
    assert_int_equal(h->na, 2);
    h_free(h);
}

static void test_relay_error(void **state)
{
    (void)state;
    struct h *h = h_connected(12);
    h->relay_rc = SG_EPROTO;
    h->relay_err = "not yet supported";
    assert_int_equal(FEED(h, "SEND\ndestination:/queue/a\nreceipt:77\n\nx\0"), SG_EPROTO);
    assert_int_equal(h->na, 1);
    assert_error(h, "not yet supported", 1000);
    assert_string_equal(fh(last(h), "receipt-id"), "77");
    h_free(h);

    /* no errmsg: sg_strerror's text */
    h = h_connected(12);
    h->relay_rc = SG_EDEST;
    FEED(h, "SEND\ndestination:/bad\n\nx\0");
    assert_error(h, "invalid destination", 1000);
    assert_null(fh(last(h), "receipt-id"));
    h_free(h);

    /* a multi-line errmsg cannot break a 1.0 header */
    h = h_connected(10);
    h->relay_rc = SG_EBROKER;
    h->relay_err = "line1\nline2";
    FEED(h, "SEND\ndestination:/queue/a\n\nx\0");
    assert_error(h, "line1 line2", 1000);
    h_free(h);

    /* the relay fails the action from inside the call */
    h = h_connected(12);
    h->relay_fail_inside = 1;
    FEED(h, "SEND\ndestination:/queue/a\nreceipt:q\n\nx\0");
    assert_error(h, "broker said no", 1011);
    assert_string_equal(fh(last(h), "receipt-id"), "q");
    assert_int_equal(h->calls_after_close, 0);
    h_free(h);
}

static void test_receipt_async(void **state)
{
    (void)state;
    struct h *h = h_connected(12);
    h->relay_rc = SG_AGAIN;
    assert_int_equal(FEED(h, "SEND\ndestination:/queue/a\nreceipt:later\n\nx\0"), SG_OK);
    assert_int_equal(h->na, 1);
    assert_string_equal(h->a[0].receipt, "later");
    assert_int_equal(h->nf, 1); /* nothing yet */
    sg_stomp_session_receipt(h->s, "later");
    assert_int_equal(h->nf, 2);
    assert_int_equal(last(h)->cmd, SG_STOMP_RECEIPT);
    assert_string_equal(fh(last(h), "receipt-id"), "later");
    assert_int_equal(h->closes, 0);
    h_free(h);
}

static void test_fail(void **state)
{
    (void)state;
    struct h *h = h_connected(12);
    h->relay_rc = SG_AGAIN;
    FEED(h, "SUBSCRIBE\nid:0\ndestination:/amq/queue/missing\nreceipt:s\n\n\0");
    sg_stomp_session_fail(h->s, "NOT_FOUND - no queue 'missing'", "s", 0);
    assert_error(h, "NOT_FOUND - no queue 'missing'", 1000);
    assert_string_equal(fh(last(h), "receipt-id"), "s");
    sg_stomp_session_fail(h->s, "again", NULL, 1011);
    sg_stomp_session_receipt(h->s, "s");
    assert_int_equal(h->closes, 1);
    assert_int_equal(h->calls_after_close, 0);
    h_free(h);

    h = h_connected(11);
    sg_stomp_session_fail(h->s, "broker gone", NULL, 1011);
    assert_error(h, "broker gone", 1011);
    assert_null(fh(last(h), "receipt-id"));
    h_free(h);
}

/* ---- ACK / NACK */

static void test_ack_versions(void **state)
{
    (void)state;
    struct h *h = h_connected(12);
    FEED(h, "ACK\nid:m-1\nmessage-id:wrong\n\n\0");
    assert_int_equal(h->na, 1);
    assert_int_equal(h->a[0].type, SG_ACT_ACK);
    assert_string_equal(h->a[0].ack_id, "m-1");
    FEED(h, "NACK\nid:m-2\nreceipt:n\n\n\0");
    assert_int_equal(h->a[1].type, SG_ACT_NACK);
    assert_string_equal(h->a[1].ack_id, "m-2");
    assert_string_equal(fh(last(h), "receipt-id"), "n");
    assert_int_equal(FEED(h, "ACK\nmessage-id:m-3\n\n\0"), SG_ESTOMP);
    assert_error(h, "missing id header", 1002);
    h_free(h);

    h = h_connected(11);
    FEED(h, "ACK\nsubscription:0\nmessage-id:m-1\nid:wrong\n\n\0");
    assert_string_equal(h->a[0].ack_id, "m-1");
    FEED(h, "NACK\nsubscription:0\nmessage-id:m-2\n\n\0");
    assert_int_equal(h->a[1].type, SG_ACT_NACK);
    assert_string_equal(h->a[1].ack_id, "m-2");
    FEED(h, "ACK\nid:m-3\n\n\0");
    assert_error(h, "missing message-id header", 1002);
    h_free(h);

    h = h_connected(10);
    FEED(h, "ACK\nmessage-id: m-1\n\n\0");
    assert_string_equal(h->a[0].ack_id, "m-1");
    assert_int_equal(FEED(h, "NACK\nmessage-id:m-2\nreceipt:k\n\n\0"), SG_ESTATE);
    assert_error(h, "NACK is not supported in STOMP 1.0", 1002);
    assert_string_equal(fh(last(h), "receipt-id"), "k");
    assert_int_equal(h->na, 1);
    h_free(h);
}

/* ---- transactions */

static void test_tx_commit(void **state)
{
    (void)state;
    struct h *h = h_connected(12);
    FEED(h, "BEGIN\ntransaction:t1\nreceipt:b\n\n\0");
    assert_string_equal(fh(last(h), "receipt-id"), "b");
    FEED(h, "SEND\ndestination:/queue/a\ntransaction:t1\nreceipt:s1\n\none\0");
    assert_string_equal(fh(last(h), "receipt-id"), "s1"); /* accepted into the transaction */
    FEED(h, "SEND\ndestination:/queue/b\ntransaction:t1\nx-h:v\n\ntwo\0");
    FEED(h, "ACK\nid:m9\ntransaction:t1\n\n\0");
    /* a non-transactional frame goes straight through meanwhile */
    FEED(h, "SEND\ndestination:/queue/now\n\nnow\0");
    assert_int_equal(h->na, 1);
    assert_string_equal(h->a[0].dest, "/queue/now");
    FEED(h, "COMMIT\ntransaction:t1\nreceipt:c\n\n\0");
    assert_int_equal(h->na, 4);
    assert_int_equal(h->a[1].type, SG_ACT_SEND);
    assert_string_equal(h->a[1].dest, "/queue/a");
    assert_string_equal(h->a[1].body, "one");
    assert_int_equal(h->a[1].has_receipt, 0);
    assert_int_equal(h->a[1].has_tx_header, 0);
    assert_int_equal(h->a[1].has_receipt_header, 0);
    assert_int_equal(h->a[2].type, SG_ACT_SEND);
    assert_string_equal(h->a[2].dest, "/queue/b");
    assert_string_equal(h->a[2].body, "two");
    assert_int_equal(h->a[2].has_receipt, 0);
    assert_int_equal(h->a[3].type, SG_ACT_ACK);
    assert_string_equal(h->a[3].ack_id, "m9");
    /* the COMMIT's receipt rides on the last action */
    assert_int_equal(h->a[3].has_receipt, 1);
    assert_string_equal(h->a[3].receipt, "c");
    assert_int_equal(last(h)->cmd, SG_STOMP_RECEIPT);
    assert_string_equal(fh(last(h), "receipt-id"), "c");
    /* committed: gone */
    FEED(h, "COMMIT\ntransaction:t1\n\n\0");
    assert_error(h, "unknown transaction", 1000);
    h_free(h);

    /* an empty transaction answers the receipt at once */
    h = h_connected(11);
    FEED(h, "BEGIN\ntransaction:e\n\n\0");
    FEED(h, "COMMIT\ntransaction:e\nreceipt:c\n\n\0");
    assert_int_equal(h->na, 0);
    assert_string_equal(fh(last(h), "receipt-id"), "c");
    h_free(h);

    /* 1.1 ACK in a transaction keeps its message-id */
    h = h_connected(11);
    FEED(h, "BEGIN\ntransaction:t\n\n\0");
    FEED(h, "ACK\nmessage-id:mm\nsubscription:0\ntransaction:t\n\n\0");
    FEED(h, "COMMIT\ntransaction:t\n\n\0");
    assert_int_equal(h->na, 1);
    assert_string_equal(h->a[0].ack_id, "mm");
    h_free(h);
}

/* Every action a COMMIT replays says so (in_commit) and carries the COMMIT's
 * receipt (commit_receipt), so the relay can answer the COMMIT as a unit;
 * the receipt still rides on the last action only. Scripts fed whole, split
 * at every boundary and one byte at a time give the same actions. */
static const char tx_script[] = "CONNECT\naccept-version:1.2\n\n\0"
                                "SEND\ndestination:/queue/before\nreceipt:s0\n\nb\0"
                                "BEGIN\ntransaction:t1\n\n\0"
                                "BEGIN\ntransaction:t2\n\n\0"
                                "SEND\ndestination:/topic/a\ntransaction:t1\nreceipt:s1\n\none\0"
                                "NACK\nid:m1\ntransaction:t2\n\n\0"
                                "ACK\nid:m9\ntransaction:t1\n\n\0"
                                "SEND\ndestination:/topic/b\ntransaction:t1\n\ntwo\0"
                                "COMMIT\ntransaction:t1\nreceipt:c1\n\n\0"
                                "COMMIT\ntransaction:t2\n\n\0"
                                "SEND\ndestination:/queue/after\n\nz\0";

static void check_tx_fields(struct h *h)
{
    assert_int_equal(h->closes, 0);
    assert_int_equal(h->na, 6);
    /* outside a transaction: not in a commit */
    assert_string_equal(h->a[0].dest, "/queue/before");
    assert_int_equal(h->a[0].in_commit, 0);
    assert_int_equal(h->a[0].has_commit_receipt, 0);
    assert_string_equal(h->a[0].receipt, "s0");
    /* COMMIT t1 with receipt c1: three actions, all in_commit with c1 */
    static const enum sg_action_type types[3] = {SG_ACT_SEND, SG_ACT_ACK, SG_ACT_SEND};
    for (size_t i = 1; i <= 3; i++) {
        assert_int_equal(h->a[i].type, types[i - 1]);
        assert_int_equal(h->a[i].in_commit, 1);
        assert_int_equal(h->a[i].has_commit_receipt, 1);
        assert_string_equal(h->a[i].commit_receipt, "c1");
        assert_int_equal(h->a[i].has_tx_header, 0);
        assert_int_equal(h->a[i].has_receipt_header, 0);
        /* the receipt itself only on the last */
        assert_int_equal(h->a[i].has_receipt, i == 3);
    }
    assert_string_equal(h->a[1].dest, "/topic/a");
    assert_string_equal(h->a[1].body, "one");
    assert_string_equal(h->a[2].ack_id, "m9");
    assert_string_equal(h->a[3].dest, "/topic/b");
    assert_string_equal(h->a[3].receipt, "c1");
    /* COMMIT t2 without receipt: in_commit, commit_receipt NULL */
    assert_int_equal(h->a[4].type, SG_ACT_NACK);
    assert_string_equal(h->a[4].ack_id, "m1");
    assert_int_equal(h->a[4].in_commit, 1);
    assert_int_equal(h->a[4].has_commit_receipt, 0);
    assert_int_equal(h->a[4].has_receipt, 0);
    assert_string_equal(h->a[5].dest, "/queue/after");
    assert_int_equal(h->a[5].in_commit, 0);
    assert_int_equal(h->a[5].has_commit_receipt, 0);
    /* RECEIPTs: s0, s1 (held), c1 (the COMMIT, after its last action) */
    assert_int_equal(h->nf, 4);
    assert_string_equal(fh(&h->f[1], "receipt-id"), "s0");
    assert_string_equal(fh(&h->f[2], "receipt-id"), "s1");
    assert_string_equal(fh(&h->f[3], "receipt-id"), "c1");
}

static void test_tx_commit_fields(void **state)
{
    (void)state;
    size_t len = sizeof tx_script - 1;
    for (size_t k = 0; k <= len; k++) {
        struct h *h = h_new(0);
        feed(h, tx_script, k);
        feed(h, tx_script + k, len - k);
        check_tx_fields(h);
        h_free(h);
    }
    struct h *h = h_new(0);
    for (size_t i = 0; i < len; i++)
        feed(h, tx_script + i, 1);
    check_tx_fields(h);
    h_free(h);

    /* the relay answering later: the COMMIT's RECEIPT waits for it */
    h = h_connected(12);
    h->relay_rc = SG_AGAIN;
    FEED(h, "BEGIN\ntransaction:t\n\n\0SEND\ndestination:/topic/x\ntransaction:t\n\n1\0"
            "COMMIT\ntransaction:t\nreceipt:cc\n\n\0");
    assert_int_equal(h->na, 1);
    assert_int_equal(h->a[0].in_commit, 1);
    assert_string_equal(h->a[0].commit_receipt, "cc");
    assert_string_equal(h->a[0].receipt, "cc");
    assert_int_equal(h->nf, 1);
    sg_stomp_session_receipt(h->s, "cc");
    assert_string_equal(fh(last(h), "receipt-id"), "cc");
    h_free(h);
}

static void test_tx_commit_async_and_error(void **state)
{
    (void)state;
    struct h *h = h_connected(12);
    h->relay_rc = SG_AGAIN;
    FEED(h, "BEGIN\ntransaction:t\n\n\0");
    FEED(h, "SEND\ndestination:/queue/a\ntransaction:t\n\n1\0");
    FEED(h, "SEND\ndestination:/queue/a\ntransaction:t\n\n2\0");
    FEED(h, "COMMIT\ntransaction:t\nreceipt:c\n\n\0");
    assert_int_equal(h->na, 2);
    assert_int_equal(h->nf, 1); /* the relay answers later */
    sg_stomp_session_receipt(h->s, h->a[1].receipt);
    assert_string_equal(fh(last(h), "receipt-id"), "c");
    h_free(h);

    /* a failing replayed action stops the replay */
    h = h_connected(12);
    FEED(h, "BEGIN\ntransaction:t\n\n\0");
    FEED(h, "SEND\ndestination:/queue/a\ntransaction:t\n\n1\0");
    FEED(h, "SEND\ndestination:/queue/a\ntransaction:t\n\n2\0");
    h->relay_rc = SG_EDEST;
    h->relay_err = "no route";
    FEED(h, "COMMIT\ntransaction:t\nreceipt:c\n\n\0");
    assert_int_equal(h->na, 1);
    assert_error(h, "no route", 1000);
    h_free(h);
}

static void test_tx_abort_and_errors(void **state)
{
    (void)state;
    struct h *h = h_connected(12);
    FEED(h, "BEGIN\ntransaction:t\n\n\0");
    FEED(h, "SEND\ndestination:/queue/a\ntransaction:t\n\n1\0");
    FEED(h, "ABORT\ntransaction:t\nreceipt:ab\n\n\0");
    assert_string_equal(fh(last(h), "receipt-id"), "ab");
    assert_int_equal(h->na, 0);
    /* the id can be used again */
    FEED(h, "BEGIN\ntransaction:t\n\n\0");
    FEED(h, "COMMIT\ntransaction:t\n\n\0");
    assert_int_equal(h->na, 0);
    assert_int_equal(h->closes, 0);
    FEED(h, "ABORT\ntransaction:t\n\n\0");
    assert_error(h, "unknown transaction", 1000);
    h_free(h);

    static const struct {
        const char *frames;
        size_t len;
        const char *message;
        int code;
    } t[] = {
#define T(s, m, c) {s, sizeof(s) - 1, m, c}
        T("SEND\ndestination:/queue/a\ntransaction:nope\n\nx\0", "unknown transaction", 1000),
        T("ACK\nid:1\ntransaction:nope\n\n\0", "unknown transaction", 1000),
        T("COMMIT\ntransaction:nope\n\n\0", "unknown transaction", 1000),
        T("BEGIN\ntransaction:t\n\n\0BEGIN\ntransaction:t\n\n\0", "duplicate transaction", 1000),
        T("BEGIN\n\n\0", "missing transaction header", 1002),
        T("COMMIT\n\n\0", "missing transaction header", 1002),
#undef T
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        h = h_connected(12);
        feed(h, t[i].frames, t[i].len);
        assert_error(h, t[i].message, t[i].code);
        assert_int_equal(h->na, 0);
        h_free(h);
    }
}

static void test_tx_limits(void **state)
{
    (void)state;
    struct h *h = h_alloc();
    h->cfg.max_tx_bytes = 1024;
    h_start(h, 0);
    FEED(h, "CONNECT\naccept-version:1.2\n\n\0");
    FEED(h, "BEGIN\ntransaction:t\n\n\0");
    char body[400];
    memset(body, 'x', sizeof body);
    char frame[600];
    int n = snprintf(frame, sizeof frame, "SEND\ndestination:/queue/a\ntransaction:t\n\n%.*s",
                     (int)sizeof body, body);
    assert_int_equal(feed(h, frame, (size_t)n + 1), SG_OK);
    assert_int_equal(feed(h, frame, (size_t)n + 1), SG_OK);
    assert_int_equal(h->closes, 0);
    assert_int_equal(feed(h, frame, (size_t)n + 1), SG_ETOOBIG);
    assert_error(h, "transaction too large", 1009);
    assert_int_equal(h->na, 0);
    h_free(h);

    h = h_alloc();
    h->cfg.max_tx = 2;
    h_start(h, 0);
    FEED(h, "CONNECT\naccept-version:1.2\n\n\0");
    FEED(h, "BEGIN\ntransaction:a\n\n\0BEGIN\ntransaction:b\n\n\0");
    assert_int_equal(h->closes, 0);
    assert_int_equal(FEED(h, "BEGIN\ntransaction:c\n\n\0"), SG_ETOOMANY);
    assert_error(h, "too many transactions", 1008);
    h_free(h);
}

/* ---- DISCONNECT and close */

static void test_disconnect(void **state)
{
    (void)state;
    struct h *h = h_connected(12);
    assert_int_equal(FEED(h, "DISCONNECT\nreceipt:bye\n\n\0"), SG_OK);
    assert_int_equal(h->nf, 2);
    assert_int_equal(h->f[1].cmd, SG_STOMP_RECEIPT);
    assert_string_equal(fh(&h->f[1], "receipt-id"), "bye");
    assert_int_equal(h->closes, 1);
    assert_int_equal(h->close_code, 1000);
    /* RECEIPT, then the close */
    const char *r = strstr(h->log, "RECEIPT");
    const char *c = strstr(h->log, "CLOSE 1000");
    assert_non_null(r);
    assert_non_null(c);
    assert_true(r < c);
    assert_int_equal(sg_stomp_session_state(h->s), SG_SESS_CLOSED);
    h_free(h);

    h = h_connected(11);
    assert_int_equal(FEED(h, "DISCONNECT\n\n\0"), SG_OK);
    assert_int_equal(h->nf, 1);
    assert_int_equal(h->closes, 1);
    assert_int_equal(h->close_code, 1000);
    h_free(h);
}

static void test_nothing_after_close(void **state)
{
    (void)state;
    struct h *h = h_alloc();
    h->now = 0;
    h_start(h, 0);
    FEED(h, "CONNECT\naccept-version:1.2\nheart-beat:1000,1000\n\n\0");
    /* frames after DISCONNECT in the same chunk are ignored */
    assert_int_equal(FEED(h, "SUBSCRIBE\nid:0\ndestination:/queue/a\n\n\0"
                             "DISCONNECT\n\n\0"
                             "SEND\ndestination:/queue/a\nreceipt:1\n\nx\0"),
                     SG_OK);
    assert_int_equal(h->na, 1);
    assert_int_equal(h->closes, 1);
    size_t nf = h->nf;
    assert_int_equal(FEED(h, "SEND\ndestination:/queue/a\nreceipt:1\n\nx\0"), SG_OK);
    assert_int_equal(FEED(h, "garbage\0"), SG_OK);
    sg_stomp_session_on_tick(h->s, 1000000);
    sg_stomp_session_receipt(h->s, "1");
    sg_stomp_session_fail(h->s, "late", "1", 1011);
    sg_stomp_session_auth_result(h->s, 1, 1000000);
    sg_stomp_session_on_sent(h->s, 1000000);
    assert_int_equal(sg_stomp_session_next_deadline(h->s), UINT64_MAX);
    assert_int_equal(h->nf, nf);
    assert_int_equal(h->hb, 0);
    assert_int_equal(h->na, 1);
    assert_int_equal(h->closes, 1);
    assert_int_equal(h->calls_after_close, 0);
    h_free(h);
}

static void test_decoder_errors(void **state)
{
    (void)state;
    struct h *h = h_alloc();
    h->cfg.limits.max_body = 16;
    h_start(h, 0);
    FEED(h, "CONNECT\naccept-version:1.2\n\n\0");
    assert_int_equal(FEED(h, "SEND\ndestination:/queue/a\n\n0123456789abcdefXYZ\0"), SG_ETOOBIG);
    assert_int_equal(h->na, 0);
    assert_int_equal(last(h)->cmd, SG_STOMP_ERROR);
    assert_int_equal(h->closes, 1);
    assert_int_equal(h->close_code, 1009);
    assert_non_null(fh(last(h), "message"));
    h_free(h);

    h = h_alloc();
    h->cfg.limits.max_headers = 4;
    h_start(h, 0);
    FEED(h, "CONNECT\naccept-version:1.2\n\n\0");
    FEED(h, "SEND\na:1\nb:2\nc:3\nd:4\ne:5\n\n\0");
    assert_int_equal(h->close_code, 1009);
    h_free(h);

    h = h_connected(12);
    assert_int_equal(FEED(h, "SEND\nno colon here\n\n\0"), SG_ESTOMP);
    assert_int_equal(last(h)->cmd, SG_STOMP_ERROR);
    assert_int_equal(h->close_code, 1002);
    h_free(h);

    h = h_connected(12);
    FEED(h, "SEND\ndestination:/queue/a\\t\n\n\0"); /* undefined escape */
    assert_int_equal(h->close_code, 1002);
    assert_int_equal(h->na, 0);
    h_free(h);

    h = h_connected(12);
    FEED(h, "MESSAGE\ndestination:/queue/a\n\n\0"); /* a server command */
    assert_error(h, "unexpected frame", 1002);
    h_free(h);

    /* before CONNECT too */
    h = h_new(0);
    assert_int_equal(FEED(h, "HELLO\n\n\0"), SG_ESTOMP);
    assert_int_equal(last(h)->cmd, SG_STOMP_ERROR);
    assert_int_equal(h->close_code, 1002);
    h_free(h);
}

/* ---- pipelining behind CONNECT */

static const char pipeline[] = "CONNECT\naccept-version:1.1,1.2\nlogin:u\npasscode:p\n\n\0"
                               "SUBSCRIBE\nid:0\ndestination:/queue/a\\cb\nreceipt:r1\n\n\0"
                               "SEND\ndestination:/queue/c\n\nbody\0\n";

static void check_pipeline(struct h *h)
{
    assert_int_equal(h->nf, 2);
    assert_int_equal(h->f[0].cmd, SG_STOMP_CONNECTED);
    assert_int_equal(h->f[1].cmd, SG_STOMP_RECEIPT);
    assert_int_equal(h->na, 2);
    assert_int_equal(h->a[0].type, SG_ACT_SUBSCRIBE);
    assert_string_equal(h->a[0].dest, "/queue/a:b"); /* decoded with 1.2 rules */
    assert_int_equal(h->a[1].type, SG_ACT_SEND);
    assert_string_equal(h->a[1].body, "body");
    assert_int_equal(h->closes, 0);
}

static void test_pipelined_during_auth(void **state)
{
    (void)state;
    /* async auth: everything arrives first, nothing is acted on */
    struct h *h = h_alloc();
    h->auth_mode = AUTH_ASYNC;
    h_start(h, 0);
    assert_int_equal(feed(h, pipeline, sizeof pipeline - 1), SG_OK);
    assert_int_equal(h->auth_calls, 1);
    assert_int_equal(h->na, 0);
    assert_int_equal(h->nf, 0);
    sg_stomp_session_auth_result(h->s, 1, h->now);
    check_pipeline(h);
    h_free(h);

    /* one byte at a time, answer in the middle of the SUBSCRIBE */
    h = h_alloc();
    h->auth_mode = AUTH_ASYNC;
    h_start(h, 0);
    size_t mid = strlen(pipeline) + 1 + 20;
    for (size_t i = 0; i < sizeof pipeline - 1; i++) {
        if (i == mid) {
            assert_int_equal(h->na, 0);
            sg_stomp_session_auth_result(h->s, 1, h->now);
        }
        assert_int_equal(feed(h, pipeline + i, 1), SG_OK);
    }
    check_pipeline(h);
    h_free(h);

    /* sync auth: the same in one chunk */
    h = h_new(0);
    assert_int_equal(feed(h, pipeline, sizeof pipeline - 1), SG_OK);
    check_pipeline(h);
    h_free(h);

    /* refused: the pipelined frames never reach the relay */
    h = h_alloc();
    h->auth_mode = AUTH_ASYNC;
    h_start(h, 0);
    feed(h, pipeline, sizeof pipeline - 1);
    sg_stomp_session_auth_result(h->s, 0, h->now);
    assert_int_equal(h->na, 0);
    assert_int_equal(h->nf, 1);
    assert_error(h, "access refused", 1008);
    h_free(h);

    /* bounded by max_frame */
    h = h_alloc();
    h->auth_mode = AUTH_ASYNC;
    h->cfg.limits.max_frame = 256;
    h_start(h, 0);
    FEED(h, "CONNECT\naccept-version:1.2\n\n\0");
    char junk[200];
    memset(junk, '\n', sizeof junk);
    assert_int_equal(feed(h, junk, sizeof junk), SG_OK);
    assert_int_equal(h->closes, 0);
    assert_int_equal(feed(h, junk, sizeof junk), SG_ELIMIT);
    assert_error(h, "too much data before CONNECTED", 1008);
    sg_stomp_session_auth_result(h->s, 1, h->now);
    assert_int_equal(h->calls_after_close, 0);
    h_free(h);
}

/* ---- the CONNECT-sized bound before CONNECTED */

/* A CONNECT of exactly n bytes (with its NUL), padded with an x-pad header. */
static char *connect_of(size_t n)
{
    static const char head[] = "CONNECT\naccept-version:1.2\nlogin:u\npasscode:p\nx-pad:";
    static const char tail[] = "\n\n";
    size_t fixed = sizeof head - 1 + sizeof tail - 1 + 1;
    assert_true(n > fixed);
    char *p = malloc(n);
    assert_non_null(p);
    memcpy(p, head, sizeof head - 1);
    memset(p + sizeof head - 1, 'x', n - fixed);
    memcpy(p + n - sizeof tail, tail, sizeof tail - 1);
    p[n - 1] = '\0';
    return p;
}

/* feeds p[0..n) whole (k == n), split at k, or one byte at a time (k > n);
 * returns the first error (input after the close returns SG_OK) */
static int feed_mode(struct h *h, const char *p, size_t n, size_t k)
{
    int rc = SG_OK;
    if (k > n) {
        for (size_t i = 0; i < n && rc == SG_OK; i++)
            rc = feed(h, p + i, 1);
        return rc;
    }
    rc = feed(h, p, k);
    if (rc != SG_OK) return rc;
    return feed(h, p + k, n - k);
}

static void test_connect_frame_bound(void **state)
{
    (void)state;
    /* a CONNECT up to max_connect_frame is fine, one byte more is 1009,
     * however the bytes arrive */
    char *ok = connect_of(300), *big = connect_of(301);
    for (size_t k = 0; k <= 302; k++) {
        struct h *h = h_alloc();
        h->cfg.max_connect_frame = 300;
        h_start(h, 0);
        assert_int_equal(feed_mode(h, ok, 300, k), SG_OK);
        assert_int_equal(sg_stomp_session_state(h->s), SG_SESS_CONNECTED);
        h_free(h);

        h = h_alloc();
        h->cfg.max_connect_frame = 300;
        h_start(h, 0);
        assert_int_equal(feed_mode(h, big, 301, k), SG_ETOOBIG);
        assert_int_equal(h->auth_calls, 0);
        assert_error(h, "frame too big", 1009);
        h_free(h);
    }
    free(ok);
    free(big);

    /* the default (and 0) is 64 KiB, far below the 16 MiB frames allowed
     * once CONNECTED */
    for (int zero = 0; zero < 2; zero++) {
        char *c = connect_of((64u << 10) + 1);
        struct h *h = h_alloc();
        if (zero) h->cfg.max_connect_frame = 0;
        h->cfg.limits.max_header_line = 128u << 10;
        h_start(h, 0);
        assert_int_equal(feed(h, c, (64u << 10) + 1), SG_ETOOBIG);
        assert_error(h, "frame too big", 1009);
        h_free(h);
        free(c);
    }

    /* capped by max_frame when that is smaller */
    struct h *h = h_alloc();
    h->cfg.max_connect_frame = 4096;
    h->cfg.limits.max_frame = 300;
    h_start(h, 0);
    big = connect_of(301);
    assert_int_equal(feed(h, big, 301), SG_ETOOBIG);
    free(big);
    h_free(h);
}

/* Once CONNECTED the full limits apply: frames far over max_connect_frame
 * pass, whether they arrive after CONNECTED or were held while the broker
 * checked the credentials (within max_connect_frame of held bytes). */
static void test_full_limits_after_connected(void **state)
{
    (void)state;
    static const char head[] = "CONNECT\naccept-version:1.2\n\n\0SEND\ndestination:/topic/a\n\n";
    size_t body = 1000, n = sizeof head - 1 + body + 1;
    char *p = malloc(n);
    assert_non_null(p);
    memcpy(p, head, sizeof head - 1);
    memset(p + sizeof head - 1, 'b', body);
    p[n - 1] = '\0';
    for (size_t k = 0; k <= n + 1; k++) {
        struct h *h = h_alloc();
        h->cfg.max_connect_frame = 256;
        h_start(h, 0);
        assert_int_equal(feed_mode(h, p, n, k), SG_OK);
        assert_int_equal(h->closes, 0);
        assert_int_equal(h->na, 1);
        assert_string_equal(h->a[0].dest, "/topic/a");
        assert_int_equal(h->a[0].body[0], 'b');
        h_free(h);
    }

    /* held while authenticating: bounded by max_connect_frame, not max_frame */
    struct h *h = h_alloc();
    h->auth_mode = AUTH_ASYNC;
    h->cfg.max_connect_frame = 256;
    h_start(h, 0);
    FEED(h, "CONNECT\naccept-version:1.2\n\n\0");
    assert_int_equal(sg_stomp_session_state(h->s), SG_SESS_AUTHENTICATING);
    static const char send[] = "SEND\ndestination:/topic/a\n\nheld\0";
    for (size_t i = 0; i < 7; i++) /* 7 * 32 = 224 bytes held */
        assert_int_equal(FEED(h, send), SG_OK);
    assert_int_equal(h->closes, 0);
    sg_stomp_session_auth_result(h->s, 1, h->now);
    assert_int_equal(h->na, 7);
    assert_string_equal(h->a[6].body, "held");
    /* and then a 1000-byte body */
    assert_int_equal(feed(h, p + 29, n - 29), SG_OK);
    assert_int_equal(h->na, 8);
    assert_int_equal(h->closes, 0);
    h_free(h);

    h = h_alloc();
    h->auth_mode = AUTH_ASYNC;
    h->cfg.max_connect_frame = 256;
    h_start(h, 0);
    FEED(h, "CONNECT\naccept-version:1.2\n\n\0");
    for (size_t i = 0; i < 8; i++) /* 256 bytes: still fits */
        assert_int_equal(FEED(h, send), SG_OK);
    assert_int_equal(FEED(h, "\n"), SG_ELIMIT);
    assert_error(h, "too much data before CONNECTED", 1008);
    h_free(h);
    free(p);
}

/* ---- scripts fed whole, split at every boundary, one byte at a time */

struct script {
    int cap;
    int version_cfg; /* 0 default config, 1 small limits */
    const char *bytes;
    size_t len;
};

static struct h *run_script(const struct script *sc, size_t k, int bytewise)
{
    struct h *h = h_alloc();
    if (sc->version_cfg) {
        h->cfg.max_subscriptions = 2;
        h->cfg.limits.max_body = 8;
    }
    h_start(h, sc->cap);
    if (bytewise) {
        for (size_t i = 0; i < sc->len; i++)
            feed(h, sc->bytes + i, 1);
    } else {
        feed(h, sc->bytes, k);
        feed(h, sc->bytes + k, sc->len - k);
    }
    return h;
}

static void test_scripts_split(void **state)
{
    (void)state;
#define S(cap, cfg, lit)                                                                           \
    {                                                                                              \
        cap, cfg, lit, sizeof(lit) - 1                                                             \
    }
    static const struct script scripts[] = {
        S(10, 0,
          "CONNECT\nlogin: websockets\npasscode: rabbitmq\n\n\n\n\0"
          "SUBSCRIBE\ndestination: /queue/stocks.AAPL\n\n\n\n\0"
          "SUBSCRIBE\ndestination: /queue/stocks.MSFT\n\n\n\n\0"
          "UNSUBSCRIBE\ndestination: /queue/stocks.AAPL\n\n\n\n\0"
          "DISCONNECT\n\n\nundefined\n\0"),
        S(0, 0,
          "\r\n\nSTOMP\r\naccept-version:1.2\r\nheart-beat:0,0\r\n\r\n\0\r\n"
          "SUBSCRIBE\r\nid:1\r\ndestination:/topic/x\r\nack:client\r\nreceipt:a\\cb\r\n\r\n\0"
          "BEGIN\ntransaction:t\n\n\0"
          "SEND\ndestination:/queue/q\ntransaction:t\ncontent-length:3\n\na\0b\0"
          "ACK\nid:5\ntransaction:t\nreceipt:k\n\n\0"
          "COMMIT\ntransaction:t\nreceipt:c\n\n\0\n\n"
          "NACK\nid:6\n\n\0"
          "DISCONNECT\nreceipt:d\n\n\0"),
        S(11, 1,
          "CONNECT\naccept-version:1.0,1.1\nheart-beat:5000,5000\n\n\0"
          "SUBSCRIBE\nid:1\ndestination:/topic/x\n\n\0"
          "SUBSCRIBE\nid:2\ndestination:/topic/y\n\n\0"
          "SUBSCRIBE\nid:3\ndestination:/topic/z\n\n\0"),
        S(0, 1,
          "CONNECT\naccept-version:1.2\n\n\0"
          "SEND\ndestination:/queue/q\n\n0123456789\0"),
        S(0, 0, "SEND\ndestination:/queue/q\n\nx\0CONNECT\n\n\0"),
        S(10, 0, "CONNECT\naccept-version:1.1\n\n\0"),
    };
#undef S
    for (size_t i = 0; i < sizeof scripts / sizeof scripts[0]; i++) {
        const struct script *sc = &scripts[i];
        struct h *whole = run_script(sc, sc->len, 0);
        assert_true(whole->nf > 0);
        for (size_t k = 0; k <= sc->len; k++) {
            struct h *h = run_script(sc, k, 0);
            if (strcmp(h->log, whole->log) != 0)
                fail_msg("script %zu split at %zu:\n%s\n--- whole:\n%s", i, k, h->log, whole->log);
            h_free(h);
        }
        struct h *h = run_script(sc, 0, 1);
        if (strcmp(h->log, whole->log) != 0)
            fail_msg("script %zu bytewise:\n%s\n--- whole:\n%s", i, h->log, whole->log);
        h_free(h);
        h_free(whole);
    }
}

/* the transcript of the first script, so the split test cannot pass on an
 * empty transcript */
static void test_script_transcript(void **state)
{
    (void)state;
    static const char bytes[] = "CONNECT\nlogin: websockets\npasscode: rabbitmq\n\n\n\n\0"
                                "SUBSCRIBE\ndestination: /queue/stocks.AAPL\nreceipt: 1\n\n\n\n\0"
                                "DISCONNECT\n\n\nundefined\n\0";
    struct script sc = {10, 0, bytes, sizeof bytes - 1};
    struct h *h = run_script(&sc, 0, 1);
    assert_string_equal(h->log, "AUTH websockets/rabbitmq//;\n"
                                "CONNECTED session=<id> server=stompgate/test ||;\n"
                                "RELAY 1 dest=/queue/stocks.AAPL sub=/queue/stocks.AAPL ack=0 "
                                "ackid= receipt=1 body=\n\n;\n"
                                "RECEIPT receipt-id=1 ||;\n"
                                "CLOSE 1000;\n");
    h_free(h);
}

static void test_receipt_unrepresentable(void **state)
{
    (void)state;
    /* 1.0 cannot carry a receipt ending in CR back: ERROR instead of a bad frame */
    struct h *h = h_connected(10);
    FEED(h, "SEND\ndestination:/queue/a\nreceipt:x\r\r\n\n\0");
    assert_int_equal(h->na, 1);
    assert_error(h, "invalid receipt header", 1002);
    h_free(h);

    /* an ERROR about such a frame still goes out, without receipt-id */
    h = h_connected(10);
    FEED(h, "SEND\nreceipt:x\r\r\n\n\0");
    assert_int_equal(h->nf, 2);
    assert_error(h, "missing destination header", 1002);
    assert_null(fh(last(h), "receipt-id"));
    h_free(h);
}

static void test_long_error_text(void **state)
{
    (void)state;
    /* a long relay message (multi-byte UTF-8) is cut at a character
     * boundary: <= 511 bytes in the header, <= 123 in the close reason */
    static char msg[1200];
    size_t n = 0;
    while (n + 2 < sizeof msg - 1) {
        msg[n++] = (char)0xC3; /* U+00E9 */
        msg[n++] = (char)0xA9;
    }
    msg[n] = '\0';
    struct h *h = h_connected(12);
    h->relay_rc = SG_EBROKER;
    h->relay_err = msg;
    FEED(h, "SEND\ndestination:/queue/a\n\nx\0");
    const char *m = fh(last(h), "message");
    assert_non_null(m);
    assert_int_equal(strlen(m), 510);
    assert_memory_equal(m, msg, 510);
    assert_int_equal(strlen(h->close_reason), 122);
    assert_memory_equal(h->close_reason, msg, 122);
    assert_int_equal(h->close_code, 1000);
    h_free(h);
}

static void test_header_edge_cases(void **state)
{
    (void)state;
    /* 1.0 UNSUBSCRIBE needs an id or a destination */
    struct h *h = h_connected(10);
    assert_int_equal(FEED(h, "UNSUBSCRIBE\nreceipt:u\n\n\0"), SG_ESTOMP);
    assert_error(h, "missing id header", 1002);
    assert_string_equal(fh(last(h), "receipt-id"), "u");
    h_free(h);

    /* an empty destination is no destination */
    h = h_connected(11);
    assert_int_equal(FEED(h, "SEND\ndestination:\n\nx\0"), SG_ESTOMP);
    assert_error(h, "missing destination header", 1002);
    assert_int_equal(h->na, 0);
    h_free(h);

    /* escaping follows the negotiated version: none in 1.0, no \r in 1.1 */
    h = h_connected(10);
    FEED(h, "SEND\ndestination:/queue/a\\cb\n\nx\0");
    assert_int_equal(h->na, 1);
    assert_string_equal(h->a[0].dest, "/queue/a\\cb");
    h_free(h);
    h = h_connected(11);
    FEED(h, "SEND\ndestination:/queue/a\\cb\n\nx\0");
    assert_string_equal(h->a[0].dest, "/queue/a:b");
    assert_int_equal(FEED(h, "SEND\ndestination:/queue/a\\r\n\nx\0"), SG_ESTOMP);
    assert_int_equal(h->close_code, 1002);
    assert_int_equal(h->na, 1);
    h_free(h);

    /* repeated headers: the first one counts */
    h = h_connected(12);
    FEED(h, "SEND\ndestination:/queue/first\ndestination:/queue/second\n\nx\0");
    assert_string_equal(h->a[0].dest, "/queue/first");
    h_free(h);
}

/* ---- the optional metrics ops */

static void test_metrics_ops(void **state)
{
    (void)state;
    struct h *h = h_alloc();
    h->ops.frame_in = st_frame_in;
    h->ops.error_sent = st_error_sent;
    h_start(h, 0);
    const char *c = connect_frame(12);
    assert_int_equal(feed(h, c, strlen(c) + 1), SG_OK);
    assert_int_equal(h->frames_in[SG_STOMP_CONNECT], 1);
    assert_int_equal(FEED(h, "SEND\ndestination:/queue/a\n\nx\0SEND\ndestination:/queue/a\n\ny\0"),
                     SG_OK);
    assert_int_equal(FEED(h, "BEGIN\ntransaction:t\n\n\0SEND\ndestination:/queue/a\n"
                             "transaction:t\n\nz\0COMMIT\ntransaction:t\n\n\0"),
                     SG_OK);
    /* frames as decoded: the SEND replayed by COMMIT is not counted again */
    assert_int_equal(h->frames_in[SG_STOMP_SEND], 3);
    assert_int_equal(h->frames_in[SG_STOMP_BEGIN], 1);
    assert_int_equal(h->frames_in[SG_STOMP_COMMIT], 1);
    assert_int_equal(h->na, 3);
    assert_int_equal(h->nerr, 0);
    /* a frame that fails: counted, then its ERROR reported with the code */
    assert_int_equal(FEED(h, "SUBSCRIBE\nid:1\n\n\0"), SG_ESTOMP);
    assert_int_equal(h->frames_in[SG_STOMP_SUBSCRIBE], 1);
    assert_int_equal(h->nerr, 1);
    assert_int_equal(h->last_err, SG_ESTOMP);
    assert_string_equal(h->last_err_msg, "missing destination header");
    assert_int_equal(h->nf_at_error, h->nf); /* after the ERROR went out */
    assert_error(h, "missing destination header", 1002);
    h_free(h);

    /* no common version: the ERROR of on_connect */
    h = h_alloc();
    h->ops.error_sent = st_error_sent;
    h_start(h, 0);
    assert_int_equal(FEED(h, "CONNECT\naccept-version:2.0\n\n\0"), SG_EVERSION);
    assert_int_equal(h->nerr, 1);
    assert_int_equal(h->last_err, SG_EVERSION);
    assert_int_equal(last(h)->cmd, SG_STOMP_ERROR);
    h_free(h);

    /* the relay's failure: SG_EBROKER and its text */
    h = h_alloc();
    h->ops.error_sent = st_error_sent;
    h_start(h, 0);
    assert_int_equal(feed(h, c, strlen(c) + 1), SG_OK);
    sg_stomp_session_fail(h->s, "slow consumer", NULL, 1008);
    assert_int_equal(h->nerr, 1);
    assert_int_equal(h->last_err, SG_EBROKER);
    assert_string_equal(h->last_err_msg, "slow consumer");
    assert_error(h, "slow consumer", 1008);
    /* closed: nothing more is reported */
    sg_stomp_session_fail(h->s, "again", NULL, 0);
    assert_int_equal(h->nerr, 1);
    h_free(h);

    /* a DISCONNECT is no error */
    h = h_alloc();
    h->ops.frame_in = st_frame_in;
    h->ops.error_sent = st_error_sent;
    h_start(h, 0);
    assert_int_equal(feed(h, c, strlen(c) + 1), SG_OK);
    assert_int_equal(FEED(h, "DISCONNECT\nreceipt:r\n\n\0"), SG_OK);
    assert_int_equal(h->frames_in[SG_STOMP_DISCONNECT], 1);
    assert_int_equal(h->nerr, 0);
    h_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_new_state),
        cmocka_unit_test(test_version_table),
        cmocka_unit_test(test_book_connect),
        cmocka_unit_test(test_stomp_command),
        cmocka_unit_test(test_connect_values_not_trimmed_in_12),
        cmocka_unit_test(test_default_login),
        cmocka_unit_test(test_auth_refused),
        cmocka_unit_test(test_frame_before_connect),
        cmocka_unit_test(test_connect_twice),
        cmocka_unit_test(test_heartbeat_table),
        cmocka_unit_test(test_heartbeat_no_header),
        cmocka_unit_test(test_heartbeat_malformed),
        cmocka_unit_test(test_heartbeat_10),
        cmocka_unit_test(test_heartbeat_outgoing),
        cmocka_unit_test(test_heartbeat_incoming),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_subscribe_ok),
        cmocka_unit_test(test_subscribe_errors),
        cmocka_unit_test(test_subscribe_duplicate_and_limit),
        cmocka_unit_test(test_unsubscribe),
        cmocka_unit_test(test_send),
        cmocka_unit_test(test_relay_error),
        cmocka_unit_test(test_receipt_async),
        cmocka_unit_test(test_fail),
        cmocka_unit_test(test_ack_versions),
        cmocka_unit_test(test_tx_commit),
        cmocka_unit_test(test_tx_commit_fields),
        cmocka_unit_test(test_tx_commit_async_and_error),
        cmocka_unit_test(test_tx_abort_and_errors),
        cmocka_unit_test(test_tx_limits),
        cmocka_unit_test(test_disconnect),
        cmocka_unit_test(test_nothing_after_close),
        cmocka_unit_test(test_decoder_errors),
        cmocka_unit_test(test_pipelined_during_auth),
        cmocka_unit_test(test_connect_frame_bound),
        cmocka_unit_test(test_full_limits_after_connected),
        cmocka_unit_test(test_scripts_split),
        cmocka_unit_test(test_script_transcript),
        cmocka_unit_test(test_receipt_unrepresentable),
        cmocka_unit_test(test_long_error_text),
        cmocka_unit_test(test_header_edge_cases),
        cmocka_unit_test(test_metrics_ops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
