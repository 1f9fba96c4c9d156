"""``Atoms`` -> graph dictionary of tensors (keys from :mod:`spinmultinet_ase.keys`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from ase import Atoms

from spinmultinet_ase import keys
from spinmultinet_ase.data.neighbors import estimated_neighbors, neighbor_list
from spinmultinet_ase.spin import SpinMode

MAX_NEIGHBORS = 1000  # mean neighbours per atom within the cutoff: above, the input is refused
MIN_DISTANCE = 0.1  # Å: two atoms (or images) closer than this are taken as one atom twice
MAX_COORDINATE = 1e6  # Å: larger positions or cell entries are refused as a unit mistake
MIN_CELL_SHAPE = 1e-6  # volume over product of lengths of the periodic vectors (1: orthogonal)


def _real_array(values: np.ndarray, name: str, fix: str) -> np.ndarray:
    """``values`` as float64 if they are real numbers (integer or floating) and finite.

    Raises:
        ValueError: another dtype (complex, bool, strings, objects) or NaN/infinity.
    """
    values = np.asarray(values)
    if values.dtype.kind not in "iuf":
        raise ValueError(f"{name} have dtype {values.dtype}; {fix} as real numbers")
    values = values.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} contain NaN or infinity; {fix} as finite numbers")
    return values


def initial_moments(atoms: Atoms, spin_mode: SpinMode | str) -> np.ndarray:
    """The user's ``initial_magmoms``, checked: finite, of the spin mode's shape.

    Raises:
        ValueError: wrong shape for the spin mode, or non-finite values, with the fix.
    """
    moments = _real_array(
        atoms.get_initial_magnetic_moments(),
        "initial_magmoms",
        "set the moments in μB (atoms.set_initial_magnetic_moments)",
    )
    SpinMode.of(spin_mode).check(moments)
    return moments


def moment_sizes(moments: np.ndarray) -> np.ndarray:
    """The size (μB) of each atom's moment, collinear (N,) or non-collinear (N, 3)."""
    moments = np.asarray(moments)
    return np.abs(moments) if moments.ndim == 1 else np.linalg.norm(moments, axis=1)


def cell_shape(cell: np.ndarray, pbc: np.ndarray) -> float:
    """How far the periodic cell vectors are from linearly dependent, from 0 to 1.

    The volume they span (the area for two, the length for one) over the product of their
    lengths: 1 for orthogonal vectors, 0 for coplanar (or collinear, or zero-length) ones, and
    1 when no direction is periodic.
    """
    periodic = np.asarray(cell, dtype=np.float64)[np.asarray(pbc, dtype=bool)]
    lengths = np.prod(np.linalg.norm(periodic, axis=1))
    if lengths == 0.0:
        return 0.0
    return float(np.sqrt(abs(np.linalg.det(periodic @ periodic.T))) / lengths)


def require_periodic(atoms: Atoms, task: str, remedy: str = "") -> None:
    """A clear error unless ``atoms`` is periodic in all three directions with a 3D cell.

    Args:
        atoms: the structure.
        task: what needs the periodicity, as the error's subject (e.g. ``"phonons"``).
        remedy: what the user can do instead, appended to the message.
    """
    if not atoms.pbc.all():
        message = (
            f"{task} needs a crystal periodic in all three directions; "
            f"{atoms.get_chemical_formula()} has pbc {atoms.pbc.tolist()}"
        )
    elif cell_shape(atoms.cell.array, atoms.pbc) < MIN_CELL_SHAPE:
        message = (
            f"{task} needs a crystal periodic in all three directions; the cell vectors of "
            f"{atoms.get_chemical_formula()} {atoms.cell.array.tolist()} span no volume"
        )
    else:
        return
    raise ValueError(f"{message}; {remedy}" if remedy else message)


