/* test_ticker.c - the bridge's stock-ticker core (ticker.h): symbols, the
 * quote destination, the stocks.result parser (a table of bodies with the
 * exact quotes and skip counts; every prefix of a valid body, each in a
 * heap block of exactly its length), the stocks.work JSON and the quote
 * body (exact bytes, read back with jansson), and the hub: references per
 * worker, the interest set, updates marking only holders, conflation and
 * the wake calls, batched takes, the new-symbol list, the last-value
 * cache, eviction at max_symbols, and a multi-thread smoke run that checks
 * the counts once every thread is done (never a timing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <pthread.h>

#include "buf.h"
#include "error.h"
#include "ticker.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------ */
/* sg_ticker_symbol_valid */

struct sym_case {
    const char *s;
    size_t n; /* 0 with s != "": strlen(s) */
    int want;
};

#define SYM(s, want)                                                                               \
    {                                                                                              \
        s, sizeof(s) - 1, want                                                                     \
    }

static const struct sym_case sym_cases[] = {
    {"", 0, 0},                  /* empty */
    SYM("A", 1),                 /* one */
    SYM("ABCDEFGHIJKL", 1),      /* twelve */
    SYM("ABCDEFGHIJKLM", 0),     /* thirteen */
    SYM("123456789012", 1),      /* twelve digits */
    SYM("1234567890123", 0),     /* thirteen digits */
    SYM("AAPL", 1),              /* A-Z */
    SYM("0700", 1),              /* 0-9 (Hong Kong style) */
    SYM("BRK.B", 1),             /* . */
    SYM("BF-B", 1),              /* - */
    SYM("^GSPC", 1),             /* ^ (an index) */
    SYM(".", 1),                 /* a lone allowed punctuation mark is a symbol */
    SYM("-^.", 1),               /* as is any mix of the class */
    SYM("aapl", 0),              /* lowercase */
    SYM("AAPl", 0),              /* one lowercase letter */
    SYM("AA PL", 0),             /* space */
    SYM(" AAPL", 0),             /* leading space */
    SYM("AAPL ", 0),             /* trailing space */
    SYM("A/B", 0),               /* slash */
    SYM("A_B", 0),               /* underscore */
    SYM("A*", 0),                /* wildcard characters of a topic */
    SYM("A#", 0),                /* ... */
    SYM("A\tB", 0),              /* control character */
    SYM("A\x7f", 0),             /* DEL */
    SYM("\xc3\x84PPL", 0),       /* UTF-8 (A with diaeresis) */
    SYM("AAPL\xe2\x82\xac", 0),  /* UTF-8 (euro sign) */
    SYM("A\0B", 0),              /* NUL inside: n counts bytes */
    {"AAPL", 2, 1},              /* n bytes only: "AA" */
    {"AAPLxyz", 4, 1},           /* what follows n does not count */
    {"ABCDEFGHIJKLMNOP", 12, 1}, /* 12 of a longer string */
    {"ABCDEFGHIJKLMNOP", 13, 0}, /* 13 of it */
    SYM("ABCDEFGHIJKl", 0),      /* the twelfth byte is checked too */
};

static void test_symbol_valid_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEM(sym_cases); i++) {
        const struct sym_case *c = &sym_cases[i];
        int got = sg_ticker_symbol_valid(c->s, c->n);
        if (got != c->want)
            fail_msg("case %zu (\"%.*s\", n %zu): got %d, want %d", i, (int)c->n, c->s, c->n, got,
                     c->want);
    }
}

/* Every byte value on its own, and as the last byte of a 12-byte symbol:
 * valid exactly for A-Z 0-9 . - ^ */
static void test_symbol_valid_every_byte(void **state)
{
    (void)state;
    int nvalid = 0;
    for (int b = 0; b < 256; b++) {
        char one = (char)b, twelve[12];
        memset(twelve, 'Q', sizeof twelve);
        twelve[11] = (char)b;
        int want =
            (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') || b == '.' || b == '-' || b == '^';
        if (sg_ticker_symbol_valid(&one, 1) != want) fail_msg("byte 0x%02x alone", b);
        if (sg_ticker_symbol_valid(twelve, 12) != want) fail_msg("byte 0x%02x at the end", b);
        nvalid += want;
    }
    assert_int_equal(nvalid, 26 + 10 + 3);
}

/* ------------------------------------------------------------------ */
/* sg_ticker_quote_dest */

struct dest_case {
    const char *prefix, *dest;
    int want;
    size_t sym_off; /* where *sym points into dest */
};

static const struct dest_case dest_cases[] = {
    {"/queue/stocks.", "/queue/stocks.AAPL", 1, 14},
    {"/queue/stocks.", "/queue/stocks.aapl", 1, 14},    /* the symbol is not checked here */
    {"/queue/stocks.", "/queue/stocks.", 1, 14},        /* an empty symbol: the caller refuses */
    {"/queue/stocks.", "/queue/stocks.A/B.C", 1, 14},   /* the rest, whatever it is */
    {"/queue/stocks.", "/queue/stocks", 0, 0},          /* shorter than the prefix */
    {"/queue/stocks.", "/queue/stocksAAPL", 0, 0},      /* last byte differs */
    {"/queue/stocks.", "/queue/Stocks.AAPL", 0, 0},     /* case matters */
    {"/queue/stocks.", "/topic/stocks.AAPL", 0, 0},     /* other kind */
    {"/queue/stocks.", "/amq/queue/stocks.AAPL", 0, 0}, /* other kind */
    {"/queue/stocks.", "", 0, 0},                       /* empty destination */
    {"/queue/stocks.", "x/queue/stocks.AAPL", 0, 0},    /* not at the start */
    {"/topic/q.", "/topic/q.MSFT", 1, 9},               /* another prefix */
    {"/", "/AAPL", 1, 1},                               /* the shortest prefix */
    {"", "/queue/stocks.AAPL", 0, 0},                   /* empty prefix: off */
    {"", "", 0, 0},                                     /* ... even for an empty dest */
    {NULL, "/queue/stocks.AAPL", 0, 0},                 /* NULL prefix: off */
};

static void test_quote_dest_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEM(dest_cases); i++) {
        const struct dest_case *c = &dest_cases[i];
        static const char untouched[] = "untouched";
        const char *sym = untouched;
        int got = sg_ticker_quote_dest(c->prefix, c->dest, &sym);
        if (got != c->want)
            fail_msg("case %zu (%s, %s): got %d, want %d", i, c->prefix ? c->prefix : "NULL",
                     c->dest, got, c->want);
        if (c->want) {
            /* a pointer into dest, not a copy */
            assert_ptr_equal(sym, c->dest + c->sym_off);
        } else {
            assert_ptr_equal(sym, untouched);
        }
    }
}

/* ------------------------------------------------------------------ */
/* sg_ticker_parse_result */

struct got_quotes {
    size_t n;
    char sym[16][SG_TICKER_SYM_CAP];
    double price[16];
    int bad_symbol; /* a callback with an invalid symbol or price */
};

static void collect(void *arg, const char *symbol, double price)
{
    struct got_quotes *g = arg;
    if (!sg_ticker_symbol_valid(symbol, strlen(symbol)) || !isfinite(price) || price <= 0)
        g->bad_symbol++;
    if (g->n < NELEM(g->sym)) {
        snprintf(g->sym[g->n], sizeof g->sym[g->n], "%s", symbol);
        g->price[g->n] = price;
    }
    g->n++;
}

/* Runs the parser over a heap copy of exactly len bytes (so ASan sees any
 * read past the end). */
static int parse(const void *body, size_t len, struct got_quotes *g, size_t *bad, const char **why)
{
    void *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len) memcpy(copy, body, len);
    memset(g, 0, sizeof *g);
    *bad = 12345; /* always set */
    *why = NULL;
    int rc = sg_ticker_parse_result(copy, len, collect, g, bad, why);
    free(copy);
    assert_int_equal(g->bad_symbol, 0);
    return rc;
}

