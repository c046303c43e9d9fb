"""Autobahn group 6 (UTF-8 handling), over ws and wss.

The sample tables follow Markus Kuhn's "UTF-8 decoder capability and stress test"
(sections 1-5, with 5- and 6-byte forms counted as invalid, as RFC 3629 does) plus
Autobahn's own cases. Python's strict UTF-8 codec classifies every sample at import,
so a mistake in a table cannot pass for a server bug."""

import pytest

from .conftest import scale
from .util import OP_TEXT, assert_message, expect_close
from . import wsraw
from .wsraw import OP_CONT, frame

KOSME = "κόσμε".encode()  # Kuhn 1: ce ba e1 bd b9 cf 83 ce bc ce b5

VALID = {
    # Autobahn 6.2 / 6.5
    "hello-mixed": "Hello-µ@ßöäüàá-UTF-8!!".encode(),
    "kuhn-1-kosme": KOSME,
    "empty": b"",
    # Kuhn 2.1: first possible sequence of each length (1-4 bytes)
    "kuhn-2.1.1-U+0000": b"\x00",
    "kuhn-2.1.2-U+0080": b"\xc2\x80",
    "kuhn-2.1.3-U+0800": b"\xe0\xa0\x80",
    "kuhn-2.1.4-U+10000": b"\xf0\x90\x80\x80",
    # Kuhn 2.2: last possible sequence of each length
    "kuhn-2.2.1-U+007F": b"\x7f",
    "kuhn-2.2.2-U+07FF": b"\xdf\xbf",
    "kuhn-2.2.3-U+FFFF": b"\xef\xbf\xbf",
    # Kuhn 2.3: other boundary conditions
    "kuhn-2.3.1-U+D7FF": b"\xed\x9f\xbf",
    "kuhn-2.3.2-U+E000": b"\xee\x80\x80",
    "kuhn-2.3.3-U+FFFD": b"\xef\xbf\xbd",
    "kuhn-2.3.4-U+10FFFF": b"\xf4\x8f\xbf\xbf",
    # Kuhn 5.3: noncharacters are valid UTF-8
    "kuhn-5.3.1-U+FFFE": b"\xef\xbf\xbe",
    "kuhn-5.3.2-U+FFFF": b"\xef\xbf\xbf",
    "noncharacter-U+FDD0": b"\xef\xb7\x90",
    "noncharacter-U+10FFFE": b"\xf4\x8f\xbf\xbe",
    # assorted
    "all-ascii": bytes(range(128)),
    "max-2-3-4-mix": "\u07ff\uffff\U0010ffff\u0080\u0800\U00010000".encode(),
    "cjk-emoji": "漢字かなカナ😀🎉 ok".encode(),
    "bom": b"\xef\xbb\xbfBOM",
    "U+0000-inside": b"a\x00b",
}

