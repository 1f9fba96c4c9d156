"""When to release the orbital bias: the labeller's FeO/CoO start on a rattled, strained frame.

The convergence study's FeO FM test cell (rattled 0.06 Å, strained; ``convergence_structures``)
run the labeller's way (bonds on the axes, point group off, orbital bias, protocol settings,
no stress) with the bias released:
    filled            as soon as the target orbitals hold their electrons (the labeller's rule)
    settled           once also the biased SCF's density error is below 1e-3 per valence
                      electron (at most 40 biased steps)
    settled-beta0.02  as settled, with GPAW's density mixing at beta 0.02 instead of 0.05 (in
                      GPAW's default MSR1 mixer beta sets only the first step)
    filled-pulay      as filled, with Pulay mixing at beta 0.03 (5 densities kept) and PPCG
                      eigensolver steps 4 per SCF step (GPAW default 2): the labeller's FeO
                      settings (``orbital_bias.SCF_KEYWORDS``)
    filled-msr1       as filled, with MSR1 steps capped (max_A 0.15, trust_scale 0.5, 5
                      densities kept) and PPCG steps 4
Runs stop after 150 SCF steps (the protocol allows 300).
One JSON line per variant in data/studies/bias_release.jsonl (energy, gap, minority d
occupations, target filling, the state check, SCF steps, wall time); GPAW logs beside it.
Run:
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 GPAW_MPI_BACKEND=cgpaw \
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD nice /usr/bin/mpiexec -n 2 python \
    scripts/bias_release_study.py [MATERIAL] [VARIANT ...]
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

from ase.formula import Formula

from spinmultinet_ase.dft.label import gpaw_calculator, start_bias
from spinmultinet_ase.dft.orbital_bias import (
    SCF_KEYWORDS,
    current_target_occupations,
    run_biased_start,
)
from spinmultinet_ase.dft.orientation import canonical_rotation, rotated
from spinmultinet_ase.dft.protocol import DEFAULT_PROTOCOL
from spinmultinet_ase.dft.states import band_gap, minority_d_occupations, state_problem
from spinmultinet_ase.reference.convergence import convergence_structures

OUT = Path(__file__).parents[1] / "data" / "studies" / "bias_release.jsonl"
LOGS = OUT.with_name("bias_release_logs")
# variant -> (release density error per valence electron, most biased steps, GPAW keywords)
EIGENSOLVER = {"name": "ppcg", "niter": 4, "min_niter": 2}
VARIANTS = {
    "filled": (None, 20, {}),
    "settled": (1e-3, 40, {}),
    "settled-beta0.02": (1e-3, 40, {"mixer": {"beta": 0.02}}),
    "filled-pulay": (None, 20, SCF_KEYWORDS["FeO"]),
    "filled-msr1": (
        None,
        20,
        {"mixer": {"name": "msr1", "max_A": 0.15, "trust_scale": 0.5, "nmaxold": 5}}
        | {"eigensolver": EIGENSOLVER},
    ),
}
MAX_SCF_STEPS = 150


def run(material: str, variant: str) -> dict:
    """The FM test cell of ``material`` with the bias released by ``variant``; its summary."""
    from gpaw import KohnShamConvergenceError

    release_density, max_steps, keywords = VARIANTS[variant]
    atoms = convergence_structures(material)["FM"]
    work = rotated(atoms, canonical_rotation(atoms))
    bias = start_bias(work)
    extra = {"symmetry": {"point_group": False}, "extensions": [bias], **keywords}
    protocol = dataclasses.replace(DEFAULT_PROTOCOL, max_scf_iterations=MAX_SCF_STEPS)
    log = LOGS / f"{material}-FM-{variant}.txt"
    work.calc = gpaw_calculator(work, protocol, log, **extra)
    start = time.perf_counter()
    biased = run_biased_start(work.calc, work, bias, max_steps, release_density)
    summary = {"name": f"{material}-FM-{variant}", "biased_steps": biased.steps}
    try:
        energy = work.get_potential_energy()
    except KohnShamConvergenceError as error:
        return summary | {
            "converged": False,
            "error": str(error),
            "wall_s": time.perf_counter() - start,
        }
    formula, formula_units = Formula(atoms.get_chemical_formula()).reduce()
    magmoms = work.get_magnetic_moments()
    gap = band_gap(work.calc)
    occupations = minority_d_occupations(work.calc, magmoms)
    filling = current_target_occupations(work.calc.dft, bias.targets)
    return summary | {
        "converged": True,
        "energy_per_fu_ev": energy / formula_units,
        "gap_ev": gap,
        "magmoms": [round(float(m), 3) for m in magmoms],
        "minority_d_occupations": {
            str(a): [round(float(x), 3) for x in o] for a, o in occupations.items()
        },
        "target_filling": {str(a): round(n, 3) for a, n in filling.items()},
        "state_problem": state_problem(str(formula), gap, occupations, filling),
        "free_scf_steps": work.calc.get_number_of_iterations(),
        "wall_s": time.perf_counter() - start,
    }


def main(argv: list[str]) -> None:
    from gpaw.mpi import world

    material = argv[0] if argv and argv[0] not in VARIANTS else "FeO"
    variants = [v for v in argv if v in VARIANTS] or list(VARIANTS)
    done = set()
    if OUT.exists():
        done = {json.loads(line)["name"] for line in OUT.read_text().splitlines() if line}
    if world.rank == 0:
        LOGS.mkdir(parents=True, exist_ok=True)
    world.barrier()
    for variant in variants:
        if f"{material}-FM-{variant}" in done:
            continue
        summary = run(material, variant)
        if world.rank == 0:
            with OUT.open("a") as stream:
                stream.write(json.dumps(summary) + "\n")
            print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
