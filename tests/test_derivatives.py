"""Forces, stress, magnetic forces and the Hessian against finite differences (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress
from ase.stress import voigt_6_to_full_3x3_stress

from spinmultinet_ase import keys
from spinmultinet_ase.data.graph import atoms_to_graph
from spinmultinet_ase.testing.finite_difference import (
    numerical_hessian,
    numerical_magnetic_forces,
)

# The TorchScript model runs optimised, as users run it (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("optimised_torchscript")


def test_forces_match_finite_differences(calc, nio_afm2):
    nio_afm2.calc = calc
    forces = nio_afm2.get_forces()
    assert np.abs(forces).max() > 1e-4
    assert np.allclose(forces, calculate_numerical_forces(nio_afm2, eps=1e-4), atol=1e-8)


def test_stress_matches_finite_differences(calc, nio_afm2):
    nio_afm2.calc = calc
    analytic = voigt_6_to_full_3x3_stress(nio_afm2.get_stress())
    numeric = calculate_numerical_stress(nio_afm2, eps=1e-5, voigt=False)
    assert np.abs(analytic).max() > 1e-7
    assert np.allclose(analytic, numeric, atol=1e-9)


def test_magnetic_forces_match_finite_differences(calc, nio_afm2, eager_model):
    """Guesses below the full moment m_c (where the energy depends on their size), one whose
    finite-difference steps cross m_c, and 0."""
    full = eager_model.config.full_moment
    nio_afm2.set_initial_magnetic_moments([0.6 * full, 0.25 * full, -0.99995 * full, 0.0])
    nio_afm2.calc = calc
    nio_afm2.get_potential_energy()
    analytic = calc.results[keys.MAGNETIC_FORCES]
    numeric = numerical_magnetic_forces(calc, nio_afm2)
    smooth = [0, 1, 3]  # at m_c itself (atom 2) -dE/dm goes to 0
    assert np.abs(analytic[smooth]).min() > 1e-6
    assert np.allclose(analytic[smooth], numeric[smooth], atol=1e-8)
    # the embedding's third derivative jumps at m_c, so the difference quotient across it is
    # off by ~δ² = 1e-8 times that jump
    assert np.allclose(analytic[2], numeric[2], atol=1e-7)


def test_hessian_matches_finite_differences(eager_model, nio_afm2):
    """Second derivatives by double backward (phonopy relies on smooth forces)."""
    graph = atoms_to_graph(nio_afm2, eager_model.config.species, eager_model.config.cutoff)
    eager_model.train()
    try:
        forces = eager_model(graph)[keys.FORCES].ravel()
        positions = graph[keys.POSITIONS]
        rows = [torch.autograd.grad(f, positions, retain_graph=True)[0].ravel() for f in forces]
    finally:
        eager_model.eval()
    analytic = -torch.stack(rows).detach().numpy()
    from spinmultinet_ase.calculator import SpinMultiNetCalculator
    from spinmultinet_ase.testing.models import as_loaded

    numeric = numerical_hessian(SpinMultiNetCalculator(as_loaded(eager_model)), nio_afm2)
    assert np.allclose(analytic, analytic.T, atol=1e-8)
    assert np.allclose(analytic, numeric, atol=1e-6)
