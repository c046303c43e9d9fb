/* test_stomp_frame.c - STOMP frame codec: table-driven byte vectors, each
 * fed whole, split at every boundary (two calls) and one byte at a time; the
 * event sequence is rendered as text and compared. Plus encoder vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "error.h"
#include "stomp_frame.h"

/* ------------------------------------------------------------------ */
/* rendering events as text */

struct sg_text {
    char s[16384];
    size_t n;
};

static void t_putc(struct sg_text *t, char c)
{
    if (t->n + 1 < sizeof t->s) t->s[t->n++] = c;
    t->s[t->n] = '\0';
}

static void t_puts(struct sg_text *t, const char *s)
{
    while (*s)
        t_putc(t, *s++);
}

/* bytes with \n \r \0 \\ and \xNN shown as escapes */
static void t_bytes(struct sg_text *t, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        char tmp[8];
        switch (b[i]) {
        case '\n':
            t_puts(t, "\\n");
            break;
        case '\r':
            t_puts(t, "\\r");
            break;
        case '\0':
            t_puts(t, "\\0");
            break;
        case '\\':
            t_puts(t, "\\\\");
            break;
        default:
            if (b[i] < 0x20 || b[i] >= 0x7f) {
                snprintf(tmp, sizeof tmp, "\\x%02x", b[i]);
                t_puts(t, tmp);
            } else {
                t_putc(t, (char)b[i]);
            }
        }
    }
}

/* "HB ", "CMD{k=v}{k=v}[body] ", "ERR(-105,unknown command)" */
static void t_event(struct sg_text *t, const struct sg_stomp_event *ev)
{
    if (ev->type == SG_STOMP_EV_HEARTBEAT) {
        t_puts(t, "HB ");
        return;
    }
    const struct sg_stomp_frame *f = ev->frame;
    assert_non_null(f);
    const char *name = sg_stomp_cmd_name(f->cmd);
    t_puts(t, name ? name : "?");
    for (size_t i = 0; i < f->num_headers; i++) {
        t_putc(t, '{');
        t_bytes(t, f->headers[i].key, f->headers[i].key_len);
        t_putc(t, '=');
        t_bytes(t, f->headers[i].value, f->headers[i].value_len);
        t_putc(t, '}');
    }
    t_putc(t, '[');
    t_bytes(t, f->body, f->body_len);
    t_puts(t, "] ");
    /* the decoder keeps the NUL after the body */
    assert_int_equal(f->body[f->body_len], 0);
}

static void t_error(struct sg_text *t, const struct sg_stomp_dec *d, ssize_t rc)
{
    char tmp[160];
    assert_non_null(d->error);
    assert_null(strchr(d->error, '\n'));
    snprintf(tmp, sizeof tmp, "ERR(%d,%s)", (int)rc, d->error);
    t_puts(t, tmp);
}

/* ------------------------------------------------------------------ */
/* the driver */

struct vec {
    const char *name;
    const char *in;
    size_t len;
    int version; /* 0 = decoder default (12) */
    int trim;
    struct sg_stomp_limits lim; /* zeros = defaults */
    const char *want;
};

/* when set: sg_stomp_dec_set_limits(g_set_lim) right after the first frame */
static const struct sg_stomp_limits *g_set_lim;

#define IN(s) s, sizeof(s) - 1

/* Copy mode (g_copies): every frame is deep-copied when it is returned and
 * rendered only at the end, after the decoder and every input chunk are
 * gone; the text must be the same. */
static int g_copies;
#define MAX_COPIES 64

/* A copy's keys, values and body are NUL-terminated, and its view renders
 * like the frame it was made from. */
static void t_copy(struct sg_text *t, const struct sg_stomp_frame_copy *c, size_t bytes)
{
    static struct sg_stomp_frame view; /* large: not on the stack */
    size_t need = 1;
    assert_ptr_equal(sg_stomp_frame_copy_view(c, &view), &view);
    assert_int_equal(sg_stomp_frame_copy_nheaders(c), view.num_headers);
    for (size_t i = 0; i < view.num_headers; i++) {
        const struct sg_stomp_header *h = sg_stomp_frame_copy_header(c, i);
        assert_non_null(h);
        assert_memory_equal(h, &view.headers[i], sizeof *h);
        assert_int_equal(h->key[h->key_len], '\0');
        assert_int_equal(h->value[h->value_len], '\0');
        need += sizeof *h + h->key_len + h->value_len + 2;
    }
    assert_null(sg_stomp_frame_copy_header(c, view.num_headers));
    need += view.body_len;
    assert_true(bytes >= need);
    struct sg_stomp_event ev = {SG_STOMP_EV_FRAME, &view};
    t_event(t, &ev); /* checks body[body_len] == 0 */
}

/* Feeds in[0..len) as chunks ending at the offsets in cuts (the last must be
 * len) and renders the event sequence. Returns 1 if an error stopped it. */
static int run_chunks(const struct vec *v, const size_t *cuts, size_t ncuts, struct sg_text *t)
{
    struct sg_stomp_dec d;
    struct sg_stomp_event ev;
    struct sg_stomp_frame_copy *copies[MAX_COPIES]; /* NULL: a heart-beat */
    size_t bytes[MAX_COPIES], ncopies = 0, nframes = 0;
    struct sg_text errt = {.n = 0}; /* copy mode: the error, rendered last */
    sg_stomp_dec_init(&d, &v->lim);
    if (v->version) d.version = v->version;
    d.trim = v->trim;
    t->n = 0;
    t->s[0] = '\0';
    size_t start = 0;
    int err = 0;
    for (size_t c = 0; c < ncuts && !err; c++) {
        /* a copy per call: the decoder must not keep pointers into input */
        size_t n = cuts[c] - start;
        uint8_t *chunk = malloc(n ? n : 1);
        assert_non_null(chunk);
        memcpy(chunk, v->in + start, n);
        size_t off = 0;
        for (;;) {
            ssize_t rc = sg_stomp_decode(&d, chunk + off, n - off, &ev);
            if (rc < 0) {
                t_error(g_copies ? &errt : t, &d, rc);
                err = 1;
                break;
            }
            assert_true((size_t)rc <= n - off);
            off += (size_t)rc;
            if (ev.type == SG_STOMP_EV_NONE) {
                assert_int_equal(off, n); /* NONE means all consumed */
                break;
            }
            if (!g_copies) {
                t_event(t, &ev);
            } else {
                assert_true(ncopies < MAX_COPIES);
                copies[ncopies] = NULL;
                if (ev.type == SG_STOMP_EV_FRAME) {
                    copies[ncopies] = sg_stomp_frame_copy_new(ev.frame, &bytes[ncopies]);
                    assert_non_null(copies[ncopies]);
                }
                ncopies++;
            }
            if (ev.type == SG_STOMP_EV_FRAME && ++nframes == 1 && g_set_lim)
                sg_stomp_dec_set_limits(&d, g_set_lim);
        }
        free(chunk);
        start = cuts[c];
    }
    if (err) {
        /* a failed decoder keeps failing */
        ssize_t rc = sg_stomp_decode(&d, (const uint8_t *)"\n", 1, &ev);
        assert_true(rc < 0);
    }
    sg_stomp_dec_reset(&d);
    if (g_copies) {
        /* scribble over the decoder's memory (its buffer was freed) */
        sg_stomp_dec_init(&d, NULL);
        sg_stomp_decode(&d, (const uint8_t *)"SEND\nzz:zz\n\nzzzzzzzz\0", 21, &ev);
        for (size_t i = 0; i < ncopies; i++) {
            if (copies[i])
                t_copy(t, copies[i], bytes[i]);
            else
                t_puts(t, "HB ");
            sg_stomp_frame_copy_free(copies[i]);
        }
        sg_stomp_dec_reset(&d);
        t_puts(t, errt.s);
    }
    return err;
}

static void check_vec(const struct vec *v)
{
    struct sg_text t;
    size_t cuts[2];

    /* whole */
    cuts[0] = v->len;
    run_chunks(v, cuts, 1, &t);
    if (strcmp(t.s, v->want) != 0)
        fail_msg("%s (whole):\n got  %s\n want %s", v->name, t.s, v->want);

    /* split at every boundary */
    for (size_t k = 0; k <= v->len; k++) {
        cuts[0] = k;
        cuts[1] = v->len;
        run_chunks(v, cuts, 2, &t);
        if (strcmp(t.s, v->want) != 0)
            fail_msg("%s (split at %zu):\n got  %s\n want %s", v->name, k, t.s, v->want);
    }

    /* one byte at a time */
    size_t *one = malloc((v->len + 1) * sizeof *one);
    assert_non_null(one);
    for (size_t k = 0; k < v->len; k++)
        one[k] = k + 1;
    run_chunks(v, one, v->len, &t);
    free(one);
    if (strcmp(t.s, v->want) != 0)
        fail_msg("%s (1 byte):\n got  %s\n want %s", v->name, t.s, v->want);
}

