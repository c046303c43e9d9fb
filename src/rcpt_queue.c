/* rcpt_queue.c - RECEIPT ordering FIFO (see rcpt_queue.h). */
#include "rcpt_queue.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

void sg_rcpt_queue_init(struct sg_rcpt_queue *q, size_t max)
{
    STAILQ_INIT(&q->head);
    q->n = 0;
    q->max = max;
}

void sg_rcpt_queue_reset(struct sg_rcpt_queue *q)
{
    struct sg_rcpt *e;
    while ((e = STAILQ_FIRST(&q->head))) {
        STAILQ_REMOVE_HEAD(&q->head, link);
        free(e->receipt);
        free(e);
    }
    q->n = 0;
}

int sg_rcpt_queue_push(struct sg_rcpt_queue *q, const char *receipt, int done, struct sg_rcpt **out)
{
    if (out) *out = NULL;
    if (q->max && q->n >= q->max) return SG_ETOOMANY;
    struct sg_rcpt *e = calloc(1, sizeof *e);
    if (!e) return SG_ENOMEM;
    if (receipt && !(e->receipt = strdup(receipt))) {
        free(e);
        return SG_ENOMEM;
    }
    e->done = done;
    STAILQ_INSERT_TAIL(&q->head, e, link);
    q->n++;
    if (out) *out = e;
    return SG_OK;
}

void sg_rcpt_queue_done(struct sg_rcpt_queue *q, struct sg_rcpt *e)
{
    (void)q;
    if (e) e->done = 1;
}

int sg_rcpt_queue_pop(struct sg_rcpt_queue *q, char **receipt)
{
    struct sg_rcpt *e = STAILQ_FIRST(&q->head);
    *receipt = NULL;
    if (!e || !e->done) return SG_AGAIN;
    STAILQ_REMOVE_HEAD(&q->head, link);
    q->n--;
    *receipt = e->receipt;
    free(e);
    return SG_OK;
}

int sg_rcpt_queue_is_empty(const struct sg_rcpt_queue *q)
{
    return STAILQ_EMPTY(&q->head);
}
