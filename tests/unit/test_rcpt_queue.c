/* test_rcpt_queue.c - the RECEIPT ordering FIFO (rcpt_queue.h): receipts
 * leave in push order however their completions arrive, ordering points
 * (NULL receipt) hold later ones back and pop as NULL, entries done at push
 * wait behind pending ones, the bound (SG_ETOOMANY at max, nothing queued;
 * 0 = unbounded), push copies the receipt, pop on an empty queue or a
 * pending head is SG_AGAIN, and reset frees every entry (run under ASan by
 * `make asan` for the leak check). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "error.h"
#include "rcpt_queue.h"

/* Pops one entry and checks it: want NULL for an ordering point. */
static void pop_is(struct sg_rcpt_queue *q, const char *want)
{
    char *r = (char *)0x1;
    assert_int_equal(sg_rcpt_queue_pop(q, &r), SG_OK);
    if (want) {
        assert_non_null(r);
        assert_string_equal(r, want);
    } else {
        assert_null(r);
    }
    free(r);
}

static void pop_again(struct sg_rcpt_queue *q)
{
    char *r = (char *)0x1;
    assert_int_equal(sg_rcpt_queue_pop(q, &r), SG_AGAIN);
    assert_null(r);
}

static struct sg_rcpt *push(struct sg_rcpt_queue *q, const char *receipt, int done)
{
    struct sg_rcpt *e = NULL;
    assert_int_equal(sg_rcpt_queue_push(q, receipt, done, &e), SG_OK);
    assert_non_null(e);
    return e;
}

static void test_empty(void **state)
{
    (void)state;
    struct sg_rcpt_queue q;
    sg_rcpt_queue_init(&q, 4);
    assert_true(sg_rcpt_queue_is_empty(&q));
    assert_int_equal(q.n, 0);
    pop_again(&q);
    pop_again(&q);
    sg_rcpt_queue_done(&q, NULL); /* no-op */
    assert_true(sg_rcpt_queue_is_empty(&q));
    sg_rcpt_queue_reset(&q);
    assert_true(sg_rcpt_queue_is_empty(&q));
}

static void test_push_done_pop_order(void **state)
{
    (void)state;
    struct sg_rcpt_queue q;
    sg_rcpt_queue_init(&q, 0);
    struct sg_rcpt *a = push(&q, "r1", 0), *b = push(&q, "r2", 0), *c = push(&q, "r3", 0);
    assert_false(sg_rcpt_queue_is_empty(&q));
    assert_int_equal(q.n, 3);
    assert_string_equal(a->receipt, "r1");
    assert_int_equal(a->done, 0);
    /* completions out of order: nothing leaves before the head is done */
    sg_rcpt_queue_done(&q, c);
    pop_again(&q);
    sg_rcpt_queue_done(&q, b);
    pop_again(&q);
    assert_int_equal(q.n, 3);
    sg_rcpt_queue_done(&q, a);
    pop_is(&q, "r1");
    pop_is(&q, "r2");
    pop_is(&q, "r3");
    pop_again(&q);
    assert_true(sg_rcpt_queue_is_empty(&q));
    assert_int_equal(q.n, 0);

    /* completions in order: each may leave at once */
    a = push(&q, "s1", 0);
    b = push(&q, "s2", 0);
    sg_rcpt_queue_done(&q, a);
    pop_is(&q, "s1");
    pop_again(&q);
    sg_rcpt_queue_done(&q, b);
    sg_rcpt_queue_done(&q, b); /* twice: harmless */
    pop_is(&q, "s2");
    pop_again(&q);
    sg_rcpt_queue_reset(&q);
}

static void test_ordering_point(void **state)
{
    (void)state;
    struct sg_rcpt_queue q;
    sg_rcpt_queue_init(&q, 0);
    /* a SUBSCRIBE without receipt still holds back a later RECEIPT */
    struct sg_rcpt *o = push(&q, NULL, 0);
    assert_null(o->receipt);
    push(&q, "after", 1);
    pop_again(&q);
    sg_rcpt_queue_done(&q, o);
    pop_is(&q, NULL); /* nothing to send for it */
    pop_is(&q, "after");
    pop_again(&q);

    /* ordering points between receipts, already done at push */
    push(&q, NULL, 1);
    push(&q, "x", 1);
    push(&q, NULL, 1);
    assert_int_equal(q.n, 3);
    pop_is(&q, NULL);
    pop_is(&q, "x");
    pop_is(&q, NULL);
    pop_again(&q);
    sg_rcpt_queue_reset(&q);
}

static void test_done_at_push_behind_pending(void **state)
{
    (void)state;
    struct sg_rcpt_queue q;
    sg_rcpt_queue_init(&q, 0);
    /* on an empty queue a done entry is ready at once */
    push(&q, "now", 1);
    pop_is(&q, "now");
    pop_again(&q);
    /* behind a pending one it waits: an UNSUBSCRIBE's RECEIPT after a
     * SEND still waiting for its confirm */
    struct sg_rcpt *p = push(&q, "send", 0);
    push(&q, "unsub", 1);
    push(&q, "ack", 1);
    pop_again(&q);
    pop_again(&q);
    assert_int_equal(q.n, 3);
    struct sg_rcpt *p2 = push(&q, "send2", 0);
    push(&q, "last", 1);
    sg_rcpt_queue_done(&q, p);
    pop_is(&q, "send");
    pop_is(&q, "unsub");
    pop_is(&q, "ack");
    pop_again(&q); /* send2 still pending, and "last" behind it */
    assert_int_equal(q.n, 2);
    sg_rcpt_queue_done(&q, p2);
    pop_is(&q, "send2");
    pop_is(&q, "last");
    pop_again(&q);
    sg_rcpt_queue_reset(&q);
}