static void check_vecs(const struct vec *v, size_t n)
{
    for (g_copies = 0; g_copies < 2; g_copies++)
        for (size_t i = 0; i < n; i++)
            check_vec(&v[i]);
    g_copies = 0;
}

#define LIM(f, h, l, b)                                                                            \
    {                                                                                              \
        .max_frame = (f), .max_headers = (h), .max_header_line = (l), .max_body = (b)              \
    }

/* ------------------------------------------------------------------ */
/* decoder vectors */

static const struct vec v_commands[] = {
    {"CONNECT",
     IN("CONNECT\naccept-version:1.2\nhost:/\n\n\0"),
     0,
     0,
     {0},
     "CONNECT{accept-version=1.2}{host=/}[] "},
    {"STOMP",
     IN("STOMP\naccept-version:1.2\nhost:/\n\n\0"),
     0,
     0,
     {0},
     "STOMP{accept-version=1.2}{host=/}[] "},
    {"SEND",
     IN("SEND\ndestination:/queue/a\n\nhello\0"),
     0,
     0,
     {0},
     "SEND{destination=/queue/a}[hello] "},
    {"SUBSCRIBE",
     IN("SUBSCRIBE\nid:0\ndestination:/queue/a\nack:client\n\n\0"),
     0,
     0,
     {0},
     "SUBSCRIBE{id=0}{destination=/queue/a}{ack=client}[] "},
    {"UNSUBSCRIBE", IN("UNSUBSCRIBE\nid:0\n\n\0"), 0, 0, {0}, "UNSUBSCRIBE{id=0}[] "},
    {"ACK",
     IN("ACK\nid:12345\ntransaction:tx1\n\n\0"),
     0,
     0,
     {0},
     "ACK{id=12345}{transaction=tx1}[] "},
    {"NACK", IN("NACK\nid:12345\n\n\0"), 0, 0, {0}, "NACK{id=12345}[] "},
    {"BEGIN", IN("BEGIN\ntransaction:tx1\n\n\0"), 0, 0, {0}, "BEGIN{transaction=tx1}[] "},
    {"COMMIT", IN("COMMIT\ntransaction:tx1\n\n\0"), 0, 0, {0}, "COMMIT{transaction=tx1}[] "},
    {"ABORT", IN("ABORT\ntransaction:tx1\n\n\0"), 0, 0, {0}, "ABORT{transaction=tx1}[] "},
    {"DISCONNECT", IN("DISCONNECT\nreceipt:77\n\n\0"), 0, 0, {0}, "DISCONNECT{receipt=77}[] "},
    {"CONNECTED", IN("CONNECTED\nversion:1.2\n\n\0"), 0, 0, {0}, "CONNECTED{version=1.2}[] "},
    {"MESSAGE",
     IN("MESSAGE\nsubscription:0\nmessage-id:007\ndestination:/queue/a\n\nhi\0"),
     0,
     0,
     {0},
     "MESSAGE{subscription=0}{message-id=007}{destination=/queue/a}[hi] "},
    {"RECEIPT", IN("RECEIPT\nreceipt-id:77\n\n\0"), 0, 0, {0}, "RECEIPT{receipt-id=77}[] "},
    {"ERROR", IN("ERROR\nmessage:bad\n\noops\0"), 0, 0, {0}, "ERROR{message=bad}[oops] "},
    {"no headers", IN("DISCONNECT\n\n\0"), 0, 0, {0}, "DISCONNECT[] "},
};

static void test_commands(void **state)
{
    (void)state;
    check_vecs(v_commands, sizeof v_commands / sizeof v_commands[0]);
}

static const struct vec v_book[] = {
    /* the O'Reilly book's client: space after the colon, body "\n\n" */
    {"book CONNECT",
     IN("CONNECT\nlogin: websockets\npasscode: rabbitmq\n\n\n\n\0"),
     0,
     0,
     {0},
     "CONNECT{login= websockets}{passcode= rabbitmq}[\\n\\n] "},
    {"book CONNECT 1.0 trim",
     IN("CONNECT\nlogin: websockets\npasscode: rabbitmq\n\n\n\n\0"),
     10,
     1,
     {0},
     "CONNECT{login=websockets}{passcode=rabbitmq}[\\n\\n] "},
    {"book SUBSCRIBE",
     IN("SUBSCRIBE\ndestination: /queue/stocks.AAPL\n\n\n\n\0"),
     10,
     1,
     {0},
     "SUBSCRIBE{destination=/queue/stocks.AAPL}[\\n\\n] "},
    {"book DISCONNECT",
     IN("DISCONNECT\n\n\nundefined\n\0"),
     0,
     0,
     {0},
     "DISCONNECT[\\nundefined\\n] "},
    {"book DISCONNECT 1.0",
     IN("DISCONNECT\n\n\nundefined\n\0"),
     10,
     1,
     {0},
     "DISCONNECT[\\nundefined\\n] "},
};

static void test_book(void **state)
{
    (void)state;
    check_vecs(v_book, sizeof v_book / sizeof v_book[0]);
}

static const struct vec v_trim[] = {
    {"trim off", IN("SEND\n  k \t: v  \n\n\0"), 10, 0, {0}, "SEND{  k \\x09= v  }[] "},
    {"trim on", IN("SEND\n  k \t: v  \n\n\0"), 10, 1, {0}, "SEND{k=v}[] "},
    {"trim off 1.2", IN("SEND\nk: v \n\n\0"), 12, 0, {0}, "SEND{k= v }[] "},
    {"trim keeps inner spaces", IN("SEND\nk:a b\n\n\0"), 10, 1, {0}, "SEND{k=a b}[] "},
    {"trim body untouched", IN("SEND\nk: v\n\n  body  \0"), 10, 1, {0}, "SEND{k=v}[  body  ] "},
};

static void test_trim(void **state)
{
    (void)state;
    check_vecs(v_trim, sizeof v_trim / sizeof v_trim[0]);
}

static const struct vec v_escape[] = {
    {"1.0 literal",
     IN("SEND\nk:a\\nb\\cc\\\\d\\t\n\n\0"),
     10,
     0,
     {0},
     "SEND{k=a\\\\nb\\\\cc\\\\\\\\d\\\\t}[] "},
    {"1.1 escapes", IN("SEND\nk:a\\nb\\cc\\\\d\n\n\0"), 11, 0, {0}, "SEND{k=a\\nb:c\\\\d}[] "},
    {"1.1 no \\r", IN("SEND\nk:a\\rb\n\n\0"), 11, 0, {0}, "ERR(-105,invalid header escape)"},
    {"1.2 \\r", IN("SEND\nk:a\\rb\n\n\0"), 12, 0, {0}, "SEND{k=a\\rb}[] "},
    {"1.2 all", IN("SEND\nk:\\r\\n\\c\\\\\n\n\0"), 12, 0, {0}, "SEND{k=\\r\\n:\\\\}[] "},
    {"escaped key", IN("SEND\na\\cb\\nc:v\n\n\0"), 12, 0, {0}, "SEND{a:b\\nc=v}[] "},
    {"\\t invalid", IN("SEND\nk:a\\tb\n\n\0"), 12, 0, {0}, "ERR(-105,invalid header escape)"},
    {"trailing backslash", IN("SEND\nk:ab\\\n\n\0"), 12, 0, {0}, "ERR(-105,invalid header escape)"},
    {"bad escape in key", IN("SEND\nk\\x:v\n\n\0"), 11, 0, {0}, "ERR(-105,invalid header escape)"},
    {"CONNECT never",
     IN("CONNECT\nlogin:a\\tb\\n\n\n\0"),
     12,
     0,
     {0},
     "CONNECT{login=a\\\\tb\\\\n}[] "},
    {"STOMP never", IN("STOMP\nlogin:a\\c\n\n\0"), 12, 0, {0}, "STOMP{login=a\\\\c}[] "},
    {"CONNECTED never",
     IN("CONNECTED\nserver:x\\y\n\n\0"),
     12,
     0,
     {0},
     "CONNECTED{server=x\\\\y}[] "},
    {"colon in value kept", IN("SEND\nk:a:b\n\n\0"), 12, 0, {0}, "SEND{k=a:b}[] "},
    {"body not unescaped", IN("SEND\n\na\\nb\0"), 12, 0, {0}, "SEND[a\\\\nb] "},
};

