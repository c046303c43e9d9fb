/* relay_publish.c - SEND: validation, destination preparation, publisher
 * confirms, returns, holding and replay.
 *
 * Each (login, vhost) publishes on a broker connection of its own
 * (rl->plink, opened at the first SEND; a blocked broker then stops only
 * publishers), with one shared publish channel in confirm mode. A SEND is
 * published on it only when its destination is known to be good on that
 * connection: a /queue/NAME is declared first (durable, as RabbitMQ's STOMP
 * plugin does), and the first SEND to an exchange is published on a
 * separate prep channel, one step at a time, as a probe. A missing
 * exchange or a refused write then closes only the prep channel and fails
 * only the SENDs waiting for that exchange, whoever sent them; every other
 * session's traffic is untouched. Should the publish channel still be
 * closed by the broker (permissions changed), it alone is reopened: the
 * SENDs the broker's text names fail, the other unconfirmed ones are
 * published once more, and a SEND that fails twice is failed, never
 * retried in a loop.
 *
 * A SEND is copied only when it must wait or be confirmed (receipt, or a
 * committed transaction). Copies waiting for the broker (down, blocked) or
 * for a destination are bounded by hold_bytes per worker and hold_ms;
 * past either the client gets ERROR "broker unavailable" (close 1013).
 * While the broker blocks publishing, a session that publishes is paused
 * (its socket is not read: TCP backpressure, as RabbitMQ's plugin does)
 * until it unblocks.
 * RECEIPTs are only ever sent for confirmed publishes.
 */
#include "relay_int.h"
#include "amqp_map.h"
#include "error.h"
#include "gw_config.h"
#include "log.h"
#include "metrics.h"
#include "util.h"
#include "ws_frame.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RELINKS 5

static amqp_bytes_t B(const char *s)
{
    return amqp_cstring_bytes(s);
}

/* ---- names known to be good on a link (bounded; the oldest is forgotten) */

static int cache_has(const struct name_cache *c, const char *n)
{
    for (unsigned i = 0; i < RL_KNOWN; i++)
        if (c->names[i] && !strcmp(c->names[i], n)) return 1;
    return 0;
}

static void cache_add(struct name_cache *c, const char *n)
{
    if (cache_has(c, n)) return;
    char *d = strdup(n);
    if (!d) return;
    free(c->names[c->next]);
    c->names[c->next] = d;
    c->next = (c->next + 1) % RL_KNOWN;
}

static void cache_del(struct name_cache *c, const char *n)
{
    for (unsigned i = 0; i < RL_KNOWN; i++)
        if (c->names[i] && !strcmp(c->names[i], n)) {
            free(c->names[i]);
            c->names[i] = NULL;
        }
}

static void cache_clear(struct name_cache *c)
{
    for (unsigned i = 0; i < RL_KNOWN; i++) {
        free(c->names[i]);
        c->names[i] = NULL;
    }
}

/* ---- pubs */

void sg_pub_free(struct pub *p)
{
    if (!p) return;
    sg_stomp_frame_copy_free(p->fc);
    free(p->err_receipt);
    free(p->reply_to);
    free(p->temp_wait);
    free(p);
}

static void held_add(struct sg_relay *r, long n)
{
    if (r->env.metrics)
        atomic_fetch_add_explicit(&r->env.metrics->held_bytes, n, memory_order_relaxed);
}

static void unpark(struct sg_relay *r, struct pub *p)
{
    if (p->held) {
        r->held_bytes -= p->bytes;
        held_add(r, -(long)p->bytes);
        p->held = 0;
    }
}

/* The end of a pub: ERROR to its session (if still there), then freed. */
static void pub_fail(struct sg_relay *r, struct pub *p, const char *msg, int code)
{
    unpark(r, p);
    if (p->rs) sg_rsess_fail(p->rs, msg, p->err_receipt, code);
    sg_pub_free(p);
}

