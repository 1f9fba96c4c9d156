"""E(3), permutation and time-reversal symmetry of the calculator outputs, in float64."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import molecule

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.testing.models import as_loaded, random_model
from spinmultinet_ase.testing.symmetry import (
    orthogonal_deviation,
    permutation_deviation,
    random_orthogonal,
    time_reversal_deviation,
    translation_deviation,
)

# The TorchScript model runs optimised, as users run it (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("optimised_torchscript")

TOL = 1e-10


@pytest.mark.parametrize("seed", [0, 1])
def test_rotation(calc, nio_afm2, seed):
    assert orthogonal_deviation(calc, nio_afm2, random_orthogonal(seed)) < TOL


@pytest.mark.parametrize("q", [-np.eye(3), np.diag([1.0, -1.0, 1.0])], ids=["inversion", "mirror"])
def test_inversion_and_reflection(calc, nio_afm2, q):
    assert orthogonal_deviation(calc, nio_afm2, q) < TOL


def test_improper_rotation(calc, nio_afm2):
    assert orthogonal_deviation(calc, nio_afm2, random_orthogonal(5, proper=False)) < TOL


def test_translation(calc, nio_afm2):
    assert translation_deviation(calc, nio_afm2, np.array([0.31, -1.7, 2.2])) < TOL


def test_permutation(calc, nio_afm2):
    order = np.random.default_rng(0).permutation(len(nio_afm2))
    assert permutation_deviation(calc, nio_afm2, order) < TOL


def test_time_reversal(calc, nio_afm2):
    assert time_reversal_deviation(calc, nio_afm2) < TOL


def test_time_reversal_flips_nonzero_outputs(calc, nio_afm2):
    """The flip test above must not pass trivially: moments and latents are nonzero."""
    nio_afm2.calc = calc
    assert np.abs(nio_afm2.get_magnetic_moments()).max() > 1e-4
    assert np.abs(calc.results["spin_latents"]).max() > 1e-3


def test_molecule_symmetries(calc):
    """Open boundary conditions: a magnetic NiO2 fragment in vacuum."""
    atoms = molecule("NO2")
    atoms.set_chemical_symbols(["Ni", "O", "O"])
    atoms.set_initial_magnetic_moments([1.5, 0.2, -0.1])
    assert orthogonal_deviation(calc, atoms, random_orthogonal(2, proper=False)) < TOL
    assert time_reversal_deviation(calc, atoms) < TOL


@pytest.fixture(scope="module")
def soc_calc():
    return SpinMultiNetCalculator(as_loaded(random_model(seed=2, spin_mode="noncollinear_soc")))


@pytest.fixture
def canted_nio(nio_afm2):
    rng = np.random.default_rng(4)
    nio_afm2.set_initial_magnetic_moments(None)
    nio_afm2.set_initial_magnetic_moments(rng.normal(size=(len(nio_afm2), 3)))
    return nio_afm2


@pytest.mark.parametrize("proper", [True, False], ids=["rotation", "improper"])
def test_soc_moments_are_axial_vectors(soc_calc, canted_nio, proper):
    q = random_orthogonal(7, proper=proper)
    assert orthogonal_deviation(soc_calc, canted_nio, q) < TOL


def test_soc_time_reversal(soc_calc, canted_nio):
    assert time_reversal_deviation(soc_calc, canted_nio) < TOL


def test_soc_energy_depends_on_spin_orientation_to_lattice(soc_calc, canted_nio):
    """Rotating the moments alone (not the lattice) changes the energy: spin-lattice coupling."""
    canted_nio.calc = soc_calc
    energy = canted_nio.get_potential_energy()
    q = random_orthogonal(8)
    canted_nio.set_initial_magnetic_moments(canted_nio.get_initial_magnetic_moments() @ q.T)
    assert abs(canted_nio.get_potential_energy() - energy) > 1e-8
