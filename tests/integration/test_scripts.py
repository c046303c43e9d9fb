"""The shell scripts: shellcheck, the shared RabbitMQ user set-up (scripts/provision-broker.sh)
with a scripted rabbitmqctl and on the real test broker, and the Vagrant provisioning run
without a VM (stub apt-get, systemctl, rabbitmq-plugins and rabbitmqctl; the real build
and `make install` into a DESTDIR)."""

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sgtest import REPO

PROVISION_BROKER = REPO / "scripts/provision-broker.sh"


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
           and not k.startswith(("STOMPGATE_", "STOCKD_", "BROKER_"))}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def test_shellcheck():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (scripts/deps.sh installs it)")
    scripts = sorted(glob.glob(str(REPO / "scripts/*.sh")) + glob.glob(str(REPO / "vagrant/*.sh"))
                     + glob.glob(str(REPO / "bench/*.sh")))
    names = {Path(s).name for s in scripts}
    assert {"broker.sh", "provision-broker.sh", "install.sh", "gen-conf.sh",
            "provision.sh"} <= names
    r = subprocess.run(["shellcheck", "-x", *scripts], capture_output=True, text=True,
                       timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr


# ---------------------------------------------------------------- provision-broker.sh

FAKE_CTL = r"""#!/usr/bin/env bash
# a scripted rabbitmqctl: logs each call (and its stdin for passwords), answers list_users
log=$FAKE_DIR/calls
case $1 in
list_users) printf '%s' "$FAKE_USERS"; exit 0 ;;
add_user | change_password) echo "$* <$(cat)" >>"$log"; exit 0 ;;
esac
echo "$*" >>"$log"
if [ "$1" = "${FAKE_FAIL:-}" ]; then echo "Error: refused" >&2; exit 70; fi
"""


def run_provision(tmp_path, users, fail=None, user="websockets", password="s3cret pw"):
    ctl = tmp_path / "fake-rabbitmqctl"
    ctl.write_text(FAKE_CTL)
    ctl.chmod(0o755)
    calls = tmp_path / "calls"
    calls.write_text("")
    env = clean_env(FAKE_DIR=tmp_path, FAKE_USERS=users, FAKE_FAIL=fail or "",
                    RABBITMQCTL=ctl, BROKER_USER=user, BROKER_PASSWORD=password)
    r = subprocess.run(["bash", str(PROVISION_BROKER)], capture_output=True, text=True,
                       timeout=30, env=env, stdin=subprocess.DEVNULL)
    return r, calls.read_text().splitlines()


def test_provision_broker_new_user_and_guest_deleted(tmp_path):
    r, calls = run_provision(tmp_path, "guest\t[administrator]\n")
    assert r.returncode == 0, r.stderr
    assert calls == [
        "add_user websockets <s3cret pw",  # the password on stdin, not in the arguments
        "set_user_tags websockets administrator",
        "set_permissions -p / websockets .* .* .*",
        "delete_user guest",
    ]


def test_provision_broker_existing_user_gets_the_new_password(tmp_path):
    r, calls = run_provision(tmp_path, "websockets\t[administrator]\nother\t[]\n",
                             password="n3w")
    assert r.returncode == 0, r.stderr
    assert calls == [
        "change_password websockets <n3w",
        "set_user_tags websockets administrator",
        "set_permissions -p / websockets .* .* .*",
    ]


def test_provision_broker_fails_when_a_step_fails(tmp_path):
    r, calls = run_provision(tmp_path, "guest\t[]\n", fail="set_permissions")
    assert r.returncode != 0
    assert calls[-1].startswith("set_permissions") and "delete_user guest" not in calls
    r, calls = run_provision(tmp_path, "", password="")
    assert r.returncode == 2 and calls == []


def test_test_broker_is_set_up_like_the_vm(broker):
    """scripts/broker.sh sets its node's user up with provision-broker.sh: the user is an
    administrator with every permission on /, and guest is gone."""
    users = broker.ctl("list_users", "--silent").stdout
    assert re.search(rf"^{re.escape(broker.user)}\s+\[administrator\]$", users, re.M), users
    assert not re.search(r"^guest\s", users, re.M), users
    perms = broker.ctl("list_user_permissions", broker.user, "--silent").stdout.split()
    assert perms == ["/", ".*", ".*", ".*"]
    r = broker.ctl("authenticate_user", broker.user, broker.password)
    assert r.returncode == 0
    assert (broker.dir / "provisioned").read_text().split()[0] == broker.user


# ---------------------------------------------------------------- vagrant

STUB = r"""#!/usr/bin/env bash
# stub: log the call; rabbitmqctl also answers list_users like a fresh node
echo "$(basename "$0") $*" >>"$STUB_LOG"
case "$(basename "$0") $1" in
"rabbitmqctl list_users") printf 'guest\t[administrator]\n' ;;
"rabbitmqctl add_user" | "rabbitmqctl change_password") echo "  stdin: $(cat)" >>"$STUB_LOG" ;;
esac
exit 0
"""


def test_vagrantfile():
    text = (REPO / "vagrant/Vagrantfile").read_text()
    assert re.search(r'config\.vm\.box = "debian/bookworm64"', text)
    ports = re.search(r"\[([\d, ]+)\]\.each do \|port\|", text)
    assert ports and sorted(map(int, ports.group(1).split(","))) == [5672, 8181, 15672]
    assert 'guest: port, host: port, host_ip: "127.0.0.1"' in text
    assert 'config.vm.provision "shell", path: "provision.sh"' in text
    assert '"BROKER_PASSWORD" => ENV.fetch("BROKER_PASSWORD", "rabbitmq")' in text


def test_vagrant_provision_without_a_vm(tmp_path):
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in ("apt-get", "systemctl", "rabbitmq-plugins", "rabbitmqctl"):
        (stubs / name).write_text(STUB)
        (stubs / name).chmod(0o755)
    log = tmp_path / "log"
    root = tmp_path / "root"
    password = r"p&w|x\y"  # sed's specials: set_key must write it as it is
    env = clean_env(PATH=f"{stubs}:{os.environ['PATH']}", STUB_LOG=log, SG_ROOT=root,
                    SG_SRC=REPO, BROKER_PASSWORD=password)
    r = subprocess.run(["bash", str(REPO / "vagrant/provision.sh")], capture_output=True,
                       text=True, timeout=300, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    calls = log.read_text().splitlines()
    # the packages are deps.sh's build and broker lists
    apt = next(c for c in calls if c.startswith("apt-get install"))
    for pkg in ("rabbitmq-server", "librabbitmq-dev", "libevent-dev", "libsystemd-dev"):
        assert f" {pkg}" in apt
    assert "shellcheck" not in apt and "clang-format" not in apt
    assert "rabbitmq-plugins enable --quiet rabbitmq_management" in calls
    # the user steps are provision-broker.sh's, with rabbitmqctl
    i = calls.index("rabbitmqctl add_user websockets")
    assert calls[i + 1:i + 5] == [
        f"  stdin: {password}",
        "rabbitmqctl set_user_tags websockets administrator",
        "rabbitmqctl set_permissions -p / websockets .* .* .*",
        "rabbitmqctl delete_user guest",
    ]
    assert all(password not in c for c in calls if not c.startswith("  stdin:"))
    # installed as services: make install into SG_ROOT, then enabled and started
    assert (root / "usr/local/bin/stompgate").is_file()
    assert (root / "usr/local/lib/systemd/system/stompgate.service").is_file()
    assert "systemctl enable --now stockd.service stompgate.service" in calls
    assert calls.index("systemctl enable --now rabbitmq-server") < i
    gw = (root / "etc/stompgate/stompgate.conf").read_text()
    sd = (root / "etc/stompgate/stockd.conf").read_text()
    assert re.findall(r"^listen = (.*)$", gw, re.M) == ["0.0.0.0:8181"]
    for conf in (gw, sd):
        assert re.findall(r"^broker_password = (.*)$", conf, re.M) == [password]
        assert re.findall(r"^broker_user = (.*)$", conf, re.M) == ["websockets"]
    # a second run keeps the config, still with one line per key
    r = subprocess.run(["bash", str(REPO / "vagrant/provision.sh")], capture_output=True,
                       text=True, timeout=300, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "kept /etc/stompgate/stompgate.conf" in r.stdout
    gw = (root / "etc/stompgate/stompgate.conf").read_text()
    assert re.findall(r"^listen = (.*)$", gw, re.M) == ["0.0.0.0:8181"]


def test_deps_list():
    def listed(*groups):
        return subprocess.run(["bash", str(REPO / "scripts/deps.sh"), "--list", *groups],
                              capture_output=True, text=True, timeout=30)
    r = listed("build", "broker")
    assert r.returncode == 0 and {"librabbitmq-dev", "rabbitmq-server"} <= set(r.stdout.split())
    assert {"shellcheck", "groff-base", "mandoc"} <= set(listed("test").stdout.split())
    assert listed("nope").returncode == 2
