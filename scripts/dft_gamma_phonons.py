"""Γ-point phonons of the yardstick cells, DFT against a model.

The Γ point of a cell is exact from displacing the atoms of that cell alone (every periodic
image moves alike), so a handful of small DFT runs give the exact DFT Γ frequencies of the
4-atom AFM-II and FM cells of MnO and NiO at the yardstick lattice: the three optical modes of
the cubic parent's Γ point (split by AFM-II order) and the modes folded in from its L point.
The model gets the same displaced cells.

    python scripts/dft_gamma_phonons.py structures data/gamma_phonons
    (label data/gamma_phonons/structures.extxyz into reference.extxyz with `spinmultinet label`)
    python scripts/dft_gamma_phonons.py compare data/gamma_phonons [--model MODEL.pt]

`bash scripts/dft_gamma_phonons.sh` runs all three (resumable).
"""

from __future__ import annotations

import argparse
import json
import platform
from datetime import date
from pathlib import Path

import numpy as np
from ase.io import read, write

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.dft.structures import yardstick_structures
from spinmultinet_ase.workflows.phonons import displaced_cells, phonons_from_forces

CELLS = [
    f"{material}-yardstick-afm2-4-{ordering}-rh+0.000"
    for material in ("MnO", "NiO")
    for ordering in ("AFM-II", "FM")
]
# Larger than the workflow's default: DFT forces carry SCF noise that a smaller displacement
# would magnify; the model gets the same displacement, so both carry the same O(d²) error.
DISPLACEMENT = 0.01


def _cells() -> list:
    """The undistorted 4-atom AFM-II-cell yardsticks, in the order of ``CELLS``."""
    by_id = {
        atoms.info["structure_id"]: atoms
        for material in ("MnO", "NiO")
        for atoms in yardstick_structures(material)
    }
    return [by_id[name] for name in CELLS]


def write_structures(folder: Path) -> None:
    """The displaced cells of every yardstick cell, each with its own structure id."""
    frames = []
    for atoms in _cells():
        _, displaced = displaced_cells(atoms, np.eye(3, dtype=int), DISPLACEMENT)
        for index, cell in enumerate(displaced):
            cell.info.update(atoms.info)
            cell.info["structure_id"] = f"{atoms.info['structure_id']}-gamma-{index}"
            frames.append(cell)
    folder.mkdir(parents=True, exist_ok=True)
    write(folder / "structures.extxyz", frames, format="extxyz")
    print(f"{len(frames)} displaced cells in {folder / 'structures.extxyz'}")


def compare(folder: Path, model: str | None) -> None:
    """DFT and model Γ frequencies of each cell, to ``comparison.{json,md}`` in ``folder``."""
    labelled = {a.info["structure_id"]: a for a in read(folder / "reference.extxyz", index=":")}
    calc = SpinMultiNetCalculator(model, dtype="float64")
    rows = []
    for atoms in _cells():
        phonon, displaced = displaced_cells(atoms, np.eye(3, dtype=int), DISPLACEMENT)
        ids = [f"{atoms.info['structure_id']}-gamma-{i}" for i in range(len(displaced))]
        if not all(i in labelled for i in ids):
            print(f"{atoms.info['structure_id']}: not all displaced cells labelled yet")
            continue
        dft_forces = [labelled[i].get_forces() for i in ids]
        model_forces = []
        for cell in displaced:
            cell.calc = calc
            model_forces.append(cell.get_forces())
        dft, ours = (
            phonons_from_forces(phonon, atoms, forces, mesh=(2, 2, 2), npoints=5)
            for forces in (dft_forces, model_forces)
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
    machine = f"{platform.machine()}, {date.today()}"
    table = [
        f"Γ-point phonons of the 4-atom yardstick cells, DFT against the model "
        f"(`python scripts/dft_gamma_phonons.py compare {folder}`, {machine}; displacement "
        f"{DISPLACEMENT} Å for both). THz.",
        "",
        "| cell | parent-Γ optical, DFT | model | splitting DFT | model "
        "| largest model − DFT over all 12 Γ modes |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        dft, ours = row["dft_parent_gamma_optical_THz"], row["model_parent_gamma_optical_THz"]
        worst = np.abs(np.subtract(row["model_gamma_THz"], row["dft_gamma_THz"])).max()
        table.append(
            f"| {row['cell']} | {', '.join(f'{f:.3f}' for f in dft)} "
            f"| {', '.join(f'{f:.3f}' for f in ours)} | {max(dft) - min(dft):.3f} "
            f"| {max(ours) - min(ours):.3f} | {worst:.3f} |"
        )
    (folder / "comparison.json").write_text(json.dumps(rows, indent=2))
    (folder / "comparison.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=["structures", "compare"])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--model", default=None, help="model file (default: the shipped one)")
    args = parser.parse_args()
    if args.step == "structures":
        write_structures(args.folder)
    else:
        compare(args.folder, args.model)


if __name__ == "__main__":
    main()
