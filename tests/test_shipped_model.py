"""The shipped default model: loads by default, matches its card, reproduces its yardsticks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ase.io import read
from spinmultinet_ase.models import DEFAULT_MODEL

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.magnetism.yardsticks import yardstick_table

ROOT = Path(__file__).parents[1]
MODEL_DIR = ROOT / "models" / DEFAULT_MODEL

pytestmark = pytest.mark.skipif(
    not (MODEL_DIR / "model.pt").is_file(), reason=f"{DEFAULT_MODEL} has not shipped yet"
)


@pytest.fixture(scope="module")
def calc():
    return SpinMultiNetCalculator()


def test_default_model_matches_its_card(calc):
    card = (MODEL_DIR / "card.md").read_text()
    metadata = calc.metadata
    assert f"species {metadata['species']}" in card
    assert f"cutoff {metadata['cutoff']} Å" in card
    assert metadata["spin_mode"] == "collinear"
    assert (MODEL_DIR / "config.yaml").is_file()


def test_default_model_reproduces_its_yardsticks(calc):
    """The ordering energies in metrics.json, recomputed now on the yardstick cells (the
    structures, so the check does not wait for their DFT labels)."""
    recorded = json.loads((MODEL_DIR / "metrics.json").read_text())["yardsticks"]["model"]
    structures = read(ROOT / "data" / "structures.extxyz", index=":")

    def energy(atoms):
        copy = atoms.copy()
        copy.calc = calc
        return copy.get_potential_energy()

    recomputed = yardstick_table(structures, energy)
    for material, entry in recorded.items():
        for ordering, value in entry["orderings_meV_per_fu"].items():
            now = recomputed[material]["orderings_meV_per_fu"][ordering]
            assert now == pytest.approx(value, abs=1e-3), (material, ordering)
        assert recomputed[material].get("lowest") == entry.get("lowest")
