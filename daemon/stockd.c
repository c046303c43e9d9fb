/* stockd - the quote daemon.
 *
 * Consumes work messages {"stocks":["AAPL","MSFT"]} from the durable queue
 * stocks.work (manual ack, prefetch; several stockd instances compete) and
 * publishes [{"symbol":"AAPL","price":149.34}, ...] to stocks.result, or to
 * a fanout exchange when result_exchange is set (several bridges), always
 * persistent and application/json. Prices come from one of three sources
 * (source.h): the seeded random walk (sim), a replay file, or an HTTP
 * quote service. docs/STOCKD.md has the whole contract.
 *
 * A result is published on a channel in confirm mode and the work is acked
 * only once the broker has confirmed the result: a nack (e.g. the result
 * queue is full with overflow reject-publish) rejects the work with requeue
 * and pauses a little; a return (the result queue is gone) or no confirm
 * within confirm_timeout_ms drops the connection, so the broker redelivers
 * the work. A work message that is not valid work is rejected without
 * requeue (a dead-letter policy can catch it), logged at WARN with why.
 *
 * stockd is a single-threaded blocking AMQP client: it owns its process, so
 * rabbitmq-c's blocking RPCs are fine here (unlike inside stompgate). Once
 * consuming, it reads frames itself (amqp_simple_wait_frame_noblock): the
 * deliveries on the work channel, the confirms on the result channel, a
 * consumer cancel or a channel close, so that waiting for a confirm never
 * loses a delivery, and a delivery's size is known from its header frame
 * before its body is kept (an oversized body is skipped, never stored).
 */
#include "auth.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "quotes.h"
#include "replay.h"
#include "source.h"
#include "source_http.h"
#include "work.h"

#include <amqp.h>
#include <systemd/sd-daemon.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

struct stockd_config {
    char *broker, *broker_vhost, *broker_user, *broker_password;
    int log_level;
    char *work_queue, *result_queue, *result_exchange;
    long long prefetch, seed, max_symbols, max_tracked_symbols, broker_timeout_ms, max_message;
    long long confirm_timeout_ms;
    char *source;
    char *replay_file;
    double replay_speed;
    int replay_loop;
    long long replay_max_quotes;
    char *http_url, *http_price_path;
    long long http_timeout_ms, http_max_inflight, http_max_body;
};

#define O(name, type, def, min, max, help)                                                         \
    {                                                                                              \
#name, type, def, offsetof(struct stockd_config, name), min, max, help                     \
    }
static const struct sg_opt options[] = {
    O(broker, SG_OPT_STR, "127.0.0.1:5672", 0, 0, "RabbitMQ AMQP address host:port"),
    O(broker_vhost, SG_OPT_STR, "/", 0, 0, "vhost"),
    O(broker_user, SG_OPT_STR, "websockets", 0, 0, "broker user"),
    O(broker_password, SG_OPT_STR, "rabbitmq", 0, 0, "broker password"),
    O(broker_timeout_ms, SG_OPT_INT, "5000", 100, 600000, "connect/login timeout"),
    O(log_level, SG_OPT_LOGLEVEL, "info", 0, 0, "debug, info, warn, error or none"),
    O(work_queue, SG_OPT_STR, "stocks.work", 0, 0, "durable queue of work messages"),
    O(result_queue, SG_OPT_STR, "stocks.result", 0, 0, "durable queue for results"),
    O(result_exchange, SG_OPT_STR, "", 0, 0, "fanout exchange for results (several bridges)"),
    O(prefetch, SG_OPT_INT, "10", 1, 65535, "unacknowledged work messages in flight"),
    O(confirm_timeout_ms, SG_OPT_INT, "5000", 100, 600000,
      "wait this long for the broker to confirm a result, then reconnect"),
    O(source, SG_OPT_STR, "sim", 0, 0, "price source: sim, replay or http"),
    O(seed, SG_OPT_INT, "0", 0, 4294967295.0, "random walk seed; 0 = time based"),
    O(max_symbols, SG_OPT_INT, "1000", 1, 100000, "symbols per work message"),
    O(max_tracked_symbols, SG_OPT_INT, "10000", 1, 10000000,
      "symbols kept (sim: walks, http: last prices); past it the least recent goes"),
    O(max_message, SG_OPT_SIZE, "1M", 64, 67108864, "largest work message accepted"),
    O(replay_file, SG_OPT_STR, "", 0, 0, "source=replay: CSV (ts,symbol,price) or JSON-lines file"),
    O(replay_speed, SG_OPT_DOUBLE, "1.0", 0, 1000000,
      "replay clock rate (1 = real time); 0 = each request takes the next quote"),
    O(replay_loop, SG_OPT_BOOL, "true", 0, 0, "start the replay over at the end of the file"),
    O(replay_max_quotes, SG_OPT_INT, "1000000", 1, 100000000,
      "quotes kept from replay_file; later lines are dropped"),
    O(http_url, SG_OPT_STR, "", 0, 0, "source=http: URL template with {symbol}, http:// only"),
    O(http_price_path, SG_OPT_STR, "price", 0, 0,
      "dotted path to the price in the JSON response, e.g. quoteResponse.result.0.price"),
    O(http_timeout_ms, SG_OPT_INT, "2000", 10, 30000,
      "deadline for all the GETs of one work message"),
    O(http_max_inflight, SG_OPT_INT, "8", 1, 1000, "GETs in flight at once"),
    O(http_max_body, SG_OPT_SIZE, "256K", 1024, 67108864, "largest HTTP response body"),
    {0},
};

