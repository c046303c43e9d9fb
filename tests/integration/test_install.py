"""`make install`, the systemd units, the man pages and the generated configs.

The layout is checked on `make install DESTDIR=<tmp> PREFIX=/usr`; the units are checked
with `systemd-analyze verify` (and `security`) on copies of the installed ones whose
ExecStart names the binaries under DESTDIR, with MANPATH on the installed man pages, so
that their Documentation= lines are checked too. The configs and the man pages' option
lists are generated from --help by scripts/gen-conf.sh: a stale one fails here."""

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from sgtest import REPO, run_bin

UNITS = ["stompgate.service", "stockd.service"]
MAN_PAGES = ["man8/stompgate.8", "man8/stockd.8", "man5/stompgate.conf.5"]
PROGS = ["stompgate", "stockd"]


def make_env(**extra):
    """The environment for a nested make: without an outer make's jobserver and flags."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
           and not k.startswith(("STOMPGATE_", "STOCKD_"))}
    env.update(extra)
    return env


def make(*args, timeout=300):
    r = subprocess.run(["make", "--no-print-directory", "-C", str(REPO), *args],
                       capture_output=True, text=True, timeout=timeout, env=make_env(),
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"make {' '.join(args)} exited {r.returncode}:\n{r.stdout}{r.stderr}"
    return r


def help_keys(prog):
    """(key, default) for every option in `prog --help`."""
    out = run_bin(prog, "--help").stdout
    return re.findall(r"^  ([a-z][a-z0-9_]*) +.*\[default: (.*)\]$", out, re.M)


def unit_settings(text):
    """{(section, key): [values]} of a unit file (a key may repeat)."""
    out, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        k, _, v = line.partition("=")
        out.setdefault((section, k.strip()), []).append(v.strip())
    return out


def files_under(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    dest = tmp_path_factory.mktemp("destdir")
    make("install", f"DESTDIR={dest}", "PREFIX=/usr")
    return dest


# ---------------------------------------------------------------- layout

def test_install_layout(installed):
    files = [f for f in files_under(installed) if not f.startswith("usr/share/stompgate/client/")]
    assert files == sorted([
        "etc/stompgate/stockd.conf", "etc/stompgate/stockd.conf.dist",
        "etc/stompgate/stompgate.conf", "etc/stompgate/stompgate.conf.dist",
        "usr/bin/stockd", "usr/bin/stompgate",
        "usr/lib/systemd/system/stockd.service", "usr/lib/systemd/system/stompgate.service",
        "usr/lib/sysusers.d/stompgate.conf",
        "usr/share/doc/stompgate/CONFIG.md", "usr/share/doc/stompgate/METRICS.md",
        "usr/share/doc/stompgate/OPERATIONS.md",
        "usr/share/doc/stompgate/PROTOCOL.md", "usr/share/doc/stompgate/SECURITY.md",
        "usr/share/man/man5/stompgate.conf.5",
        "usr/share/man/man8/stockd.8", "usr/share/man/man8/stompgate.8",
    ])
    client = files_under(installed / "usr/share/stompgate/client")
    assert client == files_under(REPO / "client") and "index.html" in client

    def mode(p):
        return stat.S_IMODE((installed / p).stat().st_mode)
    assert mode("usr/bin/stompgate") == 0o755 and mode("usr/bin/stockd") == 0o755
    # the configs may hold broker passwords; the .dist copies are only the defaults
    assert mode("etc/stompgate/stompgate.conf") == 0o640
    assert mode("etc/stompgate/stockd.conf") == 0o640
    assert mode("etc/stompgate/stompgate.conf.dist") == 0o644
    assert mode("usr/lib/systemd/system/stompgate.service") == 0o644
    assert mode("usr/share/stompgate/client/index.html") == 0o644


def test_installed_files_name_the_installed_paths(installed):
    for unit, prog in zip(UNITS, PROGS):
        s = unit_settings((installed / "usr/lib/systemd/system" / unit).read_text())
        assert s[("Service", "ExecStart")] == [f"/usr/bin/{prog} -c /etc/stompgate/{prog}.conf"]
        assert os.access(installed / f"usr/bin/{prog}", os.X_OK)
    conf = (installed / "etc/stompgate/stompgate.conf").read_text()
    assert re.findall(r"^client_dir = (.*)$", conf, re.M) == ["/usr/share/stompgate/client"]
    assert (installed / "usr/share/stompgate/client/index.html").is_file()
    # nothing installed still points at the default prefix
    for p in ["usr/lib/systemd/system/stompgate.service", "usr/lib/systemd/system/stockd.service",
              *(f"usr/share/man/{m}" for m in MAN_PAGES)]:
        assert "/usr/local" not in (installed / p).read_text().replace(
            "/usr/local replaced", ""), p


def test_installed_configs_are_valid(installed):
    """The installed configs, and the same with every default uncommented, pass
    --check-config: the generated lines are valid keys with valid values."""
    for prog in PROGS:
        conf = installed / f"etc/stompgate/{prog}.conf"
        r = subprocess.run([str(installed / f"usr/bin/{prog}"), "-c", str(conf),
                            "--check-config"], capture_output=True, text=True, timeout=20,
                           env=make_env())
        assert r.returncode == 0 and "configuration ok" in r.stdout, r.stderr
        text = conf.read_text()
        uncommented = re.sub(r"^# ([a-z][a-z0-9_]*) =", r"\1 =", text, flags=re.M)
        n = len(re.findall(r"^[a-z][a-z0-9_]* =", uncommented, re.M))
        assert n == len(help_keys(prog)), "every option once, as a key = value line"
        full = conf.with_name(f"{prog}-all.conf")
        full.write_text(uncommented)
        r = subprocess.run([str(installed / f"usr/bin/{prog}"), "-c", str(full),
                            "--check-config"], capture_output=True, text=True, timeout=20,
                           env=make_env(), cwd=REPO)
        assert r.returncode == 0 and "configuration ok" in r.stdout, r.stderr


def test_reinstall_keeps_a_changed_config_and_uninstall_removes_the_rest(tmp_path):
    dest = tmp_path / "d"
    make("install", f"DESTDIR={dest}", "PREFIX=/usr/local")
    etc = dest / "etc/stompgate"
    local = etc / "stompgate.conf"
    local.write_text(local.read_text() + "workers = 3\n")
    (etc / "stompgate.conf.dist").write_text("# an old default\n")
    (dest / "usr/local/share/stompgate/client/stale.js").write_text("old\n")
    r = make("install", f"DESTDIR={dest}", "PREFIX=/usr/local")
    assert "kept /etc/stompgate/stompgate.conf" in r.stdout
    assert local.read_text().endswith("workers = 3\n")
    assert (etc / "stompgate.conf.dist").read_text() == (
        (REPO / "dist/stompgate.conf").read_text().replace(
            "# client_dir = client\n", "client_dir = /usr/local/share/stompgate/client\n"))
    assert not (dest / "usr/local/share/stompgate/client/stale.js").exists()
    assert (dest / "usr/local/lib/systemd/system/stompgate.service").is_file()

    r = make("uninstall", f"DESTDIR={dest}", "PREFIX=/usr/local")
    assert "kept /etc/stompgate/stompgate.conf (changed locally)" in r.stdout
    # only the changed config is left (and the empty directories above the prefix's)
    assert files_under(dest) == ["etc/stompgate/stompgate.conf"]
    assert not (dest / "usr/local/share/stompgate").exists()


# ---------------------------------------------------------------- units

@pytest.mark.parametrize("unit", UNITS)
def test_unit_settings(unit):
    text = (REPO / "dist/systemd" / unit).read_text()
    s = unit_settings(text)

    def one(section, key):
        v = s.get((section, key))
        assert v is not None and len(v) == 1, f"{unit}: {key}= {v}"
        return v[0]
    assert one("Service", "Type") == "notify"
    assert one("Service", "NotifyAccess") == "main"
    assert one("Service", "WatchdogSec") == "30"
    assert one("Service", "Restart") == "on-failure"
    assert int(one("Service", "RestartSec")) >= 1
    for key, want in [("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                      ("PrivateTmp", "yes"), ("NoNewPrivileges", "yes"),
                      ("CapabilityBoundingSet", ""), ("AmbientCapabilities", "")]:
        assert one("Service", key) == want, key
    assert int(one("Service", "LimitNOFILE")) >= 65536
    assert "rabbitmq-server.service" in one("Unit", "After").split()
    assert "rabbitmq-server.service" in one("Unit", "Wants").split()
    prog = unit.split(".")[0]
    assert one("Service", "ExecStart") == f"/usr/local/bin/{prog} -c /etc/stompgate/{prog}.conf"
    # the user the units run as is the one sysusers.d creates
    user = one("Service", "User")
    assert one("Service", "Group") == user
    sysusers = (REPO / "dist/sysusers.d/stompgate.conf").read_text()
    assert re.search(rf"^u {user} ", sysusers, re.M)
    if prog == "stompgate":
        assert one("Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
        # systemctl restart drains with close 1012 (SIGUSR1), stop with 1001 (SIGTERM)
        assert one("Service", "RestartKillSignal") == "SIGUSR1"
        assert ("Service", "KillSignal") not in s
        # the drop-in for ports < 1024, commented in the unit
        assert "#   CapabilityBoundingSet=CAP_NET_BIND_SERVICE" in text
        assert "#   AmbientCapabilities=CAP_NET_BIND_SERVICE" in text
    else:
        # stockd does not handle SIGHUP: a reload would kill it
        assert ("Service", "ExecReload") not in s


def test_stop_timeout_exceeds_the_drain_deadline():
    keys = dict(help_keys("stompgate"))
    if "shutdown_timeout_ms" not in keys:
        pytest.skip("stompgate has no shutdown_timeout_ms option yet")
    m = re.fullmatch(r"(\d+)", keys["shutdown_timeout_ms"])
    assert m, keys["shutdown_timeout_ms"]
    s = unit_settings((REPO / "dist/systemd/stompgate.service").read_text())
    stop_s = int(s[("Service", "TimeoutStopSec")][0])
    assert stop_s * 1000 >= int(m.group(1)) + 5000, "SIGKILL must not cut the drain short"


def _verifiable_copy(installed, unit, tmp_path, extra=""):
    text = (installed / "usr/lib/systemd/system" / unit).read_text()
    text = text.replace("ExecStart=/usr/bin/", f"ExecStart={installed}/usr/bin/")
    if extra:
        text = text.replace("[Service]\n", f"[Service]\n{extra}\n")
    p = tmp_path / unit
    p.write_text(text)
    return p


def _analyze(*args, manpath):
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True,
                          timeout=60, env=make_env(MANPATH=str(manpath)),
                          stdin=subprocess.DEVNULL)


needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed")


@needs_analyze
@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_verify(installed, unit, tmp_path):
    man = installed / "usr/share/man"
    r = _analyze("verify", str(_verifiable_copy(installed, unit, tmp_path)), manpath=man)
    assert (r.returncode, r.stdout + r.stderr) == (0, "")
    # the check has teeth: a misspelt key, or man pages it cannot find, are reported
    (tmp_path / "bad").mkdir()
    bad = _verifiable_copy(installed, unit, tmp_path / "bad", extra="WatchdogSek=30")
    r = _analyze("verify", str(bad), manpath=man)
    assert "Unknown key 'WatchdogSek'" in r.stderr
    r = _analyze("verify", str(_verifiable_copy(installed, unit, tmp_path)),
                 manpath=tmp_path / "no-man")
    assert r.returncode != 0 and "man " in r.stderr


@needs_analyze
@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_security(installed, unit, tmp_path):
    """The sandbox keeps the unit's exposure score low (a plain unit scores 9.6)."""
    r = _analyze("security", "--offline=yes", "--threshold=25", "--no-pager",
                 str(_verifiable_copy(installed, unit, tmp_path)),
                 manpath=installed / "usr/share/man")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr


