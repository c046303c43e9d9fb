/* quotes.h - stockd's quote table: the last price of every symbol it was
 * asked for, so each symbol walks on from where it was. Pure (no I/O, no
 * clock, no randomness: the caller supplies each random step, or keeps its
 * own per-symbol state in struct sg_quote_state).
 *
 * A hash table (chained, FNV-1a, grown by doubling) with a hard bound on
 * the number of symbols: once max symbols are kept, a new one evicts the
 * least recently requested symbol (an LRU list), so the table keeps serving
 * and its memory stays bounded whatever symbols clients make up. An evicted
 * symbol that comes back starts its walk again from its start price.
 */
#ifndef SG_QUOTES_H
#define SG_QUOTES_H

#include <stddef.h>
#include <stdint.h>

#define SG_QUOTE_SYM_MAX 15 /* bytes of a symbol, without the NUL */

struct sg_quotes;

/* What one sg_quotes_next did. */
struct sg_quote_result {
    double price;                           /* the new price */
    int created;                            /* 1 if the symbol was not in the table */
    int evicted;                            /* 1 if another symbol was dropped for it */
    char evicted_sym[SG_QUOTE_SYM_MAX + 1]; /* that symbol ("" if none) */
};

/* What a price source keeps per symbol (see source_sim.c, source_http.c).
 * A new symbol's state is all zero but price, its start price. */
struct sg_quote_state {
    double price;     /* the last price */
    double next_move; /* sim: clock time of the next move */
    uint64_t rng;     /* sim: the symbol's own generator (0 = not seeded yet) */
    uint64_t moves;   /* sim: moves made so far */
    double stamp;     /* http: clock time the price was fetched */
};

/* A table for at most max symbols (max >= 1). NULL on ENOMEM or max 0.
 * Memory grows with the symbols actually kept, not with max. */
struct sg_quotes *sg_quotes_new(size_t max);
/* NULL is a no-op. */
void sg_quotes_free(struct sg_quotes *q);

/* The price walk, one step: sym's price (its start price if new) plus
 * step, at least 0.01, rounded to cents; sym becomes the most recently
 * requested. sym is borrowed (copied if kept). Returns SG_OK with *res
 * filled; SG_ETOOBIG if sym is longer than SG_QUOTE_SYM_MAX bytes, or
 * SG_ENOMEM if a new symbol could not be stored; on error the table and
 * *res are unchanged. */
int sg_quotes_next(struct sg_quotes *q, const char *sym, double step, struct sg_quote_result *res);

/* Finds sym, or makes room for it (evicting the least recently requested
 * symbol when full) with a fresh state; either way sym becomes the most
 * recently requested. On SG_OK *st points at its state (valid until the
 * next call that changes q; the caller may change it) and *res tells
 * created / evicted, with res->price the state's price. Errors as for
 * sg_quotes_next, with the table unchanged. */
int sg_quotes_touch(struct sg_quotes *q, const char *sym, struct sg_quote_state **st,
                    struct sg_quote_result *res);

/* Looks sym up without changing its recency. Returns SG_OK with *price
 * set (price may be NULL), or SG_ENOKEY if the table does not hold sym. */
int sg_quotes_peek(const struct sg_quotes *q, const char *sym, double *price);

/* The same, copying sym's whole state into *st (st may be NULL). */
int sg_quotes_peek_state(const struct sg_quotes *q, const char *sym, struct sg_quote_state *st);

/* Symbols kept now (<= max). */
size_t sg_quotes_count(const struct sg_quotes *q);
/* Symbols evicted so far. */
uint64_t sg_quotes_evictions(const struct sg_quotes *q);
/* The symbol sg_quotes_next would evict next (the least recently
 * requested), or NULL if the table is not full. Valid until the next call
 * that changes q. */
const char *sg_quotes_lru(const struct sg_quotes *q);

/* Where a symbol's walk starts: the book's prices for AAPL, MSFT, AMZN,
 * GOOG and YHOO, else a price in [10.00, 499.99] derived from the symbol
 * (stable across runs). */
double sg_quotes_start_price(const char *sym);

#endif
