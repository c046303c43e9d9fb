/* test_buf.c - struct sg_buf: init/append/append_str/printf/reserve/
 * consume/clear/reset, growth that keeps the bytes, and the hard bound
 * (over max is SG_ETOOBIG with the buffer untouched; max 0 is unbounded;
 * exactly max fits, for every way of appending). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"
#include "error.h"

static void assert_contents(const struct sg_buf *b, const char *want)
{
    size_t n = strlen(want);
    assert_int_equal(b->len, n);
    if (n) {
        assert_non_null(b->data);
        assert_memory_equal(b->data, want, n);
    }
    assert_true(b->len <= b->cap || (b->len == 0 && b->cap == 0));
}

static void test_init(void **state)
{
    (void)state;
    struct sg_buf b;
    memset(&b, 0xa5, sizeof b);
    sg_buf_init(&b, 77);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.max, 77);
    sg_buf_init(&b, 0);
    assert_int_equal(b.max, 0);
    sg_buf_reset(&b); /* nothing allocated: still fine */
    assert_null(b.data);
}

static void test_append_and_append_str(void **state)
{
    (void)state;
    struct sg_buf b;
    sg_buf_init(&b, 0);
    assert_int_equal(sg_buf_append(&b, "abc", 3), SG_OK);
    assert_contents(&b, "abc");
    assert_int_equal(sg_buf_append(&b, NULL, 0), SG_OK);
    assert_contents(&b, "abc");
    assert_int_equal(sg_buf_append_str(&b, "def"), SG_OK);
    assert_contents(&b, "abcdef");
    assert_int_equal(sg_buf_append_str(&b, ""), SG_OK);
    assert_contents(&b, "abcdef");
    /* binary data, NULs included */
    static const uint8_t bin[] = {0, 1, 0, 255};
    assert_int_equal(sg_buf_append(&b, bin, sizeof bin), SG_OK);
    assert_int_equal(b.len, 10);
    assert_memory_equal(b.data + 6, bin, sizeof bin);
    sg_buf_reset(&b);
}

static void test_growth_keeps_content(void **state)
{
    (void)state;
    struct sg_buf b;
    sg_buf_init(&b, 0);
    uint8_t chunk[7];
    size_t total = 0;
    size_t caps_seen = 0, last_cap = 0;
    while (total < 20000) {
        for (size_t i = 0; i < sizeof chunk; i++)
            chunk[i] = (uint8_t)((total + i) * 31u);
        assert_int_equal(sg_buf_append(&b, chunk, sizeof chunk), SG_OK);
        total += sizeof chunk;
        assert_int_equal(b.len, total);
        assert_true(b.cap >= b.len);
        if (b.cap != last_cap) {
            caps_seen++;
            last_cap = b.cap;
        }
    }
    assert_true(caps_seen >= 3); /* it really did grow (reallocate) several times */
    for (size_t i = 0; i < total; i++)
        if (b.data[i] != (uint8_t)(i * 31u))
            fail_msg("byte %zu is %u after growth, want %u", i, b.data[i], (uint8_t)(i * 31u));
    sg_buf_reset(&b);
}

static void test_printf(void **state)
{
    (void)state;
    struct sg_buf b;
    sg_buf_init(&b, 0);
    assert_int_equal(sg_buf_printf(&b, "%s=%d", "x", 42), SG_OK);
    assert_contents(&b, "x=42");
    assert_int_equal(sg_buf_printf(&b, ";%05.1f|%c", 2.25, 'z'), SG_OK);
    assert_contents(&b, "x=42;002.2|z");
    assert_int_equal(sg_buf_printf(&b, "%s", ""), SG_OK);
    assert_contents(&b, "x=42;002.2|z");
    /* an output bigger than the first allocation grows the buffer */
    assert_int_equal(sg_buf_printf(&b, "%0*d", 1000, 7), SG_OK);
    assert_int_equal(b.len, 12 + 1000);
    assert_memory_equal(b.data, "x=42;002.2|z000", 15);
    assert_int_equal(b.data[b.len - 1], '7');
    for (size_t i = 12; i < b.len - 1; i++)
        assert_int_equal(b.data[i], '0');
    sg_buf_reset(&b);
}

