"""Autobahn group 2 (pings and pongs) and group 7 (close handling), over ws and wss."""

import socket
import struct
import time

import pytest

from .conftest import CLOSE_TIMEOUT_MS, scale
from .util import OP_BINARY, OP_PING, OP_PONG, OP_TEXT, echo_roundtrip, expect_close, payload
from .wsraw import OP_CLOSE, OP_CONT, close_payload, frame

# ---- group 2: pings and pongs

PING_PAYLOADS = {
    "empty": b"",  # 2.1
    "text": b"Hello, world!",  # 2.2
    "binary": b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff",  # 2.3
    "125-bytes": bytes(range(125)),  # 2.4
    "invalid-utf8": b"\xff\xfe\xc0\xaf",  # a ping payload is not text: no 1007
}


@pytest.mark.parametrize("data", list(PING_PAYLOADS.values()), ids=list(PING_PAYLOADS))
def test_ping_gets_pong_with_same_payload(target, data):
    with target.ws() as c:
        c.send_frame(OP_PING, data)
        f = c.recv_frame()
        assert (f.opcode, f.fin, f.payload) == (OP_PONG, True, data)
        echo_roundtrip(c)


def test_ping_125_bytes_in_one_byte_chops(target):
    """2.6: a 125-byte ping arriving one byte per write."""
    data = bytes(range(125, 0, -1))
    with target.ws() as c:
        c.send(frame(OP_PING, data), chop=1, delay=0.0002)
        f = c.recv_frame()
        assert (f.opcode, f.payload) == (OP_PONG, data)


@pytest.mark.parametrize("op", [OP_PING, OP_PONG, OP_CLOSE], ids=["ping", "pong", "close"])
def test_control_frame_over_125_bytes(target, op):
    """2.5: control frames carry at most 125 bytes (RFC 6455 5.5): 1002, no pong."""
    data = struct.pack("!H", 1000) + b"x" * 124 if op == OP_CLOSE else b"\xfe" * 126
    with target.ws() as c:
        c.send_frame(op, data)
        expect_close(c, 1002)


def test_control_frame_126_bytes_header_only(target):
    """The verdict on an oversized ping needs only its 2-byte header."""
    with target.ws() as c:
        c.send(bytes([0x80 | OP_PING, 0x80 | 126]))
        expect_close(c, 1002)


@pytest.mark.parametrize("data", [b"", b"unsolicited"], ids=["empty", "payload"])
def test_unsolicited_pong_ignored(target, data):
    """2.7/2.8: a pong nobody asked for is ignored; the connection goes on."""
    with target.ws() as c:
        c.send_frame(OP_PONG, data)
        echo_roundtrip(c, OP_TEXT, b"after the pong")
        c.send_frame(OP_PONG, data)
        echo_roundtrip(c, OP_BINARY, b"\x00after\xff")


def test_unsolicited_pong_then_ping(target):
    """2.9: only the ping is answered."""
    with target.ws() as c:
        c.send(frame(OP_PONG, b"unsolicited") + frame(OP_PING, b"solicited"))
        f = c.recv_frame()
        assert (f.opcode, f.payload) == (OP_PONG, b"solicited")
        echo_roundtrip(c)  # and no second pong came before the echo


@pytest.mark.parametrize("chop", [None, 1], ids=["one-write", "1-byte-chops"])
def test_ten_pings_ten_pongs_in_order(target, chop):
    """2.10/2.11: 10 pings in a row get 10 pongs, in order."""
    pings = [f"ping #{i}".encode() for i in range(10)]
    with target.ws() as c:
        c.send(b"".join(frame(OP_PING, p) for p in pings), chop=chop, delay=0.0001 if chop else 0)
        got = []
        for _ in pings:
            f = c.recv_frame()
            assert f.opcode == OP_PONG, f
            got.append(f.payload)
        assert got == pings
        echo_roundtrip(c)


def test_fragmented_ping(target):
    """5.1: control frames must not be fragmented (RFC 6455 5.5): 1002, no pong."""
    with target.ws() as c:
        c.send(frame(OP_PING, b"frag", fin=False) + frame(OP_CONT, b"ment"))
        expect_close(c, 1002)


# ---- group 7: close handling


def test_close_1000_echoed_then_tcp_closed(target):
    """7.1.1: a message, then close 1000: echo, close 1000, and the server closes TCP
    (RFC 6455 7.1.1: the server closes first) within close_timeout."""
    with target.ws() as c:
        echo_roundtrip(c, OP_TEXT, b"Hello World!")
        t0 = time.monotonic()
        c.send_close(1000)
        expect_close(c, 1000, eof=False)
        assert c.wait_eof(timeout=scale(3)) is not None, "TCP still open after the close handshake"
        assert time.monotonic() - t0 <= scale(CLOSE_TIMEOUT_MS / 1000 + 0.5)


def test_close_twice(target):
    """7.1.2: a second close is ignored: one close comes back."""
    with target.ws() as c:
        c.send(frame(OP_CLOSE, close_payload(1000)) + frame(OP_CLOSE, close_payload(1001)))
        expect_close(c, 1000)


