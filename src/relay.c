/* relay.c - the relay's facade (see relay.h): sessions attach to pooled
 * broker connections, actions are dispatched to the modules, and calls
 * into sessions go through the client ops table. */
#include "relay_int.h"
#include "error.h"
#include "gw_config.h"
#include "log.h"
#include "metrics.h"
#include "ticker.h"
#include "util.h"
#include "ws_frame.h"

#include <event2/event.h>
#include <malloc.h>
#include <stdatomic.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char errbuf[512];

char *sg_relay_errbuf_w(size_t *cap)
{
    *cap = sizeof errbuf;
    return errbuf;
}

/* ---- calls into sessions */

void sg_rsess_receipt_done(struct sg_relay_sess *rs, struct sg_rcpt *e)
{
    if (!rs || !e) return;
    sg_rcpt_queue_done(&rs->rq, e);
    if (rs->failing) return; /* no more RECEIPTs: ERROR sent, or detaching */
    void *c = rs->client;
    const struct sg_relay_client_ops *ops = rs->ops;
    char *receipt;
    ops->hold(c); /* rs stays valid until the release below */
    while (sg_rcpt_queue_pop(&rs->rq, &receipt) == SG_OK) {
        if (receipt && !rs->failing && ops->is_open(c)) ops->receipt(c, receipt);
        free(receipt);
    }
    ops->release(c);
}

void sg_rsess_fail(struct sg_relay_sess *rs, const char *msg, const char *receipt, int code)
{
    if (!rs || rs->failing) return;
    void *c = rs->client;
    rs->failing = 1;
    sg_log_sess(SG_LOG_INFO, rs->ops->id(c), "ERROR to client: %s", msg);
    rs->ops->hold(c);
    rs->ops->fail(c, msg, receipt, code);
    rs->ops->release(c);
}

void sg_victims_add(struct victims *v, struct sg_relay_sess *rs)
{
    if (!rs || rs->failing || rs->marked) return;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        struct sg_relay_sess **p = realloc(v->rs, cap * sizeof *p);
        if (!p) return;
        v->rs = p;
        v->cap = cap;
    }
    rs->marked = 1;
    rs->ops->hold(rs->client);
    v->rs[v->n++] = rs;
}

void sg_victims_fail(struct victims *v, const char *msg, int code)
{
    /* every client is held: none is freed (nor detached) before the second loop */
    for (size_t i = 0; i < v->n; i++) {
        v->rs[i]->marked = 0;
        sg_rsess_fail(v->rs[i], msg, NULL, code);
    }
    for (size_t i = 0; i < v->n; i++) {
        const struct sg_relay_client_ops *ops = v->rs[i]->ops;
        void *c = v->rs[i]->client;
        ops->release(c); /* may free the client and rs */
    }
    free(v->rs);
    v->rs = NULL;
    v->n = v->cap = 0;
}

void sg_victims_hold_all(struct victims *v, struct rlink *rl)
{
    struct sg_relay_sess *rs;
    TAILQ_FOREACH(rs, &rl->sessions, next)
    {
        sg_victims_add(v, rs);
        rs->marked = 0; /* only held: another walk may still list and fail it */
    }
}

void sg_victims_release(struct victims *v)
{
    for (size_t i = 0; i < v->n; i++) {
        const struct sg_relay_client_ops *ops = v->rs[i]->ops;
        ops->release(v->rs[i]->client); /* may free the client and rs */
    }
    free(v->rs);
    v->rs = NULL;
    v->n = v->cap = 0;
}

/* ---- link events: the consuming connection */

static void link_up(struct sg_link *l, void *arg)
{
    struct rlink *rl = arg;
    struct topic *t;
    struct sg_relay_sess *rs;
    struct sub *s;
    /* a setup that finds no channel left fails its session; a failed
     * session may be detached at its client's last release, which would
     * edit the lists walked here (and free the topic or session we are
     * on): hold them all until the walk is over */
    struct victims held = {0};
    sg_victims_hold_all(&held, rl);
    LIST_FOREACH(t, &rl->topics, next)
    sg_fanout_setup(t);
    TAILQ_FOREACH(rs, &rl->sessions, next)
    TAILQ_FOREACH(s, &rs->subs, snext)
    if (!s->topic) sg_sub_setup(s);
    sg_victims_release(&held);
    if (rl->service) sg_ticker_link_up(rl->r, 0);
}

