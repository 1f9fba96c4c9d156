#!/usr/bin/env bash
# The DFT work still open, in priority order, one 2-rank GPAW job at a time: what each session
# restarts first (the MnO/NiO reference data itself is scripts/dft_queue.sh).
# Every step resumes where it stopped and returns at once when it has nothing left, so after a
# stop the same command continues the queue; a step that fails is logged and the queue goes on.
#   1. FeO's 16 yardstick cells (its DFT ordering energies, J1/J2 and E(δ)), then its E(δ)
#      series extended to δ = -0.06 (data/structures_FeO_strains.extxyz): the minimum lies
#      beyond the reference strains' -0.03
#   2. (done) CoO's SCF study (scripts/dft_studies.sh coo-scf), which gave CoO its rule
#   3. CoO's 16 yardstick cells under that rule (data/reference_CoO.extxyz; the frames of the
#      earlier rule are data/protocol_check_coo_default_mixer.extxyz)
#   4. CoO's active-learning campaign (test structures, then committee-chosen rounds);
#      FeO's after corundum: an FeO frame costs several CoO frames
#   5. corundum reference data (docs/corundum_data.md): the shortest way to two more of
#      the six materials complete
#   6. the MnO/NiO ordering-diversity pool (docs/ordering_data.md)
#   7. MnO/NiO random orderings in larger cells chosen by a committee
#      (configs/active_orderings_MnO_NiO.yaml)
#   8. the rest of the corundum convergence entries, then FeO's (its k-point axis at 3.0 and
#      the ordering cells at two meshes: its k 2.0 and 2.5 already agree, so they wait)
#   9. the rest of the FeO/CoO state study and the corundum stress check
#      (scripts/dft_studies.sh)
#  10. the FeO/CoO ordering-diversity pool (configs/default_oxides.yaml trains on it; an FeO
#      frame takes about 100 SCF steps, so it comes last)
# Logs: data/labelling.log, data/convergence.log, data/studies/*.log; this file's own
# progress in data/queue.log.
# Usage: setsid nohup bash scripts/session_queue.sh > /dev/null 2>&1 &
set -uo pipefail
cd "$(dirname "$0")/.."
if ! [ -x /usr/bin/mpiexec ] || ! python -c "import gpaw, spinmultinet_ase" 2> /dev/null; then
    echo "GPAW, OpenMPI or spinmultinet_ase is not installed yet: run scripts/install.sh first" >&2
    exit 2
fi
step() {
    echo "$(date -u +%FT%TZ) start: $*" >> data/queue.log
    if "$@"; then
        echo "$(date -u +%FT%TZ) done: $*" >> data/queue.log
    else
        local code=$?  # before the date's command substitution resets $?
        echo "$(date -u +%FT%TZ) failed ($code): $*" >> data/queue.log
    fi
}
step bash scripts/label_reference_data.sh --until 16 FeO
step bash scripts/gpaw_run.sh data/labelling.log -m spinmultinet_ase.cli label \
    data/structures_FeO_strains.extxyz data/reference_FeO_strains.extxyz --log-dir data/gpaw_logs
step bash scripts/label_reference_data.sh --until 16 CoO
step bash scripts/active_learning.sh CoO
step bash scripts/label_reference_data.sh Cr2O3 Fe2O3
step bash scripts/active_learning.sh FeO
step bash scripts/label_reference_data.sh --orderings MnO NiO
# (active-learn's own labelling calls GPAW's mpiexec, named in the config)
step env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 \
    TQDM_MININTERVAL=60 PYTHONPATH="$PWD" bash -c 'nice spinmultinet active-learn \
    configs/active_orderings_MnO_NiO.yaml >> data/active_orderings_MnO_NiO/active_learn.log 2>&1'
step bash scripts/convergence.sh Cr2O3 Fe2O3 FeO
step bash scripts/dft_studies.sh
step bash scripts/label_reference_data.sh --orderings FeO CoO