INVALID = {
    # Kuhn 2.1.5/2.1.6 and 2.2.4-2.2.6: 5- and 6-byte forms, > U+10FFFF
    "kuhn-2.1.5-5byte": b"\xf8\x88\x80\x80\x80",
    "kuhn-2.1.6-6byte": b"\xfc\x84\x80\x80\x80\x80",
    "kuhn-2.2.4-U+1FFFFF": b"\xf7\xbf\xbf\xbf",
    "kuhn-2.2.5-5byte": b"\xfb\xbf\xbf\xbf\xbf",
    "kuhn-2.2.6-6byte": b"\xfd\xbf\xbf\xbf\xbf\xbf",
    "kuhn-2.3.5-U+110000": b"\xf4\x90\x80\x80",
    # Kuhn 3.1: unexpected continuation bytes
    "kuhn-3.1.1-80": b"\x80",
    "kuhn-3.1.2-bf": b"\xbf",
    "kuhn-3.1.3-80bf": b"\x80\xbf",
    "kuhn-3.1.9-all-continuations": bytes(range(0x80, 0xc0)),
    "lone-continuation-after-ascii": b"abc\x80def",
    "extra-continuation": b"\xc2\x80\x80",
    # Kuhn 3.2: lonely start characters followed by a space
    "kuhn-3.2.1-c0": b"\xc0 ",
    "kuhn-3.2.1-c2": b"\xc2 ",
    "kuhn-3.2.1-df": b"\xdf ",
    "kuhn-3.2.2-e0": b"\xe0 ",
    "kuhn-3.2.2-ef": b"\xef ",
    "kuhn-3.2.3-f0": b"\xf0 ",
    "kuhn-3.2.3-f7": b"\xf7 ",
    "kuhn-3.2.4-f8": b"\xf8 ",
    "kuhn-3.2.5-fc": b"\xfc ",
    # Kuhn 3.3: sequences with the last continuation byte missing, at message end
    "kuhn-3.3.1-c0": b"\xc0",
    "kuhn-3.3.2-e0-80": b"\xe0\x80",
    "kuhn-3.3.3-f0-80-80": b"\xf0\x80\x80",
    "kuhn-3.3.6-df": b"\xdf",
    "kuhn-3.3.7-ef-bf": b"\xef\xbf",
    "kuhn-3.3.8-f7-bf-bf": b"\xf7\xbf\xbf",
    "truncated-2byte-at-end": b"abc\xc2",
    "truncated-3byte-at-end": "κόσμε".encode() + b"\xe2\x82",
    "truncated-4byte-at-end": b"ok\xf0\x9f\x98",
    "truncated-4byte-1-of-4": b"ok\xf1",
    # Kuhn 3.4: concatenation of 3.3
    "kuhn-3.4-concatenated": b"\xc0\xe0\x80\xf0\x80\x80\xf8\x80\x80\x80\xfc\x80\x80\x80\x80"
                             b"\xdf\xef\xbf\xf7\xbf\xbf\xfb\xbf\xbf\xbf\xfd\xbf\xbf\xbf\xbf",
    # Kuhn 3.5: impossible bytes; F5-FF never occur
    "kuhn-3.5.1-fe": b"\xfe",
    "kuhn-3.5.2-ff": b"\xff",
    "kuhn-3.5.3-fefeffff": b"\xfe\xfe\xff\xff",
    "f5": b"\xf5\x80\x80\x80",
    "f8": b"\xf8",
    "c1-bf": b"\xc1\xbf",
    # Kuhn 4.1: overlong '/'
    "kuhn-4.1.1-c0af": b"\xc0\xaf",
    "kuhn-4.1.2-e080af": b"\xe0\x80\xaf",
    "kuhn-4.1.3-f08080af": b"\xf0\x80\x80\xaf",
    "kuhn-4.1.4-f8": b"\xf8\x80\x80\x80\xaf",
    # Kuhn 4.2: maximum overlong sequences
    "kuhn-4.2.1-c1bf": b"\xc1\xbf",
    "kuhn-4.2.2-e09fbf": b"\xe0\x9f\xbf",
    "kuhn-4.2.3-f08fbfbf": b"\xf0\x8f\xbf\xbf",
    # Kuhn 4.3: overlong NUL
    "kuhn-4.3.1-c080": b"\xc0\x80",
    "kuhn-4.3.2-e08080": b"\xe0\x80\x80",
    "kuhn-4.3.3-f0808080": b"\xf0\x80\x80\x80",
    # Kuhn 5.1: single UTF-16 surrogates
    "kuhn-5.1.1-U+D800": b"\xed\xa0\x80",
    "kuhn-5.1.2-U+DB7F": b"\xed\xad\xbf",
    "kuhn-5.1.3-U+DB80": b"\xed\xae\x80",
    "kuhn-5.1.4-U+DBFF": b"\xed\xaf\xbf",
    "kuhn-5.1.5-U+DC00": b"\xed\xb0\x80",
    "kuhn-5.1.6-U+DF80": b"\xed\xbe\x80",
    "kuhn-5.1.7-U+DFFF": b"\xed\xbf\xbf",
    # Kuhn 5.2: paired surrogates
    "kuhn-5.2.1-D800-DC00": b"\xed\xa0\x80\xed\xb0\x80",
    "kuhn-5.2.8-DBFF-DFFF": b"\xed\xaf\xbf\xed\xbf\xbf",
    # Autobahn 6.3.1: valid text with a surrogate in the middle
    "autobahn-6.3.1": b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
    # a long valid run, then one bad byte at the end (no early accept-all)
    "valid-run-then-ff": "κόσμε".encode() * 500 + b"\xff",
}

# the tables are right: Python's codec is strict RFC 3629
for _name, _b in VALID.items():
    _b.decode("utf-8")
