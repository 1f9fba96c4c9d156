"""Training survives kills: SIGKILL `spinmultinet train` at random instants, resume, and get the
uninterrupted run's parameters and metrics exactly; damaged or missing files from a kill at
the worst instant are repaired from the last good checkpoint."""

from __future__ import annotations

import csv
import multiprocessing
import random
import shutil
import time
from pathlib import Path

import pytest
import torch
import yaml
from ase.io import read, write

from spinmultinet_ase.checkpoint import load_checkpoint
from spinmultinet_ase.cli import main
from spinmultinet_ase.outputs import is_temporary

REFERENCE = Path(__file__).parents[1] / "data" / "reference.extxyz"
EPOCHS = 6
KILLS = 4  # random kill instants, each followed by a killed resume and a full one


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny float64 run (6 frames, one layer, 6 epochs) and its uninterrupted result."""
    root = tmp_path_factory.mktemp("fault")
    write(root / "data.extxyz", read(REFERENCE, index=":6"))
    config = {
        "data": {
            "path": str(root / "data.extxyz"),
            "test_yardsticks": False,
            "validation_fraction": 0.0,
            "test_fraction": 0.0,
        },
        "model": {
            "species": ["O", "Mn", "Ni"],
            "channels": 8,
            "spin_channels": 8,
            "num_layers": 1,
            "radial_hidden": 8,
            "cutoff": 4.0,
            "lmax": 1,
        },
        "optim": {"max_epochs": EPOCHS, "batch_size": 2, "learning_rate": 0.01},
        "dtype": "float64",
        "num_threads": 1,
    }

    def make(name: str) -> list[str]:
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**config, "output_dir": str(root / name)}))
        return ["train", str(path), "--quiet"]

    start = time.perf_counter()
    assert _in_child(make("reference")) == 0
    return make, root / "reference", time.perf_counter() - start


def _train(argv: list[str]) -> None:
    raise SystemExit(main(argv))


def _in_child(argv: list[str], kill_after: float | None = None) -> int | None:
    """Run the CLI in a forked process (imports already done); SIGKILL it after ``kill_after``
    seconds if it is still running. Returns its exit code (negative: killed by that signal)."""
    process = multiprocessing.get_context("fork").Process(target=_train, args=(argv,))
    process.start()
    process.join(kill_after)
    if process.is_alive():
        process.kill()
        process.join()
    return process.exitcode


def _metrics(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as handle:
        return [
            {k: v for k, v in row.items() if k != "elapsed_s"} for row in csv.DictReader(handle)
        ]


def _assert_same_run(run: Path, reference: Path) -> None:
    final, expected = load_checkpoint(run / "last.ckpt"), load_checkpoint(reference / "last.ckpt")
    assert final["epoch"] == expected["epoch"] == EPOCHS
    for entry in ("raw_model_state", "model_state", "best_model_state"):
        for key, value in expected[entry].items():
            assert torch.equal(final[entry][key], value), (entry, key)
    assert final["best_epoch"] == expected["best_epoch"]
    assert load_checkpoint(run / "previous.ckpt")["epoch"] == EPOCHS - 1  # a good fallback
    assert _metrics(run) == _metrics(reference)
    assert len(_metrics(run)) == EPOCHS
    best = load_checkpoint(run / "best.ckpt")
    assert best["epoch"] == expected["best_epoch"]
    for key, value in expected["best_model_state"].items():
        assert torch.equal(best["model_state"][key], value), key
    assert (run / "model.pt").is_file() and (run / "summary.json").is_file()
    assert not any(is_temporary(path) for path in run.iterdir())


def test_killed_training_resumes_to_the_uninterrupted_result(tiny):
    make, reference, duration = tiny
    rng = random.Random(2026)
    for trial in range(KILLS):
        argv = make(f"killed{trial}")
        run = Path(yaml.safe_load(Path(argv[1]).read_text())["output_dir"])
        assert _in_child(argv, kill_after=rng.uniform(0.0, duration)) in (0, -9)
        if (run / "last.ckpt").exists():  # the metrics on disk never lag the checkpoint by more
            done = load_checkpoint(run / "last.ckpt")["epoch"]  # than the epoch being written
            assert len(_metrics(run)) in (done, done - 1)
        # a second kill during the resume, then a resume to the end
        assert _in_child([*argv, "--resume"], kill_after=rng.uniform(0.0, duration)) in (0, -9)
        assert _in_child([*argv, "--resume"]) == 0
        _assert_same_run(run, reference)


@pytest.fixture(scope="module")
def halfway(tiny):
    """The tiny run stopped after half its epochs (as by a budget): argv and folder."""
    make, _, _ = tiny
    argv = make("halfway")
    assert _in_child([*argv, "--max-epochs", str(EPOCHS // 2)]) == 0
    return argv, Path(yaml.safe_load(Path(argv[1]).read_text())["output_dir"])


def _copy(halfway, name: str) -> tuple[list[str], Path]:
    """A copy of the halfway run under another name, with a config pointing to it."""
    argv, run = halfway
    copy = run.with_name(name)
    shutil.copytree(run, copy)
    config = yaml.safe_load(Path(argv[1]).read_text())
    path = Path(argv[1]).with_name(f"{name}.yaml")
    path.write_text(yaml.safe_dump({**config, "output_dir": str(copy)}))
    return ["train", str(path), "--quiet"], copy


def test_a_lost_metrics_row_is_rewritten_from_the_checkpoint(tiny, halfway):
    """The kill that used to lose a row: after last.ckpt was written, before metrics.csv."""
    argv, run = _copy(halfway, "lost_row")
    rows = (run / "metrics.csv").read_text().splitlines()
    (run / "metrics.csv").write_text("\n".join(rows[:-1]) + "\n")
    (run / "best.ckpt").unlink()  # not yet written either
    assert main([*argv, "--resume"]) == 0
    _assert_same_run(run, tiny[1])


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing"])
def test_an_unreadable_last_checkpoint_falls_back_to_the_previous_one(
    tiny, halfway, damage, capsys
):
    argv, run = _copy(halfway, f"damaged_{damage}")
    last = run / "last.ckpt"
    if damage == "truncated":
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    elif damage == "garbage":
        last.write_bytes(b"not a checkpoint")
    else:  # killed between keeping the old last.ckpt as previous.ckpt and renaming the new one
        shutil.copy(last, run / ".last-0badf00d.tmp.ckpt")
        last.unlink()
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    previous = f"previous.ckpt (epoch {EPOCHS // 2 - 1}) instead"
    assert (
        len(err) == 1 and err[0].startswith("spinmultinet train: warning: ") and previous in err[0]
    )
    _assert_same_run(run, tiny[1])


def test_both_checkpoints_unreadable_is_one_clear_error(halfway, capsys):
    argv, run = _copy(halfway, "both_damaged")
    for name in ("last.ckpt", "previous.ckpt"):
        (run / name).write_bytes(b"\x80\x02garbage")
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "and so is the previous checkpoint" in err[0], err
    assert main(["export", str(run / "last.ckpt"), str(run / "out.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "last.ckpt is not a readable checkpoint" in err[0], err
    assert not (run / "out.pt").exists()
