"""Bounds: every per-session and per-connection resource has a configured limit, and going
over it is an ERROR for that session, never unbounded growth or a silent stall.

Options used (stompgate(...) keyword overrides): max_prefetch, max_subscriptions,
max_pending_receipts, hold_bytes, broker_channel_max, max_tx, max_tx_bytes.
"""

import contextlib
import re
import time

import pytest
import websocket

from amqpc import AmqpClient
from brokerctl import delete_queues, list_queues, queue_info, uniq, wait_until
from sgtest import http_get, scaled, wait_for
from stompc import Closed, StompClient, connected_client


def subscribe(c, dest, sid="s1", **headers):
    r = uniq("sub")
    c.send_frame("SUBSCRIBE", {"id": sid, "destination": dest, "receipt": r, **headers})
    f = c.expect("RECEIPT", timeout=10)
    assert f["receipt-id"] == r


def frames_for(c, seconds):
    """Every frame c receives within `seconds` (stops early at an ERROR or a close);
    returns (frames, Closed or None)."""
    out, deadline = [], time.monotonic() + scaled(seconds)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return out, None
        try:
            f = c.recv(timeout=left / scaled(1))
        except websocket.WebSocketTimeoutException:
            return out, None
        except Closed as e:
            return out, e
        out.append(f)
        if f.command == "ERROR":
            return out, None


def first_error(frames):
    return next((f for f in frames if f.command == "ERROR"), None)


@pytest.fixture
def durable_queue(broker):
    q = uniq("bq")
    with AmqpClient(broker) as a:
        a.queue_declare(q, durable=True)  # as a /queue SUBSCRIBE declares it
    yield q
    delete_queues(broker, q)


# ---------------------------------------------------------------- prefetch

def _unlimited_prefetch_is_capped(gw, broker, q, n, cap):
    with AmqpClient(broker) as a:
        for i in range(n):
            a.publish("", q, f"m{i}".encode())
    c = connected_client(gw, broker)
    subscribe(c, f"/queue/{q}", ack="client", **{"prefetch-count": "0"})  # plugin: unlimited
    time.sleep(scaled(2))  # never acknowledged
    info = queue_info(broker, q, "messages_unacknowledged", "messages_ready")
    unacked = int(info["messages_unacknowledged"])
    assert 0 < unacked <= cap, f"{unacked} unacknowledged (max_prefetch {cap}): {info}"


def test_max_prefetch_caps_unlimited_prefetch(stompgate, broker, durable_queue):
    gw = stompgate(workers=1, max_prefetch=50)
    _unlimited_prefetch_is_capped(gw, broker, durable_queue, 500, 50)


def test_default_max_prefetch_is_1000(stompgate, broker, durable_queue):
    gw = stompgate(workers=1)
    _unlimited_prefetch_is_capped(gw, broker, durable_queue, 1500, 1000)


# ---------------------------------------------------------------- temp queues

TEMP_RE = re.compile(r"^(stomp-temp-queue-|amq\.gen-)")


def temp_queues(broker):
    return {q for q in list_queues(broker) if TEMP_RE.match(q)}


def _send_reply_to(c, name, receipt):
    c.send_frame("SEND", {"destination": "/topic/bounds.temp", "receipt": receipt,
                          "reply-to": f"/temp-queue/{name}"}, "req")


def test_temp_queues_count_toward_max_subscriptions(stompgate, broker):
    gw = stompgate(workers=1, max_subscriptions=3)
    c = connected_client(gw, broker)
    for name in "abc":
        _send_reply_to(c, name, f"r-{name}")
        assert c.expect("RECEIPT")["receipt-id"] == f"r-{name}"
    _send_reply_to(c, "d", "r-d")
    err = c.recv(timeout=5)
    assert err.command == "ERROR", f"a 4th temp queue over max_subscriptions=3 got {err!r}"
    assert "subscription" in err.get("message", "").lower(), err
    assert err.get("receipt-id") == "r-d", err


