"""A model's ordering energies on the held-out shape of the ordering pool against the
two-shell Heisenberg model of our DFT's exchange constants (``data/yardsticks.json``).

A stand-in until the held-out shape is labelled (``docs/ordering_data.md``): DFT has more
than two shells and non-Heisenberg terms, so this bounds nothing, but a model far from it on
orderings DFT's own J1, J2 rank clearly is far from DFT too.

The materials: ``--materials``, else those the model is meant for (its training config's
``data.materials``, else the materials it records it was trained on); each that is not a
rocksalt formula with J1 S², J2 S² in the yardsticks file is left out with one line on stderr.
``--output FILE`` also writes the rows (``unseen_ordering_errors``, DFT read as this
stand-in) as JSON, which ``spinmultinet model-card`` reads from
``RUN_DIR/evaluation/unseen_orderings_heisenberg.json`` (``reference/model_card.py``).

Usage: python scripts/unseen_orderings_heisenberg.py [MODEL] [--materials MnO NiO]
    [--yardsticks data/yardsticks.json] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ase.calculators.singlepoint import SinglePointCalculator

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.dft.ordering_structures import ORDERING_HELD_OUT_CELLS, ordering_pool
from spinmultinet_ase.export import load_model
from spinmultinet_ase.magnetism.rocksalt import ROCKSALT_LATTICE_CONSTANTS
from spinmultinet_ase.materials import recorded_materials
from spinmultinet_ase.outputs import write_text_atomic
from spinmultinet_ase.testing.orderings import two_shell_heisenberg_energy
from spinmultinet_ase.train.config import DataConfig
from spinmultinet_ase.train.evaluate import unseen_ordering_errors

ROOT = Path(__file__).resolve().parents[1]


def meant_for(metadata: Mapping[str, Any]) -> list[str]:
    """The materials a model is meant for: its training config's ``data.materials``, else
    those it records it was trained on (none for a file with neither)."""
    listed = metadata.get("train_config", {}).get("data", {}).get("materials")
    return list(listed or recorded_materials(metadata) or [])


def with_stand_in(materials: list[str], exchange: Mapping[str, Any]) -> list[str]:
    """The ``materials`` the stand-in covers, printing a line on stderr for each other one:
    rocksalt formulas whose J1 S², J2 S² the yardsticks table ``exchange`` has."""
    covered = []
    for material in materials:
        if material not in ROCKSALT_LATTICE_CONSTANTS:
            print(f"{material}: left out, not a rocksalt formula", file=sys.stderr)
        elif "J2S2_meV" not in exchange.get(material, {}):
            print(f"{material}: left out, no J1 S², J2 S² in the yardsticks", file=sys.stderr)
        else:
            covered.append(material)
    return covered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=ROOT / "models/spinmultinet-mno-nio/model.pt")
    parser.add_argument("--materials", nargs="+", help="default: those the model is meant for")
    parser.add_argument("--yardsticks", type=Path, default=ROOT / "data" / "yardsticks.json")
    parser.add_argument("--output", type=Path, help="JSON file for the rows")
    args = parser.parse_args()
    loaded = load_model(args.model)
    calc = SpinMultiNetCalculator(loaded)
    exchange = json.loads(args.yardsticks.read_text())
    materials = with_stand_in(args.materials or meant_for(loaded.metadata), exchange)

    def model_energy(atoms):
        copy = atoms.copy()
        copy.calc = calc
        return copy.get_potential_energy()

    rows = []
    for material in materials:
        a = ROCKSALT_LATTICE_CONSTANTS[material]
        j1s2, j2s2 = exchange[material]["J1S2_meV"], exchange[material]["J2S2_meV"]
        frames = []
        for group in ordering_pool(material):
            for atoms in group:
                if atoms.info["cell_name"] in ORDERING_HELD_OUT_CELLS:
                    energy = two_shell_heisenberg_energy(atoms, a, j1s2, j2s2)
                    atoms.calc = SinglePointCalculator(atoms, energy=energy)
                    frames.append(atoms)
        config = DataConfig(test_cells=ORDERING_HELD_OUT_CELLS)
        for row in unseen_ordering_errors(frames, model_energy, config):
            rows.append(row)
            print(
                f"{material} {row['cell']}: {row['orderings']} orderings, model − Heisenberg "
                f"MAE {row['error_mae_meV_per_fu']:.2f}, max {row['error_max_meV_per_fu']:.2f} "
                f"meV/f.u., Kendall tau {row['kendall_tau']:.2f}, same lowest "
                f"{row['same_lowest']}, pairs reordered (> 1 meV/f.u. apart) "
                f"{row['swapped_resolved_pairs']}"
            )
            for entry in row["relative_meV_per_fu"]:
                print(f"  {entry['ordering']:<10}{entry['dft']:>9.2f}{entry['model']:>9.2f}")
    if args.output:
        write_text_atomic(args.output, json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
