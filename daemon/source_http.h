/* source_http.h - the http source: prices from an HTTP JSON quote service.
 *
 * One GET per symbol: the URL is a template, http://host[:port]/path?query,
 * whose path or query holds {symbol} (replaced by the symbol, '^' as %5E;
 * the other symbol characters need no escaping). The response must be 200
 * with a JSON body; the price is the number (or numeric string) found at a
 * dotted path of member names and array indexes, e.g.
 * quoteResponse.result.0.regularMarketPrice (an empty path: the body is the
 * number). Plain http only; no TLS.
 *
 * The GETs for one work message run concurrently on the source's own
 * event_base (libevent's evhttp client), at most max_inflight at a time,
 * all within timeout_ms. A symbol whose GET times out, fails, answers
 * other than 200, or whose body is not JSON, lacks the path or has no
 * positive number there gets its last known price (kept in a bounded
 * table, max_tracked symbols, LRU), or no price at all if it never had one.
 * Each work message with failures logs one WARN line naming each symbol
 * and why.
 */
#ifndef SG_SOURCE_HTTP_H
#define SG_SOURCE_HTTP_H

#include "source.h"

#include <stddef.h>

struct sg_http_source_config {
    const char *url;        /* template with {symbol} */
    const char *price_path; /* dotted path, "" = the body itself */
    int timeout_ms;         /* per work message */
    int max_inflight;       /* GETs at once */
    size_t max_body;        /* largest response body */
    size_t max_tracked;     /* last known prices kept */
};

/* Splits a URL template into host (hcap bytes), port (default 80) and the
 * path template (a pointer into tmpl, "/" if it has none). Returns SG_OK,
 * or SG_ECONFIG with why (cap bytes) set: not http://, a bad host or port,
 * no {symbol} in the path or query, {symbol} in the host, spaces or
 * control characters. */
int sg_http_url_split(const char *tmpl, char *host, size_t hcap, int *port, const char **path,
                      char *why, size_t cap);

/* Writes path_tmpl with every {symbol} replaced by sym (escaped as above)
 * into out (cap bytes). Returns SG_OK or SG_ETOOBIG (out is then ""). */
int sg_http_expand(const char *path_tmpl, const char *sym, char *out, size_t cap);

/* The price at path in a JSON body (len bytes, borrowed): SG_OK with *price
 * (rounded to cents), else SG_EPROTO with why (cap bytes): bad JSON, a
 * missing member or index, or no positive number there. */
int sg_http_json_price(const char *body, size_t len, const char *path, double *price, char *why,
                       size_t cap);

/* The source. Copies what it needs from c. NULL with why set on a bad
 * config (see sg_http_url_split) or ENOMEM. */
struct sg_source *sg_http_source_new(const struct sg_http_source_config *c, char *why, size_t cap);

#endif
