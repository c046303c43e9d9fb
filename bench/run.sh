#!/usr/bin/env bash
# bench/run.sh - `make bench` (after deps and `make all`): stompgate against
# RabbitMQ's own web_stomp plugin, same broker, same machine, same run.
#
# Starts a private RabbitMQ node (scripts/broker.sh, free port base, temp dir)
# and bin/stompgate (free port, workers = number of cores), builds
# bin/loadgen from bench/loadgen.c, then runs every scenario first against
# stompgate and then against web_stomp:
#
#   conns       BENCH_CONNS (5000) idle STOMP sessions: connect time, memory
#               (stompgate VmRSS before/after; web_stomp: beam.smp VmRSS delta)
#   fanout      BENCH_FANOUT_SUBS (1000) subscribers on one /topic, 1 publisher,
#               BENCH_FANOUT_MSGS (2000) messages of 128 bytes, window 10
#   throughput  10 publishers -> 10 subscribers on 10 topics,
#               BENCH_THR_MSGS (20000) messages of 256 bytes, window 100 per topic
#   overload    open loop: for N in BENCH_OVL_SUBS ("100 1000") subscribers on one
#               /topic, one AMQP publisher sends 100-byte messages straight to
#               amq.topic at fixed rates that do not wait for deliveries, so both
#               gateways get the same offered load from the same broker. A ladder
#               of offered deliveries/s (BENCH_OVL_RATES, messages/s x N), each step
#               BENCH_OVL_SECONDS (4) s, stopped for a target once two steps in a row
#               deliver under 50%; capacity = the highest step with >= 99.9% delivered
#               and p99 <= 50 ms; then one run each at 1.5x and 3x that capacity.
#               Peak RSS (sampled every second) and RSS 2 s after the clients left.
#   tcp         raw STOMP over TCP (bin/loadgen --tcp), stompgate's stomp_listen
#               against RabbitMQ's rabbitmq_stomp plugin on the same broker:
#               tcp.conns   BENCH_CONNS idle sessions, one subscription each (all
#                           on one /topic): RSS per session (stompgate VmRSS delta;
#                           rabbitmq_stomp: beam.smp VmRSS delta)
#               tcp.fanout  as fanout: BENCH_FANOUT_SUBS subscribers on one /topic,
#                           BENCH_FANOUT_MSGS messages of 128 bytes, window 10
#
# Writes bench/results/latest.json and prints markdown tables with
# stompgate / web_stomp (tcp: stompgate / rabbitmq_stomp) ratios. Everything it starts is stopped by PID on
# exit (trap). Exit status 1 if a run reported errors or timed out (the
# results are written anyway), 2 if the setup failed.
#
# Environment: BENCH_CONNS, BENCH_FANOUT_SUBS, BENCH_FANOUT_MSGS, BENCH_THR_MSGS,
# BENCH_OVL_SUBS, BENCH_OVL_RATES, BENCH_OVL_SECONDS (scale down on a small machine),
# BENCH_SCENARIOS (default "conns fanout throughput tcp overload": the ones to run),
# BENCH_KEEP=1 keeps the temp dir (logs), BENCH_RESULTS the results file (default
# bench/results/latest.json; a run of some scenarios only can go elsewhere).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
repo=$PWD
PY=/usr/bin/python3
CONNS=${BENCH_CONNS:-5000}
FAN_SUBS=${BENCH_FANOUT_SUBS:-1000}
FAN_MSGS=${BENCH_FANOUT_MSGS:-2000}
THR_MSGS=${BENCH_THR_MSGS:-20000}
OVL_SUBS=${BENCH_OVL_SUBS:-100 1000}
# offered deliveries/s; the steps under 25000 are there because web_stomp already misses
# the latency bound at 1000 subscribers there
OVL_RATES=${BENCH_OVL_RATES:-1000 2500 5000 10000 25000 50000 100000 150000 200000 300000 450000 600000}
OVL_SECONDS=${BENCH_OVL_SECONDS:-4}
SCENARIOS=${BENCH_SCENARIOS:-conns fanout throughput tcp overload}
RESULTS=${BENCH_RESULTS:-bench/results/latest.json}
case "$RESULTS" in /*) ;; *) RESULTS=$repo/$RESULTS ;; esac
PAUSE=5 # seconds between runs, so the server has closed the previous run's sessions

say() { echo "bench: $*" >&2; }
die() { say "$*"; exit 2; }

alive() { # PID exists and is not a zombie
    local s
    [ -n "${1:-}" ] || return 1
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    [ "${s%% *}" != Z ] && [ "${s%% *}" != X ]
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo -1; }

# ---- fd limit: 5000 sessions need 5000 fds in the generator, the daemon and the broker
hard=$(ulimit -Hn)
want=20000
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then want=$hard; fi
ulimit -Sn "$want" || die "cannot raise the fd limit to $want"
[ "$want" -ge $((CONNS + 200)) ] || die "fd limit $want is too low for $CONNS connections (BENCH_CONNS)"

# ---- build the load generator (warning-free with -Wall -Wextra)
[ -x bin/stompgate ] || die "bin/stompgate is not built (make all)"
[ -f build/rel/libsg.a ] || die "build/rel/libsg.a is not built (make all)"
mkdir -p bin bench/results "$(dirname "$RESULTS")"
# shellcheck disable=SC2046
cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Iinclude bench/loadgen.c build/rel/libsg.a \
    $(pkg-config --cflags --libs libevent openssl librabbitmq) -pthread -o bin/loadgen || die "loadgen does not build"

# ---- temp dir, cleanup
tmp=$(mktemp -d /tmp/sgbench.XXXXXX) || die "mktemp failed"
sg_pid=
broker_started=0
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$sg_pid" ] && alive "$sg_pid"; then
        kill -TERM "$sg_pid" 2>/dev/null
        for _ in $(seq 50); do alive "$sg_pid" || break; sleep 0.2; done
        alive "$sg_pid" && kill -KILL "$sg_pid" 2>/dev/null
        wait "$sg_pid" 2>/dev/null
    fi
    if [ "$broker_started" = 1 ]; then bash scripts/broker.sh stop "$tmp/broker" >&2 || true; fi
    if [ "${BENCH_KEEP:-0}" = 1 ]; then say "kept $tmp"; else rm -rf "$tmp"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- broker
base=$(bash scripts/broker.sh freebase) || die "no free port base"
broker_started=1
bash scripts/broker.sh start "$tmp/broker" "$base" >&2 || die "broker did not start"
# shellcheck disable=SC1091
. "$tmp/broker/broker.env"
beam=$BROKER_PID
alive "$beam" || die "no beam.smp pid in broker.env"

# ---- stompgate on a free port (below the ephemeral range, away from the broker's ports)
free_port() {
    "$PY" - "$base" <<'EOF'
import random, socket, sys
base = int(sys.argv[1])
with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
    elo, ehi = map(int, f.read().split())
cands = [p for p in range(20000, 60000) if (p < elo or p > ehi) and not base <= p <= base + 5]
for _ in range(200):
    p = random.choice(cands)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    sys.exit(0)
sys.exit("no free port")
EOF
}
cores=$(nproc)
for attempt in 1 2 3 4 5; do
    sg_port=$(free_port) || die "no free port for stompgate"
    sg_stomp_port=$(free_port) || die "no free port for stompgate's stomp_listen"
    [ "$sg_stomp_port" != "$sg_port" ] || continue
    cat >"$tmp/stompgate.conf" <<EOF
listen = 127.0.0.1:$sg_port
stomp_listen = 127.0.0.1:$sg_stomp_port
broker = 127.0.0.1:$BROKER_AMQP_PORT
broker_user = $BROKER_USER
broker_password = $BROKER_PASSWORD
workers = $cores
log_level = warn
max_connections = 19000
EOF
    bin/stompgate -c "$tmp/stompgate.conf" >"$tmp/stompgate.log" 2>&1 &
    sg_pid=$!
    ready=0
    for _ in $(seq 100); do
        alive "$sg_pid" || break
        if curl -sf -o /dev/null "http://127.0.0.1:$sg_port/readyz"; then ready=1; break; fi
        sleep 0.2
    done
    [ $ready = 1 ] && break
    say "stompgate did not become ready on port $sg_port (attempt $attempt):"
    tail -n 5 "$tmp/stompgate.log" >&2
    if alive "$sg_pid"; then kill -TERM "$sg_pid"; fi
    wait "$sg_pid" 2>/dev/null
    sg_pid=
done
[ -n "$sg_pid" ] || die "stompgate did not start"
sleep 1
sg_idle_kb=$(rss_kb "$sg_pid")
beam_idle_kb=$(rss_kb "$beam")
say "broker pid $beam (AMQP $BROKER_AMQP_PORT, web_stomp $BROKER_WEB_STOMP_PORT, stomp $BROKER_STOMP_PORT), stompgate pid $sg_pid on $sg_port (stomp $sg_stomp_port), workers $cores"

SG_URL=ws://127.0.0.1:$sg_port/ws
WS_URL=ws://127.0.0.1:$BROKER_WEB_STOMP_PORT/ws
SG_TCP_URL=tcp://127.0.0.1:$sg_stomp_port
STOMP_URL=tcp://127.0.0.1:$BROKER_STOMP_PORT
lines=$tmp/results.jsonl
: >"$lines"
failed=0

# run SCENARIO TARGET ARGS... : one loadgen run, its JSON line appended to $lines
run() {
    local scen=$1 target=$2 url pids out rc
    shift 2
    case "$scen/$target" in
    tcp.*/stompgate) url=$SG_TCP_URL ;;
    tcp.*) url=$STOMP_URL ;;
    */stompgate) url=$SG_URL ;;
    *) url=$WS_URL ;;
    esac
    if [ "$target" = stompgate ]; then
        pids=(--pid "stompgate:$sg_pid" --pid "broker:$beam")
    else
        pids=(--pid "broker:$beam")
    fi
    say "$scen / $target: loadgen $*"
    local t0=$SECONDS
    out=$(bin/loadgen --url "$url" --login "$BROKER_USER" --passcode "$BROKER_PASSWORD" \
        --label "$scen" --target "$target" --prefix "bench.$$.$scen.$target" "${pids[@]}" "$@")
    rc=$?
    if [ -z "$out" ]; then
        say "$scen / $target: loadgen printed nothing (exit $rc)"
        out="{\"scenario\":\"$scen\",\"target\":\"$target\",\"ok\":false,\"first_error\":\"loadgen exit $rc without output\"}"
    fi
    echo "$out" >>"$lines"
    echo "$out" >&2
    [ $rc = 0 ] || { failed=1; say "$scen / $target: NOT OK (exit $rc)"; }
    say "$scen / $target: $((SECONDS - t0)) s"
    if ! alive "$sg_pid"; then
        say "stompgate (pid $sg_pid) died; its log:"
        tail -n 30 "$tmp/stompgate.log" >&2
        sg_pid=
        exit 1
    fi
    last=$out
    sleep "${RUN_PAUSE:-$PAUSE}"
}

