/* ticker.c - the stock-ticker core (see ticker.h). */
#include "ticker.h"
#include "util.h"
#include "error.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sg_ticker_symbol_valid(const char *s, size_t n)
{
    if (n == 0 || n > SG_TICKER_SYM_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' ||
              ch == '^'))
            return 0;
    }
    return 1;
}

int sg_ticker_quote_dest(const char *prefix, const char *dest, const char **sym)
{
    size_t n = prefix ? strlen(prefix) : 0;
    if (!n || strncmp(dest, prefix, n) != 0) return 0;
    *sym = dest + n;
    return 1;
}

int sg_ticker_parse_result(const void *body, size_t len, sg_ticker_quote_fn cb, void *arg,
                           size_t *bad, const char **why)
{
    *bad = 0;
    json_error_t err;
    /* no duplicate keys check needed; JSON_DISABLE_EOF_CHECK off: trailing
     * garbage is an error */
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        *why = "result is not JSON";
        return SG_EPROTO;
    }
    if (!json_is_array(root)) {
        json_decref(root);
        *why = "result is not a JSON array";
        return SG_EPROTO;
    }
    int n = 0;
    size_t i;
    json_t *e;
    json_array_foreach(root, i, e)
    {
        json_t *s = json_object_get(e, "symbol"), *p = json_object_get(e, "price");
        const char *sym = json_string_value(s);
        double price = json_number_value(p);
        if (!sym || !json_is_number(p) || !sg_ticker_symbol_valid(sym, json_string_length(s)) ||
            !isfinite(price) || price <= 0) {
            (*bad)++;
            continue;
        }
        cb(arg, sym, price);
        n++;
    }
    json_decref(root);
    return n;
}

int sg_ticker_work_json(struct sg_buf *b, const char (*syms)[SG_TICKER_SYM_CAP], size_t n)
{
    int rc = sg_buf_append_str(b, "{\"stocks\":[");
    for (size_t i = 0; rc == SG_OK && i < n; i++)
        rc = sg_buf_printf(b, "%s\"%s\"", i ? "," : "", syms[i]);
    if (rc == SG_OK) rc = sg_buf_append_str(b, "]}");
    return rc;
}

size_t sg_ticker_quote_body(char *out, size_t cap, const struct sg_quote *q)
{
    int n = snprintf(out, cap, "{\"symbol\":\"%s\",\"price\":%.15g,\"ts\":%llu}", q->symbol,
                     q->price, (unsigned long long)q->ts_ms);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

/* ---- the hub */

#define WORDS 4 /* 256 workers, one bit each */

struct hent {
    struct hent *next; /* hash chain */
    char sym[SG_TICKER_SYM_CAP];
    uint64_t held[WORDS];  /* workers holding it */
    uint64_t dirty[WORDS]; /* workers with it on their list */
    int nheld;
    int is_new; /* on the new list */
    int has;    /* q holds a price */
    struct sg_quote q;
};

struct plist {
    struct hent **v;
    size_t n, cap;
};

struct sg_ticker_hub {
    pthread_mutex_t mu;
    size_t max, known, interest, nbuckets;
    struct hent **tab;
    int nworkers;
    struct plist *dirty; /* per worker */
    struct plist fresh;  /* joined the interest set, not yet taken */
    uint64_t seq;
    sg_ticker_wake_fn wake;
    void *arg;
};

static int bit(const uint64_t *m, int w)
{
    return (int)((m[w / 64] >> (w % 64)) & 1);
}

static void set_bit(uint64_t *m, int w, int on)
{
    if (on)
        m[w / 64] |= 1ULL << (w % 64);
    else
        m[w / 64] &= ~(1ULL << (w % 64));
}

static int any_bit(const uint64_t *m)
{
    for (int i = 0; i < WORDS; i++)
        if (m[i]) return 1;
    return 0;
}

static int plist_push(struct plist *l, struct hent *e)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct hent **v = realloc(l->v, cap * sizeof *v);
        if (!v) return SG_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = e;
    return SG_OK;
}