static void test_escape(void **state)
{
    (void)state;
    check_vecs(v_escape, sizeof v_escape / sizeof v_escape[0]);
}

static const struct vec v_crlf[] = {
    {"CRLF everywhere",
     IN("SEND\r\nk:v\r\nk2:v2\r\n\r\nbody\0"),
     0,
     0,
     {0},
     "SEND{k=v}{k2=v2}[body] "},
    {"CRLF blank line only", IN("SEND\nk:v\n\r\nbody\0"), 0, 0, {0}, "SEND{k=v}[body] "},
    {"CR inside value kept", IN("SEND\nk:a\rb\n\n\0"), 11, 0, {0}, "SEND{k=a\\rb}[] "},
    {"only one CR is EOL", IN("SEND\nk:v\r\r\n\n\0"), 11, 0, {0}, "SEND{k=v\\r}[] "},
    {"CR in body kept", IN("SEND\r\n\r\n\r\n\0"), 0, 0, {0}, "SEND[\\r\\n] "},
    {"CR CR before command", IN("SEND\r\r\n\n\0"), 0, 0, {0}, "ERR(-105,unknown command)"},
};

static void test_crlf(void **state)
{
    (void)state;
    check_vecs(v_crlf, sizeof v_crlf / sizeof v_crlf[0]);
}

static const struct vec v_headers[] = {
    {"repeated kept in order",
     IN("MESSAGE\nfoo:World\nfoo:Hello\n\n\0"),
     0,
     0,
     {0},
     "MESSAGE{foo=World}{foo=Hello}[] "},
    {"repeated content-length first wins",
     IN("SEND\ncontent-length:3\ncontent-length:9\n\nabc\0"),
     0,
     0,
     {0},
     "SEND{content-length=3}{content-length=9}[abc] "},
    {"empty value", IN("SEND\nk:\n\n\0"), 0, 0, {0}, "SEND{k=}[] "},
    {"missing colon", IN("SEND\nnocolon\n\n\0"), 0, 0, {0}, "ERR(-105,header line without colon)"},
    {"empty key 1.2", IN("SEND\n:v\n\n\0"), 12, 0, {0}, "ERR(-105,empty header name)"},
    {"empty key 1.1", IN("SEND\n:v\n\n\0"), 11, 0, {0}, "ERR(-105,empty header name)"},
    {"empty key 1.0", IN("SEND\n:v\n\n\0"), 10, 0, {0}, "SEND{=v}[] "},
    {"NUL in headers", IN("SEND\nk:v\0\n\n\0"), 0, 0, {0}, "ERR(-105,NUL in frame header)"},
    {"NUL right after command", IN("DISCONNECT\n\0"), 0, 0, {0}, "ERR(-105,NUL in frame header)"},
    {"unknown command", IN("FOO\n\n\0"), 0, 0, {0}, "ERR(-105,unknown command)"},
    {"lower-case command", IN("send\n\n\0"), 0, 0, {0}, "ERR(-105,unknown command)"},
    {"command with space", IN("SEND \n\n\0"), 0, 0, {0}, "ERR(-105,unknown command)"},
    /* no EOL needed to know it is no command */
    {"long command line", IN("SUBSCRIBEXYZ"), 0, 0, {0}, "ERR(-105,unknown command)"},
    {"lone CR between frames", IN("\rSEND\n\n\0"), 0, 0, {0}, "ERR(-105,CR not followed by LF)"},
    {"incomplete frame", IN("SEND\nk:v\n\nbody"), 0, 0, {0}, ""},
};

static void test_headers(void **state)
{
    (void)state;
    check_vecs(v_headers, sizeof v_headers / sizeof v_headers[0]);
}

static const struct vec v_length[] = {
    {"embedded NULs",
     IN("SEND\ncontent-length:5\n\na\0b\0c\0"),
     0,
     0,
     {0},
     "SEND{content-length=5}[a\\0b\\0c] "},
    {"zero", IN("SEND\ncontent-length:0\n\n\0"), 0, 0, {0}, "SEND{content-length=0}[] "},
    {"leading zeros",
     IN("SEND\ncontent-length:002\n\nab\0"),
     0,
     0,
     {0},
     "SEND{content-length=002}[ab] "},
    {"no NUL after",
     IN("SEND\ncontent-length:2\n\nabc\0"),
     0,
     0,
     {0},
     "ERR(-105,frame not terminated by NUL after content-length)"},
    {"zero, no NUL after",
     IN("SEND\ncontent-length:0\n\nx\0"),
     0,
     0,
     {0},
     "ERR(-105,frame not terminated by NUL after content-length)"},
    {"shorter than the NUL", IN("SEND\ncontent-length:4\n\nab\0"), 0, 0, {0}, ""},
    {"letters",
     IN("SEND\ncontent-length:abc\n\n\0"),
     0,
     0,
     {0},
     "ERR(-105,invalid content-length)"},
    {"negative",
     IN("SEND\ncontent-length:-1\n\n\0"),
     0,
     0,
     {0},
     "ERR(-105,invalid content-length)"},
    {"empty", IN("SEND\ncontent-length:\n\n\0"), 0, 0, {0}, "ERR(-105,invalid content-length)"},
    {"space no trim",
     IN("SEND\ncontent-length: 1\n\nx\0"),
     12,
     0,
     {0},
     "ERR(-105,invalid content-length)"},
    {"space with trim",
     IN("SEND\ncontent-length: 1 \n\nx\0"),
     10,
     1,
     {0},
     "SEND{content-length=1}[x] "},
    {"trailing junk",
     IN("SEND\ncontent-length:1x\n\nx\0"),
     0,
     0,
     {0},
     "ERR(-105,invalid content-length)"},
    {"huge",
     IN("SEND\ncontent-length:99999999999999999999999999\n\n"),
     0,
     0,
     {0},
     "ERR(-201,body too big)"},
    {"then another frame",
     IN("SEND\ncontent-length:1\n\n\0\0\nSEND\n\nx\0"),
     0,
     0,
     {0},
     "SEND{content-length=1}[\\0] HB SEND[x] "},
};

static void test_content_length(void **state)
{
    (void)state;
    check_vecs(v_length, sizeof v_length / sizeof v_length[0]);
}

static const struct vec v_stream[] = {
    {"several frames",
     IN("SEND\n\na\0SEND\nk:v\n\nb\0ACK\nid:1\n\n\0"),
     0,
     0,
     {0},
     "SEND[a] SEND{k=v}[b] ACK{id=1}[] "},
    {"heart-beats LF",
     IN("\n\nSEND\n\na\0\n\nSEND\n\nb\0\n"),
     0,
     0,
     {0},
     "HB HB SEND[a] HB HB SEND[b] HB "},
    {"heart-beats CRLF",
     IN("\r\n\r\nSEND\n\na\0\r\n\nSEND\n\nb\0\r\n"),
     0,
     0,
     {0},
     "HB HB SEND[a] HB HB SEND[b] HB "},
    {"only heart-beats", IN("\n\r\n\n"), 0, 0, {0}, "HB HB HB "},
    {"trailing CR waits", IN("\r"), 0, 0, {0}, ""},
    {"web_stomp style LF after NUL",
     IN("MESSAGE\ndestination:/q\n\n{}\0\n"),
     0,
     0,
     {0},
     "MESSAGE{destination=/q}[{}] HB "},
    {"partial second frame", IN("SEND\n\na\0SEND\nk"), 0, 0, {0}, "SEND[a] "},
    {"error in second frame",
     IN("SEND\n\na\0BOGUS\n\n\0"),
     0,
     0,
     {0},
     "SEND[a] ERR(-105,unknown command)"},
};

static void test_stream(void **state)
{
    (void)state;
    check_vecs(v_stream, sizeof v_stream / sizeof v_stream[0]);
}