static void test_reserve(void **state)
{
    (void)state;
    struct sg_buf b;
    sg_buf_init(&b, 0);
    assert_int_equal(sg_buf_reserve(&b, 1000), SG_OK);
    assert_int_equal(b.len, 0);
    assert_true(b.cap >= 1000);
    uint8_t *data = b.data;
    size_t cap = b.cap;
    char block[1000];
    memset(block, 'q', sizeof block);
    /* room was reserved: appending it does not move the data */
    assert_int_equal(sg_buf_append(&b, block, sizeof block), SG_OK);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    assert_int_equal(b.len, 1000);
    /* reserve is relative to len */
    assert_int_equal(sg_buf_reserve(&b, 500), SG_OK);
    assert_true(b.cap >= 1500);
    assert_int_equal(b.len, 1000);
    assert_memory_equal(b.data, block, sizeof block);
    /* len + n overflowing size_t is "too big", not a wrapped small request */
    assert_int_equal(sg_buf_reserve(&b, SIZE_MAX), SG_ETOOBIG);
    assert_int_equal(sg_buf_reserve(&b, SIZE_MAX - b.len + 1), SG_ETOOBIG);
    assert_int_equal(sg_buf_append(&b, block, SIZE_MAX), SG_ETOOBIG);
    assert_int_equal(b.len, 1000);
    sg_buf_reset(&b);
}

/* The bound, table-driven: a buffer with `max`, pre-filled with `pre`,
 * then one operation adding `n` bytes. Over max -> SG_ETOOBIG and nothing
 * changed (data, len, cap); at or under max -> SG_OK. */
enum op { OP_APPEND, OP_APPEND_STR, OP_PRINTF, OP_RESERVE };
static const char *const op_names[] = {"append", "append_str", "printf", "reserve"};

struct bound_case {
    size_t max;
    const char *pre;
    enum op op;
    size_t n;
    int want;
};

static const struct bound_case bound_cases[] = {
    /* exactly at the bound fits, for every operation */
    {10, "", OP_APPEND, 10, SG_OK},
    {10, "", OP_APPEND_STR, 10, SG_OK},
    {10, "", OP_PRINTF, 10, SG_OK},
    {10, "", OP_RESERVE, 10, SG_OK},
    {10, "abc", OP_APPEND, 7, SG_OK},
    {10, "abc", OP_APPEND_STR, 7, SG_OK},
    {10, "abc", OP_PRINTF, 7, SG_OK},
    {10, "abc", OP_RESERVE, 7, SG_OK},
    {1, "", OP_PRINTF, 1, SG_OK},
    {300, "", OP_PRINTF, 300, SG_OK},
    /* one under */
    {10, "abc", OP_APPEND, 6, SG_OK},
    {10, "abc", OP_PRINTF, 6, SG_OK},
    /* one over */
    {10, "", OP_APPEND, 11, SG_ETOOBIG},
    {10, "", OP_APPEND_STR, 11, SG_ETOOBIG},
    {10, "", OP_PRINTF, 11, SG_ETOOBIG},
    {10, "", OP_RESERVE, 11, SG_ETOOBIG},
    {10, "abc", OP_APPEND, 8, SG_ETOOBIG},
    {10, "abc", OP_APPEND_STR, 8, SG_ETOOBIG},
    {10, "abc", OP_PRINTF, 8, SG_ETOOBIG},
    {10, "abc", OP_RESERVE, 8, SG_ETOOBIG},
    {10, "0123456789", OP_APPEND, 1, SG_ETOOBIG},
    {10, "0123456789", OP_PRINTF, 1, SG_ETOOBIG},
    {300, "", OP_PRINTF, 301, SG_ETOOBIG},
    /* far over */
    {10, "abc", OP_APPEND, 5000, SG_ETOOBIG},
    {10, "abc", OP_PRINTF, 5000, SG_ETOOBIG},
    /* full buffer: adding nothing is fine */
    {10, "0123456789", OP_APPEND, 0, SG_OK},
    {10, "0123456789", OP_PRINTF, 0, SG_OK},
    /* max 0 = unbounded */
    {0, "abc", OP_APPEND, 100000, SG_OK},
    {0, "abc", OP_APPEND_STR, 100000, SG_OK},
    {0, "abc", OP_PRINTF, 100000, SG_OK},
    {0, "abc", OP_RESERVE, 100000, SG_OK},
};

