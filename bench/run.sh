#!/usr/bin/env bash
# Switchyard benchmark matrix: builds release, runs switchyard (1 shard pinned to CPU 0) and
# loadgen (pinned to CPU 1) over a fixed set of scenarios and prints a table. With --other URL
# it runs the same matrix against another router's endpoint in the same run and prints both
# side by side with ratios. Traffic goes to 127.0.0.1 / Unix sockets only. See bench/README.md.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bench/run.sh [options]
  --other URL          also run the matrix against this router (rs://127.0.0.1:PORT or unix://PATH)
  --other-pid PID      that router's process ID (for the idle RSS figures)
  --other-name NAME    its name in the table (default: other)
  --other-realm REALM  realm to use on it (default: realm1)
  --duration S         measurement window per scenario (default 10)
  --warmup S           warm-up per scenario (default 2)
  --idle-sessions N    sessions for the idle scenario (default 10000)
  --router-cpu N       CPU for switchyard (default 0)
  --loadgen-cpu N      CPU for loadgen (default 1)
  --loadgen-busy-read-us US
                       loadgen's readers ask their sockets this long before waiting (default 0:
                       wait at once, like most clients; see bench/FINDINGS.md "Busy reads")
  --out DIR            where JSON/hgrm/SVG/logs go (default bench/results/DATE)
  --quick              2 s windows, 0.5 s warm-up, 2000 idle sessions (smoke test)
EOF
}

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OTHER="" OTHER_PID="" OTHER_NAME="other" OTHER_REALM="realm1"
DURATION=10 WARMUP=2 IDLE_SESSIONS=10000 ROUTER_CPU=0 LOADGEN_CPU=1 OUT="" LOADGEN_BUSY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --other) OTHER="$2"; shift 2 ;;
    --other-pid) OTHER_PID="$2"; shift 2 ;;
    --other-name) OTHER_NAME="$2"; shift 2 ;;
    --other-realm) OTHER_REALM="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --idle-sessions) IDLE_SESSIONS="$2"; shift 2 ;;
    --router-cpu) ROUTER_CPU="$2"; shift 2 ;;
    --loadgen-cpu) LOADGEN_CPU="$2"; shift 2 ;;
    --loadgen-busy-read-us) LOADGEN_BUSY="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --quick) DURATION=2; WARMUP=0.5; IDLE_SESSIONS=2000; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
case "$OTHER" in
  ""|rs://127.0.0.1:*|rs://localhost:*|ws://127.0.0.1:*|ws://localhost:*|unix://*) ;;
  *) echo "--other must be a 127.0.0.1/localhost or unix:// endpoint" >&2; exit 2 ;;
esac

OUT="${OUT:-$ROOT/bench/results/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET/release"

echo "building release…" >&2
(cd "$ROOT" && cargo build --release -p switchyard -p loadgen >&2)

# 10,000 sessions need as many descriptors on each side (plus the listeners).
HARD=$(ulimit -Hn)
WANT=$((IDLE_SESSIONS + 1000))
if [ "$HARD" != "unlimited" ] && [ "$HARD" -lt "$WANT" ]; then WANT=$HARD; fi
ulimit -n "$WANT" || true

ROUTER_PID=""
stop_router() {
  if [ -n "$ROUTER_PID" ] && kill -0 "$ROUTER_PID" 2>/dev/null; then
    kill "$ROUTER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$ROUTER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$ROUTER_PID" 2>/dev/null || true
  fi
  ROUTER_PID=""
}
trap stop_router EXIT

# Starts a fresh switchyard (extra flags in $ROUTER_EXTRA) and sets ROUTER_URL and ROUTER_PID.
ROUTER_EXTRA=""
start_router() {
  stop_router
  local log="$OUT/switchyard.out"
  # shellcheck disable=SC2086
  "$BIN/switchyard" --rs 127.0.0.1:0 --no-ws --shards 1 --cpus "$ROUTER_CPU" $ROUTER_EXTRA \
    --log-level warn >"$log" 2>>"$OUT/switchyard.err" &
  ROUTER_PID=$!
  for _ in $(seq 100); do
    grep -q '^ready' "$log" 2>/dev/null && break
    kill -0 "$ROUTER_PID" 2>/dev/null || { echo "switchyard exited; see $OUT/switchyard.err" >&2; exit 1; }
    sleep 0.1
  done
  ROUTER_URL=$(grep -o 'rs://[0-9.:]*' "$log" | head -1)
  [ -n "$ROUTER_URL" ] || { echo "switchyard printed no rs:// endpoint" >&2; exit 1; }
}

