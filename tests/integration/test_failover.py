"""Broker failover (issue 5): kill -9 RabbitMQ under 10 subscribed clients with persistent
messages in flight, restart it, and check that nothing acknowledged by a RECEIPT is lost."""

import threading
import time
import uuid

import pytest
import websocket

from sgtest import http_get, scaled, wait_for
from stompc import Closed, StompClient, connected_client


class Reader(threading.Thread):
    """Collects MESSAGE bodies per destination until stopped; records a close."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.c = client
        self.bodies = {}
        self.closed = None
        self.stop = False

    def run(self):
        while not self.stop:
            try:
                f = self.c.recv(timeout=0.3)
            except websocket.WebSocketTimeoutException:
                continue
            except Closed as e:
                self.closed = e
                return
            except Exception as e:  # noqa: BLE001 - a dead socket is a finding
                self.closed = e
                return
            if f.command == "MESSAGE":
                self.bodies.setdefault(f["destination"], []).append(f.body)


def test_kill9_broker_under_load(stompgate, broker):
    gw = stompgate(workers=2, hold_ms=90000, reconnect_max_ms=1000)
    tag = uuid.uuid4().hex[:8]
    topic, queue = f"/topic/fo.{tag}", f"/queue/fo-{tag}"
    readers = []
    for i in range(10):
        c = connected_client(gw, broker)
        for sid, dest in (("t", topic), ("q", queue)):
            c.send_frame("SUBSCRIBE", {"id": sid, "destination": dest, "receipt": sid})
            assert c.expect("RECEIPT")["receipt-id"] == sid
        readers.append(Reader(c))
    for r in readers:
        r.start()

    pub = connected_client(gw, broker)
    receipted, sent = set(), []

    def publish(n0, n1, wait):
        for i in range(n0, n1):
            body = f"p{i}"
            pub.send_frame("SEND", {"destination": queue, "persistent": "true",
                                    "receipt": body}, body)
            sent.append(body)
        if wait:
            collect(n1 - n0, 10)

    def collect(n, timeout):
        for _ in range(n):
            f = pub.recv(timeout=timeout)
            assert f.command == "RECEIPT", f
            receipted.add(f["receipt-id"])

    publish(0, 50, wait=True)                 # confirmed before the crash
    publish(50, 100, wait=False)              # in flight while the broker dies
    broker.kill9()
    publish(100, 150, wait=False)             # sent while the broker is down
    # liveness stays up, readiness reports the broker
    assert wait_for(lambda: http_get(gw, "/readyz")[0] == 503, scaled(10))
    assert http_get(gw, "/healthz")[0] == 200
    broker.start()
    collect(150 - len(receipted), 60)         # every SEND is confirmed eventually
    assert receipted == {f"p{i}" for i in range(150)}

    # /topic deliveries resume on every client: once every lost connection is back
    # (2 workers x (service + user connection)), a message published now reaches all 10
    assert wait_for(lambda: gw.log().count("re-established") >= gw.log().count(" lost: "),
                    scaled(30))
    deadline = time.monotonic() + scaled(20)
    n = 0
    while not all(topic in r.bodies for r in readers) and time.monotonic() < deadline:
        pub.send_frame("SEND", {"destination": topic, "receipt": f"after{n}"}, f"after {n}")
        assert pub.expect("RECEIPT", timeout=10)["receipt-id"] == f"after{n}"
        n += 1
        time.sleep(0.3)
    assert all(topic in r.bodies for r in readers), [r.bodies.get(topic) for r in readers]
    last = f"after {n - 1}".encode()
    assert wait_for(lambda: all(last in r.bodies[topic] for r in readers), scaled(10))

    # no message acknowledged by a RECEIPT is lost (redeliveries may duplicate)
    def all_received():
        got = set()
        for r in readers:
            got.update(b.decode() for b in r.bodies.get(queue, []))
        return receipted <= got
    assert wait_for(all_received, 30), sorted(receipted - set().union(
        *[{b.decode() for b in r.bodies.get(queue, [])} for r in readers]))

    for r in readers:
        r.stop = True
    for r in readers:
        r.join(5)
        assert r.closed is None, f"a client lost its connection: {r.closed}"
    assert wait_for(lambda: http_get(gw, "/readyz")[0] == 200, scaled(10))
    log = gw.log()
    assert "lost" in log and "re-established" in log


def test_sends_held_past_hold_ms_get_broker_unavailable(stompgate, broker):
    gw = stompgate(workers=1, hold_ms=500, reconnect_max_ms=1000)
    c = connected_client(gw, broker)
    other = connected_client(gw, broker)
    broker.kill9()
    try:
        c.send_frame("SEND", {"destination": "/queue/held-" + uuid.uuid4().hex[:6],
                              "receipt": "too-late"}, "x")
        f, code = c.expect_error_and_close(timeout=10)
        assert f["message"] == "broker unavailable"
        assert f["receipt-id"] == "too-late"
        assert code == 1013
        # a session that sent nothing is not touched by the outage
        with pytest.raises(websocket.WebSocketTimeoutException):
            other.recv(timeout=0.5)
    finally:
        broker.start()
    other.send_frame("SEND", {"destination": "/topic/after-outage", "receipt": "ok"}, "y")
    assert other.expect("RECEIPT", timeout=20)["receipt-id"] == "ok"
