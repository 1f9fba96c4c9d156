#!/usr/bin/env bash
# Prospective active learning for one material (docs/corundum_learning.md), every step
# resumable, so after a kill at any point the same command continues; returns at once when
# the campaign is done:
#   1. scripts/active_split.py MATERIAL: test structures, pool and initial data into
#      data/active_MATERIAL/ (deterministic; never overwrites other content), unless all three
#      files are there;
#   2. GPAW labels the test structures (2 ranks) into test_labelled.extxyz, at the protocol's
#      SCF limit (not the config's max_scf_steps, so the budget does not cut the test set), then
#      the test file test.extxyz is written (ideal yardstick cells + labelled test structures);
#   3. spinmultinet active-learn configs/active_MATERIAL.yaml (select, label, fine-tune, repeat).
# Needs configs/active_MATERIAL.yaml (and the fine-tune config it names; CoO's as a model) and
# the material's yardstick cells labelled in data/reference_MATERIAL.extxyz.
# Logs: data/active_MATERIAL/{split,labelling,active_learn}.log.
# Usage: setsid nohup bash scripts/active_learning.sh MATERIAL > /dev/null 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 1 ] || { echo "usage: bash scripts/active_learning.sh MATERIAL" >&2; exit 2; }
material=$1
config=configs/active_$material.yaml
folder=data/active_$material
[ -f "$config" ] || { echo "no $config (configs/active_CoO.yaml is a model)" >&2; exit 2; }
# GPAW is built against Debian OpenMPI: call its mpiexec, not whichever one is first on PATH.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
# one progress-bar line a minute at most in the log
export PYTHONPATH=$PWD TQDM_MININTERVAL=60
mkdir -p "$folder"
# the split once: the committed files are the campaign's inputs from then on
for name in test_structures pool initial; do
    [ -f "$folder/$name.extxyz" ] || { python scripts/active_split.py "$material" \
        >> "$folder/split.log" 2>&1; break; }
done
if [ ! -f "$folder/test.extxyz" ]; then
    nice /usr/bin/mpiexec -n 2 spinmultinet label "$folder/test_structures.extxyz" \
        "$folder/test_labelled.extxyz" --log-dir "$folder/gpaw_logs" >> "$folder/labelling.log" 2>&1
    python scripts/active_split.py "$material" --test >> "$folder/split.log" 2>&1
fi
nice spinmultinet active-learn "$config" >> "$folder/active_learn.log" 2>&1
