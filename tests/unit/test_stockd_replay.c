/* test_stockd_replay.c - the replay source (daemon/replay.c): line parsing
 * (CSV with and without a header, quoted fields, JSON lines, seconds and
 * ISO-8601 timestamps), bad lines counted and reported but not fatal, a
 * file with no quote refused, per-symbol ordering, and the replay clock:
 * real time, faster, looped or not, and the next-quote-per-request mode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>

#include <math.h>

#include "error.h"
#include "replay.h"

struct bad_log {
    size_t n;
    size_t lines[16];
    char why[16][96];
};

static void on_bad(void *arg, size_t lineno, const char *why)
{
    struct bad_log *b = arg;
    if (b->n < 16) {
        b->lines[b->n] = lineno;
        snprintf(b->why[b->n], sizeof b->why[b->n], "%s", why);
    }
    b->n++;
}

static struct sg_replay *load(const char *text, struct sg_replay_stats *st, struct bad_log *b)
{
    int err = 0;
    struct sg_replay *r = sg_replay_load_buf(text, strlen(text), 1000, on_bad, b, st, &err);
    assert_non_null(r);
    assert_int_equal(err, SG_OK);
    return r;
}

/* one symbol's price at clock time now */
static int price_at(struct sg_source *s, const char *sym, double now, double *p)
{
    struct sg_src_quote q;
    memset(&q, 0, sizeof q);
    strcpy(q.sym, sym);
    q.have = 1; /* must be cleared when there is no price */
    sg_source_quote(s, &q, 1, now);
    *p = q.price;
    return q.have;
}

static double at(struct sg_source *s, const char *sym, double now)
{
    double p;
    assert_true(price_at(s, sym, now, &p));
    return p;
}

static void test_parse_lines(void **state)
{
    (void)state;
    struct sg_replay_quote q;
    const char *why = NULL;
    assert_int_equal(sg_replay_parse_line("1700000000.5,AAPL,189.91", 24, &q, &why), SG_OK);
    assert_true(q.ts == 1700000000.5);
    assert_string_equal(q.sym, "AAPL");
    assert_true(q.price == 189.91);

    const char *l = "  12 , \"MSFT\" , \"50.005\" \r";
    assert_int_equal(sg_replay_parse_line(l, strlen(l), &q, &why), SG_OK);
    assert_true(q.ts == 12);
    assert_string_equal(q.sym, "MSFT");
    assert_true(fabs(q.price - 50.01) < 1e-9); /* rounded to cents */

    l = "{\"ts\":3.25,\"symbol\":\"^GSPC\",\"price\":4500.1,\"volume\":7}";
    assert_int_equal(sg_replay_parse_line(l, strlen(l), &q, &why), SG_OK);
    assert_true(q.ts == 3.25);
    assert_string_equal(q.sym, "^GSPC");
    assert_true(q.price == 4500.1);

    l = "{\"ts\":\"1970-01-01T00:01:40Z\",\"symbol\":\"A\",\"price\":1}";
    assert_int_equal(sg_replay_parse_line(l, strlen(l), &q, &why), SG_OK);
    assert_true(q.ts == 100);

    assert_int_equal(sg_replay_parse_line("", 0, &q, &why), SG_AGAIN);
    assert_int_equal(sg_replay_parse_line("   \r", 4, &q, &why), SG_AGAIN);
    assert_int_equal(sg_replay_parse_line("# a comment", 11, &q, &why), SG_AGAIN);

    static const struct {
        const char *line, *why;
    } bad[] = {
        {"1,AAPL", "not 3 comma-separated fields"},
        {"1,AAPL,2,3", "not 3 comma-separated fields"},
        {"x,AAPL,2", "bad timestamp"},
        {"2024-13-01,AAPL,2", "bad timestamp"},
        {"2023-02-29T00:00:00Z,AAPL,2", "bad timestamp"},
        {"2024-01-01T25:00:00Z,AAPL,2", "bad timestamp"},
        {"2024-01-01T10:00:00+1,AAPL,2", "bad timestamp"},
        {"inf,AAPL,2", "bad timestamp"},
        {"1,aapl,2", "not a symbol"},
        {"1,,2", "not a symbol"},
        {"1,ABCDEFGHIJKLM,2", "not a symbol"},
        {"1,AAPL,0", "price is not a positive number"},
        {"1,AAPL,-5", "price is not a positive number"},
        {"1,AAPL,0.004", "price is not a positive number"},
        {"1,AAPL,abc", "price is not a positive number"},
        {"1,AAPL,nan", "price is not a positive number"},
        {"1,AAPL,1e999", "price is not a positive number"},
        {"1,AAPL,1.3e307", "price too large"},
        {"1,AAPL,1000000000000.01", "price too large"},
        {"1,AAPL,", "price is not a positive number"},
        {"{\"ts\":1,\"symbol\":\"AAPL\"", "bad JSON"},
        {"{\"ts\":1,\"symbol\":\"AAPL\",\"price\":\"2\"}", "price is not a positive number"},
        {"{\"ts\":true,\"symbol\":\"AAPL\",\"price\":2}", "no \"ts\""},
        {"{\"ts\":\"soon\",\"symbol\":\"AAPL\",\"price\":2}", "bad \"ts\""},
        {"{\"ts\":1,\"sym\":\"AAPL\",\"price\":2}", "no \"symbol\""},
        {"{\"ts\":1,\"symbol\":\"AAPL\",\"price\":2,\"price\":3}", "bad JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        int rc = sg_replay_parse_line(bad[i].line, strlen(bad[i].line), &q, &why);
        if (rc != SG_EPROTO || !why || !strstr(why, bad[i].why))
            fail_msg("%s: rc %d why %s, want %s", bad[i].line, rc, why ? why : "(none)",
                     bad[i].why);
    }
}

static void test_timestamps(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        double ts;
    } ok[] = {
        {"0", 0},
        {"1700000000", 1700000000},
        {"-1.5", -1.5},
        {"1e3", 1000},
        {"1970-01-01", 0},
        {"1970-01-02T00:00:00Z", 86400},
        {"2000-03-01T00:00:00Z", 951868800},
        {"2024-02-29T12:30:15.25Z", 1709209815.25},
        {"2024-02-29 12:30:15.25", 1709209815.25},       /* no zone: UTC */
        {"2024-02-29T14:30:15.25+02:00", 1709209815.25}, /* offsets */
        {"2024-02-29T07:30:15.25-0500", 1709209815.25},
        {"2024-02-29T12:30Z", 1709209800},
        {"1969-12-31T23:59:59Z", -1},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        double t = -12345;
        if (sg_replay_parse_ts(ok[i].s, strlen(ok[i].s), &t) != SG_OK || fabs(t - ok[i].ts) > 1e-6)
            fail_msg("%s: got %.6f want %.6f", ok[i].s, t, ok[i].ts);
    }
    static const char *bad[] = {"",
                                "abc",
                                "0x10",
                                "nan",
                                "2024-1-01",
                                "2024-01-01T",
                                "2024-01-01T12",
                                "2024-01-01Z",
                                "2024-01-01T12:00:00.",
                                "2024-01-01T12:00:61",
                                "12:00:00"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double t;
        if (sg_replay_parse_ts(bad[i], strlen(bad[i]), &t) != SG_EPROTO) fail_msg("%s", bad[i]);
    }
}

