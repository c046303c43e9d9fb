/* ws_handshake.c - RFC 6455 section 4.2 server handshake (see ws_handshake.h).
 *
 * Decides on a parsed request and writes response bytes; no I/O, no
 * logging. The checks run in the order the header documents, so a request
 * with several faults always gets the same answer.
 */
#include "ws_handshake.h"
#include "error.h"
#include "util.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

/* RFC 6455 1.3 / 4.2.2 step 5.4 */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

#define VERSION_ERR_PREFIX "Sec-WebSocket-Version"

static const char err_unsupported_subproto[] =
    "unsupported subprotocol; supported: v12.stomp, v11.stomp, v10.stomp";

/* our subprotocols, best first (RFC 6455 4.2.2 step 5.5: the server picks
 * one the client offered) */
static const struct {
    const char *name;
    enum sg_ws_subproto proto;
} subprotos[] = {
    {"v12.stomp", SG_SUBPROTO_V12},
    {"v11.stomp", SG_SUBPROTO_V11},
    {"v10.stomp", SG_SUBPROTO_V10},
};

static int ieq_cstr(const char *a, size_t alen, const char *b)
{
    return sg_ascii_casecmp(a, alen, b, strlen(b)) == 0;
}

/* 1 if any header called `name` has `token` in its list (case-insensitive) */
static int any_list_has(const struct sg_http_request *req, const char *name, const char *token)
{
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct sg_http_header *h = &req->headers[i];
        if (ieq_cstr(h->name, h->name_len, name) &&
            sg_http_is_in_list(h->value, h->value_len, token))
            return 1;
    }
    return 0;
}

/* RFC 4648 4: the base64 alphabet (not base64url) */
static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* RFC 6455 4.2.1 item 5: the key is base64 of a 16-byte nonce. 16 bytes
 * encode as 21 full sextets, one sextet carrying the last 2 bits, then "==".
 * RFC 4648 3.5: the 4 unused bits of that sextet must be zero (canonical). */
static int key_valid(const char *k, size_t n)
{
    if (n != 24 || k[22] != '=' || k[23] != '=') return 0;
    for (size_t i = 0; i < 22; i++)
        if (b64_val((unsigned char)k[i]) < 0) return 0;
    return (b64_val((unsigned char)k[21]) & 0x0f) == 0;
}

static void reject(struct sg_ws_hs_result *res, int status, const char *error)
{
    res->kind = SG_HS_REJECT;
    res->status = status;
    res->error = error;
}

/* RFC 6455 4.2.2 step 4 / RFC 6454: the Origin is compared as a serialized
 * origin; scheme and host are ASCII case-insensitive, and the whole-string
 * comparison makes the port exact. */
static int origin_allowed(const struct sg_http_request *req, const char *const *origins)
{
    if (!origins || !origins[0]) return 1;
    size_t n = sg_http_count(req, "Origin");
    if (n == 0) return 1; /* not a browser: Origin only guards against CSWSH */
    if (n > 1) return 0;
    const struct sg_http_header *o = sg_http_find(req, "Origin");
    for (size_t i = 0; origins[i]; i++) {
        if (strcmp(origins[i], "*") == 0) return 1;
        if (ieq_cstr(o->value, o->value_len, origins[i])) return 1;
    }
    return 0;
}

/* RFC 6455 4.2.1 item 8 / 11.3.4: Sec-WebSocket-Protocol is a list of
 * tokens, may be repeated, and its values are compared case-sensitively.
 * Sets *offered when the client named at least one element. */
static enum sg_ws_subproto pick_subproto(const struct sg_http_request *req, int *offered)
{
    size_t best = sizeof subprotos / sizeof subprotos[0]; /* index; lower is better */
    *offered = 0;
    for (size_t h = 0; h < req->num_headers; h++) {
        const struct sg_http_header *hd = &req->headers[h];
        if (!ieq_cstr(hd->name, hd->name_len, "Sec-WebSocket-Protocol")) continue;
        const char *v = hd->value;
        size_t len = hd->value_len, i = 0;
        while (i < len) {
            size_t s = i;
            while (i < len && v[i] != ',')
                i++;
            size_t e = i;
            while (s < e && (v[s] == ' ' || v[s] == '\t'))
                s++;
            while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
                e--;
            if (e > s) {
                *offered = 1;
                for (size_t p = 0; p < best; p++) {
                    size_t plen = strlen(subprotos[p].name);
                    if (e - s == plen && memcmp(v + s, subprotos[p].name, plen) == 0) best = p;
                }
            }
            i++; /* past the comma */
        }
    }
    return best < sizeof subprotos / sizeof subprotos[0] ? subprotos[best].proto : SG_SUBPROTO_NONE;
}

