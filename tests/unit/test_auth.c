/* test_auth.c - the auth queue's two lanes, against a "broker" that never
 * answers: a listening socket nobody reads from. The kernel completes the
 * TCP handshake, so every login attempt hangs in the AMQP handshake until
 * broker_timeout_ms, the way a frozen RabbitMQ behaves. Checks:
 *  - at most auth_queue_max client logins are pending; the next submit is
 *    SG_EBUSY and the request stays the caller's (its done() never runs);
 *  - sg_auth_queue_length counts queued and running client logins;
 *  - a relay request (keep_conn 1) is never refused, and reaches the broker
 *    at once even when every client thread is stuck and client logins are
 *    queued before it (its own lane and thread);
 *  - sg_auth_free completes what is still queued as refused, and every
 *    accepted request is posted back exactly once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "error.h"
#include "gw_config.h"
#include "server.h"
#include "util.h"

#define TIMEOUT_MS 1500 /* each hung login */

struct hole {
    int fd;
    int port;
    int accepted;
};

static void hole_open(struct hole *h)
{
    h->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(h->fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(h->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(h->fd, 64), 0);
    socklen_t sl = sizeof sa;
    assert_int_equal(getsockname(h->fd, (struct sockaddr *)&sa, &sl), 0);
    h->port = ntohs(sa.sin_port);
    h->accepted = 0;
}

/* Accepts (and keeps open, silent) whatever connected so far; returns the
 * total count. Accepting sends nothing: the peer still hangs. */
static int hole_count(struct hole *h, int *fds, int cap)
{
    for (;;) {
        int fd = accept(h->fd, NULL, NULL);
        if (fd < 0) break;
        if (h->accepted < cap)
            fds[h->accepted] = fd;
        else
            close(fd);
        h->accepted++;
    }
    return h->accepted;
}

/* Waits up to ms for the hole to have seen at least n connections. */
static int hole_wait(struct hole *h, int *fds, int cap, int n, int ms)
{
    uint64_t end = sg_now_ms() + (uint64_t)ms;
    while (hole_count(h, fds, cap) < n && sg_now_ms() < end) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return hole_count(h, fds, cap);
}

static int done_calls;
static int done_relay_calls;

static void on_done(struct sg_auth_req *r)
{
    done_calls++;
    if (r->keep_conn) done_relay_calls++;
    assert_false(r->ok); /* nobody answered */
}

static struct sg_auth_req *req(struct sg_worker *w, int keep_conn, int i)
{
    struct sg_auth_req *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->w = w;
    r->conn = w; /* anything non-NULL */
    r->done = on_done;
    r->keep_conn = keep_conn;
    snprintf(r->login, sizeof r->login, "user%d", i);
    snprintf(r->passcode, sizeof r->passcode, "random-%d-%ld", i, (long)sg_now_ms());
    snprintf(r->vhost, sizeof r->vhost, "/");
    return r;
}

static void noop_cb(evutil_socket_t fd, short what, void *arg) {}

static void test_lanes(void **state)
{
    (void)state;
    evthread_use_pthreads();
    struct hole h;
    hole_open(&h);
    char broker[64];
    snprintf(broker, sizeof broker, "127.0.0.1:%d", h.port);
    struct sg_gw_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.broker = broker;
    cfg.broker_timeout_ms = TIMEOUT_MS;
    cfg.auth_cache_ms = 30000;
    cfg.auth_queue_max = 4;

    struct sg_worker w;
    memset(&w, 0, sizeof w);
    pthread_mutex_init(&w.auth_lock, NULL);
    w.base = event_base_new();
    assert_non_null(w.base);
    w.auth_ev = event_new(w.base, -1, 0, noop_cb, &w);
    assert_non_null(w.auth_ev);

    /* 2 client threads (+ the relay's own) */
    struct sg_auth *a = sg_auth_new(&cfg, 2);
    assert_non_null(a);
    int fds[64];
    done_calls = done_relay_calls = 0;

    /* 4 client logins: 2 running (hung at the broker), 2 queued */
    for (int i = 0; i < 4; i++)
        assert_int_equal(sg_auth_submit(a, req(&w, 0, i)), SG_OK);
    assert_int_equal(hole_wait(&h, fds, 64, 2, 1000), 2);
    assert_int_equal(sg_auth_queue_length(a), 4);

    /* the 5th and 6th are refused at once and stay ours */
    for (int i = 4; i < 6; i++) {
        struct sg_auth_req *r = req(&w, 0, i);
        uint64_t t0 = sg_now_ms();
        assert_int_equal(sg_auth_submit(a, r), SG_EBUSY);
        assert_true(sg_now_ms() - t0 < 100);
        assert_null(r->next);
        free(r);
    }
    assert_int_equal(sg_auth_queue_length(a), 4);

    /* a relay reconnect is never refused and reaches the broker now, not
     * after the two queued client logins (which would take 2 x TIMEOUT_MS) */
    assert_int_equal(sg_auth_submit(a, req(&w, 1, 100)), SG_OK);
    assert_int_equal(hole_wait(&h, fds, 64, 3, 500), 3);
    assert_int_equal(sg_auth_queue_length(a), 4); /* relay requests are not counted */

    /* the first two time out; the queued two take their threads */
    assert_int_equal(hole_wait(&h, fds, 64, 5, TIMEOUT_MS * 2), 5);
    assert_int_equal(sg_auth_queue_length(a), 2);
    /* a slot is free again: this one waits for a client thread */
    assert_int_equal(sg_auth_submit(a, req(&w, 0, 7)), SG_OK);
    assert_int_equal(sg_auth_queue_length(a), 3);
    /* and again a relay request goes ahead of it */
    assert_int_equal(sg_auth_submit(a, req(&w, 1, 101)), SG_OK);
    assert_int_equal(hole_wait(&h, fds, 64, 6, 500), 6);
    assert_int_equal(hole_wait(&h, fds, 64, 7, 200), 6); /* client 7 still queued */
    pthread_mutex_lock(&w.auth_lock);
    int posted = 0;
    for (struct sg_auth_req *r = w.auth_done; r; r = r->next)
        posted++;
    pthread_mutex_unlock(&w.auth_lock);
    assert_true(posted >= 2); /* clients 0 and 1 */

    sg_auth_free(a); /* waits for the hung ones; the queued one is refused */
    sg_auth_drain(&w);
    assert_int_equal(done_calls, 7); /* 5 client logins + 2 relay requests, once each */
    assert_int_equal(done_relay_calls, 2);

    for (int i = 0; i < h.accepted && i < 64; i++)
        close(fds[i]);
    close(h.fd);
    event_free(w.auth_ev);
    event_base_free(w.base);
}

static void test_bad_broker_address(void **state)
{
    (void)state;
    struct sg_gw_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.broker = (char *)"no-port";
    cfg.auth_queue_max = 1;
    assert_null(sg_auth_new(&cfg, 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lanes),
        cmocka_unit_test(test_bad_broker_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
