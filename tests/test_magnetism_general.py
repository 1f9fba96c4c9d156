"""Scans, exchange shells and T_N beyond rocksalt: corundum, spinel, rutile, metals, perovskite."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import write

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.cli import main
from spinmultinet_ase.export import export_model
from spinmultinet_ase.magnetism.exchange import exchange_shells
from spinmultinet_ase.magnetism.rocksalt import (
    ORDERINGS,
    hermite_normal_forms,
    metal_site_indices,
    ordering_fits_cell,
    rocksalt_ordered,
    rocksalt_primitive,
)
from spinmultinet_ase.magnetism.sites import is_ferromagnetic, magnetic_sites
from spinmultinet_ase.testing.crystals import corundum, perovskite, rutile, spinel
from spinmultinet_ase.testing.models import as_loaded, random_model
from spinmultinet_ase.workflows.scan import run_scan

SPECIES = ("O", "Cr", "Mn", "Fe", "Ni", "Zn", "Sr")
# a tiny random model and one relaxation step: the mechanics, not the physics
TINY = dict(channels=4, spin_channels=4, lmax=1, num_layers=1, cutoff=3.0, radial_hidden=8)
FAST = dict(steps=1, fmax=0.05, progress=False)
TINY_WIDE = TINY | {"cutoff": 4.5}


@pytest.fixture(scope="module")
def model():
    return random_model(seed=2, species=SPECIES, **TINY)


@pytest.fixture(scope="module")
def calc(model):
    return SpinMultiNetCalculator(as_loaded(model))


CASES = {
    # structure, supercell, shells, number of symmetry-distinct orderings (counted by hand:
    # corundum FM, 3:1 and the three compensated states; the pyrochlore tetrahedron of the
    # spinel FM, 3:1, 2:2; ...)
    "corundum": (corundum, None, 3, 5),
    "spinel": (spinel, None, 2, 3),
    "rutile": (rutile, np.diag([1, 1, 2]), 3, 4),
    "bcc Fe": (lambda: bulk("Fe", "bcc", a=2.87, cubic=True), np.diag([1, 1, 2]), 2, 4),
    "fcc Ni": (lambda: bulk("Ni", "fcc", a=3.52, cubic=True), None, 1, 3),
    "perovskite": (perovskite, np.diag([2, 1, 1]), 1, 2),
}


@pytest.mark.parametrize("name", list(CASES))
def test_scan_runs_on_any_crystal(name, calc):
    """Every symmetry-distinct ordering is evaluated and relaxed, and J's are fitted."""
    build, supercell, shells, expected = CASES[name]
    outcome = run_scan(build(), calc, supercell=supercell, num_shells=shells, **FAST)
    assert len(outcome.results) == expected
    assert outcome.results[0].ordering in outcome.relaxed
    assert min(r.relaxed_relative_meV_per_ion for r in outcome.results) == 0.0
    for r in outcome.results:
        assert r.relaxed_relative_meV == pytest.approx(
            r.relaxed_relative_meV_per_ion * r.magnetic_ions / r.formula_units
        )
    if outcome.exchange is None:
        assert "cannot determine" in outcome.no_fit_reason
    else:
        assert len(outcome.exchange.shells) == shells
        assert np.isfinite(outcome.exchange.rms_residual_meV_per_ion)


def test_corundum_shells_are_the_known_ones():
    """Cr2O3: face-sharing (1), edge-sharing (3), then 3 and 6 partners per Cr, as in the
    literature's J1..J4 of corundum."""
    atoms = corundum()
    atoms.set_initial_magnetic_moments([3.0 if s == "Cr" else 0 for s in atoms.symbols])
    shells = exchange_shells(atoms, 4).shells
    assert [s.coordination for s in shells] == [1, 3, 3, 6]
    assert shells[0].distance == pytest.approx(2 * (0.3475 - 0.25) * 13.59, abs=1e-6)


