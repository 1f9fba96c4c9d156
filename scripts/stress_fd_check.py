"""GPAW's analytic stress of the ideal Cr2O3 cell against finite differences of its energy.

For a strain ε applied as x → (I + ε) x, dE/dε_ij = V σ_ij (ASE sign). Two central differences
at the protocol's settings (one JSON line each in data/studies/corundum_stress_fd.jsonl):
- volume, ε = ±h I: tr σ = (E₊ − E₋) / (2 h V); at a fixed cutoff this includes the Pulay
  stress the analytic one lacks, so their difference measures it;
- shear, ε_xz = ε_zx = ±h: σ_xz = (E₊ − E₋) / (4 h V), free of Pulay stress.
Compare with ``stress_ev_a3`` of the unstrained cell in data/studies/corundum_stress.jsonl.

Usage (2 ranks, GPAW's Debian OpenMPI):
    OMP_NUM_THREADS=1 GPAW_MPI_BACKEND=cgpaw PYTHONPATH=$PWD \
        /usr/bin/mpiexec -n 2 python scripts/stress_fd_check.py [h]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from corundum_stress import LOGS, corundum_cr2o3

from spinmultinet_ase.dft.label import gpaw_calculator
from spinmultinet_ase.dft.protocol import DEFAULT_PROTOCOL

OUT = Path("data/studies/corundum_stress_fd.jsonl")


def strained_energy(strain: np.ndarray, name: str) -> float:
    """Energy (eV) of the ideal cell under ``strain`` (3, 3)."""
    atoms = corundum_cr2o3()
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + strain).T, scale_atoms=True)
    atoms.calc = gpaw_calculator(atoms, DEFAULT_PROTOCOL, LOGS / f"fd-{name}.txt")
    return atoms.get_potential_energy()


def main(h: float) -> None:
    from gpaw.mpi import world

    volume = corundum_cr2o3().get_volume()
    shear = np.zeros((3, 3))
    shear[0, 2] = shear[2, 0] = 1.0
    for label, direction, divisor in (("volume", np.eye(3), 2.0), ("shear_xz", shear, 4.0)):
        energies = [strained_energy(s * h * direction, f"{label}{s:+d}") for s in (1, -1)]
        value = (energies[0] - energies[1]) / (divisor * h * volume)
        if world.rank == 0:
            row = {"component": label, "h": h, "energies_ev": energies, "fd_ev_a3": value}
            with OUT.open("a") as stream:
                stream.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 0.005)