/* ---- the price source */

static void replay_bad_line(void *arg, size_t lineno, const char *why)
{
    const char *path = arg;
    static size_t shown;
    if (shown++ < 10)
        sg_log(SG_LOG_WARN, "replay: %s:%zu: bad line: %s", path, lineno, why);
    else
        sg_log(SG_LOG_DEBUG, "replay: %s:%zu: bad line: %s", path, lineno, why);
}

static int check_config(const void *cfg, FILE *err)
{
    const struct stockd_config *c = cfg;
    char host[256], why[256];
    int port, errors = 0;
    if (sg_config_split_addr(c->broker, host, sizeof host, &port) != SG_OK || !port) {
        fprintf(err, "config: broker: must be host:port (got \"%s\")\n", c->broker);
        errors++;
    }
    if (!c->work_queue[0]) {
        fprintf(err, "config: work_queue: must not be empty\n");
        errors++;
    }
    if (!c->result_exchange[0] && !c->result_queue[0]) {
        fprintf(err, "config: result_queue: must not be empty unless result_exchange is set\n");
        errors++;
    }
    if (!strcmp(c->source, "replay")) {
        if (!c->replay_file[0]) {
            fprintf(err, "config: replay_file: must be set for source=replay\n");
            errors++;
        } else {
            int rc;
            struct sg_replay *r = sg_replay_load_file(c->replay_file, (size_t)c->replay_max_quotes,
                                                      NULL, NULL, NULL, &rc, why, sizeof why);
            if (!r) {
                fprintf(err, "config: replay_file: %s (got \"%s\")\n", why, c->replay_file);
                errors++;
            }
            sg_replay_free(r);
        }
    } else if (!strcmp(c->source, "http")) {
        const char *path;
        if (sg_http_url_split(c->http_url, host, sizeof host, &port, &path, why, sizeof why) !=
            SG_OK) {
            fprintf(err, "config: http_url: %s (got \"%s\")\n", why, c->http_url);
            errors++;
        }
    } else if (strcmp(c->source, "sim") != 0) {
        fprintf(err, "config: source: must be sim, replay or http (got \"%s\")\n", c->source);
        errors++;
    }
    return errors;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct sg_source *make_source(const struct stockd_config *c)
{
    char why[256];
    if (!strcmp(c->source, "replay")) {
        struct sg_replay_stats st;
        int rc;
        struct sg_replay *r =
            sg_replay_load_file(c->replay_file, (size_t)c->replay_max_quotes, replay_bad_line,
                                c->replay_file, &st, &rc, why, sizeof why);
        if (!r) {
            sg_log(SG_LOG_ERROR, "replay: %s", why);
            return NULL;
        }
        sg_log(SG_LOG_INFO,
               "replay: %s: %zu quotes of %zu symbols from %.3f to %.3f, %zu bad lines%s%s, "
               "speed %g%s, %s",
               c->replay_file, st.quotes, st.symbols, st.first, st.last, st.bad,
               st.header ? ", header skipped" : "", st.dropped ? ", some dropped" : "",
               c->replay_speed, c->replay_speed == 0 ? " (next quote per request)" : "",
               c->replay_loop ? "looping" : "once");
        if (st.dropped)
            sg_log(SG_LOG_WARN, "replay: %zu quotes past replay_max_quotes %lld dropped",
                   st.dropped, c->replay_max_quotes);
        return sg_replay_source_new(r, c->replay_speed, c->replay_loop, now_s());
    }
    if (!strcmp(c->source, "http")) {
        struct sg_http_source_config hc = {
            .url = c->http_url,
            .price_path = c->http_price_path,
            .timeout_ms = (int)c->http_timeout_ms,
            .max_inflight = (int)c->http_max_inflight,
            .max_body = (size_t)c->http_max_body,
            .max_tracked = (size_t)c->max_tracked_symbols,
        };
        struct sg_source *s = sg_http_source_new(&hc, why, sizeof why);
        if (!s) sg_log(SG_LOG_ERROR, "http: %s", why);
        if (s)
            sg_log(SG_LOG_INFO, "http: GET %s, price at \"%s\", %lld ms per work message",
                   c->http_url, c->http_price_path, c->http_timeout_ms);
        return s;
    }
    uint64_t seed = (uint64_t)c->seed;
    if (!seed) seed = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
    sg_log(SG_LOG_INFO, "sim: random walk, seed %llu", (unsigned long long)seed);
    return sg_sim_new(seed, (size_t)c->max_tracked_symbols);
}

static volatile sig_atomic_t stopping;
static void on_signal(int sig)
{
    stopping = 1;
}

/* backoff jitter (not the walk's generator: it must not change prices) */
static uint64_t jitter_state;
static double jitter(void)
{
    jitter_state ^= jitter_state >> 12;
    jitter_state ^= jitter_state << 25;
    jitter_state ^= jitter_state >> 27;
    return (double)((jitter_state * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

/* ---- AMQP */

#define WORK_CH 1
#define RESULT_CH 2

static const char *reply_text(amqp_rpc_reply_t r, char *buf, size_t cap)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return "ok";
    case AMQP_RESPONSE_NONE:
        return "missing reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        return amqp_error_string2(r.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *m = r.reply.decoded;
            snprintf(buf, cap, "%.*s", (int)m->reply_text.len, (char *)m->reply_text.bytes);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *m = r.reply.decoded;
            snprintf(buf, cap, "%.*s", (int)m->reply_text.len, (char *)m->reply_text.bytes);
        } else {
            snprintf(buf, cap, "server exception 0x%08x", r.reply.id);
        }
        return buf;
    }
    return "unknown";
}

/* One received work message, body kept unless it was too big. */
struct delivery {
    uint64_t tag;
    int redelivered, oversize;
    size_t size, got;
    char *body;
    struct delivery *next;
};

enum confirm { CONFIRM_NONE, CONFIRM_WAITING, CONFIRM_ACK, CONFIRM_NACK };

/* One broker connection and what its frames have told us so far. */
struct link {
    amqp_connection_state_t conn;
    const struct stockd_config *c;
    struct delivery *asm_;        /* being assembled from its frames */
    struct delivery *head, *tail; /* complete, waiting to be served */
    uint64_t next_seq;            /* publish sequence number of the next result */
    uint64_t wait_seq;            /* the one being waited for */
    enum confirm confirm;
    int returned; /* basic.return seen for the result being waited for */
    int dead;     /* drop the connection (why logged) */
    int closed;   /* the broker closed it: no connection.close from us */
};

static void link_dead(struct link *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void link_dead(struct link *l, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (!l->dead) sg_log(SG_LOG_WARN, "%s: reconnecting", why);
    l->dead = 1;
}

static void delivery_free(struct delivery *d)
{
    if (!d) return;
    free(d->body);
    free(d);
}

static void delivery_done(struct link *l)
{
    struct delivery *d = l->asm_;
    l->asm_ = NULL;
    if (l->tail)
        l->tail->next = d;
    else
        l->head = d;
    l->tail = d;
}

static void on_confirm(struct link *l, uint64_t tag, int multiple, enum confirm what)
{
    if (l->confirm != CONFIRM_WAITING) return;
    if (tag == l->wait_seq || (multiple && (tag == 0 || tag >= l->wait_seq))) l->confirm = what;
}

static void on_method(struct link *l, amqp_frame_t *f)
{
    amqp_method_t *m = &f->payload.method;
    switch (m->id) {
    case AMQP_BASIC_DELIVER_METHOD: {
        amqp_basic_deliver_t *d = m->decoded;
        if (l->asm_) {
            link_dead(l, "broker protocol error: a delivery before the last one's content");
            return;
        }
        l->asm_ = calloc(1, sizeof *l->asm_);
        if (!l->asm_) {
            link_dead(l, "out of memory for a delivery");
            return;
        }
        l->asm_->tag = d->delivery_tag;
        l->asm_->redelivered = d->redelivered;
        return;
    }
    case AMQP_BASIC_ACK_METHOD: {
        amqp_basic_ack_t *a = m->decoded;
        if (f->channel == RESULT_CH) on_confirm(l, a->delivery_tag, a->multiple, CONFIRM_ACK);
        return;
    }
    case AMQP_BASIC_NACK_METHOD: {
        amqp_basic_nack_t *a = m->decoded;
        if (f->channel == RESULT_CH) on_confirm(l, a->delivery_tag, a->multiple, CONFIRM_NACK);
        return;
    }
    case AMQP_BASIC_RETURN_METHOD: {
        amqp_basic_return_t *r = m->decoded;
        /* comes right before the ack of the result it returns; its
         * content frames (on RESULT_CH) are skipped */
        sg_log(SG_LOG_WARN, "result returned by the broker: %d %.*s", r->reply_code,
               (int)r->reply_text.len, (char *)r->reply_text.bytes);
        if (l->confirm == CONFIRM_WAITING) l->returned = 1;
        return;
    }
    case AMQP_BASIC_CANCEL_METHOD:
        link_dead(l, "the broker cancelled our consumer on %s (queue deleted?)", l->c->work_queue);
        return;
    case AMQP_CHANNEL_CLOSE_METHOD: {
        amqp_channel_close_t *cc = m->decoded;
        link_dead(l, "the broker closed channel %d: %d %.*s", f->channel, cc->reply_code,
                  (int)cc->reply_text.len, (char *)cc->reply_text.bytes);
        return;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        amqp_connection_close_t *cc = m->decoded;
        amqp_connection_close_ok_t ok = {0};
        amqp_send_method(l->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        l->closed = 1;
        link_dead(l, "the broker closed the connection: %d %.*s", cc->reply_code,
                  (int)cc->reply_text.len, (char *)cc->reply_text.bytes);
        return;
    }
    case AMQP_CONNECTION_BLOCKED_METHOD:
        sg_log(SG_LOG_WARN, "broker blocked publishing (resource alarm)");
        return;
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
        sg_log(SG_LOG_INFO, "broker unblocked publishing");
        return;
    default:
        sg_log(SG_LOG_DEBUG, "ignoring method 0x%08x on channel %d", m->id, f->channel);
        return;
    }
}

/* Reads and handles at most one frame, waiting up to tv. Returns 1 if a
 * frame was handled, 0 on timeout, -1 if the link is dead. */
static int read_frame(struct link *l, double wait_s)
{
    amqp_frame_t f;
    if (wait_s < 0) wait_s = 0;
    struct timeval tv = {(time_t)wait_s, (suseconds_t)((wait_s - floor(wait_s)) * 1e6)};
    int st = amqp_simple_wait_frame_noblock(l->conn, &f, &tv);
    if (st == AMQP_STATUS_TIMEOUT) return 0;
    if (st != AMQP_STATUS_OK) {
        l->closed = 1;
        link_dead(l, "broker connection lost: %s", amqp_error_string2(st));
        return -1;
    }
    if (f.frame_type == AMQP_FRAME_METHOD) {
        on_method(l, &f);
    } else if (f.channel != WORK_CH) {
        /* content of a returned result: nothing to keep */
    } else if (f.frame_type == AMQP_FRAME_HEADER) {
        struct delivery *d = l->asm_;
        if (!d || d->body || d->oversize) {
            link_dead(l, "broker protocol error: content header without a delivery");
            return -1;
        }
        d->size = (size_t)f.payload.properties.body_size;
        if (f.payload.properties.body_size > (uint64_t)l->c->max_message) {
            d->oversize = 1; /* the body is read and dropped, never kept */
        } else {
            d->body = malloc(d->size ? d->size : 1);
            if (!d->body) {
                link_dead(l, "out of memory for a %zu-byte work message", d->size);
                return -1;
            }
        }
        if (d->size == 0) delivery_done(l);
    } else if (f.frame_type == AMQP_FRAME_BODY) {
        struct delivery *d = l->asm_;
        amqp_bytes_t b = f.payload.body_fragment;
        if (!d || (!d->body && !d->oversize) || b.len > d->size - d->got) {
            link_dead(l, "broker protocol error: unexpected body frame");
            return -1;
        }
        if (d->body) memcpy(d->body + d->got, b.bytes, b.len);
        d->got += b.len;
        if (d->got == d->size) delivery_done(l);
    }
    return l->dead ? -1 : 1;
}

/* channel.close-ok for a channel the broker closed, then open it again */
static int reopen_channel(amqp_connection_state_t conn, amqp_channel_t ch)
{
    amqp_channel_close_ok_t ok = {0};
    if (amqp_send_method(conn, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) != AMQP_STATUS_OK) return -1;
    amqp_channel_open(conn, ch);
    return amqp_get_rpc_reply(conn).reply_type == AMQP_RESPONSE_NORMAL ? 0 : -1;
}

/* A durable queue: used as it is if it exists (whatever its arguments, e.g.
 * a dead-letter exchange), else declared durable without arguments. */
static int declare_queue(amqp_connection_state_t conn, const char *name, char *why, size_t cap)
{
    amqp_queue_declare(conn, WORK_CH, amqp_cstring_bytes(name), 1, 0, 0, 0, amqp_empty_table);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return 0;
    if (r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION || r.reply.id != AMQP_CHANNEL_CLOSE_METHOD ||
        ((amqp_channel_close_t *)r.reply.decoded)->reply_code != 404) {
        snprintf(why, cap, "queue %s: %s", name, reply_text(r, why, cap));
        return -1;
    }
    if (reopen_channel(conn, WORK_CH) != 0) {
        snprintf(why, cap, "queue %s: cannot reopen the channel", name);
        return -1;
    }
    amqp_queue_declare(conn, WORK_CH, amqp_cstring_bytes(name), 0, 1, 0, 0, amqp_empty_table);
    r = amqp_get_rpc_reply(conn);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char t[256];
        snprintf(why, cap, "queue %s: %s", name, reply_text(r, t, sizeof t));
        return -1;
    }
    return 0;
}

enum { CONN_OK = 0, CONN_RETRY = 1, CONN_FATAL = 2 };

/* Connects, logs in, declares, opens the result channel in confirm mode and
 * starts consuming. Returns CONN_OK, CONN_RETRY (broker down, or refused a
 * declare) or CONN_FATAL (credentials refused: retrying would not help). */
static int connect_broker(const struct stockd_config *c, amqp_connection_state_t *out)
{
    char host[256], why[256], t[256];
    int port;
    void *login = NULL;
    amqp_rpc_reply_t r;
    sg_config_split_addr(c->broker, host, sizeof host, &port);
    /* the same connect + login (timeouts, capabilities, refusal vs outage)
     * that stompgate's auth threads use */
    int rc = sg_auth_broker_connect(host, port, c->broker_vhost, c->broker_user, c->broker_password,
                                    (int)c->broker_timeout_ms, 30, &login, why, sizeof why);
    if (rc == SG_EAUTH) {
        sg_log(SG_LOG_ERROR, "broker login refused (access refused) for user %s on vhost %s: %s",
               c->broker_user, c->broker_vhost, why);
        return CONN_FATAL;
    }
    if (rc != SG_OK) {
        sg_log(SG_LOG_WARN, "cannot connect to broker %s: %s", c->broker, why);
        return CONN_RETRY;
    }
    amqp_connection_state_t conn = login;
    amqp_channel_open(conn, WORK_CH);
    r = amqp_get_rpc_reply(conn);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        snprintf(why, sizeof why, "channel.open: %s", reply_text(r, t, sizeof t));
        goto fail;
    }
    if (declare_queue(conn, c->work_queue, why, sizeof why) != 0) goto fail;
    if (c->result_exchange[0]) {
        amqp_exchange_declare(conn, WORK_CH, amqp_cstring_bytes(c->result_exchange),
                              amqp_cstring_bytes("fanout"), 0, 1, 0, 0, amqp_empty_table);
        r = amqp_get_rpc_reply(conn);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            snprintf(why, sizeof why, "exchange %s: %s", c->result_exchange,
                     reply_text(r, t, sizeof t));
            goto fail;
        }
    } else if (declare_queue(conn, c->result_queue, why, sizeof why) != 0) {
        goto fail;
    }
    amqp_channel_open(conn, RESULT_CH);
    r = amqp_get_rpc_reply(conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) {
        amqp_confirm_select(conn, RESULT_CH);
        r = amqp_get_rpc_reply(conn);
    }
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        snprintf(why, sizeof why, "confirm.select: %s", reply_text(r, t, sizeof t));
        goto fail;
    }
    amqp_basic_qos(conn, WORK_CH, 0, (uint16_t)c->prefetch, 0);
    r = amqp_get_rpc_reply(conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) {
        amqp_basic_consume(conn, WORK_CH, amqp_cstring_bytes(c->work_queue), amqp_empty_bytes, 0, 0,
                           0, amqp_empty_table);
        r = amqp_get_rpc_reply(conn);
    }
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        snprintf(why, sizeof why, "basic.consume: %s", reply_text(r, t, sizeof t));
        goto fail;
    }
    *out = conn;
    return CONN_OK;
