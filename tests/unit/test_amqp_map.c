/* test_amqp_map.c - STOMP SEND headers -> AMQP basic properties -> MESSAGE
 * header lines: every mapped header, the headers table, first-wins, the
 * excluded headers, strict priority/timestamp, the 128-entry bound, every
 * table value kind, and a byte-exact round trip through the real decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <amqp.h>

#include "amqp_map.h"
#include "buf.h"
#include "error.h"
#include "stomp_frame.h"

struct kv {
    const char *k;
    const char *v;
};

/* A SEND frame whose keys and values are views into one packed buffer with
 * no NULs between them, like the decoder's (so a mapping that relied on NUL
 * termination would read the next header into the value). */
struct tframe {
    struct sg_stomp_frame f;
    char store[65536];
};

static struct tframe *tf_new(const struct kv *h, size_t n)
{
    struct tframe *t = calloc(1, sizeof *t);
    assert_non_null(t);
    size_t off = 0;
    t->f.cmd = SG_STOMP_SEND;
    for (size_t i = 0; i < n; i++) {
        size_t kl = strlen(h[i].k), vl = strlen(h[i].v);
        assert_true(off + kl + vl <= sizeof t->store);
        assert_true(t->f.num_headers < SG_STOMP_MAX_HEADERS_CAP);
        memcpy(t->store + off, h[i].k, kl);
        t->f.headers[t->f.num_headers].key = t->store + off;
        t->f.headers[t->f.num_headers].key_len = kl;
        off += kl;
        memcpy(t->store + off, h[i].v, vl);
        t->f.headers[t->f.num_headers].value = t->store + off;
        t->f.headers[t->f.num_headers].value_len = vl;
        off += vl;
        t->f.num_headers++;
    }
    memset(t->store + off, '#', 64 < sizeof t->store - off ? 64 : sizeof t->store - off);
    return t;
}

static void assert_bytes(amqp_bytes_t b, const char *want)
{
    size_t wl = strlen(want);
    if (b.len != wl || (wl && memcmp(b.bytes, want, wl) != 0))
        fail_msg("got \"%.*s\" (%zu), want \"%s\"", (int)b.len, (const char *)b.bytes, b.len, want);
}

static void assert_entry(const amqp_table_entry_t *e, const char *key, const char *value)
{
    assert_bytes(e->key, key);
    assert_int_equal(e->value.kind, AMQP_FIELD_KIND_UTF8);
    assert_bytes(e->value.value.bytes, value);
}

/* ------------------------------------------------------------------ */
/* SEND -> props */

static void test_send_all_props(void **state)
{
    (void)state;
    static const struct kv h[] = {
        {"destination", "/queue/a"},
        {"content-type", "application/json"},
        {"content-encoding", "gzip"},
        {"persistent", "true"},
        {"priority", "7"},
        {"correlation-id", "c-1"},
        {"reply-to", "/queue/replies"},
        {"expiration", "60000"},
        {"amqp-message-id", "m-1"},
        {"type", "quote"},
        {"app-id", "ticker"},
        {"user-id", "guest"},
        {"timestamp", "1700000000"},
        {"x-custom", "v1"},
        {"symbol", "AAPL"},
    };
    struct tframe *t = tf_new(h, sizeof h / sizeof h[0]);
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    amqp_basic_properties_t p;
    const char *why = "unset";
    assert_int_equal(sg_map_send_to_props(&t->f, &pool, &p, &why), SG_OK);
    assert_null(why);
    assert_int_equal(p._flags, AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG |
                                   AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                                   AMQP_BASIC_PRIORITY_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
                                   AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_EXPIRATION_FLAG |
                                   AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG |
                                   AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_USER_ID_FLAG |
                                   AMQP_BASIC_APP_ID_FLAG);
    assert_bytes(p.content_type, "application/json");
    assert_bytes(p.content_encoding, "gzip");
    assert_int_equal(p.delivery_mode, 2);
    assert_int_equal(p.priority, 7);
    assert_bytes(p.correlation_id, "c-1");
    assert_bytes(p.reply_to, "/queue/replies");
    assert_bytes(p.expiration, "60000");
    assert_bytes(p.message_id, "m-1");
    assert_bytes(p.type, "quote");
    assert_bytes(p.app_id, "ticker");
    assert_bytes(p.user_id, "guest");
    assert_int_equal(p.timestamp, 1700000000);
    assert_int_equal(p.headers.num_entries, 2);
    assert_entry(&p.headers.entries[0], "x-custom", "v1");
    assert_entry(&p.headers.entries[1], "symbol", "AAPL");
    /* views into the frame, not copies */
    assert_ptr_equal(p.content_type.bytes, t->f.headers[1].value);
    empty_amqp_pool(&pool);
    free(t);
}