for _name, _b in INVALID.items():
    try:
        _b.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        raise AssertionError(f"INVALID[{_name!r}] is valid UTF-8")


@pytest.mark.parametrize("data", list(VALID.values()), ids=list(VALID))
def test_valid_utf8_echoed(target, data):
    """6.2/6.5/6.7-6.11: valid text is echoed exactly."""
    with target.ws() as c:
        c.send_frame(OP_TEXT, data)
        assert_message(c.recv_message(), OP_TEXT, data)


VALID_FRAGMENTED = ["hello-mixed", "kuhn-1-kosme", "max-2-3-4-mix", "kuhn-2.3.4-U+10FFFF", "cjk-emoji"]


@pytest.mark.parametrize("name", VALID_FRAGMENTED)
def test_valid_utf8_one_byte_fragments(target, name):
    """6.2.3/6.6.x: valid text split into 1-byte fragments (so every multi-byte
    character is split across frames) is echoed as one message."""
    data = VALID[name]
    frames = [frame(OP_TEXT if i == 0 else OP_CONT, data[i:i + 1], fin=i == len(data) - 1)
              for i in range(len(data))]
    with target.ws() as c:
        c.send(b"".join(frames))
        assert_message(c.recv_message(), OP_TEXT, data)


@pytest.mark.parametrize("name", ["hello-mixed", "max-2-3-4-mix"])
def test_valid_utf8_one_byte_chops(target, name):
    """6.2.4-ish: valid text in one frame, written one byte per TCP write."""
    data = VALID[name]
    with target.ws() as c:
        c.send(frame(OP_TEXT, data), chop=1, delay=0.0002)
        assert_message(c.recv_message(), OP_TEXT, data)


@pytest.mark.parametrize("data", list(INVALID.values()), ids=list(INVALID))
def test_invalid_utf8(target, data):
    """6.3/6.8/6.10-6.21: invalid text fails the connection with 1007, nothing echoed."""
    with target.ws() as c:
        c.send_frame(OP_TEXT, data)
        expect_close(c, 1007)


INVALID_FRAGMENTED = ["autobahn-6.3.1", "kuhn-5.1.1-U+D800", "kuhn-4.1.3-f08080af",
                      "kuhn-2.3.5-U+110000", "truncated-4byte-at-end", "kuhn-3.1.1-80"]


@pytest.mark.parametrize("name", INVALID_FRAGMENTED)
def test_invalid_utf8_one_byte_fragments(target, name):
    """6.3.2-ish: the same faults spread over 1-byte fragments: 1007."""
    data = INVALID[name]
    frames = [frame(OP_TEXT if i == 0 else OP_CONT, data[i:i + 1], fin=i == len(data) - 1)
              for i in range(len(data))]
    with target.ws() as c:
        c.send(b"".join(frames))
        expect_close(c, 1007)


@pytest.mark.parametrize("parts", [
    [b"ok\xed", b"\xa0\x80"],  # surrogate split after its first byte
    [b"ok\xed\xa0", b"\x80"],
    [b"\xf4", b"\x90\x80\x80"],  # > U+10FFFF
    [b"\xe0", b"\x80\xaf"],  # overlong
    [b"\xf0\x9f", b"\x98"],  # truncated: the message ends inside a character
    [b"\xf0\x9f\x98", b""],  # ... and the final fragment is empty
    [b"\xc2", b"A"],  # lead byte, then no continuation
], ids=["surrogate-1|2", "surrogate-2|1", "over-10ffff", "overlong", "truncated-at-fin",
        "truncated-empty-fin", "missing-continuation"])
def test_invalid_sequence_split_across_fragments(target, parts):
    """An invalid sequence that spans a fragment boundary: 1007."""
    frames = [frame(OP_TEXT if i == 0 else OP_CONT, p, fin=i == len(parts) - 1)
              for i, p in enumerate(parts)]
    with target.ws() as c:
        c.send(b"".join(frames))
        expect_close(c, 1007)


def test_valid_sequence_split_across_fragments(target):
    """The control case: a 4-byte character split 2|2 and 1|3 is fine."""
    with target.ws() as c:
        for a, b in ((b"\xf0\x9f", b"\x98\x80"), (b"\xf0", b"\x9f\x98\x80")):
            c.send(frame(OP_TEXT, a, fin=False) + frame(OP_CONT, b))
            assert_message(c.recv_message(), OP_TEXT, b"\xf0\x9f\x98\x80")


