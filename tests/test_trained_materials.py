"""The materials a model was trained on: recorded by training, checked by the by-name commands."""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from collections import Counter
from pathlib import Path

import pytest
from ase.formula import Formula
from ase.io import read, write

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.cli import main
from spinmultinet_ase.export import export_model, load_model
from spinmultinet_ase.materials import trained_materials, untrained_warning
from spinmultinet_ase.testing.models import (
    TINY_CONFIG,
    as_loaded,
    random_model,
    tiny_training_config,
)
from spinmultinet_ase.train.config import config_from_dict
from spinmultinet_ase.train.dataset import split_of
from spinmultinet_ase.train.trainer import Trainer, split_materials
from spinmultinet_ase.workflows.inputs import warn_if_untrained

ROOT = Path(__file__).parents[1]
REFERENCE = ROOT / "data" / "reference.extxyz"
SHIPPED = ROOT / "models" / "spinmultinet-mno-nio" / "model.pt"


def _config(data: Path, output: Path, **top) -> dict:
    return tiny_training_config(data, output, **top)


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


def test_source_counts_of_one_material_under_two_formulas_add_up(frames):
    """A record written elsewhere may name a material unreduced (Ni2O2) beside reduced."""
    nio = read(frames["Ni"][0], index=":")
    assert trained_materials(nio, {"Ni2O2": 2, "NiO": 3, "Mn4O4": 1}) == {
        "MnO": 1,
        "NiO": 5 + len(nio),
    }


@pytest.fixture(scope="module")
def unrecorded_model(tmp_path_factory):
    """A model file exported without a training summary, as files before the record were."""
    path = tmp_path_factory.mktemp("unrecorded") / "model.pt"
    export_model(random_model(), path)
    return path


def test_a_source_without_a_record_leaves_none(frames, unrecorded_model, tmp_path):
    config = _config(frames["Ni"][0], tmp_path / "run", init_from=str(unrecorded_model))
    assert Trainer(config_from_dict(config), progress=False).trained_materials is None


def test_a_resumed_run_keeps_the_record_of_the_source_it_started_from(frames, mno_model, tmp_path):
    """Its weights descend from the source it started from, whatever the init_from file holds
    when it resumes (here a model of the same shape without a record)."""
    source = tmp_path / "source.pt"
    shutil.copy(mno_model[0], source)
    config = config_from_dict(_config(frames["Ni"][0], tmp_path / "run", init_from=str(source)))
    started = Trainer(config, progress=False).run()["trained_materials"]
    assert started == {"MnO": frames["Mn"][1], "NiO": frames["Ni"][1]}
    export_model(random_model(**TINY_CONFIG), source)
    assert Trainer(config, resume=True, progress=False).trained_materials == started


def test_the_shipped_model_records_the_train_split_of_its_own_config():
    """Its record counts, by reduced formula, the frames of the reference data that its
    recorded config's split sends to training."""
    metadata = load_model(SHIPPED).metadata
    data = config_from_dict(metadata["train_config"]).data
    train = [a for a in read(REFERENCE, index=":") if split_of(a, data) == "train"]
    counts = Counter(Formula(a.get_chemical_formula()).reduce()[0].format("metal") for a in train)
    assert metadata["training"]["trained_materials"] == dict(counts)
    assert sum(counts.values()) == metadata["training"]["num_frames"]["train"]


def test_the_record_is_not_rebuilt_from_other_data(tmp_path):
    """Data whose training frames differ from the model's (one missing) give no record."""
    every = read(REFERENCE, index=":")
    data = config_from_dict(load_model(SHIPPED).metadata["train_config"]).data
    dropped = next(i for i, a in enumerate(every) if split_of(a, data) == "train")
    write(tmp_path / "fewer.extxyz", every[:dropped] + every[dropped + 1 :])
    with pytest.raises(ValueError, match="not the data the model was trained on"):
        split_materials(load_model(SHIPPED).metadata, [tmp_path / "fewer.extxyz"])


def test_a_model_fine_tuned_from_the_shipped_one_lists_its_materials(frames, tmp_path):
    shipped = load_model(SHIPPED).metadata["training"]["trained_materials"]
    config = _config(frames["Ni"][0], tmp_path / "run", init_from=str(SHIPPED))
    learned = Trainer(config_from_dict(config), progress=False).trained_materials
    assert learned == {"MnO": shipped["MnO"], "NiO": shipped["NiO"] + frames["Ni"][1]}


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


def test_a_model_without_the_record_stays_quiet(unrecorded_model, tmp_path, capsys):
    assert "training" not in load_model(unrecorded_model).metadata
    assert "not trained on" not in _relax_stderr("FeO", unrecorded_model, tmp_path, capsys)


def test_a_material_the_model_cannot_read_gets_the_element_error_alone(tmp_path, capsys):
    """The shipped model (O, Mn, Ni) records MnO and NiO; FeO is refused for its iron, with
    no warning about numbers it will never give."""
    argv = ["relax", "FeO", "--model", str(SHIPPED), "--steps", "1", "--quiet"]
    assert main([*argv, "--output", str(tmp_path / "FeO.extxyz")]) == 2
    error = capsys.readouterr().err
    assert "element(s) Fe not in this model" in error
    assert "not trained on" not in error


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
