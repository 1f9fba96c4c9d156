#!/usr/bin/env bash
# Candidate pool for active learning on Cr2O3 and α-Fe2O3 from MD of a model that knows them
# (e.g. the shipped model fine-tuned with configs/finetune_corundum.yaml): NVT at 300, 600 and
# 900 K in the 10-atom cell and its 2x1x1 supercell (shapes in training; the held-out rh110-20
# stays unseen), in the ground state, FM and other orderings: every 100th step from the 500th
# (the built cells and the first 0.5 ps of equilibration skipped).
# Usage: bash scripts/corundum_md_pool.sh MODEL OUTPUT_DIR   (pool: OUTPUT_DIR/pool.extxyz)
set -euo pipefail
cd "$(dirname "$0")/.."
model=$1 out=$2
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# name  formula  ordering (u/d per metal; -: the ground state tiled)  supercell  temperature (K)
runs=(
    "Cr2O3-gs-300 Cr2O3 udud 1x1x1 300"
    "Cr2O3-gs-900 Cr2O3 udud 1x1x1 900"
    "Cr2O3-fm-600 Cr2O3 uuuu 1x1x1 600"
    "Cr2O3-uudd-600 Cr2O3 uudd 1x1x1 600"
    "Cr2O3-gs211-600 Cr2O3 - 2x1x1 600"
    "Cr2O3-mix211-600 Cr2O3 uduuddud 2x1x1 600"
    "Fe2O3-gs-300 Fe2O3 uddu 1x1x1 300"
    "Fe2O3-gs-900 Fe2O3 uddu 1x1x1 900"
    "Fe2O3-fm-600 Fe2O3 uuuu 1x1x1 600"
    "Fe2O3-udud-600 Fe2O3 udud 1x1x1 600"
    "Fe2O3-gs211-600 Fe2O3 - 2x1x1 600"
    "Fe2O3-mix211-600 Fe2O3 uddddudu 2x1x1 600"
)
trajectories=()
for run in "${runs[@]}"; do
    read -r name formula ordering supercell temperature <<< "$run"
    dir="$out/$name"
    if [ ! -s "$dir/md.traj" ]; then
        order=(); [ "$ordering" = - ] || order=(--ordering "$ordering")
        spinmultinet md "$formula" --model "$model" "${order[@]}" \
            --supercell ${supercell//x/ } --ensemble nvt --temperature "$temperature" \
            --steps 2000 --timestep 1.0 --interval 100 --seed 0 --quiet --overwrite \
            --output-dir "$dir"
    fi
    trajectories+=("$dir/md.traj")
done
spinmultinet pool "${trajectories[@]}" --start 5 --every 1 --output "$out/pool.extxyz" --overwrite
