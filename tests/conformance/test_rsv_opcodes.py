"""Autobahn group 3 (reserved bits) and group 4 (reserved opcodes), over ws and wss.

No extension is negotiated on /echo, so any RSV bit fails the connection with 1002
(RFC 6455 5.2), and so does any opcode 0x3-0x7 or 0xB-0xF."""

import pytest

from .util import OP_BINARY, OP_PING, OP_TEXT, echo_roundtrip, expect_close
from .wsraw import OP_CLOSE, OP_CONT, OP_PONG, close_payload, frame

RSV_NAMES = {4: "rsv1", 2: "rsv2", 1: "rsv3", 6: "rsv12", 5: "rsv13", 3: "rsv23", 7: "rsv123"}

RSV_CASES = (
    [(OP_TEXT, b"Hello, world!", rsv) for rsv in RSV_NAMES]  # 3.1, 3.2, 3.3
    + [(OP_BINARY, b"\x00\xff\xfe\xfd", rsv) for rsv in (4, 2, 1)]  # 3.5
    + [(OP_TEXT, b"", rsv) for rsv in (4, 1)]
    + [(OP_PING, b"Hello", rsv) for rsv in (4, 2, 1, 7)]  # 3.6
    + [(OP_PONG, b"Hello", rsv) for rsv in (4, 1)]
    + [(OP_CLOSE, close_payload(1000), rsv) for rsv in (4, 2, 1, 7)]  # 3.7
)
_OPNAME = {OP_TEXT: "text", OP_BINARY: "binary", OP_PING: "ping", OP_PONG: "pong", OP_CLOSE: "close"}
RSV_IDS = [f"{_OPNAME[op]}{'-empty' if not p else ''}-{RSV_NAMES[r]}" for op, p, r in RSV_CASES]


@pytest.mark.parametrize("op,data,rsv", RSV_CASES, ids=RSV_IDS)
def test_reserved_bits(target, op, data, rsv):
    """A frame with RSV bits: 1002, and nothing (no echo, no pong) before it."""
    with target.ws() as c:
        c.send_frame(op, data, rsv=rsv)
        expect_close(c, 1002)


@pytest.mark.parametrize("chop", [None, 1], ids=["one-write", "1-byte-chops"])
def test_reserved_bits_after_valid_message(target, chop):
    """3.2/3.3: valid text, text with RSV2, ping: the first is echoed, then 1002, and
    the ping is not answered."""
    data = frame(OP_TEXT, b"valid") + frame(OP_TEXT, b"rsv", rsv=2) + frame(OP_PING, b"p")
    with target.ws() as c:
        c.send(data, chop=chop, delay=0.0002 if chop else 0)
        expect_close(c, 1002, before_ok=[(OP_TEXT, b"valid")])


def test_reserved_bit_on_continuation(target):
    """RSV1 on a continuation frame (never allowed, RFC 7692 6.1 or not): 1002."""
    with target.ws() as c:
        c.send(frame(OP_TEXT, b"start", fin=False) + frame(OP_CONT, b"end", rsv=4))
        expect_close(c, 1002)


RESERVED_OPCODES = [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]


@pytest.mark.parametrize("opcode", RESERVED_OPCODES, ids=[f"op{o}" for o in RESERVED_OPCODES])
@pytest.mark.parametrize("data", [b"", b"reserved"], ids=["empty", "payload"])
def test_reserved_opcode(target, opcode, data):
    """4.1.1/4.1.2, 4.2.1/4.2.2: 1002, nothing echoed."""
    with target.ws() as c:
        c.send_frame(opcode, data)
        expect_close(c, 1002)


@pytest.mark.parametrize("opcode", RESERVED_OPCODES, ids=[f"op{o}" for o in RESERVED_OPCODES])
def test_reserved_opcode_after_valid_message(target, opcode):
    """4.1.3/4.2.3: text, reserved opcode, ping in one write: the text is echoed
    first, then 1002, no pong."""
    with target.ws() as c:
        c.send(frame(OP_TEXT, b"Hello, world!") + frame(opcode, b"x") + frame(OP_PING, b"p"))
        expect_close(c, 1002, before_ok=[(OP_TEXT, b"Hello, world!")])


@pytest.mark.parametrize("opcode", [5, 13], ids=["op5", "op13"])
def test_reserved_opcode_chopped(target, opcode):
    """4.1.4/4.2.4: the same, written one byte at a time."""
    with target.ws() as c:
        data = frame(OP_TEXT, b"Hello") + frame(opcode, b"x") + frame(OP_PING, b"p")
        c.send(data, chop=1, delay=0.0002)
        expect_close(c, 1002, before_ok=[(OP_TEXT, b"Hello")])


def test_valid_frames_still_fine(target):
    """The control case for this module: the same frames without the faults work."""
    with target.ws() as c:
        c.send(frame(OP_PONG, b"x"))
        echo_roundtrip(c, OP_TEXT, b"Hello, world!")
        echo_roundtrip(c, OP_BINARY, b"\x00\xff\xfe\xfd")
