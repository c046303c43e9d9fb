/* quotes.c - stockd's bounded quote table (see quotes.h).
 *
 * Entries are allocated one by one as symbols arrive and are reused on
 * eviction, so a table that never fills costs what it holds. Buckets start
 * small and double while there are more entries than buckets (load <= 1),
 * never past the power of two that fits max. The LRU list is intrusive:
 * head = most recently requested, tail = the next to go.
 */
#include "quotes.h"
#include "util.h"
#include "error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    char sym[SG_QUOTE_SYM_MAX + 1];
    struct sg_quote_state st;
    uint32_t hash;
    struct entry *chain;         /* next in the bucket */
    struct entry *newer, *older; /* LRU list */
};

struct sg_quotes {
    size_t max, count;
    uint64_t evictions;
    struct entry **buckets;
    size_t nbuckets; /* a power of two */
    struct entry *newest, *oldest;
};

#define MIN_BUCKETS 64

struct sg_quotes *sg_quotes_new(size_t max)
{
    if (max == 0) return NULL;
    struct sg_quotes *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->max = max;
    q->nbuckets = MIN_BUCKETS;
    q->buckets = calloc(q->nbuckets, sizeof *q->buckets);
    if (!q->buckets) {
        free(q);
        return NULL;
    }
    return q;
}

void sg_quotes_free(struct sg_quotes *q)
{
    if (!q) return;
    struct entry *e = q->newest;
    while (e) {
        struct entry *next = e->older;
        free(e);
        e = next;
    }
    free(q->buckets);
    free(q);
}

static struct entry *find(const struct sg_quotes *q, const char *sym, uint32_t h)
{
    for (struct entry *e = q->buckets[h & (q->nbuckets - 1)]; e; e = e->chain)
        if (e->hash == h && strcmp(e->sym, sym) == 0) return e;
    return NULL;
}

static void lru_unlink(struct sg_quotes *q, struct entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        q->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        q->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void lru_push(struct sg_quotes *q, struct entry *e)
{
    e->newer = NULL;
    e->older = q->newest;
    if (q->newest) q->newest->newer = e;
    q->newest = e;
    if (!q->oldest) q->oldest = e;
}

static void bucket_unlink(struct sg_quotes *q, struct entry *e)
{
    struct entry **pp = &q->buckets[e->hash & (q->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->chain;
    *pp = e->chain;
    e->chain = NULL;
}

static void bucket_push(struct sg_quotes *q, struct entry *e)
{
    struct entry **b = &q->buckets[e->hash & (q->nbuckets - 1)];
    e->chain = *b;
    *b = e;
}

/* Doubles the buckets while that keeps the load <= 1, up to what max
 * needs. A failed allocation is not an error: chains get longer. */
static void maybe_grow(struct sg_quotes *q)
{
    if (q->count <= q->nbuckets || q->nbuckets >= q->max) return;
    size_t n = q->nbuckets * 2;
    struct entry **nb = calloc(n, sizeof *nb);
    if (!nb) return;
    for (size_t i = 0; i < q->nbuckets; i++) {
        struct entry *e = q->buckets[i];
        while (e) {
            struct entry *next = e->chain;
            e->chain = nb[e->hash & (n - 1)];
            nb[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(q->buckets);
    q->buckets = nb;
    q->nbuckets = n;
}

int sg_quotes_touch(struct sg_quotes *q, const char *sym, struct sg_quote_state **st,
                    struct sg_quote_result *res)
{
    size_t len = strlen(sym);
    if (len > SG_QUOTE_SYM_MAX) return SG_ETOOBIG;
    uint32_t h = sg_fnv1a(sym);
    struct entry *e = find(q, sym, h);
    int created = 0, evicted = 0;
    char gone[SG_QUOTE_SYM_MAX + 1] = "";
    if (e) {
        lru_unlink(q, e);
    } else {
        if (q->count >= q->max) {
            /* full: the least recently requested symbol makes room */
            e = q->oldest;
            lru_unlink(q, e);
            bucket_unlink(q, e);
            memcpy(gone, e->sym, sizeof gone);
            q->evictions++;
            evicted = 1;
        } else {
            e = malloc(sizeof *e);
            if (!e) return SG_ENOMEM;
            q->count++;
        }
        memset(e, 0, sizeof *e);
        memcpy(e->sym, sym, len + 1);
        e->hash = h;
        e->st.price = sg_quotes_start_price(sym);
        bucket_push(q, e);
        created = 1;
        maybe_grow(q);
    }
    lru_push(q, e);
    *st = &e->st;
    res->price = e->st.price;
    res->created = created;
    res->evicted = evicted;
    memcpy(res->evicted_sym, gone, sizeof gone);
    return SG_OK;
}

int sg_quotes_next(struct sg_quotes *q, const char *sym, double step, struct sg_quote_result *res)
{
    struct sg_quote_state *st;
    int rc = sg_quotes_touch(q, sym, &st, res);
    if (rc != SG_OK) return rc;
    /* the walk: a step, a floor of one cent, whole cents */
    st->price += step;
    if (st->price < 0.01) st->price = 0.01;
    st->price = round(st->price * 100.0) / 100.0;
    res->price = st->price;
    return SG_OK;
}

int sg_quotes_peek(const struct sg_quotes *q, const char *sym, double *price)
{
    if (strlen(sym) > SG_QUOTE_SYM_MAX) return SG_ENOKEY;
    const struct entry *e = find(q, sym, sg_fnv1a(sym));
    if (!e) return SG_ENOKEY;
    if (price) *price = e->st.price;
    return SG_OK;
}

int sg_quotes_peek_state(const struct sg_quotes *q, const char *sym, struct sg_quote_state *st)
{
    if (strlen(sym) > SG_QUOTE_SYM_MAX) return SG_ENOKEY;
    const struct entry *e = find(q, sym, sg_fnv1a(sym));
    if (!e) return SG_ENOKEY;
    if (st) *st = e->st;
    return SG_OK;
}

size_t sg_quotes_count(const struct sg_quotes *q)
{
    return q->count;
}

uint64_t sg_quotes_evictions(const struct sg_quotes *q)
{
    return q->evictions;
}

const char *sg_quotes_lru(const struct sg_quotes *q)
{
    return q->count >= q->max && q->oldest ? q->oldest->sym : NULL;
}

double sg_quotes_start_price(const char *sym)
{
    static const struct {
        const char *s;
        double p;
    } book[] = {
        {"AAPL", 95.00}, {"MSFT", 50.00}, {"AMZN", 300.00}, {"GOOG", 550.00}, {"YHOO", 35.00}};
    for (size_t i = 0; i < sizeof book / sizeof book[0]; i++)
        if (!strcmp(book[i].s, sym)) return book[i].p;
    return 10.0 + (double)(sg_fnv1a(sym) % 49000) / 100.0; /* 10.00 .. 499.99, stable per symbol */
}
