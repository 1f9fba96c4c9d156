"""Symmetry checks: each returns the largest deviation from the exact transformation rule,
relative to the size of each output where that exceeds 1.

Rules (PHYSICS.md): for an orthogonal Q acting as ``R -> R Qᵀ``, ``cell -> cell Qᵀ``:
E and per-atom energies are unchanged, ``F -> F Qᵀ``, ``σ -> Q σ Qᵀ``. Collinear moments are
spatial scalars (unchanged); non-collinear moments are axial vectors, ``m -> det(Q) m Qᵀ``.
Time reversal ``m -> -m`` leaves E, F, σ unchanged and flips predicted moments and latents.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.stress import voigt_6_to_full_3x3_stress

from spinmultinet_ase import keys


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


def _is_noncollinear(atoms: Atoms) -> bool:
    return atoms.get_initial_magnetic_moments().ndim == 2


def orthogonal_deviation(calc: Calculator, atoms: Atoms, q: np.ndarray) -> float:
    """Deviation under the rotation or improper rotation ``q`` (3x3 orthogonal)."""
    reference = evaluate(calc, atoms)
    moved = atoms.copy()
    moved.positions = atoms.positions @ q.T
    moved.set_cell(atoms.cell.array @ q.T, scale_atoms=False)
    det = np.linalg.det(q)
    noncollinear = _is_noncollinear(atoms)
    if noncollinear:
        moved.set_initial_magnetic_moments(det * atoms.get_initial_magnetic_moments() @ q.T)
    expected = {
        "energy": reference["energy"],
        "energies": reference["energies"],
        "forces": reference["forces"] @ q.T,
        "magmoms": det * reference["magmoms"] @ q.T if noncollinear else reference["magmoms"],
    }
    for key in (keys.SPIN_LATENTS, keys.MAGNETIC_FORCES):
        expected[key] = det * reference[key] @ q.T if noncollinear else reference[key]
    if "stress" in reference:
        expected["stress"] = q @ reference["stress"] @ q.T
    return _max_deviation(evaluate(calc, moved), expected)


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
    flipped.set_initial_magnetic_moments(-atoms.get_initial_magnetic_moments())
    odd = {"magmoms", keys.SPIN_LATENTS, keys.MAGNETIC_FORCES}
    expected = {k: -v if k in odd else v for k, v in reference.items()}
    return _max_deviation(evaluate(calc, flipped), expected)
