/* fake_link.c - amqp_link.h implemented as a recorder with a scripted
 * broker (see fake_link.h). Follows the real link's callback rules so the
 * relay meets the same re-entrancy: callbacks may open and close channels
 * and send methods; a channel closed by its owner gets no callback and is
 * freed on close-ok or with the link. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <event2/buffer.h>

#include "error.h"
#include "fake_link.h"

struct sg_link_chan {
    uint16_t id;
    struct sg_link *l;
    const struct sg_link_chan_ops *ops;
    void *owner;
    int closing;
    int confirm; /* confirm.select sent */
    uint64_t pubseq;
};

struct sg_link {
    const struct sg_link_env *env;
    const struct sg_link_ops *ops;
    void *arg;
    char login[256], passcode[256], vhost[256];
    int service, open, blocked, shutting_down;
    unsigned gen;
    unsigned chan_max, broker_chan_max;
    struct sg_link_chan **chans;
    uint16_t next_chan;
    amqp_pool_t pool;
    struct fl_rec *recs;
    size_t nrec, caprec;
};

#define FL_MAX_LINKS 64
static struct sg_link *links[FL_MAX_LINKS];
static int nlinks;

static void copy_bytes(char *dst, size_t cap, amqp_bytes_t b)
{
    size_t n = b.len < cap - 1 ? b.len : cap - 1;
    if (n) memcpy(dst, b.bytes, n);
    dst[n] = 0;
}

static struct fl_rec *rec_new(struct sg_link *l, uint16_t ch, amqp_method_number_t id)
{
    if (l->nrec == l->caprec) {
        size_t cap = l->caprec ? l->caprec * 2 : 64;
        struct fl_rec *r = realloc(l->recs, cap * sizeof *r);
        assert_non_null(r);
        l->recs = r;
        l->caprec = cap;
    }
    struct fl_rec *r = &l->recs[l->nrec++];
    memset(r, 0, sizeof *r);
    r->ch = ch;
    r->id = id;
    return r;
}

static void record_method(struct sg_link_chan *ch, amqp_method_number_t id, void *m)
{
    struct fl_rec *r = rec_new(ch->l, ch->id, id);
    switch (id) {
    case AMQP_QUEUE_DECLARE_METHOD: {
        amqp_queue_declare_t *d = m;
        copy_bytes(r->queue, sizeof r->queue, d->queue);
        r->durable = d->durable;
        r->exclusive = d->exclusive;
        r->auto_delete = d->auto_delete;
        r->nargs = d->arguments.num_entries;
        r->passive = d->passive;
        break;
    }
    case AMQP_EXCHANGE_DECLARE_METHOD: {
        amqp_exchange_declare_t *d = m;
        copy_bytes(r->exchange, sizeof r->exchange, d->exchange);
        copy_bytes(r->xtype, sizeof r->xtype, d->type);
        r->durable = d->durable;
        r->auto_delete = d->auto_delete;
        r->passive = d->passive;
        r->nargs = d->arguments.num_entries;
        break;
    }
    case AMQP_QUEUE_BIND_METHOD: {
        amqp_queue_bind_t *b = m;
        copy_bytes(r->queue, sizeof r->queue, b->queue);
        copy_bytes(r->exchange, sizeof r->exchange, b->exchange);
        copy_bytes(r->rkey, sizeof r->rkey, b->routing_key);
        break;
    }
    case AMQP_BASIC_QOS_METHOD:
        r->prefetch = ((amqp_basic_qos_t *)m)->prefetch_count;
        break;
    case AMQP_BASIC_CONSUME_METHOD: {
        amqp_basic_consume_t *c = m;
        copy_bytes(r->queue, sizeof r->queue, c->queue);
        copy_bytes(r->ctag, sizeof r->ctag, c->consumer_tag);
        r->no_ack = c->no_ack;
        r->exclusive = c->exclusive;
        break;
    }
    case AMQP_BASIC_CANCEL_METHOD:
        copy_bytes(r->ctag, sizeof r->ctag, ((amqp_basic_cancel_t *)m)->consumer_tag);
        break;
    case AMQP_BASIC_ACK_METHOD:
        r->tag = ((amqp_basic_ack_t *)m)->delivery_tag;
        r->multiple = ((amqp_basic_ack_t *)m)->multiple;
        break;
    case AMQP_BASIC_NACK_METHOD:
        r->tag = ((amqp_basic_nack_t *)m)->delivery_tag;
        r->multiple = ((amqp_basic_nack_t *)m)->multiple;
        r->requeue = ((amqp_basic_nack_t *)m)->requeue;
        break;
    case AMQP_CONFIRM_SELECT_METHOD:
        ch->confirm = 1;
        ch->pubseq = 0;
        break;
    case AMQP_CHANNEL_CLOSE_METHOD:
        r->code = ((amqp_channel_close_t *)m)->reply_code;
        break;
    }
}

