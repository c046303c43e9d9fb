/* route.h - STOMP destination grammar -> AMQP, pure (no I/O, no broker).
 *
 * Same semantics as RabbitMQ's STOMP plugin (docs/PROTOCOL.md has the table):
 *   /queue/NAME         SUBSCRIBE: declare durable queue NAME, consume it
 *                       SEND: default exchange "", routing key NAME
 *   /amq/queue/NAME     SUBSCRIBE: consume existing NAME (no declare)
 *                       SEND: default exchange, routing key NAME
 *   /topic/KEY          SUBSCRIBE: exclusive queue bound to amq.topic with KEY
 *                       SEND: exchange amq.topic, routing key KEY
 *   /exchange/EX[/KEY]  SUBSCRIBE: exclusive queue bound to EX with KEY ("" if absent)
 *                       SEND: exchange EX, routing key KEY ("" if absent)
 *   /temp-queue/X       only in reply-to (and as MESSAGE destination of replies)
 *   /reply-queue/NAME   SEND only: default exchange, routing key NAME (how a
 *                       responder answers a /temp-queue reply-to)
 * NAME, KEY, EX and X are percent-decoded by sg_pct_decode (util.h: "%2F"
 * -> "/"; "%" must be followed by two hex digits), must be non-empty (except KEY in /exchange/EX
 * and /exchange/EX/), at most 255 bytes after decoding (AMQP shortstr), and
 * contain no NUL ("%00") or control characters (< 0x20 or 0x7f, literal or
 * escaped). NAME (of /queue, /amq/queue, /reply-queue) and X must not contain
 * a literal '/': "/queue/a/b" is an error, as in RabbitMQ's plugin; write
 * "/queue/a%2Fb" for the queue "a/b". EX ends at the first literal '/';
 * everything after that '/' is KEY, which may contain '/', and so may the
 * KEY of /topic (the plugin rejects a literal '/' in both KEYs, and accepts
 * one in a /reply-queue NAME; names we hand out never contain one).
 * "/queue" without the trailing slash is the same as "/queue/" (empty
 * name). Bytes >= 0x80 are passed through (no UTF-8 check). A destination
 * must start with '/'.
 */
#ifndef SG_ROUTE_H
#define SG_ROUTE_H

#include <stddef.h>

enum sg_route_kind {
    SG_ROUTE_QUEUE = 1,
    SG_ROUTE_AMQ_QUEUE,
    SG_ROUTE_TOPIC,
    SG_ROUTE_EXCHANGE,
    SG_ROUTE_TEMP_QUEUE,
    SG_ROUTE_REPLY_QUEUE,
};

struct sg_route {
    enum sg_route_kind kind;
    char exchange[256];    /* for SEND and for binding ("" = default exchange) */
    char routing_key[256]; /* for SEND and for binding */
    char queue[256]; /* queue name for QUEUE, AMQ_QUEUE, REPLY_QUEUE; temp name X for TEMP_QUEUE */
    int shared;      /* 1 for TOPIC and EXCHANGE (fan-out upstream can be shared) */
};

enum sg_route_use { SG_ROUTE_FOR_SEND = 0, SG_ROUTE_FOR_SUBSCRIBE = 1, SG_ROUTE_FOR_REPLY_TO = 2 };

/* Parses dest (NUL-terminated) for the given use. Returns SG_OK (*why set
 * to NULL), or SG_EDEST with *why set to a static text (e.g. "unknown
 * destination prefix", "empty queue name", "name too long", "/temp-queue is
 * only valid in reply-to", "/reply-queue cannot be subscribed to"). why may
 * be NULL. *out is zeroed on error. Fields set on success:
 *   QUEUE, AMQ_QUEUE, REPLY_QUEUE: queue = routing_key = NAME, exchange ""
 *   TOPIC: exchange "amq.topic", routing_key KEY, shared 1
 *   EXCHANGE: exchange EX, routing_key KEY ("" if absent), shared 1
 *   TEMP_QUEUE: queue = X (exchange and routing_key ""; the caller maps X
 *               to its private reply queue)
 * Uses: SEND accepts all but /temp-queue; SUBSCRIBE also refuses
 * /reply-queue; REPLY_TO accepts only /temp-queue/X: any dest other than
 * "/temp-queue" or "/temp-queue/..." gives SG_EDEST "not a temp queue" (the
 * caller then passes the reply-to value on verbatim), while a malformed
 * /temp-queue/X gives SG_EDEST with its own reason. */
int sg_route_parse(const char *dest, enum sg_route_use use, struct sg_route *out, const char **why);

#endif