# run NAME TARGET URL REALM PID -- loadgen args…
run() {
  local name="$1" target="$2" url="$3" realm="$4" pid="$5"; shift 6
  local base="$OUT/$target-$name"
  local pidarg=()
  [ -n "$pid" ] && pidarg=(--router-pid "$pid")
  echo "== $target $name: loadgen $* --url $url" >&2
  if ! timeout 300 "$BIN/loadgen" "$@" --url "$url" --realm "$realm" --cpus "$LOADGEN_CPU" \
      --duration "$DURATION" --warmup "$WARMUP" --label "$target" "${pidarg[@]}" \
      --busy-read-us "$LOADGEN_BUSY" \
      --json "$base.json" --hgrm "$base.hgrm" --plot "$base.svg" >"$base.txt" 2>"$base.log"; then
    echo "   failed (see $base.log)" >&2
    tail -3 "$base.log" >&2 || true
    return 0
  fi
  sed 's/^/   /' "$base.txt" >&2
}

json_field() { # file expr (python expression over `d`)
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1" 2>/dev/null || echo 0
}

# The matrix for one router. $1 target name, $2 url, $3 realm, $4 pid, $5 "fresh" to restart
# switchyard before each scenario.
matrix() {
  local target="$1" url="$2" realm="$3" pid="$4" fresh="$5"
  maybe_fresh() { if [ "$fresh" = fresh ]; then start_router; url="$ROUTER_URL"; pid="$ROUTER_PID"; fi; }

  maybe_fresh
  run fanout "$target" "$url" "$realm" "$pid" -- fanout --subscribers 512 --size 64 --outstanding 256
  maybe_fresh
  run rpc "$target" "$url" "$realm" "$pid" -- rpc --callers 64 --callees 1 --outstanding 16 --size 64
  local peak half
  peak=$(json_field "$OUT/$target-rpc.json" "d['delivered_per_sec']")
  half=$(python3 -c "print(max(1000, int(float('$peak') / 2)))")
  maybe_fresh
  run rpc-half "$target" "$url" "$realm" "$pid" -- rpc --callers 64 --callees 1 --outstanding 16 --size 64 --rate "$half"
  maybe_fresh
  run fanout-cbor "$target" "$url" "$realm" "$pid" -- fanout --serializer cbor --subscribers 512 --size 64 --outstanding 256
  maybe_fresh
  run rpc-cbor "$target" "$url" "$realm" "$pid" -- rpc --serializer cbor --callers 64 --callees 1 --outstanding 16 --size 64
  maybe_fresh
  run pubsub "$target" "$url" "$realm" "$pid" -- pubsub --publishers 8 --subscribers 64 --topics 8 --size 64 --outstanding 16
  # Latency with nothing else going on, and few synchronous callers.
  maybe_fresh
  run rpc-1x1 "$target" "$url" "$realm" "$pid" -- rpc --callers 1 --callees 1 --outstanding 1 --size 64
  maybe_fresh
  run pubsub-unloaded "$target" "$url" "$realm" "$pid" -- pubsub --publishers 1 --subscribers 4 --topics 1 --size 64 --rate 1000
  for c in 4 16 64; do
    maybe_fresh
    run "rpc-${c}x1" "$target" "$url" "$realm" "$pid" -- rpc --callers "$c" --callees 1 --outstanding 1 --size 64
  done
  # What subscribers that never read cost 16 healthy ones (the slow-consumer policy at work):
  # three alternating pairs, since one pair of runs on a noisy host swings more than the
  # difference asked about (the summary takes the median of the three ratios).
  local k sfx
  for k in 1 2 3; do
    sfx=""; [ "$k" -gt 1 ] && sfx="-$k"
    maybe_fresh
    run "fanout16$sfx" "$target" "$url" "$realm" "$pid" -- fanout --subscribers 16 --size 64 --outstanding 256
    maybe_fresh
    run "fanout16-stuck$sfx" "$target" "$url" "$realm" "$pid" -- fanout --subscribers 16 --stuck 4 --size 64 --outstanding 256
  done
  maybe_fresh
  run connect "$target" "$url" "$realm" "$pid" -- connect --concurrency 16
  maybe_fresh
  run idle "$target" "$url" "$realm" "$pid" -- idle --sessions "$IDLE_SESSIONS" --setup-concurrency 256
}

# The host's floor: loopback round trips between the two CPUs (blocking and busy-polling server).
echo "== floor: pingpong --server-cpu $ROUTER_CPU --client-cpu $LOADGEN_CPU" >&2
"$BIN/pingpong" --server-cpu "$ROUTER_CPU" --client-cpu "$LOADGEN_CPU" --json "$OUT/floor.json" \
  | tee "$OUT/floor.txt" | sed 's/^/   /' >&2 || echo "   pingpong failed" >&2

