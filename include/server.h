/* server.h - stompgate's I/O layer: workers, listeners, connections.
 *
 * W worker threads, each with its own event_base and its own SO_REUSEPORT
 * listener sockets (the kernel spreads accepts), owning every connection it
 * accepted. Nothing is shared between workers but the read-only config and
 * the atomic counters in struct sg_metrics (and, when a per-IP cap is set,
 * a mutex-protected per-IP table). Glue only: all protocol decisions are in
 * the sans-I/O modules (http, ws_handshake, ws_frame, stomp_session).
 */
#ifndef SG_SERVER_H
#define SG_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "gw_config.h"
#include "http.h"
#include "stomp_session.h"
#include "util.h" /* sg_now_ms */
#include "ws_frame.h"
#include "ws_handshake.h"

struct event_base;
struct event;
struct evconnlistener;
struct ssl_ctx_st;
struct sg_conn;
struct sg_auth;
struct sg_relay;
struct sockaddr;

struct sg_metrics {
    atomic_long conns_open;      /* TCP connections open */
    atomic_long conns_accepted;  /* total accepted */
    atomic_long ws_open;         /* upgraded connections open */
    atomic_long ws_upgrades;     /* total upgrades */
    atomic_long hs_rejected;     /* handshakes answered with an error status */
    atomic_long http_requests;   /* plain HTTP requests served */
    atomic_long stomp_connected; /* STOMP sessions currently CONNECTED */
    atomic_long ws_msgs_in, ws_msgs_out;
    atomic_long bytes_in, bytes_out;
    atomic_long ws_close_protocol; /* we closed with 1002/1007/1009 */
    atomic_long slow_consumers;
    atomic_long auth_ok, auth_refused;
    atomic_long auth_rejected_busy; /* CONNECTs refused: auth_queue_max logins pending */
};

struct sg_worker {
    struct sg_server *srv;
    int id;
    pthread_t thread;
    struct event_base *base;
    struct evconnlistener **listeners;
    int *listener_tls;
    size_t nlisteners;
    struct event *stop_ev; /* activated from the main thread */
    struct sg_conn *conns; /* doubly linked, owned */
    /* connections written to outside their own callbacks (relay fan-out),
     * flushed together by sg_conn_flush_pending */
    struct sg_conn **dirty;
    size_t ndirty, capdirty;
    uint64_t next_conn_id;
    /* auth completions posted by the auth threads */
    pthread_mutex_t auth_lock;
    struct sg_auth_req *auth_done;
    struct event *auth_ev;
    struct sg_relay *relay; /* this worker's broker side */
};

struct sg_server {
    struct sg_gw_config *cfg;
    struct ssl_ctx_st *ssl_ctx;
    int nworkers;
    struct sg_worker *workers;
    struct sg_ws_policy policy;
    struct sg_stomp_session_config sess_cfg;
    struct sg_http_limits http_lim;
    struct sg_ws_limits ws_lim;
    char client_root[4096]; /* realpath of client_dir, "" if missing */
    struct sg_metrics m;
    struct sg_auth *auth;
    pthread_mutex_t ip_lock;
    struct sg_ip_count *ip_table; /* only when max_connections_per_ip > 0 */
    atomic_int draining;
    char server_name[64];
    uint64_t start_ms;
};

/* Runs the server until SIGINT/SIGTERM. Returns a process exit code. */
int sg_server_run(struct sg_gw_config *cfg);

/* conn.c: called by the worker's listener for each accepted socket. */
void sg_conn_accept(struct sg_worker *w, int fd, const struct sockaddr *sa, int socklen, int tls);
/* Closes every connection of the worker (shutdown), with close code 1001. */
void sg_conn_close_all(struct sg_worker *w);
/* Frees every connection immediately (after the loop ended). */
void sg_conn_free_all(struct sg_worker *w);

/* conn.c, for the relay. A relay callback that may end a session brackets
 * its work with sg_conn_hold/sg_conn_release: the connection is freed on
 * the last release if it died meanwhile. */
struct evbuffer;
struct sg_stomp_session *sg_conn_session(struct sg_conn *c);
const char *sg_conn_id(const struct sg_conn *c);
void sg_conn_hold(struct sg_conn *c);
void sg_conn_release(struct sg_conn *c);
void *sg_conn_relay_data(const struct sg_conn *c);
void sg_conn_set_relay_data(struct sg_conn *c, void *p);
/* Bytes queued for the peer and not yet written. */
size_t sg_conn_outlen(const struct sg_conn *c);
/* 1 while the connection can take MESSAGE frames (upgraded, not closing). */
int sg_conn_open(const struct sg_conn *c);
/* Writes one WebSocket message: head (copied) followed by the whole of
 * shared (added by reference, not copied; may be NULL). text selects the
 * opcode. Updates the session's outgoing heart-beat clock. */
void sg_conn_write_msg(struct sg_conn *c, const void *head, size_t head_len,
                       struct evbuffer *shared, int text);
/* Writes out what sg_conn_write_msg queued on this worker's connections:
 * one writev per connection per batch of deliveries. */
void sg_conn_flush_pending(struct sg_worker *w);
/* Stop (1) or resume (0) reading from the client (broker backpressure). */
void sg_conn_pause_read(struct sg_conn *c, int pause);

/* conn.c: completion of a broker login check (runs on the owning worker). */
struct sg_auth_req;
void sg_conn_auth_done(struct sg_auth_req *r);

/* Per-IP accounting (server.c); returns 1 if the connection is allowed. */
int sg_ip_acquire(struct sg_server *s, const char *ip);
void sg_ip_release(struct sg_server *s, const char *ip);

#endif
