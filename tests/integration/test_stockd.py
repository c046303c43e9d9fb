"""stockd against the real broker: the wire contract, bad work dead-lettered, competing
consumers, the fanout exchange, the replay and http sources end to end, publisher confirms,
and reconnects after a consumer cancel or a closed connection.

Every test uses queues of its own (uniq names) and deletes them at the end.
"""

import contextlib
import http.server
import json
import re
import signal
import struct
import threading
import time
import urllib.parse

import pytest

from amqpc import AmqpClient, _shortstr, _table
from brokerctl import delete_queues, queue_info, uniq, wait_until
from sgtest import Daemon, free_port, run_bin, scaled, stockd_config, write_config

QUEUE_BIND, QUEUE_BIND_OK = (50, 20), (50, 21)
PRICE_RE = re.compile(rb'"price":(\d+\.\d\d)[,}]')


class Client(AmqpClient):
    def __init__(self, broker, **kw):
        super().__init__(broker, **kw)
        self.broker = broker

    def queue_bind(self, queue, exchange, routing_key=""):
        self._method(1, QUEUE_BIND, struct.pack("!H", 0) + _shortstr(queue) + _shortstr(exchange)
                     + _shortstr(routing_key) + b"\x00" + _table({}))
        self._expect(1, QUEUE_BIND_OK)

    def work(self, queue, body):
        if not isinstance(body, (str, bytes)):
            body = json.dumps(body)
        self.publish("", queue, body, {"delivery_mode": 2, "content_type": "application/json"})

    def result(self, queue, timeout=10):
        """The next message on queue; fails the test after timeout s."""
        m = wait_until(lambda: self.get(queue), timeout, interval=0.02)
        if not m:
            pytest.fail(f"no result on {queue} within {scaled(timeout):.0f} s", pytrace=False)
        return m

    def quotes(self, queue, timeout=10):
        """The next result as {symbol: price}, checking its shape."""
        m = self.result(queue, timeout)
        body = json.loads(m.body)
        assert isinstance(body, list), m.body
        for q in body:
            assert set(q) >= {"symbol", "price"}, m.body
            assert isinstance(q["price"], (int, float)) and q["price"] > 0, m.body
        return {q["symbol"]: q["price"] for q in body}

    def count(self, queue):
        """Ready messages (passive declare)."""
        return self.queue_declare(queue, passive=True)[1]


@pytest.fixture
def amqp(broker):
    with Client(broker) as a:
        yield a


@pytest.fixture
def names(broker):
    """names('work') -> a unique queue name, deleted at teardown. Tests take it before
    stockd, so it is torn down after the daemons (which would declare the queues again)."""
    made = []

    def make(prefix):
        n = uniq(f"sd-{prefix}")
        made.append(n)
        return n

    yield make
    delete_queues(broker, *made)


# ---------------------------------------------------------------- the contract

def test_answers_work_with_the_contract(names, stockd, amqp):
    work, result = names("work"), names("result")
    d = stockd(work_queue=work, result_queue=result, seed=3)
    amqp.work(work, {"stocks": ["AAPL", "MSFT", "AAPL", "GOOG", "MSFT"]})
    m = amqp.result(result)
    assert m.props.get("content_type") == "application/json", m.props
    assert m.props.get("delivery_mode") == 2, m.props  # persistent
    body = json.loads(m.body)
    # deduped, in the order asked; the first answer is each walk's start price
    assert body == [{"symbol": "AAPL", "price": 95.0}, {"symbol": "MSFT", "price": 50.0},
                    {"symbol": "GOOG", "price": 550.0}], m.body
    assert len(PRICE_RE.findall(m.body)) == 3, m.body  # two decimals on the wire
    # the work is acked once the result is confirmed: nothing left, nothing unacked
    assert wait_until(lambda: queue_info(amqp.broker, work, "messages") == {"messages": "0"}, 10)
    assert amqp.count(result) == 0
    assert d.alive()


def test_prices_move_between_requests(names, stockd, amqp):
    work, result = names("work"), names("result")
    stockd(work_queue=work, result_queue=result, seed=11)
    seen = []
    for _ in range(4):  # 3.3 s in all: a walk moves every 0.5-2.5 s
        amqp.work(work, {"stocks": ["AAPL", "ZZT"]})
        seen.append(amqp.quotes(result))
        time.sleep(1.1)
    for sym in ("AAPL", "ZZT"):
        prices = [q[sym] for q in seen]
        assert len(set(prices)) > 1, (sym, prices)
        steps = [abs(b - a) for a, b in zip(prices, prices[1:])]
        assert all(s <= 1.5 * 3 + 1e-9 for s in steps), prices  # at most 3 moves per 1.1 s
        assert all(p > 0 and round(p, 2) == p for p in prices), prices


