/* relay_ticker.c - quote subscriptions (the stock ticker) on one worker.
 *
 * A SUBSCRIBE whose destination starts with quote_prefix (default
 * /queue/stocks.) is not a broker queue: its symbol joins the process-wide
 * interest set in the hub (ticker.h), and the worker keeps the subscriber
 * on its own list for that symbol. Worker 0 is the publisher: on the
 * bridge's service connection it consumes the results (quote_results_queue,
 * or a queue of its own bound to quote_results_exchange when several
 * bridges share the quote daemons) and, on the service connection's
 * publishing link, sends the interest set to quote_work_queue as
 * {"stocks":[...]} in chunks of quote_work_batch: new symbols at once, the
 * whole set every quote_interval_ms. Each result goes into the hub, which
 * wakes every worker holding one of its symbols; a woken worker encodes the
 * MESSAGE once per symbol (and STOMP version) and every subscriber's output
 * references it.
 *
 * Last-value cache: a new subscriber to a symbol with a known price gets it
 * at once (after its RECEIPT). Conflation: a subscriber whose output holds
 * more than quote_conflate_bytes is not written to; it owes the symbol's
 * newest price, sent when its output drains, so a slow reader gets at most
 * one pending price per symbol, never a queue (counted in the metrics): a
 * session holds at most quote_conflate_bytes plus one MESSAGE per quote
 * subscription.
 */
#include "relay_int.h"
#include "error.h"
#include "gw_config.h"
#include "log.h"
#include "metrics.h"
#include "msg_encode.h"
#include "ticker.h"
#include "util.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <uuid/uuid.h>

#define RESULT_MAX (4u << 20) /* bytes of one result message we parse */
#define RESULT_PREFETCH 64
#define TAKE_BATCH 64

struct tsym;

struct qsub {
    LIST_ENTRY(qsub) snext;  /* on its symbol */
    TAILQ_ENTRY(qsub) rnext; /* in its session */
    TAILQ_ENTRY(qsub) pnext; /* on the worker's list of new subscribers */
    struct sg_relay_sess *rs;
    struct tsym *ts;
    char *id;
    int client_ack; /* an ack header on each MESSAGE (STOMP 1.2 client modes) */
    int pending;    /* owes the subscriber its symbol's newest price */
    int fresh;      /* on the new-subscriber list */
};

/* A symbol this worker has subscribers for. */
struct tsym {
    struct tsym *next; /* hash chain */
    char sym[SG_TICKER_SYM_CAP];
    LIST_HEAD(, qsub) subs;
    size_t nsubs;
    int has; /* last holds a price */
    struct sg_quote last;
};

struct sg_ticker {
    struct sg_relay *r;
    struct sg_ticker_hub *hub;
    struct event *wake_ev;
    struct tsym **tab;
    size_t nbuckets, nsyms;
    TAILQ_HEAD(, qsub) fresh;
    uint64_t next_mid;
    /* worker 0: the broker side */
    int publisher;
    struct sg_link_chan *rch; /* results, on the service connection */
    struct sg_link_chan *wch; /* work, on its publishing link */
    int rready, wready;
    int rpassive, wpassive; /* declare passively (the broker's declaration differs) */
    struct event *tick, *retry;
    unsigned backoff_ms;
    char rqname[128];
    char (*syms)[SG_TICKER_SYM_CAP]; /* scratch for the interest set */
    size_t nsyms_cap;
    struct sg_buf work;
};

static amqp_bytes_t B(const char *s)
{
    return amqp_cstring_bytes(s);
}

#define METRIC(r, field, n)                                                                        \
    do {                                                                                           \
        long n_ = (n);                                                                             \
        if ((r)->env.metrics && n_)                                                                \
            atomic_fetch_add_explicit(&(r)->env.metrics->field, n_, memory_order_relaxed);         \
    } while (0)

static uint64_t wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static struct tsym **tslot(struct sg_ticker *tk, const char *sym)
{
    struct tsym **p = &tk->tab[sg_fnv1a(sym) & (tk->nbuckets - 1)];
    while (*p && strcmp((*p)->sym, sym))
        p = &(*p)->next;
    return p;
}

