/* server.c - workers, listeners, TLS context, signals (see server.h). */
#include "server.h"
#include "auth.h"
#include "conn.h"
#include "error.h"
#include "log.h"
#include "relay.h"
#include "ticker.h"
#include "util.h"
#include "ws_frame.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <systemd/sd-daemon.h>
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
    return sg_fnv1a(s) % IP_BUCKETS;
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
static void tls_log_errors(void)
{
    unsigned long e;
    while ((e = ERR_get_error()))
        sg_log(SG_LOG_ERROR, "tls: %s", ERR_error_string(e, NULL));
}

/* The intermediate chain: every certificate in the file, and an error for
 * anything else (a truncated or garbled PEM is reported, never skipped). */
static int tls_load_chain(SSL_CTX *ctx, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        sg_log(SG_LOG_ERROR, "tls: cannot read chain %s: %s", path, strerror(errno));
        return -1;
    }
    X509 *x;
    int n = 0;
    ERR_clear_error();
    while ((x = PEM_read_X509(f, NULL, NULL, NULL))) {
        if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
            X509_free(x);
            fclose(f);
            return -1;
        }
        n++;
    }
    fclose(f);
    /* the loop ends with "no start line" at the end of the file; any other
     * error is a bad certificate */
    unsigned long e = ERR_peek_last_error();
    if (e && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
        sg_log(SG_LOG_ERROR, "tls: chain %s: a certificate cannot be read", path);
        return -1;
    }
    ERR_clear_error();
    if (!n) {
        sg_log(SG_LOG_ERROR, "tls: chain %s holds no certificate", path);
        return -1;
    }
    return 0;
}

static SSL_CTX *tls_ctx_new(const struct sg_gw_config *cfg)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_cipher_list(ctx, cfg->tls_ciphers) != 1) {
        sg_log(SG_LOG_ERROR, "tls: tls_ciphers \"%s\" selects no cipher", cfg->tls_ciphers);
        goto fail;
    }
    if (SSL_CTX_set_ciphersuites(ctx, cfg->tls_ciphersuites) != 1) {
        sg_log(SG_LOG_ERROR, "tls: tls_ciphersuites \"%s\" is not valid", cfg->tls_ciphersuites);
        goto fail;
    }
    if (SSL_CTX_set1_groups_list(ctx, cfg->tls_groups) != 1) {
        sg_log(SG_LOG_ERROR, "tls: tls_groups \"%s\" is not valid", cfg->tls_groups);
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
        sg_log(SG_LOG_ERROR, "tls: cannot load certificate %s", cfg->tls_cert);
        goto fail;
    }
    if (cfg->tls_chain[0] && tls_load_chain(ctx, cfg->tls_chain) != 0) goto fail;
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
fail:
    tls_log_errors();
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
                   (flags & SG_LISTEN_STOMP) ? ((flags & SG_LISTEN_TLS) ? "stomp+ssl" : "stomp")
                   : (flags & SG_LISTEN_TLS) ? "wss"
                                             : "ws",
                   *p, s->nworkers);
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

/* Shutdown, on the worker: stop accepting and reading, let the SENDs
 * already accepted be confirmed (their RECEIPTs go out), then send every
 * session ERROR "server shutting down" and the close code, and end the
 * loop once every connection is gone - or at the deadlines. */
static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_worker *w = arg;
    uint64_t now = sg_now_ms();
    if (w->drain_phase == 0 &&
        (sg_relay_pending(w->relay) == 0 || now >= w->confirm_deadline || !w->conns)) {
        size_t left = sg_relay_pending(w->relay);
        if (left)
            sg_log(SG_LOG_WARN, "worker %d: %zu SENDs still unconfirmed at the deadline", w->id,
                   left);
        w->drain_phase = 1;
        sg_conn_close_all(w, w->srv->close_code);
        sg_relay_shutdown(w->relay);
    }
    if (w->drain_phase == 1 && (!w->conns || now >= w->final_deadline))
        event_base_loopexit(w->base, NULL);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_worker *w = arg;
    const struct sg_gw_config *cfg = w->srv->cfg;
    for (size_t i = 0; i < w->nlisteners; i++)
        evconnlistener_disable(w->listeners[i]);
    uint64_t now = sg_now_ms(), t = (uint64_t)cfg->shutdown_timeout_ms;
    /* the close handshake gets the last quarter (at most a second) */
    uint64_t closing = t / 4 < 1000 ? t / 4 : 1000;
    w->confirm_deadline = now + t - closing;
    w->final_deadline = now + t;
    sg_conn_drain_begin(w);
    struct timeval tv = {0, 20000};
    event_add(w->drain_ev, &tv);
    drain_cb(-1, 0, w);
}

/* The reload barrier: the worker parks until the main thread has swapped
 * the configuration (nothing else reads it meanwhile). */
