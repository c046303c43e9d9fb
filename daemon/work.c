/* work.c - stockd's work parser and result encoder (see work.h).
 *
 * jansson parses the message (duplicate keys refused, so {"stocks":[..],
 * "stocks":[..]} cannot mean two things); the symbols are then checked
 * and deduplicated with a small open-addressing set sized from the entry
 * count, so the work is linear in the message. The result is written by
 * hand: jansson's real formatting would print 149.3 or 0.30000000000000004
 * where the contract wants cents.
 */
#include "work.h"
#include "util.h"
#include "error.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sym_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '^';
}

int sg_work_symbol_valid(const char *s, size_t len)
{
    if (len == 0 || len > SG_WORK_SYM_MAX) return 0;
    for (size_t i = 0; i < len; i++)
        if (!sym_char((unsigned char)s[i])) return 0;
    return 1;
}

/* s (len bytes) for a log line: at most 16 characters, anything outside
 * printable ASCII (and the quote) as '?', "..." when cut */
static void shown(char *out, size_t cap, const char *s, size_t len)
{
    size_t w = 0, max = len > 16 ? 16 : len;
    for (size_t i = 0; i < max && w + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        out[w++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
    }
    for (const char *d = len > 16 ? "..." : ""; *d && w + 1 < cap; d++)
        out[w++] = *d;
    out[w] = '\0';
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}

int sg_work_parse(const char *body, size_t len, size_t max_message, size_t max_symbols,
                  struct sg_work *w, char *why, size_t cap)
{
    int rc = SG_EPROTO;
    json_t *root = NULL;
    uint32_t *set = NULL;
    char sym[24];
    memset(w, 0, sizeof *w);
    if (cap) why[0] = '\0';
    if (len > max_message) {
        snprintf(why, cap, "too big (%zu bytes > max_message %zu)", len, max_message);
        return SG_ETOOBIG;
    }
    json_error_t err;
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        snprintf(why, cap, "not JSON: %s at line %d column %d", err.text, err.line, err.column);
        goto out;
    }
    if (!json_is_object(root)) {
        snprintf(why, cap, "not a JSON object but %s", type_name(root));
        goto out;
    }
    json_t *stocks = json_object_get(root, "stocks");
    if (!stocks) {
        snprintf(why, cap, "no \"stocks\" member");
        goto out;
    }
    if (!json_is_array(stocks)) {
        snprintf(why, cap, "\"stocks\" is %s, not an array", type_name(stocks));
        goto out;
    }
    size_t n = json_array_size(stocks);
    if (n == 0) {
        snprintf(why, cap, "empty \"stocks\" list");
        goto out;
    }
    if (n > max_symbols) {
        snprintf(why, cap, "too many symbols (%zu > max_symbols %zu)", n, max_symbols);
        rc = SG_ETOOMANY;
        goto out;
    }
    /* the set holds index + 1 of each kept symbol; load <= 1/2 */
    size_t nset = 8;
    while (nset < 2 * n)
        nset *= 2;
    set = calloc(nset, sizeof *set);
    w->q = calloc(n, sizeof *w->q);
    if (!set || !w->q) {
        snprintf(why, cap, "out of memory");
        rc = SG_ENOMEM;
        goto out;
    }
    w->entries = n;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(stocks, i);
        if (!json_is_string(v)) {
            snprintf(why, cap, "stocks[%zu] is %s, not a string", i, type_name(v));
            goto out;
        }
        const char *s = json_string_value(v);
        size_t sl = json_string_length(v);
        if (!sg_work_symbol_valid(s, sl)) {
            shown(sym, sizeof sym, s, sl);
            snprintf(why, cap,
                     "stocks[%zu] \"%s\" is not a symbol (1-%d characters of A-Z 0-9 . - ^)", i,
                     sym, SG_WORK_SYM_MAX);
            goto out;
        }
        size_t slot = sg_fnv1a(s) & (nset - 1);
        int dup = 0;
        for (; set[slot]; slot = (slot + 1) & (nset - 1))
            if (!strcmp(w->q[set[slot] - 1].sym, s)) {
                dup = 1;
                break;
            }
        if (dup) continue;
        memcpy(w->q[w->n].sym, s, sl + 1);
        set[slot] = (uint32_t)(++w->n);
    }
    rc = SG_OK;
out:
    free(set);
    json_decref(root);
    if (rc != SG_OK) {
        sg_work_free(w);
        /* jansson's messages quote the input ("near '...'"): one log line */
        for (char *c = why; cap && *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
    }
    return rc;
}

void sg_work_free(struct sg_work *w)
{
    if (!w) return;
    free(w->q);
    memset(w, 0, sizeof *w);
}

double sg_work_cents(double price)
{
    return round(price * 100.0) / 100.0;
}

char *sg_work_result_encode(const struct sg_src_quote *q, size_t n, size_t *len, size_t *count)
{
    /* per entry: {"symbol":"","price":}, = 22 bytes, a symbol of 12 and a
     * price: %.2f of a finite double is at most 309 + 4 characters */
    size_t cap = 3, used = 0, written = 0;
    for (size_t i = 0; i < n; i++)
        cap += 22 + SG_WORK_SYM_MAX + 320;
    char *out = malloc(cap);
    if (!out) return NULL;
    out[used++] = '[';
    for (size_t i = 0; i < n; i++) {
        if (!q[i].have || !isfinite(q[i].price) || q[i].price <= 0) continue;
        double p = sg_work_cents(q[i].price);
        if (p < 0.01) p = 0.01;
        int k = snprintf(out + used, cap - used, "%s{\"symbol\":\"%s\",\"price\":%.2f}",
                         written ? "," : "", q[i].sym, p);
        if (k < 0 || (size_t)k >= cap - used) { /* cannot happen: cap is an upper bound */
            free(out);
            return NULL;
        }
        used += (size_t)k;
        written++;
    }
    out[used++] = ']';
    out[used] = '\0';
    if (len) *len = used;
    if (count) *count = written;
    return out;
}