fail:
    sg_log(SG_LOG_ERROR, "broker setup failed: %s", why);
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
    return CONN_RETRY;
}

/* ---- serving */

struct server {
    const struct stockd_config *c;
    struct sg_source *src;
    double hold_until; /* after a nack: no work served before then */
    int nack_backoff_ms;
    amqp_basic_properties_t props;
    unsigned long long answered, rejected, requeued;
};

/* Publishes one result and waits for its confirm. */
static enum confirm publish_confirmed(struct server *sv, struct link *l, const char *res,
                                      size_t len)
{
    const struct stockd_config *c = sv->c;
    int to_queue = !c->result_exchange[0];
    amqp_bytes_t body = {len, (void *)res};
    /* mandatory on the queue: a result queue deleted at run time returns the
     * result instead of dropping it (a fanout exchange with no queue bound
     * just means no bridge is listening) */
    int st = amqp_basic_publish(
        l->conn, RESULT_CH, amqp_cstring_bytes(to_queue ? "" : c->result_exchange),
        amqp_cstring_bytes(to_queue ? c->result_queue : ""), to_queue, 0, &sv->props, body);
    if (st != AMQP_STATUS_OK) {
        l->closed = 1;
        link_dead(l, "publishing the result failed: %s", amqp_error_string2(st));
        return CONFIRM_NONE;
    }
    l->wait_seq = l->next_seq++;
    l->confirm = CONFIRM_WAITING;
    l->returned = 0;
    double deadline = now_s() + c->confirm_timeout_ms / 1000.0;
    while (l->confirm == CONFIRM_WAITING && !l->dead) {
        double left = deadline - now_s();
        if (left <= 0) break;
        read_frame(l, left > 0.5 ? 0.5 : left);
    }
    enum confirm got = l->confirm;
    l->confirm = CONFIRM_NONE;
    if (got == CONFIRM_WAITING && !l->dead)
        link_dead(l, "no confirm for a result within confirm_timeout_ms %lld (work redelivered)",
                  c->confirm_timeout_ms);
    return l->dead ? CONFIRM_NONE : got;
}

