/* source_sim.c - the random walk source (see source.h).
 *
 * The book's chapter 2 server moved each price on its own timer, every
 * 0.5-2.5 s by up to 1.50 either way. Here nothing runs between requests:
 * a request makes the moves that came due since the last one, so the
 * prices are those the timers would have produced and the source stays
 * pure. Each symbol draws from its own xorshift64* generator, seeded with
 * splitmix64(seed ^ hash(symbol)), so asking for other symbols (or in
 * another order) never changes a symbol's series.
 */
#include "error.h"
#include "log.h"
#include "source.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sim {
    struct sg_source base;
    uint64_t seed;
    struct sg_quotes *table;
};

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static double rnd(uint64_t *s) /* xorshift64*, uniform in [0,1) */
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (double)((*s * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static uint64_t sym_hash(const char *s) /* FNV-1a 64 */
{
    uint64_t h = 14695981039346656037ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static double interval(uint64_t *rng)
{
    return 0.5 + 2.0 * rnd(rng);
}

static void move(struct sg_quote_state *st)
{
    st->price += rnd(&st->rng) * 3.0 - 1.5;
    if (st->price < 0.01) st->price = 0.01;
    st->price = round(st->price * 100.0) / 100.0;
    st->moves++;
}

static void sim_quote(struct sg_source *src, struct sg_src_quote *q, size_t n, double now)
{
    struct sim *s = (struct sim *)src;
    for (size_t i = 0; i < n; i++) {
        struct sg_quote_state *st;
        struct sg_quote_result res;
        q[i].have = 0;
        if (sg_quotes_touch(s->table, q[i].sym, &st, &res) != SG_OK) {
            /* out of memory: serve the start price, remember nothing */
            q[i].price = sg_quotes_start_price(q[i].sym);
            q[i].have = 1;
            continue;
        }
        if (res.evicted)
            sg_log(SG_LOG_DEBUG, "quote table full (%zu symbols): forgot %s for %s (%llu evicted)",
                   sg_quotes_count(s->table), res.evicted_sym, q[i].sym,
                   (unsigned long long)sg_quotes_evictions(s->table));
        if (res.created) {
            st->rng = splitmix64(s->seed ^ sym_hash(q[i].sym));
            if (!st->rng) st->rng = 0x2545f4914f6cdd1dULL;
            st->next_move = now + interval(&st->rng);
        }
        int k = 0;
        while (st->next_move <= now && k < SG_SIM_CATCHUP_MAX) {
            move(st);
            st->next_move += interval(&st->rng);
            k++;
        }
        if (st->next_move <= now) st->next_move = now + interval(&st->rng); /* a long gap */
        q[i].price = st->price;
        q[i].have = 1;
    }
}

static void sim_describe(const struct sg_source *src, char *buf, size_t cap)
{
    const struct sim *s = (const struct sim *)src;
    snprintf(buf, cap, "quote table: %zu symbols, %llu evicted", sg_quotes_count(s->table),
             (unsigned long long)sg_quotes_evictions(s->table));
}

static void sim_free(struct sg_source *src)
{
    struct sim *s = (struct sim *)src;
    sg_quotes_free(s->table);
    free(s);
}

static const struct sg_source_ops sim_ops = {sim_quote, sim_describe, sim_free};

struct sg_source *sg_sim_new(uint64_t seed, size_t max_tracked)
{
    struct sim *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->base.ops = &sim_ops;
    s->base.name = "sim";
    s->seed = seed;
    s->table = sg_quotes_new(max_tracked);
    if (!s->table) {
        free(s);
        return NULL;
    }
    return &s->base;
}

int sg_sim_peek(const struct sg_source *src, const char *sym, struct sg_quote_state *out)
{
    const struct sim *s = (const struct sim *)src;
    return sg_quotes_peek_state(s->table, sym, out);
}
