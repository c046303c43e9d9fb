/* test_msg_encode.c - AMQP delivery -> STOMP MESSAGE parts (msg_encode.h).
 *
 * sg_msg_destination: the default exchange, amq.topic and any other
 * exchange, exact fits and truncation (SG_ETOOBIG, still NUL-terminated).
 * Frames: head + shared + body + NUL, assembled as relay_sub.c and
 * relay_fanout.c do, for STOMP 1.0, 1.1 and 1.2, are decoded back with the
 * project's own decoder (stomp_frame.h), fed whole, split at every
 * boundary and one byte at a time; the decoded headers must be exactly the
 * expected list (order included): subscription, ack only when given,
 * destination, message-id, redelivered, the AMQP properties mapped back
 * (amqp_map.h), content-length. Values with ':' '\n' '\\' are escaped per
 * version (1.0 writes ':' raw and cannot carry '\n': the head refuses it,
 * a property with it is skipped); a body with NULs survives through
 * content-length; a bounded buffer gives SG_ETOOBIG. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <amqp.h>

#include "buf.h"
#include "error.h"
#include "msg_encode.h"
#include "stomp_frame.h"

/* ------------------------------------------------------------------ */
/* sg_msg_destination */

static void test_destination_rows(void **state)
{
    (void)state;
    static const struct {
        const char *ex, *key, *want;
    } rows[] = {
        {"", "orders", "/queue/orders"},
        {"", "", "/queue/"},
        {"amq.topic", "stocks.nyse.ibm", "/topic/stocks.nyse.ibm"},
        {"amq.topic", "", "/topic/"},
        {"amq.direct", "k", "/exchange/amq.direct/k"},
        {"ex", "", "/exchange/ex/"},
        {"ex", "a/b", "/exchange/ex/a/b"},
        {"amq.topicx", "k", "/exchange/amq.topicx/k"}, /* only amq.topic itself */
        {"amq.topi", "k", "/exchange/amq.topi/k"},
        {"AMQ.TOPIC", "k", "/exchange/AMQ.TOPIC/k"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char out[600];
        memset(out, 'x', sizeof out);
        assert_int_equal(sg_msg_destination(rows[i].ex, rows[i].key, out, sizeof out), SG_OK);
        assert_string_equal(out, rows[i].want);
        /* exactly the room needed (text + NUL) fits */
        size_t need = strlen(rows[i].want) + 1;
        memset(out, 'x', sizeof out);
        assert_int_equal(sg_msg_destination(rows[i].ex, rows[i].key, out, need), SG_OK);
        assert_string_equal(out, rows[i].want);
        /* one byte less: truncated, NUL-terminated, SG_ETOOBIG */
        memset(out, 'x', sizeof out);
        assert_int_equal(sg_msg_destination(rows[i].ex, rows[i].key, out, need - 1), SG_ETOOBIG);
        assert_int_equal(strlen(out), need - 2);
        assert_memory_equal(out, rows[i].want, need - 2);
        assert_int_equal(out[need - 1], 'x'); /* nothing written past cap */
    }
}

static void test_destination_truncation(void **state)
{
    (void)state;
    /* the longest names AMQP allows (255 bytes each) fit the relay's 600 */
    char ex[256], key[256], out[600];
    memset(ex, 'e', 255);
    ex[255] = 0;
    memset(key, 'k', 255);
    key[255] = 0;
    assert_int_equal(sg_msg_destination(ex, key, out, sizeof out), SG_OK);
    assert_int_equal(strlen(out), strlen("/exchange/") + 255 + 1 + 255);
    assert_int_equal(sg_msg_destination("", key, out, 16), SG_ETOOBIG);
    assert_string_equal(out, "/queue/kkkkkkkk");
    assert_int_equal(sg_msg_destination("amq.topic", "abc", out, 8), SG_ETOOBIG);
    assert_string_equal(out, "/topic/");
    assert_int_equal(sg_msg_destination("ex", "abc", out, 1), SG_ETOOBIG);
    assert_string_equal(out, "");
}

/* ------------------------------------------------------------------ */
/* rendering a decoded frame as text: "CMD|k=v|k=v|[body]" */

struct text {
    char s[8192];
    size_t n;
};

static void t_put(struct text *t, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        char tmp[8];
        const char *e = NULL;
        switch (b[i]) {
        case '\n':
            e = "\\n";
            break;
        case '\r':
            e = "\\r";
            break;
        case '\0':
            e = "\\0";
            break;
        case '\\':
            e = "\\\\";
            break;
        case '|':
            e = "\\|";
            break;
        default:
            if (b[i] < 0x20 || b[i] >= 0x7f) {
                snprintf(tmp, sizeof tmp, "\\x%02x", b[i]);
                e = tmp;
            }
        }
        if (e) {
            size_t el = strlen(e);
            assert_true(t->n + el < sizeof t->s);
            memcpy(t->s + t->n, e, el);
            t->n += el;
        } else {
            assert_true(t->n + 1 < sizeof t->s);
            t->s[t->n++] = (char)b[i];
        }
    }
    t->s[t->n] = 0;
}

