/* relay_fanout.c - shared upstreams for /topic and /exchange subscriptions:
 * every subscription with the same binding on a link shares one exclusive,
 * auto-delete queue and one no-ack consumer. A delivery is encoded once
 * per STOMP version (msg_encode.h) and every subscriber's output
 * references that encoding. Slow-consumer policy: a subscriber whose
 * output buffer already held more than output_buffer_max when a delivery
 * arrived is sent ERROR "slow consumer" and closed with 1008 (so a session
 * holds at most the bound plus one message); the others are not slowed. */
#include "relay_int.h"
#include "error.h"
#include "gw_config.h"
#include "log.h"
#include "metrics.h"
#include "msg_encode.h"
#include "util.h"
#include "ws_frame.h"

#include <event2/buffer.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

static amqp_bytes_t B(const char *s)
{
    return amqp_cstring_bytes(s);
}

#define SLOW_BEHIND_MSG "slow consumer: behind for longer than slow_consumer_timeout_ms"

static void fail_topic(struct topic *t, const char *msg, int code)
{
    struct victims v = {0};
    struct sub *s;
    LIST_FOREACH(s, &t->subs, tnext)
    sg_victims_add(&v, s->rs);
    sg_victims_fail(&v, msg, code);
}

/* Ends the slow consumers collected in v, counted in the metrics. */
static void fail_slow(struct sg_relay *r, struct victims *v, const char *msg)
{
    if (v->n && r->env.metrics)
        atomic_fetch_add_explicit(&r->env.metrics->slow_consumers, (long)v->n,
                                  memory_order_relaxed);
    sg_victims_fail(v, msg, SG_WS_CLOSE_POLICY);
}

amqp_table_t sg_bounded_queue_args(amqp_table_entry_t args[2], long long max_len)
{
    args[0].key = B("x-max-length");
    args[0].value.kind = AMQP_FIELD_KIND_I64;
    args[0].value.value.i64 = (int64_t)max_len;
    args[1].key = B("x-overflow");
    args[1].value.kind = AMQP_FIELD_KIND_UTF8;
    args[1].value.value.bytes = B("drop-head");
    return (amqp_table_t){2, args};
}

void sg_fanout_setup(struct topic *t)
{
    struct sg_link *l = t->rl->link;
    if (!sg_link_is_open(l) || t->ch) return;
    t->ready = 0;
    int rc = sg_link_chan_open(l, &sg_topic_chan_ops, t, &t->ch);
    if (rc != SG_OK) {
        if (rc == SG_EBROKER) return;
        fail_topic(t,
                   rc == SG_ETOOMANY ? "too many subscriptions on this broker connection "
                                       "(broker_channel_max)"
                                     : "out of memory",
                   SG_WS_CLOSE_TRY_AGAIN);
        return;
    }
    /* The upstream is consumed with acks and a prefetch window, so that when
     * this worker falls behind (sg_relay_pressure) it stops acking and the
     * broker keeps what follows - at most upstream_max_length messages, the
     * oldest dropped first: the broker conflates, not our memory. */
    const struct sg_gw_config *cfg = t->rl->r->env.cfg;
    amqp_table_entry_t args[2];
    amqp_table_t at = sg_bounded_queue_args(args, cfg->upstream_max_length);
    amqp_queue_declare_t d = {0, B(t->qname), 0, 0, 1, 1, 0, at};
    amqp_queue_bind_t b = {0, B(t->qname), B(t->exchange), B(t->rkey), 0, amqp_empty_table};
    amqp_basic_qos_t q = {0, (uint16_t)cfg->upstream_prefetch, 0};
    amqp_basic_consume_t c = {0, B(t->qname), B(t->qname), 0, 0, 1, 0, amqp_empty_table};
    t->last_tag = t->acked_tag = 0;
    sg_link_send(t->ch, AMQP_QUEUE_DECLARE_METHOD, &d);
    sg_link_send(t->ch, AMQP_QUEUE_BIND_METHOD, &b);
    sg_link_send(t->ch, AMQP_BASIC_QOS_METHOD, &q);
    sg_link_send(t->ch, AMQP_BASIC_CONSUME_METHOD, &c);
}

static void topic_ack(struct topic *t)
{
    if (!t->ch || t->last_tag <= t->acked_tag) return;
    amqp_basic_ack_t a = {t->last_tag, 1};
    if (sg_link_send(t->ch, AMQP_BASIC_ACK_METHOD, &a) == SG_OK) t->acked_tag = t->last_tag;
}

