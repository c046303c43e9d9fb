/* relay.c - the broker side of one worker; the only user of rabbitmq-c.
 *
 * Broker connections are pooled per (user, vhost) on each worker, so the
 * broker's permissions apply to every session, and one service connection
 * (broker_user) tells /readyz whether the broker is there. Every connection
 * lives on its worker's event loop: its socket is registered with libevent
 * and drained with amqp_simple_wait_frame_noblock(zero timeout) until it
 * reports a timeout, because frames already buffered inside rabbitmq-c
 * never wake the fd. Nothing here waits for the broker: methods are sent
 * (amqp_send_method) and their replies are matched later against a FIFO of
 * expected replies per channel. Logins are the one blocking step and run on
 * the auth threads (auth.c), which hand the connection over.
 *
 * Channels: 1 publishes (confirm mode; temp-queue consumers live here too so
 * a reply queue is declared before the request that names it is published),
 * 2 checks exchanges passively before the first SEND to them, 3.. carry one
 * subscription each (private queue consumers, so ACKs map 1:1) or one shared
 * upstream (/topic and /exchange subscriptions with the same binding on this
 * worker share one exclusive queue; a delivery is encoded once and written
 * to every subscriber by reference).
 *
 * Outages: the connection is re-established with jittered exponential
 * backoff; every live subscription is declared, bound and consumed again;
 * SENDs that were not confirmed yet, and SENDs that arrive meanwhile, are
 * held (bounded by hold_bytes and hold_ms) and published after the
 * reconnect; RECEIPTs are only ever sent for confirmed publishes.
 */
#include "relay.h"
#include "amqp_map.h"
#include "auth.h"
#include "error.h"
#include "log.h"
#include "route.h"
#include "server.h"
#include "stomp_frame.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#define PUB_CH 1
#define RPC_CH 2
#define FIRST_SUB_CH 3
#define MAX_EXPECT 8
#define DRAIN_BATCH 256
#define KNOWN_EX 32

/* ---- a copy of a SEND frame, kept while the broker may still lose it */
struct fcopy {
    size_t nh;
    struct sg_stomp_header *h;
    const uint8_t *body;
    size_t body_len;
};

static struct fcopy *fcopy_new(const struct sg_stomp_frame *f, size_t *bytes)
{
    size_t n =
        sizeof(struct fcopy) + f->num_headers * sizeof(struct sg_stomp_header) + f->body_len + 1;
    for (size_t i = 0; i < f->num_headers; i++)
        n += f->headers[i].key_len + f->headers[i].value_len + 2;
    struct fcopy *c = malloc(n);
    if (!c) return NULL;
    c->nh = f->num_headers;
    c->h = (struct sg_stomp_header *)(c + 1);
    char *p = (char *)(c->h + c->nh);
    for (size_t i = 0; i < c->nh; i++) {
        const struct sg_stomp_header *h = &f->headers[i];
        memcpy(p, h->key, h->key_len);
        p[h->key_len] = 0;
        c->h[i].key = p;
        c->h[i].key_len = h->key_len;
        p += h->key_len + 1;
        memcpy(p, h->value, h->value_len);
        p[h->value_len] = 0;
        c->h[i].value = p;
        c->h[i].value_len = h->value_len;
        p += h->value_len + 1;
    }
    if (f->body_len) memcpy(p, f->body, f->body_len);
    c->body = (const uint8_t *)p;
    c->body_len = f->body_len;
    *bytes = n;
    return c;
}

static _Thread_local struct sg_stomp_frame tl_frame;

static const struct sg_stomp_frame *fcopy_frame(const struct fcopy *c)
{
    struct sg_stomp_frame *f = &tl_frame;
    f->cmd = SG_STOMP_SEND;
    f->num_headers = c->nh;
    memcpy(f->headers, c->h, c->nh * sizeof *c->h);
    f->body = c->body;
    f->body_len = c->body_len;
    return f;
}

struct rsess;
struct bconn;

/* RECEIPTs leave in the order of the frames that asked for them: a RECEIPT
 * tells the client that everything it sent before was processed, even when
 * an earlier SUBSCRIBE's queue is still being declared on another channel.
 * One entry per pending SUBSCRIBE (with or without receipt) and per SEND
 * with a receipt; entries are sent from the head once done. */
struct rcpt {
    struct rcpt *next;
    char *receipt; /* owned; NULL: nothing to send, just an ordering point */
    int done;
};

/* A SEND on its way to the broker (only kept when it must be: a receipt
 * to send, or a broker that is away) */
struct pub {
    struct pub *next;
    struct rsess *rs; /* NULL once the session is gone */
    struct rcpt *rc;  /* its place in the session's receipt order (NULL: none) */
    int confirm;      /* kept until the broker confirms it */
    struct fcopy *fc;
    size_t bytes;
    struct sg_route route;
    uint64_t seq;
    uint64_t held_at;
};

struct sub {
    struct sub *next; /* in rsess */
    struct rsess *rs;
    char *id, *dest;
    struct sg_route route;
    enum sg_ack_mode ack;
    int internal_ack; /* ack:auto on a private queue: we ack once written */
    int temp;         /* /temp-queue reply queue, consumed on PUB_CH */
    char ctag[64];
    uint16_t prefetch;
    int durable, auto_delete, exclusive;
    struct fcopy *args; /* x-* SUBSCRIBE headers (queue arguments) */
    char qname[256];
    struct chan *ch;
    struct topic *topic;
    struct sub *tnext;
    int ready;
    struct rcpt *rc; /* pending until consume-ok (NULL once done) */
    uint64_t *tags;  /* outstanding delivery tags (client modes), ascending */
    size_t ntags, captags;
    uint64_t delayed_ack; /* internal ack held back while the client is slow */
};

struct topic {
    struct topic *next;
    struct bconn *bc;
    char exchange[256], rkey[256], qname[64];
    struct chan *ch;
    struct sub *subs;
    int ready;
};

struct chan {
    uint16_t id;
    struct bconn *bc;
    struct sub *sub;
    struct topic *topic;
    int closing;
    uint32_t expect[MAX_EXPECT];
    int nexp;
    /* delivery being assembled (deliver, header, body frames) */
    int asm_state;  /* 0 idle, 1 header expected, 2 body */
    int asm_return; /* a basic.return's content: discarded */
    uint64_t tag;
    int redelivered;
    char exch[256], rkey[256], ctag[256];
    amqp_basic_properties_t *props;
    uint64_t body_size;
    struct evbuffer *body;
};

struct excheck {
    struct excheck *next;
    char name[256];
    struct pub *waiting, *waiting_tail;
    int sent;
};

enum bc_state { BC_DOWN, BC_CONNECTING, BC_OPEN, BC_FAILING };

struct bconn {
    struct sg_relay *r;
    struct bconn *next;
    char login[256], passcode[256], vhost[256];
    int service;
    enum bc_state state;
    int ever_up;
    uint64_t down_since;
    char fail_reason[200];
    amqp_connection_state_t amqp;
    struct event *rev, *retry, *drain_ev;
    unsigned backoff_ms;
    unsigned gen;
    int blocked;
    int chan_max;
    struct chan **chans;
    uint16_t next_chan;
    int rpc_open;
    uint64_t next_seq;
    struct pub *unconf, *unconf_tail;
    int returned_next;
    struct pub *held, *held_tail;
    struct rsess *sessions;
    struct topic *topics;
    struct excheck *checks;
    char known_ex[KNOWN_EX][256];
    int known_n;
    struct sg_auth_req *connecting;
};

struct rsess {
    struct rsess *next; /* in bconn */
    struct sg_conn *conn;
    struct bconn *bc;
    struct sub *subs;
    struct rcpt *rq, *rq_tail;
    int failing;
    int marked; /* listed in a struct victims */
};

struct sg_relay {
    struct sg_worker *w;
    const struct sg_gw_config *cfg;
    struct bconn *conns;
    struct bconn *service;
    struct event *hold_timer;
    size_t held_bytes;
    struct sg_buf scratch, head;
    amqp_pool_t pool;
    unsigned rng;
    int shutting_down;
    uint64_t next_qid;
};

static _Thread_local char errbuf[512];

/* ---- helpers */

static amqp_bytes_t B(const char *s)
{
    return amqp_cstring_bytes(s);
}

static void copy_bytes(char *dst, size_t cap, amqp_bytes_t b)
{
    size_t n = b.len < cap - 1 ? b.len : cap - 1;
    if (n) memcpy(dst, b.bytes, n);
    dst[n] = 0;
}

static unsigned jitter(struct sg_relay *r, unsigned ms)
{
    r->rng = r->rng * 1103515245u + 12345u;
    return ms / 2 + (r->rng >> 8) % (ms / 2 + 1);
}

static void bc_fail(struct bconn *bc, const char *why);

/* Sends a method; a failure to write marks the connection failed (handled
 * at the top of the next drain, never in the middle of a caller). */
static int bc_send(struct bconn *bc, uint16_t ch, amqp_method_number_t id, void *m)
{
    if (bc->state != BC_OPEN) return -1;
    int st = amqp_send_method(bc->amqp, ch, id, m);
    if (st != AMQP_STATUS_OK) {
        bc_fail(bc, amqp_error_string2(st));
        return -1;
    }
    return 0;
}

