/* test_quotes.c - stockd's quote table (daemon/quotes.c): lookup, the walk
 * (step, one-cent floor, whole cents, per-symbol start prices), the bound
 * and the eviction order (least recently requested first), and that a
 * table far bigger than its bound of requests keeps its memory bounded. */
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
#include "quotes.h"

static double next(struct sg_quotes *q, const char *sym, double step)
{
    struct sg_quote_result r;
    assert_int_equal(sg_quotes_next(q, sym, step, &r), SG_OK);
    return r.price;
}

static void test_walk_and_lookup(void **state)
{
    (void)state;
    struct sg_quotes *q = sg_quotes_new(100);
    assert_non_null(q);
    double p;
    assert_int_equal(sg_quotes_peek(q, "AAPL", &p), SG_ENOKEY);

    struct sg_quote_result r;
    assert_int_equal(sg_quotes_next(q, "AAPL", 1.004, &r), SG_OK);
    assert_true(r.created);
    assert_false(r.evicted);
    assert_string_equal(r.evicted_sym, "");
    assert_true(fabs(r.price - 96.00) < 1e-9); /* the book's 95.00 + 1.004, to cents */
    assert_int_equal(sg_quotes_next(q, "AAPL", -0.5, &r), SG_OK);
    assert_false(r.created);
    assert_true(fabs(r.price - 95.50) < 1e-9); /* it walks on from where it was */
    assert_int_equal(sg_quotes_peek(q, "AAPL", &p), SG_OK);
    assert_true(fabs(p - 95.50) < 1e-9);
    assert_int_equal(sg_quotes_peek(q, "AAPL", NULL), SG_OK);
    assert_int_equal(sg_quotes_peek(q, "aapl", NULL), SG_ENOKEY); /* exact */

    /* other symbols: a stable start price in [10.00, 499.99] */
    double s = sg_quotes_start_price("ZZZ9");
    assert_true(s >= 10.0 && s <= 499.99);
    assert_true(sg_quotes_start_price("ZZZ9") == s);
    assert_true(fabs(next(q, "ZZZ9", 0.0) - s) < 1e-9);
    assert_true(fabs(sg_quotes_start_price("GOOG") - 550.0) < 1e-9);

    /* the floor: never below one cent */
    assert_true(fabs(next(q, "MSFT", -1000.0) - 0.01) < 1e-9);
    assert_true(fabs(next(q, "MSFT", -1.5) - 0.01) < 1e-9);
    assert_true(fabs(next(q, "MSFT", 1.0) - 1.01) < 1e-9);
    assert_int_equal(sg_quotes_count(q), 3);
    assert_int_equal(sg_quotes_evictions(q), 0);
    assert_null(sg_quotes_lru(q)); /* not full */

    char longsym[32];
    memset(longsym, 'A', sizeof longsym - 1);
    longsym[SG_QUOTE_SYM_MAX + 1] = '\0';
    assert_int_equal(sg_quotes_next(q, longsym, 0.0, &r), SG_ETOOBIG);
    assert_int_equal(sg_quotes_peek(q, longsym, NULL), SG_ENOKEY);
    longsym[SG_QUOTE_SYM_MAX] = '\0'; /* exactly the maximum fits */
    assert_int_equal(sg_quotes_next(q, longsym, 0.0, &r), SG_OK);
    assert_int_equal(sg_quotes_count(q), 4);
    sg_quotes_free(q);
    sg_quotes_free(NULL);
    assert_null(sg_quotes_new(0));
}

static void test_eviction_order(void **state)
{
    (void)state;
    struct sg_quotes *q = sg_quotes_new(3);
    assert_non_null(q);
    next(q, "A", 0);
    next(q, "B", 0);
    next(q, "C", 0);
    assert_int_equal(sg_quotes_count(q), 3);
    assert_string_equal(sg_quotes_lru(q), "A");
    next(q, "A", 1.0); /* A is requested again: B is now the oldest */
    assert_string_equal(sg_quotes_lru(q), "B");
    assert_int_equal(sg_quotes_peek(q, "C", NULL), SG_OK); /* a peek is not a request */
    assert_string_equal(sg_quotes_lru(q), "B");

    struct sg_quote_result r;
    assert_int_equal(sg_quotes_next(q, "D", 0, &r), SG_OK);
    assert_true(r.created && r.evicted);
    assert_string_equal(r.evicted_sym, "B");
    assert_int_equal(sg_quotes_count(q), 3);
    assert_int_equal(sg_quotes_evictions(q), 1);
    assert_int_equal(sg_quotes_peek(q, "B", NULL), SG_ENOKEY);
    assert_int_equal(sg_quotes_peek(q, "A", NULL), SG_OK);
    assert_string_equal(sg_quotes_lru(q), "C");

    assert_int_equal(sg_quotes_next(q, "E", 0, &r), SG_OK);
    assert_string_equal(r.evicted_sym, "C");
    assert_int_equal(sg_quotes_next(q, "F", 0, &r), SG_OK);
    assert_string_equal(r.evicted_sym, "A");
    /* an evicted symbol comes back at its start price */
    double a_start = sg_quotes_start_price("A");
    assert_int_equal(sg_quotes_next(q, "A", 0, &r), SG_OK);
    assert_true(r.created && r.evicted);
    assert_string_equal(r.evicted_sym, "D");
    assert_true(fabs(r.price - round(a_start * 100) / 100) < 1e-9);
    assert_int_equal(sg_quotes_evictions(q), 4);
    sg_quotes_free(q);

    /* a table of one */
    q = sg_quotes_new(1);
    next(q, "X", 0);
    assert_int_equal(sg_quotes_next(q, "Y", 0, &r), SG_OK);
    assert_string_equal(r.evicted_sym, "X");
    assert_int_equal(sg_quotes_next(q, "Y", 0, &r), SG_OK);
    assert_false(r.evicted);
    assert_int_equal(sg_quotes_count(q), 1);
    sg_quotes_free(q);
}

