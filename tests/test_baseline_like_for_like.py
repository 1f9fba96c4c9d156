"""The baseline model on a new model's test frames: which frames (the new split, the
baseline's elements only), its errors there against a calculator's, and verdicts taken on
those like-for-like values."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.io import read, write

from spinmultinet_ase.calculator import SpinMultiNetCalculator
from spinmultinet_ase.cli import main
from spinmultinet_ase.export import load_model
from spinmultinet_ase.reference.baseline import (
    NOT_WORSE,
    RELATIVE_SLACK,
    TEST_FLOORS,
    WORSE,
    compare_with_baseline,
)
from spinmultinet_ase.testing.models import tiny_training_config
from spinmultinet_ase.train.config import config_from_dict
from spinmultinet_ase.train.dataset import split_of
from spinmultinet_ase.train.trainer import Trainer

ROOT = Path(__file__).parents[1]
REFERENCE = ROOT / "data" / "reference.extxyz"
CORUNDUM = ROOT / "data" / "reference_Cr2O3_Fe2O3.extxyz"
HEISENBERG = ROOT / "scripts" / "unseen_orderings_heisenberg.py"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _train(data: Path, output: Path, species: list[str], seed: int) -> dict:
    """A one-epoch tiny model of ``species``, its test split a third of the frames drawn with
    ``seed`` and the yardstick cells; returns its config (as a dict)."""
    values = tiny_training_config(
        data,
        output,
        data_options={"test_yardsticks": True, "test_fraction": 0.3, "split_seed": seed},
    )
    values["model"]["species"] = species
    Trainer(config_from_dict(values), progress=False).run()
    return values


def _evaluate(run: Path, data: Path, *options: str) -> None:
    command = ["evaluate", str(run / "model.pt"), str(data), *options]
    assert main([*command, "--output-dir", str(run / "evaluation")]) == 0
    stand_in = run / "evaluation" / "unseen_orderings_heisenberg.json"
    subprocess.run(
        [sys.executable, str(HEISENBERG), str(run / "model.pt"), "--materials", "MnO"]
        + ["--output", str(stand_in)],
        check=True,
        env=ENV,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A baseline of O and Mn trained on MnO, its card; a new model of O, Cr, Mn, Fe trained
    on MnO and corundum with another split; the baseline evaluated on the new model's split."""
    folder = tmp_path_factory.mktemp("like_for_like")
    mno, corundum = folder / "mno.extxyz", folder / "all.extxyz"
    write(mno, read(REFERENCE, index=":24"))
    write(corundum, read(REFERENCE, index=":24") + read(CORUNDUM, index=":8"))
    baseline, new = folder / "baseline", folder / "new"
    _train(mno, baseline, ["O", "Mn"], seed=1)
    new_config = _train(corundum, new, ["O", "Cr", "Mn", "Fe"], seed=7)
    _evaluate(baseline, mno)
    assert main(["model-card", str(baseline), str(folder / "baseline_card")]) == 0
    _evaluate(new, corundum)
    here = folder / "baseline_here"
    here.mkdir()
    (here / "model.pt").write_bytes((baseline / "model.pt").read_bytes())
    _evaluate(here, corundum, "--split-of", str(new / "model.pt"), "--known-species-only")
    card = folder / "card"
    command = ["model-card", str(new), str(card), "--compare-to"]
    command += [str(folder / "baseline_card" / "metrics.json"), "--baseline-run", str(here)]
    assert main(command) == 0
    return {
        "folder": folder,
        "data": corundum,
        "new_config": config_from_dict(new_config),
        "here": here,
        "card": (card / "card.md").read_text(),
        "comparison": json.loads((card / "metrics.json").read_text())["comparison"],
    }


def _test_frames(runs, material: str, ideal: bool) -> list:
    """The new model's test frames of one row, picked by its config's split rules."""
    return [
        atoms
        for atoms in read(runs["data"], index=":")
        if atoms.info["material"] == material
        and bool(atoms.info.get("yardstick")) == ideal
        and split_of(atoms, runs["new_config"].data) == "test"
    ]