def _check_cell(cell: np.ndarray, pbc: np.ndarray) -> None:
    """Periodic cell vectors of nonzero length that span a volume (an area, a length)."""
    periodic = cell[pbc]
    if np.any(np.linalg.norm(periodic, axis=1) == 0.0):
        raise ValueError(
            f"cell {cell.tolist()} has zero length along a periodic direction; give the cell "
            "vectors (atoms.cell) or set atoms.pbc False along that direction"
        )
    shape = cell_shape(cell, pbc)
    if shape < MIN_CELL_SHAPE:
        raise ValueError(
            f"the periodic cell vectors {periodic.tolist()} are linearly dependent (their "
            f"volume is {shape:.1e} of the product of their lengths, below {MIN_CELL_SHAPE}); "
            "give independent cell vectors or set atoms.pbc False along the extra direction"
        )


def _check_density(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float):
    """Refuse a structure whose expected neighbour count would exhaust the memory."""
    expected = estimated_neighbors(positions, cell, pbc, cutoff)
    if expected > MAX_NEIGHBORS:
        raise ValueError(
            f"about {expected:.3g} neighbours per atom within the {cutoff} Å cutoff, above "
            f"the limit of {MAX_NEIGHBORS}: the atoms are packed far denser than any solid; "
            "check the units of the cell and positions (Å)"
        )


def squared_edge_lengths(
    positions: np.ndarray, cell: np.ndarray, edge_index: np.ndarray, shifts: np.ndarray
) -> np.ndarray:
    """Squared length (Å²) of each edge, periodic images included."""
    centre, neighbour = edge_index
    # einsum, not @: a (E, 3) @ (3, 3) product through BLAS is ten times slower here
    vectors = positions[neighbour] - positions[centre] + np.einsum("ej,jk->ek", shifts, cell)
    return np.einsum("ei,ei->e", vectors, vectors)


def _check_edges(
    positions: np.ndarray, cell: np.ndarray, edge_index: np.ndarray, shifts: np.ndarray
) -> None:
    """Refuse more edges than the limit allows, and atoms that sit on each other."""
    if edge_index.shape[1] > MAX_NEIGHBORS * len(positions):
        raise ValueError(
            f"{edge_index.shape[1] / len(positions):.3g} neighbours per atom within the "
            f"cutoff, above the limit of {MAX_NEIGHBORS}: part of the structure is packed far "
            "denser than any solid; check the units of the cell and positions (Å)"
        )
    centre, neighbour = edge_index
    lengths = np.sqrt(squared_edge_lengths(positions, cell, edge_index, shifts))
    if len(lengths) and lengths.min() < MIN_DISTANCE:
        k = int(np.argmin(lengths))
        image = f" (image shifted by {shifts[k].tolist()} cells)" if shifts[k].any() else ""
        raise ValueError(
            f"atoms {centre[k]} and {neighbour[k]}{image} are {lengths[k]:.2g} Å apart, "
            f"closer than {MIN_DISTANCE} Å: an atom given twice or a broken structure; remove "
            "the duplicate"
        )


def species_indices(symbols: Sequence[str], model_species: Sequence[str]) -> np.ndarray:
    """Index of each symbol in ``model_species``; a clear error for elements the model lacks."""
    lookup = {s: i for i, s in enumerate(model_species)}
    unknown = sorted(set(symbols) - set(lookup))
    if unknown:
        raise ValueError(
            f"element(s) {', '.join(unknown)} not in this model, which knows only "
            f"{', '.join(model_species)}; use a model trained on them"
        )
    return np.array([lookup[s] for s in symbols], dtype=np.int64)


