"""Fault isolation: one session's bad frame must not hurt the other sessions that share its
pooled broker connection (workers=1, same login).

Session B subscribes to a /topic fed with a numbered stream (PUB_RATE messages/s, published
over AMQP straight to the broker, so the publisher does not share B's broker connection) and
sends a SEND with a receipt every RECEIPT_EVERY seconds. Session A then sends one bad frame
that the broker would refuse. A must get its own ERROR (with the receipt-id it asked for); B
must see every number, in order, get a RECEIPT for every SEND, and never be closed; and once
A is gone the gateway must not keep losing its broker connection (no republish loop).
"""

import re
import threading
import time

import pytest
import websocket

from amqpc import AmqpClient
from brokerctl import broker_user, delete_queues, uniq
from sgtest import scaled
from stompc import Closed, StompClient

PUB_RATE = 20  # stream messages per second
RECEIPT_EVERY = 0.25  # B sends a SEND with a receipt this often (s)
LOST_RE = re.compile(r"broker connection.*\blost\b", re.I)


class Publisher(threading.Thread):
    """Publishes "0", "1", ... to amq.topic with routing key `key` at PUB_RATE/s over its
    own AMQP connection (broker_user) until stop(); .sent is how many went out."""

    def __init__(self, broker, key):
        super().__init__(daemon=True)
        self.amqp = AmqpClient(broker)
        self.key = key
        self.sent = 0
        self.error = None
        self._halt = threading.Event()

    def run(self):
        try:
            while not self._halt.is_set():
                self.amqp.publish("amq.topic", self.key, str(self.sent).encode())
                self.sent += 1
                self._halt.wait(1 / PUB_RATE)
        except Exception as e:  # reported by the test
            self.error = e

    def stop(self):
        self._halt.set()
        self.join(scaled(5))
        self.amqp.close()
        return self.sent


class Watcher(threading.Thread):
    """Session B: receives the stream on its own thread (the only user of its socket) and
    sends a SEND with a receipt every RECEIPT_EVERY s. After finish(total) it keeps reading
    until it has `total` numbers and every receipt, or a deadline passes."""

    def __init__(self, gw, login, password, key):
        super().__init__(daemon=True)
        self.c = StompClient(gw.ws_url)
        f = self.c.connect(login, password)
        assert f.command == "CONNECTED", f
        self.c.send_frame("SUBSCRIBE", {"id": "stream", "destination": f"/topic/{key}",
                                        "receipt": "sub"})
        assert self.c.expect("RECEIPT", timeout=10)["receipt-id"] == "sub"
        self.sink = f"/topic/{key}.b-sink"
        self.numbers = []
        self.sent_receipts = {}  # receipt id -> time sent
        self.got_receipts = {}  # receipt id -> time received
        self.errors = []
        self.closed = None
        self.crash = None
        self.total = None
        self._finishing = threading.Event()

    def run(self):
        try:
            self._loop()
        except Exception as e:  # reported by the test
            self.crash = e

    def _loop(self):
        n, next_send, deadline = 0, 0.0, None
        while True:
            now = time.monotonic()
            if self._finishing.is_set() and deadline is None:
                deadline = now + scaled(8)
            if deadline is not None:
                complete = (len(self.numbers) >= self.total
                            and len(self.got_receipts) == len(self.sent_receipts))
                if complete or now >= deadline:
                    return
            elif now >= next_send:
                r = f"b-{n}"
                n += 1
                self.sent_receipts[r] = now
                self.c.send_frame("SEND", {"destination": self.sink, "receipt": r}, r)
                next_send = now + RECEIPT_EVERY
            try:
                f = self.c.recv(timeout=0.05)
            except websocket.WebSocketTimeoutException:
                continue
            except Closed as e:
                self.closed = e
                return
            if f.command == "MESSAGE":
                self.numbers.append(int(f.body))
            elif f.command == "RECEIPT":
                self.got_receipts[f["receipt-id"]] = time.monotonic()
            else:
                self.errors.append(f)

    def finish(self, total):
        self.total = total
        self._finishing.set()
        self.join(scaled(15))
        self.c.close()

    def receipts_after(self, t):
        return sum(1 for r, ts in self.got_receipts.items() if self.sent_receipts[r] > t)


def gap_summary(numbers, total):
    """'' if numbers is exactly 0..total-1, else a short description of what is wrong."""
    if numbers == list(range(total)):
        return ""
    missing = sorted(set(range(total)) - set(numbers))
    out_of_order = [b for a, b in zip(numbers, numbers[1:]) if b <= a]
    return (f"got {len(numbers)} of {total} numbers; missing {len(missing)}"
            f" (first {missing[:8]}); {len(out_of_order)} out of order or repeated")


