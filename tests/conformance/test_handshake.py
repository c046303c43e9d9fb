"""The opening handshake (RFC 6455 section 4, RFC 9110/9112 for the HTTP around it):
raw requests over a socket, checking the status line and headers. Mostly over ws on
the workers = 1 daemon; a few cases also over wss (RSA and ECDSA).

The limit, origin and timeout cases get daemons of their own."""

import socket
import time

import pytest

from .conftest import scale
from .util import OP_TEXT, assert_message, expect_close
from .wsraw import ConnectionClosed, Timeout, accept_key, new_key, upgrade_request

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def request(daemon, data, tls=False, source=None, timeout=None):
    """Send raw request bytes; returns the HttpResponse and the Conn (closed). For
    an answer other than 101, conn.eof_after tells whether (and how fast) the server
    closed TCP after it."""
    with daemon.raw(tls=tls, source=source, timeout=timeout) as c:
        c.send(data)
        resp = c.read_http_response()
        c.eof_after = c.wait_eof(timeout=scale(3)) if resp.status != 101 else None
        return resp, c


def assert_error_response(resp, conn, status):
    """An error answer: the status, no accept key, Connection: close, a body, and
    TCP closed by the server right after it."""
    assert resp.status == status, f"{resp.status} {resp.reason}: {resp.body!r}"
    assert resp.header("sec-websocket-accept") is None
    assert "close" in (resp.header("connection") or "").lower()
    assert resp.body, "an error response without a body"
    assert conn.eof_after is not None, "the server kept the connection open after an error"


def ws_upgrade(daemon, tls=False, **kw):
    return request(daemon, upgrade_request(**kw), tls=tls)


# ---- success


@pytest.mark.parametrize("transport", ["ws", "wss-rsa", "wss-ecdsa"])
def test_rfc_example_accept_key(daemon_a, daemon_b, transport):
    """RFC 6455 1.3: key dGhlIHNhbXBsZSBub25jZQ== -> accept s3pPLMBiTxaQ9kYGzzhZRbK+xOo=,
    101 with Upgrade and Connection, no subprotocol or extension, and the socket then
    speaks WebSocket."""
    daemon = daemon_b if transport == "wss-ecdsa" else daemon_a
    with daemon.raw(tls=transport != "ws") as c:
        c.send(upgrade_request(key=RFC_KEY))
        resp = c.read_http_response()
        assert resp.status == 101, resp
        assert resp.raw_head.startswith(b"HTTP/1.1 101 ")
        assert resp.header("sec-websocket-accept") == RFC_ACCEPT
        assert resp.header("upgrade").lower() == "websocket"
        assert "upgrade" in [t.strip().lower() for t in resp.header("connection").split(",")]
        assert resp.header("sec-websocket-protocol") is None
        assert resp.header("sec-websocket-extensions") is None
        assert resp.header("content-length") in (None, "0")
        assert not c.buf, "bytes after the 101 head"
        c.send_text("after the handshake")
        assert_message(c.recv_message(), OP_TEXT, b"after the handshake")


def test_accept_key_random(daemon_a):
    """Fresh random keys are answered with their own accept keys."""
    for _ in range(5):
        with daemon_a.raw() as c:
            key = new_key()
            c.send(upgrade_request(key=key))
            resp = c.read_http_response()
            assert resp.status == 101 and resp.header("sec-websocket-accept") == accept_key(key)


@pytest.mark.parametrize("variant", ["lowercase-values", "mixed-case-names", "connection-list",
                                     "extra-headers", "query-string", "bare-lf"])