#define NOT_JSON "result is not JSON"
#define NOT_ARRAY "result is not a JSON array"

struct result_case {
    const char *body;
    size_t len;      /* 0: strlen(body) */
    int rc;          /* >= 0: quotes; else SG_EPROTO */
    const char *why; /* for SG_EPROTO */
    size_t bad;
    const char *syms[4];
    double prices[4];
};

static const struct result_case result_cases[] = {
    /* the contract */
    {"[{\"symbol\":\"AAPL\",\"price\":149.34}]", 0, 1, NULL, 0, {"AAPL"}, {149.34}},
    {"[{\"symbol\":\"AAPL\",\"price\":149.34},{\"symbol\":\"MSFT\",\"price\":301.5},"
     "{\"symbol\":\"BRK.B\",\"price\":0.01}]",
     0,
     3,
     NULL,
     0,
     {"AAPL", "MSFT", "BRK.B"},
     {149.34, 301.5, 0.01}},
    /* whitespace anywhere JSON allows it */
    {" \n[ { \"price\" : 7.5 ,\t\"symbol\" : \"^GSPC\" } ]\r\n ", 0, 1, NULL, 0, {"^GSPC"}, {7.5}},
    /* an integer is a price */
    {"[{\"symbol\":\"GOOG\",\"price\":550}]", 0, 1, NULL, 0, {"GOOG"}, {550.0}},
    {"[{\"symbol\":\"GOOG\",\"price\":1}]", 0, 1, NULL, 0, {"GOOG"}, {1.0}},
    /* exponent forms */
    {"[{\"symbol\":\"X\",\"price\":1.5e2}]", 0, 1, NULL, 0, {"X"}, {150.0}},
    {"[{\"symbol\":\"X\",\"price\":1e-300}]", 0, 1, NULL, 0, {"X"}, {1e-300}},
    {"[{\"symbol\":\"X\",\"price\":1.7e308}]", 0, 1, NULL, 0, {"X"}, {1.7e308}},
    /* other fields are ignored, whatever they hold */
    {"[{\"symbol\":\"AAPL\",\"price\":2.5,\"ts\":1700000000000,\"src\":\"stockd\","
     "\"extra\":{\"a\":[1,2,{\"b\":null}]},\"symbol2\":\"zz\"}]",
     0,
     1,
     NULL,
     0,
     {"AAPL"},
     {2.5}},
    /* the same symbol twice: both, in order */
    {"[{\"symbol\":\"A\",\"price\":1},{\"symbol\":\"A\",\"price\":2}]",
     0,
     2,
     NULL,
     0,
     {"A", "A"},
     {1.0, 2.0}},
    /* empty array */
    {"[]", 0, 0, NULL, 0, {NULL}, {0}},
    {" [ ] ", 0, 0, NULL, 0, {NULL}, {0}},
    /* invalid entries are skipped and counted */
    {"[{\"symbol\":\"aapl\",\"price\":1}]", 0, 0, NULL, 1, {NULL}, {0}},          /* lowercase */
    {"[{\"symbol\":\"ABCDEFGHIJKLM\",\"price\":1}]", 0, 0, NULL, 1, {NULL}, {0}}, /* 13 chars */
    {"[{\"symbol\":\"ABCDEFGHIJKL\",\"price\":1}]", 0, 1, NULL, 0, {"ABCDEFGHIJKL"}, {1.0}},
    {"[{\"symbol\":\"\",\"price\":1}]", 0, 0, NULL, 1, {NULL}, {0}},         /* empty symbol */
    {"[{\"symbol\":\"A B\",\"price\":1}]", 0, 0, NULL, 1, {NULL}, {0}},      /* space */
    {"[{\"symbol\":\"\\u00c4\",\"price\":1}]", 0, 0, NULL, 1, {NULL}, {0}},  /* non-ASCII */
    {"[{\"symbol\":\"\xc3\x84\",\"price\":1}]", 0, 0, NULL, 1, {NULL}, {0}}, /* raw UTF-8 */
    {"[{\"symbol\":5,\"price\":1}]", 0, 0, NULL, 1, {NULL}, {0}},            /* not a string */
    {"[{\"symbol\":null,\"price\":1}]", 0, 0, NULL, 1, {NULL}, {0}},
    {"[{\"symbol\":[\"A\"],\"price\":1}]", 0, 0, NULL, 1, {NULL}, {0}},
    {"[{\"price\":1}]", 0, 0, NULL, 1, {NULL}, {0}},                        /* no symbol */
    {"[{\"symbol\":\"A\"}]", 0, 0, NULL, 1, {NULL}, {0}},                   /* no price */
    {"[{\"symbol\":\"A\",\"price\":\"1.5\"}]", 0, 0, NULL, 1, {NULL}, {0}}, /* string price */
    {"[{\"symbol\":\"A\",\"price\":null}]", 0, 0, NULL, 1, {NULL}, {0}},
    {"[{\"symbol\":\"A\",\"price\":true}]", 0, 0, NULL, 1, {NULL}, {0}},
    {"[{\"symbol\":\"A\",\"price\":{}}]", 0, 0, NULL, 1, {NULL}, {0}},
    {"[{\"symbol\":\"A\",\"price\":-1.5}]", 0, 0, NULL, 1, {NULL}, {0}}, /* negative */
    {"[{\"symbol\":\"A\",\"price\":-3}]", 0, 0, NULL, 1, {NULL}, {0}},   /* negative int */
    {"[{\"symbol\":\"A\",\"price\":0}]", 0, 0, NULL, 1, {NULL}, {0}},    /* zero */
    {"[{\"symbol\":\"A\",\"price\":0.0}]", 0, 0, NULL, 1, {NULL}, {0}},
    {"[{\"symbol\":\"A\",\"price\":-0.0}]", 0, 0, NULL, 1, {NULL}, {0}},
    {"[{\"symbol\":\"A\",\"price\":1e-400}]", 0, 0, NULL, 1, {NULL}, {0}}, /* underflows to 0 */
    {"[1,\"AAPL\",null,true,[],[{\"symbol\":\"A\",\"price\":1}]]", 0, 0, NULL, 6, {NULL}, {0}},
    /* good and bad mixed: the good ones in order */
    {"[{\"symbol\":\"A\",\"price\":1},7,{\"symbol\":\"b\",\"price\":2},{\"symbol\":\"C\","
     "\"price\":3},{\"symbol\":\"D\",\"price\":-4}]",
     0,
     2,
     NULL,
     3,
     {"A", "C"},
     {1.0, 3.0}},
    /* not JSON */
    {"", 0, SG_EPROTO, NOT_JSON, 0, {NULL}, {0}},
    {" ", 0, SG_EPROTO, NOT_JSON, 0, {NULL}, {0}},
    {"hello", 0, SG_EPROTO, NOT_JSON, 0, {NULL}, {0}},
    {"[", 0, SG_EPROTO, NOT_JSON, 0, {NULL}, {0}},
    {"[{\"symbol\":\"A\",\"price\":1},]", 0, SG_EPROTO, NOT_JSON, 0, {NULL}, {0}},
    {"[{'symbol':'A','price':1}]", 0, SG_EPROTO, NOT_JSON, 0, {NULL}, {0}},
    {"[{\"symbol\":\"A\",\"price\":NaN}]", 0, SG_EPROTO, NOT_JSON, 0, {NULL}, {0}},
    {"[{\"symbol\":\"A\",\"price\":Infinity}]", 0, SG_EPROTO, NOT_JSON, 0, {NULL}, {0}},
    {"[{\"symbol\":\"A\",\"price\":1e400}]", 0, SG_EPROTO, NOT_JSON, 0, {NULL}, {0}}, /* overflow */
    /* a NUL in a string or after the document */
    {"[{\"symbol\":\"A\\u0000B\",\"price\":1}]", 0, SG_EPROTO, NOT_JSON, 0, {NULL}, {0}},
    {"[]\0", 3, SG_EPROTO, NOT_JSON, 0, {NULL}, {0}},
    {"[\0]", 3, SG_EPROTO, NOT_JSON, 0, {NULL}, {0}},
    /* trailing garbage */
    {"[] x", 0, SG_EPROTO, NOT_JSON, 0, {NULL}, {0}},
    {"[][]", 0, SG_EPROTO, NOT_JSON, 0, {NULL}, {0}},
    {"[{\"symbol\":\"A\",\"price\":1}]]", 0, SG_EPROTO, NOT_JSON, 0, {NULL}, {0}},
    /* duplicate keys: the whole message is refused (which price would it be?) */
    {"[{\"symbol\":\"A\",\"price\":1,\"price\":2}]", 0, SG_EPROTO, NOT_JSON, 0, {NULL}, {0}},
    {"[{\"symbol\":\"A\",\"symbol\":\"B\",\"price\":1}]", 0, SG_EPROTO, NOT_JSON, 0, {NULL}, {0}},
    /* JSON, not an array */
    {"{\"symbol\":\"AAPL\",\"price\":1}", 0, SG_EPROTO, NOT_ARRAY, 0, {NULL}, {0}},
    {"{}", 0, SG_EPROTO, NOT_ARRAY, 0, {NULL}, {0}},
    {"{\"stocks\":[\"AAPL\"]}", 0, SG_EPROTO, NOT_ARRAY, 0, {NULL}, {0}}, /* a work message */
};