/* ---- amqp_link.h */

struct sg_link *sg_link_new(const struct sg_link_env *env, const char *login, const char *passcode,
                            const char *vhost, int service, const struct sg_link_ops *ops,
                            void *arg)
{
    static const struct sg_link_ops no_ops;
    struct sg_link *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    assert_true(nlinks < FL_MAX_LINKS);
    l->env = env;
    l->ops = ops ? ops : &no_ops;
    l->arg = arg;
    l->service = service;
    snprintf(l->login, sizeof l->login, "%s", login);
    snprintf(l->passcode, sizeof l->passcode, "%s", passcode);
    snprintf(l->vhost, sizeof l->vhost, "%s", vhost);
    init_amqp_pool(&l->pool, 4096);
    links[nlinks++] = l;
    return l;
}

static void free_chans(struct sg_link *l)
{
    if (!l->chans) return;
    for (unsigned i = 0; i <= l->chan_max; i++)
        free(l->chans[i]);
    free(l->chans);
    l->chans = NULL;
    l->chan_max = 0;
}

void sg_link_free(struct sg_link *l)
{
    if (!l) return;
    /* the list stays in creation order: fl_link_nth counts on it */
    for (int i = 0; i < nlinks; i++)
        if (links[i] == l) {
            memmove(&links[i], &links[i + 1], (size_t)(nlinks - i - 1) * sizeof *links);
            nlinks--;
            break;
        }
    free_chans(l);
    empty_amqp_pool(&l->pool);
    free(l->recs);
    free(l);
}

void sg_link_shutdown(struct sg_link *l)
{
    l->shutting_down = 1;
}

void sg_link_set_passcode(struct sg_link *l, const char *passcode)
{
    snprintf(l->passcode, sizeof l->passcode, "%s", passcode);
}

int sg_link_is_open(const struct sg_link *l)
{
    return l && l->open;
}

int sg_link_is_blocked(const struct sg_link *l)
{
    return l->blocked;
}

unsigned sg_link_gen(const struct sg_link *l)
{
    return l->gen;
}

const char *sg_link_login(const struct sg_link *l)
{
    return l->login;
}

const char *sg_link_vhost(const struct sg_link *l)
{
    return l->vhost;
}

int sg_link_is_service(const struct sg_link *l)
{
    return l->service;
}

int sg_link_chan_open(struct sg_link *l, const struct sg_link_chan_ops *ops, void *owner,
                      struct sg_link_chan **out)
{
    *out = NULL;
    if (!l->open) return SG_EBROKER;
    uint16_t id = 0;
    /* ids handed out round robin, as the real link does: a reopened
     * channel gets a new id */
    for (unsigned tries = 0; tries < l->chan_max; tries++) {
        uint16_t c = l->next_chan;
        l->next_chan = (uint16_t)(c >= l->chan_max ? 1 : c + 1);
        if (c >= 1 && !l->chans[c]) {
            id = c;
            break;
        }
    }
    if (!id) return SG_ETOOMANY;
    struct sg_link_chan *ch = calloc(1, sizeof *ch);
    if (!ch) return SG_ENOMEM;
    ch->id = id;
    ch->l = l;
    ch->ops = ops;
    ch->owner = owner;
    l->chans[id] = ch;
    amqp_channel_open_t op = {0};
    sg_link_send(ch, AMQP_CHANNEL_OPEN_METHOD, &op);
    *out = ch;
    return SG_OK;
}

void sg_link_chan_close(struct sg_link_chan *ch)
{
    if (!ch || ch->closing) return;
    ch->closing = 1;
    ch->owner = NULL;
    amqp_channel_close_t m = {AMQP_REPLY_SUCCESS, amqp_cstring_bytes("closed by stompgate"), 0, 0};
    sg_link_send(ch, AMQP_CHANNEL_CLOSE_METHOD, &m);
}

uint16_t sg_link_chan_id(const struct sg_link_chan *ch)
{
    return ch->id;
}

struct sg_link *sg_link_chan_link(const struct sg_link_chan *ch)
{
    return ch->l;
}

int sg_link_send(struct sg_link_chan *ch, amqp_method_number_t id, void *method)
{
    if (!ch || !ch->l->open) return SG_EBROKER;
    record_method(ch, id, method);
    return SG_OK;
}

