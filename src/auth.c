/* auth.c - broker-checked credentials on a small thread pool (see auth.h). */
#include "auth.h"
#include "config.h"
#include "error.h"
#include "gw_config.h"
#include "log.h"
#include "util.h"
#include "worker.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define CACHE_SLOTS 1024
#define NEG_CACHE_MS 2000

struct cache_ent {
    uint8_t key[32];
    uint64_t expires;
    int ok;
};

/* One lane of requests, FIFO. */
STAILQ_HEAD(lane, sg_auth_req);

struct sg_auth {
    const struct sg_gw_config *cfg;
    char host[256];
    int port;
    pthread_mutex_t lock; /* everything below, and the cache */
    pthread_cond_t cond;  /* the lanes got work, or stop */
    struct lane clients;  /* client logins: bounded */
    struct lane relay;    /* the relay's broker connections: never bounded */
    long client_pending;  /* client logins queued or being checked */
    long client_max;      /* auth_queue_max */
    int stop;
    int nthreads;
    pthread_t *threads;
    uint8_t salt[16];
    struct cache_ent cache[CACHE_SLOTS];
};

int sg_auth_broker_login(const char *host, int port, const char *vhost, const char *login,
                         const char *passcode, int timeout_ms, char *reason, size_t cap)
{
    return sg_auth_broker_connect(host, port, vhost, login, passcode, timeout_ms, 0, NULL, reason,
                                  cap);
}

int sg_auth_broker_connect(const char *host, int port, const char *vhost, const char *login,
                           const char *passcode, int timeout_ms, int heartbeat_s, void **out,
                           char *reason, size_t cap)
{
    int rc = SG_EBROKER;
    amqp_connection_state_t conn = amqp_new_connection();
    if (!conn) {
        snprintf(reason, cap, "out of memory");
        return SG_ENOMEM;
    }
    amqp_socket_t *sock = amqp_tcp_socket_new(conn);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    if (!sock) {
        snprintf(reason, cap, "cannot create socket");
        goto out;
    }
    amqp_set_handshake_timeout(conn, &tv);
    amqp_set_rpc_timeout(conn, &tv);
    int st = amqp_socket_open_noblock(sock, host, port, &tv);
    if (st != AMQP_STATUS_OK) {
        snprintf(reason, cap, "cannot connect to broker %s:%d: %s", host, port,
                 amqp_error_string2(st));
        goto out;
    }
    /* announce the capabilities we handle: connection.blocked notifications
     * (backpressure), publisher confirms (receipts) and basic.cancel from the
     * broker (a deleted queue ends its subscriptions with an ERROR) */
    amqp_table_entry_t caps[3], props[2];
    caps[0].key = amqp_cstring_bytes("connection.blocked");
    caps[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[0].value.value.boolean = 1;
    caps[1].key = amqp_cstring_bytes("publisher_confirms");
    caps[1].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[1].value.value.boolean = 1;
    caps[2].key = amqp_cstring_bytes("consumer_cancel_notify");
    caps[2].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[2].value.value.boolean = 1;
    props[0].key = amqp_cstring_bytes("capabilities");
    props[0].value.kind = AMQP_FIELD_KIND_TABLE;
    props[0].value.value.table.num_entries = 3;
    props[0].value.value.table.entries = caps;
    props[1].key = amqp_cstring_bytes("product");
    props[1].value.kind = AMQP_FIELD_KIND_UTF8;
    props[1].value.value.bytes = amqp_cstring_bytes("stompgate");
    amqp_table_t client_props = {2, props};
    amqp_rpc_reply_t r =
        amqp_login_with_properties(conn, vhost, 0, 131072, heartbeat_s, &client_props,
                                   AMQP_SASL_METHOD_PLAIN, login, passcode);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) {
        rc = SG_OK;
        snprintf(reason, cap, "ok");
        if (out) {
            *out = conn;
            return rc;
        }
        amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    } else if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
               r.library_error == AMQP_STATUS_CONNECTION_CLOSED) {
        /* RabbitMQ closes the socket on a bad password (ACCESS_REFUSED) */
        rc = SG_EAUTH;
        snprintf(reason, cap, "access refused for user \"%s\"", login);
    } else if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
               r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_t *m = r.reply.decoded;
        rc = SG_EAUTH;
        snprintf(reason, cap, "refused by broker for user \"%s\": %.*s", login,
                 (int)m->reply_text.len, (const char *)m->reply_text.bytes);
    } else if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
        snprintf(reason, cap, "broker login failed: %s", amqp_error_string2(r.library_error));
    } else {
        snprintf(reason, cap, "broker login failed");
    }