static void test_receipt_copied(void **state)
{
    (void)state;
    struct sg_rcpt_queue q;
    sg_rcpt_queue_init(&q, 0);
    char src[16];
    snprintf(src, sizeof src, "orig");
    struct sg_rcpt *e = push(&q, src, 0);
    assert_ptr_not_equal(e->receipt, src);
    snprintf(src, sizeof src, "changed");
    sg_rcpt_queue_done(&q, e);
    pop_is(&q, "orig");
    /* an empty receipt is a receipt, not an ordering point */
    push(&q, "", 1);
    pop_is(&q, "");
    sg_rcpt_queue_reset(&q);
}

static void test_bound(void **state)
{
    (void)state;
    struct sg_rcpt_queue q;
    sg_rcpt_queue_init(&q, 3);
    assert_int_equal(q.max, 3);
    struct sg_rcpt *a = push(&q, "a", 0);
    push(&q, NULL, 0);
    push(&q, "c", 1);
    assert_int_equal(q.n, 3);
    /* at max: refused, nothing queued, *out cleared */
    struct sg_rcpt *e = (struct sg_rcpt *)0x1;
    assert_int_equal(sg_rcpt_queue_push(&q, "d", 0, &e), SG_ETOOMANY);
    assert_null(e);
    assert_int_equal(sg_rcpt_queue_push(&q, "d", 1, NULL), SG_ETOOMANY);
    assert_int_equal(sg_rcpt_queue_push(&q, NULL, 1, NULL), SG_ETOOMANY);
    assert_int_equal(q.n, 3);
    /* done entries still count until popped */
    sg_rcpt_queue_done(&q, a);
    assert_int_equal(sg_rcpt_queue_push(&q, "d", 0, NULL), SG_ETOOMANY);
    pop_is(&q, "a");
    assert_int_equal(q.n, 2);
    /* room again: exactly one more */
    assert_int_equal(sg_rcpt_queue_push(&q, "d", 1, NULL), SG_OK);
    assert_int_equal(sg_rcpt_queue_push(&q, "e", 1, NULL), SG_ETOOMANY);
    assert_int_equal(q.n, 3);
    sg_rcpt_queue_reset(&q);
    assert_int_equal(q.n, 0);
    /* the bound survives a reset */
    for (int i = 0; i < 3; i++)
        assert_int_equal(sg_rcpt_queue_push(&q, "x", 0, NULL), SG_OK);
    assert_int_equal(sg_rcpt_queue_push(&q, "x", 0, NULL), SG_ETOOMANY);
    sg_rcpt_queue_reset(&q);

    /* max 1 */
    sg_rcpt_queue_init(&q, 1);
    push(&q, "only", 1);
    assert_int_equal(sg_rcpt_queue_push(&q, "no", 1, NULL), SG_ETOOMANY);
    pop_is(&q, "only");
    sg_rcpt_queue_reset(&q);
}

static void test_unbounded(void **state)
{
    (void)state;
    struct sg_rcpt_queue q;
    sg_rcpt_queue_init(&q, 0);
    enum { N = 20000 };
    static struct sg_rcpt *e[N];
    for (int i = 0; i < N; i++) {
        char r[16];
        snprintf(r, sizeof r, "r%d", i);
        e[i] = push(&q, i % 7 == 0 ? NULL : r, 0);
    }
    assert_int_equal(q.n, N);
    /* complete from the back: nothing leaves until the first one is done */
    for (int i = N - 1; i > 0; i--)
        sg_rcpt_queue_done(&q, e[i]);
    pop_again(&q);
    sg_rcpt_queue_done(&q, e[0]);
    for (int i = 0; i < N; i++) {
        char r[16];
        snprintf(r, sizeof r, "r%d", i);
        pop_is(&q, i % 7 == 0 ? NULL : r);
    }
    pop_again(&q);
    assert_true(sg_rcpt_queue_is_empty(&q));
    sg_rcpt_queue_reset(&q);
}

static void test_reset_frees_everything(void **state)
{
    (void)state;
    struct sg_rcpt_queue q;
    sg_rcpt_queue_init(&q, 0);
    /* pending, done, ordering points and a long receipt: ASan reports any
     * entry or receipt that reset does not free */
    char big[4096];
    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = 0;
    push(&q, "p1", 0);
    push(&q, NULL, 0);
    push(&q, "d1", 1);
    push(&q, big, 0);
    push(&q, NULL, 1);
    sg_rcpt_queue_reset(&q);
    assert_true(sg_rcpt_queue_is_empty(&q));
    assert_int_equal(q.n, 0);
    pop_again(&q);
    /* usable again after a reset, and a second reset is harmless */
    push(&q, "again", 1);
    pop_is(&q, "again");
    push(&q, "left", 0);
    sg_rcpt_queue_reset(&q);
    sg_rcpt_queue_reset(&q);
    assert_true(sg_rcpt_queue_is_empty(&q));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),          cmocka_unit_test(test_push_done_pop_order),
        cmocka_unit_test(test_ordering_point), cmocka_unit_test(test_done_at_push_behind_pending),
        cmocka_unit_test(test_receipt_copied), cmocka_unit_test(test_bound),
        cmocka_unit_test(test_unbounded),      cmocka_unit_test(test_reset_frees_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