# ---------------------------------------------------------------- bad input

def test_bad_work_is_dead_lettered_and_the_daemon_goes_on(names, broker, stockd, amqp):
    work, result, dlq = names("work"), names("result"), names("dlq")
    amqp.queue_declare(dlq, durable=True)
    # the work queue exists with a dead-letter exchange: stockd uses it as it is
    amqp.queue_declare(work, durable=True, arguments={"x-dead-letter-exchange": "",
                                                       "x-dead-letter-routing-key": dlq})
    d = stockd(work_queue=work, result_queue=result, max_message=512, max_symbols=5)
    bad = {
        b"not json": "not JSON",
        b'{"stocks":["AAPL"]': "not JSON",
        b'["AAPL"]': "not a JSON object",
        b'{"symbols":["AAPL"]}': 'no "stocks" member',
        b'{"stocks":"AAPL"}': '"stocks" is a string, not an array',
        b'{"stocks":["AAPL",7]}': "stocks[1] is a number, not a string",
        b'{"stocks":["aapl"]}': 'stocks[0] "aapl" is not a symbol',
        b'{"stocks":["TOOLONGSYMBOL1"]}': "is not a symbol",
        b'{"stocks":[]}': 'empty "stocks" list',
        b'{"stocks":["A","B","C","D","E","F"]}': "too many symbols (6 > max_symbols 5)",
        b'{"stocks":["AAPL"],"pad":"' + b"x" * 600 + b'"}': "too big (",
        b"": "not JSON",
    }
    for body in bad:
        amqp.work(work, body)
    amqp.work(work, {"stocks": ["MSFT"]})
    assert list(amqp.quotes(result)) == ["MSFT"]  # good work still answered
    got = {}
    for _ in bad:
        m = amqp.result(dlq)
        got[m.body] = m
    assert set(got) == set(bad)
    for m in got.values():
        deaths = m.props["headers"]["x-death"]
        assert deaths[0]["reason"] == "rejected" and deaths[0]["queue"] == work, deaths
    log = d.log()
    for why in bad.values():
        assert re.search(r"WARN\s+rejecting work message \d+ \(\d+ bytes\): .*" + re.escape(why),
                         log), (why, d.log_tail(30))
    assert amqp.count(work) == 0 and amqp.count(result) == 0
    # and it keeps consuming
    amqp.work(work, {"stocks": ["GOOG"]})
    assert list(amqp.quotes(result)) == ["GOOG"]
    assert d.alive()


# ---------------------------------------------------------------- scale-out

def answered(d):
    return len(re.findall(r"work \d+.*: answered", d.log()))


def test_competing_consumers_and_failover(names, stockd, amqp):
    work, result = names("work"), names("result")
    a = stockd(work_queue=work, result_queue=result, prefetch=1)
    b = stockd(work_queue=work, result_queue=result, prefetch=1)

    def ask(syms):
        for s in syms:
            amqp.work(work, {"stocks": [s]})
        got = []
        for _ in syms:
            got += list(amqp.quotes(result))
        assert sorted(got) == sorted(syms)

    ask([f"C{i}" for i in range(30)])
    assert answered(a) > 0 and answered(b) > 0, (answered(a), answered(b))
    assert answered(a) + answered(b) == 30
    # one dies: answers keep flowing
    a.send_signal(signal.SIGKILL)
    a.proc.wait()
    ask([f"D{i}" for i in range(10)])
    # both die: work waits in the queue, and the next stockd answers it
    b.send_signal(signal.SIGKILL)
    b.proc.wait()
    for i in range(5):
        amqp.work(work, {"stocks": [f"E{i}"]})
    assert wait_until(lambda: amqp.count(work) == 5, 10)
    c = stockd(work_queue=work, result_queue=result)
    got = []
    for _ in range(5):
        got += list(amqp.quotes(result))
    assert sorted(got) == [f"E{i}" for i in range(5)]
    assert answered(c) == 5