static void expect(struct chan *ch, uint32_t id)
{
    if (ch->nexp < MAX_EXPECT) ch->expect[ch->nexp++] = id;
}

static struct chan *chan_new(struct bconn *bc, uint16_t id)
{
    if (id == 0) {
        /* find a free channel id, round robin */
        for (int tries = 0; tries < bc->chan_max; tries++) {
            uint16_t c = bc->next_chan;
            bc->next_chan = (uint16_t)(c >= bc->chan_max ? FIRST_SUB_CH : c + 1);
            if (c >= FIRST_SUB_CH && !bc->chans[c]) {
                id = c;
                break;
            }
        }
        if (!id) return NULL;
    }
    struct chan *ch = calloc(1, sizeof *ch);
    if (!ch) return NULL;
    ch->id = id;
    ch->bc = bc;
    ch->body = evbuffer_new();
    bc->chans[id] = ch;
    amqp_channel_open_t op = {0};
    if (bc_send(bc, id, AMQP_CHANNEL_OPEN_METHOD, &op) == 0)
        expect(ch, AMQP_CHANNEL_OPEN_OK_METHOD);
    return ch;
}

static void chan_free(struct chan *ch)
{
    if (!ch) return;
    if (ch->bc->chans[ch->id] == ch) ch->bc->chans[ch->id] = NULL;
    if (ch->sub && ch->sub->ch == ch) ch->sub->ch = NULL;
    if (ch->topic && ch->topic->ch == ch) ch->topic->ch = NULL;
    evbuffer_free(ch->body);
    free(ch);
}

/* Closes a channel politely; it is freed on close-ok. */
static void chan_close(struct chan *ch)
{
    if (!ch || ch->closing) return;
    ch->closing = 1;
    ch->sub = NULL;
    ch->topic = NULL;
    amqp_channel_close_t m = {AMQP_REPLY_SUCCESS, B("unsubscribed"), 0, 0};
    /* freed on close-ok, or with the connection if that is failing: never
     * here, a delivery may still be using it */
    if (bc_send(ch->bc, ch->id, AMQP_CHANNEL_CLOSE_METHOD, &m) == 0)
        expect(ch, AMQP_CHANNEL_CLOSE_OK_METHOD);
}

/* ---- calls into sessions (each may end the session) */

static void sess_receipt(struct rsess *rs, const char *receipt)
{
    if (!rs || !rs->conn || !receipt) return;
    struct sg_conn *c = rs->conn;
    sg_conn_hold(c);
    if (sg_conn_open(c)) sg_stomp_session_receipt(sg_conn_session(c), receipt);
    sg_conn_release(c);
}

static void sess_fail(struct rsess *rs, const char *msg, const char *receipt, int code)
{
    if (!rs || !rs->conn || rs->failing) return;
    struct sg_conn *c = rs->conn;
    rs->failing = 1;
    sg_log_sess(SG_LOG_INFO, sg_conn_id(c), "ERROR to client: %s", msg);
    sg_conn_hold(c);
    if (sg_conn_open(c)) sg_stomp_session_fail(sg_conn_session(c), msg, receipt, code);
    sg_conn_release(c);
}

static const char *rc_receipt(const struct rcpt *e)
{
    return e ? e->receipt : NULL;
}

/* Takes receipt (may be NULL). NULL on ENOMEM (receipt freed). */
static struct rcpt *rq_add(struct rsess *rs, char *receipt)
{
    struct rcpt *e = calloc(1, sizeof *e);
    if (!e) {
        free(receipt);
        return NULL;
    }
    e->receipt = receipt;
    if (rs->rq_tail)
        rs->rq_tail->next = e;
    else
        rs->rq = e;
    rs->rq_tail = e;
    return e;
}

/* Marks e done and sends every RECEIPT that is now at the head. */
static void rq_done(struct rsess *rs, struct rcpt *e)
{
    if (!rs || !e) return;
    e->done = 1;
    if (!rs->rq->done) return;
    struct sg_conn *c = rs->conn;
    sg_conn_hold(c); /* rs stays valid until the release below */
    while (rs->rq && rs->rq->done) {
        struct rcpt *h = rs->rq;
        rs->rq = h->next;
        if (!rs->rq) rs->rq_tail = NULL;
        if (h->receipt) sess_receipt(rs, h->receipt);
        free(h->receipt);
        free(h);
    }
    sg_conn_release(c);
}

/* Ending several sessions at once: every connection is held while the list
 * is walked, so none is freed - and no subscriber list or topic edited -
 * until all have been told; each session is told once. */
struct victims {
    struct sg_conn **c;
    size_t n, cap;
};

static void victims_add(struct victims *v, struct rsess *rs)
{
    if (!rs->conn || rs->failing || rs->marked) return;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        struct sg_conn **c = realloc(v->c, cap * sizeof *c);
        if (!c) return;
        v->c = c;
        v->cap = cap;
    }
    rs->marked = 1;
    sg_conn_hold(rs->conn);
    v->c[v->n++] = rs->conn;
}

static void victims_fail(struct victims *v, const char *msg, int code)
{
    for (size_t i = 0; i < v->n; i++) {
        struct rsess *rs = sg_conn_relay_data(v->c[i]);
        if (rs) {
            rs->marked = 0;
            sess_fail(rs, msg, NULL, code);
        }
    }
    for (size_t i = 0; i < v->n; i++)
        sg_conn_release(v->c[i]);
    free(v->c);
}

static void fail_topic(struct topic *t, const char *msg)
{
    struct victims v = {0};
    for (struct sub *x = t->subs; x; x = x->tnext)
        victims_add(&v, x->rs);
    victims_fail(&v, msg, 0);
}

/* ---- publishing */

static void pub_free(struct sg_relay *r, struct pub *p)
{
    free(p->fc);
    free(p);
}

static int ex_known(struct bconn *bc, const char *ex)
{
    if (!ex[0] || !strncmp(ex, "amq.", 4)) return 1; /* built in: always there */
    for (int i = 0; i < bc->known_n; i++)
        if (!strcmp(bc->known_ex[i], ex)) return 1;
    return 0;
}

static void ex_learn(struct bconn *bc, const char *ex)
{
    if (ex_known(bc, ex)) return;
    int slot = bc->known_n < KNOWN_EX ? bc->known_n++ : (int)(bc->gen % KNOWN_EX);
    snprintf(bc->known_ex[slot], sizeof bc->known_ex[slot], "%s", ex);
}

static struct sub *temp_ensure(struct rsess *rs, const char *name, const char **why);

/* Publishes a SEND frame on PUB_CH. p (may be NULL) is the record that
 * waits for the confirm. Returns 0, or -1 with *why set. */
static int publish_frame(struct bconn *bc, struct rsess *rs, const struct sg_stomp_frame *f,
                         const struct sg_route *rt, struct pub *p, const char **why)
{
    struct sg_relay *r = bc->r;
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof props);
    int rc = -1;
    if (sg_map_send_to_props(f, &r->pool, &props, why) != SG_OK) goto out;
    /* reply-to:/temp-queue/X -> a private reply queue; responders see
     * /reply-queue/NAME (RabbitMQ STOMP plugin semantics) */
    const struct sg_stomp_header *rto = sg_stomp_header(f, "reply-to");
    char rbuf[300];
    if (rto && rto->value_len > 12 && !memcmp(rto->value, "/temp-queue/", 12) && rs) {
        char name[256];
        size_t n = rto->value_len - 12 < 255 ? rto->value_len - 12 : 255;
        memcpy(name, rto->value + 12, n);
        name[n] = 0;
        struct sub *t = temp_ensure(rs, name, why);
        if (!t) goto out;
        snprintf(rbuf, sizeof rbuf, "/reply-queue/%s", t->qname);
        props.reply_to = B(rbuf);
        props._flags |= AMQP_BASIC_REPLY_TO_FLAG;
    }
    /* mandatory for queue destinations with a receipt: a SEND to a missing
     * queue must not get a RECEIPT (a topic with no subscriber is fine) */
    int mandatory = p && p->confirm &&
                    (rt->kind == SG_ROUTE_QUEUE || rt->kind == SG_ROUTE_AMQ_QUEUE ||
                     rt->kind == SG_ROUTE_REPLY_QUEUE);
    amqp_bytes_t body = {f->body_len, (void *)f->body};
    int st = amqp_basic_publish(bc->amqp, PUB_CH, B(rt->exchange), B(rt->routing_key), mandatory, 0,
                                &props, body);
    if (st != AMQP_STATUS_OK) {
        *why = "broker unavailable";
        bc_fail(bc, amqp_error_string2(st));
        goto out;
    }
    uint64_t seq = bc->next_seq++;
    if (p) {
        p->seq = seq;
        p->next = NULL;
        if (bc->unconf_tail)
            bc->unconf_tail->next = p;
        else
            bc->unconf = p;
        bc->unconf_tail = p;
    }
    /* basic_publish may have read frames into rabbitmq-c's queue */
    event_active(bc->drain_ev, 0, 0);
    rc = 0;
out:
    empty_amqp_pool(&r->pool);
    return rc;
}

