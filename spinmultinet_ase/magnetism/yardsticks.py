"""Yardsticks: ordering energies, exchange constants and the rhombohedral distortion.

Computed from the yardstick cells (``info['yardstick']``) of the reference data, either with
their DFT energies or with a model's, so the two can be compared number by number. Two kinds:

* Rocksalt (cells :data:`ROCKSALT_CELLS`): undistorted and [111]-strained 4-atom cells.
  Energy differences between orderings are taken within one cell (AFM-I against FM in the
  AFM-I cell, AFM-II against FM in the AFM-II cell), which cancels k-point differences
  between cells; the FM energy difference between the two cells is reported as a
  consistency check. J1 S², J2 S² and E(δ) along [111].
* Any other yardstick cell: ideal copies of one cell in several collinear orderings
  (:func:`ordering_yardsticks`), one table per material and cell (:func:`yardstick_key`),
  so that every energy difference is again taken within one cell: ordering energies, the
  lowest ordering against a known ground state, and a Heisenberg fit over the shells the
  orderings determine.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from ase import Atoms
from ase.formula import Formula

from spinmultinet_ase.magnetism.corundum import CORUNDUM_PARAMETERS
from spinmultinet_ase.magnetism.exchange import exchange_shells, fit_exchange
from spinmultinet_ase.magnetism.sites import is_ferromagnetic, magnetic_sites

EnergyFunction = Callable[[Atoms], float]

# Orderings closer than this (meV/f.u.) are all equal: a spin-blind model has no lowest one.
DEGENERATE_MEV = 1e-3
# The cells of the rocksalt two-cell scheme; materials without them get ordering yardsticks.
ROCKSALT_CELLS = ("afm1-4", "afm2-4")
# Shells (nearest first) searched for those whose exchange the orderings determine.
CANDIDATE_SHELLS = 8
# The corundum cell whose ordering names the observed ground states use.
CORUNDUM_GROUND_STATE_CELL = "rh-10"


def yardstick_key(material: str, cell: str) -> str:
    """The key of a yardstick table entry: the material for the rocksalt scheme's cells,
    else ``'<material> <cell>'`` (one ordering table per material and cell)."""
    return material if cell in ROCKSALT_CELLS else f"{material} {cell}"


# Observed ground-state orderings by yardstick key, for the cells whose orderings name them.
KNOWN_GROUND_STATES: dict[str, str] = {
    yardstick_key(material, CORUNDUM_GROUND_STATE_CELL): parameters.ground_state
    for material, parameters in CORUNDUM_PARAMETERS.items()
}


def dft_energy(atoms: Atoms) -> float:
    """The labelled DFT energy of a frame (eV)."""
    return atoms.get_potential_energy()


def formula_units(atoms: Atoms) -> int:
    """Formula units in the cell (of the reduced formula: 4 for Ni4O4, 2 for Cr4O6)."""
    return Formula(atoms.get_chemical_formula()).reduce()[1]


def exchange_keys(entry: Mapping[str, object]) -> list[tuple[str, int]]:
    """The exchange constants of a yardstick entry: (key ``'J<k>S2_meV'``, shell k), by k."""
    found = [(key, re.fullmatch(r"J(\d+)S2_meV", key)) for key in entry]
    return sorted(((key, int(m.group(1))) for key, m in found if m), key=lambda item: item[1])


def pseudo_cubic_angle(rhombohedral_strain: float) -> float:
    """Angle (degrees) between cubic axes after the traceless strain δ (n nᵀ − I/3), n = [111]."""
    n = np.ones(3) / np.sqrt(3.0)
    deformation = np.eye(3) + rhombohedral_strain * (np.outer(n, n) - np.eye(3) / 3.0)
    x, y = deformation @ np.array([1.0, 0, 0]), deformation @ np.array([0, 1.0, 0])
    return float(np.degrees(np.arccos(x @ y / np.linalg.norm(x) / np.linalg.norm(y))))


def _per_fu(atoms: Atoms, energy: float) -> float:
    return energy / formula_units(atoms)


def _minimum(strains: np.ndarray, energies: np.ndarray) -> dict[str, float | bool]:
    """Minimum of a cubic polynomial through E(δ), within the sampled strains; ``bracketed``
    is False where it lies at an end of them (the curve's minimum is there or beyond)."""
    fine = np.linspace(strains.min(), strains.max(), 2001)
    fitted = np.polyval(np.polyfit(strains, energies, 3), fine)
    index = int(np.argmin(fitted))
    best = float(fine[index])
    bracketed = 0 < index < len(fine) - 1
    return {"strain": best, "angle_deg": pseudo_cubic_angle(best), "bracketed": bracketed}


def _lowest(energies: Mapping[str, float]) -> str:
    """The ordering of lowest energy, or ``'none (all equal)'`` within :data:`DEGENERATE_MEV`."""
    lowest = min(energies, key=energies.get)
    degenerate = max(energies.values()) - energies[lowest] < DEGENERATE_MEV
    return "none (all equal)" if degenerate else lowest


def _determined_shells(reference: Atoms, structures: Sequence[Atoms]) -> int:
    """How many shells, nearest first, a fit needs to hold every exchange constant the
    orderings ``structures`` determine (0: none); the shells between that the orderings cannot
    separate from nearer ones are left out of the fit by :func:`fit_exchange`."""
    candidates = exchange_shells(reference, CANDIDATE_SHELLS)
    design = np.array([[1.0, *candidates.counts(a)] for a in structures])
    ranks = [np.linalg.matrix_rank(design[:, : k + 1], tol=1e-8) for k in range(len(design[0]))]
    return 0 if ranks[-1] == 1 else ranks.index(ranks[-1])


def ordering_yardsticks(
    frames: Sequence[Atoms], energy: EnergyFunction = dft_energy, ground_state: str | None = None
) -> dict:
    """Ordering energies, the lowest ordering and exchange constants from ideal cells of one
    crystal in several collinear orderings (``info['ordering']``, one frame each).

    The exchange constants come from a least-squares Heisenberg fit
    (:func:`~spinmultinet_ase.magnetism.exchange.fit_exchange`) over the nearest shells the
    orderings determine (at most one fewer than the orderings); shell ``k`` counts all shells
    by distance, so a shell the orderings cannot separate from nearer ones has no J of its own
    and its exchange is absorbed in theirs.

    Args:
        frames: the ideal cells (at least one), initial moments giving the ordering.
        energy: the energy of a frame (eV), DFT's or a model's.
        ground_state: the observed ordering of lowest energy, if known.

    Returns:
        ``orderings_meV_per_fu`` against ``reference`` (the ferromagnetic ordering, else the
        first frame's), ``above_lowest_meV_per_fu``, ``lowest``, with a ground state
        ``ground_state`` and ``lowest_is_ground_state``; with a fit ``exchange_shells`` (per
        shell its number, distance in Å, partners per magnetic ion, ``JS2_meV`` and
        ``fitted_as``, what that J stands for (``'J1 + 3·J3'`` where shell 3 is absorbed),
        both None where undetermined), ``J<k>S2_meV`` per determined shell ``k``, the fit's
        rms residual (meV per magnetic ion) and warnings. Energies in meV per formula unit,
        J in meV.
    """
    if not frames:
        raise ValueError("ordering yardsticks need at least one ideal cell")
    by_ordering: dict[str, Atoms] = {}
    for atoms in frames:
        ordering = atoms.info["ordering"]
        if ordering in by_ordering:
            raise ValueError(f"two yardstick frames of ordering {ordering!r}")
        by_ordering[ordering] = atoms
    energies = {o: energy(a) for o, a in by_ordering.items()}
    per_fu = {o: 1000 * _per_fu(by_ordering[o], e) for o, e in energies.items()}
    parallel = [o for o, a in by_ordering.items() if is_ferromagnetic(a)]
    reference = parallel[0] if parallel else next(iter(by_ordering))
    low = min(per_fu.values())
    entry: dict = {
        "reference": reference,
        "orderings_meV_per_fu": {o: e - per_fu[reference] for o, e in per_fu.items()},
        "above_lowest_meV_per_fu": {o: e - low for o, e in per_fu.items()},
    }
    if len(per_fu) < 2:
        return entry
    entry["lowest"] = _lowest(per_fu)
    if ground_state is not None:
        entry["ground_state"] = ground_state
        entry["lowest_is_ground_state"] = entry["lowest"] == ground_state
    structures = list(by_ordering.values())
    num_shells = _determined_shells(structures[0], structures)
    if num_shells == 0:
        return entry
    shells = exchange_shells(structures[0], num_shells)
    per_ion = [1000 * energies[o] / len(magnetic_sites(a)) for o, a in by_ordering.items()]
    fit = fit_exchange(shells, structures, np.array(per_ion) - min(per_ion))
    entry["exchange_shells"] = [
        {
            "shell": k + 1,
            "distance_A": shell.distance,
            "coordination": shell.coordination,
            "JS2_meV": value,
            "fitted_as": None if value is None else fit.fitted_as(k + 1),
        }
        for k, (shell, value) in enumerate(zip(shells.shells, fit.JS2, strict=True))
    ]
    for k, value in enumerate(fit.JS2):
        if value is not None:
            entry[f"J{k + 1}S2_meV"] = value
    entry["exchange_rms_residual_meV"] = fit.rms_residual
    entry["exchange_warnings"] = fit.warnings
    return entry


def yardstick_table(
    frames: Sequence[Atoms],
    energy: EnergyFunction = dft_energy,
    ground_states: Mapping[str, str] = KNOWN_GROUND_STATES,
) -> dict:
    """Yardsticks by :func:`yardstick_key` from the yardstick frames among ``frames``: the
    rocksalt scheme for a material's :data:`ROCKSALT_CELLS`, else :func:`ordering_yardsticks`
    of the undistorted frames of each cell (``ground_states``: known ground-state orderings
    by key).

    Missing frames (labelling still running) leave the quantities that need them out, and a
    cell with no undistorted frame yet has no entry. Energies are in meV per formula unit,
    exchange constants in meV.
    """
    groups: dict[str, dict[tuple[str, str, float], Atoms]] = {}
    for atoms in frames:
        info = atoms.info
        if info.get("yardstick"):
            cell = info["cell_name"]
            strain = round(info["rhombohedral_strain"], 6)
            group = groups.setdefault(yardstick_key(info["material"], cell), {})
            group[(cell, info["ordering"], strain)] = atoms
    table: dict[str, dict] = {}
    for key, mine in sorted(groups.items()):
        if all(cell in ROCKSALT_CELLS for cell, _, _ in mine):
            table[key] = _rocksalt_yardsticks(mine, energy)
            continue
        ideal = [atoms for (_, _, strain), atoms in mine.items() if strain == 0.0]
        if ideal:
            table[key] = ordering_yardsticks(ideal, energy, ground_states.get(key))
    return table


def _rocksalt_yardsticks(by_key: Mapping[tuple[str, str, float], Atoms], energy) -> dict:
    """Ordering energies, J1 S², J2 S² and E(δ) of one rocksalt material from its yardstick
    frames by (cell, ordering, rhombohedral strain)."""
    entry: dict = {}

    def get(cell: str, ordering: str, strain: float = 0.0):
        atoms = by_key.get((cell, ordering, strain))
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
        entry["lowest"] = _lowest(orderings)
    entry["rhombohedral"] = {}
    for ordering in ("FM", "AFM-II"):
        points = sorted((k[2], a) for k, a in by_key.items() if k[:2] == ("afm2-4", ordering))
        if len(points) >= 4:
            strains = np.array([p[0] for p in points])
            values = np.array([1000 * _per_fu(a, energy(a)) for _, a in points])
            values -= values[np.argmin(np.abs(strains))]
            entry["rhombohedral"][ordering] = {
                "strains": strains.tolist(),
                "meV_per_fu": values.tolist(),
                "minimum": _minimum(strains, values),
            }
    return entry
