/* server.h - stompgate's server: the workers and what they share.
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
#include "metrics.h"
#include "worker.h"

struct ssl_ctx_st;
struct sg_auth;
struct sg_ticker_hub;
struct sg_ip_count;
struct sg_worker;

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
    struct sg_ticker_hub *ticker; /* NULL when quote_prefix is empty */
    pthread_mutex_t ip_lock;
    struct sg_ip_count *ip_table; /* only when max_connections_per_ip > 0 */
    atomic_int draining;
    int close_code; /* shutdown: 1001, or 1012 (SIGUSR1: restart) */
    int argc;       /* the command line, for a reload */
    char **argv;
    pthread_barrier_t pause_in, pause_out; /* reload: every worker parked */
    atomic_ulong wd_round;                 /* watchdog: the round being asked */
    char server_name[64];
    uint64_t start_ms;
};

/* Runs the server until SIGINT/SIGTERM (a graceful drain; SIGUSR1 drains
 * with close 1012, a restart). SIGHUP reloads the configuration from the
 * same sources (argc/argv, the file, the environment). Returns a process
 * exit code. */
int sg_server_run(struct sg_gw_config *cfg, int argc, char **argv);

/* Per-IP accounting (server.c); returns 1 if the connection is allowed. */
int sg_ip_acquire(struct sg_server *s, const char *ip);
void sg_ip_release(struct sg_server *s, const char *ip);

#endif