out:
    amqp_destroy_connection(conn);
    return rc;
}

static void cache_key(struct sg_auth *a, const struct sg_auth_req *r, uint8_t out[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 32;
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, a->salt, sizeof a->salt);
    EVP_DigestUpdate(ctx, r->login, strlen(r->login) + 1);
    EVP_DigestUpdate(ctx, r->passcode, strlen(r->passcode) + 1);
    EVP_DigestUpdate(ctx, r->vhost, strlen(r->vhost) + 1);
    EVP_DigestFinal_ex(ctx, out, &n);
    EVP_MD_CTX_free(ctx);
}

static void post_result(struct sg_auth_req *r)
{
    struct sg_worker *w = r->w;
    pthread_mutex_lock(&w->auth_lock);
    r->next = w->auth_done;
    w->auth_done = r;
    pthread_mutex_unlock(&w->auth_lock);
    event_active(w->auth_ev, EV_READ, 0);
}

static struct cache_ent *cache_slot(struct sg_auth *a, const uint8_t key[32])
{
    return &a->cache[((unsigned)key[0] << 8 | key[1]) % CACHE_SLOTS];
}

/* With a->lock held: 1 and r->ok set if the cache answers r. Relay
 * requests need a live connection, so the cache never answers them. */
static int cache_answer(struct sg_auth *a, struct sg_auth_req *r, const uint8_t key[32],
                        uint64_t now)
{
    struct cache_ent *e = cache_slot(a, key);
    if (r->keep_conn || e->expires <= now || memcmp(e->key, key, 32) != 0) return 0;
    r->ok = e->ok;
    snprintf(r->reason, sizeof r->reason, "%s (cached)", e->ok ? "ok" : "access refused");
    return 1;
}

static void check(struct sg_auth *a, struct sg_auth_req *r)
{
    uint8_t key[32];
    cache_key(a, r, key);
    uint64_t now = sg_now_ms();
    pthread_mutex_lock(&a->lock);
    int hit = cache_answer(a, r, key, now);
    pthread_mutex_unlock(&a->lock);
    if (hit) return;
    int rc = sg_auth_broker_connect(
        a->host, a->port, r->vhost, r->login, r->passcode, (int)a->cfg->broker_timeout_ms,
        r->keep_conn ? 30 : 0, r->keep_conn ? &r->amqp_conn : NULL, r->reason, sizeof r->reason);
    r->ok = rc == SG_OK;
    r->broker_down = rc != SG_OK && rc != SG_EAUTH;
    /* only the broker's own verdicts are cached, not outages */
    if ((rc == SG_OK || rc == SG_EAUTH) && a->cfg->auth_cache_ms > 0) {
        struct cache_ent *e = cache_slot(a, key);
        pthread_mutex_lock(&a->lock);
        memcpy(e->key, key, 32);
        e->ok = rc == SG_OK;
        e->expires = now + (rc == SG_OK ? (uint64_t)a->cfg->auth_cache_ms : NEG_CACHE_MS);
        pthread_mutex_unlock(&a->lock);
    }
}

static void lane_push(struct lane *l, struct sg_auth_req *r)
{
    STAILQ_INSERT_TAIL(l, r, lane_link);
}

static struct sg_auth_req *lane_pop(struct lane *l)
{
    struct sg_auth_req *r = STAILQ_FIRST(l);
    if (r) STAILQ_REMOVE_HEAD(l, lane_link);
    return r;
}

struct thread_arg {
    struct sg_auth *a;
    int relay_only; /* the relay's own thread */
};

/* Client threads take relay requests first, so a reconnect waits for the
 * first thread to come free, never for the client logins queued before
 * it; the relay thread takes nothing else, so one is always free for the
 * relay unless the relay itself keeps it busy. */
