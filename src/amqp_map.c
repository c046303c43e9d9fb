/* amqp_map.c - STOMP headers <-> AMQP basic properties (see amqp_map.h).
 *
 * The header names and the property each maps to are RabbitMQ's STOMP
 * plugin's (rabbit_stomp_util), so a message sent through either bridge
 * looks the same to AMQP consumers and comes back with the same headers.
 */
#include "amqp_map.h"
#include "error.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define SG_MAP_MAX_CUSTOM 128
/* AMQP 0-9-1 §4.2.5.3: shortstr is at most 255 octets. rabbitmq-c casts the
 * length to uint8_t when encoding a table key, so a longer key would be
 * silently truncated into a corrupt frame; check it here. */
#define SG_MAP_SHORTSTR_MAX 255

/* SEND headers that are STOMP frame-level or ours (ack/id/subscription/
 * message-id/redelivered would let a client forge delivery metadata for the
 * consumers of the message) and never go into the headers table. */
static const char *const sg_send_excluded[] = {
    "destination", "receipt",      "transaction", "content-length", "ack",
    "id",          "subscription", "message-id",  "redelivered",
};

/* Table keys the caller writes itself on a MESSAGE frame; a copy from the
 * table would shadow or duplicate them. */
static const char *const sg_msg_reserved[] = {
    "destination", "message-id", "subscription", "content-length", "redelivered", "ack",
};

enum sg_prop {
    SG_P_NONE = 0,
    SG_P_CONTENT_TYPE,
    SG_P_CONTENT_ENCODING,
    SG_P_PERSISTENT,
    SG_P_PRIORITY,
    SG_P_CORRELATION_ID,
    SG_P_REPLY_TO,
    SG_P_EXPIRATION,
    SG_P_MESSAGE_ID,
    SG_P_TYPE,
    SG_P_APP_ID,
    SG_P_USER_ID,
    SG_P_TIMESTAMP,
};

/* In the order sg_map_props_to_headers emits them. */
static const struct {
    const char *name;
    enum sg_prop prop;
} sg_props[] = {
    {"content-type", SG_P_CONTENT_TYPE},
    {"content-encoding", SG_P_CONTENT_ENCODING},
    {"persistent", SG_P_PERSISTENT},
    {"priority", SG_P_PRIORITY},
    {"correlation-id", SG_P_CORRELATION_ID},
    {"reply-to", SG_P_REPLY_TO},
    {"expiration", SG_P_EXPIRATION},
    {"amqp-message-id", SG_P_MESSAGE_ID},
    {"type", SG_P_TYPE},
    {"app-id", SG_P_APP_ID},
    {"user-id", SG_P_USER_ID},
    {"timestamp", SG_P_TIMESTAMP},
};

#define SG_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Length-checked compare; never calls memcmp with len 0, where a NULL
 * pointer (an empty amqp_bytes_t) would be undefined behaviour. */
