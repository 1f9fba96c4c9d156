#!/usr/bin/env bash
# Train a default model from its config (default configs/default_mno_nio.yaml; the oxide
# family: configs/default_oxides.yaml), evaluate it, and ship it in models/spinmultinet-NAME/
# (NAME from the config's name: default_oxides -> spinmultinet-oxides) with its config and a
# card written from the evaluation. With configs/default_mno_nio.yaml its two ablations are
# trained and reported too, and the shipped model is compared with the small DFT checks. Any
# other config's card is compared row by row with the shipped MnO/NiO model (its "not worse"
# section): its card, metrics, model.pt and training summary are copied to TARGET/baseline/ on
# the first run, before this model can overwrite them (TARGET may be their folder), and every
# rerun compares with that copy, which is committed with the model. The kept model is also
# evaluated on this model's test split and yardsticks, on the frames whose elements it has
# (RUN_DIR/baseline/; the log names the materials left out), so each row has its value on the
# same frames as this model's, and the verdict is taken on that.
# Resumable: rerun to continue. Every trained model is committed (the ablations in
# models/spinmultinet-mno-nio/ablations/, outside the wheel), and a rerun evaluates the
# committed models instead of training them again: runs/ is scratch space that a fresh clone
# does not have.
#   --no-ablations  train only the default model (the provisional model shipped while the
#                   data set is still being labelled)
#   --fresh         start over: delete these runs, their committed models and the frozen
#                   copy of the data
#   --frames N      train on the first N labelled frames only (labelling appends, so these
#                   stay the same: how a provisional model is reproduced later; one data
#                   file only)
#   --model-dir DIR ship to DIR instead of models/spinmultinet-NAME (e.g. a trial run)
# All runs train on a frozen copy of the config's data.path files, made when the batch starts
# (data/reference.training.extxyz for one file, OUTPUT_DIR.training.extxyz for several), so
# they see the same frames while a DFT job keeps appending. Test-split frames labelled later
# are added to the copy on every rerun (without --frames): rerunning after the last held-out
# frames are labelled re-evaluates the finished models on them. A data file that does not
# exist yet stops the script with one line (exit 2), before --fresh deletes anything.
# Usage: nohup bash scripts/train_default_model.sh [CONFIG] [--no-ablations] [--fresh] \
#     [--frames N] [--model-dir DIR] > runs/train_default.log 2>&1 &
set -euo pipefail
# CONFIG and DIR are paths from where the script is started (kept relative to the repository
# when inside it, as the card quotes them); the steps run in the repository, where the
# config's own paths (data.path, output_dir, init_from) are read.
here=$PWD
root=$(cd "$(dirname "$0")/.." && pwd -P)
from_here() { (cd "$here" && realpath -m --relative-base="$root" "$1"); }
config=configs/default_mno_nio.yaml
if [ $# -gt 0 ] && [[ "$1" != --* ]]; then config=$(from_here "$1"); shift; fi
cd "$root"
[ -f "$config" ] || { echo "no training config at $config" >&2; exit 2; }
mno_nio=0
[ "$(realpath "$config")" != "$(realpath configs/default_mno_nio.yaml)" ] || mno_nio=1
ablation_configs=()
[ "$mno_nio" = 0 ] ||
    ablation_configs=(configs/ablation_no_spin.yaml configs/ablation_no_moment_loss.yaml)
all_ablations=("${ablation_configs[@]}")  # --fresh clears their runs with their shipped models
ablation_names=("no spin input, no moment loss" "spin input, no moment loss")
frames=""
fresh=0
model_dir=()
while [ $# -gt 0 ]; do
    case "$1" in
        --no-ablations) ablation_configs=() ;;
        --fresh) fresh=1 ;;
        --frames)
            [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || { echo "--frames needs a positive whole number of frames, got '${2:-}'" >&2; exit 2; }
            frames=$2; shift ;;
        --model-dir)
            [ -n "${2:-}" ] || { echo "--model-dir needs a folder" >&2; exit 2; }
            model_dir=(--model-dir "$(from_here "$2")"); shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
