/* test_stockd_work.c - stockd's wire contract (daemon/work.c): work
 * parsing (dedupe, order, extra members), every way a work message is
 * refused (with its code and reason), the symbol grammar, and the result
 * encoding byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "error.h"
#include "work.h"

#define MAXMSG 4096
#define MAXSYM 5

static int parse(const char *body, struct sg_work *w, char *why)
{
    return sg_work_parse(body, strlen(body), MAXMSG, MAXSYM, w, why, 256);
}

static void test_parse_dedupes_in_order(void **state)
{
    (void)state;
    struct sg_work w;
    char why[256];
    assert_int_equal(parse("{\"stocks\":[\"AAPL\",\"MSFT\",\"AAPL\",\"GOOG\",\"MSFT\"]}", &w, why),
                     SG_OK);
    assert_int_equal(w.n, 3);
    assert_int_equal(w.entries, 5);
    assert_string_equal(w.q[0].sym, "AAPL");
    assert_string_equal(w.q[1].sym, "MSFT");
    assert_string_equal(w.q[2].sym, "GOOG");
    for (size_t i = 0; i < w.n; i++)
        assert_int_equal(w.q[i].have, 0);
    sg_work_free(&w);
    assert_null(w.q);
    assert_int_equal(w.n, 0);
    sg_work_free(NULL);

    /* extra members are ignored; whitespace is JSON's business */
    assert_int_equal(parse(" { \"v\" : 2, \"stocks\" : [ \"BRK.B\", \"^GSPC\", \"BF-B\" ],"
                           " \"from\":\"bridge-1\" } ",
                           &w, why),
                     SG_OK);
    assert_int_equal(w.n, 3);
    assert_string_equal(w.q[0].sym, "BRK.B");
    assert_string_equal(w.q[1].sym, "^GSPC");
    assert_string_equal(w.q[2].sym, "BF-B");
    sg_work_free(&w);

    /* the book's server: every client's list, duplicates included; the
     * entry bound counts entries, so only within max_symbols */
    assert_int_equal(parse("{\"stocks\":[\"A\",\"A\",\"A\",\"A\",\"A\"]}", &w, why), SG_OK);
    assert_int_equal(w.n, 1);
    assert_int_equal(w.entries, 5);
    sg_work_free(&w);
}

static void test_parse_many_unique(void **state)
{
    (void)state;
    /* dedupe over a bigger set: every one of 500 symbols, each twice */
    char *body = malloc(500 * 2 * 16 + 32);
    assert_non_null(body);
    size_t n = (size_t)sprintf(body, "{\"stocks\":[");
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < 500; i++)
            n += (size_t)sprintf(body + n, "%s\"S%d\"", (r || i) ? "," : "", i);
    n += (size_t)sprintf(body + n, "]}");
    struct sg_work w;
    char why[256];
    assert_int_equal(sg_work_parse(body, n, 1 << 20, 1000, &w, why, sizeof why), SG_OK);
    assert_int_equal(w.n, 500);
    assert_int_equal(w.entries, 1000);
    for (int i = 0; i < 500; i++) {
        char s[16];
        sprintf(s, "S%d", i);
        assert_string_equal(w.q[i].sym, s);
    }
    sg_work_free(&w);
    free(body);
}

struct bad_case {
    const char *body;
    int rc;
    const char *why; /* a substring of the reason */
};

