/* util.h - the few helpers every module shares: one monotonic clock, one
 * percent-decoder, one ASCII case-insensitive compare. No allocation; only
 * sg_now_ms touches the system (it reads the clock).
 */
#ifndef SG_UTIL_H
#define SG_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds of CLOCK_MONOTONIC (never goes back, unrelated to the wall
 * clock). Safe from any thread. */
uint64_t sg_now_ms(void);

/* FNV-1a of a NUL-terminated string: the hash of every string-keyed table. */
uint32_t sg_fnv1a(const char *s);

/* Percent-decodes src[0..len) (RFC 3986 2.1: pct-encoded = "%" HEXDIG
 * HEXDIG, either case) into out, cap bytes including the terminating NUL.
 * src is borrowed and may hold any bytes; nothing but the escapes is
 * interpreted ('+' stays '+', '/' and "%2F" both give '/', control bytes
 * pass): each caller applies its own rules to the result. Returns:
 *   SG_OK       out holds the decoded bytes and a NUL; *out_len (if not
 *               NULL) gets their count
 *   SG_EESCAPE  a '%' not followed by two hex digits
 *   SG_ENUL     a NUL byte, raw or "%00" (the result is a C string: a NUL
 *               in it would cut it short)
 *   SG_ETOOBIG  the decoded bytes and their NUL do not fit cap
 * The whole input is scanned: SG_EESCAPE and SG_ENUL name the first
 * offending byte and win over SG_ETOOBIG, so whether a name is malformed
 * never depends on cap. On error out is "" (when cap > 0) and *out_len is
 * left alone. */
int sg_pct_decode(const char *src, size_t len, char *out, size_t cap, size_t *out_len);

/* ASCII case-insensitive three-way compare of a[0..alen) and b[0..blen):
 * only 'A'-'Z' fold to 'a'-'z' (no locale, bytes >= 0x80 compare as
 * themselves), the way HTTP field names, tokens and schemes compare
 * (RFC 9110 5.1). Returns < 0, 0 or > 0 like memcmp on the folded bytes; a
 * proper prefix sorts first. Neither needs a NUL. */
int sg_ascii_casecmp(const char *a, size_t alen, const char *b, size_t blen);

/* 'A'-'Z' to 'a'-'z', every other byte unchanged. */
static inline unsigned char sg_ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

#endif
