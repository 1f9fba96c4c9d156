"""Symmetry checks: each returns the largest deviation from the exact transformation rule,
relative to the size of each output where that exceeds 1.

Rules (PHYSICS.md): for an orthogonal Q acting as ``R -> R Qᵀ``, ``cell -> cell Qᵀ``:
E and per-atom energies are unchanged, ``F -> F Qᵀ``, ``σ -> Q σ Qᵀ``. Moments, predicted
moments, latents and magnetic forces go with the spin mode (:mod:`spinmultinet_ase.spin`):
unchanged when spins are decoupled from the lattice (collinear, noncollinear), axial vectors
``m -> det(Q) m Qᵀ`` with spin-orbit (noncollinear_soc). Without spin-orbit a global spin
rotation ``m -> m Uᵀ`` with the structure fixed leaves E, F, σ unchanged and rotates those four.
Time reversal ``m -> -m`` leaves E, F, σ unchanged and flips predicted moments and latents.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.stress import voigt_6_to_full_3x3_stress

from spinmultinet_ase import keys
from spinmultinet_ase.spin import SpinMode

# outputs that transform like the input moments
SPIN_OUTPUTS = ("magmoms", keys.SPIN_LATENTS, keys.MAGNETIC_FORCES)


def random_orthogonal(seed: int, proper: bool = True) -> np.ndarray:
    """A random 3x3 rotation (``proper``) or rotation-inversion, seeded."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    if (np.linalg.det(q) > 0) != proper:
        q[:, 0] *= -1
    return q


def evaluate(calc: Calculator, atoms: Atoms) -> dict[str, np.ndarray]:
    """All outputs of ``calc`` for a copy of ``atoms``; stress as a 3x3 matrix if periodic."""
    atoms = atoms.copy()
    atoms.calc = calc
    out = {
        "energy": np.array(atoms.get_potential_energy()),
        "energies": atoms.get_potential_energies(),
        "forces": atoms.get_forces(),
        "magmoms": atoms.get_magnetic_moments(),
        keys.SPIN_LATENTS: calc.results[keys.SPIN_LATENTS],
        keys.MAGNETIC_FORCES: calc.results[keys.MAGNETIC_FORCES],
    }
    if atoms.pbc.all():
        out["stress"] = voigt_6_to_full_3x3_stress(atoms.get_stress())
    return out


def _max_deviation(actual: dict, expected: dict) -> float:
    """Largest deviation over all outputs, each relative to its own scale (at least 1)."""
    return max(
        float(np.max(np.abs(actual[k] - expected[k]), initial=0.0))
        / max(1.0, float(np.max(np.abs(expected[k]), initial=0.0)))
        for k in expected
    )


def orthogonal_deviation(calc: Calculator, atoms: Atoms, q: np.ndarray) -> float:
    """Deviation under the rotation or improper rotation ``q`` (3x3 orthogonal) of the
    structure, with the moments transformed as ``calc.model.spin_mode`` says."""
    mode: SpinMode = calc.model.spin_mode
    reference = evaluate(calc, atoms)
    moved = atoms.copy()
    moved.positions = atoms.positions @ q.T
    moved.set_cell(atoms.cell.array @ q.T, scale_atoms=False)
    moved.set_initial_magnetic_moments(
        mode.rotated_with_lattice(atoms.get_initial_magnetic_moments(), q)
    )
    expected = {
        "energy": reference["energy"],
        "energies": reference["energies"],
        "forces": reference["forces"] @ q.T,
    }
    for key in SPIN_OUTPUTS:
        expected[key] = mode.rotated_with_lattice(reference[key], q)
    if "stress" in reference:
        expected["stress"] = q @ reference["stress"] @ q.T
    return _max_deviation(evaluate(calc, moved), expected)


def spin_rotation_deviation(calc: Calculator, atoms: Atoms, u: np.ndarray) -> float:
    """Deviation under a global rotation ``u`` (3x3 orthogonal) of the (N, 3) moments alone,
    ``m -> m uᵀ``: an exact symmetry without spin-orbit (``noncollinear``)."""
    reference = evaluate(calc, atoms)
    rotated = atoms.copy()
    rotated.set_initial_magnetic_moments(atoms.get_initial_magnetic_moments() @ u.T)
    expected = {k: v @ u.T if k in SPIN_OUTPUTS else v for k, v in reference.items()}
    return _max_deviation(evaluate(calc, rotated), expected)


def translation_deviation(calc: Calculator, atoms: Atoms, shift: np.ndarray) -> float:
    """Deviation when every atom moves by ``shift`` (Å): nothing may change."""
    reference = evaluate(calc, atoms)
    moved = atoms.copy()
    moved.positions += shift
    return _max_deviation(evaluate(calc, moved), reference)


def permutation_deviation(calc: Calculator, atoms: Atoms, order: np.ndarray) -> float:
    """Deviation when atoms (with their moments) are reordered: per-atom outputs follow."""
    reference = evaluate(calc, atoms)
    permuted = atoms[order]
    expected = {k: v[order] if k not in ("energy", "stress") else v for k, v in reference.items()}
    return _max_deviation(evaluate(calc, permuted), expected)


def time_reversal_deviation(calc: Calculator, atoms: Atoms) -> float:
    """Deviation under ``m -> -m``: E, F, σ unchanged; moments, latents, -∂E/∂m flip."""
    reference = evaluate(calc, atoms)
    flipped = atoms.copy()
    flipped.set_initial_magnetic_moments(
        SpinMode.time_reversed(atoms.get_initial_magnetic_moments())
    )
    expected = {k: -v if k in SPIN_OUTPUTS else v for k, v in reference.items()}
    return _max_deviation(evaluate(calc, flipped), expected)
