/* replay.c - quotes from a file, replayed in time (see replay.h).
 *
 * Loading keeps every good line as (ts, symbol, price, line order), then
 * sorts by (symbol, ts, line order) once: each symbol's quotes are a run
 * of that array, found by binary search on the symbol table, and the
 * latest quote at a file time is a binary search within the run.
 */
#include "replay.h"
#include "error.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rq {
    double ts, price;
    size_t seq;
    char sym[SG_WORK_SYM_MAX + 1];
};

struct rsym {
    char sym[SG_WORK_SYM_MAX + 1];
    size_t start, count;
    size_t cursor; /* speed 0: the quote given last */
    int started;
};

struct sg_replay {
    struct rq *q;
    size_t n;
    struct rsym *s;
    size_t ns;
    double first, last, gap;
};

struct sg_replay_loader {
    struct rq *q;
    size_t n, cap, max;
    int seen_content;
    sg_replay_bad_fn bad;
    void *arg;
    struct sg_replay_stats st;
};

/* ---- parsing */

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void trim(const char **s, size_t *len)
{
    while (*len && is_space(**s))
        (*s)++, (*len)--;
    while (*len && is_space((*s)[*len - 1]))
        (*len)--;
}

/* a finite number filling all of s[0..len) */
static int parse_number(const char *s, size_t len, double *out)
{
    char tmp[64];
    if (len == 0 || len >= sizeof tmp) return SG_EPROTO;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    /* strtod also takes "inf", "nan" and hex; only plain decimal notation here */
    for (size_t i = 0; i < len; i++)
        if (!isdigit((unsigned char)tmp[i]) && !strchr("+-.eE", tmp[i])) return SG_EPROTO;
    char *end;
    errno = 0;
    double x = strtod(tmp, &end);
    if (end != tmp + len || errno == ERANGE || !isfinite(x)) return SG_EPROTO;
    *out = x;
    return SG_OK;
}

static int take_digits(const char *s, size_t len, size_t *i, int n, int *v)
{
    int x = 0;
    for (int k = 0; k < n; k++, (*i)++) {
        if (*i >= len || !isdigit((unsigned char)s[*i])) return 0;
        x = x * 10 + (s[*i] - '0');
    }
    *v = x;
    return 1;
}

static long long days_from_civil(long long y, int m, int d) /* H. Hinnant's algorithm */
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

/* YYYY-MM-DD[(T| )HH:MM[:SS[.fff]]][Z|(+|-)HH[:]MM] */
static int parse_iso(const char *s, size_t len, double *out)
{
    size_t i = 0;
    int y, mo, d, h = 0, mi = 0, sec = 0, oh = 0, om = 0, sign = 0;
    double frac = 0;
    if (!take_digits(s, len, &i, 4, &y) || i >= len || s[i++] != '-' ||
        !take_digits(s, len, &i, 2, &mo) || i >= len || s[i++] != '-' ||
        !take_digits(s, len, &i, 2, &d))
        return SG_EPROTO;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) return SG_EPROTO;
    if (i < len && (s[i] == 'T' || s[i] == 't' || s[i] == ' ')) {
        i++;
        if (!take_digits(s, len, &i, 2, &h) || i >= len || s[i++] != ':' ||
            !take_digits(s, len, &i, 2, &mi))
            return SG_EPROTO;
        if (i < len && s[i] == ':') {
            i++;
            if (!take_digits(s, len, &i, 2, &sec)) return SG_EPROTO;
            if (i < len && (s[i] == '.' || s[i] == ',')) {
                i++;
                double scale = 0.1;
                if (i >= len || !isdigit((unsigned char)s[i])) return SG_EPROTO;
                for (; i < len && isdigit((unsigned char)s[i]); i++, scale /= 10)
                    frac += (s[i] - '0') * scale;
            }
        }
        if (h > 23 || mi > 59 || sec > 60) return SG_EPROTO;
        if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
            i++;
        } else if (i < len && (s[i] == '+' || s[i] == '-')) {
            sign = s[i++] == '-' ? -1 : 1;
            if (!take_digits(s, len, &i, 2, &oh)) return SG_EPROTO;
            if (i < len && s[i] == ':') i++;
            if (!take_digits(s, len, &i, 2, &om)) return SG_EPROTO;
            if (oh > 23 || om > 59) return SG_EPROTO;
        }
    }
    if (i != len) return SG_EPROTO;
    double t = (double)days_from_civil(y, mo, d) * 86400.0 + h * 3600.0 + mi * 60.0 + sec + frac;
    t -= sign * (oh * 3600.0 + om * 60.0);
    *out = t;
    return SG_OK;
}

