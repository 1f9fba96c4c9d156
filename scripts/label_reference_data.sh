#!/usr/bin/env bash
# Generate the rocksalt reference structures and label them with GPAW PBE+U on both cores.
# Resumable: rerun to continue where it stopped. Logs to data/labelling.log.
# Usage: nohup bash scripts/label_reference_data.sh > /dev/null 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
# GPAW is built against Debian OpenMPI: call its mpiexec, not whichever one is first on PATH
# (a pip MPI stack, e.g. for LAMMPS, can shadow it).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
[ -f data/structures.extxyz ] || spinmultinet structures data/structures.extxyz
nice /usr/bin/mpiexec -n 2 spinmultinet label data/structures.extxyz data/reference.extxyz \
    --log-dir data/gpaw_logs >> data/labelling.log 2>&1
