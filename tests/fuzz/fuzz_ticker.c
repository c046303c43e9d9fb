/* fuzz_ticker.c - libFuzzer target for the ticker core (ticker.h).
 *
 * Byte 0 picks the mode; the rest is its input.
 *
 * Even: the rest is a stocks.result body for sg_ticker_parse_result.
 *   - SG_EPROTO comes with one of its two texts and no callback;
 *   - otherwise the return is the number of callbacks, and that plus
 *     *bad is the number of entries of the array (read back with
 *     jansson), each entry counted once;
 *   - every symbol passed to the callback is valid (1-12 of A-Z 0-9 . -
 *     ^), every price finite and > 0, and they come in array order, each
 *     matching its entry (an object with that symbol and that price).
 *
 * Odd: the rest is an op script for a hub of 2 workers and max_symbols 4
 * over 6 symbols, one op a byte (op = b & 7, worker = b >> 3 & 1, symbol =
 * (b >> 4) % 6, a take's max = (b >> 4 & 3) + 1). A model follows it:
 * exactly the holds (so the interest set), each worker's update list
 * (content, order, newest price and seq), the new-symbol list, the last
 * prices and the expected wake calls; which symbol an eviction forgets is
 * known except among symbols that never had a price (those become "maybe
 * known"). Checked after every op: interest <= known <= max, known within
 * the model's bounds; every return value where the model knows it.
 *
 * Violations abort(). Plain C: also linked with replay_main.c under gcc.
 */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "ticker.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c);              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* ---- the parser */

struct pctx {
    json_t *root; /* our own reading of the body (NULL: not an array) */
    size_t next;  /* the entry the next callback must match */
    int calls;
};

static int entry_ok(json_t *e, const char **sym, double *price)
{
    json_t *s = json_object_get(e, "symbol"), *p = json_object_get(e, "price");
    if (!json_is_object(e) || !json_is_string(s) || !json_is_number(p)) return 0;
    const char *v = json_string_value(s);
    size_t n = json_string_length(s);
    if (n < 1 || n > 12 || strlen(v) != n) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '^'))
            return 0;
    }
    double d = json_number_value(p);
    if (!isfinite(d) || d <= 0) return 0;
    *sym = v;
    *price = d;
    return 1;
}

static void on_quote(void *arg, const char *symbol, double price)
{
    struct pctx *x = arg;
    x->calls++;
    CHECK(symbol != NULL);
    size_t n = strnlen(symbol, SG_TICKER_SYM_CAP);
    CHECK(n >= 1 && n <= SG_TICKER_SYM_MAX);
    CHECK(sg_ticker_symbol_valid(symbol, n));
    CHECK(isfinite(price) && price > 0);
    /* the next valid entry of our own reading */
    CHECK(x->root != NULL);
    const char *s;
    double p;
    while (x->next < json_array_size(x->root) &&
           !entry_ok(json_array_get(x->root, x->next), &s, &p))
        x->next++;
    CHECK(x->next < json_array_size(x->root));
    CHECK(strcmp(s, symbol) == 0);
    CHECK(p == price);
    x->next++;
}

static void fuzz_parse(const uint8_t *d, size_t n)
{
    json_error_t err;
    struct pctx x = {NULL, 0, 0};
    x.root = json_loadb((const char *)d, n, JSON_REJECT_DUPLICATES, &err);
    if (x.root && !json_is_array(x.root)) {
        json_decref(x.root);
        x.root = NULL;
    }
    size_t bad = 99999;
    const char *why = NULL;
    int rc = sg_ticker_parse_result(d, n, on_quote, &x, &bad, &why);
    if (rc < 0) {
        CHECK(rc == SG_EPROTO);
        CHECK(why != NULL);
        CHECK(!strcmp(why, "result is not JSON") || !strcmp(why, "result is not a JSON array"));
        CHECK(x.calls == 0);
        CHECK(x.root == NULL);
    } else {
        CHECK(x.root != NULL);
        CHECK(rc == x.calls);
        CHECK((size_t)rc + bad == json_array_size(x.root));
        /* no valid entry after the last one the parser passed on */
        const char *s;
        double p;
        for (size_t i = x.next; i < json_array_size(x.root); i++)
            CHECK(!entry_ok(json_array_get(x.root, i), &s, &p));
    }
    if (x.root) json_decref(x.root);
}

