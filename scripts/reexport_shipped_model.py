"""Re-export the shipped default model with this version's export code.

The network is rebuilt from the config and weights inside ``models/<default>/model.pt`` (see
:func:`spinmultinet_ase.export.reexport_model`). The shipped file is replaced only if the new
one gives the same outputs on every yardstick cell of ``data/structures.extxyz``, to round-off:
within :data:`ROUND_OFF_ULPS` units in the last place of the output's largest magnitude (at
least 1), which code that adds the same terms in another order can change; otherwise it is left
as it is and the script exits with status 1. A file without the record of the materials it was
trained on gets it (``training.trained_materials``), counted on the train split of its own
recorded config of ``data/reference.extxyz``, checked against the data fingerprint and the
train frame count the file records (:func:`spinmultinet_ase.train.trainer.split_materials`).

Usage: ``python scripts/reexport_shipped_model.py``
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase.io import read
from spinmultinet_ase.models import DEFAULT_MODEL

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.export import load_model, reexport_model
from spinmultinet_ase.materials import recorded_materials
from spinmultinet_ase.outputs import atomic_path
from spinmultinet_ase.testing.symmetry import evaluate
from spinmultinet_ase.train.trainer import split_materials

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / DEFAULT_MODEL / "model.pt"
# the labelled file whose frozen copy the shipped model was trained on
DATA = ROOT / "data" / "reference.extxyz"
ROUND_OFF_ULPS = 8


def same_to_round_off(expected: np.ndarray, actual: np.ndarray, eps: float) -> bool:
    """Whether ``actual`` equals ``expected`` to :data:`ROUND_OFF_ULPS` units of ``eps``."""
    expected, actual = np.asarray(expected), np.asarray(actual)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    return bool(np.all(np.abs(actual - expected) <= ROUND_OFF_ULPS * eps * scale))


def differing_outputs(old: Path, new: Path) -> list[str]:
    """The outputs (cell index, name) in which ``new`` differs from ``old`` beyond round-off."""
    cells = [
        a for a in read(ROOT / "data" / "structures.extxyz", index=":") if a.info.get("yardstick")
    ]
    before, after = SpinMultiNetCalculator(old), SpinMultiNetCalculator(new)
    eps = torch.finfo(getattr(torch, before.model.metadata["dtype"])).eps
    differing = []
    for index, atoms in enumerate(cells):
        expected, actual = evaluate(before, atoms), evaluate(after, atoms)
        differing += [
            f"cell {index} {k}"
            for k in expected
            if not same_to_round_off(expected[k], actual[k], eps)
        ]
    return differing


def missing_records(path: Path) -> dict[str, Any]:
    """The training records the model file ``path`` lacks, rebuilt from :data:`DATA`."""
    if recorded_materials(metadata := load_model(path).metadata) is not None:
        return {}
    return {"trained_materials": split_materials(metadata, [DATA])}


def main() -> int:
    torch.set_num_threads(1)  # so that sums over threads add in one order in both files
    added = missing_records(SHIPPED)
    with atomic_path(SHIPPED) as temporary:
        reexport_model(SHIPPED, temporary, training=added)
        differing = differing_outputs(SHIPPED, temporary)
        if differing:
            print(f"not replaced: the re-export differs in {differing}", file=sys.stderr)
            raise SystemExit(1)
    print(f"re-exported {SHIPPED} (outputs the same to round-off on the yardstick cells)")
    for name, value in added.items():
        print(f"added training.{name}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
