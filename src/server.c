/* server.c - workers, listeners, TLS context, signals (see server.h). */
#include "server.h"
#include "auth.h"
#include "conn.h"
#include "error.h"
#include "log.h"
#include "relay.h"
#include "ticker.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- per-IP accounting: a small chained hash table under one mutex. Only
 * used when max_connections_per_ip > 0, so the default path takes no lock. */
struct sg_ip_count {
    char ip[48];
    long n;
    struct sg_ip_count *next;
};
#define IP_BUCKETS 4096
static struct sg_ip_count *ip_buckets[IP_BUCKETS];

static unsigned ip_hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % IP_BUCKETS;
}

int sg_ip_acquire(struct sg_server *s, const char *ip)
{
    long cap = (long)s->cfg->max_connections_per_ip;
    if (cap <= 0) return 1;
    int ok = 1;
    pthread_mutex_lock(&s->ip_lock);
    struct sg_ip_count **pp = &ip_buckets[ip_hash(ip)], *e;
    for (e = *pp; e && strcmp(e->ip, ip) != 0; e = e->next) {
    }
    if (!e && (e = calloc(1, sizeof *e))) {
        snprintf(e->ip, sizeof e->ip, "%s", ip);
        e->next = *pp;
        *pp = e;
    }
    if (!e || e->n >= cap)
        ok = 0;
    else
        e->n++;
    pthread_mutex_unlock(&s->ip_lock);
    return ok;
}

void sg_ip_release(struct sg_server *s, const char *ip)
{
    if (s->cfg->max_connections_per_ip <= 0) return;
    pthread_mutex_lock(&s->ip_lock);
    struct sg_ip_count **pp = &ip_buckets[ip_hash(ip)];
    for (; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->ip, ip) == 0) {
            if (--(*pp)->n <= 0) {
                struct sg_ip_count *dead = *pp;
                *pp = dead->next;
                free(dead);
            }
            break;
        }
    }
    pthread_mutex_unlock(&s->ip_lock);
}

/* ---- TLS */
static SSL_CTX *tls_ctx_new(const struct sg_gw_config *cfg)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
        sg_log(SG_LOG_ERROR, "tls: cannot load certificate %s", cfg->tls_cert);
        goto fail;
    }
    if (cfg->tls_chain[0]) {
        FILE *f = fopen(cfg->tls_chain, "r");
        X509 *x;
        if (!f) {
            sg_log(SG_LOG_ERROR, "tls: cannot read chain %s", cfg->tls_chain);
            goto fail;
        }
        while ((x = PEM_read_X509(f, NULL, NULL, NULL))) {
            SSL_CTX_add0_chain_cert(ctx, x);
        }
        fclose(f);
        ERR_clear_error();
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1) {
        sg_log(SG_LOG_ERROR, "tls: cannot load key %s", cfg->tls_key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        sg_log(SG_LOG_ERROR, "tls: key %s does not match certificate %s", cfg->tls_key,
               cfg->tls_cert);
        goto fail;
    }
    return ctx;
fail : {
    unsigned long e;
    while ((e = ERR_get_error()))
        sg_log(SG_LOG_ERROR, "tls: %s", ERR_error_string(e, NULL));
}
    SSL_CTX_free(ctx);
    return NULL;
}

/* ---- listeners */
static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    struct sg_worker *w = arg;
    int flags = 0;
    for (size_t i = 0; i < w->nlisteners; i++)
        if (w->listeners[i] == l) flags = w->listener_flags[i];
    sg_conn_accept(w, fd, sa, len, flags);
}

static void reenable_cb(evutil_socket_t fd, short what, void *arg)
{
    evconnlistener_enable(arg);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    int e = EVUTIL_SOCKET_ERROR();
    sg_log(SG_LOG_WARN, "accept failed: %s", evutil_socket_error_to_string(e));
    /* EMFILE: back off briefly instead of spinning */
    if (e == EMFILE || e == ENFILE) {
        evconnlistener_disable(l);
        struct timeval tv = {0, 100000};
        event_base_once(evconnlistener_get_base(l), -1, EV_TIMEOUT, reenable_cb, l, &tv);
    }
}