/* ---- the hub and its model */

#define NW 2
#define NS 6
#define MAXSYM 4

enum { NO, YES, MAYBE };

/* three pairs that share a bucket of the hub's 16 (FNV-1a & 15: 7, 7, 8, 8,
 * 3, 3), so evictions edit hash chains with other entries on them */
static const char *const SYMS[NS] = {"X", "BRK.A", "0700", "^IXIC", "MSFT", "T"};

struct msym {
    int known; /* NO, YES, MAYBE */
    int held[NW], nheld;
    int is_new;
    int dirty[NW];
    int has;    /* if known, it has this price */
    int pmaybe; /* ... or maybe none at all (an ambiguous ref) */
    double price;
    uint64_t ts, seq;
};

struct model {
    struct msym s[NS];
    int fresh[64], nfresh;
    int dl[NW][64], ndl[NW];
    uint64_t seq;
    long wakes[NW];     /* counted by the wake function */
    long want_wake[NW]; /* what the model expects */
};

static struct model M;

static void on_wake(void *arg, int w)
{
    CHECK(arg == &M);
    CHECK(w >= 0 && w < NW);
    M.wakes[w]++;
}

static int sym_index(const char *s)
{
    for (int i = 0; i < NS; i++)
        if (!strcmp(SYMS[i], s)) return i;
    return -1;
}

static int forgettable(const struct msym *m)
{
    return m->known != NO && !m->nheld && !m->is_new && !m->dirty[0] && !m->dirty[1];
}

static void count_known(size_t *yes, size_t *maybe)
{
    *yes = *maybe = 0;
    for (int i = 0; i < NS; i++) {
        if (M.s[i].known == YES) (*yes)++;
        if (M.s[i].known == MAYBE) (*maybe)++;
    }
}

static void check_all(struct sg_ticker_hub *h)
{
    size_t known = sg_ticker_hub_known(h), interest = sg_ticker_hub_interest(h, NULL, 0);
    CHECK(interest <= known && known <= MAXSYM);
    size_t yes, maybe, held = 0;
    count_known(&yes, &maybe);
    CHECK(yes <= known && known <= yes + maybe);
    for (int i = 0; i < NS; i++)
        if (M.s[i].nheld) {
            held++;
            CHECK(M.s[i].known == YES);
        }
    CHECK(interest == held);
    /* the set's content */
    char out[MAXSYM][SG_TICKER_SYM_CAP];
    CHECK(sg_ticker_hub_interest(h, out, MAXSYM) == held);
    int seen[NS] = {0};
    for (size_t i = 0; i < held; i++) {
        int k = sym_index(out[i]);
        CHECK(k >= 0 && M.s[k].nheld && !seen[k]);
        seen[k] = 1;
    }
    for (int w = 0; w < NW; w++)
        CHECK(M.wakes[w] == M.want_wake[w]);
}