static int sg_eq(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static int sg_key_is(const char *key, size_t len, const char *name)
{
    return sg_eq(key, len, name, strlen(name));
}

static int sg_in_list(const char *key, size_t len, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (sg_key_is(key, len, list[i])) return 1;
    return 0;
}

static enum sg_prop sg_prop_of(const char *key, size_t len)
{
    for (size_t i = 0; i < SG_COUNT(sg_props); i++)
        if (sg_key_is(key, len, sg_props[i].name)) return sg_props[i].prop;
    return SG_P_NONE;
}

/* STOMP 1.2 "Repeated Header Entries": only the first occurrence counts. */
static int sg_seen_before(const struct sg_stomp_frame *f, size_t i)
{
    const struct sg_stomp_header *h = &f->headers[i];
    for (size_t j = 0; j < i; j++)
        if (sg_eq(f->headers[j].key, f->headers[j].key_len, h->key, h->key_len)) return 1;
    return 0;
}

/* Strict unsigned decimal: digits only, no sign, no spaces, no empty
 * string, no overflow past max. strtoull would accept " +7" and wrap. */
static int sg_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0) return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9) return -1;
        if (v > (max - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static amqp_bytes_t sg_view(const struct sg_stomp_header *h)
{
    amqp_bytes_t b;
    b.len = h->value_len;
    b.bytes = (void *)h->value; /* amqp_bytes_t has no const; rabbitmq-c only reads it */
    return b;
}

/* Sets one mapped property from header h. */
static int sg_set_prop(enum sg_prop p, const struct sg_stomp_header *h,
                       amqp_basic_properties_t *props, const char **why)
{
    uint64_t v;
    amqp_bytes_t *field = NULL;
    amqp_flags_t flag = 0;

    switch (p) {
    case SG_P_PERSISTENT:
        /* the plugin only looks for "true"; "false" or junk = transient */
        if (sg_key_is(h->value, h->value_len, "true")) {
            props->delivery_mode = 2;
            props->_flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
        }
        return SG_OK;
    case SG_P_PRIORITY:
        if (sg_parse_u64(h->value, h->value_len, 255, &v) != 0) {
            *why = "invalid priority header (must be 0-255)";
            return SG_ESTOMP;
        }
        props->priority = (uint8_t)v;
        props->_flags |= AMQP_BASIC_PRIORITY_FLAG;
        return SG_OK;
    case SG_P_TIMESTAMP:
        if (sg_parse_u64(h->value, h->value_len, UINT64_MAX, &v) != 0) {
            *why = "invalid timestamp header (must be decimal seconds)";
            return SG_ESTOMP;
        }
        props->timestamp = v;
        props->_flags |= AMQP_BASIC_TIMESTAMP_FLAG;
        return SG_OK;
    case SG_P_CONTENT_TYPE:
        field = &props->content_type;
        flag = AMQP_BASIC_CONTENT_TYPE_FLAG;
        break;
    case SG_P_CONTENT_ENCODING:
        field = &props->content_encoding;
        flag = AMQP_BASIC_CONTENT_ENCODING_FLAG;
        break;
    case SG_P_CORRELATION_ID:
        field = &props->correlation_id;
        flag = AMQP_BASIC_CORRELATION_ID_FLAG;
        break;
    case SG_P_REPLY_TO:
        field = &props->reply_to;
        flag = AMQP_BASIC_REPLY_TO_FLAG;
        break;
    case SG_P_EXPIRATION:
        field = &props->expiration;
        flag = AMQP_BASIC_EXPIRATION_FLAG;
        break;
    case SG_P_MESSAGE_ID:
        field = &props->message_id;
        flag = AMQP_BASIC_MESSAGE_ID_FLAG;
        break;
    case SG_P_TYPE:
        field = &props->type;
        flag = AMQP_BASIC_TYPE_FLAG;
        break;
    case SG_P_APP_ID:
        field = &props->app_id;
        flag = AMQP_BASIC_APP_ID_FLAG;
        break;
    case SG_P_USER_ID:
        field = &props->user_id;
        flag = AMQP_BASIC_USER_ID_FLAG;
        break;
    case SG_P_NONE:
        return SG_OK;
    }
    /* every string property is a shortstr on the wire */
    if (h->value_len > SG_MAP_SHORTSTR_MAX) {
        *why = "header value too long for an AMQP property (max 255 bytes)";
        return SG_ESTOMP;
    }
    *field = sg_view(h);
    props->_flags |= flag;
    return SG_OK;
}

/* Whether header i becomes a headers-table entry. Empty keys (possible in
 * STOMP 1.0) are dropped: an AMQP field name cannot be empty. */
static int sg_is_custom(const struct sg_stomp_frame *f, size_t i)
{
    const struct sg_stomp_header *h = &f->headers[i];
    return h->key_len > 0 && sg_prop_of(h->key, h->key_len) == SG_P_NONE &&
           !sg_in_list(h->key, h->key_len, sg_send_excluded, SG_COUNT(sg_send_excluded)) &&
           !sg_seen_before(f, i);
}

int sg_map_send_to_props(const struct sg_stomp_frame *f, amqp_pool_t *pool,
                         amqp_basic_properties_t *props, const char **why)
{
    const char *dummy;
    size_t ncustom = 0;
    amqp_table_entry_t *entries = NULL;
    int rc = SG_OK;
    if (!why) why = &dummy;
    *why = NULL;
    memset(props, 0, sizeof *props);

    /* pass 1: mapped properties, and count the table entries */
    for (size_t i = 0; i < f->num_headers; i++) {
        const struct sg_stomp_header *h = &f->headers[i];
        enum sg_prop p = sg_prop_of(h->key, h->key_len);
        if (p != SG_P_NONE) {
            if (sg_seen_before(f, i)) continue;
            rc = sg_set_prop(p, h, props, why);
            if (rc != SG_OK) goto out;
            continue;
        }
        if (!sg_is_custom(f, i)) continue;
        if (h->key_len > SG_MAP_SHORTSTR_MAX) {
            rc = SG_ESTOMP;
            *why = "header name too long for AMQP (max 255 bytes)";
            goto out;
        }
        if (++ncustom > SG_MAP_MAX_CUSTOM) {
            rc = SG_ETOOMANY;
            *why = "too many headers for AMQP (max 128 custom headers)";
            goto out;
        }
    }
    if (ncustom == 0) goto out;

    /* pass 2: the table, in frame order */
    entries = amqp_pool_alloc(pool, ncustom * sizeof *entries);
    if (!entries) {
        rc = SG_ENOMEM;
        *why = "out of memory";
        goto out;
    }
    size_t n = 0;
    for (size_t i = 0; i < f->num_headers; i++) {
        const struct sg_stomp_header *h = &f->headers[i];
        if (!sg_is_custom(f, i)) continue;
        entries[n].key.len = h->key_len;
        entries[n].key.bytes = (void *)h->key;
        entries[n].value.kind = AMQP_FIELD_KIND_UTF8;
        entries[n].value.value.bytes = sg_view(h);
        n++;
    }
    props->headers.num_entries = (int)n;
    props->headers.entries = entries;
    props->_flags |= AMQP_BASIC_HEADERS_FLAG;

out:
    if (rc != SG_OK) memset(props, 0, sizeof *props);
    return rc;
}

/* Appends one header; a value that cannot be written so that it decodes
 * back (NUL, LF or ':' without escaping, trailing CR before 1.2, empty key
 * from 1.1 on) comes from some other AMQP publisher and is skipped rather
 * than failing the whole delivery. */
static int sg_emit(struct sg_buf *out, int version, const char *key, size_t key_len,
                   const void *value, size_t value_len)
{
    int rc = sg_stomp_encode_header(out, version, key, key_len, (const char *)value, value_len);
    return rc == SG_ESTOMP ? SG_OK : rc;
}

static int sg_emit_str(struct sg_buf *out, int version, const char *key, amqp_bytes_t v)
{
    return sg_emit(out, version, key, strlen(key), v.bytes, v.len);
}

static int sg_emit_u64(struct sg_buf *out, int version, const char *key, uint64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%" PRIu64, v);
    return sg_emit(out, version, key, strlen(key), num, (size_t)n);
}

/* Text of a table value into *text and *len (num is scratch space for numbers).
 * Returns 0, or -1 for kinds we skip (decimal, nested table, array, void:
 * no faithful flat text form). */
static int sg_field_text(const amqp_field_value_t *v, char *num, size_t cap, const void **text,
                         size_t *len)
{
    int n;
    switch (v->kind) {
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
        *text = v->value.bytes.bytes;
        *len = v->value.bytes.len;
        return 0;
    case AMQP_FIELD_KIND_BOOLEAN:
        *text = v->value.boolean ? "true" : "false";
        *len = v->value.boolean ? 4 : 5;
        return 0;
    case AMQP_FIELD_KIND_I8:
        n = snprintf(num, cap, "%d", (int)v->value.i8);
        break;
    case AMQP_FIELD_KIND_U8:
        n = snprintf(num, cap, "%u", (unsigned)v->value.u8);
        break;
    case AMQP_FIELD_KIND_I16:
        n = snprintf(num, cap, "%d", (int)v->value.i16);
        break;
    case AMQP_FIELD_KIND_U16:
        n = snprintf(num, cap, "%u", (unsigned)v->value.u16);
        break;
    case AMQP_FIELD_KIND_I32:
        n = snprintf(num, cap, "%" PRId32, v->value.i32);
        break;
    case AMQP_FIELD_KIND_U32:
        n = snprintf(num, cap, "%" PRIu32, v->value.u32);
        break;
    case AMQP_FIELD_KIND_I64:
        n = snprintf(num, cap, "%" PRId64, v->value.i64);
        break;
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP:
        n = snprintf(num, cap, "%" PRIu64, v->value.u64);
        break;
    /* %.17g: enough digits that the text reads back as the same double */
    case AMQP_FIELD_KIND_F32:
        n = snprintf(num, cap, "%.17g", (double)v->value.f32);
        break;
    case AMQP_FIELD_KIND_F64:
        n = snprintf(num, cap, "%.17g", v->value.f64);
        break;
    default:
        return -1;
    }
    if (n < 0 || (size_t)n >= cap) return -1;
    *text = num;
    *len = (size_t)n;
    return 0;
}

int sg_map_props_to_headers(const amqp_basic_properties_t *props, int version, struct sg_buf *out)
{
    size_t mark = out->len;
    amqp_flags_t fl = props->_flags;
    int rc = SG_OK;

#define SG_STR(flag, name, field)                                                                  \
    do {                                                                                           \
        if (rc == SG_OK && (fl & (flag))) rc = sg_emit_str(out, version, name, props->field);      \
    } while (0)

    SG_STR(AMQP_BASIC_CONTENT_TYPE_FLAG, "content-type", content_type);
    SG_STR(AMQP_BASIC_CONTENT_ENCODING_FLAG, "content-encoding", content_encoding);
    if (rc == SG_OK && (fl & AMQP_BASIC_DELIVERY_MODE_FLAG) && props->delivery_mode == 2)
        rc = sg_emit(out, version, "persistent", 10, "true", 4);
    if (rc == SG_OK && (fl & AMQP_BASIC_PRIORITY_FLAG))
        rc = sg_emit_u64(out, version, "priority", props->priority);
    SG_STR(AMQP_BASIC_CORRELATION_ID_FLAG, "correlation-id", correlation_id);
    SG_STR(AMQP_BASIC_REPLY_TO_FLAG, "reply-to", reply_to);
    SG_STR(AMQP_BASIC_EXPIRATION_FLAG, "expiration", expiration);
    SG_STR(AMQP_BASIC_MESSAGE_ID_FLAG, "amqp-message-id", message_id);
    SG_STR(AMQP_BASIC_TYPE_FLAG, "type", type);
    SG_STR(AMQP_BASIC_APP_ID_FLAG, "app-id", app_id);
    SG_STR(AMQP_BASIC_USER_ID_FLAG, "user-id", user_id);
    if (rc == SG_OK && (fl & AMQP_BASIC_TIMESTAMP_FLAG))
        rc = sg_emit_u64(out, version, "timestamp", props->timestamp);
#undef SG_STR
    if (rc != SG_OK) goto out;

    if (!(fl & AMQP_BASIC_HEADERS_FLAG)) goto out;
    for (int i = 0; i < props->headers.num_entries; i++) {
        const amqp_table_entry_t *e = &props->headers.entries[i];
        char num[64];
        const void *text;
        size_t len;
        const char *key = e->key.bytes;
        if (sg_in_list(key, e->key.len, sg_msg_reserved, SG_COUNT(sg_msg_reserved))) continue;
        if (sg_field_text(&e->value, num, sizeof num, &text, &len) != 0) continue;
        rc = sg_emit(out, version, key, e->key.len, text, len);
        if (rc != SG_OK) goto out;
    }

out:
    if (rc != SG_OK) out->len = mark;
    return rc;
}
