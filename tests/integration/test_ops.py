"""Operations: graceful SIGTERM drain, SIGHUP reload, systemd's sd_notify protocol, TLS
settings and HSTS - against the real daemon and broker."""

import signal
import socket
import ssl
import subprocess
import time

import pytest
import websocket

from sgtest import free_port, http_raw, make_cert, scaled, wait_for, write_config
from stompc import Closed, connected_client


def _close_of(c, timeout=5):
    """Reads until the close; returns (frames before it, close code)."""
    frames = []
    while True:
        try:
            frames.append(c.recv(timeout=timeout))
        except Closed as e:
            return frames, e.code


# ---------------------------------------------------------------- SIGTERM / SIGUSR1


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 1001), (signal.SIGUSR1, 1012)])
def test_drain_sends_error_then_close(stompgate, broker, sig, code):
    """SIGTERM (SIGUSR1: a restart) drains: every STOMP session of every version gets ERROR
    "server shutting down" and then the close code; a SEND sent just before still gets its
    RECEIPT first; the daemon exits 0 within shutdown_timeout_ms."""
    gw = stompgate(workers=2, shutdown_timeout_ms=5000)
    clients = [connected_client(gw, broker, version=v) for v in ("1.0", "1.1", "1.2", "1.2")]
    q = f"drain-{sig}-{time.monotonic_ns()}"
    clients[2].send_frame("SUBSCRIBE", {"id": "s", "destination": f"/queue/{q}",
                                        "receipt": "sub"})
    assert clients[2].expect("RECEIPT")["receipt-id"] == "sub"
    clients[3].send_frame("SEND", {"destination": f"/queue/{q}", "receipt": "last"}, body="x")
    t0 = time.monotonic()
    gw.send_signal(sig)
    for i, c in enumerate(clients):
        frames, got = _close_of(c)
        errors = [f for f in frames if f.command == "ERROR"]
        assert len(errors) == 1 and errors[0]["message"] == "server shutting down", frames
        assert frames[-1].command == "ERROR", f"frames after the ERROR: {frames}"
        if i == 3:
            assert [f.get("receipt-id") for f in frames if f.command == "RECEIPT"] == ["last"]
        assert got == code
    assert gw.wait_exit(timeout=10) == 0
    assert time.monotonic() - t0 < scaled(6)
    assert f"close {code}" in gw.log()
    broker.delete_queue(q)


def test_drain_refuses_new_upgrades(stompgate, broker):
    """While draining, the listeners are closed: a new connection is refused or answered
    503, never upgraded."""
    gw = stompgate(shutdown_timeout_ms=3000)
    held = connected_client(gw, broker)
    # keep the drain in its confirm phase: a SEND held for a destination being declared
    # is gone in milliseconds, so just race a connect against the signal
    gw.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    try:
        raw = http_raw("127.0.0.1", gw.port,
                       b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                       b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       b"Sec-WebSocket-Version: 13\r\n\r\n", timeout=2)
        assert b" 101 " not in raw.split(b"\r\n", 1)[0], raw
    except OSError:
        pass  # refused: the listener is closed
    _close_of(held)
    assert gw.wait_exit(timeout=10) == 0


# ---------------------------------------------------------------- SIGHUP


def _upgrade_status(gw, origin):
    raw = http_raw("127.0.0.1", gw.port,
                   (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v12.stomp\r\n"
                    f"Origin: {origin}\r\n\r\n").encode(), timeout=5)
    return int(raw.split(b" ", 2)[1])


def _rewrite(gw, **changes):
    gw.config.update(changes)
    write_config(gw.config_path, gw.config)


def _round_trip(c, q):
    c.send_frame("SEND", {"destination": f"/queue/{q}", "receipt": f"r-{time.monotonic()}"},
                 body="ping")
    assert c.expect("RECEIPT")
    assert c.expect("MESSAGE").body == b"ping"


