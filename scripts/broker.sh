#!/usr/bin/env bash
# A private RabbitMQ node on loopback, all of its state in one directory.
# See shared docs RABBITMQ.md for the why of each setting.
#
#   broker.sh start  DIR [PORT_BASE]   start (or report already running), write DIR/broker.env
#   broker.sh stop   DIR               clean stop, then the node's private epmd; kill -9 after 30 s
#   broker.sh status DIR               exit 0 if the node is running
#   broker.sh env    DIR               print DIR/broker.env (shell-sourceable)
#   broker.sh kill9  DIR               kill -9 the node (failover tests); its epmd stays up
#   broker.sh ctl    DIR ARGS...       rabbitmqctl for this node (list_queues, close_all_connections...)
#   broker.sh freebase                 print a PORT_BASE whose B..B+5 are free on 127.0.0.1
#
# Ports from base B: AMQP=B, dist=B+1, stomp=B+2, web_stomp=B+3 (ws://127.0.0.1:B+3/ws),
# management=B+4 (only with BROKER_MANAGEMENT=1: it adds 5 s to every stop), epmd=B+5.
# Node name sg<B>@localhost. Credentials: BROKER_USER / BROKER_PASSWORD (default
# websockets / rabbitmq), set up by scripts/provision-broker.sh as in the Vagrant VM
# (guest deleted) on the first boot in DIR, and again on a start with other ones.
# BROKER_EXTRA_CONF: extra rabbitmq.conf lines (e.g. vm_memory_high_watermark.relative = 0.0001).
set -euo pipefail

RMQ_BIN=/usr/lib/rabbitmq/bin # not /usr/sbin: those wrappers switch user and HOME
# shellcheck source=scripts/provision-broker.sh
. "$(dirname "${BASH_SOURCE[0]}")/provision-broker.sh"
PY=/usr/bin/python3
STOP_GRACE=30                 # seconds before a stopping node gets kill -9

die() { echo "broker: $*" >&2; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

# ---- process helpers (PID 1 reaps slowly here: a zombie counts as gone)
alive() {
    local pid=$1 stat
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }  # the field after "(comm) "
    [ "${stat%% *}" != Z ] && [ "${stat%% *}" != X ]
}

comm_of() { cat "/proc/$1/comm" 2>/dev/null || true; }

