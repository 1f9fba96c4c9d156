"""Structures to label: rocksalt oxides in several cells, orderings, strains and rattles.

Each frame carries ``initial_magmoms`` set as a user would guess them (the nominal magnitude
off by up to ±40 %, the sign from the ordering) and ``info`` describing how it was made.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.build import niggli_reduce

from spinmultinet_ase.magnetism.rocksalt import (
    ROCKSALT_LATTICE_CONSTANTS,
    minimal_magnetic_cell,
    ordering_fits_cell,
    rocksalt_ordered,
)

# Named cells: supercell matrices of the 2-atom primitive cell.
CELLS: dict[str, np.ndarray] = {
    "prim-2": np.eye(3, dtype=int),
    "afm2-4": minimal_magnetic_cell("AFM-II"),
    "afm1-4": minimal_magnetic_cell("AFM-I"),
    "cubic-8": np.array([[-1, 1, 1], [1, -1, 1], [1, 1, -1]]),
    "afm3-8": minimal_magnetic_cell("AFM-III"),
    "prim222-16": 2 * np.eye(3, dtype=int),
}

RANDOM = "random"

# (cell, ordering, frames per material) of the training pool; "random" draws a sign per metal.
# Mostly 2- and 4-atom cells: a 4-atom frame costs ~2-4 CPU-minutes of DFT here, an 8-atom one
# twice that and a 16-atom one ~5 times; the few larger cells carry the AFM-III and random
# orderings the test split holds out.
POOL_RECIPE: tuple[tuple[str, str, int], ...] = (
    ("afm2-4", "FM", 48),
    ("afm2-4", "AFM-II", 80),
    ("afm1-4", "FM", 20),
    ("afm1-4", "AFM-I", 45),
    ("prim-2", "FM", 45),
    ("cubic-8", "FM", 6),
    ("cubic-8", "AFM-I", 8),
    ("cubic-8", RANDOM, 16),
    ("afm3-8", "AFM-III", 12),
    ("afm3-8", RANDOM, 6),
    ("prim222-16", "AFM-II", 3),
    ("prim222-16", RANDOM, 3),
)

# Ordering partners: (cell, ordering of the source frames, ordering of their partners, sources
# per material). A partner is a pool frame relabelled with another ordering at the very same
# geometry, so the pair's energy difference is purely magnetic: the quantity ordering energies
# and exchange constants are made of, free of the elastic energy of the frame's distortion.
PARTNER_RECIPE: tuple[tuple[str, str, str, int], ...] = (
    ("afm2-4", "FM", "AFM-II", 12),
    ("afm2-4", "AFM-II", "FM", 12),
    ("afm1-4", "FM", "AFM-I", 8),
    ("afm1-4", "AFM-I", "FM", 8),
)

# What the default split (``DataConfig``) holds out of training whole: an ordering and a cell the
# model is tested on unseen. Labelled after everything else, as they teach the model nothing and
# a 16-atom frame costs as much DFT time as about 18 4-atom ones.
HELD_OUT_ORDERINGS: tuple[str, ...] = ("AFM-III",)
HELD_OUT_CELLS: tuple[str, ...] = ("prim222-16",)

RHOMBOHEDRAL_STRAINS = (-0.03, -0.02, -0.01, 0.0, 0.01, 0.02, 0.03)
_UNIT_111 = np.ones(3) / np.sqrt(3.0)


@dataclass(frozen=True)
class Distortion:
    """A homogeneous strain and a rattle applied to an ideal cell.

    Attributes:
        volume_strain: relative volume change (e.g. 0.05 = +5 %).
        rhombohedral_strain: traceless strain δ (n nᵀ − I/3) along n = [111]; δ < 0 contracts
            along [111] and opens the pseudo-cubic angle above 90°.
        shear: symmetric random strain with zero trace, (3, 3).
        rattle_angstrom: standard deviation of Gaussian displacements (Å).
    """

    volume_strain: float = 0.0
    rhombohedral_strain: float = 0.0
    shear: tuple[tuple[float, ...], ...] = ((0.0,) * 3,) * 3
    rattle_angstrom: float = 0.0

    def strain_tensor(self) -> np.ndarray:
        linear = (1.0 + self.volume_strain) ** (1.0 / 3.0) - 1.0
        rhombo = self.rhombohedral_strain * (np.outer(_UNIT_111, _UNIT_111) - np.eye(3) / 3.0)
        return linear * np.eye(3) + rhombo + np.array(self.shear)


def distort(atoms: Atoms, distortion: Distortion, rng: np.random.Generator) -> Atoms:
    """Strain the cell (cubic frame) and rattle the atoms of a copy of ``atoms``."""
    out = atoms.copy()
    deformation = np.eye(3) + distortion.strain_tensor()
    out.set_cell(out.cell.array @ deformation.T, scale_atoms=True)
    if distortion.rattle_angstrom > 0:
        out.positions += rng.normal(scale=distortion.rattle_angstrom, size=out.positions.shape)
    return out


def imperfect_guess(atoms: Atoms, rng: np.random.Generator, spread: float = 0.4) -> None:
    """Scale each nonzero initial moment by a random factor in [1 − spread, 1 + spread]."""
    moments = atoms.get_initial_magnetic_moments()
    atoms.set_initial_magnetic_moments(moments * rng.uniform(1 - spread, 1 + spread, len(atoms)))


def _tag(
    atoms: Atoms, structure_id: str, material: str, cell: str, ordering: str, distortion: Distortion
) -> Atoms:
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


def yardstick_structures(material: str) -> list[Atoms]:
    """Undistorted cells for the DFT yardsticks of ``material``.

    FM, AFM-I and AFM-II at the reference lattice constant (FM in both 4-atom cells, which
    measures how well energies agree across cells), and FM and AFM-II under the rhombohedral
    strains :data:`RHOMBOHEDRAL_STRAINS` in the AFM-II cell. Moments are the nominal guesses.
    """
    frames = []
    rng = np.random.default_rng(0)
    cases = [("afm1-4", "AFM-I", 0.0), ("afm1-4", "FM", 0.0)]
    cases += [("afm2-4", o, d) for d in RHOMBOHEDRAL_STRAINS for o in ("FM", "AFM-II")]
    for cell, ordering, delta in cases:
        distortion = Distortion(rhombohedral_strain=delta)
        atoms = distort(rocksalt_ordered(material, ordering, CELLS[cell]), distortion, rng)
        sid = f"{material}-yardstick-{cell}-{ordering}-rh{delta:+.3f}"
        frames.append(_tag(atoms, sid, material, cell, ordering, distortion))
        frames[-1].info["yardstick"] = True
    return frames


def random_distortion(rng: np.random.Generator) -> Distortion:
    """A random volume strain (±5 %), often a shear or [111] strain, usually a rattle."""
    shear = np.zeros((3, 3))
    if rng.random() < 0.5:
        shear = rng.normal(scale=0.015, size=(3, 3))
        shear = 0.5 * (shear + shear.T)
        shear -= np.trace(shear) / 3.0 * np.eye(3)
    return Distortion(
        volume_strain=float(rng.uniform(-0.05, 0.05)),
        rhombohedral_strain=float(rng.uniform(-0.03, 0.03)) if rng.random() < 0.4 else 0.0,
        shear=tuple(tuple(float(x) for x in row) for row in shear),
        rattle_angstrom=float(rng.uniform(0.02, 0.15)) if rng.random() < 0.85 else 0.0,
    )


def training_pool(material: str, seed: int = 0) -> list[Atoms]:
    """The training pool of ``material`` following :data:`POOL_RECIPE`, in recipe order."""
    rng = np.random.default_rng([seed, sum(map(ord, material))])
    frames = []
    for cell, ordering, count in POOL_RECIPE:
        matrix = CELLS[cell]
        for index in range(count):
            if ordering == RANDOM:
                n_metals = int(round(abs(np.linalg.det(matrix))))
                signs = rng.choice([-1, 1], size=n_metals)
                signs *= signs[0]  # an ordering and its global flip are the same state
                ideal = rocksalt_ordered(material, signs, matrix)
            else:
                assert ordering_fits_cell(ordering, matrix), (cell, ordering)
                ideal = rocksalt_ordered(material, ordering, matrix)
            distortion = random_distortion(rng)
            atoms = distort(ideal, distortion, rng)
            imperfect_guess(atoms, rng)
            sid = f"{material}-{cell}-{ordering}-{index:03d}"
            frames.append(_tag(atoms, sid, material, cell, ordering, distortion))
    return frames


def ordering_partners(material: str, pool: list[Atoms], seed: int = 0) -> dict[str, Atoms]:
    """Partners of the first frames of each :data:`PARTNER_RECIPE` group, by source id.

    ``pool`` is :func:`training_pool` of ``material`` (recipe order). A partner keeps its
    source's cell and positions, gets the ideal moments of its own ordering (in the same atom
    order, as both come from the same supercell) with a fresh imperfect guess, and records
    ``partner_of`` so that the split keeps the pair together.
    """
    rng = np.random.default_rng([seed, sum(map(ord, material)), 1])
    partners = {}
    for cell, source_ordering, ordering, count in PARTNER_RECIPE:
        sources = [
            a for a in pool if a.info["cell_name"] == cell and a.info["ordering"] == source_ordering
        ]
        for source in sources[:count]:
            partner = source.copy()
            ideal = rocksalt_ordered(material, ordering, CELLS[cell])
            partner.set_initial_magnetic_moments(ideal.get_initial_magnetic_moments())
            imperfect_guess(partner, rng)
            source_id = source.info["structure_id"]
            partner.info.update(
                structure_id=f"{source_id}-as-{ordering}", ordering=ordering, partner_of=source_id
            )
            partners[source_id] = partner
    return partners


def reference_structures(materials: tuple[str, ...] = ("MnO", "NiO"), seed: int = 0) -> list[Atoms]:
    """Yardsticks first, then the training pools of all materials interleaved in random order,
    each ordering partner (:func:`ordering_partners`) right after its source, and last the
    frames of :data:`HELD_OUT_ORDERINGS` and :data:`HELD_OUT_CELLS` (in the same order).

    Labelling in this order means that wherever the labelling stops, what is done is balanced
    across materials, cells and orderings, and DFT time went to trainable frames first.
    """
    for material in materials:
        if material not in ROCKSALT_LATTICE_CONSTANTS:
            raise ValueError(f"no rocksalt reference for {material!r}")
    yardsticks = [a for m in materials for a in yardstick_structures(m)]
    pools = {m: training_pool(m, seed) for m in materials}
    pool = [a for m in materials for a in pools[m]]
    partners = {}
    for material in materials:
        partners.update(ordering_partners(material, pools[material], seed))
    interleaved = []
    for index in np.random.default_rng(seed).permutation(len(pool)):
        interleaved.append(pool[index])
        if pool[index].info["structure_id"] in partners:
            interleaved.append(partners[pool[index].info["structure_id"]])
    held_out = [a for a in interleaved if _held_out(a)]
    return yardsticks + [a for a in interleaved if not _held_out(a)] + held_out


def _held_out(atoms: Atoms) -> bool:
    """Whether the default split keeps this pool frame out of training whole."""
    return atoms.info["ordering"] in HELD_OUT_ORDERINGS or atoms.info["cell_name"] in HELD_OUT_CELLS
