"""Classes of collinear orderings of a supercell, without enumerating every pattern.

An ordering is a sign (+1/−1) per magnetic site of a supercell of a parent cell. Two orderings
are the same state when a symmetry operation of the (non-magnetic) supercell maps one onto the
other, possibly with the global flip (time reversal). The operations are the parent's space
group operations that keep the superlattice, as site permutations (:class:`SupercellSymmetry`:
spglib's operations of the supercell, which include the translations of the parent lattice).
An ordering that repeats under a translation of the parent lattice that is not one of the
supercell's has a smaller period: a smaller supercell holds it.

:func:`random_distinct_orderings` draws orderings at random and keeps one per class, which
works for cells far too large to enumerate; :func:`count_distinct_orderings` enumerates every
pattern of a small cell to count the classes exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from spinmultinet_ase.magnetism.orderings import site_permutations
from spinmultinet_ase.magnetism.sites import magnetic_sites

MAX_COUNTED_SITES = 20


def _matching(moved: np.ndarray, frac: np.ndarray, tolerance: float) -> np.ndarray:
    """For each fractional point of ``moved``, the index of the point of ``frac`` it is an
    image of (modulo the lattice); raise if one has none."""
    delta = moved[:, None, :] - frac[None, :, :]
    delta -= np.rint(delta)
    match = np.all(np.abs(delta) < tolerance, axis=-1)
    if not np.all(match.sum(axis=1) == 1):
        raise ValueError("a translation does not map the sites onto themselves")
    return np.argmax(match, axis=1)


def translation_permutations(
    cell: Atoms, parent_lattice: np.ndarray, tolerance: float = 1e-4
) -> np.ndarray:
    """How each translation of the parent lattice, modulo the supercell's, permutes the
    magnetic sites of ``cell``: ``(index, n_sites)``, the identity first.

    Args:
        cell: a supercell of the parent, in the parent's Cartesian frame, its nonzero initial
            moments marking the magnetic sites.
        parent_lattice: the parent's lattice vectors (rows, Å).
        tolerance: in fractional coordinates of ``cell``.

    Raises:
        ValueError: the number of translations found is not the volume ratio (``cell`` is not
            a supercell of ``parent_lattice`` in this frame).
    """
    sites = magnetic_sites(cell)
    shifts = cell.positions - cell.positions[0]
    in_parent = shifts @ np.linalg.inv(parent_lattice)
    is_lattice = np.all(np.abs(in_parent - np.rint(in_parent)) < 1e-3, axis=1)
    inverse = np.linalg.inv(cell.cell.array)
    frac = cell.positions[sites] @ inverse
    permutations = [
        _matching(frac + shift @ inverse, frac, tolerance) for shift in shifts[is_lattice]
    ]
    index = round(abs(np.linalg.det(cell.cell.array) / np.linalg.det(parent_lattice)))
    found = np.unique(np.array(permutations), axis=0)
    if len(found) != index:
        raise ValueError(
            f"found {len(found)} translations of the parent lattice in a supercell of index "
            f"{index}: the cell is not a supercell of that lattice in this frame"
        )
    identity = np.arange(len(sites))
    return np.array([identity, *[p for p in found if not np.array_equal(p, identity)]])


@dataclass(frozen=True)
class SupercellSymmetry:
    """The site permutations of a supercell's symmetry operations.

    Attributes:
        operations: ``(n_ops, n_sites)``: every space-group operation of the supercell
            (spglib), translations of the parent lattice included.
        translations: ``(index, n_sites)``: the translations of the parent lattice modulo the
            supercell's, the identity first.
    """

    operations: np.ndarray
    translations: np.ndarray

    @classmethod
    def of(cls, cell: Atoms, parent_lattice: np.ndarray) -> SupercellSymmetry:
        """The symmetry of ``cell``, a supercell of ``parent_lattice`` (rows, Å) in the same
        Cartesian frame; its nonzero initial moments mark the magnetic sites."""
        unsigned = cell.copy()
        unsigned.set_initial_magnetic_moments(np.abs(cell.get_initial_magnetic_moments()))
        sites = magnetic_sites(unsigned)
        return cls(
            site_permutations(unsigned, sites), translation_permutations(cell, parent_lattice)
        )

    @property
    def n_sites(self) -> int:
        return self.operations.shape[1]

    def images(self, signs: np.ndarray) -> np.ndarray:
        """Every image of ``signs`` (±1 per site) under the operations and the flip, each as a
        binary number (site 0 the highest bit, up = 1)."""
        images = np.asarray(signs)[self.operations] > 0
        images = np.vstack([images, ~images])
        weights = 1 << np.arange(self.n_sites - 1, -1, -1, dtype=np.int64)
        return images.astype(np.int64) @ weights

    def key(self, signs: np.ndarray) -> int:
        """The class of ``signs`` as an integer: the largest of its :meth:`images`, which is
        also the class's canonical pattern (:meth:`pattern`)."""
        return int(self.images(signs).max())

    def pattern(self, key: int) -> np.ndarray:
        """The signs (±1 per site) of a class's canonical pattern; site 0 is up."""
        bits = (key >> np.arange(self.n_sites - 1, -1, -1)) & 1
        return np.where(bits == 1, 1, -1)

    def has_smaller_period(self, signs: np.ndarray) -> bool:
        """Whether ``signs`` repeats under a translation of the parent lattice that is not one
        of the supercell's."""
        signs = np.asarray(signs)
        return any(np.array_equal(signs[p], signs) for p in self.translations[1:])


def random_distinct_orderings(
    symmetry: SupercellSymmetry, count: int, rng: np.random.Generator, max_draws: int
) -> list[np.ndarray]:
    """Up to ``count`` orderings of distinct classes none of which has a smaller period, each
    as its canonical pattern, in the order first drawn.

    Draws a random sign per site (site 0 up) until ``count`` are kept or ``max_draws`` patterns
    were drawn; a class is thus drawn with a chance proportional to its number of patterns.
    Balanced and unbalanced orderings are kept alike.
    """
    kept: dict[int, np.ndarray] = {}
    for _ in range(max_draws):
        if len(kept) == count:
            break
        signs = rng.choice([-1, 1], size=symmetry.n_sites)
        signs[0] = 1
        if symmetry.has_smaller_period(signs):
            continue
        key = symmetry.key(signs)
        if key not in kept:
            kept[key] = symmetry.pattern(key)
    return list(kept.values())


def count_distinct_orderings(symmetry: SupercellSymmetry) -> int:
    """The number of classes of orderings with no smaller period, by enumerating every pattern
    (up to :data:`MAX_COUNTED_SITES` sites)."""
    if symmetry.n_sites > MAX_COUNTED_SITES:
        raise ValueError(
            f"{symmetry.n_sites} sites: too many to enumerate (limit {MAX_COUNTED_SITES})"
        )
    seen: set[int] = set()
    count = 0
    n = symmetry.n_sites
    for value in range(1 << (n - 1), 1 << n):  # every pattern with site 0 up
        if value in seen:
            continue
        signs = symmetry.pattern(value)
        seen.update(symmetry.images(signs).tolist())
        count += not symmetry.has_smaller_period(signs)
    return count