# What a plain server spends per forwarded call here: `relay`, an epoll loop with no routing
# (bench/relay.rs), one call in flight per caller and sixteen, on the router's CPU.
for shape in "4 1" "64 16"; do
  read -r rc ro <<<"$shape"
  echo "== reference: relay --callers $rc --outstanding $ro" >&2
  "$BIN/relay" --server-cpu "$ROUTER_CPU" --client-cpu "$LOADGEN_CPU" --callers "$rc" --outstanding "$ro" \
    --calls $((rc * ro < 64 ? 100000 : 400000)) --json "$OUT/relay-${rc}x${ro}.json" | sed 's/^/   /' >&2 || echo "   relay failed" >&2
done

# loadgen's own ceiling: fan-out 1→512 from `firehose`, a stand-in router that costs almost
# nothing per event (bench/firehose.rs), on the router's CPU. It must be well above what one
# switchyard shard delivers, or the fan-out rows measure loadgen.
FIREHOSE_PID=""
"$BIN/firehose" --listen 127.0.0.1:0 --cpu "$ROUTER_CPU" >"$OUT/firehose.out" 2>&1 &
FIREHOSE_PID=$!
for _ in $(seq 50); do grep -q '^listening' "$OUT/firehose.out" 2>/dev/null && break; sleep 0.1; done
FIREHOSE_URL="rs://$(awk '/^listening/ {print $2}' "$OUT/firehose.out")"
run ceiling loadgen "$FIREHOSE_URL" realm1 "" -- fanout --subscribers 512 --size 64 --outstanding 256
kill "$FIREHOSE_PID" 2>/dev/null || true
wait "$FIREHOSE_PID" 2>/dev/null || true

matrix switchyard "" realm1 "" fresh
# The same latencies seen by plain blocking clients (no async runtime): router or loadgen?
start_router
echo "== probe (blocking clients), default settings (adaptive spinning)" >&2
"$BIN/probe" --url "$ROUTER_URL" --cpu "$LOADGEN_CPU" --json "$OUT/probe.json" 2>&1 | sed 's/^/   /' >&2 || true
# Latency mode: sessions read their sockets directly for 1 ms after each input (busy reads).
ROUTER_EXTRA="--busy-read-us 1000"
start_router
echo "== probe (blocking clients), latency mode" >&2
"$BIN/probe" --url "$ROUTER_URL" --cpu "$LOADGEN_CPU" --json "$OUT/probe-lat.json" 2>&1 | sed 's/^/   /' >&2 || true
start_router
run rpc-1x1-lat switchyard "$ROUTER_URL" realm1 "$ROUTER_PID" -- rpc --callers 1 --callees 1 --outstanding 1 --size 64
start_router
run pubsub-unloaded-lat switchyard "$ROUTER_URL" realm1 "$ROUTER_PID" -- pubsub --publishers 1 --subscribers 4 --topics 1 --size 64 --rate 1000
for c in 4 16 64; do
  start_router
  run "rpc-${c}x1-lat" switchyard "$ROUTER_URL" realm1 "$ROUTER_PID" -- rpc --callers "$c" --callees 1 --outstanding 1 --size 64
done
ROUTER_EXTRA=""
stop_router
if [ -n "$OTHER" ]; then
  matrix "$OTHER_NAME" "$OTHER" "$OTHER_REALM" "$OTHER_PID" keep
fi

python3 - "$OUT" "$OTHER_NAME" "${OTHER:+yes}" <<'PY'
import json, os, sys
out, other, has_other = sys.argv[1], sys.argv[2], sys.argv[3] == "yes"
targets = ["switchyard"] + ([other] if has_other else [])

