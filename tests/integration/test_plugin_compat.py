"""Compatibility with RabbitMQ's STOMP plugin: one test per row of the table "Compatibility
with RabbitMQ's STOMP plugin" in docs/PROTOCOL.md (the row names its test). What the plugin
does is quoted there from its documentation (rabbitmq.com/docs/stomp) or, where that is
silent, from what rabbitmq_web_stomp 3.10.8 does on the test broker.
"""

import contextlib
import hashlib
import time

import pytest
import websocket

from amqpc import AmqpClient
from brokerctl import delete_queues, list_queues, queue_info, uniq
from sgtest import scaled
from stompc import Closed, StompClient, connected_client


@pytest.fixture
def gw(stompgate):
    return stompgate(workers=1)


def subscribe(c, dest, sid="s1", **headers):
    r = uniq("sub")
    c.send_frame("SUBSCRIBE", {"id": sid, "destination": dest, "receipt": r, **headers})
    f = c.expect("RECEIPT", timeout=10)
    assert f["receipt-id"] == r
    return sid


def send(c, dest, body, **headers):
    r = uniq("r")
    c.send_frame("SEND", {"destination": dest, "receipt": r, **headers}, body,
                 content_length=True)
    f = c.expect("RECEIPT", timeout=10)
    assert f["receipt-id"] == r


def expect_error(c, receipt=None, timeout=5):
    """The next frame must be an ERROR with a message (and receipt-id if given)."""
    f = c.recv(timeout)
    assert f.command == "ERROR", f"expected ERROR, got {f!r}"
    assert f.get("message"), f"ERROR without message: {f!r}"
    if receipt is not None:
        assert f.get("receipt-id") == receipt, f
    return f


def nothing_more(c, timeout=0.7):
    with pytest.raises(websocket.WebSocketTimeoutException):
        f = c.recv(timeout=timeout)
        print("unexpected:", f)


def topic_bindings(broker):
    """{queue: {routing keys it is bound with on amq.topic}}."""
    out = broker.ctl("list_bindings", "source_name", "destination_name", "routing_key",
                     "--no-table-headers", "--quiet").stdout
    table = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0] == "amq.topic":
            table.setdefault(parts[1], set()).add(parts[2])
    return table


def queue_names(broker):
    return set(list_queues(broker))


@contextlib.contextmanager
def new_queues_removed(broker):
    """Deletes every queue that appeared while the block ran (durable ones outlive the
    test otherwise)."""
    before = queue_names(broker)
    try:
        yield
    finally:
        delete_queues(broker, *(queue_names(broker) - before))


# ---------------------------------------------------------------- /queue

def test_send_queue_declares_durable_queue(gw, broker):
    q = uniq("sendfirst")
    try:
        pub = connected_client(gw, broker)
        send(pub, f"/queue/{q}", "stored")  # nobody declared q yet
        info = queue_info(broker, q, "durable", "auto_delete", "messages")
        assert info == {"durable": "true", "auto_delete": "false", "messages": "1"}, info
        sub = connected_client(gw, broker)
        subscribe(sub, f"/queue/{q}")
        m = sub.expect("MESSAGE")
        assert m.body == b"stored" and m["destination"] == f"/queue/{q}"
    finally:
        delete_queues(broker, q)


def test_send_amq_queue_missing_is_error(gw, broker):
    q = uniq("amq-missing")
    c = connected_client(gw, broker)
    c.send_frame("SEND", {"destination": f"/amq/queue/{q}", "receipt": "r-missing"}, "x")
    f = expect_error(c, "r-missing")
    assert "queue" in f["message"].lower() or "rout" in f["message"].lower(), f
    assert queue_info(broker, q) is None, "SEND to /amq/queue must not declare the queue"


def test_subscribe_queue_declares_durable(gw, broker):
    q = uniq("subdecl")
    try:
        c = connected_client(gw, broker)
        subscribe(c, f"/queue/{q}")
        info = queue_info(broker, q, "durable", "auto_delete", "exclusive")
        assert info == {"durable": "true", "auto_delete": "false", "exclusive": "false"}, info
    finally:
        delete_queues(broker, q)


