#!/usr/bin/env bash
# Train the default model and its two ablations on the reference data (resumable: rerun to
# continue), evaluate them, and ship the default in models/spinmultinet-mno-nio/ with its
# config and a card written from the evaluation, and compare it with the small DFT checks.
# Every trained model is committed (the ablations in models/spinmultinet-mno-nio/ablations/,
# outside the wheel), and a rerun evaluates the committed models instead of training them
# again: runs/ is scratch space that a fresh clone does not have.
#   --no-ablations  train only the default model (the provisional model shipped while the
#                   data set is still being labelled)
#   --fresh         start over: delete these runs, their committed models and the frozen
#                   copy of the data
#   --frames N      train on the first N labelled frames only (labelling appends, so these
#                   stay the same: how a provisional model is reproduced later)
# All runs train on data/reference.training.extxyz, a copy of data/reference.extxyz made when
# the batch starts, so they see the same frames while a DFT job keeps appending. Test-split
# frames labelled later are added to the copy on every rerun (without --frames): rerunning
# after the last held-out frames are labelled re-evaluates the finished models on them.
# Usage: nohup bash scripts/train_default_model.sh [--no-ablations] [--fresh] [--frames N] > runs/train_default.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
runs=(default_mno_nio ablation_no_spin ablation_no_moment_loss)
ablations=(
    --ablation "no spin input, no moment loss=runs/ablation_no_spin"
    --ablation "spin input, no moment loss=runs/ablation_no_moment_loss"
)
snapshot=data/reference.training.extxyz
frames=""
fresh=0
while [ $# -gt 0 ]; do
    case "$1" in
        --no-ablations) runs=(default_mno_nio); ablations=() ;;
        --fresh) fresh=1 ;;
        --frames)
            [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || { echo "--frames needs a positive whole number of frames, got '${2:-}'" >&2; exit 2; }
            frames=$2; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
target=models/spinmultinet-mno-nio
shipped_dir() {  # where the model of run $1 is committed
    if [ "$1" = default_mno_nio ]; then echo "$target"; else echo "$target/ablations/$1"; fi
}
if [ "$fresh" = 1 ]; then
    rm -rf runs/default_mno_nio runs/ablation_no_spin runs/ablation_no_moment_loss "$snapshot"
    rm -rf "$target/ablations" "$target/model.pt" "$target/training_summary.json"
fi
if [ -f "$snapshot" ] && [ -n "$frames" ]; then
    python -c "import sys; from ase.io import read
held = len(read('$snapshot', index=':'))
held == $frames or sys.exit(f'$snapshot holds {held} frames, not $frames: add --fresh to start over')"
fi
[ -f "$snapshot" ] || python -c "from ase.io import read, write
write('$snapshot', read('data/reference.extxyz', index=':$frames'), format='extxyz')"
# Test frames labelled since the copy was made join it: they judge the models, never train them.
[ -n "$frames" ] || python -c "from spinmultinet_ase.train.config import load_config
from spinmultinet_ase.train.dataset import add_test_frames
added = add_test_frames('$snapshot', 'data/reference.extxyz', load_config('configs/default_mno_nio.yaml').data)
print(f'$snapshot: {added} test frames labelled since it was made added')"
for name in "${runs[@]}"; do
    shipped=$(shipped_dir "$name")
    if [ -f "$shipped/model.pt" ] && [ ! -f "runs/$name/last.ckpt" ]; then
        echo "$name: evaluating the committed model $shipped/model.pt (--fresh retrains it)"
        mkdir -p "runs/$name"
        cp "$shipped/model.pt" "runs/$name/model.pt"
        cp "$shipped/training_summary.json" "runs/$name/summary.json"
    else
        # an ablation's budget is the full model's epochs: the same on a faster or slower machine
        budget=()
        [ "$name" = default_mno_nio ] || budget=(--max-epochs "$(python -c "import json
print(json.load(open('runs/default_mno_nio/summary.json'))['epochs'])")")
        spinmultinet train "configs/$name.yaml" --data "$snapshot" --resume --quiet "${budget[@]}"
        mkdir -p "$shipped"
        cp "runs/$name/model.pt" "$shipped/model.pt"
        cp "configs/$name.yaml" "$shipped/config.yaml"
        cp "runs/$name/summary.json" "$shipped/training_summary.json"
    fi
    spinmultinet evaluate "runs/$name/model.pt" "$snapshot" --output-dir "runs/$name/evaluation" --overwrite
done
spinmultinet model-card runs/default_mno_nio "$target" "${ablations[@]}" --overwrite
# the shipped model against the small DFT checks (data/checks/*/comparison.md)
for check in gamma_phonons equation_of_state; do
    python scripts/dft_checks.py compare "$check" "data/checks/$check" --model "$target/model.pt"
done
