"""How the labeller's FeO/CoO orbital-bias start behaves with other release rules and SCF settings.

Every run is the labeller's (bonds on the axes, the orbital bias of ``label.start_bias`` on the
turned frame, point group off, protocol settings, no stress), with the bias released and the
SCF driven by one of these variants:
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
on one of two kinds of frame:
    the test cell     the convergence study's FM cell of MATERIAL (FeO unless given; rattled
                      0.06 Å, strained; ``convergence_structures``), stopped after 150 SCF
                      steps; run name ``{MATERIAL}-FM-{variant}``
    --frames          frames of an extxyz file picked by ``info['structure_id']`` (e.g. the
                      active-learning campaign's), stopped after the protocol's SCF steps as
                      in the labeller; run name ``{structure_id}-{variant}``
One JSON line per run in data/studies/bias_release.jsonl (energy per formula unit, gap, moments,
minority d occupations, target filling, the state check, SCF steps, wall time); GPAW logs in
bias_release_logs/. Runs already in the file are skipped. Every frame is checked (file, ids,
bias start) before the first run; a bad one stops the script with one line and exit status 2.
Run:
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 GPAW_MPI_BACKEND=cgpaw \
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD nice /usr/bin/mpiexec -n 2 python \
    scripts/bias_release_study.py [MATERIAL] [VARIANT ...]
or, instead of the test cell, frames (each --frames a file and its ids; runs in the order given):
    ... scripts/bias_release_study.py --variant VARIANT [VARIANT ...] \
        --frames FILE ID [ID ...] [--frames FILE ID [ID ...] ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import NamedTuple

from ase import Atoms
from ase.formula import Formula
from ase.io import read

from spinmultinet_ase.dft.label import STRUCTURE_ID, gpaw_calculator, start_bias
from spinmultinet_ase.dft.orbital_bias import (
    SCF_KEYWORDS,
    OrbitalBias,
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
# SCF step limit of the test-cell runs; frames from files get the protocol's.
TEST_CELL_SCF_STEPS = 150


class Run(NamedTuple):
    """One run: its name in the JSON lines, the frame as given, the variant, the SCF limit."""

    name: str
    atoms: Atoms
    variant: str
    max_scf_steps: int


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

    release_density, max_steps, keywords = VARIANTS[planned.variant]
    work, bias = labeller_start(planned.atoms)
    extra = {"symmetry": {"point_group": False}, "extensions": [bias], **keywords}
    protocol = dataclasses.replace(DEFAULT_PROTOCOL, max_scf_iterations=planned.max_scf_steps)
    work.calc = gpaw_calculator(work, protocol, LOGS / f"{planned.name}.txt", **extra)
    start = time.perf_counter()
    biased = run_biased_start(work.calc, work, bias, max_steps, release_density)
    summary = {"name": planned.name, "biased_steps": biased.steps}
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bias_release_study.py",
        usage="%(prog)s [MATERIAL] [VARIANT ...]\n"
        "       %(prog)s --variant VARIANT [VARIANT ...] --frames FILE ID [ID ...] "
        "[--frames FILE ID [ID ...] ...]",
        description="Run FeO/CoO frames the labeller's way with other bias releases and SCF "
        "settings; one JSON line per run in data/studies/bias_release.jsonl.",
    )
    parser.add_argument(
        "test_cell",
        nargs="*",
        metavar="MATERIAL|VARIANT",
        help="the test cell: [MATERIAL] [VARIANT ...] (default FeO, every variant)",
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
        words = args.test_cell
        material = words.pop(0) if words and words[0] not in VARIANTS else "FeO"
        unknown = [word for word in words if word not in VARIANTS]
        if unknown:
            parser.error(f"unknown variant {unknown[0]!r} (known: {', '.join(VARIANTS)})")
        atoms = convergence_structures(material)["FM"]
        labeller_start(atoms)
        return [
            Run(f"{material}-FM-{variant}", atoms, variant, TEST_CELL_SCF_STEPS)
            for variant in words or VARIANTS
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
            runs.extend(
                Run(
                    f"{structure_id}-{variant}", atoms, variant, DEFAULT_PROTOCOL.max_scf_iterations
                )
                for variant in args.variant
            )
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
