/* amqp_link.c - one broker connection on a worker's loop (see amqp_link.h). */
#include "amqp_link.h"
#include "auth.h"
#include "error.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#include <amqp_framing.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum link_state { L_DOWN, L_CONNECTING, L_OPEN, L_FAILING };

struct sg_link_chan {
    uint16_t id;
    struct sg_link *l;
    const struct sg_link_chan_ops *ops;
    void *owner;
    int closing; /* close sent: no callbacks, freed on close-ok */
    /* delivery being assembled: basic.deliver/return, header, body frames */
    int asm_state; /* 0 idle, 1 header expected, 2 body */
    int asm_return;
    int returned_next; /* the next confirm belongs to a returned message */
    uint64_t tag;
    int redelivered;
    char exch[256], rkey[256], ctag[256];
    amqp_basic_properties_t *props;
    uint64_t body_size;
    struct evbuffer *body;
};

struct sg_link {
    const struct sg_link_env *env;
    const struct sg_link_ops *ops;
    void *arg;
    char login[256], passcode[256], vhost[256];
    int service;
    enum link_state state;
    int ever_up, shutting_down;
    uint64_t down_since;
    char fail_reason[200];
    amqp_connection_state_t amqp;
    struct event *rev, *retry, *drain_ev;
    unsigned backoff_ms, rng;
    unsigned gen;
    int blocked;
    unsigned chan_max;
    struct sg_link_chan **chans;
    uint16_t next_chan;
    struct sg_auth_req *connecting;
    amqp_pool_t pool;
    int counted_open; /* counted in metrics->links_open (and service_up) */
    /* when each fan-out delivery of the current drain was read (ns): a
     * delivery takes at least two frames (method, header), so a batch
     * holds fewer than SG_LINK_DRAIN_BATCH of them */
    uint64_t lat_t[SG_LINK_DRAIN_BATCH / 2];
    unsigned lat_n;
};

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

static unsigned jitter(struct sg_link *l, unsigned ms)
{
    l->rng = l->rng * 1103515245u + 12345u;
    return ms / 2 + (l->rng >> 8) % (ms / 2 + 1);
}

/* Drain again soon - after the loop has polled the sockets. A plain
 * event_active() here would re-queue the drain into the very pass of
 * active callbacks that runs it, so while the broker keeps sending, the
 * loop would never get back to epoll: no client socket would be written
 * (their EV_WRITE events are only seen there), their output would pile
 * up in memory and nothing would be delivered. A zero timeout goes through
 * the poll first. */
static void schedule_drain(struct sg_link *l)
{
    static const struct timeval now = {0, 0};
    event_add(l->drain_ev, &now);
}

/* The next connection attempt, after a jittered, doubling backoff. */
static void schedule_retry(struct sg_link *l)
{
    if (l->shutting_down) return;
    unsigned ms = jitter(l, l->backoff_ms);
    unsigned cap = l->env->reconnect_max_ms ? l->env->reconnect_max_ms : 5000;
    l->backoff_ms = l->backoff_ms * 2 > cap ? cap : l->backoff_ms * 2;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(l->retry, &tv);
}

static void link_fail(struct sg_link *l, const char *why)
{
    if (l->state != L_OPEN) return;
    l->state = L_FAILING;
    snprintf(l->fail_reason, sizeof l->fail_reason, "%.199s", why);
    schedule_drain(l);
}

/* ---- channels */

static void chan_free(struct sg_link_chan *ch)
{
    if (!ch) return;
    struct sg_link *l = ch->l;
    if (l->chans && l->chans[ch->id] == ch) l->chans[ch->id] = NULL;
    evbuffer_free(ch->body);
    free(ch);
}

int sg_link_chan_open(struct sg_link *l, const struct sg_link_chan_ops *ops, void *owner,
                      struct sg_link_chan **out)
{
    *out = NULL;
    if (l->state != L_OPEN) return SG_EBROKER;
    uint16_t id = 0;
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
    if (!ch || !(ch->body = evbuffer_new())) {
        free(ch);
        return SG_ENOMEM;
    }
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
    amqp_channel_close_t m = {AMQP_REPLY_SUCCESS, B("closed by stompgate"), 0, 0};
    /* freed on close-ok, or with the connection if that is failing: never
     * here, a delivery on it may be being handled */
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
    /* ch NULL is channel 0, which only the link itself uses */
    if (!ch) return SG_EBROKER;
    struct sg_link *l = ch->l;
    if (l->state != L_OPEN) return SG_EBROKER;
    int st = amqp_send_method(l->amqp, ch->id, id, method);
    if (st != AMQP_STATUS_OK) {
        link_fail(l, amqp_error_string2(st));
        return SG_EBROKER;
    }
    return SG_OK;
}

