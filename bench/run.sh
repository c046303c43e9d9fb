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
#
# Writes bench/results/latest.json and prints a markdown table with
# stompgate / web_stomp ratios. Everything it starts is stopped by PID on
# exit (trap). Exit status 1 if a run reported errors or timed out (the
# results are written anyway), 2 if the setup failed.
#
# Environment: BENCH_CONNS, BENCH_FANOUT_SUBS, BENCH_FANOUT_MSGS, BENCH_THR_MSGS
# (scale down on a small machine), BENCH_KEEP=1 keeps the temp dir (logs).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
repo=$PWD
PY=/usr/bin/python3
CONNS=${BENCH_CONNS:-5000}
FAN_SUBS=${BENCH_FANOUT_SUBS:-1000}
FAN_MSGS=${BENCH_FANOUT_MSGS:-2000}
THR_MSGS=${BENCH_THR_MSGS:-20000}
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
mkdir -p bin bench/results
# shellcheck disable=SC2046
cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Iinclude bench/loadgen.c build/rel/libsg.a \
    $(pkg-config --cflags --libs libevent openssl) -o bin/loadgen || die "loadgen does not build"

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
    cat >"$tmp/stompgate.conf" <<EOF
listen = 127.0.0.1:$sg_port
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
say "broker pid $beam (AMQP $BROKER_AMQP_PORT, web_stomp $BROKER_WEB_STOMP_PORT), stompgate pid $sg_pid on $sg_port, workers $cores"

SG_URL=ws://127.0.0.1:$sg_port/ws
WS_URL=ws://127.0.0.1:$BROKER_WEB_STOMP_PORT/ws
lines=$tmp/results.jsonl
: >"$lines"
failed=0

# run SCENARIO TARGET ARGS... : one loadgen run, its JSON line appended to $lines
run() {
    local scen=$1 target=$2 url pids out rc
    shift 2
    if [ "$target" = stompgate ]; then
        url=$SG_URL
        pids=(--pid "stompgate:$sg_pid" --pid "broker:$beam")
    else
        url=$WS_URL
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
    sleep $PAUSE
}

start=$SECONDS
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for target in stompgate web_stomp; do
    run conns "$target" --conns "$CONNS" --settle-ms 3000 --timeout 120
done
for target in stompgate web_stomp; do
    run fanout "$target" --conns $((FAN_SUBS + 1)) --subs "$FAN_SUBS" --pubs 1 --topics 1 \
        --messages "$FAN_MSGS" --size 128 --window 10 --timeout 240
done
for target in stompgate web_stomp; do
    run throughput "$target" --conns 20 --subs 10 --pubs 10 --topics 10 \
        --messages "$THR_MSGS" --size 256 --window 100 --timeout 120
done
elapsed=$((SECONDS - start))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

if [ -s "$tmp/stompgate.log" ]; then
    say "stompgate log (warnings and errors, last 20 lines):"
    tail -n 20 "$tmp/stompgate.log" >&2
fi

# ---- results file and table
rmq_version=$(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo unknown)
"$PY" - "$lines" "$repo/bench/results/latest.json" "$rmq_version" "$sg_idle_kb" "$beam_idle_kb" \
    "$cores" "$elapsed" "$CONNS" "$load_before" "$load_after" <<'EOF'
import json, os, platform, subprocess, sys, time
lines, out, rmq, sg_idle, beam_idle, cores, elapsed, conns, load_before, load_after = sys.argv[1:]
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

def conn_mem(target):
    procs = get("conns", target, "procs") or {}
    p = procs.get("stompgate" if target == "stompgate" else "broker")
    n = get("conns", target, "connected")
    if not p or not n or p["rss_before_kb"] < 0 or p["rss_after_kb"] < 0:
        return None, None
    d = p["rss_after_kb"] - p["rss_before_kb"]
    return d / 1024.0, d * 1024.0 / n / 1024.0  # MiB total, KiB per connection

rows = []
def row(label, sg, ws, fmt="{:.1f}"):
    f = lambda v: "n/a" if v is None else fmt.format(v)
    ratio = "n/a" if sg is None or ws in (None, 0) else "{:.2f}".format(sg / ws)
    rows.append({"metric": label, "stompgate": sg, "web_stomp": ws,
                 "ratio": None if ratio == "n/a" else float(ratio)})
    return "| {} | {} | {} | {} |".format(label, f(sg), f(ws), ratio)

def ms(v):
    return None if v is None or v < 0 else v / 1000.0

T = []
sgd, sgk = conn_mem("stompgate")
wsd, wsk = conn_mem("web_stomp")
n = conns
T.append(row(f"conns: time to open {n} STOMP sessions (s)", get("conns", "stompgate", "connect_s"), get("conns", "web_stomp", "connect_s"), "{:.2f}"))
T.append(row(f"conns: sessions opened per second", get("conns", "stompgate", "connect_per_s"), get("conns", "web_stomp", "connect_per_s"), "{:.0f}"))
T.append(row(f"conns: RSS growth for {n} sessions (MiB; web_stomp: whole beam.smp)", sgd, wsd, "{:.1f}"))
T.append(row("conns: RSS per session (KiB)", sgk, wsk, "{:.1f}"))
for scen, title in (("fanout", "fan-out"), ("throughput", "throughput")):
    N = get(scen, "stompgate", "conns") or get(scen, "web_stomp", "conns")
    T.append(row(f"{title}: time to open {N} sessions (s)", get(scen, "stompgate", "connect_s"), get(scen, "web_stomp", "connect_s"), "{:.2f}"))
    T.append(row(f"{title}: messages delivered per second (sum over subscribers)", get(scen, "stompgate", "delivered_per_s"), get(scen, "web_stomp", "delivered_per_s"), "{:.0f}"))
    for q in ("p50", "p99", "max"):
        T.append(row(f"{title}: latency {q} (ms)", ms(get(scen, "stompgate", "latency_us", q)), ms(get(scen, "web_stomp", "latency_us", q)), "{:.1f}"))
    T.append(row(f"{title}: server CPU (s; stompgate+broker vs broker)", cpu(scen, "stompgate"), cpu(scen, "web_stomp"), "{:.2f}"))
    exp = get(scen, "stompgate", "expected") or get(scen, "web_stomp", "expected")
    T.append(row(f"{title}: messages delivered (of {exp} expected)", get(scen, "stompgate", "delivered"), get(scen, "web_stomp", "delivered"), "{:.0f}"))
for scen in ("conns", "fanout", "throughput"):
    T.append(row(f"{scen}: errors", get(scen, "stompgate", "errors"), get(scen, "web_stomp", "errors"), "{:.0f}"))
T.append(row("idle RSS (MiB; web_stomp: whole broker)", int(sg_idle) / 1024.0, int(beam_idle) / 1024.0, "{:.1f}"))
doc["table"] = rows
tmp = out + ".tmp"
with open(tmp, "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
os.replace(tmp, out)

print(f"\n`make bench`: {cores} cores, {mem_kb // 1024} MiB, kernel {platform.release()}, rabbitmq-server {rmq}, "
      f"{elapsed} s, load average before/after {load_before} / {load_after}\n")
print("| metric | stompgate | web_stomp | ratio stompgate / web_stomp |")
print("|---|---:|---:|---:|")
for t in T:
    print(t)
bad = [f"{r['scenario']}/{r['target']}: {r.get('first_error', '')}" for r in runs if not r.get("ok")]
for b in bad:
    print(f"\nNOT OK: {b}")
print(f"\nresults: bench/results/latest.json")
EOF
exit $failed