static void t_str(struct text *t, const char *s)
{
    size_t n = strlen(s);
    assert_true(t->n + n < sizeof t->s);
    memcpy(t->s + t->n, s, n + 1);
    t->n += n;
}

static void render(struct text *t, const struct sg_stomp_frame *f)
{
    t_str(t, sg_stomp_cmd_name(f->cmd));
    for (size_t i = 0; i < f->num_headers; i++) {
        t_str(t, "|");
        t_put(t, f->headers[i].key, f->headers[i].key_len);
        t_str(t, "=");
        t_put(t, f->headers[i].value, f->headers[i].value_len);
    }
    t_str(t, "|[");
    t_put(t, f->body, f->body_len);
    t_str(t, "]");
}

struct hv {
    const char *k, *v;
};

/* What the frame must decode to. */
static void render_want(struct text *t, const struct hv *h, size_t n, const void *body, size_t blen)
{
    t_str(t, "MESSAGE");
    for (size_t i = 0; i < n; i++) {
        t_str(t, "|");
        t_put(t, h[i].k, strlen(h[i].k));
        t_str(t, "=");
        t_put(t, h[i].v, strlen(h[i].v));
    }
    t_str(t, "|[");
    t_put(t, body, blen);
    t_str(t, "]");
}

/* Decodes in[0..len) in chunks ending at cuts[] (the last is len) with
 * the given version's rules; exactly one frame and nothing else. */
static void decode_chunks(const uint8_t *in, size_t len, int version, const size_t *cuts,
                          size_t ncuts, struct text *t)
{
    struct sg_stomp_dec d;
    sg_stomp_dec_init(&d, NULL);
    d.version = version;
    d.trim = 0;
    t->n = 0;
    t->s[0] = 0;
    int frames = 0;
    size_t start = 0;
    for (size_t c = 0; c < ncuts; c++) {
        size_t n = cuts[c] - start;
        /* a copy per call: the decoder must not keep pointers into input */
        uint8_t *chunk = malloc(n ? n : 1);
        assert_non_null(chunk);
        if (n) memcpy(chunk, in + start, n);
        size_t off = 0;
        for (;;) {
            struct sg_stomp_event ev;
            ssize_t rc = sg_stomp_decode(&d, chunk + off, n - off, &ev);
            if (rc < 0) fail_msg("decode error %d: %s", (int)rc, d.error ? d.error : "?");
            off += (size_t)rc;
            if (ev.type == SG_STOMP_EV_NONE) break;
            assert_int_equal(ev.type, SG_STOMP_EV_FRAME);
            frames++;
            render(t, ev.frame);
        }
        assert_int_equal(off, n);
        free(chunk);
        start = cuts[c];
    }
    assert_int_equal(frames, 1);
    sg_stomp_dec_reset(&d);
}

static void decode_every_way(const uint8_t *in, size_t len, int version, const char *want,
                             const char *name)
{
    struct text t;
    size_t cuts[2] = {len, 0};
    decode_chunks(in, len, version, cuts, 1, &t);
    if (strcmp(t.s, want)) fail_msg("%s v%d whole:\n got  %s\n want %s", name, version, t.s, want);
    for (size_t k = 0; k <= len; k++) {
        cuts[0] = k;
        cuts[1] = len;
        decode_chunks(in, len, version, cuts, 2, &t);
        if (strcmp(t.s, want))
            fail_msg("%s v%d split at %zu:\n got  %s\n want %s", name, version, k, t.s, want);
    }
    size_t *one = malloc(len * sizeof *one);
    assert_non_null(one);
    for (size_t k = 0; k < len; k++)
        one[k] = k + 1;
    decode_chunks(in, len, version, one, len, &t);
    free(one);
    if (strcmp(t.s, want)) fail_msg("%s v%d 1 byte:\n got  %s\n want %s", name, version, t.s, want);
}