/* Counts p as parked (waiting in memory). force: it was accepted already
 * (a reconnect puts it back), so the bound does not refuse it. Returns 0,
 * or -1 when over hold_bytes: p then got its ERROR and is freed. */
static int park(struct sg_relay *r, struct pub *p, int force)
{
    if (p->held) return 0;
    size_t max = (size_t)r->env.cfg->hold_bytes;
    /* one SEND larger than the bound may wait alone (16 MiB bodies are
     * allowed); beyond that the bound holds */
    if (!force && r->held_bytes && r->held_bytes + p->bytes > max) {
        pub_fail(r, p, "broker unavailable: too many SENDs waiting for the broker (hold_bytes)",
                 SG_WS_CLOSE_TRY_AGAIN);
        return -1;
    }
    r->held_bytes += p->bytes;
    held_add(r, (long)p->bytes);
    p->held = 1;
    if (!p->held_at) p->held_at = sg_now_ms();
    return 0;
}

static void hold(struct rlink *rl, struct pub *p, int force)
{
    if (park(rl->r, p, force) != 0) return;
    STAILQ_INSERT_TAIL(&rl->held, p, next);
}

static const struct sg_link_chan_ops pub_chan_ops, prep_chan_ops;

static void open_pub_ch(struct rlink *rl)
{
    if (rl->pub_ch || !sg_link_is_open(rl->plink)) return;
    if (sg_link_chan_open(rl->plink, &pub_chan_ops, rl, &rl->pub_ch) != SG_OK) return;
    rl->pub_seq = 0;
    amqp_confirm_select_t cs = {0};
    sg_link_send(rl->pub_ch, AMQP_CONFIRM_SELECT_METHOD, &cs);
}

/* Publishes p (or, p NULL, the frame f directly) on ch. Returns SG_OK,
 * SG_ESTOMP (*why: the message is at fault) or SG_EBROKER (link failing). */
static int publish(struct rlink *rl, struct sg_link_chan *ch, const struct sg_stomp_frame *f,
                   const struct sg_route *rt, const char *reply_to, int mandatory, const char **why)
{
    amqp_pool_t *pool = sg_link_pool(rl->plink);
    amqp_basic_properties_t props;
    int rc = sg_map_send_to_props(f, pool, &props, why);
    if (rc != SG_OK) return SG_ESTOMP;
    if (reply_to) {
        props.reply_to = B(reply_to);
        props._flags |= AMQP_BASIC_REPLY_TO_FLAG;
    }
    rc =
        sg_link_publish(ch, rt->exchange, rt->routing_key, mandatory, &props, f->body, f->body_len);
    empty_amqp_pool(pool);
    if (rc == SG_ESTOMP) *why = "the message could not be encoded for the broker";
    return rc;
}

static int mandatory_for(const struct pub *p)
{
    /* a SEND with a receipt to a queue destination must not be confirmed
     * if it reached no queue (a topic without subscribers is fine) */
    return p->confirm && (p->route.kind == SG_ROUTE_QUEUE || p->route.kind == SG_ROUTE_AMQ_QUEUE ||
                          p->route.kind == SG_ROUTE_REPLY_QUEUE);
}

/* ---- preps: one at a time on the prep channel */

static void prep_kick(struct rlink *rl);

static void prep_free(struct prep *x)
{
    sg_stomp_frame_copy_free(x->args);
    free(x);
}

