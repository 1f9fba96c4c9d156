"""Relax, MD and phonons beyond rocksalt, through the command line: bcc Fe, corundum Cr2O3,
rutile CrO2, an fcc Ni slab; one meaning of ``--supercell``; and the clear errors.

A tiny random model tests the mechanics (outputs, moments, shapes), with oracles that hold
for any potential: a relaxation lowers the energy, NVE conserves energy, energy is extensive
in the supercell.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc100
from ase.io import read, write

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.cli import main
from spinmultinet_ase.export import export_model
from spinmultinet_ase.testing.crystals import corundum, rutile
from spinmultinet_ase.testing.models import as_loaded, random_model
from spinmultinet_ase.workflows.inputs import single_structure

SPECIES = ("O", "Cr", "Fe", "Ni", "Zn")
TINY = dict(channels=4, spin_channels=4, lmax=1, num_layers=1, cutoff=3.0, radial_hidden=8)


@pytest.fixture(scope="module")
def model():
    return random_model(seed=3, species=SPECIES, **TINY)


@pytest.fixture(scope="module")
def model_path(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    export_model(model, path)
    return str(path)


@pytest.fixture(scope="module")
def calc(model):
    return SpinMultiNetCalculator(as_loaded(model))


def _energy(atoms: Atoms, calc) -> float:
    atoms = atoms.copy()
    atoms.calc = calc
    return atoms.get_potential_energy()


def test_md_of_bcc_iron_from_a_file_without_moments(model_path, tmp_path, capsys):
    path = tmp_path / "Fe.cif"
    iron = bulk("Fe", "bcc", a=2.87, cubic=True)
    iron.rattle(0.1, seed=2)  # off the lattice sites, where forces vanish by symmetry
    write(path, iron)
    out = tmp_path / "md"
    argv = ["md", str(path), "--supercell", "2", "2", "2", "--steps", "20", "--interval", "4"]
    argv += ["--dtype", "float64", "--model", model_path, "--quiet"]
    assert main([*argv, "--output-dir", str(out)]) == 0
    assert "total-energy drift" in capsys.readouterr().out
    frames = read(out / "md.traj", index=":")
    # 2x2x2 of the 2-atom cubic cell; no moment set: every Fe gets its default guess, FM
    assert len(frames[-1]) == 16
    np.testing.assert_allclose(frames[-1].get_initial_magnetic_moments(), 4.0)
    trace = json.loads((out / "md.json").read_text())["trace"]
    total = np.array(trace["total_energy_per_atom"])
    kinetic = total - np.array(trace["potential_energy_per_atom"])
    # NVE conserves the total energy: it moves far less than the kinetic energy swaps
    assert np.ptp(total) < 1e-2 * np.ptp(kinetic) and np.ptp(kinetic) > 1e-5


def test_relax_of_corundum_in_a_named_pattern(model_path, calc, tmp_path, capsys):
    path = tmp_path / "Cr2O3.cif"
    write(path, corundum())
    output = tmp_path / "relaxed.extxyz"
    argv = ["relax", str(path), "--ordering", "uddu", "--steps", "8", "--model", model_path]
    assert main([*argv, "--quiet", "--output", str(output)]) == 0
    relaxed = read(output)
    moments = relaxed.get_initial_magnetic_moments()
    chromium = np.array(relaxed.get_chemical_symbols()) == "Cr"
    np.testing.assert_allclose(moments[chromium], [3, -3, -3, 3])  # default guess for Cr
    np.testing.assert_allclose(moments[~chromium], 0.0)
    ideal = single_structure(str(path), "uddu")
    assert _energy(relaxed, calc) < _energy(ideal, calc)
    # a pattern with a letter per site of another cell: one line, exit code 2
    capsys.readouterr()
    assert main([*argv, "--ordering", "udu", "--output", str(tmp_path / "x.extxyz")]) == 2
    assert "does not fit this cell" in capsys.readouterr().err


def test_phonons_of_rutile_in_two_orderings(model_path, tmp_path, capsys):
    path = tmp_path / "CrO2.cif"
    write(path, rutile())
    out = tmp_path / "ph"
    argv = ["phonons", str(path), "--orderings", "FM", "ud", "--phonon-supercell", "1", "1", "2"]
    argv += ["--no-relax", "--model", model_path, "--quiet", "--output-dir", str(out)]
    assert main(argv) == 0
    assert "ud: optical modes" in capsys.readouterr().out
    results = json.loads((out / "phonons.json").read_text())
    assert [r["ordering"] for r in results] == ["FM", "ud"]
    for result in results:
        assert len(result["gamma_frequencies"]) == 18 and np.all(
            np.isfinite(result["gamma_frequencies"])
        )


def test_a_slab_relaxes_at_fixed_cell(model_path, calc, tmp_path, capsys):
    slab = fcc100("Ni", size=(2, 2, 3), a=3.52, vacuum=6.0)
    slab.rattle(0.05, seed=1)
    path = tmp_path / "slab.extxyz"
    write(path, slab)
    output = tmp_path / "relaxed.extxyz"
    argv = ["relax", str(path), "--steps", "10", "--model", model_path, "--quiet"]
    assert main([*argv, "--output", str(output)]) == 2
    assert "--fixed-cell" in capsys.readouterr().err
    assert main([*argv, "--fixed-cell", "--output", str(output)]) == 0
    relaxed = read(output)
    np.testing.assert_allclose(relaxed.get_initial_magnetic_moments(), 2.0)
    assert _energy(relaxed, calc) < _energy(single_structure(str(path)), calc)


def test_supercell_means_the_supercell_of_the_given_cell(calc, tmp_path):
    """3 or 9 integers, ``P @ cell`` of the file's cell or of a formula's 2-atom primitive
    cell: the atoms multiply by det P and the energy with them."""
    path = tmp_path / "Cr2O3.cif"
    write(path, corundum())
    cell = single_structure(str(path))
    doubled = single_structure(str(path), supercell=[1, 1, 2])
    np.testing.assert_allclose(doubled.cell.array, np.diag([1, 1, 2]) @ cell.cell.array)
    assert _energy(doubled, calc) == pytest.approx(2 * _energy(cell, calc), rel=1e-10)
    matrix = single_structure(str(path), supercell=[1, 0, 0, 0, 1, 0, 0, 0, 2])
    np.testing.assert_allclose(matrix.positions, doubled.positions)

    formula = single_structure("NiO", "AFM-II")  # its smallest cell, 4 atoms
    larger = single_structure("NiO", "AFM-II", supercell=[2, 2, 2])
    assert len(formula) == 4 and len(larger) == 16
    assert _energy(larger, calc) == pytest.approx(4 * _energy(formula, calc), rel=1e-10)
    with pytest.raises(ValueError, match="does not fit --supercell 3 0 0") as error:
        single_structure("NiO", "AFM-II", supercell=[3, 3, 3])
    # the smallest cell the message names is the default cell
    smallest = re.search(r"smallest cell is --supercell ([-\d ]+)", str(error.value))
    named = single_structure("NiO", "AFM-II", supercell=list(map(int, smallest[1].split())))
    assert _energy(named, calc) == pytest.approx(_energy(formula, calc), rel=1e-10)


@pytest.mark.parametrize(
    ("structure", "arguments", "message"),
    [
        (bulk("ZnO", "wurtzite", a=3.25, c=5.2), ["--ordering", "FM"], "no magnetic site"),
        (bulk("Gd", "hcp", a=3.6, c=5.8), [], "Gd"),
        (corundum(), ["--ordering", "AFM-II"], "does not fit this cell"),
        (corundum(), ["--supercell", "1", "1", "0"], "determinant"),
    ],
)
def test_clear_errors(structure, arguments, message, model_path, tmp_path, capsys):
    path = tmp_path / "structure.cif"
    write(path, structure)
    argv = ["relax", str(path), *arguments, "--model", model_path, "--quiet"]
    assert main([*argv, "--output", str(tmp_path / "out.extxyz")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