/* Doubles the buckets once the symbols outnumber them twice over. */
static void tgrow(struct sg_ticker *tk)
{
    if (tk->nsyms < tk->nbuckets * 2 || tk->nbuckets >= 65536) return;
    size_t nb = tk->nbuckets * 2;
    struct tsym **tab = calloc(nb, sizeof *tab);
    if (!tab) return; /* longer chains, still correct */
    for (size_t i = 0; i < tk->nbuckets; i++) {
        struct tsym *ts = tk->tab[i], *n;
        for (; ts; ts = n) {
            n = ts->next;
            struct tsym **p = &tab[sg_fnv1a(ts->sym) & (nb - 1)];
            ts->next = *p;
            *p = ts;
        }
    }
    free(tk->tab);
    tk->tab = tab;
    tk->nbuckets = nb;
}

/* ---- writing quotes */

static void mid_of(struct sg_ticker *tk, char *out, size_t cap)
{
    snprintf(out, cap, "q-%d-%llu", tk->r->env.worker_id, (unsigned long long)++tk->next_mid);
}

/* The shared part of a quote MESSAGE for one STOMP version into b:
 * destination, message-id, content-type, content-length, blank line, body,
 * NUL. */
static int encode_shared(struct sg_ticker *tk, struct sg_buf *b, int v, const struct sg_quote *q,
                         const char *mid)
{
    const struct sg_gw_config *cfg = tk->r->env.cfg;
    char dest[300], body[128];
    size_t bl = sg_ticker_quote_body(body, sizeof body, q);
    snprintf(dest, sizeof dest, "%s%s", cfg->quote_prefix, q->symbol);
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG;
    p.content_type = B("application/json");
    int rc = sg_msg_encode_shared(b, v, dest, mid, 0, &p, bl);
    if (rc == SG_OK) rc = sg_buf_append(b, body, bl);
    if (rc == SG_OK) rc = sg_buf_append(b, "", 1);
    return rc;
}

/* Writes one subscriber its symbol's newest price on its own (a new
 * subscriber, or one whose output drained). */
static void write_one(struct sg_ticker *tk, struct qsub *s)
{
    struct sg_relay *r = tk->r;
    struct sg_relay_sess *rs = s->rs;
    void *c = rs->client;
    s->pending = 0;
    if (!s->ts->has || rs->failing || !rs->ops->is_open(c)) return;
    int v = rs->ops->version(c);
    char mid[48];
    mid_of(tk, mid, sizeof mid);
    struct sg_buf *b = &r->head;
    sg_buf_clear(b);
    if (sg_msg_encode_head(b, v, s->id, s->client_ack ? mid : NULL) != SG_OK ||
        encode_shared(tk, b, v, &s->ts->last, mid) != SG_OK)
        return;
    rs->ops->write(c, b->data, b->len, NULL, 1);
    METRIC(r, quote_messages, 1);
}

/* Either writes s now or, if its output is backed up, leaves it owing the
 * newest price. */
static void offer(struct sg_ticker *tk, struct qsub *s)
{
    struct sg_relay_sess *rs = s->rs;
    if (rs->ops->outlen(rs->client) > (size_t)tk->r->env.cfg->quote_conflate_bytes) {
        if (s->pending) METRIC(tk->r, quote_conflated, 1);
        s->pending = 1;
        return;
    }
    write_one(tk, s);
}

