"""Fixtures for the RFC 6455 conformance suite; self-contained (no broker, no
tests/integration helpers).

Daemons
  Two session-wide echo daemons carry every data case:
    A: workers = 1, ws + wss with an RSA 2048 certificate
    B: workers = 2, ws + wss with an ECDSA P-256 certificate
  so the `target` fixture runs each data test four times: ws-w1, ws-w2, wss-rsa
  (on A) and wss-ecdsa (on B). Special-purpose daemons (origins, limits, pings,
  timeouts) come from the `start_daemon` factory and live as long as the module
  that asks for them.

  Each daemon is stopped with SIGTERM at teardown; a daemon that died (by a signal
  or otherwise), needed SIGKILL, exited non-zero or logged a sanitizer report fails
  the run. The daemons are also checked after every test, and the tail of their logs
  is attached to the report of a failed test.

Environment
  SG_BIN_DIR        directory of the stompgate binary (default <repo>/bin), e.g. bin/asan
  SG_TIMEOUT_SCALE  multiply timing bounds (slow builds), default 1
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from . import wsraw

# shared with tests/integration (one definition of the timeout scale and free ports)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from sgtest import free_port, scaled as scale  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
LOG_TAIL_LINES = 80
_SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error: "
                           r"|UndefinedBehaviorSanitizer")

#: close_timeout_ms of the main daemons (a test checks the server closes TCP in time)
CLOSE_TIMEOUT_MS = 1000
#: max_message of the main daemons (set explicitly: the config default is 16 MiB + 64 KiB)
MAX_MESSAGE = 1 << 20


def bin_path():
    d = os.environ.get("SG_BIN_DIR")
    d = Path(d) if d else REPO / "bin"
    if not d.is_absolute():
        d = REPO / d
    return d / "stompgate"


def _die_with_parent():
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


_RUNNING = []  # every Daemon started and not yet stopped


class Daemon:
    """bin/stompgate with a generated config, logging to a file."""

    def __init__(self, name, workdir, **cfg):
        self.name = name
        self.dir = Path(workdir)
        self.port = free_port()
        self.tls_port = free_port() if cfg.get("tls_cert") else None
        conf = {
            "listen": f"{HOST}:{self.port}",
            "workers": 1,
            "echo_endpoint": "true",
            "broker": "127.0.0.1:1",  # never used by /echo
            "log_level": "debug",
            "ping_interval_ms": 0,  # the frame tests must see every frame the peer sends
            "client_dir": str(self.dir / "static"),
        }
        if self.tls_port:
            conf["tls_listen"] = f"{HOST}:{self.tls_port}"
        conf.update(cfg)
        self.config = conf
        self.config_path = self.dir / f"{name}.conf"
        self.config_path.write_text("".join(f"{k} = {v}\n" for k, v in conf.items()))
        self.log_path = self.dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        # STOMPGATE_* variables would override the file (defaults < file < environment)
        env = {k: v for k, v in os.environ.items() if not k.startswith("STOMPGATE_")}
        self.proc = subprocess.Popen([str(_BINARY or bin_path()), "-c", str(self.config_path)],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
                                     env=env)
        self.stopped = False
        self.rss_baseline_kib = None
        _RUNNING.append(self)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def __repr__(self):
        return f"<stompgate {self.name} pid {self.proc.pid} port {self.port}>"

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n=LOG_TAIL_LINES):
        """The last n lines, without the relay's retries to the unused broker."""
        lines = [ln for ln in self.log().splitlines() if "broker connect for user" not in ln]
        return "\n".join(lines[-n:])

    def _wait_ready(self):
        want = 1 + (1 if self.tls_port else 0)
        deadline = time.monotonic() + scale(10)
        while self.log().count("listening on") < want:
            if self.proc.poll() is not None:
                pytest.fail(f"{self!r} exited with {self.proc.returncode} at start:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{self!r} did not log 'listening on':\n{self.log_tail()}")
            time.sleep(0.01)
        for port in filter(None, (self.port, self.tls_port)):
            while True:
                try:
                    socket.create_connection((HOST, port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"{self!r} port {port} does not accept:\n{self.log_tail()}")
                    time.sleep(0.01)

    def problems(self):
        """Why this daemon is not healthy now ('' if it is)."""
        rc = self.proc.poll()
        if rc is not None and not self.stopped and not (self.terminating and rc == 0):
            how = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit status {rc}"
            return f"{self!r} died ({how})"
        hit = self._sanitizer_report()
        if hit:
            return f"{self!r} logged a sanitizer report: {hit}"
        return ""

    _scan_pos = 0
    _sanitizer_hit = ""

    def _sanitizer_report(self):
        """The first sanitizer report line in the log (scanned incrementally)."""
        if not self._sanitizer_hit:
            try:
                with open(self.log_path, "rb") as f:
                    f.seek(max(self._scan_pos - 200, 0))
                    chunk = f.read().decode(errors="replace")
                    self._scan_pos = f.tell()
            except OSError:
                return ""
            m = _SANITIZER_RE.search(chunk)
            if m:
                self._sanitizer_hit = m.group(0)
        return self._sanitizer_hit

    terminating = False
    reported = False

    def sigterm(self):
        """SIGTERM now (a test of the shutdown itself); a clean exit is then no problem."""
        self.terminating = True
        self.proc.send_signal(signal.SIGTERM)

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stop(self):
        """SIGTERM and wait; returns a problem description ('' if clean)."""
        if self.stopped:
            return ""
        why = getattr(self, "problems_before_stop", None)
        if why is None:
            why = self.problems()
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=scale(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                why = why or f"{self!r} ignored SIGTERM for 10 s (SIGKILLed)"
        self.stopped = True
        self._log.close()
        if self in _RUNNING:
            _RUNNING.remove(self)
        rc = self.proc.returncode
        if not why and rc != 0:
            how = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit status {rc}"
            why = f"{self!r} ended with {how} after SIGTERM"
        if not why and self._sanitizer_report():
            why = f"{self!r} logged a sanitizer report: {self._sanitizer_report()}"
        return why

    # ---- connections

    def tls_ca(self):
        return self.config.get("tls_cert")

    def raw(self, tls=False, timeout=None, source=None):
        """A connected Conn, no handshake yet."""
        port = self.tls_port if tls else self.port
        sock = wsraw.open_socket(HOST, port, tls_ca=self.tls_ca() if tls else None,
                                 timeout=timeout or scale(5), source=source)
        return wsraw.Conn(sock, timeout or scale(5))

    def ws(self, tls=False, path="/echo", timeout=None, source=None, **req_kw):
        """A Conn after a successful upgrade (asserted)."""
        port = self.tls_port if tls else self.port
        return wsraw.connect_ws(HOST, port, path=path,
                                tls_ca=self.tls_ca() if tls else None,
                                timeout=timeout or scale(5), source=source, **req_kw)


def _stop_all(daemons):
    problems = []
    for d in daemons:  # SIGTERM all first: each takes about a second to drain
        if not d.stopped and d.proc.poll() is None:
            d.problems_before_stop = d.problems()
            d.proc.send_signal(signal.SIGTERM)
    for d in daemons:
        why = d.stop()
        if why:
            problems.append(f"{why}\n--- log tail of {d.name} ---\n{d.log_tail()}")
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


# ---- certificates


def _openssl(*args):
    r = subprocess.run(["openssl", *args], capture_output=True, text=True)
    assert r.returncode == 0, f"openssl {' '.join(args)}: {r.stderr}"


_BINARY = None  # the private copy every Daemon runs


@pytest.fixture(scope="session")
def workdir():
    """A temporary directory with a private copy of the binary (a rebuild in the
    middle of the run must not pull it away), the static files and the configs."""
    global _BINARY
    src = bin_path()
    if not src.is_file():
        pytest.fail(f"{src} not found: run `make` first (or set SG_BIN_DIR)", pytrace=False)
    with tempfile.TemporaryDirectory(prefix="sg-conformance-") as d:
        static = Path(d) / "static"
        static.mkdir()
        (static / "index.html").write_text("<!doctype html><title>sg-conformance-index</title>\n")
        _BINARY = Path(d) / "stompgate"
        shutil.copy2(src, _BINARY)
        yield Path(d)
        _BINARY = None


@pytest.fixture(scope="session")
def certs(workdir):
    """{'rsa': (cert, key), 'ecdsa': (cert, key)}: self-signed, CN and SAN 127.0.0.1."""
    out = {}
    common = ["-x509", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
              "-addext", "subjectAltName=IP:127.0.0.1"]
    for kind, newkey in (("rsa", ["-newkey", "rsa:2048"]),
                         ("ecdsa", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])):
        cert, key = workdir / f"{kind}.crt", workdir / f"{kind}.key"
        _openssl("req", *newkey, "-keyout", str(key), "-out", str(cert), *common)
        out[kind] = (str(cert), str(key))
    return out


# ---- daemons


def _warm_up(d):
    """A few echoes (ws and wss, small and 1 MiB) so the RSS baseline is past the
    allocator's first growth; then record it."""
    for tls in (False, True) if d.tls_port else (False,):
        for i in range(5):
            with d.ws(tls=tls) as c:
                c.send_text(f"warm-up {i}")
                assert c.recv_message() == (wsraw.OP_TEXT, f"warm-up {i}".encode())
        with d.ws(tls=tls) as c:
            big = bytes(range(256)) * 4000
            c.send_binary(big)
            assert c.recv_message(timeout=scale(10)) == (wsraw.OP_BINARY, big)
    time.sleep(0.2)
    d.rss_baseline_kib = d.rss_kib()


def _main_daemon(name, workdir, cert, workers):
    d = Daemon(name, workdir, workers=workers, tls_cert=cert[0], tls_key=cert[1],
               max_message=MAX_MESSAGE, close_timeout_ms=CLOSE_TIMEOUT_MS)
    _warm_up(d)
    return d


@pytest.fixture(scope="session")
def _main_daemons(workdir, certs):
    """The two echo daemons, started on first use and stopped together."""
    made = {}

    def get(which):
        if which not in made:
            if which == "a":
                made[which] = _main_daemon("main-w1-rsa", workdir, certs["rsa"], 1)
            else:
                made[which] = _main_daemon("main-w2-ecdsa", workdir, certs["ecdsa"], 2)
        return made[which]

    yield get
    _stop_all(list(made.values()))


@pytest.fixture(scope="session")
def daemon_a(_main_daemons):
    """workers = 1, wss with the RSA certificate."""
    return _main_daemons("a")


@pytest.fixture(scope="session")
def daemon_b(_main_daemons):
    """workers = 2, wss with the ECDSA certificate."""
    return _main_daemons("b")


class Target:
    """Where a data test runs: a daemon and ws or wss."""

    def __init__(self, tid, daemon, tls):
        self.id, self.daemon, self.tls = tid, daemon, tls

    def ws(self, **kw):
        return self.daemon.ws(tls=self.tls, **kw)

    def raw(self, **kw):
        return self.daemon.raw(tls=self.tls, **kw)

    def __repr__(self):
        return f"<Target {self.id} {self.daemon!r}>"


TARGETS = {
    "ws-w1": ("daemon_a", False),
    "ws-w2": ("daemon_b", False),
    "wss-rsa": ("daemon_a", True),
    "wss-ecdsa": ("daemon_b", True),
}


@pytest.fixture(params=list(TARGETS))
def target(request):
    """Each data test runs over ws (workers 1 and 2) and wss (RSA and ECDSA)."""
    fixture, tls = TARGETS[request.param]
    return Target(request.param, request.getfixturevalue(fixture), tls)


@pytest.fixture(scope="module")
def start_daemon(workdir):
    """Factory: start_daemon(name, **config) -> Daemon, stopped at the module's end."""
    started = []

    def start(name, **cfg):
        d = Daemon(name, workdir, **cfg)
        started.append(d)
        return d

    yield start
    _stop_all(started)


@pytest.fixture(autouse=True)
def _daemons_alive(request):
    """After each test: every daemon is still alive and has not logged a sanitizer
    report (so a crash is blamed on the test that caused it)."""
    yield
    problems = []
    for d in list(_RUNNING):
        why = d.problems()
        if why and not d.reported:
            d.reported = True  # blamed on this test only; teardown reports it again
            problems.append(why)
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


# ---- hooks (conftest-local: they only see this directory's items)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and rep.when in ("call", "teardown", "setup"):
        for d in list(_RUNNING):
            rep.sections.append((f"stompgate {d.name} log (last {LOG_TAIL_LINES} lines)",
                                 d.log_tail()))


def pytest_configure(config):
    config.addinivalue_line("markers", "sg_last: run after every other conformance test")


def pytest_collection_modifyitems(session, config, items):
    """Move this directory's sg_last tests (the robustness checks) to the end, so they
    see the daemons after everything else has been thrown at them."""
    here = Path(__file__).parent
    last = [i for i in items
            if i.get_closest_marker("sg_last") and Path(str(i.fspath)).parent == here]
    if last:
        rest = [i for i in items if i not in last]
        items[:] = rest + last
