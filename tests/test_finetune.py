"""Fine-tuning: a model grown from the shipped one computes what it did; replay mixes old data."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.io import read, write

from spinmultinet_ase import keys
from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.checkpoint import load_checkpoint, save_checkpoint
from spinmultinet_ase.cli import main
from spinmultinet_ase.data.graph import collate
from spinmultinet_ase.export import load_model
from spinmultinet_ase.testing.models import TINY_CONFIG, random_model, tiny_training_config
from spinmultinet_ase.train.config import DataConfig, config_from_dict
from spinmultinet_ase.train.dataset import split_of
from spinmultinet_ase.train.evaluate import data_config_of
from spinmultinet_ase.train.finetune import load_source
from spinmultinet_ase.train.replay import replay_split_rules, split_rules
from spinmultinet_ase.train.trainer import Trainer

ROOT = Path(__file__).parents[1]
REFERENCE = ROOT / "data" / "reference.extxyz"
SHIPPED = ROOT / "models" / "spinmultinet-mno-nio" / "model.pt"


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """Six MnO and six NiO labelled frames, in two files."""
    folder = tmp_path_factory.mktemp("data")
    every = read(REFERENCE, index=":")
    mno = [a for a in every if a.get_chemical_symbols()[0] == "Mn"][16:22]
    nio = [a for a in every if a.get_chemical_symbols()[0] == "Ni"][16:22]
    write(folder / "mno.extxyz", mno)
    write(folder / "nio.extxyz", nio)
    return folder / "mno.extxyz", folder / "nio.extxyz"


def _config(data: Path, output: Path, **top) -> dict:
    return tiny_training_config(data, output, data_options={"guess_rescale": 0.0}, **top)


def _energies(model: torch.nn.Module, samples: list[dict]) -> torch.Tensor:
    batch = collate([{k: v.clone() for k, v in s.items()} for s in samples])
    return model(batch)[keys.ENERGY].detach()


@pytest.mark.parametrize("species", [["O", "Mn", "Ni"], ["O", "Mn", "Fe", "Co", "Ni"]])
def test_the_grown_model_computes_the_source_energies_before_any_step(frames, tmp_path, species):
    config = _config(frames[1], tmp_path / "run", init_from=str(SHIPPED))
    config["model"]["species"] = species
    trainer = Trainer(config_from_dict(config), progress=False)
    grown = trainer.model.eval()
    assert grown.config.species[:3] == ("O", "Mn", "Ni")  # old species keep their index
    assert set(grown.config.species) == set(species) | {"O", "Mn", "Ni"}
    source = load_model(SHIPPED, dtype=torch.float64).module
    samples = trainer.data["train"].samples
    torch.testing.assert_close(
        _energies(grown, samples), _energies(source, samples), rtol=1e-12, atol=1e-9
    )
    # a checkpoint is a source too, with the same weights
    save_checkpoint(grown, tmp_path / "grown.ckpt")
    again = load_source(tmp_path / "grown.ckpt")
    assert again.species == grown.config.species
    for name, value in grown.state_dict().items():
        assert torch.equal(again.weights[name], value), name


def test_new_species_get_their_own_embedding_rows_and_train(frames, tmp_path):
    config = _config(frames[1], tmp_path / "run", init_from=str(SHIPPED))
    trainer = Trainer(config_from_dict(config), progress=False)
    source = load_source(SHIPPED)
    layer = "embedding.even.layer0.weight"
    old, grown = source.weights[layer], trainer.model.state_dict()[layer]
    assert grown.shape[0] == old.shape[0] + 2  # Fe and Co added
    rescale = (grown.shape[0] / old.shape[0]) ** 0.5  # e3nn divides by sqrt(inputs)
    torch.testing.assert_close(grown[:3], old[:3].double() * rescale)
    torch.testing.assert_close(grown[5:], old[3:].double() * rescale)
    assert grown[3:5].abs().sum() > 0
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.run()
    assert not torch.equal(trainer.model.state_dict()[layer], before[layer])


def test_replay_frames_fill_their_share_of_every_batch(frames, tmp_path):
    config = _config(frames[1], tmp_path / "run")
    config["data"].update(replay_paths=[str(frames[0])], replay_fraction=0.5)
    trainer = Trainer(config_from_dict(config), progress=False)
    train = trainer.data["train"]
    assert len(train) == 12
    seen = Counter()
    for epoch in range(3):
        generator = torch.Generator().manual_seed(epoch)
        for indices in trainer._batch_indices(generator):
            metals = [train.frames[i].get_chemical_symbols()[0] for i in indices]
            assert Counter(metals) == {"Ni": 2, "Mn": 2}  # batch 4, fraction 0.5
            seen.update(train.frames[i].info["structure_id"] for i in indices)
    nio = [a.info["structure_id"] for a in read(frames[1], index=":")]
    assert all(seen[i] == 3 for i in nio)  # each new frame once per epoch
    assert sum(v for k, v in seen.items() if k not in nio) == 18


def test_without_validation_frames_the_new_training_frames_choose_the_model(frames, tmp_path):
    """Replay frames stay out of the stand-in validation set, and building it leaves the
    training set's partner groups as they were."""
    config = _config(frames[1], tmp_path / "run")
    config["data"].update(replay_paths=[str(frames[0])], replay_fraction=0.5)
    trainer = Trainer(config_from_dict(config), progress=False)
    train = trainer.data["train"]
    groups = [sample[keys.PARTNER_GROUP].clone() for sample in train.samples]
    validation = trainer.validation_set()
    nio = {a.info["structure_id"] for a in read(frames[1], index=":")}
    assert {a.info["structure_id"] for a in validation.frames} == nio
    assert all(a.get_chemical_symbols()[0] == "Ni" for a in validation.frames)
    for sample, group in zip(train.samples, groups, strict=True):
        assert torch.equal(sample[keys.PARTNER_GROUP], group)
    config["data"].update(validation_fraction=0.5)
    split = Trainer(config_from_dict(config), progress=False)
    assert split.validation_set() is split.data["validation"] and len(split.data["validation"])