static void serve_one(struct server *sv, struct link *l, struct delivery *d)
{
    const struct stockd_config *c = sv->c;
    char why[256];
    struct sg_work w;
    int rc;
    if (d->oversize) {
        snprintf(why, sizeof why, "too big (%zu bytes > max_message %lld)", d->size,
                 c->max_message);
        rc = SG_ETOOBIG;
    } else {
        rc = sg_work_parse(d->body, d->size, (size_t)c->max_message, (size_t)c->max_symbols, &w,
                           why, sizeof why);
    }
    if (rc != SG_OK) {
        sg_log(SG_LOG_WARN, "rejecting work message %llu (%zu bytes): %s",
               (unsigned long long)d->tag, d->size, why);
        sv->rejected++;
        if (amqp_basic_reject(l->conn, WORK_CH, d->tag, 0) != AMQP_STATUS_OK)
            link_dead(l, "basic.reject failed");
        return;
    }
    sg_source_quote(sv->src, w.q, w.n, now_s());
    size_t len, count;
    char *res = sg_work_result_encode(w.q, w.n, &len, &count);
    if (!res) {
        link_dead(l, "out of memory encoding a result");
        goto out;
    }
    if (count == 0) {
        sg_log(SG_LOG_DEBUG, "work %llu: no price for any of its %zu symbols: nothing published",
               (unsigned long long)d->tag, w.n);
        if (amqp_basic_ack(l->conn, WORK_CH, d->tag, 0) != AMQP_STATUS_OK)
            link_dead(l, "basic.ack failed");
        goto out;
    }
    enum confirm got = publish_confirmed(sv, l, res, len);
    if (got == CONFIRM_ACK && l->returned) {
        amqp_basic_reject(l->conn, WORK_CH, d->tag, 1);
        link_dead(l, "the result of work %llu was returned (result queue %s gone?)",
                  (unsigned long long)d->tag, c->result_queue);
    } else if (got == CONFIRM_ACK) {
        /* the result is the broker's now: the work is done */
        if (amqp_basic_ack(l->conn, WORK_CH, d->tag, 0) != AMQP_STATUS_OK) {
            link_dead(l, "basic.ack failed");
            goto out;
        }
        sv->answered++;
        sv->nack_backoff_ms = 0;
        sg_log(SG_LOG_DEBUG, "work %llu%s: answered %zu of %zu symbols (%zu entries): %s",
               (unsigned long long)d->tag, d->redelivered ? " (redelivered)" : "", count, w.n,
               w.entries, res);
    } else if (got == CONFIRM_NACK) {
        sv->nack_backoff_ms = sv->nack_backoff_ms ? sv->nack_backoff_ms * 2 : 250;
        if (sv->nack_backoff_ms > 5000) sv->nack_backoff_ms = 5000;
        sv->requeued++;
        sg_log(SG_LOG_WARN,
               "the broker nacked the result of work %llu (result queue full?): work requeued, "
               "pausing %d ms",
               (unsigned long long)d->tag, sv->nack_backoff_ms);
        if (amqp_basic_reject(l->conn, WORK_CH, d->tag, 1) != AMQP_STATUS_OK)
            link_dead(l, "basic.reject failed");
        sv->hold_until = now_s() + sv->nack_backoff_ms / 1000.0;
    }
out:
    free(res);
    sg_work_free(&w);
}

