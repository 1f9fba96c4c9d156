"""``Atoms`` -> graph dictionary of tensors (keys from :mod:`spinmultinet_ase.keys`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from ase import Atoms

from spinmultinet_ase import keys
from spinmultinet_ase.data.neighbors import neighbor_list


def initial_moments(atoms: Atoms, noncollinear: bool) -> np.ndarray:
    """The user's ``initial_magmoms``, checked: (N,) collinear or (N, 3) non-collinear, finite.

    Raises:
        ValueError: wrong shape for the spin mode, or non-finite values, with the fix.
    """
    moments = np.asarray(atoms.get_initial_magnetic_moments(), dtype=np.float64)
    n = len(atoms)
    if noncollinear:
        if moments.shape == (n,):
            raise ValueError(
                "this model is non-collinear: set initial moments as (N, 3) vectors, e.g. "
                "atoms.set_initial_magnetic_moments([[0, 0, m] for m in moments])"
            )
        expected = (n, 3)
    else:
        if moments.shape == (n, 3):
            raise ValueError(
                "this model is collinear: set initial moments as one number per atom (N,), "
                "e.g. atoms.set_initial_magnetic_moments([2, -2, 0, 0])"
            )
        expected = (n,)
    if moments.shape != expected:
        raise ValueError(f"initial_magmoms has shape {moments.shape}; expected {expected}")
    if not np.all(np.isfinite(moments)):
        raise ValueError("initial_magmoms contain NaN or infinity; set finite moments in μB")
    return moments


def moment_sizes(moments: np.ndarray) -> np.ndarray:
    """The size (μB) of each atom's moment, collinear (N,) or non-collinear (N, 3)."""
    moments = np.asarray(moments)
    return np.abs(moments) if moments.ndim == 1 else np.linalg.norm(moments, axis=1)


def require_periodic(atoms: Atoms, task: str, remedy: str = "") -> None:
    """A clear error unless ``atoms`` is periodic in all three directions with a 3D cell.

    Args:
        atoms: the structure.
        task: what needs the periodicity, as the error's subject (e.g. ``"phonons"``).
        remedy: what the user can do instead, appended to the message.
    """
    if not atoms.pbc.all() or atoms.cell.rank < 3:
        message = (
            f"{task} needs a crystal periodic in all three directions; "
            f"{atoms.get_chemical_formula()} has pbc {atoms.pbc.tolist()}"
        )
        raise ValueError(f"{message}; {remedy}" if remedy else message)


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
    noncollinear: bool = False,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> dict[str, torch.Tensor]:
    """One structure as a graph dictionary (a batch of one), with input checks.

    Raises:
        ValueError: unknown element, bad magmom shape, non-finite positions or cell.
    """
    positions = atoms.get_positions()
    if not np.all(np.isfinite(positions)):
        raise ValueError("positions contain NaN or infinity; fix the structure first")
    cell = atoms.cell.array
    if not np.all(np.isfinite(cell)):
        raise ValueError("the cell contains NaN or infinity; fix the structure first")
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.any() and atoms.cell.rank < int(pbc.sum()):
        raise ValueError(f"cell {cell.tolist()} has zero length along a periodic direction")
    species = species_indices(atoms.get_chemical_symbols(), model_species)
    moments = initial_moments(atoms, noncollinear)
    edge_index, shifts = neighbor_list(positions, cell, pbc, cutoff)
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
    centre, neighbour = graph[keys.EDGE_INDEX].cpu().numpy()
    shifts = graph[keys.EDGE_CELL_SHIFT].detach().cpu().double().numpy()
    # einsum, not @: a (E, 3) @ (3, 3) product through BLAS is ten times slower here
    vectors = positions[neighbour] - positions[centre] + np.einsum("ej,jk->ek", shifts, cell)
    squared = np.einsum("ei,ei->e", vectors, vectors)
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
