/* test_stockd_http.c - the http source (daemon/source_http.c): the URL
 * template (split, {symbol} expansion), the dotted JSON path, and the
 * source itself against a libevent HTTP server on a thread of this test:
 * prices, concurrency, and the fall back to the last known price (or
 * none) on a timeout, a 500, bad JSON, a missing or non-numeric field and a
 * refused connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "source_http.h"

static void test_url_split(void **state)
{
    (void)state;
    char host[64], why[128];
    int port;
    const char *path;
    assert_int_equal(sg_http_url_split("http://127.0.0.1:8080/q/{symbol}?f=json", host, sizeof host,
                                       &port, &path, why, sizeof why),
                     SG_OK);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_string_equal(path, "/q/{symbol}?f=json");
    assert_int_equal(sg_http_url_split("HTTP://quotes.example/v7?symbols={symbol}", host,
                                       sizeof host, &port, &path, why, sizeof why),
                     SG_OK);
    assert_string_equal(host, "quotes.example");
    assert_int_equal(port, 80);
    assert_string_equal(path, "/v7?symbols={symbol}");
    assert_int_equal(sg_http_url_split("http://[::1]:81/{symbol}", host, sizeof host, &port, &path,
                                       why, sizeof why),
                     SG_OK);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 81);

    static const struct {
        const char *url, *why;
    } bad[] = {
        {"", "http://"},
        {"https://x/{symbol}", "http://"},
        {"ftp://x/{symbol}", "http://"},
        {"http://x/q", "no {symbol}"},
        {"http://x", "no {symbol}"},
        {"http://{symbol}.example/", "bad host"},
        {"http://user:pw@x/{symbol}", "bad port"},
        {"http://:80/{symbol}", "bad host"},
        {"http://x:0/{symbol}", "bad port"},
        {"http://x:65536/{symbol}", "bad port"},
        {"http://x:8a/{symbol}", "bad port"},
        {"http://x/a b/{symbol}", "spaces"},
        {"http://[::1/{symbol}", "IPv6"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        if (sg_http_url_split(bad[i].url, host, sizeof host, &port, &path, why, sizeof why) !=
                SG_ECONFIG ||
            !strstr(why, bad[i].why))
            fail_msg("%s: why \"%s\", want \"%s\"", bad[i].url, why, bad[i].why);
    }
}

static void test_expand(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(sg_http_expand("/q/{symbol}?s={symbol}&x={sym}", "BRK.B", out, sizeof out),
                     SG_OK);
    assert_string_equal(out, "/q/BRK.B?s=BRK.B&x={sym}");
    assert_int_equal(sg_http_expand("/q/{symbol}", "^GSPC", out, sizeof out), SG_OK);
    assert_string_equal(out, "/q/%5EGSPC");
    char small[8];
    assert_int_equal(sg_http_expand("/q/{symbol}", "AAPL", small, sizeof small), SG_OK);
    assert_string_equal(small, "/q/AAPL");
    assert_int_equal(sg_http_expand("/q/{symbol}", "AAPLX", small, sizeof small), SG_ETOOBIG);
    assert_string_equal(small, "");
}

static void test_json_price(void **state)
{
    (void)state;
    double p = 0;
    char why[128];
    const char *yahoo = "{\"quoteResponse\":{\"result\":[{\"symbol\":\"AAPL\","
                        "\"regularMarketPrice\":189.914}],\"error\":null}}";
    assert_int_equal(sg_http_json_price(yahoo, strlen(yahoo),
                                        "quoteResponse.result.0.regularMarketPrice", &p, why,
                                        sizeof why),
                     SG_OK);
    assert_true(p == 189.91);
    assert_int_equal(sg_http_json_price("{\"price\":\"12.5\"}", 16, "price", &p, why, sizeof why),
                     SG_OK);
    assert_true(p == 12.5);
    assert_int_equal(sg_http_json_price("42", 2, "", &p, why, sizeof why), SG_OK);
    assert_true(p == 42);
    assert_int_equal(sg_http_json_price("{\"0\":{\"p\":3}}", 13, "0.p", &p, why, sizeof why),
                     SG_OK); /* a numeric member name in an object */
    assert_true(p == 3);

    static const struct {
        const char *body, *path, *why;
    } bad[] = {
        {"", "price", "bad JSON"},
        {"<html>", "price", "bad JSON"},
        {"{\"a\n\x01", "price", "bad JSON"}, /* the reason stays one line */
        {"{\"price\":1", "price", "bad JSON"},
        {"{}", "price", "no \"price\""},
        {"{\"q\":[]}", "q.0.price", "no \"q.0\""},
        {"{\"q\":[{}]}", "q.0.price", "no \"q.0.price\""},
        {"{\"q\":[{}]}", "q.x", "no \"q.x\""},
        {"{\"q\":5}", "q.price", "no \"q.price\""},
        {"{\"price\":null}", "price", "not a number"},
        {"{\"price\":\"n/a\"}", "price", "not a number"},
        {"{\"price\":\"\"}", "price", "not a number"},
        {"{\"price\":true}", "price", "not a number"},
        {"{\"price\":{}}", "price", "not a number"},
        {"{\"price\":0}", "price", "not a positive price"},
        {"{\"price\":1.3e307}", "price", "too large a price"},
        {"{\"price\":-3.5}", "price", "not a positive price"},
        {"{\"price\":\"-3.5\"}", "price", "not a positive price"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        if (sg_http_json_price(bad[i].body, strlen(bad[i].body), bad[i].path, &p, why,
                               sizeof why) != SG_EPROTO ||
            !strstr(why, bad[i].why) || strpbrk(why, "\n\x01"))
            fail_msg("%s @ %s: why \"%s\", want \"%s\"", bad[i].body, bad[i].path, why, bad[i].why);
    }
}

