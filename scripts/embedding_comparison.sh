#!/usr/bin/env bash
# Compare the two spin embeddings with the same data, config and seed (docs/tutorials/training.md):
# "size-resolving" (Gaussians of the guessed moment's size, the code up to commit cb1be9a, run
# from a git worktree) and "saturating" (this checkout). Each trains on the first 112 labelled
# frames with configs/embedding_comparison.yaml and is evaluated; about 30 min on 2 cores.
# Usage: bash scripts/embedding_comparison.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/embedding_comparison
mkdir -p "$out"
python -c "from ase.io import read, write; write('$out/data112.extxyz', read('data/reference.extxyz', index=':112'))"
[ -d "$out/src-size-resolving" ] || git worktree add --detach "$out/src-size-resolving" cb1be9a
for name in size-resolving saturating; do
    source_dir=$PWD  # -P below: import the package from source_dir, not from the working directory
    [ "$name" = size-resolving ] && source_dir=$PWD/$out/src-size-resolving
    sed "s#^output_dir:.*#output_dir: $out/$name#" configs/embedding_comparison.yaml > "$out/$name.yaml"
    PYTHONPATH="$source_dir" python -P -m spinmultinet_ase.cli train "$out/$name.yaml" --quiet
    spinmultinet evaluate "$out/$name/model.pt" "$out/data112.extxyz" \
        --output-dir "$out/$name/evaluation" | tee "$out/$name.txt"
done
