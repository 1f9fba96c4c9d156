"""Finite-difference oracles ASE lacks: magnetic forces and the Hessian.

Forces and stress use ASE's own ``ase.calculators.fd`` oracles.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator


def _energy(calc: Calculator, atoms: Atoms) -> float:
    atoms = atoms.copy()
    atoms.calc = calc
    return atoms.get_potential_energy()


def numerical_magnetic_forces(calc: Calculator, atoms: Atoms, delta: float = 1e-4) -> np.ndarray:
    """-dE/dm by central differences of the initial moments (eV/μB)."""
    moments = atoms.get_initial_magnetic_moments()
    result = np.zeros_like(moments)
    for index in np.ndindex(moments.shape):
        energies = []
        for sign in (1, -1):
            shifted = moments.copy()
            shifted[index] += sign * delta
            moved = atoms.copy()
            moved.set_initial_magnetic_moments(shifted)
            energies.append(_energy(calc, moved))
        result[index] = -(energies[0] - energies[1]) / (2 * delta)
    return result


def numerical_hessian(calc: Calculator, atoms: Atoms, delta: float = 1e-4) -> np.ndarray:
    """d²E/dR² (3N x 3N, eV/Å²) by central differences of the analytic forces."""
    n = 3 * len(atoms)
    hessian = np.zeros((n, n))
    for column in range(n):
        forces = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.positions.flat[column] += sign * delta
            moved.calc = calc
            forces.append(moved.get_forces().ravel())
        hessian[:, column] = -(forces[0] - forces[1]) / (2 * delta)
    return hessian
