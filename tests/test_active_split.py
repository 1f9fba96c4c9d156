"""scripts/active_split.py: the inputs of a material's active-learning campaign."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("active_split", ROOT / "scripts/active_split.py")
active_split = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(active_split)

# A material whose 16 yardstick cells are labelled under its current start rule.
MATERIAL = "FeO"
FILES = ("test_structures.extxyz", "pool.extxyz", "initial.extxyz")


def _data(folder: Path) -> Path:
    """A data folder holding a material's designed structures and labelled yardstick cells."""
    data = folder / "data"
    data.mkdir()
    for name in (f"structures_{MATERIAL}.extxyz", f"reference_{MATERIAL}.extxyz"):
        shutil.copy(ROOT / "data" / name, data / name)
    return data


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    data = _data(tmp_path_factory.mktemp("split"))
    return data, active_split.split(MATERIAL, data)


def _ids(path: Path) -> list[str]:
    return [atoms.info["structure_id"] for atoms in read(path, ":")]


def test_the_split_is_disjoint_complete_and_keeps_partners_out_of_the_test(split):
    data, folder = split
    structures = read(data / f"structures_{MATERIAL}.extxyz", ":")
    designed = [a.info["structure_id"] for a in structures if not a.info.get("yardstick")]
    test, pool = _ids(folder / "test_structures.extxyz"), _ids(folder / "pool.extxyz")
    assert len(test) == 8 and not set(test) & set(pool)
    assert sorted(test + pool) == sorted(designed)
    geometry = {a.info["structure_id"]: a.info.get("partner_of") for a in structures}
    partnered = {sid for sid, source in geometry.items() if source} | set(geometry.values())
    assert not set(test) & partnered


def test_the_initial_data_are_the_labelled_strained_yardstick_cells(split):
    data, folder = split
    reference = read(data / f"reference_{MATERIAL}.extxyz", ":")
    wanted = [a for a in reference if a.info.get("yardstick") and a.info["rhombohedral_strain"]]
    initial = read(folder / "initial.extxyz", ":")
    assert len(initial) == 12
    assert [a.info["structure_id"] for a in initial] == [a.info["structure_id"] for a in wanted]
    for mine, theirs in zip(initial, wanted, strict=True):
        assert mine.get_potential_energy() == theirs.get_potential_energy()
        np.testing.assert_array_equal(mine.get_forces(), theirs.get_forces())
        np.testing.assert_array_equal(mine.get_magnetic_moments(), theirs.get_magnetic_moments())


def test_the_split_is_deterministic_and_never_overwrites_other_content(
    split, tmp_path, monkeypatch, capsys
):
    _, folder = split
    again = active_split.split(MATERIAL, _data(tmp_path))
    for name in FILES:
        assert (again / name).read_bytes() == (folder / name).read_bytes()
    active_split.split(MATERIAL, tmp_path / "data")  # a rerun writes the same
    pool = again / "pool.extxyz"
    changed = b"".join(pool.read_bytes().splitlines(keepends=True)[3:])
    pool.write_bytes(changed)
    monkeypatch.chdir(tmp_path)
    assert active_split.main([MATERIAL]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "exists with other content" in error
    assert pool.read_bytes() == changed


def test_an_unlabelled_yardstick_cell_is_refused(tmp_path):
    data = _data(tmp_path)
    reference = read(data / f"reference_{MATERIAL}.extxyz", ":")
    write(data / f"reference_{MATERIAL}.extxyz", reference[1:])
    with pytest.raises(ValueError, match="1 of the 16 yardstick cells are not labelled"):
        active_split.split(MATERIAL, data)
    assert not (data / f"active_{MATERIAL}" / "pool.extxyz").exists()


def test_the_test_file_waits_for_every_test_structure_then_holds_the_ideal_cells_first(
    tmp_path,
):
    data = _data(tmp_path)
    folder = active_split.split(MATERIAL, data)
    structures = read(folder / "test_structures.extxyz", ":")
    labelled = []
    for number, atoms in enumerate(structures):
        atoms.calc = SinglePointCalculator(
            atoms, energy=-float(number), forces=np.zeros((len(atoms), 3))
        )
        labelled.append(atoms)
    write(folder / "test_labelled.extxyz", labelled[:6])
    with pytest.raises(ValueError, match="2 of the 8 test structures are not labelled"):
        active_split.write_test_file(MATERIAL, data)
    write(folder / "test_labelled.rejected.extxyz", labelled[6])
    with pytest.raises(ValueError, match="1 of the 8 test structures are not labelled"):
        active_split.write_test_file(MATERIAL, data)
    write(folder / "test_labelled.extxyz", labelled[:6] + labelled[7:])
    test = read(active_split.write_test_file(MATERIAL, data), ":")
    ideal = [
        a.info["structure_id"]
        for a in read(data / f"reference_{MATERIAL}.extxyz", ":")
        if a.info["rhombohedral_strain"] == 0
    ]
    ids = [a.info["structure_id"] for a in structures]
    assert [a.info["structure_id"] for a in test] == ideal + ids[:6] + ids[7:]
    assert [a.get_potential_energy() for a in test[4:]] == [0, -1, -2, -3, -4, -5, -7]