def test_unsubscribe_temp_queue_frees_a_slot(stompgate, broker):
    gw = stompgate(workers=1, max_subscriptions=3)
    before = temp_queues(broker)
    c = connected_client(gw, broker)
    for name in "abc":
        _send_reply_to(c, name, f"r-{name}")
        assert c.expect("RECEIPT")["receipt-id"] == f"r-{name}"
    mine = temp_queues(broker) - before
    assert len(mine) == 3, mine
    c.send_frame("UNSUBSCRIBE", {"id": "/temp-queue/a", "receipt": "u-a"})
    f = c.recv(timeout=5)
    assert f.command == "RECEIPT" and f["receipt-id"] == "u-a", f
    assert wait_until(lambda: len(temp_queues(broker) & mine) == 2, 5), \
        "the temp queue of /temp-queue/a is still on the broker"
    _send_reply_to(c, "d", "r-d")
    f = c.recv(timeout=5)
    assert f.command == "RECEIPT" and f["receipt-id"] == "r-d", f


# ---------------------------------------------------------------- a blocked broker

@contextlib.contextmanager
def broker_blocked(broker):
    """The broker's memory alarm is raised for the block (as test_backpressure does): it
    blocks every connection that publishes. Cleared afterwards, waiting until it is."""
    broker.ctl("set_vm_memory_high_watermark", "0")
    try:
        time.sleep(scaled(3))  # the memory monitor raises the alarm
        yield
    finally:
        broker.ctl("set_vm_memory_high_watermark", "0.4")
        wait_until(lambda: broker.ctl("eval", "rabbit_alarm:get_alarms().").stdout.strip()
                   == "[]", 15, interval=0.5)


def _warm(c, q, tag):
    """One confirmed SEND, so that the pooled broker connection is up."""
    c.send_frame("SEND", {"destination": f"/queue/{q}", "receipt": tag}, tag)
    assert c.expect("RECEIPT", timeout=10)["receipt-id"] == tag


def test_max_pending_receipts_while_broker_down(own_broker, stompgate_for):
    """RECEIPTs owed while the broker is away are bounded per session."""
    gw = stompgate_for(own_broker, workers=1, max_pending_receipts=5, reconnect_max_ms=1000)
    c, other = connected_client(gw, own_broker), connected_client(gw, own_broker)
    _warm(c, uniq("warm"), "warm")
    own_broker.kill9()
    assert wait_for(lambda: "lost" in gw.log(), scaled(10)), "the link never noticed"
    for i in range(10):
        c.send_frame("SEND", {"destination": "/topic/pending", "receipt": f"p{i}"}, f"p{i}")
    frames, closed = frames_for(c, 8)
    err = first_error(frames)
    assert err is not None, \
        f"10 receipts pending over max_pending_receipts=5: got {frames}, closed {closed}"
    assert "receipt" in err.get("message", "").lower(), err
    assert err["receipt-id"] == "p5", err  # the sixth: five fit
    # a session that sent nothing is not touched
    with pytest.raises(websocket.WebSocketTimeoutException):
        other.recv(timeout=0.5)


def _metric(gw, name):
    body = http_get(gw, "/metrics")[2].decode()
    m = re.search(rf"^stompgate_{name} (\d+)$", body, re.M)
    assert m, body
    return int(m.group(1))


