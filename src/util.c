/* util.c - the shared clock, percent-decoder and ASCII compare (util.h). */
#include "util.h"
#include "error.h"

#include <string.h>
#include <time.h>

uint64_t sg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int hex_val(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int sg_pct_decode(const char *src, size_t len, char *out, size_t cap, size_t *out_len)
{
    size_t w = 0;
    int err = SG_OK;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '%') {
            /* RFC 3986 2.1: pct-encoded = "%" HEXDIG HEXDIG */
            int hi = len - i >= 3 ? hex_val((unsigned char)src[i + 1]) : -1;
            int lo = len - i >= 3 ? hex_val((unsigned char)src[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                err = SG_EESCAPE;
                goto out;
            }
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        if (c == '\0') {
            err = SG_ENUL;
            goto out;
        }
        /* over cap: keep scanning, a malformed byte further on wins */
        if (w + 1 >= cap)
            err = SG_ETOOBIG;
        else
            out[w++] = (char)c;
    }
    if (cap == 0) err = SG_ETOOBIG; /* not even room for the NUL */
out:
    if (err != SG_OK) {
        if (cap > 0) out[0] = '\0';
        return err;
    }
    out[w] = '\0';
    if (out_len) *out_len = w;
    return SG_OK;
}

int sg_ascii_casecmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = sg_ascii_lower((unsigned char)a[i]);
        unsigned char y = sg_ascii_lower((unsigned char)b[i]);
        if (x != y) return x < y ? -1 : 1;
    }
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

uint32_t sg_fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}
