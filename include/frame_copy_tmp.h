/* TEMPORARY: replaced by stomp_frame.h's sg_stomp_frame_copy API at merge. */
#ifndef SG_FRAME_COPY_TMP_H
#define SG_FRAME_COPY_TMP_H
#include "stomp_frame.h"
struct sg_stomp_frame_copy;
struct sg_stomp_frame_copy *sg_stomp_frame_copy_new(const struct sg_stomp_frame *f, size_t *bytes);
void sg_stomp_frame_copy_free(struct sg_stomp_frame_copy *c);
const struct sg_stomp_frame *sg_stomp_frame_copy_view(const struct sg_stomp_frame_copy *c,
                                                      struct sg_stomp_frame *out);
size_t sg_stomp_frame_copy_nheaders(const struct sg_stomp_frame_copy *c);
const struct sg_stomp_header *sg_stomp_frame_copy_header(const struct sg_stomp_frame_copy *c,
                                                         size_t i);
struct sg_stomp_frame_copy *sg_stomp_frame_copy_filter(const struct sg_stomp_frame *f,
                                                       int (*keep)(const struct sg_stomp_header *h,
                                                                   void *arg),
                                                       void *arg, int with_body, size_t *bytes);
#endif
