#!/usr/bin/env bash
# Create one virtual environment per peer potential (each pins its own e3nn), all on the same
# torch 2.13.0 CPU build as SpinMultiNet. Usage: bash benchmarks/setup_peers.sh [ENV_ROOT]
set -euo pipefail
root="${1:-$HOME/.cache/spinmultinet-bench}"
mkdir -p "$root"
make_env() {
    local name="$1"; shift
    if [ ! -x "$root/$name/bin/python" ]; then
        python -m venv "$root/$name"
    fi
    "$root/$name/bin/python" -m pip install -q torch==2.13.0
    "$root/$name/bin/python" -m pip install -q "$@" ase
    echo "$name ready: $("$root/$name/bin/python" -m pip show "$1" | grep ^Version)"
}
make_env mace mace-torch
make_env nequip nequip
make_env chgnet chgnet
