"""Turn each structure into the canonical orientation of its crystal family before DFT.

GPAW integrates the exchange-correlation energy inside each PAW sphere on an angular grid
fixed in the Cartesian frame, so the energy of an anisotropic d shell depends on how the
crystal is oriented. Measured for the undistorted FM NiO crystal at the protocol settings
(orientation check of the convergence study, ``data/convergence.json``): turning the 2-atom
cell by 45° about z raises the energy by 10.2 meV per formula unit; bond-aligned, the two
agree to 1e-9 eV. In the first labelled data the FM yardstick in the Niggli-reduced 4-atom
AFM-I cell (octahedra turned 45° about z) lay 10.1 meV/f.u. above the same crystal in the
AFM-II cell: an offset between all frames of the two cells. MnO (d⁵, a spherical shell)
hardly feels it. Labelling every structure with its octahedra along the axes makes the
energies of all cells and strains consistent. The angular grid has the cube's symmetry, so
which of the equivalent alignments is used does not matter.

Corundum (Cr2O3, Fe2O3) has octahedra in two orientations (its oxygens are nearly hexagonal
close-packed), so no turn puts all bonds on the axes. Its canonical orientation is that of the
reference cell (:func:`~spinmultinet_ase.magnetism.corundum.corundum_cell`: 3-fold axis along
z, a 2-fold axis along x): each structure is turned so that its metal–oxygen bonds fit the
reference cell's bond directions best (:func:`reference_bond_rotation`), whatever cell,
strain or rattle it has and however it was handed in. Cr³⁺ (d³, t2g³) is as anisotropic as
Ni²⁺; Fe³⁺ (d⁵) is nearly spherical but follows the same rule, so both materials' frames are
consistent. Fits related by a rotation of the crystal's point group are equally good (for
the ideal crystal they are the same crystal); one of them is picked by a property of the
structure itself (:func:`reference_bond_rotation`), so a frame ends in the same orientation
however it was handed in.
"""

from __future__ import annotations

import itertools

import numpy as np
from ase import Atoms
from ase.formula import Formula
from ase.neighborlist import neighbor_list
from ase.stress import full_3x3_to_voigt_6_stress, voigt_6_to_full_3x3_stress

from spinmultinet_ase.magnetism.corundum import CORUNDUM_PARAMETERS, corundum_cell
from spinmultinet_ase.magnetism.sites import MOMENT_THRESHOLD, guessed_moments

# Bonds up to this factor times the shortest metal–oxygen distance define the octahedra.
BOND_TOLERANCE = 1.25


def _metal_oxygen_bonds(atoms: Atoms) -> np.ndarray:
    """Unit vectors from each magnetic site to its oxygen neighbours, shape (bonds, 3).

    Magnetic sites are the atoms with a nonzero initial moment, else (no moment set) those
    with a default moment guess.
    """
    symbols = np.array(atoms.get_chemical_symbols())
    metal = np.abs(guessed_moments(atoms)) > MOMENT_THRESHOLD
    first, second, vectors = neighbor_list("ijD", atoms, 3.5)
    bonds = vectors[metal[first] & (symbols[second] == "O")]
    if len(bonds) == 0:
        raise ValueError(
            f"{atoms.get_chemical_formula()}: no metal–oxygen bonds within 3.5 Å to align; "
            "bond alignment is for transition-metal oxides"
        )
    lengths = np.linalg.norm(bonds, axis=1)
    bonds = bonds[lengths < BOND_TOLERANCE * lengths.min()]
    return bonds / np.linalg.norm(bonds, axis=1, keepdims=True)


def bond_alignment_rotation(atoms: Atoms, iterations: int = 10) -> np.ndarray:
    """The proper rotation R that brings the metal–oxygen bonds closest to ±x, ±y, ±z.

    Least squares over all bonds (Kabsch), starting from the frame of the first bond and the
    bond most nearly perpendicular to it, and reassigning each bond to its nearest axis; of the
    cube-equivalent results, the smallest turn.

    Returns:
        R (3, 3): rotated positions are ``positions @ R.T``.
    """
    bonds = _metal_oxygen_bonds(atoms)
    e1 = bonds[0]
    second = bonds[np.argmin(np.abs(bonds @ e1))]
    e2 = second - (second @ e1) * e1
    e2 /= np.linalg.norm(e2)
    rotation = np.array([e1, e2, np.cross(e1, e2)])
    for _ in range(iterations):
        turned = bonds @ rotation.T
        nearest = np.argmax(np.abs(turned), axis=1)
        targets = np.zeros_like(turned)
        targets[np.arange(len(turned)), nearest] = np.sign(turned[np.arange(len(turned)), nearest])
        u, _, vt = np.linalg.svd(targets.T @ bonds)
        handedness = np.sign(np.linalg.det(u @ vt))
        rotation = u @ np.diag([1.0, 1.0, handedness]) @ vt
    return _closest_to_identity(rotation)


def canonical_rotation(atoms: Atoms) -> np.ndarray:
    """The rotation into the canonical orientation of the structure's family (by formula):
    :func:`reference_bond_rotation` onto the reference cell for a corundum formula, else the
    rocksalt rule :func:`bond_alignment_rotation`.

    Returns:
        R (3, 3): rotated positions are ``positions @ R.T``.
    """
    formula = str(Formula(atoms.get_chemical_formula()).reduce()[0])
    if formula in CORUNDUM_PARAMETERS:
        return reference_bond_rotation(atoms, _reference_bonds(formula))
    return bond_alignment_rotation(atoms)


