"""Runs last (marker sg_last, see conftest.py): after every other conformance test
has thrown its faults at the two main daemons, they still serve a fresh connection,
and their memory has not grown.

The RSS bound is meaningful on its own: the churn below would leak over 25 MiB if
the per-connection message buffer (or the decoder's state) of an aborted connection
were not freed, and about 13 MiB more for the completed ones, against a 20 MiB
allowance over the post-warm-up baseline."""

import pytest

from . import conftest as cf
from .util import OP_BINARY, OP_TEXT, assert_message, echo_roundtrip, expect_close, payload
from .wsraw import OP_CONT, frame

RSS_SLACK_KIB = 20 * 1024


def _is_sanitizer_build():
    try:
        data = (cf._BINARY or cf.bin_path()).read_bytes()
        return b"__asan_init" in data or b"__tsan_init" in data or b"__msan_init" in data
    except OSError:
        return False


def _churn(d):
    big = payload(OP_BINARY, 262144, seed=99)
    mid = payload(OP_TEXT, 65536, seed=98)
    for i in range(100):
        # a completed echo of 64 KiB and a clean close
        with d.ws() as c:
            c.send_frame(OP_TEXT, mid)
            assert_message(c.recv_message(), OP_TEXT, mid)
            c.send_close(1000)
            expect_close(c, 1000)
        # 256 KiB of an unfinished fragmented message, then the client vanishes
        with d.ws() as c:
            c.send(frame(OP_BINARY, big, fin=False) + frame(OP_CONT, b"more", fin=False))
            c.send_frame(0x9, b"sync")  # its pong proves the fragment was taken in
            f = c.recv_frame()
            assert (f.opcode, f.payload) == (0xA, b"sync")
        # a protocol error in the middle of a message
        with d.ws() as c:
            c.send(frame(OP_TEXT, mid[:1000], fin=False) + frame(OP_TEXT, b"x"))
            expect_close(c, 1002)
    for i in range(30):
        with d.ws(tls=True) as c:
            c.send_frame(OP_BINARY, mid)
            assert_message(c.recv_message(), OP_BINARY, mid)
        with d.ws(tls=True) as c:
            c.send(frame(OP_BINARY, big, fin=False))
            c.send_frame(0x9, b"sync")
            assert c.recv_frame().opcode == 0xA


@pytest.mark.sg_last
@pytest.mark.parametrize("fixture", ["daemon_a", "daemon_b"], ids=["main-w1-rsa", "main-w2-ecdsa"])
def test_survives_and_memory_is_bounded(request, fixture):
    d = request.getfixturevalue(fixture)
    _churn(d)
    for tls in (False, True):
        with d.ws(tls=tls) as c:
            echo_roundtrip(c, OP_TEXT, "fresh connection κόσμε".encode())
            echo_roundtrip(c, OP_BINARY, bytes(range(256)))
    rss = d.rss_kib()
    growth = rss - d.rss_baseline_kib
    print(f"{d.name}: VmRSS {d.rss_baseline_kib} KiB after warm-up, {rss} KiB now "
          f"({growth:+d} KiB)")
    if _is_sanitizer_build():
        pytest.skip(f"sanitizer build: RSS not meaningful (grew {growth} KiB); echo checked")
    assert growth < RSS_SLACK_KIB, (
        f"VmRSS grew by {growth} KiB (from {d.rss_baseline_kib} to {rss}) over the run")
