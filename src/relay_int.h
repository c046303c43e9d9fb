/* relay_int.h - state shared by the relay modules (relay.c, relay_fanout.c,
 * relay_publish.c, relay_sub.c); private to them. Dependencies point one
 * way: the facade calls fanout, publish and sub; publish calls sub (for
 * temp queues); all of them call amqp_link and the pure helpers. The link
 * calls back only through the ops tables registered here.
 */
#ifndef SG_RELAY_INT_H
#define SG_RELAY_INT_H

#include "amqp_link.h"
#include "buf.h"
#include "stomp_frame.h"
#include "rcpt_queue.h"
#include "relay.h"
#include "route.h"

#include <stdint.h>
#include "queue_compat.h"

struct rlink;
struct sub;
struct topic;
struct pub;
struct prep;
struct qsub;
struct sg_ticker;

STAILQ_HEAD(pub_list, pub);

/* A SEND on its way to the broker. Kept (copied) only when it must be: a
 * receipt or a transaction to confirm, a broker that is away or blocked,
 * or a destination being prepared. */
struct pub {
    STAILQ_ENTRY(pub) next;
    struct sg_relay_sess *rs; /* NULL once the session is gone */
    struct sg_rcpt *rc;       /* its place in the session's receipt order, or NULL */
    char *err_receipt;        /* receipt-id for an ERROR about it (own or the COMMIT's) */
    int confirm;              /* kept until the broker confirms it */
    int attempts;             /* channel errors it went through */
    int relinks;              /* broker connections lost while it was unconfirmed */
    int held;                 /* counted in r->held_bytes */
    struct sg_stomp_frame_copy *fc;
    size_t bytes;
    struct sg_route route;
    char *reply_to;  /* rewritten reply-to (/reply-queue/NAME), or NULL */
    char *temp_wait; /* temp queue id it waits for, or NULL */
    uint64_t seq;    /* publish sequence on its confirm channel */
    uint64_t held_at;
};

/* A private subscription: its own channel and consumer (so ACKs map 1:1),
 * or a member of a shared topic upstream. */
struct sub {
    TAILQ_ENTRY(sub) snext; /* in the session, in SUBSCRIBE order */
    LIST_ENTRY(sub) tnext;  /* in the topic */
    struct sg_relay_sess *rs;
    char *id, *dest;
    struct sg_route route;
    enum sg_ack_mode ack;
    int internal_ack; /* ack:auto on a private queue: we ack once written */
    int temp;         /* a /temp-queue reply queue */
    char ctag[64];
    uint16_t prefetch;
    int durable, auto_delete, exclusive;
    struct sg_stomp_frame_copy *args; /* x-* headers (queue arguments) */
    char qname[256];
    struct sg_link_chan *ch;
    struct topic *topic;
    int ready;
    int paused; /* consumer cancelled while the client's output is over its bound */
    struct sg_rcpt *rc;
    uint64_t *tags; /* outstanding delivery tags (client modes), ascending */
    size_t ntags, captags;
    uint64_t held_ack;       /* internal ack held back while the client is behind */
    uint64_t behind_since;   /* fan-out, drop policy: when it fell half a bound behind */
    struct pub_list waiting; /* SENDs naming this temp queue, waiting for it */
};

LIST_HEAD(sub_list, sub);
TAILQ_HEAD(sess_sub_list, sub);

/* A shared upstream: one exclusive queue + consumer per binding per link. */
struct topic {
    LIST_ENTRY(topic) next;
    struct rlink *rl;
    char exchange[256], rkey[256], qname[64];
    struct sg_link_chan *ch;
    struct sub_list subs;
    int ready;
    uint64_t last_tag, acked_tag; /* deliveries are acked in batches (prefetch) */
};

/* One step that must precede the SENDs waiting on it, done one at a time on
 * the link's prep channel: a queue.declare for /queue/NAME (as RabbitMQ's
 * STOMP plugin does), or the first publish to an exchange (a probe: a
 * missing exchange or a refused write closes only that channel). */
enum prep_kind { PREP_QUEUE, PREP_EXCHANGE };

struct prep {
    STAILQ_ENTRY(prep) next;
    enum prep_kind kind;
    char name[256];
    struct sg_stomp_frame_copy *args; /* queue arguments (x-* headers of the first SEND) */
    struct pub_list waiting;
    struct pub *probe; /* PREP_EXCHANGE: the SEND published as the probe */
    int sent;
};

