"""Autobahn group 1 (framing: text and binary messages of every length encoding) and
group 10 (misc: limits, unmasked frames, bad lengths). Every test runs over ws
(workers 1 and 2) and wss (RSA and ECDSA): see the `target` fixture."""

import struct

import pytest

from .conftest import MAX_MESSAGE, scale
from .util import OP_BINARY, OP_PING, OP_TEXT, assert_message, echo_roundtrip, expect_close, payload
from .wsraw import OP_CLOSE, OP_CONT, frame

OPS = pytest.mark.parametrize("op", [OP_TEXT, OP_BINARY], ids=["text", "binary"])

# 7-bit lengths 0/125, 16-bit 126/127/128/65535, 64-bit 65536 and 1 MB
SIZES = [0, 125, 126, 127, 128, 65535, 65536, 1_000_000]


# ---- group 1: framing


@OPS
@pytest.mark.parametrize("n", SIZES, ids=[f"len{n}" for n in SIZES])
def test_echo_sizes(target, op, n):
    """1.1.1-1.1.6, 1.2.1-1.2.6 and a 1 MB message: echoed exactly, same opcode
    (the reader also checks the server used the minimal length encoding)."""
    data = payload(op, n, seed=n)
    with target.ws() as c:
        c.send_frame(op, data)
        assert_message(c.recv_message(timeout=scale(10)), op, data)


@OPS
def test_echo_exactly_max_message(target, op):
    """A message of exactly max_message bytes is accepted (the limit is inclusive)."""
    data = payload(op, MAX_MESSAGE, seed=7)
    with target.ws() as c:
        c.send_frame(op, data)
        assert_message(c.recv_message(timeout=scale(10)), op, data)


CHOP_SIZES = [0, 1, 125, 126, 127, 128]


@OPS
@pytest.mark.parametrize("n", CHOP_SIZES, ids=[f"len{n}" for n in CHOP_SIZES])
def test_echo_one_byte_chops(target, op, n):
    """1.1.8-ish: the frame (header, key and payload) arrives one byte per TCP write."""
    data = payload(op, n, seed=n + 1)
    with target.ws() as c:
        c.send(frame(op, data), chop=1, delay=0.0002)
        assert_message(c.recv_message(), op, data)


@OPS
def test_echo_64k_in_997_byte_chops(target, op):
    """1.1.8/1.2.8: 64 KiB (64-bit length form) written in 997-byte chops."""
    data = payload(op, 65536, seed=3)
    with target.ws() as c:
        c.send(frame(op, data), chop=997)
        assert_message(c.recv_message(timeout=scale(10)), op, data)


@OPS
@pytest.mark.parametrize("form", [16, 64], ids=["16bit-for-5", "64bit-for-5"])
def test_non_minimal_length(target, op, form):
    """A 5-byte payload with its length in the 16- or 64-bit form. RFC 6455 5.2 asks
    senders for the minimal form without telling receivers what to do with others
    (Autobahn has no case): the server either echoes the message (with a minimal
    header, checked by the reader) or fails the connection with 1002."""
    data = payload(op, 5, seed=form)
    with target.ws() as c:
        c.send(frame(op, data, len_form=form))
        f = c.recv_frame()
        if f.opcode == OP_CLOSE:
            assert f.payload[:2] == struct.pack("!H", 1002), f
        else:
            assert (f.opcode, f.fin, f.payload) == (op, True, data)


def test_many_messages_in_one_write(target):
    """50 messages (alternating text and binary, all length forms) in a single TCP
    write are all echoed, in order."""
    msgs = []
    for i in range(50):
        op = OP_TEXT if i % 2 == 0 else OP_BINARY
        msgs.append((op, payload(op, [0, 3, 125, 126, 300, 70000][i % 6], seed=i)))
    with target.ws() as c:
        c.send(b"".join(frame(op, d) for op, d in msgs))
        for op, d in msgs:
            assert_message(c.recv_message(timeout=scale(10)), op, d)


# ---- group 10 and limits


