#!/usr/bin/env bash
# Sample where each MPI rank of a running GPAW job is: `py-spy dump` of every given PID every
# 40 s, appended to OUT, until the first PID ends (pip install py-spy).
# Usage: nohup bash scripts/pyspy_ranks.sh OUT PID [PID ...] > /dev/null 2>&1 &
set -uo pipefail
out=${1:?give an output file}
shift
while kill -0 "$1" 2>/dev/null; do
    for pid in "$@"; do
        echo "=== $(date -u +%H:%M:%S) pid $pid" >> "$out"
        py-spy dump --pid "$pid" >> "$out" 2>&1
    done
    sleep 40
done
