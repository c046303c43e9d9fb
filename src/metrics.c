/* metrics.c - the counters' helpers and their Prometheus text exposition
 * (format 0.0.4: https://prometheus.io/docs/instrumenting/exposition_formats/).
 * Every family has one # HELP and one # TYPE line before its samples; a
 * histogram has cumulative _bucket{le=...} samples ending with le="+Inf",
 * then _sum and _count. Label values are our own constants: nothing to
 * escape. docs/METRICS.md lists every family. */
#include "metrics.h"
#include "buf.h"
#include "error.h"
#include "stomp_frame.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const uint64_t sg_lat_bounds_ns[SG_LAT_BOUNDS] = {
    100000,   250000,   500000,    1000000,   2500000,   5000000,    10000000,
    25000000, 50000000, 100000000, 250000000, 500000000, 1000000000,
};
/* the same bounds as the le label values, in seconds */
static const char *const lat_le[SG_LAT_BOUNDS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
    "0.025",  "0.05",    "0.1",    "0.25",  "0.5",    "1",
};

void sg_metrics_observe_latency(struct sg_metrics *m, uint64_t ns)
{
    if (!m) return;
    int i = 0;
    while (i < SG_LAT_BOUNDS && ns > sg_lat_bounds_ns[i])
        i++;
    atomic_fetch_add_explicit(&m->lat_buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->lat_sum_ns, (long)ns, memory_order_relaxed);
}

int sg_metrics_close_slot(int code)
{
    if (code == 0) code = 1005; /* an empty close: "no status code was present" */
    if (code >= SG_CLOSE_FIRST && code <= SG_CLOSE_LAST) return code - SG_CLOSE_FIRST;
    return SG_CLOSE_SLOTS - 1;
}

void sg_metrics_count_close(struct sg_metrics *m, int sent, int code)
{
    if (!m) return;
    atomic_long *a = sent ? m->close_sent : m->close_recv;
    atomic_fetch_add_explicit(&a[sg_metrics_close_slot(code)], 1, memory_order_relaxed);
}

int sg_metrics_frame_in_slot(int cmd)
{
    if (cmd >= SG_STOMP_CONNECT && cmd <= SG_STOMP_DISCONNECT) return cmd - SG_STOMP_CONNECT;
    return SG_FRAMES_IN_SLOTS - 1;
}

int sg_metrics_frame_out_slot(int cmd)
{
    if (cmd >= SG_STOMP_CONNECTED && cmd <= SG_STOMP_ERROR) return cmd - SG_STOMP_CONNECTED;
    return -1;
}

static int starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

enum sg_err_reason sg_metrics_error_reason(int err, const char *message)
{
    const char *m = message ? message : "";
    switch (err) {
    case SG_EAUTH:
        return SG_REASON_AUTH;
    case SG_EDEST:
        return SG_REASON_DESTINATION;
    case SG_ETIMEOUT:
        /* the session's two deadlines: "CONNECT timeout", "heart-beat timeout" */
        return starts(m, "heart-beat") ? SG_REASON_HEARTBEAT : SG_REASON_TIMEOUT;
    case SG_ENOMEM:
        return SG_REASON_INTERNAL;
    case SG_EPROTO:
    case SG_EHTTP:
    case SG_EHANDSHAKE:
    case SG_EWSFRAME:
    case SG_EUTF8:
    case SG_ESTOMP:
    case SG_ESTATE:
    case SG_EVERSION:
    case SG_EESCAPE:
    case SG_ENUL:
        return SG_REASON_PROTOCOL;
    case SG_ELIMIT:
    case SG_ETOOBIG:
    case SG_ETOOMANY:
    case SG_ELINE:
    case SG_EBUSY:
        return SG_REASON_LIMIT;
    case SG_EBROKER:
        break;
    default:
        return SG_REASON_OTHER;
    }
    /* failures reported after the fact (the relay, the glue): the text
     * names the cause, often the broker's own reply ("NOT_FOUND - ...") */
    if (strstr(m, "shutting down") || strstr(m, "restarting")) return SG_REASON_SHUTDOWN;
    if (starts(m, "slow consumer")) return SG_REASON_SLOW_CONSUMER;
    if (starts(m, "access refused") || strstr(m, "ACCESS_REFUSED")) return SG_REASON_AUTH;
    if (strstr(m, "NOT_FOUND") || strstr(m, "no such queue") || strstr(m, "could not be routed"))
        return SG_REASON_DESTINATION;
    if (starts(m, "too many") || starts(m, "server busy")) return SG_REASON_LIMIT;
    if (starts(m, "out of memory")) return SG_REASON_INTERNAL;
    return SG_REASON_BROKER;
}