static void check_result_case(size_t i, const struct result_case *c)
{
    size_t len = c->len ? c->len : strlen(c->body), bad;
    const char *why;
    struct got_quotes g;
    int rc = parse(c->body, len, &g, &bad, &why);
    if (rc != c->rc) fail_msg("case %zu (%s): rc %d, want %d (%s)", i, c->body, rc, c->rc, why);
    if (rc < 0) {
        assert_non_null(why);
        assert_string_equal(why, c->why);
        assert_int_equal(g.n, 0);
        return;
    }
    if (bad != c->bad) fail_msg("case %zu (%s): bad %zu, want %zu", i, c->body, bad, c->bad);
    assert_int_equal(g.n, (size_t)rc);
    for (size_t k = 0; k < g.n; k++) {
        assert_non_null(c->syms[k]);
        assert_string_equal(g.sym[k], c->syms[k]);
        if (g.price[k] != c->prices[k])
            fail_msg("case %zu quote %zu: price %.17g, want %.17g", i, k, g.price[k], c->prices[k]);
    }
    assert_true(g.n == NELEM(c->syms) || !c->syms[g.n]);
}

static void test_parse_result_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEM(result_cases); i++)
        check_result_case(i, &result_cases[i]);
}

/* A top-level string or number is not a JSON array either (jansson may
 * call it "not JSON": either text, but SG_EPROTO and no quotes). */
static void test_parse_result_scalars(void **state)
{
    (void)state;
    static const char *const bodies[] = {"\"AAPL\"", "5", "149.34", "null", "true"};
    for (size_t i = 0; i < NELEM(bodies); i++) {
        size_t bad;
        const char *why;
        struct got_quotes g;
        assert_int_equal(parse(bodies[i], strlen(bodies[i]), &g, &bad, &why), SG_EPROTO);
        assert_non_null(why);
        assert_true(!strcmp(why, NOT_JSON) || !strcmp(why, NOT_ARRAY));
        assert_int_equal(g.n, 0);
    }
}

/* A whole-message parser meets no split input, but it must stay sound on
 * a cut message: every strict prefix of a valid body is refused cleanly
 * (the body has no trailing whitespace, so no prefix is a document), with
 * no callback. */
static void test_parse_result_every_prefix(void **state)
{
    (void)state;
    static const char body[] =
        "[{\"symbol\":\"AAPL\",\"price\":149.34},{\"symbol\":\"MSFT\",\"price\":300,"
        "\"ts\":17},{\"symbol\":\"bad\",\"price\":1},5,{\"symbol\":\"^GSPC\",\"price\":1.5e3}]";
    size_t len = sizeof body - 1, bad;
    const char *why;
    struct got_quotes g;
    assert_int_equal(parse(body, len, &g, &bad, &why), 3);
    assert_int_equal(bad, 2);
    for (size_t n = 0; n < len; n++) {
        int rc = parse(body, n, &g, &bad, &why);
        if (rc != SG_EPROTO) fail_msg("prefix of %zu bytes: rc %d", n, rc);
        assert_int_equal(g.n, 0);
        assert_non_null(why);
    }
}

/* Big inputs: 20000 entries, every other one bad; and nesting deeper than
 * any parser stack (refused, not a crash). */
static void test_parse_result_long(void **state)
{
    (void)state;
    struct sg_buf b;
    sg_buf_init(&b, 0);
    assert_int_equal(sg_buf_append_str(&b, "["), SG_OK);
    for (int i = 0; i < 20000; i++)
        assert_int_equal(sg_buf_printf(&b, "%s{\"symbol\":\"S%d\",\"price\":%s}", i ? "," : "",
                                       i % 1000, i % 2 ? "-1" : "2.25"),
                         SG_OK);
    assert_int_equal(sg_buf_append_str(&b, "]"), SG_OK);
    size_t bad;
    const char *why;
    struct got_quotes g;
    assert_int_equal(parse(b.data, b.len, &g, &bad, &why), 10000);
    assert_int_equal(bad, 10000);
    assert_int_equal(g.n, 10000);
    assert_string_equal(g.sym[0], "S0");
    assert_string_equal(g.sym[1], "S2");
    assert_true(g.price[15] == 2.25);

    sg_buf_clear(&b);
    for (int i = 0; i < 100000; i++)
        assert_int_equal(sg_buf_append_str(&b, "["), SG_OK);
    for (int i = 0; i < 100000; i++)
        assert_int_equal(sg_buf_append_str(&b, "]"), SG_OK);
    assert_int_equal(parse(b.data, b.len, &g, &bad, &why), SG_EPROTO);
    assert_string_equal(why, NOT_JSON);

    /* a long symbol string */
    sg_buf_clear(&b);
    assert_int_equal(sg_buf_append_str(&b, "[{\"symbol\":\""), SG_OK);
    for (int i = 0; i < 100000; i++)
        assert_int_equal(sg_buf_append_str(&b, "A"), SG_OK);
    assert_int_equal(sg_buf_append_str(&b, "\",\"price\":1}]"), SG_OK);
    assert_int_equal(parse(b.data, b.len, &g, &bad, &why), 0);
    assert_int_equal(bad, 1);
    sg_buf_reset(&b);
}

/* ------------------------------------------------------------------ */
/* sg_ticker_work_json */

