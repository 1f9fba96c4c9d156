"""A model's ordering energies on the held-out shape of the ordering pool against the
two-shell Heisenberg model of our DFT's exchange constants (``data/yardsticks.json``).

A stand-in until the held-out shape is labelled (``docs/ordering_data.md``): DFT has more
than two shells and non-Heisenberg terms, so this bounds nothing, but a model far from it on
orderings DFT's own J1, J2 rank clearly is far from DFT too.

``--output FILE`` also writes the rows (``unseen_ordering_errors``, DFT read as this
stand-in) as JSON, which ``spinmultinet model-card`` reads from
``RUN_DIR/evaluation/unseen_orderings_heisenberg.json`` (``reference/model_card.py``).

Usage: python scripts/unseen_orderings_heisenberg.py [MODEL] [--materials MnO NiO] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ase.calculators.singlepoint import SinglePointCalculator

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.dft.ordering_structures import ORDERING_HELD_OUT_CELLS, ordering_pool
from spinmultinet_ase.export import load_model
from spinmultinet_ase.magnetism.rocksalt import ROCKSALT_LATTICE_CONSTANTS
from spinmultinet_ase.outputs import write_text_atomic
from spinmultinet_ase.testing.orderings import two_shell_heisenberg_energy
from spinmultinet_ase.train.config import DataConfig
from spinmultinet_ase.train.evaluate import unseen_ordering_errors

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=ROOT / "models/spinmultinet-mno-nio/model.pt")
    parser.add_argument("--materials", nargs="+", default=["MnO", "NiO"])
    parser.add_argument("--output", type=Path, help="JSON file for the rows")
    args = parser.parse_args()
    calc = SpinMultiNetCalculator(load_model(args.model))
    exchange = json.loads((ROOT / "data" / "yardsticks.json").read_text())

    def model_energy(atoms):
        copy = atoms.copy()
        copy.calc = calc
        return copy.get_potential_energy()

    rows = []
    for material in args.materials:
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