static void test_load_counts_bad_lines(void **state)
{
    (void)state;
    struct sg_replay_stats st;
    struct bad_log b = {0};
    struct sg_replay *r = load("ts,symbol,price\n"
                               "1,AAPL,100\n"
                               "\n"
                               "# the next line is bad\n"
                               "2,AAPL\n"
                               "{\"ts\":2,\"symbol\":\"MSFT\",\"price\":50}\n"
                               "3,aapl,1\n"
                               "{oops\n"
                               "4,AAPL,101", /* no final newline */
                               &st, &b);
    assert_int_equal(st.lines, 9);
    assert_int_equal(st.quotes, 3);
    assert_int_equal(st.bad, 3);
    assert_int_equal(st.header, 1);
    assert_int_equal(st.symbols, 2);
    assert_int_equal(st.dropped, 0);
    assert_true(st.first == 1 && st.last == 4);
    assert_int_equal(b.n, 3);
    assert_int_equal(b.lines[0], 5);
    assert_non_null(strstr(b.why[0], "fields"));
    assert_int_equal(b.lines[1], 7);
    assert_int_equal(b.lines[2], 8);
    assert_non_null(strstr(b.why[2], "bad JSON"));
    sg_replay_free(r);

    /* a header only counts as one on the first line with content; later a
     * line like it is bad */
    memset(&b, 0, sizeof b);
    r = load("1,AAPL,1\nts,symbol,price\n", &st, &b);
    assert_int_equal(st.header, 0);
    assert_int_equal(st.bad, 1);
    sg_replay_free(r);

    /* no quote at all: refused, with the bad lines still reported */
    int err = 0;
    memset(&b, 0, sizeof b);
    assert_null(sg_replay_load_buf("ts,symbol,price\nx,y,z\n\n", 22, 10, on_bad, &b, &st, &err));
    assert_int_equal(err, SG_ENOKEY);
    assert_int_equal(st.bad, 1);
    assert_int_equal(b.n, 1);
    assert_null(sg_replay_load_buf("", 0, 10, NULL, NULL, NULL, &err));
    assert_int_equal(err, SG_ENOKEY);

    /* max_quotes: the rest is dropped and counted */
    r = sg_replay_load_buf("1,A,1\n2,A,2\n3,A,3\n", 18, 2, NULL, NULL, &st, &err);
    assert_non_null(r);
    assert_int_equal(st.quotes, 2);
    assert_int_equal(st.dropped, 1);
    sg_replay_free(r);
    sg_replay_free(NULL);
}

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/test_stockd_replay.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "1,AAPL,10\r\n2,AAPL,11\r\nbad\r\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct sg_replay_stats st;
    char why[256] = "";
    int err;
    struct bad_log b = {0};
    struct sg_replay *r = sg_replay_load_file(path, 100, on_bad, &b, &st, &err, why, sizeof why);
    assert_non_null(r);
    assert_int_equal(st.quotes, 2);
    assert_int_equal(st.bad, 1);
    sg_replay_free(r);

    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "nothing\nhere\n", 13), 13);
    close(fd);
    assert_null(sg_replay_load_file(path, 100, NULL, NULL, &st, &err, why, sizeof why));
    assert_int_equal(err, SG_ENOKEY);
    assert_non_null(strstr(why, "no valid quote"));
    unlink(path);
    assert_null(sg_replay_load_file(path, 100, NULL, NULL, &st, &err, why, sizeof why));
    assert_int_equal(err, SG_EIO);
    assert_non_null(strstr(why, "cannot open"));
}