static const struct bad_case bad_cases[] = {
    {"", SG_EPROTO, "not JSON"},
    {"{\"stocks\":[\"AAPL\"]", SG_EPROTO, "not JSON"},
    {"{\"stocks\":[\"AAPL\"]} x", SG_EPROTO, "not JSON"},
    {"{'stocks':['AAPL']}", SG_EPROTO, "not JSON"},
    {"{\"stocks\":[\"AAPL\"],\"stocks\":[\"MSFT\"]}", SG_EPROTO, "not JSON"}, /* duplicate key */
    {"[\"AAPL\"]", SG_EPROTO, "not a JSON object but an array"},
    {"\"AAPL\"", SG_EPROTO, "not JSON"}, /* jansson wants an object or array at the top */
    {"{}", SG_EPROTO, "no \"stocks\" member"},
    {"{\"symbols\":[\"AAPL\"]}", SG_EPROTO, "no \"stocks\" member"},
    {"{\"stocks\":\"AAPL\"}", SG_EPROTO, "\"stocks\" is a string, not an array"},
    {"{\"stocks\":{\"0\":\"AAPL\"}}", SG_EPROTO, "\"stocks\" is an object, not an array"},
    {"{\"stocks\":null}", SG_EPROTO, "\"stocks\" is null, not an array"},
    {"{\"stocks\":[]}", SG_EPROTO, "empty \"stocks\" list"},
    {"{\"stocks\":[\"AAPL\",42]}", SG_EPROTO, "stocks[1] is a number, not a string"},
    {"{\"stocks\":[[\"AAPL\"]]}", SG_EPROTO, "stocks[0] is an array, not a string"},
    {"{\"stocks\":[null]}", SG_EPROTO, "stocks[0] is null, not a string"},
    {"{\"stocks\":[true]}", SG_EPROTO, "stocks[0] is a boolean, not a string"},
    {"{\"stocks\":[\"\"]}", SG_EPROTO, "stocks[0] \"\" is not a symbol"},
    {"{\"stocks\":[\"aapl\"]}", SG_EPROTO, "stocks[0] \"aapl\" is not a symbol"},
    {"{\"stocks\":[\"AAPL\",\"MS FT\"]}", SG_EPROTO, "stocks[1] \"MS FT\" is not a symbol"},
    {"{\"stocks\":[\"ABCDEFGHIJKLM\"]}", SG_EPROTO, "\"ABCDEFGHIJKLM\" is not a symbol"},
    {"{\"stocks\":[\"A/B\"]}", SG_EPROTO, "is not a symbol"},
    {"{\"stocks\":[\"A\\\"B\"]}", SG_EPROTO, "\"A?B\" is not a symbol"},       /* escaped */
    {"{\"stocks\":[\"A\\nB\"]}", SG_EPROTO, "\"A?B\" is not a symbol"},        /* no newline */
    {"{\"stocks\":[\"\\u00c4PPL\"]}", SG_EPROTO, "\"??PPL\" is not a symbol"}, /* UTF-8 */
    {"{\"stocks\":[\"\\u0000\"]}", SG_EPROTO, "not JSON"},                     /* NUL refused */
    {"{\":\\\n;2i\n:{\"ts[\n", SG_EPROTO, "not JSON"}, /* jansson quotes the newline */
    {"{\"stocks\":[\"A\"]}\n\x01garbage", SG_EPROTO, "not JSON"},
    {"{\"stocks\":[\"A\",\"B\",\"C\",\"D\",\"E\",\"F\"]}", SG_ETOOMANY,
     "too many symbols (6 > max_symbols 5)"},
    {"{\"stocks\":[\"A\",\"A\",\"A\",\"A\",\"A\",\"A\"]}", SG_ETOOMANY, "too many symbols"},
};

static void test_parse_refuses(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        struct sg_work w;
        char why[256];
        memset(&w, 0x5a, sizeof w);
        int rc = parse(bad_cases[i].body, &w, why);
        if (rc != bad_cases[i].rc || !strstr(why, bad_cases[i].why))
            fail_msg("case %zu %s: rc %d why \"%s\", want %d \"%s\"", i, bad_cases[i].body, rc, why,
                     bad_cases[i].rc, bad_cases[i].why);
        assert_null(w.q); /* nothing to free */
        assert_int_equal(w.n, 0);
        for (const char *c = why; *c; c++) /* one printable line for the log */
            assert_true((unsigned char)*c >= 0x20 && *c != 0x7f);
    }
}

static void test_parse_bounds(void **state)
{
    (void)state;
    struct sg_work w;
    char why[256];
    const char *ok = "{\"stocks\":[\"AAPL\"]}";
    size_t n = strlen(ok);
    /* max_message: exactly at the bound is fine, one byte over is not */
    assert_int_equal(sg_work_parse(ok, n, n, 10, &w, why, sizeof why), SG_OK);
    sg_work_free(&w);
    assert_int_equal(sg_work_parse(ok, n, n - 1, 10, &w, why, sizeof why), SG_ETOOBIG);
    assert_non_null(strstr(why, "too big (19 bytes > max_message 18)"));
    /* max_symbols: exactly at the bound */
    assert_int_equal(parse("{\"stocks\":[\"A\",\"B\",\"C\",\"D\",\"E\"]}", &w, why), SG_OK);
    assert_int_equal(w.n, 5);
    sg_work_free(&w);
    /* a body that is not NUL-terminated: only len bytes are read */
    char buf[64];
    memcpy(buf, ok, n);
    memset(buf + n, 'x', sizeof buf - n);
    assert_int_equal(sg_work_parse(buf, n, 1000, 10, &w, why, sizeof why), SG_OK);
    sg_work_free(&w);
    /* a truncated reason never overflows */
    char tiny[8];
    assert_int_equal(sg_work_parse("{}", 2, 1000, 10, &w, tiny, sizeof tiny), SG_EPROTO);
    assert_int_equal(strlen(tiny), 7);
    /* deep nesting is jansson's to bound, not a crash */
    char *deep = malloc(200002);
    assert_non_null(deep);
    memset(deep, '[', 100000);
    memset(deep + 100000, ']', 100000);
    assert_int_equal(sg_work_parse(deep, 200000, 1 << 20, 10, &w, why, sizeof why), SG_EPROTO);
    free(deep);
}

