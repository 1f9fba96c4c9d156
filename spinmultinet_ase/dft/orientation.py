"""Turn rocksalt-derived cells so their metal–oxygen bonds lie along x, y and z before DFT.

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
"""

from __future__ import annotations

import itertools

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list
from ase.stress import full_3x3_to_voigt_6_stress, voigt_6_to_full_3x3_stress

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