/* Runs the bound cases for printf (printf = 1) or for the other operations;
 * printf has its own test because it alone must leave room for vsnprintf's
 * terminating NUL without counting it against max. */
static void run_bound_cases(int printf_cases)
{
    int failures = 0;
    for (size_t i = 0; i < sizeof bound_cases / sizeof bound_cases[0]; i++) {
        const struct bound_case *c = &bound_cases[i];
        if ((c->op == OP_PRINTF) != printf_cases) continue;
        struct sg_buf b;
        sg_buf_init(&b, c->max);
        assert_int_equal(sg_buf_append_str(&b, c->pre), SG_OK);
        size_t pre = strlen(c->pre);
        char *add = malloc(c->n + 1);
        assert_non_null(add);
        for (size_t k = 0; k < c->n; k++)
            add[k] = (char)('a' + k % 26);
        add[c->n] = 0;
        uint8_t *data0 = b.data;
        size_t cap0 = b.cap;
        int rc = 0;
        switch (c->op) {
        case OP_APPEND:
            rc = sg_buf_append(&b, add, c->n);
            break;
        case OP_APPEND_STR:
            rc = sg_buf_append_str(&b, add);
            break;
        case OP_PRINTF:
            rc = sg_buf_printf(&b, "%s", add);
            break;
        case OP_RESERVE:
            rc = sg_buf_reserve(&b, c->n);
            break;
        }
        if (rc != c->want) {
            print_error("case %zu: max %zu, len %zu, %s of %zu bytes: got %d (%s), want %d (%s)\n",
                        i, c->max, pre, op_names[c->op], c->n, rc, sg_strerror(rc), c->want,
                        sg_strerror(c->want));
            failures++;
        } else if (rc != SG_OK) {
            /* refused: nothing changed */
            assert_int_equal(b.len, pre);
            assert_ptr_equal(b.data, data0);
            assert_int_equal(b.cap, cap0);
            if (pre) assert_memory_equal(b.data, c->pre, pre);
        } else {
            size_t want_len = pre + (c->op == OP_RESERVE ? 0 : c->n);
            assert_int_equal(b.len, want_len);
            if (pre) assert_memory_equal(b.data, c->pre, pre);
            if (c->op != OP_RESERVE && c->n) assert_memory_equal(b.data + pre, add, c->n);
            if (c->op == OP_RESERVE) assert_true(b.cap >= pre + c->n);
        }
        /* never allocates past the bound (one spare byte allowed for a NUL) */
        if (c->max) assert_true(b.cap <= c->max + 1);
        free(add);
        sg_buf_reset(&b);
    }
    if (failures) fail_msg("%d bound case(s) failed (see above)", failures);
}

static void test_bound_append_reserve(void **state)
{
    (void)state;
    run_bound_cases(0);
}

static void test_bound_printf(void **state)
{
    (void)state;
    run_bound_cases(1);
}

/* Filling a bounded buffer chunk by chunk ends exactly at max, and the
 * refused chunk leaves what was there. */
static void test_bound_fill_up(void **state)
{
    (void)state;
    struct sg_buf b;
    sg_buf_init(&b, 1000);
    size_t ok = 0;
    int rc;
    while ((rc = sg_buf_append(&b, "0123456789abcdefghijklmnopqrstuvwxyz", 36)) == SG_OK)
        ok++;
    assert_int_equal(rc, SG_ETOOBIG);
    assert_int_equal(ok, 1000 / 36);
    assert_int_equal(b.len, ok * 36);
    char tail[36];
    memset(tail, 'T', sizeof tail);
    size_t rest = 1000 - b.len; /* 28 */
    assert_int_equal(sg_buf_append(&b, tail, rest), SG_OK);
    assert_int_equal(b.len, 1000);
    assert_int_equal(sg_buf_append(&b, "x", 1), SG_ETOOBIG);
    assert_int_equal(b.len, 1000);
    assert_true(b.cap <= 1000 + 1);
    assert_memory_equal(b.data, "0123456789abcdefghijklmnopqrstuvwxyz", 36);
    assert_memory_equal(b.data + ok * 36, tail, rest);
    /* consuming makes room again under the same bound */
    sg_buf_consume(&b, 36);
    assert_int_equal(sg_buf_append(&b, "0123456789abcdefghijklmnopqrstuvwxyz", 36), SG_OK);
    assert_int_equal(b.len, 1000);
    assert_int_equal(sg_buf_append(&b, "x", 1), SG_ETOOBIG);
    sg_buf_reset(&b);
}

