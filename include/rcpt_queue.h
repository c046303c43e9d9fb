/* rcpt_queue.h - the order in which a session's RECEIPTs leave, sans-I/O.
 *
 * A RECEIPT tells a client that every frame it sent before was processed,
 * even when an earlier SUBSCRIBE's queue is still being declared on another
 * channel or an earlier SEND still waits for its publisher confirm. So each
 * frame whose completion comes later takes a place in this FIFO; a frame
 * completed at once behind pending ones takes a place that is already done;
 * RECEIPTs are popped from the head only once done. An entry without a
 * receipt is just an ordering point (a SUBSCRIBE without receipt, a SEND of
 * a committed transaction).
 *
 * Bounded: at most `max` entries (0 = unbounded); pushing more is
 * SG_ETOOMANY, so a client that pipelines receipts while the broker is
 * blocked gets an ERROR instead of growing the daemon.
 *
 * Single-threaded; no I/O; entries are owned by the queue until popped.
 */
#ifndef SG_RCPT_QUEUE_H
#define SG_RCPT_QUEUE_H

#include <stddef.h>
#include <sys/queue.h>

struct sg_rcpt {
    STAILQ_ENTRY(sg_rcpt) link;
    char *receipt; /* owned; NULL: an ordering point */
    int done;
};

struct sg_rcpt_queue {
    STAILQ_HEAD(, sg_rcpt) head;
    size_t n;   /* entries queued */
    size_t max; /* bound on n; 0 = none */
};

void sg_rcpt_queue_init(struct sg_rcpt_queue *q, size_t max);
/* Frees every entry (their receipts are never sent). */
void sg_rcpt_queue_reset(struct sg_rcpt_queue *q);

/* Appends an entry. receipt (may be NULL) is copied. done: the frame is
 * complete already (it only waits for the ones before it). Returns SG_OK
 * with *out (may be NULL) pointing at the entry (valid until it is popped
 * or the queue is reset), SG_ETOOMANY if the queue is full, SG_ENOMEM. */
int sg_rcpt_queue_push(struct sg_rcpt_queue *q, const char *receipt, int done,
                       struct sg_rcpt **out);

/* Marks e (an entry of q, or NULL: no-op) complete. Pop what is ready next. */
void sg_rcpt_queue_done(struct sg_rcpt_queue *q, struct sg_rcpt *e);

/* Takes the head entry if it is done: SG_OK with *receipt set to the
 * receipt, now owned by the caller (NULL for an ordering point: nothing to
 * send); SG_AGAIN if the queue is empty or its head is not done. */
int sg_rcpt_queue_pop(struct sg_rcpt_queue *q, char **receipt);

/* 1 if no entry is queued (a frame completed now may answer at once). */
int sg_rcpt_queue_is_empty(const struct sg_rcpt_queue *q);

#endif