def test_corundum_fit_recovers_its_heisenberg_constants():
    """Energies made from a known J1..J3 over the orderings of a 2x1x1 corundum supercell come
    back exactly, with zero residual; counted by brute force over all pairs by distance."""
    from ase.neighborlist import neighbor_list

    from spinmultinet_ase.magnetism.exchange import fit_exchange
    from spinmultinet_ase.magnetism.orderings import enumerate_collinear_orderings, magnetic_cell

    cell = magnetic_cell(corundum(), np.diag([2, 1, 1]))
    orderings = enumerate_collinear_orderings(cell)
    js = {2.650: 0.010, 2.889: 0.004, 3.426: -0.002}  # by distance (Å), eV
    energies = []
    for atoms in orderings:
        moments = atoms.get_initial_magnetic_moments()
        i, j, d = neighbor_list("ijd", atoms, 3.5)
        energy = sum(
            value * np.sum(np.sign(moments[i] * moments[j])[np.abs(d - r) < 1e-3])
            for r, value in js.items()
        )
        energies.append(-8.0 + 0.5 * energy / np.count_nonzero(moments))
    fit = fit_exchange(exchange_shells(cell, 3), orderings, energies)
    assert fit.JS2 == pytest.approx(list(js.values()), abs=1e-10)
    assert fit.rms_residual < 1e-10 and fit.degrees_of_freedom == len(orderings) - 4


