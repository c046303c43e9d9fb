/* error.c - sg_strerror() for every enum sg_err value. */
#include "error.h"

const char *sg_strerror(int err)
{
    switch ((enum sg_err)err) {
    case SG_OK:
        return "ok";
    case SG_AGAIN:
        return "need more input";
    case SG_DONE:
        return "already answered";
    case SG_EPROTO:
        return "protocol error";
    case SG_EHTTP:
        return "malformed HTTP request";
    case SG_EHANDSHAKE:
        return "invalid WebSocket handshake";
    case SG_EWSFRAME:
        return "invalid WebSocket frame";
    case SG_EUTF8:
        return "invalid UTF-8";
    case SG_ESTOMP:
        return "malformed STOMP frame";
    case SG_ESTATE:
        return "frame not allowed in this state";
    case SG_EVERSION:
        return "no supported STOMP version in common";
    case SG_EDEST:
        return "invalid destination";
    case SG_EAUTH:
        return "access refused";
    case SG_EESCAPE:
        return "bad percent-escape";
    case SG_ENUL:
        return "NUL byte";
    case SG_ELIMIT:
        return "limit exceeded";
    case SG_ETOOBIG:
        return "too big";
    case SG_ETOOMANY:
        return "too many";
    case SG_ELINE:
        return "line too long";
    case SG_ETIMEOUT:
        return "timed out";
    case SG_EBUSY:
        return "busy, try again later";
    case SG_ECONFIG:
        return "bad configuration value";
    case SG_ENOKEY:
        return "no such key";
    case SG_EIO:
        return "I/O error";
    case SG_EBROKER:
        return "broker unavailable";
    case SG_ETLS:
        return "TLS error";
    case SG_ENOMEM:
        return "out of memory";
    }
    return "unknown error";
}