def test_replay_share_that_rounds_to_nothing_is_refused(frames, tmp_path):
    config = _config(frames[1], tmp_path / "run")
    config["data"].update(replay_paths=[str(frames[0])], replay_fraction=0.1)
    with pytest.raises(ValueError, match="replay_fraction 0.1 of optim.batch_size 4 gives 0"):
        Trainer(config_from_dict(config), progress=False)


def test_cli_init_from_a_missing_file_is_one_line(frames, tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(f"data:\n  path: {frames[1]}\noutput_dir: {tmp_path / 'run'}\n")
    assert main(["train", str(config), "--init-from", str(tmp_path / "nope.pt")]) == 2
    err = capsys.readouterr().err.strip()
    missing = tmp_path / "nope.pt"
    assert err == (
        "spinmultinet train: error: no model file or checkpoint to start from at "
        f"{missing} (init_from)"
    )
    assert not (tmp_path / "run").exists()
    (tmp_path / "junk.pt").write_text("not a model")
    assert main(["train", str(config), "--init-from", str(tmp_path / "junk.pt")]) == 2
    assert "neither a SpinMultiNet model file nor a training checkpoint" in capsys.readouterr().err


def _replace_by_another_shape(source: Path) -> None:
    wider = {**TINY_CONFIG, "channels": 8}
    save_checkpoint(random_model(1, species=("O", "Mn", "Ni"), **wider), source)


@pytest.mark.parametrize("change", [_replace_by_another_shape, Path.unlink])
def test_a_resume_takes_its_model_from_the_checkpoint_not_init_from(
    frames, tmp_path, capsys, change
):
    """init_from only starts a run: replaced or deleted after the first epoch, the resumed run
    still ends where the uninterrupted one did."""
    import yaml

    source = tmp_path / "source.ckpt"
    save_checkpoint(random_model(0, species=("O", "Ni"), **TINY_CONFIG), source)
    finals = []
    for name, stops in (("uninterrupted", []), ("resumed", ["--max-epochs", "1"])):
        config = _config(frames[1], tmp_path / name, init_from=str(source))
        config["model"]["species"] = ["O", "Ni", "Fe"]
        config["optim"]["max_epochs"] = 2
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(config))
        assert main(["train", str(tmp_path / f"{name}.yaml"), "--quiet", *stops]) == 0
    change(source)
    assert main(["train", str(tmp_path / "resumed.yaml"), "--quiet", "--resume"]) == 0
    assert capsys.readouterr().err == ""
    for name in ("uninterrupted", "resumed"):
        finals.append(load_checkpoint(tmp_path / name / "last.ckpt"))
    assert finals[0]["epoch"] == finals[1]["epoch"] == 2
    assert finals[0]["scales"] == finals[1]["scales"]
    for key, value in finals[0]["raw_model_state"].items():
        assert torch.equal(value, finals[1]["raw_model_state"][key]), key


