"""Which DFT+U state GPAW lands in for FeO and CoO, from several starts (one JSON line per run).

Each run is the protocol's single point of the ideal 4-atom AFM-II cell (or its FM partner)
from one start; it records energy, band gap, metal moments, SCF iterations and time, and the
eigenvalues of each metal's d occupation matrix (the matrix the +U term acts on). Resumable:
runs already in the output are skipped.

Usage (2 ranks, GPAW's Debian OpenMPI):
    OMP_NUM_THREADS=1 GPAW_MPI_BACKEND=cgpaw PYTHONPATH=$PWD \
        /usr/bin/mpiexec -n 2 python scripts/feo_coo_states.py [RUN ...]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from spinmultinet_ase.dft.label import gpaw_calculator
from spinmultinet_ase.dft.orbital_bias import (
    SCF_KEYWORDS,
    OrbitalBias,
    bias_targets,
    run_biased_start,
    scf_record,
)
from spinmultinet_ase.dft.orientation import bond_alignment_rotation, rotated
from spinmultinet_ase.dft.protocol import DEFAULT_PROTOCOL
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered

OUT = Path("data/studies/feo_coo_states.jsonl")
LOGS = Path("data/studies/feo_coo_logs")

# name -> (formula, ordering, start). Starts:
#   sym: the labeller's start today (GPAW symmetry on, nominal moments).
#   nosym: GPAW symmetry off, nominal moments.
#   nosym-seed: symmetry off, SCF first converged on a rattled copy (0.03 Å), then moved back
#       to the ideal positions: a start whose density has no symmetry left.
#   mag0.6 / mag1.4: the labeller's start with the initial moments scaled (the pool's
#       guesses are off by up to ±40 %).
#   nosym-seed-mag1.4: the seeded start with the initial moments scaled by 1.4.
#   nosym-tetra: symmetry off, SCF first converged on a copy strained tetragonally along the
#       cubic z axis (the bond-aligned frame's z), then moved back: a strain that splits the
#       t2g shell so that its n lowest orbitals hold the n minority electrons (FeO: xy below
#       xz/yz by compression; CoO: xz/yz below xy by elongation).
#   nosym-trig+ / nosym-trig-: as nosym-tetra with the seed strained by ±4 % along the AFM-II
#       cell's 3-fold axis (a cubic body diagonal), a strain that splits t2g into a1g + e_g'.
#   nosym-tetra-U2: as nosym-tetra with the seed SCF at twice the protocol's U (which favours
#       whole-orbital occupations), then the protocol's U restored for the run itself.
#   bias: GPAW symmetry on, nominal moments, the first SCF steps with an orbital bias
#       (spinmultinet_ase/dft/orbital_bias.py: -λ on the minority-spin a1g orbital of Fe / the
#       e_g' pair of Co about [111], the AFM-II axis of the bond-aligned frame), then released
#       and converged without it. The cells run here keep [111] as their 3-fold axis, so GPAW's
#       symmetrisation keeps the bias.
#   bias-tr: as bias with symmetry={'point_group': False} (time reversal kept) and the
#       material's SCF settings (orbital_bias.SCF_KEYWORDS): the labeller's start, which works
#       for any frame, whatever its symmetry.
# Orderings: AFM-II and FM in their own minimal cells (the FM cell is the cubic 2-atom
# primitive cell), and FM-trigonal: FM in the 4-atom AFM-II cell, the geometry of the
# labelling pool's FM partners, whose trigonal symmetry already splits the t2g shell.
# the starts each ordering is run from
ORDERING_STARTS = {
    "AFM-II": (
        "sym",
        "nosym-seed",
        "nosym",
        "mag0.6",
        "mag1.4",
        "nosym-tetra",
        "nosym-tetra-U2",
        "bias",
        "bias-tr",
    ),
    "FM": ("sym", "nosym-seed"),
    "FM-trigonal": (
        "sym",
        "mag1.4",
        "nosym-seed",
        "nosym-tetra",
        "nosym-tetra-U2",
        "nosym-trig+",
        "nosym-trig-",
        "bias",
        "bias-tr",
    ),
}
RUNS = {
    f"{formula}-{ordering}-{start}": (formula, ordering, start)
    for formula in ("FeO", "CoO")
    for ordering, starts in ORDERING_STARTS.items()
    for start in starts
} | {"FeO-AFM-II-nosym-seed-mag1.4": ("FeO", "AFM-II", "nosym-seed-mag1.4")}
# Default order: the runs that choose the rule first, then the rest.
FIRST = (
    "CoO-AFM-II-sym",
    "CoO-AFM-II-nosym-seed",
    "FeO-FM-nosym-seed",
    "CoO-FM-nosym-seed",
    "FeO-FM-trigonal-mag1.4",
    "CoO-FM-trigonal-sym",
    "FeO-FM-trigonal-nosym-tetra",
    "CoO-FM-trigonal-nosym-tetra",
    "FeO-FM-trigonal-nosym-tetra-U2",
    "CoO-AFM-II-nosym-tetra",
    "FeO-AFM-II-nosym-tetra-U2",
    "FeO-AFM-II-bias",
    "FeO-FM-trigonal-bias",
    "CoO-AFM-II-bias",
    "CoO-FM-trigonal-bias",
    "CoO-FM-trigonal-nosym-trig+",
    "CoO-FM-trigonal-nosym-trig-",
    "FeO-AFM-II-nosym-tetra",
    "CoO-FM-trigonal-nosym-tetra-U2",
    "FeO-FM-trigonal-nosym-seed",
    "FeO-AFM-II-nosym-seed-mag1.4",
)
# Tetragonal seed strain along the cubic z axis, by formula (negative: compression).
TETRAGONAL_SEED_STRAIN = {"FeO": -0.04, "CoO": 0.04}
# Trigonal seed strain along the cubic [111] axis, by start.
TRIGONAL_SEED_STRAIN = {"nosym-trig+": 0.04, "nosym-trig-": -0.04}
ORDER = [*FIRST, *(name for name in RUNS if name not in FIRST)]


def spin_gaps(calc) -> list[float]:
    """Per spin, the lowest eigenvalue above the Fermi level minus the highest below (eV)."""
    fermi = calc.get_fermi_level()
    gaps = []
    for spin in (0, 1):
        eigenvalues = np.concatenate(
            [calc.get_eigenvalues(kpt=k, spin=spin) for k in range(len(calc.get_ibz_k_points()))]
        )
        gaps.append(
            float(eigenvalues[eigenvalues > fermi].min() - eigenvalues[eigenvalues <= fermi].max())
        )
    return gaps


def d_occupations(calc) -> list[list[list[float]]]:
    """Per metal atom and spin, the eigenvalues of the d occupation matrix (ascending)."""
    from gpaw.hubbard import aoom

    dft = calc.dft
    density_matrices = dft.density.D_asii.gather(broadcast=True, copy=True)
    result = []
    for a, setup in enumerate(dft.setups):
        if 2 not in setup.l_j or setup.symbol == "O":
            continue
        spins = []
        for d_ii in density_matrices[a]:
            n_mm, _ = aoom(np.asarray(d_ii), 2, setup.l_j, setup.n_j, setup.N0_q, True)
            spins.append(np.round(np.linalg.eigvalsh(n_mm), 3).tolist())
        result.append(spins)
    return result


def three_fold_axis(cell: np.ndarray) -> np.ndarray:
    """The unit body diagonal of the cubic (Cartesian) frame about which a 120° turn maps the
    lattice of ``cell`` (rows) onto itself."""
    for diagonal in ([1, 1, 1], [1, 1, -1], [1, -1, 1], [-1, 1, 1]):
        n = np.array(diagonal) / np.sqrt(3.0)
        cross = np.array([[0, -n[2], n[1]], [n[2], 0, -n[0]], [-n[1], n[0], 0]])
        turn = -0.5 * np.eye(3) + np.sin(2 * np.pi / 3) * cross + 1.5 * np.outer(n, n)
        fractional = np.linalg.solve(cell.T, (cell @ turn.T).T)
        if np.allclose(fractional, np.round(fractional), atol=1e-6):
            return n
    raise ValueError("no body diagonal of the frame is a 3-fold axis of this cell")


def scale_hubbard_u(calc, factor: float) -> None:
    """Multiply the Hubbard U of every setup of ``calc``'s calculation by ``factor``, in place."""
    seen = set()
    for setup in calc.dft.setups:
        hubbard = setup.hubbard_u
        if hubbard is None or id(hubbard) in seen:
            continue
        seen.add(id(hubbard))
        hubbard.U = [u * factor for u in hubbard.U]