int sg_link_publish(struct sg_link_chan *ch, const char *exchange, const char *routing_key,
                    int mandatory, const amqp_basic_properties_t *props, const void *body,
                    size_t len)
{
    struct sg_link *l = ch->l;
    if (l->state != L_OPEN || ch->closing) return SG_EBROKER;
    amqp_bytes_t b = {len, (void *)body};
    int st =
        amqp_basic_publish(l->amqp, ch->id, B(exchange), B(routing_key), mandatory, 0, props, b);
    if (st == AMQP_STATUS_OK) {
        /* basic_publish may have read frames into rabbitmq-c's queue */
        schedule_drain(l);
        return SG_OK;
    }
    /* encoding errors leave nothing on the wire: the message is at fault */
    if (st == AMQP_STATUS_TABLE_TOO_BIG || st == AMQP_STATUS_BAD_AMQP_DATA ||
        st == AMQP_STATUS_INVALID_PARAMETER)
        return SG_ESTOMP;
    link_fail(l, amqp_error_string2(st));
    return SG_EBROKER;
}

amqp_pool_t *sg_link_pool(struct sg_link *l)
{
    return &l->pool;
}

/* ---- frames from the broker */

static void delivery_complete(struct sg_link_chan *ch)
{
    if (ch->asm_return) {
        ch->returned_next = 1; /* its confirm comes next */
    } else {
        struct sg_link *l = ch->l;
        SG_METRIC_ADD(l->env->metrics, deliveries, 1);
        if (!ch->closing && ch->ops && ch->ops->delivery) {
            if (ch->ops->fanout && l->env->metrics &&
                l->lat_n < sizeof l->lat_t / sizeof l->lat_t[0])
                l->lat_t[l->lat_n++] = sg_now_ns();
            struct sg_link_delivery d = {ch->tag,  ch->redelivered, ch->exch, ch->rkey,
                                         ch->ctag, ch->props,       ch->body};
            ch->ops->delivery(ch, ch->owner, &d);
        }
    }
    ch->asm_state = 0;
    ch->asm_return = 0;
    ch->props = NULL;
    evbuffer_drain(ch->body, evbuffer_get_length(ch->body));
}

