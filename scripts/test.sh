#!/usr/bin/env bash
# `make test` (after `make deps`): build + unit tests + fuzz corpus replay, then the
# integration and conformance tests (pytest) and the node tests against ONE private
# RabbitMQ node on free ports, which is always stopped at the end.
#
# The last lines printed are the test runners' own summaries; on failure one more
# line "make test: FAILED (...)" follows. Exit status is non-zero if anything failed.
#
# Environment: CI=true is passed through (the Makefile adds -Werror);
#   SG_TEST_CASE_TIMEOUT  seconds per pytest test (pytest-timeout), default 300
#   SG_TEST_TIMEOUT       seconds for the whole pytest run, default 2400
#   SG_BIN_DIR            binaries the tests run (default bin; e.g. bin/asan)
#   SG_BROWSER_TIMEOUT    seconds for the browser tests, default 600
#   SG_CHROMIUM           the browser tests' Chromium, default /usr/bin/chromium
#   PYTEST_ADDOPTS        extra pytest options, as usual (e.g. "-k static -x")
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

PY=/usr/bin/python3 # not pyenv's python3: it cannot import Debian's python3-* packages
failed=()
broker_dir=
phase_start=$SECONDS

# closes the previous phase: its time goes into the next header
phase() {
    local now=$SECONDS
    if [ -n "${phase_name:-}" ]; then
        echo "== $1 ($phase_name took $((now - phase_start)) s)"
    else
        echo "== $1"
    fi
    phase_name=$1
    phase_start=$now
}

finish() {
    local rc=$?
    trap '' INT TERM
    if [ -n "$broker_dir" ]; then
        # quietly: the runners' summaries must stay the last lines
        if bash scripts/broker.sh stop "$broker_dir" >"$broker_dir.stop.log" 2>&1; then
            rm -rf "$broker_dir" "$broker_dir.stop.log"
        else
            cat "$broker_dir.stop.log"
            failed+=(broker-stop)
        fi
    fi
    [ "$rc" -ge 128 ] && failed+=(interrupted)
    if [ ${#failed[@]} -gt 0 ]; then
        local IFS=,
        echo "make test: FAILED (${failed[*]})"
        exit 1
    fi
    exit 0
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- what is there to run (decided up front: nothing may print after the runners)
pydirs=()
for d in tests/integration tests/conformance; do
    compgen -G "$d/test_*.py" >/dev/null && pydirs+=("$d")
done
node_run=0
browser_run=0
if compgen -G "tests/browser/*.test.mjs" >/dev/null; then
    if [ ! -d node_modules/playwright-core ]; then
        echo "== browser: no node_modules/playwright-core (make deps failed?)"
        failed+=(browser)
    elif [ ! -x "${SG_CHROMIUM:-/usr/bin/chromium}" ]; then
        echo "== browser: no ${SG_CHROMIUM:-/usr/bin/chromium} (make deps failed?)"
        failed+=(browser)
    else
        browser_run=1
    fi
fi
if compgen -G "tests/node/*.test.mjs" >/dev/null; then
    if [ -d node_modules ] || [ ! -f package.json ]; then
        node_run=1
    else
        echo "== node: package.json but no node_modules (make deps failed?)"
        failed+=(node)
    fi
fi

# ---- unit tests (and the fuzz seed corpus replay)
phase unit
make --no-print-directory all test-unit || failed+=(unit)

# ---- integration: one broker for the whole run
phase integration
if [ ${#pydirs[@]} -eq 0 ]; then
    echo "no tests/integration or tests/conformance test_*.py"
    failed+=(integration)
else
    broker_dir=$(mktemp -d "${TMPDIR:-/tmp}/sg-test-broker.XXXXXX")
    started=0
    for _ in 1 2 3; do # a free base can be taken between the check and the bind
        base=$(bash scripts/broker.sh freebase) || break
        if bash scripts/broker.sh start "$broker_dir" "$base"; then
            started=1
            break
        fi
    done
    if [ $started = 0 ]; then
        failed+=(integration)
        exit 1
    fi
    export SG_BROKER_DIR=$broker_dir
    # the broker's coordinates for every runner (node tests read BROKER_URL etc.)
    set -a
    # shellcheck disable=SC1091
    . "$broker_dir/broker.env"
    set +a

    popts=(-v -rfE)
    if "$PY" -c 'import pytest_timeout' 2>/dev/null; then
        popts+=(--timeout="${SG_TEST_CASE_TIMEOUT:-300}")
    fi
    # --foreground keeps Ctrl-C reaching pytest; the daemons it starts die with it
    timeout --foreground -k 30 "${SG_TEST_TIMEOUT:-2400}" \
        "$PY" -m pytest "${popts[@]}" "${pydirs[@]}" || failed+=(integration)
fi

# ---- node tests
if [ $node_run = 1 ]; then
    phase node
    node --test tests/node/ || failed+=(node)
fi

# ---- the ticker page in Chromium (tests/browser; one file starts a broker of its own)
if [ $browser_run = 1 ]; then
    phase browser
    timeout --foreground -k 30 "${SG_BROWSER_TIMEOUT:-600}" node --test tests/browser/ || failed+=(browser)
fi
# finish (the EXIT trap) stops the broker and prints the verdict line on failure
