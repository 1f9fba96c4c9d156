"""Corundum reference data without GPAW: the pool, its orderings and partners, the held-out
shape, the canonical orientation, the state checks and the convergence study's bookkeeping."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from ase.build import make_supercell, niggli_reduce
from ase.calculators.singlepoint import SinglePointCalculator
from ase.neighborlist import neighbor_list

from spinmultinet_ase.dft.corundum_structures import (
    CORUNDUM_HELD_OUT_CELLS,
    HELD_OUT_NEW_ORDERINGS,
    POOL_RECIPE,
    corundum_pool,
)
from spinmultinet_ase.dft.label import STATUS, STATUS_OK, STRUCTURE_ID, magnetic_state_problem
from spinmultinet_ase.dft.orientation import (
    bond_alignment_rotation,
    canonical_rotation,
    rotated,
)
from spinmultinet_ase.dft.states import needs_broken_symmetry
from spinmultinet_ase.dft.structures import reference_structures
from spinmultinet_ase.magnetism.corundum import CORUNDUM_PARAMETERS, corundum_cell
from spinmultinet_ase.magnetism.orderings import (
    enumerate_collinear_orderings,
    repeats_with,
    site_permutations,
    with_pattern,
)
from spinmultinet_ase.magnetism.rocksalt import rocksalt_ordered
from spinmultinet_ase.reference import convergence
from spinmultinet_ase.testing.symmetry import random_orthogonal
from spinmultinet_ase.train.config import DataConfig
from spinmultinet_ase.train.dataset import split_of
from spinmultinet_ase.train.evaluate import unseen_ordering_errors

MATERIALS = tuple(CORUNDUM_PARAMETERS)


@pytest.fixture(scope="module")
def frames():
    return reference_structures(MATERIALS)


def _signs(atoms) -> np.ndarray:
    moments = atoms.get_initial_magnetic_moments()
    return np.sign(moments[moments != 0]).astype(int)


def _parallel_pairs_by_shell(atoms, cutoff: float = 4.1) -> tuple[int, ...]:
    """Parallel metal pairs per neighbour shell (distances rounded to 0.05 Å) of an ideal cell."""
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    m = atoms.get_initial_magnetic_moments()
    metal = (m[i] != 0) & (m[j] != 0)
    shells = np.round(d[metal] / 0.05).astype(int)
    parallel = np.sign(m[i[metal]]) == np.sign(m[j[metal]])
    return tuple(int(parallel[shells == s].sum()) for s in np.unique(shells))


@pytest.mark.parametrize("material", MATERIALS)
def test_ten_atom_orderings_are_the_distinct_classes_along_the_axis(material):
    """Every up/down pattern of the four metals is related by a space-group operation (or the
    global flip) to exactly one ordering of the pool; the literature's four, read along the
    3-fold axis, are in different classes; and the classes differ in their parallel pairs per
    neighbour shell (what a Heisenberg model sees)."""
    cell = corundum_cell(material)
    metals = np.flatnonzero(cell.get_initial_magnetic_moments())
    heights = cell.positions[metals, 2]
    assert np.all(np.diff(heights) > 0)  # index order is the order along the 3-fold axis
    orderings = enumerate_collinear_orderings(cell)
    permutations = site_permutations(cell, metals)

    def orbit(signs: np.ndarray) -> set[tuple[int, ...]]:
        images = signs[permutations]
        return {tuple(x) for x in np.vstack([images, -images])}

    orbits = [orbit(_signs(o)) for o in orderings]
    for pattern in itertools.product([1, -1], repeat=len(metals)):
        assert sum(pattern in o for o in orbits) == 1
    literature = ["++++", "+-+-", "+--+", "++--"]
    classes = {
        next(k for k, o in enumerate(orbits) if tuple(1 if c == "+" else -1 for c in p) in o)
        for p in literature
    }
    assert len(classes) == 4
    signatures = {_parallel_pairs_by_shell(o) for o in orderings}
    assert len(signatures) == len(orderings)
    ground = with_pattern(cell, CORUNDUM_PARAMETERS[material].ground_state)
    assert "".join("+" if s > 0 else "-" for s in _signs(ground)) == (
        "+-+-" if material == "Cr2O3" else "+--+"
    )


def test_pool_follows_the_recipe_and_puts_the_useful_frames_first(frames):
    ids = [a.info[STRUCTURE_ID] for a in frames]
    assert len(set(ids)) == len(ids)
    n_orderings = len(enumerate_collinear_orderings(corundum_cell("Cr2O3")))
    for material in MATERIALS:
        mine = [a for a in frames if a.info["material"] == material]
        yardsticks = [a for a in mine if a.info.get("yardstick")]
        assert len(yardsticks) == n_orderings
        for cell, which, count in POOL_RECIPE:
            pool = [a for a in mine if a.info["cell_name"] == cell and not a.info.get("yardstick")]
            sources = [a for a in pool if "partner_of" not in a.info]
            assert len(sources) == (count * n_orderings if which == "all" else count)
        # imperfect guesses around the trivalent ion's high-spin moment
        nominal = {"Cr2O3": 3.0, "Fe2O3": 5.0}[material]
        guesses = np.concatenate(
            [np.abs(a.get_initial_magnetic_moments()) for a in mine if len(a) == 10]
        )
        guesses = guesses[guesses > 0] / nominal
        assert 0.6 <= guesses.min() < 0.8 and 1.2 < guesses.max() <= 1.4
    # yardsticks first, then trainable frames, the held-out shape last
    kinds = [
        0 if a.info.get("yardstick") else 2 if a.info["cell_name"] in CORUNDUM_HELD_OUT_CELLS else 1
        for a in frames
    ]
    assert kinds == sorted(kinds) and set(kinds) == {0, 1, 2}
    config = DataConfig(test_cells=CORUNDUM_HELD_OUT_CELLS)
    assert {split_of(a, config) for a in frames if kinds[ids.index(a.info[STRUCTURE_ID])] == 2} == {
        "test"
    }


def test_partners_share_the_geometry_and_cover_every_other_ordering(frames):
    ids = [a.info[STRUCTURE_ID] for a in frames]
    by_id = dict(zip(ids, frames, strict=True))
    partners = [a for a in frames if "partner_of" in a.info and a.info["cell_name"] == "rh-10"]
    assert partners
    grouped: dict[str, set[str]] = {}
    for partner in partners:
        source = by_id[partner.info["partner_of"]]
        distance = ids.index(partner.info[STRUCTURE_ID]) - ids.index(source.info[STRUCTURE_ID])
        assert 1 <= distance <= 4  # right after its source
        np.testing.assert_array_equal(partner.positions, source.positions)
        np.testing.assert_array_equal(partner.cell.array, source.cell.array)
        # the partner's moments are its ordering's pattern on the same atoms
        assert "".join("u" if s > 0 else "d" for s in _signs(partner)) == partner.info["ordering"]
        assert not np.allclose(
            partner.get_initial_magnetic_moments(), source.get_initial_magnetic_moments()
        )
        grouped.setdefault(source.info[STRUCTURE_ID], {source.info["ordering"]}).add(
            partner.info["ordering"]
        )
    every = {o.info["ordering"] for o in enumerate_collinear_orderings(corundum_cell("Cr2O3"))}
    assert all(orderings == every for orderings in grouped.values())


def _heisenberg_energy(atoms, cutoff: float = 4.1) -> float:
    """Σ over metal pairs within ``cutoff`` of J(d) s_i s_j (eV), J falling with distance."""
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    s = np.sign(atoms.get_initial_magnetic_moments())
    return 0.5 * float(np.sum(0.02 * np.exp(-(d - 2.7)) * s[i] * s[j]))


def test_held_out_shape_is_one_ideal_geometry_whose_orderings_the_evaluation_tables(frames):
    """Per material, the held-out shape is one ideal geometry with nominal moments in FM, the
    10-atom ground state tiled and new orderings, all partners of FM; the unseen-ordering
    table has its row (DFT: a Heisenberg model; the model: DFT with FM off by 5 meV)."""
    config = DataConfig(test_cells=CORUNDUM_HELD_OUT_CELLS)
    labelled = []
    for material in MATERIALS:
        held = [
            a
            for a in frames
            if a.info["material"] == material and a.info["cell_name"] in CORUNDUM_HELD_OUT_CELLS
        ]
        assert len(held) == 2 + HELD_OUT_NEW_ORDERINGS
        source, partners = held[0], held[1:]
        assert set(_signs(source)) == {1} and "partner_of" not in source.info
        assert all(a.info["partner_of"] == source.info[STRUCTURE_ID] for a in partners)
        assert {split_of(a, config) for a in held} == {"test"}
        nominal = corundum_cell(material, "rh110-20").get_initial_magnetic_moments()
        parent = corundum_cell(material).cell.array
        ground = with_pattern(corundum_cell(material), CORUNDUM_PARAMETERS[material].ground_state)
        repeating = []
        for atoms in held:
            np.testing.assert_array_equal(atoms.positions, source.positions)
            assert atoms.info["rattle_angstrom"] == 0 and atoms.info["volume_strain"] == 0
            np.testing.assert_allclose(np.abs(atoms.get_initial_magnetic_moments()), nominal)
            rebuilt = with_pattern(corundum_cell(material, "rh110-20"), atoms.info["ordering"])
            if repeats_with(rebuilt, parent):
                repeating.append(_parallel_pairs_by_shell(rebuilt))
        # FM and the ground state repeat the 10-atom cell, with twice its parallel pairs
        assert sorted(repeating) == sorted(
            tuple(2 * n for n in _parallel_pairs_by_shell(o))
            for o in (with_pattern(corundum_cell(material), "FM"), ground)
        )
        for atoms in held:
            copy = atoms.copy()
            copy.calc = SinglePointCalculator(copy, energy=_heisenberg_energy(atoms))
            labelled.append(copy)
    offset = {a.info[STRUCTURE_ID]: 0.005 * ("partner_of" not in a.info) for a in labelled}
    rows = unseen_ordering_errors(
        labelled, lambda a: a.get_potential_energy() + offset[a.info[STRUCTURE_ID]], config
    )
    assert [(r["material"], r["orderings"]) for r in rows] == [
        (m, 2 + HELD_OUT_NEW_ORDERINGS) for m in sorted(MATERIALS)
    ]
    for row in rows:
        assert row["reference"] != "uuuuuuuu"  # antiferromagnetic J: FM is not the lowest
        assert row["error_max_meV_per_fu"] == pytest.approx(5.0 / 4)  # 4 f.u. per cell


@pytest.mark.parametrize("material", MATERIALS)
def test_supercell_frames_carry_orderings_the_ten_atom_cell_cannot_hold(material):
    """A 10-atom ordering tiled into a supercell repeats with the 10-atom lattice; the
    supercell orderings of the pool do not, so they are new to the model."""
    parent = corundum_cell(material)
    for ordering in enumerate_collinear_orderings(parent):
        tiled = make_supercell(ordering, np.diag([2, 1, 1]))
        assert repeats_with(tiled, parent.cell.array)
    pool = corundum_pool(material)
    supercell = [a for a in pool if len(a) > 10 and a.info["cell_name"] != "hex-30"]
    assert supercell
    for atoms in supercell:
        ideal = with_pattern(
            corundum_cell(material, atoms.info["cell_name"]), atoms.info["ordering"]
        )
        assert not repeats_with(ideal, parent.cell.array)


@pytest.mark.parametrize("material", MATERIALS)
@pytest.mark.parametrize("cell", ["rh-10", "rh211-20"])
def test_canonical_orientation_depends_on_the_structure_alone(material, cell):
    """A rattled, strained frame handed in turned at random (and Niggli-reduced) ends in the
    same orientation; the ideal cell's bonds end on the reference cell's bond directions."""
    rng = np.random.default_rng(3)
    atoms = corundum_cell(material, cell)
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + np.diag([0.02, -0.01, 0.015])), scale_atoms=True)
    atoms.positions += rng.normal(scale=0.08, size=atoms.positions.shape)

    def bonds(a):
        i, j, vectors = neighbor_list("ijD", a, 2.4)
        keep = (a.get_initial_magnetic_moments()[i] != 0) & (a.symbols[j] == "O")
        return np.array(sorted(map(tuple, np.round(vectors[keep], 6))))

    expected = bonds(rotated(atoms, canonical_rotation(atoms)))
    for seed in range(3):
        turned = rotated(atoms, random_orthogonal(seed))
        if seed % 2:
            niggli_reduce(turned)
        np.testing.assert_allclose(bonds(rotated(turned, canonical_rotation(turned))), expected)
    ideal = corundum_cell(material)
    reference = {tuple(b) for b in np.round(bonds(ideal), 4)}
    turned = rotated(ideal, random_orthogonal(9))
    back = np.round(bonds(rotated(turned, canonical_rotation(turned))), 4)
    assert {tuple(b) for b in back} == reference


def test_rocksalt_keeps_its_bond_alignment():
    atoms = rocksalt_ordered("NiO", "AFM-II")
    atoms.rotate(20, "z", rotate_cell=True)
    np.testing.assert_array_equal(canonical_rotation(atoms), bond_alignment_rotation(atoms))


def test_fe3_frames_pass_the_state_checks():
    """α-Fe2O3 (d5 Fe³⁺) is not checked like FeO (d6 Fe²⁺): no orbital-bias start, high-spin
    moments accepted, and a partner 0.5 eV per formula unit away (corundum ordering energies
    are large) is not taken for another electronic state."""
    from spinmultinet_ase.dft.label import _check_partners

    assert not needs_broken_symmetry("Fe2O3") and needs_broken_symmetry("FeO")
    frame = with_pattern(corundum_cell("Fe2O3"), "uddu")
    initial = frame.get_initial_magnetic_moments() * 0.7
    final = np.sign(initial) * 4.15
    assert magnetic_state_problem(frame.get_chemical_symbols(), initial, final) == ""

    def labelled(sid, energy, partner_of=None):
        atoms = frame.copy()
        atoms.info.update({STRUCTURE_ID: sid, STATUS: STATUS_OK})
        if partner_of:
            atoms.info["partner_of"] = partner_of
        atoms.calc = SinglePointCalculator(atoms, energy=energy)
        return atoms

    source = labelled("src", -70.0 + 2 * 0.5)
    partner = labelled("src-as-uuuu", -70.0, partner_of="src")
    assert _check_partners(partner, [source]) == []
    assert partner.info[STATUS] == STATUS_OK and source.info[STATUS] == STATUS_OK


def test_pulay_calibration_and_zero_pressure_from_the_study_entries():
    """Synthetic entries with a known Pulay offset p and a linear pressure-volume relation:
    the summaries recover p and the zero-pressure volume strain."""
    from ase.units import GPa

    material, p, bulk_modulus, p0 = "Cr2O3", -0.15, 230.0, 16.0
    structures = convergence.convergence_structures(material)
    assert list(structures) == ["FM", CORUNDUM_PARAMETERS[material].ground_state]
    first, second = structures.values()
    np.testing.assert_array_equal(first.positions, second.positions)
    results = {}
    for ecut in (convergence.CUTOFF, convergence.REFERENCE_CUTOFF):
        entry = {}
        for name, atoms in structures.items():
            volume, n_fu = atoms.get_volume(), convergence.formula_units(atoms)
            offset = 0.0 if ecut == convergence.REFERENCE_CUTOFF else -p * n_fu / volume
            stress = (
                np.array([-0.1, -0.11, -0.09, 0.0, 0.0, 0.0]) + offset * np.r_[1, 1, 1, 0, 0, 0]
            )
            entry[name] = {"stress": stress.tolist(), "volume": volume, "formula_units": n_fu}
        results[convergence.setting_key(material, ecut, 2.0)] = entry
    assert convergence.pulay_calibration(results, material, convergence.CUTOFF) == pytest.approx(p)
    ground = CORUNDUM_PARAMETERS[material].ground_state
    for strain, key in (
        (
            0.0,
            convergence.corundum_ordering_key(material, ground, convergence.CORUNDUM_DENSITIES[0]),
        ),
        (convergence.CORUNDUM_VOLUME_STRAIN, convergence.corundum_volume_key(material)),
    ):
        volume = corundum_cell(material, xray=True).get_volume() * (1 + strain)
        corrected = p0 - bulk_modulus * strain
        raw = corrected + p * 2 / volume / GPa
        results[key] = {"pressure_gpa": raw, "volume": volume, "formula_units": 2}
    row = convergence.summarise_corundum(results)[f"{material} {ground} zero pressure"]
    assert row["zero_pressure_volume_strain"] == pytest.approx(p0 / bulk_modulus)


@pytest.mark.parametrize("material", MATERIALS)
def test_reference_cell_is_at_the_zero_pressure_volume_of_the_convergence_study(material):
    """The cells the data is built from sit at the protocol's zero pressure that the committed
    study measured (Pulay-corrected), the X-ray cell scaled uniformly."""
    study = Path(__file__).resolve().parents[1] / "data" / "convergence.json"
    results = json.loads(study.read_text())
    ground = CORUNDUM_PARAMETERS[material].ground_state
    row = convergence.summarise_corundum(results)[f"{material} {ground} zero pressure"]
    assert row["pulay_corrected"]
    strain = CORUNDUM_PARAMETERS[material].protocol_volume_strain
    assert strain == pytest.approx(row["zero_pressure_volume_strain"], abs=1e-3)
    xray, protocol = corundum_cell(material, xray=True), corundum_cell(material)
    assert protocol.get_volume() == pytest.approx(xray.get_volume() * (1 + strain), rel=1e-12)
    np.testing.assert_allclose(protocol.get_scaled_positions(), xray.get_scaled_positions())


def test_the_library_s_pulay_calibrations_are_those_of_the_committed_study():
    """Every material's Pulay calibration in the protocol is what ``pulay_calibration`` gives
    on the committed convergence entries (``data/convergence.json``), to its printed digits."""
    import json
    from pathlib import Path

    from spinmultinet_ase.dft.protocol import PULAY_STRESS_700EV

    entries = Path(__file__).parents[1] / "data" / "convergence.json"
    results = json.loads(entries.read_text())
    for material, p in PULAY_STRESS_700EV.items():
        measured = convergence.pulay_calibration(results, material, convergence.CUTOFF)
        assert measured == pytest.approx(p, abs=5e-6), material
