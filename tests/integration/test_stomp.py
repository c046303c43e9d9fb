"""STOMP 1.0/1.1/1.2 sessions over real WebSockets against the real broker (issue 4)."""

import time

import pytest
import websocket

from sgtest import scaled
from stompc import Closed, StompClient, connected_client, parse_frame

BOOK_CONNECT = "CONNECT\nlogin: websockets\npasscode: rabbitmq\n\n\n\n\x00"
BOOK_DISCONNECT = "DISCONNECT\n\n\nundefined\n\x00"


@pytest.fixture
def gw(stompgate):
    return stompgate(heartbeat_send_ms=300, heartbeat_recv_ms=300, heartbeat_min_ms=100,
                     connect_timeout_ms=1500)


@pytest.mark.parametrize("version,subproto", [
    ("1.0", "v10.stomp"), ("1.1", "v11.stomp"), ("1.2", "v12.stomp")])
def test_connect_each_version_good_credentials(gw, broker, version, subproto):
    c = StompClient(gw.ws_url)
    assert c.subprotocol == "v12.stomp"
    c.close()
    c = StompClient(gw.ws_url, subprotocols=[subproto])
    assert c.subprotocol == subproto
    f = c.connect(broker.user, broker.password, version=version)
    assert f.command == "CONNECTED"
    if version != "1.0":
        assert f["version"] == version
    assert len(f["session"]) == 36
    assert f["server"].startswith("stompgate/")
    c.close()


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_connect_bad_credentials_error_then_close(gw, broker, version):
    c = StompClient(gw.ws_url)
    c.send_frame("CONNECT", {"accept-version": version, "login": broker.user,
                             "passcode": "not-the-password"})
    f, code = c.expect_error_and_close()
    assert f["message"] == "access refused"
    assert b"not-the-password" not in f.raw
    assert code == 1008
    assert "not-the-password" not in gw.log()


def test_unknown_user_refused(gw):
    c = StompClient(gw.ws_url)
    c.send_frame("CONNECT", {"accept-version": "1.2", "login": "nobody", "passcode": "x"})
    f, code = c.expect_error_and_close()
    assert f["message"] == "access refused"


def test_no_login_refused_without_default_user(gw):
    c = StompClient(gw.ws_url)
    c.send_frame("CONNECT", {"accept-version": "1.2"})
    f, _ = c.expect_error_and_close()
    assert f["message"] == "access refused"


def test_default_login_serves_clients_without_login(stompgate, broker):
    gw = stompgate(default_login=broker.user, default_passcode=broker.password)
    c = StompClient(gw.ws_url)
    c.send_frame("CONNECT", {"accept-version": "1.2"})
    assert c.expect("CONNECTED")["version"] == "1.2"


def test_book_client_exact_bytes(gw, broker):
    """Chapter 4's client: v10.stomp, 'key: value' headers, a body of '\\n\\n'."""
    ws = websocket.create_connection(gw.ws_url.replace("/ws", "/"), subprotocols=["v10.stomp"],
                                     timeout=scaled(5))
    assert ws.getsubprotocol() == "v10.stomp"
    ws.send(BOOK_CONNECT)
    op, data = ws.recv_data()
    # exactly one NUL-terminated frame, nothing after the NUL (the book's parser)
    assert data.endswith(b"\x00") and data.count(b"\x00") == 1
    f = parse_frame(data, "1.0")
    assert f.command == "CONNECTED"
    assert len(f["session"]) == 36
    ws.send("SUBSCRIBE\ndestination: /queue/book-test-q\n\n\n\n\x00")
    ws.send(BOOK_DISCONNECT)
    op, data = ws.recv_data(control_frame=True)
    assert op == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(data[:2], "big") == 1000


def test_version_negotiation_none_in_common(gw, broker):
    c = StompClient(gw.ws_url)
    c.send_frame("CONNECT", {"accept-version": "2.0,3.1", "login": broker.user,
                             "passcode": broker.password})
    f, code = c.expect_error_and_close()
    assert f["version"] == "1.0,1.1,1.2"
    assert code == 1002


