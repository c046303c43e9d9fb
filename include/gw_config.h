/* gw_config.h - stompgate's configuration: the struct and its option table.
 * Loaded once at start (and on SIGHUP, later), read-only afterwards. */
#ifndef SG_GW_CONFIG_H
#define SG_GW_CONFIG_H

#include "config.h"

struct sg_gw_config {
    char **listen;     /* plain ws/http listeners */
    char **tls_listen; /* wss/https listeners */
    char *tls_cert, *tls_key, *tls_chain;
    char *tls_ciphers, *tls_ciphersuites, *tls_groups;
    long long hsts_max_age;
    long long workers; /* 0 = number of cores */
    char *client_dir;
    char *broker; /* host:port */
    char *broker_vhost, *broker_user, *broker_password;
    long long broker_timeout_ms;
    int log_level;
    char **ws_paths;
    char **allowed_origins;
    int echo_endpoint;
    /* /metrics and /readyz: listeners of their own, or open to every peer
     * on the public listeners (default: loopback peers only) */
    char **admin_listen;
    char **stomp_listen, **stomp_tls_listen; /* raw STOMP (no WebSocket) */
    int trailing_lf;
    int metrics_public;
    long long max_message;
    long long max_connect_frame; /* max_message and STOMP bound until CONNECTED */
    long long max_request_line, max_headers, max_header_bytes;
    long long handshake_timeout_ms, ping_interval_ms, pong_timeout_ms, close_timeout_ms;
    long long connect_timeout_ms;
    long long max_connections, max_connections_per_ip;
    long long heartbeat_send_ms, heartbeat_recv_ms, heartbeat_min_ms, heartbeat_max_ms;
    double heartbeat_grace;
    char *default_login, *default_passcode;
    long long stomp_max_frame, stomp_max_headers, stomp_max_header_line, stomp_max_body;
    long long max_subscriptions;
    long long max_tx, max_tx_bytes; /* transactions per session, bytes held per transaction */
    long long output_buffer_max;
    char *slow_consumer_policy;         /* "drop" or "close" (topics) */
    long long slow_consumer_timeout_ms; /* drop: closed when behind this long */
    long long memory_max;               /* process-wide budget for buffered data; 0 = 1/4 of RAM */
    long long upstream_prefetch;        /* unacked deliveries per shared topic upstream */
    long long upstream_max_length; /* messages the broker keeps per upstream when we are behind */
    long long auth_cache_ms;
    long long auth_queue_max;       /* client logins pending at once (auth.h) */
    long long prefetch;             /* default prefetch-count of queue subscriptions */
    long long max_prefetch;         /* bound on prefetch-count (0 = the plugin's "unlimited") */
    long long max_pending_receipts; /* per session */
    long long broker_channel_max;   /* channels per pooled broker connection */
    int nack_requeue;
    long long hold_ms, hold_bytes; /* SENDs held while the broker is away */
    long long reconnect_max_ms;
    long long shutdown_timeout_ms;
    /* the stock ticker */
    char *quote_prefix, *quote_work_queue, *quote_results_queue, *quote_results_exchange;
    long long quote_interval_ms, quote_work_batch, quote_work_ttl_ms, quote_max_symbols;
    long long quote_conflate_bytes;
};

extern const struct sg_opt sg_gw_options[];

#define SG_DEFAULT_CONFIG "/etc/stompgate/stompgate.conf"
#define SG_ENV_PREFIX "STOMPGATE_"

/* Cross-field checks after loading (e.g. tls_listen needs tls_cert and
 * tls_key). Prints "config: KEY: reason" lines; returns the error count. */
int sg_gw_config_check(const void *cfg, FILE *err);

#endif
