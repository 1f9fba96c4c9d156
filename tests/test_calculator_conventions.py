"""The calculator follows ASE's conventions: molecules and slabs, declared extra properties,
ASE file formats, model provenance, devices, and warnings that point at the user's line."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest
from ase import Atoms
from ase.build import fcc111
from ase.calculators.calculator import PropertyNotImplementedError
from ase.io import Trajectory, read, write
from ase.optimize import BFGS

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.export import LoadedModel
from spinmultinet_ase.testing.models import as_loaded

WITHOUT_STRESS = ("energy", "free_energy", "energies", "forces", "magmoms", "magmom")


@pytest.fixture(scope="module")
def calc(exported_path):
    """A calculator around a model file, as users make one."""
    return SpinMultiNetCalculator(exported_path)


def _molecule() -> Atoms:
    return Atoms(
        "NiONi", positions=[[0, 0, 0], [1.9, 0.1, 0], [3.7, 0.5, 0.3]], magmoms=[0.5, 0, -0.7]
    )


def _slab() -> Atoms:
    """A Ni(111) slab: periodic in x and y, vacuum along z."""
    atoms = fcc111("Ni", size=(2, 2, 2), vacuum=5.0)
    atoms.set_initial_magnetic_moments([0.6, -0.6] * 4)
    return atoms


@pytest.mark.parametrize("make", [_molecule, _slab], ids=["molecule", "slab"])
def test_non_periodic_structures_get_all_but_the_stress(calc, make):
    """Default properties (``properties=None``, as ASE tools call it) give energy, forces and
    moments; the stress, asked for explicitly, is ASE's PropertyNotImplementedError."""
    atoms = make()
    calc.calculate(atoms)
    assert set(WITHOUT_STRESS) <= set(calc.results) and "stress" not in calc.results
    assert calc.results["forces"].shape == (len(atoms), 3)
    atoms.calc = calc
    assert atoms.get_potential_energy() == calc.results["energy"]
    with pytest.raises(PropertyNotImplementedError, match="periodic in all three directions"):
        atoms.get_stress()


def test_a_periodic_cell_gets_its_stress_by_default(calc, nio_afm2):
    calc.calculate(nio_afm2)
    assert calc.results["stress"].shape == (6,)


def test_a_refused_request_leaves_no_stale_results(calc, nio_afm2):
    """A stress refused for a molecule leaves the crystal's state whole: the molecule then
    gets its own energy, not the crystal's."""
    molecule = _molecule()
    calc.calculate(nio_afm2)
    with pytest.raises(PropertyNotImplementedError):
        calc.calculate(molecule, ["energy", "stress"])
    molecule.calc = calc
    fresh = SpinMultiNetCalculator(calc.model)
    assert molecule.get_potential_energy() == pytest.approx(fresh.get_potential_energy(molecule))


def test_a_failed_calculation_leaves_no_results(calc, nio_afm2):
    """Bad input found during the calculation: none of the previous structure's results stay
    behind under the new structure."""
    calc.calculate(nio_afm2)
    with pytest.raises(ValueError, match="Cu"):
        calc.calculate(Atoms("CuO", positions=[[0, 0, 0], [1.9, 0, 0]]))
    assert calc.results == {}


def test_magnetic_forces_are_minus_the_moment_gradient(calc):
    """``get_property('magnetic_forces')`` against a central difference of the energy in
    one atom's guessed moment (below ``full_moment``, where the gradient is nonzero)."""
    atoms = _molecule()
    atoms.calc = calc
    magnetic_forces = calc.get_property("magnetic_forces", atoms)
    latents = calc.get_property("spin_latents", atoms)
    assert latents.shape[0] == len(atoms)
    step = 1e-4
    for index in (0, 2):
        energies = []
        for sign in (1, -1):
            moved = atoms.copy()
            moments = moved.get_initial_magnetic_moments()
            moments[index] += sign * step
            moved.set_initial_magnetic_moments(moments)
            energies.append(calc.get_potential_energy(moved))
        expected = -(energies[0] - energies[1]) / (2 * step)
        assert abs(expected) > 1e-4  # the check can fail
        assert magnetic_forces[index] == pytest.approx(expected, rel=1e-5, abs=1e-8)


