"""Overload (issue 9): an open-loop AMQP publisher offers far more than the gateway can
deliver. The gateway keeps delivering, stays within memory_max, handles a subscriber that
stops reading by its policy, and gives the memory back once the flood is over.

These tests check bounds and liveness, never speed (speed is `make bench`)."""

import os
import re
import subprocess
import sys
import threading
import time

import websocket

from sgtest import REPO, http_get, scaled, wait_for
from stompc import Closed, connected_client

PY = "/usr/bin/python3"
MiB = 1 << 20

# an open-loop publisher: a fixed rate that does not wait for anybody
_FLOOD = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from amqpc import AmqpClient
from sgtest import Broker
from pathlib import Path
broker = Broker(Path(sys.argv[2]))
rate, seconds, size, key = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
body = b"f" * size
with AmqpClient(broker) as a:
    t0 = time.monotonic()
    n = 0
    while True:
        now = time.monotonic() - t0
        if now >= seconds:
            break
        due = int(now * rate)
        while n < due:
            a.publish("amq.topic", key, body)
            n += 1
        time.sleep(0.002)
print(n)
"""


def _rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def _metric(gw, name):
    body = http_get(gw, "/metrics")[2].decode()
    m = re.search(rf"^stompgate_{name} (-?\d+)$", body, re.M)
    assert m, body
    return int(m.group(1))


class Reader(threading.Thread):
    """Reads MESSAGEs as fast as Python can and counts them per second."""

    def __init__(self, c):
        super().__init__(daemon=True)
        self.c, self.n, self.closed, self.stop = c, 0, None, False

    def run(self):
        while not self.stop:
            try:
                self.c.recv_msg(timeout=1)
                self.n += 1
            except websocket.WebSocketTimeoutException:
                continue
            except (Closed, OSError, websocket.WebSocketException) as e:
                self.closed = e
                return


def test_flood_beyond_capacity_keeps_delivering_within_memory_max(stompgate, broker):
    # the per-session bounds alone would let 11 subscribers hold 11 x 2 MiB: the budget
    # (16 MiB) is what binds
    budget = 16 * MiB
    gw = stompgate(workers=1, memory_max=budget, output_buffer_max="4M",
                   slow_consumer_timeout_ms=3000)
    key = f"flood.{os.getpid()}.{time.monotonic_ns()}"
    readers = []
    for i in range(10):
        c = connected_client(gw, broker)
        c.send_frame("SUBSCRIBE", {"destination": f"/topic/{key}", "id": "s", "receipt": "r"})
        assert c.expect("RECEIPT")["receipt-id"] == "r"
        readers.append(Reader(c))
    # a subscriber that never reads: the slow-consumer policy must deal with it
    stuck = connected_client(gw, broker)
    stuck.send_frame("SUBSCRIBE", {"destination": f"/topic/{key}", "id": "s", "receipt": "r"})
    assert stuck.expect("RECEIPT")["receipt-id"] == "r"
    rss0 = _rss_kib(gw.pid)
    for r in readers:
        r.start()
    # 4,000 msg/s of 1 KiB for 10 s to 11 subscribers: far more than Python clients read
    seconds = 10
    pub = subprocess.Popen([PY, "-c", _FLOOD, str(REPO / "tests" / "integration"),
                            str(broker.dir), "4000", str(seconds), "1024", key],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples = []  # (delivered so far, RSS KiB, buffered bytes)
    try:
        for _ in range(seconds):
            time.sleep(1)
            samples.append((sum(r.n for r in readers), _rss_kib(gw.pid),
                            _metric(gw, "buffered_bytes")))
    finally:
        out, err = pub.communicate(timeout=scaled(30))
    assert pub.returncode == 0, err
    offered = int(out.strip())
    assert offered > 20000, f"the publisher managed only {offered} messages"

    delivered = [s[0] for s in samples]
    # every second somebody got messages: no stall
    gains = [b - a for a, b in zip([0] + delivered, delivered)]
    assert all(g > 0 for g in gains), f"per-second deliveries {gains}"
    # within the budget: buffered data at most memory_max (plus what was in flight), and
    # RSS no more than the budget above where it started
    peak_rss = max(s[1] for s in samples)
    peak_buf = max(s[2] for s in samples)
    assert peak_buf <= budget + 4 * MiB, f"buffered {peak_buf} > {budget}: {samples}"
    assert peak_rss - rss0 <= budget // 1024 + 24 * 1024, f"RSS {rss0} -> {samples}"
    # the one that never read: closed as a slow consumer (ERROR, 1008; it may not get to
    # read them: the close is queued behind what its socket already holds), the others
    # unaffected
    metrics = http_get(gw, "/metrics")[2].decode()
    assert re.search(r"^stompgate_slow_consumers_total 1$", metrics, re.M), metrics
    assert not re.search(r"^stompgate_dropped_messages_total 0$", metrics, re.M), metrics
    err, ended, deadline = None, False, time.monotonic() + scaled(30)
    while time.monotonic() < deadline:
        try:
            f = stuck.recv(timeout=5)
        except (Closed, OSError, websocket.WebSocketException):
            ended = True
            break
        if f.command == "ERROR":
            err = f
    assert ended, "the stuck subscriber's connection was not closed"
    assert err is None or "slow consumer" in err["message"], err
    assert all(r.closed is None for r in readers), [r.closed for r in readers]
    # after the flood, once the clients leave, the memory goes back
    for r in readers:
        r.stop = True
    for r in readers:
        r.join(timeout=5)
        r.c.close()
    assert wait_for(lambda: _metric(gw, "buffered_bytes") == 0, scaled(10))
    assert wait_for(lambda: _rss_kib(gw.pid) < rss0 + 16 * 1024, scaled(10), interval=0.5), \
        f"RSS stayed at {_rss_kib(gw.pid)} KiB (idle {rss0})"
