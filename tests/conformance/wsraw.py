"""A tiny raw RFC 6455 client for conformance tests: it sends whatever bytes a test
asks for (bad opcodes, reserved bits, lying lengths, unmasked frames, 1-byte TCP
chops) and checks every frame the server sends against the RFC.

Nothing here hides server behaviour: the frame reader returns control frames as they
arrive (no automatic pong), and it raises ServerViolation on anything a server must
never send (a masked frame, RSV bits without an extension, a reserved opcode, a
fragmented or oversized control frame, a non-minimal length).
"""

import base64
import hashlib
import os
import socket
import ssl
import struct
import time
from typing import NamedTuple

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
DATA_OPS = (OP_CONT, OP_TEXT, OP_BINARY)
CONTROL_OPS = (OP_CLOSE, OP_PING, OP_PONG)


class ServerViolation(AssertionError):
    """The server sent something RFC 6455 forbids."""


class ConnectionClosed(Exception):
    """TCP closed (EOF or reset) while a frame or response was expected."""


class Timeout(Exception):
    """Nothing (complete) arrived in time."""


def accept_key(key):
    """RFC 6455 4.2.2 step 5.4: base64(SHA-1(key + GUID))."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def mask_bytes(data, key):
    """XOR data with the 4-byte key (RFC 6455 5.3); fast for megabytes."""
    n = len(data)
    if n == 0:
        return b""
    keystream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(keystream, "big")).to_bytes(n, "big")


def frame(opcode, payload=b"", fin=True, rsv=0, mask=True, key=None, length=None, len_form=None):
    """Bytes of one client frame.

    rsv      3-bit value: 4 = RSV1, 2 = RSV2, 1 = RSV3
    mask     False sends the payload unmasked (MASK bit 0, no key)
    key      the 4-byte masking key (random by default)
    length   announced payload length (default len(payload)); may lie
    len_form force 7, 16 or 64 to pick the length encoding (non-minimal forms)
    """
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask else 0
    if len_form is None:
        len_form = 7 if n < 126 else 16 if n < 65536 else 64
    if len_form == 7:
        hdr = struct.pack("!BB", b0, mbit | n)
    elif len_form == 16:
        hdr = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return hdr + payload
    if key is None:
        key = os.urandom(4)
    return hdr + key + mask_bytes(payload, key)


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + reason


class Frame(NamedTuple):
    fin: bool
    rsv: int
    opcode: int
    payload: bytes

    def __repr__(self):
        p = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        return f"Frame(fin={int(self.fin)}, rsv={self.rsv}, op={self.opcode:#x}, len={len(self.payload)}, {p!r})"


class Close(NamedTuple):
    code: object  # int, or None for an empty close payload
    reason: bytes
    before: list  # frames received before the close frame
    elapsed: float  # seconds from the call until the close frame arrived


class HttpResponse(NamedTuple):
    status: int
    reason: str
    headers: dict  # lower-case name -> list of values
    body: bytes
    raw_head: bytes

    def header(self, name):
        v = self.headers.get(name.lower())
        return v[0] if v else None


def _tls_ctx(cafile):
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    ctx.check_hostname = True  # the cert carries IP:127.0.0.1 in its SAN
    return ctx


def open_socket(host, port, tls_ca=None, timeout=5.0, source=None):
    """TCP (and TLS when tls_ca names the CA file to trust) to host:port."""
    s = socket.create_connection((host, port), timeout=timeout, source_address=source)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls_ca:
        s = _tls_ctx(tls_ca).wrap_socket(s, server_hostname=host)
    return s


def upgrade_request(path="/echo", host="127.0.0.1", key=None, protocols=None, origin=None,
                    version="13", extra=(), method="GET", http="HTTP/1.1", omit=()):
    """Bytes of an upgrade request; omit names headers to leave out (lower case)."""
    key = new_key() if key is None else key
    hdrs = [("Host", host), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", version)]
    if protocols is not None:
        hdrs.append(("Sec-WebSocket-Protocol", protocols))
    if origin is not None:
        hdrs.append(("Origin", origin))
    hdrs = [(k, v) for k, v in hdrs if k.lower() not in omit and v is not None]
    hdrs += list(extra)
    lines = [f"{method} {path} {http}"] + [f"{k}: {v}" for k, v in hdrs]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Conn:
    """A socket (plain or TLS) with a receive buffer, speaking HTTP then WebSocket."""

    def __init__(self, sock, timeout=5.0):
        self.sock = sock
        self.buf = bytearray()
        self.eof = False
        self.timeout = timeout

    # ---- bytes

    def send(self, data, chop=None, delay=0.0):
        """Send data, optionally in chunks of `chop` bytes with a pause after each.
        A server may close as soon as it has seen a fault, before the rest of what a
        test sends: if the peer has gone away, stop sending and return False (the
        test then reads what the server said before it left)."""
        chop = chop or len(data) or 1
        try:
            for i in range(0, len(data), chop):
                self.sock.sendall(data[i:i + chop])
                if delay:
                    time.sleep(delay)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            self.send_failed = True
            return False
        return True

    send_failed = False
    closed_by = "EOF"

    def _fill(self, deadline):
        """Receive more bytes into buf; raise Timeout or ConnectionClosed."""
        if self.eof:
            raise ConnectionClosed("connection already closed")
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout()
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(262144)
        except (socket.timeout, TimeoutError):
            raise Timeout() from None
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError) as e:
            # ssl.SSLError: a fatal TLS alert (e.g. OpenSSL 3's decode_error on a
            # peer's FIN without close_notify) ends the connection just the same
            self.eof = True
            self.closed_by = repr(e)
            raise ConnectionClosed(repr(e)) from None
        if not chunk:
            self.eof = True
            raise ConnectionClosed("EOF")
        self.buf += chunk

    def _need(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)

    def _take(self, n):
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def wait_eof(self, timeout=None):
        """Read (discarding) until the peer closes TCP; returns the seconds it took,
        or None on timeout. Bytes that arrive meanwhile are kept in self.buf."""
        t0 = time.monotonic()
        deadline = t0 + (self.timeout if timeout is None else timeout)
        while True:
            try:
                self._fill(deadline)
            except ConnectionClosed:
                return time.monotonic() - t0
            except Timeout:
                return None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- HTTP

    def read_http_response(self, timeout=None, read_body=True):
        """The response head (and a Content-Length body). Bytes after it stay in buf."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        end = self.buf.index(b"\r\n\r\n") + 4
        head = self._take(end)
        lines = head[:-4].decode("latin-1").split("\r\n")
        version, status, *reason = lines[0].split(" ", 2)
        assert version == "HTTP/1.1", f"bad status line {lines[0]!r}"
        headers = {}
        for ln in lines[1:]:
            name, sep, value = ln.partition(":")
            assert sep and name == name.strip(), f"bad header line {ln!r}"
            headers.setdefault(name.lower(), []).append(value.strip())
        body = b""
        if read_body and int(status) != 101 and "content-length" in headers:
            n = int(headers["content-length"][0])
            self._need(n, deadline)
            body = self._take(n)
        return HttpResponse(int(status), reason[0] if reason else "", headers, body, head)

    # ---- WebSocket

    def recv_frame(self, timeout=None):
        """The next server frame, checked against RFC 6455."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        fin, rsv, op = bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF
        if b1 & 0x80:
            raise ServerViolation(f"server frame is masked (5.1): {bytes(self.buf[:2]).hex()}")
        if rsv:
            raise ServerViolation(f"server frame has RSV bits {rsv:#x} without an extension")
        if op not in DATA_OPS + CONTROL_OPS:
            raise ServerViolation(f"server frame has reserved opcode {op:#x}")
        n, hl = b1 & 0x7F, 2
        if n == 126:
            self._need(4, deadline)
            n, hl = struct.unpack("!H", self.buf[2:4])[0], 4
            if n < 126:
                raise ServerViolation(f"non-minimal 16-bit length {n} (5.2)")
        elif n == 127:
            self._need(10, deadline)
            n, hl = struct.unpack("!Q", self.buf[2:10])[0], 10
            if n >> 63:
                raise ServerViolation("64-bit length with the top bit set")
            if n < 65536:
                raise ServerViolation(f"non-minimal 64-bit length {n} (5.2)")
        if op in CONTROL_OPS and (not fin or n > 125):
            raise ServerViolation(f"bad control frame: fin={fin} len={n} (5.5)")
        self._need(hl + n, deadline)
        del self.buf[:hl]
        return Frame(fin, rsv, op, self._take(n))

    def recv_message(self, timeout=None):
        """The next data message as (opcode, payload), joining server fragments.
        Any control frame is unexpected here: a close raises ServerViolation with
        its code, so a test sees why its echo did not come."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        opcode, parts = None, []
        while True:
            f = self.recv_frame(max(deadline - time.monotonic(), 0.001))
            if f.opcode in CONTROL_OPS:
                extra = ""
                if f.opcode == OP_CLOSE and len(f.payload) >= 2:
                    extra = f" code {struct.unpack('!H', f.payload[:2])[0]} {f.payload[2:]!r}"
                raise AssertionError(f"expected a data message, got {f!r}{extra}")
            if opcode is None:
                if f.opcode == OP_CONT:
                    raise ServerViolation("continuation frame without a message")
                opcode = f.opcode
            elif f.opcode != OP_CONT:
                raise ServerViolation("new data frame inside a fragmented message")
            parts.append(f.payload)
            if f.fin:
                msg = b"".join(parts)
                if opcode == OP_TEXT:
                    try:
                        msg.decode("utf-8")
                    except UnicodeDecodeError as e:
                        raise ServerViolation(f"server text message is not UTF-8: {e}") from None
                return opcode, msg

    def expect_close(self, timeout=None):
        """Read frames until a close frame; returns Close(code, reason, before, elapsed).
        Raises ConnectionClosed if TCP closes first (no close frame)."""
        t0 = time.monotonic()
        deadline = t0 + (self.timeout if timeout is None else timeout)
        before = []
        while True:
            f = self.recv_frame(max(deadline - time.monotonic(), 0.001))
            if f.opcode != OP_CLOSE:
                before.append(f)
                continue
            p = f.payload
            if len(p) == 1:
                raise ServerViolation("server close frame with a 1-byte payload")
            code = struct.unpack("!H", p[:2])[0] if p else None
            try:
                p[2:].decode("utf-8")
            except UnicodeDecodeError:
                raise ServerViolation(f"server close reason is not UTF-8: {p[2:]!r}") from None
            return Close(code, bytes(p[2:]), before, time.monotonic() - t0)

    # convenience senders (masked, as a client must)
    def send_frame(self, opcode, payload=b"", chop=None, delay=0.0, **kw):
        self.send(frame(opcode, payload, **kw), chop=chop, delay=delay)

    def send_text(self, payload, **kw):
        self.send_frame(OP_TEXT, payload, **kw)

    def send_binary(self, payload, **kw):
        self.send_frame(OP_BINARY, payload, **kw)

    def send_close(self, code=None, reason=b"", **kw):
        self.send_frame(OP_CLOSE, close_payload(code, reason), **kw)


def handshake(conn, path="/echo", **req_kw):
    """Send an upgrade request; returns the HttpResponse (body read unless 101)."""
    key = req_kw.pop("key", None) or new_key()
    conn.send(upgrade_request(path=path, key=key, **req_kw))
    resp = conn.read_http_response()
    return key, resp


def connect_ws(host, port, path="/echo", tls_ca=None, timeout=5.0, source=None, **req_kw):
    """A Conn after a successful upgrade; asserts the 101 and its accept key."""
    c = Conn(open_socket(host, port, tls_ca=tls_ca, timeout=timeout, source=source), timeout)
    try:
        key, resp = handshake(c, path=path, **req_kw)
        assert resp.status == 101, f"upgrade refused: {resp.status} {resp.body!r}"
        assert resp.header("sec-websocket-accept") == accept_key(key)
        assert (resp.header("upgrade") or "").lower() == "websocket"
        assert "upgrade" in (resp.header("connection") or "").lower()
    except BaseException:
        c.close()
        raise
    return c
