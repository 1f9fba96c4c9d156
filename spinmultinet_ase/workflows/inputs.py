"""Workflow inputs: structures from a known formula or a file, and checked options.

Every workflow checks its options here, where they enter, so Python callers and the command
line get the same one-line ``ValueError``. A supercell always means one thing: the matrix
``P`` (3 integers: its diagonal; 9: row by row) of the supercell ``P @ cell`` of the given
cell, ASE's :func:`~ase.build.make_supercell` convention; a rocksalt formula's given cell is
its 2-atom primitive cell. A corundum formula (``Cr2O3``, ``Fe2O3``) stands for its 10-atom
rhombohedral reference cell in its observed ground state and then follows the path of a file.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms
from ase.build import make_supercell
from ase.formula import Formula
from ase.io import read

from spinmultinet_ase.magnetism.corundum import CORUNDUM_PARAMETERS, corundum_cell
from spinmultinet_ase.magnetism.ground_states import OBSERVED_GROUND_STATES
from spinmultinet_ase.magnetism.orderings import magnetic_cell, with_pattern
from spinmultinet_ase.magnetism.rocksalt import (
    ORDERINGS,
    ROCKSALT_LATTICE_CONSTANTS,
    minimal_magnetic_cell,
    ordering_fits_cell,
    rocksalt_ordered,
)
from spinmultinet_ase.magnetism.sites import guessed_moments
from spinmultinet_ase.materials import untrained_warning
from spinmultinet_ase.spin import SpinMode

if TYPE_CHECKING:
    from spinmultinet_ase.calculator import SpinMultiNetCalculator


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


def parse_supercell(values: list[int] | None, what: str = "--supercell") -> np.ndarray | None:
    """3 integers (diagonal) or 9 (a full matrix, row by row) -> 3x3 matrix of positive
    determinant (a right-handed supercell of at least the cell itself); ``what`` names the
    option in messages."""
    if values is None:
        return None
    if len(values) not in (3, 9):
        raise ValueError(f"{what} takes 3 or 9 integers, got {len(values)}")
    matrix = np.diag(values) if len(values) == 3 else np.array(values).reshape(3, 3)
    if round(np.linalg.det(matrix)) < 1:
        raise ValueError(
            f"{what} {' '.join(map(str, values))} has determinant "
            f"{round(np.linalg.det(matrix))}; give repetitions >= 1 (or a matrix of positive "
            "determinant)"
        )
    return matrix


def is_material_name(target: str) -> bool:
    """Whether ``target`` names a built-in material (a rocksalt or corundum formula), which
    the workflows take before a file of that name."""
    return target in ROCKSALT_LATTICE_CONSTANTS or target in CORUNDUM_PARAMETERS


def warn_if_untrained(target: str, calc: SpinMultiNetCalculator) -> None:
    """Warn (``UserWarning``, one line) when ``target`` names a built-in material that the
    calculator's model (for a committee: any member) records it was not trained on; quiet for
    structure files, for a material with an element the model does not read (the calculator
    refuses it) and for models that record no trained materials
    (:mod:`spinmultinet_ase.materials`)."""
    if not is_material_name(target) or not set(Formula(target).count()) <= set(calc.model.species):
        return
    labels = [record["path"] or f"model {n}" for n, record in enumerate(calc.model_files, 1)]
    message = untrained_warning(target, calc.models, labels)
    if message:
        warnings.warn(message, UserWarning, stacklevel=2)


def read_structure(path: str) -> Atoms:
    """One structure from a file ASE can read, or a corundum formula's reference cell in its
    ground state, with a clear error otherwise."""
    if path in CORUNDUM_PARAMETERS:
        return with_pattern(corundum_cell(path), OBSERVED_GROUND_STATES[path])
    if not Path(path).is_file():
        rocksalt = ", ".join(sorted(ROCKSALT_LATTICE_CONSTANTS))
        corundum = ", ".join(sorted(CORUNDUM_PARAMETERS))
        raise ValueError(
            f"{path!r} is neither a known formula (rocksalt {rocksalt}; corundum {corundum}) "
            "nor a structure file"
        )
    try:
        return read(path)
    except Exception as error:  # ASE raises many types for unreadable files
        raise ValueError(f"cannot read a structure from {path}: {error}") from None


def single_structure(
    target: str,
    ordering: str | None = None,
    supercell: list[int] | None = None,
    magnitudes: list[str] | None = None,
) -> Atoms:
    """One structure at a fixed collinear magnetic order.

    Args:
        target: a rocksalt formula (``'NiO'``), a corundum formula (``'Cr2O3'``) or a
            structure file.
        ordering: a rocksalt name, ``FM`` or one letter ``u``/``d`` per magnetic site of the
            supercell. Default: AFM-II for a rocksalt formula, the observed ground state for a
            corundum one, a file's own initial moments (where none are set, the default
            guesses, all parallel).
        supercell: 3 or 9 integers, the supercell of the given cell (a rocksalt formula's:
            its 2-atom primitive cell; a corundum one's: its 10-atom rhombohedral cell).
            Default: a file's or corundum formula's cell, a named ordering's smallest cell.
        magnitudes: ``EL=MU`` moment magnitudes (μB) over the moments set or guessed.

    Raises:
        ValueError: a file that cannot be read, a bad supercell, or an ordering that does not
            fit the supercell.
    """
    matrix = parse_supercell(supercell)
    moments = parse_magnitudes(magnitudes)
    if ordering is not None and ordering not in ORDERINGS and set(ordering) - {"u", "d"}:
        raise ValueError(
            f"unknown ordering {ordering!r}: give a rocksalt name ({', '.join(ORDERINGS)}) or "
            "one letter u/d per magnetic site of the supercell"
        )
    if target in ROCKSALT_LATTICE_CONSTANTS:
        return ordered_structure(
            target, ordering or OBSERVED_GROUND_STATES[target], matrix, moments
        )
    atoms = read_structure(target)
    if ordering is not None:
        return ordered_structure(atoms, ordering, matrix, moments)
    if atoms.get_initial_magnetic_moments().ndim == 1:
        atoms.set_initial_magnetic_moments(guessed_moments(atoms, moments))
    return atoms if matrix is None else make_supercell(atoms, matrix)


def ordered_structure(
    target: str | Atoms,
    ordering: str | None = None,
    matrix: np.ndarray | None = None,
    magnitudes: dict[str, float] | None = None,
) -> Atoms:
    """A periodic structure at a collinear magnetic order, in a supercell of its given cell.

    Args:
        target: a rocksalt or corundum formula (``'NiO'``, ``'Cr2O3'``), the path of a
            structure file, or a structure.
        ordering: a rocksalt formula's named ordering, ``FM`` or one letter ``u``/``d`` per
            magnetic site of the supercell. None: the moments set in the structure (where none
            are set, the default guesses, all parallel; a rocksalt formula: ``FM``; a corundum
            one: its observed ground state).
        matrix: 3x3 integer supercell matrix of the given cell (a rocksalt formula's: its
            2-atom primitive cell; a corundum one's: its 10-atom rhombohedral cell). None: the
            given cell, a named ordering's smallest cell.
        magnitudes: moment magnitude (μB) per element, over the moments set or guessed.

    Raises:
        ValueError: a structure that is not periodic or has no magnetic site, or an ordering
            that does not fit the supercell.
    """
    if isinstance(target, str) and target in ROCKSALT_LATTICE_CONSTANTS:
        if ordering in ORDERINGS:
            return _rocksalt_cell(target, ordering, matrix, magnitudes)
        cell = _rocksalt_cell(target, "FM", matrix, magnitudes)
        return cell if ordering is None else with_pattern(cell, ordering)
    atoms = read_structure(target) if isinstance(target, str) else target
    cell = magnetic_cell(atoms, matrix, magnitudes)
    return cell if ordering is None else with_pattern(cell, ordering)


def _rocksalt_cell(
    formula: str, ordering: str, matrix: np.ndarray | None, magnitudes: dict[str, float] | None
) -> Atoms:
    """A named ordering of a rocksalt formula in the supercell ``matrix`` of its primitive cell."""
    if matrix is not None and not ordering_fits_cell(ordering, matrix):
        smallest = " ".join(str(n) for n in minimal_magnetic_cell(ordering).ravel())
        raise ValueError(
            f"{ordering} does not fit --supercell {' '.join(str(n) for n in matrix.ravel())} "
            f"of the 2-atom primitive cell of {formula}; its smallest cell is --supercell "
            f"{smallest} (any supercell of that cell fits too)"
        )
    return rocksalt_ordered(formula, ordering, matrix, magnitudes=magnitudes)


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
