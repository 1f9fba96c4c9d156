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
