/* buf.c - bounded growable byte buffer (see buf.h). */
#include "buf.h"
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sg_buf_init(struct sg_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void sg_buf_reset(struct sg_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

int sg_buf_reserve(struct sg_buf *b, size_t n)
{
    if (n > SIZE_MAX - b->len) return SG_ETOOBIG;
    size_t need = b->len + n;
    if (b->max && need > b->max) return SG_ETOOBIG;
    if (need <= b->cap) return SG_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (b->max && cap > b->max) cap = b->max;
    uint8_t *p = realloc(b->data, cap);
    if (!p) return SG_ENOMEM;
    b->data = p;
    b->cap = cap;
    return SG_OK;
}

int sg_buf_append(struct sg_buf *b, const void *p, size_t n)
{
    int rc = sg_buf_reserve(b, n);
    if (rc != SG_OK) return rc;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return SG_OK;
}

int sg_buf_append_str(struct sg_buf *b, const char *s)
{
    return sg_buf_append(b, s, strlen(s));
}

int sg_buf_printf(struct sg_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return SG_EIO;
    /* the bound is on len: the terminating NUL vsnprintf writes may use one
     * byte of capacity past max without counting */
    int rc = sg_buf_reserve(b, (size_t)n);
    if (rc != SG_OK) return rc;
    if (b->cap < b->len + (size_t)n + 1) {
        uint8_t *p = realloc(b->data, b->len + (size_t)n + 1);
        if (!p) return SG_ENOMEM;
        b->data = p;
        b->cap = b->len + (size_t)n + 1;
    }
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return SG_OK;
}

void sg_buf_consume(struct sg_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}
