"""The stock ticker flow end to end: real stompgate, real stockd, real RabbitMQ.

A quote subscription (SUBSCRIBE /queue/stocks.SYM) puts SYM in the bridge's interest
set; the bridge sends it to stocks.work, stockd answers on stocks.result (or on a fanout
exchange, with several bridges), and every subscriber of SYM gets a MESSAGE whose JSON
body has a numeric price. Each test uses its own work and result queues, so tests
sharing the broker never answer each other's work.
"""

import json
import socket
import time
import uuid

import pytest
import websocket

from amqpc import AmqpClient
from sgtest import http_get, scaled, wait_for
from stompc import StompClient, connected_client


def _text(b):
    return b.decode(errors="replace") if isinstance(b, bytes) else b


def _names():
    tag = uuid.uuid4().hex[:10]
    return f"stocks.work.{tag}", f"stocks.result.{tag}"


@pytest.fixture
def ticker(broker, stompgate, stockd):
    """Factory: ticker(bridges=1, stockds=1, exchange=False, **gw_overrides) ->
    (gateways, stockds, names) on queues of the test's own."""

    def start(bridges=1, stockds=1, exchange=False, gw=None, sd=None):
        work, result = _names()
        gw_cfg = {"quote_work_queue": work, "quote_results_queue": result}
        sd_cfg = {"work_queue": work, "result_queue": result, "seed": 7}
        if exchange:
            gw_cfg["quote_results_exchange"] = sd_cfg["result_exchange"] = result + ".x"
        gw_cfg.update(gw or {})
        sd_cfg.update(sd or {})
        gws = [stompgate(**gw_cfg) for _ in range(bridges)]
        sds = [stockd(**sd_cfg) for _ in range(stockds)]
        for g in gws:
            if gw_cfg.get("quote_prefix", "x"):  # the ticker is on
                g.wait_log(r"ticker: consuming quote results", timeout=10)
        return gws, sds, {"work": work, "result": result, "gw": gw_cfg, "sd": sd_cfg}

    return start


# ---------------------------------------------------------------- the book's client