int sg_replay_parse_ts(const char *s, size_t len, double *ts)
{
    trim(&s, &len);
    if (parse_number(s, len, ts) == SG_OK) return SG_OK;
    return parse_iso(s, len, ts);
}

static int check_quote(double ts, const char *sym, size_t sl, double price,
                       struct sg_replay_quote *out, const char **why)
{
    if (!sg_work_symbol_valid(sym, sl)) {
        *why = "not a symbol (1-12 characters of A-Z 0-9 . - ^)";
        return SG_EPROTO;
    }
    if (price > SG_WORK_PRICE_MAX) { /* also keeps the rounding below finite */
        *why = "price too large";
        return SG_EPROTO;
    }
    price = round(price * 100.0) / 100.0;
    if (!(price >= 0.01)) {
        *why = "price is not a positive number";
        return SG_EPROTO;
    }
    out->ts = ts;
    memcpy(out->sym, sym, sl);
    out->sym[sl] = '\0';
    out->price = price;
    return SG_OK;
}

static int parse_json_line(const char *line, size_t len, struct sg_replay_quote *out,
                           const char **why)
{
    int rc = SG_EPROTO;
    json_error_t err;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(o)) {
        *why = o ? "JSON line is not an object" : "bad JSON";
        goto out;
    }
    json_t *ts = json_object_get(o, "ts"), *sym = json_object_get(o, "symbol"),
           *price = json_object_get(o, "price");
    double t;
    if (json_is_number(ts)) {
        t = json_number_value(ts);
    } else if (json_is_string(ts)) {
        if (sg_replay_parse_ts(json_string_value(ts), json_string_length(ts), &t) != SG_OK) {
            *why = "bad \"ts\" (seconds or ISO-8601)";
            goto out;
        }
    } else {
        *why = "no \"ts\" number or string";
        goto out;
    }
    if (!isfinite(t)) {
        *why = "bad \"ts\" (seconds or ISO-8601)";
        goto out;
    }
    if (!json_is_string(sym)) {
        *why = "no \"symbol\" string";
        goto out;
    }
    if (!json_is_number(price)) {
        *why = "price is not a positive number";
        goto out;
    }
    rc = check_quote(t, json_string_value(sym), json_string_length(sym), json_number_value(price),
                     out, why);
out:
    json_decref(o);
    return rc;
}

static void unquote(const char **s, size_t *len)
{
    trim(s, len);
    if (*len >= 2 && (*s)[0] == '"' && (*s)[*len - 1] == '"') {
        (*s)++;
        *len -= 2;
        trim(s, len);
    }
}

int sg_replay_parse_line(const char *line, size_t len, struct sg_replay_quote *out,
                         const char **why)
{
    trim(&line, &len);
    if (len == 0 || line[0] == '#') return SG_AGAIN;
    if (line[0] == '{') return parse_json_line(line, len, out, why);
    const char *f[3];
    size_t fl[3], nf = 0, startf = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && line[i] != ',') continue;
        if (nf == 3) {
            *why = "not 3 comma-separated fields (ts,symbol,price)";
            return SG_EPROTO;
        }
        f[nf] = line + startf;
        fl[nf] = i - startf;
        unquote(&f[nf], &fl[nf]);
        nf++;
        startf = i + 1;
    }
    if (nf != 3) {
        *why = "not 3 comma-separated fields (ts,symbol,price)";
        return SG_EPROTO;
    }
    double ts, price;
    if (sg_replay_parse_ts(f[0], fl[0], &ts) != SG_OK) {
        *why = "bad timestamp (seconds or ISO-8601)";
        return SG_EPROTO;
    }
    if (parse_number(f[2], fl[2], &price) != SG_OK) {
        *why = "price is not a positive number";
        return SG_EPROTO;
    }
    return check_quote(ts, f[1], fl[1], price, out, why);
}

/* ---- loading */

struct sg_replay_loader *sg_replay_loader_new(size_t max_quotes, sg_replay_bad_fn bad, void *arg)
{
    struct sg_replay_loader *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->max = max_quotes ? max_quotes : 1;
    l->bad = bad;
    l->arg = arg;
    return l;
}