def test_subprotocol_caps_version(gw, broker):
    c = StompClient(gw.ws_url, subprotocols=["v11.stomp"])
    f = c.connect(broker.user, broker.password, version="1.0,1.1,1.2")
    assert f["version"] == "1.1"


def test_no_accept_version_means_1_0(gw, broker):
    c = StompClient(gw.ws_url, subprotocols=None)
    c.send_frame("CONNECT", {"login": broker.user, "passcode": broker.password})
    f = c.expect("CONNECTED")
    assert "version" not in f.headers or f["version"] == "1.0"


def test_frame_before_connect(gw):
    c = StompClient(gw.ws_url)
    c.send_frame("SEND", {"destination": "/queue/x"}, "early")
    f, code = c.expect_error_and_close()
    assert "CONNECT" in f["message"]


def test_connect_deadline(gw):
    c = StompClient(gw.ws_url)
    t0 = time.monotonic()
    f, code = c.expect_error_and_close(timeout=5)
    assert "timeout" in f["message"].lower()
    assert time.monotonic() - t0 < scaled(4)


def test_heart_beats_flow_at_agreed_rate(gw, broker):
    c = StompClient(gw.ws_url)
    f = c.connect(broker.user, broker.password, heart_beat="0,500")
    # the client wants one every 500 ms: that is what we promise (and do), as the plugin
    # does (test_plugin_compat.py::test_heartbeat_honours_client)
    assert f["heart-beat"] == "500,0"
    t0 = time.monotonic()
    with pytest.raises(websocket.WebSocketTimeoutException):
        c.recv_msg(timeout=2.2)
    elapsed = time.monotonic() - t0
    assert 2 <= c.heartbeats <= elapsed / 0.5 + 1, c.heartbeats


def test_client_heart_beats_keep_session_alive(gw, broker):
    c = StompClient(gw.ws_url)
    f = c.connect(broker.user, broker.password, heart_beat="300,0")
    assert f["heart-beat"] == "0,300"
    for _ in range(8):  # 2.4 s, well past 300 ms * grace 2
        c.send_raw("\n")
        time.sleep(0.3)
    c.send_frame("DISCONNECT", {"receipt": "bye"})
    assert c.expect("RECEIPT")["receipt-id"] == "bye"


def test_silent_client_is_dropped(gw, broker):
    c = StompClient(gw.ws_url)
    f = c.connect(broker.user, broker.password, heart_beat="300,0")
    assert f["heart-beat"] == "0,300"
    t0 = time.monotonic()
    f, code = c.expect_error_and_close(timeout=5)
    assert "heart-beat" in f["message"]
    assert time.monotonic() - t0 < scaled(3)


def test_client_heart_beat_request_honoured(stompgate, broker):
    """Default config (heartbeat_send_ms/recv_ms 10000): a client asking for 1000,1000 gets
    1000,1000 (as from RabbitMQ), is sent heart-beats every second and is dropped after
    1000 ms x grace 2 of silence."""
    gw = stompgate()
    c = StompClient(gw.ws_url)
    f = c.connect(broker.user, broker.password, heart_beat="1000,1000")
    assert f["heart-beat"] == "1000,1000"
    t0 = time.monotonic()
    f, code = c.expect_error_and_close(timeout=8)
    elapsed = time.monotonic() - t0
    assert "heart-beat" in f["message"]
    assert code == 1008
    assert 1.5 < elapsed < scaled(3.5), elapsed
    assert c.heartbeats >= 1


def test_no_heart_beat_header_means_none(gw, broker):
    """No heart-beat header is 0,0: CONNECTED states our configured offer, and nothing is
    sent or enforced (the gw fixture offers 300,300)."""
    c = StompClient(gw.ws_url)
    c.send_frame("CONNECT", {"accept-version": "1.2", "login": broker.user,
                             "passcode": broker.password})
    f = c.expect("CONNECTED")
    assert f["heart-beat"] == "300,300"
    with pytest.raises(websocket.WebSocketTimeoutException):
        c.recv_msg(timeout=1.2)  # 4 x 300 ms: neither heart-beats nor a timeout ERROR
    assert c.heartbeats == 0
    c.send_frame("DISCONNECT", {"receipt": "bye"})
    assert c.expect("RECEIPT")["receipt-id"] == "bye"


