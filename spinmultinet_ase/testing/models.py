"""Randomly initialised SpinMultiNet models for tests (no training, no files needed)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from spinmultinet_ase.export import LoadedModel, export_model, model_metadata
from spinmultinet_ase.model import ModelConfig, SpinMultiNet

SMALL_CONFIG = dict(
    channels=8,
    spin_channels=8,
    lmax=2,
    num_layers=2,
    radial_hidden=16,
    cutoff=4.5,
    radial_group_size=4,
)
# A smaller model still, for tests that train one.
TINY_CONFIG = dict(
    channels=4,
    spin_channels=4,
    lmax=1,
    num_layers=1,
    radial_hidden=8,
    radial_group_size=4,
)


def tiny_training_config(
    data: str | Path,
    output: str | Path,
    *,
    data_options: Mapping[str, Any] | None = None,
    model: Mapping[str, Any] | None = None,
    optim: Mapping[str, Any] | None = None,
    **top: Any,
) -> dict:
    """A training config (as a dict) that trains :data:`TINY_CONFIG` on every frame of
    ``data`` for one epoch in float64 on one thread, writing to ``output``; ``data_options``
    and ``optim`` add to their sections, ``model`` replaces the model, ``top`` replaces whole
    sections or adds top-level keys."""
    return {
        "data": {
            "path": str(data),
            "test_yardsticks": False,
            "validation_fraction": 0.0,
            "test_fraction": 0.0,
            **(data_options or {}),
        },
        "model": dict(model or TINY_CONFIG),
        "optim": {"max_epochs": 1, "batch_size": 4, **(optim or {})},
        "output_dir": str(output),
        "dtype": "float64",
        "num_threads": 1,
        **top,
    }


def random_model(seed: int = 0, dtype: torch.dtype = torch.float64, **overrides) -> SpinMultiNet:
    """A small SpinMultiNet with random weights, seeded; ``overrides`` change the config."""
    torch.manual_seed(seed)
    model = SpinMultiNet(ModelConfig(**{**SMALL_CONFIG, **overrides}))
    return model.to(dtype).eval()


def as_loaded(model: SpinMultiNet) -> LoadedModel:
    """An eager model wrapped like a loaded file, for the calculator."""
    return LoadedModel(module=model, metadata=model_metadata(model))


def exported_committee(folder: Path, seeds: tuple[int, ...]) -> list[Path]:
    """Small random models, one per seed, exported to ``folder/member{seed}.pt``."""
    paths = [folder / f"member{seed}.pt" for seed in seeds]
    for seed, path in zip(seeds, paths, strict=True):
        export_model(random_model(seed=seed), path)
    return paths
