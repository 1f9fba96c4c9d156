"""Named rocksalt orderings have the intended sign patterns (PHYSICS.md Heisenberg counts)."""

from __future__ import annotations

import numpy as np
import pytest

from spinmultinet_ase.magnetism.rocksalt import (
    ROCKSALT_LATTICE_CONSTANTS,
    minimal_magnetic_cell,
    rocksalt_ordered,
)
from spinmultinet_ase.testing.orderings import EXPECTED_PARALLEL, parallel_neighbour_counts

FORMULA_UNITS = {"FM": 1, "AFM-I": 2, "AFM-II": 2, "AFM-III": 4}


@pytest.mark.parametrize("ordering", list(EXPECTED_PARALLEL))
def test_neighbour_sign_patterns(ordering):
    a = ROCKSALT_LATTICE_CONSTANTS["NiO"]
    atoms = rocksalt_ordered("NiO", ordering)
    assert len(atoms) == 2 * FORMULA_UNITS[ordering]
    assert set(parallel_neighbour_counts(atoms, a).values()) == {EXPECTED_PARALLEL[ordering]}


def test_afm2_next_nearest_are_antiparallel_in_large_cell():
    atoms = rocksalt_ordered("MnO", "AFM-II", 2 * np.eye(3, dtype=int))
    counts = parallel_neighbour_counts(atoms, ROCKSALT_LATTICE_CONSTANTS["MnO"])
    assert len(counts) == 8 and {next_nearest for _, next_nearest in counts.values()} == {0}


def test_ordering_that_does_not_fit_the_cell():
    with pytest.raises(ValueError, match="not periodic"):
        rocksalt_ordered("NiO", "AFM-II", np.eye(3, dtype=int))


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown rocksalt oxide"):
        rocksalt_ordered("CuO", "FM")
    with pytest.raises(ValueError, match="unknown ordering"):
        minimal_magnetic_cell("AFM-IV")
