#!/usr/bin/env bash
# Two builds side by side on a noisy host: alternates (router A, loadgen A) and (router B,
# loadgen B) over the same loadgen scenarios, ROUNDS times, and prints one line per run with
# the rescheduling interrupts the router's CPU took (RES in /proc/interrupts). Read the ratio
# of neighbouring runs, not the absolutes (bench/FINDINGS.md).
#
#   bench/ab.sh --a DIR --b DIR [--rounds N] [--duration S] [--router-flags "..."] \
#       -- "rpc --callers 64 --callees 1 --outstanding 16 --size 64" "fanout --subscribers 16 ..."
#
# DIR holds a `switchyard` and a `loadgen` binary (e.g. a worktree's target/release). The
# router runs with one shard on CPU 0, loadgen on CPU 1, RawSocket on 127.0.0.1:0.
set -euo pipefail

A="" B="" ROUNDS=2 DURATION=5 ROUTER_FLAGS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --a) A="$2"; shift 2 ;;
    --b) B="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --router-flags) ROUTER_FLAGS="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[ -n "$A" ] && [ -n "$B" ] && [ $# -gt 0 ] || { echo "usage: see the header of $0" >&2; exit 2; }

WORK=$(mktemp -d)
ROUTER_PID=""
cleanup() {
  if [ -n "$ROUTER_PID" ]; then kill "$ROUTER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

res_cpu0() { awk '/^ *RES:/ {print $2}' /proc/interrupts; }

for _ in $(seq "$ROUNDS"); do
  for scenario in "$@"; do
    for side in A B; do
      dir=$A; [ "$side" = B ] && dir=$B
      # shellcheck disable=SC2086
      "$dir/switchyard" --rs 127.0.0.1:0 --no-ws --shards 1 --cpus 0 $ROUTER_FLAGS \
        --log-level warn >"$WORK/router.out" 2>"$WORK/router.err" &
      ROUTER_PID=$!
      for _ in $(seq 100); do grep -q '^ready' "$WORK/router.out" 2>/dev/null && break; sleep 0.1; done
      url=$(grep -o 'rs://[0-9.:]*' "$WORK/router.out" | head -1)
      [ -n "$url" ] || { echo "router $side did not start: $(cat "$WORK/router.err")" >&2; exit 1; }
      before=$(res_cpu0)
      # shellcheck disable=SC2086
      timeout 300 "$dir/loadgen" $scenario --url "$url" --realm realm1 --cpus 1 \
        --duration "$DURATION" --warmup 1 --router-pid "$ROUTER_PID" \
        --json "$WORK/run.json" >"$WORK/run.txt" 2>"$WORK/run.log"
      after=$(res_cpu0)
      python3 - "$side" "$scenario" "$((after - before))" "$WORK/run.json" <<'PY'
import json, sys
side, scenario, res, path = sys.argv[1:]
j = json.load(open(path))
lat = j["latency_us"]
print(f"{side} {scenario:60s} {j['delivered_per_sec']:12,.0f}/s  p50 {lat['p50']:8.0f} µs"
      f"  p99 {lat['p99']:8.0f} µs  router {j['router_cpu']['busy_cores']:.2f}"
      f"  loadgen {j['loadgen_cpu']['busy_cores']:.2f}  lost {j['totals']['lost']}  RES {res}")
PY
      kill "$ROUTER_PID" 2>/dev/null || true
      wait "$ROUTER_PID" 2>/dev/null || true
      ROUTER_PID=""
    done
  done
done
