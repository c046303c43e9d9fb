/* msg_encode.h - an AMQP delivery -> a STOMP MESSAGE frame, sans-I/O.
 *
 * A MESSAGE is written in two parts so that a fan-out delivery is encoded
 * once and shared by every subscriber:
 *   head    "MESSAGE\n" subscription:ID [ack:ACK]      per subscriber
 *   shared  destination, message-id, redelivered, the AMQP properties
 *           mapped back (amqp_map.h), content-length, the blank line;
 *           then the caller appends the body and the NUL  once per delivery
 * Header values are escaped per STOMP version (10, 11, 12) by
 * sg_stomp_encode_header; nothing here allocates except the caller's buffer.
 */
#ifndef SG_MSG_ENCODE_H
#define SG_MSG_ENCODE_H

#include <amqp.h>
#include <stddef.h>
#include "buf.h"

/* The destination header of a delivery, as RabbitMQ's STOMP plugin writes
 * it: the default exchange -> /queue/KEY, amq.topic -> /topic/KEY, any other
 * exchange -> /exchange/EX/KEY. Writes at most cap bytes (NUL-terminated,
 * truncated if longer). Returns SG_OK, or SG_ETOOBIG if it was truncated. */
int sg_msg_destination(const char *exchange, const char *routing_key, char *out, size_t cap);

/* Appends the shared part (see above) to b. props may be NULL. Returns
 * SG_OK, SG_ETOOBIG (b's bound) or SG_ENOMEM; b may hold a partial part on
 * error (clear it). */
int sg_msg_encode_shared(struct sg_buf *b, int version, const char *destination,
                         const char *message_id, int redelivered,
                         const amqp_basic_properties_t *props, size_t body_len);

/* Appends the per-subscriber head to b: the command line, subscription
 * and, when ack_id is not NULL, the STOMP 1.2 ack header. Returns SG_OK,
 * SG_ETOOBIG or SG_ENOMEM. */
int sg_msg_encode_head(struct sg_buf *b, int version, const char *subscription, const char *ack_id);

#endif