def test_result_exchange_reaches_every_bound_queue(names, stockd, amqp):
    work, q1, q2 = names("work"), names("bridge1"), names("bridge2")
    ex = uniq("sd-results")
    stockd(work_queue=work, result_exchange=ex, seed=5)
    try:
        for q in (q1, q2):
            amqp.queue_declare(q)
            amqp.queue_bind(q, ex)  # the fanout exchange stockd declared
        amqp.work(work, {"stocks": ["AAPL", "YHOO"]})
        m1, m2 = amqp.result(q1), amqp.result(q2)
        assert m1.body == m2.body
        assert json.loads(m1.body) == [{"symbol": "AAPL", "price": 95.0},
                                       {"symbol": "YHOO", "price": 35.0}]
        assert m1.exchange == ex and m1.props.get("delivery_mode") == 2
        amqp.work(work, {"stocks": ["AAPL"]})
        assert amqp.result(q1).body == amqp.result(q2).body
    finally:
        with contextlib.suppress(Exception):
            amqp.exchange_delete(ex)


# ---------------------------------------------------------------- sources

def test_replay_source(names, stockd, amqp, tmp_path):
    work, result = names("work"), names("result")
    f = tmp_path / "quotes.csv"
    f.write_text("ts,symbol,price\n"
                 "1700000000,AAPL,10.00\n"
                 "1700000001,AAPL,11.5\n"
                 "not,a,line\n"
                 '{"ts":"2023-11-14T22:13:22Z","symbol":"AAPL","price":12.25}\n'
                 "1700000000,MSFT,20\n")
    d = stockd(work_queue=work, result_queue=result, source="replay", replay_file=f,
               replay_speed=0)
    d.wait_log(r"replay: .*quotes.csv: 4 quotes of 2 symbols.*1 bad lines, header skipped")
    assert re.search(r"quotes.csv:4: bad line: bad timestamp", d.log())
    # speed 0: each request takes the symbol's next quote, then starts over
    prices = []
    for _ in range(4):
        amqp.work(work, {"stocks": ["AAPL", "GOOG"]})  # GOOG is not in the file: left out
        q = amqp.quotes(result)
        assert list(q) == ["AAPL"], q
        prices.append(q["AAPL"])
    assert prices == [10.0, 11.5, 12.25, 10.0]
    amqp.work(work, {"stocks": ["GOOG"]})  # nothing to say: acked, nothing published
    d.wait_log(r"no price for any of its 1 symbols")
    assert wait_until(lambda: queue_info(amqp.broker, work, "messages") == {"messages": "0"}, 10)
    amqp.work(work, {"stocks": ["MSFT"]})
    assert amqp.quotes(result) == {"MSFT": 20.0}


def test_replay_in_time(names, stockd, amqp, tmp_path):
    """replay_speed 10: one quote a second of file is one every 0.1 s; over ~1.5 s of
    requests AAPL walks through the file in order (looping)."""
    work, result = names("work"), names("result")
    f = tmp_path / "q.jsonl"
    f.write_text("".join(json.dumps({"ts": i, "symbol": "AAPL", "price": 100 + i}) + "\n"
                         for i in range(10)))
    stockd(work_queue=work, result_queue=result, source="replay", replay_file=f,
           replay_speed=10)
    seen = []
    deadline = time.monotonic() + scaled(5)
    while len(set(seen)) < 4 and time.monotonic() < deadline:
        amqp.work(work, {"stocks": ["AAPL"]})
        seen.append(amqp.quotes(result)["AAPL"])
        time.sleep(0.1)
    assert len(set(seen)) >= 4, seen
    assert all(100 <= p <= 109 and p == int(p) for p in seen), seen


def test_replay_file_without_quotes_is_a_config_error(tmp_path):
    f = tmp_path / "empty.csv"
    f.write_text("ts,symbol,price\nbad,line,here\n")
    r = run_bin("stockd", "--source=replay", f"--replay-file={f}", "--check-config")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "config: replay_file: no valid quote in" in r.stderr
    r = run_bin("stockd", "--source=replay", "--check-config")
    assert r.returncode == 2 and "replay_file: must be set" in r.stderr
    r = run_bin("stockd", "--source=yahoo", "--check-config")
    assert r.returncode == 2 and "source: must be sim, replay or http" in r.stderr
    r = run_bin("stockd", "--source=http", "--http-url=https://q.example/{symbol}",
                "--check-config")
    assert r.returncode == 2 and "config: http_url: must start with http://" in r.stderr