static void test_send_nothing(void **state)
{
    (void)state;
    static const struct kv h[] = {{"destination", "/queue/a"}, {"receipt", "r1"}};
    struct tframe *t = tf_new(h, 2);
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    amqp_basic_properties_t p;
    memset(&p, 0x5A, sizeof p);
    assert_int_equal(sg_map_send_to_props(&t->f, &pool, &p, NULL), SG_OK);
    assert_int_equal(p._flags, 0);
    assert_int_equal(p.headers.num_entries, 0);
    assert_null(p.headers.entries);
    empty_amqp_pool(&pool);
    free(t);
}

static void test_persistent(void **state)
{
    (void)state;
    static const struct {
        const char *v;
        int set;
    } cases[] = {{"true", 1}, {"false", 0}, {"TRUE", 0}, {"1", 0},
                 {"", 0},     {"true ", 0}, {"truex", 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct kv h[] = {{"persistent", cases[i].v}};
        struct tframe *t = tf_new(h, 1);
        amqp_pool_t pool;
        init_amqp_pool(&pool, 4096);
        amqp_basic_properties_t p;
        assert_int_equal(sg_map_send_to_props(&t->f, &pool, &p, NULL), SG_OK);
        if (cases[i].set) {
            assert_int_equal(p._flags, AMQP_BASIC_DELIVERY_MODE_FLAG);
            assert_int_equal(p.delivery_mode, 2);
        } else {
            /* not set at all, and "persistent" does not leak into the table */
            if (p._flags != 0) fail_msg("persistent:%s set flags %x", cases[i].v, p._flags);
        }
        empty_amqp_pool(&pool);
        free(t);
    }
}

struct num_case {
    const char *key;
    const char *v;
    int ok;
    uint64_t want;
};

static const struct num_case num_cases[] = {
    {"priority", "0", 1, 0},
    {"priority", "9", 1, 9},
    {"priority", "255", 1, 255},
    {"priority", "007", 1, 7},
    {"priority", "256", 0, 0},
    {"priority", "1000", 0, 0},
    {"priority", "-1", 0, 0},
    {"priority", "+1", 0, 0},
    {"priority", " 1", 0, 0},
    {"priority", "1 ", 0, 0},
    {"priority", "", 0, 0},
    {"priority", "abc", 0, 0},
    {"priority", "5a", 0, 0},
    {"priority", "0x5", 0, 0},
    {"priority", "99999999999999999999999", 0, 0},
    {"timestamp", "0", 1, 0},
    {"timestamp", "1700000000", 1, 1700000000},
    {"timestamp", "18446744073709551615", 1, UINT64_MAX},
    {"timestamp", "18446744073709551616", 0, 0},
    {"timestamp", "99999999999999999999", 0, 0},
    {"timestamp", "1.5", 0, 0},
    {"timestamp", "-1", 0, 0},
    {"timestamp", "1e9", 0, 0},
    {"timestamp", "", 0, 0},
    {"timestamp", "2023-11-14T22:13:20Z", 0, 0},
};

static void test_numbers(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof num_cases / sizeof num_cases[0]; i++) {
        const struct num_case *c = &num_cases[i];
        struct kv h[] = {{"content-type", "text/plain"}, {c->key, c->v}, {"x", "y"}};
        struct tframe *t = tf_new(h, 3);
        amqp_pool_t pool;
        init_amqp_pool(&pool, 4096);
        amqp_basic_properties_t p;
        const char *why = NULL;
        int rc = sg_map_send_to_props(&t->f, &pool, &p, &why);
        int is_prio = strcmp(c->key, "priority") == 0;
        if (c->ok) {
            if (rc != SG_OK) fail_msg("%s:%s: rc %d (%s)", c->key, c->v, rc, why);
            if (is_prio) {
                assert_true(p._flags & AMQP_BASIC_PRIORITY_FLAG);
                assert_int_equal(p.priority, c->want);
            } else {
                assert_true(p._flags & AMQP_BASIC_TIMESTAMP_FLAG);
                assert_true(p.timestamp == c->want);
            }
            assert_int_equal(p.headers.num_entries, 1);
        } else {
            if (rc != SG_ESTOMP) fail_msg("%s:%s: rc %d, want SG_ESTOMP", c->key, c->v, rc);
            assert_non_null(why);
            assert_non_null(strstr(why, c->key));
            assert_int_equal(p._flags, 0); /* zeroed on error */
        }
        empty_amqp_pool(&pool);
        free(t);
    }
}

