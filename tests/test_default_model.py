"""The default-model pipeline for any config: paths, the frozen data, missing files, the
oxide-family config, and the card's report of every material it is meant for."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ase.io import read, write

from spinmultinet_ase.cli import main
from spinmultinet_ase.dft.corundum_structures import CORUNDUM_HELD_OUT_CELLS
from spinmultinet_ase.dft.structures import HELD_OUT_CELLS, HELD_OUT_ORDERINGS
from spinmultinet_ase.export import export_model, load_model
from spinmultinet_ase.reference.default_model import freeze, model_dir, snapshot_path
from spinmultinet_ase.testing.models import random_model, tiny_training_config
from spinmultinet_ase.train.config import config_from_dict, load_config
from spinmultinet_ase.train.dataset import split_of
from spinmultinet_ase.train.evaluate import data_config_of, missing_materials
from spinmultinet_ase.train.trainer import Trainer

ROOT = Path(__file__).parents[1]
REFERENCE = ROOT / "data" / "reference.extxyz"
CORUNDUM = ROOT / "data" / "reference_Cr2O3_Fe2O3.extxyz"
SHIPPED = ROOT / "models" / "spinmultinet-mno-nio" / "model.pt"
ABLATED = ("default_mno_nio", "ablation_no_spin", "ablation_no_moment_loss")
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _config_file(tmp_path: Path, paths: list[str], **data) -> Path:
    path = tmp_path / "default_trial.yaml"
    values = {
        "data": {"path": paths, **data},
        "model": {"channels": 8, "spin_channels": 8, "num_layers": 1, "cutoff": 4.5},
        "optim": {"max_epochs": 2, "batch_size": 4, "learning_rate": 0.01},
        "output_dir": str(tmp_path / "run"),
        "dtype": "float64",
        "num_threads": 1,
    }
    path.write_text(yaml.safe_dump(values))
    return path


def test_names_follow_the_config():
    assert model_dir("configs/default_mno_nio.yaml") == Path("models/spinmultinet-mno-nio")
    assert model_dir("configs/default_oxides.yaml") == Path("models/spinmultinet-oxides")
    one = load_config(ROOT / "configs" / "default_mno_nio.yaml")
    assert snapshot_path(one) == Path("data/reference.training.extxyz")
    several = load_config(ROOT / "configs" / "default_oxides.yaml")
    assert snapshot_path(several) == Path("runs/default_oxides.training.extxyz")


def test_a_missing_data_file_is_one_line_and_exit_2(tmp_path):
    existing = tmp_path / "labelled.extxyz"
    write(existing, read(REFERENCE, index=":2"))
    missing = tmp_path / "reference_FeO.extxyz"
    config = _config_file(tmp_path, [str(existing), str(missing)])
    freeze_step = [sys.executable, "-m", "spinmultinet_ase.reference.default_model", "freeze"]
    for command in (
        [*freeze_step, str(config), str(tmp_path / "frozen.extxyz")],
        ["bash", str(ROOT / "scripts" / "train_default_model.sh"), str(config)],
    ):
        run = subprocess.run(command, capture_output=True, text=True, env=ENV)
        assert run.returncode == 2, run.stderr
        assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
        assert f"do not exist (not labelled yet?): {missing}" in run.stderr
    assert not (tmp_path / "frozen.extxyz").exists()
    assert not (tmp_path / "run").exists()


def test_the_frozen_copy_is_the_files_in_order_and_grows_by_test_frames_only(tmp_path):
    frames = read(REFERENCE, index=":12")
    first, second = tmp_path / "first.extxyz", tmp_path / "second.extxyz"
    write(first, frames[:5])
    write(second, frames[5:9])
    data = config_from_dict(
        {"data": {"path": [str(first), str(second)], "test_yardsticks": True}}
    ).data
    frozen = tmp_path / "frozen.extxyz"
    assert freeze(data, frozen) == 9
    ids = [a.info["structure_id"] for a in read(frozen, index=":")]
    assert ids == [a.info["structure_id"] for a in frames[:9]]
    with pytest.raises(ValueError, match="one growing data file"):
        freeze(data, tmp_path / "other.extxyz", frames=4)
    write(second, frames[5:])  # labelling went on in the second file
    assert freeze(data, frozen) == 9  # an existing copy is kept
    config = _config_file(tmp_path, [str(first), str(second)], test_yardsticks=True)
    run = subprocess.run(
        [sys.executable, "-m", "spinmultinet_ase.reference.default_model", "add-test-frames"]
        + [str(config), str(frozen)],
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert run.returncode == 0, run.stderr
    added = [a for a in frames[9:] if split_of(a, data) == "test"]
    assert f"{len(added)} test frames labelled since it was made added" in run.stdout
    assert len(read(frozen, index=":")) == 9 + len(added)


def test_the_oxide_config_keeps_the_shipped_models_test_frames_out_of_training():
    """Fine-tuned from the shipped model on data that includes the shipped model's own data:
    every frame the shipped model was tested on must be a test frame again."""
    config = load_config(ROOT / "configs" / "default_oxides.yaml")
    assert config.init_from == "models/spinmultinet-mno-nio/model.pt"
    assert set(config.model.species) == {"O", "Cr", "Mn", "Fe", "Co", "Ni"}
    assert set(config.data.materials) == {"MnO", "FeO", "CoO", "NiO", "Cr2O3", "Fe2O3"}
    assert set(HELD_OUT_ORDERINGS) <= set(config.data.test_orderings)
    assert set(HELD_OUT_CELLS + CORUNDUM_HELD_OUT_CELLS) <= set(config.data.test_cells)
    assert "data/active_CoO/initial.extxyz" not in config.data.paths
    shipped = data_config_of(load_model(SHIPPED).metadata, REFERENCE)
    for atoms in read(REFERENCE, index=":"):
        if split_of(atoms, shipped) == "test":
            assert split_of(atoms, config.data) == "test", atoms.info["structure_id"]
    yardsticks = [a for a in read(CORUNDUM, index=":") if a.info.get("yardstick")]
    assert yardsticks and {split_of(a, config.data) for a in yardsticks} == {"test"}


def test_missing_materials_names_what_the_data_lacks():
    tested = {"MnO": {}, "MnO ideal cells": {}, "Cr2O3 ideal cells": {}}
    measured = {"MnO": {}, "Cr2O3 rh-10": {}, "Fe2O3 rh-10": {}}
    unseen = [{"material": "MnO", "cell": "conv112-16"}, {"material": "Cr2O3", "cell": "rh110-20"}]
    missing = missing_materials(("MnO", "FeO", "Cr2O3", "Fe2O3"), tested, measured, unseen)
    assert missing == {
        "FeO": ["test frames", "DFT yardsticks", "unseen orderings"],
        "Fe2O3": ["test frames", "unseen orderings"],
    }


def test_the_card_reports_every_listed_material_missing_ones_included(tmp_path, capsys):
    data = tmp_path / "reference.extxyz"
    write(data, read(REFERENCE, index=":8"))  # MnO yardstick cells only
    config_path = _config_file(
        tmp_path,
        [str(data)],
        validation_fraction=0.0,
        test_fraction=0.0,
        materials=["MnO", "FeO"],
    )
    frozen = tmp_path / "frozen.extxyz"  # trained on a frozen copy, as the script does
    frozen.write_bytes(data.read_bytes())
    config = load_config(config_path)
    train = dataclasses.replace(config, data=dataclasses.replace(config.data, path=str(frozen)))
    Trainer(train, progress=False).run()
    run = tmp_path / "run"
    evaluation = ["evaluate", str(run / "model.pt"), str(frozen), "--output-dir"]
    assert main([*evaluation, str(run / "evaluation")]) == 0
    assert "FeO: missing, the data has no test frames and no DFT yardsticks" in (
        capsys.readouterr().out
    )
    result = json.loads((run / "evaluation" / "evaluation.json").read_text())
    assert result["missing"] == {
        "MnO": ["test frames", "unseen orderings"],  # every frame trained on
        "FeO": ["test frames", "DFT yardsticks", "unseen orderings"],
    }
    card_dir = tmp_path / "card"
    assert main(["model-card", str(run), str(card_dir), "--config", str(config_path)]) == 0
    card = (card_dir / "card.md").read_text()
    assert "| FeO | 0 (missing: no test frames) |" in card
    assert "| MnO | 0 (missing: no test frames) |" in card
    assert "| FeO | DFT yardsticks | missing (none labelled) | – | ✗ |" in card
    assert "| FeO | – | missing: no held-out shape labelled in two or more orderings |" in card
    assert "Meant also for FeO, of which its data holds no frames yet." in card
    assert f"* Reference data: `{data}` (GPAW PBE+U" in card
    options = f"{config_path} --fresh --no-ablations --model-dir {card_dir}`"
    assert f"train_default_model.sh {options}" in card
    assert json.loads((card_dir / "metrics.json").read_text())["missing"] == result["missing"]


def test_yardsticks_name_the_materials_without_yardstick_frames(tmp_path, capsys):
    data = tmp_path / "reference.extxyz"
    write(data, read(REFERENCE, index=":8"))  # MnO yardstick cells only
    command = ["yardsticks", str(data), str(tmp_path / "yardsticks.json")]
    assert main([*command, "--materials", "MnO", "FeO"]) == 0
    out = capsys.readouterr().out
    assert f"FeO: missing, no yardstick frames in {data}" in out
    assert "MnO: missing" not in out
    assert set(json.loads((tmp_path / "yardsticks.json").read_text())) == {"MnO"}


def test_a_run_resumes_with_other_materials_to_report(tmp_path):
    """The materials a run's reports cover do not define the run."""
    data = tmp_path / "reference.extxyz"
    write(data, read(REFERENCE, index=":8"))
    config = load_config(_config_file(tmp_path, [str(data)], test_fraction=0.0))
    Trainer(
        dataclasses.replace(config, optim=dataclasses.replace(config.optim, max_epochs=1)),
        progress=False,
    ).run()
    more = dataclasses.replace(config.data, materials=("MnO", "FeO"))
    summary = Trainer(dataclasses.replace(config, data=more), resume=True, progress=False).run()
    assert summary["epochs"] == 2