def test_valid_upgrade_variants(daemon_a, variant):
    """Case-insensitive tokens and names, Connection as a list, unknown headers, a
    query string on the path: all still a valid upgrade."""
    key = RFC_KEY
    if variant == "lowercase-values":
        data = (f"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
    elif variant == "mixed-case-names":
        data = (f"GET /echo HTTP/1.1\r\nhOST: x\r\nuPGRADE: websocket\r\nconnection: Upgrade\r\n"
                f"sec-websocket-key: {key}\r\nSEC-WEBSOCKET-VERSION: 13\r\n\r\n")
    elif variant == "connection-list":
        data = (f"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                f"Connection: keep-alive, Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
    elif variant == "extra-headers":
        data = upgrade_request(key=key, extra=[("User-Agent", "conformance"), ("Cookie", "a=b"),
                                               ("Sec-WebSocket-Extensions", "x-unknown")]).decode()
    elif variant == "query-string":
        data = upgrade_request(path="/echo?x=1&y=2", key=key).decode()
    else:
        data = upgrade_request(key=key).decode().replace("\r\n", "\n")
    resp, _ = request(daemon_a, data.encode())
    assert resp.status == 101, resp
    assert resp.header("sec-websocket-accept") == RFC_ACCEPT
    # an extension we do not speak is not accepted
    assert resp.header("sec-websocket-extensions") is None


def test_permessage_deflate_not_negotiated(daemon_a):
    """An offered permessage-deflate (RFC 7692) is not accepted, so RSV1 stays
    forbidden on that connection: 1002."""
    with daemon_a.raw() as c:
        c.send(upgrade_request(extra=[("Sec-WebSocket-Extensions",
                                       "permessage-deflate; client_max_window_bits")]))
        resp = c.read_http_response()
        assert resp.status == 101, resp
        assert resp.header("sec-websocket-extensions") is None
        c.send_frame(OP_TEXT, b"\xf2\x48\xcd\xc9\xc9\x07\x00", rsv=4)  # "Hello", deflated
        expect_close(c, 1002)


# ---- subprotocols (on /ws, the STOMP endpoint)

SUBPROTOCOLS = [
    ("v10.stomp, v11.stomp, v12.stomp", "v12.stomp"),
    ("v12.stomp", "v12.stomp"),
    ("v11.stomp,v10.stomp", "v11.stomp"),
    ("v10.stomp", "v10.stomp"),
    ("mqtt, v11.stomp", "v11.stomp"),
    (["v10.stomp", "v11.stomp"], "v11.stomp"),  # two header lines
    (None, None),
]


@pytest.mark.parametrize("offer,chosen", SUBPROTOCOLS,
                         ids=["all-three", "v12", "v11-v10", "v10", "unknown-and-v11",
                              "two-headers", "none-offered"])
def test_subprotocol_selection(daemon_a, offer, chosen):
    """RFC 6455 4.2.2 step 5.5: the server picks one offered subprotocol (ours:
    v12 > v11 > v10), or sends no Sec-WebSocket-Protocol when none was offered."""
    if isinstance(offer, list):
        data = upgrade_request(path="/ws", extra=[("Sec-WebSocket-Protocol", p) for p in offer])
    else:
        data = upgrade_request(path="/ws", protocols=offer)
    resp, _ = request(daemon_a, data)
    assert resp.status == 101, resp
    assert resp.headers.get("sec-websocket-protocol", [None]) == [chosen]


@pytest.mark.parametrize("offer", ["mqtt", "stomp", "wamp.2.json, mqtt", "V12.STOMP"])
def test_only_unknown_subprotocols(daemon_a, offer):
    """Only subprotocols we do not speak: 400, and the body names the supported ones
    (subprotocol names are compared case-sensitively)."""
    resp, c = request(daemon_a, upgrade_request(path="/ws", protocols=offer))
    assert_error_response(resp, c, 400)
    for name in ("v12.stomp", "v11.stomp", "v10.stomp"):
        assert name.encode() in resp.body, resp.body


# ---- not an upgrade, or a bad one


def test_plain_get_on_ws_path(daemon_a):
    """No Upgrade header on /ws: not an upgrade; a WebSocket-only path says 426."""
    resp, c = request(daemon_a, b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_error_response(resp, c, 426)


@pytest.mark.parametrize("what", ["no-upgrade-on-ws", "version-8"])
def test_426_names_the_upgrade(daemon_a, what):
    """RFC 9110 15.5.22: 'The server MUST send an Upgrade header field in a 426
    response to indicate the required protocol(s)'; 7.8: a sender of Upgrade also
    sends the 'upgrade' connection option."""
    if what == "version-8":
        data = upgrade_request(version="8")
    else:
        data = b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"
    resp, _ = request(daemon_a, data)
    assert resp.status == 426
    assert (resp.header("upgrade") or "").lower() == "websocket", resp.raw_head
    conn_opts = [t.strip().lower() for t in (resp.header("connection") or "").split(",")]
    assert "upgrade" in conn_opts, resp.raw_head


def test_plain_get_on_root_serves_static(daemon_a):
    """No Upgrade header on /: the static index, not a WebSocket answer."""
    resp, _ = request(daemon_a, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert resp.status == 200, resp
    assert b"sg-conformance-index" in resp.body
    assert resp.header("sec-websocket-accept") is None


def test_upgrade_on_root(daemon_a):
    """... while / with a proper upgrade is a WebSocket endpoint."""
    resp, _ = request(daemon_a, upgrade_request(path="/", key=RFC_KEY))
    assert resp.status == 101 and resp.header("sec-websocket-accept") == RFC_ACCEPT


def test_upgrade_header_without_websocket_token(daemon_a):
    """Upgrade: h2c (not websocket) on / is plain HTTP: the static file."""
    resp, _ = request(daemon_a, b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
    assert resp.status == 200 and b"sg-conformance-index" in resp.body


def test_post_upgrade(daemon_a):
    """RFC 6455 4.1: the method is GET. POST: 405 with Allow (RFC 9110 15.5.6)."""
    resp, c = request(daemon_a, upgrade_request(method="POST", extra=[("Content-Length", "0")]))
    assert_error_response(resp, c, 405)
    assert "GET" in (resp.header("allow") or "")


@pytest.mark.parametrize("path", ["/nope", "/echo/", "/ECHO", "/wss"])
def test_unknown_path(daemon_a, path):
    resp, c = request(daemon_a, upgrade_request(path=path))
    assert_error_response(resp, c, 404)


@pytest.mark.parametrize("transport", ["ws", "wss-rsa"])
def test_absolute_form_request_target(daemon_a, transport):
    """RFC 6455 4.2.1 item 1: the Request-URI is the resource name 'or an absolute
    HTTP/HTTPS URI containing the /resource name/'; RFC 9112 3.2.2: 'A server MUST
    accept the absolute-form in requests'. http:// on the ws port, https:// on wss."""
    tls = transport != "ws"
    port = daemon_a.tls_port if tls else daemon_a.port
    target = f"{'https' if tls else 'http'}://127.0.0.1:{port}/echo"
    resp, _ = request(daemon_a, upgrade_request(path=target, key=RFC_KEY), tls=tls)
    assert resp.status == 101, f"{resp.status}: {resp.body!r}"
    assert resp.header("sec-websocket-accept") == RFC_ACCEPT


def test_http_1_0(daemon_a):
    """RFC 6455 4.1: HTTP/1.1 or higher."""
    resp, c = request(daemon_a, upgrade_request(http="HTTP/1.0"))
    assert_error_response(resp, c, 400)


def test_missing_host(daemon_a):
    resp, c = request(daemon_a, upgrade_request(omit=("host",)))
    assert_error_response(resp, c, 400)


def test_missing_connection_upgrade(daemon_a):
    resp, c = request(daemon_a, upgrade_request(omit=("connection",)))
    assert_error_response(resp, c, 400)


def test_missing_key(daemon_a):
    resp, c = request(daemon_a, upgrade_request(omit=("sec-websocket-key",)))
    assert_error_response(resp, c, 400)


BAD_KEYS = {
    "15-bytes": "AAECAwQFBgcICQoLDA0O",  # base64 of 15 bytes
    "17-bytes": "AAECAwQFBgcICQoLDA0ODxA=",  # base64 of 17 bytes (24 chars)
    "not-base64": "!!!!!!!!!!!!!!!!!!!!!!==",
    "raw-16-chars": "abcdefghijklmnop",
    "empty": "",
}


@pytest.mark.parametrize("key", list(BAD_KEYS.values()), ids=list(BAD_KEYS))
def test_bad_key(daemon_a, key):
    """RFC 6455 4.2.1 item 5: the key is base64 of 16 bytes."""
    resp, c = request(daemon_a, upgrade_request(key=key or " "))
    assert_error_response(resp, c, 400)


@pytest.mark.parametrize("name", ["Host", "Sec-WebSocket-Key"])
def test_repeated_header(daemon_a, name):
    """Two Host headers (RFC 9112 3.2) or two keys (RFC 6455 4.2.1 item 5 names one): 400."""
    extra = [(name, "127.0.0.1" if name == "Host" else "AAAAAAAAAAAAAAAAAAAAAA==")]
    resp, c = request(daemon_a, upgrade_request(extra=extra))
    assert_error_response(resp, c, 400)


def test_missing_version(daemon_a):
    resp, c = request(daemon_a, upgrade_request(omit=("sec-websocket-version",)))
    assert_error_response(resp, c, 400)


@pytest.mark.parametrize("version", ["8", "7", "0", "14", "12"])
@pytest.mark.parametrize("transport", ["ws", "wss-rsa"])
def test_unsupported_version(daemon_a, version, transport):
    """RFC 6455 4.2.2 / 4.4: an unsupported version gets 426 (Upgrade Required) and
    Sec-WebSocket-Version: 13."""
    resp, c = request(daemon_a, upgrade_request(version=version), tls=transport != "ws")
    assert_error_response(resp, c, 426)
    assert resp.header("sec-websocket-version") == "13"


@pytest.mark.parametrize("transport", ["ws", "wss-ecdsa"])
def test_error_response_closes_connection(daemon_a, daemon_b, transport):
    """After an error response the server closes TCP (it said Connection: close)."""
    daemon = daemon_a if transport == "ws" else daemon_b
    with daemon.raw(tls=transport != "ws") as c:
        c.send(upgrade_request(path="/nope"))
        resp = c.read_http_response()
        assert resp.status == 404
        assert c.wait_eof(timeout=scale(3)) is not None


# ---- Origin


@pytest.fixture(scope="module")
def origin_daemon(start_daemon):
    return start_daemon("origins", allowed_origins="https://good.example")


@pytest.mark.parametrize("origin", ["https://evil.example", "http://good.example",
                                    "https://good.example:8443", "https://good.example.evil",
                                    "null"])
def test_origin_not_allowed(origin_daemon, origin):
    """RFC 6455 4.2.2 step 4 / 10.2: an Origin outside allowed_origins gets 403."""
    resp, c = request(origin_daemon, upgrade_request(origin=origin))
    assert_error_response(resp, c, 403)


def test_origin_allowed(origin_daemon):
    resp, _ = request(origin_daemon, upgrade_request(origin="https://good.example", key=RFC_KEY))
    assert resp.status == 101, resp
    assert resp.header("sec-websocket-accept") == RFC_ACCEPT


# ---- request size limits (defaults: 8K request line, 100 headers, 16K head)


def test_request_line_too_long(daemon_a):
    """A 9 KiB request line: 414 (or 431)."""
    resp, c = request(daemon_a, upgrade_request(path="/echo?" + "a" * 9216))
    assert resp.status in (414, 431), resp
    assert_error_response(resp, c, resp.status)


def test_request_line_too_long_unterminated(daemon_a):
    """The verdict does not wait for the end of the line."""
    with daemon_a.raw() as c:
        c.send(b"GET /echo?" + b"a" * 9216)
        resp = c.read_http_response()
        assert resp.status in (414, 431), resp


def _with_fillers(n_total):
    base = upgrade_request(key=RFC_KEY).decode()[:-2]  # without the final CRLF
    n_fill = n_total - 5  # Host, Upgrade, Connection, Key, Version
    return (base + "".join(f"X-Filler-{i}: {i}\r\n" for i in range(n_fill)) + "\r\n").encode()


def test_100_headers_ok(daemon_a):
    """The limit is inclusive: exactly 100 header fields are fine."""
    resp, _ = request(daemon_a, _with_fillers(100))
    assert resp.status == 101, resp


def test_101_headers(daemon_a):
    resp, c = request(daemon_a, _with_fillers(101))
    assert_error_response(resp, c, 431)


def test_head_over_16k(daemon_a):
    """20 headers of 900 bytes (18 KB head, few fields): 431."""
    extra = [(f"X-Big-{i}", "v" * 900) for i in range(20)]
    resp, c = request(daemon_a, upgrade_request(extra=extra))
    assert_error_response(resp, c, 431)


def test_head_over_16k_unterminated(daemon_a):
    """Headers that never end: 431 once 16 KiB have arrived."""
    with daemon_a.raw() as c:
        c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n" + b"X-Long: " + b"v" * 17000)
        resp = c.read_http_response()
        assert resp.status == 431, resp


# ---- handshake timeout (slowloris)


@pytest.fixture(scope="module")
def slow_daemon(start_daemon):
    return start_daemon("handshake-timeout", handshake_timeout_ms=500)


@pytest.mark.parametrize("sent", [b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n",
                                  b""], ids=["half-request", "nothing"])
def test_slowloris(slow_daemon, sent):
    """Half a request (or nothing), then silence: 408 or a plain close, after about
    handshake_timeout_ms = 500 (not before, not much later)."""
    with slow_daemon.raw(timeout=scale(5)) as c:
        t0 = time.monotonic()
        c.send(sent)
        status = None
        try:
            status = c.read_http_response(timeout=scale(3)).status
        except ConnectionClosed:
            pass
        except Timeout:
            pytest.fail("no answer and no close within 3 s (handshake_timeout_ms = 500)")
        if status is not None:
            assert status == 408
            assert c.wait_eof(timeout=scale(2)) is not None
        elapsed = time.monotonic() - t0
        assert 0.4 <= elapsed <= scale(1.5), f"closed after {elapsed:.3f} s"


def test_slow_but_in_time(slow_daemon):
    """A request dribbled in over ~300 ms (inside the 500 ms deadline) succeeds."""
    data = upgrade_request(key=RFC_KEY)
    with slow_daemon.raw() as c:
        for i in range(0, len(data), 20):
            c.send(data[i:i + 20])
            time.sleep(0.3 / (len(data) / 20))
        resp = c.read_http_response()
        assert resp.status == 101 and resp.header("sec-websocket-accept") == RFC_ACCEPT


# ---- connection limits


def _ws_retrying(daemon, source=None, tries=50):
    """An upgraded connection; retries 503 for a moment (connections we closed just
    before may still be counted while the server tears them down)."""
    for _ in range(tries):
        c = daemon.raw(source=source)
        c.send(upgrade_request())
        resp = c.read_http_response()
        if resp.status == 101:
            return c
        c.close()
        assert resp.status == 503, resp
        time.sleep(0.02)
    raise AssertionError("upgrade kept getting 503")


def _close_ws(c):
    c.send_close(1000)
    c.expect_close()
    c.wait_eof(timeout=scale(2))
    c.close()


@pytest.fixture(scope="module")
def capped_daemon(start_daemon):
    return start_daemon("max-connections", max_connections=3, workers=2)


def test_max_connections(capped_daemon):
    """max_connections = 3: with 3 WebSockets open the 4th connection's upgrade gets
    503; once one closes, a new upgrade succeeds."""
    held = [_ws_retrying(capped_daemon) for _ in range(3)]
    try:
        for _ in range(2):
            resp, c = request(capped_daemon, upgrade_request())
            assert_error_response(resp, c, 503)
        _close_ws(held.pop(0))
        held.append(_ws_retrying(capped_daemon))
        resp, c = request(capped_daemon, upgrade_request())
        assert_error_response(resp, c, 503)
        for w in held:  # the held ones still work
            w.send_text("held")
            assert_message(w.recv_message(), OP_TEXT, b"held")
    finally:
        for w in held:
            w.close()


@pytest.fixture(scope="module")
def per_ip_daemon(start_daemon):
    return start_daemon("max-per-ip", max_connections_per_ip=2)


def _loopback2_usable():
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.2", 0))
        return True
    except OSError:
        return False


def test_max_connections_per_ip(per_ip_daemon):
    """max_connections_per_ip = 2: the 3rd connection from 127.0.0.1 gets 503, while
    another address (127.0.0.2) still gets in; closing one frees a slot."""
    src = ("127.0.0.1", 0)
    held = [_ws_retrying(per_ip_daemon, source=src) for _ in range(2)]
    try:
        resp, c = request(per_ip_daemon, upgrade_request(), source=src)
        assert_error_response(resp, c, 503)
        if _loopback2_usable():
            other = _ws_retrying(per_ip_daemon, source=("127.0.0.2", 0), tries=1)
            other.send_text("other ip")
            assert_message(other.recv_message(), OP_TEXT, b"other ip")
            held.append(other)
        _close_ws(held.pop(0))
        held.append(_ws_retrying(per_ip_daemon, source=src))
        resp, c = request(per_ip_daemon, upgrade_request(), source=src)
        assert_error_response(resp, c, 503)
    finally:
        for w in held:
            w.close()