static void link_down(struct sg_link *l, void *arg)
{
    struct rlink *rl = arg;
    struct topic *t;
    struct sg_relay_sess *rs;
    struct sub *s;
    LIST_FOREACH(t, &rl->topics, next)
    {
        t->ch = NULL;
        t->ready = 0;
    }
    TAILQ_FOREACH(rs, &rl->sessions, next)
    TAILQ_FOREACH(s, &rs->subs, snext)
    sg_sub_link_down(s);
    if (rl->service) sg_ticker_link_down(rl->r, 0);
}

static void link_refused(struct sg_link *l, void *arg, const char *reason)
{
    struct rlink *rl = arg;
    if (rl->service) return;
    struct victims v = {0};
    struct sg_relay_sess *rs;
    TAILQ_FOREACH(rs, &rl->sessions, next)
    sg_victims_add(&v, rs);
    sg_victims_fail(&v, "access refused", SG_WS_CLOSE_POLICY);
}

static const struct sg_link_ops link_ops = {link_up, link_down, NULL, link_refused};

/* ---- link events: the publishing connection */

static void plink_up(struct sg_link *l, void *arg)
{
    /* the held SENDs go out from a list of their own, out of the reach of
     * sg_pub_forget_session: one that fails may end its session, which
     * must not be detached before the walk is over */
    struct victims held = {0};
    sg_victims_hold_all(&held, arg);
    sg_pub_link_up(arg);
    sg_victims_release(&held);
    struct rlink *rl = arg;
    if (rl->service) sg_ticker_link_up(rl->r, 1);
}

static void plink_down(struct sg_link *l, void *arg)
{
    struct rlink *rl = arg;
    struct sg_relay_sess *rs;
    TAILQ_FOREACH(rs, &rl->sessions, next)
    if (rs->paused) {
        rs->paused = 0;
        rs->ops->pause_read(rs->client, 0);
    }
    sg_pub_link_down(rl);
    if (rl->service) sg_ticker_link_down(rl->r, 1);
}

static void plink_blocked(struct sg_link *l, void *arg, int blocked)
{
    /* blocked: a session is paused when it publishes (relay_publish.c);
     * unblocked: every paused session reads again and what was held is
     * published */
    struct rlink *rl = arg;
    struct sg_relay_sess *rs;
    if (!blocked) TAILQ_FOREACH(rs, &rl->sessions, next)
    if (rs->paused) {
        rs->paused = 0;
        rs->ops->pause_read(rs->client, 0);
    }
    sg_pub_blocked(rl, blocked);
}

static const struct sg_link_ops plink_ops = {plink_up, plink_down, plink_blocked, link_refused};

int sg_rlink_open_publisher(struct rlink *rl)
{
    if (rl->plink) return SG_OK;
    struct sg_relay *r = rl->r;
    rl->plink = sg_link_new(&r->lenv, sg_link_login(rl->link), rl->passcode,
                            sg_link_vhost(rl->link), 0, &plink_ops, rl);
    if (!rl->plink) return SG_ENOMEM;
    if (r->shutting_down) sg_link_shutdown(rl->plink);
    return SG_OK;
}

static struct rlink *rlink_get(struct sg_relay *r, const char *login, const char *passcode,
                               const char *vhost, int service)
{
    struct rlink *rl;
    LIST_FOREACH(rl, &r->links, next)
    if (!rl->service == !service && !strcmp(sg_link_login(rl->link), login) &&
        !strcmp(sg_link_vhost(rl->link), vhost)) {
        /* the newest accepted passcode is the one to log in again with */
        sg_link_set_passcode(rl->link, passcode);
        if (rl->plink) sg_link_set_passcode(rl->plink, passcode);
        snprintf(rl->passcode, sizeof rl->passcode, "%s", passcode);
        return rl;
    }
    if (!(rl = calloc(1, sizeof *rl))) return NULL;
    rl->r = r;
    rl->service = service;
    snprintf(rl->passcode, sizeof rl->passcode, "%s", passcode);
    TAILQ_INIT(&rl->sessions);
    LIST_INIT(&rl->topics);
    STAILQ_INIT(&rl->unconf);
    STAILQ_INIT(&rl->held);
    STAILQ_INIT(&rl->preps);
    LIST_INSERT_HEAD(&r->links, rl, next);
    /* last: the link may come up (and call link_up) only from the loop */
    rl->link = sg_link_new(&r->lenv, login, passcode, vhost, service, &link_ops, rl);
    if (!rl->link) {
        LIST_REMOVE(rl, next);
        free(rl);
        return NULL;
    }
    return rl;
}

