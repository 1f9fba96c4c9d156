"""Neighbour lists through vesin: periodic, mixed-periodic and open systems alike.

vesin is always handed a box periodic in all three directions: along open directions the
cell rows are replaced by vectors perpendicular to the periodic ones and longer than the
extent of the atoms plus twice the cutoff, so no image along them is ever a neighbour. This
avoids vesin's mixed-periodicity search, whose cost grows with the square of the extent of
the atoms along the open directions.
"""

from __future__ import annotations

import numpy as np
from vesin import NeighborList

# vesin shrinks its cell grid to at most this many bins; a grid that would shrink to zero
# bins along one direction makes it divide by zero (a crash, not an exception)
VESIN_MAX_BINS = 1e5


def open_axes(cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """Orthonormal directions perpendicular to the periodic cell vectors, as rows.

    Args:
        cell: (3, 3) lattice vectors as rows (Å); the periodic ones linearly independent.
        pbc: (3,) periodicity per lattice direction.

    Returns:
        (3 - k, 3) unit vectors for k periodic directions (the identity when none is).
    """
    periodic = np.asarray(cell, dtype=np.float64)[np.asarray(pbc, dtype=bool)]
    if not len(periodic):
        return np.eye(3)
    return np.linalg.svd(periodic)[2][len(periodic) :]


def estimated_neighbors(
    positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float
) -> float:
    """Expected mean number of neighbours per atom, without searching any pair.

    The density is the number of atoms over the volume of the periodic cell times the extent
    of the atoms (plus the cutoff) along each open direction; the count is that density times
    the volume of the cutoff sphere, at most ``N - 1`` without any periodic direction, and at
    least the number of an atom's own periodic images within the cutoff. Cheap
    (no pairs are searched), so it can refuse a structure before its neighbour list is built.

    Args:
        positions: (N, 3) Cartesian positions (Å), N > 0.
        cell: (3, 3) lattice vectors as rows (Å); the periodic ones linearly independent.
        pbc: (3,) periodicity per lattice direction.
        cutoff: radius (Å).
    """
    pbc = np.asarray(pbc, dtype=bool)
    periodic = np.asarray(cell, dtype=np.float64)[pbc]
    lattice = np.sqrt(abs(np.linalg.det(periodic @ periodic.T))) if len(periodic) else 1.0
    volume = lattice
    axes = open_axes(cell, pbc)
    if len(axes):
        volume *= np.prod(np.ptp(positions @ axes.T, axis=0) + cutoff)
    n = len(positions)
    estimate = n / volume * 4.0 / 3.0 * np.pi * cutoff**3
    if not pbc.any():
        return float(min(estimate, n - 1))
    # and at least the atom's own images: lattice points in the cutoff ball of the lattice's
    # dimension (a segment, a disc or a ball), however far apart the atoms are otherwise
    ball = (2.0 * cutoff, np.pi * cutoff**2, 4.0 / 3.0 * np.pi * cutoff**3)[len(periodic) - 1]
    return float(max(estimate, ball / lattice))


def _closed_box(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float):
    """The cell with every open direction replaced by a vector too long for any image."""
    box = np.array(cell, dtype=np.float64)
    axes = open_axes(cell, pbc)
    if len(axes):
        lengths = np.ptp(positions @ axes.T, axis=0) + 2.0 * cutoff
        if not pbc.any():  # a cube: vesin keeps at least one bin along every direction
            lengths[:] = lengths.max()
        box[~pbc] = axes * lengths[:, None]
    return box


def _check_bins(box: np.ndarray, cutoff: float) -> None:
    """A clear error where vesin's bin grid would collapse to zero bins along a direction.

    Mirrors how vesin sizes its grid: one bin per cutoff of face spacing, and above
    ``VESIN_MAX_BINS`` bins in all a grid rescaled to that total, keeping the proportions.
    """
    volume = abs(np.linalg.det(box))
    spacings = volume / np.linalg.norm(np.cross(box[[1, 2, 0]], box[[2, 0, 1]]), axis=1)
    bins = np.maximum(np.trunc(spacings / cutoff), 1.0)
    if np.prod(bins) <= VESIN_MAX_BINS:
        return
    ratio_01, ratio_12 = bins[0] / bins[1], bins[1] / bins[2]
    last = np.trunc(np.cbrt(VESIN_MAX_BINS / (ratio_01 * ratio_12 * ratio_12)))
    middle = np.trunc(ratio_12 * last)
    if min(last, middle, np.trunc(ratio_01 * middle)) < 1.0:
        raise ValueError(
            f"the atoms and cell span {np.round(spacings, 1).tolist()} Å across the three "
            f"directions, too uneven for the neighbour search (vesin) with a {cutoff} Å "
            "cutoff; check the units of the cell and positions (Å), or shrink the vacuum"
        )


def neighbor_list(
    positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float
) -> tuple[np.ndarray, np.ndarray]:
    """All ordered pairs ``(i, j)`` closer than ``cutoff``, with their lattice shifts.

    Works for cells smaller than the cutoff (many images of one atom are neighbours) and for
    any mix of periodic and open directions.

    Args:
        positions: (N, 3) Cartesian positions (Å).
        cell: (3, 3) lattice vectors as rows (Å), the periodic ones linearly independent;
            rows along open directions are ignored (they may be zero).
        pbc: (3,) periodicity per lattice direction.
        cutoff: radius (Å).

    Returns:
        ``edge_index`` (2, E) int64 ``[centre i, neighbour j]`` and ``shifts`` (E, 3) integers
        with ``r_ij = positions[j] - positions[i] + shifts @ cell`` (0 along open directions).

    Raises:
        ValueError: a box so uneven that vesin's bin grid would collapse.
    """
    pbc = np.asarray(pbc, dtype=bool)
    positions = np.asarray(positions, dtype=np.float64)
    box = _closed_box(positions, cell, pbc, cutoff)
    _check_bins(box, cutoff)
    i, j, shifts = NeighborList(cutoff=cutoff, full_list=True).compute(
        points=positions, box=box, periodic=True, quantities="ijS"
    )
    edge_index = np.stack([i, j]).astype(np.int64)
    return edge_index, shifts.astype(np.int64)
