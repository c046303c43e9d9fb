/* test_relay.c - the relay (relay.h and its modules) against a fake client
 * and a scripted broker.
 *
 * The broker is tests/unit/fake_link.c, linked in place of amqp_link.c
 * (see the Makefile): it records every method and publish per channel and
 * lets each test answer as RabbitMQ would (declare-ok, consume-ok,
 * deliveries, confirms, returns, channel.close with a code and text,
 * blocked, a dropped connection). Each login has two links: the consuming
 * one (subscriptions, topic upstreams, temp queues), opened when its first
 * session attaches, and the publishing one (the confirm-mode publish
 * channel, the prep channel for declares and probes), opened at its first
 * SEND; each comes up only when a test says so, and teardown checks that
 * no publishing was done on a consuming link nor consuming on a publishing
 * one. The client is struct fc below: it
 * implements struct sg_relay_client_ops, records writes, receipts, fails
 * and pause_read calls, has a settable outlen, and, as the contract in
 * relay.h allows, detaches its session at the last release after a fail
 * (so a relay that touches a session it just ended is caught by ASan).
 * The relay runs with a real event base and the option table's defaults
 * (sg_gw_options), overridden per test with --key=value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>

#include "config.h"
#include "error.h"
#include "fake_link.h"
#include "gw_config.h"
#include "log.h"
#include "metrics.h"
#include "relay.h"
#include "stomp_frame.h"
#include "ticker.h"
#include "ws_frame.h"

/* ------------------------------------------------------------------ */
/* the fake client */

#define FC_MAX 512

struct fail_rec {
    char msg[512];
    char receipt[128];
    int has_receipt;
    int code;
};

struct fc {
    char id[32];
    char login[64];
    int version;
    int dead;             /* fail() was called: closing */
    int holds;            /* hold() minus release() */
    int detach_on_fail;   /* detach at the last release after a fail (as conn.c may) */
    int calls_after_dead; /* write/receipt after the fail: a relay bug */
    int detached;         /* sg_relay_detach was called: no op may be called now */
    int calls_after_detach;
    size_t outlen;
    struct sg_relay_sess *rs;
    struct sg_link *link;  /* its login's consuming link */
    struct sg_link *plink; /* its login's publishing link, once a SEND opened it */
    char *writes[FC_MAX];
    size_t wlen[FC_MAX];
    int wtext[FC_MAX];
    size_t nwrites;
    char *receipts[FC_MAX];
    size_t nreceipts;
    struct fail_rec fails[8];
    size_t nfails;
    int pauses[FC_MAX];
    size_t npauses;
};

/* Every op goes through here: none may be called once the session is
 * detached (the client would be gone). */
static struct fc *fc_of(void *cl)
{
    struct fc *c = cl;
    if (c->detached) c->calls_after_detach++;
    return c;
}

static const char *fc_id(void *cl)
{
    return fc_of(cl)->id;
}

static int fc_version(void *cl)
{
    return fc_of(cl)->version;
}

static int fc_is_open(void *cl)
{
    return !fc_of(cl)->dead;
}

static void fc_write(void *cl, const void *head, size_t head_len, struct evbuffer *shared, int text)
{
    struct fc *c = fc_of(cl);
    if (c->dead) c->calls_after_dead++;
    assert_true(c->nwrites < FC_MAX);
    size_t sl = shared ? evbuffer_get_length(shared) : 0;
    char *w = malloc(head_len + sl + 1);
    assert_non_null(w);
    memcpy(w, head, head_len);
    if (sl) assert_int_equal(evbuffer_copyout(shared, w + head_len, sl), (ssize_t)sl);
    w[head_len + sl] = 0;
    c->writes[c->nwrites] = w;
    c->wlen[c->nwrites] = head_len + sl;
    c->wtext[c->nwrites] = text;
    c->nwrites++;
}

static size_t fc_outlen(void *cl)
{
    return fc_of(cl)->outlen;
}

static void fc_pause_read(void *cl, int pause)
{
    struct fc *c = fc_of(cl);
    assert_true(c->npauses < FC_MAX);
    c->pauses[c->npauses++] = pause;
}

static void fc_receipt(void *cl, const char *receipt)
{
    struct fc *c = fc_of(cl);
    if (c->dead) c->calls_after_dead++;
    assert_true(c->holds > 0); /* the relay holds the client around it */
    assert_true(c->nreceipts < FC_MAX);
    c->receipts[c->nreceipts++] = strdup(receipt);
}

static void fc_fail(void *cl, const char *message, const char *receipt, int ws_code)
{
    struct fc *c = fc_of(cl);
    assert_true(c->holds > 0);
    assert_true(c->nfails < 8);
    struct fail_rec *f = &c->fails[c->nfails++];
    snprintf(f->msg, sizeof f->msg, "%s", message);
    f->has_receipt = receipt != NULL;
    snprintf(f->receipt, sizeof f->receipt, "%s", receipt ? receipt : "");
    f->code = ws_code;
    c->dead = 1;
}

static void fc_hold(void *cl)
{
    fc_of(cl)->holds++;
}

static void fc_release(void *cl)
{
    struct fc *c = fc_of(cl);
    assert_true(c->holds > 0);
    if (--c->holds == 0 && c->dead && c->rs && c->detach_on_fail) {
        struct sg_relay_sess *rs = c->rs;
        c->rs = NULL;
        c->detached = 1;
        sg_relay_detach(rs);
    }
}

static const struct sg_relay_client_ops fc_ops = {
    .id = fc_id,
    .version = fc_version,
    .is_open = fc_is_open,
    .write = fc_write,
    .outlen = fc_outlen,
    .pause_read = fc_pause_read,
    .receipt = fc_receipt,
    .fail = fc_fail,
    .hold = fc_hold,
    .release = fc_release,
};

/* ------------------------------------------------------------------ */
/* the fixture */

static struct {
    int started;
    struct event_base *base;
    struct sg_gw_config cfg;
    struct sg_relay_env env;
    struct sg_relay *r;
    struct fc *clients[16];
    int nclients;
    atomic_long out; /* the worker's buffered output, as conn.c would count it */
} T;

/* Builds the relay with the option table's defaults plus opts
 * ("--key=value", NULL-terminated). */
static void start_env(const char *const *opts, struct sg_ticker_hub *(*hub)(void),
                      struct sg_metrics *metrics)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)"test_relay";
    for (; opts && *opts; opts++)
        argv[argc++] = (char *)*opts;
    argv[argc] = NULL;
    memset(&T, 0, sizeof T);
    struct sg_cli cli;
    assert_int_equal(
        sg_config_load(sg_gw_options, &T.cfg, "SGTEST_RELAY_", NULL, argc, argv, &cli, stderr), 0);
    T.base = event_base_new();
    assert_non_null(T.base);
    T.env.base = T.base;
    T.env.cfg = &T.cfg;
    T.env.worker_id = 0;
    T.env.out_bytes = &T.out;
    T.env.memory_share = 1 << 20; /* pressure 1 above 512 KiB, 2 above 1 MiB */
    T.env.metrics = metrics;
    T.env.ticker = hub ? hub() : NULL;
    T.r = sg_relay_new(&T.env);
    assert_non_null(T.r);
    T.started = 1;
}

static void start(const char *const *opts)
{
    start_env(opts, NULL, NULL);
}

/* Every login has at most its two links, and each kept to its part: no
 * publish or confirm mode on the consuming link, no consumer, binding,
 * qos or ack on the publishing one. Returns how many rules were broken
 * (each printed), so teardown can clean up before it fails. */
static int check_links_split(const char *login)
{
    struct sg_link *cl = fl_link(login, 0), *pl = fl_plink(login);
    int bad = 0;
    char d[16384];
    if (!cl || fl_link_nth(login, 0, 2)) {
        print_error("%s: %s\n", login, cl ? "more than two links" : "no consuming link");
        bad++;
    }
    if (cl && (fl_count(cl, 0, 0, FL_PUBLISH) || fl_count(cl, 0, 0, AMQP_CONFIRM_SELECT_METHOD))) {
        fl_dump(cl, 0, d, sizeof d);
        print_error("%s: publishing on the consuming link:\n%s", login, d);
        bad++;
    }
    static const amqp_method_number_t consuming[] = {
        AMQP_BASIC_CONSUME_METHOD, AMQP_BASIC_CANCEL_METHOD, AMQP_BASIC_QOS_METHOD,
        AMQP_QUEUE_BIND_METHOD,    AMQP_BASIC_ACK_METHOD,    AMQP_BASIC_NACK_METHOD,
    };
    for (size_t i = 0; pl && i < sizeof consuming / sizeof consuming[0]; i++)
        if (fl_count(pl, 0, 0, consuming[i])) {
            fl_dump(pl, 0, d, sizeof d);
            print_error("%s: %s on the publishing link:\n%s", login, amqp_method_name(consuming[i]),
                        d);
            bad++;
        }
    return bad;
}

static int teardown(void **state)
{
    (void)state;
    if (!T.started) return 0;
    int after_dead = 0, after_detach = 0, split = 0;
    for (int i = 0; i < T.nclients; i++) {
        int seen = 0;
        for (int k = 0; k < i; k++)
            seen |= !strcmp(T.clients[k]->login, T.clients[i]->login);
        if (!seen) split += check_links_split(T.clients[i]->login);
    }
    for (int i = 0; i < T.nclients; i++) {
        struct fc *c = T.clients[i];
        if (c->rs) sg_relay_detach(c->rs);
        after_dead += c->calls_after_dead;
        after_detach += c->calls_after_detach;
        for (size_t k = 0; k < c->nwrites; k++)
            free(c->writes[k]);
        for (size_t k = 0; k < c->nreceipts; k++)
            free(c->receipts[k]);
        free(c);
    }
    sg_relay_free(T.r);
    event_base_free(T.base);
    sg_config_free(sg_gw_options, &T.cfg);
    T.started = 0;
    assert_int_equal(fl_nlinks(), 0); /* the relay freed every link */
    /* each link kept to its part (consuming, publishing) */
    assert_int_equal(split, 0);
    /* nothing was written or receipted to a client after its ERROR */
    assert_int_equal(after_dead, 0);
    /* and no client op was called after its session was detached */
    assert_int_equal(after_detach, 0);
    return 0;
}

static struct fc *client_pv(const char *login, const char *passcode, int version)
{
    struct fc *c = calloc(1, sizeof *c);
    assert_non_null(c);
    assert_true(T.nclients < 16);
    snprintf(c->id, sizeof c->id, "client-%d", T.nclients);
    snprintf(c->login, sizeof c->login, "%s", login);
    c->version = version;
    c->detach_on_fail = 1;
    T.clients[T.nclients++] = c;
    assert_int_equal(sg_relay_attach(T.r, &fc_ops, c, login, passcode, "/", &c->rs), SG_OK);
    assert_non_null(c->rs);
    c->link = fl_link(login, 0);
    assert_non_null(c->link);
    c->plink = fl_plink(login);
    return c;
}

static struct fc *client_v(const char *login, int version)
{
    return client_pv(login, "secret", version);
}

static struct fc *client(const char *login)
{
    return client_v(login, 12);
}

/* ------------------------------------------------------------------ */
/* actions */

struct act {
    enum sg_action_type type;
    const char *dest, *id, *receipt, *ack_id, *commit_receipt;
    enum sg_ack_mode ack;
    int in_commit;
    const char *kv[33]; /* key, value, ..., NULL */
    const char *body;
    size_t body_len; /* 0: strlen(body) */
};

static struct sg_stomp_frame frame;

static void add_header(const char *k, const char *v)
{
    assert_true(frame.num_headers < SG_STOMP_MAX_HEADERS_CAP);
    struct sg_stomp_header *h = &frame.headers[frame.num_headers++];
    h->key = k;
    h->key_len = strlen(k);
    h->value = v;
    h->value_len = strlen(v);
}

/* Performs the action as the client's session would: inside a hold, with
 * the frame's headers. err gets the error text for a negative result. */
static int run(struct fc *c, const struct act *a, char *err, size_t cap)
{
    static const enum sg_stomp_cmd cmds[] = {
        [SG_ACT_SUBSCRIBE] = SG_STOMP_SUBSCRIBE, [SG_ACT_UNSUBSCRIBE] = SG_STOMP_UNSUBSCRIBE,
        [SG_ACT_SEND] = SG_STOMP_SEND,           [SG_ACT_ACK] = SG_STOMP_ACK,
        [SG_ACT_NACK] = SG_STOMP_NACK,
    };
    memset(&frame, 0, sizeof frame);
    frame.cmd = cmds[a->type];
    if (a->dest) add_header("destination", a->dest);
    if (a->id) add_header("id", a->id);
    if (a->receipt && !a->in_commit) add_header("receipt", a->receipt);
    if (a->type == SG_ACT_SUBSCRIBE && a->ack != SG_ACK_AUTO)
        add_header("ack", a->ack == SG_ACK_CLIENT ? "client" : "client-individual");
    for (size_t i = 0; a->kv[i]; i += 2)
        add_header(a->kv[i], a->kv[i + 1]);
    static const uint8_t empty[1] = {0};
    frame.body = a->body ? (const uint8_t *)a->body : empty;
    frame.body_len = a->body ? (a->body_len ? a->body_len : strlen(a->body)) : 0;
    struct sg_action act = {
        .type = a->type,
        .frame = &frame,
        .destination = a->dest,
        .sub_id = a->id,
        .ack_mode = a->ack,
        .ack_id = a->ack_id,
        .receipt = a->receipt,
        .in_commit = a->in_commit,
        .commit_receipt = a->commit_receipt,
    };
    assert_non_null(c->rs);
    const char *em = NULL;
    fc_hold(c);
    int rc = sg_relay_action(c->rs, &act, &em);
    if (err) snprintf(err, cap, "%s", rc < 0 && rc != SG_AGAIN && em ? em : "");
    fc_release(c);
    /* a SEND may have opened the login's publishing link */
    struct sg_link *pl = fl_plink(c->login);
    for (int i = 0; pl && i < T.nclients; i++)
        if (!strcmp(T.clients[i]->login, c->login)) {
            if (T.clients[i]->plink) assert_ptr_equal(T.clients[i]->plink, pl);
            T.clients[i]->plink = pl;
        }
    return rc;
}

static int send_(struct fc *c, const char *dest, const char *receipt, const char *body)
{
    char err[512];
    int rc =
        run(c, &(struct act){.type = SG_ACT_SEND, .dest = dest, .receipt = receipt, .body = body},
            err, sizeof err);
    if (rc < 0 && rc != SG_AGAIN) fail_msg("SEND %s refused: %d %s", dest, rc, err);
    return rc;
}

static int subscribe(struct fc *c, const char *dest, const char *id, const char *receipt,
                     enum sg_ack_mode ack)
{
    char err[512];
    int rc =
        run(c,
            &(struct act){
                .type = SG_ACT_SUBSCRIBE, .dest = dest, .id = id, .receipt = receipt, .ack = ack},
            err, sizeof err);
    if (rc < 0 && rc != SG_AGAIN) fail_msg("SUBSCRIBE %s refused: %d %s", dest, rc, err);
    return rc;
}

/* ------------------------------------------------------------------ */
/* looking at what happened */

static void dump_fail(struct sg_link *l, size_t from, const char *what)
{
    char d[16384];
    fl_dump(l, from, d, sizeof d);
    fail_msg("%s; records:\n%s", what, d);
}

/* A copy of the first record with this method on ch (0: any) from `from`. */
static struct fl_rec get(struct sg_link *l, size_t from, uint16_t ch, amqp_method_number_t id)
{
    const struct fl_rec *r = fl_find(l, from, ch, id, NULL);
    if (!r) {
        char what[128];
        snprintf(what, sizeof what, "no %s on channel %u", amqp_method_name(id), ch);
        dump_fail(l, from, what);
    }
    return *r;
}

static struct fl_rec get_publish(struct sg_link *l, size_t from, uint16_t ch)
{
    const struct fl_rec *r = fl_find(l, from, ch, FL_PUBLISH, NULL);
    if (!r) dump_fail(l, from, "no basic.publish");
    return *r;
}

static size_t publishes(struct sg_link *l, size_t from, uint16_t ch)
{
    return fl_count(l, from, ch, FL_PUBLISH);
}