int sg_replay_loader_line(struct sg_replay_loader *l, const char *line, size_t len)
{
    struct sg_replay_quote rq;
    const char *why = NULL;
    l->st.lines++;
    int rc = sg_replay_parse_line(line, len, &rq, &why);
    if (rc == SG_AGAIN) return SG_OK;
    int first = !l->seen_content;
    l->seen_content = 1;
    if (rc != SG_OK) {
        const char *s = line;
        size_t n = len;
        trim(&s, &n);
        if (first && n && isalpha((unsigned char)s[0])) {
            l->st.header = 1; /* e.g. "ts,symbol,price" */
            return SG_OK;
        }
        l->st.bad++;
        if (l->bad) l->bad(l->arg, l->st.lines, why);
        return SG_OK;
    }
    if (l->n >= l->max) {
        l->st.dropped++;
        return SG_OK;
    }
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 256;
        if (nc > l->max) nc = l->max;
        struct rq *p = realloc(l->q, nc * sizeof *p);
        if (!p) return SG_ENOMEM;
        l->q = p;
        l->cap = nc;
    }
    struct rq *e = &l->q[l->n];
    e->ts = rq.ts;
    e->price = rq.price;
    e->seq = l->n++;
    memcpy(e->sym, rq.sym, sizeof e->sym);
    l->st.quotes++;
    return SG_OK;
}

static int cmp_rq(const void *a, const void *b)
{
    const struct rq *x = a, *y = b;
    int c = strcmp(x->sym, y->sym);
    if (c) return c;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct sg_replay *sg_replay_loader_finish(struct sg_replay_loader *l, struct sg_replay_stats *st,
                                          int *err)
{
    struct sg_replay *r = NULL;
    double *ts = NULL;
    int rc = SG_ENOMEM;
    if (l->n == 0) {
        rc = SG_ENOKEY;
        goto out;
    }
    r = calloc(1, sizeof *r);
    ts = malloc(l->n * sizeof *ts);
    if (!r || !ts) goto out;
    qsort(l->q, l->n, sizeof *l->q, cmp_rq);
    size_t ns = 0;
    for (size_t i = 0; i < l->n; i++) {
        ts[i] = l->q[i].ts;
        if (i == 0 || strcmp(l->q[i].sym, l->q[i - 1].sym)) ns++;
    }
    r->s = calloc(ns, sizeof *r->s);
    if (!r->s) goto out;
    for (size_t i = 0, k = 0; i < l->n; i++) {
        if (i == 0 || strcmp(l->q[i].sym, l->q[i - 1].sym)) {
            memcpy(r->s[k].sym, l->q[i].sym, sizeof r->s[k].sym);
            r->s[k].start = i;
            k++;
        }
        r->s[k - 1].count++;
    }
    qsort(ts, l->n, sizeof *ts, cmp_double);
    size_t distinct = 1;
    for (size_t i = 1; i < l->n; i++)
        if (ts[i] != ts[i - 1]) distinct++;
    r->first = ts[0];
    r->last = ts[l->n - 1];
    r->gap = distinct > 1 ? (r->last - r->first) / (double)(distinct - 1) : 1.0;
    r->q = l->q;
    r->n = l->n;
    r->ns = ns;
    l->q = NULL;
    l->st.symbols = ns;
    l->st.first = r->first;
    l->st.last = r->last;
    rc = SG_OK;
out:
    free(ts);
    if (st) *st = l->st;
    free(l->q);
    free(l);
    if (rc != SG_OK) {
        if (r) free(r->s);
        free(r);
        r = NULL;
    }
    if (err) *err = rc;
    return r;
}

struct sg_replay *sg_replay_load_buf(const char *buf, size_t len, size_t max_quotes,
                                     sg_replay_bad_fn bad, void *arg, struct sg_replay_stats *st,
                                     int *err)
{
    struct sg_replay_loader *l = sg_replay_loader_new(max_quotes, bad, arg);
    if (!l) {
        if (err) *err = SG_ENOMEM;
        return NULL;
    }
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(buf + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - buf) : len;
        sg_replay_loader_line(l, buf + i, end - i);
        i = end + 1;
    }
    return sg_replay_loader_finish(l, st, err);
}

