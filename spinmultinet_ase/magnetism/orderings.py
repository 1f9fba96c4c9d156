"""Collinear magnetic orderings of any crystal: patterns and a symmetry-aware enumerator.

The enumerator lists every assignment of up/down to the magnetic atoms of a supercell, then
keeps one representative per class of assignments related by a space-group operation of the
(non-magnetic) supercell or by the global flip, which is the same state by time reversal.
"""

from __future__ import annotations

import itertools

import numpy as np
from ase import Atoms
from ase.build import make_supercell

from spinmultinet_ase.data.graph import require_periodic
from spinmultinet_ase.magnetism.sites import guessed_moments, magnetic_sites, site_types
from spinmultinet_ase.magnetism.spacegroup import symmetry_operations

MAX_ENUMERATED_SITES = 20


def site_permutations(atoms: Atoms, sites: np.ndarray, symprec: float = 1e-4) -> np.ndarray:
    """How each space-group operation of ``atoms`` permutes ``sites``: (n_ops, n_sites)."""
    cell = (atoms.cell.array, atoms.get_scaled_positions(), site_types(atoms))
    symmetry = symmetry_operations(cell, atoms.get_chemical_formula(), symprec)
    frac = atoms.get_scaled_positions()[sites]
    permutations = []
    for rotation, translation in zip(symmetry["rotations"], symmetry["translations"], strict=True):
        moved = frac @ rotation.T + translation
        delta = moved[:, None, :] - frac[None, :, :]
        delta -= np.rint(delta)
        match = np.all(np.abs(delta) < symprec * 10, axis=-1)
        permutations.append(np.argmax(match, axis=1))
    return np.unique(np.array(permutations), axis=0)


def magnetic_cell(
    atoms: Atoms,
    supercell: np.ndarray | None = None,
    magnitudes: dict[str, float] | None = None,
) -> Atoms:
    """A supercell of ``atoms`` with its initial moments (or guesses, :func:`guessed_moments`)."""
    require_periodic(atoms, "enumerating orderings")
    parent = atoms.copy()
    parent.set_initial_magnetic_moments(guessed_moments(atoms, magnitudes))
    magnetic_sites(parent)
    if supercell is None:
        return parent
    matrix = np.asarray(supercell)
    if matrix.shape != (3, 3) or not np.allclose(matrix, np.rint(matrix)):
        raise ValueError(f"a supercell is a 3x3 integer matrix, got {matrix.tolist()}")
    if round(np.linalg.det(matrix)) < 1:
        raise ValueError(f"supercell {matrix.tolist()} has determinant <= 0")
    return make_supercell(parent, np.rint(matrix).astype(int))


def with_pattern(cell: Atoms, pattern: str) -> Atoms:
    """``cell`` with the signs of its magnetic moments set by ``pattern`` (``'u'``/``'d'`` each).

    ``'FM'`` means all up. The pattern gives one letter per magnetic site, in index order.
    """
    sites = magnetic_sites(cell)
    letters = "u" * len(sites) if pattern == "FM" else pattern
    if len(letters) != len(sites) or set(letters) - {"u", "d"}:
        raise ValueError(
            f"ordering {pattern!r} does not fit this cell: it needs FM, a rocksalt name for a "
            f"rocksalt formula, or {len(sites)} letters u/d, one per magnetic site"
        )
    moments = cell.get_initial_magnetic_moments().copy()
    signs = np.where(np.array(list(letters)) == "u", 1.0, -1.0)
    moments[sites] = np.abs(moments[sites]) * signs
    ordered = cell.copy()
    ordered.set_initial_magnetic_moments(moments)
    ordered.info["ordering"] = letters
    return ordered


def enumerate_collinear_orderings(cell: Atoms, symprec: float = 1e-4) -> list[Atoms]:
    """Symmetry-distinct collinear orderings of the magnetic sites of ``cell``.

    Args:
        cell: the (super)cell, its nonzero initial moments marking the magnetic sites and
            their magnitudes (signs are ignored); see :func:`magnetic_cell`.
        symprec: spglib tolerance (Å).

    Returns:
        One ``Atoms`` per distinct ordering, with ``initial_magmoms`` set and
        ``info['ordering']`` the up/down string of the magnetic sites; FM first.
    """
    require_periodic(cell, "enumerating orderings")
    sites = magnetic_sites(cell)
    if len(sites) > MAX_ENUMERATED_SITES:
        raise ValueError(
            f"{len(sites)} magnetic sites: too many to enumerate (limit {MAX_ENUMERATED_SITES}); "
            "use a smaller supercell or name the orderings"
        )
    unsigned = cell.copy()
    unsigned.set_initial_magnetic_moments(np.abs(cell.get_initial_magnetic_moments()))
    permutations = site_permutations(unsigned, sites, symprec)
    # every pattern with the first site up (the global flip gives the rest)
    patterns = np.array(list(itertools.product([1, -1], repeat=len(sites) - 1)), dtype=np.int8)
    patterns = np.hstack([np.ones((len(patterns), 1), dtype=np.int8), patterns])
    seen: set[bytes] = set()
    found = []
    for pattern in patterns:
        if pattern.tobytes() in seen:
            continue
        seen.update(image.tobytes() for image in _images(pattern, permutations))
        found.append(_letters(pattern))
    return [with_pattern(unsigned, pattern) for pattern in found]


def _images(signs: np.ndarray, permutations: np.ndarray) -> np.ndarray:
    """The sign patterns the symmetry ``permutations`` and the global flip map ``signs`` to."""
    images = signs[permutations]
    return np.vstack([images, -images])


def _letters(signs: np.ndarray) -> str:
    return "".join("u" if s > 0 else "d" for s in signs)


def pattern_of(ordered: Atoms) -> str:
    """The up/down pattern of the collinear moments of the magnetic sites, in index order."""
    return _letters(ordered.get_initial_magnetic_moments()[magnetic_sites(ordered)])


def equivalent_patterns(ordered: Atoms, symprec: float = 1e-4) -> set[str]:
    """The patterns (:func:`pattern_of`) of the orderings of ``ordered``'s cell that are its
    own ordering: its images under the space group of the non-magnetic cell and their global
    flips, as :func:`enumerate_collinear_orderings` counts them."""
    sites = magnetic_sites(ordered)
    unsigned = ordered.copy()
    unsigned.set_initial_magnetic_moments(np.abs(ordered.get_initial_magnetic_moments()))
    signs = np.sign(ordered.get_initial_magnetic_moments()[sites]).astype(np.int8)
    images = _images(signs, site_permutations(unsigned, sites, symprec))
    return {_letters(image) for image in images}


def repeats_with(ordered: Atoms, lattice: np.ndarray, tolerance: float = 1e-3) -> bool:
    """Whether the ordering of ``ordered`` is periodic with the finer ``lattice`` (rows: lattice
    vectors, Å, in the frame of ``ordered``), e.g. that of the cell it is a supercell of: then
    every moment equals those of its images under the lattice's translations.
    """
    fractional = ordered.positions @ np.linalg.inv(lattice)
    fractional -= np.floor(fractional + tolerance)
    moments = ordered.get_initial_magnetic_moments()
    sites: dict[tuple[int, ...], float] = {}
    for point, moment in zip(fractional, moments, strict=True):
        key = tuple(np.rint(point / tolerance).astype(int))
        if np.sign(sites.setdefault(key, moment)) != np.sign(moment):
            return False
    return True
