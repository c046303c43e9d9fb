"""The AMQP relay against the live broker (issue 5): destinations both ways, headers,
binary bodies, ack modes, transactions, confirmed receipts, temp queues, shared fan-out."""

import threading
import time
import uuid

import pytest
import websocket

from sgtest import http_get, scaled
from stompc import Closed, StompClient, connected_client


@pytest.fixture
def gw(stompgate):
    return stompgate(workers=1)


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def subscribe(c, dest, sid="s1", receipt=None, **headers):
    receipt = receipt or uniq("sub")
    c.send_frame("SUBSCRIBE", {"id": sid, "destination": dest, "receipt": receipt, **headers})
    f = c.expect("RECEIPT")
    assert f["receipt-id"] == receipt
    return sid


def send(c, dest, body, receipt=True, **headers):
    h = {"destination": dest, **headers}
    r = None
    if receipt:
        r = uniq("r")
        h["receipt"] = r
    c.send_frame("SEND", h, body, content_length=isinstance(body, bytes))
    if receipt:
        f = c.expect("RECEIPT")
        assert f["receipt-id"] == r


# ---- destinations, both directions

def test_queue_stomp_to_stomp(gw, broker):
    q = uniq("q")
    sub, pub = connected_client(gw, broker), connected_client(gw, broker)
    subscribe(sub, f"/queue/{q}")
    send(pub, f"/queue/{q}", "hello queue")
    m = sub.expect("MESSAGE")
    assert m.body == b"hello queue"
    assert m["destination"] == f"/queue/{q}"
    assert m["subscription"] == "s1"
    assert m["redelivered"] == "false"
    assert m["message-id"]


def test_queue_stomp_to_amqp_and_back(gw, broker):
    q = uniq("q")
    c = connected_client(gw, broker)
    # SEND to /queue/NAME lands in the durable queue NAME (declared by a SUBSCRIBE first,
    # as with RabbitMQ's plugin)
    subscribe(c, f"/queue/{q}")
    c.send_frame("UNSUBSCRIBE", {"id": "s1", "receipt": "u"})
    c.expect("RECEIPT")
    send(c, f"/queue/{q}", "to amqp")
    assert broker.get(q) == b"to amqp"
    # and an AMQP publisher reaches a STOMP subscriber
    subscribe(c, f"/queue/{q}", sid="s2")
    broker.publish(q, "from amqp", content_type="text/plain")
    m = c.expect("MESSAGE")
    assert m.body == b"from amqp"
    assert m["content-type"] == "text/plain"


def test_amq_queue_existing_and_missing(gw, broker):
    q = uniq("amqq")
    broker.declare_queue(q)
    c = connected_client(gw, broker)
    subscribe(c, f"/amq/queue/{q}")
    send(c, f"/amq/queue/{q}", "via amq/queue")
    assert c.expect("MESSAGE").body == b"via amq/queue"
    c2 = connected_client(gw, broker)
    c2.send_frame("SUBSCRIBE", {"id": "x", "destination": "/amq/queue/does-not-exist-"
                                + uuid.uuid4().hex, "receipt": "rx"})
    f, code = c2.expect_error_and_close()
    assert "NOT_FOUND" in f["message"]
    assert f["receipt-id"] == "rx"


def test_topic_both_directions(gw, broker):
    key = uniq("t")
    sub, pub = connected_client(gw, broker), connected_client(gw, broker)
    subscribe(sub, f"/topic/{key}.*")
    send(pub, f"/topic/{key}.a", "one", receipt=False)
    m = sub.expect("MESSAGE")
    assert m.body == b"one"
    assert m["destination"] == f"/topic/{key}.a"  # the routing key it was published with
    broker.publish(f"{key}.b", "from amqp", exchange="amq.topic")
    m = sub.expect("MESSAGE")
    assert m.body == b"from amqp"
    assert m["destination"] == f"/topic/{key}.b"


def test_exchange_destinations(gw, broker):
    sub, pub = connected_client(gw, broker), connected_client(gw, broker)
    key = uniq("k")
    subscribe(sub, f"/exchange/amq.direct/{key}")
    send(pub, f"/exchange/amq.direct/{key}", "direct")
    assert sub.expect("MESSAGE").body == b"direct"
    subscribe(sub, "/exchange/amq.fanout", sid="s2")
    send(pub, "/exchange/amq.fanout", "fanout")
    m = sub.expect("MESSAGE")
    assert m.body == b"fanout" and m["subscription"] == "s2"


