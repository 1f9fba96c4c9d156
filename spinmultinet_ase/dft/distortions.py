"""Frames made from ideal cells: random orderings, strains, rattles, imperfect moment guesses
and tags.

Shared by the pool recipes of every crystal family (``dft/structures.py`` for rocksalt,
``dft/corundum_structures.py`` for corundum).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.build import niggli_reduce

_UNIT_111 = tuple(np.ones(3) / np.sqrt(3.0))


@dataclass(frozen=True)
class Distortion:
    """A homogeneous strain and a rattle applied to an ideal cell.

    Attributes:
        volume_strain: relative volume change (e.g. 0.05 = +5 %).
        rhombohedral_strain: traceless strain δ (n nᵀ − I/3) along the 3-fold axis n = ``axis``;
            for rocksalt (n = [111] of the cubic frame) δ < 0 contracts along [111] and opens
            the pseudo-cubic angle above 90°.
        shear: symmetric random strain with zero trace, (3, 3).
        rattle_angstrom: standard deviation of Gaussian displacements (Å).
        axis: the unit vector n of ``rhombohedral_strain``, in the frame of the ideal cell.
    """

    volume_strain: float = 0.0
    rhombohedral_strain: float = 0.0
    shear: tuple[tuple[float, ...], ...] = ((0.0,) * 3,) * 3
    rattle_angstrom: float = 0.0
    axis: tuple[float, ...] = _UNIT_111

    def strain_tensor(self) -> np.ndarray:
        linear = (1.0 + self.volume_strain) ** (1.0 / 3.0) - 1.0
        n = np.array(self.axis)
        rhombo = self.rhombohedral_strain * (np.outer(n, n) - np.eye(3) / 3.0)
        return linear * np.eye(3) + rhombo + np.array(self.shear)


def distort(atoms: Atoms, distortion: Distortion, rng: np.random.Generator) -> Atoms:
    """Strain the cell (in the frame of ``atoms``) and rattle the atoms of a copy of ``atoms``."""
    out = atoms.copy()
    deformation = np.eye(3) + distortion.strain_tensor()
    out.set_cell(out.cell.array @ deformation.T, scale_atoms=True)
    if distortion.rattle_angstrom > 0:
        out.positions += rng.normal(scale=distortion.rattle_angstrom, size=out.positions.shape)
    return out


def random_shear(rng: np.random.Generator, scale: float = 0.015) -> tuple[tuple[float, ...], ...]:
    """A symmetric traceless strain with Gaussian entries of standard deviation ``scale``."""
    shear = rng.normal(scale=scale, size=(3, 3))
    shear = 0.5 * (shear + shear.T)
    shear -= np.trace(shear) / 3.0 * np.eye(3)
    return tuple(tuple(float(x) for x in row) for row in shear)


def random_signs(rng: np.random.Generator, n_metals: int) -> np.ndarray:
    """A random collinear ordering of ``n_metals`` metal sites as signs ±1, the first +1 (an
    ordering and its global flip are the same state)."""
    signs = rng.choice([-1, 1], size=n_metals)
    signs *= signs[0]
    return signs


def imperfect_guess(atoms: Atoms, rng: np.random.Generator, spread: float = 0.4) -> None:
    """Scale each nonzero initial moment by a random factor in [1 − spread, 1 + spread]."""
    moments = atoms.get_initial_magnetic_moments()
    atoms.set_initial_magnetic_moments(moments * rng.uniform(1 - spread, 1 + spread, len(atoms)))


def tag(
    atoms: Atoms, structure_id: str, material: str, cell: str, ordering: str, distortion: Distortion
) -> Atoms:
    """Niggli-reduce ``atoms`` in place and record how it was made in its ``info``."""
    niggli_reduce(atoms)
    atoms.info.update(
        structure_id=structure_id,
        material=material,
        cell_name=cell,
        ordering=ordering,
        volume_strain=distortion.volume_strain,
        rhombohedral_strain=distortion.rhombohedral_strain,
        rattle_angstrom=distortion.rattle_angstrom,
    )
    return atoms


def pool_frame(
    ideal: Atoms,
    distortion: Distortion,
    rng: np.random.Generator,
    structure_id: str,
    material: str,
    cell: str,
    ordering: str,
) -> Atoms:
    """``ideal`` distorted (:func:`distort`), with an imperfect moment guess, tagged."""
    atoms = distort(ideal, distortion, rng)
    imperfect_guess(atoms, rng)
    return tag(atoms, structure_id, material, cell, ordering, distortion)


def ordering_partner(
    source: Atoms, moments: np.ndarray, ordering: str, rng: np.random.Generator
) -> Atoms:
    """The frame ``source`` relabelled with another ordering at the very same geometry.

    Args:
        source: a tagged pool frame.
        moments: the ideal initial moments of ``ordering`` in the atom order of ``source``.
        ordering: the partner's ordering name.
        rng: draws the partner's own imperfect guess.

    Returns:
        A copy with ``info['partner_of']`` the source's id, so that the split keeps the pair
        together.
    """
    partner = source.copy()
    partner.set_initial_magnetic_moments(moments)
    imperfect_guess(partner, rng)
    source_id = source.info["structure_id"]
    partner.info.update(
        structure_id=f"{source_id}-as-{ordering}", ordering=ordering, partner_of=source_id
    )
    return partner
