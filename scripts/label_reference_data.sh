#!/usr/bin/env bash
# Generate the reference structures and label them with GPAW PBE+U on both cores.
# Resumable: rerun to continue where it stopped. Logs to data/labelling.log.
# Without arguments: MnO and NiO, data/structures.extxyz -> data/reference.extxyz. With
# materials (rocksalt FeO CoO, corundum Cr2O3 Fe2O3; each needs its Pulay calibration in
# dft/protocol.py first, from scripts/convergence_study.py MATERIAL ...):
# data/structures_Cr2O3_Fe2O3.extxyz -> data/reference_Cr2O3_Fe2O3.extxyz.
# --orderings first: the ordering-diversity pool of rocksalt materials instead
# (docs/ordering_data.md): data/structures_orderings_MnO_NiO.extxyz ->
# data/reference_orderings_MnO_NiO.extxyz (without materials: MnO NiO, data/structures_orderings...).
# --until N: stop once N structures of the file are labelled (accepted or rejected), e.g. 16
# for a rocksalt material's yardstick cells, which come first.
# Usage: nohup bash scripts/label_reference_data.sh [--until N] [--orderings] [MATERIAL ...] \
#     > /dev/null 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
# GPAW is built against Debian OpenMPI: call its mpiexec, not whichever one is first on PATH
# (a pip MPI stack, e.g. for LAMMPS, can shadow it).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
until="" pool=() prefix=""
if [ "${1:-}" = --until ]; then until=$2; shift 2; fi
if [ "${1:-}" = --orderings ]; then pool=(--orderings-pool) prefix="_orderings"; shift; fi
materials=("$@")
suffix="${prefix}_$(IFS=_; echo "${materials[*]}")"
if [ $# -eq 0 ]; then materials=(MnO NiO) suffix="$prefix"; fi
structures=data/structures$suffix.extxyz
[ -f "$structures" ] || spinmultinet structures "$structures" --materials "${materials[@]}" "${pool[@]}"
output=data/reference$suffix.extxyz
# Frames of the file labelled so far, accepted or rejected (a frame GPAW failed on under MPI
# counts once its record in OUT.failures is rejected, at the start of the next run).
labelled_count() {
    python -c "import sys; from pathlib import Path
from spinmultinet_ase.dft.label import read_failures, failures_path, read_output, rejected_path
out = Path(sys.argv[1])
ids = {a.info['structure_id'] for p in (out, rejected_path(out)) for a in read_output(p)[0]}
print(len(ids | set(read_failures(failures_path(out)))))" "$output"
}
# A GPAW failure under MPI aborts the job after recording its frame in OUT.failures: rerun
# while a job ends so, and the next job rejects that frame and goes on (a bounded number of
# times). A job that failed otherwise (another labeller at work, a record it cannot read) is
# not rerun. A record of the last frame --until allows is rejected by a job with nothing new.
failures=$output.failures
for attempt in 1 2 3 4 5; do
    limit=()
    if [ -n "$until" ]; then
        done=$(labelled_count 2>> data/labelling.log)  # e.g. a record it cannot read
        if [ "$done" -ge "$until" ] && [ ! -f "$failures" ]; then exit 0; fi
        limit=(--limit $((done < until ? until - done : 0)))
    fi
    recorded=$(cat "$failures" 2>/dev/null || true)
    nice /usr/bin/mpiexec -n 2 spinmultinet label "$structures" "$output" "${limit[@]}" \
        --log-dir data/gpaw_logs >> data/labelling.log 2>&1 && exit 0
    [ -f "$failures" ] && [ "$(cat "$failures")" != "$recorded" ] || exit 1
done
exit 1
