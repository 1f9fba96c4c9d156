"""Small DFT checks of the workflows, each a handful of GPAW runs with the data's protocol,
compared with a model given the same structures.

* ``gamma_phonons``: the undistorted 4-atom AFM-II and FM yardstick cells of MnO and NiO with
  one atom displaced. The Γ point of a cell is exact from displacing the atoms of that cell
  alone, so these give the exact DFT Γ phonons of the cell: the optical modes of the cubic
  parent's Γ point (split by AFM-II order) and the modes folded in from its L point.
* ``equation_of_state``: the AFM-II yardstick cells scaled isotropically from −8 % to +6 % in
  volume: energy and pressure against volume, and the fitted equilibrium volume and bulk
  modulus, which ``spinmultinet relax`` finds with the model.

    python scripts/dft_checks.py structures CHECK data/checks/CHECK
    (label data/checks/CHECK/structures.extxyz into reference.extxyz with `spinmultinet label`)
    python scripts/dft_checks.py compare CHECK data/checks/CHECK [--model MODEL.pt]

`bash scripts/dft_checks.sh CHECK` runs all three (resumable).
"""

from __future__ import annotations

import argparse
import json
import platform
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms
from ase.eos import EquationOfState
from ase.io import read, write
from ase.units import GPa

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.dft.structures import yardstick_structures
from spinmultinet_ase.workflows.phonons import (
    compute_phonons,
    displaced_cells,
    phonons_from_forces,
)

if TYPE_CHECKING:
    from phonopy import Phonopy

MATERIALS = ("MnO", "NiO")
# Larger than the phonon workflow's default: DFT forces carry SCF noise that a smaller
# displacement would magnify; the model gets the same displacement, so the same O(d²) error.
PHONON_DISPLACEMENT = 0.01
VOLUME_FACTORS = (0.92, 0.94, 0.96, 0.98, 1.0, 1.02, 1.04, 1.06)


def _yardstick(material: str, ordering: str) -> Atoms:
    """The undistorted 4-atom AFM-II-cell yardstick of ``material`` in ``ordering``."""
    name = f"{material}-yardstick-afm2-4-{ordering}-rh+0.000"
    (atoms,) = [a for a in yardstick_structures(material) if a.info["structure_id"] == name]
    return atoms


def _markdown(caption: str, columns: list[str], cells: list[list[str]]) -> list[str]:
    """A caption and a markdown table, as lines."""
    lines = [caption, "", f"| {' | '.join(columns)} |", "|" + "---|" * len(columns)]
    return lines + [f"| {' | '.join(row)} |" for row in cells]


# --- Γ phonons -------------------------------------------------------------------------------


def _phonon_cells() -> list[tuple[Atoms, Phonopy, list[Atoms]]]:
    """Each yardstick cell with its phonopy object and displaced copies, the copies named
    ``<yardstick id>-gamma-<k>``."""
    out = []
    for material in MATERIALS:
        for ordering in ("AFM-II", "FM"):
            atoms = _yardstick(material, ordering)
            phonon, displaced = displaced_cells(atoms, np.eye(3, dtype=int), PHONON_DISPLACEMENT)
            for index, cell in enumerate(displaced):
                cell.info.update(atoms.info)
                cell.info["structure_id"] = f"{atoms.info['structure_id']}-gamma-{index}"
            out.append((atoms, phonon, displaced))
    return out


def gamma_phonon_structures() -> list[Atoms]:
    return [cell for _, _, displaced in _phonon_cells() for cell in displaced]


def compare_gamma_phonons(
    labelled: dict[str, Atoms], calc: SpinMultiNetCalculator
) -> tuple[list[dict], list[str]]:
    rows = []
    for atoms, phonon, displaced in _phonon_cells():
        dft_forces = [labelled[cell.info["structure_id"]].get_forces() for cell in displaced]
        dft = phonons_from_forces(phonon, atoms, dft_forces, mesh=(2, 2, 2), npoints=5)
        ours = compute_phonons(
            atoms,
            calc,
            supercell=np.eye(3, dtype=int),
            displacement=PHONON_DISPLACEMENT,
            mesh=(2, 2, 2),
            npoints=5,
            progress=False,
        )
        rows.append(
            {
                "cell": atoms.info["structure_id"],
                "dft_parent_gamma_optical_THz": dft.parent_gamma_optical,
                "model_parent_gamma_optical_THz": ours.parent_gamma_optical,
                "dft_gamma_THz": dft.gamma_frequencies,
                "model_gamma_THz": ours.gamma_frequencies,
            }
        )
    cells = []
    for row in rows:
        dft, ours = row["dft_parent_gamma_optical_THz"], row["model_parent_gamma_optical_THz"]
        worst = np.abs(np.subtract(row["model_gamma_THz"], row["dft_gamma_THz"])).max()
        cells.append(
            [
                row["cell"],
                ", ".join(f"{f:.3f}" for f in dft),
                ", ".join(f"{f:.3f}" for f in ours),
                f"{max(dft) - min(dft):.3f}",
                f"{max(ours) - min(ours):.3f}",
                f"{worst:.3f}",
            ]
        )
    columns = [
        "cell",
        "parent-Γ optical, DFT",
        "model",
        "splitting DFT",
        "model",
        "largest model − DFT over all 12 Γ modes",
    ]
    caption = f"Displacement {PHONON_DISPLACEMENT} Å for both. THz."
    return rows, _markdown(caption, columns, cells)


# --- equation of state -----------------------------------------------------------------------


