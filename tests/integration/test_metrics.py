"""/metrics, /healthz, /readyz and who may read them (issue 12, observability).

/metrics is parsed strictly (Prometheus text format 0.0.4): every sample belongs to a
family declared by # TYPE before it, a family's samples are contiguous, no series appears
twice, histogram buckets are cumulative and the +Inf bucket equals _count. Counters are
read before and after traffic, and must move by what the traffic did.
"""

import http.client
import math
import re
import signal
import socket
import struct
import uuid

import pytest
import websocket

from sgtest import free_port, http_get, make_cert, scaled, wait_for, write_config
from stompc import StompClient, connected_client

# ------------------------------------------------------------------ the strict parser

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE_RE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})?[ \t]+(\S+)(?:[ \t]+(-?\d+))?$")
_LABEL_RE = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"[ \t]*(,|$)')
_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class ExpositionError(AssertionError):
    pass


def _value(s):
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    if s == "NaN":
        return math.nan
    try:
        return float(s)
    except ValueError:
        raise ExpositionError(f"bad sample value {s!r}") from None


def _labels(text, line):
    out, pos = {}, 0
    text = text.rstrip(", \t") if text.rstrip(" \t").endswith(",") else text
    while pos < len(text):
        m = _LABEL_RE.match(text, pos)
        if not m or m.end() == pos:
            raise ExpositionError(f"bad labels in {line!r}")
        name, value = m.group(1), m.group(2)
        if name in out:
            raise ExpositionError(f"label {name} twice in {line!r}")
        out[name] = value.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
        pos = m.end()
    return out