static void hold(struct bconn *bc, struct pub *p)
{
    p->next = NULL;
    if (!p->held_at) p->held_at = sg_now_ms();
    if (bc->held_tail)
        bc->held_tail->next = p;
    else
        bc->held = p;
    bc->held_tail = p;
    bc->r->held_bytes += p->bytes;
}

static void excheck_start(struct bconn *bc, struct pub *p);

/* Publishes a kept SEND now if it can, else holds it. Takes p. */
static void pub_go(struct bconn *bc, struct pub *p)
{
    const char *why = NULL;
    if (bc->state != BC_OPEN || bc->blocked) {
        hold(bc, p);
        return;
    }
    if (!ex_known(bc, p->route.exchange)) {
        excheck_start(bc, p);
        return;
    }
    struct rsess *rs = p->rs;
    if (publish_frame(bc, rs, fcopy_frame(p->fc), &p->route, p->confirm ? p : NULL, &why) != 0) {
        if (bc->state != BC_OPEN) {
            hold(bc, p); /* the connection just failed: republish after reconnect */
            return;
        }
        sess_fail(rs, why, rc_receipt(p->rc), 0);
        pub_free(bc->r, p);
        return;
    }
    if (!p->confirm) pub_free(bc->r, p);
}

static void flush_held(struct bconn *bc)
{
    struct pub *p = bc->held;
    bc->held = bc->held_tail = NULL;
    while (p) {
        struct pub *next = p->next;
        bc->r->held_bytes -= p->bytes;
        pub_go(bc, p);
        p = next;
    }
}