static void rlink_free(struct rlink *rl)
{
    sg_link_free(rl->link); /* no callbacks */
    sg_link_free(rl->plink);
    OPENSSL_cleanse(rl->passcode, sizeof rl->passcode);
    sg_pub_free_all(rl);
    sg_fanout_free_all(rl);
    for (unsigned i = 0; i < RL_KNOWN; i++) {
        free(rl->queues.names[i]);
        free(rl->exchanges.names[i]);
    }
    free(rl);
}

static size_t out_bytes(const struct sg_relay *r)
{
    long n = r->env.out_bytes ? atomic_load_explicit(r->env.out_bytes, memory_order_relaxed) : 0;
    return n > 0 ? (size_t)n : 0;
}

int sg_relay_pressure(const struct sg_relay *r)
{
    size_t share = r->env.memory_share;
    if (!share) return 0;
    size_t used = r->held_bytes + out_bytes(r);
    return used > share ? 2 : used > share / 2 ? 1 : 0;
}

/* glibc keeps freed memory for reuse; after a burst that buffered a lot,
 * give it back once the buffers are empty again (RSS returns near idle) */
static atomic_long trim_peak;

static void maybe_trim(struct sg_relay *r)
{
    long used = (long)(r->held_bytes + out_bytes(r));
    long peak = atomic_load_explicit(&trim_peak, memory_order_relaxed);
    if (used > peak) {
        atomic_store_explicit(&trim_peak, used, memory_order_relaxed);
    } else if (peak > (8L << 20) && used < (1L << 20) &&
               atomic_compare_exchange_strong(&trim_peak, &peak, 0)) {
        malloc_trim(0);
    }
}

/* Every 250 ms: held SENDs that waited too long get their ERROR; upstreams
 * are acked once the pressure is gone; memory goes back after a burst. */
static void hold_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_relay *r = arg;
    sg_pub_hold_timeouts(r);
    sg_fanout_ack_all(r);
    maybe_trim(r);
}

/* ---- public API */

struct sg_relay *sg_relay_new(const struct sg_relay_env *env)
{
    struct sg_relay *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->env = *env;
    const struct sg_gw_config *cfg = env->cfg;
    r->drop_policy = strcmp(cfg->slow_consumer_policy, "close") != 0;
    r->lenv.base = env->base;
    r->lenv.auth = env->auth;
    r->lenv.auth_target = env->auth_target;
    r->lenv.worker_id = env->worker_id;
    r->lenv.reconnect_max_ms = (unsigned)cfg->reconnect_max_ms;
    r->lenv.channel_max = (unsigned)cfg->broker_channel_max;
    r->lenv.flush = env->flush;
    r->lenv.flush_arg = env->flush_arg;
    r->lenv.metrics = env->metrics;
    LIST_INIT(&r->links);
    sg_buf_init(&r->scratch, 0);
    sg_buf_init(&r->head, 0);
    r->hold_timer = event_new(env->base, -1, EV_PERSIST, hold_timer_cb, r);
    if (!r->hold_timer) {
        free(r);
        return NULL;
    }
    struct timeval tv = {0, 250000};
    event_add(r->hold_timer, &tv);
    r->service = rlink_get(r, cfg->broker_user, cfg->broker_password, cfg->broker_vhost, 1);
    if (!r->service || sg_ticker_new(r) != SG_OK) {
        sg_relay_free(r);
        return NULL;
    }
    return r;
}

void sg_relay_shutdown(struct sg_relay *r)
{
    if (!r) return;
    r->shutting_down = 1;
    sg_ticker_shutdown(r);
    struct rlink *rl;
    LIST_FOREACH(rl, &r->links, next)
    {
        sg_link_shutdown(rl->link);
        if (rl->plink) sg_link_shutdown(rl->plink);
    }
    event_del(r->hold_timer);
}

