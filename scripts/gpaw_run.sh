#!/usr/bin/env bash
# Run one Python script under GPAW's MPI (Debian OpenMPI, not whichever mpiexec is first on
# PATH: a pip MPI stack, e.g. for LAMMPS, can shadow it) on 2 ranks, niced, appending its
# output to LOG.
# Usage: bash scripts/gpaw_run.sh LOG SCRIPT.py [ARG ...]
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: bash scripts/gpaw_run.sh LOG SCRIPT.py [ARG ...]" >&2; exit 2; }
log=$1
shift
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
export GPAW_MPI_BACKEND=cgpaw PYTHONPATH=$PWD
nice /usr/bin/mpiexec -n 2 python "$@" >> "$log" 2>&1
