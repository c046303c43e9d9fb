"""The first integration tests: command line, config validation, static files, stockd's
broker login, and that a test run leaves no daemon behind."""

import json
import re
import secrets
import subprocess
import time
import sys
from pathlib import Path

import pytest

from sgtest import (REPO, child_env, free_port, http_get, http_raw, parse_http_response,
                    processes_mentioning, repo_version, run_bin, scaled, stockd_config,
                    stompgate_config, write_config)

HERE = Path(__file__).resolve().parent
DAEMONS = ["stompgate", "stockd"]


# ---------------------------------------------------------------- command line

@pytest.mark.parametrize("name", DAEMONS)
def test_version(name):
    r = run_bin(name, "--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[:1] == [f"{name} {repo_version()}"], r.stdout


@pytest.mark.parametrize("name", DAEMONS)
def test_help_mentions_config_flag(name):
    r = run_bin(name, "--help")
    assert r.returncode == 0, r.stderr
    assert re.search(r"(^|[\s\[,])-c\b", r.stdout, re.M), r.stdout


# ---------------------------------------------------------------- config validation

def _check(name, cfg, tmp_path, *extra, env=None):
    conf = write_config(tmp_path / f"{name}.conf", cfg)
    return run_bin(name, "--check-config", "-c", conf, *extra, env=env)


def _config(name, broker, **overrides):
    make = stompgate_config if name == "stompgate" else stockd_config
    return make(broker, **overrides)


@pytest.mark.parametrize("name", DAEMONS)
def test_check_config_good(name, broker, tmp_path):
    r = _check(name, _config(name, broker), tmp_path)
    assert r.returncode == 0, r.stderr


def _lines_naming(text, key):
    return [ln for ln in text.splitlines() if re.search(rf"\b{re.escape(key)}\b", ln)]


def test_check_config_reports_every_bad_value(broker, tmp_path):
    r = _check("stompgate", _config("stompgate", broker, listen="notanaddress", workers=-3),
               tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert _lines_naming(r.stderr, "listen"), r.stderr
    assert _lines_naming(r.stderr, "workers"), r.stderr
    # one message per key (not a single line that happens to name both)
    assert _lines_naming(r.stderr, "listen") != _lines_naming(r.stderr, "workers"), r.stderr


@pytest.mark.parametrize("name", DAEMONS)
def test_check_config_unknown_key(name, broker, tmp_path):
    r = _check(name, _config(name, broker, frobnicate_level=7), tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert _lines_naming(r.stderr, "frobnicate_level"), r.stderr


def test_env_overrides_file_and_is_validated(broker, tmp_path):
    r = _check("stompgate", _config("stompgate", broker), tmp_path,
               env={"STOMPGATE_WORKERS": "abc"})
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert _lines_naming(r.stderr, "workers"), r.stderr


def test_flag_overrides_file_and_is_validated(broker, tmp_path):
    r = _check("stompgate", _config("stompgate", broker), tmp_path, "--workers=abc")
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert _lines_naming(r.stderr, "workers"), r.stderr


def test_stockd_env_prefix(broker, tmp_path):
    r = _check("stockd", _config("stockd", broker), tmp_path,
               env={"STOCKD_LOG_LEVEL": "loudest"})
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert _lines_naming(r.stderr, "log_level"), r.stderr


# ---------------------------------------------------------------- static files

@pytest.fixture
def site(tmp_path):
    """A client_dir with known content, and a secret file right next to it."""
    d = tmp_path / "site"
    d.mkdir()
    token = secrets.token_hex(8)
    (d / "index.html").write_text(
        f"<!doctype html>\n<title>sg test {token}</title>\n<p>hello {token}</p>\n")
    (d / "app.js").write_text(f"console.log('{token}');\n")
    (tmp_path / "secret.txt").write_text(f"TOPSECRET-{token}\n")
    return d


def test_logs_listening_on(stompgate):
    gw = stompgate()
    gw.wait_log(r"listening on", timeout=5)


def test_static_index(stompgate, site):
    gw = stompgate(client_dir=site)
    status, headers, body = http_get(gw, "/")
    assert status == 200
    assert headers.get("content-type", "").startswith("text/html"), headers
    assert body == (site / "index.html").read_bytes()
    assert headers.get("x-content-type-options", "").lower() == "nosniff", headers


def test_static_javascript_type(stompgate, site):
    # with nosniff, browsers refuse a script not served with a JavaScript type
    gw = stompgate(client_dir=site)
    status, headers, body = http_get(gw, "/app.js")
    assert status == 200
    assert "javascript" in headers.get("content-type", ""), headers
    assert body == (site / "app.js").read_bytes()


def test_static_repo_client_page(stompgate):
    page = REPO / "client" / "index.html"
    assert page.exists(), "the ticker page must be in the repo"
    gw = stompgate()  # client_dir = <repo>/client
    status, headers, body = http_get(gw, "/")
    assert status == 200
    assert headers.get("content-type", "").startswith("text/html"), headers
    assert body == page.read_bytes()


def test_static_not_found(stompgate, site):
    gw = stompgate(client_dir=site)
    status, _, _ = http_get(gw, "/nonexistent")
    assert status == 404


@pytest.mark.parametrize("target, statuses", [
    ("/../../etc/passwd", (400, 404)),
    ("/../secret.txt", (400, 404)),
    ("/%2e%2e/secret.txt", (400, 403, 404)),
    ("/..%2fsecret.txt", (400, 403, 404)),
    ("/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd", (400, 403, 404)),
    ("/app.js/../../secret.txt", (400, 404)),
    ("//etc/passwd", (400, 403, 404)),
])
def test_static_no_path_traversal(stompgate, site, target, statuses):
    gw = stompgate(client_dir=site)
    raw = http_raw(gw.host, gw.port, f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Connection: close\r\n\r\n".encode())
    status, _, body = parse_http_response(raw)
    assert status in statuses, raw[:300]
    assert b"root:" not in body and b"TOPSECRET" not in body, raw[:300]
    # and the server is still serving
    assert http_get(gw, "/")[0] == 200


@pytest.mark.parametrize("target", ["/etc/passwd", "secret.txt"])
def test_static_directory_index_symlink_out_of_root(stompgate, site, tmp_path, target):
    """sub/index.html is a symlink out of client_dir: GET /sub (the directory's index) and
    /sub/ are 404, while a real sub/index.html is served both ways."""
    target = target if target.startswith("/") else str(tmp_path / target)
    (site / "sub").mkdir()
    (site / "sub" / "index.html").symlink_to(target)
    (site / "good").mkdir()
    page = f"<p>good {secrets.token_hex(4)}</p>\n"
    (site / "good" / "index.html").write_text(page)
    gw = stompgate(client_dir=site)
    for path in ("/sub", "/sub/", "/sub/index.html"):
        status, _, body = http_get(gw, path)
        assert status == 404, (path, status, body[:200])
        assert b"root:" not in body and b"TOPSECRET" not in body, (path, body[:200])
    for path in ("/good", "/good/", "/good/index.html"):
        status, headers, body = http_get(gw, path)
        assert status == 200, (path, status)
        assert body == page.encode(), (path, body[:200])
        assert headers.get("content-type", "").startswith("text/html"), headers


def test_static_directory_symlinks_inside_root_still_work(stompgate, site):
    """Symlinks that stay inside client_dir are fine: a linked directory and an index.html
    that links to another page of the site."""
    (site / "docs").mkdir()
    (site / "docs" / "page.html").write_text("<p>page</p>\n")
    (site / "docs" / "index.html").symlink_to("page.html")
    (site / "alias").symlink_to("docs", target_is_directory=True)
    gw = stompgate(client_dir=site)
    for path in ("/docs", "/docs/", "/alias", "/alias/", "/alias/page.html"):
        status, _, body = http_get(gw, path)
        assert (status, body) == (200, b"<p>page</p>\n"), (path, status, body[:200])


# ---------------------------------------------------------------- stockd and the broker

def test_stockd_ready(stockd):
    d = stockd()  # waits for "ready" in its log
    assert d.alive()


def test_stockd_bad_password_exits_without_leaking_it(stockd):
    password = "wrongpw-" + secrets.token_hex(6)
    d = stockd(broker_password=password, wait=False)
    rc = d.wait_exit(15)
    log = d.log()
    assert rc > 0, f"exit {rc}\n{log}"
    assert re.search(r"access.refused|login", log, re.I), log
    assert password not in log


def test_stockd_quote_table_is_bounded(stockd, broker):
    """max_tracked_symbols=2: a third symbol evicts the least recently requested one (logged
    at debug) and stockd keeps answering every symbol."""
    tag = secrets.token_hex(4)
    work, result = f"stocks.work.{tag}", f"stocks.result.{tag}"
    d = stockd(work_queue=work, result_queue=result, max_tracked_symbols=2, seed=7)
    try:
        broker.publish(work, json.dumps({"stocks": ["AAPL", "MSFT"]}))
        assert [q["symbol"] for q in json.loads(broker.get(result))] == ["AAPL", "MSFT"]
        broker.publish(work, json.dumps({"stocks": ["MSFT", "GOOG"]}))  # AAPL is the oldest
        quotes = json.loads(broker.get(result))
        assert [q["symbol"] for q in quotes] == ["MSFT", "GOOG"]
        assert 548.0 <= quotes[1]["price"] <= 552.0  # GOOG starts at 550.00
        d.wait_log(r"quote table full \(2 symbols\): forgot AAPL for GOOG \(1 evicted\)")
        broker.publish(work, json.dumps({"stocks": ["AAPL"]}))
        assert [q["symbol"] for q in json.loads(broker.get(result))] == ["AAPL"]
        d.wait_log(r"forgot MSFT for AAPL \(2 evicted\)")
        d.stop()
        assert re.search(r"quote table: 2 symbols, 2 evicted", d.log()), d.log_tail(20)
    finally:
        broker.delete_queue(work)
        broker.delete_queue(result)


# ---------------------------------------------------------------- no leftovers

INNER_CONFTEST = """\
import sys
sys.path.insert(0, {here!r})
from sgtest import *  # noqa
"""

INNER_TESTS = """\
def test_ok(stompgate, stockd):
    gw = stompgate()
    sd = stockd()
    assert gw.alive() and sd.alive()


def test_fails_on_purpose(stompgate, stockd):
    stompgate()
    stockd(wait=False)
    assert False, "failing on purpose"
"""


def test_pytest_run_leaves_no_daemon_behind(broker, tmp_path):
    """A nested pytest run (one test passes, one fails with both daemons running) must
    leave no stompgate/stockd process behind, and print the daemons' logs for the
    failed test."""
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "conftest.py").write_text(INNER_CONFTEST.format(here=str(HERE)))
    (inner / "test_inner.py").write_text(INNER_TESTS)
    basetemp = tmp_path / "basetemp"
    env = child_env({"SG_BROKER_DIR": broker.dir, "PYTEST_ADDOPTS": None})
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"--basetemp={basetemp}", str(inner)],
        cwd=inner, env=env, capture_output=True, text=True, errors="replace",
        timeout=scaled(120), stdin=subprocess.DEVNULL)
    out = r.stdout + r.stderr
    left = processes_mentioning(str(basetemp))
    assert not left, f"left behind: {left}\n{out}"
    assert r.returncode == 1, out
    assert re.search(r"\b1 failed\b", out) and re.search(r"\b1 passed\b", out), out
    assert re.search(r"stompgate pid \d+ exit .*: last 200 lines", out), out


def test_precedence_defaults_file_env_flags(stompgate, stockd, broker):
    """defaults < file < environment < flags, for both daemons, seen in what they do:
    the port stompgate listens on, the queue stockd consumes."""
    ports = [free_port() for _ in range(3)]
    cases = [({}, [], ports[0]),
             ({"STOMPGATE_LISTEN": f"127.0.0.1:{ports[1]}"}, [], ports[1]),
             ({"STOMPGATE_LISTEN": f"127.0.0.1:{ports[1]}"}, [f"--listen=127.0.0.1:{ports[2]}"],
              ports[2])]
    for env, args, want in cases:
        gw = stompgate(listen=f"127.0.0.1:{ports[0]}", env=env, args=args, wait=False)
        gw.wait_log(rf"listening on ws://127\.0\.0\.1:{want}\b")
        gw.stop()
    q = [f"prec.{i}.{time.monotonic_ns()}" for i in range(3)]
    for env, args, want in [({}, [], q[0]), ({"STOCKD_WORK_QUEUE": q[1]}, [], q[1]),
                            ({"STOCKD_WORK_QUEUE": q[1]}, [f"--work-queue={q[2]}"], q[2])]:
        sd = stockd(work_queue=q[0], env=env, args=args)
        assert f"consuming {want}" in sd.log(), sd.log()
        sd.stop()
    # and without any source, the built-in default
    sd = stockd()
    assert "consuming stocks.work" in sd.log()
    for name in q:
        broker.delete_queue(name)
