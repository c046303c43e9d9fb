"""Autobahn group 5 (fragmentation), over ws and wss."""

import pytest

from .util import OP_BINARY, OP_PING, OP_PONG, OP_TEXT, assert_message, echo_roundtrip, expect_close, payload
from .wsraw import OP_CLOSE, OP_CONT, close_payload, frame

OPS = pytest.mark.parametrize("op", [OP_TEXT, OP_BINARY], ids=["text", "binary"])


def fragments(op, parts):
    """Frames of one message split into `parts` (a list of payloads)."""
    out = []
    for i, p in enumerate(parts):
        out.append(frame(op if i == 0 else OP_CONT, p, fin=i == len(parts) - 1))
    return out


@OPS
@pytest.mark.parametrize("chop", [None, 1], ids=["one-write", "1-byte-chops"])
def test_two_fragments(target, op, chop):
    """5.3-5.5: a message in two fragments comes back as one message."""
    with target.ws() as c:
        c.send(b"".join(fragments(op, [b"fragment1", b"fragment2"])), chop=chop,
               delay=0.0002 if chop else 0)
        assert_message(c.recv_message(), op, b"fragment1fragment2")


@OPS
def test_two_fragments_separate_writes(target, op):
    with target.ws() as c:
        f1, f2 = fragments(op, [b"fragment1", b"fragment2"])
        c.send(f1)
        c.send(f2)
        assert_message(c.recv_message(), op, b"fragment1fragment2")


@OPS
@pytest.mark.parametrize("count", [3, 100, 1000], ids=["3", "100", "1000"])
def test_many_fragments(target, op, count):
    data = payload(op, count * 37, seed=count)
    parts = [data[i * 37:(i + 1) * 37] for i in range(count)]
    with target.ws() as c:
        c.send(b"".join(fragments(op, parts)))
        assert_message(c.recv_message(), op, data)


@OPS
def test_one_byte_fragments(target, op):
    """Every fragment carries one byte (text: split inside multi-byte characters)."""
    data = payload(op, 64, seed=11)
    with target.ws() as c:
        c.send(b"".join(fragments(op, [data[i:i + 1] for i in range(len(data))])))
        assert_message(c.recv_message(), op, data)


@OPS
def test_empty_fragments(target, op):
    """6.1.2/6.1.3-ish: empty fragments, data in the middle, empty final fragment."""
    with target.ws() as c:
        c.send(b"".join(fragments(op, [b"", b"", b"middle", b"", b""])))
        assert_message(c.recv_message(), op, b"middle")
        c.send(b"".join(fragments(op, [b"", b"", b""])))
        assert_message(c.recv_message(), op, b"")


@OPS
def test_64k_fragments_of_1300(target, op):
    """10.1.1-ish: 64 KiB in 1300-byte fragments."""
    data = payload(op, 65536, seed=13)
    with target.ws() as c:
        c.send(b"".join(fragments(op, [data[i:i + 1300] for i in range(0, len(data), 1300)])))
        assert_message(c.recv_message(), op, data)


@pytest.mark.parametrize("chop", [None, 1], ids=["one-write", "1-byte-chops"])
def test_ping_between_fragments(target, chop):
    """5.6/5.7: a ping between fragments is answered at once: the pong arrives
    before the echo of the message."""
    with target.ws() as c:
        f1, f2 = fragments(OP_TEXT, [b"fragment1", b"fragment2"])
        c.send(f1 + frame(OP_PING, b"ping payload") + f2, chop=chop, delay=0.0002 if chop else 0)
        f = c.recv_frame()
        assert (f.opcode, f.payload) == (OP_PONG, b"ping payload"), f
        assert_message(c.recv_message(), OP_TEXT, b"fragment1fragment2")


def test_pong_answered_before_message_completes(target):
    """5.8-ish, with the continuation held back: the pong must come while the
    message is still incomplete (not queued behind it)."""
    with target.ws() as c:
        c.send(frame(OP_TEXT, b"first half ", fin=False) + frame(OP_PING, b"now"))
        f = c.recv_frame()
        assert (f.opcode, f.payload) == (OP_PONG, b"now")
        c.send(frame(OP_CONT, b"second half"))
        assert_message(c.recv_message(), OP_TEXT, b"first half second half")