static const struct vec v_bounds[] = {
    /* max_header_line: 8 bytes of "key:value" */
    {"line at limit", IN("SEND\nabc:defg\n\n\0"), 0, 0, LIM(0, 0, 8, 0), "SEND{abc=defg}[] "},
    {"line at limit CRLF", IN("SEND\nabc:defg\r\n\n\0"), 0, 0, LIM(0, 0, 8, 0),
     "SEND{abc=defg}[] "},
    {"line over limit", IN("SEND\nabc:defgh\n\n\0"), 0, 0, LIM(0, 0, 8, 0),
     "ERR(-203,header line too long)"},
    /* the line never ends: error as soon as it is over */
    {"line over limit, incomplete", IN("SEND\nabc:defgh"), 0, 0, LIM(0, 0, 8, 0),
     "ERR(-203,header line too long)"},
    {"line over by a CR", IN("SEND\nabc:defg\r\r\n\n\0"), 11, 0, LIM(0, 0, 8, 0),
     "ERR(-203,header line too long)"},
    /* max_headers */
    {"headers at limit", IN("SEND\na:1\nb:2\n\n\0"), 0, 0, LIM(0, 2, 0, 0), "SEND{a=1}{b=2}[] "},
    {"headers over limit", IN("SEND\na:1\nb:2\nc:3\n\n\0"), 0, 0, LIM(0, 2, 0, 0),
     "ERR(-202,too many headers)"},
    {"headers over limit, no blank line", IN("SEND\na:1\nb:2\nc:3\n"), 0, 0, LIM(0, 2, 0, 0),
     "ERR(-202,too many headers)"},
    /* max_frame: whole frame incl. NUL */
    {"frame at limit", IN("SEND\n\n1234\0"), 0, 0, LIM(11, 0, 0, 0), "SEND[1234] "},
    {"frame over limit", IN("SEND\n\n12345\0"), 0, 0, LIM(11, 0, 0, 0), "ERR(-201,frame too big)"},
    {"frame over limit, body incomplete", IN("SEND\n\n12345"), 0, 0, LIM(11, 0, 0, 0),
     "ERR(-201,frame too big)"},
    {"header section over max_frame", IN("SEND\nk:aaaaaaaaaaaaaaaaaaaaaa"), 0, 0, LIM(16, 0, 0, 0),
     "ERR(-201,frame too big)"},
    {"frame over limit via content-length", IN("SEND\ncontent-length:9\n\n"), 0, 0,
     LIM(30, 0, 0, 0), "ERR(-201,frame too big)"},
    {"frame at limit via content-length", IN("SEND\ncontent-length:8\n\n12345678\0"), 0, 0,
     LIM(33, 0, 0, 0), "SEND{content-length=8}[12345678] "},
    /* max_body */
    {"body at limit", IN("SEND\n\n1234\0"), 0, 0, LIM(0, 0, 0, 4), "SEND[1234] "},
    {"body over limit", IN("SEND\n\n12345\0"), 0, 0, LIM(0, 0, 0, 4), "ERR(-201,body too big)"},
    {"body over limit, no NUL yet", IN("SEND\n\n12345"), 0, 0, LIM(0, 0, 0, 4),
     "ERR(-201,body too big)"},
    {"content-length at limit", IN("SEND\ncontent-length:4\n\n1234\0"), 0, 0, LIM(0, 0, 0, 4),
     "SEND{content-length=4}[1234] "},
    /* decided at the blank line, without any body byte */
    {"content-length over limit", IN("SEND\ncontent-length:5\n\n"), 0, 0, LIM(0, 0, 0, 4),
     "ERR(-201,body too big)"},
    {"limits reset per frame", IN("SEND\n\n1234\0SEND\n\n1234\0"), 0, 0, LIM(11, 0, 0, 4),
     "SEND[1234] SEND[1234] "},
};

static void test_bounds(void **state)
{
    (void)state;
    check_vecs(v_bounds, sizeof v_bounds / sizeof v_bounds[0]);
}

#define X10 "xxxxxxxxxx"
#define X100 X10 X10 X10 X10 X10 X10 X10 X10 X10 X10

/* sg_stomp_dec_set_limits right after the first frame, however the input
 * was split (what the session does when it becomes CONNECTED) */
static const struct {
    struct vec v;
    int set;
    struct sg_stomp_limits lim2;
} v_set_limits[] = {
    {{"raised after the first frame", IN("SEND\n\nx\0SEND\n\n" X100 "\0"), 0, 0, LIM(64, 0, 0, 0),
      "SEND[x] SEND[" X100 "] "},
     1,
     LIM(1024, 0, 0, 0)},
    {{"not raised: the same input fails", IN("SEND\n\nx\0SEND\n\n" X100 "\0"), 0, 0,
      LIM(64, 0, 0, 0), "SEND[x] ERR(-201,frame too big)"},
     0,
     LIM(0, 0, 0, 0)},
    {{"more headers and a longer line after the first frame",
      IN("CONNECT\na:1\n\n\0SEND\na:1\nb:2\nc:" X10 "\n\n\0"), 0, 0, LIM(0, 1, 8, 0),
      "CONNECT{a=1}[] SEND{a=1}{b=2}{c=" X10 "}[] "},
     1,
     LIM(0, 3, 12, 0)},
    {{"body bound raised", IN("SEND\n\n1\0SEND\ncontent-length:20\n\n" X10 X10 "\0"), 0, 0,
      LIM(0, 0, 0, 4), "SEND[1] SEND{content-length=20}[" X10 X10 "] "},
     1,
     LIM(0, 0, 0, 20)},
    {{"lowered after the first frame", IN("SEND\n\n" X10 "\0SEND\n\n" X10 "\0"), 0, 0,
      LIM(0, 0, 0, 0), "SEND[" X10 "] ERR(-201,frame too big)"},
     1,
     LIM(16, 0, 0, 0)},
    {{"zeros are the defaults", IN("SEND\n\nx\0SEND\n\n" X100 "\0"), 0, 0, LIM(64, 0, 0, 0),
      "SEND[x] SEND[" X100 "] "},
     1,
     LIM(0, 0, 0, 0)},
};

static void test_set_limits(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof v_set_limits / sizeof v_set_limits[0]; i++) {
        g_set_lim = v_set_limits[i].set ? &v_set_limits[i].lim2 : NULL;
        check_vecs(&v_set_limits[i].v, 1);
    }
    g_set_lim = NULL;

    /* defaults: a 16 MiB body and 64 KiB of headers (RabbitMQ's web_stomp
     * delivers 16 MiB) */
    struct sg_stomp_dec d;
    struct sg_stomp_limits small = LIM(100, 2, 50, 10);
    sg_stomp_dec_init(&d, NULL);
    assert_int_equal(d.lim.max_frame, (16u << 20) + (64u << 10));
    assert_int_equal(d.lim.max_body, 16u << 20);
    assert_int_equal(d.lim.max_headers, 64);
    assert_int_equal(d.lim.max_header_line, 8192);
    assert_int_equal(d.buf.max, d.lim.max_frame);
    sg_stomp_dec_set_limits(&d, &small);
    assert_int_equal(d.lim.max_frame, 100);
    assert_int_equal(d.lim.max_headers, 2);
    assert_int_equal(d.buf.max, 100);
    sg_stomp_dec_set_limits(&d, NULL);
    assert_int_equal(d.lim.max_frame, (16u << 20) + (64u << 10));
    assert_int_equal(d.lim.max_body, 16u << 20);
    small.max_headers = 100000;
    sg_stomp_dec_set_limits(&d, &small);
    assert_int_equal(d.lim.max_headers, SG_STOMP_MAX_HEADERS_CAP);
    sg_stomp_dec_reset(&d);
}

/* Bounds lowered in the middle of a NUL-terminated body: the next byte is
 * over them (no wrap-around of the room left), however the body so far was
 * split. */
static void test_set_limits_mid_body(void **state)
{
    (void)state;
    static const char part[] = "SEND\n\n" X10 X10 X10 X10 X10;
    size_t len = sizeof part - 1;
    for (int which = 0; which < 2; which++) {
        for (size_t k = 0; k <= len + 1; k++) {
            struct sg_stomp_dec d;
            struct sg_stomp_event ev;
            sg_stomp_dec_init(&d, NULL);
            if (k <= len) {
                assert_int_equal(sg_stomp_decode(&d, (const uint8_t *)part, k, &ev), (ssize_t)k);
                assert_int_equal(sg_stomp_decode(&d, (const uint8_t *)part + k, len - k, &ev),
                                 (ssize_t)(len - k));
            } else {
                for (size_t i = 0; i < len; i++)
                    assert_int_equal(sg_stomp_decode(&d, (const uint8_t *)part + i, 1, &ev), 1);
            }
            assert_int_equal(ev.type, SG_STOMP_EV_NONE);
            /* 50 body bytes so far: a body bound of 10, or a frame bound of 20 */
            struct sg_stomp_limits lim = {.max_frame = which ? 20 : 0, .max_body = which ? 0 : 10};
            sg_stomp_dec_set_limits(&d, &lim);
            assert_int_equal(sg_stomp_decode(&d, (const uint8_t *)"y", 1, &ev), SG_ETOOBIG);
            assert_string_equal(d.error, which ? "frame too big" : "body too big");
            sg_stomp_dec_reset(&d);
        }
    }
}