static void test_symbol_grammar(void **state)
{
    (void)state;
    static const char *good[] = {"A",       "AAPL",         "BRK.B", "BF-B", "^GSPC",
                                 "0700.HK", "ABCDEFGHIJKL", "123",   "..",   "^"};
    static const char *bad[] = {"",    "aapl", "AaPL", "A B",  "ABCDEFGHIJKLM",
                                "A_B", "A/B",  "A:B",  "A\tB", "\xc3\x84"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(sg_work_symbol_valid(good[i], strlen(good[i])));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(sg_work_symbol_valid(bad[i], strlen(bad[i])));
    assert_false(sg_work_symbol_valid("A\0B", 3)); /* an embedded NUL */
}

static void test_result_encoding(void **state)
{
    (void)state;
    struct sg_src_quote q[5];
    memset(q, 0, sizeof q);
    strcpy(q[0].sym, "AAPL");
    q[0].price = 149.34;
    q[0].have = 1;
    strcpy(q[1].sym, "MSFT");
    q[1].price = 50.0;
    q[1].have = 1;
    strcpy(q[2].sym, "NOPE"); /* no price: left out */
    strcpy(q[3].sym, "^GSPC");
    q[3].price = 0.1 + 0.2; /* 0.30000000000000004: written as cents */
    q[3].have = 1;
    strcpy(q[4].sym, "BRK.A");
    q[4].price = 612345.675; /* rounded half away from zero */
    q[4].have = 1;
    size_t len, count;
    char *s = sg_work_result_encode(q, 5, &len, &count);
    assert_non_null(s);
    assert_string_equal(s, "[{\"symbol\":\"AAPL\",\"price\":149.34},"
                           "{\"symbol\":\"MSFT\",\"price\":50.00},"
                           "{\"symbol\":\"^GSPC\",\"price\":0.30},"
                           "{\"symbol\":\"BRK.A\",\"price\":612345.68}]");
    assert_int_equal(len, strlen(s));
    assert_int_equal(count, 4);
    free(s);

    /* none with a price: an empty array */
    q[0].have = q[1].have = q[3].have = q[4].have = 0;
    s = sg_work_result_encode(q, 5, &len, &count);
    assert_string_equal(s, "[]");
    assert_int_equal(count, 0);
    free(s);
    s = sg_work_result_encode(NULL, 0, NULL, NULL);
    assert_string_equal(s, "[]");
    free(s);

    /* never a non-positive or non-finite price on the wire */
    q[0].have = 1;
    q[0].price = -3;
    q[1].have = 1;
    q[1].price = 0.0 / 0.0;
    q[3].have = 1;
    q[3].price = 0.004; /* rounds to 0.00: the floor is a cent */
    s = sg_work_result_encode(q, 4, NULL, &count);
    assert_string_equal(s, "[{\"symbol\":\"^GSPC\",\"price\":0.01}]");
    assert_int_equal(count, 1);
    free(s);
    assert_true(sg_work_cents(1.005 + 1e-9) == 1.01);
    assert_true(sg_work_cents(2.344) == 2.34);
}

/* what the bridge and the book's server send, and what comes back */
static void test_round_trip(void **state)
{
    (void)state;
    struct sg_work w;
    char why[256];
    assert_int_equal(parse("{\"stocks\":[\"GOOG\",\"AAPL\",\"GOOG\"]}", &w, why), SG_OK);
    w.q[0].price = 593.26;
    w.q[0].have = 1;
    w.q[1].price = 149.34;
    w.q[1].have = 1;
    char *s = sg_work_result_encode(w.q, w.n, NULL, NULL);
    assert_string_equal(s, "[{\"symbol\":\"GOOG\",\"price\":593.26},"
                           "{\"symbol\":\"AAPL\",\"price\":149.34}]");
    free(s);
    sg_work_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_dedupes_in_order),
        cmocka_unit_test(test_parse_many_unique),
        cmocka_unit_test(test_parse_refuses),
        cmocka_unit_test(test_parse_bounds),
        cmocka_unit_test(test_symbol_grammar),
        cmocka_unit_test(test_result_encoding),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
