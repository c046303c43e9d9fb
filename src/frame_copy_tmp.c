/* TEMPORARY: replaced by stomp_frame.c's sg_stomp_frame_copy API at merge. */
#include "frame_copy_tmp.h"
#include <stdlib.h>
#include <string.h>
struct sg_stomp_frame_copy {
    enum sg_stomp_cmd cmd;
    size_t nh;
    struct sg_stomp_header *h;
    const uint8_t *body;
    size_t body_len;
};
struct sg_stomp_frame_copy *sg_stomp_frame_copy_filter(const struct sg_stomp_frame *f,
                                                       int (*keep)(const struct sg_stomp_header *h,
                                                                   void *arg),
                                                       void *arg, int with_body, size_t *bytes)
{
    size_t nh = 0, n = sizeof(struct sg_stomp_frame_copy) + 1;
    for (size_t i = 0; i < f->num_headers; i++) {
        if (keep && !keep(&f->headers[i], arg)) continue;
        nh++;
        n += sizeof(struct sg_stomp_header) + f->headers[i].key_len + f->headers[i].value_len + 2;
    }
    if (with_body) n += f->body_len;
    struct sg_stomp_frame_copy *c = malloc(n);
    if (!c) return NULL;
    c->cmd = f->cmd;
    c->nh = nh;
    c->h = (struct sg_stomp_header *)(c + 1);
    char *p = (char *)(c->h + nh);
    size_t k = 0;
    for (size_t i = 0; i < f->num_headers; i++) {
        const struct sg_stomp_header *h = &f->headers[i];
        if (keep && !keep(h, arg)) continue;
        memcpy(p, h->key, h->key_len);
        p[h->key_len] = 0;
        c->h[k].key = p;
        c->h[k].key_len = h->key_len;
        p += h->key_len + 1;
        memcpy(p, h->value, h->value_len);
        p[h->value_len] = 0;
        c->h[k].value = p;
        c->h[k].value_len = h->value_len;
        p += h->value_len + 1;
        k++;
    }
    c->body_len = with_body ? f->body_len : 0;
    if (c->body_len) memcpy(p, f->body, c->body_len);
    p[c->body_len] = 0;
    c->body = (const uint8_t *)p;
    if (bytes) *bytes = n;
    return c;
}
struct sg_stomp_frame_copy *sg_stomp_frame_copy_new(const struct sg_stomp_frame *f, size_t *bytes)
{
    return sg_stomp_frame_copy_filter(f, NULL, NULL, 1, bytes);
}
void sg_stomp_frame_copy_free(struct sg_stomp_frame_copy *c)
{
    free(c);
}
const struct sg_stomp_frame *sg_stomp_frame_copy_view(const struct sg_stomp_frame_copy *c,
                                                      struct sg_stomp_frame *out)
{
    out->cmd = c->cmd;
    out->num_headers = c->nh;
    memcpy(out->headers, c->h, c->nh * sizeof *c->h);
    out->body = c->body;
    out->body_len = c->body_len;
    return out;
}
size_t sg_stomp_frame_copy_nheaders(const struct sg_stomp_frame_copy *c)
{
    return c->nh;
}
const struct sg_stomp_header *sg_stomp_frame_copy_header(const struct sg_stomp_frame_copy *c,
                                                         size_t i)
{
    return &c->h[i];
}
