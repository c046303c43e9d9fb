/* test_stockd_sim.c - the random walk source (daemon/source_sim.c) on an
 * injected clock: reproducible from the seed (and per symbol, whatever else
 * is asked for), start prices, every price positive and in whole cents,
 * each move within [-1.50, +1.50], moves only 0.5-2.5 s apart, the
 * catch-up after a gap, and the bounded table behind it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <math.h>

#include "error.h"
#include "source.h"

static double ask(struct sg_source *s, const char *sym, double now)
{
    struct sg_src_quote q;
    memset(&q, 0, sizeof q);
    strcpy(q.sym, sym);
    sg_source_quote(s, &q, 1, now);
    assert_true(q.have);
    return q.price;
}

static int cents(double p)
{
    return fabs(p * 100.0 - round(p * 100.0)) < 1e-6;
}

/* 200 requests of three symbols at irregular times */
static void series(uint64_t seed, double *out)
{
    struct sg_source *s = sg_sim_new(seed, 100);
    assert_non_null(s);
    static const char *syms[] = {"AAPL", "ZZZ9", "^GSPC"};
    double t = 1000.0;
    for (int i = 0; i < 200; i++) {
        t += 0.1 + (i % 7) * 0.37;
        out[i] = ask(s, syms[i % 3], t);
    }
    sg_source_free(s);
}

static void test_reproducible_from_seed(void **state)
{
    (void)state;
    double a[200], b[200], c[200];
    series(42, a);
    series(42, b);
    series(43, c);
    assert_memory_equal(a, b, sizeof a);
    int differ = 0;
    for (int i = 0; i < 200; i++)
        differ += a[i] != c[i];
    assert_true(differ > 100); /* another seed, another walk (start prices aside) */
}

static void test_symbol_series_independent_of_others(void **state)
{
    (void)state;
    /* AAPL asked at the same times, once alone and once among others (and
     * in another order within a request): the same AAPL prices */
    struct sg_source *alone = sg_sim_new(7, 100), *mixed = sg_sim_new(7, 100);
    for (int i = 0; i < 100; i++) {
        double t = i * 0.9;
        struct sg_src_quote q[3];
        memset(q, 0, sizeof q);
        strcpy(q[0].sym, i % 2 ? "MSFT" : "XYZ");
        strcpy(q[1].sym, "AAPL");
        strcpy(q[2].sym, "GOOG");
        sg_source_quote(mixed, q, 3, t);
        assert_true(q[1].have);
        assert_true(ask(alone, "AAPL", t) == q[1].price);
    }
    sg_source_free(alone);
    sg_source_free(mixed);
}

static void test_start_prices(void **state)
{
    (void)state;
    struct sg_source *s = sg_sim_new(1, 100);
    /* the first answer is the start price: nothing has moved yet */
    assert_true(ask(s, "AAPL", 5.0) == 95.00);
    assert_true(ask(s, "MSFT", 5.0) == 50.00);
    assert_true(ask(s, "AMZN", 5.0) == 300.00);
    assert_true(ask(s, "GOOG", 5.0) == 550.00);
    assert_true(ask(s, "YHOO", 5.0) == 35.00);
    double p = ask(s, "QQQ", 5.0);
    assert_true(p == sg_quotes_start_price("QQQ"));
    assert_true(p >= 10.0 && p <= 499.99);
    /* and again within the first 0.5 s: still no move */
    assert_true(ask(s, "AAPL", 5.49) == 95.00);
    sg_source_free(s);
}

static void test_bounds_and_timing(void **state)
{
    (void)state;
    /* many seeds, one symbol, sampled every 10 ms of clock for 300 s:
     * every move is one of the walk's (checked on the move counter, since a
     * move may round to no change), the gaps between moves are 0.5-2.5 s,
     * the step within [-1.50, 1.50], every price positive in cents */
    static const char *syms[] = {"YHOO", "AAPL", "LOW1"};
    for (uint64_t seed = 1; seed <= 30; seed++) {
        struct sg_source *s = sg_sim_new(seed, 10);
        const char *sym = syms[seed % 3];
        double t0 = 100.0, last_move_t = t0, prev = ask(s, sym, t0);
        struct sg_quote_state st;
        assert_int_equal(sg_sim_peek(s, sym, &st), SG_OK);
        uint64_t moves = st.moves;
        assert_int_equal(moves, 0);
        assert_true(st.next_move >= t0 + 0.5 && st.next_move <= t0 + 2.5);
        double min_gap = 1e9, max_gap = 0;
        for (int i = 1; i <= 30000; i++) {
            double t = t0 + i * 0.01;
            double p = ask(s, sym, t);
            assert_true(p >= 0.01);
            assert_true(cents(p));
            assert_int_equal(sg_sim_peek(s, sym, &st), SG_OK);
            assert_true(st.moves - moves <= 1); /* at most one move per 10 ms here */
            if (st.moves != moves) {
                double gap = t - last_move_t;
                if (moves > 0) { /* the first gap is from the first request */
                    min_gap = gap < min_gap ? gap : min_gap;
                    max_gap = gap > max_gap ? gap : max_gap;
                }
                assert_true(fabs(p - prev) <= 1.5 + 1e-9);
                last_move_t = t;
                moves = st.moves;
            } else {
                assert_true(p == prev);
            }
            prev = p;
        }
        /* sampled on a 10 ms grid: a gap is within 10 ms of the true one */
        assert_true(min_gap >= 0.5 - 0.011);
        assert_true(max_gap <= 2.5 + 0.011);
        assert_true(moves >= 300 / 2.5 - 5 && moves <= 300 / 0.5 + 5);
        sg_source_free(s);
    }
}