/* ---- systemd (sd_notify; no-ops without NOTIFY_SOCKET) */
static uint64_t wd_usec;   /* WATCHDOG_USEC, 0: no watchdog */
static double notify_next; /* when STATUS/WATCHDOG is due next */
static const char *notify_state = "starting";

/* Called from every wait of the main loop: WATCHDOG=1 at half the
 * watchdog interval (the loop is turning), STATUS with the counters. */
static void notify_tick(const struct server *sv, int force)
{
    double now = now_s(), period = wd_usec ? (double)wd_usec / 2e6 : 5.0;
    if (!force && now < notify_next) return;
    notify_next = now + period;
    char msg[256];
    snprintf(msg, sizeof msg, "%sSTATUS=%s; %llu work messages answered, %llu rejected",
             wd_usec ? "WATCHDOG=1\n" : "", notify_state, sv->answered, sv->rejected);
    sd_notify(0, msg);
}

static void serve(struct server *sv, amqp_connection_state_t conn)
{
    struct link l;
    memset(&l, 0, sizeof l);
    l.conn = conn;
    l.c = sv->c;
    l.next_seq = 1;
    sv->hold_until = 0;
    while (!stopping && !l.dead) {
        notify_tick(sv, 0);
        amqp_maybe_release_buffers(conn); /* everything kept was copied out */
        double now = now_s();
        if (!l.head || now < sv->hold_until) {
            double wait = l.head ? sv->hold_until - now : 1.0;
            read_frame(&l, wait > 1.0 ? 1.0 : wait);
            continue;
        }
        struct delivery *d = l.head;
        l.head = d->next;
        if (!l.head) l.tail = NULL;
        serve_one(sv, &l, d);
        delivery_free(d);
    }
    /* what was received but not served stays unacked: the broker
     * redelivers it once the connection is gone */
    while (l.head) {
        struct delivery *d = l.head;
        l.head = d->next;
        delivery_free(d);
    }
    delivery_free(l.asm_);
    if (!l.closed) amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
}

