#!/usr/bin/env bash
# Validates everything under deploy/ with the external tools, installing the Python one if it
# is missing, then runs tests/deploy.rs (which uses the same tools when they are on PATH).
#
#   bash deploy/check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${CARGO_TARGET_DIR:-target}/debug/switchyard
cargo build --quiet --bin switchyard

echo "== config files"
"$bin" config check deploy/switchyard.toml >/dev/null
"$bin" config check deploy/container.toml >/dev/null
echo "ok"

echo "== systemd unit"
if command -v systemd-analyze >/dev/null; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    # `verify` wants ExecStart to exist: point it at the binary just built.
    sed "s|/usr/local/bin/switchyard|$(realpath "$bin")|g" deploy/switchyard.service \
        >"$tmp/switchyard.service"
    out=$(systemd-analyze verify "$tmp/switchyard.service" 2>&1)
    if [ -n "$out" ]; then echo "$out"; exit 1; fi
    echo "ok"
else
    echo "skipped: systemd-analyze not found (apt-get install systemd)"
fi

echo "== Kubernetes manifests"
if ! command -v kubernetes-validate >/dev/null; then
    python3 -m pip install --quiet kubernetes-validate
fi
(cd deploy/k8s && kubernetes-validate --strict configmap.yaml deployment.yaml service.yaml)
if command -v kubectl >/dev/null; then
    kubectl kustomize deploy/k8s >/dev/null && echo "kustomize ok"
fi

echo "== tests/deploy.rs"
cargo test --quiet --test deploy