/* ------------------------------------------------------------------ */
/* frame copies */

struct keep_arg {
    const struct sg_stomp_frame *f;
    size_t calls;
};

/* keeps x-* headers; checks it is called once per header, in order, with a
 * view into the frame being copied */
static int keep_x(const struct sg_stomp_header *h, void *arg)
{
    struct keep_arg *a = arg;
    assert_true(a->calls < a->f->num_headers);
    assert_ptr_equal(h, &a->f->headers[a->calls]);
    a->calls++;
    return h->key_len >= 2 && h->key[0] == 'x' && h->key[1] == '-';
}

static int keep_none(const struct sg_stomp_header *h, void *arg)
{
    (void)h;
    (void)arg;
    return 0;
}

static void test_frame_copy_filter(void **state)
{
    (void)state;
    static const uint8_t in[] = "SUBSCRIBE\nid:0\nx-max-length:10\ndestination:/queue/q\n"
                                "x-queue-type:quorum\nx-:\n\nbody\0";
    struct sg_stomp_dec d;
    struct sg_stomp_event ev;
    sg_stomp_dec_init(&d, NULL);
    assert_int_equal(sg_stomp_decode(&d, in, sizeof in - 1, &ev), sizeof in - 1);
    assert_int_equal(ev.type, SG_STOMP_EV_FRAME);

    size_t bytes = 1, all_bytes = 0;
    struct keep_arg ka = {ev.frame, 0};
    struct sg_stomp_frame_copy *c = sg_stomp_frame_copy_filter(ev.frame, keep_x, &ka, 0, &bytes);
    assert_non_null(c);
    assert_int_equal(ka.calls, 5); /* once per header */
    struct sg_stomp_frame_copy *all = sg_stomp_frame_copy_new(ev.frame, &all_bytes);
    assert_non_null(all);
    assert_true(bytes > 0 && bytes < all_bytes);
    sg_stomp_dec_reset(&d); /* the copies stand alone */

    assert_int_equal(sg_stomp_frame_copy_nheaders(c), 3);
    static const char *const keys[] = {"x-max-length", "x-queue-type", "x-"};
    static const char *const vals[] = {"10", "quorum", ""};
    for (size_t i = 0; i < 3; i++) {
        const struct sg_stomp_header *h = sg_stomp_frame_copy_header(c, i);
        assert_non_null(h);
        assert_int_equal(h->key_len, strlen(keys[i]));
        assert_string_equal(h->key, keys[i]); /* NUL-terminated */
        assert_int_equal(h->value_len, strlen(vals[i]));
        assert_string_equal(h->value, vals[i]);
    }
    assert_null(sg_stomp_frame_copy_header(c, 3));
    assert_null(sg_stomp_frame_copy_header(c, (size_t)-1));
    struct sg_stomp_frame *view = malloc(sizeof *view);
    assert_non_null(view);
    sg_stomp_frame_copy_view(c, view);
    assert_int_equal(view->cmd, SG_STOMP_SUBSCRIBE);
    assert_int_equal(view->num_headers, 3);
    assert_int_equal(view->body_len, 0); /* without the body */
    assert_non_null(view->body);
    assert_int_equal(view->body[0], '\0');
    assert_null(sg_stomp_header(view, "destination"));
    assert_string_equal(sg_stomp_header(view, "x-queue-type")->value, "quorum");

    sg_stomp_frame_copy_view(all, view);
    assert_int_equal(view->num_headers, 5);
    assert_int_equal(view->body_len, 4);
    assert_string_equal((const char *)view->body, "body");
    assert_string_equal(sg_stomp_header(view, "destination")->value, "/queue/q");

    /* nothing kept, with the body; and bytes may be NULL */
    struct sg_stomp_frame_copy *none = sg_stomp_frame_copy_filter(view, keep_none, NULL, 1, NULL);
    assert_non_null(none);
    assert_int_equal(sg_stomp_frame_copy_nheaders(none), 0);
    assert_null(sg_stomp_frame_copy_header(none, 0));
    sg_stomp_frame_copy_free(all); /* a copy of a copy's view outlives it */
    sg_stomp_frame_copy_view(none, view);
    assert_int_equal(view->cmd, SG_STOMP_SUBSCRIBE);
    assert_int_equal(view->body_len, 4);
    assert_memory_equal(view->body, "body", 5);

    sg_stomp_frame_copy_free(none);
    sg_stomp_frame_copy_free(c);
    sg_stomp_frame_copy_free(NULL);
    free(view);
}

/* A frame built by hand (no decoder): no headers and no body, a body with
 * NULs, header values with NULs; the view encodes and decodes back to the
 * original. */
static void test_frame_copy_view_round_trip(void **state)
{
    (void)state;
    struct sg_stomp_frame *f = calloc(1, sizeof *f), *view = malloc(sizeof *view);
    assert_non_null(f);
    assert_non_null(view);

    f->cmd = SG_STOMP_DISCONNECT; /* body NULL, no headers */
    size_t bytes = 0;
    struct sg_stomp_frame_copy *c = sg_stomp_frame_copy_new(f, &bytes);
    assert_non_null(c);
    assert_true(bytes > 0);
    sg_stomp_frame_copy_view(c, view);
    assert_int_equal(view->cmd, SG_STOMP_DISCONNECT);
    assert_int_equal(view->num_headers, 0);
    assert_non_null(view->body);
    assert_int_equal(view->body_len, 0);
    assert_int_equal(view->body[0], '\0');
    sg_stomp_frame_copy_free(c);

    /* every header slot used, escapes, a binary body with NULs */
    char keys[SG_STOMP_MAX_HEADERS_CAP][16];
    f->cmd = SG_STOMP_MESSAGE;
    f->num_headers = SG_STOMP_MAX_HEADERS_CAP;
    for (size_t i = 0; i < f->num_headers; i++) {
        snprintf(keys[i], sizeof keys[i], "k%zu", i);
        f->headers[i].key = keys[i];
        f->headers[i].key_len = strlen(keys[i]);
        f->headers[i].value = i % 2 ? "a:b\\c\nd" : "";
        f->headers[i].value_len = i % 2 ? 7 : 0;
    }
    /* the last slot carries the body's length (it holds NULs) */
    struct sg_stomp_header *last = &f->headers[SG_STOMP_MAX_HEADERS_CAP - 1];
    last->key = "content-length";
    last->key_len = 14;
    last->value = "5";
    last->value_len = 1;
    static const uint8_t body[] = {'x', 0, 'y', 0, 0xff};
    f->body = body;
    f->body_len = sizeof body;
    c = sg_stomp_frame_copy_new(f, &bytes);
    assert_non_null(c);
    assert_true(bytes > sizeof body + f->num_headers * sizeof(struct sg_stomp_header));
    for (size_t i = 0; i < f->num_headers; i++)
        keys[i][0] = 'Z'; /* the copy is deep */
    const struct sg_stomp_frame *v = sg_stomp_frame_copy_view(c, view);
    assert_ptr_equal(v, view);
    assert_int_equal(v->num_headers, SG_STOMP_MAX_HEADERS_CAP);
    assert_int_equal(v->body_len, sizeof body);
    assert_memory_equal(v->body, body, sizeof body);
    assert_int_equal(v->body[v->body_len], 0);

    struct sg_buf out;
    sg_buf_init(&out, 0);
    assert_int_equal(
        sg_stomp_encode(&out, 12, v->cmd, v->headers, v->num_headers, v->body, v->body_len, 0),
        SG_OK);
    struct sg_stomp_limits lim = {.max_headers = SG_STOMP_MAX_HEADERS_CAP};
    struct sg_stomp_dec d;
    struct sg_stomp_event ev;
    sg_stomp_dec_init(&d, &lim);
    assert_int_equal(sg_stomp_decode(&d, out.data, out.len, &ev), (ssize_t)out.len);
    assert_int_equal(ev.type, SG_STOMP_EV_FRAME);
    /* all the copy's headers come back */
    assert_int_equal(ev.frame->num_headers, SG_STOMP_MAX_HEADERS_CAP);
    const struct sg_stomp_header *cl = sg_stomp_header(ev.frame, "content-length");
    assert_non_null(cl); /* decoder views are not NUL-terminated */
    assert_int_equal(cl->value_len, 1);
    assert_int_equal(cl->value[0], '5');
    for (size_t i = 0; i + 1 < v->num_headers; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%zu", i);
        const struct sg_stomp_header *h = &ev.frame->headers[i];
        assert_int_equal(h->key_len, strlen(k));
        assert_memory_equal(h->key, k, h->key_len);
        assert_int_equal(h->value_len, i % 2 ? 7 : 0);
        if (i % 2) assert_memory_equal(h->value, "a:b\\c\nd", 7);
    }
    assert_int_equal(ev.frame->body_len, sizeof body);
    assert_memory_equal(ev.frame->body, body, sizeof body);
    sg_stomp_dec_reset(&d);
    sg_buf_reset(&out);
    sg_stomp_frame_copy_free(c);
    free(f);
    free(view);
}