/* A new price for a symbol this worker may have subscribers for. */
static void fan_out(struct sg_ticker *tk, const struct sg_quote *q)
{
    struct sg_relay *r = tk->r;
    struct tsym *ts = *tslot(tk, q->symbol);
    /* only an older price is stale: the same one may be in ts->last
     * already when a new subscriber copied it from the hub before this
     * take, and then the earlier subscribers have not had it yet (the new
     * ones leave the fresh list below, so nobody gets it twice) */
    if (!ts || (ts->has && ts->last.seq > q->seq)) return;
    ts->last = *q;
    ts->has = 1;
    size_t max = (size_t)r->env.cfg->quote_conflate_bytes;
    struct evbuffer *sh[3] = {NULL, NULL, NULL};
    char mid[48];
    mid_of(tk, mid, sizeof mid);
    long written = 0, conflated = 0;
    struct qsub *s;
    LIST_FOREACH(s, &ts->subs, snext)
    {
        struct sg_relay_sess *rs = s->rs;
        void *c = rs->client;
        if (rs->failing || !rs->ops->is_open(c)) continue;
        if (rs->ops->outlen(c) > max) {
            /* backed up: the newest price replaces the one it owes */
            if (s->pending) conflated++;
            s->pending = 1;
            continue;
        }
        s->pending = 0;
        if (s->fresh) {
            /* a new subscriber waiting for its cached price gets this one */
            TAILQ_REMOVE(&tk->fresh, s, pnext);
            s->fresh = 0;
        }
        int v = rs->ops->version(c);
        int vi = v >= 12 ? 2 : v == 11 ? 1 : 0;
        if (!sh[vi]) {
            struct sg_buf *b = &r->scratch;
            sg_buf_clear(b);
            if (encode_shared(tk, b, v, q, mid) != SG_OK || !(sh[vi] = evbuffer_new())) continue;
            evbuffer_add(sh[vi], b->data, b->len);
        }
        struct sg_buf *hb = &r->head;
        sg_buf_clear(hb);
        if (sg_msg_encode_head(hb, v, s->id, s->client_ack ? mid : NULL) != SG_OK) continue;
        rs->ops->write(c, hb->data, hb->len, sh[vi], 1);
        written++;
    }
    for (int i = 0; i < 3; i++)
        if (sh[i]) evbuffer_free(sh[i]);
    METRIC(r, quote_messages, written);
    METRIC(r, quote_conflated, conflated);
}

/* ---- the broker side (worker 0) */

static void publish_work(struct sg_ticker *tk, char (*syms)[SG_TICKER_SYM_CAP], size_t n)
{
    struct sg_relay *r = tk->r;
    const struct sg_gw_config *cfg = r->env.cfg;
    /* a broker that blocks publishers stops reading the connection: the work
     * waits for the next interval rather than fill a socket nobody reads */
    if (!tk->wready || !n || sg_link_is_blocked(r->service->plink)) return;
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    char ttl[24];
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    p.content_type = B("application/json");
    p.delivery_mode = 2; /* persistent, as the book's server sent it */
    if (cfg->quote_work_ttl_ms > 0) {
        /* stale work is no use to anyone: a quote daemon that was away
         * must not answer a backlog of it */
        snprintf(ttl, sizeof ttl, "%lld", (long long)cfg->quote_work_ttl_ms);
        p._flags |= AMQP_BASIC_EXPIRATION_FLAG;
        p.expiration = B(ttl);
    }
    size_t batch = (size_t)cfg->quote_work_batch;
    for (size_t i = 0; i < n; i += batch) {
        size_t k = n - i < batch ? n - i : batch;
        sg_buf_clear(&tk->work);
        if (sg_ticker_work_json(&tk->work, syms + i, k) != SG_OK) return;
        if (sg_link_publish(tk->wch, "", cfg->quote_work_queue, 0, &p, tk->work.data,
                            tk->work.len) != SG_OK)
            return;
        METRIC(r, quote_work, 1);
    }
}

static void publish_all(struct sg_ticker *tk)
{
    size_t n = sg_ticker_hub_interest(tk->hub, tk->syms, tk->nsyms_cap);
    publish_work(tk, tk->syms, n < tk->nsyms_cap ? n : tk->nsyms_cap);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    publish_all(arg);
}

static void on_result(struct sg_link_chan *ch, void *owner, const struct sg_link_delivery *d);
static void on_rreply(struct sg_link_chan *ch, void *owner, amqp_method_number_t id, void *m);
static void on_rcancel(struct sg_link_chan *ch, void *owner);
static void on_rclosed(struct sg_link_chan *ch, void *owner, int code, const char *text);
static void on_wclosed(struct sg_link_chan *ch, void *owner, int code, const char *text);

static const struct sg_link_chan_ops result_ops = {
    .reply = on_rreply,
    .delivery = on_result,
    .cancelled = on_rcancel,
    .closed = on_rclosed,
};
static const struct sg_link_chan_ops work_ops = {.closed = on_wclosed};