static void test_moves_actually_spread(void **state)
{
    (void)state;
    /* the steps are not all tiny or all one sign: over 2000 moves both
     * directions occur and some step is over a dollar */
    struct sg_source *s = sg_sim_new(99, 10);
    double prev = ask(s, "GOOG", 0), big = 0;
    int up = 0, down = 0;
    for (int i = 1; i <= 2000; i++) {
        double p = ask(s, "GOOG", i * 2.6); /* at least one move each time */
        if (p > prev) up++;
        if (p < prev) down++;
        if (fabs(p - prev) > big) big = fabs(p - prev);
        prev = p;
    }
    assert_true(up > 300 && down > 300);
    assert_true(big > 1.0 && big <= 1.5 * 3 + 1e-9); /* up to 3 moves fit in 2.6 s */
    sg_source_free(s);
}

static void test_floor_and_catch_up(void **state)
{
    (void)state;
    /* YHOO starts at 35: over a long walk it may reach the floor; it never
     * goes below a cent. A gap of a day makes at most SG_SIM_CATCHUP_MAX
     * moves, then the walk goes on from now. */
    struct sg_source *s = sg_sim_new(5, 10);
    ask(s, "YHOO", 0);
    struct sg_quote_state st;
    ask(s, "YHOO", 86400.0);
    assert_int_equal(sg_sim_peek(s, "YHOO", &st), SG_OK);
    assert_int_equal(st.moves, SG_SIM_CATCHUP_MAX);
    assert_true(st.next_move > 86400.0 && st.next_move <= 86400.0 + 2.5);
    double t = 86400.0;
    for (int i = 0; i < 20000; i++) {
        t += 1.0;
        assert_true(ask(s, "YHOO", t) >= 0.01);
    }
    /* a clock that goes back (it never should) moves nothing */
    assert_int_equal(sg_sim_peek(s, "YHOO", &st), SG_OK);
    uint64_t m = st.moves;
    double p = ask(s, "YHOO", 10.0);
    assert_int_equal(sg_sim_peek(s, "YHOO", &st), SG_OK);
    assert_int_equal(st.moves, m);
    assert_true(p >= 0.01);
    sg_source_free(s);
}

static void test_bounded_table(void **state)
{
    (void)state;
    /* max 2 walks: a third symbol forgets the least recently asked one,
     * which starts over from its start price when it comes back */
    struct sg_source *s = sg_sim_new(3, 2);
    ask(s, "AAPL", 0);
    ask(s, "MSFT", 0);
    ask(s, "AAPL", 30.0); /* AAPL is the most recent */
    ask(s, "GOOG", 30.0); /* MSFT is the oldest */
    assert_int_equal(sg_sim_peek(s, "MSFT", NULL), SG_ENOKEY);
    assert_int_equal(sg_sim_peek(s, "AAPL", NULL), SG_OK);
    assert_true(ask(s, "MSFT", 31.0) == 50.00); /* starts over; AAPL goes */
    assert_int_equal(sg_sim_peek(s, "AAPL", NULL), SG_ENOKEY);
    char line[128];
    sg_source_describe(s, line, sizeof line);
    assert_string_equal(line, "quote table: 2 symbols, 2 evicted");
    assert_string_equal(s->name, "sim");
    sg_source_free(s);
    sg_source_free(NULL);
    assert_null(sg_sim_new(1, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reproducible_from_seed),
        cmocka_unit_test(test_symbol_series_independent_of_others),
        cmocka_unit_test(test_start_prices),
        cmocka_unit_test(test_bounds_and_timing),
        cmocka_unit_test(test_moves_actually_spread),
        cmocka_unit_test(test_floor_and_catch_up),
        cmocka_unit_test(test_bounded_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