static void op_ref(struct sg_ticker_hub *h, int w, int k)
{
    struct msym *m = &M.s[k];
    size_t before = sg_ticker_hub_known(h);
    int rc = sg_ticker_hub_ref(h, w, SYMS[k]);
    size_t after = sg_ticker_hub_known(h);
    if (rc != SG_OK) {
        CHECK(rc == SG_ETOOMANY);
        CHECK(m->known != YES); /* a known symbol always gets its hold */
        CHECK(before == MAXSYM && after == MAXSYM);
        for (int i = 0; i < NS; i++)
            CHECK(!(M.s[i].known == YES && forgettable(&M.s[i])));
        if (m->known == MAYBE) { /* it would have been found */
            m->known = NO;
            m->has = 0;
        }
        return;
    }
    if (m->known == NO || m->known == MAYBE) {
        int was_maybe = m->known == MAYBE;
        if (after == before + 1) {
            /* a new entry, no eviction */
            m->has = 0;
            m->pmaybe = 0;
        } else {
            CHECK(after == before);
            CHECK(before == MAXSYM || was_maybe);
            int ambiguous = was_maybe, unpriced = 0, victim = -1;
            for (int i = 0; i < NS; i++) {
                struct msym *c = &M.s[i];
                if (i == k || !forgettable(c)) continue;
                if (c->known == MAYBE || c->pmaybe) ambiguous = 1;
                if (!c->has) {
                    /* an unpriced one goes before any priced one */
                    if (unpriced++) ambiguous = 1;
                    victim = i;
                } else if (!unpriced && (victim < 0 || c->seq < M.s[victim].seq)) {
                    victim = i;
                }
            }
            if (was_maybe && before < MAXSYM) {
                /* no eviction: it was known after all */
            } else if (ambiguous) {
                /* which one went (if any) is not known here */
                for (int i = 0; i < NS; i++)
                    if (i != k && forgettable(&M.s[i])) M.s[i].known = MAYBE;
            } else {
                CHECK(victim >= 0); /* room was made: there was a candidate */
                M.s[victim].known = NO;
                M.s[victim].has = 0;
            }
            if (!was_maybe) {
                m->has = 0;
                m->pmaybe = 0;
            } else if (before == MAXSYM) {
                m->pmaybe = 1; /* found (its price kept) or new (none) */
            }
        }
        m->known = YES;
    }
    if (m->held[w]) return;
    if (!m->nheld) {
        if (!m->is_new) {
            CHECK(M.nfresh < 64);
            M.fresh[M.nfresh++] = k;
            m->is_new = 1;
        }
        M.want_wake[0]++;
    }
    m->held[w] = 1;
    m->nheld++;
}

static void op_unref(struct sg_ticker_hub *h, int w, int k)
{
    struct msym *m = &M.s[k];
    sg_ticker_hub_unref(h, w, SYMS[k]);
    if (m->held[w]) {
        m->held[w] = 0;
        m->nheld--;
    }
}

static void op_update(struct sg_ticker_hub *h, int k, double price, uint64_t ts)
{
    struct msym *m = &M.s[k];
    int rc = sg_ticker_hub_update(h, SYMS[k], price, ts);
    CHECK(rc == 0 || rc == 1);
    if (m->known == YES) CHECK(rc == 1);
    if (m->known == NO) CHECK(rc == 0);
    if (!rc) {
        m->known = NO;
        m->has = 0;
        return;
    }
    m->known = YES;
    m->has = 1;
    m->pmaybe = 0;
    m->price = price;
    m->ts = ts;
    m->seq = ++M.seq;
    for (int w = 0; w < NW; w++) {
        if (!m->held[w] || m->dirty[w]) continue;
        CHECK(M.ndl[w] < 64);
        M.dl[w][M.ndl[w]++] = k;
        m->dirty[w] = 1;
        if (M.ndl[w] == 1) M.want_wake[w]++;
    }
}

static void op_take(struct sg_ticker_hub *h, int w, size_t max)
{
    struct sg_quote q[8];
    memset(q, 0, sizeof q);
    size_t n = sg_ticker_hub_take(h, w, q, max);
    size_t want = (size_t)M.ndl[w] < max ? (size_t)M.ndl[w] : max;
    CHECK(n == want);
    for (size_t i = 0; i < n; i++) {
        int k = M.dl[w][i];
        struct msym *m = &M.s[k];
        CHECK(strcmp(q[i].symbol, SYMS[k]) == 0);
        CHECK(m->has && q[i].price == m->price && q[i].ts_ms == m->ts && q[i].seq == m->seq);
        m->dirty[w] = 0;
    }
    memmove(M.dl[w], M.dl[w] + n, (size_t)(M.ndl[w] - (int)n) * sizeof M.dl[w][0]);
    M.ndl[w] -= (int)n;
}