STAILQ_HEAD(prep_list, prep);

#define RL_KNOWN 256 /* names remembered per link (declared queues, good exchanges) */

struct name_cache {
    char *names[RL_KNOWN];
    unsigned next;
};

/* The relay's view of the broker connections of one (login, vhost) on a
 * worker: one that consumes and, from the first SEND on, one that
 * publishes. RabbitMQ's connection.blocked stops reading a whole connection
 * (acks, declares, heartbeats too), so publishing on a connection of its
 * own keeps consumers going through a memory or disk alarm; RabbitMQ
 * recommends exactly this split. */
struct rlink {
    LIST_ENTRY(rlink) next;
    struct sg_relay *r;
    struct sg_link *link;  /* consuming: subscriptions, topics, temp queues */
    struct sg_link *plink; /* publishing, opened at the first SEND; NULL before */
    char passcode[256];    /* to open plink with (wiped on free) */
    int service;
    TAILQ_HEAD(, sg_relay_sess) sessions;
    LIST_HEAD(, topic) topics;
    /* publishing */
    struct sg_link_chan *pub_ch;  /* confirm mode */
    uint64_t pub_seq;             /* last sequence number used on pub_ch */
    struct pub_list unconf;       /* published on pub_ch, confirm awaited */
    struct pub_list held;         /* waiting for the broker (down or blocked) */
    struct sg_link_chan *prep_ch; /* confirm mode too (probes) */
    uint64_t prep_seq;
    struct prep_list preps;
    struct name_cache queues, exchanges;
};

struct sg_relay_sess {
    TAILQ_ENTRY(sg_relay_sess) next;
    struct rlink *rl;
    const struct sg_relay_client_ops *ops;
    void *client;
    struct sess_sub_list subs; /* set up again in this order after a reconnect */
    TAILQ_HEAD(, qsub) qsubs;  /* quote subscriptions (relay_ticker.c) */
    size_t nsubs;              /* including temp queues and quote subscriptions */
    struct sg_rcpt_queue rq;
    char login[256];
    int failing;
    int marked; /* listed in a struct victims */
    int paused; /* reads paused for a blocked broker */
};

struct sg_relay {
    struct sg_relay_env env;
    struct sg_link_env lenv;
    LIST_HEAD(, rlink) links;
    struct rlink *service;
    struct event *hold_timer;
    size_t held_bytes; /* every held SEND of this worker */
    struct sg_buf scratch, head;
    int shutting_down;
    int drop_policy; /* slow_consumer_policy is "drop" (parsed once) */
    uint64_t next_qid;
    struct sg_stomp_frame view; /* for views of copied frames */
    struct sg_ticker *tk;       /* quote subscriptions, when env.ticker is set */
};

#define SG_RELAY_TOO_MANY_RECEIPTS "too many receipts pending (max_pending_receipts)"

/* ---- relay.c: calls into sessions (each may end the session) */
/* The thread's buffer for an error text (*cap bytes), valid until the
 * next relay call on this thread (relay.h, sg_relay_action). */
char *sg_relay_errbuf_w(size_t *cap);
void sg_rsess_receipt_done(struct sg_relay_sess *rs, struct sg_rcpt *e);
void sg_rsess_fail(struct sg_relay_sess *rs, const char *msg, const char *receipt, int code);

/* Ending several sessions at once: every client is held while the list is
 * walked, so none is freed - and no subscriber list edited - until all have
 * been told; each is told once. */
struct victims {
    struct sg_relay_sess **rs;
    size_t n, cap;
};
void sg_victims_add(struct victims *v, struct sg_relay_sess *rs);
void sg_victims_fail(struct victims *v, const char *msg, int code);
/* A walk that may fail several sessions of rl (link up, a channel error):
 * every session is held first and released after, so none is detached -
 * its SENDs forgotten, its subscriptions unlinked - while the walk still
 * holds pointers to them. Sessions held this way can still be failed
 * (and listed in another struct victims). */
void sg_victims_hold_all(struct victims *v, struct rlink *rl);
void sg_victims_release(struct victims *v);

/* Opens rl->plink (the publishing connection). SG_OK or SG_ENOMEM. */
int sg_rlink_open_publisher(struct rlink *rl);