static void test_first_wins(void **state)
{
    (void)state;
    static const struct kv h[] = {
        {"priority", "3"},      {"priority", "not-a-number"}, /* later one not even parsed */
        {"content-type", "a"},  {"content-type", "b"},
        {"foo", "1"},           {"bar", "x"},
        {"foo", "2"},           {"persistent", "false"},
        {"persistent", "true"}, {"timestamp", "5"},
        {"timestamp", "junk"},  {"bar", "y"},
    };
    struct tframe *t = tf_new(h, sizeof h / sizeof h[0]);
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    amqp_basic_properties_t p;
    assert_int_equal(sg_map_send_to_props(&t->f, &pool, &p, NULL), SG_OK);
    assert_int_equal(p.priority, 3);
    assert_bytes(p.content_type, "a");
    assert_false(p._flags & AMQP_BASIC_DELIVERY_MODE_FLAG);
    assert_int_equal(p.timestamp, 5);
    assert_int_equal(p.headers.num_entries, 2);
    assert_entry(&p.headers.entries[0], "foo", "1");
    assert_entry(&p.headers.entries[1], "bar", "x");
    empty_amqp_pool(&pool);
    free(t);
}

static void test_excluded(void **state)
{
    (void)state;
    static const struct kv h[] = {
        {"destination", "/queue/a"},
        {"receipt", "r-1"},
        {"transaction", "tx1"},
        {"content-length", "5"},
        {"persistent", "true"},
        {"ack", "client"},
        {"id", "sub-0"},
        {"subscription", "s"},
        {"message-id", "forged"},
        {"redelivered", "true"},
        {"keep", "me"},
        {"", "empty-key"},
        {"Destination", "case"}, /* keys are case-sensitive: this one is custom */
    };
    struct tframe *t = tf_new(h, sizeof h / sizeof h[0]);
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    amqp_basic_properties_t p;
    assert_int_equal(sg_map_send_to_props(&t->f, &pool, &p, NULL), SG_OK);
    assert_int_equal(p._flags, AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG);
    assert_int_equal(p.headers.num_entries, 2);
    assert_entry(&p.headers.entries[0], "keep", "me");
    assert_entry(&p.headers.entries[1], "Destination", "case");
    empty_amqp_pool(&pool);
    free(t);
}

