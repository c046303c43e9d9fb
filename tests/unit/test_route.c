/* test_route.c - destination grammar: a table of destinations with the use
 * they are parsed for and the exact result (every field) or the exact error
 * text (the percent-decoder itself is tested in test_util.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "error.h"
#include "route.h"

#define SEND SG_ROUTE_FOR_SEND
#define SUB SG_ROUTE_FOR_SUBSCRIBE
#define RTO SG_ROUTE_FOR_REPLY_TO

/* why texts (the contract with the session, which puts them in ERROR) */
#define W_SLASH "destination must start with '/'"
#define W_PREFIX "unknown destination prefix"
#define W_EMPTYQ "empty queue name"
#define W_EMPTYK "empty routing key"
#define W_EMPTYX "empty exchange name"
#define W_LONG "name too long"
#define W_ESC "bad percent-escape in destination"
#define W_NUL "%00 in destination"
#define W_CTL "control character in destination"
#define W_QSLASH "'/' in a queue name (use %2F)"
#define W_TEMP "/temp-queue is only valid in reply-to"
#define W_REPLYSUB "/reply-queue cannot be subscribed to"
#define W_NOTTEMP "not a temp queue"

struct route_case {
    const char *dest;
    int use;
    const char *why; /* NULL: expect SG_OK and the fields below */
    enum sg_route_kind kind;
    const char *exchange;
    const char *routing_key;
    const char *queue;
    int shared;
};

#define ERR(d, u, w)                                                                               \
    {                                                                                              \
        d, u, w, (enum sg_route_kind)0, NULL, NULL, NULL, 0                                        \
    }

