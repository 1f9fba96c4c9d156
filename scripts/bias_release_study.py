"""How the labeller's FeO/CoO orbital-bias start behaves with other release rules and SCF settings.

Every run is the labeller's (bonds on the axes, the orbital bias of ``label.start_bias`` on the
turned frame, point group off, protocol settings including its SCF step limit, no stress), with
the bias released and the SCF driven by one of these variants:
    filled            as soon as the target orbitals hold their electrons (the labeller's rule)
    settled           once also the biased SCF's density error is below 1e-3 per valence
                      electron (at most 40 biased steps)
    settled-beta0.02  as settled, with GPAW's density mixing at beta 0.02 instead of 0.05 (in
                      GPAW's default MSR1 mixer beta sets only the first step)
    filled-pulay      as filled, with Pulay mixing at beta 0.03 (5 densities kept, metric
                      weight 50) and PPCG eigensolver steps 4 per SCF step (GPAW default 2):
                      FeO's settings before its rule took filled-msr1's
    filled-msr1       as filled, with MSR1 steps capped (max_A 0.15, trust_scale 0.5, 5
                      densities kept) and PPCG steps 4: the labeller's FeO and CoO
                      settings (``orbital_bias.CAPPED_MSR1``)
    offaxis-msr1      as filled-msr1, with the bias about another body diagonal than the frame's
                      3-fold axis (for FeO the a1g orbital of that diagonal: 1/9 of it in the
                      frame's own a1g, 8/9 in its e_g' pair): a second start, as in occupation
                      matrix control, to see whether capped MSR1 ends in the same state
The calculator is the labeller's (``label.frame_calculator``) with the variant's SCF keywords
in place of the material's; the state check (``state_problem``, and ``status``: the labeller's
verdict, a wrong magnetic state first) and the recorded target filling are those of the
labeller (the frame's own axis) in every variant. On one of two kinds of frame:
    the test cell     the convergence study's 4-atom cell of MATERIAL (FeO unless given;
                      rattled 0.06 Å, strained; ``convergence_structures``) in ORDERING (FM
                      unless given, or AFM-II: the same geometry); run name
                      ``{MATERIAL}-{ORDERING}-{variant}``
    --frames          frames of an extxyz file picked by ``info['structure_id']`` (e.g. the
                      active-learning campaign's); run name ``{structure_id}-{variant}``
One JSON line per run in data/studies/bias_release.jsonl (energy per formula unit, gap, moments,
minority d occupation eigenvalues, target filling, the state check, SCF steps, wall time); GPAW
logs in bias_release_logs/. Runs already in the file are skipped. Every frame is checked (file,
ids, bias start) before the first run; a bad one stops the script with one line and exit status 2.
Run:
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 GPAW_MPI_BACKEND=cgpaw \
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD nice /usr/bin/mpiexec -n 2 python \
    scripts/bias_release_study.py [MATERIAL] [ORDERING] [VARIANT ...]
or, instead of the test cell, frames (each --frames a file and its ids; runs in the order given):
    ... scripts/bias_release_study.py --variant VARIANT [VARIANT ...] \
        --frames FILE ID [ID ...] [--frames FILE ID [ID ...] ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
from ase import Atoms
from ase.formula import Formula
from ase.io import read

from spinmultinet_ase.dft.label import (
    STRUCTURE_ID,
    electronic_state,
    frame_calculator,
    frame_status,
    start_bias,
)
from spinmultinet_ase.dft.orbital_bias import (
    BODY_DIAGONALS,
    CAPPED_MSR1,
    RELEASE_DENSITY,
    OrbitalBias,
    bias_targets,
    run_biased_start,
    three_fold_axis,
)
from spinmultinet_ase.dft.orientation import canonical_rotation, rotated
from spinmultinet_ase.dft.protocol import DEFAULT_PROTOCOL
from spinmultinet_ase.dft.scf_budget import MAX_BIAS_STEPS
from spinmultinet_ase.dft.states import occupation_eigenvalues
from spinmultinet_ase.reference.convergence import convergence_structures

OUT = Path(__file__).parents[1] / "data" / "studies" / "bias_release.jsonl"
LOGS = OUT.with_name("bias_release_logs")


class Variant(NamedTuple):
    """How a run releases the bias and drives the SCF.

    Attributes:
        release_density: release only once the biased SCF's density error (electrons per
            valence electron) is below this as well (None: as soon as the targets are filled).
        max_bias_steps: most biased SCF steps.
        keywords: GPAW SCF keywords (mixer, eigensolver) in place of the material's
            (``orbital_bias.SCF_KEYWORDS``).
        off_axis: bias about :func:`other_axis` instead of the frame's 3-fold axis.
    """

    release_density: float | None
    max_bias_steps: int
    keywords: dict
    off_axis: bool = False


DAMPED_PULAY = {
    "mixer": {"backend": "pulay", "beta": 0.03, "nmaxold": 5, "weight": 50},
    "eigensolver": {"name": "ppcg", "niter": 4, "min_niter": 2},
}
VARIANTS = {
    "filled": Variant(RELEASE_DENSITY, MAX_BIAS_STEPS, {}),
    "settled": Variant(1e-3, 40, {}),
    "settled-beta0.02": Variant(1e-3, 40, {"mixer": {"beta": 0.02}}),
    "filled-pulay": Variant(RELEASE_DENSITY, MAX_BIAS_STEPS, DAMPED_PULAY),
    "filled-msr1": Variant(RELEASE_DENSITY, MAX_BIAS_STEPS, CAPPED_MSR1),
    "offaxis-msr1": Variant(RELEASE_DENSITY, MAX_BIAS_STEPS, CAPPED_MSR1, off_axis=True),
}
# The orderings of the test cell (keys of ``convergence_structures`` for a rocksalt monoxide).
TEST_CELL_ORDERINGS = ("FM", "AFM-II")


class Run(NamedTuple):
    """One run: its name in the JSON lines, the frame as given, the variant."""

    name: str
    atoms: Atoms
    variant: str


def labeller_start(atoms: Atoms) -> tuple[Atoms, OrbitalBias]:
    """``atoms`` turned as the labeller turns it (bonds on the axes) and its orbital bias.

    Raises:
        ValueError: the frame has no orbital-bias start (not FeO or CoO, a metal without an
            initial moment, or not a bond-aligned rocksalt supercell once turned).
    """
    work = rotated(atoms, canonical_rotation(atoms))
    bias = start_bias(work)
    if bias is None:
        formula = Formula(atoms.get_chemical_formula()).reduce()[0]
        raise ValueError(f"{formula}: no orbital-bias start (FeO, CoO only)")
    return work, bias


def other_axis(axis: np.ndarray) -> np.ndarray:
    """The first body diagonal of :data:`~spinmultinet_ase.dft.orbital_bias.BODY_DIAGONALS`
    other than ±``axis`` (a unit body diagonal)."""
    return next(n for n in BODY_DIAGONALS if abs(float(n @ axis)) < 0.5)


def variant_bias(work: Atoms, variant: Variant) -> tuple[np.ndarray, OrbitalBias]:
    """The bias axis and the orbital bias a run of ``variant`` starts ``work`` (turned by
    :func:`labeller_start`) with: the labeller's, or with ``off_axis`` the same targets about
    :func:`other_axis` of the frame's 3-fold axis."""
    axis = three_fold_axis(work)
    if variant.off_axis:
        axis = other_axis(axis)
    return axis, OrbitalBias(bias_targets(work, axis))