def test_fresh_without_ablations_still_clears_the_ablation_runs(tmp_path):
    """``--fresh --no-ablations`` deletes the committed ablations, so it must delete their runs
    too: a later run with ablations would otherwise resume checkpoints of the old data."""
    for name in ("scripts/train_default_model.sh", *(f"configs/{c}.yaml" for c in ABLATED)):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text((ROOT / name).read_text())
    for run in ("default_mno_nio", "ablation_no_spin", "ablation_no_moment_loss"):
        (tmp_path / "runs" / run).mkdir(parents=True)
        (tmp_path / "runs" / run / "last.ckpt").write_text("")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "reference.extxyz").write_text("not extxyz\n")  # stops after --fresh
    script = tmp_path / "scripts" / "train_default_model.sh"
    run = subprocess.run(
        ["bash", str(script), "--fresh", "--no-ablations"], capture_output=True, text=True, env=ENV
    )
    assert run.returncode == 2 and "cannot read labelled frames" in run.stderr
    assert not list((tmp_path / "runs").iterdir())


def test_a_missing_data_file_stops_fresh_before_it_deletes_anything(tmp_path):
    data = tmp_path / "labelled.extxyz"
    write(data, read(REFERENCE, index=":2"))
    config = _config_file(tmp_path, [str(data), str(tmp_path / "reference_FeO.extxyz")])
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.ckpt").write_text("")
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "model.pt").write_text("")
    script = ROOT / "scripts" / "train_default_model.sh"
    command = ["bash", str(script), str(config), "--fresh", "--model-dir", str(shipped)]
    run = subprocess.run(command, capture_output=True, text=True, env=ENV)
    assert run.returncode == 2 and "do not exist (not labelled yet?)" in run.stderr
    assert (tmp_path / "run" / "last.ckpt").exists() and (shipped / "model.pt").exists()


