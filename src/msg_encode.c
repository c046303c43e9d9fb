/* msg_encode.c - delivery -> MESSAGE frame parts (see msg_encode.h). */
#include "msg_encode.h"
#include "amqp_map.h"
#include "error.h"
#include "stomp_frame.h"

#include <stdio.h>
#include <string.h>

static int hdr(struct sg_buf *b, int v, const char *k, const char *val)
{
    return sg_stomp_encode_header(b, v, k, strlen(k), val, strlen(val));
}

int sg_msg_destination(const char *exchange, const char *routing_key, char *out, size_t cap)
{
    int n;
    if (!exchange[0])
        n = snprintf(out, cap, "/queue/%s", routing_key);
    else if (!strcmp(exchange, "amq.topic"))
        n = snprintf(out, cap, "/topic/%s", routing_key);
    else
        n = snprintf(out, cap, "/exchange/%s/%s", exchange, routing_key);
    return n < 0 || (size_t)n >= cap ? SG_ETOOBIG : SG_OK;
}

int sg_msg_encode_shared(struct sg_buf *b, int version, const char *destination,
                         const char *message_id, int redelivered,
                         const amqp_basic_properties_t *props, size_t body_len)
{
    int rc;
    char cl[32];
    if ((rc = hdr(b, version, "destination", destination)) != SG_OK) return rc;
    if ((rc = hdr(b, version, "message-id", message_id)) != SG_OK) return rc;
    if ((rc = hdr(b, version, "redelivered", redelivered ? "true" : "false")) != SG_OK) return rc;
    if (props && (rc = sg_map_props_to_headers(props, version, b)) != SG_OK) return rc;
    snprintf(cl, sizeof cl, "%zu", body_len);
    if ((rc = hdr(b, version, "content-length", cl)) != SG_OK) return rc;
    return sg_buf_append(b, "\n", 1);
}

int sg_msg_encode_head(struct sg_buf *b, int version, const char *subscription, const char *ack_id)
{
    int rc;
    if ((rc = sg_buf_append_str(b, "MESSAGE\n")) != SG_OK) return rc;
    if ((rc = hdr(b, version, "subscription", subscription)) != SG_OK) return rc;
    if (ack_id && (rc = hdr(b, version, "ack", ack_id)) != SG_OK) return rc;
    return SG_OK;
}