def test_send_to_missing_exchange_is_an_error(gw, broker):
    c = connected_client(gw, broker)
    c.send_frame("SEND", {"destination": "/exchange/no-such-ex-" + uuid.uuid4().hex + "/k",
                          "receipt": "rr"}, "x")
    f, _ = c.expect_error_and_close()
    assert "NOT_FOUND" in f["message"]
    assert f["receipt-id"] == "rr"


@pytest.mark.parametrize("dest", ["/bogus/x", "/queue/", "/queue/a/b", "/temp-queue/x"])
def test_invalid_destination_names_it(gw, broker, dest):
    c = connected_client(gw, broker)
    c.send_frame("SEND", {"destination": dest}, "x")
    f, _ = c.expect_error_and_close()
    assert dest in f["message"]


# ---- headers and bodies

def test_header_round_trip(gw, broker):
    q = uniq("hq")
    sub, pub = connected_client(gw, broker), connected_client(gw, broker)
    subscribe(sub, f"/queue/{q}")
    hdrs = {
        "content-type": "application/json", "content-encoding": "identity",
        "persistent": "true", "priority": "5", "correlation-id": "corr-1",
        "reply-to": "/queue/answers", "expiration": "60000", "amqp-message-id": "mid-9",
        "type": "greeting", "app-id": "tests", "timestamp": "1700000000",
        "x-custom": "custom value", "with:colon": "a\\b\nc",
    }
    send(pub, f"/queue/{q}", '{"a":1}', **hdrs)
    m = sub.expect("MESSAGE")
    for k, v in hdrs.items():
        assert m.get(k) == v, (k, m.headers)
    assert m["content-length"] == "7"


def test_binary_body_with_nuls(gw, broker):
    q = uniq("bq")
    sub, pub = connected_client(gw, broker), connected_client(gw, broker)
    subscribe(sub, f"/queue/{q}")
    body = bytes(range(256)) * 4 + b"\x00\x00end"
    send(pub, f"/queue/{q}", body)
    op, data = None, None
    sub.ws.settimeout(scaled(5))
    op, data = sub.ws.recv_data()
    assert op == websocket.ABNF.OPCODE_BINARY  # not valid UTF-8: a binary message
    from stompc import parse_frame
    m = parse_frame(data)
    assert m.body == body
    assert m["content-length"] == str(len(body))


# ---- acks

def drain_messages(c, n, timeout=5):
    return [c.expect("MESSAGE", timeout) for _ in range(n)]


@pytest.mark.parametrize("mode", ["client", "client-individual"])
def test_ack_modes_and_redelivery(gw, broker, mode):
    q = uniq("aq")
    pub = connected_client(gw, broker)
    sub = connected_client(gw, broker)
    subscribe(sub, f"/queue/{q}", ack=mode)
    for i in range(3):
        send(pub, f"/queue/{q}", f"m{i}")
    ms = drain_messages(sub, 3)
    assert [m.body for m in ms] == [b"m0", b"m1", b"m2"]
    assert all(m["ack"] for m in ms)
    sub.send_frame("ACK", {"id": ms[1]["ack"], "receipt": "a1"})
    sub.expect("RECEIPT")
    sub.close()
    # what was not acknowledged comes back, redelivered
    again = connected_client(gw, broker)
    subscribe(again, f"/queue/{q}", ack="client-individual")
    expected = [b"m2"] if mode == "client" else [b"m0", b"m2"]
    got = drain_messages(again, len(expected))
    assert sorted(m.body for m in got) == expected
    assert all(m["redelivered"] == "true" for m in got)
    with pytest.raises(websocket.WebSocketTimeoutException):
        again.recv(timeout=0.7)


def test_nack_requeues(gw, broker):
    q = uniq("nq")
    c = connected_client(gw, broker)
    subscribe(c, f"/queue/{q}", ack="client-individual")
    send(c, f"/queue/{q}", "nack me")
    m = c.expect("MESSAGE")
    c.send_frame("NACK", {"id": m["ack"]})
    m2 = c.expect("MESSAGE")
    assert m2.body == b"nack me" and m2["redelivered"] == "true"
    c.send_frame("ACK", {"id": m2["ack"], "receipt": "ok"})
    c.expect("RECEIPT")


