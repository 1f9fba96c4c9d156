#!/usr/bin/env bash
# A small DFT check of the workflows (scripts/dft_checks.py: gamma_phonons, 8 GPAW runs of
# 70-90 s; equation_of_state, 16 runs of 75-200 s): make its structures, label them with the
# data's protocol on 2 cores, and compare them with a model (default: the shipped one).
# Resumable.
# Usage: nohup bash scripts/dft_checks.sh CHECK [--model MODEL.pt] > CHECK.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
# GPAW is built against Debian OpenMPI: call its mpiexec, not whichever one is first on PATH
# (a pip MPI stack, e.g. for LAMMPS, can shadow it).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
check=${1:?give a check: gamma_phonons or equation_of_state}
shift
folder=data/checks/$check
[ -f "$folder/structures.extxyz" ] || python scripts/dft_checks.py structures "$check" "$folder"
nice /usr/bin/mpiexec -n 2 spinmultinet label "$folder/structures.extxyz" "$folder/reference.extxyz" \
    --log-dir "$folder/gpaw_logs" >> "$folder/labelling.log" 2>&1
python scripts/dft_checks.py compare "$check" "$folder" "$@"   # also in $folder/comparison.md
