/* stockd - the quote daemon.
 *
 * Consumes work messages {"stocks":["AAPL","MSFT"]} from the durable queue
 * stocks.work (manual ack, prefetch; several stockd instances compete) and
 * publishes [{"symbol":"AAPL","price":149.34}, ...] to stocks.result, or to
 * a fanout exchange when result_exchange is set (several bridges), always
 * persistent and application/json. Prices come from a seeded random walk:
 * the book's start prices for its five symbols, a plausible start price for
 * any other valid symbol, and steps in [-1.50, +1.50]. The walks live in a
 * bounded table (quotes.h): past max_tracked_symbols the least recently
 * requested symbol is forgotten, so made-up symbols cannot grow it.
 *
 * stockd is a single-threaded blocking AMQP client: it owns its process, so
 * rabbitmq-c's blocking RPCs are fine here (unlike inside stompgate).
 */
#include "auth.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "quotes.h"

#include <amqp.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct stockd_config {
    char *broker, *broker_vhost, *broker_user, *broker_password;
    int log_level;
    char *work_queue, *result_queue, *result_exchange;
    long long prefetch, seed, max_symbols, max_tracked_symbols, broker_timeout_ms, max_message;
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
    O(seed, SG_OPT_INT, "0", 0, 4294967295.0, "random walk seed; 0 = time based"),
    O(max_symbols, SG_OPT_INT, "1000", 1, 100000, "symbols per work message"),
    O(max_tracked_symbols, SG_OPT_INT, "10000", 1, 10000000,
      "price walks kept; past it the least recently requested is forgotten"),
    O(max_message, SG_OPT_SIZE, "1M", 64, 67108864, "largest work message accepted"),
    {0},
};

static int check_config(const void *cfg, FILE *err)
{
    const struct stockd_config *c = cfg;
    char host[256];
    int port;
    if (sg_config_split_addr(c->broker, host, sizeof host, &port) != SG_OK || !port) {
        fprintf(err, "config: broker: must be host:port (got \"%s\")\n", c->broker);
        return 1;
    }
    return 0;
}

static volatile sig_atomic_t stopping;
static void on_signal(int sig)
{
    stopping = 1;
}

/* ---- the random walk */
static struct sg_quotes *quotes;
static unsigned long long rng_state;

static double rnd(void) /* xorshift64*, uniform in [0,1) */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static int symbol_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 12) return 0;
    for (; *s; s++)
        if (!isupper((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '.' && *s != '-')
            return 0;
    return 1;
}

static double next_price(const char *sym)
{
    struct sg_quote_result res;
    if (sg_quotes_next(quotes, sym, rnd() * 3.0 - 1.5, &res) != SG_OK)
        return sg_quotes_start_price(sym); /* out of memory: serve, do not remember */
    if (res.evicted)
        sg_log(SG_LOG_DEBUG, "quote table full (%zu symbols): forgot %s for %s (%llu evicted)",
               sg_quotes_count(quotes), res.evicted_sym, sym,
               (unsigned long long)sg_quotes_evictions(quotes));
    return res.price;
}

/* ---- AMQP */
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

enum { CONN_OK = 0, CONN_RETRY = 1, CONN_FATAL = 2 };

/* Connects, logs in and declares. Returns CONN_OK, CONN_RETRY (broker down)
 * or CONN_FATAL (credentials refused: retrying would not help). */
static int connect_broker(const struct stockd_config *c, amqp_connection_state_t *out)
{
    char host[256], why[256];
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
    amqp_channel_open(conn, 1);
    amqp_queue_declare(conn, 1, amqp_cstring_bytes(c->work_queue), 0, 1, 0, 0, amqp_empty_table);
    if (c->result_exchange[0])
        amqp_exchange_declare(conn, 1, amqp_cstring_bytes(c->result_exchange),
                              amqp_cstring_bytes("fanout"), 0, 1, 0, 0, amqp_empty_table);
    else
        amqp_queue_declare(conn, 1, amqp_cstring_bytes(c->result_queue), 0, 1, 0, 0,
                           amqp_empty_table);
    amqp_basic_qos(conn, 1, 0, (uint16_t)c->prefetch, 0);
    amqp_basic_consume(conn, 1, amqp_cstring_bytes(c->work_queue), amqp_empty_bytes, 0, 0, 0,
                       amqp_empty_table);
    r = amqp_get_rpc_reply(conn);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        sg_log(SG_LOG_ERROR, "broker setup failed: %s", reply_text(r, why, sizeof why));
        amqp_destroy_connection(conn);
        return CONN_RETRY;
    }
    *out = conn;
    return CONN_OK;
}

