"""Bad input gets a clear error that says what to fix."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError

from spinmultinet_ase.calculator import SpinMultiNetCalculator


def test_unknown_element(calc):
    atoms = Atoms("CuO", positions=[[0, 0, 0], [1.8, 0, 0]], cell=[4, 4, 4], pbc=True)
    atoms.calc = calc
    with pytest.raises(ValueError, match="Cu not in this model"):
        atoms.get_potential_energy()


def test_vector_moments_for_collinear_model(calc, nio_afm2):
    nio_afm2.set_initial_magnetic_moments(None)
    nio_afm2.set_initial_magnetic_moments(np.ones((len(nio_afm2), 3)))
    nio_afm2.calc = calc
    with pytest.raises(ValueError, match="this model is collinear"):
        nio_afm2.get_potential_energy()


def test_non_finite_positions(calc, nio_afm2):
    nio_afm2.positions[1, 2] = np.nan
    nio_afm2.calc = calc
    with pytest.raises(ValueError, match="positions contain NaN"):
        nio_afm2.get_potential_energy()


def test_non_finite_moments(calc, nio_afm2):
    nio_afm2.set_initial_magnetic_moments([2.0, 0.0, np.inf, 0.0])
    nio_afm2.calc = calc
    with pytest.raises(ValueError, match="initial_magmoms contain NaN or infinity"):
        nio_afm2.get_potential_energy()


def test_stress_of_non_periodic_system(calc):
    atoms = Atoms("NiO", positions=[[0, 0, 0], [2.0, 0, 0]])
    atoms.calc = calc
    assert np.isfinite(atoms.get_potential_energy())
    with pytest.raises(PropertyNotImplementedError, match="periodic in all three directions"):
        atoms.get_stress()


def test_zero_volume_periodic_cell(calc):
    atoms = Atoms("NiO", positions=[[0, 0, 0], [2.0, 0, 0]], cell=[4.0, 4.0, 0.0], pbc=True)
    atoms.calc = calc
    with pytest.raises(ValueError, match="zero length along a periodic direction"):
        atoms.get_stress()


def test_bad_dtype(exported_path):
    with pytest.raises(ValueError, match="dtype must be one of"):
        SpinMultiNetCalculator(exported_path, dtype="float16")


def test_changed_moments_trigger_recalculation(calc, nio_afm2):
    """check_state sees initial_magmoms: the FM energy is not the cached AFM one."""
    nio_afm2.calc = calc
    e_afm = nio_afm2.get_potential_energy()
    nio_afm2.set_initial_magnetic_moments(np.abs(nio_afm2.get_initial_magnetic_moments()))
    assert nio_afm2.get_potential_energy() != e_afm


def test_moments_of_wrong_shape(calc, nio_afm2):
    nio_afm2.set_initial_magnetic_moments(None)
    nio_afm2.set_initial_magnetic_moments(np.ones((len(nio_afm2), 2)))
    nio_afm2.calc = calc
    with pytest.raises(ValueError, match=r"initial_magmoms has shape \(4, 2\); expected \(4,\)"):
        nio_afm2.get_potential_energy()