void sg_relay_free(struct sg_relay *r)
{
    if (!r) return;
    sg_ticker_free(r);
    struct rlink *rl;
    while ((rl = LIST_FIRST(&r->links))) {
        LIST_REMOVE(rl, next);
        rlink_free(rl);
    }
    if (r->hold_timer) event_free(r->hold_timer);
    sg_buf_reset(&r->scratch);
    sg_buf_reset(&r->head);
    free(r);
}

size_t sg_relay_pending(const struct sg_relay *r)
{
    size_t n = 0;
    const struct rlink *rl;
    const struct pub *p;
    const struct prep *pr;
    /* a broker that is away (the service connection is down too) will not
     * confirm anything soon: nothing to wait for */
    if (!sg_relay_ready(r)) return 0;
    LIST_FOREACH(rl, &r->links, next)
    {
        /* nor will one that blocks publishers */
        if (!rl->plink || sg_link_is_blocked(rl->plink)) continue;
        STAILQ_FOREACH(p, &rl->unconf, next)
        n++;
        STAILQ_FOREACH(p, &rl->held, next)
        n++;
        STAILQ_FOREACH(pr, &rl->preps, next)
        STAILQ_FOREACH(p, &pr->waiting, next)
        n++;
    }
    return n;
}

int sg_relay_ready(const struct sg_relay *r)
{
    return r && r->service && sg_link_is_open(r->service->link);
}

int sg_relay_attach(struct sg_relay *r, const struct sg_relay_client_ops *ops, void *client,
                    const char *login, const char *passcode, const char *vhost,
                    struct sg_relay_sess **out)
{
    *out = NULL;
    struct sg_relay_sess *rs = calloc(1, sizeof *rs);
    if (!rs) return SG_ENOMEM;
    rs->rl = rlink_get(r, login, passcode, vhost, 0);
    if (!rs->rl) {
        free(rs);
        return SG_ENOMEM;
    }
    rs->ops = ops;
    rs->client = client;
    TAILQ_INIT(&rs->subs);
    TAILQ_INIT(&rs->qsubs);
    sg_rcpt_queue_init(&rs->rq, (size_t)r->env.cfg->max_pending_receipts);
    snprintf(rs->login, sizeof rs->login, "%s", login);
    TAILQ_INSERT_TAIL(&rs->rl->sessions, rs, next);
    /* a session that arrives while the broker blocks publishing is paused
     * like the others: on its first SEND (relay_publish.c) */
    *out = rs;
    return SG_OK;
}

void sg_relay_detach(struct sg_relay_sess *rs)
{
    if (!rs) return;
    struct rlink *rl = rs->rl;
    struct sub *s;
    /* the client is being freed: nothing below may call into it */
    rs->failing = 1;
    sg_ticker_detach(rs);
    while ((s = TAILQ_FIRST(&rs->subs))) {
        TAILQ_REMOVE(&rs->subs, s, snext);
        struct pub *p;
        STAILQ_FOREACH(p, &s->waiting, next)
        {
            p->rs = NULL;
            p->rc = NULL;
        }
        sg_sub_unlink(s);
        sg_sub_free(s);
    }
    sg_pub_forget_session(rl, rs);
    sg_rcpt_queue_reset(&rs->rq);
    TAILQ_REMOVE(&rl->sessions, rs, next);
    free(rs);
}

void sg_relay_drained(struct sg_relay_sess *rs)
{
    if (!rs) return;
    sg_ticker_drained(rs); /* quotes need no broker connection of the session's */
    if (!sg_link_is_open(rs->rl->link)) return;
    struct sub *s;
    TAILQ_FOREACH(s, &rs->subs, snext)
    sg_sub_drained(s);
}

static int parse_bool(const struct sg_stomp_frame *f, const char *key, int def)
{
    const struct sg_stomp_header *h = sg_stomp_header(f, key);
    if (!h) return def;
    return h->value_len == 4 && !memcmp(h->value, "true", 4);
}