static void test_too_many(void **state)
{
    (void)state;
    static char names[140][8];
    static struct kv h[160];
    for (int i = 0; i < 140; i++)
        snprintf(names[i], sizeof names[i], "h%03d", i);
    for (int ncustom = 127; ncustom <= 130; ncustom++) {
        size_t n = 0;
        /* mapped, excluded and repeated headers do not count */
        h[n++] = (struct kv){"destination", "/queue/a"};
        h[n++] = (struct kv){"content-type", "t"};
        h[n++] = (struct kv){"receipt", "r"};
        for (int i = 0; i < ncustom; i++)
            h[n++] = (struct kv){names[i], "v"};
        h[n++] = (struct kv){names[0], "again"};
        h[n++] = (struct kv){"priority", "1"};
        struct tframe *t = tf_new(h, n);
        amqp_pool_t pool;
        init_amqp_pool(&pool, 4096);
        amqp_basic_properties_t p;
        const char *why = NULL;
        int rc = sg_map_send_to_props(&t->f, &pool, &p, &why);
        if (ncustom <= 128) {
            assert_int_equal(rc, SG_OK);
            assert_int_equal(p.headers.num_entries, ncustom);
            assert_entry(&p.headers.entries[0], "h000", "v");
            assert_entry(&p.headers.entries[ncustom - 1], names[ncustom - 1], "v");
        } else {
            assert_int_equal(rc, SG_ETOOMANY);
            assert_non_null(why);
            assert_int_equal(p._flags, 0);
            assert_int_equal(p.headers.num_entries, 0);
        }
        empty_amqp_pool(&pool);
        free(t);
    }
}

static void test_shortstr_limits(void **state)
{
    (void)state;
    char v255[256], v256[257], big[1001];
    memset(v255, 'a', 255);
    v255[255] = '\0';
    memset(v256, 'a', 256);
    v256[256] = '\0';
    memset(big, 'b', 1000);
    big[1000] = '\0';
    static const char *const props[] = {"content-type", "content-encoding", "correlation-id",
                                        "reply-to",     "expiration",       "amqp-message-id",
                                        "type",         "app-id",           "user-id"};
    for (size_t i = 0; i < sizeof props / sizeof props[0]; i++) {
        for (int over = 0; over < 2; over++) {
            struct kv h[] = {{props[i], over ? v256 : v255}};
            struct tframe *t = tf_new(h, 1);
            amqp_pool_t pool;
            init_amqp_pool(&pool, 4096);
            amqp_basic_properties_t p;
            const char *why = NULL;
            int rc = sg_map_send_to_props(&t->f, &pool, &p, &why);
            if (rc != (over ? SG_ESTOMP : SG_OK)) fail_msg("%s over=%d: rc %d", props[i], over, rc);
            empty_amqp_pool(&pool);
            free(t);
        }
    }
    /* custom: the key is a shortstr, the value a longstr */
    struct kv h1[] = {{v255, big}};
    struct kv h2[] = {{v256, "v"}};
    struct tframe *t1 = tf_new(h1, 1), *t2 = tf_new(h2, 1);
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    amqp_basic_properties_t p;
    const char *why = NULL;
    assert_int_equal(sg_map_send_to_props(&t1->f, &pool, &p, &why), SG_OK);
    assert_int_equal(p.headers.entries[0].value.value.bytes.len, 1000);
    assert_int_equal(sg_map_send_to_props(&t2->f, &pool, &p, &why), SG_ESTOMP);
    assert_non_null(why);
    empty_amqp_pool(&pool);
    free(t1);
    free(t2);
}

/* ------------------------------------------------------------------ */
/* props -> header lines */

static void expect_headers(const amqp_basic_properties_t *p, int version, const char *want)
{
    struct sg_buf out;
    sg_buf_init(&out, 0);
    assert_int_equal(sg_buf_append_str(&out, "MESSAGE\n"), SG_OK);
    int rc = sg_map_props_to_headers(p, version, &out);
    if (rc != SG_OK) fail_msg("v%d: rc %d", version, rc);
    size_t wl = strlen(want);
    if (out.len - 8 != wl || memcmp(out.data + 8, want, wl) != 0)
        fail_msg("v%d:\n got: [%.*s]\nwant: [%s]", version, (int)(out.len - 8),
                 (const char *)out.data + 8, want);
    sg_buf_reset(&out);
}

