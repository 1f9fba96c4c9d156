"""Shared fixtures: small random models, eager and exported, rocksalt test structures, and
the TorchScript executor mode."""

from __future__ import annotations

import pytest
import torch
from ase import Atoms
from ase.io import write

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.export import export_model
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered
from spinmultinet_ase.testing.models import as_loaded, random_model


@pytest.fixture(scope="session", autouse=True)
def _unoptimised_torchscript():
    """TorchScript models called from the tests' thread run without the graph executor's
    optimisation passes (a per-thread setting), which take seconds per loaded model over its
    first calls and change results only at round-off. Tests of the optimised path, the one
    users run, take :func:`optimised_torchscript`; subprocesses and other threads run it."""
    with torch.jit.optimized_execution(False):
        yield


@pytest.fixture
def optimised_torchscript():
    """TorchScript models run with the graph executor's optimisation, as outside the tests."""
    with torch.jit.optimized_execution(True):
        yield


@pytest.fixture(scope="session")
def eager_model():
    return random_model(seed=1)


@pytest.fixture(scope="session")
def exported_path(eager_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "random.pt"
    export_model(eager_model, path)
    return path


@pytest.fixture(scope="session", params=["eager", "exported"])
def calc(request, eager_model, exported_path):
    """The calculator around the eager model and around its TorchScript export."""
    if request.param == "eager":
        return SpinMultiNetCalculator(as_loaded(eager_model))
    return SpinMultiNetCalculator(exported_path)


@pytest.fixture
def nio_afm2():
    """A rattled 4-atom AFM-II NiO cell with imperfect moment guesses."""
    atoms = rocksalt_ordered("NiO", "AFM-II")
    atoms.rattle(0.08, seed=3)
    atoms.set_initial_magnetic_moments(atoms.get_initial_magnetic_moments() * [1.1, 0, 0.8, 0])
    return atoms


@pytest.fixture
def molecule_file(tmp_path):
    """An extxyz file of a NiO molecule (not periodic) with moment guesses."""
    path = tmp_path / "NiO_molecule.extxyz"
    write(path, Atoms("NiO", positions=[[0, 0, 0], [1.9, 0, 0]], magmoms=[2.0, 0.0]))
    return path


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
