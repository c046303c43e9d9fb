"""A small, strict STOMP-over-WebSocket test client (python3-websocket).

Every WebSocket message from the server must hold exactly one STOMP frame
ending in NUL with nothing after it (or a lone EOL heart-beat): the book's
client depends on that, so recv() asserts it on every frame.
"""

import socket
import struct
import time

import websocket

from sgtest import scaled

# python3-websocket 1.2.3 rejects close codes 1012 and 1013, which IANA registered after
# RFC 6455 ("Service Restart", "Try Again Later") and browsers and node's ws accept; the
# daemon sends 1013 when the broker stays away. Let the test client read them.
websocket._abnf.VALID_CLOSE_STATUS = tuple(websocket._abnf.VALID_CLOSE_STATUS) + (1012, 1013)


class Frame:
    def __init__(self, command, headers, body, raw):
        self.command = command
        self.headers = headers  # dict, first occurrence wins
        self.header_list = []
        self.body = body
        self.raw = raw

    def __getitem__(self, k):
        return self.headers[k]

    def get(self, k, d=None):
        return self.headers.get(k, d)

    def __repr__(self):
        return f"<Frame {self.command} {self.headers} body={self.body[:60]!r}>"


def escape(v):
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace(":", "\\c")


def unescape(v, version):
    if version == "1.0":
        return v
    out, i = [], 0
    table = {"n": "\n", "c": ":", "\\": "\\", "r": "\r"}
    while i < len(v):
        if v[i] == "\\":
            out.append(table[v[i + 1]])
            i += 2
        else:
            out.append(v[i])
            i += 1
    return "".join(out)


def parse_frame(data, version="1.2"):
    """Parses one server frame (bytes). Asserts nothing follows the NUL."""
    assert isinstance(data, (bytes, bytearray)), data
    head, sep, rest = data.partition(b"\n\n")
    assert sep, f"no blank line in {data[:200]!r}"
    lines = head.decode("utf-8").split("\n")
    command = lines[0]
    headers, hl = {}, []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        k, v = unescape(k, version if command != "CONNECTED" else "1.0"), unescape(
            v, version if command != "CONNECTED" else "1.0")
        hl.append((k, v))
        headers.setdefault(k, v)
    if "content-length" in headers:
        n = int(headers["content-length"])
        body = rest[:n]
        assert rest[n:] == b"\x00", f"bytes after the body: {rest[n:]!r}"
    else:
        assert rest.endswith(b"\x00") and rest.count(b"\x00") == 1, f"bad end: {rest[-20:]!r}"
        body = rest[:-1]
    f = Frame(command, headers, bytes(body), bytes(data))
    f.header_list = hl
    return f


class Closed(Exception):
    def __init__(self, code, reason):
        super().__init__(f"closed {code} {reason!r}")
        self.code = code
        self.reason = reason