static int resolve(const char *spec, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[256];
    int port;
    if (sg_config_split_addr(spec, host, sizeof host, &port) != SG_OK) return -1;
    if (strcmp(host, "localhost") == 0) snprintf(host, sizeof host, "127.0.0.1");
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *len = sizeof *s4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *len = sizeof *s6;
        return 0;
    }
    return -1;
}

/* Binding without SO_REUSEPORT first tells us whether somebody else (another
 * stompgate, say) already holds the port: with SO_REUSEPORT alone a second
 * instance of the same user would silently share it. */
static int probe_free(const struct sockaddr_storage *ss, socklen_t len, const char *spec)
{
    int fd = socket(ss->ss_family, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss->ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    int rc = bind(fd, (const struct sockaddr *)ss, len);
    if (rc != 0) sg_log(SG_LOG_ERROR, "cannot listen on %s: %s", spec, strerror(errno));
    close(fd);
    return rc;
}

/* flags: SG_LISTEN_* (conn.h), given to every connection accepted there */
static int add_listeners(struct sg_server *s, char **specs, int flags)
{
    if (!specs) return 0;
    for (char **p = specs; *p; p++) {
        struct sockaddr_storage ss;
        socklen_t len;
        if (resolve(*p, &ss, &len) != 0) {
            sg_log(SG_LOG_ERROR, "cannot resolve listen address %s", *p);
            return -1;
        }
        if (probe_free(&ss, len, *p) != 0) return -1;
        for (int i = 0; i < s->nworkers; i++) {
            struct sg_worker *w = &s->workers[i];
            int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            int one = 1;
            if (fd < 0) return -1;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
            if (ss.ss_family == AF_INET6)
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
            if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 4096) != 0) {
                sg_log(SG_LOG_ERROR, "cannot listen on %s: %s", *p, strerror(errno));
                close(fd);
                return -1;
            }
            struct evconnlistener *l = evconnlistener_new(
                w->base, accept_cb, w, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
            if (!l) {
                close(fd);
                return -1;
            }
            evconnlistener_set_error_cb(l, accept_error_cb);
            struct evconnlistener **nl =
                realloc(w->listeners, (w->nlisteners + 1) * sizeof *w->listeners);
            if (nl) w->listeners = nl;
            int *nf = realloc(w->listener_flags, (w->nlisteners + 1) * sizeof(int));
            if (nf) w->listener_flags = nf;
            if (!nl || !nf) {
                evconnlistener_free(l);
                return -1;
            }
            w->listeners[w->nlisteners] = l;
            w->listener_flags[w->nlisteners] = flags;
            w->nlisteners++;
        }
        if (flags & SG_LISTEN_ADMIN)
            sg_log(SG_LOG_INFO, "admin (/metrics, /healthz, /readyz) on http://%s (%d workers)", *p,
                   s->nworkers);
        else
            sg_log(SG_LOG_INFO, "listening on %s://%s (%d workers)",
                   (flags & SG_LISTEN_TLS) ? "wss" : "ws", *p, s->nworkers);
    }
    return 0;
}

/* ---- workers */
/* The ticker hub's wake function: worker w has quotes (or, worker 0, new
 * symbols) to handle. Called on any worker's thread. */
static void ticker_wake(void *arg, int w)
{
    struct sg_server *s = arg;
    if (w >= 0 && w < s->nworkers) sg_relay_ticker_wake(s->workers[w].relay);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_worker *w = arg;
    for (size_t i = 0; i < w->nlisteners; i++)
        evconnlistener_disable(w->listeners[i]);
    sg_conn_close_all(w);
    sg_relay_shutdown(w->relay);
    /* let close frames go out: the loop ends when the last connection is
     * gone (conn.c) or after a second at most */
    struct timeval tv = {1, 0};
    event_base_loopexit(w->base, w->conns ? &tv : NULL);
}

static void auth_done_cb(evutil_socket_t fd, short what, void *arg)
{
    sg_auth_drain(arg);
}

static void *worker_main(void *arg)
{
    struct sg_worker *w = arg;
    event_base_dispatch(w->base);
    return NULL;
}

