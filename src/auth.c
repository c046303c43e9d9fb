/* auth.c - broker-checked credentials on a small thread pool (see auth.h). */
#include "auth.h"
#include "config.h"
#include "error.h"
#include "gw_config.h"
#include "log.h"
#include "server.h"
#include "util.h"

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

struct sg_auth {
    const struct sg_gw_config *cfg;
    char host[256];
    int port;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct sg_auth_req *head, *tail;
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

static void check(struct sg_auth *a, struct sg_auth_req *r)
{
    uint8_t key[32];
    cache_key(a, r, key);
    struct cache_ent *e = &a->cache[((unsigned)key[0] << 8 | key[1]) % CACHE_SLOTS];
    uint64_t now = sg_now_ms();
    pthread_mutex_lock(&a->lock);
    int hit = !r->keep_conn && e->expires > now && memcmp(e->key, key, 32) == 0;
    int ok = e->ok;
    pthread_mutex_unlock(&a->lock);
    if (hit) {
        r->ok = ok;
        snprintf(r->reason, sizeof r->reason, "%s (cached)", ok ? "ok" : "access refused");
        return;
    }
    int rc = sg_auth_broker_connect(
        a->host, a->port, r->vhost, r->login, r->passcode, (int)a->cfg->broker_timeout_ms,
        r->keep_conn ? 30 : 0, r->keep_conn ? &r->amqp_conn : NULL, r->reason, sizeof r->reason);
    r->ok = rc == SG_OK;
    r->broker_down = rc != SG_OK && rc != SG_EAUTH;
    /* only the broker's own verdicts are cached, not outages */
    if ((rc == SG_OK || rc == SG_EAUTH) && a->cfg->auth_cache_ms > 0) {
        pthread_mutex_lock(&a->lock);
        memcpy(e->key, key, 32);
        e->ok = rc == SG_OK;
        e->expires = now + (rc == SG_OK ? (uint64_t)a->cfg->auth_cache_ms : NEG_CACHE_MS);
        pthread_mutex_unlock(&a->lock);
    }
}

static void *auth_thread(void *arg)
{
    struct sg_auth *a = arg;
    for (;;) {
        pthread_mutex_lock(&a->lock);
        while (!a->head && !a->stop)
            pthread_cond_wait(&a->cond, &a->lock);
        struct sg_auth_req *r = a->head;
        if (r) {
            a->head = r->next;
            if (!a->head) a->tail = NULL;
        }
        int stop = a->stop;
        pthread_mutex_unlock(&a->lock);
        if (!r) break;
        if (stop) {
            r->ok = 0;
            snprintf(r->reason, sizeof r->reason, "shutting down");
        } else {
            check(a, r);
        }
        post_result(r);
    }
    return NULL;
}

struct sg_auth *sg_auth_new(const struct sg_gw_config *cfg, int nthreads)
{
    struct sg_auth *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->cfg = cfg;
    if (sg_config_split_addr(cfg->broker, a->host, sizeof a->host, &a->port) != SG_OK) goto fail;
    if (RAND_bytes(a->salt, sizeof a->salt) != 1) goto fail;
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->cond, NULL);
    a->threads = calloc((size_t)nthreads, sizeof *a->threads);
    if (!a->threads) goto fail;
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&a->threads[i], NULL, auth_thread, a) != 0) break;
        a->nthreads++;
    }
    if (!a->nthreads) goto fail;
    return a;
fail:
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

void sg_auth_submit(struct sg_auth *a, struct sg_auth_req *r)
{
    r->next = NULL;
    pthread_mutex_lock(&a->lock);
    if (a->tail)
        a->tail->next = r;
    else
        a->head = r;
    a->tail = r;
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->lock);
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
