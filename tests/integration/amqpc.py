"""A minimal blocking AMQP 0-9-1 client for the integration tests (no dependency).

amqp-tools cannot declare exchanges or show a message's properties, and Debian ships no
Python AMQP library here, so the few methods the tests need are spoken directly:

    with AmqpClient(broker) as a:                 # login broker.user, vhost /
        a.exchange_declare("ex", "topic")
        a.publish("amq.topic", "key", b"body", {"delivery_mode": 2})
        m = a.get("queue")                        # Message or None (queue empty)
        m.body, m.props["delivery_mode"], m.props.get("headers"), m.redelivered

Everything runs on channel 1. A channel or connection close from the broker raises
AmqpError with its reply code and text. Heart-beats are switched off (tune-ok 0).
"""

import socket
import struct

from sgtest import scaled

FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = b"\xce"

# (class, method) pairs
CONNECTION_START, CONNECTION_START_OK = (10, 10), (10, 11)
CONNECTION_TUNE, CONNECTION_TUNE_OK = (10, 30), (10, 31)
CONNECTION_OPEN, CONNECTION_OPEN_OK = (10, 40), (10, 41)
CONNECTION_CLOSE, CONNECTION_CLOSE_OK = (10, 50), (10, 51)
CHANNEL_OPEN, CHANNEL_OPEN_OK = (20, 10), (20, 11)
CHANNEL_CLOSE, CHANNEL_CLOSE_OK = (20, 40), (20, 41)
EXCHANGE_DECLARE, EXCHANGE_DECLARE_OK = (40, 10), (40, 11)
EXCHANGE_DELETE, EXCHANGE_DELETE_OK = (40, 20), (40, 21)
QUEUE_DECLARE, QUEUE_DECLARE_OK = (50, 10), (50, 11)
QUEUE_DELETE, QUEUE_DELETE_OK = (50, 40), (50, 41)
BASIC_PUBLISH = (60, 40)
BASIC_GET, BASIC_GET_OK, BASIC_GET_EMPTY = (60, 70), (60, 71), (60, 72)
BASIC_ACK = (60, 80)

# basic properties in flag order (bit 15 first)
_PROPS = [
    ("content_type", "s"), ("content_encoding", "s"), ("headers", "F"),
    ("delivery_mode", "o"), ("priority", "o"), ("correlation_id", "s"),
    ("reply_to", "s"), ("expiration", "s"), ("message_id", "s"), ("timestamp", "T"),
    ("type", "s"), ("user_id", "s"), ("app_id", "s"), ("cluster_id", "s"),
]


class AmqpError(Exception):
    def __init__(self, code, text, where):
        super().__init__(f"{where} closed by the broker: {code} {text}")
        self.code = code
        self.text = text


class Message:
    def __init__(self, body, props, redelivered, exchange, routing_key):
        self.body = body
        self.props = props
        self.redelivered = redelivered
        self.exchange = exchange
        self.routing_key = routing_key

    def __repr__(self):
        return f"<Message {self.exchange}/{self.routing_key} {self.props} {self.body[:40]!r}>"


# ---------------------------------------------------------------- encoding

def _shortstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("B", len(b)) + b


def _longstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!I", len(b)) + b


def _value(v):
    if isinstance(v, bool):
        return b"t" + struct.pack("B", int(v))
    if isinstance(v, int):
        return b"l" + struct.pack("!q", v)
    if isinstance(v, dict):
        return b"F" + _table(v)
    return b"S" + _longstr(v)


def _table(d):
    body = b"".join(_shortstr(k) + _value(v) for k, v in (d or {}).items())
    return struct.pack("!I", len(body)) + body


class _Reader:
    def __init__(self, data):
        self.d = data
        self.i = 0

    def take(self, n):
        b = self.d[self.i:self.i + n]
        self.i += n
        return b

    def unpack(self, fmt):
        n = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(n))

    def shortstr(self):
        (n,) = self.unpack("B")
        return self.take(n).decode("utf-8", "replace")

    def longstr(self):
        (n,) = self.unpack("!I")
        return self.take(n)

    def table(self):
        (n,) = self.unpack("!I")
        end = self.i + n
        out = {}
        while self.i < end:
            k = self.shortstr()
            out[k] = self.value()
        return out

    def value(self):
        t = self.take(1)
        simple = {b"t": "?", b"b": "b", b"B": "B", b"s": "!h", b"u": "!H", b"I": "!i",
                  b"i": "!I", b"l": "!q", b"L": "!Q", b"f": "!f", b"d": "!d", b"T": "!Q"}
        if t in simple:
            return self.unpack(simple[t])[0]
        if t == b"S":
            return self.longstr().decode("utf-8", "replace")
        if t == b"x":
            return self.longstr()
        if t == b"F":
            return self.table()
        if t == b"A":
            (n,) = self.unpack("!I")
            end, out = self.i + n, []
            while self.i < end:
                out.append(self.value())
            return out
        if t == b"D":
            scale, v = self.unpack("!Bi")
            return v / (10 ** scale)
        if t == b"V":
            return None
        raise ValueError(f"unknown AMQP field type {t!r}")