void sg_ws_handshake(const struct sg_http_request *req, const struct sg_ws_policy *policy,
                     struct sg_ws_hs_result *res)
{
    memset(res, 0, sizeof *res);
    res->kind = SG_HS_NOT_UPGRADE;

    /* RFC 6455 4.2.1 item 3: Upgrade contains "websocket" (case-insensitive);
     * without it this is plain HTTP (RFC 9110 7.8: Upgrade is optional for
     * the server) */
    if (!any_list_has(req, "Upgrade", "websocket")) return;

    /* RFC 6455 4.2.1 item 1: the method must be GET; RFC 9110 15.5.6: a 405
     * carries Allow */
    if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0) {
        reject(res, 405, "method not allowed; a WebSocket upgrade uses GET");
        return;
    }

    /* RFC 6455 4.2.1 item 1 / 3.: the request-target is the resource name;
     * the query is not part of the endpoint */
    char path[2048];
    int rc = sg_http_path(req->target, req->target_len, path, sizeof path);
    if (rc == SG_EHTTP) {
        reject(res, 400, "invalid request target");
        return;
    }
    int matched = 0;
    if (rc == SG_OK) { /* a path too long for the buffer is no endpoint of ours */
        if (policy->echo_path_enabled && strcmp(path, "/echo") == 0) {
            matched = 1;
            res->echo = 1;
        }
        for (size_t i = 0; !matched && policy->paths && policy->paths[i]; i++)
            if (strcmp(path, policy->paths[i]) == 0) matched = 1;
    }
    if (!matched) {
        reject(res, 404, "no WebSocket endpoint at this path");
        return;
    }

    /* RFC 6455 4.2.1 item 1: HTTP/1.1 or higher */
    if (req->minor_version < 1) {
        reject(res, 400, "WebSocket upgrade requires HTTP/1.1");
        return;
    }

    /* RFC 6455 4.2.1 item 2; RFC 9112 3.2: 400 for a missing or repeated
     * Host (an empty one names no authority, which a WebSocket client must) */
    size_t hosts = sg_http_count(req, "Host");
    if (hosts == 0 || sg_http_find(req, "Host")->value_len == 0) {
        reject(res, 400, "missing Host header");
        return;
    }
    if (hosts > 1) {
        reject(res, 400, "repeated Host header");
        return;
    }

    /* RFC 6455 4.2.1 item 4: Connection includes "Upgrade" (case-insensitive
     * token; RFC 9110 5.3: the header may be repeated) */
    if (!any_list_has(req, "Connection", "upgrade")) {
        reject(res, 400, "Connection header lacks the upgrade token");
        return;
    }

    /* RFC 6455 4.2.1 item 5 */
    size_t keys = sg_http_count(req, "Sec-WebSocket-Key");
    if (keys == 0) {
        reject(res, 400, "missing Sec-WebSocket-Key");
        return;
    }
    if (keys > 1) {
        reject(res, 400, "repeated Sec-WebSocket-Key");
        return;
    }
    const struct sg_http_header *key = sg_http_find(req, "Sec-WebSocket-Key");
    if (!key_valid(key->value, key->value_len)) {
        reject(res, 400, "invalid Sec-WebSocket-Key; it must be base64 of 16 bytes");
        return;
    }

    /* RFC 6455 4.2.1 item 6 and 4.4: an unsupported version gets 426 and
     * the versions we speak; sg_http_error_response adds the header to 426
     * and to 400s whose text starts with VERSION_ERR_PREFIX */
    size_t versions = sg_http_count(req, "Sec-WebSocket-Version");
    if (versions == 0) {
        reject(res, 400, VERSION_ERR_PREFIX " missing");
        return;
    }
    if (versions > 1) {
        reject(res, 400, VERSION_ERR_PREFIX " repeated");
        return;
    }
    const struct sg_http_header *ver = sg_http_find(req, "Sec-WebSocket-Version");
    if (ver->value_len != 2 || memcmp(ver->value, "13", 2) != 0) {
        reject(res, 426, "unsupported WebSocket version; supported: 13");
        return;
    }

    /* RFC 6455 4.2.2 step 4 and 10.2: a server that only serves chosen
     * origins answers others with 403 */
    if (!origin_allowed(req, policy->origins)) {
        reject(res, 403, "origin not allowed");
        return;
    }

    /* RFC 6455 4.2.2 step 5.5: choose one of the offered subprotocols or
     * none; STOMP over WebSocket needs one we speak if any was offered */
    if (!res->echo) {
        int offered;
        res->subproto = pick_subproto(req, &offered);
        if (offered && res->subproto == SG_SUBPROTO_NONE) {
            reject(res, 400, err_unsupported_subproto);
            return;
        }
    }

    sg_ws_accept_key(key->value, key->value_len, res->accept_key);
    if (res->accept_key[0] == '\0') {
        res->subproto = SG_SUBPROTO_NONE;
        reject(res, 500, "internal error computing Sec-WebSocket-Accept");
        return;
    }
    res->kind = SG_HS_ACCEPT;
    res->status = 101;
    res->error = NULL;
}