/* max_headers above the array capacity is clamped */
static void test_bounds_cap(void **state)
{
    (void)state;
    struct sg_stomp_limits lim = {.max_headers = 10000};
    struct sg_stomp_dec d;
    struct sg_stomp_event ev;
    sg_stomp_dec_init(&d, &lim);
    assert_int_equal(d.lim.max_headers, SG_STOMP_MAX_HEADERS_CAP);
    char hdr[16];
    ssize_t rc = sg_stomp_decode(&d, (const uint8_t *)"SEND\n", 5, &ev);
    assert_int_equal(rc, 5);
    for (int i = 0; i <= SG_STOMP_MAX_HEADERS_CAP && rc >= 0; i++) {
        int n = snprintf(hdr, sizeof hdr, "h%d:%d\n", i, i);
        rc = sg_stomp_decode(&d, (const uint8_t *)hdr, (size_t)n, &ev);
    }
    assert_int_equal(rc, SG_ETOOMANY);
    sg_stomp_dec_reset(&d);
}

/* ------------------------------------------------------------------ */
/* decoder behaviour outside the vectors */

static void test_lookup(void **state)
{
    (void)state;
    static const uint8_t in[] = "MESSAGE\nfoo:World\nfoo:Hello\nbar:\nlong:0123456789\n\n\0";
    struct sg_stomp_dec d;
    struct sg_stomp_event ev;
    sg_stomp_dec_init(&d, NULL);
    ssize_t rc = sg_stomp_decode(&d, in, sizeof in - 1, &ev);
    assert_int_equal(rc, sizeof in - 1);
    assert_int_equal(ev.type, SG_STOMP_EV_FRAME);
    const struct sg_stomp_header *h = sg_stomp_header(ev.frame, "foo");
    assert_non_null(h);
    assert_int_equal(h->value_len, 5);
    assert_memory_equal(h->value, "World", 5);
    assert_null(sg_stomp_header(ev.frame, "FOO")); /* case-sensitive */
    assert_null(sg_stomp_header(ev.frame, "fo"));

    char out[11];
    assert_int_equal(sg_stomp_header_copy(ev.frame, "foo", out, sizeof out), SG_OK);
    assert_string_equal(out, "World");
    assert_int_equal(sg_stomp_header_copy(ev.frame, "bar", out, sizeof out), SG_OK);
    assert_string_equal(out, "");
    assert_int_equal(sg_stomp_header_copy(ev.frame, "missing", out, sizeof out), SG_ENOKEY);
    assert_string_equal(out, ""); /* unchanged */
    assert_int_equal(sg_stomp_header_copy(ev.frame, "long", out, sizeof out), SG_OK); /* 10+NUL */
    assert_string_equal(out, "0123456789");
    assert_int_equal(sg_stomp_header_copy(ev.frame, "long", out, 10), SG_ETOOBIG);
    assert_string_equal(out, "0123456789"); /* unchanged */
    assert_int_equal(sg_stomp_header_copy(ev.frame, "bar", out, 0), SG_ETOOBIG);
    sg_stomp_dec_reset(&d);
}

static void test_cmd_names(void **state)
{
    (void)state;
    static const char *const names[] = {
        "CONNECT", "STOMP", "SEND",       "SUBSCRIBE", "UNSUBSCRIBE", "ACK",     "NACK",  "BEGIN",
        "COMMIT",  "ABORT", "DISCONNECT", "CONNECTED", "MESSAGE",     "RECEIPT", "ERROR",
    };
    int seen = 0;
    for (int c = SG_STOMP_CONNECT; c <= SG_STOMP_ERROR; c++) {
        const char *n = sg_stomp_cmd_name((enum sg_stomp_cmd)c);
        assert_non_null(n);
        assert_string_equal(n, names[c - SG_STOMP_CONNECT]);
        assert_int_equal(sg_stomp_cmd_parse(n, strlen(n)), c);
        seen++;
    }
    assert_int_equal(seen, 15);
    assert_null(sg_stomp_cmd_name(SG_STOMP_NONE));
    assert_null(sg_stomp_cmd_name((enum sg_stomp_cmd)(SG_STOMP_ERROR + 1)));
    assert_null(sg_stomp_cmd_name((enum sg_stomp_cmd) - 1));
    assert_int_equal(sg_stomp_cmd_parse("send", 4), SG_STOMP_NONE);
    assert_int_equal(sg_stomp_cmd_parse("SEN", 3), SG_STOMP_NONE);
    assert_int_equal(sg_stomp_cmd_parse("SENDX", 5), SG_STOMP_NONE);
    assert_int_equal(sg_stomp_cmd_parse("SENDX", 4), SG_STOMP_SEND); /* length, not NUL */
    assert_int_equal(sg_stomp_cmd_parse("", 0), SG_STOMP_NONE);
}

/* What the session does: CONNECT at the default version, then 1.0 + trim. */
static void test_version_switch(void **state)
{
    (void)state;
    static const uint8_t in[] = "CONNECT\nlogin: a\\n\n\n\0SEND\n destination : /q\\n \n\n\0";
    struct sg_stomp_dec d;
    struct sg_stomp_event ev;
    struct sg_text t = {.n = 0};
    sg_stomp_dec_init(&d, NULL);
    assert_int_equal(d.version, 12);
    assert_int_equal(d.trim, 0);
    size_t off = 0;
    ssize_t rc = sg_stomp_decode(&d, in, sizeof in - 1, &ev);
    assert_true(rc > 0);
    off += (size_t)rc;
    t_event(&t, &ev);
    d.version = 10;
    d.trim = 1;
    rc = sg_stomp_decode(&d, in + off, sizeof in - 1 - off, &ev);
    assert_true(rc > 0);
    off += (size_t)rc;
    assert_int_equal(off, sizeof in - 1);
    t_event(&t, &ev);
    assert_string_equal(t.s, "CONNECT{login= a\\\\n}[] SEND{destination=/q\\\\n}[] ");
    sg_stomp_dec_reset(&d);
}

static double cpu_seconds(void)
{
    return (double)clock() / CLOCKS_PER_SEC;
}

/* 1 MiB fed one byte per call: linear with and without content-length (a
 * decoder that rescans its buffer per call takes minutes here). */