def test_publisher_backpressure_while_blocked(stompgate, broker, durable_queue):
    """A blocked broker stops the publisher (TCP backpressure, as the plugin does), holds
    at most hold_bytes of what was read, and leaves consuming sessions alone."""
    q = durable_queue
    gw = stompgate(workers=1, hold_bytes=65536)
    c, sub = connected_client(gw, broker), connected_client(gw, broker)
    _warm(c, q, "warm")
    body = "h" * (16 << 10)
    with broker_blocked(broker):
        c.send_frame("SEND", {"destination": f"/queue/{q}", "receipt": "h0"}, body)
        assert wait_for(lambda: "blocked publishing" in gw.log(), scaled(10)), \
            "the broker never blocked the connection"
        for i in range(1, 20):
            c.send_frame("SEND", {"destination": f"/queue/{q}", "receipt": f"h{i}"}, body)
        frames, closed = frames_for(c, 3)
        assert frames == [] and closed is None, (frames, closed)
        held = _metric(gw, "held_bytes")
        assert 0 < held <= 65536 + (17 << 10), held
        # a session of the same login that does not publish still reads and is answered
        sub.send_frame("SUBSCRIBE", {"destination": f"/topic/{uniq('t')}", "id": "t",
                                     "receipt": "t"})
        assert sub.expect("RECEIPT", timeout=10)["receipt-id"] == "t"
    got = [c.expect("RECEIPT", timeout=20)["receipt-id"] for _ in range(20)]
    assert got == [f"h{i}" for i in range(20)]
    assert _metric(gw, "held_bytes") == 0


def test_session_connecting_while_blocked_is_held(stompgate, broker, durable_queue):
    q = durable_queue
    gw = stompgate(workers=1)
    first = connected_client(gw, broker)
    _warm(first, q, "warm")
    with broker_blocked(broker):
        first.send_frame("SEND", {"destination": f"/queue/{q}", "receipt": "b0"}, "b0")
        assert wait_for(lambda: "blocked publishing" in gw.log(), scaled(10)), \
            "the broker never blocked the connection"
        late = connected_client(gw, broker)  # CONNECTs while the broker is blocked
        late.send_frame("SEND", {"destination": f"/queue/{q}", "receipt": "late"}, "late")
        with pytest.raises(websocket.WebSocketTimeoutException):
            f = late.recv(timeout=1.5)
            print("while blocked:", f)
    assert late.expect("RECEIPT", timeout=15)["receipt-id"] == "late"
    assert first.expect("RECEIPT", timeout=15)["receipt-id"] == "b0"


# ---------------------------------------------------------------- channels

def test_broker_channel_max(stompgate, broker):
    gw = stompgate(workers=1, broker_channel_max=8)
    qs = [uniq("chq") for _ in range(10)]
    try:
        c = connected_client(gw, broker)
        for i, q in enumerate(qs):
            c.send_frame("SUBSCRIBE", {"id": f"s{i}", "destination": f"/queue/{q}",
                                       "receipt": f"s{i}"})
        frames, closed = frames_for(c, 5)
        receipts = [f["receipt-id"] for f in frames if f.command == "RECEIPT"]
        err = first_error(frames)
        assert err is not None, \
            f"10 subscriptions on 8 channels: no ERROR within 5 s; receipts {receipts}," \
            f" closed {closed}"
        assert err.get("message"), err
        # the ERROR names the first SUBSCRIBE without a channel: s8, since the consuming
        # connection has all 8 channels for subscriptions (publishing has a connection of
        # its own). RECEIPTs still owed for earlier ones may come before it or not at all
        # (the ERROR ends the session), but never for it or a later one, and always in
        # order
        rid = err.get("receipt-id") or ""
        assert rid == "s8", f"ERROR receipt-id {rid!r}: {err!r}"
        j = int(rid[1:])
        assert receipts == [f"s{i}" for i in range(len(receipts))] and len(receipts) <= j, \
            (receipts, err)
    finally:
        delete_queues(broker, *qs)


# ---------------------------------------------------------------- transactions

def test_max_tx(stompgate, broker):
    gw = stompgate(workers=1, max_tx=2)
    c = connected_client(gw, broker)
    for t in ("t1", "t2"):
        c.send_frame("BEGIN", {"transaction": t, "receipt": t})
        assert c.expect("RECEIPT")["receipt-id"] == t
    c.send_frame("BEGIN", {"transaction": "t3", "receipt": "t3"})
    f = c.recv(timeout=5)
    assert f.command == "ERROR", f"a 3rd BEGIN with max_tx=2 got {f!r}"
    assert "transaction" in f.get("message", "").lower() and f.get("receipt-id") == "t3", f