static void pause_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_worker *w = arg;
    pthread_barrier_wait(&w->srv->pause_in);
    pthread_barrier_wait(&w->srv->pause_out);
}

/* A watchdog round: the worker's loop is turning. */
static void wd_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_worker *w = arg;
    atomic_store(&w->wd_seen, atomic_load(&w->srv->wd_round));
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

static struct sg_server *the_server; /* for the main thread's signal callbacks */

static void sig_cb(evutil_socket_t sig, short what, void *arg)
{
    struct event_base *base = arg;
    struct sg_server *s = the_server;
    s->close_code = sig == SIGUSR1 ? SG_WS_CLOSE_RESTART : SG_WS_CLOSE_GOING_AWAY;
    sg_log(SG_LOG_INFO, "signal %d: shutting down (close %d, within %lld ms)", (int)sig,
           s->close_code, (long long)s->cfg->shutdown_timeout_ms);
    sd_notify(0, "STOPPING=1\nSTATUS=draining");
    event_base_loopbreak(base);
}

/* Options a reload may change; the others need a restart (listeners,
 * threads, the broker, the ticker's queues, budgets computed at start). */
static const char *const reloadable[] = {"log_level",
                                         "tls_cert",
                                         "tls_key",
                                         "tls_chain",
                                         "tls_ciphers",
                                         "tls_ciphersuites",
                                         "tls_groups",
                                         "hsts_max_age",
                                         "allowed_origins",
                                         "metrics_public",
                                         "max_message",
                                         "max_connect_frame",
                                         "max_request_line",
                                         "max_headers",
                                         "max_header_bytes",
                                         "handshake_timeout_ms",
                                         "ping_interval_ms",
                                         "pong_timeout_ms",
                                         "close_timeout_ms",
                                         "connect_timeout_ms",
                                         "max_connections",
                                         "max_connections_per_ip",
                                         "heartbeat_send_ms",
                                         "heartbeat_recv_ms",
                                         "heartbeat_min_ms",
                                         "heartbeat_max_ms",
                                         "heartbeat_grace",
                                         "default_login",
                                         "default_passcode",
                                         "stomp_max_frame",
                                         "stomp_max_headers",
                                         "stomp_max_header_line",
                                         "stomp_max_body",
                                         "max_subscriptions",
                                         "max_tx",
                                         "max_tx_bytes",
                                         "output_buffer_max",
                                         "slow_consumer_timeout_ms",
                                         "prefetch",
                                         "max_prefetch",
                                         "max_pending_receipts",
                                         "nack_requeue",
                                         "hold_ms",
                                         "quote_conflate_bytes",
                                         "shutdown_timeout_ms",
                                         NULL};

static int is_reloadable(const char *name)
{
    for (const char *const *p = reloadable; *p; p++)
        if (!strcmp(*p, name)) return 1;
    return 0;
}

static size_t opt_size(enum sg_opt_type t)
{
    switch (t) {
    case SG_OPT_STR:
        return sizeof(char *);
    case SG_OPT_INT:
    case SG_OPT_SIZE:
        return sizeof(long long);
    case SG_OPT_BOOL:
    case SG_OPT_LOGLEVEL:
        return sizeof(int);
    case SG_OPT_DOUBLE:
        return sizeof(double);
    case SG_OPT_LIST:
    case SG_OPT_ADDRS:
        return sizeof(char **);
    }
    return 0;
}

static int opt_equal(const struct sg_opt *o, const void *a, const void *b)
{
    const char *pa = (const char *)a + o->offset, *pb = (const char *)b + o->offset;
    if (o->type == SG_OPT_STR) return !strcmp(*(char *const *)pa, *(char *const *)pb);
    if (o->type == SG_OPT_LIST || o->type == SG_OPT_ADDRS) {
        char *const *la = *(char **const *)pa, *const *lb = *(char **const *)pb;
        for (; la && lb && *la && *lb; la++, lb++)
            if (strcmp(*la, *lb)) return 0;
        return (!la || !*la) && (!lb || !*lb);
    }
    return !memcmp(pa, pb, opt_size(o->type));
}

/* What the workers read besides cfg, derived from it. */
static void build_session_config(struct sg_server *s);
static void build_derived(struct sg_server *s)
{
    const struct sg_gw_config *cfg = s->cfg;
    s->policy.paths = (const char *const *)cfg->ws_paths;
    s->policy.origins = (const char *const *)cfg->allowed_origins;
    s->policy.echo_path_enabled = cfg->echo_endpoint;
    s->http_lim.max_request_line = (size_t)cfg->max_request_line;
    s->http_lim.max_headers = (size_t)cfg->max_headers;
    s->http_lim.max_header_bytes = (size_t)cfg->max_header_bytes;
    s->ws_lim.max_message = (uint64_t)cfg->max_message;
    build_session_config(s);
}