def expect_error(c, receipt, timeout=5):
    """The ERROR frame c gets within timeout (MESSAGE/RECEIPT frames before it are skipped),
    or a string saying what came instead."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return f"no ERROR within {timeout} s"
        try:
            f = c.recv(timeout=left / scaled(1))
        except websocket.WebSocketTimeoutException:
            return f"no ERROR within {timeout} s"
        except Closed as e:
            return f"closed ({e.code} {e.reason!r}) without an ERROR"
        if f.command == "ERROR":
            return f
        if f.command == "RECEIPT" and f.get("receipt-id") == receipt:
            return f"a RECEIPT for the bad frame instead of an ERROR: {f!r}"


def run_isolation(gw, broker, login, password, bad_frame, keyword_re, prepare=None):
    """The scenario of the module doc. bad_frame(a) sends A's frame (with receipt "bad");
    keyword_re must match the ERROR's message (case-insensitive). Fails listing every
    problem seen, so a failure says all that went wrong at once."""
    key = uniq("iso").replace("-", ".")
    pub = Publisher(broker, key)
    b = Watcher(gw, login, password, key)
    b.start()
    pub.start()
    problems = []
    try:
        # a baseline: B is receiving and getting receipts before A does anything
        t0 = time.monotonic()
        while (len(b.numbers) < 10 or len(b.got_receipts) < 2) and b.is_alive():
            if time.monotonic() - t0 > scaled(10):
                pytest.fail(f"B never got going: {len(b.numbers)} messages,"
                            f" {len(b.got_receipts)} receipts")
            time.sleep(0.05)

        a = StompClient(gw.ws_url)
        f = a.connect(login, password)
        assert f.command == "CONNECTED", f
        t_bad = time.monotonic()
        bad_frame(a)
        err = expect_error(a, "bad")
        if isinstance(err, str):
            problems.append(f"A: {err}")
        else:
            if not err.get("message"):
                problems.append(f"A's ERROR has no message header: {err!r}")
            elif not re.search(keyword_re, err["message"], re.I):
                problems.append(f"A's ERROR message does not match /{keyword_re}/:"
                                f" {err['message']!r}")
            if err.get("receipt-id") != "bad":
                problems.append(f"A's ERROR has receipt-id {err.get('receipt-id')!r},"
                                " not 'bad'")
        time.sleep(scaled(1.5))  # B keeps going meanwhile
        a.close()

        # A is gone: the broker connection must stay up (no republish loop)
        mark = len(gw.log())
        time.sleep(scaled(3))
        window = gw.log()[mark:]
        lost = [line for line in window.splitlines() if LOST_RE.search(line)]
        if lost:
            problems.append(f"{len(lost)} 'broker connection lost' lines in the 3 s after A"
                            f" left, e.g. {lost[0].strip()!r}")
    finally:
        total = pub.stop()
        b.finish(total)
    if pub.error:
        problems.append(f"publisher failed: {pub.error!r}")
    if b.crash:
        problems.append(f"B's reader crashed: {b.crash!r}")
    gap = gap_summary(b.numbers, total)
    if gap:
        problems.append(f"B's stream has a gap: {gap}")
    if b.closed is not None:
        problems.append(f"B's connection was closed: {b.closed}")
    if b.errors:
        problems.append(f"B got {b.errors[0]!r}")
    owed = sorted(set(b.sent_receipts) - set(b.got_receipts), key=lambda r: int(r[2:]))
    if owed:
        problems.append(f"B is owed {len(owed)} of {len(b.sent_receipts)} RECEIPTs"
                        f" (first {owed[:5]})")
    if b.receipts_after(t_bad) == 0:
        problems.append("B got no RECEIPT for any SEND sent after A's bad frame")
    all_lost = [line for line in gw.log().splitlines() if LOST_RE.search(line)]
    if all_lost and not any("broker connection lost" in p for p in problems):
        problems.append(f"{len(all_lost)} 'broker connection lost' lines in the test")
    assert not problems, "\n".join(problems)


# ---- the shared login: A and B are both broker_user

BAD_SENDS = {
    # header the broker refuses on the publish channel -> keyword in A's ERROR
    "user-id": ({"user-id": "someoneelse"}, "/topic/iso.bad", r"user[-_ ]?id"),
    "expiration": ({"expiration": "abc"}, "/topic/iso.bad", r"expiration"),
    "priority": ({"priority": "300"}, "/topic/iso.bad", r"priority"),
    "missing-amq-exchange": ({}, "/exchange/amq.nope/k", r"amq\.nope|not_found|no exchange"),
}


@pytest.mark.parametrize("case", list(BAD_SENDS))
def test_bad_send_only_fails_its_own_session(stompgate, broker, case):
    headers, dest, keyword = BAD_SENDS[case]
    gw = stompgate(workers=1)

    def bad(a):
        a.send_frame("SEND", {"destination": dest, "receipt": "bad", **headers}, "poison")

    run_isolation(gw, broker, broker.user, broker.password, bad, keyword)


# ---- a user without write permission on one exchange (and read on one queue)

@pytest.fixture
def restricted(broker):
    """(login, password, exchange, queue): a user who may configure anything and may
    write/read anything except names starting with isodeny-; the exchange and queue
    exist (declared by broker_user) and are removed afterwards."""
    ex, q = uniq("isodeny-ex"), uniq("isodeny-q")
    with AmqpClient(broker) as a:
        a.exchange_declare(ex, "topic")
        a.queue_declare(q)
    try:
        with broker_user(broker, configure=".*", write="^(?!isodeny-).*",
                         read="^(?!isodeny-).*") as (login, password):
            yield login, password, ex, q
    finally:
        delete_queues(broker, q)
        with AmqpClient(broker) as a:
            a.exchange_delete(ex)


def test_send_to_exchange_without_write_permission(stompgate, broker, restricted):
    login, password, ex, _ = restricted
    gw = stompgate(workers=1)

    def bad(a):
        a.send_frame("SEND", {"destination": f"/exchange/{ex}/k", "receipt": "bad"}, "poison")

    run_isolation(gw, broker, login, password, bad, r"access|refused")


def test_subscribe_to_queue_without_read_permission(stompgate, broker, restricted):
    login, password, _, q = restricted
    gw = stompgate(workers=1)

    def bad(a):
        a.send_frame("SUBSCRIBE", {"id": "x", "destination": f"/amq/queue/{q}",
                                   "receipt": "bad"})

    run_isolation(gw, broker, login, password, bad, r"access|refused")
