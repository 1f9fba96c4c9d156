"""Relax positions (and optionally the cell) with an ASE optimiser."""

from __future__ import annotations

from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS, FIRE

OPTIMIZERS = {"BFGS": BFGS, "FIRE": FIRE}


def relax(
    atoms: Atoms,
    calc: Calculator,
    fmax: float = 0.01,
    steps: int = 500,
    optimizer: str = "BFGS",
    relax_cell: bool = True,
    logfile: str | None = None,
    trajectory: str | None = None,
) -> tuple[Atoms, bool]:
    """Relax a copy of ``atoms``; the initial moments (the spin input) stay as given.

    Args:
        atoms: the structure with ``initial_magmoms`` set.
        calc: the calculator.
        fmax: force (eV/Å) and, with the cell, stress×volume-per-atom convergence threshold.
        steps: at most this many optimiser steps.
        optimizer: ``'BFGS'`` or ``'FIRE'``.
        relax_cell: also relax the cell through :class:`ase.filters.FrechetCellFilter`.
        logfile, trajectory: passed to the optimiser.

    Returns:
        The relaxed copy (with ``calc`` attached) and whether it converged.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
    relaxed = atoms.copy()
    relaxed.calc = calc
    target = FrechetCellFilter(relaxed) if relax_cell else relaxed
    dynamics = OPTIMIZERS[optimizer](target, logfile=logfile, trajectory=trajectory)
    converged = bool(dynamics.run(fmax=fmax, steps=steps))
    return relaxed, converged
