"""Heisenberg exchange constants from energies of collinear orderings.

Convention (PHYSICS.md): ``E = E0 + Σ_<ij> J_ij S_i·S_j`` over pairs counted once, ``J > 0``
antiferromagnetic. For collinear states ``S_i·S_j = S² s_i s_j`` with signs ``s = ±1``, so the
energy per magnetic ion is ``E0 + Σ_k J_k S² n_k`` with ``n_k = ½ ⟨Σ_{j ∈ shell k of i} s_i s_j⟩``.
On the rocksalt fcc sublattice: FM ``n = (6, 3)``, AFM-I ``(-2, 3)``, AFM-II ``(0, -3)``.
We fit and report ``J_k S²`` (meV), which needs no choice of S; divide by S² for J.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from spinmultinet_ase.magnetism.rocksalt import DEFAULT_MOMENT_MAGNITUDES


def magnetic_mask(atoms: Atoms) -> np.ndarray:
    """Atoms of magnetic elements."""
    return np.array([s in DEFAULT_MOMENT_MAGNITUDES for s in atoms.get_chemical_symbols()])


def shell_radii(atoms: Atoms, num_shells: int, tolerance: float = 0.05) -> np.ndarray:
    """Distances (Å) of the first ``num_shells`` shells of magnetic neighbours."""
    mask = magnetic_mask(atoms)
    magnetic = atoms[mask]
    radius = 2.0
    while True:
        distances = np.sort(neighbor_list("d", magnetic, radius))
        if len(distances):
            shells = distances[np.concatenate([[True], np.diff(distances) > tolerance])]
            if len(shells) > num_shells:
                return shells[:num_shells]
        radius *= 1.5


def pair_counts(atoms: Atoms, radii: Sequence[float], tolerance: float = 0.05) -> np.ndarray:
    """``n_k`` per magnetic ion for each shell radius, from the signs of ``initial_magmoms``."""
    mask = magnetic_mask(atoms)
    magnetic = atoms[mask]
    signs = np.sign(magnetic.get_initial_magnetic_moments())
    i, j, d = neighbor_list("ijd", magnetic, max(radii) + tolerance)
    counts = [0.5 * np.sum((signs[i] * signs[j])[np.abs(d - r) < tolerance]) for r in radii]
    return np.array(counts) / len(magnetic)


def fit_exchange(
    structures: Sequence[Atoms], energies_per_ion: Sequence[float], num_shells: int = 2
) -> dict[str, float]:
    """Least-squares ``E0`` and ``J_k S²`` (eV) from energies per magnetic ion (eV).

    ``structures`` are ideal (undistorted) cells of one material with ``initial_magmoms``
    giving the ordering; shells are taken from the first structure.
    """
    radii = shell_radii(structures[0], num_shells)
    design = np.array([[1.0, *pair_counts(a, radii)] for a in structures])
    if np.linalg.matrix_rank(design) < design.shape[1]:
        raise ValueError(
            f"{len(structures)} orderings cannot determine E0 and {num_shells} exchange "
            "constants; add orderings that differ in their neighbour counts"
        )
    solution, *_ = np.linalg.lstsq(design, np.asarray(energies_per_ion), rcond=None)
    return {
        "E0": float(solution[0]),
        **{f"J{k + 1}S2": float(v) for k, v in enumerate(solution[1:])},
    }


def mean_field_neel_temperature(j2s2: float) -> float:
    """Classical mean-field T_N (K) of AFM-II on the fcc lattice from ``J2 S²`` (eV).

    Classical Heisenberg mean field: ``k_B T_N = S² |J(Q)| / 3`` with ``J(Q)`` the exchange
    sum of one ion with its neighbours' signs in the ordered state. In AFM-II each ion has six
    parallel and six antiparallel nearest neighbours (J1 cancels) and six antiparallel next-
    nearest ones, so ``|J(Q)| = 6 J2`` and ``k_B T_N = 2 J2 S²``.
    """
    from ase.units import kB

    return 2.0 * j2s2 / kB