def decode_properties(payload):
    """(body_size, {name: value}) of a content header frame's payload."""
    r = _Reader(payload)
    _cls, _weight, size, flags = r.unpack("!HHQH")
    props = {}
    for bit, (name, kind) in zip(range(15, 1, -1), _PROPS):
        if not flags & (1 << bit):
            continue
        if kind == "s":
            props[name] = r.shortstr()
        elif kind == "o":
            props[name] = r.unpack("B")[0]
        elif kind == "T":
            props[name] = r.unpack("!Q")[0]
        else:
            props[name] = r.table()
    return size, props


def encode_properties(body_size, props):
    flags, out = 0, b""
    for bit, (name, kind) in zip(range(15, 1, -1), _PROPS):
        if name not in (props or {}):
            continue
        flags |= 1 << bit
        v = props[name]
        if kind == "s":
            out += _shortstr(v)
        elif kind == "o":
            out += struct.pack("B", v)
        elif kind == "T":
            out += struct.pack("!Q", v)
        else:
            out += _table(v)
    return struct.pack("!HHQH", 60, 0, body_size, flags) + out


# ---------------------------------------------------------------- client

class AmqpClient:
    """One connection, channel 1 (see module doc)."""

    def __init__(self, broker, user=None, password=None, vhost="/", timeout=10):
        self.sock = socket.create_connection((broker.host, broker.amqp_port),
                                             timeout=scaled(timeout))
        self.buf = b""
        self.frame_max = 131072
        self.sock.sendall(b"AMQP\x00\x00\x09\x01")
        self._expect(0, CONNECTION_START)
        user = broker.user if user is None else user
        password = broker.password if password is None else password
        self._method(0, CONNECTION_START_OK, _table({}) + _shortstr("PLAIN")
                     + _longstr(f"\0{user}\0{password}") + _shortstr("en_US"))
        r = self._expect(0, CONNECTION_TUNE)
        chmax, fmax, _hb = r.unpack("!HIH")
        self.frame_max = min(fmax or self.frame_max, self.frame_max)
        self._method(0, CONNECTION_TUNE_OK, struct.pack("!HIH", chmax, self.frame_max, 0))
        self._method(0, CONNECTION_OPEN, _shortstr(vhost) + _shortstr("") + b"\x00")
        self._expect(0, CONNECTION_OPEN_OK)
        self._method(1, CHANNEL_OPEN, _shortstr(""))
        self._expect(1, CHANNEL_OPEN_OK)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- frames
    def _frame(self, ftype, channel, payload):
        self.sock.sendall(struct.pack("!BHI", ftype, channel, len(payload)) + payload + FRAME_END)

    def _method(self, channel, cm, args=b""):
        self._frame(FRAME_METHOD, channel, struct.pack("!HH", *cm) + args)

    def _read_frame(self):
        while True:
            if len(self.buf) >= 7:
                ftype, channel, size = struct.unpack("!BHI", self.buf[:7])
                if len(self.buf) >= 8 + size:
                    payload = self.buf[7:7 + size]
                    assert self.buf[7 + size:8 + size] == FRAME_END, "bad AMQP frame end"
                    self.buf = self.buf[8 + size:]
                    if ftype == FRAME_HEARTBEAT:
                        continue
                    return ftype, channel, payload
            data = self.sock.recv(65536)
            if not data:
                raise AmqpError(None, "socket closed", "connection")
            self.buf += data

    def _expect(self, channel, *cms):
        """The next method frame; must be one of cms (returns a reader positioned after
        the method id, with .cm set). A close from the broker raises AmqpError."""
        while True:
            ftype, ch, payload = self._read_frame()
            if ftype != FRAME_METHOD:
                continue
            r = _Reader(payload)
            cm = r.unpack("!HH")
            if cm == CONNECTION_CLOSE:
                code, text = r.unpack("!H")[0], r.shortstr()
                self._method(0, CONNECTION_CLOSE_OK)
                raise AmqpError(code, text, "connection")
            if cm == CHANNEL_CLOSE:
                code, text = r.unpack("!H")[0], r.shortstr()
                self._method(ch, CHANNEL_CLOSE_OK)
                self._reopen(ch)
                raise AmqpError(code, text, f"channel {ch}")
            if cm in cms and ch == channel:
                r.cm = cm
                return r

    def _reopen(self, ch):
        # the channel is gone: open it again so the client stays usable
        self._method(ch, CHANNEL_OPEN, _shortstr(""))
        self._expect(ch, CHANNEL_OPEN_OK)

    # -- methods
    def exchange_declare(self, name, kind="topic", durable=False, auto_delete=False):
        bits = (2 if durable else 0) | (4 if auto_delete else 0)
        self._method(1, EXCHANGE_DECLARE, struct.pack("!H", 0) + _shortstr(name)
                     + _shortstr(kind) + struct.pack("B", bits) + _table({}))
        self._expect(1, EXCHANGE_DECLARE_OK)

    def exchange_delete(self, name):
        self._method(1, EXCHANGE_DELETE, struct.pack("!H", 0) + _shortstr(name) + b"\x00")
        self._expect(1, EXCHANGE_DELETE_OK)

    def queue_declare(self, name, durable=False, exclusive=False, auto_delete=False,
                      passive=False, arguments=None):
        """(name, message_count, consumer_count)."""
        bits = (1 if passive else 0) | (2 if durable else 0) | (4 if exclusive else 0) \
            | (8 if auto_delete else 0)
        self._method(1, QUEUE_DECLARE, struct.pack("!H", 0) + _shortstr(name)
                     + struct.pack("B", bits) + _table(arguments))
        r = self._expect(1, QUEUE_DECLARE_OK)
        q = r.shortstr()
        messages, consumers = r.unpack("!II")
        return q, messages, consumers

    def queue_delete(self, name):
        self._method(1, QUEUE_DELETE, struct.pack("!H", 0) + _shortstr(name) + b"\x00")
        self._expect(1, QUEUE_DELETE_OK)

    def publish(self, exchange, routing_key, body, props=None):
        if isinstance(body, str):
            body = body.encode()
        self._method(1, BASIC_PUBLISH, struct.pack("!H", 0) + _shortstr(exchange)
                     + _shortstr(routing_key) + b"\x00")
        self._frame(FRAME_HEADER, 1, encode_properties(len(body), props))
        step = self.frame_max - 8
        for i in range(0, len(body), step):
            self._frame(FRAME_BODY, 1, body[i:i + step])

    def get(self, queue, ack=True):
        """basic.get: a Message, or None when the queue is empty. With ack (default) the
        message is acknowledged (removed); else it is fetched with no-ack."""
        self._method(1, BASIC_GET, struct.pack("!H", 0) + _shortstr(queue)
                     + struct.pack("B", 0 if ack else 1))
        r = self._expect(1, BASIC_GET_OK, BASIC_GET_EMPTY)
        if r.cm == BASIC_GET_EMPTY:
            return None
        (tag,) = r.unpack("!Q")
        (redelivered,) = r.unpack("B")
        exchange, rkey = r.shortstr(), r.shortstr()
        while True:
            ftype, ch, payload = self._read_frame()
            if ftype == FRAME_HEADER and ch == 1:
                break
        size, props = decode_properties(payload)
        body = b""
        while len(body) < size:
            ftype, ch, payload = self._read_frame()
            if ftype == FRAME_BODY and ch == 1:
                body += payload
        if ack:
            self._method(1, BASIC_ACK, struct.pack("!QB", tag, 0))
        return Message(body, props, bool(redelivered & 1), exchange, rkey)

    def close(self):
        if self.sock is None:
            return
        try:
            self._method(0, CONNECTION_CLOSE, struct.pack("!H", 200) + _shortstr("bye")
                         + struct.pack("!HH", 0, 0))
            self._expect(0, CONNECTION_CLOSE_OK)
        except (OSError, AmqpError, AssertionError):
            pass
        finally:
            self.sock.close()
            self.sock = None