static void prep_wait(struct rlink *rl, enum prep_kind kind, const char *name, struct pub *p)
{
    struct sg_relay *r = rl->r;
    struct prep *x;
    STAILQ_FOREACH(x, &rl->preps, next)
    if (x->kind == kind && !strcmp(x->name, name)) break;
    if (park(r, p, 0) != 0) return;
    if (!x) {
        if (!(x = calloc(1, sizeof *x))) {
            pub_fail(r, p, "out of memory", SG_WS_CLOSE_INTERNAL);
            return;
        }
        x->kind = kind;
        snprintf(x->name, sizeof x->name, "%s", name);
        STAILQ_INIT(&x->waiting);
        if (kind == PREP_QUEUE) {
            /* queue arguments as a SUBSCRIBE would give them: the x-* headers */
            struct sg_stomp_frame *v = &r->view;
            sg_stomp_frame_copy_view(p->fc, v);
            x->args = sg_stomp_frame_copy_filter(v, sg_sub_is_queue_arg, NULL, 0, NULL);
            if (x->args && !sg_stomp_frame_copy_nheaders(x->args)) {
                sg_stomp_frame_copy_free(x->args);
                x->args = NULL;
            }
        }
        STAILQ_INSERT_TAIL(&rl->preps, x, next);
    }
    STAILQ_INSERT_TAIL(&x->waiting, p, next);
    prep_kick(rl);
}

static void prep_send(struct rlink *rl, struct prep *x)
{
    if (x->kind == PREP_QUEUE) {
        amqp_table_t args = sg_sub_args_table(x->args, sg_link_pool(rl->plink));
        amqp_queue_declare_t d = {0, B(x->name), 0, 1, 0, 0, 0, args};
        if (sg_link_send(rl->prep_ch, AMQP_QUEUE_DECLARE_METHOD, &d) == SG_OK) x->sent = 1;
        empty_amqp_pool(sg_link_pool(rl->plink));
        return;
    }
    /* the probe: the first waiting SEND itself, on the prep channel */
    struct pub *p = STAILQ_FIRST(&x->waiting);
    if (!p) return;
    struct sg_stomp_frame f;
    const char *why = NULL;
    int rc = publish(rl, rl->prep_ch, sg_stomp_frame_copy_view(p->fc, &f), &p->route, p->reply_to,
                     mandatory_for(p), &why);
    if (rc == SG_EBROKER) return; /* link failing: sent again after the reconnect */
    STAILQ_REMOVE_HEAD(&x->waiting, next);
    if (rc == SG_ESTOMP) {
        pub_fail(rl->r, p, why, 0);
        prep_send(rl, x); /* the next one probes */
        return;
    }
    p->seq = ++rl->prep_seq;
    x->probe = p;
    x->sent = 1;
}

static void prep_kick(struct rlink *rl)
{
    struct prep *x = STAILQ_FIRST(&rl->preps);
    if (!x || x->sent || !sg_link_is_open(rl->plink)) return;
    if (!rl->prep_ch) {
        if (sg_link_chan_open(rl->plink, &prep_chan_ops, rl, &rl->prep_ch) != SG_OK) return;
        rl->prep_seq = 0;
        amqp_confirm_select_t cs = {0};
        sg_link_send(rl->prep_ch, AMQP_CONFIRM_SELECT_METHOD, &cs);
    }
    prep_send(rl, x);
    if (!x->sent && STAILQ_EMPTY(&x->waiting)) {
        STAILQ_REMOVE_HEAD(&rl->preps, next);
        prep_free(x);
        prep_kick(rl);
    }
}

/* The head prep is done: ok releases its waiting SENDs, else each gets an
 * ERROR with text. */
static void prep_done(struct rlink *rl, int ok, const char *text)
{
    struct prep *x = STAILQ_FIRST(&rl->preps);
    if (!x) return;
    STAILQ_REMOVE_HEAD(&rl->preps, next);
    if (ok) cache_add(x->kind == PREP_QUEUE ? &rl->queues : &rl->exchanges, x->name);
    struct pub *p, *n;
    STAILQ_FOREACH_SAFE(p, &x->waiting, next, n)
    {
        if (ok)
            sg_pub_go(rl, p); /* still counted, as in flush_held */
        else
            pub_fail(rl->r, p, text, 0);
    }
    prep_free(x);
    prep_kick(rl);
}

/* ---- the way of a SEND */