static void assert_receipts(const struct fc *c, ...)
{
    va_list ap;
    va_start(ap, c);
    size_t i = 0;
    const char *want;
    while ((want = va_arg(ap, const char *))) {
        if (i >= c->nreceipts) fail_msg("%s: receipt %zu (%s) missing", c->id, i, want);
        if (strcmp(c->receipts[i], want))
            fail_msg("%s: receipt %zu is %s, want %s", c->id, i, c->receipts[i], want);
        i++;
    }
    va_end(ap);
    if (i != c->nreceipts)
        fail_msg("%s: %zu receipts, want %zu (extra: %s)", c->id, c->nreceipts, i, c->receipts[i]);
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

static void assert_no_fail(const struct fc *c)
{
    if (c->nfails) fail_msg("%s failed: %s", c->id, c->fails[0].msg);
}

static const struct fail_rec *assert_failed(const struct fc *c, const char *receipt,
                                            const char *text, int code)
{
    if (c->nfails != 1) fail_msg("%s: %zu fails, want 1", c->id, c->nfails);
    const struct fail_rec *f = &c->fails[0];
    if (receipt) {
        assert_true(f->has_receipt);
        assert_string_equal(f->receipt, receipt);
    } else {
        assert_false(f->has_receipt);
    }
    assert_contains(f->msg, text);
    assert_int_equal(f->code, code);
    return f;
}

/* A consuming link comes up (again): nothing of publishing goes on it. */
static void up(struct sg_link *l)
{
    size_t m = fl_nrec(l);
    fl_up(l);
    assert_int_equal(fl_count(l, m, 0, AMQP_CONFIRM_SELECT_METHOD), 0);
    assert_int_equal(fl_count(l, m, 0, FL_PUBLISH), 0);
}

/* A publishing link comes up (again); returns the publish channel: the
 * relay opens it first, in confirm mode, before anything held goes. */
static uint16_t pup(struct sg_link *pl)
{
    assert_non_null(pl);
    size_t m = fl_nrec(pl);
    fl_up(pl);
    struct fl_rec cs = get(pl, m, 0, AMQP_CONFIRM_SELECT_METHOD);
    assert_int_equal(fl_rec(pl, m)->id, AMQP_CHANNEL_OPEN_METHOD);
    assert_int_equal(fl_rec(pl, m)->ch, cs.ch);
    assert_int_equal(fl_count(pl, m, 0, AMQP_BASIC_CONSUME_METHOD), 0);
    return cs.ch;
}

/* Makes dest known good on the publishing link of c's login: the SEND's
 * queue.declare (for /queue) is answered and its probe confirmed, so it
 * gets its RECEIPT. When the publishing link is not up (this SEND opened
 * it, or it dropped) prime brings it up and returns its publish channel;
 * else it returns 0. */
static uint16_t prime(struct fc *c, const char *dest)
{
    struct sg_link *pl = fl_plink(c->login);
    size_t m = pl ? fl_nrec(pl) : 0, nr = c->nreceipts;
    assert_int_equal(send_(c, dest, "prime", "p"), SG_AGAIN);
    pl = c->plink;
    assert_non_null(pl);
    assert_ptr_not_equal(pl, c->link);
    uint16_t pub = 0;
    if (!fl_is_up(pl)) {
        assert_int_equal(c->nreceipts, nr);
        pub = pup(pl);
    }
    const struct fl_rec *d = fl_find(pl, m, 0, AMQP_QUEUE_DECLARE_METHOD, NULL);
    if (d) {
        struct fl_rec dc = *d;
        fl_declare_ok(pl, dc.ch, dc.queue);
    }
    struct fl_rec p = get_publish(pl, m, 0);
    fl_confirm(pl, p.ch, p.seq, 0, 1, 0);
    assert_int_equal(c->nreceipts, nr + 1);
    assert_string_equal(c->receipts[nr], "prime");
    return pub;
}

/* Decodes the client's i-th write (a whole MESSAGE frame) and copies the
 * value of key into out; returns 0 if absent. Checks the frame ends right
 * after its NUL. */
static int msg_header(const struct fc *c, size_t i, const char *key, char *out, size_t cap)
{
    assert_true(i < c->nwrites);
    struct sg_stomp_dec d;
    sg_stomp_dec_init(&d, NULL);
    d.version = c->version;
    struct sg_stomp_event ev;
    ssize_t n = sg_stomp_decode(&d, (const uint8_t *)c->writes[i], c->wlen[i], &ev);
    if (n < 0) fail_msg("write %zu does not decode: %s", i, d.error);
    assert_int_equal((size_t)n, c->wlen[i]);
    assert_int_equal(ev.type, SG_STOMP_EV_FRAME);
    assert_int_equal(ev.frame->cmd, SG_STOMP_MESSAGE);
    int found = 0;
    if (!strcmp(key, "(body)")) {
        snprintf(out, cap, "%.*s", (int)ev.frame->body_len, (const char *)ev.frame->body);
        found = 1;
    } else {
        found = sg_stomp_header_copy(ev.frame, key, out, cap) == SG_OK;
    }
    sg_stomp_dec_reset(&d);
    return found;
}

static void assert_msg(const struct fc *c, size_t i, const char *key, const char *want)
{
    char v[512];
    if (!msg_header(c, i, key, v, sizeof v))
        fail_msg("%s write %zu: no %s header:\n%s", c->id, i, key, c->writes[i]);
    assert_string_equal(v, want);
}

/* ------------------------------------------------------------------ */
/* SEND to a fresh /queue: declare, probe, confirm, RECEIPT; then the
 * publish channel. All of it on the publishing link, none on the
 * consuming one. */

static void test_send_queue_declare_then_probe_then_publish(void **state)
{
    (void)state;
    start(NULL);
    struct fc *a = client("alice");
    struct sg_link *cl = a->link;
    assert_false(fl_is_up(cl));
    assert_null(a->plink);
    up(cl);
    size_t mc = fl_nrec(cl);

    assert_int_equal(run(a,
                         &(struct act){.type = SG_ACT_SEND,
                                       .dest = "/queue/orders",
                                       .receipt = "r1",
                                       .kv = {"persistent", "true", NULL},
                                       .body = "one"},
                         NULL, 0),
                     SG_AGAIN);
    /* the first SEND opened the publishing link; held until it is up */
    struct sg_link *l = a->plink;
    assert_non_null(l);
    assert_ptr_not_equal(l, cl);
    assert_false(fl_is_up(l));
    size_t m = fl_nrec(l);
    uint16_t pub = pup(l);
    /* first the queue.declare, durable, on a channel of its own */
    struct fl_rec d = get(l, m, 0, AMQP_QUEUE_DECLARE_METHOD);
    uint16_t prep = d.ch;
    assert_int_not_equal(prep, pub);
    assert_string_equal(d.queue, "orders");
    assert_int_equal(d.durable, 1);
    assert_int_equal(d.exclusive, 0);
    assert_int_equal(d.auto_delete, 0);
    assert_non_null(fl_find(l, m, prep, AMQP_CONFIRM_SELECT_METHOD, NULL));
    assert_int_equal(publishes(l, m, 0), 0); /* nothing before declare-ok */
    assert_int_equal(a->nreceipts, 0);

    /* declare-ok: the SEND itself is the probe, on the prep channel */
    size_t m2 = fl_nrec(l);
    fl_declare_ok(l, prep, "orders");
    struct fl_rec p = get_publish(l, m2, 0);
    assert_int_equal(publishes(l, m2, 0), 1);
    assert_int_equal(p.ch, prep);
    assert_string_equal(p.exchange, "");
    assert_string_equal(p.rkey, "orders");
    assert_int_equal(p.mandatory, 1); /* a receipt to a queue: unroutable must not confirm */
    assert_int_equal(p.delivery_mode, 2);
    assert_string_equal(p.body, "one");
    assert_int_equal(p.seq, 1);
    assert_int_equal(a->nreceipts, 0);

    /* the confirm sends the RECEIPT */
    fl_confirm(l, prep, 1, 0, 1, 0);
    assert_receipts(a, "r1", NULL);

    /* the second SEND goes straight to the publish channel */
    size_t m3 = fl_nrec(l);
    assert_int_equal(send_(a, "/queue/orders", "r2", "two"), SG_AGAIN);
    assert_int_equal(fl_count(l, m3, 0, AMQP_QUEUE_DECLARE_METHOD), 0);
    assert_int_equal(fl_count(l, m3, 0, AMQP_CHANNEL_OPEN_METHOD), 0);
    p = get_publish(l, m3, 0);
    assert_int_equal(p.ch, pub);
    assert_string_equal(p.rkey, "orders");
    assert_int_equal(p.mandatory, 1);
    assert_int_equal(p.delivery_mode, 0);
    assert_int_equal(p.seq, 1);
    assert_receipts(a, "r1", NULL);
    fl_confirm(l, pub, 1, 0, 1, 0);
    assert_receipts(a, "r1", "r2", NULL);

    /* without a receipt: published at once, not mandatory, and its
     * sequence number counted so later confirms still match */
    size_t m4 = fl_nrec(l);
    assert_int_equal(send_(a, "/queue/orders", NULL, "three"), SG_OK);
    p = get_publish(l, m4, pub);
    assert_int_equal(p.mandatory, 0);
    assert_int_equal(p.seq, 2);
    assert_int_equal(send_(a, "/queue/orders", "r4", "four"), SG_AGAIN);
    p = get_publish(l, fl_nrec(l) - 1, pub);
    assert_int_equal(p.seq, 3);
    fl_confirm(l, pub, 2, 0, 1, 0); /* the fire-and-forget one: no receipt */
    assert_receipts(a, "r1", "r2", NULL);
    fl_confirm(l, pub, 3, 0, 1, 0);
    assert_receipts(a, "r1", "r2", "r4", NULL);
    assert_no_fail(a);
    assert_int_equal(fl_nrec(cl), mc); /* nothing on the consuming link */
}

/* A missing exchange closes only the probe channel: the SENDs to it fail,
 * whoever sent them; other sessions' SENDs to a good exchange go on. */
static void test_probe_closed_fails_only_that_exchange(void **state)
{
    (void)state;
    start(NULL);
    struct fc *a = client("alice"), *b = client("alice"), *c = client("alice");
    assert_ptr_equal(b->link, a->link); /* one pooled connection per login and vhost */
    up(a->link);

    assert_int_equal(send_(a, "/exchange/amq.nope/k", "ra", "x"), SG_AGAIN);
    struct sg_link *l = a->plink;
    assert_ptr_equal(b->plink, l); /* and one publishing connection */
    assert_ptr_equal(c->plink, l);
    size_t m = fl_nrec(l);
    uint16_t pub = pup(l);
    struct fl_rec probe = get_publish(l, m, 0);
    uint16_t prep = probe.ch;
    assert_int_not_equal(prep, pub);
    assert_string_equal(probe.exchange, "amq.nope");
    assert_string_equal(probe.rkey, "k");
    assert_int_equal(probe.mandatory, 0); /* an exchange: no subscriber is fine */
    /* more SENDs to it wait for the probe, one session with two */
    assert_int_equal(send_(c, "/exchange/amq.nope/k", "rc1", "y"), SG_AGAIN);
    assert_int_equal(send_(c, "/exchange/amq.nope/j", "rc2", "z"), SG_AGAIN);
    /* and so does B's first SEND to amq.topic, behind it */
    assert_int_equal(send_(b, "/topic/news", "rb1", "n1"), SG_AGAIN);
    assert_int_equal(publishes(l, m, 0), 1);

    size_t m2 = fl_nrec(l);
    fl_chan_close(l, prep, 404, "NOT_FOUND - no exchange 'amq.nope' in vhost '/'");
    assert_failed(a, "ra", "NOT_FOUND - no exchange 'amq.nope' in vhost '/'", 0);
    assert_failed(c, "rc1", "NOT_FOUND - no exchange 'amq.nope' in vhost '/'", 0);
    assert_no_fail(b);
    assert_int_equal(a->nreceipts + c->nreceipts, 0);
    /* B's SEND is probed next, on a new prep channel */
    struct fl_rec pb = get_publish(l, m2, 0);
    assert_int_equal(publishes(l, m2, 0), 1);
    assert_int_not_equal(pb.ch, prep);
    assert_int_not_equal(pb.ch, pub);
    assert_string_equal(pb.exchange, "amq.topic");
    assert_string_equal(pb.rkey, "news");
    assert_string_equal(pb.body, "n1");
    assert_int_equal(fl_chan_state(l, pub), 1); /* the publish channel is untouched */
    fl_confirm(l, pb.ch, pb.seq, 0, 1, 0);
    assert_receipts(b, "rb1", NULL);
    /* and then B goes the fast way */
    size_t m3 = fl_nrec(l);
    assert_int_equal(send_(b, "/topic/news", "rb2", "n2"), SG_AGAIN);
    struct fl_rec p2 = get_publish(l, m3, 0);
    assert_int_equal(p2.ch, pub);
    fl_confirm(l, pub, p2.seq, 0, 1, 0);
    assert_receipts(b, "rb1", "rb2", NULL);
    assert_no_fail(b);
}

/* A queue whose declare is refused fails the SENDs waiting for it. */
static void test_queue_declare_refused(void **state)
{
    (void)state;
    start(NULL);
    struct fc *a = client("alice"), *b = client("alice");
    up(a->link);
    assert_int_equal(send_(a, "/queue/q-lazy", "ra", "x"), SG_AGAIN);
    struct sg_link *l = a->plink;
    size_t m = fl_nrec(l);
    pup(l);
    struct fl_rec d = get(l, m, 0, AMQP_QUEUE_DECLARE_METHOD);
    fl_chan_close(l, d.ch, 406,
                  "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q-lazy' in vhost "
                  "'/': received 'true' but current is 'false'");
    assert_failed(a, "ra", "inequivalent arg 'durable'", 0);
    assert_contains(a->fails[0].msg, "q-lazy");
    /* the links and the other sessions are fine */
    assert_true(fl_is_up(l));
    assert_true(fl_is_up(a->link));
    assert_int_equal(prime(b, "/queue/other"), 0);
    assert_no_fail(b);
}

/* user-id, expiration and priority are checked before anything is sent. */
static void test_send_validation(void **state)
{
    (void)state;
    start(NULL);
    struct fc *a = client("alice");
    struct sg_link *cl = a->link;
    up(cl);
    /* the publishing link is up: a refused SEND would have somewhere to go */
    prime(a, "/topic/other");
    struct sg_link *l = a->plink;
    size_t m = fl_nrec(l), mc = fl_nrec(cl);
    static const struct {
        const char *k, *v, *mention;
    } bad[] = {
        {"user-id", "mallory", "user-id"},  {"user-id", "alic", "user-id"},
        {"user-id", "", "user-id"},         {"expiration", "abc", "expiration"},
        {"expiration", "-5", "expiration"}, {"expiration", "", "expiration"},
        {"priority", "300", "priority"},    {"priority", "x", "priority"},
        {"timestamp", "soon", "timestamp"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (int with_receipt = 0; with_receipt < 2; with_receipt++) {
            char err[512] = "";
            int rc = run(a,
                         &(struct act){.type = SG_ACT_SEND,
                                       .dest = i % 2 ? "/queue/v" : "/topic/v",
                                       .receipt = with_receipt ? "r" : NULL,
                                       .kv = {bad[i].k, bad[i].v, NULL},
                                       .body = "b"},
                         err, sizeof err);
            if (rc >= 0 || rc == SG_AGAIN) fail_msg("%s:%s accepted (%d)", bad[i].k, bad[i].v, rc);
            assert_contains(err, bad[i].mention);
        }
    }
    /* nothing went to the broker, not even a declare or a channel */
    assert_int_equal(fl_nrec(l), m);
    assert_int_equal(fl_nrec(cl), mc);
    assert_receipts(a, "prime", NULL);
    assert_no_fail(a);
    /* the valid values pass */
    assert_int_equal(
        run(a,
            &(struct act){.type = SG_ACT_SEND,
                          .dest = "/topic/v",
                          .kv = {"user-id", "alice", "expiration", "0", "priority", "255", NULL},
                          .body = "b"},
            NULL, 0),
        SG_OK);
    assert_int_equal(publishes(l, m, 0), 1);
    assert_int_equal(fl_nrec(cl), mc);
}

/* The broker closes the shared publish channel naming an exchange: the
 * SENDs to it fail, the others are published once more on a new channel;
 * one that fails twice is failed. */
static void test_pub_channel_closed(void **state)
{
    (void)state;
    start(NULL);
    struct fc *a = client("alice"), *b = client("alice"), *c = client("alice"),
              *d = client("alice");
    up(a->link);
    uint16_t pub = prime(d, "/exchange/ex1/k");
    assert_int_not_equal(pub, 0);
    prime(d, "/exchange/ex2/k");
    struct sg_link *l = a->plink;

    size_t m = fl_nrec(l);
    assert_int_equal(send_(a, "/exchange/ex1/k", "a1", "A1"), SG_AGAIN);
    assert_int_equal(send_(b, "/exchange/ex2/k", "b1", "B1"), SG_AGAIN);
    assert_int_equal(send_(c, "/exchange/ex1/k", "c1", "C1"), SG_AGAIN);
    assert_int_equal(send_(b, "/exchange/ex2/k", "b2", "B2"), SG_AGAIN);
    assert_int_equal(publishes(l, m, pub), 4);

    size_t m2 = fl_nrec(l);
    fl_chan_close(l, pub, 403,
                  "ACCESS_REFUSED - access to exchange 'ex1' in vhost '/' refused for user "
                  "'alice'");
    assert_failed(a, "a1", "ACCESS_REFUSED - access to exchange 'ex1'", 0);
    assert_failed(c, "c1", "ACCESS_REFUSED - access to exchange 'ex1'", 0);
    assert_no_fail(b);
    /* a new publish channel, B's two SENDs on it, once each */
    uint16_t pub2 = get(l, m2, 0, AMQP_CONFIRM_SELECT_METHOD).ch;
    assert_int_not_equal(pub2, pub);
    assert_int_equal(publishes(l, m2, 0), 2);
    assert_int_equal(publishes(l, m2, pub2), 2);
    struct fl_rec r1 = get_publish(l, m2, pub2);
    assert_string_equal(r1.exchange, "ex2");
    assert_string_equal(r1.body, "B1");
    assert_int_equal(r1.seq, 1);
    assert_int_equal(b->nreceipts, 0);
    fl_confirm(l, pub2, 2, 1, 1, 0); /* multiple */
    assert_receipts(b, "b1", "b2", NULL);

    /* ex1 is no longer known good: the next SEND to it is a probe again */
    size_t m3 = fl_nrec(l);
    assert_int_equal(send_(d, "/exchange/ex1/k", "d1", "D1"), SG_AGAIN);
    struct fl_rec pr = get_publish(l, m3, 0);
    assert_int_not_equal(pr.ch, pub2);
    assert_string_equal(pr.exchange, "ex1");
    fl_confirm(l, pr.ch, pr.seq, 0, 1, 0);
    assert_receipts(d, "prime", "prime", "d1", NULL);

    /* a SEND caught in two channel errors is failed, not retried again */
    size_t m4 = fl_nrec(l);
    assert_int_equal(send_(b, "/exchange/ex2/k", "b3", "B3"), SG_AGAIN);
    assert_int_equal(publishes(l, m4, pub2), 1);
    fl_chan_close(l, pub2, 406, "PRECONDITION_FAILED - unknown delivery tag 9");
    /* no exchange named: the first unconfirmed one is blamed - b3 */
    assert_failed(b, "b3", "unknown delivery tag", 0);

    size_t m5 = fl_nrec(l);
    assert_int_equal(send_(d, "/exchange/ex2/k", "d2", "D2"), SG_AGAIN);
    uint16_t pub3 = get(l, m4, 0, AMQP_CONFIRM_SELECT_METHOD).ch;
    assert_int_equal(publishes(l, m5, pub3), 1);
    size_t m6 = fl_nrec(l);
    fl_chan_close(l, pub3, 403, "ACCESS_REFUSED - access to exchange 'ex9' in vhost '/'");
    /* not named: published once more on the next channel */
    assert_no_fail(d);
    uint16_t pub4 = get(l, m6, 0, AMQP_CONFIRM_SELECT_METHOD).ch;
    assert_int_equal(publishes(l, m6, pub4), 1);
    assert_string_equal(get_publish(l, m6, pub4).body, "D2");
    size_t m7 = fl_nrec(l);
    fl_chan_close(l, pub4, 403, "ACCESS_REFUSED - access to exchange 'ex9' in vhost '/'");
    /* the second time it is failed, and not published again */
    assert_failed(d, "d2", "ACCESS_REFUSED", 0);
    assert_int_equal(publishes(l, m7, 0), 0);
}

/* One session's SENDs to a refused exchange and to a good one, both
 * unconfirmed when the publish channel closes: the session ends; the good
 * one is still published once more (nobody gets its receipt). */
static void test_pub_channel_closed_same_session(void **state)
{
    (void)state;
    start(NULL);
    struct fc *a = client("alice"), *d = client("alice");
    up(a->link);
    uint16_t pub = prime(d, "/exchange/ex1/k");
    prime(d, "/exchange/ex2/k");
    struct sg_link *l = a->plink;
    assert_int_equal(send_(a, "/exchange/ex1/k", "a1", "A1"), SG_AGAIN);
    assert_int_equal(send_(a, "/exchange/ex2/k", "a2", "A2"), SG_AGAIN);
    assert_int_equal(send_(a, "/exchange/ex1/k", "a3", "A3"), SG_AGAIN);
    size_t m = fl_nrec(l);
    fl_chan_close(l, pub, 403, "ACCESS_REFUSED - access to exchange 'ex1' in vhost '/'");
    assert_failed(a, "a1", "ACCESS_REFUSED", 0);
    assert_null(a->rs); /* detached at its last release */
    uint16_t pub2 = get(l, m, 0, AMQP_CONFIRM_SELECT_METHOD).ch;
    assert_int_equal(publishes(l, m, pub2), 1);
    /* its confirm finds no session to tell */
    fl_confirm(l, pub2, 1, 0, 1, 0);
    assert_int_equal(a->nreceipts, 0);
    /* the other session is untouched */
    assert_int_equal(send_(d, "/exchange/ex2/k", "d1", "D1"), SG_AGAIN);
    fl_confirm(l, pub2, 2, 0, 1, 0);
    assert_receipts(d, "prime", "prime", "d1", NULL);
}

/* Two SENDs of one session wait behind another session's probe to a
 * missing exchange: the session gets one ERROR. */
static void test_probe_closed_two_waiting_same_session(void **state)
{
    (void)state;
    start(NULL);
    struct fc *a = client("alice"), *c = client("alice");
    up(a->link);
    assert_int_equal(send_(a, "/exchange/gone/k", "ra", "x"), SG_AGAIN);
    struct sg_link *l = a->plink;
    size_t m = fl_nrec(l);
    uint16_t pub = pup(l);
    uint16_t prep = get_publish(l, m, 0).ch;
    assert_int_not_equal(prep, pub);
    assert_int_equal(send_(c, "/exchange/gone/k", "rc1", "y"), SG_AGAIN);
    assert_int_equal(send_(c, "/exchange/gone/k", "rc2", "z"), SG_AGAIN);
    fl_chan_close(l, prep, 404, "NOT_FOUND - no exchange 'gone' in vhost '/'");
    assert_failed(a, "ra", "no exchange 'gone'", 0);
    assert_failed(c, "rc1", "no exchange 'gone'", 0);
}

/* RECEIPTs leave in frame order across a slow SUBSCRIBE (on the
 * consuming link) and a SEND confirm (on the publishing one); an
 * UNSUBSCRIBE done at once waits behind both. */
static void test_receipt_order(void **state)
{
    (void)state;
    start(NULL);
    struct fc *a = client("alice");
    struct sg_link *l = a->link;
    up(l);
    size_t m = fl_nrec(l);
    assert_int_equal(subscribe(a, "/queue/other", "s0", "s0-r", SG_ACK_AUTO), SG_AGAIN);
    uint16_t s0ch = get(l, m, 0, AMQP_BASIC_CONSUME_METHOD).ch;
    fl_consume_ok(l, s0ch, "x");
    assert_receipts(a, "s0-r", NULL);

    size_t m2 = fl_nrec(l);
    assert_int_equal(subscribe(a, "/queue/work", "s1", "sub-r", SG_ACK_CLIENT), SG_AGAIN);
    struct fl_rec cons = get(l, m2, 0, AMQP_BASIC_CONSUME_METHOD);
    struct fl_rec decl = get(l, m2, cons.ch, AMQP_QUEUE_DECLARE_METHOD);
    assert_string_equal(decl.queue, "work");
    assert_int_equal(decl.durable, 1);
    assert_string_equal(cons.queue, "work");
    assert_int_equal(cons.no_ack, 0);

    /* the SEND completes first ... */
    size_t m3 = fl_nrec(l);
    assert_int_equal(send_(a, "/queue/work", "send-r", "w"), SG_AGAIN);
    assert_int_equal(fl_nrec(l), m3);
    struct sg_link *pl = a->plink;
    pup(pl);
    struct fl_rec sd = get(pl, 0, 0, AMQP_QUEUE_DECLARE_METHOD);
    assert_string_equal(sd.queue, "work");
    fl_declare_ok(pl, sd.ch, "work");
    struct fl_rec p = get_publish(pl, 0, 0);
    fl_confirm(pl, p.ch, p.seq, 0, 1, 0);
    assert_receipts(a, "s0-r", NULL);
    /* ... an UNSUBSCRIBE is done at once but answered later, in order */
    size_t m4 = fl_nrec(l);
    assert_int_equal(
        run(a, &(struct act){.type = SG_ACT_UNSUBSCRIBE, .id = "s0", .receipt = "unsub-r"}, NULL,
            0),
        SG_AGAIN);
    struct fl_rec cl = get(l, m4, 0, AMQP_CHANNEL_CLOSE_METHOD);
    assert_int_equal(cl.ch, s0ch);
    assert_receipts(a, "s0-r", NULL);
    /* consume-ok of the SUBSCRIBE releases all three, in frame order */
    fl_consume_ok(l, cons.ch, cons.ctag);
    assert_receipts(a, "s0-r", "sub-r", "send-r", "unsub-r", NULL);
    /* with nothing pending, a done action answers at once (SG_OK) */
    assert_int_equal(
        run(a, &(struct act){.type = SG_ACT_UNSUBSCRIBE, .id = "s1", .receipt = "u2"}, NULL, 0),
        SG_OK);
    assert_no_fail(a);
}

static void test_receipt_bound(void **state)
{
    (void)state;
    start((const char *[]){"--max-pending-receipts=2", NULL});
    struct fc *a = client("alice");
    struct sg_link *l = a->link;
    up(l);
    size_t m0 = fl_nrec(l);
    assert_int_equal(subscribe(a, "/queue/q0", "s0", NULL, SG_ACK_AUTO), SG_AGAIN);
    fl_consume_ok(l, get(l, m0, 0, AMQP_BASIC_CONSUME_METHOD).ch, "x");
    assert_int_equal(subscribe(a, "/queue/q", "s1", "r1", SG_ACK_AUTO), SG_AGAIN);
    assert_int_equal(send_(a, "/queue/q", "r2", "x"), SG_AGAIN);
    struct sg_link *pl = a->plink;
    pup(pl); /* r2 is declaring: up, so a refused one would have a way out */
    size_t m = fl_nrec(l), mp = fl_nrec(pl);
    char err[512];
    int rc = run(a, &(struct act){.type = SG_ACT_SEND, .dest = "/queue/q", .receipt = "r3"}, err,
                 sizeof err);
    assert_int_equal(rc, SG_ETOOMANY);
    assert_contains(err, "max_pending_receipts");
    rc = run(
        a, &(struct act){.type = SG_ACT_SUBSCRIBE, .dest = "/queue/z", .id = "s2", .receipt = "r4"},
        err, sizeof err);
    assert_int_equal(rc, SG_ETOOMANY);
    assert_contains(err, "max_pending_receipts");
    /* a done action with a receipt behind the pending ones counts too */
    rc = run(a, &(struct act){.type = SG_ACT_UNSUBSCRIBE, .id = "s0", .receipt = "r5"}, err,
             sizeof err);
    assert_int_equal(rc, SG_ETOOMANY);
    assert_contains(err, "max_pending_receipts");
    /* nothing was published or opened for the refused ones */
    assert_int_equal(fl_nrec(pl), mp);
    assert_int_equal(fl_count(l, m, 0, AMQP_CHANNEL_OPEN_METHOD), 0);
    assert_int_equal(a->nreceipts, 0);
    /* an UNSUBSCRIBE of the pending SUBSCRIBE releases its place */
    assert_int_equal(
        run(a, &(struct act){.type = SG_ACT_UNSUBSCRIBE, .id = "s1", .receipt = "r6"}, NULL, 0),
        SG_AGAIN);
    assert_receipts(a, "r1", NULL);
}

/* connection.blocked on the publishing link: a session's reads pause when
 * it publishes (also one attached meanwhile), SENDs are held up to
 * hold_bytes (past it: ERROR, 1013); unblocked: reads resume and the held
 * SENDs are published. */
static void test_blocked(void **state)
{
    (void)state;
    start((const char *[]){"--hold-bytes=8K", NULL});
    struct fc *a = client("alice"), *b = client("alice");
    up(a->link);
    uint16_t pub = prime(a, "/topic/t");
    struct sg_link *l = a->plink;
    assert_int_equal(a->npauses, 0);
    fl_block(l, 1);
    /* nobody is paused for the block itself: consumers keep reading */
    assert_int_equal(a->npauses, 0);
    assert_int_equal(b->npauses, 0);
    struct fc *c = client("alice"); /* attached while blocked */
    assert_int_equal(c->npauses, 0);

    size_t m = fl_nrec(l);
    /* a session is paused when it publishes (TCP backpressure), once */
    assert_int_equal(send_(a, "/topic/t", NULL, "held-1"), SG_OK);
    assert_int_equal(a->npauses, 1);
    assert_int_equal(a->pauses[0], 1);
    assert_int_equal(send_(a, "/topic/t", "ra", "held-2"), SG_AGAIN);
    assert_int_equal(a->npauses, 1);
    assert_int_equal(send_(c, "/queue/fresh", "rc", "held-3"), SG_AGAIN);
    assert_int_equal(c->npauses, 1);
    assert_int_equal(c->pauses[0], 1);
    assert_int_equal(b->npauses, 0);
    assert_int_equal(publishes(l, m, 0), 0);
    assert_int_equal(fl_count(l, m, 0, AMQP_QUEUE_DECLARE_METHOD), 0);
    /* over hold_bytes: this SEND fails with 1013, the held ones stay */
    static char big[9000];
    memset(big, 'x', sizeof big - 1);
    assert_int_equal(send_(b, "/topic/t", "rb", big), SG_AGAIN);
    assert_failed(b, "rb", "hold_bytes", SG_WS_CLOSE_TRY_AGAIN);
    assert_no_fail(a);
    assert_no_fail(c);
    assert_int_equal(publishes(l, m, 0), 0);

    fl_block(l, 0);
    assert_int_equal(a->npauses, 2);
    assert_int_equal(a->pauses[1], 0);
    assert_int_equal(c->npauses, 2);
    assert_int_equal(c->pauses[1], 0);
    /* the held ones go, in order; the /queue one is declared first */
    assert_int_equal(publishes(l, m, pub), 2);
    struct fl_rec p1 = get_publish(l, m, pub);
    assert_string_equal(p1.body, "held-1");
    struct fl_rec d = get(l, m, 0, AMQP_QUEUE_DECLARE_METHOD);
    assert_string_equal(d.queue, "fresh");
    fl_confirm(l, pub, p1.seq + 1, 0, 1, 0);
    assert_receipts(a, "prime", "ra", NULL);
    fl_declare_ok(l, d.ch, "fresh");
    struct fl_rec p3 = get_publish(l, fl_nrec(l) - 1, 0);
    assert_string_equal(p3.body, "held-3");
    fl_confirm(l, p3.ch, p3.seq, 0, 1, 0);
    assert_receipts(c, "rc", NULL);
}

/* The publishing link drops with unconfirmed SENDs: after it is up again
 * they are published again, and their RECEIPTs come only after the new
 * confirms. */
static void test_link_drop_republish(void **state)
{
    (void)state;
    start(NULL);
    struct fc *a = client("alice");
    up(a->link);
    uint16_t pub = prime(a, "/topic/t");
    struct sg_link *l = a->plink;
    size_t m = fl_nrec(l);
    assert_int_equal(send_(a, "/topic/t", "r1", "one"), SG_AGAIN);
    assert_int_equal(send_(a, "/topic/t", "r2", "two"), SG_AGAIN);
    assert_int_equal(publishes(l, m, pub), 2);
    fl_drop(l);
    assert_no_fail(a);
    assert_receipts(a, "prime", NULL);
    /* while down, a SEND is held */
    assert_int_equal(send_(a, "/topic/t", "r3", "three"), SG_AGAIN);

    size_t m2 = fl_nrec(l);
    uint16_t npub = pup(l);
    /* what the exchange was is forgotten with the connection: the first
     * SEND probes it again, the others follow on the publish channel */
    struct fl_rec probe = get_publish(l, m2, 0);
    assert_int_not_equal(probe.ch, npub);
    assert_string_equal(probe.body, "one");
    assert_int_equal(publishes(l, m2, 0), 1);
    assert_receipts(a, "prime", NULL);
    fl_confirm(l, probe.ch, probe.seq, 0, 1, 0);
    assert_receipts(a, "prime", "r1", NULL);
    assert_int_equal(publishes(l, m2, npub), 2);
    struct fl_rec p2 = get_publish(l, m2, npub);
    assert_string_equal(p2.body, "two");
    assert_int_equal(p2.seq, 1);
    fl_confirm(l, npub, 2, 1, 1, 0);
    assert_receipts(a, "prime", "r1", "r2", "r3", NULL);
    assert_no_fail(a);
}

/* reply-to:/temp-queue/a: a private reply queue (its own channel, counted
 * as a subscription); the SEND waits for its consume-ok and carries
 * reply-to:/reply-queue/<queue>; UNSUBSCRIBE /temp-queue/a removes it. */
static void test_temp_queue(void **state)
{
    (void)state;
    start((const char *[]){"--max-subscriptions=3", NULL});
    struct fc *a = client("alice");
    struct sg_link *l = a->link;
    up(l);
    uint16_t pub = prime(a, "/queue/rpc");
    struct sg_link *pl = a->plink;

    /* the reply queue is a subscription: on the consuming link */
    size_t m = fl_nrec(l), mp = fl_nrec(pl);
    assert_int_equal(run(a,
                         &(struct act){.type = SG_ACT_SEND,
                                       .dest = "/queue/rpc",
                                       .receipt = "r1",
                                       .kv = {"reply-to", "/temp-queue/a", NULL},
                                       .body = "req"},
                         NULL, 0),
                     SG_AGAIN);
    struct fl_rec td = get(l, m, 0, AMQP_QUEUE_DECLARE_METHOD);
    uint16_t tch = td.ch;
    assert_int_equal(fl_count(pl, mp, 0, AMQP_QUEUE_DECLARE_METHOD), 0);
    assert_int_equal(td.exclusive, 1);
    assert_int_equal(td.auto_delete, 1);
    assert_int_equal(td.durable, 0);
    assert_true(strlen(td.queue) > 0);
    struct fl_rec tc = get(l, m, tch, AMQP_BASIC_CONSUME_METHOD);
    assert_string_equal(tc.queue, td.queue);
    /* the SEND waits for the reply queue */
    assert_int_equal(publishes(pl, mp, 0), 0);
    fl_declare_ok(l, tch, td.queue);
    assert_int_equal(publishes(pl, mp, 0), 0);

    size_t m2 = fl_nrec(pl);
    fl_consume_ok(l, tch, tc.ctag);
    struct fl_rec p = get_publish(pl, m2, 0);
    assert_int_equal(p.ch, pub);
    assert_string_equal(p.rkey, "rpc");
    char want[300];
    snprintf(want, sizeof want, "/reply-queue/%s", td.queue);
    assert_string_equal(p.reply_to, want);
    fl_confirm(pl, pub, p.seq, 0, 1, 0);
    assert_receipts(a, "prime", "r1", NULL);

    /* a reply on the temp queue: destination /temp-queue/a, no ack header */
    size_t m3 = fl_nrec(l);
    fl_deliver(l, tch, 1, 0, "", td.queue, NULL, "resp", 4);
    assert_int_equal(a->nwrites, 1);
    assert_msg(a, 0, "destination", "/temp-queue/a");
    assert_msg(a, 0, "(body)", "resp");
    char v[64];
    assert_false(msg_header(a, 0, "ack", v, sizeof v));
    struct fl_rec ack = get(l, m3, tch, AMQP_BASIC_ACK_METHOD); /* acked for the client */
    assert_int_equal(ack.tag, 1);

    /* the same temp queue again: no new queue, at once */
    size_t m4 = fl_nrec(l), mp4 = fl_nrec(pl);
    assert_int_equal(run(a,
                         &(struct act){.type = SG_ACT_SEND,
                                       .dest = "/queue/rpc",
                                       .kv = {"reply-to", "/temp-queue/a", NULL},
                                       .body = "req2"},
                         NULL, 0),
                     SG_OK);
    assert_int_equal(fl_count(l, m4, 0, AMQP_CHANNEL_OPEN_METHOD), 0);
    assert_int_equal(fl_count(pl, mp4, 0, AMQP_CHANNEL_OPEN_METHOD), 0);
    assert_string_equal(get_publish(pl, mp4, pub).reply_to, want);

    /* it counts toward max_subscriptions (3): two more fit, then no more */
    assert_int_equal(subscribe(a, "/queue/x", "s1", NULL, SG_ACK_AUTO), SG_AGAIN);
    assert_int_equal(subscribe(a, "/topic/y", "s2", NULL, SG_ACK_AUTO), SG_AGAIN);
    char err[512];
    int rc = run(a,
                 &(struct act){.type = SG_ACT_SEND,
                               .dest = "/queue/rpc",
                               .kv = {"reply-to", "/temp-queue/b", NULL},
                               .body = "req3"},
                 err, sizeof err);
    assert_int_equal(rc, SG_ETOOMANY);
    assert_contains(err, "max_subscriptions");
    rc = run(a, &(struct act){.type = SG_ACT_SUBSCRIBE, .dest = "/queue/z", .id = "s3"}, err,
             sizeof err);
    assert_int_equal(rc, SG_ETOOMANY);
    assert_contains(err, "max_subscriptions");

    /* UNSUBSCRIBE /temp-queue/a removes the reply queue (and frees a place) */
    size_t m5 = fl_nrec(l);
    assert_int_equal(
        run(a, &(struct act){.type = SG_ACT_UNSUBSCRIBE, .id = "/temp-queue/a"}, NULL, 0), SG_OK);
    assert_int_equal(get(l, m5, 0, AMQP_CHANNEL_CLOSE_METHOD).ch, tch);
    assert_int_equal(fl_chan_state(l, tch), 2);
    fl_close_ok(l, tch);
    /* a second UNSUBSCRIBE of it finds nothing */
    rc = run(a, &(struct act){.type = SG_ACT_UNSUBSCRIBE, .id = "/temp-queue/a"}, err, sizeof err);
    assert_int_equal(rc, SG_ESTATE);
    size_t m6 = fl_nrec(l);
    assert_int_equal(run(a,
                         &(struct act){.type = SG_ACT_SEND,
                                       .dest = "/queue/rpc",
                                       .kv = {"reply-to", "/temp-queue/b", NULL},
                                       .body = "req4"},
                         NULL, 0),
                     SG_OK);
    struct fl_rec td2 = get(l, m6, 0, AMQP_QUEUE_DECLARE_METHOD);
    assert_string_not_equal(td2.queue, td.queue);
    assert_no_fail(a);
}

/* prefetch-count:0 -> basic.qos max_prefetch; a client-ack subscription
 * whose client is over output_buffer_max has its consumer cancelled, and
 * consumes again once drained. */
static void test_prefetch_and_throttle(void **state)
{
    (void)state;
    start((const char *[]){"--prefetch=10", "--max-prefetch=50", NULL});
    struct fc *a = client("alice");
    struct sg_link *l = a->link;
    up(l);
    static const struct {
        const char *pf;
        int want;
    } rows[] = {{NULL, 10}, {"0", 50}, {"5", 5}, {"50", 50}, {"51", 50}, {"99999", 50}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char id[16];
        snprintf(id, sizeof id, "p%zu", i);
        size_t m = fl_nrec(l);
        struct act ac = {.type = SG_ACT_SUBSCRIBE, .dest = "/queue/pf", .id = id};
        if (rows[i].pf) {
            ac.kv[0] = "prefetch-count";
            ac.kv[1] = rows[i].pf;
        }
        assert_int_equal(run(a, &ac, NULL, 0), SG_AGAIN);
        assert_int_equal(get(l, m, 0, AMQP_BASIC_QOS_METHOD).prefetch, rows[i].want);
    }
    static const char *const badpf[] = {"-1", "abc", "", "12345678901"};
    for (size_t i = 0; i < 4; i++) {
        char err[512];
        int rc = run(a,
                     &(struct act){.type = SG_ACT_SUBSCRIBE,
                                   .dest = "/queue/pf",
                                   .id = "bad",
                                   .kv = {"prefetch-count", badpf[i], NULL}},
                     err, sizeof err);
        assert_int_equal(rc, SG_ESTOMP);
        assert_contains(err, "prefetch-count");
    }

    size_t m = fl_nrec(l);
    assert_int_equal(subscribe(a, "/queue/jobs", "s1", NULL, SG_ACK_CLIENT), SG_AGAIN);
    struct fl_rec cons = get(l, m, 0, AMQP_BASIC_CONSUME_METHOD);
    uint16_t ch = cons.ch;
    fl_consume_ok(l, ch, cons.ctag);
    /* under the bound: written, no ack (the client acks), no cancel */
    size_t m2 = fl_nrec(l);
    fl_deliver(l, ch, 1, 0, "", "jobs", NULL, "j1", 2);
    assert_int_equal(a->nwrites, 1);
    assert_msg(a, 0, "subscription", "s1");
    assert_msg(a, 0, "destination", "/queue/jobs");
    char ackid[64];
    assert_true(msg_header(a, 0, "ack", ackid, sizeof ackid));
    assert_int_equal(fl_count(l, m2, 0, AMQP_BASIC_ACK_METHOD), 0);
    assert_int_equal(fl_count(l, m2, 0, AMQP_BASIC_CANCEL_METHOD), 0);
    /* over output_buffer_max after a delivery: the consumer is cancelled */
    a->outlen = (size_t)T.cfg.output_buffer_max + 1;
    fl_deliver(l, ch, 2, 0, "", "jobs", NULL, "j2", 2);
    assert_int_equal(a->nwrites, 2);
    struct fl_rec cancel = get(l, m2, ch, AMQP_BASIC_CANCEL_METHOD);
    assert_string_equal(cancel.ctag, cons.ctag);
    /* once only */
    fl_deliver(l, ch, 3, 0, "", "jobs", NULL, "j3", 2); /* prefetched before the cancel */
    assert_int_equal(fl_count(l, m2, 0, AMQP_BASIC_CANCEL_METHOD), 1);
    assert_int_equal(fl_count(l, m2, 0, AMQP_BASIC_CONSUME_METHOD), 0);
    /* drained: consumes again, same queue and tag */
    a->outlen = 0;
    size_t m3 = fl_nrec(l);
    sg_relay_drained(a->rs);
    struct fl_rec again = get(l, m3, ch, AMQP_BASIC_CONSUME_METHOD);
    assert_string_equal(again.queue, "jobs");
    assert_string_equal(again.ctag, cons.ctag);
    sg_relay_drained(a->rs); /* not paused any more: nothing */
    assert_int_equal(fl_count(l, m3, 0, AMQP_BASIC_CONSUME_METHOD), 1);
    /* ACK of the first message id (client mode: cumulative) */
    size_t m4 = fl_nrec(l);
    assert_int_equal(run(a, &(struct act){.type = SG_ACT_ACK, .ack_id = ackid}, NULL, 0), SG_OK);
    struct fl_rec ack = get(l, m4, ch, AMQP_BASIC_ACK_METHOD);
    assert_int_equal(ack.tag, 1);
    assert_int_equal(ack.multiple, 1);
    /* acked already: unknown now */
    assert_int_equal(run(a, &(struct act){.type = SG_ACT_ACK, .ack_id = ackid}, NULL, 0),
                     SG_ESTOMP);
    assert_no_fail(a);
}

/* ack:auto on a private queue: acked once written, unless the client is
 * behind; then the ack is held back until it drains. */
static void test_auto_ack_held_while_behind(void **state)
{
    (void)state;
    start(NULL);
    struct fc *a = client("alice");
    struct sg_link *l = a->link;
    up(l);
    size_t m = fl_nrec(l);
    assert_int_equal(subscribe(a, "/queue/auto", "s1", NULL, SG_ACK_AUTO), SG_AGAIN);
    struct fl_rec cons = get(l, m, 0, AMQP_BASIC_CONSUME_METHOD);
    fl_consume_ok(l, cons.ch, cons.ctag);
    size_t m2 = fl_nrec(l);
    fl_deliver(l, cons.ch, 1, 0, "", "auto", NULL, "a", 1);
    struct fl_rec ack = get(l, m2, cons.ch, AMQP_BASIC_ACK_METHOD);
    assert_int_equal(ack.tag, 1);
    char v[64];
    assert_false(msg_header(a, 0, "ack", v, sizeof v));
    /* behind (over half the bound): held */
    a->outlen = (size_t)T.cfg.output_buffer_max / 2 + 1;
    size_t m3 = fl_nrec(l);
    fl_deliver(l, cons.ch, 2, 0, "", "auto", NULL, "b", 1);
    fl_deliver(l, cons.ch, 3, 0, "", "auto", NULL, "c", 1);
    assert_int_equal(fl_count(l, m3, 0, AMQP_BASIC_ACK_METHOD), 0);
    a->outlen = 0;
    sg_relay_drained(a->rs);
    ack = get(l, m3, cons.ch, AMQP_BASIC_ACK_METHOD);
    assert_int_equal(ack.tag, 3);
    assert_int_equal(ack.multiple, 1);
    assert_int_equal(a->nwrites, 3);
}

/* Two /topic subscriptions share one upstream; a delivery is written to
 * both; a client over output_buffer_max afterwards is dropped (1008). */
/* A shared upstream is acked in batches while the worker keeps up; under
 * memory pressure it is not acked (the broker stops at the prefetch window
 * and keeps the rest, conflating), and over the worker's share a
 * subscriber that is behind misses deliveries while the others get them. */
static void test_upstream_acks_and_pressure(void **state)
{
    (void)state;
    start(NULL);
    struct fc *a = client("alice"), *b = client("alice");
    struct sg_link *l = a->link;
    up(l);
    size_t m = fl_nrec(l);
    assert_int_equal(subscribe(a, "/topic/p", "a1", NULL, SG_ACK_AUTO), SG_AGAIN);
    uint16_t tch = get(l, m, 0, AMQP_CHANNEL_OPEN_METHOD).ch;
    struct fl_rec cons = get(l, m, tch, AMQP_BASIC_CONSUME_METHOD);
    fl_consume_ok(l, tch, cons.ctag);
    assert_int_equal(subscribe(b, "/topic/p", "b1", NULL, SG_ACK_AUTO), SG_OK);
    uint64_t tag = 0;
    size_t m1 = fl_nrec(l);
    for (int i = 0; i < 63; i++)
        fl_deliver(l, tch, ++tag, 0, "amq.topic", "p", NULL, "x", 1);
    assert_int_equal(fl_count(l, m1, tch, AMQP_BASIC_ACK_METHOD), 0);
    fl_deliver(l, tch, ++tag, 0, "amq.topic", "p", NULL, "x", 1);
    assert_int_equal(fl_count(l, m1, tch, AMQP_BASIC_ACK_METHOD), 1);
    struct fl_rec ack = get(l, m1, tch, AMQP_BASIC_ACK_METHOD);
    assert_int_equal(ack.tag, 64);
    assert_int_equal(ack.multiple, 1);

    /* pressure 1: delivered, but not acked */
    atomic_store(&T.out, 600 * 1024);
    size_t m2 = fl_nrec(l);
    for (int i = 0; i < 100; i++)
        fl_deliver(l, tch, ++tag, 0, "amq.topic", "p", NULL, "y", 1);
    assert_int_equal(fl_count(l, m2, tch, AMQP_BASIC_ACK_METHOD), 0);
    assert_int_equal(a->nwrites, 164);
    assert_int_equal(b->nwrites, 164);

    /* pressure 2: a is behind and misses one; b is not and gets it */
    atomic_store(&T.out, 2 * 1024 * 1024);
    a->outlen = 100 * 1024;
    fl_deliver(l, tch, ++tag, 0, "amq.topic", "p", NULL, "z", 1);
    assert_int_equal(a->nwrites, 164);
    assert_int_equal(b->nwrites, 165);
    assert_int_equal(fl_count(l, m2, tch, AMQP_BASIC_ACK_METHOD), 0);

    /* the pressure is gone: the next delivery acks everything so far */
    atomic_store(&T.out, 0);
    a->outlen = 0;
    fl_deliver(l, tch, ++tag, 0, "amq.topic", "p", NULL, "w", 1);
    assert_int_equal(fl_count(l, m2, tch, AMQP_BASIC_ACK_METHOD), 1);
    assert_int_equal(get(l, m2, tch, AMQP_BASIC_ACK_METHOD).tag, tag);
    assert_int_equal(a->nwrites, 165);
}

/* The default slow-consumer policy for topics, drop: a subscriber half its
 * bound behind misses messages (the others do not), receives again once it
 * caught up, and is closed with 1008 when it stays behind for
 * slow_consumer_timeout_ms - also when no delivery comes to notice it. */
static void test_topic_drop_policy(void **state)
{
    (void)state;
    start((const char *[]){"--slow-consumer-timeout-ms=50", NULL});
    struct fc *a = client("alice"), *b = client("alice");
    struct sg_link *l = a->link;
    up(l);
    size_t m = fl_nrec(l);
    assert_int_equal(subscribe(a, "/topic/p", "a1", NULL, SG_ACK_AUTO), SG_AGAIN);
    uint16_t tch = get(l, m, 0, AMQP_CHANNEL_OPEN_METHOD).ch;
    fl_consume_ok(l, tch, get(l, m, tch, AMQP_BASIC_CONSUME_METHOD).ctag);
    assert_int_equal(subscribe(b, "/topic/p", "b1", NULL, SG_ACK_AUTO), SG_OK);
    uint64_t tag = 0;
    fl_deliver(l, tch, ++tag, 0, "amq.topic", "p", NULL, "1", 1);
    b->outlen = (size_t)T.cfg.output_buffer_max / 2 + 1; /* behind */
    fl_deliver(l, tch, ++tag, 0, "amq.topic", "p", NULL, "2", 1);
    fl_deliver(l, tch, ++tag, 0, "amq.topic", "p", NULL, "3", 1);
    assert_int_equal(a->nwrites, 3);
    assert_int_equal(b->nwrites, 1); /* missed 2 and 3, not closed */
    assert_no_fail(b);
    b->outlen = 0; /* caught up */
    fl_deliver(l, tch, ++tag, 0, "amq.topic", "p", NULL, "4", 1);
    assert_int_equal(b->nwrites, 2);
    assert_msg(b, 1, "(body)", "4");
    /* behind again, and for longer than the timeout: closed by the timer */
    b->outlen = (size_t)T.cfg.output_buffer_max / 2 + 1;
    fl_deliver(l, tch, ++tag, 0, "amq.topic", "p", NULL, "5", 1);
    assert_no_fail(b);
    usleep(80 * 1000);
    struct timeval tv = {0, 300 * 1000};
    event_base_loopexit(T.base, &tv);
    event_base_dispatch(T.base); /* the relay's 250 ms timer runs */
    assert_failed(b, NULL, "slow consumer", SG_WS_CLOSE_POLICY);
    assert_no_fail(a);
    fl_deliver(l, tch, ++tag, 0, "amq.topic", "p", NULL, "6", 1);
    assert_int_equal(a->nwrites, 6);
}

static void test_topic_fanout(void **state)
{
    (void)state;
    start((const char *[]){"--slow-consumer-policy=close", NULL});
    struct fc *a = client("alice"), *b = client_v("alice", 10);
    struct sg_link *l = a->link;
    up(l);
    size_t m = fl_nrec(l);
    assert_int_equal(subscribe(a, "/topic/prices", "a1", "ra", SG_ACK_AUTO), SG_AGAIN);
    uint16_t tch = get(l, m, 0, AMQP_CHANNEL_OPEN_METHOD).ch;
    struct fl_rec d = get(l, m, tch, AMQP_QUEUE_DECLARE_METHOD);
    assert_int_equal(d.exclusive, 1);
    assert_int_equal(d.auto_delete, 1);
    struct fl_rec bind = get(l, m, tch, AMQP_QUEUE_BIND_METHOD);
    assert_string_equal(bind.exchange, "amq.topic");
    assert_string_equal(bind.rkey, "prices");
    assert_string_equal(bind.queue, d.queue);
    /* the broker keeps at most upstream_max_length for us, oldest dropped */
    assert_int_equal(d.nargs, 2);
    /* consumed with acks and a prefetch window (backpressure to the broker) */
    struct fl_rec qos = get(l, m, tch, AMQP_BASIC_QOS_METHOD);
    assert_int_equal(qos.prefetch, 1000);
    struct fl_rec cons = get(l, m, tch, AMQP_BASIC_CONSUME_METHOD);
    assert_int_equal(cons.no_ack, 0);
    size_t m2 = fl_nrec(l);
    assert_int_equal(subscribe(b, "/topic/prices", "b1", "rb", SG_ACK_AUTO), SG_AGAIN);
    assert_int_equal(fl_nrec(l), m2); /* shares the upstream: nothing sent */
    assert_int_equal(a->nreceipts + b->nreceipts, 0);
    fl_consume_ok(l, tch, cons.ctag);
    assert_receipts(a, "ra", NULL);
    assert_receipts(b, "rb", NULL);
    /* a third, once the upstream is ready: answered at once */
    struct fc *c = client("alice");
    assert_int_equal(subscribe(c, "/topic/prices", "c1", "rc", SG_ACK_AUTO), SG_OK);

    amqp_basic_properties_t props;
    memset(&props, 0, sizeof props);
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG;
    props.content_type = amqp_cstring_bytes("text/plain");
    fl_deliver(l, tch, 1, 0, "amq.topic", "prices", &props, "p=1", 3);
    assert_int_equal(a->nwrites, 1);
    assert_int_equal(b->nwrites, 1);
    assert_int_equal(c->nwrites, 1);
    assert_msg(a, 0, "subscription", "a1");
    assert_msg(b, 0, "subscription", "b1");
    assert_msg(c, 0, "subscription", "c1");
    for (int i = 0; i < 3; i++) {
        struct fc *x = i == 0 ? a : i == 1 ? b : c;
        assert_msg(x, 0, "destination", "/topic/prices");
        assert_msg(x, 0, "content-type", "text/plain");
        assert_msg(x, 0, "(body)", "p=1");
        assert_true(x->wtext[0]);
    }
    /* B is behind after the next delivery: ERROR slow consumer, 1008 */
    b->outlen = (size_t)T.cfg.output_buffer_max + 1;
    fl_deliver(l, tch, 2, 0, "amq.topic", "prices", NULL, "p=2", 3);
    assert_int_equal(a->nwrites, 2);
    assert_int_equal(b->nwrites, 2);
    assert_failed(b, NULL, "slow consumer", SG_WS_CLOSE_POLICY);
    assert_no_fail(a);
    assert_no_fail(c);
    assert_null(b->rs);
    fl_deliver(l, tch, 3, 0, "amq.topic", "prices", NULL, "p=3", 3);
    assert_int_equal(a->nwrites, 3);
    assert_int_equal(b->nwrites, 2);
    assert_int_equal(c->nwrites, 3);
    /* the last subscriber's UNSUBSCRIBE closes the upstream */
    size_t m3 = fl_nrec(l);
    assert_int_equal(run(a, &(struct act){.type = SG_ACT_UNSUBSCRIBE, .id = "a1"}, NULL, 0), SG_OK);
    assert_int_equal(fl_count(l, m3, 0, AMQP_CHANNEL_CLOSE_METHOD), 0);
    assert_int_equal(run(c, &(struct act){.type = SG_ACT_UNSUBSCRIBE, .id = "c1"}, NULL, 0), SG_OK);
    assert_int_equal(get(l, m3, 0, AMQP_CHANNEL_CLOSE_METHOD).ch, tch);
}

/* A COMMIT's replayed SENDs (in_commit, commit_receipt c1): every one is
 * confirmed before the COMMIT's RECEIPT; a returned one fails the
 * session with the COMMIT's receipt-id. */
static void test_transaction(void **state)
{
    (void)state;
    start(NULL);
    struct fc *a = client("alice");
    up(a->link);
    uint16_t pub = prime(a, "/queue/tx");
    struct sg_link *l = a->plink;

    size_t m = fl_nrec(l);
    assert_int_equal(run(a,
                         &(struct act){.type = SG_ACT_SEND,
                                       .dest = "/queue/tx",
                                       .in_commit = 1,
                                       .commit_receipt = "c1",
                                       .body = "t1"},
                         NULL, 0),
                     SG_OK);
    assert_int_equal(run(a,
                         &(struct act){.type = SG_ACT_SEND,
                                       .dest = "/queue/tx",
                                       .receipt = "c1",
                                       .in_commit = 1,
                                       .commit_receipt = "c1",
                                       .body = "t2"},
                         NULL, 0),
                     SG_AGAIN);
    assert_int_equal(publishes(l, m, pub), 2);
    struct fl_rec p1 = get_publish(l, m, pub);
    assert_int_equal(p1.mandatory, 1); /* confirmed, to a queue: must be routed */
    /* the second's confirm alone does not answer the COMMIT */
    fl_confirm(l, pub, p1.seq + 1, 0, 1, 0);
    assert_receipts(a, "prime", NULL);
    fl_confirm(l, pub, p1.seq, 0, 1, 0);
    assert_receipts(a, "prime", "c1", NULL);

    /* the next COMMIT: its first SEND comes back unroutable */
    size_t m2 = fl_nrec(l);
    assert_int_equal(run(a,
                         &(struct act){.type = SG_ACT_SEND,
                                       .dest = "/queue/tx",
                                       .in_commit = 1,
                                       .commit_receipt = "c2",
                                       .body = "u1"},
                         NULL, 0),
                     SG_OK);
    assert_int_equal(run(a,
                         &(struct act){.type = SG_ACT_SEND,
                                       .dest = "/queue/tx",
                                       .receipt = "c2",
                                       .in_commit = 1,
                                       .commit_receipt = "c2",
                                       .body = "u2"},
                         NULL, 0),
                     SG_AGAIN);
    struct fl_rec u1 = get_publish(l, m2, pub);
    fl_confirm(l, pub, u1.seq, 0, 1, 1);
    assert_failed(a, "c2", "could not be routed", 0);
    fl_confirm(l, pub, u1.seq + 1, 0, 1, 0);
    assert_receipts(a, "prime", "c1", NULL);
}

/* A replayed SEND the relay refuses fails the session with the COMMIT's
 * receipt-id (the session has answered the COMMIT frame already). */
static void test_transaction_refused_send(void **state)
{
    (void)state;
    start(NULL);
    struct fc *a = client("alice");
    up(a->link);
    prime(a, "/queue/tx"); /* the publishing link is up */
    struct sg_link *l = a->plink;
    size_t m = fl_nrec(l);
    int rc = run(a,
                 &(struct act){.type = SG_ACT_SEND,
                               .dest = "/queue/tx",
                               .in_commit = 1,
                               .commit_receipt = "c9",
                               .kv = {"priority", "300", NULL},
                               .body = "t"},
                 NULL, 0);
    assert_int_equal(rc, SG_AGAIN);
    assert_failed(a, "c9", "priority", 0);
    assert_int_equal(publishes(l, m, 0), 0);
    assert_int_equal(fl_nrec(l), m);
}

/* A nack fails the SEND; the broker refusing the login, on either of its
 * links, fails every session of that login (1008), not others. */
static void test_nack_and_refused(void **state)
{
    (void)state;
    start(NULL);
    struct fc *a = client("alice"), *b = client("alice"), *o = client("olga");
    struct sg_link *cl = a->link;
    assert_ptr_not_equal(o->link, cl);
    up(cl);
    uint16_t pub = prime(a, "/topic/n");
    struct sg_link *l = a->plink;
    size_t m = fl_nrec(l);
    assert_int_equal(send_(a, "/topic/n", "ra", "x"), SG_AGAIN);
    fl_confirm(l, pub, get_publish(l, m, pub).seq, 0, 0, 0);
    assert_failed(a, "ra", "nack", 0);
    fl_drop(cl);
    fl_refuse(cl, "ACCESS_REFUSED");
    assert_failed(b, NULL, "access refused", SG_WS_CLOSE_POLICY);
    assert_no_fail(o);
    /* olga's publishing link is refused while logging in: she fails too */
    struct fc *o2 = client("olga");
    up(o->link);
    assert_int_equal(send_(o, "/topic/n", "ro", "y"), SG_AGAIN);
    assert_non_null(o->plink);
    assert_ptr_not_equal(o->plink, l);
    fl_refuse(o->plink, "ACCESS_REFUSED");
    assert_failed(o, NULL, "access refused", SG_WS_CLOSE_POLICY);
    assert_failed(o2, NULL, "access refused", SG_WS_CLOSE_POLICY);
    /* the service connection answers /readyz */
    assert_false(sg_relay_ready(T.r));
    fl_up(fl_link(T.cfg.broker_user, 1));
    assert_true(sg_relay_ready(T.r));
}

/* A SUBSCRIBE still waiting for consume-ok when the link drops is set up
 * again after the reconnect and answered then; acks of the old
 * connection's deliveries are void. */
static void test_link_drop_subscriptions(void **state)
{
    (void)state;
    start(NULL);
    struct fc *a = client("alice");
    struct sg_link *l = a->link;
    up(l);
    size_t m = fl_nrec(l);
    assert_int_equal(subscribe(a, "/queue/d1", "s1", NULL, SG_ACK_CLIENT_INDIVIDUAL), SG_AGAIN);
    struct fl_rec c1 = get(l, m, 0, AMQP_BASIC_CONSUME_METHOD);
    fl_consume_ok(l, c1.ch, c1.ctag);
    fl_deliver(l, c1.ch, 7, 0, "", "d1", NULL, "m", 1);
    char old_ack[64];
    assert_true(msg_header(a, 0, "ack", old_ack, sizeof old_ack));
    size_t m1 = fl_nrec(l);
    assert_int_equal(subscribe(a, "/queue/d2", "s2", "r2", SG_ACK_AUTO), SG_AGAIN);
    struct fl_rec c2 = get(l, m1, 0, AMQP_BASIC_CONSUME_METHOD);
    fl_drop(l);
    assert_no_fail(a);
    assert_int_equal(a->nreceipts, 0);
    /* an ACK for a message of the lost connection: nothing to do */
    size_t m2 = fl_nrec(l);
    assert_int_equal(run(a, &(struct act){.type = SG_ACT_ACK, .ack_id = old_ack}, NULL, 0), SG_OK);
    up(l);
    /* both subscriptions are set up again, each on a channel of its own */
    assert_int_equal(fl_count(l, m2, 0, AMQP_BASIC_CONSUME_METHOD), 2);
    assert_int_equal(fl_count(l, m2, 0, AMQP_BASIC_ACK_METHOD), 0);
    const struct fl_rec *r = fl_find(l, m2, 0, AMQP_BASIC_CONSUME_METHOD, NULL);
    struct fl_rec n1 = *r;
    size_t at;
    fl_find(l, m2, 0, AMQP_BASIC_CONSUME_METHOD, &at);
    struct fl_rec n2 = get(l, at + 1, 0, AMQP_BASIC_CONSUME_METHOD);
    assert_int_not_equal(n1.ch, n2.ch);
    struct fl_rec nd2 = strcmp(n1.queue, "d2") ? n2 : n1;
    assert_string_equal(nd2.ctag, c2.ctag);
    fl_consume_ok(l, nd2.ch, nd2.ctag);
    assert_receipts(a, "r2", NULL);
    /* the old ack id is still void on the new connection (another gen) */
    size_t m3 = fl_nrec(l);
    assert_int_equal(run(a, &(struct act){.type = SG_ACT_ACK, .ack_id = old_ack}, NULL, 0), SG_OK);
    assert_int_equal(fl_count(l, m3, 0, AMQP_BASIC_ACK_METHOD), 0);
    /* a NACK in client-individual mode: one message, requeue per config */
    struct fl_rec nd1 = strcmp(n1.queue, "d1") ? n2 : n1;
    fl_consume_ok(l, nd1.ch, nd1.ctag);
    fl_deliver(l, nd1.ch, 1, 1, "", "d1", NULL, "m1", 2);
    fl_deliver(l, nd1.ch, 2, 0, "", "d1", NULL, "m2", 2);
    assert_msg(a, 1, "redelivered", "true");
    char ack1[64];
    assert_true(msg_header(a, 1, "ack", ack1, sizeof ack1));
    assert_int_equal(run(a, &(struct act){.type = SG_ACT_NACK, .ack_id = ack1}, NULL, 0), SG_OK);
    struct fl_rec nk = get(l, m3, nd1.ch, AMQP_BASIC_NACK_METHOD);
    assert_int_equal(nk.tag, 1);
    assert_int_equal(nk.multiple, 0);
    assert_int_equal(nk.requeue, 1);
    assert_no_fail(a);
    assert_null(a->plink); /* it never published */
}

/* A SEND held while the broker is away longer than hold_ms gets ERROR
 * "broker unavailable" (1013) at the relay's next timer tick: here the
 * publishing link never comes up (the consuming one is up). */
static void test_hold_timeout(void **state)
{
    (void)state;
    start((const char *[]){"--hold-ms=0", NULL});
    struct fc *a = client("alice");
    up(a->link);
    assert_int_equal(send_(a, "/topic/t", "r1", "x"), SG_AGAIN); /* link not up yet */
    assert_non_null(a->plink);
    assert_false(fl_is_up(a->plink));
    assert_no_fail(a);
    /* the hold timer runs every 250 ms */
    assert_int_equal(event_base_loop(T.base, EVLOOP_ONCE), 0);
    assert_failed(a, "r1", "broker unavailable", SG_WS_CLOSE_TRY_AGAIN);
}

/* The broker cancels a consumer, or closes a subscription's channel: that
 * session gets ERROR (with the SUBSCRIBE's receipt-id while it is
 * pending); the others are untouched. */
static void test_subscription_closed_by_broker(void **state)
{
    (void)state;
    start(NULL);
    struct fc *a = client("alice"), *b = client("alice"), *c = client("alice");
    struct sg_link *l = a->link;
    up(l);
    size_t m = fl_nrec(l);
    assert_int_equal(subscribe(a, "/amq/queue/missing", "s1", "ra", SG_ACK_AUTO), SG_AGAIN);
    struct fl_rec ca = get(l, m, 0, AMQP_BASIC_CONSUME_METHOD);
    assert_int_equal(fl_count(l, m, ca.ch, AMQP_QUEUE_DECLARE_METHOD), 0); /* no declare */
    size_t m2 = fl_nrec(l);
    assert_int_equal(subscribe(b, "/queue/here", "s1", NULL, SG_ACK_AUTO), SG_AGAIN);
    struct fl_rec cb = get(l, m2, 0, AMQP_BASIC_CONSUME_METHOD);
    fl_consume_ok(l, cb.ch, cb.ctag);
    size_t m3 = fl_nrec(l);
    assert_int_equal(subscribe(c, "/queue/also", "s1", NULL, SG_ACK_AUTO), SG_AGAIN);
    struct fl_rec cc = get(l, m3, 0, AMQP_BASIC_CONSUME_METHOD);
    fl_consume_ok(l, cc.ch, cc.ctag);

    fl_chan_close(l, ca.ch, 404, "NOT_FOUND - no queue 'missing' in vhost '/'");
    assert_failed(a, "ra", "no queue 'missing'", 0);
    assert_contains(a->fails[0].msg, "/amq/queue/missing");
    fl_cancel(l, cb.ch);
    assert_failed(b, NULL, "cancelled by the broker", 0);
    assert_null(b->rs);
    /* B's channel was closed by the relay when it was detached */
    assert_int_equal(fl_chan_state(l, cb.ch), 2);
    assert_no_fail(c);
    fl_deliver(l, cc.ch, 1, 0, "", "also", NULL, "ok", 2);
    assert_int_equal(c->nwrites, 1);
}

/* A session that goes away with SENDs in every stage (waiting for a
 * declare, for a temp queue, for a confirm): they are still published and
 * nobody is told; its subscriptions' channels are closed. */
static void test_detach_with_pending_work(void **state)
{
    (void)state;
    start(NULL);
    struct fc *a = client("alice"), *b = client("alice");
    struct sg_link *cl = a->link;
    up(cl);
    uint16_t pub = prime(b, "/topic/known");
    struct sg_link *l = b->plink;
    size_t m = fl_nrec(l), mc = fl_nrec(cl);
    assert_int_equal(send_(a, "/topic/known", "r1", "unconfirmed"), SG_AGAIN);
    assert_int_equal(send_(a, "/queue/fresh", "r2", "declaring"), SG_AGAIN);
    assert_int_equal(run(a,
                         &(struct act){.type = SG_ACT_SEND,
                                       .dest = "/topic/known",
                                       .receipt = "r3",
                                       .kv = {"reply-to", "/temp-queue/x", NULL},
                                       .body = "temp-wait"},
                         NULL, 0),
                     SG_AGAIN);
    assert_int_equal(subscribe(a, "/topic/known", "s1", NULL, SG_ACK_AUTO), SG_AGAIN);
    struct fl_rec decl = get(l, m, 0, AMQP_QUEUE_DECLARE_METHOD); /* /queue/fresh */
    assert_string_equal(decl.queue, "fresh");
    assert_int_equal(fl_count(l, m, 0, AMQP_QUEUE_DECLARE_METHOD), 1);
    assert_int_equal(publishes(l, m, 0), 1);
    /* the temp queue and the upstream are on the consuming link */
    assert_int_equal(fl_count(cl, mc, 0, AMQP_BASIC_CONSUME_METHOD), 2);
    size_t m2 = fl_nrec(l), mc2 = fl_nrec(cl);
    struct sg_relay_sess *rs = a->rs;
    a->rs = NULL;
    a->detached = 1;
    sg_relay_detach(rs);
    /* the temp queue and the fan-out upstream are closed; the SEND that
     * waited for the temp queue goes now */
    assert_int_equal(fl_count(cl, mc2, 0, AMQP_CHANNEL_CLOSE_METHOD), 2);
    assert_int_equal(fl_count(l, m2, 0, AMQP_CHANNEL_CLOSE_METHOD), 0);
    struct fl_rec tp = get_publish(l, m2, pub);
    assert_string_equal(tp.body, "temp-wait");
    fl_declare_ok(l, decl.ch, "fresh");
    struct fl_rec pr = get_publish(l, m2, decl.ch);
    assert_string_equal(pr.body, "declaring");
    fl_confirm(l, decl.ch, pr.seq, 0, 1, 0);
    fl_confirm(l, pub, tp.seq, 1, 1, 0);
    assert_int_equal(a->nreceipts + a->nfails, 0);
    /* B is unaffected */
    assert_int_equal(send_(b, "/queue/fresh", "rb", "b"), SG_AGAIN);
    struct fl_rec bp = get_publish(l, fl_nrec(l) - 1, pub);
    fl_confirm(l, pub, bp.seq, 0, 1, 0);
    assert_receipts(b, "prime", "rb", NULL);
}

/* Out of channels on the connection (broker_channel_max): the SUBSCRIBE
 * that finds none fails its session with 1013. Publishing takes none of
 * the consuming link's channels: its channels are on the other link. */
static void test_channel_max(void **state)
{
    (void)state;
    start((const char *[]){"--broker-channel-max=8", NULL});
    struct fc *a = client("alice"), *b = client("alice");
    struct sg_link *l = a->link;
    up(l);
    for (int i = 0; i < 8; i++) {
        char id[8];
        snprintf(id, sizeof id, "s%d", i);
        assert_int_equal(subscribe(a, "/queue/cm", id, NULL, SG_ACK_AUTO), SG_AGAIN);
    }
    assert_no_fail(a);
    /* the consuming link is full; publishing still opens its two channels */
    assert_int_equal(send_(a, "/topic/cm", NULL, "p"), SG_OK);
    pup(a->plink);
    assert_int_equal(fl_count(a->plink, 0, 0, AMQP_CHANNEL_OPEN_METHOD), 2);
    struct fl_rec probe = get_publish(a->plink, 0, 0);
    assert_string_equal(probe.body, "p");
    fl_confirm(a->plink, probe.ch, probe.seq, 0, 1, 0);
    assert_no_fail(a);
    assert_int_equal(subscribe(b, "/queue/cm", "s", "rb", SG_ACK_AUTO), SG_AGAIN);
    assert_failed(b, "rb", "broker_channel_max", SG_WS_CLOSE_TRY_AGAIN);
    assert_no_fail(a);
}

/* After a reconnect the broker offers fewer channels: the sessions whose
 * subscriptions no longer fit fail (1013) while the link comes up; the
 * setup of the others goes on. max 2: the two topic upstreams fit (they
 * are set up first), the private queues do not. */
static void test_reconnect_fewer_channels(void **state)
{
    (void)state;
    start(NULL);
    struct fc *a = client("alice"), *b = client("alice"), *c = client("alice");
    struct sg_link *l = a->link;
    up(l);
    assert_int_equal(subscribe(a, "/queue/f1", "s1", NULL, SG_ACK_AUTO), SG_AGAIN);
    assert_int_equal(subscribe(b, "/queue/f2", "s1", NULL, SG_ACK_AUTO), SG_AGAIN);
    assert_int_equal(subscribe(b, "/queue/f3", "s2", NULL, SG_ACK_AUTO), SG_AGAIN);
    assert_int_equal(subscribe(c, "/topic/f4", "s1", NULL, SG_ACK_AUTO), SG_AGAIN);
    assert_int_equal(subscribe(c, "/topic/f5", "s2", NULL, SG_ACK_AUTO), SG_AGAIN);
    fl_drop(l);
    fl_set_channel_max(l, 2);
    size_t m = fl_nrec(l);
    up(l);
    assert_failed(a, NULL, "broker_channel_max", SG_WS_CLOSE_TRY_AGAIN);
    assert_failed(b, NULL, "broker_channel_max", SG_WS_CLOSE_TRY_AGAIN);
    assert_no_fail(c);
    assert_int_equal(fl_count(l, m, 0, AMQP_BASIC_CONSUME_METHOD), 2);
}

/* The same with three topic upstreams and max 2: one of them cannot be set
 * up either, which fails its subscribers' session while the topics are
 * being walked. */
static void test_reconnect_fewer_channels_topics(void **state)
{
    (void)state;
    start(NULL);
    struct fc *a = client("alice"), *c = client("alice");
    struct sg_link *l = a->link;
    up(l);
    assert_int_equal(subscribe(c, "/topic/f4", "s1", NULL, SG_ACK_AUTO), SG_AGAIN);
    assert_int_equal(subscribe(c, "/topic/f5", "s2", NULL, SG_ACK_AUTO), SG_AGAIN);
    assert_int_equal(subscribe(c, "/topic/f6", "s3", NULL, SG_ACK_AUTO), SG_AGAIN);
    assert_int_equal(subscribe(a, "/queue/f1", "s1", NULL, SG_ACK_AUTO), SG_AGAIN);
    fl_drop(l);
    fl_set_channel_max(l, 2);
    up(l);
    assert_failed(c, NULL, "broker_channel_max", SG_WS_CLOSE_TRY_AGAIN);
    assert_failed(a, NULL, "broker_channel_max", SG_WS_CLOSE_TRY_AGAIN);
}

/* The publishing link is blocked, then drops: reads resume (nothing to
 * wait for now), and the SENDs held are published after the reconnect. */
static void test_blocked_then_dropped(void **state)
{
    (void)state;
    start(NULL);
    struct fc *a = client("alice");
    up(a->link);
    prime(a, "/topic/t");
    struct sg_link *l = a->plink;
    fl_block(l, 1);
    assert_int_equal(send_(a, "/topic/t", "r1", "x"), SG_AGAIN);
    fl_drop(l);
    assert_int_equal(a->npauses, 2);
    assert_int_equal(a->pauses[0], 1);
    assert_int_equal(a->pauses[1], 0);
    size_t m = fl_nrec(l);
    pup(l);
    struct fl_rec p = get_publish(l, m, 0);
    assert_string_equal(p.body, "x");
    fl_confirm(l, p.ch, p.seq, 0, 1, 0);
    assert_receipts(a, "prime", "r1", NULL);
}

/* Queue names: a durable topic subscription's queue is named from a hash
 * of destination and id (stable, distinct per id); x-queue-name wins; a
 * client-ack topic subscription gets a private exclusive queue. */
static void test_subscription_queue_names(void **state)
{
    (void)state;
    start(NULL);
    struct fc *a = client("alice");
    struct sg_link *l = a->link;
    up(l);
    char q[3][256];
    static const char *const ids[] = {"sub-0", "sub-0", "sub-1"};
    for (int i = 0; i < 3; i++) {
        size_t m = fl_nrec(l);
        struct act ac = {.type = SG_ACT_SUBSCRIBE,
                         .dest = "/topic/dur",
                         .id = ids[i],
                         .kv = {"durable", "true", NULL}};
        assert_int_equal(run(a, &ac, NULL, 0), SG_AGAIN);
        struct fl_rec d = get(l, m, 0, AMQP_QUEUE_DECLARE_METHOD);
        assert_int_equal(d.durable, 1);
        assert_int_equal(d.exclusive, 0);
        assert_int_equal(d.auto_delete, 0);
        assert_int_equal(strncmp(d.queue, "stomp-subscription-", 19), 0);
        snprintf(q[i], sizeof q[i], "%s", d.queue);
        struct fl_rec b = get(l, m, d.ch, AMQP_QUEUE_BIND_METHOD);
        assert_string_equal(b.exchange, "amq.topic");
        assert_string_equal(b.rkey, "dur");
        assert_string_equal(b.queue, d.queue);
        if (i == 0)
            assert_int_equal(
                run(a, &(struct act){.type = SG_ACT_UNSUBSCRIBE, .id = "sub-0"}, NULL, 0), SG_OK);
    }
    assert_string_equal(q[0], q[1]);
    assert_string_not_equal(q[0], q[2]);

    size_t m = fl_nrec(l);
    assert_int_equal(
        run(a,
            &(struct act){.type = SG_ACT_SUBSCRIBE,
                          .dest = "/exchange/amq.fanout",
                          .id = "n1",
                          .kv = {"x-queue-name", "named-q", "x-max-length", "10", NULL}},
            NULL, 0),
        SG_AGAIN);
    struct fl_rec d = get(l, m, 0, AMQP_QUEUE_DECLARE_METHOD);
    assert_string_equal(d.queue, "named-q");
    assert_int_equal(d.nargs, 1); /* x-max-length; x-queue-name is not an argument */
    struct fl_rec b = get(l, m, d.ch, AMQP_QUEUE_BIND_METHOD);
    assert_string_equal(b.exchange, "amq.fanout");
    assert_string_equal(b.rkey, "");

    m = fl_nrec(l);
    assert_int_equal(subscribe(a, "/topic/ca", "c1", NULL, SG_ACK_CLIENT), SG_AGAIN);
    d = get(l, m, 0, AMQP_QUEUE_DECLARE_METHOD);
    assert_int_equal(d.exclusive, 1);
    assert_int_equal(d.auto_delete, 1);
    assert_int_equal(d.durable, 0);
    struct fl_rec c = get(l, m, d.ch, AMQP_BASIC_CONSUME_METHOD);
    assert_int_equal(c.no_ack, 0);
    assert_no_fail(a);
}

/* ------------------------------------------------------------------ */
/* two links per login: consuming and publishing */

/* Sessions that only consume never open a publishing link: SUBSCRIBE,
 * deliveries, ACK, NACK, UNSUBSCRIBE, a drained client and a reconnect of
 * the consuming link all stay on it. */
static void test_consumer_only_never_opens_publisher(void **state)
{
    (void)state;
    start(NULL);
    struct fc *a = client("carol"), *b = client("carol"), *d = client("dave");
    struct sg_link *l = a->link;
    assert_ptr_equal(b->link, l);
    assert_ptr_not_equal(d->link, l);
    assert_int_equal(fl_nlinks(), 3); /* the relay's own, carol's and dave's */
    up(l);
    up(d->link);

    size_t m = fl_nrec(l);
    assert_int_equal(subscribe(a, "/queue/work", "s1", "r1", SG_ACK_CLIENT_INDIVIDUAL), SG_AGAIN);
    struct fl_rec c1 = get(l, m, 0, AMQP_BASIC_CONSUME_METHOD);
    fl_consume_ok(l, c1.ch, c1.ctag);
    assert_receipts(a, "r1", NULL);
    size_t m2 = fl_nrec(l);
    assert_int_equal(subscribe(b, "/topic/ticks", "t1", "rt", SG_ACK_AUTO), SG_AGAIN);
    struct fl_rec ct = get(l, m2, 0, AMQP_BASIC_CONSUME_METHOD);
    fl_consume_ok(l, ct.ch, ct.ctag);
    assert_receipts(b, "rt", NULL);
    assert_int_equal(subscribe(d, "/queue/other", "s1", NULL, SG_ACK_AUTO), SG_AGAIN);

    fl_deliver(l, c1.ch, 1, 0, "", "work", NULL, "w1", 2);
    fl_deliver(l, c1.ch, 2, 0, "", "work", NULL, "w2", 2);
    fl_deliver(l, ct.ch, 1, 0, "amq.topic", "ticks", NULL, "t", 1);
    assert_int_equal(a->nwrites, 2);
    assert_int_equal(b->nwrites, 1);
    char ack1[64], ack2[64];
    assert_true(msg_header(a, 0, "ack", ack1, sizeof ack1));
    assert_true(msg_header(a, 1, "ack", ack2, sizeof ack2));
    size_t m3 = fl_nrec(l);
    assert_int_equal(run(a, &(struct act){.type = SG_ACT_ACK, .ack_id = ack1}, NULL, 0), SG_OK);
    assert_int_equal(run(a, &(struct act){.type = SG_ACT_NACK, .ack_id = ack2}, NULL, 0), SG_OK);
    assert_int_equal(get(l, m3, c1.ch, AMQP_BASIC_ACK_METHOD).tag, 1);
    assert_int_equal(get(l, m3, c1.ch, AMQP_BASIC_NACK_METHOD).tag, 2);
    sg_relay_drained(a->rs);
    assert_int_equal(run(b, &(struct act){.type = SG_ACT_UNSUBSCRIBE, .id = "t1"}, NULL, 0), SG_OK);
    assert_int_equal(get(l, m3, 0, AMQP_CHANNEL_CLOSE_METHOD).ch, ct.ch);

    size_t m4 = fl_nrec(l);
    fl_drop(l);
    up(l);
    assert_int_equal(fl_count(l, m4, 0, AMQP_BASIC_CONSUME_METHOD), 1);
    assert_string_equal(get(l, m4, 0, AMQP_BASIC_CONSUME_METHOD).queue, "work");
    assert_no_fail(a);
    assert_no_fail(b);
    assert_no_fail(d);
    /* no publishing link was ever opened, for either login */
    assert_null(fl_plink("carol"));
    assert_null(fl_plink("dave"));
    assert_null(a->plink);
    assert_null(d->plink);
    assert_int_equal(fl_nlinks(), 3);
}

/* A SEND while the publishing link is still logging in (the consuming one
 * is up and serving a subscription) is held, in order with the SENDs
 * after it; once the link is up they are published, each RECEIPT after
 * its confirm. The publishing link logs in as the sessions do: same
 * login and vhost, the newest passcode, not the relay's own login. */
static void test_send_while_publisher_logging_in(void **state)
{
    (void)state;
    start(NULL);
    struct fc *a = client("alice");
    struct sg_link *cl = a->link;
    up(cl);
    size_t m = fl_nrec(cl);
    assert_int_equal(subscribe(a, "/queue/in", "s1", "rs", SG_ACK_AUTO), SG_AGAIN);
    struct fl_rec cons = get(cl, m, 0, AMQP_BASIC_CONSUME_METHOD);
    fl_consume_ok(cl, cons.ch, cons.ctag);
    assert_receipts(a, "rs", NULL);
    assert_null(a->plink);

    size_t mc = fl_nrec(cl);
    assert_int_equal(send_(a, "/exchange/ex/k", "r1", "one"), SG_AGAIN);
    struct sg_link *pl = a->plink;
    assert_non_null(pl);
    assert_ptr_not_equal(pl, cl);
    assert_false(fl_is_up(pl));
    assert_false(sg_link_is_service(pl));
    assert_string_equal(sg_link_login(pl), "alice");
    assert_string_equal(sg_link_vhost(pl), "/");
    assert_string_equal(fl_passcode(pl), "secret");
    assert_int_equal(send_(a, "/exchange/ex/k", NULL, "two"), SG_OK); /* accepted, held */
    assert_int_equal(send_(a, "/exchange/ex/k", "r3", "three"), SG_AGAIN);
    /* a session attaching with a newer passcode: both links log in with it */
    struct fc *b = client_pv("alice", "newer", 12);
    assert_ptr_equal(b->link, cl);
    assert_ptr_equal(b->plink, pl);
    assert_string_equal(fl_passcode(cl), "newer");
    assert_string_equal(fl_passcode(pl), "newer");
    /* deliveries go on meanwhile; nothing of the SENDs is on the consuming link */
    fl_deliver(cl, cons.ch, 1, 0, "", "in", NULL, "m", 1);
    assert_int_equal(a->nwrites, 1);
    assert_int_equal(fl_count(cl, mc, 0, AMQP_BASIC_ACK_METHOD), 1);
    assert_int_equal(fl_nrec(cl), mc + 1);
    assert_receipts(a, "rs", NULL);
    assert_no_fail(a);

    uint16_t pub = pup(pl);
    /* the first is the probe of ex; the others wait behind it */
    assert_int_equal(publishes(pl, 0, 0), 1);
    struct fl_rec probe = get_publish(pl, 0, 0);
    assert_int_not_equal(probe.ch, pub);
    assert_string_equal(probe.exchange, "ex");
    assert_string_equal(probe.body, "one");
    assert_receipts(a, "rs", NULL);
    fl_confirm(pl, probe.ch, probe.seq, 0, 1, 0);
    assert_receipts(a, "rs", "r1", NULL);
    assert_int_equal(publishes(pl, 0, pub), 2);
    size_t at;
    fl_find(pl, 0, pub, FL_PUBLISH, &at);
    struct fl_rec p2 = get_publish(pl, at, pub), p3 = get_publish(pl, at + 1, pub);
    assert_string_equal(p2.body, "two");
    assert_string_equal(p3.body, "three");
    assert_int_equal(p2.seq, 1);
    assert_int_equal(p3.seq, 2);
    fl_confirm(pl, pub, 1, 0, 1, 0); /* the fire-and-forget one: no receipt */
    assert_receipts(a, "rs", "r1", NULL);
    fl_confirm(pl, pub, 2, 0, 1, 0);
    assert_receipts(a, "rs", "r1", "r3", NULL);
    assert_no_fail(a);
    assert_int_equal(fl_nlinks(), 3); /* the relay's own and alice's two */
}

/* connection.blocked comes on the publishing link only: a session that
 * only subscribes is never paused and can still SUBSCRIBE (its methods on
 * the consuming link, answered), get deliveries and ACK; a session that
 * publishes is paused at its SEND; unblocked: the publisher reads again,
 * the consumer saw no pause at all. */
static void test_blocked_publisher_spares_consumers(void **state)
{
    (void)state;
    start(NULL);
    struct fc *p = client("alice"), *s = client("alice");
    struct sg_link *cl = p->link;
    up(cl);
    uint16_t pub = prime(p, "/topic/t");
    struct sg_link *pl = p->plink;
    size_t m = fl_nrec(cl);
    assert_int_equal(subscribe(s, "/queue/q1", "s1", NULL, SG_ACK_CLIENT), SG_AGAIN);
    struct fl_rec c1 = get(cl, m, 0, AMQP_BASIC_CONSUME_METHOD);
    fl_consume_ok(cl, c1.ch, c1.ctag);

    fl_block(pl, 1);
    assert_int_equal(p->npauses, 0);
    assert_int_equal(s->npauses, 0);
    size_t mp = fl_nrec(pl);
    /* the consumer goes on: a new private subscription ... */
    size_t m2 = fl_nrec(cl);
    assert_int_equal(subscribe(s, "/queue/q2", "s2", "r2", SG_ACK_AUTO), SG_AGAIN);
    struct fl_rec q2 = get(cl, m2, 0, AMQP_QUEUE_DECLARE_METHOD);
    assert_string_equal(q2.queue, "q2");
    assert_int_equal(get(cl, m2, q2.ch, AMQP_BASIC_QOS_METHOD).prefetch, T.cfg.prefetch);
    struct fl_rec c2 = get(cl, m2, q2.ch, AMQP_BASIC_CONSUME_METHOD);
    fl_consume_ok(cl, c2.ch, c2.ctag);
    assert_receipts(s, "r2", NULL);
    /* ... a shared topic ... */
    size_t m3 = fl_nrec(cl);
    assert_int_equal(subscribe(s, "/topic/t", "s3", "r3", SG_ACK_AUTO), SG_AGAIN);
    struct fl_rec bind = get(cl, m3, 0, AMQP_QUEUE_BIND_METHOD);
    assert_string_equal(bind.rkey, "t");
    struct fl_rec c3 = get(cl, m3, bind.ch, AMQP_BASIC_CONSUME_METHOD);
    fl_consume_ok(cl, c3.ch, c3.ctag);
    assert_receipts(s, "r2", "r3", NULL);
    /* ... deliveries and ACKs */
    fl_deliver(cl, c1.ch, 1, 0, "", "q1", NULL, "m1", 2);
    fl_deliver(cl, c3.ch, 1, 0, "amq.topic", "t", NULL, "t1", 2);
    assert_int_equal(s->nwrites, 2);
    char ack[64];
    assert_true(msg_header(s, 0, "ack", ack, sizeof ack));
    size_t m4 = fl_nrec(cl);
    assert_int_equal(run(s, &(struct act){.type = SG_ACT_ACK, .ack_id = ack}, NULL, 0), SG_OK);
    assert_int_equal(get(cl, m4, c1.ch, AMQP_BASIC_ACK_METHOD).tag, 1);
    assert_int_equal(s->npauses, 0);
    assert_int_equal(fl_nrec(pl), mp); /* none of it on the publishing link */

    /* the publisher is paused at its SEND, which is held */
    assert_int_equal(send_(p, "/topic/t", "rp", "x"), SG_AGAIN);
    assert_int_equal(p->npauses, 1);
    assert_int_equal(p->pauses[0], 1);
    assert_int_equal(s->npauses, 0);
    assert_int_equal(publishes(pl, mp, 0), 0);

    fl_block(pl, 0);
    assert_int_equal(p->npauses, 2);
    assert_int_equal(p->pauses[1], 0);
    assert_int_equal(s->npauses, 0);
    struct fl_rec px = get_publish(pl, mp, pub);
    assert_string_equal(px.body, "x");
    fl_confirm(pl, pub, px.seq, 0, 1, 0);
    assert_receipts(p, "prime", "rp", NULL);
    assert_no_fail(p);
    assert_no_fail(s);
}

/* The consuming link drops: the subscriptions are set up again when it is
 * back, but SENDs in flight on the publishing link are left alone: not
 * published again, confirmed on the same channel with their RECEIPTs as
 * usual; a SEND meanwhile goes straight out; a SEND waiting for its temp
 * queue waits for the queue's consume-ok on the new connection. */
static void test_consuming_link_drop_leaves_sends(void **state)
{
    (void)state;
    start(NULL);
    struct fc *a = client("alice");
    struct sg_link *cl = a->link;
    up(cl);
    uint16_t pub = prime(a, "/topic/t");
    struct sg_link *pl = a->plink;
    size_t m = fl_nrec(cl);
    assert_int_equal(subscribe(a, "/queue/d1", "s1", "rs", SG_ACK_CLIENT), SG_AGAIN);
    struct fl_rec c1 = get(cl, m, 0, AMQP_BASIC_CONSUME_METHOD);
    fl_consume_ok(cl, c1.ch, c1.ctag);
    assert_receipts(a, "prime", "rs", NULL);

    size_t mp = fl_nrec(pl);
    assert_int_equal(send_(a, "/topic/t", "r1", "one"), SG_AGAIN);
    assert_int_equal(send_(a, "/topic/t", "r2", "two"), SG_AGAIN);
    size_t mc = fl_nrec(cl);
    assert_int_equal(run(a,
                         &(struct act){.type = SG_ACT_SEND,
                                       .dest = "/topic/t",
                                       .receipt = "r4",
                                       .kv = {"reply-to", "/temp-queue/x", NULL},
                                       .body = "four"},
                         NULL, 0),
                     SG_AGAIN);
    struct fl_rec td = get(cl, mc, 0, AMQP_QUEUE_DECLARE_METHOD);
    assert_int_equal(publishes(pl, mp, pub), 2);

    fl_drop(cl);
    assert_no_fail(a);
    assert_true(fl_is_up(pl));
    assert_int_equal(fl_chan_state(pl, pub), 1);
    assert_int_equal(fl_nrec(pl), mp + 2); /* nothing sent for the drop */
    /* while the consuming link is down a SEND goes straight out */
    assert_int_equal(send_(a, "/topic/t", "r3", "three"), SG_AGAIN);
    assert_int_equal(publishes(pl, mp, pub), 3);

    size_t mc2 = fl_nrec(cl);
    up(cl);
    /* both subscriptions are set up again, the temp queue by the same name */
    assert_int_equal(fl_count(cl, mc2, 0, AMQP_BASIC_CONSUME_METHOD), 2);
    size_t at;
    struct fl_rec q1 = get(cl, mc2, 0, AMQP_QUEUE_DECLARE_METHOD);
    fl_find(cl, mc2, 0, AMQP_QUEUE_DECLARE_METHOD, &at);
    struct fl_rec q2 = get(cl, at + 1, 0, AMQP_QUEUE_DECLARE_METHOD);
    struct fl_rec tnew = strcmp(q1.queue, td.queue) ? q2 : q1;
    struct fl_rec dnew = strcmp(q1.queue, td.queue) ? q1 : q2;
    assert_string_equal(tnew.queue, td.queue);
    assert_string_equal(dnew.queue, "d1");
    /* nothing was published again */
    assert_int_equal(fl_nrec(pl), mp + 3);
    fl_confirm(pl, pub, 2, 1, 1, 0);
    assert_receipts(a, "prime", "rs", "r1", "r2", NULL);
    fl_confirm(pl, pub, 3, 0, 1, 0);
    assert_receipts(a, "prime", "rs", "r1", "r2", NULL); /* r3 waits behind r4 */

    /* the temp queue's consume-ok on the new connection releases the SEND */
    fl_declare_ok(cl, tnew.ch, td.queue);
    assert_int_equal(publishes(pl, mp, pub), 3);
    fl_consume_ok(cl, tnew.ch, get(cl, mc2, tnew.ch, AMQP_BASIC_CONSUME_METHOD).ctag);
    assert_int_equal(publishes(pl, mp, pub), 4);
    struct fl_rec p4 = get_publish(pl, fl_nrec(pl) - 1, pub);
    assert_string_equal(p4.body, "four");
    char want[300];
    snprintf(want, sizeof want, "/reply-queue/%s", td.queue);
    assert_string_equal(p4.reply_to, want);
    fl_confirm(pl, pub, p4.seq, 0, 1, 0);
    assert_receipts(a, "prime", "rs", "r1", "r2", "r4", "r3", NULL);
    assert_no_fail(a);
}

/* The publishing link drops: the subscriptions on the consuming link are
 * untouched (no channel closed, opened or set up again; deliveries, ACKs
 * and a new SUBSCRIBE go on), and the unconfirmed SENDs are published
 * again once it is back. */
static void test_publishing_link_drop_leaves_subscriptions(void **state)
{
    (void)state;
    start(NULL);
    struct fc *a = client("alice"), *s = client("alice");
    struct sg_link *cl = a->link;
    up(cl);
    prime(a, "/topic/t");
    struct sg_link *pl = a->plink;
    size_t m = fl_nrec(cl);
    assert_int_equal(subscribe(s, "/queue/d1", "s1", NULL, SG_ACK_CLIENT), SG_AGAIN);
    struct fl_rec c1 = get(cl, m, 0, AMQP_BASIC_CONSUME_METHOD);
    fl_consume_ok(cl, c1.ch, c1.ctag);
    size_t m1 = fl_nrec(cl);
    assert_int_equal(subscribe(s, "/topic/t", "s2", NULL, SG_ACK_AUTO), SG_AGAIN);
    struct fl_rec c2 = get(cl, m1, 0, AMQP_BASIC_CONSUME_METHOD);
    fl_consume_ok(cl, c2.ch, c2.ctag);
    fl_deliver(cl, c1.ch, 1, 0, "", "d1", NULL, "m1", 2);
    char ack[64];
    assert_true(msg_header(s, 0, "ack", ack, sizeof ack));
    assert_int_equal(send_(a, "/topic/t", "r1", "one"), SG_AGAIN);

    size_t mc = fl_nrec(cl);
    fl_drop(pl);
    assert_no_fail(a);
    assert_no_fail(s);
    assert_int_equal(fl_nrec(cl), mc);
    assert_int_equal(fl_chan_state(cl, c1.ch), 1);
    assert_int_equal(fl_chan_state(cl, c2.ch), 1);
    /* the ack id of a delivery before the drop is still good */
    assert_int_equal(run(s, &(struct act){.type = SG_ACT_ACK, .ack_id = ack}, NULL, 0), SG_OK);
    assert_int_equal(get(cl, mc, c1.ch, AMQP_BASIC_ACK_METHOD).tag, 1);
    fl_deliver(cl, c1.ch, 2, 0, "", "d1", NULL, "m2", 2);
    fl_deliver(cl, c2.ch, 1, 0, "amq.topic", "t", NULL, "t1", 2);
    assert_int_equal(s->nwrites, 3);
    size_t m2 = fl_nrec(cl);
    assert_int_equal(subscribe(s, "/queue/d2", "s3", "r3", SG_ACK_AUTO), SG_AGAIN);
    struct fl_rec c3 = get(cl, m2, 0, AMQP_BASIC_CONSUME_METHOD);
    fl_consume_ok(cl, c3.ch, c3.ctag);
    assert_receipts(s, "r3", NULL);

    size_t m3 = fl_nrec(cl), mp = fl_nrec(pl);
    uint16_t npub = pup(pl);
    assert_int_equal(fl_nrec(cl), m3); /* the subscriptions are not set up again */
    /* the exchange is probed again with the unconfirmed SEND */
    struct fl_rec probe = get_publish(pl, mp, 0);
    assert_int_not_equal(probe.ch, npub);
    assert_string_equal(probe.body, "one");
    assert_receipts(a, "prime", NULL);
    fl_confirm(pl, probe.ch, probe.seq, 0, 1, 0);
    assert_receipts(a, "prime", "r1", NULL);
    assert_int_equal(fl_count(cl, mc, 0, AMQP_CHANNEL_CLOSE_METHOD), 0);
    assert_no_fail(a);
    assert_no_fail(s);
}

/* SENDs in flight when the publishing link drops were accepted already:
 * they are published again after the reconnect even when together they
 * are over hold_bytes (a bound on accepting SENDs, not on replaying them),
 * and none is failed - neither on the way back from the held list nor
 * between the two preparations of a /queue (declare, then probe). */
static void test_publishing_link_drop_over_hold_bytes(void **state)
{
    (void)state;
    start((const char *[]){"--hold-bytes=8K", NULL});
    struct fc *a = client("alice");
    up(a->link);
    uint16_t pub = prime(a, "/queue/big");
    struct sg_link *pl = a->plink;
    static char body[3][3001];
    size_t m = fl_nrec(pl);
    for (int i = 0; i < 3; i++) {
        memset(body[i], 'a' + i, sizeof body[i] - 1);
        char rc[8];
        snprintf(rc, sizeof rc, "r%d", i + 1);
        assert_int_equal(send_(a, "/queue/big", rc, body[i]), SG_AGAIN);
    }
    assert_int_equal(publishes(pl, m, pub), 3);
    fl_drop(pl);
    assert_no_fail(a);

    size_t m2 = fl_nrec(pl);
    uint16_t npub = pup(pl);
    assert_no_fail(a);
    struct fl_rec d = get(pl, m2, 0, AMQP_QUEUE_DECLARE_METHOD);
    assert_string_equal(d.queue, "big");
    fl_declare_ok(pl, d.ch, "big");
    assert_no_fail(a);
    struct fl_rec probe = get_publish(pl, m2, 0);
    assert_int_not_equal(probe.ch, npub);
    assert_int_equal(probe.body[0], 'a');
    fl_confirm(pl, probe.ch, probe.seq, 0, 1, 0);
    assert_receipts(a, "prime", "r1", NULL);
    assert_int_equal(publishes(pl, m2, npub), 2);
    fl_confirm(pl, npub, 2, 1, 1, 0);
    assert_receipts(a, "prime", "r1", "r2", "r3", NULL);
    assert_no_fail(a);
}

/* ------------------------------------------------------------------ */
/* Quote subscriptions (relay_ticker.c). The relay gets a ticker hub
 * (ticker.h) sized by quote_max_symbols, whose wake function posts the
 * relay's wake event as server.c's does; the tests run the event base
 * (run_wake) to let it fire. The one worker here is worker 0, the
 * publisher: it consumes the results on the service link (svc) and sends
 * the work on the service connection's publishing link (svc_pub, a link
 * of broker_user that is not a service link). Metrics are wired (TM), so
 * the quote_* counters are checked too. Client logins are never
 * broker_user, so fl_link(login, 0) stays the client's own. */

static struct sg_ticker_hub *TH;
static struct sg_metrics TM;

static void tk_wake(void *arg, int w)
{
    (void)arg;
    assert_int_equal(w, 0);
    sg_relay_ticker_wake(T.r);
}

/* start() with a ticker hub and metrics */
static struct sg_ticker_hub *new_hub(void)
{
    TH = sg_ticker_hub_new((size_t)T.cfg.quote_max_symbols, 1, tk_wake, NULL);
    assert_non_null(TH);
    return TH;
}

static void start_ticker(const char *const *opts)
{
    memset(&TM, 0, sizeof TM);
    start_env(opts, new_hub, &TM);
}

/* teardown(), then the hub: the relay gave every symbol back */
static int teardown_ticker(void **state)
{
    teardown(state);
    size_t left = TH ? sg_ticker_hub_interest(TH, NULL, 0) : 0;
    sg_ticker_hub_free(TH);
    TH = NULL;
    assert_int_equal(left, 0);
    assert_int_equal(atomic_load(&TM.quote_subscriptions), 0);
    return 0;
}

/* Lets posted events run (the wake event, and what it posts). */
static void run_wake(void)
{
    for (int i = 0; i < 3; i++)
        assert_int_not_equal(event_base_loop(T.base, EVLOOP_NONBLOCK), -1);
}

/* Runs the event base until done(arg), for at most about 10 s: a bound
 * on a timer-driven behaviour (a retry, the tick), never a timing. */
static void loop_until(int (*done)(void *), void *arg)
{
    for (int i = 0; i < 1000 && !done(arg); i++) {
        struct timeval tv = {0, 10 * 1000};
        event_base_loopexit(T.base, &tv);
        event_base_dispatch(T.base);
    }
    assert_true(done(arg));
}

static struct sg_link *svc(void)
{
    struct sg_link *l = fl_link(T.cfg.broker_user, 1);
    assert_non_null(l);
    return l;
}

static struct sg_link *svc_pub(void)
{
    struct sg_link *l = fl_link_nth(T.cfg.broker_user, 0, 0);
    assert_non_null(l);
    assert_false(sg_link_is_service(l));
    return l;
}

/* The service link comes up; the results consumer is answered. Returns
 * its channel. */
static uint16_t results_up(void)
{
    struct sg_link *l = svc();
    size_t m = fl_nrec(l);
    fl_up(l);
    struct fl_rec c = get(l, m, 0, AMQP_BASIC_CONSUME_METHOD);
    fl_consume_ok(l, c.ch, c.ctag);
    return c.ch;
}

/* The service publishing link comes up; returns the work channel (the one
 * with the stocks.work declare). */
static uint16_t work_up(void)
{
    struct sg_link *l = svc_pub();
    size_t m = fl_nrec(l);
    fl_up(l);
    const struct fl_rec *d = NULL;
    for (size_t at = m; (d = fl_find(l, at, 0, AMQP_QUEUE_DECLARE_METHOD, &at)); at++)
        if (!strcmp(d->queue, T.cfg.quote_work_queue)) break;
    if (!d) dump_fail(l, m, "no stocks.work declare");
    return d->ch;
}

static void result(uint16_t ch, uint64_t tag, const char *body)
{
    fl_deliver(svc(), ch, tag, 0, "", T.cfg.quote_results_queue, NULL, body, strlen(body));
}

/* The results channel acked exactly tag since from. */
static void assert_result_acked(size_t from, uint16_t ch, uint64_t tag)
{
    struct sg_link *l = svc();
    assert_int_equal(fl_count(l, from, ch, AMQP_BASIC_ACK_METHOD), 1);
    struct fl_rec a = get(l, from, ch, AMQP_BASIC_ACK_METHOD);
    assert_int_equal(a.tag, tag);
    assert_int_equal(a.multiple, 0);
}

static int qsub(struct fc *c, const char *dest, const char *id, enum sg_ack_mode ack, char *err,
                size_t cap)
{
    return run(c, &(struct act){.type = SG_ACT_SUBSCRIBE, .dest = dest, .id = id, .ack = ack}, err,
               cap);
}

static int unsub(struct fc *c, const char *id)
{
    return run(c, &(struct act){.type = SG_ACT_UNSUBSCRIBE, .id = id}, NULL, 0);
}

/* The interest set, sorted, joined with ',' */
static const char *tk_interest(void)
{
    static char out[1024];
    char syms[32][SG_TICKER_SYM_CAP];
    size_t n = sg_ticker_hub_interest(TH, syms, 32);
    assert_true(n <= 32);
    for (size_t i = 1; i < n; i++) /* insertion sort: a few symbols */
        for (size_t k = i; k > 0 && strcmp(syms[k - 1], syms[k]) > 0; k--) {
            char t[SG_TICKER_SYM_CAP];
            memcpy(t, syms[k], sizeof t);
            memcpy(syms[k], syms[k - 1], sizeof t);
            memcpy(syms[k - 1], t, sizeof t);
        }
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        if (i) strcat(out, ",");
        strcat(out, syms[i]);
    }
    return out;
}

/* The i-th write of c is a quote MESSAGE for sym at price (as printed),
 * for subscription id. */
static void assert_quote(const struct fc *c, size_t i, const char *id, const char *dest,
                         const char *sym, const char *price)
{
    char body[256], want[128];
    assert_msg(c, i, "subscription", id);
    assert_msg(c, i, "destination", dest);
    assert_msg(c, i, "content-type", "application/json");
    assert_true(msg_header(c, i, "(body)", body, sizeof body));
    snprintf(want, sizeof want, "{\"symbol\":\"%s\",\"price\":%s,\"ts\":", sym, price);
    if (strncmp(body, want, strlen(want))) fail_msg("%s write %zu: body %s", c->id, i, body);
    assert_true(c->wtext[i]);
    char mid[64];
    assert_true(msg_header(c, i, "message-id", mid, sizeof mid));
    assert_int_equal(strncmp(mid, "q-", 2), 0);
}

/* A quote SUBSCRIBE is done at once (SG_OK: the session sends the
 * RECEIPT) and needs nothing of the broker: no method on the client's
 * link, up or not, and no publishing link opened for its login. */
static void test_ticker_subscribe_no_broker(void **state)
{
    (void)state;
    start_ticker(NULL);
    struct fc *a = client("alice"), *b = client("bob");
    assert_int_equal(subscribe(a, "/queue/stocks.AAPL", "s1", "r1", SG_ACK_AUTO), SG_OK);
    up(b->link);
    size_t mb = fl_nrec(b->link);
    assert_int_equal(subscribe(b, "/queue/stocks.BRK.B", "s1", NULL, SG_ACK_AUTO), SG_OK);
    assert_int_equal(subscribe(b, "/queue/stocks.^GSPC", "s2", NULL, SG_ACK_CLIENT), SG_OK);
    assert_int_equal(fl_nrec(b->link), mb);
    assert_int_equal(fl_nrec(a->link), 0);
    run_wake();
    assert_int_equal(fl_nrec(b->link), mb);
    assert_int_equal(fl_nrec(a->link), 0);
    assert_null(fl_plink("alice"));
    assert_null(fl_plink("bob"));
    assert_int_equal(a->nwrites + b->nwrites + a->nreceipts + b->nreceipts, 0);
    assert_string_equal(tk_interest(), "AAPL,BRK.B,^GSPC");
    assert_int_equal(atomic_load(&TM.quote_subscriptions), 3);
    assert_no_fail(a);
    assert_no_fail(b);
}

/* An invalid symbol after the prefix is SG_EDEST, with a message that
 * names it; nothing joins the interest set and nothing goes to the
 * broker. */
static void test_ticker_invalid_symbols(void **state)
{
    (void)state;
    start_ticker(NULL);
    struct fc *a = client("alice");
    up(a->link);
    static const char *const bad[][2] = {
        {"/queue/stocks.aapl", "\"aapl\""},
        {"/queue/stocks.", "\"\""},
        {"/queue/stocks.ABCDEFGHIJKLM", "\"ABCDEFGHIJKLM\""},
        {"/queue/stocks.A B", "\"A B\""},
        {"/queue/stocks.A/B", "\"A/B\""},
        {"/queue/stocks.\xc3\x84", "\"\xc3\x84\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[512];
        assert_int_equal(qsub(a, bad[i][0], "s1", SG_ACK_AUTO, err, sizeof err), SG_EDEST);
        assert_contains(err, "invalid quote symbol");
        assert_contains(err, bad[i][1]);
    }
    /* twelve is the most */
    assert_int_equal(subscribe(a, "/queue/stocks.ABCDEFGHIJKL", "s2", NULL, SG_ACK_AUTO), SG_OK);
    assert_string_equal(tk_interest(), "ABCDEFGHIJKL");
    assert_int_equal(fl_nrec(a->link), 0);
    assert_int_equal(atomic_load(&TM.quote_subscriptions), 1);
    assert_no_fail(a);
}

/* quote_prefix="" turns quotes off: /queue/stocks.AAPL is a broker queue
 * like any other. Another prefix moves them. */
static void test_ticker_prefix_off_or_other(void **state)
{
    (void)state;
    start_ticker((const char *[]){"--quote_prefix=", NULL});
    struct fc *a = client("alice");
    up(a->link);
    assert_int_equal(subscribe(a, "/queue/stocks.AAPL", "s1", "r1", SG_ACK_AUTO), SG_AGAIN);
    struct fl_rec d = get(a->link, 0, 0, AMQP_QUEUE_DECLARE_METHOD);
    assert_string_equal(d.queue, "stocks.AAPL");
    struct fl_rec c = get(a->link, 0, 0, AMQP_BASIC_CONSUME_METHOD);
    assert_string_equal(c.queue, "stocks.AAPL");
    fl_consume_ok(a->link, c.ch, c.ctag);
    assert_receipts(a, "r1", NULL);
    assert_string_equal(tk_interest(), "");
    teardown_ticker(NULL);

    start_ticker((const char *[]){"--quote-prefix=/topic/q.", NULL});
    a = client("alice");
    up(a->link);
    size_t m = fl_nrec(a->link);
    assert_int_equal(subscribe(a, "/topic/q.MSFT", "s1", NULL, SG_ACK_AUTO), SG_OK);
    assert_int_equal(fl_nrec(a->link), m);
    assert_string_equal(tk_interest(), "MSFT");
    assert_int_equal(subscribe(a, "/queue/stocks.AAPL", "s2", NULL, SG_ACK_AUTO), SG_AGAIN);
    assert_string_equal(get(a->link, m, 0, AMQP_QUEUE_DECLARE_METHOD).queue, "stocks.AAPL");
    assert_string_equal(tk_interest(), "MSFT");
    /* and its MESSAGEs carry that destination */
    uint16_t rch = results_up();
    result(rch, 1, "[{\"symbol\":\"MSFT\",\"price\":301.5}]");
    run_wake();
    assert_int_equal(a->nwrites, 1);
    assert_quote(a, 0, "s1", "/topic/q.MSFT", "MSFT", "301.5");
}

/* Quote subscriptions count against max_subscriptions; quote_max_symbols
 * bounds the symbols (a symbol nobody holds any more makes room once
 * worker 0 has sent the new ones). */
static void test_ticker_limits(void **state)
{
    (void)state;
    start_ticker((const char *[]){"--max-subscriptions=2", "--quote-max-symbols=2", NULL});
    struct fc *a = client("alice"), *b = client("bob");
    char err[512];
    assert_int_equal(subscribe(a, "/queue/stocks.AAPL", "s1", NULL, SG_ACK_AUTO), SG_OK);
    assert_int_equal(subscribe(a, "/queue/stocks.AAPL", "s2", NULL, SG_ACK_AUTO), SG_OK);
    assert_int_equal(qsub(a, "/queue/stocks.MSFT", "s3", SG_ACK_AUTO, err, sizeof err),
                     SG_ETOOMANY);
    assert_contains(err, "too many subscriptions");
    assert_int_equal(unsub(a, "s2"), SG_OK);
    assert_int_equal(subscribe(a, "/queue/stocks.MSFT", "s3", NULL, SG_ACK_AUTO), SG_OK);
    /* two symbols known: a third is refused */
    assert_int_equal(qsub(b, "/queue/stocks.IBM", "s1", SG_ACK_AUTO, err, sizeof err), SG_ETOOMANY);
    assert_contains(err, "too many quote symbols (quote_max_symbols 2)");
    assert_string_equal(tk_interest(), "AAPL,MSFT");
    assert_int_equal(unsub(a, "s1"), SG_OK);
    run_wake();
    assert_int_equal(subscribe(b, "/queue/stocks.IBM", "s1", NULL, SG_ACK_AUTO), SG_OK);
    assert_string_equal(tk_interest(), "IBM,MSFT");
    assert_int_equal(sg_ticker_hub_known(TH), 2);
    assert_int_equal(atomic_load(&TM.quote_subscriptions), 2);
}

/* Worker 0 consumes stocks.result (the book's durable queue) on the
 * service link and publishes the interest set to stocks.work on the
 * service connection's publishing link: all of it once that link is up,
 * then each new symbol at once (from the wake event); a symbol already in
 * the set is not sent again. */
static void test_ticker_results_consumer_and_work(void **state)
{
    (void)state;
    start_ticker(NULL);
    struct sg_link *sl = svc(), *pl = svc_pub();
    assert_ptr_not_equal(sl, pl);
    assert_int_equal(fl_nlinks(), 2); /* opened with the relay: the service and its publisher */
    fl_up(sl);
    struct fl_rec d = get(sl, 0, 0, AMQP_QUEUE_DECLARE_METHOD);
    uint16_t rch = d.ch;
    assert_int_equal(fl_rec(sl, 0)->id, AMQP_CHANNEL_OPEN_METHOD);
    assert_int_equal(fl_rec(sl, 0)->ch, rch);
    assert_string_equal(d.queue, "stocks.result");
    assert_int_equal(d.durable, 1);
    assert_int_equal(d.exclusive, 0);
    assert_int_equal(d.auto_delete, 0);
    assert_int_equal(d.passive, 0);
    assert_int_equal(get(sl, 0, rch, AMQP_BASIC_QOS_METHOD).prefetch, 64);
    struct fl_rec c = get(sl, 0, rch, AMQP_BASIC_CONSUME_METHOD);
    assert_string_equal(c.queue, "stocks.result");
    assert_int_equal(c.no_ack, 0);
    assert_int_equal(fl_count(sl, 0, 0, AMQP_BASIC_CONSUME_METHOD), 1);
    fl_consume_ok(sl, rch, c.ctag);

    /* subscribed while the publishing link is down: sent once it is up */
    struct fc *a = client("alice");
    assert_int_equal(subscribe(a, "/queue/stocks.AAPL", "s1", NULL, SG_ACK_AUTO), SG_OK);
    run_wake();
    uint16_t wch = work_up();
    struct fl_rec wd = get(pl, 0, wch, AMQP_QUEUE_DECLARE_METHOD);
    assert_string_equal(wd.queue, "stocks.work");
    assert_int_equal(wd.durable, 1);
    assert_int_equal(wd.exclusive, 0);
    assert_int_equal(wd.auto_delete, 0);
    size_t at;
    assert_non_null(fl_find(pl, 0, wch, AMQP_QUEUE_DECLARE_METHOD, &at));
    assert_int_equal(publishes(pl, 0, 0), 1);
    struct fl_rec p = get_publish(pl, at, wch); /* after the declare, on its channel */
    assert_string_equal(p.exchange, "");
    assert_string_equal(p.rkey, "stocks.work");
    assert_string_equal(p.body, "{\"stocks\":[\"AAPL\"]}");
    assert_int_equal(p.delivery_mode, 2);
    assert_string_equal(p.content_type, "application/json");
    assert_string_equal(p.expiration, "10000"); /* quote_work_ttl_ms */
    assert_int_equal(p.mandatory, 0);

    /* a new symbol: published from the wake event */
    struct fc *b = client("bob");
    size_t m = fl_nrec(pl);
    assert_int_equal(subscribe(b, "/queue/stocks.MSFT", "s1", NULL, SG_ACK_AUTO), SG_OK);
    assert_int_equal(publishes(pl, m, 0), 0);
    run_wake();
    assert_int_equal(publishes(pl, m, 0), 1);
    assert_string_equal(get_publish(pl, m, wch).body, "{\"stocks\":[\"MSFT\"]}");
    /* one already in the set: nothing */
    m = fl_nrec(pl);
    assert_int_equal(subscribe(b, "/queue/stocks.AAPL", "s2", NULL, SG_ACK_AUTO), SG_OK);
    run_wake();
    assert_int_equal(publishes(pl, m, 0), 0);
    assert_int_equal(atomic_load(&TM.quote_work), 2);
    /* each link kept to its part */
    assert_int_equal(fl_count(sl, 0, 0, FL_PUBLISH), 0);
    assert_int_equal(fl_count(pl, 0, 0, AMQP_BASIC_CONSUME_METHOD), 0);
    assert_no_fail(a);
    assert_no_fail(b);
}

/* quote_results_exchange: several bridges each bind a queue of their own
 * (exclusive, auto-delete, bounded) to the fanout exchange. */
static void test_ticker_results_exchange(void **state)
{
    (void)state;
    start_ticker((const char *[]){"--quote-results-exchange=quotes.x", NULL});
    struct sg_link *sl = svc();
    fl_up(sl);
    size_t ax, aq, ab, ac;
    const struct fl_rec *x = fl_find(sl, 0, 0, AMQP_EXCHANGE_DECLARE_METHOD, &ax);
    assert_non_null(x);
    struct fl_rec xd = *x;
    assert_string_equal(xd.exchange, "quotes.x");
    assert_string_equal(xd.xtype, "fanout");
    assert_int_equal(xd.durable, 1);
    assert_int_equal(xd.auto_delete, 0);
    assert_int_equal(xd.passive, 0);
    struct fl_rec qd = *fl_find(sl, 0, xd.ch, AMQP_QUEUE_DECLARE_METHOD, &aq);
    assert_int_equal(strncmp(qd.queue, "stompgate-quotes-", 17), 0);
    assert_int_equal(strlen(qd.queue), 17 + 36); /* a UUID */
    assert_int_equal(qd.exclusive, 1);
    assert_int_equal(qd.auto_delete, 1);
    assert_int_equal(qd.durable, 0);
    assert_int_equal(qd.nargs, 2); /* x-max-length, x-overflow */
    struct fl_rec qb = *fl_find(sl, 0, xd.ch, AMQP_QUEUE_BIND_METHOD, &ab);
    assert_string_equal(qb.queue, qd.queue);
    assert_string_equal(qb.exchange, "quotes.x");
    assert_string_equal(qb.rkey, "");
    struct fl_rec c = *fl_find(sl, 0, xd.ch, AMQP_BASIC_CONSUME_METHOD, &ac);
    assert_string_equal(c.queue, qd.queue);
    assert_true(ax < aq && aq < ab && ab < ac);
    /* not the shared queue */
    const struct fl_rec *r = NULL;
    for (size_t at = 0; (r = fl_find(sl, at, 0, AMQP_QUEUE_DECLARE_METHOD, &at)); at++)
        assert_string_not_equal(r->queue, "stocks.result");
    fl_consume_ok(sl, xd.ch, c.ctag);
    struct fc *a = client("alice");
    assert_int_equal(subscribe(a, "/queue/stocks.AAPL", "s1", NULL, SG_ACK_AUTO), SG_OK);
    static const char one[] = "[{\"symbol\":\"AAPL\",\"price\":2}]";
    fl_deliver(sl, xd.ch, 1, 0, "quotes.x", "", NULL, one, sizeof one - 1);
    run_wake();
    assert_int_equal(a->nwrites, 1);
    assert_quote(a, 0, "s1", "/queue/stocks.AAPL", "AAPL", "2");
}

struct pub_wait {
    struct sg_link *l;
    size_t from, want;
};

static int enough_publishes(void *arg)
{
    struct pub_wait *w = arg;
    return publishes(w->l, w->from, 0) >= w->want;
}

/* The set in chunks of quote_work_batch, and again every
 * quote_interval_ms; no expiration with quote_work_ttl_ms=0. */
static void test_ticker_work_batches_and_tick(void **state)
{
    (void)state;
    start_ticker((const char *[]){"--quote-work-batch=2", "--quote-interval-ms=50",
                                  "--quote-work-ttl-ms=0", NULL});
    static const char *const syms[] = {"A", "B", "C", "D", "E"};
    struct fc *a = client("alice");
    for (size_t i = 0; i < 5; i++) {
        char dest[64], id[8];
        snprintf(dest, sizeof dest, "/queue/stocks.%s", syms[i]);
        snprintf(id, sizeof id, "s%zu", i);
        assert_int_equal(subscribe(a, dest, id, NULL, SG_ACK_AUTO), SG_OK);
    }
    struct sg_link *pl = svc_pub();
    size_t m = fl_nrec(pl);
    uint16_t wch = work_up();
    assert_int_equal(publishes(pl, m, 0), 3);
    /* each symbol once, at most two a message */
    int seen[5] = {0};
    size_t at = m;
    for (int k = 0; k < 3; k++) {
        const struct fl_rec *p = fl_find(pl, at, wch, FL_PUBLISH, &at);
        assert_non_null(p);
        assert_string_equal(p->expiration, "");
        json_error_t e;
        json_t *j = json_loadb(p->body, p->body_len, 0, &e);
        assert_non_null(j);
        json_t *arr = json_object_get(j, "stocks");
        assert_true(json_array_size(arr) >= 1 && json_array_size(arr) <= 2);
        for (size_t i = 0; i < json_array_size(arr); i++) {
            const char *s = json_string_value(json_array_get(arr, i));
            assert_non_null(s);
            assert_int_equal(strlen(s), 1);
            assert_true(s[0] >= 'A' && s[0] <= 'E');
            seen[s[0] - 'A']++;
        }
        json_decref(j);
        at++;
    }
    for (int i = 0; i < 5; i++)
        assert_int_equal(seen[i], 1);
    /* the tick sends the whole set again: three more */
    struct pub_wait w = {pl, fl_nrec(pl), 3};
    loop_until(enough_publishes, &w);
    /* a symbol gone from the set is not in the next round */
    for (int i = 1; i < 5; i++) {
        char id[8];
        snprintf(id, sizeof id, "s%d", i);
        assert_int_equal(unsub(a, id), SG_OK);
    }
    w.from = fl_nrec(pl);
    w.want = 1;
    loop_until(enough_publishes, &w);
    assert_string_equal(get_publish(pl, w.from, wch).body, "{\"stocks\":[\"A\"]}");
}

/* A result reaches every subscriber of its symbol and only them, from
 * the wake event: one encoding per symbol (the same message-id and bytes
 * after the subscription header for subscribers of one STOMP version),
 * acked on the results channel as soon as it is read. */
static void test_ticker_fanout(void **state)
{
    (void)state;
    start_ticker(NULL);
    uint16_t rch = results_up();
    struct fc *a = client("alice"), *b = client("bob"), *c = client_v("carol", 10),
              *d = client("dave");
    assert_int_equal(subscribe(a, "/queue/stocks.AAPL", "a1", NULL, SG_ACK_AUTO), SG_OK);
    assert_int_equal(subscribe(b, "/queue/stocks.AAPL", "b1", NULL, SG_ACK_AUTO), SG_OK);
    assert_int_equal(subscribe(c, "/queue/stocks.AAPL", "c1", NULL, SG_ACK_AUTO), SG_OK);
    assert_int_equal(subscribe(d, "/queue/stocks.MSFT", "d1", NULL, SG_ACK_AUTO), SG_OK);
    size_t m = fl_nrec(svc());
    result(rch, 7, "[{\"symbol\":\"AAPL\",\"price\":149.34}]");
    assert_result_acked(m, rch, 7);
    assert_int_equal(a->nwrites + b->nwrites + c->nwrites, 0); /* from the wake event */
    run_wake();
    assert_int_equal(a->nwrites, 1);
    assert_int_equal(b->nwrites, 1);
    assert_int_equal(c->nwrites, 1);
    assert_int_equal(d->nwrites, 0);
    assert_quote(a, 0, "a1", "/queue/stocks.AAPL", "AAPL", "149.34");
    assert_quote(b, 0, "b1", "/queue/stocks.AAPL", "AAPL", "149.34");
    assert_quote(c, 0, "c1", "/queue/stocks.AAPL", "AAPL", "149.34");
    /* encoded once: the shared part is byte for byte the same */
    const char *sa = strstr(a->writes[0], "destination:"),
               *sb = strstr(b->writes[0], "destination:"),
               *sc = strstr(c->writes[0], "destination:");
    assert_non_null(sa);
    assert_non_null(sb);
    assert_non_null(sc);
    size_t la = a->wlen[0] - (size_t)(sa - a->writes[0]);
    assert_int_equal(b->wlen[0] - (size_t)(sb - b->writes[0]), la);
    assert_memory_equal(sa, sb, la);
    assert_int_equal(c->wlen[0] - (size_t)(sc - c->writes[0]), la); /* 1.0: same text here */
    assert_memory_equal(sa, sc, la);
    /* the other symbol's subscriber only */
    m = fl_nrec(svc());
    result(rch, 8, "[{\"symbol\":\"MSFT\",\"price\":300},{\"symbol\":\"IBM\",\"price\":1}]");
    assert_result_acked(m, rch, 8);
    run_wake();
    assert_int_equal(a->nwrites, 1);
    assert_int_equal(b->nwrites, 1);
    assert_int_equal(c->nwrites, 1);
    assert_int_equal(d->nwrites, 1);
    assert_quote(d, 0, "d1", "/queue/stocks.MSFT", "MSFT", "300");
    /* IBM was not subscribed: not learnt either */
    struct sg_quote q;
    assert_int_equal(sg_ticker_hub_last(TH, "IBM", &q), SG_ENOKEY);
    /* a message with both: each once */
    result(rch, 9, "[{\"symbol\":\"MSFT\",\"price\":301},{\"symbol\":\"AAPL\",\"price\":150}]");
    run_wake();
    assert_int_equal(a->nwrites, 2);
    assert_int_equal(d->nwrites, 2);
    assert_quote(a, 1, "a1", "/queue/stocks.AAPL", "AAPL", "150");
    assert_quote(d, 1, "d1", "/queue/stocks.MSFT", "MSFT", "301");
    assert_int_equal(atomic_load(&TM.quote_updates), 4);
    assert_int_equal(atomic_load(&TM.quote_messages), 8);
    assert_int_equal(atomic_load(&TM.quote_results_bad), 0);
    assert_no_fail(a);
    assert_no_fail(d);
}

/* The last value: a new subscriber to a symbol with a price gets it after
 * its SUBSCRIBE is done (from the wake event, so after the RECEIPT), from
 * the worker's copy or, when the worker had no subscriber left, from the
 * hub; a price newer than the cached one before the wake replaces it. */
static void test_ticker_last_value(void **state)
{
    (void)state;
    start_ticker(NULL);
    uint16_t rch = results_up();
    struct fc *a = client("alice"), *b = client("bob"), *c = client("carol");
    assert_int_equal(subscribe(a, "/queue/stocks.AAPL", "a1", NULL, SG_ACK_AUTO), SG_OK);
    run_wake();
    assert_int_equal(a->nwrites, 0); /* no price yet: nothing */
    result(rch, 1, "[{\"symbol\":\"AAPL\",\"price\":1.5}]");
    run_wake();
    assert_int_equal(a->nwrites, 1);
    assert_int_equal(subscribe(b, "/queue/stocks.AAPL", "b1", "rb", SG_ACK_AUTO), SG_OK);
    assert_int_equal(b->nwrites, 0); /* not before the RECEIPT */
    run_wake();
    assert_int_equal(b->nwrites, 1);
    assert_quote(b, 0, "b1", "/queue/stocks.AAPL", "AAPL", "1.5");
    assert_int_equal(a->nwrites, 1); /* the others get nothing again */
    run_wake();
    assert_int_equal(b->nwrites, 1);

    /* everyone leaves; the hub keeps the price for the next one */
    assert_int_equal(unsub(a, "a1"), SG_OK);
    assert_int_equal(unsub(b, "b1"), SG_OK);
    assert_string_equal(tk_interest(), "");
    assert_int_equal(subscribe(c, "/queue/stocks.AAPL", "c1", NULL, SG_ACK_AUTO), SG_OK);
    run_wake();
    assert_int_equal(c->nwrites, 1);
    assert_quote(c, 0, "c1", "/queue/stocks.AAPL", "AAPL", "1.5");

    /* cached price owed, a newer one arrives before the wake: only that */
    assert_int_equal(subscribe(a, "/queue/stocks.AAPL", "a2", NULL, SG_ACK_AUTO), SG_OK);
    result(rch, 2, "[{\"symbol\":\"AAPL\",\"price\":2.5}]");
    run_wake();
    assert_int_equal(a->nwrites, 2);
    assert_quote(a, 1, "a2", "/queue/stocks.AAPL", "AAPL", "2.5");
    assert_int_equal(c->nwrites, 2);
    assert_quote(c, 1, "c1", "/queue/stocks.AAPL", "AAPL", "2.5");
    /* unsubscribed while owed: nothing */
    assert_int_equal(subscribe(b, "/queue/stocks.AAPL", "b2", NULL, SG_ACK_AUTO), SG_OK);
    assert_int_equal(unsub(b, "b2"), SG_OK);
    run_wake();
    assert_int_equal(b->nwrites, 1);
    assert_no_fail(a);
    assert_no_fail(b);
    assert_no_fail(c);
}

/* A price that reaches the hub while a second subscriber joins, both
 * before the wake event: the new one takes its last value from the hub
 * (the worker had none yet), and the first subscriber, who has never had
 * a price, must still get it; each gets it once. */
static void test_ticker_price_while_joining(void **state)
{
    (void)state;
    start_ticker(NULL);
    uint16_t rch = results_up();
    struct fc *a = client("alice"), *b = client("bob");
    assert_int_equal(subscribe(a, "/queue/stocks.AAPL", "a1", NULL, SG_ACK_AUTO), SG_OK);
    run_wake();
    result(rch, 1, "[{\"symbol\":\"AAPL\",\"price\":1.5}]");
    assert_int_equal(subscribe(b, "/queue/stocks.AAPL", "b1", NULL, SG_ACK_AUTO), SG_OK);
    run_wake();
    assert_int_equal(a->nwrites, 1);
    assert_quote(a, 0, "a1", "/queue/stocks.AAPL", "AAPL", "1.5");
    assert_int_equal(b->nwrites, 1);
    assert_quote(b, 0, "b1", "/queue/stocks.AAPL", "AAPL", "1.5");
    run_wake();
    assert_int_equal(a->nwrites + b->nwrites, 2);
    /* the same with the worker's copy gone: a new symbol entry on the
     * worker while the hub still lists the old price for it */
    result(rch, 2, "[{\"symbol\":\"AAPL\",\"price\":2.5}]");
    assert_int_equal(unsub(a, "a1"), SG_OK);
    assert_int_equal(unsub(b, "b1"), SG_OK);
    assert_int_equal(subscribe(a, "/queue/stocks.AAPL", "a2", NULL, SG_ACK_AUTO), SG_OK);
    run_wake();
    assert_int_equal(a->nwrites, 2);
    assert_quote(a, 1, "a2", "/queue/stocks.AAPL", "AAPL", "2.5");
    run_wake();
    assert_int_equal(a->nwrites, 2);
    assert_int_equal(b->nwrites, 1);
    assert_no_fail(a);
    assert_no_fail(b);
}

/* Conflation: a subscriber whose output holds more than
 * quote_conflate_bytes gets nothing while it is backed up and owes only
 * the newest price per symbol: ONE MESSAGE once it drains. */
static void test_ticker_conflation(void **state)
{
    (void)state;
    start_ticker(NULL);
    uint16_t rch = results_up();
    struct fc *a = client("alice"), *b = client("bob");
    assert_int_equal(subscribe(a, "/queue/stocks.AAPL", "a1", NULL, SG_ACK_AUTO), SG_OK);
    assert_int_equal(subscribe(a, "/queue/stocks.MSFT", "a2", NULL, SG_ACK_AUTO), SG_OK);
    assert_int_equal(subscribe(b, "/queue/stocks.AAPL", "b1", NULL, SG_ACK_AUTO), SG_OK);
    a->outlen = (size_t)T.cfg.quote_conflate_bytes + 1;
    static const char *const prices[] = {"1.25", "2.5", "3.75"};
    for (int i = 0; i < 3; i++) {
        char body[128];
        snprintf(body, sizeof body, "[{\"symbol\":\"AAPL\",\"price\":%s}]", prices[i]);
        result(rch, (uint64_t)i + 1, body);
        run_wake();
    }
    assert_int_equal(a->nwrites, 0);
    assert_int_equal(b->nwrites, 3); /* the other subscriber gets each */
    assert_quote(b, 2, "b1", "/queue/stocks.AAPL", "AAPL", "3.75");
    /* two owed prices were replaced by newer ones */
    assert_int_equal(atomic_load(&TM.quote_conflated), 2);
    /* its output drained: every owed price goes out at once (one per
     * subscription, the newest), whatever it queues meanwhile */
    a->outlen = 0;
    sg_relay_drained(a->rs);
    assert_int_equal(a->nwrites, 1);
    assert_quote(a, 0, "a1", "/queue/stocks.AAPL", "AAPL", "3.75");
    a->outlen = 0;
    sg_relay_drained(a->rs); /* nothing owed any more */
    run_wake();
    assert_int_equal(a->nwrites, 1);
    /* two symbols owed: one MESSAGE each */
    a->outlen = (size_t)T.cfg.quote_conflate_bytes + 1;
    result(rch, 4, "[{\"symbol\":\"AAPL\",\"price\":4},{\"symbol\":\"MSFT\",\"price\":9}]");
    run_wake();
    result(rch, 5, "[{\"symbol\":\"MSFT\",\"price\":10}]");
    run_wake();
    assert_int_equal(a->nwrites, 1);
    a->outlen = 0;
    sg_relay_drained(a->rs);
    assert_int_equal(a->nwrites, 3);
    char d1[64], d2[64];
    assert_true(msg_header(a, 1, "destination", d1, sizeof d1));
    assert_true(msg_header(a, 2, "destination", d2, sizeof d2));
    assert_string_not_equal(d1, d2);
    for (size_t i = 1; i < 3; i++)
        if (msg_header(a, i, "subscription", d1, sizeof d1) && !strcmp(d1, "a1"))
            assert_quote(a, i, "a1", "/queue/stocks.AAPL", "AAPL", "4");
        else
            assert_quote(a, i, "a2", "/queue/stocks.MSFT", "MSFT", "10");
    assert_int_equal(atomic_load(&TM.quote_conflated), 3);
    /* caught up (exactly at the bound is not over it): the next one is
     * written at once */
    a->outlen = (size_t)T.cfg.quote_conflate_bytes;
    result(rch, 6, "[{\"symbol\":\"AAPL\",\"price\":5}]");
    run_wake();
    assert_int_equal(a->nwrites, 4);
    assert_quote(a, 3, "a1", "/queue/stocks.AAPL", "AAPL", "5");
    a->outlen = 0;

    /* several results before one wake: the hub conflates them, one
     * MESSAGE with the newest */
    size_t nb = b->nwrites;
    result(rch, 7, "[{\"symbol\":\"AAPL\",\"price\":6}]");
    result(rch, 8, "[{\"symbol\":\"AAPL\",\"price\":7}]");
    result(rch, 9, "[{\"symbol\":\"AAPL\",\"price\":8}]");
    run_wake();
    assert_int_equal(b->nwrites, nb + 1);
    assert_quote(b, nb, "b1", "/queue/stocks.AAPL", "AAPL", "8");
    assert_no_fail(a);
    assert_no_fail(b);
}

/* UNSUBSCRIBE by id ends a quote subscription; the symbol leaves the
 * interest set with its last subscriber; a detach ends them all. */
static void test_ticker_unsubscribe_and_detach(void **state)
{
    (void)state;
    start_ticker(NULL);
    uint16_t rch = results_up();
    struct fc *a = client("alice"), *b = client("bob"), *c = client("carol");
    assert_int_equal(subscribe(a, "/queue/stocks.AAPL", "a1", NULL, SG_ACK_AUTO), SG_OK);
    assert_int_equal(subscribe(a, "/queue/stocks.MSFT", "a2", NULL, SG_ACK_AUTO), SG_OK);
    assert_int_equal(subscribe(b, "/queue/stocks.AAPL", "b1", NULL, SG_ACK_AUTO), SG_OK);
    assert_int_equal(atomic_load(&TM.quote_subscriptions), 3);
    assert_int_equal(unsub(a, "a1"), SG_OK);
    assert_string_equal(tk_interest(), "AAPL,MSFT");
    result(rch, 1, "[{\"symbol\":\"AAPL\",\"price\":1}]");
    run_wake();
    assert_int_equal(a->nwrites, 0);
    assert_int_equal(b->nwrites, 1);
    assert_int_equal(unsub(b, "b1"), SG_OK);
    assert_string_equal(tk_interest(), "MSFT");
    result(rch, 2, "[{\"symbol\":\"AAPL\",\"price\":2}]");
    run_wake();
    assert_int_equal(a->nwrites + b->nwrites, 1);
    /* gone: a second UNSUBSCRIBE is an unknown id */
    char err[512];
    assert_int_equal(run(b, &(struct act){.type = SG_ACT_UNSUBSCRIBE, .id = "b1"}, err, sizeof err),
                     SG_ESTATE);
    assert_contains(err, "no such subscription");
    /* ids are per session */
    assert_int_equal(run(b, &(struct act){.type = SG_ACT_UNSUBSCRIBE, .id = "a2"}, NULL, 0),
                     SG_ESTATE);
    assert_string_equal(tk_interest(), "MSFT");

    /* a detach with quote subscriptions (one owing a price) */
    assert_int_equal(subscribe(c, "/queue/stocks.IBM", "c1", NULL, SG_ACK_AUTO), SG_OK);
    assert_int_equal(subscribe(c, "/queue/stocks.MSFT", "c2", NULL, SG_ACK_AUTO), SG_OK);
    assert_int_equal(subscribe(c, "/queue/stocks.AAPL", "c3", NULL, SG_ACK_AUTO), SG_OK);
    c->outlen = (size_t)T.cfg.quote_conflate_bytes + 1;
    result(rch, 3, "[{\"symbol\":\"IBM\",\"price\":3}]");
    run_wake();
    assert_string_equal(tk_interest(), "AAPL,IBM,MSFT");
    struct sg_relay_sess *rs = c->rs;
    c->rs = NULL;
    c->detached = 1; /* no client op may follow */
    sg_relay_detach(rs);
    assert_string_equal(tk_interest(), "MSFT");
    assert_int_equal(atomic_load(&TM.quote_subscriptions), 1);
    result(rch, 4, "[{\"symbol\":\"IBM\",\"price\":4},{\"symbol\":\"MSFT\",\"price\":4}]");
    run_wake();
    assert_int_equal(c->nwrites, 0);
    assert_int_equal(a->nwrites, 1);
    assert_quote(a, 0, "a2", "/queue/stocks.MSFT", "MSFT", "4");
    assert_int_equal(unsub(a, "a2"), SG_OK);
    assert_string_equal(tk_interest(), "");
}

/* A quote MESSAGE needs no acknowledgement: an ACK or NACK of its id is
 * SG_OK and nothing goes to any broker. A STOMP 1.2 subscription in a
 * client mode carries the ack header; an auto one does not. */
static void test_ticker_ack(void **state)
{
    (void)state;
    start_ticker(NULL);
    uint16_t rch = results_up();
    struct fc *a = client("alice"), *b = client_v("bob", 11);
    up(a->link);
    assert_int_equal(subscribe(a, "/queue/stocks.AAPL", "a1", NULL, SG_ACK_CLIENT_INDIVIDUAL),
                     SG_OK);
    assert_int_equal(subscribe(a, "/queue/stocks.MSFT", "a2", NULL, SG_ACK_AUTO), SG_OK);
    assert_int_equal(subscribe(b, "/queue/stocks.AAPL", "b1", NULL, SG_ACK_CLIENT), SG_OK);
    result(rch, 1, "[{\"symbol\":\"AAPL\",\"price\":1},{\"symbol\":\"MSFT\",\"price\":2}]");
    run_wake();
    assert_int_equal(a->nwrites, 2);
    assert_int_equal(b->nwrites, 1);
    char ack[64], mid[64], sub[16], tmp[64];
    size_t ia = 0;
    assert_true(msg_header(a, 0, "subscription", sub, sizeof sub));
    if (strcmp(sub, "a1")) ia = 1;
    assert_true(msg_header(a, ia, "ack", ack, sizeof ack));
    assert_true(msg_header(a, ia, "message-id", mid, sizeof mid));
    assert_string_equal(ack, mid);
    assert_int_equal(strncmp(ack, "q-", 2), 0);
    assert_false(msg_header(a, 1 - ia, "ack", tmp, sizeof tmp)); /* auto */
    assert_false(msg_header(b, 0, "ack", tmp, sizeof tmp));      /* 1.1: acks by message-id */
    size_t ma = fl_nrec(a->link), ms = fl_nrec(svc());
    assert_int_equal(run(a, &(struct act){.type = SG_ACT_ACK, .ack_id = ack}, NULL, 0), SG_OK);
    assert_int_equal(run(a, &(struct act){.type = SG_ACT_NACK, .ack_id = ack}, NULL, 0), SG_OK);
    assert_true(msg_header(b, 0, "message-id", mid, sizeof mid));
    assert_int_equal(run(b, &(struct act){.type = SG_ACT_ACK, .ack_id = mid}, NULL, 0), SG_OK);
    assert_int_equal(fl_nrec(a->link), ma);
    assert_int_equal(fl_nrec(svc()), ms);
    assert_null(fl_plink("alice"));
    assert_null(fl_plink("bob"));
    assert_no_fail(a);
    assert_no_fail(b);
}

/* A result that is not a JSON array, or too big, is acked and counted,
 * and nothing is written; a result with some bad entries delivers the
 * good ones. */
static void test_ticker_bad_results(void **state)
{
    (void)state;
    start_ticker(NULL);
    uint16_t rch = results_up();
    struct fc *a = client("alice");
    assert_int_equal(subscribe(a, "/queue/stocks.AAPL", "a1", NULL, SG_ACK_AUTO), SG_OK);
    static const char *const bad[] = {
        "not json",
        "{\"symbol\":\"AAPL\",\"price\":1}",
        "[{\"symbol\":\"AAPL\",\"price\":1}",
        "[{\"symbol\":\"AAPL\",\"price\":1,\"price\":2}]",
        "",
    };
    uint64_t tag = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t m = fl_nrec(svc());
        result(rch, ++tag, bad[i]);
        assert_result_acked(m, rch, tag);
        run_wake();
    }
    assert_int_equal(a->nwrites, 0);
    assert_int_equal(atomic_load(&TM.quote_results_bad), 5);
    assert_int_equal(atomic_load(&TM.quote_updates), 0);
    struct sg_quote q;
    assert_int_equal(sg_ticker_hub_last(TH, "AAPL", &q), SG_ENOKEY);
    /* over 4 MiB: not parsed, even though it is a valid array */
    size_t big = (4u << 20) + 1;
    char *body = malloc(big);
    assert_non_null(body);
    memset(body, ' ', big);
    static const char valid[] = "[{\"symbol\":\"AAPL\",\"price\":1}]";
    memcpy(body, valid, sizeof valid - 1);
    size_t m = fl_nrec(svc());
    fl_deliver(svc(), rch, ++tag, 0, "", "stocks.result", NULL, body, big);
    assert_result_acked(m, rch, tag);
    run_wake();
    assert_int_equal(a->nwrites, 0);
    assert_int_equal(atomic_load(&TM.quote_results_bad), 6);
    /* exactly 4 MiB is parsed */
    fl_deliver(svc(), rch, ++tag, 0, "", "stocks.result", NULL, body, big - 1);
    free(body);
    run_wake();
    assert_int_equal(a->nwrites, 1);
    assert_quote(a, 0, "a1", "/queue/stocks.AAPL", "AAPL", "1");
    /* some entries bad: the good one goes, the message counts as bad */
    result(rch, ++tag,
           "[{\"symbol\":\"aapl\",\"price\":3},{\"symbol\":\"AAPL\",\"price\":-1},7,"
           "{\"symbol\":\"AAPL\",\"price\":4}]");
    run_wake();
    assert_int_equal(a->nwrites, 2);
    assert_quote(a, 1, "a1", "/queue/stocks.AAPL", "AAPL", "4");
    assert_int_equal(atomic_load(&TM.quote_results_bad), 7);
    assert_int_equal(atomic_load(&TM.quote_updates), 2);
    assert_no_fail(a);
}

/* Either service link dropping and coming back: the results consumer is
 * set up again; the work channel is opened again and the whole set sent,
 * with what was subscribed while it was away. */
static void test_ticker_links_drop(void **state)
{
    (void)state;
    start_ticker(NULL);
    uint16_t rch = results_up();
    uint16_t wch = work_up();
    struct sg_link *sl = svc(), *pl = svc_pub();
    struct fc *a = client("alice");
    assert_int_equal(subscribe(a, "/queue/stocks.AAPL", "a1", NULL, SG_ACK_AUTO), SG_OK);
    run_wake();
    assert_int_equal(publishes(pl, 0, wch), 1);

    size_t m = fl_nrec(sl);
    fl_drop(sl);
    uint16_t rch2 = results_up();
    assert_int_equal(fl_count(sl, m, 0, AMQP_QUEUE_DECLARE_METHOD), 1);
    assert_int_equal(fl_count(sl, m, 0, AMQP_BASIC_CONSUME_METHOD), 1);
    (void)rch;
    result(rch2, 1, "[{\"symbol\":\"AAPL\",\"price\":1}]");
    run_wake();
    assert_int_equal(a->nwrites, 1);

    fl_drop(pl);
    assert_int_equal(subscribe(a, "/queue/stocks.MSFT", "a2", NULL, SG_ACK_AUTO), SG_OK);
    run_wake(); /* nowhere to send it yet */
    m = fl_nrec(pl);
    uint16_t wch2 = work_up();
    assert_int_equal(publishes(pl, m, 0), 1);
    struct fl_rec p = get_publish(pl, m, wch2);
    assert_true(!strcmp(p.body, "{\"stocks\":[\"AAPL\",\"MSFT\"]}") ||
                !strcmp(p.body, "{\"stocks\":[\"MSFT\",\"AAPL\"]}"));
    assert_no_fail(a);
}

struct decl_wait {
    struct sg_link *l;
    size_t from;
    const char *queue;
};

static int declared(void *arg)
{
    struct decl_wait *w = arg;
    const struct fl_rec *r;
    for (size_t at = w->from; (r = fl_find(w->l, at, 0, AMQP_QUEUE_DECLARE_METHOD, &at)); at++)
        if (!strcmp(r->queue, w->queue)) return 1;
    return 0;
}

static struct fl_rec last_declare(struct sg_link *l, size_t from, const char *queue)
{
    const struct fl_rec *r, *found = NULL;
    for (size_t at = from; (r = fl_find(l, at, 0, AMQP_QUEUE_DECLARE_METHOD, &at)); at++)
        if (!strcmp(r->queue, queue)) found = r;
    if (!found) dump_fail(l, from, "no declare");
    return *found;
}

/* The results channel ends: the broker closes it with code, or (code 0)
 * cancels the consumer, which closes it. After the backoff, not at once,
 * it is declared again, passively or not, and consumed. Returns the new
 * channel. */
static uint16_t results_again(uint16_t ch, int code, int passive)
{
    struct sg_link *sl = svc();
    size_t m = fl_nrec(sl);
    if (code) {
        fl_chan_close(sl, ch, code, "closed by the test broker");
    } else {
        fl_cancel(sl, ch);
        assert_int_equal(get(sl, m, ch, AMQP_CHANNEL_CLOSE_METHOD).ch, ch);
        fl_close_ok(sl, ch);
    }
    assert_int_equal(fl_count(sl, m, 0, AMQP_QUEUE_DECLARE_METHOD), 0);
    struct decl_wait w = {sl, m, "stocks.result"};
    loop_until(declared, &w);
    struct fl_rec d = last_declare(sl, m, "stocks.result");
    if (d.passive != passive) fail_msg("after %d: passive %d, want %d", code, d.passive, passive);
    assert_int_equal(d.durable, 1);
    struct fl_rec c = get(sl, m, d.ch, AMQP_BASIC_CONSUME_METHOD);
    assert_string_equal(c.queue, "stocks.result");
    fl_consume_ok(sl, d.ch, c.ctag);
    return d.ch;
}

/* A channel the broker closes is set up again after a backoff: 406 (the
 * queue exists with other arguments) declares it passively, 404 (gone)
 * declares it again; a cancelled consumer is set up again too. */
static void test_ticker_channels_closed_retry(void **state)
{
    (void)state;
    start_ticker(NULL);
    uint16_t rch = results_up();
    uint16_t wch = work_up();
    struct sg_link *pl = svc_pub();
    struct fc *a = client("alice");
    assert_int_equal(subscribe(a, "/queue/stocks.AAPL", "a1", NULL, SG_ACK_AUTO), SG_OK);
    run_wake();

    /* results: 406 -> passive; another code keeps the declaration; a
     * cancelled consumer (the queue deleted) -> declared for real; 404 on
     * a passive declare -> declared for real */
    rch = results_again(rch, 406, 1);
    result(rch, 1, "[{\"symbol\":\"AAPL\",\"price\":1}]");
    run_wake();
    assert_int_equal(a->nwrites, 1);
    rch = results_again(rch, 403, 1);
    rch = results_again(rch, 0, 0);
    rch = results_again(rch, 406, 1);
    rch = results_again(rch, 404, 0);
    result(rch, 2, "[{\"symbol\":\"AAPL\",\"price\":2}]");
    run_wake();
    assert_int_equal(a->nwrites, 2);

    /* work: 406, then a passive declare and the whole set again */
    size_t m = fl_nrec(pl);
    fl_chan_close(pl, wch, 406, "PRECONDITION_FAILED");
    struct decl_wait ww = {pl, m, "stocks.work"};
    loop_until(declared, &ww);
    struct fl_rec wd = last_declare(pl, m, "stocks.work");
    assert_int_equal(wd.passive, 1);
    assert_string_equal(get_publish(pl, m, wd.ch).body, "{\"stocks\":[\"AAPL\"]}");
    assert_no_fail(a);
}

int main(int argc, char **argv)
{
    sg_log_init("test_relay", SG_LOG_ERROR);
    if (argc > 1) cmocka_set_test_filter(argv[1]); /* e.g. test_relay 'test_temp*' */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_send_queue_declare_then_probe_then_publish, teardown),
        cmocka_unit_test_teardown(test_probe_closed_fails_only_that_exchange, teardown),
        cmocka_unit_test_teardown(test_queue_declare_refused, teardown),
        cmocka_unit_test_teardown(test_send_validation, teardown),
        cmocka_unit_test_teardown(test_pub_channel_closed, teardown),
        cmocka_unit_test_teardown(test_pub_channel_closed_same_session, teardown),
        cmocka_unit_test_teardown(test_probe_closed_two_waiting_same_session, teardown),
        cmocka_unit_test_teardown(test_receipt_order, teardown),
        cmocka_unit_test_teardown(test_receipt_bound, teardown),
        cmocka_unit_test_teardown(test_blocked, teardown),
        cmocka_unit_test_teardown(test_link_drop_republish, teardown),
        cmocka_unit_test_teardown(test_temp_queue, teardown),
        cmocka_unit_test_teardown(test_prefetch_and_throttle, teardown),
        cmocka_unit_test_teardown(test_auto_ack_held_while_behind, teardown),
        cmocka_unit_test_teardown(test_topic_fanout, teardown),
        cmocka_unit_test_teardown(test_topic_drop_policy, teardown),
        cmocka_unit_test_teardown(test_upstream_acks_and_pressure, teardown),
        cmocka_unit_test_teardown(test_transaction, teardown),
        cmocka_unit_test_teardown(test_transaction_refused_send, teardown),
        cmocka_unit_test_teardown(test_nack_and_refused, teardown),
        cmocka_unit_test_teardown(test_link_drop_subscriptions, teardown),
        cmocka_unit_test_teardown(test_hold_timeout, teardown),
        cmocka_unit_test_teardown(test_subscription_closed_by_broker, teardown),
        cmocka_unit_test_teardown(test_detach_with_pending_work, teardown),
        cmocka_unit_test_teardown(test_channel_max, teardown),
        cmocka_unit_test_teardown(test_reconnect_fewer_channels, teardown),
        cmocka_unit_test_teardown(test_reconnect_fewer_channels_topics, teardown),
        cmocka_unit_test_teardown(test_blocked_then_dropped, teardown),
        cmocka_unit_test_teardown(test_subscription_queue_names, teardown),
        cmocka_unit_test_teardown(test_consumer_only_never_opens_publisher, teardown),
        cmocka_unit_test_teardown(test_send_while_publisher_logging_in, teardown),
        cmocka_unit_test_teardown(test_blocked_publisher_spares_consumers, teardown),
        cmocka_unit_test_teardown(test_consuming_link_drop_leaves_sends, teardown),
        cmocka_unit_test_teardown(test_publishing_link_drop_leaves_subscriptions, teardown),
        cmocka_unit_test_teardown(test_publishing_link_drop_over_hold_bytes, teardown),
        cmocka_unit_test_teardown(test_ticker_subscribe_no_broker, teardown_ticker),
        cmocka_unit_test_teardown(test_ticker_invalid_symbols, teardown_ticker),
        cmocka_unit_test_teardown(test_ticker_prefix_off_or_other, teardown_ticker),
        cmocka_unit_test_teardown(test_ticker_limits, teardown_ticker),
        cmocka_unit_test_teardown(test_ticker_results_consumer_and_work, teardown_ticker),
        cmocka_unit_test_teardown(test_ticker_results_exchange, teardown_ticker),
        cmocka_unit_test_teardown(test_ticker_work_batches_and_tick, teardown_ticker),
        cmocka_unit_test_teardown(test_ticker_fanout, teardown_ticker),
        cmocka_unit_test_teardown(test_ticker_last_value, teardown_ticker),
        cmocka_unit_test_teardown(test_ticker_price_while_joining, teardown_ticker),
        cmocka_unit_test_teardown(test_ticker_conflation, teardown_ticker),
        cmocka_unit_test_teardown(test_ticker_unsubscribe_and_detach, teardown_ticker),
        cmocka_unit_test_teardown(test_ticker_ack, teardown_ticker),
        cmocka_unit_test_teardown(test_ticker_bad_results, teardown_ticker),
        cmocka_unit_test_teardown(test_ticker_links_drop, teardown_ticker),
        cmocka_unit_test_teardown(test_ticker_channels_closed_retry, teardown_ticker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