class BookClient:
    """Speaks exactly like the book's chapter 4 browser client (stomp_helper.js):
    subprotocol v10.stomp only, headers written as "key: value", every frame's content
    followed by "\\n" and NUL (the text "undefined" when a frame has none), and a parser
    that takes one STOMP frame per WebSocket message: split on "\\n", the first line is
    the command, headers up to the first empty line with each value the text between the
    first and second ":" (trimmed), the content the remaining lines joined, minus the
    last character."""

    def __init__(self, gw):
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{gw.port}/",
                                              subprotocols=["v10.stomp"],
                                              timeout=scaled(5))
        assert self.ws.getsubprotocol() == "v10.stomp"

    @staticmethod
    def frame(command, headers, content=None):
        out = command + "\n"
        for k, v in headers.items():
            out += f"{k}: {v}\n"
        out += "\n\n"
        out += ("undefined" if content is None else content) + "\n\0"
        return out

    @staticmethod
    def parse(data):
        lines = data.split("\n")
        command = lines[0]
        headers = {}
        i = 1
        while i < len(lines) and lines[i] != "":
            parts = lines[i].split(":")
            headers[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
            i += 1
        content = "".join(lines[i + 1:])[:-1]
        return command, headers, content

    def connect(self):
        # the book's exact bytes: CONNECT\nlogin: websockets\npasscode: rabbitmq\n\n\n\n\0
        self.ws.send("CONNECT\nlogin: websockets\npasscode: rabbitmq\n\n\n\n\0")
        return self.recv()

    def subscribe(self, sym):
        self.ws.send(f"SUBSCRIBE\ndestination: /queue/stocks.{sym}\n\n\n\n\0")

    def unsubscribe(self, sym):
        self.ws.send(f"UNSUBSCRIBE\ndestination: /queue/stocks.{sym}\n\n\n\n\0")

    def disconnect(self):
        self.ws.send("DISCONNECT\n\n\nundefined\n\0")

    def recv(self, timeout=5):
        self.ws.settimeout(scaled(timeout))
        data = self.ws.recv()
        assert isinstance(data, str), "the book's client expects text messages"
        assert data.endswith("\0"), f"message does not end with the NUL: {data!r}"
        return self.parse(data)

    def quotes(self, duration):
        """Every (symbol, body) the book's handler would see within duration seconds."""
        out = []
        deadline = time.monotonic() + duration
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            try:
                command, h, content = self.recv(left)
            except websocket.WebSocketTimeoutException:
                return out
            assert command == "MESSAGE", (command, h, content)
            out.append((h["destination"].split(".", 1)[1], json.loads(content)))


def test_book_client_gets_live_prices(ticker):
    """The book's client: CONNECTED, then AAPL prices within 2 s of subscribing, JSON with
    a numeric price, prices that move; after UNSUBSCRIBE, no more AAPL."""
    (gw,), _, _ = ticker()
    c = BookClient(gw)
    command, h, _ = c.connect()
    assert command == "CONNECTED" and h.get("session")
    t0 = time.monotonic()
    c.subscribe("AAPL")
    command, h, content = c.recv(timeout=2)
    assert time.monotonic() - t0 < scaled(2)
    assert command == "MESSAGE"
    assert h["destination"] == "/queue/stocks.AAPL"
    assert h["content-type"] == "application/json"
    body = json.loads(content)  # the book's JSON.parse(frame.content)
    assert isinstance(body["price"], (int, float)) and body["price"] > 0
    assert body["symbol"] == "AAPL" and isinstance(body["ts"], int)
    assert round(body["price"], 2) == body["price"]
    # a stream, not one answer: prices keep coming (about one a second) and move
    seen = [body["price"]] + [b["price"] for s, b in c.quotes(scaled(8)) if s == "AAPL"]
    assert len(seen) >= 4, seen
    assert len(set(seen)) > 1, f"AAPL never moved: {seen}"
    c.unsubscribe("AAPL")
    time.sleep(0.3)  # anything already on its way
    c.quotes(0.5)
    assert c.quotes(scaled(2.5)) == [], "AAPL prices after UNSUBSCRIBE"
    c.disconnect()


def test_book_client_with_several_symbols_and_disconnect(ticker, broker):
    (gw,), _, names = ticker()
    c = BookClient(gw)
    assert c.connect()[0] == "CONNECTED"
    for sym in ("AAPL", "MSFT", "GOOG"):
        c.subscribe(sym)
    got = {s for s, _ in c.quotes(scaled(3))}
    assert got == {"AAPL", "MSFT", "GOOG"}
    c.disconnect()
    m = wait_for(lambda: _metric(gw, "stompgate_quote_symbols") == 0, scaled(5))
    assert m, "the interest set did not empty after DISCONNECT"


# ---------------------------------------------------------------- semantics


def _metric(gw, name):
    status, _, body = http_get(gw, "/metrics")
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_second_subscriber_gets_cached_price_at_once(ticker, broker):
    """The last-value cache: with a 30 s quote interval, a second subscriber still gets
    the price at once - the one the first subscriber saw, same timestamp."""
    (gw,), _, _ = ticker(gw={"quote_interval_ms": 30000})
    a = connected_client(gw, broker)
    a.send_frame("SUBSCRIBE", {"id": "a", "destination": "/queue/stocks.IBM"})
    first = json.loads(a.expect("MESSAGE", timeout=3).body)  # answered for the new symbol
    b = connected_client(gw, broker)
    t0 = time.monotonic()
    b.send_frame("SUBSCRIBE", {"id": "b", "destination": "/queue/stocks.IBM",
                               "receipt": "r-b"})
    assert b.recv(timeout=2).command == "RECEIPT"  # the RECEIPT comes first
    f = b.recv(timeout=2)
    assert time.monotonic() - t0 < scaled(2)
    assert f.command == "MESSAGE" and f["destination"] == "/queue/stocks.IBM"
    assert f["subscription"] == "b"
    assert json.loads(f.body) == first


def test_invalid_symbol_is_an_error(ticker, broker):
    (gw,), _, _ = ticker()
    for sym in ("aapl", "", "TOOLONGSYMBOL", "A B", "A/B"):
        c = connected_client(gw, broker)
        c.send_frame("SUBSCRIBE", {"id": "x", "destination": f"/queue/stocks.{sym}"})
        f, code = c.expect_error_and_close()
        assert "invalid quote symbol" in f["message"], f
        assert code == 1000


def test_ack_of_quote_and_unsubscribe_by_id(ticker, broker):
    """STOMP 1.2 with ack:client-individual: the quote MESSAGE carries an ack header, an
    ACK of it is fine; UNSUBSCRIBE by id stops the stream."""
    (gw,), _, _ = ticker()
    c = connected_client(gw, broker)
    c.send_frame("SUBSCRIBE", {"id": "q", "destination": "/queue/stocks.MSFT",
                               "ack": "client-individual"})
    f = c.expect("MESSAGE", timeout=3)
    assert f.get("ack")
    c.send_frame("ACK", {"id": f["ack"], "receipt": "ack-1"})
    assert c.expect("RECEIPT")["receipt-id"] == "ack-1"
    c.send_frame("UNSUBSCRIBE", {"id": "q", "receipt": "u"})
    while True:
        f = c.recv(timeout=3)
        if f.command == "RECEIPT":
            break
        assert f.command == "MESSAGE"
    with pytest.raises(websocket.WebSocketTimeoutException):
        c.recv(timeout=2.5)


def test_many_subscribers_get_only_their_symbols(ticker, broker):
    """100 sessions across 20 symbols, two symbols each: every session gets prices for
    both its symbols and for nothing else; the MESSAGE names its subscription."""
    (gw,), _, _ = ticker(gw={"workers": 2})
    syms = [f"S{i:02d}" for i in range(20)]
    clients = []
    for i in range(100):
        mine = {syms[i % 20], syms[(i * 7 + 3) % 20]}
        c = connected_client(gw, broker)
        for s in sorted(mine):
            c.send_frame("SUBSCRIBE", {"id": f"sub-{s}", "destination": f"/queue/stocks.{s}"})
        clients.append((c, mine))
    deadline = time.monotonic() + scaled(10)
    for c, mine in clients:
        got = set()
        while got != mine and time.monotonic() < deadline:
            try:
                f = c.recv(timeout=max(0.1, deadline - time.monotonic()))
            except websocket.WebSocketTimeoutException:
                break
            assert f.command == "MESSAGE", f
            sym = f["destination"][len("/queue/stocks."):]
            assert sym in mine, f"{sym} delivered to a session subscribed to {mine}"
            assert f["subscription"] == f"sub-{sym}"
            assert json.loads(f.body)["price"] > 0
            got.add(sym)
        assert got == mine
    # and nothing foreign trickles in afterwards
    for c, mine in clients[:20]:
        try:
            while True:
                f = c.recv(timeout=0.2)
                assert f["destination"][len("/queue/stocks."):] in mine
        except websocket.WebSocketTimeoutException:
            pass
    assert _metric(gw, "stompgate_quote_symbols") == 20
    assert _metric(gw, "stompgate_quote_subscriptions") == 200
    for c, _ in clients:
        c.close()


def test_work_message_contract(ticker, broker):
    """What the bridge puts on stocks.work, read off the queue with no stockd running:
    {"stocks":[...]} with unique valid symbols, persistent, application/json, expiring."""
    (gw,), _, names = ticker(stockds=0, gw={"quote_interval_ms": 200})
    c = connected_client(gw, broker)
    for s in ("AAPL", "BRK.B", "^GSPC", "AAPL"):
        c.send_frame("SUBSCRIBE", {"id": s + str(time.monotonic()),
                                   "destination": f"/queue/stocks.{s}"})
    syms = set()
    with AmqpClient(broker) as a:
        deadline = time.monotonic() + scaled(10)
        while syms != {"AAPL", "BRK.B", "^GSPC"} and time.monotonic() < deadline:
            m = a.get(names["work"])
            if m is None:
                time.sleep(0.1)
                continue
            work = json.loads(m.body)
            assert list(work) == ["stocks"]
            assert len(work["stocks"]) == len(set(work["stocks"]))
            syms |= set(work["stocks"])
            assert m.props.get("delivery_mode") == 2
            assert m.props.get("content_type") == "application/json"
            assert m.props.get("expiration") == "10000"
    assert syms == {"AAPL", "BRK.B", "^GSPC"}


def test_results_not_for_anyone_are_ignored_and_bad_results_counted(ticker, broker):
    (gw,), _, names = ticker(stockds=0)
    c = connected_client(gw, broker)
    c.send_frame("SUBSCRIBE", {"id": "s", "destination": "/queue/stocks.NVDA"})
    for bad in ("not json", '{"symbol":"NVDA","price":1}', '[{"symbol":"NVDA","price":"x"}]',
                '[{"symbol":"nvda","price":1}]', '[{"symbol":"NVDA","price":-3}]'):
        broker.publish(names["result"], bad)
    broker.publish(names["result"], json.dumps([{"symbol": "ZZZZ", "price": 5.0},
                                                {"symbol": "NVDA", "price": 120.5}]))
    f = c.expect("MESSAGE", timeout=5)
    assert f["destination"] == "/queue/stocks.NVDA"
    assert json.loads(f.body)["price"] == 120.5
    assert wait_for(lambda: _metric(gw, "stompgate_quote_results_invalid_total") >= 5, 5)
    with pytest.raises(websocket.WebSocketTimeoutException):
        c.recv(timeout=1)


# ---------------------------------------------------------------- quote daemons and bridges


def _stream(c, sym, count, timeout):
    """Waits for count MESSAGEs for sym; returns their bodies."""
    got = []
    deadline = time.monotonic() + scaled(timeout)
    while len(got) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(got)} of {count} {sym} prices within {timeout} s"
        try:
            f = c.recv(timeout=left / scaled(1))
        except websocket.WebSocketTimeoutException:
            continue
        if f.command == "MESSAGE" and f["destination"].endswith("." + sym):
            got.append(json.loads(f.body))
    return got


