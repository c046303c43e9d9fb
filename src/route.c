/* route.c - STOMP destination grammar -> AMQP (see route.h).
 *
 * Follows RabbitMQ's rabbit_routing_parser: split on literal '/', then
 * percent-decode each part, so "%2F" is how a client puts a '/' into a
 * queue or exchange name. Two deliberate differences, both supersets of the
 * plugin: the KEY of /topic and /exchange/EX/ may contain literal '/'
 * (routing keys are opaque to the default topic exchange), and the result is
 * checked against AMQP's shortstr limit here rather than by the broker, so
 * the client gets an ERROR naming the destination instead of a channel
 * error on our shared connection.
 */
#include "route.h"
#include "error.h"
#include "util.h"

#include <string.h>

/* Names fit an AMQP shortstr (AMQP 0-9-1 §4.2.5.3: at most 255 octets). */
#define SG_ROUTE_NAME_MAX 255

/* Decodes one name part into out[256] and checks it; empty_why is the
 * message for an empty part. A literal '/' is refused where the grammar splits on
 * it (queue names), as the plugin does: "/queue/a/b" is an error, not queue
 * "a/b" nor queue "a". */
static int sg_name(const char *src, size_t len, int allow_slash, int allow_empty,
                   const char *empty_why, char out[256], const char **why)
{
    size_t n = 0;
    if (len == 0 && !allow_empty) {
        *why = empty_why;
        return SG_EDEST;
    }
    if (!allow_slash && memchr(src, '/', len)) {
        *why = "'/' in a queue name (use %2F)";
        return SG_EDEST;
    }
    /* escapes are judged before the length (sg_pct_decode scans it all), so
     * a bad escape in an over-long name reports the escape, which is the
     * more useful message */
    switch (sg_pct_decode(src, len, out, SG_ROUTE_NAME_MAX + 1, &n)) {
    case SG_OK:
        break;
    case SG_EESCAPE:
        *why = "bad percent-escape in destination";
        return SG_EDEST;
    case SG_ENUL:
        *why = "%00 in destination";
        return SG_EDEST;
    default: /* SG_ETOOBIG */
        *why = "name too long";
        return SG_EDEST;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)out[i];
        /* control characters (raw or escaped) would reach logs, the
         * management UI and other clients' headers verbatim */
        if (c < 0x20 || c == 0x7f) {
            *why = "control character in destination";
            return SG_EDEST;
        }
    }
    return SG_OK;
}

/* Matches "/word/" or exactly "/word"; the latter gives an empty rest, so
 * "/queue" reports "empty queue name" rather than an unknown prefix.
 * Returns the rest, or NULL. */
static const char *sg_prefix(const char *dest, const char *word)
{
    size_t wl = strlen(word);
    if (strncmp(dest, word, wl) != 0) return NULL;
    if (dest[wl] == '/') return dest + wl + 1;
    if (dest[wl] == '\0') return dest + wl;
    return NULL;
}

int sg_route_parse(const char *dest, enum sg_route_use use, struct sg_route *out, const char **why)
{
    const char *dummy;
    const char *rest;
    int rc = SG_EDEST;
    if (!why) why = &dummy;
    *why = NULL;
    memset(out, 0, sizeof *out);

    if (!dest || dest[0] != '/') {
        *why =
            use == SG_ROUTE_FOR_REPLY_TO ? "not a temp queue" : "destination must start with '/'";
        goto out;
    }
    if (use != SG_ROUTE_FOR_SEND && use != SG_ROUTE_FOR_SUBSCRIBE && use != SG_ROUTE_FOR_REPLY_TO) {
        *why = "invalid destination use";
        goto out;
    }

    /* reply-to: only /temp-queue/X is ours to rewrite; any other value is
     * an address for some other consumer and the caller passes it on */
    if (use == SG_ROUTE_FOR_REPLY_TO) {
        if (!(rest = sg_prefix(dest, "/temp-queue"))) {
            *why = "not a temp queue";
            goto out;
        }
        out->kind = SG_ROUTE_TEMP_QUEUE;
        rc = sg_name(rest, strlen(rest), 0, 0, "empty queue name", out->queue, why);
        goto out;
    }

    if ((rest = sg_prefix(dest, "/temp-queue"))) {
        *why = "/temp-queue is only valid in reply-to";
        goto out;
    }
    if ((rest = sg_prefix(dest, "/reply-queue"))) {
        if (use == SG_ROUTE_FOR_SUBSCRIBE) {
            *why = "/reply-queue cannot be subscribed to";
            goto out;
        }
        out->kind = SG_ROUTE_REPLY_QUEUE;
        rc = sg_name(rest, strlen(rest), 0, 0, "empty queue name", out->queue, why);
        if (rc == SG_OK) memcpy(out->routing_key, out->queue, sizeof out->queue);
        goto out;
    }
    if ((rest = sg_prefix(dest, "/queue")))
        out->kind = SG_ROUTE_QUEUE;
    else if ((rest = sg_prefix(dest, "/amq/queue")))
        out->kind = SG_ROUTE_AMQ_QUEUE;
    if (rest) {
        rc = sg_name(rest, strlen(rest), 0, 0, "empty queue name", out->queue, why);
        if (rc == SG_OK) memcpy(out->routing_key, out->queue, sizeof out->queue);
        goto out;
    }
    if ((rest = sg_prefix(dest, "/topic"))) {
        out->kind = SG_ROUTE_TOPIC;
        out->shared = 1;
        memcpy(out->exchange, "amq.topic", sizeof "amq.topic");
        rc = sg_name(rest, strlen(rest), 1, 0, "empty routing key", out->routing_key, why);
        goto out;
    }
    if ((rest = sg_prefix(dest, "/exchange"))) {
        /* EX ends at the first literal '/'; all after it is KEY */
        const char *slash = strchr(rest, '/');
        size_t exl = slash ? (size_t)(slash - rest) : strlen(rest);
        out->kind = SG_ROUTE_EXCHANGE;
        out->shared = 1;
        rc = sg_name(rest, exl, 1, 0, "empty exchange name", out->exchange, why);
        if (rc == SG_OK && slash)
            rc = sg_name(slash + 1, strlen(slash + 1), 1, 1, NULL, out->routing_key, why);
        goto out;
    }
    *why = "unknown destination prefix";

out:
    if (rc != SG_OK) memset(out, 0, sizeof *out);
    return rc;
}