class StompClient:
    def __init__(self, url, subprotocols=("v12.stomp", "v11.stomp", "v10.stomp"), timeout=5,
                 header=None, socket_opts=None, origin=None):
        kw = {"timeout": scaled(timeout)}
        if origin:
            kw["origin"] = origin
        if socket_opts:
            kw["sockopt"] = tuple(socket_opts)  # setsockopt before connect
        if subprotocols:
            kw["subprotocols"] = list(subprotocols)
        if header:
            kw["header"] = header
        self.ws = websocket.create_connection(url, **kw)
        self.version = "1.2"
        self.heartbeats = 0
        self.heartbeat_times = []  # time.monotonic() of each heart-beat received
        self.pending = []
        self.subprotocol = self.ws.getsubprotocol()

    # -- sending
    def send_raw(self, data, binary=False):
        if isinstance(data, str):
            data = data.encode()
        if binary:
            self.ws.send_binary(data)
        else:
            self.ws.send(data.decode("utf-8") if not binary else data)

    def send_frame(self, command, headers=None, body=b"", content_length=False):
        if isinstance(body, str):
            body = body.encode()
        out = [command]
        for k, v in (headers or {}).items():
            if self.version != "1.0" and command not in ("CONNECT", "STOMP"):
                k, v = escape(k), escape(v)
            out.append(f"{k}:{v}")
        if content_length:
            out.append(f"content-length:{len(body)}")
        data = ("\n".join(out) + "\n\n").encode() + body + b"\x00"
        if b"\x00" in body or not _utf8(data):
            self.ws.send_binary(data)
        else:
            self.ws.send(data.decode())

    # -- receiving
    def recv_msg(self, timeout=5):
        """Next data message (bytes) or raises Closed; heart-beats are counted and skipped.
        Raises websocket.WebSocketTimeoutException when nothing but heart-beats came within
        timeout seconds."""
        deadline = time.monotonic() + scaled(timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise websocket.WebSocketTimeoutException("timed out")
            self.ws.settimeout(left)
            try:
                op, data = self.ws.recv_data(control_frame=True)
            except websocket.WebSocketConnectionClosedException:
                raise Closed(None, "tcp closed")
            if op == websocket.ABNF.OPCODE_CLOSE:
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                raise Closed(code, data[2:].decode("utf-8", "replace"))
            if op in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
                continue
            if data in (b"\n", b"\r\n"):
                self.heartbeats += 1
                self.heartbeat_times.append(time.monotonic())
                continue
            return data

    def recv(self, timeout=5):
        return parse_frame(self.recv_msg(timeout), self.version)

    def expect(self, command, timeout=5):
        """Next frame of this command. MESSAGE and RECEIPT frames that arrive first are kept
        for a later expect() (a delivery may overtake the RECEIPT of the SEND that caused
        it); anything else out of turn fails the test."""
        for i, f in enumerate(self.pending):
            if f.command == command:
                return self.pending.pop(i)
        deadline = time.monotonic() + scaled(timeout)
        while True:
            f = self.recv(max(0.001, deadline - time.monotonic()) / scaled(1))
            if f.command == command:
                return f
            assert f.command in ("MESSAGE", "RECEIPT"), f"expected {command}, got {f!r}"
            self.pending.append(f)

    def expect_error_and_close(self, timeout=5):
        """ERROR with a message header, then a WebSocket close; returns (frame, close code)."""
        f = self.recv(timeout)
        assert f.command == "ERROR", f"expected ERROR, got {f!r}"
        assert f.get("message"), f"ERROR without message header: {f!r}"
        try:
            extra = self.recv_msg(timeout)
            raise AssertionError(f"data after ERROR: {extra!r}")
        except Closed as c:
            return f, c.code

    def connect(self, login, passcode, version="1.2", host=None, heart_beat="0,0", extra=None):
        h = {"accept-version": version, "login": login, "passcode": passcode,
             "heart-beat": heart_beat}
        if host:
            h["host"] = host
        h.update(extra or {})
        self.send_frame("CONNECT", h)
        f = self.recv()
        if f.command == "CONNECTED":
            self.version = f.get("version", "1.0")
        return f

    def send_heartbeat(self):
        """One STOMP heart-beat (a lone EOL) as its own WebSocket message."""
        self.ws.send("\n")

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass

    def silent_tcp_closed(self, timeout=5):
        """True if the server closed the TCP connection within timeout."""
        self.ws.sock.settimeout(scaled(timeout))
        try:
            while True:
                if not self.ws.sock.recv(4096):
                    return True
        except socket.timeout:
            return False
        except OSError:
            return True


def _utf8(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def connected_client(gw, broker, version="1.2", **kw):
    c = StompClient(gw.ws_url, **kw)
    f = c.connect(broker.user, broker.password, version=version)
    assert f.command == "CONNECTED", f
    return c


def sync(c, receipt="sync"):
    """A receipt round trip: everything sent before it was processed."""
    c.send_frame("SUBSCRIBE" if False else "BEGIN", {"transaction": f"tx-{receipt}",
                                                   "receipt": receipt})
    f = c.expect("RECEIPT")
    assert f["receipt-id"] == receipt
    c.send_frame("ABORT", {"transaction": f"tx-{receipt}"})


def now():
    return time.monotonic()