static amqp_bytes_t b(const char *s)
{
    return amqp_cstring_bytes(s);
}

static void test_props_order(void **state)
{
    (void)state;
    amqp_table_entry_t e[1];
    e[0].key = b("x-last");
    e[0].value.kind = AMQP_FIELD_KIND_UTF8;
    e[0].value.value.bytes = b("z");
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = (amqp_flags_t)~0u;
    /* filled in reverse of the emit order */
    p.headers.num_entries = 1;
    p.headers.entries = e;
    p.timestamp = 42;
    p.user_id = b("u");
    p.app_id = b("a");
    p.type = b("t");
    p.message_id = b("m");
    p.expiration = b("1000");
    p.reply_to = b("/temp-queue/r");
    p.correlation_id = b("c");
    p.priority = 0;
    p.delivery_mode = 2;
    p.content_encoding = b("utf-8");
    p.content_type = b("text/plain");
    p.cluster_id = b("never");
    expect_headers(&p, 12,
                   "content-type:text/plain\n"
                   "content-encoding:utf-8\n"
                   "persistent:true\n"
                   "priority:0\n"
                   "correlation-id:c\n"
                   "reply-to:/temp-queue/r\n"
                   "expiration:1000\n"
                   "amqp-message-id:m\n"
                   "type:t\n"
                   "app-id:a\n"
                   "user-id:u\n"
                   "timestamp:42\n"
                   "x-last:z\n");
    /* delivery_mode 1: no persistent header */
    p.delivery_mode = 1;
    p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_PRIORITY_FLAG;
    p.priority = 9;
    expect_headers(&p, 12, "priority:9\n");
    /* fields without their flag are not emitted */
    p._flags = 0;
    p.delivery_mode = 2;
    expect_headers(&p, 12, "");
    p._flags = AMQP_BASIC_HEADERS_FLAG;
    expect_headers(&p, 12, "x-last:z\n");
}

static void test_table_kinds(void **state)
{
    (void)state;
    amqp_table_entry_t inner_e = {b("k"), {AMQP_FIELD_KIND_UTF8, {.bytes = {1, "v"}}}};
    amqp_field_value_t arr_v = {AMQP_FIELD_KIND_I32, {.i32 = 1}};
    amqp_table_entry_t e[] = {
        {b("s"), {AMQP_FIELD_KIND_UTF8, {.bytes = {5, "hello"}}}},
        {b("bin"), {AMQP_FIELD_KIND_BYTES, {.bytes = {3, "a b"}}}},
        {b("i8"), {AMQP_FIELD_KIND_I8, {.i8 = -128}}},
        {b("u8"), {AMQP_FIELD_KIND_U8, {.u8 = 255}}},
        {b("i16"), {AMQP_FIELD_KIND_I16, {.i16 = -32768}}},
        {b("u16"), {AMQP_FIELD_KIND_U16, {.u16 = 65535}}},
        {b("i32"), {AMQP_FIELD_KIND_I32, {.i32 = INT32_MIN}}},
        {b("u32"), {AMQP_FIELD_KIND_U32, {.u32 = UINT32_MAX}}},
        {b("i64"), {AMQP_FIELD_KIND_I64, {.i64 = INT64_MIN}}},
        {b("u64"), {AMQP_FIELD_KIND_U64, {.u64 = UINT64_MAX}}},
        {b("ts"), {AMQP_FIELD_KIND_TIMESTAMP, {.u64 = 1700000000}}},
        {b("yes"), {AMQP_FIELD_KIND_BOOLEAN, {.boolean = 1}}},
        {b("no"), {AMQP_FIELD_KIND_BOOLEAN, {.boolean = 0}}},
        {b("f32"), {AMQP_FIELD_KIND_F32, {.f32 = 1.1f}}},
        {b("f64"), {AMQP_FIELD_KIND_F64, {.f64 = 0.1}}},
        {b("f64i"), {AMQP_FIELD_KIND_F64, {.f64 = 149.5}}},
        {b("dec"), {AMQP_FIELD_KIND_DECIMAL, {.decimal = {2, 14934}}}},
        {b("tab"), {AMQP_FIELD_KIND_TABLE, {.table = {1, &inner_e}}}},
        {b("arr"), {AMQP_FIELD_KIND_ARRAY, {.array = {1, &arr_v}}}},
        {b("void"), {AMQP_FIELD_KIND_VOID, {.u64 = 0}}},
        {b("empty"), {AMQP_FIELD_KIND_UTF8, {.bytes = {0, NULL}}}},
        {b("last"), {AMQP_FIELD_KIND_I32, {.i32 = 0}}},
    };
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_HEADERS_FLAG;
    p.headers.num_entries = (int)(sizeof e / sizeof e[0]);
    p.headers.entries = e;
    expect_headers(&p, 12,
                   "s:hello\n"
                   "bin:a b\n"
                   "i8:-128\n"
                   "u8:255\n"
                   "i16:-32768\n"
                   "u16:65535\n"
                   "i32:-2147483648\n"
                   "u32:4294967295\n"
                   "i64:-9223372036854775808\n"
                   "u64:18446744073709551615\n"
                   "ts:1700000000\n"
                   "yes:true\n"
                   "no:false\n"
                   "f32:1.1000000238418579\n"
                   "f64:0.10000000000000001\n"
                   "f64i:149.5\n"
                   "empty:\n"
                   "last:0\n");
}