def test_the_cards_unseen_orderings_limit_prefers_dft_to_the_heisenberg_stand_in(tmp_path):
    """The limit quotes the evaluation's DFT rows; without them the stand-in file of
    scripts/unseen_orderings_heisenberg.py; without either it says the error is unmeasured."""
    from spinmultinet_ase.reference.model_card import (
        HEISENBERG_STAND_IN,
        UNSEEN_ORDERING_TARGET,
        _unseen_orderings_limit,
    )

    def row(material, largest, swapped):
        return {
            "material": material,
            "cell": "conv112-16",
            "orderings": 18,
            "error_mae_meV_per_fu": largest / 2,
            "error_max_meV_per_fu": largest,
            "kendall_tau": 1.0 if swapped == 0 else 0.5,
            "same_lowest": swapped == 0,
            "swapped_resolved_pairs": swapped,
        }

    assert "not measured" in _unseen_orderings_limit({}, tmp_path)
    (tmp_path / "evaluation").mkdir()
    stand_in = [row("NiO", 21.13, 27)]
    (tmp_path / "evaluation" / HEISENBERG_STAND_IN).write_text(json.dumps(stand_in))
    text = _unseen_orderings_limit({"unseen_orderings": []}, tmp_path)
    assert "two-shell Heisenberg" in text and "scripts/unseen_orderings_heisenberg.py" in text
    assert "max 21.1 meV/f.u." in text and "another lowest ordering, 27 pairs" in text
    assert "missed" in text
    (tmp_path / "evaluation" / HEISENBERG_STAND_IN).write_text(
        json.dumps([row("NiO", UNSEEN_ORDERING_TARGET / 2, 0)])
    )
    text = _unseen_orderings_limit({}, tmp_path)
    assert text.endswith("met by the stand-in only, which bounds nothing against DFT.")
    good = [row("MnO", UNSEEN_ORDERING_TARGET / 2, 0)]
    text = _unseen_orderings_limit({"unseen_orderings": good}, tmp_path)
    assert "against DFT" in text and "Heisenberg" not in text and text.endswith("met.")


