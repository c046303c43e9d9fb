/* worker.h - one event-loop thread: its event_base, its SO_REUSEPORT
 * listeners, the connections it accepted and its relay. Nothing in it is
 * touched by another thread except auth_done/auth_ev (under auth_lock) and
 * stop_ev. */
#ifndef SG_WORKER_H
#define SG_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct event;
struct evconnlistener;
struct sg_server;
struct sg_conn;
struct sg_relay;
struct sg_auth_req;

struct sg_worker {
    struct sg_server *srv;
    int id;
    pthread_t thread;
    struct event_base *base;
    struct evconnlistener **listeners;
    int *listener_tls;
    size_t nlisteners;
    struct event *stop_ev;  /* activated from the main thread */
    struct event *pause_ev; /* the main thread's reload barrier (server.c) */
    struct event *wd_ev;    /* the main thread's watchdog round (server.c) */
    struct event *drain_ev; /* shutdown: polls until done or the deadline */
    int drain_phase;        /* 0 finishing confirms, 1 closing */
    uint64_t confirm_deadline, final_deadline;
    atomic_ulong wd_seen;  /* the last watchdog round this worker answered */
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
    /* bytes its connections have queued for output (conn.c keeps it; only
     * this worker writes it, /metrics and the relay read it) */
    atomic_long out_bytes;
};

#endif