def test_a_resume_that_would_start_fine_tuning_is_refused(frames, tmp_path, capsys):
    import yaml

    source = tmp_path / "source.ckpt"
    save_checkpoint(random_model(0, species=("O", "Ni"), **TINY_CONFIG), source)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_config(frames[1], tmp_path / "run")))
    assert main(["train", str(config), "--quiet"]) == 0
    resume = ["train", str(config), "--quiet", "--resume", "--init-from", str(source)]
    assert main([*resume, "--max-epochs", "2"]) == 2
    assert capsys.readouterr().err == (
        f"spinmultinet train: error: {tmp_path / 'run'}/last.ckpt was written with another "
        "config (init_from differ); resume with the same settings or choose a new output_dir\n"
    )


def test_fine_tuning_keeps_the_spin_mode(frames, tmp_path):
    config = _config(frames[1], tmp_path / "run", init_from=str(SHIPPED))
    config["model"]["spin_mode"] = "noncollinear"
    with pytest.raises(ValueError, match="is a collinear model; set model.spin_mode: collinear"):
        Trainer(config_from_dict(config), progress=False)


def _source_with_split(path: Path, **split) -> Path:
    """A tiny checkpoint of O, Mn, Ni recording a training config with these split rules."""
    model = random_model(seed=3, **{**TINY_CONFIG, "species": ("O", "Mn", "Ni")})
    recorded = config_from_dict(_config(REFERENCE, path.parent, model=TINY_CONFIG)).to_dict()
    recorded["data"].update(split)
    save_checkpoint(model, path, train_config=recorded)
    return path


def test_replay_keeps_the_source_test_frames_out(frames, tmp_path):
    """Replay frames are split by the source's recorded rules, not the fine-tuning config's
    (which here holds nothing out): the source's validation and test frames never train."""
    split = {"split_seed": 1, "validation_fraction": 0.3, "test_fraction": 0.3}
    source = _source_with_split(tmp_path / "source.ckpt", **split)
    config = _config(frames[1], tmp_path / "run", init_from=str(source))
    config["data"].update(replay_paths=[str(frames[0])], replay_fraction=0.5)
    trainer = Trainer(config_from_dict(config), progress=False)
    rules = DataConfig(path=str(frames[0]), **split)
    mno = read(frames[0], index=":")
    kept = {a.info["structure_id"] for a in mno if split_of(a, rules) == "train"}
    assert 0 < len(kept) < len(mno)
    replayed = trainer.data["train"].frames[len(read(frames[1], index=":")) :]
    assert {a.info["structure_id"] for a in replayed} == kept


def test_evaluation_splits_a_replayed_file_as_its_training_did(frames, tmp_path):
    """On a file it replayed, a fine-tuned model's test frames are the source's (which it never
    trained on), not those its own rules would pick; on its own data its own rules hold."""
    split = {"split_seed": 1, "validation_fraction": 0.3, "test_fraction": 0.3}
    source = _source_with_split(tmp_path / "source.ckpt", **split)
    config = _config(frames[1], tmp_path / "run", init_from=str(source))
    config["data"].update(replay_paths=[str(frames[0])], replay_fraction=0.5)
    own = {"split_seed": 7, "validation_fraction": 0.2, "test_fraction": 0.4}
    config["data"].update(own)
    Trainer(config_from_dict(config), progress=False).run()
    metadata = load_model(tmp_path / "run" / "model.pt").metadata
    source_rules = DataConfig(path=str(frames[0]), **split)
    own_rules = DataConfig(path=str(frames[0]), **own)
    mno = read(frames[0], index=":")
    on_replay = data_config_of(metadata, frames[0])
    assert [split_of(a, on_replay) for a in mno] == [split_of(a, source_rules) for a in mno]
    assert [split_of(a, own_rules) for a in mno] != [split_of(a, source_rules) for a in mno]
    nio = read(frames[1], index=":")
    on_own = data_config_of(metadata, frames[1])
    assert [split_of(a, on_own) for a in nio] == [split_of(a, own_rules) for a in nio]
    for unrecorded in (None, split):  # none, or one set of rules for all files: refused
        metadata["replay_split_rules"] = unrecorded
        with pytest.raises(ValueError, match="did not record how it split each file"):
            data_config_of(metadata, frames[1])


