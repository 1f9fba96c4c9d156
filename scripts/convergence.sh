#!/usr/bin/env bash
# The protocol convergence study's entries of the given materials alone, resumable
# (scripts/convergence_study.py): the Pulay calibration pairs first (the labeller refuses a
# material without one), then the rest of each material's entries (rocksalt FeO/CoO: the
# k-point axis and the ordering cells; corundum Cr2O3/Fe2O3: the orientation check, the
# ordering energies at two k-point densities and the zero-pressure volume). Appends to
# data/convergence.json and data/convergence.log. Then put the Pulay values (and, if far from
# 0, the zero-pressure volume) into the library and label, e.g.
# bash scripts/label_reference_data.sh Cr2O3 Fe2O3.
# Usage: nohup bash scripts/convergence.sh MATERIAL [MATERIAL ...] > /dev/null 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: bash scripts/convergence.sh MATERIAL [MATERIAL ...]" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
export GPAW_MPI_BACKEND=cgpaw PYTHONPATH=$PWD
nice /usr/bin/mpiexec -n 2 python scripts/convergence_study.py "$@" >> data/convergence.log 2>&1