class QuoteServer:
    """A local HTTP quote service: GET /q/SYM answers by modes[SYM]:
    ok -> 200 {"quote":{"price":P}} with P = prices[SYM]; slow -> the same after slow_s s;
    500 -> 500; bad -> 200 with a body that is not JSON; missing -> 200 {"quote":{}}."""

    def __init__(self):
        self.modes, self.prices, self.hits = {}, {}, []
        self.slow_s = 3
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                sym = urllib.parse.unquote(self.path.rsplit("/", 1)[-1])
                server.hits.append(sym)
                mode = server.modes.get(sym, "ok")
                if mode == "slow":
                    time.sleep(server.slow_s)
                if mode == "500":
                    return self._send(500, b"internal error")
                if mode == "bad":
                    return self._send(200, b"<html>not json</html>")
                if mode == "missing":
                    return self._send(200, b'{"quote":{}}')
                body = json.dumps({"quote": {"price": server.prices.get(sym, 1.0)}}).encode()
                return self._send(200, body)

            def _send(self, code, body):
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (timeout)

            def log_message(self, *a):
                pass

        self.port = free_port()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def quote_server():
    s = QuoteServer()
    yield s
    s.close()


def test_http_source_and_its_fallbacks(names, stockd, amqp, quote_server):
    work, result = names("work"), names("result")
    qs = quote_server
    d = stockd(work_queue=work, result_queue=result, source="http",
               http_url=f"http://127.0.0.1:{qs.port}/q/{{symbol}}", http_price_path="quote.price",
               http_timeout_ms=800)
    syms = ["AAPL", "MSFT", "GOOG", "AMZN", "^GSPC"]
    qs.prices.update({"AAPL": 189.914, "MSFT": 370.1, "GOOG": 140.0, "AMZN": 150.55,
                      "^GSPC": 4700.0})
    amqp.work(work, {"stocks": syms})
    assert amqp.quotes(result) == {"AAPL": 189.91, "MSFT": 370.1, "GOOG": 140.0,
                                   "AMZN": 150.55, "^GSPC": 4700.0}
    assert sorted(set(qs.hits)) == sorted(syms)  # one GET each ("^" sent as %5E)
    # now each fails its own way: the last known price is served; a symbol that never had
    # one is left out
    qs.prices.update({s: 1.0 for s in syms})
    qs.modes.update({"AAPL": "slow", "MSFT": "500", "GOOG": "bad", "AMZN": "missing",
                     "NEWX": "500"})
    amqp.work(work, {"stocks": syms + ["NEWX"]})
    assert amqp.quotes(result, timeout=15) == {"AAPL": 189.91, "MSFT": 370.1, "GOOG": 140.0,
                                               "AMZN": 150.55, "^GSPC": 1.0}
    m = d.wait_log(r"WARN\s+http: 5 of 6 symbols failed, 4 got their last known price: (.*)")
    why = m.group(1)
    for part in ("AAPL: timed out", "MSFT: HTTP 500", "GOOG: bad JSON",
                 'AMZN: no "quote.price" in the JSON', "NEWX: HTTP 500 (no last price)"):
        assert part in why, why
    # recovered: fresh prices again
    qs.modes.clear()
    qs.prices.update({"AAPL": 190.0, "NEWX": 5.0})
    amqp.work(work, {"stocks": ["AAPL", "NEWX"]})
    assert amqp.quotes(result) == {"AAPL": 190.0, "NEWX": 5.0}


# ---------------------------------------------------------------- confirms and reconnects

