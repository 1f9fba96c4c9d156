"""Workflow inputs: structures from a rocksalt formula or a file, and checked options.

Every workflow checks its options here, where they enter, so Python callers and the command
line get the same one-line ``ValueError``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read

from spinmultinet_ase.magnetism.orderings import named_rocksalt_orderings
from spinmultinet_ase.magnetism.rocksalt import ROCKSALT_LATTICE_CONSTANTS
from spinmultinet_ase.spin import SpinMode


def check_number(
    value: float, what: str, minimum: float | None = None, above: bool = False
) -> float:
    """``value`` as a float, if it is a finite number at least (``above``: more than) ``minimum``.

    Args:
        value: the option's value.
        what: its name and unit for the message, e.g. ``"the temperature (K)"``.
        minimum: the smallest allowed value (None: any finite number).
        above: ``minimum`` itself is not allowed.
    """
    bound = "" if minimum is None else f" {'>' if above else '>='} {minimum:g}"
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if (
        isinstance(value, bool)
        or not np.isfinite(number)
        or (minimum is not None and (number <= minimum if above else number < minimum))
    ):
        raise ValueError(f"{what} must be a finite number{bound}, got {value!r}")
    return number


def check_count(value: int, what: str, minimum: int = 1) -> int:
    """``value`` if it is a whole number of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{what} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


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
        check_number(result[symbol], f"the moment magnitude of {symbol} (μB)", 0.0)
    return result


def parse_supercell(values: list[int] | None) -> np.ndarray | None:
    """3 integers (diagonal) or 9 (a full matrix, row by row) -> 3x3 matrix of positive
    determinant (a right-handed supercell of at least the cell itself)."""
    if values is None:
        return None
    if len(values) not in (3, 9):
        raise ValueError(f"--supercell takes 3 or 9 integers, got {len(values)}")
    matrix = np.diag(values) if len(values) == 3 else np.array(values).reshape(3, 3)
    if round(np.linalg.det(matrix)) < 1:
        raise ValueError(
            f"--supercell {' '.join(map(str, values))} has determinant "
            f"{round(np.linalg.det(matrix))}; give repetitions >= 1 (or a matrix of positive "
            "determinant)"
        )
    return matrix


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


def in_spin_mode(atoms: Atoms, spin_mode: SpinMode | str) -> Atoms:
    """``atoms`` with collinear ``(N,)`` moments turned along z for a ``noncollinear`` model:
    without spin-orbit every common axis gives the same energy, so this is the same state.
    Otherwise ``atoms`` as given (the calculator names a shape the model cannot read)."""
    mode = SpinMode.of(spin_mode)
    moments = atoms.get_initial_magnetic_moments()
    if not mode.vector or mode.rotates_with_lattice or moments.ndim != 1:
        return atoms
    turned = atoms.copy()
    turned.set_initial_magnetic_moments(None)
    turned.set_initial_magnetic_moments(mode.ordering(moments))
    return turned
