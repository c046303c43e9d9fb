"""Backpressure (issue 5): a slow client throttles its queue consumer instead of growing the
daemon, a slow topic subscriber is dropped with ERROR + 1008, a blocked broker holds SENDs."""

import time
import uuid

import pytest
import websocket

from sgtest import scaled, wait_for
from stompc import Closed, connected_client

BODY = "x" * 10000


def queue_depth(broker, name):
    out = broker.ctl("list_queues", "name", "messages", "--no-table-headers", "--quiet").stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == name:
            return int(parts[1])
    return None


def test_slow_queue_consumer_is_throttled_by_prefetch(stompgate, broker):
    gw = stompgate(workers=1, output_buffer_max="64K", prefetch=10)
    q = f"slow-{uuid.uuid4().hex[:8]}"
    slow = connected_client(gw, broker)
    slow.send_frame("SUBSCRIBE", {"id": "s", "destination": f"/queue/{q}", "receipt": "s"})
    slow.expect("RECEIPT")
    pub = connected_client(gw, broker)
    n = 2000  # 20 MB: far more than socket buffers and the output bound can hold
    for i in range(n):
        pub.send_frame("SEND", {"destination": f"/queue/{q}"}, BODY)
    pub.send_frame("SEND", {"destination": f"/queue/{q}", "receipt": "last"}, BODY)
    pub.expect("RECEIPT", timeout=30)
    time.sleep(1)
    depth = queue_depth(broker, q)
    # the client reads nothing: the broker keeps most messages, the daemon does not
    assert depth is not None and depth > n // 2, depth
    assert gw.rss_kb() < 200 * 1024, gw.rss_kb()
    got = 0
    while got < n + 1:
        f = slow.expect("MESSAGE", timeout=10)
        assert len(f.body) == len(BODY)
        got += 1
    assert wait_for(lambda: queue_depth(broker, q) == 0, scaled(10))


@pytest.mark.parametrize("policy", ["close", "drop"])
def test_slow_topic_subscriber_is_dropped(stompgate, broker, policy):
    # close: ERROR once over output_buffer_max; drop (the default): it misses messages
    # while half the bound behind and is closed once behind for slow_consumer_timeout_ms
    gw = stompgate(workers=1, output_buffer_max="64K", slow_consumer_policy=policy,
                   slow_consumer_timeout_ms=500)
    key = f"slowtopic.{uuid.uuid4().hex[:8]}"
    slow, fast = connected_client(gw, broker), connected_client(gw, broker)
    for c in (slow, fast):
        c.send_frame("SUBSCRIBE", {"id": "t", "destination": f"/topic/{key}", "receipt": "t"})
        c.expect("RECEIPT")
    pub = connected_client(gw, broker)
    n = 2000
    for i in range(n):
        pub.send_frame("SEND", {"destination": f"/topic/{key}"}, BODY)
        fast.expect("MESSAGE", timeout=10)  # the fast client keeps up
    # the slow one was cut off: its stream ends with ERROR and close 1008
    frames, err = 0, None
    with pytest.raises(Closed) as closed:
        while True:
            f = slow.recv(timeout=10)
            if f.command == "ERROR":
                err = f
            else:
                frames += 1
    assert err is not None and "slow consumer" in err["message"]
    assert closed.value.code == 1008
    assert frames < n
    status_metrics = __import__("sgtest").http_get(gw, "/metrics")
    assert b"stompgate_slow_consumers_total 1" in status_metrics[2]
    if policy == "drop":
        assert b"stompgate_dropped_messages_total 0" not in status_metrics[2]


def test_blocked_broker_holds_sends_until_unblocked(stompgate, broker):
    gw = stompgate(workers=1)
    q = f"blocked-{uuid.uuid4().hex[:8]}"
    c = connected_client(gw, broker)
    c.send_frame("SUBSCRIBE", {"id": "s", "destination": f"/queue/{q}", "receipt": "s"})
    c.expect("RECEIPT")
    c.send_frame("SEND", {"destination": f"/queue/{q}", "receipt": "warm"}, "warm")
    c.expect("RECEIPT")
    c.expect("MESSAGE")
    broker.ctl("set_vm_memory_high_watermark", "0")
    try:
        time.sleep(scaled(3))  # the broker's memory monitor raises the alarm
        # the broker blocks a connection when it next publishes, and says so
        c.send_frame("SEND", {"destination": f"/queue/{q}", "receipt": "held"}, "held")
        assert wait_for(lambda: "blocked publishing" in gw.log(), scaled(10))
        c.send_frame("SEND", {"destination": f"/queue/{q}", "receipt": "held2"}, "held2")
        with pytest.raises(websocket.WebSocketTimeoutException):
            c.recv(timeout=1.5)  # no RECEIPT while the broker blocks publishers
    finally:
        broker.ctl("set_vm_memory_high_watermark", "0.4")
    assert c.expect("RECEIPT", timeout=15)["receipt-id"] == "held"
    assert c.expect("RECEIPT", timeout=15)["receipt-id"] == "held2"
    assert [c.expect("MESSAGE").body for _ in range(2)] == [b"held", b"held2"]
    assert "unblocked publishing" in gw.log()
