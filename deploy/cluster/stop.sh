#!/usr/bin/env bash
# Stops the cluster deploy/cluster/start.sh started: SIGTERM to every process it recorded
# (switchyard nodes say goodbye to the others and close their sessions), SIGKILL after 5 s.
#
#   bash deploy/cluster/stop.sh [--dir DIR]     (default deploy/cluster/run)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DIR="$ROOT/deploy/cluster/run"
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR="$2"; shift 2 ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "stop.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -f "$DIR/pids" ] || { echo "stop.sh: nothing to stop ($DIR/pids missing)" >&2; exit 0; }

# Nodes first, so they say goodbye over NATS; NATS last.
stop_all() {
  local p alive
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    alive=0
    for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && return 0
    sleep 0.1
  done
  for p in "$@"; do kill -KILL "$p" 2>/dev/null || true; done
}
mapfile -t nodes < <(awk '$1 == "node" { print $2 }' "$DIR/pids")
mapfile -t nats < <(awk '$1 == "nats" { print $2 }' "$DIR/pids")
stop_all "${nodes[@]}"
stop_all "${nats[@]}"
: >"$DIR/pids"
rm -rf "$DIR"/jetstream-*
echo "stopped"