static void setup_results(struct sg_ticker *tk)
{
    struct sg_relay *r = tk->r;
    const struct sg_gw_config *cfg = r->env.cfg;
    struct sg_link *l = r->service->link;
    if (tk->rch || !sg_link_is_open(l)) return;
    if (sg_link_chan_open(l, &result_ops, tk, &tk->rch) != SG_OK) {
        tk->rch = NULL;
        return;
    }
    tk->rready = 0;
    int passive = tk->rpassive;
    if (cfg->quote_results_exchange[0]) {
        /* several bridges: each binds a queue of its own to the fanout
         * exchange, bounded (the oldest prices dropped first) */
        amqp_exchange_declare_t ed = {
            0, B(cfg->quote_results_exchange), B("fanout"), passive, 1, 0, 0, 0, amqp_empty_table};
        uuid_t u;
        char us[37];
        uuid_generate_random(u);
        uuid_unparse_lower(u, us);
        snprintf(tk->rqname, sizeof tk->rqname, "stompgate-quotes-%s", us);
        amqp_table_entry_t args[2];
        amqp_table_t at = sg_bounded_queue_args(args, cfg->upstream_max_length);
        amqp_queue_declare_t qd = {0, B(tk->rqname), 0, 0, 1, 1, 0, at};
        amqp_queue_bind_t qb = {0, B(tk->rqname),   B(cfg->quote_results_exchange), B(""),
                                0, amqp_empty_table};
        sg_link_send(tk->rch, AMQP_EXCHANGE_DECLARE_METHOD, &ed);
        sg_link_send(tk->rch, AMQP_QUEUE_DECLARE_METHOD, &qd);
        sg_link_send(tk->rch, AMQP_QUEUE_BIND_METHOD, &qb);
    } else {
        /* the book's durable queue, shared by every consumer of it */
        snprintf(tk->rqname, sizeof tk->rqname, "%s", cfg->quote_results_queue);
        amqp_queue_declare_t qd = {0, B(tk->rqname), passive, 1, 0, 0, 0, amqp_empty_table};
        sg_link_send(tk->rch, AMQP_QUEUE_DECLARE_METHOD, &qd);
    }
    amqp_basic_qos_t q = {0, RESULT_PREFETCH, 0};
    amqp_basic_consume_t c = {0, B(tk->rqname),   B("stompgate-quotes"), 0, 0, 0,
                              0, amqp_empty_table};
    sg_link_send(tk->rch, AMQP_BASIC_QOS_METHOD, &q);
    sg_link_send(tk->rch, AMQP_BASIC_CONSUME_METHOD, &c);
}

static void setup_work(struct sg_ticker *tk)
{
    struct sg_relay *r = tk->r;
    struct sg_link *l = r->service->plink;
    if (tk->wch || !l || !sg_link_is_open(l)) return;
    if (sg_link_chan_open(l, &work_ops, tk, &tk->wch) != SG_OK) {
        tk->wch = NULL;
        return;
    }
    /* the durable work queue, as the book's server declared it; the
     * publishes that follow on this channel come after the declare */
    amqp_queue_declare_t qd = {
        0, B(r->env.cfg->quote_work_queue), tk->wpassive, 1, 0, 0, 0, amqp_empty_table};
    sg_link_send(tk->wch, AMQP_QUEUE_DECLARE_METHOD, &qd);
    tk->wready = 1;
    publish_all(tk); /* whoever subscribed while we were away */
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_ticker *tk = arg;
    setup_results(tk);
    setup_work(tk);
}

/* A channel the broker closed (not the link going down): log why, adjust
 * the declaration and set it up again after a backoff. */
static void closed_retry(struct sg_ticker *tk, const char *what, int *passive, int code,
                         const char *text)
{
    /* 406: the queue or exchange exists with other arguments (e.g. a
     * quorum queue the operator declared): use it as it is; 404 with a
     * passive declare: it is gone, declare it again */
    if (code == 406) *passive = 1;
    if (code == 404) *passive = 0;
    sg_log(SG_LOG_WARN, "ticker: %s channel closed by the broker (%d %s); retrying in %u ms", what,
           code, text ? text : "", tk->backoff_ms);
    struct timeval tv = {(time_t)(tk->backoff_ms / 1000),
                         (suseconds_t)(tk->backoff_ms % 1000) * 1000};
    event_add(tk->retry, &tv);
    tk->backoff_ms = tk->backoff_ms * 2 > 30000 ? 30000 : tk->backoff_ms * 2;
}