def test_pings_between_many_fragments(target):
    """5.19/5.20: pings interleaved with 5 fragments: 2 pongs, then the message."""
    with target.ws() as c:
        f = fragments(OP_TEXT, [b"fragment%d" % i for i in range(1, 6)])
        c.send(f[0] + f[1] + frame(OP_PING, b"pong1") + f[2] + f[3] + frame(OP_PING, b"pong2") + f[4])
        got = [c.recv_frame() for _ in range(2)]
        assert [(g.opcode, g.payload) for g in got] == [(OP_PONG, b"pong1"), (OP_PONG, b"pong2")]
        assert_message(c.recv_message(), OP_TEXT, b"fragment1fragment2fragment3fragment4fragment5")


def test_unsolicited_pong_between_fragments(target):
    with target.ws() as c:
        f1, f2 = fragments(OP_BINARY, [b"a", b"b"])
        c.send(f1 + frame(OP_PONG, b"ignored") + f2)
        assert_message(c.recv_message(), OP_BINARY, b"ab")


@pytest.mark.parametrize("ctl", [OP_PING, OP_PONG], ids=["ping", "pong"])
def test_fragmented_control_frame(target, ctl):
    """5.1/5.2: a control frame without FIN (and its continuation): 1002."""
    with target.ws() as c:
        c.send(frame(ctl, b"fragment1", fin=False) + frame(OP_CONT, b"fragment2"))
        expect_close(c, 1002)


def test_fragmented_close(target):
    with target.ws() as c:
        c.send(frame(OP_CLOSE, close_payload(1000), fin=False))
        expect_close(c, 1002)


@pytest.mark.parametrize("fin", [True, False], ids=["fin", "nofin"])
def test_continuation_without_start(target, fin):
    """5.9/5.10: a continuation frame with no message open: 1002."""
    with target.ws() as c:
        c.send(frame(OP_CONT, b"non-continuation payload", fin=fin))
        expect_close(c, 1002)


@pytest.mark.parametrize("fin", [True, False], ids=["fin", "nofin"])
def test_continuation_without_start_after_message(target, fin):
    """5.11/5.12-ish: after a complete message, a continuation: echo, then 1002."""
    with target.ws() as c:
        c.send(frame(OP_TEXT, b"complete") + frame(OP_CONT, b"stray", fin=fin)
               + frame(OP_TEXT, b"never"))
        expect_close(c, 1002, before_ok=[(OP_TEXT, b"complete")])


def test_continuation_after_finished_fragmented_message(target):
    """5.15: text (fragmented, finished), then continuation, then text: the first
    message is echoed, then 1002."""
    with target.ws() as c:
        c.send(b"".join(fragments(OP_TEXT, [b"fragment1", b"fragment2"]))
               + frame(OP_CONT, b"fragment3", fin=False) + frame(OP_TEXT, b"fragment4"))
        expect_close(c, 1002, before_ok=[(OP_TEXT, b"fragment1fragment2")])


@pytest.mark.parametrize("first,second", [
    (OP_TEXT, OP_TEXT), (OP_TEXT, OP_BINARY), (OP_BINARY, OP_TEXT), (OP_BINARY, OP_BINARY)],
    ids=["text-text", "text-binary", "binary-text", "binary-binary"])
@pytest.mark.parametrize("fin", [True, False], ids=["fin", "nofin"])
def test_new_message_inside_fragmented_message(target, first, second, fin):
    """5.18: a message start, then a new data frame instead of a continuation: 1002,
    and neither message is echoed."""
    with target.ws() as c:
        c.send(frame(first, b"fragment1", fin=False) + frame(second, b"fragment2", fin=fin))
        expect_close(c, 1002)


def test_fragmented_message_then_next_message(target):
    """After a fragmented message completes, a new message starts normally."""
    with target.ws() as c:
        c.send(b"".join(fragments(OP_TEXT, [b"a", b"b", b"c"])) + frame(OP_BINARY, b"next"))
        assert_message(c.recv_message(), OP_TEXT, b"abc")
        assert_message(c.recv_message(), OP_BINARY, b"next")
        echo_roundtrip(c)