static void check_work(const char (*syms)[SG_TICKER_SYM_CAP], size_t n, const char *want)
{
    struct sg_buf b;
    sg_buf_init(&b, 0);
    assert_int_equal(sg_ticker_work_json(&b, syms, n), SG_OK);
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    /* it reads back as the same list */
    json_error_t err;
    json_t *root = json_loadb((const char *)b.data, b.len, JSON_REJECT_DUPLICATES, &err);
    if (!root) fail_msg("work JSON does not parse: %s", err.text);
    assert_true(json_is_object(root));
    assert_int_equal(json_object_size(root), 1);
    json_t *a = json_object_get(root, "stocks");
    assert_true(json_is_array(a));
    assert_int_equal(json_array_size(a), n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(json_string_value(json_array_get(a, i)), syms[i]);
    json_decref(root);
    sg_buf_reset(&b);
}

static void test_work_json(void **state)
{
    (void)state;
    static const char syms[3][SG_TICKER_SYM_CAP] = {"AAPL", "BRK.B", "^GSPC"};
    check_work(syms, 0, "{\"stocks\":[]}");
    check_work(syms, 1, "{\"stocks\":[\"AAPL\"]}");
    check_work(syms, 3, "{\"stocks\":[\"AAPL\",\"BRK.B\",\"^GSPC\"]}");
    static const char twelve[1][SG_TICKER_SYM_CAP] = {"ABCDEFGHIJKL"};
    check_work(twelve, 1, "{\"stocks\":[\"ABCDEFGHIJKL\"]}");

    /* it appends */
    struct sg_buf b;
    sg_buf_init(&b, 0);
    assert_int_equal(sg_buf_append_str(&b, "x"), SG_OK);
    assert_int_equal(sg_ticker_work_json(&b, syms, 1), SG_OK);
    assert_int_equal(b.len, 1 + strlen("{\"stocks\":[\"AAPL\"]}"));
    assert_memory_equal(b.data, "x{\"stocks\":[\"AAPL\"]}", b.len);
    sg_buf_reset(&b);

    /* a bounded buffer too small: SG_ETOOBIG, never past the bound */
    static const size_t maxes[] = {1, 11, 12, 19, 34};
    for (size_t i = 0; i < NELEM(maxes); i++) {
        sg_buf_init(&b, maxes[i]);
        assert_int_equal(sg_ticker_work_json(&b, syms, 3), SG_ETOOBIG);
        assert_true(b.len <= maxes[i]);
        sg_buf_reset(&b);
    }
    sg_buf_init(&b, strlen("{\"stocks\":[\"AAPL\",\"BRK.B\",\"^GSPC\"]}")); /* exactly */
    assert_int_equal(sg_ticker_work_json(&b, syms, 3), SG_OK);
    sg_buf_reset(&b);
}

/* ------------------------------------------------------------------ */
/* sg_ticker_quote_body */

struct body_case {
    const char *sym;
    double price;
    uint64_t ts;
    const char *want;
};

static const struct body_case body_cases[] = {
    {"AAPL", 149.34, 1700000000123ULL,
     "{\"symbol\":\"AAPL\",\"price\":149.34,\"ts\":1700000000123}"},
    {"X", 0.01, 0, "{\"symbol\":\"X\",\"price\":0.01,\"ts\":0}"},
    {"BRK.B", 12345.678, 1, "{\"symbol\":\"BRK.B\",\"price\":12345.678,\"ts\":1}"},
    {"GOOG", 550, 2, "{\"symbol\":\"GOOG\",\"price\":550,\"ts\":2}"}, /* no ".0" */
    {"A", 0.1 + 0.2, 3, "{\"symbol\":\"A\",\"price\":0.3,\"ts\":3}"}, /* 15 significant digits */
    {"A", 123456789012.345, 4, "{\"symbol\":\"A\",\"price\":123456789012.345,\"ts\":4}"},
    {"A", 1e21, 5, "{\"symbol\":\"A\",\"price\":1e+21,\"ts\":5}"},
    {"A", 1e-5, 6, "{\"symbol\":\"A\",\"price\":1e-05,\"ts\":6}"},
    {"ABCDEFGHIJKL", 99.99, 253402300799999ULL, /* the last ms of year 9999 */
     "{\"symbol\":\"ABCDEFGHIJKL\",\"price\":99.99,\"ts\":253402300799999}"},
};

static void test_quote_body(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEM(body_cases); i++) {
        const struct body_case *c = &body_cases[i];
        struct sg_quote q;
        memset(&q, 0, sizeof q);
        snprintf(q.symbol, sizeof q.symbol, "%s", c->sym);
        q.price = c->price;
        q.ts_ms = c->ts;
        q.seq = 77;
        char out[256];
        size_t want = strlen(c->want);
        size_t n = sg_ticker_quote_body(out, sizeof out, &q);
        if (n != want || strcmp(out, c->want))
            fail_msg("case %zu: got %zu \"%s\", want \"%s\"", i, n, out, c->want);
        /* valid JSON with the same symbol, and the price back to its digits */
        json_error_t err;
        json_t *root = json_loadb(out, n, 0, &err);
        if (!root) fail_msg("case %zu: not JSON: %s", i, err.text);
        assert_string_equal(json_string_value(json_object_get(root, "symbol")), c->sym);
        double p = json_number_value(json_object_get(root, "price"));
        assert_true(fabs(p - c->price) <= fabs(c->price) * 1e-14);
        json_decref(root);
        /* the cap holds the NUL: exactly len + 1 fits, len does not */
        memset(out, 'Z', sizeof out);
        assert_int_equal(sg_ticker_quote_body(out, want + 1, &q), want);
        assert_int_equal(out[want], '\0');
        memset(out, 'Z', sizeof out);
        assert_int_equal(sg_ticker_quote_body(out, want, &q), 0);
        assert_int_equal(out[want], 'Z'); /* nothing past the cap */
        memset(out, 'Z', sizeof out);
        assert_int_equal(sg_ticker_quote_body(out, 0, &q), 0);
        assert_int_equal(out[0], 'Z'); /* cap 0 writes nothing */
        assert_int_equal(sg_ticker_quote_body(out, 1, &q), 0);
        assert_int_equal(out[1], 'Z');
    }
}

/* ------------------------------------------------------------------ */
/* the hub */

#define MAXW 256

struct wakes {
    pthread_mutex_t mu;
    long count[MAXW];
    long total;
    int order[64];
    int norder;
};

static struct wakes W;

static void wakes_reset(void)
{
    pthread_mutex_lock(&W.mu);
    memset(W.count, 0, sizeof W.count);
    W.total = 0;
    W.norder = 0;
    pthread_mutex_unlock(&W.mu);
}

static void on_wake(void *arg, int w)
{
    assert_ptr_equal(arg, &W);
    assert_true(w >= 0 && w < MAXW);
    pthread_mutex_lock(&W.mu);
    W.count[w]++;
    W.total++;
    if (W.norder < (int)NELEM(W.order)) W.order[W.norder++] = w;
    pthread_mutex_unlock(&W.mu);
}

static struct sg_ticker_hub *hub(size_t max, int nworkers)
{
    wakes_reset();
    struct sg_ticker_hub *h = sg_ticker_hub_new(max, nworkers, on_wake, &W);
    assert_non_null(h);
    return h;
}

static int cmp_sym(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* The interest set, sorted, joined with ',' */
static const char *interest(struct sg_ticker_hub *h)
{
    static char out[1024];
    char syms[64][SG_TICKER_SYM_CAP];
    size_t n = sg_ticker_hub_interest(h, syms, 64);
    assert_true(n <= 64);
    qsort(syms, n, sizeof syms[0], cmp_sym);
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        if (i) strcat(out, ",");
        strcat(out, syms[i]);
    }
    return out;
}

/* take_new, sorted and joined */
static const char *take_new(struct sg_ticker_hub *h, size_t max)
{
    static char out[1024];
    char syms[64][SG_TICKER_SYM_CAP];
    assert_true(max <= 64);
    size_t n = sg_ticker_hub_take_new(h, syms, max);
    assert_true(n <= max);
    qsort(syms, n, sizeof syms[0], cmp_sym);
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        if (i) strcat(out, ",");
        strcat(out, syms[i]);
    }
    return out;
}

static void test_hub_new_bad_args(void **state)
{
    (void)state;
    assert_null(sg_ticker_hub_new(0, 1, on_wake, &W));   /* no room */
    assert_null(sg_ticker_hub_new(10, 0, on_wake, &W));  /* no worker */
    assert_null(sg_ticker_hub_new(10, -1, on_wake, &W)); /* ... */
    assert_null(sg_ticker_hub_new(10, 257, on_wake, &W));
    struct sg_ticker_hub *h = sg_ticker_hub_new(1, 256, NULL, NULL); /* the largest, no wake */
    assert_non_null(h);
    assert_int_equal(sg_ticker_hub_known(h), 0);
    assert_int_equal(sg_ticker_hub_interest(h, NULL, 0), 0);
    sg_ticker_hub_free(h);
    sg_ticker_hub_free(NULL);
}

