"""Energy and forces are continuous as a neighbour crosses the cutoff."""

from __future__ import annotations

import numpy as np
from ase import Atoms

from spinmultinet_ase.testing.symmetry import evaluate


def _dimer(distance: float) -> Atoms:
    atoms = Atoms("NiO", positions=[[0, 0, 0], [distance, 0, 0]])
    atoms.set_initial_magnetic_moments([1.7, 0.1])
    return atoms


def test_dimer_crossing_cutoff(calc, eager_model):
    cutoff = eager_model.config.cutoff
    inside, outside = evaluate(calc, _dimer(cutoff - 1e-4)), evaluate(calc, _dimer(cutoff + 1e-4))
    assert abs(inside["energy"] - outside["energy"]) < 1e-12
    assert np.abs(inside["forces"]).max() < 1e-12
    assert np.abs(outside["forces"]).max() == 0.0
    # the pair does interact further in, and the force fades continuously to zero
    far_inside = evaluate(calc, _dimer(cutoff - 0.8))
    assert abs(far_inside["energy"] - outside["energy"]) > 1e-7
    assert np.abs(far_inside["forces"]).max() > 1e-7
    scale = np.abs(far_inside["forces"]).max()

    def force(gap: float) -> float:
        return np.abs(evaluate(calc, _dimer(cutoff - gap))["forces"]).max()

    # the envelope has zero value, slope and curvature at the cutoff: F ~ gap² or faster
    assert force(0.01) / force(0.005) > 4.0
    assert force(0.001) < 1e-6 * scale
