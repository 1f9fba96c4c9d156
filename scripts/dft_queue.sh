#!/usr/bin/env bash
# The background DFT queue of this project: the protocol convergence study (once), then the
# reference-data labelling. Both resume where they stopped. Logs to data/*.log.
# Usage: nohup bash scripts/dft_queue.sh > /dev/null 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
# GPAW is built against Debian OpenMPI: call its mpiexec, not whichever one is first on PATH
# (a pip MPI stack, e.g. for LAMMPS, can shadow it).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
GPAW_MPI_BACKEND=cgpaw nice /usr/bin/mpiexec -n 2 python scripts/convergence_study.py \
    >> data/convergence.log 2>&1
bash scripts/label_reference_data.sh