def _drain(c):
    try:
        while True:
            c.recv(timeout=0.05)
    except websocket.WebSocketTimeoutException:
        pass


def test_two_stockd_share_the_work_and_survive_each_other(ticker, broker, stockd):
    """Two stockd instances compete for stocks.work: both answer; killing one leaves
    prices flowing; killing both stops them; starting one resumes them."""
    (gw,), (a, b), names = ticker(stockds=2)
    c = connected_client(gw, broker)
    for s in ("AAPL", "MSFT", "AMZN", "GOOG"):
        c.send_frame("SUBSCRIBE", {"id": s, "destination": f"/queue/stocks.{s}"})
    _stream(c, "AAPL", 3, 15)
    # competing consumers: two on the one work queue
    out = broker.ctl("list_queues", "name", "consumers").stdout
    line = [ln for ln in _text(out).splitlines() if ln.split()[:1] == [names["work"]]]
    assert line and line[0].split()[1] == "2", out
    a.send_signal(9)
    a.wait_exit()
    _drain(c)
    _stream(c, "MSFT", 3, 10)
    b.send_signal(9)
    b.wait_exit()
    time.sleep(1.5)
    _drain(c)
    with pytest.raises(websocket.WebSocketTimeoutException):
        c.recv(timeout=3)  # nobody answers the work now
    stockd(**names["sd"])
    _stream(c, "GOOG", 2, 10)


