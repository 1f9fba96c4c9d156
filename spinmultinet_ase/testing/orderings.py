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


def two_shell_heisenberg_energy(atoms: Atoms, a: float, j1s2: float, j2s2: float) -> float:
    """The energy (eV) of the ordering of an ideal rocksalt cell in a two-shell Heisenberg
    model, E = Σ_<ij> J S_i·S_j with J1 S² and J2 S² in meV (J > 0 antiferromagnetic): each
    metal's share is ½ [J1 S² (2 p1 − 12) + J2 S² (2 p2 − 6)] with p1, p2 its parallel nearest
    and next-nearest metals (PHYSICS.md: FM S²(6 J1 + 3 J2) per metal)."""
    counts = parallel_neighbour_counts(atoms, a).values()
    return sum(0.5 * (j1s2 * (2 * p1 - 12) + j2s2 * (2 * p2 - 6)) for p1, p2 in counts) / 1000
