/* buf.h - a growable byte buffer with a hard bound, for sans-I/O encoders
 * and decoders. Never grows past `max` (0 = SIZE_MAX): going over is
 * SG_ETOOBIG, never an unbounded realloc.
 */
#ifndef SG_BUF_H
#define SG_BUF_H

#include <stddef.h>
#include <stdint.h>

struct sg_buf {
    uint8_t *data; /* owned */
    size_t len;
    size_t cap;
    size_t max; /* hard bound on len; 0 = unbounded */
};

void sg_buf_init(struct sg_buf *b, size_t max);
void sg_buf_reset(struct sg_buf *b); /* frees data; b may be reused after sg_buf_init */
/* Appends n bytes. Returns SG_OK, SG_ETOOBIG (over max; nothing appended) or SG_ENOMEM. */
int sg_buf_append(struct sg_buf *b, const void *p, size_t n);
/* Appends strlen(s) bytes (no NUL); returns as sg_buf_append. */
int sg_buf_append_str(struct sg_buf *b, const char *s);
/* Appends the formatted text (no NUL). Returns SG_OK, SG_ETOOBIG (over
 * max), SG_ENOMEM, or SG_EIO if the format itself fails (vsnprintf < 0);
 * on error nothing is appended. */
int sg_buf_printf(struct sg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Ensures room for n more bytes (len + n <= max); SG_OK, SG_ETOOBIG or SG_ENOMEM. */
int sg_buf_reserve(struct sg_buf *b, size_t n);
/* Drops the first n bytes (memmove). */
void sg_buf_consume(struct sg_buf *b, size_t n);
static inline void sg_buf_clear(struct sg_buf *b)
{
    b->len = 0;
}

#endif
