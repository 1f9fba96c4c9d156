"""Candidates for active learning: random collinear orderings in larger supercells.

For a material by name, the ideal crystal at the protocol geometry in many random orderings of
several larger supercell shapes, for ``spinmultinet active-learn`` to choose from by the
committee's disagreement (docs/ordering_data.md). Per shape (:data:`ROCKSALT_RANDOM_CELLS`,
:data:`CORUNDUM_RANDOM_CELLS`; the held-out shapes of the reference split are not among
them):

* one FM frame, the anchor: ``info['ordering']`` as the other pools name FM;
* up to ``count`` orderings of distinct classes under the supercell's symmetry (translations
  of the parent lattice, the point operations that keep the superlattice, and the global flip),
  none of which a smaller cell holds (:mod:`~spinmultinet_ase.magnetism.ordering_classes`),
  each the class's canonical up/down pattern (``info['ordering']``, and in its
  ``structure_id``, so an id names the class whatever the seed), a partner of the shape's FM
  frame (``info['partner_of']``): the same cell and positions, only the moments differ.

Moments are the nominal guesses (as a scan sets them); there is no distortion.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from spinmultinet_ase.dft.corundum_structures import CORUNDUM_HELD_OUT_CELLS
from spinmultinet_ase.dft.distortions import Distortion, tag
from spinmultinet_ase.magnetism.corundum import CORUNDUM_PARAMETERS, corundum_cell
from spinmultinet_ase.magnetism.ordering_classes import (
    SupercellSymmetry,
    random_distinct_orderings,
)
from spinmultinet_ase.magnetism.orderings import with_pattern
from spinmultinet_ase.magnetism.rocksalt import (
    ROCKSALT_LATTICE_CONSTANTS,
    named_ordering,
    rocksalt_ordered,
    rocksalt_primitive,
)
from spinmultinet_ase.magnetism.sites import magnetic_sites

# Supercell matrices of the 2-atom primitive cell: the most compact shapes (shortest longest
# vector relative to the shortest) of the fcc superlattices of index 8, 12 and 16 that are not
# held out, and the 1x1x3 conventional cell of the ordering pool.
ROCKSALT_RANDOM_CELLS: dict[str, np.ndarray] = {
    "idx8a-16": np.array([[2, 0, 0], [0, 2, 0], [0, 1, 2]]),
    "idx8b-16": np.array([[2, 0, 0], [1, 2, 0], [0, 1, 2]]),
    "idx8c-16": np.array([[2, 0, 0], [1, 2, 0], [1, 0, 2]]),
    "idx12a-24": np.array([[2, 0, 0], [0, 3, 0], [0, 1, 2]]),
    "idx12b-24": np.array([[2, 0, 0], [0, 3, 0], [1, 1, 2]]),
    "conv113-24": np.array([[-1, 1, 1], [1, -1, 1], [3, 3, -3]]),
    "bcc-32": np.array([[4, 0, 0], [0, 4, 0], [1, 1, 1]]),
    "idx16b-32": np.array([[4, 0, 0], [1, 4, 0], [1, 1, 1]]),
}
# Names of ``CORUNDUM_CELLS``: the supercells of the 10-atom cell, less the held-out one.
CORUNDUM_RANDOM_CELLS: tuple[str, ...] = tuple(
    c for c in ("rh211-20", "rh2x-20", "hex-30") if c not in CORUNDUM_HELD_OUT_CELLS
)

# Random draws per wanted ordering before a shape with fewer classes is given up on.
DRAWS_PER_ORDERING = 50


def _ferromagnetic_cells(material: str) -> dict[str, tuple[Atoms, SupercellSymmetry]]:
    """The ideal FM cell of each shape, tagged (Niggli-reduced, atom order kept), and its
    symmetry (found in the parent's frame, before the reduction turns the cell), from the
    material's family tables."""
    if material in ROCKSALT_LATTICE_CONSTANTS:
        a = ROCKSALT_LATTICE_CONSTANTS[material]
        parent = rocksalt_primitive(material).cell.array
        cells = {c: rocksalt_ordered(material, "FM", m) for c, m in ROCKSALT_RANDOM_CELLS.items()}
        names = {c: named_ordering(atoms, a) for c, atoms in cells.items()}
    elif material in CORUNDUM_PARAMETERS:
        parent = corundum_cell(material).cell.array
        cells = {c: with_pattern(corundum_cell(material, c), "FM") for c in CORUNDUM_RANDOM_CELLS}
        names = {c: atoms.info["ordering"] for c, atoms in cells.items()}
    else:
        known = ", ".join(sorted([*ROCKSALT_LATTICE_CONSTANTS, *CORUNDUM_PARAMETERS]))
        raise ValueError(f"no random-ordering candidates for {material!r}; known: {known}")
    found = {}
    for cell, atoms in cells.items():
        symmetry = SupercellSymmetry.of(atoms, parent)
        tag(atoms, f"{material}-random-{cell}-FM", material, cell, names[cell], Distortion())
        found[cell] = (atoms, symmetry)
    return found


def _pattern_name(signs: np.ndarray) -> str:
    return "".join("u" if s > 0 else "d" for s in signs)


def random_ordering_candidates(material: str, count: int, seed: int = 0) -> list[Atoms]:
    """The candidates of ``material``: per shape its FM frame, then up to ``count`` distinct
    random orderings, partners of it (fewer where the shape has fewer classes).

    Args:
        material: a rocksalt (MnO, FeO, CoO, NiO) or corundum (Cr2O3, Fe2O3) oxide.
        count: orderings wanted per shape.
        seed: the random draws (with the material's name).

    Raises:
        ValueError: an unknown material or a count below 1.
    """
    if count < 1:
        raise ValueError(f"the number of random orderings per shape must be >= 1, got {count}")
    rng = np.random.default_rng([seed, sum(map(ord, material)), 4])
    frames = []
    for cell, (ferromagnet, symmetry) in _ferromagnetic_cells(material).items():
        sites = magnetic_sites(ferromagnet)
        frames.append(ferromagnet)
        for signs in random_distinct_orderings(symmetry, count, rng, DRAWS_PER_ORDERING * count):
            atoms = ferromagnet.copy()
            moments = atoms.get_initial_magnetic_moments()
            moments[sites] = np.abs(moments[sites]) * signs
            atoms.set_initial_magnetic_moments(moments)
            name = _pattern_name(signs)
            atoms.info.update(
                structure_id=f"{material}-random-{cell}-{name}",
                ordering=name,
                partner_of=ferromagnet.info["structure_id"],
            )
            frames.append(atoms)
    return frames


def random_ordering_structures(
    materials: tuple[str, ...], count: int, seed: int = 0
) -> list[Atoms]:
    """:func:`random_ordering_candidates` of each of ``materials`` in turn."""
    return [atoms for m in materials for atoms in random_ordering_candidates(m, count, seed)]
