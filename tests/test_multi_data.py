"""Several labelled files as one training data set (``data.path`` a list)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from ase.io import read, write

from spinmultinet_ase.cli import main
from spinmultinet_ase.train.config import DataConfig, config_from_dict
from spinmultinet_ase.train.dataset import SPLITS, build_datasets, data_fingerprint
from spinmultinet_ase.train.trainer import Trainer

REFERENCE = Path(__file__).parents[1] / "data" / "reference.extxyz"
SMALL_MODEL = {"channels": 8, "spin_channels": 8, "num_layers": 1, "cutoff": 4.5}
SPECIES = ("Mn", "Ni", "O")


@pytest.fixture(scope="module")
def frames():
    """Reference frames with yardsticks, ordering partners with their sources, and two frames
    without a structure id."""
    everything = read(REFERENCE, index=":")
    partners = [a for a in everything if "partner_of" in a.info][:3]
    sources = {a.info["partner_of"] for a in partners}
    chosen = [a for a in everything if a.info["structure_id"] in sources] + partners
    chosen += [a for a in everything if a.info.get("yardstick")][:2]
    taken = {id(a) for a in chosen}
    chosen += [a for a in everything if id(a) not in taken and "partner_of" not in a.info][:20]
    for atoms in chosen[-2:]:
        del atoms.info["structure_id"]
    return chosen


def _data(path, **rules) -> DataConfig:
    rules = {"validation_fraction": 0.25, "test_fraction": 0.25, "test_yardsticks": True, **rules}
    return config_from_dict({"data": {"path": path, **rules}}).data


def test_two_files_split_and_train_like_their_concatenation(frames, tmp_path):
    first, second, whole = (tmp_path / f"{n}.extxyz" for n in ("first", "second", "whole"))
    cut = len(frames) // 2  # partners in one file, their sources in the other
    write(first, frames[:cut])
    write(second, frames[cut:])
    write(whole, frames)
    datasets = [
        build_datasets(_data(path), SPECIES, 4.5, torch.float64)
        for path in ([str(first), str(second)], str(whole))
    ]
    for name in SPLITS:
        ids = [[a.info["structure_id"] for a in d[name].frames] for d in datasets]
        assert ids[0] == ids[1], name
        energies = [[a.get_potential_energy() for a in d[name].frames] for d in datasets]
        assert energies[0] == energies[1], name
        assert [list(g) for g in datasets[0][name].groups] == [
            list(g) for g in datasets[1][name].groups
        ]
    assert all(len(datasets[0][name]) for name in SPLITS)
    assert max(len(g) for g in datasets[0]["train"].groups + datasets[0]["test"].groups) > 1
    assert data_fingerprint(datasets[0]) == data_fingerprint(datasets[1])


def test_one_way_to_name_the_files():
    assert _data(["a.extxyz"]).path == _data("a.extxyz").path == "a.extxyz"
    assert _data(["a.extxyz", "b.extxyz"]).paths == ("a.extxyz", "b.extxyz")
    for bad, match in (([], "data.path must be"), (["a", 1], "data.path must be")):
        with pytest.raises(ValueError, match=match):
            _data(bad)
    with pytest.raises(ValueError, match="names a.extxyz more than once"):
        _data(["a.extxyz", "b.extxyz", "a.extxyz"])


def test_a_structure_id_in_two_files_is_refused(frames, tmp_path):
    first, second = tmp_path / "first.extxyz", tmp_path / "second.extxyz"
    write(first, frames[:6])
    write(second, frames[8:10] + frames[4:5])
    repeated = frames[4].info["structure_id"]
    with pytest.raises(ValueError) as error:
        build_datasets(_data([str(first), str(second)]), SPECIES, 4.5, torch.float64)
    message = str(error.value)
    assert f"{second} frame 2" in message and repr(repeated) in message and str(first) in message


def _config_file(tmp_path, paths) -> Path:
    config = {
        "data": {"path": [str(p) for p in paths], "validation_fraction": 0.0, "test_fraction": 0.0},
        "model": SMALL_MODEL,
        "optim": {"max_epochs": 1, "batch_size": 4},
        "output_dir": str(tmp_path / "run"),
        "dtype": "float64",
        "num_threads": 1,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_bad_data_files_are_one_line_from_the_cli(frames, tmp_path, capsys):
    good, twin = tmp_path / "good.extxyz", tmp_path / "twin.extxyz"
    write(good, frames[:4])
    write(twin, frames[3:5])
    unreadable = tmp_path / "unreadable.extxyz"
    unreadable.write_text("2\nnot an extxyz comment line\nMn 0 0\n")
    config = _config_file(tmp_path, [good])
    cases = {
        "missing": ([str(good), str(tmp_path / "missing.extxyz")], "missing.extxyz"),
        "unreadable": ([str(good), str(unreadable)], "cannot read labelled frames from"),
        "duplicate": ([str(good), str(twin)], repr(frames[3].info["structure_id"])),
    }
    for name, (paths, expected) in cases.items():
        capsys.readouterr()
        assert main(["train", str(config), "--quiet", "--data", *paths]) == 2, name
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert "Traceback" not in captured.err and len(lines) == 1, (name, captured.err)
        assert expected in lines[0], (name, lines[0])
        assert not (tmp_path / "run" / "last.ckpt").exists()


def test_resume_refuses_a_changed_second_file(frames, tmp_path):
    first, second = tmp_path / "first.extxyz", tmp_path / "second.extxyz"
    write(first, frames[:4])
    write(second, frames[4:8])
    config = _config_file(tmp_path, [first, second])
    assert main(["train", str(config), "--quiet"]) == 0
    copies = [tmp_path / "first_copy.extxyz", tmp_path / "second_copy.extxyz"]
    for source, copy in zip((first, second), copies, strict=True):
        copy.write_bytes(source.read_bytes())
    again = ["train", str(config), "--quiet", "--resume", "--max-epochs", "2"]
    assert main([*again, "--data", *map(str, copies)]) == 0  # moved copies: the same data

    changed = read(second, index=":")
    changed[0].calc.results["energy"] += 0.01
    write(second, changed)
    loaded = config_from_dict(yaml.safe_load(config.read_text()))
    with pytest.raises(ValueError, match=f"other data than is now in {first}, {second}"):
        Trainer(loaded, resume=True, progress=False)