static void test_big_body_1byte(void **state)
{
    (void)state;
    const size_t body = 1024 * 1024;
    for (int with_cl = 0; with_cl < 2; with_cl++) {
        struct sg_buf in;
        sg_buf_init(&in, 0);
        assert_int_equal(sg_buf_printf(&in, "SEND\n"), SG_OK);
        if (with_cl) assert_int_equal(sg_buf_printf(&in, "content-length:%zu\n", body), SG_OK);
        assert_int_equal(sg_buf_append(&in, "\n", 1), SG_OK);
        assert_int_equal(sg_buf_reserve(&in, body + 1), SG_OK);
        memset(in.data + in.len, 'x', body);
        if (with_cl) in.data[in.len + body / 2] = '\0'; /* NULs are body bytes here */
        in.len += body;
        assert_int_equal(sg_buf_append(&in, "", 1), SG_OK);

        struct sg_stomp_dec d;
        struct sg_stomp_event ev;
        sg_stomp_dec_init(&d, NULL);
        double t0 = cpu_seconds();
        int frames = 0;
        for (size_t i = 0; i < in.len; i++) {
            ssize_t rc = sg_stomp_decode(&d, in.data + i, 1, &ev);
            assert_int_equal(rc, 1);
            if (ev.type == SG_STOMP_EV_FRAME) {
                frames++;
                assert_int_equal(ev.frame->body_len, body);
                assert_int_equal(i, in.len - 1);
            }
        }
        double dt = cpu_seconds() - t0;
        assert_int_equal(frames, 1);
        if (dt > 5.0) fail_msg("1 MiB at 1 byte per call took %.1f s (with_cl=%d)", dt, with_cl);
        /* the next call releases the big buffer; the stream goes on */
        assert_int_equal(sg_stomp_decode(&d, (const uint8_t *)"\n", 1, &ev), 1);
        assert_int_equal(ev.type, SG_STOMP_EV_HEARTBEAT);
        assert_int_equal(d.buf.cap, 0);
        assert_int_equal(sg_stomp_decode(&d, (const uint8_t *)"ACK\nid:1\n\n", 10, &ev), 10);
        assert_int_equal(sg_stomp_decode(&d, (const uint8_t *)"\0", 1, &ev), 1);
        assert_int_equal(ev.type, SG_STOMP_EV_FRAME);
        assert_int_equal(ev.frame->cmd, SG_STOMP_ACK);
        assert_int_equal(ev.frame->num_headers, 1);
        assert_int_equal(ev.frame->body_len, 0);
        sg_stomp_dec_reset(&d);
        sg_buf_reset(&in);
    }
}

/* A content-length header alone does not make the decoder allocate the
 * whole body (30 bytes must not buy 1 MiB per connection). */
static void test_content_length_no_upfront_alloc(void **state)
{
    (void)state;
    static const uint8_t in[] = "SEND\ncontent-length:1048576\n\n";
    struct sg_stomp_dec d;
    struct sg_stomp_event ev;
    sg_stomp_dec_init(&d, NULL);
    assert_int_equal(sg_stomp_decode(&d, in, sizeof in - 1, &ev), sizeof in - 1);
    assert_int_equal(ev.type, SG_STOMP_EV_NONE);
    assert_true(d.buf.cap <= 128 * 1024);
    sg_stomp_dec_reset(&d);
}

/* Views stay valid while headers are added and the buffer grows. */
static void test_many_headers_views(void **state)
{
    (void)state;
    struct sg_stomp_limits lim = {.max_headers = 200};
    struct sg_buf in;
    sg_buf_init(&in, 0);
    assert_int_equal(sg_buf_printf(&in, "SEND\n"), SG_OK);
    for (int i = 0; i < 200; i++)
        assert_int_equal(sg_buf_printf(&in, "header-%d:value-%d-%0100d\n", i, i, i), SG_OK);
    assert_int_equal(sg_buf_printf(&in, "\nbody"), SG_OK);
    assert_int_equal(sg_buf_append(&in, "", 1), SG_OK);
    for (size_t step = 1; step <= 4096; step *= 4) {
        struct sg_stomp_dec d;
        struct sg_stomp_event ev = {0};
        sg_stomp_dec_init(&d, &lim);
        size_t off = 0;
        while (off < in.len) {
            size_t n = in.len - off < step ? in.len - off : step;
            ssize_t rc = sg_stomp_decode(&d, in.data + off, n, &ev);
            assert_true(rc >= 0);
            off += (size_t)rc;
            if (ev.type == SG_STOMP_EV_FRAME) break;
        }
        assert_int_equal(ev.type, SG_STOMP_EV_FRAME);
        assert_int_equal(ev.frame->num_headers, 200);
        for (int i = 0; i < 200; i++) {
            char k[32], v[160];
            snprintf(k, sizeof k, "header-%d", i);
            snprintf(v, sizeof v, "value-%d-%0100d", i, i);
            assert_int_equal(sg_stomp_header_copy(ev.frame, k, v + 0, sizeof v), SG_OK);
            char want[160];
            snprintf(want, sizeof want, "value-%d-%0100d", i, i);
            assert_string_equal(v, want);
        }
        assert_int_equal(ev.frame->body_len, 4);
        assert_memory_equal(ev.frame->body, "body", 4);
        sg_stomp_dec_reset(&d);
    }
    sg_buf_reset(&in);
}

/* ------------------------------------------------------------------ */
/* encoder */

static const struct sg_stomp_header msg_hdrs[] = {
    {"destination", 11, "/queue/a", 8},
    {"k:ey", 4, "a\nb:c\\d\re", 9},
};

static void check_encode(int version, enum sg_stomp_cmd cmd, int add_cl, const char *want,
                         size_t want_len)
{
    struct sg_buf out;
    sg_buf_init(&out, 0);
    int rc = sg_stomp_encode(&out, version, cmd, msg_hdrs, 2, (const uint8_t *)"hi", 2, add_cl);
    assert_int_equal(rc, SG_OK);
    struct sg_text got = {.n = 0}, exp = {.n = 0};
    t_bytes(&got, out.data, out.len);
    t_bytes(&exp, want, want_len);
    if (out.len != want_len || memcmp(out.data, want, want_len) != 0)
        fail_msg("encode v%d cmd %d:\n got  %s\n want %s", version, cmd, got.s, exp.s);
    sg_buf_reset(&out);
}

static void test_encode_exact(void **state)
{
    (void)state;
    check_encode(12, SG_STOMP_MESSAGE, 1,
                 IN("MESSAGE\ndestination:/queue/a\nk\\cey:a\\nb\\cc\\\\d\\re\n"
                    "content-length:2\n\nhi\0"));
    check_encode(11, SG_STOMP_MESSAGE, 1,
                 IN("MESSAGE\ndestination:/queue/a\nk\\cey:a\\nb\\cc\\\\d\re\n"
                    "content-length:2\n\nhi\0"));
    check_encode(12, SG_STOMP_MESSAGE, 0,
                 IN("MESSAGE\ndestination:/queue/a\nk\\cey:a\\nb\\cc\\\\d\\re\n\nhi\0"));

    /* 1.0 and CONNECTED: no escaping, so these headers cannot be written */
    struct sg_buf out;
    sg_buf_init(&out, 0);
    assert_int_equal(sg_buf_append(&out, "keep", 4), SG_OK);
    assert_int_equal(sg_stomp_encode(&out, 10, SG_STOMP_MESSAGE, msg_hdrs, 2, NULL, 0, 0),
                     SG_ESTOMP);
    assert_int_equal(sg_stomp_encode(&out, 12, SG_STOMP_CONNECTED, msg_hdrs, 2, NULL, 0, 0),
                     SG_ESTOMP);
    assert_int_equal(out.len, 4); /* left as it was */

    static const struct sg_stomp_header plain[] = {
        {"destination", 11, "/queue/a\\b:c", 12},
        {"session", 7, "x", 1},
    };
    sg_buf_clear(&out);
    assert_int_equal(
        sg_stomp_encode(&out, 10, SG_STOMP_MESSAGE, plain, 2, (const uint8_t *)"{}", 2, 0), SG_OK);
    assert_int_equal(out.len, sizeof("MESSAGE\ndestination:/queue/a\\b:c\nsession:x\n\n{}"));
    assert_memory_equal(out.data, "MESSAGE\ndestination:/queue/a\\b:c\nsession:x\n\n{}\0", out.len);

    sg_buf_clear(&out);
    assert_int_equal(sg_stomp_encode(&out, 12, SG_STOMP_CONNECTED, plain, 2, NULL, 0, 0), SG_OK);
    assert_memory_equal(out.data, "CONNECTED\ndestination:/queue/a\\b:c\nsession:x\n\n\0", out.len);
    assert_int_equal(out.len, sizeof("CONNECTED\ndestination:/queue/a\\b:c\nsession:x\n\n"));

    sg_buf_clear(&out);
    assert_int_equal(sg_stomp_encode(&out, 12, SG_STOMP_MESSAGE, plain, 2, NULL, 0, 0), SG_OK);
    assert_memory_equal(out.data, "MESSAGE\ndestination:/queue/a\\\\b\\cc\nsession:x\n\n\0",
                        out.len);
    assert_int_equal(out.len, sizeof("MESSAGE\ndestination:/queue/a\\\\b\\cc\nsession:x\n\n"));

    /* nothing after the NUL; no headers */
    sg_buf_clear(&out);
    assert_int_equal(sg_stomp_encode(&out, 12, SG_STOMP_RECEIPT, NULL, 0, NULL, 0, 0), SG_OK);
    assert_int_equal(out.len, 10);
    assert_memory_equal(out.data, "RECEIPT\n\n\0", 10);

    /* invalid command */
    sg_buf_clear(&out);
    assert_int_equal(sg_stomp_encode(&out, 12, SG_STOMP_NONE, NULL, 0, NULL, 0, 0), SG_ESTOMP);
    assert_int_equal(out.len, 0);
    sg_buf_reset(&out);
}