def test_max_tx_bytes(stompgate, broker):
    gw = stompgate(workers=1, max_tx_bytes=1024)
    c = connected_client(gw, broker)
    c.send_frame("BEGIN", {"transaction": "t", "receipt": "b"})
    assert c.expect("RECEIPT")["receipt-id"] == "b"
    c.send_frame("SEND", {"destination": "/topic/bounds.tx", "transaction": "t",
                          "receipt": "in1"}, "x" * 600)
    assert c.expect("RECEIPT")["receipt-id"] == "in1"
    c.send_frame("SEND", {"destination": "/topic/bounds.tx", "transaction": "t",
                          "receipt": "in2"}, "x" * 600)
    f, code = c.expect_error_and_close()
    assert "transaction" in f["message"].lower() and f.get("receipt-id") == "in2", f
    assert code == 1009


# ---------------------------------------------------------------- queue output

def _rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_queue_subscriber_that_stops_reading_is_throttled(stompgate, broker, durable_queue):
    """output_buffer_max holds for queue subscriptions too: a client-ack consumer whose
    client stops reading has its consumer cancelled (the rest stays ready in the broker,
    unacked ones stay unacked) and resumed once the client reads again; nothing is lost."""
    q, n, size = durable_queue, 400, 64 << 10
    gw = stompgate(workers=1, output_buffer_max=262144, max_prefetch=1000)
    with AmqpClient(broker) as a:
        for i in range(n):
            a.publish("", q, (f"{i:06d}" + "x" * (size - 6)).encode())
    c = StompClient(gw.ws_url)
    c.connect(broker.user, broker.password)
    rss0 = _rss_kib(gw.proc.pid)
    c.send_frame("SUBSCRIBE", {"destination": f"/queue/{q}", "id": "s", "ack": "client",
                               "prefetch-count": "1000", "receipt": "sub"})
    time.sleep(scaled(3))  # the client reads nothing meanwhile
    info = queue_info(broker, q, "messages_unacknowledged", "messages_ready")
    unacked, ready = int(info["messages_unacknowledged"]), int(info["messages_ready"])
    grown = _rss_kib(gw.proc.pid) - rss0
    # without the bound all 400 (26 MB) are pushed into the daemon's memory at once (the
    # prefetch window allows it); with it the consumer is cancelled at the bound, and
    # what the broker had sent by then is all the daemon holds
    assert unacked < n and ready > 0, info
    # ... and takes no more while the client stays behind
    time.sleep(scaled(2))
    again = queue_info(broker, q, "messages_unacknowledged", "messages_ready")
    assert again == info, (info, again)
    # the bound is output_buffer_max plus the one prefetch window in flight when it hit
    assert grown < 40 * 1024, f"RSS grew {grown} KiB for a client that reads nothing"
    # the client reads again: the consumer comes back and everything arrives, in order
    assert c.expect("RECEIPT", timeout=10)["receipt-id"] == "sub"
    seen = []
    while len(seen) < n:
        try:
            f = c.expect("MESSAGE", timeout=15)
        except Exception as e:
            raise AssertionError(f"after {len(seen)} messages: {e!r}; "
                                 f"{queue_info(broker, q, 'messages_unacknowledged', 'messages_ready')}")
        seen.append(int(f.body[:6]))
    assert seen == list(range(n))
    c.send_frame("ACK", {"id": f["ack"], "receipt": "ack"})
    assert c.expect("RECEIPT", timeout=10)["receipt-id"] == "ack"
    assert wait_until(lambda: queue_info(broker, q, "messages")["messages"] == "0", 10,
                      interval=0.5)
