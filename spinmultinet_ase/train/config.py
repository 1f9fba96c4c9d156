"""The training configuration: one YAML file, read into typed dataclasses with checks."""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spinmultinet_ase.model import ModelConfig
from spinmultinet_ase.spin import SPIN_MODES

# What each target is called in the extxyz files, unless the config says otherwise.
DEFAULT_KEYS = {
    "energy": "energy",
    "forces": "forces",
    "stress": "stress",
    "magmoms": "magmoms",
    "initial_magmoms": "initial_magmoms",
}

# The weighted terms of the loss, each a field of LossConfig.
LOSS_WEIGHTS = ("energy", "forces", "stress", "magmoms", "partners")

# Allowed ranges: (section, key) -> (test, what the value must be).
_RANGES: dict[tuple[str, str], tuple[Callable[[Any], bool], str]] = {
    ("data", "validation_fraction"): (lambda v: 0 <= v < 1, "in [0, 1)"),
    ("data", "test_fraction"): (lambda v: 0 <= v < 1, "in [0, 1)"),
    ("data", "replay_fraction"): (lambda v: 0 <= v < 1, "in [0, 1)"),
    ("data", "guess_rescale"): (lambda v: 0 <= v < 1, "in [0, 1) (0 switches it off)"),
    ("model", "cutoff"): (lambda v: v > 0, "> 0 (Å)"),
    ("model", "num_radial_basis"): (lambda v: v >= 1, ">= 1"),
    ("model", "cutoff_polynomial_p"): (lambda v: v >= 1, ">= 1"),
    ("model", "channels"): (lambda v: v >= 1, ">= 1"),
    ("model", "spin_channels"): (lambda v: v >= 1, ">= 1"),
    ("model", "lmax"): (lambda v: v >= 0, ">= 0"),
    ("model", "num_layers"): (lambda v: v >= 1, ">= 1"),
    ("model", "radial_hidden"): (lambda v: v >= 1, ">= 1"),
    ("model", "radial_group_size"): (lambda v: v >= 1, ">= 1"),
    ("model", "avg_num_neighbors"): (lambda v: v > 0, "> 0"),
    ("model", "full_moment"): (lambda v: v > 0, "> 0 (μB)"),
    ("loss", "huber_delta"): (lambda v: v > 0, "> 0"),
    **{("loss", t): (lambda v: v >= 0, ">= 0 (a weight; 0 switches it off)") for t in LOSS_WEIGHTS},
    ("optim", "learning_rate"): (lambda v: v > 0, "> 0"),
    ("optim", "weight_decay"): (lambda v: v >= 0, ">= 0"),
    ("optim", "batch_size"): (lambda v: v >= 1, ">= 1"),
    ("optim", "max_epochs"): (lambda v: v >= 1, ">= 1"),
    ("optim", "max_minutes"): (lambda v: v > 0, "> 0"),
    ("optim", "grad_clip_norm"): (lambda v: v > 0, "> 0"),
    ("optim", "ema_decay"): (lambda v: 0 <= v < 1, "in [0, 1)"),
    ("optim", "lr_factor"): (lambda v: 0 < v < 1, "in (0, 1)"),
    ("optim", "lr_patience"): (lambda v: v >= 0, ">= 0"),
    ("optim", "min_learning_rate"): (lambda v: v >= 0, ">= 0"),
    ("optim", "early_stopping_patience"): (lambda v: v >= 1, ">= 1"),
    ("", "seed"): (lambda v: v >= 0, ">= 0"),
    ("", "num_threads"): (lambda v: v >= 1, ">= 1"),
    ("", "dtype"): (lambda v: v in ("float32", "float64"), "float32 or float64"),
    ("", "output_dir"): (lambda v: v.strip() != "", "a folder name"),
    ("data", "path"): (
        lambda v: bool(v) and all(p.strip() != "" for p in ((v,) if isinstance(v, str) else v)),
        "a file name or a list of file names",
    ),
    ("loss", "kind"): (lambda v: v in ("mse", "huber"), "mse or huber"),
    ("model", "spin_mode"): (lambda v: v in SPIN_MODES, " or ".join(SPIN_MODES)),
}