static int do_subscribe(struct sg_relay_sess *rs, const struct sg_action *a, const char **errmsg)
{
    struct sg_relay *r = rs->rl->r;
    const struct sg_gw_config *cfg = r->env.cfg;
    size_t cap;
    char *eb = sg_relay_errbuf_w(&cap);
    const char *why = NULL;
    if (rs->nsubs >= (size_t)cfg->max_subscriptions) {
        snprintf(eb, cap, "too many subscriptions (max_subscriptions %lld, temp queues count)",
                 (long long)cfg->max_subscriptions);
        *errmsg = eb;
        return SG_ETOOMANY;
    }
    const char *sym;
    if (r->tk && sg_ticker_quote_dest(cfg->quote_prefix, a->destination, &sym))
        return sg_ticker_subscribe(rs, a, sym, errmsg);
    struct sub *s = calloc(1, sizeof *s);
    if (!s) goto nomem;
    STAILQ_INIT(&s->waiting);
    if (sg_route_parse(a->destination, SG_ROUTE_FOR_SUBSCRIBE, &s->route, &why) != SG_OK) {
        snprintf(eb, cap, "invalid destination %.300s: %s", a->destination, why);
        *errmsg = eb;
        free(s);
        return SG_EDEST;
    }
    s->rs = rs;
    s->id = strdup(a->sub_id);
    s->dest = strdup(a->destination);
    if (!s->id || !s->dest) goto nomem;
    s->ack = a->ack_mode;
    const struct sg_stomp_header *pf = sg_stomp_header(a->frame, "prefetch-count");
    long prefetch = (long)cfg->prefetch;
    if (pf) {
        char tmp[16];
        snprintf(tmp, sizeof tmp, "%.*s", (int)(pf->value_len < 15 ? pf->value_len : 15),
                 pf->value);
        char *end;
        prefetch = strtol(tmp, &end, 10);
        if (!pf->value_len || *end || prefetch < 0 || pf->value_len > 10) {
            *errmsg = "invalid prefetch-count header";
            sg_sub_free(s);
            return SG_ESTOMP;
        }
    }
    /* 0 means "unlimited" to the plugin; here it is the configured bound */
    if (prefetch == 0 || prefetch > (long)cfg->max_prefetch) prefetch = (long)cfg->max_prefetch;
    s->prefetch = (uint16_t)prefetch;
    size_t bytes;
    struct sg_stomp_frame_copy *xc =
        sg_stomp_frame_copy_filter(a->frame, sg_sub_is_queue_arg, NULL, 0, &bytes);
    if (!xc) goto nomem;
    if (sg_stomp_frame_copy_nheaders(xc))
        s->args = xc;
    else
        sg_stomp_frame_copy_free(xc);
    s->durable = parse_bool(a->frame, "durable", s->route.kind == SG_ROUTE_QUEUE) ||
                 (s->route.shared && parse_bool(a->frame, "persistent", 0));
    s->auto_delete = parse_bool(a->frame, "auto-delete", 0);
    s->exclusive = parse_bool(a->frame, "exclusive", 0);
    if (s->route.shared && s->ack == SG_ACK_AUTO && !s->durable &&
        !sg_stomp_header(a->frame, "x-queue-name"))
        return sg_fanout_subscribe(rs, s, a->receipt, errmsg);
    /* a private queue and channel */
    if (s->route.kind == SG_ROUTE_QUEUE || s->route.kind == SG_ROUTE_AMQ_QUEUE) {
        snprintf(s->qname, sizeof s->qname, "%s", s->route.queue);
    } else {
        const struct sg_stomp_header *qn = sg_stomp_header(a->frame, "x-queue-name");
        if (qn && qn->value_len > 0 && qn->value_len < sizeof s->qname)
            snprintf(s->qname, sizeof s->qname, "%.*s", (int)qn->value_len, qn->value);
        else if (s->durable)
            sg_sub_durable_name(s->dest, s->id, s->qname, sizeof s->qname);
        else
            snprintf(s->qname, sizeof s->qname, "stompgate-sub-%d-%llu", r->env.worker_id,
                     (unsigned long long)++r->next_qid);
    }
    s->internal_ack = s->ack == SG_ACK_AUTO;
    snprintf(s->ctag, sizeof s->ctag, "sg-%llu", (unsigned long long)++r->next_qid);
    int rc = sg_rcpt_queue_push(&rs->rq, a->receipt, 0, &s->rc);
    if (rc != SG_OK) {
        sg_sub_free(s);
        *errmsg = rc == SG_ETOOMANY ? SG_RELAY_TOO_MANY_RECEIPTS : "out of memory";
        return rc;
    }
    return sg_sub_subscribe_private(rs, s, errmsg);
nomem:
    if (s) sg_sub_free(s);
    *errmsg = "out of memory";
    return SG_ENOMEM;
}

