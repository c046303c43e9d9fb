/* error.h - one error enum for all of stompgate.
 *
 * SG_OK is 0; every error is negative and grouped by range (like wslay and
 * rabbitmq-c): protocol -100.., limit -200.., config -300.., I/O -400..,
 * memory -500... sg_strerror() covers every value (tests/unit/test_error.c
 * walks them all). SG_AGAIN ("need more input") is not an error but shares
 * the type so decoders can return it.
 */
#ifndef SG_ERROR_H
#define SG_ERROR_H

enum sg_err {
    SG_OK = 0,
    SG_AGAIN = -1, /* decoder needs more input */

    /* protocol: the peer sent something invalid */
    SG_EPROTO = -100,     /* generic protocol violation */
    SG_EHTTP = -101,      /* malformed HTTP request */
    SG_EHANDSHAKE = -102, /* invalid WebSocket handshake */
    SG_EWSFRAME = -103,   /* invalid WebSocket frame (close 1002) */
    SG_EUTF8 = -104,      /* invalid UTF-8 in a text message (close 1007) */
    SG_ESTOMP = -105,     /* malformed STOMP frame */
    SG_ESTATE = -106,     /* frame not allowed in this session state */
    SG_EVERSION = -107,   /* no STOMP version in common */
    SG_EDEST = -108,      /* unknown or invalid destination */
    SG_EAUTH = -109,      /* access refused */

    /* limit: a configured bound was exceeded */
    SG_ELIMIT = -200,   /* generic bound exceeded */
    SG_ETOOBIG = -201,  /* message/frame/body too big (close 1009) */
    SG_ETOOMANY = -202, /* too many headers / subscriptions / connections */
    SG_ELINE = -203,    /* line too long */
    SG_ETIMEOUT = -204, /* deadline passed */

    /* config */
    SG_ECONFIG = -300, /* bad configuration value */
    SG_ENOKEY = -301,  /* unknown configuration key */

    /* I/O */
    SG_EIO = -400,     /* generic I/O failure */
    SG_EBROKER = -401, /* broker unavailable */
    SG_ETLS = -402,    /* TLS failure */

    /* memory */
    SG_ENOMEM = -500,
};

/* Returns a static, human-readable string for any value (unknown values
 * give "unknown error"). Never NULL. */
const char *sg_strerror(int err);

#endif