int sg_link_publish(struct sg_link_chan *ch, const char *exchange, const char *routing_key,
                    int mandatory, const amqp_basic_properties_t *props, const void *body,
                    size_t len)
{
    struct sg_link *l = ch->l;
    if (!l->open || ch->closing) return SG_EBROKER;
    struct fl_rec *r = rec_new(l, ch->id, FL_PUBLISH);
    snprintf(r->exchange, sizeof r->exchange, "%s", exchange);
    snprintf(r->rkey, sizeof r->rkey, "%s", routing_key);
    r->mandatory = mandatory;
    if (props && (props->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG))
        r->delivery_mode = props->delivery_mode;
    if (props && (props->_flags & AMQP_BASIC_REPLY_TO_FLAG))
        copy_bytes(r->reply_to, sizeof r->reply_to, props->reply_to);
    if (props && (props->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG))
        copy_bytes(r->content_type, sizeof r->content_type, props->content_type);
    if (props && (props->_flags & AMQP_BASIC_EXPIRATION_FLAG))
        copy_bytes(r->expiration, sizeof r->expiration, props->expiration);
    r->body_len = len;
    size_t n = len < sizeof r->body - 1 ? len : sizeof r->body - 1;
    if (n) memcpy(r->body, body, n);
    r->body[n] = 0;
    if (ch->confirm) r->seq = ++ch->pubseq;
    return SG_OK;
}

amqp_pool_t *sg_link_pool(struct sg_link *l)
{
    return &l->pool;
}

/* ---- the broker's side */

struct sg_link *fl_link_nth(const char *login, int service, int n)
{
    for (int i = 0; i < nlinks; i++)
        if (!links[i]->service == !service && !strcmp(links[i]->login, login) && n-- == 0)
            return links[i];
    return NULL;
}

struct sg_link *fl_link(const char *login, int service)
{
    return fl_link_nth(login, service, 0);
}

struct sg_link *fl_plink(const char *login)
{
    return fl_link_nth(login, 0, 1);
}

int fl_nlinks(void)
{
    return nlinks;
}

void fl_up(struct sg_link *l)
{
    assert_false(l->open);
    unsigned max = l->env->channel_max ? l->env->channel_max : 2047;
    if (l->broker_chan_max && l->broker_chan_max < max) max = l->broker_chan_max;
    l->chans = calloc((size_t)max + 1, sizeof *l->chans);
    assert_non_null(l->chans);
    l->chan_max = max;
    l->next_chan = 1;
    l->open = 1;
    l->blocked = 0;
    l->gen++;
    if (l->ops->up) l->ops->up(l, l->arg);
    empty_amqp_pool(&l->pool);
}

void fl_set_channel_max(struct sg_link *l, unsigned max)
{
    l->broker_chan_max = max;
}

void fl_drop(struct sg_link *l)
{
    assert_true(l->open);
    l->open = 0;
    l->blocked = 0;
    struct sg_link_chan **chans = l->chans;
    unsigned max = l->chan_max;
    l->chans = NULL;
    l->chan_max = 0;
    for (unsigned i = 0; i <= max; i++) {
        struct sg_link_chan *ch = chans[i];
        if (!ch) continue;
        const struct sg_link_chan_ops *ops = ch->closing ? NULL : ch->ops;
        void *owner = ch->owner;
        ch->closing = 1;
        if (ops && ops->closed) ops->closed(ch, owner, 0, NULL);
        free(ch);
    }
    free(chans);
    if (l->ops->down) l->ops->down(l, l->arg);
    empty_amqp_pool(&l->pool);
}

void fl_block(struct sg_link *l, int b)
{
    assert_true(l->open);
    l->blocked = b;
    if (l->ops->blocked) l->ops->blocked(l, l->arg, b);
    empty_amqp_pool(&l->pool);
}

void fl_refuse(struct sg_link *l, const char *reason)
{
    assert_false(l->open);
    if (l->ops->refused) l->ops->refused(l, l->arg, reason);
}

static struct sg_link_chan *chan(struct sg_link *l, uint16_t id)
{
    if (!l->open || !l->chans || id == 0 || id > l->chan_max || !l->chans[id]) {
        char dump[4096];
        fl_dump(l, 0, dump, sizeof dump);
        fail_msg("fake link %s: no channel %u\n%s", l->login, id, dump);
    }
    return l->chans[id];
}

/* the owner's ops, or NULL when it closed the channel */
static const struct sg_link_chan_ops *live_ops(struct sg_link_chan *ch)
{
    return ch->closing ? NULL : ch->ops;
}

void fl_reply(struct sg_link *l, uint16_t id, amqp_method_number_t mid, void *decoded)
{
    struct sg_link_chan *ch = chan(l, id);
    const struct sg_link_chan_ops *ops = live_ops(ch);
    if (ops && ops->reply) ops->reply(ch, ch->owner, mid, decoded);
    empty_amqp_pool(&l->pool);
}