static void on_rclosed(struct sg_link_chan *ch, void *owner, int code, const char *text)
{
    struct sg_ticker *tk = owner;
    tk->rch = NULL;
    tk->rready = 0;
    if (code) closed_retry(tk, "results", &tk->rpassive, code, text);
}

static void on_wclosed(struct sg_link_chan *ch, void *owner, int code, const char *text)
{
    struct sg_ticker *tk = owner;
    tk->wch = NULL;
    tk->wready = 0;
    if (code) closed_retry(tk, "work", &tk->wpassive, code, text);
}

static void on_rcancel(struct sg_link_chan *ch, void *owner)
{
    /* the results queue was deleted under us: set it up again */
    struct sg_ticker *tk = owner;
    sg_link_chan_close(tk->rch);
    tk->rch = NULL;
    tk->rready = 0;
    tk->rpassive = 0;
    closed_retry(tk, "results", &tk->rpassive, 0, "consumer cancelled");
}

static void on_rreply(struct sg_link_chan *ch, void *owner, amqp_method_number_t id, void *m)
{
    struct sg_ticker *tk = owner;
    if (id != AMQP_BASIC_CONSUME_OK_METHOD) return;
    tk->rready = 1;
    tk->backoff_ms = 500;
    sg_log(SG_LOG_INFO, "ticker: consuming quote results from %s%s", tk->rqname,
           tk->r->env.cfg->quote_results_exchange[0] ? " (bound to the results exchange)" : "");
}

struct result_ctx {
    struct sg_ticker *tk;
    uint64_t now;
    long n;
};

static void result_quote(void *arg, const char *symbol, double price)
{
    struct result_ctx *x = arg;
    x->n += sg_ticker_hub_update(x->tk->hub, symbol, price, x->now);
}

static void on_result(struct sg_link_chan *ch, void *owner, const struct sg_link_delivery *d)
{
    struct sg_ticker *tk = owner;
    struct sg_relay *r = tk->r;
    size_t len = evbuffer_get_length(d->body);
    size_t bad = 0;
    const char *why = "result message too large";
    int n = SG_ETOOBIG;
    struct result_ctx x = {tk, wall_ms(), 0};
    if (len <= RESULT_MAX)
        n = sg_ticker_parse_result(evbuffer_pullup(d->body, (ssize_t)len), len, result_quote, &x,
                                   &bad, &why);
    if (n < 0 || bad) {
        METRIC(r, quote_results_bad, 1);
        sg_log(SG_LOG_DEBUG, "ticker: %s in a result message (%zu bytes)",
               n < 0 ? why : "invalid entries", len);
    }
    METRIC(r, quote_updates, x.n);
    /* results are not kept: acked once read, whatever they held */
    amqp_basic_ack_t a = {d->tag, 0};
    sg_link_send(ch, AMQP_BASIC_ACK_METHOD, &a);
}

void sg_ticker_link_up(struct sg_relay *r, int publishing)
{
    struct sg_ticker *tk = r->tk;
    if (!tk || !tk->publisher) return;
    tk->backoff_ms = 500;
    if (publishing)
        setup_work(tk);
    else
        setup_results(tk);
}

void sg_ticker_link_down(struct sg_relay *r, int publishing)
{
    struct sg_ticker *tk = r->tk;
    if (!tk || !tk->publisher) return;
    if (publishing) {
        tk->wch = NULL;
        tk->wready = 0;
    } else {
        tk->rch = NULL;
        tk->rready = 0;
    }
}

/* ---- every worker: woken by the hub */

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_ticker *tk = arg;
    struct sg_relay *r = tk->r;
    if (tk->publisher) {
        size_t n;
        do {
            n = sg_ticker_hub_take_new(tk->hub, tk->syms, tk->nsyms_cap);
            publish_work(tk, tk->syms, n);
        } while (n == tk->nsyms_cap);
    }
    struct sg_quote q[TAKE_BATCH];
    size_t n;
    do {
        n = sg_ticker_hub_take(tk->hub, r->env.worker_id, q, TAKE_BATCH);
        for (size_t i = 0; i < n; i++)
            fan_out(tk, &q[i]);
    } while (n == TAKE_BATCH);
    /* new subscribers that still wait for a cached price */
    struct qsub *s;
    while ((s = TAILQ_FIRST(&tk->fresh))) {
        TAILQ_REMOVE(&tk->fresh, s, pnext);
        s->fresh = 0;
        offer(tk, s);
    }
    if (r->env.flush) r->env.flush(r->env.flush_arg);
}

