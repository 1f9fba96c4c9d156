"""AOTInductor packages (``.pt2``): the calculator on a package against the TorchScript export
of the same model, on structures of sizes the package was not compiled on, and bad files.

Compiling even the tiny model's package takes minutes (C++ compilation of the generated
kernels: 1.5 to 5 minutes on the shared 2-core machine, past the minute a test should take), so
one package, made through the CLI from the TorchScript file, serves every test of this module.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from spinmultinet_ase import aoti
from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.cli import main
from spinmultinet_ase.export import ModelFileError, export_model, load_model
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered
from spinmultinet_ase.testing.models import random_model
from spinmultinet_ase.testing.symmetry import evaluate

TINY = dict(channels=4, spin_channels=4, lmax=1, num_layers=1, radial_hidden=8)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny float64 model as TorchScript and, exported from that file, as a package."""
    folder = tmp_path_factory.mktemp("aoti")
    export_model(random_model(seed=2, **TINY), folder / "model.pt")
    assert main(["export", str(folder / "model.pt"), str(folder / "model.pt2")]) == 0
    return folder / "model.pt", folder / "model.pt2"


def _structures() -> list[Atoms]:
    """Structures of other atom and edge counts than the traced example, and each other's."""
    small = rocksalt_ordered("NiO", "AFM-II")
    small.rattle(0.08, seed=3)
    small.set_initial_magnetic_moments(small.get_initial_magnetic_moments() * [1.1, 0, 0.8, 0])
    large = rocksalt_ordered("MnO", "AFM-I").repeat((2, 1, 1))
    large.rattle(0.05, seed=4)
    molecule = Atoms("NiO", positions=[[0, 0, 0], [1.9, 0.1, 0]], magmoms=[2.0, 0.0])
    iron = bulk("Fe", "bcc", a=2.87)
    iron.set_initial_magnetic_moments([2.2])
    return [small, large, molecule, iron]


def test_package_matches_torchscript(files):
    """Every output of the package equals the TorchScript file's to round-off, in float64, on
    a 4-, a 16-, a 2-atom (a molecule) and a 1-atom structure (the smallest a package takes)."""
    torchscript, package = (SpinMultiNetCalculator(path) for path in files)
    assert package.model.metadata["inputs"] == list(aoti.INPUTS)
    traced = aoti.example_graph(random_model(seed=2, **TINY))["positions"].shape[0]
    sizes = set()
    for atoms in _structures():
        expected, actual = evaluate(torchscript, atoms), evaluate(package, atoms)
        assert expected.keys() == actual.keys()
        for key, value in expected.items():
            assert np.allclose(actual[key], value, rtol=1e-10, atol=1e-10), key
        sizes.add(len(atoms))
    assert len(sizes) == 4 and traced not in sizes


def test_a_structure_without_neighbour_pairs_is_one_line(files):
    lonely = Atoms("Ni", magmoms=[2.0])
    lonely.calc = SpinMultiNetCalculator(files[1])
    with pytest.raises(ValueError, match="neighbour pair") as error:
        lonely.get_potential_energy()
    assert "\n" not in str(error.value)


def test_package_metadata_and_pickling(files):
    torchscript, package = (load_model(path) for path in files)
    assert {key: package.metadata[key] for key in torchscript.metadata} == torchscript.metadata
    assert package.module.metadata()["AOTI_DEVICE_KEY"] == "cpu"
    atoms = _structures()[0]
    calc = SpinMultiNetCalculator(files[1])
    energy = evaluate(calc, atoms)["energy"]
    assert evaluate(pickle.loads(pickle.dumps(calc)), atoms)["energy"] == energy


@pytest.mark.parametrize("what", ["text", "torchscript"])
def test_a_file_that_is_no_package_is_one_line(files, tmp_path, what):
    bad = tmp_path / "model.pt2"
    if what == "text":
        bad.write_text("not a model\n")
    else:
        bad.write_bytes(files[0].read_bytes())
    with pytest.raises(ModelFileError, match="is not an AOTInductor package") as error:
        SpinMultiNetCalculator(bad)
    assert "\n" not in str(error.value)


def test_a_package_runs_in_its_own_dtype_only(files):
    with pytest.raises(ModelFileError, match="compiled for float64") as error:
        SpinMultiNetCalculator(files[1], dtype="float32")
    assert "\n" not in str(error.value)
    assert SpinMultiNetCalculator(files[1], dtype="float64").dtype == torch.float64


def test_a_package_is_no_source_to_export(files, tmp_path, capsys):
    capsys.readouterr()
    assert main(["export", str(files[1]), str(tmp_path / "again.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no weights" in err[0], err
    assert not (tmp_path / "again.pt").exists()
