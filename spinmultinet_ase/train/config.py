"""The training configuration: one YAML file, read into typed dataclasses with checks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spinmultinet_ase.dft.structures import HELD_OUT_CELLS, HELD_OUT_ORDERINGS
from spinmultinet_ase.model import ModelConfig

# What each target is called in the extxyz files, unless the config says otherwise.
DEFAULT_KEYS = {
    "energy": "energy",
    "forces": "forces",
    "stress": "stress",
    "magmoms": "magmoms",
    "initial_magmoms": "initial_magmoms",
}


@dataclass(frozen=True)
class DataConfig:
    """Where the data is, which extxyz fields hold the labels, and how it is split.

    Attributes:
        path: extxyz file of labelled frames (each with ``info['structure_id']``).
        keys: extxyz names of energy, forces, stress, magmoms (DFT targets) and
            initial_magmoms (the input guess).
        split_seed: seed of the deterministic split (by structure id).
        validation_fraction, test_fraction: random shares of the remaining frames.
        test_orderings, test_cells: frames with these ``ordering``/``cell_name`` are all test.
        test_yardsticks: put the undistorted yardstick cells in the test split.
        guess_rescale: in training, every guessed moment is scaled by a factor drawn from
            U(1 − r, 1 + r) each time it is seen (0: off). The DFT labels do not depend on the
            guess's size, only on the state it leads to, so this teaches the model the same.
    """

    path: str = "data/reference.extxyz"
    keys: dict[str, str] = field(default_factory=dict)
    split_seed: int = 0
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    test_orderings: tuple[str, ...] = HELD_OUT_ORDERINGS
    test_cells: tuple[str, ...] = HELD_OUT_CELLS
    test_yardsticks: bool = True
    guess_rescale: float = 0.3

    def __post_init__(self) -> None:
        if not 0.0 <= self.guess_rescale < 1.0:
            raise ValueError(f"data.guess_rescale must be in [0, 1), got {self.guess_rescale}")
        unknown = set(self.keys) - set(DEFAULT_KEYS)
        if unknown:
            raise ValueError(f"unknown data.keys {sorted(unknown)}; known: {sorted(DEFAULT_KEYS)}")
        object.__setattr__(self, "keys", {**DEFAULT_KEYS, **self.keys})


# The weighted terms of the loss, each a field of LossConfig.
LOSS_WEIGHTS = ("energy", "forces", "stress", "magmoms", "partners")


@dataclass(frozen=True)
class LossConfig:
    """Multi-task loss: weights per target (0 switches a target off) and the loss type.

    Each term is the mean of ``ℓ(prediction - target)`` over its components, divided by the
    target's variance in the training set, so the weights compare like with like. Energy is
    per atom. ``partners`` weighs the per-atom energy of ordering partners (one geometry in
    several spin orderings) relative to each other: the magnetic energy, fitted on its own.
    """

    kind: str = "mse"  # "mse" or "huber"
    huber_delta: float = 0.01
    energy: float = 1.0
    forces: float = 1.0
    stress: float = 1.0
    magmoms: float = 1.0
    partners: float = 0.0

    def __post_init__(self) -> None:
        for term in LOSS_WEIGHTS:
            if getattr(self, term) < 0:
                raise ValueError(f"loss.{term} is a weight and must be >= 0 (0 switches it off)")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW, plateau learning-rate schedule, EMA, clipping, early stopping, time budget."""

    learning_rate: float = 5e-3
    weight_decay: float = 0.0
    batch_size: int = 8
    max_epochs: int = 500
    max_minutes: float = 110.0
    grad_clip_norm: float = 10.0
    ema_decay: float = 0.99
    lr_factor: float = 0.5
    lr_patience: int = 20
    min_learning_rate: float = 1e-5
    early_stopping_patience: int = 60


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; ``output_dir`` receives checkpoints, logs, the model."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    output_dir: str = "runs/default"
    seed: int = 0
    dtype: str = "float32"
    num_threads: int = 2

    def __post_init__(self) -> None:
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.loss.kind not in ("mse", "huber"):
            raise ValueError(f"loss.kind must be 'mse' or 'huber', got {self.loss.kind!r}")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["model"] = self.model.to_dict()
        return out


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig, "optim": OptimConfig}


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown keys in {where}: {sorted(unknown)}; known: {sorted(known)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """A :class:`TrainConfig` from nested dictionaries, rejecting unknown keys."""
    values = dict(values)
    sections = {
        name: _build(cls, values.pop(name, None) or {}, name) for name, cls in _SECTIONS.items()
    }
    return _build(TrainConfig, {**values, **sections}, "the top level")


def load_config(path: str | Path) -> TrainConfig:
    """Read a training YAML file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training config at {path}")
    return config_from_dict(yaml.safe_load(path.read_text()) or {})
