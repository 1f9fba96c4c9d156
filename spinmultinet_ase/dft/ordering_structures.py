"""Ordering diversity for rocksalt oxides: enumerated orderings of many supercell shapes.

An additive pool next to the reference structures (``dft/structures.py``): the ideal crystal
at the protocol lattice constant in every symmetry-distinct collinear ordering of several
supercell shapes of the 2-atom primitive cell, so that the model learns ordering energies on
orderings of every small period, and one whole shape, :data:`ORDERING_HELD_OUT_CELLS`, is kept
out of training to measure the error on orderings no training frame has (what a user's
``scan`` of that supercell meets).

* Training shapes (:data:`ORDERING_CELLS`): the three supercell shapes with 3 formula units
  and the seven with 4 (all superlattices of the fcc lattice of index 3 and 4 up to the cubic
  point group; the two of index 2 are the reference pool's AFM-I and AFM-II cells). Each
  holds FM, the anchor its other orderings are partners of (``info['partner_of']``: one
  geometry, so their energy differences are purely magnetic), and the orderings it is the
  smallest cell of (those of smaller cells, and the held-out ordering AFM-III, are left out).
* The held-out shape ``conv112-16``, the 1x1x2 conventional cell: all its orderings,
  partners of its FM frame, with nominal moments (as a scan sets them).
* Random orderings in a 24-atom cell, labelled last.

Moments: the nominal guess off by up to ±40 % per atom (training shapes and random cells).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from spinmultinet_ase.dft.distortions import Distortion, imperfect_guess, random_signs, tag
from spinmultinet_ase.dft.structures import (
    CELLS,
    HELD_OUT_CELLS,
    HELD_OUT_ORDERINGS,
    rocksalt_names,
)
from spinmultinet_ase.magnetism.orderings import enumerate_collinear_orderings
from spinmultinet_ase.magnetism.rocksalt import (
    ROCKSALT_LATTICE_CONSTANTS,
    has_smaller_period,
    named_ordering,
    rocksalt_formula_metal,
    rocksalt_ordered,
)

# Supercell matrices of the primitive cell, one per shape; the index-4 shapes ``cubic-8`` and
# ``afm3-8`` are those of the reference pool (``dft/structures.py``), under the same names.
ORDERING_CELLS: dict[str, np.ndarray] = {
    "idx3a-6": np.array([[1, 0, 0], [0, 1, 0], [0, 0, 3]]),
    "idx3b-6": np.array([[1, 0, 0], [0, 3, 0], [0, 1, 1]]),
    "idx3c-6": np.array([[1, 0, 0], [0, 3, 0], [0, 2, 1]]),
    "idx4a-8": np.array([[1, 0, 0], [0, 1, 0], [0, 0, 4]]),
    "idx4b-8": np.array([[1, 0, 0], [0, 2, 0], [0, 0, 2]]),
    "idx4c-8": np.array([[1, 0, 0], [0, 2, 0], [0, 1, 2]]),
    "idx4d-8": np.array([[1, 0, 0], [0, 4, 0], [0, 1, 1]]),
    "idx4e-8": np.array([[1, 0, 0], [0, 4, 0], [0, 3, 1]]),
    "cubic-8": CELLS["cubic-8"],
    "afm3-8": CELLS["afm3-8"],
    "conv112-16": np.array([[-1, 1, 1], [1, -1, 1], [2, 2, -2]]),
    "conv113-24": np.array([[-1, 1, 1], [1, -1, 1], [3, 3, -3]]),
}

NEW = "new"  # FM and the orderings this shape is the smallest cell of
ALL = "all"  # every enumerated ordering
RANDOM = "random"  # a random sign per metal

# (cell, which orderings, frames for RANDOM) per material, in labelling order.
ORDERING_POOL_RECIPE: tuple[tuple[str, str, int], ...] = (
    ("idx3a-6", NEW, 0),
    ("idx3b-6", NEW, 0),
    ("idx3c-6", NEW, 0),
    ("idx4a-8", NEW, 0),
    ("idx4b-8", NEW, 0),
    ("idx4c-8", NEW, 0),
    ("idx4d-8", NEW, 0),
    ("idx4e-8", NEW, 0),
    ("cubic-8", NEW, 0),
    ("afm3-8", NEW, 0),
    ("conv112-16", ALL, 0),
    ("conv113-24", RANDOM, 2),
)

# The shapes of this pool that the reference split keeps out of training whole.
ORDERING_HELD_OUT_CELLS: tuple[str, ...] = tuple(c for c in HELD_OUT_CELLS if c in ORDERING_CELLS)


def _name(ordered: Atoms, a: float) -> str:
    """``info['ordering']`` of an enumerated ordering: its name if it has one, else its
    up/down string of the metal sites."""
    return named_ordering(ordered, a) or ordered.info["ordering"]


def _orderings(material: str, cell: str, which: str, count: int, rng: np.random.Generator):
    """(ordering name, ideal ordered cell) of one recipe line."""
    a = ROCKSALT_LATTICE_CONSTANTS[material]
    matrix = ORDERING_CELLS[cell]
    if which == RANDOM:
        n_metals = int(round(abs(np.linalg.det(matrix))))
        return [
            (RANDOM, rocksalt_ordered(material, random_signs(rng, n_metals), matrix))
            for _ in range(count)
        ]
    found = []
    for ordered in enumerate_collinear_orderings(rocksalt_ordered(material, "FM", matrix)):
        name = _name(ordered, a)
        new = not has_smaller_period(ordered, a) and name not in HELD_OUT_ORDERINGS
        if which == ALL or name == "FM" or new:
            found.append((name, ordered))
    return found


def ordering_pool(material: str, seed: int = 0) -> list[list[Atoms]]:
    """The ordering pool of a rocksalt ``material``, one list per recipe line.

    Every frame is the ideal crystal; in a line of enumerated orderings the first is FM and
    the others are its partners (``info['partner_of']``).
    """
    rocksalt_formula_metal(material)
    rng = np.random.default_rng([seed, sum(map(ord, material)), 2])
    groups = []
    for cell, which, count in ORDERING_POOL_RECIPE:
        frames = []
        for index, (name, ideal) in enumerate(_orderings(material, cell, which, count, rng)):
            atoms = ideal.copy()
            if cell not in ORDERING_HELD_OUT_CELLS:
                imperfect_guess(atoms, rng)
            suffix = f"{index:03d}" if which == RANDOM else ideal.info["ordering"]
            tag(atoms, f"{material}-orderings-{cell}-{suffix}", material, cell, name, Distortion())
            if which != RANDOM and frames:
                atoms.info["partner_of"] = frames[0].info["structure_id"]
            frames.append(atoms)
        groups.append(frames)
    return groups


def ordering_structures(materials: tuple[str, ...] = ("MnO", "NiO"), seed: int = 0) -> list[Atoms]:
    """The ordering pools of ``materials`` in labelling order: recipe line by recipe line
    (smallest shapes first, then the held-out shape, then the random large cells), the
    materials in turn within each line, so that wherever labelling stops every material has
    the same shapes done."""
    pools = [ordering_pool(m, seed) for m in rocksalt_names(materials, "the ordering pool")]
    return [atoms for line in zip(*pools, strict=True) for group in line for atoms in group]
