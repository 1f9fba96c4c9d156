#!/usr/bin/env bash
# The README's test command: install everything, then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
python -m ruff check spinmultinet_ase tests scripts models
python -m pytest "$@"
