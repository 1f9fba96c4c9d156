"""Named rocksalt orderings have the intended sign patterns (PHYSICS.md Heisenberg counts)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.neighborlist import neighbor_list

from spinmultinet_ase.magnetism.rocksalt import (
    ROCKSALT_LATTICE_CONSTANTS,
    minimal_magnetic_cell,
    rocksalt_ordered,
)

# ordering: (parallel of the 12 nearest metals, parallel of the 6 next-nearest metals)
EXPECTED_PARALLEL = {"FM": (12, 6), "AFM-I": (4, 6), "AFM-II": (6, 0), "AFM-III": (4, 4)}
FORMULA_UNITS = {"FM": 1, "AFM-I": 2, "AFM-II": 2, "AFM-III": 4}


def _parallel_counts(atoms, a):
    """Per metal: how many of its nearest and next-nearest metal neighbours are parallel."""
    moments = atoms.get_initial_magnetic_moments()
    i, j, d = neighbor_list("ijd", atoms, 1.05 * a)
    metals = moments != 0
    keep = metals[i] & metals[j]
    i, j, d = i[keep], j[keep], d[keep]
    same = np.sign(moments[i]) == np.sign(moments[j])
    nearest = np.isclose(d, a / np.sqrt(2), atol=1e-6)
    next_nearest = np.isclose(d, a, atol=1e-6)
    counts = {}
    for site in np.flatnonzero(metals):
        counts[site] = (
            int(np.sum(same & nearest & (i == site))),
            int(np.sum(same & next_nearest & (i == site))),
            int(np.sum(nearest & (i == site))),
            int(np.sum(next_nearest & (i == site))),
        )
    return counts


@pytest.mark.parametrize("ordering", list(EXPECTED_PARALLEL))
def test_neighbour_sign_patterns(ordering):
    a = ROCKSALT_LATTICE_CONSTANTS["NiO"]
    atoms = rocksalt_ordered("NiO", ordering)
    assert len(atoms) == 2 * FORMULA_UNITS[ordering]
    for counts in _parallel_counts(atoms, a).values():
        assert counts[2:] == (12, 6)
        assert counts[:2] == EXPECTED_PARALLEL[ordering]


def test_afm2_next_nearest_are_antiparallel_in_large_cell():
    atoms = rocksalt_ordered("MnO", "AFM-II", 2 * np.eye(3, dtype=int))
    for counts in _parallel_counts(atoms, ROCKSALT_LATTICE_CONSTANTS["MnO"]).values():
        assert counts[1] == 0 and counts[3] == 6


def test_ordering_that_does_not_fit_the_cell():
    with pytest.raises(ValueError, match="not periodic"):
        rocksalt_ordered("NiO", "AFM-II", np.eye(3, dtype=int))


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown rocksalt oxide"):
        rocksalt_ordered("CuO", "FM")
    with pytest.raises(ValueError, match="unknown ordering"):
        minimal_magnetic_cell("AFM-IV")