/* SIGHUP: loads the configuration again from the same sources and, if it
 * is valid, applies what may change while running, with every worker
 * parked at a barrier for the swap; a bad configuration is refused whole
 * and the running one kept. Sessions stay connected. */
static void reload(struct sg_server *s)
{
    sd_notify(0, "RELOADING=1\nSTATUS=reloading the configuration");
    struct sg_gw_config *nc = calloc(1, sizeof *nc);
    char *errs = NULL;
    size_t errlen = 0;
    FILE *err = open_memstream(&errs, &errlen);
    struct sg_cli cli;
    int bad = !nc || !err;
    if (!bad) {
        bad = sg_config_load(sg_gw_options, nc, SG_ENV_PREFIX, SG_DEFAULT_CONFIG, s->argc, s->argv,
                             &cli, err) != 0;
        if (!bad) bad = sg_gw_config_check(nc, err) != 0;
    }
    if (err) fclose(err);
    SSL_CTX *ctx = NULL;
    if (!bad && s->ssl_ctx) {
        /* certificates are read now, before anything is swapped */
        if (!(ctx = tls_ctx_new(nc))) bad = 1;
    }
    if (bad) {
        sg_log(SG_LOG_ERROR, "reload refused, the running configuration is kept:");
        for (char *line = errs ? strtok(errs, "\n") : NULL; line; line = strtok(NULL, "\n"))
            sg_log(SG_LOG_ERROR, "  %s", line);
        free(errs);
        if (nc) sg_config_free(sg_gw_options, nc);
        free(nc);
        sd_notify(0, "READY=1\nSTATUS=reload refused; running configuration kept");
        return;
    }
    free(errs);
    for (const struct sg_opt *o = sg_gw_options; o->name; o++)
        if (!opt_equal(o, s->cfg, nc) && !is_reloadable(o->name))
            sg_log(SG_LOG_WARN, "reload: %s changed; it takes effect after a restart", o->name);
    /* park every worker, swap, release: values the workers hold pointers to
     * (strings, lists, the TLS context) are freed after the release */
    for (int i = 0; i < s->nworkers; i++)
        event_active(s->workers[i].pause_ev, 0, 0);
    pthread_barrier_wait(&s->pause_in);
    int changed = 0;
    for (const struct sg_opt *o = sg_gw_options; o->name; o++) {
        if (opt_equal(o, s->cfg, nc) || !is_reloadable(o->name)) continue;
        char tmp[sizeof(long long) > sizeof(double) ? sizeof(long long) : sizeof(double)];
        char *a = (char *)s->cfg + o->offset, *b = (char *)nc + o->offset;
        size_t n = opt_size(o->type);
        memcpy(tmp, a, n);
        memcpy(a, b, n);
        memcpy(b, tmp, n);
        changed++;
    }
    sg_log_level_current = s->cfg->log_level;
    build_derived(s);
    SSL_CTX *old_ctx = NULL;
    if (ctx) {
        old_ctx = s->ssl_ctx; /* sessions keep their own reference */
        s->ssl_ctx = ctx;
    }
    pthread_barrier_wait(&s->pause_out);
    if (old_ctx) SSL_CTX_free(old_ctx);
    sg_config_free(sg_gw_options, nc); /* the old values, swapped into it */
    free(nc);
    sg_log(SG_LOG_INFO, "configuration reloaded: %d option%s changed%s", changed,
           changed == 1 ? "" : "s", ctx ? ", TLS certificates read again" : "");
    sd_notify(0, "READY=1");
}

static void hup_cb(evutil_socket_t sig, short what, void *arg)
{
    reload(the_server);
}

/* systemd: STATUS= every few seconds, and WATCHDOG=1 only while every
 * worker's loop is turning (each answers a round before the next ping). */
static void notify_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_server *s = arg;
    unsigned long round = atomic_load(&s->wd_round);
    int alive = 1;
    for (int i = 0; i < s->nworkers; i++)
        if (atomic_load(&s->workers[i].wd_seen) != round) alive = 0;
    char status[256];
    long subs = atomic_load(&s->m.subs_shared) + atomic_load(&s->m.subs_private) +
                atomic_load(&s->m.subs_temp) + atomic_load(&s->m.quote_subscriptions);
    snprintf(status, sizeof status,
             "%sSTATUS=%ld connections, %ld STOMP sessions, %ld subscriptions (%ld quote)",
             alive ? "WATCHDOG=1\n" : "", atomic_load(&s->m.conns_open),
             atomic_load(&s->m.stomp_connected), subs, atomic_load(&s->m.quote_subscriptions));
    sd_notify(0, status);
    if (!alive) sg_log(SG_LOG_WARN, "watchdog: a worker did not answer in time");
    atomic_store(&s->wd_round, round + 1);
    for (int i = 0; i < s->nworkers; i++)
        event_active(s->workers[i].wd_ev, 0, 0);
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