# ---------------------------------------------------------------- man pages

@pytest.mark.parametrize("page", MAN_PAGES)
def test_man_page_renders(installed, page):
    path = installed / "usr/share/man" / page
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(path)],
                       capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stderr) == (0, ""), "groff warnings"
    r = subprocess.run(["man", "-l", str(path)], capture_output=True, text=True, timeout=30,
                       env=make_env(MANWIDTH="100", PAGER="cat", LC_ALL="C.UTF-8"))
    assert r.returncode == 0, r.stderr
    text = re.sub(r".\x08", "", r.stdout)
    text = text.replace("\u2212", "-").replace("\u2010", "-")
    for section in ("NAME", "DESCRIPTION", "SEE ALSO"):
        assert re.search(rf"^{section}$", text, re.M), section
    progs = PROGS if page.endswith(".5") else [Path(page).stem]
    for prog in progs:
        # every option is in the rendered page: the flag in section 8, the key in 5
        for key, _ in help_keys(prog):
            want = f"--{key}=value" if page.startswith("man8") else key
            assert re.search(rf"^ +{re.escape(want)}\b", text, re.M), f"{page}: {want}"
    if page.startswith("man8"):
        for section in ("SIGNALS", "ENVIRONMENT", "FILES", "EXIT STATUS"):
            assert re.search(rf"^{section}$", text, re.M), section


