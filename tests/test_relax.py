"""Relaxation: the ``relax`` workflow and command, checked by recomputing the result."""

from __future__ import annotations

import numpy as np
import pytest
from ase.io import read, write
from ase.units import GPa

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.cli import main
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered
from spinmultinet_ase.workflows.relax import relax


@pytest.fixture(scope="module")
def shipped_calc():
    return SpinMultiNetCalculator(dtype="float64")


def test_relax_cli_leaves_no_force_and_keeps_the_spin_input(shipped_calc, tmp_path, capsys):
    start = rocksalt_ordered("MnO", "AFM-II")
    start.rattle(0.05, seed=2)
    start.set_initial_magnetic_moments(start.get_initial_magnetic_moments() * [1.2, 0, 0.7, 0])
    write(tmp_path / "start.extxyz", start)
    out = tmp_path / "relaxed.extxyz"
    fmax = 0.005
    argv = ["relax", str(tmp_path / "start.extxyz"), "--fmax", str(fmax), "--output", str(out)]
    assert main([*argv, "--quiet"]) == 0
    assert "converged" in capsys.readouterr().out
    relaxed = read(out)
    np.testing.assert_array_equal(
        relaxed.get_initial_magnetic_moments(), start.get_initial_magnetic_moments()
    )
    assert relaxed.get_magnetic_moments().shape == (4,)  # the predicted moments are stored
    # Recomputed from the file alone: no force left, no stress beyond the filter's threshold.
    relaxed.calc = shipped_calc
    assert np.linalg.norm(relaxed.get_forces(), axis=1).max() < fmax
    stress_tolerance = fmax * len(relaxed) / relaxed.get_volume()
    assert np.abs(relaxed.get_stress()).max() < stress_tolerance
    start.calc = shipped_calc
    assert relaxed.get_potential_energy() < start.get_potential_energy()


def test_relaxed_stress_balances_the_pressure(shipped_calc):
    atoms = rocksalt_ordered("NiO", "AFM-II")
    fmax = 0.002
    free, converged_free = relax(atoms, shipped_calc, fmax=fmax)
    squeezed, converged = relax(atoms, shipped_calc, fmax=fmax, pressure_GPa=10.0)
    assert converged_free and converged
    stress = squeezed.get_stress()
    tolerance = fmax * len(atoms) / squeezed.get_volume()
    np.testing.assert_allclose(stress[:3], -10.0 * GPa, atol=tolerance)
    np.testing.assert_allclose(stress[3:], 0.0, atol=tolerance)
    assert squeezed.get_volume() < 0.97 * free.get_volume()


def test_pressure_on_a_fixed_cell_is_refused(shipped_calc):
    with pytest.raises(ValueError, match="pressure needs a relaxing cell"):
        relax(rocksalt_ordered("NiO", "FM"), shipped_calc, relax_cell=False, pressure_GPa=1.0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fmax": 0.0}, r"fmax \(eV/Å\) must be a finite number > 0"),
        ({"fmax": float("nan")}, "fmax"),
        ({"steps": 0}, "optimiser steps must be a whole number >= 1"),
        ({"pressure_GPa": float("nan")}, "pressure"),
        ({"optimizer": "LBFGS"}, "optimizer must be one of"),
    ],
)
def test_relax_refuses_bad_options_before_any_step(options, message):
    with pytest.raises(ValueError, match=message):
        relax(rocksalt_ordered("NiO", "FM"), calc=None, **options)  # never reaches the calculator


def test_a_molecule_relaxes_at_fixed_cell_only(shipped_calc, molecule_file, tmp_path, capsys):
    argv = ["relax", str(molecule_file), "--quiet", "--output", str(tmp_path / "r.xyz")]
    assert main(argv) == 2
    assert "--fixed-cell" in capsys.readouterr().err
    assert main([*argv, "--fixed-cell"]) == 0
    relaxed = read(tmp_path / "r.xyz")
    relaxed.calc = shipped_calc
    assert np.linalg.norm(relaxed.get_forces(), axis=1).max() < 0.01
