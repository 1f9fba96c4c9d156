"""Space-group operations of a crystal from spglib, with spglib's failures raised as one-line
errors (spglib's own error handling, a process-wide setting of spglib 2.7 and later, is switched
to exceptions for the call, so it does not warn)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import spglib
import spglib.error

# spglib's cell: lattice rows (Å), fractional positions, one integer type per atom
SpglibCell = tuple[np.ndarray, np.ndarray, np.ndarray]


@contextmanager
def _spglib_raising(formula: str) -> Iterator[None]:
    """Inside the block spglib raises on failure; a failure is a ValueError naming ``formula``."""
    previous = spglib.error.OLD_ERROR_HANDLING
    spglib.error.OLD_ERROR_HANDLING = False
    try:
        yield
    except spglib.error.SpglibError as error:
        raise ValueError(
            f"spglib's symmetry search failed on {formula} ({error}): check the structure for "
            "overlapping atoms"
        ) from None
    finally:
        spglib.error.OLD_ERROR_HANDLING = previous


def _found(result, formula: str):
    """``result``, or the one-line error for a search that returned nothing (spglib's old error
    mode, which the environment variable ``SPGLIB_OLD_ERROR_HANDLING`` can still select)."""
    if result is None:
        raise ValueError(
            f"spglib found no symmetry for {formula}: check the structure for overlapping atoms"
        )
    return result


def symmetry_operations(cell: SpglibCell, formula: str, symprec: float) -> dict:
    """spglib's ``rotations`` (fractional) and ``translations`` of ``cell``."""
    with _spglib_raising(formula):
        return _found(spglib.get_symmetry(cell, symprec=symprec), formula)


def symmetry_dataset(cell: SpglibCell, formula: str, symprec: float):
    """spglib's symmetry dataset of ``cell`` (primitive lattice, mapping, operations)."""
    with _spglib_raising(formula):
        return _found(spglib.get_symmetry_dataset(cell, symprec=symprec), formula)
