/* stomp_session.h - the per-connection STOMP state machine, sans-I/O.
 *
 * Takes WebSocket message payloads (bytes), time (milliseconds from any
 * monotonic clock) and results from the relay; emits outbound frames,
 * heart-beats, closes and relay actions through a small ops table. It never
 * touches a socket, a timer or the broker: the glue (src/conn.c) calls it
 * and arms one timer at sg_stomp_session_next_deadline().
 *
 * States: AWAIT_CONNECT -> (CONNECT/STOMP) AUTHENTICATING -> (auth ok)
 * CONNECTED -> CLOSED. Anything but CONNECT/STOMP first -> ERROR + close.
 * Until CONNECTED a connection holds only what a CONNECT needs: the frame
 * decoder is bounded by max_connect_frame (capped by limits.max_frame; a
 * bigger frame -> ERROR "frame too big" + close 1009), and bytes that arrive
 * while AUTHENTICATING (a client pipelining frames behind CONNECT) are held
 * raw, at most max_connect_frame of them (more -> ERROR "too much data
 * before CONNECTED" + close 1008), and decoded with the negotiated
 * version's rules and the full limits once the auth succeeds. (The glue
 * bounds WebSocket messages by max_connect_frame until CONNECTED too.) Once
 * CLOSED the session ignores all input and calls no op.
 *
 * Version negotiation (STOMP 1.2 "Protocol Negotiation"): no accept-version
 * -> 1.0; else the highest common of {1.0,1.1,1.2} capped by the WebSocket
 * subprotocol when one was negotiated (entries separated by commas, spaces
 * around them tolerated, unknown ones ignored); none in common -> ERROR with
 * header version:<what we speak on this connection: "1.0,1.1,1.2", or as
 * capped, e.g. "1.0" on v10.stomp> and close 1002. For 1.0 sessions CONNECT
 * header keys and values are trimmed (the book's client writes "login: x");
 * frames after CONNECT are decoded with the negotiated version's escaping
 * and trimming rules.
 *
 * Heart-beats ("Heart-beating"), as RabbitMQ's STOMP plugin does: the
 * client's values decide. CONNECT heart-beat:cx,cy is answered with
 * CONNECTED heart-beat:sx,sy where sx = cy ? clamp(cy) : 0 and
 * sy = cx ? clamp(cx) : 0, clamp() bounding a value to [hb_min_ms,
 * hb_max_ms]; we then send a heart-beat (an EOL) whenever we sent nothing
 * for sx ms, and a client silent for sy * hb_grace ms (grace default 2.0,
 * below 1 counts as 1) is sent ERROR "heart-beat timeout" and closed
 * (1008). So a client asking for 1000 gets 1000, not our preference; the
 * clamp means one asking for less than hb_min_ms is served every hb_min_ms,
 * and one that can only send every more than hb_max_ms is still expected
 * every hb_max_ms (hb_max_ms bounds how long a silent peer lives).
 * hb_send_ms/hb_recv_ms matter only when CONNECT has no heart-beat header
 * at all: that means 0,0 (no heart-beats either way, the spec's default),
 * nothing is sent or enforced, and CONNECTED states our offer as
 * heart-beat:clamp(hb_send_ms),clamp(hb_recv_ms) (0 stays 0), which is
 * informational. A 1.0 client gets a heart-beat header (and never a
 * version header) only if its CONNECT had one. A malformed heart-beat
 * (anything but two decimal integers "cx,cy") -> ERROR + 1002.
 *
 * Transactions (BEGIN/COMMIT/ABORT) live in the session: a SEND, ACK or
 * NACK with a transaction header is copied and held (bounded by max_tx and
 * max_tx_bytes) and replayed to ops->relay in order on COMMIT; ABORT or the
 * end of the session discards it. Unknown or duplicate transaction ids ->
 * ERROR. A held frame's own receipt is answered when it is held; the copy
 * replayed on COMMIT has no transaction or receipt header. Every replayed
 * action has in_commit = 1 and commit_receipt = the COMMIT's receipt header
 * (NULL without one), so a relay can treat the COMMIT as a unit (e.g.
 * require a publisher confirm for each replayed SEND and fail the COMMIT
 * with receipt-id commit_receipt when one is unroutable or nacked). The
 * COMMIT's receipt is also the `receipt` of the last replayed action (the
 * others have none), so an in-order relay that ignores in_commit answers it
 * once all of them are done; an empty COMMIT answers at once, without any
 * action. A replayed action that fails stops the replay (the session has
 * closed). The session also tracks subscription ids: a duplicate id, an
 * UNSUBSCRIBE of an unknown id, or more than max_subscriptions -> ERROR;
 * except that an UNSUBSCRIBE whose id starts with "/temp-queue/" goes to
 * the relay, which owns temp queues. SUBSCRIBE without id: an error from
 * 1.1 on; in 1.0 the destination is the id, and UNSUBSCRIBE may name the
 * destination instead of the id. ACK/NACK: the id is the "id" header in
 * 1.2 and "message-id" in 1.0/1.1; NACK in 1.0 -> ERROR.
 *
 * ERROR frames carry message, receipt-id when the failing frame had a
 * receipt, content-type:text/plain, content-length and a short body; the
 * session then closes with a fitting WebSocket code:
 *   1000 a normal ERROR: the relay refused an action (sg_stomp_session_fail
 *        with code 0 too), duplicate/unknown subscription or transaction id
 *   1002 a malformed frame, a missing or invalid header, a frame not
 *        allowed in this state (before CONNECT, a second CONNECT, NACK in
 *        1.0), no version in common
 *   1008 policy: access refused, CONNECT or heart-beat timeout, too many
 *        subscriptions or transactions, too much data while authenticating
 *   1009 size: the decoder's bounds (frame, body, header line, header
 *        count) and a transaction over max_tx_bytes
 *   1011 out of memory
 *
 * Re-entrancy: ops->authenticate may call sg_stomp_session_auth_result()
 * and ops->relay may call sg_stomp_session_receipt()/_fail() before they
 * return. No op may free the session.
 */
