"""Helpers and pytest fixtures for stompgate's integration tests.

Run with Debian's interpreter (pyenv's python3 cannot import python3-* packages):

    /usr/bin/python3 -m pytest -v tests/integration

conftest.py re-exports the fixtures and hooks below; another test directory can reuse
them with a conftest.py of its own:

    import sys, pathlib
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "integration"))
    from sgtest import *  # noqa: F401,F403

Fixtures
  broker     (session) the RabbitMQ node: the one in $SG_BROKER_DIR (scripts/test.sh starts
             it), else a private one started here on free ports and stopped at the end.
  stompgate  (function) factory: gw = stompgate(**config_overrides) -> Gateway, started
             and accepting TCP. Special keywords: wait=False, env={...}, args=[...], timeout=s.
  stockd     (function) factory: sd = stockd(**config_overrides) -> Daemon, "ready" logged.
  own_broker (function) a RabbitMQ node for this test alone (free ports, ~8 s to start), for
             tests that freeze or break their broker; SIGCONT'ed and stopped at teardown.
  stompgate_for (function) factory like stompgate for a given broker:
             gw = stompgate_for(own_broker, **config_overrides).

Environment
  SG_BROKER_DIR     use the broker in that directory (its broker.env)
  SG_BIN_DIR        where the binaries are (default bin; relative to the repo), e.g. bin/asan
  SG_TIMEOUT_SCALE  multiply every wait (e.g. 3 for ASan or valgrind), default 1

Daemons are stopped at teardown (SIGTERM, 10 s, SIGKILL). A daemon that died by a signal
nobody sent it, needed SIGKILL, or logged a sanitizer report fails the test; the last 200
lines of its log are printed into the report of a failed test. No port is hard-coded.
"""

import ctypes
import http.client
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

__all__ = [
    # fixtures and hooks (conftest.py re-exports them)
    "broker", "stompgate", "stockd", "own_broker", "stompgate_for", "_sg_broker_alive",
    "pytest_runtest_makereport", "pytest_sessionfinish",
    # helpers
    "REPO", "Broker", "Daemon", "Gateway", "free_port", "run_bin", "bin_path", "child_env",
    "write_config", "stompgate_config", "stockd_config", "scaled", "repo_version",
    "http_get", "http_raw", "parse_http_response", "processes_mentioning", "wait_for",
    "make_cert",
]

REPO = Path(__file__).resolve().parents[2]
BROKER_SH = REPO / "scripts" / "broker.sh"
LOG_TAIL_LINES = 200

_SANITIZER_RE = re.compile(
    r"ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer|MemorySanitizer)"
    r"|:\d+:\d+: runtime error: "
    r"|UndefinedBehaviorSanitizer"
)


def scaled(seconds):
    """seconds times $SG_TIMEOUT_SCALE (slow builds: ASan, valgrind)."""
    try:
        factor = float(os.environ.get("SG_TIMEOUT_SCALE") or 1)
    except ValueError:
        factor = 1.0
    return seconds * max(factor, 0.1)