static void test_encode_header(void **state)
{
    (void)state;
    struct sg_buf out;
    sg_buf_init(&out, 0);
    assert_int_equal(sg_stomp_encode_header(&out, 12, "a:b", 3, "x\r\n\\", 4), SG_OK);
    assert_int_equal(sg_stomp_encode_header(&out, 11, "a:b", 3, "x\r\n\\y", 5), SG_OK);
    assert_int_equal(sg_stomp_encode_header(&out, 10, "ab", 2, "x:\\", 3), SG_OK);
    static const char want[] = "a\\cb:x\\r\\n\\\\\na\\cb:x\r\\n\\\\y\nab:x:\\\n";
    assert_int_equal(out.len, sizeof want - 1);
    assert_memory_equal(out.data, want, out.len);
    size_t len = out.len;
    /* unrepresentable: nothing appended */
    assert_int_equal(sg_stomp_encode_header(&out, 10, "a:b", 3, "x", 1), SG_ESTOMP);
    assert_int_equal(sg_stomp_encode_header(&out, 10, "ab", 2, "x\ny", 3), SG_ESTOMP);
    assert_int_equal(sg_stomp_encode_header(&out, 11, "ab", 2, "x\r", 2), SG_ESTOMP);
    assert_int_equal(sg_stomp_encode_header(&out, 12, "ab", 2, "x\0y", 3), SG_ESTOMP);
    assert_int_equal(sg_stomp_encode_header(&out, 12, "", 0, "x", 1), SG_ESTOMP);
    assert_int_equal(out.len, len);
    assert_int_equal(sg_stomp_encode_header(&out, 10, "", 0, "x", 1), SG_OK);
    sg_buf_reset(&out);
}

static void test_encode_bounded(void **state)
{
    (void)state;
    static const struct sg_stomp_header h[] = {{"k", 1, "v", 1}};
    /* "SEND\nk:v\ncontent-length:3\n\nabc\0" = 31 bytes */
    struct sg_buf out;
    sg_buf_init(&out, 31);
    assert_int_equal(sg_stomp_encode(&out, 12, SG_STOMP_SEND, h, 1, (const uint8_t *)"abc", 3, 1),
                     SG_OK);
    assert_int_equal(out.len, 31);
    sg_buf_reset(&out);
    sg_buf_init(&out, 30);
    assert_int_equal(sg_stomp_encode(&out, 12, SG_STOMP_SEND, h, 1, (const uint8_t *)"abc", 3, 1),
                     SG_ETOOBIG);
    assert_int_equal(out.len, 0);
    sg_buf_reset(&out);
}

/* encode -> decode gives back the same frame, for every version */
static void test_round_trip(void **state)
{
    (void)state;
    static const uint8_t body[] = {'a', 0, 'b', '\n', 0};
    /* 1.2 escapes everything; 1.1 has no \r; 1.0 nothing at all */
    static const struct sg_stomp_header h12[] = {
        {"destination", 11, "/queue/a", 8},
        {"k:\\ey\n", 6, "v\r\na:l\\\r", 8},
        {"dup", 3, "1", 1},
        {"dup", 3, "2", 1},
        {"empty", 5, "", 0},
    };
    static const struct sg_stomp_header h11[] = {
        {"destination", 11, "/queue/a", 8},
        {"k:\\ey\n", 6, "v\r\na:l\\", 7},
        {"dup", 3, "1", 1},
        {"dup", 3, "2", 1},
    };
    static const struct sg_stomp_header h10[] = {
        {"destination", 11, "/queue/a:b\\c", 12},
        {"", 0, "x\ry", 3},
        {"dup", 3, "1", 1},
        {"dup", 3, "2", 1},
    };
    static const struct {
        int version;
        const struct sg_stomp_header *h;
        size_t nh;
    } sets[] = {{12, h12, 5}, {11, h11, 4}, {10, h10, 4}};
    for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++) {
        int version = sets[s].version;
        const struct sg_stomp_header *hh = sets[s].h;
        size_t nh = sets[s].nh;
        for (int cl = 0; cl < 2; cl++) {
            struct sg_buf out;
            sg_buf_init(&out, 0);
            size_t blen = cl ? sizeof body : 3; /* NULs need content-length */
            const uint8_t *b = cl ? body : (const uint8_t *)"xyz";
            assert_int_equal(sg_stomp_encode(&out, version, SG_STOMP_MESSAGE, hh, nh, b, blen, cl),
                             SG_OK);
            struct sg_stomp_dec d;
            struct sg_stomp_event ev;
            sg_stomp_dec_init(&d, NULL);
            d.version = version;
            ssize_t rc = sg_stomp_decode(&d, out.data, out.len, &ev);
            assert_int_equal(rc, out.len);
            assert_int_equal(ev.type, SG_STOMP_EV_FRAME);
            assert_int_equal(ev.frame->cmd, SG_STOMP_MESSAGE);
            assert_int_equal(ev.frame->num_headers, nh + (size_t)cl);
            for (size_t i = 0; i < nh; i++) {
                assert_int_equal(ev.frame->headers[i].key_len, hh[i].key_len);
                assert_memory_equal(ev.frame->headers[i].key, hh[i].key, hh[i].key_len);
                assert_int_equal(ev.frame->headers[i].value_len, hh[i].value_len);
                assert_memory_equal(ev.frame->headers[i].value, hh[i].value, hh[i].value_len);
            }
            const struct sg_stomp_header *dup = sg_stomp_header(ev.frame, "dup");
            assert_non_null(dup);
            assert_memory_equal(dup->value, "1", 1);
            assert_int_equal(ev.frame->body_len, blen);
            assert_memory_equal(ev.frame->body, b, blen);
            sg_stomp_dec_reset(&d);
            sg_buf_reset(&out);
        }
    }
    /* CONNECT and CONNECTED are never escaped, whatever the version */
    static const struct sg_stomp_header hc[] = {{"login", 5, "a\\b:c", 5}};
    for (int cmd = SG_STOMP_CONNECT; cmd <= SG_STOMP_CONNECTED; cmd += SG_STOMP_CONNECTED - 1) {
        struct sg_buf out;
        sg_buf_init(&out, 0);
        assert_int_equal(sg_stomp_encode(&out, 12, (enum sg_stomp_cmd)cmd, hc, 1, NULL, 0, 0),
                         SG_OK);
        assert_int_equal(out.len, strlen(sg_stomp_cmd_name((enum sg_stomp_cmd)cmd)) + 15);
        struct sg_stomp_dec d;
        struct sg_stomp_event ev;
        sg_stomp_dec_init(&d, NULL);
        assert_int_equal(sg_stomp_decode(&d, out.data, out.len, &ev), out.len);
        assert_int_equal(ev.type, SG_STOMP_EV_FRAME);
        assert_int_equal(ev.frame->cmd, cmd);
        assert_int_equal(ev.frame->headers[0].value_len, 5);
        assert_memory_equal(ev.frame->headers[0].value, "a\\b:c", 5);
        sg_stomp_dec_reset(&d);
        sg_buf_reset(&out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_book),
        cmocka_unit_test(test_trim),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_crlf),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_content_length),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_bounds_cap),
        cmocka_unit_test(test_set_limits),
        cmocka_unit_test(test_set_limits_mid_body),
        cmocka_unit_test(test_frame_copy_filter),
        cmocka_unit_test(test_frame_copy_view_round_trip),
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_cmd_names),
        cmocka_unit_test(test_version_switch),
        cmocka_unit_test(test_big_body_1byte),
        cmocka_unit_test(test_many_headers_views),
        cmocka_unit_test(test_encode_exact),
        cmocka_unit_test(test_encode_header),
        cmocka_unit_test(test_encode_bounded),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_content_length_no_upfront_alloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
