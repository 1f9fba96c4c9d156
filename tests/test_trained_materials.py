"""The materials a model was trained on: recorded by training, checked by the by-name commands."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import pytest
from ase.io import read, write

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.cli import main
from spinmultinet_ase.export import load_model
from spinmultinet_ase.materials import untrained_warning
from spinmultinet_ase.testing.models import TINY_CONFIG, as_loaded, random_model
from spinmultinet_ase.train.config import config_from_dict
from spinmultinet_ase.train.trainer import Trainer
from spinmultinet_ase.workflows.inputs import warn_if_untrained

ROOT = Path(__file__).parents[1]
REFERENCE = ROOT / "data" / "reference.extxyz"
SHIPPED = ROOT / "models" / "spinmultinet-mno-nio" / "model.pt"


def _config(data: Path, output: Path, **top) -> dict:
    return {
        "data": {
            "path": str(data),
            "test_yardsticks": False,
            "validation_fraction": 0.0,
            "test_fraction": 0.0,
        },
        "model": dict(TINY_CONFIG),
        "optim": {"max_epochs": 1, "batch_size": 4},
        "output_dir": str(output),
        "dtype": "float64",
        "num_threads": 1,
        **top,
    }


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """Labelled MnO frames (cells of 4 and 8 atoms) and NiO frames, in two files, with how
    many frames each file holds."""
    folder = tmp_path_factory.mktemp("data")
    every = read(REFERENCE, index=":")
    picked = {}
    for metal in ("Mn", "Ni"):
        small = [a for a in every if a.get_chemical_formula() == f"{metal}2O2"][:3]
        large = [a for a in every if a.get_chemical_formula() == f"{metal}4O4"][:3]
        write(folder / f"{metal}.extxyz", small + large)
        picked[metal] = (folder / f"{metal}.extxyz", len(small + large))
    return picked


@pytest.fixture(scope="module")
def mno_model(frames, tmp_path_factory):
    """A tiny model (species O, Mn, Fe, Co, Ni) trained one epoch on the MnO frames only."""
    output = tmp_path_factory.mktemp("mno")
    summary = Trainer(config_from_dict(_config(frames["Mn"][0], output)), progress=False).run()
    return output / "model.pt", summary


def test_the_record_counts_the_training_frames_by_reduced_formula(frames, mno_model):
    path, summary = mno_model
    expected = {"MnO": frames["Mn"][1]}
    assert summary["trained_materials"] == expected
    assert load_model(path).metadata["training"]["trained_materials"] == expected
    assert json.loads((path.parent / "summary.json").read_text())["trained_materials"] == expected


def test_a_fine_tuned_model_lists_its_source_materials_too(frames, mno_model, tmp_path):
    """Source's MnO frames, this run's NiO frames, and the MnO frames replayed in this run."""
    config = _config(frames["Ni"][0], tmp_path / "run", init_from=str(mno_model[0]))
    config["data"].update(replay_paths=[str(frames["Mn"][0])], replay_fraction=0.5)
    trainer = Trainer(config_from_dict(config), progress=False)
    assert trainer.trained_materials == {"MnO": 2 * frames["Mn"][1], "NiO": frames["Ni"][1]}


def test_a_source_without_a_record_leaves_none(frames, tmp_path):
    config = _config(frames["Ni"][0], tmp_path / "run", init_from=str(SHIPPED))
    assert Trainer(config_from_dict(config), progress=False).trained_materials is None


def _relax_stderr(material: str, model: Path, folder: Path, capsys) -> str:
    capsys.readouterr()
    argv = ["relax", material, "--model", str(model), "--steps", "1", "--quiet"]
    assert main([*argv, "--output", str(folder / f"{material}.extxyz")]) == 0
    return capsys.readouterr().err


def test_a_named_material_outside_the_record_is_named_once_on_stderr(mno_model, tmp_path, capsys):
    lines = _relax_stderr("FeO", mno_model[0], tmp_path, capsys).splitlines()
    untrained = [line for line in lines if "not trained on" in line]
    assert untrained == [
        f"spinmultinet relax: warning: {mno_model[0].resolve()} was not trained on FeO "
        "(trained on: MnO); its FeO numbers are untested"
    ]
    assert "not trained on" not in _relax_stderr("MnO", mno_model[0], tmp_path, capsys)


def test_a_model_without_the_record_stays_quiet(tmp_path, capsys):
    assert "trained_materials" not in load_model(SHIPPED).metadata.get("training", {})
    assert "not trained on" not in _relax_stderr("NiO", SHIPPED, tmp_path, capsys)


def test_a_structure_file_is_not_checked_by_name(mno_model, tmp_path):
    """Only a material name is checked: a file of FeO is the user's own structure."""
    calc = SpinMultiNetCalculator(mno_model[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_untrained(str(tmp_path / "FeO"), calc)
    with pytest.warns(UserWarning, match="not trained on FeO"):
        warn_if_untrained("FeO", calc)


def _recording(materials: dict[str, int] | None):
    loaded = as_loaded(random_model())
    training = {} if materials is None else {"trained_materials": materials}
    return dataclasses.replace(loaded, metadata={**loaded.metadata, "training": training})


def test_a_committee_counts_a_material_trained_only_if_every_recording_member_learned_it():
    both = _recording({"MnO": 4, "NiO": 2})
    mno = _recording({"MnO": 3})
    silent = _recording(None)
    assert untrained_warning("MnO", [both, mno, silent], ["a", "b", "c"]) is None
    assert untrained_warning("NiO", [both, mno, silent], ["a", "b", "c"]) == (
        "b was not trained on NiO (trained on: MnO); its NiO numbers are untested"
    )
    assert untrained_warning("FeO", [both, mno], ["a", "b"]).startswith(
        "a, b were not trained on FeO (trained on: MnO)"
    )
    assert untrained_warning("FeO", [silent, silent], ["a", "b"]) is None
    assert untrained_warning("Ni2O2", [both], ["a"]) is None  # the same material, unreduced
