"""A committee of models: its results are the members' mean, its spread their population std."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.committee import SPREADS, committee_results
from spinmultinet_ase.export import export_model
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered
from spinmultinet_ase.testing.models import as_loaded, random_model
from spinmultinet_ase.testing.threads import in_threads

AVERAGED = ("energy", "energies", "forces", "stress", "magmoms", "magmom", "magnetic_forces")


@pytest.fixture(scope="module")
def member_files(tmp_path_factory) -> list:
    """Two tiny models from different seeds, exported once for the module."""
    folder = tmp_path_factory.mktemp("committee")
    paths = []
    for seed in (21, 22):
        paths.append(folder / f"member{seed}.pt")
        export_model(random_model(seed=seed), paths[-1])
    return paths


@pytest.fixture(scope="module")
def singles(member_files) -> list[SpinMultiNetCalculator]:
    """One calculator per member file."""
    return [SpinMultiNetCalculator(path) for path in member_files]


@pytest.fixture(scope="module")
def committee(member_files) -> SpinMultiNetCalculator:
    return SpinMultiNetCalculator(member_files)


def _crystal() -> Atoms:
    atoms = rocksalt_ordered("NiO", "AFM-II")
    atoms.rattle(0.05, seed=7)
    atoms.set_initial_magnetic_moments([0.8, 0.0, -0.6, 0.0])
    return atoms


def _results(calc: SpinMultiNetCalculator, atoms: Atoms) -> dict:
    calc.calculate(atoms.copy())
    return dict(calc.results)


def test_mean_and_spread_are_numpys_over_the_members(singles, committee):
    atoms = _crystal()
    members = [_results(calc, atoms) for calc in singles]
    committee = _results(committee, atoms)
    for name in AVERAGED:
        stacked = np.array([member[name] for member in members])
        np.testing.assert_allclose(committee[name], stacked.mean(axis=0), rtol=1e-10, atol=1e-14)
        if name in SPREADS:
            spread = stacked.std(axis=0, ddof=0)
            assert np.all(spread > 0), name  # different seeds disagree everywhere
            np.testing.assert_allclose(committee[SPREADS[name]], spread, rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(committee["free_energy"], committee["energy"])


def test_population_spread_and_no_stress_without_one():
    """The spread is the population std (ddof=0: 1 for 1 and 3, not √2); members without a
    stress (a molecule) give a committee without one."""
    members = [
        {"energy": energy, "forces": np.full((2, 3), energy), "magmoms": np.zeros(2)}
        for energy in (1.0, 3.0)
    ]
    results = committee_results(members)
    assert results["energy"] == 2.0 and results["energy_std"] == 1.0
    np.testing.assert_array_equal(results["forces_std"], np.ones((2, 3)))
    assert "stress" not in results and "stress_std" not in results


def test_identical_members_have_no_spread(singles, member_files):
    atoms = _crystal()
    single = _results(singles[0], atoms)
    committee = _results(SpinMultiNetCalculator([member_files[0]] * 2), atoms)
    for name, spread in SPREADS.items():
        assert np.all(committee[spread] == 0.0), spread
        np.testing.assert_allclose(committee[name], single[name], rtol=1e-12, atol=1e-15)


def test_spreads_are_declared_and_reachable(singles, committee):
    """A committee declares the spreads (and no spin latents, which are per model); a single
    model declares no spreads, and the class's list stays as it was."""
    declared = [*SpinMultiNetCalculator.implemented_properties]
    single = singles[0]
    assert "energy_std" not in declared
    assert SpinMultiNetCalculator.implemented_properties == declared
    assert single.implemented_properties == declared
    assert set(SPREADS.values()) <= set(committee.implemented_properties)
    atoms = _crystal()
    atoms.calc = committee
    forces = atoms.get_forces()
    assert committee.get_property("forces_std", atoms).shape == forces.shape
    assert committee.get_property("stress_std", atoms).shape == (6,)
    assert isinstance(committee.get_property("energy_std", atoms), float)
    with pytest.raises(PropertyNotImplementedError):
        committee.get_property("spin_latents", atoms)
    with pytest.raises(PropertyNotImplementedError):
        single.get_property("energy_std", atoms)


def test_todict_names_every_member_file(committee, member_files):
    record = committee.todict()
    assert [model["path"] for model in record["models"]] == [
        str(path.resolve()) for path in member_files
    ]
    for model, path in zip(record["models"], member_files, strict=True):
        assert model["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def _variant(**overrides):
    """A very small eager model (building is what costs here)."""
    return as_loaded(random_model(seed=5, lmax=1, num_layers=1, **overrides))


@pytest.fixture(scope="module")
def base_variant():
    return _variant()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"cutoff": 4.0}, "has cutoff 4.0, model 1 has 4.5"),
        ({"spin_mode": "noncollinear"}, "has spin mode noncollinear, model 1 has collinear"),
        ({"species": ("O", "Ni", "Mn", "Fe", "Co")}, "has species"),
        ({"dtype": torch.float32}, "committee model 2 is float32, model 1 is float64"),
    ],
    ids=["cutoff", "spin mode", "species order", "dtype"],
)
def test_mismatched_members_are_refused_in_one_line(base_variant, overrides, message):
    with pytest.raises(ValueError, match=message) as error:
        SpinMultiNetCalculator([base_variant, _variant(**overrides)])
    assert "\n" not in str(error.value)


def test_loaded_members_are_copied_not_converted(base_variant):
    """Loaded models in a committee with ``dtype=`` stay as the caller had them; the mixed
    dtypes are then allowed, as all run in the dtype asked for."""
    members = [base_variant, _variant(dtype=torch.float32)]
    calc = SpinMultiNetCalculator(members, dtype="float32")
    assert next(members[0].module.parameters()).dtype == torch.float64
    assert {next(m.module.parameters()).dtype for m in calc.models} == {torch.float32}
    assert np.isfinite(calc.get_potential_energy(_crystal()))


def test_no_model_is_refused():
    with pytest.raises(ValueError, match="no model given"):
        SpinMultiNetCalculator([])


def test_a_committee_pickles_and_serves_threads(committee):
    """A pickled committee gives its original's results; two threads sharing one get their
    own structure's results (the lock covers the whole committee)."""
    calc = committee
    structures = [_crystal(), _crystal()]
    structures[1].rattle(0.05, seed=8)
    serial = [_results(calc, atoms) for atoms in structures]
    copied = pickle.loads(pickle.dumps(calc))
    np.testing.assert_allclose(
        _results(copied, structures[0])["forces_std"], serial[0]["forces_std"], rtol=1e-10
    )

    def energy_and_forces(atoms: Atoms) -> tuple:
        atoms = atoms.copy()
        return calc.get_property("energy", atoms), calc.get_forces(atoms)

    found = in_threads(energy_and_forces, structures, repeats=2)
    for k in range(2):
        assert len(found[k]) == 2
        for energy, forces in found[k]:
            assert energy == pytest.approx(serial[k]["energy"], rel=1e-10)
            np.testing.assert_allclose(forces, serial[k]["forces"], rtol=1e-10, atol=1e-14)
