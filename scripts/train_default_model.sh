#!/usr/bin/env bash
# Train the default model and its two ablations on the reference data (resumable: rerun to
# continue), evaluate them, and ship the default in models/spinmultinet-mno-nio/ with its
# config and a card written from the evaluation. With --no-ablations only the default model
# is trained (the provisional model shipped while the data set is still being labelled).
# Usage: nohup bash scripts/train_default_model.sh [--no-ablations] > runs/train_default.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
runs=(default_mno_nio ablation_no_spin ablation_no_moment_loss)
ablations=(
    --ablation "no spin input, no moment loss=runs/ablation_no_spin"
    --ablation "spin input, no moment loss=runs/ablation_no_moment_loss"
)
if [ "${1:-}" = "--no-ablations" ]; then
    runs=(default_mno_nio)
    ablations=()
fi
for name in "${runs[@]}"; do
    spinmultinet train "configs/$name.yaml" --resume --quiet
    spinmultinet evaluate "runs/$name/model.pt" data/reference.extxyz --output-dir "runs/$name/evaluation"
done
target=models/spinmultinet-mno-nio
mkdir -p "$target"
cp runs/default_mno_nio/model.pt "$target/model.pt"
cp configs/default_mno_nio.yaml "$target/config.yaml"
cp runs/default_mno_nio/summary.json "$target/training_summary.json"
spinmultinet model-card runs/default_mno_nio "$target" "${ablations[@]}"
