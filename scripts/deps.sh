#!/usr/bin/env bash
# Installs what stompgate needs to build, test and run on Debian 12. Idempotent:
# asks dpkg which packages are missing and only then runs apt-get (update once,
# then install). Also installs the repo's npm packages when package.json is there.
# Prints what it installs, or "deps: all present".
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- Debian packages: add one to a list and it is installed by the next `make`.
BUILD_PKGS="build-essential pkg-config librabbitmq-dev libevent-dev libjansson-dev uuid-dev
  libssl-dev libsystemd-dev"
BROKER_PKGS="rabbitmq-server amqp-tools"
TEST_PKGS="clang-format libcmocka-dev python3-pytest python3-pytest-timeout python3-websocket openssl curl procps python3-stomp"
TEST_PKGS="$TEST_PKGS shellcheck groff-base man-db mandoc" # test_install, test_scripts: shellcheck, man pages
FUZZ_PKGS="clang libclang-rt-14-dev"           # clang + libFuzzer runtime (make fuzz)
NODE_PKGS="nodejs npm"                         # npm may be provided by nodesource's nodejs
BROWSER_PKGS="chromium fonts-dejavu-core"     # tests/browser: /usr/bin/chromium, and a font for its screenshots
EXTRA_PKGS=${SG_EXTRA_PKGS:-}                  # ad hoc, e.g. SG_EXTRA_PKGS=shellcheck make deps
# shellcheck disable=SC2206   # word splitting of the lists is intended
ALL_PKGS=($BUILD_PKGS $BROKER_PKGS $TEST_PKGS $FUZZ_PKGS $NODE_PKGS $BROWSER_PKGS $EXTRA_PKGS)

# `deps.sh --list GROUP...` prints those lists (build, broker, test...) and installs
# nothing: vagrant/provision.sh installs the build and broker packages from here.
if [ "${1:-}" = --list ]; then
    shift
    for g in "$@"; do
        v=${g^^}_PKGS
        [ -n "${!v+set}" ] || { echo "deps: no package list '$g'" >&2; exit 2; }
        echo "${!v}"
    done
    exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then SUDO=(sudo); fi

# Every installed package name plus every name such a package provides (virtual
# packages: nodesource's nodejs provides npm and conflicts with Debian's npm).
installed_names() {
    dpkg-query -W -f='${db:Status-Status} ${Package} ${Provides}\n' 2>/dev/null |
        awk '$1 == "installed" {
                 print $2
                 for (i = 3; i <= NF; i++) {
                     gsub(/[(),]/, "", $i)
                     if ($i ~ /^[a-z0-9][a-z0-9.+-]*$/) print $i
                 }
             }' | sort -u
}

have=$(installed_names)
missing=()
for p in "${ALL_PKGS[@]}"; do
    grep -qxF -- "$p" <<<"$have" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}"
    # On a machine with systemd, installing rabbitmq-server would start a system
    # node on 5672/25672/4369; our scripts run private nodes, so forbid service
    # starts during the install. An existing policy-rc.d is left alone.
    if [[ " ${missing[*]} " == *" rabbitmq-server "* ]] && [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\n# created by stompgate scripts/deps.sh: no service starts on install\nexit 101\n' |
            "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
        echo "deps: created /usr/sbin/policy-rc.d (exit 101)"
    fi
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Use-Pty=0 --no-install-recommends "${missing[@]}"
else
    echo "deps: all present"
fi

# ---- npm packages (e.g. @stomp/stompjs, ws for tests/node and the client).
# node_modules/.sg-deps-stamp marks a finished install; redo it when package.json or
# package-lock.json is newer (npm ci replaces node_modules, stamp included).
if [ -f package.json ]; then
    stamp=node_modules/.sg-deps-stamp
    if [ ! -f $stamp ] || [ package.json -nt $stamp ] ||
        { [ -f package-lock.json ] && [ package-lock.json -nt $stamp ]; }; then
        if [ -f package-lock.json ]; then
            echo "deps: npm ci"
            npm ci --no-audit --no-fund
        else
            echo "deps: npm install"
            npm install --no-audit --no-fund
        fi
        mkdir -p node_modules
        touch $stamp
    fi
fi