def test_extxyz_and_trajectory_keep_the_results_and_the_model(
    calc, exported_path, nio_afm2, tmp_path
):
    """ASE's file formats keep the standard properties (extxyz to 8 decimals, through
    SinglePointCalculator); the extra per-atom results go in as arrays; a trajectory records
    which model made them."""
    nio_afm2.calc = calc
    names = ("energy", "energies", "forces", "stress", "magmoms")
    expected = {name: calc.get_property(name, nio_afm2) for name in names}
    nio_afm2.set_array("magnetic_forces", calc.get_property("magnetic_forces", nio_afm2))
    write(tmp_path / "out.extxyz", nio_afm2)
    back = read(tmp_path / "out.extxyz")
    for name in names:
        np.testing.assert_allclose(back.calc.get_property(name, back), expected[name], atol=1e-8)
    np.testing.assert_allclose(
        back.arrays["magnetic_forces"], nio_afm2.arrays["magnetic_forces"], atol=1e-8
    )

    with Trajectory(tmp_path / "out.traj", "w") as trajectory:
        trajectory.write(nio_afm2)
    back = read(tmp_path / "out.traj")
    assert back.get_potential_energy() == pytest.approx(expected["energy"], rel=1e-12)
    (record,) = back.calc.parameters["models"]
    assert record["sha256"] == hashlib.sha256(exported_path.read_bytes()).hexdigest()
    assert record["path"] == str(exported_path.resolve())
    assert back.calc.parameters["cutoff"] == calc.model.cutoff
    assert back.calc.parameters["spin_mode"] == "collinear"


def test_todict_of_a_loaded_model_says_it_had_no_file(eager_model):
    record = SpinMultiNetCalculator(as_loaded(eager_model)).todict()
    assert record["models"] == [{"path": None, "sha256": None}]
    assert record["species"] == list(eager_model.config.species)
    assert record["package_version"]


def test_device_is_honoured_and_checked(eager_model):
    calc = SpinMultiNetCalculator(as_loaded(eager_model), device="cpu", dtype="float32")
    assert {p.device.type for p in calc.model.module.parameters()} == {"cpu"}
    assert calc.todict()["device"] == "cpu" and calc.todict()["dtype"] == "float32"
    for device in ("nonsense", "cuda:7"):
        with pytest.raises(ValueError, match=f"device '{device}' is not usable here") as error:
            SpinMultiNetCalculator(as_loaded(eager_model), device=device)
        assert "\n" not in str(error.value)


def _guess_warning_calc(model) -> SpinMultiNetCalculator:
    """A calculator whose model says Ni was trained with guesses of 0.5–1 μB only."""
    metadata = {**model.metadata, "training": {"guess_ranges_muB": {"Ni": [0.5, 1.0]}}}
    return SpinMultiNetCalculator(LoadedModel(model.module, metadata))


def _relax_one_step(atoms: Atoms) -> None:
    BFGS(atoms, logfile=None).run(fmax=1e-9, steps=1)


@pytest.mark.parametrize(
    "ask",
    [
        lambda atoms: atoms.get_potential_energy(),
        lambda atoms: atoms.calc.get_property("forces", atoms),
        lambda atoms: atoms.calc.calculate(atoms),
        _relax_one_step,
    ],
    ids=["atoms.get_potential_energy", "calc.get_property", "calc.calculate", "BFGS.run"],
)
def test_warnings_point_at_the_users_line(eager_model, nio_afm2, ask):
    """The warning's file is this test file (the user's code), whatever the entry point."""
    nio_afm2.set_initial_magnetic_moments([0.0, 0.0, 0.0, 0.0])
    nio_afm2.calc = _guess_warning_calc(as_loaded(eager_model))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ask(nio_afm2)
    (warning,) = [w for w in caught if "guessed moments on Ni" in str(w.message)]
    assert warning.filename == __file__
