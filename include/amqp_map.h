/* amqp_map.h - STOMP headers <-> AMQP basic properties, pure (no I/O).
 *
 * Compatible with RabbitMQ's STOMP plugin:
 *   STOMP header        AMQP property
 *   content-type        content_type
 *   content-encoding    content_encoding
 *   persistent:true     delivery_mode 2 (any other value: delivery_mode not set)
 *   priority            priority (0-255; non-numeric -> error)
 *   correlation-id      correlation_id
 *   reply-to            reply_to (the caller rewrites /temp-queue/X first)
 *   expiration          expiration
 *   amqp-message-id     message_id
 *   type                type
 *   app-id              app_id
 *   user-id             user_id
 *   timestamp           timestamp (decimal seconds; non-numeric -> error)
 *   anything else       headers table entry (string value), except the
 *                       STOMP frame-level headers destination, receipt,
 *                       transaction, content-length, the STOMP delivery
 *                       headers ack, id, subscription, message-id and
 *                       redelivered (a client must not forge them), and the
 *                       ones above.
 * And back on MESSAGE: every property that is set becomes its header, in the
 * order of the table above (persistent:true only for delivery_mode 2);
 * then headers-table entries in table order (UTF8/bytes as they are;
 * integers and timestamps in decimal; booleans "true"/"false"; floats with
 * %.17g; decimal, table, array and void skipped).
 */
#ifndef SG_AMQP_MAP_H
#define SG_AMQP_MAP_H

#include <amqp.h>
#include "buf.h"
#include "stomp_frame.h"

/* Fills *props (zeroed first) from a SEND frame's headers. Strings point
 * into the frame (valid as long as the frame); the headers table entries are
 * allocated from pool (freed with it). A repeated header: the first wins,
 * later ones are ignored (not even validated). priority must be a plain
 * decimal 0-255 and timestamp a plain decimal uint64 (digits only: no sign,
 * no spaces). Headers with an empty name are dropped. Returns SG_OK (*why
 * NULL), or with *why set (static text) and *props zeroed: SG_ESTOMP for a
 * bad priority/timestamp, a property value or custom header name over 255
 * bytes (AMQP shortstr); SG_ETOOMANY for more than 128 custom headers
 * (distinct names); SG_ENOMEM if the pool fails. why may be NULL. */
int sg_map_send_to_props(const struct sg_stomp_frame *f, amqp_pool_t *pool,
                         amqp_basic_properties_t *props, const char **why);

/* Appends "key:value\n" header lines (escaped per version, see
 * sg_stomp_encode_header) for every property set in props and every
 * headers-table entry, except table keys the caller writes itself
 * (destination, message-id, subscription, content-length, redelivered, ack).
 * A key or value that cannot be written so that it decodes back (a NUL;
 * without escaping a LF or a ':' in a key; a trailing CR before 1.2; an
 * empty key from 1.1 on) is skipped: no header injection from AMQP
 * publishers. Returns SG_OK, SG_ETOOBIG or SG_ENOMEM; on error out is left
 * as it was. props is only read. */
int sg_map_props_to_headers(const amqp_basic_properties_t *props, int version, struct sg_buf *out);

#endif