def test_fine_tuning_a_fine_tuned_model_replays_by_the_first_source_rules(frames, tmp_path):
    """A model fine-tuned with replay, fine-tuned again with the same replay file (as active
    learning does round after round), keeps the first source's held-out frames out, not those
    its own config would hold out; a source that cannot say how it split them is refused."""
    split = {"split_seed": 1, "validation_fraction": 0.3, "test_fraction": 0.3}
    source = _source_with_split(tmp_path / "source.ckpt", **split)
    first = _config(frames[1], tmp_path / "first", init_from=str(source))
    first["data"].update(replay_paths=[str(frames[0])], replay_fraction=0.5)
    Trainer(config_from_dict(first), progress=False).run()
    for middle in ("model.pt", "last.ckpt"):
        second = _config(frames[1], tmp_path / f"second-{middle}")
        second.update(init_from=str(tmp_path / "first" / middle))
        second["data"].update(replay_paths=[str(frames[0])], replay_fraction=0.5)
        trainer = Trainer(config_from_dict(second), progress=False)
        kept = {
            a.info["structure_id"]
            for a in read(frames[0], index=":")
            if split_of(a, DataConfig(path=str(frames[0]), **split)) == "train"
        }
        replayed = trainer.data["train"].frames[len(read(frames[1], index=":")) :]
        assert {a.info["structure_id"] for a in replayed} == kept, middle
    rules = DataConfig(path=str(frames[1]), replay_paths=(str(frames[0]),), replay_fraction=0.5)
    for recorded in (None, split):  # none, or one set of rules for all files: refused
        unrecorded = dataclasses.replace(
            load_source(tmp_path / "first" / "model.pt"), replay_rules=recorded
        )
        with pytest.raises(ValueError, match="did not record how it split each file"):
            replay_split_rules(rules, unrecorded)


def _held_out(path: Path, **split) -> list[str]:
    """The ids of the frames of ``path`` outside the training split by these rules."""
    rules = DataConfig(path=str(path), **split)
    return [a.info["structure_id"] for a in read(path, index=":") if split_of(a, rules) != "train"]


def _replayed_ids(trainer: Trainer, new: Path) -> set[str]:
    return {a.info["structure_id"] for a in trainer.data["train"].frames[len(read(new, ":")) :]}


def test_replay_records_match_by_content_from_any_working_directory(frames, tmp_path, monkeypatch):
    """Trained with a relative replay path in one folder, a model still finds that file's
    rules from another folder, given by an absolute or another relative path, both when
    fine-tuned again and when evaluated."""
    split = {"split_seed": 1, "validation_fraction": 0.3, "test_fraction": 0.3}
    own = {"split_seed": 7, "validation_fraction": 0.2, "test_fraction": 0.4}
    source = _source_with_split(tmp_path / "source.ckpt", **split)
    (tmp_path / "first").mkdir()
    shutil.copy(frames[0], tmp_path / "first" / "old.extxyz")
    monkeypatch.chdir(tmp_path / "first")
    first = _config(frames[1], tmp_path / "first" / "run", init_from=str(source))
    first["data"].update(own, replay_paths=["old.extxyz"], replay_fraction=0.5)
    Trainer(config_from_dict(first), progress=False).run()
    model = tmp_path / "first" / "run" / "model.pt"
    assert load_model(model).metadata["replay_split_rules"][0]["path"] == "old.extxyz"
    held = _held_out(frames[0], **split)
    assert held != _held_out(frames[0], **own)
    monkeypatch.chdir(tmp_path)
    for given in (str(tmp_path / "first" / "old.extxyz"), "first/old.extxyz"):
        on_old = data_config_of(load_model(model).metadata, given)
        assert _held_out(frames[0], **split_rules(dataclasses.asdict(on_old))) == held, given
        second = _config(frames[1], tmp_path / "second", init_from=str(model))
        second["data"].update(replay_paths=[given], replay_fraction=0.5)
        trainer = Trainer(config_from_dict(second), progress=False, overwrite=True)
        every = {a.info["structure_id"] for a in read(frames[0], index=":")}
        assert _replayed_ids(trainer, frames[1]) == every - set(held), given


def test_each_replay_file_is_split_by_its_own_rules(frames, tmp_path):
    """Fine-tuned again with two replay files, one the source replayed (split by the rules it
    recorded for it) and one the source's own training file (split by its data rules), each
    file keeps its own held-out frames out, in training and in evaluation."""
    split = {"split_seed": 1, "validation_fraction": 0.3, "test_fraction": 0.3}
    own = {"split_seed": 7, "validation_fraction": 0.2, "test_fraction": 0.4}
    source = _source_with_split(tmp_path / "source.ckpt", **split)
    first = _config(frames[1], tmp_path / "first", init_from=str(source))
    first["data"].update(own, replay_paths=[str(frames[0])], replay_fraction=0.5)
    Trainer(config_from_dict(first), progress=False).run()
    mno = [a for a in read(REFERENCE, index=":") if a.get_chemical_symbols()[0] == "Mn"]
    write(tmp_path / "new.extxyz", mno[22:26])
    second = _config(tmp_path / "new.extxyz", tmp_path / "second")
    second.update(init_from=str(tmp_path / "first" / "model.pt"))
    second["data"].update(replay_paths=[str(p) for p in frames], replay_fraction=0.5)
    trainer = Trainer(config_from_dict(second), progress=False)
    kept = set()
    for path, rules, other in ((frames[0], split, own), (frames[1], own, split)):
        assert _held_out(path, **rules) != _held_out(path, **other)  # the rules matter here
        kept |= {a.info["structure_id"] for a in read(path, ":")} - set(_held_out(path, **rules))
    assert _replayed_ids(trainer, tmp_path / "new.extxyz") == kept
    records = trainer.replay_records
    assert [r["path"] for r in records] == [str(p) for p in frames]
    assert [r["rules"] for r in records] == [
        split_rules(dataclasses.asdict(DataConfig(**rules))) for rules in (split, own)
    ]
    trainer.run()
    metadata = load_model(tmp_path / "second" / "model.pt").metadata
    assert metadata["replay_split_rules"] == records
    for path, rules in zip(frames, (split, own), strict=True):
        evaluated = split_rules(dataclasses.asdict(data_config_of(metadata, path)))
        assert _held_out(path, **evaluated) == _held_out(path, **rules)


