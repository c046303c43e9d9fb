/* work.h - stockd's wire contract, both ways. Pure: no I/O, no logging.
 *
 * In:  a work message {"stocks":["AAPL","MSFT"]} (extra members ignored).
 * Out: a result [{"symbol":"AAPL","price":149.34},...] for the symbols that
 *      got a price, in the order they were first asked for.
 *
 * A work message is refused as a whole (and the reason said in one line)
 * when it is over max_message bytes, not JSON, not an object, has no
 * "stocks" array, an empty one, more than max_symbols entries, an entry
 * that is not a string, or a string that is not a symbol: 1 to
 * SG_WORK_SYM_MAX characters of A-Z 0-9 . - ^ (upper case only, as the
 * book's clients and exchanges write them). Repeated symbols are answered
 * once (the book's server sends every client's list, duplicates included).
 */
#ifndef SG_WORK_H
#define SG_WORK_H

#include <stddef.h>

#define SG_WORK_SYM_MAX 12
/* The largest price a source accepts (a replay file, an HTTP answer): far
 * above any share price, and small enough that cents stay exact. */
#define SG_WORK_PRICE_MAX 1e12

/* One symbol asked for, and what the price source made of it. */
struct sg_src_quote {
    char sym[SG_WORK_SYM_MAX + 1];
    double price; /* valid if have */
    int have;     /* 1: price set; 0: no price (left out of the result) */
};

/* A parsed work message: unique symbols in first-seen order. */
struct sg_work {
    struct sg_src_quote *q; /* n entries, owned (sg_work_free) */
    size_t n;
    size_t entries; /* entries in the message, duplicates included */
};

/* 1 if s[0..len) is a valid symbol, else 0. */
int sg_work_symbol_valid(const char *s, size_t len);

/* Parses one work message body (borrowed; need not be NUL-terminated).
 * Returns SG_OK with *w filled (have = 0 everywhere; the caller frees it
 * with sg_work_free), or with *w zeroed and why (cap bytes, at least 64
 * advised) set to a one-line reason: SG_ETOOBIG (over max_message bytes),
 * SG_ETOOMANY (over max_symbols entries), SG_EPROTO (anything else that is
 * not valid work), SG_ENOMEM. Symbol text in why is escaped (no control
 * characters) and cut short. */
int sg_work_parse(const char *body, size_t len, size_t max_message, size_t max_symbols,
                  struct sg_work *w, char *why, size_t cap);

/* Frees what sg_work_parse allocated and zeroes *w. NULL is a no-op. */
void sg_work_free(struct sg_work *w);

/* Encodes the result for the n entries of q that have a finite price > 0:
 * [{"symbol":"AAPL","price":149.34},...] with prices rounded to cents and
 * written with two decimals, no spaces. Returns a malloc'ed NUL-terminated
 * string (the caller frees it) with its length in *len (len may be NULL),
 * "[]" if none has a price, or NULL on ENOMEM. *count (may be NULL) gets
 * the number of entries written. */
char *sg_work_result_encode(const struct sg_src_quote *q, size_t n, size_t *len, size_t *count);

/* Rounds a price to whole cents (half away from zero). */
double sg_work_cents(double price);

#endif
