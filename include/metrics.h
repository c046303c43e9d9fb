/* metrics.h - process-wide counters (atomics: every worker updates them,
 * /metrics reads them). */
#ifndef SG_METRICS_H
#define SG_METRICS_H

#include <stdatomic.h>

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
};

#endif