/* lines out of order: each symbol's quotes are sorted by time; equal times
 * keep file order */
static void test_ordering(void **state)
{
    (void)state;
    struct sg_replay_stats st;
    struct sg_replay *r = load("30,AAPL,3\n10,AAPL,1\n20,MSFT,20\n20,AAPL,2\n20,AAPL,2.5\n"
                               "0,MSFT,10\n",
                               &st, NULL);
    assert_true(st.first == 0 && st.last == 30);
    struct sg_source *s = sg_replay_source_new(r, 0, 0, 0); /* next quote per request */
    assert_true(at(s, "AAPL", 0) == 1);
    assert_true(at(s, "AAPL", 0) == 2);
    assert_true(at(s, "AAPL", 0) == 2.5);
    assert_true(at(s, "AAPL", 0) == 3);
    assert_true(at(s, "MSFT", 0) == 10);
    assert_true(at(s, "MSFT", 0) == 20);
    sg_source_free(s);
}

static const char *FILE3 = "100,AAPL,1\n101,AAPL,2\n102,AAPL,3\n100.5,MSFT,50\n104,MSFT,51\n";

static void test_real_time_once(void **state)
{
    (void)state;
    struct sg_replay_stats st;
    struct sg_source *s = sg_replay_source_new(load(FILE3, &st, NULL), 1.0, 0, 1000.0);
    assert_string_equal(s->name, "replay");
    double p;
    /* file time 100 at clock 1000 */
    assert_true(at(s, "AAPL", 1000.0) == 1);
    assert_true(at(s, "AAPL", 1000.99) == 1);
    assert_true(at(s, "AAPL", 1001.0) == 2);
    assert_true(at(s, "AAPL", 1002.5) == 3);
    /* before its first quote, a symbol gets its first one */
    assert_true(at(s, "MSFT", 1000.2) == 50);
    assert_true(at(s, "MSFT", 1003.99) == 50);
    assert_true(at(s, "MSFT", 1004.0) == 51);
    /* once over: the last quotes stay */
    assert_true(at(s, "AAPL", 5000) == 3);
    assert_true(at(s, "MSFT", 5000) == 51);
    /* a clock before the start is the start */
    assert_true(at(s, "AAPL", 10) == 1);
    /* a symbol the file does not have: no price */
    assert_false(price_at(s, "GOOG", 1001, &p));
    unsigned long round;
    assert_true(sg_replay_source_file_time(s, 1002.0, &round) == 102.0);
    assert_int_equal(round, 0);
    assert_true(sg_replay_source_file_time(s, 9999.0, &round) == 104.0);
    char line[128];
    sg_source_describe(s, line, sizeof line);
    assert_string_equal(line, "replay: 5 quotes of 2 symbols");
    sg_source_free(s);
}