/* head + shared + body + NUL, the way the relay writes a MESSAGE */
static void assemble(struct sg_buf *b, int v, const char *sub, const char *ack, const char *dest,
                     const char *mid, int redelivered, const amqp_basic_properties_t *props,
                     const void *body, size_t blen)
{
    sg_buf_init(b, 0);
    assert_int_equal(sg_msg_encode_head(b, v, sub, ack), SG_OK);
    assert_int_equal(sg_msg_encode_shared(b, v, dest, mid, redelivered, props, blen), SG_OK);
    assert_int_equal(sg_buf_append(b, body, blen), SG_OK);
    assert_int_equal(sg_buf_append(b, "", 1), SG_OK);
}

static int contains(const struct sg_buf *b, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= b->len; i++)
        if (!memcmp(b->data + i, needle, n)) return 1;
    return 0;
}

static size_t count(const struct sg_buf *b, const char *needle)
{
    size_t n = strlen(needle), c = 0;
    for (size_t i = 0; i + n <= b->len; i++)
        if (!memcmp(b->data + i, needle, n)) c++;
    return c;
}

/* ------------------------------------------------------------------ */
/* frames */

static const int versions[] = {10, 11, 12};

static void test_minimal_no_props(void **state)
{
    (void)state;
    for (size_t i = 0; i < 3; i++) {
        int v = versions[i];
        struct sg_buf b;
        assemble(&b, v, "sub-0", NULL, "/queue/q", "1.5.7", 0, NULL, "hello", 5);
        static const char exact[] = "MESSAGE\nsubscription:sub-0\ndestination:/queue/q\n"
                                    "message-id:1.5.7\nredelivered:false\ncontent-length:5\n\n"
                                    "hello";
        assert_int_equal(b.len, sizeof exact); /* with the NUL */
        assert_memory_equal(b.data, exact, sizeof exact);
        static const struct hv h[] = {{"subscription", "sub-0"},
                                      {"destination", "/queue/q"},
                                      {"message-id", "1.5.7"},
                                      {"redelivered", "false"},
                                      {"content-length", "5"}};
        struct text w = {.n = 0};
        render_want(&w, h, 5, "hello", 5);
        decode_every_way(b.data, b.len, v, w.s, "minimal");
        sg_buf_reset(&b);
    }
}

static void test_ack_only_when_given(void **state)
{
    (void)state;
    for (size_t i = 0; i < 3; i++) {
        int v = versions[i];
        struct sg_buf b;
        assemble(&b, v, "s", "3.2.9", "/topic/t", "3.2.9", 1, NULL, "", 0);
        static const struct hv h[] = {{"subscription", "s"},       {"ack", "3.2.9"},
                                      {"destination", "/topic/t"}, {"message-id", "3.2.9"},
                                      {"redelivered", "true"},     {"content-length", "0"}};
        struct text w = {.n = 0};
        render_want(&w, h, 6, "", 0);
        decode_every_way(b.data, b.len, v, w.s, "with ack");
        sg_buf_reset(&b);

        assemble(&b, v, "s", NULL, "/topic/t", "3.2.9", 1, NULL, "", 0);
        assert_false(contains(&b, "ack:"));
        sg_buf_reset(&b);
    }
}

/* Every property amqp_map maps back, the headers table, values with ':',
 * '\n' and '\\', a reserved table key, a body with NULs. */