/* Confirms from the broker (publisher confirms on PUB_CH). */
static void on_confirm(struct bconn *bc, uint64_t tag, int multiple, int ok)
{
    int returned = bc->returned_next && !multiple;
    bc->returned_next = 0;
    struct pub **pp = &bc->unconf, *prev = NULL;
    while (*pp) {
        struct pub *p = *pp;
        if (p->seq > tag) break;
        if (!multiple && p->seq != tag) {
            prev = p;
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        if (bc->unconf_tail == p) bc->unconf_tail = prev;
        if (!ok)
            sess_fail(p->rs, "message rejected by the broker (nack)", rc_receipt(p->rc), 0);
        else if (returned)
            sess_fail(p->rs, "message could not be routed: no such queue", rc_receipt(p->rc), 0);
        else
            rq_done(p->rs, p->rc);
        pub_free(bc->r, p);
        if (!multiple) break;
    }
}

/* ---- passive exchange checks (channel RPC_CH) */

static void excheck_send(struct bconn *bc, struct excheck *x)
{
    if (bc->state != BC_OPEN) return;
    if (!bc->rpc_open) {
        struct chan *ch = chan_new(bc, RPC_CH);
        if (!ch) return;
        bc->rpc_open = 1;
    }
    struct chan *ch = bc->chans[RPC_CH];
    amqp_exchange_declare_t m = {0, B(x->name), B("topic"), 1, 0, 0, 0, 0, amqp_empty_table};
    if (bc_send(bc, RPC_CH, AMQP_EXCHANGE_DECLARE_METHOD, &m) == 0) {
        expect(ch, AMQP_EXCHANGE_DECLARE_OK_METHOD);
        x->sent = 1;
    }
}

static void excheck_start(struct bconn *bc, struct pub *p)
{
    struct excheck *x, **tail = &bc->checks;
    for (x = bc->checks; x; x = x->next) {
        tail = &x->next;
        if (!strcmp(x->name, p->route.exchange)) break;
    }
    if (!x) {
        if (!(x = calloc(1, sizeof *x))) {
            sess_fail(p->rs, "out of memory", rc_receipt(p->rc), SG_WS_CLOSE_INTERNAL);
            pub_free(bc->r, p);
            return;
        }
        snprintf(x->name, sizeof x->name, "%s", p->route.exchange);
        *tail = x;
        excheck_send(bc, x);
    }
    p->next = NULL;
    if (x->waiting_tail)
        x->waiting_tail->next = p;
    else
        x->waiting = p;
    x->waiting_tail = p;
}

/* The head check finished: ok publishes its waiting SENDs, else each gets
 * an ERROR naming the exchange. */
static void excheck_done(struct bconn *bc, int ok, const char *text)
{
    struct excheck *x = bc->checks;
    if (!x) return;
    bc->checks = x->next;
    if (ok) ex_learn(bc, x->name);
    struct pub *p = x->waiting;
    while (p) {
        struct pub *next = p->next;
        if (ok) {
            pub_go(bc, p);
        } else {
            snprintf(errbuf, sizeof errbuf, "%s", text);
            sess_fail(p->rs, errbuf, rc_receipt(p->rc), 0);
            pub_free(bc->r, p);
        }
        p = next;
    }
    free(x);
}

/* ---- subscriptions */

static void sub_setup(struct sub *s);
static void topic_setup(struct topic *t);

static amqp_table_t sub_args(struct sub *s, amqp_pool_t *pool)
{
    amqp_table_t t = amqp_empty_table;
    if (!s->args || !s->args->nh) return t;
    t.entries = amqp_pool_alloc(pool, s->args->nh * sizeof *t.entries);
    if (!t.entries) return amqp_empty_table;
    for (size_t i = 0; i < s->args->nh; i++) {
        const struct sg_stomp_header *h = &s->args->h[i];
        amqp_table_entry_t *e = &t.entries[t.num_entries++];
        e->key = amqp_cstring_bytes(h->key);
        /* integers go as longs (x-max-length, x-message-ttl, ...), the rest
         * as strings (x-queue-type, x-dead-letter-exchange, ...) */
        char *end;
        long long v = strtoll(h->value, &end, 10);
        if (h->value_len && !*end) {
            e->value.kind = AMQP_FIELD_KIND_I64;
            e->value.value.i64 = v;
        } else {
            e->value.kind = AMQP_FIELD_KIND_UTF8;
            e->value.value.bytes = amqp_cstring_bytes(h->value);
        }
    }
    return t;
}

static void sub_setup(struct sub *s)
{
    struct bconn *bc = s->rs->bc;
    struct sg_relay *r = bc->r;
    if (bc->state != BC_OPEN) return;
    s->ready = 0;
    if (s->temp) {
        /* on PUB_CH, so it is declared before a request naming it is published */
        struct chan *pc = bc->chans[PUB_CH];
        amqp_queue_declare_t d = {0, B(s->qname), 0, 0, 1, 1, 0, amqp_empty_table};
        amqp_basic_consume_t c = {0, B(s->qname), B(s->ctag), 0, 1, 1, 0, amqp_empty_table};
        if (bc_send(bc, PUB_CH, AMQP_QUEUE_DECLARE_METHOD, &d) == 0)
            expect(pc, AMQP_QUEUE_DECLARE_OK_METHOD);
        if (bc_send(bc, PUB_CH, AMQP_BASIC_CONSUME_METHOD, &c) == 0)
            expect(pc, AMQP_BASIC_CONSUME_OK_METHOD);
        s->ready = 1;
        return;
    }
    struct chan *ch = chan_new(bc, 0);
    if (!ch) {
        sess_fail(s->rs, "too many subscriptions on this broker connection", rc_receipt(s->rc),
                  SG_WS_CLOSE_TRY_AGAIN);
        return;
    }
    ch->sub = s;
    s->ch = ch;
    amqp_table_t args = sub_args(s, &r->pool);
    if (s->route.kind == SG_ROUTE_QUEUE) {
        amqp_queue_declare_t d = {0, B(s->qname), 0, s->durable, s->exclusive, s->auto_delete,
                                  0, args};
        if (bc_send(bc, ch->id, AMQP_QUEUE_DECLARE_METHOD, &d) == 0)
            expect(ch, AMQP_QUEUE_DECLARE_OK_METHOD);
    } else if (s->route.kind == SG_ROUTE_TOPIC || s->route.kind == SG_ROUTE_EXCHANGE) {
        amqp_queue_declare_t d = {0, B(s->qname), 0, s->durable, !s->durable, !s->durable, 0, args};
        amqp_queue_bind_t b = {0, B(s->qname),     B(s->route.exchange), B(s->route.routing_key),
                               0, amqp_empty_table};
        if (bc_send(bc, ch->id, AMQP_QUEUE_DECLARE_METHOD, &d) == 0)
            expect(ch, AMQP_QUEUE_DECLARE_OK_METHOD);
        if (bc_send(bc, ch->id, AMQP_QUEUE_BIND_METHOD, &b) == 0)
            expect(ch, AMQP_QUEUE_BIND_OK_METHOD);
    }
    empty_amqp_pool(&r->pool);
    amqp_basic_qos_t q = {0, s->prefetch, 0};
    if (bc_send(bc, ch->id, AMQP_BASIC_QOS_METHOD, &q) == 0) expect(ch, AMQP_BASIC_QOS_OK_METHOD);
    amqp_basic_consume_t c = {0, B(s->qname), B(s->ctag), 0, 0, 0, 0, amqp_empty_table};
    if (bc_send(bc, ch->id, AMQP_BASIC_CONSUME_METHOD, &c) == 0)
        expect(ch, AMQP_BASIC_CONSUME_OK_METHOD);
}

static void topic_setup(struct topic *t)
{
    struct bconn *bc = t->bc;
    if (bc->state != BC_OPEN) return;
    t->ready = 0;
    struct chan *ch = chan_new(bc, 0);
    if (!ch) {
        for (struct sub *s = t->subs; s; s = s->tnext)
            sess_fail(s->rs, "too many subscriptions on this broker connection", rc_receipt(s->rc),
                      SG_WS_CLOSE_TRY_AGAIN);
        return;
    }
    ch->topic = t;
    t->ch = ch;
    amqp_queue_declare_t d = {0, B(t->qname), 0, 0, 1, 1, 0, amqp_empty_table};
    amqp_queue_bind_t b = {0, B(t->qname), B(t->exchange), B(t->rkey), 0, amqp_empty_table};
    amqp_basic_consume_t c = {0, B(t->qname), B(t->qname), 0, 1, 1, 0, amqp_empty_table};
    if (bc_send(bc, ch->id, AMQP_QUEUE_DECLARE_METHOD, &d) == 0)
        expect(ch, AMQP_QUEUE_DECLARE_OK_METHOD);
    if (bc_send(bc, ch->id, AMQP_QUEUE_BIND_METHOD, &b) == 0) expect(ch, AMQP_QUEUE_BIND_OK_METHOD);
    if (bc_send(bc, ch->id, AMQP_BASIC_CONSUME_METHOD, &c) == 0)
        expect(ch, AMQP_BASIC_CONSUME_OK_METHOD);
}

static void sub_ready(struct sub *s)
{
    s->ready = 1;
    struct rcpt *e = s->rc;
    s->rc = NULL;
    rq_done(s->rs, e);
}

static void sub_free(struct sub *s)
{
    free(s->id);
    free(s->dest);
    free(s->tags);
    free(s->args);
    free(s);
}

static void topic_remove(struct topic *t, struct sub *s)
{
    struct sub **pp = &t->subs;
    while (*pp && *pp != s)
        pp = &(*pp)->tnext;
    if (*pp) *pp = s->tnext;
    s->topic = NULL;
    if (t->subs) return;
    /* last subscriber gone: cancel the upstream (the queue is auto-delete) */
    struct topic **tp = &t->bc->topics;
    while (*tp && *tp != t)
        tp = &(*tp)->next;
    if (*tp) *tp = t->next;
    if (t->ch) chan_close(t->ch);
    free(t);
}

static void sub_unlink(struct sub *s)
{
    struct bconn *bc = s->rs->bc;
    if (s->topic) {
        topic_remove(s->topic, s);
    } else if (s->temp) {
        if (bc->state == BC_OPEN && bc->chans[PUB_CH]) {
            amqp_basic_cancel_t m = {B(s->ctag), 0};
            if (bc_send(bc, PUB_CH, AMQP_BASIC_CANCEL_METHOD, &m) == 0)
                expect(bc->chans[PUB_CH], AMQP_BASIC_CANCEL_OK_METHOD);
        }
    } else if (s->ch) {
        /* closing the channel cancels the consumer and requeues unacked messages */
        chan_close(s->ch);
        s->ch = NULL;
    }
}

static struct sub *temp_ensure(struct rsess *rs, const char *name, const char **why)
{
    for (struct sub *s = rs->subs; s; s = s->next)
        if (s->temp && !strcmp(s->id, name)) return s;
    struct sub *s = calloc(1, sizeof *s);
    if (!s || !(s->id = strdup(name))) {
        free(s);
        *why = "out of memory";
        return NULL;
    }
    char dest[300];
    snprintf(dest, sizeof dest, "/temp-queue/%s", name);
    s->dest = strdup(dest);
    s->rs = rs;
    s->temp = 1;
    uuid_t u;
    char us[37];
    uuid_generate_random(u);
    uuid_unparse_lower(u, us);
    snprintf(s->qname, sizeof s->qname, "stomp-temp-queue-%s", us);
    snprintf(s->ctag, sizeof s->ctag, "sg-temp-%s", us);
    s->next = rs->subs;
    rs->subs = s;
    sub_setup(s);
    return s;
}

/* ---- deliveries */

static void add_hdr(struct sg_buf *b, int v, const char *k, const char *val)
{
    sg_stomp_encode_header(b, v, k, strlen(k), val, strlen(val));
}

static void msg_destination(const struct chan *ch, char *out, size_t cap)
{
    if (!ch->exch[0])
        snprintf(out, cap, "/queue/%s", ch->rkey);
    else if (!strcmp(ch->exch, "amq.topic"))
        snprintf(out, cap, "/topic/%s", ch->rkey);
    else
        snprintf(out, cap, "/exchange/%s/%s", ch->exch, ch->rkey);
}

/* Headers common to every subscriber, then the body and NUL, into out. */
static int encode_shared(struct bconn *bc, struct chan *ch, const char *dest, const char *mid,
                         int v, struct evbuffer *out)
{
    struct sg_buf *b = &bc->r->scratch;
    sg_buf_clear(b);
    add_hdr(b, v, "destination", dest);
    add_hdr(b, v, "message-id", mid);
    add_hdr(b, v, "redelivered", ch->redelivered ? "true" : "false");
    if (ch->props) sg_map_props_to_headers(ch->props, v, b);
    char cl[32];
    snprintf(cl, sizeof cl, "%zu", evbuffer_get_length(ch->body));
    add_hdr(b, v, "content-length", cl);
    if (sg_buf_append(b, "\n", 1) != SG_OK) return -1;
    evbuffer_add(out, b->data, b->len);
    return 0;
}

static int evbuf_utf8(struct evbuffer *e)
{
    size_t n = evbuffer_get_length(e);
    return sg_utf8_valid(evbuffer_pullup(e, (ssize_t)n), n);
}

static void deliver_private(struct bconn *bc, struct chan *ch, struct sub *s)
{
    struct rsess *rs = s->rs;
    struct sg_conn *c = rs->conn;
    if (!c || !sg_conn_open(c)) return; /* closing: the channel close requeues it */
    int v = sg_stomp_session_version(sg_conn_session(c));
    char mid[64], dest[600];
    snprintf(mid, sizeof mid, "%u.%u.%llu", bc->gen, ch->id, (unsigned long long)ch->tag);
    if (s->temp)
        snprintf(dest, sizeof dest, "%s", s->dest);
    else if (s->route.kind == SG_ROUTE_QUEUE || s->route.kind == SG_ROUTE_AMQ_QUEUE)
        snprintf(dest, sizeof dest, "%s", s->dest);
    else
        msg_destination(ch, dest, sizeof dest);
    struct evbuffer *sh = evbuffer_new();
    struct sg_buf *head = &bc->r->head;
    sg_buf_clear(head);
    sg_buf_append_str(head, "MESSAGE\n");
    add_hdr(head, v, "subscription", s->id);
    if (v >= 12 && s->ack != SG_ACK_AUTO) add_hdr(head, v, "ack", mid);
    encode_shared(bc, ch, dest, mid, v, sh);
    evbuffer_add_buffer(sh, ch->body);
    evbuffer_add(sh, "", 1);
    int text = sg_utf8_valid(head->data, head->len) && evbuf_utf8(sh);
    sg_conn_write_msg(c, head->data, head->len, sh, text);
    evbuffer_free(sh);

    if (s->temp) return; /* no_ack consumer */
    if (s->internal_ack) {
        /* ack:auto: acknowledge once written - unless the client is slow, then
         * hold the ack back so the prefetch window throttles the broker */
        if (sg_conn_outlen(c) < (size_t)bc->r->cfg->output_buffer_max / 2) {
            amqp_basic_ack_t a = {ch->tag, 1};
            bc_send(bc, ch->id, AMQP_BASIC_ACK_METHOD, &a);
            s->delayed_ack = 0;
        } else {
            s->delayed_ack = ch->tag;
        }
    } else {
        if (s->ntags == s->captags) {
            size_t cap = s->captags ? s->captags * 2 : 16;
            uint64_t *t = realloc(s->tags, cap * sizeof *t);
            if (!t) return;
            s->tags = t;
            s->captags = cap;
        }
        s->tags[s->ntags++] = ch->tag;
    }
}

static void deliver_topic(struct bconn *bc, struct chan *ch, struct topic *t)
{
    struct evbuffer *sh[3] = {NULL, NULL, NULL}; /* one encoding per STOMP version */
    int text[3] = {0, 0, 0};
    char mid[64], dest[600];
    struct victims slow = {0};
    snprintf(mid, sizeof mid, "%u.%u.%llu", bc->gen, ch->id, (unsigned long long)ch->tag);
    msg_destination(ch, dest, sizeof dest);
    for (struct sub *s = t->subs; s; s = s->tnext) {
        struct sg_conn *c = s->rs->conn;
        if (!c || !sg_conn_open(c)) continue;
        int v = sg_stomp_session_version(sg_conn_session(c));
        int vi = v >= 12 ? 2 : v == 11 ? 1 : 0;
        if (!sh[vi]) {
            sh[vi] = evbuffer_new();
            encode_shared(bc, ch, dest, mid, v, sh[vi]);
            /* encoded once; every subscriber's output references it (an
             * evbuffer holding references cannot itself be referenced, so
             * the body is copied in here, once per STOMP version) */
            size_t bl = evbuffer_get_length(ch->body);
            evbuffer_add(sh[vi], evbuffer_pullup(ch->body, (ssize_t)bl), bl);
            evbuffer_add(sh[vi], "", 1);
            text[vi] = evbuf_utf8(sh[vi]);
        }
        struct sg_buf *hb = &bc->r->head;
        sg_buf_clear(hb);
        sg_buf_append_str(hb, "MESSAGE\n");
        add_hdr(hb, v, "subscription", s->id);
        sg_conn_write_msg(c, hb->data, hb->len, sh[vi],
                          text[vi] && sg_utf8_valid(hb->data, hb->len));
        if (sg_conn_outlen(c) > (size_t)bc->r->cfg->output_buffer_max) victims_add(&slow, s->rs);
    }
    for (int i = 0; i < 3; i++)
        if (sh[i]) evbuffer_free(sh[i]);
    /* slow consumers are dropped after the loop: ending a session edits the
     * subscriber list we were walking */
    atomic_fetch_add_explicit(&bc->r->w->srv->m.slow_consumers, (long)slow.n, memory_order_relaxed);
    victims_fail(&slow, "slow consumer: output buffer limit exceeded", SG_WS_CLOSE_POLICY);
}

static struct sub *temp_by_ctag(struct bconn *bc, const char *ctag)
{
    for (struct rsess *rs = bc->sessions; rs; rs = rs->next)
        for (struct sub *s = rs->subs; s; s = s->next)
            if (s->temp && !strcmp(s->ctag, ctag)) return s;
    return NULL;
}

static void delivery_complete(struct bconn *bc, struct chan *ch)
{
    if (ch->asm_return) {
        /* the content of a basic.return: the next confirm belongs to it */
        bc->returned_next = 1;
    } else if (ch->id == PUB_CH) {
        struct sub *s = temp_by_ctag(bc, ch->ctag);
        if (s) deliver_private(bc, ch, s);
    } else if (!ch->closing && ch->sub) {
        deliver_private(bc, ch, ch->sub);
    } else if (!ch->closing && ch->topic) {
        deliver_topic(bc, ch, ch->topic);
    }
    ch->asm_state = 0;
    ch->asm_return = 0;
    ch->props = NULL;
    evbuffer_drain(ch->body, evbuffer_get_length(ch->body));
}

/* ---- frames from the broker */

static void on_channel_closed(struct bconn *bc, struct chan *ch, amqp_channel_close_t *m)
{
    amqp_channel_close_ok_t ok = {0};
    char text[256];
    snprintf(text, sizeof text, "%.*s", (int)(m->reply_text.len < 255 ? m->reply_text.len : 255),
             (const char *)m->reply_text.bytes);
    sg_log(SG_LOG_INFO, "broker closed channel %u (user %s): %s", ch->id, bc->login, text);
    bc_send(bc, ch->id, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    if (ch->id == PUB_CH) {
        /* should not happen (exchanges are checked first); start over */
        bc_fail(bc, text);
        return;
    }
    if (ch->id == RPC_CH) {
        bc->rpc_open = 0;
        chan_free(ch);
        excheck_done(bc, 0, text);
        for (struct excheck *x = bc->checks; x; x = x->next)
            x->sent = 0;
        if (bc->checks) excheck_send(bc, bc->checks);
        for (struct excheck *x = bc->checks ? bc->checks->next : NULL; x; x = x->next)
            excheck_send(bc, x);
        return;
    }
    struct sub *s = ch->sub;
    struct topic *t = ch->topic;
    chan_free(ch);
    if (s) {
        snprintf(errbuf, sizeof errbuf, "subscription to %.200s failed: %s", s->dest, text);
        sess_fail(s->rs, errbuf, rc_receipt(s->rc), 0);
    } else if (t) {
        char msg[512];
        snprintf(msg, sizeof msg, "subscription to /exchange/%.200s failed: %s", t->exchange, text);
        fail_topic(t, msg);
    }
}

static void on_method(struct bconn *bc, uint16_t chid, amqp_method_t *m)
{
    if (chid == 0) {
        switch (m->id) {
        case AMQP_CONNECTION_CLOSE_METHOD: {
            amqp_connection_close_t *cm = m->decoded;
            char why[200];
            snprintf(why, sizeof why, "broker closed the connection: %.*s", (int)cm->reply_text.len,
                     (const char *)cm->reply_text.bytes);
            amqp_connection_close_ok_t ok = {0};
            amqp_send_method(bc->amqp, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
            bc_fail(bc, why);
            break;
        }
        case AMQP_CONNECTION_BLOCKED_METHOD:
            sg_log(SG_LOG_WARN, "broker blocked publishing (user %s): holding SENDs", bc->login);
            bc->blocked = 1;
            for (struct rsess *rs = bc->sessions; rs; rs = rs->next)
                if (rs->conn) sg_conn_pause_read(rs->conn, 1);
            break;
        case AMQP_CONNECTION_UNBLOCKED_METHOD:
            sg_log(SG_LOG_INFO, "broker unblocked publishing (user %s)", bc->login);
            bc->blocked = 0;
            for (struct rsess *rs = bc->sessions; rs; rs = rs->next)
                if (rs->conn) sg_conn_pause_read(rs->conn, 0);
            flush_held(bc);
            break;
        }
        return;
    }
    struct chan *ch = chid <= bc->chan_max ? bc->chans[chid] : NULL;
    if (!ch) return;
    switch (m->id) {
    case AMQP_BASIC_DELIVER_METHOD: {
        amqp_basic_deliver_t *d = m->decoded;
        ch->asm_state = 1;
        ch->asm_return = 0;
        ch->tag = d->delivery_tag;
        ch->redelivered = d->redelivered;
        copy_bytes(ch->exch, sizeof ch->exch, d->exchange);
        copy_bytes(ch->rkey, sizeof ch->rkey, d->routing_key);
        copy_bytes(ch->ctag, sizeof ch->ctag, d->consumer_tag);
        return;
    }
    case AMQP_BASIC_RETURN_METHOD:
        ch->asm_state = 1;
        ch->asm_return = 1;
        return;
    case AMQP_BASIC_ACK_METHOD: {
        amqp_basic_ack_t *a = m->decoded;
        if (chid == PUB_CH) on_confirm(bc, a->delivery_tag, a->multiple, 1);
        return;
    }
    case AMQP_BASIC_NACK_METHOD: {
        amqp_basic_nack_t *n = m->decoded;
        if (chid == PUB_CH) on_confirm(bc, n->delivery_tag, n->multiple, 0);
        return;
    }
    case AMQP_CHANNEL_CLOSE_METHOD:
        on_channel_closed(bc, ch, m->decoded);
        return;
    case AMQP_BASIC_CANCEL_METHOD: {
        /* the broker cancelled a consumer (queue deleted, node down) */
        struct sub *s = ch->sub;
        if (s) {
            snprintf(errbuf, sizeof errbuf, "subscription to %.300s was cancelled by the broker",
                     s->dest);
            sess_fail(s->rs, errbuf, NULL, 0);
        } else if (ch->topic) {
            fail_topic(ch->topic, "subscription was cancelled by the broker");
        }
        return;
    }
    }
    /* replies to what we sent, in order */
    if (ch->nexp && ch->expect[0] == m->id) {
        memmove(ch->expect, ch->expect + 1, (size_t)--ch->nexp * sizeof ch->expect[0]);
    } else {
        sg_log(SG_LOG_DEBUG, "unexpected method 0x%08x on channel %u", m->id, chid);
    }
    switch (m->id) {
    case AMQP_CHANNEL_CLOSE_OK_METHOD:
        chan_free(ch);
        return;
    case AMQP_BASIC_CONSUME_OK_METHOD:
        if (ch->sub) sub_ready(ch->sub);
        if (ch->topic) {
            ch->topic->ready = 1;
            for (struct sub *s = ch->topic->subs; s; s = s->tnext)
                if (s->rc) sub_ready(s);
        }
        return;
    case AMQP_EXCHANGE_DECLARE_OK_METHOD:
        if (chid == RPC_CH) excheck_done(bc, 1, NULL);
        return;
    }
}

static void on_frame(struct bconn *bc, amqp_frame_t *f)
{
    if (f->frame_type == AMQP_FRAME_METHOD) {
        on_method(bc, f->channel, &f->payload.method);
        return;
    }
    struct chan *ch = f->channel <= bc->chan_max ? bc->chans[f->channel] : NULL;
    if (!ch) return;
    if (f->frame_type == AMQP_FRAME_HEADER && ch->asm_state == 1) {
        ch->props = f->payload.properties.decoded;
        ch->body_size = f->payload.properties.body_size;
        ch->asm_state = 2;
        if (ch->body_size == 0) delivery_complete(bc, ch);
    } else if (f->frame_type == AMQP_FRAME_BODY && ch->asm_state == 2) {
        evbuffer_add(ch->body, f->payload.body_fragment.bytes, f->payload.body_fragment.len);
        if (evbuffer_get_length(ch->body) >= ch->body_size) delivery_complete(bc, ch);
    }
}

/* ---- connection lifecycle */

static void bc_connect(struct bconn *bc);
static void bc_lost(struct bconn *bc);

static void bc_fail(struct bconn *bc, const char *why)
{
    if (bc->state != BC_OPEN) return;
    bc->state = BC_FAILING;
    snprintf(bc->fail_reason, sizeof bc->fail_reason, "%.199s", why);
    event_active(bc->drain_ev, 0, 0);
}

static void bc_drain_frames(struct bconn *bc)
{
    for (int i = 0; i < DRAIN_BATCH && bc->state == BC_OPEN; i++) {
        amqp_frame_t f;
        struct timeval tv = {0, 0};
        int st = amqp_simple_wait_frame_noblock(bc->amqp, &f, &tv);
        if (st == AMQP_STATUS_TIMEOUT) return;
        if (st != AMQP_STATUS_OK) {
            bc_fail(bc, amqp_error_string2(st));
            break;
        }
        on_frame(bc, &f);
        if (f.frame_type == AMQP_FRAME_METHOD || f.frame_type == AMQP_FRAME_BODY) {
            struct chan *ch = f.channel <= bc->chan_max ? bc->chans[f.channel] : NULL;
            if (!ch || ch->asm_state == 0)
                amqp_maybe_release_buffers_on_channel(bc->amqp, f.channel);
        }
    }
    if (bc->state == BC_FAILING) {
        bc_lost(bc);
        return;
    }
    event_active(bc->drain_ev, 0, 0); /* more to do: yield to other events first */
}

/* Frames first, then one write per connection for everything they produced. */
static void bc_drain(struct bconn *bc)
{
    struct sg_worker *w = bc->r->w;
    bc_drain_frames(bc);
    sg_conn_flush_pending(w);
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    bc_drain(arg);
}

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bconn *bc = arg;
    if (bc->state == BC_FAILING)
        bc_lost(bc);
    else if (bc->state == BC_OPEN)
        bc_drain(bc);
}

static void tick(struct bconn *bc)
{
    /* rabbitmq-c sends heartbeats and notices a silent broker only when it
     * is called: poke it every second */
    if (bc->state == BC_OPEN) bc_drain(bc);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bconn *bc = arg;
    if (bc->state == BC_DOWN) {
        bc_connect(bc);
    } else if (bc->state == BC_OPEN || bc->state == BC_FAILING) {
        tick(bc);
        struct timeval tv = {1, 0};
        if (bc->state == BC_OPEN) event_add(bc->retry, &tv);
    }
}

static void bc_schedule_retry(struct bconn *bc)
{
    struct sg_relay *r = bc->r;
    if (r->shutting_down) return;
    unsigned ms = jitter(r, bc->backoff_ms);
    bc->backoff_ms = bc->backoff_ms * 2 > (unsigned)r->cfg->reconnect_max_ms
                         ? (unsigned)r->cfg->reconnect_max_ms
                         : bc->backoff_ms * 2;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(bc->retry, &tv);
}

static void bc_up(struct bconn *bc, amqp_connection_state_t amqp)
{
    struct sg_relay *r = bc->r;
    bc->amqp = amqp;
    bc->chan_max = amqp_get_channel_max(amqp);
    if (bc->chan_max <= 0 || bc->chan_max > 65535) bc->chan_max = 65535;
    if (bc->chan_max > 4096) bc->chan_max = 4096;
    bc->chans = calloc((size_t)bc->chan_max + 1, sizeof *bc->chans);
    bc->next_chan = FIRST_SUB_CH;
    bc->state = BC_OPEN;
    bc->gen++;
    bc->blocked = 0;
    bc->returned_next = 0;
    bc->rpc_open = 0;
    bc->rev = event_new(r->w->base, amqp_get_sockfd(amqp), EV_READ | EV_PERSIST, read_cb, bc);
    event_add(bc->rev, NULL);
    struct timeval tv = {1, 0};
    event_add(bc->retry, &tv);
    uint64_t now = sg_now_ms();
    if (bc->ever_up)
        sg_log(SG_LOG_WARN,
               "broker connection (worker %d, user %s, vhost %s%s) re-established after %llu ms",
               r->w->id, bc->login, bc->vhost, bc->service ? ", service" : "",
               (unsigned long long)(now - bc->down_since));
    else
        sg_log(SG_LOG_INFO, "broker connection (worker %d, user %s, vhost %s%s) up", r->w->id,
               bc->login, bc->vhost, bc->service ? ", service" : "");
    bc->ever_up = 1;
    bc->backoff_ms = 100;
    struct chan *pc = chan_new(bc, PUB_CH);
    amqp_confirm_select_t cs = {0};
    if (pc && bc_send(bc, PUB_CH, AMQP_CONFIRM_SELECT_METHOD, &cs) == 0)
        expect(pc, AMQP_CONFIRM_SELECT_OK_METHOD);
    bc->next_seq = 1;
    for (struct topic *t = bc->topics; t; t = t->next)
        topic_setup(t);
    for (struct rsess *rs = bc->sessions; rs; rs = rs->next)
        for (struct sub *s = rs->subs; s; s = s->next)
            if (!s->topic) sub_setup(s);
    for (struct excheck *x = bc->checks; x; x = x->next)
        excheck_send(bc, x);
    flush_held(bc);
}

static void bc_lost(struct bconn *bc)
{
    if (bc->state != BC_OPEN && bc->state != BC_FAILING) return;
    sg_log(SG_LOG_WARN, "broker connection (worker %d, user %s, vhost %s%s) lost: %s; reconnecting",
           bc->r->w->id, bc->login, bc->vhost, bc->service ? ", service" : "",
           bc->fail_reason[0] ? bc->fail_reason : "closed");
    bc->fail_reason[0] = 0;
    event_free(bc->rev);
    bc->rev = NULL;
    event_del(bc->retry);
    amqp_destroy_connection(bc->amqp);
    bc->amqp = NULL;
    for (int i = 0; i <= bc->chan_max; i++)
        if (bc->chans[i]) chan_free(bc->chans[i]);
    free(bc->chans);
    bc->chans = NULL;
    bc->chan_max = 0;
    for (struct topic *t = bc->topics; t; t = t->next)
        t->ready = 0;
    for (struct rsess *rs = bc->sessions; rs; rs = rs->next) {
        if (bc->blocked && rs->conn) sg_conn_pause_read(rs->conn, 0);
        for (struct sub *s = rs->subs; s; s = s->next) {
            s->ready = 0;
            s->ntags = 0; /* unacked messages come back redelivered */
            s->delayed_ack = 0;
        }
    }
    bc->blocked = 0;
    /* SENDs the broker never confirmed go out again after the reconnect;
     * they are the ones whose RECEIPT is still owed */
    struct pub *p = bc->unconf;
    bc->unconf = bc->unconf_tail = NULL;
    struct pub *old_held = bc->held;
    struct pub *old_tail = bc->held_tail;
    bc->held = bc->held_tail = NULL;
    while (p) {
        struct pub *next = p->next;
        p->held_at = 0;
        hold(bc, p);
        p = next;
    }
    if (old_held) {
        if (bc->held_tail)
            bc->held_tail->next = old_held;
        else
            bc->held = old_held;
        bc->held_tail = old_tail;
    }
    for (struct excheck *x = bc->checks; x; x = x->next)
        x->sent = 0;
    bc->state = BC_DOWN;
    bc->down_since = sg_now_ms();
    bc_schedule_retry(bc);
}

static void connect_done(struct sg_auth_req *req)
{
    struct bconn *bc = req->conn;
    if (!bc) {
        if (req->amqp_conn) amqp_destroy_connection(req->amqp_conn);
        return;
    }
    bc->connecting = NULL;
    if (req->ok && req->amqp_conn) {
        bc_up(bc, req->amqp_conn);
        return;
    }
    bc->state = BC_DOWN;
    if (!bc->down_since) bc->down_since = sg_now_ms();
    if (!req->ok && !req->broker_down && !bc->service) {
        /* the broker now refuses this user (password changed, user deleted) */
        sg_log(SG_LOG_WARN, "broker refuses user %s now: %s", bc->login, req->reason);
        struct victims v = {0};
        for (struct rsess *rs = bc->sessions; rs; rs = rs->next)
            victims_add(&v, rs);
        victims_fail(&v, "access refused", SG_WS_CLOSE_POLICY);
    } else if (bc->service && !req->ok && !req->broker_down) {
        sg_log(SG_LOG_WARN, "broker refuses the bridge's own user %s (broker_user): %s", bc->login,
               req->reason);
    } else {
        sg_log(SG_LOG_DEBUG, "broker connect for user %s failed: %s", bc->login, req->reason);
    }
    bc_schedule_retry(bc);
}

static void bc_connect(struct bconn *bc)
{
    struct sg_relay *r = bc->r;
    if (bc->state != BC_DOWN || bc->connecting || r->shutting_down) return;
    struct sg_auth_req *req = calloc(1, sizeof *req);
    if (!req) {
        bc_schedule_retry(bc);
        return;
    }
    req->w = r->w;
    req->conn = bc;
    req->done = connect_done;
    req->keep_conn = 1;
    snprintf(req->login, sizeof req->login, "%s", bc->login);
    snprintf(req->passcode, sizeof req->passcode, "%s", bc->passcode);
    snprintf(req->vhost, sizeof req->vhost, "%s", bc->vhost);
    bc->state = BC_CONNECTING;
    bc->connecting = req;
    sg_auth_submit(r->w->srv->auth, req);
}

static struct bconn *bc_get(struct sg_relay *r, const char *login, const char *passcode,
                            const char *vhost, int service)
{
    for (struct bconn *bc = r->conns; bc; bc = bc->next)
        if (!bc->service == !service && !strcmp(bc->login, login) && !strcmp(bc->vhost, vhost)) {
            /* the newest accepted passcode is the one to log in again with */
            snprintf(bc->passcode, sizeof bc->passcode, "%s", passcode);
            return bc;
        }
    struct bconn *bc = calloc(1, sizeof *bc);
    if (!bc) return NULL;
    bc->r = r;
    bc->service = service;
    snprintf(bc->login, sizeof bc->login, "%s", login);
    snprintf(bc->passcode, sizeof bc->passcode, "%s", passcode);
    snprintf(bc->vhost, sizeof bc->vhost, "%s", vhost);
    bc->backoff_ms = 100;
    bc->retry = evtimer_new(r->w->base, retry_cb, bc);
    bc->drain_ev = event_new(r->w->base, -1, 0, drain_cb, bc);
    bc->next = r->conns;
    r->conns = bc;
    bc->state = BC_DOWN;
    bc_connect(bc);
    return bc;
}

static void bc_free(struct bconn *bc)
{
    if (bc->connecting) bc->connecting->conn = NULL;
    if (bc->amqp) {
        amqp_connection_close_t m = {AMQP_REPLY_SUCCESS, B("shutting down"), 0, 0};
        amqp_send_method(bc->amqp, 0, AMQP_CONNECTION_CLOSE_METHOD, &m);
        amqp_destroy_connection(bc->amqp);
    }
    if (bc->chans)
        for (int i = 0; i <= bc->chan_max; i++)
            if (bc->chans[i]) chan_free(bc->chans[i]);
    free(bc->chans);
    struct pub *lists[2] = {bc->unconf, bc->held};
    for (int k = 0; k < 2; k++)
        for (struct pub *p = lists[k], *n; p; p = n) {
            n = p->next;
            pub_free(bc->r, p);
        }
    while (bc->checks) {
        struct excheck *x = bc->checks;
        bc->checks = x->next;
        for (struct pub *p = x->waiting, *n; p; p = n) {
            n = p->next;
            pub_free(bc->r, p);
        }
        free(x);
    }
    while (bc->topics) {
        struct topic *t = bc->topics;
        bc->topics = t->next;
        free(t);
    }
    if (bc->rev) event_free(bc->rev);
    event_free(bc->retry);
    event_free(bc->drain_ev);
    OPENSSL_cleanse(bc->passcode, sizeof bc->passcode);
    free(bc);
}

/* Held SENDs that waited too long get their ERROR. */
static void hold_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_relay *r = arg;
    uint64_t now = sg_now_ms();
    for (struct bconn *bc = r->conns; bc; bc = bc->next) {
        while (bc->held && now - bc->held->held_at >= (uint64_t)r->cfg->hold_ms) {
            struct pub *p = bc->held;
            bc->held = p->next;
            if (!bc->held) bc->held_tail = NULL;
            r->held_bytes -= p->bytes;
            sess_fail(p->rs, "broker unavailable", rc_receipt(p->rc), SG_WS_CLOSE_TRY_AGAIN);
            pub_free(r, p);
        }
    }
}

/* ---- public API */

struct sg_relay *sg_relay_new(struct sg_worker *w)
{
    struct sg_relay *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->w = w;
    r->cfg = w->srv->cfg;
    r->rng = (unsigned)sg_now_ms() ^ (unsigned)(w->id * 2654435761u);
    sg_buf_init(&r->scratch, 0);
    sg_buf_init(&r->head, 0);
    init_amqp_pool(&r->pool, 4096);
    r->hold_timer = event_new(w->base, -1, EV_PERSIST, hold_timer_cb, r);
    struct timeval tv = {0, 250000};
    event_add(r->hold_timer, &tv);
    r->service = bc_get(r, r->cfg->broker_user, r->cfg->broker_password, r->cfg->broker_vhost, 1);
    return r;
}

void sg_relay_shutdown(struct sg_relay *r)
{
    if (!r) return;
    r->shutting_down = 1;
    for (struct bconn *bc = r->conns; bc; bc = bc->next)
        event_del(bc->retry);
    event_del(r->hold_timer);
}

void sg_relay_free(struct sg_relay *r)
{
    if (!r) return;
    while (r->conns) {
        struct bconn *bc = r->conns;
        r->conns = bc->next;
        bc_free(bc);
    }
    event_free(r->hold_timer);
    sg_buf_reset(&r->scratch);
    sg_buf_reset(&r->head);
    empty_amqp_pool(&r->pool);
    free(r);
}

int sg_relay_ready(const struct sg_relay *r)
{
    return r && r->service && r->service->state == BC_OPEN;
}

int sg_relay_attach(struct sg_relay *r, struct sg_conn *c, const char *login, const char *passcode,
                    const char *vhost)
{
    struct rsess *rs = calloc(1, sizeof *rs);
    if (!rs) return SG_ENOMEM;
    rs->bc = bc_get(r, login, passcode, vhost, 0);
    if (!rs->bc) {
        free(rs);
        return SG_ENOMEM;
    }
    rs->conn = c;
    rs->next = rs->bc->sessions;
    rs->bc->sessions = rs;
    sg_conn_set_relay_data(c, rs);
    return SG_OK;
}

void sg_relay_conn_gone(struct sg_relay *r, struct sg_conn *c)
{
    struct rsess *rs = sg_conn_relay_data(c);
    if (!rs) return;
    sg_conn_set_relay_data(c, NULL);
    struct bconn *bc = rs->bc;
    while (rs->subs) {
        struct sub *s = rs->subs;
        rs->subs = s->next;
        sub_unlink(s);
        sub_free(s);
    }
    /* SENDs still on their way are published anyway; nobody gets a RECEIPT */
    struct pub *lists[2] = {bc->unconf, bc->held};
    for (int k = 0; k < 2; k++)
        for (struct pub *p = lists[k]; p; p = p->next)
            if (p->rs == rs) p->rs = NULL, p->rc = NULL;
    for (struct excheck *x = bc->checks; x; x = x->next)
        for (struct pub *p = x->waiting; p; p = p->next)
            if (p->rs == rs) p->rs = NULL, p->rc = NULL;
    while (rs->rq) {
        struct rcpt *e = rs->rq;
        rs->rq = e->next;
        free(e->receipt);
        free(e);
    }
    struct rsess **pp = &bc->sessions;
    while (*pp && *pp != rs)
        pp = &(*pp)->next;
    if (*pp) *pp = rs->next;
    free(rs);
}

void sg_relay_conn_drained(struct sg_relay *r, struct sg_conn *c)
{
    struct rsess *rs = sg_conn_relay_data(c);
    if (!rs || rs->bc->state != BC_OPEN) return;
    for (struct sub *s = rs->subs; s; s = s->next) {
        if (s->delayed_ack && s->ch) {
            amqp_basic_ack_t a = {s->delayed_ack, 1};
            bc_send(rs->bc, s->ch->id, AMQP_BASIC_ACK_METHOD, &a);
            s->delayed_ack = 0;
        }
    }
}

static int parse_bool(const struct sg_stomp_frame *f, const char *key, int def)
{
    const struct sg_stomp_header *h = sg_stomp_header(f, key);
    if (!h) return def;
    return h->value_len == 4 && !memcmp(h->value, "true", 4);
}

static int do_subscribe(struct sg_relay *r, struct rsess *rs, const struct sg_action *a,
                        const char **errmsg)
{
    struct sub *s = calloc(1, sizeof *s);
    const char *why = NULL;
    if (!s) goto nomem;
    if (sg_route_parse(a->destination, SG_ROUTE_FOR_SUBSCRIBE, &s->route, &why) != SG_OK) {
        snprintf(errbuf, sizeof errbuf, "invalid destination %.300s: %s", a->destination, why);
        *errmsg = errbuf;
        free(s);
        return SG_EDEST;
    }
    s->rs = rs;
    s->id = strdup(a->sub_id);
    s->dest = strdup(a->destination);
    if (!s->id || !s->dest) goto nomem;
    s->ack = a->ack_mode;
    const struct sg_stomp_header *pf = sg_stomp_header(a->frame, "prefetch-count");
    long prefetch = r->cfg->prefetch;
    if (pf) {
        char tmp[16];
        snprintf(tmp, sizeof tmp, "%.*s", (int)(pf->value_len < 15 ? pf->value_len : 15),
                 pf->value);
        char *end;
        prefetch = strtol(tmp, &end, 10);
        if (*end || prefetch < 0 || prefetch > 65535) {
            *errmsg = "invalid prefetch-count header";
            sub_free(s);
            return SG_ESTOMP;
        }
    }
    s->prefetch = (uint16_t)prefetch;
    /* x-* headers become queue arguments (x-queue-type, x-max-length, ...) */
    struct sg_stomp_frame *xf = &tl_frame;
    xf->num_headers = 0;
    xf->body_len = 0;
    for (size_t i = 0; i < a->frame->num_headers && xf->num_headers < 32; i++) {
        const struct sg_stomp_header *h = &a->frame->headers[i];
        if (h->key_len > 2 && !memcmp(h->key, "x-", 2)) xf->headers[xf->num_headers++] = *h;
    }
    if (xf->num_headers) {
        size_t bytes;
        if (!(s->args = fcopy_new(xf, &bytes))) goto nomem;
    }
    s->durable = parse_bool(a->frame, "durable", s->route.kind == SG_ROUTE_QUEUE) ||
                 (s->route.shared && parse_bool(a->frame, "persistent", 0));
    s->auto_delete = parse_bool(a->frame, "auto-delete", 0);
    s->exclusive = parse_bool(a->frame, "exclusive", 0);
    char *receipt = NULL;
    if (a->receipt && !(receipt = strdup(a->receipt))) goto nomem;
    struct bconn *bc = rs->bc;

    if (s->route.shared && s->ack == SG_ACK_AUTO && !s->durable) {
        /* shared upstream: one queue and consumer per binding per worker */
        struct topic *t;
        for (t = bc->topics; t; t = t->next)
            if (!strcmp(t->exchange, s->route.exchange) && !strcmp(t->rkey, s->route.routing_key))
                break;
        int ready_now = t && t->ready && !rs->rq;
        if (!ready_now && !(s->rc = rq_add(rs, receipt))) goto nomem_noreceipt;
        if (t && t->ready && s->rc) s->rc->done = 1; /* sent when the ones before are */
        if (ready_now) free(receipt);                /* the session sends it */
        if (!t) {
            if (!(t = calloc(1, sizeof *t))) goto nomem;
            t->bc = bc;
            snprintf(t->exchange, sizeof t->exchange, "%s", s->route.exchange);
            snprintf(t->rkey, sizeof t->rkey, "%s", s->route.routing_key);
            uuid_t u;
            char us[37];
            uuid_generate_random(u);
            uuid_unparse_lower(u, us);
            snprintf(t->qname, sizeof t->qname, "stompgate-%s", us);
            t->next = bc->topics;
            bc->topics = t;
            topic_setup(t);
        }
        s->topic = t;
        s->tnext = t->subs;
        t->subs = s;
        s->next = rs->subs;
        rs->subs = s;
        if (t->ready) {
            s->ready = 1;
            s->rc = NULL; /* done already, or now queued behind earlier receipts */
            return ready_now ? SG_OK : SG_AGAIN;
        }
        return SG_AGAIN;
    }
    /* a private queue and channel: ACKs map 1:1, prefetch throttles */
    if (s->route.kind == SG_ROUTE_QUEUE || s->route.kind == SG_ROUTE_AMQ_QUEUE) {
        snprintf(s->qname, sizeof s->qname, "%s", s->route.queue);
    } else if (s->durable) {
        /* durable topic subscription: a named queue that outlives the session */
        snprintf(s->qname, sizeof s->qname, "stomp-subscription-%.200s", s->id);
    } else {
        uuid_t u;
        char us[37];
        uuid_generate_random(u);
        uuid_unparse_lower(u, us);
        snprintf(s->qname, sizeof s->qname, "stompgate-%s", us);
    }
    s->internal_ack = s->ack == SG_ACK_AUTO;
    snprintf(s->ctag, sizeof s->ctag, "sg-%llu", (unsigned long long)++r->next_qid);
    if (!(s->rc = rq_add(rs, receipt))) goto nomem_noreceipt;
    s->next = rs->subs;
    rs->subs = s;
    sub_setup(s);
    return SG_AGAIN;
nomem:
nomem_noreceipt: /* the receipt copy, if any, was taken (or freed) by rq_add */
    if (s) sub_free(s);
    *errmsg = "out of memory";
    return SG_ENOMEM;
}

static int do_unsubscribe(struct rsess *rs, const struct sg_action *a, const char **errmsg)
{
    struct sub **pp = &rs->subs;
    while (*pp && ((*pp)->temp || strcmp((*pp)->id, a->sub_id) != 0))
        pp = &(*pp)->next;
    if (!*pp) {
        *errmsg = "no such subscription";
        return SG_ESTATE;
    }
    struct sub *s = *pp;
    *pp = s->next;
    struct rcpt *e = s->rc;
    sub_unlink(s);
    sub_free(s);
    rq_done(rs, e); /* a SUBSCRIBE undone before it was ready no longer holds receipts back */
    return SG_OK;
}

static int do_send(struct sg_relay *r, struct rsess *rs, const struct sg_action *a,
                   const char **errmsg)
{
    struct bconn *bc = rs->bc;
    struct sg_route rt;
    const char *why = NULL;
    if (sg_route_parse(a->destination, SG_ROUTE_FOR_SEND, &rt, &why) != SG_OK) {
        snprintf(errbuf, sizeof errbuf, "invalid destination %.300s: %s", a->destination, why);
        *errmsg = errbuf;
        return SG_EDEST;
    }
    int direct = bc->state == BC_OPEN && !bc->blocked && ex_known(bc, rt.exchange) && !bc->held;
    if (direct && !a->receipt) {
        /* fire and forget: no copy */
        if (publish_frame(bc, rs, a->frame, &rt, NULL, &why) == 0) return SG_OK;
        if (bc->state == BC_OPEN) {
            *errmsg = why;
            return SG_ESTOMP;
        }
    }
    if (r->held_bytes >= (size_t)r->cfg->hold_bytes && bc->state != BC_OPEN) {
        *errmsg = "broker unavailable";
        return SG_EBROKER;
    }
    struct pub *p = calloc(1, sizeof *p);
    if (!p || !(p->fc = fcopy_new(a->frame, &p->bytes))) {
        if (p) pub_free(r, p);
        *errmsg = "out of memory";
        return SG_ENOMEM;
    }
    if (a->receipt) {
        char *copy = strdup(a->receipt);
        p->confirm = 1;
        if (!copy || !(p->rc = rq_add(rs, copy))) {
            pub_free(r, p);
            *errmsg = "out of memory";
            return SG_ENOMEM;
        }
    }
    p->rs = rs;
    p->route = rt;
    pub_go(bc, p);
    return a->receipt ? SG_AGAIN : SG_OK;
}

static int do_ack(struct sg_relay *r, struct rsess *rs, const struct sg_action *a, int nack,
                  const char **errmsg)
{
    struct bconn *bc = rs->bc;
    unsigned gen, chid;
    unsigned long long tag;
    int n = 0;
    if (!a->ack_id || sscanf(a->ack_id, "%u.%u.%llu%n", &gen, &chid, &tag, &n) != 3 ||
        a->ack_id[n]) {
        *errmsg = "unknown ack id";
        return SG_ESTOMP;
    }
    if (gen != bc->gen || bc->state != BC_OPEN) {
        /* from before a broker reconnect: the broker has requeued that
         * message already and will deliver it again (redelivered:true) */
        return SG_OK;
    }
    struct sub *s;
    for (s = rs->subs; s; s = s->next)
        if (s->ch && s->ch->id == chid && !s->internal_ack && !s->temp) break;
    if (!s) {
        *errmsg = "unknown ack id";
        return SG_ESTOMP;
    }
    size_t i = 0;
    while (i < s->ntags && s->tags[i] < tag)
        i++;
    if (i == s->ntags || s->tags[i] != tag) {
        *errmsg = "unknown ack id";
        return SG_ESTOMP;
    }
    int multiple = s->ack == SG_ACK_CLIENT; /* client mode is cumulative per subscription */
    if (multiple) {
        memmove(s->tags, s->tags + i + 1, (s->ntags - i - 1) * sizeof *s->tags);
        s->ntags -= i + 1;
    } else {
        memmove(s->tags + i, s->tags + i + 1, (s->ntags - i - 1) * sizeof *s->tags);
        s->ntags--;
    }
    if (nack) {
        amqp_basic_nack_t m = {tag, multiple, r->cfg->nack_requeue};
        bc_send(bc, s->ch->id, AMQP_BASIC_NACK_METHOD, &m);
    } else {
        amqp_basic_ack_t m = {tag, multiple};
        bc_send(bc, s->ch->id, AMQP_BASIC_ACK_METHOD, &m);
    }
    return SG_OK;
}

int sg_relay_action(struct sg_relay *r, struct sg_conn *c, const struct sg_action *a,
                    const char **errmsg)
{
    struct rsess *rs = sg_conn_relay_data(c);
    if (!rs) {
        *errmsg = "not connected to the broker";
        return SG_EBROKER;
    }
    int rc = SG_EPROTO;
    *errmsg = "unsupported action";
    switch (a->type) {
    case SG_ACT_SUBSCRIBE:
        rc = do_subscribe(r, rs, a, errmsg);
        break;
    case SG_ACT_UNSUBSCRIBE:
        rc = do_unsubscribe(rs, a, errmsg);
        break;
    case SG_ACT_SEND:
        rc = do_send(r, rs, a, errmsg);
        break;
    case SG_ACT_ACK:
        rc = do_ack(r, rs, a, 0, errmsg);
        break;
    case SG_ACT_NACK:
        rc = do_ack(r, rs, a, 1, errmsg);
        break;
    }
    if (rc == SG_OK && a->receipt && rs->rq) {
        /* done, but an earlier frame's RECEIPT is still owed: keep the order */
        char *copy = strdup(a->receipt);
        struct rcpt *e = copy ? rq_add(rs, copy) : NULL;
        if (e) {
            e->done = 1;
            return SG_AGAIN;
        }
    }
    return rc;
}