def test_subscribe_amq_queue_existing_and_missing(gw, broker):
    q = uniq("amq-existing")
    with AmqpClient(broker) as a:
        a.queue_declare(q)
        a.publish("", q, b"made outside")
    try:
        c = connected_client(gw, broker)
        subscribe(c, f"/amq/queue/{q}")
        m = c.expect("MESSAGE")
        assert m.body == b"made outside"
        missing = uniq("amq-nosuch")
        c2 = connected_client(gw, broker)
        c2.send_frame("SUBSCRIBE", {"id": "m", "destination": f"/amq/queue/{missing}",
                                    "receipt": "r-sub-missing"})
        f = expect_error(c2, "r-sub-missing")
        assert "not_found" in f["message"].lower() or "no queue" in f["message"].lower(), f
        assert queue_info(broker, missing) is None
    finally:
        delete_queues(broker, q)


# ---------------------------------------------------------------- /topic, /exchange

def test_topic_fanout(gw, broker):
    key = uniq("fan").replace("-", ".")
    subs = [connected_client(gw, broker) for _ in range(2)]
    for i, s in enumerate(subs):
        subscribe(s, f"/topic/{key}", sid=f"t{i}")
    pub = connected_client(gw, broker)
    send(pub, f"/topic/{key}", "to all")
    for i, s in enumerate(subs):
        m = s.expect("MESSAGE")
        assert (m.body, m["destination"], m["subscription"]) == \
            (b"to all", f"/topic/{key}", f"t{i}")
    # no subscriber: the plugin discards the message, the SEND still gets its RECEIPT
    send(pub, f"/topic/{key}.nobody", "dropped")


def test_exchange_fanout(gw, broker):
    ex, key = uniq("sgt-ex"), uniq("k")
    with AmqpClient(broker) as a:
        a.exchange_declare(ex, "direct")
    try:
        subs = [connected_client(gw, broker) for _ in range(2)]
        for s in subs:
            subscribe(s, f"/exchange/{ex}/{key}")
        pub = connected_client(gw, broker)
        send(pub, f"/exchange/{ex}/{key}", "via exchange")
        send(pub, f"/exchange/{ex}/other-key", "not for them")
        for s in subs:
            m = s.expect("MESSAGE")
            assert (m.body, m["destination"]) == (b"via exchange", f"/exchange/{ex}/{key}")
            nothing_more(s, 0.3)
    finally:
        with AmqpClient(broker) as a:
            a.exchange_delete(ex)


# ---------------------------------------------------------------- temp and reply queues

def test_temp_queue_reply_queue_round_trip(gw, broker):
    svc = uniq("rpc")
    try:
        server, client = connected_client(gw, broker), connected_client(gw, broker)
        subscribe(server, f"/queue/{svc}")
        send(client, f"/queue/{svc}", "ping?", **{"reply-to": "/temp-queue/answers"})
        req = server.expect("MESSAGE")
        assert req["reply-to"].startswith("/reply-queue/"), req
        send(server, req["reply-to"], "pong!")
        rep = client.expect("MESSAGE")
        assert rep.body == b"pong!"
    finally:
        delete_queues(broker, svc)


def test_temp_queue_reply_subscription_id(gw, broker):
    """The plugin: the internal subscription id of a temp queue is /temp-queue/ + its name,
    which is how a client tells replies apart."""
    svc = uniq("rpcid")
    try:
        server, client = connected_client(gw, broker), connected_client(gw, broker)
        subscribe(server, f"/queue/{svc}")
        send(client, f"/queue/{svc}", "ping?", **{"reply-to": "/temp-queue/answers"})
        req = server.expect("MESSAGE")
        send(server, req["reply-to"], "pong!")
        rep = client.expect("MESSAGE")
        assert rep["subscription"] == "/temp-queue/answers", rep
    finally:
        delete_queues(broker, svc)


# ---------------------------------------------------------------- durable topic subscriptions