def _mae(model: Path, frames: list) -> tuple[float, float]:
    """Energy (meV/atom) and force-component (meV/Å) MAE of ``model`` on ``frames``."""
    calc = SpinMultiNetCalculator(load_model(model))
    energy, forces = [], []
    for atoms in frames:
        work = atoms.copy()
        work.set_initial_magnetic_moments(atoms.arrays["initial_magmoms"])
        work.calc = calc
        energy.append(abs(work.get_potential_energy() - atoms.get_potential_energy()) / len(work))
        forces.append(np.abs(work.get_forces() - atoms.get_forces()).ravel())
    return 1000 * float(np.mean(energy)), 1000 * float(np.mean(np.concatenate(forces)))


def _rows(comparison: dict) -> dict[tuple[str, str], dict]:
    return {(row["subject"], row["quantity"]): row for row in comparison["rows"]}


@pytest.mark.parametrize("ideal", [False, True])
def test_the_like_for_like_rows_are_the_baseline_model_on_the_new_test_frames(runs, ideal):
    frames = _test_frames(runs, "MnO", ideal)
    assert frames
    energy, forces = _mae(runs["here"] / "model.pt", frames)
    rows = _rows(runs["comparison"])
    subject = "MnO ideal cells" if ideal else "MnO"
    assert rows[subject, "energy MAE"]["baseline_here"] == pytest.approx(energy, rel=1e-6)
    assert rows[subject, "forces MAE"]["baseline_here"] == pytest.approx(forces, abs=1e-6)
    assert runs["comparison"]["like_for_like"]["test_frames"][subject] == len(frames)


def test_only_the_baselines_materials_are_compared_and_the_others_reported(runs, capsys):
    comparison = runs["comparison"]
    counts = {"Cr2O3": 0, "Fe2O3": 0}
    for atoms in read(runs["data"], index=":"):
        if atoms.info["material"] in counts:
            counts[atoms.info["material"]] += 1
    assert comparison["like_for_like"]["left_out"] == counts
    compared = {row["subject"].split()[0] for row in comparison["rows"] if row["baseline_here"]}
    assert compared == {"MnO"}
    tested = sum(comparison["like_for_like"]["test_frames"].values())
    assert len(_test_frames(runs, "MnO", False) + _test_frames(runs, "MnO", True)) == tested
    assert (
        f"MnO {tested} test frames; Cr2O3 and Fe2O3: not in the baseline (an element it lacks)."
        in runs["card"]
    )
    assert "| baseline's card | baseline on these frames | this model |" in runs["card"]
    stand_in = [r for r in comparison["rows"] if "stand-in" in r["section"]]
    assert stand_in and all(r["baseline_here"] is not None for r in stand_in)
    without = runs["folder"] / "without"
    command = ["evaluate", str(runs["here"] / "model.pt"), str(runs["data"]), "--split-of"]
    command += [str(runs["folder"] / "new" / "model.pt"), "--output-dir", str(without)]
    assert main(command) == 2  # without --known-species-only: an element it lacks is an error
    assert "not in this model, which knows only O, Mn" in capsys.readouterr().err


def test_the_stand_in_rows_say_what_they_are_compared_with(runs):
    """The card's rows of the Heisenberg stand-in name it in readable words, never DFT, and
    no row is labelled with a raw metrics key."""
    section = runs["card"].split("\n## Against the baseline model\n")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| MnO ")]
    stand_in = [line for line in rows if "Heisenberg" in line]
    against = "against the two-shell Heisenberg stand-in"
    assert {line.split(" | ")[1] for line in stand_in} == {
        f"ordering-energy MAE {against} (meV/f.u.)",
        f"largest ordering-energy error {against} (meV/f.u.)",
        "pairs in the other order than the two-shell Heisenberg stand-in (more than 1 meV/f.u. "
        "apart there)",
        "same lowest ordering as the two-shell Heisenberg stand-in",
    }
    assert rows and not any("_meV" in line or "_pairs" in line for line in rows)
    assert not any("DFT" in line for line in stand_in)