/* ---- a quote server on its own thread.
 * GET /q/SYM: behaviour by symbol prefix:
 *   OK*    200 {"data":[{"price":N}]} with N = 10 + its count of GETs so far
 *   SLOW*  answers after 3 s (past any timeout here)
 *   E500*  500
 *   BAD*   200 with "not json"
 *   MISS*  200 {"data":[{}]}
 *   TEXT*  200 {"data":[{"price":"n/a"}]}
 * A symbol's behaviour can be switched to OK by the test (mode_ok). */
struct server {
    struct event_base *eb;
    struct evhttp *http;
    pthread_t th;
    int port;
    pthread_mutex_t mu;
    int inflight, max_inflight, gets;
    char all_ok[16][16]; /* symbols made OK */
    int nall_ok;
    int counts[64];
    struct event *keep;
    struct delayed *delayed[16]; /* SLOW answers not sent yet */
};

struct delayed {
    struct server *s;
    struct evhttp_request *req;
    struct event *ev;
};

static void reply(struct server *s, struct evhttp_request *req, int code, const char *body)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, body, strlen(body));
    evhttp_send_reply(req, code, code == 200 ? "OK" : "Error", b);
    evbuffer_free(b);
    pthread_mutex_lock(&s->mu);
    s->inflight--;
    pthread_mutex_unlock(&s->mu);
}

static void delayed_free(struct delayed *d)
{
    for (int i = 0; i < 16; i++)
        if (d->s->delayed[i] == d) d->s->delayed[i] = NULL;
    event_free(d->ev);
    free(d);
}