def test_nacked_result_keeps_the_work(names, broker, stockd, amqp):
    """The result queue is full and refuses publishes (x-overflow reject-publish): the
    broker nacks the result, so the work must not be acked. Once there is room again the
    same work is answered."""
    work, result = names("work"), names("result")
    amqp.queue_declare(result, durable=True,
                       arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    amqp.publish("", result, b"filler")
    assert wait_until(lambda: amqp.count(result) == 1, 10)
    d = stockd(work_queue=work, result_queue=result)
    amqp.work(work, {"stocks": ["AAPL"]})
    d.wait_log(r"nacked the result of work \d+ \(result queue full\?\): work requeued")
    # and retried (the same work, redelivered), still nacked
    assert wait_until(lambda: len(re.findall(r"nacked the result", d.log())) >= 2, 10)
    # still the broker's: ready or delivered again, never acked
    assert queue_info(broker, work, "messages") == {"messages": "1"}
    assert answered(d) == 0
    assert amqp.result(result).body == b"filler"  # make room
    q = amqp.quotes(result, timeout=15)
    assert list(q) == ["AAPL"]
    assert wait_until(lambda: queue_info(broker, work, "messages") == {"messages": "0"}, 10)


def test_consumer_cancel_reconnects(names, stockd, amqp):
    """The work queue is deleted under stockd: the broker cancels its consumer; stockd
    reconnects, declares the queue again and answers work on it."""
    work, result = names("work"), names("result")
    d = stockd(work_queue=work, result_queue=result)
    amqp.queue_delete(work)
    d.wait_log(r"cancelled our consumer on " + re.escape(work) + r".*reconnecting.*\n(.*\n)*"
               r".*ready: consuming " + re.escape(work))
    amqp.work(work, {"stocks": ["AAPL"]})
    assert list(amqp.quotes(result)) == ["AAPL"]
    assert d.alive()


def test_closed_connection_reconnects(names, broker, stockd):
    work, result = names("work"), names("result")
    d = stockd(work_queue=work, result_queue=result)
    broker.ctl("close_all_connections", "test_stockd")
    d.wait_log(r"closed the connection: 320 .*reconnecting.*\n(.*\n)*.*ready: consuming")
    with Client(broker) as a:
        a.work(work, {"stocks": ["MSFT"]})
        assert list(a.quotes(result)) == ["MSFT"]
    assert d.alive()


def test_returned_result_keeps_the_work(names, stockd, amqp):
    """The result queue is deleted at run time: the result (published mandatory) comes
    back; stockd requeues the work, reconnects (declaring the queue again), and the same
    work is answered."""
    work, result = names("work"), names("result")
    d = stockd(work_queue=work, result_queue=result)
    amqp.queue_delete(result)
    amqp.work(work, {"stocks": ["AAPL"]})
    d.wait_log(r"result returned by the broker: 312 NO_ROUTE")
    d.wait_log(r"the result of work \d+ was returned \(result queue " + re.escape(result)
               + r" gone\?\): reconnecting")
    # the queue exists again once the redelivered work is answered (read it only then)
    d.wait_log(r"work \d+ \(redelivered\): answered 1 of 1")
    assert list(amqp.quotes(result)) == ["AAPL"]


def test_unconfirmed_result_is_redelivered(own_broker, tmp_path, quote_server):
    """No confirm within confirm_timeout_ms: the work is not acked; stockd drops the
    connection, the broker redelivers the work, and it is answered once the broker
    confirms again. A memory alarm makes the broker stop reading publishes (so no
    confirm); a slow quote keeps the work inside stockd while the alarm goes on. On a
    broker of its own: the alarm must not reach other tests."""
    b, qs = own_broker, quote_server
    qs.slow_s = 4
    qs.modes["AAPL"] = "slow"
    qs.prices["AAPL"] = 42.0
    cfg = stockd_config(b, work_queue="sd.work", result_queue="sd.result", source="http",
                        http_url=f"http://127.0.0.1:{qs.port}/q/{{symbol}}",
                        http_price_path="quote.price", http_timeout_ms=8000,
                        confirm_timeout_ms=1000, broker_timeout_ms=1000)
    d = Daemon("stockd", write_config(tmp_path / "stockd.conf", cfg), tmp_path / "stockd.log")
    try:
        d.wait_log(r"\bready\b", 15)
        with Client(b) as a:
            a.work("sd.work", {"stocks": ["AAPL"]})
        assert wait_until(lambda: "AAPL" in qs.hits, 10), qs.hits
        b.ctl("set_vm_memory_high_watermark", "0.000001")
        qs.modes.clear()  # the redelivered work is answered at once (and blocked again)
        try:
            d.wait_log(r"no confirm for a result within confirm_timeout_ms 1000 \(work "
                       r"redelivered\): reconnecting", 30)
            assert answered(d) == 0
        finally:
            b.ctl("set_vm_memory_high_watermark", "0.4")
        with Client(b) as a:
            assert list(a.quotes("sd.result", 30)) == ["AAPL"]  # at least once
            assert wait_until(lambda: queue_info(b, "sd.work", "messages")
                              == {"messages": "0"}, 20)
        assert answered(d) >= 1
    finally:
        d.stop()
        problems = d.problems()
        if problems:
            print(d.log_tail())
        assert not problems, problems
