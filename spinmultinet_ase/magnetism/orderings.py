"""Collinear magnetic orderings: named rocksalt ones and a symmetry-aware enumerator.

The enumerator lists every assignment of up/down to the magnetic atoms of a supercell, then
keeps one representative per class of assignments related by a space-group operation of the
(non-magnetic) supercell or by the global flip, which is the same state by time reversal.
"""

from __future__ import annotations

import itertools

import numpy as np
import spglib
from ase import Atoms
from ase.build import make_supercell

from spinmultinet_ase.data.graph import require_periodic
from spinmultinet_ase.magnetism.rocksalt import (
    DEFAULT_MOMENT_MAGNITUDES,
    ORDERINGS,
    rocksalt_ordered,
)

MAX_ENUMERATED_SITES = 20


def named_rocksalt_orderings(
    formula: str,
    orderings: tuple[str, ...] = tuple(ORDERINGS),
    a: float | None = None,
    magnitudes: dict[str, float] | None = None,
) -> dict[str, Atoms]:
    """The named orderings (FM, AFM-I, AFM-II, AFM-III) of a rocksalt oxide, each in its cell."""
    return {name: rocksalt_ordered(formula, name, a=a, magnitudes=magnitudes) for name in orderings}


def magnetic_sites(atoms: Atoms, magnitudes: dict[str, float]) -> np.ndarray:
    """Indices of atoms whose element has a nonzero moment magnitude."""
    symbols = atoms.get_chemical_symbols()
    sites = np.array([i for i, s in enumerate(symbols) if magnitudes.get(s, 0.0) > 0], dtype=int)
    if sites.size == 0:
        known = ", ".join(f"{k}={v}" for k, v in magnitudes.items())
        raise ValueError(
            f"no magnetic atoms in {atoms.get_chemical_formula()} (moment magnitudes: {known}); "
            "pass magnitudes for its magnetic elements"
        )
    return sites


def site_permutations(atoms: Atoms, sites: np.ndarray, symprec: float = 1e-4) -> np.ndarray:
    """How each space-group operation of ``atoms`` permutes ``sites``: (n_ops, n_sites)."""
    cell = (atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers)
    symmetry = spglib.get_symmetry(cell, symprec=symprec)
    if symmetry is None:
        raise ValueError(
            f"spglib found no symmetry for {atoms.get_chemical_formula()}: check the structure "
            "for overlapping atoms"
        )
    frac = atoms.get_scaled_positions()[sites]
    permutations = []
    for rotation, translation in zip(symmetry["rotations"], symmetry["translations"], strict=True):
        moved = frac @ rotation.T + translation
        delta = moved[:, None, :] - frac[None, :, :]
        delta -= np.rint(delta)
        match = np.all(np.abs(delta) < symprec * 10, axis=-1)
        permutations.append(np.argmax(match, axis=1))
    return np.unique(np.array(permutations), axis=0)


def enumerate_collinear_orderings(
    atoms: Atoms,
    supercell: np.ndarray | None = None,
    magnitudes: dict[str, float] | None = None,
    symprec: float = 1e-4,
) -> list[Atoms]:
    """Symmetry-distinct collinear orderings of the magnetic atoms in a supercell of ``atoms``.

    Args:
        atoms: the structure (its own moments are ignored).
        supercell: integer 3x3 supercell matrix (default: the cell itself).
        magnitudes: moment magnitude (μB) per element; defaults to
            :data:`DEFAULT_MOMENT_MAGNITUDES`, overridden entry by entry.
        symprec: spglib tolerance (Å).

    Returns:
        One ``Atoms`` per distinct ordering, with ``initial_magmoms`` set and
        ``info['ordering']`` the up/down string of the magnetic sites; FM first.
    """
    require_periodic(atoms, "enumerating orderings")
    magnitudes = {**DEFAULT_MOMENT_MAGNITUDES, **(magnitudes or {})}
    cell = make_supercell(atoms, np.asarray(supercell)) if supercell is not None else atoms.copy()
    sites = magnetic_sites(cell, magnitudes)
    if len(sites) > MAX_ENUMERATED_SITES:
        raise ValueError(
            f"{len(sites)} magnetic sites: too many to enumerate (limit {MAX_ENUMERATED_SITES}); "
            "use a smaller supercell"
        )
    permutations = site_permutations(cell, sites, symprec)
    # every pattern with the first site up (the global flip gives the rest)
    patterns = np.array(list(itertools.product([1, -1], repeat=len(sites) - 1)), dtype=np.int8)
    patterns = np.hstack([np.ones((len(patterns), 1), dtype=np.int8), patterns])
    seen: set[bytes] = set()
    found = []
    for pattern in patterns:
        if pattern.tobytes() in seen:
            continue
        images = pattern[permutations]
        images = np.vstack([images, -images])
        seen.update(image.tobytes() for image in images)
        found.append(pattern)
    symbols = cell.get_chemical_symbols()
    result = []
    for pattern in found:
        moments = np.zeros(len(cell))
        moments[sites] = pattern * np.array([magnitudes[symbols[i]] for i in sites])
        ordered = cell.copy()
        ordered.set_initial_magnetic_moments(moments)
        ordered.info["ordering"] = "".join("u" if s > 0 else "d" for s in pattern)
        result.append(ordered)
    return result