def atoms_to_graph(
    atoms: Atoms,
    model_species: Sequence[str],
    cutoff: float,
    spin_mode: SpinMode | str = "collinear",
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> dict[str, torch.Tensor]:
    """One structure as a graph dictionary (a batch of one), with input checks.

    The checks, in order: at least one atom; real, finite positions and cell entries within
    ``MAX_COORDINATE`` Å; periodic cell vectors of nonzero length spanning a volume (see
    :func:`cell_shape`, at least ``MIN_CELL_SHAPE``); known elements; moments of the right
    shape, real and finite; an estimated mean neighbour count (from the number density,
    before any pair is searched) and then the real one of at most ``MAX_NEIGHBORS``; no two
    atoms or images closer than ``MIN_DISTANCE`` Å.

    Raises:
        ValueError: the first check that fails, saying what to fix.
    """
    if len(atoms) == 0:
        raise ValueError("the structure has no atoms; give at least one atom")
    fix = "give the structure (Å)"
    positions = _real_array(atoms.get_positions(), "positions", fix)
    cell = _real_array(atoms.cell.array, "cell entries", fix)
    if max(np.abs(positions).max(), np.abs(cell).max()) > MAX_COORDINATE:
        raise ValueError(
            f"positions or cell entries beyond {MAX_COORDINATE:.0e} Å; check their units (Å)"
        )
    pbc = np.asarray(atoms.pbc, dtype=bool)
    _check_cell(cell, pbc)
    species = species_indices(atoms.get_chemical_symbols(), model_species)
    moments = initial_moments(atoms, spin_mode)
    _check_density(positions, cell, pbc, cutoff)
    edge_index, shifts = neighbor_list(positions, cell, pbc, cutoff)
    _check_edges(positions, cell, edge_index, shifts)
    as_float = dict(dtype=dtype, device=device)
    return {
        keys.POSITIONS: torch.tensor(positions, **as_float),
        keys.SPECIES: torch.tensor(species, device=device),
        keys.CELL: torch.tensor(cell, **as_float).unsqueeze(0),
        keys.PBC: torch.tensor(pbc, device=device).unsqueeze(0),
        keys.BATCH: torch.zeros(len(atoms), dtype=torch.int64, device=device),
        keys.EDGE_INDEX: torch.tensor(edge_index, device=device),
        keys.EDGE_CELL_SHIFT: torch.tensor(shifts, **as_float),
        keys.INITIAL_MAGMOMS: torch.tensor(moments, **as_float),
    }


def closest_contacts(
    graph: dict[str, torch.Tensor], model_species: Sequence[str]
) -> dict[str, float]:
    """The shortest edge (Å) of one graph for each pair of elements, keyed like ``"Mn-O"``
    (symbols in alphabetical order); pairs with no edge within the cutoff are left out."""
    positions = graph[keys.POSITIONS].detach().cpu().double().numpy()
    cell = graph[keys.CELL][0].detach().cpu().double().numpy()
    species = graph[keys.SPECIES].cpu().numpy()
    edge_index = graph[keys.EDGE_INDEX].cpu().numpy()
    centre, neighbour = edge_index
    shifts = graph[keys.EDGE_CELL_SHIFT].detach().cpu().double().numpy()
    squared = squared_edge_lengths(positions, cell, edge_index, shifts)
    n = len(model_species)
    pair_codes = np.minimum(species[centre], species[neighbour]) * n + np.maximum(
        species[centre], species[neighbour]
    )
    shortest = np.full(n * n, np.inf)
    np.minimum.at(shortest, pair_codes, squared)
    contacts: dict[str, float] = {}
    for code in np.flatnonzero(np.isfinite(shortest)):
        first, second = sorted(model_species[k] for k in divmod(int(code), n))
        contacts[f"{first}-{second}"] = float(np.sqrt(shortest[code]))
    return contacts


def collate(graphs: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Concatenate graphs into one batch, offsetting edge indices and batch numbers.

    Extra per-atom or per-structure fields (training targets) are concatenated along dim 0.
    """
    out: dict[str, torch.Tensor] = {}
    offsets = np.cumsum([0] + [len(g[keys.POSITIONS]) for g in graphs[:-1]])
    out[keys.EDGE_INDEX] = torch.cat(
        [g[keys.EDGE_INDEX] + int(o) for g, o in zip(graphs, offsets, strict=True)], dim=1
    )
    out[keys.BATCH] = torch.cat([torch.full_like(g[keys.BATCH], b) for b, g in enumerate(graphs)])
    for key in graphs[0]:
        if key not in out:
            out[key] = torch.cat([g[key] for g in graphs], dim=0)
    return out