/* ref/unref: idempotent per worker; the interest set counts symbols, not
 * references; a worker out of range changes nothing. */
static void test_hub_ref_unref(void **state)
{
    (void)state;
    struct sg_ticker_hub *h = hub(10, 2);
    assert_int_equal(sg_ticker_hub_ref(h, 0, "AAPL"), SG_OK);
    assert_int_equal(sg_ticker_hub_ref(h, 0, "AAPL"), SG_OK); /* again: no second ref */
    assert_int_equal(sg_ticker_hub_interest(h, NULL, 0), 1);
    assert_int_equal(sg_ticker_hub_known(h), 1);
    assert_int_equal(W.count[0], 1);   /* joined once: worker 0 woken once */
    sg_ticker_hub_unref(h, 0, "AAPL"); /* one unref ends it */
    assert_int_equal(sg_ticker_hub_interest(h, NULL, 0), 0);
    assert_int_equal(sg_ticker_hub_known(h), 1); /* still known (may get a cached price) */
    sg_ticker_hub_unref(h, 0, "AAPL");           /* again: no underflow */
    sg_ticker_hub_unref(h, 1, "AAPL");           /* never held by 1 */
    sg_ticker_hub_unref(h, 0, "MSFT");           /* never known */
    assert_int_equal(sg_ticker_hub_interest(h, NULL, 0), 0);
    assert_int_equal(sg_ticker_hub_known(h), 1);

    /* two workers on one symbol: it leaves with the last one */
    assert_int_equal(sg_ticker_hub_ref(h, 0, "AAPL"), SG_OK);
    assert_int_equal(sg_ticker_hub_ref(h, 1, "AAPL"), SG_OK);
    assert_int_equal(sg_ticker_hub_ref(h, 1, "AAPL"), SG_OK);
    assert_int_equal(sg_ticker_hub_interest(h, NULL, 0), 1);
    sg_ticker_hub_unref(h, 1, "AAPL");
    sg_ticker_hub_unref(h, 1, "AAPL"); /* 1's second unref must not drop 0's hold */
    assert_string_equal(interest(h), "AAPL");
    sg_ticker_hub_unref(h, 0, "AAPL");
    assert_string_equal(interest(h), "");

    /* workers out of range */
    assert_true(sg_ticker_hub_ref(h, 2, "MSFT") < 0);
    assert_true(sg_ticker_hub_ref(h, -1, "MSFT") < 0);
    assert_int_equal(sg_ticker_hub_known(h), 1);
    assert_int_equal(sg_ticker_hub_ref(h, 1, "MSFT"), SG_OK);
    sg_ticker_hub_unref(h, 2, "MSFT");
    sg_ticker_hub_unref(h, -1, "MSFT");
    assert_string_equal(interest(h), "MSFT");
    struct sg_quote q[4];
    assert_int_equal(sg_ticker_hub_take(h, 2, q, 4), 0);
    assert_int_equal(sg_ticker_hub_take(h, -1, q, 4), 0);
    sg_ticker_hub_free(h);
}

/* The interest set with three workers: symbols once each, however many
 * hold them; copied up to max, counted in full. */
static void test_hub_interest_three_workers(void **state)
{
    (void)state;
    struct sg_ticker_hub *h = hub(10, 3);
    for (int w = 0; w < 3; w++)
        assert_int_equal(sg_ticker_hub_ref(h, w, "AAPL"), SG_OK);
    assert_int_equal(sg_ticker_hub_ref(h, 1, "MSFT"), SG_OK);
    assert_int_equal(sg_ticker_hub_ref(h, 2, "IBM"), SG_OK);
    assert_string_equal(interest(h), "AAPL,IBM,MSFT");
    assert_int_equal(sg_ticker_hub_known(h), 3);
    /* worker 0 was woken for each symbol joining, by whoever joined it */
    assert_int_equal(W.count[0], 3);
    assert_int_equal(W.count[1] + W.count[2], 0);

    char two[2][SG_TICKER_SYM_CAP];
    memset(two, 0, sizeof two);
    assert_int_equal(sg_ticker_hub_interest(h, two, 2), 3); /* the size, beyond max */
    for (int i = 0; i < 2; i++)
        assert_true(!strcmp(two[i], "AAPL") || !strcmp(two[i], "MSFT") || !strcmp(two[i], "IBM"));
    assert_string_not_equal(two[0], two[1]);
    assert_int_equal(sg_ticker_hub_interest(h, NULL, 0), 3);

    sg_ticker_hub_unref(h, 0, "AAPL");
    sg_ticker_hub_unref(h, 1, "AAPL");
    assert_string_equal(interest(h), "AAPL,IBM,MSFT");
    sg_ticker_hub_unref(h, 2, "AAPL");
    assert_string_equal(interest(h), "IBM,MSFT");
    sg_ticker_hub_unref(h, 1, "MSFT");
    sg_ticker_hub_unref(h, 2, "IBM");
    assert_string_equal(interest(h), "");
    assert_int_equal(sg_ticker_hub_known(h), 3);
    sg_ticker_hub_free(h);
}

/* An update for a symbol the hub does not know is ignored: results never
 * grow the table. */
static void test_hub_update_unknown(void **state)
{
    (void)state;
    struct sg_ticker_hub *h = hub(10, 2);
    assert_int_equal(sg_ticker_hub_update(h, "AAPL", 1.5, 10), 0);
    assert_int_equal(sg_ticker_hub_known(h), 0);
    struct sg_quote q;
    assert_int_equal(sg_ticker_hub_last(h, "AAPL", &q), SG_ENOKEY);
    assert_int_equal(sg_ticker_hub_ref(h, 1, "MSFT"), SG_OK);
    wakes_reset();
    assert_int_equal(sg_ticker_hub_update(h, "AAPL", 1.5, 10), 0);
    assert_int_equal(sg_ticker_hub_known(h), 1);
    assert_int_equal(W.total, 0);
    struct sg_quote out[4];
    assert_int_equal(sg_ticker_hub_take(h, 1, out, 4), 0);
    assert_int_equal(sg_ticker_hub_last(h, "AAPL", &q), SG_ENOKEY);
    sg_ticker_hub_free(h);
}

/* An update marks only the workers holding the symbol, and wakes each of
 * them; the quote carries the symbol, price, ts and the update counter. */
static void test_hub_update_marks_holders(void **state)
{
    (void)state;
    struct sg_ticker_hub *h = hub(10, 3);
    assert_int_equal(sg_ticker_hub_ref(h, 0, "AAPL"), SG_OK);
    assert_int_equal(sg_ticker_hub_ref(h, 2, "AAPL"), SG_OK);
    assert_int_equal(sg_ticker_hub_ref(h, 1, "MSFT"), SG_OK);
    wakes_reset();
    assert_int_equal(sg_ticker_hub_update(h, "AAPL", 149.34, 1000), 1);
    assert_int_equal(W.count[0], 1);
    assert_int_equal(W.count[1], 0);
    assert_int_equal(W.count[2], 1);
    struct sg_quote q[4];
    assert_int_equal(sg_ticker_hub_take(h, 1, q, 4), 0);
    for (int w = 0; w < 3; w += 2) {
        memset(q, 0, sizeof q);
        assert_int_equal(sg_ticker_hub_take(h, w, q, 4), 1);
        assert_string_equal(q[0].symbol, "AAPL");
        assert_true(q[0].price == 149.34);
        assert_int_equal(q[0].ts_ms, 1000);
        assert_int_equal(q[0].seq, 1);
        assert_int_equal(sg_ticker_hub_take(h, w, q, 4), 0); /* taken off */
    }
    assert_int_equal(sg_ticker_hub_update(h, "MSFT", 300, 1001), 1);
    assert_int_equal(W.count[1], 1);
    assert_int_equal(sg_ticker_hub_take(h, 0, q, 4), 0);
    assert_int_equal(sg_ticker_hub_take(h, 2, q, 4), 0);
    assert_int_equal(sg_ticker_hub_take(h, 1, q, 4), 1);
    assert_string_equal(q[0].symbol, "MSFT");
    assert_int_equal(q[0].seq, 2); /* the hub's counter, across symbols */
    sg_ticker_hub_free(h);
}