def test_durable_subscriptions_same_id_different_topics(gw, broker):
    """Plugin: one shared queue per distinct (subscription id, destination) pair."""
    ta, tb = uniq("dA").replace("-", "."), uniq("dB").replace("-", ".")
    with new_queues_removed(broker):
        c1, c2 = connected_client(gw, broker), connected_client(gw, broker)
        durable = {"durable": "true", "auto-delete": "false"}
        subscribe(c1, f"/topic/{ta}", sid="sub-0", **durable)
        subscribe(c2, f"/topic/{tb}", sid="sub-0", **durable)
        # no queue may carry both bindings (one shared queue would hand the messages of
        # both topics round-robin to both subscribers)
        both = [q for q, keys in topic_bindings(broker).items() if {ta, tb} <= keys]
        assert not both, f"queues bound to both topics: {both}"
        pub = connected_client(gw, broker)
        for t, tag in ((ta, "A"), (tb, "B")):
            for i in range(4):
                send(pub, f"/topic/{t}", f"{tag}{i}")
        got1 = [c1.expect("MESSAGE").body for _ in range(4)]
        got2 = [c2.expect("MESSAGE").body for _ in range(4)]
        assert got1 == [f"A{i}".encode() for i in range(4)], got1
        assert got2 == [f"B{i}".encode() for i in range(4)], got2
        nothing_more(c1, 0.3)
        nothing_more(c2, 0.3)


def test_durable_subscription_survives_disconnect(gw, broker):
    t = uniq("dur").replace("-", ".")
    with new_queues_removed(broker):
        durable = {"durable": "true", "auto-delete": "false"}
        c = connected_client(gw, broker)
        subscribe(c, f"/topic/{t}", sid="keep", **durable)
        c.close()
        time.sleep(0.3)
        pub = connected_client(gw, broker)
        send(pub, f"/topic/{t}", "while away")
        c2 = connected_client(gw, broker)
        subscribe(c2, f"/topic/{t}", sid="keep", **durable)
        assert c2.expect("MESSAGE").body == b"while away"


def test_durable_subscription_x_queue_name(gw, broker):
    t, name = uniq("xqn").replace("-", "."), uniq("sgt-named")
    try:
        c = connected_client(gw, broker)
        subscribe(c, f"/topic/{t}", sid="d1", durable="true", **{"auto-delete": "false",
                                                                  "x-queue-name": name})
        info = queue_info(broker, name, "durable", "auto_delete")
        assert info == {"durable": "true", "auto_delete": "false"}, \
            f"queue {name} (x-queue-name) not found as durable: {info}; queues now:" \
            f" {sorted(q for q in queue_names(broker) if 'stomp' in q or 'sgt' in q)}"
        pub = connected_client(gw, broker)
        send(pub, f"/topic/{t}", "named")
        assert c.expect("MESSAGE").body == b"named"
    finally:
        delete_queues(broker, name, "stomp-subscription-d1")


# ---------------------------------------------------------------- heart-beats

@pytest.mark.parametrize("client_hb,expected", [
    ("1000,1000", "1000,1000"),
    ("0,3000", "3000,0"),
    ("3000,0", "0,3000"),
    ("0,0", "0,0"),
])
def test_heartbeat_honours_client(gw, broker, client_hb, expected):
    c = StompClient(gw.ws_url)
    f = c.connect(broker.user, broker.password, heart_beat=client_hb)
    assert f.command == "CONNECTED", f
    assert f["heart-beat"] == expected


def test_heartbeat_sent_every_second(gw, broker):
    c = StompClient(gw.ws_url)
    f = c.connect(broker.user, broker.password, heart_beat="1000,1000")
    t0 = time.monotonic()
    assert f["heart-beat"] == "1000,1000", f
    while time.monotonic() - t0 < scaled(4):
        c.send_heartbeat()  # we promised one per second
        with contextlib.suppress(websocket.WebSocketTimeoutException):
            fr = c.recv(timeout=0.4)
            raise AssertionError(f"unexpected frame {fr!r}")
    times = [t0] + c.heartbeat_times
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(c.heartbeat_times) >= 3, f"{len(c.heartbeat_times)} heart-beats in 4 s"
    assert max(gaps) < scaled(1.8), f"heart-beat gaps {[round(g, 2) for g in gaps]}"


def test_heartbeat_zero_means_none(gw, broker):
    c = StompClient(gw.ws_url)
    f = c.connect(broker.user, broker.password, heart_beat="0,0")
    assert f["heart-beat"] == "0,0"
    nothing_more(c, 2.5)
    assert c.heartbeats == 0