static void on_delayed(evutil_socket_t fd, short what, void *arg)
{
    struct delayed *d = arg;
    reply(d->s, d->req, 200, "{\"data\":[{\"price\":99}]}");
    delayed_free(d);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct server *s = arg;
    const char *uri = evhttp_request_get_uri(req);
    const char *sym = strncmp(uri, "/q/", 3) ? "" : uri + 3;
    pthread_mutex_lock(&s->mu);
    s->gets++;
    if (++s->inflight > s->max_inflight) s->max_inflight = s->inflight;
    int ok = 0;
    for (int i = 0; i < s->nall_ok; i++)
        ok |= !strcmp(s->all_ok[i], sym);
    int n = ++s->counts[(unsigned char)sym[0] % 64];
    pthread_mutex_unlock(&s->mu);
    char body[128];
    if (ok || !strncmp(sym, "OK", 2)) {
        snprintf(body, sizeof body, "{\"data\":[{\"price\":%d}]}", 10 + n);
        reply(s, req, 200, body);
    } else if (!strncmp(sym, "SLOW", 4)) {
        struct delayed *d = calloc(1, sizeof *d);
        d->s = s;
        d->req = req;
        d->ev = evtimer_new(s->eb, on_delayed, d);
        for (int i = 0; i < 16; i++)
            if (!s->delayed[i]) {
                s->delayed[i] = d;
                break;
            }
        struct timeval tv = {3, 0};
        evtimer_add(d->ev, &tv);
    } else if (!strncmp(sym, "E500", 4)) {
        reply(s, req, 500, "oops");
    } else if (!strncmp(sym, "BAD", 3)) {
        reply(s, req, 200, "not json");
    } else if (!strncmp(sym, "MISS", 4)) {
        reply(s, req, 200, "{\"data\":[{}]}");
    } else if (!strncmp(sym, "TEXT", 4)) {
        reply(s, req, 200, "{\"data\":[{\"price\":\"n/a\"}]}");
    } else {
        reply(s, req, 404, "no such path");
    }
}

static void *server_main(void *arg)
{
    struct server *s = arg;
    event_base_dispatch(s->eb);
    return NULL;
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

static struct server *server_start(void)
{
    struct server *s = calloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->eb = event_base_new();
    s->http = evhttp_new(s->eb);
    evhttp_set_gencb(s->http, on_request, s);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(s->http, "127.0.0.1", 0);
    assert_non_null(bs);
    struct sockaddr_in sin;
    socklen_t sl = sizeof sin;
    getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sin, &sl);
    s->port = ntohs(sin.sin_port);
    /* keeps the loop alive until stopped */
    s->keep = event_new(s->eb, -1, EV_PERSIST, on_stop, s->eb);
    struct timeval tv = {3600, 0};
    event_add(s->keep, &tv);
    pthread_create(&s->th, NULL, server_main, s);
    return s;
}

