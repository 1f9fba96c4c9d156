#!/usr/bin/env bash
# Train a committee: one training config N times with seeds 0 … N−1 (the weights' start and
# the data order; the split stays the config's), member K into the config's output_dir with
# "-seedK" appended, its config beside that folder (OUTPUT_DIR-seedK.yaml). Paths in the
# config are relative to where this runs (the repository root for the configs/ files).
# Resumable: a rerun continues every member where it stopped.
# Usage: nohup bash scripts/train_committee.sh CONFIG N [spinmultinet train options] \
#            > runs/committee.log 2>&1 &
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: train_committee.sh CONFIG N [train options]" >&2; exit 2; }
config=$1 members=$2
shift 2
[ -f "$config" ] || { echo "no training config at $config" >&2; exit 2; }
[[ "$members" =~ ^[1-9][0-9]*$ ]] || {
    echo "N (members) must be a positive whole number, got '$members'" >&2; exit 2; }
for ((seed = 0; seed < members; seed++)); do
    member=$(python - "$config" "$seed" <<'PY'
import sys
from pathlib import Path

import yaml

source, seed = sys.argv[1], int(sys.argv[2])
with open(source, encoding="utf-8") as stream:
    values = yaml.safe_load(stream)
values["seed"] = seed
values["output_dir"] = f"{values.get('output_dir', 'runs/default')}-seed{seed}"
target = Path(f"{values['output_dir']}.yaml")
target.parent.mkdir(parents=True, exist_ok=True)
target.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
print(target)
PY
)
    spinmultinet train "$member" --resume "$@"
done