int main(int argc, char **argv)
{
    static const struct sg_program prog = {
        .name = "stockd",
        .summary = "The quote daemon: consumes stocks.work, publishes stocks.result.",
        .env_prefix = "STOCKD_",
        .default_file = "/etc/stompgate/stockd.conf",
        .table = options,
        .check = check_config,
    };
    struct stockd_config c;
    memset(&c, 0, sizeof c);
    int exit_code;
    if (sg_config_main(&prog, &c, argc, argv, &exit_code) != SG_OK) return exit_code;
    sg_log_init("stockd", (enum sg_log_level)c.log_level);
    sg_log_hook_libevent();
    jitter_state = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32 ^ 88172645463325252ULL;

    struct server sv;
    memset(&sv, 0, sizeof sv);
    sv.c = &c;
    sv.props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    sv.props.content_type = amqp_cstring_bytes("application/json");
    sv.props.delivery_mode = 2; /* persistent */
    sv.src = make_source(&c);
    if (!sv.src) {
        sg_config_free(options, &c);
        return 1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (sd_watchdog_enabled(0, &wd_usec) <= 0) wd_usec = 0;
    int backoff_ms = 200, first = 1, rc = 0, first_ready = 1;
    while (!stopping) {
        amqp_connection_state_t conn;
        int st = connect_broker(&c, &conn);
        if (st == CONN_FATAL && first) {
            rc = 1;
            break;
        }
        if (st != CONN_OK) {
            /* jittered exponential backoff, capped at 10 s */
            int ms = backoff_ms / 2 + (int)(jitter() * backoff_ms / 2);
            sg_log(SG_LOG_INFO, "reconnecting in %d ms", ms);
            notify_state = "broker unreachable, reconnecting";
            for (int t = 0; t < ms && !stopping; t += 50) {
                notify_tick(&sv, 0);
                usleep(50000);
            }
            backoff_ms = backoff_ms * 2 > 10000 ? 10000 : backoff_ms * 2;
            continue;
        }
        first = 0;
        backoff_ms = 200;
        sg_log(SG_LOG_INFO, "ready: consuming %s, publishing to %s%s (confirmed), source %s",
               c.work_queue, c.result_exchange[0] ? "exchange " : "queue ",
               c.result_exchange[0] ? c.result_exchange : c.result_queue, sv.src->name);
        notify_state = "consuming work";
        if (first_ready) {
            /* ready once the first broker connection serves */
            sd_notify(0, "READY=1");
            first_ready = 0;
        }
        notify_tick(&sv, 1);
        serve(&sv, conn);
    }
    sd_notify(0, "STOPPING=1");
    char line[256];
    sg_source_describe(sv.src, line, sizeof line);
    if (!rc) sg_log(SG_LOG_INFO, "stopped");
    sg_log(SG_LOG_INFO, "%s; %llu work messages answered, %llu rejected, %llu requeued", line,
           sv.answered, sv.rejected, sv.requeued);
    sg_source_free(sv.src);
    sg_config_free(options, &c);
    return rc;
}