def wait_for(predicate, timeout, interval=0.05):
    """Poll predicate() until it returns a true value (returned) or timeout (None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def make_cert(directory, name="cert", cn="127.0.0.1"):
    """A self-signed ECDSA P-256 certificate for 127.0.0.1 in directory: (cert, key) paths."""
    key, crt = Path(directory) / f"{name}.key", Path(directory) / f"{name}.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "1", "-subj", f"/CN={cn}", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return crt, key


def repo_version():
    """VERSION from the Makefile (what --version must print)."""
    m = re.search(r"^VERSION\s*:?=\s*(\S+)", (REPO / "Makefile").read_text(), re.M)
    return m.group(1) if m else None


def free_port(host="127.0.0.1"):
    """A TCP port that was free on host a moment ago (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- binaries

def bin_dir():
    d = Path(os.environ.get("SG_BIN_DIR") or "bin")
    return d if d.is_absolute() else REPO / d


def bin_path(name):
    p = bin_dir() / name
    if not os.access(p, os.X_OK):
        pytest.fail(f"{p} is not built (make all)", pytrace=False)
    return p


def child_env(extra=None):
    """os.environ without STOMPGATE_* / STOCKD_* (so a developer's shell cannot change a
    test), plus extra (values str()'d)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOMPGATE_", "STOCKD_"))}
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def run_bin(name, *args, timeout=10, env=None, input=None, cwd=None):
    """Run bin/<name> with args to completion; CompletedProcess with text stdout/stderr."""
    try:
        return subprocess.run(
            [str(bin_path(name)), *map(str, args)],
            capture_output=True, text=True, errors="replace", timeout=scaled(timeout),
            env=child_env(env), input=input, cwd=cwd or REPO,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{name} {' '.join(map(str, args))} did not finish in {e.timeout:.0f} s;"
                    f" stderr so far:\n{_text(e.stderr)}", pytrace=False)


def _text(b):
    if b is None:
        return ""
    return b.decode(errors="replace") if isinstance(b, bytes) else b


# ---------------------------------------------------------------- config files

def _format_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    return str(v)


def write_config(path, cfg):
    """Write `key = value` lines; a value of None leaves the key out. Returns path."""
    path = Path(path)
    lines = ["# written by tests/integration/sgtest.py"]
    lines += [f"{k} = {_format_value(v)}" for k, v in cfg.items() if v is not None]
    path.write_text("\n".join(lines) + "\n")
    return path


def stompgate_config(broker, **overrides):
    """The config the stompgate fixture uses: a free loopback port, the test broker."""
    cfg = {
        "listen": f"127.0.0.1:{free_port()}",
        "broker": f"127.0.0.1:{broker.amqp_port}",
        "broker_user": broker.user,
        "broker_password": broker.password,
        "client_dir": str(REPO / "client"),
        "log_level": "debug",
        "workers": 1,
    }
    cfg.update(overrides)
    return cfg


def stockd_config(broker, **overrides):
    cfg = {
        "broker": f"127.0.0.1:{broker.amqp_port}",
        "broker_user": broker.user,
        "broker_password": broker.password,
        "log_level": "debug",
    }
    cfg.update(overrides)
    return cfg


# ---------------------------------------------------------------- processes

def _proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _pid_alive(pid):
    """True if pid exists and is not a zombie (PID 1 here reaps slowly)."""
    return _proc_state(pid) not in (None, "Z", "X")


def processes_mentioning(text):
    """[(pid, cmdline)] of live processes whose command line contains text."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd and _pid_alive(int(d.name)):
            found.append((int(d.name), cmd.strip()))
    return found


try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover
    _libc = None


def _die_with_parent():
    """In the child before exec: SIGTERM when pytest dies, so that an interrupted or
    killed run leaves no daemon behind (PR_SET_PDEATHSIG = 1)."""
    if _libc is not None:
        _libc.prctl(1, signal.SIGTERM, 0, 0, 0)


_daemons = []  # every Daemon started in this session, for the leftover check


class Daemon:
    """A stompgate or stockd process with its config and log files."""

    def __init__(self, name, config_path, log_path, args=(), env=None, cwd=None):
        self.name = name
        self.config_path = Path(config_path)
        self.log_path = Path(log_path)
        self.argv = [str(bin_path(name)), "-c", str(self.config_path), *map(str, args)]
        self.sent_signals = set()
        self.stop_timed_out = False
        self._logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self._logf, stderr=subprocess.STDOUT,
            env=child_env(env), cwd=cwd or REPO, preexec_fn=_die_with_parent,
        )
        _daemons.append(self)

    def __repr__(self):
        return f"<{self.name} pid {self.pid} rc {self.proc.returncode}>"

    @property
    def pid(self):
        return self.proc.pid

    @property
    def returncode(self):
        return self.proc.poll()

    def alive(self):
        return self.proc.poll() is None

    def log(self):
        """Everything the process wrote so far (stdout and stderr)."""
        if not self._logf.closed:
            self._logf.flush()
        return self.log_path.read_bytes().decode(errors="replace")

    def log_tail(self, n=LOG_TAIL_LINES):
        return "\n".join(self.log().splitlines()[-n:])

    def _fail(self, why):
        # the last 200 lines are printed at teardown; the message keeps the end in view
        pytest.fail(f"{self.name} (pid {self.pid}) {why}\n----- {self.log_path} (last"
                    f" 30 lines) -----\n{self.log_tail(30)}", pytrace=False)

    def wait_log(self, pattern, timeout=10, flags=re.I):
        """Wait until the log matches the regex pattern; returns the match. Fails the test
        on timeout or if the process exits first."""
        rx = re.compile(pattern, flags)
        deadline = time.monotonic() + scaled(timeout)
        while True:
            m = rx.search(self.log())
            if m:
                return m
            if not self.alive():
                m = rx.search(self.log())
                if m:
                    return m
                self._fail(f"exited with {self.proc.returncode} before logging /{pattern}/")
            if time.monotonic() >= deadline:
                self._fail(f"did not log /{pattern}/ within {scaled(timeout):.0f} s")
            time.sleep(0.05)

    def wait_exit(self, timeout=15):
        """Wait for the process to exit on its own; returns its exit code (negative:
        killed by that signal). Fails the test on timeout."""
        try:
            return self.proc.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            self._fail(f"still running after {scaled(timeout):.0f} s")

    def send_signal(self, sig):
        """Send sig (recorded: dying by a signal we sent is not a crash)."""
        self.sent_signals.add(sig)
        if self.alive():
            self.proc.send_signal(sig)

    def stop(self, timeout=10):
        """SIGTERM, wait up to timeout s, then SIGKILL. Returns the exit code."""
        if self.alive():
            self.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(scaled(timeout))
            except subprocess.TimeoutExpired:
                self.stop_timed_out = True
                self.send_signal(signal.SIGKILL)
                self.proc.wait()
        if not self._logf.closed:
            self._logf.close()
        return self.proc.returncode

    def rss_kb(self):
        """Resident set size in KiB (VmRSS from /proc/PID/status)."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for pid {self.pid}")

    def problems(self):
        """What is wrong with how this (stopped) process ended: crashes, sanitizer reports."""
        out = []
        rc = self.proc.returncode
        if rc is not None and rc < 0 and -rc not in self.sent_signals:
            out.append(f"died by signal {signal.Signals(-rc).name}")
        if self.stop_timed_out:
            out.append(f"did not exit within {scaled(10):.0f} s of SIGTERM (killed)")
        m = _SANITIZER_RE.search(self.log())
        if m:
            out.append(f"sanitizer report in its log: {m.group(0).strip()}")
        return out


class Gateway(Daemon):
    """A running stompgate: .host, .port, .url (http://host:port), .ws_url (.../ws)."""

    def __init__(self, config, *a, **kw):
        super().__init__("stompgate", *a, **kw)
        self.config = config
        first = str(config.get("listen") or "").split(",")[0].strip()
        host, _, port = first.rpartition(":")
        self.host = host.strip("[]") or "127.0.0.1"
        self.port = int(port) if port.isdigit() else None
        h = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{h}:{self.port}"
        self.ws_url = f"ws://{h}:{self.port}/ws"

    def wait_ready(self, timeout=10):
        """Wait until the listen port accepts TCP; fail (with the log) if the process
        exits first or on timeout."""
        if self.port is None:
            pytest.fail(f"stompgate listen={self.config.get('listen')!r}: no port to wait for")
        deadline = time.monotonic() + scaled(timeout)
        while True:
            if not self.alive():
                self._fail(f"exited with {self.proc.returncode} before accepting on"
                           f" {self.host}:{self.port}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                pass
            if time.monotonic() >= deadline:
                self._fail(f"not accepting on {self.host}:{self.port} after"
                           f" {scaled(timeout):.0f} s")
            time.sleep(0.05)


def _teardown_daemons(request, daemons):
    rep_failed = any(getattr(request.node, "rep_" + w, None) is not None
                     and getattr(request.node, "rep_" + w).failed for w in ("setup", "call"))
    problems = []
    for d in daemons:
        d.stop()
        mine = d.problems()
        problems += [f"{d.name} (pid {d.pid}, config {d.config_path}): {p}" for p in mine]
        if rep_failed or mine:
            print(f"----- {d.name} pid {d.pid} exit {d.proc.returncode}: last {LOG_TAIL_LINES}"
                  f" lines of {d.log_path} -----")
            print(d.log_tail())
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


# ---------------------------------------------------------------- broker

class Broker:
    """The private RabbitMQ node of scripts/broker.sh, described by DIR/broker.env."""

    def __init__(self, directory, owned=False):
        self.dir = Path(directory)
        self.owned = owned
        self.reload()

    def reload(self):
        env_file = self.dir / "broker.env"
        if not env_file.exists():
            raise RuntimeError(f"{env_file} missing: broker not started?")
        env = {}
        for line in env_file.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                k, _, v = line.partition("=")
                env[k.strip()] = " ".join(shlex.split(v)) if v.strip() else ""
        self.env = env
        self.port_base = int(env["BROKER_PORT_BASE"])
        self.amqp_port = int(env["BROKER_AMQP_PORT"])
        self.stomp_port = int(env["BROKER_STOMP_PORT"])
        self.web_stomp_port = int(env["BROKER_WEB_STOMP_PORT"])
        self.epmd_port = int(env["BROKER_EPMD_PORT"])
        self.node = env["BROKER_NODE"]
        self.user = env["BROKER_USER"]
        self.password = env["BROKER_PASSWORD"]
        self.pid = int(env["BROKER_PID"])
        self.url = env["BROKER_URL"]
        self.host = "127.0.0.1"
        self.web_stomp_url = f"ws://127.0.0.1:{self.web_stomp_port}/ws"

    def __repr__(self):
        return f"<Broker {self.node} amqp {self.amqp_port} dir {self.dir}>"

    @staticmethod
    def script(*args, timeout=180, check=True):
        """Run scripts/broker.sh args; CompletedProcess (RuntimeError with its output if
        check and it exits non-zero)."""
        r = subprocess.run(["bash", str(BROKER_SH), *map(str, args)], capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise RuntimeError(f"broker.sh {' '.join(map(str, args))} exited {r.returncode}:\n"
                               f"{r.stdout}{r.stderr}")
        return r

    @classmethod
    def launch(cls, directory=None):
        """Start a new node on a free port base; returns an owned Broker."""
        directory = Path(directory or tempfile.mkdtemp(prefix="sg-pytest-broker."))
        last = None
        for _ in range(3):  # a free base can be taken between the check and the bind
            base = cls.script("freebase").stdout.strip()
            try:
                cls.script("start", directory, base)
                return cls(directory, owned=True)
            except RuntimeError as e:
                last = e
        shutil.rmtree(directory, ignore_errors=True)
        raise last

    def is_running(self):
        """Cheap check: the beam.smp pid of broker.env is alive."""
        return _pid_alive(self.pid)

    def kill9(self):
        """kill -9 the node (its epmd stays); start() brings it back on the same ports."""
        self.script("kill9", self.dir)

    def start(self):
        """(Re)start the node in the same directory on the same ports; waits until ready."""
        self.script("start", self.dir, self.port_base)
        self.reload()

    def stop(self):
        self.script("stop", self.dir)

    def ctl(self, *args, timeout=60):
        """rabbitmqctl for this node, e.g. ctl('list_queues', 'name', 'messages')."""
        return self.script("ctl", self.dir, *args, timeout=timeout)

    def amqp(self, tool, *args, timeout=10, check=True):
        """Run an amqp-tools command (amqp-publish, amqp-consume, ...) with --url."""
        r = subprocess.run([tool, f"--url={self.url}", *map(str, args)], capture_output=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise RuntimeError(f"{tool} exited {r.returncode}: {_text(r.stderr)}")
        return r

    def declare_queue(self, name, durable=False):
        self.amqp("amqp-declare-queue", f"--queue={name}", *(["--durable"] if durable else []))

    def delete_queue(self, name):
        self.amqp("amqp-delete-queue", f"--queue={name}", check=False)

    def publish(self, routing_key, body, exchange="", content_type=None, persistent=False):
        args = [f"--exchange={exchange}", f"--routing-key={routing_key}", f"--body={body}"]
        if content_type:
            args.append(f"--content-type={content_type}")
        if persistent:
            args.append("--persistent")
        self.amqp("amqp-publish", *args)

    def get(self, queue, timeout=10):
        """Consume one message body (bytes) from queue; fails on timeout."""
        try:
            return self.amqp("amqp-consume", f"--queue={queue}", "--count=1", "cat",
                             timeout=timeout).stdout
        except subprocess.TimeoutExpired:
            pytest.fail(f"no message on queue {queue} within {timeout} s", pytrace=False)


_session_broker = None

# Stops a broker this session started once pytest is gone, whatever killed it
# (SIGKILL, a CI time limit): the node runs detached and would outlive us.
_WATCHDOG = r"""
pid=$1 dir=$2
while s=$(cat /proc/$pid/stat 2>/dev/null); do
    s=${s##*) }
    case ${s%% *} in Z | X) break ;; esac
    sleep 2
done
[ -f "$dir/port_base" ] && bash "$3" stop "$dir" >/dev/null 2>&1
rm -rf "$dir"
"""


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def broker():
    """The session's RabbitMQ node (see module doc)."""
    global _session_broker
    created = False
    if _session_broker is None:
        d = os.environ.get("SG_BROKER_DIR")
        if d:
            b = Broker(d)
            if not b.is_running():
                b.start()
        else:
            # SIGTERM / SIGHUP become KeyboardInterrupt so that teardown stops the node
            old = {sig: signal.signal(sig, _raise_interrupt)
                   for sig in (signal.SIGTERM, signal.SIGHUP)}
            try:
                b = Broker.launch()
            except BaseException:
                for sig, handler in old.items():
                    signal.signal(sig, handler)
                raise
            watchdog = subprocess.Popen(
                ["bash", "-c", _WATCHDOG, "sg-broker-watchdog", str(os.getpid()), str(b.dir),
                 str(BROKER_SH)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)
            created = True
        _session_broker = b
    yield _session_broker
    if created:
        b, _session_broker = _session_broker, None
        try:
            b.stop()
            shutil.rmtree(b.dir, ignore_errors=True)
        finally:
            watchdog.kill()
            watchdog.wait()
            for sig, handler in old.items():
                signal.signal(sig, handler)


@pytest.fixture(autouse=True)
def _sg_broker_alive():
    """A test that kill9'd the broker and failed before start() must not take the rest
    of the session down with it: restart the node before the next test."""
    b = _session_broker
    if b is not None and not b.is_running():
        b.start()
    yield


# ---------------------------------------------------------------- daemon fixtures

def _start_gateway(started, tmp_path, broker, wait=True, env=None, args=(), timeout=10,
                   **overrides):
    n = len(started)
    cfg = stompgate_config(broker, **overrides)
    conf = write_config(tmp_path / f"stompgate{n}.conf", cfg)
    gw = Gateway(cfg, conf, tmp_path / f"stompgate{n}.log", args=args, env=env)
    started.append(gw)
    if wait:
        gw.wait_ready(timeout)
    return gw


@pytest.fixture
def stompgate(request, broker, tmp_path):
    """Factory: stompgate(**overrides) -> Gateway (see module doc)."""
    started = []

    def start(**kw):
        return _start_gateway(started, tmp_path, broker, **kw)

    yield start
    _teardown_daemons(request, started)


@pytest.fixture
def stompgate_for(request, tmp_path):
    """Factory: stompgate_for(broker, **overrides) -> Gateway, for a broker other than the
    session's (own_broker); otherwise like stompgate."""
    started = []

    def start(b, **kw):
        return _start_gateway(started, tmp_path, b, **kw)

    yield start
    _teardown_daemons(request, started)


@pytest.fixture
def own_broker():
    """A RabbitMQ node of this test's own, for tests that freeze (SIGSTOP) or break it
    without touching the session's. Teardown sends SIGCONT first (a frozen node cannot be
    stopped cleanly), then stops it; a watchdog stops it if pytest dies."""
    b = Broker.launch()
    watchdog = subprocess.Popen(
        ["bash", "-c", _WATCHDOG, "sg-broker-watchdog", str(os.getpid()), str(b.dir),
         str(BROKER_SH)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        yield b
    finally:
        try:
            if _pid_alive(b.pid):
                os.kill(b.pid, signal.SIGCONT)
            b.stop()
            shutil.rmtree(b.dir, ignore_errors=True)
        finally:
            watchdog.kill()
            watchdog.wait()


@pytest.fixture
def stockd(request, broker, tmp_path):
    """Factory: stockd(**overrides) -> Daemon, waited for until it logs "ready" (15 s)
    unless wait=False."""
    started = []

    def start(wait=True, env=None, args=(), timeout=15, **overrides):
        n = len(started)
        conf = write_config(tmp_path / f"stockd{n}.conf", stockd_config(broker, **overrides))
        d = Daemon("stockd", conf, tmp_path / f"stockd{n}.log", args=args, env=env)
        started.append(d)
        if wait:
            d.wait_log(r"\bready\b", timeout)
        return d

    yield start
    _teardown_daemons(request, started)


# ---------------------------------------------------------------- HTTP

def http_get(gw_or_addr, path, headers=None, timeout=5):
    """GET path from a Gateway or (host, port): (status, {lower-name: value}, body bytes)."""
    host, port = (gw_or_addr.host, gw_or_addr.port) if isinstance(gw_or_addr, Gateway) \
        else gw_or_addr
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        c.close()


def http_raw(host, port, data, timeout=5):
    """Send raw bytes, read until the peer closes or timeout; returns the bytes read."""
    chunks = []
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
        except socket.timeout:
            pass
        except ConnectionResetError:
            pass
    return b"".join(chunks)


def parse_http_response(raw):
    """(status, {lower-name: value}, body) of the first response in raw bytes;
    status is None if raw does not start with a status line."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0]) if lines else None
    if not m:
        return None, {}, raw
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(m.group(1)), headers, body


# ---------------------------------------------------------------- hooks

@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item (rep_setup, rep_call, rep_teardown) so that
    fixtures can tell at teardown whether the test failed."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.hookimpl(trylast=True)  # after pytest's own teardown of the fixtures
def pytest_sessionfinish(session, exitstatus):
    """No daemon may outlive the session: kill leftovers and fail the run."""
    left = [d for d in _daemons if d.alive()]
    for d in left:
        d.send_signal(signal.SIGKILL)
        d.proc.wait()
    if left:
        print("\nsgtest: daemons still running at session end (killed): "
              + ", ".join(f"{d.name} pid {d.pid} ({d.config_path})" for d in left))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
