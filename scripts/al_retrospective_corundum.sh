#!/usr/bin/env bash
# Retrospective active learning on corundum (docs/corundum_learning.md): the inputs from the
# first 45 labelled frames (scripts/al_retrospective_corundum.py), the three arms (picks by
# the committee's force spread, at random, by its energy spread per magnetic ion) with
# `spinmultinet active-learn`, the labels taken from those frames; then each arm's curve and picks, and how well each round's committee disagreement ranked
# the true errors of the pool it picked from (scripts/al_disagreement_vs_error.py), into
# RESULTS_DIR. Resumable: a rerun continues each arm where it stopped (a finished arm is
# left as it is). Each arm's log: OUTPUT_DIR/ARM.log.
# Usage: nohup bash scripts/al_retrospective_corundum.sh [OUTPUT_DIR [RESULTS_DIR]] \
#            > runs/al_retro.log 2>&1 &
#        (defaults runs/al_retro and data/studies/al_retro_corundum)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/al_retro} results=${2:-data/studies/al_retro_corundum}
export OMP_NUM_THREADS=1
arms=(disagreement random energy)
python scripts/al_retrospective_corundum.py inputs --output-dir "$out"
for arm in "${arms[@]}"; do
    nice -n 5 spinmultinet active-learn "$out/$arm.yaml" >> "$out/$arm.log" 2>&1
    tail -n 2 "$out/$arm.log"
done
python scripts/al_retrospective_corundum.py collect "$out" "$results"
for arm in "${arms[@]}"; do
    nice -n 5 python scripts/al_disagreement_vs_error.py "$out/$arm" --rounds 0 1 2 3 \
        --pool "$out/pool.extxyz" --labelled "$out/labelled_pool.extxyz" \
        --output "$results/${arm}_disagreement_vs_error.json"
done