static void test_props_escaping_every_version(void **state)
{
    (void)state;
    amqp_table_entry_t te[5];
    te[0].key = amqp_cstring_bytes("x-colon");
    te[0].value.kind = AMQP_FIELD_KIND_UTF8;
    te[0].value.value.bytes = amqp_cstring_bytes("a:b");
    te[1].key = amqp_cstring_bytes("n");
    te[1].value.kind = AMQP_FIELD_KIND_I32;
    te[1].value.value.i32 = -42;
    te[2].key = amqp_cstring_bytes("flag");
    te[2].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    te[2].value.value.boolean = 1;
    /* a publisher must not forge the delivery headers */
    te[3].key = amqp_cstring_bytes("message-id");
    te[3].value.kind = AMQP_FIELD_KIND_UTF8;
    te[3].value.value.bytes = amqp_cstring_bytes("forged");
    te[4].key = amqp_cstring_bytes("path");
    te[4].value.kind = AMQP_FIELD_KIND_UTF8;
    te[4].value.value.bytes = amqp_cstring_bytes("c:\\tmp");

    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
               AMQP_BASIC_PRIORITY_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
               AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_EXPIRATION_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
               AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_APP_ID_FLAG | AMQP_BASIC_USER_ID_FLAG |
               AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_HEADERS_FLAG;
    p.content_type = amqp_cstring_bytes("text/plain;charset=utf-8");
    p.delivery_mode = 2;
    p.priority = 9;
    p.correlation_id = amqp_cstring_bytes("corr:1\nline2"); /* ':' and '\n' */
    p.reply_to = amqp_cstring_bytes("/reply-queue/amq.gen-x");
    p.expiration = amqp_cstring_bytes("60000");
    p.message_id = amqp_cstring_bytes("m:1");
    p.type = amqp_cstring_bytes("order");
    p.app_id = amqp_cstring_bytes("app");
    p.user_id = amqp_cstring_bytes("alice");
    p.timestamp = 1700000000;
    p.headers.num_entries = 5;
    p.headers.entries = te;

    static const uint8_t body[] = {'a', 0, 'b', '\n', 0, 'c'};
    for (size_t i = 0; i < 3; i++) {
        int v = versions[i];
        struct sg_buf b;
        assemble(&b, v, "sub:1", v >= 12 ? "1.2.3" : NULL, "/exchange/ex/k:1", "1.2.3", 0, &p, body,
                 sizeof body);
        /* one message-id line: the forged table entry is not written */
        assert_int_equal(count(&b, "\nmessage-id:"), 1);
        if (v == 10) {
            /* no escaping in 1.0: ':' and '\\' are written raw ... */
            assert_true(contains(&b, "\nsubscription:sub:1\n"));
            assert_true(contains(&b, "\ndestination:/exchange/ex/k:1\n"));
            assert_true(contains(&b, "\npath:c:\\tmp\n"));
            /* ... and a value with a LF cannot be written: skipped */
            assert_false(contains(&b, "correlation-id"));
        } else {
            assert_true(contains(&b, "\nsubscription:sub\\c1\n"));
            assert_true(contains(&b, "\ndestination:/exchange/ex/k\\c1\n"));
            assert_true(contains(&b, "\ncorrelation-id:corr\\c1\\nline2\n"));
            assert_true(contains(&b, "\npath:c\\c\\\\tmp\n"));
        }
        struct hv h[24];
        size_t n = 0;
        h[n++] = (struct hv){"subscription", "sub:1"};
        if (v >= 12) h[n++] = (struct hv){"ack", "1.2.3"};
        h[n++] = (struct hv){"destination", "/exchange/ex/k:1"};
        h[n++] = (struct hv){"message-id", "1.2.3"};
        h[n++] = (struct hv){"redelivered", "false"};
        h[n++] = (struct hv){"content-type", "text/plain;charset=utf-8"};
        h[n++] = (struct hv){"persistent", "true"};
        h[n++] = (struct hv){"priority", "9"};
        if (v != 10) h[n++] = (struct hv){"correlation-id", "corr:1\nline2"};
        h[n++] = (struct hv){"reply-to", "/reply-queue/amq.gen-x"};
        h[n++] = (struct hv){"expiration", "60000"};
        h[n++] = (struct hv){"amqp-message-id", "m:1"};
        h[n++] = (struct hv){"type", "order"};
        h[n++] = (struct hv){"app-id", "app"};
        h[n++] = (struct hv){"user-id", "alice"};
        h[n++] = (struct hv){"timestamp", "1700000000"};
        h[n++] = (struct hv){"x-colon", "a:b"};
        h[n++] = (struct hv){"n", "-42"};
        h[n++] = (struct hv){"flag", "true"};
        h[n++] = (struct hv){"path", "c:\\tmp"};
        h[n++] = (struct hv){"content-length", "6"};
        struct text w = {.n = 0};
        render_want(&w, h, n, body, sizeof body);
        decode_every_way(b.data, b.len, v, w.s, "props");
        sg_buf_reset(&b);
    }
}

static void test_delivery_mode_not_persistent(void **state)
{
    (void)state;
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
    p.delivery_mode = 1;
    for (size_t i = 0; i < 3; i++) {
        struct sg_buf b;
        assemble(&b, versions[i], "s", NULL, "/queue/q", "m", 0, &p, "x", 1);
        assert_false(contains(&b, "persistent"));
        sg_buf_reset(&b);
    }
}