# beam.smp processes of this node (3.10 passes the node name in the environment)
beam_pids() {
    local node=$1 p
    for p in /proc/[0-9]*; do
        [ "$(comm_of "${p#/proc/}")" = beam.smp ] || continue
        if tr '\0' '\n' 2>/dev/null <"$p/environ" | grep -qxF -- "RABBITMQ_NODENAME=$node"; then
            alive "${p#/proc/}" && echo "${p#/proc/}"
        fi
    done
    return 0
}

# epmd daemons started with our private port (erl passes it as ERL_EPMD_PORT)
epmd_pids() {
    local port=$1 p
    for p in /proc/[0-9]*; do
        [ "$(comm_of "${p#/proc/}")" = epmd ] || continue
        if { tr '\0' '\n' 2>/dev/null <"$p/environ" | grep -qxF "ERL_EPMD_PORT=$port"; } ||
            { tr '\0' '\n' 2>/dev/null <"$p/cmdline" | grep -qxF -- "$port"; }; then
            alive "${p#/proc/}" && echo "${p#/proc/}"
        fi
    done
    return 0
}

# wait_gone SECONDS PID... : 0 once none of the PIDs is alive, 1 on timeout
wait_gone() {
    local deadline=$((SECONDS + $1)) p any
    shift
    while :; do
        any=0
        for p in "$@"; do alive "$p" && any=1; done
        [ $any = 0 ] && return 0
        [ $SECONDS -ge "$deadline" ] && return 1
        sleep 0.2
    done
}

# ---- ports
port_free() { # port_free PORT...: exit 0 if every port can be listened on at 127.0.0.1
    "$PY" - "$@" <<'EOF'
import socket, sys
for p in sys.argv[1:]:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # as Erlang's listeners do, so that TIME_WAIT left by a previous run is no obstacle
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", int(p)))
    except OSError as e:
        sys.exit(f"port {p}: {e.strerror}")
    finally:
        s.close()
EOF
}

freebase() {
    "$PY" - <<'EOF'
import random, socket, sys
lo, hi = 20000, 59000
# prefer bases outside the kernel's ephemeral range, so that outgoing
# connections cannot take one of our ports between this check and the bind
try:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        elo, ehi = map(int, f.read().split())
except OSError:
    elo, ehi = 0, -1
cands = [b for b in range(lo, hi + 1) if b + 5 < elo or b > ehi] or list(range(lo, hi + 1))
for _ in range(200):
    b = random.choice(cands)
    socks = []
    try:
        for p in range(b, b + 6):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(b)
    sys.exit(0)
sys.exit("broker: no free port base found")
EOF
}

# ---- node environment for the server and its CLI
setup() { # setup DIR BASE
    DIR=$1
    B=$2
    case $B in '' | *[!0-9]*) die "bad port base '$B'" ;; esac
    if [ "$B" -lt 1 ] || [ "$B" -gt 65530 ]; then die "port base $B out of range"; fi
    NODE="sg$B@localhost"
    PIDFILE="$DIR/mnesia/$NODE.pid"
    AMQP_PORT=$B
    DIST_PORT=$((B + 1))
    STOMP_PORT=$((B + 2))
    WEB_STOMP_PORT=$((B + 3))
    MGMT_PORT=$((B + 4))
    EPMD_PORT=$((B + 5))
    local erl_args='-kernel inet_dist_use_interface {127,0,0,1}'
    RENV=(
        HOME="$DIR/home"
        RABBITMQ_NODENAME="$NODE"
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
        RABBITMQ_NODE_PORT="$AMQP_PORT"
        RABBITMQ_DIST_PORT="$DIST_PORT"
        RABBITMQ_MNESIA_BASE="$DIR/mnesia"
        RABBITMQ_LOG_BASE="$DIR/log"
        RABBITMQ_PID_FILE="$PIDFILE"
        RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/enabled_plugins"
        RABBITMQ_CONFIG_FILE="$DIR/rabbitmq.conf"
        RABBITMQ_ADVANCED_CONFIG_FILE="$DIR/advanced.config"
        RABBITMQ_CONF_ENV_FILE="$DIR/rabbitmq-env.conf"
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="$erl_args"
        RABBITMQ_CTL_ERL_ARGS="$erl_args"
        ERL_EPMD_ADDRESS=127.0.0.1
        ERL_EPMD_PORT="$EPMD_PORT"
    )
}

rctl() { env "${RENV[@]}" "$RMQ_BIN/rabbitmqctl" -q -n "$NODE" "$@"; }

# base of an existing DIR (stop/status/env/kill9)
stored_base() {
    local dir=$1
    [ -f "$dir/port_base" ] || die "$dir has no port_base (never started here?)"
    cat "$dir/port_base"
}

beam_pid() { # pid from the pid file, if that process is alive and a beam.smp
    local pid=
    [ -f "$PIDFILE" ] && pid=$(tr -dc '0-9' <"$PIDFILE")
    if [ -n "$pid" ] && alive "$pid" && [ "$(comm_of "$pid")" = beam.smp ]; then echo "$pid"; fi
    return 0
}

running() { [ -n "$(beam_pid)" ]; }

write_files() {
    mkdir -p "$DIR/mnesia" "$DIR/log" "$DIR/home"
    chmod 700 "$DIR/home"
    echo "$B" >"$DIR/port_base"
    local cookie="$DIR/home/.erlang.cookie"
    if [ ! -s "$cookie" ]; then
        rm -f "$cookie"
        (umask 077 && head -c 30 /dev/urandom | od -An -tx1 | tr -dc 'a-f0-9' | head -c 40 >"$cookie")
    fi
    chmod 400 "$cookie"
    : >"$DIR/rabbitmq-env.conf"
    local plugins=rabbitmq_web_stomp
    [ "${BROKER_MANAGEMENT:-0}" = 1 ] && plugins="rabbitmq_management,$plugins"
    echo "[$plugins]." >"$DIR/enabled_plugins"
    {
        echo "# written by scripts/broker.sh; rewritten on every start"
        echo "stomp.listeners.tcp.1 = 127.0.0.1:$STOMP_PORT"
        echo "web_stomp.tcp.port = $WEB_STOMP_PORT"
        echo "web_stomp.tcp.ip = 127.0.0.1"
        if [ "${BROKER_MANAGEMENT:-0}" = 1 ]; then
            echo "management.tcp.port = $MGMT_PORT"
            echo "management.tcp.ip = 127.0.0.1"
        fi
        if [ -n "${BROKER_EXTRA_CONF:-}" ]; then
            echo "# BROKER_EXTRA_CONF"
            printf '%s\n' "$BROKER_EXTRA_CONF"
        fi
    } >"$DIR/rabbitmq.conf"
    chmod 600 "$DIR/rabbitmq.conf"
}

write_env() {
    local pid=$1 tmp="$DIR/broker.env.tmp"
    {
        printf 'BROKER_DIR=%q\n' "$DIR"
        printf 'BROKER_PORT_BASE=%s\n' "$B"
        printf 'BROKER_AMQP_PORT=%s\n' "$AMQP_PORT"
        printf 'BROKER_STOMP_PORT=%s\n' "$STOMP_PORT"
        printf 'BROKER_WEB_STOMP_PORT=%s\n' "$WEB_STOMP_PORT"
        [ "${BROKER_MANAGEMENT:-0}" = 1 ] && printf 'BROKER_MANAGEMENT_PORT=%s\n' "$MGMT_PORT"
        printf 'BROKER_EPMD_PORT=%s\n' "$EPMD_PORT"
        printf 'BROKER_NODE=%q\n' "$NODE"
        printf 'BROKER_USER=%q\n' "$USER_"
        printf 'BROKER_PASSWORD=%q\n' "$PASS_"
        printf 'BROKER_PID=%s\n' "$pid"
        printf 'BROKER_URL=%q\n' "amqp://$USER_:$PASS_@127.0.0.1:$AMQP_PORT"
    } >"$tmp"
    chmod 600 "$tmp"
    mv -f "$tmp" "$DIR/broker.env"
}

kill_epmd() {
    local p
    env ERL_EPMD_ADDRESS=127.0.0.1 epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1 || true
    # shellcheck disable=SC2046
    wait_gone 5 $(epmd_pids "$EPMD_PORT") && return 0
    for p in $(epmd_pids "$EPMD_PORT"); do kill -9 "$p" 2>/dev/null || true; done
    # shellcheck disable=SC2046
    wait_gone 5 $(epmd_pids "$EPMD_PORT")
}

# kill -9 every beam of this node, wait until gone
kill_beams() {
    local pids p
    pids="$(beam_pid) $(beam_pids "$NODE")"
    for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
    # shellcheck disable=SC2086
    wait_gone 10 $pids
}

# the part of the console output that says why the boot failed: the reason is
# logged before "BOOT FAILED" and followed by pages of supervisor reports
boot_error() {
    local f="$DIR/log/console.log" n
    n=$(grep -n -m1 'Error during startup' "$f" | cut -d: -f1)
    if [ -n "$n" ]; then
        sed -n "$((n > 30 ? n - 30 : 1)),${n}p" "$f"
        echo "... (more in $f)"
        tail -n 2 "$f"
    else
        tail -n 40 "$f"
    fi
}

cmd_start() {
    local dir=$1 base=${2:-}
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd -P)
    if [ -z "$base" ]; then
        if [ -f "$dir/port_base" ]; then base=$(cat "$dir/port_base"); else base=5672; fi
    fi
    # a node already running from this DIR (possibly on another base)
    if [ -f "$dir/port_base" ]; then
        setup "$dir" "$(cat "$dir/port_base")"
        if running; then
            [ "$B" = "$base" ] || die "already running in $DIR on port base $B (asked for $base)"
            echo "broker: already running on 127.0.0.1:$AMQP_PORT (node $NODE, pid $(beam_pid))"
            return 0
        fi
    fi
    setup "$dir" "$base"
    USER_=${BROKER_USER:-websockets}
    PASS_=${BROKER_PASSWORD:-rabbitmq}
    # they go into an unescaped URL (broker.env): keep them plain
    [[ $USER_ =~ ^[A-Za-z0-9._~-]+$ ]] || die "BROKER_USER must match [A-Za-z0-9._~-]+"
    [[ $PASS_ =~ ^[A-Za-z0-9._~-]+$ ]] || die "BROKER_PASSWORD must match [A-Za-z0-9._~-]+"
    rm -f "$PIDFILE" "$DIR/broker.env"

    local ports="$AMQP_PORT $DIST_PORT $STOMP_PORT $WEB_STOMP_PORT"
    [ "${BROKER_MANAGEMENT:-0}" = 1 ] && ports="$ports $MGMT_PORT"
    # epmd's port may be held by our own epmd left from a kill9: that one is reused.
    # On a restart of the same directory the port is ours whatever holds it for the
    # moment (an epmd we could not match, or its sockets still being torn down); a
    # foreign listener would still make the node's boot fail, with its own error.
    if [ -z "$(epmd_pids "$EPMD_PORT")" ] && [ "$(stored_base "$DIR" 2>/dev/null)" != "$B" ]; then
        ports="$ports $EPMD_PORT"
    fi
    # a node just killed (kill9) may still hold its sockets for a moment while the
    # kernel tears it down: give the ports up to 10 s to come free
    local tries=0 busy
    # shellcheck disable=SC2086
    until busy=$(port_free $ports 2>&1); do
        tries=$((tries + 1))
        if [ $tries -ge 50 ]; then
            ss -ltnp 2>/dev/null | grep -E ":($(echo "$ports" | tr ' ' '|'))\b" >&2
            die "$busy: a port in $B..$EPMD_PORT is in use on 127.0.0.1 (pick another base: $0 freebase)"
        fi
        sleep 0.2
    done

    write_files
    : >"$DIR/log/console.log"
    (
        cd "$DIR"
        exec env "${RENV[@]}" setsid nohup "$RMQ_BIN/rabbitmq-server" \
            >>"$DIR/log/console.log" 2>&1 </dev/null
    ) &
    local server=$!

    # `rabbitmqctl wait PIDFILE` blocks until the app runs; watch the server
    # meanwhile so a boot that dies (bad config, port taken) fails at once.
    rctl wait "$PIDFILE" --timeout 120 >"$DIR/log/wait.log" 2>&1 &
    local waiter=$! rc=
    while :; do
        if ! alive "$waiter"; then
            if wait "$waiter"; then rc=0; else rc=$?; fi
            break
        fi
        if ! alive "$server"; then
            sleep 1 # let the CLI notice, then give up
            if alive "$waiter"; then
                kill "$waiter" 2>/dev/null || true
                wait "$waiter" 2>/dev/null || true
                rc=1
            else
                if wait "$waiter"; then rc=0; else rc=$?; fi
            fi
            break
        fi
        sleep 0.3
    done

    local pid
    pid=$(beam_pid)
    if [ "$rc" != 0 ] || [ -z "$pid" ]; then
        echo "broker: node $NODE failed to start (rabbitmqctl wait exit $rc); console output:" >&2
        boot_error | sed 's/^/  | /' >&2
        if [ -s "$DIR/log/wait.log" ]; then
            echo "broker: rabbitmqctl wait said:" >&2
            tail -n 10 "$DIR/log/wait.log" | sed 's/^/  | /' >&2
        fi
        kill_beams || true
        kill_epmd || true
        wait "$server" 2>/dev/null || true
        exit 1
    fi
    # the user, as the VM has it: on the first boot in DIR (and when the credentials
    # change); each rabbitmqctl call costs about 0.5 s, so not on every restart
    local want
    want="$USER_ $(printf '%s' "$PASS_" | sha256sum | cut -d' ' -f1)"
    if [ "$(cat "$DIR/provisioned" 2>/dev/null)" != "$want" ]; then
        if ! provision_broker_user rctl "$USER_" "$PASS_" >"$DIR/log/provision.log" 2>&1; then
            echo "broker: setting up user $USER_ on $NODE failed:" >&2
            sed 's/^/  | /' "$DIR/log/provision.log" >&2
            kill_beams || true
            kill_epmd || true
            wait "$server" 2>/dev/null || true
            exit 1
        fi
        (umask 077 && echo "$want" >"$DIR/provisioned")
    fi
    write_env "$pid"
    echo "broker: ready on 127.0.0.1:$AMQP_PORT (web_stomp ws://127.0.0.1:$WEB_STOMP_PORT/ws)"
}

cmd_stop() {
    local dir
    [ -d "$1" ] || die "no such directory $1"
    dir=$(cd "$1" && pwd -P)
    setup "$dir" "$(stored_base "$dir")"
    local pid rc=0
    pid=$(beam_pid)
    if [ -n "$pid" ]; then
        # with the pid file, `stop` returns only once beam.smp has exited
        rctl stop "$PIDFILE" >"$DIR/log/stop.log" 2>&1 &
        local stopper=$!
        if ! wait_gone "$STOP_GRACE" "$pid"; then
            echo "broker: node $NODE (pid $pid) still alive after ${STOP_GRACE}s: kill -9" >&2
            kill -9 "$pid" 2>/dev/null || true
            wait_gone 10 "$pid" || true
        fi
        wait_gone 10 "$stopper" || kill "$stopper" 2>/dev/null || true
        wait "$stopper" 2>/dev/null || true
    fi
    # stray beams of this node without a pid file (e.g. a boot killed early)
    kill_beams || true
    kill_epmd || true
    local left
    left="$(beam_pids "$NODE") $(epmd_pids "$EPMD_PORT")"
    if [ -n "${left// /}" ]; then
        echo "broker: processes of node $NODE still alive: $left" >&2
        rc=1
    fi
    rm -f "$DIR/broker.env"
    if [ -n "$pid" ]; then echo "broker: stopped $NODE"; else echo "broker: $NODE was not running"; fi
    return $rc
}

cmd_status() {
    local dir
    [ -f "$1/port_base" ] || { echo "broker: not running (nothing in $1)"; return 1; }
    dir=$(cd "$1" && pwd -P)
    setup "$dir" "$(stored_base "$dir")"
    if running; then
        echo "broker: running on 127.0.0.1:$AMQP_PORT (node $NODE, pid $(beam_pid))"
    else
        echo "broker: not running (node $NODE)"
        return 1
    fi
}

cmd_env() {
    [ -f "$1/broker.env" ] || die "no $1/broker.env (not started?)"
    cat "$1/broker.env"
}

cmd_ctl() { # rabbitmqctl against this node, e.g. ctl DIR list_queues name messages
    local dir
    [ -d "$1" ] || die "no such directory $1"
    dir=$(cd "$1" && pwd -P)
    shift
    setup "$dir" "$(stored_base "$dir")"
    rctl "$@"
}

cmd_kill9() {
    local dir pid
    [ -d "$1" ] || die "no such directory $1"
    dir=$(cd "$1" && pwd -P)
    setup "$dir" "$(stored_base "$dir")"
    pid=$(beam_pid)
    [ -n "$pid" ] || { echo "broker: $NODE not running"; return 0; }
    kill -9 "$pid"
    wait_gone 10 "$pid" || die "pid $pid survived kill -9"
    echo "broker: killed $NODE (pid $pid) with SIGKILL"
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case $cmd in
start) if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi; cmd_start "$@" ;;
stop) [ $# -eq 1 ] || usage; cmd_stop "$1" ;;
status) [ $# -eq 1 ] || usage; cmd_status "$1" ;;
env) [ $# -eq 1 ] || usage; cmd_env "$1" ;;
kill9) [ $# -eq 1 ] || usage; cmd_kill9 "$1" ;;
ctl) [ $# -ge 2 ] || usage; cmd_ctl "$@" ;;
freebase) [ $# -eq 0 ] || usage; freebase ;;
-h | --help | help) usage ;;
*) usage ;;
esac
