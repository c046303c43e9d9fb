#!/usr/bin/env bash
# Provisions the Vagrant VM (Debian 12, as root; vagrant/Vagrantfile runs it):
#   1. RabbitMQ with the management plugin, as the system service;
#   2. the user BROKER_USER (websockets) with BROKER_PASSWORD (rabbitmq), administrator,
#      all permissions on /, and no guest: scripts/provision-broker.sh, the same steps
#      scripts/broker.sh runs for every test broker;
#   3. stompgate and stockd built from SG_SRC (/stompgate) and installed with
#      `make install` (PREFIX=/usr/local) as systemd services, enabled and started.
# Idempotent: a second run rebuilds, reinstalls and restarts; a config under
# /etc/stompgate that exists is kept, only the keys below are set in it.
# SG_ROOT (empty in the VM) is a DESTDIR for everything installed and edited: the test
# suite runs this script with SG_ROOT set and stub apt-get, systemctl, rabbitmqctl.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

src=${SG_SRC:-/stompgate}
user=${BROKER_USER:-websockets}
pass=${BROKER_PASSWORD:-rabbitmq}
root=${SG_ROOT:-}
[ -f "$src/scripts/provision-broker.sh" ] || { echo "provision: no stompgate sources in $src" >&2; exit 1; }

say() { echo "provision: $*"; }

# ---- packages: the build and broker lists of scripts/deps.sh (not its test tools)
# shellcheck disable=SC2207   # the lists are whitespace-separated package names
pkgs=($(bash "$src/scripts/deps.sh" --list build broker))
say "installing ${pkgs[*]}"
apt-get update -q
apt-get install -y -q -o Dpkg::Use-Pty=0 --no-install-recommends "${pkgs[@]}"

# ---- RabbitMQ: the system node, with the management UI on 15672
rabbitmq-plugins enable --quiet rabbitmq_management
systemctl enable --now rabbitmq-server
rabbitmqctl await_startup --timeout 120 >/dev/null

# shellcheck source=scripts/provision-broker.sh
. "$src/scripts/provision-broker.sh"
provision_broker_user rabbitmqctl "$user" "$pass"
say "RabbitMQ user $user ready, guest deleted"

# ---- stompgate and stockd
make -C "$src" --no-print-directory -j"$(nproc)" all
make -C "$src" --no-print-directory install PREFIX=/usr/local DESTDIR="$root"

# set_key FILE KEY VALUE: KEY = VALUE in FILE, replacing the key's line (commented or not)
set_key() {
    local file=$1 key=$2 val=$3 esc
    esc=$(printf '%s' "$val" | sed -e 's/[\\&|]/\\&/g')
    if grep -qE "^#? *$key *=" "$file"; then
        sed -i -E "s|^#? *$key *=.*|$key = $esc|" "$file"
    else
        printf '%s = %s\n' "$key" "$val" >>"$file"
    fi
}

conf=$root/etc/stompgate
# forwarded ports arrive on the VM's network interface, not on its loopback
set_key "$conf/stompgate.conf" listen 0.0.0.0:8181
for f in stompgate stockd; do
    set_key "$conf/$f.conf" broker 127.0.0.1:5672
    set_key "$conf/$f.conf" broker_user "$user"
    set_key "$conf/$f.conf" broker_password "$pass"
done
for f in stompgate stockd; do
    "$root/usr/local/bin/$f" -c "$conf/$f.conf" --check-config
done

# enable --now, and restart so that a second run starts the new build and configs
systemctl enable --now stockd.service stompgate.service
systemctl restart stockd.service stompgate.service
systemctl --no-pager --lines=0 status stockd.service stompgate.service || true

say "ready: http://127.0.0.1:8181/ (ws://127.0.0.1:8181/ws),"
say "  AMQP amqp://$user:***@127.0.0.1:5672, management http://127.0.0.1:15672/"
