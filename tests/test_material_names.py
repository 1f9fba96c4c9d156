"""Every material of the oxide family runs through scan, relax, md and phonons by its name
alone (``spinmultinet scan Cr2O3``), on a model that knows all six: each command builds that
material's crystal at its own ordering and writes its outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.formula import Formula
from ase.io import read

from spinmultinet_ase.cli import main
from spinmultinet_ase.export import export_model
from spinmultinet_ase.testing.models import TINY_CONFIG, random_model

ROCKSALT = ("MnO", "FeO", "CoO", "NiO")
CORUNDUM = ("Cr2O3", "Fe2O3")
# The orderings: rocksalt's named ones; corundum's up/down patterns of the four metals
# along the 3-fold axis (FM and the three with zero net moment), and one ferrimagnetic one.
SCANNED = {
    **{name: {"FM", "AFM-I", "AFM-II", "AFM-III"} for name in ROCKSALT},
    **{name: {"uuuu", "uudd", "udud", "uddu", "uuud"} for name in CORUNDUM},
}

# Unpaired d electrons (μB) of the high-spin ion, its charge from balance with O²⁻: Mn²⁺ d⁵,
# Fe²⁺ d⁶, Co²⁺ d⁷, Ni²⁺ d⁸, Cr³⁺ d³, Fe³⁺ d⁵.
HIGH_SPIN = {"MnO": 5, "FeO": 4, "CoO": 3, "NiO": 2, "Cr2O3": 3, "Fe2O3": 5}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A small model with random weights whose species are the six oxides' elements."""
    path = tmp_path_factory.mktemp("model") / "model.pt"
    export_model(random_model(species=["O", "Cr", "Mn", "Fe", "Co", "Ni"], **TINY_CONFIG), path)
    return path


def _metal(name: str) -> str:
    return next(symbol for symbol in Formula(name).count() if symbol != "O")


def _assert_is(atoms, name: str) -> None:
    """``atoms`` is the named oxide, each metal set to the high-spin moment of its ion."""
    assert Formula(atoms.get_chemical_formula()).reduce()[0] == Formula(name)
    sites = np.array(atoms.get_chemical_symbols()) == _metal(name)
    sizes = np.abs(atoms.get_initial_magnetic_moments()[sites])
    np.testing.assert_allclose(sizes, HIGH_SPIN[name])


def _run(argv: list[str], model: Path) -> None:
    assert main([*argv, "--model", str(model), "--quiet"]) == 0


@pytest.mark.parametrize("name", ROCKSALT + CORUNDUM)
def test_scan_by_name(name, model, tmp_path):
    _run(["scan", name, "--steps", "2", "--output-dir", str(tmp_path)], model)
    rows = json.loads((tmp_path / "scan.json").read_text())["orderings"]
    assert {row["ordering"] for row in rows} == SCANNED[name]
    relaxed = read(tmp_path / "relaxed.extxyz", index=":")
    assert len(relaxed) == len(rows)
    for atoms in relaxed:
        _assert_is(atoms, name)


@pytest.mark.parametrize("name", ROCKSALT + CORUNDUM)
def test_relax_by_name(name, model, tmp_path):
    output = tmp_path / "relaxed.extxyz"
    _run(["relax", name, "--steps", "1", "--output", str(output)], model)
    (atoms,) = read(output, index=":")
    _assert_is(atoms, name)
    assert np.isfinite(atoms.get_potential_energy())


@pytest.mark.parametrize("name", ROCKSALT + CORUNDUM)
def test_md_by_name(name, model, tmp_path):
    argv = ["md", name, "--steps", "2", "--interval", "1", "--output-dir", str(tmp_path)]
    _run(argv, model)
    frames = read(next(tmp_path.glob("*.traj")), index=":")
    assert len(frames) == 3  # the start and each step
    for atoms in frames:
        _assert_is(atoms, name)


@pytest.mark.parametrize("name", ROCKSALT + CORUNDUM)
def test_phonons_by_name(name, model, tmp_path):
    """Each ordering's Γ point has the three zero-frequency translations of a crystal."""
    _run(["phonons", name, "--no-relax", "--output-dir", str(tmp_path)], model)
    (tmp_path / "phonons.png").stat()
    for entry in json.loads((tmp_path / "phonons.json").read_text()):
        gamma = np.sort(np.abs(entry["gamma_frequencies"]))
        assert np.all(gamma[:3] < 1e-3) and np.all(gamma[3:] > 1e-3), entry["ordering"]