void fl_declare_ok(struct sg_link *l, uint16_t id, const char *queue)
{
    amqp_queue_declare_ok_t ok = {amqp_cstring_bytes(queue), 0, 0};
    fl_reply(l, id, AMQP_QUEUE_DECLARE_OK_METHOD, &ok);
}

void fl_consume_ok(struct sg_link *l, uint16_t id, const char *ctag)
{
    amqp_basic_consume_ok_t ok = {amqp_cstring_bytes(ctag)};
    fl_reply(l, id, AMQP_BASIC_CONSUME_OK_METHOD, &ok);
}

void fl_deliver(struct sg_link *l, uint16_t id, uint64_t tag, int redelivered, const char *exchange,
                const char *rkey, const amqp_basic_properties_t *props, const void *body,
                size_t len)
{
    struct sg_link_chan *ch = chan(l, id);
    const struct sg_link_chan_ops *ops = live_ops(ch);
    if (!ops || !ops->delivery) return;
    struct evbuffer *b = evbuffer_new();
    assert_non_null(b);
    evbuffer_add(b, body, len);
    struct sg_link_delivery d = {tag, redelivered, exchange, rkey, "ctag", props, b};
    ops->delivery(ch, ch->owner, &d);
    evbuffer_free(b);
    empty_amqp_pool(&l->pool);
}

void fl_confirm(struct sg_link *l, uint16_t id, uint64_t tag, int multiple, int ok, int returned)
{
    struct sg_link_chan *ch = chan(l, id);
    const struct sg_link_chan_ops *ops = live_ops(ch);
    if (ops && ops->confirm) ops->confirm(ch, ch->owner, tag, multiple, ok, returned);
    empty_amqp_pool(&l->pool);
}

void fl_cancel(struct sg_link *l, uint16_t id)
{
    struct sg_link_chan *ch = chan(l, id);
    const struct sg_link_chan_ops *ops = live_ops(ch);
    if (ops && ops->cancelled) ops->cancelled(ch, ch->owner);
    empty_amqp_pool(&l->pool);
}

void fl_chan_close(struct sg_link *l, uint16_t id, int code, const char *text)
{
    struct sg_link_chan *ch = chan(l, id);
    amqp_channel_close_ok_t ok = {0};
    sg_link_send(ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    const struct sg_link_chan_ops *ops = live_ops(ch);
    void *owner = ch->owner;
    l->chans[id] = NULL; /* the id may be reused from the callback on */
    ch->closing = 1;
    if (ops && ops->closed) ops->closed(ch, owner, code, text);
    free(ch);
    empty_amqp_pool(&l->pool);
}

void fl_close_ok(struct sg_link *l, uint16_t id)
{
    struct sg_link_chan *ch = chan(l, id);
    assert_true(ch->closing);
    l->chans[id] = NULL;
    free(ch);
}

/* ---- what the relay did */

int fl_is_up(const struct sg_link *l)
{
    return l->open;
}

const char *fl_passcode(const struct sg_link *l)
{
    return l->passcode;
}

int fl_chan_state(const struct sg_link *l, uint16_t id)
{
    if (!l->open || !l->chans || id == 0 || id > l->chan_max || !l->chans[id]) return 0;
    return l->chans[id]->closing ? 2 : 1;
}

size_t fl_nrec(const struct sg_link *l)
{
    return l->nrec;
}

const struct fl_rec *fl_rec(const struct sg_link *l, size_t i)
{
    return i < l->nrec ? &l->recs[i] : NULL;
}

const struct fl_rec *fl_find(const struct sg_link *l, size_t from, uint16_t ch,
                             amqp_method_number_t id, size_t *at)
{
    for (size_t i = from; i < l->nrec; i++)
        if (l->recs[i].id == id && (!ch || l->recs[i].ch == ch)) {
            if (at) *at = i;
            return &l->recs[i];
        }
    return NULL;
}

size_t fl_count(const struct sg_link *l, size_t from, uint16_t ch, amqp_method_number_t id)
{
    size_t n = 0;
    for (size_t i = from; i < l->nrec; i++)
        if (l->recs[i].id == id && (!ch || l->recs[i].ch == ch)) n++;
    return n;
}

static const char *method_name(amqp_method_number_t id)
{
    return id == FL_PUBLISH ? "basic.publish" : amqp_method_name(id);
}

void fl_dump(const struct sg_link *l, size_t from, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = 0;
    for (size_t i = from; i < l->nrec && n < cap; i++) {
        const struct fl_rec *r = &l->recs[i];
        int k = snprintf(out + n, cap - n, "  [%zu] ch %u %s q=%s ex=%s rk=%s seq=%llu\n", i, r->ch,
                         method_name(r->id), r->queue, r->exchange, r->rkey,
                         (unsigned long long)r->seq);
        if (k < 0) break;
        n += (size_t)k;
    }
}
