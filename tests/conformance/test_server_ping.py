"""Server-initiated pings (RFC 6455 5.5.2/5.5.3 keep-alive): a daemon with
ping_interval_ms = 200 and pong_timeout_ms = 300, over ws and wss."""

import time

import pytest

from .conftest import scale
from .util import OP_PING, OP_PONG, OP_TEXT
from .wsraw import Timeout

INTERVAL, PONG_TIMEOUT = 0.2, 0.3


@pytest.fixture(scope="module")
def ping_daemon(start_daemon, certs):
    return start_daemon("server-pings", ping_interval_ms=int(INTERVAL * 1000),
                        pong_timeout_ms=int(PONG_TIMEOUT * 1000),
                        tls_cert=certs["ecdsa"][0], tls_key=certs["ecdsa"][1])


TLS = pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss-ecdsa"])


@TLS
def test_client_that_pongs_stays_connected(ping_daemon, tls):
    """Answering every ping with a pong of the same payload keeps the connection
    open for 1.3 s (more than 4 pong timeouts); the pings come about every 200 ms."""
    pings = []
    with ping_daemon.ws(tls=tls) as c:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.3:
            try:
                f = c.recv_frame(timeout=0.05)
            except Timeout:
                continue
            assert f.opcode == OP_PING, f"unexpected {f!r} (close code {f.payload[:2].hex()})"
            pings.append(time.monotonic() - t0)
            c.send_frame(OP_PONG, f.payload)
        assert len(pings) >= 3, f"only {len(pings)} pings in 1.3 s with ping_interval_ms = 200"
        assert pings[0] <= scale(INTERVAL + 0.3)
        # still alive and echoing
        c.send_text("still here")
        while True:
            f = c.recv_frame()
            if f.opcode == OP_PING:
                c.send_frame(OP_PONG, f.payload)
                continue
            assert (f.opcode, f.payload) == (OP_TEXT, b"still here"), f
            break


@TLS
def test_silent_client_closed_with_1001(ping_daemon, tls):
    """A client that never answers pings is closed with 1001 about pong_timeout_ms
    after the first ping (ping_interval_ms + pong_timeout_ms = 500 ms after the
    upgrade), then TCP closes."""
    t0 = time.monotonic()  # before the request: the server's clock starts later
    with ping_daemon.ws(tls=tls) as c:
        f = c.recv_frame(timeout=scale(2))
        t_ping = time.monotonic()
        assert f.opcode == OP_PING, f
        assert t_ping - t0 <= scale(INTERVAL + 0.3)
        cl = c.expect_close(timeout=scale(3))
        t_close = time.monotonic()
        assert cl.code == 1001, cl
        assert all(b.opcode == OP_PING for b in cl.before), cl.before
        # not before the deadline (a few ms of timer rounding), not much after it
        assert t_close - t0 >= INTERVAL + PONG_TIMEOUT - 0.05, f"closed {t_close - t0:.3f} s after connecting"
        assert t_close - t_ping <= scale(PONG_TIMEOUT + 0.4), f"closed {t_close - t_ping:.3f} s after the first ping"
        assert c.wait_eof(timeout=scale(3)) is not None
