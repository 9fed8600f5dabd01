#!/usr/bin/env bash
# Switchyard soak test: one router (1 shard pinned to --router-cpu) under RPC + pub/sub load from
# loadgen (pinned to --loadgen-cpu) at about half of the peak it measured first, in waves of
# sessions that join and leave, for --duration seconds. The router's VmRSS is sampled every
# --interval seconds into rss.csv; at the end it prints start / max / end RSS, the rates and the
# loss over all waves. Traffic goes to 127.0.0.1 only. See bench/SOAK.md.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bench/soak.sh [options]
  --duration S      soak length after calibration, seconds (default 1800)
  --interval S      RSS sampling period, seconds (default 10)
  --wave S          length of one wave of sessions (default 60); each wave is a fresh set of
                    loadgen sessions that join, run and leave
  --churn S         seconds of connect churn (1 worker: connect, HELLO, GOODBYE, close, repeat)
                    at the start of each wave (default 10; 0: none)
  --load F          fraction of the measured peak to run at, RPC and pub/sub together (default 0.5)
  --rpc-rate N      calls/s instead of calibrating RPC
  --pub-rate N      publications/s instead of calibrating pub/sub
  --router-cpu N    CPU for switchyard (default 0)
  --loadgen-cpu N   CPU for loadgen (default 1)
  --out DIR         where rss.csv, the per-wave JSON and logs go (default bench/results/soak-DATE)
  --no-build        use the release binaries already built
EOF
}

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DURATION=1800 INTERVAL=10 WAVE=60 CHURN=10 LOAD=0.5 RPC_RATE="" PUB_RATE="" ROUTER_CPU=0 LOADGEN_CPU=1
OUT="" BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --interval) INTERVAL="$2"; shift 2 ;;
    --wave) WAVE="$2"; shift 2 ;;
    --load) LOAD="$2"; shift 2 ;;
    --churn) CHURN="$2"; shift 2 ;;
    --rpc-rate) RPC_RATE="$2"; shift 2 ;;
    --pub-rate) PUB_RATE="$2"; shift 2 ;;
    --router-cpu) ROUTER_CPU="$2"; shift 2 ;;
    --loadgen-cpu) LOADGEN_CPU="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
for v in "$DURATION" "$INTERVAL" "$WAVE" "$CHURN"; do
  case "$v" in ''|*[!0-9]*) echo "--duration, --interval, --wave and --churn take whole seconds" >&2; exit 2 ;; esac
done
[ "$INTERVAL" -ge 1 ] && [ "$WAVE" -ge 5 ] || { echo "--interval >= 1 and --wave >= 5" >&2; exit 2; }

OUT="${OUT:-$ROOT/bench/results/soak-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET/release"
if [ "$BUILD" = 1 ]; then
  echo "building release…" >&2
  (cd "$ROOT" && cargo build --release -p switchyard -p loadgen >&2)
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