struct sg_replay *sg_replay_load_file(const char *path, size_t max_quotes, sg_replay_bad_fn bad,
                                      void *arg, struct sg_replay_stats *st, int *err, char *why,
                                      size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, cap, "cannot open %s: %s", path, strerror(errno));
        if (err) *err = SG_EIO;
        return NULL;
    }
    struct sg_replay_loader *l = sg_replay_loader_new(max_quotes, bad, arg);
    if (!l) {
        fclose(f);
        snprintf(why, cap, "out of memory");
        if (err) *err = SG_ENOMEM;
        return NULL;
    }
    char *line = NULL;
    size_t lcap = 0;
    ssize_t n;
    while ((n = getline(&line, &lcap, f)) >= 0)
        sg_replay_loader_line(l, line, (size_t)n);
    int rerr = ferror(f);
    free(line);
    fclose(f);
    int rc;
    struct sg_replay *r = sg_replay_loader_finish(l, st, &rc);
    if (rerr && r) {
        sg_replay_free(r);
        r = NULL;
        rc = SG_EIO;
        snprintf(why, cap, "error reading %s", path);
    } else if (rc == SG_ENOKEY) {
        snprintf(why, cap, "no valid quote in %s", path);
    } else if (rc == SG_ENOMEM) {
        snprintf(why, cap, "out of memory loading %s", path);
    }
    if (err) *err = rc;
    return r;
}

void sg_replay_free(struct sg_replay *r)
{
    if (!r) return;
    free(r->q);
    free(r->s);
    free(r);
}

/* ---- the source */

struct replay_src {
    struct sg_source base;
    struct sg_replay *r;
    double speed, start;
    int loop;
};

static int cmp_sym(const void *key, const void *elem)
{
    return strcmp(key, ((const struct rsym *)elem)->sym);
}

double sg_replay_source_file_time(const struct sg_source *src, double now, unsigned long *round)
{
    const struct replay_src *s = (const struct replay_src *)src;
    const struct sg_replay *r = s->r;
    double e = (now - s->start) * s->speed;
    if (!(e > 0)) e = 0;
    if (round) *round = 0;
    if (s->loop) {
        double period = r->last - r->first + r->gap;
        double k = floor(e / period);
        if (round) *round = (unsigned long)k;
        double ft = r->first + (e - k * period);
        return ft < r->first ? r->first : ft;
    }
    double ft = r->first + e;
    return ft > r->last ? r->last : ft;
}

static void replay_quote(struct sg_source *src, struct sg_src_quote *q, size_t n, double now)
{
    struct replay_src *s = (struct replay_src *)src;
    struct sg_replay *r = s->r;
    unsigned long round = 0;
    double ft = s->speed > 0 ? sg_replay_source_file_time(src, now, &round) : 0;
    for (size_t i = 0; i < n; i++) {
        q[i].have = 0;
        struct rsym *y = bsearch(q[i].sym, r->s, r->ns, sizeof *r->s, cmp_sym);
        if (!y) continue;
        const struct rq *run = r->q + y->start;
        size_t idx;
        if (s->speed > 0) {
            /* the first quote after ft, then one back */
            size_t lo = 0, hi = y->count;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (run[mid].ts <= ft)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (lo > 0)
                idx = lo - 1;
            else
                idx = s->loop && round > 0 ? y->count - 1 : 0;
        } else {
            if (!y->started) {
                y->started = 1;
                y->cursor = 0;
            } else if (y->cursor + 1 < y->count) {
                y->cursor++;
            } else {
                y->cursor = s->loop ? 0 : y->count - 1;
            }
            idx = y->cursor;
        }
        q[i].price = run[idx].price;
        q[i].have = 1;
    }
}

static void replay_describe(const struct sg_source *src, char *buf, size_t cap)
{
    const struct replay_src *s = (const struct replay_src *)src;
    snprintf(buf, cap, "replay: %zu quotes of %zu symbols", s->r->n, s->r->ns);
}

static void replay_free(struct sg_source *src)
{
    struct replay_src *s = (struct replay_src *)src;
    sg_replay_free(s->r);
    free(s);
}

static const struct sg_source_ops replay_ops = {replay_quote, replay_describe, replay_free};

struct sg_source *sg_replay_source_new(struct sg_replay *r, double speed, int loop, double start)
{
    struct replay_src *s = calloc(1, sizeof *s);
    if (!s) {
        sg_replay_free(r);
        return NULL;
    }
    s->base.ops = &replay_ops;
    s->base.name = "replay";
    s->r = r;
    s->speed = speed > 0 ? speed : 0;
    s->start = start;
    s->loop = loop;
    return &s->base;
}
