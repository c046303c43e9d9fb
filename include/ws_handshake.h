/* ws_handshake.h - RFC 6455 section 4.2 server handshake, sans-I/O.
 *
 * Takes a parsed HTTP request (http.h) and the policy, decides the outcome
 * and builds the exact response bytes. No I/O.
 */
#ifndef SG_WS_HANDSHAKE_H
#define SG_WS_HANDSHAKE_H

#include <stddef.h>
#include "http.h"

/* STOMP subprotocols we speak, best first */
enum sg_ws_subproto {
    SG_SUBPROTO_NONE = 0, /* client offered none */
    SG_SUBPROTO_V10 = 10, /* "v10.stomp" */
    SG_SUBPROTO_V11 = 11, /* "v11.stomp" */
    SG_SUBPROTO_V12 = 12, /* "v12.stomp" */
};

struct sg_ws_policy {
    const char *const *paths;   /* NULL-terminated list of upgrade paths, e.g. "/", "/ws", "/stomp" */
    const char *const *origins; /* NULL-terminated allow-list; NULL or empty = allow any */
    int echo_path_enabled;      /* test-only "/echo" path (no subprotocol required) */
};

enum sg_ws_hs_kind {
    SG_HS_NOT_UPGRADE = 0, /* a plain HTTP request (no Upgrade: websocket): serve it as HTTP */
    SG_HS_ACCEPT,          /* upgrade accepted: send response, switch to frames */
    SG_HS_REJECT,          /* send the error response and close */
};

struct sg_ws_hs_result {
    enum sg_ws_hs_kind kind;
    int status;                 /* 101 on accept; 400, 403, 404, 405, 426 on reject */
    const char *error;          /* short text naming the problem (reject) */
    enum sg_ws_subproto subproto; /* chosen subprotocol (accept) */
    int echo;                   /* 1 if the request was for the test echo path */
    char accept_key[29];        /* base64(SHA-1(key + GUID)), NUL-terminated (accept) */
};

/* Decides the handshake:
 *  - no "Upgrade: websocket" (case-insensitive token) -> SG_HS_NOT_UPGRADE
 *    (even if the path is an upgrade path)
 *  - method != GET -> 405 (with "Allow: GET")
 *  - path not in policy->paths (nor /echo when enabled) -> 404
 *  - HTTP/1.0 -> 400; missing Host -> 400; Connection without the "upgrade"
 *    token -> 400; Sec-WebSocket-Key missing, repeated, or not base64 of
 *    exactly 16 bytes -> 400
 *  - Sec-WebSocket-Version missing -> 400; present but not "13" -> 426;
 *    both responses carry "Sec-WebSocket-Version: 13"
 *  - Origin present and not in a non-empty allow-list -> 403
 *  - Sec-WebSocket-Protocol (may be repeated, comma lists): pick the best of
 *    v12.stomp > v11.stomp > v10.stomp the client offered; none offered ->
 *    SUBPROTO_NONE; offered only others -> 400 naming what we support.
 *    The echo path accepts without subprotocol negotiation.
 * The order of checks is the order above. */
void sg_ws_handshake(const struct sg_http_request *req, const struct sg_ws_policy *policy,
                     struct sg_ws_hs_result *res);

/* Computes the Sec-WebSocket-Accept value for a key (RFC 6455 4.2.2 step 5.4):
 * base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")). out gets 28
 * chars + NUL. */
void sg_ws_accept_key(const char *key, size_t key_len, char out[29]);

/* Name of a subprotocol ("v12.stomp"), NULL for NONE. */
const char *sg_ws_subproto_name(enum sg_ws_subproto p);

/* Writes the full "HTTP/1.1 101 Switching Protocols" response into out
 * (cap bytes). Returns the length, or 0 if cap is too small. */
size_t sg_ws_hs_response_101(const struct sg_ws_hs_result *res, char *out, size_t cap);

/* Writes a complete error response (status line, Content-Type: text/plain,
 * Content-Length, Connection: close, extra headers such as
 * "Sec-WebSocket-Version: 13" for 426 and "Allow: GET" for 405, body = error
 * text + "\n"). Returns the length, or 0 if cap is too small. */
size_t sg_http_error_response(int status, const char *error, char *out, size_t cap);

#endif