def test_a_replayed_file_changed_since_is_refused_in_one_line(frames, tmp_path):
    split = {"split_seed": 1, "validation_fraction": 0.3, "test_fraction": 0.3}
    source = _source_with_split(tmp_path / "source.ckpt", **split)
    replayed = tmp_path / "old" / frames[0].name
    replayed.parent.mkdir()
    shutil.copy(frames[0], replayed)
    first = _config(frames[1], tmp_path / "first", init_from=str(source))
    first["data"].update(replay_paths=[str(replayed)], replay_fraction=0.5)
    Trainer(config_from_dict(first), progress=False).run()
    write(replayed, read(frames[0], index=":")[:-1])  # a frame dropped
    shutil.copy(replayed, tmp_path / frames[0].name)  # the same name elsewhere
    model = tmp_path / "first" / "model.pt"
    for given in (replayed, tmp_path / frames[0].name):
        with pytest.raises(ValueError) as error:
            data_config_of(load_model(model).metadata, given)
        message = str(error.value)
        assert "\n" not in message and "content differs" in message and str(given) in message
        second = _config(frames[1], tmp_path / "second", init_from=str(model))
        second["data"].update(replay_paths=[str(given)], replay_fraction=0.5)
        with pytest.raises(ValueError) as error:
            Trainer(config_from_dict(second), progress=False, overwrite=True)
        assert "\n" not in str(error.value) and "content differs" in str(error.value)


def test_replay_from_a_source_without_recorded_split_is_refused(frames, tmp_path):
    bare = random_model(**{**TINY_CONFIG, "species": ("O", "Mn", "Ni")})
    save_checkpoint(bare, tmp_path / "bare.ckpt")
    config = _config(frames[1], tmp_path / "run", init_from=str(tmp_path / "bare.ckpt"))
    config["data"].update(replay_paths=[str(frames[0])], replay_fraction=0.5)
    with pytest.raises(ValueError) as error:
        Trainer(config_from_dict(config), progress=False)
    assert "\n" not in str(error.value) and "bare.ckpt" in str(error.value)


def test_replay_and_new_frames_sharing_an_id_stay_in_separate_groups(frames, tmp_path):
    """Structure ids are per file: a replay frame is never the ordering partner of a new one."""
    renamed = []
    for path in frames:
        atoms = read(path, index=":")
        for number, a in enumerate(atoms):
            a.info.pop("partner_of", None)
            a.info["structure_id"] = f"s{number}"
        renamed.append(tmp_path / path.name)
        write(renamed[-1], atoms)
    config = _config(renamed[1], tmp_path / "run")
    config["data"].update(replay_paths=[str(renamed[0])], replay_fraction=0.5)
    trainer = Trainer(config_from_dict(config), progress=False)
    train = trainer.data["train"]
    assert len(train.groups) == 12 and len(trainer.replay_groups) == 6
    for group in train.groups:
        assert len({train.frames[i].get_chemical_symbols()[0] for i in group}) == 1


# ---- scripts/finetune_vs_scratch.py ---------------------------------------------------------

CORUNDUM = ROOT / "data" / "reference_Cr2O3_Fe2O3.extxyz"
SOURCE_SPLIT = {"split_seed": 1, "validation_fraction": 0.3, "test_fraction": 0.3}