def test_heartbeat_clamped_to_min(stompgate, broker):
    gw = stompgate(workers=1, heartbeat_min_ms=2000)
    c = StompClient(gw.ws_url)
    f = c.connect(broker.user, broker.password, heart_beat="500,500")
    assert f["heart-beat"] == "2000,2000"


def test_heartbeat_clamped_to_max(stompgate, broker):
    gw = stompgate(workers=1, heartbeat_max_ms=20000)
    c = StompClient(gw.ws_url)
    f = c.connect(broker.user, broker.password, heart_beat="60000,60000")
    assert f["heart-beat"] == "20000,20000"


# ---------------------------------------------------------------- transactions

@pytest.mark.parametrize("layout", ["missing-only", "missing-then-good"])
def test_transaction_unroutable_commit_is_error(gw, broker, layout):
    good = uniq("txgood")
    with AmqpClient(broker) as a:
        a.queue_declare(good)
    try:
        c = connected_client(gw, broker)
        c.send_frame("BEGIN", {"transaction": "tx1"})
        c.send_frame("SEND", {"destination": f"/amq/queue/{uniq('txmissing')}",
                              "transaction": "tx1"}, "lost")
        if layout == "missing-then-good":
            c.send_frame("SEND", {"destination": f"/amq/queue/{good}", "transaction": "tx1"},
                         "fine")
        c.send_frame("COMMIT", {"transaction": "tx1", "receipt": "commit-1"})
        f = c.recv(timeout=5)
        assert f.command == "ERROR", f"COMMIT of an unroutable SEND answered with {f!r}"
        assert f.get("message") and f.get("receipt-id") == "commit-1", f
    finally:
        delete_queues(broker, good)


def test_transaction_commit_receipt_means_in_queue(gw, broker):
    q = uniq("txq")
    with AmqpClient(broker) as a:
        a.queue_declare(q, durable=True)
    try:
        c = connected_client(gw, broker)
        c.send_frame("BEGIN", {"transaction": "t"})
        for i in range(3):
            c.send_frame("SEND", {"destination": f"/queue/{q}", "transaction": "t"}, f"m{i}")
        c.send_frame("COMMIT", {"transaction": "t", "receipt": "commit-ok"})
        assert c.expect("RECEIPT")["receipt-id"] == "commit-ok"
        with AmqpClient(broker) as a:  # right after the RECEIPT, all three are there
            assert [a.get(q).body for _ in range(3)] == [b"m0", b"m1", b"m2"]
    finally:
        delete_queues(broker, q)


# ---------------------------------------------------------------- sizes