void sg_relay_ticker_wake(struct sg_relay *r)
{
    if (r && r->tk) event_active(r->tk->wake_ev, 0, 0);
}

/* ---- sessions */

int sg_ticker_subscribe(struct sg_relay_sess *rs, const struct sg_action *a, const char *sym,
                        const char **errmsg)
{
    struct sg_relay *r = rs->rl->r;
    struct sg_ticker *tk = r->tk;
    size_t cap;
    char *eb = sg_relay_errbuf_w(&cap);
    if (!sg_ticker_symbol_valid(sym, strlen(sym))) {
        snprintf(eb, cap,
                 "invalid quote symbol \"%.40s\": 1 to 12 characters of A-Z 0-9 . - ^ after %.100s",
                 sym, r->env.cfg->quote_prefix);
        *errmsg = eb;
        return SG_EDEST;
    }
    struct tsym **p = tslot(tk, sym), *ts = *p;
    if (!ts) {
        int rc = sg_ticker_hub_ref(tk->hub, r->env.worker_id, sym);
        if (rc != SG_OK) {
            if (rc == SG_ETOOMANY)
                snprintf(eb, cap, "too many quote symbols (quote_max_symbols %lld)",
                         (long long)r->env.cfg->quote_max_symbols);
            *errmsg = rc == SG_ETOOMANY ? eb : "out of memory";
            return rc;
        }
        if (!(ts = calloc(1, sizeof *ts))) {
            sg_ticker_hub_unref(tk->hub, r->env.worker_id, sym);
            *errmsg = "out of memory";
            return SG_ENOMEM;
        }
        snprintf(ts->sym, sizeof ts->sym, "%s", sym);
        LIST_INIT(&ts->subs);
        *p = ts;
        tk->nsyms++;
        tgrow(tk);
    }
    struct qsub *s = calloc(1, sizeof *s);
    if (!s || !(s->id = strdup(a->sub_id))) {
        free(s);
        if (!ts->nsubs) {
            *tslot(tk, sym) = ts->next;
            tk->nsyms--;
            sg_ticker_hub_unref(tk->hub, r->env.worker_id, sym);
            free(ts);
        }
        *errmsg = "out of memory";
        return SG_ENOMEM;
    }
    s->rs = rs;
    s->ts = ts;
    s->client_ack = a->ack_mode != SG_ACK_AUTO && rs->ops->version(rs->client) >= 12;
    LIST_INSERT_HEAD(&ts->subs, s, snext);
    ts->nsubs++;
    TAILQ_INSERT_TAIL(&rs->qsubs, s, rnext);
    rs->nsubs++;
    METRIC(r, quote_subscriptions, 1);
    /* the last value: from this worker's copy, else the hub's; written
     * from the wake event, so that it follows the RECEIPT */
    struct sg_quote q;
    if (!ts->has && sg_ticker_hub_last(tk->hub, sym, &q) == SG_OK) {
        ts->last = q;
        ts->has = 1;
    }
    if (ts->has) {
        s->fresh = 1;
        TAILQ_INSERT_TAIL(&tk->fresh, s, pnext);
        event_active(tk->wake_ev, 0, 0);
    }
    return SG_OK;
}

static void qsub_free(struct sg_ticker *tk, struct qsub *s)
{
    struct sg_relay *r = tk->r;
    struct tsym *ts = s->ts;
    LIST_REMOVE(s, snext);
    if (s->fresh) TAILQ_REMOVE(&tk->fresh, s, pnext);
    TAILQ_REMOVE(&s->rs->qsubs, s, rnext);
    s->rs->nsubs--;
    METRIC(r, quote_subscriptions, -1);
    if (!--ts->nsubs) {
        /* the worker's last subscriber of the symbol */
        *tslot(tk, ts->sym) = ts->next;
        tk->nsyms--;
        sg_ticker_hub_unref(tk->hub, r->env.worker_id, ts->sym);
        free(ts);
    }
    free(s->id);
    free(s);
}

