"""Time GPAW's SCF, forces and analytic stress on the ideal 10-atom Cr2O3 cell (one JSON line).

The cell is the rhombohedral primitive cell of corundum Cr2O3 built from literature lattice
parameters, the four Cr moments + - + - along the 3-fold axis. Runs the protocol's settings
(raw analytic stress: Cr2O3 has no Pulay calibration yet); optional JSON: extra GPAW keywords,
then protocol fields to change (e.g. a loose SCF, to time the stress alone).

Usage (2 ranks, GPAW's Debian OpenMPI):
    OMP_NUM_THREADS=1 GPAW_MPI_BACKEND=cgpaw PYTHONPATH=$PWD \
        /usr/bin/mpiexec -n 2 python scripts/corundum_stress.py NAME ['{"parallel": ...}' \
        ['{"density_convergence": 0.1}' ['{"rattle": 0.05, "strain": 0.01}']]]
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.spacegroup import crystal

from spinmultinet_ase.dft.label import gpaw_calculator
from spinmultinet_ase.dft.protocol import DEFAULT_PROTOCOL

OUT = Path("data/studies/corundum_stress.jsonl")
LOGS = Path("data/studies/corundum_logs")

# Cr2O3, R-3c (167), hexagonal setting: a, c (Å), Cr 12c (0, 0, z), O 18e (x, 0, 1/4).
A_HEX, C_HEX, Z_CR, X_O = 4.95, 13.57, 0.3475, 0.3058
CR_MOMENT = 3.0


def corundum_cr2o3(pattern: str = "+-+-") -> Atoms:
    """The 10-atom rhombohedral Cr2O3 cell with Cr moments in ``pattern`` along the c axis."""
    hexagonal = crystal(
        ["Cr", "O"],
        basis=[(0, 0, Z_CR), (X_O, 0, 0.25)],
        spacegroup=167,
        cellpar=[A_HEX, A_HEX, C_HEX, 90, 90, 120],
        primitive_cell=True,
    )
    atoms = hexagonal[np.argsort(hexagonal.numbers, kind="stable")[::-1]]
    cr = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s == "Cr"]
    # Order the four Cr by their height along the 3-fold axis a1 + a2 + a3 (one period).
    heights = atoms.get_scaled_positions().sum(axis=1) % 3.0
    order = sorted(cr, key=lambda i: heights[i])
    moments = np.zeros(len(atoms))
    for sign, index in zip(pattern, order, strict=True):
        moments[index] = CR_MOMENT if sign == "+" else -CR_MOMENT
    atoms.set_initial_magnetic_moments(moments)
    return atoms


def distorted(atoms: Atoms, rattle: float, strain: float) -> Atoms:
    """A copy strained by a random symmetric strain (entries ~``strain``) and rattled (Å)."""
    rng = np.random.default_rng(1)
    out = atoms.copy()
    epsilon = rng.normal(scale=strain, size=(3, 3))
    out.set_cell(out.cell.array @ (np.eye(3) + 0.5 * (epsilon + epsilon.T)), scale_atoms=True)
    out.positions += rng.normal(scale=rattle, size=out.positions.shape)
    return out


def main(name: str, extra: dict, changes: dict, distortion: dict) -> None:
    from gpaw.mpi import world

    atoms = distorted(corundum_cr2o3(), **distortion) if distortion else corundum_cr2o3()
    protocol = replace(DEFAULT_PROTOCOL, **changes)
    if world.rank == 0:
        LOGS.mkdir(parents=True, exist_ok=True)
    world.barrier()
    atoms.calc = gpaw_calculator(atoms, protocol, LOGS / f"{name}.txt", **extra)
    t0 = time.perf_counter()
    energy = atoms.get_potential_energy()
    t1 = time.perf_counter()
    forces = atoms.get_forces()
    t2 = time.perf_counter()
    stress = atoms.get_stress()
    t3 = time.perf_counter()
    summary = {
        "name": name,
        "extra": extra,
        "protocol_changes": changes,
        "distortion": distortion,
        "energy_ev": energy,
        "magmoms": np.round(atoms.get_magnetic_moments(), 3).tolist(),
        "max_force_ev_a": float(np.abs(forces).max()),
        "stress_ev_a3": np.round(stress, 6).tolist(),
        "scf_s": t1 - t0,
        "forces_s": t2 - t1,
        "stress_s": t3 - t2,
        "scf_iterations": atoms.calc.get_number_of_iterations(),
    }
    if world.rank == 0:
        with OUT.open("a") as stream:
            stream.write(json.dumps(summary) + "\n")
        print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    arguments = [json.loads(text) for text in sys.argv[2:]]
    main(sys.argv[1], *(arguments + [{}, {}, {}])[:3])