def test_character_split_around_control_frames(target):
    """A character split across fragments with a ping and a pong in between: the
    control frames do not disturb the message's UTF-8 state."""
    with target.ws() as c:
        c.send(frame(OP_TEXT, b"price \xe2\x82", fin=False) + frame(0x9, b"p")
               + frame(0xA, b"unsolicited") + frame(OP_CONT, b"\xac 10"))
        f = c.recv_frame()
        assert (f.opcode, f.payload) == (0xA, b"p")
        assert_message(c.recv_message(), OP_TEXT, "price € 10".encode())


def test_invalid_binary_is_fine(target):
    """Binary messages are not UTF-8 checked."""
    data = b"".join(INVALID.values())
    with target.ws() as c:
        c.send_frame(0x2, data)
        assert_message(c.recv_message(), 0x2, data)


def test_invalid_utf8_after_valid_message(target):
    """Earlier valid messages are echoed; the bad one is not."""
    with target.ws() as c:
        c.send(frame(OP_TEXT, KOSME) + frame(OP_TEXT, b"\xed\xa0\x80") + frame(OP_TEXT, b"never"))
        expect_close(c, 1007, before_ok=[(OP_TEXT, KOSME)])


# ---- fail fast (Autobahn 6.4): the verdict comes at the offending byte, without
# waiting for the rest of the frame or message


@pytest.mark.parametrize("bad", [b"\xff", b"\xc0", b"\x80", b"\xed\xa0", b"\xf4\x90", b"\xe0\x80",
                                 b"\xf5"],
                         ids=["ff", "c0", "lone-80", "surrogate", "over-10ffff", "overlong", "f5"])
def test_fail_fast_inside_frame(target, bad):
    """A text frame announcing 1000 bytes; only 10 are sent, with the fault at index
    2: the server closes with 1007 without waiting for the other 990."""
    head = (b"ab" + bad + b"cdefghij")[:10]
    with target.ws() as c:
        c.send(frame(OP_TEXT, head, length=1000))
        cl = expect_close(c, 1007, timeout=2)
        assert cl.elapsed < scale(1.5)


def test_fail_fast_at_first_byte(target):
    with target.ws() as c:
        c.send(frame(OP_TEXT, b"\xfe", length=1000))
        expect_close(c, 1007, timeout=2)


def test_fail_fast_6_4_1(target):
    """6.4.1: fragment 1 valid, fragment 2 (not final) invalid: 1007 before the
    third fragment is sent."""
    with target.ws() as c:
        c.send(frame(OP_TEXT, KOSME, fin=False))
        c.send(frame(OP_CONT, b"\xf4\x90\x80\x80", fin=False))
        expect_close(c, 1007, timeout=2)


def test_fail_fast_6_4_2(target):
    """6.4.2: the 4-byte lead ends fragment 1, the bad byte starts fragment 2."""
    with target.ws() as c:
        c.send(frame(OP_TEXT, KOSME + b"\xf4", fin=False))
        c.send(frame(OP_CONT, b"\x90", fin=False))
        expect_close(c, 1007, timeout=2)


def test_fail_fast_6_4_3(target):
    """6.4.3/6.4.4: one frame; the valid part and the invalid bytes arrive, the rest
    of the announced payload never does."""
    with target.ws() as c:
        good = KOSME
        c.send(frame(OP_TEXT, good + b"\xf4\x90\x80\x80", length=len(good) + 4 + 100))
        expect_close(c, 1007, timeout=2)


def test_text_prefix_then_pause_is_not_fatal(target):
    """The control case for fail-fast: a valid prefix that stops in the middle of a
    character is not an error yet; the rest completes the message."""
    data = KOSME + "€".encode()
    with target.ws() as c:
        full = frame(OP_TEXT, data)
        c.send(full[:-2])  # ends after the first byte of the euro sign
        with pytest.raises(wsraw.Timeout):
            f = c.recv_frame(timeout=0.3)
            raise AssertionError(f"server answered an incomplete valid frame: {f!r}")
        c.send(full[-2:])
        assert_message(c.recv_message(), OP_TEXT, data)