void sg_ws_accept_key(const char *key, size_t key_len, char out[29])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    out[0] = '\0';
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) return;
    /* RFC 6455 4.2.2 step 5.4: base64(SHA-1(key + GUID)); the key as sent
     * (trimmed of OWS), not decoded */
    int ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, key, key_len) == 1 &&
             EVP_DigestUpdate(ctx, ws_guid, sizeof ws_guid - 1) == 1 &&
             EVP_DigestFinal_ex(ctx, md, &md_len) == 1 && md_len == 20;
    EVP_MD_CTX_free(ctx);
    if (!ok) return;
    /* 20 bytes -> 28 base64 chars; EVP_EncodeBlock adds the NUL */
    EVP_EncodeBlock((unsigned char *)out, md, 20);
}

const char *sg_ws_subproto_name(enum sg_ws_subproto p)
{
    for (size_t i = 0; i < sizeof subprotos / sizeof subprotos[0]; i++)
        if (subprotos[i].proto == p) return subprotos[i].name;
    return NULL;
}

static size_t finish(int n, size_t cap)
{
    return (n < 0 || (size_t)n >= cap) ? 0 : (size_t)n;
}

size_t sg_ws_hs_response_101(const struct sg_ws_hs_result *res, char *out, size_t cap)
{
    if (res->kind != SG_HS_ACCEPT || strlen(res->accept_key) != 28) return 0;
    const char *proto = sg_ws_subproto_name(res->subproto);
    /* RFC 6455 4.2.2 step 5: status 101, Upgrade, Connection,
     * Sec-WebSocket-Accept, and Sec-WebSocket-Protocol only if one was
     * chosen (the client fails the connection on one it did not offer) */
    int n = snprintf(out, cap,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n"
                     "%s%s%s"
                     "\r\n",
                     res->accept_key, proto ? "Sec-WebSocket-Protocol: " : "", proto ? proto : "",
                     proto ? "\r\n" : "");
    return finish(n, cap);
}

size_t sg_http_error_response(int status, const char *error, char *out, size_t cap)
{
    const char *reason = sg_http_reason(status);
    const char *text = error ? error : reason;
    const char *extra = "";
    const char *connection = "close";
    if (status == 405) {
        extra = "Allow: GET\r\n"; /* RFC 9110 15.5.6 */
    } else if (status == 426) {
        /* RFC 9110 15.5.22: a 426 MUST carry Upgrade, and 7.8: Upgrade goes
         * with the "upgrade" connection option */
        extra = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
        connection = "upgrade, close";
    } else if (status == 400 && error &&
               strncmp(error, VERSION_ERR_PREFIX, sizeof VERSION_ERR_PREFIX - 1) == 0) {
        extra = "Sec-WebSocket-Version: 13\r\n"; /* RFC 6455 4.2.2 step 4, 4.4 */
    }
    int n = snprintf(out, cap,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\n"
                     "Connection: %s\r\n"
                     "%s"
                     "\r\n"
                     "%s\n",
                     status, reason, strlen(text) + 1, connection, extra, text);
    return finish(n, cap);
}
