#!/usr/bin/env bash
# `make run` (after deps and the build): a private RabbitMQ node in ./run/broker,
# then bin/stockd and bin/stompgate in the foreground. Logs go to the terminal
# (prefixed [stockd] / [stompgate]) and to ./run/*.log. Ctrl-C or SIGTERM stops
# stompgate, stockd and the broker, in that order, and exits 0; if a daemon dies on
# its own, the rest is stopped and the exit status is 1.
#
# Environment:
#   BROKER_PORT_BASE  the broker's port base (AMQP port; see scripts/broker.sh), default 5672
#   STOMPGATE_PORT    stompgate's HTTP/WebSocket port on 127.0.0.1, default 8181
#   SG_BIN_DIR        where the binaries are (default bin, e.g. bin/asan)
# ./run/stompgate.conf and ./run/stockd.conf are written once and then yours to edit;
# listen and broker always come from the variables above (passed as flags).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
repo=$PWD
rundir=$repo/run
bindir=${SG_BIN_DIR:-bin}
case $bindir in /*) ;; *) bindir=$repo/$bindir ;; esac
base=${BROKER_PORT_BASE:-5672}
port=${STOMPGATE_PORT:-8181}
# stompgate reads STOMPGATE_<KEY> variables as config: STOMPGATE_PORT is ours, not its
unset STOMPGATE_PORT

say() { echo "run: $*"; }

alive() { # PID exists and is not a zombie (PID 1 reaps slowly here)
    local s
    [ -n "${1:-}" ] || return 1
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    [ "${s%% *}" != Z ] && [ "${s%% *}" != X ]
}

for b in stompgate stockd; do
    [ -x "$bindir/$b" ] || { say "$bindir/$b is not built (make all)"; exit 1; }
done
mkdir -p "$rundir"

# a previous run that was killed hard may have left its daemons: they are ours
for name in stompgate stockd; do
    pidf=$rundir/$name.pid
    [ -f "$pidf" ] || continue
    pid=$(tr -dc '0-9' <"$pidf")
    if alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
        say "stopping $name (pid $pid) left by a previous run"
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 50); do alive "$pid" || break; sleep 0.2; done
        alive "$pid" && kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$pidf"
done

stopping=0
sg_pid=
st_pid=
broker_up=0

stop_child() { # stop_child NAME PID: SIGTERM, 10 s, SIGKILL; reap it
    local name=$1 pid=$2 i
    [ -n "$pid" ] || return 0
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null
        for ((i = 0; i < 100; i++)); do alive "$pid" || break; sleep 0.1; done
        if alive "$pid"; then
            say "$name (pid $pid) still running 10 s after SIGTERM: SIGKILL"
            kill -KILL "$pid" 2>/dev/null
        fi
    fi
    wait "$pid" 2>/dev/null
    rm -f "$rundir/$name.pid"
}

shutdown() { # shutdown EXIT_STATUS
    trap '' INT TERM # a second Ctrl-C must not cut the clean-up short
    stopping=1
    stop_child stompgate "$sg_pid"
    stop_child stockd "$st_pid"
    if [ $broker_up = 1 ]; then
        bash scripts/broker.sh stop "$rundir/broker" || say "broker stop failed"
    fi
    sleep 0.2 # let the log prefixers flush their last lines
    exit "$1"
}
trap 'echo; say "stopping"; shutdown 0' INT TERM

# ---- broker
bash scripts/broker.sh start "$rundir/broker" "$base" || exit 1
broker_up=1
# shellcheck disable=SC1091
. "$rundir/broker/broker.env"

# ---- configs (written once)
if [ ! -f "$rundir/stockd.conf" ]; then
    cat >"$rundir/stockd.conf" <<EOF
# stockd for make run (written by scripts/run.sh once; edit freely).
# broker comes from BROKER_PORT_BASE as a --broker flag.
broker_user = $BROKER_USER
broker_password = $BROKER_PASSWORD
log_level = info
work_queue = stocks.work
result_queue = stocks.result
EOF
fi
if [ ! -f "$rundir/stompgate.conf" ]; then
    cat >"$rundir/stompgate.conf" <<EOF
# stompgate for make run (written by scripts/run.sh once; edit freely).
# listen and broker come from STOMPGATE_PORT and BROKER_PORT_BASE as flags.
client_dir = $repo/client
broker_user = $BROKER_USER
broker_password = $BROKER_PASSWORD
# the ticker page sends no login: its sessions log in as this broker user
default_login = $BROKER_USER
default_passcode = $BROKER_PASSWORD
log_level = info
EOF
fi

# ---- daemons: own sessions (a terminal Ctrl-C reaches only this script, which stops
# them in order); their output through a prefixer that ignores SIGINT, so their last
# lines are not lost
start_daemon() { # start_daemon NAME ARGS... ; sets $! to the daemon
    local name=$1
    shift
    : >"$rundir/$name.log"
    setsid "$bindir/$name" "$@" </dev/null \
        > >(trap '' INT TERM; tee -a "$rundir/$name.log" | sed -u "s/^/[$name] /") 2>&1 &
}

start_daemon stockd -c "$rundir/stockd.conf" --broker="127.0.0.1:$BROKER_AMQP_PORT"
st_pid=$!
echo "$st_pid" >"$rundir/stockd.pid"
start_daemon stompgate -c "$rundir/stompgate.conf" --broker="127.0.0.1:$BROKER_AMQP_PORT" \
    --listen="127.0.0.1:$port"
sg_pid=$!
echo "$sg_pid" >"$rundir/stompgate.pid"

# wait (10 s at most) until stompgate accepts connections, then tell where to go
for _ in $(seq 100); do
    alive "$sg_pid" || break
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
done
if alive "$sg_pid"; then
    say "logs in $rundir/stompgate.log, $rundir/stockd.log; Ctrl-C stops everything"
    echo "stompgate: open http://127.0.0.1:$port/"
fi

# ---- watch: a daemon or the broker dying on its own ends the run with status 1
while :; do
    for name in stompgate stockd; do
        if [ $name = stompgate ]; then pid=$sg_pid; else pid=$st_pid; fi
        if ! alive "$pid"; then
            wait "$pid"
            rc=$?
            [ $stopping = 1 ] && break 2
            say "$name (pid $pid) exited on its own with status $rc; stopping the rest"
            if [ $name = stompgate ]; then sg_pid=; else st_pid=; fi
            rm -f "$rundir/$name.pid"
            shutdown 1
        fi
    done
    if ! alive "$BROKER_PID"; then
        say "the broker (pid $BROKER_PID) died; stopping the rest"
        shutdown 1
    fi
    sleep 0.5 &
    wait $! # returns at once when a signal arrives, so the trap runs without delay
done