static void sig_cb(evutil_socket_t sig, short what, void *arg)
{
    struct event_base *base = arg;
    sg_log(SG_LOG_INFO, "signal %d: shutting down", (int)sig);
    event_base_loopbreak(base);
}

static void hup_cb(evutil_socket_t sig, short what, void *arg)
{
    /* reloading (certificates, limits) is planned; until then SIGHUP must
     * not kill the daemon, which is its default action */
    sg_log(SG_LOG_WARN, "SIGHUP: configuration reload is not supported yet; ignored");
}

/* memory_max, or a quarter of the machine's RAM when it is 0 */
static size_t memory_budget(const struct sg_gw_config *cfg)
{
    if (cfg->memory_max > 0) return (size_t)cfg->memory_max;
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || psz <= 0) return (size_t)1 << 30;
    return (size_t)pages * (size_t)psz / 4;
}

static void build_session_config(struct sg_server *s)
{
    const struct sg_gw_config *c = s->cfg;
    struct sg_stomp_session_config *sc = &s->sess_cfg;
    sg_stomp_session_config_defaults(sc);
    snprintf(s->server_name, sizeof s->server_name, "stompgate/%s", SG_VERSION);
    sc->server_name = s->server_name;
    sc->hb_send_ms = (unsigned)c->heartbeat_send_ms;
    sc->hb_recv_ms = (unsigned)c->heartbeat_recv_ms;
    sc->hb_min_ms = (unsigned)c->heartbeat_min_ms;
    sc->hb_max_ms = (unsigned)c->heartbeat_max_ms;
    sc->hb_grace = c->heartbeat_grace;
    sc->connect_timeout_ms = (unsigned)c->connect_timeout_ms;
    sc->default_login = c->default_login[0] ? c->default_login : NULL;
    sc->default_passcode = c->default_passcode;
    sc->max_subscriptions = (unsigned)c->max_subscriptions;
    sc->max_tx = (unsigned)c->max_tx;
    sc->max_tx_bytes = (size_t)c->max_tx_bytes;
    sc->max_connect_frame = (size_t)c->max_connect_frame;
    sc->limits.max_frame = (size_t)c->stomp_max_frame;
    sc->limits.max_headers = (size_t)c->stomp_max_headers;
    sc->limits.max_header_line = (size_t)c->stomp_max_header_line;
    sc->limits.max_body = (size_t)c->stomp_max_body;
}