/* Several updates before a take: ONE entry with the newest price, and one
 * wake; the list empty again, the next update wakes again. The wake comes
 * only when a worker's list goes from empty to not empty. */
static void test_hub_conflation_and_wake(void **state)
{
    (void)state;
    struct sg_ticker_hub *h = hub(10, 2);
    assert_int_equal(sg_ticker_hub_ref(h, 1, "AAPL"), SG_OK);
    assert_int_equal(sg_ticker_hub_ref(h, 1, "MSFT"), SG_OK);
    wakes_reset();
    assert_int_equal(sg_ticker_hub_update(h, "AAPL", 1.0, 1), 1);
    assert_int_equal(sg_ticker_hub_update(h, "AAPL", 2.0, 2), 1);
    assert_int_equal(sg_ticker_hub_update(h, "AAPL", 3.0, 3), 1);
    assert_int_equal(W.count[1], 1);
    assert_int_equal(W.total, 1);
    struct sg_quote q[4];
    assert_int_equal(sg_ticker_hub_take(h, 1, q, 4), 1);
    assert_string_equal(q[0].symbol, "AAPL");
    assert_true(q[0].price == 3.0);
    assert_int_equal(q[0].ts_ms, 3);
    assert_int_equal(q[0].seq, 3);

    /* a second symbol while the list is not empty: no second wake */
    wakes_reset();
    assert_int_equal(sg_ticker_hub_update(h, "MSFT", 10.0, 4), 1);
    assert_int_equal(sg_ticker_hub_update(h, "AAPL", 4.0, 5), 1);
    assert_int_equal(sg_ticker_hub_update(h, "MSFT", 11.0, 6), 1);
    assert_int_equal(W.total, 1);
    assert_int_equal(W.order[0], 1);
    memset(q, 0, sizeof q);
    assert_int_equal(sg_ticker_hub_take(h, 1, q, 4), 2);
    /* in the order they were first marked, each with its newest price */
    assert_string_equal(q[0].symbol, "MSFT");
    assert_true(q[0].price == 11.0);
    assert_string_equal(q[1].symbol, "AAPL");
    assert_true(q[1].price == 4.0);
    assert_int_equal(sg_ticker_hub_take(h, 1, q, 4), 0);
    /* emptied: the next update wakes again */
    assert_int_equal(sg_ticker_hub_update(h, "AAPL", 5.0, 7), 1);
    assert_int_equal(W.total, 2);
    sg_ticker_hub_free(h);
}

/* take in batches smaller than the list: every symbol once, in order. */
static void test_hub_take_batches(void **state)
{
    (void)state;
    static const char *const syms[] = {"A", "B", "C", "D", "E"};
    struct sg_ticker_hub *h = hub(10, 1);
    for (size_t i = 0; i < NELEM(syms); i++)
        assert_int_equal(sg_ticker_hub_ref(h, 0, syms[i]), SG_OK);
    for (size_t i = 0; i < NELEM(syms); i++)
        assert_int_equal(sg_ticker_hub_update(h, syms[i], (double)(i + 1), i), 1);
    struct sg_quote q[2];
    assert_int_equal(sg_ticker_hub_take(h, 0, q, 0), 0); /* max 0 takes nothing */
    size_t got = 0, n;
    char seen[8] = {0};
    while ((n = sg_ticker_hub_take(h, 0, q, 2)) > 0) {
        assert_true(n <= 2);
        for (size_t k = 0; k < n; k++) {
            assert_string_equal(q[k].symbol, syms[got + k]);
            assert_true(q[k].price == (double)(got + k + 1));
            seen[got + k] = 1;
        }
        got += n;
        if (n < 2) break;
    }
    assert_int_equal(got, 5);
    assert_int_equal(sg_ticker_hub_take(h, 0, q, 2), 0);
    for (int i = 0; i < 5; i++)
        assert_true(seen[i]);
    sg_ticker_hub_free(h);
}

/* take_new: the symbols that joined since the last call and are still in
 * the set; a symbol that joins again after it was taken is new again;
 * joining wakes worker 0, whoever joins. */
static void test_hub_take_new(void **state)
{
    (void)state;
    struct sg_ticker_hub *h = hub(10, 2);
    assert_string_equal(take_new(h, 8), "");
    assert_int_equal(sg_ticker_hub_ref(h, 1, "AAPL"), SG_OK);
    assert_int_equal(W.count[0], 1);
    assert_int_equal(W.count[1], 0);
    assert_int_equal(sg_ticker_hub_ref(h, 0, "MSFT"), SG_OK);
    assert_int_equal(W.count[0], 2);
    assert_int_equal(sg_ticker_hub_ref(h, 0, "AAPL"), SG_OK); /* already in the set */
    assert_int_equal(W.count[0], 2);
    assert_string_equal(take_new(h, 8), "AAPL,MSFT");
    assert_string_equal(take_new(h, 8), "");

    /* joined and left before the take: skipped */
    assert_int_equal(sg_ticker_hub_ref(h, 1, "IBM"), SG_OK);
    sg_ticker_hub_unref(h, 1, "IBM");
    assert_string_equal(take_new(h, 8), "");
    /* left and came back before the take: once */
    assert_int_equal(sg_ticker_hub_ref(h, 1, "IBM"), SG_OK);
    sg_ticker_hub_unref(h, 1, "IBM");
    assert_int_equal(sg_ticker_hub_ref(h, 0, "IBM"), SG_OK);
    assert_string_equal(take_new(h, 8), "IBM");
    /* left after the take and came back: new again, worker 0 woken */
    wakes_reset();
    sg_ticker_hub_unref(h, 0, "IBM");
    assert_int_equal(sg_ticker_hub_ref(h, 1, "IBM"), SG_OK);
    assert_int_equal(W.count[0], 1);
    assert_string_equal(take_new(h, 8), "IBM");

    /* in batches */
    assert_int_equal(sg_ticker_hub_ref(h, 1, "X1"), SG_OK);
    assert_int_equal(sg_ticker_hub_ref(h, 1, "X2"), SG_OK);
    assert_int_equal(sg_ticker_hub_ref(h, 1, "X3"), SG_OK);
    assert_string_equal(take_new(h, 0), "");
    char all[64] = "";
    for (int i = 0; i < 3; i++) {
        const char *one = take_new(h, 1);
        assert_int_equal(strlen(one), 2);
        assert_null(strstr(all, one));
        strcat(all, one);
    }
    assert_string_equal(take_new(h, 1), "");
    assert_int_equal(strlen(all), 6);
    sg_ticker_hub_free(h);
}

/* The last-value cache: the price outlives the holds; an update for a
 * known symbol nobody holds is kept and wakes nobody. */
