/* source.h - where stockd's prices come from: one interface, three sources.
 *
 *   sim     a seeded random walk per symbol (source_sim.c); pure
 *   replay  timestamped quotes from a CSV or JSON-lines file (replay.c); pure
 *   http    an HTTP JSON quote service (source_http.c); libevent I/O
 *
 * The clock is passed in (seconds on any monotonic scale), so the pure
 * sources give the same prices for the same requests at the same times.
 * A source answers every symbol it can: q[i].have = 1 and q[i].price set
 * (positive, whole cents); a symbol it has no price for keeps have = 0
 * and is left out of the result. A source never fails a request as a whole.
 */
#ifndef SG_SOURCE_H
#define SG_SOURCE_H

#include "quotes.h"
#include "work.h"

#include <stddef.h>
#include <stdint.h>

struct sg_source;

struct sg_source_ops {
    /* Prices for q[0..n) at clock time now (seconds). */
    void (*quote)(struct sg_source *s, struct sg_src_quote *q, size_t n, double now);
    /* One line for the log at exit, e.g. "quote table: 2 symbols, 0 evicted". */
    void (*describe)(const struct sg_source *s, char *buf, size_t cap);
    void (*free)(struct sg_source *s);
};

/* Every source starts with this (the implementations embed it first). */
struct sg_source {
    const struct sg_source_ops *ops;
    const char *name; /* "sim", "replay", "http" */
};

static inline void sg_source_quote(struct sg_source *s, struct sg_src_quote *q, size_t n,
                                   double now)
{
    s->ops->quote(s, q, n, now);
}

static inline void sg_source_describe(const struct sg_source *s, char *buf, size_t cap)
{
    s->ops->describe(s, buf, cap);
}

/* NULL is a no-op. */
static inline void sg_source_free(struct sg_source *s)
{
    if (s) s->ops->free(s);
}

/* ---- sim: the book's random walk, reproducible from seed.
 * Each symbol starts at sg_quotes_start_price() when first asked for and
 * then moves every 0.5-2.5 s (uniform) of the clock by a uniform amount in
 * [-1.50, +1.50], at least 0.01, in whole cents. Moves are made lazily when
 * the symbol is asked for (all the moves due since the last request, at
 * most SG_SIM_CATCHUP_MAX of them; after a longer gap the walk goes on
 * from now). Every symbol has its own generator seeded from (seed, symbol),
 * so a symbol's prices depend only on the seed and the times it was asked
 * for. Symbols are kept in a bounded table (max_tracked, LRU): a forgotten
 * symbol starts over. NULL on ENOMEM or max_tracked 0. */
#define SG_SIM_CATCHUP_MAX 64
struct sg_source *sg_sim_new(uint64_t seed, size_t max_tracked);
/* The walk of sym as it stands, without touching it (tests): SG_OK with
 * *st copied, or SG_ENOKEY. */
int sg_sim_peek(const struct sg_source *s, const char *sym, struct sg_quote_state *st);

#endif