static int do_unsubscribe(struct sg_relay_sess *rs, const struct sg_action *a, const char **errmsg)
{
    if (sg_ticker_unsubscribe(rs, a->sub_id) == SG_OK) return SG_OK;
    /* "/temp-queue/X" names a temp queue: unsubscribing removes it */
    int temp = !strncmp(a->sub_id, "/temp-queue/", 12);
    struct sub *s = sg_sub_find(rs, temp ? a->sub_id + 12 : a->sub_id, temp);
    if (!s) {
        *errmsg = "no such subscription";
        return SG_ESTATE;
    }
    TAILQ_REMOVE(&rs->subs, s, snext);
    struct sg_rcpt *e = s->rc;
    s->rc = NULL;
    sg_sub_unlink(s);
    sg_sub_free(s);
    /* a SUBSCRIBE undone before it was ready no longer holds receipts back */
    sg_rsess_receipt_done(rs, e);
    return SG_OK;
}

static int do_ack(struct sg_relay_sess *rs, const struct sg_action *a, int nack,
                  const char **errmsg)
{
    struct sg_link *l = rs->rl->link;
    unsigned gen, chid;
    unsigned long long tag;
    int n = 0;
    /* quote MESSAGEs (relay_ticker.c) need no acknowledgement */
    if (a->ack_id && !strncmp(a->ack_id, "q-", 2)) return SG_OK;
    if (!a->ack_id || sscanf(a->ack_id, "%u.%u.%llu%n", &gen, &chid, &tag, &n) != 3 ||
        a->ack_id[n]) {
        *errmsg = "unknown ack id";
        return SG_ESTOMP;
    }
    if (gen != sg_link_gen(l) || !sg_link_is_open(l)) {
        /* from before a broker reconnect: the broker has requeued that
         * message already and will deliver it again (redelivered:true) */
        return SG_OK;
    }
    struct sub *s;
    TAILQ_FOREACH(s, &rs->subs, snext)
    if (s->ch && sg_link_chan_id(s->ch) == chid && !s->internal_ack) break;
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
        amqp_basic_nack_t m = {tag, multiple, rs->rl->r->env.cfg->nack_requeue};
        sg_link_send(s->ch, AMQP_BASIC_NACK_METHOD, &m);
    } else {
        amqp_basic_ack_t m = {tag, multiple};
        sg_link_send(s->ch, AMQP_BASIC_ACK_METHOD, &m);
    }
    return SG_OK;
}

int sg_relay_action(struct sg_relay_sess *rs, const struct sg_action *a, const char **errmsg)
{
    *errmsg = "unsupported action";
    if (!rs) {
        *errmsg = "not connected to the broker";
        return SG_EBROKER;
    }
    int rc = SG_EPROTO;
    switch (a->type) {
    case SG_ACT_SUBSCRIBE:
        rc = do_subscribe(rs, a, errmsg);
        break;
    case SG_ACT_UNSUBSCRIBE:
        rc = do_unsubscribe(rs, a, errmsg);
        break;
    case SG_ACT_SEND:
        rc = sg_pub_send(rs, a, errmsg);
        break;
    case SG_ACT_ACK:
        rc = do_ack(rs, a, 0, errmsg);
        break;
    case SG_ACT_NACK:
        rc = do_ack(rs, a, 1, errmsg);
        break;
    }
    if (rc == SG_OK && a->receipt && !sg_rcpt_queue_is_empty(&rs->rq)) {
        /* done, but an earlier frame's RECEIPT is still owed: keep the order */
        int prc = sg_rcpt_queue_push(&rs->rq, a->receipt, 1, NULL);
        if (prc == SG_OK) return SG_AGAIN;
        *errmsg = prc == SG_ETOOMANY ? SG_RELAY_TOO_MANY_RECEIPTS : "out of memory";
        return prc;
    }
    return rc;
}
