"""Spin really enters the model, and energies are extensive."""

from __future__ import annotations

import numpy as np

from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered
from spinmultinet_ase.testing.symmetry import evaluate

SUPERCELL = 2 * np.eye(3, dtype=int)


def test_fm_and_afm_differ_and_global_flip_does_not(calc):
    """Same geometry (the 16-atom cell), three spin states, a random model."""
    fm = rocksalt_ordered("NiO", "FM", SUPERCELL)
    afm = rocksalt_ordered("NiO", "AFM-II", SUPERCELL)
    assert np.allclose(fm.positions, afm.positions) and np.allclose(fm.cell, afm.cell)
    flipped = afm.copy()
    flipped.set_initial_magnetic_moments(-afm.get_initial_magnetic_moments())
    e_fm, e_afm, e_flip = (evaluate(calc, a)["energy"] for a in (fm, afm, flipped))
    assert abs(e_fm - e_afm) > 1e-7
    assert abs(e_afm - e_flip) < 1e-10


def test_supercell_energy_is_extensive(calc, nio_afm2):
    """An N x N x N supercell with the tiled moments has N³ times the energy."""
    single = evaluate(calc, nio_afm2)
    for n in (2, 3):
        big = evaluate(calc, nio_afm2.repeat(n))
        assert abs(big["energy"] - n**3 * single["energy"]) < 1e-9 * n**3
        assert np.allclose(big["forces"], np.tile(single["forces"], (n**3, 1)), atol=1e-10)
        assert np.allclose(big["stress"], single["stress"], atol=1e-12)
        assert np.allclose(big["magmoms"], np.tile(single["magmoms"], n**3), atol=1e-10)


def test_cell_smaller_than_cutoff(calc, eager_model):
    """The 2-atom cell (3 Å vectors, cutoff 4.5 Å) equals its large supercell per atom."""
    small = rocksalt_ordered("NiO", "FM")
    assert small.cell.lengths().max() < eager_model.config.cutoff
    big = small.repeat(4)
    e_small = evaluate(calc, small)["energy"] / len(small)
    e_big = evaluate(calc, big)["energy"] / len(big)
    assert abs(e_small - e_big) < 1e-10


def test_guesses_from_the_full_moment_on_are_alike(calc, nio_afm2, eager_model):
    """Ni guesses of m_c or more give one result, as DFT converges them to one state; a
    smaller guess changes it."""
    full = eager_model.config.full_moment
    guesses = nio_afm2.get_initial_magnetic_moments()
    assert np.abs(guesses[[0, 2]]).min() >= full
    reference = evaluate(calc, nio_afm2)
    assert np.abs(reference["magnetic_forces"][[0, 2]]).max() < 1e-12
    for ni_guesses in ([full, -full], [7.0, -3.0 * full]):
        nio_afm2.set_initial_magnetic_moments([ni_guesses[0], 0.0, ni_guesses[1], 0.0])
        alike = evaluate(calc, nio_afm2)
        for key in ("energy", "forces", "stress", "magmoms"):
            assert np.allclose(alike[key], reference[key], rtol=0, atol=1e-12), key
    nio_afm2.set_initial_magnetic_moments([0.7 * full, 0.0, -full, 0.0])
    assert abs(evaluate(calc, nio_afm2)["energy"] - reference["energy"]) > 1e-8


def test_spin_blind_ablation_ignores_moments(nio_afm2):
    from spinmultinet_ase.calculator import SpinMultiNetCalculator
    from spinmultinet_ase.testing.models import as_loaded, random_model

    calc = SpinMultiNetCalculator(as_loaded(random_model(seed=4, spin_input=False)))
    afm = evaluate(calc, nio_afm2)
    nio_afm2.set_initial_magnetic_moments(np.abs(nio_afm2.get_initial_magnetic_moments()))
    fm = evaluate(calc, nio_afm2)
    assert fm["energy"] == afm["energy"]
    assert np.all(fm["magmoms"] == 0) and np.all(fm["magnetic_forces"] == 0)
