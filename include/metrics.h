/* metrics.h - process-wide counters (atomics: every worker updates them,
 * /metrics reads them) and the Prometheus text rendering of them
 * (src/metrics.c). docs/METRICS.md describes every family.
 *
 * Every update is one relaxed atomic add: no lock and no allocation on
 * the hot path. A reader sees each counter on its own; the families are
 * not a consistent snapshot of one instant (a histogram's _count is the
 * sum of the bucket counts read, so it always equals its +Inf bucket).
 */
#ifndef SG_METRICS_H
#define SG_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

struct sg_buf;

/* Label sets with a fixed size. */
/* Listener kinds; the first SG_SESSION_TRANSPORTS carry STOMP sessions. */
enum {
    SG_TRANSPORT_WS = 0, /* listen: WebSocket */
    SG_TRANSPORT_WSS,    /* tls_listen: WebSocket over TLS */
    SG_TRANSPORT_STOMP,  /* stomp_listen: raw STOMP over TCP */
    SG_TRANSPORT_STOMPS, /* stomp_tls_listen: raw STOMP over TLS */
    SG_SESSION_TRANSPORTS,
    SG_TRANSPORT_ADMIN = SG_SESSION_TRANSPORTS, /* admin_listen */
    SG_TRANSPORT_COUNT
};
#define SG_STOMP_VERSIONS 3 /* STOMP 1.0, 1.1, 1.2: index version - 10 */

/* WebSocket close codes: one counter each for 1000..1015, one for the rest.
 * A close frame without a code (RFC 6455 5.5.1 allows an empty body) is
 * counted as 1005, the code RFC 6455 7.4.1 reserves for "no status". */
#define SG_CLOSE_FIRST 1000
#define SG_CLOSE_LAST 1015
#define SG_CLOSE_SLOTS (SG_CLOSE_LAST - SG_CLOSE_FIRST + 2) /* + "other" */

/* Why an ERROR frame was sent (label reason=). */
enum sg_err_reason {
    SG_REASON_PROTOCOL = 0, /* malformed frame, missing header, wrong state, no common version */
    SG_REASON_LIMIT,        /* a configured bound: sizes, counts, busy (1009, 1013) */
    SG_REASON_AUTH,         /* login refused, broker ACCESS_REFUSED */
    SG_REASON_DESTINATION,  /* invalid destination, broker NOT_FOUND, unroutable */
    SG_REASON_BROKER,       /* broker unavailable, other broker refusals */
    SG_REASON_SLOW_CONSUMER,
    SG_REASON_HEARTBEAT, /* heart-beat timeout */
    SG_REASON_TIMEOUT,   /* CONNECT deadline */
    SG_REASON_SHUTDOWN,  /* server shutting down or restarting */
    SG_REASON_INTERNAL,  /* out of memory */
    SG_REASON_OTHER,
    SG_REASON_COUNT,
};

/* STOMP frames received, by command: the 11 client commands, then one
 * slot for anything else a client sent (a server command). */
#define SG_FRAMES_IN_SLOTS 12
/* STOMP frames sent: CONNECTED, MESSAGE, RECEIPT, ERROR. */
#define SG_FRAMES_OUT_SLOTS 4

/* Fan-out latency histogram: finite upper bounds in nanoseconds (0.1 ms ..
 * 1 s); one more bucket for +Inf. */