static void test_speed(void **state)
{
    (void)state;
    struct sg_replay_stats st;
    /* 4x: a second of clock is 4 s of file */
    struct sg_source *s = sg_replay_source_new(load(FILE3, &st, NULL), 4.0, 0, 0.0);
    assert_true(at(s, "AAPL", 0.0) == 1);
    assert_true(at(s, "AAPL", 0.24) == 1);
    assert_true(at(s, "AAPL", 0.25) == 2);
    assert_true(at(s, "AAPL", 0.5) == 3);
    assert_true(at(s, "MSFT", 0.99) == 50);
    assert_true(at(s, "MSFT", 1.0) == 51);
    sg_source_free(s);
    /* 0.5x: half speed */
    s = sg_replay_source_new(load(FILE3, &st, NULL), 0.5, 0, 0.0);
    assert_true(at(s, "AAPL", 1.99) == 1);
    assert_true(at(s, "AAPL", 2.0) == 2);
    sg_source_free(s);
}

static void test_loop(void **state)
{
    (void)state;
    struct sg_replay_stats st;
    /* timestamps 100, 100.5, 101, 102, 104: span 4, 5 distinct, gap 1, so
     * the file starts over every 5 s */
    struct sg_source *s = sg_replay_source_new(load(FILE3, &st, NULL), 1.0, 1, 0.0);
    unsigned long round;
    assert_true(at(s, "AAPL", 2.0) == 3);
    assert_true(at(s, "AAPL", 4.9) == 3);
    assert_true(fabs(sg_replay_source_file_time(s, 4.9, &round) - 104.9) < 1e-9);
    assert_int_equal(round, 0);
    assert_true(at(s, "AAPL", 5.0) == 1); /* round 2 */
    assert_true(fabs(sg_replay_source_file_time(s, 5.0, &round) - 100.0) < 1e-9);
    assert_int_equal(round, 1);
    assert_true(at(s, "AAPL", 6.0) == 2);
    /* before its first quote in a later round: its last one of the round before */
    assert_true(at(s, "MSFT", 0.2) == 50); /* first round: its first quote */
    assert_true(at(s, "MSFT", 5.2) == 51);
    assert_true(at(s, "MSFT", 5.5) == 50);
    assert_true(at(s, "AAPL", 5.0 * 1000 + 1.0) == 2); /* many rounds later */
    sg_source_free(s);

    /* a single timestamp: a one-second round, always that quote */
    s = sg_replay_source_new(load("7,AAPL,9\n", &st, NULL), 1.0, 1, 0.0);
    assert_true(at(s, "AAPL", 0) == 9);
    assert_true(at(s, "AAPL", 123.4) == 9);
    sg_source_free(s);
}

static void test_fast_mode(void **state)
{
    (void)state;
    struct sg_replay_stats st;
    double p;
    /* speed 0: each request takes the symbol's next quote, whatever the clock */
    struct sg_source *s = sg_replay_source_new(load(FILE3, &st, NULL), 0, 1, 0.0);
    assert_true(at(s, "AAPL", 0) == 1);
    assert_true(at(s, "AAPL", 0) == 2);
    assert_true(at(s, "MSFT", 0) == 50); /* per symbol */
    assert_true(at(s, "AAPL", 0) == 3);
    assert_true(at(s, "AAPL", 0) == 1); /* looped */
    assert_true(at(s, "MSFT", 99) == 51);
    assert_true(at(s, "MSFT", -5) == 50);
    assert_false(price_at(s, "GOOG", 0, &p));
    sg_source_free(s);
    /* without loop: stays at the last */
    s = sg_replay_source_new(load(FILE3, &st, NULL), 0, 0, 0.0);
    assert_true(at(s, "MSFT", 0) == 50);
    assert_true(at(s, "MSFT", 0) == 51);
    assert_true(at(s, "MSFT", 0) == 51);
    sg_source_free(s);
    /* one request with several symbols advances each once */
    s = sg_replay_source_new(load(FILE3, &st, NULL), 0, 1, 0.0);
    struct sg_src_quote q[3];
    memset(q, 0, sizeof q);
    strcpy(q[0].sym, "AAPL");
    strcpy(q[1].sym, "NONE");
    strcpy(q[2].sym, "MSFT");
    sg_source_quote(s, q, 3, 0);
    assert_true(q[0].have && q[0].price == 1);
    assert_false(q[1].have);
    assert_true(q[2].have && q[2].price == 50);
    sg_source_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_lines),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_load_counts_bad_lines),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_ordering),
        cmocka_unit_test(test_real_time_once),
        cmocka_unit_test(test_speed),
        cmocka_unit_test(test_loop),
        cmocka_unit_test(test_fast_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