class Metrics:
    """A parsed exposition: .types {family: type}, .help {family: text},
    .samples {(name, frozenset(labels.items())): value}."""

    def __init__(self, text):
        self.types, self.help, self.samples = {}, {}, {}
        if text and not text.endswith("\n"):
            raise ExpositionError("the last line must end with a line feed")
        done, current = set(), None  # families whose samples are over, the one going on
        for line in text.split("\n")[:-1] if text else []:
            if not line.strip():
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    kind, name = parts[1], parts[2]
                    if not re.fullmatch(_NAME, name):
                        raise ExpositionError(f"bad metric name in {line!r}")
                    if kind == "HELP":
                        if name in self.help:
                            raise ExpositionError(f"second HELP for {name}")
                        self.help[name] = parts[3] if len(parts) > 3 else ""
                    else:
                        if name in self.types:
                            raise ExpositionError(f"second TYPE for {name}")
                        if len(parts) != 4 or parts[3] not in _TYPES:
                            raise ExpositionError(f"bad TYPE line {line!r}")
                        if name in done or name == current:
                            raise ExpositionError(f"TYPE for {name} after its samples")
                        self.types[name] = parts[3]
                continue
            m = _SAMPLE_RE.match(line)
            if not m:
                raise ExpositionError(f"not a sample line: {line!r}")
            name, labels, value = m.group(1), _labels(m.group(2) or "", line), _value(m.group(3))
            fam = self.family_of(name)
            if fam is None:
                raise ExpositionError(f"sample {name} belongs to no # TYPE'd family")
            if fam != current:
                if fam in done:
                    raise ExpositionError(f"samples of {fam} are not contiguous")
                if current is not None:
                    done.add(current)
                current = fam
            key = (name, frozenset(labels.items()))
            if key in self.samples:
                raise ExpositionError(f"series twice: {line!r}")
            if self.types[fam] == "histogram" and name == fam:
                raise ExpositionError(f"histogram sample without suffix: {line!r}")
            if self.types[fam] == "counter" and not value >= 0:
                raise ExpositionError(f"counter below zero: {line!r}")
            self.samples[key] = value
        self._check_histograms()

    def family_of(self, name):
        if name in self.types:
            return name
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[: -len(suffix)]
            if name.endswith(suffix) and self.types.get(base) in ("histogram", "summary"):
                return base
        return None

    def _check_histograms(self):
        for fam, t in self.types.items():
            if t != "histogram":
                continue
            groups = {}
            for (name, labels), v in self.samples.items():
                if name in (fam + "_bucket", fam + "_sum", fam + "_count"):
                    d = dict(labels)
                    le = d.pop("le", None)
                    if (le is None) != (name != fam + "_bucket"):
                        raise ExpositionError(f"{name}: le label wrong ({dict(labels)})")
                    g = groups.setdefault(frozenset(d.items()), {"b": [], "sum": None,
                                                                 "count": None})
                    if le is not None:
                        g["b"].append((_value(le), v))
                    else:
                        g["sum" if name.endswith("_sum") else "count"] = v
            if not groups:
                raise ExpositionError(f"histogram {fam} without samples")
            for labels, g in groups.items():
                b = sorted(g["b"])
                if not b or b[-1][0] != math.inf:
                    raise ExpositionError(f"{fam}{dict(labels)}: no +Inf bucket")
                if any(b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
                    raise ExpositionError(f"{fam}{dict(labels)}: buckets not cumulative {b}")
                if g["count"] is None or g["sum"] is None:
                    raise ExpositionError(f"{fam}{dict(labels)}: _sum or _count missing")
                if g["count"] != b[-1][1]:
                    raise ExpositionError(f"{fam}: +Inf {b[-1][1]} != _count {g['count']}")

    def get(self, name, **labels):
        """The value of one series; KeyError if absent."""
        return self.samples[(name, frozenset((k, str(v)) for k, v in labels.items()))]

    def buckets(self, fam):
        return sorted((_value(dict(ls)["le"]), v) for (n, ls), v in self.samples.items()
                      if n == fam + "_bucket")


def scrape(addr, path="/metrics"):
    status, headers, body = http_get(addr, path)
    assert status == 200, (status, body)
    ctype = headers.get("content-type", "")
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype, ctype
    return Metrics(body.decode("utf-8"))


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ------------------------------------------------------------------ the parser itself

GOOD = """# HELP x_total a counter
# TYPE x_total counter
x_total{a="1"} 3
x_total{a="2",b="q\\"uote"} 4
# TYPE h histogram
h_bucket{le="0.1"} 1
h_bucket{le="1"} 2
h_bucket{le="+Inf"} 3
h_sum 0.5
h_count 3
"""


@pytest.mark.parametrize("bad, why", [
    (GOOD + "y 1\n", "no # TYPE'd family"),
    (GOOD + 'x_total{a="1"} 5\n', "not contiguous"),
    (GOOD.replace('x_total{a="2",b="q\\"uote"} 4', 'x_total{a="1"} 4'), "series twice"),
    (GOOD.replace('h_bucket{le="1"} 2', 'h_bucket{le="1"} 0'), "not cumulative"),
    (GOOD.replace("h_count 3", "h_count 4"), "_count"),
    (GOOD.replace('h_bucket{le="+Inf"} 3\n', ""), "+Inf"),
    (GOOD.replace("h_sum 0.5\n", ""), "_sum"),
    (GOOD + "# TYPE x_total counter\n", "second TYPE"),
    (GOOD.replace("x_total{a=\"1\"} 3", "x_total{a=1} 3"), "bad labels"),
    (GOOD.replace("x_total{a=\"1\"} 3", "x_total{a=\"1\"} -3"), "below zero"),
    (GOOD.rstrip("\n"), "line feed"),
])
def test_parser_rejects(bad, why):
    Metrics(GOOD)  # the base is fine
    with pytest.raises(ExpositionError, match=re.escape(why)):
        Metrics(bad)


# ------------------------------------------------------------------ the exposition

LEGACY = {  # names tests, docs and dashboards already use
    "stompgate_connections": "gauge", "stompgate_connections_accepted_total": "counter",
    "stompgate_websockets": "gauge", "stompgate_websocket_upgrades_total": "counter",
    "stompgate_handshakes_rejected_total": "counter", "stompgate_http_requests_total": "counter",
    "stompgate_stomp_sessions": "gauge", "stompgate_ws_messages_received_total": "counter",
    "stompgate_ws_messages_sent_total": "counter", "stompgate_bytes_received_total": "counter",
    "stompgate_bytes_sent_total": "counter", "stompgate_ws_protocol_errors_total": "counter",
    "stompgate_slow_consumers_total": "counter", "stompgate_buffered_bytes": "gauge",
    "stompgate_dropped_messages_total": "counter", "stompgate_held_bytes": "gauge",
    "stompgate_auth_ok_total": "counter", "stompgate_auth_refused_total": "counter",
    "stompgate_auth_rejected_busy_total": "counter", "stompgate_auth_queue_length": "gauge",
    "stompgate_quote_symbols": "gauge", "stompgate_quote_subscriptions": "gauge",
    "stompgate_quote_updates_total": "counter", "stompgate_quote_messages_total": "counter",
    "stompgate_quote_conflated_total": "counter",
    "stompgate_quote_work_published_total": "counter",
    "stompgate_quote_results_invalid_total": "counter",
}
NEW = {
    "stompgate_connections_by_transport": "gauge",
    "stompgate_connections_accepted_by_transport_total": "counter",
    "stompgate_stomp_sessions_by_version": "gauge",
    "stompgate_stomp_sessions_connected_total": "counter",
    "stompgate_subscriptions": "gauge",
    "stompgate_stomp_frames_received_total": "counter",
    "stompgate_stomp_frames_sent_total": "counter",
    "stompgate_stomp_errors_total": "counter",
    "stompgate_ws_close_sent_total": "counter",
    "stompgate_ws_close_received_total": "counter",
    "stompgate_broker_up": "gauge",
    "stompgate_broker_service_connections": "gauge",
    "stompgate_broker_connections": "gauge",
    "stompgate_broker_connections_lost_total": "counter",
    "stompgate_broker_reconnects_total": "counter",
    "stompgate_broker_deliveries_total": "counter",
    "stompgate_fanout_latency_seconds": "histogram",
    "stompgate_build_info": "gauge",
    "stompgate_workers": "gauge",
    "stompgate_uptime_seconds": "gauge",
}


def test_exposition_is_strict_and_complete(stompgate):
    gw = stompgate(workers=2)
    m = scrape(gw)
    for name, t in {**LEGACY, **NEW}.items():
        assert m.types.get(name) == t, f"{name}: {m.types.get(name)}, want {t}"
        assert m.help.get(name), f"{name} has no HELP"
    # the unlabelled legacy samples stay unlabelled (tests grep "^stompgate_x N$")
    for name in LEGACY:
        assert (name, frozenset()) in m.samples, name
    assert m.get("stompgate_workers") == 2
    # every fixed label set is there from the start, at zero
    for v in ("1.0", "1.1", "1.2"):
        for t in ("ws", "wss"):
            assert m.get("stompgate_stomp_sessions_by_version", version=v, transport=t) == 0
    for code in [*range(1000, 1016), "other"]:
        assert m.get("stompgate_ws_close_sent_total", code=code) == 0
        assert m.get("stompgate_ws_close_received_total", code=code) == 0
    for r in ("protocol", "limit", "auth", "destination", "broker", "slow_consumer",
              "heartbeat", "timeout", "shutdown", "internal", "other"):
        assert m.get("stompgate_stomp_errors_total", reason=r) == 0
    les = [le for le, _ in m.buckets("stompgate_fanout_latency_seconds")]
    assert les[0] == 0.0001 and 1.0 in les and les[-1] == math.inf
    # the broker: both workers' service connections come up
    assert wait_for(lambda: scrape(gw).get("stompgate_broker_up") == 1, scaled(10))
    assert scrape(gw).get("stompgate_broker_service_connections") == 2
    # HEAD: the same head, no body
    s = socket.create_connection((gw.host, gw.port), timeout=scaled(5))
    s.sendall(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    raw = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        raw += chunk
    s.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and rest == b"", raw[:200]


def test_sessions_by_version_and_transport(stompgate, broker):
    gw = stompgate()
    before = scrape(gw)
    clients = [connected_client(gw, broker, version=v) for v in ("1.0", "1.1", "1.1", "1.2")]

    def sessions(m, v):
        return m.get("stompgate_stomp_sessions_by_version", version=v, transport="ws")

    m = scrape(gw)
    assert [sessions(m, v) for v in ("1.0", "1.1", "1.2")] == [1, 2, 1]
    assert m.get("stompgate_stomp_sessions") == 4
    for v, n in (("1.0", 1), ("1.1", 2), ("1.2", 1)):
        assert m.get("stompgate_stomp_sessions_connected_total", version=v, transport="ws") \
            - before.get("stompgate_stomp_sessions_connected_total", version=v,
                         transport="ws") == n
        assert m.get("stompgate_stomp_sessions_by_version", version=v, transport="wss") == 0
    # 4 WebSocket connections plus the scrape itself on the plain listener
    assert m.get("stompgate_connections_by_transport", transport="ws") >= 4
    assert m.get("stompgate_connections_accepted_by_transport_total", transport="ws") \
        - before.get("stompgate_connections_accepted_by_transport_total", transport="ws") >= 5
    assert m.get("stompgate_stomp_frames_received_total", command="CONNECT") \
        - before.get("stompgate_stomp_frames_received_total", command="CONNECT") == 4
    assert m.get("stompgate_stomp_frames_sent_total", command="CONNECTED") \
        - before.get("stompgate_stomp_frames_sent_total", command="CONNECTED") == 4
    for c in clients[1:3]:
        c.close()
    assert wait_for(lambda: sessions(scrape(gw), "1.1") == 0, scaled(5))
    m = scrape(gw)
    assert sessions(m, "1.0") == 1 and sessions(m, "1.2") == 1
    for c in (clients[0], clients[3]):
        c.close()
    assert wait_for(lambda: scrape(gw).get("stompgate_stomp_sessions") == 0, scaled(5))
    m = scrape(gw)
    assert all(sessions(m, v) == 0 for v in ("1.0", "1.1", "1.2"))
    # the counters of sessions ever connected do not go down
    assert m.get("stompgate_stomp_sessions_connected_total", version="1.1", transport="ws") \
        - before.get("stompgate_stomp_sessions_connected_total", version="1.1",
                     transport="ws") == 2


def test_sessions_over_tls_count_as_wss(stompgate, broker, tmp_path):
    crt, key = make_cert(tmp_path)
    tport = free_port()
    gw = stompgate(tls_listen=f"127.0.0.1:{tport}", tls_cert=str(crt), tls_key=str(key))
    ws = websocket.create_connection(f"wss://127.0.0.1:{tport}/ws", subprotocols=["v11.stomp"],
                                     sslopt={"ca_certs": str(crt)}, timeout=scaled(5))
    ws.send(f"CONNECT\naccept-version:1.1\nlogin:{broker.user}\npasscode:{broker.password}\n"
            "heart-beat:0,0\n\n\x00")
    assert ws.recv().startswith("CONNECTED\nversion:1.1\n")

    def wss(m):
        return m.get("stompgate_stomp_sessions_by_version", version="1.1", transport="wss")
    m = scrape(gw)
    assert wss(m) == 1
    assert m.get("stompgate_stomp_sessions_by_version", version="1.1", transport="ws") == 0
    assert m.get("stompgate_connections_by_transport", transport="wss") == 1
    assert m.get("stompgate_stomp_sessions_connected_total", version="1.1", transport="wss") == 1
    ws.close()
    assert wait_for(lambda: wss(scrape(gw)) == 0, scaled(5))
    assert wait_for(lambda: scrape(gw).get("stompgate_connections_by_transport",
                                           transport="wss") == 0, scaled(5))


def _subscribe(c, dest, sid):
    r = uniq("r")
    c.send_frame("SUBSCRIBE", {"id": sid, "destination": dest, "receipt": r})
    assert c.expect("RECEIPT")["receipt-id"] == r


def test_traffic_moves_frames_deliveries_and_latency(stompgate, broker):
    gw = stompgate()
    before = scrape(gw)
    topic, queue = f"/topic/{uniq('mt')}", f"/queue/{uniq('mq')}"
    sub = connected_client(gw, broker)
    _subscribe(sub, topic, "t")
    _subscribe(sub, queue, "q")
    m = scrape(gw)
    assert m.get("stompgate_subscriptions", kind="shared") == 1
    assert m.get("stompgate_subscriptions", kind="private") == 1
    assert m.get("stompgate_subscriptions", kind="temp") == 0
    pub = connected_client(gw, broker)
    n = 20
    for i in range(n):
        pub.send_frame("SEND", {"destination": topic}, f"t{i}")
        pub.send_frame("SEND", {"destination": queue}, f"q{i}")
    r = uniq("r")
    pub.send_frame("SEND", {"destination": queue, "receipt": r}, "last")
    assert pub.expect("RECEIPT")["receipt-id"] == r
    got = [sub.expect("MESSAGE") for _ in range(2 * n + 1)]
    bodies = sorted(f.body.decode() for f in got)
    assert bodies == sorted([f"t{i}" for i in range(n)] + [f"q{i}" for i in range(n)] + ["last"])
    # a reply through a temp queue: one more subscription of its own kind
    pub.send_frame("SEND", {"destination": queue, "reply-to": "/temp-queue/back",
                            "receipt": "tq"}, "ask")
    assert pub.expect("RECEIPT")["receipt-id"] == "tq"
    assert sub.expect("MESSAGE").body == b"ask"
    assert scrape(gw).get("stompgate_subscriptions", kind="temp") == 1

    def delta(m, name, **labels):
        return m.get(name, **labels) - before.get(name, **labels)

    m = scrape(gw)
    assert delta(m, "stompgate_stomp_frames_received_total", command="SEND") == 2 * n + 2
    assert delta(m, "stompgate_stomp_frames_received_total", command="SUBSCRIBE") == 2
    assert delta(m, "stompgate_stomp_frames_sent_total", command="MESSAGE") == 2 * n + 2
    assert delta(m, "stompgate_stomp_frames_sent_total", command="RECEIPT") >= 4
    assert delta(m, "stompgate_broker_deliveries_total") >= 2 * n + 2
    # every delivery written to a client is one latency observation
    count = delta(m, "stompgate_fanout_latency_seconds_count")
    assert count >= 2 * n + 2, count
    assert m.get("stompgate_fanout_latency_seconds_sum") \
        > before.get("stompgate_fanout_latency_seconds_sum")
    # UNSUBSCRIBE and the end of the session give the subscriptions back
    sub.send_frame("UNSUBSCRIBE", {"id": "t", "receipt": "u"})
    assert sub.expect("RECEIPT")["receipt-id"] == "u"
    m = scrape(gw)
    assert m.get("stompgate_subscriptions", kind="shared") == 0
    assert m.get("stompgate_subscriptions", kind="private") == 1
    assert delta(m, "stompgate_stomp_frames_received_total", command="UNSUBSCRIBE") == 1
    sub.close()
    pub.close()
    assert wait_for(lambda: all(
        scrape(gw).get("stompgate_subscriptions", kind=k) == 0
        for k in ("shared", "private", "temp", "quote")), scaled(5))


def _close_with(gw, code):
    ws = websocket.create_connection(gw.ws_url, subprotocols=["v12.stomp"],
                                     timeout=scaled(5))
    if code is None:
        ws.send(b"", opcode=websocket.ABNF.OPCODE_CLOSE)
    else:
        ws.send(struct.pack("!H", code) + b"bye", opcode=websocket.ABNF.OPCODE_CLOSE)
    # the server echoes the close, then closes the connection
    op, data = ws.recv_data(control_frame=True)
    assert op == websocket.ABNF.OPCODE_CLOSE
    ws.shutdown()
    return struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None


def test_close_codes_sent_and_received(stompgate, broker):
    gw = stompgate()
    before = scrape(gw)
    assert _close_with(gw, 1000) == 1000
    assert _close_with(gw, 1001) == 1001
    assert _close_with(gw, 4001) == 4001
    assert _close_with(gw, None) is None
    # a malformed frame: ERROR, then we close with 1002
    c = connected_client(gw, broker)
    c.send_raw("NOT-A-COMMAND\n\n\x00")
    f, code = c.expect_error_and_close()
    assert code == 1002
    c.ws.shutdown()

    def delta(m, name, code):
        return m.get(name, code=code) - before.get(name, code=code)

    def settled():
        m = scrape(gw)
        return m if delta(m, "stompgate_ws_close_sent_total", 1002) == 1 else None
    m = wait_for(settled, scaled(5))
    assert m, "the 1002 close was not counted"
    sent, recv = "stompgate_ws_close_sent_total", "stompgate_ws_close_received_total"
    assert delta(m, sent, 1000) == 1
    assert delta(m, recv, 1001) == 1 and delta(m, sent, 1001) == 1
    assert delta(m, recv, "other") == 1 and delta(m, sent, "other") == 1
    assert delta(m, recv, 1005) == 1 and delta(m, sent, 1005) == 1  # no code either way
    for code in (1003, 1007, 1008, 1009, 1011, 1013):
        assert delta(m, sent, code) == 0
    assert delta(m, sent, 1002) == 1
    # the client answered our 1002: python-websocket replies 1000, an echo would be 1002
    assert delta(m, recv, 1000) + delta(m, recv, 1002) == 2
    assert delta(m, recv, 1000) >= 1


def test_errors_counted_by_reason(stompgate, broker):
    gw = stompgate()
    before = scrape(gw)

    def reason(m, r):
        return m.get("stompgate_stomp_errors_total", reason=r) \
            - before.get("stompgate_stomp_errors_total", reason=r)

    # protocol: a SUBSCRIBE without destination
    c = connected_client(gw, broker)
    c.send_frame("SUBSCRIBE", {"id": "x"})
    f, code = c.expect_error_and_close()
    assert "destination" in f["message"] and code == 1002
    # destination: the broker has no such exchange (its NOT_FOUND, reported later)
    c = connected_client(gw, broker)
    c.send_frame("SEND", {"destination": f"/exchange/{uniq('nx')}/k", "receipt": "r"}, "x")
    f, _ = c.expect_error_and_close()
    assert "NOT_FOUND" in f["message"]
    # auth: the broker refuses the login
    c = StompClient(gw.ws_url)
    f = c.connect(broker.user, "not-the-password")
    assert f.command == "ERROR"
    c.close()
    # limit: more subscriptions than max_subscriptions would take a while; a frame over
    # the CONNECT bound is quick
    c = StompClient(gw.ws_url)
    c.send_frame("CONNECT", {"accept-version": "1.2", "login": "x",
                             "x-pad": "p" * (63 * 1024)})
    f, code = c.expect_error_and_close()
    assert code == 1009
    c.close()

    def settled():
        m = scrape(gw)
        return m if reason(m, "limit") == 1 else None
    m = wait_for(settled, scaled(5))
    assert m, "the size ERROR was not counted"
    assert reason(m, "protocol") == 1
    assert reason(m, "destination") == 1
    assert reason(m, "auth") == 1
    assert reason(m, "limit") == 1
    for r in ("broker", "slow_consumer", "heartbeat", "timeout", "shutdown", "internal",
              "other"):
        assert reason(m, r) == 0, r
    assert m.get("stompgate_stomp_frames_sent_total", command="ERROR") \
        - before.get("stompgate_stomp_frames_sent_total", command="ERROR") == 4


def test_readyz_follows_the_broker(own_broker, stompgate_for):
    gw = stompgate_for(own_broker, workers=2, reconnect_max_ms=500)
    assert wait_for(lambda: http_get(gw, "/readyz")[0] == 200, scaled(15))
    m = scrape(gw)
    assert m.get("stompgate_broker_up") == 1
    assert m.get("stompgate_broker_connections_lost_total") == 0
    own_broker.stop()
    assert wait_for(lambda: http_get(gw, "/readyz")[0] == 503, scaled(20))
    assert http_get(gw, "/healthz")[0] == 200  # alive all along
    m = scrape(gw)
    assert m.get("stompgate_broker_up") == 0
    assert m.get("stompgate_broker_connections_lost_total") >= 1
    own_broker.start()
    assert wait_for(lambda: http_get(gw, "/readyz")[0] == 200, scaled(30))
    # /readyz answers for the worker that served it; broker_up for all of them
    assert wait_for(lambda: scrape(gw).get("stompgate_broker_up") == 1, scaled(30))
    m = scrape(gw)
    assert m.get("stompgate_broker_service_connections") == 2
    assert m.get("stompgate_broker_reconnects_total") >= 2
    assert http_get(gw, "/healthz")[0] == 200


# ------------------------------------------------------------------ access

def test_admin_listen_moves_metrics_and_readyz(stompgate, broker):
    aport = free_port()
    gw = stompgate(admin_listen=f"127.0.0.1:{aport}")
    admin = ("127.0.0.1", aport)
    assert wait_for(lambda: http_get(admin, "/readyz")[0] == 200, scaled(10))
    # the public listener: 404 for both, /healthz stays
    for path in ("/metrics", "/readyz"):
        assert http_get(gw, path)[0] == 404, path
    assert http_get(gw, "/healthz")[0] == 200
    # the admin listener: the three endpoints and nothing else
    m = scrape(admin)
    assert m.get("stompgate_connections_by_transport", transport="admin") >= 1
    assert m.get("stompgate_connections_accepted_by_transport_total", transport="admin") >= 1
    assert http_get(admin, "/healthz")[0] == 200
    assert http_get(admin, "/")[0] == 404
    assert http_get(admin, "/index.html")[0] == 404
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(f"ws://127.0.0.1:{aport}/ws", timeout=scaled(5))
    assert e.value.status_code == 404
    # STOMP still works on the public listener
    c = connected_client(gw, broker)
    c.close()


def test_metrics_public_opens_the_public_listener(stompgate):
    aport = free_port()
    gw = stompgate(admin_listen=f"127.0.0.1:{aport}", metrics_public=True)
    scrape(gw)
    assert http_get(gw, "/readyz")[0] in (200, 503)
    scrape(("127.0.0.1", aport))


def test_metrics_public_is_reloaded_by_sighup(stompgate):
    aport = free_port()
    gw = stompgate(admin_listen=f"127.0.0.1:{aport}")
    assert http_get(gw, "/metrics")[0] == 404
    gw.config["metrics_public"] = True
    write_config(gw.config_path, gw.config)
    gw.send_signal(signal.SIGHUP)
    gw.wait_log(r"configuration reloaded: 1 option changed")
    scrape(gw)
    assert http_get(gw, "/readyz")[0] in (200, 503)
    scrape(("127.0.0.1", aport))  # the admin listener stays


def _own_ip():
    """A non-loopback address of this machine, or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: a route lookup, nothing is sent
        ip = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if ip.startswith("127.") else ip


@pytest.fixture
def own_ip():
    ip = _own_ip()
    if not ip:
        pytest.skip("no non-loopback IPv4 address to connect from")
    return ip


def _get_from(ip, port, path):
    """GET path from ip:port with the connection's source address ip (so not loopback)."""
    c = http.client.HTTPConnection(ip, port, timeout=scaled(5), source_address=(ip, 0))
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def test_loopback_only_by_default(stompgate, own_ip):
    lport, eport = free_port(), free_port(own_ip)
    gw = stompgate(listen=f"127.0.0.1:{lport},{own_ip}:{eport}")
    # from the machine's own address: not loopback
    assert _get_from(own_ip, eport, "/metrics")[0] == 403
    assert _get_from(own_ip, eport, "/readyz")[0] == 403
    assert _get_from(own_ip, eport, "/healthz")[0] == 200
    # from loopback
    scrape(gw)
    assert http_get(gw, "/readyz")[0] in (200, 503)


def test_metrics_public_serves_every_peer(stompgate, own_ip):
    lport, eport = free_port(), free_port(own_ip)
    stompgate(listen=f"127.0.0.1:{lport},{own_ip}:{eport}", metrics_public=True)
    status, body = _get_from(own_ip, eport, "/metrics")
    assert status == 200
    Metrics(body.decode())
    assert _get_from(own_ip, eport, "/readyz")[0] in (200, 503)