def _script():
    spec = importlib.util.spec_from_file_location(
        "finetune_vs_scratch", ROOT / "scripts" / "finetune_vs_scratch.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def study(frames, tmp_path_factory):
    """Both arms at 2 and 4 frames of Cr2O3 (its yardstick cells held out), fine-tuned from a
    tiny O/Mn/Ni source that held out 30% of the MnO/NiO frames; 2 epochs each."""
    root = tmp_path_factory.mktemp("study")
    cr2o3 = [a for a in read(CORUNDUM, index=":") if a.info["material"] == "Cr2O3"]
    new = [a for a in cr2o3 if a.info.get("yardstick")] + [
        a for a in cr2o3 if not a.info.get("yardstick")
    ][:5]
    write(root / "new.extxyz", new)
    config = _config(REFERENCE, root / "unused")
    config["data"]["test_yardsticks"] = True
    config["optim"]["max_epochs"] = 2
    config["model"]["species"] = ["O", "Mn", "Ni"]
    arguments = dict(
        base=config_from_dict(config),
        new_data=str(root / "new.extxyz"),
        source=str(_source_with_split(root / "source.ckpt", **SOURCE_SPLIT)),
        replay=[str(path) for path in frames],
        frames=[2, 4],
        replay_fraction=0.5,
        output=root / "out",
    )
    table = _script().compare(**arguments)
    return arguments, table


def _copy(arguments: dict, folder: Path) -> dict:
    """The study's arguments with its output copied to ``folder``."""
    shutil.copytree(arguments["output"], folder)
    return {**arguments, "output": folder}


def _calculator_errors(model: Path, frames: list) -> dict[str, float]:
    """Energy MAE (meV/atom) and force MAE (meV/Å) of a model file, through the calculator."""
    calc = SpinMultiNetCalculator(str(model))
    energy, forces = [], []
    for atoms in frames:
        reference = atoms.get_potential_energy(), atoms.get_forces()
        copy = atoms.copy()
        copy.calc = calc
        energy.append(abs(copy.get_potential_energy() - reference[0]) / len(atoms))
        forces.append(np.abs(copy.get_forces() - reference[1]).ravel())
    return {
        "energy_mae": 1000 * np.mean(energy),
        "forces_mae": 1000 * np.concatenate(forces).mean(),
    }


@pytest.mark.filterwarnings("ignore:two .* atoms are .* apart:UserWarning")  # 2-epoch models
def test_the_study_judges_both_arms_on_the_test_frames_by_the_right_rules(study, frames):
    """New data by the base rules (its yardstick cells), old data by the source's recorded
    rules (30% held out; the base rules hold none out); both arms know Cr."""
    arguments, table = study
    expected = {
        "Cr2O3": [a for a in read(arguments["new_data"], index=":") if a.info.get("yardstick")],
    }
    rules = DataConfig(**SOURCE_SPLIT)
    for path in frames:
        old = [a for a in read(path, index=":") if split_of(a, rules) == "test"]
        expected[old[0].info["material"]] = old
    assert all(len(held) > 0 for held in expected.values()) and len(expected) == 3
    assert [row["frames"] for row in table["rows"]] == [2, 4]
    output = arguments["output"]
    for row in table["rows"]:
        for arm in ("scratch", "finetuned"):
            model = output / f"{arm}-{row['frames']}" / "model.pt"
            assert load_model(model).species == ("O", "Mn", "Ni", "Cr")
            assert sorted(row[arm]) == sorted(expected)
            for material, held in expected.items():
                reported = row[arm][material]
                assert reported["frames"] == len(held)
                oracle = _calculator_errors(model, held)
                for key, value in oracle.items():
                    assert reported[key] == pytest.approx(value, rel=1e-6), (arm, material, key)
    assert json.loads((output / "table.json").read_text())["rows"] == table["rows"]
    assert len(read(output / "frames-4.extxyz", index=":")) == 4


def test_a_rerun_reuses_every_run(study, tmp_path):
    arguments = _copy(study[0], tmp_path / "out")
    models = sorted(arguments["output"].glob("*/model.pt"))
    assert len(models) == 4
    before = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in models}
    assert _script().compare(**arguments) == study[1]
    assert {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in models} == before


def _changed_source(arguments: dict, folder: Path) -> dict:
    return {**arguments, "source": str(_source_with_split(folder / "other.ckpt", split_seed=1))}


def _changed_budget(arguments: dict, folder: Path) -> dict:
    optim = dataclasses.replace(arguments["base"].optim, max_epochs=3)
    return {**arguments, "base": dataclasses.replace(arguments["base"], optim=optim)}


def _changed_frames(arguments: dict, folder: Path) -> dict:
    new = read(arguments["new_data"], index=":")
    new[-4].calc.results["energy"] += 0.1  # the second training frame
    write(folder / "new.extxyz", new)
    return {**arguments, "new_data": str(folder / "new.extxyz")}