/* Memory pressure of the worker (buffered output + held SENDs against its
 * share of memory_max): 0 none, 1 over half the share (upstreams stop
 * being acked, so the broker keeps what follows), 2 over the share (fan-out
 * skips subscribers that are behind). */
int sg_relay_pressure(const struct sg_relay *r);

/* ---- relay_sub.c */
/* The x-* SUBSCRIBE or SEND headers that are queue arguments (not
 * x-queue-name); a keep function for sg_stomp_frame_copy_filter. */
int sg_sub_is_queue_arg(const struct sg_stomp_header *h, void *arg);
/* Those arguments as an AMQP table (entries from pool). */
amqp_table_t sg_sub_args_table(const struct sg_stomp_frame_copy *args, amqp_pool_t *pool);
extern const struct sg_link_chan_ops sg_sub_chan_ops;
void sg_sub_setup(struct sub *s);
void sg_sub_unlink(struct sub *s);
void sg_sub_free(struct sub *s);
struct sub *sg_sub_find(struct sg_relay_sess *rs, const char *id, int temp);
/* The temp queue /temp-queue/<name> of rs, created (and counted as a
 * subscription) if needed. NULL with *why on error. */
struct sub *sg_sub_temp_ensure(struct sg_relay_sess *rs, const char *name, const char **why,
                               int *code);
int sg_sub_subscribe_private(struct sg_relay_sess *rs, struct sub *s, const char **errmsg);
void sg_sub_drained(struct sub *s);
void sg_sub_link_down(struct sub *s);
/* durable subscription queue name: x-queue-name, else a hash of dest and id */
void sg_sub_durable_name(const char *dest, const char *id, char *out, size_t cap);

/* ---- relay_fanout.c */
/* Arguments of a queue the broker keeps bounded for a consumer that falls
 * behind: x-max-length max_len, the oldest dropped first (drop-head).
 * args (2 entries) backs the table. */
amqp_table_t sg_bounded_queue_args(amqp_table_entry_t args[2], long long max_len);
extern const struct sg_link_chan_ops sg_topic_chan_ops;
int sg_fanout_subscribe(struct sg_relay_sess *rs, struct sub *s, const char *receipt,
                        const char **errmsg);
void sg_fanout_remove(struct topic *t, struct sub *s);
void sg_fanout_setup(struct topic *t);
void sg_fanout_free_all(struct rlink *rl);
/* Acks what the upstreams delivered, unless the worker is under pressure. */
void sg_fanout_ack_all(struct sg_relay *r);

/* ---- relay_publish.c */
int sg_pub_send(struct sg_relay_sess *rs, const struct sg_action *a, const char **errmsg);
void sg_pub_link_up(struct rlink *rl);
void sg_pub_link_down(struct rlink *rl);
void sg_pub_blocked(struct rlink *rl, int blocked);
void sg_pub_forget_session(struct rlink *rl, struct sg_relay_sess *rs);
void sg_pub_go(struct rlink *rl, struct pub *p);
void sg_pub_free(struct pub *p);
void sg_pub_hold_timeouts(struct sg_relay *r);
void sg_pub_free_all(struct rlink *rl);

/* ---- relay_ticker.c: quote subscriptions (the stock ticker) */
/* The worker's ticker (r->tk), when r->env.ticker is set; worker 0 also
 * opens the service connection's publishing link for the work. SG_OK or
 * SG_ENOMEM (r->tk may then be partly built: sg_ticker_free it). */
int sg_ticker_new(struct sg_relay *r);
void sg_ticker_free(struct sg_relay *r);
void sg_ticker_shutdown(struct sg_relay *r);
/* The service connection (publishing: its publishing link) came up or
 * went down. */
void sg_ticker_link_up(struct sg_relay *r, int publishing);
void sg_ticker_link_down(struct sg_relay *r, int publishing);
/* A SUBSCRIBE to quote_prefix + sym (semantics of sg_relay_action). */
int sg_ticker_subscribe(struct sg_relay_sess *rs, const struct sg_action *a, const char *sym,
                        const char **errmsg);
/* SG_OK if id was a quote subscription of rs (now ended), else SG_ENOKEY. */
int sg_ticker_unsubscribe(struct sg_relay_sess *rs, const char *id);
void sg_ticker_detach(struct sg_relay_sess *rs);
void sg_ticker_drained(struct sg_relay_sess *rs);

#endif