static void test_hub_last_value_cache(void **state)
{
    (void)state;
    struct sg_ticker_hub *h = hub(10, 2);
    struct sg_quote q;
    assert_int_equal(sg_ticker_hub_last(h, "AAPL", &q), SG_ENOKEY);
    assert_int_equal(sg_ticker_hub_ref(h, 1, "AAPL"), SG_OK);
    assert_int_equal(sg_ticker_hub_last(h, "AAPL", &q), SG_ENOKEY); /* known, no price yet */
    assert_int_equal(sg_ticker_hub_update(h, "AAPL", 149.34, 5000), 1);
    memset(&q, 0, sizeof q);
    assert_int_equal(sg_ticker_hub_last(h, "AAPL", &q), SG_OK);
    assert_string_equal(q.symbol, "AAPL");
    assert_true(q.price == 149.34);
    assert_int_equal(q.ts_ms, 5000);
    assert_int_equal(q.seq, 1);
    struct sg_quote t[2];
    assert_int_equal(sg_ticker_hub_take(h, 1, t, 2), 1);
    sg_ticker_hub_unref(h, 1, "AAPL");
    assert_int_equal(sg_ticker_hub_interest(h, NULL, 0), 0);
    memset(&q, 0, sizeof q);
    assert_int_equal(sg_ticker_hub_last(h, "AAPL", &q), SG_OK);
    assert_true(q.price == 149.34);
    /* nobody holds it: the price is still kept, nobody woken */
    wakes_reset();
    assert_int_equal(sg_ticker_hub_update(h, "AAPL", 150.0, 6000), 1);
    assert_int_equal(W.total, 0);
    assert_int_equal(sg_ticker_hub_take(h, 1, t, 2), 0);
    assert_int_equal(sg_ticker_hub_last(h, "AAPL", &q), SG_OK);
    assert_true(q.price == 150.0);
    assert_int_equal(q.seq, 2);
    /* a new holder finds it */
    assert_int_equal(sg_ticker_hub_ref(h, 0, "AAPL"), SG_OK);
    assert_int_equal(sg_ticker_hub_last(h, "AAPL", &q), SG_OK);
    assert_true(q.price == 150.0);
    assert_int_equal(sg_ticker_hub_last(h, "aapl", &q), SG_ENOKEY); /* exact */
    sg_ticker_hub_free(h);
}

/* A full table: a new symbol makes room by forgetting the unheld symbol
 * with the oldest price; SG_ETOOMANY when every known one is held. */
static void test_hub_eviction(void **state)
{
    (void)state;
    struct sg_ticker_hub *h = hub(3, 1);
    struct sg_quote q;
    assert_int_equal(sg_ticker_hub_ref(h, 0, "A"), SG_OK);
    assert_int_equal(sg_ticker_hub_ref(h, 0, "B"), SG_OK);
    assert_int_equal(sg_ticker_hub_ref(h, 0, "C"), SG_OK);
    assert_int_equal(sg_ticker_hub_ref(h, 0, "D"), SG_ETOOMANY); /* all three held */
    assert_int_equal(sg_ticker_hub_known(h), 3);
    assert_string_equal(interest(h), "A,B,C");
    assert_string_equal(take_new(h, 8), "A,B,C");
    /* prices in the order C, A, B */
    assert_int_equal(sg_ticker_hub_update(h, "C", 3, 1), 1);
    assert_int_equal(sg_ticker_hub_update(h, "A", 1, 2), 1);
    assert_int_equal(sg_ticker_hub_update(h, "B", 2, 3), 1);
    struct sg_quote t[4];
    assert_int_equal(sg_ticker_hub_take(h, 0, t, 4), 3);
    sg_ticker_hub_unref(h, 0, "A");
    sg_ticker_hub_unref(h, 0, "C");
    /* D takes C's place: the oldest price of the unheld ones */
    assert_int_equal(sg_ticker_hub_ref(h, 0, "D"), SG_OK);
    assert_int_equal(sg_ticker_hub_known(h), 3);
    assert_int_equal(sg_ticker_hub_last(h, "C", &q), SG_ENOKEY);
    assert_int_equal(sg_ticker_hub_last(h, "A", &q), SG_OK);
    assert_int_equal(sg_ticker_hub_last(h, "B", &q), SG_OK);
    assert_string_equal(interest(h), "B,D");
    /* C comes back: A goes (B is held, though its price is newer than A's) */
    assert_string_equal(take_new(h, 8), "D");
    assert_int_equal(sg_ticker_hub_ref(h, 0, "C"), SG_OK);
    assert_int_equal(sg_ticker_hub_last(h, "A", &q), SG_ENOKEY);
    assert_int_equal(sg_ticker_hub_last(h, "C", &q), SG_ENOKEY); /* back without a price */
    assert_string_equal(interest(h), "B,C,D");
    assert_int_equal(sg_ticker_hub_ref(h, 0, "E"), SG_ETOOMANY);
    assert_int_equal(sg_ticker_hub_known(h), 3);
    assert_int_equal(sg_ticker_hub_last(h, "E", &q), SG_ENOKEY);
    assert_int_equal(sg_ticker_hub_update(h, "E", 1, 9), 0); /* not known */
    sg_ticker_hub_free(h);
}

/* A symbol with no price at all goes before one with a price; a symbol
 * still on a list (new, or updated and not yet taken) is not forgotten
 * (the lists point at it) until it has been taken. */
static void test_hub_eviction_lists(void **state)
{
    (void)state;
    struct sg_ticker_hub *h = hub(2, 1);
    struct sg_quote q, t[4];
    assert_int_equal(sg_ticker_hub_ref(h, 0, "A"), SG_OK);
    assert_int_equal(sg_ticker_hub_update(h, "A", 1, 1), 1);
    assert_int_equal(sg_ticker_hub_ref(h, 0, "B"), SG_OK);
    sg_ticker_hub_unref(h, 0, "A"); /* A: unheld, but on the update list and the new list */
    sg_ticker_hub_unref(h, 0, "B"); /* B: unheld, on the new list, no price */
    assert_int_equal(sg_ticker_hub_ref(h, 0, "C"), SG_ETOOMANY);
    assert_string_equal(take_new(h, 8), ""); /* both left: nothing to send, lists cleared */
    /* B (no price) goes first; A is still on worker 0's update list */
    assert_int_equal(sg_ticker_hub_ref(h, 0, "C"), SG_OK);
    assert_int_equal(sg_ticker_hub_known(h), 2);
    assert_int_equal(sg_ticker_hub_last(h, "A", &q), SG_OK);
    assert_string_equal(take_new(h, 8), "C");
    assert_int_equal(sg_ticker_hub_ref(h, 0, "D"), SG_ETOOMANY); /* A listed, C held */
    /* taking A's update (it was marked while held) frees it to go */
    assert_int_equal(sg_ticker_hub_take(h, 0, t, 4), 1);
    assert_string_equal(t[0].symbol, "A");
    assert_int_equal(sg_ticker_hub_ref(h, 0, "D"), SG_OK);
    assert_int_equal(sg_ticker_hub_last(h, "A", &q), SG_ENOKEY);
    assert_string_equal(interest(h), "C,D");
    sg_ticker_hub_free(h);
}

/* Many symbols through a small table: hash chains edited by eviction stay
 * sound (every symbol found while known, the count at the bound). */
static void test_hub_eviction_churn(void **state)
{
    (void)state;
    enum { MAX = 40, ROUNDS = 400 };
    struct sg_ticker_hub *h = hub(MAX, 2);
    char sym[SG_TICKER_SYM_CAP];
    struct sg_quote q, t[64];
    for (int i = 0; i < ROUNDS; i++) {
        snprintf(sym, sizeof sym, "S%d", i);
        int w = i % 2;
        assert_int_equal(sg_ticker_hub_ref(h, w, sym), SG_OK);
        assert_int_equal(sg_ticker_hub_update(h, sym, i + 1.0, (uint64_t)i), 1);
        while (sg_ticker_hub_take(h, w, t, 64) == 64)
            ;
        assert_true(take_new(h, 64) != NULL);
        sg_ticker_hub_unref(h, w, sym);
        assert_true(sg_ticker_hub_known(h) <= MAX);
        assert_int_equal(sg_ticker_hub_last(h, sym, &q), SG_OK);
        assert_true(q.price == i + 1.0);
        /* the newest MAX are all still there, in order of price */
        if (i >= MAX) {
            assert_int_equal(sg_ticker_hub_known(h), MAX);
            snprintf(sym, sizeof sym, "S%d", i - MAX + 1);
            assert_int_equal(sg_ticker_hub_last(h, sym, &q), SG_OK);
            snprintf(sym, sizeof sym, "S%d", i - MAX);
            assert_int_equal(sg_ticker_hub_last(h, sym, &q), SG_ENOKEY);
        }
    }
    assert_int_equal(sg_ticker_hub_interest(h, NULL, 0), 0);
    sg_ticker_hub_free(h);
}

