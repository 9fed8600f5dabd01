#!/usr/bin/env bash
# Builds every fuzz target, seeds the corpora from the WAMP test vectors and runs each target
# for a short while. Fails on any crash, leak, timeout or OOM libFuzzer reports.
#
#   fuzz/ci.sh                      # 20 s per target
#   FUZZ_SECONDS=180 fuzz/ci.sh     # longer
#   fuzz/ci.sh uri session          # only these targets
#
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 enables them on a stable toolchain.
# Builds go to fuzz/target (the flags differ from normal builds: do not share CARGO_TARGET_DIR).
set -euo pipefail

cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
unset CARGO_TARGET_DIR
SECONDS_PER_TARGET="${FUZZ_SECONDS:-20}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

python3 seed.py

cargo fuzz build

failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "=== $t: ${SECONDS_PER_TARGET}s"
    # -rss_limit_mb / -malloc_limit_mb: a zip bomb or a runaway allocation is a finding too.
    if ! cargo fuzz run "$t" "corpus/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" \
        -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 -print_final_stats=1 \
        2>"artifacts/$t.log"; then
        tail -n 60 "artifacts/$t.log"
        failed+=("$t")
    else
        grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|Done)" "artifacts/$t.log" || true
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "FAILED: ${failed[*]} (inputs in fuzz/artifacts/<target>/, logs in fuzz/artifacts/<target>.log)"
    exit 1
fi
echo "all fuzz targets ran clean"