void sg_pub_go(struct rlink *rl, struct pub *p)
{
    struct sg_relay *r = rl->r;
    struct sg_link *l = rl->plink;
    if (p->temp_wait) {
        struct sub *t = p->rs ? sg_sub_find(p->rs, p->temp_wait, 1) : NULL;
        if (t && !t->ready) {
            if (park(r, p, 0) != 0) return;
            STAILQ_INSERT_TAIL(&t->waiting, p, next);
            return;
        }
        free(p->temp_wait);
        p->temp_wait = NULL;
    }
    if (!sg_link_is_open(l) || sg_link_is_blocked(l) || !rl->pub_ch) {
        if (sg_link_is_open(l) && sg_link_is_blocked(l) && p->rs && !p->rs->paused) {
            /* the broker blocks publishing: stop reading from this
             * publisher (TCP backpressure, as RabbitMQ's plugin does) until
             * it unblocks; what was read already is held, bounded */
            p->rs->paused = 1;
            p->rs->ops->pause_read(p->rs->client, 1);
        }
        hold(rl, p, 0);
        return;
    }
    if (p->route.kind == SG_ROUTE_QUEUE && !cache_has(&rl->queues, p->route.queue)) {
        prep_wait(rl, PREP_QUEUE, p->route.queue, p);
        return;
    }
    if (!cache_has(&rl->exchanges, p->route.exchange)) {
        prep_wait(rl, PREP_EXCHANGE, p->route.exchange, p);
        return;
    }
    unpark(r, p);
    struct sg_stomp_frame f;
    const char *why = NULL;
    int rc = publish(rl, rl->pub_ch, sg_stomp_frame_copy_view(p->fc, &f), &p->route, p->reply_to,
                     mandatory_for(p), &why);
    if (rc == SG_EBROKER) {
        hold(rl, p, 1); /* the link just failed: published again after the reconnect */
        return;
    }
    if (rc == SG_ESTOMP) {
        pub_fail(r, p, why, 0);
        return;
    }
    p->seq = ++rl->pub_seq;
    if (p->confirm)
        STAILQ_INSERT_TAIL(&rl->unconf, p, next);
    else
        sg_pub_free(p);
}

static void flush_held(struct rlink *rl)
{
    /* each stays counted in held_bytes on its way (sg_pub_go unparks it
     * when it is published): it was accepted already, and parking it
     * anew would check the bound again and refuse the SENDs a reconnect
     * put back over it (sg_pub_link_down parks them by force) */
    struct pub_list l = rl->held;
    STAILQ_INIT(&rl->held);
    struct pub *p, *n;
    STAILQ_FOREACH_SAFE(p, &l, next, n)
    sg_pub_go(rl, p);
}

static const char *check_send(struct sg_relay_sess *rs, const struct sg_stomp_frame *f)
{
    /* what RabbitMQ would refuse with a channel error, refused here first */
    const struct sg_stomp_header *h = sg_stomp_header(f, "user-id");
    if (h && (h->value_len != strlen(rs->login) || memcmp(h->value, rs->login, h->value_len)))
        return "invalid user-id header: it must be the login of this session";
    h = sg_stomp_header(f, "expiration");
    if (h) {
        int ok = h->value_len > 0 && h->value_len <= 19;
        for (size_t i = 0; ok && i < h->value_len; i++)
            if (h->value[i] < '0' || h->value[i] > '9') ok = 0;
        if (!ok) return "invalid expiration header: it must be a non-negative integer (ms)";
    }
    return NULL;
}

