"""The vesin neighbour list against ASE's own, for awkward cells."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.neighborlist import neighbor_list as ase_neighbor_list

from spinmultinet_ase.data.neighbors import neighbor_list


def _pairs(i, j, shifts):
    return sorted(zip(i.tolist(), j.tolist(), map(tuple, shifts.tolist()), strict=True))


def _slab():
    atoms = bulk("NiO", "rocksalt", a=4.2, cubic=True).repeat((2, 1, 2))
    atoms.pbc = [True, False, True]
    atoms.center(vacuum=4.0, axis=1)
    return atoms


@pytest.mark.parametrize(
    "atoms",
    [
        bulk("NiO", "rocksalt", a=4.2),  # cell much smaller than the cutoff
        bulk("NiO", "rocksalt", a=4.2, cubic=True),
        _slab(),  # mixed periodicity
        molecule("CH3CH2OH"),  # no periodicity
    ],
    ids=["primitive", "cubic", "slab", "molecule"],
)
def test_same_pairs_as_ase(atoms):
    atoms = atoms.copy()
    atoms.rattle(0.05, seed=1)
    cutoff = 5.0
    edge_index, shifts = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
    i, j, s = ase_neighbor_list("ijS", atoms, cutoff)
    assert len(i) > 0
    assert _pairs(edge_index[0], edge_index[1], shifts) == _pairs(i, j, s)
    vectors = (
        atoms.positions[edge_index[1]] - atoms.positions[edge_index[0]] + shifts @ atoms.cell.array
    )
    assert np.linalg.norm(vectors, axis=1).max() < cutoff