def test_scan_cli_on_a_cif_file(model, tmp_path, capsys):
    path = tmp_path / "Cr2O3.cif"
    write(path, corundum())
    model_path = tmp_path / "model.pt"
    export_model(model, model_path)
    argv = ["scan", str(path), "--model", str(model_path), "--steps", "1", "--quiet"]
    assert main([*argv, "--shells", "3", "--output-dir", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "meV/ion" in out and "J3 S²" in out and "rms departure" in out
    # bad input: one line, exit code 2
    assert main([*argv, "--orderings", "udu"]) == 2
    assert "does not fit this cell" in capsys.readouterr().err
    write(tmp_path / "ZnO.cif", bulk("ZnO", "wurtzite", a=3.25, c=5.2))
    assert main(["scan", str(tmp_path / "ZnO.cif"), "--model", str(model_path)]) == 2
    assert "no magnetic site" in capsys.readouterr().err


def test_scan_and_relax_take_a_corundum_formula_by_name(model, tmp_path, capsys):
    """``scan Cr2O3`` enumerates the orderings of the reference cell (the five classes of the
    file path); ``relax Fe2O3`` starts from the observed + − − + order."""
    from spinmultinet_ase.magnetism.corundum import corundum_cell
    from spinmultinet_ase.magnetism.orderings import enumerate_collinear_orderings
    from spinmultinet_ase.workflows.inputs import single_structure

    model_path = tmp_path / "model.pt"
    export_model(model, model_path)
    argv = ["scan", "Cr2O3", "--model", str(model_path), "--steps", "1", "--quiet"]
    assert main([*argv, "--output-dir", str(tmp_path / "scan")]) == 0
    out = capsys.readouterr().out
    expected = {a.info["ordering"] for a in enumerate_collinear_orderings(corundum_cell("Cr2O3"))}
    assert len(expected) == 5 and all(pattern in out for pattern in expected)
    rows = json.loads((tmp_path / "scan" / "scan.json").read_text())["orderings"]
    assert [row["ordering"] for row in rows if row["observed_ground_state"]] == ["udud"]
    assert "\nudud *" in out and "* : the observed ground state (experiment)" in out
    fe2o3 = single_structure("Fe2O3")
    metals = fe2o3.symbols == "Fe"
    assert np.array_equal(np.sign(fe2o3.get_initial_magnetic_moments()[metals]), [1, -1, -1, 1])
    np.testing.assert_allclose(fe2o3.positions, corundum_cell("Fe2O3").positions)


@pytest.mark.parametrize("command", ["relax", "md"])
def test_structure_help_is_true_for_both_formula_families(command, capsys):
    """The help names both families and their given cells and default orderings, and the
    structures built follow it: a rocksalt formula's supercell of its 2-atom cell, AFM-II by
    default; a corundum formula's of its 10-atom cell, in its observed ground state."""
    from spinmultinet_ase.magnetism.corundum import CORUNDUM_PARAMETERS, corundum_cell
    from spinmultinet_ase.workflows.inputs import single_structure

    assert main([command, "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    for phrase in ("Cr2O3, Fe2O3", "2-atom primitive cell", "10-atom rhombohedral cell"):
        assert phrase in help_text
    assert "AFM-II for a rocksalt formula, the observed ground state for a corundum" in help_text
    assert len(single_structure("NiO", "FM", [1, 1, 1])) == 2
    afm2 = rocksalt_ordered("NiO", "AFM-II")
    default = single_structure("NiO")
    np.testing.assert_allclose(default.cell.array, afm2.cell.array)
    np.testing.assert_allclose(
        default.get_initial_magnetic_moments(), afm2.get_initial_magnetic_moments()
    )
    for formula, parameters in CORUNDUM_PARAMETERS.items():
        doubled = single_structure(formula, supercell=[2, 1, 1])
        cell = corundum_cell(formula).cell.array
        np.testing.assert_allclose(doubled.cell.array, np.diag([2, 1, 1]) @ cell, atol=1e-12)
        moments = single_structure(formula).get_initial_magnetic_moments()
        pattern = "".join("u" if m > 0 else "d" for m in moments if m != 0)
        assert pattern == parameters.ground_state


@pytest.mark.parametrize(
    ("formula", "observed", "supercell"),
    [("Cr2O3", "udud", [2, 1, 1]), ("Fe2O3", "uddu", [2, 1, 1]), ("NiO", "AFM-II", [2, 2, 2])],
)
def test_a_scan_by_name_flags_the_observed_ground_state(formula, observed, supercell):
    """Cr2O3 + − + −, α-Fe2O3 + − − + along the 3-fold axis (the metals of the 10-atom cell in
    height order), the monoxides AFM-II: flagged in the material's own cell, and in a
    supercell of it on one ordering, with the same energy per formula unit (the same state,
    tiled)."""
    calc = SpinMultiNetCalculator(as_loaded(random_model(seed=2, species=SPECIES, **TINY_WIDE)))
    primitive = run_scan(formula, calc, steps=0, progress=False).results
    assert [r.ordering for r in primitive if r.observed_ground_state] == [observed]
    ground = next(r for r in primitive if r.ordering == observed).ideal_energy
    larger = run_scan(formula, calc, supercell=np.diag(supercell), steps=0, progress=False)
    (flagged,) = [r for r in larger.results if r.observed_ground_state]
    assert flagged.ideal_energy == pytest.approx(ground, abs=1e-9)
    assert any(abs(r.ideal_energy - ground) > 1e-6 for r in larger.results)  # not spin-blind


def test_scan_with_monte_carlo_runs(calc):
    """The scan's Monte Carlo path on bcc Fe (mechanics only: a few sweeps)."""
    atoms = bulk("Fe", "bcc", a=2.87, cubic=True)
    outcome = run_scan(
        atoms, calc, supercell=np.diag([1, 1, 2]), monte_carlo=True, monte_carlo_sweeps=10, **FAST
    )
    report = outcome.exchange
    assert report.monte_carlo_neel_temperature_K > 0
    assert report.monte_carlo_method.startswith(("Binder", "susceptibility"))


def test_clear_errors(calc):
    with pytest.raises(ValueError, match="no magnetic site"):
        run_scan(bulk("MgO", "rocksalt", a=4.2), calc, **FAST)
    with pytest.raises(ValueError, match="Gd"):
        run_scan(bulk("Gd", "hcp", a=3.6, c=5.8), calc, **FAST)
    with pytest.raises(ValueError, match="does not fit --supercell"):
        run_scan("NiO", calc, orderings=["AFM-II"], supercell=np.diag([2, 1, 1]), **FAST)
    with pytest.raises(ValueError, match="does not fit this cell"):
        run_scan(corundum(), calc, orderings=["uudduu"], **FAST)


def test_ferromagnetic_means_all_magnetic_moments_parallel():
    """Collinear: one sign. Non-collinear: the same orderings as vectors m ẑ turned by any
    rotation agree; moments of any sizes along one direction are parallel, moments whose
    components merely share their signs are not."""
    from scipy.spatial.transform import Rotation

    from spinmultinet_ase.magnetism.corundum import corundum_cell
    from spinmultinet_ase.magnetism.orderings import enumerate_collinear_orderings

    rotation = Rotation.random(random_state=3).as_matrix()
    orderings = enumerate_collinear_orderings(corundum_cell("Cr2O3"))
    assert {is_ferromagnetic(a) for a in orderings} == {True, False}
    for atoms in orderings:
        moments = atoms.get_initial_magnetic_moments()
        signs = np.sign(moments[moments != 0])
        assert is_ferromagnetic(atoms) == bool(np.all(signs == signs[0]))
        vectors = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True)
        vectors.set_initial_magnetic_moments(np.outer(moments, [0, 0, 1.0]) @ rotation.T)
        assert is_ferromagnetic(vectors) == is_ferromagnetic(atoms)
    atoms = Atoms("Fe2", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]], cell=[2.87] * 3, pbc=True)
    direction = rotation[0]
    atoms.set_initial_magnetic_moments([2.0 * direction, 0.5 * direction])
    assert is_ferromagnetic(atoms)
    atoms.set_initial_magnetic_moments([[1.0, 1.0, 0.0], [1.0, 2.0, 0.0]])
    assert not is_ferromagnetic(atoms)
    atoms.set_initial_magnetic_moments([direction, -direction])
    assert not is_ferromagnetic(atoms)
    with pytest.raises(ValueError, match="no magnetic site"):
        is_ferromagnetic(bulk("MgO", "rocksalt", a=4.2))


def test_sites_that_differ_split_a_shell():
    """Two sublattices of different moments: A–A and B–B pairs at one distance are two shells."""
    atoms = bulk("Fe", "bcc", a=2.87, cubic=True)
    atoms.set_initial_magnetic_moments([4.0, 2.0])
    shells = exchange_shells(atoms, 3).shells
    assert shells[0].coordination == 8
    assert shells[1].distance == pytest.approx(shells[2].distance)
    assert {shells[1].moments, shells[2].moments} == {(4.0, 4.0), (2.0, 2.0)}
    assert shells[1].coordination == shells[2].coordination == 3  # 6 partners, half the ions


def test_counts_do_not_depend_on_the_frame():
    """Pair counts of a rotated, shifted cell equal those of the original."""
    reference = rocksalt_ordered("NiO", "FM")
    shells = exchange_shells(reference, 3)
    atoms = rocksalt_ordered("NiO", "AFM-III")
    moved = atoms.copy()
    moved.rotate(37, "x", rotate_cell=True)
    moved.rotate(11, "z", rotate_cell=True)
    moved.translate([0.3, -0.2, 0.1])
    assert np.allclose(shells.counts(moved), shells.counts(atoms))
    assert np.allclose(shells.counts(atoms), [-2, 1, 4])


def _supercell_holding(orderings: tuple[str, ...], det: int) -> np.ndarray:
    return next(
        m for m in hermite_normal_forms(det) if all(ordering_fits_cell(o, m) for o in orderings)
    )


@pytest.mark.skipif(
    not any((Path(__file__).parents[1] / "models").glob("*/model.pt")), reason="no shipped model"
)
def test_general_path_reproduces_rocksalt_exchange(tmp_path):
    """FM, AFM-I and AFM-II as u/d patterns in one supercell of a NiO structure file give the
    J1, J2 of `scan NiO` (each ordering in its own cell); all the supercell's orderings give a
    fit with a residual."""
    from spinmultinet_ase.magnetism.orderings import magnetic_cell

    calc = SpinMultiNetCalculator()
    named = run_scan("NiO", calc, orderings=["FM", "AFM-I", "AFM-II"], steps=0, progress=False)
    matrix = _supercell_holding(("AFM-I", "AFM-II"), 4)
    path = tmp_path / "NiO.extxyz"
    write(path, rocksalt_primitive("NiO"))
    # the patterns, read off the supercell the scan builds from the file
    u = metal_site_indices(magnetic_cell(rocksalt_primitive("NiO"), matrix), 4.26)
    patterns = [
        "".join("u" if s > 0 else "d" for s in ORDERINGS[o](u)) for o in ("AFM-I", "AFM-II")
    ]
    general = run_scan(
        str(path), calc, orderings=["FM", *patterns], supercell=matrix, steps=0, progress=False
    )
    for k in range(2):
        assert general.exchange.shells[k]["JS2_meV"] == pytest.approx(
            named.exchange.shells[k]["JS2_meV"], abs=0.1
        )
    every = run_scan(str(path), calc, supercell=matrix, steps=0, progress=False)
    assert len(every.results) == 4 and every.exchange.degrees_of_freedom == 1
    assert every.exchange.rms_residual_meV_per_ion > 0


def _simple_cubic(coupling: float):
    from spinmultinet_ase.magnetism.heisenberg import HeisenbergLattice

    atoms = Atoms("Fe", cell=3.0 * np.eye(3), pbc=True, magmoms=[1.0])
    return HeisenbergLattice.from_fit(exchange_shells(atoms, 1), [coupling])


def test_lattice_energy_of_every_ordering_equals_the_fitted_model():
    """Corundum, 3 shells: the Monte Carlo lattice's energy of each ordering of the cell equals
    Σ_k J_k S² n_k from the pair counts the fit uses."""
    from spinmultinet_ase.magnetism.heisenberg import HeisenbergLattice
    from spinmultinet_ase.magnetism.montecarlo import colouring
    from spinmultinet_ase.magnetism.orderings import enumerate_collinear_orderings, magnetic_cell

    reference = magnetic_cell(corundum())
    shells = exchange_shells(reference, 3)
    couplings = [0.010, 0.004, -0.002]
    lattice = HeisenbergLattice.from_fit(shells, couplings)
    for ordering in enumerate_collinear_orderings(reference):
        signs = np.sign(ordering.get_initial_magnetic_moments()[magnetic_sites(ordering)])
        expected = np.dot(couplings, shells.counts(ordering))
        assert lattice.energy_per_site(np.tile(signs, 4**3), 4) == pytest.approx(expected)
    index, coupling = lattice.neighbours(4)
    colours = colouring(index, coupling)
    coupled = coupling != 0
    assert not np.any((colours[:, None] == colours[index]) & coupled)


def test_mean_field_temperature_is_the_known_one():
    """Classical mean field k_B T = z J / 3: simple cubic 2 J; fcc J2 alone (AFM-II) 2 J2."""
    from ase.units import kB

    from spinmultinet_ase.magnetism.heisenberg import HeisenbergLattice

    assert _simple_cubic(0.01).mean_field_temperature() * kB == pytest.approx(0.02)
    fcc = exchange_shells(rocksalt_ordered("NiO", "FM"), 2)
    lattice = HeisenbergLattice.from_fit(fcc, [0.0, 0.01])
    assert lattice.mean_field_temperature() * kB == pytest.approx(0.02)


def test_monte_carlo_ground_state_energy():
    """Cooled to T = 0.05 J/k_B, the simple-cubic antiferromagnet has E = −3J + k_B T per spin
    (the ground state plus equipartition over two transverse modes per spin)."""
    from ase.units import kB

    from spinmultinet_ase.magnetism.montecarlo import heisenberg_monte_carlo

    j = 0.01
    lattice = _simple_cubic(j)
    signs = (-1.0) ** np.indices((4, 4, 4)).sum(axis=0).ravel()
    assert lattice.energy_per_site(signs, 4) == pytest.approx(-3 * j)
    temperatures = np.array([2.0, 1.0, 0.5, 0.2, 0.05]) * j / kB
    result = heisenberg_monte_carlo(lattice, temperatures, 4, sweeps=300, equilibration=300)
    assert result.energy[0] == pytest.approx(-3 * j + kB * temperatures.min(), abs=0.003 * j)
    assert result.order_parameter[0] > 0.95 and result.order_parameter[-1] < 0.5


def test_simple_cubic_neel_temperature():
    """Binder crossing of the classical simple-cubic Heisenberg antiferromagnet: k_B T_N / J =
    1.443 (high-precision Monte Carlo in the literature, e.g. Chen, Ferrenberg and Landau 1993)."""
    from ase.units import kB

    from spinmultinet_ase.magnetism.montecarlo import neel_temperature

    j = 0.01
    temperatures = np.linspace(1.35, 1.55, 5) * j / kB
    estimate = neel_temperature(_simple_cubic(j), temperatures, (6, 10), sweeps=600)
    assert estimate.method.startswith("Binder")
    assert estimate.temperature * kB / j == pytest.approx(1.443, rel=0.04)


def test_neel_temperature_equilibrates_for_half_its_sweeps_by_default():
    """The rule the scan's --monte-carlo-sweeps help states: N measured, N/2 discarded."""
    from ase.units import kB

    from spinmultinet_ase.magnetism.montecarlo import neel_temperature

    j = 0.01
    temperatures = np.linspace(1.2, 1.7, 3) * j / kB
    run = [_simple_cubic(j), temperatures, (4, 6)]
    default = neel_temperature(*run, sweeps=12).temperature
    assert default == neel_temperature(*run, sweeps=12, equilibration=6).temperature
    assert default != neel_temperature(*run, sweeps=12, equilibration=0).temperature