int sg_pub_send(struct sg_relay_sess *rs, const struct sg_action *a, const char **errmsg)
{
    struct rlink *rl = rs->rl;
    struct sg_link *l = NULL;
    size_t cap;
    char *eb = sg_relay_errbuf_w(&cap);
    struct sg_route rt;
    const char *why = NULL;
    int rc = SG_ESTOMP;
    char reply[300];
    const char *reply_to = NULL;
    struct sub *temp = NULL;

    if (sg_route_parse(a->destination, SG_ROUTE_FOR_SEND, &rt, &why) != SG_OK) {
        snprintf(eb, cap, "invalid destination %.300s: %s", a->destination, why);
        why = eb;
        rc = SG_EDEST;
        goto refuse;
    }
    if ((why = check_send(rs, a->frame))) goto refuse;
    {
        /* validate the properties now (priority, timestamp, sizes) */
        amqp_basic_properties_t props;
        amqp_pool_t *pool = sg_link_pool(rl->link);
        int mrc = sg_map_send_to_props(a->frame, pool, &props, &why);
        empty_amqp_pool(pool);
        if (mrc != SG_OK) {
            snprintf(eb, cap, "invalid SEND: %s", why ? why : sg_strerror(mrc));
            why = eb;
            rc = mrc == SG_ENOMEM ? SG_ENOMEM : SG_ESTOMP;
            goto refuse;
        }
    }
    /* reply-to:/temp-queue/X -> a private reply queue; responders see
     * /reply-queue/NAME (RabbitMQ STOMP plugin semantics) */
    const struct sg_stomp_header *rto = sg_stomp_header(a->frame, "reply-to");
    if (rto) {
        struct sg_route tr;
        const char *twhy = NULL;
        char val[300];
        snprintf(val, sizeof val, "%.*s", (int)(rto->value_len < 299 ? rto->value_len : 299),
                 rto->value);
        int trc = sg_route_parse(val, SG_ROUTE_FOR_REPLY_TO, &tr, &twhy);
        if (trc == SG_OK && tr.kind == SG_ROUTE_TEMP_QUEUE) {
            int code = 0;
            if (!(temp = sg_sub_temp_ensure(rs, tr.queue, &why, &code))) {
                rc = code == SG_WS_CLOSE_INTERNAL ? SG_ENOMEM : SG_ETOOMANY;
                goto refuse;
            }
            snprintf(reply, sizeof reply, "/reply-queue/%s", temp->qname);
            reply_to = reply;
        } else if (!strncmp(val, "/temp-queue", 11)) {
            snprintf(eb, cap, "invalid reply-to %.300s: %s", val, twhy ? twhy : "bad temp queue");
            why = eb;
            rc = SG_EDEST;
            goto refuse;
        }
    }
    /* a valid SEND: the login's publishing connection, opened now if needed */
    if (!rl->plink && sg_rlink_open_publisher(rl) != SG_OK) {
        why = "out of memory";
        rc = SG_ENOMEM;
        goto refuse;
    }
    l = rl->plink;
    int confirm = a->receipt || a->in_commit;
    int ready = sg_link_is_open(l) && !sg_link_is_blocked(l) && rl->pub_ch &&
                STAILQ_EMPTY(&rl->held) && cache_has(&rl->exchanges, rt.exchange) &&
                (rt.kind != SG_ROUTE_QUEUE || cache_has(&rl->queues, rt.queue)) &&
                (!temp || temp->ready);
    if (ready && !confirm) {
        /* fire and forget: no copy */
        rc = publish(rl, rl->pub_ch, a->frame, &rt, reply_to, 0, &why);
        if (rc == SG_OK) {
            rl->pub_seq++;
            return SG_OK;
        }
        if (rc == SG_ESTOMP) goto refuse;
        /* the link just failed: keep a copy below */
    }
    struct pub *p = calloc(1, sizeof *p);
    if (!p || !(p->fc = sg_stomp_frame_copy_new(a->frame, &p->bytes)) ||
        (reply_to && !(p->reply_to = strdup(reply_to))) ||
        (temp && !temp->ready && !(p->temp_wait = strdup(temp->id)))) {
        sg_pub_free(p);
        why = "out of memory";
        rc = SG_ENOMEM;
        goto refuse;
    }
    p->bytes += sizeof *p;
    p->rs = rs;
    p->route = rt;
    p->confirm = confirm;
    const char *er = a->receipt ? a->receipt : a->in_commit ? a->commit_receipt : NULL;
    if (er && !(p->err_receipt = strdup(er))) {
        sg_pub_free(p);
        why = "out of memory";
        rc = SG_ENOMEM;
        goto refuse;
    }
    if (a->receipt || (a->in_commit && a->commit_receipt)) {
        /* a place in the receipt order; a committed SEND without its own
         * receipt is an ordering point the COMMIT's RECEIPT waits behind */
        int qrc = sg_rcpt_queue_push(&rs->rq, a->receipt, 0, &p->rc);
        if (qrc != SG_OK) {
            sg_pub_free(p);
            why = qrc == SG_ETOOMANY ? SG_RELAY_TOO_MANY_RECEIPTS : "out of memory";
            rc = qrc;
            goto refuse;
        }
    }
    int answered_later = p->rc && a->receipt;
    sg_pub_go(rl, p);
    return answered_later ? SG_AGAIN : SG_OK;

refuse:
    if (a->in_commit) {
        /* part of a COMMIT: the ERROR carries the COMMIT's receipt-id */
        sg_rsess_fail(rs, why, a->commit_receipt, 0);
        return SG_AGAIN;
    }
    *errmsg = why;
    return rc;
}

