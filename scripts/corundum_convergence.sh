#!/usr/bin/env bash
# The corundum (Cr2O3, Fe2O3) entries of the protocol convergence study alone, resumable: the
# Pulay calibration pairs first (the labeller refuses these materials without them), then the
# orientation check, the ordering energies at the protocol's k-point density, the zero-pressure
# volume and the denser k-point density. Appends to data/convergence.json and
# data/convergence.log. Then put the Pulay values (and, if far from 0, the zero-pressure
# volume) into the library and label: bash scripts/label_reference_data.sh Cr2O3 Fe2O3
# Usage: nohup bash scripts/corundum_convergence.sh > /dev/null 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
# GPAW is built against Debian OpenMPI: call its mpiexec, not whichever one is first on PATH
# (a pip MPI stack, e.g. for LAMMPS, can shadow it).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
export GPAW_MPI_BACKEND=cgpaw PYTHONPATH=$PWD
nice /usr/bin/mpiexec -n 2 python scripts/convergence_study.py Cr2O3 Fe2O3 \
    >> data/convergence.log 2>&1