static void on_channel_close(struct sg_link_chan *ch, amqp_channel_close_t *m)
{
    struct sg_link *l = ch->l;
    char text[256];
    copy_bytes(text, sizeof text, m->reply_text);
    sg_log(SG_LOG_INFO, "broker closed channel %u (worker %d, user %s): %d %s", ch->id,
           l->env->worker_id, l->login, m->reply_code, text);
    amqp_channel_close_ok_t ok = {0};
    sg_link_send(ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    const struct sg_link_chan_ops *ops = ch->closing ? NULL : ch->ops;
    void *owner = ch->owner;
    l->chans[ch->id] = NULL; /* the id may be reused from the callback on */
    ch->closing = 1;
    if (ops && ops->closed) ops->closed(ch, owner, m->reply_code, text);
    chan_free(ch);
}

static void on_conn_method(struct sg_link *l, amqp_method_t *m)
{
    switch (m->id) {
    case AMQP_CONNECTION_CLOSE_METHOD: {
        amqp_connection_close_t *cm = m->decoded;
        char why[200];
        snprintf(why, sizeof why, "broker closed the connection: %.*s", (int)cm->reply_text.len,
                 (const char *)cm->reply_text.bytes);
        amqp_connection_close_ok_t ok = {0};
        amqp_send_method(l->amqp, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        link_fail(l, why);
        break;
    }
    case AMQP_CONNECTION_BLOCKED_METHOD:
        sg_log(SG_LOG_WARN, "broker blocked publishing (worker %d, user %s): holding SENDs",
               l->env->worker_id, l->login);
        l->blocked = 1;
        if (l->ops->blocked) l->ops->blocked(l, l->arg, 1);
        break;
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
        sg_log(SG_LOG_INFO, "broker unblocked publishing (worker %d, user %s)", l->env->worker_id,
               l->login);
        l->blocked = 0;
        if (l->ops->blocked) l->ops->blocked(l, l->arg, 0);
        break;
    }
}

static void on_method(struct sg_link *l, uint16_t chid, amqp_method_t *m)
{
    if (chid == 0) {
        on_conn_method(l, m);
        return;
    }
    struct sg_link_chan *ch = chid <= l->chan_max ? l->chans[chid] : NULL;
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
    case AMQP_CHANNEL_CLOSE_METHOD:
        on_channel_close(ch, m->decoded);
        return;
    case AMQP_CHANNEL_CLOSE_OK_METHOD:
        chan_free(ch);
        return;
    }
    if (ch->closing || !ch->ops) return;
    switch (m->id) {
    case AMQP_BASIC_ACK_METHOD:
    case AMQP_BASIC_NACK_METHOD: {
        int ok = m->id == AMQP_BASIC_ACK_METHOD;
        uint64_t tag = ok ? ((amqp_basic_ack_t *)m->decoded)->delivery_tag
                          : ((amqp_basic_nack_t *)m->decoded)->delivery_tag;
        int multiple = ok ? ((amqp_basic_ack_t *)m->decoded)->multiple
                          : ((amqp_basic_nack_t *)m->decoded)->multiple;
        int returned = ch->returned_next && !multiple;
        ch->returned_next = 0;
        if (ch->ops->confirm) ch->ops->confirm(ch, ch->owner, tag, multiple, ok, returned);
        return;
    }
    case AMQP_BASIC_CANCEL_METHOD:
        if (ch->ops->cancelled) ch->ops->cancelled(ch, ch->owner);
        return;
    default:
        if (ch->ops->reply) ch->ops->reply(ch, ch->owner, m->id, m->decoded);
    }
}

static void on_frame(struct sg_link *l, amqp_frame_t *f)
{
    if (f->frame_type == AMQP_FRAME_METHOD) {
        on_method(l, f->channel, &f->payload.method);
        return;
    }
    struct sg_link_chan *ch = f->channel <= l->chan_max ? l->chans[f->channel] : NULL;
    if (!ch) return;
    if (f->frame_type == AMQP_FRAME_HEADER && ch->asm_state == 1) {
        ch->props = f->payload.properties.decoded;
        ch->body_size = f->payload.properties.body_size;
        ch->asm_state = 2;
        if (ch->body_size == 0) delivery_complete(ch);
    } else if (f->frame_type == AMQP_FRAME_BODY && ch->asm_state == 2) {
        evbuffer_add(ch->body, f->payload.body_fragment.bytes, f->payload.body_fragment.len);
        if (evbuffer_get_length(ch->body) >= ch->body_size) delivery_complete(ch);
    }
}

/* ---- lifecycle */

static void link_connect(struct sg_link *l);

/* The connection is no longer open (lost or freed): uncount it. */
static void uncount_open(struct sg_link *l)
{
    if (!l->counted_open) return;
    l->counted_open = 0;
    SG_METRIC_ADD(l->env->metrics, links_open, -1);
    if (l->service) SG_METRIC_ADD(l->env->metrics, service_up, -1);
}

static void link_lost(struct sg_link *l)
{
    if (l->state != L_OPEN && l->state != L_FAILING) return;
    uncount_open(l);
    SG_METRIC_ADD(l->env->metrics, link_losses, 1);
    sg_log(SG_LOG_WARN, "broker connection (worker %d, user %s, vhost %s%s) lost: %s; reconnecting",
           l->env->worker_id, l->login, l->vhost, l->service ? ", service" : "",
           l->fail_reason[0] ? l->fail_reason : "closed");
    l->fail_reason[0] = 0;
    event_free(l->rev);
    l->rev = NULL;
    event_del(l->retry);
    amqp_destroy_connection(l->amqp);
    l->amqp = NULL;
    l->state = L_DOWN;
    l->blocked = 0;
    l->down_since = sg_now_ms();
    /* every channel is gone: tell the owners, then free */
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
        evbuffer_free(ch->body);
        free(ch);
    }
    free(chans);
    if (l->ops->down) l->ops->down(l, l->arg);
    schedule_retry(l);
}