static const struct route_case cases[] = {
    /* /queue/NAME */
    {"/queue/stocks.AAPL", SEND, NULL, SG_ROUTE_QUEUE, "", "stocks.AAPL", "stocks.AAPL", 0},
    {"/queue/stocks.AAPL", SUB, NULL, SG_ROUTE_QUEUE, "", "stocks.AAPL", "stocks.AAPL", 0},
    {"/queue/a%2Fb", SEND, NULL, SG_ROUTE_QUEUE, "", "a/b", "a/b", 0},
    {"/queue/a%2fb", SUB, NULL, SG_ROUTE_QUEUE, "", "a/b", "a/b", 0},
    {"/queue/%41%4a%6B", SEND, NULL, SG_ROUTE_QUEUE, "", "AJk", "AJk", 0},
    {"/queue/caf\xc3\xa9", SEND, NULL, SG_ROUTE_QUEUE, "", "caf\xc3\xa9", "caf\xc3\xa9", 0},
    {"/queue/a%20b", SEND, NULL, SG_ROUTE_QUEUE, "", "a b", "a b", 0},
    ERR("/queue/", SEND, W_EMPTYQ),
    ERR("/queue/", SUB, W_EMPTYQ),
    ERR("/queue", SEND, W_EMPTYQ),
    ERR("/queue/a/b", SEND, W_QSLASH),
    ERR("/queue/a/", SUB, W_QSLASH),
    ERR("/queue//", SUB, W_QSLASH),
    ERR("/queue/%zz", SEND, W_ESC),
    ERR("/queue/%4", SEND, W_ESC),
    ERR("/queue/%", SEND, W_ESC),
    ERR("/queue/a%g1", SEND, W_ESC),
    ERR("/queue/%%41", SEND, W_ESC),
    ERR("/queue/%00", SEND, W_NUL),
    ERR("/queue/a%00b", SUB, W_NUL),
    ERR("/queue/a\x01z", SEND, W_CTL),
    ERR("/queue/a\tb", SEND, W_CTL),
    ERR("/queue/a\x7f", SEND, W_CTL),
    ERR("/queue/%0A", SEND, W_CTL),
    ERR("/queue/%1f", SEND, W_CTL),
    ERR("/queue/%7F", SEND, W_CTL),
    ERR("/queues/x", SEND, W_PREFIX),
    ERR("/Queue/x", SEND, W_PREFIX),
    /* /amq/queue/NAME */
    {"/amq/queue/q1", SEND, NULL, SG_ROUTE_AMQ_QUEUE, "", "q1", "q1", 0},
    {"/amq/queue/q1", SUB, NULL, SG_ROUTE_AMQ_QUEUE, "", "q1", "q1", 0},
    {"/amq/queue/q%2F1", SUB, NULL, SG_ROUTE_AMQ_QUEUE, "", "q/1", "q/1", 0},
    ERR("/amq/queue/", SUB, W_EMPTYQ),
    ERR("/amq/queue/a/b", SUB, W_QSLASH),
    ERR("/amq/queuex", SUB, W_PREFIX),
    ERR("/amq/q1", SUB, W_PREFIX),
    ERR("/amq", SUB, W_PREFIX),
    /* /topic/KEY */
    {"/topic/a.b.#", SEND, NULL, SG_ROUTE_TOPIC, "amq.topic", "a.b.#", "", 1},
    {"/topic/a.b.#", SUB, NULL, SG_ROUTE_TOPIC, "amq.topic", "a.b.#", "", 1},
    {"/topic/*.x", SUB, NULL, SG_ROUTE_TOPIC, "amq.topic", "*.x", "", 1},
    {"/topic/a/b", SUB, NULL, SG_ROUTE_TOPIC, "amq.topic", "a/b", "", 1},
    {"/topic/a%2Fb", SUB, NULL, SG_ROUTE_TOPIC, "amq.topic", "a/b", "", 1},
    ERR("/topic/", SUB, W_EMPTYK),
    ERR("/topic", SEND, W_EMPTYK),
    ERR("/topic/a%1Bb", SUB, W_CTL),
    ERR("/topic/a%0", SEND, W_ESC),
    /* /exchange/EX[/KEY] */
    {"/exchange/amq.fanout", SEND, NULL, SG_ROUTE_EXCHANGE, "amq.fanout", "", "", 1},
    {"/exchange/amq.fanout", SUB, NULL, SG_ROUTE_EXCHANGE, "amq.fanout", "", "", 1},
    {"/exchange/amq.fanout/", SUB, NULL, SG_ROUTE_EXCHANGE, "amq.fanout", "", "", 1},
    {"/exchange/logs/x/y", SEND, NULL, SG_ROUTE_EXCHANGE, "logs", "x/y", "", 1},
    {"/exchange/logs/x/", SEND, NULL, SG_ROUTE_EXCHANGE, "logs", "x/", "", 1},
    {"/exchange/logs//", SEND, NULL, SG_ROUTE_EXCHANGE, "logs", "/", "", 1},
    {"/exchange/a%2Fb/k", SEND, NULL, SG_ROUTE_EXCHANGE, "a/b", "k", "", 1},
    {"/exchange/ex/%2F", SUB, NULL, SG_ROUTE_EXCHANGE, "ex", "/", "", 1},
    ERR("/exchange/", SEND, W_EMPTYX),
    ERR("/exchange", SEND, W_EMPTYX),
    ERR("/exchange//key", SUB, W_EMPTYX),
    ERR("/exchange/a%zz/k", SUB, W_ESC),
    ERR("/exchange/ex/%zz", SUB, W_ESC),
    ERR("/exchange/ex/a%00", SUB, W_NUL),
    ERR("/exchange/e\nx/k", SUB, W_CTL),
    ERR("/exchange/ex/k\r", SEND, W_CTL),
    /* /temp-queue/X */
    {"/temp-queue/r1", RTO, NULL, SG_ROUTE_TEMP_QUEUE, "", "", "r1", 0},
    {"/temp-queue/r%2F1", RTO, NULL, SG_ROUTE_TEMP_QUEUE, "", "", "r/1", 0},
    ERR("/temp-queue/r1", SEND, W_TEMP),
    ERR("/temp-queue/r1", SUB, W_TEMP),
    ERR("/temp-queue/", RTO, W_EMPTYQ),
    ERR("/temp-queue", RTO, W_EMPTYQ),
    ERR("/temp-queue/a/b", RTO, W_QSLASH),
    ERR("/temp-queue/%zz", RTO, W_ESC),
    ERR("/temp-queue/a%01", RTO, W_CTL),
    /* reply-to values other than /temp-queue are the caller's to pass on */
    ERR("/queue/x", RTO, W_NOTTEMP),
    ERR("/reply-queue/amq.gen-xyz", RTO, W_NOTTEMP),
    ERR("/temp-queues/x", RTO, W_NOTTEMP),
    ERR("some-reply-address", RTO, W_NOTTEMP),
    ERR("", RTO, W_NOTTEMP),
    /* /reply-queue/NAME */
    {"/reply-queue/amq.gen-xyz", SEND, NULL, SG_ROUTE_REPLY_QUEUE, "", "amq.gen-xyz", "amq.gen-xyz",
     0},
    ERR("/reply-queue/amq.gen-xyz", SUB, W_REPLYSUB),
    ERR("/reply-queue/", SEND, W_EMPTYQ),
    ERR("/reply-queue/a/b", SEND, W_QSLASH),
    ERR("/reply-queue/%", SEND, W_ESC),
    /* prefixes */
    ERR("/foo/x", SEND, W_PREFIX),
    ERR("/foo/x", SUB, W_PREFIX),
    ERR("/", SEND, W_PREFIX),
    ERR("//queue/x", SEND, W_PREFIX),
    ERR("queue/x", SEND, W_SLASH),
    ERR("queue/x", SUB, W_SLASH),
    ERR("", SEND, W_SLASH),
    ERR("stocks", SEND, W_SLASH),
};