def header64(op, length, fin=True):
    """The 10 bytes of a masked frame header with a 64-bit length, no key yet."""
    return struct.pack("!BBQ", (0x80 if fin else 0) | op, 0x80 | 127, length)


@pytest.mark.parametrize("op,length", [
    (OP_BINARY, 2 * 1024 * 1024),
    (OP_TEXT, 2 * 1024 * 1024),
    (OP_BINARY, MAX_MESSAGE + 1),
    (OP_BINARY, (1 << 63) - 1),
], ids=["binary-2MiB", "text-2MiB", "binary-max+1", "binary-2^63-1"])
def test_too_big_decided_from_header(target, op, length):
    """Only the 10-byte header of an oversized frame is sent (no key, no payload):
    the server closes with 1009 without waiting for the payload."""
    with target.ws() as c:
        c.send(header64(op, length))
        expect_close(c, 1009)


def test_too_big_after_valid_message(target):
    """A valid message is echoed; the next one, oversized, gets 1009 from its header."""
    with target.ws() as c:
        echo_roundtrip(c)
        c.send(header64(OP_BINARY, 2 * 1024 * 1024) + b"\x01\x02\x03\x04" + b"x" * 100)
        expect_close(c, 1009)


def test_fragmented_total_over_max_message(target):
    """16 fragments of 64 KiB (exactly max_message together) are accepted; the
    header of a 1-byte final continuation pushes the message over: 1009."""
    with target.ws() as c:
        chunk = payload(OP_BINARY, 65536, seed=5)
        for i in range(16):
            c.send(frame(OP_BINARY if i == 0 else OP_CONT, chunk, fin=False))
        c.send(struct.pack("!BB", 0x80 | OP_CONT, 0x80 | 1))  # header only
        expect_close(c, 1009, timeout=10)


def test_fragmented_over_max_message_big_fragments(target):
    """600 KB first fragment, then the header of a 600 KB continuation: 1009."""
    with target.ws() as c:
        c.send(frame(OP_TEXT, payload(OP_TEXT, 600_000, seed=9), fin=False))
        c.send(header64(OP_CONT, 600_000))
        expect_close(c, 1009, timeout=10)


def test_fragmented_exactly_max_message_echoed(target):
    """16 x 64 KiB fragments, the last with FIN: one 1 MiB message comes back."""
    chunk = payload(OP_BINARY, 65536, seed=6)
    with target.ws() as c:
        for i in range(16):
            c.send(frame(OP_BINARY if i == 0 else OP_CONT, chunk, fin=i == 15))
        assert_message(c.recv_message(timeout=scale(10)), OP_BINARY, chunk * 16)


@pytest.mark.parametrize("op,data", [
    (OP_TEXT, b"unmasked"),
    (OP_BINARY, b"\x00\x01\x02"),
    (OP_TEXT, b""),
    (OP_PING, b"ping"),
    (OP_CLOSE, struct.pack("!H", 1000)),
], ids=["text", "binary", "empty-text", "ping", "close"])
def test_unmasked_client_frame(target, op, data):
    """RFC 6455 5.1: a server MUST close on an unmasked client frame (1002); nothing
    is echoed or ponged."""
    with target.ws() as c:
        c.send(frame(op, data, mask=False))
        expect_close(c, 1002)


def test_unmasked_after_valid_message(target):
    with target.ws() as c:
        c.send(frame(OP_TEXT, b"first") + frame(OP_TEXT, b"second", mask=False))
        expect_close(c, 1002, before_ok=[(OP_TEXT, b"first")])


@pytest.mark.parametrize("op", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
@pytest.mark.parametrize("top", [0x80, 0xFF], ids=["top-bit", "all-ones"])
def test_64bit_length_top_bit_set(target, op, top):
    """RFC 6455 5.2: the most significant bit of a 64-bit length MUST be 0: 1002
    (not 1009), decided from the header."""
    with target.ws() as c:
        c.send(struct.pack("!BBB7s", 0x80 | op, 0x80 | 127, top, b"\x00" * 7))
        expect_close(c, 1002)