#ifndef SG_STOMP_SESSION_H
#define SG_STOMP_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include "stomp_frame.h"

enum sg_stomp_state {
    SG_SESS_AWAIT_CONNECT = 0,
    SG_SESS_AUTHENTICATING,
    SG_SESS_CONNECTED,
    SG_SESS_CLOSED,
};

enum sg_ack_mode { SG_ACK_AUTO = 0, SG_ACK_CLIENT, SG_ACK_CLIENT_INDIVIDUAL };

/* A relay action: what the session asks of the broker side. All views are
 * valid only during the ops->relay call; the relay copies what it keeps. */
enum sg_action_type {
    SG_ACT_SUBSCRIBE = 1,
    SG_ACT_UNSUBSCRIBE,
    SG_ACT_SEND,
    SG_ACT_ACK,
    SG_ACT_NACK,
};

struct sg_action {
    enum sg_action_type type;
    const struct sg_stomp_frame *frame; /* the client's frame (all headers, body) */
    const char *destination;            /* SUBSCRIBE, SEND (NUL-terminated copy) */
    const char *sub_id;                 /* SUBSCRIBE, UNSUBSCRIBE (1.0 may use destination as id) */
    enum sg_ack_mode ack_mode;          /* SUBSCRIBE */
    const char *ack_id;                 /* ACK, NACK: the id/message-id header per version */
    const char *receipt;                /* receipt header or NULL (COMMIT: see above) */
    int in_commit;                      /* 1 for every action replayed by a COMMIT, else 0 */
    const char *commit_receipt;         /* in_commit: the COMMIT's receipt header or NULL */
};

struct sg_stomp_session_ops {
    /* Send one complete STOMP frame as one WebSocket message (text, or
     * binary if the body is not valid UTF-8: the glue decides). */
    void (*send)(void *ctx, const uint8_t *frame, size_t len);
    /* Send a heart-beat: one EOL ("\n") as its own WebSocket message. */
    void (*send_heartbeat)(void *ctx);
    /* Flush what was sent, send a WebSocket close with this code, then
     * close. Called at most once. reason: borrowed for the call, at most 123
     * bytes of UTF-8 (fits a close frame), "" after DISCONNECT. */
    void (*close)(void *ctx, int ws_code, const char *reason);
    /* Ask the broker whether login/passcode may use vhost (NULL login when the
     * client sent none and no default user applies - the relay refuses).
     * passcode is "" when absent, never NULL. All three are borrowed for the
     * call only (the session wipes the passcode afterwards): copy them.
     * The answer comes back through sg_stomp_session_auth_result(), possibly
     * from inside this call. Passwords are never logged. */
    void (*authenticate)(void *ctx, const char *login, const char *passcode, const char *vhost);
    /* Perform an action. Returns SG_OK when done (the session sends the
     * RECEIPT if one was asked for), SG_AGAIN when the relay will answer
     * later with sg_stomp_session_receipt()/sg_stomp_session_fail(), or a
     * negative sg_err with *errmsg set to the text for the ERROR frame
     * (NULL: sg_strerror's); it need only stay valid until the op returns,
     * the session copies it into the ERROR frame at once. */
    int (*relay)(void *ctx, const struct sg_action *act, const char **errmsg);
    /* Optional (NULL: not called), for the metrics. frame_in: a complete
     * frame was decoded (before it is handled; frames replayed by a COMMIT
     * are not decoded again). error_sent: an ERROR frame went out through
     * send; err is the sg_err the session closes with (SG_EBROKER after
     * sg_stomp_session_fail) and message its message header, borrowed for
     * the call. */
    void (*frame_in)(void *ctx, enum sg_stomp_cmd cmd);
    void (*error_sent)(void *ctx, int err, const char *message);
};