/* ---- confirms */

static void complete(struct sg_relay *r, struct pub *p, int ok, int returned)
{
    unpark(r, p);
    if (!ok)
        pub_fail(r, p, "message rejected by the broker (nack)", 0);
    else if (returned)
        pub_fail(r, p, "message could not be routed: no such queue", 0);
    else {
        if (p->rs) sg_rsess_receipt_done(p->rs, p->rc);
        sg_pub_free(p);
    }
}

static void on_pub_confirm(struct sg_link_chan *ch, void *owner, uint64_t tag, int multiple, int ok,
                           int returned)
{
    struct rlink *rl = owner;
    struct pub *p;
    while ((p = STAILQ_FIRST(&rl->unconf)) && p->seq <= tag) {
        if (!multiple && p->seq != tag) {
            /* confirms are in order; a gap is one we did not keep */
            struct pub *prev = p;
            while ((p = STAILQ_NEXT(prev, next)) && p->seq < tag)
                prev = p;
            if (p && p->seq == tag) {
                STAILQ_REMOVE_AFTER(&rl->unconf, prev, next);
                complete(rl->r, p, ok, returned);
            }
            return;
        }
        STAILQ_REMOVE_HEAD(&rl->unconf, next);
        complete(rl->r, p, ok, returned);
        if (!multiple) return;
    }
}

/* The name RabbitMQ's channel-close text blames ("... exchange 'X' ..."),
 * "" for the default exchange, or NULL. */
static const char *blamed_exchange(const char *text, char *out, size_t cap)
{
    const char *k = strstr(text, "exchange '");
    if (!k) return NULL;
    k += 10;
    const char *e = strchr(k, '\'');
    if (!e) return NULL;
    snprintf(out, cap, "%.*s", (int)(e - k), k);
    if (!strcmp(out, "amq.default")) out[0] = 0;
    return out;
}

static void on_pub_closed(struct sg_link_chan *ch, void *owner, int code, const char *text)
{
    struct rlink *rl = owner;
    rl->pub_ch = NULL;
    if (!code) return; /* the link is down: sg_pub_link_down holds the rest */
    struct sg_relay *r = rl->r;
    /* the SENDs below are on a list of our own, out of the reach of
     * sg_pub_forget_session: no session may be detached before the walk
     * is over (a fail may end one that has more SENDs further on) */
    struct victims held = {0};
    sg_victims_hold_all(&held, rl);
    char name[256], msg[400];
    const char *ex = blamed_exchange(text, name, sizeof name);
    if (ex) cache_del(&rl->exchanges, ex);
    snprintf(msg, sizeof msg, "%s", text);
    struct pub_list l = rl->unconf;
    STAILQ_INIT(&rl->unconf);
    int first = 1;
    struct pub *p, *n;
    open_pub_ch(rl);
    STAILQ_FOREACH_SAFE(p, &l, next, n)
    {
        int guilty = ex ? !strcmp(p->route.exchange, ex) : first;
        first = 0;
        if (guilty || ++p->attempts > 1) {
            pub_fail(r, p, msg, 0);
        } else {
            p->seq = 0;
            sg_pub_go(rl, p);
        }
    }
    sg_victims_release(&held);
}

