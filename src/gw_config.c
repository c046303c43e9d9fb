/* gw_config.c - stompgate's option table (one table: file, env, flags). */
#include "gw_config.h"
#include "error.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define O(name, type, def, min, max, help)                                                         \
    {                                                                                              \
#name, type, def, offsetof(struct sg_gw_config, name), min, max, help                      \
    }
#define MS 86400000.0 /* a day, the upper bound for every duration */

const struct sg_opt sg_gw_options[] = {
    O(listen, SG_OPT_ADDRS, "127.0.0.1:8181", 0, 0, "ws:// and http:// listeners (host:port list)"),
    O(tls_listen, SG_OPT_ADDRS, "", 0, 0, "wss:// and https:// listeners (host:port list)"),
    O(tls_cert, SG_OPT_STR, "", 0, 0, "PEM certificate (RSA or ECDSA) for tls_listen"),
    O(tls_key, SG_OPT_STR, "", 0, 0, "PEM private key for tls_cert"),
    O(tls_chain, SG_OPT_STR, "", 0, 0, "optional PEM intermediate chain"),
    O(tls_ciphers, SG_OPT_STR, "ECDHE+AESGCM:ECDHE+CHACHA20", 0, 0,
      "TLS 1.2 cipher list (OpenSSL syntax)"),
    O(tls_ciphersuites, SG_OPT_STR,
      "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256", 0, 0,
      "TLS 1.3 cipher suites"),
    O(tls_groups, SG_OPT_STR, "X25519:P-256:P-384", 0, 0, "key exchange groups"),
    O(hsts_max_age, SG_OPT_INT, "31536000", 0, 1e10,
      "Strict-Transport-Security max-age on https responses; 0 = no header"),
    O(workers, SG_OPT_INT, "0", 0, 256, "event-loop threads; 0 = number of cores"),
    O(client_dir, SG_OPT_STR, "client", 0, 0, "directory of static files (the ticker page)"),
    O(broker, SG_OPT_STR, "127.0.0.1:5672", 0, 0, "RabbitMQ AMQP address host:port"),
    O(broker_vhost, SG_OPT_STR, "/", 0, 0, "vhost for the bridge's own connection"),
    O(broker_user, SG_OPT_STR, "websockets", 0, 0, "user for the bridge's own connection"),
    O(broker_password, SG_OPT_STR, "rabbitmq", 0, 0, "password for broker_user"),
    O(broker_timeout_ms, SG_OPT_INT, "5000", 100, MS, "broker connect/login timeout"),
    O(log_level, SG_OPT_LOGLEVEL, "info", 0, 0, "debug, info, warn, error or none"),
    O(ws_paths, SG_OPT_LIST, "/,/ws,/stomp", 0, 0, "paths that accept WebSocket upgrades"),
    O(allowed_origins, SG_OPT_LIST, "", 0, 0, "Origin allow-list; empty = any (logged)"),
    O(echo_endpoint, SG_OPT_BOOL, "false", 0, 0, "test-only /echo WebSocket endpoint"),
    O(stomp_listen, SG_OPT_ADDRS, "", 0, 0,
      "raw STOMP over TCP listeners (host:port list; RabbitMQ's plugin uses 61613)"),
    O(stomp_tls_listen, SG_OPT_ADDRS, "", 0, 0,
      "raw STOMP over TLS listeners (tls_cert/tls_key as for wss; the plugin's 61614)"),
    O(trailing_lf, SG_OPT_BOOL, "false", 0, 0,
      "raw STOMP: an EOL after each frame's NUL, as RabbitMQ's plugin sends"),
    O(admin_listen, SG_OPT_ADDRS, "", 0, 0,
      "HTTP listeners for /metrics, /healthz, /readyz, open to all; set: public ones 404 them"),
    O(metrics_public, SG_OPT_BOOL, "false", 0, 0,
      "/metrics and /readyz for any peer on public listeners (else loopback only)"),
    /* size defaults no stricter than RabbitMQ's web_stomp (16 MiB bodies) */
    O(max_message, SG_OPT_SIZE, "16448K", 126, 1073741824.0, "max WebSocket message (1009)"),
    O(max_connect_frame, SG_OPT_SIZE, "64K", 256, 1073741824.0,
      "max WebSocket message and STOMP bytes until CONNECTED"),
    O(max_request_line, SG_OPT_SIZE, "8K", 64, 1048576, "max HTTP request line"),
    O(max_headers, SG_OPT_INT, "100", 1, 256, "max HTTP header count"),
    O(max_header_bytes, SG_OPT_SIZE, "16K", 256, 1048576, "max HTTP head size"),
    O(handshake_timeout_ms, SG_OPT_INT, "10000", 10, MS, "deadline for the HTTP request head"),
    O(ping_interval_ms, SG_OPT_INT, "25000", 0, MS, "server ping interval; 0 = off"),
    O(pong_timeout_ms, SG_OPT_INT, "20000", 10, MS, "close a peer that does not pong in time"),
    O(close_timeout_ms, SG_OPT_INT, "5000", 10, MS, "wait for the peer's close frame"),
    O(connect_timeout_ms, SG_OPT_INT, "10000", 10, MS, "deadline for STOMP CONNECT"),
    O(max_connections, SG_OPT_INT, "19000", 1, 10000000, "total connections (503 / 1013)"),
    O(max_connections_per_ip, SG_OPT_INT, "0", 0, 10000000, "per client IP; 0 = off"),
    O(heartbeat_send_ms, SG_OPT_INT, "10000", 0, MS,
      "CONNECTED sx if CONNECT has no heart-beat (info)"),
    O(heartbeat_recv_ms, SG_OPT_INT, "10000", 0, MS,
      "CONNECTED sy if CONNECT has no heart-beat (info)"),
    O(heartbeat_min_ms, SG_OPT_INT, "1000", 1, MS, "clamp client heart-beats from below"),
    O(heartbeat_max_ms, SG_OPT_INT, "120000", 1, MS, "clamp client heart-beats from above"),
    O(heartbeat_grace, SG_OPT_DOUBLE, "2.0", 1.0, 100.0, "silent-client factor"),
    O(default_login, SG_OPT_STR, "", 0, 0, "broker user for clients without login; empty = off"),
    O(default_passcode, SG_OPT_STR, "", 0, 0, "password for default_login"),
    O(stomp_max_frame, SG_OPT_SIZE, "16448K", 256, 1073741824.0, "max STOMP frame"),
    O(stomp_max_headers, SG_OPT_INT, "64", 1, 256, "max STOMP headers per frame"),
    O(stomp_max_header_line, SG_OPT_SIZE, "8K", 64, 1048576, "max STOMP header line"),
    O(stomp_max_body, SG_OPT_SIZE, "16M", 0, 1073741824.0, "max STOMP body"),
    O(max_subscriptions, SG_OPT_INT, "256", 1, 1000000, "subscriptions per session"),
    O(max_tx, SG_OPT_INT, "16", 1, 1000000, "open transactions per session"),
    O(max_tx_bytes, SG_OPT_SIZE, "4M", 1024, 1073741824.0, "bytes held per transaction"),
    O(output_buffer_max, SG_OPT_SIZE, "4M", 65536, 1073741824.0, "per-session output bound"),
    O(slow_consumer_policy, SG_OPT_STR, "drop", 0, 0,
      "topics: drop (skip messages while half output_buffer_max behind, close after "
      "slow_consumer_timeout_ms) or close (ERROR 1008 once over output_buffer_max)"),
    O(slow_consumer_timeout_ms, SG_OPT_INT, "10000", 10, MS,
      "drop policy: a subscriber behind this long is closed with ERROR 1008"),
    O(memory_max, SG_OPT_SIZE, "0", 0, 1099511627776.0,
      "budget for buffered output and held SENDs, all workers; 0 = a quarter of RAM"),
    O(upstream_prefetch, SG_OPT_INT, "1000", 1, 65535,
      "unacked deliveries per shared /topic or /exchange upstream"),
    O(upstream_max_length, SG_OPT_INT, "10000", 1, 100000000,
      "messages the broker keeps per upstream while we are behind (oldest dropped)"),
    O(auth_cache_ms, SG_OPT_INT, "30000", 0, MS, "cache broker login results; 0 = off"),
    O(auth_queue_max, SG_OPT_INT, "256", 1, 1000000,
      "client logins pending at once; more are refused (1013)"),
    O(prefetch, SG_OPT_INT, "100", 1, 65535, "default prefetch-count for queue subscriptions"),
    O(max_prefetch, SG_OPT_INT, "1000", 1, 65535,
      "bound on prefetch-count; prefetch-count:0 (unlimited in RabbitMQ) means this"),
    O(max_pending_receipts, SG_OPT_INT, "1024", 1, 10000000,
      "RECEIPTs a session may have outstanding (more -> ERROR)"),
    O(broker_channel_max, SG_OPT_INT, "2047", 8, 65535,
      "channels per pooled broker connection (subscriptions + 2)"),
    O(nack_requeue, SG_OPT_BOOL, "true", 0, 0, "NACK requeues the message (else dead-letters)"),
    O(hold_ms, SG_OPT_INT, "30000", 0, MS,
      "hold SENDs this long while the broker is away or blocked"),
    O(hold_bytes, SG_OPT_SIZE, "64M", 0, 1073741824.0,
      "bound on held/waiting SEND bytes per worker"),
    O(reconnect_max_ms, SG_OPT_INT, "5000", 100, MS, "cap of the broker reconnect backoff"),
    O(shutdown_timeout_ms, SG_OPT_INT, "10000", 100, MS,
      "SIGTERM: finish confirms, send ERROR + close, exit within this"),
    /* the stock ticker (relay_ticker.c) */
    O(quote_prefix, SG_OPT_STR, "/queue/stocks.", 0, 0,
      "SUBSCRIBE prefix of quote subscriptions (prefix + SYMBOL); empty = off"),
    O(quote_work_queue, SG_OPT_STR, "stocks.work", 0, 0, "durable queue the interest set goes to"),
    O(quote_results_queue, SG_OPT_STR, "stocks.result", 0, 0,
      "durable queue of quote results (one bridge)"),
    O(quote_results_exchange, SG_OPT_STR, "", 0, 0,
      "fanout exchange of quote results; each bridge binds its own queue (several bridges)"),
    O(quote_interval_ms, SG_OPT_INT, "1000", 50, MS,
      "send the whole interest set this often while it is not empty"),
    O(quote_work_batch, SG_OPT_INT, "100", 1, 100000, "symbols per work message"),
    O(quote_work_ttl_ms, SG_OPT_INT, "10000", 0, MS,
      "expiration of work messages (stale work is not answered); 0 = none"),
    O(quote_max_symbols, SG_OPT_INT, "10000", 1, 1000000,
      "symbols subscribed or cached at once, all sessions"),
    O(quote_conflate_bytes, SG_OPT_SIZE, "64K", 0, 1073741824.0,
      "a quote subscriber with more output queued gets only the newest price per symbol"),
    {0},
};

