#!/usr/bin/env bash
# Train a committee: one training config N times with seeds 0 … N−1 (the weights' start and
# the data order; the split stays the config's), each into the config's output_dir with
# "-seedK" appended. Resumable: a rerun continues every member where it stopped.
# The members' configs are written to runs/committee_configs/.
# Usage: nohup bash scripts/train_committee.sh CONFIG N [spinmultinet train options] \
#            > runs/committee.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: train_committee.sh CONFIG N [train options]" >&2; exit 2; }
config=$1 members=$2
shift 2
[ -f "$config" ] || { echo "no training config at $config" >&2; exit 2; }
[[ "$members" =~ ^[1-9][0-9]*$ ]] || {
    echo "N (members) must be a positive whole number, got '$members'" >&2; exit 2; }
mkdir -p runs/committee_configs
for ((seed = 0; seed < members; seed++)); do
    member="runs/committee_configs/$(basename "${config%.*}")-seed$seed.yaml"
    python - "$config" "$seed" "$member" <<'PY'
import sys

import yaml

source, seed, target = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(source, encoding="utf-8") as stream:
    values = yaml.safe_load(stream)
values["seed"] = seed
values["output_dir"] = f"{values.get('output_dir', 'runs/default')}-seed{seed}"
with open(target, "w", encoding="utf-8") as stream:
    yaml.safe_dump(values, stream, sort_keys=False)
PY
    spinmultinet train "$member" --resume "$@"
done