@pytest.mark.parametrize(
    ("change", "arm", "named"),
    [
        (_changed_source, "finetuned", "source_sha256"),
        (_changed_budget, "scratch", "config.optim.max_epochs"),
        (_changed_frames, "scratch", "data_sha256"),
    ],
)
def test_a_run_with_other_inputs_is_refused_in_one_line(study, tmp_path, change, arm, named):
    arguments = change(_copy(study[0], tmp_path / "out"), tmp_path)
    run = arguments["output"] / f"{arm}-2"
    files = sorted(p for p in arguments["output"].rglob("*") if p.is_file())
    before = [p.read_bytes() for p in files]
    with pytest.raises(ValueError) as error:
        _script().compare(**arguments)
    message = str(error.value)
    assert "\n" not in message
    assert f"{run} was trained with other inputs ({named} differ" in message
    assert [p.read_bytes() for p in files] == before


def test_a_killed_run_resumes_from_its_last_checkpoint(study, tmp_path, monkeypatch):
    """Killed in its second epoch (its last checkpoint: the first), a run trains one epoch
    more and ends where the uninterrupted run did."""
    arguments = _copy(study[0], tmp_path / "out")
    run = arguments["output"] / "finetuned-4"
    finished = load_model(run / "model.pt", dtype=torch.float64).module.state_dict()
    (run / "previous.ckpt").replace(run / "last.ckpt")
    for name in ("model.pt", "summary.json", "best.ckpt", "metrics.csv"):
        (run / name).unlink()
    epochs = []
    train_epoch = Trainer._train_epoch
    monkeypatch.setattr(
        Trainer, "_train_epoch", lambda self: epochs.append(self.epoch) or train_epoch(self)
    )
    assert _script().compare(**arguments) == study[1]
    assert epochs == [1]
    resumed = load_model(run / "model.pt", dtype=torch.float64).module.state_dict()
    for name, value in finished.items():
        assert torch.equal(resumed[name], value), name


def test_the_scratch_arm_ignores_a_base_config_that_fine_tunes(study, tmp_path):
    """A base config with init_from and replay (a fine-tuning config) still gives a scratch arm
    trained from random weights on the new frames alone."""
    arguments, _ = study
    base = dataclasses.replace(
        arguments["base"],
        init_from=arguments["source"],
        data=dataclasses.replace(
            arguments["base"].data, replay_paths=tuple(arguments["replay"]), replay_fraction=0.5
        ),
    )
    output = tmp_path / "out"
    _script().compare(**{**arguments, "base": base, "frames": [2], "output": output})
    scratch = json.loads((output / "scratch-2" / "summary.json").read_text())
    assert scratch["init_from"] == ""
    assert sum(scratch["num_frames"].values()) == 2  # no replayed frame
    finetuned = json.loads((output / "finetuned-2" / "summary.json").read_text())
    assert finetuned["init_from"] == arguments["source"]
    assert sum(finetuned["num_frames"].values()) > 2