static void test_reserved_and_unwritable(void **state)
{
    (void)state;
    amqp_table_entry_t e[] = {
        {b("destination"), {AMQP_FIELD_KIND_UTF8, {.bytes = {2, "/x"}}}},
        {b("message-id"), {AMQP_FIELD_KIND_UTF8, {.bytes = {1, "m"}}}},
        {b("subscription"), {AMQP_FIELD_KIND_UTF8, {.bytes = {1, "s"}}}},
        {b("content-length"), {AMQP_FIELD_KIND_I32, {.i32 = 99}}},
        {b("redelivered"), {AMQP_FIELD_KIND_BOOLEAN, {.boolean = 1}}},
        {b("ack"), {AMQP_FIELD_KIND_UTF8, {.bytes = {1, "a"}}}},
        {b("nl"), {AMQP_FIELD_KIND_UTF8, {.bytes = {3, "a\nb"}}}},
        {b("k:c"), {AMQP_FIELD_KIND_UTF8, {.bytes = {3, "a:b"}}}},
        {b("nul"), {AMQP_FIELD_KIND_BYTES, {.bytes = {3, "a\0b"}}}},
        {b("cr"), {AMQP_FIELD_KIND_UTF8, {.bytes = {2, "a\r"}}}},
        {{0, NULL}, {AMQP_FIELD_KIND_UTF8, {.bytes = {1, "e"}}}},
        {b("ok"), {AMQP_FIELD_KIND_UTF8, {.bytes = {1, "1"}}}},
    };
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    p.content_type = b("bad\ntype");
    p.headers.num_entries = (int)(sizeof e / sizeof e[0]);
    p.headers.entries = e;
    /* 1.0: no escaping: LF and key ':' cannot be written; an empty key can */
    expect_headers(&p, 10, ":e\nok:1\n");
    /* 1.1: escaped LF and ':'; CR still unwritable; empty key not allowed */
    expect_headers(&p, 11, "content-type:bad\\ntype\nnl:a\\nb\nk\\cc:a\\cb\nok:1\n");
    /* 1.2: CR escaped too */
    expect_headers(&p, 12, "content-type:bad\\ntype\nnl:a\\nb\nk\\cc:a\\cb\ncr:a\\r\nok:1\n");
}

