#!/usr/bin/env bash
# DFT Γ-point phonons of the 4-atom yardstick cells of MnO and NiO (8 GPAW runs of 70-90 s on
# 2 cores) and their comparison with a model (default: the shipped one). Resumable.
# Usage: nohup bash scripts/dft_gamma_phonons.sh [--model MODEL.pt] > gamma_phonons.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
folder=data/gamma_phonons
[ -f "$folder/structures.extxyz" ] || python scripts/dft_gamma_phonons.py structures "$folder"
nice mpiexec -n 2 spinmultinet label "$folder/structures.extxyz" "$folder/reference.extxyz" \
    --log-dir "$folder/gpaw_logs" >> "$folder/labelling.log" 2>&1
python scripts/dft_gamma_phonons.py compare "$folder" "$@"   # table also in $folder/comparison.md