def _reference_bonds(formula: str) -> np.ndarray:
    """The distinct metal–oxygen bond directions of the ideal corundum cell of ``formula``."""
    return np.unique(np.round(_metal_oxygen_bonds(corundum_cell(formula)), 6), axis=0)


def _fit(
    bonds: np.ndarray, targets: np.ndarray, rotations: np.ndarray, iterations: int
) -> tuple[np.ndarray, np.ndarray]:
    """Kabsch refinement of each of ``rotations`` (S, 3, 3) with each bond matched to its
    nearest target; the rotations and their mean squared residuals (S,)."""

    def nearest(rotations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        turned = np.einsum("bk,sjk->sbj", bonds, rotations)
        return turned, targets[np.argmax(turned @ targets.T, axis=2)]

    for _ in range(iterations):
        _, matched = nearest(rotations)
        u, _, vt = np.linalg.svd(np.einsum("sbi,bj->sij", matched, bonds))
        u[:, :, 2] *= np.sign(np.linalg.det(u @ vt))[:, None]
        rotations = u @ vt
    turned, matched = nearest(rotations)
    return rotations, np.mean(np.sum((turned - matched) ** 2, axis=2), axis=1)


def reference_bond_rotation(
    atoms: Atoms, targets: np.ndarray, iterations: int = 10, tolerance_deg: float = 10.0
) -> np.ndarray:
    """The proper rotation R that best fits the metal–oxygen bonds onto the unit vectors
    ``targets`` (each bond onto its nearest target, least squares).

    Starts: every bond and the bond most nearly perpendicular to it put onto every pair of
    targets at the same angle (within ``tolerance_deg``); each start refined (Kabsch). Starting
    from every bond, not one, makes the search independent of the order the bonds come in: a
    rattled frame's fit from one bond's starts can end in a local minimum. The residual cannot
    tell apart fits related by a rotation that maps ``targets`` onto itself; of those
    (residuals equal to 1e-9) the one whose bonds' second-moment tensor ``Σ (R b)(R b)ᵀ`` has
    the largest xx, then xy, then yy component is taken, a choice made by the structure alone.

    Returns:
        R (3, 3): rotated positions are ``positions @ R.T``.
    """
    bonds = _metal_oxygen_bonds(atoms)
    angles = np.arccos(np.clip(targets @ targets.T, -1.0, 1.0))
    fits = []
    for first in bonds:  # one batch of starts per bond keeps the arrays small
        second = bonds[np.argmin(np.abs(bonds @ first))]
        angle = np.arccos(np.clip(first @ second, -1.0, 1.0))
        frame = _frame(first, second)
        pairs = np.argwhere(np.abs(angles - angle) < np.radians(tolerance_deg))
        starts = np.array([_frame(targets[i], targets[j]).T @ frame for i, j in pairs])
        fits.append(_fit(bonds, targets, starts.reshape(-1, 3, 3), iterations))
    rotations = np.concatenate([rotation for rotation, _ in fits])
    residuals = np.concatenate([residual for _, residual in fits])
    tied = rotations[residuals < residuals.min() + 1e-9]

    def key(rotation: np.ndarray) -> tuple[float, ...]:
        moments = rotation @ bonds.T @ bonds @ rotation.T
        return tuple(np.round([moments[0, 0], moments[0, 1], moments[1, 1]], 9))

    return max(tied, key=key)


def _frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Orthonormal rows: ``a``, the part of ``b`` perpendicular to it, their cross product."""
    e1 = a / np.linalg.norm(a)
    e2 = b - (b @ e1) * e1
    e2 /= np.linalg.norm(e2)
    return np.array([e1, e2, np.cross(e1, e2)])


def _closest_to_identity(rotation: np.ndarray) -> np.ndarray:
    """Of the 24 cube-equivalent alignments ``P @ rotation``, the one turning the least.

    An axis-aligned cell then stays as it is (GPAW's text log cannot draw a cubic cell whose
    axes were turned to negative directions), and the choice never depends on bond order.
    """
    turns = [
        np.diag(signs)[list(order)]
        for order in itertools.permutations(range(3))
        for signs in itertools.product((1.0, -1.0), repeat=3)
    ]
    proper = [turn for turn in turns if np.linalg.det(turn) > 0]
    return max((turn @ rotation for turn in proper), key=np.trace)


def rotated(atoms: Atoms, rotation: np.ndarray) -> Atoms:
    """A copy of ``atoms`` turned rigidly by ``rotation`` (collinear moments are unchanged)."""
    turned = atoms.copy()
    turned.set_cell(atoms.cell[:] @ rotation.T, scale_atoms=False)
    turned.positions = atoms.positions @ rotation.T
    return turned


def rotate_back(results: dict, rotation: np.ndarray) -> dict:
    """DFT results of the turned structure in the frame of the original one."""
    back = dict(results)
    back["forces"] = results["forces"] @ rotation
    stress = voigt_6_to_full_3x3_stress(results["stress"])
    back["stress"] = full_3x3_to_voigt_6_stress(rotation.T @ stress @ rotation)
    return back
