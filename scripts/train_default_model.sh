#!/usr/bin/env bash
# Train the default model and its two ablations on the reference data (resumable: rerun to
# continue), evaluate them, and copy the default into models/spinmultinet-mno-nio/.
# Usage: nohup bash scripts/train_default_model.sh > runs/train_default.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
for name in default_mno_nio ablation_no_spin ablation_no_moment_loss; do
    spinmultinet train "configs/$name.yaml" --resume --quiet
    spinmultinet evaluate "runs/$name/model.pt" data/reference.extxyz --output-dir "runs/$name/evaluation"
done
target=models/spinmultinet-mno-nio
mkdir -p "$target"
cp runs/default_mno_nio/model.pt "$target/model.pt"
cp configs/default_mno_nio.yaml "$target/config.yaml"
cp runs/default_mno_nio/evaluation/evaluation.json "$target/metrics.json"
echo "default model copied to $target; write its card.md from the evaluation"