def hubbard_u_ev(calc) -> dict[str, list[float]]:
    """The Hubbard U (eV) each element's setup of ``calc``'s calculation applies."""
    from ase.units import Ha

    return {
        setup.symbol: [round(u * Ha, 4) for u in setup.hubbard_u.U]
        for setup in calc.dft.setups
        if setup.hubbard_u is not None
    }


def run(name: str, formula: str, ordering: str, start: str, a: float) -> dict:
    """One single point from ``start``; the summary as a dict."""
    atoms = rocksalt_ordered(formula, "AFM-II" if ordering == "FM-trigonal" else ordering, a=a)
    moments = atoms.get_initial_magnetic_moments()
    if ordering == "FM-trigonal":
        moments = np.abs(moments)
    if "mag" in start:
        moments = moments * float(start.split("mag")[1])
    atoms.set_initial_magnetic_moments(moments)
    work = rotated(atoms, bond_alignment_rotation(atoms))
    extra = {"symmetry": "off"} if start.startswith("nosym") else {}
    if start == "bias-tr":
        extra = {"symmetry": {"point_group": False}, **SCF_KEYWORDS.get(formula, {})}
    bias = OrbitalBias(bias_targets(work)) if start.startswith("bias") else None
    if bias is not None:
        extra["extensions"] = [bias]
    calc = gpaw_calculator(work, DEFAULT_PROTOCOL, LOGS / f"{name}.txt", **extra)
    t0 = time.perf_counter()
    iterations = 0
    biased = None
    if bias is not None:
        biased = run_biased_start(calc, work, bias)
        iterations += biased.steps
    if start.startswith(("nosym-seed", "nosym-tetra", "nosym-trig")):
        seed = work.copy()
        if start.startswith("nosym-tetra"):
            stretch = np.diag([1.0, 1.0, 1.0 + TETRAGONAL_SEED_STRAIN[formula]])
            seed.set_cell(seed.cell.array @ stretch, scale_atoms=True)
        elif start.startswith("nosym-trig"):
            axis = three_fold_axis(seed.cell.array)
            stretch = np.eye(3) + TRIGONAL_SEED_STRAIN[start] * np.outer(axis, axis)
            seed.set_cell(seed.cell.array @ stretch, scale_atoms=True)
        else:
            seed.positions += np.random.default_rng(0).normal(scale=0.03, size=seed.positions.shape)
        seed.calc = calc
        u_factor = 2.0 if start.endswith("-U2") else 1.0
        calc.create_new_calculation(seed)  # its setups, before any SCF step
        scale_hubbard_u(calc, u_factor)
        seed.get_potential_energy()
        iterations += calc.get_number_of_iterations()
        scale_hubbard_u(calc, 1.0 / u_factor)
    work.calc = calc
    energy = work.get_potential_energy()
    iterations += calc.get_number_of_iterations()
    scf_s = time.perf_counter() - t0
    gaps_spin = spin_gaps(calc)
    stress = work.get_stress()
    return {
        "name": name,
        "formula": formula,
        "ordering": ordering,
        "start": start,
        "a": a,
        "energy_ev": energy,
        "energy_per_fu_ev": energy / (len(work) // 2),
        "gap_ev": min(gaps_spin),
        "gap_per_spin_ev": gaps_spin,
        "magmoms": np.round(work.get_magnetic_moments(), 3).tolist(),
        "scf_iterations": iterations,
        "scf_s": scf_s,
        "total_s": time.perf_counter() - t0,
        "stress_ev_a3": np.round(stress, 6).tolist(),
        "d_occupation_eigenvalues": d_occupations(calc),
        "hubbard_u_ev": hubbard_u_ev(calc),
        "symmetry": extra.get("symmetry", "on"),
        "scf": scf_record({k: extra[k] for k in ("mixer", "eigensolver") if k in extra}),
        "bias_strength_ev": None if biased is None else biased.strength_ev,
        "bias_max_steps": None if biased is None else biased.max_steps,
        "bias_steps": None if biased is None else biased.steps,
        "bias_target_occupations": None if biased is None else biased.occupations,
    }


def main(names: list[str]) -> None:
    from gpaw.mpi import world

    lattice = json.loads(Path("data/studies/feo_coo_lattice.json").read_text())
    done = set()
    if OUT.exists():
        done = {json.loads(line)["name"] for line in OUT.read_text().splitlines() if line}
    if world.rank == 0:
        LOGS.mkdir(parents=True, exist_ok=True)
    world.barrier()
    for name in names or ORDER:
        if name in done:
            continue
        formula, ordering, start = RUNS[name]
        summary = run(name, formula, ordering, start, lattice[formula])
        if world.rank == 0:
            with OUT.open("a") as stream:
                stream.write(json.dumps(summary) + "\n")
            print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
