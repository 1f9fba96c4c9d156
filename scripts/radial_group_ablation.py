"""Does sharing radial weights across channel groups cost accuracy? A synthetic-oracle test.

The fast edge convolution shares learned radial weights among ``radial_group_size`` channels.
This script fits models with different group sizes, same data and same epochs, to a known
spin-lattice energy on the reference structures (MnO/NiO cells, orderings, rattles, strains
and imperfect moment guesses from ``spinmultinet_ase.dft.structures``):

    E = Σ_pairs A_ab exp(-r/ρ) u(r) + ½ Σ_metal pairs J(r) s_i s_j,
    J(r) = J1 exp(-((r - d1)/w)²) + J2 exp(-((r - d2)/w)²),

with ``s_i`` the nominal moment with the sign of the guess, ``u`` the model's cutoff envelope,
forces and stress by autograd, target moments ``s_i``. It prints test errors per group size.

Run: python scripts/radial_group_ablation.py [--epochs 60] [--frames 300]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from spinmultinet_ase.data.graph import atoms_to_graph
from spinmultinet_ase.dft.structures import HELD_OUT_CELLS, HELD_OUT_ORDERINGS, training_pool
from spinmultinet_ase.nn.radial import PolynomialCutoff
from spinmultinet_ase.train.config import config_from_dict
from spinmultinet_ase.train.trainer import Trainer

CUTOFF = 5.0
NOMINAL = {"Mn": 4.6, "Ni": 1.7, "O": 0.0}
REPULSION = {("M", "O"): 900.0, ("M", "M"): 300.0, ("O", "O"): 500.0}  # eV
J1, J2, D1, D2, WIDTH = 0.004, 0.012, 3.1, 4.35, 0.25  # eV per μB², Å


def synthetic_label(atoms):
    """Energy, forces, stress and moments of ``atoms`` under the synthetic Hamiltonian."""
    symbols = atoms.get_chemical_symbols()
    graph = atoms_to_graph(atoms, ("O", "Mn", "Ni"), CUTOFF, dtype=torch.float64)
    positions = graph["positions"].clone().requires_grad_(True)
    cell = graph["cell"][0]
    strain = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
    deformation = torch.eye(3, dtype=torch.float64) + 0.5 * (strain + strain.T)
    centre, neighbour = graph["edge_index"]
    vectors = (positions[neighbour] - positions[centre] + graph["edge_cell_shift"] @ cell) @ (
        deformation.T
    )
    r = torch.linalg.norm(vectors, dim=1)
    kind = ["O" if s == "O" else "M" for s in symbols]
    amplitude = torch.tensor(
        [
            REPULSION[tuple(sorted((kind[i], kind[j])))]
            for i, j in zip(centre, neighbour, strict=True)
        ],
        dtype=torch.float64,
    )
    envelope = PolynomialCutoff(CUTOFF)(r)
    spins = np.sign(atoms.get_initial_magnetic_moments()) * [NOMINAL[s] for s in symbols]
    s = torch.tensor(spins, dtype=torch.float64)
    coupling = J1 * torch.exp(-(((r - D1) / WIDTH) ** 2)) + J2 * torch.exp(
        -(((r - D2) / WIDTH) ** 2)
    )
    energy = 0.5 * (amplitude * torch.exp(-r / 0.3) * envelope).sum()
    energy = energy + 0.5 * (coupling * envelope * s[centre] * s[neighbour]).sum()
    forces, virial = torch.autograd.grad(energy, [positions, strain])
    volume = abs(np.linalg.det(atoms.cell.array))
    stress = (virial / volume).detach().numpy()
    labelled = atoms.copy()
    labelled.calc = SinglePointCalculator(
        labelled,
        energy=float(energy.detach()),
        forces=(-forces).numpy(),
        stress=stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]],
        magmoms=spins,
    )
    return labelled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--group-sizes", type=int, nargs="+", default=[16, 8, 1])
    args = parser.parse_args()
    pool = training_pool("MnO") + training_pool("NiO")
    order = np.random.default_rng(0).permutation(len(pool))[: args.frames]
    frames = [synthetic_label(pool[i]) for i in order]
    work = Path(tempfile.mkdtemp())
    write(work / "synthetic.extxyz", frames, format="extxyz")
    for group_size in args.group_sizes:
        config = config_from_dict(
            {
                "data": {
                    "path": str(work / "synthetic.extxyz"),
                    "test_orderings": list(HELD_OUT_ORDERINGS),
                    "test_cells": list(HELD_OUT_CELLS),
                },
                "model": {
                    "species": ["O", "Mn", "Ni"],
                    "num_layers": 2,
                    "radial_group_size": group_size,
                },
                "optim": {"max_epochs": args.epochs, "batch_size": 8, "learning_rate": 0.005},
                "output_dir": str(work / f"group{group_size}"),
                "dtype": "float32",
                "num_threads": 1,
            }
        )
        summary = Trainer(config, progress=False).run()
        test = summary["metrics"]["test"]
        print(
            f"radial_group_size {group_size:>2}: test energy MAE {test['energy_mae']:.2f} "
            f"meV/atom, forces {test['forces_mae']:.1f} meV/Å, stress "
            f"{test['stress_mae']:.3f} GPa, moments {test['magmoms_mae']:.3f} μB, "
            f"{summary['wall_time_minutes']:.1f} min",
            flush=True,
        )


if __name__ == "__main__":
    main()
