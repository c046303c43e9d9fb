/* relay_sub.c - private subscriptions: /queue, /amq/queue, durable topic
 * subscriptions, topic subscriptions with ack modes, and /temp-queue reply
 * queues. Each has its own channel and consumer, so ACKs map 1:1 and
 * prefetch throttles the broker. Output is bounded: when a client's
 * output buffer passes output_buffer_max the consumer is cancelled until
 * the buffer drains (what is unacked stays unacked: nothing is lost, and
 * the order is kept), so a subscription holds at most output_buffer_max
 * plus what the broker had already sent within its prefetch window
 * (prefetch-count, at most max_prefetch). An ack:auto subscription also
 * holds its acks back while the client is half a bound behind. */
#include "relay_int.h"
#include "error.h"
#include "gw_config.h"
#include "log.h"
#include "metrics.h"
#include "msg_encode.h"
#include "ws_frame.h"

#include <event2/buffer.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static amqp_bytes_t B(const char *s)
{
    return amqp_cstring_bytes(s);
}

void sg_sub_durable_name(const char *dest, const char *id, char *out, size_t cap)
{
    /* RabbitMQ's STOMP plugin names a durable subscription's queue from a
     * hash of the destination and the subscription id, so two clients with
     * the common id "sub-0" on different topics do not share one queue */
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1) {
        EVP_DigestUpdate(ctx, dest, strlen(dest));
        EVP_DigestUpdate(ctx, "\n", 1);
        EVP_DigestUpdate(ctx, id, strlen(id));
        EVP_DigestFinal_ex(ctx, md, &n);
    }
    EVP_MD_CTX_free(ctx);
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char enc[64];
    size_t k = 0;
    for (unsigned i = 0; i < n; i += 3) {
        unsigned v =
            (unsigned)md[i] << 16 | (i + 1 < n ? md[i + 1] : 0) << 8 | (i + 2 < n ? md[i + 2] : 0);
        enc[k++] = b64[v >> 18 & 63];
        enc[k++] = b64[v >> 12 & 63];
        if (i + 1 < n) enc[k++] = b64[v >> 6 & 63];
        if (i + 2 < n) enc[k++] = b64[v & 63];
    }
    enc[k] = 0;
    snprintf(out, cap, "stomp-subscription-%s", enc);
}

int sg_sub_is_queue_arg(const struct sg_stomp_header *h, void *arg)
{
    /* x-* headers become queue arguments (x-queue-type, x-max-length, ...);
     * x-queue-name names the queue and is not an argument */
    return h->key_len > 2 && !memcmp(h->key, "x-", 2) &&
           !(h->key_len == 12 && !memcmp(h->key, "x-queue-name", 12));
}

