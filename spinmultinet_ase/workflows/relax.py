"""Relax positions (and optionally the cell) with an ASE optimiser, and report the result."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS, FIRE
from ase.units import GPa

from spinmultinet_ase.data.graph import moment_sizes, require_periodic
from spinmultinet_ase.workflows.inputs import check_count, check_number
from spinmultinet_ase.workflows.spread import spread_of

OPTIMIZERS = {"BFGS": BFGS, "FIRE": FIRE}
# Force threshold (eV/Å; for the cell, stress × volume per atom). Tight enough for the small
# rhombohedral distortion of AFM-II NiO: at 0.01, a 4-atom cell stops cubic with 0.1 GPa of
# shear stress left, below the cell threshold of 0.14 GPa.
DEFAULT_FMAX = 1e-3


def check_relax_options(
    fmax: float = DEFAULT_FMAX,
    steps: int = 500,
    optimizer: str = "BFGS",
    relax_cell: bool = True,
    pressure_GPa: float = 0.0,
) -> None:
    """Check the options of :func:`relax` (which calls this first) before any work.

    Raises:
        ValueError: one line naming the first option out of its range.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
    check_number(fmax, "the force threshold fmax (eV/Å)", 0.0, above=True)
    check_count(steps, "the number of optimiser steps")
    if check_number(pressure_GPa, "the pressure (GPa)") and not relax_cell:
        raise ValueError("a pressure needs a relaxing cell; drop the fixed cell or the pressure")


def relax(
    atoms: Atoms,
    calc: Calculator,
    fmax: float = DEFAULT_FMAX,
    steps: int = 500,
    optimizer: str = "BFGS",
    relax_cell: bool = True,
    pressure_GPa: float = 0.0,
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
        pressure_GPa: external hydrostatic pressure on the cell: the enthalpy E + pV is
            minimised, so the relaxed stress is -p (ASE's sign). Needs ``relax_cell``.
        logfile, trajectory: passed to the optimiser.

    Returns:
        The relaxed copy (with ``calc`` attached) and whether it converged.

    Raises:
        ValueError: an option out of its range (:func:`check_relax_options`), or a cell
            relaxation of a structure that is not periodic.
    """
    check_relax_options(fmax, steps, optimizer, relax_cell, pressure_GPa)
    if relax_cell:
        require_periodic(atoms, "relaxing the cell", "relax the positions only (--fixed-cell)")
    relaxed = atoms.copy()
    relaxed.calc = calc
    target = (
        FrechetCellFilter(relaxed, scalar_pressure=pressure_GPa * GPa) if relax_cell else relaxed
    )
    dynamics = OPTIMIZERS[optimizer](target, logfile=logfile, trajectory=trajectory)
    converged = bool(dynamics.run(fmax=fmax, steps=steps))
    return relaxed, converged


def relaxation_report(
    start: Atoms, relaxed: Atoms, converged: bool, fmax: float, cubic_parent: bool = False
) -> str:
    """A few lines on a relaxation: energy, cell and stress (if periodic), largest force, moments;
    with a committee calculator, the energy ± its spread and the largest per-atom force spread
    (:mod:`~spinmultinet_ase.workflows.spread`).

    Args:
        start: the structure before the relaxation, its calculator attached.
        relaxed: the structure returned by :func:`relax`.
        converged: whether the optimiser reached ``fmax``.
        fmax: the force threshold it was run with (eV/Å).
        cubic_parent: ``start`` is a supercell of a cubic crystal with its axes along x, y, z
            (a rocksalt formula); then the angles between the deformed cubic axes are given.
    """
    n = len(relaxed)
    energy = relaxed.get_potential_energy()
    spread = spread_of(relaxed)
    plus_minus = "" if spread is None else f" ± {spread.energy_std:.4f}"
    moments = np.asarray(relaxed.get_magnetic_moments())
    sizes = moment_sizes(moments)
    symbols = np.array(relaxed.get_chemical_symbols())
    per_element = ", ".join(f"{s} {sizes[symbols == s].mean():.2f}" for s in dict.fromkeys(symbols))
    total = " ".join(f"{x:.2f}" for x in np.round(np.atleast_1d(moments.sum(axis=0)), 2) + 0.0)
    lines = [
        f"{relaxed.get_chemical_formula()} ({n} atoms): "
        + ("converged" if converged else "NOT converged")
        + f" to fmax {fmax} eV/Å",
        f"energy      {energy:.4f}{plus_minus} eV ({energy / n:.4f} eV/atom), "
        f"{1000 * (energy - start.get_potential_energy()) / n:+.1f} meV/atom from the start",
    ]
    if relaxed.pbc.all():
        a, b, c, alpha, beta, gamma = relaxed.cell.cellpar()
        volume_per_atom = relaxed.get_volume() / n
        volume_change = 100 * (relaxed.get_volume() / start.get_volume() - 1)
        stress = " ".join(f"{x:.3f}" for x in relaxed.get_stress() / GPa)
        lines += [
            f"cell        a b c = {a:.4f} {b:.4f} {c:.4f} Å, α β γ = {alpha:.3f} {beta:.3f} "
            f"{gamma:.3f}°",
            f"volume      {volume_per_atom:.3f} Å³/atom, {volume_change:+.2f} % from start",
        ]
        if cubic_parent:
            angles = pseudo_cubic_angles(start.cell.array, relaxed.cell.array)
            lines.append("cubic axes  " + " ".join(f"{x:.3f}" for x in angles) + "° (xy yz xz)")
        lines.append(f"stress      {stress} GPa (xx yy zz yz xz xy)")
    lines += [
        f"max force   {np.linalg.norm(relaxed.get_forces(), axis=1).max():.4f} eV/Å",
        f"|moment|    {per_element} μB (mean per element), total {total} μB",
    ]
    if spread is not None:
        lines.append(
            f"spread      ± is the std of {len(spread.member_energies)} committee members; "
            f"largest per-atom force spread {spread.max_force_std:.4f} eV/Å"
        )
    return "\n".join(lines)


def pseudo_cubic_angles(ideal_cell: np.ndarray, relaxed_cell: np.ndarray) -> list[float]:
    """Angles (degrees) between the cubic axes x, y, z after the ideal -> relaxed deformation."""
    deformation = np.linalg.solve(ideal_cell, relaxed_cell).T  # relaxed = ideal @ deformationᵀ
    axes = deformation @ np.eye(3)  # columns: images of x, y, z
    angles = []
    for i, j in ((0, 1), (1, 2), (0, 2)):
        cosine = axes[:, i] @ axes[:, j] / np.linalg.norm(axes[:, i]) / np.linalg.norm(axes[:, j])
        angles.append(float(np.degrees(np.arccos(np.clip(cosine, -1, 1)))))
    return angles
