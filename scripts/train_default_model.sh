#!/usr/bin/env bash
# Train the default model and its two ablations on the reference data (resumable: rerun to
# continue), evaluate them, and ship the default in models/spinmultinet-mno-nio/ with its
# config and a card written from the evaluation.
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
cp runs/default_mno_nio/summary.json "$target/training_summary.json"
spinmultinet model-card runs/default_mno_nio "$target" \
    --ablation "no spin input, no moment loss=runs/ablation_no_spin" \
    --ablation "spin input, no moment loss=runs/ablation_no_moment_loss"