def test_ack_1_1_uses_message_id(gw, broker):
    q = uniq("a11")
    c = StompClient(gw.ws_url, subprotocols=["v11.stomp"])
    c.connect(broker.user, broker.password, version="1.1")
    subscribe(c, f"/queue/{q}", ack="client")
    send(c, f"/queue/{q}", "x")
    m = c.expect("MESSAGE")
    assert "ack" not in m.headers
    c.send_frame("ACK", {"message-id": m["message-id"], "subscription": "s1", "receipt": "k"})
    c.expect("RECEIPT")


def test_unknown_ack_id_is_an_error(gw, broker):
    c = connected_client(gw, broker)
    c.send_frame("ACK", {"id": "no-such-id", "receipt": "x"})
    f, _ = c.expect_error_and_close()
    assert "ack" in f["message"]


# ---- transactions

def test_transaction_commit_and_abort(gw, broker):
    q = uniq("tq")
    sub, pub = connected_client(gw, broker), connected_client(gw, broker)
    subscribe(sub, f"/queue/{q}")
    pub.send_frame("BEGIN", {"transaction": "t1"})
    pub.send_frame("SEND", {"destination": f"/queue/{q}", "transaction": "t1"}, "in tx 1")
    pub.send_frame("SEND", {"destination": f"/queue/{q}", "transaction": "t1"}, "in tx 2")
    pub.send_frame("BEGIN", {"transaction": "t2"})
    pub.send_frame("SEND", {"destination": f"/queue/{q}", "transaction": "t2"}, "aborted")
    pub.send_frame("ABORT", {"transaction": "t2", "receipt": "ab"})
    pub.expect("RECEIPT")
    with pytest.raises(websocket.WebSocketTimeoutException):
        sub.recv(timeout=0.7)  # nothing before COMMIT
    pub.send_frame("COMMIT", {"transaction": "t1", "receipt": "cm"})
    assert pub.expect("RECEIPT")["receipt-id"] == "cm"
    assert [m.body for m in drain_messages(sub, 2)] == [b"in tx 1", b"in tx 2"]
    with pytest.raises(websocket.WebSocketTimeoutException):
        sub.recv(timeout=0.7)  # the aborted one never comes


def test_transactional_ack(gw, broker):
    q = uniq("tack")
    c = connected_client(gw, broker)
    subscribe(c, f"/queue/{q}", ack="client-individual")
    send(c, f"/queue/{q}", "tx-acked")
    m = c.expect("MESSAGE")
    c.send_frame("BEGIN", {"transaction": "ta"})
    c.send_frame("ACK", {"id": m["ack"], "transaction": "ta"})
    c.send_frame("ABORT", {"transaction": "ta", "receipt": "ab"})
    c.expect("RECEIPT")
    c.close()  # the ack was aborted: the message comes back
    c2 = connected_client(gw, broker)
    subscribe(c2, f"/queue/{q}")
    assert c2.expect("MESSAGE").body == b"tx-acked"


# ---- receipts mean the broker has it

def test_receipt_only_after_confirm(gw, broker):
    q = uniq("cq")
    c = connected_client(gw, broker)
    subscribe(c, f"/queue/{q}")
    c.send_frame("UNSUBSCRIBE", {"id": "s1", "receipt": "u"})
    c.expect("RECEIPT")
    for i in range(20):
        send(c, f"/queue/{q}", f"p{i}", persistent="true")
    # every RECEIPT'd message is in the queue: read them straight from the broker
    out = broker.amqp("amqp-consume", f"--queue={q}", "--count=20", "cat", timeout=15).stdout
    assert out == b"".join(f"p{i}".encode() for i in range(20))


def test_send_to_missing_queue_with_receipt_is_an_error(gw, broker):
    # /amq/queue: a SEND to /queue/NAME declares NAME, as the plugin does
    # (test_plugin_compat.py::test_send_queue_declares_durable_queue)
    c = connected_client(gw, broker)
    c.send_frame("SEND", {"destination": "/amq/queue/nobody-declared-" + uuid.uuid4().hex,
                          "receipt": "lost"}, "x")
    f, _ = c.expect_error_and_close()
    assert f["receipt-id"] == "lost"
    assert "route" in f["message"]


