/* test_error.c - every value of enum sg_err (listed by hand from
 * include/error.h, like rabbitmq-c's test_status_enum) has its own
 * non-empty sg_strerror() text, sits in its documented range, no value is
 * -1, and unknown values give "unknown error". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "error.h"

enum range { R_OK, R_NOTERR, R_PROTO, R_LIMIT, R_CONFIG, R_IO, R_MEM };

struct err_case {
    enum sg_err value;
    const char *name;
    enum range range;
};

#define E(v, r)                                                                                    \
    {                                                                                              \
        v, #v, r                                                                                   \
    }

/* Keep in step with include/error.h: a value added there and not here is
 * what this list exists to catch in review. */
static const struct err_case all_errors[] = {
    E(SG_OK, R_OK),          E(SG_AGAIN, R_NOTERR),   E(SG_DONE, R_NOTERR),
    E(SG_EPROTO, R_PROTO),   E(SG_EHTTP, R_PROTO),    E(SG_EHANDSHAKE, R_PROTO),
    E(SG_EWSFRAME, R_PROTO), E(SG_EUTF8, R_PROTO),    E(SG_ESTOMP, R_PROTO),
    E(SG_ESTATE, R_PROTO),   E(SG_EVERSION, R_PROTO), E(SG_EDEST, R_PROTO),
    E(SG_EAUTH, R_PROTO),    E(SG_EESCAPE, R_PROTO),  E(SG_ENUL, R_PROTO),
    E(SG_ELIMIT, R_LIMIT),   E(SG_ETOOBIG, R_LIMIT),  E(SG_ETOOMANY, R_LIMIT),
    E(SG_ELINE, R_LIMIT),    E(SG_ETIMEOUT, R_LIMIT), E(SG_EBUSY, R_LIMIT),
    E(SG_ECONFIG, R_CONFIG), E(SG_ENOKEY, R_CONFIG),  E(SG_EIO, R_IO),
    E(SG_EBROKER, R_IO),     E(SG_ETLS, R_IO),        E(SG_ENOMEM, R_MEM),
};
#define N_ERRORS (sizeof all_errors / sizeof all_errors[0])

static void test_every_value_has_a_message(void **state)
{
    (void)state;
    assert_int_equal(N_ERRORS, 27);
    for (size_t i = 0; i < N_ERRORS; i++) {
        const char *s = sg_strerror(all_errors[i].value);
        if (!s || !*s || strcmp(s, "unknown error") == 0)
            fail_msg("%s (%d): sg_strerror gave \"%s\"", all_errors[i].name,
                     (int)all_errors[i].value, s ? s : "(null)");
    }
}

static void test_messages_are_distinct(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ERRORS; i++)
        for (size_t j = i + 1; j < N_ERRORS; j++)
            if (strcmp(sg_strerror(all_errors[i].value), sg_strerror(all_errors[j].value)) == 0)
                fail_msg("%s and %s share the text \"%s\"", all_errors[i].name, all_errors[j].name,
                         sg_strerror(all_errors[i].value));
}

static void test_values_are_distinct(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ERRORS; i++)
        for (size_t j = i + 1; j < N_ERRORS; j++)
            if (all_errors[i].value == all_errors[j].value)
                fail_msg("%s and %s have the same value %d", all_errors[i].name, all_errors[j].name,
                         (int)all_errors[i].value);
}

static void test_values_in_documented_ranges(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ERRORS; i++) {
        int v = (int)all_errors[i].value;
        int lo = 0, hi = 0;
        switch (all_errors[i].range) {
        case R_OK:
            lo = hi = 0;
            break;
        case R_NOTERR:
            lo = -99, hi = -2; /* -1 is no value: see below */
            break;
        case R_PROTO:
            lo = -199, hi = -100;
            break;
        case R_LIMIT:
            lo = -299, hi = -200;
            break;
        case R_CONFIG:
            lo = -399, hi = -300;
            break;
        case R_IO:
            lo = -499, hi = -400;
            break;
        case R_MEM:
            lo = -599, hi = -500;
            break;
        }
        if (v < lo || v > hi)
            fail_msg("%s = %d is outside [%d, %d]", all_errors[i].name, v, lo, hi);
    }
    /* the fixed points the header names */
    assert_int_equal(SG_OK, 0);
    assert_int_equal(SG_AGAIN, -11);
    assert_int_equal(SG_DONE, -12);
    assert_int_equal(SG_EPROTO, -100);
    assert_int_equal(SG_ELIMIT, -200);
    assert_int_equal(SG_ECONFIG, -300);
    assert_int_equal(SG_EIO, -400);
    assert_int_equal(SG_ENOMEM, -500);
}

/* -1 is what ad-hoc C code returns for "failed"; no sg_err may have that
 * value, so a stray -1 can never pass for "again" (or for anything else). */
static void test_minus_one_is_no_value(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ERRORS; i++)
        if ((int)all_errors[i].value == -1) fail_msg("%s is -1", all_errors[i].name);
    assert_string_equal(sg_strerror(-1), "unknown error");
    assert_true(SG_AGAIN < -1 && SG_AGAIN > -100);
}

static void test_unknown_values(void **state)
{
    (void)state;
    static const int unknown[] = {-9999,
                                  12345,
                                  1,
                                  -1,
                                  -2,
                                  -10,
                                  -13,
                                  -99,
                                  -112,
                                  -199,
                                  -206,
                                  -302,
                                  -403,
                                  -501,
                                  -600,
                                  100,
                                  -2147483647 - 1,
                                  2147483647};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *s = sg_strerror(unknown[i]);
        assert_non_null(s);
        if (strcmp(s, "unknown error") != 0)
            fail_msg("sg_strerror(%d) gave \"%s\", want \"unknown error\"", unknown[i], s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_value_has_a_message),
        cmocka_unit_test(test_messages_are_distinct),
        cmocka_unit_test(test_values_are_distinct),
        cmocka_unit_test(test_values_in_documented_ranges),
        cmocka_unit_test(test_minus_one_is_no_value),
        cmocka_unit_test(test_unknown_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
