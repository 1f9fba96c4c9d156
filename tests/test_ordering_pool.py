"""The ordering-diversity pool (``dft/ordering_structures.py``) and the unseen-orderings error.

Oracles: orbits of all sign patterns under the cubic space group built here from integer
coordinates (not spglib, which the enumerator uses); the literature count of fcc
superlattices; the neighbour-shell signature of AFM-III; the reference pool file on disk;
scipy's Kendall tau; a tiny random model against itself with a known perturbation.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read
from scipy.stats import kendalltau

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.data.partners import geometry_of
from spinmultinet_ase.dft.ordering_structures import (
    ALL,
    NEW,
    ORDERING_CELLS,
    ORDERING_HELD_OUT_CELLS,
    ORDERING_POOL_RECIPE,
    ordering_pool,
    ordering_structures,
)
from spinmultinet_ase.dft.structures import reference_structures
from spinmultinet_ase.magnetism.orderings import enumerate_collinear_orderings
from spinmultinet_ase.magnetism.rocksalt import (
    ROCKSALT_LATTICE_CONSTANTS,
    distinct_supercells,
    metal_site_indices,
    rocksalt_ordered,
    same_superlattice,
)
from spinmultinet_ase.testing.models import as_loaded, random_model
from spinmultinet_ase.testing.orderings import (
    EXPECTED_PARALLEL,
    parallel_neighbour_counts,
    two_shell_heisenberg_energy,
)
from spinmultinet_ase.train.config import load_config
from spinmultinet_ase.train.dataset import split_of
from spinmultinet_ase.train.evaluate import kendall_tau, unseen_ordering_errors

ROOT = Path(__file__).resolve().parents[1]
A_NIO = ROCKSALT_LATTICE_CONSTANTS["NiO"]


def _cubic_permutations(atoms, a: float) -> tuple[np.ndarray, np.ndarray]:
    """How the space group of an ideal rocksalt supercell permutes its metal sites, from the
    integer fcc coordinates: every signed permutation of the axes that maps the superlattice
    onto itself, times every translation by a metal site; and the translations alone."""
    sites = metal_site_indices(atoms, a)
    lattice = np.rint(2 * atoms.cell.array / a).astype(int)
    inverse = np.linalg.inv(lattice)

    def keys(points):
        frac = points @ inverse
        frac -= np.floor(frac + 1e-9)
        return [tuple(np.rint(1e6 * f).astype(int)) for f in frac]

    home = {k: i for i, k in enumerate(keys(sites))}

    def index_of(points):
        return np.array([home[k] for k in keys(points)])

    rotations = []
    for order in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            r = np.zeros((3, 3), dtype=int)
            r[range(3), order] = signs
            change = lattice @ r.T @ inverse
            if np.allclose(change, np.rint(change)):
                rotations.append(r)
    translations = [index_of(sites + t) for t in sites - sites[0]]
    group = [index_of(sites @ r.T + t) for r in rotations for t in sites - sites[0]]
    return np.array(group), np.array(translations)


def _orbits(n_sites: int, group: np.ndarray) -> dict[tuple[int, ...], int]:
    """Every sign pattern -> the number of its orbit under ``group`` and the global flip."""
    orbit: dict[tuple[int, ...], int] = {}
    for pattern in itertools.product((1, -1), repeat=n_sites):
        if pattern in orbit:
            continue
        number = len(set(orbit.values()))
        signs = np.array(pattern)
        for permutation in group:
            for image in (signs[permutation], -signs[permutation]):
                orbit[tuple(image)] = number
    return orbit


def _pattern(atoms) -> tuple[int, ...]:
    metals = [s != "O" for s in atoms.get_chemical_symbols()]
    return tuple(np.sign(atoms.get_initial_magnetic_moments()[metals]).astype(int))


def test_training_shapes_are_all_superlattices_of_index_3_and_4():
    # fcc superlattices up to the point group: 3 of index 3, 7 of index 4, 20 of index 8
    # (Hart and Forcade, Phys. Rev. B 77, 224115 (2008), Table IV)
    assert [len(distinct_supercells(n)) for n in (3, 4, 8)] == [3, 7, 20]
    for det in (3, 4):
        named = [m for n, m in ORDERING_CELLS.items() if n.startswith(("idx", "cubic", "afm3"))]
        named = [m for m in named if round(abs(np.linalg.det(m))) == det]
        for shape in distinct_supercells(det):
            assert sum(same_superlattice(shape, m) for m in named) == 1


@pytest.mark.parametrize("cell", ["idx3b-6", "idx4a-8", "cubic-8", "afm3-8", "conv112-16"])
def test_enumerated_orderings_are_the_orbits_of_all_sign_patterns(cell):
    ideal = rocksalt_ordered("NiO", "FM", ORDERING_CELLS[cell])
    group, _ = _cubic_permutations(ideal, A_NIO)
    orbit = _orbits(len(ideal) // 2, group)
    found = [orbit[_pattern(o)] for o in enumerate_collinear_orderings(ideal)]
    assert sorted(found) == list(range(len(set(orbit.values()))))


def test_pool_orderings_per_shape_are_distinct_and_complete():
    groups = {g[0].info["cell_name"]: g for g in ordering_pool("NiO")}
    for cell, which, _ in ORDERING_POOL_RECIPE:
        if which not in (ALL, NEW):
            continue
        frames = groups[cell]
        ideal = rocksalt_ordered("NiO", "FM", ORDERING_CELLS[cell])
        for atoms in frames:  # Niggli-reduced, atoms in the same order
            distances = atoms.get_all_distances(mic=True)
            np.testing.assert_allclose(distances, ideal.get_all_distances(mic=True), atol=1e-8)
        group, translations = _cubic_permutations(ideal, A_NIO)
        orbit = _orbits(len(ideal) // 2, group)
        mine = [orbit[_pattern(a)] for a in frames]
        assert len(set(mine)) == len(mine)  # symmetry-distinct
        if which == ALL:
            expected = set(orbit.values())
        else:  # FM, and the orderings no smaller cell holds (but AFM-III, held out)
            expected = set()
            for pattern, number in orbit.items():
                signs = np.array(pattern)
                smaller = any(np.array_equal(signs[t], signs) for t in translations[1:])
                afm3 = set(
                    parallel_neighbour_counts(_with_signs(ideal, signs), A_NIO).values()
                ) == {EXPECTED_PARALLEL["AFM-III"]}
                if (not smaller and not afm3) or len(set(pattern)) == 1:
                    expected.add(number)
        assert set(mine) == expected, cell
        assert frames[0].info["ordering"] == "FM"
        assert {geometry_of(a) for a in frames} == {frames[0].info["structure_id"]}


def _with_signs(atoms, signs):
    out = atoms.copy()
    moments = np.abs(out.get_initial_magnetic_moments())
    metals = np.array([s != "O" for s in out.get_chemical_symbols()])
    moments[metals] *= signs
    out.set_initial_magnetic_moments(moments)
    return out


def test_the_held_out_shape_is_test_data_in_the_default_split_and_labelled_after_training():
    frames = ordering_structures(("MnO", "NiO"))
    ids = [a.info["structure_id"] for a in frames]
    assert len(set(ids)) == len(ids)
    data = load_config(ROOT / "configs" / "default_mno_nio.yaml").data
    held = [a.info["cell_name"] in ORDERING_HELD_OUT_CELLS for a in frames]
    assert {split_of(a, data) for a, h in zip(frames, held, strict=True) if h} == {"test"}
    trainable = [split_of(a, data) for a, h in zip(frames, held, strict=True) if not h]
    assert {"train", "validation"} <= set(trainable)
    first, last = held.index(True), len(held) - held[::-1].index(True)
    assert all(held[first:last]) and not any(held[:first])
    assert {len(a) for a in frames[:first]} == {6, 8}  # small shapes first
    afm3 = [a for a in frames if a.info["ordering"] == "AFM-III"]
    assert afm3 and all(split_of(a, data) == "test" for a in afm3)
    for atoms in afm3:  # the name is right: the neighbour signature of AFM-III
        counts = parallel_neighbour_counts(atoms, ROCKSALT_LATTICE_CONSTANTS["MnO"])
        assert set(counts.values()) == {EXPECTED_PARALLEL["AFM-III"]}


def test_the_reference_pool_is_unchanged():
    on_disk = read(ROOT / "data" / "structures.extxyz", index=":")
    made = reference_structures(("MnO", "NiO"))
    assert len(made) == len(on_disk)
    for ours, theirs in zip(made, on_disk, strict=True):
        assert ours.info["structure_id"] == theirs.info["structure_id"]
        np.testing.assert_allclose(ours.cell.array, theirs.cell.array, atol=1e-8)
        shift = ours.get_scaled_positions() - theirs.get_scaled_positions()
        np.testing.assert_allclose(shift - np.rint(shift), 0.0, atol=1e-8)  # wrapped alike
        assert ours.get_chemical_symbols() == theirs.get_chemical_symbols()
        for key in ("ordering", "cell_name", "partner_of", "volume_strain", "rattle_angstrom"):
            assert ours.info.get(key) == pytest.approx(theirs.info.get(key)), key
        np.testing.assert_allclose(
            ours.get_initial_magnetic_moments(), theirs.get_initial_magnetic_moments(), atol=1e-8
        )


@pytest.fixture(scope="module")
def held_out_group():
    """The held-out shape of NiO, labelled by a tiny random model (its own 'DFT')."""
    calc = SpinMultiNetCalculator(as_loaded(random_model(seed=3)))
    group = [a for g in ordering_pool("NiO") for a in g if a.info["cell_name"] == "conv112-16"]
    energies = []
    for atoms in group:
        copy = atoms.copy()
        copy.calc = calc
        energies.append(copy.get_potential_energy())
    return group, np.array(energies), calc


def _labelled(group, energies):
    out = []
    for atoms, energy in zip(group, energies, strict=True):
        copy = atoms.copy()
        copy.calc = SinglePointCalculator(copy, energy=energy)
        out.append(copy)
    return out


def test_unseen_orderings_of_a_model_against_itself_and_a_known_perturbation(held_out_group):
    group, energies, calc = held_out_group
    data = load_config(ROOT / "configs" / "default_mno_nio.yaml").data
    by_id = {a.info["structure_id"]: e for a, e in zip(group, energies, strict=True)}

    def model(atoms):
        return by_id[atoms.info["structure_id"]]

    (row,) = unseen_ordering_errors(_labelled(group, energies), model, data)
    assert row["orderings"] == len(group) == 18
    assert row["error_max_meV_per_fu"] < 1e-9
    assert row["same_order"] and row["same_lowest"] and row["swapped_resolved_pairs"] == 0
    assert row["kendall_tau"] == pytest.approx(1.0)

    # labels moved by 4 meV/f.u. on the frame in the middle of the model's order
    n_fu = len(group[0]) // 2
    k = int(np.argsort(energies)[len(group) // 2])
    labels = energies.copy()
    labels[k] += 0.004 * n_fu
    (row,) = unseen_ordering_errors(_labelled(group, labels), model, data)
    assert row["error_max_meV_per_fu"] == pytest.approx(4.0, abs=1e-6)
    assert row["error_mae_meV_per_fu"] == pytest.approx(4.0 / (len(group) - 1), abs=1e-6)
    assert row["kendall_tau"] == pytest.approx(kendalltau(labels, energies).statistic, abs=1e-12)
    # the pairs the shift reorders and DFT (the labels) separates by more than 1 meV/f.u.
    gap = 1000 * (energies - energies[k]) / n_fu
    reordered = (gap > 0) & (gap < 4.0 - 1.0)
    assert row["swapped_resolved_pairs"] == int(reordered.sum()) > 0
    assert row["same_order"] == (not np.any((gap > 1e-6) & (gap < 4.0)))


def test_kendall_tau_takes_a_rounding_difference_for_a_tie():
    """Orderings the two-shell Heisenberg stand-in makes equal come out of its sums a rounding
    error apart: the rank correlation is that of the exact ties (scipy's tau-b)."""
    exact = np.array([0.0, 4.2, 8.3, 8.3, 12.5, 12.5, 16.5])
    rounded = exact + np.array([0.0, 0.0, 0.0, 2e-14, 0.0, -2e-14, 0.0])
    other = np.random.default_rng(0).permutation(len(exact)).astype(float)
    expected = kendalltau(exact, other).statistic
    assert kendall_tau(rounded, other) == pytest.approx(expected, abs=1e-12)
    assert kendall_tau(other, rounded) == pytest.approx(expected, abs=1e-12)


def test_the_card_marks_the_unseen_ordering_target(held_out_group):
    from spinmultinet_ase.reference.model_card import _unseen_orderings_table

    group, energies, _ = held_out_group
    data = load_config(ROOT / "configs" / "default_mno_nio.yaml").data
    by_id = {a.info["structure_id"]: e for a, e in zip(group, energies, strict=True)}

    def model(atoms):
        return by_id[atoms.info["structure_id"]]

    n_fu = len(group[0]) // 2
    rows = []
    for shift in (0.0005, 0.002):  # 0.5 and 2 meV/f.u. on the highest ordering
        labels = energies.copy()
        labels[np.argmax(energies)] += shift * n_fu
        rows += unseen_ordering_errors(_labelled(group, labels), model, data)
    table = _unseen_orderings_table(rows)
    assert [line.endswith("✓ |") for line in table if line.startswith("| NiO")] == [True, False]


def _heisenberg_labelled(frames, j1s2: float, j2s2: float, a: float):
    """Frames labelled by a two-shell Heisenberg model, zero forces (ideal geometry), moments
    as guessed."""
    out = []
    for atoms in frames:
        copy = atoms.copy()
        copy.calc = SinglePointCalculator(
            copy,
            energy=two_shell_heisenberg_energy(atoms, a, j1s2, j2s2),
            forces=np.zeros((len(copy), 3)),
            magmoms=copy.get_initial_magnetic_moments(),
        )
        out.append(copy)
    return out


def test_evaluate_reports_unseen_orderings_of_cells_held_out_on_the_command_line(tmp_path):
    from ase.io import write

    from spinmultinet_ase.cli import main

    held = [a for g in ordering_pool("NiO") for a in g if a.info["cell_name"] == "conv112-16"]
    labelled = _heisenberg_labelled(held, -0.7, 11.2, A_NIO)
    write(tmp_path / "data.extxyz", labelled, format="extxyz")
    model = ROOT / "models" / "spinmultinet-mno-nio" / "model.pt"
    for extra, rows in (([], 0), (["--test-cells", "conv112-16"], 1)):
        out = tmp_path / f"evaluation{rows}"
        command = ["evaluate", str(model), str(tmp_path / "data.extxyz"), "--output-dir"]
        assert main([*command, str(out), *extra]) == 0
        result = json.loads((out / "evaluation.json").read_text())
        assert len(result["unseen_orderings"]) == rows
    (row,) = result["unseen_orderings"]
    assert row["orderings"] == 18
    heisenberg = np.array([a.get_potential_energy() for a in labelled]) * 1000 / 8
    dft = sorted(entry["dft"] for entry in row["relative_meV_per_fu"])
    np.testing.assert_allclose(dft, np.sort(heisenberg - heisenberg.min()), atol=1e-9)
    # the labels follow PHYSICS.md: AFM-I − FM = −8 J1 S² per metal (both AFM-I variants)
    fm = next(entry["dft"] for entry in row["relative_meV_per_fu"] if entry["ordering"] == "FM")
    afm1 = [entry["dft"] for entry in row["relative_meV_per_fu"] if entry["ordering"] == "AFM-I"]
    np.testing.assert_allclose(np.array(afm1) - fm, [-8 * -0.7] * 2, atol=1e-9)