def test_two_bridges_with_the_results_exchange_both_deliver(ticker, broker):
    """quote_results_exchange: stockd publishes to a fanout exchange, each bridge binds its
    own queue, so every price reaches both bridges' subscribers."""
    (g1, g2), _, _ = ticker(bridges=2, exchange=True)
    syms = ["AAPL", "MSFT", "IBM", "TSLA"]
    clients = []
    for g in (g1, g2):
        c = connected_client(g, broker)
        for s in syms:
            c.send_frame("SUBSCRIBE", {"id": s, "destination": f"/queue/stocks.{s}"})
        clients.append(c)
    for c in clients:
        for s in syms:
            _stream(c, s, 3, 15)


def test_conflation_for_a_reader_that_stops(ticker, broker):
    """A session that stops reading is owed at most one price per symbol: the bridge
    conflates (counted) instead of queueing, and once the session reads again it gets
    the newest prices."""
    syms = [f"C{i:03d}" for i in range(300)]
    (gw,), _, _ = ticker(gw={"quote_interval_ms": 100, "quote_conflate_bytes": 0,
                             "quote_work_batch": 300, "max_subscriptions": 400})
    # a small receive window (set before the handshake: it fixes the window's scale) so
    # the kernel holds little once the session stops reading
    c = StompClient(gw.ws_url, socket_opts=((socket.SOL_SOCKET, socket.SO_RCVBUF, 65536),))
    assert c.connect(broker.user, broker.password).command == "CONNECTED"
    for s in syms:
        c.send_frame("SUBSCRIBE", {"id": s, "destination": f"/queue/stocks.{s}"})
    _stream(c, syms[0], 1, 10)
    # stop reading: ~3000 prices a second are offered to this session
    assert wait_for(lambda: _metric(gw, "stompgate_quote_conflated_total") > 1000, scaled(30)), \
        "no conflation while the session did not read"
    rss_during = gw.rss_kb()
    time.sleep(2)
    assert gw.rss_kb() < rss_during + 8192, "the bridge kept growing for a reader that stopped"
    # read again: what the kernel still buffers comes first, then the owed prices (one
    # per symbol, the newest) and the live stream
    t = int(time.time() * 1000)
    deadline = time.monotonic() + scaled(30)
    while True:
        assert time.monotonic() < deadline, "no fresh price after reading again"
        f = c.recv(timeout=5)
        if f["destination"].endswith(syms[-1]) and json.loads(f.body)["ts"] >= t:
            break


