"""Neighbour lists through vesin: periodic, mixed-periodic and open systems alike."""

from __future__ import annotations

import numpy as np
from vesin import NeighborList


def neighbor_list(
    positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float
) -> tuple[np.ndarray, np.ndarray]:
    """All ordered pairs ``(i, j)`` closer than ``cutoff``, with their lattice shifts.

    Works for cells smaller than the cutoff (many images of one atom are neighbours) and for
    any mix of periodic and open directions.

    Args:
        positions: (N, 3) Cartesian positions (Å).
        cell: (3, 3) lattice vectors as rows (Å); rows along open directions may be zero.
        pbc: (3,) periodicity per lattice direction.
        cutoff: radius (Å).

    Returns:
        ``edge_index`` (2, E) int64 ``[centre i, neighbour j]`` and ``shifts`` (E, 3) integers
        with ``r_ij = positions[j] - positions[i] + shifts @ cell``.
    """
    pbc = np.asarray(pbc, dtype=bool)
    cell = np.asarray(cell, dtype=np.float64)
    if not pbc.any():
        # vesin needs a box only along periodic directions; an open system needs none.
        cell = np.zeros((3, 3))
    i, j, shifts = NeighborList(cutoff=cutoff, full_list=True).compute(
        points=np.asarray(positions, dtype=np.float64), box=cell, periodic=pbc, quantities="ijS"
    )
    edge_index = np.stack([i, j]).astype(np.int64)
    return edge_index, shifts.astype(np.int64)