/* Many more symbols than the bound: the count never passes it, every kept
 * symbol is among the last `max` requested, and lookups stay correct as
 * the buckets grow. */
static void test_bound_under_churn(void **state)
{
    (void)state;
    const size_t max = 1000;
    struct sg_quotes *q = sg_quotes_new(max);
    assert_non_null(q);
    char sym[16];
    for (int i = 0; i < 50000; i++) {
        snprintf(sym, sizeof sym, "S%d", i);
        struct sg_quote_result r;
        assert_int_equal(sg_quotes_next(q, sym, 0.01, &r), SG_OK);
        assert_true(r.created);
        assert_int_equal(r.evicted, i >= (int)max);
        if (r.evicted) {
            char want[16];
            snprintf(want, sizeof want, "S%d", i - (int)max);
            assert_string_equal(r.evicted_sym, want);
        }
        assert_true(sg_quotes_count(q) <= max);
    }
    assert_int_equal(sg_quotes_count(q), max);
    assert_int_equal(sg_quotes_evictions(q), 50000 - max);
    for (int i = 0; i < 50000; i++) {
        snprintf(sym, sizeof sym, "S%d", i);
        assert_int_equal(sg_quotes_peek(q, sym, NULL), i >= 50000 - (int)max ? SG_OK : SG_ENOKEY);
    }
    /* repeated requests of kept symbols evict nothing */
    for (int k = 0; k < 3; k++)
        for (int i = 50000 - (int)max; i < 50000; i++) {
            snprintf(sym, sizeof sym, "S%d", i);
            struct sg_quote_result r;
            assert_int_equal(sg_quotes_next(q, sym, 0.0, &r), SG_OK);
            assert_false(r.created || r.evicted);
        }
    assert_int_equal(sg_quotes_evictions(q), 50000 - max);
    sg_quotes_free(q);
}

/* The state a source keeps per symbol: fresh (start price, all else zero)
 * for a new or re-created symbol, kept as the caller left it otherwise,
 * and reset when the symbol was evicted and comes back. */
static void test_touch_state(void **state)
{
    (void)state;
    struct sg_quotes *q = sg_quotes_new(2);
    struct sg_quote_state *st, copy;
    struct sg_quote_result r;
    assert_int_equal(sg_quotes_peek_state(q, "AAPL", &copy), SG_ENOKEY);
    assert_int_equal(sg_quotes_touch(q, "AAPL", &st, &r), SG_OK);
    assert_true(r.created && !r.evicted);
    assert_true(st->price == 95.00 && r.price == 95.00);
    assert_true(st->next_move == 0 && st->rng == 0 && st->moves == 0 && st->stamp == 0);
    st->price = 101.5;
    st->rng = 77;
    st->moves = 3;
    st->next_move = 12.5;
    assert_int_equal(sg_quotes_touch(q, "AAPL", &st, &r), SG_OK);
    assert_false(r.created);
    assert_true(r.price == 101.5 && st->rng == 77 && st->moves == 3 && st->next_move == 12.5);
    assert_int_equal(sg_quotes_peek_state(q, "AAPL", &copy), SG_OK);
    assert_true(copy.price == 101.5 && copy.rng == 77);
    assert_int_equal(sg_quotes_peek_state(q, "AAPL", NULL), SG_OK);
    double p;
    assert_int_equal(sg_quotes_peek(q, "AAPL", &p), SG_OK);
    assert_true(p == 101.5);

    /* touch makes it the most recent: MSFT then GOOG evicts MSFT, not AAPL */
    assert_int_equal(sg_quotes_touch(q, "MSFT", &st, &r), SG_OK);
    assert_int_equal(sg_quotes_touch(q, "AAPL", &st, &r), SG_OK);
    assert_int_equal(sg_quotes_touch(q, "GOOG", &st, &r), SG_OK);
    assert_true(r.created && r.evicted);
    assert_string_equal(r.evicted_sym, "MSFT");
    /* the reused entry is fresh */
    assert_true(st->price == 550.00 && st->rng == 0 && st->moves == 0);
    assert_int_equal(sg_quotes_touch(q, "MSFT", &st, &r), SG_OK); /* AAPL goes now */
    assert_string_equal(r.evicted_sym, "AAPL");
    assert_int_equal(sg_quotes_touch(q, "AAPL", &st, &r), SG_OK);
    assert_true(st->price == 95.00 && st->rng == 0); /* starts over */

    char longsym[SG_QUOTE_SYM_MAX + 2];
    memset(longsym, 'B', sizeof longsym - 1);
    longsym[sizeof longsym - 1] = '\0';
    assert_int_equal(sg_quotes_touch(q, longsym, &st, &r), SG_ETOOBIG);
    assert_int_equal(sg_quotes_peek_state(q, longsym, &copy), SG_ENOKEY);
    sg_quotes_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_walk_and_lookup),
        cmocka_unit_test(test_eviction_order),
        cmocka_unit_test(test_bound_under_churn),
        cmocka_unit_test(test_touch_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