def _name(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def _check_ranges(values: Any, section: str) -> None:
    """Raise a ValueError naming the first value outside its allowed range.

    Args:
        values: a config dataclass, or a mapping of its keys to (type-checked) values.
        section: the config section they belong to ("" for the top level).
    """
    if dataclasses.is_dataclass(values):
        values = {f.name: getattr(values, f.name) for f in dataclasses.fields(values)}
    for key, value in values.items():
        rule = _RANGES.get((section, key))
        if rule is not None and not rule[0](value):
            raise ValueError(f"{_name(section, key)} must be {rule[1]}, got {value!r}")


def _check_type(value: Any, hint: Any, name: str) -> Any:
    """``value`` as the type ``hint`` asks for (lists become tuples, whole numbers floats), or a
    ValueError naming the key ``name`` and what it must be."""
    origin = typing.get_origin(hint)
    if hint is bool:
        ok, wanted = isinstance(value, bool), "true or false"
    elif hint is int:
        ok, wanted = isinstance(value, int) and not isinstance(value, bool), "a whole number"
    elif hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok, wanted = ok and math.isfinite(value), "a finite number"
        if isinstance(value, str):
            wanted += " (YAML reads 1e-5 as text: write 1.0e-5)"
        value = float(value) if ok else value
    elif hint is str:
        ok, wanted = isinstance(value, str), "text"
    elif hint == str | tuple[str, ...]:
        ok = isinstance(value, str) or (
            isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
        )
        wanted = "a file name or a list of file names"
    elif origin is tuple:
        ok = isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
        wanted, value = "a list of names", tuple(value) if ok else value
    elif origin is dict:
        ok = isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        )
        wanted = "a mapping of names to names"
    else:
        raise TypeError(f"no type check for {hint} ({name})")
    if not ok:
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return value