static void test_lf_in_head_refused_in_10(void **state)
{
    (void)state;
    struct sg_buf b;
    sg_buf_init(&b, 0);
    /* 1.0 has no escaping: a subscription id or destination with a LF would
     * inject a header, so it is an error and nothing is appended */
    assert_int_equal(sg_msg_encode_head(&b, 10, "a\nb", NULL), SG_ESTOMP);
    sg_buf_clear(&b);
    assert_int_equal(sg_msg_encode_shared(&b, 10, "/queue/a\nx:y", "m", 0, NULL, 0), SG_ESTOMP);
    /* from 1.1 on it is escaped and decodes back */
    for (int v = 11; v <= 12; v++) {
        sg_buf_clear(&b);
        assert_int_equal(sg_msg_encode_head(&b, v, "a\nb", NULL), SG_OK);
        assert_int_equal(sg_msg_encode_shared(&b, v, "/queue/a\nx:y", "m", 0, NULL, 1), SG_OK);
        assert_int_equal(sg_buf_append(&b, "z", 2), SG_OK); /* body and NUL */
        static const struct hv h[] = {{"subscription", "a\nb"},
                                      {"destination", "/queue/a\nx:y"},
                                      {"message-id", "m"},
                                      {"redelivered", "false"},
                                      {"content-length", "1"}};
        struct text w = {.n = 0};
        render_want(&w, h, 5, "z", 1);
        decode_every_way(b.data, b.len, v, w.s, "lf in head");
    }
    sg_buf_reset(&b);
}

static void test_cr_12_only(void **state)
{
    (void)state;
    /* a value ending in CR: escaped as \r in 1.2; unwritable before */
    struct sg_buf b;
    sg_buf_init(&b, 0);
    assert_int_equal(sg_msg_encode_head(&b, 11, "cr\r", NULL), SG_ESTOMP);
    assert_int_equal(sg_msg_encode_head(&b, 10, "cr\r", NULL), SG_ESTOMP);
    /* a failed head may leave a partial part behind (the relay clears it) */
    sg_buf_clear(&b);
    assert_int_equal(sg_msg_encode_head(&b, 12, "cr\r", NULL), SG_OK);
    assert_int_equal(sg_msg_encode_shared(&b, 12, "/queue/q", "m", 0, NULL, 0), SG_OK);
    assert_int_equal(sg_buf_append(&b, "", 1), SG_OK);
    assert_true(contains(&b, "subscription:cr\\r\n"));
    static const struct hv h[] = {{"subscription", "cr\r"},
                                  {"destination", "/queue/q"},
                                  {"message-id", "m"},
                                  {"redelivered", "false"},
                                  {"content-length", "0"}};
    struct text w = {.n = 0};
    render_want(&w, h, 5, "", 0);
    decode_every_way(b.data, b.len, 12, w.s, "cr");
    sg_buf_reset(&b);
}

static void test_bounded_buffer(void **state)
{
    (void)state;
    /* the whole frame needs N bytes: every smaller bound fails with
     * SG_ETOOBIG at one of the two steps, never a partial success */
    struct sg_buf b;
    sg_buf_init(&b, 0);
    assert_int_equal(sg_msg_encode_head(&b, 12, "sub", "1.1.1"), SG_OK);
    size_t head_len = b.len;
    assert_int_equal(sg_msg_encode_shared(&b, 12, "/queue/q", "1.1.1", 0, NULL, 3), SG_OK);
    size_t total = b.len;
    sg_buf_reset(&b);
    for (size_t max = 1; max < total; max++) {
        sg_buf_init(&b, max);
        int rh = sg_msg_encode_head(&b, 12, "sub", "1.1.1");
        if (max < head_len) {
            assert_int_equal(rh, SG_ETOOBIG);
        } else {
            assert_int_equal(rh, SG_OK);
            assert_int_equal(sg_msg_encode_shared(&b, 12, "/queue/q", "1.1.1", 0, NULL, 3),
                             SG_ETOOBIG);
        }
        assert_true(b.len <= max);
        sg_buf_reset(&b);
    }
    sg_buf_init(&b, total);
    assert_int_equal(sg_msg_encode_head(&b, 12, "sub", "1.1.1"), SG_OK);
    assert_int_equal(sg_msg_encode_shared(&b, 12, "/queue/q", "1.1.1", 0, NULL, 3), SG_OK);
    assert_int_equal(b.len, total);
    sg_buf_reset(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_destination_rows),
        cmocka_unit_test(test_destination_truncation),
        cmocka_unit_test(test_minimal_no_props),
        cmocka_unit_test(test_ack_only_when_given),
        cmocka_unit_test(test_props_escaping_every_version),
        cmocka_unit_test(test_delivery_mode_not_persistent),
        cmocka_unit_test(test_lf_in_head_refused_in_10),
        cmocka_unit_test(test_cr_12_only),
        cmocka_unit_test(test_bounded_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