want() { case " $SCENARIOS " in *" $1 "*) return 0 ;; esac; return 1; }

cpu_ticks() { # utime+stime of PIDs, in clock ticks
    local t=0 s f
    for p in "$@"; do
        s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        s=${s##*) }
        read -r -a f <<<"$s"
        t=$((t + f[11] + f[12]))
    done
    echo "$t"
}

# wait_quiet PID... : until the PIDs use under 15% of a core over half a second
# (at most 30 s), so a run does not start while the broker still deletes the last
# run's queues
wait_quiet() {
    local hz a b
    hz=$(getconf CLK_TCK)
    for _ in $(seq 60); do
        a=$(cpu_ticks "$@")
        sleep 0.5
        b=$(cpu_ticks "$@")
        [ $(((b - a) * 100 * 2)) -lt $((15 * hz)) ] && return 0
    done
    say "still busy after 30 s: $*"
}

# ovl_plan JSON_LINE : from a ladder's result, "CAP_OK BASE" in offered deliveries/s:
# CAP_OK the highest step with >= 99.9% delivered and p99 <= 50 ms (0: none), BASE what
# the 1.5x and 3x runs multiply (CAP_OK, else the highest step with >= 99.9% delivered)
ovl_plan() {
    "$PY" -c '
import json, sys
r = json.loads(sys.argv[1])
ok = [s["offered_deliveries_per_s"] for s in r.get("steps", []) if s["delivered_frac"] >= 0.999]
cap = [s["offered_deliveries_per_s"] for s in r.get("steps", [])
       if s["delivered_frac"] >= 0.999 and 0 <= s["latency_us"]["p99"] <= 50000]
c = max(cap) if cap else 0
print("%d %d" % (c, c or (max(ok) if ok else 0)))' "$1"
}

start=$SECONDS
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
if want conns; then
    for target in stompgate web_stomp; do
        run conns "$target" --conns "$CONNS" --settle-ms 3000 --timeout 120
    done
fi
if want fanout; then
    for target in stompgate web_stomp; do
        run fanout "$target" --conns $((FAN_SUBS + 1)) --subs "$FAN_SUBS" --pubs 1 --topics 1 \
            --messages "$FAN_MSGS" --size 128 --window 10 --timeout 240
    done
fi
if want throughput; then
    for target in stompgate web_stomp; do
        run throughput "$target" --conns 20 --subs 10 --pubs 10 --topics 10 \
            --messages "$THR_MSGS" --size 256 --window 100 --timeout 120
    done
fi
if want tcp; then
    # raw STOMP (loadgen --tcp: the url is tcp://): stompgate's stomp_listen against
    # rabbitmq_stomp. Memory first, on a quiet broker. All subscriptions are on one
    # topic: the plugin declares a queue per subscription, stompgate shares one per
    # worker (one topic per session would need a channel per topic, and past
    # broker_channel_max, 2047 per pooled broker connection, SUBSCRIBE gets ERROR)
    for target in stompgate rabbitmq_stomp; do
        wait_quiet "$beam" "$sg_pid"
        run tcp.conns "$target" --conns "$CONNS" --subs "$CONNS" --topics 1 \
            --settle-ms 3000 --timeout 180
    done
    for target in stompgate rabbitmq_stomp; do
        run tcp.fanout "$target" --conns $((FAN_SUBS + 1)) --subs "$FAN_SUBS" --pubs 1 --topics 1 \
            --messages "$FAN_MSGS" --size 128 --window 10 --timeout 240
    done
fi
ovl_start=$SECONDS
if want overload; then
    # each loadgen closes its clients and waits 2 s (--settle-ms) before its last RSS
    # sample; wait_quiet then replaces most of the pause between runs
    for n in $OVL_SUBS; do
        steps=
        for d in $OVL_RATES; do steps=$steps${steps:+,}$("$PY" -c "print($d / $n)"); done
        nsteps=$(echo "$OVL_RATES" | wc -w)
        for target in stompgate web_stomp; do
            ovl=(--amqp "127.0.0.1:$BROKER_AMQP_PORT" --conns "$n" --subs "$n" --pubs 1 --topics 1
                --size 100 --step-seconds "$OVL_SECONDS" --step-grace-ms 1000 --settle-ms 2000)
            wait_quiet "$beam" "$sg_pid"
            RUN_PAUSE=0 run "overload.$n" "$target" "${ovl[@]}" --steps "$steps" --stop-below 0.5 \
                --timeout $((nsteps * (OVL_SECONDS + 3) + 60))
            read -r cap base <<<"$(ovl_plan "$last")"
            if [ "${base:-0}" -le 0 ]; then
                say "overload.$n / $target: no step delivered 99.9%, no 1.5x / 3x runs"
                continue
            fi
            [ "$cap" -gt 0 ] || say "overload.$n / $target: no step had p99 <= 50 ms; 1.5x / 3x of $base (99.9% delivered)"
            for x in 1.5 3; do
                wait_quiet "$beam" "$sg_pid"
                RUN_PAUSE=0 run "overload.$n.x$x" "$target" "${ovl[@]}" \
                    --steps "$("$PY" -c "print($base * $x / $n)")" --timeout $((OVL_SECONDS + 60))
            done
        done
    done
fi
elapsed=$((SECONDS - start))
ovl_elapsed=$((SECONDS - ovl_start))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

if [ -s "$tmp/stompgate.log" ]; then
    say "stompgate log (warnings and errors, last 20 lines):"
    tail -n 20 "$tmp/stompgate.log" >&2
fi

# ---- results file and table
rmq_version=$(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo unknown)
"$PY" - "$lines" "$RESULTS" "$rmq_version" "$sg_idle_kb" "$beam_idle_kb" \
    "$cores" "$elapsed" "$CONNS" "$load_before" "$load_after" "$ovl_elapsed" "$OVL_SUBS" \
    "$OVL_RATES" "$OVL_SECONDS" "$SCENARIOS" <<'EOF'
import json, os, platform, subprocess, sys, time
(lines, out, rmq, sg_idle, beam_idle, cores, elapsed, conns, load_before, load_after, ovl_elapsed,
 ovl_subs, ovl_rates, ovl_seconds, scenarios) = sys.argv[1:]
scenarios = scenarios.split()
runs = [json.loads(l) for l in open(lines) if l.strip()]
by = {(r["scenario"], r["target"]): r for r in runs}
mem_kb = 0
for l in open("/proc/meminfo"):
    if l.startswith("MemTotal:"):
        mem_kb = int(l.split()[1])
try:
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
except OSError:
    rev = ""
doc = {
    "command": "make bench",
    # BENCH_* variables set for the run (none: the defaults)
    "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith("BENCH_")},
    "scenarios": scenarios,
    "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "git_head": rev,
    "machine": {"nproc": int(cores), "mem_total_mib": mem_kb // 1024, "kernel": platform.release(),
                "rabbitmq_server": rmq},
    "stompgate_workers": int(cores),
    "idle_rss_kb": {"stompgate": int(sg_idle), "broker_beam": int(beam_idle)},
    "elapsed_s": int(elapsed),
    # other processes on the machine share the cores: the load average around the run
    "loadavg_before": load_before,
    "loadavg_after": load_after,
    "runs": runs,
}

def get(scen, target, *path):
    r = by.get((scen, target))
    for p in path:
        if r is None or not isinstance(r, dict):
            return None
        r = r.get(p)
    return r

def cpu(scen, target):
    procs = get(scen, target, "procs") or {}
    vals = [p.get("cpu_s") for p in procs.values()]
    if not vals or any(v is None or v < 0 for v in vals):
        return None
    return sum(vals)

def conn_mem(target, scen="conns"):
    procs = get(scen, target, "procs") or {}
    p = procs.get("stompgate" if target == "stompgate" else "broker")
    n = get(scen, target, "connected")
    if not p or not n or p["rss_before_kb"] < 0 or p["rss_after_kb"] < 0:
        return None, None
    d = p["rss_after_kb"] - p["rss_before_kb"]
    return d / 1024.0, d * 1024.0 / n / 1024.0  # MiB total, KiB per connection

rows = []
def row(label, sg, ws, fmt="{:.1f}", ratio=True, other="web_stomp"):
    f = lambda v: "n/a" if v is None else fmt.format(v)
    ratio = "n/a" if not ratio or sg is None or ws in (None, 0) else "{:.2f}".format(sg / ws)
    rows.append({"metric": label, "stompgate": sg, other: ws,
                 "ratio": None if ratio == "n/a" else float(ratio)})
    return "| {} | {} | {} | {} |".format(label, f(sg), f(ws), ratio)

def ms(v):
    return None if v is None or v < 0 else v / 1000.0

def conns_rows():
    R = []
    sgd, sgk = conn_mem("stompgate")
    wsd, wsk = conn_mem("web_stomp")
    n = conns
    R.append(row(f"conns: time to open {n} STOMP sessions (s)", get("conns", "stompgate", "connect_s"), get("conns", "web_stomp", "connect_s"), "{:.2f}"))
    R.append(row(f"conns: sessions opened per second", get("conns", "stompgate", "connect_per_s"), get("conns", "web_stomp", "connect_per_s"), "{:.0f}"))
    R.append(row(f"conns: RSS growth for {n} sessions (MiB; web_stomp: whole beam.smp)", sgd, wsd, "{:.1f}"))
    R.append(row("conns: RSS per session (KiB)", sgk, wsk, "{:.1f}"))
    return R

def flow_rows(scen, title):
    R = []
    N = get(scen, "stompgate", "conns") or get(scen, "web_stomp", "conns")
    R.append(row(f"{title}: time to open {N} sessions (s)", get(scen, "stompgate", "connect_s"), get(scen, "web_stomp", "connect_s"), "{:.2f}"))
    R.append(row(f"{title}: messages delivered per second (sum over subscribers)", get(scen, "stompgate", "delivered_per_s"), get(scen, "web_stomp", "delivered_per_s"), "{:.0f}"))
    for q in ("p50", "p99", "max"):
        R.append(row(f"{title}: latency {q} (ms)", ms(get(scen, "stompgate", "latency_us", q)), ms(get(scen, "web_stomp", "latency_us", q)), "{:.1f}"))
    R.append(row(f"{title}: server CPU (s; stompgate+broker vs broker)", cpu(scen, "stompgate"), cpu(scen, "web_stomp"), "{:.2f}"))
    exp = get(scen, "stompgate", "expected") or get(scen, "web_stomp", "expected")
    R.append(row(f"{title}: messages delivered (of {exp} expected)", get(scen, "stompgate", "delivered"), get(scen, "web_stomp", "delivered"), "{:.0f}"))
    return R

T = []
if "conns" in scenarios:
    T += conns_rows()
for scen, title in (("fanout", "fan-out"), ("throughput", "throughput")):
    if scen in scenarios:
        T += flow_rows(scen, title)
for scen in ("conns", "fanout", "throughput"):
    if scen in scenarios:
        T.append(row(f"{scen}: errors", get(scen, "stompgate", "errors"), get(scen, "web_stomp", "errors"), "{:.0f}"))
if T:
    T.append(row("idle RSS (MiB; web_stomp: whole broker)", int(sg_idle) / 1024.0, int(beam_idle) / 1024.0, "{:.1f}"))
doc["table"] = list(rows)

# ---- overload: per N, each target's ladder and its 1.5x / 3x runs
def steps_of(scen, target):
    return get(scen, target, "steps") or []

def step_summary(st):
    wall = st["publish_s"] + st["drain_s"]
    srv = [p["cpu_s"] for p in st["procs"].values()]
    return {
        "offered_deliveries_per_s": st["offered_deliveries_per_s"],
        "delivered_frac": st["delivered_frac"],
        "delivered_per_s": st["delivered_per_s"],
        "p99_ms": ms(st["latency_us"]["p99"]),
        "sent": st["sent"], "offered": st["offered"],
        "server_cores": sum(srv) / wall if wall > 0 and all(c >= 0 for c in srv) else None,
        "loadgen_cores": st["loadgen_cpu_s"] / wall if wall > 0 else None,
        "loadgen_main_thread_cores": st["loadgen_main_cpu_s"] / wall if wall > 0 else None,
    }

def ovl_target(n, target):
    gw = "stompgate" if target == "stompgate" else "broker"
    lad = steps_of(f"overload.{n}", target)
    ok = [s for s in lad if s["delivered_frac"] >= 0.999]
    good = [s for s in ok if 0 <= s["latency_us"]["p99"] <= 50000]
    cap = max(good, key=lambda s: s["offered_deliveries_per_s"]) if good else None
    dok = max(ok, key=lambda s: s["offered_deliveries_per_s"]) if ok else None
    res = {"capacity": cap["offered_deliveries_per_s"] if cap else None,
           "capacity_at_ladder_top": bool(cap) and cap is lad[-1] and len(lad) == len(ovl_rates.split()),
           "capacity_p99_ms": ms(cap["latency_us"]["p99"]) if cap else None,
           "capacity_delivery_only": dok["offered_deliveries_per_s"] if dok else None,
           "lowest_step_p99_ms": ms(lad[0]["latency_us"]["p99"]) if lad else None,
           "stopped_early": get(f"overload.{n}", target, "stopped_early"),
           "ladder": [step_summary(s) for s in lad]}
    res["base"] = res["capacity"] or res["capacity_delivery_only"]
    runs_here = [by.get((f"overload.{n}", target))]
    for x in ("1.5", "3"):
        r = by.get((f"overload.{n}.x{x}", target))
        runs_here.append(r)
        st = (r or {}).get("steps") or []
        res["x" + x] = step_summary(st[0]) if st else None
    runs_here = [r for r in runs_here if r]
    procs = [r.get("procs", {}) for r in runs_here]
    pk = [p[gw]["rss_peak_kb"] for p in procs if gw in p]
    res["peak_rss_kb"] = max(pk) if pk else None
    bp = [p["broker"]["rss_peak_kb"] - p["broker"]["rss_before_kb"] for p in procs if "broker" in p]
    res["broker_peak_growth_kb"] = max(bp) if bp else None
    if procs and gw in procs[-1]:
        res["rss_before_kb"] = procs[0][gw]["rss_before_kb"]
        res["rss_after_leave_kb"] = procs[-1][gw]["rss_after_leave_kb"]
    else:
        res["rss_before_kb"] = res["rss_after_leave_kb"] = None
    return res

O, L, notes = [], [], []
ovl = {}
if "overload" in scenarios:
    lowest = int(ovl_rates.split()[0])
    for n in ovl_subs.split():
        sg, ws = ovl_target(n, "stompgate"), ovl_target(n, "web_stomp")
        ovl[n] = {"stompgate": sg, "web_stomp": ws}
        p = f"overload, {n} subs:"
        def v(res, *path):
            for k in path:
                if res is None:
                    return None
                res = res.get(k)
            return res
        def pct(x):
            return None if x is None else 100.0 * x
        def kib(x):
            return None if x is None else x / 1024.0
        O.append(row(f"{p} capacity, deliveries/s (>= 99.9% delivered, p99 <= 50 ms)", sg["capacity"], ws["capacity"], "{:.0f}"))
        O.append(row(f"{p} p99 at capacity (ms)", sg["capacity_p99_ms"], ws["capacity_p99_ms"], "{:.1f}"))
        O.append(row(f"{p} capacity on delivery alone (>= 99.9% delivered, any p99)", sg["capacity_delivery_only"], ws["capacity_delivery_only"], "{:.0f}"))
        for x in ("1.5", "3"):
            O.append(row(f"{p} {x}x capacity: offered deliveries/s", v(sg, "x" + x, "offered_deliveries_per_s"), v(ws, "x" + x, "offered_deliveries_per_s"), "{:.0f}", False))
            O.append(row(f"{p} {x}x capacity: delivered/s while offered", v(sg, "x" + x, "delivered_per_s"), v(ws, "x" + x, "delivered_per_s"), "{:.0f}"))
            O.append(row(f"{p} {x}x capacity: delivered (% of offered)", pct(v(sg, "x" + x, "delivered_frac")), pct(v(ws, "x" + x, "delivered_frac")), "{:.1f}"))
            O.append(row(f"{p} {x}x capacity: p99 (ms)", v(sg, "x" + x, "p99_ms"), v(ws, "x" + x, "p99_ms"), "{:.0f}"))
        O.append(row(f"{p} peak RSS (MiB; web_stomp: whole broker)", kib(sg["peak_rss_kb"]), kib(ws["peak_rss_kb"]), "{:.1f}"))
        O.append(row(f"{p} broker peak RSS growth (MiB)", kib(sg["broker_peak_growth_kb"]), kib(ws["broker_peak_growth_kb"]), "{:.1f}"))
        O.append(row(f"{p} RSS before (MiB; web_stomp: whole broker)", kib(sg["rss_before_kb"]), kib(ws["rss_before_kb"]), "{:.1f}", False))
        O.append(row(f"{p} RSS 2 s after the clients left (MiB; web_stomp: whole broker)", kib(sg["rss_after_leave_kb"]), kib(ws["rss_after_leave_kb"]), "{:.1f}"))
        for name, res in (("stompgate", sg), ("web_stomp", ws)):
            if res["capacity"] is None and res["ladder"]:
                notes.append(f"{name}, {n} subs: no step met p99 <= 50 ms (p99 {res['lowest_step_p99_ms']:.0f} ms already at the lowest, {lowest}/s); "
                             + (f"its 1.5x / 3x runs are of its capacity on delivery alone, {res['base']:.0f}/s" if res["base"] else "no 1.5x / 3x runs"))
            short = [s_ for s_ in res["ladder"] + [res["x1.5"], res["x3"]]
                     if s_ and s_["offered"] and s_["sent"] < 0.999 * s_["offered"]]
            for s_ in short:
                notes.append(f"{name}, {n} subs: at {s_['offered_deliveries_per_s']:.0f}/s offered the publisher sent "
                             f"{s_['sent']} of {s_['offered']} messages (the broker pushed back)")
            if res["capacity_at_ladder_top"]:
                notes.append(f"{name}, {n} subs: the top step passed, so capacity is at least {res['capacity']:.0f}/s")
        # the ladder side by side
        f = lambda x, fmt: "-" if x is None else fmt.format(x)
        L.append(f"\n{n} subscribers, one topic, 100-byte messages, {ovl_seconds} s a step "
                 "(delivered % of offered, p99 ms, delivered/s while offered, CPU cores: servers + loadgen):\n")
        L.append("| offered deliveries/s | stompgate % | p99 | deliv/s | cores | web_stomp % | p99 | deliv/s | cores |")
        L.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        sgl = {s["offered_deliveries_per_s"]: s for s in sg["ladder"]}
        wsl = {s["offered_deliveries_per_s"]: s for s in ws["ladder"]}
        for d in sorted(set(sgl) | set(wsl)):
            cells = [f"{d:.0f}"]
            for lad in (sgl, wsl):
                s_ = lad.get(d)
                if not s_:
                    cells += ["-"] * 4
                    continue
                used = None if s_["server_cores"] is None else "{:.2f}+{:.2f}".format(s_["server_cores"], s_["loadgen_cores"])
                cells += [f(pct(s_["delivered_frac"]), "{:.1f}"), f(s_["p99_ms"], "{:.0f}"),
                          f(s_["delivered_per_s"], "{:.0f}"), used or "-"]
            L.append("| " + " | ".join(cells) + " |")
doc["overload"] = {"subs": ovl_subs.split(), "offered_deliveries_per_s": [int(x) for x in ovl_rates.split()],
                   "step_seconds": float(ovl_seconds), "elapsed_s": int(ovl_elapsed), "by_subs": ovl,
                   "notes": notes}
doc["overload_table"] = rows[len(doc["table"]):]

# ---- tcp: raw STOMP, stompgate's stomp_listen against rabbitmq_stomp
TC = []
tcp_start = len(rows)
if "tcp" in scenarios:
    P = "rabbitmq_stomp"
    def trow(label, scen, fmt, *path, ratio=True):
        return row(label, get(scen, "stompgate", *path), get(scen, P, *path), fmt, ratio, P)
    def broker_growth(scen, target):
        b = (get(scen, target, "procs") or {}).get("broker")
        if not b or b["rss_before_kb"] < 0 or b["rss_after_kb"] < 0:
            return None
        return (b["rss_after_kb"] - b["rss_before_kb"]) / 1024.0
    n = get("tcp.conns", "stompgate", "conns") or get("tcp.conns", P, "conns")
    sgd, sgk = conn_mem("stompgate", "tcp.conns")
    pd, pk = conn_mem(P, "tcp.conns")
    TC.append(trow(f"tcp conns: time to open {n} sessions (s)", "tcp.conns", "{:.2f}", "connect_s"))
    TC.append(trow(f"tcp conns: time to subscribe them, all to one topic (s)", "tcp.conns", "{:.2f}", "subscribe_s"))
    TC.append(row(f"tcp conns: RSS growth for {n} sessions with a subscription (MiB; rabbitmq_stomp: whole beam.smp)", sgd, pd, "{:.1f}", True, P))
    TC.append(row("tcp conns: RSS per session with a subscription (KiB)", sgk, pk, "{:.1f}", True, P))
    TC.append(row("tcp conns: broker (beam.smp) RSS growth in the same run (MiB)", broker_growth("tcp.conns", "stompgate"), broker_growth("tcp.conns", P), "{:.1f}", False, P))
    N = get("tcp.fanout", "stompgate", "conns") or get("tcp.fanout", P, "conns")
    TC.append(trow(f"tcp fan-out: time to open {N} sessions (s)", "tcp.fanout", "{:.2f}", "connect_s"))
    TC.append(trow("tcp fan-out: messages delivered per second (sum over subscribers)", "tcp.fanout", "{:.0f}", "delivered_per_s"))
    for q in ("p50", "p99", "max"):
        TC.append(row(f"tcp fan-out: latency {q} (ms)", ms(get("tcp.fanout", "stompgate", "latency_us", q)), ms(get("tcp.fanout", P, "latency_us", q)), "{:.1f}", True, P))
    TC.append(row("tcp fan-out: server CPU (s; stompgate+broker vs broker)", cpu("tcp.fanout", "stompgate"), cpu("tcp.fanout", P), "{:.2f}", True, P))
    exp = get("tcp.fanout", "stompgate", "expected") or get("tcp.fanout", P, "expected")
    TC.append(trow(f"tcp fan-out: messages delivered (of {exp} expected)", "tcp.fanout", "{:.0f}", "delivered"))
    for scen in ("tcp.conns", "tcp.fanout"):
        TC.append(trow(f"{scen}: errors", scen, "{:.0f}", "errors"))
doc["tcp_table"] = rows[tcp_start:]
tmp = out + ".tmp"
with open(tmp, "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
os.replace(tmp, out)

print(f"\n`make bench`: {cores} cores, {mem_kb // 1024} MiB, kernel {platform.release()}, rabbitmq-server {rmq}, "
      f"{elapsed} s, load average before/after {load_before} / {load_after}\n")
if T:
    print("| metric | stompgate | web_stomp | ratio stompgate / web_stomp |")
    print("|---|---:|---:|---:|")
    for t in T:
        print(t)
if O:
    print(f"\nOverload (open loop, AMQP publisher to amq.topic), {ovl_elapsed} s:\n")
    print("| metric | stompgate | web_stomp | ratio stompgate / web_stomp |")
    print("|---|---:|---:|---:|")
    for t in O:
        print(t)
    for nt in notes:
        print(f"\n- {nt}")
    for l in L:
        print(l)
if TC:
    print("\nSTOMP over TCP (stompgate stomp_listen against rabbitmq_stomp, same broker):\n")
    print("| metric | stompgate | rabbitmq_stomp | ratio stompgate / rabbitmq_stomp |")
    print("|---|---:|---:|---:|")
    for t in TC:
        print(t)
bad = [f"{r['scenario']}/{r['target']}: {r.get('first_error', '')}" for r in runs if not r.get("ok")]
for b in bad:
    print(f"\nNOT OK: {b}")
print(f"\nresults: {os.path.relpath(out) if out.startswith(os.getcwd() + '/') else out}")
EOF
exit $failed