def test_the_verdict_is_taken_on_the_same_frames(runs):
    """The new model made worse on the shared frames, by hand, just past the tolerance of the
    like-for-like value: worse, though still within that of the baseline card's value."""
    folder = runs["folder"]
    card = json.loads((folder / "baseline_card" / "metrics.json").read_text())
    new = json.loads((folder / "card" / "metrics.json").read_text())
    here = json.loads((runs["here"] / "evaluation" / "evaluation.json").read_text())
    here_metrics = {
        "test_errors": {
            group: {"frames": values["frames"], "energy": values["energy_mae"]}
            for group, values in here["errors"]["test"].items()
        },
        "yardsticks": here["yardsticks"],
        "left_out": here["left_out"]["frames"],
    }
    card["test_errors"]["MnO"]["energy"] = 1e3  # the card's value: any change is within it
    limit = here_metrics["test_errors"]["MnO"]["energy"] * (1 + RELATIVE_SLACK)
    limit += TEST_FLOORS["energy"]
    verdicts = {}
    for value in (limit * (1 - 1e-9), limit * (1 + 1e-6)):
        changed = copy.deepcopy(new)
        changed["test_errors"]["MnO"]["energy"] = value
        row = _rows(compare_with_baseline(card, changed, here_metrics))["MnO", "energy MAE"]
        assert row["verdict_card"] == NOT_WORSE
        verdicts[value] = row["verdict"]
    assert list(verdicts.values()) == [NOT_WORSE, WORSE]


def test_a_baseline_evaluated_on_another_split_is_refused(runs, tmp_path, capsys):
    own = tmp_path / "own"
    own.mkdir()
    (own / "model.pt").write_bytes((runs["here"] / "model.pt").read_bytes())
    mno = runs["folder"] / "mno.extxyz"
    command = ["evaluate", str(own / "model.pt"), str(mno), "--output-dir"]
    assert main([*command, str(own / "evaluation")]) == 0
    new, metrics = runs["folder"] / "new", runs["folder"] / "baseline_card" / "metrics.json"
    base = ["model-card", str(new), str(tmp_path / "card"), "--compare-to", str(metrics)]
    assert main([*base[:3], "--baseline-run", str(own)]) == 2
    assert "--baseline-run needs --compare-to" in capsys.readouterr().err
    assert main([*base, "--baseline-run", str(own)]) == 2
    assert "is the baseline model on its own split" in capsys.readouterr().err
    other = tmp_path / "other"
    command = ["evaluate", str(own / "model.pt"), str(mno), "--split-of", str(new / "model.pt")]
    assert main([*command, "--output-dir", str(other / "evaluation")]) == 0
    assert main([*base, "--baseline-run", str(other)]) == 2  # MnO only: not the new frames
    assert "is not on this model's test frames" in capsys.readouterr().err
    assert not (tmp_path / "card").exists()


def test_a_baseline_on_as_many_but_other_test_frames_is_refused(runs, tmp_path, capsys):
    """The baseline evaluated on the data with its MnO frames renamed, so that the new model's
    split rules send as many of them to the test split, but others: refused, not compared."""
    config = runs["new_config"].data
    frames = read(runs["data"], index=":")
    ordinary = [
        index
        for index, atoms in enumerate(frames)
        if atoms.info["material"] == "MnO" and not atoms.info.get("yardstick")
    ]

    def tested(suffix: str) -> set[int]:
        renamed = [frames[i].copy() for i in ordinary]
        for atoms in renamed:
            atoms.info["structure_id"] += suffix
        return {
            i
            for i, atoms in zip(ordinary, renamed, strict=True)
            if split_of(atoms, config) == "test"
        }

    original = tested("")
    suffix = next(
        s
        for s in (f"-{k}" for k in range(1000))
        if len(tested(s)) == len(original) != 0 and tested(s) != original
    )
    for index in ordinary:
        frames[index].info["structure_id"] += suffix
    data = tmp_path / "renamed.extxyz"
    write(data, frames)
    other = tmp_path / "other"
    (other / "evaluation").mkdir(parents=True)
    command = ["evaluate", str(runs["here"] / "model.pt"), str(data), "--split-of"]
    command += [str(runs["folder"] / "new" / "model.pt"), "--known-species-only"]
    assert main([*command, "--output-dir", str(other / "evaluation")]) == 0
    capsys.readouterr()
    metrics = runs["folder"] / "baseline_card" / "metrics.json"
    card = tmp_path / "card"
    command = ["model-card", str(runs["folder"] / "new"), str(card), "--compare-to"]
    assert main([*command, str(metrics), "--baseline-run", str(other)]) == 2
    message = capsys.readouterr().err
    assert f"MnO: {len(original)} frames in both, but other frames" in message
    assert not card.exists()
