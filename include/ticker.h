/* ticker.h - the bridge's stock-ticker core (DESIGN.md's "quotes" layer),
 * sans-I/O: quote destinations and symbols, the stocks.work and
 * stocks.result JSON, the quote MESSAGE body, and the hub every worker
 * shares (the reference-counted interest set and the last-value cache).
 * The broker side and the fan-out to sessions are in relay_ticker.c.
 *
 * The hub is the one piece of state shared by the workers. Each worker
 * keeps its own subscribers per symbol and takes a reference on a symbol
 * in the hub while it has any; one worker (the publisher, worker 0) sends
 * the interest set as work and feeds the results back in. An update marks
 * the symbol for each worker that holds it, once however many updates
 * arrive before that worker takes it (conflation across threads), and
 * calls the wake function for a worker whose list was empty. Every hub
 * function may be called from any thread (one mutex inside); the wake
 * function is called with the mutex released.
 *
 * Bounds: at most max_symbols symbols are known (in the interest set or
 * with a cached price). A symbol nobody holds keeps its last price until
 * the table is full; then it makes room for a new one.
 */
#ifndef SG_TICKER_H
#define SG_TICKER_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define SG_TICKER_SYM_MAX 12 /* bytes of a symbol */
#define SG_TICKER_SYM_CAP 16 /* a symbol's buffer, with the NUL */

/* 1 if s (n bytes) is a valid symbol: 1-12 of A-Z 0-9 . - ^ */
int sg_ticker_symbol_valid(const char *s, size_t n);

/* If dest starts with prefix (a non-empty prefix), the rest of dest is the
 * quote's symbol: returns 1 with *sym pointing into dest. 0 if it is not a
 * quote destination (the symbol is not checked here). */
int sg_ticker_quote_dest(const char *prefix, const char *dest, const char **sym);

/* One price for one symbol. */
struct sg_quote {
    char symbol[SG_TICKER_SYM_CAP];
    double price;
    uint64_t ts_ms; /* when the bridge received it (ms since the epoch) */
    uint64_t seq;   /* the hub's update counter at that time (1, 2, ...) */
};

/* A stocks.result message: a JSON array of {"symbol":S,"price":P}
 * objects. Calls cb for every entry whose symbol is valid and whose price
 * is a finite number > 0 (an integer counts), in order; other fields are
 * ignored. Returns the number of entries cb got (>= 0) and sets *bad to
 * the number skipped, or SG_EPROTO with *why (a static text) when the
 * body is not a JSON array. */
typedef void (*sg_ticker_quote_fn)(void *arg, const char *symbol, double price);
int sg_ticker_parse_result(const void *body, size_t len, sg_ticker_quote_fn cb, void *arg,
                           size_t *bad, const char **why);

/* Appends a stocks.work message for n symbols (each valid):
 * {"stocks":["AAPL","MSFT"]}. SG_OK, SG_ETOOBIG or SG_ENOMEM. */
int sg_ticker_work_json(struct sg_buf *b, const char (*syms)[SG_TICKER_SYM_CAP], size_t n);

/* Writes a quote MESSAGE body, {"symbol":"AAPL","price":149.34,"ts":N}
 * (price with up to 15 significant digits, ts in ms), NUL-terminated.
 * Returns its length, or 0 if cap is too small. */
size_t sg_ticker_quote_body(char *out, size_t cap, const struct sg_quote *q);

/* ---- the hub */
struct sg_ticker_hub;
typedef void (*sg_ticker_wake_fn)(void *arg, int worker);

/* A hub for nworkers workers (1-256) and at most max_symbols symbols.
 * wake(arg, w) asks worker w to call sg_ticker_hub_take (and, for worker
 * 0, sg_ticker_hub_take_new); it may be NULL. NULL on ENOMEM or bad
 * arguments. */
struct sg_ticker_hub *sg_ticker_hub_new(size_t max_symbols, int nworkers, sg_ticker_wake_fn wake,
                                        void *arg);
void sg_ticker_hub_free(struct sg_ticker_hub *h); /* NULL ok */

/* Worker w holds sym (valid) from now on: its first holder makes it part
 * of the interest set (and wakes worker 0 to send it at once). Idempotent
 * per worker. SG_OK, SG_ETOOMANY (max_symbols known and none of them free
 * to forget) or SG_ENOMEM. */
int sg_ticker_hub_ref(struct sg_ticker_hub *h, int w, const char *sym);
/* Worker w no longer holds sym. Idempotent. */
void sg_ticker_hub_unref(struct sg_ticker_hub *h, int w, const char *sym);

/* The last price of sym: SG_OK with *q, or SG_ENOKEY. */
int sg_ticker_hub_last(struct sg_ticker_hub *h, const char *sym, struct sg_quote *q);

/* A new price for sym at ts_ms. Ignored (returns 0) if the hub does not
 * know sym (results never grow it); else it becomes the last price,
 * every worker holding sym gets it on its list (once) and is woken if its
 * list was empty, and 1 is returned. */
int sg_ticker_hub_update(struct sg_ticker_hub *h, const char *sym, double price, uint64_t ts_ms);

/* Up to max updated symbols for worker w, each with its newest price,
 * taken off w's list. Returns how many; call again while it returns max. */
size_t sg_ticker_hub_take(struct sg_ticker_hub *h, int w, struct sg_quote *out, size_t max);

/* Up to max symbols that joined the interest set since the last call and
 * are still in it, taken off that list. */
size_t sg_ticker_hub_take_new(struct sg_ticker_hub *h, char (*out)[SG_TICKER_SYM_CAP], size_t max);

/* The interest set: copies up to max symbols into out (in no particular
 * order); returns the set's size (which may exceed max). */
size_t sg_ticker_hub_interest(struct sg_ticker_hub *h, char (*out)[SG_TICKER_SYM_CAP], size_t max);

/* Symbols known (interest set plus cached prices nobody holds). */
size_t sg_ticker_hub_known(struct sg_ticker_hub *h);

#endif