# ---------------------------------------------------------------- the plugin's semantics


def test_quote_prefix_off_is_a_plugin_queue(ticker, broker):
    """quote_prefix = "" turns the ticker off: /queue/stocks.X is the plugin's durable
    queue again (declared by the SUBSCRIBE, fed by a SEND)."""
    name = f"stocks.Q{uuid.uuid4().hex[:6].upper()}"
    (gw,), _, _ = ticker(stockds=0, gw={"quote_prefix": ""})
    c = connected_client(gw, broker)
    c.send_frame("SUBSCRIBE", {"id": "s", "destination": f"/queue/{name}", "receipt": "r"})
    assert c.expect("RECEIPT")["receipt-id"] == "r"
    out = broker.ctl("list_queues", "name", "durable").stdout
    assert any(ln.split()[:2] == [name, "true"] for ln in _text(out).splitlines()), out
    c.send_frame("SEND", {"destination": f"/queue/{name}"}, body="plain")
    f = c.expect("MESSAGE")
    assert f.body == b"plain" and f["destination"] == f"/queue/{name}"
    broker.delete_queue(name)


def test_send_to_a_quote_destination_is_a_queue_send(ticker, broker):
    """Only SUBSCRIBE is intercepted: a SEND to /queue/stocks.X goes to the broker queue,
    as the plugin would send it."""
    name = f"stocks.S{uuid.uuid4().hex[:6].upper()}"
    (gw,), _, _ = ticker(stockds=0)
    c = connected_client(gw, broker)
    c.send_frame("SEND", {"destination": f"/queue/{name}", "receipt": "s"}, body="hello")
    assert c.expect("RECEIPT")["receipt-id"] == "s"
    with AmqpClient(broker) as a:
        m = a.get(name)
    assert m is not None and m.body == b"hello"
    broker.delete_queue(name)