ROUTER_PID="" SAMPLER_PID=""
cleanup() {
  if [ -n "$SAMPLER_PID" ]; then kill "$SAMPLER_PID" 2>/dev/null || true; fi
  if [ -n "$ROUTER_PID" ] && kill -0 "$ROUTER_PID" 2>/dev/null; then
    kill "$ROUTER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$ROUTER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$ROUTER_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

"$BIN/switchyard" --rs 127.0.0.1:0 --no-ws --shards 1 --cpus "$ROUTER_CPU" \
  --metrics 127.0.0.1:0 --log-level warn >"$OUT/switchyard.out" 2>"$OUT/switchyard.err" &
ROUTER_PID=$!
for _ in $(seq 100); do
  grep -q '^ready' "$OUT/switchyard.out" 2>/dev/null && break
  kill -0 "$ROUTER_PID" 2>/dev/null || { echo "switchyard exited; see $OUT/switchyard.err" >&2; exit 1; }
  sleep 0.1
done
URL=$(grep -o 'rs://[0-9.:]*' "$OUT/switchyard.out" | head -1)
METRICS=$(grep -o 'metrics http://[0-9.:]*' "$OUT/switchyard.out" | head -1 | cut -d' ' -f2)
[ -n "$URL" ] || { echo "switchyard printed no rs:// endpoint" >&2; exit 1; }

# The phase the sampler writes next to each reading.
echo idle >"$OUT/phase"
START=$(date +%s)
echo "t_s,rss_kib,phase" >"$OUT/rss.csv"
(
  while kill -0 "$ROUTER_PID" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$ROUTER_PID/status" 2>/dev/null || true)
    [ -n "$rss" ] && echo "$(( $(date +%s) - START )),$rss,$(cat "$OUT/phase" 2>/dev/null)" >>"$OUT/rss.csv"
    sleep "$INTERVAL"
  done
) &
SAMPLER_PID=$!

LG=("$BIN/loadgen")
COMMON=(--url "$URL" --cpus "$LOADGEN_CPU" --quiet)
RPC_SHAPE=(rpc --callers 16 --callees 2 --size 64)
PUB_SHAPE=(pubsub --publishers 4 --subscribers 32 --topics 4 --size 64)
PUB_FANOUT=8   # subscribers per topic: 32 / 4

json_field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

# Calibration: the closed-loop peak of each shape on this router, this machine, right now.
if [ -z "$RPC_RATE" ] || [ -z "$PUB_RATE" ]; then
  echo calibrate >"$OUT/phase"
  if [ -z "$RPC_RATE" ]; then
    timeout 120 "${LG[@]}" "${RPC_SHAPE[@]}" "${COMMON[@]}" --outstanding 16 --duration 10 \
      --warmup 2 --json "$OUT/peak-rpc.json" >"$OUT/peak-rpc.txt" 2>"$OUT/peak-rpc.log"
    peak=$(json_field "$OUT/peak-rpc.json" "d['sent_per_sec']")
    RPC_RATE=$(python3 -c "print(max(100, int($peak * $LOAD / 2)))")
    echo "RPC peak $peak calls/s" >&2
  fi
  if [ -z "$PUB_RATE" ]; then
    timeout 120 "${LG[@]}" "${PUB_SHAPE[@]}" "${COMMON[@]}" --outstanding 16 --duration 10 \
      --warmup 2 --json "$OUT/peak-pubsub.json" >"$OUT/peak-pubsub.txt" 2>"$OUT/peak-pubsub.log"
    peak=$(json_field "$OUT/peak-pubsub.json" "d['sent_per_sec']")
    PUB_RATE=$(python3 -c "print(max(10, int($peak * $LOAD / 2)))")
    echo "pub/sub peak $peak publications/s" >&2
  fi
fi
echo "soak: $DURATION s in waves of $WAVE s; RPC $RPC_RATE calls/s, pub/sub $PUB_RATE publications/s" \
  "(× $PUB_FANOUT deliveries); RSS every $INTERVAL s → $OUT/rss.csv" >&2

SOAK_START=$(date +%s)
wave=0
while :; do
  left=$(( SOAK_START + DURATION - $(date +%s) ))
  [ "$left" -ge 5 ] || break
  len=$(( left < WAVE ? left : WAVE ))
  wave=$((wave + 1))
  echo "wave-$wave" >"$OUT/phase"
  # Each wave: new sessions join (setup), run open loop, drain, leave. RPC and pub/sub overlap;
  # a connect churn of one worker (closed loop) makes many more sessions join and leave at the
  # start of the wave.
  timeout $((len + 120)) "${LG[@]}" "${RPC_SHAPE[@]}" "${COMMON[@]}" --rate "$RPC_RATE" \
    --duration "$((len - 2))" --warmup 1 --json "$OUT/wave-$wave-rpc.json" \
    >"$OUT/wave-$wave-rpc.txt" 2>"$OUT/wave-$wave-rpc.log" &
  rpc_pid=$!
  timeout $((len + 120)) "${LG[@]}" "${PUB_SHAPE[@]}" "${COMMON[@]}" --rate "$PUB_RATE" \
    --duration "$((len - 2))" --warmup 1 --json "$OUT/wave-$wave-pubsub.json" \
    >"$OUT/wave-$wave-pubsub.txt" 2>"$OUT/wave-$wave-pubsub.log" &
  pub_pid=$!
  con_pid=""
  churn=$(( CHURN < len - 3 ? CHURN : len - 3 ))
  if [ "$CHURN" -gt 0 ]; then
    timeout $((len + 120)) "${LG[@]}" connect --concurrency 1 "${COMMON[@]}" \
      --duration "$churn" --warmup 1 --json "$OUT/wave-$wave-connect.json" \
      >"$OUT/wave-$wave-connect.txt" 2>"$OUT/wave-$wave-connect.log" &
    con_pid=$!
  fi
  wait "$rpc_pid" || echo "wave $wave: rpc loadgen failed (see $OUT/wave-$wave-rpc.log)" >&2
  wait "$pub_pid" || echo "wave $wave: pubsub loadgen failed (see $OUT/wave-$wave-pubsub.log)" >&2
  [ -z "$con_pid" ] || wait "$con_pid" || echo "wave $wave: connect loadgen failed (see $OUT/wave-$wave-connect.log)" >&2
  # The router's counters after each wave: if a wave loses messages, received-by-type here vs
  # loadgen's `sent` tells which side stopped.
  [ -z "$METRICS" ] || curl -s --max-time 5 "http://$METRICS/metrics" >"$OUT/wave-$wave-metrics.txt" || true
  echo "between-waves" >"$OUT/phase"
  sleep 1
done
echo end >"$OUT/phase"
sleep "$INTERVAL"
[ -n "$METRICS" ] && curl -s "http://$METRICS/metrics" >"$OUT/metrics-end.txt" 2>/dev/null || true
kill "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=""

python3 - "$OUT" "$DURATION" "$RPC_RATE" "$PUB_RATE" <<'PY'
import csv, glob, json, os, sys
out, duration, rpc_rate, pub_rate = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rows = list(csv.DictReader(open(os.path.join(out, "rss.csv"))))
rss = [(int(r["t_s"]), int(r["rss_kib"]), r["phase"]) for r in rows if r["rss_kib"]]
soak = [r for r in rss if r[2].startswith("wave") or r[2] in ("between-waves", "end")]
def mib(k): return f"{k / 1024:.1f} MiB"
print(f"samples: {len(rss)} ({len(soak)} during the soak)")
if rss:
    print(f"RSS idle (first sample):       {mib(rss[0][1])}")
if soak:
    first_wave = soak[0]
    print(f"RSS start (first soak sample): {mib(first_wave[1])} at t={first_wave[0]} s")
    print(f"RSS max during the soak:       {mib(max(r[1] for r in soak))}")
    print(f"RSS end (after the last wave): {mib(soak[-1][1])} at t={soak[-1][0]} s")
    half = [r for r in soak if r[0] >= soak[0][0] + (soak[-1][0] - soak[0][0]) / 2]
    print(f"RSS max over the second half:  {mib(max(r[1] for r in half))}")
for kind in ("rpc", "pubsub", "connect"):
    sent = delivered = lost = expected = errors = disconnects = 0
    window = rate_sent = rate_del = 0.0
    n = 0
    for f in sorted(glob.glob(os.path.join(out, f"wave-*-{kind}.json"))):
        try:
            d = json.load(open(f))
        except (OSError, ValueError):
            print(f"{kind}: unreadable {f}")
            continue
        n += 1
        t = d["totals"]
        sent += t["sent"]; delivered += t["delivered"]; lost += t["lost"]; expected += t["expected"]
        errors += t["errors"]; disconnects += t["disconnects"]
        window += d["window_secs"]
        rate_sent += d["sent_per_sec"] * d["window_secs"]
        rate_del += d["delivered_per_sec"] * d["window_secs"]
    if n == 0:
        continue
    unit = {"rpc": "calls", "pubsub": "events", "connect": "sessions"}[kind]
    pct = 100.0 * lost / expected if expected else 0.0
    print(f"{kind}: {n} waves; sent {sent:,}, delivered {delivered:,} {unit}, lost {lost:,} "
          f"({pct:.4f} %), errors {errors}, disconnects {disconnects}; "
          f"mean {rate_sent / max(window, 1e-9):,.0f} sent/s, {rate_del / max(window, 1e-9):,.0f} delivered/s")
print(f"target rates: rpc {rpc_rate} calls/s, pubsub {pub_rate} publications/s")
PY
echo "CSV: $OUT/rss.csv" >&2