int sg_ticker_unsubscribe(struct sg_relay_sess *rs, const char *id)
{
    struct sg_ticker *tk = rs->rl->r->tk;
    if (!tk) return SG_ENOKEY;
    struct qsub *s;
    TAILQ_FOREACH(s, &rs->qsubs, rnext)
    if (!strcmp(s->id, id)) {
        qsub_free(tk, s);
        return SG_OK;
    }
    return SG_ENOKEY;
}

void sg_ticker_detach(struct sg_relay_sess *rs)
{
    struct sg_ticker *tk = rs->rl->r->tk;
    struct qsub *s;
    while (tk && (s = TAILQ_FIRST(&rs->qsubs)))
        qsub_free(tk, s);
}

void sg_ticker_drained(struct sg_relay_sess *rs)
{
    struct sg_ticker *tk = rs->rl->r->tk;
    if (!tk) return;
    /* every price it is owed, at most one per subscription: bounded, and
     * fair (were it cut short when the output fills again, the symbols
     * first in the list would take every turn) */
    struct qsub *s;
    TAILQ_FOREACH(s, &rs->qsubs, rnext)
    if (s->pending) write_one(tk, s);
}

/* ---- the worker's ticker */

int sg_ticker_new(struct sg_relay *r)
{
    if (!r->env.ticker) return SG_OK;
    struct sg_ticker *tk = calloc(1, sizeof *tk);
    if (!tk) return SG_ENOMEM;
    const struct sg_gw_config *cfg = r->env.cfg;
    tk->r = r;
    tk->hub = r->env.ticker;
    TAILQ_INIT(&tk->fresh);
    tk->nbuckets = 64;
    tk->publisher = r->env.worker_id == 0;
    tk->backoff_ms = 500;
    sg_buf_init(&tk->work, 0);
    tk->tab = calloc(tk->nbuckets, sizeof *tk->tab);
    tk->wake_ev = event_new(r->env.base, -1, 0, wake_cb, tk);
    r->tk = tk;
    if (!tk->tab || !tk->wake_ev) return SG_ENOMEM;
    if (tk->publisher) {
        tk->nsyms_cap = (size_t)cfg->quote_max_symbols;
        tk->syms = malloc(tk->nsyms_cap * sizeof *tk->syms);
        tk->tick = event_new(r->env.base, -1, EV_PERSIST, tick_cb, tk);
        tk->retry = event_new(r->env.base, -1, 0, retry_cb, tk);
        if (!tk->syms || !tk->tick || !tk->retry) return SG_ENOMEM;
        long long ms = cfg->quote_interval_ms;
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
        event_add(tk->tick, &tv);
        /* work goes out on a publishing connection of its own, like SENDs:
         * a broker that blocks publishers must not stop the results */
        if (sg_rlink_open_publisher(r->service) != SG_OK) return SG_ENOMEM;
    }
    return SG_OK;
}

void sg_ticker_shutdown(struct sg_relay *r)
{
    struct sg_ticker *tk = r->tk;
    if (!tk) return;
    if (tk->tick) event_del(tk->tick);
    if (tk->retry) event_del(tk->retry);
}

void sg_ticker_free(struct sg_relay *r)
{
    struct sg_ticker *tk = r->tk;
    if (!tk) return;
    /* sessions detach before the relay is freed; what is left is only
     * symbols, returned to the hub */
    for (size_t i = 0; tk->tab && i < tk->nbuckets; i++) {
        struct tsym *ts = tk->tab[i], *n;
        for (; ts; ts = n) {
            n = ts->next;
            sg_ticker_hub_unref(tk->hub, r->env.worker_id, ts->sym);
            free(ts);
        }
    }
    if (tk->wake_ev) event_free(tk->wake_ev);
    if (tk->tick) event_free(tk->tick);
    if (tk->retry) event_free(tk->retry);
    sg_buf_reset(&tk->work);
    free(tk->syms);
    free(tk->tab);
    free(tk);
    r->tk = NULL;
}
