/* relay.h - the broker side of one worker: STOMP session actions -> AMQP,
 * deliveries -> MESSAGE frames. The facade that conn.c calls.
 *
 * Modules behind it (dependencies point one way, down this list):
 *   relay.c          this facade: sessions attach, actions are dispatched
 *   relay_fanout.c   shared /topic and /exchange upstreams, encode-once,
 *                    the slow-consumer policy
 *   relay_publish.c  SEND: validation, queue declares and exchange probes,
 *                    publisher confirms, returns, holding and replay
 *   relay_sub.c      private queue, temp-queue and durable subscriptions,
 *                    ack tags, prefetch, output throttling
 *   amqp_link.c      the broker connection: channels, frames, reconnect
 *   rcpt_queue.c, msg_encode.c, route.c, amqp_map.c   pure helpers
 * The relay never sees a connection's internals: it talks to the client
 * only through struct sg_relay_client_ops, and gets its environment (event
 * base, config, auth, metrics) as one struct sg_relay_env.
 *
 * One sg_relay per worker, used only on that worker's thread. Broker
 * connections are pooled per (login, vhost) on the worker, so the broker's
 * permissions apply to every session; one service connection (broker_user)
 * answers /readyz.
 *
 * Fault isolation: nothing one session sends can fail a broker connection
 * that other sessions share. SEND headers are validated first (user-id must
 * be the login, expiration a non-negative integer, priority 0-255, AMQP
 * field sizes); the first SEND to an exchange on a connection is published
 * on a separate probe channel, one at a time, so a missing exchange or a
 * refused write closes only that channel and fails only the SENDs to that
 * exchange; a channel error on the shared publish channel reopens just that
 * channel, fails the SENDs it names and republishes the others once.
 */
#ifndef SG_RELAY_H
#define SG_RELAY_H

#include <stdatomic.h>
#include <stddef.h>
#include "stomp_session.h"

struct event_base;
struct evbuffer;
struct sg_auth;
struct sg_gw_config;
struct sg_metrics;
struct sg_worker;
struct sg_relay;
struct sg_relay_sess;
struct sg_ticker_hub;

/* What the relay needs of its worker; copied by sg_relay_new, the pointers
 * borrowed (they must outlive the relay). */
struct sg_relay_env {
    struct event_base *base;
    const struct sg_gw_config *cfg;
    struct sg_auth *auth;
    struct sg_worker *auth_target; /* opaque: where auth results are posted */
    struct sg_metrics *metrics;
    int worker_id;
    /* bytes this worker's clients have queued for output, kept by conn.c
     * (may be NULL: then 0) */
    const atomic_long *out_bytes;
    /* this worker's share of memory_max, in bytes (0: no budget) */
    size_t memory_share;
    /* write out what deliveries queued (one writev per client per batch) */
    void (*flush)(void *arg);
    void *flush_arg;
    /* the process's stock-ticker hub (ticker.h): destinations under
     * cfg->quote_prefix are quote subscriptions; NULL: none are */
    struct sg_ticker_hub *ticker;
};

/* A client connection as the relay sees it; implemented by conn.c. Every
 * call is made on the worker's thread. client is the pointer given to
 * sg_relay_attach. A call that may end the session (receipt, fail) is made
 * between hold and release; the client is freed, and sg_relay_detach
 * called, no earlier than the last release. */
struct sg_relay_client_ops {
    const char *(*id)(void *client); /* for the log */
    int (*version)(void *client);    /* negotiated STOMP version: 10, 11, 12 */
    int (*is_open)(void *client);    /* 1 while it can take MESSAGE frames */
    /* one MESSAGE: head copied, then the whole of shared by reference
     * (not copied; may be NULL); text picks the WebSocket opcode */
    void (*write)(void *client, const void *head, size_t head_len, struct evbuffer *shared,
                  int text);
    size_t (*outlen)(void *client);              /* bytes queued for the client, not yet written */
    void (*pause_read)(void *client, int pause); /* broker backpressure */
    void (*receipt)(void *client, const char *receipt);
    /* ERROR frame (receipt-id when receipt != NULL), then close with
     * ws_code (0 = 1000) */
    void (*fail)(void *client, const char *message, const char *receipt, int ws_code);
    void (*hold)(void *client);
    void (*release)(void *client);
};

/* Creates the worker's relay and starts the service connection. NULL on
 * ENOMEM. */
struct sg_relay *sg_relay_new(const struct sg_relay_env *env);
/* Frees everything (no client callbacks). NULL ok. */
void sg_relay_free(struct sg_relay *r);
/* Stop reconnecting and holding (shutdown). */
void sg_relay_shutdown(struct sg_relay *r);
/* SENDs accepted and not yet confirmed (published and awaiting their
 * confirm, held until their publishing connection is up, or waiting for
 * their destination's declare): what a graceful shutdown waits for. 0
 * while the broker is away (the service connection is down), and a
 * connection the broker blocks is not counted: such SENDs' sessions get
 * the shutdown ERROR without a RECEIPT for them. */
size_t sg_relay_pending(const struct sg_relay *r);
/* 1 if the worker's service connection to the broker is up (/readyz). */
int sg_relay_ready(const struct sg_relay *r);

/* A STOMP session was accepted for login on vhost: attach it to the
 * worker's broker connection for that pair (created if needed). passcode
 * is kept only to log in again after an outage. All strings copied.
 * Returns SG_OK with *out, or SG_ENOMEM. */
int sg_relay_attach(struct sg_relay *r, const struct sg_relay_client_ops *ops, void *client,
                    const char *login, const char *passcode, const char *vhost,
                    struct sg_relay_sess **out);
/* The client is going away: its subscriptions end and its pending work is
 * forgotten (SENDs already accepted are still published; nobody gets their
 * RECEIPT). rs is freed. NULL ok. */
void sg_relay_detach(struct sg_relay_sess *rs);

/* Performs a session action (semantics of sg_stomp_session_ops.relay):
 * SG_OK done (the session sends the RECEIPT), SG_AGAIN answered later
 * through ops->receipt / ops->fail, or a negative sg_err with *errmsg set.
 * *errmsg is a static string or a thread-local buffer, valid until the
 * next relay call on this thread: the caller copies it (the session puts
 * it in an ERROR frame at once). */
int sg_relay_action(struct sg_relay_sess *rs, const struct sg_action *a, const char **errmsg);

/* The client's output buffer drained: resume throttled consumers. */
void sg_relay_drained(struct sg_relay_sess *rs);

/* The ticker hub has work for this relay's worker (its wake function):
 * may be called from any thread. */
void sg_relay_ticker_wake(struct sg_relay *r);

#endif