static void test_bounded(void **state)
{
    (void)state;
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_TYPE_FLAG;
    p.content_type = b("text/plain");
    p.type = b("a-type-that-does-not-fit");
    struct sg_buf out;
    sg_buf_init(&out, 40);
    assert_int_equal(sg_buf_append_str(&out, "MESSAGE\n"), SG_OK);
    assert_int_equal(sg_map_props_to_headers(&p, 12, &out), SG_ETOOBIG);
    /* the content-type line that fitted is rolled back too */
    assert_int_equal(out.len, 8);
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG;
    assert_int_equal(sg_map_props_to_headers(&p, 12, &out), SG_OK);
    assert_int_equal(out.len, 8 + strlen("content-type:text/plain\n"));
    sg_buf_reset(&out);
}

/* SEND bytes -> real decoder -> props -> MESSAGE header lines, byte-exact,
 * for each STOMP version (escaping differs). */
static void test_round_trip(void **state)
{
    (void)state;
    static const struct {
        int version;
        const char *send;
        const char *want;
    } cases[] = {
        {12,
         "SEND\n"
         "destination:/queue/stocks.work\n"
         "x-first:1\n"
         "receipt:77\n"
         "timestamp:1700000000\n"
         "content-type:application/json\n"
         "persistent:true\n"
         "user-id:guest\n"
         "app-id:ticker\n"
         "type:work\n"
         "amqp-message-id:m-42\n"
         "expiration:5000\n"
         "reply-to:/temp-queue/r1\n"
         "correlation-id:abc\n"
         "priority:4\n"
         "content-encoding:utf-8\n"
         "message-id:forged\n"
         "x-colon:a\\cb\\\\c\\r\n"
         "x-first:2\n"
         "subscription:forged\n"
         "content-length:2\n"
         "\n"
         "{}\0",
         "content-type:application/json\n"
         "content-encoding:utf-8\n"
         "persistent:true\n"
         "priority:4\n"
         "correlation-id:abc\n"
         "reply-to:/temp-queue/r1\n"
         "expiration:5000\n"
         "amqp-message-id:m-42\n"
         "type:work\n"
         "app-id:ticker\n"
         "user-id:guest\n"
         "timestamp:1700000000\n"
         "x-first:1\n"
         "x-colon:a\\cb\\\\c\\r\n"},
        {11,
         "SEND\n"
         "destination:/topic/t\n"
         "x-nl:a\\nb\n"
         "persistent:false\n"
         "content-type:text/plain\n"
         "\n"
         "hi\0",
         "content-type:text/plain\n"
         "x-nl:a\\nb\n"},
        {10,
         "SEND\n"
         "destination:/topic/t\n"
         "x-raw:a\\nb:c\n"
         "priority:0\n"
         "\n"
         "\0",
         "priority:0\n"
         "x-raw:a\\nb:c\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *s = cases[i].send;
        size_t len = strlen(s) + 1;
        /* the frame ends at the NUL strlen stopped at */
        struct sg_stomp_dec d;
        struct sg_stomp_event ev;
        sg_stomp_dec_init(&d, NULL);
        d.version = cases[i].version;
        ssize_t n = sg_stomp_decode(&d, (const uint8_t *)s, len, &ev);
        if (n < 0) fail_msg("case %zu: decode: %s", i, d.error);
        assert_int_equal(ev.type, SG_STOMP_EV_FRAME);
        amqp_pool_t pool;
        init_amqp_pool(&pool, 4096);
        amqp_basic_properties_t p;
        const char *why = NULL;
        int rc = sg_map_send_to_props(ev.frame, &pool, &p, &why);
        if (rc != SG_OK) fail_msg("case %zu: %s", i, why);
        expect_headers(&p, cases[i].version, cases[i].want);
        empty_amqp_pool(&pool);
        sg_stomp_dec_reset(&d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_all_props),
        cmocka_unit_test(test_send_nothing),
        cmocka_unit_test(test_persistent),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_first_wins),
        cmocka_unit_test(test_excluded),
        cmocka_unit_test(test_too_many),
        cmocka_unit_test(test_shortstr_limits),
        cmocka_unit_test(test_props_order),
        cmocka_unit_test(test_table_kinds),
        cmocka_unit_test(test_reserved_and_unwritable),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
