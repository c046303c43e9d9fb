"""Assertions and payload generators shared by the conformance tests."""

import functools
import random

from .conftest import scale
from .wsraw import OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT

__all__ = ["OP_BINARY", "OP_CLOSE", "OP_PING", "OP_PONG", "OP_TEXT", "utf8_text", "binary_data",
           "payload", "assert_message", "echo_roundtrip", "expect_close"]

# one character of each UTF-8 length: a, é, €, 😀
_CHARS = ["a", "\u00e9", "\u20ac", "\U0001F600", "z", "\u03ba", "\u6f22", "\U00010348"]


@functools.lru_cache(maxsize=64)
def utf8_text(n, seed=0):
    """Valid UTF-8 of exactly n bytes with 1-, 2-, 3- and 4-byte characters."""
    rnd = random.Random(seed)
    out, size = [], 0
    while n - size >= 4:
        ch = rnd.choice(_CHARS)
        out.append(ch)
        size += len(ch.encode())
    out.append("b" * (n - size))
    data = "".join(out).encode()
    assert len(data) == n
    return data


@functools.lru_cache(maxsize=64)
def binary_data(n, seed=0):
    return random.Random(seed).randbytes(n)


def payload(op, n, seed=0):
    return utf8_text(n, seed) if op == OP_TEXT else binary_data(n, seed)


def _short(b):
    return repr(b) if len(b) <= 60 else f"{bytes(b[:60])!r}... ({len(b)} bytes)"


def assert_message(got, op, data):
    """got == (op, data), with a readable message for big payloads."""
    gop, gdata = got
    assert gop == op, f"opcode {gop:#x}, expected {op:#x}"
    if gdata != data:
        i = next((k for k, (a, b) in enumerate(zip(gdata, data)) if a != b), min(len(gdata), len(data)))
        raise AssertionError(f"payload differs: got {len(gdata)} bytes, expected {len(data)}, "
                             f"first difference at {i}: got {_short(gdata[i:i + 16])} "
                             f"expected {_short(data[i:i + 16])}")


def echo_roundtrip(c, op=OP_TEXT, data=b"still alive"):
    """The connection still echoes."""
    c.send_frame(op, data)
    assert_message(c.recv_message(), op, data)


def expect_close(c, code, before_ok=(), timeout=5.0, eof=True):
    """The server sends close `code` (codes: an int or a tuple of accepted ints, None =
    empty close payload), with no frame before it other than `before_ok` (a list of
    (opcode, payload) the test expects first, in order), then closes TCP."""
    cl = c.expect_close(timeout=scale(timeout))
    got_before = [(f.opcode, f.payload) for f in cl.before]
    assert got_before == list(before_ok), \
        f"frames before the close: {cl.before!r}, expected {list(before_ok)!r}"
    codes = code if isinstance(code, tuple) else (code,)
    assert cl.code in codes, f"close code {cl.code} ({cl.reason!r}), expected {code}"
    if eof:
        t = c.wait_eof(timeout=scale(3))
        assert t is not None, "the server did not close TCP after its close frame"
        assert not c.buf, f"bytes after the close frame: {bytes(c.buf[:40])!r}"
    return cl