struct sg_ticker_hub *sg_ticker_hub_new(size_t max_symbols, int nworkers, sg_ticker_wake_fn wake,
                                        void *arg)
{
    if (!max_symbols || nworkers < 1 || nworkers > 64 * WORDS) return NULL;
    struct sg_ticker_hub *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->max = max_symbols;
    h->nworkers = nworkers;
    h->wake = wake;
    h->arg = arg;
    /* buckets for the bound (at most 64 Ki: longer chains past that) */
    h->nbuckets = 16;
    while (h->nbuckets < max_symbols && h->nbuckets < 65536)
        h->nbuckets *= 2;
    h->tab = calloc(h->nbuckets, sizeof *h->tab);
    h->dirty = calloc((size_t)nworkers, sizeof *h->dirty);
    if (!h->tab || !h->dirty) {
        free(h->tab);
        free(h->dirty);
        free(h);
        return NULL;
    }
    pthread_mutex_init(&h->mu, NULL);
    return h;
}

void sg_ticker_hub_free(struct sg_ticker_hub *h)
{
    if (!h) return;
    for (size_t i = 0; i < h->nbuckets; i++) {
        struct hent *e = h->tab[i], *n;
        for (; e; e = n) {
            n = e->next;
            free(e);
        }
    }
    for (int w = 0; w < h->nworkers; w++)
        free(h->dirty[w].v);
    free(h->fresh.v);
    free(h->dirty);
    free(h->tab);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

static struct hent **slot(struct sg_ticker_hub *h, const char *sym)
{
    struct hent **p = &h->tab[sg_fnv1a(sym) & (h->nbuckets - 1)];
    while (*p && strcmp((*p)->sym, sym))
        p = &(*p)->next;
    return p;
}

/* A symbol nobody holds and no list points at: its cached price can go. */
static int forgettable(const struct hent *e)
{
    return !e->nheld && !e->is_new && !any_bit(e->dirty);
}

/* Makes room for one symbol by forgetting the cached symbol with the
 * oldest price (a full table only: the scan is rare). */
static int evict_one(struct sg_ticker_hub *h)
{
    struct hent **best = NULL;
    for (size_t i = 0; i < h->nbuckets; i++)
        for (struct hent **p = &h->tab[i]; *p; p = &(*p)->next)
            if (forgettable(*p) && (!best || (*p)->q.seq < (*best)->q.seq)) best = p;
    if (!best) return 0;
    struct hent *e = *best;
    *best = e->next;
    free(e);
    h->known--;
    return 1;
}

int sg_ticker_hub_ref(struct sg_ticker_hub *h, int w, const char *sym)
{
    if (w < 0 || w >= h->nworkers) return SG_EPROTO;
    int rc = SG_OK, wake0 = 0;
    pthread_mutex_lock(&h->mu);
    struct hent **p = slot(h, sym), *e = *p;
    if (!e) {
        if (h->known >= h->max && !evict_one(h)) {
            rc = SG_ETOOMANY;
            goto out;
        }
        p = slot(h, sym); /* the eviction may have edited this chain */
        if (!(e = calloc(1, sizeof *e))) {
            rc = SG_ENOMEM;
            goto out;
        }
        snprintf(e->sym, sizeof e->sym, "%s", sym);
        snprintf(e->q.symbol, sizeof e->q.symbol, "%s", sym);
        *p = e;
        h->known++;
    }
    if (bit(e->held, w)) goto out;
    if (!e->nheld) {
        /* joins the interest set: to be sent as work at once */
        if (!e->is_new && plist_push(&h->fresh, e) == SG_OK) e->is_new = 1;
        h->interest++;
        wake0 = 1;
    }
    set_bit(e->held, w, 1);
    e->nheld++;
out:
    pthread_mutex_unlock(&h->mu);
    if (wake0 && h->wake) h->wake(h->arg, 0);
    return rc;
}

void sg_ticker_hub_unref(struct sg_ticker_hub *h, int w, const char *sym)
{
    if (w < 0 || w >= h->nworkers) return;
    pthread_mutex_lock(&h->mu);
    struct hent *e = *slot(h, sym);
    if (e && bit(e->held, w)) {
        set_bit(e->held, w, 0);
        if (!--e->nheld) h->interest--;
    }
    pthread_mutex_unlock(&h->mu);
}

int sg_ticker_hub_last(struct sg_ticker_hub *h, const char *sym, struct sg_quote *q)
{
    int rc = SG_ENOKEY;
    pthread_mutex_lock(&h->mu);
    struct hent *e = *slot(h, sym);
    if (e && e->has) {
        *q = e->q;
        rc = SG_OK;
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

int sg_ticker_hub_update(struct sg_ticker_hub *h, const char *sym, double price, uint64_t ts_ms)
{
    uint64_t wake[WORDS] = {0};
    pthread_mutex_lock(&h->mu);
    struct hent *e = *slot(h, sym);
    if (!e) {
        pthread_mutex_unlock(&h->mu);
        return 0;
    }
    e->has = 1;
    e->q.price = price;
    e->q.ts_ms = ts_ms;
    e->q.seq = ++h->seq;
    for (int w = 0; w < h->nworkers; w++) {
        if (!bit(e->held, w) || bit(e->dirty, w)) continue;
        if (plist_push(&h->dirty[w], e) != SG_OK) continue; /* ENOMEM: this one is missed */
        set_bit(e->dirty, w, 1);
        if (h->dirty[w].n == 1) set_bit(wake, w, 1);
    }
    pthread_mutex_unlock(&h->mu);
    for (int w = 0; h->wake && w < h->nworkers; w++)
        if (bit(wake, w)) h->wake(h->arg, w);
    return 1;
}

size_t sg_ticker_hub_take(struct sg_ticker_hub *h, int w, struct sg_quote *out, size_t max)
{
    if (w < 0 || w >= h->nworkers) return 0;
    pthread_mutex_lock(&h->mu);
    struct plist *l = &h->dirty[w];
    size_t n = l->n < max ? l->n : max;
    for (size_t i = 0; i < n; i++) {
        struct hent *e = l->v[i];
        set_bit(e->dirty, w, 0);
        out[i] = e->q;
    }
    /* an empty list may have no array yet: memmove(NULL, ...) is UB */
    if (l->n > n) memmove(l->v, l->v + n, (l->n - n) * sizeof *l->v);
    l->n -= n;
    pthread_mutex_unlock(&h->mu);
    return n;
}

size_t sg_ticker_hub_take_new(struct sg_ticker_hub *h, char (*out)[SG_TICKER_SYM_CAP], size_t max)
{
    size_t n = 0, i = 0;
    pthread_mutex_lock(&h->mu);
    struct plist *l = &h->fresh;
    for (; i < l->n && n < max; i++) {
        struct hent *e = l->v[i];
        e->is_new = 0;
        if (e->nheld) memcpy(out[n++], e->sym, SG_TICKER_SYM_CAP);
    }
    if (l->n > i) memmove(l->v, l->v + i, (l->n - i) * sizeof *l->v);
    l->n -= i;
    pthread_mutex_unlock(&h->mu);
    return n;
}

size_t sg_ticker_hub_interest(struct sg_ticker_hub *h, char (*out)[SG_TICKER_SYM_CAP], size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < h->nbuckets; i++)
        for (struct hent *e = h->tab[i]; e; e = e->next)
            if (e->nheld && n < max) memcpy(out[n++], e->sym, SG_TICKER_SYM_CAP);
    size_t total = h->interest;
    pthread_mutex_unlock(&h->mu);
    return total;
}

size_t sg_ticker_hub_known(struct sg_ticker_hub *h)
{
    pthread_mutex_lock(&h->mu);
    size_t n = h->known;
    pthread_mutex_unlock(&h->mu);
    return n;
}
