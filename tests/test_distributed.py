"""Data-parallel training: two gloo ranks under torchrun reproduce one process, also resumed.

Run as a script (by torchrun), this file trains on each rank (:func:`_train_twice`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from ase.io import read, write

from spinmultinet_ase import keys
from spinmultinet_ase.checkpoint import load_checkpoint
from spinmultinet_ase.testing.models import TINY_CONFIG, tiny_training_config
from spinmultinet_ase.train.config import config_from_dict
from spinmultinet_ase.train.distributed import (
    check_batch_size,
    init_from_env,
    shutdown,
    split_batch,
)
from spinmultinet_ase.train.trainer import Trainer

REFERENCE = Path(__file__).parents[1] / "data" / "reference.extxyz"
TINY_MODEL = {**TINY_CONFIG, "cutoff": 4.0}


def _config(data: Path, output: Path) -> dict:
    return tiny_training_config(
        data, output, model=TINY_MODEL, optim={"max_epochs": 2, "learning_rate": 0.01}
    )


def _torchrun(*arguments: str) -> None:
    """This file's ``__main__`` on two gloo ranks."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
    command += ["2", __file__, *arguments]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def _train_twice(first: str, second: str, copy: str) -> None:
    """On every rank: train with the config file ``first``, keep its last checkpoint as
    ``copy``, then resume with the config file ``second`` (in one process group)."""
    world = init_from_env()
    try:
        for path, resume in ((first, False), (second, True)):
            config = config_from_dict(yaml.safe_load(Path(path).read_text()))
            Trainer(config, resume=resume, progress=False).run()
            if world.main and not resume:
                shutil.copy(Path(config.output_dir) / "last.ckpt", copy)
    finally:
        shutdown()


def _assert_same_run(parallel: Path, serial: dict) -> None:
    state = load_checkpoint(parallel)
    assert state["epoch"] == serial["epoch"]
    for name, value in serial["raw_model_state"].items():
        torch.testing.assert_close(state["raw_model_state"][name], value, rtol=1e-9, atol=1e-12)
    for name, value in serial["ema_state"].items():
        torch.testing.assert_close(state["ema_state"][name], value, rtol=1e-9, atol=1e-12)
    for row, reference in zip(state["metrics"], serial["metrics"], strict=True):
        assert row["train_loss"] == pytest.approx(reference["train_loss"], rel=1e-9)
        assert row["val_loss"] == pytest.approx(reference["val_loss"], rel=1e-9)


def test_two_ranks_reproduce_one_process_also_after_a_resume(tmp_path):
    data = tmp_path / "data.extxyz"
    write(data, read(REFERENCE, index=":9"))  # the last batch: one frame, one rank idle
    serial_dir, parallel_dir = tmp_path / "serial", tmp_path / "parallel"
    Trainer(config_from_dict(_config(data, serial_dir)), progress=False).run()
    after_two = load_checkpoint(serial_dir / "last.ckpt")
    longer = _config(data, serial_dir)
    longer["optim"]["max_epochs"] = 4
    Trainer(config_from_dict(longer), resume=True, progress=False).run()
    after_four = load_checkpoint(serial_dir / "last.ckpt")

    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text(yaml.safe_dump(_config(data, parallel_dir)))
    longer["output_dir"] = str(parallel_dir)
    second.write_text(yaml.safe_dump(longer))
    _torchrun(str(first), str(second), str(tmp_path / "after_two.ckpt"))
    _assert_same_run(tmp_path / "after_two.ckpt", after_two)
    _assert_same_run(parallel_dir / "last.ckpt", after_four)
    assert sorted(p.name for p in parallel_dir.iterdir()) == sorted(
        ["last.ckpt", "previous.ckpt", "best.ckpt", "metrics.csv", "summary.json", "model.pt"]
    )


def _sample(atoms: int, group: int) -> dict[str, torch.Tensor]:
    return {
        keys.SPECIES: torch.zeros(atoms, dtype=torch.long),
        keys.PARTNER_GROUP: torch.tensor([group]),
    }


def test_a_batch_splits_by_atoms_keeping_ordering_partners_together():
    samples = [_sample(8, 0), _sample(8, 0), _sample(4, 1), _sample(16, 2), _sample(2, 3)]
    shares = split_batch(samples, 2)
    assert shares == [[0, 1, 2], [3, 4]]  # 8 + 8 + 4 atoms against 16 + 2
    assert split_batch(samples, 1) == [[0, 1, 2, 3, 4]]
    assert split_batch(samples[:1], 2) == [[0], []]


def test_a_global_batch_that_does_not_divide_over_the_ranks_is_refused():
    check_batch_size(8, 2)
    with pytest.raises(ValueError, match="batch_size 5 .* does not divide over 2 ranks"):
        check_batch_size(5, 2)


if __name__ == "__main__":
    _train_twice(*sys.argv[1:])