static void server_stop(struct server *s)
{
    event_base_once(s->eb, -1, EV_TIMEOUT, on_stop, s->eb, &(struct timeval){0, 0});
    pthread_join(s->th, NULL);
    for (int i = 0; i < 16; i++)
        if (s->delayed[i]) delayed_free(s->delayed[i]);
    event_free(s->keep);
    evhttp_free(s->http);
    event_base_free(s->eb);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static void make_ok(struct server *s, const char *sym)
{
    pthread_mutex_lock(&s->mu);
    snprintf(s->all_ok[s->nall_ok++], sizeof s->all_ok[0], "%s", sym);
    pthread_mutex_unlock(&s->mu);
}

static struct sg_source *source_for(int port, int timeout_ms, int inflight)
{
    char url[128], why[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/q/{symbol}", port);
    struct sg_http_source_config c = {
        .url = url,
        .price_path = "data.0.price",
        .timeout_ms = timeout_ms,
        .max_inflight = inflight,
        .max_body = 4096,
        .max_tracked = 100,
    };
    struct sg_source *src = sg_http_source_new(&c, why, sizeof why);
    if (!src) fail_msg("%s", why);
    return src;
}

static void fill(struct sg_src_quote *q, const char **syms, size_t n)
{
    memset(q, 0, n * sizeof *q);
    for (size_t i = 0; i < n; i++)
        strcpy(q[i].sym, syms[i]);
}

static void test_source_fetches_concurrently(void **state)
{
    (void)state;
    struct server *s = server_start();
    struct sg_source *src = source_for(s->port, 5000, 4);
    assert_string_equal(src->name, "http");
    static const char *syms[] = {"OKA", "OKB", "OKC", "OKD", "OKE", "OKF", "OKG", "OKH"};
    struct sg_src_quote q[8];
    fill(q, syms, 8);
    sg_source_quote(src, q, 8, 1.0);
    for (int i = 0; i < 8; i++) {
        assert_true(q[i].have);
        assert_true(q[i].price >= 11 && q[i].price <= 18);
    }
    pthread_mutex_lock(&s->mu);
    int gets = s->gets, maxin = s->max_inflight;
    pthread_mutex_unlock(&s->mu);
    assert_int_equal(gets, 8);
    assert_true(maxin >= 1 && maxin <= 4); /* bounded by max_inflight */
    /* a second work message: new GETs, new prices */
    fill(q, syms, 1);
    sg_source_quote(src, q, 1, 2.0);
    assert_true(q[0].have);
    char line[128];
    sg_source_describe(src, line, sizeof line);
    assert_non_null(strstr(line, "http: 9 GETs, 0 failed"));
    sg_source_free(src);
    server_stop(s);
}

static void test_source_slow_requests_overlap(void **state)
{
    (void)state;
    /* four slow symbols, four slots: all four are out at once (the server
     * sees them in flight together), and all time out */
    struct server *s = server_start();
    struct sg_source *src = source_for(s->port, 400, 4);
    static const char *syms[] = {"SLOW1", "SLOW2", "SLOW3", "SLOW4"};
    struct sg_src_quote q[4];
    fill(q, syms, 4);
    sg_source_quote(src, q, 4, 0);
    for (int i = 0; i < 4; i++)
        assert_false(q[i].have); /* never had a price */
    pthread_mutex_lock(&s->mu);
    int maxin = s->max_inflight;
    pthread_mutex_unlock(&s->mu);
    assert_int_equal(maxin, 4);
    sg_source_free(src);
    server_stop(s);
}

static void test_source_falls_back(void **state)
{
    (void)state;
    struct server *s = server_start();
    struct sg_source *src = source_for(s->port, 500, 8);
    /* first every symbol answers, so each has a last known price */
    static const char *syms[] = {"SLOW", "E500", "BAD", "MISS", "TEXT", "NOPE"};
    for (int i = 0; i < 6; i++)
        make_ok(s, syms[i]);
    struct sg_src_quote q[7];
    fill(q, syms, 6);
    sg_source_quote(src, q, 6, 0);
    double last[6];
    for (int i = 0; i < 6; i++) {
        assert_true(q[i].have);
        last[i] = q[i].price;
    }
    /* now each fails its own way: the last known price is served */
    pthread_mutex_lock(&s->mu);
    s->nall_ok = 0;
    pthread_mutex_unlock(&s->mu);
    static const char *syms2[] = {"SLOW", "E500", "BAD", "MISS", "TEXT", "NOPE", "BADNEW"};
    fill(q, syms2, 7);
    sg_source_quote(src, q, 7, 1);
    for (int i = 0; i < 6; i++) {
        assert_true(q[i].have);
        assert_true(q[i].price == last[i]);
    }
    assert_false(q[6].have); /* failed and never had a price: left out */
    char line[128];
    sg_source_describe(src, line, sizeof line);
    assert_non_null(strstr(line, "13 GETs, 7 failed, 6 last prices kept"));
    sg_source_free(src);

    /* nobody listening: every symbol fails, nothing is known */
    int port = s->port;
    server_stop(s);
    src = source_for(port, 500, 2);
    fill(q, syms, 3);
    sg_source_quote(src, q, 3, 0);
    for (int i = 0; i < 3; i++)
        assert_false(q[i].have);
    sg_source_free(src);
}

static void test_source_bad_config(void **state)
{
    (void)state;
    char why[128];
    struct sg_http_source_config c = {.url = "https://x/{symbol}", .price_path = "p"};
    assert_null(sg_http_source_new(&c, why, sizeof why));
    assert_non_null(strstr(why, "http://"));
}

int main(void)
{
    evthread_use_pthreads(); /* server_stop wakes the server's loop from this thread */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_split),
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_json_price),
        cmocka_unit_test(test_source_fetches_concurrently),
        cmocka_unit_test(test_source_slow_requests_overlap),
        cmocka_unit_test(test_source_falls_back),
        cmocka_unit_test(test_source_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