static void op_take_new(struct sg_ticker_hub *h, size_t max)
{
    char out[8][SG_TICKER_SYM_CAP];
    size_t n = sg_ticker_hub_take_new(h, out, max);
    size_t got = 0;
    int i = 0;
    for (; i < M.nfresh && got < max; i++) {
        struct msym *m = &M.s[M.fresh[i]];
        m->is_new = 0;
        if (m->nheld) {
            CHECK(got < n);
            CHECK(strcmp(out[got], SYMS[M.fresh[i]]) == 0);
            got++;
        }
    }
    CHECK(n == got);
    memmove(M.fresh, M.fresh + i, (size_t)(M.nfresh - i) * sizeof M.fresh[0]);
    M.nfresh -= i;
}

static void op_last(struct sg_ticker_hub *h, int k)
{
    struct msym *m = &M.s[k];
    struct sg_quote q;
    int rc = sg_ticker_hub_last(h, SYMS[k], &q);
    if (rc == SG_OK) {
        CHECK(m->known != NO && m->has);
        CHECK(strcmp(q.symbol, SYMS[k]) == 0);
        CHECK(q.price == m->price && q.ts_ms == m->ts && q.seq == m->seq);
    } else {
        CHECK(rc == SG_ENOKEY);
        CHECK(!(m->known == YES && m->has && !m->pmaybe));
    }
}

/* ops with a worker out of range change nothing */
static void op_bad_worker(struct sg_ticker_hub *h, int k, int which)
{
    int w = which & 1 ? NW : -1;
    struct sg_quote q[2];
    switch ((which >> 1) % 3) {
    case 0:
        CHECK(sg_ticker_hub_ref(h, w, SYMS[k]) < 0);
        break;
    case 1:
        sg_ticker_hub_unref(h, w, SYMS[k]);
        break;
    default:
        CHECK(sg_ticker_hub_take(h, w, q, 2) == 0);
    }
}

/* -DFZ_TRACE: print each op and the model after it (to read a crash) */
static void trace(size_t i, uint8_t b, struct sg_ticker_hub *h)
{
#ifdef FZ_TRACE
    static const char *const ops[] = {"ref",  "ref",      "unref", "update",
                                      "take", "take_new", "last",  "bad"};
    fprintf(stderr, "%2zu %-8s w%d %-6s known %zu |", i, ops[b & 7], (b >> 3) & 1,
            SYMS[(b >> 4) % NS], sg_ticker_hub_known(h));
    for (int k = 0; k < NS; k++) {
        const struct msym *m = &M.s[k];
        fprintf(stderr, " %s:%s%s%s%s%s", SYMS[k],
                m->known == YES  ? "Y"
                : m->known == NO ? "N"
                                 : "?",
                m->nheld ? "h" : "", m->is_new ? "n" : "", m->dirty[0] || m->dirty[1] ? "d" : "",
                m->has ? (m->pmaybe ? "p?" : "p") : "");
    }
    fprintf(stderr, "\n");
#else
    (void)i;
    (void)b;
    (void)h;
#endif
}

static void fuzz_hub(const uint8_t *d, size_t n)
{
    memset(&M, 0, sizeof M);
    struct sg_ticker_hub *h = sg_ticker_hub_new(MAXSYM, NW, on_wake, &M);
    CHECK(h != NULL);
    for (size_t i = 0; i < n && i < 4096; i++) {
        uint8_t b = d[i];
        int op = b & 7, w = (b >> 3) & 1, k = (b >> 4) % NS;
        size_t max = (size_t)((b >> 4) & 3) + 1;
        switch (op) {
        case 0:
        case 1:
            op_ref(h, w, k);
            break;
        case 2:
            op_unref(h, w, k);
            break;
        case 3:
            op_update(h, k, 0.01 * (double)(i + 1), (uint64_t)i);
            break;
        case 4:
            op_take(h, w, max);
            break;
        case 5:
            op_take_new(h, max);
            break;
        case 6:
            op_last(h, k);
            break;
        default:
            op_bad_worker(h, k, b >> 3);
        }
        trace(i, b, h);
        check_all(h);
    }
    sg_ticker_hub_free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (data[0] & 1)
        fuzz_hub(data + 1, size - 1);
    else
        fuzz_parse(data + 1, size - 1);
    return 0;
}