def file_frames(path: Path, ids: list[str]) -> list[Atoms]:
    """The frames of the extxyz file ``path`` whose ``info['structure_id']`` are ``ids``, in
    that order.

    Raises:
        ValueError: the file cannot be read, or an id is not in it exactly once.
    """
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        frames = read(path, ":", format="extxyz")
    except Exception as error:  # ASE raises many types for a damaged file
        raise ValueError(f"{path}: cannot be read as extxyz ({error})") from None
    picked = []
    for structure_id in ids:
        matches = [atoms for atoms in frames if atoms.info.get(STRUCTURE_ID) == structure_id]
        if len(matches) != 1:
            found = "no frame" if not matches else f"{len(matches)} frames"
            raise ValueError(f"{path}: {found} with {STRUCTURE_ID} {structure_id!r}")
        picked.append(matches[0])
    return picked


def run(planned: Run) -> dict:
    """The summary of ``planned`` run the labeller's way with its variant's release and SCF."""
    from gpaw import KohnShamConvergenceError

    variant = VARIANTS[planned.variant]
    work, labeller_bias = labeller_start(planned.atoms)
    axis, bias = variant_bias(work, variant)
    log = LOGS / f"{planned.name}.txt"
    work.calc = frame_calculator(work, DEFAULT_PROTOCOL, log, bias, variant.keywords)
    start = time.perf_counter()
    biased = run_biased_start(
        work.calc, work, bias, variant.max_bias_steps, variant.release_density
    )
    summary = {
        "name": planned.name,
        "biased_steps": biased.steps,
        "bias_axis": [round(float(x), 4) for x in axis],
    }
    try:
        energy = work.get_potential_energy()
    except KohnShamConvergenceError as error:
        return summary | {
            "converged": False,
            "error": str(error),
            "wall_s": time.perf_counter() - start,
        }
    formula, formula_units = Formula(work.get_chemical_formula()).reduce()
    magmoms = work.get_magnetic_moments()
    state = electronic_state(work.calc, str(formula), magmoms, labeller_bias.targets)
    return summary | {
        "converged": True,
        "energy_per_fu_ev": energy / formula_units,
        "gap_ev": state.gap,
        "magmoms": [round(float(m), 3) for m in magmoms],
        "minority_d_occupations": {
            str(a): [round(float(x), 3) for x in occupation_eigenvalues(o)]
            for a, o in state.occupations.items()
        },
        "target_filling": {str(a): round(n, 3) for a, n in state.filling.items()},
        "state_problem": state.problem,
        "status": frame_status(planned.atoms, magmoms, state.problem),
        "free_scf_steps": work.calc.get_number_of_iterations(),
        "wall_s": time.perf_counter() - start,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bias_release_study.py",
        usage="%(prog)s [MATERIAL] [ORDERING] [VARIANT ...]\n"
        "       %(prog)s --variant VARIANT [VARIANT ...] --frames FILE ID [ID ...] "
        "[--frames FILE ID [ID ...] ...]",
        description="Run FeO/CoO frames the labeller's way with other bias releases and SCF "
        "settings; one JSON line per run in data/studies/bias_release.jsonl.",
    )
    parser.add_argument(
        "test_cell",
        nargs="*",
        metavar="WORD",
        help="the test cell: [MATERIAL] [ORDERING] [VARIANT ...] (default FeO FM, every "
        f"variant; orderings {', '.join(TEST_CELL_ORDERINGS)})",
    )
    parser.add_argument(
        "--frames",
        nargs="+",
        action="append",
        metavar=("FILE", "ID"),
        help="an extxyz file and the structure ids of its frames to run (repeatable)",
    )
    parser.add_argument(
        "--variant",
        nargs="+",
        choices=list(VARIANTS),
        metavar="VARIANT",
        help=f"the variants of the --frames runs ({', '.join(VARIANTS)})",
    )
    return parser


