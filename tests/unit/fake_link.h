/* fake_link.h - a scripted stand-in for amqp_link.c, for test_relay.
 *
 * tests/unit/fake_link.c defines every function of amqp_link.h, and the
 * test_relay binary links it ahead of libsg.a, so the archive's
 * amqp_link.o is never pulled in (were it pulled, its symbols would clash
 * with these and the link would fail). No socket, no rabbitmq-c
 * connection, no auth: sg_link_new only records the link, which stays
 * down until the test calls fl_up.
 *
 * Everything the relay sends is recorded per link, in order: every method
 * (sg_link_send) and every basic.publish (sg_link_publish), with its
 * channel and the fields the tests look at. The test plays the broker:
 * it brings the link up, answers on a channel (declare-ok, consume-ok, any
 * reply), delivers messages, confirms publishes (ack, nack, returned),
 * cancels consumers, closes channels with a code and text, blocks and
 * unblocks, and drops the link. Callbacks follow the real link's rules:
 * a channel its owner closed gets none, a broker channel.close frees the
 * channel after closed(), a drop calls closed(code 0) for every channel,
 * then ops->down.
 *
 * Helpers fail the test (cmocka) when asked to act on a channel that does
 * not exist.
 */
#ifndef SG_FAKE_LINK_H
#define SG_FAKE_LINK_H

#include <amqp.h>
#include <stddef.h>
#include <stdint.h>

#include "amqp_link.h"

/* basic.publish is recorded under its method number */
#define FL_PUBLISH AMQP_BASIC_PUBLISH_METHOD

struct fl_rec {
    uint16_t ch;
    amqp_method_number_t id;
    /* queue.declare / queue.bind / basic.consume / basic.cancel (and
     * exchange.declare's name in exchange) */
    char queue[256], exchange[256], rkey[256], ctag[256];
    int durable, exclusive, auto_delete, no_ack, nargs;
    uint16_t prefetch; /* basic.qos */
    /* basic.ack / nack */
    uint64_t tag;
    int multiple, requeue;
    /* basic.publish */
    int mandatory;
    int delivery_mode; /* 0 when not set */
    char reply_to[300];
    char body[128]; /* first bytes, NUL-terminated */
    size_t body_len;
    uint64_t seq; /* confirm sequence number on its channel (0: not in confirm mode) */
    /* channel.close */
    int code;
    /* exchange.declare (name in exchange, durable, auto_delete above) */
    char xtype[32];
    int passive; /* queue.declare / exchange.declare */
    /* basic.publish properties (empty when not set) */
    char content_type[64], expiration[32];
};

/* The live links of a login, in the order the relay created them (service:
 * the relay's own connection). The relay opens two per (login, vhost): the
 * consuming one when the first session attaches, the publishing one at the
 * first SEND. fl_link_nth: the n-th (from 0), or NULL. fl_link: the first
 * (for a client login, the consuming link). fl_plink: the second of a
 * client login (its publishing link), NULL before its first SEND. */
struct sg_link *fl_link_nth(const char *login, int service, int n);
struct sg_link *fl_link(const char *login, int service);
struct sg_link *fl_plink(const char *login);
int fl_nlinks(void);

/* ---- the broker's side */
void fl_up(struct sg_link *l); /* (re)connected: ops->up */
/* The channel_max the broker negotiates at the next fl_up (0: the env's) */
void fl_set_channel_max(struct sg_link *l, unsigned max);
void fl_drop(struct sg_link *l);         /* lost: closed(0) for each channel, ops->down */
void fl_block(struct sg_link *l, int b); /* connection.blocked / unblocked */
void fl_refuse(struct sg_link *l, const char *reason);
void fl_declare_ok(struct sg_link *l, uint16_t ch, const char *queue);
void fl_consume_ok(struct sg_link *l, uint16_t ch, const char *ctag);
void fl_reply(struct sg_link *l, uint16_t ch, amqp_method_number_t id, void *decoded);
void fl_deliver(struct sg_link *l, uint16_t ch, uint64_t tag, int redelivered, const char *exchange,
                const char *rkey, const amqp_basic_properties_t *props, const void *body,
                size_t len);
/* a publisher confirm; returned: basic.return came first */
void fl_confirm(struct sg_link *l, uint16_t ch, uint64_t tag, int multiple, int ok, int returned);
void fl_cancel(struct sg_link *l, uint16_t ch);
/* the broker's channel.close (code, text); the channel is freed after */
void fl_chan_close(struct sg_link *l, uint16_t ch, int code, const char *text);
/* close-ok for a channel its owner closed: it is freed */
void fl_close_ok(struct sg_link *l, uint16_t ch);

/* ---- what the relay did */
int fl_is_up(const struct sg_link *l);
const char *fl_passcode(const struct sg_link *l); /* the one it would log in with now */
/* 1: the channel exists and its owner has not closed it; 2: closing */
int fl_chan_state(const struct sg_link *l, uint16_t ch);
size_t fl_nrec(const struct sg_link *l);
const struct fl_rec *fl_rec(const struct sg_link *l, size_t i);
/* The first record at index >= from with this method on channel ch (0:
 * any channel), or NULL; *at (may be NULL) gets its index. */
const struct fl_rec *fl_find(const struct sg_link *l, size_t from, uint16_t ch,
                             amqp_method_number_t id, size_t *at);
/* How many records at index >= from have this method on ch (0: any). */
size_t fl_count(const struct sg_link *l, size_t from, uint16_t ch, amqp_method_number_t id);
/* The records as text, one per line, for failure messages. */
void fl_dump(const struct sg_link *l, size_t from, char *out, size_t cap);

#endif