static const struct sg_link_chan_ops pub_chan_ops = {
    .confirm = on_pub_confirm,
    .closed = on_pub_closed,
};

static void on_prep_reply(struct sg_link_chan *ch, void *owner, amqp_method_number_t id, void *m)
{
    struct rlink *rl = owner;
    struct prep *x = STAILQ_FIRST(&rl->preps);
    if (id == AMQP_QUEUE_DECLARE_OK_METHOD && x && x->kind == PREP_QUEUE && x->sent)
        prep_done(rl, 1, NULL);
}

static void on_prep_confirm(struct sg_link_chan *ch, void *owner, uint64_t tag, int multiple,
                            int ok, int returned)
{
    struct rlink *rl = owner;
    struct prep *x = STAILQ_FIRST(&rl->preps);
    if (!x || x->kind != PREP_EXCHANGE || !x->probe || x->probe->seq > tag) return;
    struct pub *p = x->probe;
    x->probe = NULL;
    /* the exchange takes this user's messages: the others go the fast way */
    prep_done(rl, 1, NULL);
    if (p->confirm) {
        complete(rl->r, p, ok, returned);
    } else {
        unpark(rl->r, p);
        sg_pub_free(p);
    }
}

static void on_prep_closed(struct sg_link_chan *ch, void *owner, int code, const char *text)
{
    struct rlink *rl = owner;
    rl->prep_ch = NULL;
    if (!code) return; /* the link is down: sg_pub_link_down holds the rest */
    /* prep_done walks the failed prep's SENDs after taking it off the
     * list sg_pub_forget_session sees: no session may be detached before
     * that walk is over (one may have several SENDs waiting) */
    struct victims held = {0};
    sg_victims_hold_all(&held, rl);
    struct prep *x = STAILQ_FIRST(&rl->preps);
    if (x && x->sent) {
        struct pub *p = x->probe;
        x->probe = NULL;
        char msg[400];
        if (x->kind == PREP_QUEUE)
            snprintf(msg, sizeof msg, "cannot declare queue %.200s: %s", x->name, text);
        else
            snprintf(msg, sizeof msg, "cannot publish to exchange %.200s: %s",
                     x->name[0] ? x->name : "(default)", text);
        if (p) pub_fail(rl->r, p, msg, 0);
        prep_done(rl, 0, msg);
    } else {
        prep_kick(rl);
    }
    sg_victims_release(&held);
}

static const struct sg_link_chan_ops prep_chan_ops = {
    .reply = on_prep_reply,
    .confirm = on_prep_confirm,
    .closed = on_prep_closed,
};

/* ---- link events */

void sg_pub_link_up(struct rlink *rl)
{
    open_pub_ch(rl);
    flush_held(rl);
    prep_kick(rl);
}

