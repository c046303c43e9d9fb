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

/* Borrowed by sg_ws_handshake for the call only. */
struct sg_ws_policy {
    /* NULL-terminated list of upgrade paths, e.g. "/", "/ws", "/stomp",
     * compared exactly with the decoded path of the target (sg_http_path;
     * the query is ignored). NULL = no paths (only /echo when enabled). */
    const char *const *paths;
    /* NULL-terminated allow-list; NULL or empty = allow any. Entries are
     * serialized origins ("https://example.com", "http://127.0.0.1:8181"),
     * compared with the Origin header as whole strings, ASCII
     * case-insensitively (so the port must match exactly); "*" allows all. */
    const char *const *origins;
    int echo_path_enabled; /* test-only "/echo" path (no subprotocol required) */
};

enum sg_ws_hs_kind {
    SG_HS_NOT_UPGRADE = 0, /* a plain HTTP request (no Upgrade: websocket): serve it as HTTP */
    SG_HS_ACCEPT,          /* upgrade accepted: send response, switch to frames */
    SG_HS_REJECT,          /* send the error response and close */
};

struct sg_ws_hs_result {
    enum sg_ws_hs_kind kind;
    int status;                   /* 101 on accept; 400, 403, 404, 405, 426 (500) on reject;
                                     0 for NOT_UPGRADE */
    const char *error;            /* static text naming the problem (reject), else NULL */
    enum sg_ws_subproto subproto; /* chosen subprotocol (accept) */
    int echo;                     /* 1 if the request was for the test echo path */
    char accept_key[29];          /* base64(SHA-1(key + GUID)), NUL-terminated (accept) */
};

/* Decides the handshake for a complete request (sg_http_parse_request
 * returned > 0); req and policy are borrowed, res is filled in (its error
 * strings are static):
 *  - no "Upgrade: websocket" (case-insensitive token in any Upgrade header)
 *    -> SG_HS_NOT_UPGRADE (even if the path is an upgrade path)
 *  - method != GET (case-sensitive) -> 405 (with "Allow: GET")
 *  - a target sg_http_path rejects (not origin-form, bad escape, %00, "..")
 *    -> 400; path not in policy->paths (nor /echo when enabled) -> 404
 *  - HTTP/1.0 -> 400; Host missing, empty or repeated -> 400; no Connection
 *    header with the "upgrade" token (case-insensitive, any of them) -> 400;
 *    Sec-WebSocket-Key missing, repeated, or not the canonical base64 of
 *    exactly 16 bytes (22 chars + "==", RFC 4648 3.5) -> 400
 *  - Sec-WebSocket-Version missing or repeated -> 400; present but not "13"
 *    -> 426; both responses carry "Sec-WebSocket-Version: 13" (the 400's
 *    error text starts with "Sec-WebSocket-Version", which is how
 *    sg_http_error_response knows)
 *  - Origin present and not in a non-empty allow-list -> 403 (a repeated
 *    Origin never passes a non-empty list)
 *  - Sec-WebSocket-Protocol (may be repeated, comma lists, tokens compared
 *    case-sensitively): pick the best of v12.stomp > v11.stomp > v10.stomp
 *    the client offered; none offered -> SUBPROTO_NONE; offered only others
 *    -> 400 naming what we support.
 *    The echo path accepts without subprotocol negotiation (SUBPROTO_NONE).
 *  - 500 only if computing the accept key fails (OpenSSL out of memory).
 * The order of checks is the order above. */
void sg_ws_handshake(const struct sg_http_request *req, const struct sg_ws_policy *policy,
                     struct sg_ws_hs_result *res);

/* Computes the Sec-WebSocket-Accept value for a key (RFC 6455 4.2.2 step 5.4):
 * base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")). out gets 28
 * chars + NUL, or "" if OpenSSL fails (out of memory). */
void sg_ws_accept_key(const char *key, size_t key_len, char out[29]);

/* Name of a subprotocol ("v12.stomp"), NULL for NONE. */
const char *sg_ws_subproto_name(enum sg_ws_subproto p);

/* Writes the full "HTTP/1.1 101 Switching Protocols" response for an
 * SG_HS_ACCEPT result into out (cap bytes, NUL-terminated; the NUL is not
 * counted). Sec-WebSocket-Protocol is sent only when one was chosen.
 * Returns the length, or 0 if cap is too small or res is not an accept. */
size_t sg_ws_hs_response_101(const struct sg_ws_hs_result *res, char *out, size_t cap);

/* Writes a complete error response into out (cap bytes, NUL-terminated; the
 * NUL is not counted): status line, "Content-Type: text/plain;
 * charset=utf-8", Content-Length, "Connection: close", extra headers
 * ("Allow: GET" for 405; "Sec-WebSocket-Version: 13" for 426 and for a 400
 * whose error text starts with "Sec-WebSocket-Version"), blank line, body =
 * error text (the reason phrase if error is NULL) + "\n".
 * Returns the length, or 0 if cap is too small. */
size_t sg_http_error_response(int status, const char *error, char *out, size_t cap);

#endif