steps() { python -m spinmultinet_ase.reference.default_model "$@"; }
paths=$(steps paths "$config" "${model_dir[@]}")
eval "$paths"  # run_dir, snapshot, target
configs=("$config" "${ablation_configs[@]}")
run_dir_of() { python -c "from spinmultinet_ase.train.config import load_config
print(load_config('$1').output_dir)"; }
shipped_dir() {  # where the model of config $1 is committed
    if [ "$1" = "$config" ]; then echo "$target"; else echo "$target/ablations/$(basename "$1" .yaml)"; fi
}
if [ "$fresh" = 1 ]; then
    for c in "$config" "${all_ablations[@]}"; do rm -rf "$(run_dir_of "$c")"; done
    rm -rf "$snapshot" "$target/ablations" "$target/model.pt" "$target/training_summary.json"
fi
steps freeze "$config" "$snapshot" ${frames:+--frames "$frames"}
# Test frames labelled since the copy was made join it: they judge the models, never train them.
[ -n "$frames" ] || steps add-test-frames "$config" "$snapshot"
compare=()
if [ "$mno_nio" = 0 ]; then
    baseline=$(steps keep-baseline models/spinmultinet-mno-nio "$target")
    compare=(--compare-to "$baseline")
fi
for c in "${configs[@]}"; do
    shipped=$(shipped_dir "$c")
    run=$(run_dir_of "$c")
    if [ -f "$shipped/model.pt" ] && [ ! -f "$run/last.ckpt" ]; then
        echo "$c: evaluating the committed model $shipped/model.pt (--fresh retrains it)"
        mkdir -p "$run"
        cp "$shipped/model.pt" "$run/model.pt"
        cp "$shipped/training_summary.json" "$run/summary.json"
    else
        # an ablation's budget is the full model's epochs: the same on a faster or slower machine
        budget=()
        [ "$c" = "$config" ] || budget=(--max-epochs "$(python -c "import json
print(json.load(open('$run_dir/summary.json'))['epochs'])")")
        spinmultinet train "$c" --data "$snapshot" --resume --quiet "${budget[@]}"
        mkdir -p "$shipped"
        cp "$run/model.pt" "$shipped/model.pt"
        cp "$c" "$shipped/config.yaml"
        cp "$run/summary.json" "$shipped/training_summary.json"
    fi
    spinmultinet evaluate "$run/model.pt" "$snapshot" --output-dir "$run/evaluation" --overwrite
done
ablations=()
for i in "${!ablation_configs[@]}"; do
    ablations+=(--ablation "${ablation_names[$i]}=$(run_dir_of "${ablation_configs[$i]}")")
done
# the card's limit on unseen orderings, until DFT labels the held-out shape (docs/ordering_data.md)
python scripts/unseen_orderings_heisenberg.py "$run_dir/model.pt" \
    --output "$run_dir/evaluation/unseen_orderings_heisenberg.json" > /dev/null
if [ "$mno_nio" = 0 ]; then
    # the kept baseline model on this model's test frames of the elements it has: like for like
    kept_model=$(dirname "$baseline")/model.pt
    spinmultinet evaluate "$kept_model" "$snapshot" --split-of "$run_dir/model.pt" \
        --known-species-only --output-dir "$run_dir/baseline/evaluation" --overwrite
    python scripts/unseen_orderings_heisenberg.py "$kept_model" \
        --output "$run_dir/baseline/evaluation/unseen_orderings_heisenberg.json" > /dev/null
    compare+=(--baseline-run "$run_dir/baseline")
fi
spinmultinet model-card "$run_dir" "$target" "${ablations[@]}" --config "$config" \
    "${compare[@]}" --overwrite
# the shipped MnO/NiO model against the small DFT checks (data/checks/*/comparison.md)
if [ "$mno_nio" = 1 ]; then
    for check in gamma_phonons equation_of_state; do
        python scripts/dft_checks.py compare "$check" "data/checks/$check" --model "$target/model.pt"
    done
fi