def equation_of_state_structures() -> list[Atoms]:
    """The AFM-II yardstick cells scaled to each of :data:`VOLUME_FACTORS`."""
    frames = []
    for material in MATERIALS:
        atoms = _yardstick(material, "AFM-II")
        for factor in VOLUME_FACTORS:
            scaled = atoms.copy()
            scaled.set_cell(atoms.cell.array * factor ** (1 / 3), scale_atoms=True)
            scaled.info["structure_id"] = f"{atoms.info['structure_id']}-volume{factor:.2f}"
            scaled.info["volume_strain"] = factor - 1.0
            frames.append(scaled)
    return frames


def _pressure_gpa(atoms: Atoms) -> float:
    return -float(np.mean(atoms.get_stress()[:3])) / GPa


def _fit(volumes: np.ndarray, energies: np.ndarray) -> dict[str, float]:
    """Birch–Murnaghan equilibrium volume (Å³ per formula unit) and bulk modulus (GPa)."""
    volume, _, modulus = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
    return {"volume_A3_per_fu": float(volume), "bulk_modulus_GPa": float(modulus / GPa)}


def compare_equation_of_state(
    labelled: dict[str, Atoms], calc: SpinMultiNetCalculator
) -> tuple[list[dict], list[str]]:
    structures = equation_of_state_structures()
    rows = []
    for material in MATERIALS:
        frames = [
            labelled[a.info["structure_id"]] for a in structures if a.info["material"] == material
        ]
        units = len(frames[0]) / 2
        volumes = np.array([a.get_volume() / units for a in frames])
        dft_energy = np.array([a.get_potential_energy() / units for a in frames])
        dft_pressure = np.array([_pressure_gpa(a) for a in frames])
        model_energy, model_pressure = [], []
        for atoms in frames:
            work = atoms.copy()  # the structure and its initial moments, not the DFT results
            work.calc = calc
            model_energy.append(work.get_potential_energy() / units)
            model_pressure.append(_pressure_gpa(work))
        rows.append(
            {
                "material": material,
                "volumes_A3_per_fu": volumes.tolist(),
                "dft_energy_eV_per_fu": dft_energy.tolist(),
                "model_energy_eV_per_fu": model_energy,
                "dft_pressure_GPa": dft_pressure.tolist(),
                "model_pressure_GPa": model_pressure,
                "dft_fit": _fit(volumes, dft_energy),
                "model_fit": _fit(volumes, np.array(model_energy)),
            }
        )
    cells = []
    for row in rows:
        dft, ours = row["dft_fit"], row["model_fit"]
        worst = np.abs(np.subtract(row["model_pressure_GPa"], row["dft_pressure_GPa"])).max()
        cells.append(
            [
                row["material"],
                f"{dft['volume_A3_per_fu']:.3f}",
                f"{ours['volume_A3_per_fu']:.3f}",
                f"{dft['bulk_modulus_GPa']:.1f}",
                f"{ours['bulk_modulus_GPa']:.1f}",
                f"{worst:.2f}",
            ]
        )
    columns = [
        "material",
        "V0 DFT (Å³/f.u.)",
        "model",
        "B0 DFT (GPa)",
        "model",
        "largest model − DFT pressure (GPa)",
    ]
    caption = (
        "AFM-II, 4-atom cell, volumes from −8 % to +6 % of the yardstick lattice; "
        "Birch–Murnaghan fits of E(V)."
    )
    return rows, _markdown(caption, columns, cells)


Check = tuple[
    Callable[[], list[Atoms]],
    Callable[[dict[str, Atoms], SpinMultiNetCalculator], tuple[list[dict], list[str]]],
]
CHECKS: dict[str, Check] = {
    "gamma_phonons": (gamma_phonon_structures, compare_gamma_phonons),
    "equation_of_state": (equation_of_state_structures, compare_equation_of_state),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=["structures", "compare"])
    parser.add_argument("check", choices=sorted(CHECKS))
    parser.add_argument("folder", type=Path)
    parser.add_argument("--model", default=None, help="model file (default: the shipped one)")
    args = parser.parse_args()
    make_structures, compare = CHECKS[args.check]
    if args.step == "structures":
        frames = make_structures()
        args.folder.mkdir(parents=True, exist_ok=True)
        write(args.folder / "structures.extxyz", frames, format="extxyz")
        print(f"{len(frames)} structures in {args.folder / 'structures.extxyz'}")
        return
    labelled_path = args.folder / "reference.extxyz"
    if not labelled_path.exists():
        raise SystemExit(f"{labelled_path} not found: label it with scripts/dft_checks.sh")
    labelled = read(labelled_path, index=":")
    wanted = [a.info["structure_id"] for a in make_structures()]
    by_id = {a.info["structure_id"]: a for a in labelled}
    missing = [name for name in wanted if name not in by_id]
    if missing:
        raise SystemExit(f"{len(missing)} structures not labelled yet, e.g. {missing[0]}")
    rows, table = compare(by_id, SpinMultiNetCalculator(args.model, dtype="float64"))
    model = args.model or "the shipped model"
    header = (
        f"{args.check}: DFT against {model} (`python scripts/dft_checks.py compare "
        f"{args.check} {args.folder}`, {platform.machine()}, {date.today()})."
    )
    (args.folder / "comparison.json").write_text(json.dumps(rows, indent=2))
    (args.folder / "comparison.md").write_text("\n".join([header, "", *table]) + "\n")
    print("\n".join([header, "", *table]))


if __name__ == "__main__":
    main()
