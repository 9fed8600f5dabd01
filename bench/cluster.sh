#!/usr/bin/env bash
# Cross-node cost of a Switchyard cluster, measured against the single-node figures in the
# same run: one nats-server (JetStream) and two switchyard nodes (1 shard each) on this host;
# loadgen runs each scenario twice, once with every session on node A (nothing crosses: the
# baseline), once with the receivers on node B and the senders on node A (every event
# crosses NATS once per interested node; every call goes A → B and its result B → A).
# Prints throughput and latency of both and their ratio. Traffic stays on 127.0.0.1. See
# bench/FINDINGS.md ("Cluster").
#
#   bash bench/cluster.sh [--duration S] [--warmup S] [--quick] [--out DIR]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DURATION=10 WARMUP=2 OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --quick) DURATION=2; WARMUP=0.5; shift ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "cluster.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
OUT="${OUT:-$ROOT/bench/results/cluster-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
echo "building release…" >&2
(cd "$ROOT" && cargo build --quiet --release -p switchyard -p loadgen >&2)
NATS_BIN="${SWITCHYARD_NATS_SERVER:-}"
if [ -z "$NATS_BIN" ]; then
  for c in "$TARGET/interop-venv/bin/nats-server" "$(command -v nats-server || true)"; do
    if [ -n "$c" ] && [ -x "$c" ]; then NATS_BIN="$c"; break; fi
  done
fi
[ -n "$NATS_BIN" ] || { echo "cluster.sh: no nats-server (bash tests/run.sh installs it)" >&2; exit 1; }

RUN="$OUT/run"
bash "$ROOT/deploy/cluster/start.sh" --nodes 2 --ports auto --shards 1 --dir "$RUN" \
  --bin "$TARGET/release/switchyard" --nats-server "$NATS_BIN" >"$OUT/endpoints"
trap 'bash "$ROOT/deploy/cluster/stop.sh" --dir "$RUN" >/dev/null' EXIT
A=$(awk '$1 == "node" && $2 == "1" && $3 ~ /^rs:/ { print $3 }' "$OUT/endpoints")
B=$(awk '$1 == "node" && $2 == "2" && $3 ~ /^rs:/ { print $3 }' "$OUT/endpoints")
LG="$TARGET/release/loadgen"

# run NAME SCENARIO-ARGS… : baseline (all on A) then cross (receivers on B, senders on A).
run() {
  local name=$1; shift
  "$LG" "$@" --url "$A" --duration "$DURATION" --warmup "$WARMUP" -q \
    --label "$name single node" --json "$OUT/$name-single.json" >"$OUT/$name-single.txt"
  "$LG" "$@" --url "$B" --sender-url "$A" --duration "$DURATION" --warmup "$WARMUP" -q \
    --label "$name across nodes" --json "$OUT/$name-cross.json" >"$OUT/$name-cross.txt"
}
# Open loop (paced): a closed-loop publisher on A is not slowed by B's subscribers, so it
# would only measure how many events B's outbound queues drop (slow-consumer policy).
run fanout-64-r1k fanout --subscribers 64 --rate 1000
run fanout-64-r10k fanout --subscribers 64 --rate 10000
run fanout-64-r40k fanout --subscribers 64 --rate 40000
run pubsub-8x8-r80k pubsub --publishers 8 --subscribers 8 --topics 8 --rate 80000
# RPC: callees on B, callers on A. Open loop at two rates (latency), then closed loop
# (throughput: 16 calls in flight per caller).
run rpc-8x2-r5k rpc --callers 8 --callees 2 --rate 5000
run rpc-8x2-r20k rpc --callers 8 --callees 2 --rate 20000
run rpc-8x2-closed rpc --callers 8 --callees 2

python3 - "$OUT" <<'EOF'
import json, sys, os
out = sys.argv[1]
rows = []
for name in ["fanout-64-r1k", "fanout-64-r10k", "fanout-64-r40k", "pubsub-8x8-r80k",
             "rpc-8x2-r5k", "rpc-8x2-r20k", "rpc-8x2-closed"]:
    s = json.load(open(os.path.join(out, f"{name}-single.json")))
    c = json.load(open(os.path.join(out, f"{name}-cross.json")))
    ratio = lambda a, b: (a / b) if b else float("nan")
    rows.append((name,
                 s["delivered_per_sec"], c["delivered_per_sec"],
                 ratio(c["delivered_per_sec"], s["delivered_per_sec"]),
                 s["latency_us"]["p50"], c["latency_us"]["p50"],
                 s["latency_us"]["p99"], c["latency_us"]["p99"],
                 c["totals"]["lost"]))
print(f"{'scenario':<20} {'single msg/s':>12} {'cross msg/s':>12} {'ratio':>6} "
      f"{'p50 us 1/x':>14} {'p99 us 1/x':>16} {'lost':>5}")
for r in rows:
    print(f"{r[0]:<20} {r[1]:>12.0f} {r[2]:>12.0f} {r[3]:>6.2f} "
          f"{r[4]:>6.0f}/{r[5]:<7.0f} {r[6]:>7.0f}/{r[7]:<8.0f} {r[8]:>5}")
EOF
echo "results in $OUT" >&2
