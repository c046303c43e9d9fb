/* fuzz_route.c - libFuzzer target for the destination grammar.
 *
 * data[0] % 3 picks the use (SEND, SUBSCRIBE, REPLY_TO); the rest, up to
 * the first NUL, is the destination. Checks:
 *  - an error is SG_EDEST with a one-line why and a zeroed route;
 *  - a success has NUL-terminated names of at most 255 bytes without
 *    control characters, a kind allowed for the use, and the fields the
 *    kind implies;
 *  - re-escaping the parsed names (every byte outside [A-Za-z0-9._-] as
 *    %XX) gives a destination that parses to the same route;
 *  - sg_pct_decode (util.h, the decoder route.c uses) on the raw bytes
 *    never writes past cap and agrees with a plain reference decoder.
 * Plain C: also linked with replay_main.c under gcc.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "route.h"
#include "util.h"

#define SG_FZ_CHECK(x)                                                                             \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void fz_name_ok(const char *s, size_t size)
{
    size_t n = strnlen(s, size);
    SG_FZ_CHECK(n < size); /* NUL-terminated within the field */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        SG_FZ_CHECK(c >= 0x20 && c != 0x7f);
    }
}

/* appends s percent-encoded to w; returns the new end */
static char *fz_escape(char *w, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '.' || c == '-' || c == '_') {
            *w++ = (char)c;
        } else {
            *w++ = '%';
            *w++ = hex[c >> 4];
            *w++ = hex[c & 15];
        }
    }
    *w = '\0';
    return w;
}

static int fz_hex(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = (uint8_t)(c | 0x20);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* reference decoder: SG_EESCAPE on a bad escape, SG_ENUL on a raw NUL or
 * %00 (the first offender wins), else the length (no cap) */
static long fz_ref_unescape(const uint8_t *s, size_t len, uint8_t *out)
{
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            if (s[i] == 0) return SG_ENUL;
            out[w++] = s[i];
            continue;
        }
        if (len - i < 3 || fz_hex(s[i + 1]) < 0 || fz_hex(s[i + 2]) < 0) return SG_EESCAPE;
        int v = fz_hex(s[i + 1]) * 16 + fz_hex(s[i + 2]);
        if (v == 0) return SG_ENUL;
        out[w++] = (uint8_t)v;
        i += 2;
    }
    return (long)w;
}

static void fz_check_unescape(const uint8_t *in, size_t len)
{
    uint8_t *ref = malloc(len + 1);
    SG_FZ_CHECK(ref != NULL);
    long rl = fz_ref_unescape(in, len, ref);
    static const size_t caps[] = {1, 16, 256, 4096};
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        size_t cap = caps[c];
        char *out = malloc(cap + 1);
        SG_FZ_CHECK(out != NULL);
        out[cap] = 'G'; /* guard */
        size_t n = (size_t)-1;
        int rc = sg_pct_decode((const char *)in, len, out, cap, &n);
        SG_FZ_CHECK(out[cap] == 'G');
        if (rl < 0) {
            SG_FZ_CHECK(rc == rl && out[0] == '\0' && n == (size_t)-1);
        } else if ((size_t)rl >= cap) {
            SG_FZ_CHECK(rc == SG_ETOOBIG && out[0] == '\0' && n == (size_t)-1);
        } else {
            SG_FZ_CHECK(rc == SG_OK && n == (size_t)rl);
            SG_FZ_CHECK(memcmp(out, ref, n) == 0 && out[n] == '\0');
        }
        free(out);
    }
    free(ref);
}

static void fz_check_route(const char *dest, enum sg_route_use use)
{
    struct sg_route r, r2;
    const char *why = NULL;
    int rc = sg_route_parse(dest, use, &r, &why);
    if (rc != SG_OK) {
        struct sg_route zero;
        memset(&zero, 0, sizeof zero);
        SG_FZ_CHECK(rc == SG_EDEST);
        SG_FZ_CHECK(why != NULL && *why && strchr(why, '\n') == NULL);
        SG_FZ_CHECK(memcmp(&r, &zero, sizeof r) == 0);
        return;
    }
    SG_FZ_CHECK(why == NULL);
    fz_name_ok(r.exchange, sizeof r.exchange);
    fz_name_ok(r.routing_key, sizeof r.routing_key);
    fz_name_ok(r.queue, sizeof r.queue);

    /* 255 bytes * 3 + a prefix fits easily */
    char again[2048], *w = again;
    switch (r.kind) {
    case SG_ROUTE_QUEUE:
    case SG_ROUTE_AMQ_QUEUE:
    case SG_ROUTE_REPLY_QUEUE:
        SG_FZ_CHECK(r.kind != SG_ROUTE_REPLY_QUEUE || use == SG_ROUTE_FOR_SEND);
        SG_FZ_CHECK(use != SG_ROUTE_FOR_REPLY_TO);
        SG_FZ_CHECK(r.queue[0] && strcmp(r.queue, r.routing_key) == 0);
        SG_FZ_CHECK(r.exchange[0] == '\0' && r.shared == 0);
        w = stpcpy(w, r.kind == SG_ROUTE_QUEUE       ? "/queue/"
                      : r.kind == SG_ROUTE_AMQ_QUEUE ? "/amq/queue/"
                                                     : "/reply-queue/");
        fz_escape(w, r.queue);
        break;
    case SG_ROUTE_TOPIC:
        SG_FZ_CHECK(use != SG_ROUTE_FOR_REPLY_TO);
        SG_FZ_CHECK(strcmp(r.exchange, "amq.topic") == 0 && r.routing_key[0]);
        SG_FZ_CHECK(r.queue[0] == '\0' && r.shared == 1);
        w = stpcpy(w, "/topic/");
        fz_escape(w, r.routing_key);
        break;
    case SG_ROUTE_EXCHANGE:
        SG_FZ_CHECK(use != SG_ROUTE_FOR_REPLY_TO);
        SG_FZ_CHECK(r.exchange[0] && r.queue[0] == '\0' && r.shared == 1);
        w = stpcpy(w, "/exchange/");
        w = fz_escape(w, r.exchange);
        *w++ = '/';
        fz_escape(w, r.routing_key);
        break;
    case SG_ROUTE_TEMP_QUEUE:
        SG_FZ_CHECK(use == SG_ROUTE_FOR_REPLY_TO);
        SG_FZ_CHECK(r.queue[0] && !r.exchange[0] && !r.routing_key[0] && r.shared == 0);
        w = stpcpy(w, "/temp-queue/");
        fz_escape(w, r.queue);
        break;
    default:
        SG_FZ_CHECK(0);
    }
    SG_FZ_CHECK(sg_route_parse(again, use, &r2, &why) == SG_OK);
    SG_FZ_CHECK(memcmp(&r, &r2, sizeof r) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    enum sg_route_use use = (enum sg_route_use)(data[0] % 3);
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    char *dest = malloc(len + 1);
    if (!dest) return 0;
    if (len) memcpy(dest, in, len);
    dest[len] = '\0';
    fz_check_route(dest, use);
    fz_check_unescape(in, len);
    free(dest);
    return 0;
}