/* Workers across the 64-bit words of the masks: each its own bit. */
static void test_hub_many_workers(void **state)
{
    (void)state;
    static const int ws[] = {0, 1, 63, 64, 127, 128, 200, 255};
    struct sg_ticker_hub *h = hub(4, 256);
    for (size_t i = 0; i < NELEM(ws); i++)
        assert_int_equal(sg_ticker_hub_ref(h, ws[i], "AAPL"), SG_OK);
    assert_int_equal(sg_ticker_hub_ref(h, 65, "MSFT"), SG_OK);
    wakes_reset();
    assert_int_equal(sg_ticker_hub_update(h, "AAPL", 2, 1), 1);
    assert_int_equal(W.total, (long)NELEM(ws));
    for (size_t i = 0; i < NELEM(ws); i++)
        assert_int_equal(W.count[ws[i]], 1);
    struct sg_quote t[2];
    assert_int_equal(sg_ticker_hub_take(h, 65, t, 2), 0);
    assert_int_equal(sg_ticker_hub_take(h, 2, t, 2), 0);
    for (size_t i = 0; i < NELEM(ws); i++) {
        assert_int_equal(sg_ticker_hub_take(h, ws[i], t, 2), 1);
        sg_ticker_hub_unref(h, ws[i], "AAPL");
        assert_int_equal(sg_ticker_hub_interest(h, NULL, 0), i + 1 < NELEM(ws) ? 2 : 1);
    }
    assert_string_equal(interest(h), "MSFT");
    sg_ticker_hub_free(h);
}

/* No wake function: the same bookkeeping, nobody called. */
static void test_hub_no_wake(void **state)
{
    (void)state;
    struct sg_ticker_hub *h = sg_ticker_hub_new(4, 2, NULL, NULL);
    assert_non_null(h);
    assert_int_equal(sg_ticker_hub_ref(h, 1, "AAPL"), SG_OK);
    assert_int_equal(sg_ticker_hub_update(h, "AAPL", 2, 1), 1);
    struct sg_quote t[2];
    assert_int_equal(sg_ticker_hub_take(h, 1, t, 2), 1);
    assert_string_equal(take_new(h, 8), "AAPL");
    sg_ticker_hub_free(h);
}

/* ---- the multi-thread smoke run: each thread is a worker doing refs,
 * updates, takes and unrefs on a shared set of symbols; worker 0 also
 * takes the new list. Afterwards the counts must add up. */

#define MT_THREADS 4
#define MT_SYMS 16
#define MT_ITERS 3000

struct mt_arg {
    struct sg_ticker_hub *h;
    int w;
    long took, updated;
    int bad;
};

static const char *mt_sym(int i)
{
    static const char *const syms[MT_SYMS] = {"A", "B", "C", "D", "E", "F", "G", "H",
                                              "I", "J", "K", "L", "M", "N", "O", "P"};
    return syms[((i % MT_SYMS) + MT_SYMS) % MT_SYMS];
}

static void *mt_run(void *p)
{
    struct mt_arg *a = p;
    struct sg_quote q[8];
    char fresh[8][SG_TICKER_SYM_CAP];
    for (int i = 0; i < MT_ITERS; i++) {
        int k = i * (a->w + 3);
        if (sg_ticker_hub_ref(a->h, a->w, mt_sym(k)) != SG_OK) a->bad++;
        a->updated += sg_ticker_hub_update(a->h, mt_sym(k + 5), (double)(i + 1), (uint64_t)i);
        size_t n = sg_ticker_hub_take(a->h, a->w, q, 8);
        for (size_t j = 0; j < n; j++)
            if (!(q[j].price > 0) || !sg_ticker_symbol_valid(q[j].symbol, strlen(q[j].symbol)))
                a->bad++;
        a->took += (long)n;
        if (a->w == 0) sg_ticker_hub_take_new(a->h, fresh, 8);
        if (i % 3) sg_ticker_hub_unref(a->h, a->w, mt_sym(k + 7));
        struct sg_quote last;
        (void)sg_ticker_hub_last(a->h, mt_sym(k + 1), &last);
        (void)sg_ticker_hub_interest(a->h, NULL, 0);
    }
    for (int i = 0; i < MT_SYMS; i++)
        sg_ticker_hub_unref(a->h, a->w, mt_sym(i));
    return NULL;
}

static void test_hub_threads(void **state)
{
    (void)state;
    struct sg_ticker_hub *h = hub(64, MT_THREADS);
    pthread_t th[MT_THREADS];
    struct mt_arg args[MT_THREADS];
    for (int w = 0; w < MT_THREADS; w++) {
        args[w] = (struct mt_arg){h, w, 0, 0, 0};
        assert_int_equal(pthread_create(&th[w], NULL, mt_run, &args[w]), 0);
    }
    for (int w = 0; w < MT_THREADS; w++)
        assert_int_equal(pthread_join(th[w], NULL), 0);
    for (int w = 0; w < MT_THREADS; w++)
        assert_int_equal(args[w].bad, 0);
    /* every hold was released: the set is empty, the symbols still known */
    assert_int_equal(sg_ticker_hub_interest(h, NULL, 0), 0);
    assert_int_equal(sg_ticker_hub_known(h), MT_SYMS);
    /* what is left on the lists is at most one entry per symbol */
    struct sg_quote q[64];
    for (int w = 0; w < MT_THREADS; w++)
        assert_true(sg_ticker_hub_take(h, w, q, 64) <= MT_SYMS);
    char fresh[64][SG_TICKER_SYM_CAP];
    assert_int_equal(sg_ticker_hub_take_new(h, fresh, 64), 0); /* none held */
    /* every symbol got a price; the newest carries the update counter,
     * which counted every accepted update once */
    uint64_t maxseq = 0;
    long updated = 0;
    for (int w = 0; w < MT_THREADS; w++)
        updated += args[w].updated;
    for (int i = 0; i < MT_SYMS; i++) {
        struct sg_quote last;
        assert_int_equal(sg_ticker_hub_last(h, mt_sym(i), &last), SG_OK);
        assert_true(last.price > 0);
        if (last.seq > maxseq) maxseq = last.seq;
    }
    assert_int_equal(maxseq, (uint64_t)updated);
    assert_true(updated > MT_ITERS); /* most were for known symbols */
    /* it works on as before */
    assert_int_equal(sg_ticker_hub_ref(h, 1, "A"), SG_OK);
    assert_string_equal(interest(h), "A");
    sg_ticker_hub_free(h);
}

int main(void)
{
    pthread_mutex_init(&W.mu, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_symbol_valid_table),
        cmocka_unit_test(test_symbol_valid_every_byte),
        cmocka_unit_test(test_quote_dest_table),
        cmocka_unit_test(test_parse_result_table),
        cmocka_unit_test(test_parse_result_scalars),
        cmocka_unit_test(test_parse_result_every_prefix),
        cmocka_unit_test(test_parse_result_long),
        cmocka_unit_test(test_work_json),
        cmocka_unit_test(test_quote_body),
        cmocka_unit_test(test_hub_new_bad_args),
        cmocka_unit_test(test_hub_ref_unref),
        cmocka_unit_test(test_hub_interest_three_workers),
        cmocka_unit_test(test_hub_update_unknown),
        cmocka_unit_test(test_hub_update_marks_holders),
        cmocka_unit_test(test_hub_conflation_and_wake),
        cmocka_unit_test(test_hub_take_batches),
        cmocka_unit_test(test_hub_take_new),
        cmocka_unit_test(test_hub_last_value_cache),
        cmocka_unit_test(test_hub_eviction),
        cmocka_unit_test(test_hub_eviction_lists),
        cmocka_unit_test(test_hub_eviction_churn),
        cmocka_unit_test(test_hub_many_workers),
        cmocka_unit_test(test_hub_no_wake),
        cmocka_unit_test(test_hub_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