void sg_fanout_ack_all(struct sg_relay *r)
{
    /* a subscriber that stays behind is closed even when no delivery comes
     * to notice it (the upstream may be paused) */
    const struct sg_gw_config *cfg = r->env.cfg;
    uint64_t now = sg_now_ms(), timeout = (uint64_t)cfg->slow_consumer_timeout_ms;
    size_t half = (size_t)cfg->output_buffer_max / 2;
    struct victims slow = {0};
    struct rlink *rl;
    struct topic *t;
    struct sub *s;
    LIST_FOREACH(rl, &r->links, next)
    LIST_FOREACH(t, &rl->topics, next)
    LIST_FOREACH(s, &t->subs, tnext)
    {
        if (!s->behind_since) continue;
        if (s->rs->ops->outlen(s->rs->client) <= half)
            s->behind_since = 0;
        else if (now - s->behind_since >= timeout)
            sg_victims_add(&slow, s->rs);
    }
    fail_slow(r, &slow, SLOW_BEHIND_MSG);
    if (sg_relay_pressure(r)) return;
    LIST_FOREACH(rl, &r->links, next)
    LIST_FOREACH(t, &rl->topics, next)
    topic_ack(t);
}

int sg_fanout_subscribe(struct sg_relay_sess *rs, struct sub *s, const char *receipt,
                        const char **errmsg)
{
    struct rlink *rl = rs->rl;
    struct topic *t;
    LIST_FOREACH(t, &rl->topics, next)
    if (!strcmp(t->exchange, s->route.exchange) && !strcmp(t->rkey, s->route.routing_key)) break;
    int ready_now = t && t->ready && sg_rcpt_queue_is_empty(&rs->rq);
    if (!ready_now) {
        /* wait for the upstream, or behind earlier receipts */
        int rc = sg_rcpt_queue_push(&rs->rq, receipt, t && t->ready, &s->rc);
        if (rc != SG_OK) {
            sg_sub_free(s);
            *errmsg = rc == SG_ETOOMANY ? SG_RELAY_TOO_MANY_RECEIPTS : "out of memory";
            return rc;
        }
    }
    if (!t) {
        if (!(t = calloc(1, sizeof *t))) {
            /* s->rc stays queued, unfinished: the session ends with this error */
            sg_sub_free(s);
            *errmsg = "out of memory";
            return SG_ENOMEM;
        }
        t->rl = rl;
        LIST_INIT(&t->subs);
        snprintf(t->exchange, sizeof t->exchange, "%s", s->route.exchange);
        snprintf(t->rkey, sizeof t->rkey, "%s", s->route.routing_key);
        uuid_t u;
        char us[37];
        uuid_generate_random(u);
        uuid_unparse_lower(u, us);
        snprintf(t->qname, sizeof t->qname, "stompgate-%s", us);
        LIST_INSERT_HEAD(&rl->topics, t, next);
    }
    s->topic = t;
    LIST_INSERT_HEAD(&t->subs, s, tnext);
    TAILQ_INSERT_TAIL(&rs->subs, s, snext);
    rs->nsubs++;
    if (t->ready) {
        s->ready = 1;
        struct sg_rcpt *e = s->rc;
        s->rc = NULL;
        if (ready_now) return SG_OK;
        sg_rsess_receipt_done(rs, e); /* sent when the ones before are */
        return SG_AGAIN;
    }
    if (!t->ch) sg_fanout_setup(t);
    return SG_AGAIN;
}

void sg_fanout_remove(struct topic *t, struct sub *s)
{
    LIST_REMOVE(s, tnext);
    s->topic = NULL;
    if (!LIST_EMPTY(&t->subs)) return;
    /* last subscriber gone: cancel the upstream (the queue is auto-delete) */
    LIST_REMOVE(t, next);
    if (t->ch) sg_link_chan_close(t->ch);
    free(t);
}

void sg_fanout_free_all(struct rlink *rl)
{
    struct topic *t;
    while ((t = LIST_FIRST(&rl->topics))) {
        LIST_REMOVE(t, next);
        struct sub *s;
        LIST_FOREACH(s, &t->subs, tnext)
        s->topic = NULL;
        free(t);
    }
}

/* ---- channel callbacks */

#define ACK_BATCH 64            /* upstream deliveries per cumulative ack */
#define SKIP_BEHIND (64 * 1024) /* "behind", for skipping under memory pressure */