def load(t, name):
    try:
        with open(os.path.join(out, f"{t}-{name}.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def get(d, *path):
    for p in path:
        if d is None:
            return None
        d = d.get(p)
    return d

rows = [
    ("fanout 1→512 msgpack rs 64 B", "fanout", "events/s delivered", ("delivered_per_sec",), True),
    ("", "fanout", "lost", ("totals", "lost"), False),
    ("", "fanout", "p99 µs", ("latency_us", "p99"), False),
    ("rpc 64×1×16 msgpack rs 64 B", "rpc", "calls/s", ("delivered_per_sec",), True),
    ("", "rpc", "p99 µs", ("latency_us", "p99"), False),
    ("rpc at half peak", "rpc-half", "calls/s", ("delivered_per_sec",), True),
    ("", "rpc-half", "p50 µs", ("latency_us", "p50"), False),
    ("", "rpc-half", "p99 µs", ("latency_us", "p99"), False),
    ("", "rpc-half", "p99.9 µs", ("latency_us", "p99_9"), False),
    ("fanout 1→512 cbor rs 64 B", "fanout-cbor", "events/s delivered", ("delivered_per_sec",), True),
    ("rpc 64×1×16 cbor rs 64 B", "rpc-cbor", "calls/s", ("delivered_per_sec",), True),
    ("pubsub 8 pub, 64 sub, 8 topics", "pubsub", "events/s delivered", ("delivered_per_sec",), True),
    ("", "pubsub", "lost", ("totals", "lost"), False),
    ("", "pubsub", "p99 µs", ("latency_us", "p99"), False),
    ("rpc 1×1 (one call in flight)", "rpc-1x1", "calls/s", ("delivered_per_sec",), True),
    ("", "rpc-1x1", "p50 µs", ("latency_us", "p50"), False),
    ("rpc 4×1", "rpc-4x1", "calls/s", ("delivered_per_sec",), True),
    ("rpc 16×1", "rpc-16x1", "calls/s", ("delivered_per_sec",), True),
    ("rpc 64×1", "rpc-64x1", "calls/s", ("delivered_per_sec",), True),
    ("unloaded pubsub 1k/s → 4", "pubsub-unloaded", "p50 µs", ("latency_us", "p50"), False),
    ("", "pubsub-unloaded", "p99 µs", ("latency_us", "p99"), False),
    ("fanout 1→16", "fanout16", "events/s delivered", ("delivered_per_sec",), True),
    ("fanout 1→16 + 4 stuck", "fanout16-stuck", "events/s delivered", ("delivered_per_sec",), True),
    ("connect", "connect", "sessions/s", ("delivered_per_sec",), True),
    ("", "connect", "p99 µs (to WELCOME)", ("latency_us", "p99"), False),
    ("idle sessions", "idle", "RSS per session (B)", ("rss_per_session_bytes",), False),
]

def fmt(v):
    if v is None:
        return "n/a"
    if isinstance(v, float) and v >= 100 or isinstance(v, int):
        return f"{v:,.0f}"
    return f"{v:,.1f}"

head = ["scenario", "metric"] + targets + (["ratio"] if has_other else [])
table = []
for label, name, metric, path, higher_better in rows:
    vals = [get(load(t, name), *path) for t in targets]
    row = [label, metric] + [fmt(v) for v in vals]
    if has_other:
        a, b = vals
        if a is not None and b not in (None, 0) and isinstance(a, (int, float)):
            row.append(f"{a / b:.2f}×")
        else:
            row.append("n/a")
    table.append(row)
widths = [max(len(str(r[i])) for r in [head] + table) for i in range(len(head))]
line = lambda r: "  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
print(line(head))
print("  ".join("-" * w for w in widths))
for r in table:
    print(line(r))

# Latency against the host's floor (pingpong), and what stuck subscribers cost.
def val(name, *path):
    return get(load("switchyard", name), *path)
try:
    with open(os.path.join(out, "floor.json")) as f:
        floor = json.load(f)
except (OSError, ValueError):
    floor = None
print()
if floor:
    b, s = floor["blocking"]["p50"], floor["busy"]["p50"]
    # Unloaded pub/sub sends one event per millisecond: its floor is the paced round trip.
    bp = get(floor, "blocking_paced", "p50") or b
    sp = get(floor, "busy_paced", "p50") or s
    print(f"floor (loopback round trip p50): blocking server {b:.1f} µs, busy-polling server {s:.1f} µs; "
          f"one per ms: {bp:.1f} / {sp:.1f} µs")
    for label, name, trips, base, base_name in [
        ("rpc 1×1 p50 / 2 blocking round trips", "rpc-1x1", 2, b, "blocking"),
        ("unloaded pubsub p50 / 1 blocking round trip at 1/ms", "pubsub-unloaded", 1, bp, "blocking"),
        ("rpc 1×1 p50, latency mode / 2 busy round trips", "rpc-1x1-lat", 2, s, "busy"),
        ("unloaded pubsub p50, latency mode / 1 busy round trip at 1/ms", "pubsub-unloaded-lat", 1, sp, "busy"),
    ]:
        v = val(name, "latency_us", "p50")
        if v is not None and base:
            print(f"  {label}: {v:.1f} / {trips * base:.1f} µs = {v / (trips * base):.2f}×")
    # The same with blocking clients (bench/probe.rs): what the router adds without loadgen.
    for fname, mode, base, paced in [("probe.json", "default", b, bp), ("probe-lat.json", "latency mode", s, sp)]:
        try:
            with open(os.path.join(out, fname)) as f:
                p = json.load(f)
        except (OSError, ValueError):
            continue
        r, ps = p["rpc"]["p50"], p["pubsub"]["p50"]
        msg = (f"  blocking clients, {mode}: rpc 1×1 p50 {r:.1f} µs = {r / (2 * base):.2f}× 2 round trips; "
               f"pubsub p50 {ps:.1f} µs = {ps / paced:.2f}× 1 round trip at 1/ms")
        if "pubsub-self" in p:
            pself = p["pubsub-self"]["p50"]
            msg += f"; one client, its own event {pself:.1f} µs = {pself / paced:.2f}×"
        print(msg)
ceiling, fan = get(load("loadgen", "ceiling"), "delivered_per_sec"), val("fanout", "delivered_per_sec")
if ceiling:
    lg = get(load("loadgen", "ceiling"), "loadgen_cpu", "busy_cores")
    msg = f"loadgen's ceiling (fan-out 1→512 from firehose, a stand-in router): {fmt(ceiling)} events/s"
    msg += f" on {lg:.2f} cores" if lg is not None else ""
    if fan:
        msg += f" = {ceiling / fan:.2f}× what one switchyard shard delivered"
    print(msg)
costs = []
for sfx in ("", "-2", "-3"):
    healthy, stuck = val(f"fanout16{sfx}", "delivered_per_sec"), val(f"fanout16-stuck{sfx}", "delivered_per_sec")
    if healthy and stuck:
        costs.append(100 * (1 - stuck / healthy))
if costs:
    each = " / ".join(f"{c:.1f}" for c in costs)
    print(f"4 stuck subscribers cost the 16 healthy ones {sorted(costs)[len(costs) // 2]:.1f} % of their events/s"
          f" (median of {len(costs)} alternating pairs: {each} %)")
# Router CPU per call, unbatched against batched, next to what a plain forwarder spends.
def cpu_per_call(name):
    d = load("switchyard", name)
    c, r = get(d, "router_cpu", "busy_cores"), get(d, "delivered_per_sec")
    return c / r * 1e6 if c and r else None
def relay(shape):
    return get(load("relay", shape), "server_cpu_us_per_call")
batched, r1, r16 = cpu_per_call("rpc"), relay("4x1"), relay("64x16")
if batched:
    parts = []
    for c in (4, 16, 64):
        v = cpu_per_call(f"rpc-{c}x1")
        if v:
            parts.append(f"{c}×1 {v:.2f} µs = {v / batched:.1f}×")
    msg = f"router CPU per call: 64×16 {batched:.2f} µs; " + ", ".join(parts)
    if r1:
        msg += (f"; relay (an epoll forwarder with no routing): 4×1 {r1:.2f} µs = "
                f"{r1 / batched:.1f}× the router's batched call")
        if r16:
            msg += f", 64×16 {r16:.2f} µs"
    print(msg)
# Few synchronous callers: default settings and latency mode, against the other router.
for c in (4, 16, 64):
    d, l = val(f"rpc-{c}x1", "delivered_per_sec"), val(f"rpc-{c}x1-lat", "delivered_per_sec")
    o = get(load(other, f"rpc-{c}x1"), "delivered_per_sec") if has_other else None
    if d is None and l is None:
        continue
    msg = f"rpc {c}×1 calls/s: default {fmt(d)}, latency mode {fmt(l)}"
    if o:
        msg += f"; {other} {fmt(o)} (ratios {d / o if d else 0:.2f}× / {l / o if l else 0:.2f}×)"
    print(msg)
# Loudly: runs where loadgen, not the router, was the limit.
for t in targets:
    bound = []
    lat = ["rpc-1x1-lat", "pubsub-unloaded-lat", "rpc-4x1-lat", "rpc-16x1-lat", "rpc-64x1-lat"]
    for name in sorted({r[1] for r in rows}) + lat:
        d = load(t, name)
        lg, rt = get(d, "loadgen_cpu", "busy_cores"), get(d, "router_cpu", "busy_cores")
        if lg is not None and lg >= 0.9 and (rt is None or rt < 0.9):
            bound.append(f"{name} (loadgen {lg:.2f} cores, router {rt if rt is None else round(rt, 2)})")
    if bound:
        print(f"\n*** {t}: LOADGEN WAS THE LIMIT, not the router, in: " + "; ".join(bound))
        print("*** these rates measure loadgen; the router had CPU to spare")
if has_other:
    print(f"\nratio = switchyard / {other} (above 1: switchyard higher — better for rates, worse for latency, loss and memory)")
print(f"\nresults: {out}")
PY
