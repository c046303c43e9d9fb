/* relay.h - the broker side of one worker: the only user of rabbitmq-c.
 *
 * Turns session actions (stomp_session.h) into AMQP and deliveries into
 * MESSAGE frames. One sg_relay per worker, used only on that worker's
 * thread.
 */
#ifndef SG_RELAY_H
#define SG_RELAY_H

#include "stomp_session.h"

struct sg_worker;
struct sg_conn;
struct sg_relay;

struct sg_relay *sg_relay_new(struct sg_worker *w);
void sg_relay_free(struct sg_relay *r);
/* Stop consuming and close broker connections (shutdown). */
void sg_relay_shutdown(struct sg_relay *r);
/* Performs a session action for connection c (semantics of
 * sg_stomp_session_ops.relay). */
int sg_relay_action(struct sg_relay *r, struct sg_conn *c, const struct sg_action *a,
                    const char **errmsg);
/* The connection is going away: drop its subscriptions and pending work. */
void sg_relay_conn_gone(struct sg_relay *r, struct sg_conn *c);
/* A STOMP session was accepted for this user: the relay attaches its
 * broker connection (pooled per user and vhost on this worker). The
 * passcode is kept only to log in again after a broker outage. */
int sg_relay_attach(struct sg_relay *r, struct sg_conn *c, const char *login, const char *passcode,
                    const char *vhost);
/* The connection's output buffer drained (resume paused consumers). */
void sg_relay_conn_drained(struct sg_relay *r, struct sg_conn *c);
/* 1 if the worker's broker connection is up (for /readyz). */
int sg_relay_ready(const struct sg_relay *r);

#endif