void sg_pub_link_down(struct rlink *rl)
{
    struct sg_relay *r = rl->r;
    rl->pub_ch = NULL;
    rl->prep_ch = NULL;
    cache_clear(&rl->queues);
    cache_clear(&rl->exchanges);
    /* SENDs the broker never confirmed go out again after the reconnect
     * (they are the ones whose RECEIPT is still owed), then the ones that
     * waited for a destination, then the ones held already */
    struct pub_list old = rl->held;
    STAILQ_INIT(&rl->held);
    struct pub *p, *n;
    struct pub_list unconf = rl->unconf;
    STAILQ_INIT(&rl->unconf);
    STAILQ_FOREACH_SAFE(p, &unconf, next, n)
    {
        /* a SEND in flight every time the connection dies may be what
         * kills it: after MAX_RELINKS it is failed, not replayed forever */
        if (++p->relinks > MAX_RELINKS) {
            pub_fail(r, p, "broker unavailable: the broker connection failed repeatedly",
                     SG_WS_CLOSE_TRY_AGAIN);
            continue;
        }
        p->held_at = 0;
        park(r, p, 1);
        STAILQ_INSERT_TAIL(&rl->held, p, next);
    }
    struct prep *x;
    while ((x = STAILQ_FIRST(&rl->preps))) {
        STAILQ_REMOVE_HEAD(&rl->preps, next);
        if (x->probe) {
            park(r, x->probe, 1);
            STAILQ_INSERT_TAIL(&rl->held, x->probe, next);
        }
        STAILQ_FOREACH_SAFE(p, &x->waiting, next, n)
        STAILQ_INSERT_TAIL(&rl->held, p, next);
        prep_free(x);
    }
    STAILQ_CONCAT(&rl->held, &old);
}

void sg_pub_blocked(struct rlink *rl, int blocked)
{
    if (!blocked) flush_held(rl);
}

void sg_pub_forget_session(struct rlink *rl, struct sg_relay_sess *rs)
{
    /* SENDs still on their way are published anyway; nobody gets a RECEIPT */
    struct pub *p;
    struct prep *x;
    STAILQ_FOREACH(p, &rl->unconf, next)
    if (p->rs == rs) p->rs = NULL, p->rc = NULL;
    STAILQ_FOREACH(p, &rl->held, next)
    if (p->rs == rs) p->rs = NULL, p->rc = NULL;
    STAILQ_FOREACH(x, &rl->preps, next)
    {
        if (x->probe && x->probe->rs == rs) x->probe->rs = NULL, x->probe->rc = NULL;
        STAILQ_FOREACH(p, &x->waiting, next)
        if (p->rs == rs) p->rs = NULL, p->rc = NULL;
    }
}

void sg_pub_hold_timeouts(struct sg_relay *r)
{
    uint64_t now = sg_now_ms();
    uint64_t max = (uint64_t)r->env.cfg->hold_ms;
    struct rlink *rl;
    LIST_FOREACH(rl, &r->links, next)
    {
        struct pub *p, *n, *prev = NULL;
        STAILQ_FOREACH_SAFE(p, &rl->held, next, n)
        {
            if (now - p->held_at < max) {
                prev = p;
                continue;
            }
            if (prev)
                STAILQ_REMOVE_AFTER(&rl->held, prev, next);
            else
                STAILQ_REMOVE_HEAD(&rl->held, next);
            pub_fail(r, p, "broker unavailable", SG_WS_CLOSE_TRY_AGAIN);
        }
    }
}

void sg_pub_free_all(struct rlink *rl)
{
    struct pub *p;
    struct prep *x;
    while ((p = STAILQ_FIRST(&rl->unconf))) {
        STAILQ_REMOVE_HEAD(&rl->unconf, next);
        sg_pub_free(p);
    }
    while ((p = STAILQ_FIRST(&rl->held))) {
        STAILQ_REMOVE_HEAD(&rl->held, next);
        unpark(rl->r, p);
        sg_pub_free(p);
    }
    while ((x = STAILQ_FIRST(&rl->preps))) {
        STAILQ_REMOVE_HEAD(&rl->preps, next);
        sg_pub_free(x->probe);
        while ((p = STAILQ_FIRST(&x->waiting))) {
            STAILQ_REMOVE_HEAD(&x->waiting, next);
            unpark(rl->r, p);
            sg_pub_free(p);
        }
        prep_free(x);
    }
}