struct sg_stomp_session_config {
    const char *server_name; /* "stompgate/0.1.0" */
    /* stated in CONNECTED only when CONNECT had no heart-beat header
     * (informational, see above; default 10000 each) */
    unsigned hb_send_ms;
    unsigned hb_recv_ms;
    unsigned hb_min_ms;          /* clamp of non-zero client values, default 1000 */
    unsigned hb_max_ms;          /* default 120000 */
    double hb_grace;             /* default 2.0 */
    unsigned connect_timeout_ms; /* CONNECT deadline after the upgrade, default 10000 */
    const char *default_login;   /* used when the client sends no login; NULL = off */
    const char *default_passcode;
    const char *default_vhost;  /* "/" */
    unsigned max_subscriptions; /* per session, default 256 */
    unsigned max_tx;            /* open transactions, default 16 */
    size_t max_tx_bytes;        /* buffered bytes per transaction, default 4 MiB */
    /* bound until CONNECTED on the frame decoded and the bytes held while
     * authenticating; default (and 0 =) 64 KiB, capped by limits.max_frame */
    size_t max_connect_frame;
    struct sg_stomp_limits limits; /* from CONNECTED on; defaults as stomp_frame.h */
};

void sg_stomp_session_config_defaults(struct sg_stomp_session_config *c);

struct sg_stomp_session; /* opaque */

/* Creates a session. cfg is borrowed (must outlive the session); ops and
 * ctx are borrowed. subproto_cap: 10/11/12, or 0 when no subprotocol was
 * negotiated. now_ms starts the CONNECT deadline. NULL on ENOMEM. */
struct sg_stomp_session *sg_stomp_session_new(const struct sg_stomp_session_config *cfg,
                                              const struct sg_stomp_session_ops *ops, void *ctx,
                                              int subproto_cap, uint64_t now_ms);
void sg_stomp_session_free(struct sg_stomp_session *s);

/* Feeds the payload of a WebSocket data message (or a chunk of one). Any
 * bytes count as activity for heart-beat purposes. Returns SG_OK, or a
 * negative sg_err after the session has sent ERROR and closed during this
 * call (the decoder's error, SG_ESTOMP for a missing/invalid header,
 * SG_ESTATE, SG_EVERSION, SG_EAUTH, SG_ETOOMANY, SG_ETOOBIG, SG_ELIMIT,
 * SG_ENOMEM or the relay's error). A DISCONNECT closes with SG_OK; input
 * after the close is ignored and returns SG_OK. */
int sg_stomp_session_on_data(struct sg_stomp_session *s, const uint8_t *p, size_t len,
                             uint64_t now_ms);
/* Call at (or after) the deadline; sends heart-beats, enforces deadlines. */
void sg_stomp_session_on_tick(struct sg_stomp_session *s, uint64_t now_ms);
/* Next time on_tick must be called; UINT64_MAX if none. */
uint64_t sg_stomp_session_next_deadline(const struct sg_stomp_session *s);
/* The glue sent something (frame or heart-beat) at now_ms (resets the
 * outgoing heart-beat clock). Frames sent through ops->send update it
 * automatically; the relay's MESSAGE deliveries call this. */
void sg_stomp_session_on_sent(struct sg_stomp_session *s, uint64_t now_ms);

/* The glue is not reading from the client on purpose (broker
 * backpressure): its silence is ours, so the incoming heart-beat clock
 * restarts at now_ms. Call it at every tick while reading is paused. */
void sg_stomp_session_on_paused(struct sg_stomp_session *s, uint64_t now_ms);

/* Result of ops->authenticate. ok=0 -> ERROR "access refused" and close 1008. */
void sg_stomp_session_auth_result(struct sg_stomp_session *s, int ok, uint64_t now_ms);
/* The relay completed an SG_AGAIN action that carried `receipt`: send RECEIPT.
 * Ignored unless CONNECTED. */
void sg_stomp_session_receipt(struct sg_stomp_session *s, const char *receipt);
/* The relay failed an action: ERROR with message (and receipt-id if receipt
 * != NULL), then close with ws_code (0 = 1000). */
void sg_stomp_session_fail(struct sg_stomp_session *s, const char *message, const char *receipt,
                           int ws_code);

enum sg_stomp_state sg_stomp_session_state(const struct sg_stomp_session *s);
int sg_stomp_session_version(const struct sg_stomp_session *s);    /* 10/11/12, 0 before CONNECT */
const char *sg_stomp_session_id(const struct sg_stomp_session *s); /* UUID text */
const char *sg_stomp_session_login(const struct sg_stomp_session *s); /* NULL before auth */
const char *sg_stomp_session_vhost(const struct sg_stomp_session *s); /* NULL before CONNECT */
/* Negotiated heart-beat periods (0 = off, and 0 until CONNECTED). */
unsigned sg_stomp_session_hb_out_ms(const struct sg_stomp_session *s);
unsigned sg_stomp_session_hb_in_ms(const struct sg_stomp_session *s);

#endif