def test_the_script_stops_bad_input_with_exit_code_2(tmp_path, capsys):
    argv = ["--new-data", str(tmp_path / "missing.extxyz"), "--source", str(SHIPPED)]
    argv += ["--replay", str(REFERENCE), "--config", str(ROOT / "configs" / "example.yaml")]
    argv += ["--frames", "2", "--output-dir", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as stop:
        _script().main(argv)
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "missing.extxyz" in error


@pytest.fixture(scope="module")
def seeded(study, tmp_path_factory):
    """The study's one-seed output rerun at 2 frames with seeds 0 and 1 (0 is the base config's
    seed); the seed-0 run files' modification times and bytes before and after."""
    arguments = _copy(study[0], tmp_path_factory.mktemp("seeded") / "out")
    output = arguments["output"]
    seed0 = [output / "scratch-2.inputs.json", output / "finetuned-2.inputs.json"]
    seed0 += sorted(p for arm in ("scratch", "finetuned") for p in (output / f"{arm}-2").iterdir())

    def state():
        return {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in seed0}

    before = state()
    table = _script().compare(**{**arguments, "frames": [2], "seeds": [0, 1]})
    return {**arguments, "frames": [2]}, table, before, state()


def test_more_seeds_reuse_the_one_seed_runs_and_add_their_own(seeded):
    arguments, table, before, after = seeded
    assert after == before
    output = arguments["output"]
    for arm in ("scratch", "finetuned"):
        record, other = (
            json.loads((output / f"{name}.inputs.json").read_text())
            for name in (f"{arm}-2", f"{arm}-2-seed1")
        )
        assert _script()._differences(record, other) == ["config.seed"]
        assert (record["config"]["seed"], other["config"]["seed"]) == (0, 1)
        weights = [
            load_model(output / name / "model.pt").module.state_dict()
            for name in (f"{arm}-2", f"{arm}-2-seed1")
        ]
        assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert table["rows"][0]["seeds"] == [0, 1]
    assert json.loads((output / "table.json").read_text()) == table


def test_each_seed_gives_what_a_run_with_that_seed_alone_gives(study, seeded, tmp_path):
    """Each seed's errors in the two-seed table: those of the one-seed study (seed 0), those of
    a separate invocation with seed 1 alone, and those the calculator gives with its model."""
    arguments, table, _, _ = seeded
    alone = _script().compare(**{**arguments, "seeds": [1], "output": tmp_path / "alone"})
    assert sorted(p.name for p in (tmp_path / "alone").iterdir() if p.is_dir()) == [
        "finetuned-2-seed1",
        "scratch-2-seed1",
    ]
    row = table["rows"][0]
    one_seed = {"0": study[1]["rows"][0], "1": alone["rows"][0]}
    new = [a for a in read(arguments["new_data"], index=":") if a.info.get("yardstick")]
    for arm in ("scratch", "finetuned"):
        for material, errors in row[arm].items():
            for seed, other in one_seed.items():
                expected = {k: other[arm][material][k] for k in errors["by_seed"][seed]}
                assert errors["by_seed"][seed] == expected, (arm, material, seed)
        for seed, name in (("0", f"{arm}-2"), ("1", f"{arm}-2-seed1")):
            oracle = _calculator_errors(arguments["output"] / name / "model.pt", new)
            for key, value in oracle.items():
                reported = row[arm]["Cr2O3"]["by_seed"][seed][key]
                assert reported == pytest.approx(value, rel=1e-6), (arm, seed, key)


def test_the_table_gives_mean_and_range_over_the_seeds(study, seeded):
    arguments, table, _, _ = seeded
    row = table["rows"][0]
    lines = (arguments["output"] / "table.md").read_text().splitlines()
    assert lines[0].startswith("| DFT frames | start | material | test frames | seeds |")
    for arm in ("scratch", "finetuned"):
        for material, errors in row[arm].items():
            assert sorted(errors["by_seed"]) == ["0", "1"]
            cells = [f"| 2 | {arm} | {material} | {errors['frames']} | 2"]
            for key in ("energy_mae", "forces_mae", "magmoms_mae"):
                values = [errors["by_seed"][seed][key] for seed in ("0", "1")]
                assert errors[key] == pytest.approx(np.mean(values), rel=1e-12)
                assert (errors["min"][key], errors["max"][key]) == (min(values), max(values))
                cells.append(f"{np.mean(values):.4g} ({min(values):.4g}–{max(values):.4g})")
            assert " | ".join(cells) + " |" in lines
    one_seed = (study[0]["output"] / "table.md").read_text().splitlines()
    assert one_seed[:2] == [
        "| DFT frames | start | material | test frames | energy MAE (meV/atom) "
        "| force MAE (meV/Å) | moment MAE (μB) |",
        "|---|---|---|---|---|---|---|",
    ]
    cr2o3 = study[1]["rows"][0]["scratch"]["Cr2O3"]
    assert one_seed[2].startswith(
        f"| 2 | scratch | Cr2O3 | {cr2o3['frames']} | {cr2o3['energy_mae']:.4g} |"
    )


def test_the_materials_evaluation_reports_do_not_make_a_run_another(study, tmp_path):
    """A base config naming ``data.materials`` (read by evaluation alone) reuses the runs."""
    arguments = _copy(study[0], tmp_path / "out")
    data = dataclasses.replace(arguments["base"].data, materials=("Cr2O3", "MnO", "NiO"))
    base = dataclasses.replace(arguments["base"], data=data)
    models = sorted(arguments["output"].glob("*/model.pt"))
    before = {path: path.stat().st_mtime_ns for path in models}
    assert _script().compare(**{**arguments, "base": base}) == study[1]
    assert {path: path.stat().st_mtime_ns for path in models} == before


@pytest.mark.parametrize("seeds", [["1", "1"], ["-1"]])
def test_seeds_must_be_distinct_and_not_negative(seeds, tmp_path, capsys):
    argv = ["--new-data", str(CORUNDUM), "--source", str(SHIPPED), "--replay", str(REFERENCE)]
    argv += ["--config", str(ROOT / "configs" / "example.yaml"), "--frames", "2"]
    argv += ["--seeds", *seeds, "--output-dir", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as stop:
        _script().main(argv)
    assert stop.value.code == 2
    assert "--seeds must be distinct whole numbers >= 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
