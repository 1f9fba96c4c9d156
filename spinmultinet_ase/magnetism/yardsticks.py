"""Yardsticks: ordering energies, exchange constants and the rhombohedral distortion.

Computed from the undistorted and [111]-strained yardstick cells (``info['yardstick']``) of
the reference data, either with their DFT energies or with a model's, so the two can be
compared number by number. Energy differences between orderings are taken within one cell
(AFM-I against FM in the AFM-I cell, AFM-II against FM in the AFM-II cell), which cancels
k-point differences between cells; the FM energy difference between the two cells is
reported as a consistency check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from ase import Atoms

from spinmultinet_ase.magnetism.exchange import exchange_shells, fit_exchange

EnergyFunction = Callable[[Atoms], float]

# Orderings closer than this (meV/f.u.) are all equal: a spin-blind model has no lowest one.
DEGENERATE_MEV = 1e-3


def dft_energy(atoms: Atoms) -> float:
    """The labelled DFT energy of a frame (eV)."""
    return atoms.get_potential_energy()


def pseudo_cubic_angle(rhombohedral_strain: float) -> float:
    """Angle (degrees) between cubic axes after the traceless strain δ (n nᵀ − I/3), n = [111]."""
    n = np.ones(3) / np.sqrt(3.0)
    deformation = np.eye(3) + rhombohedral_strain * (np.outer(n, n) - np.eye(3) / 3.0)
    x, y = deformation @ np.array([1.0, 0, 0]), deformation @ np.array([0, 1.0, 0])
    return float(np.degrees(np.arccos(x @ y / np.linalg.norm(x) / np.linalg.norm(y))))


def _per_fu(atoms: Atoms, energy: float) -> float:
    return energy / (len(atoms) // 2)


def _minimum(strains: np.ndarray, energies: np.ndarray) -> dict[str, float]:
    """Minimum of a cubic polynomial through E(δ), within the sampled strains."""
    fine = np.linspace(strains.min(), strains.max(), 2001)
    fitted = np.polyval(np.polyfit(strains, energies, 3), fine)
    best = float(fine[np.argmin(fitted)])
    return {"strain": best, "angle_deg": pseudo_cubic_angle(best)}


def yardstick_table(frames: Sequence[Atoms], energy: EnergyFunction = dft_energy) -> dict:
    """Ordering energies, J1 S², J2 S² and E(δ) per material, from yardstick frames.

    Missing frames (labelling still running) leave the quantities that need them out.
    Energies are in meV per formula unit, exchange constants in meV.
    """
    table: dict[str, dict] = {}
    by_key = {}
    for atoms in frames:
        info = atoms.info
        if info.get("yardstick"):
            key = (
                info["material"],
                info["cell_name"],
                info["ordering"],
                round(info["rhombohedral_strain"], 6),
            )
            by_key[key] = atoms
    for material in sorted({k[0] for k in by_key}):
        entry: dict = {}

        def get(cell: str, ordering: str, strain: float = 0.0, material: str = material):
            atoms = by_key.get((material, cell, ordering, strain))
            return (atoms, _per_fu(atoms, energy(atoms))) if atoms is not None else (None, None)

        fm1, e_fm1 = get("afm1-4", "FM")
        afm1, e_afm1 = get("afm1-4", "AFM-I")
        fm2, e_fm2 = get("afm2-4", "FM")
        afm2, e_afm2 = get("afm2-4", "AFM-II")
        orderings = {"FM": 0.0}
        if e_fm1 is not None and e_afm1 is not None:
            orderings["AFM-I"] = 1000 * (e_afm1 - e_fm1)
        if e_fm2 is not None and e_afm2 is not None:
            orderings["AFM-II"] = 1000 * (e_afm2 - e_fm2)
        entry["orderings_meV_per_fu"] = orderings
        if e_fm1 is not None and e_fm2 is not None:
            entry["fm_cell_difference_meV_per_fu"] = 1000 * (e_fm1 - e_fm2)
        if len(orderings) == 3:
            exchange = fit_exchange(
                exchange_shells(fm2, 2),
                [fm2, afm1, afm2],
                [0.0, orderings["AFM-I"], orderings["AFM-II"]],
            )
            entry["J1S2_meV"], entry["J2S2_meV"] = exchange.JS2
            lowest = min(orderings, key=orderings.get)
            degenerate = max(orderings.values()) - orderings[lowest] < DEGENERATE_MEV
            entry["lowest"] = "none (all equal)" if degenerate else lowest
        entry["rhombohedral"] = {}
        for ordering in ("FM", "AFM-II"):
            points = sorted(
                (k[3], a) for k, a in by_key.items() if k[:3] == (material, "afm2-4", ordering)
            )
            if len(points) >= 4:
                strains = np.array([p[0] for p in points])
                values = np.array([1000 * _per_fu(a, energy(a)) for _, a in points])
                values -= values[np.argmin(np.abs(strains))]
                entry["rhombohedral"][ordering] = {
                    "strains": strains.tolist(),
                    "meV_per_fu": values.tolist(),
                    "minimum": _minimum(strains, values),
                }
        table[material] = entry
    return table