/* Builds the result for one work message body; NULL if it is not valid work. */
static char *handle_work(const struct stockd_config *c, const char *body, size_t len)
{
    json_error_t err;
    json_t *in = json_loadb(body, len, 0, &err);
    json_t *stocks = in ? json_object_get(in, "stocks") : NULL;
    if (!json_is_array(stocks)) {
        sg_log(SG_LOG_WARN, "ignoring work message that is not {\"stocks\":[...]}");
        json_decref(in);
        return NULL;
    }
    json_t *out = json_array(), *seen = json_object();
    size_t i, n = 0;
    json_t *v;
    json_array_foreach(stocks, i, v)
    {
        const char *sym = json_string_value(v);
        if (!sym || !symbol_valid(sym)) {
            sg_log(SG_LOG_DEBUG, "ignoring invalid symbol");
            continue;
        }
        if (json_object_get(seen, sym)) continue; /* the book's server sends duplicates */
        if (n++ >= (size_t)c->max_symbols) break;
        json_object_set_new(seen, sym, json_true());
        json_t *q = json_object();
        json_object_set_new(q, "symbol", json_string(sym));
        json_object_set_new(q, "price", json_real(next_price(sym)));
        json_array_append_new(out, q);
    }
    char *s = json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(out);
    json_decref(seen);
    json_decref(in);
    return s;
}

static int serve(const struct stockd_config *c, amqp_connection_state_t conn)
{
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof props);
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.content_type = amqp_cstring_bytes("application/json");
    props.delivery_mode = 2;
    while (!stopping) {
        amqp_envelope_t env;
        struct timeval tv = {1, 0};
        amqp_maybe_release_buffers(conn);
        amqp_rpc_reply_t r = amqp_consume_message(conn, &env, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT)
            continue;
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            char why[256];
            sg_log(SG_LOG_WARN, "broker connection lost: %s", reply_text(r, why, sizeof why));
            return -1;
        }
        if (env.message.body.len > (size_t)c->max_message) {
            sg_log(SG_LOG_WARN, "dropping oversized work message (%zu bytes)",
                   env.message.body.len);
            amqp_basic_reject(conn, 1, env.delivery_tag, 0);
            amqp_destroy_envelope(&env);
            continue;
        }
        char *res = handle_work(c, env.message.body.bytes, env.message.body.len);
        if (res) {
            const char *ex = c->result_exchange[0] ? c->result_exchange : "";
            const char *key = c->result_exchange[0] ? "" : c->result_queue;
            int st = amqp_basic_publish(conn, 1, amqp_cstring_bytes(ex), amqp_cstring_bytes(key), 0,
                                        0, &props, amqp_cstring_bytes(res));
            sg_log(SG_LOG_DEBUG, "published %s", res);
            free(res);
            if (st != AMQP_STATUS_OK) {
                amqp_destroy_envelope(&env);
                return -1; /* unacked work is redelivered to the next stockd */
            }
        }
        /* ack after publishing: a crash in between redelivers the work */
        amqp_basic_ack(conn, 1, env.delivery_tag, 0);
        amqp_destroy_envelope(&env);
    }
    return 0;
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
    rng_state = c.seed ? (unsigned long long)c.seed
                       : (unsigned long long)time(NULL) ^ (unsigned long long)getpid() << 32;
    if (!rng_state) rng_state = 88172645463325252ULL;
    quotes = sg_quotes_new((size_t)c.max_tracked_symbols);
    if (!quotes) {
        sg_log(SG_LOG_ERROR, "out of memory");
        sg_config_free(options, &c);
        return 1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int backoff_ms = 200, first = 1, rc = 0;
    while (!stopping) {
        amqp_connection_state_t conn;
        int st = connect_broker(&c, &conn);
        if (st == CONN_FATAL && first) {
            rc = 1;
            break;
        }
        if (st != CONN_OK) {
            /* jittered exponential backoff, capped at 10 s */
            int ms = backoff_ms / 2 + (int)(rnd() * backoff_ms / 2);
            sg_log(SG_LOG_INFO, "reconnecting in %d ms", ms);
            for (int t = 0; t < ms && !stopping; t += 50)
                usleep(50000);
            backoff_ms = backoff_ms * 2 > 10000 ? 10000 : backoff_ms * 2;
            continue;
        }
        first = 0;
        backoff_ms = 200;
        sg_log(SG_LOG_INFO, "ready: consuming %s, publishing to %s%s", c.work_queue,
               c.result_exchange[0] ? "exchange " : "queue ",
               c.result_exchange[0] ? c.result_exchange : c.result_queue);
        serve(&c, conn);
        amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(conn);
    }
    if (!rc) sg_log(SG_LOG_INFO, "stopped");
    if (quotes)
        sg_log(SG_LOG_INFO, "quote table: %zu symbols, %llu evicted", sg_quotes_count(quotes),
               (unsigned long long)sg_quotes_evictions(quotes));
    sg_quotes_free(quotes);
    sg_config_free(options, &c);
    return rc;
}
