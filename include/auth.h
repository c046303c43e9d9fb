/* auth.h - broker-checked STOMP credentials.
 *
 * A CONNECT is accepted only if RabbitMQ accepts its login/passcode for
 * the vhost: a real AMQP connection + login (rabbitmq-c), done on a small
 * pool of auth threads because amqp_login blocks. Results are cached for
 * auth_cache_ms under a salted SHA-256 of (login, passcode, vhost), so a
 * reconnect storm costs the broker one login per user; refusals are cached
 * for a shorter time. Passwords are never logged and never stored in clear
 * beyond the request's lifetime (wiped when the request is freed).
 *
 * Two lanes. Client logins (keep_conn 0, from CONNECT frames) are bounded:
 * at most auth_queue_max of them are pending (waiting or being checked) at
 * once, and one more is refused at submit with SG_EBUSY, so a client
 * CONNECTing with random passcodes over and over cannot pile up broker
 * logins. Broker connections for the relay (keep_conn 1: reconnects after
 * an outage) are never bounded and never wait behind client logins: a
 * thread of their own serves only them, and the client threads take them
 * first. A client login whose answer is in the cache is answered at submit
 * without a thread and does not count against the bound.
 *
 * Threading: sg_auth_submit() may be called from any worker; the result is
 * posted back to the submitting worker (its auth_done list + auth_ev), so
 * the completion runs on the worker that owns the connection.
 */
#ifndef SG_AUTH_H
#define SG_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct sg_worker;
struct sg_gw_config;

struct sg_auth_req {
    struct sg_worker *w; /* where the result goes */
    void *conn;          /* owner; set to NULL by the owner if it goes away first */
    /* runs on the worker with the result; the request is freed after it */
    void (*done)(struct sg_auth_req *r);
    /* keep_conn: on success hand the logged-in connection over in amqp_conn
     * (an amqp_connection_state_t) instead of closing it; done() owns it */
    int keep_conn;
    void *amqp_conn;
    char login[256], passcode[256], vhost[256];
    int ok;                              /* result: 1 accepted, 0 refused or not checked */
    int broker_down;                     /* result: 1 if the broker could not be reached */
    char reason[160];                    /* result: for the log (never contains the password) */
    struct sg_auth_req *next;            /* in the worker's list of answers */
    STAILQ_ENTRY(sg_auth_req) lane_link; /* in an auth lane */
};

struct sg_auth;

/* Starts nthreads client-login threads and one relay thread; the client
 * lane is bounded by cfg->auth_queue_max. cfg borrowed (must outlive a).
 * NULL on failure (bad cfg->broker, no thread could be started, memory). */
struct sg_auth *sg_auth_new(const struct sg_gw_config *cfg, int nthreads);
/* Stops the threads; requests still waiting are completed as refused
 * (reason "shutting down") and posted back. NULL is a no-op. */
void sg_auth_free(struct sg_auth *a);
/* Queues r. Returns SG_OK: a takes ownership of r until it is posted back
 * to r->w (r->done then runs on that worker and r is freed after it);
 * possibly at once, when the answer is cached. Returns SG_EBUSY, only for a
 * client login (keep_conn 0), when auth_queue_max client logins are already
 * pending: r is not taken (the caller still owns it and frees it) and
 * r->done will not run. A relay request (keep_conn 1) is always SG_OK, so
 * the relay may ignore the result. */
int sg_auth_submit(struct sg_auth *a, struct sg_auth_req *r);
/* Client logins pending right now (waiting for a thread or being checked
 * against the broker): the number auth_queue_max bounds. For /metrics. */
long sg_auth_queue_length(struct sg_auth *a);
/* Worker side: called from the worker's auth_ev callback; runs r->done()
 * for each completed request and frees it (the passcode wiped first). */
void sg_auth_drain(struct sg_worker *w);

/* One blocking AMQP connect + login attempt with timeout_ms for the TCP
 * connect, the handshake and each RPC. Returns SG_OK (accepted), SG_EAUTH
 * (the broker refused these credentials for vhost), SG_EBROKER (the broker
 * could not be reached or the login failed for another reason: refused
 * connection, timeout, protocol error) or SG_ENOMEM. reason (cap bytes, the
 * caller's buffer) always gets a one-line text for the log, never the
 * password. */
int sg_auth_broker_login(const char *host, int port, const char *vhost, const char *login,
                         const char *passcode, int timeout_ms, char *reason, size_t cap);
/* The same, keeping the connection: on SG_OK with out != NULL, *out is a
 * logged-in amqp_connection_state_t (heartbeat_s negotiated, client
 * capabilities connection.blocked, publisher_confirms and
 * consumer_cancel_notify announced) that the caller owns. On any other
 * return *out is untouched. out may be NULL (the connection is closed). */
int sg_auth_broker_connect(const char *host, int port, const char *vhost, const char *login,
                           const char *passcode, int timeout_ms, int heartbeat_s, void **out,
                           char *reason, size_t cap);

#endif