#define SG_LAT_BOUNDS 13
extern const uint64_t sg_lat_bounds_ns[SG_LAT_BOUNDS];

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
    atomic_long held_bytes;         /* SEND copies waiting for the broker or a destination */
    atomic_long auth_rejected_busy; /* CONNECTs refused: auth_queue_max logins pending */
    atomic_long dropped; /* fan-out deliveries skipped for subscribers behind, over memory_max */
    /* the stock ticker (relay_ticker.c) */
    atomic_long quote_subscriptions; /* quote subscriptions open */
    atomic_long quote_updates;       /* prices received from the quote daemons */
    atomic_long quote_messages;      /* quote MESSAGE frames written */
    atomic_long quote_conflated; /* prices replaced by a newer one before a slow reader got them */
    atomic_long quote_work;      /* work messages published */
    atomic_long quote_results_bad; /* result messages that were not JSON or had bad entries */

    /* connections and sessions by listener kind and STOMP version (conn.c) */
    atomic_long conns_by_transport[SG_TRANSPORT_COUNT];                   /* open */
    atomic_long accepted_by_transport[SG_TRANSPORT_COUNT];                /* total */
    atomic_long sessions[SG_STOMP_VERSIONS][SG_SESSION_TRANSPORTS];       /* CONNECTED now */
    atomic_long sessions_total[SG_STOMP_VERSIONS][SG_SESSION_TRANSPORTS]; /* ever CONNECTED */
    /* subscriptions open by kind (relay_fanout.c, relay_sub.c; quotes above) */
    atomic_long subs_shared;  /* /topic, /exchange with ack:auto: members of a shared upstream */
    atomic_long subs_private; /* queue, durable and client-ack subscriptions: own channel */
    atomic_long subs_temp;    /* /temp-queue reply queues */
    /* STOMP frames (conn.c) */
    atomic_long frames_in[SG_FRAMES_IN_SLOTS];
    atomic_long frames_out[SG_FRAMES_OUT_SLOTS];
    atomic_long errors[SG_REASON_COUNT]; /* ERROR frames sent, by reason */
    /* WebSocket close frames (conn.c) */
    atomic_long close_sent[SG_CLOSE_SLOTS];
    atomic_long close_recv[SG_CLOSE_SLOTS];
    /* the broker side (amqp_link.c) */
    atomic_long deliveries;                     /* complete basic.deliver messages read */
    atomic_long links_open;                     /* broker connections open (all kinds) */
    atomic_long service_up;                     /* workers whose service connection is open */
    atomic_long link_losses;                    /* open connections lost */
    atomic_long link_reconnects;                /* connections re-established after a loss */
    atomic_long lat_buckets[SG_LAT_BOUNDS + 1]; /* per bucket, not cumulative; last: +Inf */
    atomic_long lat_sum_ns;
};

/* Adds n to a counter of m; m may be NULL (unit tests run without one). */
#define SG_METRIC_ADD(m, field, n)                                                                 \
    do {                                                                                           \
        struct sg_metrics *m_ = (m);                                                               \
        if (m_) atomic_fetch_add_explicit(&m_->field, (long)(n), memory_order_relaxed);            \
    } while (0)

/* One fan-out latency observation (ns). m may be NULL. */
void sg_metrics_observe_latency(struct sg_metrics *m, uint64_t ns);

/* The close counter slot of a WebSocket close code (0: no code -> 1005). */
int sg_metrics_close_slot(int code);
void sg_metrics_count_close(struct sg_metrics *m, int sent, int code);

/* The frames_in slot of a command a client sent (enum sg_stomp_cmd), and
 * the frames_out slot of one we sent (-1: not a server command). */
int sg_metrics_frame_in_slot(int cmd);
int sg_metrics_frame_out_slot(int cmd);

/* Classifies an ERROR frame: err is the sg_err the session closed with
 * (SG_EBROKER for every relay-reported failure, whose cause is then in
 * message: "slow consumer...", "broker unavailable...", the broker's own
 * reply text such as "NOT_FOUND - ..."), message its message header (may
 * be NULL). Pure. */
enum sg_err_reason sg_metrics_error_reason(int err, const char *message);
const char *sg_metrics_reason_name(enum sg_err_reason r); /* "protocol", ... */

/* What /metrics reports that is not a counter in struct sg_metrics: read
 * by the caller from the server (other workers' state, the auth pool). */
struct sg_metrics_extra {
    long buffered_bytes;    /* sum of the workers' queued output */
    long auth_queue_length; /* client logins pending */
    long quote_symbols;     /* symbols in the ticker's interest set */
    int nworkers;
    double uptime_s;
    const char *version; /* build_info label */
};

/* Appends the whole exposition (text format 0.0.4) to out. Returns SG_OK,
 * or SG_ENOMEM / SG_ETOOBIG from the buffer (out holds a prefix then). */
int sg_metrics_render(struct sg_buf *out, struct sg_metrics *m, const struct sg_metrics_extra *x);

#endif
