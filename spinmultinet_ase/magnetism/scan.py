"""Scan collinear orderings: single points at the ideal geometry, relaxations, J fit.

For each ordering the scan reports the energy per formula unit at the ideal (given)
geometry and after relaxing positions and cell, both relative to the lowest ordering, the
predicted moments, the relaxed lattice, volume per formula unit and, for cells built from a
cubic parent (rocksalt), the pseudo-cubic angle between the deformed cubic axes (> 90° means
contraction along the body diagonal, the rhombohedral distortion of AFM-II MnO and NiO).
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator
from ase.formula import Formula
from tqdm import tqdm

from spinmultinet_ase.magnetism.exchange import (
    fit_exchange,
    magnetic_mask,
    mean_field_neel_temperature,
)
from spinmultinet_ase.workflows.relax import DEFAULT_FMAX, pseudo_cubic_angles, relax

STORED_RESULTS = ("energy", "free_energy", "forces", "stress", "magmoms")


def formula_units(atoms: Atoms) -> int:
    """Number of formula units of the reduced formula (4 for Ni4O4)."""
    return Formula(atoms.get_chemical_formula()).reduce()[1]


@dataclass
class OrderingResult:
    """What the scan found for one ordering (energies in eV per formula unit)."""

    ordering: str
    formula_units: int
    ideal_energy: float
    relaxed_energy: float
    ideal_relative_meV: float
    relaxed_relative_meV: float
    magnetic_moments: list[float]
    cell_lengths: list[float]
    cell_angles: list[float]
    volume_per_formula_unit: float
    pseudo_cubic_angle: float | None
    converged: bool


def scan_orderings(
    structures: dict[str, Atoms],
    calc: Calculator,
    fmax: float = DEFAULT_FMAX,
    steps: int = 500,
    optimizer: str = "BFGS",
    cubic_parent: bool = False,
    progress: bool = True,
) -> tuple[list[OrderingResult], dict[str, Atoms]]:
    """Evaluate and relax every ordering.

    Returns:
        The results sorted by relaxed energy, and the relaxed structures by ordering name.
    """
    results, relaxed_structures = [], {}
    for name, atoms in tqdm(structures.items(), desc="orderings", disable=not progress):
        n_fu = formula_units(atoms)
        single = atoms.copy()
        single.calc = calc
        ideal_energy = single.get_potential_energy() / n_fu
        relaxed, converged = relax(atoms, calc, fmax=fmax, steps=steps, optimizer=optimizer)
        relaxed.get_stress()
        # the calculator is shared between orderings: keep this structure's own results
        kept = {k: v for k, v in calc.results.items() if k in STORED_RESULTS}
        relaxed.calc = SinglePointCalculator(relaxed, **kept)
        relaxed_structures[name] = relaxed
        moments = relaxed.get_magnetic_moments()
        angles = pseudo_cubic_angles(atoms.cell.array, relaxed.cell.array) if cubic_parent else None
        results.append(
            OrderingResult(
                ordering=name,
                formula_units=n_fu,
                ideal_energy=ideal_energy,
                relaxed_energy=relaxed.get_potential_energy() / n_fu,
                ideal_relative_meV=0.0,
                relaxed_relative_meV=0.0,
                magnetic_moments=[float(m) for m in np.asarray(moments)[magnetic_mask(relaxed)]],
                cell_lengths=relaxed.cell.cellpar()[:3].tolist(),
                cell_angles=relaxed.cell.cellpar()[3:].tolist(),
                volume_per_formula_unit=relaxed.get_volume() / n_fu,
                pseudo_cubic_angle=float(np.mean(angles)) if angles else None,
                converged=converged,
            )
        )
    lowest_ideal = min(r.ideal_energy for r in results)
    lowest_relaxed = min(r.relaxed_energy for r in results)
    for r in results:
        r.ideal_relative_meV = 1000 * (r.ideal_energy - lowest_ideal)
        r.relaxed_relative_meV = 1000 * (r.relaxed_energy - lowest_relaxed)
    return sorted(results, key=lambda r: r.relaxed_energy), relaxed_structures


def monte_carlo_neel_temperature(exchange: dict, cells: int = 6, sweeps: int = 500) -> float:
    """Classical Monte Carlo T_N (K) from the fitted J1 S², J2 S², scanning around mean field."""
    from spinmultinet_ase.magnetism.montecarlo import heisenberg_monte_carlo

    mean_field = exchange["mean_field_neel_temperature_K"]
    if mean_field <= 0:
        raise ValueError("J2 S² <= 0: no AFM-II order to find a Néel temperature for")
    temperatures = np.linspace(0.45, 1.05, 13) * mean_field
    j1s2, j2s2 = exchange["J1S2_meV"] / 1000, exchange["J2S2_meV"] / 1000
    result = heisenberg_monte_carlo(j1s2, j2s2, temperatures, cells, sweeps, sweeps)
    return result.neel_temperature


def exchange_from_scan(structures: dict[str, Atoms], results: list[OrderingResult]) -> dict:
    """J1 S², J2 S² (meV) fitted to the ideal-geometry energies, and the mean-field T_N (K).

    Energies per formula unit equal energies per magnetic ion for one magnetic ion per
    formula unit (MO oxides), the case this fit is meant for.
    """
    by_name = {r.ordering: r for r in results}
    names = list(structures)
    fit = fit_exchange([structures[n] for n in names], [by_name[n].ideal_energy for n in names])
    return {
        "J1S2_meV": 1000 * fit["J1S2"],
        "J2S2_meV": 1000 * fit["J2S2"],
        "mean_field_neel_temperature_K": mean_field_neel_temperature(fit["J2S2"]),
    }


def format_scan_table(results: list[OrderingResult]) -> str:
    """The scan as a fixed-width text table."""
    header = (
        f"{'ordering':<12}{'ΔE ideal':>10}{'ΔE relax':>10}{'|m| (μB)':>10}"
        f"{'V/f.u. (Å³)':>13}{'angle (°)':>11}  converged"
    )
    lines = [header, " " * 12 + f"{'meV/f.u.':>10}{'meV/f.u.':>10}"]
    for r in results:
        moment = np.mean(np.abs(r.magnetic_moments)) if r.magnetic_moments else float("nan")
        angle = (
            f"{r.pseudo_cubic_angle:11.3f}" if r.pseudo_cubic_angle is not None else f"{'-':>11}"
        )
        lines.append(
            f"{r.ordering:<12}{r.ideal_relative_meV:10.1f}{r.relaxed_relative_meV:10.1f}"
            f"{moment:10.2f}{r.volume_per_formula_unit:13.3f}{angle}  {r.converged}"
        )
    return "\n".join(lines)


def write_scan(
    results: list[OrderingResult],
    relaxed: dict[str, Atoms],
    exchange: dict | None,
    output_dir: str | Path,
) -> None:
    """``scan.csv``, ``scan.json``, ``relaxed.extxyz`` and ``scan.png`` (relative energies)."""
    import matplotlib
    from ase.io import write

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    rows = [asdict(r) for r in results]
    with (output / "scan.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (output / "scan.json").write_text(
        json.dumps({"orderings": rows, "exchange": exchange}, indent=2)
    )
    for name, atoms in relaxed.items():
        atoms.info["ordering"] = name
    write(output / "relaxed.extxyz", list(relaxed.values()))
    names = [r.ordering for r in results]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 3.5))
    ax.bar(x - 0.2, [r.ideal_relative_meV for r in results], 0.4, label="ideal geometry")
    ax.bar(x + 0.2, [r.relaxed_relative_meV for r in results], 0.4, label="relaxed")
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("E − E(lowest) (meV/f.u.)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(output / "scan.png", dpi=120)
    plt.close(fig)