static void drain_frames(struct sg_link *l)
{
    for (int i = 0; i < SG_LINK_DRAIN_BATCH && l->state == L_OPEN; i++) {
        amqp_frame_t f;
        struct timeval tv = {0, 0};
        int st = amqp_simple_wait_frame_noblock(l->amqp, &f, &tv);
        if (st == AMQP_STATUS_TIMEOUT) goto out;
        if (st != AMQP_STATUS_OK) {
            link_fail(l, amqp_error_string2(st));
            break;
        }
        on_frame(l, &f);
        if (l->state == L_OPEN &&
            (f.frame_type == AMQP_FRAME_METHOD || f.frame_type == AMQP_FRAME_BODY)) {
            struct sg_link_chan *ch = f.channel <= l->chan_max ? l->chans[f.channel] : NULL;
            if (!ch || ch->asm_state == 0)
                amqp_maybe_release_buffers_on_channel(l->amqp, f.channel);
        }
    }
    if (l->state == L_FAILING) {
        link_lost(l);
        goto out;
    }
    if (l->state == L_OPEN) schedule_drain(l); /* more: after the sockets had their turn */
out:
    empty_amqp_pool(&l->pool);
}

static void drain(struct sg_link *l)
{
    drain_frames(l);
    if (l->env->flush) l->env->flush(l->env->flush_arg);
    /* the fan-out deliveries of this drain are on their clients' sockets
     * (or queued where a socket would block): one latency each */
    if (l->lat_n) {
        uint64_t now = sg_now_ns();
        for (unsigned i = 0; i < l->lat_n; i++)
            sg_metrics_observe_latency(l->env->metrics, now - l->lat_t[i]);
        l->lat_n = 0;
    }
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    drain(arg);
}

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_link *l = arg;
    if (l->state == L_FAILING) {
        link_lost(l);
        if (l->env->flush) l->env->flush(l->env->flush_arg);
    } else if (l->state == L_OPEN) {
        drain(l);
    }
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_link *l = arg;
    if (l->state == L_DOWN) {
        link_connect(l);
    } else if (l->state == L_OPEN || l->state == L_FAILING) {
        /* rabbitmq-c sends heartbeats and notices a silent broker only
         * when it is called: poke it every second */
        drain(l);
        struct timeval tv = {1, 0};
        if (l->state == L_OPEN) event_add(l->retry, &tv);
    }
}

static void link_up(struct sg_link *l, amqp_connection_state_t amqp)
{
    l->amqp = amqp;
    int cm = amqp_get_channel_max(amqp);
    unsigned max = cm <= 0 || cm > 65535 ? 65535 : (unsigned)cm;
    if (l->env->channel_max && max > l->env->channel_max) max = l->env->channel_max;
    l->chans = calloc((size_t)max + 1, sizeof *l->chans);
    if (!l->chans) {
        amqp_destroy_connection(amqp);
        l->amqp = NULL;
        l->state = L_DOWN;
        struct timeval tv = {1, 0};
        event_add(l->retry, &tv);
        return;
    }
    l->chan_max = max;
    l->next_chan = 1;
    l->state = L_OPEN;
    l->gen++;
    l->blocked = 0;
    l->rev = event_new(l->env->base, amqp_get_sockfd(amqp), EV_READ | EV_PERSIST, read_cb, l);
    event_add(l->rev, NULL);
    struct timeval tv = {1, 0};
    event_add(l->retry, &tv);
    l->counted_open = 1;
    SG_METRIC_ADD(l->env->metrics, links_open, 1);
    if (l->service) SG_METRIC_ADD(l->env->metrics, service_up, 1);
    if (l->ever_up) SG_METRIC_ADD(l->env->metrics, link_reconnects, 1);
    uint64_t now = sg_now_ms();
    if (l->ever_up)
        sg_log(SG_LOG_WARN,
               "broker connection (worker %d, user %s, vhost %s%s) re-established after %llu ms",
               l->env->worker_id, l->login, l->vhost, l->service ? ", service" : "",
               (unsigned long long)(now - l->down_since));
    else
        sg_log(SG_LOG_INFO, "broker connection (worker %d, user %s, vhost %s%s) up",
               l->env->worker_id, l->login, l->vhost, l->service ? ", service" : "");
    l->ever_up = 1;
    l->backoff_ms = 100;
    if (l->ops->up) l->ops->up(l, l->arg);
    empty_amqp_pool(&l->pool);
    schedule_drain(l);
}

