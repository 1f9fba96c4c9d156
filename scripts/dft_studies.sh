#!/usr/bin/env bash
# The DFT studies of data/studies/ in one background chain (each step resumable or cheap to
# rerun): one rattled, strained Cr2O3 frame end to end at the protocol, then the FeO/CoO start
# study runs still missing, then the Cr2O3 stress-against-finite-differences check. With
# FeO/CoO run names as arguments: only those runs (those already done are skipped).
# With coo-scf: only the CoO SCF study that gave CoO its rule (runs already done are skipped):
# FeO's SCF settings (rule 1, bias_release_study.py's filled-msr1) on an accepted CoO frame
# labelled with GPAW's default mixer, then on the 8-atom frame of round 1 of CoO's first
# active-learning campaign (data/studies/active_CoO_default_mixer/) that stalled
# (data/studies/feo_coo_states.md, "The rule for CoO"; that campaign's FM-004 and random-015
# were stopped by hand unconverged and are not run again).
# With feo-rule: only the study that decides FeO's next rule (data/studies/feo_coo_states.md,
# "Choosing FeO's next rule"), runs already done skipped: the a1g start released with capped
# MSR1 (bias_release_study.py's filled-msr1) on the AFM-II test cell, which under the FeO rule
# did not converge; if it converges, a second start (offaxis-msr1: a1g about another body
# diagonal) on the FM and AFM-II test cells: does capped MSR1 end in one state from both?
# Then both starts on the ideal AFM-II and FM yardstick cells (a1g is stationary there by
# symmetry): do the yardsticks land in the state family of the rattled frames?
# Cost (logs of the FM cell's filled-msr1): ~20 min a run, at most ~65 min (300 SCF steps).
# Usage: nohup bash scripts/dft_studies.sh [coo-scf | feo-rule | FeO/CoO RUN ...] > /dev/null 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
# GPAW is built against Debian OpenMPI: call its mpiexec, not whichever one is first on PATH
# (a pip MPI stack, e.g. for LAMMPS, can shadow it).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
export GPAW_MPI_BACKEND=cgpaw PYTHONPATH=$PWD
run() { nice /usr/bin/mpiexec -n 2 python "$@"; }
if [ "${1:-}" = coo-scf ]; then
    run scripts/bias_release_study.py --variant filled-msr1 \
        --frames data/active_CoO/test_structures.extxyz CoO-afm2-4-AFM-II-068 \
        --frames data/studies/active_CoO_default_mixer/run/round_1/candidates.extxyz \
        CoO-afm3-8-AFM-III-008 \
        >> data/studies/bias_release.log 2>&1
    exit
fi
if [ "${1:-}" = feo-rule ]; then
    log=data/studies/bias_release.log
    run scripts/bias_release_study.py FeO AFM-II filled-msr1 >> $log 2>&1
    if ! grep -q '"name": "FeO-AFM-II-filled-msr1", .*"converged": true' \
        data/studies/bias_release.jsonl; then
        echo "feo-rule: FeO-AFM-II-filled-msr1 did not converge; the second-start runs are not run" >> $log
        exit
    fi
    run scripts/bias_release_study.py FeO FM offaxis-msr1 >> $log 2>&1
    run scripts/bias_release_study.py FeO AFM-II offaxis-msr1 >> $log 2>&1
    run scripts/bias_release_study.py --variant filled-msr1 offaxis-msr1 --frames \
        data/structures_FeO.extxyz FeO-yardstick-afm2-4-AFM-II-rh+0.000 \
        FeO-yardstick-afm2-4-FM-rh+0.000 >> $log 2>&1
    exit
fi
if [ $# -gt 0 ]; then
    run scripts/feo_coo_states.py "$@" >> data/studies/feo_coo_states.log 2>&1
    exit
fi
grep -q '"rattled-strained"' data/studies/corundum_stress.jsonl 2>/dev/null ||
    run scripts/corundum_stress.py rattled-strained '{}' '{}' '{"rattle": 0.05, "strain": 0.01}' \
        >> data/studies/corundum_stress.log 2>&1
run scripts/feo_coo_states.py >> data/studies/feo_coo_states.log 2>&1
[ -s data/studies/corundum_stress_fd.jsonl ] ||
    run scripts/stress_fd_check.py >> data/studies/corundum_stress_fd.log 2>&1