int sg_gw_config_check(const void *cfg, FILE *err)
{
    const struct sg_gw_config *c = cfg;
    int errors = 0;
    int wss = c->tls_listen && c->tls_listen[0];
    int stls = c->stomp_tls_listen && c->stomp_tls_listen[0];
    const char *which = wss ? "tls_listen" : "stomp_tls_listen";
    if (wss || stls) {
        if (!c->tls_cert[0]) {
            fprintf(err, "config: tls_cert: required with %s\n", which);
            errors++;
        } else if (access(c->tls_cert, R_OK) != 0) {
            fprintf(err, "config: tls_cert: cannot read \"%s\"\n", c->tls_cert);
            errors++;
        }
        if (!c->tls_key[0]) {
            fprintf(err, "config: tls_key: required with %s\n", which);
            errors++;
        } else if (access(c->tls_key, R_OK) != 0) {
            fprintf(err, "config: tls_key: cannot read \"%s\"\n", c->tls_key);
            errors++;
        }
    }
    if ((!c->listen || !c->listen[0]) && !wss && (!c->stomp_listen || !c->stomp_listen[0]) &&
        !stls) {
        fprintf(err, "config: listen: no listener configured (listen, tls_listen, stomp_listen "
                     "and stomp_tls_listen all empty)\n");
        errors++;
    }
    char host[256];
    int port;
    if (sg_config_split_addr(c->broker, host, sizeof host, &port) != SG_OK || port == 0) {
        fprintf(err, "config: broker: must be host:port (got \"%s\")\n", c->broker);
        errors++;
    }
    if (c->heartbeat_min_ms > c->heartbeat_max_ms) {
        fprintf(err, "config: heartbeat_min_ms: greater than heartbeat_max_ms\n");
        errors++;
    }
    if (strcmp(c->slow_consumer_policy, "drop") != 0 &&
        strcmp(c->slow_consumer_policy, "close") != 0) {
        fprintf(err, "config: slow_consumer_policy: must be drop or close (got \"%s\")\n",
                c->slow_consumer_policy);
        errors++;
    }
    if (c->quote_prefix[0] && c->quote_prefix[0] != '/') {
        fprintf(err, "config: quote_prefix: \"%s\" must start with /\n", c->quote_prefix);
        errors++;
    }
    if (!c->ws_paths || !c->ws_paths[0]) {
        fprintf(err, "config: ws_paths: at least one path needed\n");
        errors++;
    } else {
        for (char **p = c->ws_paths; *p; p++)
            if ((*p)[0] != '/') {
                fprintf(err, "config: ws_paths: \"%s\" must start with /\n", *p);
                errors++;
            }
    }
    return errors;
}
