/* amqp_link.h - one broker connection on one worker's event loop.
 *
 * The only module that drives rabbitmq-c's connection state: the socket is
 * registered with libevent and drained with amqp_simple_wait_frame_noblock
 * (zero timeout) until it reports a timeout, because frames already
 * buffered inside rabbitmq-c never wake the fd; the drain is budgeted
 * (SG_LINK_DRAIN_BATCH frames a turn) so broker input cannot starve socket
 * output. Nothing here waits for the broker: methods are sent and the
 * replies reach the owner of their channel later. The login is the one
 * blocking step and runs on the auth threads (auth.h), which hand the
 * logged-in connection over.
 *
 * A link knows nothing of STOMP: it has channels, each with an owner and
 * an ops table, and tells its own owner (struct sg_link_ops) when it comes
 * up (set up again everything), goes down (every channel is gone), is
 * blocked or unblocked by the broker, or is refused by it. Reconnects use
 * jittered exponential backoff up to env->reconnect_max_ms.
 *
 * Re-entrancy: every callback may open and close channels and send
 * methods. A channel closed by its owner is freed on close-ok (or when
 * the link goes down), never during a callback; it makes no callback
 * after sg_link_chan_close. A failed write marks the link failing; it is
 * torn down at the top of the next drain, never in the middle of a caller.
 *
 * Threading: a link and its channels are used only on their worker.
 */
#ifndef SG_AMQP_LINK_H
#define SG_AMQP_LINK_H

#include <amqp.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
struct sg_auth;
struct sg_worker;
struct sg_link;
struct sg_link_chan;
struct sg_metrics;

#define SG_LINK_DRAIN_BATCH 256

/* What every link of a worker shares; borrowed, must outlive the links. */
struct sg_link_env {
    struct event_base *base;
    struct sg_auth *auth;          /* logins (auth.h) */
    struct sg_worker *auth_target; /* opaque: where auth results are posted */
    int worker_id;                 /* for the log */
    unsigned reconnect_max_ms;     /* cap of the backoff */
    unsigned channel_max;          /* cap on channels per connection */
    /* called after each drain: write out what the frames produced */
    void (*flush)(void *arg);
    void *flush_arg;
    /* counters (metrics.h), may be NULL: deliveries, connections open, lost
     * and re-established, service connections up, and the fan-out latency:
     * for each delivery on a channel whose ops have .fanout set, the time
     * from reading its last frame to the end of the flush that follows the
     * drain */
    struct sg_metrics *metrics;
};

/* The link's owner. All optional (NULL). */
struct sg_link_ops {
    void (*up)(struct sg_link *l, void *arg);   /* (re)connected: set up again */
    void (*down)(struct sg_link *l, void *arg); /* lost: every channel is gone */
    void (*blocked)(struct sg_link *l, void *arg, int blocked);
    /* the broker refused the login (user deleted, password changed) */
    void (*refused)(struct sg_link *l, void *arg, const char *reason);
};

/* A complete delivery (basic.deliver + header + body). Views valid only
 * during the callback. */
struct sg_link_delivery {
    uint64_t tag;
    int redelivered;
    const char *exchange, *routing_key, *consumer_tag;
    const amqp_basic_properties_t *props; /* NULL if none */
    struct evbuffer *body;                /* the whole body; the callee may drain it */
};

/* A channel's owner. All optional. */
struct sg_link_chan_ops {
    /* any other method the broker sent on the channel (declare-ok,
     * consume-ok, qos-ok, ...); decoded is rabbitmq-c's struct */
    void (*reply)(struct sg_link_chan *ch, void *owner, amqp_method_number_t id, void *decoded);
    void (*delivery)(struct sg_link_chan *ch, void *owner, const struct sg_link_delivery *d);
    /* publisher confirm (confirm mode): ok 0 = nack. returned: the message
     * came back with basic.return first (unroutable, mandatory) */
    void (*confirm)(struct sg_link_chan *ch, void *owner, uint64_t tag, int multiple, int ok,
                    int returned);
    void (*cancelled)(struct sg_link_chan *ch, void *owner); /* broker's basic.cancel */
    /* The channel is gone: code/text the broker's channel.close (close-ok
     * already sent), or code 0 and text NULL when the link went down. No
     * callback follows; ch must not be used after this returns. */
    void (*closed)(struct sg_link_chan *ch, void *owner, int code, const char *text);
    /* 1: the delivery callback writes the message to clients, so the flush
     * after the drain puts it on their sockets: timed in the fan-out
     * latency histogram (env->metrics) */
    int fanout;
};

/* Creates a link and starts logging in. login, passcode, vhost are copied
 * (at most 255 bytes each). service: the bridge's own connection (log only).
 * ops/arg: the owner (borrowed). NULL on ENOMEM. */
struct sg_link *sg_link_new(const struct sg_link_env *env, const char *login, const char *passcode,
                            const char *vhost, int service, const struct sg_link_ops *ops,
                            void *arg);
/* Closes the connection and frees every channel (no callbacks). NULL ok. */
void sg_link_free(struct sg_link *l);
/* No more reconnects (shutdown). */
void sg_link_shutdown(struct sg_link *l);
/* The passcode to log in again with after an outage (copied, wiped on free). */
void sg_link_set_passcode(struct sg_link *l, const char *passcode);

int sg_link_is_open(const struct sg_link *l);
int sg_link_is_blocked(const struct sg_link *l);
/* Counts connections: delivery tags of an older generation are void. */
unsigned sg_link_gen(const struct sg_link *l);
const char *sg_link_login(const struct sg_link *l);
const char *sg_link_vhost(const struct sg_link *l);
int sg_link_is_service(const struct sg_link *l);

/* Opens a channel (channel.open sent; methods may follow at once).
 * Returns SG_OK with *out, SG_EBROKER if the link is not open, SG_ETOOMANY
 * if every channel id up to env->channel_max is in use, SG_ENOMEM. */
int sg_link_chan_open(struct sg_link *l, const struct sg_link_chan_ops *ops, void *owner,
                      struct sg_link_chan **out);
/* Closes a channel politely (its consumers end, unacked messages are
 * requeued). The owner gets no more callbacks. NULL ok. */
void sg_link_chan_close(struct sg_link_chan *ch);
uint16_t sg_link_chan_id(const struct sg_link_chan *ch);
struct sg_link *sg_link_chan_link(const struct sg_link_chan *ch);

/* Sends a method on the channel (ch NULL: channel 0). Returns SG_OK, or
 * SG_EBROKER if the link is not open or the write failed (the link is then
 * failing and goes down at the next drain). */
int sg_link_send(struct sg_link_chan *ch, amqp_method_number_t id, void *method);
/* basic.publish on the channel. Returns SG_OK; SG_ESTOMP when rabbitmq-c
 * could not encode the message (a property or table too big: the message
 * is at fault, the link is fine); SG_EBROKER as for sg_link_send. */
int sg_link_publish(struct sg_link_chan *ch, const char *exchange, const char *routing_key,
                    int mandatory, const amqp_basic_properties_t *props, const void *body,
                    size_t len);
/* A pool for building method arguments, emptied after each drain and
 * each public entry; do not keep pointers into it. */
amqp_pool_t *sg_link_pool(struct sg_link *l);

#endif
