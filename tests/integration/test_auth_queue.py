"""The auth queue is bounded (auth_queue_max): with the broker frozen (SIGSTOP: the kernel
still completes TCP handshakes, so every login hangs until broker_timeout_ms), CONNECTs past
the bound are refused at once with ERROR "server busy: too many logins in progress" and
WebSocket close 1013, counted in stompgate_auth_rejected_busy_total, while
stompgate_auth_queue_length shows the pending logins. Uses a broker of its own."""

import os
import re
import secrets
import signal
import time

import websocket

from sgtest import http_get, scaled, wait_for
from stompc import Closed, StompClient

BUSY = "server busy: too many logins in progress"


def metric(gw, name):
    status, _, body = http_get(gw, "/metrics")
    assert status == 200
    m = re.search(rf"^stompgate_{name} (\d+)$", body.decode(), re.M)
    assert m, f"no {name} in /metrics:\n{body.decode()}"
    return int(m.group(1))


def test_connect_refused_busy_when_logins_hang(own_broker, stompgate_for):
    gw = stompgate_for(own_broker, workers=1, auth_queue_max=2, broker_timeout_ms=4000,
                       auth_cache_ms=0)
    # the relay's own broker connection is up before the broker freezes
    assert wait_for(lambda: http_get(gw, "/readyz")[0] == 200, scaled(15))
    assert metric(gw, "auth_queue_length") == 0

    clients = [StompClient(gw.ws_url, timeout=5) for _ in range(10)]
    os.kill(own_broker.pid, signal.SIGSTOP)
    try:
        sent = []
        for c in clients:
            c.send_frame("CONNECT", {"accept-version": "1.2", "host": "/",
                                     "login": own_broker.user,
                                     "passcode": "wrong-" + secrets.token_hex(8),
                                     "heart-beat": "0,0"})
            sent.append(time.monotonic())
        busy, quiet = [], []
        for c, t0 in zip(clients, sent):
            try:
                f = c.recv(timeout=max(0.05, t0 + 1.0 - time.monotonic()))
            except websocket.WebSocketTimeoutException:  # no answer within 1 s: pending
                quiet.append(c)
                continue
            assert f.command == "ERROR", f
            assert f["message"] == BUSY, f
            try:
                extra = c.recv_msg(timeout=2)
                raise AssertionError(f"data after ERROR: {extra!r}")
            except Closed as e:
                assert e.code == 1013, (e.code, e.reason)
            busy.append(c)
        assert len(busy) >= 7, f"{len(busy)} busy refusals within 1 s"
        assert len(busy) + len(quiet) == 10
        # the logins that got a slot are still pending at the frozen broker
        assert metric(gw, "auth_queue_length") == 2
        assert metric(gw, "auth_rejected_busy_total") == len(busy)
        assert "refused: too many logins in progress" in gw.log()
    finally:
        os.kill(own_broker.pid, signal.SIGCONT)

    # the pending ones end (refused: random passcodes, or timed out) and free their slots
    for c in quiet:
        f, code = c.expect_error_and_close(timeout=15)
        assert f["message"] == "access refused", f
        assert code == 1008
    assert wait_for(lambda: metric(gw, "auth_queue_length") == 0, scaled(10))
    # and logins work again
    ok = StompClient(gw.ws_url)
    f = ok.connect(own_broker.user, own_broker.password)
    assert f.command == "CONNECTED", f
    for c in clients + [ok]:
        c.close()