amqp_table_t sg_sub_args_table(const struct sg_stomp_frame_copy *args, amqp_pool_t *pool)
{
    amqp_table_t t = amqp_empty_table;
    size_t nh = args ? sg_stomp_frame_copy_nheaders(args) : 0;
    if (!nh) return t;
    t.entries = amqp_pool_alloc(pool, nh * sizeof *t.entries);
    if (!t.entries) return amqp_empty_table;
    for (size_t i = 0; i < nh; i++) {
        const struct sg_stomp_header *h = sg_stomp_frame_copy_header(args, i);
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

static void sub_ready(struct sub *s)
{
    s->ready = 1;
    struct sg_rcpt *e = s->rc;
    s->rc = NULL;
    struct sg_relay_sess *rs = s->rs;
    /* SENDs that name this temp queue in reply-to may go now */
    struct pub_list w = s->waiting;
    STAILQ_INIT(&s->waiting);
    struct pub *p, *n;
    STAILQ_FOREACH_SAFE(p, &w, next, n)
    {
        free(p->temp_wait);
        p->temp_wait = NULL;
        sg_pub_go(rs->rl, p);
    }
    sg_rsess_receipt_done(rs, e);
}

void sg_sub_setup(struct sub *s)
{
    struct rlink *rl = s->rs->rl;
    struct sg_link *l = rl->link;
    if (!sg_link_is_open(l) || s->ch) return;
    s->ready = 0;
    s->paused = 0;
    int rc = sg_link_chan_open(l, &sg_sub_chan_ops, s, &s->ch);
    if (rc != SG_OK) {
        if (rc == SG_EBROKER) return; /* set up again when the link is back */
        sg_rsess_fail(s->rs,
                      rc == SG_ETOOMANY
                          ? "too many subscriptions on this broker connection (broker_channel_max)"
                          : "out of memory",
                      s->rc ? s->rc->receipt : NULL, SG_WS_CLOSE_TRY_AGAIN);
        return;
    }
    amqp_pool_t *pool = sg_link_pool(l);
    amqp_table_t args = sg_sub_args_table(s->args, pool);
    if (s->temp) {
        amqp_queue_declare_t d = {0, B(s->qname), 0, 0, 1, 1, 0, amqp_empty_table};
        sg_link_send(s->ch, AMQP_QUEUE_DECLARE_METHOD, &d);
    } else if (s->route.kind == SG_ROUTE_QUEUE) {
        amqp_queue_declare_t d = {0, B(s->qname), 0, s->durable, s->exclusive, s->auto_delete,
                                  0, args};
        sg_link_send(s->ch, AMQP_QUEUE_DECLARE_METHOD, &d);
    } else if (s->route.kind == SG_ROUTE_TOPIC || s->route.kind == SG_ROUTE_EXCHANGE) {
        amqp_queue_declare_t d = {0, B(s->qname), 0, s->durable, !s->durable, !s->durable, 0, args};
        amqp_queue_bind_t b = {0, B(s->qname),     B(s->route.exchange), B(s->route.routing_key),
                               0, amqp_empty_table};
        sg_link_send(s->ch, AMQP_QUEUE_DECLARE_METHOD, &d);
        sg_link_send(s->ch, AMQP_QUEUE_BIND_METHOD, &b);
    }
    amqp_basic_qos_t q = {0, s->prefetch, 0};
    sg_link_send(s->ch, AMQP_BASIC_QOS_METHOD, &q);
    amqp_basic_consume_t c = {0, B(s->qname), B(s->ctag), 0, 0, 0, 0, amqp_empty_table};
    sg_link_send(s->ch, AMQP_BASIC_CONSUME_METHOD, &c);
}

void sg_sub_link_down(struct sub *s)
{
    s->ch = NULL;
    s->ready = 0;
    s->paused = 0;
    s->ntags = 0; /* unacked messages come back redelivered */
    s->held_ack = 0;
}

struct sub *sg_sub_find(struct sg_relay_sess *rs, const char *id, int temp)
{
    struct sub *s;
    TAILQ_FOREACH(s, &rs->subs, snext)
    if (!s->temp == !temp && !strcmp(s->id, id)) return s;
    return NULL;
}

int sg_sub_subscribe_private(struct sg_relay_sess *rs, struct sub *s, const char **errmsg)
{
    TAILQ_INSERT_TAIL(&rs->subs, s, snext);
    rs->nsubs++;
    SG_METRIC_ADD(rs->rl->r->env.metrics, subs_private, 1);
    sg_sub_setup(s);
    return SG_AGAIN;
}

struct sub *sg_sub_temp_ensure(struct sg_relay_sess *rs, const char *name, const char **why,
                               int *code)
{
    struct sub *s = sg_sub_find(rs, name, 1);
    if (s) return s;
    struct sg_relay *r = rs->rl->r;
    const struct sg_gw_config *cfg = r->env.cfg;
    *code = 0;
    if (rs->nsubs >= (size_t)cfg->max_subscriptions) {
        *why = "too many subscriptions (max_subscriptions; temp queues count)";
        *code = SG_WS_CLOSE_POLICY;
        return NULL;
    }
    s = calloc(1, sizeof *s);
    char dest[300];
    snprintf(dest, sizeof dest, "/temp-queue/%s", name);
    if (!s || !(s->id = strdup(name)) || !(s->dest = strdup(dest))) {
        if (s) sg_sub_free(s);
        *why = "out of memory";
        *code = SG_WS_CLOSE_INTERNAL;
        return NULL;
    }
    STAILQ_INIT(&s->waiting);
    s->rs = rs;
    s->temp = 1;
    s->ack = SG_ACK_AUTO;
    s->internal_ack = 1;
    s->prefetch = (uint16_t)cfg->prefetch;
    unsigned long long q = ++r->next_qid;
    snprintf(s->qname, sizeof s->qname, "stomp-temp-queue-%d-%llu-%08x", r->env.worker_id, q,
             (unsigned)(uintptr_t)s);
    snprintf(s->ctag, sizeof s->ctag, "sg-temp-%llu", q);
    TAILQ_INSERT_TAIL(&rs->subs, s, snext);
    rs->nsubs++;
    SG_METRIC_ADD(r->env.metrics, subs_temp, 1);
    sg_sub_setup(s);
    return s;
}

void sg_sub_unlink(struct sub *s)
{
    if (s->rs) {
        s->rs->nsubs--;
        struct sg_metrics *m = s->rs->rl->r->env.metrics;
        if (s->topic)
            SG_METRIC_ADD(m, subs_shared, -1);
        else if (s->temp)
            SG_METRIC_ADD(m, subs_temp, -1);
        else
            SG_METRIC_ADD(m, subs_private, -1);
    }
    if (s->topic) {
        sg_fanout_remove(s->topic, s);
    } else if (s->ch) {
        /* closing the channel cancels the consumer and requeues unacked
         * messages; a temp queue (exclusive, auto-delete) goes with it */
        sg_link_chan_close(s->ch);
        s->ch = NULL;
    }
    /* SENDs that waited for this temp queue go without waiting */
    struct pub *p, *n;
    STAILQ_FOREACH_SAFE(p, &s->waiting, next, n)
    {
        free(p->temp_wait);
        p->temp_wait = NULL;
        sg_pub_go(s->rs->rl, p);
    }
    STAILQ_INIT(&s->waiting);
}

void sg_sub_free(struct sub *s)
{
    if (!s) return;
    free(s->id);
    free(s->dest);
    free(s->tags);
    sg_stomp_frame_copy_free(s->args);
    free(s);
}

/* ---- throttling */

static size_t out_max(const struct sub *s)
{
    return (size_t)s->rs->rl->r->env.cfg->output_buffer_max;
}

static void throttle(struct sub *s)
{
    struct sg_relay_sess *rs = s->rs;
    if (s->paused || !s->ch || rs->ops->outlen(rs->client) <= out_max(s)) return;
    /* over the bound: stop the consumer; unacked messages stay with us */
    amqp_basic_cancel_t m = {B(s->ctag), 0};
    if (sg_link_send(s->ch, AMQP_BASIC_CANCEL_METHOD, &m) == SG_OK) s->paused = 1;
}

void sg_sub_drained(struct sub *s)
{
    if (!s->ch) return;
    if (s->held_ack) {
        amqp_basic_ack_t a = {s->held_ack, 1};
        sg_link_send(s->ch, AMQP_BASIC_ACK_METHOD, &a);
        s->held_ack = 0;
    }
    if (s->paused) {
        amqp_basic_consume_t c = {0, B(s->qname), B(s->ctag), 0, 0, 0, 0, amqp_empty_table};
        if (sg_link_send(s->ch, AMQP_BASIC_CONSUME_METHOD, &c) == SG_OK) s->paused = 0;
    }
}

/* ---- channel callbacks */

static int evbuf_utf8(struct evbuffer *e)
{
    size_t n = evbuffer_get_length(e);
    return sg_utf8_valid(evbuffer_pullup(e, (ssize_t)n), n);
}

static void on_delivery(struct sg_link_chan *ch, void *owner, const struct sg_link_delivery *d)
{
    struct sub *s = owner;
    struct sg_relay_sess *rs = s->rs;
    struct sg_relay *r = rs->rl->r;
    void *c = rs->client;
    if (!rs->ops->is_open(c)) return; /* closing: the channel close requeues it */
    int v = rs->ops->version(c);
    char mid[64], dest[600];
    snprintf(mid, sizeof mid, "%u.%u.%llu", sg_link_gen(rs->rl->link), sg_link_chan_id(ch),
             (unsigned long long)d->tag);
    if (s->temp || s->route.kind == SG_ROUTE_QUEUE || s->route.kind == SG_ROUTE_AMQ_QUEUE)
        snprintf(dest, sizeof dest, "%s", s->dest);
    else
        sg_msg_destination(d->exchange, d->routing_key, dest, sizeof dest);
    size_t bl = evbuffer_get_length(d->body);
    struct sg_buf *head = &r->head;
    sg_buf_clear(head);
    int ackh = v >= 12 && s->ack != SG_ACK_AUTO;
    /* a temp queue's subscription is "/temp-queue/X", as the plugin names it */
    if (sg_msg_encode_head(head, v, s->temp ? s->dest : s->id, ackh ? mid : NULL) != SG_OK ||
        sg_msg_encode_shared(head, v, dest, mid, d->redelivered, d->props, bl) != SG_OK)
        return;
    struct evbuffer *body = evbuffer_new();
    if (!body) return;
    evbuffer_add_buffer(body, d->body);
    evbuffer_add(body, "", 1);
    int text = sg_utf8_valid(head->data, head->len) && evbuf_utf8(body);
    rs->ops->write(c, head->data, head->len, body, text);
    evbuffer_free(body);

    if (s->internal_ack) {
        /* ack:auto: acknowledge once written - unless the client is behind,
         * then hold the ack so the prefetch window throttles the broker */
        if (rs->ops->outlen(c) < out_max(s) / 2) {
            amqp_basic_ack_t a = {d->tag, 1};
            sg_link_send(ch, AMQP_BASIC_ACK_METHOD, &a);
            s->held_ack = 0;
        } else {
            s->held_ack = d->tag;
        }
    } else {
        if (s->ntags == s->captags) {
            size_t cap = s->captags ? s->captags * 2 : 16;
            uint64_t *t = realloc(s->tags, cap * sizeof *t);
            if (!t) {
                sg_rsess_fail(rs, "out of memory", NULL, SG_WS_CLOSE_INTERNAL);
                return;
            }
            s->tags = t;
            s->captags = cap;
        }
        s->tags[s->ntags++] = d->tag;
    }
    throttle(s);
}

static void on_reply(struct sg_link_chan *ch, void *owner, amqp_method_number_t id, void *m)
{
    struct sub *s = owner;
    if (id == AMQP_BASIC_CONSUME_OK_METHOD && !s->ready) sub_ready(s);
}

static void on_cancelled(struct sg_link_chan *ch, void *owner)
{
    /* the broker cancelled the consumer (queue deleted, node down) */
    struct sub *s = owner;
    size_t cap;
    char *eb = sg_relay_errbuf_w(&cap);
    snprintf(eb, cap, "subscription to %.300s was cancelled by the broker", s->dest);
    sg_rsess_fail(s->rs, eb, NULL, 0);
}

static void on_closed(struct sg_link_chan *ch, void *owner, int code, const char *text)
{
    struct sub *s = owner;
    s->ch = NULL;
    if (!code) return; /* the link went down: set up again when it is back */
    size_t cap;
    char *eb = sg_relay_errbuf_w(&cap);
    snprintf(eb, cap, "subscription to %.200s failed: %s", s->dest, text);
    sg_rsess_fail(s->rs, eb, s->rc ? s->rc->receipt : NULL, 0);
}

const struct sg_link_chan_ops sg_sub_chan_ops = {
    .reply = on_reply,
    .delivery = on_delivery,
    .cancelled = on_cancelled,
    .closed = on_closed,
    .fanout = 1,
};