static void *auth_thread(void *arg)
{
    struct thread_arg *ta = arg;
    struct sg_auth *a = ta->a;
    int relay_only = ta->relay_only;
    free(ta);
    for (;;) {
        pthread_mutex_lock(&a->lock);
        while (STAILQ_EMPTY(&a->relay) && (relay_only || STAILQ_EMPTY(&a->clients)) && !a->stop)
            pthread_cond_wait(&a->cond, &a->lock);
        struct sg_auth_req *r = lane_pop(&a->relay);
        if (!r && !relay_only) r = lane_pop(&a->clients);
        int stop = a->stop;
        pthread_mutex_unlock(&a->lock);
        if (!r) break; /* stopping and nothing left for this thread */
        if (stop) {
            r->ok = 0;
            snprintf(r->reason, sizeof r->reason, "shutting down");
        } else {
            check(a, r);
        }
        if (!r->keep_conn) {
            pthread_mutex_lock(&a->lock);
            a->client_pending--;
            pthread_mutex_unlock(&a->lock);
        }
        post_result(r);
    }
    return NULL;
}

static int start_thread(struct sg_auth *a, int relay_only)
{
    struct thread_arg *ta = malloc(sizeof *ta);
    if (!ta) return SG_ENOMEM;
    ta->a = a;
    ta->relay_only = relay_only;
    if (pthread_create(&a->threads[a->nthreads], NULL, auth_thread, ta) != 0) {
        free(ta);
        return SG_EIO;
    }
    a->nthreads++;
    return SG_OK;
}

struct sg_auth *sg_auth_new(const struct sg_gw_config *cfg, int nthreads)
{
    struct sg_auth *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->cfg = cfg;
    a->client_max = cfg->auth_queue_max > 0 ? (long)cfg->auth_queue_max : 1;
    if (sg_config_split_addr(cfg->broker, a->host, sizeof a->host, &a->port) != SG_OK) goto fail;
    if (RAND_bytes(a->salt, sizeof a->salt) != 1) goto fail;
    STAILQ_INIT(&a->clients);
    STAILQ_INIT(&a->relay);
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->cond, NULL);
    if (nthreads < 1) nthreads = 1;
    a->threads = calloc((size_t)nthreads + 1, sizeof *a->threads);
    if (!a->threads) goto fail;
    /* the relay's thread first: without it reconnects could starve */
    if (start_thread(a, 1) != SG_OK) goto fail;
    for (int i = 0; i < nthreads; i++)
        if (start_thread(a, 0) != SG_OK) break;
    if (a->nthreads < 2) {
        sg_auth_free(a);
        return NULL;
    }
    return a;
fail:
    if (a->nthreads) {
        sg_auth_free(a);
        return NULL;
    }
    free(a->threads);
    free(a);
    return NULL;
}

void sg_auth_free(struct sg_auth *a)
{
    if (!a) return;
    pthread_mutex_lock(&a->lock);
    a->stop = 1;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
    for (int i = 0; i < a->nthreads; i++)
        pthread_join(a->threads[i], NULL);
    OPENSSL_cleanse(a->cache, sizeof a->cache);
    free(a->threads);
    free(a);
}

int sg_auth_submit(struct sg_auth *a, struct sg_auth_req *r)
{
    int rc = SG_OK, answered = 0;
    uint8_t key[32];
    if (!r->keep_conn) cache_key(a, r, key); /* outside the lock: SHA-256 */
    uint64_t now = sg_now_ms();
    pthread_mutex_lock(&a->lock);
    if (r->keep_conn) {
        lane_push(&a->relay, r);
    } else if (cache_answer(a, r, key, now)) {
        answered = 1; /* no thread, no slot: a known answer costs the broker nothing */
    } else if (a->client_pending >= a->client_max) {
        rc = SG_EBUSY;
    } else {
        a->client_pending++;
        lane_push(&a->clients, r);
    }
    /* one condition for both lanes: a signal could wake the relay thread
     * for a client login, and it would sleep on; a handful of threads */
    if (rc == SG_OK && !answered) pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
    OPENSSL_cleanse(key, sizeof key);
    if (answered) post_result(r);
    return rc;
}

long sg_auth_queue_length(struct sg_auth *a)
{
    pthread_mutex_lock(&a->lock);
    long n = a->client_pending;
    pthread_mutex_unlock(&a->lock);
    return n;
}

void sg_auth_drain(struct sg_worker *w)
{
    pthread_mutex_lock(&w->auth_lock);
    struct sg_auth_req *r = w->auth_done;
    w->auth_done = NULL;
    pthread_mutex_unlock(&w->auth_lock);
    while (r) {
        struct sg_auth_req *next = r->next;
        r->done(r);
        OPENSSL_cleanse(r->passcode, sizeof r->passcode);
        free(r);
        r = next;
    }
}