@dataclass(frozen=True)
class DataConfig:
    """Where the data is, which extxyz fields hold the labels, and how it is split.

    Attributes:
        path: extxyz file of labelled frames (each with ``info['structure_id']``), or a list
            of such files: their frames are read in the order given, as if the files were one
            (a frame without an id is numbered by its place in that concatenation), so the
            split and the data fingerprint are those of the concatenation. A structure id in
            one file must not appear in another.
        keys: extxyz names of energy, forces, stress, magmoms (DFT targets) and
            initial_magmoms (the input guess).
        split_seed: seed of the deterministic split (by structure id).
        validation_fraction, test_fraction: random shares of the remaining frames.
        test_orderings, test_cells: frames whose ``info['ordering']``/``info['cell_name']``
            is listed are all test (none by default).
        test_yardsticks: frames marked ``info['yardstick']`` are all test.
        guess_rescale: in training, every guessed moment is scaled by a factor drawn from
            U(1 − r, 1 + r) each time it is seen (0: off). The DFT labels do not depend on the
            guess's size, only on the state it leads to, so this teaches the model the same.
        materials: the materials (``info['material']``) the model is meant for: evaluation
            and the model card report each, and name those with no test frames or no DFT
            yardsticks in the data as missing (empty: only the materials the data holds).
    """

    path: str | tuple[str, ...] = "data/reference.extxyz"
    keys: dict[str, str] = field(default_factory=dict)
    split_seed: int = 0
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    test_orderings: tuple[str, ...] = ()
    test_cells: tuple[str, ...] = ()
    test_yardsticks: bool = False
    guess_rescale: float = 0.3
    replay_paths: tuple[str, ...] = ()
    replay_fraction: float = 0.0
    materials: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.path, str):  # one way to write each: a list of one is its file
            path = tuple(self.path)
            object.__setattr__(self, "path", path[0] if len(path) == 1 else path)
        _check_ranges(self, "data")
        repeated = sorted({p for p in self.paths if self.paths.count(p) > 1})
        if repeated:
            raise ValueError(f"data.path names {', '.join(repeated)} more than once")
        if self.validation_fraction + self.test_fraction >= 1:
            raise ValueError(
                "data.validation_fraction + data.test_fraction must be < 1 (the rest trains), "
                f"got {self.validation_fraction} + {self.test_fraction}"
            )
        if bool(self.replay_paths) != (self.replay_fraction > 0):
            raise ValueError(
                "data.replay_paths and data.replay_fraction go together: give replay files and "
                f"a fraction > 0, or neither (got {list(self.replay_paths)} and "
                f"{self.replay_fraction})"
            )
        unknown = set(self.keys) - set(DEFAULT_KEYS)
        if unknown:
            raise ValueError(f"unknown data.keys {sorted(unknown)}; known: {sorted(DEFAULT_KEYS)}")
        object.__setattr__(self, "keys", {**DEFAULT_KEYS, **self.keys})

    @property
    def paths(self) -> tuple[str, ...]:
        """The labelled files of ``path``, in the order given."""
        return (self.path,) if isinstance(self.path, str) else self.path


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
        _check_ranges(self, "loss")


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

    def __post_init__(self) -> None:
        _check_ranges(self, "optim")
        if self.min_learning_rate >= self.learning_rate:
            raise ValueError(
                f"optim.min_learning_rate ({self.min_learning_rate}) must be below "
                f"optim.learning_rate ({self.learning_rate}): training stops at that floor"
            )


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; ``output_dir`` receives checkpoints, logs, the model.

    ``init_from`` (fine-tuning): a model file or checkpoint to start from instead of random
    weights; its architecture is kept, and species of ``model.species`` it lacks are added.
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    output_dir: str = "runs/default"
    seed: int = 0
    dtype: str = "float32"
    num_threads: int = 2
    init_from: str = ""

    def __post_init__(self) -> None:
        _check_ranges(self, "")
        _check_ranges(self.model, "model")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["model"] = self.model.to_dict()
        return out


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig, "optim": OptimConfig}


def _build(cls: type, values: Any, section: str) -> Any:
    """``cls`` from the mapping ``values`` of config section ``section``, checked key by key."""
    where = section or "the top level"
    if not isinstance(values, dict):
        raise ValueError(
            f"{where} of the config must be a mapping of keys to values, got {values!r}"
        )
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else f"; known: {', '.join(known)}"
            raise ValueError(f"unknown keys in {where}: {key!r}{hint}; rename or remove it")
    checked = {
        key: value
        if key in _SECTIONS and not section
        else _check_type(value, hints[key], _name(section, key))
        for key, value in values.items()
    }
    _check_ranges(checked, section)
    try:
        return cls(**checked)
    except ValueError as error:  # a rule across keys, e.g. of ModelConfig
        if section and not str(error).startswith(f"{section}."):
            raise ValueError(f"{section}: {error}") from None
        raise


def config_from_dict(values: Any) -> TrainConfig:
    """A :class:`TrainConfig` from nested dictionaries, checking every key, type and range.

    Raises:
        ValueError: one line naming the first key that is unknown, of the wrong type or out of
            range, and what it must be.
    """
    if not isinstance(values, dict):
        raise ValueError(f"a training config is a mapping of sections and keys, got {values!r}")
    values = dict(values)
    sections = {
        name: _build(cls, {} if values.get(name) is None else values[name], name)
        for name, cls in _SECTIONS.items()
    }
    values = {k: v for k, v in values.items() if k not in _SECTIONS}
    return _build(TrainConfig, {**values, **sections}, "")


def load_config(path: str | Path) -> TrainConfig:
    """Read a training YAML file.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        ValueError: the file is unreadable, not valid YAML, or not a valid config; one line
            starting with the path.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training config at {path}")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValueError(f"{path} is not valid YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read {path} as a text file ({error})") from None
    try:
        return config_from_dict({} if values is None else values)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
