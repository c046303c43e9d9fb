/* source_http.c - the http source (see source_http.h).
 *
 * stockd is single-threaded and blocking on the AMQP side; a work message
 * is answered from start to end before the next is read. So the HTTP phase
 * of one work message runs its own event loop to completion: a private
 * event_base, max_inflight slots each owning one evhttp_connection (kept
 * alive within the batch, freed after it), a zero-delay "pump" event that
 * hands pending symbols to free slots, and a deadline timer that ends the
 * batch at timeout_ms whatever is still out. Connections are never freed
 * inside evhttp's own callbacks (libevent still uses them after the
 * callback returns): a failed slot is marked broken and the pump frees it.
 */
#include "source_http.h"
#include "error.h"
#include "log.h"

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- pure helpers */

int sg_http_url_split(const char *tmpl, char *host, size_t hcap, int *port, const char **path,
                      char *why, size_t cap)
{
    if (strncasecmp(tmpl, "http://", 7) != 0) {
        snprintf(why, cap, "must start with http:// (no TLS)");
        return SG_ECONFIG;
    }
    for (const char *c = tmpl; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f) {
            snprintf(why, cap, "no spaces or control characters allowed");
            return SG_ECONFIG;
        }
    const char *h = tmpl + 7, *end = h + strcspn(h, "/?");
    const char *hp_end = end, *colon = NULL;
    if (*h == '[') {
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (!rb) {
            snprintf(why, cap, "bad IPv6 host");
            return SG_ECONFIG;
        }
        if (rb + 1 < end) {
            if (rb[1] != ':') {
                snprintf(why, cap, "bad host:port");
                return SG_ECONFIG;
            }
            colon = rb + 1;
        }
        h++;
        hp_end = rb;
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
        if (colon) hp_end = colon;
    }
    size_t hl = (size_t)(hp_end - h);
    if (hl == 0 || hl >= hcap || memchr(h, '{', hl) || memchr(h, '@', hl)) {
        snprintf(why, cap, "bad host (it may not hold {symbol} or credentials)");
        return SG_ECONFIG;
    }
    int p = 80;
    if (colon) {
        char *e;
        errno = 0;
        long v = strtol(colon + 1, &e, 10);
        if (e != end || colon + 1 == end || errno || v < 1 || v > 65535) {
            snprintf(why, cap, "bad port");
            return SG_ECONFIG;
        }
        p = (int)v;
    }
    const char *pt = *end ? end : "/";
    if (!strstr(pt, "{symbol}")) {
        snprintf(why, cap, "no {symbol} in the path or query");
        return SG_ECONFIG;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = p;
    *path = pt;
    return SG_OK;
}

int sg_http_expand(const char *t, const char *sym, char *out, size_t cap)
{
    size_t w = 0;
    static const char key[] = "{symbol}";
    while (*t) {
        if (!strncmp(t, key, sizeof key - 1)) {
            for (const char *s = sym; *s; s++) {
                const char *enc = *s == '^' ? "%5E" : NULL;
                size_t k = enc ? 3 : 1;
                if (w + k >= cap) goto too_big;
                if (enc)
                    memcpy(out + w, enc, 3);
                else
                    out[w] = *s;
                w += k;
            }
            t += sizeof key - 1;
            continue;
        }
        if (w + 1 >= cap) goto too_big;
        out[w++] = *t++;
    }
    out[w] = '\0';
    return SG_OK;
too_big:
    if (cap) out[0] = '\0';
    return SG_ETOOBIG;
}

static int numeric_string(const char *s, double *out)
{
    while (isspace((unsigned char)*s))
        s++;
    if (!*s || !(isdigit((unsigned char)*s) || *s == '.' || *s == '+' || *s == '-')) return 0;
    char *e;
    errno = 0;
    double x = strtod(s, &e);
    while (isspace((unsigned char)*e))
        e++;
    if (*e || errno == ERANGE || !isfinite(x)) return 0;
    *out = x;
    return 1;
}

int sg_http_json_price(const char *body, size_t len, const char *path, double *price, char *why,
                       size_t cap)
{
    int rc = SG_EPROTO;
    json_error_t err;
    json_t *root = json_loadb(body, len, JSON_DECODE_ANY, &err);
    if (!root) {
        snprintf(why, cap, "bad JSON: %s", err.text);
        for (char *c = why; cap && *c; c++) /* it quotes the body */
            if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
        return SG_EPROTO;
    }
    json_t *cur = root;
    const char *p = path;
    char seg[128];
    while (*p) {
        size_t sl = strcspn(p, ".");
        if (sl >= sizeof seg) {
            snprintf(why, cap, "path segment too long");
            goto out;
        }
        memcpy(seg, p, sl);
        seg[sl] = '\0';
        json_t *next = NULL;
        if (json_is_object(cur)) {
            next = json_object_get(cur, seg);
        } else if (json_is_array(cur) && sl > 0 && strspn(seg, "0123456789") == sl && sl < 10) {
            next = json_array_get(cur, (size_t)strtoul(seg, NULL, 10));
        }
        if (!next) {
            snprintf(why, cap, "no \"%.*s\" in the JSON", (int)((p - path) + sl), path);
            goto out;
        }
        cur = next;
        p += sl;
        if (*p == '.') p++;
    }
    double x;
    if (json_is_number(cur))
        x = json_number_value(cur);
    else if (!json_is_string(cur) || !numeric_string(json_string_value(cur), &x)) {
        snprintf(why, cap, "\"%s\" is not a number", path);
        goto out;
    }
    if (x > SG_WORK_PRICE_MAX) {
        snprintf(why, cap, "\"%s\" is too large a price", path);
        goto out;
    }
    x = round(x * 100.0) / 100.0;
    if (!(x >= 0.01)) {
        snprintf(why, cap, "\"%s\" is not a positive price", path);
        goto out;
    }
    *price = x;
    rc = SG_OK;
out:
    json_decref(root);
    return rc;
}

/* ---- the source */

struct http_src;

struct slot {
    struct http_src *h;
    struct evhttp_connection *conn;
    long cur; /* the job it runs, or -1 */
    int err;  /* evhttp error + 1 of the running request, 0 if none */
    int broken;
};

struct job {
    int state; /* 0 pending, 1 running, 2 done */
    int ok;
    double price;
    char why[112];
};

struct http_src {
    struct sg_source base;
    struct event_base *eb;
    struct evdns_base *dns;
    char host[256], host_hdr[272];
    int port, timeout_ms;
    char *path_tmpl, *price_path;
    size_t max_body;
    struct slot *slots;
    int nslots;
    struct sg_quotes *last;
    struct event *pump, *deadline;
    /* the batch being fetched */
    struct sg_src_quote *q;
    struct job *jobs;
    size_t n, next, running;
    unsigned long long gets, failures;
};

static const char *http_error_text(int e)
{
    switch (e - 1) {
    case EVREQ_HTTP_TIMEOUT:
        return "timed out";
    case EVREQ_HTTP_EOF:
        return "connection closed or refused";
    case EVREQ_HTTP_INVALID_HEADER:
        return "bad HTTP response";
    case EVREQ_HTTP_BUFFER_ERROR:
        return "connection error";
    case EVREQ_HTTP_REQUEST_CANCEL:
        return "cancelled";
    case EVREQ_HTTP_DATA_TOO_LONG:
        return "response too big";
    }
    return "connection failed";
}

static void job_done(struct slot *sl, int ok, double price, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void job_done(struct slot *sl, int ok, double price, const char *fmt, ...)
{
    struct http_src *h = sl->h;
    struct job *j = &h->jobs[sl->cur];
    j->state = 2;
    j->ok = ok;
    j->price = price;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(j->why, sizeof j->why, fmt, ap);
        va_end(ap);
    }
    sl->cur = -1;
    h->running--;
    event_active(h->pump, EV_TIMEOUT, 0);
}

static void on_error(enum evhttp_request_error e, void *arg)
{
    struct slot *sl = arg;
    sl->err = (int)e + 1;
}

static void on_response(struct evhttp_request *req, void *arg)
{
    struct slot *sl = arg;
    struct http_src *h = sl->h;
    if (sl->cur < 0) return;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    if (code == 0) {
        sl->broken = 1;
        job_done(sl, 0, 0, "%s", sl->err ? http_error_text(sl->err) : "connection failed");
        return;
    }
    if (code != 200) {
        sl->broken = 1; /* whatever state the server left it in */
        job_done(sl, 0, 0, "HTTP %d", code);
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    double price;
    char why[96];
    if (sg_http_json_price(body, len, h->price_path, &price, why, sizeof why) == SG_OK)
        job_done(sl, 1, price, NULL);
    else
        job_done(sl, 0, 0, "%s", why);
}

static void free_conn(struct slot *sl)
{
    if (sl->conn) evhttp_connection_free(sl->conn);
    sl->conn = NULL;
    sl->broken = 0;
}

static void start(struct http_src *h, struct slot *sl, size_t i)
{
    char path[2048];
    sl->cur = (long)i;
    sl->err = 0;
    h->jobs[i].state = 1;
    h->running++;
    h->gets++;
    if (sg_http_expand(h->path_tmpl, h->q[i].sym, path, sizeof path) != SG_OK) {
        job_done(sl, 0, 0, "URL too long");
        return;
    }
    if (!sl->conn) {
        sl->conn = evhttp_connection_base_new(h->eb, h->dns, h->host, (unsigned short)h->port);
        if (!sl->conn) {
            job_done(sl, 0, 0, "cannot create a connection");
            return;
        }
        struct timeval tv = {h->timeout_ms / 1000, (h->timeout_ms % 1000) * 1000};
        evhttp_connection_set_timeout_tv(sl->conn, &tv);
        evhttp_connection_set_retries(sl->conn, 0);
        evhttp_connection_set_max_body_size(sl->conn, (ev_ssize_t)h->max_body);
    }
    struct evhttp_request *req = evhttp_request_new(on_response, sl);
    if (!req) {
        job_done(sl, 0, 0, "out of memory");
        return;
    }
    evhttp_request_set_error_cb(req, on_error);
    struct evkeyvalq *hd = evhttp_request_get_output_headers(req);
    evhttp_add_header(hd, "Host", h->host_hdr);
    evhttp_add_header(hd, "Accept", "application/json");
    evhttp_add_header(hd, "User-Agent", "stockd/" SG_VERSION);
    if (evhttp_make_request(sl->conn, req, EVHTTP_REQ_GET, path) != 0) {
        /* req is libevent's either way (it may have been failed through
         * on_response already, which cur < 0 then makes a no-op) */
        sl->broken = 1;
        if (sl->cur < 0) return;
        job_done(sl, 0, 0, "cannot send the request");
    }
}

static void on_pump(evutil_socket_t fd, short what, void *arg)
{
    struct http_src *h = arg;
    for (int k = 0; k < h->nslots; k++) {
        struct slot *sl = &h->slots[k];
        if (sl->cur >= 0) continue;
        if (sl->broken) free_conn(sl);
        if (h->next < h->n) start(h, sl, h->next++);
    }
    if (h->running == 0 && h->next >= h->n) event_base_loopbreak(h->eb);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct http_src *h = arg;
    event_base_loopbreak(h->eb);
}

static void http_quote(struct sg_source *src, struct sg_src_quote *q, size_t n, double now)
{
    struct http_src *h = (struct http_src *)src;
    if (n == 0) return;
    h->jobs = calloc(n, sizeof *h->jobs);
    if (!h->jobs) {
        sg_log(SG_LOG_ERROR, "http: out of memory for %zu symbols", n);
        for (size_t i = 0; i < n; i++)
            q[i].have = sg_quotes_peek(h->last, q[i].sym, &q[i].price) == SG_OK;
        return;
    }
    h->q = q;
    h->n = n;
    h->next = 0;
    h->running = 0;
    struct timeval tv = {h->timeout_ms / 1000, (h->timeout_ms % 1000) * 1000};
    evtimer_add(h->deadline, &tv);
    event_active(h->pump, EV_TIMEOUT, 0);
    event_base_dispatch(h->eb);
    evtimer_del(h->deadline);
    event_del(h->pump);
    for (int k = 0; k < h->nslots; k++) {
        struct slot *sl = &h->slots[k];
        if (sl->cur >= 0) {
            struct job *j = &h->jobs[sl->cur];
            j->state = 2;
            snprintf(j->why, sizeof j->why, "timed out (http_timeout_ms %d)", h->timeout_ms);
            sl->cur = -1;
        }
        free_conn(sl); /* no keep-alive between work messages: the server may close it */
    }
    for (size_t i = h->next; i < n; i++) {
        h->jobs[i].state = 2;
        snprintf(h->jobs[i].why, sizeof h->jobs[i].why, "not started within http_timeout_ms %d",
                 h->timeout_ms);
    }
    h->running = 0;

    char line[1024];
    size_t w = 0, failed = 0, stale = 0;
    line[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        struct job *j = &h->jobs[i];
        q[i].have = 0;
        if (j->ok) {
            struct sg_quote_state *st;
            struct sg_quote_result res;
            if (sg_quotes_touch(h->last, q[i].sym, &st, &res) == SG_OK) {
                st->price = j->price;
                st->stamp = now;
            }
            q[i].price = j->price;
            q[i].have = 1;
            continue;
        }
        failed++;
        double p;
        if (sg_quotes_peek(h->last, q[i].sym, &p) == SG_OK) {
            q[i].price = p;
            q[i].have = 1;
            stale++;
        }
        sg_log(SG_LOG_DEBUG, "http: %s: %s (%s)", q[i].sym, j->why,
               q[i].have ? "last known price used" : "no price: left out");
        if (w < sizeof line - 1) {
            int k = snprintf(line + w, sizeof line - w, "%s%s: %s%s", w ? "; " : "", q[i].sym,
                             j->why, q[i].have ? "" : " (no last price)");
            w = k < 0 ? w : w + (size_t)k;
            if (w >= sizeof line) w = sizeof line - 1;
        }
    }
    h->failures += failed;
    if (failed)
        sg_log(SG_LOG_WARN, "http: %zu of %zu symbols failed, %zu got their last known price: %s",
               failed, n, stale, line);
    free(h->jobs);
    h->jobs = NULL;
    h->q = NULL;
    h->n = 0;
}

static void http_describe(const struct sg_source *src, char *buf, size_t cap)
{
    const struct http_src *h = (const struct http_src *)src;
    snprintf(buf, cap, "http: %llu GETs, %llu failed, %zu last prices kept", h->gets, h->failures,
             sg_quotes_count(h->last));
}

static void http_free(struct sg_source *src)
{
    struct http_src *h = (struct http_src *)src;
    if (!h) return;
    for (int k = 0; h->slots && k < h->nslots; k++)
        free_conn(&h->slots[k]);
    free(h->slots);
    if (h->pump) event_free(h->pump);
    if (h->deadline) event_free(h->deadline);
    if (h->dns) evdns_base_free(h->dns, 0);
    if (h->eb) event_base_free(h->eb);
    sg_quotes_free(h->last);
    free(h->path_tmpl);
    free(h->price_path);
    free(h);
}

static const struct sg_source_ops http_ops = {http_quote, http_describe, http_free};

struct sg_source *sg_http_source_new(const struct sg_http_source_config *c, char *why, size_t cap)
{
    char host[256];
    int port;
    const char *path;
    if (sg_http_url_split(c->url, host, sizeof host, &port, &path, why, cap) != SG_OK) return NULL;
    struct http_src *h = calloc(1, sizeof *h);
    if (!h) goto nomem;
    h->base.ops = &http_ops;
    h->base.name = "http";
    memcpy(h->host, host, sizeof host);
    if (strchr(host, ':'))
        snprintf(h->host_hdr, sizeof h->host_hdr, "[%s]:%d", host, port);
    else if (port == 80)
        snprintf(h->host_hdr, sizeof h->host_hdr, "%s", host);
    else
        snprintf(h->host_hdr, sizeof h->host_hdr, "%s:%d", host, port);
    h->port = port;
    h->timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : 1;
    h->max_body = c->max_body;
    h->nslots = c->max_inflight > 0 ? c->max_inflight : 1;
    h->path_tmpl = strdup(path);
    h->price_path = strdup(c->price_path ? c->price_path : "");
    h->slots = calloc((size_t)h->nslots, sizeof *h->slots);
    h->last = sg_quotes_new(c->max_tracked ? c->max_tracked : 1);
    h->eb = event_base_new();
    if (!h->path_tmpl || !h->price_path || !h->slots || !h->last || !h->eb) goto nomem;
    /* names resolved on the loop, with /etc/hosts and resolv.conf; a failed
     * resolv.conf read still leaves a usable base (numeric hosts, hosts file) */
    h->dns = evdns_base_new(h->eb, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (!h->dns) h->dns = evdns_base_new(h->eb, 0);
    h->pump = event_new(h->eb, -1, 0, on_pump, h);
    h->deadline = evtimer_new(h->eb, on_deadline, h);
    if (!h->pump || !h->deadline) goto nomem;
    for (int k = 0; k < h->nslots; k++) {
        h->slots[k].h = h;
        h->slots[k].cur = -1;
    }
    return &h->base;
nomem:
    snprintf(why, cap, "out of memory");
    http_free(h ? &h->base : NULL);
    return NULL;
}