def test_reload_applies_origins_limits_and_log_level_keeping_sessions(stompgate, broker):
    gw = stompgate(log_level="info", allowed_origins="", max_subscriptions=5)
    c = connected_client(gw, broker)
    q = f"reload-{time.monotonic_ns()}"
    c.send_frame("SUBSCRIBE", {"id": "s", "destination": f"/queue/{q}"})
    _round_trip(c, q)
    assert _upgrade_status(gw, "http://evil.example") == 101
    _rewrite(gw, log_level="debug", allowed_origins="http://good.example", max_subscriptions=1)
    gw.send_signal(signal.SIGHUP)
    gw.wait_log(r"configuration reloaded: 3 options changed")
    # the session is still there and working
    _round_trip(c, q)
    # new values apply: origins, the limit (this session has 1 subscription: a second is over)
    assert _upgrade_status(gw, "http://evil.example") == 403
    assert _upgrade_status(gw, "http://good.example") == 101
    c.send_frame("SUBSCRIBE", {"id": "t", "destination": f"/queue/{q}-2"})
    f, _ = c.expect_error_and_close()
    assert "too many subscriptions" in f["message"]
    assert "DEBUG" in gw.log().split("configuration reloaded")[1]
    broker.delete_queue(q)
    broker.delete_queue(q + "-2")


def test_reload_refuses_a_bad_config_and_keeps_the_running_one(stompgate, broker):
    gw = stompgate(allowed_origins="http://good.example")
    c = connected_client(gw, broker, origin="http://good.example")
    q = f"reload-bad-{time.monotonic_ns()}"
    c.send_frame("SUBSCRIBE", {"id": "s", "destination": f"/queue/{q}"})
    _round_trip(c, q)
    _rewrite(gw, allowed_origins="", max_subscriptions="many", heartbeat_grace=0.1)
    gw.send_signal(signal.SIGHUP)
    gw.wait_log(r"reload refused")
    log = gw.log().split("reload refused", 1)[1]
    assert "max_subscriptions" in log and "heartbeat_grace" in log, log
    assert _upgrade_status(gw, "http://evil.example") == 403  # the old allow-list holds
    _round_trip(c, q)
    assert gw.alive()
    broker.delete_queue(q)


def test_reload_names_options_that_need_a_restart(stompgate, broker):
    gw = stompgate()
    _rewrite(gw, workers=3, quote_work_queue="elsewhere")
    gw.send_signal(signal.SIGHUP)
    gw.wait_log(r"configuration reloaded: 0 options changed")
    assert "reload: workers changed; it takes effect after a restart" in gw.log()
    assert "reload: quote_work_queue changed" in gw.log()


# ---------------------------------------------------------------- TLS


@pytest.fixture
def certs(tmp_path):
    return lambda name, cn: make_cert(tmp_path, name, cn)


def _peer_cn(port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject"],
                         input=der, capture_output=True, check=True).stdout.decode()
    return out.strip().rsplit("=", 1)[-1].strip()


def test_reload_reads_tls_certificates_again(stompgate, broker, certs):
    a, b = certs("a", "first"), certs("b", "second")
    port = free_port()
    gw = stompgate(tls_listen=f"127.0.0.1:{port}", tls_cert=str(a[0]), tls_key=str(a[1]))
    wait_for(lambda: "listening on wss" in gw.log(), scaled(5))
    ws = websocket.create_connection(f"wss://127.0.0.1:{port}/ws", subprotocols=["v12.stomp"],
                                     sslopt={"cert_reqs": ssl.CERT_NONE}, timeout=scaled(5))
    assert _peer_cn(port) == "first"
    _rewrite(gw, tls_cert=str(b[0]), tls_key=str(b[1]))
    gw.send_signal(signal.SIGHUP)
    gw.wait_log(r"TLS certificates read again")
    assert _peer_cn(port) == "second"
    # the connection made before the reload still works
    ws.send(f"CONNECT\naccept-version:1.2\nlogin:{broker.user}\npasscode:{broker.password}\n\n\0")
    assert ws.recv().startswith("CONNECTED")
    ws.close()
    # a key that does not match: refused, the second certificate stays
    _rewrite(gw, tls_key=str(a[1]))
    gw.send_signal(signal.SIGHUP)
    gw.wait_log(r"reload refused")
    assert _peer_cn(port) == "second"


