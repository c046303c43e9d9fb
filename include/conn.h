/* conn.h - one client connection: HTTP head, static files, the WebSocket
 * upgrade, frames, and the STOMP session on top (src/conn.c). Used by the
 * worker (accept, shutdown) and the auth threads' completions; the relay
 * sees a connection only through sg_conn_relay_ops. */
#ifndef SG_CONN_H
#define SG_CONN_H

#include "relay.h"

struct sg_worker;
struct sockaddr;
struct sg_auth_req;

/* What a listener is (sg_conn_accept's flags). */
#define SG_LISTEN_TLS 1   /* tls_listen: TLS first */
#define SG_LISTEN_ADMIN 2 /* admin_listen: /metrics, /healthz and /readyz only, to anyone */
#define SG_LISTEN_STOMP 4 /* stomp_listen / stomp_tls_listen: raw STOMP, no HTTP */

/* Called by the worker's listener for each accepted socket (takes fd).
 * flags: SG_LISTEN_* of the listener it came in on. */
void sg_conn_accept(struct sg_worker *w, int fd, const struct sockaddr *sa, int socklen, int flags);
/* Shutdown, first step: plain HTTP connections end, WebSocket connections
 * stop reading (what they sent is still finished: confirms, receipts). */
void sg_conn_drain_begin(struct sg_worker *w);
/* Shutdown, second step: every STOMP session gets ERROR "server shutting
 * down", every WebSocket the close code (1001, or 1012 for a restart). */
void sg_conn_close_all(struct sg_worker *w, int code);
/* Frees every connection immediately (after the loop ended). */
void sg_conn_free_all(struct sg_worker *w);
/* Writes out what the relay queued on this worker's connections: one
 * writev per connection per batch of deliveries (arg: the worker). */
void sg_conn_flush_pending(void *worker);
/* Completion of a broker login check (runs on the owning worker). */
void sg_conn_auth_done(struct sg_auth_req *r);

/* How the relay reaches a connection (client = struct sg_conn *). */
extern const struct sg_relay_client_ops sg_conn_relay_ops;

#endif
