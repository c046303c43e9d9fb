/* relay.c - broker side of a worker. This first version only refuses the
 * actions that need the broker, with ERROR "not yet supported" (never a
 * silent drop); the AMQP relay replaces it. */
#include "relay.h"
#include "error.h"
#include "server.h"

#include <stdlib.h>

struct sg_relay {
    struct sg_worker *w;
};

struct sg_relay *sg_relay_new(struct sg_worker *w)
{
    struct sg_relay *r = calloc(1, sizeof *r);
    if (r) r->w = w;
    return r;
}

void sg_relay_free(struct sg_relay *r)
{
    free(r);
}

void sg_relay_shutdown(struct sg_relay *r)
{
}

int sg_relay_action(struct sg_relay *r, struct sg_conn *c, const struct sg_action *a,
                    const char **errmsg)
{
    *errmsg = "not yet supported";
    return SG_EPROTO;
}

void sg_relay_conn_gone(struct sg_relay *r, struct sg_conn *c)
{
}

int sg_relay_ready(const struct sg_relay *r)
{
    return 1;
}