@pytest.mark.skipif(shutil.which("mandoc") is None, reason="mandoc is not installed")
@pytest.mark.parametrize("page", MAN_PAGES)
def test_man_page_lint(installed, page):
    r = subprocess.run(["mandoc", "-Tlint", "-Wwarning", str(installed / "usr/share/man" / page)],
                       capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stdout + r.stderr) == (0, "")


# ---------------------------------------------------------------- generated files

def test_generated_files_are_current():
    """dist/*.conf and the man pages' option lists match --help (scripts/gen-conf.sh)."""
    r = subprocess.run(["bash", str(REPO / "scripts/gen-conf.sh"), "--check"],
                       capture_output=True, text=True, timeout=60, env=make_env())
    assert r.returncode == 0, f"run scripts/gen-conf.sh (or make gen-conf):\n{r.stdout}{r.stderr}"


def test_gen_conf_check_finds_a_stale_file(tmp_path):
    for d in ("dist", "man"):
        shutil.copytree(REPO / d, tmp_path / d)
    conf = tmp_path / "dist/stockd.conf"
    conf.write_text(conf.read_text().replace("# prefetch = 10\n", ""))
    page = tmp_path / "man/stompgate.conf.5"
    page.write_text(page.read_text().replace(".B workers\n", ".B threads\n"))
    env = make_env(SG_GEN_ROOT=str(tmp_path))
    r = subprocess.run(["bash", str(REPO / "scripts/gen-conf.sh"), "--check"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 1
    assert "stale: dist/stockd.conf man/stompgate.conf.5" in r.stdout
    assert "+# prefetch = 10" in r.stdout and "+.B workers" in r.stdout
    # and the generator repairs them
    r = subprocess.run(["bash", str(REPO / "scripts/gen-conf.sh")], capture_output=True,
                       text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    assert conf.read_text() == (REPO / "dist/stockd.conf").read_text()
    assert page.read_text() == (REPO / "man/stompgate.conf.5").read_text()


@pytest.mark.parametrize("prog", PROGS)
def test_generated_files_list_every_option(prog):
    conf = (REPO / f"dist/{prog}.conf").read_text()
    man5 = (REPO / "man/stompgate.conf.5").read_text()
    man5 = man5.split(f".SH {prog.upper()}.CONF KEYS\n", 1)[1].split("\n.SH ", 1)[0]
    man8 = (REPO / f"man/{prog}.8").read_text()
    keys = help_keys(prog)
    assert len(keys) >= 10
    for key, default in keys:
        line = f"# {key} = {default}" if default else f"# {key} ="
        assert re.search(rf"^{re.escape(line)}$", conf, re.M), line
        assert f"\n.B {key}\n" in man5, key
        assert f"\\fB\\-\\-{key}\\fR=" in man8, key
