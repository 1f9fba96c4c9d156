#!/usr/bin/env bash
# Compare two spin embeddings with the same data, config and seed (docs/tutorials/training.md):
# "size-resolving" (Gaussians of the guessed moment's size, the code up to commit cb1be9a) and
# "saturating" (m / sqrt(m² + 0.25 μB²), the code up to commit 8ae030a), each run from a git
# worktree of its commit. Each trains on the first 112 labelled frames with
# configs/embedding_comparison.yaml and is evaluated; about 30 min on 2 cores.
# Usage: bash scripts/embedding_comparison.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/embedding_comparison
mkdir -p "$out"
python -c "from ase.io import read, write; write('$out/data112.extxyz', read('data/reference.extxyz', index=':112'))"
for variant in size-resolving=cb1be9a saturating=8ae030a; do
    name=${variant%=*}
    source_dir=$PWD/$out/src-$name
    [ -d "$source_dir" ] || git worktree add --detach "$source_dir" "${variant#*=}"
    sed "s#^output_dir:.*#output_dir: $out/$name#" configs/embedding_comparison.yaml > "$out/$name.yaml"
    # -P: import the package from source_dir, not from the working directory
    PYTHONPATH="$source_dir" python -P -m spinmultinet_ase.cli train "$out/$name.yaml" --quiet
    spinmultinet evaluate "$out/$name/model.pt" \
        "$out/data112.extxyz" --output-dir "$out/$name/evaluation" --overwrite | tee "$out/$name.txt"
done