def planned_runs(argv: list[str]) -> list[Run]:
    """The runs asked for by the command line ``argv``, every frame checked.

    Raises:
        SystemExit: (status 2) the command line is malformed (argparse's message).
        ValueError: a file, id or frame cannot be run (a one-line reason).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.frames is None:
        if args.variant:
            parser.error("--variant goes with --frames (the test cell takes its variants as words)")
        words = list(args.test_cell)
        named = set(VARIANTS) | set(TEST_CELL_ORDERINGS)
        material = words.pop(0) if words and words[0] not in named else "FeO"
        ordering = words.pop(0) if words and words[0] in TEST_CELL_ORDERINGS else "FM"
        unknown = [word for word in words if word not in VARIANTS]
        if unknown:
            parser.error(
                f"unknown variant {unknown[0]!r} (known: {', '.join(VARIANTS)}; the material "
                "and the ordering come first)"
            )
        atoms = convergence_structures(material)[ordering]
        labeller_start(atoms)
        return [
            Run(f"{material}-{ordering}-{variant}", atoms, variant) for variant in words or VARIANTS
        ]
    if args.test_cell:
        parser.error(f"--frames runs take no test-cell words, got {' '.join(args.test_cell)!r}")
    if not args.variant:
        parser.error("--frames needs --variant")
    runs = []
    for path, *ids in args.frames:
        if not ids:
            parser.error(f"--frames {path}: give at least one structure id")
        for atoms in file_frames(Path(path), ids):
            structure_id = atoms.info[STRUCTURE_ID]
            try:
                labeller_start(atoms)
            except ValueError as error:
                raise ValueError(f"{path}: {structure_id}: {error}") from None
            runs.extend(Run(f"{structure_id}-{v}", atoms, v) for v in args.variant)
    return runs


def main(argv: list[str]) -> None:
    from gpaw.mpi import world

    try:
        runs = planned_runs(argv)
    except ValueError as error:
        if world.rank == 0:
            print(f"bias_release_study.py: error: {error}", file=sys.stderr)
        sys.exit(2)
    done = set()
    if OUT.exists():
        done = {json.loads(line)["name"] for line in OUT.read_text().splitlines() if line}
    if world.rank == 0:
        LOGS.mkdir(parents=True, exist_ok=True)
    world.barrier()
    for planned in runs:
        if planned.name in done:
            continue
        summary = run(planned)
        done.add(planned.name)
        if world.rank == 0:
            with OUT.open("a") as stream:
                stream.write(json.dumps(summary) + "\n")
            print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