# ---- temp queues

def test_temp_queue_request_reply(gw, broker):
    svc = uniq("rpc")
    server, client = connected_client(gw, broker), connected_client(gw, broker)
    subscribe(server, f"/queue/{svc}")
    send(client, f"/queue/{svc}", "ping?", **{"reply-to": "/temp-queue/answers"})
    req = server.expect("MESSAGE")
    reply_to = req["reply-to"]
    assert reply_to.startswith("/reply-queue/")
    send(server, reply_to, "pong!")
    rep = client.expect("MESSAGE")
    assert rep.body == b"pong!"
    assert rep["destination"] == "/temp-queue/answers"


# ---- shared fan-out

def test_shared_fanout_50_subscribers_exactly_once(gw, broker):
    key = uniq("fan")
    subs = []
    for i in range(50):
        c = connected_client(gw, broker)
        subscribe(c, f"/topic/{key}", sid=f"sub{i}")
        subs.append(c)
    # one upstream queue for the 50 subscriptions of this worker
    qs = broker.ctl("list_queues", "name", "--no-table-headers", "--quiet").stdout
    ours = [q for q in qs.split() if q.startswith("stompgate-")]
    assert len(ours) >= 1
    pub = connected_client(gw, broker)
    for i in range(20):
        send(pub, f"/topic/{key}", f"n{i}", receipt=(i == 19))
    for i, c in enumerate(subs):
        got = [c.expect("MESSAGE") for _ in range(20)]
        assert [m.body for m in got] == [f"n{j}".encode() for j in range(20)]
        assert all(m["subscription"] == f"sub{i}" for m in got)
        with pytest.raises(websocket.WebSocketTimeoutException):
            c.recv(timeout=0.05)
    status, _, body = http_get(gw, "/metrics")
    assert status == 200 and b"stompgate_stomp_sessions 51" in body


def test_shared_upstream_is_one_queue(gw, broker):
    key = uniq("one")
    before = set(broker.ctl("list_queues", "name", "--no-table-headers", "--quiet").stdout.split())
    cs = [connected_client(gw, broker) for _ in range(5)]
    for i, c in enumerate(cs):
        subscribe(c, f"/topic/{key}", sid=f"x{i}")
    after = set(broker.ctl("list_queues", "name", "--no-table-headers", "--quiet").stdout.split())
    new = [q for q in after - before if q.startswith("stompgate-")]
    assert len(new) == 1, new


def test_deleted_queue_ends_subscription_with_error(gw, broker):
    q = uniq("delq")
    c = connected_client(gw, broker)
    subscribe(c, f"/queue/{q}")
    broker.delete_queue(q)
    f, code = c.expect_error_and_close()
    assert "cancelled by the broker" in f["message"] and q in f["message"]


def test_receipts_keep_frame_order(gw, broker):
    """A RECEIPT means every earlier frame was processed: after the receipt of the last
    SUBSCRIBE, the earlier subscriptions (each set up on its own broker channel) are all
    in place, so a message published at once reaches every one of them."""
    c, pub = connected_client(gw, broker), connected_client(gw, broker)
    for round_ in range(15):
        keys = [uniq(f"ord{round_}") for _ in range(6)]
        for i, k in enumerate(keys[:-1]):
            dest = f"/topic/{k}" if i % 2 else f"/queue/{k}"
            c.send_frame("SUBSCRIBE", {"id": k, "destination": dest})
        c.send_frame("SUBSCRIBE", {"id": keys[-1], "destination": f"/topic/{keys[-1]}",
                                   "receipt": f"last{round_}"})
        assert c.expect("RECEIPT")["receipt-id"] == f"last{round_}"
        for i, k in enumerate(keys[:-1]):
            dest = f"/topic/{k}" if i % 2 else f"/queue/{k}"
            pub.send_frame("SEND", {"destination": dest}, k)
        got = sorted(c.expect("MESSAGE").body.decode() for _ in keys[:-1])
        assert got == sorted(keys[:-1])