static void on_delivery(struct sg_link_chan *ch, void *owner, const struct sg_link_delivery *d)
{
    struct topic *t = owner;
    long skipped = 0;
    struct sg_relay *r = t->rl->r;
    struct evbuffer *sh[3] = {NULL, NULL, NULL}; /* one encoding per STOMP version */
    int text[3] = {0, 0, 0};
    char mid[64], dest[600];
    struct victims slow = {0};
    const struct sg_gw_config *cfg = r->env.cfg;
    size_t max = (size_t)cfg->output_buffer_max;
    int drop = r->drop_policy;
    uint64_t now = drop ? sg_now_ms() : 0, timeout = (uint64_t)cfg->slow_consumer_timeout_ms;
    snprintf(mid, sizeof mid, "%u.%u.%llu", sg_link_gen(t->rl->link), sg_link_chan_id(ch),
             (unsigned long long)d->tag);
    sg_msg_destination(d->exchange, d->routing_key, dest, sizeof dest);
    size_t bl = evbuffer_get_length(d->body);
    int pressure = sg_relay_pressure(r);
    struct sub *s;
    LIST_FOREACH(s, &t->subs, tnext)
    {
        struct sg_relay_sess *rs = s->rs;
        void *c = rs->client;
        if (rs->failing || !rs->ops->is_open(c)) continue;
        size_t before = rs->ops->outlen(c);
        if (pressure > 1 && before > SKIP_BEHIND) {
            /* over the worker's memory share: a subscriber that is behind
             * misses this one rather than grow the daemon */
            skipped++;
            continue;
        }
        if (drop && before > max / 2) {
            /* the drop policy: a subscriber half its bound behind misses
             * messages (counted) until it catches up, and is closed if it
             * stays behind for slow_consumer_timeout_ms; the others are
             * not slowed */
            if (!s->behind_since) s->behind_since = now ? now : 1;
            if (now - s->behind_since >= timeout)
                sg_victims_add(&slow, rs);
            else
                skipped++;
            continue;
        }
        s->behind_since = 0;
        int v = rs->ops->version(c);
        int vi = v >= 12 ? 2 : v == 11 ? 1 : 0;
        if (!sh[vi]) {
            struct sg_buf *b = &r->scratch;
            sg_buf_clear(b);
            if (sg_msg_encode_shared(b, v, dest, mid, d->redelivered, d->props, bl) != SG_OK ||
                !(sh[vi] = evbuffer_new()))
                continue;
            /* encoded once; every subscriber's output references it (an
             * evbuffer holding references cannot itself be referenced, so
             * the body is copied in here, once per STOMP version) */
            evbuffer_add(sh[vi], b->data, b->len);
            evbuffer_add(sh[vi], evbuffer_pullup(d->body, (ssize_t)bl), bl);
            evbuffer_add(sh[vi], "", 1);
            size_t n = evbuffer_get_length(sh[vi]);
            text[vi] = sg_utf8_valid(evbuffer_pullup(sh[vi], (ssize_t)n), n);
        }
        struct sg_buf *hb = &r->head;
        sg_buf_clear(hb);
        if (sg_msg_encode_head(hb, v, s->id, NULL) != SG_OK) continue;
        /* slow (close policy): already more than the bound behind before
         * this message (one message larger than the bound is not slow) */
        rs->ops->write(c, hb->data, hb->len, sh[vi], text[vi] && sg_utf8_valid(hb->data, hb->len));
        if (before > max) sg_victims_add(&slow, rs);
    }
    for (int i = 0; i < 3; i++)
        if (sh[i]) evbuffer_free(sh[i]);
    if (skipped && r->env.metrics)
        atomic_fetch_add_explicit(&r->env.metrics->dropped, skipped, memory_order_relaxed);
    /* acked in batches while the worker keeps up; under pressure not at
     * all, so the broker stops at the prefetch window and keeps the rest */
    t->last_tag = d->tag;
    if (!pressure && t->last_tag - t->acked_tag >= ACK_BATCH) topic_ack(t);
    /* slow consumers are dropped after the loop: ending a session edits the
     * subscriber list we were walking */
    fail_slow(r, &slow, drop ? SLOW_BEHIND_MSG : "slow consumer: output buffer limit exceeded");
}

static void on_reply(struct sg_link_chan *ch, void *owner, amqp_method_number_t id, void *m)
{
    struct topic *t = owner;
    if (id != AMQP_BASIC_CONSUME_OK_METHOD) return;
    t->ready = 1;
    /* every subscriber waiting for the upstream is ready; their receipts
     * go in each session's order (a release may end a session: collect
     * first, each session held) */
    struct victims v = {0};
    struct sub *s;
    LIST_FOREACH(s, &t->subs, tnext)
    if (s->rc || !s->ready) sg_victims_add(&v, s->rs);
    for (size_t i = 0; i < v.n; i++) {
        struct sg_relay_sess *rs = v.rs[i];
        rs->marked = 0;
        TAILQ_FOREACH(s, &rs->subs, snext)
        if (s->topic == t && !s->ready) {
            s->ready = 1;
            struct sg_rcpt *e = s->rc;
            s->rc = NULL;
            sg_rsess_receipt_done(rs, e);
        }
    }
    for (size_t i = 0; i < v.n; i++)
        v.rs[i]->ops->release(v.rs[i]->client);
    free(v.rs);
}

static void on_cancelled(struct sg_link_chan *ch, void *owner)
{
    fail_topic(owner, "subscription was cancelled by the broker", 0);
}

static void on_closed(struct sg_link_chan *ch, void *owner, int code, const char *text)
{
    struct topic *t = owner;
    t->ch = NULL;
    t->ready = 0;
    if (!code) return;
    size_t cap;
    char *eb = sg_relay_errbuf_w(&cap);
    if (!strcmp(t->exchange, "amq.topic"))
        snprintf(eb, cap, "subscription to /topic/%.200s failed: %s", t->rkey, text);
    else
        snprintf(eb, cap, "subscription to /exchange/%.200s failed: %s", t->exchange, text);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", eb);
    fail_topic(t, msg, 0);
}

const struct sg_link_chan_ops sg_topic_chan_ops = {
    .reply = on_reply,
    .delivery = on_delivery,
    .cancelled = on_cancelled,
    .closed = on_closed,
};