struct consume_case {
    const char *pre;
    size_t n;
    const char *want;
};

static const struct consume_case consume_cases[] = {
    {"abcdef", 0, "abcdef"}, {"abcdef", 1, "bcdef"},   {"abcdef", 5, "f"}, {"abcdef", 6, ""},
    {"abcdef", 7, ""},       {"abcdef", SIZE_MAX, ""}, {"", 0, ""},        {"", 3, ""},
};

static void test_consume(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof consume_cases / sizeof consume_cases[0]; i++) {
        const struct consume_case *c = &consume_cases[i];
        struct sg_buf b;
        sg_buf_init(&b, 0);
        assert_int_equal(sg_buf_append_str(&b, c->pre), SG_OK);
        sg_buf_consume(&b, c->n);
        if (b.len != strlen(c->want) || (b.len && memcmp(b.data, c->want, b.len) != 0))
            fail_msg("consume(\"%s\", %zu): got \"%.*s\", want \"%s\"", c->pre, c->n, (int)b.len,
                     b.data ? (const char *)b.data : "", c->want);
        /* still usable afterwards, appending after what remains */
        assert_int_equal(sg_buf_append_str(&b, "XY"), SG_OK);
        assert_int_equal(b.len, strlen(c->want) + 2);
        assert_memory_equal(b.data + strlen(c->want), "XY", 2);
        sg_buf_reset(&b);
    }
    /* an empty, never-allocated buffer */
    struct sg_buf e;
    sg_buf_init(&e, 0);
    sg_buf_consume(&e, 0);
    sg_buf_consume(&e, 10);
    assert_int_equal(e.len, 0);
    assert_null(e.data);
}

static void test_clear(void **state)
{
    (void)state;
    struct sg_buf b;
    sg_buf_init(&b, 64);
    assert_int_equal(sg_buf_append_str(&b, "hello"), SG_OK);
    uint8_t *data = b.data;
    size_t cap = b.cap;
    sg_buf_clear(&b);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.data, data); /* keeps its memory */
    assert_int_equal(b.cap, cap);
    assert_int_equal(b.max, 64);
    assert_int_equal(sg_buf_append_str(&b, "world"), SG_OK);
    assert_contents(&b, "world");
    /* the bound counts from the cleared length */
    char big[64];
    memset(big, 'z', sizeof big);
    sg_buf_clear(&b);
    assert_int_equal(sg_buf_append(&b, big, sizeof big), SG_OK);
    assert_int_equal(b.len, 64);
    sg_buf_reset(&b);
}

static void test_reset_and_reuse(void **state)
{
    (void)state;
    struct sg_buf b;
    sg_buf_init(&b, 100);
    assert_int_equal(sg_buf_printf(&b, "%d", 12345), SG_OK);
    sg_buf_reset(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    sg_buf_reset(&b); /* twice is fine */
    assert_null(b.data);

    /* reuse after init, with a different bound */
    sg_buf_init(&b, 8);
    assert_int_equal(sg_buf_append_str(&b, "abcdefgh"), SG_OK);
    assert_contents(&b, "abcdefgh");
    assert_int_equal(sg_buf_append_str(&b, "i"), SG_ETOOBIG);
    assert_contents(&b, "abcdefgh");
    sg_buf_reset(&b);

    sg_buf_init(&b, 0);
    assert_int_equal(sg_buf_append_str(&b, "again"), SG_OK);
    assert_contents(&b, "again");
    sg_buf_reset(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_append_and_append_str),
        cmocka_unit_test(test_growth_keeps_content),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_reserve),
        cmocka_unit_test(test_bound_append_reserve),
        cmocka_unit_test(test_bound_printf),
        cmocka_unit_test(test_bound_fill_up),
        cmocka_unit_test(test_consume),
        cmocka_unit_test(test_clear),
        cmocka_unit_test(test_reset_and_reuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