def test_the_script_reads_config_and_model_dir_from_where_it_is_started(tmp_path):
    """``cd TRIAL && bash .../train_default_model.sh config.yaml --model-dir model`` means the
    files in TRIAL, not in the repository the script moves to."""
    (tmp_path / "labelled.extxyz").write_text("not extxyz\n")  # stops after --fresh
    config = _config_file(tmp_path, [str(tmp_path / "labelled.extxyz")])
    shipped = tmp_path / "trial_model"
    shipped.mkdir()
    (shipped / "model.pt").write_text("")
    script = ROOT / "scripts" / "train_default_model.sh"
    command = ["bash", str(script), config.name, "--fresh", "--model-dir", shipped.name]
    run = subprocess.run(command, capture_output=True, text=True, env=ENV, cwd=tmp_path)
    assert run.returncode == 2 and "cannot read labelled frames" in run.stderr
    assert not (shipped / "model.pt").exists()  # --fresh cleared the folder named from here
    assert not (ROOT / shipped.name).exists()


def test_the_card_names_the_materials_it_never_trained_on(tmp_path):
    """FeO only in yardstick cells (all held out): the card must not present the model as
    one for FeO."""
    data = tmp_path / "reference.extxyz"
    write(
        data,
        read(REFERENCE, index="16:24") + read(ROOT / "data" / "reference_FeO.extxyz", index=":"),
    )
    values = tiny_training_config(
        data, tmp_path / "run", data_options={"test_yardsticks": True, "materials": ["MnO", "FeO"]}
    )
    values["model"]["species"] = ["O", "Mn", "Fe"]
    Trainer(config_from_dict(values), progress=False).run()
    run = tmp_path / "run"
    evaluation = ["evaluate", str(run / "model.pt"), str(data), "--output-dir"]
    assert main([*evaluation, str(run / "evaluation")]) == 0
    assert main(["model-card", str(run), str(tmp_path / "card")]) == 0
    card = (tmp_path / "card" / "card.md").read_text()
    assert "SpinMultiNet potential for rocksalt MnO (collinear spin input)" in card
    assert "Its data also holds FeO, never trained on" in card
    assert "* Rocksalt MnO near their equilibrium volume" in card
    assert "| FeO ideal cells |" in card  # still evaluated


def test_the_heisenberg_stand_in_covers_the_materials_the_model_is_meant_for(tmp_path):
    """By default the rocksalt materials of the model's config with J's in the yardsticks;
    the others are named, and the card's limit says they are not measured."""
    from spinmultinet_ase.reference.model_card import HEISENBERG_STAND_IN, _unseen_orderings_limit

    model = tmp_path / "model.pt"
    meant = {"data": {"materials": ["MnO", "NiO", "Cr2O3"]}}
    species = ["O", "Cr", "Mn", "Ni"]
    export_model(random_model(species=species), model, {"train_config": meant})
    yardsticks = json.loads((ROOT / "data" / "yardsticks.json").read_text())
    only_mno = tmp_path / "yardsticks.json"
    only_mno.write_text(json.dumps({"MnO": yardsticks["MnO"]}))
    (tmp_path / "evaluation").mkdir()
    rows = tmp_path / "evaluation" / HEISENBERG_STAND_IN
    script = ROOT / "scripts" / "unseen_orderings_heisenberg.py"
    command = [sys.executable, str(script), str(model), "--yardsticks", str(only_mno)]
    run = subprocess.run([*command, "--output", str(rows)], capture_output=True, text=True, env=ENV)
    assert run.returncode == 0, run.stderr
    assert "NiO: left out, no J1 S², J2 S² in the yardsticks" in run.stderr
    assert "Cr2O3: left out, not a rocksalt formula" in run.stderr
    assert {row["material"] for row in json.loads(rows.read_text())} == {"MnO"}
    limit = _unseen_orderings_limit({}, tmp_path, meant["data"]["materials"])
    assert "MnO `conv112-16`" in limit and limit.endswith(" Not measured for NiO, Cr2O3.")