static void check_case(const struct route_case *c)
{
    struct sg_route r;
    const char *why = "unset";
    memset(&r, 0xAA, sizeof r);
    int rc = sg_route_parse(c->dest, (enum sg_route_use)c->use, &r, &why);
    if (!c->why) {
        if (rc != SG_OK) fail_msg("%s (use %d): %s", c->dest, c->use, why);
        assert_null(why);
        assert_int_equal(r.kind, c->kind);
        assert_string_equal(r.exchange, c->exchange);
        assert_string_equal(r.routing_key, c->routing_key);
        assert_string_equal(r.queue, c->queue);
        assert_int_equal(r.shared, c->shared);
    } else {
        if (rc != SG_EDEST) fail_msg("%s (use %d): rc %d, want SG_EDEST", c->dest, c->use, rc);
        assert_non_null(why);
        if (strcmp(why, c->why) != 0)
            fail_msg("%s (use %d): why \"%s\", want \"%s\"", c->dest, c->use, why, c->why);
        /* zeroed on error */
        struct sg_route zero;
        memset(&zero, 0, sizeof zero);
        assert_memory_equal(&r, &zero, sizeof r);
    }
}

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i]);
}

/* "/queue/" + n bytes of 'q' (or n "%71" escapes) */
static char *long_dest(const char *prefix, size_t n, int escaped)
{
    size_t pl = strlen(prefix);
    char *d = malloc(pl + n * 3 + 1);
    assert_non_null(d);
    memcpy(d, prefix, pl);
    char *w = d + pl;
    for (size_t i = 0; i < n; i++) {
        if (escaped) {
            memcpy(w, "%71", 3);
            w += 3;
        } else {
            *w++ = 'q';
        }
    }
    *w = '\0';
    return d;
}

static void test_lengths(void **state)
{
    (void)state;
    static const char *const prefixes[] = {"/queue/",     "/amq/queue/",  "/topic/",
                                           "/exchange/",  "/exchange/x/", "/reply-queue/",
                                           "/temp-queue/"};
    for (size_t p = 0; p < sizeof prefixes / sizeof prefixes[0]; p++) {
        int use = strcmp(prefixes[p], "/temp-queue/") == 0 ? RTO : SEND;
        for (int escaped = 0; escaped < 2; escaped++) {
            static const size_t lens[] = {255, 256, 300, 1000};
            for (size_t l = 0; l < 4; l++) {
                struct sg_route r;
                const char *why = NULL;
                char *d = long_dest(prefixes[p], lens[l], escaped);
                int rc = sg_route_parse(d, (enum sg_route_use)use, &r, &why);
                if (lens[l] <= 255) {
                    if (rc != SG_OK) fail_msg("%s x%zu: %s", prefixes[p], lens[l], why);
                    const char *name = strcmp(prefixes[p], "/exchange/") == 0 ? r.exchange
                                       : r.kind == SG_ROUTE_TEMP_QUEUE        ? r.queue
                                                                              : r.routing_key;
                    assert_int_equal(strlen(name), 255);
                    assert_int_equal(name[0], 'q');
                } else {
                    assert_int_equal(rc, SG_EDEST);
                    assert_string_equal(why, W_LONG);
                }
                free(d);
            }
        }
    }
    /* a bad escape after the 255th byte is still reported as the escape */
    char *d = long_dest("/queue/", 300, 0);
    d[strlen(d) - 1] = '%';
    struct sg_route r;
    const char *why = NULL;
    assert_int_equal(sg_route_parse(d, SEND, &r, &why), SG_EDEST);
    assert_string_equal(why, W_ESC);
    free(d);
}

static void test_misc(void **state)
{
    (void)state;
    struct sg_route r;
    const char *why = NULL;
    /* why may be NULL */
    assert_int_equal(sg_route_parse("/queue/a", SEND, &r, NULL), SG_OK);
    assert_string_equal(r.queue, "a");
    assert_int_equal(sg_route_parse("/foo", SEND, &r, NULL), SG_EDEST);
    /* NULL dest and an invalid use are errors, not crashes */
    assert_int_equal(sg_route_parse(NULL, SEND, &r, &why), SG_EDEST);
    assert_non_null(why);
    why = NULL;
    assert_int_equal(sg_route_parse("/queue/a", (enum sg_route_use)7, &r, &why), SG_EDEST);
    assert_non_null(why);
    /* a success after an error leaves nothing of the error behind */
    assert_int_equal(sg_route_parse("/exchange/e/k", SUB, &r, &why), SG_OK);
    assert_null(why);
    assert_int_equal(sg_route_parse("/queue/z", SUB, &r, &why), SG_OK);
    assert_string_equal(r.exchange, "");
    assert_int_equal(r.shared, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_misc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
