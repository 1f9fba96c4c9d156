"""Random orderings in larger supercells (``dft/random_orderings.py``) for active learning.

Oracles: the space group of each supercell built here without spglib (rocksalt: signed axis
permutations and fcc translations in integer coordinates; corundum: ASE's tabulated operations
of R-3c in the hexagonal setting, times the rhombohedral lattice); the orbits of every sign
pattern under it; the periodicity test of ``magnetism/rocksalt.py`` and ``repeats_with``; the
frames themselves (positions, cells, moments).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.geometry import cellpar_to_cell
from ase.io import read
from ase.spacegroup import Spacegroup

from spinmultinet_ase.cli import main
from spinmultinet_ase.dft.corundum_structures import CORUNDUM_HELD_OUT_CELLS
from spinmultinet_ase.dft.ordering_structures import ORDERING_CELLS
from spinmultinet_ase.dft.random_orderings import (
    CORUNDUM_RANDOM_CELLS,
    ROCKSALT_RANDOM_CELLS,
    random_ordering_candidates,
)
from spinmultinet_ase.dft.structures import CELLS, HELD_OUT_CELLS
from spinmultinet_ase.magnetism.corundum import CORUNDUM_CELLS, CORUNDUM_PARAMETERS, corundum_cell
from spinmultinet_ase.magnetism.ordering_classes import (
    SupercellSymmetry,
    count_distinct_orderings,
    random_distinct_orderings,
)
from spinmultinet_ase.magnetism.orderings import repeats_with
from spinmultinet_ase.magnetism.rocksalt import (
    ROCKSALT_LATTICE_CONSTANTS,
    has_smaller_period,
    metal_site_indices,
    rocksalt_ordered,
    rocksalt_primitive,
    same_superlattice,
)
from spinmultinet_ase.magnetism.sites import DEFAULT_MOMENT_MAGNITUDES, magnetic_sites
from spinmultinet_ase.train.active import with_partner_sources

A_NIO = ROCKSALT_LATTICE_CONSTANTS["NiO"]


def _lookup(points: np.ndarray, lattice: np.ndarray):
    """A map from points (any coordinates, lattice rows in the same ones) to the index of the
    point of ``points`` they are an image of."""
    inverse = np.linalg.inv(lattice)

    def keys(p):
        frac = p @ inverse
        frac -= np.floor(frac + 1e-6)
        return [tuple(np.rint(1e4 * f).astype(int) % 10000) for f in frac]

    home = {k: i for i, k in enumerate(keys(points))}
    return lambda p: np.array([home[k] for k in keys(p)])


def _preserves(lattice: np.ndarray, rotation: np.ndarray) -> bool:
    """Whether the Cartesian ``rotation`` maps the lattice (rows) onto itself."""
    change = lattice @ rotation.T @ np.linalg.inv(lattice)
    return bool(np.allclose(change, np.rint(change), atol=1e-6))


def _rocksalt_group(atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    """The site permutations of an ideal rocksalt supercell (cubic frame): signed axis
    permutations that keep the superlattice, times translations by metal sites; and those
    translations."""
    sites = metal_site_indices(atoms, A_NIO)
    lattice = np.rint(2 * atoms.cell.array / A_NIO).astype(int)
    index_of = _lookup(sites, lattice)
    shifts = sites - sites[0]
    group = []
    for order in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            r = np.zeros((3, 3), dtype=int)
            r[range(3), order] = signs
            if _preserves(lattice, r):
                group += [index_of(sites @ r.T + t) for t in shifts]
    return np.unique(group, axis=0), np.array([index_of(sites + t) for t in shifts])


def _corundum_group(material: str, cell: str) -> tuple[np.ndarray, np.ndarray]:
    """The site permutations of an ideal corundum supercell (hexagonal frame) from ASE's R-3c
    operations on hexagonal fractional coordinates, times the rhombohedral lattice; and the
    translations of that lattice alone."""
    atoms = corundum_cell(material, cell)
    p = CORUNDUM_PARAMETERS[material]
    scale = (1 + p.protocol_volume_strain) ** (1 / 3)
    hexagonal = cellpar_to_cell([scale * p.a, scale * p.a, scale * p.c, 90, 90, 120])
    group = Spacegroup(167)
    primitive = group.scaled_primitive_cell @ hexagonal
    sites = atoms.positions[magnetic_sites(atoms)]
    index_of = _lookup(sites, atoms.cell.array)
    shifts = [n @ primitive for n in itertools.product(range(-2, 3), repeat=3)]
    to_frac, to_cart = np.linalg.inv(hexagonal), hexagonal
    permutations, translations = [], []
    for rotation, translation in group.get_symop():
        cartesian = to_cart.T @ rotation @ to_frac.T
        if not _preserves(atoms.cell.array, cartesian):
            continue
        moved = ((sites @ to_frac) @ rotation.T + translation) @ to_cart
        permutations += [index_of(moved + t) for t in shifts]
    translations = [index_of(sites + t) for t in shifts]
    return np.unique(permutations, axis=0), np.unique(translations, axis=0)


def _as_set(permutations: np.ndarray) -> set[tuple[int, ...]]:
    return {tuple(p) for p in permutations}


def _orbit(signs: np.ndarray, group: np.ndarray) -> set[tuple[int, ...]]:
    images = np.asarray(signs)[group]
    return _as_set(np.vstack([images, -images]))


def _repeats(signs: np.ndarray, translations: np.ndarray) -> bool:
    identity = np.arange(len(signs))
    return any(
        np.array_equal(signs[t], signs) for t in translations if not np.array_equal(t, identity)
    )


@pytest.mark.parametrize("cell", list(ROCKSALT_RANDOM_CELLS))
def test_rocksalt_symmetry_is_the_cubic_group_that_keeps_the_supercell(cell):
    atoms = rocksalt_ordered("NiO", "FM", ROCKSALT_RANDOM_CELLS[cell])
    group, translations = _rocksalt_group(atoms)
    symmetry = SupercellSymmetry.of(atoms, rocksalt_primitive("NiO").cell.array)
    assert _as_set(symmetry.operations) == _as_set(group)
    assert _as_set(symmetry.translations) == _as_set(translations)
    assert len(translations) == round(abs(np.linalg.det(ROCKSALT_RANDOM_CELLS[cell])))


@pytest.mark.parametrize("cell", CORUNDUM_RANDOM_CELLS)
def test_corundum_symmetry_is_the_r3c_group_that_keeps_the_supercell(cell):
    atoms = corundum_cell("Fe2O3", cell)
    group, translations = _corundum_group("Fe2O3", cell)
    symmetry = SupercellSymmetry.of(atoms, corundum_cell("Fe2O3").cell.array)
    assert _as_set(symmetry.operations) == _as_set(group)
    assert _as_set(symmetry.translations) == _as_set(translations)


def _symmetry_and_oracle(material: str, cell: str):
    if material in CORUNDUM_PARAMETERS:
        atoms, parent = corundum_cell(material, cell), corundum_cell(material).cell.array
        group, translations = _corundum_group(material, cell)
    else:
        atoms = rocksalt_ordered(material, "FM", ROCKSALT_RANDOM_CELLS[cell])
        parent = rocksalt_primitive(material).cell.array
        group, translations = _rocksalt_group(atoms)
    return SupercellSymmetry.of(atoms, parent), group, translations


@pytest.mark.parametrize(
    ("material", "cell"),
    [("NiO", "idx8a-16"), ("NiO", "idx8b-16"), ("NiO", "idx12b-24"), ("Cr2O3", "rh2x-20")],
)
def test_enough_draws_keep_one_ordering_per_class_and_every_pattern_maps_onto_one(material, cell):
    """Brute force over every sign pattern: each one with no smaller period (oracle
    translations) lies in the orbit (oracle group and flip) of exactly one kept ordering, and
    none of the kept has a smaller period; the exact count agrees."""
    symmetry, group, translations = _symmetry_and_oracle(material, cell)
    n = symmetry.n_sites
    classes = count_distinct_orderings(symmetry)
    kept = random_distinct_orderings(symmetry, classes + 5, np.random.default_rng(1), 20000)
    assert len(kept) == classes
    orbits = [_orbit(signs, group) for signs in kept]
    assert not any(_repeats(signs, translations) for signs in kept)
    for pattern in itertools.product((1, -1), repeat=n):
        signs = np.array(pattern)
        if _repeats(signs, translations):
            continue
        assert sum(pattern in orbit for orbit in orbits) == 1, pattern


@pytest.mark.parametrize(("material", "cell"), [("NiO", "idx16b-32"), ("Fe2O3", "hex-30")])
def test_a_partial_draw_keeps_inequivalent_canonical_orderings(material, cell):
    symmetry, group, translations = _symmetry_and_oracle(material, cell)
    kept = random_distinct_orderings(symmetry, 40, np.random.default_rng(2), 2000)
    assert len(kept) == 40
    orbits = [_orbit(signs, group) for signs in kept]
    for first, second in itertools.combinations(range(len(kept)), 2):
        assert tuple(kept[second]) not in orbits[first]
    for signs, orbit in zip(kept, orbits, strict=True):
        assert not _repeats(signs, translations)
        weights = 2 ** np.arange(len(signs) - 1, -1, -1)
        largest = max(int(((np.array(o) > 0) * weights).sum()) for o in orbit)
        assert int(((signs > 0) * weights).sum()) == largest  # the canonical pattern


def _held_out_matrices() -> list[np.ndarray]:
    named = {**CELLS, **ORDERING_CELLS}
    return [named[c] for c in HELD_OUT_CELLS]


def test_shapes_are_distinct_larger_and_not_held_out():
    matrices = list(ROCKSALT_RANDOM_CELLS.values())
    for first, second in itertools.combinations(matrices, 2):
        assert not same_superlattice(first, second)
    for matrix in matrices:
        assert 8 <= round(abs(np.linalg.det(matrix))) <= 16
        assert not any(same_superlattice(matrix, held) for held in _held_out_matrices())
    assert not set(CORUNDUM_RANDOM_CELLS) & set(CORUNDUM_HELD_OUT_CELLS)
    assert all(round(np.linalg.det(CORUNDUM_CELLS[c])) >= 2 for c in CORUNDUM_RANDOM_CELLS)


@pytest.mark.parametrize("material", ["MnO", "Fe2O3"])
def test_candidates_are_partners_of_their_shapes_fm_frame_with_nominal_moments(material):
    frames = random_ordering_candidates(material, 6)
    ids = [a.info["structure_id"] for a in frames]
    assert len(set(ids)) == len(ids)
    anchors = {a.info["structure_id"]: a for a in frames if "partner_of" not in a.info}
    cells = (
        ROCKSALT_RANDOM_CELLS if material in ROCKSALT_LATTICE_CONSTANTS else CORUNDUM_RANDOM_CELLS
    )
    assert sorted(a.info["cell_name"] for a in anchors.values()) == sorted(cells)
    nominal = 5.0 if material == "Fe2O3" else DEFAULT_MOMENT_MAGNITUDES[material[:-1]]
    for atoms in frames:
        anchor = anchors[atoms.info.get("partner_of", atoms.info["structure_id"])]
        assert atoms.info["cell_name"] == anchor.info["cell_name"]
        assert np.array_equal(atoms.positions, anchor.positions)
        assert np.array_equal(atoms.cell.array, anchor.cell.array)
        assert atoms.get_chemical_symbols() == anchor.get_chemical_symbols()
        moments = atoms.get_initial_magnetic_moments()
        sites = magnetic_sites(anchor)
        assert np.allclose(np.abs(moments[sites]), nominal)
        assert np.count_nonzero(moments) == len(sites)
        letters = "".join("u" if m > 0 else "d" for m in moments[sites])
        if atoms is anchor:
            assert set(letters) == {"u"}
            assert atoms.info["ordering"] in ("FM", letters)
        else:
            assert atoms.info["ordering"] == letters
            assert atoms.info["structure_id"].endswith(letters)
            assert set(letters) == {"u", "d"}
    balanced = [
        np.sum(np.sign(a.get_initial_magnetic_moments())) == 0
        for a in frames
        if "partner_of" in a.info
    ]
    assert any(balanced) and not all(balanced)


def test_no_rocksalt_candidate_is_periodic_in_a_smaller_cell():
    for atoms in random_ordering_candidates("NiO", 8, seed=3):
        if "partner_of" not in atoms.info:
            continue
        ideal = rocksalt_ordered("NiO", "FM", ROCKSALT_RANDOM_CELLS[atoms.info["cell_name"]])
        ideal.set_initial_magnetic_moments(atoms.get_initial_magnetic_moments())
        assert not has_smaller_period(ideal, A_NIO), atoms.info["structure_id"]


def test_no_corundum_candidate_repeats_with_the_10_atom_cell():
    parent = corundum_cell("Cr2O3").cell.array
    for atoms in random_ordering_candidates("Cr2O3", 8, seed=3):
        ideal = corundum_cell("Cr2O3", atoms.info["cell_name"])
        ideal.set_initial_magnetic_moments(atoms.get_initial_magnetic_moments())
        assert repeats_with(ideal, parent) == ("partner_of" not in atoms.info)


def test_counts_are_bounded_and_draws_are_a_function_of_the_seed():
    frames = random_ordering_candidates("NiO", 12, seed=5)
    again = random_ordering_candidates("NiO", 12, seed=5)
    other = random_ordering_candidates("NiO", 12, seed=6)
    ids = [a.info["structure_id"] for a in frames]
    assert ids == [a.info["structure_id"] for a in again]
    for first, second in zip(frames, again, strict=True):
        assert np.array_equal(
            first.get_initial_magnetic_moments(), second.get_initial_magnetic_moments()
        )
    assert ids != [a.info["structure_id"] for a in other]
    parent = rocksalt_primitive("NiO").cell.array
    for cell, matrix in ROCKSALT_RANDOM_CELLS.items():
        found = sum(a.info["cell_name"] == cell and "partner_of" in a.info for a in frames)
        symmetry = SupercellSymmetry.of(rocksalt_ordered("NiO", "FM", matrix), parent)
        classes = count_distinct_orderings(symmetry) if symmetry.n_sites <= 12 else 12
        assert found == min(12, classes), cell  # the index-8 shapes have fewer classes


def test_the_partner_source_of_a_picked_structure_is_labelled_with_it_once():
    def frame(sid: str, source: str | None = None) -> Atoms:
        atoms = bulk("Ni")
        atoms.info["structure_id"] = sid
        if source:
            atoms.info["partner_of"] = source
        return atoms

    pool = [frame("A"), frame("a1", "A"), frame("a2", "A"), frame("B"), frame("b1", "B")]
    pool.append(frame("c1", "elsewhere"))
    by_id = {a.info["structure_id"]: a for a in pool}

    def ids(chosen: list[str], taken: set[str]) -> list[str]:
        picked = with_partner_sources([by_id[s] for s in chosen], pool, taken)
        return [a.info["structure_id"] for a in picked]

    assert ids(["a2", "b1", "a1", "c1"], set()) == ["A", "a2", "B", "b1", "a1", "c1"]
    assert ids(["a2", "b1"], {"A"}) == ["a2", "B", "b1"]
    assert ids(["b1", "B"], set()) == ["b1", "B"]


def test_cli_writes_the_candidates_and_refuses_bad_input_in_one_line(tmp_path, capsys):
    out = tmp_path / "pool.extxyz"
    argv = ["structures", str(out), "--random-orderings", "2", "--materials", "Cr2O3"]
    assert main([*argv, "--seed", "1"]) == 0
    written = read(out, index=":")
    made = random_ordering_candidates("Cr2O3", 2, seed=1)
    assert [a.info["structure_id"] for a in written] == [a.info["structure_id"] for a in made]
    assert [a.info.get("partner_of") for a in written] == [a.info.get("partner_of") for a in made]
    capsys.readouterr()
    for bad, message in (
        (["--random-orderings", "0"], "--random-orderings must be a whole number >= 1"),
        (["--random-orderings", "2", "--materials", "Al2O3"], "no random-ordering candidates"),
        (["--random-orderings", "2", "--orderings-pool"], "give one of"),
        (["--random-orderings", "2", "--seed", "-1"], "--seed"),
    ):
        target = tmp_path / "bad.extxyz"
        assert main(["structures", str(target), *bad]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and message in error, error
        assert not target.exists()
    assert main(argv) == 2  # the file exists: kept without --overwrite
    assert "exist" in capsys.readouterr().err
    assert [a.info["structure_id"] for a in read(out, index=":")] == [
        a.info["structure_id"] for a in made
    ]