def test_hsts_on_https_only(stompgate, broker, certs):
    crt, key = certs("c", "hsts")
    port = free_port()
    gw = stompgate(tls_listen=f"127.0.0.1:{port}", tls_cert=str(crt), tls_key=str(key))
    wait_for(lambda: "listening on wss" in gw.log(), scaled(5))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for path in ("/", "/healthz", "/no-such-file"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw) as tls:
                tls.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = tls.recv(4096)
                    if not chunk:
                        break
                    head += chunk
        assert b"\r\nStrict-Transport-Security: max-age=31536000\r\n" in head, (path, head)
    plain = http_raw("127.0.0.1", gw.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"Strict-Transport-Security" not in plain


def test_tls_settings_are_checked_at_start(stompgate, broker, certs, tmp_path):
    crt, key = certs("d", "checked")
    for bad, word in ((dict(tls_ciphers="NO-SUCH-CIPHER"), "tls_ciphers"),
                      (dict(tls_groups="P-1"), "tls_groups"),
                      (dict(tls_ciphersuites="TLS_NOPE"), "tls_ciphersuites")):
        gw = stompgate(tls_listen=f"127.0.0.1:{free_port()}", tls_cert=str(crt),
                       tls_key=str(key), wait=False, **bad)
        assert gw.wait_exit(timeout=10) != 0
        assert word in gw.log()
    junk = tmp_path / "chain.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    gw = stompgate(tls_listen=f"127.0.0.1:{free_port()}", tls_cert=str(crt), tls_key=str(key),
                   tls_chain=str(junk), wait=False)
    assert gw.wait_exit(timeout=10) != 0
    assert "chain" in gw.log()


# ---------------------------------------------------------------- systemd notify


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(0.2)
    msgs = []

    def read(until=None, timeout=10):
        """Collects datagrams until one contains `until` (returns it) or timeout."""
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            try:
                m = s.recv(4096).decode()
            except socket.timeout:
                continue
            msgs.append(m)
            if until and until in m:
                return m
        return None

    yield path, read, msgs
    s.close()


def test_sd_notify_ready_status_watchdog_reload_stopping(stompgate, broker, notify_socket):
    path, read, msgs = notify_socket
    gw = stompgate(workers=2, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    assert read("READY=1"), msgs
    c = connected_client(gw, broker)
    c.send_frame("SUBSCRIBE", {"id": "q", "destination": "/queue/stocks.AAPL"})
    # WATCHDOG=1 at half of WATCHDOG_USEC, again and again, with the live counts
    n = sum("WATCHDOG=1" in m for m in msgs)
    c.send_frame("SUBSCRIBE", {"id": "t", "destination": "/topic/ops.status"})
    assert read("1 STOMP sessions, 2 subscriptions (1 quote)"), msgs
    wait_for(lambda: read("WATCHDOG=1", timeout=1) and
             sum("WATCHDOG=1" in m for m in msgs) >= n + 3, scaled(5))
    assert sum("WATCHDOG=1" in m for m in msgs) >= n + 3, msgs
    status = [m for m in msgs if "STATUS=" in m][-1]
    assert "connections" in status and "STOMP sessions" in status
    gw.send_signal(signal.SIGHUP)
    assert read("RELOADING=1"), msgs
    assert read("READY=1"), msgs
    gw.send_signal(signal.SIGTERM)
    assert read("STOPPING=1"), msgs
    assert gw.wait_exit(timeout=10) == 0


def test_no_notify_socket_is_fine(stompgate, broker):
    gw = stompgate()
    c = connected_client(gw, broker)
    c.close()
    gw.send_signal(signal.SIGTERM)
    assert gw.wait_exit(timeout=10) == 0


def test_stockd_sd_notify_ready_watchdog_stopping(stockd, notify_socket):
    path, read, msgs = notify_socket
    tag = time.monotonic_ns()
    sd = stockd(work_queue=f"stocks.work.n{tag}", result_queue=f"stocks.result.n{tag}",
                env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    assert read("READY=1"), msgs
    n = sum("WATCHDOG=1" in m for m in msgs)
    wait_for(lambda: read("WATCHDOG=1", timeout=1) and
             sum("WATCHDOG=1" in m for m in msgs) >= n + 3, scaled(5))
    assert sum("WATCHDOG=1" in m for m in msgs) >= n + 3, msgs
    assert any("STATUS=consuming work" in m for m in msgs), msgs
    sd.send_signal(signal.SIGTERM)
    assert read("STOPPING=1"), msgs
    assert sd.wait_exit(timeout=10) == 0