def test_disconnect_with_receipt(gw, broker):
    c = connected_client(gw, broker)
    c.send_frame("DISCONNECT", {"receipt": "r-77"})
    assert c.expect("RECEIPT")["receipt-id"] == "r-77"
    with pytest.raises(Closed) as e:
        c.recv_msg()
    assert e.value.code == 1000


def test_disconnect_without_receipt(gw, broker):
    c = connected_client(gw, broker)
    c.send_frame("DISCONNECT")
    with pytest.raises(Closed) as e:
        c.recv_msg()
    assert e.value.code == 1000


ERROR_CASES = [
    # malformed frames (a required header missing or invalid): 1002
    ("missing destination", "SUBSCRIBE", {"id": "1"}, "destination", 1002),
    ("missing id", "SUBSCRIBE", {"destination": "/queue/q"}, "id", 1002),
    ("bad ack", "SUBSCRIBE", {"id": "1", "destination": "/queue/q", "ack": "sometimes"}, "ack",
     1002),
    # well-formed frames the session or broker refuses: a normal ERROR, 1000
    ("unsubscribe unknown", "UNSUBSCRIBE", {"id": "nope"}, "subscription", 1000),
    ("commit unknown tx", "COMMIT", {"transaction": "t9"}, "transaction", 1000),
    ("bad destination", "SEND", {"destination": "/nowhere/x"}, "destination", 1000),
    ("unknown command", "FROB", {}, "command", 1002),
]


@pytest.mark.parametrize("what,cmd,headers,word,code", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_error_paths_close_the_connection(gw, broker, what, cmd, headers, word, code):
    c = connected_client(gw, broker)
    headers = dict(headers, receipt="rx")
    c.send_frame(cmd, headers)
    f, close_code = c.expect_error_and_close()
    assert word in f["message"].lower() or word in f.body.decode().lower(), f
    if cmd != "FROB":
        assert f["receipt-id"] == "rx"
    assert close_code == code


def test_oversized_frame_error_1009(stompgate, broker):
    gw = stompgate(stomp_max_body="1K")
    c = connected_client(gw, broker)
    c.send_frame("SEND", {"destination": "/queue/big"}, "x" * 5000, content_length=True)
    f, code = c.expect_error_and_close()
    assert code == 1009


def test_too_many_headers(stompgate, broker):
    gw = stompgate(stomp_max_headers=8)
    c = connected_client(gw, broker)
    c.send_frame("SEND", {f"h{i}": "v" for i in range(20)} | {"destination": "/queue/x"}, "x")
    f, code = c.expect_error_and_close()
    assert f.get("message")


def test_frames_split_and_batched(gw, broker):
    """One frame over several WebSocket messages, several frames in one message."""
    c = StompClient(gw.ws_url)
    connect = f"CONNECT\naccept-version:1.2\nlogin:{broker.user}\npasscode:{broker.password}\n\n\x00"
    for i in range(0, len(connect), 7):
        c.send_raw(connect[i:i + 7])
    c.expect("CONNECTED")
    c.version = "1.2"
    c.send_raw("BEGIN\ntransaction:a\nreceipt:1\n\n\x00\nBEGIN\ntransaction:b\nreceipt:2\n\n\x00")
    assert [c.expect("RECEIPT")["receipt-id"] for _ in range(2)] == ["1", "2"]


def test_binary_websocket_frames_accepted(gw, broker):
    c = StompClient(gw.ws_url)
    c.send_raw(f"CONNECT\naccept-version:1.2\nlogin:{broker.user}\npasscode:{broker.password}\n\n\x00",
               binary=True)
    c.expect("CONNECTED")


def test_invalid_escape_in_1_2(gw, broker):
    c = connected_client(gw, broker)
    c.send_raw("SEND\ndestination:/queue/a\\tb\n\nx\x00")
    f, code = c.expect_error_and_close()
    assert code == 1002