int sg_server_run(struct sg_gw_config *cfg)
{
    int rc = 1;
    struct sg_server *s = calloc(1, sizeof *s);
    struct event_base *main_base = NULL;
    struct event *ev_int = NULL, *ev_term = NULL, *ev_hup = NULL;
    if (!s) return 1;
    s->cfg = cfg;
    s->start_ms = sg_now_ms();
    pthread_mutex_init(&s->ip_lock, NULL);
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();

    s->policy.paths = (const char *const *)cfg->ws_paths;
    s->policy.origins = (const char *const *)cfg->allowed_origins;
    s->policy.echo_path_enabled = cfg->echo_endpoint;
    if (!cfg->allowed_origins || !cfg->allowed_origins[0])
        sg_log(SG_LOG_INFO, "allowed_origins is empty: WebSocket upgrades from any Origin are "
                            "accepted (set it in production against cross-site hijacking)");
    if (cfg->echo_endpoint) sg_log(SG_LOG_WARN, "test-only /echo endpoint is enabled");
    s->http_lim.max_request_line = (size_t)cfg->max_request_line;
    s->http_lim.max_headers = (size_t)cfg->max_headers;
    s->http_lim.max_header_bytes = (size_t)cfg->max_header_bytes;
    s->ws_lim.max_message = (uint64_t)cfg->max_message;
    build_session_config(s);
    if (!realpath(cfg->client_dir, s->client_root)) {
        sg_log(SG_LOG_WARN, "client_dir %s: %s; static files disabled", cfg->client_dir,
               strerror(errno));
        s->client_root[0] = 0;
    }

    if (cfg->tls_listen && cfg->tls_listen[0] && !(s->ssl_ctx = tls_ctx_new(cfg))) goto out;

    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    s->nworkers = cfg->workers > 0 ? (int)cfg->workers : (ncpu > 0 ? (int)ncpu : 1);
    s->workers = calloc((size_t)s->nworkers, sizeof *s->workers);
    if (!s->workers) goto out;
    if (!(s->auth = sg_auth_new(cfg, s->nworkers > 2 ? s->nworkers : 2))) goto out;
    if (cfg->quote_prefix[0] && !(s->ticker = sg_ticker_hub_new((size_t)cfg->quote_max_symbols,
                                                                s->nworkers, ticker_wake, s)))
        goto out;
    for (int i = 0; i < s->nworkers; i++) {
        struct sg_worker *w = &s->workers[i];
        w->srv = s;
        w->id = i;
        pthread_mutex_init(&w->auth_lock, NULL);
        if (!(w->base = event_base_new())) goto out;
        w->stop_ev = event_new(w->base, -1, 0, stop_cb, w);
        w->auth_ev = event_new(w->base, -1, 0, auth_done_cb, w);
        struct sg_relay_env env = {
            .base = w->base,
            .cfg = cfg,
            .auth = s->auth,
            .auth_target = w,
            .metrics = &s->m,
            .worker_id = i,
            .out_bytes = &w->out_bytes,
            .memory_share = memory_budget(cfg) / (size_t)s->nworkers,
            .flush = sg_conn_flush_pending,
            .flush_arg = w,
            .ticker = s->ticker,
        };
        w->relay = sg_relay_new(&env);
        if (!w->relay) goto out;
    }
    if (add_listeners(s, cfg->listen, 0) != 0) goto out;
    if (add_listeners(s, cfg->tls_listen, SG_LISTEN_TLS) != 0) goto out;
    if (add_listeners(s, cfg->admin_listen, SG_LISTEN_ADMIN) != 0) goto out;

    main_base = event_base_new();
    ev_int = evsignal_new(main_base, SIGINT, sig_cb, main_base);
    ev_term = evsignal_new(main_base, SIGTERM, sig_cb, main_base);
    ev_hup = evsignal_new(main_base, SIGHUP, hup_cb, NULL);
    event_add(ev_int, NULL);
    event_add(ev_term, NULL);
    event_add(ev_hup, NULL);

    for (int i = 0; i < s->nworkers; i++)
        pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]);
    sg_log(SG_LOG_INFO, "stompgate %s ready", SG_VERSION);
    event_base_dispatch(main_base);

    atomic_store(&s->draining, 1);
    for (int i = 0; i < s->nworkers; i++)
        event_active(s->workers[i].stop_ev, 0, 0);
    for (int i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i].thread, NULL);
    sg_log(SG_LOG_INFO, "stopped");
    rc = 0;
out:
    /* order: connections and relays drop their claims on pending auth
     * requests, the auth threads stop, then their last answers are freed */
    for (int i = 0; s->workers && i < s->nworkers; i++) {
        struct sg_worker *w = &s->workers[i];
        sg_conn_free_all(w);
        sg_relay_free(w->relay);
        w->relay = NULL;
    }
    if (s->auth) sg_auth_free(s->auth);
    sg_ticker_hub_free(s->ticker); /* after the relays, which held symbols in it */
    for (int i = 0; s->workers && i < s->nworkers; i++) {
        struct sg_worker *w = &s->workers[i];
        sg_auth_drain(w);
        for (size_t j = 0; j < w->nlisteners; j++)
            evconnlistener_free(w->listeners[j]);
        free(w->listeners);
        free(w->dirty);
        free(w->listener_flags);
        if (w->auth_ev) event_free(w->auth_ev);
        if (w->stop_ev) event_free(w->stop_ev);
        if (w->base) event_base_free(w->base);
    }
    free(s->workers);
    if (ev_int) event_free(ev_int);
    if (ev_term) event_free(ev_term);
    if (ev_hup) event_free(ev_hup);
    if (main_base) event_base_free(main_base);
    if (s->ssl_ctx) SSL_CTX_free(s->ssl_ctx);
    free(s);
    return rc;
}