static const char *const reason_names[SG_REASON_COUNT] = {
    "protocol",  "limit",   "auth",     "destination", "broker", "slow_consumer",
    "heartbeat", "timeout", "shutdown", "internal",    "other",
};

const char *sg_metrics_reason_name(enum sg_err_reason r)
{
    return (unsigned)r < SG_REASON_COUNT ? reason_names[r] : "other";
}

/* ---- rendering */

struct out {
    struct sg_buf *b;
    int rc;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    if (o->rc != SG_OK) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line) {
        o->rc = SG_EIO; /* our own formats: never */
        return;
    }
    o->rc = sg_buf_append(o->b, line, (size_t)n);
}

static void family(struct out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP stompgate_%s %s\n# TYPE stompgate_%s %s\n", name, help, name, type);
}

static void one(struct out *o, const char *name, const char *type, const char *help, long v)
{
    family(o, name, type, help);
    put(o, "stompgate_%s %ld\n", name, v);
}

static long ld(atomic_long *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

static const char *const transport_names[SG_TRANSPORT_COUNT] = {"ws", "wss", "stomp", "stomp+tls",
                                                                "admin"};
static const char *const version_names[SG_STOMP_VERSIONS] = {"1.0", "1.1", "1.2"};

static void close_family(struct out *o, const char *name, const char *help, atomic_long *a)
{
    family(o, name, "counter", help);
    for (int i = 0; i < SG_CLOSE_SLOTS - 1; i++)
        put(o, "stompgate_%s{code=\"%d\"} %ld\n", name, SG_CLOSE_FIRST + i, ld(&a[i]));
    put(o, "stompgate_%s{code=\"other\"} %ld\n", name, ld(&a[SG_CLOSE_SLOTS - 1]));
}

int sg_metrics_render(struct sg_buf *b, struct sg_metrics *m, const struct sg_metrics_extra *x)
{
    struct out o = {b, SG_OK};
    struct out *w = &o;

    /* the families that existed first keep their names and meaning */
    one(w, "connections", "gauge", "Open TCP connections.", ld(&m->conns_open));
    one(w, "connections_accepted_total", "counter", "Accepted TCP connections.",
        ld(&m->conns_accepted));
    one(w, "websockets", "gauge", "Open WebSocket connections.", ld(&m->ws_open));
    one(w, "websocket_upgrades_total", "counter", "Accepted upgrades.", ld(&m->ws_upgrades));
    one(w, "handshakes_rejected_total", "counter", "Handshakes answered with an error.",
        ld(&m->hs_rejected));
    one(w, "http_requests_total", "counter", "Plain HTTP requests.", ld(&m->http_requests));
    one(w, "stomp_sessions", "gauge", "Connected STOMP sessions.", ld(&m->stomp_connected));
    one(w, "ws_messages_received_total", "counter", "WebSocket data messages received.",
        ld(&m->ws_msgs_in));
    one(w, "ws_messages_sent_total", "counter", "WebSocket data messages sent.",
        ld(&m->ws_msgs_out));
    one(w, "bytes_received_total", "counter", "Bytes received.", ld(&m->bytes_in));
    one(w, "bytes_sent_total", "counter", "Bytes sent.", ld(&m->bytes_out));
    one(w, "ws_protocol_errors_total", "counter", "Connections failed with 1002/1007/1009.",
        ld(&m->ws_close_protocol));
    one(w, "slow_consumers_total", "counter", "Sessions dropped as slow consumers.",
        ld(&m->slow_consumers));
    one(w, "buffered_bytes", "gauge", "Bytes queued for clients, not yet written.",
        x->buffered_bytes);
    one(w, "dropped_messages_total", "counter",
        "Fan-out deliveries skipped for subscribers behind while over memory_max.",
        ld(&m->dropped));
    one(w, "held_bytes", "gauge", "SEND copies waiting for the broker or a destination.",
        ld(&m->held_bytes));
    one(w, "auth_ok_total", "counter", "Broker-accepted logins.", ld(&m->auth_ok));
    one(w, "auth_refused_total", "counter", "Refused logins.", ld(&m->auth_refused));
    one(w, "auth_rejected_busy_total", "counter",
        "CONNECTs refused at once because auth_queue_max logins were pending.",
        ld(&m->auth_rejected_busy));
    one(w, "auth_queue_length", "gauge", "Client logins pending (queued or being checked).",
        x->auth_queue_length);
    one(w, "quote_symbols", "gauge", "Symbols in the quote interest set.", x->quote_symbols);
    one(w, "quote_subscriptions", "gauge", "Open quote subscriptions.",
        ld(&m->quote_subscriptions));
    one(w, "quote_updates_total", "counter", "Prices received from the quote daemons.",
        ld(&m->quote_updates));
    one(w, "quote_messages_total", "counter", "Quote MESSAGE frames written.",
        ld(&m->quote_messages));
    one(w, "quote_conflated_total", "counter",
        "Prices replaced by a newer one before a backed-up subscriber got them.",
        ld(&m->quote_conflated));
    one(w, "quote_work_published_total", "counter", "Work messages sent to the quote daemons.",
        ld(&m->quote_work));
    one(w, "quote_results_invalid_total", "counter",
        "Result messages that were not JSON arrays or had invalid entries.",
        ld(&m->quote_results_bad));

    /* the process */
    family(w, "build_info", "gauge", "Always 1; the version is the label.");
    put(w, "stompgate_build_info{version=\"%s\"} 1\n", x->version ? x->version : "");
    one(w, "workers", "gauge", "Event-loop threads.", x->nworkers);
    family(w, "uptime_seconds", "gauge", "Seconds since the process started.");
    put(w, "stompgate_uptime_seconds %.3f\n", x->uptime_s);

    /* connections and sessions */
    family(w, "connections_by_transport", "gauge",
           "Open TCP connections by listener: ws (listen), wss (tls_listen), stomp "
           "(stomp_listen), stomp+tls (stomp_tls_listen), admin (admin_listen).");
    for (int t = 0; t < SG_TRANSPORT_COUNT; t++)
        put(w, "stompgate_connections_by_transport{transport=\"%s\"} %ld\n", transport_names[t],
            ld(&m->conns_by_transport[t]));
    family(w, "connections_accepted_by_transport_total", "counter",
           "Accepted TCP connections by listener.");
    for (int t = 0; t < SG_TRANSPORT_COUNT; t++)
        put(w, "stompgate_connections_accepted_by_transport_total{transport=\"%s\"} %ld\n",
            transport_names[t], ld(&m->accepted_by_transport[t]));
    family(w, "stomp_sessions_by_version", "gauge",
           "Connected STOMP sessions by negotiated version and transport.");
    for (int v = 0; v < SG_STOMP_VERSIONS; v++)
        for (int t = 0; t < SG_SESSION_TRANSPORTS; t++)
            put(w, "stompgate_stomp_sessions_by_version{version=\"%s\",transport=\"%s\"} %ld\n",
                version_names[v], transport_names[t], ld(&m->sessions[v][t]));
    family(w, "stomp_sessions_connected_total", "counter",
           "STOMP sessions that reached CONNECTED, by version and transport.");
    for (int v = 0; v < SG_STOMP_VERSIONS; v++)
        for (int t = 0; t < SG_SESSION_TRANSPORTS; t++)
            put(w,
                "stompgate_stomp_sessions_connected_total{version=\"%s\",transport=\"%s\"} "
                "%ld\n",
                version_names[v], transport_names[t], ld(&m->sessions_total[v][t]));
    family(w, "subscriptions", "gauge",
           "Open subscriptions by kind: shared (topic/exchange fan-out), private (own "
           "channel), temp (temp queues), quote.");
    put(w, "stompgate_subscriptions{kind=\"shared\"} %ld\n", ld(&m->subs_shared));
    put(w, "stompgate_subscriptions{kind=\"private\"} %ld\n", ld(&m->subs_private));
    put(w, "stompgate_subscriptions{kind=\"temp\"} %ld\n", ld(&m->subs_temp));
    put(w, "stompgate_subscriptions{kind=\"quote\"} %ld\n", ld(&m->quote_subscriptions));

    /* STOMP frames */
    family(w, "stomp_frames_received_total", "counter",
           "STOMP frames received, by command (other: a server command sent by a client).");
    for (int i = 0; i < SG_FRAMES_IN_SLOTS - 1; i++)
        put(w, "stompgate_stomp_frames_received_total{command=\"%s\"} %ld\n",
            sg_stomp_cmd_name((enum sg_stomp_cmd)(SG_STOMP_CONNECT + i)), ld(&m->frames_in[i]));
    put(w, "stompgate_stomp_frames_received_total{command=\"other\"} %ld\n",
        ld(&m->frames_in[SG_FRAMES_IN_SLOTS - 1]));
    family(w, "stomp_frames_sent_total", "counter", "STOMP frames sent, by command.");
    for (int i = 0; i < SG_FRAMES_OUT_SLOTS; i++)
        put(w, "stompgate_stomp_frames_sent_total{command=\"%s\"} %ld\n",
            sg_stomp_cmd_name((enum sg_stomp_cmd)(SG_STOMP_CONNECTED + i)), ld(&m->frames_out[i]));
    family(w, "stomp_errors_total", "counter", "ERROR frames sent, by reason.");
    for (int i = 0; i < SG_REASON_COUNT; i++)
        put(w, "stompgate_stomp_errors_total{reason=\"%s\"} %ld\n", reason_names[i],
            ld(&m->errors[i]));

    /* WebSocket close frames */
    close_family(w, "ws_close_sent_total",
                 "WebSocket close frames sent, by code (1005: a close without a code).",
                 m->close_sent);
    close_family(w, "ws_close_received_total",
                 "WebSocket close frames received, by code (1005: a close without a code).",
                 m->close_recv);

    /* the broker */
    long up = ld(&m->service_up);
    one(w, "broker_up", "gauge",
        "1 when the service connection of every worker is open (what /readyz checks), else 0.",
        x->nworkers > 0 && up >= x->nworkers);
    one(w, "broker_service_connections", "gauge", "Workers whose service connection is open.", up);
    one(w, "broker_connections", "gauge", "Open broker connections (all kinds, all workers).",
        ld(&m->links_open));
    one(w, "broker_connections_lost_total", "counter", "Open broker connections that were lost.",
        ld(&m->link_losses));
    one(w, "broker_reconnects_total", "counter", "Broker connections re-established after a loss.",
        ld(&m->link_reconnects));
    one(w, "broker_deliveries_total", "counter",
        "Messages delivered by the broker (basic.deliver).", ld(&m->deliveries));

    /* the fan-out latency: read the buckets once, so that +Inf == _count */
    family(w, "fanout_latency_seconds", "histogram",
           "From reading a delivery off the broker socket to the end of the flush that writes "
           "it to the subscribers' sockets.");
    long cum = 0;
    for (int i = 0; i <= SG_LAT_BOUNDS; i++) {
        cum += ld(&m->lat_buckets[i]);
        put(w, "stompgate_fanout_latency_seconds_bucket{le=\"%s\"} %ld\n",
            i < SG_LAT_BOUNDS ? lat_le[i] : "+Inf", cum);
    }
    long sum_ns = ld(&m->lat_sum_ns);
    put(w, "stompgate_fanout_latency_seconds_sum %ld.%09ld\n", sum_ns / 1000000000L,
        sum_ns % 1000000000L);
    put(w, "stompgate_fanout_latency_seconds_count %ld\n", cum);
    return o.rc;
}
