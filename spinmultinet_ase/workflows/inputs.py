"""Turning command-line inputs into structures: a rocksalt formula or a structure file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read

from spinmultinet_ase.magnetism.orderings import named_rocksalt_orderings
from spinmultinet_ase.magnetism.rocksalt import ROCKSALT_LATTICE_CONSTANTS


def parse_magnitudes(items: list[str] | None) -> dict[str, float]:
    """``['Ni=1.8', 'Mn=4.5']`` -> ``{'Ni': 1.8, 'Mn': 4.5}`` with a clear error otherwise."""
    result = {}
    for item in items or []:
        symbol, sep, value = item.partition("=")
        try:
            result[symbol] = float(value)
        except ValueError:
            sep = ""
        if not sep or not symbol:
            raise ValueError(f"moment magnitude {item!r} should look like Ni=2.0")
    return result


def parse_supercell(values: list[int] | None) -> np.ndarray | None:
    """3 integers (diagonal) or 9 (a full matrix, row by row) -> 3x3 matrix."""
    if not values:
        return None
    if len(values) == 3:
        return np.diag(values)
    if len(values) == 9:
        return np.array(values).reshape(3, 3)
    raise ValueError(f"--supercell takes 3 or 9 integers, got {len(values)}")


def read_structure(path: str) -> Atoms:
    """One structure from a file ASE can read, with a clear error otherwise."""
    if not Path(path).is_file():
        known = ", ".join(sorted(ROCKSALT_LATTICE_CONSTANTS))
        raise ValueError(f"{path!r} is neither a rocksalt formula ({known}) nor a structure file")
    try:
        return read(path)
    except Exception as error:  # ASE raises many types for unreadable files
        raise ValueError(f"cannot read a structure from {path}: {error}") from None


def single_structure(
    target: str, ordering: str, supercell: list[int] | None, magnitudes: list[str] | None
) -> Atoms:
    """A rocksalt formula in a named ordering, or a structure file as it is; then repeated."""
    from ase.build import make_supercell

    if target in ROCKSALT_LATTICE_CONSTANTS:
        atoms = named_rocksalt_orderings(
            target, (ordering,), magnitudes=parse_magnitudes(magnitudes)
        )[ordering]
    else:
        atoms = read_structure(target)
    matrix = parse_supercell(supercell)
    return make_supercell(atoms, matrix) if matrix is not None else atoms