@pytest.mark.parametrize("size", [1 << 20, 16 << 20], ids=["1MiB", "16MiB"])
def test_large_body_over_websocket(gw, broker, size):
    q = uniq("big")
    body = (b"0123456789abcdef" * (size // 16 + 1))[:size - 7] + b"the-end"
    try:
        sub, pub = connected_client(gw, broker), connected_client(gw, broker)
        subscribe(sub, f"/queue/{q}")
        try:
            pub.send_frame("SEND", {"destination": f"/queue/{q}", "receipt": "big"}, body,
                           content_length=True)
            f = pub.recv(timeout=30)
        except Closed as e:
            pytest.fail(f"a {size >> 20} MiB SEND closed the connection: {e}")
        assert f.command == "RECEIPT", f
        m = sub.expect("MESSAGE", timeout=30)
        assert len(m.body) == size
        assert hashlib.sha256(m.body).digest() == hashlib.sha256(body).digest()
    finally:
        delete_queues(broker, q)


# ---------------------------------------------------------------- acks, prefetch

@pytest.fixture
def queue(broker):
    q = uniq("ackq")
    with AmqpClient(broker) as a:
        a.queue_declare(q, durable=True)  # as a /queue SUBSCRIBE or SEND declares it
    yield q
    delete_queues(broker, q)


def _three(gw, broker, q, mode):
    sub = connected_client(gw, broker)
    subscribe(sub, f"/queue/{q}", ack=mode)
    pub = connected_client(gw, broker)
    for i in range(3):
        send(pub, f"/queue/{q}", f"m{i}")
    ms = [sub.expect("MESSAGE") for _ in range(3)]
    assert [m.body for m in ms] == [b"m0", b"m1", b"m2"]
    return sub, ms


def _redelivered(gw, broker, q, n):
    again = connected_client(gw, broker)
    subscribe(again, f"/queue/{q}", ack="client-individual")
    got = [again.expect("MESSAGE") for _ in range(n)]
    nothing_more(again)
    assert all(m["redelivered"] == "true" for m in got), got
    return sorted(m.body for m in got)


def test_ack_client_is_cumulative(gw, broker, queue):
    sub, ms = _three(gw, broker, queue, "client")
    sub.send_frame("ACK", {"id": ms[1]["ack"], "receipt": "a"})
    sub.expect("RECEIPT")
    sub.close()
    assert _redelivered(gw, broker, queue, 1) == [b"m2"]


def test_ack_client_individual(gw, broker, queue):
    sub, ms = _three(gw, broker, queue, "client-individual")
    sub.send_frame("ACK", {"id": ms[1]["ack"], "receipt": "a"})
    sub.expect("RECEIPT")
    sub.close()
    assert _redelivered(gw, broker, queue, 2) == [b"m0", b"m2"]


def test_nack_redelivers(gw, broker, queue):
    c = connected_client(gw, broker)
    subscribe(c, f"/queue/{queue}", ack="client-individual")
    send(c, f"/queue/{queue}", "nack me")
    m = c.expect("MESSAGE")
    assert m["redelivered"] == "false"
    c.send_frame("NACK", {"id": m["ack"]})
    m2 = c.expect("MESSAGE")
    assert (m2.body, m2["redelivered"]) == (b"nack me", "true")
    c.send_frame("ACK", {"id": m2["ack"], "receipt": "done"})
    c.expect("RECEIPT")
    assert queue_info(broker, queue, "messages") == {"messages": "0"}


def test_prefetch_count_honoured(gw, broker, queue):
    pub = connected_client(gw, broker)
    for i in range(5):
        send(pub, f"/queue/{queue}", f"p{i}")
    c = connected_client(gw, broker)
    subscribe(c, f"/queue/{queue}", ack="client-individual", **{"prefetch-count": "2"})
    first = [c.expect("MESSAGE") for _ in range(2)]
    nothing_more(c)  # two unacknowledged: the broker holds the rest back
    c.send_frame("ACK", {"id": first[0]["ack"]})
    assert c.expect("MESSAGE").body == b"p2"
    nothing_more(c)


# ---------------------------------------------------------------- headers

def test_persistent_is_delivery_mode_2(gw, broker, queue):
    pub = connected_client(gw, broker)
    send(pub, f"/queue/{queue}", "kept", persistent="true")
    send(pub, f"/queue/{queue}", "transient")
    with AmqpClient(broker) as a:
        kept, transient = a.get(queue), a.get(queue)
    assert kept.body == b"kept" and kept.props.get("delivery_mode") == 2, kept
    assert transient.props.get("delivery_mode") in (None, 1), transient
    # and the other way: a persistent AMQP message is persistent:true on MESSAGE
    with AmqpClient(broker) as a:
        a.publish("", queue, b"from amqp", {"delivery_mode": 2})
    sub = connected_client(gw, broker)
    subscribe(sub, f"/queue/{queue}")
    assert sub.expect("MESSAGE").get("persistent") == "true"


def test_custom_header_round_trip(gw, broker, queue):
    pub = connected_client(gw, broker)
    send(pub, f"/queue/{queue}", "h", **{"x-custom": "custom value", "my-header": "v:1"})
    with AmqpClient(broker) as a:
        m = a.get(queue)
    assert m.props.get("headers", {}).get("x-custom") == "custom value", m
    assert m.props["headers"].get("my-header") == "v:1", m
    with AmqpClient(broker) as a:
        a.publish("", queue, b"back", {"headers": {"x-custom": "from amqp", "n": 7}})
    sub = connected_client(gw, broker)
    subscribe(sub, f"/queue/{queue}")
    f = sub.expect("MESSAGE")
    assert (f.get("x-custom"), f.get("n")) == ("from amqp", "7"), f