int sg_server_run(struct sg_gw_config *cfg, int argc, char **argv)
{
    int rc = 1;
    struct sg_server *s = calloc(1, sizeof *s);
    struct event_base *main_base = NULL;
    struct event *ev_int = NULL, *ev_term = NULL, *ev_hup = NULL, *ev_usr1 = NULL, *ev_wd = NULL;
    if (!s) return 1;
    the_server = s;
    s->cfg = cfg;
    s->argc = argc;
    s->argv = argv;
    s->close_code = SG_WS_CLOSE_GOING_AWAY;
    s->start_ms = sg_now_ms();
    pthread_mutex_init(&s->ip_lock, NULL);
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();

    if (!cfg->allowed_origins || !cfg->allowed_origins[0])
        sg_log(SG_LOG_INFO, "allowed_origins is empty: WebSocket upgrades from any Origin are "
                            "accepted (set it in production against cross-site hijacking)");
    if (cfg->echo_endpoint) sg_log(SG_LOG_WARN, "test-only /echo endpoint is enabled");
    build_derived(s);
    if (!realpath(cfg->client_dir, s->client_root)) {
        sg_log(SG_LOG_WARN, "client_dir %s: %s; static files disabled", cfg->client_dir,
               strerror(errno));
        s->client_root[0] = 0;
    }

    int any_tls = (cfg->tls_listen && cfg->tls_listen[0]) ||
                  (cfg->stomp_tls_listen && cfg->stomp_tls_listen[0]);
    if (any_tls && !(s->ssl_ctx = tls_ctx_new(cfg))) goto out;

    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    s->nworkers = cfg->workers > 0 ? (int)cfg->workers : (ncpu > 0 ? (int)ncpu : 1);
    s->workers = calloc((size_t)s->nworkers, sizeof *s->workers);
    if (!s->workers) goto out;
    pthread_barrier_init(&s->pause_in, NULL, (unsigned)s->nworkers + 1);
    pthread_barrier_init(&s->pause_out, NULL, (unsigned)s->nworkers + 1);
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
        w->pause_ev = event_new(w->base, -1, 0, pause_cb, w);
        w->wd_ev = event_new(w->base, -1, 0, wd_cb, w);
        w->drain_ev = event_new(w->base, -1, EV_PERSIST, drain_cb, w);
        if (!w->stop_ev || !w->auth_ev || !w->pause_ev || !w->wd_ev || !w->drain_ev) goto out;
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
    if (add_listeners(s, cfg->stomp_listen, SG_LISTEN_STOMP) != 0) goto out;
    if (add_listeners(s, cfg->stomp_tls_listen, SG_LISTEN_STOMP | SG_LISTEN_TLS) != 0) goto out;

    main_base = event_base_new();
    ev_int = evsignal_new(main_base, SIGINT, sig_cb, main_base);
    ev_term = evsignal_new(main_base, SIGTERM, sig_cb, main_base);
    ev_hup = evsignal_new(main_base, SIGHUP, hup_cb, NULL);
    ev_usr1 = evsignal_new(main_base, SIGUSR1, sig_cb, main_base);
    event_add(ev_int, NULL);
    event_add(ev_term, NULL);
    event_add(ev_hup, NULL);
    event_add(ev_usr1, NULL);

    for (int i = 0; i < s->nworkers; i++)
        pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]);
    sg_log(SG_LOG_INFO, "stompgate %s ready", SG_VERSION);
    /* systemd: ready once listening; the watchdog (and STATUS) at half of
     * WatchdogSec, else STATUS every 5 s */
    uint64_t wd_usec = 0;
    if (sd_watchdog_enabled(0, &wd_usec) <= 0) wd_usec = 0;
    uint64_t period = wd_usec ? wd_usec / 2 : 5000000;
    sd_notify(0, "READY=1\nSTATUS=started");
    ev_wd = event_new(main_base, -1, EV_PERSIST, notify_cb, s);
    struct timeval wtv = {(time_t)(period / 1000000), (suseconds_t)(period % 1000000)};
    event_add(ev_wd, &wtv);
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
        if (w->pause_ev) event_free(w->pause_ev);
        if (w->wd_ev) event_free(w->wd_ev);
        if (w->drain_ev) event_free(w->drain_ev);
        if (w->base) event_base_free(w->base);
    }
    free(s->workers);
    if (ev_int) event_free(ev_int);
    if (ev_term) event_free(ev_term);
    if (ev_hup) event_free(ev_hup);
    if (ev_usr1) event_free(ev_usr1);
    if (ev_wd) event_free(ev_wd);
    if (main_base) event_base_free(main_base);
    if (s->ssl_ctx) SSL_CTX_free(s->ssl_ctx);
    free(s);
    return rc;
}