def test_ping_after_close_not_answered(target):
    """7.1.3"""
    with target.ws() as c:
        c.send(frame(OP_CLOSE, close_payload(1000)) + frame(OP_PING, b"late"))
        expect_close(c, 1000)


def test_text_after_close_ignored(target):
    """7.1.4: data after close is not echoed."""
    with target.ws() as c:
        c.send(frame(OP_CLOSE, close_payload(1000)) + frame(OP_TEXT, b"after close"))
        expect_close(c, 1000)


def test_text_after_close_separate_write(target):
    """7.1.4 with the text in a later write, after the server's close arrived."""
    with target.ws() as c:
        c.send_close(1000)
        cl = c.expect_close()
        assert cl.code == 1000 and not cl.before
        try:
            c.send_text("after close")
        except OSError:
            pass  # the server may already be gone
        assert c.wait_eof(timeout=scale(3)) is not None
        assert not c.buf, f"bytes after the close frame: {bytes(c.buf)!r}"


def test_close_inside_fragmented_message(target):
    """7.1.5: text fragment, close, continuation: the close ends it all; the
    message is never echoed."""
    with target.ws() as c:
        c.send(frame(OP_TEXT, b"fragment1", fin=False) + frame(OP_CLOSE, close_payload(1000))
               + frame(OP_CONT, b"fragment2"))
        expect_close(c, 1000)


def test_big_message_then_close_then_ping(target):
    """7.1.6: a 256 KiB message, close, ping in one write: echo, close, no pong."""
    data = payload(OP_TEXT, 262144, seed=71)
    with target.ws() as c:
        c.send(frame(OP_TEXT, data) + frame(OP_CLOSE, close_payload(1000)) + frame(OP_PING, b"x"))
        cl = c.expect_close(timeout=scale(10))
        assert [(f.opcode, len(f.payload)) for f in cl.before] == [(OP_TEXT, len(data))]
        assert cl.before[0].payload == data
        assert cl.code == 1000
        assert c.wait_eof(timeout=scale(3)) is not None


def test_close_without_payload(target):
    """7.3.1: an empty close gets a close back: empty, or 1000."""
    with target.ws() as c:
        c.send_close()
        expect_close(c, (None, 1000))


def test_close_with_one_byte_payload(target):
    """7.3.2: a 1-byte close payload is not a status code: 1002."""
    with target.ws() as c:
        c.send_frame(OP_CLOSE, b"\x03")
        expect_close(c, 1002)


@pytest.mark.parametrize("reason", [b"", b"Hello World!", b"*" * 123, "κόσμε ok".encode()],
                         ids=["no-reason", "reason", "reason-123-bytes", "utf8-reason"])
def test_close_1000_with_reason(target, reason):
    """7.3.3-7.3.5: code 1000 with a reason of up to 123 bytes is echoed as 1000."""
    with target.ws() as c:
        c.send_close(1000, reason)
        expect_close(c, 1000)


@pytest.mark.parametrize("reason", [b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
                                    b"\xff", b"ok\xc0\xaf", b"trunc\xe2\x82"],
                         ids=["surrogate", "ff", "overlong", "truncated"])
def test_close_reason_invalid_utf8(target, reason):
    """7.5.1: a close reason that is not UTF-8: 1007 (what Autobahn expects)."""
    with target.ws() as c:
        c.send_close(1000, reason)
        expect_close(c, 1007)


VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
               3000, 3999, 4000, 4999]


@pytest.mark.parametrize("code", VALID_CODES, ids=[str(c) for c in VALID_CODES])
def test_valid_close_code_echoed(target, code):
    """7.7.x: every code a peer may send is echoed."""
    with target.ws() as c:
        c.send_close(code, b"bye")
        expect_close(c, code)


INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


@pytest.mark.parametrize("code", INVALID_CODES, ids=[str(c) for c in INVALID_CODES])
def test_invalid_close_code(target, code):
    """7.9.x / 7.13.x: reserved, never-on-the-wire and out-of-range codes: 1002."""
    with target.ws() as c:
        c.send_close(code)
        expect_close(c, 1002)


def test_close_in_one_byte_chops(target):
    with target.ws() as c:
        c.send(frame(OP_CLOSE, close_payload(4321, b"chopped")), chop=1, delay=0.0002)
        expect_close(c, 4321)


def test_server_closes_tcp_within_close_timeout(target):
    """After our close (and the server's answer) we keep the socket open and silent:
    the server closes TCP well within close_timeout_ms."""
    with target.ws() as c:
        t0 = time.monotonic()
        c.send_close(1001)
        cl = c.expect_close()
        assert cl.code == 1001
        t = c.wait_eof(timeout=scale(CLOSE_TIMEOUT_MS / 1000 + 2))
        assert t is not None, "server never closed TCP"
        assert time.monotonic() - t0 <= scale(CLOSE_TIMEOUT_MS / 1000 + 0.5)


def test_close_then_client_half_close(target):
    """The client sends close and shuts down its write side at once (TCP half-close):
    the server still answers with its close frame, then closes TCP."""
    with target.ws() as c:
        c.send_close(1000, b"half")
        # socket.socket.shutdown: SSLSocket.shutdown would drop the TLS layer
        socket.socket.shutdown(c.sock, socket.SHUT_WR)
        expect_close(c, 1000)