static void connect_done(struct sg_auth_req *req)
{
    struct sg_link *l = req->conn;
    if (!l) {
        if (req->amqp_conn) amqp_destroy_connection(req->amqp_conn);
        return;
    }
    l->connecting = NULL;
    if (req->ok && req->amqp_conn) {
        link_up(l, req->amqp_conn);
        return;
    }
    l->state = L_DOWN;
    if (!l->down_since) l->down_since = sg_now_ms();
    if (!req->ok && !req->broker_down) {
        sg_log(SG_LOG_WARN, "broker refuses %suser %s now: %s",
               l->service ? "the bridge's own (broker_user) " : "", l->login, req->reason);
        if (l->ops->refused) l->ops->refused(l, l->arg, req->reason);
    } else {
        sg_log(SG_LOG_DEBUG, "broker connect for user %s failed: %s", l->login, req->reason);
    }
    schedule_retry(l);
}

static void link_connect(struct sg_link *l)
{
    if (l->state != L_DOWN || l->connecting || l->shutting_down) return;
    struct sg_auth_req *req = calloc(1, sizeof *req);
    if (!req) {
        struct timeval tv = {1, 0};
        event_add(l->retry, &tv);
        return;
    }
    req->w = l->env->auth_target;
    req->conn = l;
    req->done = connect_done;
    req->keep_conn = 1;
    snprintf(req->login, sizeof req->login, "%s", l->login);
    snprintf(req->passcode, sizeof req->passcode, "%s", l->passcode);
    snprintf(req->vhost, sizeof req->vhost, "%s", l->vhost);
    l->state = L_CONNECTING;
    l->connecting = req;
    (void)sg_auth_submit(l->env->auth, req); /* relay logins are never refused */
}

struct sg_link *sg_link_new(const struct sg_link_env *env, const char *login, const char *passcode,
                            const char *vhost, int service, const struct sg_link_ops *ops,
                            void *arg)
{
    static const struct sg_link_ops no_ops;
    struct sg_link *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->env = env;
    l->ops = ops ? ops : &no_ops;
    l->arg = arg;
    l->service = service;
    snprintf(l->login, sizeof l->login, "%s", login);
    snprintf(l->passcode, sizeof l->passcode, "%s", passcode);
    snprintf(l->vhost, sizeof l->vhost, "%s", vhost);
    l->backoff_ms = 100;
    l->rng = (unsigned)sg_now_ms() ^ (unsigned)((unsigned)env->worker_id * 2654435761u) ^
             (unsigned)(uintptr_t)l;
    init_amqp_pool(&l->pool, 4096);
    l->retry = evtimer_new(env->base, retry_cb, l);
    l->drain_ev = evtimer_new(env->base, drain_cb, l);
    if (!l->retry || !l->drain_ev) {
        sg_link_free(l);
        return NULL;
    }
    l->state = L_DOWN;
    link_connect(l);
    return l;
}

void sg_link_free(struct sg_link *l)
{
    if (!l) return;
    uncount_open(l);
    if (l->connecting) l->connecting->conn = NULL;
    if (l->amqp) {
        amqp_connection_close_t m = {AMQP_REPLY_SUCCESS, B("shutting down"), 0, 0};
        amqp_send_method(l->amqp, 0, AMQP_CONNECTION_CLOSE_METHOD, &m);
        amqp_destroy_connection(l->amqp);
    }
    if (l->chans)
        for (unsigned i = 0; i <= l->chan_max; i++)
            if (l->chans[i]) {
                evbuffer_free(l->chans[i]->body);
                free(l->chans[i]);
            }
    free(l->chans);
    if (l->rev) event_free(l->rev);
    if (l->retry) event_free(l->retry);
    if (l->drain_ev) event_free(l->drain_ev);
    empty_amqp_pool(&l->pool);
    OPENSSL_cleanse(l->passcode, sizeof l->passcode);
    free(l);
}

void sg_link_shutdown(struct sg_link *l)
{
    l->shutting_down = 1;
    event_del(l->retry);
}

void sg_link_set_passcode(struct sg_link *l, const char *passcode)
{
    snprintf(l->passcode, sizeof l->passcode, "%s", passcode);
}

int sg_link_is_open(const struct sg_link *l)
{
    return l && l->state == L_OPEN;
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
