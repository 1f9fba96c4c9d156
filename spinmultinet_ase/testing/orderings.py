"""An independent check of collinear orderings: signs of each metal's neighbour shells."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

# ordering: (parallel of the 12 nearest metals, parallel of the 6 next-nearest metals)
EXPECTED_PARALLEL = {"FM": (12, 6), "AFM-I": (4, 6), "AFM-II": (6, 0), "AFM-III": (4, 4)}

_SHELLS = (12, 6)
_MIN_SHELL_GAP = 0.3  # Å between the farthest atom of a shell and the nearest of the next


def parallel_neighbour_counts(atoms: Atoms, a: float) -> dict[int, tuple[int, int]]:
    """Per metal: how many of its 12 nearest and 6 next-nearest metals have the same sign.

    Shells are taken by sorted distance, so strained and rattled cells work as long as the
    shells stay apart, which is checked. ``a`` is the cubic lattice constant (Å).
    """
    moments = atoms.get_initial_magnetic_moments()
    metals = np.array([s != "O" for s in atoms.get_chemical_symbols()])
    i, j, d = neighbor_list("ijd", atoms, 1.3 * a)
    counts = {}
    for site in np.flatnonzero(metals):
        mine = (i == site) & metals[j]
        order = np.argsort(d[mine])
        distances, partners = d[mine][order], j[mine][order]
        for end in np.cumsum(_SHELLS):
            if distances[end] - distances[end - 1] < _MIN_SHELL_GAP:
                raise ValueError(f"metal {site}: shells overlap at {distances[end]:.2f} Å")
        same = np.sign(moments[partners]) == np.sign(moments[site])
        counts[int(site)] = (int(same[:12].sum()), int(same[12:18].sum()))
    return counts
