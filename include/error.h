/* error.h - one error enum for all of stompgate.
 *
 * SG_OK is 0; every error is negative and grouped by range (like wslay and
 * rabbitmq-c): protocol -100.., limit -200.., config -300.., I/O -400..,
 * memory -500... sg_strerror() covers every value (tests/unit/test_error.c
 * walks them all).
 *
 * -1..-99 hold the two outcomes that are not errors but share the type so
 * that one int can carry them: SG_AGAIN (-11: need more input, or the
 * answer comes later) and SG_DONE (-12: already answered, nothing more to
 * do). -1 itself means nothing: a function that returns a status returns
 * one of these values, never an ad-hoc -1, so "again" can never be mistaken
 * for a failure. A decoder returning ssize_t returns bytes consumed (>= 0),
 * SG_AGAIN, or a negative error below -99.
 */
#ifndef SG_ERROR_H
#define SG_ERROR_H

enum sg_err {
    SG_OK = 0,

    /* not errors */
    SG_AGAIN = -11, /* need more input / will be answered later */
    SG_DONE = -12,  /* already answered: nothing more to do */

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
    SG_EESCAPE = -110,    /* bad percent-escape ('%' not followed by two hex digits) */
    SG_ENUL = -111,       /* NUL byte (raw or %00) where a C string is built */

    /* limit: a configured bound was exceeded */
    SG_ELIMIT = -200,   /* generic bound exceeded */
    SG_ETOOBIG = -201,  /* message/frame/body too big (close 1009) */
    SG_ETOOMANY = -202, /* too many headers / subscriptions / connections */
    SG_ELINE = -203,    /* line too long */
    SG_ETIMEOUT = -204, /* deadline passed */
    SG_EBUSY = -205,    /* too much work in progress: try again later (close 1013) */

    /* config */
    SG_ECONFIG = -300, /* bad configuration value */
    SG_ENOKEY = -301,  /* no such key: unknown configuration key, absent header */

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
